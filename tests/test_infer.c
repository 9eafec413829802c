/*
 * test_infer.c - inference: the incremental pass (KV cache) gives the batched
 * pass's logits bit for bit, on every ISA path this CPU has, at 1 and 2
 * threads, for any number of streams beside; prefill + steps too; both stay
 * close to the training forward (K and V are cached as bfloat16); a
 * perturbed weight changes the bits.
 * Prints one hash per config, so builds with gcc and clang can be compared.
 */
#include "tests/check.h"

#include <omp.h>

#include "infer/infer.h"
#include "kernels/kernels.h"
#include "train/model.h"

#define V BT_VOCAB

static uint64_t fnv1a(const void *p, size_t n, uint64_t h) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    h = (h ^ b[i]) * 0x100000001b3ULL;
  return h;
}

static void fill_bytes(uint8_t *x, size_t n, uint64_t seed) {
  uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 7;
  for (size_t i = 0; i < n; i++) {
    /* mostly a small alphabet, so attention sees repeats */
    uint64_t r = check_rng_next_(&s);
    x[i] = (uint8_t)(r % 5 ? 'a' + (r >> 8) % 6 : (r >> 16) & 255);
  }
}

static int n_isas(bt_isa *isas) {
  int k = 0;
  for (int i = BT_ISA_SCALAR; i <= (int)bt_isa_detect(); i++)
    isas[k++] = (bt_isa)i;
  return k;
}

/* Row-by-row memcmp of (rows, V) logits; returns the first differing row or -1. */
static int first_diff_row(const float *a, const float *b, int rows) {
  for (int r = 0; r < rows; r++)
    if (memcmp(a + (size_t)r * V, b + (size_t)r * V, V * sizeof(float)))
      return r;
  return -1;
}

/* Incremental pass of streams 0..n-1 over seq (n, T): logits (n, T, V). */
static bt_error run_steps(bt_infer *inf, const uint8_t *seq, int n, int T, float *out) {
  float *lg = malloc((size_t)n * V * sizeof(float));
  uint8_t *tok = malloc((size_t)n);
  bt_infer_reset(inf, n);
  bt_error e = BT_OK;
  for (int t = 0; t < T && !e; t++) {
    for (int s = 0; s < n; s++)
      tok[s] = t ? seq[(size_t)s * T + t - 1] : 0;
    e = bt_infer_step(inf, t ? tok : NULL, n, lg);
    for (int s = 0; s < n; s++)
      memcpy(out + ((size_t)s * T + t) * V, lg + (size_t)s * V, V * sizeof(float));
  }
  free(lg);
  free(tok);
  return e;
}

/* Every parameter cut to a binary16 value (low mantissa bits dropped, below
 * the halves' normal range zero), as a half checkpoint loads. */
static void to_halves(bt_model *m) {
  float *P = bt_model_params(m);
  for (size_t i = 0; i < bt_model_num_params(m); i++) {
    uint32_t u;
    memcpy(&u, &P[i], sizeof u);
    u = fabsf(P[i]) < 0x1p-14f ? u & 0x80000000u : u & ~0x1fffu;
    memcpy(&P[i], &u, sizeof u);
  }
}

/* half: the model's weights are halves, so few-row passes (steps, prefill
 * of short prefixes) read its matrices as binary16 and batched passes as
 * floats; every comparison below then checks the one against the other. */
