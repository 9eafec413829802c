/*
 * test_adapt.c - adaptive coding's bits: the training step it replays gives
 * bit-identical weights on every ISA path and thread count, and adaptive
 * files are byte-identical and decode exactly under all of them; the
 * predictor and binary coder round-trip on their own.
 */
#include "tests/check.h"

#include <omp.h>
#include <unistd.h>

#include "coder/cm.h"
#include "coder/codec.h"
#include "coder/coder.h"
#include "kernels/hash.h"
#include "infer/infer.h"
#include "kernels/kernels.h"
#include "train/ckpt.h"
#include "train/model.h"

static int n_isas(bt_isa *isas) {
  int k = 0;
  for (int i = BT_ISA_SCALAR; i <= (int)bt_isa_detect(); i++)
    isas[k++] = (bt_isa)i;
  return k;
}

/* Text-like bytes with repeats, so every part of the predictor has work. */
static void fill_text(uint8_t *x, size_t n, uint64_t seed) {
  static const char *words[] = {"the ", "of ", "compress", "ion ", "model ", "byte ", "\r\n",
                                "<a href=\"", "http://", "www.", ".com/", "0123", "learn"};
  uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 1;
  size_t i = 0;
  while (i < n) {
    uint64_t r = check_rng_next_(&s);
    const char *w = words[r % (sizeof words / sizeof words[0])];
    for (; *w && i < n; w++)
      x[i++] = (uint8_t)(r % 97 == 0 ? (r >> 20) & 255 : (uint8_t)*w);
  }
}

/* Three AdamW steps with bt's own kernels from seed's weights, as adaptive
 * coding takes them; the SHA-256 of the weights after. */
static void train_steps(const bt_config *cfg, const uint8_t *seq, int T, uint8_t sha[32]) {
  bt_model *m = NULL;
  CHECK(bt_model_create(&m, cfg) == BT_OK, "model");
  bt_model_init(m, 7);
  bt_gemm_set_backend(BT_GEMM_OWN);
  for (int s = 1; s <= 3; s++) {
    CHECK(bt_model_forward(m, seq, 1, T, NULL) == BT_OK, "forward");
    CHECK(bt_model_backward(m) == BT_OK, "backward");
    bt_model_adamw(m, 1e-3f, 0.9f, 0.99f, 1e-8f, 0.01f, s);
  }
  bt_gemm_set_backend(BT_GEMM_AUTO);
  bt_model_weights_sha256(m, sha);
  bt_model_free(m);
}

static void test_training_step_bits(void) {
  const bt_config cfg = {2, 64, 4, 256, BT_VOCAB}; /* head size 16, as the 200K's */
  uint8_t seq[256];
  fill_text(seq, sizeof seq, 3);
  bt_isa isas[3];
  const int ni = n_isas(isas);
  const bt_isa isa0 = bt_isa_get();
  uint8_t ref[32], got[32];
  omp_set_num_threads(2);
  train_steps(&cfg, seq, 256, ref);
  for (int ii = 0; ii < ni; ii++)
    for (int th = 1; th <= 2; th++) {
      bt_isa_set(isas[ii]);
      omp_set_num_threads(th);
      train_steps(&cfg, seq, 256, got);
      CHECK(!memcmp(got, ref, 32), "training steps on %s with %d threads change other weights",
            bt_isa_name(isas[ii]), th);
    }
  bt_isa_set(isa0);
  omp_set_num_threads(2);
  char hex[65];
  bt_sha256_hex(ref, hex);
  printf("training step: weights sha256 %.16s... on %d paths x 1, 2 threads\n", hex, ni);
}

/* The predictor alone: every part set, a byte stream through the binary
 * coder and back, with a transformer table that is sometimes right. */
static void test_cm_roundtrip(void) {
  const size_t n = 20000;
  uint8_t *x = malloc(n), *y = malloc(n), *buf = malloc(n + 8);
  fill_text(x, n, 5);
  const unsigned sets[] = {0, BT_CM_CTX, BT_CM_MATCH, BT_CM_ALL};
  for (size_t k = 0; k < sizeof sets / sizeof sets[0]; k++) {
    bt_cm *ce = NULL, *cd = NULL;
    CHECK(bt_cm_create(&ce, sets[k]) == BT_OK && bt_cm_create(&cd, sets[k]) == BT_OK, "cm create");
    if (!ce || !cd)
      break;
    uint32_t freq[256];
    bt_bin_enc e;
    bt_bin_enc_init(&e, buf, n + 8);
    double bits = 0;
    for (size_t i = 0; i < n; i++) {
      for (int s = 0; s < 256; s++) /* a peak on the true byte half the time */
        freq[s] = 1;
      freq[(i % 2) ? x[i] : 'e'] += (1u << 24) - 256;
      bt_cm_begin(ce, freq, x, i);
      bits += bt_cm_encode_byte(ce, &e, x[i]);
    }
    size_t len = bt_bin_enc_finish(&e);
    CHECK(len != SIZE_MAX && len < n, "parts %u: %zu bytes", sets[k], len);
    CHECK(fabs(8.0 * (double)len - bits) < 64, "parts %u: %zu bytes for %.0f bits", sets[k], len, bits);
    bt_bin_dec d;
    bt_bin_dec_init(&d, buf, len);
    for (size_t i = 0; i < n; i++) {
      for (int s = 0; s < 256; s++) /* the same tables as the encoder's: an input to both */
        freq[s] = 1;
      freq[(i % 2) ? x[i] : 'e'] += (1u << 24) - 256;
      bt_cm_begin(cd, freq, y, i);
      y[i] = (uint8_t)bt_cm_decode_byte(cd, &d);
    }
    CHECK(!memcmp(x, y, n), "parts %u: decoded bytes differ", sets[k]);
    printf("cm parts %u: %zu -> %zu bytes (%.3f bits/byte)\n", sets[k], n, len, 8.0 * (double)len / (double)n);
    bt_cm_free(ce);
    bt_cm_free(cd);
  }
  free(x);
  free(y);
  free(buf);
}

