/*
 * test_gemm.c - bt_gemm / bt_gemm_st against bt_gemm_naive, bit for bit, on
 * every ISA path this CPU has and at 1 and 2 threads; OpenBLAS within a
 * tolerance; the linear layer against double precision and finite differences.
 */
#include "tests/check.h"

#include "kernels/kernels.h"

#include <omp.h>

static uint64_t g_rng = 0x1234567ULL;
static int rnd(int lo, int hi) { /* uniform in [lo, hi] */
  return lo + (int)(check_rng_next_(&g_rng) % (uint64_t)(hi - lo + 1));
}

typedef struct {
  int ta, tb, M, N, K, lda, ldb, ldc, acc;
} shape;

/* Allocations sized for a shape; C0 is the starting C (NaN when !acc, so a
 * kernel that reads C without accumulate shows up). */
typedef struct {
  float *A, *B, *C0, *Cref, *Cgot;
  size_t na, nb, nc;
} bufs;

static void make(bufs *b, const shape *s, uint64_t seed) {
  int ar = s->ta ? s->K : s->M, br = s->tb ? s->N : s->K;
  b->na = (size_t)(ar > 0 ? ar : 1) * s->lda;
  b->nb = (size_t)(br > 0 ? br : 1) * s->ldb;
  b->nc = (size_t)(s->M > 0 ? s->M : 1) * s->ldc;
  b->A = malloc(b->na * sizeof(float));
  b->B = malloc(b->nb * sizeof(float));
  b->C0 = malloc(b->nc * sizeof(float));
  b->Cref = malloc(b->nc * sizeof(float));
  b->Cgot = malloc(b->nc * sizeof(float));
  assert(b->A && b->B && b->C0 && b->Cref && b->Cgot);
  check_fill(b->A, b->na, seed, 1.0f);
  check_fill(b->B, b->nb, seed + 1, 1.0f);
  check_fill(b->C0, b->nc, seed + 2, 1.0f);
  if (!s->acc) /* only the (M,N) part: the padding must stay untouched anyway */
    for (int i = 0; i < s->M; i++)
      for (int j = 0; j < s->N; j++)
        b->C0[(size_t)i * s->ldc + j] = NAN;
  memcpy(b->Cref, b->C0, b->nc * sizeof(float));
  bt_gemm_naive(s->ta, s->tb, s->M, s->N, s->K, b->A, s->lda, b->B, s->ldb, b->Cref, s->ldc,
                s->acc);
}

static void unmake(bufs *b) {
  free(b->A);
  free(b->B);
  free(b->C0);
  free(b->Cref);
  free(b->Cgot);
}

typedef void (*gemm_fn)(int, int, int, int, int, const float *, int, const float *, int,
                        float *, int, int);

static int run_same(gemm_fn f, const shape *s, bufs *b) {
  memcpy(b->Cgot, b->C0, b->nc * sizeof(float));
  f(s->ta, s->tb, s->M, s->N, s->K, b->A, s->lda, b->B, s->ldb, b->Cgot, s->ldc, s->acc);
  return memcmp(b->Cgot, b->Cref, b->nc * sizeof(float)) == 0;
}

static shape random_shape(int maxd) {
  shape s;
  s.ta = rnd(0, 1);
  s.tb = rnd(0, 1);
  s.M = rnd(1, maxd);
  s.N = rnd(1, maxd);
  s.K = rnd(1, maxd);
  s.acc = rnd(0, 1);
  int ac = s.ta ? s.M : s.K, bc = s.tb ? s.K : s.N;
  s.lda = ac + rnd(0, 3) * rnd(0, 5);
  s.ldb = bc + rnd(0, 3) * rnd(0, 5);
  s.ldc = s.N + rnd(0, 3) * rnd(0, 5);
  return s;
}

static shape fixed_shape(int ta, int tb, int M, int N, int K, int acc) {
  shape s = {ta, tb, M, N, K, 0, 0, 0, acc};
  s.lda = (ta ? M : K) + 3;
  s.ldb = (tb ? K : N) + 1;
  s.ldc = N + 2;
  if (s.lda < 1) s.lda = 1;
  if (s.ldb < 1) s.ldb = 1;
  return s;
}

