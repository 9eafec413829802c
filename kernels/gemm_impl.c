/*
 * gemm_impl.c - the packed GEMM and the FMA peak loop, compiled once per ISA
 * (-DBT_ISA_SUFFIX=_scalar/_avx2/_avx512 with the matching -m flags);
 * kernels/gemm.c picks a copy by bt_isa_get().
 *
 * The contract (kernels.h): every C element is ONE fused-multiply-add chain over
 * k = 0..K-1 in increasing order, from +0.0f or from C's old value. The classic
 * packed GEMM (Goto / BLIS) keeps it: the microkernel holds an (MR, NR) tile of
 * C in registers, broadcasts one element of op(A) per row and k, and FMAs it
 * with NR consecutive elements of a packed B row. Each accumulator lane is one
 * output, visited once per k in increasing k. K blocks (kc) continue from the
 * partial sums stored in C, so the chain is unbroken; threads split M and N.
 * The scalar path runs the same loops on floats with fmaf, so every path gives
 * the bits of bt_gemm_naive.
 *
 * Blocking:
 *  - B is packed into column panels of NR floats (zero-padded past N), one
 *    row of NR per k: the microkernel reads it contiguously. A chunk of K rows
 *    of all panels is packed at once, cooperatively by all threads.
 *  - op(A) is read in place, never packed: with ta == 0 a row of the tile is a
 *    contiguous stream over k, with ta == 1 one k gives MR consecutive floats.
 *  - Work items are (block of <= MC rows) x (range of panels); for each, the
 *    K chunk is walked in kc steps, panels outer, MR row tiles inner, so one
 *    B micro-panel (kc, NR) stays in L1 while the A block streams from L2.
 *  - Small M with tb == 0: B is read in place too (no packing), except the
 *    last partial panel. With tb == 1 packing is a transpose (TB x TB blocks
 *    in registers); for small M it costs about as much as the product.
 * The AVX-512 tile is 14x32: of the tiles measured (docs/measurements.md),
 * it and 6x64 ran at the core's FMA peak on L1-resident panels.
 */
#include "kernels/f16.h"
#include "kernels/isa_impl.h"
#include "kernels/kernels.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

/* ==================================================================== */
/* Vector abstraction: one "vector" of VL floats per ISA                */
/* ==================================================================== */

#define BT_INLINE static inline __attribute__((always_inline))

#if defined(__AVX512F__)
typedef __m512 vf;
#define VL 16
#define MR 14 /* rows of the register tile: 28 accumulators + 2 B vectors */
#define NV 2  /* vectors per tile row: NR = 32 floats */
#ifndef KC
#define KC 256
#endif
BT_INLINE vf v_zero(void) { return _mm512_setzero_ps(); }
BT_INLINE vf v_load(const float *p) { return _mm512_loadu_ps(p); }
BT_INLINE void v_store(float *p, vf x) { _mm512_storeu_ps(p, x); }
BT_INLINE vf v_bcast(const float *p) { return _mm512_set1_ps(*p); }
BT_INLINE vf v_fma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
/* 16 halves, widened exactly (F16C) */
BT_INLINE vf v_load_h(const uint16_t *p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)p));
}
/* vectors a row of few_rows' tiles, for 1..4 rows: 4 to 8 accumulators */
#define H_NV1 4
#define H_NV2 4
#define H_NV3 2
#define H_NV4 2
#elif defined(__AVX2__)
typedef __m256 vf;
#define VL 8
#define MR 6
#define NV 2 /* NR = 16 */
#ifndef KC
#define KC 256
#endif
BT_INLINE vf v_zero(void) { return _mm256_setzero_ps(); }
BT_INLINE vf v_load(const float *p) { return _mm256_loadu_ps(p); }
BT_INLINE void v_store(float *p, vf x) { _mm256_storeu_ps(p, x); }
BT_INLINE vf v_bcast(const float *p) { return _mm256_broadcast_ss(p); }
BT_INLINE vf v_fma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
/* 8 halves, widened exactly (F16C) */
BT_INLINE vf v_load_h(const uint16_t *p) {
  return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p));
}
#define H_NV1 8
#define H_NV2 4
#define H_NV3 2
#define H_NV4 2
#else
typedef float vf;
#define VL 1
#define MR 4
#define NV 4 /* NR = 4 */
#ifndef KC
#define KC 256
#endif
BT_INLINE vf v_zero(void) { return 0.0f; }
BT_INLINE vf v_load(const float *p) { return *p; }
BT_INLINE void v_store(float *p, vf x) { *p = x; }
BT_INLINE vf v_bcast(const float *p) { return *p; }
BT_INLINE vf v_fma(vf a, vf b, vf c) { return fmaf(a, b, c); }
BT_INLINE vf v_load_h(const uint16_t *p) { return bt_f16_to_f32_inline(*p); }
#define H_NV1 4
#define H_NV2 4
#define H_NV3 4
#define H_NV4 4
#endif

