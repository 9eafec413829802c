/*
 * bt-train - trains a byte-level transformer on a data set or any file, with
 * HDF5 checkpoints that resume bit-exactly.
 *
 *   bt-train --params 800K enwik8
 *   bt-train --layers 2 --dim 64 --heads 4 --ctx 256 --steps 1000 my.txt
 *   bt-train --resume bt-800K.h5 --steps 20000 wiki100m
 *   bt-train --params 200K --tokenizer bpe-1K.btok wiki100m   (a BPE model)
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "data/bpe.h"
#include "data/data.h"
#include "kernels/fileio.h"
#include "kernels/hash.h"
#include "tools/cli.h"
#include "kernels/kernels.h"
#include "train/ckpt.h"
#include "train/dist.h"
#include "train/gradsum.h"
#include "train/model.h"

static const char *g_prog = "bt-train";
static volatile sig_atomic_t g_stop; /* set by SIGINT / SIGTERM */

static void on_signal(int sig) { g_stop = sig; }

__attribute__((noreturn)) static void die_bt(bt_error e, const char *what) {
  const char *d = bt_error_detail();
  bt_die("%s: %s%s%s", what, bt_error_name(e), *d ? ": " : "", d);
}

/* A .btok file's image as a checkpoint stores it (malloc'd, *n bytes), and
 * its vocabulary in *vocab (if not NULL); dies on a bad file. */
static uint8_t *load_tokenizer(const char *path, size_t *n, int *vocab) {
  bt_bpe *t;
  uint8_t *img;
  bt_error e;
  if ((e = bt_bpe_load(&t, path)) || (e = bt_bpe_serialize(t, &img, n)))
    die_bt(e, "cannot load the tokenizer");
  if (vocab)
    *vocab = bt_bpe_vocab(t);
  bt_bpe_free(t);
  return img;
}

/* ==================================================================== */
/* Options                                                              */
/* ==================================================================== */

typedef struct {
  const char *preset, *data, *val, *out, *resume, *log, *tokenizer;
  int layers, dim, heads, ctx, batch, threads, quiet, verbose;
  long long steps, tokens, warmup, ctx_warmup, ctx_min, val_every, ckpt_every, log_every, val_bytes;
  double ctx_warmup_frac; /* --ctx-warmup given as a percentage of the steps */
  long long batch_warmup, batch_min; /* -1, 0: not given */
  double batch_warmup_frac;
  long long stop_at; /* --stop-at: 0, none */
  double time_budget, lr, min_lr, wd, clip, beta1, beta2, eps, val_split;
  unsigned long long seed;
  int seed_set, lr_set, optimizer_set; /* flags given explicitly */
  const char *recipe, *schedule, *optimizer, *precision;
  double decay, muon_momentum, init_scale;
} opts_t;

/* ==================================================================== */
/* Recipes: named sets of defaults for the training flags               */
/* ==================================================================== */

/* A recipe gives the defaults of the flags below; flags given explicitly
 * win. The checkpoint records the recipe's name and every value used. */
typedef struct {
  const char *name, *about;
  int schedule;           /* BT_SCHED_* */
  double lr, min_lr_frac; /* peak; floor as a fraction of the peak */
  double decay;           /* WSD: fraction of the steps that decays */
  double wd, clip;
  int batch;
  double ctx_warmup_frac; /* context warmup over this fraction of the steps (0: off) */
  int optimizer;          /* BT_OPT_* */
  int lr_dim;             /* > 0: lr is the peak at this d_model, scaled by lr_dim / d_model */
} recipe_t;

static const recipe_t g_recipes[] = {
    {"v1", "cosine from 2e-3 to 2e-4, batch 8, no context warmup (bt's recipe to 2026-12)",
     BT_SCHED_COSINE, 2e-3, 0.1, 0, 0.1, 1.0, 8, 0, BT_OPT_ADAMW, 0},
    /* docs/recipe.md: the peak lr was the lever (8e-3 on the 200K: -0.23 bpb
     * at 24M tokens against v1, two seeds each), and a wider model takes it
     * over its width (the 800K at 4e-3 beat v1 at equal tokens too) */
    {"v2", "cosine from 8e-3 x 64/d_model to a tenth of it, batch 8, context warmup over 30%",
     BT_SCHED_COSINE, 8e-3, 0.1, 0, 0.1, 1.0, 8, 0.3, BT_OPT_ADAMW, 64},
    /* docs/recipe.md: Muon on the layers' matrices, at v2's rates: -0.041 bpb
     * on the 200K at 24M tokens (two seeds each, against AdamW at lr 8e-3),
     * -0.042 on the 800K at 12M tokens */
    {"v3", "v2 with Muon on the layers' matrices (AdamW on the rest)",
     BT_SCHED_COSINE, 8e-3, 0.1, 0, 0.1, 1.0, 8, 0.3, BT_OPT_MUON, 64},
    /* docs/recipe.md: batch 4 on top of v3, twice the steps for the same
     * tokens: -0.028 bpb on the 200K at 24M tokens (two seeds each, against
     * v3's batch 8), -0.078 on the 800K at 12M tokens */
    {"v4", "v3 at batch 4 (twice the steps of v3 for the same tokens)",
     BT_SCHED_COSINE, 8e-3, 0.1, 0, 0.1, 1.0, 4, 0.3, BT_OPT_MUON, 64},
};
#define DEFAULT_RECIPE "v4"

