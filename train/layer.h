/*
 * layer.h - the byte transformer's forward, written once: one weight view and
 * one sequence of ops, which bt-train (train/model.c), batched compression,
 * incremental decoding (infer/infer.c) and adaptive coding all run.
 *
 * What differs between those callers is not the model but how two of its
 * steps are computed, and that is a parameter (bt_forward_ops):
 *  - linear: the training pass uses bt_linear_forward (own kernels or
 *    OpenBLAS, by the thread's GEMM backend); inference uses bt_gemm, whose
 *    chains give the same bits on every machine (kernels.h);
 *  - attend: the training pass attends over whole sequences and keeps the
 *    log-sum-exps for backward; inference stores K and V in its bfloat16 cache
 *    and attends each row against its stream's cache.
 * Where each step writes is a parameter too (bt_layer_bufs): the training pass
 * keeps every activation for backward, inference reuses a few row buffers.
 *
 * The weight view names every tensor of the parameter block (model.h) by
 * pointer. It is made by one function from any block with the model's layout:
 * the parameters, their gradients, or inference's copy, whose matrices are
 * stored transposed so that few-row GEMMs read them in place (bt_mat).
 */
#ifndef BT_LAYER_H
#define BT_LAYER_H

#include <stdint.h>

#include "train/model.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BT_MAX_LAYERS 64 /* bt_config_check's limit */

/* A weight matrix W of shape (OC, IC): y = W x. Stored as is (OC rows of IC,
 * the checkpoint's layout), or transposed, (IC, OC). */
typedef struct {
  const float *w;
  int transposed;
} bt_mat;

typedef struct {
  bt_mat qkv;   /* (3C, C): q | k | v rows */
  bt_mat attn_o; /* (C, C) */
  bt_mat fc;    /* (4C, C) */
  bt_mat proj;  /* (C, 4C) */
  const float *ln1_w, *ln1_b, *fc_b, *proj_b, *ln2_w, *ln2_b;
} bt_layer_view;

typedef struct {
  int n_layer, d_model, vocab;
  const float *embed; /* (V, C) */
  bt_mat out;         /* (V, C) */
  const float *out_b; /* (V) */
  bt_layer_view layer[BT_MAX_LAYERS];
} bt_model_view;

/* The view of block P (num_params floats in bt_param_layout's layout t),
 * with its matrices stored transposed if `transposed`. P may be the
 * parameters, the gradients, or any copy. */
void bt_model_view_of(bt_model_view *v, const bt_config *cfg, const bt_tensor_info *t,
                      const float *P, int transposed);

/* Where layer l's forward reads and writes, for R rows of d_model C.
 * Inference may alias them (res1 = res2 = tmp, fch = fcg, xout = x); the
 * ops run in place. */
typedef struct {
  float *x;       /* (R, C) the layer's input */
  float *xout;    /* (R, C) its output */
  float *qkv;     /* (R, 3C) */
  float *att;     /* (R, C) attention output before Wo */
  float *res1;    /* (R, C) x + Wo att */
  float *h;       /* (R, C) LN1(res1) */
  float *mean1, *rstd1; /* (R) */
  float *fch;     /* (R, 4C) W1 h + b1 */
  float *fcg;     /* (R, 4C) gelu(fch) */
  float *res2;    /* (R, C) h + W2 fcg + b2 */
  float *mean2, *rstd2; /* (R) */
  float *tmp;     /* (R, C) scratch */
} bt_layer_bufs;

typedef struct {
  /* out (R, OC) = in (R, IC) . W^T + bias (OC, may be NULL). */
  void (*linear)(void *ctx, float *out, const float *in, bt_mat w, const float *bias, int R,
                 int IC, int OC);
  /* Rotary on the q and k parts of qkv (R, 3C), in place, then att (R, C)
   * = causal attention of the rows, for layer l. */
  void (*attend)(void *ctx, int l, float *qkv, float *att);
  /* The buffers of layer l. The embedding writes layer 0's x; layer l + 1's
   * x is layer l's xout. */
  void (*bufs)(void *ctx, int l, bt_layer_bufs *b);
} bt_forward_ops;

/* The forward of R rows: x = embed[tok] * sqrt(C), the layers, then, if
 * logits is not NULL, logits (R, V) = Wout x + bout. */
void bt_forward(const bt_forward_ops *ops, void *ctx, const bt_model_view *v, int R,
                const uint16_t *tok, float *logits);

/* The final projection alone, of R rows x (R, C): logits (R, V). */
void bt_forward_head(const bt_forward_ops *ops, void *ctx, const bt_model_view *v, int R,
                     const float *x, float *logits);

#ifdef __cplusplus
}
#endif
#endif
