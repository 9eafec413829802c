/*
 * bt-compress / bt-decompress - lossless compression with a byte transformer.
 * Behaves like gzip, zstd and xz: FILE -> FILE.bt, -d, -c, -k, -f, -o, -t, -l.
 * Built twice: bt-decompress is this file with BT_DEFAULT_DECOMPRESS=1.
 *
 * What it promises about files, as gzip does:
 *   - an output is written to a temporary file beside it and renamed into
 *     place only once complete and on disk; an interrupted run leaves the old
 *     file (if any) and removes its temporary file;
 *   - an output that is the input (same device and inode) is refused;
 *   - without -f, symlinks, multiply-linked files and anything that is not a
 *     regular file are skipped as inputs (exit status 2, a warning);
 *   - nothing that is not a regular file is ever deleted or replaced: an
 *     existing FIFO or character device named as the output is written to,
 *     as `-c > it` would;
 *   - --rm deletes an input only after its output has been verified, written,
 *     synced and its folder synced.
 * Exit status: 0 success, 1 error, 2 warning (some input skipped).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "coder/codec.h"
#include "coder/coder.h"
#include "coder/cm.h"
#include "kernels/fileio.h"
#include "kernels/hash.h"
#include "tools/cli.h"
#include "kernels/kernels.h"
#include "train/ckpt.h"
#include "coder/share.h"
#include "train/dist.h"

#ifndef BT_DEFAULT_DECOMPRESS
#define BT_DEFAULT_DECOMPRESS 0
#endif

#define SUFFIX ".bt"
/* Segment size of the default mode: long files code on every core, and
 * a file up to this size is one stream. */
#define BT_DEFAULT_SEGMENT (1 << 20)

enum { M_COMPRESS, M_DECOMPRESS, M_TEST, M_LIST };
/* What one input ends with; the program exits with the worst. */
enum { ST_OK = 0, ST_ERROR = 1, ST_WARN = 2 };

typedef struct {
  int mode, to_stdout, force, rm, verbose, quiet, threads, robot;
  long long chunk;
  int chunk_set, adapt; /* adapt: make adaptive members with schedule `ad` */
  int adapt_default;    /* adapt came from no mode being given */
  bt_adapt ad;
  uint64_t max_size; /* 0: the codec's default rule */
  int kv8;           /* --kv: BT_KV_AUTO, 0 bf16 (version 3) or 1 int8 (version 4) */
  const char *ckpt, *out;
} opts_t;

static const char *g_prog;
static int g_tty_progress;

static void usage(FILE *f) {
  if (BT_DEFAULT_DECOMPRESS)
    fprintf(f,
            "usage: %s [options] [FILE.bt...]\n"
            "Restores FILE from FILE" SUFFIX ", made by bt-compress (or compresses with -z).\n"
            "Concatenated " SUFFIX " files restore to the concatenation of their contents.\n",
            g_prog);
  else
    fprintf(f,
            "usage: %s [options] [FILE...]\n"
            "Compresses FILE to FILE" SUFFIX " with a byte-level transformer (or restores it with -d).\n",
            g_prog);
  fprintf(f,
          "With no FILE or with -, reads stdin and writes stdout.\n"
          "\n"
          "  -d, --decompress   decompress%s\n"
          "  -z, --compress     compress%s\n"
          "  -t, --test         test the integrity of compressed files\n"
          "  -l, --list         list sizes, rates and models of compressed files (-v: every member)\n"
          "      --robot        with -l: tab-separated, machine-readable output\n"
          "  -c, --stdout       write to standard output, keep the input\n"
          "  -o, --output FILE  write to FILE (one input only; - is stdout)\n"
          "  -k, --keep         keep the input (the default)\n"
          "      --rm           remove the input once its output is written and verified\n"
          "  -f, --force        overwrite outputs; accept symlinks, linked and special files as\n"
          "                     inputs; write binary data to a terminal; lift --max-size\n"
          "  -m, --model NAME   model by name (200K, 800K, 3.2M, or any NAME.h5 on the search path:\n"
          "                     $BT_MODEL_PATH, the install's share/bt/models, checkpoints/)\n"
          "      --ckpt FILE    model checkpoint file (default: $BT_CKPT, else the 200K; without\n"
          "                     -m, --ckpt or $BT_CKPT, decompression picks the model the file names)\n"
          "      --list-models  list the models on the search path: name, parameters, size, hash\n"
          "  By default a file is coded adaptively: the model learns the file while coding\n"
          "  it, with a context-mixing predictor beside it, in independent segments of\n"
          "  1 MiB (one per core at a time). Decompression needs no mode flag. A BPE\n"
          "  model (bt-train --tokenizer) codes plain chunks of 2048 bytes, or its context.\n"
          "      --chunk N      the paper's plain coding: chunks of N bytes, each from BOS\n"
          "                     (2048 is the paper's; 0 = one stream with the model's context)\n"
          "      --adapt        adaptive coding (the default); with --chunk N or --segment N:\n"
          "                     segments of N bytes, 0 = one stream\n"
          "      --segment N    adaptive segments of N bytes (default 1 MiB)\n"
          "      --adapt-lr X, --adapt-lr-decay X, --adapt-steps N, --adapt-window N,\n"
          "      --adapt-parts ctx,match,sse|none\n"
          "                     the adaptive schedule (recorded in the file)\n"
          "      --kv auto|int8|bf16\n"
          "                     the model's key/value cache: int8, whose files (container\n"
          "                     version 4) decode up to 1.9x faster, compress as fast and\n"
          "                     differ in rate by < 0.01 points, or bfloat16 (version 3, read\n"
          "                     by bt before 2026-12-05). auto (the default): int8 for --chunk,\n"
          "                     bfloat16 for adaptive coding, where int8 gains nothing\n"
          "      --max-size N   refuse to decompress more than N bytes (K, M, G suffixes; 0 = no\n"
          "                     limit). Default: 1000 x the compressed size + 1 MiB per member\n"
          "  -T, --threads N    threads (default: OMP_NUM_THREADS or all cores; 0 = all cores)\n"
          "  -v, --verbose      report rates, bits per byte and throughput; progress\n"
          "  -q, --quiet        no warnings\n"
          "  -V, --version      print the version\n"
          "  -h, --help         this help\n"
          "Exit status: 0 success, 1 error, 2 warning (an input was skipped).\n"
          "Environment: BT_ISA=scalar|avx2|avx512 forces a SIMD path; files decode\n"
          "bit-exactly on any path, thread count and machine.\n",
          BT_DEFAULT_DECOMPRESS ? " (the default)" : "", BT_DEFAULT_DECOMPRESS ? "" : " (the default)");
}

