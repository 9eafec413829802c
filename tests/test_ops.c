/*
 * test_ops.c - the elementwise and row ops (kernels/ops*.c):
 *  - every op, forward and backward, against its naive reference on every
 *    ISA path the CPU has, and the paths memcmp-identical to each other;
 *  - 1, 2 and 3 threads memcmp-identical;
 *  - finite-difference gradient checks for every op with a backward;
 *  - bt_expf, bt_tanhf, bt_exp_vec and bt_rope_tables against libm;
 *  - AdamW over several steps, and its decoupled weight decay;
 *  - a negative control showing the comparisons can fail.
 * TEST_OPS_VERBOSE=1 prints every measured error.
 */
#include "kernels/kernels.h"
#include "tests/check.h"

#include <float.h>

/* ==================================================================== */
/* Harness: one op run on every path and thread count                    */
/* ==================================================================== */

/* Runs an op on the context's inputs and writes everything it produces into
 * res (nres floats); in-place and accumulating outputs start from the
 * context's initial values, copied in by the callback. */
typedef void (*op_run)(const void *ctx, float *res);

static bt_isa g_best;

static float *xmalloc(size_t n) {
  float *p = malloc((n ? n : 1) * sizeof *p);
  assert(p);
  return p;
}

/* Fast vs naive within rel. tol (floor as in check_max_rel), every ISA path
 * identical, and 1/2/3 threads identical. */
static void check_op(const char *name, op_run fast, op_run naive, const void *ctx, size_t nres,
                     double tol, double floor_) {
  float *ref = xmalloc(nres), *res0 = xmalloc(nres), *res = xmalloc(nres);
  naive(ctx, ref);
  bt_set_threads(1);
  for (int isa = BT_ISA_SCALAR; isa <= (int)g_best; isa++) {
    CHECK(bt_isa_set((bt_isa)isa) == 0, "%s: set isa %d", name, isa);
    float *out = isa == BT_ISA_SCALAR ? res0 : res;
    fast(ctx, out);
    double e = check_max_rel(out, ref, nres, floor_);
    if (getenv("TEST_OPS_VERBOSE"))
      printf("  %-22s %-7s err %.3g (tol %.3g)\n", name, bt_isa_name((bt_isa)isa), e, tol);
    CHECK(e <= tol, "%s on %s: fast vs naive max rel err %.3g > %.3g", name,
          bt_isa_name((bt_isa)isa), e, tol);
    if (isa != BT_ISA_SCALAR)
      CHECK(memcmp(out, res0, nres * sizeof(float)) == 0, "%s: %s differs from scalar", name,
            bt_isa_name((bt_isa)isa));
  }
  bt_isa_set(g_best);
  fast(ctx, res0); /* 1 thread, best path */
  for (int th = 2; th <= 3; th++) {
    bt_set_threads(th);
    fast(ctx, res);
    CHECK(memcmp(res, res0, nres * sizeof(float)) == 0, "%s: %d threads differ from 1", name,
          th);
  }
  bt_set_threads(2);
  free(ref);
  free(res0);
  free(res);
}

static void fill_tokens(uint16_t *t, size_t n, uint64_t seed, int V) {
  uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 1;
  for (size_t i = 0; i < n; i++)
    t[i] = (uint16_t)(check_rng_next_(&s) % (uint64_t)V);
}

/* ==================================================================== */
/* Op contexts                                                           */
/* ==================================================================== */

typedef struct {
  int N, C, V;
  float scale;
  uint16_t *tok;
  float *wte, *dout, *dwte0;
} emb_ctx;

static void emb_fwd(const void *p, float *r) {
  const emb_ctx *c = p;
  bt_embedding_forward(r, c->tok, c->wte, c->N, c->C, c->scale);
}
static void emb_fwd_n(const void *p, float *r) {
  const emb_ctx *c = p;
  bt_embedding_forward_naive(r, c->tok, c->wte, c->N, c->C, c->scale);
}
static void emb_bwd(const void *p, float *r) {
  const emb_ctx *c = p;
  memcpy(r, c->dwte0, (size_t)c->V * c->C * sizeof *r);
  bt_embedding_backward(r, c->dout, c->tok, c->N, c->C, c->scale);
}
static void emb_bwd_n(const void *p, float *r) {
  const emb_ctx *c = p;
  memcpy(r, c->dwte0, (size_t)c->V * c->C * sizeof *r);
  bt_embedding_backward_naive(r, c->dout, c->tok, c->N, c->C, c->scale);
}

typedef struct {
  int N, C;
  float *inp, *w, *b, *dout, *mean, *rstd, *dinp0, *dw0, *db0;
} ln_ctx;

/* res = out (N,C) | mean (N) | rstd (N) */
static void ln_fwd(const void *p, float *r) {
  const ln_ctx *c = p;
  size_t nc = (size_t)c->N * c->C;
  bt_layernorm_forward(r, r + nc, r + nc + c->N, c->inp, c->w, c->b, c->N, c->C);
}
static void ln_fwd_n(const void *p, float *r) {
  const ln_ctx *c = p;
  size_t nc = (size_t)c->N * c->C;
  bt_layernorm_forward_naive(r, r + nc, r + nc + c->N, c->inp, c->w, c->b, c->N, c->C);
}
/* res = dinp (N,C) | dw (C) | db (C) */
static void ln_bwd_init(const ln_ctx *c, float *r) {
  size_t nc = (size_t)c->N * c->C;
  memcpy(r, c->dinp0, nc * sizeof *r);
  memcpy(r + nc, c->dw0, (size_t)c->C * sizeof *r);
  memcpy(r + nc + c->C, c->db0, (size_t)c->C * sizeof *r);
}
static void ln_bwd(const void *p, float *r) {
  const ln_ctx *c = p;
  size_t nc = (size_t)c->N * c->C;
  ln_bwd_init(c, r);
  bt_layernorm_backward(r, r + nc, r + nc + c->C, c->dout, c->inp, c->w, c->mean, c->rstd, c->N,
                        c->C);
}
static void ln_bwd_n(const void *p, float *r) {
  const ln_ctx *c = p;
  size_t nc = (size_t)c->N * c->C;
  ln_bwd_init(c, r);
  bt_layernorm_backward_naive(r, r + nc, r + nc + c->C, c->dout, c->inp, c->w, c->mean,
                              c->rstd, c->N, c->C);
}

