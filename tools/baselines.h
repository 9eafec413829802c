/*
 * baselines.h - the classical compressors of the paper's Table 1 (and two
 * extra rows), each run through its own library exactly as configured here:
 *
 *   gzip   zlib, level 9, gzip wrapper (windowBits 15 + 16, memLevel 8):
 *          what Python's gzip.compress(data, 9) and zlib.compressobj(9,
 *          DEFLATED, 31) make
 *   lzma2  liblzma, .xz container, preset 6, CRC-64 check: Python's
 *          lzma.compress(data)
 *   png    libpng: the bytes as an 8-bit grayscale image, as close to square as
 *          the size allows (width = the largest divisor <= round(sqrt(n)),
 *          so a 2048-byte chunk is 32 wide x 64 high, as in the reference),
 *          zlib level 9, all five filters tried per row (adaptive)
 *   flac   libFLAC: the bytes as 8-bit mono audio at 16 kHz (sample = byte -
 *          128), compression level 8, the highest standard one
 *   zstd   libzstd, level 19, one frame (content size, no checksum)
 *   bzip2  libbz2, block size 9 (900 kB)
 *
 * Only bt-eval links these libraries; the coder never does.
 */
#ifndef BT_BASELINES_H
#define BT_BASELINES_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/error.h"

typedef enum { BT_BL_GZIP = 0, BT_BL_LZMA2, BT_BL_PNG, BT_BL_FLAC, BT_BL_ZSTD, BT_BL_BZIP2, BT_BL__COUNT } bt_baseline;

/* "gzip", "lzma2", "png", "flac", "zstd", "bzip2"; "?" otherwise. */
const char *bt_baseline_name(bt_baseline b);
/* 0 and *b set, or -1 if name is none of the above. */
int bt_baseline_parse(const char *name, bt_baseline *b);

/* Reusable state of one thread: output buffer and compressor contexts. */
typedef struct bt_bl_ctx bt_bl_ctx;
bt_error bt_bl_ctx_create(bt_bl_ctx **out);
/* Frees; NULL is fine. */
void bt_bl_ctx_free(bt_bl_ctx *c);

/* Compresses in[0..n) (n >= 1) on its own with baseline b and sets *size to
 * the compressed size in bytes. *out (may be NULL) points at the compressed
 * bytes, owned by c and valid until its next call. Errors: BT_ERR_ARG (n = 0
 * or too large for the library), BT_ERR_NOMEM, and BT_ERR_IO for a library
 * that fails, with its message in the detail. */
bt_error bt_baseline_compress(bt_bl_ctx *c, bt_baseline b, const uint8_t *in, size_t n, size_t *size,
                              const uint8_t **out);

/* The reference's image shape for n bytes: *w = the largest divisor of n
 * that is <= round(sqrt(n)), *h = n / *w. */
void bt_png_shape(size_t n, size_t *w, size_t *h);

#endif
