/*
 * prepare.c - the evaluation data sets as byte streams (prepare.h): image and
 * audio decoding through libjpeg, libpng and libFLAC (WAV by hand), the
 * paper's conversions, seeded random bytes, and a verified cache.
 *
 * Image and audio files are hostile input: every size is checked before use,
 * and the libraries' error paths (libjpeg and libpng longjmp out of a failing
 * decode) come back as bt_error codes naming the file, never a print or exit.
 */
#include "data/prepare.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <FLAC/stream_decoder.h>
#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "data/data.h"
#include "kernels/fileio.h"
#include "kernels/hash.h"

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

/* A decoded image may have at most this many pixels (a 16384 x 16384 photo):
 * a forged header cannot make us allocate more. */
#define MAX_PIXELS ((size_t)1 << 28)
/* Folders nested deeper than this are not walked (a symlink loop ends here). */
#define MAX_DEPTH 32
/* Bumped whenever a conversion changes, so old cache files are not reused. */
#define PREP_VERSION "bt-prepare 1"
#define CACHE_MAGIC "BTPREP1\n"
#define CACHE_HEADER (8 + 3 * 8 + 32)

static const char *const SET_NAMES[BT_SET__COUNT] = {"text", "image", "audio", "random"};

const char *bt_set_name(bt_set s) { return (unsigned)s < BT_SET__COUNT ? SET_NAMES[s] : "?"; }

int bt_set_parse(const char *name, bt_set *s) {
  for (int i = 0; name && i < BT_SET__COUNT; i++)
    if (strcmp(name, SET_NAMES[i]) == 0) {
      *s = (bt_set)i;
      return 0;
    }
  return -1;
}

bt_error bt_set_default_source(bt_set s, char *out, size_t cap) {
  int r;
  switch (s) {
  case BT_SET_TEXT: r = snprintf(out, cap, "wiki-valid10m"); break;
  case BT_SET_IMAGE: r = snprintf(out, cap, "%s/images/imagenet", bt_data_dir()); break;
  case BT_SET_AUDIO: r = snprintf(out, cap, "%s/audio/librispeech", bt_data_dir()); break;
  case BT_SET_RANDOM: r = snprintf(out, cap, "0"); break;
  default: return bt_fail(BT_ERR_ARG, "unknown data set %d", (int)s);
  }
  if (r < 0 || (size_t)r >= cap) return bt_fail(BT_ERR_ARG, "data folder path too long: %.200s", bt_data_dir());
  return BT_OK;
}

/* ======================================================================== */
/* A growable byte buffer                                                    */
/* ======================================================================== */

typedef struct {
  uint8_t *p;
  size_t n, cap;
} bytes_t;

/* Makes room for `more` bytes past b->n. */
static bt_error bytes_reserve(bytes_t *b, size_t more) {
  if (more <= b->cap - b->n) return BT_OK;
  if (more > SIZE_MAX / 2 - b->n) return bt_fail(BT_ERR_NOMEM, "data set too large");
  size_t cap = b->cap ? b->cap : 1 << 20;
  while (cap - b->n < more) cap *= 2;
  uint8_t *p = realloc(b->p, cap);
  if (!p) return bt_fail(BT_ERR_NOMEM, "cannot allocate %zu bytes", cap);
  b->p = p;
  b->cap = cap;
  return BT_OK;
}

/* ======================================================================== */
/* Images: JPEG (libjpeg) and PNG (libpng) to grayscale                      */
/* ======================================================================== */

static uint8_t gray_of(const uint8_t *rgb) {
  return (uint8_t)(((unsigned)rgb[0] + rgb[1] + rgb[2]) / 3); /* uint8(mean): truncated */
}

typedef struct {
  struct jpeg_error_mgr pub; /* first: libjpeg casts the pointer back */
  jmp_buf jb;
  char msg[JMSG_LENGTH_MAX];
} jpeg_err_t;

static void jpeg_on_error(j_common_ptr c) {
  jpeg_err_t *e = (jpeg_err_t *)c->err;
  c->err->format_message(c, e->msg);
  longjmp(e->jb, 1);
}
/* Warnings (recoverable damage) are not printed; but a file that ends early
 * is an error, as it is for PIL, not an image padded with gray. */
