/*
 * bt-bench-train - training throughput of the engine at the presets' shapes:
 * the main kernels' GFLOP/s, forward+backward tokens/s and MFU.
 *
 *   bt-bench-train [--presets 200K,800K,3.2M] [--batch 8] [--ctx 2048] [--steps 3] [-T 2] [--json]
 *
 * FLOPs per token = 6 * params + 6 * L * T * C: the dense matmuls forward and
 * backward, plus causal attention (QK^T and PV over T/2 keys on average,
 * forward 2*T*C per layer, backward twice that). MFU divides by the fp32 FMA
 * peak measured here with bt_peak_gflops on the active ISA and thread count.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data/data.h"
#include "tools/cli.h"
#include "kernels/kernels.h"
#include "kernels/prof.h"
#include "train/model.h"

static void die(const char *what) {
  fprintf(stderr, "bt-bench-train: %s: %s %s\n", what, bt_error_name(BT_ERR_ARG), bt_error_detail());
  exit(1);
}

/* GFLOP/s of a linear forward out (N,OC) = inp (N,IC) w^T on the active path. */
static double bench_linear(int N, int IC, int OC) {
  float *x = aligned_alloc(64, (size_t)N * IC * 4), *w = aligned_alloc(64, (size_t)OC * IC * 4);
  float *y = aligned_alloc(64, (size_t)N * OC * 4);
  for (size_t i = 0; i < (size_t)N * IC; i++) x[i] = (float)(i % 7) * 0.1f;
  for (size_t i = 0; i < (size_t)OC * IC; i++) w[i] = (float)(i % 5) * 0.1f;
  bt_linear_forward(y, x, w, NULL, N, IC, OC);
  int reps = 0;
  double t0 = bt_now_s(), t;
  do {
    bt_linear_forward(y, x, w, NULL, N, IC, OC);
    reps++;
  } while ((t = bt_now_s() - t0) < 0.3);
  free(x); free(w); free(y);
  return 2.0 * N * IC * OC * reps / t * 1e-9;
}