static const recipe_t *find_recipe(const char *name) {
  for (size_t i = 0; i < sizeof g_recipes / sizeof g_recipes[0]; i++)
    if (strcmp(g_recipes[i].name, name) == 0)
      return &g_recipes[i];
  return NULL;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: bt-train [--params 200K|800K|3.2M | --layers L --dim D --heads H] [options] DATA\n"
          "       bt-train --resume CKPT.h5 [--steps N] [options] DATA\n"
          "\n"
          "DATA (or --data PATH) is enwik8, enwik9 (downloaded and verified), wiki100m or wiki-valid10m\n"
          "(from $BT_DATA/text, default ../shared/data), or a path to any file (.xz is unpacked).\n"
          "\n"
          "model:\n"
          "  --params P        preset: 200K, 800K or 3.2M (4 layers; d 64/128/256)\n"
          "  --layers/--dim/--heads N   a custom model instead of a preset\n"
          "  --ctx T           context length = training sequence length (default 2048)\n"
          "  --tokenizer TOK   a model over TOK's BPE tokens (bt-tokenize train), not bytes:\n"
          "                    the checkpoint holds TOK; --ctx, --batch and --tokens count\n"
          "                    tokens; bpb is per byte of text all the same\n"
          "training:\n"
          "  --batch B         sequences per step (default: the recipe's; v4 4, v1-v3 8;\n"
          "                    the paper used 32)\n"
          "  --steps N         total optimizer steps of the run (k/M suffixes ok; default 10000)\n"
          "  --tokens N        total training tokens instead of --steps\n"
          "  --time DUR        wall-clock budget for this invocation (e.g. 90s, 20m, 2h30m);\n"
          "                    a checkpoint is written when it runs out\n"
          "  --stop-at N       stop with a checkpoint at step N; the schedule stays the run's\n"
          "                    (--steps and --tokens set the schedule's length)\n"
          "  --recipe NAME     defaults for the flags below (default " DEFAULT_RECIPE "; --recipe list)\n"
          "  --schedule S      cosine, or wsd: warmup, a stable phase at --lr, then a linear\n"
          "                    decay to --min-lr over the last --decay F of the steps\n"
          "                    (default 0.2); a WSD run extends with --resume --tokens N\n"
          "  --lr X            peak learning rate (default: the recipe's; v1 2e-3, v2 8e-3 x 64/dim),\n"
          "                    --min-lr X (default lr/10)\n"
          "  --warmup N        linear warmup steps (default 2%% of steps, at least 50)\n"
          "  --ctx-warmup N    context-length warmup over the first N steps (or N%% of the steps;\n"
          "                    v2: 30%%):\n"
          "                    sequences start at --ctx-min bytes (default 128) and double in equal\n"
          "                    stages up to --ctx, with batch x length constant (v1: 0 = off)\n"
          "  --batch-warmup N  batch-size warmup over the first N steps (or N%% of the steps\n"
          "                    the run would take at the full batch; default 0 = off): the\n"
          "                    batch starts at --batch-min sequences (default a quarter of\n"
          "                    --batch) and doubles in equal stages up to --batch; --tokens\n"
          "                    counts the warmup's smaller steps (a new run only)\n"
          "  --wd X            AdamW weight decay on matrices (default 0.1)\n"
          "  --optimizer O     adamw, or muon: orthogonalised momentum (Newton-Schulz) on the\n"
          "                    layers' matrices, AdamW on the rest, one --lr for both;\n"
          "                    --resume --optimizer muon switches an AdamW run to Muon\n"
          "  --muon-momentum X Muon's momentum (default 0.95)\n"
          "  --precision P     fp32 (default), bf16: the training GEMMs and attention take\n"
          "                    bfloat16 inputs to their products, with fp32 accumulation,\n"
          "                    softmax and weights (CPUs with AVX512_BF16),\n"
          "                    or auto: bf16 for models of dim >= 64 where the CPU has it\n"
          "                    and runs it at >= 1.5x the FMA's FLOPs (measured, 0.1 s);\n"
          "                    recorded in the checkpoint,\n"
          "                    and a resume keeps the run's unless given\n"
          "  --clip X          clip the global gradient norm (default 1.0; 0 = off)\n"
          "  --beta1/--beta2 X AdamW betas (default 0.9, 0.95)\n"
          "  --seed S          RNG seed for init and sampling (default 1)\n"
          "  --init-scale X    the initial weights' standard deviations times X (default 1;\n"
          "                    a new run only)\n"
          "  -T, --threads N   threads (default: OMP_NUM_THREADS or all cores)\n"
          "validation:\n"
          "  --val SPEC        validation data (default: wiki-valid10m when DATA is wiki100m)\n"
          "  --val-split F     hold out the last fraction F of DATA instead\n"
          "  --val-every N     steps between validations (default 500; 0 = only at the end)\n"
          "  --val-bytes N     bytes of validation data scored (default 1M)\n"
          "                    (these and --ckpt-every, --log-every: a resume keeps the\n"
          "                    run's unless given)\n"
          "output:\n"
          "  -o, --out FILE    checkpoint path (default bt-<preset>.h5)\n"
          "  --resume FILE     continue a run from its checkpoint (config and schedule kept)\n"
          "  --ckpt-every N    steps between checkpoints (default 500)\n"
          "  --log FILE        JSON-lines log (default <out>.log.jsonl)\n"
          "  --log-every N     steps between log records (default 10)\n"
          "  -q, --quiet       no progress output;  -v, --verbose  progress lines even off a terminal\n"
          "  -V, --version     print the version;   -h, --help     this help\n");
}

/* A count in bt's one syntax (bt_parse_size: "12", "10k", "2M", "1e6"); -1 on garbage. */
static long long parse_count(const char *s) {
  uint64_t v;
  return bt_parse_size(s, &v) == 0 && v <= (uint64_t)INT64_MAX ? (long long)v : -1;
}

/* "90", "90s", "20m", "2h", "1.5h", "1d" -> seconds; -1 on garbage. */
static double parse_duration(const char *s) {
  double v;
  return bt_parse_duration(s, &v) == 0 ? v : -1;
}

static double parse_real(const char *opt, const char *s) {
  double v;
  if (bt_parse_real(s, 0, HUGE_VAL, &v) != 0)
    bt_usage_error("invalid value for %s: '%s'", opt, s);
  return v;
}

static int parse_int(const char *opt, const char *s, int lo, int hi) {
  long long v = parse_count(s);
  if (v < lo || v > hi)
    bt_usage_error("invalid value for %s: '%s' (expected %d..%d)", opt, s, lo, hi);
  return (int)v;
}

/* "N" steps or "N%" of the steps: *steps = N, or *frac = N / 100 and *steps = 0. */
static void parse_steps_or_pct(const char *opt, const char *s, long long *steps, double *frac) {
  size_t len = strlen(s);
  if (len > 1 && s[len - 1] == '%') {
    char pct[64];
    double v;
    snprintf(pct, sizeof pct, "%.*s", (int)(len - 1), s);
    if (len > sizeof pct || bt_parse_real(pct, 0, 100, &v) != 0)
      bt_usage_error("invalid value for %s: '%s' (steps, or a percentage like 20%%)", opt, s);
    *frac = v / 100;
    *steps = 0;
  } else if ((*steps = parse_count(s)) < 0) {
    bt_usage_error("invalid value for %s: '%s' (steps, or a percentage like 20%%)", opt, s);
  }
}

