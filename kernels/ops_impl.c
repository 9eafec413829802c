/*
 * ops_impl.c - the transformer's elementwise and row ops, forward and backward.
 *
 * Portable C compiled three times (BT_MULTI_ISA_SOURCES): once per ISA with
 * -DBT_ISA_SUFFIX=_scalar/_avx2/_avx512 and the matching -m flags. Every
 * exported function is BT_ISA_FN(name); kernels/ops.c dispatches.
 *
 * Why this gives identical bits on all three paths: the build has
 * -ffp-contract=off and no -ffast-math, so the compiler keeps every IEEE
 * operation and the order of every float sum. Elementwise loops are
 * vectorised (`omp simd`) without changing any result. Row reductions are
 * written as 16 lanes in plain C (lane j sums elements i == j mod 16, then a
 * fixed pairwise tree), which vectorises on every path and is the same
 * arithmetic on each. Parallel loops split independent outputs only; a
 * reduction across rows (LayerNorm dw/db) runs over fixed-size row blocks
 * inside each column, so no sum depends on the thread count.
 *
 * No libm transcendental is called here: exp comes from mathfn.h (GELU's
 * tanh is rewritten with exp, see there), the log of the cross-entropy from
 * bt_ln_pos_d() below. sqrtf and division are correctly rounded IEEE operations
 * (and -fno-math-errno inlines sqrtf).
 */

/* GCC only if-converts the selects of mathfn.h's exp (a multiply after a
 * select) when FP operations may not trap; without this the exp/tanh loops
 * stay scalar on the SSE2 and AVX2 paths. It changes no value (clang's
 * default already ignores traps). Must come before mathfn.h so its inline functions get it. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

/* Sanitizer instrumentation keeps clang from vectorising the `omp simd`
 * loops, which it reports as a warning; the code is the same either way. */
#if defined(__clang__) && defined(__has_feature)
#if __has_feature(address_sanitizer)
#pragma clang diagnostic ignored "-Wpass-failed"
#endif
#endif

#include "kernels/bf16.h"
#include "kernels/isa_impl.h"
#include "kernels/kernels.h"
#include "kernels/mathfn.h"

#include <assert.h>
#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Below these sizes the OpenMP fork costs more than it saves. The result is
 * the same either way. The ops that inference calls per decoded byte test the
 * size BEFORE the region rather than in an if() clause: a region whose if() is
 * false still runs the OpenMP runtime's team setup (a futex call each, ~1 us
 * under a hypervisor), about 50 per decoded byte. */
#define PAR_MIN_ELEMS ((size_t)1 << 15)
#define PAR_MIN_ROWS 64

/* ==================================================================== */
/* Fixed-order 16-lane reductions                                        */
/* ==================================================================== */

#define LANES 16

/* Folds 16 lanes in a fixed tree: 8+8, 4+4, 2+2, 1+1. */
static inline float fold16(float acc[LANES]) {
  for (int s = LANES / 2; s >= 1; s >>= 1)
    for (int j = 0; j < s; j++)
      acc[j] += acc[j + s];
  return acc[0];
}

/* Sum of x (n); lane j takes i == j mod 16 in increasing i. */
static inline float sum16(const float *x, int n) {
  float acc[LANES] = {0};
  int i = 0;
  for (; i + LANES <= n; i += LANES)
    for (int j = 0; j < LANES; j++)
      acc[j] += x[i + j];
  for (int j = 0; i + j < n; j++)
    acc[j] += x[i + j];
  return fold16(acc);
}

/* Max of x (n >= 1). Max is exact, so the order only matters for NaN and the
 * sign of zero; it is fixed all the same. */