static void test_config(bt_config cfg, int n, int T, uint64_t seed, int full, int half, int kv8) {
  char name[96];
  snprintf(name, sizeof name, "L%d C%d H%d n%d T%d%s%s", cfg.n_layer, cfg.d_model, cfg.n_head, n, T,
           half ? " half" : "", kv8 ? " kv8" : "");
  bt_model *m = NULL;
  CHECK(bt_model_create(&m, &cfg) == BT_OK, "%s: create", name);
  if (!m)
    return;
  bt_model_init(m, seed);
  if (half)
    to_halves(m);
  const size_t NT = (size_t)n * T;
  uint8_t *seq = malloc(NT);
  fill_bytes(seq, NT, seed);
  float *ref = malloc(NT * V * sizeof(float));
  float *got = malloc(NT * V * sizeof(float));
  bt_isa isas[3];
  const int ni = n_isas(isas);
  const bt_isa isa0 = bt_isa_get();

  bt_infer *inf = NULL;
  CHECK(bt_infer_create(&inf, m, n, T) == BT_OK, "%s: infer create: %s", name, bt_error_detail());
  if (!inf)
    goto done;
  CHECK(bt_infer_half_weights(inf) == half, "%s: matrices read as halves: %d", name,
        bt_infer_half_weights(inf));
  if (kv8) { /* the int8 cache computes other logits than the bfloat16 one */
    CHECK(bt_infer_batched(inf, seq, n, T, got) == BT_OK, "%s: batched bf16", name);
    bt_infer_set_kv8(inf, BT_KV_INT8);
    CHECK(bt_infer_kv8(inf) == BT_KV_INT8, "%s: kv8 set", name);
    CHECK(bt_infer_batched(inf, seq, n, T, ref) == BT_OK, "%s: batched kv8", name);
    CHECK(memcmp(got, ref, NT * V * sizeof(float)) != 0, "%s: the int8 cache changes nothing", name);
  }

  /* The reference: batched, best path, 2 threads. */
  omp_set_num_threads(2);
  CHECK(bt_infer_batched(inf, seq, n, T, ref) == BT_OK, "%s: batched", name);

  /* Close to the training forward: another summation order in attention, and
   * K and V rounded to bfloat16 (8 significant bits, relative error <= 2^-9)
   * in the cache; measured: max <= 6e-3, mean <= 7e-4 on these models. One
   * key too many in the 4-row blocks already fails this (tried). */
  CHECK(bt_model_forward(m, seq, n, T, NULL) == BT_OK, "%s: model forward", name);
  const float *tl = bt_model_logits(m);
  double md = 0, sd = 0;
  for (size_t i = 0; i < NT * V; i++) {
    double d = fabs((double)tl[i] - ref[i]);
    md = d > md ? d : md;
    sd += d;
  }
  sd /= (double)(NT * V);
  /* The int8 cache rounds to 7 bits under a shared scale: about four times
   * the difference (measured: max <= 0.021, mean <= 0.0021 on these). */
  CHECK(md <= (kv8 ? 4e-2 : 2e-2) && sd <= (kv8 ? 4e-3 : 2e-3),
        "%s: |batched - training forward|: max %.3g, mean %.3g", name, md, sd);
  printf("%s: logits hash %016llx, |diff| to training forward: max %.2g, mean %.2g\n", name,
         (unsigned long long)fnv1a(ref, NT * V * sizeof(float), 0xcbf29ce484222325ULL), md, sd);

  for (int ii = 0; ii < ni; ii++)
    for (int th = 1; th <= 2; th++) {
      if (!full && !(th == 2 || isas[ii] == BT_ISA_SCALAR))
        continue;
      bt_isa_set(isas[ii]);
      omp_set_num_threads(th);
      CHECK(bt_infer_batched(inf, seq, n, T, got) == BT_OK, "%s: batched", name);
      int r = first_diff_row(got, ref, n * T);
      CHECK(r < 0, "%s: batched %s %d threads differs at row %d", name, bt_isa_name(isas[ii]),
            th, r);
      memset(got, 0, NT * V * sizeof(float));
      CHECK(run_steps(inf, seq, n, T, got) == BT_OK, "%s: steps", name);
      r = first_diff_row(got, ref, n * T);
      CHECK(r < 0, "%s: steps %s %d threads differ from batched at stream %d position %d", name,
            bt_isa_name(isas[ii]), th, r < 0 ? 0 : r / T, r < 0 ? 0 : r % T);
      if (kv8) { /* the wide layout: the same integers as bfloat16s, the same bits */
        bt_infer_set_kv8(inf, BT_KV_INT8_WIDE);
        CHECK(bt_infer_kv8(inf) == BT_KV_INT8_WIDE, "%s: wide layout set", name);
        CHECK(bt_infer_batched(inf, seq, n, T, got) == BT_OK, "%s: batched wide", name);
        r = first_diff_row(got, ref, n * T);
        CHECK(r < 0, "%s: batched, wide int8 layout, %s %d threads differs at row %d", name,
              bt_isa_name(isas[ii]), th, r);
        memset(got, 0, NT * V * sizeof(float));
        CHECK(run_steps(inf, seq, n, T, got) == BT_OK, "%s: steps wide", name);
        r = first_diff_row(got, ref, n * T);
        CHECK(r < 0, "%s: steps, wide int8 layout, %s %d threads differ at row %d", name,
              bt_isa_name(isas[ii]), th, r);
        bt_infer_set_kv8(inf, BT_KV_INT8);
      }
    }
  bt_isa_set(isa0);
  omp_set_num_threads(2);

  /* A stream alone gives the same bits as beside others: the last sequence
   * as stream 0 of a batch of 1, batched and stepped. */
  if (n > 1) {
    const uint8_t *last = seq + (size_t)(n - 1) * T;
    const float *want = ref + (size_t)(n - 1) * T * V;
    CHECK(bt_infer_batched(inf, last, 1, T, got) == BT_OK, "%s: batched n=1", name);
    CHECK(first_diff_row(got, want, T) < 0, "%s: batched n=1 differs", name);
    CHECK(run_steps(inf, last, 1, T, got) == BT_OK, "%s: steps n=1", name);
    CHECK(first_diff_row(got, want, T) < 0, "%s: steps n=1 differ", name);
  }

  /* Prefill of prefixes of different lengths, then steps to the end. */
  {
    int *len = malloc((size_t)n * sizeof(int));
    for (int s = 0; s < n; s++)
      len[s] = (int)((s * 37 + 5) % T);
    len[0] = 0;
    float *lg = malloc((size_t)n * V * sizeof(float));
    CHECK(bt_infer_prefill(inf, seq, (size_t)T, len, n, lg) == BT_OK, "%s: prefill", name);
    int bad = 0;
    for (int s = 0; s < n; s++) {
      bad += memcmp(lg + (size_t)s * V, ref + ((size_t)s * T + len[s]) * V, V * sizeof(float)) != 0;
      CHECK(bt_infer_position(inf, s) == len[s] + 1, "%s: position after prefill", name);
    }
    CHECK(!bad, "%s: prefill logits differ for %d streams", name, bad);
    /* continue: streams at different positions; run all until the longest is full */
    uint8_t *tok = malloc((size_t)n);
    bad = 0;
    for (;;) {
      int alive = 1;
      for (int s = 0; s < n; s++)
        alive &= bt_infer_position(inf, s) < T;
      if (!alive)
        break;
      for (int s = 0; s < n; s++)
        tok[s] = seq[(size_t)s * T + bt_infer_position(inf, s) - 1];
      int p0 = bt_infer_position(inf, 0);
      CHECK(bt_infer_step(inf, tok, n, lg) == BT_OK, "%s: step after prefill", name);
      for (int s = 0; s < n; s++) {
        int p = bt_infer_position(inf, s) - 1;
        bad += memcmp(lg + (size_t)s * V, ref + ((size_t)s * T + p) * V, V * sizeof(float)) != 0;
      }
      (void)p0;
    }
    CHECK(!bad, "%s: steps after prefill differ in %d rows", name, bad);
    free(tok);
    free(lg);
    free(len);
  }

  /* Negative control: one weight nudged, the bits change. */
  {
    float *P = bt_model_params(m);
    const bt_tensor_info *ti = bt_model_tensors(m);
    /* A Q weight (Q stays float; a nudge to K or V could vanish in the
     * rounding to bfloat16). */
    size_t k = ti[BT_T_QKV_W].offset + 3;
    P[k] *= 1.001f;
    bt_infer *inf2 = NULL;
    CHECK(bt_infer_create(&inf2, m, n, T) == BT_OK, "%s: create 2", name);
    if (inf2) {
      bt_infer_set_kv8(inf2, kv8);
      CHECK(bt_infer_batched(inf2, seq, n, T, got) == BT_OK, "%s: batched 2", name);
      CHECK(memcmp(got, ref, NT * V * sizeof(float)) != 0, "%s: a nudged weight changes nothing",
            name);
    }
    bt_infer_free(inf2);
  }

done:
  bt_infer_free(inf);
  bt_model_free(m);
  free(seq);
  free(ref);
  free(got);
}