/* ---- bit-exactness over shapes, ISA paths and thread counts ---- */
static void test_exact(void) {
  enum { NRAND = 150 };
  shape shapes[NRAND + 64];
  int ns = 0;
  for (int i = 0; i < NRAND; i++)
    shapes[ns++] = random_shape(70);
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      shapes[ns++] = fixed_shape(ta, tb, 257, 129, 300, (ta + tb) & 1);
      shapes[ns++] = fixed_shape(ta, tb, 600, 45, 70, ta);      /* several row blocks */
      shapes[ns++] = fixed_shape(ta, tb, 20, 1100, 530, tb);    /* several K chunks, small M */
      shapes[ns++] = fixed_shape(ta, tb, 1, 300, 257, 1);       /* a row vector */
      shapes[ns++] = fixed_shape(ta, tb, 2, 200, 300, 0);       /* two rows: wide tiles, K chunks */
      shapes[ns++] = fixed_shape(ta, tb, 1, 64, 129, 0);        /* one wide tile exactly */
      shapes[ns++] = fixed_shape(ta, tb, 300, 1, 40, 0);        /* a column vector */
      shapes[ns++] = fixed_shape(ta, tb, 0, 5, 5, 0);           /* empty */
      shapes[ns++] = fixed_shape(ta, tb, 7, 9, 0, 0);           /* K = 0: C = 0 */
      shapes[ns++] = fixed_shape(ta, tb, 7, 9, 0, 1);           /* K = 0: unchanged */
    }
  bt_isa best = bt_isa_detect();
  int fails = 0;
  for (int si = 0; si < ns; si++) {
    bufs b;
    make(&b, &shapes[si], 1000 + si);
    for (int isa = BT_ISA_SCALAR; isa <= (int)best; isa++) {
      bt_isa_set((bt_isa)isa);
      for (int nt = 1; nt <= 2; nt++) {
        omp_set_num_threads(nt);
        int ok1 = run_same(bt_gemm, &shapes[si], &b);
        int ok2 = run_same(bt_gemm_st, &shapes[si], &b);
        if (!ok1 || !ok2) {
          const shape *s = &shapes[si];
          if (fails++ < 10)
            fprintf(stderr,
                    "mismatch: isa %s threads %d ta %d tb %d M %d N %d K %d lda %d ldb %d "
                    "ldc %d acc %d (gemm %d, st %d)\n",
                    bt_isa_name((bt_isa)isa), nt, s->ta, s->tb, s->M, s->N, s->K, s->lda,
                    s->ldb, s->ldc, s->acc, ok1, ok2);
        }
        CHECK(ok1 && ok2, "shape %d, isa %s, threads %d", si, bt_isa_name((bt_isa)isa), nt);
      }
    }
    unmake(&b);
  }
  bt_isa_set(best);
  omp_set_num_threads(2);
}

/* ---- the comparison can fail: perturb one input, expect a difference ---- */
static void test_negative_control(void) {
  shape s = fixed_shape(0, 1, 33, 47, 65, 0);
  bufs b;
  make(&b, &s, 77);
  CHECK(run_same(bt_gemm, &s, &b), "unperturbed must match");
  b.A[5 * s.lda + 17] += 0.25f; /* row 5 of C changes */
  CHECK(!run_same(bt_gemm, &s, &b), "perturbed A must not match");
  b.A[5 * s.lda + 17] -= 0.25f;
  /* A different summation order (k descending) must also be caught. */
  memcpy(b.Cgot, b.C0, b.nc * sizeof(float));
  for (int i = 0; i < s.M; i++)
    for (int j = 0; j < s.N; j++) {
      float c = 0.0f;
      for (int k = s.K - 1; k >= 0; k--)
        c = fmaf(b.A[i * s.lda + k], b.B[j * s.ldb + k], c);
      b.Cgot[i * s.ldc + j] = c;
    }
  CHECK(memcmp(b.Cgot, b.Cref, b.nc * sizeof(float)) != 0, "reversed order must not match");
  unmake(&b);
}

