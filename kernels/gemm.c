/*
 * gemm.c - public GEMM entry points (own kernels per ISA, the naive reference,
 * OpenBLAS), the training backend switch, the linear layer built on them, and
 * the FMA peak measurement.
 */
#include "kernels/bf16.h"
#include "kernels/f16.h"
#include "kernels/isa_impl.h"
#include "kernels/kernels.h"
#include "kernels/prof.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Prototypes of the per-ISA copies; they must match gemm_impl.c. */
BT_DECLARE_ISA3(void, bt_gemm_impl,
                (int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
                 int ldb, float *C, int ldc, int accumulate, int nthreads))
BT_DECLARE_ISA3(float, bt_peak_loop, (long iters, int *lanes))

/* Below this many flops a parallel region costs more than it saves. */
#define GEMM_PAR_MIN_FLOPS 4e6

/* ==================================================================== */
/* GEMM                                                                  */
/* ==================================================================== */

void bt_gemm(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
             int ldb, float *C, int ldc, int accumulate) {
  int nt = 1;
  if (!omp_in_parallel() && 2.0 * M * N * K >= GEMM_PAR_MIN_FLOPS)
    nt = omp_get_max_threads();
  BT_PICK_ISA(bt_gemm_impl)(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, accumulate, nt);
}

void bt_gemm_st(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
                int ldb, float *C, int ldc, int accumulate) {
  BT_PICK_ISA(bt_gemm_impl)(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, accumulate, 1);
}

void bt_gemm_naive(int ta, int tb, int M, int N, int K, const float *A, int lda,
                   const float *B, int ldb, float *C, int ldc, int accumulate) {
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      float c = accumulate ? C[(long)i * ldc + j] : 0.0f;
      for (int k = 0; k < K; k++) {
        float a = ta ? A[(long)k * lda + i] : A[(long)i * lda + k];
        float b = tb ? B[(long)j * ldb + k] : B[(long)k * ldb + j];
        c = fmaf(a, b, c);
      }
      C[(long)i * ldc + j] = c;
    }
}

void bt_gemm_blas(int ta, int tb, int M, int N, int K, const float *A, int lda,
                  const float *B, int ldb, float *C, int ldc, int accumulate) {
  if (M <= 0 || N <= 0)
    return;
  if (K <= 0) { /* BLAS would reject the leading dimensions a caller may pass here */
    if (!accumulate)
      for (int i = 0; i < M; i++)
        memset(C + (long)i * ldc, 0, (size_t)N * sizeof(float));
    return;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              M, N, K, 1.0f, A, lda, B, ldb, accumulate ? 1.0f : 0.0f, C, ldc);
}

/* Both layouts of a binary16 B: row k at B + k ldb, in panels pst apart
 * when pst > 0 (gemm_impl.c: few_rows). */
BT_DECLARE_ISA3(void, bt_gemm_f16_impl,
                (int M, int N, int K, const float *A, int lda, const uint16_t *B, long ldb,
                 long pst, float *C, int ldc))

void bt_gemm_f16b_st(int M, int N, int K, const float *A, int lda, const uint16_t *B, int ldb,
                     float *C, int ldc) {
  BT_PICK_ISA(bt_gemm_f16_impl)(M, N, K, A, lda, B, ldb, 0, C, ldc);
}

void bt_gemm_f16p_st(int M, int N, int K, const float *A, int lda, const uint16_t *B, long pst,
                     float *C, int ldc) {
  BT_PICK_ISA(bt_gemm_f16_impl)(M, N, K, A, lda, B, 16, pst, C, ldc);
}

float bt_f16_to_f32(uint16_t h) { return bt_f16_to_f32_inline(h); }

int bt_f32_to_f16_exact(float x, uint16_t *h) { return bt_f32_to_f16_exact_inline(x, h); }

/* Per thread: adaptive coding runs bit-portable training steps on its
 * own threads while another may train with OpenBLAS. */
static _Thread_local bt_gemm_backend g_backend = BT_GEMM_AUTO;

void bt_gemm_set_backend(bt_gemm_backend b) { g_backend = b; }

