/*
 * attention_impl.c - causal multi-head attention, forward and backward, for
 * training. Compiled once per ISA (isa_impl.h); kernels/attention.c dispatches.
 *
 * Layout. Everything runs on one (b,h) pair and one block of BQ = 64 query
 * rows at a time, walking key tiles of BK = 64 keys up to the diagonal (fully
 * masked tiles are never touched). The score tile is kept TRANSPOSED, S^T
 * (keys, queries), so that every vector runs over 16 (8) query rows:
 *   - S^T = K . Qs^T: each K element is broadcast straight from qkv, Qs^T
 *     (hs, BQ) is the query block scaled by 1/sqrt(hs) and transposed once per
 *     block; no key packing at all;
 *   - the softmax statistics (row max, row sum) of a query are lane-wise
 *     running values over keys, so there is no horizontal reduction and the
 *     sum order (key order) is the same on every ISA path;
 *   - O^T (hs, BQ) += V^T P^T, dQ^T += K^T dS^T: again query-vectorised;
 *   - dK, dV (keys, hs) += dS^T Qs, P^T dO: vectorised over hs.
 * K and V of a (b,h) are packed (T, hs) once per thread.
 * One register-blocked microkernel (R rows broadcast x NV vectors) does all
 * five products; see mk_*.
 *
 * Forward: online softmax over the key tiles (running max m, sum l, O rescaled
 * by exp(m_old - m_new)). Backward: FlashAttention math with the query block
 * outer and key tiles inner; dQ of a block is complete when its tiles are done,
 * dK/dV of a key accumulate over query blocks in increasing order.
 *
 * Determinism. Every output element is one fixed sequence of float operations
 * (FMA chains in key or hs order, bt's own exp), whatever the thread count:
 * the forward's tasks are (b, h, query block), the backward's are (b, h)
 * (a (b,h) pair owns its dK/dV columns). The vector width only changes which
 * elements are computed together, never how, so the scalar, AVX2 and AVX-512
 * paths give identical bits too (tested).
 */
#include "kernels/bf16.h"
#include "kernels/isa_impl.h"
#include "kernels/kernels.h"
#include "kernels/mathfn.h"

#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#define BQ 64 /* query rows per block: the lanes of S^T */
#define BK 64 /* keys per tile */

#define UNROLL _Pragma("GCC unroll 16")

/* ==================================================================== */
/* A small vector layer: one code body for every path                  */
/* ==================================================================== */

/* Not every path uses every helper. */
#define VFN static inline __attribute__((unused))

