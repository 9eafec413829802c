/*
 * fuzz_container.c - libFuzzer target for the container parser and the range
 * decoder, with a small deterministic stand-in for the transformer: an
 * adaptive order-0 byte model whose logits come from its counts and go
 * through bt_quantize_logits, as the real model's do.
 *
 * Each input is parsed as it is, then once more with its header CRC
 * recomputed, so the fuzzer also gets past the checksum to the size checks
 * and the decoder. Whatever parses is decoded chunk by chunk.
 *
 * Builds:
 *   libFuzzer:  clang -g -O1 -fsanitize=fuzzer,address,undefined -I. \
 *                 tests/fuzz_container.c coder/rc.c coder/quant.c \
 *                 coder/container.c kernels/hash.c kernels/error.c -lm
 *   standalone: -DBT_FUZZ_STANDALONE gives a main that runs files or folders:
 *                 fuzz_container [FILE|DIR]...
 *               Names say what to expect: "ok-*" must parse, decode and match
 *               its CRC; "bad-format-*" / "bad-corrupt-*" must fail to parse
 *               with that error; other names are only run.
 *                 fuzz_container --make-corpus DIR   writes the seed corpus.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coder/coder.h"
#include "kernels/hash.h"

/* A hostile header can claim 2^48 bytes; decoding is skipped above this. */
#define FUZZ_MAX_DECODE 8192u
/* The model refreshes its table every this many bytes: the quantiser is the
 * slow part under the sanitizers. */
#define MODEL_REFRESH 8

/* ---- the stand-in model ---- */

typedef struct {
  uint32_t count[256];
  uint32_t cmax;
} order0;

static void model_reset(order0 *m) {
  for (int i = 0; i < 256; i++) m->count[i] = 1;
  m->cmax = 1;
}


/* log2(x) for x >= 1, piecewise linear between powers of two, from the
 * float's bits: exact integer and IEEE steps, so every machine agrees. */
static float approx_log2(uint32_t x) {
  float f = (float)x;
  uint32_t b;
  memcpy(&b, &f, sizeof b);
  return (float)((int)(b >> 23) - 127) + (float)(b & 0x7FFFFF) * (1.0f / 8388608.0f);
}

/* Logits = ln(count), roughly: softmax gives probabilities ~ counts. */
static void model_table(const order0 *m, uint32_t freq[256], uint32_t cum[257]) {
  float l[256];
  for (int i = 0; i < 256; i++) l[i] = 0.6931472f * approx_log2(m->count[i]);
  bt_quantize_logits(l, freq);
  bt_freq_cumulative(freq, cum);
}

static void model_update(order0 *m, int sym) {
  m->count[sym] += 16;
  if (m->count[sym] > m->cmax) m->cmax = m->count[sym];
  if (m->cmax > 4000) {
    m->cmax = 1;
    for (int i = 0; i < 256; i++) {
      m->count[i] = (m->count[i] + 1) / 2;
      if (m->count[i] > m->cmax) m->cmax = m->count[i];
    }
  }
}

/* ---- decode what parses ---- */

typedef struct {
  int parsed;      /* bt_container_parse returned BT_OK */
  bt_error err;    /* its result */
  int decoded;     /* every chunk decoded (not skipped for size) */
  int crc_ok;      /* the decoded data matched orig_crc */
} fuzz_result;

