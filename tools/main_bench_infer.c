/*
 * bt-bench-infer - inference throughput per preset (random weights): the
 * batched teacher-forced pass (compression) and the incremental pass with a
 * KV cache (decompression), in bytes per second over all streams, at 1..N
 * threads, and their ratio. A benchmark, not a test.
 *
 *   bt-bench-infer [-p preset] [-c chunks] [-n streams] [-L len] [-T maxthreads]
 *                  [-m both|batched|incr] [-k rows] [-kv bf16|int8]
 *
 * Batched: c chunks of T bytes in one call. Incremental: n streams stepped in
 * lockstep through T positions, -k rows per stream a pass (bt_infer_extend, as
 * multi-row decoding does when every guess holds; 1: bt_infer_step), with the
 * K/V cache in -kv's format (int8: the decoder's, BT_KV_INT8; the batched
 * pass then uses the encoder's wide layout). FLOPs per byte are counted as 2 per weight of
 * the matrices plus 4 t C per layer for attention at position t.
 */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli.h"
#include "infer/infer.h"
#include "kernels/kernels.h"
#include "train/model.h"

static double now(void) { return omp_get_wtime(); }

#define USAGE                                                                                  \
  "usage: bt-bench-infer [-p 200K|800K|3.2M] [-c chunks] [-n streams] [-L len] [-T maxthreads] " \
  "[-m both|batched|incr] [-k rows] [-kv bf16|int8]\n"
static void usage(void) {
  fputs(USAGE, stderr);
  exit(1);
}