#if defined(__AVX512F__)
#define VL 16
typedef __m512 vf;
typedef __mmask16 vm;
VFN vf vload(const float *p) { return _mm512_loadu_ps(p); }
VFN void vstore(float *p, vf x) { _mm512_storeu_ps(p, x); }
VFN vf vset1(float x) { return _mm512_set1_ps(x); }
VFN vf vzero(void) { return _mm512_setzero_ps(); }
VFN vf vfma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
VFN vf vadd(vf a, vf b) { return _mm512_add_ps(a, b); }
VFN vf vsub(vf a, vf b) { return _mm512_sub_ps(a, b); }
VFN vf vmul(vf a, vf b) { return _mm512_mul_ps(a, b); }
/* a > b ? a : b, like the scalar version (NaN in either gives b) */
VFN vf vmax(vf a, vf b) { return _mm512_max_ps(a, b); }
VFN vf vmin(vf a, vf b) { return _mm512_min_ps(a, b); }
VFN vm vgt(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
VFN vm vlt(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
/* m ? a : b */
VFN vf vsel(vm m, vf a, vf b) { return _mm512_mask_blend_ps(m, b, a); }
VFN vf vpow2i(vf n) { /* 2^n for integral n in [-126, 127] */
  __m512i e = _mm512_add_epi32(_mm512_cvttps_epi32(n), _mm512_set1_epi32(127));
  return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
}
VFN vf vlanes(void) {
  return _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}
/* Microkernel shapes: RQ x NVQ for query-vectorised products, RHn x n for
 * hs-vectorised ones (n vectors across hs). */
#define NVQ 2
#define RQ 8
#define RH1 16
#define RH2 8
#define RH4 4

#elif defined(__AVX2__)
#define VL 8
typedef __m256 vf;
typedef __m256 vm;
VFN vf vload(const float *p) { return _mm256_loadu_ps(p); }
VFN void vstore(float *p, vf x) { _mm256_storeu_ps(p, x); }
VFN vf vset1(float x) { return _mm256_set1_ps(x); }
VFN vf vzero(void) { return _mm256_setzero_ps(); }
VFN vf vfma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
VFN vf vadd(vf a, vf b) { return _mm256_add_ps(a, b); }
VFN vf vsub(vf a, vf b) { return _mm256_sub_ps(a, b); }
VFN vf vmul(vf a, vf b) { return _mm256_mul_ps(a, b); }
VFN vf vmax(vf a, vf b) { return _mm256_max_ps(a, b); }
VFN vf vmin(vf a, vf b) { return _mm256_min_ps(a, b); }
VFN vm vgt(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
VFN vm vlt(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
VFN vf vsel(vm m, vf a, vf b) { return _mm256_blendv_ps(b, a, m); }
VFN vf vpow2i(vf n) {
  __m256i e = _mm256_add_epi32(_mm256_cvttps_epi32(n), _mm256_set1_epi32(127));
  return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
}
VFN vf vlanes(void) { return _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7); }
#define NVQ 2
#define RQ 4
#define RH1 8
#define RH2 4
#define RH4 2

#else
#define VL 1
typedef float vf;
typedef int vm;
VFN vf vload(const float *p) { return *p; }
VFN void vstore(float *p, vf x) { *p = x; }
VFN vf vset1(float x) { return x; }
VFN vf vzero(void) { return 0.0f; }
VFN vf vfma(vf a, vf b, vf c) { return fmaf(a, b, c); }
VFN vf vadd(vf a, vf b) { return a + b; }
VFN vf vsub(vf a, vf b) { return a - b; }
VFN vf vmul(vf a, vf b) { return a * b; }
VFN vf vmax(vf a, vf b) { return a > b ? a : b; }
VFN vf vmin(vf a, vf b) { return a < b ? a : b; }
VFN vm vgt(vf a, vf b) { return a > b; }
VFN vm vlt(vf a, vf b) { return a < b; }
VFN vf vsel(vm m, vf a, vf b) { return m ? a : b; }
VFN vf vlanes(void) { return 0.0f; }
#define NVQ 4
#define RQ 4
#define RH1 4
#define RH2 4
#define RH4 4
#endif

static inline vf vbcast(const float *p) { return vset1(*p); }

/*
 * exp on NX vectors at once, for the softmax: x <= 88 or NaN (it is a score
 * minus a value >= it). bt_expf_inline's operations in its order, so the same
 * bits there: the upper clamp's
 * select and the NaN select are dropped (a NaN already propagates through the
 * polynomial when the lower clamp keeps it, max(-87, x)), and the NX
 * independent chains are interleaved so the out-of-order window sees
 * parallel work instead of one long dependency chain.
 */
#define NX 4
#define ALWAYS_INLINE inline __attribute__((always_inline))
#if VL == 1
static ALWAYS_INLINE vf vexp_sm1(vf x) { return bt_expf_inline(x); }
static ALWAYS_INLINE void vexp_sm4(vf *y, const vf *x) {
  for (int i = 0; i < NX; i++)
    y[i] = bt_expf_inline(x[i]);
}
#else
#define EXP_STEP(expr) UNROLL for (int i = 0; i < NX; i++) { expr; }
static ALWAYS_INLINE void vexp_sm4(vf *y, const vf *x) {
  vf xc[NX], n[NX], r[NX], p[NX];
  EXP_STEP(xc[i] = vmin(vmax(vset1(-87.0f), x[i]), vset1(88.0f)))
  EXP_STEP(n[i] = vmul(xc[i], vset1(1.44269504088896341f)))
  EXP_STEP(n[i] = vsub(vadd(n[i], vset1(12582912.0f)), vset1(12582912.0f)))
  EXP_STEP(r[i] = vsub(xc[i], vmul(n[i], vset1(0.693145751953125f))))
  EXP_STEP(r[i] = vsub(r[i], vmul(n[i], vset1(1.42860682030941723e-6f))))
  EXP_STEP(p[i] = vadd(vmul(vset1(1.0f / 720.0f), r[i]), vset1(1.0f / 120.0f)))
  EXP_STEP(p[i] = vadd(vmul(p[i], r[i]), vset1(1.0f / 24.0f)))
  EXP_STEP(p[i] = vadd(vmul(p[i], r[i]), vset1(1.0f / 6.0f)))
  EXP_STEP(p[i] = vadd(vmul(p[i], r[i]), vset1(0.5f)))
  EXP_STEP(p[i] = vadd(vmul(p[i], r[i]), vset1(1.0f)))
  EXP_STEP(p[i] = vadd(vmul(p[i], r[i]), vset1(1.0f)))
  EXP_STEP(y[i] = vsel(vlt(x[i], vset1(-87.0f)), vzero(), vmul(p[i], vpow2i(n[i]))))
}
static ALWAYS_INLINE vf vexp_sm1(vf x) {
  vf xc = vmin(vmax(vset1(-87.0f), x), vset1(88.0f));
  vf n = vmul(xc, vset1(1.44269504088896341f));
  n = vsub(vadd(n, vset1(12582912.0f)), vset1(12582912.0f));
  vf r = vsub(xc, vmul(n, vset1(0.693145751953125f)));
  r = vsub(r, vmul(n, vset1(1.42860682030941723e-6f)));
  vf p = vadd(vmul(vset1(1.0f / 720.0f), r), vset1(1.0f / 120.0f));
  p = vadd(vmul(p, r), vset1(1.0f / 24.0f));
  p = vadd(vmul(p, r), vset1(1.0f / 6.0f));
  p = vadd(vmul(p, r), vset1(0.5f));
  p = vadd(vmul(p, r), vset1(1.0f));
  p = vadd(vmul(p, r), vset1(1.0f));
  return vsel(vlt(x, vset1(-87.0f)), vzero(), vmul(p, vpow2i(n)));
}
#endif

/* The bfloat16 path's exp: bt_expb_inline (kernels/bf16.h). */
#if VL == 1
static ALWAYS_INLINE vf vexpb_sm1(vf x) { return bt_expb_inline(x); }
#elif VL == 16
static ALWAYS_INLINE vf vexpb_sm1(vf x) { return bt_expb512(x); }
#else /* no bfloat16 path here; never called */
#define vexpb_sm1 vexp_sm1
#endif
static ALWAYS_INLINE void vexpb_sm4(vf *y, const vf *x) {
  UNROLL for (int i = 0; i < NX; i++)
    y[i] = vexpb_sm1(x[i]);
}
/* The softmax's exp: the bf16 path's (fx, a constant) or the float32 one. */
static ALWAYS_INLINE vf exp_sm1(const int fx, vf x) { return fx ? vexpb_sm1(x) : vexp_sm1(x); }
static ALWAYS_INLINE void exp_sm4(const int fx, vf *y, const vf *x) {
  if (fx)
    vexpb_sm4(y, x);
  else
    vexp_sm4(y, x);
}

/* ==================================================================== */
/* Microkernel                                                          */
/* ==================================================================== */

/*
 * Cm (R, NV*VL) = [Cm +] sum_{k<K} A[r*ars + k*aks] * Bm[k*ldb + 0..NV*VL-1]:
 * each output element is one FMA chain in increasing k, started from 0 or
 * from Cm's old value. A's elements are broadcast, Bm's rows loaded. If cmax
 * is given, cmax (NV*VL) = max(cmax, column maxima of Cm).
 */
#define DEF_MK(R, NV) DEF_MKG(mk, R, NV, float, vf, vload, vbcast, FMA_STEP)
#define FMA_STEP(c, a, b) vfma(a, b, c)
/* The same for other element types (the bf16 products below): the prefix
 * of the name, A's and Bm's element type T, Bm's vector type VB with its
 * load, A's broadcast, and the step c = STEP(c, a, b). */
#define DEF_MKG(P, R, NV, T, VB, LOADB, BCAST, STEP) DEF_MKG_(P, R, NV, T, VB, LOADB, BCAST, STEP)
#define DEF_MKG_(P, R, NV, T, VB, LOADB, BCAST, STEP) /* R etc. expanded before pasting */ \
  static inline void P##_##R##x##NV(int K, const T *A, ptrdiff_t ars, ptrdiff_t aks,    \
                                    const T *Bm, ptrdiff_t ldb, float *Cm,              \
                                    ptrdiff_t ldc, int acc, float *cmax) {              \
    vf c[R][NV];                                                               \
    UNROLL for (int r = 0; r < R; r++) UNROLL for (int v = 0; v < NV; v++)     \
        c[r][v] = acc ? vload(Cm + r * ldc + v * VL) : vzero();                \
    for (int k = 0; k < K; k++) {                                              \
      const T *bk = Bm + (ptrdiff_t)k * ldb;                                   \
      const T *ak = A + (ptrdiff_t)k * aks;                                    \
      VB b[NV];                                                                \
      UNROLL for (int v = 0; v < NV; v++) b[v] = LOADB(bk + v * VL);           \
      UNROLL for (int r = 0; r < R; r++) {                                     \
        VB a = BCAST(ak + r * ars);                                            \
        UNROLL for (int v = 0; v < NV; v++) c[r][v] = STEP(c[r][v], a, b[v]);  \
      }                                                                        \
    }                                                                          \
    UNROLL for (int r = 0; r < R; r++) UNROLL for (int v = 0; v < NV; v++)     \
        vstore(Cm + r * ldc + v * VL, c[r][v]);                                \
    if (cmax) /* column maxima, for the softmax */                             \
      UNROLL for (int v = 0; v < NV; v++) {                                    \
        vf mx = vload(cmax + v * VL);                                          \
        UNROLL for (int r = 0; r < R; r++) mx = vmax(mx, c[r][v]);             \
        vstore(cmax + v * VL, mx);                                             \
      }                                                                        \
  }

DEF_MK(RQ, NVQ)
DEF_MK(1, NVQ)
#if RH1 != RQ || NVQ != 1
DEF_MK(RH1, 1)
#endif
#if NVQ != 1
DEF_MK(1, 1)
#endif
#if RH2 != RQ || NVQ != 2
DEF_MK(RH2, 2)
#endif
#if NVQ != 2
DEF_MK(1, 2)
#endif
#if RH4 != RQ || NVQ != 4
DEF_MK(RH4, 4)
#endif
#if NVQ != 4
DEF_MK(1, 4)
#endif

#define MK(R, NV) MKN(mk, R, NV)

/* Query-vectorised product: Cm (nrows, CS) with CS = NVQ*VL columns, on
 * the microkernels named P. */
#define CS (NVQ * VL)
#define DEF_QGEMM(NAME, P, T)                                                   \
  static void NAME(int nrows, int K, const T *A, ptrdiff_t ars, ptrdiff_t aks,  \
                   const T *Bm, ptrdiff_t ldb, float *Cm, ptrdiff_t ldc, int acc, \
                   float *cmax) {                                               \
    int r = 0;                                                                  \
    for (; r + RQ <= nrows; r += RQ)                                            \
      MKN(P, RQ, NVQ)(K, A + r * ars, ars, aks, Bm, ldb, Cm + r * ldc, ldc, acc, cmax); \
    for (; r < nrows; r++)                                                      \
      MKN(P, 1, NVQ)(K, A + r * ars, ars, aks, Bm, ldb, Cm + r * ldc, ldc, acc, cmax); \
  }
#define MKN_(P, R, NV) P##_##R##x##NV
#define MKN(P, R, NV) MKN_(P, R, NV)
DEF_QGEMM(qgemm, mk, float)

/* Columns of an hs-vectorised product that the vectors do not cover. */
static void hgemm_tail(int nrows, int ncols, int K, const float *A, ptrdiff_t ars,
                       ptrdiff_t aks, const float *Bm, ptrdiff_t ldb, float *Cm,
                       ptrdiff_t ldc, int acc) {
  for (int r = 0; r < nrows; r++)
    for (int c = 0; c < ncols; c++) {
      float s = acc ? Cm[r * ldc + c] : 0.0f;
      for (int k = 0; k < K; k++)
        s = fmaf(A[r * ars + (ptrdiff_t)k * aks], Bm[(ptrdiff_t)k * ldb + c], s);
      Cm[r * ldc + c] = s;
    }
}

/* hs-vectorised product: Cm (nrows, hs). */
static void hgemm(int nrows, int hs, int K, const float *A, ptrdiff_t ars,
                  ptrdiff_t aks, const float *Bm, ptrdiff_t ldb, float *Cm,
                  ptrdiff_t ldc, int acc) {
  int nv = hs / VL, c = 0;
  if (nv % 4 == 0) {
    for (; c < nv * VL; c += 4 * VL) {
      int r = 0;
      for (; r + RH4 <= nrows; r += RH4)
        MK(RH4, 4)(K, A + r * ars, ars, aks, Bm + c, ldb, Cm + r * ldc + c, ldc, acc, NULL);
      for (; r < nrows; r++)
        MK(1, 4)(K, A + r * ars, ars, aks, Bm + c, ldb, Cm + r * ldc + c, ldc, acc, NULL);
    }
  } else if (nv % 2 == 0) {
    for (; c < nv * VL; c += 2 * VL) {
      int r = 0;
      for (; r + RH2 <= nrows; r += RH2)
        MK(RH2, 2)(K, A + r * ars, ars, aks, Bm + c, ldb, Cm + r * ldc + c, ldc, acc, NULL);
      for (; r < nrows; r++)
        MK(1, 2)(K, A + r * ars, ars, aks, Bm + c, ldb, Cm + r * ldc + c, ldc, acc, NULL);
    }
  } else {
    for (; c < nv * VL; c += VL) {
      int r = 0;
      for (; r + RH1 <= nrows; r += RH1)
        MK(RH1, 1)(K, A + r * ars, ars, aks, Bm + c, ldb, Cm + r * ldc + c, ldc, acc, NULL);
      for (; r < nrows; r++)
        MK(1, 1)(K, A + r * ars, ars, aks, Bm + c, ldb, Cm + r * ldc + c, ldc, acc, NULL);
    }
  }
  if (c < hs)
    hgemm_tail(nrows, hs - c, K, A, ars, aks, Bm + c, ldb, Cm + c, ldc, acc);
}

/* dst (n, hs) = the n rows of src (stride ld). K and V of a (b,h) are packed
 * once: qkv's row stride (3C floats, a multiple of 768 bytes) would map a
 * tile's rows onto a few L1 sets. */
static void pack_rows(float *dst, const float *src, ptrdiff_t ld, int n, int hs) {
  for (int j = 0; j < n; j++) {
    const float *s = src + j * ld;
    float *d = dst + (ptrdiff_t)j * hs;
    int c = 0;
    for (; c + VL <= hs; c += VL)
      vstore(d + c, vload(s + c));
    for (; c < hs; c++)
      d[c] = s[c];
  }
}

/*
 * S^T (nk, ncq) = A (nk keys, hs) . X^T, with X^T (hs, BQ) the packed query
 * side; A's rows have stride lda. On the diagonal tile (key j0 = query i0)
 * micro-tiles whose keys all come after all their queries are skipped: they
 * stay unwritten and the softmax step never reads them. cmax (ncq), if given
 * (off the diagonal: no masking), gets the column maxima.
 */
static void scores_t(float *ST, const float *A, ptrdiff_t lda, const float *XT,
                     int nk, int ncq, int hs, int diag, float *cmax) {
  for (int c0 = 0; c0 < ncq; c0 += CS) {
    int rows = nk;
    if (diag && rows > c0 + CS)
      rows = c0 + CS; /* keys jj >= c0 + CS are masked for these queries */
    qgemm(rows, hs, A, lda, 1, XT + c0, BQ, ST + c0, BQ, 0, cmax ? cmax + c0 : NULL);
  }
}

/* ==================================================================== */
/* Scratch                                                              */
/* ==================================================================== */

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

/* One block for nt threads, 64-byte aligned and zeroed; NULL if out of memory. */
static float *scratch_alloc(int nt, size_t per_thread) {
  size_t bytes = (size_t)nt * per_thread * sizeof(float);
  float *p = bt_scratch(1, bytes); /* kept per thread: no page faults per call */
  if (p)
    memset(p, 0, bytes);
  return p;
}

/* NAME PARAMS: BODY(ARGS, hs) with hs = C / H, through a copy of BODY
 * inlined whole (flatten) for head size 16 (the 200K's) and 32 (the 800K's
 * and the 3.2M's), whose strides and trip counts are then constants
 * (docs/measurements.md). */
#define DEF_HS_COPIES(NAME, BODY, PARAMS, ...)                                   \
  __attribute__((flatten)) static void NAME##16 PARAMS { BODY(__VA_ARGS__, 16); } \
  __attribute__((flatten)) static void NAME##32 PARAMS { BODY(__VA_ARGS__, 32); } \
  static void NAME PARAMS {                                                      \
    if (C / H == 16)                                                             \
      NAME##16(__VA_ARGS__);                                                     \
    else if (C / H == 32)                                                        \
      NAME##32(__VA_ARGS__);                                                     \
    else                                                                         \
      BODY(__VA_ARGS__, C / H);                                                  \
  }

/* The forward's tasks, (head bh of a sequence, query block qb), inside a
 * parallel region of nt threads, the longest blocks (last queries) of a head
 * first. With at least 4 heads a thread, a thread takes whole heads, so it
 * packs a head's K and V once: taken block by block, each thread packed
 * every head. With fewer, block by block, for balance. Who does which changes no bits. */
#define FWD_TASKS(nbh, nqb, nt, CALL)                                           \
  do {                                                                          \
    if ((nbh) >= 4L * (nt)) {                                                   \
      _Pragma("omp for schedule(dynamic, 1)")                                   \
      for (long bh = 0; bh < (nbh); bh++)                                       \
        for (int qb = (nqb) - 1; qb >= 0; qb--)                                 \
          CALL;                                                                 \
    } else {                                                                    \
      _Pragma("omp for schedule(dynamic, 1)")                                   \
      for (long t_ = 0; t_ < (nbh) * (nqb); t_++) {                             \
        const long bh = t_ / (nqb);                                             \
        const int qb = (nqb) - 1 - (int)(t_ % (nqb));                           \
        CALL;                                                                   \
      }                                                                         \
    }                                                                           \
  } while (0)

static int pick_threads(long ntasks) {
  int nt = omp_get_max_threads();
  if (nt > ntasks)
    nt = (int)ntasks;
  return nt < 1 ? 1 : nt;
}

/* ==================================================================== */
/* Forward                                                              */
/* ==================================================================== */

/* Online-softmax step for one key tile: turns S^T (nk, ncq) into P^T in place
 * with P = exp(S - m_new), masked entries 0, and updates m, l and O^T. tmax:
 * the tile's column maxima if known (max is exact: any order, same bits). */
static ALWAYS_INLINE void fwd_softmax_body(float *ST, int nk, int ncq, int diag,
                                           const float *tmax, float *m, float *l, float *OT,
                                           int hs, const int fx) {
  const vf lanes = vlanes(), ninf = vset1(-__builtin_inff());
  for (int c = 0; c < ncq; c += VL) {
    int jmax = diag && nk > c + VL ? c + VL : nk; /* later keys: all masked */
    vf mt = ninf;
    if (tmax) { /* from the score kernel */
      mt = vload(tmax + c);
    } else {
      for (int jj = 0; jj < jmax; jj++) {
        vf s = vload(ST + jj * BQ + c);
        if (diag)
          s = vsel(vgt(vset1((float)(jj - c)), lanes), ninf, s);
        mt = vmax(mt, s);
      }
    }
    vf mo = vload(m + c), mn = vmax(mo, mt);
    vf alpha = exp_sm1(fx, vsub(mo, mn)); /* 0 on the first tile (m = -inf) */
    vf lt = vzero();
    int jj = 0;
    for (; jj + NX <= jmax; jj += NX) {
      vf x[NX], p[NX];
      UNROLL for (int i = 0; i < NX; i++) {
        vf s = vload(ST + (jj + i) * BQ + c);
        if (diag)
          s = vsel(vgt(vset1((float)(jj + i - c)), lanes), ninf, s);
        x[i] = vsub(s, mn);
      }
      exp_sm4(fx, p, x);
      UNROLL for (int i = 0; i < NX; i++) {
        vstore(ST + (jj + i) * BQ + c, p[i]);
        lt = vadd(lt, p[i]);
      }
    }
    for (; jj < jmax; jj++) {
      vf s = vload(ST + jj * BQ + c);
      if (diag)
        s = vsel(vgt(vset1((float)(jj - c)), lanes), ninf, s);
      vf p = exp_sm1(fx, vsub(s, mn));
      vstore(ST + jj * BQ + c, p);
      lt = vadd(lt, p);
    }
    for (int jj = jmax; jj < nk; jj++)
      vstore(ST + jj * BQ + c, vzero());
    vstore(l + c, vadd(vmul(vload(l + c), alpha), lt));
    vstore(m + c, mn);
    for (int d = 0; d < hs; d++)
      vstore(OT + d * BQ + c, vmul(vload(OT + d * BQ + c), alpha));
  }
}

static void fwd_softmax_tile(float *ST, int nk, int ncq, int diag, const float *tmax, float *m,
                             float *l, float *OT, int hs) {
  fwd_softmax_body(ST, nk, ncq, diag, tmax, m, l, OT, hs, 0);
}

/* A thread's packed K and V (T, hs) of one (b,h), filled as far as needed. */
typedef struct {
  long bh;  /* which pair, -1: none */
  int n;    /* rows packed so far */
  float *k, *v;
} kv_cache;

/* The online softmax's start: m = -inf, l = 0, O^T = 0. */
static void fwd_begin(float *m, float *l, float *OT, int hs) {
  for (int r = 0; r < BQ; r++) {
    m[r] = -__builtin_inff();
    l[r] = 0.0f;
  }
  memset(OT, 0, sizeof(float) * hs * BQ);
}

/* The block's output rows (stride ldo) O = O^T / l and their lse = m + ln l. */
static void fwd_out(float *o, ptrdiff_t ldo, float *lse, const float *OT, const float *m,
                    const float *l, int nr, int hs) {
  for (int r = 0; r < nr; r++) {
    for (int d = 0; d < hs; d++)
      o[r * ldo + d] = OT[d * BQ + r] / l[r];
    lse[r] = m[r] + (float)bt_ln_pos_d((double)l[r]);
  }
}

static ALWAYS_INLINE void fwd_body(float *out, float *lse, const float *qkv, int T, int C,
                                   int H, int b, int h, int qb, float *scr, kv_cache *kv,
                                   const int hs) {
  const ptrdiff_t ld = 3 * (ptrdiff_t)C;
  const float scale = 1.0f / sqrtf((float)hs);
  const float *q = qkv + (ptrdiff_t)b * T * ld + h * hs, *k = q + C, *v = q + 2 * C;
  float *QsT = scr, *ST = QsT + hs * BQ, *OT = ST + BK * BQ, *m = OT + hs * BQ,
        *l = m + BQ, *mtile = l + BQ;
  const int i0 = qb * BQ, nr = T - i0 < BQ ? T - i0 : BQ, iend = i0 + nr;
  const int ncq = (nr + CS - 1) / CS * CS;

  const long bh = (long)b * H + h;
  if (kv->bh != bh) {
    kv->bh = bh;
    kv->n = 0;
  }
  if (kv->n < iend) {
    pack_rows(kv->k + (ptrdiff_t)kv->n * hs, k + kv->n * ld, ld, iend - kv->n, hs);
    pack_rows(kv->v + (ptrdiff_t)kv->n * hs, v + kv->n * ld, ld, iend - kv->n, hs);
    kv->n = iend;
  }
  for (int d = 0; d < hs; d++)
    for (int r = 0; r < BQ; r++)
      QsT[d * BQ + r] = r < nr ? q[(i0 + r) * ld + d] * scale : 0.0f;
  fwd_begin(m, l, OT, hs);

  for (int j0 = 0; j0 < iend; j0 += BK) {
    const int nk = iend - j0 < BK ? iend - j0 : BK, diag = j0 == i0;
    const float *kp = kv->k + (ptrdiff_t)j0 * hs, *vp = kv->v + (ptrdiff_t)j0 * hs;
    float *mt = diag ? NULL : mtile;
    if (mt)
      for (int c = 0; c < ncq; c++)
        mt[c] = -__builtin_inff();
    scores_t(ST, kp, hs, QsT, nk, ncq, hs, diag, mt);
    fwd_softmax_tile(ST, nk, ncq, diag, mt, m, l, OT, hs);
    /* O^T (hs, BQ) += V^T (hs, nk) P^T (nk, BQ) */
    for (int c0 = 0; c0 < ncq; c0 += CS) {
      int kk = diag && nk > c0 + CS ? c0 + CS : nk;
      qgemm(hs, kk, vp, 1, hs, ST + c0, BQ, OT + c0, BQ, 1, NULL);
    }
  }
  fwd_out(out + ((ptrdiff_t)b * T + i0) * C + h * hs, C, lse + ((ptrdiff_t)b * H + h) * T + i0,
          OT, m, l, nr, hs);
}

DEF_HS_COPIES(fwd_block, fwd_body,
              (float *out, float *lse, const float *qkv, int T, int C, int H, int b, int h, int qb,
               float *scr, kv_cache *kv),
              out, lse, qkv, T, C, H, b, h, qb, scr, kv)

int BT_ISA_FN(bt_attention_forward_impl)(float *out, float *lse, const float *qkv,
                                          int B, int T, int C, int H) {
  if (B <= 0 || T <= 0)
    return 0;
  const int hs = C / H, nqb = (T + BQ - 1) / BQ;
  const long ntask = (long)B * H * nqb;
  const int nt = pick_threads(ntask);
  const size_t kvn = round16((size_t)T * hs);
  const size_t per = round16((size_t)hs * BQ * 2 + BK * BQ + 3 * BQ) + 2 * kvn;
  float *scr = scratch_alloc(nt, per);
  if (!scr)
    return -1;
#pragma omp parallel num_threads(nt)
  {
    float *my = scr + (size_t)omp_get_thread_num() * per;
    kv_cache kv = {-1, 0, my + per - 2 * kvn, my + per - kvn};
    FWD_TASKS((long)B * H, nqb, nt,
              fwd_block(out, lse, qkv, T, C, H, (int)(bh / H), (int)(bh % H), qb, my, &kv));
  }
  return 0;
}

/* ==================================================================== */
/* Backward                                                             */
/* ==================================================================== */

/* Stores P and dS = P (dP - D); masked entries get P = 0 and dS = +0 (not
 * 0 * (dP - D), whose sign varies). */
static ALWAYS_INLINE void bwd_ds_store(float *sp, float *dpp, vf p, vf dv, int diag,
                                       int rel, vf lanes) {
  vf ds = vmul(p, vsub(vload(dpp), dv));
  if (diag)
    ds = vsel(vgt(vset1((float)rel), lanes), vzero(), ds);
  vstore(sp, p);
  vstore(dpp, ds);
}

/* P = exp(S - lse) and dS = P (dP - D) for one tile, in place in S^T, dP^T;
 * masked entries 0. */
static ALWAYS_INLINE void bwd_softmax_body(float *ST, float *dPT, int nk, int ncq, int diag,
                                           const float *L, const float *D, const int fx) {
  const vf lanes = vlanes(), ninf = vset1(-__builtin_inff()), zero = vzero();
  for (int c = 0; c < ncq; c += VL) {
    int jmax = diag && nk > c + VL ? c + VL : nk;
    vf lv = vload(L + c), dv = vload(D + c);
    int jj = 0;
    for (; jj + NX <= jmax; jj += NX) {
      vf x[NX], p[NX];
      UNROLL for (int i = 0; i < NX; i++) {
        vf s = vload(ST + (jj + i) * BQ + c);
        if (diag)
          s = vsel(vgt(vset1((float)(jj + i - c)), lanes), ninf, s);
        x[i] = vsub(s, lv);
      }
      exp_sm4(fx, p, x);
      UNROLL for (int i = 0; i < NX; i++)
        bwd_ds_store(ST + (jj + i) * BQ + c, dPT + (jj + i) * BQ + c, p[i], dv, diag,
                     jj + i - c, lanes);
    }
    for (; jj < jmax; jj++) {
      vf s = vload(ST + jj * BQ + c);
      if (diag)
        s = vsel(vgt(vset1((float)(jj - c)), lanes), ninf, s);
      bwd_ds_store(ST + jj * BQ + c, dPT + jj * BQ + c, exp_sm1(fx, vsub(s, lv)), dv,
                   diag, jj - c, lanes);
    }
    for (int jj = jmax; jj < nk; jj++) {
      vstore(ST + jj * BQ + c, zero);
      vstore(dPT + jj * BQ + c, zero);
    }
  }
}

static void bwd_softmax_tile(float *ST, float *dPT, int nk, int ncq, int diag, const float *L,
                             const float *D) {
  bwd_softmax_body(ST, dPT, nk, ncq, diag, L, D, 0);
}

/* The gradients' adds into dqkv, a row of hs floats every ld (3C): they
 * read lines no one has touched in a while, so the rows are fetched ahead
 * (prefetch_rows; the adds waited on them) and
 * added a vector at a time (the same adds as one at a time). */
static void prefetch_rows(const float *x, ptrdiff_t ld, int n, int hs) {
  for (int r = 0; r < n; r++)
    for (int d = 0; d < hs; d += 16)
      __builtin_prefetch(x + r * ld + d, 1);
}
/* dq's nr rows += scale dQT^T, dQT (hs, BQ) */
static void add_dq(float *dq, ptrdiff_t ld, const float *dQT, int nr, int hs, float scale) {
  for (int r = 0; r < nr; r++) {
    float *row = dq + r * ld;
    int d = 0;
#if VL > 1
    for (; d + VL <= hs; d += VL) {
      float t[VL];
      for (int l = 0; l < VL; l++)
        t[l] = dQT[(d + l) * BQ + r];
      vstore(row + d, vadd(vload(row + d), vmul(vset1(scale), vload(t))));
    }
#endif
    for (; d < hs; d++)
      row[d] += scale * dQT[d * BQ + r];
  }
}
/* dk's and dv's T rows += dka, dva (T, hs) */
#define ADD_AHEAD 8 /* rows */
static void add_dkdv(float *dk, float *dv, ptrdiff_t ld, const float *dka, const float *dva, int T,
                     int hs) {
  for (int j = 0; j < T; j++) {
    if (j + ADD_AHEAD < T) {
      prefetch_rows(dk + (j + ADD_AHEAD) * ld, ld, 1, hs);
      prefetch_rows(dv + (j + ADD_AHEAD) * ld, ld, 1, hs);
    }
    float *k = dk + j * ld, *v = dv + j * ld;
    const float *ka = dka + (ptrdiff_t)j * hs, *va = dva + (ptrdiff_t)j * hs;
    int d = 0;
#if VL > 1
    for (; d + VL <= hs; d += VL) {
      vstore(k + d, vadd(vload(k + d), vload(ka + d)));
      vstore(v + d, vadd(vload(v + d), vload(va + d)));
    }
#endif
    for (; d < hs; d++) {
      k[d] += ka[d];
      v[d] += va[d];
    }
  }
}

static ALWAYS_INLINE void bwd_body(float *dqkv, const float *dout, const float *qkv,
                                   const float *out, const float *lse, int T, int C, int H,
                                   int b, int h, float *scr, const int hs) {
  const ptrdiff_t ld = 3 * (ptrdiff_t)C;
  const float scale = 1.0f / sqrtf((float)hs);
  const ptrdiff_t row0 = (ptrdiff_t)b * T;
  const float *q = qkv + row0 * ld + h * hs, *k = q + C, *v = q + 2 * C;
  float *dq = dqkv + row0 * ld + h * hs, *dk = dq + C, *dv = dq + 2 * C;
  const float *o = out + row0 * C + h * hs, *dO = dout + row0 * C + h * hs;
  const float *lrow = lse + ((ptrdiff_t)b * H + h) * T;
  float *QsT = scr, *Qs = QsT + hs * BQ, *dOT = Qs + hs * BQ, *dOr = dOT + hs * BQ;
  float *dQT = dOr + hs * BQ, *ST = dQT + hs * BQ, *dPT = ST + BK * BQ;
  float *L = dPT + BK * BQ, *D = L + BQ;
  const size_t th = round16((size_t)T * hs);
  float *kpk = D + BQ, *vpk = kpk + th, *dka = vpk + th, *dva = dka + th;

  /* K, V packed (T, hs); dK, dV accumulate packed too and are added to dqkv
   * at the end. */
  pack_rows(kpk, k, ld, T, hs);
  pack_rows(vpk, v, ld, T, hs);
  memset(dka, 0, sizeof(float) * 2 * th);

  for (int i0 = 0; i0 < T; i0 += BQ) {
    const int nr = T - i0 < BQ ? T - i0 : BQ, iend = i0 + nr;
    const int ncq = (nr + CS - 1) / CS * CS;
    /* Pack the block: Qs = q / sqrt(hs) and dO, both ways round; padding
     * rows are zero and get lse = +inf, so their P is exactly 0. */
    for (int r = 0; r < BQ; r++) {
      float dsum = 0.0f;
      if (r < nr) {
        const float *qi = q + (i0 + r) * ld, *gi = dO + (ptrdiff_t)(i0 + r) * C,
                    *oi = o + (ptrdiff_t)(i0 + r) * C;
        for (int d = 0; d < hs; d++) {
          float qs = qi[d] * scale;
          QsT[d * BQ + r] = Qs[r * hs + d] = qs;
          dOT[d * BQ + r] = dOr[r * hs + d] = gi[d];
          dsum = fmaf(gi[d], oi[d], dsum);
        }
      } else {
        for (int d = 0; d < hs; d++)
          QsT[d * BQ + r] = Qs[r * hs + d] = dOT[d * BQ + r] = dOr[r * hs + d] = 0.0f;
      }
      D[r] = dsum;
      L[r] = r < nr ? lrow[i0 + r] : __builtin_inff();
    }
    memset(dQT, 0, sizeof(float) * hs * BQ);
    prefetch_rows(dq + i0 * ld, ld, nr, hs); /* for add_dq, after the key tiles */

    for (int j0 = 0; j0 < iend; j0 += BK) {
      const int nk = iend - j0 < BK ? iend - j0 : BK, diag = j0 == i0;
      const float *kp = kpk + (ptrdiff_t)j0 * hs, *vp = vpk + (ptrdiff_t)j0 * hs;
      scores_t(ST, kp, hs, QsT, nk, ncq, hs, diag, NULL);  /* S^T */
      scores_t(dPT, vp, hs, dOT, nk, ncq, hs, diag, NULL); /* dP^T = V dO^T */
      bwd_softmax_tile(ST, dPT, nk, ncq, diag, L, D);
      /* dQ^T (hs, BQ) += K^T (hs, nk) dS^T (nk, BQ), scaled at the end */
      for (int c0 = 0; c0 < ncq; c0 += CS) {
        int kk = diag && nk > c0 + CS ? c0 + CS : nk;
        qgemm(hs, kk, kp, 1, hs, dPT + c0, BQ, dQT + c0, BQ, 1, NULL);
      }
      /* dK (nk, hs) += dS^T Qs, dV (nk, hs) += P^T dO. On the diagonal, key
       * group g0.. only meets queries from g0 on (a fixed 16-key granularity,
       * the same on every path, so the FMA chains are too). */
      for (int g0 = 0; g0 < nk; g0 += 16) {
        int rows = nk - g0 < 16 ? nk - g0 : 16, lo = diag ? g0 : 0;
        hgemm(rows, hs, nr - lo, dPT + g0 * BQ + lo, BQ, 1, Qs + lo * hs, hs,
              dka + (ptrdiff_t)(j0 + g0) * hs, hs, 1);
        hgemm(rows, hs, nr - lo, ST + g0 * BQ + lo, BQ, 1, dOr + lo * hs, hs,
              dva + (ptrdiff_t)(j0 + g0) * hs, hs, 1);
      }
    }
    add_dq(dq + i0 * ld, ld, dQT, nr, hs, scale);
  }
  add_dkdv(dk, dv, ld, dka, dva, T, hs);
}

DEF_HS_COPIES(bwd_head, bwd_body,
              (float *dqkv, const float *dout, const float *qkv, const float *out,
               const float *lse, int T, int C, int H, int b, int h, float *scr),
              dqkv, dout, qkv, out, lse, T, C, H, b, h, scr)

typedef void (*bwd_head_fn)(float *dqkv, const float *dout, const float *qkv, const float *out,
                            const float *lse, int T, int C, int H, int b, int h, float *scr);

/* The backward's tasks, (b, h) pairs, over the threads; per: a thread's
 * scratch in floats. */
static int bwd_run(bwd_head_fn head, size_t per, float *dqkv, const float *dout,
                   const float *qkv, const float *out, const float *lse, int B, int T, int C,
                   int H) {
  if (B <= 0 || T <= 0)
    return 0;
  const long ntask = (long)B * H;
  const int nt = pick_threads(ntask);
  float *scr = scratch_alloc(nt, per);
  if (!scr)
    return -1;
#pragma omp parallel num_threads(nt)
  {
    float *my = scr + (size_t)omp_get_thread_num() * per;
#pragma omp for schedule(dynamic, 1)
    for (long t = 0; t < ntask; t++)
      head(dqkv, dout, qkv, out, lse, T, C, H, (int)(t / H), (int)(t % H), my);
  }
  return 0;
}

int BT_ISA_FN(bt_attention_backward_impl)(float *dqkv, const float *dout,
                                           const float *qkv, const float *out,
                                           const float *lse, int B, int T, int C,
                                           int H) {
  const int hs = H > 0 ? C / H : 0;
  const size_t per = round16((size_t)hs * BQ * 5 + BK * BQ * 2 + 2 * BQ) + 4 * round16((size_t)T * hs);
  return bwd_run(bwd_head, per, dqkv, dout, qkv, out, lse, B, T, C, H);
}

/* ==================================================================== */
/* bfloat16 products (bt-train --precision bf16)                        */
/* ==================================================================== */

/*
 * The same blocks, tiles, softmax and order as above, with every product's
 * inputs rounded to bfloat16 and taken in pairs, each pair doing what
 * AVX512_BF16's vdpbf16ps does (kernels/bf16.h, bt_bf16_dp_inline), the
 * accumulators and the softmax in float32. Rounding is vcvtneps2bf16's
 * (bt_f32_to_bf16_ne_inline). A pair is a uint32 (member 0 in the low half),
 * and the operands are laid out so that a vector holds 16 pairs:
 *   S^T = K Qs^T, dP^T = V dO^T:  K, V rows in pairs over hs (T, hsp);
 *                                 Qs, dO in pairs over hs by queries (hsp, BQ);
 *   O^T += V^T P^T, dQ^T += K^T dS^T:  V, K in pairs of keys (hs, T/2);
 *                                 P^T, dS^T in pairs of keys (BK/2, BQ);
 *   dK += dS^T Qs, dV += P^T dO:  dS^T, P^T rows in pairs of queries;
 *                                 Qs, dO in pairs of queries (BQ/2, hs).
 * A missing pair member (hs odd, a last key, a last query) is +0. Every
 * output element is one chain over its pairs in order, on every thread count;
 * the avx512 path (vdpbf16ps) and the scalar one (the same arithmetic in C,
 * the reference) give the same bits. The avx2 path has no such instruction
 * and none of this: kernels/attention.c runs the scalar one there.
 */
#if VL == 1 || (VL == 16 && defined(__AVX512BF16__))

VFN uint32_t bpair(float lo, float hi) {
  return (uint32_t)bt_f32_to_bf16_ne_inline(lo) | (uint32_t)bt_f32_to_bf16_ne_inline(hi) << 16;
}

#if VL == 16
typedef __m512i vp; /* 16 pairs */
VFN vp vpload(const uint32_t *p) { return _mm512_loadu_si512(p); }
VFN vp vpbcast(const uint32_t *p) { return _mm512_set1_epi32((int)*p); }
VFN vf vdp(vf acc, vp a, vp b) { return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b); }
/* 16 pairs (a[i], b[i]) of two vectors of floats, rounded */
static inline __m512i zip_pairs(__m512 a, __m512 b) {
  const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                       23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(b, a));
}
/* dst[c] = (r0[c], r1[c]) for c < n, a multiple of 16 */
static void pair_rows(uint32_t *dst, const float *r0, const float *r1, int n) {
  for (int c = 0; c < n; c += 16)
    _mm512_storeu_si512(dst + c, zip_pairs(_mm512_loadu_ps(r0 + c), _mm512_loadu_ps(r1 + c)));
}
/* dst[p] = (x[2p], x[2p+1]) for p < np, a multiple of 16 */
static void pair_row(uint32_t *dst, const float *x, int np) {
  for (int p = 0; p < np; p += 16)
    _mm512_storeu_si512(dst + p, (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + 2 * p + 16),
                                                              _mm512_loadu_ps(x + 2 * p)));
}
#else
typedef uint32_t vp;
VFN vp vpload(const uint32_t *p) { return *p; }
VFN vp vpbcast(const uint32_t *p) { return *p; }
VFN vf vdp(vf acc, vp a, vp b) { return bt_bf16_dp_inline(acc, a, b); }
static void pair_rows(uint32_t *dst, const float *r0, const float *r1, int n) {
  for (int c = 0; c < n; c++)
    dst[c] = bpair(r0[c], r1[c]);
}
static void pair_row(uint32_t *dst, const float *x, int np) {
  for (int p = 0; p < np; p++)
    dst[p] = bpair(x[2 * p], x[2 * p + 1]);
}
#endif

