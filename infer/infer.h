/*
 * infer.h - inference for bt's byte transformer: a teacher-forced batched pass
 * (compression) and an incremental pass with a KV cache (decompression) that
 * give IDENTICAL logits, bit for bit, on every machine, thread count, SIMD
 * path (BT_ISA) and compiler.
 *
 * Both passes run every position as one row through the same per-row
 * arithmetic (infer.c "Why the bits match"); the batched pass only groups
 * more rows per call. So row t of bt_infer_batched equals the logits the
 * (t+1)-th bt_infer_step returns for that stream, and a stream's logits never
 * depend on how many other streams run beside it.
 *
 * Positions: the model's input at position 0 is BOS (0); at position p > 0 it
 * is the byte p-1 of the sequence. The logits at position p predict byte p.
 *
 * Tokens: a model of V > 256 (a BPE vocabulary) reads tokens through the
 * _tokens form of each pass (uint16_t inputs, each < V, else BT_ERR_ARG);
 * logits are (rows, V). The byte forms work on any model, bytes being the
 * first 256 tokens; "byte" below means a token for those.
 *
 * Threads: calls parallelise with OpenMP over rows, heads and streams (never
 * inside a sum). One bt_infer must not be used by two threads at once.
 */
#ifndef BT_INFER_H
#define BT_INFER_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/error.h"
#include "train/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bt_infer bt_infer;

/* Prepares inference for model m for up to max_streams streams of up to
 * max_T positions each (1 <= max_T <= ctx). The weights are copied (and
 * re-laid-out) here: later changes to m are not seen, and m may be freed.
 * Memory: the KV cache is max_streams x L x 2 x roundup(max_T, 16) x C
 * bfloat16s (bt_infer_cache_bytes), plus a copy of the weights and row
 * scratch. Keys and values are rounded to bfloat16 in every pass alike, so
 * the logits are close to the float training forward's (~1e-2), not equal.
 * BT_ERR_ARG, BT_ERR_NOMEM. *out is NULL on error. */
bt_error bt_infer_create(bt_infer **out, const bt_model *m, int max_streams, int max_T);
/* Frees everything; NULL is fine. */
void bt_infer_free(bt_infer *inf);

/* Replaces the weights with m's (same config), as bt_infer_create copied
 * them: adaptive coding calls it after each training step. The caches keep
 * what earlier weights computed; reset or prefill the streams. BT_ERR_ARG. */
bt_error bt_infer_set_weights(bt_infer *inf, const bt_model *m);

/* Bytes the KV cache of bt_infer_create(.., max_streams, max_T) would take. */
size_t bt_infer_cache_bytes(const bt_config *cfg, int max_streams, int max_T);

/* Teacher-forced pass over n sequences seq (n, T), 1 <= n <= max_streams,
 * 1 <= T <= max_T: logits (n, T, V), row t from BOS, seq[0..t-1].
 * Also leaves streams 0..n-1 at position T with their caches filled, so
 * bt_infer_step can continue them (its next input is seq[T-1]).
 * Logits are caller-owned. BT_ERR_ARG, BT_ERR_NOMEM. */
bt_error bt_infer_batched(bt_infer *inf, const uint8_t *seq, int n, int T, float *logits);
bt_error bt_infer_batched_tokens(bt_infer *inf, const uint16_t *seq, int n, int T, float *logits);

/* Starts streams 0..n-1 over at position 0 (n <= max_streams). */
void bt_infer_reset(bt_infer *inf, int n);

/* Feeds one input per stream to streams 0..n-1 and returns logits (n, V)
 * for each stream's next position. A stream at position 0 is always fed BOS
 * (its tok entry is not read); otherwise tok[s] is the byte the previous call
 * predicted for stream s. tok may be NULL when every stream is at position 0.
 * So: reset, step(NULL) gives the logits of byte 0; step(byte 0) those of
 * byte 1; ... Streams may be at different positions (after a prefill).
 * BT_ERR_ARG (a stream would pass max_T, or tok missing) with nothing done. */
bt_error bt_infer_step(bt_infer *inf, const uint8_t *tok, int n, float *logits);
bt_error bt_infer_step_tokens(bt_infer *inf, const uint16_t *tok, int n, float *logits);

/* Runs known prefixes: for each stream s < n, restarts it and feeds BOS and
 * its first len[s] bytes, seq + s * ld (len[s] >= 0, len[s] + 1 <= max_T),
 * in batched passes. Same result as bt_infer_reset then len[s] + 1 steps:
 * stream s ends at position len[s] + 1, and logits (n, V), if not NULL,
 * gets the last step's logits, which predict byte len[s]; bt_infer_step then
 * continues with tok[s] = that byte. BT_ERR_ARG, BT_ERR_NOMEM. */