static void jpeg_on_message(j_common_ptr c, int level) {
  if (level < 0 && c->err->msg_code == JWRN_JPEG_EOF) c->err->error_exit(c);
}

static bt_error load_jpeg(FILE *f, const char *path, uint8_t **pix, int *w, int *h) {
  struct jpeg_decompress_struct ci;
  jpeg_err_t je;
  uint8_t *volatile img = NULL, *volatile row = NULL; /* volatile: they live across longjmp */
  ci.err = jpeg_std_error(&je.pub);
  je.pub.error_exit = jpeg_on_error;
  je.pub.emit_message = jpeg_on_message;
  if (setjmp(je.jb)) {
    jpeg_destroy_decompress(&ci);
    free(img);
    free(row);
    return bt_fail(BT_ERR_FORMAT, "%s: %s", path, je.msg);
  }
  jpeg_create_decompress(&ci);
  jpeg_stdio_src(&ci, f);
  jpeg_read_header(&ci, TRUE);
  if (ci.jpeg_color_space == JCS_CMYK || ci.jpeg_color_space == JCS_YCCK) {
    jpeg_destroy_decompress(&ci);
    return bt_fail(BT_ERR_FORMAT, "%s: CMYK JPEG images are not supported", path);
  }
  ci.out_color_space = ci.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress(&ci);
  const size_t W = ci.output_width, H = ci.output_height, C = (size_t)ci.output_components;
  if (W == 0 || H == 0 || W * H > MAX_PIXELS || (C != 1 && C != 3)) {
    jpeg_destroy_decompress(&ci);
    return bt_fail(BT_ERR_FORMAT, "%s: unsupported JPEG (%zux%zu, %zu components)", path, W, H, C);
  }
  img = malloc(W * H);
  row = malloc(W * C);
  if (!img || !row) {
    jpeg_destroy_decompress(&ci);
    free(img);
    free(row);
    return bt_fail(BT_ERR_NOMEM, "%s: cannot allocate %zux%zu pixels", path, W, H);
  }
  while (ci.output_scanline < H) {
    JSAMPROW r = row;
    size_t y = ci.output_scanline;
    if (jpeg_read_scanlines(&ci, &r, 1) != 1) break;
    for (size_t x = 0; x < W; x++) img[y * W + x] = C == 1 ? row[x] : gray_of(row + 3 * x);
  }
  int complete = ci.output_scanline == H;
  if (complete) jpeg_finish_decompress(&ci);
  jpeg_destroy_decompress(&ci);
  free(row);
  if (!complete) {
    free(img);
    return bt_fail(BT_ERR_CORRUPT, "%s: truncated JPEG", path);
  }
  *pix = img;
  *w = (int)W;
  *h = (int)H;
  return BT_OK;
}

typedef struct {
  char msg[256];
} png_err_t;

static void png_on_error(png_structp p, png_const_charp m) {
  png_err_t *e = png_get_error_ptr(p);
  snprintf(e->msg, sizeof e->msg, "%s", m);
  png_longjmp(p, 1);
}
static void png_on_warning(png_structp p, png_const_charp m) { (void)p, (void)m; }

