/*
 * coder.h - the model-independent half of bt's compressor: a 256-symbol range
 * coder over integer frequency tables, the quantiser that turns logits into
 * such tables with identical bits on every machine, and the container format.
 *
 * Frequency tables: freq[256] with every freq >= 1 and a total of exactly
 * BT_FREQ_TOTAL = 2^24; cum[257] is its running sum, cum[0] = 0,
 * cum[256] = 2^24. Symbol s owns the code interval [cum[s], cum[s+1]).
 *
 * Nothing here allocates except bt_container_parse (one array the caller
 * frees), prints or exits; errors come back as bt_error codes.
 */
#ifndef BT_CODER_H
#define BT_CODER_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BT_FREQ_BITS 24
#define BT_FREQ_TOTAL (1u << BT_FREQ_BITS)

/* ======================================================================
 * Range coder
 *
 * LZMA-style carry handling, widened so the per-symbol rounding loss is
 * negligible: low keeps 56 significant bits plus a carry bit, range stays in
 * [2^48, 2^56) after normalisation, so r = range >> 24 >= 2^24 and the loss
 * from truncating range to r * 2^24 is below 2^-24 (< 1e-7 bits) per symbol.
 * The output is the big-endian digits of one number inside the final
 * interval; trailing zero bytes are dropped, since the decoder reads zeros
 * past the end of its input. Coding no symbols gives 0 bytes.
 * ====================================================================== */

/* Encoder state; lives wherever the caller puts it. Fields are private
 * except the statistics marked so. */
typedef struct {
  uint64_t low;      /* bottom of the interval: 56 bits + carry (bit 56) */
  uint64_t range;    /* width of the interval, [2^48, 2^56) when normalised */
  uint8_t *buf;      /* caller's output buffer, cap bytes (not owned) */
  size_t cap;
  size_t pos;        /* bytes emitted so far, including any past cap */
  size_t end;        /* 1 + position of the last non-zero byte emitted */
  uint64_t pending;  /* 0xFF bytes held back until the carry is known */
  uint8_t cache;     /* byte held back before the pending 0xFFs */
  uint8_t has_cache; /* 0 until the first byte is shifted out */
  uint64_t n_carry;  /* statistics: carries propagated into held-back bytes */
  uint64_t max_pending; /* statistics: longest run of held-back 0xFFs */
} bt_rc_enc;

/* Starts encoding into buf (cap bytes, not owned; buf may be NULL when
 * cap == 0 to only measure the size). The encoder never writes past cap:
 * it keeps counting and bt_rc_enc_finish reports the overflow. */
void bt_rc_enc_init(bt_rc_enc *e, uint8_t *buf, size_t cap);

/* Codes the symbol whose interval is [cum, cum + freq) of 2^24.
 * Requires freq >= 1 and cum + freq <= 2^24 (asserted). */
void bt_rc_encode(bt_rc_enc *e, uint32_t cum, uint32_t freq);

/* Flushes and returns the coded size in bytes (all in buf), or SIZE_MAX if
 * it would not fit in cap (buf then holds a useless prefix). */
size_t bt_rc_enc_finish(bt_rc_enc *e);

/* A lower bound on the size bt_rc_enc_finish will return (the bytes up to
 * the last non-zero one emitted so far): once it exceeds a budget, the
 * output will too, so a caller can stop coding a chunk early and store it. */
size_t bt_rc_enc_bytes(const bt_rc_enc *e);

/* 1 if the output is already certain to overflow cap (see above), else 0. */
int bt_rc_enc_overflowed(const bt_rc_enc *e);

/* Decoder state; fields are private. */
typedef struct {
  uint64_t code;  /* input value minus the interval bottom, < range */
  uint64_t range; /* as the encoder's */
  const uint8_t *buf; /* input, len bytes (not owned) */
  size_t len;
  size_t pos;     /* next byte to read; bytes at or past len read as 0 */
  int corrupt;    /* sticky: the input cannot be a valid stream */
} bt_rc_dec;

/* Starts decoding the len bytes at buf (buf may be NULL when len == 0).
 * Never reads outside [buf, buf + len): past the end, it reads zeros. */
