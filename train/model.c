/* model.c - the byte transformer's parameters, forward and backward. */
#include "train/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "train/layer.h"

/* Activations of one forward at (B,T), kept for backward. One allocation. */
typedef struct {
  float *x;      /* (L+1, N, C): input of each layer; x[L] is the final output */
  float *qkv;    /* (L, N, 3C) after rotary */
  float *att;    /* (L, N, C) attention output before Wo */
  float *lse;    /* (L, B, H, T) */
  float *res1;   /* (L, N, C) x + Wo att */
  float *h;      /* (L, N, C) LN1 output */
  float *ln1_mean, *ln1_rstd; /* (L, N) */
  float *fch;    /* (L, N, 4C) before GELU */
  float *fcg;    /* (L, N, 4C) after GELU */
  float *res2;   /* (L, N, C) h + mlp */
  float *ln2_mean, *ln2_rstd; /* (L, N) */
  float *logits; /* (N, V) */
  float *losses; /* (N) */
  /* backward scratch */
  float *dlogits; /* (N, V) */
  float *dx;      /* (N, C) gradient of the residual stream */
  float *dres;    /* (N, C) */
  float *dh;      /* (N, C) */
  float *dbig;    /* (N, 4C) */
  float *dbig2;   /* (N, 4C) */
  float *dqkv;    /* (N, 3C) */
  float *tmp;     /* (N, C) */
} acts_t;

struct bt_model {
  bt_config cfg;
  bt_tensor_info t[BT_NUM_TENSORS];
  size_t n_params;
  float *params, *grads, *adam_m, *adam_v;
  bt_model_view view; /* of params (layer.h) */
  float *rope_cos, *rope_sin; /* (ctx, hs/2) */
  /* activations, sized for acts_B x acts_T */
  float *acts_mem;
  size_t acts_cap; /* floats */
  acts_t a;
  int B, T; /* shape of the last forward (0: none) */
  uint16_t *inp, *tgt; /* (B,T) shifted inputs and targets */
  uint16_t *wide;      /* (B,T) bt_model_forward's bytes as tokens */
  size_t tok_cap;
  uint8_t *tokenizer; /* .btok image (V > 256), or NULL */
  size_t tokenizer_len;
};

/* ==================================================================== */
/* Config                                                               */
/* ==================================================================== */

int bt_config_preset(const char *name, bt_config *cfg) {
  static const struct {
    const char *name;
    bt_config cfg;
  } presets[] = {
      {"200K", {4, 64, 4, 2048, BT_VOCAB}},
      {"800K", {4, 128, 4, 2048, BT_VOCAB}},
      {"3.2M", {4, 256, 8, 2048, BT_VOCAB}},
  };
  for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
    if (name && strcmp(name, presets[i].name) == 0) {
      *cfg = presets[i].cfg;
      return 0;
    }
  return -1;
}

bt_error bt_config_check(const bt_config *c) {
  if (c->n_layer < 1 || c->n_layer > 64)
    return bt_fail(BT_ERR_ARG, "layers must be in 1..64 (got %d)", c->n_layer);
  if (c->d_model < 16 || c->d_model > 4096 || c->d_model % 16)
    return bt_fail(BT_ERR_ARG, "dim must be a multiple of 16 in 16..4096 (got %d)", c->d_model);
  if (c->n_head < 1 || c->d_model % c->n_head || (c->d_model / c->n_head) % 8)
    return bt_fail(BT_ERR_ARG, "heads must divide dim into head sizes that are multiples of 8 (dim %d, heads %d)",
                   c->d_model, c->n_head);
  if (c->ctx < 1 || c->ctx > 65536)
    return bt_fail(BT_ERR_ARG, "context must be in 1..65536 (got %d)", c->ctx);
  const int V = bt_config_vocab(c);
  if (V < BT_VOCAB || V > BT_MAX_VOCAB)
    return bt_fail(BT_ERR_ARG, "vocabulary must be in %d..%d (got %d)", BT_VOCAB, BT_MAX_VOCAB, V);
  return BT_OK;
}