static inline float max16(const float *x, int n) {
  float acc[LANES];
  for (int j = 0; j < LANES; j++)
    acc[j] = x[0];
  int i = 0;
  for (; i + LANES <= n; i += LANES)
    for (int j = 0; j < LANES; j++)
      acc[j] = x[i + j] > acc[j] ? x[i + j] : acc[j];
  for (int j = 0; i + j < n; j++)
    acc[j] = x[i + j] > acc[j] ? x[i + j] : acc[j];
  for (int s = LANES / 2; s >= 1; s >>= 1)
    for (int j = 0; j < s; j++)
      acc[j] = acc[j + s] > acc[j] ? acc[j + s] : acc[j];
  return acc[0];
}

/* Sum of exp(x[i] - mx) over n, same lane order as sum16. */
static inline float sumexp16(const float *x, int n, float mx) {
  float acc[LANES] = {0};
  int i = 0;
  for (; i + LANES <= n; i += LANES)
    for (int j = 0; j < LANES; j++)
      acc[j] += bt_expf_inline(x[i + j] - mx);
  for (int j = 0; i + j < n; j++)
    acc[j] += bt_expf_inline(x[i + j] - mx);
  return fold16(acc);
}

/* ==================================================================== */
/* Embedding                                                             */
/* ==================================================================== */

static inline void embedding_row(float *dst, const float *src, int C, float scale) {
#pragma omp simd
  for (int c = 0; c < C; c++)
    dst[c] = src[c] * scale;
}

void BT_ISA_FN(bt_embedding_forward)(float *out, const uint16_t *tok, const float *wte,
                                     int N, int C, float scale) {
  if (N >= PAR_MIN_ROWS) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
      embedding_row(out + (size_t)n * C, wte + (size_t)tok[n] * C, C, scale);
  } else {
    for (int n = 0; n < N; n++)
      embedding_row(out + (size_t)n * C, wte + (size_t)tok[n] * C, C, scale);
  }
}

/* Threads split the columns into 32-wide strips; within a strip the rows are
 * added in increasing n, exactly as the naive loop does. */
#define EMB_STRIP 32
void BT_ISA_FN(bt_embedding_backward)(float *dwte, const float *dout, const uint16_t *tok,
                                      int N, int C, float scale) {
  int nstrip = (C + EMB_STRIP - 1) / EMB_STRIP;
#pragma omp parallel for schedule(static) if (N >= PAR_MIN_ROWS)
  for (int s = 0; s < nstrip; s++) {
    int c0 = s * EMB_STRIP, w = C - c0 < EMB_STRIP ? C - c0 : EMB_STRIP;
    if (w == EMB_STRIP) { /* a constant width: one or two vectors a row */
      for (int n = 0; n < N; n++) {
        float *d = dwte + (size_t)tok[n] * C + c0;
        const float *g = dout + (size_t)n * C + c0;
#pragma omp simd
        for (int c = 0; c < EMB_STRIP; c++)
          d[c] += g[c] * scale;
      }
    } else {
      for (int n = 0; n < N; n++) {
        float *d = dwte + (size_t)tok[n] * C + c0;
        const float *g = dout + (size_t)n * C + c0;
#pragma omp simd
        for (int c = 0; c < w; c++)
          d[c] += g[c] * scale;
      }
    }
  }
}

/* ==================================================================== */
/* LayerNorm                                                             */
/* ==================================================================== */

static inline void layernorm_row(float *out, float *mean, float *rstd, const float *inp,
                                 const float *w, const float *b, int n, int C) {
  const float *x = inp + (size_t)n * C;
  float *y = out + (size_t)n * C;
  float m = sum16(x, C) / (float)C;
  /* two-pass variance: centred squares, same lane order */
  float acc[LANES] = {0};
  int i = 0;
  for (; i + LANES <= C; i += LANES)
    for (int j = 0; j < LANES; j++) {
      float d = x[i + j] - m;
      acc[j] += d * d;
    }
  for (int j = 0; i + j < C; j++) {
    float d = x[i + j] - m;
    acc[j] += d * d;
  }
  float var = fold16(acc) / (float)C;
  float rs = 1.0f / sqrtf(var + 1e-5f);
#pragma omp simd
  for (int c = 0; c < C; c++)
    y[c] = (x[c] - m) * rs * w[c] + b[c];
  mean[n] = m;
  rstd[n] = rs;
}

