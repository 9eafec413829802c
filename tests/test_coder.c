/*
 * test_coder.c - range coder, quantiser and container: round trips, carries,
 * hostile and truncated input, exact table totals, coded size against the
 * model's log-loss, and a container parser that rejects every damaged file.
 * Runs in seconds; run it under -fsanitize=address,undefined too.
 */
#include "tests/check.h"

#include "coder/coder.h"
#include "kernels/hash.h"

static uint64_t rng_state = 0x243F6A8885A308D3ULL;
static uint64_t rnd(void) { return check_rng_next_(&rng_state); }
static uint32_t rnd_below(uint32_t n) { return (uint32_t)((rnd() >> 32) * n >> 32); }
static float rnd_unit(void) { return (float)((double)(rnd() >> 11) * 0x1p-53); } /* [0, 1) */

/* Symbol with cum[s] <= u < cum[s+1], u uniform in [0, 2^24): a sample. */
static int sample_cum(const uint32_t cum[257]) {
  uint32_t u = (uint32_t)(rnd() >> 40);
  int lo = 0, hi = 256;
  while (hi - lo > 1) {
    int mid = (lo + hi) / 2;
    if (cum[mid] <= u) lo = mid; else hi = mid;
  }
  return lo;
}

static int table_ok(const uint32_t f[256]) {
  uint64_t s = 0;
  for (int i = 0; i < 256; i++) {
    if (f[i] < 1) return 0;
    s += f[i];
  }
  return s == BT_FREQ_TOTAL;
}

/* A random valid table: random logits at a random temperature. */
static void random_table(uint32_t f[256]) {
  float l[256];
  float scale = 0.1f + 30.0f * rnd_unit();
  for (int i = 0; i < 256; i++) l[i] = scale * (2.0f * rnd_unit() - 1.0f);
  bt_quantize_logits(l, f);
}

/* The skewed table: sym gets 2^24 - 255, every other symbol 1. */
static void skewed_table(uint32_t f[256], int sym) {
  for (int i = 0; i < 256; i++) f[i] = 1;
  f[sym] = BT_FREQ_TOTAL - 255;
}

/* Encodes syms[n] under one table per symbol (tables[t[i]]), decodes, compares.
 * Returns the coded size. */
static size_t roundtrip(const int *syms, size_t n, uint32_t (*cums)[257], const int *t,
                        bt_rc_enc *stats) {
  size_t cap = n * 4 + 16;
  uint8_t *buf = malloc(cap);
  bt_rc_enc e;
  bt_rc_enc_init(&e, buf, cap);
  for (size_t i = 0; i < n; i++) {
    const uint32_t *c = cums[t[i]];
    bt_rc_encode(&e, c[syms[i]], c[syms[i] + 1] - c[syms[i]]);
  }
  size_t sz = bt_rc_enc_finish(&e);
  CHECK(sz != SIZE_MAX, "overflow with cap %zu", cap);
  if (stats) *stats = e;
  /* Exact-size copy so ASan sees any read past the end. */
  uint8_t *in = malloc(sz ? sz : 1);
  memcpy(in, buf, sz);
  bt_rc_dec d;
  bt_rc_dec_init(&d, in, sz);
  size_t bad = 0;
  for (size_t i = 0; i < n; i++)
    if (bt_rc_decode(&d, cums[t[i]]) != syms[i]) bad++;
  CHECK(bad == 0, "%zu of %zu symbols decoded wrong", bad, n);
  CHECK(!bt_rc_dec_corrupt(&d), "valid stream flagged corrupt");
  CHECK(sz == 0 || in[sz - 1] != 0, "trailing zero byte not trimmed");
  free(in);
  free(buf);
  return sz;
}

/* ======================================================================
 * range coder
 * ====================================================================== */

static void test_rc_random(void) {
  enum { NT = 8 };
  uint32_t f[NT][256], cums[NT][257];
  for (int k = 0; k < NT; k++) {
    if (k == 0)
      for (int i = 0; i < 256; i++) f[k][i] = 1u << 16; /* uniform */
    else if (k == 1)
      skewed_table(f[k], 0);
    else if (k == 2)
      skewed_table(f[k], 255);
    else if (k == 3)
      skewed_table(f[k], 77);
    else
      random_table(f[k]);
    CHECK(table_ok(f[k]), "table %d", k);
    bt_freq_cumulative(f[k], cums[k]);
  }
  static const size_t lens[] = {0, 1, 2, 3, 7, 100, 1000, 20000};
  for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
    for (int mode = 0; mode < 4; mode++) {
      size_t n = lens[li];
      int *syms = malloc((n + 1) * sizeof *syms), *t = malloc((n + 1) * sizeof *t);
      for (size_t i = 0; i < n; i++) {
        t[i] = mode == 0 ? (int)rnd_below(NT) : mode == 1 ? 1 : mode == 2 ? 2 : 4 + (int)(i % 4);
        /* mode 0: uniform symbols regardless of the table (hits freq-1 symbols);
         * others: sampled from the table. */
        syms[i] = mode == 0 ? (int)rnd_below(256) : sample_cum(cums[t[i]]);
      }
      size_t sz = roundtrip(syms, n, cums, t, NULL);
      if (n == 0) CHECK(sz == 0, "empty stream coded to %zu bytes", sz);
      free(syms);
      free(t);
    }
  }
  /* Every symbol at freq 1: 24 bits each. */
  {
    size_t n = 5000;
    int *syms = malloc(n * sizeof *syms), *t = malloc(n * sizeof *t);
    for (size_t i = 0; i < n; i++) { t[i] = 1; syms[i] = 1 + (int)rnd_below(255); }
    size_t sz = roundtrip(syms, n, cums, t, NULL);
    CHECK(sz <= n * 3 + 2 && sz >= n * 3 - 2, "5000 freq-1 symbols took %zu bytes", sz);
    free(syms);
    free(t);
  }
  /* A long run of the max-probability symbol costs almost nothing. */
  {
    size_t n = 1000000;
    int *syms = malloc(n * sizeof *syms), *t = malloc(n * sizeof *t);
    for (size_t i = 0; i < n; i++) { t[i] = 2; syms[i] = 255; }
    size_t sz = roundtrip(syms, n, cums, t, NULL);
    double ideal = n * bt_freq_cost_bits(f[2], 255) / 8;
    CHECK(sz <= ideal + 8, "1e6 max-probability symbols: %zu bytes, ideal %.1f", sz, ideal);
    free(syms);
    free(t);
  }
}