static bt_error load_png(FILE *f, const char *path, uint8_t **pix, int *w, int *h) {
  png_err_t pe = {{0}};
  png_structp p = png_create_read_struct(PNG_LIBPNG_VER_STRING, &pe, png_on_error, png_on_warning);
  png_infop info = p ? png_create_info_struct(p) : NULL;
  uint8_t *volatile img = NULL, *volatile rgb = NULL;
  png_bytep *volatile rows = NULL;
  if (!info) {
    png_destroy_read_struct(p ? &p : NULL, NULL, NULL);
    return bt_fail(BT_ERR_NOMEM, "%s: cannot start libpng", path);
  }
  if (setjmp(png_jmpbuf(p))) {
    png_destroy_read_struct(&p, &info, NULL);
    free(img);
    free(rgb);
    free(rows);
    return bt_fail(BT_ERR_FORMAT, "%s: %s", path, pe.msg);
  }
  png_init_io(p, f);
  png_read_info(p, info);
  /* To 8-bit gray or RGB, as PIL's convert("RGB") sees it: palettes and
   * low bit depths expanded, 16-bit to the high byte, alpha dropped. */
  png_set_expand(p);
  png_set_strip_16(p);
  png_set_strip_alpha(p);
  png_set_interlace_handling(p);
  png_read_update_info(p, info);
  const size_t W = png_get_image_width(p, info), H = png_get_image_height(p, info);
  const size_t C = png_get_channels(p, info);
  if (W == 0 || H == 0 || W * H > MAX_PIXELS || (C != 1 && C != 3) || png_get_rowbytes(p, info) != W * C) {
    png_destroy_read_struct(&p, &info, NULL);
    return bt_fail(BT_ERR_FORMAT, "%s: unsupported PNG (%zux%zu, %zu channels)", path, W, H, C);
  }
  img = malloc(W * H);
  rgb = malloc(W * H * C);
  rows = malloc(H * sizeof *rows);
  if (!img || !rgb || !rows) png_error(p, "out of memory");
  for (size_t y = 0; y < H; y++) rows[y] = rgb + y * W * C;
  png_read_image(p, rows);
  png_read_end(p, NULL);
  png_destroy_read_struct(&p, &info, NULL);
  for (size_t i = 0; i < W * H; i++) img[i] = C == 1 ? rgb[i] : gray_of(rgb + 3 * i);
  free(rgb);
  free(rows);
  *pix = img;
  *w = (int)W;
  *h = (int)H;
  return BT_OK;
}

bt_error bt_image_load_gray(const char *path, uint8_t **pix, int *w, int *h) {
  if (!path || !pix || !w || !h) return bt_fail(BT_ERR_ARG, "bt_image_load_gray: NULL argument");
  *pix = NULL;
  *w = *h = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return bt_fail(BT_ERR_IO, "cannot open %s: %s", path, strerror(errno));
  uint8_t sig[8] = {0};
  size_t got = fread(sig, 1, sizeof sig, f);
  rewind(f);
  bt_error e;
  if (got >= 3 && sig[0] == 0xFF && sig[1] == 0xD8 && sig[2] == 0xFF)
    e = load_jpeg(f, path, pix, w, h);
  else if (got == 8 && png_sig_cmp(sig, 0, 8) == 0)
    e = load_png(f, path, pix, w, h);
  else
    e = bt_fail(BT_ERR_FORMAT, "%s: neither a JPEG nor a PNG image", path);
  fclose(f);
  return e;
}

size_t bt_image_patches(const uint8_t *pix, int w, int h, uint8_t *out) {
  if (w <= 0 || h <= 0) return 0;
  const size_t W = (size_t)w, pr = (size_t)h / BT_PATCH_ROWS, pc = W / BT_PATCH_COLS;
  for (size_t r = 0; out && r < pr; r++)
    for (size_t c = 0; c < pc; c++)
      for (size_t y = 0; y < BT_PATCH_ROWS; y++)
        memcpy(out + ((r * pc + c) * BT_PATCH_ROWS + y) * BT_PATCH_COLS,
               pix + (r * BT_PATCH_ROWS + y) * W + c * BT_PATCH_COLS, BT_PATCH_COLS);
  return pr * pc;
}

/* ======================================================================== */
/* Audio: FLAC (libFLAC) and WAV to unsigned 8-bit                           */
/* ======================================================================== */

/* The high byte of a bits-bit two's-complement sample, plus 128 (mod 256):
 * the same as audioop.bias(audioop.lin2lin(x, width, 1), 1, 128). */
static uint8_t high_u8(int32_t v, unsigned bits) {
  uint32_t u = (uint32_t)v;
  uint32_t hb = bits >= 8 ? u >> (bits - 8) : u << (8 - bits);
  return (uint8_t)((hb & 0xFF) ^ 0x80);
}

typedef struct {
  bytes_t out;
  uint32_t rate;
  bt_error err;                    /* first failure inside a callback */
  int stream_error;                /* libFLAC reported damage */
  FLAC__StreamDecoderErrorStatus status;
} flac_ctx;

