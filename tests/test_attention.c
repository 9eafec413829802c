/*
 * test_attention.c - causal multi-head attention: every ISA path against the
 * naive reference, finite-difference gradients of both, causality, += in the
 * backward, identical bits across thread counts and ISA paths, and a negative
 * control that proves the comparisons can fail.
 */
#include "kernels/kernels.h"
#include "tests/check.h"

#include <omp.h>

#define TOL 3e-4   /* max relative error against the reference ... */
#define FLOOR 1e-3 /* ... with this floor, relative to the largest |value| */

typedef struct {
  int B, T, C, H;
  float *qkv, *dout, *out, *lse, *dqkv;       /* fast path */
  float *out_r, *lse_r, *dqkv_r;              /* reference */
} prob;

static prob prob_new(int B, int T, int H, int hs, uint64_t seed) {
  prob p = {B, T, H * hs, H, 0, 0, 0, 0, 0, 0, 0, 0};
  size_t n3 = (size_t)B * T * 3 * p.C, n = (size_t)B * T * p.C, nl = (size_t)B * H * T;
  p.qkv = malloc(n3 * sizeof(float));
  p.dqkv = malloc(n3 * sizeof(float));
  p.dqkv_r = malloc(n3 * sizeof(float));
  p.dout = malloc(n * sizeof(float));
  p.out = malloc(n * sizeof(float));
  p.out_r = malloc(n * sizeof(float));
  p.lse = malloc(nl * sizeof(float));
  p.lse_r = malloc(nl * sizeof(float));
  assert(p.qkv && p.dqkv && p.dqkv_r && p.dout && p.out && p.out_r && p.lse && p.lse_r);
  /* Scores of a few units: softmax rows that are neither flat nor one-hot. */
  check_fill(p.qkv, n3, seed, 2.0f);
  check_fill(p.dout, n, seed + 1, 1.0f);
  return p;
}

static void prob_free(prob *p) {
  free(p->qkv); free(p->dqkv); free(p->dqkv_r); free(p->dout);
  free(p->out); free(p->out_r); free(p->lse); free(p->lse_r);
}

static size_t n3(const prob *p) { return (size_t)p->B * p->T * 3 * p->C; }
static size_t nout(const prob *p) { return (size_t)p->B * p->T * p->C; }
static size_t nlse(const prob *p) { return (size_t)p->B * p->H * p->T; }

static double maxabs(const float *x, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++)
    m = fmax(m, fabs((double)x[i]));
  return m;
}

/* Max relative error with the floor scaled to the reference's magnitude. */
static double rel_err(const float *a, const float *ref, size_t n) {
  return check_max_rel(a, ref, n, FLOOR * (maxabs(ref, n) + 1e-30));
}

static void run_fast(prob *p) {
  bt_attention_forward(p->out, p->lse, p->qkv, p->B, p->T, p->C, p->H);
  memset(p->dqkv, 0, n3(p) * sizeof(float));
  /* Backward on the reference's out and lse, so it is judged on its own. */
  bt_attention_backward(p->dqkv, p->dout, p->qkv, p->out_r, p->lse_r, p->B, p->T,
                        p->C, p->H);
}

static void run_ref(prob *p) {
  bt_attention_forward_naive(p->out_r, p->lse_r, p->qkv, p->B, p->T, p->C, p->H);
  memset(p->dqkv_r, 0, n3(p) * sizeof(float));
  bt_attention_backward_naive(p->dqkv_r, p->dout, p->qkv, p->out_r, p->lse_r, p->B,
                              p->T, p->C, p->H);
}

