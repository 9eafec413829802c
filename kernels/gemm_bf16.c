/*
 * gemm_bf16.c - the training GEMM with bfloat16 inputs and float32
 * accumulation, on AVX512_BF16 (vdpbf16ps), for `bt-train --precision bf16`.
 * Compiled with -mavx512bf16 and called only where the CPU has it
 * (bt_bf16_available). The contract is kernels.h's bt_gemm_bf16: op(A) and
 * op(B) are rounded to bfloat16 (nearest, ties to even: bt_f32_to_bf16), k is
 * taken in pairs (2p, 2p+1), and each pair does, as the instruction does,
 *   acc = ftz(fma(a[2p+1], b[2p+1], daz(acc)));  acc = ftz(fma(a[2p], b[2p], acc))
 * with subnormal inputs read as zero; bt_gemm_bf16_ref is that in scalar C.
 *
 * Blocking follows the fp32 GEMM (gemm_impl.c):
 *  - op(B) is packed, a chunk of k pairs of all panels at a time and
 *    cooperatively by the threads, as panels of NR = 32 columns, each pair
 *    32 interleaved (b[2p], b[2p+1]) as uint32 (two vectors);
 *  - work items are (block of <= MC_MAX rows) x (range of panels); for each
 *    block of KCP pairs, a thread packs its rows of op(A) into tiles of MR
 *    rows, one uint32 pair per (pair, row), which the kernel broadcasts (rows of
 *    pairs with ta == 0, pairs of MR rows with ta == 1: pack_a_block), then
 *    sweeps its panels: the B micro-panel (KCP = 256 pairs x 32, 32 KiB) stays in
 *    L1 while the A block (MC_MAX x KCP pairs, 252 KiB) is read from L2
 *    (KCP 256 ran the weight gradients, K = 16,384, about 8% faster than
 *    128 and 20% faster than 512 on a Zen 5).
 * An MR x 32 tile of C stays in 28 registers for a KCP block; blocks after
 * the first go on from the values stored in C, which a float store and load
 * keep exactly, so every C element is still one chain over the pairs in
 * order. Threads split M and N only: the bits do not depend on their number.
 */
#include "kernels/kernels.h"

#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/bf16.h"

#define MR 14 /* rows of the register tile: 28 accumulators + 2 B vectors */
#define NR 32
#ifndef KCP
#define KCP 256 /* k pairs per block */
#endif
#ifndef MC_MAX
#define MC_MAX (MR * 18)
#endif
#define BPACK_MAX (512 * 1024) /* packed B pairs per k chunk (2 MiB) */

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

static inline __mmask16 lanes(int n) { return n >= 16 ? (__mmask16)0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1); }

/* 16 pairs from two rows of floats, lanes [0, n): lo | hi << 16, where a
 * missing hi row (an odd K's last pair) and lanes past n are 0. */
static inline __m512i pairs_rows(const float *lo, const float *hi, int n) {
  const __mmask16 m = lanes(n);
  const __m512i l = _mm512_cvtepu16_epi32(to_bf16x16(_mm512_maskz_loadu_ps(m, lo)));
  const __m512i h = hi ? _mm512_cvtepu16_epi32(to_bf16x16(_mm512_maskz_loadu_ps(m, hi))) : _mm512_setzero_si512();
  return _mm512_or_si512(l, _mm512_slli_epi32(h, 16));
}

/* 16 pairs from consecutive floats x[0, n), n <= 32, the rest 0: pair j is
 * x[2j] | x[2j+1] << 16, which is what 32 bfloat16 in memory order are. */
static inline __m512i pairs_contig(const float *x, int n) {
  const __m256i l = to_bf16x16(_mm512_maskz_loadu_ps(lanes(n), x));
  const __m256i h = to_bf16x16(_mm512_maskz_loadu_ps(lanes(n - 16), x + 16));
  return _mm512_inserti64x4(_mm512_castsi256_si512(l), h, 1);
}