/* D[r] = sum_d g[r][d] o[r][d] for r < nr, one fmaf chain a row in d order
 * (the float32 backward's), four rows' chains interleaved; +0 up to BQ. */
static void row_dots(float *D, const float *g, const float *o, ptrdiff_t ld, int nr, int hs) {
  int r = 0;
  for (; r + 4 <= nr; r += 4) {
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    const float *g0 = g + r * ld, *o0 = o + r * ld;
    for (int d = 0; d < hs; d++) {
      s0 = fmaf(g0[d], o0[d], s0);
      s1 = fmaf(g0[ld + d], o0[ld + d], s1);
      s2 = fmaf(g0[2 * ld + d], o0[2 * ld + d], s2);
      s3 = fmaf(g0[3 * ld + d], o0[3 * ld + d], s3);
    }
    D[r] = s0, D[r + 1] = s1, D[r + 2] = s2, D[r + 3] = s3;
  }
  for (; r < BQ; r++) {
    float s0 = 0.0f;
    if (r < nr)
      for (int d = 0; d < hs; d++)
        s0 = fmaf(g[r * ld + d], o[r * ld + d], s0);
    D[r] = s0;
  }
}

/* mk_*'s shapes over pairs: Cm (R, NV*VL) [+]= sum_{k<K pairs} A[r*ars +
 * k*aks] . Bm[k*ldb + ..] */
