/*
 * bt-eval - remakes Table 1 of "Language Modeling Is Compression": the
 * classical baselines (tools/baselines.h) and bt's transformers (really
 * compressing with coder/codec.h) on the four data sets of data/prepare.h,
 * chunked and whole, printed as a markdown table beside the paper's numbers,
 * and as a CSV.
 */
#include <errno.h>
#include <getopt.h>
#include <glob.h>
#include <libgen.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "coder/codec.h"
#include "coder/coder.h"
#include "coder/share.h"
#include "data/data.h"
#include "data/prepare.h"
#include "kernels/hash.h"
#include "tools/cli.h"
#include "kernels/kernels.h"
#include "tools/baselines.h"
#include "train/dist.h"

/* The default --max-bytes: bytes evaluated per data set (384 chunks of 2048).
 * The default run, six baselines and the three presets on all four sets,
 * must take at most 15 minutes on this project's 2-core machine: it costs
 * 4 x 786 kB / speed per model, at 96 / ~56 / ~20 kB/s for 200K / 800K / 3.2M
 * on an idle machine (~4.5 min with the baselines), and stays under 12 min
 * when other work makes every model 2.5x slower (docs/eval.md). */
#define DEFAULT_MAX_BYTES ((size_t)786432)
#define MAX_MODELS 32

static const char *g_prog = "bt-eval";

/* ==================================================================== */
/* The paper's numbers (Table 1, v2, raw rate %; docs/method.md)       */
/* ==================================================================== */

typedef struct {
  const char *name; /* a baseline name, or a preset for the transformers */
  int whole;        /* 1: the unchunked row */
  double rate[BT_SET__COUNT];
} paper_row;

static const paper_row PAPER[] = {
    {"gzip", 1, {32.3, 70.7, 36.4, 100.0}},       {"lzma2", 1, {23.0, 57.9, 29.9, 100.0}},
    {"png", 1, {42.9, 58.5, 32.2, 100.0}},        {"flac", 1, {89.5, 61.9, 30.9, 107.8}},
    {"gzip", 0, {48.1, 68.6, 38.5, 100.1}},       {"lzma2", 0, {50.0, 62.4, 38.2, 100.0}},
    {"png", 0, {80.6, 61.7, 37.6, 103.2}},        {"flac", 0, {88.9, 60.9, 30.3, 107.2}},
    {"200K", 0, {30.9, 194.0, 146.6, 195.5}},     {"800K", 0, {21.7, 185.1, 131.1, 200.1}},
    {"3.2M", 0, {17.0, 215.8, 228.2, 224.0}},
};

/* The presets by parameter count, with the paper's adjusted rate on enwik9. */
static const struct {
  const char *name;
  size_t params;
  double adjusted_text;
} PRESETS[] = {{"200K", 231936, 30.9}, {"800K", 856832, 21.9}, {"3.2M", 3286272, 17.7}};

/* The paper's value for a row, or a negative number if it has none. */
static double paper_rate(const char *name, int whole, uint32_t chunk, bt_set s) {
  if (!whole && chunk != 2048) return -1;
  for (size_t i = 0; i < sizeof PAPER / sizeof *PAPER; i++)
    if (PAPER[i].whole == whole && strcmp(PAPER[i].name, name) == 0) return PAPER[i].rate[s];
  return -1;
}

/* ==================================================================== */
/* State                                                                */
/* ==================================================================== */

typedef struct {
  bt_set set;
  const char *source;     /* NULL: the default */
  char source_shown[4096];
  uint8_t *all;           /* the prepared set */
  size_t n_all;
  bt_prep_info info;
  uint8_t *sel;           /* the evaluated chunks, concatenated */
  size_t n_sel;
  uint64_t k, n_chunks;   /* chunks evaluated, chunks there are */
} dataset_t;

typedef struct {
  char name[256];         /* the file's name without .h5, e.g. bt-200K */
  char path[4096];
  bt_codec *codec;
  size_t params;
  int preset;             /* index into PRESETS, or -1 */
} model_t;

typedef struct {
  const char *compressor;
  int whole;              /* 1: "inf", the data compressed in one piece */
  bt_set set;
  uint64_t raw, comp;     /* bytes */
  double extra;           /* model bytes counted by the adjusted rate */
  int model;              /* index into g_models, or -1 for a baseline */
  double logloss_bits, seconds;
  uint64_t stored, n_chunks;
  int done;
} row_t;

static struct {
  int verbose, quiet, tty, use_cache;
  uint32_t chunk;
  size_t max_bytes;
} g_opt = {.chunk = 2048, .max_bytes = DEFAULT_MAX_BYTES, .use_cache = 1};

