/*
 * test_prof.c - the kernel profile (kernels/prof.h) that bt-bench-train
 * prints: each training op counts its call, its FLOPs and some time under
 * its own kind, once (no op is counted inside another), only while on and
 * only on the thread that turned it on; and AUTO picks own GEMMs on every
 * SIMD path.
 */
#include "tests/check.h"

#include "kernels/kernels.h"
#include "kernels/prof.h"

#include <omp.h>

static long total_calls(const bt_prof *p) {
  long n = 0;
  for (int k = 0; k < BT_PROF_KINDS; k++)
    n += p->calls[k];
  return n;
}

int main(void) {
  enum { N = 64, IC = 48, OC = 80, B = 2, T = 32, C = 32, H = 2 };
  float *inp = calloc(N * IC, 4), *w = calloc(OC * IC, 4), *out = calloc(N * OC, 4);
  float *dinp = calloc(N * IC, 4), *dw = calloc(OC * IC, 4), *db = calloc(OC, 4);
  float *bias = calloc(OC, 4), *qkv = calloc(B * T * 3 * C, 4), *att = calloc(B * T * C, 4);
  float *lse = calloc(B * T * H, 4), *dqkv = calloc(B * T * 3 * C, 4), *g = calloc(4096, 4);
  check_fill(inp, N * IC, 1, 1.0f);
  check_fill(w, OC * IC, 2, 0.5f);
  check_fill(qkv, B * T * 3 * C, 3, 0.5f);

  /* Off: nothing is counted. */
  bt_prof_enable(0);
  bt_linear_forward(out, inp, w, bias, N, IC, OC);
  bt_prof p = bt_prof_totals();
  CHECK(total_calls(&p) == 0, "profiling off counted %ld calls", total_calls(&p));

  bt_prof_enable(1);
  bt_linear_forward(out, inp, w, bias, N, IC, OC);
  bt_linear_backward(dinp, dw, db, out, inp, w, N, IC, OC);
  bt_linear_backward_set(NULL, dw, db, out, inp, w, N, IC, OC);
  bt_attention_forward(att, lse, qkv, B, T, C, H);
  bt_attention_backward(dqkv, att, qkv, att, lse, B, T, C, H);
  bt_gelu_forward(g, g + 2048, 2048);
  (void)bt_sumsq(g, 4096);
  /* Another thread's calls are its own. */
#pragma omp parallel num_threads(2)
  if (omp_get_thread_num() == 1)
    bt_linear_forward(out, inp, w, NULL, N, IC, OC);
  p = bt_prof_totals();
  bt_prof_enable(0);
  CHECK(p.calls[BT_PROF_LINEAR_FWD] == 1, "linear fwd calls %ld, want 1", p.calls[BT_PROF_LINEAR_FWD]);
  CHECK(p.flops[BT_PROF_LINEAR_FWD] == 2.0 * N * IC * OC, "linear fwd FLOPs %g", p.flops[BT_PROF_LINEAR_FWD]);
  CHECK(p.calls[BT_PROF_LINEAR_BWD] == 2, "linear bwd calls %ld, want 2", p.calls[BT_PROF_LINEAR_BWD]);
  CHECK(p.flops[BT_PROF_LINEAR_BWD] == 6.0 * N * IC * OC, "linear bwd FLOPs %g (dinp + dw, then dw only)",
        p.flops[BT_PROF_LINEAR_BWD]);
  const double af = 4.0 * B * T * (T + 1) / 2 * C;
  CHECK(p.calls[BT_PROF_ATTN_FWD] == 1 && p.flops[BT_PROF_ATTN_FWD] == af, "attention fwd %ld calls, %g FLOPs",
        p.calls[BT_PROF_ATTN_FWD], p.flops[BT_PROF_ATTN_FWD]);
  CHECK(p.calls[BT_PROF_ATTN_BWD] == 1 && p.flops[BT_PROF_ATTN_BWD] == 2 * af, "attention bwd %ld calls, %g FLOPs",
        p.calls[BT_PROF_ATTN_BWD], p.flops[BT_PROF_ATTN_BWD]);
  CHECK(p.calls[BT_PROF_GELU] == 1 && p.calls[BT_PROF_OPTIM] == 1, "gelu %ld, optimizer %ld calls",
        p.calls[BT_PROF_GELU], p.calls[BT_PROF_OPTIM]);
  CHECK(total_calls(&p) == 7, "%ld calls in all, want 7 (none counted twice)", total_calls(&p));
  for (int k = 0; k < BT_PROF_KINDS; k++)
    CHECK(p.seconds[k] >= 0 && (p.calls[k] > 0 || p.seconds[k] == 0), "kind %s: %g s in %ld calls",
          bt_prof_name((bt_prof_kind)k), p.seconds[k], p.calls[k]);
  CHECK(p.seconds[BT_PROF_LINEAR_FWD] > 0 && p.seconds[BT_PROF_ATTN_BWD] > 0, "no time counted");
  CHECK(!strcmp(bt_prof_name(BT_PROF_ATTN_BWD), "attention bwd"), "name %s", bt_prof_name(BT_PROF_ATTN_BWD));

  /* AUTO: own kernels on every SIMD path, OpenBLAS on the scalar one. */
  const bt_isa best = bt_isa_detect();
  for (int i = BT_ISA_SCALAR; i <= (int)best; i++) {
    bt_isa_set((bt_isa)i);
    bt_gemm_set_backend(BT_GEMM_AUTO);
    const bt_gemm_backend want = i >= BT_ISA_AVX2 ? BT_GEMM_OWN : BT_GEMM_BLAS;
    CHECK(bt_gemm_get_backend() == want, "isa %s: backend %d, want %d", bt_isa_name((bt_isa)i),
          (int)bt_gemm_get_backend(), (int)want);
  }
  bt_isa_set(best);
  free(inp); free(w); free(out); free(dinp); free(dw); free(db); free(bias);
  free(qkv); free(att); free(lse); free(dqkv); free(g);
  return check_summary("test_prof");
}