static FLAC__StreamDecoderWriteStatus flac_write(const FLAC__StreamDecoder *d, const FLAC__Frame *fr,
                                                 const FLAC__int32 *const buf[], void *user) {
  (void)d;
  flac_ctx *c = user;
  const unsigned nch = fr->header.channels, bs = fr->header.blocksize, bits = fr->header.bits_per_sample;
  if (bits < 4 || bits > 32 || nch < 1 || nch > 8) {
    c->err = bt_fail(BT_ERR_FORMAT, "unsupported FLAC frame (%u bits, %u channels)", bits, nch);
    return FLAC__STREAM_DECODER_WRITE_STATUS_ABORT;
  }
  if ((c->err = bytes_reserve(&c->out, (size_t)bs * nch))) return FLAC__STREAM_DECODER_WRITE_STATUS_ABORT;
  uint8_t *o = c->out.p + c->out.n;
  for (unsigned i = 0; i < bs; i++)
    for (unsigned ch = 0; ch < nch; ch++) *o++ = high_u8(buf[ch][i], bits);
  c->out.n += (size_t)bs * nch;
  return FLAC__STREAM_DECODER_WRITE_STATUS_CONTINUE;
}

static void flac_meta(const FLAC__StreamDecoder *d, const FLAC__StreamMetadata *m, void *user) {
  (void)d;
  if (m->type == FLAC__METADATA_TYPE_STREAMINFO) ((flac_ctx *)user)->rate = m->data.stream_info.sample_rate;
}

static void flac_error(const FLAC__StreamDecoder *d, FLAC__StreamDecoderErrorStatus s, void *user) {
  (void)d;
  flac_ctx *c = user;
  if (!c->stream_error) c->status = s;
  c->stream_error = 1;
}

static bt_error load_flac(const char *path, uint8_t **out, size_t *n, uint32_t *rate) {
  FLAC__StreamDecoder *d = FLAC__stream_decoder_new();
  if (!d) return bt_fail(BT_ERR_NOMEM, "%s: cannot start libFLAC", path);
  flac_ctx c;
  memset(&c, 0, sizeof c);
  FLAC__stream_decoder_set_md5_checking(d, true);
  FLAC__StreamDecoderInitStatus is = FLAC__stream_decoder_init_file(d, path, flac_write, flac_meta, flac_error, &c);
  if (is != FLAC__STREAM_DECODER_INIT_STATUS_OK) {
    FLAC__stream_decoder_delete(d);
    return bt_fail(BT_ERR_IO, "%s: %s", path, FLAC__StreamDecoderInitStatusString[is]);
  }
  FLAC__bool ok = FLAC__stream_decoder_process_until_end_of_stream(d);
  FLAC__StreamDecoderState st = FLAC__stream_decoder_get_state(d);
  FLAC__bool md5_ok = FLAC__stream_decoder_finish(d); /* false: the MD5 in STREAMINFO does not match */
  FLAC__stream_decoder_delete(d);
  bt_error e = c.err;
  if (!e && c.stream_error)
    e = bt_fail(BT_ERR_CORRUPT, "%s: %s", path, FLAC__StreamDecoderErrorStatusString[c.status]);
  else if (!e && (!ok || st != FLAC__STREAM_DECODER_END_OF_STREAM))
    e = bt_fail(BT_ERR_FORMAT, "%s: %s", path, FLAC__StreamDecoderStateString[st]);
  else if (!e && !md5_ok)
    e = bt_fail(BT_ERR_CHECKSUM, "%s: decoded audio does not match the file's MD5", path);
  if (e) {
    free(c.out.p);
    return e;
  }
  *out = c.out.p;
  *n = c.out.n;
  if (rate) *rate = c.rate;
  return BT_OK;
}

static uint32_t le16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t le32(const uint8_t *p) { return le16(p) | le16(p + 2) << 16; }