static void parse_args(int argc, char **argv, opts_t *o) {
  enum { O_PARAMS = 256, O_LAYERS, O_DIM, O_HEADS, O_CTX, O_BATCH, O_STEPS, O_TOKENS, O_TIME,
         O_LR, O_MINLR, O_WARMUP, O_CTXWARM, O_CTXMIN, O_WD, O_CLIP, O_B1, O_B2, O_SEED, O_VAL, O_VALSPLIT,
         O_VALEVERY, O_VALBYTES, O_RESUME, O_CKPTEVERY, O_LOG, O_LOGEVERY, O_DATA, O_RECIPE,
         O_SCHEDULE, O_DECAY, O_OPTIMIZER, O_MUONMOM, O_PRECISION, O_TOKENIZER, O_INITSCALE,
         O_BWARM, O_BMIN, O_STOPAT };
  static const struct option lo[] = {
      {"params", 1, 0, O_PARAMS}, {"layers", 1, 0, O_LAYERS}, {"dim", 1, 0, O_DIM},
      {"heads", 1, 0, O_HEADS}, {"ctx", 1, 0, O_CTX}, {"batch", 1, 0, O_BATCH},
      {"steps", 1, 0, O_STEPS}, {"tokens", 1, 0, O_TOKENS}, {"time", 1, 0, O_TIME},
      {"lr", 1, 0, O_LR}, {"min-lr", 1, 0, O_MINLR}, {"warmup", 1, 0, O_WARMUP},
      {"ctx-warmup", 1, 0, O_CTXWARM}, {"ctx-min", 1, 0, O_CTXMIN},
      {"wd", 1, 0, O_WD}, {"clip", 1, 0, O_CLIP}, {"beta1", 1, 0, O_B1}, {"beta2", 1, 0, O_B2},
      {"seed", 1, 0, O_SEED}, {"val", 1, 0, O_VAL}, {"val-split", 1, 0, O_VALSPLIT},
      {"val-every", 1, 0, O_VALEVERY}, {"val-bytes", 1, 0, O_VALBYTES},
      {"resume", 1, 0, O_RESUME}, {"ckpt-every", 1, 0, O_CKPTEVERY}, {"log", 1, 0, O_LOG},
      {"log-every", 1, 0, O_LOGEVERY}, {"data", 1, 0, O_DATA}, {"recipe", 1, 0, O_RECIPE},
      {"schedule", 1, 0, O_SCHEDULE}, {"decay", 1, 0, O_DECAY}, {"optimizer", 1, 0, O_OPTIMIZER}, {"precision", 1, 0, O_PRECISION}, {"init-scale", 1, 0, O_INITSCALE},
      {"batch-warmup", 1, 0, O_BWARM}, {"batch-min", 1, 0, O_BMIN}, {"stop-at", 1, 0, O_STOPAT},
      {"muon-momentum", 1, 0, O_MUONMOM}, {"tokenizer", 1, 0, O_TOKENIZER}, {"out", 1, 0, 'o'}, {"threads", 1, 0, 'T'},
      {"quiet", 0, 0, 'q'}, {"verbose", 0, 0, 'v'}, {"version", 0, 0, 'V'},
      {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  memset(o, 0, sizeof *o);
  o->ctx = 2048;
  o->batch = 0;  /* 0, -1: from the recipe */
  o->ctx_warmup = -1;
  o->batch_warmup = -1;
  o->decay = NAN;
  o->muon_momentum = 0.95;
  o->init_scale = NAN; /* NAN: not given (1) */
  o->steps = -1;
  o->tokens = -1;
  o->warmup = -1;
  o->ctx_min = 128;
  o->val_every = o->ckpt_every = o->log_every = o->val_bytes = -1; /* resolve_cadence */
  o->lr = o->min_lr = o->wd = o->clip = NAN; /* NAN: from the recipe */
  o->beta1 = 0.9;
  o->beta2 = 0.95;
  o->eps = 1e-8;
  o->seed = 1;
  o->time_budget = -1;
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":o:T:qvVh", lo, NULL)) != -1) {
    switch (c) {
    case O_PARAMS: o->preset = optarg; break;
    case O_LAYERS: o->layers = parse_int("--layers", optarg, 1, 64); break;
    case O_DIM: o->dim = parse_int("--dim", optarg, 16, 4096); break;
    case O_HEADS: o->heads = parse_int("--heads", optarg, 1, 512); break;
    case O_CTX: o->ctx = parse_int("--ctx", optarg, 1, 65536); break;
    case O_BATCH: o->batch = parse_int("--batch", optarg, 1, BT_TRAIN_MAX_BATCH); break;
    case O_STEPS:
      if ((o->steps = parse_count(optarg)) < 1 || o->steps > BT_TRAIN_MAX_STEPS)
        bt_usage_error("invalid value for --steps: '%s' (1..%lld)", optarg, (long long)BT_TRAIN_MAX_STEPS);
      break;
    case O_TOKENS:
      if ((o->tokens = parse_count(optarg)) < 1 || o->tokens > BT_TRAIN_MAX_STEPS * BT_TRAIN_MAX_BATCH_TOKENS)
        bt_usage_error("invalid value for --tokens: '%s'", optarg);
      break;
    case O_TIME:
      if ((o->time_budget = parse_duration(optarg)) <= 0)
        bt_usage_error("invalid value for --time: '%s' (e.g. 90s, 20m, 2h30m)", optarg);
      break;
    case O_STOPAT:
      if ((o->stop_at = parse_count(optarg)) < 1)
        bt_usage_error("invalid value for --stop-at: '%s' (a step, >= 1)", optarg);
      break;
    case O_LR: o->lr = parse_real("--lr", optarg); o->lr_set = 1; break;
    case O_MINLR: o->min_lr = parse_real("--min-lr", optarg); break;
    case O_CTXWARM: parse_steps_or_pct("--ctx-warmup", optarg, &o->ctx_warmup, &o->ctx_warmup_frac); break;
    case O_BWARM: parse_steps_or_pct("--batch-warmup", optarg, &o->batch_warmup, &o->batch_warmup_frac); break;
    case O_BMIN: o->batch_min = parse_int("--batch-min", optarg, 1, BT_TRAIN_MAX_BATCH); break;
    case O_CTXMIN:
      if ((o->ctx_min = parse_count(optarg)) < 1)
        bt_usage_error("invalid value for --ctx-min: '%s'", optarg);
      break;
    case O_WARMUP:
      if ((o->warmup = parse_count(optarg)) < 0)
        bt_usage_error("invalid value for --warmup: '%s'", optarg);
      break;
    case O_WD: o->wd = parse_real("--wd", optarg); break;
    case O_CLIP: o->clip = parse_real("--clip", optarg); break;
    case O_B1: o->beta1 = parse_real("--beta1", optarg); break;
    case O_B2: o->beta2 = parse_real("--beta2", optarg); break;
    case O_SEED: {
      long long s = parse_count(optarg);
      if (s < 0)
        bt_usage_error("invalid value for --seed: '%s'", optarg);
      o->seed = (unsigned long long)s;
      o->seed_set = 1;
      break;
    }
    case O_RECIPE:
      if (strcmp(optarg, "list") == 0) {
        for (size_t i = 0; i < sizeof g_recipes / sizeof g_recipes[0]; i++)
          printf("%-4s %s%s\n", g_recipes[i].name, g_recipes[i].about,
                 strcmp(g_recipes[i].name, DEFAULT_RECIPE) ? "" : " [default]");
        exit(0);
      }
      if (!find_recipe(optarg))
        bt_usage_error("unknown recipe '%s' (bt-train --recipe list)", optarg);
      o->recipe = optarg;
      break;
    case O_SCHEDULE:
      if (strcmp(optarg, "cosine") && strcmp(optarg, "wsd"))
        bt_usage_error("invalid value for --schedule: '%s' (cosine or wsd)", optarg);
      o->schedule = optarg;
      break;
    case O_OPTIMIZER:
      if (strcmp(optarg, "adamw") && strcmp(optarg, "muon"))
        bt_usage_error("invalid value for --optimizer: '%s' (adamw or muon)", optarg);
      o->optimizer = optarg;
      o->optimizer_set = 1;
      break;
    case O_TOKENIZER:
      o->tokenizer = optarg;
      break;
    case O_PRECISION:
      if (strcmp(optarg, "fp32") && strcmp(optarg, "bf16") && strcmp(optarg, "auto"))
        bt_usage_error("invalid value for --precision: '%s' (fp32, bf16 or auto)", optarg);
      o->precision = optarg;
      break;
    case O_INITSCALE:
      o->init_scale = parse_real("--init-scale", optarg);
      if (!(o->init_scale > 0 && o->init_scale <= 100))
        bt_usage_error("--init-scale must be in (0, 100]");
      break;
    case O_MUONMOM:
      o->muon_momentum = parse_real("--muon-momentum", optarg);
      if (!(o->muon_momentum >= 0 && o->muon_momentum < 1))
        bt_usage_error("--muon-momentum must be in [0, 1)");
      break;
    case O_DECAY:
      o->decay = parse_real("--decay", optarg);
      if (!(o->decay > 0 && o->decay <= 1))
        bt_usage_error("--decay must be in (0, 1]");
      break;
    case O_VAL: o->val = optarg; break;
    case O_VALSPLIT:
      o->val_split = parse_real("--val-split", optarg);
      if (o->val_split <= 0 || o->val_split >= 0.5)
        bt_usage_error("--val-split must be in (0, 0.5)");
      break;
    case O_VALEVERY:
      if ((o->val_every = parse_count(optarg)) < 0)
        bt_usage_error("invalid value for --val-every: '%s'", optarg);
      break;
    case O_VALBYTES:
      if ((o->val_bytes = parse_count(optarg)) < 1)
        bt_usage_error("invalid value for --val-bytes: '%s'", optarg);
      break;
    case O_RESUME: o->resume = optarg; break;
    case O_DATA: o->data = optarg; break;
    case O_CKPTEVERY:
      if ((o->ckpt_every = parse_count(optarg)) < 1)
        bt_usage_error("invalid value for --ckpt-every: '%s'", optarg);
      break;
    case O_LOG: o->log = optarg; break;
    case O_LOGEVERY:
      if ((o->log_every = parse_count(optarg)) < 1)
        bt_usage_error("invalid value for --log-every: '%s'", optarg);
      break;
    case 'o': o->out = optarg; break;
    case 'T': o->threads = parse_int("-T", optarg, 1, 4096); break;
    case 'q': o->quiet = 1; break;
    case 'v': o->verbose = 1; break;
    case 'V': printf("bt-train %s\n", BT_VERSION); exit(0);
    case 'h': usage(stdout); exit(0);
    case ':': bt_usage_error("option %s needs a value", argv[optind - 1]);
    default: bt_usage_error("unknown option '%s'", argv[optind - 1]);
    }
  }
  if (o->data ? optind != argc : optind != argc - 1)
    bt_usage_error(optind >= argc ? "no DATA given" : "more than one DATA given");
  if (!o->data)
    o->data = argv[optind];
  if (o->steps > 0 && o->tokens > 0)
    bt_usage_error("give --steps or --tokens, not both");
  if (!(isnan(o->lr) || o->lr > 0) || !(isnan(o->min_lr) || o->min_lr >= 0) ||
      !(isnan(o->wd) || o->wd >= 0) || !(isnan(o->clip) || o->clip >= 0))
    bt_usage_error("--lr must be > 0, and --min-lr, --wd and --clip >= 0");
  /* The recipe fills what was not given. */
  const recipe_t *r = find_recipe(o->recipe ? o->recipe : DEFAULT_RECIPE);
  o->recipe = r->name;
  if (isnan(o->wd))
    o->wd = r->wd;
  if (isnan(o->clip))
    o->clip = r->clip;
  if (!o->batch)
    o->batch = r->batch;
  if (o->ctx_warmup < 0) {
    o->ctx_warmup = 0;
    /* a context no longer than the warmup's first length has nothing to warm */
    o->ctx_warmup_frac = o->ctx_min < o->ctx ? r->ctx_warmup_frac : 0;
  }
  if (!o->schedule)
    o->schedule = r->schedule == BT_SCHED_WSD ? "wsd" : "cosine";
  if (isnan(o->decay))
    o->decay = r->decay > 0 ? r->decay : 0.2;
  if (!o->optimizer)
    o->optimizer = r->optimizer == BT_OPT_MUON ? "muon" : "adamw";
  int custom = o->layers || o->dim || o->heads;
  if (o->preset && custom)
    bt_usage_error("give --params or --layers/--dim/--heads, not both");
  if (custom && !(o->layers && o->dim && o->heads))
    bt_usage_error("a custom model needs all of --layers, --dim and --heads");
  if (!o->preset && !custom && !o->resume)
    bt_usage_error("give --params 200K|800K|3.2M, a custom model, or --resume");
  int dim = o->dim; /* the model's width, for a recipe's lr (0 on a resume) */
  if (o->preset) {
    bt_config c;
    if (bt_config_preset(o->preset, &c) != 0)
      bt_usage_error("unknown preset '%s' (use 200K, 800K or 3.2M)", o->preset);
    dim = c.d_model;
  }
  if (isnan(o->lr))
    o->lr = r->lr_dim > 0 && dim > 0 ? r->lr * r->lr_dim / dim : r->lr;
  if (isnan(o->min_lr))
    o->min_lr = o->lr * r->min_lr_frac;
}