/* Carries: decoding the number 0x80 00 00 ... picks, at every step, the
 * symbol whose interval contains that number, so the encoder's interval
 * straddles ...7FFFFF|800000... throughout: every byte is a held-back 0xFF
 * until the end. The flush then picks exactly that number, carrying through
 * the whole run; the output is the single byte 0x80. Appending random
 * symbols instead resolves the straddle mid-stream, upward (a carry) or
 * downward, at random. */
static void test_rc_carry(void) {
  uint32_t f[4][256], cum[4][257];
  for (int k = 0; k < 4; k++) {
    random_table(f[k]);
    bt_freq_cumulative(f[k], cum[k]);
  }
  size_t n = 20000;
  int *syms = malloc((n + 200) * sizeof *syms), *t = malloc((n + 200) * sizeof *t);
  uint64_t carries = 0, longest = 0;
  for (int trial = 0; trial < 24; trial++) {
    uint8_t seed[3] = {(uint8_t)rnd_below(256), (uint8_t)rnd_below(256), 0x80};
    int pre = trial % 3; /* a few random leading bytes move the boundary */
    bt_rc_dec d;
    bt_rc_dec_init(&d, seed + (2 - pre), (size_t)pre + 1);
    for (size_t i = 0; i < n; i++) {
      t[i] = (int)((i * 7 + (size_t)trial) % 4);
      syms[i] = bt_rc_decode(&d, cum[t[i]]);
    }
    size_t extra = trial < 6 ? 0 : 1 + rnd_below(200);
    for (size_t i = n; i < n + extra; i++) {
      t[i] = (int)(i % 4);
      syms[i] = sample_cum(cum[t[i]]);
    }
    bt_rc_enc st;
    size_t sz = roundtrip(syms, n + extra, cum, t, &st);
    carries += st.n_carry;
    if (st.max_pending > longest) longest = st.max_pending;
    if (extra == 0) {
      /* Ideal cost ~ n * (entropy) bits, yet the whole stream is 1..3 bytes. */
      CHECK(sz == (size_t)pre + 1, "trial %d: %zu bytes, expected %d", trial, sz, pre + 1);
      CHECK(st.n_carry >= 1, "trial %d: no carry at flush", trial);
      CHECK(st.max_pending > 500, "trial %d: longest 0xFF run %llu", trial,
            (unsigned long long)st.max_pending);
    }
  }
  CHECK(carries >= 10, "only %llu carries in 24 trials", (unsigned long long)carries);
  printf("carry test: %llu carries, longest held-back 0xFF run %llu bytes\n",
         (unsigned long long)carries, (unsigned long long)longest);
  free(syms);
  free(t);
}

/* Truncated, empty and random input: the decoder terminates, reads only its
 * buffer (exact-size allocations for ASan) and keeps its invariants. */
static void test_rc_hostile(void) {
  uint32_t f[256], cum[257];
  random_table(f);
  bt_freq_cumulative(f, cum);
  size_t n = 3000;
  int *syms = malloc(n * sizeof *syms);
  uint8_t *buf = malloc(n * 4);
  bt_rc_enc e;
  bt_rc_enc_init(&e, buf, n * 4);
  for (size_t i = 0; i < n; i++) {
    syms[i] = sample_cum(cum);
    bt_rc_encode(&e, cum[syms[i]], f[syms[i]]);
  }
  size_t sz = bt_rc_enc_finish(&e);
  CHECK(sz != SIZE_MAX && sz > 100, "size %zu", sz);
  size_t full_ok = 0, trunc_same = 0;
  for (size_t len = 0; len <= sz; len++) {
    uint8_t *in = len ? malloc(len) : NULL;
    if (len) memcpy(in, buf, len);
    bt_rc_dec d;
    bt_rc_dec_init(&d, in, len);
    size_t same = 0;
    for (size_t i = 0; i < n; i++) same += bt_rc_decode(&d, cum) == syms[i];
    if (len == sz) full_ok = same == n;
    else trunc_same += same == n;
    free(in);
  }
  CHECK(full_ok, "full stream did not decode");
  /* The last byte is non-zero, so any truncation changes the number; the
   * symbols almost surely change too (not guaranteed: information only). */
  printf("truncation: %zu of %zu truncated streams still decoded all symbols\n", trunc_same, sz);

  /* Random garbage and all-0xFF input. */
  int corrupt = 0;
  for (int trial = 0; trial < 200; trial++) {
    size_t len = rnd_below(64);
    uint8_t *in = len ? malloc(len) : NULL;
    for (size_t i = 0; i < len; i++) in[i] = trial % 2 ? 0xFF : (uint8_t)rnd();
    bt_rc_dec d;
    bt_rc_dec_init(&d, in, len);
    for (int i = 0; i < 500; i++) {
      int s = bt_rc_decode(&d, cum);
      CHECK(s >= 0 && s < 256, "symbol %d", s);
    }
    corrupt += bt_rc_dec_corrupt(&d);
    free(in);
  }
  CHECK(corrupt > 0, "no garbage stream was flagged corrupt");
  {
    uint8_t ff[7] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    bt_rc_dec d;
    bt_rc_dec_init(&d, ff, 7);
    CHECK(bt_rc_dec_corrupt(&d), "all-0xFF input is not a valid stream");
  }
  free(syms);
  free(buf);
}

/* Capacity: exact fit succeeds, one byte less reports overflow without
 * writing past cap; the early-exit bound never exceeds the final size. */