void BT_ISA_FN(bt_layernorm_forward)(float *out, float *mean, float *rstd, const float *inp,
                                     const float *w, const float *b, int N, int C) {
  if (N >= PAR_MIN_ROWS) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
      layernorm_row(out, mean, rstd, inp, w, b, n, C);
  } else {
    for (int n = 0; n < N; n++)
      layernorm_row(out, mean, rstd, inp, w, b, n, C);
  }
}

/* dw and db sum over rows: each column strip sums its rows in blocks of
 * LN_ROWBLK (block partials from 0, blocks added in order), which is both
 * thread-count independent and more accurate than one long float chain. */
#define LN_STRIP 32
#define LN_ROWBLK 64
/* dw (wd) +=, db (wd) += over all N rows of one column strip (row stride C):
 * rows in blocks of LN_ROWBLK, each block summed from 0, blocks added in order. */
static inline void ln_dwdb_strip(float *dw, float *db, const float *dout, const float *inp,
                                 const float *mean, const float *rstd, int N, int C, int wd) {
  float tw[LN_STRIP] = {0}, tb[LN_STRIP] = {0};
  for (int n0 = 0; n0 < N; n0 += LN_ROWBLK) {
    int n1 = N - n0 < LN_ROWBLK ? N : n0 + LN_ROWBLK;
    float pw[LN_STRIP] = {0}, pb[LN_STRIP] = {0};
    for (int n = n0; n < n1; n++) {
      const float *x = inp + (size_t)n * C, *g = dout + (size_t)n * C;
      float m = mean[n], rs = rstd[n];
#pragma omp simd
      for (int c = 0; c < wd; c++) {
        float xh = (x[c] - m) * rs;
        pw[c] += g[c] * xh;
        pb[c] += g[c];
      }
    }
#pragma omp simd
    for (int c = 0; c < wd; c++) {
      tw[c] += pw[c];
      tb[c] += pb[c];
    }
  }
#pragma omp simd
  for (int c = 0; c < wd; c++) {
    dw[c] += tw[c];
    db[c] += tb[c];
  }
}

/* set: dinp = 0 + ..., the bits of += onto zeros without clearing dinp first. */
static inline __attribute__((always_inline)) void ln_backward(float *dinp, float *dw, float *db, const float *dout,
                                                              const float *inp, const float *w, const float *mean,
                                                              const float *rstd, int N, int C, const int set) {
  /* dinp: independent rows */
#pragma omp parallel for schedule(static) if (N >= PAR_MIN_ROWS)
  for (int n = 0; n < N; n++) {
    const float *x = inp + (size_t)n * C, *g = dout + (size_t)n * C;
    float *dx = dinp + (size_t)n * C;
    float m = mean[n], rs = rstd[n];
    float a1[LANES] = {0}, a2[LANES] = {0};
    int i = 0;
    for (; i + LANES <= C; i += LANES)
      for (int j = 0; j < LANES; j++) {
        float wg = w[i + j] * g[i + j];
        float xh = (x[i + j] - m) * rs;
        a1[j] += wg;
        a2[j] += wg * xh;
      }
    for (int j = 0; i + j < C; j++) {
      float wg = w[i + j] * g[i + j];
      float xh = (x[i + j] - m) * rs;
      a1[j] += wg;
      a2[j] += wg * xh;
    }
    float m1 = fold16(a1) / (float)C; /* mean(w dout) */
    float m2 = fold16(a2) / (float)C; /* mean(w dout xhat) */
#pragma omp simd
    for (int c = 0; c < C; c++) {
      float wg = w[c] * g[c];
      float xh = (x[c] - m) * rs;
      dx[c] = (set ? 0.0f : dx[c]) + rs * (wg - m1 - xh * m2);
    }
  }

  /* dw, db: independent column strips */
  int nstrip = (C + LN_STRIP - 1) / LN_STRIP;
#pragma omp parallel for schedule(static) if (N >= PAR_MIN_ROWS)
  for (int s = 0; s < nstrip; s++) {
    int c0 = s * LN_STRIP, wd = C - c0 < LN_STRIP ? C - c0 : LN_STRIP;
    if (wd == LN_STRIP) /* a constant width vectorises without a tail */
      ln_dwdb_strip(dw + c0, db + c0, dout + c0, inp + c0, mean, rstd, N, C, LN_STRIP);
    else
      ln_dwdb_strip(dw + c0, db + c0, dout + c0, inp + c0, mean, rstd, N, C, wd);
  }
}

