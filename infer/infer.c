/*
 * infer.c - batched (teacher-forced) and incremental (KV cache) inference.
 *
 * One code path. Every call (bt_infer_batched, bt_infer_step,
 * bt_infer_prefill) becomes a list of rows, each row one (stream, position)
 * with its input byte, and goes through forward_rows(): embedding, then per
 * layer QKV GEMM, rotary, K/V into the cache, attention of each row against
 * its stream's cache, output GEMM, residual, LayerNorm, MLP, and finally the
 * logits GEMM. The batched pass has T rows per stream, a step has one.
 *
 * Why the bits match (docs/numerics.md):
 *  - GEMMs go through bt_gemm/bt_gemm_st, whose every output is one FMA chain
 *    over k in increasing order whatever M, the thread count or the ISA
 *    (kernels.h). Rows are split across calls and threads freely; K never is.
 *    Biases are added after the chain.
 *  - Embedding, rotary, add, LayerNorm and GELU are kernels/ops: per row or per
 *    element, one portable source, -ffp-contract=off, identical on every path.
 *  - K and V go into the cache as bfloat16 (kernels/bf16.h: integer
 *    round-to-nearest-even), and every row, batched or not, reads them back
 *    from there: a row's own K and V too. So the rounding is part of the
 *    model both passes compute, and halving the cache halves what decoding
 *    reads per byte (the whole cache of its stream). Widening back is a
 *    shift, exact on every path. (The coded rate of the shipped models is
 *    the same to 4 digits with float, half or bfloat16 caches.)
 *  - Attention is infer/attn_impl.c: one row against the cache in a fixed
 *    16-lane order with bt's own exp; the same for every row, every ISA.
 *  - OpenMP splits rows, (row, head) pairs and GEMM row blocks: never a sum.
 * Nothing a row computes depends on another row, so neither the number of
 * rows per call, nor the other streams, nor the grouping changes its bits.
 */
#include "infer/infer.h"

#include <math.h>
#include <omp.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/bf16.h"
#include "kernels/isa_impl.h"
#include "kernels/kernels.h"
#include "train/layer.h"

BT_DECLARE_ISA3(void, bt_infer_attn_row,
                (float *out, const float *q, const uint16_t *Kt, const uint16_t *Vt, int n,
                 int hs, float scale, float *s))

BT_DECLARE_ISA3(void, bt_infer_attn_rows4,
                (float *out, long ldo, const float *q, long ldq, const uint16_t *Kt,
                 const uint16_t *Vt, int n0, int hs, float scale, float *s, long lds))

BT_DECLARE_ISA3(void, bt_infer_attn_row8,
                (float *out, const float *q, const void *Kt, const int8_t *Ke, const void *Vt,
                 const int8_t *Ve, int n, int hs, float scale, float *s, int es))

BT_DECLARE_ISA3(void, bt_infer_attn_rows4_8,
                (float *out, long ldo, const float *q, long ldq, const void *Kt, const int8_t *Ke,
                 const void *Vt, const int8_t *Ve, int n0, int hs, float scale, float *s, long lds,
                 int es))

typedef void (*attn_row_fn)(float *out, const float *q, const uint16_t *Kt, const uint16_t *Vt,
                            int n, int hs, float scale, float *s);
typedef void (*attn_row8_fn)(float *out, const float *q, const void *Kt, const int8_t *Ke,
                             const void *Vt, const int8_t *Ve, int n, int hs, float scale, float *s,
                             int es);
typedef void (*attn_rows4_8_fn)(float *out, long ldo, const float *q, long ldq, const void *Kt,
                                const int8_t *Ke, const void *Vt, const int8_t *Ve, int n0, int hs,
                                float scale, float *s, long lds, int es);
typedef void (*attn_rows4_fn)(float *out, long ldo, const float *q, long ldq, const uint16_t *Kt,
                              const uint16_t *Vt, int n0, int hs, float scale, float *s, long lds);

struct bt_infer {
  bt_config cfg;
  int L, C, H, hs;
  int max_streams, max_T;
  int Tr;              /* max_T rounded up to a whole tile of 16 */
  float scale;         /* 1/sqrt(hs) */
  float *w;            /* the parameter block's copy, matrices transposed */
  uint16_t *wh;        /* the same as binary16, matrices only (same offsets) */
  int half;            /* wh holds w's matrices: every weight of them is a half */
  int panels;          /* ... in column panels of 16 (bt_gemm_f16p_st), not row-major */
  bt_model_view view;  /* of w (layer.h) */
  float *rope_cos, *rope_sin; /* (max_T, hs/2) */
  uint16_t *cache;     /* (max_streams, L, 2, H, Tr, hs) bfloat16: attn_impl.c has the tiles; */
  int kv8;             /*   or int8s and exponents (bt_infer_set_kv8: kv8_base; wide, kv8w_exp) */
  int *pos;            /* (max_streams): positions filled per stream */
  /* rows: up to G per forward_rows call */
  int G;
  float *x, *qkv, *att, *tmp, *h, *fc, *mean, *rstd, *xl; /* (G, C|3C|4C), (G) */
  uint16_t *rtok;      /* (G) input token of each row */
  int *rstream, *rpos, *lrows; /* (G) */
  int *ablk;           /* (G) first row of each attention block (up to 4 rows) */
  /* attention scratch: four rows of scores per thread */
  float *ascratch;
  int ascratch_threads;
  int threads;         /* bt_infer_set_threads: 0 = all OpenMP threads */
  /* bt_infer_pair_*: the job of each split call, posted by the owner, taken
   * by whichever thread claims it first, finished by `done` if the helper
   * took it (pair_split). */
  int paired, pair_wait;
  atomic_uint posted, claimed, done;
  atomic_int stop;
  struct pair_job *job;
};

static float *alloc_floats(size_t n) {
  size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
  return aligned_alloc(64, bytes ? bytes : 64);
}

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

/* ==================================================================== */
/* Lifetime                                                             */
/* ==================================================================== */

size_t bt_infer_cache_bytes(const bt_config *cfg, int max_streams, int max_T) {
  /* bfloat16 tiles, then room for an exponent per (position, head) that
   * the wide int8 layout keeps after them (kv8w_exp): the largest format */
  return max_streams < 1 ? 0 : (size_t)max_streams * bt_infer_stream_bytes(cfg, max_T, BT_KV_INT8_WIDE);
}

