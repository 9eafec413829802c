/* layer.c - the byte transformer's forward, once (layer.h). */
#include "train/layer.h"

#include <math.h>

#include "kernels/kernels.h"

void bt_model_view_of(bt_model_view *v, const bt_config *cfg, const bt_tensor_info *t,
                      const float *P, int transposed) {
  const size_t C = (size_t)cfg->d_model, CC = C * C;
  v->n_layer = cfg->n_layer;
  v->d_model = cfg->d_model;
  v->vocab = bt_config_vocab(cfg);
  v->embed = P + t[BT_T_EMBED].offset;
  v->out = (bt_mat){P + t[BT_T_OUT_W].offset, transposed};
  v->out_b = P + t[BT_T_OUT_B].offset;
  for (int l = 0; l < cfg->n_layer; l++) {
    bt_layer_view *w = &v->layer[l];
    w->qkv = (bt_mat){P + t[BT_T_QKV_W].offset + l * 3 * CC, transposed};
    w->attn_o = (bt_mat){P + t[BT_T_ATTO_W].offset + l * CC, transposed};
    w->fc = (bt_mat){P + t[BT_T_FC_W].offset + l * 4 * CC, transposed};
    w->proj = (bt_mat){P + t[BT_T_PROJ_W].offset + l * 4 * CC, transposed};
    w->ln1_w = P + t[BT_T_LN1_W].offset + l * C;
    w->ln1_b = P + t[BT_T_LN1_B].offset + l * C;
    w->fc_b = P + t[BT_T_FC_B].offset + l * 4 * C;
    w->proj_b = P + t[BT_T_PROJ_B].offset + l * C;
    w->ln2_w = P + t[BT_T_LN2_W].offset + l * C;
    w->ln2_b = P + t[BT_T_LN2_B].offset + l * C;
  }
}

/* Post-LayerNorm block, no bias on Q/K/V/O (model.h):
 *   h = LN1(x + Wo attn(rope(Wq x), rope(Wk x), Wv x))
 *   x = LN2(h + W2 gelu_tanh(W1 h + b1) + b2) */
static void layer_forward(const bt_forward_ops *ops, void *ctx, const bt_layer_view *w, int l,
                          int R, int C, const bt_layer_bufs *b) {
  const size_t RC = (size_t)R * C;
  ops->linear(ctx, b->qkv, b->x, w->qkv, NULL, R, C, 3 * C);
  ops->attend(ctx, l, b->qkv, b->att);
  ops->linear(ctx, b->tmp, b->att, w->attn_o, NULL, R, C, C);
  bt_add(b->res1, b->x, b->tmp, RC);
  bt_layernorm_forward(b->h, b->mean1, b->rstd1, b->res1, w->ln1_w, w->ln1_b, R, C);
  ops->linear(ctx, b->fch, b->h, w->fc, w->fc_b, R, C, 4 * C);
  bt_gelu_forward(b->fcg, b->fch, 4 * RC);
  ops->linear(ctx, b->tmp, b->fcg, w->proj, w->proj_b, R, 4 * C, C);
  bt_add(b->res2, b->h, b->tmp, RC);
  bt_layernorm_forward(b->xout, b->mean2, b->rstd2, b->res2, w->ln2_w, w->ln2_b, R, C);
}

void bt_forward(const bt_forward_ops *ops, void *ctx, const bt_model_view *v, int R,
                const uint16_t *tok, float *logits) {
  const int C = v->d_model;
  bt_layer_bufs b;
  ops->bufs(ctx, 0, &b);
  bt_embedding_forward(b.x, tok, v->embed, R, C, sqrtf((float)C));
  for (int l = 0; l < v->n_layer; l++) {
    if (l)
      ops->bufs(ctx, l, &b);
    layer_forward(ops, ctx, &v->layer[l], l, R, C, &b);
  }
  if (logits)
    ops->linear(ctx, logits, b.xout, v->out, v->out_b, R, C, v->vocab);
}

void bt_forward_head(const bt_forward_ops *ops, void *ctx, const bt_model_view *v, int R,
                     const float *x, float *logits) {
  ops->linear(ctx, logits, x, v->out, v->out_b, R, v->d_model, v->vocab);
}