static void test_rc_capacity(void) {
  uint32_t f[256], cum[257];
  random_table(f);
  bt_freq_cumulative(f, cum);
  size_t n = 4000;
  int *syms = malloc(n * sizeof *syms);
  for (size_t i = 0; i < n; i++) syms[i] = sample_cum(cum);
  bt_rc_enc e;
  bt_rc_enc_init(&e, NULL, 0); /* measure only */
  size_t prev = 0, mono = 1;
  for (size_t i = 0; i < n; i++) {
    bt_rc_encode(&e, cum[syms[i]], f[syms[i]]);
    if (bt_rc_enc_bytes(&e) < prev) mono = 0;
    prev = bt_rc_enc_bytes(&e);
  }
  CHECK(mono, "bt_rc_enc_bytes went down");
  CHECK(bt_rc_enc_overflowed(&e), "cap 0 not overflowed");
  CHECK(bt_rc_enc_finish(&e) == SIZE_MAX, "cap 0 finish");
  size_t need = e.end;
  CHECK(prev <= need, "lower bound %zu > final %zu", prev, need);

  for (int extra = -3; extra <= 2; extra++) {
    size_t cap = need + (size_t)(extra + 3) - 3;
    uint8_t *buf = malloc(cap ? cap : 1); /* exact size for ASan */
    bt_rc_enc_init(&e, buf, cap);
    int early = -1;
    for (size_t i = 0; i < n; i++) {
      bt_rc_encode(&e, cum[syms[i]], f[syms[i]]);
      if (early < 0 && bt_rc_enc_overflowed(&e)) early = (int)i;
    }
    size_t sz = bt_rc_enc_finish(&e);
    if (extra < 0) {
      CHECK(sz == SIZE_MAX, "cap %zu < %zu accepted", cap, need);
    } else {
      /* The early signal is never a false alarm. */
      CHECK(sz == need && early < 0, "cap %zu: size %zu, need %zu", cap, sz, need);
      bt_rc_dec d;
      bt_rc_dec_init(&d, buf, sz);
      size_t bad = 0;
      for (size_t i = 0; i < n; i++) bad += bt_rc_decode(&d, cum) != syms[i];
      CHECK(bad == 0, "exact-cap stream: %zu wrong", bad);
    }
    free(buf);
  }
  /* With half the room, the signal comes well before the end. */
  {
    size_t cap = need / 2;
    uint8_t *buf = malloc(cap);
    bt_rc_enc_init(&e, buf, cap);
    size_t early = n;
    for (size_t i = 0; i < n && early == n; i++) {
      bt_rc_encode(&e, cum[syms[i]], f[syms[i]]);
      if (bt_rc_enc_overflowed(&e)) early = i;
    }
    CHECK(early < n * 6 / 10, "overflow signalled at symbol %zu of %zu", early, n);
    CHECK(bt_rc_enc_finish(&e) == SIZE_MAX, "half cap");
    free(buf);
  }
  free(syms);
}

/* ======================================================================
 * quantiser
 * ====================================================================== */

static void check_quant(const float *l, const char *what) {
  uint32_t f[256];
  bt_quantize_logits(l, f);
  CHECK(table_ok(f), "%s: table not valid", what);
}

static void test_quant(void) {
  float l[256];
  /* Random logits at many scales, checked against the double softmax: the
   * excess code length (KL divergence) and the absolute error per symbol
   * (the +1 floor, truncation, and the fix-up the largest symbol absorbs).
   * The floor alone costs log2(2^24 / (2^24 - 256)) = 2.2e-5 bits when one
   * symbol takes all the mass. */
  double worst_kl = 0, worst_abs = 0;
  for (int trial = 0; trial < 2000; trial++) {
    float scale = trial < 1000 ? 0.01f * (float)(trial + 1) : 1000.0f * rnd_unit();
    for (int i = 0; i < 256; i++) l[i] = scale * (2.0f * rnd_unit() - 1.0f) + 3.0f;
    uint32_t f[256];
    bt_quantize_logits(l, f);
    CHECK(table_ok(f), "random trial %d", trial);
    double m = -INFINITY, s = 0;
    for (int i = 0; i < 256; i++) m = l[i] > m ? l[i] : m;
    for (int i = 0; i < 256; i++) s += exp(l[i] - m);
    double kl = 0;
    for (int i = 0; i < 256; i++) {
      double p = exp(l[i] - m) / s, q = f[i] / (double)BT_FREQ_TOTAL;
      if (p > 0) kl += p * log2(p / q);
      if (fabs(p - q) > worst_abs) worst_abs = fabs(p - q);
    }
    if (kl > worst_kl) worst_kl = kl;
  }
  printf("quantiser: worst excess %.3g bits/symbol, worst |p - q| %.3g\n", worst_kl, worst_abs);
  CHECK(worst_kl < 5e-5, "quantisation costs %.3g bits/symbol", worst_kl);
  CHECK(worst_abs < 300.0 / BT_FREQ_TOTAL, "quantised probability off by %.3g", worst_abs);

  /* Extremes. */
  for (int i = 0; i < 256; i++) l[i] = (i & 1) ? 1e30f : -1e30f;
  check_quant(l, "+-1e30");
  for (int i = 0; i < 256; i++) l[i] = 42.0f;
  check_quant(l, "all equal");
  {
    uint32_t f[256];
    bt_quantize_logits(l, f);
    int uni = 1;
    for (int i = 0; i < 256; i++) uni &= f[i] == (1u << 16);
    CHECK(uni, "equal logits not uniform: f[0]=%u", f[0]);
  }
  for (int i = 0; i < 256; i++) l[i] = (i % 3) ? -INFINITY : (float)i;
  check_quant(l, "-inf entries");
  for (int i = 0; i < 256; i++) l[i] = -INFINITY;
  check_quant(l, "all -inf");
  for (int i = 0; i < 256; i++) l[i] = 0.0f;
  l[200] = 3e38f;
  check_quant(l, "one huge");
  {
    uint32_t f[256];
    bt_quantize_logits(l, f);
    CHECK(f[200] == BT_FREQ_TOTAL - 255, "one huge: f=%u", f[200]);
  }
  for (int i = 0; i < 256; i++) l[i] = 0.0f;
  l[7] = INFINITY;
  l[9] = INFINITY;
  check_quant(l, "+inf entries");
  for (int i = 0; i < 256; i++) l[i] = (i % 5) ? NAN : 1.0f;
  check_quant(l, "NaN entries");
  for (int i = 0; i < 256; i++) l[i] = NAN;
  check_quant(l, "all NaN");
  for (int i = 0; i < 256; i++) l[i] = (float)i * 1e-45f;
  check_quant(l, "denormals");
  for (int i = 0; i < 256; i++) l[i] = -3e38f + (float)i * 1e33f;
  check_quant(l, "huge negative");
  for (int i = 0; i < 256; i++) l[i] = (float)i * 0.5f; /* steep ramp: many at the floor */
  check_quant(l, "ramp");

  /* Golden: the tables' bits must never change between builds, compilers or
   * machines (files would stop decoding). CRC of 1000 tables from a fixed
   * logit sequence. */
  uint64_t s = 12345;
  uint32_t crc = 0;
  for (int trial = 0; trial < 1000; trial++) {
    float scale = 0.05f * (float)(trial % 200 + 1);
    for (int i = 0; i < 256; i++)
      l[i] = scale * (float)((double)(check_rng_next_(&s) >> 11) * 0x1p-52 - 1.0);
    uint32_t f[256];
    uint8_t le[1024];
    bt_quantize_logits(l, f);
    for (int i = 0; i < 256; i++)
      for (int b = 0; b < 4; b++) le[4 * i + b] = (uint8_t)(f[i] >> (8 * b));
    crc = bt_crc32(crc, le, sizeof le);
  }
  CHECK(crc == 0x5a7bc7ddu, "quantiser golden CRC changed: 0x%08x", crc);

  /* Cost and log-loss helpers. */
  uint32_t f[256];
  for (int i = 0; i < 256; i++) f[i] = 1u << 16;
  CHECK_NEAR(bt_freq_cost_bits(f, 3), 8.0, 1e-12);
  for (int i = 0; i < 256; i++) l[i] = 0.0f;
  CHECK_NEAR(bt_logits_logloss_bits(l, 9), 8.0, 1e-12);
}