static void test_errors(void) {
  bt_config cfg = {1, 32, 2, 40, BT_VOCAB};
  bt_model *m = NULL;
  bt_model_create(&m, &cfg);
  bt_model_init(m, 1);
  bt_infer *inf = NULL;
  CHECK(bt_infer_create(&inf, m, 2, 41) == BT_ERR_ARG, "max_T > ctx");
  CHECK(inf == NULL, "no handle on error");
  CHECK(bt_infer_create(&inf, m, 0, 10) == BT_ERR_ARG, "0 streams");
  CHECK(bt_infer_create(&inf, m, 2, 17) == BT_OK, "create");
  uint8_t seq[2 * 17] = {0};
  float lg[2 * 17 * V];
  CHECK(bt_infer_batched(inf, seq, 3, 4, lg) == BT_ERR_ARG, "too many streams");
  CHECK(bt_infer_batched(inf, seq, 1, 18, lg) == BT_ERR_ARG, "too long");
  bt_infer_reset(inf, 2);
  CHECK(bt_infer_step(inf, NULL, 2, lg) == BT_OK, "first step from BOS");
  CHECK(bt_infer_step(inf, NULL, 2, lg) == BT_ERR_ARG, "later step needs bytes");
  for (int t = 1; t < 17; t++)
    CHECK(bt_infer_step(inf, seq, 2, lg) == BT_OK, "step %d", t);
  CHECK(bt_infer_step(inf, seq, 2, lg) == BT_ERR_ARG, "step past max_T");
  CHECK(bt_infer_position(inf, 1) == 17 && bt_infer_position(inf, 2) == -1, "positions");
  int len[2] = {16, 17};
  CHECK(bt_infer_prefill(inf, seq, 17, len, 2, lg) == BT_ERR_ARG, "prefill too long");
  bt_infer_free(inf);
  bt_infer_free(NULL);
  bt_model_free(m);
}


