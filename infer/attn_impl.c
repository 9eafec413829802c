/*
 * attn_impl.c - one query row of causal attention against a KV cache, for
 * inference. Compiled once per ISA (BT_MULTI_ISA_SOURCES, kernels/isa_impl.h);
 * infer.c picks a copy by bt_isa_get().
 *
 * The arithmetic of a row is fixed ("16-lane order"), and the scalar, AVX2 and
 * AVX-512 paths all do exactly it, so they give identical bits:
 *   s_j  = (fma chain over d = 0..hs-1 of q[d] * k_j[d], from +0) * scale
 *   m    = max_j s_j                      (exact; any order)
 *   e_j  = bt_expf_inline(s_j - m)        (mathfn.h: no FMA, same everywhere)
 *   sum  = lane l (0..15) adds e_j for j = l mod 16 in increasing j, from +0;
 *          the 16 lanes fold 8+8, 4+4, 2+2, 1+1
 *   o[d] = the same 16 lanes and fold over fma(e_j, v_j[d], lane), then / sum
 * Vectors run over 16 keys: one AVX-512 register, two AVX2 registers, or a
 * loop of fmaf. A lane is never a different sum on another path.
 *
 * Cache layout (written by infer.c): per (stream, layer, head), K and V are
 * each bfloat16 (kernels/bf16.h) in tiles of 16 positions, tile b = elements
 * [b*hs*16, (b+1)*hs*16). Within a tile, dims d and d+1 (d even) of position
 * p%16 share one 32-bit word, d in the low half: element (p, d) is at tile
 * p/16, offset (d/2)*32 + (p%16)*2 + d%2. So 16 words hold dims d and d+1 of
 * 16 keys, and a 16-bit shift (d) or a mask (d+1) widens them to two vectors
 * of floats exactly: no conversion instruction, half the bytes of floats
 * (decoding reads a stream's whole cache for every byte). The arithmetic
 * below is on those floats. A row streams through memory in order.
 * Positions >= n in the last tile may hold anything (stale, or later keys in a
 * batched pass): they are masked out, never computed with.
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math") /* lets gcc vectorise the exp loop; no value changes */
#endif
#if defined(__clang__) && defined(__has_feature)
#if __has_feature(address_sanitizer)
#pragma clang diagnostic ignored "-Wpass-failed"
#endif
#endif

#include "kernels/bf16.h"
#include "kernels/isa_impl.h"
#include "kernels/mathfn.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#define BT_INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 16")

/* ==================================================================== */
/* 16 lanes                                                              */
/* ==================================================================== */