static fuzz_result run_one(const uint8_t *data, size_t size) {
  fuzz_result r = {0, BT_OK, 0, 0};
  bt_container_header h;
  uint64_t *off = NULL;
  r.err = bt_container_parse(data, size, &h, &off);
  if (r.err != BT_OK) {
    if (off) abort(); /* must be NULL on error */
    return r;
  }
  r.parsed = 1;
  /* What the parser promises, checked independently. */
  const size_t hb = h.version == 2 ? BT_CONTAINER_V2_HEADER_BYTES : BT_CONTAINER_HEADER_BYTES;
  if (off[0] != hb + 4 * h.n_chunks || off[h.n_chunks] != size) abort();
  if (h.n_chunks != bt_container_n_chunks(h.orig_size, h.chunk, h.stream)) abort();
  if ((uint64_t)size > bt_container_bound(h.orig_size, h.chunk, h.stream)) abort();
  for (uint64_t i = 0; i < h.n_chunks; i++)
    if (off[i + 1] < off[i] || off[i + 1] - off[i] > bt_container_chunk_len(&h, i)) abort();

  if (h.orig_size <= FUZZ_MAX_DECODE) {
    uint8_t *out = malloc(h.orig_size ? h.orig_size : 1);
    if (!out) abort();
    uint64_t pos = 0;
    order0 m;
    uint32_t freq[256], cum[257];
    for (uint64_t c = 0; c < h.n_chunks; c++) {
      uint64_t clen = bt_container_chunk_len(&h, c), psz = off[c + 1] - off[c];
      if (psz == clen) {
        memcpy(out + pos, data + off[c], clen);
      } else {
        bt_rc_dec d;
        bt_rc_dec_init(&d, data + off[c], psz);
        model_reset(&m);
        for (uint64_t i = 0; i < clen; i++) {
          if (i % MODEL_REFRESH == 0) model_table(&m, freq, cum);
          int s = bt_rc_decode(&d, cum);
          out[pos + i] = (uint8_t)s;
          model_update(&m, s);
        }
      }
      pos += clen;
    }
    if (pos != h.orig_size) abort();
    r.decoded = 1;
    r.crc_ok = bt_crc32(0, out, pos) == h.orig_crc;
    free(out);
  }
  free(off);
  return r;
}

/* The input with its header CRC made right, so the checks behind it run. */
static void run_crc_fixed(const uint8_t *data, size_t size) {
  const size_t hb = size > 4 && data[4] == 2 ? BT_CONTAINER_V2_HEADER_BYTES : BT_CONTAINER_HEADER_BYTES;
  if (size < hb) return;
  uint64_t orig = 0;
  for (int i = 5; i >= 0; i--) orig = (orig << 8) | data[50 + i];
  uint32_t chunk = (uint32_t)data[46] | (uint32_t)data[47] << 8 | (uint32_t)data[48] << 16 |
                   (uint32_t)data[49] << 24;
  uint64_t n = bt_container_n_chunks(orig, chunk, data[5] & 1);
  if (n == UINT64_MAX || n > (size - hb) / 4) return;
  uint8_t *c = malloc(size);
  if (!c) abort();
  memcpy(c, data, size);
  uint32_t crc = bt_crc32(bt_crc32(0, c, hb - 4), c + hb, 4 * (size_t)n);
  for (int i = 0; i < 4; i++) c[hb - 4 + i] = (uint8_t)(crc >> (8 * i));
  run_one(c, size);
  free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_result r = run_one(data, size);
  if (!r.parsed) run_crc_fixed(data, size);
  return 0;
}

#ifdef BT_FUZZ_STANDALONE
/* ====================================================================== */
#include <dirent.h>
#include <sys/stat.h>

/* ---- seed corpus: a compressor for the stand-in model ---- */

static uint8_t *compress(const uint8_t *src, uint64_t n, uint32_t chunk, int stream,
                         size_t *out_len) {
  bt_container_header h;
  memset(&h, 0, sizeof h);
  bt_sha256("fuzz stand-in model", 19, h.ckpt_sha256);
  h.n_layer = 1; h.n_head = 1; h.d_model = 256; h.ctx = 0;
  h.chunk = stream ? 0 : chunk;
  h.stream = stream;
  h.orig_size = n;
  h.orig_crc = bt_crc32(0, src, n);
  h.n_chunks = bt_container_n_chunks(n, h.chunk, stream);
  size_t hs = bt_container_header_size(h.n_chunks);
  uint8_t *out = malloc(hs + n + 1);
  uint32_t *sizes = malloc((h.n_chunks + 1) * sizeof *sizes);
  if (!out || !sizes) abort();
  size_t pos = hs;
  uint32_t freq[256], cum[257];
  for (uint64_t c = 0; c < h.n_chunks; c++) {
    const uint8_t *p = src + (stream ? 0 : c * chunk);
    uint64_t len = bt_container_chunk_len(&h, c);
    bt_rc_enc e;
    bt_rc_enc_init(&e, out + pos, len - 1); /* coded only if strictly smaller */
    order0 m;
    model_reset(&m);
    for (uint64_t i = 0; i < len && !bt_rc_enc_overflowed(&e); i++) {
      if (i % MODEL_REFRESH == 0) model_table(&m, freq, cum);
      bt_rc_encode(&e, cum[p[i]], freq[p[i]]);
      model_update(&m, p[i]);
    }
    size_t sz = bt_rc_enc_finish(&e);
    if (sz == SIZE_MAX) {
      memcpy(out + pos, p, len);
      sz = len;
    }
    sizes[c] = (uint32_t)sz;
    pos += sz;
  }
  if (bt_container_write_header(out, &h, sizes) != BT_OK) abort();
  free(sizes);
  *out_len = pos;
  return out;
}