size_t bt_infer_stream_bytes(const bt_config *cfg, int max_T, int mode) {
  if (max_T < 1)
    return 0;
  /* per position, layer, and K or V: a value per dim (int8s, or bfloat16s),
   * and with int8 an exponent per head */
  const size_t elem = mode == BT_KV_INT8 ? 1 : sizeof(uint16_t);
  const size_t per = (size_t)cfg->d_model * elem + (mode != BT_KV_BF16 ? (size_t)cfg->n_head : 0);
  return (size_t)cfg->n_layer * 2 * round16((size_t)max_T) * per;
}

/* Copies m's parameters into the block bt_infer_create allocated, each
 * matrix transposed in place of itself (same offsets): so every GEMM is
 * bt_gemm(0, 0, ...), and small-M calls read the weights without packing.
 * The floats are the same, so the chains are those of bt_gemm(0, 1, ...) on
 * the checkpoint's layout too. */
bt_error bt_infer_set_weights(bt_infer *inf, const bt_model *m) {
  const bt_config *cfg = bt_model_config(m);
  if (cfg->n_layer != inf->L || cfg->d_model != inf->C || cfg->n_head != inf->H)
    return bt_fail(BT_ERR_ARG, "weights of another shape");
  const bt_tensor_info *t = bt_model_tensors(m);
  /* bt_model_params is not const-qualified but only returns the pointer. */
  const float *P = bt_model_params((bt_model *)m);
  memcpy(inf->w, P, bt_model_num_params(m) * sizeof(float));
  static const int mats[] = {BT_T_QKV_W, BT_T_ATTO_W, BT_T_FC_W, BT_T_PROJ_W, BT_T_OUT_W};
  for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++) {
    const bt_tensor_info *ti = &t[mats[i]];
    const int per = ti->ndim == 3; /* (L, OC, IC) or (OC, IC) */
    const size_t OC = ti->shape[per], IC = ti->shape[per + 1], n = per ? ti->shape[0] : 1;
    for (size_t l = 0; l < n; l++)
      bt_transpose_scaled(inf->w + ti->offset + l * OC * IC, P + ti->offset + l * OC * IC, (int)OC,
                          (int)IC, 1.0f);
  }
  bt_model_view_of(&inf->view, cfg, t, inf->w, 1);
  /* A half checkpoint's weights are halves exactly: then few-row steps read
   * them as such (gemm_cols), half the bytes for the same floats. Weights
   * that adaptive coding has trained are not, which the first one shows. */
  inf->half = 0;
  size_t n = 0;
  for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++)
    n = t[mats[i]].offset + t[mats[i]].size > n ? t[mats[i]].offset + t[mats[i]].size : n;
  if (!inf->wh && !(inf->wh = malloc(n * sizeof *inf->wh)))
    return BT_OK; /* the float path computes the same */
  /* Column panels of 16 where every matrix's width allows: a tile then
   * reads its panel as one stream, every line whole (row-major, a tile of
   * 8 or 16 columns took 16 or 32 bytes of each 64-byte line). */
  inf->panels = 1;
  for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++)
    inf->panels &= t[mats[i]].shape[t[mats[i]].ndim == 3] % 16 == 0;
  for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++) {
    const bt_tensor_info *ti = &t[mats[i]];
    const int per = ti->ndim == 3;
    const size_t OC = ti->shape[per], IC = ti->shape[per + 1], nl = per ? ti->shape[0] : 1;
    for (size_t l = 0; l < nl; l++) {
      const size_t o = ti->offset + l * OC * IC;
      for (size_t k = 0; k < IC; k++)
        for (size_t c = 0; c < OC; c++) {
          const size_t at = inf->panels ? o + (c / 16) * IC * 16 + k * 16 + c % 16 : o + k * OC + c;
          if (!bt_f32_to_f16_exact(inf->w[o + k * OC + c], &inf->wh[at]))
            return BT_OK;
        }
    }
  }
  inf->half = 1;
  return BT_OK;
}

bt_error bt_infer_create(bt_infer **out, const bt_model *m, int max_streams, int max_T) {
  *out = NULL;
  const bt_config *cfg = bt_model_config(m);
  bt_error e = bt_config_check(cfg);
  if (e)
    return e;
  if (max_streams < 1 || max_streams > (1 << 20))
    return bt_fail(BT_ERR_ARG, "streams must be in 1..%d (got %d)", 1 << 20, max_streams);
  if (max_T < 1 || max_T > cfg->ctx)
    return bt_fail(BT_ERR_ARG, "positions must be in 1..%d (got %d)", cfg->ctx, max_T);
  bt_infer *inf = calloc(1, sizeof *inf);
  if (!inf)
    return bt_fail(BT_ERR_NOMEM, "inference state");
  const int L = cfg->n_layer, C = cfg->d_model, H = cfg->n_head;
  inf->cfg = *cfg;
  inf->L = L;
  inf->C = C;
  inf->H = H;
  inf->hs = C / H;
  inf->max_streams = max_streams;
  inf->max_T = max_T;
  inf->Tr = (int)round16((size_t)max_T);
  inf->scale = 1.0f / sqrtf((float)inf->hs);

  /* Weights: copied, matrices transposed. Same floats, so the GEMM chains
   * are those of the training forward's bt_gemm(0, 1, ...) too. */
  const size_t np = bt_model_num_params(m);
  inf->w = alloc_floats(np);
  inf->rope_cos = alloc_floats((size_t)max_T * inf->hs / 2);
  inf->rope_sin = alloc_floats((size_t)max_T * inf->hs / 2);
  inf->pos = calloc((size_t)max_streams, sizeof *inf->pos);
  const size_t cache_bytes = bt_infer_cache_bytes(cfg, max_streams, max_T);
  /* Untouched pages cost nothing: the cache is never cleared, and masks keep
   * positions not yet written out of every sum. */
  inf->cache = aligned_alloc(64, (cache_bytes + 63) & ~(size_t)63);
  /* Rows per forward_rows call: a step's streams, or whole sequences. */
  inf->G = max_streams > max_T ? max_streams : max_T;
  if (inf->G < 256)
    inf->G = 256;
  const size_t G = (size_t)inf->G;
  inf->x = alloc_floats(G * C);
  inf->qkv = alloc_floats(G * 3 * C);
  inf->att = alloc_floats(G * C);
  inf->tmp = alloc_floats(G * C);
  inf->h = alloc_floats(G * C);
  inf->fc = alloc_floats(G * 4 * C);
  inf->mean = alloc_floats(G);
  inf->rstd = alloc_floats(G);
  inf->xl = alloc_floats(G * C);
  inf->rtok = malloc(G * sizeof *inf->rtok);
  inf->rstream = malloc(G * sizeof(int));
  inf->rpos = malloc(G * sizeof(int));
  inf->lrows = malloc(G * sizeof(int));
  inf->ablk = malloc((G + 1) * sizeof(int));
  if (!inf->w || !inf->rope_cos || !inf->rope_sin || !inf->pos || !inf->cache ||
      !inf->x || !inf->qkv || !inf->att || !inf->tmp || !inf->h || !inf->fc || !inf->mean ||
      !inf->rstd || !inf->xl || !inf->rtok || !inf->rstream || !inf->rpos || !inf->lrows ||
      !inf->ablk) {
    bt_infer_free(inf);
    return bt_fail(BT_ERR_NOMEM, "inference for %d streams x %d positions (KV cache %zu MB)",
                   max_streams, max_T, cache_bytes >> 20);
  }

  if ((e = bt_infer_set_weights(inf, m))) {
    bt_infer_free(inf);
    return e;
  }
  bt_rope_tables(inf->rope_cos, inf->rope_sin, max_T, inf->hs);
  *out = inf;
  return BT_OK;
}