typedef struct {
  size_t n;
  float *inp, *dout, *dinp0;
} ew_ctx; /* elementwise: gelu, exp_vec, scale, add */

static void gelu_fwd(const void *p, float *r) {
  const ew_ctx *c = p;
  bt_gelu_forward(r, c->inp, c->n);
}
static void gelu_fwd_n(const void *p, float *r) {
  const ew_ctx *c = p;
  bt_gelu_forward_naive(r, c->inp, c->n);
}
static void gelu_bwd(const void *p, float *r) {
  const ew_ctx *c = p;
  memcpy(r, c->dinp0, c->n * sizeof *r);
  bt_gelu_backward(r, c->inp, c->dout, c->n);
}
static void gelu_bwd_n(const void *p, float *r) {
  const ew_ctx *c = p;
  memcpy(r, c->dinp0, c->n * sizeof *r);
  bt_gelu_backward_naive(r, c->inp, c->dout, c->n);
}
static void expv(const void *p, float *r) {
  const ew_ctx *c = p;
  bt_exp_vec(r, c->inp, c->n);
}
static void expv_n(const void *p, float *r) {
  const ew_ctx *c = p;
  for (size_t i = 0; i < c->n; i++)
    r[i] = (float)exp((double)c->inp[i]);
}
static void scale_f(const void *p, float *r) {
  const ew_ctx *c = p;
  memcpy(r, c->inp, c->n * sizeof *r);
  bt_scale(r, c->n, 0.37f);
}
static void scale_n(const void *p, float *r) {
  const ew_ctx *c = p;
  for (size_t i = 0; i < c->n; i++)
    r[i] = c->inp[i] * 0.37f;
}
static void add_f(const void *p, float *r) { /* aliased: r = r + dout */
  const ew_ctx *c = p;
  memcpy(r, c->inp, c->n * sizeof *r);
  bt_add(r, r, c->dout, c->n);
}
static void add_n(const void *p, float *r) {
  const ew_ctx *c = p;
  for (size_t i = 0; i < c->n; i++)
    r[i] = c->inp[i] + c->dout[i];
}
static void axpby_f(const void *p, float *r) { /* aliased: r = 0.93 r - 0.61 dout */
  const ew_ctx *c = p;
  memcpy(r, c->inp, c->n * sizeof *r);
  bt_axpby(r, 0.93f, r, -0.61f, c->dout, c->n);
}
static void axpby_n(const void *p, float *r) { /* the two products apart, then the sum */
  const ew_ctx *c = p;
  for (size_t i = 0; i < c->n; i++) {
    volatile float ax = 0.93f * c->inp[i], by = -0.61f * c->dout[i];
    r[i] = ax + by;
  }
}
/* sumsq as a 2-float result: the double's bits */
static void sumsq_f(const void *p, float *r) {
  const ew_ctx *c = p;
  double s = bt_sumsq(c->inp, c->n);
  memcpy(r, &s, sizeof s);
}

typedef struct {
  int B, T, C, H;
  float *qkv, *cos_t, *sin_t;
} rope_ctx;

static void rope_fwd(const void *p, float *r) {
  const rope_ctx *c = p;
  memcpy(r, c->qkv, (size_t)c->B * c->T * 3 * c->C * sizeof *r);
  bt_rope_forward(r, c->cos_t, c->sin_t, c->B, c->T, c->C, c->H);
}
static void rope_fwd_n(const void *p, float *r) {
  const rope_ctx *c = p;
  memcpy(r, c->qkv, (size_t)c->B * c->T * 3 * c->C * sizeof *r);
  bt_rope_forward_naive(r, c->cos_t, c->sin_t, c->B, c->T, c->C, c->H);
}
static void rope_bwd(const void *p, float *r) {
  const rope_ctx *c = p;
  memcpy(r, c->qkv, (size_t)c->B * c->T * 3 * c->C * sizeof *r);
  bt_rope_backward(r, c->cos_t, c->sin_t, c->B, c->T, c->C, c->H);
}
static void rope_bwd_n(const void *p, float *r) {
  const rope_ctx *c = p;
  memcpy(r, c->qkv, (size_t)c->B * c->T * 3 * c->C * sizeof *r);
  bt_rope_backward_naive(r, c->cos_t, c->sin_t, c->B, c->T, c->C, c->H);
}

typedef struct {
  int N, V;
  float dloss;
  uint16_t *tgt;
  float *logits, *dlogits0;
} ce_ctx;

static void ce_fwd(const void *p, float *r) {
  const ce_ctx *c = p;
  bt_crossentropy_forward(r, c->logits, c->tgt, c->N, c->V);
}
static void ce_fwd_n(const void *p, float *r) {
  const ce_ctx *c = p;
  bt_crossentropy_forward_naive(r, c->logits, c->tgt, c->N, c->V);
}
static void ce_bwd(const void *p, float *r) {
  const ce_ctx *c = p;
  memcpy(r, c->dlogits0, (size_t)c->N * c->V * sizeof *r);
  bt_crossentropy_backward(r, c->logits, c->tgt, c->N, c->V, c->dloss);
}
static void ce_bwd_n(const void *p, float *r) {
  const ce_ctx *c = p;
  memcpy(r, c->dlogits0, (size_t)c->N * c->V * sizeof *r);
  bt_crossentropy_backward_naive(r, c->logits, c->tgt, c->N, c->V, c->dloss);
}

typedef struct {
  size_t n;
  int steps;
  float lr, wd;
  float *p0, *g; /* g: steps x n */
} adam_ctx;

