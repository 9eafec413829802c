/*
 * bt-sample - a compressor as a generative model (the paper's §3.4).
 *
 *   bt-sample --compressor gzip --bytes 100 --seed 1 prompt.txt > out
 *   bt-sample --compressor checkpoints/bt-800K.h5 --temperature 0.8 prompt.txt
 *
 * Any compressor C defines a predictive model of the next byte b after the
 * bytes x, rho(b | x) = 2^-(len C(x.b) - len C(x)) / Z, its lengths in bits:
 * the classical ones (gzip, lzma2, zstd, bzip2, as bt-eval runs them) are
 * sampled that way, compressing x.b for all 256 bytes b at every step. A bt
 * model is sampled from its own distribution (what its coder turns into
 * lengths); a BPE model (bt-train --tokenizer) draws tokens, whose bytes are
 * the samples. Temperature divides the log-probabilities; top-k keeps the k
 * likeliest bytes. The continuation alone goes to stdout; the same seed
 * gives the same bytes on every machine (the model's logits are
 * bit-portable, the sampler is integer-seeded double arithmetic).
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/bpe.h"
#include "infer/infer.h"
#include "tools/cli.h"
#include "tools/baselines.h"
#include "train/ckpt.h"

static const char *SYNOPSIS = "--compressor gzip|lzma2|zstd|bzip2|CKPT.h5 [options] PROMPT_FILE";

static void usage(void) {
  printf("usage: bt-sample %s\n"
         "Continues PROMPT_FILE ('-': stdin) with bytes sampled from a compressor\n"
         "used as a generative model, rho(b|x) ~ 2^-(len C(x.b) - len C(x)) (classical\n"
         "compressors), or from a bt model's own distribution (a checkpoint).\n"
         "\n"
         "  --compressor C    gzip, lzma2, zstd, bzip2, or a bt checkpoint (.h5)\n"
         "  --bytes N         bytes to sample (default 100)\n"
         "  --seed S          sampler seed (default 1)\n"
         "  --temperature T   divides the log-probabilities (default 1; 0 = greedy)\n"
         "  --top-k K         sample among the K likeliest bytes (tokens) only (default 0 = all)\n"
         "  --context N       bytes of the prompt and samples the compressor sees (default\n"
         "                    2048: the paper's chunk; a bt model sees its context)\n"
         "  --dist            also print each step's distribution on stderr, one\n"
         "                    line of 256 probabilities (V for a BPE model; for tests)\n"
         "  -h, --help        this help\n",
         SYNOPSIS);
}

/* splitmix64: the sampler's uniform doubles in [0, 1). */
static double uniform(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return (double)(z >> 11) * 0x1p-53;
}

/* Symbol order of a draw: log-probability descending, ties by the smaller
 * symbol (a total order, so any sort gives it). */
static const double *g_lp;
static int by_lp(const void *a, const void *b) {
  const int x = *(const int *)a, y = *(const int *)b;
  if (g_lp[x] != g_lp[y])
    return g_lp[x] < g_lp[y] ? 1 : -1;
  return (x > y) - (x < y);
}

/* Draws one of V symbols (bytes, or a BPE model's tokens) from
 * log-probabilities lp (natural log, up to a constant), with temperature and
 * top-k; p gets the normalised probabilities, order is V ints of scratch. */
static int draw_p(const double *lp, int V, double temp, int topk, uint64_t *rng, double *p, int *order) {
  for (int i = 0; i < V; i++)
    order[i] = i;
  g_lp = lp;
  qsort(order, (size_t)V, sizeof *order, by_lp);
  const int k = topk > 0 && topk < V ? topk : V;
  if (temp <= 0) {
    for (int i = 0; i < V; i++)
      p[i] = i == order[0];
    return order[0];
  }
  double z = 0;
  for (int i = 0; i < V; i++)
    p[i] = 0;
  for (int i = 0; i < k; i++) {
    p[order[i]] = exp((lp[order[i]] - lp[order[0]]) / temp);
    z += p[order[i]];
  }
  for (int i = 0; i < V; i++)
    p[i] /= z;
  double u = uniform(rng), c = 0;
  for (int i = 0; i < k; i++) {
    c += p[order[i]];
    if (u < c)
      return order[i];
  }
  return order[k - 1];
}

/* draw_p's scratch for V symbols, allocated once a run. */
typedef struct {
  double *p;
  int *order;
  int V;
} drawer;