/* RIFF/WAVE with integer PCM (format 1, or WAVE_FORMAT_EXTENSIBLE holding it). */
static bt_error load_wav(const char *path, uint8_t **out, size_t *n, uint32_t *rate) {
  uint8_t *f;
  size_t len;
  bt_error e = bt_data_load_range(path, 0, SIZE_MAX, &f, &len);
  if (e) return e;
  e = bt_fail(BT_ERR_FORMAT, "%s: not a RIFF/WAVE file", path);
  if (len < 12 || memcmp(f, "RIFF", 4) != 0 || memcmp(f + 8, "WAVE", 4) != 0) goto fail;
  unsigned channels = 0, bits = 0, align = 0;
  uint32_t sr = 0;
  const uint8_t *data = NULL;
  size_t data_len = 0;
  for (size_t pos = 12; pos + 8 <= len && !data;) {
    const uint8_t *id = f + pos;
    size_t sz = le32(f + pos + 4), body = pos + 8, avail = len - body;
    if (memcmp(id, "fmt ", 4) == 0) {
      if (sz < 16 || sz > avail) goto fail;
      unsigned tag = le16(f + body);
      channels = le16(f + body + 2);
      sr = le32(f + body + 4);
      align = le16(f + body + 12);
      bits = le16(f + body + 14);
      if (tag == 0xFFFE && sz >= 40) tag = le16(f + body + 24); /* the SubFormat GUID's first field */
      if (tag != 1 || channels == 0 || (bits != 8 && bits != 16 && bits != 24 && bits != 32) ||
          align != channels * (bits / 8)) {
        e = bt_fail(BT_ERR_FORMAT, "%s: unsupported WAV (format %u, %u channels, %u bits)", path, tag, channels,
                    bits);
        goto fail;
      }
    } else if (memcmp(id, "data", 4) == 0) {
      if (!align) goto fail; /* "fmt " must come first */
      data = f + body;
      data_len = sz < avail ? sz : avail; /* a streamed WAV may leave the size unset: read to the end */
    }
    if (sz > avail) break;
    pos = body + sz + (sz & 1);
  }
  if (!data) goto fail;
  const size_t bps = bits / 8, count = data_len / bps;
  uint8_t *o = malloc(count ? count : 1);
  if (!o) {
    e = bt_fail(BT_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, count);
    goto fail;
  }
  /* 8-bit WAV is unsigned already; wider samples are signed little-endian,
   * so their high byte is their last one. */
  for (size_t i = 0; i < count; i++) o[i] = bits == 8 ? data[i] : data[i * bps + bps - 1] ^ 0x80;
  free(f);
  *out = o;
  *n = count;
  if (rate) *rate = sr;
  return BT_OK;
fail:
  free(f);
  return e;
}

bt_error bt_audio_load_u8(const char *path, uint8_t **out, size_t *n, uint32_t *rate) {
  if (!path || !out || !n) return bt_fail(BT_ERR_ARG, "bt_audio_load_u8: NULL argument");
  *out = NULL;
  *n = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return bt_fail(BT_ERR_IO, "cannot open %s: %s", path, strerror(errno));
  uint8_t sig[4] = {0};
  size_t got = fread(sig, 1, sizeof sig, f);
  fclose(f);
  if (got == 4 && memcmp(sig, "fLaC", 4) == 0) return load_flac(path, out, n, rate);
  if (got == 4 && memcmp(sig, "RIFF", 4) == 0) return load_wav(path, out, n, rate);
  return bt_fail(BT_ERR_FORMAT, "%s: neither a FLAC nor a WAV file", path);
}

/* ======================================================================== */
/* Random bytes                                                              */
/* ======================================================================== */

void bt_random_fill(uint64_t seed, uint8_t *out, size_t n) {
  uint64_t s = seed;
  for (size_t i = 0; i < n; i += 8) {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull); /* SplitMix64 (Steele, Lea, Flood 2014) */
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    for (size_t k = 0; k < 8 && i + k < n; k++) out[i + k] = (uint8_t)(z >> (8 * k));
  }
}

/* ======================================================================== */
/* Listing a folder                                                          */
/* ======================================================================== */

typedef struct {
  char *rel;          /* path relative to the root */
  long long size;     /* bytes */
  long long mtime_ns;
} entry_t;

typedef struct {
  entry_t *e;
  size_t n, cap;
} listing_t;

static void listing_free(listing_t *l) {
  for (size_t i = 0; i < l->n; i++) free(l->e[i].rel);
  free(l->e);
  memset(l, 0, sizeof *l);
}