static dataset_t g_sets[BT_SET__COUNT];
static int g_nsets;
static int g_bl[BT_BL__COUNT], g_nbl; /* baselines to run, in table order */
static model_t g_models[MAX_MODELS];
static int g_nmodels;
static row_t *g_rows;
static int g_nrows;
static double g_t0;

/* ==================================================================== */
/* Usage                                                                */
/* ==================================================================== */

static void usage(FILE *f) {
  fprintf(f,
          "usage: %s [options]\n"
          "Remakes Table 1 of \"Language Modeling Is Compression\": the raw and adjusted\n"
          "compression rates of gzip, LZMA2 (xz), PNG, FLAC, zstd -19, bzip2 -9 and bt's\n"
          "transformers on text, ImageNet image patches, LibriSpeech 8-bit audio and\n"
          "random bytes, each cut into chunks compressed on their own (and, for the\n"
          "baselines, whole). Prints a markdown table with the paper's numbers beside\n"
          "ours; --csv writes the rows as CSV.\n"
          "\n"
          "  --ckpt FILE         a transformer row per checkpoint (repeatable; default:\n"
          "                      every checkpoints/bt-*.h5 shipped beside the program)\n"
          "  --max-bytes N       bytes evaluated per data set: an evenly spaced subset of\n"
          "                      its chunks, the same for every compressor; 0 = all\n"
          "                      (default %zu, 384 chunks of 2048: the default run, 6 baselines\n"
          "                      and the 200K, 800K and 3.2M models on all 4 sets, takes\n"
          "                      about 5 minutes on 2 idle cores, under 15 when shared)\n"
          "  --chunk N           chunk size in bytes (default 2048, the paper's)\n"
          "  --datasets LIST     comma-separated subset of text,image,audio,random\n"
          "  --compressors LIST  comma-separated subset of gzip,lzma2,png,flac,zstd,bzip2\n"
          "                      and checkpoint names (bt-200K, ...; 'bt' = all of them)\n"
          "  --csv FILE          also write the rows as CSV (- for stdout)\n"
          "  --data DIR          the data folder (default $BT_DATA, else ../shared/data from\n"
          "                      here or from the source tree the program was built in)\n"
          "  --source SET=SRC    another source for a set: text=FILE or data set name,\n"
          "                      image=DIR, audio=DIR, random=SEED (repeatable)\n"
          "      --no-cache      neither read nor write the prepared-data cache\n"
          "  -T, --threads N     threads (default: OMP_NUM_THREADS or all cores)\n"
          "  -v, --verbose       data set details and one line per finished row\n"
          "  -q, --quiet         no progress display\n"
          "  -V, --version       print the version\n"
          "  -h, --help          this help\n"
          "A progress line is shown on stderr when it is a terminal. CSV columns:\n"
          "compressor,chunk,dataset,raw_bytes,compressed_bytes,raw_rate,adjusted_rate\n"
          "(rates as fractions; chunk is the chunk size or inf).\n",
          g_prog, DEFAULT_MAX_BYTES);
}

/* ==================================================================== */
/* Checkpoints                                                          */
/* ==================================================================== */

static void model_name_of(const char *path, char *out, size_t cap) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  size_t l = strlen(base);
  if (l > 3 && strcmp(base + l - 3, ".h5") == 0) l -= 3;
  snprintf(out, cap, "%.*s", (int)l, base);
}

static void add_model_path(const char *path) {
  if (g_nmodels == MAX_MODELS) bt_usage_error("at most %d checkpoints", MAX_MODELS);
  model_t *m = &g_models[g_nmodels++];
  snprintf(m->path, sizeof m->path, "%s", path);
  model_name_of(path, m->name, sizeof m->name);
  m->preset = -1;
}

/* The shipped checkpoints: checkpoints/bt-*.h5 beside the program's build
 * folder (as bt-compress finds its default), else in the current folder. */
static void find_default_models(void) {
  char exe[4096], pat[4200];
  const char *dirs[2] = {NULL, "."};
  ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (k > 0) {
    exe[k] = '\0';
    dirs[0] = dirname(exe);
  }
  for (int i = 0; i < 2; i++) {
    if (!dirs[i]) continue;
    snprintf(pat, sizeof pat, i == 0 ? "%s/../checkpoints/bt-*.h5" : "%s/checkpoints/bt-*.h5", dirs[i]);
    glob_t g;
    if (glob(pat, 0, NULL, &g) == 0) {
      for (size_t j = 0; j < g.gl_pathc && g_nmodels < MAX_MODELS; j++) add_model_path(g.gl_pathv[j]);
      globfree(&g);
      return;
    }
  }
}

/* Without --data or $BT_DATA the data folder is ../shared/data from the
 * current folder (data.h); from elsewhere, the one beside the program's
 * source tree (build/../../shared/data) is used when it exists. */