/* res = params | m | v after `steps` steps from p0, m = v = 0 */
static void adam_run(const adam_ctx *c, float *r, int naive) {
  float *p = r, *m = r + c->n, *v = r + 2 * c->n;
  memcpy(p, c->p0, c->n * sizeof *p);
  memset(m, 0, 2 * c->n * sizeof *m);
  for (int t = 1; t <= c->steps; t++) {
    const float *g = c->g + (size_t)(t - 1) * c->n;
    if (naive)
      bt_adamw_update_naive(p, g, m, v, c->n, c->lr, 0.9f, 0.95f, 1e-8f, c->wd, t);
    else
      bt_adamw_update(p, g, m, v, c->n, c->lr, 0.9f, 0.95f, 1e-8f, c->wd, t);
  }
}
static void adam_f(const void *p, float *r) { adam_run(p, r, 0); }
static void adam_n(const void *p, float *r) { adam_run(p, r, 1); }

/* ==================================================================== */
/* Finite differences                                                    */
/* ==================================================================== */

/* Loss of the current inputs, in double. */
typedef double (*loss_fn)(void *ctx);

/* Central differences of loss over x[0..n), compared with the analytic
 * gradient: max |g - fd| / max(max |g|, 1e-2) <= tol. */
static void check_fd(const char *name, loss_fn loss, void *ctx, float *x, const float *g,
                     size_t n, float h, double tol) {
  double maxerr = 0, maxg = 1e-2;
  for (size_t i = 0; i < n; i++) {
    float x0 = x[i];
    float xp = x0 + h, xm = x0 - h;
    x[i] = xp;
    double lp = loss(ctx);
    x[i] = xm;
    double lm = loss(ctx);
    x[i] = x0;
    double fd = (lp - lm) / ((double)xp - (double)xm);
    double e = fabs(fd - g[i]);
    maxerr = e > maxerr ? e : maxerr;
    maxg = fabs(g[i]) > maxg ? fabs(g[i]) : maxg;
  }
  if (getenv("TEST_OPS_VERBOSE"))
    printf("  fd %-18s rel err %.3g (tol %.3g)\n", name, maxerr / maxg, tol);
  CHECK(maxerr / maxg <= tol, "%s: finite-difference gradient rel err %.3g > %.3g", name,
        maxerr / maxg, tol);
}

static double dot_d(const float *a, const float *b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++)
    s += (double)a[i] * b[i];
  return s;
}

typedef struct {
  int N, C;
  float *inp, *w, *b, *r, *out, *mean, *rstd;
} ln_fd;
static double ln_loss(void *p) {
  ln_fd *c = p;
  bt_layernorm_forward(c->out, c->mean, c->rstd, c->inp, c->w, c->b, c->N, c->C);
  return dot_d(c->out, c->r, (size_t)c->N * c->C);
}

typedef struct {
  size_t n;
  float *inp, *r, *out;
} gelu_fd;
static double gelu_loss(void *p) {
  gelu_fd *c = p;
  bt_gelu_forward(c->out, c->inp, c->n);
  return dot_d(c->out, c->r, c->n);
}

typedef struct {
  int N, C;
  float scale;
  uint16_t *tok;
  float *wte, *r, *out;
} emb_fd;
static double emb_loss(void *p) {
  emb_fd *c = p;
  bt_embedding_forward(c->out, c->tok, c->wte, c->N, c->C, c->scale);
  return dot_d(c->out, c->r, (size_t)c->N * c->C);
}

typedef struct {
  int B, T, C, H;
  float *qkv, *cos_t, *sin_t, *r, *tmp;
} rope_fd;
static double rope_loss(void *p) {
  rope_fd *c = p;
  size_t n = (size_t)c->B * c->T * 3 * c->C;
  memcpy(c->tmp, c->qkv, n * sizeof(float));
  bt_rope_forward(c->tmp, c->cos_t, c->sin_t, c->B, c->T, c->C, c->H);
  return dot_d(c->tmp, c->r, n);
}

typedef struct {
  int N, V;
  float dloss;
  uint16_t *tgt;
  float *logits, *losses;
} ce_fd;
static double ce_loss(void *p) {
  ce_fd *c = p;
  bt_crossentropy_forward(c->losses, c->logits, c->tgt, c->N, c->V);
  double s = 0;
  for (int n = 0; n < c->N; n++)
    s += c->losses[n];
  return s * c->dloss;
}

