/*
 * main_bench_gemm.c - bt-bench-gemm: GFLOP/s of the own GEMM per ISA path and
 * of OpenBLAS, at 1 and 2 threads, on the shapes training and decoding use,
 * against the measured FMA peak. A benchmark, not a test.
 *
 *   bt-bench-gemm [-s big|small|train|all] [-T maxthreads] [-r seconds]
 */
#include "tools/cli.h"
#include "kernels/kernels.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const char *name;
  int ta, tb, M, N, K;
} bench_shape;

static double g_min_time = 0.3; /* seconds of repeats per measurement */

typedef void (*gemm_fn)(int, int, int, int, int, const float *, int, const float *, int,
                        float *, int, int);

/* Best-of-repeats GFLOP/s of one call shape. */
static double time_gemm(gemm_fn f, const bench_shape *s, const float *A, const float *B,
                        float *C) {
  int lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N;
  double flops = 2.0 * s->M * s->N * s->K, best = 1e30, total = 0;
  f(s->ta, s->tb, s->M, s->N, s->K, A, lda, B, ldb, C, s->N, 0); /* warm up */
  int reps = 0;
  while ((total < g_min_time || reps < 3) && reps < 100000) {
    double t0 = omp_get_wtime();
    f(s->ta, s->tb, s->M, s->N, s->K, A, lda, B, ldb, C, s->N, 0);
    double dt = omp_get_wtime() - t0;
    total += dt;
    if (dt < best)
      best = dt;
    reps++;
  }
  return flops / best * 1e-9;
}

static void usage(FILE *f) {
  fprintf(f, "usage: bt-bench-gemm [-s big|small|train|all] [-T maxthreads] [-r seconds]\n");
}

