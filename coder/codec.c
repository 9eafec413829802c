/*
 * codec.c - bt_compress / bt_decompress: model probabilities driving the
 * range coder, chunk by chunk (codec.h).
 *
 * Windows. A chunk no longer than the model's context W is one window coded
 * from BOS. A longer chunk (or the whole input in stream mode) is cut into
 * windows: window 0 codes bytes [0, W); window j >= 1 codes the next
 * S = W - P bytes, seeing the P = W/2 bytes before them after BOS. Every byte
 * is thus predicted from between P and W-1 preceding bytes, and every window
 * is one model pass of at most W positions.
 *
 * Compression runs windows teacher-forced in batches (bt_infer_batched);
 * decompression runs them incrementally (bt_infer_prefill + bt_infer_step)
 * with many chunks in lockstep. infer/ guarantees identical logits for both,
 * and bt_quantize_logits turns them into identical integer frequencies.
 *
 * Tokens. A model of V > 256 tokens (a BPE vocabulary, its tokenizer in its
 * checkpoint) codes chunks of at most its context: each chunk's bytes are
 * tokenized on their own and its tokens coded over V symbols from BOS; the
 * decoder decodes tokens until their bytes fill the chunk. The container is
 * the same; the model named in it says what its symbols are.
 */
#include "coder/codec.h"

#include <math.h>
#include <stdio.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coder/cm.h"
#include "data/bpe.h"
#include "coder/coder.h"
#include "kernels/hash.h"
#include "kernels/kernels.h"
#include "infer/infer.h"
#include "kernels/clock.h"
#include "train/ckpt.h"

/* Per-thread KV cache budget: it sets how many chunks one thread codes in
 * lockstep. Decoding reads a stream's whole cache for every byte, so the
 * groups of all the threads must stay small enough to live in the shared
 * cache, counted in the format the member's cache is in (int8 takes about
 * half of bfloat16's bytes). At least MIN_STREAMS, so that a step's GEMMs
 * read the weights for more than one row. (The measurements that set
 * these: docs/measurements.md.) */
#define CACHE_BUDGET ((size_t)9 << 19) /* 4.5 MB */
#define MIN_STREAMS 2
#define MAX_STREAMS 64
#define MAX_THREADS 256
/* A payload byte can stand for at most ~365,000 output bytes (the least a
 * coded byte costs is -log2(1 - 255/2^24) bits); more is a forged header. */
#define MAX_EXPANSION 400000ull

/* Rows of logits a BPE model's encoder computes per pass: V floats each. */
#define TOKEN_ROWS 64

/* What one thread needs: its own inference state and logits. Threads work on
 * disjoint groups of chunks with no barriers between them; infer/ gives the
 * same bits whatever the group size or thread. */
typedef struct {
  bt_infer *inf;
  float *logits;
  /* a BPE model's chunks (made on first use): tokens, and the tables over V */
  uint16_t *tok;
  uint32_t *freq, *cum;
  float *qscratch;
  /* adaptive coding (made on first use): the weights that learn, with
   * their optimizer state, and the mixing predictor */
  bt_model *am;
  bt_cm *cm;
  unsigned cm_parts;
  int adapted; /* inf holds weights other than the checkpoint's */
  struct draft *draft; /* multi-row decoding of a lone stream (made on first use) */
  int spec_k;          /* rows per pass of it */
  int prefill_threads, step_threads; /* bt_infer_set_threads, decode_window_spec */
  int pair;            /* decode_window_spec's steps may run paired */
  double pair_cost[2]; /* seconds a byte, unpaired and paired (pair_pick) */
  unsigned pair_windows;
  uint64_t spec_passes, spec_bytes; /* statistics: passes run, bytes they decoded */
} worker_t;

/* One direction's work spread over processes: this one's part of nparts. */
typedef struct {
  int part, nparts;
  void *user;
} share_t;

/* Off (one process) unless the part is valid and there is an exchange. */
static int set_share(share_t *s, int part, int nparts, int has_exchange, void *user) {
  const int on = nparts > 1 && part >= 0 && part < nparts && has_exchange;
  s->part = on ? part : 0;
  s->nparts = on ? nparts : 1;
  s->user = user;
  return on;
}

struct bt_codec {
  bt_model *m;
  bt_config cfg;
  uint8_t sha[32];
  worker_t w[MAX_THREADS];
  int nw, G, T; /* workers made, streams per worker, positions per stream */
  uint64_t max_size; /* bt_codec_set_max_size: 0 = the default rule */
  char name[BT_MODEL_NAME_MAX + 1]; /* written into containers */
  int adaptive;      /* bt_codec_set_adapt */
  share_t enc, dec;  /* bt_codec_set_share, bt_codec_set_decode_share */
  bt_exchange_fn exchange;
  bt_dexchange_fn dexchange;
  bt_adapt adapt;
  int threads;       /* bt_codec_set_threads: 0 = the caller's */
  int kv8;           /* bt_codec_set_kv8: compression's KV cache format (BT_KV_AUTO) */
  uint64_t spec_passes, spec_bytes; /* this call's multi-row passes (spec_tally) */
  bt_bpe *bpe;       /* the model's tokenizer, for V > 256; else NULL */
};

static void free_workers(bt_codec *c) {
  for (int i = 0; i < c->nw; i++) {
    bt_infer_free(c->w[i].inf);
    free(c->w[i].logits);
    bt_model_free(c->w[i].am);
    bt_cm_free(c->w[i].cm);
    free(c->w[i].draft);
    free(c->w[i].tok);
    free(c->w[i].freq);
    free(c->w[i].cum);
    free(c->w[i].qscratch);
    memset(&c->w[i], 0, sizeof c->w[i]);
  }
  c->nw = c->G = c->T = 0;
}

/* The name containers record: len bytes of name, printable ASCII only, cut
 * to BT_MODEL_NAME_MAX. */
static void set_model_name(bt_codec *c, const char *name, size_t len) {
  size_t n = 0;
  for (size_t i = 0; i < len && n < BT_MODEL_NAME_MAX; i++)
    if (name[i] >= 32 && name[i] < 127)
      c->name[n++] = name[i];
  c->name[n] = 0;
}

bt_error bt_codec_open(bt_codec **out, const char *ckpt_path) {
  *out = NULL;
  bt_codec *c = calloc(1, sizeof *c);
  if (!c)
    return bt_fail(BT_ERR_NOMEM, "codec");
  bt_error e = bt_ckpt_load(ckpt_path, &c->m, NULL);
  if (e) {
    free(c);
    return e;
  }
  c->cfg = *bt_model_config(c->m);
  c->kv8 = BT_KV_AUTO;
  if (c->cfg.vocab > BT_VOCAB) { /* its symbols are its tokens */
    size_t tn;
    const uint8_t *img = bt_model_tokenizer(c->m, &tn);
    if ((e = bt_bpe_parse(&c->bpe, img, tn))) {
      bt_model_free(c->m);
      free(c);
      return e;
    }
  }
  bt_model_weights_sha256(c->m, c->sha);
  /* The name: the file's, without folders and ".h5", cut to fit. */
  const char *base = strrchr(ckpt_path, '/');
  base = base ? base + 1 : ckpt_path;
  size_t nl = strlen(base);
  if (nl > 3 && strcmp(base + nl - 3, ".h5") == 0)
    nl -= 3;
  set_model_name(c, base, nl);
  *out = c;
  return BT_OK;
}

void bt_codec_free(bt_codec *c) {
  if (!c)
    return;
  free_workers(c);
  bt_model_free(c->m);
  bt_bpe_free(c->bpe);
  free(c);
}

void bt_codec_set_max_size(bt_codec *c, uint64_t max_size) { c->max_size = max_size; }

void bt_codec_set_decode_share(bt_codec *c, int part, int nparts, bt_dexchange_fn exchange,
                               void *user) {
  c->dexchange = set_share(&c->dec, part, nparts, exchange != NULL, user) ? exchange : NULL;
}

void bt_codec_set_share(bt_codec *c, int part, int nparts, bt_exchange_fn exchange, void *user) {
  c->exchange = set_share(&c->enc, part, nparts, exchange != NULL, user) ? exchange : NULL;
}


void bt_adapt_default(bt_adapt *a) {
  memset(a, 0, sizeof *a);
  a->window = 1024;
  a->steps = 1;
  a->optimizer = 1;
  a->parts = BT_CM_ALL;
  a->lr = 3e-5f;
  a->beta1 = 0.9f;
  a->beta2 = 0.99f;
  a->eps = 1e-8f;
  a->lr_decay = 1.0f;
}