static void warn(const opts_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(const opts_t *o, const char *fmt, ...) {
  if (o->quiet)
    return;
  char buf[4600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  bt_msg("%s", buf);
}

/* ==================================================================== */
/* Temporary files: removed when a signal stops the program             */
/* ==================================================================== */

static char g_tmp[PATH_MAX + 64];
static volatile sig_atomic_t g_tmp_live;

static void on_fatal_signal(int sig) {
  if (g_tmp_live)
    unlink(g_tmp);
  signal(sig, SIG_DFL);
  raise(sig);
}

static void install_signal_cleanup(void) {
  const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGXFSZ};
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(sigs[i], &sa, NULL);
  }
}

/* ==================================================================== */
/* I/O helpers                                                          */
/* ==================================================================== */

/* Reads all of fd into a malloc'd buffer. size_hint: bytes expected. */
static int read_fd_all(int fd, const char *name, size_t size_hint, uint8_t **buf, size_t *n) {
  size_t cap = size_hint > 0 ? size_hint + 1 : (size_t)1 << 20, len = 0;
  uint8_t *p = malloc(cap);
  for (;;) {
    if (!p) {
      bt_msg("%s: out of memory", name);
      return -1;
    }
    if (len == cap) {
      uint8_t *q = realloc(p, cap *= 2);
      if (!q)
        free(p);
      p = q;
      continue;
    }
    ssize_t k = read(fd, p + len, cap - len);
    if (k < 0 && errno == EINTR)
      continue;
    if (k < 0) {
      bt_msg("%s: %s", name, strerror(errno));
      free(p);
      return -1;
    }
    if (k == 0)
      break;
    len += (size_t)k;
  }
  *buf = p;
  *n = len;
  return 0;
}

static void split_path(const char *path, char *dir, char *base) {
  char a[PATH_MAX], b[PATH_MAX];
  snprintf(a, sizeof a, "%s", path);
  snprintf(b, sizeof b, "%s", path);
  snprintf(dir, PATH_MAX, "%s", dirname(a));
  snprintf(base, PATH_MAX, "%s", basename(b));
}

/* Writes dst atomically (kernels/fileio.h) with the input's mode, owner (as
 * root) and times. src_sb: the input's stat, or NULL (stdin: 0666 less the
 * umask). Without force an existing dst is never replaced. */
static int write_file_atomic(const char *dst, const uint8_t *p, size_t n, const struct stat *src_sb,
                             int force) {
  bt_atomic_file f;
  if (bt_atomic_begin(&f, dst) != BT_OK) {
    bt_msg("cannot write %s: %s", dst, bt_error_detail());
    return -1;
  }
  snprintf(g_tmp, sizeof g_tmp, "%s", f.tmp); /* for the signal handler */
  g_tmp_live = 1;
  const char *what = NULL;
  if (bt_write_full(f.fd, p, n) != 0)
    what = "write";
  if (!what) {
    mode_t mode;
    if (src_sb) {
      mode = src_sb->st_mode & 0777;
      if (geteuid() == 0 && fchown(f.fd, src_sb->st_uid, src_sb->st_gid) != 0)
        mode &= 0777; /* a failed chown keeps the permission bits: they are ours */
      struct timespec ts[2] = {src_sb->st_atim, src_sb->st_mtim};
      if (futimens(f.fd, ts) != 0)
        what = "set the times of";
    } else {
      mode_t um = umask(0);
      umask(um);
      mode = 0666 & ~um;
    }
    if (!what && fchmod(f.fd, mode) != 0)
      what = "set the mode of";
  }
  if (what) {
    bt_msg("cannot %s %s: %s", what, dst, strerror(errno));
    bt_atomic_abort(&f);
    g_tmp_live = 0;
    return -1;
  }
  bt_error e = bt_atomic_commit(&f, force);
  int err = errno;
  g_tmp_live = 0;
  if (e) {
    if (err == EEXIST)
      bt_msg("%s already exists; not overwritten (use -f)", dst);
    else
      bt_msg("cannot write %s: %s", dst, bt_error_detail());
    return -1;
  }
  return 0;
}

/* Writes into an existing FIFO or device as `-c > dst` would: no temporary
 * file, no rename, nothing replaced. */
static int write_into_special(const char *dst, const uint8_t *p, size_t n) {
  int fd = open(dst, O_WRONLY | O_NOCTTY | O_NOFOLLOW);
  if (fd < 0) {
    bt_msg("cannot write %s: %s", dst, strerror(errno));
    return -1;
  }
  struct stat sb;
  if (fstat(fd, &sb) != 0 || S_ISREG(sb.st_mode) || S_ISDIR(sb.st_mode)) {
    bt_msg("cannot write %s: it changed while bt ran", dst);
    close(fd);
    return -1;
  }
  int bad = bt_write_full(fd, p, n) != 0;
  if (close(fd) != 0)
    bad = 1;
  if (bad)
    bt_msg("cannot write %s: %s", dst, strerror(errno));
  return bad ? -1 : 0;
}

/* ==================================================================== */
/* Progress                                                             */
/* ==================================================================== */

typedef struct {
  const char *name;
  double t0, last;
  uint64_t shown; /* bytes of the last line shown */
} progress_t;

static void on_progress(void *user, uint64_t done, uint64_t total) {
  progress_t *p = user;
  double t = bt_now_s();
  if ((t - p->last < 0.25 && done < total) || (done == p->shown && p->last > 0))
    return;
  p->last = t;
  p->shown = done;
  double rate = done / (t - p->t0 + 1e-9);
  const int mb = total >= 1000000; /* small files in kB */
  const double u = mb ? 1e6 : 1e3;
  fprintf(stderr, "%s%s: %5.1f%%  %.*f %s of %.*f %s  %.1f kB/s  ETA %.0f s%s", g_tty_progress ? "\r" : "",
          p->name, total ? 100.0 * done / total : 100.0, mb ? 2 : 1, done / u, mb ? "MB" : "kB", mb ? 2 : 1,
          total / u, mb ? "MB" : "kB", rate / 1e3, rate > 0 ? (total - done) / rate : 0.0,
          g_tty_progress ? "\033[K" : "\n");
}

/* ==================================================================== */
/* Checkpoints: the default one, and names for weights hashes           */
/* ==================================================================== */

/* The model search path is the library's (codec.h's bt_model_*): each
 * folder of $BT_MODEL_PATH, the install's share/bt/models, the source
 * tree's checkpoints/ from a build folder; never the current folder. */

/* --ckpt, -m NAME, $BT_CKPT, or the shipped 200K on the search path; NULL
 * if a name is not found. */