/* ---- OpenBLAS within a tolerance ---- */
static void test_blas(void) {
  for (int t = 0; t < 24; t++) {
    shape s = t < 20 ? random_shape(90) : fixed_shape(t & 1, (t >> 1) & 1, 130, 70, 300, 1);
    bufs b;
    make(&b, &s, 500 + t);
    memcpy(b.Cgot, b.C0, b.nc * sizeof(float));
    bt_gemm_blas(s.ta, s.tb, s.M, s.N, s.K, b.A, s.lda, b.B, s.ldb, b.Cgot, s.ldc, s.acc);
    double m = 0;
    for (int i = 0; i < s.M; i++)
      for (int j = 0; j < s.N; j++) {
        double d = fabs((double)b.Cgot[i * s.ldc + j] - b.Cref[i * s.ldc + j]);
        if (d > m || d != d) m = d != d ? INFINITY : d;
      }
    /* |terms| <= 1 and K <= 300: float rounding differences stay far below this */
    CHECK(m <= 1e-4 * (s.K + 1), "blas vs naive max abs diff %g (M %d N %d K %d)", m, s.M, s.N,
          s.K);
    unmake(&b);
  }
  /* K = 0 through BLAS */
  float C[6] = {1, 2, 3, 4, 5, 6};
  bt_gemm_blas(0, 0, 2, 3, 0, NULL, 1, NULL, 3, C, 3, 1);
  CHECK(C[5] == 6.0f, "K = 0, accumulate keeps C");
  bt_gemm_blas(0, 0, 2, 3, 0, NULL, 1, NULL, 3, C, 3, 0);
  CHECK(C[0] == 0.0f && C[5] == 0.0f, "K = 0 zeroes C");
}

/* ---- linear layer ---- */
static void linear_ref(double *out, const float *inp, const float *w, const float *bias, int N,
                       int IC, int OC) {
  for (int n = 0; n < N; n++)
    for (int o = 0; o < OC; o++) {
      double s = bias ? bias[o] : 0.0;
      for (int i = 0; i < IC; i++)
        s += (double)inp[n * IC + i] * w[o * IC + i];
      out[n * OC + o] = s;
    }
}