static void test_fd(void) {
  bt_isa_set(g_best);
  { /* LayerNorm: inp, w, b */
    ln_fd c = {.N = 3, .C = 37};
    size_t nc = (size_t)c.N * c.C;
    c.inp = xmalloc(nc), c.w = xmalloc(c.C), c.b = xmalloc(c.C), c.r = xmalloc(nc);
    c.out = xmalloc(nc), c.mean = xmalloc(c.N), c.rstd = xmalloc(c.N);
    check_fill(c.inp, nc, 1, 2.0f);
    check_fill(c.w, c.C, 2, 1.0f);
    check_fill(c.b, c.C, 3, 1.0f);
    check_fill(c.r, nc, 4, 1.0f);
    for (int i = 0; i < c.C; i++)
      c.w[i] += 1.0f;
    float *dinp = xmalloc(nc), *dw = xmalloc(c.C), *db = xmalloc(c.C);
    memset(dinp, 0, nc * sizeof *dinp);
    memset(dw, 0, c.C * sizeof *dw);
    memset(db, 0, c.C * sizeof *db);
    ln_loss(&c);
    bt_layernorm_backward(dinp, dw, db, c.r, c.inp, c.w, c.mean, c.rstd, c.N, c.C);
    check_fd("layernorm dinp", ln_loss, &c, c.inp, dinp, nc, 1e-2f, 5e-4);
    check_fd("layernorm dw", ln_loss, &c, c.w, dw, c.C, 1e-2f, 5e-4);
    check_fd("layernorm db", ln_loss, &c, c.b, db, c.C, 1e-2f, 5e-4);
    free(c.inp), free(c.w), free(c.b), free(c.r), free(c.out), free(c.mean), free(c.rstd);
    free(dinp), free(dw), free(db);
  }
  { /* GELU over [-6, 6] */
    gelu_fd c = {.n = 301};
    c.inp = xmalloc(c.n), c.r = xmalloc(c.n), c.out = xmalloc(c.n);
    check_fill(c.inp, c.n, 5, 6.0f);
    check_fill(c.r, c.n, 6, 1.0f);
    float *d = xmalloc(c.n);
    memset(d, 0, c.n * sizeof *d);
    bt_gelu_backward(d, c.inp, c.r, c.n);
    check_fd("gelu", gelu_loss, &c, c.inp, d, c.n, 1e-2f, 5e-4);
    free(c.inp), free(c.r), free(c.out), free(d);
  }
  { /* embedding: wte, repeated tokens */
    emb_fd c = {.N = 20, .C = 19, .scale = 1.7f};
    int V = 5;
    c.tok = malloc((size_t)c.N * sizeof *c.tok);
    fill_tokens(c.tok, c.N, 7, V);
    c.wte = xmalloc((size_t)V * c.C), c.r = xmalloc((size_t)c.N * c.C);
    c.out = xmalloc((size_t)c.N * c.C);
    check_fill(c.wte, (size_t)V * c.C, 8, 1.0f);
    check_fill(c.r, (size_t)c.N * c.C, 9, 1.0f);
    float *d = xmalloc((size_t)V * c.C);
    memset(d, 0, (size_t)V * c.C * sizeof *d);
    bt_embedding_backward(d, c.r, c.tok, c.N, c.C, c.scale);
    check_fd("embedding", emb_loss, &c, c.wte, d, (size_t)V * c.C, 1e-2f, 5e-4);
    free(c.tok), free(c.wte), free(c.r), free(c.out), free(d);
  }
  { /* rotary: whole qkv (v's gradient is the identity) */
    rope_fd c = {.B = 2, .T = 5, .C = 16, .H = 2};
    size_t n = (size_t)c.B * c.T * 3 * c.C;
    c.qkv = xmalloc(n), c.r = xmalloc(n), c.tmp = xmalloc(n);
    c.cos_t = xmalloc((size_t)c.T * 4), c.sin_t = xmalloc((size_t)c.T * 4);
    bt_rope_tables(c.cos_t, c.sin_t, c.T, c.C / c.H);
    check_fill(c.qkv, n, 10, 1.0f);
    check_fill(c.r, n, 11, 1.0f);
    float *d = xmalloc(n);
    memcpy(d, c.r, n * sizeof *d);
    bt_rope_backward(d, c.cos_t, c.sin_t, c.B, c.T, c.C, c.H);
    check_fd("rope", rope_loss, &c, c.qkv, d, n, 1e-2f, 5e-4);
    free(c.qkv), free(c.r), free(c.tmp), free(c.cos_t), free(c.sin_t), free(d);
  }
  { /* cross-entropy */
    ce_fd c = {.N = 4, .V = 29, .dloss = 0.25f};
    size_t nv = (size_t)c.N * c.V;
    c.tgt = malloc((size_t)c.N * sizeof *c.tgt);
    fill_tokens(c.tgt, c.N, 12, c.V);
    c.logits = xmalloc(nv), c.losses = xmalloc(c.N);
    check_fill(c.logits, nv, 13, 3.0f);
    float *d = xmalloc(nv);
    memset(d, 0, nv * sizeof *d);
    bt_crossentropy_backward(d, c.logits, c.tgt, c.N, c.V, c.dloss);
    check_fd("crossentropy", ce_loss, &c, c.logits, d, nv, 1e-2f, 5e-4);
    free(c.tgt), free(c.logits), free(c.losses), free(d);
  }
}

/* ==================================================================== */
/* The ops on every path                                                 */
/* ==================================================================== */

static void test_embedding(int N, int C, int V) {
  emb_ctx c = {.N = N, .C = C, .V = V, .scale = 0.75f};
  c.tok = malloc((size_t)N * sizeof *c.tok);
  fill_tokens(c.tok, N, 20, V);
  c.wte = xmalloc((size_t)V * C), c.dout = xmalloc((size_t)N * C);
  c.dwte0 = xmalloc((size_t)V * C);
  check_fill(c.wte, (size_t)V * C, 21, 1.0f);
  check_fill(c.dout, (size_t)N * C, 22, 1.0f);
  check_fill(c.dwte0, (size_t)V * C, 23, 1.0f);
  check_op("embedding_forward", emb_fwd, emb_fwd_n, &c, (size_t)N * C, 0, 1e-6);
  /* the naive scatter-add is the same float chain: exact */
  check_op("embedding_backward", emb_bwd, emb_bwd_n, &c, (size_t)V * C, 0, 1e-6);
  free(c.tok), free(c.wte), free(c.dout), free(c.dwte0);
}

static void test_layernorm(int N, int C) {
  ln_ctx c = {.N = N, .C = C};
  size_t nc = (size_t)N * C;
  c.inp = xmalloc(nc), c.w = xmalloc(C), c.b = xmalloc(C), c.dout = xmalloc(nc);
  c.mean = xmalloc(N), c.rstd = xmalloc(N), c.dinp0 = xmalloc(nc);
  c.dw0 = xmalloc(C), c.db0 = xmalloc(C);
  check_fill(c.inp, nc, 30, 3.0f);
  for (int n = 0; n < N; n++) /* offset rows: tests the centred variance */
    for (int i = 0; i < C; i++)
      c.inp[(size_t)n * C + i] += (float)(n % 7) - 3.0f;
  check_fill(c.w, C, 31, 1.0f);
  check_fill(c.b, C, 32, 1.0f);
  check_fill(c.dout, nc, 33, 1.0f);
  check_fill(c.dinp0, nc, 34, 1.0f);
  check_fill(c.dw0, C, 35, 1.0f);
  check_fill(c.db0, C, 36, 1.0f);
  /* outputs near 0 come from x w + b cancelling: errors are relative to O(1) */
  check_op("layernorm_forward", ln_fwd, ln_fwd_n, &c, nc + 2 * (size_t)N, 2e-6, 1.0);
  bt_layernorm_forward(c.dinp0 /* scratch */, c.mean, c.rstd, c.inp, c.w, c.b, N, C);
  check_fill(c.dinp0, nc, 34, 1.0f);
  check_op("layernorm_backward", ln_bwd, ln_bwd_n, &c, nc + 2 * (size_t)C, 5e-6, 1.0);
  free(c.inp), free(c.w), free(c.b), free(c.dout), free(c.mean), free(c.rstd);
  free(c.dinp0), free(c.dw0), free(c.db0);
}