#define DEF_MKB(R, NV) DEF_MKG(mkb, R, NV, uint32_t, vp, vpload, vpbcast, vdp)
DEF_MKB(RQ, NVQ)
DEF_MKB(1, NVQ)
#if RH1 != RQ || NVQ != 1
DEF_MKB(RH1, 1)
#endif
#if NVQ != 1
DEF_MKB(1, 1)
#endif
#if RH2 != RQ || NVQ != 2
DEF_MKB(RH2, 2)
#endif
#if NVQ != 2
DEF_MKB(1, 2)
#endif

#define MKB(R, NV) MKN(mkb, R, NV)

DEF_QGEMM(qgemm_b, mkb, uint32_t)

/* hs-vectorised: Cm (nrows, hs); columns past the vectors one at a time. */
static void hgemm_b(int nrows, int hs, int K, const uint32_t *A, ptrdiff_t ars,
                    ptrdiff_t aks, const uint32_t *Bm, ptrdiff_t ldb, float *Cm,
                    ptrdiff_t ldc, int acc) {
  int c = 0;
  for (; c + 2 * VL <= hs; c += 2 * VL) {
    int r = 0;
    for (; r + RH2 <= nrows; r += RH2)
      MKB(RH2, 2)(K, A + r * ars, ars, aks, Bm + c, ldb, Cm + r * ldc + c, ldc, acc, NULL);
    for (; r < nrows; r++)
      MKB(1, 2)(K, A + r * ars, ars, aks, Bm + c, ldb, Cm + r * ldc + c, ldc, acc, NULL);
  }
  for (; c + VL <= hs; c += VL) {
    int r = 0;
    for (; r + RH1 <= nrows; r += RH1)
      MKB(RH1, 1)(K, A + r * ars, ars, aks, Bm + c, ldb, Cm + r * ldc + c, ldc, acc, NULL);
    for (; r < nrows; r++)
      MKB(1, 1)(K, A + r * ars, ars, aks, Bm + c, ldb, Cm + r * ldc + c, ldc, acc, NULL);
  }
  for (int r = 0; r < nrows; r++)
    for (int cc = c; cc < hs; cc++) {
      float s = acc ? Cm[r * ldc + cc] : 0.0f;
      for (int k = 0; k < K; k++)
        s = bt_bf16_dp_inline(s, A[r * ars + (ptrdiff_t)k * aks], Bm[(ptrdiff_t)k * ldb + cc]);
      Cm[r * ldc + cc] = s;
    }
}