static void test_linear_backend(bt_gemm_backend be) {
  bt_gemm_set_backend(be);
  const int N = 37, IC = 45, OC = 70;
  float *inp = malloc(sizeof(float) * N * IC), *w = malloc(sizeof(float) * OC * IC);
  float *bias = malloc(sizeof(float) * OC), *out = malloc(sizeof(float) * N * OC);
  float *dout = malloc(sizeof(float) * N * OC), *dinp = malloc(sizeof(float) * N * IC);
  float *dw = malloc(sizeof(float) * OC * IC), *db = malloc(sizeof(float) * OC);
  double *ref = malloc(sizeof(double) * N * OC);
  check_fill(inp, (size_t)N * IC, 1, 1.0f);
  check_fill(w, (size_t)OC * IC, 2, 0.5f);
  check_fill(bias, OC, 3, 0.5f);
  check_fill(dout, (size_t)N * OC, 4, 1.0f);
  bt_linear_forward(out, inp, w, bias, N, IC, OC);
  linear_ref(ref, inp, w, bias, N, IC, OC);
  double m = 0;
  for (int i = 0; i < N * OC; i++)
    m = fmax(m, fabs(out[i] - ref[i]));
  CHECK(m < 1e-5, "linear forward max abs err %g (backend %d)", m, (int)be);
  bt_linear_forward(out, inp, w, NULL, N, IC, OC);
  linear_ref(ref, inp, w, NULL, N, IC, OC);
  m = 0;
  for (int i = 0; i < N * OC; i++)
    m = fmax(m, fabs(out[i] - ref[i]));
  CHECK(m < 1e-5, "linear forward (no bias) max abs err %g", m);

  /* backward accumulates: start from 1.0 everywhere */
  for (int i = 0; i < N * IC; i++) dinp[i] = 1.0f;
  for (int i = 0; i < OC * IC; i++) dw[i] = 1.0f;
  for (int i = 0; i < OC; i++) db[i] = 1.0f;
  bt_linear_backward(dinp, dw, db, dout, inp, w, N, IC, OC);
  double mi = 0, mw = 0, mb = 0;
  for (int n = 0; n < N; n++)
    for (int i = 0; i < IC; i++) {
      double s = 1.0;
      for (int o = 0; o < OC; o++)
        s += (double)dout[n * OC + o] * w[o * IC + i];
      mi = fmax(mi, fabs(dinp[n * IC + i] - s));
    }
  for (int o = 0; o < OC; o++) {
    for (int i = 0; i < IC; i++) {
      double s = 1.0;
      for (int n = 0; n < N; n++)
        s += (double)dout[n * OC + o] * inp[n * IC + i];
      mw = fmax(mw, fabs(dw[o * IC + i] - s));
    }
    double s = 1.0;
    for (int n = 0; n < N; n++)
      s += dout[n * OC + o];
    mb = fmax(mb, fabs(db[o] - s));
  }
  CHECK(mi < 1e-5 && mw < 1e-5 && mb < 1e-5, "linear backward errs dinp %g dw %g db %g", mi,
        mw, mb);
  /* NULL dinp and dbias are skipped; dw still accumulates */
  float *dw2 = malloc(sizeof(float) * OC * IC);
  for (int i = 0; i < OC * IC; i++) dw2[i] = 1.0f;
  bt_linear_backward(NULL, dw2, NULL, dout, inp, w, N, IC, OC);
  CHECK(memcmp(dw2, dw, sizeof(float) * OC * IC) == 0, "dw with NULL dinp/dbias");
  free(dw2);
  free(inp); free(w); free(bias); free(out); free(dout); free(dinp); free(dw); free(db);
  free(ref);
  bt_gemm_set_backend(BT_GEMM_AUTO);
}

/* loss = sum_n,o g[n,o] * out[n,o], evaluated in double from float params */
static double fd_loss(const float *inp, const float *w, const float *b, const float *g, int N,
                      int IC, int OC) {
  double L = 0;
  for (int n = 0; n < N; n++)
    for (int o = 0; o < OC; o++) {
      double s = b[o];
      for (int i = 0; i < IC; i++)
        s += (double)inp[n * IC + i] * w[o * IC + i];
      L += g[n * OC + o] * s;
    }
  return L;
}

static void test_linear_gradcheck(void) {
  enum { N = 3, IC = 5, OC = 4 };
  float inp[N * IC], w[OC * IC], b[OC], g[N * OC];
  float dinp[N * IC] = {0}, dw[OC * IC] = {0}, db[OC] = {0};
  check_fill(inp, N * IC, 11, 1.0f);
  check_fill(w, OC * IC, 12, 1.0f);
  check_fill(b, OC, 13, 1.0f);
  check_fill(g, N * OC, 14, 1.0f); /* dL/dout */
  bt_linear_backward(dinp, dw, db, g, inp, w, N, IC, OC);
  const float h = 1e-2f; /* the loss is linear in each parameter: exact up to rounding */
  double worst = 0;
  struct { float *p, *d; int n; } sets[3] = {{inp, dinp, N * IC}, {w, dw, OC * IC}, {b, db, OC}};
  for (int s = 0; s < 3; s++)
    for (int i = 0; i < sets[s].n; i++) {
      float keep = sets[s].p[i];
      sets[s].p[i] = keep + h;
      double lp = fd_loss(inp, w, b, g, N, IC, OC);
      sets[s].p[i] = keep - h;
      double lm = fd_loss(inp, w, b, g, N, IC, OC);
      sets[s].p[i] = keep;
      double hh = ((double)(keep + h) - (double)(keep - h));
      double num = (lp - lm) / hh;
      worst = fmax(worst, fabs(num - sets[s].d[i]) / (fabs(num) + 1e-3));
    }
  CHECK(worst < 1e-4, "finite-difference rel err %g", worst);
}

