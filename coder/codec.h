/*
 * codec.h - bt's compressor: the transformer's probabilities driving the
 * range coder, chunk by chunk, in the container of coder.h.
 *
 * Compression runs each chunk through the model in one teacher-forced batched
 * pass; decompression runs incrementally with a KV cache, many chunks in
 * lockstep. Both call the same per-row arithmetic (infer/), so the decoder
 * sees bit-identical probabilities on any machine, thread count or SIMD path.
 */
#ifndef BT_CODEC_H
#define BT_CODEC_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "coder/coder.h"
#include "kernels/error.h"
#include "train/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bt_codec bt_codec;

typedef struct {
  uint64_t raw_bytes;     /* original size */
  uint64_t out_bytes;     /* container size */
  uint64_t n_chunks;
  uint64_t n_members;     /* decompression: containers in the input (1 unless concatenated) */
  uint64_t stored_chunks; /* chunks kept raw because coding would not shrink them */
  double logloss_bits;    /* the model's summed -log2 p over all bytes (coded chunks and stored ones) */
  double coded_bits;      /* summed -log2 of the quantised frequencies actually coded */
  uint64_t spec_passes;   /* decompression: the model's passes over guessed rows, */
  uint64_t spec_bytes;    /*   and the bytes they decoded (their ratio: the draft's acceptance) */
  double seconds;         /* wall time */
} bt_codec_stats;

/* Called now and then with the bytes done so far; may be NULL. */
typedef void (*bt_progress_fn)(void *user, uint64_t done, uint64_t total);

/* Loads the checkpoint at path and prepares inference. *out owned by caller. */
bt_error bt_codec_open(bt_codec **out, const char *ckpt_path);
/* The model called `name` on the search path (bt_model_resolve), or the
 * file `name` if it holds a '/'. BT_ERR_NOT_FOUND if there is none. */
bt_error bt_codec_open_model(bt_codec **out, const char *name);
/* The model the bt file in[0..len) was made with, found on the search path
 * by the weights hash its first member records: the file alone is enough
 * to decompress it. BT_ERR_FORMAT/CORRUPT if in is not a bt file,
 * BT_ERR_MISMATCH (naming the model and hash) if no model there has it. */
bt_error bt_codec_open_for(bt_codec **out, const uint8_t *in, size_t len);
/* Frees; NULL is fine. */
void bt_codec_free(bt_codec *c);
/* Decompression's resource bound. Its cost grows linearly with the size a
 * file declares (every output byte is one model step), so a few forged bytes
 * could claim hours of work. max_size 0 (the default) refuses a member that
 * declares more than BT_DEFAULT_MAX_RATIO x its own size + BT_DEFAULT_MAX_BASE
 * bytes; any other value refuses inputs declaring more than max_size bytes
 * in all (UINT64_MAX: no limit). Refusals are BT_ERR_LIMIT, before anything
 * is decoded. */
#define BT_DEFAULT_MAX_RATIO 1000ull
#define BT_DEFAULT_MAX_BASE (1ull << 20)
void bt_codec_set_max_size(bt_codec *c, uint64_t max_size);

/* Adaptive coding (coder.h's bt_adapt): later bt_compress calls make
 * adaptive members with schedule a (copied), or plain ones with a == NULL.
 * Decompression reads the schedule from each member and needs no setting.
 * BT_ERR_ARG if the schedule is invalid for this model. */
bt_error bt_codec_set_adapt(bt_codec *c, const bt_adapt *a);
/* The schedule `bt-compress --adapt` uses. */
void bt_adapt_default(bt_adapt *a);

/* Compression across processes (mpirun: train/dist.h). Process `part` of
 * `nparts` codes only chunks [lo, hi) of bt_share_range, then calls
 * exchange with its results (r[lo..hi) filled, status its own error or
 * BT_OK). On process 0 exchange must fill every other chunk's entry (buf
 * malloc'd, freed by the codec) and return the first error of any process;
 * on the others it sends and returns. Process 0's output is the container,
 * byte for byte what one process writes; the others' out_len is 0. Every
 * process must make the same bt_compress calls. nparts 1: off. */
typedef struct {
  uint8_t *buf;   /* coded bytes, size of them valid (unused if stored raw) */
  size_t size;    /* coded size; == len: the chunk is stored raw */
  uint64_t len;   /* raw bytes of the chunk */
  double logloss, coded_bits;
} bt_chunk_result;
typedef bt_error (*bt_exchange_fn)(void *user, bt_chunk_result *r, uint64_t n_chunks,
                                   bt_error status);
void bt_codec_set_share(bt_codec *c, int part, int nparts, bt_exchange_fn exchange, void *user);
/* Decompression across processes: process `part` of `nparts` decodes only
 * its run (bt_share_range) of each member's coded chunks, then calls
 * exchange(user, 0, res, spans, n, status): spans[0..n) are where each coded
 * chunk of the member lands in res; process 0 must receive the others'
 * runs. It is called again, verdict = 1, with process 0's verdict on the
 * member's CRC-32 as status (the others pass BT_OK; res, spans unused). Each call must return
 * the same status on every process (process 0's), so all stop together;
 * process 0's output is the decoded data, the others' is not. */
typedef struct {
  uint64_t at, len;
} bt_span;
typedef bt_error (*bt_dexchange_fn)(void *user, int verdict, uint8_t *res, const bt_span *spans,
                                    uint64_t n, bt_error status);
void bt_codec_set_decode_share(bt_codec *c, int part, int nparts, bt_dexchange_fn exchange,
                               void *user);

/* Chunks [*lo, *hi) of n that process part of nparts codes: even runs. */
static inline void bt_share_range(uint64_t n, int part, int nparts, uint64_t *lo, uint64_t *hi) {
  *lo = n * (uint64_t)part / (uint64_t)nparts;
  *hi = n * (uint64_t)(part + 1) / (uint64_t)nparts;
}