/* Pairs q0 .. q0+qn of a run of K floats with stride 1 (a row of op(A) with
 * ta == 0, a column of op(B) with tb == 1), stored at dst[j * stride]. */
static void pack_run(const float *x, int K, int q0, int qn, uint32_t *dst, int stride) {
  if (stride == 1) {
    for (int j = 0; j < qn; j += 16) {
      const int k = 2 * (q0 + j), nk = K - k < 32 ? K - k : 32, np = qn - j < 16 ? qn - j : 16;
      _mm512_mask_storeu_epi32(dst + j, lanes(np), pairs_contig(x + k, nk));
    }
    return;
  }
  const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                         _mm512_set1_epi32(stride));
  for (int j = 0; j < qn; j += 16) {
    const int k = 2 * (q0 + j), nk = K - k < 32 ? K - k : 32, np = qn - j < 16 ? qn - j : 16;
    _mm512_mask_i32scatter_epi32(dst + (long)j * stride, lanes(np), idx, pairs_contig(x + k, nk), 4);
  }
}

typedef struct {
  int ta, tb, M, N, K, accumulate;
  const float *A, *B;
  long lda, ldb, ldc;
  float *C;
  int npan, kchunk; /* panels of B; k pairs per packed chunk */
  int mc, n_ic, ppp, n_jp;
  uint32_t *Bp, *Ap; /* Ap: one A block per thread */
  size_t ap_per_thread;
} job;

/* Pairs [q0 + qa, q0 + qb) of the chunk that starts at pair q0, all panels,
 * with tb == 0: rows k, k+1 of B hold the pair's columns, read whole and
 * in order (a panel at a time took 128 bytes of each of the chunk's rows,
 * ldb apart, and waited on nearly every line: docs/measurements.md);
 * pair q of panel p goes to Bp[(p * kchunk + q) * NR + c]. */
static void pack_b_rows(const job *g, int q0, int qa, int qb) {
  for (int q = qa; q < qb; q++) {
    const int k = 2 * (q0 + q);
    const float *r0 = g->B + (long)k * g->ldb, *r1 = k + 1 < g->K ? r0 + g->ldb : NULL;
    uint32_t *dst = g->Bp + (size_t)q * NR;
    for (int p = 0; p < g->npan; p++, dst += (size_t)g->kchunk * NR) {
      const int n0 = p * NR, nc = g->N - n0 < NR ? g->N - n0 : NR;
      _mm512_storeu_si512(dst, pairs_rows(r0 + n0, r1 ? r1 + n0 : NULL, nc));
      _mm512_storeu_si512(dst + 16, pairs_rows(r0 + n0 + 16, r1 ? r1 + n0 + 16 : NULL, nc - 16));
    }
  }
}

/* Pairs [q0, q0 + qn) of panel p of op(B), tb == 1, to dst[(q - q0) * NR + c]. */
static void pack_b_panel(const job *g, int p, int q0, int qn, uint32_t *dst) {
  const int n0 = p * NR, nc = g->N - n0 < NR ? g->N - n0 : NR;
  for (int c = 0; c < NR; c++) { /* column n of op(B) is row n of B */
    if (c < nc)
      pack_run(g->B + (long)(n0 + c) * g->ldb, g->K, q0, qn, dst + c, NR);
    else
      for (int q = 0; q < qn; q++)
        dst[(long)q * NR + c] = 0;
  }
}

/* Rows [i_beg, i_end), pairs [q0, q0 + qn) of op(A), as tiles of MR rows:
 * row i to dst[(i - i_beg) / MR * MR * KCP + (i - i_beg) % MR * ARS(ta) + (q
 * - q0) * AQS(ta)]. With ta == 0 a row of A is a run of pairs in memory
 * order, so rows of KCP pairs; with ta == 1 two rows of A hold the block's
 * pairs for every m, which are read whole, a pair at a time, and dealt out
 * MR rows to a tile (tile by tile, each pass took 56 bytes of each of the
 * rows, lda apart, and waited on the lines). */