static int has_ext(const char *name, bt_set s) {
  const char *dot = strrchr(name, '.');
  if (!dot) return 0;
  static const char *const img[] = {".jpg", ".jpeg", ".jpe", ".png"}, *const aud[] = {".flac", ".wav"};
  const char *const *list = s == BT_SET_IMAGE ? img : aud;
  size_t k = s == BT_SET_IMAGE ? sizeof img / sizeof *img : sizeof aud / sizeof *aud;
  for (size_t i = 0; i < k; i++)
    if (strcasecmp(dot, list[i]) == 0) return 1;
  return 0;
}

static bt_error listing_add(listing_t *l, const char *rel, const struct stat *st) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 256;
    entry_t *e = realloc(l->e, cap * sizeof *e);
    if (!e) return bt_fail(BT_ERR_NOMEM, "folder listing");
    l->e = e;
    l->cap = cap;
  }
  entry_t *x = &l->e[l->n];
  if (!(x->rel = strdup(rel))) return bt_fail(BT_ERR_NOMEM, "folder listing");
  x->size = (long long)st->st_size;
  x->mtime_ns = (long long)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec;
  l->n++;
  return BT_OK;
}

/* Adds the wanted files under root/rel (rel "" for the root itself). */
static bt_error walk(const char *root, const char *rel, int depth, bt_set s, listing_t *l) {
  char dir[PATH_MAX];
  int r = snprintf(dir, sizeof dir, "%s%s%s", root, *rel ? "/" : "", rel);
  if (r < 0 || r >= (int)sizeof dir) return bt_fail(BT_ERR_ARG, "path too long under %.200s", root);
  DIR *d = opendir(dir);
  if (!d) return bt_fail(BT_ERR_IO, "cannot open folder %s: %s", dir, strerror(errno));
  bt_error e = BT_OK;
  struct dirent *de;
  while (!e && (de = readdir(d))) {
    if (de->d_name[0] == '.') continue; /* ".", "..", hidden files */
    char sub[PATH_MAX], full[PATH_MAX];
    r = snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", de->d_name);
    int r2 = snprintf(full, sizeof full, "%s/%s", root, sub);
    if (r < 0 || r >= (int)sizeof sub || r2 < 0 || r2 >= (int)sizeof full) {
      e = bt_fail(BT_ERR_ARG, "path too long under %.200s", root);
      break;
    }
    struct stat st;
    if (stat(full, &st) != 0) continue; /* a dangling link */
    if (S_ISDIR(st.st_mode) && depth < MAX_DEPTH)
      e = walk(root, sub, depth + 1, s, l);
    else if (S_ISREG(st.st_mode) && has_ext(de->d_name, s))
      e = listing_add(l, sub, &st);
  }
  closedir(d);
  return e;
}

static int cmp_rel(const void *a, const void *b) {
  return strcmp(((const entry_t *)a)->rel, ((const entry_t *)b)->rel);
}

/* The files of source: every image or audio file under a folder, sorted, or
 * the one file source names (rel is then the path itself). */
static bt_error list_source(const char *source, bt_set s, listing_t *l, int *is_file) {
  struct stat st;
  if (stat(source, &st) != 0) return bt_fail(BT_ERR_IO, "cannot open %s: %s", source, strerror(errno));
  *is_file = !S_ISDIR(st.st_mode);
  if (*is_file) return listing_add(l, source, &st);
  bt_error e = walk(source, "", 0, s, l);
  if (!e && l->n) qsort(l->e, l->n, sizeof *l->e, cmp_rel);
  return e;
}

/* ======================================================================== */
/* The cache                                                                 */
/* ======================================================================== */

static void put_le64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get_le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

/* The cache file for this set and listing: its name hashes the conversion's
 * version, the source's real path and every file's path, size and mtime,
 * so any change to the folder makes a new entry. */