#if defined(__AVX512F__)
typedef struct { __m512 v; } v16;
#define PV_G 16 /* d's per PV pass: accumulators that fit the registers */
BT_INLINE v16 v_zero(void) { return (v16){_mm512_setzero_ps()}; }
BT_INLINE v16 v_set1(float x) { return (v16){_mm512_set1_ps(x)}; }
BT_INLINE v16 v_load(const float *p) { return (v16){_mm512_loadu_ps(p)}; }
BT_INLINE void v_store(float *p, v16 a) { _mm512_storeu_ps(p, a.v); }
typedef struct { v16 a, b; } v16x2;
/* Dims d (.a) and d+1 (.b) of 16 keys from the 16 words at p. */
BT_INLINE v16x2 pair_of(__m512i x) {
  return (v16x2){{_mm512_castsi512_ps(_mm512_slli_epi32(x, 16))},
                 {_mm512_castsi512_ps(_mm512_and_si512(x, _mm512_set1_epi32((int)0xffff0000u)))}};
}
BT_INLINE v16x2 v_load_pair(const uint16_t *p) {
  return pair_of(_mm512_loadu_si512((const void *)p));
}
/* The same with keys >= n read as +0 (n in 1..15) */
BT_INLINE v16x2 v_load_pair_n(const uint16_t *p, int n) {
  return pair_of(_mm512_maskz_loadu_epi32((__mmask16)((1u << n) - 1), (const void *)p));
}
/* int8 cache: dims d (.a) and d+1 (.b) of 16 keys from the 32 bytes at p */
BT_INLINE v16 i8_16(const int8_t *p) {
  return (v16){_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p)))};
}
BT_INLINE v16x2 v_load_pair8(const int8_t *p) { return (v16x2){i8_16(p), i8_16(p + 16)}; }
/* 2^max(e, -127) for the 16 exponents at e (2^-127 is stored as +0) */
BT_INLINE v16 v_pow2_i8(const int8_t *e) {
  __m512i x = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)e));
  x = _mm512_add_epi32(_mm512_max_epi32(x, _mm512_set1_epi32(-127)), _mm512_set1_epi32(127));
  return (v16){_mm512_castsi512_ps(_mm512_slli_epi32(x, 23))};
}
BT_INLINE v16 v_fma(v16 a, v16 b, v16 c) { return (v16){_mm512_fmadd_ps(a.v, b.v, c.v)}; }
BT_INLINE v16 v_mul(v16 a, v16 b) { return (v16){_mm512_mul_ps(a.v, b.v)}; }
BT_INLINE v16 v_add(v16 a, v16 b) { return (v16){_mm512_add_ps(a.v, b.v)}; }
/* a > b ? a : b per lane */
BT_INLINE v16 v_max(v16 a, v16 b) { return (v16){_mm512_max_ps(a.v, b.v)}; }
BT_INLINE v16 v_sub(v16 a, v16 b) { return (v16){_mm512_sub_ps(a.v, b.v)}; }
/* 2^n for integral n in [-126, 127]: the float with exponent field n + 127 */
BT_INLINE v16 v_pow2i(v16 n) {
  const __m512i e = _mm512_add_epi32(_mm512_cvttps_epi32(n.v), _mm512_set1_epi32(127));
  return (v16){_mm512_castsi512_ps(_mm512_slli_epi32(e, 23))};
}
/* x < c ? +0 : y */
BT_INLINE v16 v_zero_if_lt(v16 y, v16 x, float c) {
  const __mmask16 k = _mm512_cmp_ps_mask(x.v, _mm512_set1_ps(c), _CMP_LT_OQ);
  return (v16){_mm512_mask_blend_ps(k, y.v, _mm512_setzero_ps())};
}
/* x is NaN ? x : y */
BT_INLINE v16 v_nan_pass(v16 y, v16 x) {
  return (v16){_mm512_mask_blend_ps(_mm512_cmp_ps_mask(x.v, x.v, _CMP_UNORD_Q), y.v, x.v)};
}
BT_INLINE __m256 fold_8(v16 a) { /* lane j + lane j+8 */
  return _mm256_add_ps(_mm512_castps512_ps256(a.v), _mm512_extractf32x8_ps(a.v, 1));
}
BT_INLINE __m256 fold_8max(v16 a) {
  return _mm256_max_ps(_mm512_extractf32x8_ps(a.v, 1), _mm512_castps512_ps256(a.v));
}
#elif defined(__AVX2__)
typedef struct { __m256 lo, hi; } v16;
#define PV_G 4
BT_INLINE v16 v_zero(void) { return (v16){_mm256_setzero_ps(), _mm256_setzero_ps()}; }
BT_INLINE v16 v_set1(float x) { return (v16){_mm256_set1_ps(x), _mm256_set1_ps(x)}; }
BT_INLINE v16 v_load(const float *p) { return (v16){_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
static const int32_t mask_tbl_[32] = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                      -1, -1, -1, -1, -1, 0,  0,  0,  0,  0,  0,
                                      0,  0,  0,  0,  0,  0,  0,  0,  0,  0};
BT_INLINE void v_store(float *p, v16 a) {
  _mm256_storeu_ps(p, a.lo);
  _mm256_storeu_ps(p + 8, a.hi);
}
typedef struct { v16 a, b; } v16x2;
BT_INLINE v16x2 pair_words(__m256i x, __m256i y) {
  const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);
  return (v16x2){{_mm256_castsi256_ps(_mm256_slli_epi32(x, 16)),
                  _mm256_castsi256_ps(_mm256_slli_epi32(y, 16))},
                 {_mm256_castsi256_ps(_mm256_and_si256(x, hi)),
                  _mm256_castsi256_ps(_mm256_and_si256(y, hi))}};
}
BT_INLINE v16x2 v_load_pair(const uint16_t *p) {
  return pair_words(_mm256_loadu_si256((const __m256i *)p),
                    _mm256_loadu_si256((const __m256i *)(p + 16)));
}
BT_INLINE v16x2 v_load_pair_n(const uint16_t *p, int n) {
  const int32_t *m = mask_tbl_ + 16 - n; /* words < n: -1; the others load as 0 */
  return pair_words(
      _mm256_maskload_epi32((const int *)p, _mm256_loadu_si256((const __m256i *)m)),
      _mm256_maskload_epi32((const int *)(p + 16), _mm256_loadu_si256((const __m256i *)(m + 8))));
}
BT_INLINE __m256 i8_8(const int8_t *p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
}
BT_INLINE v16x2 v_load_pair8(const int8_t *p) {
  return (v16x2){{i8_8(p), i8_8(p + 8)}, {i8_8(p + 16), i8_8(p + 24)}};
}
BT_INLINE __m256 pow2_i8_8(const int8_t *e) {
  __m256i x = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)e));
  x = _mm256_add_epi32(_mm256_max_epi32(x, _mm256_set1_epi32(-127)), _mm256_set1_epi32(127));
  return _mm256_castsi256_ps(_mm256_slli_epi32(x, 23));
}
BT_INLINE v16 v_pow2_i8(const int8_t *e) { return (v16){pow2_i8_8(e), pow2_i8_8(e + 8)}; }
BT_INLINE v16 v_fma(v16 a, v16 b, v16 c) {
  return (v16){_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
}
BT_INLINE v16 v_mul(v16 a, v16 b) {
  return (v16){_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)};
}
BT_INLINE v16 v_add(v16 a, v16 b) {
  return (v16){_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)};
}
BT_INLINE v16 v_max(v16 a, v16 b) {
  return (v16){_mm256_max_ps(a.lo, b.lo), _mm256_max_ps(a.hi, b.hi)};
}
BT_INLINE v16 v_sub(v16 a, v16 b) {
  return (v16){_mm256_sub_ps(a.lo, b.lo), _mm256_sub_ps(a.hi, b.hi)};
}
BT_INLINE __m256 pow2i_8(__m256 n) {
  const __m256i e = _mm256_add_epi32(_mm256_cvttps_epi32(n), _mm256_set1_epi32(127));
  return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
}
BT_INLINE v16 v_pow2i(v16 n) { return (v16){pow2i_8(n.lo), pow2i_8(n.hi)}; }
BT_INLINE v16 v_zero_if_lt(v16 y, v16 x, float c) { /* ~(x < c) & y */
  const __m256 vc = _mm256_set1_ps(c);
  return (v16){_mm256_andnot_ps(_mm256_cmp_ps(x.lo, vc, _CMP_LT_OQ), y.lo),
               _mm256_andnot_ps(_mm256_cmp_ps(x.hi, vc, _CMP_LT_OQ), y.hi)};
}
BT_INLINE v16 v_nan_pass(v16 y, v16 x) {
  return (v16){_mm256_blendv_ps(y.lo, x.lo, _mm256_cmp_ps(x.lo, x.lo, _CMP_UNORD_Q)),
               _mm256_blendv_ps(y.hi, x.hi, _mm256_cmp_ps(x.hi, x.hi, _CMP_UNORD_Q))};
}
BT_INLINE __m256 fold_8(v16 a) { return _mm256_add_ps(a.lo, a.hi); }
BT_INLINE __m256 fold_8max(v16 a) { return _mm256_max_ps(a.hi, a.lo); }
#else
typedef struct { float f[16]; } v16;
#define PV_G 1
BT_INLINE v16 v_zero(void) {
  v16 r;
  for (int i = 0; i < 16; i++) r.f[i] = 0.0f;
  return r;
}
BT_INLINE v16 v_set1(float x) {
  v16 r;
  for (int i = 0; i < 16; i++) r.f[i] = x;
  return r;
}
BT_INLINE v16 v_load(const float *p) {
  v16 r;
  for (int i = 0; i < 16; i++) r.f[i] = p[i];
  return r;
}
BT_INLINE void v_store(float *p, v16 a) {
  for (int i = 0; i < 16; i++) p[i] = a.f[i];
}
typedef struct { v16 a, b; } v16x2;
BT_INLINE v16x2 v_load_pair(const uint16_t *p) {
  v16x2 r;
  for (int i = 0; i < 16; i++) {
    r.a.f[i] = bt_bf16_to_f32_inline(p[2 * i]);
    r.b.f[i] = bt_bf16_to_f32_inline(p[2 * i + 1]);
  }
  return r;
}
BT_INLINE v16x2 v_load_pair_n(const uint16_t *p, int n) {
  v16x2 r;
  for (int i = 0; i < 16; i++) {
    r.a.f[i] = i < n ? bt_bf16_to_f32_inline(p[2 * i]) : 0.0f;
    r.b.f[i] = i < n ? bt_bf16_to_f32_inline(p[2 * i + 1]) : 0.0f;
  }
  return r;
}
BT_INLINE v16x2 v_load_pair8(const int8_t *p) {
  v16x2 r;
  for (int i = 0; i < 16; i++) {
    r.a.f[i] = (float)p[i];
    r.b.f[i] = (float)p[16 + i];
  }
  return r;
}
BT_INLINE v16 v_pow2_i8(const int8_t *e) {
  v16 r;
  for (int i = 0; i < 16; i++) {
    const uint32_t u = (uint32_t)((e[i] < -127 ? -127 : e[i]) + 127) << 23;
    memcpy(&r.f[i], &u, sizeof u);
  }
  return r;
}
BT_INLINE v16 v_fma(v16 a, v16 b, v16 c) {
  for (int i = 0; i < 16; i++) c.f[i] = fmaf(a.f[i], b.f[i], c.f[i]);
  return c;
}
BT_INLINE v16 v_mul(v16 a, v16 b) {
  for (int i = 0; i < 16; i++) a.f[i] = a.f[i] * b.f[i];
  return a;
}
BT_INLINE v16 v_add(v16 a, v16 b) {
  for (int i = 0; i < 16; i++) a.f[i] = a.f[i] + b.f[i];
  return a;
}
BT_INLINE v16 v_max(v16 a, v16 b) {
  for (int i = 0; i < 16; i++) a.f[i] = a.f[i] > b.f[i] ? a.f[i] : b.f[i];
  return a;
}
BT_INLINE v16 v_sub(v16 a, v16 b) {
  for (int i = 0; i < 16; i++) a.f[i] = a.f[i] - b.f[i];
  return a;
}
BT_INLINE v16 v_pow2i(v16 n) {
  for (int i = 0; i < 16; i++) {
    const uint32_t u = (uint32_t)((int32_t)n.f[i] + 127) << 23;
    memcpy(&n.f[i], &u, sizeof u);
  }
  return n;
}
BT_INLINE v16 v_zero_if_lt(v16 y, v16 x, float c) {
  for (int i = 0; i < 16; i++) y.f[i] = x.f[i] < c ? 0.0f : y.f[i];
  return y;
}
BT_INLINE v16 v_nan_pass(v16 y, v16 x) {
  for (int i = 0; i < 16; i++) y.f[i] = x.f[i] != x.f[i] ? x.f[i] : y.f[i];
  return y;
}
#endif