bt_gemm_backend bt_gemm_backend_setting(void) { return g_backend; }

bt_gemm_backend bt_gemm_get_backend(void) {
  if (g_backend != BT_GEMM_AUTO)
    return g_backend;
  /* Own kernels on both SIMD paths: measured faster than OpenBLAS's
   * Haswell kernels over whole training steps of every preset, and their
   * bits depend on neither the thread count nor the path
   * (docs/measurements.md, "Own GEMMs on AVX2"). The scalar path's fmaf
   * loops are ~1 GFLOP/s: OpenBLAS there. */
  return bt_isa_get() >= BT_ISA_AVX2 ? BT_GEMM_OWN : BT_GEMM_BLAS;
}

void bt_gemm_train(int ta, int tb, int M, int N, int K, const float *A, int lda,
                   const float *B, int ldb, float *C, int ldc, int accumulate) {
  const bt_gemm_backend be = bt_gemm_get_backend();
  if (be == BT_GEMM_BLAS)
    bt_gemm_blas(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
  else if (be == BT_GEMM_BF16)
    bt_gemm_bf16(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
  else
    bt_gemm(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
}

void bt_transpose_scaled(float *dst, const float *src, int rows, int cols, float s) {
  enum { TB = 32 };
#pragma omp parallel for schedule(static) if (!omp_in_parallel() && (long)rows * cols >= 1L << 15)
  for (int i0 = 0; i0 < rows; i0 += TB)
    for (int j0 = 0; j0 < cols; j0 += TB)
      for (int j = j0; j < j0 + TB && j < cols; j++)
        for (int i = i0; i < i0 + TB && i < rows; i++)
          dst[(size_t)j * rows + i] = src[(size_t)i * cols + j] * s;
}

/* ---- bfloat16 inputs (kernels/gemm_bf16.c has the AVX512_BF16 kernel) ---- */

#ifdef BT_HAVE_BF16_KERNEL
void bt_gemm_bf16_avx512(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                         float *C, int ldc, int accumulate);
float bt_peak_loop_bf16(long iters);
#endif

int bt_bf16_available(void) {
#ifdef BT_HAVE_BF16_KERNEL
  static int has = -1;
  if (has < 0)
    has = __builtin_cpu_supports("avx512bf16") ? 1 : 0;
  return has && bt_isa_get() == BT_ISA_AVX512;
#else
  return 0;
#endif
}

static inline float bf16_in(float x) { return bt_bf16_daz_inline(bt_bf16_to_f32(bt_f32_to_bf16(x))); }

void bt_gemm_bf16_ref(int ta, int tb, int M, int N, int K, const float *A, int lda,
                      const float *B, int ldb, float *C, int ldc, int accumulate) {
#pragma omp parallel for schedule(static) if ((long)M * N * K > (1L << 20))
  for (int m = 0; m < M; m++)
    for (int n = 0; n < N; n++) {
      float acc = accumulate ? C[(long)m * ldc + n] : 0.0f;
      for (int k = 0; k < K; k += 2) {
        const float a0 = bf16_in(ta ? A[(long)k * lda + m] : A[(long)m * lda + k]);
        const float b0 = bf16_in(tb ? B[(long)n * ldb + k] : B[(long)k * ldb + n]);
        float a1 = 0, b1 = 0;
        if (k + 1 < K) {
          a1 = bf16_in(ta ? A[(long)(k + 1) * lda + m] : A[(long)m * lda + k + 1]);
          b1 = bf16_in(tb ? B[(long)n * ldb + k + 1] : B[(long)(k + 1) * ldb + n]);
        }
        acc = bt_bf16_daz_inline(fmaf(a1, b1, bt_bf16_daz_inline(acc)));
        acc = bt_bf16_daz_inline(fmaf(a0, b0, acc));
      }
      C[(long)m * ldc + n] = acc;
    }
}

void bt_gemm_bf16(int ta, int tb, int M, int N, int K, const float *A, int lda,
                  const float *B, int ldb, float *C, int ldc, int accumulate) {
#ifdef BT_HAVE_BF16_KERNEL
  if (bt_bf16_available()) {
    bt_gemm_bf16_avx512(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
    return;
  }
#endif
  bt_gemm_bf16_ref(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
}

/* ==================================================================== */
/* Linear layer                                                          */
/* ==================================================================== */

#define LIN_PAR_MIN_ELEMS (1L << 15)

static void add_bias(float *out, const float *bias, int N, int OC) {
#pragma omp parallel for schedule(static) \
    if (!omp_in_parallel() && (long)N * OC >= LIN_PAR_MIN_ELEMS)
  for (int n = 0; n < N; n++) {
    float *o = out + (long)n * OC;
    for (int j = 0; j < OC; j++)
      o[j] += bias[j];
  }
}

void bt_linear_forward(float *out, const float *inp, const float *w, const float *bias, int N,
                       int IC, int OC) {
  const double t0 = bt_prof_begin();
  // out (N,OC) = inp (N,IC) . w^T (OC,IC)^T, then + bias (OC)
  bt_gemm_train(0, 1, N, OC, IC, inp, IC, w, IC, out, OC, 0);
  if (bias)
    add_bias(out, bias, N, OC);
  bt_prof_end(BT_PROF_LINEAR_FWD, t0, 2.0 * N * IC * OC);
}

static void linear_backward(float *dinp, float *dw, float *dbias, const float *dout,
                            const float *inp, const float *w, int N, int IC, int OC,
                            int acc_dinp);

void bt_linear_backward(float *dinp, float *dw, float *dbias, const float *dout,
                        const float *inp, const float *w, int N, int IC, int OC) {
  BT_PROF_CALL(BT_PROF_LINEAR_BWD, (dinp ? 4.0 : 2.0) * N * IC * OC,
               linear_backward(dinp, dw, dbias, dout, inp, w, N, IC, OC, 1));
}

void bt_linear_backward_set(float *dinp, float *dw, float *dbias, const float *dout,
                            const float *inp, const float *w, int N, int IC, int OC) {
  BT_PROF_CALL(BT_PROF_LINEAR_BWD, (dinp ? 4.0 : 2.0) * N * IC * OC,
               linear_backward(dinp, dw, dbias, dout, inp, w, N, IC, OC, 0));
}

static void linear_backward(float *dinp, float *dw, float *dbias, const float *dout,
                            const float *inp, const float *w, int N, int IC, int OC,
                            int acc_dinp) {
  // dinp (N,IC) [+]= dout (N,OC) . w (OC,IC)
  if (dinp)
    bt_gemm_train(0, 0, N, IC, OC, dout, OC, w, IC, dinp, IC, acc_dinp);
  // dw (OC,IC) += dout^T (OC,N) . inp (N,IC)
  bt_gemm_train(1, 0, OC, IC, N, dout, OC, inp, IC, dw, IC, 1);
  if (!dbias)
    return;
  bt_colsum_add(dbias, dout, N, OC); /* in double, over n in order */
}

/* ==================================================================== */
/* FMA peak                                                              */
/* ==================================================================== */

double bt_peak_gflops(bt_isa isa, int threads) {
  if (isa > bt_isa_detect())
    isa = bt_isa_detect();
  float (*loop)(long, int *) = isa == BT_ISA_AVX512 ? bt_peak_loop_avx512
                               : isa == BT_ISA_AVX2 ? bt_peak_loop_avx2
                                                    : bt_peak_loop_scalar;
  if (threads < 1)
    threads = 1;
  /* Calibrate on one thread: grow until a run takes >= 20 ms. */
  long iters = 1 << 16;
  int lanes = 1;
  volatile float sink = 0.0f;
  for (;;) {
    double t0 = omp_get_wtime();
    sink += loop(iters, &lanes);
    double dt = omp_get_wtime() - t0;
    if (dt >= 0.02 || iters > (1L << 40)) {
      const double want = (double)iters * (0.2 / (dt > 1e-9 ? dt : 1e-9));
      iters = want < (double)(1L << 42) ? (long)want : 1L << 42; /* a loop that took no time */
      break;
    }
    iters *= 4;
  }
  if (iters < 1)
    iters = 1;
  double t0 = omp_get_wtime();
  if (threads > 1 && !omp_in_parallel()) {
    float part = 0.0f;
#pragma omp parallel num_threads(threads) reduction(+ : part)
    {
      int l;
      part += loop(iters, &l);
    }
    sink += part;
  } else {
    threads = 1;
    sink += loop(iters, &lanes);
  }
  double dt = omp_get_wtime() - t0;
  (void)sink;
  return (double)iters * 12.0 * lanes * 2.0 * threads / dt * 1e-9;
}

/* vdpbf16ps's FLOP rate over the fp32 FMA's, on one thread: each loop is
 * timed over at least 20 ms, best of three. Some CPUs that have AVX512_BF16
 * run it at twice the FMA's FLOPs (AMD Zen 4 and 5, whose bf16 GEMM beat fp32
 * there), others at half (the Intel Xeon of docs/measurements.md), where a
 * bf16 GEMM can only lose. 0 where there is no bf16 kernel. */
double bt_bf16_peak_ratio(void) {
#ifdef BT_HAVE_BF16_KERNEL
  if (!bt_bf16_available())
    return 0.0;
  static double ratio = -1.0;
  if (ratio >= 0.0)
    return ratio;
  volatile float sink = 0.0f;
  double best_f = 1e30, best_b = 1e30;
  int lanes = 16;
  long iters = 1 << 14;
  for (int rep = 0; rep < 3; rep++)
    for (;;) {
      double t0 = omp_get_wtime();
      sink += bt_peak_loop_avx512(iters, &lanes);
      double t1 = omp_get_wtime();
      sink += bt_peak_loop_bf16(iters);
      double t2 = omp_get_wtime();
      if (t1 - t0 < 0.02 && iters < (1L << 36)) {
        iters *= 2;
        continue;
      }
      /* seconds per iteration: 12 chains of FMA (2 FLOPs a lane) or of
       * vdpbf16ps (4 FLOPs a lane) */
      if ((t1 - t0) / iters < best_f)
        best_f = (t1 - t0) / iters;
      if ((t2 - t1) / iters < best_b)
        best_b = (t2 - t1) / iters;
      break;
    }
  (void)sink;
  ratio = (4.0 / best_b) / (2.0 / best_f);
  return ratio;
#else
  return 0.0;
#endif
}

/* ==================================================================== */
/* Read bandwidth                                                        */
/* ==================================================================== */

/* Sum of a slice in 8 independent chains, so loads, not adds, set the pace. */
static uint64_t sum_words(const uint64_t *p, size_t n) {
  uint64_t a[8] = {0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++)
      a[k] += p[i + k];
  for (; i < n; i++)
    a[0] += p[i];
  return a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
}

double bt_read_gbs(int threads, size_t bytes) {
  if (threads < 1)
    threads = 1;
  const size_t n = bytes / sizeof(uint64_t) / (size_t)threads * (size_t)threads;
  uint64_t *buf = n ? aligned_alloc(64, (n * sizeof *buf + 63) & ~(size_t)63) : NULL;
  if (!buf)
    return 0.0;
  const size_t per = n / (size_t)threads;
  double best = 1e30;
  volatile uint64_t sink = 0;
  for (int pass = 0; pass < 4; pass++) { /* pass 0 writes the pages (first touch per thread) */
    uint64_t total = 0;
    double t0 = omp_get_wtime();
#pragma omp parallel num_threads(threads) reduction(+ : total)
    {
      uint64_t *p = buf + per * (size_t)omp_get_thread_num();
      if (pass == 0)
        for (size_t i = 0; i < per; i++)
          p[i] = i;
      else
        total += sum_words(p, per);
    }
    double dt = omp_get_wtime() - t0;
    sink += total;
    if (pass > 0 && dt < best)
      best = dt;
  }
  (void)sink;
  free(buf);
  return (double)(n * sizeof *buf) / best * 1e-9;
}