static void find_default_data(void) {
  const char *env = getenv("BT_DATA");
  char exe[4096], path[4200];
  if ((env && *env) || access("../shared/data", R_OK) == 0) return;
  ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (k <= 0) return;
  exe[k] = '\0';
  snprintf(path, sizeof path, "%s/../../shared/data", dirname(exe));
  if (access(path, R_OK) == 0) setenv("BT_DATA", path, 1);
}

static int cmp_models(const void *a, const void *b) {
  const model_t *x = a, *y = b;
  if (x->params != y->params) return x->params < y->params ? -1 : 1;
  return strcmp(x->name, y->name);
}

static int open_models(void) {
  for (int i = 0; i < g_nmodels; i++) {
    model_t *m = &g_models[i];
    bt_error e = bt_codec_open(&m->codec, m->path);
    if (e) {
      bt_msg("cannot load checkpoint %s: %s: %s", m->path, bt_error_name(e), bt_error_detail());
      return -1;
    }
    m->params = bt_codec_num_params(m->codec);
    /* The bfloat16 K/V cache, as every documented study measured (the
     * table, the sweep, the context study); bt-compress's chunks default to
     * int8, whose rates differ by < 0.01 points. */
    bt_codec_set_kv8(m->codec, 0);
    for (size_t p = 0; p < sizeof PRESETS / sizeof *PRESETS; p++)
      if (PRESETS[p].params == m->params) m->preset = (int)p;
  }
  qsort(g_models, (size_t)g_nmodels, sizeof *g_models, cmp_models);
  return 0;
}

/* ==================================================================== */
/* Progress                                                             */
/* ==================================================================== */

typedef struct {
  const row_t *row;
  double t0, last; /* the row's start, the last line shown */
} progress_t;

static void fmt_clock(double s, char *out, size_t cap) {
  long t = (long)(s + 0.5);
  snprintf(out, cap, "%ld:%02ld", t / 60, t % 60);
}

static void row_label(const row_t *r, char *out, size_t cap) {
  char chunk[32];
  if (r->whole) snprintf(chunk, sizeof chunk, "inf");
  else snprintf(chunk, sizeof chunk, "%u", g_opt.chunk);
  snprintf(out, cap, "[%2d/%d] %s %s %s", (int)(r - g_rows) + 1, g_nrows, r->compressor, chunk, bt_set_name(r->set));
}

static void on_progress(void *user, uint64_t done, uint64_t total) {
  progress_t *p = user;
  if (!g_opt.tty || g_opt.quiet) return;
  double t = bt_now_s();
  if (t - p->last < 0.25 && done < total) return;
  p->last = t;
  double rate = done / (t - p->t0 + 1e-9);
  char label[512], el[32];
  row_label(p->row, label, sizeof label);
  fmt_clock(t - g_t0, el, sizeof el);
  fprintf(stderr, "\r%s: %5.1f%%  %.2f of %.2f MB  %.1f kB/s  ETA %.0f s  (elapsed %s)\033[K", label,
          total ? 100.0 * done / total : 100.0, done / 1e6, total / 1e6, rate / 1e3,
          rate > 0 ? (total - done) / rate : 0.0, el);
}

static void row_finished(const row_t *r) {
  if (g_opt.tty && !g_opt.quiet) fputs("\r\033[K", stderr);
  if (!g_opt.verbose) return;
  char label[512], el[32];
  row_label(r, label, sizeof label);
  fmt_clock(bt_now_s() - g_t0, el, sizeof el);
  fprintf(stderr, "%s: %.2f%%", label, 100.0 * (double)r->comp / (double)r->raw);
  if (r->model >= 0)
    fprintf(stderr, " (log-loss %.2f%%, %llu/%llu chunks stored)", 100.0 * r->logloss_bits / 8.0 / (double)r->raw,
            (unsigned long long)r->stored, (unsigned long long)r->n_chunks);
  fprintf(stderr, " in %.1f s, %.1f kB/s (elapsed %s)\n", r->seconds, r->raw / (r->seconds + 1e-9) / 1e3, el);
}

/* ==================================================================== */
/* Data                                                                 */
/* ==================================================================== */

/* Keeps k evenly spaced chunks of the set: chunk i_j = floor(j * n / k) for
 * j = 0..k-1 of the n whole chunks there are (a partial last one is never
 * used), k = max_bytes / chunk (at least 1; all n when max_bytes is 0). */