/* Lane folds in the fixed tree 8+8, 4+4, 2+2, 1+1. */
#if defined(__AVX512F__) || defined(__AVX2__)
BT_INLINE float v_fold_add(v16 a) {
  __m256 x = fold_8(a);
  __m128 y = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  y = _mm_add_ps(y, _mm_movehl_ps(y, y));
  y = _mm_add_ss(y, _mm_shuffle_ps(y, y, 1));
  return _mm_cvtss_f32(y);
}
BT_INLINE float v_fold_max(v16 a) { /* hi > lo ? hi : lo at each step */
  __m256 x = fold_8max(a);
  __m128 y = _mm_max_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
  y = _mm_max_ps(_mm_movehl_ps(y, y), y);
  y = _mm_max_ss(_mm_shuffle_ps(y, y, 1), y);
  return _mm_cvtss_f32(y);
}
#else
BT_INLINE float v_fold_add(v16 a) {
  for (int s = 8; s >= 1; s >>= 1)
    for (int j = 0; j < s; j++) a.f[j] = a.f[j] + a.f[j + s];
  return a.f[0];
}
BT_INLINE float v_fold_max(v16 a) {
  for (int s = 8; s >= 1; s >>= 1)
    for (int j = 0; j < s; j++) a.f[j] = a.f[j + s] > a.f[j] ? a.f[j + s] : a.f[j];
  return a.f[0];
}
#endif

