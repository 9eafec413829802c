/*
 * baselines.c - gzip, LZMA2, PNG, FLAC, zstd and bzip2 through their own
 * libraries, configured as baselines.h says. Each call compresses one buffer
 * from a fresh state (a reused context is reset first, which gives the same
 * bytes as a new one), so a chunk's size never depends on the chunks before it.
 */
#include "tools/baselines.h"

#include <bzlib.h>
#include <lzma.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include <FLAC/stream_encoder.h>

static const char *const NAMES[BT_BL__COUNT] = {"gzip", "lzma2", "png", "flac", "zstd", "bzip2"};

const char *bt_baseline_name(bt_baseline b) { return (unsigned)b < BT_BL__COUNT ? NAMES[b] : "?"; }

int bt_baseline_parse(const char *name, bt_baseline *b) {
  for (int i = 0; name && i < BT_BL__COUNT; i++)
    if (strcmp(name, NAMES[i]) == 0) {
      *b = (bt_baseline)i;
      return 0;
    }
  return -1;
}

struct bt_bl_ctx {
  uint8_t *buf; /* output; every compressor writes here */
  size_t cap, len;
  z_stream z;
  int z_ready;
  lzma_stream xz;
  int xz_ready;
  ZSTD_CCtx *zstd;
  FLAC__int32 *samples;
  size_t samples_cap;
};

bt_error bt_bl_ctx_create(bt_bl_ctx **out) {
  bt_bl_ctx *c = calloc(1, sizeof *c);
  if (!c) return bt_fail(BT_ERR_NOMEM, "baseline context");
  c->xz = (lzma_stream)LZMA_STREAM_INIT;
  *out = c;
  return BT_OK;
}

void bt_bl_ctx_free(bt_bl_ctx *c) {
  if (!c) return;
  if (c->z_ready) deflateEnd(&c->z);
  if (c->xz_ready) lzma_end(&c->xz);
  ZSTD_freeCCtx(c->zstd);
  free(c->samples);
  free(c->buf);
  free(c);
}

/* Makes c->buf hold at least cap bytes; c->len = 0. */
static bt_error out_reserve(bt_bl_ctx *c, size_t cap) {
  c->len = 0;
  if (cap <= c->cap) return BT_OK;
  uint8_t *p = realloc(c->buf, cap);
  if (!p) return bt_fail(BT_ERR_NOMEM, "cannot allocate %zu bytes", cap);
  c->buf = p;
  c->cap = cap;
  return BT_OK;
}

/* Appends to c->buf, growing it (the streaming writers' sink). */
static int out_append(bt_bl_ctx *c, const void *p, size_t n) {
  if (n > c->cap - c->len) {
    size_t cap = c->cap ? c->cap : 4096;
    while (cap - c->len < n) cap *= 2;
    uint8_t *q = realloc(c->buf, cap);
    if (!q) return -1;
    c->buf = q;
    c->cap = cap;
  }
  memcpy(c->buf + c->len, p, n);
  c->len += n;
  return 0;
}

/* ==================================================================== */
/* gzip, LZMA2, zstd, bzip2: one-shot buffer calls                      */
/* ==================================================================== */