#define NR (VL * NV)
/* Row blocks: an (MC, kc) block of A stays in L2 while the panels sweep it.
 * KC and MC_MAX may be overridden with -D for tuning. */
#ifndef MC_MAX
#define MC_MAX (MR * 18)
#endif
/* Packed B per K chunk, in floats (2 MiB): sized for L2/L3. */
#define BPACK_MAX (512 * 1024)
/* At most this many rows on one thread with tb == 0 (a decoding step), the
 * few-row tiles (few_rows) take the product. */
#define FEW_M 4
/* At most this many rows, B is read in place when tb == 0. */
#define SMALL_M (2 * MR)

/* ==================================================================== */
/* Microkernel                                                          */
/* ==================================================================== */

/*
 * C (mr, NR) [+]= op(A) (mr, kc) . Bp (kc, NR).
 * op(A)(i,k) is A[i*ars + k*aks]; Bp row k is Bp + k*bs. load_c: start the
 * chains from C, else from +0. Constant mr, ars or aks fold at the call.
 */
BT_INLINE void ukr_body(const int mr, int kc, const float *A, const long ars,
                        const long aks, const float *Bp, long bs, float *C, long ldc,
                        int load_c) {
  vf acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 8
    for (int j = 0; j < NV; j++)
      if (i < mr)
        acc[i][j] = load_c ? v_load(C + i * ldc + j * VL) : v_zero();
  if (!load_c) /* C's lines come in while the tile runs, not at its stores */
    for (int i = 0; i < mr; i++) {
      __builtin_prefetch(C + i * ldc, 1);
      __builtin_prefetch(C + i * ldc + NR - 1, 1);
    }
  for (int k = 0; k < kc; k++) {
    vf b[NV];
#pragma GCC unroll 8
    for (int j = 0; j < NV; j++)
      b[j] = v_load(Bp + j * VL);
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
      if (i < mr) {
        vf a = v_bcast(A + i * ars);
#pragma GCC unroll 8
        for (int j = 0; j < NV; j++)
          acc[i][j] = v_fma(a, b[j], acc[i][j]);
      }
    }
    A += aks;
    Bp += bs;
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 8
    for (int j = 0; j < NV; j++)
      if (i < mr)
        v_store(C + i * ldc + j * VL, acc[i][j]);
}

/* One function per (ta, mr): ta == 0 reads rows of A (k stride 1), ta == 1
 * reads MR consecutive floats per k. */
typedef void (*ukr_fn)(int kc, const float *A, long lda, const float *Bp, long bs,
                       float *C, long ldc, int load_c);

#define UKR_DEF(m)                                                                    \
  static void ukr_n_##m(int kc, const float *A, long lda, const float *Bp, long bs,   \
                        float *C, long ldc, int load_c) {                             \
    ukr_body(m, kc, A, lda, 1, Bp, bs, C, ldc, load_c);                               \
  }                                                                                   \
  static void ukr_t_##m(int kc, const float *A, long lda, const float *Bp, long bs,   \
                        float *C, long ldc, int load_c) {                             \
    ukr_body(m, kc, A, 1, lda, Bp, bs, C, ldc, load_c);                               \
  }

UKR_DEF(1)
UKR_DEF(2)
UKR_DEF(3)
UKR_DEF(4)
#if MR > 4
UKR_DEF(5)
UKR_DEF(6)
#endif
#if MR > 6
UKR_DEF(7)
UKR_DEF(8)
UKR_DEF(9)
UKR_DEF(10)
UKR_DEF(11)
UKR_DEF(12)
UKR_DEF(13)
UKR_DEF(14)
#endif