void bt_rc_dec_init(bt_rc_dec *d, const uint8_t *buf, size_t len);

/* Decodes one symbol under the table cum[257] (cum[0] = 0, strictly
 * increasing, cum[256] = 2^24; checked with asserts only) and returns it,
 * 0..255. Always returns a symbol, even on hostile input: a stream that no
 * encoder could have made sets the corrupt flag instead (not every damaged
 * stream is detectable; the container's CRC catches the rest). */
int bt_rc_decode(bt_rc_dec *d, const uint32_t cum[257]);

/* The two halves of bt_rc_decode, for callers that find the symbol
 * themselves: the target in [0, 2^24) (the symbol s has
 * cum[s] <= target < cum[s] + freq[s]), then the update with that symbol's
 * interval. Each target call must be followed by exactly one update. */
uint32_t bt_rc_decode_target(bt_rc_dec *d);
void bt_rc_decode_update(bt_rc_dec *d, uint32_t cum, uint32_t freq);

/* 1 if the input was found impossible for a valid stream, else 0. */
int bt_rc_dec_corrupt(const bt_rc_dec *d);

/* ======================================================================
 * Quantisation: logits -> integer frequencies
 * ====================================================================== */

/* freq[256] (each >= 1, sum exactly 2^24) from logits[256], with identical
 * bits on every IEEE-754 machine and compiler: softmax with bt's own exp and
 * a fixed summation order, then integer fix-up of the total. Any input is
 * accepted: NaN logits count as -inf; all -inf/NaN gives the uniform table;
 * +inf logits share the mass among themselves. */
void bt_quantize_logits(const float logits[256], uint32_t freq[256]);

/* Tables over V symbols, for a model of V > 256 tokens (a BPE vocabulary):
 * freq[V] (each >= 1, sum exactly 2^24) from logits[V], by the same
 * arithmetic; with V = 256 the bits of bt_quantize_logits. scratch holds V
 * floats. 1 <= V <= BT_MAX_SYMBOLS. */
#define BT_MAX_SYMBOLS 65536
void bt_quantize_logits_v(const float *logits, int V, uint32_t *freq, float *scratch);
/* bt_quantize_logits_v (the same freq bits), returning the model's
 * -log2 softmax(logits)[sym] from the quantiser's own exponentials (single
 * precision; for reports only, like bt_logits_logloss_bits_v, which it
 * falls back to where the float probability underflows). */
double bt_quantize_logits_v_loss(const float *logits, int V, uint32_t *freq, float *scratch, int sym);
/* cum[V + 1] of freq[V]. */
void bt_freq_cumulative_v(const uint32_t *freq, int V, uint32_t *cum);
/* The symbol s < V whose interval [cum[s], cum[s+1]) holds target < 2^24
 * (binary search; cum as bt_freq_cumulative_v makes it). */
int bt_freq_find(const uint32_t *cum, int V, uint32_t target);
/* cum[257]: cum[0] = 0, cum[s+1] = cum[s] + freq[s]. */
void bt_freq_cumulative(const uint32_t freq[256], uint32_t cum[257]);

/* -log2(freq[sym] / 2^24): the ideal code length of sym under the table. */
double bt_freq_cost_bits(const uint32_t freq[256], int sym);

/* -log2 softmax(logits)[sym] in double precision with libm: for reports
 * only; never use it in anything a decoder must reproduce. */
double bt_logits_logloss_bits(const float logits[256], int sym);
/* The same over V symbols. */
double bt_logits_logloss_bits_v(const float *logits, int V, int sym);