static const char *find_ckpt(const char *given, const char *name) {
  static char path[PATH_MAX];
  if (given)
    return given;
  const char *env = getenv("BT_CKPT");
  if (!name && env && *env)
    return env;
  return bt_model_resolve(name ? name : "200K", path, sizeof path) == BT_OK ? path : NULL;
}

/* The models on the search path, with `ckpt` (the --ckpt file, or NULL)
 * first. Scanned once a run: each scan reads and hashes every checkpoint
 * on the path, and -l and multi-file decompression ask once a file. */
static const bt_model_info *known_model(const uint8_t sha[32], const char *ckpt) {
  enum { MAX_MODELS = 64 };
  static bt_model_info known[MAX_MODELS];
  static int n = -1;
  if (n < 0) {
    n = bt_model_list(ckpt, known, MAX_MODELS);
    if (n > MAX_MODELS)
      n = MAX_MODELS;
  }
  for (int i = 0; i < n; i++)
    if (!memcmp(known[i].sha256, sha, 32))
      return &known[i];
  /* Not on the list: a retired model (found by hash only), remembered in
   * the same list once found. */
  if (n < MAX_MODELS && bt_model_find_sha256(sha, NULL, &known[n]) == BT_OK)
    return &known[n++];
  return NULL;
}

/* The name of the model with these weights, or "?". */
static const char *model_name(const uint8_t sha[32], const char *ckpt) {
  const bt_model_info *m = known_model(sha, ckpt);
  return m ? m->name : "?";
}

/* --list-models: every checkpoint on the search path. */
static int list_models(void) {
  enum { MAX_MODELS = 64 };
  bt_model_info *all = malloc(MAX_MODELS * sizeof *all);
  if (!all)
    bt_die("out of memory");
  int n = bt_model_list(NULL, all, MAX_MODELS);
  if (n > MAX_MODELS)
    n = MAX_MODELS;
  printf("%-12s %10s %10s  %-64s  %s\n", "Model", "Params", "Size", "Weights SHA-256", "File");
  for (int i = 0; i < n; i++) {
    char hex[65];
    bt_sha256_hex(all[i].sha256, hex);
    printf("%-12s %10zu %10llu  %s  %s\n", all[i].name, all[i].params, (unsigned long long)all[i].bytes,
           hex, all[i].path);
  }
  free(all);
  return 0;
}

/* ==================================================================== */
/* One input                                                            */
/* ==================================================================== */

static bt_codec *g_codec;
static const char *g_ckpt_path;
static int g_ckpt_given; /* --ckpt or $BT_CKPT: no other model is looked for */

/* Decompression without --ckpt: a file made with another shipped model
 * (bt-800K, say) names it by its weights hash; switch to that one. */
static void pick_model_for(const uint8_t *in, size_t n) {
  bt_container_header h;
  uint64_t *off = NULL;
  size_t mlen;
  if (g_ckpt_given || bt_container_parse_member(in, n, &h, &off, &mlen) != BT_OK)
    return; /* bt_decompress reports what is wrong */
  free(off);
  if (g_codec && memcmp(bt_codec_weights_sha256(g_codec), h.ckpt_sha256, 32) == 0)
    return;
  const bt_model_info *k = known_model(h.ckpt_sha256, NULL);
  if (!k || (g_ckpt_path && strcmp(k->path, g_ckpt_path) == 0))
    return;
  bt_codec_free(g_codec);
  g_codec = NULL;
  g_ckpt_path = k->path;
}


/* A BPE model (V > 256) codes plain chunks of at most its context: with no
 * mode given, that is the mode, at min(2048, ctx) bytes (0: not chosen). */
static uint32_t g_bpe_chunk;

/* The chunk (or segment) size compression uses. */
static uint32_t chunk_of(const opts_t *o) { return g_bpe_chunk ? g_bpe_chunk : (uint32_t)o->chunk; }

static int open_codec(const opts_t *o) {
  if (g_codec)
    return 0;
  if (!g_ckpt_path) {
    bt_msg("no model checkpoint: give --ckpt FILE (or set BT_CKPT)");
    return -1;
  }
  bt_error e = bt_codec_open(&g_codec, g_ckpt_path);
  if (e) {
    bt_msg("cannot load checkpoint %s: %s: %s", g_ckpt_path, bt_error_name(e), bt_error_detail());
    return -1;
  }
  bt_codec_set_max_size(g_codec, o->max_size);
  bt_codec_set_kv8(g_codec, o->kv8);
  if (o->mode == M_COMPRESS && bt_dist_size() > 1)
    bt_codec_set_share(g_codec, bt_dist_rank(), bt_dist_size(), bt_share_exchange, NULL);
  if ((o->mode == M_DECOMPRESS || o->mode == M_TEST) && bt_dist_size() > 1)
    bt_codec_set_decode_share(g_codec, bt_dist_rank(), bt_dist_size(), bt_share_dexchange, NULL);
  const bt_config *mc = bt_codec_config(g_codec);
  if (mc->vocab > 256 && o->adapt_default)
    g_bpe_chunk = mc->ctx < 2048 ? (uint32_t)mc->ctx : 2048;
  if (o->adapt && !g_bpe_chunk && o->mode == M_COMPRESS) {
    const int ctx = bt_codec_config(g_codec)->ctx;
    bt_adapt a = o->ad;
    if (a.window > (uint32_t)ctx)
      a.window = (uint32_t)ctx;
    if (bt_codec_set_adapt(g_codec, &a) != BT_OK) {
      bt_msg("invalid adaptive schedule: %s", bt_error_detail());
      return -1;
    }
  }
  return 0;
}

/* ==================================================================== */
/* mpirun: compression's chunks spread over the ranks                   */
/* ==================================================================== */

/* Rank 0 runs the command line as always; before each compression it sends
 * the input to every rank, and each rank codes its run of the chunks
 * (bt_codec_set_share); rank 0 gathers them and writes the container, the
 * same bytes as one process. The other ranks touch no file. */
typedef struct {
  uint64_t more, n, chunk, decompress;
} share_job;

/* Rank 0: the next input, to every rank (more = 0: the end). */
static void share_announce(int more, const uint8_t *in, size_t n, uint32_t chunk, int decompress) {
  if (bt_dist_size() < 2)
    return;
  share_job j = {(uint64_t)more, n, chunk, (uint64_t)decompress};
  if (bt_dist_bcast(&j, sizeof j, 0) || (more && bt_dist_bcast((void *)in, n, 0))) {
    bt_msg("MPI: %s", bt_error_detail());
    bt_dist_abort(1);
  }
}