/* ---- fast vs reference, every path, and identical bits across paths ---- */
static void test_against_reference(void) {
  static const int shapes[][4] = {/* B, T, H, hs */
                                  {1, 1, 1, 16},  {1, 7, 2, 8},   {2, 64, 2, 16},
                                  {1, 130, 4, 32}, {2, 257, 1, 32}, {1, 65, 2, 24},
                                  {1, 200, 1, 64}, {2, 129, 4, 16}, {1, 257, 2, 8}};
  bt_isa best = bt_isa_detect();
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    const int *sh = shapes[s];
    prob p = prob_new(sh[0], sh[1], sh[2], sh[3], 100 + s);
    run_ref(&p);
    float *out0 = malloc(nout(&p) * sizeof(float)), *lse0 = malloc(nlse(&p) * sizeof(float));
    float *dq0 = malloc(n3(&p) * sizeof(float));
    assert(out0 && lse0 && dq0);
    for (int isa = BT_ISA_SCALAR; isa <= (int)best; isa++) {
      CHECK(bt_isa_set((bt_isa)isa) == 0, "isa %d", isa);
      run_fast(&p);
      double eo = rel_err(p.out, p.out_r, nout(&p));
      double el = rel_err(p.lse, p.lse_r, nlse(&p));
      double eg = rel_err(p.dqkv, p.dqkv_r, n3(&p));
      CHECK(eo <= TOL && el <= TOL && eg <= TOL,
            "%s B=%d T=%d H=%d hs=%d: out %.3g lse %.3g dqkv %.3g",
            bt_isa_name((bt_isa)isa), sh[0], sh[1], sh[2], sh[3], eo, el, eg);
      if (isa == BT_ISA_SCALAR) {
        memcpy(out0, p.out, nout(&p) * sizeof(float));
        memcpy(lse0, p.lse, nlse(&p) * sizeof(float));
        memcpy(dq0, p.dqkv, n3(&p) * sizeof(float));
      } else {
        /* The paths differ only in which elements run together. */
        CHECK(memcmp(out0, p.out, nout(&p) * sizeof(float)) == 0 &&
                  memcmp(lse0, p.lse, nlse(&p) * sizeof(float)) == 0 &&
                  memcmp(dq0, p.dqkv, n3(&p) * sizeof(float)) == 0,
              "%s differs from scalar in bits, T=%d hs=%d", bt_isa_name((bt_isa)isa),
              sh[1], sh[3]);
      }
    }
    free(out0); free(lse0); free(dq0);
    prob_free(&p);
  }
  bt_isa_set(best);
}

/* ---- finite differences: loss = sum(out * R), in double ---- */
static double fd_loss(int naive, const float *qkv, const float *R, float *out,
                      float *lse, int B, int T, int C, int H) {
  if (naive)
    bt_attention_forward_naive(out, lse, qkv, B, T, C, H);
  else
    bt_attention_forward(out, lse, qkv, B, T, C, H);
  double s = 0;
  for (size_t i = 0; i < (size_t)B * T * C; i++)
    s += (double)out[i] * R[i];
  return s;
}

static void test_finite_differences(void) {
  const int B = 1, T = 9, H = 2, hs = 8, C = H * hs;
  const size_t n = (size_t)B * T * 3 * C;
  const float eps = 1e-3f;
  prob p = prob_new(B, T, H, hs, 7);
  float *x = malloc(n * sizeof(float)), *u = malloc(n * sizeof(float));
  assert(x && u);
  for (int naive = 1; naive >= 0; naive--) {
    fd_loss(naive, p.qkv, p.dout, p.out, p.lse, B, T, C, H);
    memset(p.dqkv, 0, n * sizeof(float));
    if (naive)
      bt_attention_backward_naive(p.dqkv, p.dout, p.qkv, p.out, p.lse, B, T, C, H);
    else
      bt_attention_backward(p.dqkv, p.dout, p.qkv, p.out, p.lse, B, T, C, H);
    /* Directional derivatives along random directions... */
    for (int dir = 0; dir < 4; dir++) {
      check_fill(u, n, 500 + dir, 1.0f);
      double g = 0;
      for (size_t i = 0; i < n; i++) {
        x[i] = p.qkv[i] + eps * u[i];
        g += (double)p.dqkv[i] * u[i];
      }
      double lp = fd_loss(naive, x, p.dout, p.out, p.lse, B, T, C, H);
      for (size_t i = 0; i < n; i++)
        x[i] = p.qkv[i] - eps * u[i];
      double lm = fd_loss(naive, x, p.dout, p.out, p.lse, B, T, C, H);
      double fd = (lp - lm) / (2.0 * eps);
      CHECK(fabs(fd - g) <= 2e-3 * (fabs(g) + 1.0), "%s dir %d: fd %.7g grad %.7g",
            naive ? "naive" : "fast", dir, fd, g);
    }
    /* ... and single elements: q, k and v of the first, middle and last rows. */
    static const int rows[] = {0, 4, 8};
    for (int ri = 0; ri < 3; ri++)
      for (int part = 0; part < 3; part++)
        for (int col = 0; col < C; col += 5) {
          size_t i = (size_t)rows[ri] * 3 * C + part * C + col;
          memcpy(x, p.qkv, n * sizeof(float));
          x[i] = p.qkv[i] + eps;
          double lp = fd_loss(naive, x, p.dout, p.out, p.lse, B, T, C, H);
          x[i] = p.qkv[i] - eps;
          double lm = fd_loss(naive, x, p.dout, p.out, p.lse, B, T, C, H);
          double fd = (lp - lm) / (2.0 * eps);
          CHECK(fabs(fd - p.dqkv[i]) <= 2e-3 + 1e-2 * fabs(fd),
                "%s element %zu: fd %.7g grad %.7g", naive ? "naive" : "fast", i, fd,
                (double)p.dqkv[i]);
        }
  }
  free(x); free(u);
  prob_free(&p);
}