void BT_ISA_FN(bt_layernorm_backward)(float *dinp, float *dw, float *db, const float *dout,
                                      const float *inp, const float *w, const float *mean,
                                      const float *rstd, int N, int C) {
  ln_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, C, 0);
}

void BT_ISA_FN(bt_layernorm_backward_set)(float *dinp, float *dw, float *db, const float *dout,
                                          const float *inp, const float *w, const float *mean,
                                          const float *rstd, int N, int C) {
  ln_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, C, 1);
}

/* ==================================================================== */
/* GELU (tanh approximation)                                             */
/* ==================================================================== */

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_A 0.044715f

/* 0.5 x (1 + tanh(u)) is computed as x sigmoid(2u) = x / (1 + exp(-2u)): the
 * same function, without the cancellation of 1 + tanh(u) for x < 0, so every
 * output has a small relative error (the tanh form loses all digits there). */
static inline __attribute__((always_inline)) float gelu1(float x) {
  float u = GELU_K * (x + GELU_A * x * x * x);
  return x / (1.0f + bt_expf_inline(-2.0f * u)); /* exp -> inf gives -0 */
}

void BT_ISA_FN(bt_gelu_forward)(float *out, const float *inp, size_t n) {
  ptrdiff_t nn = (ptrdiff_t)n;
  if (n >= PAR_MIN_ELEMS) {
#pragma omp parallel for simd schedule(simd : static)
    for (ptrdiff_t i = 0; i < nn; i++)
      out[i] = gelu1(inp[i]);
  } else {
#pragma omp simd
    for (ptrdiff_t i = 0; i < nn; i++)
      out[i] = gelu1(inp[i]);
  }
}

/* With s = sigmoid(2u) and e = exp(-2u), 1 - s = e s, so
 * gelu'(x) = s + x s (1 - s) 2u' = s + 2 x u' e s^2,  u' = k (1 + 3 a x^2).
 * -2u is capped at 87 so that e stays finite (s is then ~1e-38 anyway). */
static inline __attribute__((always_inline)) void gelu_backward(float *dinp, const float *inp, const float *dout,
                                                                size_t n, const int set) {
  ptrdiff_t nn = (ptrdiff_t)n;
#pragma omp parallel for simd schedule(simd : static) if (n >= PAR_MIN_ELEMS)
  for (ptrdiff_t i = 0; i < nn; i++) {
    float x = inp[i];
    float x2 = x * x;
    float m2u = -2.0f * (GELU_K * (x + GELU_A * x2 * x));
    m2u = m2u < 87.0f ? m2u : 87.0f;
    float e = bt_expf_inline(m2u);
    float s = 1.0f / (1.0f + e);
    float du = GELU_K * (1.0f + 3.0f * GELU_A * x2);
    float d = s + 2.0f * x * du * (e * s) * s;
    dinp[i] = (set ? 0.0f : dinp[i]) + dout[i] * d;
  }
}

void BT_ISA_FN(bt_gelu_backward)(float *dinp, const float *inp, const float *dout, size_t n) {
  gelu_backward(dinp, inp, dout, n, 0);
}