/* ======================================================================
 * Container
 *
 * Byte layout of versions 3 and 4 (all integers little-endian; floats are IEEE-754
 * binary32 bit patterns):
 *   0  magic          4  "BTZ" 0x1A
 *   4  version        1  3, or 4 with flag bit 2 (2 is still read: below)
 *   5  flags          1  bit 0: stream mode (one chunk, the whole input);
 *                        bit 1: adaptive (the model learns while coding,
 *                        and the 8 bits of each byte are coded by cm.h's
 *                        mixer); bit 2 (version 4 only): the model's K and
 *                        V are cached as int8 (infer.h), else bfloat16;
 *                        other bits must be 0
 *   6  ckpt_sha256   32  SHA-256 of the checkpoint's weights
 *  38  n_layer        1
 *  39  n_head         1
 *  40  d_model        2
 *  42  ctx            4
 *  46  chunk          4  raw bytes per chunk (the last may be shorter);
 *                        0 in stream mode, >= 1 otherwise. Adaptive chunks
 *                        are segments: each starts from the checkpoint
 *  50  orig_size      6  bytes of original data, < 2^48
 *  56  orig_crc       4  CRC-32 (zlib) of the original data
 *  60  model_name    16  the model's name ("bt-800K"), NUL-padded; for
 *                        messages only: the hash is the identity
 *  76  adapt         32  the adaptation schedule (bt_adapt), all zero
 *                        unless adaptive:
 *                          76 window u32  positions per model pass
 *                          80 steps u8    optimizer steps after a window
 *                          81 optimizer u8  1: AdamW
 *                          82 tensors u8  0: every tensor learns
 *                          83 parts u8    cm.h's BT_CM_* bits
 *                          84 lr, 88 beta1, 92 beta2, 96 eps, 100 weight
 *                          decay, 104 lr decay per window (f32 each)
 * 108  header_crc     4  CRC-32 of bytes 0..107 followed by the chunk table
 * 112  chunk table    4 * n_chunks: payload size of each chunk (u32)
 *      payloads       concatenated in chunk order
 * Version 2 is the same up to orig_crc, then header_crc at 60 and the table
 * at 64 (no name, never adaptive).
 * n_chunks = ceil(orig_size / chunk) (stream mode: chunk = orig_size, so 1,
 * or 0 for empty input). A payload whose size equals its chunk's raw length
 * is the raw bytes ("stored"); a shorter one is coded; a longer one is
 * invalid. So a file is never longer than bt_container_bound(...) =
 * orig_size + 112 + 4 * n_chunks bytes. A file may hold several members,
 * one after another (bt_container_parse_member).
 * ====================================================================== */

#define BT_CONTAINER_MAGIC "BTZ\x1a"
/* 2: keys and values are cached as bfloat16 (infer.c), which changes every
 * probability; version-1 files (float cache) are refused, not misdecoded.
 * 3: the model's name and adaptive coding. Version 2 files still decode.
 * 4: version 3 plus flag bit 2, the int8 KV cache (infer.h's
 * bt_infer_set_kv8), which changes every probability; writers write 4 only
 * for such members, 3 otherwise. */
#define BT_CONTAINER_VERSION 4
#define BT_CONTAINER_HEADER_BYTES 112 /* version 3; version 2 has 64 */
#define BT_CONTAINER_V2_HEADER_BYTES 64
#define BT_CONTAINER_FLAG_STREAM 1u
#define BT_CONTAINER_FLAG_ADAPT 2u
#define BT_CONTAINER_FLAG_KV8 4u
#define BT_CONTAINER_MAX_ORIG ((1ull << 48) - 1)
#define BT_MODEL_NAME_MAX 16

/* How an adaptive member learns (the decoder replays it exactly): after
 * each window of `window` positions is coded, `steps` optimizer steps on
 * that window's bytes. */
typedef struct {
  uint32_t window;     /* 2..ctx, even */
  int steps;           /* 0..16 */
  int optimizer;       /* 1: AdamW (moments start at zero) */
  int tensors;         /* 0: all */
  unsigned parts;      /* BT_CM_* of cm.h */
  float lr, beta1, beta2, eps, weight_decay;
  float lr_decay;      /* the rate of window j's steps is lr * lr_decay^j
                        * (a float product, window by window); 1: constant */
} bt_adapt;