/* ---- bfloat16 inputs: the AVX512_BF16 kernel against its scalar reference ---- */
static void test_bf16(void) {
  /* the reference against double precision on bfloat16-rounded inputs */
  shape s0 = fixed_shape(0, 1, 37, 29, 301, 0);
  bufs b;
  make(&b, &s0, 77);
  memcpy(b.Cgot, b.C0, b.nc * sizeof(float));
  bt_gemm_bf16_ref(s0.ta, s0.tb, s0.M, s0.N, s0.K, b.A, s0.lda, b.B, s0.ldb, b.Cgot, s0.ldc, 0);
  double worst = 0;
  for (int m = 0; m < s0.M; m++)
    for (int n = 0; n < s0.N; n++) {
      double want = 0, mag = 0;
      for (int k = 0; k < s0.K; k++) {
        double x = bt_bf16_to_f32(bt_f32_to_bf16(b.A[(size_t)m * s0.lda + k])) *
                   (double)bt_bf16_to_f32(bt_f32_to_bf16(b.B[(size_t)n * s0.ldb + k]));
        want += x;
        mag += fabs(x);
      }
      worst = fmax(worst, fabs(b.Cgot[(size_t)m * s0.ldc + n] - want) / (mag + 1e-30));
    }
  CHECK(worst < 1e-5, "bf16 reference: relative error %g against double on rounded inputs", worst);
  /* and the fp32 GEMM differs from it by about bf16's rounding, not more */
  double dmax = 0;
  for (int m = 0; m < s0.M; m++)
    for (int n = 0; n < s0.N; n++)
      dmax = fmax(dmax, fabs(b.Cgot[(size_t)m * s0.ldc + n] - b.Cref[(size_t)m * s0.ldc + n]));
  CHECK(dmax > 0 && dmax < 0.2, "bf16 against fp32: max difference %g", dmax);
  unmake(&b);
  if (!bt_bf16_available()) {
    CHECK(bt_bf16_peak_ratio() == 0.0, "bf16 peak ratio %g without AVX512_BF16", bt_bf16_peak_ratio());
    printf("bf16: this CPU or build lacks AVX512_BF16; the kernel is not run (reference only)\n");
    return;
  }
  /* --precision auto's measurement: a real rate, between a quarter of the
   * FMA's FLOPs and four times them (seen: 0.35-0.5x on an Intel Xeon) */
  const double ratio = bt_bf16_peak_ratio();
  CHECK(ratio > 0.25 && ratio < 4.0, "vdpbf16ps / FMA FLOPs %g is not a plausible measurement", ratio);
  printf("bf16: vdpbf16ps runs at %.2fx the FMA's FLOPs here\n", ratio);
  /* the kernel, bit for bit: shapes of every edge, 1 and 2 threads, with
   * subnormals, infinities and NaNs among the inputs */
  enum { NRAND = 60 };
  shape shapes[NRAND + 24];
  int ns = 0;
  for (int i = 0; i < NRAND; i++)
    shapes[ns++] = random_shape(80);
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      shapes[ns++] = fixed_shape(ta, tb, 150, 70, 513, (ta + tb) & 1);
      shapes[ns++] = fixed_shape(ta, tb, 13, 33, 1, 1);
      shapes[ns++] = fixed_shape(ta, tb, 24, 64, 0, ta);
      shapes[ns++] = fixed_shape(ta, tb, 1, 1, 2, 0);
      /* past the kernel's blocks: row blocks of 252, 128 pairs of k, and
       * packed B chunks of 2 MiB (1000 columns: 512 pairs) */
      shapes[ns++] = fixed_shape(ta, tb, 600, 45, 301, ta);
      shapes[ns++] = fixed_shape(ta, tb, 19, 1000, 1101, tb);
    }
  int fails = 0;
  for (int si = 0; si < ns; si++) {
    const shape *s = &shapes[si];
    make(&b, s, 5000 + si);
    if (si % 3 == 0 && b.na > 8 && b.nb > 8) {
      b.A[1] = 1e-40f;  /* subnormal: read as zero */
      b.A[3] = -0.0f;
      b.B[2] = 3e-39f;
      b.B[5] = INFINITY;
      b.A[7] = NAN;
    }
    memcpy(b.Cref, b.C0, b.nc * sizeof(float));
    bt_gemm_bf16_ref(s->ta, s->tb, s->M, s->N, s->K, b.A, s->lda, b.B, s->ldb, b.Cref, s->ldc, s->acc);
    for (int nt = 1; nt <= 2; nt++) {
      omp_set_num_threads(nt);
      memcpy(b.Cgot, b.C0, b.nc * sizeof(float));
      bt_gemm_bf16(s->ta, s->tb, s->M, s->N, s->K, b.A, s->lda, b.B, s->ldb, b.Cgot, s->ldc, s->acc);
      int ok = memcmp(b.Cgot, b.Cref, b.nc * sizeof(float)) == 0;
      if (!ok && fails++ < 5)
        fprintf(stderr, "bf16 mismatch: threads %d ta %d tb %d M %d N %d K %d acc %d\n", nt, s->ta, s->tb, s->M,
                s->N, s->K, s->acc);
      CHECK(ok, "bf16 kernel, shape %d, threads %d", si, nt);
    }
    unmake(&b);
  }
  omp_set_num_threads(2);
}