static bt_error cache_path_for(bt_set s, const char *source, int is_file, const listing_t *l, char out[PATH_MAX]) {
  const char *cdir = bt_cache_dir();
  if (!cdir[0]) return bt_fail(BT_ERR_ARG, "no cache folder");
  char real[PATH_MAX];
  if (!realpath(source, real)) return bt_fail(BT_ERR_IO, "cannot resolve %s: %s", source, strerror(errno));
  bt_sha256_ctx c;
  bt_sha256_init(&c);
  bt_sha256_update(&c, PREP_VERSION, sizeof PREP_VERSION);
  bt_sha256_update(&c, bt_set_name(s), strlen(bt_set_name(s)) + 1);
  bt_sha256_update(&c, real, strlen(real) + 1);
  for (size_t i = 0; i < l->n; i++) {
    char line[64];
    int k = snprintf(line, sizeof line, "|%lld|%lld\n", l->e[i].size, l->e[i].mtime_ns);
    bt_sha256_update(&c, is_file ? "" : l->e[i].rel, is_file ? 0 : strlen(l->e[i].rel));
    bt_sha256_update(&c, line, (size_t)k);
  }
  uint8_t d[32];
  char hex[65];
  bt_sha256_final(&c, d);
  bt_sha256_hex(d, hex);
  int r = snprintf(out, PATH_MAX, "%s/prepared/%s-%.16s.bin", cdir, bt_set_name(s), hex);
  if (r < 0 || r >= PATH_MAX) return bt_fail(BT_ERR_ARG, "cache path too long under %.200s", cdir);
  return BT_OK;
}

/* Reads a cache file back; any damage (size, magic, hash) is a miss. */
static int cache_read(const char *path, uint8_t **bytes, size_t *n, bt_prep_info *info) {
  uint8_t *f;
  size_t len;
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= CACHE_HEADER) return 0;
  if (bt_data_load_range(path, 0, SIZE_MAX, &f, &len) != BT_OK) return 0;
  uint8_t d[32];
  int ok = len > CACHE_HEADER && memcmp(f, CACHE_MAGIC, 8) == 0 && get_le64(f + 8) == len - CACHE_HEADER;
  if (ok) {
    bt_sha256(f + CACHE_HEADER, len - CACHE_HEADER, d);
    ok = memcmp(d, f + 32, 32) == 0;
  }
  if (!ok) {
    free(f);
    return 0;
  }
  info->n_files = get_le64(f + 16);
  info->n_samples = get_le64(f + 24);
  memcpy(info->sha256, d, 32);
  *n = len - CACHE_HEADER;
  memmove(f, f + CACHE_HEADER, *n);
  uint8_t *shrunk = realloc(f, *n);
  *bytes = shrunk ? shrunk : f;
  return 1;
}

/* Writes the cache file atomically (temporary file, then rename). Failing
 * is not an error: the cache only saves the next run a decode. */
static void cache_write(const char *path, const uint8_t *p, size_t n, const bt_prep_info *info) {
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (!slash) return;
  *slash = '\0';
  bt_atomic_file af;
  if (bt_mkdir_p(dir) != BT_OK || bt_atomic_begin(&af, path) != BT_OK) return;
  fchmod(af.fd, 0644);
  uint8_t h[CACHE_HEADER];
  memcpy(h, CACHE_MAGIC, 8);
  put_le64(h + 8, n);
  put_le64(h + 16, info->n_files);
  put_le64(h + 24, info->n_samples);
  memcpy(h + 32, info->sha256, 32);
  FILE *f = fdopen(af.fd, "wb");
  if (!f) {
    bt_atomic_abort(&af);
    return;
  }
  int bad = fwrite(h, 1, sizeof h, f) != sizeof h || fwrite(p, 1, n, f) != n || fflush(f) != 0 ||
            fsync(fileno(f)) != 0;
  bad |= fclose(f) != 0;
  af.fd = -1; /* closed and synced above */
  if (bad)
    bt_atomic_abort(&af);
  else
    (void)bt_atomic_commit(&af, 1);
}

/* ======================================================================== */
/* bt_prepare                                                                */
/* ======================================================================== */