/* Multi-row decoding: passes of several rows per stream (bt_infer_extend),
 * some of them fed wrong bytes and rewound, give every row the bits of the
 * plain steps, on every ISA path. */
static void test_extend(void) {
  bt_config cfg = {2, 64, 4, 96, BT_VOCAB};
  bt_model *m = NULL;
  bt_model_create(&m, &cfg);
  bt_model_init(m, 21);
  const int n = 3, T = 90;
  uint8_t *seq = malloc((size_t)n * T);
  fill_bytes(seq, (size_t)n * T, 22);
  float *ref = malloc((size_t)n * T * V * sizeof(float));
  float *lg = malloc((size_t)n * 16 * V * sizeof(float));
  bt_isa isas[3];
  const int ni = n_isas(isas);
  for (int ii = 0; ii < ni; ii++) {
    bt_isa_set(isas[ii]);
    bt_infer *inf = NULL;
    CHECK(bt_infer_create(&inf, m, n, T) == BT_OK, "create");
    CHECK(run_steps(inf, seq, n, T, ref) == BT_OK, "steps");
    bt_infer_reset(inf, n);
    int pos[3] = {0, 0, 0}, bad = 0;
    uint64_t rs = 23;
    uint8_t tok[3 * 16];
    while (pos[0] < T || pos[1] < T || pos[2] < T) {
      int rows[3];
      for (int s = 0; s < n; s++) {
        int k = 1 + (int)(check_rng_next_(&rs) % 7);
        rows[s] = pos[s] + k > T ? T - pos[s] : k;
        /* Row i's input: the true byte before it, or (from i = 1 on, now
         * and then) a wrong guess, after which no row of the pass counts. */
        for (int i = 0; i < rows[s]; i++) {
          const int p = pos[s] + i;
          tok[s * 16 + i] = p ? seq[(size_t)s * T + p - 1] : 0;
          if (i > 0 && check_rng_next_(&rs) % 4 == 0)
            tok[s * 16 + i] ^= 0x55;
        }
      }
      if (bt_infer_extend(inf, tok, 16, rows, n, lg) != BT_OK) {
        bad = 1;
        break;
      }
      float *l = lg;
      for (int s = 0; s < n; s++) {
        int good = 0; /* rows whose inputs were all true */
        while (good < rows[s] && (good == 0 || tok[s * 16 + good] ==
                                                   seq[(size_t)s * T + pos[s] + good - 1]))
          good++;
        for (int i = 0; i < good; i++)
          if (memcmp(l + (size_t)i * V, ref + ((size_t)s * T + pos[s] + i) * V, V * sizeof(float)))
            bad = 1;
        l += (size_t)rows[s] * V;
        pos[s] += good;
        CHECK(bt_infer_rewind(inf, s, pos[s]) == BT_OK, "rewind");
      }
    }
    CHECK(!bad, "%s: multi-row passes with rewinds give the steps' bits", bt_isa_name(isas[ii]));
    int big[3] = {T, 0, 0};
    CHECK(bt_infer_extend(inf, tok, 16, big, n, lg) == BT_ERR_ARG, "extend past max_T");
    CHECK(bt_infer_rewind(inf, 0, T + 1) == BT_ERR_ARG, "rewind forward");
    bt_infer_free(inf);
  }
  bt_isa_set(bt_isa_detect());
  free(seq);
  free(ref);
  free(lg);
  bt_model_free(m);
}