/* ==================================================================== */
/* One row                                                               */
/* ==================================================================== */

/* The cache's two element types (infer.c writes them):
 *   es 2: bfloat16, dims d and d+1 of a position in one 32-bit word;
 *   es 1: int8, dim-major in a tile (element (p, d) at byte d*16 + p%16), so
 *         dims d and d+1 of 16 keys are 32 bytes.
 * With x8 each key has a power-of-two scale per head, 2^e with e an int8
 * beside the tiles, and its elements are integers within 127: int8s (es 1),
 * or the same integers as bfloat16s (es 2), which widen to the same floats.
 * Offsets below are in bytes: the pair of dims d, d+1 of a tile is at
 * d*16*es, a tile is hs*16*es. With x8 the scales enter exactly: a score is
 * (its fma chain over the int8 dims, as floats) * 2^e_k * scale, and the PV
 * pass weighs v_j by e_j * 2^e_v (exact, a power of two) while the sum that
 * divides stays the plain sum of the e_j. Int8 lanes past a row's length are
 * not masked: they are finite, and the PV pass weighs them by +0. */
BT_INLINE v16x2 load_pair(const uint8_t *p, const int es) {
  return es == 2 ? v_load_pair((const uint16_t *)p) : v_load_pair8((const int8_t *)p);
}
BT_INLINE v16x2 load_pair_n(const uint8_t *p, int n, const int es) {
  return es == 2 ? v_load_pair_n((const uint16_t *)p, n) : v_load_pair8((const int8_t *)p);
}

/* s (nt*16) = scores of q against all 16 lanes of tiles 0..nt-1 (lanes past
 * the row's length are computed from whatever is there and ignored later).
 * SC_U tiles at a time: SC_U independent FMA chains hide the FMA latency.
 * Dims go in pairs (one load), each lane's chain still in order d, d+1.
 * K streams in order, which the hardware prefetches as well as software
 * prefetches did (docs/measurements.md); V is prefetched in softmax_e.
 * x8: the raw sums, which the softmax scales (softmax_e's Ke). */
#define SC_U 8
BT_INLINE void scores_body(float *s, const float *q, const uint8_t *Kt, int nt, const int hs,
                           float scale, const int es, const int x8) {
  const v16 vs = v_set1(scale);
  const long tile = (long)hs * 16 * es; /* bytes per tile */
  int b = 0;
  for (; b + SC_U <= nt; b += SC_U) {
    v16 acc[SC_U];
    UNROLL for (int u = 0; u < SC_U; u++) acc[u] = v_zero();
    const uint8_t *kt = Kt + b * tile;
    for (int d = 0; d < hs; d += 2, kt += 32 * es) {
      const v16 q0 = v_set1(q[d]), q1 = v_set1(q[d + 1]);
      UNROLL for (int u = 0; u < SC_U; u++) {
        const v16x2 k = load_pair(kt + u * tile, es);
        acc[u] = v_fma(q1, k.b, v_fma(q0, k.a, acc[u]));
      }
    }
    UNROLL for (int u = 0; u < SC_U; u++)
      v_store(s + (long)(b + u) * 16, x8 ? acc[u] : v_mul(acc[u], vs));
  }
  for (; b < nt; b++) {
    v16 acc = v_zero();
    const uint8_t *kt = Kt + b * tile;
    for (int d = 0; d < hs; d += 2) {
      const v16x2 k = load_pair(kt + (long)d * 16 * es, es);
      acc = v_fma(v_set1(q[d + 1]), k.b, v_fma(v_set1(q[d]), k.a, acc));
    }
    v_store(s + (long)b * 16, x8 ? acc : v_mul(acc, vs));
  }
}