/* Decodes every listed file and appends its patches or chunks to out. */
static bt_error convert_files(bt_set s, const char *root, int is_file, const listing_t *l, bytes_t *out,
                              bt_prep_info *info) {
  for (size_t i = 0; i < l->n; i++) {
    char path[PATH_MAX];
    int r = is_file ? snprintf(path, sizeof path, "%s", l->e[i].rel)
                    : snprintf(path, sizeof path, "%s/%s", root, l->e[i].rel);
    if (r < 0 || r >= (int)sizeof path) return bt_fail(BT_ERR_ARG, "path too long under %.200s", root);
    bt_error e;
    if (s == BT_SET_IMAGE) {
      uint8_t *pix;
      int w, h;
      if ((e = bt_image_load_gray(path, &pix, &w, &h))) return e;
      size_t k = bt_image_patches(pix, w, h, NULL);
      if (!(e = bytes_reserve(out, k * BT_PREP_CHUNK))) {
        bt_image_patches(pix, w, h, out->p + out->n);
        out->n += k * BT_PREP_CHUNK;
      }
      free(pix);
    } else {
      uint8_t *smp;
      size_t n;
      if ((e = bt_audio_load_u8(path, &smp, &n, NULL))) return e;
      size_t keep = n / BT_PREP_CHUNK * BT_PREP_CHUNK; /* each utterance on its own: its tail dropped */
      info->n_samples += n;
      if (!(e = bytes_reserve(out, keep))) {
        if (keep) memcpy(out->p + out->n, smp, keep);
        out->n += keep;
      }
      free(smp);
    }
    if (e) return e;
    info->n_files++;
  }
  return BT_OK;
}

static bt_error prepare_files(bt_set s, const char *source, int use_cache, uint8_t **bytes, size_t *n,
                              bt_prep_info *info) {
  listing_t l;
  memset(&l, 0, sizeof l);
  int is_file = 0;
  bt_error e = list_source(source, s, &l, &is_file);
  if (!e && l.n == 0)
    e = bt_fail(BT_ERR_TOO_SHORT, "no %s files under %s", s == BT_SET_IMAGE ? "JPEG or PNG" : "FLAC or WAV",
                source);
  if (!e && use_cache && cache_path_for(s, source, is_file, &l, info->cache_path) == BT_OK &&
      cache_read(info->cache_path, bytes, n, info)) {
    info->from_cache = 1;
    listing_free(&l);
    return BT_OK;
  }
  bytes_t out = {0};
  if (!e) e = convert_files(s, source, is_file, &l, &out, info);
  listing_free(&l);
  if (!e && out.n == 0)
    e = bt_fail(BT_ERR_TOO_SHORT, "%s: no file holds a whole %s", source,
                s == BT_SET_IMAGE ? "32x64 patch" : "2048-sample chunk");
  if (e) {
    free(out.p);
    info->cache_path[0] = '\0';
    return e;
  }
  bt_sha256(out.p, out.n, info->sha256);
  if (use_cache && info->cache_path[0]) cache_write(info->cache_path, out.p, out.n, info);
  *bytes = out.p;
  *n = out.n;
  return BT_OK;
}

bt_error bt_prepare(bt_set s, const char *source, int use_cache, size_t random_bytes,
                    uint8_t **bytes, size_t *n, bt_prep_info *info) {
  if (!bytes || !n) return bt_fail(BT_ERR_ARG, "bt_prepare: NULL output");
  *bytes = NULL;
  *n = 0;
  bt_prep_info local;
  if (!info) info = &local;
  memset(info, 0, sizeof *info);
  char def[PATH_MAX];
  if (!source) {
    bt_error e = bt_set_default_source(s, def, sizeof def);
    if (e) return e;
    source = def;
  }
  bt_error e = BT_OK;
  switch (s) {
  case BT_SET_TEXT:
    e = bt_data_load(source, bytes, n);
    break;
  case BT_SET_IMAGE:
  case BT_SET_AUDIO:
    return prepare_files(s, source, use_cache, bytes, n, info);
  case BT_SET_RANDOM: {
    char *end;
    errno = 0;
    unsigned long long seed = strtoull(source, &end, 10);
    if (end == source || *end || errno || source[0] == '-')
      return bt_fail(BT_ERR_ARG, "random: the source is a seed (a number), not \"%.100s\"", source);
    size_t len = random_bytes ? random_bytes : BT_RANDOM_DEFAULT_BYTES;
    if (!(*bytes = malloc(len))) return bt_fail(BT_ERR_NOMEM, "cannot allocate %zu bytes", len);
    bt_random_fill((uint64_t)seed, *bytes, len);
    *n = len;
    break;
  }
  default:
    return bt_fail(BT_ERR_ARG, "unknown data set %d", (int)s);
  }
  if (!e) bt_sha256(*bytes, *n, info->sha256);
  return e;
}
