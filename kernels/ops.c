/*
 * ops.c - public entry points of the elementwise and row ops: each picks the
 * copy of kernels/ops_impl.c compiled for the active ISA (identical bits on
 * every path). Also the scalar transcendental wrappers and the rotary tables.
 */
#include "kernels/isa_impl.h"
#include "kernels/kernels.h"
#include "kernels/bf16.h"
#include "kernels/mathfn.h"
#include "kernels/prof.h"

#include <stddef.h>
#include <stdint.h>

/* Prototypes of the per-ISA copies; they must match ops_impl.c. */
BT_DECLARE_ISA3(void, bt_embedding_forward,
                (float *out, const uint16_t *tok, const float *wte, int N, int C, float scale))
BT_DECLARE_ISA3(void, bt_embedding_backward,
                (float *dwte, const float *dout, const uint16_t *tok, int N, int C, float scale))
BT_DECLARE_ISA3(void, bt_layernorm_forward,
                (float *out, float *mean, float *rstd, const float *inp, const float *w,
                 const float *b, int N, int C))
BT_DECLARE_ISA3(void, bt_layernorm_backward,
                (float *dinp, float *dw, float *db, const float *dout, const float *inp,
                 const float *w, const float *mean, const float *rstd, int N, int C))
BT_DECLARE_ISA3(void, bt_layernorm_backward_set,
                (float *dinp, float *dw, float *db, const float *dout, const float *inp,
                 const float *w, const float *mean, const float *rstd, int N, int C))
BT_DECLARE_ISA3(void, bt_gelu_forward, (float *out, const float *inp, size_t n))
BT_DECLARE_ISA3(void, bt_gelu_backward,
                (float *dinp, const float *inp, const float *dout, size_t n))
BT_DECLARE_ISA3(void, bt_gelu_forward_bf16, (float *out, const float *inp, size_t n))
BT_DECLARE_ISA3(void, bt_gelu_backward_bf16, (float *dinp, const float *inp, const float *dout, size_t n))
BT_DECLARE_ISA3(void, bt_gelu_backward_set_bf16, (float *dinp, const float *inp, const float *dout, size_t n))
BT_DECLARE_ISA3(void, bt_gelu_backward_set,
                (float *dinp, const float *inp, const float *dout, size_t n))
BT_DECLARE_ISA3(void, bt_rope_forward,
                (float *qkv, const float *cos_t, const float *sin_t, int B, int T, int C, int H))
BT_DECLARE_ISA3(void, bt_rope_backward,
                (float *dqkv, const float *cos_t, const float *sin_t, int B, int T, int C, int H))
BT_DECLARE_ISA3(void, bt_crossentropy_forward,
                (float *losses, const float *logits, const uint16_t *targets, int N, int V))
BT_DECLARE_ISA3(void, bt_crossentropy_backward,
                (float *dlogits, const float *logits, const uint16_t *targets, int N, int V,
                 float dloss))
BT_DECLARE_ISA3(void, bt_adamw_update,
                (float *params, const float *grads, float *m, float *v, size_t n, float lr,
                 float beta1, float beta2, float eps, float weight_decay, int t))
BT_DECLARE_ISA3(double, bt_sumsq, (const float *g, size_t n))
BT_DECLARE_ISA3(void, bt_scale, (float *x, size_t n, float s))
BT_DECLARE_ISA3(void, bt_add, (float *out, const float *a, const float *b, size_t n))
BT_DECLARE_ISA3(void, bt_axpby, (float *out, float a, const float *x, float b, const float *y, size_t n))
BT_DECLARE_ISA3(void, bt_colsum_add, (float *sum, const float *x, int N, int C))
BT_DECLARE_ISA3(void, bt_exp_vec, (float *out, const float *in, size_t n))

/* ==================================================================== */
/* Dispatch                                                              */
/* ==================================================================== */

void bt_embedding_forward(float *out, const uint16_t *tok, const float *wte, int N, int C,
                          float scale) {
  BT_PROF_CALL(BT_PROF_EMBED, 0, BT_PICK_ISA(bt_embedding_forward)(out, tok, wte, N, C, scale));
}

void bt_embedding_backward(float *dwte, const float *dout, const uint16_t *tok, int N, int C,
                           float scale) {
  BT_PROF_CALL(BT_PROF_EMBED, 0, BT_PICK_ISA(bt_embedding_backward)(dwte, dout, tok, N, C, scale));
}

void bt_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                          const float *w, const float *b, int N, int C) {
  BT_PROF_CALL(BT_PROF_LAYERNORM, 0, BT_PICK_ISA(bt_layernorm_forward)(out, mean, rstd, inp, w, b, N, C));
}

void bt_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                           const float *inp, const float *w, const float *mean,
                           const float *rstd, int N, int C) {
  BT_PROF_CALL(BT_PROF_LAYERNORM, 0, BT_PICK_ISA(bt_layernorm_backward)(dinp, dw, db, dout, inp, w, mean, rstd, N, C));
}