void BT_ISA_FN(bt_gelu_backward_set)(float *dinp, const float *inp, const float *dout, size_t n) {
  gelu_backward(dinp, inp, dout, n, 1);
}

/* The bfloat16 path's GELU (`--precision bf16`; ops.c picks it when the
 * GEMM backend is bf16): its output and its gradient are rounded to bfloat16
 * before their products, so it takes bt_expb_inline (kernels/bf16.h, relative
 * error < 6e-5) and fused steps; float32 GELU's exp has 26 operations and
 * keeps every multiply and add apart. With m = -2u = x (c1 + c3 x^2):
 *   gelu(x)  = x / (1 + e),  e = exp(m)
 *   gelu'(x) = s + (x 2u') (e s) s,  s = 1 / (1 + e),  2u' = c2 + c6 x^2.
 * The scalar and avx2 copies are plain C with fmaf, the avx512 one the same
 * operations in intrinsics: identical bits (test_ops). e <= e^88 stays
 * finite, so large |x| needs no cap. */
#define GELUB_C1 -1.59576917f   /* -2k */
#define GELUB_C3 -0.0713548139f /* -2ka */
#define GELUB_C2 1.59576917f    /* 2k */
#define GELUB_C6 0.214064449f   /* 6ka */

static inline __attribute__((always_inline)) float gelub1(float x) {
  const float m = x * fmaf(GELUB_C3, x * x, GELUB_C1);
  return x / (1.0f + bt_expb_inline(m));
}

static inline __attribute__((always_inline)) float gelub_grad1(float x) {
  const float x2 = x * x;
  const float e = bt_expb_inline(x * fmaf(GELUB_C3, x2, GELUB_C1));
  const float s = 1.0f / (1.0f + e);
  return fmaf((x * fmaf(GELUB_C6, x2, GELUB_C2)) * (e * s), s, s);
}

#if defined(__AVX512F__)
static inline __attribute__((always_inline)) __m512 gelub16(__m512 x) {
  const __m512 m = _mm512_mul_ps(x, _mm512_fmadd_ps(_mm512_set1_ps(GELUB_C3), _mm512_mul_ps(x, x),
                                                    _mm512_set1_ps(GELUB_C1)));
  return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), bt_expb512(m)));
}

static inline __attribute__((always_inline)) __m512 gelub_grad16(__m512 x) {
  const __m512 x2 = _mm512_mul_ps(x, x);
  const __m512 e = bt_expb512(
      _mm512_mul_ps(x, _mm512_fmadd_ps(_mm512_set1_ps(GELUB_C3), x2, _mm512_set1_ps(GELUB_C1))));
  const __m512 s = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
  const __m512 g = _mm512_fmadd_ps(_mm512_set1_ps(GELUB_C6), x2, _mm512_set1_ps(GELUB_C2));
  return _mm512_fmadd_ps(_mm512_mul_ps(_mm512_mul_ps(x, g), _mm512_mul_ps(e, s)), s, s);
}
#endif

/* Splits [0, n) into the calling thread's share of 16-float blocks. */
#define GELUB_LOOP(body16, body1)                                                       \
  do {                                                                                  \
    const ptrdiff_t nn = (ptrdiff_t)n, nv = nn / 16;                                    \
    _Pragma("omp parallel for schedule(static) if (n >= PAR_MIN_ELEMS)")                \
    for (ptrdiff_t v = 0; v < nv; v++) {                                                \
      const ptrdiff_t i = 16 * v;                                                       \
      body16;                                                                           \
    }                                                                                   \
    for (ptrdiff_t i = 16 * nv; i < nn; i++) {                                          \
      body1;                                                                            \
    }                                                                                   \
  } while (0)