/* scores_t over pairs: S^T (nk, ncq) = A (nk keys, hsp pairs) . X (hsp, BQ). */
static void scores_tb(float *ST, const uint32_t *A, int nk, int ncq, int hsp,
                      const uint32_t *X, int diag, float *cmax) {
  for (int c0 = 0; c0 < ncq; c0 += CS) {
    int rows = nk;
    if (diag && rows > c0 + CS)
      rows = c0 + CS;
    qgemm_b(rows, hsp, A, hsp, 1, X + c0, BQ, ST + c0, BQ, 0, cmax ? cmax + c0 : NULL);
  }
}

/* Packing. dst (n, hsp): rows of src (stride ld, hs floats) in pairs over hs,
 * times s. dst (hs, np): the n rows of src transposed, in pairs of rows,
 * np = (n + 1) / 2. X (hsp, BQ): a block's nr rows of src times s, in pairs
 * over hs by query; Xq (BQ/2, hs): the same in pairs of queries. Missing
 * members and padding +0. The avx512 versions convert 16 pairs at a time
 * (products by s and the rounding are the same operations). */
#if VL == 16
static inline __mmask16 lanes16(int n) {
  return n >= 16 ? (__mmask16)0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1);
}
/* 16 pairs (x[2i] s, x[2i+1] s) of x[0..n) */
static inline __m512i pairs_of(const float *x, int n, float s) {
  const __m512 vs = _mm512_set1_ps(s);
  const __m512 a = _mm512_mul_ps(_mm512_maskz_loadu_ps(lanes16(n), x), vs);
  const __m512 b = _mm512_mul_ps(_mm512_maskz_loadu_ps(lanes16(n - 16), x + 16), vs);
  return (__m512i)_mm512_cvtne2ps_pbh(b, a);
}
/* 16 pairs (r0[d] s, r1[d] s) for d < n; a NULL row is +0 */
static inline __m512i pairs_across(const float *r0, const float *r1, int n, float s) {
  const __m512 vs = _mm512_set1_ps(s);
  const __m512 a = r0 ? _mm512_mul_ps(_mm512_maskz_loadu_ps(lanes16(n), r0), vs) : _mm512_setzero_ps();
  const __m512 b = r1 ? _mm512_mul_ps(_mm512_maskz_loadu_ps(lanes16(n), r1), vs) : _mm512_setzero_ps();
  return zip_pairs(a, b);
}
/* Rows of qkv are 3C floats apart, and a head's few floats of each take a
 * line or two: fetch them PF rows ahead, or the packing waits on memory. */