bt_error bt_codec_set_adapt(bt_codec *c, const bt_adapt *a) {
  if (!a) {
    c->adaptive = 0;
    return BT_OK;
  }
  bt_error e = bt_adapt_check(a, (uint32_t)c->cfg.ctx);
  if (e)
    return e;
  c->adapt = *a;
  c->adaptive = 1;
  return BT_OK;
}

const bt_config *bt_codec_config(const bt_codec *c) { return &c->cfg; }
size_t bt_codec_num_params(const bt_codec *c) { return bt_model_num_params(c->m); }
const uint8_t *bt_codec_weights_sha256(const bt_codec *c) { return c->sha; }
const char *bt_codec_model_name(const bt_codec *c) { return c->name; }
void bt_codec_set_threads(bt_codec *c, int n) { c->threads = n > 0 ? n : 0; }

void bt_codec_set_kv8(bt_codec *c, int mode) { c->kv8 = mode < 0 ? BT_KV_AUTO : mode != 0; }

int bt_codec_kv8(const bt_codec *c) { return c->kv8; }

int bt_codec_kv8_for(const bt_codec *c, int adaptive) {
  return c->kv8 == BT_KV_AUTO ? !adaptive : c->kv8;
}

/* Every worker's KV cache in the format a member uses (infer.h: mode). */
static void workers_kv8(bt_codec *c, int mode) {
  for (int i = 0; i < c->nw; i++)
    bt_infer_set_kv8(c->w[i].inf, mode);
}

size_t bt_compress_bound(uint64_t n, uint32_t chunk) {
  return (size_t)bt_container_bound(n, chunk, chunk == 0);
}

/* Makes nt workers for streams of T positions, G streams each, where G
 * streams' caches in format kv (BT_KV_*) fit the cache budget (and G is at
 * most the chunks there are per thread). */
static bt_error ensure_workers(bt_codec *c, int T, uint64_t chunks, int one_stream, int kv) {
  int nt = omp_get_max_threads();
  if (nt > MAX_THREADS)
    nt = MAX_THREADS;
  if ((uint64_t)nt > chunks)
    nt = chunks ? (int)chunks : 1;
  size_t per = bt_infer_stream_bytes(&c->cfg, T, kv);
  uint64_t g = CACHE_BUDGET / (per ? per : 1);
  if (g < MIN_STREAMS)
    g = MIN_STREAMS;
  uint64_t per_thread = (chunks + (uint64_t)nt - 1) / (uint64_t)nt;
  if (g > per_thread)
    g = per_thread;
  if (g > MAX_STREAMS)
    g = MAX_STREAMS;
  if (g < 1 || one_stream)
    g = 1;
  if (c->nw >= nt && c->T == T && c->G == (int)g) {
    /* Adaptive coding left its own weights in these workers. Adaptive
     * callers start from the checkpoint's again in adapt_begin; plain
     * ones get them back here. */
    for (int i = 0; i < c->nw && !one_stream; i++)
      if (c->w[i].adapted) {
        bt_error e = bt_infer_set_weights(c->w[i].inf, c->m);
        if (e)
          return e;
        c->w[i].adapted = 0;
      }
    return BT_OK;
  }
  free_workers(c);
  for (int i = 0; i < nt; i++) {
    bt_error e = bt_infer_create(&c->w[i].inf, c->m, (int)g, T);
    /* a BPE model's logits: TOKEN_ROWS rows of V at a time (encode_tokens) */
    c->w[i].logits = malloc(c->bpe ? (size_t)TOKEN_ROWS * c->cfg.vocab * sizeof(float)
                                   : (size_t)g * T * 256 * sizeof(float));
    c->nw = i + 1;
    if (e || !c->w[i].logits) {
      free_workers(c);
      return e ? e : bt_fail(BT_ERR_NOMEM, "logits");
    }
  }
  c->G = (int)g;
  c->T = T;
  return BT_OK;
}

/* ---- window schedule of one chunk of length len, model context W ---- */

typedef struct {
  uint64_t start;  /* first coded byte, relative to the chunk */
  uint32_t prefix; /* bytes of context before it (0 for window 0) */
  uint32_t coded;  /* bytes coded */
} window_t;

static uint64_t n_windows(uint64_t len, int W) {
  if (len <= (uint64_t)W)
    return len ? 1 : 0;
  uint64_t S = (uint64_t)(W - W / 2);
  return 1 + (len - (uint64_t)W + S - 1) / S;
}

static window_t window_at(uint64_t len, int W, uint64_t j) {
  window_t w;
  uint64_t S = (uint64_t)(W - W / 2);
  if (j == 0) {
    w.start = 0;
    w.prefix = 0;
    w.coded = (uint32_t)(len < (uint64_t)W ? len : (uint64_t)W);
  } else {
    w.start = (uint64_t)W + (j - 1) * S;
    w.prefix = (uint32_t)(W / 2);
    uint64_t rest = len - w.start;
    w.coded = (uint32_t)(rest < S ? rest : S);
  }
  return w;
}

/* ==================================================================== */
/* Multi-row decoding of one stream                                     */
/* ==================================================================== */

/* A decoder of one stream guesses the next bytes from those decoded so far,
 * runs the row of the next byte and the rows of the guesses in one pass
 * (bt_infer_extend: every row's logits are exactly what a step would give
 * it), and keeps the rows for as long as the guesses prove right. Files do
 * not change: the encoder never sees the guesses. The draft is the bytes'
 * own statistics: the continuation of the last earlier occurrence of the
 * last MATCH_LEN bytes, else the byte that last followed the last 3 bytes,
 * else the last 2. */
#define MATCH_LEN 5
#define DRAFT_BITS 18
#define SPEC_MAX 16

typedef struct draft {
  uint32_t match[1u << DRAFT_BITS]; /* hash of MATCH_LEN bytes -> index after them + 1 */
  uint16_t o3[1u << DRAFT_BITS];    /* hash of 3 bytes -> next byte + 1 */
  uint16_t o2[1u << 16];            /* 2 bytes -> next byte + 1 */
} draft_t;

static uint32_t draft_hash(const uint8_t *p, int n) {
  uint32_t h = 0x9E3779B9u;
  for (int i = 0; i < n; i++)
    h = (h ^ p[i]) * 0x01000193u;
  return (h ^ (h >> 15)) & ((1u << DRAFT_BITS) - 1);
}

/* Learns byte i of h (its contexts h[.. i-1]). */
static void draft_update(draft_t *d, const uint8_t *h, uint64_t i) {
  if (i >= 2)
    d->o2[h[i - 2] << 8 | h[i - 1]] = (uint16_t)(h[i] + 1);
  if (i >= 3)
    d->o3[draft_hash(h + i - 3, 3)] = (uint16_t)(h[i] + 1);
  if (i >= MATCH_LEN)
    d->match[draft_hash(h + i - MATCH_LEN, MATCH_LEN)] = (uint32_t)(i + 1);
}

/* Guesses g[0..n) for bytes i, i+1, ... of h, which holds bytes [0, i).
 * g's own guesses extend the context for the later ones. */
static void draft_guess(const draft_t *d, const uint8_t *h, uint64_t i, uint8_t *g, int n) {
  int t = 0;
  if (i >= MATCH_LEN && i < UINT32_MAX) {
    const uint32_t q = d->match[draft_hash(h + i - MATCH_LEN, MATCH_LEN)];
    if (q && q - 1 < i && q - 1 >= MATCH_LEN &&
        memcmp(h + q - 1 - MATCH_LEN, h + i - MATCH_LEN, MATCH_LEN) == 0)
      for (uint64_t p = q - 1; t < n && p < i; p++)
        g[t++] = h[p];
  }
  for (; t < n; t++) { /* contexts ending in guesses read them from g */
    const uint64_t at = i + (uint64_t)t;
    uint8_t c[3];
    for (int k = 0; k < 3; k++) {
      const int64_t src = (int64_t)at - 3 + k;
      c[k] = src < 0 ? 0 : (uint64_t)src < i ? h[src] : g[src - (int64_t)i];
    }
    uint16_t v = at >= 3 ? d->o3[draft_hash(c, 3)] : 0;
    if (!v && at >= 2)
      v = d->o2[c[1] << 8 | c[2]];
    g[t] = v ? (uint8_t)(v - 1) : ' ';
  }
}