static void test_peak(void) {
  double p = bt_peak_gflops(bt_isa_detect(), 1);
  CHECK(p > 0.1 && p < 1e5, "peak %g GFLOP/s", p);
}

/* ---- binary16: conversions, and a half B against the float GEMM ---- */

/* The half's value from its fields, in double (exact), as a float. */
static float f16_value(uint16_t h) {
  const int e = (h >> 10) & 0x1f, m = h & 0x3ff;
  const double v = e ? ldexp(1024 + m, e - 25) : ldexp(m, -24);
  return (float)((h & 0x8000) ? -v : v);
}

static void test_f16_convert(void) {
  int bad = 0;
  for (uint32_t h = 0; h < 0x10000; h++) {
    if (((h >> 10) & 0x1f) == 0x1f) /* infinities and NaNs */
      continue;
    const float f = bt_f16_to_f32((uint16_t)h), want = f16_value((uint16_t)h);
    uint16_t back = 0;
    if (memcmp(&f, &want, sizeof f) != 0 || !bt_f32_to_f16_exact(f, &back) || back != h)
      if (bad++ < 5)
        fprintf(stderr, "half 0x%04x: %g, want %g, back 0x%04x\n", h, f, want, back);
  }
  CHECK(bad == 0, "%d halves widen or narrow wrongly", bad);
  uint16_t h;
  CHECK(bt_f16_to_f32(0x7c00) == INFINITY && bt_f16_to_f32(0xfc00) == -INFINITY, "infinities");
  CHECK(isnan(bt_f16_to_f32(0x7e00)), "a NaN stays a NaN");
  /* not halves: between two halves, below the smallest, above the largest, NaN */
  CHECK(!bt_f32_to_f16_exact(1.0f + 0x1p-11f, &h) && !bt_f32_to_f16_exact(0x1p-25f, &h) &&
            !bt_f32_to_f16_exact(65536.0f, &h) && !bt_f32_to_f16_exact(NAN, &h) &&
            !bt_f32_to_f16_exact(0x1.8p-24f, &h),
        "floats that are no half");
  CHECK(bt_f32_to_f16_exact(65504.0f, &h) && h == 0x7bff && bt_f32_to_f16_exact(-0x1p-24f, &h) &&
            h == 0x8001,
        "the largest half and the smallest subnormal");
}

/* bt_gemm_f16b_st, and bt_gemm_f16p_st on the same B in column panels of
 * 16 (a partial last one, and room between panels), against bt_gemm_naive
 * on the widened B, bit for bit, on every ISA path: random halves
 * (subnormals included), every row count of a tile and past it, wide
 * tiles, single vectors and column tails. */