/* ======================================================================
 * coded size against the model's log-loss
 * ====================================================================== */

/* >= 1 MB of symbols, each drawn from its own random peaked distribution
 * (entropy ~1.5 bits, like text under a decent model): the coded size must
 * be within 0.1% + 8 bytes of the summed -log2 p under the double softmax. */
/* Tables over V symbols (a BPE model's tokens): the byte quantiser's bits at
 * V = 256; every table valid and close to the softmax at 1K, 20K and 64K
 * (including NaN and infinite logits); bt_freq_find is the linear search;
 * and a round trip of symbols past 255 through the range coder. */
static void test_quant_v(void) {
  uint64_t rs = 77;
  float l256[256], scratch[256];
  uint32_t a[256], b[256];
  for (int t = 0; t < 200; t++) {
    const float temp = (float)(0.1 + (double)(check_rng_next_(&rs) % 1000) / 50.0);
    for (int i = 0; i < 256; i++)
      l256[i] = temp * (float)((double)(check_rng_next_(&rs) >> 11) * 0x1p-53 - 0.5);
    if (t % 7 == 3) l256[t % 256] = NAN;
    if (t % 11 == 5) l256[(t * 3) % 256] = INFINITY;
    bt_quantize_logits(l256, a);
    bt_quantize_logits_v(l256, 256, b, scratch);
    CHECK(!memcmp(a, b, sizeof a), "V = 256: the table differs from bt_quantize_logits (case %d)", t);
  }
  static const int Vs[] = {300, 1000, 1001, 20000, 65536};
  for (size_t k = 0; k < sizeof Vs / sizeof Vs[0]; k++) {
    const int V = Vs[k];
    float *l = malloc((size_t)V * sizeof *l), *sc = malloc((size_t)V * sizeof *sc);
    uint32_t *f = malloc((size_t)V * sizeof *f), *cum = malloc(((size_t)V + 1) * sizeof *cum);
    for (int t = 0; t < 6; t++) {
      for (int i = 0; i < V; i++)
        l[i] = 12.0f * (float)((double)(check_rng_next_(&rs) >> 11) * 0x1p-53 - 0.5);
      if (t == 1) l[V - 1] = NAN;
      if (t == 2) l[V / 2] = INFINITY, l[V / 3] = INFINITY;
      if (t == 3)
        for (int i = 0; i < V; i++) l[i] = -INFINITY;
      bt_quantize_logits_v(l, V, f, sc);
      { /* the fused log-loss: the same table, and the double report's figure */
        uint32_t *f2 = malloc((size_t)V * sizeof *f2);
        float *sc2 = malloc((size_t)V * sizeof *sc2);
        int worst = 0;
        double dmax = 0;
        for (int q = 0; q < 8; q++) {
          const int sym = q == 0 ? V - 1 : (int)(check_rng_next_(&rs) % (uint64_t)V);
          const double got = bt_quantize_logits_v_loss(l, V, f2, sc2, sym), want = bt_logits_logloss_bits_v(l, V, sym);
          worst |= memcmp(f, f2, (size_t)V * sizeof *f);
          if (t == 0 || t == 4 || t == 5) {
            const double d = fabs(got - want);
            dmax = d > dmax ? d : dmax;
          } else if (t == 1) /* a NaN logit counts as probability 0, as in the table: the
                                * other symbols' losses stay finite (the double report's are NaN) */
            worst |= sym == V - 1 ? !isnan(got) : !isfinite(got);
          else /* +inf or all -inf logits: both say NaN */
            worst |= !isnan(got) || !isnan(want);
        }
        CHECK(!worst && dmax < 1e-4, "V = %d case %d: the fused log-loss: wrong table or figure, %.3g bits off",
              V, t, dmax);
        free(f2), free(sc2);
      }
      uint64_t sum = 0;
      int ok = 1;
      for (int i = 0; i < V; i++) {
        ok &= f[i] >= 1;
        sum += f[i];
      }
      CHECK(ok && sum == BT_FREQ_TOTAL, "V = %d case %d: frequencies %s, sum %llu", V, t, ok ? ">= 1" : "with a 0",
            (unsigned long long)sum);
      if (t == 0) { /* close to the double softmax: a few parts in 2^24 of code length */
        double mx = -INFINITY, z = 0, kl = 0;
        for (int i = 0; i < V; i++) mx = l[i] > mx ? l[i] : mx;
        for (int i = 0; i < V; i++) z += exp((double)l[i] - mx);
        for (int i = 0; i < V; i++) {
          const double p = exp((double)l[i] - mx) / z;
          kl += p * log2(p / ((double)f[i] / BT_FREQ_TOTAL));
        }
        CHECK(kl < 1e-2 * (double)V / 65536 + 1e-4, "V = %d: the table costs %.3g bits over the softmax", V, kl);
      }
      if (t == 2)
        CHECK(f[V / 2] + f[V / 3] > BT_FREQ_TOTAL - (uint32_t)V - 2, "V = %d: +inf logits do not share the mass", V);
      bt_freq_cumulative_v(f, V, cum);
      CHECK(cum[V] == BT_FREQ_TOTAL, "V = %d: cumulative total", V);
      int bad = 0;
      for (int q = 0; q < 2000; q++) {
        const uint32_t u = (uint32_t)(check_rng_next_(&rs) % BT_FREQ_TOTAL);
        int lin = 0;
        while (cum[lin + 1] <= u) lin++;
        bad += bt_freq_find(cum, V, u) != lin;
      }
      bad += bt_freq_find(cum, V, 0) != 0 || bt_freq_find(cum, V, BT_FREQ_TOTAL - 1) != V - 1;
      CHECK(!bad, "V = %d: bt_freq_find differs from the linear search %d times", V, bad);
    }
    /* symbols past 255 through the coder and back */
    enum { N = 3000 };
    static uint16_t syms[N];
    static uint8_t buf[N * 4];
    bt_rc_enc e;
    bt_rc_enc_init(&e, buf, sizeof buf);
    for (int i = 0; i < N; i++) {
      syms[i] = (uint16_t)(check_rng_next_(&rs) % 3 ? check_rng_next_(&rs) % 64 : check_rng_next_(&rs) % (uint64_t)V);
      bt_rc_encode(&e, cum[syms[i]], f[syms[i]]);
    }
    const size_t got = bt_rc_enc_finish(&e);
    bt_rc_dec d;
    bt_rc_dec_init(&d, buf, got);
    int bad = 0;
    for (int i = 0; i < N; i++) {
      const int sy = bt_freq_find(cum, V, bt_rc_decode_target(&d));
      bt_rc_decode_update(&d, cum[sy], f[sy]);
      bad += sy != syms[i];
    }
    CHECK(got != SIZE_MAX && !bad && !bt_rc_dec_corrupt(&d), "V = %d: %d of %d symbols decode wrong", V, bad, N);
    free(l), free(sc), free(f), free(cum);
  }
}

