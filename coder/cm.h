/*
 * cm.h - adaptive coding's second predictor and its binary coder.
 *
 * The transformer gives a distribution over the next byte (freq[256], the
 * quantised table of coder.h). bt_cm codes that byte as 8 binary decisions,
 * most significant bit first, and predicts each one by mixing, in the
 * logistic domain:
 *   - the transformer's own probability of the bit (the mass of the
 *     symbols below the node with that bit set, over the node's mass);
 *   - adaptive context models over the last 0, 1, 2, 3, 4, 5, 6 and 8
 *     bytes and over the current word: each context's own probability, and
 *     one learned from what followed the same recent bits in any context
 *     of its order (its bit history);
 *   - a match model that follows the longest earlier occurrence of the
 *     last bytes in the whole history and predicts the byte that came next.
 * Three online mixers (weights chosen by the partial byte, by the match
 * length and the transformer's confidence, and by how many contexts are
 * known), trained on every bit, combine them; two secondary estimators (on
 * the last one and two bytes) refine the result.
 *
 * Integer arithmetic only: the decoder reproduces every probability on any
 * machine, compiler, thread count or SIMD path. The mixer starts with all
 * its weight on the transformer, so a file it knows nothing about yet is
 * coded at about the transformer's rate.
 */
#ifndef BT_CM_H
#define BT_CM_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Which parts run besides the transformer (stored in the container: a
 * decoder must use the same). 0 codes the transformer's bits alone. */
#define BT_CM_CTX 1u   /* order-0..6 and word context models */
#define BT_CM_MATCH 2u /* the match model */
#define BT_CM_SSE 4u   /* secondary estimation after the mixer */
#define BT_CM_ALL (BT_CM_CTX | BT_CM_MATCH | BT_CM_SSE)

typedef struct bt_cm bt_cm;

/* A fresh predictor (no history). parts: a set of BT_CM_* bits.
 * Memory: about 130 MB with BT_CM_CTX, about 13 MB without (bt_cm_bytes). */
bt_error bt_cm_create(bt_cm **out, unsigned parts);
void bt_cm_free(bt_cm *cm);
/* Back to the state bt_cm_create gave (the tables are cleared). */
void bt_cm_reset(bt_cm *cm);
size_t bt_cm_bytes(unsigned parts);

/* Starts a byte: freq[256] is the transformer's table for it (each >= 1,
 * sum 2^24); hist[0..pos) are the bytes coded so far (hist is read, not
 * kept: the caller keeps it alive and unchanged up to pos). */
void bt_cm_begin(bt_cm *cm, const uint32_t freq[256], const uint8_t *hist, size_t pos);
/* P(next bit = 1) in 1..4095 out of 4096. */
int bt_cm_p(bt_cm *cm);
/* Learns the bit bt_cm_p predicted. 8 per byte, then bt_cm_begin again. */
void bt_cm_update(bt_cm *cm, int bit);

/* ---- binary arithmetic coder over 12-bit probabilities ---- */

typedef struct {
  uint32_t x1, x2;  /* the interval [x1, x2] */
  uint8_t *buf;     /* caller's buffer, cap bytes (not owned) */
  size_t cap, pos;  /* bytes emitted, counted past cap too */
} bt_bin_enc;

void bt_bin_enc_init(bt_bin_enc *e, uint8_t *buf, size_t cap);
/* Codes bit under P(1) = p / 4096, p in 1..4095. */
void bt_bin_encode(bt_bin_enc *e, int bit, int p);
/* 1 once the output is certain to exceed cap. */
int bt_bin_enc_overflowed(const bt_bin_enc *e);
/* Flushes; the size in bytes, or SIZE_MAX if it exceeds cap. */
size_t bt_bin_enc_finish(bt_bin_enc *e);

typedef struct {
  uint32_t x1, x2, x;
  const uint8_t *buf; /* input (not owned); zeros are read past len */
  size_t len, pos;
} bt_bin_dec;

void bt_bin_dec_init(bt_bin_dec *d, const uint8_t *buf, size_t len);
int bt_bin_decode(bt_bin_dec *d, int p);

/* The two together for one byte: codes / decodes sym's 8 bits with cm
 * (after bt_cm_begin). Returns the summed cost in bits, for reports. */
double bt_cm_encode_byte(bt_cm *cm, bt_bin_enc *e, int sym);
int bt_cm_decode_byte(bt_cm *cm, bt_bin_dec *d);

#ifdef __cplusplus
}
#endif
#endif