/* The _set variants (dinp overwritten) give the bits of clearing dinp to
 * +0 and accumulating, on every ISA path: a -0 result stays +0 as 0 + -0 is. */
static void test_set_variants(int N, int C) {
  const size_t nc = (size_t)N * C;
  float *inp = xmalloc(nc), *w = xmalloc(C), *b = xmalloc(C), *dout = xmalloc(nc), *mean = xmalloc(N),
        *rstd = xmalloc(N), *tmp = xmalloc(4 * nc);
  float *acc = xmalloc(4 * nc), *set = xmalloc(4 * nc), *dw = xmalloc(2 * C), *dw2 = xmalloc(2 * C);
  check_fill(inp, nc, 50, 3.0f);
  check_fill(w, C, 51, 1.0f);
  check_fill(b, C, 52, 1.0f);
  check_fill(dout, nc, 53, 1.0f);
  for (size_t i = 0; i < nc; i += 7)
    dout[i] = -0.0f; /* makes -0 products */
  bt_layernorm_forward(tmp, mean, rstd, inp, w, b, N, C);
  for (int isa = BT_ISA_SCALAR; isa <= (int)g_best; isa++) {
    bt_isa_set((bt_isa)isa);
    memset(acc, 0, nc * sizeof *acc);
    memset(dw, 0, 2 * C * sizeof *dw);
    memset(dw2, 0, 2 * C * sizeof *dw2);
    for (size_t i = 0; i < nc; i++)
      set[i] = NAN; /* what was there must not matter */
    bt_layernorm_backward(acc, dw, dw + C, dout, inp, w, mean, rstd, N, C);
    bt_layernorm_backward_set(set, dw2, dw2 + C, dout, inp, w, mean, rstd, N, C);
    CHECK(!memcmp(acc, set, nc * sizeof *acc) && !memcmp(dw, dw2, 2 * C * sizeof *dw),
          "layernorm_backward_set differs from clear + accumulate on %s", bt_isa_name((bt_isa)isa));
    memset(acc, 0, 4 * nc * sizeof *acc);
    for (size_t i = 0; i < 4 * nc; i++)
      set[i] = NAN;
    check_fill(tmp, 4 * nc, 54, 4.0f);
    for (size_t i = 0; i < 4 * nc; i += 5)
      tmp[i] = -0.0f; /* gelu'(x) dout with dout = -0 */
    bt_gelu_backward(acc, tmp, tmp, 4 * nc);
    bt_gelu_backward_set(set, tmp, tmp, 4 * nc);
    CHECK(!memcmp(acc, set, 4 * nc * sizeof *acc), "gelu_backward_set differs from clear + accumulate on %s",
          bt_isa_name((bt_isa)isa));
    const bt_gemm_backend was = bt_gemm_backend_setting();
    bt_gemm_set_backend(BT_GEMM_BF16); /* the bf16 path's GELU */
    memset(acc, 0, 4 * nc * sizeof *acc);
    for (size_t i = 0; i < 4 * nc; i++)
      set[i] = NAN;
    bt_gelu_backward(acc, tmp, tmp, 4 * nc);
    bt_gelu_backward_set(set, tmp, tmp, 4 * nc);
    CHECK(!memcmp(acc, set, 4 * nc * sizeof *acc),
          "bf16 gelu_backward_set differs from clear + accumulate on %s", bt_isa_name((bt_isa)isa));
    bt_gemm_set_backend(was);
  }
  bt_isa_set(g_best);
  free(inp), free(w), free(b), free(dout), free(mean), free(rstd), free(tmp), free(acc), free(set), free(dw),
      free(dw2);
}