/* Ranks > 0: code their share of each input rank 0 announces. */
static int share_worker(const opts_t *o) {
  if (o->mode == M_COMPRESS && open_codec(o))
    bt_dist_abort(1); /* every rank fails: rank 0 could not know */
  for (;;) {
    share_job j;
    if (bt_dist_bcast(&j, sizeof j, 0))
      bt_dist_abort(1);
    if (!j.more)
      break;
    uint8_t *in = malloc(j.n ? j.n : 1);
    if (!in || bt_dist_bcast(in, j.n, 0))
      bt_dist_abort(1);
    size_t res_n = 0;
    uint8_t *res = NULL;
    if (j.decompress) { /* the same model rank 0 picked, from the file */
      pick_model_for(in, j.n);
      if (open_codec(o))
        bt_dist_abort(1);
      bt_decompress(g_codec, in, j.n, &res, &res_n, NULL, NULL, NULL); /* errors go to rank 0 */
    } else {
      size_t cap = bt_compress_bound(j.n, (uint32_t)j.chunk);
      if (!(res = malloc(cap ? cap : 1)))
        bt_dist_abort(1);
      bt_compress(g_codec, in, j.n, (uint32_t)j.chunk, res, &res_n, NULL, NULL, NULL);
    }
    free(in);
    free(res);
  }
  bt_codec_free(g_codec);
  return 0;
}

static void report(const char *name, const bt_codec_stats *s, int decompress) {
  double raw = (double)s->raw_bytes, out = (double)s->out_bytes;
  double model_bytes = 2.0 * (double)bt_codec_num_params(g_codec);
  double mbps = raw / (s->seconds > 0 ? s->seconds : 1e-9) / 1e6;
  if (raw <= 0) {
    fprintf(stderr, "%s: empty\n", name);
    return;
  }
  fprintf(stderr, "%s: %llu -> %llu bytes, rate %.2f%% (%.3f bits/byte)", name,
          (unsigned long long)(decompress ? s->out_bytes : s->raw_bytes),
          (unsigned long long)(decompress ? s->raw_bytes : s->out_bytes), 100.0 * out / raw,
          8.0 * out / raw);
  /* The paper's rate counts the coded chunks only; the container adds 64
   * bytes and a 4-byte size per chunk for random access. */
  if (!decompress) {
    double payload = out - (double)bt_container_header_size(s->n_chunks);
    fprintf(stderr, ", chunks alone %.4f bpb against the model's log-loss %.4f bpb", 8.0 * payload / raw,
            s->logloss_bits / raw);
  }
  fprintf(stderr, ", %llu/%llu chunks stored, %s %.1f kB/s\n", (unsigned long long)s->stored_chunks,
          (unsigned long long)s->n_chunks, decompress ? "decompressed at" : "compressed at", mbps * 1e3);
  /* The paper's adjusted rate counts the model as part of the output: it
   * means something only once the data outweighs the model. */
  if (raw >= model_bytes)
    fprintf(stderr, "%s: adjusted rate %.2f%% (counting the model's %.0f bytes)\n", name,
            100.0 * (out + model_bytes) / raw, model_bytes);
  else if (!decompress)
    fprintf(stderr, "%s: adjusted rate not shown: the input is smaller than the model's %.0f bytes\n",
            name, model_bytes);
  if (decompress && s->spec_passes)
    fprintf(stderr, "%s: multi-row decoding: %llu passes decoded %llu bytes, %.3f bytes a pass\n", name,
            (unsigned long long)s->spec_passes, (unsigned long long)s->spec_bytes,
            (double)s->spec_bytes / (double)s->spec_passes);
}

/* ---- -l ---- */

typedef struct {
  uint64_t files, members, chunks, stored, comp, orig;
} list_totals;

