/*
 * f16.h - IEEE binary16 ("half") to binary32 in portable C, exact on every
 * compiler and ISA (internal to bt; the public wrappers are bt_f16_to_f32 and
 * bt_f32_to_f16_exact in kernels.h).
 *
 * The shipped checkpoints store their weights as binary16, so a model loaded
 * from one holds floats that are halves exactly; inference keeps a 16-bit copy
 * of its matrices then and widens it inside the GEMM (F16C's vcvtph2ps on the
 * SIMD paths, this on the scalar one). Widening is exact, so the products see
 * the same floats as from the float copy, and give the same bits.
 */
#ifndef BT_F16_H
#define BT_F16_H

#include <stdint.h>
#include <string.h>

/* The half's exact value: normals and subnormals, infinities; a NaN stays a
 * NaN with its payload shifted into place. */
static inline __attribute__((always_inline)) float bt_f16_to_f32_inline(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu, u;
  if (e == 0x1fu) {
    u = sign | 0x7f800000u | m << 13;
  } else if (e) {
    u = sign | (e + 112u) << 23 | m << 13; /* rebias 15 -> 127 */
  } else if (m == 0) {
    u = sign;
  } else { /* subnormal: m * 2^-24, normalised */
    e = 113u;
    while (!(m & 0x400u)) {
      m <<= 1;
      e--;
    }
    u = sign | e << 23 | (m & 0x3ffu) << 13;
  }
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* Whether x is exactly a half's value (NaN is not); if so *h holds that half. */
static inline int bt_f32_to_f16_exact_inline(float x, uint16_t *h) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  const uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
  const int e = (int)((u >> 23) & 0xffu) - 127 + 15;
  const uint32_t m = u & 0x7fffffu;
  uint16_t c;
  if (((u >> 23) & 0xffu) == 0xffu && m)
    return 0; /* NaN */
  if (((u >> 23) & 0xffu) == 0xffu)
    c = (uint16_t)(sign | 0x7c00u);
  else if ((u & 0x7fffffffu) == 0)
    c = sign;
  else if (e >= 31)
    return 0;
  else if (e > 0)
    c = (uint16_t)(sign | (uint32_t)e << 10 | m >> 13);
  else if (e >= -10)
    c = (uint16_t)(sign | (m | 0x800000u) >> (14 - e));
  else
    return 0;
  const float back = bt_f16_to_f32_inline(c);
  if (memcmp(&back, &x, sizeof x) != 0)
    return 0;
  *h = c;
  return 1;
}

#endif