#ifndef APF
#define APF 8 /* pairs ahead that pack_a_block prefetches, ta == 1 */
#endif
#define ARS(ta) ((ta) ? 1 : KCP)
#define AQS(ta) ((ta) ? MR : 1)
static void pack_a_block(const job *g, int i_beg, int i_end, int q0, int qn, uint32_t *dst) {
  if (!g->ta) {
    for (int i = i_beg; i < i_end; i++)
      pack_run(g->A + (long)i * g->lda, g->K, q0, qn, dst + (long)(i - i_beg) * KCP, 1);
    return;
  }
  /* op(A)(m, k) = A[k * lda + m] */
  const long seg = (long)(i_end - i_beg) * 4; /* bytes of a row the block reads */
  for (int q = 0; q < qn; q++) {
    const int k = 2 * (q0 + q);
    const float *r0 = g->A + (long)k * g->lda, *r1 = k + 1 < g->K ? r0 + g->lda : NULL;
    if (k + 2 * APF + 1 < g->K) /* rows 2 APF ahead */
      for (int j = 0; j < 2; j++) {
        const char *p = (const char *)(g->A + (long)(k + 2 * APF + j) * g->lda + i_beg);
        for (long off = 0; off < seg; off += 64)
          _mm_prefetch(p + off, _MM_HINT_T0);
        _mm_prefetch(p + seg - 1, _MM_HINT_T0);
      }
    for (int i0 = i_beg; i0 < i_end; i0 += MR) {
      const int mr = i_end - i0 < MR ? i_end - i0 : MR;
      _mm512_mask_storeu_epi32(dst + (long)(i0 - i_beg) * KCP + (long)q * MR, lanes(mr),
                               pairs_rows(r0 + i0, r1 ? r1 + i0 : NULL, mr));
    }
  }
}

/* C[mr x nc] (+)= A tile . B micro-panel over qn pairs, mr <= MR, nc <= NR;
 * pair q of row i of the tile is Ap[i * ARS(ta) + q * AQS(ta)]. */
static inline __attribute__((always_inline)) void tile(int ta, int mr, const uint32_t *Ap, int qn,
                                                       const uint32_t *Bp, float *C, long ldc, int nc,
                                                       int load_c) {
  __m512 acc[MR][2];
  const __mmask16 m0 = lanes(nc), m1 = lanes(nc - 16);
#pragma GCC unroll 14
  for (int i = 0; i < MR; i++)
    if (i < mr) {
      acc[i][0] = load_c ? _mm512_maskz_loadu_ps(m0, C + i * ldc) : _mm512_setzero_ps();
      acc[i][1] = load_c ? _mm512_maskz_loadu_ps(m1, C + i * ldc + 16) : _mm512_setzero_ps();
      if (!load_c) { /* C's lines come in while the tile runs, not at its stores */
        __builtin_prefetch(C + i * ldc, 1);
        __builtin_prefetch(C + i * ldc + nc - 1, 1);
      }
    }
  for (int q = 0; q < qn; q++) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(Bp + (size_t)q * NR);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(Bp + (size_t)q * NR + 16);
#pragma GCC unroll 14
    for (int i = 0; i < MR; i++)
      if (i < mr) {
        const __m512bh a = (__m512bh)_mm512_set1_epi32((int)Ap[i * ARS(ta) + (size_t)q * AQS(ta)]);
        acc[i][0] = _mm512_dpbf16_ps(acc[i][0], a, b0);
        acc[i][1] = _mm512_dpbf16_ps(acc[i][1], a, b1);
      }
  }
#pragma GCC unroll 14
  for (int i = 0; i < MR; i++)
    if (i < mr) {
      _mm512_mask_storeu_ps(C + i * ldc, m0, acc[i][0]);
      _mm512_mask_storeu_ps(C + i * ldc + 16, m1, acc[i][1]);
    }
}