#if defined(__AVX512F__)
#define GELUB_FWD16 _mm512_storeu_ps(out + i, gelub16(_mm512_loadu_ps(inp + i)))
#define GELUB_BWD16(set)                                                                   \
  {                                                                                        \
    const __m512 d = gelub_grad16(_mm512_loadu_ps(inp + i)), g = _mm512_loadu_ps(dout + i); \
    _mm512_storeu_ps(dinp + i, _mm512_fmadd_ps(g, d, (set) ? _mm512_setzero_ps()           \
                                                           : _mm512_loadu_ps(dinp + i)));  \
  }
#else
#define GELUB_FWD16                                                                        \
  _Pragma("omp simd") for (ptrdiff_t j = i; j < i + 16; j++) out[j] = gelub1(inp[j])
#define GELUB_BWD16(set)                                                                   \
  _Pragma("omp simd") for (ptrdiff_t j = i; j < i + 16; j++) dinp[j] =                     \
      fmaf(dout[j], gelub_grad1(inp[j]), (set) ? 0.0f : dinp[j])
#endif

void BT_ISA_FN(bt_gelu_forward_bf16)(float *out, const float *inp, size_t n) {
  GELUB_LOOP(GELUB_FWD16, out[i] = gelub1(inp[i]));
}

void BT_ISA_FN(bt_gelu_backward_bf16)(float *dinp, const float *inp, const float *dout, size_t n) {
  GELUB_LOOP(GELUB_BWD16(0), dinp[i] = fmaf(dout[i], gelub_grad1(inp[i]), dinp[i]));
}

void BT_ISA_FN(bt_gelu_backward_set_bf16)(float *dinp, const float *inp, const float *dout, size_t n) {
  GELUB_LOOP(GELUB_BWD16(1), dinp[i] = fmaf(dout[i], gelub_grad1(inp[i]), 0.0f));
}

/* ==================================================================== */
/* Rotary position embedding                                             */
/* ==================================================================== */

/* q and k of one row (3C) at the angles of cs, sn (hs/2). */
static inline void rope_row(float *row, const float *cs, const float *sn, int C, int H,
                            float sign) {
  const int hs = C / H, half = hs / 2;
  for (int part = 0; part < 2; part++) /* q, then k */
    for (int h = 0; h < H; h++) {
      float *x = row + (size_t)part * C + (size_t)h * hs;
#pragma omp simd
      for (int i = 0; i < half; i++) {
        float x0 = x[i], x1 = x[i + half], c = cs[i], s = sign * sn[i];
        x[i] = x0 * c - x1 * s;
        x[i + half] = x1 * c + x0 * s;
      }
    }
}

/* sign = +1: forward rotation by the angle; -1: the inverse (transpose). */
static inline void rope_rows(float *qkv, const float *cos_t, const float *sin_t, int B, int T,
                             int C, int H, float sign) {
  int hs = C / H, half = hs / 2, rows = B * T;
  assert(hs * H == C && half * 2 == hs);
  if (rows >= PAR_MIN_ROWS) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++)
      rope_row(qkv + (size_t)r * 3 * C, cos_t + (size_t)(r % T) * half,
               sin_t + (size_t)(r % T) * half, C, H, sign);
  } else {
    for (int r = 0; r < rows; r++)
      rope_row(qkv + (size_t)r * 3 * C, cos_t + (size_t)(r % T) * half,
               sin_t + (size_t)(r % T) * half, C, H, sign);
  }
}

void BT_ISA_FN(bt_rope_forward)(float *qkv, const float *cos_t, const float *sin_t, int B,
                                int T, int C, int H) {
  rope_rows(qkv, cos_t, sin_t, B, T, C, H, 1.0f);
}

void BT_ISA_FN(bt_rope_backward)(float *dqkv, const float *cos_t, const float *sin_t, int B,
                                 int T, int C, int H) {
  rope_rows(dqkv, cos_t, sin_t, B, T, C, H, -1.0f);
}

/* ==================================================================== */
/* Softmax cross-entropy                                                 */
/* ==================================================================== */