static int select_chunks(dataset_t *d) {
  const size_t c = g_opt.chunk;
  d->n_chunks = d->n_all / c;
  if (d->n_chunks == 0) {
    bt_msg("%s: %zu bytes is less than one chunk of %zu", bt_set_name(d->set), d->n_all, c);
    return -1;
  }
  uint64_t k = g_opt.max_bytes ? g_opt.max_bytes / c : d->n_chunks;
  if (k < 1) k = 1;
  if (k > d->n_chunks) k = d->n_chunks;
  d->k = k;
  d->n_sel = (size_t)k * c;
  if (!(d->sel = malloc(d->n_sel))) {
    bt_msg("out of memory");
    return -1;
  }
  for (uint64_t j = 0; j < k; j++) {
    uint64_t i = (uint64_t)((unsigned __int128)j * d->n_chunks / k);
    memcpy(d->sel + j * c, d->all + i * c, c);
  }
  return 0;
}

static int prepare_set(dataset_t *d) {
  double t = bt_now_s();
  if (g_opt.tty && !g_opt.quiet) fprintf(stderr, "\rpreparing %s ...\033[K", bt_set_name(d->set));
  if (d->source) snprintf(d->source_shown, sizeof d->source_shown, "%s", d->source);
  else bt_set_default_source(d->set, d->source_shown, sizeof d->source_shown);
  bt_error e = bt_prepare(d->set, d->source_shown, g_opt.use_cache, 0, &d->all, &d->n_all, &d->info);
  if (g_opt.tty && !g_opt.quiet) fputs("\r\033[K", stderr);
  if (e) {
    bt_msg("%s: %s: %s", bt_set_name(d->set), bt_error_name(e), bt_error_detail());
    return -1;
  }
  if (select_chunks(d)) return -1;
  if (g_opt.verbose) {
    char hex[65];
    bt_sha256_hex(d->info.sha256, hex);
    fprintf(stderr, "%s: %zu bytes, sha256 %s, from %s%s; evaluating %llu of %llu chunks (%.1f s)\n",
            bt_set_name(d->set), d->n_all, hex, d->source_shown, d->info.from_cache ? " (cached)" : "",
            (unsigned long long)d->k, (unsigned long long)d->n_chunks, bt_now_s() - t);
  }
  free(d->all); /* only the evaluated chunks are needed from here on */
  d->all = NULL;
  return 0;
}

/* ==================================================================== */
/* Running the rows                                                     */
/* ==================================================================== */

/* A classical compressor chunked: every chunk on its own, in parallel, then
 * the paper's header correction, len(C(b"\x00")) subtracted once per chunk
 * beyond the first. */
static int run_baseline_chunked(row_t *r, bt_baseline b, const dataset_t *d, bt_bl_ctx **ctx, int nt) {
  const size_t c = g_opt.chunk;
  uint64_t total = 0, done = 0;
  int bad = 0;
  progress_t pr = {r, bt_now_s(), 0};
#pragma omp parallel num_threads(nt) reduction(+ : total)
  {
    bt_bl_ctx *cx = ctx[omp_get_thread_num()];
#pragma omp for schedule(dynamic, 16)
    for (uint64_t j = 0; j < d->k; j++) {
      size_t sz = 0;
      int failed;
#pragma omp atomic read
      failed = bad;
      if (failed) continue;
      if (bt_baseline_compress(cx, b, d->sel + j * c, c, &sz, NULL)) {
#pragma omp critical(bt_eval_err)
        if (!bad) {
          bt_msg("%s on %s: %s", bt_baseline_name(b), bt_set_name(d->set), bt_error_detail());
          bad = 1;
        }
        continue;
      }
      total += sz;
      uint64_t dn;
#pragma omp atomic capture
      dn = ++done;
      if (omp_get_thread_num() == 0) on_progress(&pr, dn * c, d->n_sel);
    }
  }
  if (bad) return -1;
  const uint8_t zero = 0;
  size_t header;
  if (bt_baseline_compress(ctx[0], b, &zero, 1, &header, NULL)) {
    bt_msg("%s: %s", bt_baseline_name(b), bt_error_detail());
    return -1;
  }
  r->raw = d->n_sel;
  r->comp = total - (uint64_t)header * (d->k - 1);
  r->n_chunks = d->k;
  r->seconds = bt_now_s() - pr.t0;
  return 0;
}

static int run_baseline_whole(row_t *r, bt_baseline b, const dataset_t *d, bt_bl_ctx *cx) {
  double t = bt_now_s();
  progress_t pr = {r, t, 0};
  on_progress(&pr, 0, d->n_sel);
  size_t sz;
  if (bt_baseline_compress(cx, b, d->sel, d->n_sel, &sz, NULL)) {
    bt_msg("%s on %s: %s", bt_baseline_name(b), bt_set_name(d->set), bt_error_detail());
    return -1;
  }
  r->raw = d->n_sel;
  r->comp = sz;
  r->n_chunks = 1;
  r->seconds = bt_now_s() - t;
  return 0;
}

/* A transformer row: really compressed by bt's coder. The rate counts the
 * chunks' payloads (coded, or stored raw when coding would not shrink one),
 * as the paper counts each chunk's code; the container's 64-byte header and
 * 4-byte chunk table entries, there for random access, are left out. */