/* ==================================================================== */
/* Sampling: xorshift128+, its state is part of the checkpoint          */
/* ==================================================================== */

static uint64_t rng_next(uint64_t s[2]) {
  uint64_t a = s[0], b = s[1];
  s[0] = b;
  a ^= a << 23;
  s[1] = a ^ b ^ (a >> 17) ^ (b >> 26);
  return s[1] + b;
}

/* The training text: bytes, or the tokens of a BPE model. */
typedef struct {
  const uint8_t *bytes;
  uint16_t *tokens; /* NULL for a byte model */
  size_t n;         /* bytes or tokens */
} text_t;

/* Fills batch (B,T) with random windows of text [0, n). */
static void sample_batch(uint16_t *batch, const text_t *x, int B, int T, uint64_t s[2]) {
  size_t span = x->n - (size_t)T + 1;
  for (int b = 0; b < B; b++) {
    size_t off = (size_t)(rng_next(s) % span);
    uint16_t *d = batch + (size_t)b * T;
    if (x->tokens)
      memcpy(d, x->tokens + off, (size_t)T * sizeof *d);
    else
      for (int t = 0; t < T; t++)
        d[t] = x->bytes[off + t];
  }
}

/* The tokens of in (n bytes) by bpe: *out malloc'd, *ntok. */
static bt_error tokenize(const bt_bpe *bpe, const uint8_t *in, size_t n, uint16_t **out, size_t *ntok) {
  uint16_t *t = malloc((n ? n : 1) * sizeof *t); /* never more tokens than bytes */
  if (!t)
    return bt_fail(BT_ERR_NOMEM, "tokens of %zu bytes", n);
  *ntok = bt_bpe_encode16(bpe, in, n, t);
  uint16_t *shrunk = realloc(t, (*ntok ? *ntok : 1) * sizeof *t);
  *out = shrunk ? shrunk : t;
  return BT_OK;
}

/* Mean bits per byte over non-overlapping T-byte chunks of val (each starts
 * from BOS, as the paper's 2048-byte chunks do). */
static double evaluate(bt_model *m, const uint8_t *val, size_t n, int B, int T, uint8_t *buf) {
  size_t chunks = n / (size_t)T;
  double sum = 0;
  size_t count = 0;
  for (size_t c = 0; c < chunks; c += (size_t)B) {
    int nb = (int)(chunks - c < (size_t)B ? chunks - c : (size_t)B);
    memcpy(buf, val + c * T, (size_t)nb * T);
    float loss;
    if (bt_model_forward(m, buf, nb, T, &loss) != BT_OK)
      return NAN;
    sum += (double)loss * nb * T;
    count += (size_t)nb * T;
  }
  return count ? sum / (double)count / log(2.0) : NAN;
}

/* A BPE model's validation: each T-byte chunk of val tokenized on its own
 * and scored from BOS (at most T tokens: a chunk never has more tokens than
 * bytes), as the coder codes chunks; bits per byte of text. */
static double evaluate_tokens(bt_model *m, const bt_bpe *bpe, const uint8_t *val, size_t n, int T) {
  uint16_t *t16 = malloc((size_t)T * sizeof *t16);
  double sum = 0;
  size_t bytes = 0;
  for (size_t c = 0; t16 && c + (size_t)T <= n; c += (size_t)T) {
    const size_t k = bt_bpe_encode16(bpe, val + c, (size_t)T, t16);
    float loss;
    if (bt_model_forward_tokens(m, t16, 1, (int)k, &loss) != BT_OK) {
      bytes = 0;
      break;
    }
    sum += (double)loss * (double)k;
    bytes += (size_t)T;
  }
  free(t16);
  return bytes ? sum / (double)bytes / log(2.0) : NAN;
}

/* Sequence length at a step: with context warmup, ctx_min doubling in equal
 * stages of the warmup steps up to the full seq; the batch grows to match. */
static int seq_at(const bt_train_state *st, int64_t step) {
  if (st->ctx_min <= 0 || st->ctx_min >= st->seq || step >= st->ctx_warmup_steps)
    return st->seq;
  int stages = 1;
  for (int t = st->ctx_min; t < st->seq; t *= 2)
    stages++;
  int k = (int)(step * stages / st->ctx_warmup_steps);
  int t = st->ctx_min << k;
  return t < st->seq ? t : st->seq;
}

static double lr_at(const bt_train_state *st, int64_t step) {
  if (step < st->warmup_steps)
    return st->lr * (double)(step + 1) / (double)st->warmup_steps;
  if (st->schedule == BT_SCHED_WSD) {
    /* Stable at the peak, then linear to min_lr: the decay's last step runs
     * at min_lr. */
    const int64_t d0 = bt_train_decay_start(st), dn = st->total_steps - d0;
    if (step < d0)
      return st->lr;
    double p = dn > 1 ? (double)(step - d0 + 1) / (double)dn : 1.0;
    return st->lr + (st->min_lr - st->lr) * (p < 1 ? p : 1);
  }
  double span = (double)(st->total_steps - st->warmup_steps);
  double p = span > 0 ? (double)(step - st->warmup_steps) / span : 1.0;
  if (p > 1)
    p = 1;
  return st->min_lr + 0.5 * (st->lr - st->min_lr) * (1.0 + cos(M_PI * p));
}

/* The cadence flags not given: a resumed run's own (checkpoint format 6),
 * else the defaults. The result is recorded in the state, so that the next
 * resume goes on the same way; counts past any run's length mean "never". */
static void resolve_cadence(opts_t *o, bt_train_state *st) {
  const int run = st->ckpt_every > 0;
  const long long S = BT_TRAIN_MAX_STEPS;
  if (o->val_every < 0)
    o->val_every = run ? st->val_every : 500;
  if (o->val_bytes < 0)
    o->val_bytes = run ? st->val_bytes : 1000000;
  if (o->ckpt_every < 0)
    o->ckpt_every = run ? st->ckpt_every : 500;
  if (o->log_every < 0)
    o->log_every = run ? st->log_every : 10;
  st->val_every = o->val_every = o->val_every > S ? S : o->val_every;
  st->ckpt_every = o->ckpt_every = o->ckpt_every > S ? S : o->ckpt_every;
  st->log_every = o->log_every = o->log_every > S ? S : o->log_every;
  st->val_bytes = o->val_bytes =
      o->val_bytes > BT_TRAIN_MAX_VAL_BYTES ? BT_TRAIN_MAX_VAL_BYTES : o->val_bytes;
}