/* The common head sizes get their own copies, with constant offsets. */
BT_INLINE void scores(float *s, const float *q, const uint8_t *Kt, int nt, int hs, float scale,
                      const int es, const int x8) {
  if (hs == 16)
    scores_body(s, q, Kt, nt, 16, scale, es, x8);
  else if (hs == 32)
    scores_body(s, q, Kt, nt, 32, scale, es, x8);
  else
    scores_body(s, q, Kt, nt, hs, scale, es, x8);
}

/* Continues acc[0..G) (d = d0..d0+G-1) over tiles b0.. of positions < n:
 * whole tiles, then the last one masked (lanes >= n add e * 0 = +0 or -0,
 * which leaves a lane exactly as it was: a lane is never -0). */
BT_INLINE void pv_run(v16 *acc, const float *e, const uint8_t *Vt, int n, int hs, int d0,
                      const int G, int b0, const int es) {
  const int nfull = n / 16, tail = n % 16;
  const long tile = (long)hs * 16 * es;
  const uint8_t *vt = Vt + ((long)b0 * hs + (d0 & ~1)) * 16 * es;
  if (G % 2 == 0) { /* d0 even: whole pairs */
    for (int b = b0; b < nfull; b++, vt += tile) {
      const v16 eb = v_load(e + (long)b * 16);
      UNROLL for (int i = 0; i < G; i += 2) {
        const v16x2 v = load_pair(vt + i * 16 * es, es);
        acc[i] = v_fma(eb, v.a, acc[i]);
        acc[i + 1] = v_fma(eb, v.b, acc[i + 1]);
      }
    }
    if (tail) {
      const v16 eb = v_load(e + (long)nfull * 16);
      UNROLL for (int i = 0; i < G; i += 2) {
        const v16x2 v = load_pair_n(vt + i * 16 * es, tail, es);
        acc[i] = v_fma(eb, v.a, acc[i]);
        acc[i + 1] = v_fma(eb, v.b, acc[i + 1]);
      }
    }
  } else { /* G == 1 (the scalar path): dim d0 of its pair */
    for (int b = b0; b < nfull; b++, vt += tile) {
      const v16x2 v = load_pair(vt, es);
      acc[0] = v_fma(v_load(e + (long)b * 16), d0 & 1 ? v.b : v.a, acc[0]);
    }
    if (tail) {
      const v16x2 v = load_pair_n(vt, tail, es);
      acc[0] = v_fma(v_load(e + (long)nfull * 16), d0 & 1 ? v.b : v.a, acc[0]);
    }
  }
}

/* out[d0..d0+G) = 16-lane sums over positions < n of e_j v_j[d], / sum. */
BT_INLINE void pv_pass(float *out, const float *e, const uint8_t *Vt, int n, int hs, int d0,
                       const int G, float sum, const int es) {
  v16 acc[PV_G];
  UNROLL for (int i = 0; i < G; i++) acc[i] = v_zero();
  pv_run(acc, e, Vt, n, hs, d0, G, 0, es);
  UNROLL for (int i = 0; i < G; i++) out[d0 + i] = v_fold_add(acc[i]) / sum;
}

/* y[i] = bt_expf_inline(x[i]) (kernels/mathfn.h) for K vectors, bit for bit,
 * for every x <= 88 and NaN (softmax arguments are <= 0): the same operations
 * in the same order, less the clamp and the select that only act above 88.
 * The K vectors advance stage by stage: one exp is a chain of ~20 dependent
 * operations, and interleaving K of them keeps the FP units busy where the
 * compiler's loop ran them one after another (~30 cycles per vector). */
BT_INLINE void v_exp_k(v16 *y, const v16 *x, const int K) {
  v16 xc[4], n[4], r[4], p[4];
  UNROLL for (int i = 0; i < K; i++) xc[i] = v_max(x[i], v_set1(-87.0f)); /* NaN -> -87 */
  UNROLL for (int i = 0; i < K; i++) n[i] = v_mul(xc[i], v_set1(1.44269504088896341f));
  UNROLL for (int i = 0; i < K; i++) n[i] = v_add(n[i], v_set1(12582912.0f));
  UNROLL for (int i = 0; i < K; i++) n[i] = v_sub(n[i], v_set1(12582912.0f));
  UNROLL for (int i = 0; i < K; i++) r[i] = v_sub(xc[i], v_mul(n[i], v_set1(0.693145751953125f)));
  UNROLL for (int i = 0; i < K; i++)
    r[i] = v_sub(r[i], v_mul(n[i], v_set1(1.42860682030941723e-6f)));
  UNROLL for (int i = 0; i < K; i++) p[i] = v_add(v_mul(v_set1(1.0f / 720.0f), r[i]), v_set1(1.0f / 120.0f));
  UNROLL for (int i = 0; i < K; i++) p[i] = v_add(v_mul(p[i], r[i]), v_set1(1.0f / 24.0f));
  UNROLL for (int i = 0; i < K; i++) p[i] = v_add(v_mul(p[i], r[i]), v_set1(1.0f / 6.0f));
  UNROLL for (int i = 0; i < K; i++) p[i] = v_add(v_mul(p[i], r[i]), v_set1(0.5f));
  UNROLL for (int i = 0; i < K; i++) p[i] = v_add(v_mul(p[i], r[i]), v_set1(1.0f));
  UNROLL for (int i = 0; i < K; i++) p[i] = v_add(v_mul(p[i], r[i]), v_set1(1.0f));
  UNROLL for (int i = 0; i < K; i++) y[i] = v_mul(p[i], v_pow2i(n[i]));
  UNROLL for (int i = 0; i < K; i++) y[i] = v_nan_pass(v_zero_if_lt(y[i], x[i], -87.0f), x[i]);
}