/* Rows per pass. A wrong guess costs a row's compute, and a row's cost is
 * mostly attention over its context and the GEMMs, which grow with the rows.
 * As measured (docs/decoding.md), the draft's guesses hold about half the
 * time and a pass of 4 rows costs more than the two rows it gains, for every
 * preset, so every preset decodes one row a pass.
 * BT_SPEC_K (1..16) sets it, to measure it elsewhere. */
static int spec_rows(const bt_config *cfg) {
  const char *e = getenv("BT_SPEC_K");
  if (e && *e) {
    int k = atoi(e);
    return k < 1 ? 1 : k > SPEC_MAX ? SPEC_MAX : k;
  }
  (void)cfg;
  return 1;
}

/* Decodes one byte of a stream from its logits (the plain coder or the
 * mixing predictor); `at` is its index in the chunk. */
typedef int (*byte_decoder_fn)(void *ctx, const float *logits, uint64_t at);

/* Whether the next window's steps run paired. Pairing halves a step's time
 * on an idle machine and can double it on a busy one, where the helper
 * spins on a core that other work wants; so the choice is measured, window
 * by window: each mode's cost is a moving average of its windows' seconds a
 * byte, and every 16th window runs the other mode to keep its cost fresh.
 * The bits do not depend on the choice. */
static int pair_pick(worker_t *w) {
  if (!w->pair)
    return 0;
  const unsigned n = w->pair_windows++;
  if (w->pair_cost[1] == 0)
    return 1;
  if (w->pair_cost[0] == 0)
    return 0;
  const int best = w->pair_cost[1] <= w->pair_cost[0];
  return n % 16 == 15 ? !best : best;
}

static void pair_note(worker_t *w, int paired, double seconds, uint32_t bytes) {
  if (!w->pair || bytes == 0)
    return;
  const double c = seconds / bytes, old = w->pair_cost[paired];
  w->pair_cost[paired] = old == 0 ? c : 0.5 * old + 0.5 * c;
}

/*
 * Decodes window wn of a lone stream into h (the chunk's bytes), multi-row.
 * The stream's position of coded byte r is base + r, base = the window's
 * prefix; window 0 starts at BOS (reset here); a later one is prefilled with
 * its prefix, which gives the logits of its first byte.
 */
/* The steps of decode_window_spec from coded byte r on. */
static bt_error decode_steps(worker_t *w, uint8_t *h, window_t wn, uint32_t r, byte_decoder_fn dec,
                             void *ctx) {
  const int K = w->spec_k, base = (int)wn.prefix;
  uint8_t in[SPEC_MAX];
  bt_error e;
  while (r < wn.coded) {
    const uint64_t at = wn.start + r;
    int n = (int)(wn.coded - r < (uint32_t)K ? wn.coded - r : (uint32_t)K);
    in[0] = base + (int)r > 0 ? h[at - 1] : BT_BOS;
    if (n > 1)
      draft_guess(w->draft, h, at, in + 1, n - 1);
    if ((e = bt_infer_extend(w->inf, in, SPEC_MAX, &n, 1, w->logits)))
      return e;
    int t = 0;
    for (; t < n; t++) {
      const int b = dec(ctx, w->logits + (size_t)t * 256, at + t);
      h[at + t] = (uint8_t)b;
      if (K > 1)
        draft_update(w->draft, h, at + t);
      if (t + 1 < n && b != in[t + 1]) {
        t++;
        break;
      }
    }
    r += (uint32_t)t;
    w->spec_passes++;
    w->spec_bytes += (uint64_t)t;
    if ((e = bt_infer_rewind(w->inf, 0, base + (int)r)))
      return e;
  }
  return BT_OK;
}

/*
 * Decodes window wn of a lone stream into h (the chunk's bytes), multi-row.
 * The stream's position of coded byte r is base + r, base = the window's
 * prefix; window 0 starts at BOS (reset here); a later one is prefilled with
 * its prefix, which gives the logits of its first byte. With w->pair the
 * steps run paired (bt_infer_pair_begin): this thread decodes, a second one
 * takes half of each step's work.
 */
static bt_error decode_window_spec(worker_t *w, uint8_t *h, window_t wn, byte_decoder_fn dec,
                                   void *ctx) {
  const int paired = pair_pick(w);
  const double t0 = w->pair ? bt_now_s() : 0;
  bt_error e;
  uint32_t r = 0;
  if (wn.prefix) {
    int plen = (int)wn.prefix;
    /* paired: the pair's team is awake from the window before */
    bt_infer_set_threads(w->inf, paired ? 0 : w->prefill_threads);
    e = bt_infer_prefill(w->inf, h + wn.start - wn.prefix, wn.prefix, &plen, 1, w->logits);
    bt_infer_set_threads(w->inf, w->step_threads);
    if (e)
      return e;
    h[wn.start] = (uint8_t)dec(ctx, w->logits, wn.start);
    if (w->spec_k > 1)
      draft_update(w->draft, h, wn.start);
    r = 1;
  } else {
    bt_infer_reset(w->inf, 1);
  }
  if (!paired || r >= wn.coded) {
    e = decode_steps(w, h, wn, r, dec, ctx);
    if (!paired)
      pair_note(w, 0, w->pair ? bt_now_s() - t0 : 0, wn.coded);
    return e;
  }
  e = BT_OK;
  bt_infer_pair_begin(w->inf);
#pragma omp parallel num_threads(2)
  {
    if (omp_get_thread_num() == 0) {
      e = decode_steps(w, h, wn, r, dec, ctx);
      bt_infer_pair_end(w->inf);
    } else {
      bt_infer_pair_serve(w->inf);
    }
  }
  pair_note(w, 1, bt_now_s() - t0, wn.coded);
  return e;
}

/* Adds a stream's passes and the bytes they decoded to the call's totals
 * (bt_codec_stats: the draft's acceptance, docs/decoding.md). */
static void spec_tally(bt_codec *c, worker_t *w) {
#pragma omp atomic
  c->spec_passes += w->spec_passes;
#pragma omp atomic
  c->spec_bytes += w->spec_bytes;
  w->spec_passes = w->spec_bytes = 0;
}

/* Sets the worker's rows per pass, with a fresh draft if more than one. */
static bt_error ensure_draft(bt_codec *c, worker_t *w) {
  w->spec_k = spec_rows(&c->cfg);
  if (w->spec_k == 1)
    return BT_OK;
  if (!w->draft && !(w->draft = malloc(sizeof *w->draft)))
    return bt_fail(BT_ERR_NOMEM, "decoding draft");
  memset(w->draft, 0, sizeof *w->draft);
  return BT_OK;
}

/* ---- groups of chunks, spread over the workers ---- */

/* One call's work: `count` chunks in groups of c->G, each group run by one
 * worker from start to end (no barriers inside a group). */
typedef struct job job_t;
struct job {
  bt_error (*run)(bt_codec *c, worker_t *w, const job_t *j, uint64_t first, int k);
  uint64_t count, total; /* chunks; bytes, for progress */
  uint64_t clen;         /* bytes per chunk */
  bt_progress_fn fn;
  void *user;
  uint64_t base, all;    /* progress: bytes of earlier members; of all members */
  const bt_container_header *h;
  const uint8_t *in;
  bt_chunk_result *ch;   /* compression: per-chunk results */
  uint64_t first;        /* the first chunk of the job (count from there) */
  const uint64_t *off;   /* decompression: payload offsets, coded chunk ids, output */
  const uint64_t *ids;
  uint8_t *res;
};

/* Reports done bytes of this member (clamped to its total), counted on top
 * of the members before it. */
static void job_progress(const job_t *j, uint64_t done) {
  if (j->fn)
    j->fn(j->user, j->base + (done < j->total ? done : j->total), j->all);
}

/* Progress from inside a group: a lone worker (one chunk, as in stream mode)
 * would otherwise report nothing until its only group ends. */
static void window_progress(const bt_codec *c, const job_t *j, uint64_t first, uint64_t bytes) {
  if (j->fn && c->nw <= 1)
    job_progress(j, first * j->clen + bytes);
}