void bt_infer_free(bt_infer *inf) {
  if (!inf)
    return;
  free(inf->w);
  free(inf->wh);
  free(inf->rope_cos);
  free(inf->rope_sin);
  free(inf->cache);
  free(inf->pos);
  free(inf->x);
  free(inf->qkv);
  free(inf->att);
  free(inf->tmp);
  free(inf->h);
  free(inf->fc);
  free(inf->mean);
  free(inf->rstd);
  free(inf->xl);
  free(inf->rtok);
  free(inf->rstream);
  free(inf->rpos);
  free(inf->lrows);
  free(inf->ablk);
  free(inf->ascratch);
  free(inf);
}

void bt_infer_reset(bt_infer *inf, int n) {
  if (n > inf->max_streams)
    n = inf->max_streams;
  for (int s = 0; s < n; s++)
    inf->pos[s] = 0;
}

void bt_infer_set_threads(bt_infer *inf, int n) { inf->threads = n > 0 ? n : 0; }

int bt_infer_half_weights(const bt_infer *inf) { return inf->half; }

void bt_infer_set_kv8(bt_infer *inf, int mode) {
  mode = mode == BT_KV_INT8 || mode == BT_KV_INT8_WIDE ? mode : BT_KV_BF16;
  if (mode != inf->kv8)
    bt_infer_reset(inf, inf->max_streams); /* the cache's bytes mean something else now */
  inf->kv8 = mode;
}

int bt_infer_kv8(const bt_infer *inf) { return inf->kv8; }

int bt_infer_position(const bt_infer *inf, int s) {
  return s >= 0 && s < inf->max_streams ? inf->pos[s] : -1;
}

/* ==================================================================== */
/* The forward over a list of rows                                       */
/* ==================================================================== */

static inline void add_bias(float *o, const float *bias, int OC) {
  for (int j = 0; j < OC; j++)
    o[j] += bias[j];
}

/* From this many rows on, bt_gemm's own blocking and threading are best. */
#define GEMM_BIG_M 512

/* Up to this many rows, a half checkpoint's matrices are read as halves. */
#define HALF_MAX_ROWS 16

/* Columns [c0, c0 + cn) of out (R, OC) = in (R, IC) . W^T, on this thread:
 * from the binary16 copy where there is one and the rows are few (a step
 * reads every weight once for a handful of rows, so the bytes set its pace),
 * else the floats. The same floats either way, so the same bits. */
static void gemm_cols(const bt_infer *inf, bt_mat W, const float *in, float *out, int R, int IC,
                      int OC, int c0, int cn) {
  const int tb = !W.transposed;
  /* (pairing splits columns at multiples of 16, so c0 starts a panel) */
  if (inf->half && W.transposed && R <= HALF_MAX_ROWS && (!inf->panels || c0 % 16 == 0)) {
    const uint16_t *Wh = inf->wh + (W.w - inf->w);
    if (inf->panels)
      bt_gemm_f16p_st(R, cn, IC, in, IC, Wh + (size_t)c0 * IC, 16L * IC, out + c0, OC);
    else
      bt_gemm_f16b_st(R, cn, IC, in, IC, Wh + c0, OC, out + c0, OC);
    return;
  }
  const long ldw = tb ? IC : OC;
  bt_gemm_st(0, tb, R, cn, IC, in, IC, W.w + (tb ? (size_t)c0 * IC : (size_t)c0), ldw, out + c0,
             OC, 0);
}

/* out (R, OC) = in (R, IC) . W^T [+ bias (OC)], rows independent. W is
 * read in place when stored transposed (IC, OC), as bt_infer keeps it;
 * bt_gemm packs it otherwise. par = 0: on the calling thread only. */
static void linear(const bt_infer *inf, float *out, const float *in, bt_mat W, const float *bias,
                   int R, int IC, int OC, int par) {
  const int tb = !W.transposed;
  const long ldw = tb ? IC : OC;
  if (!par) {
    gemm_cols(inf, W, in, out, R, IC, OC, 0, OC);
  } else if (R >= GEMM_BIG_M) {
    bt_gemm(0, tb, R, OC, IC, in, IC, W.w, ldw, out, OC, 0);
  } else {
    /* Few rows (a step): threads take column ranges (multiples of 64) of all
     * rows, so each weight is read by one thread, once per call. */
    const int nt = omp_get_max_threads();
    int ncb = OC / 64 < nt ? OC / 64 : nt;
    if (ncb < 1 || 2.0 * R * IC * OC < 2e5)
      ncb = 1;
    const int cw = ((OC + ncb - 1) / ncb + 63) / 64 * 64;
    if (ncb == 1) {
      gemm_cols(inf, W, in, out, R, IC, OC, 0, OC);
    } else {
#pragma omp parallel for schedule(static)
      for (int it = 0; it < ncb; it++) {
        const int c0 = it * cw, cn = OC - c0 < cw ? OC - c0 : cw;
        if (cn > 0)
          gemm_cols(inf, W, in, out, R, IC, OC, c0, cn);
      }
    }
  }
  if (bias) {
    if (par && (size_t)R * OC >= (1u << 16)) {
#pragma omp parallel for schedule(static)
      for (int r = 0; r < R; r++)
        add_bias(out + (size_t)r * OC, bias, OC);
    } else {
      for (int r = 0; r < R; r++)
        add_bias(out + (size_t)r * OC, bias, OC);
    }
  }
}