/* s (n): scores in, e_j out, zero up to the tile end; returns the 16-lane
 * sum (tiles added in order from +0, then folded). Lanes of s past n may hold
 * anything on entry. pfV (may be NULL): V tiles (head size hs) to prefetch.
 * Int8 caches: Ke, if not NULL, the keys' exponents, which the scores on
 * entry still lack: s_j = (s_j * 2^e) * scale first; Ve, if not NULL, the
 * values' exponents: e_j * 2^e out, the sum still of the e_j. */
BT_INLINE float softmax_e(float *s, int n, const uint8_t *pfV, int hs, const int es,
                          const int8_t *Ke, float scale, const int8_t *Ve) {
  const int nt = (n + 15) / 16, ntot = nt * 16;
  v16 mx = v_set1(-INFINITY);
  for (int b = 0; b < nt; b++) {
    float *sb = s + (long)b * 16;
    if (Ke)
      v_store(sb, v_mul(v_mul(v_load(sb), v_pow2_i8(Ke + (long)b * 16)), v_set1(scale)));
    if (b == nt - 1)
      for (int j = n; j < ntot; j++) /* the max must not see the garbage lanes */
        s[j] = -INFINITY;
    mx = v_max(v_load(sb), mx);
  }
  const v16 vm = v_set1(v_fold_max(mx));
  v16 sa = v_zero();
  int b = 0;
  for (; b + 4 <= n / 16; b += 4) {
    v16 x[4], y[4];
    if (pfV) /* V of these tiles, for the PV pass: the exp leaves load slots free */
      for (long o = (long)b * hs * 16 * es; o < (long)(b + 4) * hs * 16 * es; o += 64)
        __builtin_prefetch(pfV + o, 0, 2);
    UNROLL for (int i = 0; i < 4; i++) x[i] = v_sub(v_load(s + (long)(b + i) * 16), vm);
    v_exp_k(y, x, 4);
    UNROLL for (int i = 0; i < 4; i++) {
      v_store(s + (long)(b + i) * 16, Ve ? v_mul(y[i], v_pow2_i8(Ve + (long)(b + i) * 16)) : y[i]);
      sa = v_add(sa, y[i]);
    }
  }
  for (; b < nt; b++) {
    v16 x = v_sub(v_load(s + (long)b * 16), vm), y;
    v_exp_k(&y, &x, 1);
    v_store(s + (long)b * 16, y);
    if (b == nt - 1) {
      for (int j = n; j < ntot; j++)
        s[j] = 0.0f; /* adds +0 to its lane: no change */
      y = v_load(s + (long)b * 16);
    }
    sa = v_add(sa, y);
    if (Ve) /* lanes past n: +0 * 2^e = +0 */
      v_store(s + (long)b * 16, v_mul(y, v_pow2_i8(Ve + (long)b * 16)));
  }
  return v_fold_add(sa); /* >= 1: the max's own term is exp(0) */
}

BT_INLINE void pv_all(float *out, const float *e, const uint8_t *Vt, int n, int hs, float sum,
                      const int es) {
#if PV_G >= 16
  if (hs % 16 == 0) {
    for (int d0 = 0; d0 < hs; d0 += 16)
      pv_pass(out, e, Vt, n, hs, d0, 16, sum, es);
    return;
  }
  for (int d0 = 0; d0 < hs; d0 += 8)
    pv_pass(out, e, Vt, n, hs, d0, 8, sum, es);
#else
  for (int d0 = 0; d0 < hs; d0 += PV_G)
    pv_pass(out, e, Vt, n, hs, d0, PV_G, sum, es);
#endif
}

/*
 * out (hs) = softmax_j(scale * q . k_j) v_j over positions j = 0..n-1 of one
 * head, in the 16-lane order above. q (hs); Kt, Vt: that head's K and V tiles;
 * s: scratch of roundup(n, 16) floats. n >= 1, hs a multiple of 8.
 */