static void test_elementwise(size_t n) {
  ew_ctx c = {.n = n};
  c.inp = xmalloc(n), c.dout = xmalloc(n), c.dinp0 = xmalloc(n);
  check_fill(c.inp, n, 40, 8.0f);
  check_fill(c.dout, n, 41, 1.0f);
  check_fill(c.dinp0, n, 42, 1.0f);
  check_op("gelu_forward", gelu_fwd, gelu_fwd_n, &c, n, 1e-6, 1e-2);
  check_op("gelu_backward", gelu_bwd, gelu_bwd_n, &c, n, 1e-6, 1.0); /* accumulates */
  {
    /* While the GEMMs are bf16 the GELU is the bf16 path's own (kernels.h):
     * within 1e-4 of the exact one, the same bits on every path and thread
     * count, and not the float32 one's bits. */
    float *f32 = xmalloc(n), *b16 = xmalloc(n);
    bt_gelu_forward(f32, c.inp, n);
    const bt_gemm_backend was = bt_gemm_backend_setting();
    bt_gemm_set_backend(BT_GEMM_BF16);
    check_op("gelu_forward bf16", gelu_fwd, gelu_fwd_n, &c, n, 1e-4, 1e-2);
    check_op("gelu_backward bf16", gelu_bwd, gelu_bwd_n, &c, n, 2e-4, 1.0);
    bt_gelu_forward(b16, c.inp, n);
    float *d16 = xmalloc(n);
    bt_gelu_backward_set(d16, c.inp, c.dout, n);
    uint64_t h = 1469598103934665603ULL; /* the bits' hash, to compare gcc's and clang's by eye */
    for (size_t i = 0; i < n * sizeof(float); i++)
      h = (h ^ ((const unsigned char *)b16)[i]) * 1099511628211ULL;
    for (size_t i = 0; i < n * sizeof(float); i++)
      h = (h ^ ((const unsigned char *)d16)[i]) * 1099511628211ULL;
    printf("  gelu bf16 n=%zu: forward and backward bits %016llx\n", n, (unsigned long long)h);
    free(d16);
    bt_gemm_set_backend(was);
    CHECK(memcmp(f32, b16, n * sizeof *b16) != 0, "the bf16 backend does not pick the bf16 GELU");
    free(f32), free(b16);
  }
  if (n == 37) { /* the bf16 GELU past its clamps (x < -10.5 puts e at e^88): the same bits on every
                  path, and finite up to |x| = 1e12 (past ~1e13, x^3 overflows, as in float32's) */
    static const float sp[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 3.0f, -3.0f, -10.4f, -10.6f, -12.0f, -50.0f,
                               -1e4f, 12.0f, 50.0f, 1e4f, 1e12f, -1e12f, 7e-39f, -7e-39f, 0.5f};
    enum { NS = 2 * (sizeof sp / sizeof *sp) };
    float in[NS], g[NS], f[3][NS], d[3][NS];
    for (int i = 0; i < NS; i++)
      in[i] = sp[i % (NS / 2)], g[i] = i % 3 ? 1.0f : -2.5f;
    const bt_gemm_backend was = bt_gemm_backend_setting();
    bt_gemm_set_backend(BT_GEMM_BF16);
    for (int isa = BT_ISA_SCALAR; isa <= (int)g_best; isa++) {
      bt_isa_set((bt_isa)isa);
      bt_gelu_forward(f[isa], in, NS);
      bt_gelu_backward_set(d[isa], in, g, NS);
      int finite = 1;
      for (int i = 0; i < NS; i++)
        finite &= isfinite(f[isa][i]) && isfinite(d[isa][i]);
      CHECK(finite, "bf16 gelu on %s: a finite input gave a non-finite result", bt_isa_name((bt_isa)isa));
      CHECK(!memcmp(f[isa], f[0], sizeof f[0]) && !memcmp(d[isa], d[0], sizeof d[0]),
            "bf16 gelu past its clamps: %s differs from scalar", bt_isa_name((bt_isa)isa));
    }
    bt_isa_set(g_best);
    bt_gemm_set_backend(was);
  }
  check_op("scale", scale_f, scale_n, &c, n, 0, 1e-6);
  check_op("add", add_f, add_n, &c, n, 0, 1e-6);
  check_op("axpby", axpby_f, axpby_n, &c, n, 0, 1e-6);
  check_fill(c.inp, n, 43, 80.0f); /* exp over [-80, 80) */
  check_op("exp_vec", expv, expv_n, &c, n, 4e-7, 0);
  /* bt_exp_vec gives bt_expf's bits */
  float *r = xmalloc(n);
  bt_exp_vec(r, c.inp, n);
  size_t bad = 0;
  for (size_t i = 0; i < n; i++) {
    float e = bt_expf(c.inp[i]);
    bad += memcmp(&e, &r[i], sizeof e) != 0;
  }
  CHECK(bad == 0, "bt_exp_vec differs from bt_expf at %zu of %zu", bad, n);
  free(r);
  free(c.inp), free(c.dout), free(c.dinp0);
}

static void sumsq_naive2(const void *p, float *r) {
  const ew_ctx *c = p;
  long double s = 0;
  for (size_t i = 0; i < c->n; i++)
    s += (long double)c->inp[i] * c->inp[i];
  double d = (double)s;
  memcpy(r, &d, sizeof d);
}

static void test_sumsq(size_t n) {
  ew_ctx c = {.n = n};
  c.inp = xmalloc(n);
  check_fill(c.inp, n, 50, 1.0f);
  double ref = 0;
  float tmp[2];
  sumsq_naive2(&c, tmp);
  memcpy(&ref, tmp, sizeof ref);
  /* the identity checks compare the double's bits; the value separately */
  double s = bt_sumsq(c.inp, n);
  CHECK(fabs(s - ref) <= 1e-12 * ref, "sumsq %.17g vs %.17g", s, ref);
  check_op("sumsq", sumsq_f, sumsq_f, &c, 2, INFINITY, 0);
  CHECK(bt_sumsq(c.inp, 0) == 0.0, "sumsq of nothing");
  free(c.inp);
}

typedef struct {
  int N, C;
  const float *x, *sum0;
} colsum_ctx;
static void colsum_f(const void *p, float *r) {
  const colsum_ctx *c = p;
  memcpy(r, c->sum0, (size_t)c->C * sizeof *r);
  bt_colsum_add(r, c->x, c->N, c->C);
}
static void colsum_n(const void *p, float *r) { /* the contract, one column at a time */
  const colsum_ctx *c = p;
  for (int j = 0; j < c->C; j++) {
    double s = 0.0;
    for (int n = 0; n < c->N; n++)
      s += (double)c->x[(size_t)n * c->C + j];
    r[j] = c->sum0[j] + (float)s;
  }
}
/* the bias gradients: every path, thread count and the contract's loop give
 * the same bits (tolerance 0), at widths around the 64-column blocks */
static void test_colsum(int N, int C) {
  float *x = xmalloc((size_t)N * C), *sum0 = xmalloc((size_t)C);
  check_fill(x, (size_t)N * C, 70, 3.0f);
  check_fill(sum0, (size_t)C, 71, 1.0f);
  colsum_ctx c = {.N = N, .C = C, .x = x, .sum0 = sum0};
  check_op("colsum_add", colsum_f, colsum_n, &c, (size_t)C, 0.0, 0.0);
  free(x), free(sum0);
}

static void test_rope(int B, int T, int C, int H) {
  rope_ctx c = {.B = B, .T = T, .C = C, .H = H};
  size_t n = (size_t)B * T * 3 * C;
  int half = C / H / 2;
  c.qkv = xmalloc(n), c.cos_t = xmalloc((size_t)T * half), c.sin_t = xmalloc((size_t)T * half);
  check_fill(c.qkv, n, 60, 2.0f);
  bt_rope_tables(c.cos_t, c.sin_t, T, C / H);
  /* x0 c - x1 s cancels: the error is a few ulp of |x| (~2), not of the result */
  check_op("rope_forward", rope_fwd, rope_fwd_n, &c, n, 5e-7, 1.0);
  check_op("rope_backward", rope_bwd, rope_bwd_n, &c, n, 5e-7, 1.0);
  /* backward is the inverse (transpose) of forward; v untouched */
  float *x = xmalloc(n);
  memcpy(x, c.qkv, n * sizeof *x);
  bt_rope_forward(x, c.cos_t, c.sin_t, B, T, C, H);
  int vsame = 1;
  for (int r = 0; r < B * T; r++)
    vsame &= memcmp(x + (size_t)r * 3 * C + 2 * C, c.qkv + (size_t)r * 3 * C + 2 * C,
                    (size_t)C * sizeof *x) == 0;
  CHECK(vsame, "rope changed v");
  bt_rope_backward(x, c.cos_t, c.sin_t, B, T, C, H);
  CHECK(check_max_rel(x, c.qkv, n, 1.0) <= 1e-6, "rope backward(forward(x)) != x");
  free(x);
  free(c.qkv), free(c.cos_t), free(c.sin_t);
}