static void print_size(char *buf, size_t cap, double b) {
  const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int i = 0;
  while (b >= 1024 && i < 4)
    b /= 1024, i++;
  snprintf(buf, cap, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

static void list_header(const opts_t *o) {
  if (!o->robot)
    printf("%7s %8s %12s %14s %7s  %-10s %s\n", "Members", "Chunks", "Compressed", "Uncompressed", "Ratio",
           "Model", "Filename");
}

static int list_one(const char *name, const uint8_t *in, size_t len, const opts_t *o, list_totals *tot) {
  uint64_t members = 0, chunks = 0, stored = 0, orig = 0;
  char model[160] = "";
  if (o->robot)
    printf("name\t%s\n", name);
  for (size_t pos = 0; pos < len || members == 0;) {
    bt_container_header h;
    uint64_t *off = NULL;
    size_t mlen = 0;
    bt_error e = bt_container_parse_member(in + pos, len - pos, &h, &off, &mlen);
    if (e) {
      if (members)
        bt_msg("%s: member %llu (at byte %zu): %s: %s", name, (unsigned long long)members + 1, pos,
               bt_error_name(e), bt_error_detail());
      else
        bt_msg("%s: %s: %s", name, bt_error_name(e), bt_error_detail());
      return ST_ERROR;
    }
    uint64_t st = 0;
    for (uint64_t i = 0; i < h.n_chunks; i++)
      st += off[i + 1] - off[i] == bt_container_chunk_len(&h, i);
    free(off);
    char hex[65], mode[32];
    bt_sha256_hex(h.ckpt_sha256, hex);
    const char *mname = model_name(h.ckpt_sha256, g_ckpt_path);
    char recorded[BT_MODEL_NAME_MAX + 32];
    if (!strcmp(mname, "?") && h.model_name[0]) { /* not on the search path: the name the file records */
      snprintf(recorded, sizeof recorded, "%s (not found)", h.model_name);
      mname = recorded;
    }
    if (h.stream)
      snprintf(mode, sizeof mode, "%sstream", h.adaptive ? "adaptive " : "");
    else
      snprintf(mode, sizeof mode, "%s %u", h.adaptive ? "adaptive segment" : "chunk", h.chunk);
    if (members == 0)
      snprintf(model, sizeof model, "%s", mname);
    else if (strcmp(model, mname) != 0)
      snprintf(model, sizeof model, "(several)");
    if (o->robot)
      printf("member\t%llu\t%llu\t%llu\t%zu\t%llu\t%s\t%u\t%d\t%d\t%d\t%s\t%s\t%08x\n",
             (unsigned long long)members + 1, (unsigned long long)h.n_chunks, (unsigned long long)st, mlen,
             (unsigned long long)h.orig_size, h.stream ? "stream" : "chunk", h.chunk, h.n_layer, h.d_model,
             h.n_head, mname, hex, h.orig_crc);
    else if (o->verbose)
      printf("  member %llu: %s, %llu chunks (%llu stored raw), %zu -> %llu bytes, crc32 %08x\n"
             "    model %s: %d layers, dim %d, %d heads, ctx %u, weights sha256 %s\n",
             (unsigned long long)members + 1, mode, (unsigned long long)h.n_chunks, (unsigned long long)st,
             mlen, (unsigned long long)h.orig_size, h.orig_crc, mname, h.n_layer, h.d_model, h.n_head, h.ctx,
             hex);
    if (o->verbose && !o->robot && (h.model_name[0] || h.adaptive))
      printf("    written with model \"%s\"%s", h.model_name, h.adaptive ? "; " : "\n");
    if (o->verbose && !o->robot && h.adaptive)
      printf("adaptive: window %u, %d AdamW step%s a window, lr %g (x%g a window), betas %g %g, "
             "eps %g, weight decay %g, mixing%s%s%s%s\n",
             h.adapt.window, h.adapt.steps, h.adapt.steps == 1 ? "" : "s", (double)h.adapt.lr,
             (double)h.adapt.lr_decay, (double)h.adapt.beta1, (double)h.adapt.beta2, (double)h.adapt.eps,
             (double)h.adapt.weight_decay, h.adapt.parts & BT_CM_CTX ? " contexts" : "",
             h.adapt.parts & BT_CM_MATCH ? " match" : "", h.adapt.parts & BT_CM_SSE ? " sse" : "",
             h.adapt.parts ? "" : " off");
    members++;
    chunks += h.n_chunks;
    stored += st;
    orig += h.orig_size;
    pos += mlen;
    if (pos >= len)
      break;
    if (len - pos < 4 || memcmp(in + pos, BT_CONTAINER_MAGIC, 4) != 0) {
      bt_msg("%s: %zu bytes of trailing garbage after member %llu", name, len - pos,
             (unsigned long long)members);
      return ST_ERROR;
    }
  }
  double ratio = orig ? 100.0 * (double)len / (double)orig : 0.0;
  if (o->robot) {
    printf("file\t%llu\t%llu\t%llu\t%zu\t%llu\t%.4f\t%s\t%s\n", (unsigned long long)members,
           (unsigned long long)chunks, (unsigned long long)stored, len, (unsigned long long)orig, ratio,
           model, name);
  } else {
    char cs[32], us[32];
    print_size(cs, sizeof cs, (double)len);
    print_size(us, sizeof us, (double)orig);
    printf("%7llu %8llu %12s %14s %6.2f%%  %-10s %s\n", (unsigned long long)members,
           (unsigned long long)chunks, cs, us, ratio, model, name);
  }
  tot->files++;
  tot->members += members;
  tot->chunks += chunks;
  tot->stored += stored;
  tot->comp += len;
  tot->orig += orig;
  return ST_OK;
}

static void list_totals_row(const opts_t *o, const list_totals *t) {
  double ratio = t->orig ? 100.0 * (double)t->comp / (double)t->orig : 0.0;
  if (o->robot) {
    printf("totals\t%llu\t%llu\t%llu\t%llu\t%llu\t%llu\t%.4f\n", (unsigned long long)t->files,
           (unsigned long long)t->members, (unsigned long long)t->chunks, (unsigned long long)t->stored,
           (unsigned long long)t->comp, (unsigned long long)t->orig, ratio);
  } else if (t->files > 1) {
    char cs[32], us[32], nf[32];
    print_size(cs, sizeof cs, (double)t->comp);
    print_size(us, sizeof us, (double)t->orig);
    snprintf(nf, sizeof nf, "%llu files", (unsigned long long)t->files);
    printf("%7s %8s %12s %14s %7s  %-10s %s\n", "-------", "--------", "------------", "--------------",
           "-------", "", "");
    printf("%7llu %8llu %12s %14s %6.2f%%  %-10s %s\n", (unsigned long long)t->members,
           (unsigned long long)t->chunks, cs, us, ratio, "", nf);
  }
}

static int has_suffix(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a > b && strcmp(s + a - b, suf) == 0;
}

static int same_file(const struct stat *a, const struct stat *b) {
  return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* Opens an input, applying gzip's rules to what it is. Returns ST_OK with
 * *fd and *sb (fstat of what was opened) and *removable (a regular file
 * whose name --rm may unlink), or ST_ERROR / ST_WARN with the reason said. */
static int open_input(const char *path, const opts_t *o, int writes_file, int *fd, struct stat *sb,
                      int *removable) {
  *removable = 0;
  struct stat lsb;
  if (lstat(path, &lsb) != 0) {
    bt_msg("%s: %s", path, strerror(errno));
    return ST_ERROR;
  }
  if (S_ISDIR(lsb.st_mode)) {
    warn(o, "%s is a directory; ignored", path);
    return ST_WARN;
  }
  /* Reading a link, a device or a FIFO to stdout changes nothing on disk,
   * as with gzip -c; making FILE.bt beside one (and maybe removing it)
   * needs -f. */
  const int strict = writes_file && !o->force;
  if (S_ISLNK(lsb.st_mode) && strict) {
    warn(o, "%s is a symbolic link; skipped (use -f, or -c)", path);
    return ST_WARN;
  }
  if (!S_ISLNK(lsb.st_mode) && !S_ISREG(lsb.st_mode) && strict) {
    warn(o, "%s is not a regular file; skipped (use -f, or -c)", path);
    return ST_WARN;
  }
  if (S_ISREG(lsb.st_mode) && lsb.st_nlink > 1 && strict) {
    warn(o, "%s has %llu other link%s; skipped (use -f, or -c)", path, (unsigned long long)lsb.st_nlink - 1,
         lsb.st_nlink > 2 ? "s" : "");
    return ST_WARN;
  }
  /* A FIFO read on purpose (-c, -f) waits for its writer, as with gzip;
   * anything else opens without blocking, so a regular file swapped for a
   * FIFO since the lstat cannot hang the open (the fstat below sees it). */
  const int nonblock = S_ISFIFO(lsb.st_mode) ? 0 : O_NONBLOCK;
  *fd = open(path, O_RDONLY | O_NOCTTY | nonblock | (strict ? O_NOFOLLOW : 0));
  if (*fd < 0) {
    bt_msg("%s: %s", path, strerror(errno));
    return ST_ERROR;
  }
  int fl = fcntl(*fd, F_GETFL);
  if (fl >= 0)
    fcntl(*fd, F_SETFL, fl & ~O_NONBLOCK);
  if (fstat(*fd, sb) != 0) {
    bt_msg("%s: %s", path, strerror(errno));
    close(*fd);
    return ST_ERROR;
  }
  if (S_ISDIR(sb->st_mode)) {
    warn(o, "%s is a directory; ignored", path);
    close(*fd);
    return ST_WARN;
  }
  if (strict && !S_ISREG(sb->st_mode)) {
    warn(o, "%s is not a regular file; skipped (use -f, or -c)", path);
    close(*fd);
    return ST_WARN;
  }
  if (!S_ISLNK(lsb.st_mode) && !same_file(&lsb, sb)) {
    bt_msg("%s: changed while it was opened", path);
    close(*fd);
    return ST_ERROR;
  }
  *removable = S_ISREG(lsb.st_mode) && S_ISREG(sb->st_mode);
  return ST_OK;
}

/* How the output will be written. */
enum { OUT_STDOUT, OUT_FILE, OUT_SPECIAL };

/* Checks the output path before any work is done: not the input, not a
 * folder; an existing regular file only with -f; FIFOs and character
 * devices are written into. */
static int check_output(const char *out_path, const opts_t *o, const struct stat *in_sb, int *kind) {
  struct stat osb, lsb;
  *kind = OUT_FILE;
  if (stat(out_path, &osb) == 0 && in_sb && same_file(&osb, in_sb)) {
    bt_msg("%s: the output is the input file; refused", out_path);
    return ST_ERROR;
  }
  if (lstat(out_path, &lsb) != 0)
    return ST_OK; /* a new file */
  if (S_ISLNK(lsb.st_mode) && stat(out_path, &osb) == 0 && !S_ISREG(osb.st_mode))
    lsb = osb; /* a link to a device is written through */
  if (S_ISDIR(lsb.st_mode)) {
    bt_msg("%s is a directory; not overwritten", out_path);
    return ST_ERROR;
  }
  if (S_ISFIFO(lsb.st_mode) || S_ISCHR(lsb.st_mode)) {
    *kind = OUT_SPECIAL;
    return ST_OK;
  }
  if (S_ISBLK(lsb.st_mode)) {
    if (!o->force) {
      bt_msg("%s is a block device; not written (use -f to write into it)", out_path);
      return ST_ERROR;
    }
    *kind = OUT_SPECIAL;
    return ST_OK;
  }
  if (S_ISSOCK(lsb.st_mode)) {
    bt_msg("%s is a socket; not written", out_path);
    return ST_ERROR;
  }
  if (!o->force) {
    bt_msg("%s already exists; not overwritten (use -f)", out_path);
    return ST_ERROR;
  }
  return ST_OK;
}

static int process(const char *in_path, const opts_t *o, list_totals *tot) {
  const int from_stdin = strcmp(in_path, "-") == 0;
  const char *name = from_stdin ? "(stdin)" : in_path;
  const int decompress = o->mode == M_DECOMPRESS || o->mode == M_TEST;
  const int reads_bt = o->mode != M_COMPRESS;
  char *out_path = NULL;
  const int to_stdout = o->mode != M_TEST && o->mode != M_LIST &&
                        (o->to_stdout || (from_stdin && !o->out) || (o->out && strcmp(o->out, "-") == 0));
  const int writes_file = (o->mode == M_COMPRESS || o->mode == M_DECOMPRESS) && !to_stdout;
  int out_kind = to_stdout ? OUT_STDOUT : OUT_FILE;

  if (from_stdin && reads_bt && isatty(0) && !o->force) {
    bt_msg("refusing to read compressed data from a terminal (use -f to force)");
    return ST_ERROR;
  }
  if (o->mode == M_COMPRESS && !from_stdin && has_suffix(in_path, SUFFIX) && !o->force && !to_stdout) {
    warn(o, "%s already has the " SUFFIX " suffix; skipped (use -f to compress it anyway)", in_path);
    return ST_WARN;
  }
  if (o->mode == M_DECOMPRESS && writes_file && !o->out && !has_suffix(in_path, SUFFIX)) {
    warn(o, "%s: unknown suffix (expected " SUFFIX "); skipped (use -c or -o)", in_path);
    return ST_WARN;
  }
  if (to_stdout && o->mode == M_COMPRESS && isatty(1) && !o->force) {
    bt_msg("refusing to write compressed data to a terminal (use -f to force, or -o FILE)");
    return ST_ERROR;
  }

  int fd = 0, removable = 0;
  struct stat in_sb;
  memset(&in_sb, 0, sizeof in_sb);
  if (from_stdin) {
    if (fstat(0, &in_sb) != 0)
      memset(&in_sb, 0, sizeof in_sb);
  } else {
    int r = open_input(in_path, o, writes_file, &fd, &in_sb, &removable);
    if (r != ST_OK)
      return r;
  }
  const int in_regular = S_ISREG(in_sb.st_mode);
  int rc = ST_ERROR;
  uint8_t *in = NULL, *res = NULL;
  size_t n = 0, res_n = 0;

  if (writes_file) {
    if (o->out) {
      out_path = strdup(o->out);
    } else if (o->mode == M_COMPRESS) {
      out_path = malloc(strlen(in_path) + sizeof SUFFIX);
      if (out_path)
        sprintf(out_path, "%s" SUFFIX, in_path);
    } else {
      out_path = strdup(in_path);
      if (out_path)
        out_path[strlen(out_path) - strlen(SUFFIX)] = '\0';
    }
    if (!out_path) {
      bt_msg("out of memory");
      goto done;
    }
    if (check_output(out_path, o, in_regular ? &in_sb : NULL, &out_kind) != ST_OK)
      goto done;
  } else if (to_stdout && in_regular) {
    struct stat osb; /* bt-compress -c f >> f would read what it writes */
    if (fstat(1, &osb) == 0 && S_ISREG(osb.st_mode) && same_file(&osb, &in_sb)) {
      bt_msg("%s: standard output is the input file; refused", name);
      goto done;
    }
  }

  if (read_fd_all(fd, name, in_regular ? (size_t)in_sb.st_size : 0, &in, &n))
    goto done;
  bt_error e = BT_OK;
  bt_codec_stats st;
  memset(&st, 0, sizeof st);
  progress_t pr = {name, bt_now_s(), 0, 0};
  bt_progress_fn pf = (o->verbose || g_tty_progress) && !o->quiet ? on_progress : NULL;

  if (o->mode == M_LIST) {
    rc = list_one(name, in, n, o, tot);
    goto done;
  }
  if (decompress && n == 0) {
    bt_msg("%s: empty input is not a bt file", name);
    goto done;
  }
  if (decompress)
    pick_model_for(in, n);
  if (open_codec(o))
    goto done;
  if (!decompress) {
    size_t cap = bt_compress_bound(n, chunk_of(o));
    res = malloc(cap ? cap : 1);
    if (!res) {
      bt_msg("out of memory");
      goto done;
    }
    share_announce(1, in, n, chunk_of(o), 0);
    e = bt_compress(g_codec, in, n, chunk_of(o), res, &res_n, &st, pf, &pr);
  } else {
    share_announce(1, in, n, 0, 1);
    e = bt_decompress(g_codec, in, n, &res, &res_n, &st, pf, &pr);
  }
  if (pf && g_tty_progress)
    fputs("\r\033[K", stderr);
  if (e == BT_ERR_MISMATCH) { /* say which model was tried, by name and file */
    char d[600];
    snprintf(d, sizeof d, "%s", bt_error_detail());
    bt_msg("%s: %s: %s; the model tried was %s (%s)%s", name, bt_error_name(e), d,
           model_name(bt_codec_weights_sha256(g_codec), g_ckpt_path), g_ckpt_path,
           g_ckpt_given ? "" : ", and no model on the search path has those weights (--list-models)");
    goto done;
  }
  if (e) {
    bt_msg("%s: %s: %s", name, bt_error_name(e), bt_error_detail());
    goto done;
  }
  if (o->verbose)
    report(name, &st, decompress);
  if (!decompress && (uint64_t)n > BT_DEFAULT_MAX_RATIO * (uint64_t)res_n + BT_DEFAULT_MAX_BASE)
    warn(o, "note: %s shrank %.0fx, past what bt-decompress accepts by default; decompress it with -f or "
         "--max-size", name, (double)n / (double)res_n);
  if (o->mode == M_TEST) {
    if (o->verbose)
      fprintf(stderr, "%s: OK\n", name);
    rc = ST_OK;
    goto done;
  }
  const int may_remove = o->rm && !from_stdin && removable && out_kind == OUT_FILE;
  if (!decompress && may_remove) { /* verify before the input may go */
    uint8_t *back = NULL;
    size_t back_n = 0;
    bt_codec_set_max_size(g_codec, UINT64_MAX);
    e = bt_decompress(g_codec, res, res_n, &back, &back_n, NULL, NULL, NULL);
    bt_codec_set_max_size(g_codec, o->max_size);
    int same = !e && back_n == n && (n == 0 || memcmp(back, in, n) == 0);
    free(back);
    if (!same) {
      bt_msg("%s: verification failed; the input is kept", name);
      goto done;
    }
  }
  if (out_kind == OUT_STDOUT) {
    if (bt_write_full(1, res, res_n) != 0) {
      bt_msg("cannot write to stdout: %s", strerror(errno));
      goto done;
    }
  } else if (out_kind == OUT_SPECIAL) {
    if (write_into_special(out_path, res, res_n) != 0)
      goto done;
  } else if (write_file_atomic(out_path, res, res_n, in_regular ? &in_sb : NULL, o->force) != 0) {
    goto done;
  }
  rc = ST_OK;
  if (o->rm && !from_stdin && !to_stdout) {
    struct stat now;
    char dir[PATH_MAX], base[PATH_MAX];
    if (!may_remove) {
      warn(o, "%s: kept: %s", in_path,
           !removable ? "--rm removes regular files only" : "the output is not a regular file");
      rc = ST_WARN;
    } else if (lstat(in_path, &now) != 0 || !S_ISREG(now.st_mode) || !same_file(&now, &in_sb)) {
      warn(o, "%s: kept: it changed while bt ran", in_path);
      rc = ST_WARN;
    } else if (unlink(in_path) != 0) {
      bt_msg("%s: cannot remove: %s", in_path, strerror(errno));
      rc = ST_ERROR;
    } else {
      split_path(in_path, dir, base);
      bt_fsync_dir(dir);
    }
  }
done:
  if (fd > 0)
    close(fd);
  free(in);
  free(res);
  free(out_path);
  return rc;
}

/* ==================================================================== */
/* main                                                                 */
/* ==================================================================== */

int main(int argc, char **argv) {
  bt_dist_init(&argc, &argv);
  g_prog = BT_DEFAULT_DECOMPRESS ? "bt-decompress" : "bt-compress";
  bt_cli_init(g_prog, "[-d|-t|-l] [-c] [-k] [-f] [-o FILE] [--ckpt FILE] [--chunk N] [-T N] [FILE...]");
  opts_t o = {.mode = BT_DEFAULT_DECOMPRESS ? M_DECOMPRESS : M_COMPRESS, .chunk = 2048,
              .kv8 = BT_KV_AUTO};
  int max_size_set = 0;
  enum { O_CKPT = 256, O_CHUNK, O_RM, O_MAXSIZE, O_ROBOT, O_LISTMODELS, O_ADAPT, O_SEGMENT,
         O_ALR, O_ASTEPS, O_AWIN, O_APARTS, O_ADECAY, O_KV };
  bt_adapt_default(&o.ad);
  const char *model = NULL;
  int want_list_models = 0;
  static const struct option lo[] = {
      {"decompress", 0, 0, 'd'}, {"uncompress", 0, 0, 'd'}, {"compress", 0, 0, 'z'},
      {"test", 0, 0, 't'}, {"list", 0, 0, 'l'}, {"stdout", 0, 0, 'c'}, {"to-stdout", 0, 0, 'c'},
      {"output", 1, 0, 'o'}, {"keep", 0, 0, 'k'}, {"rm", 0, 0, O_RM}, {"force", 0, 0, 'f'},
      {"ckpt", 1, 0, O_CKPT}, {"chunk", 1, 0, O_CHUNK}, {"threads", 1, 0, 'T'},
      {"max-size", 1, 0, O_MAXSIZE}, {"robot", 0, 0, O_ROBOT}, {"model", 1, 0, 'm'},
      {"list-models", 0, 0, O_LISTMODELS}, {"adapt", 0, 0, O_ADAPT}, {"segment", 1, 0, O_SEGMENT},
      {"adapt-lr", 1, 0, O_ALR}, {"adapt-steps", 1, 0, O_ASTEPS}, {"adapt-window", 1, 0, O_AWIN},
      {"adapt-parts", 1, 0, O_APARTS}, {"adapt-lr-decay", 1, 0, O_ADECAY}, {"kv", 1, 0, O_KV},
      {"verbose", 0, 0, 'v'}, {"quiet", 0, 0, 'q'}, {"version", 0, 0, 'V'}, {"help", 0, 0, 'h'},
      {0, 0, 0, 0}};
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":dztlco:kfT:vqVhm:", lo, NULL)) != -1) {
    switch (c) {
    case 'd': o.mode = M_DECOMPRESS; break;
    case 'z': o.mode = M_COMPRESS; break;
    case 't': o.mode = M_TEST; break;
    case 'l': o.mode = M_LIST; break;
    case 'c': o.to_stdout = 1; break;
    case 'o': o.out = optarg; break;
    case 'k': break; /* inputs are kept unless --rm */
    case O_RM: o.rm = 1; break;
    case 'f': o.force = 1; break;
    case O_CKPT: o.ckpt = optarg; break;
    case 'm': model = optarg; break;
    case O_LISTMODELS: want_list_models = 1; break;
    case O_ROBOT: o.robot = 1; break;
    case O_CHUNK: {
      uint64_t v;
      if (bt_parse_size(optarg, &v) != 0 || v > (1ull << 30))
        bt_usage_error("invalid --chunk '%s' (0, or 1..2^30 bytes)", optarg);
      o.chunk = (long long)v;
      o.chunk_set = 1;
      break;
    }
    case O_ADAPT: o.adapt = 1; break;
    case O_KV:
      if (strcmp(optarg, "int8") && strcmp(optarg, "bf16") && strcmp(optarg, "auto"))
        bt_usage_error("invalid --kv '%s' (auto, int8 or bf16)", optarg);
      o.kv8 = !strcmp(optarg, "auto") ? BT_KV_AUTO : !strcmp(optarg, "int8");
      break;
    case O_SEGMENT: {
      uint64_t v;
      if (bt_parse_size(optarg, &v) != 0 || v < 1 || v > (1ull << 30))
        bt_usage_error("invalid --segment '%s' (1..2^30 bytes)", optarg);
      o.chunk = (long long)v;
      o.chunk_set = o.adapt = 1;
      break;
    }
    case O_ALR: {
      double v;
      if (bt_parse_real(optarg, 0, 1, &v) != 0)
        bt_usage_error("invalid --adapt-lr '%s' (0..1)", optarg);
      o.ad.lr = (float)v;
      o.adapt = 1;
      break;
    }
    case O_ADECAY: {
      double v;
      if (bt_parse_real(optarg, 0.5, 1, &v) != 0)
        bt_usage_error("invalid --adapt-lr-decay '%s' (0.5..1: the rate's factor per window)", optarg);
      o.ad.lr_decay = (float)v;
      o.adapt = 1;
      break;
    }
    case O_ASTEPS: {
      uint64_t v;
      if (bt_parse_size(optarg, &v) != 0 || v > 16)
        bt_usage_error("invalid --adapt-steps '%s' (0..16)", optarg);
      o.ad.steps = (int)v;
      o.adapt = 1;
      break;
    }
    case O_AWIN: {
      uint64_t v;
      if (bt_parse_size(optarg, &v) != 0 || v < 2 || v > 65536 || v % 2)
        bt_usage_error("invalid --adapt-window '%s' (an even number of positions up to the model's context)", optarg);
      o.ad.window = (uint32_t)v;
      o.adapt = 1;
      break;
    }
    case O_APARTS: {
      unsigned parts = 0;
      char buf[64];
      snprintf(buf, sizeof buf, "%s", optarg);
      for (char *t = strtok(buf, ","); t; t = strtok(NULL, ","))
        parts |= !strcmp(t, "ctx") ? BT_CM_CTX : !strcmp(t, "match") ? BT_CM_MATCH
               : !strcmp(t, "sse") ? BT_CM_SSE : !strcmp(t, "all") ? BT_CM_ALL
               : !strcmp(t, "none") ? 0u : 0x100u;
      if (parts & 0x100u)
        bt_usage_error("invalid --adapt-parts '%s' (a list of ctx, match, sse; or all, none)", optarg);
      o.ad.parts = parts;
      o.adapt = 1;
      break;
    }
    case O_MAXSIZE: {
      uint64_t v;
      if (bt_parse_size(optarg, &v) != 0)
        bt_usage_error("invalid --max-size '%s' (bytes, with K, M, G or KiB, MiB, GiB; 0 = no limit)", optarg);
      o.max_size = v ? v : UINT64_MAX;
      max_size_set = 1;
      break;
    }
    case 'T': {
      const uint64_t v = bt_cli_count("-T (threads; 0 = all cores)", optarg, 0, 4096);
      o.threads = v ? (int)v : omp_get_num_procs();
      break;
    }
    case 'v': o.verbose = 1; break;
    case 'q': o.quiet = 1; break;
    case 'V': printf("%s %s\n", g_prog, BT_VERSION); return 0;
    case 'h': usage(stdout); return 0;
    case ':': bt_usage_error("option %s needs a value", argv[optind - 1]);
    default: bt_usage_error("unknown option '%s'", argv[optind - 1]);
    }
  }
  if (o.force && !max_size_set)
    o.max_size = UINT64_MAX;
  /* The default mode: adaptive coding in segments (docs/adaptive.md has
   * the measurements that chose it). --chunk alone is the paper's plain
   * coding; --adapt with --chunk N or --segment N sets the segment size
   * (0: one stream). */
  if (!o.adapt && !o.chunk_set)
    o.adapt = o.adapt_default = 1; /* a BPE model changes it: open_codec */
  if (o.adapt && !o.chunk_set)
    o.chunk = BT_DEFAULT_SEGMENT;
  bt_cli_apply_isa();
  if (o.threads)
    bt_set_threads(o.threads);
  int nfiles = argc - optind;
  if (o.out && nfiles > 1)
    bt_usage_error("-o takes one input only");
  if (o.out && o.to_stdout)
    bt_usage_error("give -o or -c, not both");
  if (o.robot && o.mode != M_LIST)
    bt_usage_error("--robot goes with -l");
  g_tty_progress = isatty(2) && !o.quiet;
  if (want_list_models)
    return list_models();
  if (o.ckpt && model)
    bt_usage_error("give --ckpt or -m, not both");
  g_ckpt_path = find_ckpt(o.ckpt, model);
  if (model && !g_ckpt_path) {
    bt_msg("no model '%s' on the search path ($BT_MODEL_PATH, share/bt/models, checkpoints/); "
           "see --list-models", model);
    return 1;
  }
  g_ckpt_given = o.ckpt || model || (getenv("BT_CKPT") && *getenv("BT_CKPT"));
  if (bt_dist_rank() > 0) /* mpirun: compression's chunks are shared; the rest is rank 0's */
    return o.mode == M_COMPRESS || o.mode == M_DECOMPRESS || o.mode == M_TEST ? share_worker(&o) : 0;
  install_signal_cleanup();
  int errors = 0, warnings = 0;
  list_totals tot;
  memset(&tot, 0, sizeof tot);
  if (o.mode == M_LIST)
    list_header(&o);
  for (int i = nfiles ? optind : -1; i < argc; i++) {
    int r = process(i < 0 ? "-" : argv[i], &o, &tot);
    errors += r == ST_ERROR;
    warnings += r == ST_WARN;
    if (i < 0)
      break;
  }
  if (o.mode == M_LIST && tot.files)
    list_totals_row(&o, &tot);
  if (o.mode == M_COMPRESS || o.mode == M_DECOMPRESS || o.mode == M_TEST)
    share_announce(0, NULL, 0, 0, 0);
  bt_codec_free(g_codec);
  return errors ? ST_ERROR : warnings ? ST_WARN : ST_OK;
}