static bt_error run_groups(bt_codec *c, const job_t *j) {
  const uint64_t G = (uint64_t)(c->G ? c->G : 1), ngroups = (j->count + G - 1) / G;
  if (c->nw <= 1) {
    /* One worker (one chunk: stream mode): no region here, so the model's
     * own parallel stages are top-level regions of the thread pool. Nested
     * under a one-thread team they were ~30x slower to start (libgomp). */
    bt_error e = BT_OK;
    for (uint64_t g = 0; g < ngroups && !e; g++) {
      uint64_t first = g * G;
      int k = (int)(j->count - first < G ? j->count - first : G);
      e = j->run(c, &c->w[0], j, j->first + first, k);
      if (!e)
        job_progress(j, (first + (uint64_t)k) * j->clen);
    }
    return e;
  }
  bt_error e = BT_OK;
  uint64_t done = 0;
  char detail[512] = "";
#pragma omp parallel num_threads(c->nw)
  {
    worker_t *w = &c->w[omp_get_thread_num()];
#pragma omp for schedule(dynamic, 1)
    for (uint64_t g = 0; g < ngroups; g++) {
      bt_error ge;
#pragma omp atomic read
      ge = e;
      if (ge)
        continue;
      uint64_t first = g * G;
      int k = (int)(j->count - first < G ? j->count - first : G);
      ge = j->run(c, w, j, j->first + first, k);
#pragma omp critical(bt_codec_progress)
      {
        if (ge && !e) {
          e = ge; /* the detail lives in this thread's slot: carry it over */
          snprintf(detail, sizeof detail, "%s", bt_error_detail());
        }
        done += (uint64_t)k * j->clen;
        if (!e && omp_get_thread_num() == 0)
          job_progress(j, done);
      }
    }
  }
  if (e && detail[0])
    bt_fail(e, "%s", detail);
  return e;
}

/* ==================================================================== */
/* Compression                                                          */
/* ==================================================================== */

/* buf: capacity len - 1 (coded must be strictly smaller); size == len
 * means stored raw. */
typedef bt_chunk_result enc_chunk_t;

/* Chunk id of the job: its length, and a buffer for its coded bytes, which
 * must come out strictly shorter than the chunk (capacity len - 1). */
static bt_error chunk_alloc(const job_t *jb, uint64_t id) {
  enc_chunk_t *x = &jb->ch[id];
  x->len = bt_container_chunk_len(jb->h, id);
  x->buf = malloc(x->len > 1 ? x->len - 1 : 1);
  return x->buf ? BT_OK : bt_fail(BT_ERR_NOMEM, "chunk buffer");
}

/* The chunk's size from its coder's finish (SIZE_MAX: overflowed): the coded
 * bytes if they are fewer than the chunk's, else the stored fallback (size
 * == len). */
static void chunk_size(enc_chunk_t *x, size_t got) {
  x->size = got == SIZE_MAX || got >= x->len ? (size_t)x->len : got;
}

/* Codes logits rows [p, p+cnt) of one window, predicting bytes x[p..]. */
static void code_rows(bt_rc_enc *rc, enc_chunk_t *ch, const float *logits, const uint8_t *x,
                      uint32_t p, uint32_t cnt) {
  uint32_t freq[256], cum[257];
  float e[256];
  for (uint32_t t = p; t < p + cnt; t++) {
    const float *row = logits + (size_t)t * 256;
    int b = x[t];
    if (bt_rc_enc_overflowed(rc)) { /* it will be stored raw: no need to code the rest */
      ch->logloss += bt_logits_logloss_bits(row, b);
      continue;
    }
    ch->logloss += bt_quantize_logits_v_loss(row, 256, freq, e, b);
    bt_freq_cumulative(freq, cum);
    ch->coded_bits += bt_freq_cost_bits(freq, b);
    bt_rc_encode(rc, cum[b], freq[b]);
  }
}

/* Encodes chunks [c0, c0+k) of the input on worker w: each window index j
 * across the group, windows of equal length in one batched pass. */
static bt_error encode_group(bt_codec *c, worker_t *w, const job_t *jb, uint64_t c0, int k) {
  const uint8_t *in = jb->in;
  const uint64_t clen = jb->clen;
  enc_chunk_t *ch = jb->ch;
  const int W = c->cfg.ctx;
  bt_rc_enc rc[MAX_STREAMS];
  window_t wins[MAX_STREAMS];
  int owner[MAX_STREAMS];
  uint8_t *seqs = malloc((size_t)k * c->T);
  if (!seqs)
    return bt_fail(BT_ERR_NOMEM, "sequence buffer");
  bt_error e = BT_OK;
  for (int i = 0; i < k && !e; i++)
    if (!(e = chunk_alloc(jb, c0 + (uint64_t)i)))
      bt_rc_enc_init(&rc[i], ch[c0 + (uint64_t)i].buf, ch[c0 + (uint64_t)i].len - 1);
  uint64_t maxw = e ? 0 : n_windows(ch[c0].len, W);
  for (uint64_t j = 0; j < maxw && !e; j++) {
    int nw = 0;
    for (int i = 0; i < k; i++)
      if (j < n_windows(ch[c0 + (uint64_t)i].len, W)) {
        wins[nw] = window_at(ch[c0 + (uint64_t)i].len, W, j);
        owner[nw++] = i;
      }
    for (int a = 0; a < nw && !e;) { /* runs of windows with the same pass length */
      int Tw = (int)(wins[a].prefix + wins[a].coded), b = a;
      while (b < nw && (int)(wins[b].prefix + wins[b].coded) == Tw)
        b++;
      for (int q = a; q < b; q++) {
        const uint8_t *cs = in + (c0 + (uint64_t)owner[q]) * clen;
        memcpy(seqs + (size_t)(q - a) * Tw, cs + wins[q].start - wins[q].prefix, (size_t)Tw);
      }
      e = bt_infer_batched(w->inf, seqs, b - a, Tw, w->logits);
      for (int q = a; q < b && !e; q++)
        code_rows(&rc[owner[q]], &ch[c0 + (uint64_t)owner[q]], w->logits + (size_t)(q - a) * Tw * 256,
                  seqs + (size_t)(q - a) * Tw, wins[q].prefix, wins[q].coded);
      a = b;
    }
    if (k == 1 && !e)
      window_progress(c, jb, c0, wins[0].start + wins[0].coded);
  }
  for (int i = 0; i < k && !e; i++)
    chunk_size(&ch[c0 + (uint64_t)i], bt_rc_enc_finish(&rc[i]));
  free(seqs);
  return e;
}

/* ==================================================================== */
/* Adaptive coding                                                      */
/* ==================================================================== */

/* An adaptive chunk (a segment, or the whole input in stream mode) is coded
 * on one worker, one stream, from the checkpoint's weights and an empty
 * predictor. Windows of a.window positions follow the schedule above. Each
 * byte's 8 bits go through cm.h, which mixes the transformer's probability
 * with its own models; after each window but the last, a.steps AdamW steps
 * on that window's bytes (the whole pass, prefix included) change the
 * weights the next window is coded with. The decoder decodes the window,
 * then takes the same steps on the same bytes: every training step runs
 * bt's own kernels (bt_gemm, never OpenBLAS), whose bits do not depend on
 * the thread count, the ISA path or the compiler (docs/numerics.md). */

/* Starts worker w on a new adaptive chunk: checkpoint weights, zero
 * optimizer moments, an empty predictor. */
static bt_error adapt_begin(bt_codec *c, worker_t *w, const bt_adapt *a) {
  if (!w->am) {
    bt_error e = bt_model_create(&w->am, &c->cfg);
    if (e)
      return e;
  }
  if (w->cm && w->cm_parts != a->parts) {
    bt_cm_free(w->cm);
    w->cm = NULL;
  }
  if (!w->cm) {
    bt_error e = bt_cm_create(&w->cm, a->parts);
    if (e)
      return e;
    w->cm_parts = a->parts;
  } else {
    bt_cm_reset(w->cm);
  }
  const size_t np = bt_model_num_params(c->m);
  float *am = bt_model_adam_m(w->am), *av = bt_model_adam_v(w->am);
  if (!am || !av)
    return bt_fail(BT_ERR_NOMEM, "optimizer state");
  memcpy(bt_model_params(w->am), bt_model_params(c->m), np * sizeof(float));
  memset(am, 0, np * sizeof(float));
  memset(av, 0, np * sizeof(float));
  w->adapted = 1;
  return bt_infer_set_weights(w->inf, w->am);
}

/* The training steps after a window: seq[0..T) is the window's pass, lr
 * the window's rate (lr_decay applied). */
static bt_error adapt_learn(worker_t *w, const bt_adapt *a, const uint8_t *seq, int T, int *t, float lr) {
  if (a->steps == 0)
    return BT_OK;
  bt_gemm_backend old = bt_gemm_backend_setting();
  bt_gemm_set_backend(BT_GEMM_OWN); /* this thread only */
  bt_error e = BT_OK;
  for (int s = 0; s < a->steps && !e; s++) {
    e = bt_model_forward(w->am, seq, 1, T, NULL);
    if (!e)
      e = bt_model_backward(w->am);
    if (!e)
      bt_model_adamw(w->am, lr, a->beta1, a->beta2, a->eps, a->weight_decay, ++*t);
  }
  bt_gemm_set_backend(old);
  return e ? e : bt_infer_set_weights(w->inf, w->am);
}