static void test_crossentropy(int N, int V, float spread) {
  ce_ctx c = {.N = N, .V = V, .dloss = 1.0f / (float)N};
  size_t nv = (size_t)N * V;
  c.tgt = malloc((size_t)N * sizeof *c.tgt);
  fill_tokens(c.tgt, N, 70, V);
  c.logits = xmalloc(nv), c.dlogits0 = xmalloc(nv);
  check_fill(c.logits, nv, 71, spread);
  check_fill(c.dlogits0, nv, 72, 1e-3f);
  check_op("crossentropy_forward", ce_fwd, ce_fwd_n, &c, N, 2e-6, 1e-2);
  check_op("crossentropy_backward", ce_bwd, ce_bwd_n, &c, nv, 2e-6, 1e-4);
  free(c.tgt), free(c.logits), free(c.dlogits0);
}

static void test_adamw(size_t n) {
  adam_ctx c = {.n = n, .steps = 5, .lr = 1e-2f, .wd = 0.1f};
  c.p0 = xmalloc(n), c.g = xmalloc(n * c.steps);
  check_fill(c.p0, n, 80, 1.0f);
  check_fill(c.g, n * c.steps, 81, 1e-2f);
  /* params near 0 after a few 1e-2 steps carry the rounding of O(1e-2) values */
  check_op("adamw", adam_f, adam_n, &c, 3 * n, 1e-5, 1e-3);

  /* decoupled decay: zero gradient, zero moments -> p -= lr * wd * p exactly */
  float p[4] = {1.0f, -2.0f, 0.5f, 3.0f}, g[4] = {0}, m[4] = {0}, v[4] = {0};
  bt_adamw_update(p, g, m, v, 4, 1e-2f, 0.9f, 0.999f, 1e-8f, 0.1f, 7);
  const float p0[4] = {1.0f, -2.0f, 0.5f, 3.0f};
  for (int i = 0; i < 4; i++)
    CHECK_NEAR(p[i], p0[i] * (1.0 - 1e-3), 1e-7 * fabs(p0[i]));
  /* and the gradient step is not scaled by the decay: wd = 0 vs wd > 0 with
   * p = 0 give the same update (-lr * sign(g) at t = 1) */
  float pa[2] = {0, 0}, ga[2] = {0.5f, -0.25f}, ma[2] = {0}, va[2] = {0};
  bt_adamw_update(pa, ga, ma, va, 2, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.5f, 1);
  CHECK_NEAR(pa[0], -1e-3, 1e-9);
  CHECK_NEAR(pa[1], 1e-3, 1e-9);
  free(c.p0), free(c.g);
}

/* ==================================================================== */
/* Transcendentals and tables                                            */
/* ==================================================================== */

static void test_transcendentals(void) {
  double maxe = 0;
  for (float x = -87.0f; x <= 88.0f; x += 0.001173f) {
    double e = exp((double)x), r = fabs(bt_expf(x) - e) / e;
    maxe = r > maxe ? r : maxe;
  }
  CHECK(maxe <= 4e-7, "bt_expf max rel err %.3g", maxe);
  /* exact points and the reduction boundaries */
  CHECK(bt_expf(0.0f) == 1.0f, "exp(0) = %.9g", bt_expf(0.0f));
  CHECK(bt_expf(-INFINITY) == 0.0f, "exp(-inf)");
  CHECK(bt_expf(-1000.0f) == 0.0f, "exp(-1000)");
  CHECK(isinf(bt_expf(INFINITY)) && bt_expf(INFINITY) > 0, "exp(inf)");
  CHECK(isinf(bt_expf(1000.0f)), "exp(1000)");
  CHECK(isnan(bt_expf(NAN)), "exp(nan)");

  maxe = 0;
  for (float x = -12.0f; x <= 12.0f; x += 0.000713f) {
    double r = fabs(bt_tanhf(x) - tanh((double)x));
    maxe = r > maxe ? r : maxe;
  }
  CHECK(maxe <= 2e-7, "bt_tanhf max abs err %.3g", maxe);
  CHECK(fabs(bt_tanhf(INFINITY) - 1.0) <= 2e-7 && bt_tanhf(-INFINITY) == -bt_tanhf(INFINITY),
        "tanh(+-inf)");
  CHECK(bt_tanhf(0.0f) == 0.0f, "tanh(0)");

  /* rotary tables vs libm */
  int T = 2048, hs = 32, half = hs / 2;
  float *cs = xmalloc((size_t)T * half), *sn = xmalloc((size_t)T * half);
  bt_rope_tables(cs, sn, T, hs);
  maxe = 0;
  for (int t = 0; t < T; t++)
    for (int i = 0; i < half; i++) {
      double a = t * pow(10000.0, -2.0 * i / hs);
      double e1 = fabs(cs[t * half + i] - cos(a)), e2 = fabs(sn[t * half + i] - sin(a));
      maxe = e1 > maxe ? e1 : maxe;
      maxe = e2 > maxe ? e2 : maxe;
    }
  CHECK(maxe <= 1e-6, "rope tables max abs err %.3g", maxe);
  CHECK(cs[0] == 1.0f && sn[0] == 0.0f, "rope tables at t = 0");
  free(cs), free(sn);
}

/* ==================================================================== */
/* Negative control                                                      */
/* ==================================================================== */

/* ---- bfloat16 ---- */

/* The definition, in double arithmetic (frexp, ldexp and rint are exact;
 * rint rounds ties to even in the default mode): the nearest value with 8
 * significant bits and a float's exponent range (subnormals in steps of
 * 2^-133), infinity past the largest; NaN -> 0x7fc0. */