/* GFLOP/s of attention forward and backward (causal FLOP count). */
static void bench_attention(int B, int T, int C, int H, double *fwd, double *bwd) {
  size_t n3 = (size_t)B * T * 3 * C, n1 = (size_t)B * T * C;
  float *qkv = malloc(n3 * 4), *out = malloc(n1 * 4), *lse = malloc((size_t)B * H * T * 4);
  float *dout = malloc(n1 * 4), *dqkv = calloc(n3, 4);
  for (size_t i = 0; i < n3; i++) qkv[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
  for (size_t i = 0; i < n1; i++) dout[i] = (float)((i * 40503u) % 1000) * 1e-3f - 0.5f;
  double flops = 4.0 * B * (double)T * (T + 1) / 2 * C; /* QK^T + PV over all heads */
  bt_attention_forward(out, lse, qkv, B, T, C, H);
  double t0 = bt_now_s();
  bt_attention_forward(out, lse, qkv, B, T, C, H);
  *fwd = flops / (bt_now_s() - t0) * 1e-9;
  bt_attention_backward(dqkv, dout, qkv, out, lse, B, T, C, H); /* warm-up: first touch of dqkv */
  t0 = bt_now_s();
  bt_attention_backward(dqkv, dout, qkv, out, lse, B, T, C, H);
  *bwd = 2.0 * flops / (bt_now_s() - t0) * 1e-9; /* dP, dQ, dK, dV: 2x the forward's products */
  free(qkv); free(out); free(lse); free(dout); free(dqkv);
}

static const char *backend_name(int bf16) {
  return bf16 ? "own bf16" : bt_gemm_get_backend() == BT_GEMM_OWN ? "own" : "openblas";
}

/* Each kernel kind's share of the timed steps (kernels/prof.h), its time a
 * step and, where it counts FLOPs, its GFLOP/s; "other" is the rest of the
 * step (the model's own glue: residual adds, copies, gradient clearing). */
static void print_kernels(const bt_prof *pr, double total, int steps, int json) {
  double rest = total;
  if (!json)
    printf("       %-14s %8s %7s %9s\n", "kernel", "ms/step", "share", "GFLOP/s");
  for (int k = 0; k <= BT_PROF_KINDS; k++) {
    const int other = k == BT_PROF_KINDS;
    const double sec = other ? (rest > 0 ? rest : 0) : pr->seconds[k];
    const double gfs = !other && pr->flops[k] > 0 && sec > 0 ? pr->flops[k] / sec * 1e-9 : 0;
    const char *name = other ? "other" : bt_prof_name((bt_prof_kind)k);
    if (!other)
      rest -= sec;
    if (json)
      printf("%s{\"kernel\":\"%s\",\"ms\":%.2f,\"share\":%.4f,\"gflops\":%.1f}", k ? "," : "", name,
             1e3 * sec / steps, sec / total, gfs);
    else if (gfs > 0)
      printf("       %-14s %8.1f %6.1f%% %9.1f\n", name, 1e3 * sec / steps, 100 * sec / total, gfs);
    else
      printf("       %-14s %8.1f %6.1f%% %9s\n", name, 1e3 * sec / steps, 100 * sec / total, "-");
  }
  if (json)
    printf("]}\n");
}

/* One optimizer step at bt-train's defaults: AdamW alone, or Muon on the
 * layers' matrices and AdamW on the rest (recipe v4). */
static void step_optimizer(bt_model *m, int muon, int step) {
  if (!muon)
    bt_model_adamw(m, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, step);
  else if (bt_model_muon(m, 1e-3f, 0.95f, 0.9f, 0.95f, 1e-8f, 0.1f, step))
    die("muon");
}

int main(int argc, char **argv) {
  bt_cli_init("bt-bench-train", "[options] (see --help)");
  bt_cli_apply_isa();
  const char *presets = "200K,800K,3.2M";
  int B = 8, T = 2048, steps = 3, threads = 2, json = 0, bf16 = 0, muon = 0;
  const char *gemm = NULL;
#define USAGE "usage: bt-bench-train [--presets LIST] [--batch B] [--ctx T] [--steps N] [-T N] [--precision fp32|bf16] [--gemm own|blas] [--optimizer adamw|muon] [--json]\n"
  if (bt_cli_wants_help(argc, argv)) {
    fputs(USAGE, stdout);
    return 0;
  }
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--presets") && i + 1 < argc) presets = argv[++i];
    else if (!strcmp(argv[i], "--batch") && i + 1 < argc) B = (int)bt_cli_count("--batch", argv[++i], 1, 65536);
    else if (!strcmp(argv[i], "--ctx") && i + 1 < argc) T = (int)bt_cli_count("--ctx", argv[++i], 1, 65536);
    else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = (int)bt_cli_count("--steps", argv[++i], 1, 1 << 20);
    else if (!strcmp(argv[i], "-T") && i + 1 < argc) threads = (int)bt_cli_count("-T", argv[++i], 1, 4096);
    else if (!strcmp(argv[i], "--json")) json = 1;
    else if (!strcmp(argv[i], "--gemm") && i + 1 < argc) {
      gemm = argv[++i];
      if (strcmp(gemm, "own") && strcmp(gemm, "blas"))
        bt_usage_error("--gemm wants own or blas, not '%s'", gemm);
    }
    else if (!strcmp(argv[i], "--optimizer") && i + 1 < argc) {
      const char *o = argv[++i];
      if (strcmp(o, "adamw") && strcmp(o, "muon"))
        bt_usage_error("--optimizer wants adamw or muon, not '%s'", o);
      muon = !strcmp(o, "muon");
    }
    else if (!strcmp(argv[i], "--precision") && i + 1 < argc) {
      const char *p = argv[++i];
      if (strcmp(p, "fp32") && strcmp(p, "bf16"))
        bt_usage_error("--precision wants fp32 or bf16, not '%s'", p);
      bf16 = !strcmp(p, "bf16");
    }
    else {
      fputs(USAGE, stderr);
      return 1;
    }
  }
  if (B < 1 || T < 2 || steps < 1 || threads < 1) {
    fprintf(stderr, "bt-bench-train: invalid arguments\n");
    return 1;
  }
  bt_set_threads(threads);
  if (gemm) /* fp32 only: the backend bt-train's auto would not pick, for comparing */
    bt_gemm_set_backend(!strcmp(gemm, "own") ? BT_GEMM_OWN : BT_GEMM_BLAS);
  if (bf16) {
    if (!bt_bf16_available())
      bt_die("--precision bf16: this CPU (or build, or BT_ISA) lacks AVX512_BF16");
    bt_gemm_set_backend(BT_GEMM_BF16);
  }
  double peak = 0; /* best of a few: a busy moment only lowers a trial */
  for (int i = 0; i < 5; i++) {
    double p = bt_peak_gflops(bt_isa_get(), threads);
    peak = p > peak ? p : peak;
  }
  if (!json)
    printf("isa %s, %d threads, gemm backend %s, measured fp32 FMA peak %.1f GFLOP/s\n",
           bt_isa_name(bt_isa_get()), threads, backend_name(bf16), peak);
  /* Real text when it is there; the throughput does not depend on it. */
  uint8_t *text = NULL;
  size_t ntext = 0;
  if (bt_data_load_range("wiki-valid10m", 0, (size_t)B * T, &text, &ntext) || ntext < (size_t)B * T) {
    free(text);
    text = malloc((size_t)B * T);
    for (size_t i = 0; i < (size_t)B * T; i++) text[i] = (uint8_t)('a' + (i * 7919) % 26);
  }
  char list[256];
  snprintf(list, sizeof list, "%s", presets);
  if (!json)
    printf("%-6s %9s %10s %10s %10s %9s %9s %9s %12s %12s %7s\n", "preset", "params", "lin GF/s",
           "attF GF/s", "attB GF/s", "fwd ms", "bwd ms", "optim ms", "fwd+bwd t/s", "GFLOP/s", "MFU");
  for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
    bt_config cfg;
    if (bt_config_preset(tok, &cfg)) {
      fprintf(stderr, "bt-bench-train: unknown preset %s\n", tok);
      return 1;
    }
    cfg.ctx = T;
    bt_model *m;
    if (bt_model_create(&m, &cfg)) die("model");
    bt_model_init(m, 1);
    const int C = cfg.d_model, L = cfg.n_layer;
    double lin = bench_linear(B * T, C, 4 * C), af, ab;
    bench_attention(B, T, C, cfg.n_head, &af, &ab);
    float loss;
    if (bt_model_forward(m, text, B, T, &loss) || bt_model_backward(m)) die("warmup");
    step_optimizer(m, muon, 1);
    double tf = 0, tb = 0, ta = 0;
    bt_prof_enable(1); /* the kernels' shares of the timed steps */
    for (int s = 0; s < steps; s++) {
      double t0 = bt_now_s();
      if (bt_model_forward(m, text, B, T, &loss)) die("forward");
      double t1 = bt_now_s();
      if (bt_model_backward(m)) die("backward");
      double t2 = bt_now_s();
      step_optimizer(m, muon, s + 2);
      tf += t1 - t0, tb += t2 - t1, ta += bt_now_s() - t2;
    }
    const bt_prof pr = bt_prof_totals();
    bt_prof_enable(0);
    size_t np = bt_model_num_params(m);
    double fpt = 6.0 * (double)np + 6.0 * L * (double)T * C;
    double tps = (double)steps * B * T / (tf + tb);
    double gf = tps * fpt * 1e-9;
    if (json)
      printf("{\"preset\":\"%s\",\"params\":%zu,\"batch\":%d,\"ctx\":%d,\"threads\":%d,\"isa\":\"%s\","
             "\"linear_gflops\":%.1f,\"attn_fwd_gflops\":%.1f,\"attn_bwd_gflops\":%.1f,"
             "\"fwd_ms\":%.1f,\"bwd_ms\":%.1f,\"adam_ms\":%.1f,\"tokens_per_s\":%.1f,"
             "\"tokens_per_s_with_adam\":%.1f,\"flops_per_token\":%.0f,\"gflops\":%.1f,\"peak_gflops\":%.1f,\"mfu\":%.4f,"
             "\"gemm\":\"%s\",\"kernels\":[",
             tok, np, B, T, threads, bt_isa_name(bt_isa_get()), lin, af, ab, 1e3 * tf / steps,
             1e3 * tb / steps, 1e3 * ta / steps, tps, (double)steps * B * T / (tf + tb + ta), fpt, gf,
             peak, gf / peak, backend_name(bf16));
    else
      printf("%-6s %9zu %10.1f %10.1f %10.1f %9.1f %9.1f %9.1f %12.0f %12.1f %6.1f%%\n", tok, np, lin, af,
             ab, 1e3 * tf / steps, 1e3 * tb / steps, 1e3 * ta / steps, tps, gf, 100 * gf / peak);
    print_kernels(&pr, tf + tb + ta, steps, json);
    fflush(stdout);
    bt_model_free(m);
  }
  free(text);
  return 0;
}