static int write_file(const char *dir, const char *name, const uint8_t *p, size_t n) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
    fprintf(stderr, "fuzz_container: cannot write %s\n", path);
    return 1;
  }
  return 0;
}

static int make_corpus(const char *dir) {
  static const char text[] =
      "In information theory, data compression is the process of encoding information "
      "using fewer bits than the original representation. Any particular compression is "
      "either lossy or lossless. Lossless compression reduces bits by identifying and "
      "eliminating statistical redundancy. No information is lost in lossless compression. ";
  size_t tn = sizeof text - 1;
  uint8_t buf[3000];
  for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)text[i % tn];
  uint8_t rnd[600];
  uint64_t s = 0x9E3779B97F4A7C15ULL;
  for (size_t i = 0; i < sizeof rnd; i++) {
    s ^= s << 13; s ^= s >> 7; s ^= s << 17;
    rnd[i] = (uint8_t)(s >> 24);
  }
  uint8_t mixed[1500];
  for (size_t i = 0; i < sizeof mixed; i++) mixed[i] = i < 700 ? buf[i] : rnd[i % 600];
  uint8_t zeros[2000];
  memset(zeros, 0, sizeof zeros);
  struct { const char *name; const uint8_t *p; uint64_t n; uint32_t chunk; int stream; } v[] = {
      {"ok-empty.btz", buf, 0, 256, 0},
      {"ok-empty-stream.btz", buf, 0, 0, 1},
      {"ok-one-byte.btz", buf, 1, 256, 0},
      {"ok-text-chunk256.btz", buf, 3000, 256, 0},
      {"ok-text-stream.btz", buf, 3000, 0, 1},
      {"ok-random-stored.btz", rnd, 600, 128, 0},
      {"ok-mixed-chunk500.btz", mixed, 1500, 500, 0},
      {"ok-zeros-chunk1000.btz", zeros, 2000, 1000, 0},
      {"ok-text-chunk7.btz", buf, 40, 7, 0},
  };
  int rc = 0;
  uint8_t *keep = NULL;
  size_t keep_len = 0;
  for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
    size_t len;
    uint8_t *c = compress(v[i].p, v[i].n, v[i].chunk, v[i].stream, &len);
    rc |= write_file(dir, v[i].name, c, len);
    if (i == 6) {
      keep = c;
      keep_len = len;
    } else {
      free(c);
    }
  }
  /* Damaged copies of ok-mixed-chunk500 with known errors. */
  uint8_t *d = malloc(keep_len + 1);
  if (!d) abort();
  rc |= write_file(dir, "bad-corrupt-truncated.btz", keep, keep_len - 1);
  rc |= write_file(dir, "bad-corrupt-header-only.btz", keep, 40);
  memcpy(d, keep, keep_len);
  d[61] ^= 0x40;
  rc |= write_file(dir, "bad-corrupt-header-crc.btz", d, keep_len);
  memcpy(d, keep, keep_len);
  d[4] = 9;
  rc |= write_file(dir, "bad-format-version9.btz", d, keep_len);
  memcpy(d, keep, keep_len); /* version 1 (no longer read), header CRC valid */
  d[4] = 1;
  {
    const size_t hb = BT_CONTAINER_HEADER_BYTES;
    uint32_t hc = bt_crc32(0, d, hb - 4);
    hc = bt_crc32(hc, d + hb, 4 * 3); /* ok-mixed-chunk500: 3 chunks */
    for (int k = 0; k < 4; k++) d[hb - 4 + k] = (uint8_t)(hc >> (8 * k));
  }
  rc |= write_file(dir, "bad-format-old-version.btz", d, keep_len);
  memcpy(d, keep, keep_len);
  d[0] = 'b';
  rc |= write_file(dir, "bad-format-magic.btz", d, keep_len);
  memcpy(d, keep, keep_len);
  d[keep_len] = 0;
  rc |= write_file(dir, "bad-corrupt-trailing-byte.btz", d, keep_len + 1);
  /* A damaged payload parses but must not match the CRC: "damaged-*". */
  memcpy(d, keep, keep_len);
  d[keep_len - 3] ^= 0x01;
  rc |= write_file(dir, "damaged-payload.btz", d, keep_len);
  free(d);
  free(keep);
  return rc;
}

