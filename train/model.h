/*
 * model.h - the paper's byte-level transformer: config, presets, parameters
 * in one allocation, and the training forward/backward.
 *
 * Architecture (Deletang et al. 2024, reference code's transformer.py, with
 * rotary positions; docs/method.md):
 *   x0 = embed[shift_right(bytes)] * sqrt(C)        BOS = 0 at position 0
 *   per layer (post-LayerNorm, no bias on Q/K/V/O):
 *     h = LN1(x + Wo . attn(rope(Wq x), rope(Wk x), Wv x))
 *     x = LN2(h + W2 . gelu_tanh(W1 h + b1) + b2)
 *   logits = Wout x + bout                           (V classes)
 * V is 256 for a byte model, or a BPE vocabulary's size (data/bpe.h: tokens
 * 0..255 are the bytes, so BOS is byte 0 in both). Parameter count for 4
 * layers: 48 C^2 + 36 C + 2 V C + V, which is the paper's 48 C^2 + 548 C
 * + 256 for bytes.
 */
#ifndef BT_MODEL_H
#define BT_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BT_VOCAB 256 /* a byte model's V */
#define BT_MAX_VOCAB 65536 /* tokens are uint16_t */
#define BT_BOS 0

typedef struct {
  int n_layer; /* L */
  int d_model; /* C */
  int n_head;  /* H; head size hs = C / H */
  int ctx;     /* longest sequence the model is built for (T <= ctx) */
  int vocab;   /* V: 256 (bytes) up to BT_MAX_VOCAB; 0 reads as 256 */
} bt_config;

/* cfg's V (256 where cfg->vocab is 0). */
static inline int bt_config_vocab(const bt_config *cfg) { return cfg->vocab ? cfg->vocab : BT_VOCAB; }

/* Fills cfg for "200K", "800K" or "3.2M" (ctx 2048). Returns 0, or -1 if
 * the name is unknown. */
int bt_config_preset(const char *name, bt_config *cfg);
/* BT_OK if the config can be built: 1 <= L <= 64, C a multiple of 16 up to
 * 4096, H divides C with an even head size that is a multiple of 8,
 * 1 <= ctx <= 65536, and V (bt_config_vocab) in 256..BT_MAX_VOCAB.
 * Otherwise BT_ERR_ARG with a detail. */
bt_error bt_config_check(const bt_config *cfg);
/* Number of parameters (floats). */
size_t bt_config_num_params(const bt_config *cfg);

/* ---- parameters: one block, tensors at fixed offsets ---- */

enum {
  BT_T_EMBED,  /* (V, C) */
  BT_T_QKV_W,  /* (L, 3C, C): q | k | v rows */
  BT_T_ATTO_W, /* (L, C, C) */
  BT_T_LN1_W,  /* (L, C) */
  BT_T_LN1_B,  /* (L, C) */
  BT_T_FC_W,   /* (L, 4C, C) */
  BT_T_FC_B,   /* (L, 4C) */
  BT_T_PROJ_W, /* (L, C, 4C) */
  BT_T_PROJ_B, /* (L, C) */
  BT_T_LN2_W,  /* (L, C) */
  BT_T_LN2_B,  /* (L, C) */
  BT_T_OUT_W,  /* (V, C) */
  BT_T_OUT_B,  /* (V) */
  BT_NUM_TENSORS
};

typedef struct {
  const char *name; /* HDF5 dataset name, e.g. "qkv_w" */
  int ndim;
  size_t shape[3];
  size_t offset; /* in floats from the start of the block */
  size_t size;   /* in floats */
  int decay;     /* 1: AdamW weight decay applies (matrices only) */
} bt_tensor_info;

/* Fills the layout of all BT_NUM_TENSORS tensors; returns the total size. */
size_t bt_param_layout(const bt_config *cfg, bt_tensor_info t[BT_NUM_TENSORS]);

/* ---- the model ---- */

typedef struct bt_model bt_model;

/* Allocates parameters (zero) for cfg (its vocab 0 becomes 256). Gradients, AdamW moments and
 * activations are allocated lazily by the calls that need them. */