/* Paired steps (bt_infer_pair_begin) give the unpaired steps' bits, with a
 * helper thread and with none (the caller then computes both halves), and
 * prefill + paired steps too. Width 128, so the linear steps split. */
static void test_pair(void) {
  bt_config cfg = {2, 128, 4, 160, BT_VOCAB};
  bt_model *m = NULL;
  bt_model_create(&m, &cfg);
  bt_model_init(m, 31);
  const int T = 150;
  uint8_t *seq = malloc(T);
  fill_bytes(seq, T, 32);
  float *ref = malloc((size_t)T * V * sizeof(float)), *got = malloc((size_t)T * V * sizeof(float));
  bt_isa isas[3];
  const int ni = n_isas(isas);
  for (int ii = 0; ii < ni; ii++) {
    bt_isa_set(isas[ii]);
    bt_infer *inf = NULL;
    CHECK(bt_infer_create(&inf, m, 1, T) == BT_OK, "create");
    bt_infer_set_threads(inf, 1);
    CHECK(run_steps(inf, seq, 1, T, ref) == BT_OK, "steps");
    /* no helper */
    bt_infer_pair_begin(inf);
    CHECK(run_steps(inf, seq, 1, T, got) == BT_OK, "paired steps, no helper");
    bt_infer_pair_end(inf);
    CHECK(first_diff_row(ref, got, T) < 0, "%s: paired steps with no helper give the bits",
          bt_isa_name(isas[ii]));
    /* a helper, racing the caller for each second half; then one the caller
     * waits for, so the helper's path surely runs (and is counted) */
    for (int wait = 0; wait < 2; wait++) {
      long taken = 0;
      int team = 0;
      bt_error e = BT_OK;
      memset(got, 0, (size_t)T * V * sizeof(float));
      bt_infer_pair_begin(inf);
#pragma omp parallel num_threads(2)
      {
#pragma omp single
        team = omp_get_num_threads();
        /* (the single's barrier: both threads know the team) */
        if (omp_get_thread_num() == 0) {
          bt_infer_pair_wait_for_helper(inf, wait && team == 2);
          e = run_steps(inf, seq, 1, T, got);
          bt_infer_pair_wait_for_helper(inf, 0);
          bt_infer_pair_end(inf);
        } else {
          taken = bt_infer_pair_serve(inf);
        }
      }
      CHECK(e == BT_OK && first_diff_row(ref, got, T) < 0, "%s: paired steps with a helper%s give the bits",
            bt_isa_name(isas[ii]), wait ? " that computes every second half" : "");
      if (wait && team == 2)
        CHECK(taken > 0, "%s: the helper computed halves (%ld)", bt_isa_name(isas[ii]), taken);
      else if (wait)
        printf("note: OpenMP gave a team of %d; the helper's path was not run\n", team);
    }
    /* prefill of 100, then paired steps */
    const int plen = 100;
    float *lg = got + (size_t)plen * V;
    CHECK(bt_infer_prefill(inf, seq, T, &plen, 1, lg) == BT_OK, "prefill");
    bt_infer_pair_begin(inf);
    int bad = memcmp(lg, ref + (size_t)plen * V, V * sizeof(float)) != 0;
#pragma omp parallel num_threads(2)
    {
      if (omp_get_thread_num() == 0) {
        for (int t = plen + 1; t < T && !bad; t++) {
          if (bt_infer_step(inf, seq + t - 1, 1, lg) != BT_OK ||
              memcmp(lg, ref + (size_t)t * V, V * sizeof(float)))
            bad = 1;
        }
        bt_infer_pair_end(inf);
      } else {
        bt_infer_pair_serve(inf);
      }
    }
    CHECK(!bad, "%s: prefill, then paired steps, give the bits", bt_isa_name(isas[ii]));
    bt_infer_free(inf);
  }
  bt_isa_set(bt_isa_detect());
  free(seq);
  free(ref);
  free(got);
  bt_model_free(m);
}