size_t bt_param_layout(const bt_config *cfg, bt_tensor_info t[BT_NUM_TENSORS]) {
  size_t L = (size_t)cfg->n_layer, C = (size_t)cfg->d_model, V = (size_t)bt_config_vocab(cfg);
  const struct {
    const char *name;
    int ndim;
    size_t s0, s1, s2;
    int decay;
  } spec[BT_NUM_TENSORS] = {
      [BT_T_EMBED] = {"embed", 2, V, C, 0, 0},
      [BT_T_QKV_W] = {"qkv_w", 3, L, 3 * C, C, 1},
      [BT_T_ATTO_W] = {"attn_out_w", 3, L, C, C, 1},
      [BT_T_LN1_W] = {"ln1_w", 2, L, C, 0, 0},
      [BT_T_LN1_B] = {"ln1_b", 2, L, C, 0, 0},
      [BT_T_FC_W] = {"fc_w", 3, L, 4 * C, C, 1},
      [BT_T_FC_B] = {"fc_b", 2, L, 4 * C, 0, 0},
      [BT_T_PROJ_W] = {"proj_w", 3, L, C, 4 * C, 1},
      [BT_T_PROJ_B] = {"proj_b", 2, L, C, 0, 0},
      [BT_T_LN2_W] = {"ln2_w", 2, L, C, 0, 0},
      [BT_T_LN2_B] = {"ln2_b", 2, L, C, 0, 0},
      [BT_T_OUT_W] = {"out_w", 2, V, C, 0, 1},
      [BT_T_OUT_B] = {"out_b", 1, V, 0, 0, 0},
  };
  size_t off = 0;
  for (int i = 0; i < BT_NUM_TENSORS; i++) {
    t[i].name = spec[i].name;
    t[i].ndim = spec[i].ndim;
    t[i].shape[0] = spec[i].s0;
    t[i].shape[1] = spec[i].s1;
    t[i].shape[2] = spec[i].s2;
    t[i].size = 1;
    for (int d = 0; d < t[i].ndim; d++)
      t[i].size *= t[i].shape[d];
    t[i].offset = off;
    t[i].decay = spec[i].decay;
    off += t[i].size;
  }
  return off;
}

size_t bt_config_num_params(const bt_config *cfg) {
  bt_tensor_info t[BT_NUM_TENSORS];
  return bt_param_layout(cfg, t);
}

/* ==================================================================== */
/* Lifetime                                                             */
/* ==================================================================== */

static float *alloc_floats(size_t n) {
  /* 64-byte aligned for the SIMD kernels; size rounded up as aligned_alloc wants */
  size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
  float *p = aligned_alloc(64, bytes ? bytes : 64);
  if (p)
    memset(p, 0, bytes);
  return p;
}

bt_error bt_model_create(bt_model **out, const bt_config *cfg) {
  *out = NULL;
  bt_error e = bt_config_check(cfg);
  if (e)
    return e;
  bt_model *m = calloc(1, sizeof *m);
  if (!m)
    return bt_fail(BT_ERR_NOMEM, "model");
  m->cfg = *cfg;
  m->cfg.vocab = bt_config_vocab(cfg);
  m->n_params = bt_param_layout(cfg, m->t);
  int hs = cfg->d_model / cfg->n_head;
  m->params = alloc_floats(m->n_params);
  m->rope_cos = alloc_floats((size_t)cfg->ctx * hs / 2);
  m->rope_sin = alloc_floats((size_t)cfg->ctx * hs / 2);
  if (!m->params || !m->rope_cos || !m->rope_sin) {
    bt_model_free(m);
    return bt_fail(BT_ERR_NOMEM, "model parameters (%zu floats)", m->n_params);
  }
  bt_rope_tables(m->rope_cos, m->rope_sin, cfg->ctx, hs);
  bt_model_view_of(&m->view, &m->cfg, m->t, m->params, 0);
  *out = m;
  return BT_OK;
}