static bt_error ensure_scratch(bt_infer *inf) {
  int nt = omp_get_max_threads();
  if (nt < 2)
    nt = 2; /* pairing's second half */
  if (nt <= inf->ascratch_threads)
    return BT_OK;
  free(inf->ascratch);
  inf->ascratch = alloc_floats((size_t)nt * 4 * inf->Tr);
  inf->ascratch_threads = inf->ascratch ? nt : 0;
  return inf->ascratch ? BT_OK : bt_fail(BT_ERR_NOMEM, "attention scratch");
}

/* The (stream s, layer l, K or V, head h) block of the cache, counted in
 * blocks: the same order in both formats. */
static inline size_t kv_block(const bt_infer *inf, int s, int l, int kv, int h) {
  return (((size_t)s * inf->L + l) * 2 + kv) * inf->H + h;
}

/* Stream s, layer l: K tiles of head h at kv_base(..., 0, h), V at (..., 1, h). */
static inline uint16_t *kv_base(const bt_infer *inf, int s, int l, int kv, int h) {
  return inf->cache + kv_block(inf, s, l, kv, h) * (size_t)inf->Tr * inf->hs;
}

/* The int8 cache (bt_infer_set_kv8): per (stream, layer, K or V, head), Tr
 * positions of hs int8s in tiles of 16 (attn_impl.c: element (p, d) at
 * tile p/16, byte d*16 + p%16), then Tr exponents, one per position. It
 * takes hs + 1 bytes per position and head, the bfloat16 cache 2 hs: it
 * fits in the same allocation. */
static inline int8_t *kv8_base(const bt_infer *inf, int s, int l, int kv, int h) {
  return (int8_t *)inf->cache + kv_block(inf, s, l, kv, h) * (size_t)inf->Tr * (inf->hs + 1);
}

/* The wide int8 layout (BT_KV_INT8_WIDE): the same integers as bfloat16s in
 * the bfloat16 tiles (kv_base), which widen more cheaply than int8s, and
 * the Tr exponents of each block after all the tiles. */
static inline int8_t *kv8w_exp(const bt_infer *inf, int s, int l, int kv, int h) {
  const size_t blocks = (size_t)inf->max_streams * inf->L * 2 * inf->H;
  return (int8_t *)(inf->cache + blocks * inf->Tr * inf->hs) +
         kv_block(inf, s, l, kv, h) * (size_t)inf->Tr;
}

/* The exponents of a block, one per position, in the int8 layout in use. */
static inline int8_t *kv8_exp(const bt_infer *inf, int s, int l, int kv, int h) {
  return inf->kv8 == BT_KV_INT8_WIDE ? kv8w_exp(inf, s, l, kv, h)
                                     : kv8_base(inf, s, l, kv, h) + (size_t)inf->Tr * inf->hs;
}

/* x (n) as int8s q and one exponent e (quant_exp, then quant_one for
 * each x[d]), x[d] ~ q[d] * 2^e: e is the least
 * with every |x[d]| * 2^-e rounding (to nearest, ties to even) within 127,
 * q[d] that rounding. From the largest magnitude's bits: m = (1 + f) 2^(b -
 * 127) gives m 2^-(b - 133) = (1 + f) 64 in [64, 128), one more when that
 * rounds to 128 (f >= 0.9921875). Then q = x * 2^-e (exact, or below 2^-126
 * where it rounds to 0 either way), rounded by adding and taking away
 * 1.5 * 2^23: exact steps, the same on every machine (-ffp-contract=off).
 * All zero, or m below 2^-120: e = -127, which the kernels read as a scale
 * of +0, and q = 0. A NaN or infinity among them (a hostile model's):
 * e = 127, infinities +-127, everything else 0. */
static inline int quant_exp(const float *x, int n) {
  uint32_t mb = 0;
  for (int d = 0; d < n; d++) {
    uint32_t u;
    memcpy(&u, &x[d], sizeof u);
    u &= 0x7fffffffu;
    mb = u > mb ? u : mb; /* bit patterns of magnitudes order as the values */
  }
  if (mb >= 0x7f800000u)
    return 127; /* finite values give at most 122 */
  const int e = (int)(mb >> 23) - 133 + ((mb & 0x7fffffu) >= 8323072u);
  return mb < 0x00800000u || e < -126 ? -127 : e;
}

/* x's int8 under exponent e (quant_exp) as a float; sc = 2^-e */
static inline float quant_one(float x, int e, float sc) {
  if (e == 127) /* the finite ones round to 0 at 2^127 */
    return !isinf(x) ? 0.0f : x > 0 ? 127.0f : -127.0f;
  if (e == -127)
    return 0.0f;
  const float y = x * sc;
  return (y + 12582912.0f) - 12582912.0f;
}

/* K or V of one position and head (x, hs floats) into the int8 cache: its
 * int8s in the int8 tiles, or (BT_KV_INT8_WIDE) as bfloat16s in the
 * bfloat16 tiles (exact: they need 8 bits), and its exponent. */
static inline void store_kv8(bt_infer *inf, const float *x, int s, int p, int l, int kv, int h) {
  const int hs = inf->hs, e = quant_exp(x, hs);
  const uint32_t sb = (uint32_t)(e > -127 && e < 127 ? 127 - e : 127) << 23; /* 2^-e */
  float sc;
  memcpy(&sc, &sb, sizeof sc);
  kv8_exp(inf, s, l, kv, h)[p] = (int8_t)e;
  if (inf->kv8 == BT_KV_INT8_WIDE) {
    uint16_t *dst = kv_base(inf, s, l, kv, h) + (size_t)(p / 16) * hs * 16 + (size_t)(p % 16) * 2;
    for (int d = 0; d < hs; d += 2) { /* an integer's float's top half is its bfloat16 */
      dst[(size_t)d * 16] = bt_f32_to_bf16_inline(quant_one(x[d], e, sc));
      dst[(size_t)d * 16 + 1] = bt_f32_to_bf16_inline(quant_one(x[d + 1], e, sc));
    }
    return;
  }
  int8_t *dst = kv8_base(inf, s, l, kv, h) + (size_t)(p / 16) * hs * 16 + (size_t)(p % 16);
  for (int d = 0; d < hs; d++)
    dst[(size_t)d * 16] = (int8_t)(int)quant_one(x[d], e, sc);
}

/* K and V of one row (its qkv row, 3C), position p of stream s, into the
 * stream's tiles of layer l as bfloat16 (attn_impl.c: dims d, d+1 of a
 * position share a word). */
