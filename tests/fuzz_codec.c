/*
 * fuzz_codec.c - libFuzzer target for bt_decompress with a real trained
 * model, the shipped 200K (checkpoints/bt-200K.h5, or $BT_FUZZ_CKPT).
 *
 * Each input is decoded twice:
 *   - as it is, which exercises the container parser, the member walk and
 *     the model-mismatch path (a forged file naming another model);
 *   - with every member's model fields set to the 200K's and its header
 *     CRC recomputed, so the fuzzer gets past both to the transformer, the
 *     quantiser and the range decoder on hostile payloads.
 * The decoder's size limit is kept small so every run is quick; the limit
 * itself is then on the fuzzed path too.
 *
 * Builds: see CMakeLists.txt (BT_FUZZ=ON with clang):
 *   fuzz_codec -max_total_time=600 WORKDIR tests/corpus/codec
 *   standalone (-DBT_FUZZ_STANDALONE): fuzz_codec_replay DIR...
 *     "ok-*" must decode, its CRC-32 checked;
 *     "bad-<error>-*" must fail with that error (corrupt, format,
 *     checksum, mismatch, limit).
 * The ok-* seeds are golden files of the container versions (ok-v2-*:
 * version 2, kept as written by that release; ok-v4-*: version 4, the int8
 * KV cache, made with recipe v2's 200K; the others: version 3, among them
 * adaptive files, ok-adapt-*, made with the first shipped 200K; both models
 * are kept in checkpoints/retired/ since their replacement). ctest decodes each with
 * the model found by its header's hash, in every build, so a change of
 * format, of the model's numerics or of the model search that would strand
 * users' files fails there. They were made by tests/make_codec_corpus.sh
 * and are never remade.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coder/codec.h"
#include "coder/coder.h"
#include "kernels/hash.h"

#ifndef BT_FUZZ_DEFAULT_CKPT
#define BT_FUZZ_DEFAULT_CKPT "checkpoints/bt-200K.h5"
#endif
/* Bytes one fuzzed input may decode to (the 200K under ASan decodes about
 * 2 kB/s). The replay lifts it. */
#define FUZZ_MAX_SIZE 600

static bt_codec *g_codec;

static bt_codec *codec(void) {
  if (!g_codec) {
    const char *p = getenv("BT_FUZZ_CKPT");
    bt_error e = bt_codec_open(&g_codec, p && *p ? p : BT_FUZZ_DEFAULT_CKPT);
    if (e) {
      fprintf(stderr, "fuzz_codec: cannot load %s: %s\n", p && *p ? p : BT_FUZZ_DEFAULT_CKPT, bt_error_detail());
      exit(1);
    }
  }
  return g_codec;
}

static uint64_t get_le(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}
static void put_le(uint8_t *p, uint64_t v, int n) {
  for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Rewrites each member's model fields to the codec's and reseals its header
 * CRC; stops at the first member whose table does not fit. */
static void adopt(uint8_t *p, size_t n, const bt_codec *c) {
  const bt_config *cfg = bt_codec_config(c);
  for (size_t pos = 0; n - pos >= 5 && !memcmp(p + pos, BT_CONTAINER_MAGIC, 4);) {
    uint8_t *h = p + pos;
    const size_t hb = h[4] == 2 ? BT_CONTAINER_V2_HEADER_BYTES : BT_CONTAINER_HEADER_BYTES;
    if (n - pos < hb) return;
    memcpy(h + 6, bt_codec_weights_sha256(c), 32);
    h[38] = (uint8_t)cfg->n_layer;
    h[39] = (uint8_t)cfg->n_head;
    put_le(h + 40, (uint64_t)cfg->d_model, 2);
    put_le(h + 42, (uint64_t)cfg->ctx, 4);
    uint32_t chunk = (uint32_t)get_le(h + 46, 4);
    uint64_t orig = get_le(h + 50, 6);
    uint64_t nch = bt_container_n_chunks(orig, chunk, h[5] & 1);
    size_t left = n - pos - hb;
    if (nch == UINT64_MAX || nch > left / 4) return;
    uint32_t crc = bt_crc32(0, h, hb - 4);
    crc = bt_crc32(crc, h + hb, 4 * (size_t)nch);
    put_le(h + hb - 4, crc, 4);
    uint64_t body = 4 * nch;
    for (uint64_t i = 0; i < nch; i++) body += get_le(h + hb + 4 * i, 4);
    if (body > left) return;
    pos += hb + (size_t)body;
  }
}

static bt_error decode(const uint8_t *p, size_t n, uint8_t **out, size_t *on) {
  *out = NULL;
  *on = 0;
  return bt_decompress(codec(), p, n, out, on, NULL, NULL, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  bt_codec *c = codec();
  bt_codec_set_max_size(c, FUZZ_MAX_SIZE);
  uint8_t *out;
  size_t on;
  decode(data, size, &out, &on);
  free(out);
  uint8_t *p = malloc(size ? size : 1);
  if (!p) return 0;
  memcpy(p, data, size);
  adopt(p, size, c);
  decode(p, size, &out, &on);
  free(out);
  free(p);
  return 0;
}

#ifdef BT_FUZZ_STANDALONE
#include "tests/fuzz_replay.h"

static int g_fail, g_run;

static void run_file(const char *dir, const char *name) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  size_t n = 0;
  uint8_t *p = replay_read_all(path, &n);
  if (!p) {
    fprintf(stderr, "FAIL: cannot read %s\n", path);
    g_fail++;
    return;
  }
  g_run++;
  LLVMFuzzerTestOneInput(p, n);
  static const struct {
    const char *prefix;
    bt_error e;
  } k[] = {{"ok-", BT_OK},
           {"bad-corrupt-", BT_ERR_CORRUPT},
           {"bad-format-", BT_ERR_FORMAT},
           {"bad-checksum-", BT_ERR_CHECKSUM},
           {"bad-mismatch-", BT_ERR_MISMATCH},
           {"bad-limit-", BT_ERR_LIMIT}};
  for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
    if (strncmp(name, k[i].prefix, strlen(k[i].prefix)) != 0) continue;
    /* Each file decodes with the model its header names, found by hash on
     * the search path as bt-decompress finds it (models replaced since are
     * in checkpoints/retired/): a golden file must find it. bad-mismatch-*
     * files, made with another model, and files that name none use the
     * fuzzed 200K. */
    bt_codec *c = codec(), *own = NULL;
    if (k[i].e != BT_ERR_MISMATCH && bt_codec_open_for(&own, p, n) != BT_OK && k[i].e == BT_OK) {
      fprintf(stderr, "FAIL: %s: no model for it: %s\n", name, bt_error_detail());
      g_fail++;
      break;
    }
    if (own) c = own;
    bt_codec_set_max_size(c, k[i].e == BT_ERR_LIMIT ? 0 : UINT64_MAX);
    uint8_t *out = NULL;
    size_t on = 0;
    bt_error got = bt_decompress(c, p, n, &out, &on, NULL, NULL, NULL);
    bt_codec_free(own);
    if (got != k[i].e) {
      fprintf(stderr, "FAIL: %s: got %s (%s), expected %s\n", name, bt_error_name(got), bt_error_detail(),
              bt_error_name(k[i].e));
      g_fail++;
    }
    free(out);
  }
  free(p);
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (replay_each(argv[i], run_file) != 0) {
      fprintf(stderr, "FAIL: %s is not a folder\n", argv[i]);
      return 1;
    }
  bt_codec_free(g_codec);
  printf("fuzz_codec replay: %d files, %d failed\n", g_run, g_fail);
  return g_fail || !g_run ? 1 : 0;
}
#endif
