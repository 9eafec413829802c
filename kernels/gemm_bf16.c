/*
 * gemm_bf16.c - the training GEMM with bfloat16 inputs and float32
 * accumulation, on AVX512_BF16 (vdpbf16ps), for `bt-train --precision bf16`.
 * Compiled with -mavx512bf16 and called only where the CPU has it
 * (bt_bf16_available). The contract is kernels.h's bt_gemm_bf16: op(A) and
 * op(B) are rounded to bfloat16 (nearest, ties to even: bt_f32_to_bf16), k is
 * taken in pairs (2p, 2p+1), and each pair does, as the instruction does,
 *   acc = ftz(fma(a[2p+1], b[2p+1], daz(acc)));  acc = ftz(fma(a[2p], b[2p], acc))
 * with subnormal inputs read as zero; bt_gemm_bf16_ref is that in scalar C.
 * The bits do not depend on the thread count (threads split M and N).
 *
 * Layout: op(A) is packed in tiles of 12 rows, one uint32 per (row, k pair),
 * which the kernel broadcasts; op(B) as panels of 32 columns, each k pair 32
 * interleaved pairs (two vectors). A 12 x 32 tile of C stays in 24 registers for all K.
 */
#include "kernels/kernels.h"

#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/bf16.h"

#define MR 12
#define NR 32

static inline float opA(int ta, const float *A, int lda, int m, int k) {
  return ta ? A[(long)k * lda + m] : A[(long)m * lda + k];
}
static inline float opB(int tb, const float *B, int ldb, int k, int n) {
  return tb ? B[(long)n * ldb + k] : B[(long)k * ldb + n];
}

/* 16 floats to bfloat16, nearest-even, NaN to 0x7fc0: bt_f32_to_bf16's
 * arithmetic in vector form. */
static inline __m256i to_bf16x16(__m512 x) {
  const __m512i u = _mm512_castps_si512(x);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb), 16);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                                 _mm512_set1_epi32(0x7f800000));
  r = _mm512_mask_mov_epi32(r, nan, _mm512_set1_epi32(0x7fc0));
  return _mm512_cvtepi32_epi16(r);
}

/* 16 pairs from two rows of 16 floats: lo | hi << 16. */
static inline __m512i pairs16(const float *lo, const float *hi) {
  const __m512i l = _mm512_cvtepu16_epi32(to_bf16x16(_mm512_loadu_ps(lo)));
  const __m512i h = hi ? _mm512_cvtepu16_epi32(to_bf16x16(_mm512_loadu_ps(hi))) : _mm512_setzero_si512();
  return _mm512_or_si512(l, _mm512_slli_epi32(h, 16));
}

static inline uint32_t pair1(float lo, float hi, int has_hi) {
  return (uint32_t)bt_f32_to_bf16(lo) | (has_hi ? (uint32_t)bt_f32_to_bf16(hi) << 16 : 0u);
}

/* op(A) in tiles of MR rows: Ap[(tile * Kp + p) * MR + i] = bf16(opA(m, 2p))
 * | bf16(opA(m, 2p + 1)) << 16 for m = tile * MR + i; rows past M are 0. */
static void pack_a(int ta, int M, int K, const float *A, int lda, uint32_t *Ap, int Kp, int MT) {
#pragma omp parallel for schedule(static)
  for (int t = 0; t < MT * Kp; t++) {
    const int mt = t / Kp, p = t % Kp, m0 = mt * MR, k = 2 * p, has_hi = k + 1 < K;
    uint32_t *dst = Ap + ((size_t)mt * Kp + p) * MR;
    int i = 0;
    if (ta && m0 + 16 <= M && MR <= 16) { /* two rows of A^T give 16 m's pairs; keep MR */
      uint32_t tmp[16];
      _mm512_storeu_si512(tmp, pairs16(A + (long)k * lda + m0, has_hi ? A + (long)(k + 1) * lda + m0 : NULL));
      memcpy(dst, tmp, MR * sizeof(uint32_t));
      continue;
    }
    for (; i < MR && m0 + i < M; i++)
      dst[i] = pair1(opA(ta, A, lda, m0 + i, k), has_hi ? opA(ta, A, lda, m0 + i, k + 1) : 0, has_hi);
    for (; i < MR; i++)
      dst[i] = 0;
  }
}

/* Bp[panel][p][c] (uint32 pairs, c < 32): columns past N are zero. */
static void pack_b(int tb, int N, int K, const float *B, int ldb, uint32_t *Bp, int Kp, int NP) {
#pragma omp parallel for schedule(static)
  for (int t = 0; t < NP * Kp; t++) {
    const int panel = t / Kp, p = t % Kp, k = 2 * p, has_hi = k + 1 < K, n0 = panel * NR;
    uint32_t *dst = Bp + ((size_t)panel * Kp + p) * NR;
    if (!tb && n0 + NR <= N) { /* rows k, k+1 of B hold the panel's columns */
      const float *r0 = B + (long)k * ldb + n0, *r1 = has_hi ? B + (long)(k + 1) * ldb + n0 : NULL;
      _mm512_storeu_si512(dst, pairs16(r0, r1));
      _mm512_storeu_si512(dst + 16, pairs16(r0 + 16, r1 ? r1 + 16 : NULL));
      continue;
    }
    for (int c = 0; c < NR; c++) {
      const int n = n0 + c;
      dst[c] = n < N ? pair1(opB(tb, B, ldb, k, n), has_hi ? opB(tb, B, ldb, k + 1, n) : 0, has_hi) : 0;
    }
  }
}