void bt_model_free(bt_model *m) {
  if (!m)
    return;
  free(m->params);
  free(m->grads);
  free(m->adam_m);
  free(m->adam_v);
  free(m->rope_cos);
  free(m->rope_sin);
  free(m->acts_mem);
  free(m->inp);
  free(m->tgt);
  free(m->wide);
  free(m->tokenizer);
  free(m);
}

bt_error bt_model_set_tokenizer(bt_model *m, const uint8_t *img, size_t n) {
  uint8_t *copy = NULL;
  if (n) {
    if (!(copy = malloc(n)))
      return bt_fail(BT_ERR_NOMEM, "tokenizer (%zu bytes)", n);
    memcpy(copy, img, n);
  }
  free(m->tokenizer);
  m->tokenizer = copy;
  m->tokenizer_len = n;
  return BT_OK;
}

const uint8_t *bt_model_tokenizer(const bt_model *m, size_t *n) {
  *n = m->tokenizer_len;
  return m->tokenizer;
}

const bt_config *bt_model_config(const bt_model *m) { return &m->cfg; }
size_t bt_model_num_params(const bt_model *m) { return m->n_params; }
const bt_tensor_info *bt_model_tensors(const bt_model *m) { return m->t; }
float *bt_model_params(bt_model *m) { return m->params; }
float *bt_model_grads(bt_model *m) { return m->grads; }
const float *bt_model_logits(const bt_model *m) { return m->B ? m->a.logits : NULL; }
const float *bt_model_losses(const bt_model *m) { return m->B ? m->a.losses : NULL; }

float *bt_model_adam_m(bt_model *m) {
  if (!m->adam_m)
    m->adam_m = alloc_floats(m->n_params);
  return m->adam_m;
}

float *bt_model_adam_v(bt_model *m) {
  if (!m->adam_v)
    m->adam_v = alloc_floats(m->n_params);
  return m->adam_v;
}

/* ==================================================================== */
/* Initialisation                                                       */
/* ==================================================================== */

typedef struct {
  uint64_t s;
} rng_t;