#define PF 8
static inline void prefetch_row(const float *x, int n) {
  for (int i = 0; i < n; i += 16)
    _mm_prefetch((const char *)(x + i), _MM_HINT_T0);
}
static void pack_hpairs(uint32_t *dst, const float *src, ptrdiff_t ld, int n, int hs, float s) {
  const int hsp = (hs + 1) / 2;
  for (int j = 0; j < n; j++) {
    if (j + PF < n)
      prefetch_row(src + (j + PF) * ld, hs);
    for (int p0 = 0; p0 < hsp; p0 += 16)
      _mm512_mask_storeu_epi32(dst + (ptrdiff_t)j * hsp + p0, lanes16(hsp - p0),
                               pairs_of(src + j * ld + 2 * p0, hs - 2 * p0, s));
  }
}
static void pack_kpairs(uint32_t *dst, const float *src, ptrdiff_t ld, int n, int hs) {
  const int np = (n + 1) / 2;
  const __m512i idx = _mm512_mullo_epi32(
      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(np));
  for (int jp = 0; jp < np; jp++) {
    const float *r0 = src + 2 * jp * ld, *r1 = 2 * jp + 1 < n ? r0 + ld : NULL;
    if (2 * jp + PF + 1 < n) {
      prefetch_row(r0 + PF * ld, hs);
      prefetch_row(r0 + (PF + 1) * ld, hs);
    }
    for (int d0 = 0; d0 < hs; d0 += 16)
      _mm512_mask_i32scatter_epi32(dst + (ptrdiff_t)d0 * np + jp, lanes16(hs - d0), idx,
                                   pairs_across(r0 + d0, r1 ? r1 + d0 : NULL, hs - d0, 1.0f), 4);
  }
}
static void pack_block(uint32_t *X, uint32_t *Xq, const float *src, ptrdiff_t ld, int nr,
                       int hs, float s) {
  const int hsp = (hs + 1) / 2;
  const __m512i idx = _mm512_mullo_epi32(
      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(BQ));
  for (int r = 0; r < nr && r < PF; r++)
    prefetch_row(src + r * ld, hs);
  for (int r = 0; r < BQ; r++) {
    if (r + PF < nr)
      prefetch_row(src + (r + PF) * ld, hs);
    for (int p0 = 0; p0 < hsp; p0 += 16)
      _mm512_mask_i32scatter_epi32(X + p0 * BQ + r, lanes16(hsp - p0), idx,
                                   r < nr ? pairs_of(src + r * ld + 2 * p0, hs - 2 * p0, s)
                                          : _mm512_setzero_si512(), 4);
  }
  if (Xq)
    for (int rp = 0; rp < BQ / 2; rp++) {
      const int r = 2 * rp;
      for (int d0 = 0; d0 < hs; d0 += 16)
        _mm512_mask_storeu_epi32(Xq + rp * hs + d0, lanes16(hs - d0),
                                 pairs_across(r < nr ? src + r * ld + d0 : NULL,
                                              r + 1 < nr ? src + (r + 1) * ld + d0 : NULL, hs - d0, s));
    }
}
#else
static void pack_hpairs(uint32_t *dst, const float *src, ptrdiff_t ld, int n, int hs, float s) {
  const int hsp = (hs + 1) / 2;
  for (int j = 0; j < n; j++)
    for (int p = 0; p < hsp; p++) {
      const float *x = src + j * ld + 2 * p;
      dst[(ptrdiff_t)j * hsp + p] = bpair(x[0] * s, 2 * p + 1 < hs ? x[1] * s : 0.0f);
    }
}
static void pack_kpairs(uint32_t *dst, const float *src, ptrdiff_t ld, int n, int hs) {
  const int np = (n + 1) / 2;
  for (int jp = 0; jp < np; jp++) {
    const float *x0 = src + 2 * jp * ld, *x1 = x0 + ld;
    for (int d = 0; d < hs; d++)
      dst[(ptrdiff_t)d * np + jp] = bpair(x0[d] * 1.0f, 2 * jp + 1 < n ? x1[d] * 1.0f : 0.0f);
  }
}
static void pack_block(uint32_t *X, uint32_t *Xq, const float *src, ptrdiff_t ld, int nr,
                       int hs, float s) {
  const int hsp = (hs + 1) / 2;
  for (int p = 0; p < hsp; p++)
    for (int r = 0; r < BQ; r++) {
      const float *x = src + r * ld + 2 * p;
      X[p * BQ + r] = r < nr ? bpair(x[0] * s, 2 * p + 1 < hs ? x[1] * s : 0.0f) : 0;
    }
  if (Xq)
    for (int rp = 0; rp < BQ / 2; rp++)
      for (int d = 0; d < hs; d++) {
        const int r = 2 * rp;
        Xq[rp * hs + d] = bpair(r < nr ? src[r * ld + d] * s : 0.0f,
                                r + 1 < nr ? src[(r + 1) * ld + d] * s : 0.0f);
      }
}
#endif