static inline void store_kv(bt_infer *inf, const float *qkvr, int s, int p, int l) {
  const int H = inf->H, hs = inf->hs, C = inf->C;
  if (inf->kv8) {
    for (int kv = 0; kv < 2; kv++)
      for (int h = 0; h < H; h++)
        store_kv8(inf, qkvr + (size_t)(1 + kv) * C + (size_t)h * hs, s, p, l, kv, h);
    return;
  }
  const size_t off = (size_t)(p / 16) * hs * 16 + (size_t)(p % 16) * 2;
  for (int kv = 0; kv < 2; kv++)
    for (int h = 0; h < H; h++) {
      const float *src = qkvr + (size_t)(1 + kv) * C + (size_t)h * hs;
      uint16_t *dst = kv_base(inf, s, l, kv, h) + off;
      for (int d = 0; d < hs; d += 2) {
        dst[(size_t)d * 16] = bt_f32_to_bf16_inline(src[d]);
        dst[(size_t)d * 16 + 1] = bt_f32_to_bf16_inline(src[d + 1]);
      }
    }
}

/* One layer's attention work: items (block, head), see forward_range. */
typedef struct {
  const bt_infer *inf;
  int l, R, nblk;
  const int *blk, *rs, *rp;
  const float *qkv;
  float *att;
  attn_row_fn attn;
  attn_rows4_fn attn4;
  attn_row8_fn attn8;
  attn_rows4_8_fn attn48;
} attn_ctx;

/* Item it: block it / H (up to 4 consecutive rows of one stream), head it % H. */
static inline void attn_item(const attn_ctx *c, int it, float *sc) {
  const bt_infer *inf = c->inf;
  const int H = inf->H, hs = inf->hs, C = inf->C, l = c->l;
  const int b = it / H, h = it % H, a = c->blk[b];
  const int nr = (b + 1 < c->nblk ? c->blk[b + 1] : c->R) - a;
  float *o = c->att + (size_t)a * C + (size_t)h * hs;
  const float *qq = c->qkv + (size_t)a * 3 * C + (size_t)h * hs;
  if (inf->kv8) {
    const int s = c->rs[a], es = inf->kv8 == BT_KV_INT8_WIDE ? 2 : 1;
    const void *K = es == 2 ? (const void *)kv_base(inf, s, l, 0, h) : kv8_base(inf, s, l, 0, h);
    const void *Vv = es == 2 ? (const void *)kv_base(inf, s, l, 1, h) : kv8_base(inf, s, l, 1, h);
    const int8_t *Ke = kv8_exp(inf, s, l, 0, h), *Ve = kv8_exp(inf, s, l, 1, h);
    if (nr == 4) {
      c->attn48(o, C, qq, 3 * C, K, Ke, Vv, Ve, c->rp[a] + 1, hs, inf->scale, sc, (long)inf->Tr, es);
      return;
    }
    for (int i = 0; i < nr; i++)
      c->attn8(o + (size_t)i * C, qq + (size_t)i * 3 * C, K, Ke, Vv, Ve, c->rp[a] + i + 1, hs,
               inf->scale, sc, es);
    return;
  }
  const uint16_t *K = kv_base(inf, c->rs[a], l, 0, h), *Vv = kv_base(inf, c->rs[a], l, 1, h);
  if (nr == 4) {
    c->attn4(o, C, qq, 3 * C, K, Vv, c->rp[a] + 1, hs, inf->scale, sc, (long)inf->Tr);
    return;
  }
  for (int i = 0; i < nr; i++)
    c->attn(o + (size_t)i * C, qq + (size_t)i * 3 * C, K, Vv, c->rp[a] + i + 1, hs, inf->scale,
            sc);
}

/* The rows [r0, r1) of one forward_range call, as bt_forward's ctx. */
typedef struct {
  bt_infer *inf;
  int r0, R, par, tid, nblk, pair;
  const int *rs, *rp, *blk;
  attn_row_fn attn;
  attn_rows4_fn attn4;
  attn_row8_fn attn8;
  attn_rows4_8_fn attn48;
} rows_ctx;

/* ---- pairing (bt_infer_pair_begin) ---- */

/* One split call: columns [0, split) and [split, OC) of a linear step, or
 * attention items [0, items / 2) and [items / 2, items). */
typedef struct pair_job {
  int attention;
  float *out;
  const float *in, *bias;
  bt_mat W;
  int R, IC, OC, split;
  const attn_ctx *ac;
  int items;
} pair_job;

/* The smallest linear step worth splitting, in FLOPs: a handoff costs the
 * order of a cache line's round trip between the cores. */
#define PAIR_MIN_FLOP 4e4

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/* Columns [c0, c0 + cn) of out (R, OC) = in . W^T + bias. */
static void linear_cols(const bt_infer *inf, const pair_job *j, int c0, int cn) {
  gemm_cols(inf, j->W, j->in, j->out, j->R, j->IC, j->OC, c0, cn);
  if (j->bias)
    for (int r = 0; r < j->R; r++)
      add_bias(j->out + (size_t)r * j->OC + c0, j->bias + c0, cn);
}

static void pair_run(bt_infer *inf, int half) {
  const pair_job *j = inf->job;
  if (j->attention) {
    float *sc = inf->ascratch + (size_t)half * 4 * inf->Tr;
    const int a = half ? j->items / 2 : 0, b = half ? j->items : j->items / 2;
    for (int it = a; it < b; it++)
      attn_item(j->ac, it, sc);
  } else if (half) {
    linear_cols(inf, j, j->split, j->OC - j->split);
  } else {
    linear_cols(inf, j, 0, j->split);
  }
}

/* Posts *j, runs its first half, then its second unless the helper has
 * claimed it, in which case waits for the helper to finish it. */
static void pair_split(bt_infer *inf, pair_job *j) {
  inf->job = j;
  const unsigned p = atomic_load_explicit(&inf->posted, memory_order_relaxed) + 1;
  atomic_store_explicit(&inf->posted, p, memory_order_release);
  pair_run(inf, 0);
  unsigned want = p - 1;
  if (!inf->pair_wait && atomic_compare_exchange_strong_explicit(&inf->claimed, &want, p, memory_order_acq_rel,
                                              memory_order_acquire)) {
    pair_run(inf, 1);
    return;
  }
  while (atomic_load_explicit(&inf->done, memory_order_acquire) != p)
    cpu_relax();
}