static const ukr_fn ukr_n[MR + 1] = {
    0, ukr_n_1, ukr_n_2, ukr_n_3, ukr_n_4,
#if MR > 4
    ukr_n_5, ukr_n_6,
#endif
#if MR > 6
    ukr_n_7, ukr_n_8, ukr_n_9, ukr_n_10, ukr_n_11, ukr_n_12, ukr_n_13, ukr_n_14,
#endif
};
static const ukr_fn ukr_t[MR + 1] = {
    0, ukr_t_1, ukr_t_2, ukr_t_3, ukr_t_4,
#if MR > 4
    ukr_t_5, ukr_t_6,
#endif
#if MR > 6
    ukr_t_7, ukr_t_8, ukr_t_9, ukr_t_10, ukr_t_11, ukr_t_12, ukr_t_13, ukr_t_14,
#endif
};

/*
 * Few rows, B read in place (a decoding step: one row per stream). A 1 x NV
 * tile keeps only NV FMA chains in flight, and at 4 cycles an FMA that caps
 * one row at a quarter of the FMA rate of an AVX2 core; a row of H_NV1
 * vectors (two rows of H_NV2, ...) keeps eight going.
 * C (mr, nv*VL) [+]= A (mr, kc) . B (kc, nv*VL), B floats or (half) binary16
 * widened exactly: each lane one output, one FMA chain over k in increasing
 * order from +0 or C's old value (load_c), as ukr_body's. B's columns are
 * contiguous (row k at B + k ldb), or with pst > 0 in panels of 16 columns
 * pst elements apart (bt_gemm_f16p_st; ldb is then 16).
 */
#define ROWS_NV_MAX 8
/* Column n of B's row 0: n, or in panels of 16 pst apart (bt_gemm_f16p_st). */
BT_INLINE long b_col(int n, long pst) { return pst ? (long)(n / 16) * pst + n % 16 : n; }
BT_INLINE void ukr_rows(const int mr, const int nv, const int half, int kc, const float *A,
                        long lda, const void *B, long ldb, long pst, float *C, long ldc,
                        int load_c) {
  const float *Bf = B;
  const uint16_t *Bh = B;
  vf acc[4][ROWS_NV_MAX];
#pragma GCC unroll 4
  for (int i = 0; i < mr; i++)
#pragma GCC unroll 8
    for (int j = 0; j < nv; j++)
      acc[i][j] = load_c ? v_load(C + i * ldc + j * VL) : v_zero();
  for (int k = 0; k < kc; k++) {
    vf a[4];
#pragma GCC unroll 4
    for (int i = 0; i < mr; i++)
      a[i] = v_bcast(A + i * lda + k);
#pragma GCC unroll 8
    for (int j = 0; j < nv; j++) {
      const vf b = half ? v_load_h(Bh + b_col(j * VL, pst)) : v_load(Bf + j * VL);
#pragma GCC unroll 4
      for (int i = 0; i < mr; i++)
        acc[i][j] = v_fma(a[i], b, acc[i][j]);
    }
    Bf += ldb;
    Bh += ldb;
  }
#pragma GCC unroll 4
  for (int i = 0; i < mr; i++)
#pragma GCC unroll 8
    for (int j = 0; j < nv; j++)
      v_store(C + i * ldc + j * VL, acc[i][j]);
}

/* ==================================================================== */
/* Packing B                                                            */
/* ==================================================================== */

/* dst[k*NR + j] = src[j*ss + k] for a TB x TB block: an in-register transpose.
 * Plain moves, so any path gives the same bits. */