static void test_rc_overhead(void) {
  size_t n = 1u << 20;
  size_t cap = n * 2;
  uint8_t *buf = malloc(cap);
  int *syms = malloc(n * sizeof *syms);
  bt_rc_enc e;
  bt_rc_enc_init(&e, buf, cap);
  double ideal = 0, quant = 0, entropy = 0;
  float l[256];
  uint32_t f[256], cum[257];
  uint64_t s = 777;
  for (size_t t = 0; t < n; t++) {
    for (int i = 0; i < 256; i++) /* background in [-2, 2) */
      l[i] = (float)((double)(check_rng_next_(&s) >> 11) * 0x1p-51 - 2.0);
    uint64_t r = check_rng_next_(&s);
    l[r & 255] += 9.0f; /* a favourite, a runner-up, an outsider */
    l[(r >> 8) & 255] += 7.5f;
    l[(r >> 16) & 255] += 5.0f;
    bt_quantize_logits(l, f);
    bt_freq_cumulative(f, cum);
    int sym = sample_cum(cum);
    syms[t] = sym;
    bt_rc_encode(&e, cum[sym], f[sym]);
    ideal += bt_logits_logloss_bits(l, sym);
    quant += bt_freq_cost_bits(f, sym);
    if (t < 4096) { /* entropy estimate on a sample */
      for (int i = 0; i < 256; i++) {
        double p = f[i] / (double)BT_FREQ_TOTAL;
        entropy -= p * log2(p);
      }
    }
  }
  size_t sz = bt_rc_enc_finish(&e);
  CHECK(sz != SIZE_MAX, "overflow");
  double coded = 8.0 * (double)sz;
  printf("overhead: %zu symbols, entropy ~%.3f bits/sym, log-loss %.1f bytes, "
         "quantised cost %.1f bytes, coded %zu bytes: %+.5f%% vs log-loss, %+.5f%% vs "
         "quantised (carries %llu, longest 0xFF run %llu)\n",
         n, entropy / 4096, ideal / 8, quant / 8, sz, 100 * (coded - ideal) / ideal,
         100 * (coded - quant) / quant, (unsigned long long)e.n_carry,
         (unsigned long long)e.max_pending);
  CHECK(fabs(coded - ideal) <= 0.001 * ideal + 64, "coded %.0f bits, log-loss %.0f bits", coded,
        ideal);
  /* The coder itself adds at most a few bytes over the quantised cost. */
  CHECK(coded <= quant + 0.00001 * quant + 64 && coded >= quant - 64,
        "coded %.0f bits, quantised cost %.0f bits", coded, quant);
  CHECK(sz >= n / 8, "a 1 MB test needs >= 1 MB of symbols and ~1.5 bits each (%zu bytes)", sz);
  /* And it decodes (a prefix: round trips are tested above; this keeps the
   * test fast under sanitizers). */
  bt_rc_dec d;
  bt_rc_dec_init(&d, buf, sz);
  s = 777;
  size_t bad = 0;
  for (size_t t = 0; t < n / 8; t++) {
    for (int i = 0; i < 256; i++)
      l[i] = (float)((double)(check_rng_next_(&s) >> 11) * 0x1p-51 - 2.0);
    uint64_t r = check_rng_next_(&s);
    l[r & 255] += 9.0f;
    l[(r >> 8) & 255] += 7.5f;
    l[(r >> 16) & 255] += 5.0f;
    bt_quantize_logits(l, f);
    bt_freq_cumulative(f, cum);
    bad += bt_rc_decode(&d, cum) != syms[t];
  }
  CHECK(bad == 0, "%zu symbols wrong", bad);
  free(buf);
  free(syms);
}

/* ======================================================================
 * container
 * ====================================================================== */

/* A compressor for the tests: chunk i's symbols are coded under tables from
 * a position-seeded pseudo-model, stored raw when coding does not shrink. */
static void toy_logits(uint64_t pos, uint8_t prev, float l[256]) {
  uint64_t s = pos * 0x9E3779B97F4A7C15ULL + 1;
  for (int i = 0; i < 256; i++)
    l[i] = (float)((double)(check_rng_next_(&s) >> 11) * 0x1p-52 - 1.0);
  l[(uint8_t)(prev + 1)] += 6.0f;
  l['e'] += 3.0f;
}