void bt_infer_pair_begin(bt_infer *inf) {
  atomic_store_explicit(&inf->stop, 0, memory_order_release);
  inf->paired = 1;
}

void bt_infer_pair_wait_for_helper(bt_infer *inf, int on) { inf->pair_wait = on; }

void bt_infer_pair_end(bt_infer *inf) {
  inf->paired = 0;
  atomic_store_explicit(&inf->stop, 1, memory_order_release);
}

long bt_infer_pair_serve(bt_infer *inf) {
  long taken = 0;
  int idle = 0;
  for (;;) {
    const unsigned p = atomic_load_explicit(&inf->posted, memory_order_acquire);
    unsigned want = p - 1;
    if (atomic_load_explicit(&inf->claimed, memory_order_relaxed) == want &&
        atomic_compare_exchange_strong_explicit(&inf->claimed, &want, p, memory_order_acq_rel,
                                                memory_order_relaxed)) {
      pair_run(inf, 1);
      atomic_store_explicit(&inf->done, p, memory_order_release);
      taken++;
      idle = 0;
      continue;
    }
    if (atomic_load_explicit(&inf->stop, memory_order_acquire))
      return taken;
    /* Spin through the gaps between calls (a byte's coding); yield when
     * there is no work for longer, so that a busy machine's other threads
     * get the core. */
    if (++idle < 4096)
      cpu_relax();
    else
      sched_yield();
  }
}

static void rows_linear(void *ctx, float *out, const float *in, bt_mat w, const float *bias, int R,
                        int IC, int OC) {
  const rows_ctx *c = ctx;
  if (c->pair && OC >= 32 && 2.0 * R * IC * OC >= PAIR_MIN_FLOP) {
    pair_job j = {.out = out, .in = in, .bias = bias, .W = w, .R = R, .IC = IC, .OC = OC,
                  .split = (OC / 2 + 15) / 16 * 16};
    pair_split(c->inf, &j);
    return;
  }
  linear(c->inf, out, in, w, bias, R, IC, OC, c->par);
}

/* Rotary, K and V into the cache, then each row against its stream's cache. */
static void rows_attend(void *ctx, int l, float *qkv, float *att) {
  const rows_ctx *c = ctx;
  bt_infer *inf = c->inf;
  const int R = c->R, C = inf->C, H = inf->H, half = inf->hs / 2, par = c->par;
  const int *rs = c->rs, *rp = c->rp;
  const size_t Tr = (size_t)inf->Tr;
  /* Rotary: runs of consecutive rows of one stream share one call. */
  for (int a = 0; a < R;) {
    int e1 = a + 1;
    while (e1 < R && rs[e1] == rs[a] && rp[e1] == rp[e1 - 1] + 1)
      e1++;
    bt_rope_forward(qkv + (size_t)a * 3 * C, inf->rope_cos + (size_t)rp[a] * half,
                    inf->rope_sin + (size_t)rp[a] * half, 1, e1 - a, C, H);
    a = e1;
  }
  /* K and V of every row into its stream's tiles. */
  if (par && R >= 64) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < R; r++)
      store_kv(inf, qkv + (size_t)r * 3 * C, rs[r], rp[r], l);
  } else {
    for (int r = 0; r < R; r++)
      store_kv(inf, qkv + (size_t)r * 3 * C, rs[r], rp[r], l);
  }
  /* Attention: (block, head) items; cost grows with the position. */
  const int items = c->nblk * H;
  const attn_ctx ac = {inf, l, R, c->nblk, c->blk, rs, rp, qkv, att, c->attn, c->attn4, c->attn8, c->attn48};
  if (c->pair && items > 1) {
    pair_job j = {.attention = 1, .ac = &ac, .items = items};
    pair_split(inf, &j);
  } else if (par && items > 1) {
#pragma omp parallel
    {
      float *sc = inf->ascratch + (size_t)omp_get_thread_num() * 4 * Tr;
#pragma omp for schedule(dynamic, 2)
      for (int it = 0; it < items; it++)
        attn_item(&ac, it, sc);
    }
  } else {
    float *sc = inf->ascratch + (size_t)(par ? 0 : c->tid) * 4 * Tr;
    for (int it = 0; it < items; it++)
      attn_item(&ac, it, sc);
  }
}

/* Every layer uses the same row buffers, in place: h = LN1(x + Wo att) and
 * x = LN2(h + W2 gelu(W1 h + b1) + b2) go through tmp, hb and fc. */
static void rows_bufs(void *ctx, int l, bt_layer_bufs *b) {
  (void)l;
  const rows_ctx *c = ctx;
  bt_infer *inf = c->inf;
  const size_t r0 = (size_t)c->r0, C = (size_t)inf->C;
  float *x = inf->x + r0 * C, *tmp = inf->tmp + r0 * C, *fc = inf->fc + r0 * 4 * C;
  float *mean = inf->mean + r0, *rstd = inf->rstd + r0;
  *b = (bt_layer_bufs){.x = x, .xout = x, .qkv = inf->qkv + r0 * 3 * C,
                       .att = inf->att + r0 * C, .res1 = tmp, .h = inf->h + r0 * C,
                       .mean1 = mean, .rstd1 = rstd, .fch = fc, .fcg = fc, .res2 = tmp,
                       .mean2 = mean, .rstd2 = rstd, .tmp = tmp};
}

static const bt_forward_ops rows_ops = {rows_linear, rows_attend, rows_bufs};

/*
 * The forward of rows [r0, r1) (see forward_rows). logits (r1 - r0, V), or
 * NULL for none. tid < 0: this call owns all threads and each stage
 * parallelises itself; tid >= 0: it runs on the calling thread only (inside
 * forward_rows' region, as thread tid, with that thread's scratch), so the
 * rows must not share a stream with rows other threads run. Inside
 * forward_rows' region the ops' own parallel regions are nested, so they run
 * on this thread.
 */
static void forward_range(bt_infer *inf, int r0, int r1, float *logits, int tid) {
  const int R = r1 - r0;
  const int *rs = inf->rstream + r0, *rp = inf->rpos + r0;
  /* Attention blocks: up to 4 consecutive positions of one stream, which
   * share every K and V load (same bits as one row at a time). Block b
   * starts at row blk[b] and ends where the next starts, or at R. */
  int *blk = inf->ablk + r0, nblk = 0;
  for (int r = 0; r < R;) {
    int e1 = r + 1;
    while (e1 < R && e1 - r < 4 && rs[e1] == rs[r] && rp[e1] == rp[e1 - 1] + 1)
      e1++;
    blk[nblk++] = r;
    r = e1;
  }
  rows_ctx c = {inf, r0, R, tid < 0, tid, nblk, tid == 0 && inf->paired, rs, rp, blk,
                BT_PICK_ISA(bt_infer_attn_row), BT_PICK_ISA(bt_infer_attn_rows4),
                BT_PICK_ISA(bt_infer_attn_row8), BT_PICK_ISA(bt_infer_attn_rows4_8)};
  bt_forward(&rows_ops, &c, &inf->view, R, inf->rtok + r0, logits);
}