#if defined(__AVX512F__)
#define TB 16
static void transpose_block(float *restrict dst, const float *restrict src, long ss) {
  __m512 r[16], t[16];
  for (int j = 0; j < 16; j++)
    r[j] = _mm512_loadu_ps(src + j * ss);
  for (int j = 0; j < 16; j += 2) {
    t[j] = _mm512_unpacklo_ps(r[j], r[j + 1]);
    t[j + 1] = _mm512_unpackhi_ps(r[j], r[j + 1]);
  }
  /* r[4q + c]: rows 4q..4q+3 for the columns c (mod 4) of each 128-bit lane */
  for (int q = 0; q < 4; q++) {
    __m512 a = t[4 * q], b = t[4 * q + 1], c = t[4 * q + 2], d = t[4 * q + 3];
    r[4 * q + 0] = _mm512_shuffle_ps(a, c, 0x44);
    r[4 * q + 1] = _mm512_shuffle_ps(a, c, 0xEE);
    r[4 * q + 2] = _mm512_shuffle_ps(b, d, 0x44);
    r[4 * q + 3] = _mm512_shuffle_ps(b, d, 0xEE);
  }
  for (int c = 0; c < 4; c++) {
    __m512 v0 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88);
    __m512 v1 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xDD);
    __m512 v2 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88);
    __m512 v3 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xDD);
    _mm512_storeu_ps(dst + (long)(c + 0) * NR, _mm512_shuffle_f32x4(v0, v2, 0x88));
    _mm512_storeu_ps(dst + (long)(c + 8) * NR, _mm512_shuffle_f32x4(v0, v2, 0xDD));
    _mm512_storeu_ps(dst + (long)(c + 4) * NR, _mm512_shuffle_f32x4(v1, v3, 0x88));
    _mm512_storeu_ps(dst + (long)(c + 12) * NR, _mm512_shuffle_f32x4(v1, v3, 0xDD));
  }
}
#elif defined(__AVX2__)
#define TB 8
static void transpose_block(float *restrict dst, const float *restrict src, long ss) {
  __m256 r[8], t[8];
  for (int j = 0; j < 8; j++)
    r[j] = _mm256_loadu_ps(src + j * ss);
  for (int j = 0; j < 8; j += 2) {
    t[j] = _mm256_unpacklo_ps(r[j], r[j + 1]);
    t[j + 1] = _mm256_unpackhi_ps(r[j], r[j + 1]);
  }
  for (int q = 0; q < 2; q++) {
    __m256 a = t[4 * q], b = t[4 * q + 1], c = t[4 * q + 2], d = t[4 * q + 3];
    r[4 * q + 0] = _mm256_shuffle_ps(a, c, 0x44);
    r[4 * q + 1] = _mm256_shuffle_ps(a, c, 0xEE);
    r[4 * q + 2] = _mm256_shuffle_ps(b, d, 0x44);
    r[4 * q + 3] = _mm256_shuffle_ps(b, d, 0xEE);
  }
  for (int c = 0; c < 4; c++) {
    _mm256_storeu_ps(dst + (long)c * NR, _mm256_permute2f128_ps(r[c], r[4 + c], 0x20));
    _mm256_storeu_ps(dst + (long)(c + 4) * NR, _mm256_permute2f128_ps(r[c], r[4 + c], 0x31));
  }
}
#else
#define TB 0
#endif

/* dst (kn, NR) = op(B) rows k0..k0+kn-1, columns n0..n0+NR-1, zero past N. */
static void pack_b_panel(float *restrict dst, int tb, const float *restrict B, long ldb,
                         int k0, int kn, int n0, int N) {
  int nw = N - n0 < NR ? N - n0 : NR;
  if (!tb) {
    for (int k = 0; k < kn; k++) {
      const float *src = B + (long)(k0 + k) * ldb + n0;
      float *d = dst + (long)k * NR;
      if (nw == NR) {
#pragma GCC unroll 8
        for (int j = 0; j < NV; j++)
          v_store(d + j * VL, v_load(src + j * VL));
      } else {
        for (int j = 0; j < nw; j++)
          d[j] = src[j];
        for (int j = nw; j < NR; j++)
          d[j] = 0.0f;
      }
    }
    return;
  }
  /* tb: op(B)(k, n) = B[n*ldb + k]: a transpose, by TB x TB blocks where
   * whole, else element by element in 16-row steps so the writes stay in a few
   * cache lines while each source row is read contiguously. */
  int kb0 = 0;
#if TB > 0
  if (nw == NR) {
    for (; kb0 + TB <= kn; kb0 += TB)
      for (int j = 0; j < NR; j += TB)
        transpose_block(dst + (long)kb0 * NR + j, B + (long)(n0 + j) * ldb + k0 + kb0, ldb);
  }
#endif
  for (int kb = kb0; kb < kn; kb += 16) {
    int ke = kn - kb < 16 ? kn - kb : 16;
    for (int j = 0; j < nw; j++) {
      const float *src = B + (long)(n0 + j) * ldb + k0 + kb;
      float *d = dst + (long)kb * NR + j;
      for (int k = 0; k < ke; k++)
        d[(long)k * NR] = src[k];
    }
    for (int j = nw; j < NR; j++)
      for (int k = 0; k < ke; k++)
        dst[(long)(kb + k) * NR + j] = 0.0f;
  }
}

/* ==================================================================== */
/* Driver                                                               */
/* ==================================================================== */