static void make_data(uint8_t *d, size_t n, int kind) {
  uint8_t prev = 0;
  for (size_t i = 0; i < n; i++) {
    /* kind 0: the toy model's favourite sequence with noise (compressible);
     * kind 1: random (incompressible); kind 2: alternating runs of both */
    int rand_part = kind == 1 || (kind == 2 && (i / 3000) % 2);
    d[i] = rand_part ? (uint8_t)rnd() : rnd_below(8) ? (uint8_t)(prev + 1) : 'e';
    prev = d[i];
  }
}

/* Compresses data into a new malloc'd container; *out_len its size. */
static uint8_t *toy_compress(const uint8_t *data, uint64_t n, uint32_t chunk, int stream,
                             size_t *out_len) {
  bt_container_header h;
  memset(&h, 0, sizeof h);
  for (int i = 0; i < 32; i++) h.ckpt_sha256[i] = (uint8_t)(i * 7);
  h.n_layer = 4; h.n_head = 8; h.d_model = 256; h.ctx = 2048;
  h.chunk = stream ? 0 : chunk;
  h.stream = stream;
  h.orig_size = n;
  h.orig_crc = bt_crc32(0, data, n);
  h.n_chunks = bt_container_n_chunks(n, h.chunk, stream);
  size_t hs = bt_container_header_size(h.n_chunks);
  uint8_t *out = malloc(hs + n + 1);
  uint32_t *sizes = malloc((h.n_chunks + 1) * sizeof *sizes);
  size_t pos = hs;
  float l[256];
  uint32_t f[256], cum[257];
  for (uint64_t c = 0; c < h.n_chunks; c++) {
    uint64_t start = stream ? 0 : c * chunk, len = bt_container_chunk_len(&h, c);
    bt_rc_enc e;
    bt_rc_enc_init(&e, out + pos, len - 1); /* coded only if strictly smaller */
    for (uint64_t i = 0; i < len && !bt_rc_enc_overflowed(&e); i++) {
      toy_logits(i, i ? data[start + i - 1] : 0, l);
      bt_quantize_logits(l, f);
      bt_freq_cumulative(f, cum);
      uint8_t b = data[start + i];
      bt_rc_encode(&e, cum[b], f[b]);
    }
    size_t sz = bt_rc_enc_finish(&e);
    if (sz == SIZE_MAX) {
      memcpy(out + pos, data + start, len);
      sz = len;
    }
    sizes[c] = (uint32_t)sz;
    pos += sz;
  }
  CHECK(bt_container_write_header(out, &h, sizes) == BT_OK, "write: %s", bt_error_detail());
  free(sizes);
  *out_len = pos;
  return out;
}

/* Parses and decodes; returns the parse error, *ok = data round-tripped. */
static bt_error toy_decompress(const uint8_t *in, size_t len, const uint8_t *data, uint64_t n,
                               int *ok) {
  bt_container_header h;
  uint64_t *off;
  *ok = 0;
  bt_error err = bt_container_parse(in, len, &h, &off);
  if (err) {
    CHECK(off == NULL, "offsets left set on error");
    return err;
  }
  CHECK(off[h.n_chunks] == len, "offsets end at %llu, not %zu", (unsigned long long)off[h.n_chunks],
        len);
  uint8_t *dec = malloc(h.orig_size + 1);
  uint64_t pos = 0;
  float l[256];
  uint32_t f[256], cum[257];
  for (uint64_t c = 0; c < h.n_chunks; c++) {
    uint64_t clen = bt_container_chunk_len(&h, c), psz = off[c + 1] - off[c];
    if (psz == clen) {
      memcpy(dec + pos, in + off[c], clen);
    } else {
      bt_rc_dec d;
      bt_rc_dec_init(&d, in + off[c], psz);
      for (uint64_t i = 0; i < clen; i++) {
        toy_logits(i, i ? dec[pos + i - 1] : 0, l);
        bt_quantize_logits(l, f);
        bt_freq_cumulative(f, cum);
        dec[pos + i] = (uint8_t)bt_rc_decode(&d, cum);
      }
    }
    pos += clen;
  }
  *ok = pos == n && h.orig_crc == bt_crc32(0, dec, pos) && (n == 0 || !memcmp(dec, data, n));
  free(dec);
  free(off);
  return BT_OK;
}

/* The product's promise: output <= input + 64 + 4 * n_chunks. */
static int within_bound(size_t file_len, uint64_t n, uint32_t chunk, int stream) {
  return (uint64_t)file_len <= bt_container_bound(n, chunk, stream);
}