bt_error bt_model_create(bt_model **out, const bt_config *cfg);
/* Frees everything; NULL is fine. */
void bt_model_free(bt_model *m);

const bt_config *bt_model_config(const bt_model *m);
size_t bt_model_num_params(const bt_model *m);
const bt_tensor_info *bt_model_tensors(const bt_model *m);
/* The parameter block (num_params floats, layout above), owned by m. */
float *bt_model_params(bt_model *m);
/* Gradient block (same layout), or NULL before the first backward. */
float *bt_model_grads(bt_model *m);
/* AdamW first and second moments (same layout), allocated on first use. */
float *bt_model_adam_m(bt_model *m);
float *bt_model_adam_v(bt_model *m);
/* The tokenizer of a model of V > 256 tokens: the image of its .btok file
 * (data/bpe.h), which the checkpoint stores beside the weights so that a
 * model file is self-contained. Set copies img (n bytes; NULL, 0 clears);
 * BT_ERR_NOMEM. Get returns NULL (and *n = 0) for none. */
bt_error bt_model_set_tokenizer(bt_model *m, const uint8_t *img, size_t n);
const uint8_t *bt_model_tokenizer(const bt_model *m, size_t *n);
/* Logits (B,T,V) of the last forward, or NULL. */
const float *bt_model_logits(const bt_model *m);

/* Initialises weights from seed: linear weights ~ N(0, 1/fan_in) truncated
 * at 2 sigma (Haiku's default), embedding ~ N(0, 0.02^2) truncated, LayerNorm
 * scale 1, biases 0. */
void bt_model_init(bt_model *m, uint64_t seed);
/* The same with every standard deviation times scale (bt-train --init-scale;
 * 1: bt_model_init). The draws are the same, so only their size changes. */
void bt_model_init_scaled(bt_model *m, uint64_t seed, double scale);

/* Teacher-forced forward over tokens seq (B,T), each < V: position t sees
 * BOS, seq[0..t-1] and is scored on seq[t]. Stores activations for
 * backward. T <= ctx. *loss = mean cross-entropy in nats (NULL: skip).
 * BT_ERR_NOMEM, BT_ERR_ARG (a token >= V among them). */
bt_error bt_model_forward_tokens(bt_model *m, const uint16_t *seq, int B, int T, float *loss);
/* The same over bytes (any V >= 256): the bits of bt_model_forward_tokens
 * on the bytes widened. */
bt_error bt_model_forward(bt_model *m, const uint8_t *seq, int B, int T, float *loss);
/* Per-position losses (B,T) in nats of the last forward, or NULL. */
const float *bt_model_losses(const bt_model *m);
/* Backward of the mean loss of the last forward: grads = d loss / d params
 * (overwritten, not accumulated). */
bt_error bt_model_backward(bt_model *m);

/* One AdamW step on all tensors with grads from bt_model_backward.
 * Weight decay applies to tensors with decay = 1 only. t >= 1. */
void bt_model_adamw(bt_model *m, float lr, float beta1, float beta2, float eps,
                    float weight_decay, int t);

/* One step of Muon (orthogonalised momentum) on the weight matrices of the
 * layers (Q/K/V, O, FC, proj; each layer's matrix on its own) and AdamW on
 * everything else, all with grads from bt_model_backward. A matrix W (R, C)
 * keeps its momentum M in the AdamW first-moment block: M = mu M + G, then
 * the Nesterov direction G + mu M, scaled to unit Frobenius norm, goes
 * through 5 Newton-Schulz iterations towards the nearest orthogonal matrix
 * U, and W -= lr (wd W + 0.2 sqrt(max(R, C)) U): the factor gives U the
 * RMS of an AdamW update, so lr and wd mean what they mean for AdamW.
 * Training only (OpenBLAS where the backend says). BT_ERR_NOMEM. */
bt_error bt_model_muon(bt_model *m, float lr, float mu, float beta1, float beta2, float eps,
                       float weight_decay, int t);

#ifdef __cplusplus
}
#endif
#endif