/* logits (nl, V) of rows lrows[0..nl-1] of the last forward_range over all rows. */
static void forward_head(bt_infer *inf, const int *lrows, int nl, float *logits, int par) {
  const int C = inf->C;
  for (int i = 0; i < nl; i++)
    memcpy(inf->xl + (size_t)i * C, inf->x + (size_t)lrows[i] * C, (size_t)C * sizeof(float));
  rows_ctx c = {.inf = inf, .par = par, .pair = !par && inf->paired};
  bt_forward_head(&rows_ops, &c, &inf->view, nl, inf->xl, logits);
}

/*
 * Runs R rows (R <= G) already in inf->rtok / rstream / rpos: row r is
 * position rpos[r] of stream rstream[r], input rtok[r]. A stream's rows must
 * have consecutive positions that continue its cache (positions before the
 * first one filled already). logits: nl rows (nl, V) for rows lrows[0..nl-1],
 * or, with lrows NULL, all R rows (R, V).
 *
 * Threads: few rows (a step) are split by stream, each thread running whole
 * forwards of its streams with no synchronisation until the end (lockstep
 * stages would need ~20 barriers per step); many rows parallelise each stage.
 */
static bt_error forward_rows(bt_infer *inf, int R, const int *lrows, int nl, float *logits) {
  bt_error e = ensure_scratch(inf);
  if (e)
    return e;
  int nt = omp_get_max_threads();
  if (inf->threads > 0 && inf->threads < nt)
    nt = inf->threads;
  if (omp_in_parallel() || nt == 1 || R == 1) {
    /* One thread: every stage runs here, with no parallel region at all
     * (each would cost the OpenMP runtime's team setup). Also a step of a
     * single stream (stream mode): splitting its stages took ~20 barriers
     * per byte, 2.7 ms a byte on a busy 2-core machine against 50 us alone.
     * The ops parallelise big calls by themselves: capped to this thread. */
    const int cap = !omp_in_parallel() && omp_get_max_threads() > 1;
    const int saved = omp_get_max_threads();
    if (cap)
      omp_set_num_threads(1);
    forward_range(inf, 0, R, lrows ? NULL : logits, 0);
    if (lrows && nl > 0)
      forward_head(inf, lrows, nl, logits, 0);
    if (cap)
      omp_set_num_threads(saved);
    return BT_OK;
  }
  if (!lrows && R < GEMM_BIG_M && nt > 1 && R > 1) {
    const int *rs = inf->rstream;
#pragma omp parallel num_threads(nt)
    {
      /* Rows [a, b) of this thread: an even share, boundaries moved forward
       * to the next change of stream. */
      const int t = omp_get_thread_num(), n = omp_get_num_threads();
      int a = (int)((long)R * t / n), b = (int)((long)R * (t + 1) / n);
      while (a > 0 && a < R && rs[a] == rs[a - 1])
        a++;
      while (b < R && rs[b] == rs[b - 1])
        b++;
      if (a < b)
        forward_range(inf, a, b, logits + (size_t)a * inf->view.vocab, t);
    }
    return BT_OK;
  }
  forward_range(inf, 0, R, lrows ? NULL : logits, -1);
  if (lrows && nl > 0)
    forward_head(inf, lrows, nl, logits, 1);
  return BT_OK;
}

/* ==================================================================== */
/* Public passes                                                         */
/* ==================================================================== */

/* A pass's inputs: bytes or tokens (one of the two is set). */
typedef struct {
  const uint8_t *b;
  const uint16_t *w;
} inputs_t;

static inline uint16_t input_at(inputs_t in, size_t i) { return in.b ? in.b[i] : in.w[i]; }
/* (a byte is in every vocabulary: V >= 256) */

/* BT_ERR_ARG if input i of a pass is a token outside the model's vocabulary
 * (bytes are always inside it). */
static bt_error check_token(const bt_infer *inf, inputs_t in, size_t i) {
  if (in.w && in.w[i] >= inf->view.vocab)
    return bt_fail(BT_ERR_ARG, "token %d is outside the vocabulary of %d", in.w[i], inf->view.vocab);
  return BT_OK;
}

static bt_error batched(bt_infer *inf, inputs_t seq, int n, int T, float *logits) {
  if (n < 1 || n > inf->max_streams || T < 1 || T > inf->max_T)
    return bt_fail(BT_ERR_ARG, "batched pass of %d x %d does not fit %d streams x %d positions",
                   n, T, inf->max_streams, inf->max_T);
  if (seq.w)
    for (size_t i = 0; i < (size_t)n * T; i++)
      if (check_token(inf, seq, i))
        return BT_ERR_ARG;
  /* Whole sequences per call, as many as fit G rows. */
  const int per = inf->G / T;
  for (int s0 = 0; s0 < n; s0 += per) {
    const int ns = n - s0 < per ? n - s0 : per;
    int r = 0;
    for (int s = s0; s < s0 + ns; s++) {
      inf->pos[s] = 0;
      for (int p = 0; p < T; p++, r++) {
        inf->rstream[r] = s;
        inf->rpos[r] = p;
        inf->rtok[r] = p == 0 ? BT_BOS : input_at(seq, (size_t)s * T + p - 1);
      }
    }
    bt_error e = forward_rows(inf, r, NULL, 0, logits + (size_t)s0 * T * inf->view.vocab);
    if (e)
      return e;
    for (int s = s0; s < s0 + ns; s++)
      inf->pos[s] = T;
  }
  return BT_OK;
}

