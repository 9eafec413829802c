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
 * lengths). Temperature divides the log-probabilities; top-k keeps the k
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

#include "infer/infer.h"
#include "tools/cli.h"
#include "tools/baselines.h"
#include "train/ckpt.h"

static const char *SYNOPSIS =
    "bt-sample --compressor gzip|lzma2|zstd|bzip2|CKPT.h5 [options] PROMPT_FILE\n";

static void usage(void) {
  printf("usage: %s"
         "Continues PROMPT_FILE ('-': stdin) with bytes sampled from a compressor\n"
         "used as a generative model, rho(b|x) ~ 2^-(len C(x.b) - len C(x)) (classical\n"
         "compressors), or from a bt model's own distribution (a checkpoint).\n"
         "\n"
         "  --compressor C    gzip, lzma2, zstd, bzip2, or a bt checkpoint (.h5)\n"
         "  --bytes N         bytes to sample (default 100)\n"
         "  --seed S          sampler seed (default 1)\n"
         "  --temperature T   divides the log-probabilities (default 1; 0 = greedy)\n"
         "  --top-k K         sample among the K likeliest bytes only (default 0 = all)\n"
         "  --context N       bytes of the prompt and samples the compressor sees (default\n"
         "                    2048: the paper's chunk; a bt model sees its context)\n"
         "  --dist            also print each step's distribution on stderr, one\n"
         "                    line of 256 probabilities (for tests)\n"
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

/* Draws a byte from log-probabilities lp (natural log, up to a constant),
 * with temperature and top-k; p gets the normalised probabilities. */
static int draw_p(const double lp[256], double temp, int topk, uint64_t *rng, double p[256]) {
  int order[256];
  for (int i = 0; i < 256; i++)
    order[i] = i;
  /* Sort by lp descending, ties by byte value, for top-k and greedy. */
  for (int i = 1; i < 256; i++) {
    int v = order[i], j = i;
    while (j > 0 && (lp[order[j - 1]] < lp[v] || (lp[order[j - 1]] == lp[v] && order[j - 1] > v))) {
      order[j] = order[j - 1];
      j--;
    }
    order[j] = v;
  }
  const int k = topk > 0 && topk < 256 ? topk : 256;
  if (temp <= 0) {
    for (int i = 0; i < 256; i++)
      p[i] = i == order[0];
    return order[0];
  }
  double z = 0;
  for (int i = 0; i < 256; i++)
    p[i] = 0;
  for (int i = 0; i < k; i++) {
    p[order[i]] = exp((lp[order[i]] - lp[order[0]]) / temp);
    z += p[order[i]];
  }
  for (int i = 0; i < 256; i++)
    p[i] /= z;
  double u = uniform(rng), c = 0;
  for (int i = 0; i < k; i++) {
    c += p[order[i]];
    if (u < c)
      return order[i];
  }
  return order[k - 1];
}

/* Draws a byte from log-probabilities lp (natural log, up to a constant),
 * with temperature and top-k; with dist, prints the normalised
 * probabilities on stderr as one line (--dist). */
static int draw(const double lp[256], double temp, int topk, uint64_t *rng, int dist) {
  double p[256];
  const int b = draw_p(lp, temp, topk, rng, p);
  if (dist)
    for (int i = 0; i < 256; i++)
      fprintf(stderr, "%.17g%c", p[i], i == 255 ? '\n' : ' ');
  return b;
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
      if (bt_parse_size(optarg, &topk) || topk > 256)
        bt_usage_error("invalid value for --top-k: '%s' (0..256)", optarg);
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
    const int W = bt_model_config(m)->ctx;
    bt_infer *inf = NULL;
    if ((e = bt_infer_create(&inf, m, 1, W)))
      bt_die("%s", bt_error_detail());
    float logits[256];
    /* The model sees BOS and the last W - 1 bytes at most; when the stream
     * fills, it restarts on the last W / 2 (as the coder's windows do). */
    int pos = 0;
    for (uint64_t i = 0; i < nbytes; i++) {
      if (i == 0 || pos >= W) {
        int keep = (int)(n < (size_t)(i == 0 ? W - 1 : W / 2) ? n : (size_t)(i == 0 ? W - 1 : W / 2));
        if ((e = bt_infer_prefill(inf, x + n - keep, (size_t)keep, &keep, 1, logits)))
          bt_die("%s", bt_error_detail());
        pos = keep + 1;
      } else {
        uint8_t t = x[n - 1];
        if ((e = bt_infer_step(inf, &t, 1, logits)))
          bt_die("%s", bt_error_detail());
        pos++;
      }
      for (int b = 0; b < 256; b++)
        lp[b] = logits[b];
      out[i] = x[n++] = (uint8_t)draw(lp, temp, (int)topk, &rng, dist);
    }
    bt_infer_free(inf);
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
      out[i] = x[n++] = (uint8_t)draw(lp, temp, (int)topk, &rng, dist);
    }
    free(buf);
    bt_bl_ctx_free(bc);
  }
  if (fwrite(out, 1, nbytes, stdout) != nbytes || fflush(stdout))
    bt_die("cannot write the samples: %s", strerror(errno));
  free(out);
  free(x);
  return 0;
}