static bt_error encode_adaptive(bt_codec *c, worker_t *w, const job_t *jb, uint64_t ci, int k) {
  (void)k; /* always 1 */
  const bt_adapt *a = &jb->h->adapt;
  enc_chunk_t *x = &jb->ch[ci];
  const uint8_t *in = jb->in + ci * jb->clen;
  const int W = (int)a->window;
  bt_error e = chunk_alloc(jb, ci);
  if (e)
    return e;
  e = adapt_begin(c, w, a);
  bt_bin_enc rc;
  bt_bin_enc_init(&rc, x->buf, x->len - 1);
  uint32_t freq[256];
  float qe[256];
  int t = 0;
  float lr = a->lr;
  const uint64_t nwin = n_windows(x->len, W);
  for (uint64_t j = 0; j < nwin && !e && !bt_bin_enc_overflowed(&rc); j++) {
    window_t wn = window_at(x->len, W, j);
    const uint8_t *seq = in + wn.start - wn.prefix;
    const int Tw = (int)(wn.prefix + wn.coded);
    e = bt_infer_batched(w->inf, seq, 1, Tw, w->logits);
    for (uint32_t r = wn.prefix; r < (uint32_t)Tw && !e; r++) {
      const float *row = w->logits + (size_t)r * 256;
      const int b = seq[r];
      x->logloss += bt_quantize_logits_v_loss(row, 256, freq, qe, b);
      bt_cm_begin(w->cm, freq, in, wn.start + (r - wn.prefix));
      x->coded_bits += bt_cm_encode_byte(w->cm, &rc, b);
    }
    if (!e && j + 1 < nwin)
      e = adapt_learn(w, a, seq, Tw, &t, lr);
    lr *= a->lr_decay;
    window_progress(c, jb, ci, wn.start + wn.coded);
  }
  if (!e)
    chunk_size(x, bt_bin_enc_finish(&rc));
  return e;
}

/* The mixing predictor's byte decoder (decode_window_spec). */
typedef struct {
  bt_cm *cm;
  bt_bin_dec *rc;
  const uint8_t *hist;
} cm_dec_t;

static int cm_decode_byte(void *ctx, const float *logits, uint64_t at) {
  cm_dec_t *d = ctx;
  uint32_t freq[256];
  bt_quantize_logits(logits, freq);
  bt_cm_begin(d->cm, freq, d->hist, at);
  return bt_cm_decode_byte(d->cm, d->rc);
}

static bt_error decode_adaptive(bt_codec *c, worker_t *w, const job_t *jb, uint64_t first, int k) {
  (void)k;
  const bt_container_header *h = jb->h;
  const bt_adapt *a = &h->adapt;
  const uint64_t id = jb->ids[first];
  const uint64_t len = bt_container_chunk_len(h, id);
  uint8_t *res = jb->res + id * jb->clen;
  const int W = (int)a->window;
  /* A lone stream's steps run on one thread (decode_group). Its prefills
   * run on all: the training step before each has just woken the team. */
  w->step_threads = c->nw <= 1 ? 1 : 0;
  w->prefill_threads = 0;
  w->pair = c->nw <= 1 && omp_get_max_threads() > 1;
  w->pair_cost[0] = w->pair_cost[1] = 0;
  w->pair_windows = 0;
  bt_infer_set_threads(w->inf, w->step_threads);
  bt_error e = adapt_begin(c, w, a);
  bt_bin_dec rc;
  bt_bin_dec_init(&rc, jb->in + jb->off[id], (size_t)(jb->off[id + 1] - jb->off[id]));
  int t = 0;
  float lr = a->lr;
  const uint64_t nwin = n_windows(len, W);
  cm_dec_t cd = {w->cm, &rc, res};
  if (!e)
    e = ensure_draft(c, w);
  for (uint64_t j = 0; j < nwin && !e; j++) {
    window_t wn = window_at(len, W, j);
    e = decode_window_spec(w, res, wn, cm_decode_byte, &cd);
    if (!e && j + 1 < nwin)
      e = adapt_learn(w, a, res + wn.start - wn.prefix, (int)(wn.prefix + wn.coded), &t, lr);
    lr *= a->lr_decay;
    if (!e)
      window_progress(c, jb, id, wn.start + wn.coded);
  }
  if (!e && rc.pos > rc.len + 4)
    e = bt_fail(BT_ERR_CORRUPT, "chunk %llu does not decode (reads past its end)", (unsigned long long)id);
  spec_tally(c, w);
  return e;
}

/* ==================================================================== */
/* A BPE model's chunks                                                 */
/* ==================================================================== */

/* Worker w's buffers for chunks of up to T bytes over V symbols. */
static bt_error ensure_token_bufs(worker_t *w, int T, int V) {
  if (w->tok)
    return BT_OK;
  w->tok = malloc(((size_t)T + 1) * sizeof *w->tok);
  w->freq = malloc((size_t)V * sizeof *w->freq);
  w->cum = malloc(((size_t)V + 1) * sizeof *w->cum);
  w->qscratch = malloc((size_t)V * sizeof *w->qscratch);
  if (!w->tok || !w->freq || !w->cum || !w->qscratch)
    return bt_fail(BT_ERR_NOMEM, "token buffers");
  return BT_OK;
}

/* The table of one row of logits over V symbols, in w->freq and w->cum. */
static void token_table(worker_t *w, const float *row, int V) {
  bt_quantize_logits_v(row, V, w->freq, w->qscratch);
  bt_freq_cumulative_v(w->freq, V, w->cum);
}

/* Encodes chunks [c0, c0+k) one after the other: each chunk's tokens, from
 * BOS, in passes of up to TOKEN_ROWS rows (bt_infer_extend_tokens gives the
 * rows the decoder's steps give). */
static bt_error encode_tokens(bt_codec *c, worker_t *w, const job_t *jb, uint64_t c0, int k) {
  const int V = c->cfg.vocab;
  bt_error e = ensure_token_bufs(w, c->T, V);
  for (int i = 0; i < k && !e; i++) {
    enc_chunk_t *x = &jb->ch[c0 + (uint64_t)i];
    if ((e = chunk_alloc(jb, c0 + (uint64_t)i)))
      break;
    const uint8_t *src = jb->in + (c0 + (uint64_t)i) * jb->clen;
    /* w->tok: BOS, then the chunk's tokens (row r codes w->tok[r + 1]) */
    const size_t n = bt_bpe_encode16(c->bpe, src, (size_t)x->len, w->tok + 1); /* n <= len <= T */
    w->tok[0] = BT_BOS;
    bt_rc_enc rc;
    bt_rc_enc_init(&rc, x->buf, x->len - 1);
    bt_infer_reset(w->inf, 1);
    for (size_t t0 = 0; t0 < n && !e; t0 += TOKEN_ROWS) {
      const int rows = (int)(n - t0 < TOKEN_ROWS ? n - t0 : TOKEN_ROWS);
      e = bt_infer_extend_tokens(w->inf, w->tok + t0, (size_t)rows, &rows, 1, w->logits);
      for (int r = 0; r < rows && !e; r++) {
        const float *row = w->logits + (size_t)r * V;
        const int sym = w->tok[t0 + (size_t)r + 1];
        if (bt_rc_enc_overflowed(&rc)) { /* it will be stored raw */
          x->logloss += bt_logits_logloss_bits_v(row, V, sym);
          continue;
        }
        x->logloss += bt_quantize_logits_v_loss(row, V, w->freq, w->qscratch, sym);
        bt_freq_cumulative_v(w->freq, V, w->cum);
        x->coded_bits += (double)BT_FREQ_BITS - log2((double)w->freq[sym]);
        bt_rc_encode(&rc, w->cum[sym], w->freq[sym]);
      }
    }
    if (!e)
      chunk_size(x, bt_rc_enc_finish(&rc));
  }
  return e;
}

/* Decodes coded chunks ids[0..k) one after the other: tokens until their
 * bytes fill the chunk (a token that would pass its end, or a chunk that
 * needs more positions than the context, is a damaged file). */
