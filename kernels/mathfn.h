/*
 * mathfn.h - private to kernels/: bt's own exp, tanh, sin and cos.
 *
 * libm differs between machines in the last bit, so nothing whose bits a
 * decoder must reproduce may call it. These use only +, -, *, / and bit moves,
 * with no FMA (the build has -ffp-contract=off), so the scalar code and every
 * auto-vectorised copy of it give identical bits on any IEEE-754 machine.
 * Branch-free selects keep the float versions vectorisable.
 */
#ifndef BT_MATHFN_H
#define BT_MATHFN_H

#include <stdint.h>
#include <string.h>

static inline float bt_bits_to_float_(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* exp(x): Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, then a degree-6
 * Taylor polynomial (error ~1 ulp). exp(x < -87) = 0, exp(x > 88) = +inf. */
static inline float bt_expf_inline(float x) {
  float xc = x > -87.0f ? x : -87.0f; /* also maps NaN to -87: see last line */
  xc = xc < 88.0f ? xc : 88.0f;
  float t = xc * 1.44269504088896341f;
  float n = (t + 12582912.0f) - 12582912.0f; /* round to nearest integer */
  float r = xc - n * 0.693145751953125f;     /* ln2 high part: n*hi is exact */
  r = r - n * 1.42860682030941723e-6f;       /* ln2 low part */
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  int32_t e = (int32_t)n + 127; /* n in [-126, 127]: a normal power of two */
  float y = p * bt_bits_to_float_((uint32_t)e << 23);
  y = x < -87.0f ? 0.0f : y;
  y = x > 88.0f ? __builtin_inff() : y;
  return x != x ? x : y;
}

/* tanh(x) = 1 - 2/(exp(2|x|)+1) with the sign of x; absolute error < 2e-7
 * (|x| >= 9 gives +-0.99999994); NaN stays NaN. */
static inline float bt_tanhf_inline(float x) {
  float a = x < 0.0f ? -x : x;
  a = a < 9.0f ? a : 9.0f;
  float e = bt_expf_inline(2.0f * a);
  float t = 1.0f - 2.0f / (e + 1.0f);
  t = x < 0.0f ? -t : t;
  return x != x ? x : t;
}

/* ---- double precision, for tables (rotary angles) ---- */

/* exp(x) for |x| < 700: x = n ln2 + r, degree-13 Taylor on |r| <= 0.347. */
static inline double bt_exp_d(double x) {
  double n = (double)(int64_t)(x * 1.4426950408889634 + (x < 0 ? -0.5 : 0.5));
  double r = x - n * 0.6931471803691238 - n * 1.9082149292705877e-10;
  double p = 1.0;
  for (int k = 13; k >= 1; k--) /* 1 + r(1 + r/2(1 + r/3(...))) */
    p = 1.0 + p * r / (double)k;
  uint64_t bits = (uint64_t)((int64_t)n + 1023) << 52;
  double s;
  memcpy(&s, &bits, sizeof s);
  return p * s;
}

/* sin and cos of x for |x| < 1e5: reduce by pi/2 (three-part Cody-Waite),
 * then Taylor series on |r| <= pi/4 to degree 19/18. */
static inline void bt_sincos_d(double x, double *s, double *c) {
  double k = (double)(int64_t)(x * 0.63661977236758134 + (x < 0 ? -0.5 : 0.5));
  double r = x - k * 1.5707963267341256;
  r = r - k * 6.077100506506192e-11;
  r = r - k * 2.0222662487959506e-21;
  double r2 = r * r, sn = 0.0, cs = 0.0;
  for (int i = 19; i >= 3; i -= 2) { /* odd terms of sin, Horner in r^2 */
    double f = 1.0;
    for (int j = 2; j <= i; j++) f *= (double)j;
    sn = (sn + ((i / 2) % 2 ? -1.0 : 1.0) / f) * r2;
  }
  sn = r + r * sn;
  for (int i = 18; i >= 2; i -= 2) {
    double f = 1.0;
    for (int j = 2; j <= i; j++) f *= (double)j;
    cs = (cs + ((i / 2) % 2 ? -1.0 : 1.0) / f) * r2;
  }
  cs = 1.0 + cs;
  switch ((int64_t)k & 3) {
  case 0: *s = sn; *c = cs; break;
  case 1: *s = cs; *c = -sn; break;
  case 2: *s = -sn; *c = -cs; break;
  default: *s = -cs; *c = sn; break;
  }
}

/* ln(x) for a finite x >= 1 (a softmax denominator), in double:
 * x = 2^e m with m in [sqrt(1/2), sqrt(2)), ln m = 2 atanh(s), s = (m-1)/(m+1),
 * |s| <= 0.1716; the series to s^21 is exact to double rounding. */
static inline double bt_ln_pos_d(double x) {
  uint64_t u;
  memcpy(&u, &x, sizeof u);
  int e = (int)((u >> 52) & 0x7ff) - 1023;
  u = (u & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL;
  double m;
  memcpy(&m, &u, sizeof m);
  if (m > 1.4142135623730951) {
    m *= 0.5;
    e += 1;
  }
  double s = (m - 1.0) / (m + 1.0), s2 = s * s, p = 0.0;
  for (int k = 21; k >= 3; k -= 2)
    p = (p + 1.0 / (double)k) * s2;
  return (double)e * 0.69314718055994531 + (2.0 * s + 2.0 * s * p);
}

#endif