BT_INLINE void attn_row(float *out, const float *q, const uint8_t *Kt, const int8_t *Ke,
                        const uint8_t *Vt, const int8_t *Ve, int n, int hs, float scale, float *s,
                        const int es, const int x8) {
  const int nt = (n + 15) / 16;
  scores(s, q, Kt, nt, hs, scale, es, x8);
  const float sum = softmax_e(s, n, Vt, hs, es, x8 ? Ke : NULL, scale, x8 ? Ve : NULL);
  pv_all(out, s, Vt, n, hs, sum, es);
}
void BT_ISA_FN(bt_infer_attn_row)(float *out, const float *q, const uint16_t *Kt,
                                  const uint16_t *Vt, int n, int hs, float scale, float *s) {
  attn_row(out, q, (const uint8_t *)Kt, NULL, (const uint8_t *)Vt, NULL, n, hs, scale, s, 2, 0);
}
/* The same over an int8 cache: K, V tiles, and the keys' and values'
 * exponents (one per position). The tiles are int8 (es 1), or the same
 * integers as bfloat16 in the bfloat16 layout (es 2: every integer within
 * 127 is a bfloat16 exactly, so the floats and every result are the same
 * bits; twice the bytes, cheaper to widen). */
void BT_ISA_FN(bt_infer_attn_row8)(float *out, const float *q, const void *Kt, const int8_t *Ke,
                                   const void *Vt, const int8_t *Ve, int n, int hs, float scale,
                                   float *s, int es) {
  if (es == 2)
    attn_row(out, q, Kt, Ke, Vt, Ve, n, hs, scale, s, 2, 1);
  else
    attn_row(out, q, Kt, Ke, Vt, Ve, n, hs, scale, s, 1, 1);
}

/* ==================================================================== */
/* Four rows at once (batched pass)                                      */
/* ==================================================================== */

/*
 * Rows i = 0..3 of one head with lengths n0 + i (consecutive positions of one
 * stream): out + i*ldo = what bt_infer_attn_row gives for q + i*ldq, bit for
 * bit. Each K and V vector loaded serves four rows: the lanes' chains are the
 * single row's, only interleaved. s: scratch of 4 x lds floats,
 * lds >= roundup(n0 + 3, 16).
 */
#if defined(__AVX512F__)
#define SC4_U 2 /* tiles per step: 2 x 4 accumulators */
#else
#define SC4_U 1
#endif
/* The scores of rows4: s + i*lds (ntm*16) for the rows q + i*ldq, each
 * times scale (x8: raw sums, the softmax scales them). A function of its
 * own, so that its accumulators have the registers to themselves: inlined,
 * gcc spilled one in some copies, and its chain ran through memory. */
BT_INLINE void scores4_body(float *s, long lds, const float *q, long ldq, const uint8_t *Kt,
                            int ntm, int hs, float scale, const int es, const int x8) {
  const v16 vs = v_set1(scale);
  const float *q0 = q, *q1 = q + ldq, *q2 = q + 2 * ldq, *q3 = q + 3 * ldq;
  int b = 0;
  for (; b + SC4_U <= ntm; b += SC4_U) {
    v16 acc[SC4_U][4];
    UNROLL for (int u = 0; u < SC4_U; u++)
      UNROLL for (int i = 0; i < 4; i++) acc[u][i] = v_zero();
    const uint8_t *kt = Kt + (long)b * hs * 16 * es;
    for (int d = 0; d < hs; d += 2) {
      UNROLL for (int u = 0; u < SC4_U; u++) {
        const v16x2 kk = load_pair(kt + ((long)u * hs + d) * 16 * es, es);
        const v16 k0 = kk.a, k1 = kk.b;
        acc[u][0] = v_fma(v_set1(q0[d]), k0, acc[u][0]);
        acc[u][1] = v_fma(v_set1(q1[d]), k0, acc[u][1]);
        acc[u][2] = v_fma(v_set1(q2[d]), k0, acc[u][2]);
        acc[u][3] = v_fma(v_set1(q3[d]), k0, acc[u][3]);
        acc[u][0] = v_fma(v_set1(q0[d + 1]), k1, acc[u][0]);
        acc[u][1] = v_fma(v_set1(q1[d + 1]), k1, acc[u][1]);
        acc[u][2] = v_fma(v_set1(q2[d + 1]), k1, acc[u][2]);
        acc[u][3] = v_fma(v_set1(q3[d + 1]), k1, acc[u][3]);
      }
    }
    UNROLL for (int u = 0; u < SC4_U; u++)
      UNROLL for (int i = 0; i < 4; i++)
        v_store(s + i * lds + (long)(b + u) * 16, x8 ? acc[u][i] : v_mul(acc[u][i], vs));
  }
  for (; b < ntm; b++) {
    v16 acc[4];
    UNROLL for (int i = 0; i < 4; i++) acc[i] = v_zero();
    const uint8_t *kt = Kt + (long)b * hs * 16 * es;
    for (int d = 0; d < hs; d += 2) {
      const v16x2 kk = load_pair(kt + (long)d * 16 * es, es);
      const v16 k0 = kk.a, k1 = kk.b;
      acc[0] = v_fma(v_set1(q0[d]), k0, acc[0]);
      acc[1] = v_fma(v_set1(q1[d]), k0, acc[1]);
      acc[2] = v_fma(v_set1(q2[d]), k0, acc[2]);
      acc[3] = v_fma(v_set1(q3[d]), k0, acc[3]);
      acc[0] = v_fma(v_set1(q0[d + 1]), k1, acc[0]);
      acc[1] = v_fma(v_set1(q1[d + 1]), k1, acc[1]);
      acc[2] = v_fma(v_set1(q2[d + 1]), k1, acc[2]);
      acc[3] = v_fma(v_set1(q3[d + 1]), k1, acc[3]);
    }
    UNROLL for (int i = 0; i < 4; i++)
      v_store(s + i * lds + (long)b * 16, x8 ? acc[i] : v_mul(acc[i], vs));
  }
}