static drawer drawer_new(int V) {
  drawer d = {malloc((size_t)V * sizeof *d.p), malloc((size_t)V * sizeof *d.order), V};
  if (!d.p || !d.order)
    bt_die("out of memory");
  return d;
}

static void drawer_free(drawer *d) {
  free(d->p);
  free(d->order);
}

/* draw_p; with dist, prints the normalised probabilities on stderr as one
 * line (--dist). */
static int draw(drawer *d, const double *lp, double temp, int topk, uint64_t *rng, int dist) {
  const int b = draw_p(lp, d->V, temp, topk, rng, d->p, d->order);
  if (dist)
    for (int i = 0; i < d->V; i++)
      fprintf(stderr, "%.17g%c", d->p[i], i == d->V - 1 ? '\n' : ' ');
  return b;
}

/* A bt model: symbols drawn from the model's own distribution, bytes for a
 * byte model, tokens for a BPE model (the prompt tokenized, and each token's
 * bytes the samples, the last token's cut at nbytes). The model sees BOS and
 * the last W - 1 symbols at most; when its context fills, it restarts on the
 * last W / 2 (as the coder's windows do). */
static void sample_model(bt_model *m, const uint8_t *prompt, size_t np, uint64_t nbytes, double temp,
                         int topk, uint64_t *rng, int dist, uint8_t *out) {
  size_t tn;
  const uint8_t *img = bt_model_tokenizer(m, &tn);
  bt_bpe *bpe = NULL;
  bt_error e = img ? bt_bpe_parse(&bpe, img, tn) : BT_OK;
  if (e)
    bt_die("its tokenizer: %s", bt_error_detail());
  const int V = bt_model_config(m)->vocab, W = bt_model_config(m)->ctx;
  /* the history: the prompt's symbols, then at most one per sampled byte */
  uint16_t *h = malloc((np + nbytes + 1) * sizeof *h);
  float *logits = malloc((size_t)V * sizeof *logits);
  double *lp = malloc((size_t)V * sizeof *lp);
  if (!h || !logits || !lp)
    bt_die("out of memory");
  drawer d = drawer_new(V);
  size_t n = np;
  if (bpe)
    n = bt_bpe_encode16(bpe, prompt, np, h);
  else
    for (size_t i = 0; i < np; i++)
      h[i] = prompt[i];
  bt_infer *inf = NULL;
  if ((e = bt_infer_create(&inf, m, 1, W)))
    bt_die("%s", bt_error_detail());
  int pos = 0;
  for (uint64_t got = 0, step = 0; got < nbytes; step++) {
    if (step == 0 || pos >= W) {
      int keep = (int)(n < (size_t)(step == 0 ? W - 1 : W / 2) ? n : (size_t)(step == 0 ? W - 1 : W / 2));
      if ((e = bt_infer_prefill_tokens(inf, h + n - keep, (size_t)keep, &keep, 1, logits)))
        bt_die("%s", bt_error_detail());
      pos = keep + 1;
    } else {
      if ((e = bt_infer_step_tokens(inf, h + n - 1, 1, logits)))
        bt_die("%s", bt_error_detail());
      pos++;
    }
    for (int v = 0; v < V; v++)
      lp[v] = logits[v];
    const int t = draw(&d, lp, temp, topk, rng, dist);
    h[n++] = (uint16_t)t;
    const uint8_t byte = (uint8_t)t, *bytes = &byte;
    size_t len = bpe ? bt_bpe_token(bpe, (uint32_t)t, &bytes) : 1;
    if (len > nbytes - got)
      len = (size_t)(nbytes - got);
    memcpy(out + got, bytes, len);
    got += len;
  }
  bt_infer_free(inf);
  bt_bpe_free(bpe);
  drawer_free(&d);
  free(h);
  free(logits);
  free(lp);
}

static int is_checkpoint(const char *s) {
  size_t n = strlen(s);
  return n > 3 && strcmp(s + n - 3, ".h5") == 0;
}