typedef struct {
  int version;             /* 2, 3 or 4, as read; writers write 4 if kv8, else 3 */
  uint8_t ckpt_sha256[32]; /* SHA-256 of the checkpoint's weights */
  int n_layer, n_head;     /* 0..255 */
  int d_model;             /* 0..65535 */
  uint32_t ctx;            /* context length the model was run with */
  uint32_t chunk;          /* raw bytes per chunk; 0 in stream mode */
  int stream;              /* 1: stream mode */
  int adaptive;            /* 1: adaptive coding with `adapt` */
  int kv8;                 /* 1: the model ran with the int8 KV cache (version 4) */
  bt_adapt adapt;          /* zero unless adaptive */
  char model_name[BT_MODEL_NAME_MAX + 1]; /* NUL-terminated, may be "" */
  uint64_t orig_size;      /* < 2^48 */
  uint32_t orig_crc;       /* bt_crc32(0, original, orig_size) */
  uint64_t n_chunks;       /* bt_container_n_chunks(orig_size, chunk, stream) */
} bt_container_header;

/* BT_OK if a is a schedule this version can replay, else BT_ERR_ARG with
 * the reason (a parser turns it into BT_ERR_FORMAT). */
bt_error bt_adapt_check(const bt_adapt *a, uint32_t ctx);

/* Number of chunks for the given sizes: ceil(orig_size / chunk), or in
 * stream mode 1 (0 if orig_size is 0). UINT64_MAX for an impossible
 * combination (chunk 0 outside stream mode with orig_size > 0). */
uint64_t bt_container_n_chunks(uint64_t orig_size, uint32_t chunk, int stream);

/* Raw (original) length of chunk i < h->n_chunks. */
uint64_t bt_container_chunk_len(const bt_container_header *h, uint64_t i);

/* Bytes of header plus chunk table as this version writes them:
 * 112 + 4 * n_chunks (SIZE_MAX if that does not fit in size_t). */
size_t bt_container_header_size(uint64_t n_chunks);

/* The most bytes a container of orig_size bytes can take:
 * orig_size + 112 + 4 * n_chunks (UINT64_MAX for impossible sizes). */
uint64_t bt_container_bound(uint64_t orig_size, uint32_t chunk, int stream);

/* Writes the header and chunk table (bt_container_header_size(h->n_chunks)
 * bytes) to out; chunk_sizes[n_chunks] are the payload sizes. The payloads
 * go right after, in order, written by the caller. BT_ERR_ARG if a field is
 * out of range, n_chunks does not match the sizes, or a payload is longer
 * than its chunk. */
bt_error bt_container_write_header(uint8_t *out, const bt_container_header *h,
                                   const uint32_t *chunk_sizes);

/* Parses and fully validates the container in[len] (hostile input). On
 * success fills *h and sets *offsets to a new malloc'd array (caller frees)
 * of h->n_chunks + 1 entries: payload i is in[offsets[i] .. offsets[i+1]),
 * offsets[n_chunks] == len, and it is stored raw iff its size equals
 * bt_container_chunk_len(h, i). On error *offsets is NULL.
 * Errors: BT_ERR_FORMAT (not a bt container, future version, unknown flag),
 * BT_ERR_CORRUPT (truncated, header checksum mismatch, sizes inconsistent),
 * BT_ERR_NOMEM, BT_ERR_ARG (NULL pointers).
 * The model fields are not checked here: the caller compares them with the
 * checkpoint (BT_ERR_MISMATCH). orig_crc is the caller's to verify after
 * decoding (BT_ERR_CHECKSUM). */
bt_error bt_container_parse(const uint8_t *in, size_t len, bt_container_header *h,
                            uint64_t **offsets);

/* Members. A .bt file is one or more containers back to back (as gzip, xz
 * and zstd files are): `cat a.bt b.bt` decodes to the concatenation of a and
 * b. This parses the member at the start of in[len] exactly as
 * bt_container_parse does, but bytes after it are allowed: *member_len gets
 * its length (offsets[n_chunks] == *member_len), and the next member, if
 * any, starts there. */
bt_error bt_container_parse_member(const uint8_t *in, size_t len, bt_container_header *h,
                                   uint64_t **offsets, size_t *member_len);

#ifdef __cplusplus
}
#endif
#endif