typedef struct {
  int ta, tb, M, N, K, accumulate;
  const float *A, *B;
  long lda, ldb, ldc;
  float *C;
  float *Bp;      /* packed B chunk: panel p at Bp + p*kchunk*NR (in direct mode,
                     only the last partial panel, at Bp) */
  int direct_b;   /* B read in place (tb == 0, small M) */
  int kchunk;     /* K rows per packed chunk, a multiple of KC */
  int npan;       /* NR panels over N */
  int mc, n_ic;   /* row blocks */
  int ppp, n_jp;  /* panels per part, parts */
} gemm_job;

/* C tile at rows i0.., columns n0.. of width nw (< NR): through a full tile. */
static void edge_tile(ukr_fn f, int mr, int nw, int kc, const float *Ap, long lda,
                      const float *Bp, long bs, float *C, long ldc, int load_c) {
  float tmp[MR * NR] __attribute__((aligned(64)));
  if (load_c)
    for (int i = 0; i < mr; i++)
      for (int j = 0; j < nw; j++)
        tmp[i * NR + j] = C[i * ldc + j];
  f(kc, Ap, lda, Bp, bs, tmp, NR, load_c);
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nw; j++)
      C[i * ldc + j] = tmp[i * NR + j];
}

static void gemm_thread(const gemm_job *g, int tid, int nt) {
  const int M = g->M, N = g->N, K = g->K;
  const ukr_fn *fns = g->ta ? ukr_t : ukr_n;
  const int n_items = g->n_ic * g->n_jp;
  for (int k0 = 0; k0 < K; k0 += g->kchunk) {
    const int kn = K - k0 < g->kchunk ? K - k0 : g->kchunk;
    if (k0 > 0 && nt > 1) {
#pragma omp barrier
    }
    /* Pack this chunk of B: panels split over threads. */
    if (g->direct_b) {
      if (N % NR && tid == 0)
        pack_b_panel(g->Bp, 0, g->B, g->ldb, k0, kn, (g->npan - 1) * NR, N);
    } else {
      for (int p = tid; p < g->npan; p += nt)
        pack_b_panel(g->Bp + (long)p * g->kchunk * NR, g->tb, g->B, g->ldb, k0, kn,
                     p * NR, N);
    }
    if (nt > 1) {
#pragma omp barrier
    }
    for (int it = tid; it < n_items; it += nt) {
      const int ic = it / g->n_jp, jp = it % g->n_jp;
      const int i_beg = ic * g->mc, i_end = i_beg + g->mc < M ? i_beg + g->mc : M;
      const int p_beg = jp * g->ppp, p_end = p_beg + g->ppp < g->npan ? p_beg + g->ppp : g->npan;
      for (int pc = k0; pc < k0 + kn; pc += KC) {
        const int kc = k0 + kn - pc < KC ? k0 + kn - pc : KC;
        const int load_c = g->accumulate || pc > 0;
        for (int p = p_beg; p < p_end; p++) {
          const int n0 = p * NR, nw = N - n0 < NR ? N - n0 : NR;
          const float *Bp;
          long bs;
          if (g->direct_b && nw == NR) {
            Bp = g->B + (long)pc * g->ldb + n0;
            bs = g->ldb;
          } else if (g->direct_b) {
            Bp = g->Bp + (long)(pc - k0) * NR;
            bs = NR;
          } else {
            Bp = g->Bp + ((long)p * g->kchunk + (pc - k0)) * NR;
            bs = NR;
          }
          for (int i0 = i_beg; i0 < i_end; i0 += MR) {
            const int mr = i_end - i0 < MR ? i_end - i0 : MR;
            const float *Ap = g->ta ? g->A + (long)pc * g->lda + i0
                                    : g->A + (long)i0 * g->lda + pc;
            float *Ct = g->C + (long)i0 * g->ldc + n0;
            if (nw == NR)
              fns[mr](kc, Ap, g->lda, Bp, bs, Ct, g->ldc, load_c);
            else
              edge_tile(fns[mr], mr, nw, kc, Ap, g->lda, Bp, bs, Ct, g->ldc, load_c);
          }
        }
      }
    }
  }
}

static void few_rows(int M, int N, int K, const float *A, long lda, const void *B, long ldb,
                     long pst, float *C, long ldc, int acc, int half);