int main(int argc, char **argv) {
  bt_cli_init("bt-bench-infer", "[options] (see --help)");
  bt_cli_apply_isa();
  const char *only = NULL;
  int chunks = 4, streams = 32, T = 2048, maxth = 2, mode = 3, K = 1, kv8 = 0;
  if (bt_cli_wants_help(argc, argv)) {
    fputs(USAGE, stdout);
    return 0;
  }
  for (int i = 1; i < argc; i++) {
    if (i + 1 >= argc)
      usage();
    const char *a = argv[i], *v = argv[++i];
    if (!strcmp(a, "-p")) {
      only = v;
      continue;
    }
    if (!strcmp(a, "-m")) {
      mode = !strcmp(v, "batched") ? 1 : !strcmp(v, "incr") ? 2 : !strcmp(v, "both") ? 3 : 0;
      if (!mode)
        usage();
      continue;
    }
    if (!strcmp(a, "-kv")) {
      kv8 = !strcmp(v, "int8") ? 1 : !strcmp(v, "bf16") ? 0 : -1;
      if (kv8 < 0)
        usage();
      continue;
    }
    int x = (int)bt_cli_count(a, v, 1, 1 << 20);
    if (!strcmp(a, "-c")) chunks = x;
    else if (!strcmp(a, "-n")) streams = x;
    else if (!strcmp(a, "-L")) T = x;
    else if (!strcmp(a, "-T")) maxth = x;
    else if (!strcmp(a, "-k")) K = x;
    else usage();
  }
  static const char *presets[] = {"200K", "800K", "3.2M"};
  printf("bt inference, isa %s, K/V %s; batched: %d chunks x %d; incremental: %d streams x %d "
         "positions, %d a pass\n", bt_isa_name(bt_isa_get()), kv8 ? "int8" : "bf16", chunks, T,
         streams, T, K);
  printf("%-5s %3s | %12s %8s | %12s %8s | %6s\n", "model", "thr", "batched B/s", "GFLOP/s",
         "increm. B/s", "GFLOP/s", "ratio");
  for (size_t p = 0; p < sizeof presets / sizeof presets[0]; p++) {
    if (only && strcmp(only, presets[p]))
      continue;
    bt_config cfg;
    bt_config_preset(presets[p], &cfg);
    if (T > cfg.ctx) {
      fprintf(stderr, "bt-bench-infer: -L %d exceeds the context %d\n", T, cfg.ctx);
      return 1;
    }
    bt_model *m = NULL;
    bt_infer *inf = NULL;
    bt_error e = bt_model_create(&m, &cfg);
    if (!e) {
      bt_model_init(m, 1);
      e = bt_infer_create(&inf, m, chunks > streams ? chunks : streams, T);
    }
    if (e) {
      fprintf(stderr, "bt-bench-infer: %s: %s\n", bt_error_name(e), bt_error_detail());
      return 1;
    }
    const double C = cfg.d_model, L = cfg.n_layer;
    const double flops_byte = 2.0 * (L * 12 * C * C + BT_VOCAB * C) + 4.0 * L * C * (T + 1) / 2.0;
    size_t nb = (size_t)(chunks > streams ? chunks : streams) * T;
    uint8_t *seq = malloc(nb), *tok = malloc((size_t)streams * K);
    int *rows = malloc((size_t)streams * sizeof *rows);
    float *lg = malloc(nb * BT_VOCAB * sizeof(float));
    if (!seq || !tok || !lg || !rows) {
      fprintf(stderr, "bt-bench-infer: out of memory\n");
      return 1;
    }
    uint64_t s = 88172645463325252ULL;
    for (size_t i = 0; i < nb; i++) {
      s ^= s << 13; s ^= s >> 7; s ^= s << 17;
      seq[i] = (uint8_t)s;
    }
    /* Warm-up: touches every stream's cache pages once, so that neither
     * timing pays the first-touch page faults. */
    bt_infer_set_kv8(inf, kv8 ? BT_KV_INT8_WIDE : BT_KV_BF16);
    e = bt_infer_batched(inf, seq, chunks > streams ? chunks : streams, T, lg);
    for (int th = 1; th <= maxth; th++) {
      bt_set_threads(th);
      bt_infer_set_kv8(inf, kv8 ? BT_KV_INT8_WIDE : BT_KV_BF16);
      double t0 = now(), tb = 0, ti = 0;
      if (mode & 1)
        e = bt_infer_batched(inf, seq, chunks, T, lg);
      tb = now() - t0;
      bt_infer_set_kv8(inf, kv8 ? BT_KV_INT8 : BT_KV_BF16);
      bt_infer_reset(inf, streams);
      t0 = now();
      for (int t = 0; t < T && !e && (mode & 2) && K == 1; t++) {
        for (int k = 0; k < streams; k++)
          tok[k] = t ? seq[(size_t)k * T + t - 1] : 0;
        e = bt_infer_step(inf, t ? tok : NULL, streams, lg);
      }
      for (int t = 0; t < T && !e && (mode & 2) && K > 1; t += K) {
        for (int k = 0; k < streams; k++) {
          rows[k] = T - t < K ? T - t : K;
          for (int r = 0; r < rows[k]; r++)
            tok[(size_t)k * K + r] = t + r ? seq[(size_t)k * T + t + r - 1] : 0;
        }
        e = bt_infer_extend(inf, tok, (size_t)K, rows, streams, lg);
      }
      ti = now() - t0;
      if (e) {
        fprintf(stderr, "bt-bench-infer: %s: %s\n", bt_error_name(e), bt_error_detail());
        return 1;
      }
      double bb = chunks * (double)T / tb, bi = streams * (double)T / ti;
      printf("%-5s %3d |", presets[p], th);
      if (mode & 1)
        printf(" %12.0f %8.1f |", bb, bb * flops_byte * 1e-9);
      else
        printf(" %12s %8s |", "-", "-");
      if (mode & 2)
        printf(" %12.0f %8.1f |", bi, bi * flops_byte * 1e-9);
      else
        printf(" %12s %8s |", "-", "-");
      if (mode == 3)
        printf(" %6.2f\n", bi / bb);
      else
        printf(" %6s\n", "-");
      fflush(stdout);
    }
    free(seq);
    free(tok);
    free(lg);
    free(rows);
    bt_infer_free(inf);
    bt_model_free(m);
  }
  return 0;
}
