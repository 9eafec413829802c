/*
 * bt-bench-ops - times the elementwise and row ops (kernels/ops*.c) at the
 * 3.2M model's training shape, per ISA path: N = 8*2048 rows of C = 256,
 * GELU on N*1024, cross-entropy with V = 256, AdamW on 3.3M parameters.
 *
 *   bt-bench-ops [-T threads] [-r reps] [-i scalar|avx2|avx512] [-h]
 *
 * Prints the median and best time of `reps` runs and the bandwidth of the
 * median, counting each array the op streams once per read and once per write
 * (LayerNorm backward reads inp and dout twice: its dw/db pass is separate).
 * A benchmark, not a test: nothing is checked.
 */
#include "tools/cli.h"
#include "kernels/kernels.h"

#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { B = 8, T = 2048, N = B * T, C = 256, H = 4, FF = 4 * C, V = 256 };
#define NPARAM ((size_t)3300000)

static void usage(FILE *f) {
  fprintf(f, "usage: bt-bench-ops [-T threads] [-r reps] [-i scalar|avx2|avx512] [-h]\n");
}

static float *alloc_fill(size_t n, uint64_t seed, float scale) {
  float *p = malloc(n * sizeof *p);
  if (!p) {
    fprintf(stderr, "bt-bench-ops: out of memory\n");
    exit(1);
  }
  uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 1;
  for (size_t i = 0; i < n; i++) {
    s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
    p[i] = scale * (float)((double)((s * 2685821657736338717ULL) >> 11) * 0x1p-52 - 1.0);
  }
  return p;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* All buffers of the benchmark. */
static struct {
  uint16_t *tok;
  float *wte, *dwte, *x, *y, *dx, *dy, *w, *b, *dw, *db, *mean, *rstd;
  float *h, *dh, *gh, *qkv, *cs, *sn, *logits, *dlogits, *losses;
  float *p, *g, *m, *v;
} s;

#define NOPS 16
static const char *op_name[NOPS] = {
    "embedding_fwd", "embedding_bwd", "layernorm_fwd", "layernorm_bwd",
    "gelu_fwd",      "gelu_bwd",      "rope_fwd",      "rope_bwd",
    "xent_fwd",      "xent_bwd",      "adamw",         "sumsq",
    "scale",         "add",           "exp_vec",       NULL};

static double op_bytes(int op) {
  double nc = (double)N * C, nf = (double)N * FF, np = (double)NPARAM, nv = (double)N * V;
  switch (op) {
  case 0: return 8 * nc;             /* read wte rows, write out */
  case 1: return 12 * nc;            /* read dout, read+write dwte rows */
  case 2: return 8 * nc;             /* read inp, write out */
  case 3: return 24 * nc;            /* dout, inp, dinp r+w; dout, inp again */
  case 4: return 8 * nf;
  case 5: return 16 * nf;            /* inp, dout, dinp r+w */
  case 6: case 7: return 16 * nc;    /* q and k parts read+write */
  case 8: return 4 * nv;
  case 9: return 12 * nv;            /* logits, dlogits r+w */
  case 10: return 28 * np;           /* g; p, m, v r+w */
  case 11: return 4 * np;
  case 12: return 8 * np;
  case 13: return 12 * np;
  case 14: return 8 * nf;
  }
  return 0;
}

static double sink;

static void run_op(int op) {
  switch (op) {
  case 0: bt_embedding_forward(s.x, s.tok, s.wte, N, C, 16.0f); break;
  case 1: bt_embedding_backward(s.dwte, s.dy, s.tok, N, C, 16.0f); break;
  case 2: bt_layernorm_forward(s.y, s.mean, s.rstd, s.x, s.w, s.b, N, C); break;
  case 3: bt_layernorm_backward(s.dx, s.dw, s.db, s.dy, s.x, s.w, s.mean, s.rstd, N, C); break;
  case 4: bt_gelu_forward(s.gh, s.h, (size_t)N * FF); break;
  case 5: bt_gelu_backward(s.dh, s.h, s.gh, (size_t)N * FF); break;
  case 6: bt_rope_forward(s.qkv, s.cs, s.sn, B, T, C, H); break;
  case 7: bt_rope_backward(s.qkv, s.cs, s.sn, B, T, C, H); break;
  case 8: bt_crossentropy_forward(s.losses, s.logits, s.tok, N, V); break;
  case 9: bt_crossentropy_backward(s.dlogits, s.logits, s.tok, N, V, 1.0f / N); break;
  case 10: bt_adamw_update(s.p, s.g, s.m, s.v, NPARAM, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 10); break;
  case 11: sink += bt_sumsq(s.g, NPARAM); break;
  case 12: bt_scale(s.g, NPARAM, 1.0f); break;
  case 13: bt_add(s.p, s.p, s.g, NPARAM); break;
  case 14: bt_exp_vec(s.gh, s.h, (size_t)N * FF); break;
  }
}

int main(int argc, char **argv) {
  bt_cli_init("bt-bench-ops", "[options] (see --help)");
  bt_cli_apply_isa();
  int threads = 0, reps = 20, only = -1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(argv[i], "-T") && i + 1 < argc) {
      threads = (int)bt_cli_count("-T", argv[++i], 1, 4096);
    } else if (!strcmp(argv[i], "-r") && i + 1 < argc) {
      reps = (int)bt_cli_count("-r", argv[++i], 1, 1 << 20);
    } else if (!strcmp(argv[i], "-i") && i + 1 < argc) {
      bt_isa isa;
      if (bt_isa_parse(argv[++i], &isa) != 0 || isa > bt_isa_detect()) {
        fprintf(stderr, "bt-bench-ops: ISA '%s' unknown or not supported here\n", argv[i]);
        return 1;
      }
      only = (int)isa;
    } else {
      usage(stderr);
      return 1;
    }
  }
  if (reps < 1)
    reps = 1;
  bt_set_threads(threads);

  s.tok = malloc((size_t)N * sizeof *s.tok);
  if (!s.tok)
    return 1;
  for (int n = 0; n < N; n++)
    s.tok[n] = (uint16_t)((n * 2654435761u) >> 24);
  s.wte = alloc_fill((size_t)V * C, 1, 0.02f), s.dwte = alloc_fill((size_t)V * C, 2, 0);
  s.x = alloc_fill((size_t)N * C, 3, 1), s.y = alloc_fill((size_t)N * C, 4, 1);
  s.dx = alloc_fill((size_t)N * C, 5, 1), s.dy = alloc_fill((size_t)N * C, 6, 1e-3f);
  s.w = alloc_fill(C, 7, 1), s.b = alloc_fill(C, 8, 1), s.dw = alloc_fill(C, 9, 0);
  s.db = alloc_fill(C, 10, 0), s.mean = alloc_fill(N, 11, 0), s.rstd = alloc_fill(N, 12, 0);
  s.h = alloc_fill((size_t)N * FF, 13, 4), s.dh = alloc_fill((size_t)N * FF, 14, 1e-3f);
  s.gh = alloc_fill((size_t)N * FF, 15, 1);
  s.qkv = alloc_fill((size_t)N * 3 * C, 16, 1);
  s.cs = alloc_fill((size_t)T * C / H / 2, 17, 0), s.sn = alloc_fill((size_t)T * C / H / 2, 18, 0);
  bt_rope_tables(s.cs, s.sn, T, C / H);
  s.logits = alloc_fill((size_t)N * V, 19, 3), s.dlogits = alloc_fill((size_t)N * V, 20, 0);
  s.losses = alloc_fill(N, 21, 0);
  s.p = alloc_fill(NPARAM, 22, 0.1f), s.g = alloc_fill(NPARAM, 23, 1e-2f);
  s.m = alloc_fill(NPARAM, 24, 0), s.v = alloc_fill(NPARAM, 25, 0);
  for (size_t i = 0; i < NPARAM; i++)
    s.v[i] = s.v[i] * s.v[i] + 1e-6f;
  bt_layernorm_forward(s.y, s.mean, s.rstd, s.x, s.w, s.b, N, C);

  printf("bt-bench-ops: N=%d (B=%d T=%d) C=%d H=%d, GELU n=%d, V=%d, AdamW n=%zu, "
         "%d threads, %d reps\n",
         N, B, T, C, H, N * FF, V, NPARAM, bt_get_threads(), reps);
  printf("%-15s %-7s %10s %10s %9s\n", "op", "isa", "median_ms", "best_ms", "GB/s");
  double *t = malloc((size_t)reps * sizeof *t);
  if (!t)
    return 1;
  for (int op = 0; op_name[op]; op++)
    for (int isa = BT_ISA_SCALAR; isa <= (int)bt_isa_detect(); isa++) {
      if (only >= 0 && isa != only)
        continue;
      bt_isa_set((bt_isa)isa);
      run_op(op); /* warm-up: page faults, caches */
      for (int r = 0; r < reps; r++) {
        double t0 = omp_get_wtime();
        run_op(op);
        t[r] = omp_get_wtime() - t0;
      }
      qsort(t, (size_t)reps, sizeof *t, cmp_d);
      double med = t[reps / 2];
      printf("%-15s %-7s %10.3f %10.3f %9.1f\n", op_name[op], bt_isa_name((bt_isa)isa),
             med * 1e3, t[0] * 1e3, op_bytes(op) / med * 1e-9);
    }
  free(t);
  return sink != sink; /* keeps bt_sumsq's result alive */
}