/*
 * C (M,N) [+]= op(A) . op(B) with the contract of kernels.h, on up to
 * nthreads threads (1: the calling thread only, no parallel region).
 */
void BT_ISA_FN(bt_gemm_impl)(int ta, int tb, int M, int N, int K, const float *A, int lda,
                             const float *B, int ldb, float *C, int ldc, int accumulate,
                             int nthreads) {
  if (M <= 0 || N <= 0)
    return;
  if (K <= 0) {
    if (!accumulate)
      for (int i = 0; i < M; i++)
        memset(C + (long)i * ldc, 0, (size_t)N * sizeof(float));
    return;
  }
  if (!ta && !tb && M <= FEW_M && nthreads <= 1) {
    few_rows(M, N, K, A, lda, B, ldb, 0, C, ldc, accumulate, 0);
    return;
  }
  gemm_job g;
  g.ta = ta != 0;
  g.tb = tb != 0;
  g.M = M;
  g.N = N;
  g.K = K;
  g.accumulate = accumulate != 0;
  g.A = A;
  g.B = B;
  g.lda = lda;
  g.ldb = ldb;
  g.ldc = ldc;
  g.C = C;
  g.npan = (N + NR - 1) / NR;
  g.direct_b = !g.tb && M <= SMALL_M;
  /* K chunk: as many KC blocks as fit BPACK_MAX for all panels. */
  long per_k = (long)g.npan * NR;
  long kch = BPACK_MAX / per_k / KC * KC;
  if (kch < KC)
    kch = KC;
  if (kch >= K)
    kch = K;
  g.kchunk = (int)kch;
  g.n_ic = (M + MC_MAX - 1) / MC_MAX;
  g.mc = (M + g.n_ic - 1) / g.n_ic;
  g.mc = (g.mc + MR - 1) / MR * MR;
  g.n_ic = (M + g.mc - 1) / g.mc;
  int nt = nthreads < 1 ? 1 : nthreads;
  /* Split N too when there are few row blocks, so threads stay balanced. */
  int n_jp = 1;
  if (nt > 1)
    while (g.n_ic * n_jp < 4 * nt && n_jp * 2 <= g.npan)
      n_jp *= 2;
  g.ppp = (g.npan + n_jp - 1) / n_jp;
  g.n_jp = (g.npan + g.ppp - 1) / g.ppp;
  if (nt > g.n_ic * g.n_jp)
    nt = g.n_ic * g.n_jp;

  size_t bfloats = g.direct_b ? (N % NR ? (size_t)g.kchunk * NR : 0)
                              : (size_t)g.npan * g.kchunk * NR;
  float *buf = NULL;
  if (bfloats) {
    size_t bytes = (bfloats * sizeof(float) + 63) / 64 * 64;
    buf = bt_scratch(0, bytes); /* kept per thread: no page faults per call */
    if (!buf) {
      /* No memory for packing: the reference computes the same chains. */
      bt_gemm_naive(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
      return;
    }
  }
  g.Bp = buf;
  if (nt > 1) {
#pragma omp parallel num_threads(nt)
    {
      int n = omp_get_num_threads();
      gemm_thread(&g, omp_get_thread_num(), n);
    }
  } else {
    gemm_thread(&g, 0, 1);
  }
}

/* ==================================================================== */
/* Few rows times a binary16 B (bt_gemm_f16b_st)                        */
/* ==================================================================== */

/* mr rows of C [+]= A . B, B floats or (half) binary16 read in place (pst:
 * ukr_rows): wide tiles, then one vector at a time, then single columns
 * (fmaf: the chains of the vector lanes). Column n of B starts at
 * B + b_col(n). */
#define FEW_ROWS(R)                                                                         \
  static void few_rows_##R(int N, int K, const float *A, long lda, const void *B, long ldb, \
                           long pst, float *C, long ldc, int acc, int half) {               \
    const float *Bf = B;                                                                    \
    const uint16_t *Bh = B;                                                                 \
    int n0 = 0;                                                                             \
    for (; n0 + H_NV##R * VL <= N; n0 += H_NV##R * VL)                                      \
      ukr_rows(R, H_NV##R, half, K, A, lda,                                                 \
               half ? (const void *)(Bh + b_col(n0, pst)) : Bf + n0, ldb, pst, C + n0, ldc, \
               acc);                                                                        \
    for (; n0 + VL <= N; n0 += VL)                                                          \
      ukr_rows(R, 1, half, K, A, lda, half ? (const void *)(Bh + b_col(n0, pst)) : Bf + n0, \
               ldb, pst, C + n0, ldc, acc);                                                 \
    for (; n0 < N; n0++)                                                                    \
      for (int i = 0; i < (R); i++) {                                                       \
        float c = acc ? C[i * ldc + n0] : 0.0f;                                             \
        for (int k = 0; k < K; k++)                                                         \
          c = fmaf(A[i * lda + k],                                                          \
                   half ? bt_f16_to_f32_inline(Bh[b_col(n0, pst) + (long)k * ldb])          \
                        : Bf[(long)k * ldb + n0],                                           \
                   c);                                                                      \
        C[i * ldc + n0] = c;                                                                \
      }                                                                                     \
  }
FEW_ROWS(1)
FEW_ROWS(2)
FEW_ROWS(3)
FEW_ROWS(4)

/* C (M,N) [+]= A (M,K) . B (K,N) in row tiles of up to four: the whole K in
 * registers, B read in place. A decoding step's product (one row a stream). */
static void few_rows(int M, int N, int K, const float *A, long lda, const void *B, long ldb,
                     long pst, float *C, long ldc, int acc, int half) {
  static void (*const rows[5])(int, int, const float *, long, const void *, long, long, float *,
                               long, int, int) = {0, few_rows_1, few_rows_2, few_rows_3,
                                                  few_rows_4};
  for (int i0 = 0; i0 < M; i0 += 4) {
    const int mr = M - i0 < 4 ? M - i0 : 4;
    rows[mr](N, K, A + (long)i0 * lda, lda, B, ldb, pst, C + (long)i0 * ldc, ldc, acc, half);
  }
}

void BT_ISA_FN(bt_gemm_f16_impl)(int M, int N, int K, const float *A, int lda,
                                 const uint16_t *B, long ldb, long pst, float *C, int ldc) {
  few_rows(M, N, K, A, lda, B, ldb, pst, C, ldc, 0, 1);
}

/* ==================================================================== */
/* FMA peak loop                                                        */
/* ==================================================================== */

/* Runs iters steps of 12 independent FMA chains per vector register lane, on
 * registers only; returns a value that depends on all of them (so the loop is
 * not removed). Each chain starts from its own value, or the compiler would
 * merge them into one. flops = iters * 12 * VL * 2. */
float BT_ISA_FN(bt_peak_loop)(long iters, int *lanes) {
  /* volatile: the values must be unknown to the compiler, or it folds the loop */
  volatile float vm = 0.9999999f, va = 1e-7f, vi = 0.001f;
  float mm = vm, aa = va, init[12];
  for (int i = 0; i < 12; i++)
    init[i] = 1.0f + vi * (float)i;
  vf m = v_bcast(&mm), a = v_bcast(&aa);
  vf x0 = v_bcast(&init[0]), x1 = v_bcast(&init[1]), x2 = v_bcast(&init[2]);
  vf x3 = v_bcast(&init[3]), x4 = v_bcast(&init[4]), x5 = v_bcast(&init[5]);
  vf x6 = v_bcast(&init[6]), x7 = v_bcast(&init[7]), x8 = v_bcast(&init[8]);
  vf x9 = v_bcast(&init[9]), x10 = v_bcast(&init[10]), x11 = v_bcast(&init[11]);
  for (long i = 0; i < iters; i++) {
    x0 = v_fma(x0, m, a);
    x1 = v_fma(x1, m, a);
    x2 = v_fma(x2, m, a);
    x3 = v_fma(x3, m, a);
    x4 = v_fma(x4, m, a);
    x5 = v_fma(x5, m, a);
    x6 = v_fma(x6, m, a);
    x7 = v_fma(x7, m, a);
    x8 = v_fma(x8, m, a);
    x9 = v_fma(x9, m, a);
    x10 = v_fma(x10, m, a);
    x11 = v_fma(x11, m, a);
  }
  vf s = x0;
  s = v_fma(s, x1, x2);
  s = v_fma(s, x3, x4);
  s = v_fma(s, x5, x6);
  s = v_fma(s, x7, x8);
  s = v_fma(s, x9, x10);
  s = v_fma(s, x11, a);
  float out[VL];
  v_store(out, s);
  *lanes = VL;
  float r = 0.0f;
  for (int i = 0; i < VL; i++)
    r += out[i];
  return r;
}