static void tile_full_n(const uint32_t *Ap, int qn, const uint32_t *Bp, float *C, long ldc, int nc, int load_c) {
  tile(0, MR, Ap, qn, Bp, C, ldc, nc, load_c);
}
static void tile_full_t(const uint32_t *Ap, int qn, const uint32_t *Bp, float *C, long ldc, int nc, int load_c) {
  tile(1, MR, Ap, qn, Bp, C, ldc, nc, load_c);
}
static void tile_part(int ta, int mr, const uint32_t *Ap, int qn, const uint32_t *Bp, float *C, long ldc, int nc,
                      int load_c) {
  switch (mr) {
#define T(r) case r: tile(ta, r, Ap, qn, Bp, C, ldc, nc, load_c); break;
    T(1) T(2) T(3) T(4) T(5) T(6) T(7) T(8) T(9) T(10) T(11) T(12) T(13)
#undef T
  default: break;
  }
}

/* Part `part` of `nparts` of rows [i_beg, i_end), pairs [q0, q0 + qn) of
 * op(A), prefetched into L2: the next A block comes in while this one's
 * tiles run (with ta == 1 its rows are strided, and the pack waited on them). */
static void prefetch_a(const job *g, int i_beg, int i_end, int q0, int qn, int part, int nparts) {
  if (qn <= 0)
    return;
  const int k0 = 2 * q0, k1 = 2 * (q0 + qn) < g->K ? 2 * (q0 + qn) : g->K;
  /* ta == 0: rows m, each a run over k; ta == 1: rows k, each a run over m */
  const int r0 = g->ta ? k0 : i_beg, nr = g->ta ? k1 - k0 : i_end - i_beg;
  const int c0 = g->ta ? i_beg : k0, nc = g->ta ? i_end - i_beg : k1 - k0;
  const int a = (int)((long)nr * part / nparts), b = (int)((long)nr * (part + 1) / nparts);
  for (int r = r0 + a; r < r0 + b; r++) {
    const char *p = (const char *)(g->A + (long)r * g->lda + c0);
    for (long off = 0; off < (long)nc * 4; off += 64)
      _mm_prefetch(p + off, _MM_HINT_T1);
    _mm_prefetch(p + (long)nc * 4 - 1, _MM_HINT_T1);
  }
}

static void gemm_thread(const job *g, int tid, int nt) {
  const int Kp = (g->K + 1) / 2, n_items = g->n_ic * g->n_jp;
  uint32_t *Ap = g->Ap + (size_t)tid * g->ap_per_thread;
  for (int c0 = 0; c0 < Kp; c0 += g->kchunk) {
    const int cn = Kp - c0 < g->kchunk ? Kp - c0 : g->kchunk;
    if (c0 > 0 && nt > 1) {
#pragma omp barrier
    }
    if (!g->tb) /* this chunk of B: its pairs split over threads */
      pack_b_rows(g, c0, (int)((long)cn * tid / nt), (int)((long)cn * (tid + 1) / nt));
    else /* its panels split over threads */
      for (int p = tid; p < g->npan; p += nt)
        pack_b_panel(g, p, c0, cn, g->Bp + (size_t)p * g->kchunk * NR);
    if (nt > 1) {
#pragma omp barrier
    }
    for (int it = tid; it < n_items; it += nt) {
      const int ic = it / g->n_jp, jp = it % g->n_jp;
      const int i_beg = ic * g->mc, i_end = i_beg + g->mc < g->M ? i_beg + g->mc : g->M;
      const int p_beg = jp * g->ppp, p_end = p_beg + g->ppp < g->npan ? p_beg + g->ppp : g->npan;
      for (int q0 = c0; q0 < c0 + cn; q0 += KCP) {
        const int qn = c0 + cn - q0 < KCP ? c0 + cn - q0 : KCP, load_c = g->accumulate || q0 > 0;
        pack_a_block(g, i_beg, i_end, q0, qn, Ap);
        const int qnext = q0 + qn, qn_next = Kp - qnext < KCP ? Kp - qnext : KCP;
        for (int p = p_beg; p < p_end; p++) {
          const int n0 = p * NR, nc = g->N - n0 < NR ? g->N - n0 : NR;
          prefetch_a(g, i_beg, i_end, qnext, qn_next, p - p_beg, p_end - p_beg);
          const uint32_t *bp = g->Bp + ((size_t)p * g->kchunk + (q0 - c0)) * NR;
          for (int i0 = i_beg; i0 < i_end; i0 += MR) {
            const int mr = i_end - i0 < MR ? i_end - i0 : MR;
            const uint32_t *ap = Ap + (size_t)(i0 - i_beg) * KCP;
            float *c = g->C + (long)i0 * g->ldc + n0;
            if (mr == MR)
              (g->ta ? tile_full_t : tile_full_n)(ap, qn, bp, c, g->ldc, nc, load_c);
            else
              tile_part(g->ta, mr, ap, qn, bp, c, g->ldc, nc, load_c);
          }
        }
      }
    }
  }
}

