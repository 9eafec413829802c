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

#endif