static bt_error decode_tokens(bt_codec *c, worker_t *w, const job_t *jb, uint64_t first, int k) {
  const int V = c->cfg.vocab;
  const uint64_t *ids = jb->ids + first;
  bt_error e = ensure_token_bufs(w, c->T, V);
  for (int i = 0; i < k && !e; i++) {
    const uint64_t id = ids[i], len = bt_container_chunk_len(jb->h, id);
    uint8_t *res = jb->res + id * jb->clen;
    bt_rc_dec rc;
    bt_rc_dec_init(&rc, jb->in + jb->off[id], (size_t)(jb->off[id + 1] - jb->off[id]));
    bt_infer_reset(w->inf, 1);
    uint64_t got = 0;
    for (int t = 0; got < len && !e; t++) {
      if (t >= c->T) {
        e = bt_fail(BT_ERR_CORRUPT, "chunk %llu does not decode (more tokens than positions)",
                    (unsigned long long)id);
        break;
      }
      const uint16_t prev = t ? w->tok[t - 1] : 0;
      if ((e = bt_infer_step_tokens(w->inf, t ? &prev : NULL, 1, w->logits)))
        break;
      token_table(w, w->logits, V);
      const int sym = bt_freq_find(w->cum, V, bt_rc_decode_target(&rc));
      bt_rc_decode_update(&rc, w->cum[sym], w->freq[sym]);
      w->tok[t] = (uint16_t)sym;
      const uint8_t *bytes;
      const size_t nb = bt_bpe_token(c->bpe, (uint32_t)sym, &bytes);
      if (nb > len - got) {
        e = bt_fail(BT_ERR_CORRUPT, "chunk %llu does not decode (a token past its end)", (unsigned long long)id);
        break;
      }
      memcpy(res + got, bytes, nb);
      got += nb;
    }
    if (!e && bt_rc_dec_corrupt(&rc))
      e = bt_fail(BT_ERR_CORRUPT, "chunk %llu does not decode", (unsigned long long)id);
  }
  return e;
}

static bt_error compress_run(bt_codec *c, const uint8_t *in, size_t n, uint32_t chunk, uint8_t *out,
                             size_t *out_len, bt_codec_stats *st, bt_progress_fn fn, void *user) {
  double t0 = bt_now_s();
  const int stream = chunk == 0;
  const int W = c->cfg.ctx;
  if ((uint64_t)n > BT_CONTAINER_MAX_ORIG || (stream && n > 0xFFFFFFFFull))
    return bt_fail(BT_ERR_ARG, "input of %zu bytes is too large for one container%s", n,
                   stream ? " in stream mode (use --chunk)" : "");
  if (c->bpe && (stream || chunk > (uint32_t)W || c->adaptive))
    return bt_fail(BT_ERR_ARG, "a model of %d BPE tokens codes chunks of at most its context (%d bytes), "
                   "without adaptation: give --chunk N with N <= %d", c->cfg.vocab, W, W);
  const uint64_t clen = stream ? (uint64_t)n : chunk;
  const uint64_t nch = bt_container_n_chunks(n, chunk, stream);
  bt_container_header h;
  memset(&h, 0, sizeof h);
  memcpy(h.ckpt_sha256, c->sha, 32);
  h.n_layer = c->cfg.n_layer;
  h.n_head = c->cfg.n_head;
  h.d_model = c->cfg.d_model;
  h.ctx = (uint32_t)W;
  h.chunk = chunk;
  h.stream = stream;
  h.orig_size = n;
  h.orig_crc = bt_crc32(0, in, n);
  h.n_chunks = nch;
  h.version = BT_CONTAINER_VERSION;
  memcpy(h.model_name, c->name, sizeof h.model_name);
  h.adaptive = c->adaptive;
  h.kv8 = bt_codec_kv8_for(c, c->adaptive);
  if (c->adaptive)
    h.adapt = c->adapt;
  const int Wp = c->adaptive ? (int)c->adapt.window : W; /* positions per pass */
  enc_chunk_t *ch = calloc(nch ? nch : 1, sizeof *ch);
  uint32_t *sizes = calloc(nch ? nch : 1, sizeof *sizes);
  bt_error e = !ch || !sizes ? bt_fail(BT_ERR_NOMEM, "chunk table") : BT_OK;
  const int T = (int)(clen < (uint64_t)Wp ? (clen ? clen : 1) : (uint64_t)Wp);
  uint64_t lo = 0, hi = nch; /* this process's chunks */
  if (c->enc.nparts > 1)
    bt_share_range(nch, c->enc.part, c->enc.nparts, &lo, &hi);
  const int kv = h.kv8 ? BT_KV_INT8_WIDE : BT_KV_BF16; /* passes of many rows */
  if (!e && hi > lo)
    e = ensure_workers(c, T, hi - lo, c->adaptive || c->bpe != NULL, kv);
  if (!e)
    workers_kv8(c, kv);
  if (!e && hi > lo) {
    job_t jb = {.run = c->bpe ? encode_tokens : c->adaptive ? encode_adaptive : encode_group, .count = hi - lo, .total = n, .clen = clen, .fn = fn, .user = user,
                .all = n, .h = &h, .in = in, .ch = ch, .first = lo};
    e = run_groups(c, &jb);
  }
  if (c->enc.nparts > 1 && ch) {
    bt_error x = c->exchange(c->enc.user, ch, nch, e);
    if (!e)
      e = x;
    if (!e && c->enc.part != 0) { /* process 0 writes the container */
      for (uint64_t i = 0; i < nch; i++)
        free(ch[i].buf);
      free(ch);
      free(sizes);
      *out_len = 0;
      if (st)
        memset(st, 0, sizeof *st);
      return BT_OK;
    }
  }
  bt_codec_stats s;
  memset(&s, 0, sizeof s);
  size_t pos = bt_container_header_size(nch);
  for (uint64_t i = 0; i < nch && !e; i++) { /* payloads in chunk order */
    const uint8_t *src = ch[i].size == ch[i].len ? in + i * clen : ch[i].buf;
    memcpy(out + pos, src, ch[i].size);
    sizes[i] = (uint32_t)ch[i].size;
    pos += ch[i].size;
    s.logloss_bits += ch[i].logloss;
    if (ch[i].size == ch[i].len) {
      s.stored_chunks++;
      s.coded_bits += 8.0 * (double)ch[i].len;
    } else {
      s.coded_bits += ch[i].coded_bits;
    }
  }
  if (!e)
    e = bt_container_write_header(out, &h, sizes);
  for (uint64_t i = 0; ch && i < nch; i++)
    free(ch[i].buf);
  free(ch);
  free(sizes);
  if (e)
    return e;
  if (fn)
    fn(user, n, n);
  s.raw_bytes = n;
  s.n_chunks = nch;
  *out_len = pos;
  s.out_bytes = pos;
  s.seconds = bt_now_s() - t0;
  if (st)
    *st = s;
  return BT_OK;
}

/* ==================================================================== */
/* Decompression                                                        */
/* ==================================================================== */

/* The range coder's byte decoder (decode_window_spec). */
static int rc_decode_byte(void *ctx, const float *logits, uint64_t at) {
  (void)at;
  uint32_t freq[256], cum[257];
  bt_quantize_logits(logits, freq);
  bt_freq_cumulative(freq, cum);
  return bt_rc_decode(ctx, cum);
}

/* A lone coded chunk (stream mode, or an input of one chunk): multi-row. */
static bt_error decode_lone(bt_codec *c, worker_t *w, const job_t *jb, uint64_t id) {
  const uint64_t len = bt_container_chunk_len(jb->h, id);
  uint8_t *res = jb->res + id * jb->clen;
  const int W = c->cfg.ctx;
  bt_rc_dec rc;
  bt_rc_dec_init(&rc, jb->in + jb->off[id], (size_t)(jb->off[id + 1] - jb->off[id]));
  bt_error e = ensure_draft(c, w);
  const uint64_t nwin = n_windows(len, W);
  for (uint64_t j = 0; j < nwin && !e; j++) {
    const window_t wn = window_at(len, W, j);
    e = decode_window_spec(w, res, wn, rc_decode_byte, &rc);
    if (!e)
      window_progress(c, jb, id, wn.start + wn.coded);
  }
  if (!e && bt_rc_dec_corrupt(&rc))
    e = bt_fail(BT_ERR_CORRUPT, "chunk %llu does not decode", (unsigned long long)id);
  spec_tally(c, w);
  return e;
}

/* Decodes coded chunks ids[0..k) in lockstep on worker w into res. Only the
 * input's last chunk can be shorter and it comes last, so the active streams
 * are always 0..a-1. */