static uint64_t rng_u64(rng_t *r) { /* splitmix64 */
  uint64_t z = (r->s += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

static double rng_uniform(rng_t *r) { return (double)(rng_u64(r) >> 11) * 0x1p-53; }

/* Normal(0,1) truncated at +-2, by rejection on Box-Muller draws. */
static float rng_trunc_normal(rng_t *r) {
  for (;;) {
    double u1 = rng_uniform(r), u2 = rng_uniform(r);
    double z = sqrt(-2.0 * log(u1 + 1e-300)) * cos(6.283185307179586 * u2);
    if (fabs(z) <= 2.0)
      return (float)z;
  }
}

void bt_model_init(bt_model *m, uint64_t seed) { bt_model_init_scaled(m, seed, 1.0); }

void bt_model_init_scaled(bt_model *m, uint64_t seed, double scale) {
  rng_t r = {seed};
  const size_t C = (size_t)m->cfg.d_model;
  for (int i = 0; i < BT_NUM_TENSORS; i++) {
    const bt_tensor_info *t = &m->t[i];
    float *p = m->params + t->offset;
    double std = 0.0, fill = 0.0;
    switch (i) {
    case BT_T_EMBED: std = 0.02; break;
    case BT_T_QKV_W: case BT_T_ATTO_W: case BT_T_FC_W: case BT_T_OUT_W:
      std = 1.0 / sqrt((double)C); break;
    case BT_T_PROJ_W: std = 1.0 / sqrt(4.0 * (double)C); break;
    case BT_T_LN1_W: case BT_T_LN2_W: fill = 1.0; break;
    default: break; /* biases */
    }
    std *= scale;
    for (size_t j = 0; j < t->size; j++)
      p[j] = std > 0 ? (float)(std * rng_trunc_normal(&r)) : (float)fill;
  }
}

/* ==================================================================== */
/* Forward                                                              */
/* ==================================================================== */

static bt_error ensure_acts(bt_model *m, int B, int T) {
  const size_t L = (size_t)m->cfg.n_layer, C = (size_t)m->cfg.d_model;
  const size_t H = (size_t)m->cfg.n_head, V = (size_t)m->cfg.vocab, N = (size_t)B * T;
  struct {
    float **p;
    size_t n;
  } plan[] = {
      {&m->a.x, (L + 1) * N * C},   {&m->a.qkv, L * N * 3 * C},
      {&m->a.att, L * N * C},       {&m->a.lse, L * N * H},
      {&m->a.res1, L * N * C},      {&m->a.h, L * N * C},
      {&m->a.ln1_mean, L * N},      {&m->a.ln1_rstd, L * N},
      {&m->a.fch, L * N * 4 * C},   {&m->a.fcg, L * N * 4 * C},
      {&m->a.res2, L * N * C},      {&m->a.ln2_mean, L * N},
      {&m->a.ln2_rstd, L * N},      {&m->a.logits, N * V},
      {&m->a.losses, N},            {&m->a.dlogits, N * V},
      {&m->a.dx, N * C},            {&m->a.dres, N * C},
      {&m->a.dh, N * C},            {&m->a.dbig, N * 4 * C},
      {&m->a.dbig2, N * 4 * C},     {&m->a.dqkv, N * 3 * C},
      {&m->a.tmp, N * C},
  };
  size_t total = 0;
  for (size_t i = 0; i < sizeof plan / sizeof plan[0]; i++)
    total += (plan[i].n + 15) & ~(size_t)15; /* keep every array 64-byte aligned */
  if (total > m->acts_cap) {
    free(m->acts_mem);
    m->acts_mem = alloc_floats(total);
    m->acts_cap = m->acts_mem ? total : 0;
    if (!m->acts_mem)
      return bt_fail(BT_ERR_NOMEM, "activations for batch %d x %d (%zu MB)", B, T,
                     total * sizeof(float) >> 20);
  }
  float *p = m->acts_mem;
  for (size_t i = 0; i < sizeof plan / sizeof plan[0]; i++) {
    *plan[i].p = p;
    p += (plan[i].n + 15) & ~(size_t)15;
  }
  if (N > m->tok_cap) {
    free(m->inp);
    free(m->tgt);
    free(m->wide);
    m->inp = malloc(N * sizeof *m->inp);
    m->tgt = malloc(N * sizeof *m->tgt);
    m->wide = malloc(N * sizeof *m->wide);
    m->tok_cap = (m->inp && m->tgt && m->wide) ? N : 0;
    if (!m->tok_cap)
      return bt_fail(BT_ERR_NOMEM, "token buffers");
  }
  return BT_OK;
}

/* The training pass's steps of the forward (layer.h): linear layers on the
 * thread's GEMM backend, attention over whole sequences (keeping the
 * log-sum-exps), every activation kept for backward. */
static void train_linear(void *ctx, float *out, const float *in, bt_mat w, const float *bias,
                         int R, int IC, int OC) {
  (void)ctx; /* the model's own view: never transposed */
  bt_linear_forward(out, in, w.w, bias, R, IC, OC);
}

static void train_attend(void *ctx, int l, float *qkv, float *att) {
  bt_model *m = ctx;
  const int B = m->B, T = m->T, C = m->cfg.d_model, H = m->cfg.n_head;
  bt_rope_forward(qkv, m->rope_cos, m->rope_sin, B, T, C, H);
  bt_attention_forward(att, m->a.lse + (size_t)l * B * T * H, qkv, B, T, C, H);
}

static void train_bufs(void *ctx, int l, bt_layer_bufs *b) {
  bt_model *m = ctx;
  acts_t *a = &m->a;
  const size_t N = (size_t)m->B * m->T, NC = N * m->cfg.d_model, lN = (size_t)l * N;
  *b = (bt_layer_bufs){
      .x = a->x + l * NC, .xout = a->x + (l + 1) * NC, .qkv = a->qkv + l * 3 * NC,
      .att = a->att + l * NC, .res1 = a->res1 + l * NC, .h = a->h + l * NC,
      .mean1 = a->ln1_mean + lN, .rstd1 = a->ln1_rstd + lN, .fch = a->fch + l * 4 * NC,
      .fcg = a->fcg + l * 4 * NC, .res2 = a->res2 + l * NC, .mean2 = a->ln2_mean + lN,
      .rstd2 = a->ln2_rstd + lN, .tmp = a->tmp};
}

static const bt_forward_ops train_ops = {train_linear, train_attend, train_bufs};

/* The shape checked and the buffers for it made. */
static bt_error prepare(bt_model *m, int B, int T) {
  if (B < 1 || T < 1 || T > m->cfg.ctx)
    return bt_fail(BT_ERR_ARG, "batch %d x %d does not fit context %d", B, T, m->cfg.ctx);
  return ensure_acts(m, B, T);
}

bt_error bt_model_forward(bt_model *m, const uint8_t *seq, int B, int T, float *loss) {
  bt_error e = prepare(m, B, T);
  if (e)
    return e;
  const size_t N = (size_t)B * T;
  for (size_t i = 0; i < N; i++)
    m->wide[i] = seq[i];
  return bt_model_forward_tokens(m, m->wide, B, T, loss);
}

bt_error bt_model_forward_tokens(bt_model *m, const uint16_t *seq, int B, int T, float *loss) {
  bt_error e = prepare(m, B, T);
  if (e)
    return e;
  const int N = B * T;
  acts_t *a = &m->a;
  for (int i = 0; i < N; i++)
    if (seq[i] >= m->cfg.vocab)
      return bt_fail(BT_ERR_ARG, "token %d at %d is outside the vocabulary of %d", seq[i], i,
                     m->cfg.vocab);

  for (int b = 0; b < B; b++) { /* shift right: position 0 sees BOS */
    m->inp[(size_t)b * T] = BT_BOS;
    memcpy(m->inp + (size_t)b * T + 1, seq + (size_t)b * T, ((size_t)T - 1) * sizeof *seq);
  }
  memcpy(m->tgt, seq, (size_t)N * sizeof *seq);

  m->B = B;
  m->T = T;
  bt_forward(&train_ops, m, &m->view, N, m->inp, a->logits);
  bt_crossentropy_forward(a->losses, a->logits, m->tgt, N, m->cfg.vocab);
  if (loss) {
    double s = 0;
    for (int i = 0; i < N; i++)
      s += a->losses[i];
    *loss = (float)(s / N);
    if (!isfinite(*loss))
      return bt_fail(BT_ERR_NUMERIC, "loss is %f", (double)*loss);
  }
  return BT_OK;
}

/* ==================================================================== */
/* Backward                                                             */
/* ==================================================================== */

bt_error bt_model_backward(bt_model *m) {
  if (!m->B)
    return bt_fail(BT_ERR_ARG, "backward without a forward");
  if (!m->grads && !(m->grads = alloc_floats(m->n_params)))
    return bt_fail(BT_ERR_NOMEM, "gradients");
  const int L = m->cfg.n_layer, C = m->cfg.d_model, H = m->cfg.n_head, V = m->cfg.vocab;
  const int B = m->B, T = m->T, N = B * T;
  const size_t NC = (size_t)N * C;
  acts_t *a = &m->a;
  const bt_model_view *v = &m->view;
  float *G = m->grads;
  /* The gradient of the parameter at p (same layout). */
#define GRAD(p) (G + ((p) - m->params))

  memset(G, 0, m->n_params * sizeof(float));
  memset(a->dlogits, 0, (size_t)N * V * sizeof(float));
  bt_crossentropy_backward(a->dlogits, a->logits, m->tgt, N, V, 1.0f / (float)N);
  bt_layer_bufs b;
  train_bufs(m, L - 1, &b);
  bt_linear_backward_set(a->dx, GRAD(v->out.w), GRAD(v->out_b), a->dlogits, b.xout, v->out.w, N, C,
                     V);

  for (int l = L - 1; l >= 0; l--) {
    const bt_layer_view *w = &v->layer[l];
    train_bufs(m, l, &b);
    /* x_{l+1} = LN2(res2) */
    bt_layernorm_backward_set(a->dres, GRAD(w->ln2_w), GRAD(w->ln2_b), a->dx, b.res2, w->ln2_w,
                              b.mean2, b.rstd2, N, C);
    /* res2 = h + W2 gelu(W1 h + b1) + b2 */
    memcpy(a->dh, a->dres, NC * sizeof(float));
    bt_linear_backward_set(a->dbig, GRAD(w->proj.w), GRAD(w->proj_b), a->dres, b.fcg, w->proj.w, N,
                       4 * C, C);
    bt_gelu_backward_set(a->dbig2, b.fch, a->dbig, 4 * NC);
    bt_linear_backward(a->dh, GRAD(w->fc.w), GRAD(w->fc_b), a->dbig2, b.h, w->fc.w, N, C, 4 * C);
    /* h = LN1(res1) */
    bt_layernorm_backward_set(a->dres, GRAD(w->ln1_w), GRAD(w->ln1_b), a->dh, b.res1, w->ln1_w,
                              b.mean1, b.rstd1, N, C);
    /* res1 = x + Wo att(rope(qkv)) */
    memcpy(a->dx, a->dres, NC * sizeof(float));
    bt_linear_backward_set(a->tmp, GRAD(w->attn_o.w), NULL, a->dres, b.att, w->attn_o.w, N, C, C);
    memset(a->dqkv, 0, 3 * NC * sizeof(float));
    bt_attention_backward(a->dqkv, a->tmp, b.qkv, b.att, a->lse + (size_t)l * N * H, B, T, C, H);
    bt_rope_backward(a->dqkv, m->rope_cos, m->rope_sin, B, T, C, H);
    bt_linear_backward(a->dx, GRAD(w->qkv.w), NULL, a->dqkv, b.x, w->qkv.w, N, C, 3 * C);
  }
  bt_embedding_backward(GRAD(v->embed), a->dx, m->inp, N, C, sqrtf((float)C));
#undef GRAD
  return BT_OK;
}

void bt_model_adamw(bt_model *m, float lr, float beta1, float beta2, float eps,
                    float weight_decay, int step) {
  float *mm = bt_model_adam_m(m), *vv = bt_model_adam_v(m);
  for (int i = 0; i < BT_NUM_TENSORS; i++) {
    const bt_tensor_info *t = &m->t[i];
    bt_adamw_update(m->params + t->offset, m->grads + t->offset, mm + t->offset,
                    vv + t->offset, t->size, lr, beta1, beta2, eps,
                    t->decay ? weight_decay : 0.0f, step);
  }
}

/* Newton-Schulz: X (r, c), r <= c, of Frobenius norm <= 1, towards the
 * orthogonal factor of its polar decomposition, in place. The quintic's
 * coefficients are Keller Jordan's (Muon, 2024): they push every singular
 * value into roughly [0.7, 1.2] in 5 steps. A, AA (r, r), BX (r, c): scratch. */
static void newton_schulz5(float *X, int r, int c, float *A, float *AA, float *BX) {
  const float a = 3.4445f, b = -4.7750f, cc = 2.0315f;
  const size_t rr = (size_t)r * r, rc = (size_t)r * c;
  for (int it = 0; it < 5; it++) {
    bt_gemm_train(0, 1, r, r, c, X, c, X, c, A, r, 0); /* A = X X^T */
    bt_gemm_train(0, 0, r, r, r, A, r, A, r, AA, r, 0); /* AA = A A */
    bt_axpby(A, b, A, cc, AA, rr);                      /* B = b A + c A^2 */
    bt_gemm_train(0, 0, r, c, r, A, r, X, c, BX, c, 0); /* B X */
    bt_axpby(X, a, X, 1.0f, BX, rc);                    /* a X + B X (1 x is x) */
  }
}

bt_error bt_model_muon(bt_model *m, float lr, float mu, float beta1, float beta2, float eps,
                       float weight_decay, int step) {
  float *mm = bt_model_adam_m(m), *vv = bt_model_adam_v(m);
  if (!mm || !vv)
    return bt_fail(BT_ERR_NOMEM, "optimizer state");
  const int L = m->cfg.n_layer;
  size_t most = 0; /* the largest matrix, for the scratch */
  for (int i = 0; i < BT_NUM_TENSORS; i++)
    if (m->t[i].ndim == 3 && m->t[i].size / L > most)
      most = m->t[i].size / L;
  const size_t C = (size_t)m->cfg.d_model;
  float *X = malloc(most * sizeof(float)), *BX = malloc(most * sizeof(float));
  float *A = malloc(C * C * sizeof(float)), *AA = malloc(C * C * sizeof(float));
  if (!X || !BX || !A || !AA) {
    free(X), free(BX), free(A), free(AA);
    return bt_fail(BT_ERR_NOMEM, "Muon scratch");
  }
  for (int i = 0; i < BT_NUM_TENSORS; i++) {
    const bt_tensor_info *t = &m->t[i];
    if (t->ndim != 3) { /* embedding, head, LayerNorms, biases: AdamW; (L, R, C) are the matrices */
      bt_adamw_update(m->params + t->offset, m->grads + t->offset, mm + t->offset, vv + t->offset,
                      t->size, lr, beta1, beta2, eps, t->decay ? weight_decay : 0.0f, step);
      continue;
    }
    const int R = (int)t->shape[1], Cc = (int)t->shape[2];
    const int tr = R > Cc, r = tr ? Cc : R, c = tr ? R : Cc; /* X is (r, c), r <= c */
    const size_t n = (size_t)R * Cc;
    const float scale = 0.2f * sqrtf((float)(R > Cc ? R : Cc));
    for (int l = 0; l < L; l++) {
      float *W = m->params + t->offset + l * n, *M = mm + t->offset + l * n;
      const float *G = m->grads + t->offset + l * n;
      bt_axpby(M, mu, M, 1.0f, G, n);  /* M = mu M + G */
      bt_axpby(BX, mu, M, 1.0f, G, n); /* U = G + mu M (Nesterov) */
      double ss = 0;                   /* in order: these bits are the run's */
      for (size_t j = 0; j < n; j++)
        ss += (double)BX[j] * BX[j];
      const float inv = (float)(1.0 / (sqrt(ss) + 1e-7));
      if (tr) /* X = U^T / |U| */
        bt_transpose_scaled(X, BX, R, Cc, inv);
      else
        memcpy(X, BX, n * sizeof *X), bt_scale(X, n, inv);
      newton_schulz5(X, r, c, A, AA, BX);
      if (tr) /* back to (R, Cc) */
        bt_transpose_scaled(BX, X, Cc, R, 1.0f);
      /* W = W (1 - lr wd) - (lr scale) U */
      bt_axpby(W, 1.0f - lr * weight_decay, W, -(lr * scale), tr ? BX : X, n);
    }
  }
  free(X), free(BX), free(A), free(AA);
  return BT_OK;
}