/* Extending a WSD run that has begun its decay: the run continues from the
 * state at the end of its stable phase, which bt-train kept beside the
 * checkpoint as CKPT.stable.h5, and decays again at the end of the new
 * budget. Replaces *m and *st with that state. */
static void resume_stable(const opts_t *o, bt_model **m, bt_train_state *st) {
  char path[4200];
  snprintf(path, sizeof path, "%s.stable.h5", o->resume);
  const int64_t d0 = bt_train_decay_start(st);
  bt_model *m2 = NULL;
  bt_train_state s2;
  bt_error e = bt_ckpt_load(path, &m2, &s2);
  if (e) {
    char d[512];
    snprintf(d, sizeof d, "%s", bt_error_detail());
    bt_die("cannot extend %s: it is at step %lld, past the start of its decay (step %lld), and the "
           "state at that start, %s, cannot be loaded: %s%s%s",
           o->resume, (long long)st->step, (long long)d0, path, bt_error_name(e), *d ? ": " : "", d);
  }
  if (s2.step != d0 || s2.seed != st->seed || s2.schedule != BT_SCHED_WSD ||
      memcmp(s2.data_sha256, st->data_sha256, 32) != 0 ||
      bt_model_num_params(m2) != bt_model_num_params(*m))
    bt_die("cannot extend %s: %s is not the state at the start of its decay (step %lld)", o->resume,
           path, (long long)d0);
  if (!o->quiet)
    bt_msg("extending %s: continuing from %s (step %lld, the end of its stable phase)", o->resume,
           path, (long long)d0);
  bt_model_free(*m);
  bt_train_state_clear(st);
  *m = m2;
  *st = s2;
}

/* --resume --optimizer O: an AdamW run goes on with Muon from its next step
 * (the checkpoint records it, and later resumes keep it). Muon takes the
 * matrices' AdamW first moment as its momentum (orthogonalisation discards
 * its scale) and leaves the rest to AdamW as before. A Muon run cannot go
 * back: its momentum is no AdamW moment and its matrices have no second one. */
static void switch_optimizer(const opts_t *o, bt_train_state *st) {
  const int want = strcmp(o->optimizer, "muon") == 0 ? BT_OPT_MUON : BT_OPT_ADAMW;
  if (want == st->optimizer)
    return;
  if (want == BT_OPT_ADAMW)
    bt_die("%s was trained with Muon: it cannot be resumed with --optimizer adamw", o->resume);
  st->optimizer = BT_OPT_MUON;
  st->muon_momentum = o->muon_momentum;
  if (!o->quiet)
    bt_msg("switching %s from AdamW to Muon (momentum %g) at step %lld", o->resume,
           o->muon_momentum, (long long)st->step);
}

/* auto's bar: vdpbf16ps must run at this many times the FMA's FLOPs */
#define BF16_PAYS 1.5

/* --precision fp32|bf16|auto. auto takes bf16 where the CPU has it, runs
 * vdpbf16ps at well over the FMA's FLOPs (Zen 4 and 5 do; an Intel Xeon ran
 * it at half), and the model is wide enough for its products to pay for
 * their packing (docs/measurements.md: every preset, d_model 64 to 256, once
 * attention took bf16 too); it says what it chose and why. The ratio is
 * measured (0.1 s) only where the answer depends on it. */
static int pick_precision(const char *flag, int d_model, int quiet) {
  if (strcmp(flag, "auto") != 0)
    return strcmp(flag, "bf16") == 0 ? BT_PREC_BF16 : BT_PREC_FP32;
  if (!bt_bf16_available()) {
    if (!quiet)
      fprintf(stderr, "bt-train: --precision auto: fp32 (no AVX512_BF16 on this CPU, build or BT_ISA)\n");
    return BT_PREC_FP32;
  }
  if (d_model < 64) {
    if (!quiet)
      fprintf(stderr, "bt-train: --precision auto: fp32 (d_model %d: bf16 pays from 64)\n", d_model);
    return BT_PREC_FP32;
  }
  const double ratio = bt_bf16_peak_ratio();
  const int prec = ratio >= BF16_PAYS ? BT_PREC_BF16 : BT_PREC_FP32;
  if (!quiet)
    fprintf(stderr, "bt-train: --precision auto: %s (vdpbf16ps at %.2fx the FMA's FLOPs here; d_model %d)\n",
            prec == BT_PREC_BF16 ? "bf16" : "fp32", ratio, d_model);
  return prec;
}

static void fmt_hms(char *buf, size_t cap, double s) {
  if (!isfinite(s) || s < 0)
    s = 0;
  long t = (long)(s + 0.5);
  snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
}

/* Appends a log row to the state (kept in the checkpoint) and the JSONL file. */
static void log_row(bt_train_state *st, FILE *jl, const double row[BT_LOG_COLS]) {
  double *nl = realloc(st->log, (st->log_rows + 1) * BT_LOG_COLS * sizeof(double));
  if (nl) {
    st->log = nl;
    memcpy(st->log + st->log_rows * BT_LOG_COLS, row, BT_LOG_COLS * sizeof(double));
    st->log_rows++;
  }
  if (jl) {
    fprintf(jl, "{\"step\":%.0f,\"tokens\":%.0f,\"elapsed_s\":%.3f,\"lr\":%.6g,\"train_bpb\":%.6f,",
            row[BT_LOG_STEP], row[BT_LOG_TOKENS], row[BT_LOG_ELAPSED], row[BT_LOG_LR],
            row[BT_LOG_TRAIN_BPB]);
    if (isfinite(row[BT_LOG_VAL_BPB]))
      fprintf(jl, "\"val_bpb\":%.6f,", row[BT_LOG_VAL_BPB]);
    else
      fprintf(jl, "\"val_bpb\":null,");
    fprintf(jl, "\"tokens_per_s\":%.1f}\n", row[BT_LOG_TOK_PER_S]);
    fflush(jl);
  }
}

/* On a resume, drops the JSONL log's rows past the checkpoint's step: a run
 * that went on past its last checkpoint (killed, or a copy of the checkpoint
 * resumed) wrote rows the resumed run writes again. A last row cut short by
 * a kill goes too, so the next row starts a line of its own. The file is
 * rewritten whole (bt_atomic_write), so it is never left cut; a log that cannot
 * be read is left as it is. Returns the number of rows dropped. */
static long trim_log(const char *path, int64_t step) {
  FILE *f = fopen(path, "r");
  if (!f)
    return 0;
  char *text = NULL;
  size_t len = 0;
  FILE *mem = open_memstream(&text, &len);
  char *line = NULL;
  size_t cap = 0;
  long dropped = 0;
  ssize_t n;
  while (mem && (n = getline(&line, &cap, f)) > 0) {
    long long s;
    if (line[n - 1] != '\n' || (sscanf(line, "{\"step\":%lld", &s) == 1 && s > step))
      dropped++;
    else
      fwrite(line, 1, (size_t)n, mem);
  }
  free(line);
  int bad = ferror(f);
  fclose(f);
  if (!mem || fclose(mem) || bad || !dropped) {
    free(text);
    return 0;
  }
  bt_error e = bt_atomic_write(path, text, len);
  free(text);
  if (e)
    die_bt(e, "cannot rewrite the log");
  return dropped;
}

static void report_divergence(int64_t step, const char *what, const char *out, int64_t saved_step,
                              int saved_any) {
  if (saved_any)
    bt_msg("training diverged at step %lld (%s is not finite); "
           "the last good checkpoint %s (step %lld) is kept",
           (long long)step, what, out, (long long)saved_step);
  else
    bt_msg("training diverged at step %lld (%s is not finite); "
           "no checkpoint was written (lower --lr?)",
           (long long)step, what);
}