int main(int argc, char **argv) {
  bt_cli_init("bt-sample", SYNOPSIS);
  if (bt_cli_wants_help(argc, argv)) {
    usage();
    return 0;
  }
  bt_cli_apply_isa();
  enum { O_COMP = 256, O_BYTES, O_SEED, O_TEMP, O_TOPK, O_CTX, O_DIST };
  static const struct option lo[] = {
      {"compressor", 1, 0, O_COMP}, {"bytes", 1, 0, O_BYTES}, {"seed", 1, 0, O_SEED},
      {"temperature", 1, 0, O_TEMP}, {"top-k", 1, 0, O_TOPK}, {"context", 1, 0, O_CTX},
      {"dist", 0, 0, O_DIST}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  const char *comp = NULL;
  uint64_t nbytes = 100, seed = 1, topk = 0, ctxlen = 2048;
  double temp = 1.0;
  int dist = 0, c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
    switch (c) {
    case O_COMP: comp = optarg; break;
    case O_BYTES:
      if (bt_parse_size(optarg, &nbytes) || nbytes > (1u << 24))
        bt_usage_error("invalid value for --bytes: '%s'", optarg);
      break;
    case O_SEED:
      if (bt_parse_size(optarg, &seed))
        bt_usage_error("invalid value for --seed: '%s'", optarg);
      break;
    case O_TEMP:
      if (bt_parse_real(optarg, 0, 100, &temp))
        bt_usage_error("invalid value for --temperature: '%s' (0..100)", optarg);
      break;
    case O_TOPK:
      if (bt_parse_size(optarg, &topk) || topk > BT_MAX_VOCAB)
        bt_usage_error("invalid value for --top-k: '%s' (0..%d)", optarg, BT_MAX_VOCAB);
      break;
    case O_CTX:
      if (bt_parse_size(optarg, &ctxlen) || ctxlen < 1 || ctxlen > (1u << 24))
        bt_usage_error("invalid value for --context: '%s'", optarg);
      break;
    case O_DIST: dist = 1; break;
    case 'h': usage(); return 0;
    case ':': bt_usage_error("option %s needs a value", argv[optind - 1]);
    default: bt_usage_error("unknown option '%s'", argv[optind - 1]);
    }
  }
  if (!comp)
    bt_usage_error("give --compressor");
  if (optind != argc - 1)
    bt_usage_error(optind >= argc ? "no PROMPT_FILE given" : "more than one PROMPT_FILE given");
  size_t np = 0;
  uint8_t *prompt = bt_cli_read_all(argv[optind], &np);
  bt_error e;
  /* The history: the prompt, then the samples. */
  uint8_t *x = malloc(np + nbytes + 1);
  if (!x)
    bt_die("out of memory");
  memcpy(x, prompt, np);
  free(prompt);
  size_t n = np;
  uint64_t rng = seed;
  double lp[256];
  uint8_t *out = malloc(nbytes + 1);
  if (!out)
    bt_die("out of memory");

  if (is_checkpoint(comp)) {
    bt_model *m = NULL;
    if ((e = bt_ckpt_load(comp, &m, NULL)))
      bt_die("cannot load %s: %s", comp, bt_error_detail());
    sample_model(m, x, n, nbytes, temp, (int)topk, &rng, dist, out);
    bt_model_free(m);
  } else {
    bt_baseline bl;
    if (bt_baseline_parse(comp, &bl) || bl == BT_BL_PNG || bl == BT_BL_FLAC)
      bt_usage_error("unknown compressor '%s' (gzip, lzma2, zstd, bzip2 or a .h5 checkpoint)", comp);
    bt_bl_ctx *bc = NULL;
    if ((e = bt_bl_ctx_create(&bc)))
      bt_die("%s", bt_error_detail());
    uint8_t *buf = malloc(ctxlen + 1);
    if (!buf)
      bt_die("out of memory");
    drawer d = drawer_new(256);
    for (uint64_t i = 0; i < nbytes; i++) {
      /* The last ctxlen - 1 bytes, then each candidate byte. */
      const size_t h = n < ctxlen - 1 ? n : ctxlen - 1;
      memcpy(buf, x + n - h, h);
      size_t base = 0, len;
      if (h && (e = bt_baseline_compress(bc, bl, buf, h, &base, NULL)))
        bt_die("%s: %s", comp, bt_error_detail());
      for (int b = 0; b < 256; b++) {
        buf[h] = (uint8_t)b;
        if ((e = bt_baseline_compress(bc, bl, buf, h + 1, &len, NULL)))
          bt_die("%s: %s", comp, bt_error_detail());
        /* 2^-(8 (len - base)) in natural log */
        lp[b] = -8.0 * ((double)len - (double)base) * log(2.0);
      }
      out[i] = x[n++] = (uint8_t)draw(&d, lp, temp, (int)topk, &rng, dist);
    }
    drawer_free(&d);
    free(buf);
    bt_bl_ctx_free(bc);
  }
  if (fwrite(out, 1, nbytes, stdout) != nbytes || fflush(stdout))
    bt_die("cannot write the samples: %s", strerror(errno));
  free(out);
  free(x);
  return 0;
}