static uint16_t ref_f32_to_bf16(float x) {
  if (x != x)
    return 0x7fc0;
  double a = fabs((double)x), v;
  if (a < 0x1p-126) {
    v = rint(a * 0x1p133) * 0x1p-133;
  } else {
    int e;
    frexp(a, &e); /* a in [2^(e-1), 2^e) */
    v = ldexp(rint(ldexp(a, 8 - e)), e - 8);
  }
  float f = (float)v; /* exact, or +inf past FLT_MAX's binade */
  if (v >= 0x1p128)
    f = INFINITY;
  uint32_t u;
  memcpy(&u, &f, 4);
  return (uint16_t)((u >> 16) | (signbit(x) ? 0x8000u : 0u));
}

static float u2f(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static void test_bf16(void) {
  /* Every bfloat16 widens to the float with those top bits and narrows back
   * to itself (NaNs become 0x7fc0). */
  int bad_w = 0, bad_rt = 0;
  for (uint32_t h = 0; h < 65536; h++) {
    float f = bt_bf16_to_f32((uint16_t)h);
    uint32_t u;
    memcpy(&u, &f, 4);
    bad_w += u != h << 16;
    int nan = (h & 0x7f80) == 0x7f80 && (h & 0x7f);
    bad_rt += bt_f32_to_bf16(f) != (nan ? 0x7fc0 : h);
  }
  CHECK(!bad_w, "%d bfloat16s widen wrongly", bad_w);
  CHECK(!bad_rt, "%d bfloat16s do not round-trip", bad_rt);
  /* Narrowing: every top 16 bits (sign, exponent, 7 mantissa bits), with the
   * low 16 bits at and around the rounding boundary (ties both ways) and
   * random, against the definition. */
  static const uint32_t lows[] = {0, 1, 0x7fff, 0x8000, 0x8001, 0xfffe, 0xffff, 0x4000, 0xbfff};
  const size_t nl = sizeof lows / sizeof lows[0];
  uint64_t rs = 4321;
  long n = 0;
  int bad = 0;
  for (uint32_t top = 0; top < 65536; top++)
    for (size_t li = 0; li < nl + 4; li++) {
      uint32_t low = li < nl ? lows[li] : (uint32_t)check_rng_next_(&rs) & 0xffff;
      float x = u2f(top << 16 | low);
      bad += bt_f32_to_bf16(x) != ref_f32_to_bf16(x);
      n++;
    }
  CHECK(!bad, "%d of %ld floats narrow unlike the definition", bad, n);
  CHECK(bt_f32_to_bf16(1.0f + 0x1p-8f) == 0x3f80 && bt_f32_to_bf16(1.0f + 0x3p-8f) == 0x3f82 &&
            bt_f32_to_bf16(-0.0f) == 0x8000 && bt_f32_to_bf16(NAN) == 0x7fc0 &&
            bt_f32_to_bf16(3.4e38f) == 0x7f80 && bt_f32_to_bf16(0x1p-149f) == 0 &&
            bt_f32_to_bf16(-INFINITY) == 0xff80,
        "named cases");
  printf("bf16: %ld narrowings, 65536 widenings checked\n", n);
}

static void test_negative_control(void) {
  int N = 8, C = 40;
  size_t nc = (size_t)N * C;
  float *x = xmalloc(nc), *w = xmalloc(C), *b = xmalloc(C), *o1 = xmalloc(nc + 2 * N);
  float *o2 = xmalloc(nc + 2 * N), *ref = xmalloc(nc + 2 * N);
  check_fill(x, nc, 90, 1.0f);
  check_fill(w, C, 91, 1.0f);
  check_fill(b, C, 92, 1.0f);
  bt_layernorm_forward(o1, o1 + nc, o1 + nc + N, x, w, b, N, C);
  bt_layernorm_forward_naive(ref, ref + nc, ref + nc + N, x, w, b, N, C);
  x[17] = nextafterf(x[17], 2.0f); /* one ulp */
  bt_layernorm_forward(o2, o2 + nc, o2 + nc + N, x, w, b, N, C);
  CHECK(memcmp(o1, o2, (nc + 2 * N) * sizeof(float)) != 0,
        "negative control: a one-ulp input change went unseen by memcmp");
  x[17] += 1e-2f;
  bt_layernorm_forward(o2, o2 + nc, o2 + nc + N, x, w, b, N, C);
  CHECK(check_max_rel(o2, ref, nc + 2 * N, 1e-2) > 2e-5,
        "negative control: a 1e-2 input change passed the naive tolerance");
  free(x), free(w), free(b), free(o1), free(o2), free(ref);
}

int main(void) {
  g_best = bt_isa_detect();
  printf("test_ops: paths up to %s\n", bt_isa_name(g_best));
  test_transcendentals();
  test_fd();
  test_embedding(300, 75, 20);  /* tails: C not a multiple of 16 */
  test_embedding(130, 256, 256);
  test_embedding(200, 64, 20000); /* a BPE vocabulary: tokens past one byte */
  test_layernorm(131, 75);
  test_layernorm(70, 256);
  test_layernorm(5, 3);
  test_elementwise(100003); /* above the parallel threshold, odd tail */
  test_elementwise(37);
  test_set_variants(70, 256);
  test_set_variants(3, 5);
  test_sumsq(2 * 256 * 4096 + 12345); /* three rounds of blocks */
  test_sumsq(1000);
  test_colsum(3000, 512);
  test_colsum(40000, 130); /* a block of 2 past two of 64 */
  test_colsum(700, 63);
  test_rope(2, 40, 48, 3); /* hs = 16 */
  test_rope(3, 33, 256, 4); /* hs = 64 */
  test_rope(1, 7, 12, 2);   /* hs = 6: a 3-wide half */
  test_crossentropy(100, 256, 4.0f);
  test_crossentropy(40, 1000, 4.0f); /* a 1K vocabulary, not a multiple of 16 */
  test_crossentropy(9, 20000, 8.0f);
  test_crossentropy(77, 77, 30.0f); /* peaked rows */
  test_crossentropy(3, 1, 1.0f);
  test_adamw(100003);
  test_bf16();
  test_negative_control();
  bt_isa_set(g_best);
  return check_summary("test_ops");
}