/* C[mr x nc] (+)= Ap rows . Bp panel, mr <= MR, nc <= NR. */
static inline __attribute__((always_inline)) void tile(int mr, const uint32_t *Ap, int Kp, const uint32_t *Bp,
                                                       float *C, int ldc, int nc, int accumulate) {
  __m512 acc[MR][2];
#pragma GCC unroll 12
  for (int i = 0; i < MR; i++)
    acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  if (accumulate) {
    const __mmask16 m0 = nc >= 16 ? 0xffff : (__mmask16)((1u << nc) - 1);
    const __mmask16 m1 = nc <= 16 ? 0 : nc >= 32 ? 0xffff : (__mmask16)((1u << (nc - 16)) - 1);
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++)
      if (i < mr) {
        acc[i][0] = _mm512_maskz_loadu_ps(m0, C + (long)i * ldc);
        acc[i][1] = _mm512_maskz_loadu_ps(m1, C + (long)i * ldc + 16);
      }
  }
  for (int p = 0; p < Kp; p++) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(Bp + (size_t)p * NR);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(Bp + (size_t)p * NR + 16);
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++)
      if (i < mr) {
        const __m512bh a = (__m512bh)_mm512_set1_epi32((int)Ap[(size_t)p * MR + i]);
        acc[i][0] = _mm512_dpbf16_ps(acc[i][0], a, b0);
        acc[i][1] = _mm512_dpbf16_ps(acc[i][1], a, b1);
      }
  }
  const __mmask16 m0 = nc >= 16 ? 0xffff : (__mmask16)((1u << nc) - 1);
  const __mmask16 m1 = nc <= 16 ? 0 : nc >= 32 ? 0xffff : (__mmask16)((1u << (nc - 16)) - 1);
#pragma GCC unroll 12
  for (int i = 0; i < MR; i++)
    if (i < mr) {
      _mm512_mask_storeu_ps(C + (long)i * ldc, m0, acc[i][0]);
      _mm512_mask_storeu_ps(C + (long)i * ldc + 16, m1, acc[i][1]);
    }
}

static void tile_full(const uint32_t *Ap, int Kp, const uint32_t *Bp, float *C, int ldc, int nc, int acc) {
  tile(MR, Ap, Kp, Bp, C, ldc, nc, acc);
}
static void tile_part(int mr, const uint32_t *Ap, int Kp, const uint32_t *Bp, float *C, int ldc, int nc,
                      int acc) {
  switch (mr) {
#define T(r) case r: tile(r, Ap, Kp, Bp, C, ldc, nc, acc); break;
    T(1) T(2) T(3) T(4) T(5) T(6) T(7) T(8) T(9) T(10) T(11)
#undef T
  default: break;
  }
}

void bt_gemm_bf16_avx512(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                         float *C, int ldc, int accumulate) {
  if (M <= 0 || N <= 0)
    return;
  const int Kp = (K + 1) / 2, NP = (N + NR - 1) / NR, MT = (M + MR - 1) / MR;
  uint32_t *Ap = bt_scratch(2, (size_t)MT * MR * (Kp ? Kp : 1) * sizeof(uint32_t));
  uint32_t *Bp = bt_scratch(3, (size_t)NP * (Kp ? Kp : 1) * NR * sizeof(uint32_t));
  if (!Ap || !Bp) { /* out of memory: the same bits, slowly */
    bt_gemm_bf16_ref(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
    return;
  }
  pack_a(ta, M, K, A, lda, Ap, Kp, MT);
  pack_b(tb, N, K, B, ldb, Bp, Kp, NP);
  /* tiles in panel-major order, so a thread's run of tiles shares a B panel */
#pragma omp parallel for schedule(static)
  for (long t = 0; t < (long)MT * NP; t++) {
    const int panel = (int)(t / MT), mt = (int)(t % MT);
    const int m0 = mt * MR, mr = M - m0 < MR ? M - m0 : MR, n0 = panel * NR, nc = N - n0 < NR ? N - n0 : NR;
    const uint32_t *ap = Ap + (size_t)mt * Kp * MR, *bp = Bp + (size_t)panel * Kp * NR;
    float *c = C + (long)m0 * ldc + n0;
    if (mr == MR)
      tile_full(ap, Kp, bp, c, ldc, nc, accumulate);
    else
      tile_part(mr, ap, Kp, bp, c, ldc, nc, accumulate);
  }
}

/* The vdpbf16ps peak loop: bt_peak_loop's shape (12 independent chains on
 * registers only) with one vdpbf16ps a chain a step, 64 FLOPs each (16 lanes,
 * a pair of multiply-adds per lane). Returns a value that depends on every
 * chain, so the loop stays. */
float bt_peak_loop_bf16(long iters) {
  volatile int vb = 0x3f803f7f, vi = 0x3a833a83; /* pairs of bf16 ~1 and ~0.001 */
  const __m512bh b = (__m512bh)_mm512_set1_epi32(vb), a = (__m512bh)_mm512_set1_epi32(vi);
  __m512 x[12];
  for (int i = 0; i < 12; i++)
    x[i] = _mm512_set1_ps(1.0f + 0.001f * (float)i);
  for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; i++)
      x[i] = _mm512_dpbf16_ps(x[i], i & 1 ? a : b, i & 1 ? b : a);
  }
  __m512 s = x[0];
  for (int i = 1; i < 12; i++)
    s = _mm512_add_ps(s, x[i]);
  return _mm512_reduce_add_ps(s);
}
