/* isa.c - run-time choice of the SIMD path, and the kernels' thread count. */
#include "kernels/kernels.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

void openblas_set_num_threads(int num_threads); /* from libopenblas */
int openblas_get_num_threads(void);

static int g_isa = -1; /* -1: not yet resolved */

bt_isa bt_isa_detect(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  /* libgcc/compiler-rt also check that the OS saves the wider registers. */
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("fma"))
    return BT_ISA_AVX512;
  /* clang 14 knows no "f16c" feature string; every AVX2+FMA CPU has F16C. */
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return BT_ISA_AVX2;
#endif
  return BT_ISA_SCALAR;
}

const char *bt_isa_name(bt_isa isa) {
  switch (isa) {
  case BT_ISA_AVX512: return "avx512";
  case BT_ISA_AVX2: return "avx2";
  case BT_ISA_SCALAR: return "scalar";
  }
  return "unknown";
}

int bt_isa_parse(const char *s, bt_isa *out) {
  static const bt_isa all[] = {BT_ISA_SCALAR, BT_ISA_AVX2, BT_ISA_AVX512};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    if (s && strcmp(s, bt_isa_name(all[i])) == 0) {
      *out = all[i];
      return 0;
    }
  return -1;
}

bt_isa bt_isa_get(void) {
  if (g_isa < 0) {
    bt_isa best = bt_isa_detect(), want;
    /* An unsupported or unknown request falls back to the best path: the
     * CLIs check BT_ISA themselves and report it. */
    if (bt_isa_parse(getenv("BT_ISA"), &want) == 0 && want <= best)
      best = want;
    g_isa = (int)best;
  }
  return (bt_isa)g_isa;
}

int bt_isa_set(bt_isa isa) {
  if (isa > bt_isa_detect())
    return -1;
  g_isa = (int)isa;
  return 0;
}

void bt_set_threads(int n) {
  if (n <= 0)
    return;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int bt_get_threads(void) { return omp_get_max_threads(); }

void bt_threads_save(int saved[2]) {
  saved[0] = omp_get_max_threads();
  saved[1] = openblas_get_num_threads();
}

void bt_threads_restore(const int saved[2]) {
  omp_set_num_threads(saved[0]);
  openblas_set_num_threads(saved[1]);
}