static void set_le(uint8_t *p, uint64_t v, int n) {
  for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get_le(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

/* Writes the header CRC of a hand-edited container (n_chunks from its fields). */
static void fix_crc(uint8_t *c, size_t len) {
  uint64_t orig = get_le(c + 50, 6);
  uint32_t chunk = (uint32_t)get_le(c + 46, 4);
  uint64_t n = bt_container_n_chunks(orig, chunk, c[5] & 1);
  const size_t hb = c[4] == 2 ? 64 : BT_CONTAINER_HEADER_BYTES, at = hb - 4; /* CRC's offset */
  if (n == UINT64_MAX || n > (len - hb) / 4) n = 0;
  uint32_t crc = bt_crc32(bt_crc32(0, c, at), c + hb, 4 * (size_t)n);
  for (int i = 0; i < 4; i++) c[at + i] = (uint8_t)(crc >> (8 * i));
}

static void test_container(void) {
  struct { uint64_t n; uint32_t chunk; int stream, kind; } cases[] = {
      {0, 2048, 0, 0},     {0, 0, 1, 0},        {1, 2048, 0, 0},    {1, 0, 1, 1},
      {5000, 2048, 0, 0},  {5000, 2048, 0, 1},  {12000, 1000, 0, 2}, {8191, 0, 1, 0},
      {4096, 2048, 0, 2},  {300, 7, 0, 0},      {6000, 0, 1, 1},
  };
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    uint64_t n = cases[k].n;
    uint8_t *data = malloc(n + 1);
    make_data(data, n, cases[k].kind);
    size_t len;
    uint8_t *c = toy_compress(data, n, cases[k].chunk, cases[k].stream, &len);
    int ok;
    CHECK(toy_decompress(c, len, data, n, &ok) == BT_OK && ok, "case %zu: round trip (%s)", k,
          bt_error_detail());
    CHECK(within_bound(len, n, cases[k].chunk, cases[k].stream), "case %zu: %zu bytes", k, len);
    if (cases[k].kind == 1)
      CHECK((uint64_t)len == bt_container_bound(n, cases[k].chunk, cases[k].stream),
            "case %zu: random data should be stored: %zu bytes", k, len);
    if (cases[k].kind == 0 && n >= 5000) CHECK(len < n / 2, "case %zu: %zu bytes", k, len);

    if (k == 6 || k == 7 || k == 9) {
      /* Every truncation is rejected, as is any appended byte. */
      size_t bad = 0;
      for (size_t t = 0; t < len; t++) {
        uint8_t *tr = malloc(t ? t : 1);
        memcpy(tr, c, t);
        bt_container_header h;
        uint64_t *off;
        bt_error e = bt_container_parse(t ? tr : NULL, t, &h, &off);
        bad += e != BT_ERR_CORRUPT;
        free(off);
        free(tr);
      }
      CHECK(bad == 0, "case %zu: %zu truncations not rejected as corrupt", k, bad);
      uint8_t *ext = malloc(len + 1);
      memcpy(ext, c, len);
      ext[len] = 0;
      bt_container_header h;
      uint64_t *off;
      CHECK(bt_container_parse(ext, len + 1, &h, &off) == BT_ERR_CORRUPT, "appended byte");
      free(ext);

      /* Every single bit flip in the header and table is rejected. */
      size_t hs = bt_container_header_size(bt_container_n_chunks(n, cases[k].chunk,
                                                                 cases[k].stream));
      size_t missed = 0;
      for (size_t bit = 0; bit < 8 * hs; bit++) {
        c[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        bt_error e = bt_container_parse(c, len, &h, &off);
        missed += e == BT_OK;
        free(off);
        c[bit / 8] ^= (uint8_t)(1u << (bit % 8));
      }
      CHECK(missed == 0, "case %zu: %zu header bit flips accepted", k, missed);
      /* A flip in a payload passes the parser but not the data CRC. */
      if (len > hs) {
        c[len - 1] ^= 0x10;
        CHECK(toy_decompress(c, len, data, n, &ok) == BT_OK && !ok, "payload flip undetected");
        c[len - 1] ^= 0x10;
      }
    }
    free(c);
    free(data);
  }

  /* Targeted rejections on one valid file (CRC recomputed each time, so the
   * check under test is the one that fires). */
  uint64_t n = 10000;
  uint8_t *data = malloc(n);
  make_data(data, n, 2);
  size_t len;
  uint8_t *good = toy_compress(data, n, 2048, 0, &len);
  uint8_t *c = malloc(len + 16);
  bt_container_header h;
  uint64_t *off;
#define REJECT(expect, what, ...)                                          \
  do {                                                                     \
    memcpy(c, good, len);                                                  \
    size_t clen = len;                                                     \
    __VA_ARGS__;                                                           \
    bt_error e_ = bt_container_parse(c, clen, &h, &off);                   \
    CHECK(e_ == (expect), "%s: got %s (%s)", what, bt_error_name(e_), bt_error_detail()); \
    CHECK(off == NULL, "%s: offsets set", what);                           \
  } while (0)
  REJECT(BT_ERR_FORMAT, "wrong magic", { c[0] = 'X'; fix_crc(c, clen); });
  REJECT(BT_ERR_FORMAT, "not a container", { memcpy(c, "\x1f\x8b\x08\x00", 4); });
  REJECT(BT_ERR_FORMAT, "future version", { c[4] = BT_CONTAINER_VERSION + 1; fix_crc(c, clen); });
  REJECT(BT_ERR_FORMAT, "version 1 (float cache)", { c[4] = 1; fix_crc(c, clen); });
  REJECT(BT_ERR_FORMAT, "version 0", { c[4] = 0; fix_crc(c, clen); });
  REJECT(BT_ERR_FORMAT, "unknown flag", { c[5] |= 0x80; fix_crc(c, clen); });
  /* Version 4: version 3 plus flag bit 2 (the int8 KV cache), which a
   * version-3 member may not carry. The writer writes 3 unless kv8. */
  CHECK(good[4] == 3 && (good[5] & 4) == 0, "a bfloat16 member is written as version 3 (%d)", good[4]);
  REJECT(BT_ERR_FORMAT, "the int8 cache's flag on a version-3 member", { c[5] |= 4; fix_crc(c, clen); });
  REJECT(BT_ERR_FORMAT, "an unknown flag on a version-4 member", {
    c[4] = 4;
    c[5] |= 8;
    fix_crc(c, clen);
  });
  for (int v4flag = 0; v4flag < 2; v4flag++) {
    memcpy(c, good, len);
    c[4] = 4;
    c[5] |= v4flag ? 4 : 0;
    fix_crc(c, len);
    bt_error e4 = bt_container_parse(c, len, &h, &off);
    CHECK(e4 == BT_OK && h.version == 4 && h.kv8 == v4flag, "version 4, flag %d: %s, kv8 %d", v4flag,
          bt_error_name(e4), h.kv8);
    free(off);
  }
  REJECT(BT_ERR_CORRUPT, "header crc", { c[108] ^= 1; });
  REJECT(BT_ERR_CORRUPT, "model name flip", { c[61] ^= 1; });
  REJECT(BT_ERR_FORMAT, "adaptive settings on a plain member", { c[90] = 1; fix_crc(c, clen); });
  REJECT(BT_ERR_FORMAT, "adaptive with an invalid schedule", { c[5] |= 2; fix_crc(c, clen); });
  REJECT(BT_ERR_CORRUPT, "config flip", { c[40] ^= 1; });
  REJECT(BT_ERR_CORRUPT, "orig_size for one chunk more than the table", {
    set_le(c + 50, 12000, 6);
    fix_crc(c, clen);
  });
  REJECT(BT_ERR_CORRUPT, "orig_size for one chunk fewer", {
    set_le(c + 50, 8192, 6);
    fix_crc(c, clen);
  });
  REJECT(BT_ERR_CORRUPT, "chunk size 1024", { set_le(c + 46, 1024, 4); fix_crc(c, clen); });
  REJECT(BT_ERR_CORRUPT, "chunk size 0 outside stream mode", {
    memset(c + 46, 0, 4);
    fix_crc(c, clen);
  });
  REJECT(BT_ERR_CORRUPT, "stream mode with a chunk size", { c[5] |= 1; fix_crc(c, clen); });
  REJECT(BT_ERR_CORRUPT, "orig_size 2^48-1 with chunk 1 (no huge allocation)", {
    memset(c + 50, 0xFF, 6);
    c[46] = 1; c[47] = c[48] = c[49] = 0;
    fix_crc(c, clen);
  });
  REJECT(BT_ERR_CORRUPT, "payload sizes not summing to the file", {
    c[112] ^= 1; /* first payload 1 byte shorter/longer */
    fix_crc(c, clen);
  });
  REJECT(BT_ERR_CORRUPT, "trailing garbage", { c[clen++] = 0; });
  /* A payload longer than its raw chunk, with the sizes still summing to the
   * file: move bytes from a coded chunk's size to the stored chunk's. */
  {
    int stored = -1, coded = -1;
    for (int i = 0; i < 5; i++) {
      uint64_t s = get_le(good + 112 + 4 * i, 4);
      if (s == 2048 && stored < 0) stored = i;
      if (s < 2048 && s > 0 && coded < 0) coded = i;
    }
    CHECK(stored >= 0 && coded >= 0, "test file needs stored and coded chunks (%d, %d)", stored,
          coded);
    if (stored >= 0 && coded >= 0) {
      REJECT(BT_ERR_CORRUPT, "payload > raw chunk", {
        set_le(c + 112 + 4 * stored, 2049, 4);
        set_le(c + 112 + 4 * coded, get_le(c + 112 + 4 * coded, 4) - 1, 4); /* same sum */
        fix_crc(c, clen);
      });
    }
  }
  /* Empty input: 112 bytes, no table, no payload. */
  {
    size_t el;
    uint8_t *e = toy_compress(NULL, 0, 2048, 0, &el);
    CHECK(el == 112, "empty container is %zu bytes", el);
    CHECK(bt_container_parse(e, el, &h, &off) == BT_OK && h.n_chunks == 0 && off[0] == 112,
          "empty container parse");
    free(off);
    free(e);
  }

  /* Writer argument checks. */
  {
    bt_container_header w;
    memset(&w, 0, sizeof w);
    uint8_t out[BT_CONTAINER_HEADER_BYTES + 4 * 4];
    uint32_t sizes[4] = {10, 10, 10, 3};
    w.chunk = 10; w.orig_size = 33; w.n_chunks = 4;
    CHECK(bt_container_write_header(out, &w, sizes) == BT_OK, "valid write");
    CHECK(out[4] == 3 && out[5] == 0, "bfloat16: version 3, flags %d", out[5]);
    w.kv8 = 1;
    CHECK(bt_container_write_header(out, &w, sizes) == BT_OK && out[4] == 4 && out[5] == 4,
          "int8 cache: version 4 with flag bit 2 (%d, %d)", out[4], out[5]);
    w.kv8 = 0;
    sizes[3] = 4;
    CHECK(bt_container_write_header(out, &w, sizes) == BT_ERR_ARG, "payload > last chunk");
    sizes[3] = 3;
    w.n_chunks = 3;
    CHECK(bt_container_write_header(out, &w, sizes) == BT_ERR_ARG, "wrong n_chunks");
    w.n_chunks = 4;
    w.n_layer = 256;
    CHECK(bt_container_write_header(out, &w, sizes) == BT_ERR_ARG, "n_layer 256");
    w.n_layer = 4;
    w.stream = 1;
    CHECK(bt_container_write_header(out, &w, sizes) == BT_ERR_ARG, "stream with chunk");
    w.stream = 0;
    w.orig_size = 1ull << 48;
    CHECK(bt_container_write_header(out, &w, sizes) == BT_ERR_ARG, "orig_size 2^48");
  }

  /* Negative control for the size bound: a file that expands a chunk (coded
   * output kept although longer than the raw chunk) breaks the promise, the
   * bound check says so, and the parser refuses the file. */
  {
    uint64_t rn = 3000;
    uint8_t *rd = malloc(rn);
    make_data(rd, rn, 1);
    float l[256];
    uint32_t f[256], cum[257];
    uint8_t *pay = malloc(rn * 4);
    bt_rc_enc e;
    bt_rc_enc_init(&e, pay, rn * 4);
    for (uint64_t i = 0; i < rn; i++) {
      toy_logits(i, i ? rd[i - 1] : 0, l);
      bt_quantize_logits(l, f);
      bt_freq_cumulative(f, cum);
      bt_rc_encode(&e, cum[rd[i]], f[rd[i]]);
    }
    size_t psz = bt_rc_enc_finish(&e);
    CHECK(psz != SIZE_MAX && psz > rn, "random data under the toy model should expand (%zu)", psz);
    size_t blen = 64 + 4 + psz;
    uint8_t *bad = malloc(blen);
    bt_container_header w;
    memset(&w, 0, sizeof w);
    w.stream = 1; w.orig_size = rn; w.n_chunks = 1;
    uint32_t sz32 = (uint32_t)psz;
    CHECK(bt_container_write_header(bad, &w, &sz32) == BT_ERR_ARG, "writer refuses expansion");
    sz32 = (uint32_t)rn; /* write a valid header, then patch the size in */
    CHECK(bt_container_write_header(bad, &w, &sz32) == BT_OK, "header");
    set_le(bad + 64, psz, 4);
    fix_crc(bad, blen);
    memcpy(bad + 68, pay, psz);
    CHECK(!within_bound(blen, rn, 0, 1), "bound check missed an expanded file (%zu > %llu)",
          blen, (unsigned long long)bt_container_bound(rn, 0, 1));
    CHECK(bt_container_parse(bad, blen, &h, &off) == BT_ERR_CORRUPT, "expanded file parsed");
    free(bad);
    free(pay);
    free(rd);
  }
#undef REJECT
  free(c);
  free(good);
  free(data);
}

int main(void) {
  test_rc_random();
  test_rc_carry();
  test_rc_hostile();
  test_rc_capacity();
  test_quant();
  test_quant_v();
  test_rc_overhead();
  test_container();
  return check_summary("test_coder");
}