static void check_writable_dir(const char *path) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash)
    *(slash == dir ? slash + 1 : slash) = '\0';
  else
    snprintf(dir, sizeof dir, ".");
  struct stat sb;
  if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
    bt_die("output folder %s does not exist", dir);
  if (access(dir, W_OK) != 0)
    bt_die("output folder %s is not writable", dir);
}

/* ==================================================================== */
/* main                                                                 */
/* ==================================================================== */

int main(int argc, char **argv) {
  bt_cli_init(g_prog, "[--params 200K|800K|3.2M | --layers L --dim D --heads H] [options] DATA");
  bt_dist_init(&argc, &argv);
  const int rank = bt_dist_rank(), nranks = bt_dist_size();
  opts_t o;
  parse_args(argc, argv, &o);
  if (rank > 0) /* rank 0 prints, logs and writes */
    o.quiet = 1, o.verbose = 0;
  bt_cli_apply_isa();
  if (o.threads)
    bt_set_threads(o.threads);
  const int tty = isatty(2);
  const int progress = !o.quiet && (tty || o.verbose);

  /* ---- model and state: fresh or resumed ---- */
  bt_model *m = NULL;
  bt_train_state st;
  memset(&st, 0, sizeof st);
  bt_config cfg;
  bt_error e;
  char out_default[256];
  if (o.resume) {
    if (!isnan(o.init_scale))
      bt_usage_error("--init-scale sets the initial weights: a new run only, not --resume");
    if (o.batch_warmup >= 0 || o.batch_min)
      bt_usage_error("--batch-warmup and --batch-min plan a run's first steps: a new run only, not --resume");
    if ((e = bt_ckpt_load(o.resume, &m, &st)))
      die_bt(e, "cannot resume");
    cfg = *bt_model_config(m);
    if (st.step == 0 && st.total_steps == 0)
      bt_die("%s holds no training state (saved for inference only); it cannot be resumed",
             o.resume);
    bt_config want = cfg;
    if (o.preset)
      bt_config_preset(o.preset, &want);
    if (o.layers)
      want.n_layer = o.layers, want.d_model = o.dim, want.n_head = o.heads;
    if (want.n_layer != cfg.n_layer || want.d_model != cfg.d_model || want.n_head != cfg.n_head)
      bt_die("checkpoint %s holds a model with %d layers, dim %d, %d heads, "
             "which does not match the flags",
             o.resume, cfg.n_layer, cfg.d_model, cfg.n_head);
    if (o.ctx != 2048 && o.ctx != st.seq)
      bt_die("checkpoint %s was trained with --ctx %d, not %d", o.resume, st.seq, o.ctx);
    if (o.tokenizer) { /* the run's own tokenizer is in its checkpoint; a different one is refused */
      size_t have_n;
      const uint8_t *have = bt_model_tokenizer(m, &have_n);
      size_t img_n;
      uint8_t *img = load_tokenizer(o.tokenizer, &img_n, NULL);
      if (img_n != have_n || memcmp(img, have, img_n))
        bt_die("checkpoint %s was trained %s, not with %s", o.resume,
               have_n ? "with another tokenizer" : "on bytes", o.tokenizer);
      free(img);
    }
    if (o.val_split > 0 && o.val_split != st.val_split)
      bt_die("checkpoint %s was trained with --val-split %g; "
             "changing it would change the training data",
             o.resume, st.val_split);
    o.val_split = st.val_split;
    int64_t total = st.total_steps;
    if (o.steps > 0)
      total = o.steps;
    if (o.tokens > 0)
      total = bt_train_steps_for(&st, o.tokens);
    if (st.schedule == BT_SCHED_WSD && total > st.total_steps && st.step > bt_train_decay_start(&st))
      resume_stable(&o, &m, &st);
    st.total_steps = total;
    if (o.optimizer_set)
      switch_optimizer(&o, &st);
    /* A run that sums per sequence on bt's own GEMMs has the same bits on
     * any thread count (train/gradsum.h). */
    const int exact = st.grad_sum == BT_GRAD_SEQUENCES &&
                      (bt_gemm_get_backend() == BT_GEMM_OWN || st.precision == BT_PREC_BF16);
    if (st.threads && bt_get_threads() != st.threads && !exact && rank == 0)
      bt_msg("note: resuming with %d threads, the run used %d; "
             "the result may differ in the last bits",
             bt_get_threads(), st.threads);
  } else {
    if (o.preset)
      bt_config_preset(o.preset, &cfg);
    else
      cfg = (bt_config){o.layers, o.dim, o.heads, o.ctx, BT_VOCAB};
    cfg.ctx = o.ctx;
    uint8_t *img = NULL;
    size_t img_n = 0;
    if (o.tokenizer)
      img = load_tokenizer(o.tokenizer, &img_n, &cfg.vocab);
    if ((e = bt_config_check(&cfg)))
      die_bt(e, "invalid model");
    if ((e = bt_model_create(&m, &cfg)))
      die_bt(e, "cannot create model");
    if (img_n && (e = bt_model_set_tokenizer(m, img, img_n)))
      die_bt(e, "tokenizer");
    free(img);
    bt_model_init_scaled(m, o.seed, isnan(o.init_scale) ? 1.0 : o.init_scale);
    st.batch = o.batch;
    st.seq = o.ctx;
    st.total_steps = o.tokens > 0 ? (o.tokens + (long long)o.batch * o.ctx - 1) / ((long long)o.batch * o.ctx)
                     : o.steps > 0 ? o.steps : 10000;
    if (o.batch_warmup_frac > 0 || o.batch_warmup > 0) {
      /* A share of the steps at the full batch; then the steps that see
       * --tokens with the warmup's smaller batches. */
      const long long bmin = o.batch_min ? o.batch_min : (o.batch / 4 > 0 ? o.batch / 4 : 1);
      if (bmin >= o.batch || !bt_pow2_divisor(bmin, o.batch))
        bt_die("--batch-min %lld must divide --batch %d by a power of two (and be less)", bmin, o.batch);
      st.batch_min = (int32_t)bmin;
      st.batch_warmup_steps =
          o.batch_warmup_frac > 0 ? (int64_t)(o.batch_warmup_frac * st.total_steps) : o.batch_warmup;
      if (o.tokens > 0)
        st.total_steps = bt_train_steps_for(&st, o.tokens);
    } else if (o.batch_min) {
      bt_usage_error("--batch-min sets where --batch-warmup starts; give --batch-warmup too");
    }
    st.warmup_steps = o.warmup >= 0 ? o.warmup : (st.total_steps / 50 > 50 ? st.total_steps / 50 : 50);
    if (st.warmup_steps > st.total_steps)
      st.warmup_steps = st.total_steps;
    st.ctx_warmup_steps = o.ctx_warmup_frac > 0 ? (int64_t)(o.ctx_warmup_frac * st.total_steps) : o.ctx_warmup;
    if (st.ctx_warmup_steps > 0) {
      if (!bt_pow2_divisor(o.ctx_min, o.ctx))
        bt_die("--ctx-min %lld must divide --ctx %d by a power of two", o.ctx_min, o.ctx);
      st.ctx_min = (int32_t)o.ctx_min;
    }
    st.lr = o.lr;
    st.min_lr = o.min_lr;
    st.schedule = strcmp(o.schedule, "wsd") == 0 ? BT_SCHED_WSD : BT_SCHED_COSINE;
    st.decay_frac = st.schedule == BT_SCHED_WSD ? o.decay : 0;
    snprintf(st.recipe, sizeof st.recipe, "%s", o.recipe);
    st.optimizer = strcmp(o.optimizer, "muon") == 0 ? BT_OPT_MUON : BT_OPT_ADAMW;
    st.muon_momentum = o.muon_momentum;
    st.grad_sum = BT_GRAD_SEQUENCES;
    st.precision = BT_PREC_FP32;
    st.weight_decay = o.wd;
    st.beta1 = o.beta1;
    st.beta2 = o.beta2;
    st.eps = o.eps;
    st.clip = o.clip;
    st.seed = o.seed;
    st.rng[0] = o.seed * 0x9E3779B97F4A7C15ULL ^ 0xD1B54A32D192ED03ULL;
    st.rng[1] = (o.seed + 1) * 0xBF58476D1CE4E5B9ULL | 1;
    st.best_val_bpb = NAN;
    st.val_split = o.val_split;
    snprintf(st.data_name, sizeof st.data_name, "%s", o.data);
  }
  resolve_cadence(&o, &st);
  st.threads = bt_get_threads();
  /* Flags and checkpoints alike: nothing below may overflow or divide by 0. */
  if ((e = bt_train_state_check(&st, &cfg)))
    bt_die("%s%s", o.resume ? "cannot resume: " : "", bt_error_detail());
  const int B = st.batch, T = st.seq;
  /* Ranks split each step's micro-batches (B, or fewer in a batch warmup)
   * into runs of a power of two, so that their partial sums are subtrees of
   * gradsum.h's order. */
  /* --precision: the run's, or the flag's (a resume may change it) */
  if (o.precision)
    st.precision = pick_precision(o.precision, bt_model_config(m)->d_model, o.quiet);
  if (st.precision == BT_PREC_BF16) {
    if (!bt_bf16_available())
      bt_die("%s: bf16 training needs AVX512_BF16, which this CPU (or build, or BT_ISA) lacks; "
             "--precision fp32 goes on in fp32", o.resume ? o.resume : "--precision bf16");
    bt_gemm_set_backend(BT_GEMM_BF16);
  }
  if (nranks > 1 && st.grad_sum != BT_GRAD_SEQUENCES)
    bt_die("%s sums each step's gradient over the whole batch at once (a run begun before "
           "bt 0.1's format 3); only one process can continue it",
           o.resume);
  if (nranks > 1 && (B % nranks || ((B / nranks) & (B / nranks - 1))))
    bt_die("%d processes cannot share a batch of %d: each takes batch / processes sequences, "
           "which must be a whole power of two",
           nranks, B);
  if (nranks > 1 && st.batch_min && st.batch_warmup_steps > st.step && st.batch_min % nranks)
    bt_die("%d processes cannot share the batch warmup's first batch of %d: each takes a whole "
           "power of two of its sequences",
           nranks, st.batch_min);
  const char *out = o.out;
  if (!out) {
    if (o.resume)
      out = o.resume;
    else {
      if (o.preset)
        snprintf(out_default, sizeof out_default, "bt-%s.h5", o.preset);
      else
        snprintf(out_default, sizeof out_default, "bt-L%d-D%d-H%d.h5", cfg.n_layer, cfg.d_model, cfg.n_head);
      out = out_default;
    }
  }
  if (rank == 0) {
    check_writable_dir(out);
    /* A second run on the same checkpoint would replace it in turns with
     * the first and interleave their logs: only one writes at a time. */
    if ((e = bt_lock_beside(out)))
      die_bt(e, "cannot train");
  }

  /* ---- data ---- */
  uint8_t *data = NULL, *val = NULL;
  size_t n = 0, nval = 0;
  if ((e = bt_data_load(o.data, &data, &n)))
    die_bt(e, "cannot load training data");
  uint8_t dig[32];
  bt_sha256(data, n, dig);
  if (o.resume && st.data_size && (st.data_size != n || memcmp(dig, st.data_sha256, 32) != 0))
    bt_msg("note: DATA differs from the data the run started with (%s)", st.data_name);
  st.data_size = n;
  memcpy(st.data_sha256, dig, 32);
  if (o.val_split > 0) {
    nval = (size_t)((double)n * o.val_split);
    n -= nval;
    val = data + n;
  } else if (o.val || strcmp(o.data, "wiki100m") == 0) {
    const char *vs = o.val ? o.val : "wiki-valid10m";
    if ((e = bt_data_load_range(vs, 0, (size_t)o.val_bytes, &val, &nval)))
      die_bt(e, "cannot load validation data");
  }
  /* A BPE model trains on the data's tokens (the model's own tokenizer). */
  bt_bpe *bpe = NULL;
  text_t text = {data, NULL, n};
  double bytes_per_token = 1;
  {
    size_t img_n;
    const uint8_t *img = bt_model_tokenizer(m, &img_n);
    if (img_n) {
      if ((e = bt_bpe_parse(&bpe, img, img_n)))
        die_bt(e, "the model's tokenizer");
      const double t0 = bt_now_s();
      if ((e = tokenize(bpe, data, n, &text.tokens, &text.n)))
        die_bt(e, "cannot tokenize the training data");
      bytes_per_token = text.n ? (double)n / (double)text.n : 1;
      if (!o.quiet && rank == 0)
        bt_msg("%zu bytes of %s are %zu tokens of a %d-token vocabulary (%.3f bytes/token; %.1f s)", n,
               o.data, text.n, bt_model_config(m)->vocab, bytes_per_token, bt_now_s() - t0);
    }
  }
  if (text.n < (size_t)T + 1)
    bt_die("training data %s is too short: %zu %s, need more than one context of %d", o.data, text.n,
           bpe ? "tokens" : "bytes", T);
  if (val && nval > (size_t)o.val_bytes)
    nval = (size_t)o.val_bytes;
  if (val && nval < (size_t)T) {
    bt_msg("note: validation data shorter than one context (%zu < %d bytes); validation off", nval,
           T);
    val = NULL;
  }

  /* ---- log file ---- */
  char log_default[4200];
  const char *log_path = o.log;
  if (!log_path) {
    snprintf(log_default, sizeof log_default, "%s.log.jsonl", out);
    log_path = log_default;
  }
  FILE *jl = NULL;
  long trimmed = rank == 0 && o.resume ? trim_log(log_path, st.step) : 0;
  if (trimmed && !o.quiet)
    bt_msg("note: dropped %ld rows of %s past step %lld, the checkpoint's (written by a run that "
           "went on past it, or cut short)",
           trimmed, log_path, (long long)st.step);
  if (rank == 0 && !(jl = fopen(log_path, o.resume ? "a" : "w")))
    bt_die("cannot write log %s: %s", log_path, strerror(errno));

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  size_t np = bt_model_num_params(m);
  if (!o.quiet)
    bt_msg("%d layers, dim %d, %d heads, ctx %d: %zu params; batch %d x %d; "
           "%s; %d threads, %s kernels",
           cfg.n_layer, cfg.d_model, cfg.n_head, cfg.ctx, np, B, T,
           o.resume ? "resuming" : "new run", bt_get_threads(), bt_isa_name(bt_isa_get()));
  if (!o.quiet && st.step >= st.total_steps)
    bt_msg("the run is already at step %lld of %lld; nothing to do (raise --steps)",
           (long long)st.step, (long long)st.total_steps);

  uint16_t *batch = malloc((size_t)B * T * sizeof *batch);
  uint8_t *vbuf = malloc((size_t)B * T);
  if (!batch || !vbuf)
    bt_die("out of memory");
  float *grads = NULL;
  const double t_start = bt_now_s(), elapsed0 = st.elapsed_s;
  double t_last = t_start, window_loss = 0, last_val = NAN, tok_s = 0;
  long long window_steps = 0, window_tokens = 0;
  int64_t last_saved = st.step;
  int saved_any = o.resume != NULL, rc = 0;

  bt_gradsum gs;
  bt_gradsum_init(&gs, np);
  double *mb_loss = malloc(2 * (size_t)B * sizeof(double)); /* this rank's, then all */
  if (!mb_loss)
    bt_die("out of memory");
  enum { STOP_BUDGET = 1 }; /* signals are >= 2 */

  /* --stop-at ends the loop early and leaves the schedule as it is. */
  const int64_t stop_step =
      o.stop_at > 0 && o.stop_at < st.total_steps ? (int64_t)o.stop_at : st.total_steps;
  while (st.step < stop_step) {
    /* Every rank stops at the same step: on a signal to any, or when rank
     * 0's time budget runs out. */
    int why = g_stop ? (int)g_stop
              : rank == 0 && o.time_budget > 0 && bt_now_s() - t_start >= o.time_budget ? STOP_BUDGET
                                                                                        : 0;
    if (nranks > 1)
      why = bt_dist_max(why);
    if (why > STOP_BUDGET)
      g_stop = why;
    if (why)
      break;
    if (rank == 0 && st.schedule == BT_SCHED_WSD && st.step == bt_train_decay_start(&st) &&
        st.step > 0) {
      /* The end of the stable phase: kept, so the run can be extended. */
      char sp[4200];
      snprintf(sp, sizeof sp, "%s.stable.h5", out);
      st.elapsed_s = elapsed0 + bt_now_s() - t_start;
      if ((e = bt_ckpt_save(sp, m, &st, BT_CKPT_F32)))
        die_bt(e, "cannot save the stable-phase checkpoint");
    }
    /* The whole batch is drawn on every rank (the sampler's state stays
     * one); micro-batch i is sequences [i q, (i + 1) q) of length Tk, T
     * tokens, and this rank takes micro-batches [first_mb, first_mb + per). */
    const int Bs = bt_train_batch_at(&st, st.step), per = Bs / nranks, first_mb = rank * per;
    const int Tk = seq_at(&st, st.step), q = T / Tk, Bk = Bs * q;
    sample_batch(batch, &text, Bk, Tk, st.rng);
    double loss = 0;
    int diverged = 0;
    if (st.grad_sum == BT_GRAD_BATCH) {
      float l;
      e = bt_model_forward_tokens(m, batch, Bk, Tk, &l);
      diverged = e == BT_ERR_NUMERIC;
      if (e && !diverged)
        die_bt(e, "forward");
      if (!diverged && (e = bt_model_backward(m)))
        die_bt(e, "backward");
      loss = l;
    } else {
      bt_gradsum_reset(&gs);
      for (int i = 0; i < per && !diverged; i++) {
        float l;
        e = bt_model_forward_tokens(m, batch + (size_t)(first_mb + i) * q * Tk, q, Tk, &l);
        diverged = e == BT_ERR_NUMERIC;
        if (e && !diverged)
          die_bt(e, "forward");
        if (diverged)
          break;
        if ((e = bt_model_backward(m)))
          die_bt(e, "backward");
        if ((e = bt_gradsum_push(&gs, bt_model_grads(m), 1)))
          die_bt(e, "gradient sum");
        mb_loss[i] = l;
      }
      if (nranks > 1)
        diverged = bt_dist_max(diverged);
      if (!diverged) {
        if ((e = bt_dist_allgather(mb_loss, per, mb_loss + B)))
          die_bt(e, "losses");
        for (int i = 0; i < Bs; i++) /* micro-batch order: the same on every layout */
          loss += mb_loss[B + i];
        loss /= Bs;
        if ((e = bt_dist_sum_grads(&gs, per, bt_model_grads(m), np)))
          die_bt(e, "gradient sum");
        bt_scale(bt_model_grads(m), np, 1.0f / (float)Bs);
      }
    }
    if (diverged) {
      if (rank == 0)
        report_divergence(st.step + 1, "loss", out, last_saved, saved_any);
      rc = 1;
      break;
    }
    grads = bt_model_grads(m);
    double norm = sqrt(bt_sumsq(grads, np));
    if (!isfinite(norm)) {
      if (rank == 0)
        report_divergence(st.step + 1, "gradient", out, last_saved, saved_any);
      rc = 1;
      break;
    }
    if (st.clip > 0 && norm > st.clip)
      bt_scale(grads, np, (float)(st.clip / norm));
    double lr = lr_at(&st, st.step);
    if (st.optimizer == BT_OPT_MUON) {
      if ((e = bt_model_muon(m, (float)lr, (float)st.muon_momentum, (float)st.beta1,
                             (float)st.beta2, (float)st.eps, (float)st.weight_decay,
                             (int)(st.step + 1))))
        die_bt(e, "optimizer step");
    } else {
      bt_model_adamw(m, (float)lr, (float)st.beta1, (float)st.beta2, (float)st.eps,
                     (float)st.weight_decay, (int)(st.step + 1));
    }
    st.step++;
    st.tokens += (int64_t)Bs * T;
    window_loss += loss;
    window_steps++;
    window_tokens += (long long)Bs * T;

    int last = st.step == st.total_steps;
    int do_val = rank == 0 && val && (last || (o.val_every > 0 && st.step % o.val_every == 0));
    if (do_val) {
      double tv = bt_now_s();
      last_val = bpe ? evaluate_tokens(m, bpe, val, nval, T) : evaluate(m, val, nval, B, T, vbuf);
      t_last += bt_now_s() - tv; /* validation time is not training throughput */
      if (!(st.best_val_bpb <= last_val))
        st.best_val_bpb = last_val;
    }
    if (rank == 0 && (st.step % o.log_every == 0 || last || do_val)) {
      double t = bt_now_s();
      tok_s = window_tokens / (t - t_last);
      double row[BT_LOG_COLS] = {(double)st.step, (double)st.tokens, elapsed0 + t - t_start, lr,
                                 window_loss / window_steps / log(2.0) / bytes_per_token,
                                 do_val ? last_val : NAN, tok_s};
      log_row(&st, jl, row);
      window_loss = 0;
      window_steps = window_tokens = 0;
      t_last = t;
      if (progress) {
        char el[32], eta[32];
        fmt_hms(el, sizeof el, row[BT_LOG_ELAPSED]);
        fmt_hms(eta, sizeof eta,
                (double)(bt_train_tokens_before(&st, st.total_steps) - bt_train_tokens_before(&st, st.step)) /
                    (tok_s > 0 ? tok_s : 1));
        char vb[32] = "-";
        if (isfinite(last_val))
          snprintf(vb, sizeof vb, "%.4f", last_val);
        char cx[64] = "";
        int w = Tk < T ? snprintf(cx, sizeof cx, "  ctx %d", Tk) : 0;
        if (Bs < B)
          snprintf(cx + w, sizeof cx - (size_t)w, "  batch %d", Bs);
        fprintf(stderr, "%sstep %lld/%lld%s  loss %.4f bpb  val %s bpb  %.0f tok/s  %s  ETA %s%s",
                tty ? "\r" : "", (long long)st.step, (long long)st.total_steps, cx,
                row[BT_LOG_TRAIN_BPB], vb, tok_s, el, eta, tty ? "\033[K" : "\n");
      }
    }
    if (rank == 0 && (st.step % o.ckpt_every == 0 || last)) {
      st.elapsed_s = elapsed0 + bt_now_s() - t_start;
      if ((e = bt_ckpt_save(out, m, &st, BT_CKPT_F32)))
        die_bt(e, "cannot save checkpoint");
      last_saved = st.step;
      saved_any = 1;
    }
  }
  if (rank == 0 && rc == 0 && last_saved != st.step) { /* stopped by a signal or the time budget */
    st.elapsed_s = elapsed0 + bt_now_s() - t_start;
    if ((e = bt_ckpt_save(out, m, &st, BT_CKPT_F32)))
      die_bt(e, "cannot save checkpoint");
  }
  if (progress && tty)
    fputc('\n', stderr);
  if (!o.quiet && rc == 0) {
    char vb[32] = "-";
    if (isfinite(last_val))
      snprintf(vb, sizeof vb, "%.4f", last_val);
    bt_msg("%s at step %lld/%lld (%lld tokens), val %s bpb; checkpoint %s",
           g_stop                      ? "interrupted"
           : st.step >= st.total_steps ? "finished"
           : st.step >= stop_step      ? "stopped (--stop-at)"
                                       : "time budget used",
           (long long)st.step, (long long)st.total_steps, (long long)st.tokens, vb, out);
    if (st.step < st.total_steps)
      bt_msg("continue with: bt-train --resume %s %s", out, o.data);
  }
  if (jl)
    fclose(jl);
  bt_gradsum_free(&gs);
  free(mb_loss);
  free(batch);
  free(vbuf);
  free(text.tokens);
  bt_bpe_free(bpe);
  if (val && o.val_split <= 0)
    free(val);
  free(data);
  bt_train_state_clear(&st);
  bt_model_free(m);
  if (g_stop && rc == 0)
    return 128 + g_stop;
  return rc;
}