static bt_error step(bt_infer *inf, inputs_t tok, int n, float *logits) {
  if (n < 1 || n > inf->max_streams)
    return bt_fail(BT_ERR_ARG, "step of %d streams (at most %d)", n, inf->max_streams);
  for (int s = 0; s < n; s++) {
    if (inf->pos[s] >= inf->max_T)
      return bt_fail(BT_ERR_ARG, "stream %d is full (%d positions)", s, inf->max_T);
    if (inf->pos[s] > 0 && !tok.b && !tok.w)
      return bt_fail(BT_ERR_ARG, "stream %d is at position %d: step needs its input byte", s,
                     inf->pos[s]);
    if (inf->pos[s] > 0 && check_token(inf, tok, (size_t)s))
      return BT_ERR_ARG;
  }
  for (int s = 0; s < n; s++) {
    inf->rstream[s] = s;
    inf->rpos[s] = inf->pos[s];
    inf->rtok[s] = inf->pos[s] == 0 ? BT_BOS : input_at(tok, (size_t)s);
  }
  bt_error e = forward_rows(inf, n, NULL, 0, logits);
  if (e)
    return e;
  for (int s = 0; s < n; s++)
    inf->pos[s]++;
  return BT_OK;
}

static bt_error prefill(bt_infer *inf, inputs_t seq, size_t ld, const int *len, int n,
                       float *logits) {
  if (n < 1 || n > inf->max_streams)
    return bt_fail(BT_ERR_ARG, "prefill of %d streams (at most %d)", n, inf->max_streams);
  for (int s = 0; s < n; s++)
    if (len[s] < 0 || len[s] + 1 > inf->max_T || (len[s] > 0 && ld < (size_t)len[s]))
      return bt_fail(BT_ERR_ARG, "prefix %d of stream %d does not fit %d positions", len[s], s,
                     inf->max_T);
  for (int s = 0; seq.w && s < n; s++)
    for (int p = 0; p < len[s]; p++)
      if (check_token(inf, seq, (size_t)s * ld + p))
        return BT_ERR_ARG;
  bt_infer_reset(inf, n);
  /* Rows stream by stream, cut into calls of at most G rows; a stream may
   * span two calls, the later one continuing the cache of the earlier. */
  int r = 0, nl = 0, lbase = 0;
  for (int s = 0; s < n; s++)
    for (int p = 0; p <= len[s]; p++) {
      inf->rstream[r] = s;
      inf->rpos[r] = p;
      inf->rtok[r] = p == 0 ? BT_BOS : input_at(seq, (size_t)s * ld + p - 1);
      if (p == len[s])
        inf->lrows[nl++] = r;
      r++;
      if (r == inf->G || (s == n - 1 && p == len[s])) {
        bt_error e = forward_rows(inf, r, inf->lrows, logits ? nl : 0,
                                  logits ? logits + (size_t)lbase * inf->view.vocab : NULL);
        if (e)
          return e;
        for (int i = 0; i < r; i++)
          inf->pos[inf->rstream[i]] = inf->rpos[i] + 1;
        lbase += nl;
        nl = 0;
        r = 0;
      }
    }
  return BT_OK;
}

int bt_infer_max_rows(const bt_infer *inf) { return inf->G; }

static bt_error extend(bt_infer *inf, inputs_t tok, size_t ld, const int *nrows, int n,
                      float *logits) {
  if (n < 1 || n > inf->max_streams)
    return bt_fail(BT_ERR_ARG, "extend of %d streams (at most %d)", n, inf->max_streams);
  long total = 0;
  for (int s = 0; s < n; s++) {
    if (nrows[s] < 0 || inf->pos[s] + nrows[s] > inf->max_T || (nrows[s] > 0 && ld < (size_t)nrows[s]))
      return bt_fail(BT_ERR_ARG, "%d rows of stream %d at position %d do not fit %d positions",
                     nrows[s], s, inf->pos[s], inf->max_T);
    total += nrows[s];
    for (int i = 0; tok.w && i < nrows[s]; i++)
      if (inf->pos[s] + i > 0 && check_token(inf, tok, (size_t)s * ld + i))
        return BT_ERR_ARG;
  }
  if (total > inf->G)
    return bt_fail(BT_ERR_ARG, "%ld rows in one pass (at most %d)", total, inf->G);
  if (total == 0)
    return BT_OK;
  int r = 0;
  for (int s = 0; s < n; s++)
    for (int i = 0; i < nrows[s]; i++, r++) {
      const int p = inf->pos[s] + i;
      inf->rstream[r] = s;
      inf->rpos[r] = p;
      inf->rtok[r] = p == 0 ? BT_BOS : input_at(tok, (size_t)s * ld + i);
    }
  bt_error e = forward_rows(inf, r, NULL, 0, logits);
  if (e)
    return e;
  for (int s = 0; s < n; s++)
    inf->pos[s] += nrows[s];
  return BT_OK;
}

bt_error bt_infer_batched(bt_infer *inf, const uint8_t *seq, int n, int T, float *logits) {
  return batched(inf, (inputs_t){.b = seq}, n, T, logits);
}

bt_error bt_infer_batched_tokens(bt_infer *inf, const uint16_t *seq, int n, int T, float *logits) {
  return batched(inf, (inputs_t){.w = seq}, n, T, logits);
}

bt_error bt_infer_step(bt_infer *inf, const uint8_t *tok, int n, float *logits) {
  return step(inf, (inputs_t){.b = tok}, n, logits);
}

bt_error bt_infer_step_tokens(bt_infer *inf, const uint16_t *tok, int n, float *logits) {
  return step(inf, (inputs_t){.w = tok}, n, logits);
}

bt_error bt_infer_prefill(bt_infer *inf, const uint8_t *seq, size_t ld, const int *len, int n,
                          float *logits) {
  return prefill(inf, (inputs_t){.b = seq}, ld, len, n, logits);
}

bt_error bt_infer_prefill_tokens(bt_infer *inf, const uint16_t *seq, size_t ld, const int *len,
                                 int n, float *logits) {
  return prefill(inf, (inputs_t){.w = seq}, ld, len, n, logits);
}

bt_error bt_infer_extend(bt_infer *inf, const uint8_t *tok, size_t ld, const int *nrows, int n,
                         float *logits) {
  return extend(inf, (inputs_t){.b = tok}, ld, nrows, n, logits);
}

bt_error bt_infer_extend_tokens(bt_infer *inf, const uint16_t *tok, size_t ld, const int *nrows,
                                int n, float *logits) {
  return extend(inf, (inputs_t){.w = tok}, ld, nrows, n, logits);
}

bt_error bt_infer_rewind(bt_infer *inf, int s, int pos) {
  if (s < 0 || s >= inf->max_streams || pos < 0 || pos > inf->pos[s])
    return bt_fail(BT_ERR_ARG, "cannot rewind stream %d to position %d", s, pos);
  inf->pos[s] = pos;
  return BT_OK;
}