/* The model's identity. */
const bt_config *bt_codec_config(const bt_codec *c);
size_t bt_codec_num_params(const bt_codec *c);
/* SHA-256 of the model's weights: the identity stored in every container
 * (`bt-ckpt info` prints the same hash). */
const uint8_t *bt_codec_weights_sha256(const bt_codec *c);
/* The name containers record: the file's name without ".h5" ("bt-800K"),
 * cut to BT_MODEL_NAME_MAX printable bytes. */
const char *bt_codec_model_name(const bt_codec *c);

/* Threads for this codec's calls: n > 0 runs them on n threads and gives
 * the caller's OpenMP and BLAS settings back when each returns; 0 (the
 * default) uses whatever the caller's settings are. The output never
 * depends on it. */
void bt_codec_set_threads(bt_codec *c, int n);
/* The KV cache format later bt_compress calls use: 0, bfloat16 (container
 * version 3); 1, int8 (version 4: decoding reads about half the bytes per
 * decoded byte, so plain coding decodes up to 1.9x faster, while
 * compression keeps its speed, docs/decoding.md; rates within 0.01 points
 * of bfloat16's); BT_KV_AUTO (the default), int8 for plain coding and
 * bfloat16 for adaptive coding, where int8 gains nothing and version 3
 * keeps the file readable by bt before 2026-12-05. Decompression follows
 * each member's header. bt_codec_kv8 gives the setting; bt_codec_kv8_for,
 * the format a call would use (adaptive: whether bt_codec_set_adapt is on). */
#define BT_KV_AUTO (-1)
void bt_codec_set_kv8(bt_codec *c, int mode);
int bt_codec_kv8(const bt_codec *c);
int bt_codec_kv8_for(const bt_codec *c, int adaptive);

/* ---- Models by name and by hash ----
 * The search path, in order: each folder of $BT_MODEL_PATH (colon-
 * separated); share/bt/models (then share/bt) of the install the library
 * or program is in; the source tree's checkpoints/ when run from a build
 * folder beside it. Never the current folder: a name means the same
 * wherever a program runs. */
#define BT_MODEL_DIRS_MAX 16
/* Fills dirs with up to cap folders; returns how many. */
int bt_model_search_path(char (*dirs)[PATH_MAX], int cap);
/* path gets the file of model `name`: name itself if it holds a '/', else
 * bt-NAME.h5, NAME.h5 or NAME in the first folder that has one.
 * BT_ERR_NOT_FOUND if none does. */
bt_error bt_model_resolve(const char *name, char *path, size_t cap);
typedef struct {
  char name[64];       /* the file's name without ".h5" (cut to fit): "bt-800K" */
  char path[PATH_MAX];
  bt_config cfg;
  size_t params;
  uint8_t sha256[32];  /* of the weights */
  uint64_t bytes;      /* the file's size */
} bt_model_info;
/* Every model on the search path, one per weights hash (the first on the
 * path wins), sorted by name; `extra` (a checkpoint file, or NULL) comes
 * first. Writes up to cap entries; returns how many there are. */
int bt_model_list(const char *extra, bt_model_info *out, int cap);
/* The model whose weights have this hash (extra, then the search path,
 * then the retired/ subfolder of each folder on it: shipped models that a
 * newer one replaced, kept so that files made with them still decode;
 * never found by name or listed). BT_ERR_NOT_FOUND if none. */
bt_error bt_model_find_sha256(const uint8_t sha256[32], const char *extra, bt_model_info *out);

/* Largest container for n input bytes at this chunk size (0 = stream mode):
 * n + 64 + 4 * chunks. */
size_t bt_compress_bound(uint64_t n, uint32_t chunk);

/* Compresses in[0..n) with chunk size `chunk` (0 = stream mode: one stream,
 * each byte predicted from up to the model's context of preceding bytes).
 * out must hold bt_compress_bound(n, chunk) bytes; *out_len gets the size. */
bt_error bt_compress(bt_codec *c, const uint8_t *in, size_t n, uint32_t chunk, uint8_t *out,
                     size_t *out_len, bt_codec_stats *st, bt_progress_fn fn, void *user);

/* Decompresses in[len] into a malloc'd buffer *out (caller frees) of *n
 * bytes. The input is one container made with this codec's checkpoint, or
 * several back to back (`cat a.bt b.bt`), which decode to the concatenation
 * of their contents; bytes after the last member that are not a member are
 * BT_ERR_CORRUPT. Verifies each member's checksum. Hostile
 * input gives BT_ERR_CORRUPT / BT_ERR_FORMAT / BT_ERR_CHECKSUM; a container
 * from another checkpoint gives BT_ERR_MISMATCH naming the expected one. */
bt_error bt_decompress(bt_codec *c, const uint8_t *in, size_t len, uint8_t **out, size_t *n,
                       bt_codec_stats *st, bt_progress_fn fn, void *user);

/* The same through stdio streams: reads `in` to its end (a container holds
 * its size and chunk table up front, so the whole input is read first),
 * then writes the container, or the decoded bytes, to `out` and flushes it.
 * The bytes are bt_compress's and bt_decompress's. A read or write error is
 * BT_ERR_IO; nothing is written to out unless coding succeeded. */
bt_error bt_compress_stream(bt_codec *c, FILE *in, FILE *out, uint32_t chunk, bt_codec_stats *st,
                            bt_progress_fn fn, void *user);
bt_error bt_decompress_stream(bt_codec *c, FILE *in, FILE *out, bt_codec_stats *st, bt_progress_fn fn,
                              void *user);

#ifdef __cplusplus
}
#endif
#endif