static int run_model(row_t *r, model_t *m, const dataset_t *d, uint8_t **out, size_t *out_cap) {
  size_t need = bt_compress_bound(d->n_sel, g_opt.chunk);
  if (need > *out_cap) {
    uint8_t *p = realloc(*out, need);
    if (!p) {
      bt_msg("out of memory");
      return -1;
    }
    *out = p;
    *out_cap = need;
  }
  progress_t pr = {r, bt_now_s(), 0};
  bt_codec_stats st;
  size_t len = 0;
  bt_error e = bt_compress(m->codec, d->sel, d->n_sel, g_opt.chunk, *out, &len, &st, on_progress, &pr);
  if (e) {
    bt_msg("%s on %s: %s: %s", m->name, bt_set_name(d->set), bt_error_name(e), bt_error_detail());
    return -1;
  }
  r->raw = d->n_sel;
  r->comp = st.out_bytes - bt_container_header_size(st.n_chunks);
  r->extra = 2.0 * (double)m->params;
  r->logloss_bits = st.logloss_bits;
  r->stored = st.stored_chunks;
  r->n_chunks = st.n_chunks;
  r->seconds = st.seconds;
  return 0;
}

static int run_all(void) {
  int nt = omp_get_max_threads();
  if (nt < 1) nt = 1;
  bt_bl_ctx **ctx = calloc((size_t)nt, sizeof *ctx);
  int rc = ctx ? 0 : -1;
  for (int i = 0; i < nt && !rc; i++)
    if (bt_bl_ctx_create(&ctx[i])) rc = -1;
  uint8_t *out = NULL;
  size_t out_cap = 0;
  for (int i = 0; i < g_nrows && !rc; i++) {
    row_t *r = &g_rows[i];
    const dataset_t *d = NULL;
    for (int s = 0; s < g_nsets; s++)
      if (g_sets[s].set == r->set) d = &g_sets[s];
    if (r->model >= 0) {
      rc = run_model(r, &g_models[r->model], d, &out, &out_cap);
    } else {
      bt_baseline b;
      bt_baseline_parse(r->compressor, &b);
      rc = r->whole ? run_baseline_whole(r, b, d, ctx[0]) : run_baseline_chunked(r, b, d, ctx, nt);
    }
    if (!rc) {
      r->done = 1;
      row_finished(r);
    }
  }
  if (g_opt.tty && !g_opt.quiet) fputs("\r\033[K", stderr);
  free(out);
  for (int i = 0; ctx && i < nt; i++) bt_bl_ctx_free(ctx[i]);
  free(ctx);
  return rc;
}

/* ==================================================================== */
/* Output                                                               */
/* ==================================================================== */

static double rate_of(const row_t *r) { return (double)r->comp / (double)r->raw; }
static double adjusted_of(const row_t *r) { return ((double)r->comp + r->extra) / (double)r->raw; }

static const row_t *find_row(const char *name, int whole, bt_set s) {
  for (int i = 0; i < g_nrows; i++)
    if (g_rows[i].set == s && g_rows[i].whole == whole && strcmp(g_rows[i].compressor, name) == 0) return &g_rows[i];
  return NULL;
}

static void print_group(uint64_t v, char *out, size_t cap) { /* 1234567 -> "1,234,567" */
  char digits[32];
  int n = snprintf(digits, sizeof digits, "%llu", (unsigned long long)v), o = 0;
  for (int i = 0; i < n && o + 2 < (int)cap; i++) {
    if (i && (n - i) % 3 == 0) out[o++] = ',';
    out[o++] = digits[i];
  }
  out[o] = '\0';
}

static void print_table1_row(FILE *f, const char *name, int whole, const char *paper_name) {
  if (whole) fprintf(f, "| inf | %s |", name);
  else fprintf(f, "| %u | %s |", g_opt.chunk, name);
  for (int s = 0; s < g_nsets; s++) {
    const row_t *r = find_row(name, whole, g_sets[s].set);
    double p = paper_rate(paper_name ? paper_name : name, whole, g_opt.chunk, g_sets[s].set);
    if (!r || !r->done) fprintf(f, " – |");
    else if (p >= 0) fprintf(f, " %.1f (%.1f) |", 100.0 * rate_of(r), p);
    else fprintf(f, " %.1f |", 100.0 * rate_of(r));
  }
  fputc('\n', f);
}