/* ---- 1 vs 2 threads: identical bits, on every path ---- */
static void test_threads(void) {
  prob p = prob_new(2, 300, 4, 32, 11);
  run_ref(&p); /* out_r, lse_r feed the backward */
  size_t no = nout(&p), nl = nlse(&p), nq = n3(&p);
  float *o1 = malloc(no * 4), *l1 = malloc(nl * 4), *g1 = malloc(nq * 4);
  assert(o1 && l1 && g1);
  bt_isa best = bt_isa_detect();
  int saved = omp_get_max_threads();
  for (int isa = BT_ISA_SCALAR; isa <= (int)best; isa++) {
    bt_isa_set((bt_isa)isa);
    omp_set_num_threads(1);
    run_fast(&p);
    memcpy(o1, p.out, no * 4); memcpy(l1, p.lse, nl * 4); memcpy(g1, p.dqkv, nq * 4);
    omp_set_num_threads(2);
    memset(p.out, 0xff, no * 4); /* NaN: every element must be rewritten */
    memset(p.lse, 0xff, nl * 4);
    run_fast(&p);
    CHECK(memcmp(o1, p.out, no * 4) == 0, "%s: out differs 1 vs 2 threads",
          bt_isa_name((bt_isa)isa));
    CHECK(memcmp(l1, p.lse, nl * 4) == 0, "%s: lse differs 1 vs 2 threads",
          bt_isa_name((bt_isa)isa));
    CHECK(memcmp(g1, p.dqkv, nq * 4) == 0, "%s: dqkv differs 1 vs 2 threads",
          bt_isa_name((bt_isa)isa));
  }
  omp_set_num_threads(saved);
  bt_isa_set(best);
  free(o1); free(l1); free(g1);
  prob_free(&p);
}