/* ---- replay ---- */

static int failures, files;

static void run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "fuzz_container: cannot open %s\n", path);
    failures++;
    return;
  }
  uint8_t *buf = NULL;
  size_t n = 0, cap = 0;
  for (;;) {
    if (n == cap) {
      cap = cap ? 2 * cap : 4096;
      uint8_t *nb = realloc(buf, cap);
      if (!nb) abort();
      buf = nb;
    }
    size_t got = fread(buf + n, 1, cap - n, f);
    if (!got) break;
    n += got;
  }
  fclose(f);
  /* An exact-size copy, so ASan sees any over-read. */
  uint8_t *exact = malloc(n ? n : 1);
  if (!exact) abort();
  memcpy(exact, buf, n);
  free(buf);
  fuzz_result r = run_one(n ? exact : NULL, n);
  if (!r.parsed) run_crc_fixed(n ? exact : NULL, n);
  files++;

  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  const char *want = NULL;
  if (!strncmp(base, "ok-", 3)) {
    if (!r.parsed || !r.decoded || !r.crc_ok) want = "parse, decode and match the CRC";
  } else if (!strncmp(base, "bad-format-", 11)) {
    if (r.err != BT_ERR_FORMAT) want = "fail with BT_ERR_FORMAT";
  } else if (!strncmp(base, "bad-corrupt-", 12)) {
    if (r.err != BT_ERR_CORRUPT) want = "fail with BT_ERR_CORRUPT";
  } else if (!strncmp(base, "damaged-", 8)) {
    if (!r.parsed || !r.decoded || r.crc_ok) want = "parse and decode to a CRC mismatch";
  }
  if (want) {
    fprintf(stderr, "FAIL %s: should %s (got %s: %s)\n", path, want, bt_error_name(r.err),
            r.err ? bt_error_detail() : r.crc_ok ? "CRC ok" : "CRC mismatch");
    failures++;
  }
  free(exact);
}

static void run_path(const char *path) {
  struct stat st;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    DIR *dir = opendir(path);
    if (!dir) {
      fprintf(stderr, "fuzz_container: cannot open %s\n", path);
      failures++;
      return;
    }
    struct dirent *de;
    while ((de = readdir(dir))) {
      if (de->d_name[0] == '.') continue;
      char sub[4096];
      snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
      run_path(sub);
    }
    closedir(dir);
  } else {
    run_file(path);
  }
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "--make-corpus")) return make_corpus(argv[2]);
  if (argc < 2) {
    fprintf(stderr, "usage: fuzz_container FILE|DIR...\n"
                    "       fuzz_container --make-corpus DIR\n");
    return 1;
  }
  for (int i = 1; i < argc; i++) run_path(argv[i]);
  printf("fuzz_container: %d files, %d failed\n", files, failures);
  return failures || !files ? 1 : 0;
}
#endif