static void print_markdown(FILE *f, int argc, char **argv) {
  fprintf(f, "## Compression rates: Table 1 of \"Language Modeling Is Compression\", remade\n\n");
  fprintf(f, "`");
  for (int i = 0; i < argc; i++) fprintf(f, "%s%s", i ? " " : "", i ? argv[i] : g_prog);
  fprintf(f, "` (%d threads, %s kernels)\n\n", omp_get_max_threads(), bt_isa_name(bt_isa_get()));

  fprintf(f, "| set | source | prepared bytes | sha256 | evaluated |\n|---|---|---|---|---|\n");
  for (int s = 0; s < g_nsets; s++) {
    const dataset_t *d = &g_sets[s];
    char hex[65], all[32], sel[32], n[32];
    bt_sha256_hex(d->info.sha256, hex);
    print_group(d->n_all, all, sizeof all);
    print_group(d->n_sel, sel, sizeof sel);
    print_group(d->n_chunks, n, sizeof n);
    fprintf(f, "| %s | %s", bt_set_name(d->set), d->source_shown);
    if (d->info.n_files) fprintf(f, " (%llu files)", (unsigned long long)d->info.n_files);
    fprintf(f, " | %s | %.12s… | %s bytes: %llu of %s chunks of %u, evenly spaced |\n", all, hex, sel,
            (unsigned long long)d->k, n, g_opt.chunk);
  }

  fprintf(f, "\n### Raw compression rate, %% (lower is better); the paper's Table 1 value in parentheses\n\n");
  fprintf(f, "| chunk | compressor |");
  for (int s = 0; s < g_nsets; s++) fprintf(f, " %s |", bt_set_name(g_sets[s].set));
  fprintf(f, "\n|---|---|");
  for (int s = 0; s < g_nsets; s++) fprintf(f, "---|");
  fputc('\n', f);
  for (int i = 0; i < g_nbl; i++) print_table1_row(f, bt_baseline_name((bt_baseline)g_bl[i]), 1, NULL);
  for (int i = 0; i < g_nbl; i++) print_table1_row(f, bt_baseline_name((bt_baseline)g_bl[i]), 0, NULL);
  for (int i = 0; i < g_nmodels; i++)
    print_table1_row(f, g_models[i].name, 0, g_models[i].preset >= 0 ? PRESETS[g_models[i].preset].name : "-");

  if (g_nmodels) {
    fprintf(f, "\n### Transformers: coded rate beside the model's log-loss; adjusted rate\n\n");
    fprintf(f, "| compressor | params | set | coded %% | log-loss %% | chunks stored raw | adjusted %% "
               "| paper raw %% | paper adjusted %% | kB/s |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < g_nmodels; i++) {
      const model_t *m = &g_models[i];
      for (int s = 0; s < g_nsets; s++) {
        const row_t *r = find_row(m->name, 0, g_sets[s].set);
        if (!r || !r->done) continue;
        char params[32];
        print_group(m->params, params, sizeof params);
        double p = m->preset >= 0 ? paper_rate(PRESETS[m->preset].name, 0, g_opt.chunk, r->set) : -1;
        fprintf(f, "| %s | %s | %s | %.2f | %.2f | %llu of %llu | %.1f |", m->name, params, bt_set_name(r->set),
                100.0 * rate_of(r), 100.0 * r->logloss_bits / 8.0 / (double)r->raw, (unsigned long long)r->stored,
                (unsigned long long)r->n_chunks, 100.0 * adjusted_of(r));
        if (p >= 0) fprintf(f, " %.1f |", p);
        else fprintf(f, " – |");
        if (m->preset >= 0 && r->set == BT_SET_TEXT && g_opt.chunk == 2048)
          fprintf(f, " %.1f |", PRESETS[m->preset].adjusted_text);
        else fprintf(f, " – |");
        fprintf(f, " %.1f |\n", (double)r->raw / (r->seconds + 1e-9) / 1e3);
      }
    }
  }
  fprintf(f,
          "\nRates pool all evaluated bytes (sum compressed / sum raw). Chunked baselines count their\n"
          "header once: len(C(b\"\\x00\")) is subtracted per chunk beyond the first. \"inf\" rows compress the\n"
          "same evaluated chunks concatenated, in one piece. Transformer rows are real range coding; a chunk\n"
          "that would not shrink is stored raw, so their coded rate never passes 100%% (the paper's coder\n"
          "has no such fallback: its numbers above 100%% match our log-loss column). The adjusted rate adds\n"
          "2 bytes per parameter to the evaluated bytes' code; the paper's is over ~1 GB of enwik9. Our text\n"
          "is Wikipedia plain text (wiki-valid10m), the paper's is enwik9 (Wikipedia XML).\n");
}