int main(int argc, char **argv) {
  bt_cli_init("bt-bench-gemm", "[options] (see --help)");
  bt_cli_apply_isa();
  const char *set = "all";
  int maxt = 2;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-s") && i + 1 < argc)
      set = argv[++i];
    else if (!strcmp(argv[i], "-T") && i + 1 < argc)
      maxt = (int)bt_cli_count("-T", argv[++i], 1, 4096);
    else if (!strcmp(argv[i], "-r") && i + 1 < argc) {
      double r;
      if (bt_parse_duration(argv[++i], &r) != 0 || r <= 0)
        bt_usage_error("-r wants a duration (0.2, 2s), not '%s'", argv[i]);
      g_min_time = r;
    }
    else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      usage(stdout);
      return 0;
    } else {
      usage(stderr);
      return 1;
    }
  }
  if (maxt < 1)
    maxt = 1;
  int do_big = !strcmp(set, "big") || !strcmp(set, "all"), do_small = !strcmp(set, "small") || !strcmp(set, "all");
  int do_train = !strcmp(set, "train");
  if (!do_big && !do_small && !do_train)
    bt_usage_error("-s wants big, small, train or all, not '%s'", set);
  const int R = 16384; /* tokens per step of the 3.2M preset: 8 x 2048 */
  bench_shape shapes[128];
  static char names[128][48];
  int ns = 0;
  if (do_big) {
    static const int ic_oc[][2] = {{256, 768}, {256, 256}, {256, 1024}, {1024, 256},
                                   {128, 384}, {128, 512}, {512, 128},
                                   {64, 192},  {64, 256},  {256, 64}};
    for (size_t t = 0; t < sizeof ic_oc / sizeof ic_oc[0]; t++) {
      int IC = ic_oc[t][0], OC = ic_oc[t][1];
      snprintf(names[ns], 48, "fwd %dx%d", IC, OC);
      shapes[ns] = (bench_shape){names[ns], 0, 1, R, OC, IC};
      ns++;
      if (t < 4) {
        snprintf(names[ns], 48, "dinp %dx%d", IC, OC);
        shapes[ns] = (bench_shape){names[ns], 0, 0, R, IC, OC};
        ns++;
      }
      if (t < 4 || t == 7) {
        snprintf(names[ns], 48, "dw %dx%d", IC, OC);
        shapes[ns] = (bench_shape){names[ns], 1, 0, OC, IC, R};
        ns++;
      }
    }
  }
  /* every linear layer of every preset (QKV, attention out, FFN in and out,
   * the byte head), forward and both backward GEMMs, as bt-train calls them */
  for (int C = 64; do_train && C <= 256; C *= 2) {
    const int ic_oc[][2] = {{C, 3 * C}, {C, C}, {C, 4 * C}, {4 * C, C}, {C, 256}};
    for (int t = 0; t < 5; t++) {
      const int IC = ic_oc[t][0], OC = ic_oc[t][1];
      snprintf(names[ns], 48, "fwd %dx%d", IC, OC);
      shapes[ns] = (bench_shape){names[ns], 0, 1, R, OC, IC};
      ns++;
      snprintf(names[ns], 48, "dinp %dx%d", IC, OC);
      shapes[ns] = (bench_shape){names[ns], 0, 0, R, IC, OC};
      ns++;
      snprintf(names[ns], 48, "dw %dx%d", IC, OC);
      shapes[ns] = (bench_shape){names[ns], 1, 0, OC, IC, R};
      ns++;
    }
  }
  if (do_small) {
    static const int ms[] = {1, 8, 32, 64};
    static const int nk[][2] = {{768, 256}, {256, 1024}, {1024, 1024}};
    for (size_t a = 0; a < 4; a++)
      for (size_t b = 0; b < 3; b++)
        for (int tb = 1; tb >= 0; tb--)
          shapes[ns++] = (bench_shape){"small", 0, tb, ms[a], nk[b][0], nk[b][1]};
  }

  bt_isa best = bt_isa_detect();
  printf("# measured fp32 FMA peak (GFLOP/s)\n");
  double peak[3][8] = {{0}};
  for (int isa = best; isa >= BT_ISA_SCALAR; isa--)
    for (int t = 1; t <= maxt && t < 8; t++) {
      peak[isa][t] = bt_peak_gflops((bt_isa)isa, t);
      printf("#   %-6s threads %d: %7.1f\n", bt_isa_name((bt_isa)isa), t, peak[isa][t]);
    }

  size_t maxa = 0, maxb = 0, maxc = 0;
  for (int i = 0; i < ns; i++) {
    size_t a = (size_t)shapes[i].M * shapes[i].K, b = (size_t)shapes[i].K * shapes[i].N,
           c = (size_t)shapes[i].M * shapes[i].N;
    maxa = a > maxa ? a : maxa;
    maxb = b > maxb ? b : maxb;
    maxc = c > maxc ? c : maxc;
  }
  float *A = malloc(maxa * sizeof(float)), *B = malloc(maxb * sizeof(float)),
        *C = malloc(maxc * sizeof(float));
  if (!A || !B || !C) {
    fprintf(stderr, "bt-bench-gemm: out of memory\n");
    return 1;
  }
  for (size_t i = 0; i < maxa; i++) A[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
  for (size_t i = 0; i < maxb; i++) B[i] = (float)((i * 104729) % 1000) * 1e-3f - 0.5f;

  if (bt_bf16_available())
    printf("# vdpbf16ps FLOPs / fp32 FMA FLOPs, one thread: %.2fx (bt-train --precision auto takes bf16 "
           "from 1.5x)\n", bt_bf16_peak_ratio());
  printf("# GFLOP/s (best of repeats); pct = own avx512 / measured avx512 peak at the same "
         "threads; bf16x = bf16 inputs (AVX512_BF16) / own avx512 fp32\n");
  printf("%-14s %2s %2s %6s %5s %6s |", "shape", "ta", "tb", "M", "N", "K");
  for (int isa = best; isa >= BT_ISA_SCALAR; isa--)
    for (int t = 1; t <= maxt; t++)
      printf(" %6s/%d", bt_isa_name((bt_isa)isa), t);
  for (int t = 1; t <= maxt; t++)
    printf("   blas/%d", t);
  const int bf16 = bt_bf16_available();
  for (int t = 1; bf16 && t <= maxt; t++)
    printf("   bf16/%d", t);
  for (int t = 1; t <= maxt; t++)
    printf("  pct/%d", t);
  for (int t = 1; bf16 && t <= maxt; t++)
    printf(" bf16x/%d", t);
  printf("\n");
  fflush(stdout);
  for (int i = 0; i < ns; i++) {
    const bench_shape *s = &shapes[i];
    double flops = 2.0 * s->M * s->N * s->K;
    printf("%-14s %2d %2d %6d %5d %6d |", s->name, s->ta, s->tb, s->M, s->N, s->K);
    double own512[8] = {0};
    for (int isa = best; isa >= BT_ISA_SCALAR; isa--) {
      bt_isa_set((bt_isa)isa);
      for (int t = 1; t <= maxt; t++) {
        if (isa == BT_ISA_SCALAR && flops > 2e8) { /* minutes; not worth it */
          printf(" %8s", "-");
          continue;
        }
        bt_set_threads(t);
        double g = time_gemm(bt_gemm, s, A, B, C);
        if (isa == BT_ISA_AVX512 && t < 8)
          own512[t] = g;
        printf(" %8.1f", g);
        fflush(stdout);
      }
    }
    bt_isa_set(best);
    for (int t = 1; t <= maxt; t++) {
      bt_set_threads(t);
      printf(" %8.1f", time_gemm(bt_gemm_blas, s, A, B, C));
      fflush(stdout);
    }
    double b16[8] = {0};
    for (int t = 1; bf16 && t <= maxt && t < 8; t++) {
      bt_set_threads(t);
      printf(" %8.1f", b16[t] = time_gemm(bt_gemm_bf16, s, A, B, C));
      fflush(stdout);
    }
    for (int t = 1; t <= maxt && t < 8; t++)
      if (best == BT_ISA_AVX512 && peak[BT_ISA_AVX512][t] > 0)
        printf(" %5.0f%%", 100.0 * own512[t] / peak[BT_ISA_AVX512][t]);
    for (int t = 1; bf16 && t <= maxt && t < 8; t++) /* bf16 against the own fp32 kernel */
      printf(" %6.2fx", own512[t] > 0 ? b16[t] / own512[t] : 0.0);
    printf("\n");
    fflush(stdout);
  }
  free(A);
  free(B);
  free(C);
  return 0;
}