static bt_error decode_group(bt_codec *c, worker_t *w, const job_t *jb, uint64_t first, int k) {
  const bt_container_header *h = jb->h;
  const uint8_t *in = jb->in;
  const uint64_t *off = jb->off, *ids = jb->ids + first, clen = jb->clen;
  uint8_t *res = jb->res;
  const int W = c->cfg.ctx, P = W / 2;
  bt_rc_dec rc[MAX_STREAMS];
  uint64_t lens[MAX_STREAMS];
  uint8_t tok[MAX_STREAMS];
  int plen[MAX_STREAMS];
  uint8_t *prefix = malloc((size_t)k * (P + 1));
  if (!prefix)
    return bt_fail(BT_ERR_NOMEM, "prefix buffer");
  /* A lone stream (stream mode) decodes on this thread: its steps are too
   * small for a parallel region each, and a prefill split into ~50 parallel
   * stages between 1024 serial steps waits on a sleeping second thread at
   * each one, which ran ten times slower than one thread
   * (docs/measurements.md). Where there is a second thread, the steps may run paired
   * instead (decode_window_spec), with the prefill on all threads. */
  bt_infer_set_threads(w->inf, c->nw <= 1 && k == 1 ? 1 : 0);
  w->step_threads = w->prefill_threads = c->nw <= 1 && k == 1 ? 1 : 0;
  w->pair = c->nw <= 1 && k == 1 && omp_get_max_threads() > 1;
  w->pair_cost[0] = w->pair_cost[1] = 0;
  w->pair_windows = 0;
  if (k == 1 && (spec_rows(&c->cfg) > 1 || w->pair)) {
    free(prefix);
    return decode_lone(c, w, jb, ids[0]);
  }
  bt_error e = BT_OK;
  for (int i = 0; i < k; i++) {
    lens[i] = bt_container_chunk_len(h, ids[i]);
    bt_rc_dec_init(&rc[i], in + off[ids[i]], (size_t)(off[ids[i] + 1] - off[ids[i]]));
  }
  uint32_t freq[256], cum[257];
  uint64_t maxw = n_windows(lens[0], W);
  for (uint64_t j = 0; j < maxw && !e; j++) {
    int act = 0;
    while (act < k && j < n_windows(lens[act], W))
      act++;
    window_t w0 = window_at(lens[0], W, j);
    if (j == 0)
      bt_infer_reset(w->inf, act);
    for (int i = 0; i < act && j > 0; i++) {
      memcpy(prefix + (size_t)i * (P + 1), res + ids[i] * clen + w0.start - w0.prefix, w0.prefix);
      plen[i] = (int)w0.prefix;
    }
    for (uint32_t t = 0; t < w0.coded && !e; t++) {
      int a = act;
      while (a > 0 && window_at(lens[a - 1], W, j).coded <= t)
        a--;
      if (j > 0 && t == 0)
        e = bt_infer_prefill(w->inf, prefix, (size_t)(P + 1), plen, a, w->logits);
      else
        e = bt_infer_step(w->inf, t == 0 ? NULL : tok, a, w->logits);
      for (int i = 0; i < a && !e; i++) {
        bt_quantize_logits(w->logits + (size_t)i * 256, freq);
        bt_freq_cumulative(freq, cum);
        int sym = bt_rc_decode(&rc[i], cum);
        res[ids[i] * clen + w0.start + t] = (uint8_t)sym;
        tok[i] = (uint8_t)sym;
      }
    }
    if (k == 1 && !e)
      window_progress(c, jb, ids[0], w0.start + w0.coded);
  }
  for (int i = 0; i < k && !e; i++)
    if (bt_rc_dec_corrupt(&rc[i]))
      e = bt_fail(BT_ERR_CORRUPT, "chunk %llu does not decode", (unsigned long long)ids[i]);
  free(prefix);
  return e;
}

/* The member's model must be this codec's. */
static bt_error check_model(const bt_codec *c, const bt_container_header *h, uint64_t member) {
  if (memcmp(h->ckpt_sha256, c->sha, 32) == 0 && h->n_layer == c->cfg.n_layer &&
      h->n_head == c->cfg.n_head && h->d_model == c->cfg.d_model && h->ctx == (uint32_t)c->cfg.ctx)
    return BT_OK;
  char want[65], where[48] = "";
  bt_sha256_hex(h->ckpt_sha256, want);
  if (member)
    snprintf(where, sizeof where, "member %llu ", (unsigned long long)member + 1);
  char named[BT_MODEL_NAME_MAX + 16] = "";
  if (h->model_name[0])
    snprintf(named, sizeof named, "model %s, ", h->model_name);
  return bt_fail(BT_ERR_MISMATCH,
                 "%scompressed with another checkpoint: %sweights sha256 %s (%d layers, dim %d, %d heads, ctx %u); "
                 "give that checkpoint with --ckpt",
                 where, named, want, h->n_layer, h->d_model, h->n_head, h->ctx);
}

/* Decodes one member (header h, payload offsets off, relative to in) into
 * res[0 .. h->orig_size). */
static bt_error decode_member(bt_codec *c, const uint8_t *in, const bt_container_header *h,
                              const uint64_t *off, uint8_t *res, uint64_t *stored_out,
                              const job_t *proto) {
  const int W = c->cfg.ctx;
  const uint64_t clen = h->stream ? h->orig_size : h->chunk;
  uint64_t *ids = malloc((h->n_chunks ? h->n_chunks : 1) * sizeof *ids), ncoded = 0, stored = 0;
  if (!ids)
    return bt_fail(BT_ERR_NOMEM, "chunk list of %llu chunks", (unsigned long long)h->n_chunks);
  for (uint64_t i = 0; i < h->n_chunks; i++) { /* stored chunks are copied, coded ones listed */
    uint64_t cl = bt_container_chunk_len(h, i);
    if (off[i + 1] - off[i] == cl) {
      memcpy(res + i * clen, in + off[i], cl);
      stored++;
    } else {
      ids[ncoded++] = i;
    }
  }
  const int Wp = h->adaptive ? (int)h->adapt.window : W; /* positions per pass */
  const int T = (int)(clen < (uint64_t)Wp ? (clen ? clen : 1) : (uint64_t)Wp);
  bt_error e = BT_OK;
  uint64_t lo = 0, hi = ncoded; /* this process's coded chunks */
  const int shared = c->dec.nparts > 1;
  if (shared)
    bt_share_range(ncoded, c->dec.part, c->dec.nparts, &lo, &hi);
  if (c->bpe && (h->stream || h->adaptive || clen > (uint64_t)W))
    e = bt_fail(BT_ERR_CORRUPT, "a BPE model's member in %s mode: no bt writes that",
                h->stream ? "stream" : h->adaptive ? "adaptive" : "long-chunk");
  const int kv = h->kv8 ? BT_KV_INT8 : BT_KV_BF16; /* one row a stream: fewer bytes */
  if (!e && hi > lo)
    e = ensure_workers(c, T, hi - lo, h->adaptive || c->bpe != NULL, kv);
  if (!e)
    workers_kv8(c, kv);
  if (!e && hi > lo) {
    job_t jb = *proto;
    jb.run = c->bpe ? decode_tokens : h->adaptive ? decode_adaptive : decode_group;
    jb.count = hi - lo;
    jb.total = h->orig_size;
    jb.clen = clen;
    jb.h = h;
    jb.in = in;
    jb.off = off;
    jb.ids = ids + lo;
    jb.res = res;
    e = run_groups(c, &jb);
  }
  if (shared) {
    bt_span *sp = calloc(ncoded ? ncoded : 1, sizeof *sp);
    if (!sp && !e)
      e = bt_fail(BT_ERR_NOMEM, "span list");
    for (uint64_t i = 0; sp && i < ncoded; i++)
      sp[i] = (bt_span){ids[i] * clen, bt_container_chunk_len(h, ids[i])};
    /* with no span list (e set) the spans are not read */
    e = c->dexchange(c->dec.user, 0, res, sp, ncoded, e);
    free(sp);
  }
  free(ids);
  bt_error crc = BT_OK;
  if (!e && c->dec.part == 0 && bt_crc32(0, res, h->orig_size) != h->orig_crc)
    crc = bt_fail(BT_ERR_CHECKSUM, "decoded data does not match its CRC-32 (damaged file?)");
  if (!e)
    e = shared ? c->dexchange(c->dec.user, 1, NULL, NULL, 0, crc) : crc;
  *stored_out += stored;
  return e;
}

/* The default --max-size rule: what a member may declare for its length. */
static uint64_t default_limit(uint64_t member_len) {
  return BT_DEFAULT_MAX_RATIO * member_len + BT_DEFAULT_MAX_BASE;
}