static int write_csv(const char *path) {
  FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
  if (!f) {
    bt_msg("cannot write %s: %s", path, strerror(errno));
    return -1;
  }
  fprintf(f, "compressor,chunk,dataset,raw_bytes,compressed_bytes,raw_rate,adjusted_rate\n");
  for (int i = 0; i < g_nrows; i++) {
    const row_t *r = &g_rows[i];
    if (!r->done) continue;
    char chunk[32];
    if (r->whole) snprintf(chunk, sizeof chunk, "inf");
    else snprintf(chunk, sizeof chunk, "%u", g_opt.chunk);
    fprintf(f, "%s,%s,%s,%llu,%llu,%.6f,%.6f\n", r->compressor, chunk, bt_set_name(r->set),
            (unsigned long long)r->raw, (unsigned long long)r->comp, rate_of(r), adjusted_of(r));
  }
  int bad = ferror(f);
  if (f != stdout) bad |= fclose(f) != 0;
  else bad |= fflush(f) != 0;
  if (bad) bt_msg("cannot write %s: %s", path, strerror(errno));
  return bad ? -1 : 0;
}

/* ==================================================================== */
/* main                                                                 */
/* ==================================================================== */

/* Calls fn on each non-empty item of a comma-separated list (split in a
 * copy: argv stays intact for the report; fn copies what it keeps). */
static void each_item(const char *list, void (*fn)(const char *)) {
  char *copy = strdup(list);
  if (!copy) bt_usage_error("out of memory");
  for (char *save = NULL, *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) fn(t);
  free(copy);
}

static int g_want_set[BT_SET__COUNT], g_sets_given;
static void want_set(const char *name) {
  bt_set s;
  if (bt_set_parse(name, &s)) bt_usage_error("unknown data set '%s' (text, image, audio, random)", name);
  g_want_set[s] = 1;
}

static char *g_comp_names[64];
static int g_ncomp = -1; /* -1: no --compressors given */
static void want_compressor(const char *name) {
  if (g_ncomp == 64) bt_usage_error("too many --compressors");
  if (!(g_comp_names[g_ncomp] = strdup(name))) bt_usage_error("out of memory");
  g_ncomp++;
}
static int compressor_wanted(const char *name, int is_model) {
  if (g_ncomp < 0) return 1;
  for (int i = 0; i < g_ncomp; i++)
    if (strcmp(g_comp_names[i], name) == 0 || (is_model && strcmp(g_comp_names[i], "bt") == 0)) return 1;
  return 0;
}

static unsigned long long parse_count(const char *opt, const char *s, unsigned long long max) {
  return bt_cli_count(opt, s, 0, max);
}