static bt_error run_gzip(bt_bl_ctx *c, const uint8_t *in, size_t n) {
  if (n > UINT32_MAX) return bt_fail(BT_ERR_ARG, "gzip: %zu bytes is too large for one call", n);
  if (!c->z_ready) {
    memset(&c->z, 0, sizeof c->z);
    if (deflateInit2(&c->z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
      return bt_fail(BT_ERR_NOMEM, "gzip: deflateInit2 failed");
    c->z_ready = 1;
  } else if (deflateReset(&c->z) != Z_OK) {
    return bt_fail(BT_ERR_IO, "gzip: deflateReset failed");
  }
  bt_error e = out_reserve(c, deflateBound(&c->z, (uLong)n));
  if (e) return e;
  c->z.next_in = (Bytef *)in;
  c->z.avail_in = (uInt)n;
  c->z.next_out = c->buf;
  c->z.avail_out = (uInt)(c->cap < UINT32_MAX ? c->cap : UINT32_MAX);
  int r = deflate(&c->z, Z_FINISH);
  if (r != Z_STREAM_END) return bt_fail(BT_ERR_IO, "gzip: deflate returned %d (%s)", r, c->z.msg ? c->z.msg : "");
  c->len = c->z.total_out;
  return BT_OK;
}

/* The streaming encoder, as Python's lzma.compress: its block header holds
 * no sizes. (lzma_easy_buffer_encode writes them, which costs a few bytes a
 * chunk that the header correction does not take back.) Re-initialising the
 * same lzma_stream reuses its memory: the same bytes, without a fresh 94 MiB
 * match finder per chunk. */
static bt_error run_lzma2(bt_bl_ctx *c, const uint8_t *in, size_t n) {
  bt_error e = out_reserve(c, lzma_stream_buffer_bound(n));
  if (e) return e;
  lzma_ret r = lzma_easy_encoder(&c->xz, 6, LZMA_CHECK_CRC64);
  if (r != LZMA_OK) return bt_fail(r == LZMA_MEM_ERROR ? BT_ERR_NOMEM : BT_ERR_IO, "lzma2: liblzma error %d", (int)r);
  c->xz_ready = 1;
  c->xz.next_in = in;
  c->xz.avail_in = n;
  c->xz.next_out = c->buf;
  c->xz.avail_out = c->cap;
  r = lzma_code(&c->xz, LZMA_FINISH);
  if (r != LZMA_STREAM_END) return bt_fail(BT_ERR_IO, "lzma2: liblzma error %d", (int)r);
  c->len = c->cap - c->xz.avail_out;
  return BT_OK;
}

static bt_error run_zstd(bt_bl_ctx *c, const uint8_t *in, size_t n) {
  if (!c->zstd && !(c->zstd = ZSTD_createCCtx())) return bt_fail(BT_ERR_NOMEM, "zstd: cannot create a context");
  bt_error e = out_reserve(c, ZSTD_compressBound(n));
  if (e) return e;
  /* ZSTD_compressCCtx resets every parameter: a fresh frame at level 19 */
  size_t r = ZSTD_compressCCtx(c->zstd, c->buf, c->cap, in, n, 19);
  if (ZSTD_isError(r)) return bt_fail(BT_ERR_IO, "zstd: %s", ZSTD_getErrorName(r));
  c->len = r;
  return BT_OK;
}

static bt_error run_bzip2(bt_bl_ctx *c, const uint8_t *in, size_t n) {
  if (n > UINT32_MAX / 2) return bt_fail(BT_ERR_ARG, "bzip2: %zu bytes is too large for one call", n);
  bt_error e = out_reserve(c, n + n / 100 + 601); /* libbz2's documented bound */
  if (e) return e;
  unsigned len = (unsigned)c->cap;
  int r = BZ2_bzBuffToBuffCompress((char *)c->buf, &len, (char *)in, (unsigned)n, 9, 0, 0);
  if (r != BZ_OK) return bt_fail(r == BZ_MEM_ERROR ? BT_ERR_NOMEM : BT_ERR_IO, "bzip2: libbz2 error %d", r);
  c->len = len;
  return BT_OK;
}

/* ==================================================================== */
/* PNG: the bytes as an 8-bit grayscale image                           */
/* ==================================================================== */

void bt_png_shape(size_t n, size_t *w, size_t *h) {
  size_t a = (size_t)llround(sqrt((double)n)); /* as the reference: round(sqrt(n)), then down to a divisor */
  while (a > 1 && n % a) a--;
  if (a == 0) a = 1;
  *w = a;
  *h = n / a;
}

typedef struct {
  bt_bl_ctx *c;
  int oom;
  char msg[256];
} png_sink_t;

static void png_sink_write(png_structp p, png_bytep data, size_t n) {
  png_sink_t *s = png_get_io_ptr(p);
  if (out_append(s->c, data, n)) {
    s->oom = 1;
    png_error(p, "out of memory");
  }
}
static void png_sink_flush(png_structp p) { (void)p; }
static void png_on_error(png_structp p, png_const_charp m) {
  png_sink_t *s = png_get_error_ptr(p);
  snprintf(s->msg, sizeof s->msg, "%s", m);
  png_longjmp(p, 1);
}
static void png_on_warning(png_structp p, png_const_charp m) { (void)p, (void)m; }

static bt_error run_png(bt_bl_ctx *c, const uint8_t *in, size_t n) {
  size_t w, h;
  bt_png_shape(n, &w, &h);
  if (w > PNG_UINT_31_MAX || h > PNG_UINT_31_MAX) return bt_fail(BT_ERR_ARG, "png: %zu bytes is too large", n);
  c->len = 0;
  png_sink_t s = {c, 0, {0}};
  png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, &s, png_on_error, png_on_warning);
  png_infop info = p ? png_create_info_struct(p) : NULL;
  if (!info) {
    png_destroy_write_struct(p ? &p : NULL, NULL);
    return bt_fail(BT_ERR_NOMEM, "png: cannot start libpng");
  }
  if (setjmp(png_jmpbuf(p))) {
    png_destroy_write_struct(&p, &info);
    return bt_fail(s.oom ? BT_ERR_NOMEM : BT_ERR_IO, "png: %s", s.msg);
  }
  png_set_user_limits(p, PNG_UINT_31_MAX, PNG_UINT_31_MAX); /* a tall image of a whole data set is fine */
  png_set_write_fn(p, &s, png_sink_write, png_sink_flush);
  png_set_IHDR(p, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_set_compression_level(p, 9);
  png_set_filter(p, PNG_FILTER_TYPE_BASE, PNG_ALL_FILTERS);
  png_write_info(p, info);
  for (size_t y = 0; y < h; y++) png_write_row(p, in + y * w);
  png_write_end(p, info);
  png_destroy_write_struct(&p, &info);
  return BT_OK;
}

/* ==================================================================== */
/* FLAC: the bytes as 8-bit mono audio at 16 kHz                        */
/* ==================================================================== */

static FLAC__StreamEncoderWriteStatus flac_sink(const FLAC__StreamEncoder *enc, const FLAC__byte buf[], size_t n,
                                               uint32_t samples, uint32_t frame, void *user) {
  (void)enc, (void)samples, (void)frame;
  return out_append(user, buf, n) ? FLAC__STREAM_ENCODER_WRITE_STATUS_FATAL_ERROR
                                   : FLAC__STREAM_ENCODER_WRITE_STATUS_OK;
}

static bt_error run_flac(bt_bl_ctx *c, const uint8_t *in, size_t n) {
  if (n > c->samples_cap) {
    FLAC__int32 *s = realloc(c->samples, n * sizeof *s);
    if (!s) return bt_fail(BT_ERR_NOMEM, "flac: cannot allocate %zu samples", n);
    c->samples = s;
    c->samples_cap = n;
  }
  for (size_t i = 0; i < n; i++) c->samples[i] = (FLAC__int32)in[i] - 128; /* unsigned 8-bit PCM -> signed */
  c->len = 0;
  FLAC__StreamEncoder *enc = FLAC__stream_encoder_new();
  if (!enc) return bt_fail(BT_ERR_NOMEM, "flac: cannot create an encoder");
  FLAC__bool ok = FLAC__stream_encoder_set_channels(enc, 1) && FLAC__stream_encoder_set_bits_per_sample(enc, 8) &&
                  FLAC__stream_encoder_set_sample_rate(enc, 16000) &&
                  FLAC__stream_encoder_set_compression_level(enc, 8) &&
                  FLAC__stream_encoder_set_total_samples_estimate(enc, n);
  FLAC__StreamEncoderInitStatus is = FLAC__STREAM_ENCODER_INIT_STATUS_ENCODER_ERROR;
  if (ok) is = FLAC__stream_encoder_init_stream(enc, flac_sink, NULL, NULL, NULL, c);
  bt_error e = BT_OK;
  if (!ok || is != FLAC__STREAM_ENCODER_INIT_STATUS_OK) {
    e = bt_fail(BT_ERR_IO, "flac: %s", FLAC__StreamEncoderInitStatusString[is]);
  } else {
    /* in pieces: libFLAC takes a uint32_t sample count */
    for (size_t i = 0; i < n && ok; i += 1u << 20)
      ok = FLAC__stream_encoder_process_interleaved(enc, c->samples + i,
                                                    (uint32_t)(n - i < (1u << 20) ? n - i : (1u << 20)));
    ok = FLAC__stream_encoder_finish(enc) && ok;
    if (!ok)
      e = bt_fail(BT_ERR_IO, "flac: %s",
                  FLAC__StreamEncoderStateString[FLAC__stream_encoder_get_state(enc)]);
  }
  FLAC__stream_encoder_delete(enc);
  return e;
}

/* ==================================================================== */

bt_error bt_baseline_compress(bt_bl_ctx *c, bt_baseline b, const uint8_t *in, size_t n, size_t *size,
                              const uint8_t **out) {
  if (!c || !in || !size || n == 0) return bt_fail(BT_ERR_ARG, "%s: empty input", bt_baseline_name(b));
  bt_error e;
  switch (b) {
  case BT_BL_GZIP: e = run_gzip(c, in, n); break;
  case BT_BL_LZMA2: e = run_lzma2(c, in, n); break;
  case BT_BL_PNG: e = run_png(c, in, n); break;
  case BT_BL_FLAC: e = run_flac(c, in, n); break;
  case BT_BL_ZSTD: e = run_zstd(c, in, n); break;
  case BT_BL_BZIP2: e = run_bzip2(c, in, n); break;
  default: return bt_fail(BT_ERR_ARG, "unknown baseline %d", (int)b);
  }
  if (e) return e;
  *size = c->len;
  if (out) *out = c->buf;
  return BT_OK;
}