void BT_ISA_FN(bt_crossentropy_forward)(float *losses, const float *logits,
                                        const uint16_t *targets, int N, int V) {
#pragma omp parallel for schedule(static) if (N >= PAR_MIN_ROWS)
  for (int n = 0; n < N; n++) {
    const float *z = logits + (size_t)n * V;
    int y = targets[n];
    assert(y < V);
    float mx = max16(z, V);
    float se = sumexp16(z, V, mx); /* >= 1: the max term is exp(0) */
    /* -ln p[y] = ln(sum) - (z[y] - max) */
    losses[n] = (float)(bt_ln_pos_d((double)se) - (double)(z[y] - mx));
  }
}

void BT_ISA_FN(bt_crossentropy_backward)(float *dlogits, const float *logits,
                                         const uint16_t *targets, int N, int V, float dloss) {
#pragma omp parallel for schedule(static) if (N >= PAR_MIN_ROWS)
  for (int n = 0; n < N; n++) {
    const float *z = logits + (size_t)n * V;
    float *dz = dlogits + (size_t)n * V;
    int y = targets[n];
    assert(y < V);
    float mx = max16(z, V);
    float se = sumexp16(z, V, mx);
#pragma omp simd
    for (int i = 0; i < V; i++) {
      float p = bt_expf_inline(z[i] - mx) / se;
      float oh = i == y ? 1.0f : 0.0f;
      dz[i] += (p - oh) * dloss;
    }
  }
}

/* ==================================================================== */
/* AdamW                                                                 */
/* ==================================================================== */

/* x^t by squaring, in double: the same bits everywhere. */
static double powi_d(double x, int t) {
  double r = 1.0;
  while (t > 0) {
    if (t & 1)
      r *= x;
    x *= x;
    t >>= 1;
  }
  return r;
}

void BT_ISA_FN(bt_adamw_update)(float *params, const float *grads, float *m, float *v,
                                size_t n, float lr, float beta1, float beta2, float eps,
                                float weight_decay, int t) {
  assert(t >= 1);
  float bc1 = (float)(1.0 - powi_d((double)beta1, t));
  float bc2 = (float)(1.0 - powi_d((double)beta2, t));
  float omb1 = 1.0f - beta1, omb2 = 1.0f - beta2;
  ptrdiff_t nn = (ptrdiff_t)n;
#pragma omp parallel for simd schedule(simd : static) if (n >= PAR_MIN_ELEMS)
  for (ptrdiff_t i = 0; i < nn; i++) {
    float g = grads[i], p = params[i];
    float mi = beta1 * m[i] + omb1 * g;
    float vi = beta2 * v[i] + omb2 * (g * g);
    float mhat = mi / bc1, vhat = vi / bc2;
    m[i] = mi;
    v[i] = vi;
    params[i] = p - lr * (mhat / (sqrtf(vhat) + eps) + weight_decay * p);
  }
}

/* ==================================================================== */
/* Vector helpers                                                        */
/* ==================================================================== */

/* Blocks of SUMSQ_BLK elements, each summed in 16 double lanes and folded in
 * a fixed tree; block sums are added in block order. Threads compute block
 * sums of one round of SUMSQ_ROUND blocks at a time (a stack array), so the
 * result does not depend on the thread count and nothing is allocated. */