bt_error bt_infer_prefill(bt_infer *inf, const uint8_t *seq, size_t ld, const int *len, int n,
                          float *logits);
bt_error bt_infer_prefill_tokens(bt_infer *inf, const uint16_t *seq, size_t ld, const int *len,
                                 int n, float *logits);

/* Several positions per stream in one pass (multi-row decoding): stream s
 * (s < n) is fed nrows[s] >= 0 inputs tok + s * ld, at its next positions;
 * its first row at position 0 is fed BOS (that tok entry is not read).
 * logits (sum of nrows, V) get the rows in order, stream by stream, each
 * equal bit for bit to what bt_infer_step would give for that input. The
 * streams advance by nrows[s]; bt_infer_rewind takes back rows whose inputs
 * were guesses that proved wrong. At most bt_infer_max_rows rows in all.
 * BT_ERR_ARG with nothing done. */
bt_error bt_infer_extend(bt_infer *inf, const uint8_t *tok, size_t ld, const int *nrows, int n,
                         float *logits);
bt_error bt_infer_extend_tokens(bt_infer *inf, const uint16_t *tok, size_t ld, const int *nrows,
                                int n, float *logits);
/* Most rows one bt_infer_extend call takes. */
int bt_infer_max_rows(const bt_infer *inf);
/* Moves stream s back to position pos (0 <= pos <= its position): later
 * calls overwrite the cache from there, and no row reads past its own
 * position, so what was computed beyond is never seen. BT_ERR_ARG. */
bt_error bt_infer_rewind(bt_infer *inf, int s, int pos);

/* Caps the threads later calls use (n <= 0: all of OpenMP's). With 1, every
 * call runs on the calling thread with no parallel region. The bits do not
 * depend on it. */
void bt_infer_set_threads(bt_infer *inf, int n);

/* Pairing: a second thread takes half of the work of each call's rows (the
 * columns of every linear step, the heads of every attention), for a lone
 * stream whose steps are too small to pay for a parallel region each.
 * Between bt_infer_pair_begin and bt_infer_pair_end, called on the thread
 * that makes the other calls, one other thread runs bt_infer_pair_serve,
 * which returns once bt_infer_pair_end has been called. The caller never
 * waits for a half the helper has not taken: with no helper, or one that is
 * not running, it computes both halves itself. The bits do not depend on who
 * computes which half (each output is one chain, kernels.h). */
void bt_infer_pair_begin(bt_infer *inf);
/* Returns the number of halves this call computed. */
long bt_infer_pair_serve(bt_infer *inf);
/* For tests: with on, the caller never computes a second half itself but
 * waits for the helper to, so the helper's path is sure to run (there must
 * be one, or the caller waits forever). */
void bt_infer_pair_wait_for_helper(bt_infer *inf, int on);
void bt_infer_pair_end(bt_infer *inf);

/* The KV cache's number format. BT_KV_BF16 (0, the default): bfloat16, as
 * above. BT_KV_INT8: each position's K and V of a head are int8s times a
 * power of two (the least that fits their largest magnitude in 127,
 * attn_impl.c), hs + 1 bytes against 2 hs, so decoding reads about half as
 * much per byte; the logits change (the shipped models' coded rates by under
 * 0.01 points) but stay the same on every path, batched or not.
 * BT_KV_INT8_WIDE: the same numbers, so the same logits bit for bit, with
 * the integers kept as bfloat16s (2 hs + 1 bytes): cheaper to widen, for
 * passes of many rows, which are bound by arithmetic (compression), where
 * BT_KV_INT8 suits one row a stream (decoding), bound by the bytes it reads.
 * Changing it restarts every stream at position 0. Container version 4
 * records int8 (coder.h); bt-compress --kv int8 sets it. */
enum { BT_KV_BF16 = 0, BT_KV_INT8 = 1, BT_KV_INT8_WIDE = 2 };
void bt_infer_set_kv8(bt_infer *inf, int mode);
int bt_infer_kv8(const bt_infer *inf); /* the mode */
/* Bytes one stream's cache of max_T positions holds in format mode: what
 * a step of that stream reads at most (coder/codec.c sizes its groups of
 * streams by it). */
size_t bt_infer_stream_bytes(const bt_config *cfg, int max_T, int mode);

/* Positions filled so far for stream s (0 after reset), or -1 if s is out of range. */
int bt_infer_position(const bt_infer *inf, int s);
/* 1 if few-row passes read the model's matrices as binary16 (every weight of
 * them is a half, as a half checkpoint's are; the same floats, half the
 * bytes), else 0. */
int bt_infer_half_weights(const bt_infer *inf);

#ifdef __cplusplus
}
#endif
#endif