static void test_f16b(void) {
  bt_isa best = bt_isa_detect();
  int bad = 0, badp = 0;
  for (int t = 0; t < 160; t++) {
    const int M = t < 40 ? 1 + t % 9 : rnd(1, 9), N = t < 40 ? 1 + (t * 37) % 200 : rnd(1, 260),
              K = t == 0 ? 0 : rnd(1, 300);
    const int lda = K + rnd(0, 3), ldb = N + rnd(0, 5), ldc = N + rnd(0, 2);
    float *A = malloc(sizeof(float) * M * (lda ? lda : 1)), *Bf = malloc(sizeof(float) * (K ? K : 1) * ldb);
    uint16_t *B = malloc(sizeof(uint16_t) * (K ? K : 1) * ldb);
    const long pst = 16L * K + rnd(0, 2) * 16, npan = (N + 15) / 16;
    uint16_t *Bp = calloc((size_t)(npan * pst + 16), sizeof(uint16_t));
    float *Cref = malloc(sizeof(float) * M * ldc), *Cgot = malloc(sizeof(float) * M * ldc);
    assert(A && Bf && B && Cref && Cgot);
    check_fill(A, (size_t)M * lda, 500 + t, 1.0f);
    for (int i = 0; i < K * ldb; i++) {
      uint16_t h;
      do
        h = (uint16_t)check_rng_next_(&g_rng);
      while (((h >> 10) & 0x1f) == 0x1f || ((h >> 10) & 0x1f) > 17); /* |b| < 8: no overflow */
      B[i] = h;
      Bf[i] = bt_f16_to_f32(h);
    }
    for (int k = 0; k < K; k++)
      for (int n = 0; n < N; n++)
        Bp[(n / 16) * pst + 16L * k + n % 16] = B[(long)k * ldb + n];
    for (int i = 0; i < M * ldc; i++)
      Cref[i] = Cgot[i] = 7.0f; /* the padding must stay */
    bt_gemm_naive(0, 0, M, N, K, A, lda, Bf, ldb, Cref, ldc, 0);
    for (int isa = BT_ISA_SCALAR; isa <= (int)best; isa++) {
      bt_isa_set((bt_isa)isa);
      for (int i = 0; i < M * ldc; i++)
        Cgot[i] = 7.0f;
      bt_gemm_f16b_st(M, N, K, A, lda, B, ldb, Cgot, ldc);
      if (memcmp(Cgot, Cref, sizeof(float) * M * ldc) != 0 && bad++ < 5)
        fprintf(stderr, "f16b mismatch: isa %s M %d N %d K %d\n", bt_isa_name((bt_isa)isa), M, N, K);
      for (int i = 0; i < M * ldc; i++)
        Cgot[i] = 7.0f;
      bt_gemm_f16p_st(M, N, K, A, lda, Bp, pst, Cgot, ldc);
      if (memcmp(Cgot, Cref, sizeof(float) * M * ldc) != 0 && badp++ < 5)
        fprintf(stderr, "f16p mismatch: isa %s M %d N %d K %d pst %ld\n", bt_isa_name((bt_isa)isa), M,
                N, K, pst);
    }
    bt_isa_set(best);
    free(A);
    free(Bf);
    free(B);
    free(Bp);
    free(Cref);
    free(Cgot);
  }
  CHECK(bad == 0, "bt_gemm_f16b_st differs from the float GEMM %d times", bad);
  CHECK(badp == 0, "bt_gemm_f16p_st (panels) differs from the float GEMM %d times", badp);
}

int main(void) {
  bt_isa best = bt_isa_detect();
  printf("isa paths tested: scalar..%s\n", bt_isa_name(best));
  test_exact();
  test_negative_control();
  test_blas();
  test_linear_backend(BT_GEMM_OWN);
  test_linear_backend(BT_GEMM_BLAS);
  test_linear_backend(BT_GEMM_AUTO);
  test_linear_gradcheck();
  test_bf16();
  test_f16_convert();
  test_f16b();
  test_peak();
  return check_summary("test_gemm");
}
