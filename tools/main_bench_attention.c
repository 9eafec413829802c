/*
 * bt-bench-attention - times the causal attention kernels at the presets'
 * shapes (B=8, T=2048), per SIMD path and thread count, as GFLOP/s and as a
 * share of the measured FMA peak. A benchmark, not a test.
 *
 *   bt-bench-attention [-B N] [-L len] [-n reps] [-T maxthreads]
 *
 * FLOPs are counted causally: forward 2 * (T(T+1)/2) * hs * 2 per (b,h)
 * (S = Q K^T and O = P V), backward 2.5 times that (S again, dP, dQ, dK, dV).
 * Where the CPU has AVX512_BF16, the row "bf16" is the avx512 path with
 * bfloat16 products (bt-train --precision bf16), its %peak against the
 * float32 FMA peak, like the others.
 */
#include "tools/cli.h"
#include "kernels/kernels.h"

#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fill(float *x, size_t n, uint64_t seed, float scale) {
  uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 1;
  for (size_t i = 0; i < n; i++) {
    s ^= s >> 12; s ^= s << 25; s ^= s >> 27;
    x[i] = scale * (float)((double)((s * 2685821657736338717ULL) >> 11) * 0x1p-52 - 1.0);
  }
}

#define USAGE "usage: bt-bench-attention [-B N] [-L len] [-n reps] [-T maxthreads]\n"
static void usage(void) {
  fputs(USAGE, stderr);
  exit(1);
}

int main(int argc, char **argv) {
  bt_cli_init("bt-bench-attention", "[options] (see --help)");
  bt_cli_apply_isa();
  int B = 8, T = 2048, reps = 3, maxth = 2;
  if (bt_cli_wants_help(argc, argv)) {
    fputs(USAGE, stdout);
    return 0;
  }
  for (int i = 1; i < argc; i += 2) {
    if (i + 1 >= argc)
      usage();
    int v = (int)bt_cli_count(argv[i], argv[i + 1], 1, 1 << 20);
    if (!strcmp(argv[i], "-B")) B = v;
    else if (!strcmp(argv[i], "-L")) T = v;
    else if (!strcmp(argv[i], "-n")) reps = v;
    else if (!strcmp(argv[i], "-T")) maxth = v;
    else usage();
  }
  static const struct { const char *name; int C, H; } presets[] = {
      {"3.2M", 256, 8}, {"800K", 128, 4}, {"200K", 64, 4}};
  const bt_isa best = bt_isa_detect();
  /* %peak is against threads x the one-thread peak: a multi-thread peak
   * measured while other work shares the cores comes out low. */
  double peak[3] = {0};
  for (int isa = BT_ISA_AVX2; isa <= (int)best; isa++)
    peak[isa] = bt_peak_gflops((bt_isa)isa, 1);

  printf("causal attention, B=%d T=%d, best of %d\n", B, T, reps);
  printf("%-5s %4s %3s %-6s %3s | %9s %8s %6s | %9s %8s %6s\n", "model", "C", "hs",
         "isa", "thr", "fwd ms", "GFLOP/s", "%peak", "bwd ms", "GFLOP/s", "%peak");
  for (size_t p = 0; p < sizeof presets / sizeof presets[0]; p++) {
    const int C = presets[p].C, H = presets[p].H, hs = C / H;
    size_t n3 = (size_t)B * T * 3 * C, n = (size_t)B * T * C;
    float *qkv = malloc(n3 * 4), *dqkv = calloc(n3, 4), *out = malloc(n * 4),
          *dout = malloc(n * 4), *lse = malloc((size_t)B * H * T * 4);
    if (!qkv || !dqkv || !out || !dout || !lse) {
      fprintf(stderr, "bt-bench-attention: out of memory\n");
      return 1;
    }
    fill(qkv, n3, 1, 2.0f);
    fill(dout, n, 2, 1.0f);
    const double fwd_flops = (double)B * H * 2.0 * ((double)T * (T + 1) / 2) * hs * 2;
    const double bwd_flops = 2.5 * fwd_flops;
    bt_isa_set(best);
    const int bf16 = bt_bf16_available();
    for (int vi = bf16 ? (int)best + 1 : (int)best; vi >= BT_ISA_AVX2; vi--) {
      const int isa = vi > (int)best ? (int)best : vi; /* best + 1: bf16 */
      bt_isa_set((bt_isa)isa);
      bt_gemm_set_backend(vi > (int)best ? BT_GEMM_BF16 : BT_GEMM_AUTO);
      for (int th = 1; th <= maxth; th++) {
        bt_set_threads(th);
        double tf = 1e30, tb = 1e30;
        bt_attention_forward(out, lse, qkv, B, T, C, H); /* warm up */
        for (int r = 0; r < reps; r++) {
          double t0 = omp_get_wtime();
          bt_attention_forward(out, lse, qkv, B, T, C, H);
          double t1 = omp_get_wtime();
          bt_attention_backward(dqkv, dout, qkv, out, lse, B, T, C, H);
          double t2 = omp_get_wtime();
          if (t1 - t0 < tf) tf = t1 - t0;
          if (t2 - t1 < tb) tb = t2 - t1;
        }
        double gf = fwd_flops / tf * 1e-9, gb = bwd_flops / tb * 1e-9;
        printf("%-5s %4d %3d %-6s %3d | %9.1f %8.1f %5.1f%% | %9.1f %8.1f %5.1f%%\n",
               presets[p].name, C, hs, vi > (int)best ? "bf16" : bt_isa_name((bt_isa)isa), th, tf * 1e3, gf,
               100 * gf / (peak[isa] * th), tb * 1e3, gb, 100 * gb / (peak[isa] * th));
        fflush(stdout);
      }
      bt_gemm_set_backend(BT_GEMM_AUTO);
    }
    free(qkv); free(dqkv); free(out); free(dout); free(lse);
  }
  bt_isa_set(best);
  printf("one-thread peak GFLOP/s:");
  for (int isa = BT_ISA_AVX2; isa <= (int)best; isa++)
    printf(" %s=%.0f", bt_isa_name((bt_isa)isa), peak[isa]);
  printf("\n");
  return 0;
}