typedef struct {
  bt_container_header h;
  uint64_t *off;
  size_t at, len; /* the member is in[at .. at+len) */
} member_t;

static bt_error decompress_run(bt_codec *c, const uint8_t *in, size_t len, uint8_t **out, size_t *n,
                               bt_codec_stats *st, bt_progress_fn fn, void *user) {
  double t0 = bt_now_s();
  *out = NULL;
  *n = 0;
  /* Pass 1: every member's header, model and claimed size, before a byte
   * of output is allocated or decoded. */
  member_t *mb = NULL;
  uint64_t nm = 0, cap = 0, total = 0, chunks = 0;
  bt_error e = BT_OK;
  for (size_t pos = 0; !e && (pos < len || nm == 0);) {
    if (nm == cap) {
      uint64_t nc = cap ? 2 * cap : 4;
      member_t *q = realloc(mb, nc * sizeof *mb);
      if (!q) {
        e = bt_fail(BT_ERR_NOMEM, "member list");
        break;
      }
      mb = q;
      cap = nc;
    }
    member_t *m = &mb[nm];
    if (nm > 0 && (len - pos < 4 || memcmp(in + pos, BT_CONTAINER_MAGIC, 4) != 0)) {
      e = bt_fail(BT_ERR_CORRUPT, "%zu bytes of trailing garbage after member %llu", len - pos,
                  (unsigned long long)nm);
      break;
    }
    e = bt_container_parse_member(in + pos, len - pos, &m->h, &m->off, &m->len);
    if (e) {
      if (nm > 0) /* say which member: the first is the whole file for most */
        e = bt_fail(e, "member %llu (at byte %zu): %s", (unsigned long long)nm + 1, pos, bt_error_detail());
      break;
    }
    m->at = pos;
    nm++;
    pos += m->len;
    if ((e = check_model(c, &m->h, nm - 1)))
      break;
    if (m->h.orig_size > MAX_EXPANSION * ((uint64_t)m->len + 1)) {
      e = bt_fail(BT_ERR_CORRUPT, "header claims %llu bytes from %zu: impossible for this coder",
                  (unsigned long long)m->h.orig_size, m->len);
      break;
    }
    if (c->max_size == 0 && m->h.orig_size > default_limit(m->len)) {
      e = bt_fail(BT_ERR_LIMIT,
                  "member %llu declares %llu bytes from %zu, more than the default limit of %llu "
                  "(%llu x its size + %llu); decoding costs time in proportion to the declared size: "
                  "give --max-size SIZE or -f if the file is trusted",
                  (unsigned long long)nm, (unsigned long long)m->h.orig_size, m->len,
                  (unsigned long long)default_limit(m->len), (unsigned long long)BT_DEFAULT_MAX_RATIO,
                  (unsigned long long)BT_DEFAULT_MAX_BASE);
      break;
    }
    total += m->h.orig_size; /* each < 2^48 and at most MAX_EXPANSION x len: no overflow */
    chunks += m->h.n_chunks;
    if (c->max_size != 0 && total > c->max_size) {
      e = bt_fail(BT_ERR_LIMIT, "declares %llu bytes or more, above the limit of %llu (--max-size)",
                  (unsigned long long)total, (unsigned long long)c->max_size);
      break;
    }
    if (total > SIZE_MAX - 1) {
      e = bt_fail(BT_ERR_NOMEM, "output of %llu bytes", (unsigned long long)total);
      break;
    }
  }
  uint8_t *res = NULL;
  uint64_t stored = 0;
  if (!e) {
    res = malloc(total ? (size_t)total : 1);
    if (!res)
      e = bt_fail(BT_ERR_NOMEM, "output of %llu bytes", (unsigned long long)total);
  }
  /* Pass 2: decode the members in order into one buffer. */
  c->spec_passes = c->spec_bytes = 0;
  job_t proto = {.fn = fn, .user = user, .all = total};
  for (uint64_t i = 0, base = 0; !e && i < nm; i++) {
    proto.base = base;
    e = decode_member(c, in + mb[i].at, &mb[i].h, mb[i].off, res + base, &stored, &proto);
    if (e && nm > 1)
      e = bt_fail(e, "member %llu: %s", (unsigned long long)i + 1, bt_error_detail());
    base += mb[i].h.orig_size;
  }
  for (uint64_t i = 0; i < nm; i++)
    free(mb[i].off);
  free(mb);
  if (e) {
    free(res);
    return e;
  }
  if (fn)
    fn(user, total, total);
  bt_codec_stats s;
  memset(&s, 0, sizeof s);
  s.raw_bytes = total;
  s.out_bytes = len;
  s.n_chunks = chunks;
  s.n_members = nm;
  s.stored_chunks = stored;
  s.spec_passes = c->spec_passes;
  s.spec_bytes = c->spec_bytes;
  s.seconds = bt_now_s() - t0;
  if (st)
    *st = s;
  *out = res;
  *n = (size_t)total;
  return BT_OK;
}

/* ==================================================================== */
/* The public calls: threads as the codec says, then the run            */
/* ==================================================================== */

bt_error bt_compress(bt_codec *c, const uint8_t *in, size_t n, uint32_t chunk, uint8_t *out,
                     size_t *out_len, bt_codec_stats *st, bt_progress_fn fn, void *user) {
  int saved[2];
  if (c->threads) {
    bt_threads_save(saved);
    bt_set_threads(c->threads);
  }
  bt_error e = compress_run(c, in, n, chunk, out, out_len, st, fn, user);
  if (c->threads)
    bt_threads_restore(saved);
  return e;
}

bt_error bt_decompress(bt_codec *c, const uint8_t *in, size_t len, uint8_t **out, size_t *n,
                       bt_codec_stats *st, bt_progress_fn fn, void *user) {
  int saved[2];
  if (c->threads) {
    bt_threads_save(saved);
    bt_set_threads(c->threads);
  }
  bt_error e = decompress_run(c, in, len, out, n, st, fn, user);
  if (c->threads)
    bt_threads_restore(saved);
  return e;
}

/* All of f, malloc'd. */
static bt_error read_stream(FILE *f, uint8_t **buf, size_t *n) {
  size_t cap = 1 << 16, len = 0;
  uint8_t *p = malloc(cap);
  if (!p)
    return bt_fail(BT_ERR_NOMEM, "input buffer");
  for (;;) {
    if (len == cap) {
      uint8_t *q = cap > SIZE_MAX / 2 ? NULL : realloc(p, cap * 2);
      if (!q) {
        free(p);
        return bt_fail(BT_ERR_NOMEM, "input buffer of %zu bytes", cap * 2);
      }
      p = q;
      cap *= 2;
    }
    size_t k = fread(p + len, 1, cap - len, f);
    len += k;
    if (k == 0) {
      if (ferror(f)) {
        free(p);
        return bt_fail(BT_ERR_IO, "read error on the input stream");
      }
      break;
    }
  }
  *buf = p;
  *n = len;
  return BT_OK;
}

static bt_error write_stream(FILE *f, const uint8_t *p, size_t n) {
  if ((n && fwrite(p, 1, n, f) != n) || fflush(f) != 0)
    return bt_fail(BT_ERR_IO, "write error on the output stream");
  return BT_OK;
}

bt_error bt_compress_stream(bt_codec *c, FILE *in, FILE *out, uint32_t chunk, bt_codec_stats *st,
                            bt_progress_fn fn, void *user) {
  uint8_t *src, *dst = NULL;
  size_t n, len = 0;
  bt_error e = read_stream(in, &src, &n);
  if (e)
    return e;
  const size_t cap = bt_compress_bound(n, chunk);
  if (!(dst = malloc(cap ? cap : 1)))
    e = bt_fail(BT_ERR_NOMEM, "output buffer of %zu bytes", cap);
  if (!e)
    e = bt_compress(c, src, n, chunk, dst, &len, st, fn, user);
  if (!e)
    e = write_stream(out, dst, len);
  free(src);
  free(dst);
  return e;
}

bt_error bt_decompress_stream(bt_codec *c, FILE *in, FILE *out, bt_codec_stats *st, bt_progress_fn fn,
                              void *user) {
  uint8_t *src, *dst = NULL;
  size_t n, len = 0;
  bt_error e = read_stream(in, &src, &n);
  if (e)
    return e;
  e = bt_decompress(c, src, n, &dst, &len, st, fn, user);
  if (!e)
    e = write_stream(out, dst, len);
  free(src);
  free(dst);
  return e;
}