/* A model of V > 256 tokens (a BPE vocabulary): the token passes agree bit
 * for bit with each other on every path and thread count, stay close to the
 * training forward, read a byte input as that token, and refuse a token
 * outside the vocabulary. */
static void test_tokens(void) {
  const int TV = 1000, n = 3, T = 70;
  const bt_config cfg = {2, 64, 4, 80, TV};
  bt_model *m = NULL;
  CHECK(bt_model_create(&m, &cfg) == BT_OK, "tokens: create");
  if (!m)
    return;
  bt_model_init(m, 21);
  CHECK(bt_model_num_params(m) == bt_config_num_params(&cfg) &&
            bt_model_tensors(m)[BT_T_OUT_B].size == (size_t)TV &&
            bt_model_tensors(m)[BT_T_EMBED].shape[0] == (size_t)TV,
        "tokens: the embedding and head have V rows");
  const size_t NT = (size_t)n * T;
  uint16_t *seq = malloc(NT * sizeof *seq);
  uint64_t st = 99;
  for (size_t i = 0; i < NT; i++) /* a few frequent tokens, so attention sees repeats */
    seq[i] = (uint16_t)(check_rng_next_(&st) % 3 ? 256 + check_rng_next_(&st) % 9 : check_rng_next_(&st) % TV);
  float *ref = malloc(NT * TV * sizeof(float)), *got = malloc(NT * TV * sizeof(float));
  float *lg = malloc((size_t)n * TV * sizeof(float));
  uint16_t *tok = malloc((size_t)n * sizeof *tok);
  bt_infer *inf = NULL;
  CHECK(bt_infer_create(&inf, m, n, T) == BT_OK, "tokens: infer create: %s", bt_error_detail());
  if (!inf)
    goto done;
  omp_set_num_threads(2);
  CHECK(bt_infer_batched_tokens(inf, seq, n, T, ref) == BT_OK, "tokens: batched");
  CHECK(bt_model_forward_tokens(m, seq, n, T, NULL) == BT_OK, "tokens: model forward");
  double md = 0;
  for (size_t i = 0; i < NT * TV; i++) {
    const double d = fabs((double)bt_model_logits(m)[i] - ref[i]);
    md = d > md ? d : md;
  }
  CHECK(md <= 2e-2, "tokens: |batched - training forward| max %.3g", md);
  printf("tokens V%d: logits hash %016llx, |diff| to training forward: max %.2g\n", TV,
         (unsigned long long)fnv1a(ref, NT * TV * sizeof(float), 0xcbf29ce484222325ULL), md);
  bt_isa isas[3];
  const int ni = n_isas(isas);
  const bt_isa isa0 = bt_isa_get();
  for (int ii = 0; ii < ni; ii++)
    for (int th = 1; th <= 2; th++) {
      bt_isa_set(isas[ii]);
      omp_set_num_threads(th);
      bt_infer_reset(inf, n);
      int bad = 0;
      for (int t = 0; t < T; t++) {
        for (int s = 0; s < n; s++)
          tok[s] = t ? seq[(size_t)s * T + t - 1] : 0;
        CHECK(bt_infer_step_tokens(inf, t ? tok : NULL, n, lg) == BT_OK, "tokens: step");
        for (int s = 0; s < n; s++)
          bad += memcmp(lg + (size_t)s * TV, ref + ((size_t)s * T + t) * TV, TV * sizeof(float)) != 0;
      }
      CHECK(!bad, "tokens: steps %s %d threads differ from batched in %d rows", bt_isa_name(isas[ii]), th,
            bad);
    }
  bt_isa_set(isa0);
  omp_set_num_threads(2);
  { /* prefill half, extend the rest in one pass */
    int len[3], nrows[3];
    for (int s = 0; s < n; s++)
      len[s] = T / 2 - 1, nrows[s] = T - T / 2;
    CHECK(bt_infer_prefill_tokens(inf, seq, (size_t)T, len, n, lg) == BT_OK, "tokens: prefill");
    int bad = 0;
    for (int s = 0; s < n; s++)
      bad += memcmp(lg + (size_t)s * TV, ref + ((size_t)s * T + len[s]) * TV, TV * sizeof(float)) != 0;
    CHECK(bt_infer_extend_tokens(inf, seq + T / 2 - 1, (size_t)T, nrows, n, got) == BT_OK, "tokens: extend");
    for (int s = 0; s < n; s++)
      bad += memcmp(got + (size_t)s * nrows[s] * TV, ref + ((size_t)s * T + T / 2) * TV,
                    (size_t)nrows[s] * TV * sizeof(float)) != 0;
    CHECK(!bad, "tokens: prefill + extend differ from batched for %d streams", bad);
  }
  { /* bytes are the first 256 tokens */
    uint8_t *b = malloc(NT);
    uint16_t *w = malloc(NT * sizeof *w);
    for (size_t i = 0; i < NT; i++)
      w[i] = b[i] = (uint8_t)(seq[i] * 7);
    CHECK(bt_infer_batched(inf, b, n, T, ref) == BT_OK && bt_infer_batched_tokens(inf, w, n, T, got) == BT_OK &&
              !memcmp(ref, got, NT * TV * sizeof(float)),
          "tokens: a byte input is not read as that token");
    free(b);
    free(w);
  }
  /* refused, with nothing done: a token past V in each pass */
  seq[5] = (uint16_t)TV;
  CHECK(bt_infer_batched_tokens(inf, seq, n, T, got) == BT_ERR_ARG, "tokens: batched takes a token >= V");
  bt_infer_reset(inf, n);
  CHECK(bt_infer_step_tokens(inf, NULL, n, lg) == BT_OK, "tokens: first step");
  CHECK(bt_infer_step_tokens(inf, seq + 5, 1, lg) == BT_ERR_ARG && bt_infer_position(inf, 0) == 1,
        "tokens: step takes a token >= V");
  CHECK(bt_model_forward_tokens(m, seq, n, T, NULL) == BT_ERR_ARG, "tokens: the model takes a token >= V");
done:
  bt_infer_free(inf);
  bt_model_free(m);
  free(seq), free(ref), free(got), free(lg), free(tok);
}