/* ---- the backward accumulates; causality; negative controls ---- */
static void test_accumulate_causal_negative(void) {
  prob p = prob_new(1, 150, 2, 16, 21);
  run_ref(&p);
  run_fast(&p);
  size_t nq = n3(&p), no = nout(&p);
  float *twice = malloc(nq * 4), *o = malloc(no * 4), *l = malloc(nlse(&p) * 4);
  assert(twice && o && l);

  /* Backward twice onto zero gives twice the gradient. */
  memset(twice, 0, nq * 4);
  for (int rep = 0; rep < 2; rep++)
    bt_attention_backward(twice, p.dout, p.qkv, p.out_r, p.lse_r, p.B, p.T, p.C, p.H);
  for (size_t i = 0; i < nq; i++)
    p.dqkv[i] *= 2.0f;
  CHECK(rel_err(twice, p.dqkv, nq) <= 2e-5, "backward does not accumulate: %.3g",
        rel_err(twice, p.dqkv, nq));

  /* Causality: changing the last row's k and v leaves every earlier output
   * row's bits alone, and changes the last one. */
  const int C = p.C, T = p.T;
  memcpy(o, p.out, no * 4);
  for (int c = C; c < 3 * C; c++)
    p.qkv[(size_t)(T - 1) * 3 * C + c] += 0.5f;
  bt_attention_forward(p.out, p.lse, p.qkv, p.B, T, C, p.H);
  CHECK(memcmp(o, p.out, (size_t)(T - 1) * C * 4) == 0, "future keys leak into the past");
  CHECK(memcmp(o + (size_t)(T - 1) * C, p.out + (size_t)(T - 1) * C, C * 4) != 0,
        "the last row ignores its own key");
  for (int c = C; c < 3 * C; c++)
    p.qkv[(size_t)(T - 1) * 3 * C + c] -= 0.5f;

  /* Negative controls: the comparison must fail on small perturbations of
   * one input element (forward) and of one lse (backward). */
  size_t at = (size_t)37 * 3 * C + C + 3; /* k of row 37, head 0 */
  float keep = p.qkv[at];
  p.qkv[at] = keep * (1.0f + 1e-2f) + 1e-3f;
  bt_attention_forward(p.out, p.lse, p.qkv, p.B, T, C, p.H);
  CHECK(rel_err(p.out, p.out_r, no) > TOL, "perturbed qkv not detected: %.3g",
        rel_err(p.out, p.out_r, no));
  p.qkv[at] = keep;
  memcpy(l, p.lse_r, nlse(&p) * 4);
  l[100] += 1e-3f;
  memset(p.dqkv, 0, nq * 4);
  bt_attention_backward(p.dqkv, p.dout, p.qkv, p.out_r, l, p.B, T, C, p.H);
  CHECK(rel_err(p.dqkv, p.dqkv_r, nq) > TOL, "perturbed lse not detected: %.3g",
        rel_err(p.dqkv, p.dqkv_r, nq));
  /* And unperturbed, it passes (the control is not vacuous the other way). */
  memset(p.dqkv, 0, nq * 4);
  bt_attention_backward(p.dqkv, p.dout, p.qkv, p.out_r, p.lse_r, p.B, T, C, p.H);
  CHECK(rel_err(p.dqkv, p.dqkv_r, nq) <= TOL, "unperturbed: %.3g",
        rel_err(p.dqkv, p.dqkv_r, nq));
  free(twice); free(o); free(l);
  prob_free(&p);
}

/* ---- bfloat16 products (the bf16 GEMM backend) ---- */

/* Runs the bf16 forward and backward (on the reference's out and lse, onto a
 * filled dqkv: the backward adds) into o, l, g. */
static void run_bf16(const prob *p, float *o, float *l, float *g) {
  bt_gemm_set_backend(BT_GEMM_BF16);
  memset(o, 0xff, nout(p) * 4); /* NaN: every element must be written */
  memset(l, 0xff, nlse(p) * 4);
  bt_attention_forward(o, l, p->qkv, p->B, p->T, p->C, p->H);
  check_fill(g, n3(p), 99, 0.5f);
  bt_attention_backward(g, p->dout, p->qkv, p->out_r, p->lse_r, p->B, p->T, p->C, p->H);
  bt_gemm_set_backend(BT_GEMM_AUTO);
}

/* The scalar path (bfloat16 arithmetic in C, kernels/bf16.h) is the
 * reference; the avx512 path (vdpbf16ps) must give its bits on any thread
 * count where the CPU has AVX512_BF16. Both must be near float32, and not be
 * float32. Odd T, odd head sizes and one query short of a block cover the
 * missing pair members; inputs with subnormals, zeros and rounding ties
 * cover the conversions. */