/* C^T (hs, BQ) += A^T X over the tile's keys in pairs: A^T (hs rows of key
 * pairs, stride tp) from the tile's first key, X the tile (nk, ncq), paired
 * into xp; an odd last key's partner row is made +0. On the diagonal, query
 * group c0 meets keys up to c0 + CS, as in the float32 kernel. */
static void keys_product(float *CT, const uint32_t *AT, int tp, float *X, uint32_t *xp, int nk,
                         int ncq, int diag, int hs) {
  if (nk & 1)
    memset(X + nk * BQ, 0, sizeof(float) * ncq);
  for (int jp = 0; jp < (nk + 1) / 2; jp++)
    pair_rows(xp + jp * BQ, X + 2 * jp * BQ, X + (2 * jp + 1) * BQ, ncq);
  for (int c0 = 0; c0 < ncq; c0 += CS) {
    int kk = diag && nk > c0 + CS ? c0 + CS : nk;
    qgemm_b(hs, (kk + 1) / 2, AT, tp, 1, xp + c0, BQ, CT + c0, BQ, 1, NULL);
  }
}

/* Forward scratch per thread, in 4-byte words. */
static size_t fwdb_words(int T, int hs) {
  const size_t hsp = (size_t)(hs + 1) / 2, tp = (size_t)(T + 1) / 2;
  return round16(hsp * BQ) + BK * BQ + (BK / 2) * BQ + round16((size_t)hs * BQ) + 3 * BQ +
         round16((size_t)T * hsp) + round16((size_t)hs * tp);
}