void bt_layernorm_backward_set(float *dinp, float *dw, float *db, const float *dout,
                               const float *inp, const float *w, const float *mean,
                               const float *rstd, int N, int C) {
  BT_PROF_CALL(BT_PROF_LAYERNORM, 0, BT_PICK_ISA(bt_layernorm_backward_set)(dinp, dw, db, dout, inp, w, mean, rstd, N, C));
}

/* The bf16 training path has its own GELU (ops_impl.c, "The bfloat16 path's
 * GELU"); everything else, inference included, the float32 one. */
#define GELU_PICK(name) (bt_gemm_get_backend() == BT_GEMM_BF16 ? BT_PICK_ISA(name##_bf16) : BT_PICK_ISA(name))

void bt_gelu_forward(float *out, const float *inp, size_t n) {
  BT_PROF_CALL(BT_PROF_GELU, 0, GELU_PICK(bt_gelu_forward)(out, inp, n));
}

void bt_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
  BT_PROF_CALL(BT_PROF_GELU, 0, GELU_PICK(bt_gelu_backward)(dinp, inp, dout, n));
}

void bt_gelu_backward_set(float *dinp, const float *inp, const float *dout, size_t n) {
  BT_PROF_CALL(BT_PROF_GELU, 0, GELU_PICK(bt_gelu_backward_set)(dinp, inp, dout, n));
}

void bt_rope_forward(float *qkv, const float *cos_t, const float *sin_t, int B, int T, int C,
                     int H) {
  BT_PROF_CALL(BT_PROF_ROPE, 0, BT_PICK_ISA(bt_rope_forward)(qkv, cos_t, sin_t, B, T, C, H));
}

void bt_rope_backward(float *dqkv, const float *cos_t, const float *sin_t, int B, int T, int C,
                      int H) {
  BT_PROF_CALL(BT_PROF_ROPE, 0, BT_PICK_ISA(bt_rope_backward)(dqkv, cos_t, sin_t, B, T, C, H));
}

void bt_crossentropy_forward(float *losses, const float *logits, const uint16_t *targets, int N,
                             int V) {
  BT_PROF_CALL(BT_PROF_LOSS, 0, BT_PICK_ISA(bt_crossentropy_forward)(losses, logits, targets, N, V));
}

void bt_crossentropy_backward(float *dlogits, const float *logits, const uint16_t *targets,
                              int N, int V, float dloss) {
  BT_PROF_CALL(BT_PROF_LOSS, 0, BT_PICK_ISA(bt_crossentropy_backward)(dlogits, logits, targets, N, V, dloss));
}

void bt_adamw_update(float *params, const float *grads, float *m, float *v, size_t n, float lr,
                     float beta1, float beta2, float eps, float weight_decay, int t) {
  BT_PROF_CALL(BT_PROF_OPTIM, 0, BT_PICK_ISA(bt_adamw_update)(params, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, t));
}

double bt_sumsq(const float *g, size_t n) {
  double r;
  BT_PROF_CALL(BT_PROF_OPTIM, 0, r = BT_PICK_ISA(bt_sumsq)(g, n));
  return r;
}

void bt_scale(float *x, size_t n, float s) { BT_PROF_CALL(BT_PROF_OPTIM, 0, BT_PICK_ISA(bt_scale)(x, n, s)); }

void bt_axpby(float *out, float a, const float *x, float b, const float *y, size_t n) {
  BT_PROF_CALL(BT_PROF_OPTIM, 0, BT_PICK_ISA(bt_axpby)(out, a, x, b, y, n));
}

void bt_add(float *out, const float *a, const float *b, size_t n) {
  BT_PROF_CALL(BT_PROF_OPTIM, 0, BT_PICK_ISA(bt_add)(out, a, b, n));
}

void bt_colsum_add(float *sum, const float *x, int N, int C) { BT_PICK_ISA(bt_colsum_add)(sum, x, N, C); }

/* ==================================================================== */
/* Own transcendental functions and rotary tables                        */
/* ==================================================================== */

float bt_expf(float x) { return bt_expf_inline(x); }

float bt_tanhf(float x) { return bt_tanhf_inline(x); }

/* The vectorised copies give the same bits as bt_expf (mathfn.h uses no FMA). */
void bt_exp_vec(float *out, const float *in, size_t n) { BT_PICK_ISA(bt_exp_vec)(out, in, n); }

void bt_rope_tables(float *cos_t, float *sin_t, int T, int hs) {
  int half = hs / 2;
  for (int i = 0; i < half; i++) {
    /* inv_freq = 10000^(-2i/hs) = exp(-(2i/hs) ln 10000) */
    double inv_freq = bt_exp_d(-((double)(2 * i) / (double)hs) * 9.2103403719761836);
    for (int t = 0; t < T; t++) {
      double s, c;
      bt_sincos_d((double)t * inv_freq, &s, &c);
      cos_t[(size_t)t * half + i] = (float)c;
      sin_t[(size_t)t * half + i] = (float)s;
    }
  }
}

/* ==================================================================== */
/* bfloat16                                                              */
/* ==================================================================== */

uint16_t bt_f32_to_bf16(float x) { return bt_f32_to_bf16_inline(x); }
float bt_bf16_to_f32(uint16_t h) { return bt_bf16_to_f32_inline(h); }
