/*
 * check.h - the tiny test harness every tests/test_*.c uses.
 *
 *   CHECK(cond, "fmt", ...)   records a pass or a failure (with file:line)
 *   CHECK_NEAR(a, b, tol)     |a-b| <= tol
 *   return check_summary("name");   prints "N passed, N failed", exit code
 * Asserts stay on in tests: this header undefines NDEBUG before assert.h.
 */
#ifndef BT_CHECK_H
#define BT_CHECK_H
#undef NDEBUG
#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_pass_, check_fail_;

#define CHECK(cond, ...)                                                     \
  do {                                                                       \
    if (cond) {                                                              \
      check_pass_++;                                                         \
    } else {                                                                 \
      check_fail_++;                                                         \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);        \
      fprintf(stderr, __VA_ARGS__);                                          \
      fputc('\n', stderr);                                                   \
    }                                                                        \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                \
  do {                                                                       \
    double a_ = (a), b_ = (b);                                               \
    CHECK(fabs(a_ - b_) <= (tol), "%s = %.9g, %s = %.9g, tol %.3g", #a, a_,  \
          #b, b_, (double)(tol));                                            \
  } while (0)

/* Deterministic test data: xorshift64*, uniform in [-1, 1). */
static inline uint64_t check_rng_next_(uint64_t *s) {
  *s ^= *s >> 12; *s ^= *s << 25; *s ^= *s >> 27;
  return *s * 2685821657736338717ULL;
}
static inline void check_fill(float *x, size_t n, uint64_t seed, float scale) {
  uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 1;
  for (size_t i = 0; i < n; i++)
    x[i] = scale * (float)((double)(check_rng_next_(&s) >> 11) * 0x1p-52 - 1.0);
}

/* Largest |a-b| / (|b| + floor) over n elements. */
static inline double check_max_rel(const float *a, const float *b, size_t n, double floor_) {
  double m = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - b[i]) / (fabs((double)b[i]) + floor_);
    if (d > m || d != d) m = d != d ? INFINITY : d;
  }
  return m;
}

static inline int check_summary(const char *name) {
  printf("%s: %d passed, %d failed\n", name, check_pass_, check_fail_);
  return check_fail_ ? 1 : 0;
}
#endif
