/*
 * bf16.h - bfloat16 <-> binary32 conversions in portable C, bit-exact on
 * every compiler and ISA (internal to bt; the public wrappers are
 * bt_f32_to_bf16 / bt_bf16_to_f32 in kernels.h).
 *
 * A bfloat16 is the top 16 bits of a float: the same sign and 8-bit exponent,
 * 7 stored mantissa bits. Narrowing rounds to nearest, ties to even, in
 * integer arithmetic (so subnormals round like every other value, and values
 * past the largest bfloat16 round to infinity as IEEE rounding does); every
 * NaN becomes the one quiet NaN 0x7fc0. Widening is exact: a 16-bit shift.
 *
 * Not the AVX512_BF16 instruction vcvtneps2bf16, which flushes subnormals.
 */
#ifndef BT_BF16_H
#define BT_BF16_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline __attribute__((always_inline)) uint16_t bt_f32_to_bf16_inline(float f) {
  uint32_t x;
  memcpy(&x, &f, sizeof x);
  /* add half an ulp of the result, minus one unless the kept LSB is odd */
  const uint32_t r = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
  return (x & 0x7fffffffu) > 0x7f800000u ? (uint16_t)0x7fc0 : (uint16_t)r;
}

static inline __attribute__((always_inline)) float bt_bf16_to_f32_inline(uint16_t h) {
  const uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* vcvtneps2bf16 / vcvtne2ps2bf16 (AVX512_BF16), which bf16 attention uses:
 * nearest, ties to even, but a subnormal float becomes a zero of its sign,
 * and a NaN keeps its sign and top payload bits, made quiet. */
static inline __attribute__((always_inline)) uint16_t bt_f32_to_bf16_ne_inline(float f) {
  uint32_t x;
  memcpy(&x, &f, sizeof x);
  if ((x & 0x7fffffffu) > 0x7f800000u)
    return (uint16_t)((x >> 16) | 0x40u);
  if ((x & 0x7f800000u) == 0)
    return (uint16_t)((x >> 16) & 0x8000u);
  return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

/* Subnormals read, or written, as zero of the same sign. */
static inline __attribute__((always_inline)) float bt_bf16_daz_inline(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  if ((u & 0x7f800000u) == 0)
    u &= 0x80000000u;
  memcpy(&x, &u, sizeof x);
  return x;
}

/* One lane of vdpbf16ps: a and b each hold a pair of bfloat16s (member 0 in
 * the low half); acc + a1 b1, then + a0 b0, each product exact, each sum
 * rounded to nearest, subnormal inputs and results flushed to zero. */
static inline __attribute__((always_inline)) float bt_bf16_dp_inline(float acc, uint32_t a, uint32_t b) {
  const float a0 = bt_bf16_daz_inline(bt_bf16_to_f32_inline((uint16_t)a));
  const float a1 = bt_bf16_daz_inline(bt_bf16_to_f32_inline((uint16_t)(a >> 16)));
  const float b0 = bt_bf16_daz_inline(bt_bf16_to_f32_inline((uint16_t)b));
  const float b1 = bt_bf16_daz_inline(bt_bf16_to_f32_inline((uint16_t)(b >> 16)));
  acc = bt_bf16_daz_inline(__builtin_fmaf(a1, b1, bt_bf16_daz_inline(acc)));
  return bt_bf16_daz_inline(__builtin_fmaf(a0, b0, acc));
}

/*
 * exp for the bfloat16 training path (`--precision bf16` only), whose results
 * are rounded to bfloat16 (8 significant bits) before their products: the
 * softmax's P and GELU's sigmoid. A degree-4 Taylor polynomial on
 * |r| <= ln2/2 with fused steps and a one-constant reduction: relative error
 * < 6e-5 (against bfloat16's 2e-3), 11 operations a vector against the
 * float32 exp's 26 (docs/measurements.md, "The bf16 softmax's exp").
 * x is clamped to [-86, 88]; x < -86 gives 0 and every other result is a
 * normal float (e^-86 to e^88), so vscalefps (AVX-512) and 2^n made from
 * exponent bits (this scalar reference) give the same bits; so do
 * vroundscaleps and rintf (nearest even). NaN stays NaN.
 */
static inline __attribute__((always_inline)) float bt_expb_inline(float x) {
  if (x != x)
    return x;
  const float xc = x > -86.0f ? (x < 88.0f ? x : 88.0f) : -86.0f;
  const float n = rintf(xc * 1.44269504088896341f);
  const float r = fmaf(n, -0.693147180559945309f, xc);
  float p = fmaf(1.0f / 24.0f, r, 1.0f / 6.0f);
  p = fmaf(p, r, 0.5f);
  p = fmaf(p, r, 1.0f);
  p = fmaf(p, r, 1.0f);
  const uint32_t e = (uint32_t)((int32_t)n + 127) << 23;
  float s;
  memcpy(&s, &e, sizeof s);
  return x < -86.0f ? 0.0f : p * s;
}

#if defined(__AVX512F__)
#include <immintrin.h>
/* bt_expb_inline on 16 floats, the same bits. */
static inline __attribute__((always_inline)) __m512 bt_expb512(__m512 x) {
  /* max and min return their second operand for NaN: x's NaN goes through */
  const __m512 xc = _mm512_min_ps(_mm512_set1_ps(88.0f), _mm512_max_ps(_mm512_set1_ps(-86.0f), x));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-0.693147180559945309f), xc);
  __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(1.0f / 24.0f), r, _mm512_set1_ps(1.0f / 6.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_maskz_scalef_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(-86.0f), _CMP_NLT_UQ), p, n);
}
#endif

#endif