static void fwd_block_b(float *out, float *lse, const float *qkv, int T, int C, int H,
                        int b, int h, int qb, float *scr, long *packed) {
  const int hs = C / H, hsp = (hs + 1) / 2, tp = (T + 1) / 2;
  const ptrdiff_t ld = 3 * (ptrdiff_t)C;
  const float scale = 1.0f / sqrtf((float)hs);
  const float *q = qkv + (ptrdiff_t)b * T * ld + h * hs, *k = q + C, *v = q + 2 * C;
  uint32_t *QP = (uint32_t *)scr;
  float *ST = scr + round16((size_t)hsp * BQ);
  uint32_t *PP = (uint32_t *)(ST + BK * BQ);
  float *OT = (float *)(PP + (BK / 2) * BQ), *m = OT + round16((size_t)hs * BQ), *l = m + BQ,
        *mtile = l + BQ;
  uint32_t *KP = (uint32_t *)(mtile + BQ), *VT = KP + round16((size_t)T * hsp);
  const int i0 = qb * BQ, nr = T - i0 < BQ ? T - i0 : BQ, iend = i0 + nr;
  const int ncq = (nr + CS - 1) / CS * CS;

  const long bh = (long)b * H + h;
  if (*packed != bh) { /* K and V of the pair, all T rows */
    *packed = bh;
    pack_hpairs(KP, k, ld, T, hs, 1.0f);
    pack_kpairs(VT, v, ld, T, hs);
  }
  pack_block(QP, NULL, q + i0 * ld, ld, nr, hs, scale);
  fwd_begin(m, l, OT, hs);

  for (int j0 = 0; j0 < iend; j0 += BK) {
    const int nk = iend - j0 < BK ? iend - j0 : BK, diag = j0 == i0;
    float *mt = diag ? NULL : mtile;
    if (mt)
      for (int c = 0; c < ncq; c++)
        mt[c] = -__builtin_inff();
    scores_tb(ST, KP + (ptrdiff_t)j0 * hsp, nk, ncq, hsp, QP, diag, mt);
    fwd_softmax_body(ST, nk, ncq, diag, mt, m, l, OT, hs, 1); /* bf16's exp */
    keys_product(OT, VT + j0 / 2, tp, ST, PP, nk, ncq, diag, hs); /* O^T += V^T P^T */
  }
  fwd_out(out + ((ptrdiff_t)b * T + i0) * C + h * hs, C, lse + ((ptrdiff_t)b * H + h) * T + i0,
          OT, m, l, nr, hs);
}

int BT_ISA_FN(bt_attention_forward_bf16_impl)(float *out, float *lse, const float *qkv, int B,
                                               int T, int C, int H) {
  if (B <= 0 || T <= 0)
    return 0;
  const int hs = C / H, nqb = (T + BQ - 1) / BQ;
  const long ntask = (long)B * H * nqb;
  const int nt = pick_threads(ntask);
  const size_t per = fwdb_words(T, hs);
  float *scr = scratch_alloc(nt, per);
  if (!scr)
    return -1;
#pragma omp parallel num_threads(nt)
  {
    float *my = scr + (size_t)omp_get_thread_num() * per;
    long packed = -1;
    FWD_TASKS((long)B * H, nqb, nt,
              fwd_block_b(out, lse, qkv, T, C, H, (int)(bh / H), (int)(bh % H), qb, my, &packed));
  }
  return 0;
}

/* Backward scratch per thread, in 4-byte words. */
static size_t bwdb_words(int T, int hs) {
  const size_t hsp = (size_t)(hs + 1) / 2, tp = (size_t)(T + 1) / 2;
  return 2 * round16(hsp * BQ) + 2 * round16((size_t)(BQ / 2) * hs) + round16((size_t)hs * BQ) +
         2 * BK * BQ + (BK / 2) * BQ + 2 * BK * (BQ / 2) + 2 * BQ + 2 * round16((size_t)T * hsp) +
         round16((size_t)hs * tp) + 2 * round16((size_t)T * hs);
}

static ALWAYS_INLINE void bwd_body_b(float *dqkv, const float *dout, const float *qkv,
                                     const float *out, const float *lse, int T, int C, int H,
                                     int b, int h, float *scr, const int hs) {
  const int hsp = (hs + 1) / 2, tp = (T + 1) / 2;
  const ptrdiff_t ld = 3 * (ptrdiff_t)C;
  const float scale = 1.0f / sqrtf((float)hs);
  const ptrdiff_t row0 = (ptrdiff_t)b * T;
  const float *q = qkv + row0 * ld + h * hs, *k = q + C, *v = q + 2 * C;
  float *dq = dqkv + row0 * ld + h * hs, *dk = dq + C, *dv = dq + 2 * C;
  const float *o = out + row0 * C + h * hs, *dO = dout + row0 * C + h * hs;
  const float *lrow = lse + ((ptrdiff_t)b * H + h) * T;
  uint32_t *QP = (uint32_t *)scr, *dOP = QP + round16((size_t)hsp * BQ);
  uint32_t *QQ = dOP + round16((size_t)hsp * BQ), *dOQ = QQ + round16((size_t)(BQ / 2) * hs);
  float *dQT = (float *)(dOQ + round16((size_t)(BQ / 2) * hs));
  float *ST = dQT + round16((size_t)hs * BQ), *dPT = ST + BK * BQ;
  uint32_t *dSK = (uint32_t *)(dPT + BK * BQ), *dSR = dSK + (BK / 2) * BQ, *PR = dSR + BK * (BQ / 2);
  float *L = (float *)(PR + BK * (BQ / 2)), *D = L + BQ;
  uint32_t *KP = (uint32_t *)(D + BQ), *VP = KP + round16((size_t)T * hsp);
  uint32_t *KT = VP + round16((size_t)T * hsp);
  float *dka = (float *)(KT + round16((size_t)hs * tp)), *dva = dka + round16((size_t)T * hs);

  pack_hpairs(KP, k, ld, T, hs, 1.0f);
  pack_hpairs(VP, v, ld, T, hs, 1.0f);
  pack_kpairs(KT, k, ld, T, hs);
  memset(dka, 0, sizeof(float) * 2 * round16((size_t)T * hs));

  for (int i0 = 0; i0 < T; i0 += BQ) {
    const int nr = T - i0 < BQ ? T - i0 : BQ, iend = i0 + nr;
    const int ncq = (nr + CS - 1) / CS * CS;
    pack_block(QP, QQ, q + i0 * ld, ld, nr, hs, scale);
    pack_block(dOP, dOQ, dO + (ptrdiff_t)i0 * C, C, nr, hs, 1.0f);
    row_dots(D, dO + (ptrdiff_t)i0 * C, o + (ptrdiff_t)i0 * C, C, nr, hs);
    for (int r = 0; r < BQ; r++)
      L[r] = r < nr ? lrow[i0 + r] : __builtin_inff();
    memset(dQT, 0, sizeof(float) * hs * BQ);
    prefetch_rows(dq + i0 * ld, ld, nr, hs); /* for add_dq, after the key tiles */

    for (int j0 = 0; j0 < iend; j0 += BK) {
      const int nk = iend - j0 < BK ? iend - j0 : BK, diag = j0 == i0;
      scores_tb(ST, KP + (ptrdiff_t)j0 * hsp, nk, ncq, hsp, QP, diag, NULL);  /* S^T */
      scores_tb(dPT, VP + (ptrdiff_t)j0 * hsp, nk, ncq, hsp, dOP, diag, NULL); /* dP^T */
      bwd_softmax_body(ST, dPT, nk, ncq, diag, L, D, 1); /* bf16's exp */
      /* dQ^T += K^T dS^T, scaled at the end */
      keys_product(dQT, KT + j0 / 2, tp, dPT, dSK, nk, ncq, diag, hs);
      for (int jj = 0; jj < nk; jj++) {
        pair_row(dSR + jj * (BQ / 2), dPT + jj * BQ, ncq / 2);
        pair_row(PR + jj * (BQ / 2), ST + jj * BQ, ncq / 2);
      }
      /* dK += dS^T Qs, dV += P^T dO over pairs of queries; on the diagonal,
       * key group g0.. from query g0 on, as in the float32 backward */
      for (int g0 = 0; g0 < nk; g0 += 16) {
        int rows = nk - g0 < 16 ? nk - g0 : 16, lo = diag ? g0 : 0, np = (nr - lo + 1) / 2;
        hgemm_b(rows, hs, np, dSR + g0 * (BQ / 2) + lo / 2, BQ / 2, 1, QQ + (lo / 2) * hs, hs,
                dka + (ptrdiff_t)(j0 + g0) * hs, hs, 1);
        hgemm_b(rows, hs, np, PR + g0 * (BQ / 2) + lo / 2, BQ / 2, 1, dOQ + (lo / 2) * hs, hs,
                dva + (ptrdiff_t)(j0 + g0) * hs, hs, 1);
      }
    }
    add_dq(dq + i0 * ld, ld, dQT, nr, hs, scale);
  }
  add_dkdv(dk, dv, ld, dka, dva, T, hs);
}

DEF_HS_COPIES(bwd_head_b, bwd_body_b,
              (float *dqkv, const float *dout, const float *qkv, const float *out,
               const float *lse, int T, int C, int H, int b, int h, float *scr),
              dqkv, dout, qkv, out, lse, T, C, H, b, h, scr)

int BT_ISA_FN(bt_attention_backward_bf16_impl)(float *dqkv, const float *dout, const float *qkv,
                                                const float *out, const float *lse, int B, int T,
                                                int C, int H) {
  return bwd_run(bwd_head_b, bwdb_words(T, H > 0 ? C / H : 0), dqkv, dout, qkv, out, lse, B, T,
                 C, H);
}
#endif /* VL == 1 || AVX512_BF16 */