#define SCORES4(name, es, x8)                                                                  \
  __attribute__((noinline)) static void name(float *s, long lds, const float *q, long ldq,     \
                                             const uint8_t *Kt, int ntm, int hs, float scale) { \
    scores4_body(s, lds, q, ldq, Kt, ntm, hs, scale, es, x8);                                  \
  }
SCORES4(scores4_bf16, 2, 0)
SCORES4(scores4_wide8, 2, 1)
SCORES4(scores4_int8, 1, 1)
BT_INLINE void scores4(float *s, long lds, const float *q, long ldq, const uint8_t *Kt, int ntm,
                       int hs, float scale, const int es, const int x8) {
  if (!x8)
    scores4_bf16(s, lds, q, ldq, Kt, ntm, hs, scale);
  else if (es == 2)
    scores4_wide8(s, lds, q, ldq, Kt, ntm, hs, scale);
  else
    scores4_int8(s, lds, q, ldq, Kt, ntm, hs, scale);
}

BT_INLINE void attn_rows4(float *out, long ldo, const float *q, long ldq, const uint8_t *Kt,
                          const int8_t *Ke, const uint8_t *Vt, const int8_t *Ve, int n0, int hs,
                          float scale, float *s, long lds, const int es, const int x8) {
  const int ntm = (n0 + 3 + 15) / 16; /* tiles of the longest row */
  scores4(s, lds, q, ldq, Kt, ntm, hs, scale, es, x8);
  /* With x8 the keys' scales come in the softmax. */
  float sum[4];
  for (int i = 0; i < 4; i++)
    sum[i] = softmax_e(s + i * lds, n0 + i, NULL, hs, es, x8 ? Ke : NULL, scale, x8 ? Ve : NULL);
#if defined(__AVX512F__)
  /* PV: tiles that are whole for all four rows together, 4 d's at a time;
   * then each row finishes its own tiles exactly as pv_run does alone. */
  const int nf = n0 / 16;
  const float *e0 = s, *e1 = s + lds, *e2 = s + 2 * lds, *e3 = s + 3 * lds;
  for (int d0 = 0; d0 < hs; d0 += 4) {
    v16 acc[4][4];
    UNROLL for (int i = 0; i < 4; i++)
      UNROLL for (int g = 0; g < 4; g++) acc[i][g] = v_zero();
    const uint8_t *vt = Vt + (long)d0 * 16 * es;
    for (int bb = 0; bb < nf; bb++, vt += (long)hs * 16 * es) {
      const v16 ea = v_load(e0 + bb * 16), eb = v_load(e1 + bb * 16);
      const v16 ec = v_load(e2 + bb * 16), ed = v_load(e3 + bb * 16);
      UNROLL for (int g = 0; g < 4; g += 2) {
        const v16x2 vv = load_pair(vt + g * 16 * es, es);
        const v16 v[2] = {vv.a, vv.b};
        UNROLL for (int h = 0; h < 2; h++) {
          acc[0][g + h] = v_fma(ea, v[h], acc[0][g + h]);
          acc[1][g + h] = v_fma(eb, v[h], acc[1][g + h]);
          acc[2][g + h] = v_fma(ec, v[h], acc[2][g + h]);
          acc[3][g + h] = v_fma(ed, v[h], acc[3][g + h]);
        }
      }
    }
    UNROLL for (int i = 0; i < 4; i++) {
      pv_run(acc[i], s + i * lds, Vt, n0 + i, hs, d0, 4, nf, es);
      UNROLL for (int g = 0; g < 4; g++) out[i * ldo + d0 + g] = v_fold_add(acc[i][g]) / sum[i];
    }
  }
#else
  for (int i = 0; i < 4; i++)
    pv_all(out + i * ldo, s + i * lds, Vt, n0 + i, hs, sum[i], es);
#endif
}
void BT_ISA_FN(bt_infer_attn_rows4)(float *out, long ldo, const float *q, long ldq,
                                    const uint16_t *Kt, const uint16_t *Vt, int n0, int hs,
                                    float scale, float *s, long lds) {
  attn_rows4(out, ldo, q, ldq, (const uint8_t *)Kt, NULL, (const uint8_t *)Vt, NULL, n0, hs, scale, s,
             lds, 2, 0);
}
/* The same over an int8 cache, its tiles as in bt_infer_attn_row8 (es). */
void BT_ISA_FN(bt_infer_attn_rows4_8)(float *out, long ldo, const float *q, long ldq, const void *Kt,
                                      const int8_t *Ke, const void *Vt, const int8_t *Ve, int n0,
                                      int hs, float scale, float *s, long lds, int es) {
  if (es == 2)
    attn_rows4(out, ldo, q, ldq, Kt, Ke, Vt, Ve, n0, hs, scale, s, lds, 2, 1);
  else
    attn_rows4(out, ldo, q, ldq, Kt, Ke, Vt, Ve, n0, hs, scale, s, lds, 1, 1);
}