int main(int argc, char **argv) {
  bt_dist_init(&argc, &argv);
  bt_cli_init(g_prog, "[--ckpt M.h5 ...] [--max-bytes N] [--chunk N] [--datasets LIST]\n"
              "       [--compressors LIST] [--csv OUT.csv] [--data DIR] [--source SET=SRC]");
  enum { O_CKPT = 256, O_MAX, O_CHUNK, O_SETS, O_COMPS, O_CSV, O_DATA, O_SOURCE, O_NOCACHE };
  static const struct option lo[] = {
      {"ckpt", 1, 0, O_CKPT}, {"max-bytes", 1, 0, O_MAX}, {"chunk", 1, 0, O_CHUNK}, {"datasets", 1, 0, O_SETS},
      {"compressors", 1, 0, O_COMPS}, {"csv", 1, 0, O_CSV}, {"data", 1, 0, O_DATA}, {"source", 1, 0, O_SOURCE},
      {"no-cache", 0, 0, O_NOCACHE}, {"threads", 1, 0, 'T'}, {"verbose", 0, 0, 'v'}, {"quiet", 0, 0, 'q'},
      {"version", 0, 0, 'V'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  const char *csv = NULL, *sources[BT_SET__COUNT] = {0};
  int threads = 0, ckpt_given = 0;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, ":T:vqVh", lo, NULL)) != -1) {
    switch (c) {
    case O_CKPT: add_model_path(optarg), ckpt_given = 1; break;
    case O_MAX: g_opt.max_bytes = (size_t)parse_count("--max-bytes", optarg, 1ull << 40); break;
    case O_CHUNK: g_opt.chunk = (uint32_t)parse_count("--chunk", optarg, 1u << 24); break;
    case O_SETS: g_sets_given = 1, each_item(optarg, want_set); break;
    case O_COMPS:
      if (g_ncomp < 0) g_ncomp = 0;
      each_item(optarg, want_compressor);
      break;
    case O_CSV: csv = optarg; break;
    case O_DATA: setenv("BT_DATA", optarg, 1); break;
    case O_SOURCE: {
      const char *eq = strchr(optarg, '=');
      char name[16];
      bt_set s;
      if (!eq) bt_usage_error("--source wants SET=SOURCE, not '%s'", optarg);
      snprintf(name, sizeof name, "%.*s", (int)(eq - optarg < 15 ? eq - optarg : 15), optarg);
      if (bt_set_parse(name, &s)) bt_usage_error("unknown data set '%s' in --source", name);
      sources[s] = eq + 1;
      break;
    }
    case O_NOCACHE: g_opt.use_cache = 0; break;
    case 'T': threads = (int)parse_count("thread count", optarg, 4096); break;
    case 'v': g_opt.verbose = 1; break;
    case 'q': g_opt.quiet = 1; break;
    case 'V': printf("%s %s\n", g_prog, BT_VERSION); return 0;
    case 'h': usage(stdout); return 0;
    case ':': bt_usage_error("option %s needs a value", argv[optind - 1]);
    default: bt_usage_error("unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind < argc) bt_usage_error("unexpected argument '%s'", argv[optind]);
  if (g_opt.chunk == 0) bt_usage_error("invalid --chunk '0' (1..2^24 bytes)");
  find_default_data();
  bt_cli_apply_isa();
  if (threads > 0) bt_set_threads(threads);
  g_opt.tty = isatty(2) && !g_opt.quiet;

  /* what to run */
  for (int s = 0; s < BT_SET__COUNT; s++)
    if (!g_sets_given || g_want_set[s]) {
      g_sets[g_nsets].set = (bt_set)s;
      g_sets[g_nsets].source = sources[s];
      g_nsets++;
    }
  for (int b = 0; b < BT_BL__COUNT; b++)
    if (compressor_wanted(bt_baseline_name((bt_baseline)b), 0)) g_bl[g_nbl++] = b;
  if (!ckpt_given) find_default_models();
  int kept = 0;
  for (int i = 0; i < g_nmodels; i++)
    if (compressor_wanted(g_models[i].name, 1)) g_models[kept++] = g_models[i];
  g_nmodels = kept;
  for (int i = 0; i < g_ncomp; i++) { /* every name given must mean something */
    bt_baseline b;
    int found = bt_baseline_parse(g_comp_names[i], &b) == 0 || strcmp(g_comp_names[i], "bt") == 0;
    for (int m = 0; m < g_nmodels && !found; m++) found = strcmp(g_models[m].name, g_comp_names[i]) == 0;
    if (!found)
      bt_usage_error("unknown compressor '%s' (gzip, lzma2, png, flac, zstd, bzip2, bt, or a checkpoint's name)",
                  g_comp_names[i]);
  }
  if (g_nbl == 0 && g_nmodels == 0) bt_usage_error("nothing to run: no compressor selected and no checkpoint found");
  if (open_models()) return 1;
  /* mpirun: every rank runs the same rows; each codes its run of a row's
   * chunks (coder/share.h), rank 0 gathers them, and only rank 0 reports. */
  if (bt_dist_size() > 1) {
    for (int i = 0; i < g_nmodels; i++)
      bt_codec_set_share(g_models[i].codec, bt_dist_rank(), bt_dist_size(), bt_share_exchange, NULL);
    if (bt_dist_rank() > 0) {
      g_opt.quiet = 1, g_opt.verbose = 0, g_opt.tty = 0;
      csv = NULL;
      if (!freopen("/dev/null", "w", stdout))
        return 1;
    }
  }

  /* rows in table order: baselines whole, baselines chunked, transformers */
  g_nrows = g_nsets * (2 * g_nbl + g_nmodels);
  g_rows = calloc((size_t)g_nrows, sizeof *g_rows);
  if (!g_rows) {
    bt_msg("out of memory");
    return 1;
  }
  int k = 0;
  for (int whole = 1; whole >= 0; whole--)
    for (int i = 0; i < g_nbl; i++)
      for (int s = 0; s < g_nsets; s++)
        g_rows[k++] = (row_t){.compressor = bt_baseline_name((bt_baseline)g_bl[i]), .whole = whole,
                              .set = g_sets[s].set, .model = -1};
  for (int i = 0; i < g_nmodels; i++)
    for (int s = 0; s < g_nsets; s++)
      g_rows[k++] = (row_t){.compressor = g_models[i].name, .set = g_sets[s].set, .model = i};

  g_t0 = bt_now_s();
  int rc = 0;
  for (int s = 0; s < g_nsets && !rc; s++) rc = prepare_set(&g_sets[s]);
  if (!rc) rc = run_all();
  if (!rc) {
    print_markdown(stdout, argc, argv);
    if (csv) rc = write_csv(csv);
  }
  if (g_opt.verbose && !rc) bt_msg("done in %.1f s", bt_now_s() - g_t0);
  for (int s = 0; s < g_nsets; s++) free(g_sets[s].sel), free(g_sets[s].all);
  for (int i = 0; i < g_nmodels; i++) bt_codec_free(g_models[i].codec);
  free(g_rows);
  for (int i = 0; i < g_ncomp; i++) free(g_comp_names[i]);
  fflush(stdout);
  return rc || ferror(stdout) ? 1 : 0;
}