#define SUMSQ_BLK 4096
#define SUMSQ_ROUND 256
double BT_ISA_FN(bt_sumsq)(const float *g, size_t n) {
  size_t nblk = (n + SUMSQ_BLK - 1) / SUMSQ_BLK;
  double total = 0.0;
  for (size_t r0 = 0; r0 < nblk; r0 += SUMSQ_ROUND) {
    int nb = nblk - r0 < SUMSQ_ROUND ? (int)(nblk - r0) : SUMSQ_ROUND;
    double part[SUMSQ_ROUND];
#pragma omp parallel for schedule(static) if (nb > 1 && n >= PAR_MIN_ELEMS)
    for (int b = 0; b < nb; b++) {
      size_t i0 = (r0 + (size_t)b) * SUMSQ_BLK;
      size_t len = n - i0 < SUMSQ_BLK ? n - i0 : SUMSQ_BLK;
      const float *x = g + i0;
      double acc[LANES] = {0};
      size_t i = 0;
      for (; i + LANES <= len; i += LANES)
        for (int j = 0; j < LANES; j++) {
          double d = (double)x[i + j];
          acc[j] += d * d; /* the square of a float is exact in double */
        }
      for (int j = 0; i + (size_t)j < len; j++) {
        double d = (double)x[i + j];
        acc[j] += d * d;
      }
      for (int s = LANES / 2; s >= 1; s >>= 1)
        for (int j = 0; j < s; j++)
          acc[j] += acc[j + s];
      part[b] = acc[0];
    }
    for (int b = 0; b < nb; b++)
      total += part[b];
  }
  return total;
}

/* sum (C) += the column sums of x (N, C): column j's sum is double, over
 * n = 0..N-1 in order, rounded to float once and added. Threads take blocks
 * of columns, a vector of doubles at a time (lanes are columns, so no sum
 * changes order): the bias gradients of the linear layers, scalar code when
 * they were written in kernels/gemm.c, which is built for the baseline ISA. */
#define COLSUM_CB 64
void BT_ISA_FN(bt_colsum_add)(float *sum, const float *x, int N, int C) {
  const int nblk = (C + COLSUM_CB - 1) / COLSUM_CB;
#pragma omp parallel for schedule(static) \
    if (nblk > 1 && !omp_in_parallel() && (size_t)N * (size_t)C >= PAR_MIN_ELEMS)
  for (int b = 0; b < nblk; b++) {
    const int j0 = b * COLSUM_CB, w = C - j0 < COLSUM_CB ? C - j0 : COLSUM_CB;
    double s[COLSUM_CB] = {0};
    for (int n = 0; n < N; n++) {
      const float *r = x + (ptrdiff_t)n * C + j0;
#pragma omp simd
      for (int j = 0; j < w; j++)
        s[j] += (double)r[j];
    }
    for (int j = 0; j < w; j++)
      sum[j0 + j] += (float)s[j];
  }
}

void BT_ISA_FN(bt_scale)(float *x, size_t n, float s) {
  ptrdiff_t nn = (ptrdiff_t)n;
#pragma omp parallel for simd schedule(simd : static) if (n >= PAR_MIN_ELEMS)
  for (ptrdiff_t i = 0; i < nn; i++)
    x[i] *= s;
}

void BT_ISA_FN(bt_add)(float *out, const float *a, const float *b, size_t n) {
  ptrdiff_t nn = (ptrdiff_t)n;
  /* out may alias a or b: element i reads only a[i], b[i] before writing out[i] */
  if (n >= PAR_MIN_ELEMS) {
#pragma omp parallel for simd schedule(simd : static)
    for (ptrdiff_t i = 0; i < nn; i++)
      out[i] = a[i] + b[i];
  } else {
#pragma omp simd
    for (ptrdiff_t i = 0; i < nn; i++)
      out[i] = a[i] + b[i];
  }
}

void BT_ISA_FN(bt_axpby)(float *out, float a, const float *x, float b, const float *y, size_t n) {
  ptrdiff_t nn = (ptrdiff_t)n;
  /* out may alias x or y, as in bt_add */
#pragma omp parallel for simd schedule(simd : static) if (n >= PAR_MIN_ELEMS)
  for (ptrdiff_t i = 0; i < nn; i++)
    out[i] = a * x[i] + b * y[i];
}

void BT_ISA_FN(bt_exp_vec)(float *out, const float *in, size_t n) {
  ptrdiff_t nn = (ptrdiff_t)n;
#pragma omp parallel for simd schedule(simd : static) if (n >= PAR_MIN_ELEMS)
  for (ptrdiff_t i = 0; i < nn; i++)
    out[i] = bt_expf_inline(in[i]);
}