/* Adaptive files through the codec: a small trained-from-seed model saved as
 * a checkpoint, one file per ISA path and thread count, all byte-identical,
 * each decoded under every path and thread count. */
static void test_codec_bits(void) {
  const bt_config cfg = {2, 64, 4, 256, BT_VOCAB};
  bt_model *m = NULL;
  CHECK(bt_model_create(&m, &cfg) == BT_OK, "model");
  bt_model_init(m, 11);
  char path[64];
  snprintf(path, sizeof path, "/tmp/bt-test-adapt-%d.h5", (int)getpid());
  CHECK(bt_ckpt_save(path, m, NULL, BT_CKPT_F32) == BT_OK, "save: %s", bt_error_detail());
  bt_model_free(m);
  bt_codec *c = NULL;
  CHECK(bt_codec_open(&c, path) == BT_OK, "open: %s", bt_error_detail());
  unlink(path);
  if (!c)
    return;
  const size_t n = 1500;
  uint8_t *x = malloc(n);
  fill_text(x, n, 9);
  bt_adapt a;
  bt_adapt_default(&a);
  a.window = 256; /* 11 windows: 10 training steps */
  a.lr = 1e-3f;
  bt_isa isas[3];
  const int ni = n_isas(isas);
  const bt_isa isa0 = bt_isa_get();
  /* Plain files before any adaptive coding: the same codec must make them
   * byte for byte again afterwards (its workers get the checkpoint's
   * weights back). */
  uint8_t *plain[2];
  size_t plain_len[2];
  for (int seg = 0; seg < 2; seg++) {
    plain[seg] = malloc(bt_compress_bound(n, seg ? 600 : 0));
    CHECK(bt_compress(c, x, n, seg ? 600 : 0, plain[seg], &plain_len[seg], NULL, NULL, NULL) == BT_OK,
          "plain compress");
  }
  for (int seg = 0; seg < 2; seg++) {
    const uint32_t chunk = seg ? 600 : 0; /* one stream, then three segments */
    CHECK(bt_codec_set_adapt(c, &a) == BT_OK, "set adapt");
    size_t cap = bt_compress_bound(n, chunk), rl = 0;
    uint8_t *ref = malloc(cap), *got = malloc(cap);
    omp_set_num_threads(2);
    CHECK(bt_compress(c, x, n, chunk, ref, &rl, NULL, NULL, NULL) == BT_OK, "compress: %s", bt_error_detail());
    CHECK(rl < n, "adaptive file of %zu bytes from %zu", rl, n);
    for (int ii = 0; ii < ni; ii++)
      for (int th = 1; th <= 2; th++) {
        bt_isa_set(isas[ii]);
        omp_set_num_threads(th);
        size_t gl = 0;
        if (th == 2 || ii == ni - 1) { /* every path with 2 threads, the best with 1 too */
          CHECK(bt_compress(c, x, n, chunk, got, &gl, NULL, NULL, NULL) == BT_OK, "compress");
          CHECK(gl == rl && !memcmp(got, ref, rl), "chunk %u: the file made on %s with %d threads differs",
                chunk, bt_isa_name(isas[ii]), th);
        }
        uint8_t *out = NULL;
        size_t on = 0;
        bt_error e = bt_decompress(c, ref, rl, &out, &on, NULL, NULL, NULL);
        CHECK(e == BT_OK && on == n && !memcmp(out, x, n), "chunk %u: decoding on %s with %d threads: %s",
              chunk, bt_isa_name(isas[ii]), th, e ? bt_error_detail() : "wrong bytes");
        free(out);
      }
    bt_isa_set(isa0);
    omp_set_num_threads(2);
    /* A flipped payload byte must not decode to the original (a byte near
     * the middle: the last bytes of an arithmetic code can be partly free). */
    ref[rl / 2] ^= 0x20;
    uint8_t *out = NULL;
    size_t on = 0;
    bt_error e = bt_decompress(c, ref, rl, &out, &on, NULL, NULL, NULL);
    CHECK(e == BT_ERR_CHECKSUM || e == BT_ERR_CORRUPT, "chunk %u: damaged adaptive file: %s", chunk,
          bt_error_name(e));
    free(out);
    /* Plain coding still works on the same codec after adaptive coding. */
    bt_codec_set_adapt(c, NULL);
    CHECK(bt_compress(c, x, n, chunk, got, &rl, NULL, NULL, NULL) == BT_OK, "plain compress");
    CHECK(rl == plain_len[seg] && !memcmp(got, plain[seg], rl),
          "chunk %u: a plain file made after adaptive coding differs from one made before", chunk);
    free(plain[seg]);
    e = bt_decompress(c, got, rl, &out, &on, NULL, NULL, NULL);
    CHECK(e == BT_OK && on == n && !memcmp(out, x, n), "plain after adaptive: %s", bt_error_name(e));
    free(out);
    free(ref);
    free(got);
  }
  free(x);
  bt_codec_free(c);
}

int main(void) {
  test_training_step_bits();
  test_cm_roundtrip();
  test_codec_bits();
  return check_summary("test_adapt");
}