static void test_bf16(void) {
  const int shapes[][4] = {/* B, T, H, hs */
                           {1, 67, 2, 16}, {2, 130, 1, 32}, {1, 131, 2, 32}, {1, 100, 3, 7},
                           {1, 200, 1, 5}, {1, 127, 4, 16}};
  bt_isa best = bt_isa_detect();
  int saved = omp_get_max_threads();
  for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
    const int *sh = shapes[si];
    prob p = prob_new(sh[0], sh[1], sh[2], sh[3], 300 + si);
    size_t nq = n3(&p), no = nout(&p), nl = nlse(&p);
    for (size_t i = 0; i < nq; i += 97) /* special values */
      p.qkv[i] = (i / 97) % 4 == 0   ? 1e-39f                /* subnormal */
                 : (i / 97) % 4 == 1 ? -0.0f
                 : (i / 97) % 4 == 2 ? 1.0f + 1.0f / 256.0f  /* a tie: 1 + 2^-8 */
                                     : 1.17549e-38f;          /* just under the least normal */
    run_ref(&p);
    float *o = malloc(no * 4), *l = malloc(nl * 4), *g = malloc(nq * 4);
    float *o2 = malloc(no * 4), *l2 = malloc(nl * 4), *g2 = malloc(nq * 4);
    float *g0 = malloc(nq * 4);
    assert(o && l && g && o2 && l2 && g2 && g0);
    bt_isa_set(BT_ISA_SCALAR);
    run_bf16(&p, o, l, g);
    check_fill(g0, nq, 99, 0.5f); /* what the backward added to */
    for (size_t i = 0; i < nq; i++)
      g0[i] = g[i] - g0[i];
    /* errors relative to each output's largest magnitude: bfloat16 keeps 8
     * significant bits, so a sum of products is good to about 2^-8 of its terms */
    double eo = check_max_rel(o, p.out_r, no, maxabs(p.out_r, no)),
           el = check_max_rel(l, p.lse_r, nl, maxabs(p.lse_r, nl)),
           eg = check_max_rel(g0, p.dqkv_r, nq, maxabs(p.dqkv_r, nq));
    /* the bits' hash, to compare between builds (gcc and clang) by eye */
    uint64_t hsh = 1469598103934665603ULL;
    const float *parts[3] = {o, l, g};
    const size_t lens[3] = {no, nl, nq};
    for (int k = 0; k < 3; k++)
      for (size_t i = 0; i < lens[k] * 4; i++)
        hsh = (hsh ^ ((const unsigned char *)parts[k])[i]) * 1099511628211ULL;
    printf("  bf16 scalar B=%d T=%d H=%d hs=%d: err out %.2e lse %.2e dqkv %.2e, bits %016llx\n",
           sh[0], sh[1], sh[2], sh[3], eo, el, eg, (unsigned long long)hsh);
    CHECK(eo < 2e-2 && el < 2e-2 && eg < 2e-2, "bf16 far from float32: %.3g %.3g %.3g", eo, el, eg);
    CHECK(eo > 1e-5 || eg > 1e-5, "bf16 gave float32's results: its rounding did not run");
    bt_isa_set(best);
    if (bt_bf16_available()) {
      for (int nt = 1; nt <= 2; nt++) {
        omp_set_num_threads(nt);
        run_bf16(&p, o2, l2, g2);
        CHECK(memcmp(o, o2, no * 4) == 0, "bf16 avx512 out differs from scalar, T=%d hs=%d, %d threads",
              sh[1], sh[3], nt);
        CHECK(memcmp(l, l2, nl * 4) == 0, "bf16 avx512 lse differs from scalar, T=%d hs=%d, %d threads",
              sh[1], sh[3], nt);
        CHECK(memcmp(g, g2, nq * 4) == 0, "bf16 avx512 dqkv differs from scalar, T=%d hs=%d, %d threads",
              sh[1], sh[3], nt);
      }
      omp_set_num_threads(saved);
    }
    free(o); free(l); free(g); free(o2); free(l2); free(g2); free(g0);
    prob_free(&p);
  }
  if (!bt_bf16_available())
    printf("  bf16: no AVX512_BF16 here; the scalar reference alone was checked\n");
  bt_isa_set(best);
}

int main(void) {
  test_bf16();
  test_against_reference();
  test_finite_differences();
  test_threads();
  test_accumulate_causal_negative();
  return check_summary("test_attention");
}