int main(void) {
  printf("ISA: best %s\n", bt_isa_name(bt_isa_detect()));
  test_tokens();
  test_errors();
  test_extend();
  test_pair();
  test_config((bt_config){2, 32, 2, 130, BT_VOCAB}, 5, 130, 11, 1, 0, 0); /* hs 16 */
  test_config((bt_config){2, 64, 4, 130, BT_VOCAB}, 3, 97, 12, 1, 0, 0);  /* hs 16 */
  test_config((bt_config){2, 48, 2, 64, BT_VOCAB}, 4, 50, 13, 1, 0, 0);   /* hs 24: 8-wide PV passes */
  test_config((bt_config){1, 32, 4, 40, BT_VOCAB}, 2, 33, 14, 1, 0, 0);   /* hs 8 */
  test_config((bt_config){1, 128, 4, 40, BT_VOCAB}, 2, 40, 15, 1, 0, 0);  /* hs 32, 800K width */
  test_config((bt_config){1, 256, 8, 64, BT_VOCAB}, 2, 64, 16, 0, 0, 0);  /* 3.2M width */
  /* half checkpoints: 1 to 5 streams (tiles of 1, 2 and 4 rows and more) */
  test_config((bt_config){2, 64, 4, 130, BT_VOCAB}, 5, 97, 17, 1, 1, 0);
  test_config((bt_config){1, 128, 4, 40, BT_VOCAB}, 3, 40, 18, 1, 1, 0);
  test_config((bt_config){1, 48, 2, 64, BT_VOCAB}, 1, 50, 19, 1, 1, 0); /* column tails */
  /* the int8 cache: head sizes 8, 16, 24 and 32, 1 to 5 streams, halves */
  test_config((bt_config){2, 32, 2, 130, BT_VOCAB}, 5, 130, 21, 1, 0, 1);
  test_config((bt_config){2, 48, 2, 64, BT_VOCAB}, 4, 50, 22, 1, 0, 1);
  test_config((bt_config){1, 32, 4, 40, BT_VOCAB}, 2, 33, 23, 1, 0, 1);
  test_config((bt_config){1, 128, 4, 40, BT_VOCAB}, 3, 40, 24, 1, 1, 1);
  test_config((bt_config){2, 64, 4, 130, BT_VOCAB}, 1, 97, 25, 1, 0, 1);
  return check_summary("test_infer");
}