void bt_gemm_bf16_avx512(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                         float *C, int ldc, int accumulate) {
  if (M <= 0 || N <= 0)
    return;
  if (K <= 0) { /* no pairs: C stays, or is +0 */
    if (!accumulate)
      for (int i = 0; i < M; i++)
        memset(C + (long)i * ldc, 0, (size_t)N * sizeof(float));
    return;
  }
  job g = {.ta = ta != 0, .tb = tb != 0, .M = M, .N = N, .K = K, .accumulate = accumulate != 0,
           .A = A, .B = B, .lda = lda, .ldb = ldb, .ldc = ldc, .C = C};
  const int Kp = (K + 1) / 2;
  g.npan = (N + NR - 1) / NR;
  long kch = BPACK_MAX / ((long)g.npan * NR) / KCP * KCP;
  g.kchunk = (int)(kch < KCP ? KCP : kch >= Kp ? Kp : kch);
  g.n_ic = (M + MC_MAX - 1) / MC_MAX;
  g.mc = (M + g.n_ic - 1) / g.n_ic;
  g.mc = (g.mc + MR - 1) / MR * MR;
  g.n_ic = (M + g.mc - 1) / g.mc;
  int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
  /* Row blocks that do not share out evenly (the weight gradients: M = OC
   * rows, K = B T): first make their number a multiple of the threads.
   * Splitting N instead has two threads pack the same A blocks, which for
   * those shapes is a fifth of the time. */
  if (nt > 1 && g.n_ic % nt && M > MR) {
    const int want = (g.n_ic + nt - 1) / nt * nt;
    g.mc = ((M + want - 1) / want + MR - 1) / MR * MR;
    g.n_ic = (M + g.mc - 1) / g.mc;
  }
  /* Split N too when the row blocks do not share out evenly: each item packs
   * its own A blocks, so no more than that. */
  int n_jp = 1;
  if (nt > 1)
    while (g.n_ic * n_jp % nt && g.n_ic * n_jp < 4 * nt && n_jp * 2 <= g.npan)
      n_jp *= 2;
  g.ppp = (g.npan + n_jp - 1) / n_jp;
  g.n_jp = (g.npan + g.ppp - 1) / g.ppp;
  if (nt > g.n_ic * g.n_jp)
    nt = g.n_ic * g.n_jp;
  g.ap_per_thread = (size_t)g.mc * KCP; /* every store into it is masked to its rows */
  g.Bp = bt_scratch(3, (size_t)g.npan * g.kchunk * NR * sizeof(uint32_t));
  g.Ap = bt_scratch(2, (size_t)nt * g.ap_per_thread * sizeof(uint32_t));
  if (!g.Ap || !g.Bp) { /* out of memory: the same bits, slowly */
    bt_gemm_bf16_ref(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
    return;
  }
  if (nt > 1) {
#pragma omp parallel num_threads(nt)
    gemm_thread(&g, omp_get_thread_num(), omp_get_num_threads());
  } else {
    gemm_thread(&g, 0, 1);
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
