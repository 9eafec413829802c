/*
 * bt-compress / bt-decompress - lossless compression with a byte transformer.
 * Behaves like gzip, zstd and xz: FILE -> FILE.bt, -d, -c, -k, -f, -o, -t, -l.
 * Built twice: bt-decompress is this file with BT_DEFAULT_DECOMPRESS=1.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "coder/codec.h"
#include "coder/coder.h"
#include "data/sha256.h"
#include "kernels/cli.h"
#include "kernels/kernels.h"

#ifndef BT_DEFAULT_DECOMPRESS
#define BT_DEFAULT_DECOMPRESS 0
#endif

#define SUFFIX ".bt"

enum { M_COMPRESS, M_DECOMPRESS, M_TEST, M_LIST };

typedef struct {
  int mode, to_stdout, force, rm, verbose, quiet, threads;
  long long chunk;
  const char *ckpt, *out;
} opts_t;

static const char *g_prog;
static int g_tty_progress;

static void usage(FILE *f) {
  fprintf(f,
          "usage: %s [options] [FILE...]\n"
          "Compresses FILE to FILE" SUFFIX " with a byte-level transformer (or restores it with -d).\n"
          "With no FILE or with -, reads stdin and writes stdout.\n"
          "\n"
          "  -d, --decompress   decompress (bt-decompress does this by default)\n"
          "  -z, --compress     compress\n"
          "  -t, --test         test the integrity of compressed files\n"
          "  -l, --list         list header, sizes and rates of compressed files\n"
          "  -c, --stdout       write to standard output, keep the input\n"
          "  -o, --output FILE  write to FILE (one input only)\n"
          "  -k, --keep         keep the input (the default)\n"
          "      --rm           remove the input once its output is written and verified\n"
          "  -f, --force        overwrite outputs; write binary data to a terminal\n"
          "      --ckpt FILE    model checkpoint (default: $BT_CKPT, else the shipped one)\n"
          "      --chunk N      chunk size in bytes (default 2048, the paper's; 0 = one stream\n"
          "                     with the model's full context)\n"
          "  -T, --threads N    threads (default: OMP_NUM_THREADS or all cores)\n"
          "  -v, --verbose      report rates, bits per byte and throughput; progress\n"
          "  -q, --quiet        no warnings\n"
          "  -V, --version      print the version\n"
          "  -h, --help         this help\n"
          "Environment: BT_ISA=scalar|avx2|avx512 forces a SIMD path; files decode\n"
          "bit-exactly on any path, thread count and machine.\n",
          g_prog);
}

/* ==================================================================== */
/* I/O helpers                                                          */
/* ==================================================================== */

/* Reads a whole file (or stdin for "-") into a malloc'd buffer. */
static int read_all(const char *path, uint8_t **buf, size_t *n) {
  int fd = strcmp(path, "-") == 0 ? 0 : open(path, O_RDONLY);
  if (fd < 0) {
    bt_msg("%s: %s", path, strerror(errno));
    return -1;
  }
  struct stat sb;
  if (fstat(fd, &sb) == 0 && S_ISDIR(sb.st_mode)) {
    bt_msg("%s: is a directory", path);
    if (fd)
      close(fd);
    return -1;
  }
  size_t cap = S_ISREG(sb.st_mode) && sb.st_size > 0 ? (size_t)sb.st_size + 1 : 1 << 20, len = 0;
  uint8_t *p = malloc(cap);
  for (;;) {
    if (!p) {
      bt_msg("%s: out of memory", path);
      if (fd)
        close(fd);
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
      bt_msg("%s: %s", path, strerror(errno));
      free(p);
      if (fd)
        close(fd);
      return -1;
    }
    if (k == 0)
      break;
    len += (size_t)k;
  }
  if (fd)
    close(fd);
  *buf = p;
  *n = len;
  return 0;
}

static int write_fd_all(int fd, const uint8_t *p, size_t n) {
  while (n) {
    ssize_t k = write(fd, p, n);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return -1;
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

/* Writes atomically: dst.tmp, fsync, rename. Refuses to replace without -f. */
static int write_file(const char *dst, const uint8_t *p, size_t n, const opts_t *o, mode_t mode) {
  struct stat sb;
  if (!o->force && lstat(dst, &sb) == 0) {
    bt_msg("%s already exists; not overwritten (use -f)", dst);
    return -1;
  }
  size_t l = strlen(dst);
  char *tmp = malloc(l + 32);
  if (!tmp)
    return -1;
  snprintf(tmp, l + 32, "%s.tmp%ld", dst, (long)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, mode & 0777);
  if (fd < 0) {
    char d[4096];
    snprintf(d, sizeof d, "%s", dst);
    bt_msg("cannot write %s: %s (folder %s)", dst, strerror(errno), dirname(d));
    free(tmp);
    return -1;
  }
  int bad = write_fd_all(fd, p, n) != 0 || fsync(fd) != 0;
  bad |= close(fd) != 0;
  if (bad || rename(tmp, dst) != 0) {
    bt_msg("cannot write %s: %s", dst, strerror(errno));
    unlink(tmp);
    free(tmp);
    return -1;
  }
  free(tmp);
  return 0;
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
  fprintf(stderr, "%s%s: %5.1f%%  %.2f MB of %.2f MB  %.1f kB/s  ETA %.0f s%s", g_tty_progress ? "\r" : "",
          p->name, total ? 100.0 * done / total : 100.0, done / 1e6, total / 1e6, rate / 1e3,
          rate > 0 ? (total - done) / rate : 0.0, g_tty_progress ? "\033[K" : "\n");
}

/* ==================================================================== */
/* Default checkpoint                                                   */
/* ==================================================================== */

/* --ckpt, $BT_CKPT, or checkpoints/bt-200K.h5 beside the program's build
 * folder or the current folder. */
static const char *find_ckpt(const char *given) {
  if (given)
    return given;
  const char *env = getenv("BT_CKPT");
  if (env && *env)
    return env;
  static char path[4096];
  char exe[4096];
  ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (k > 0) {
    exe[k] = '\0';
    char *dir = dirname(exe);
    const char *rel[] = {"/../checkpoints/bt-200K.h5", "/../share/bt/bt-200K.h5"};
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
      snprintf(path, sizeof path, "%s%s", dir, rel[i]);
      if (access(path, R_OK) == 0)
        return path;
    }
  }
  if (access("checkpoints/bt-200K.h5", R_OK) == 0)
    return "checkpoints/bt-200K.h5";
  return NULL;
}

/* ==================================================================== */
/* One input                                                            */
/* ==================================================================== */

static bt_codec *g_codec;
static const char *g_ckpt_path;

static int open_codec(void) {
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
  /* The paper's rate counts the coded chunks only; the container adds 64
   * bytes and a 4-byte size per chunk for random access. */
  double payload = out - (double)bt_container_header_size(s->n_chunks);
  fprintf(stderr, "%s: %llu -> %llu bytes, raw rate %.2f%%, adjusted rate %.2f%% (model %.0f bytes), ", name,
          (unsigned long long)s->raw_bytes, (unsigned long long)s->out_bytes, 100.0 * out / raw,
          100.0 * (out + model_bytes) / raw, model_bytes);
  if (!decompress)
    fprintf(stderr, "chunks alone %.2f%% = %.4f bpb against the model's log-loss %.4f bpb, ",
            100.0 * payload / raw, 8.0 * payload / raw, s->logloss_bits / raw);
  fprintf(stderr, "%llu/%llu chunks stored, %s %.1f kB/s\n", (unsigned long long)s->stored_chunks,
          (unsigned long long)s->n_chunks, decompress ? "decompressed at" : "compressed at", mbps * 1e3);
}

static int list_one(const char *name, const uint8_t *in, size_t len) {
  bt_container_header h;
  uint64_t *off = NULL, stored = 0;
  bt_error e = bt_container_parse(in, len, &h, &off);
  if (e) {
    bt_msg("%s: %s: %s", name, bt_error_name(e), bt_error_detail());
    return -1;
  }
  for (uint64_t i = 0; i < h.n_chunks; i++)
    stored += off[i + 1] - off[i] == bt_container_chunk_len(&h, i);
  free(off);
  struct {
    bt_container_header h;
    uint64_t stored_chunks;
  } info = {h, stored};
  char hex[65], chunk[32];
  bt_sha256_hex(info.h.ckpt_sha256, hex);
  if (info.h.stream)
    snprintf(chunk, sizeof chunk, "0 (one stream)");
  else
    snprintf(chunk, sizeof chunk, "%u bytes", info.h.chunk);
  double raw = (double)info.h.orig_size;
  printf("%s\n  model       %d layers, dim %d, %d heads, ctx %u\n  weights     sha256 %s\n"
         "  chunk       %s\n  chunks      %llu (%llu stored raw)\n"
         "  original    %llu bytes, crc32 %08x\n  compressed  %zu bytes, raw rate %.2f%%, %.4f bits/byte\n",
         name, info.h.n_layer, info.h.d_model, info.h.n_head, info.h.ctx, hex, chunk,
         (unsigned long long)info.h.n_chunks, (unsigned long long)info.stored_chunks,
         (unsigned long long)info.h.orig_size, info.h.orig_crc, len,
         raw > 0 ? 100.0 * (double)len / raw : 0.0, raw > 0 ? 8.0 * (double)len / raw : 0.0);
  return 0;
}

static int has_suffix(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a > b && strcmp(s + a - b, suf) == 0;
}

static int process(const char *in_path, const opts_t *o) {
  const int from_stdin = strcmp(in_path, "-") == 0;
  const char *name = from_stdin ? "(stdin)" : in_path;
  int decompress = o->mode == M_DECOMPRESS || o->mode == M_TEST;
  char *out_path = NULL;
  int to_stdout = o->to_stdout || (from_stdin && !o->out);
  if (o->mode == M_COMPRESS && !from_stdin && has_suffix(in_path, SUFFIX) && !o->force && !to_stdout) {
    bt_msg("%s already has the " SUFFIX " suffix; skipped (use -f to compress it anyway)", in_path);
    return -1;
  }
  if ((o->mode == M_COMPRESS || o->mode == M_DECOMPRESS) && !to_stdout) {
    if (o->out) {
      out_path = strdup(o->out);
    } else if (o->mode == M_COMPRESS) {
      out_path = malloc(strlen(in_path) + sizeof SUFFIX);
      if (out_path)
        sprintf(out_path, "%s" SUFFIX, in_path);
    } else {
      if (!has_suffix(in_path, SUFFIX)) {
        bt_msg("%s: unknown suffix (expected " SUFFIX "); use -c or -o", in_path);
        return -1;
      }
      out_path = strdup(in_path);
      if (out_path)
        out_path[strlen(out_path) - strlen(SUFFIX)] = '\0';
    }
    if (!out_path)
      return -1;
    struct stat sb;
    if (!o->force && lstat(out_path, &sb) == 0) {
      bt_msg("%s already exists; not overwritten (use -f)", out_path);
      free(out_path);
      return -1;
    }
  }
  if (to_stdout && o->mode != M_TEST && o->mode != M_LIST && isatty(1) && !o->force) {
    bt_msg("refusing to write binary data to a terminal (use -f to force, or -o FILE)");
    free(out_path);
    return -1;
  }
  struct stat in_sb;
  mode_t mode = 0644;
  if (!from_stdin && stat(in_path, &in_sb) == 0)
    mode = in_sb.st_mode;

  uint8_t *in = NULL, *res = NULL;
  size_t n = 0, res_n = 0;
  if (read_all(in_path, &in, &n)) {
    free(out_path);
    return -1;
  }
  int rc = -1;
  bt_error e = BT_OK;
  bt_codec_stats st;
  memset(&st, 0, sizeof st);
  progress_t pr = {name, bt_now_s(), 0, 0};
  bt_progress_fn pf = (o->verbose || g_tty_progress) && !o->quiet ? on_progress : NULL;

  if (o->mode == M_LIST) {
    rc = list_one(name, in, n);
    goto done;
  }
  if (decompress && n == 0) {
    bt_msg("%s: empty input is not a bt file", name);
    goto done;
  }
  if (open_codec())
    goto done;
  if (!decompress) {
    size_t cap = bt_compress_bound(n, (uint32_t)o->chunk);
    res = malloc(cap ? cap : 1);
    if (!res) {
      bt_msg("out of memory");
      goto done;
    }
    e = bt_compress(g_codec, in, n, (uint32_t)o->chunk, res, &res_n, &st, pf, &pr);
  } else {
    e = bt_decompress(g_codec, in, n, &res, &res_n, &st, pf, &pr);
  }
  if (pf && g_tty_progress)
    fputs("\r\033[K", stderr);
  if (e) {
    bt_msg("%s: %s: %s", name, bt_error_name(e), bt_error_detail());
    goto done;
  }
  if (o->verbose)
    report(name, &st, decompress);
  if (o->mode == M_TEST) {
    if (o->verbose)
      fprintf(stderr, "%s: OK\n", name);
    rc = 0;
    goto done;
  }
  if (!decompress && o->rm && !from_stdin) { /* verify before the input may go */
    uint8_t *back = NULL;
    size_t back_n = 0;
    e = bt_decompress(g_codec, res, res_n, &back, &back_n, NULL, NULL, NULL);
    int same = !e && back_n == n && (n == 0 || memcmp(back, in, n) == 0);
    free(back);
    if (!same) {
      bt_msg("%s: verification failed; the input is kept", name);
      goto done;
    }
  }
  if (to_stdout) {
    if (write_fd_all(1, res, res_n) != 0) {
      bt_msg("cannot write to stdout: %s", strerror(errno));
      goto done;
    }
  } else if (write_file(out_path, res, res_n, o, mode) != 0) {
    goto done;
  }
  if (o->rm && !from_stdin && !to_stdout && unlink(in_path) != 0)
    bt_msg("%s: cannot remove: %s", in_path, strerror(errno));
  rc = 0;
done:
  free(in);
  free(res);
  free(out_path);
  return rc;
}

/* ==================================================================== */
/* main                                                                 */
/* ==================================================================== */

int main(int argc, char **argv) {
  g_prog = BT_DEFAULT_DECOMPRESS ? "bt-decompress" : "bt-compress";
  bt_cli_init(g_prog, "[-d|-t|-l] [-c] [-k] [-f] [-o FILE] [--ckpt FILE] [--chunk N] [-T N] [FILE...]");
  opts_t o = {.mode = BT_DEFAULT_DECOMPRESS ? M_DECOMPRESS : M_COMPRESS, .chunk = 2048};
  enum { O_CKPT = 256, O_CHUNK, O_RM };
  static const struct option lo[] = {
      {"decompress", 0, 0, 'd'}, {"uncompress", 0, 0, 'd'}, {"compress", 0, 0, 'z'},
      {"test", 0, 0, 't'}, {"list", 0, 0, 'l'}, {"stdout", 0, 0, 'c'}, {"to-stdout", 0, 0, 'c'},
      {"output", 1, 0, 'o'}, {"keep", 0, 0, 'k'}, {"rm", 0, 0, O_RM}, {"force", 0, 0, 'f'},
      {"ckpt", 1, 0, O_CKPT}, {"chunk", 1, 0, O_CHUNK}, {"threads", 1, 0, 'T'},
      {"verbose", 0, 0, 'v'}, {"quiet", 0, 0, 'q'}, {"version", 0, 0, 'V'}, {"help", 0, 0, 'h'},
      {0, 0, 0, 0}};
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":dztlco:kfT:vqVh", lo, NULL)) != -1) {
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
    case O_CHUNK: {
      char *end;
      errno = 0;
      o.chunk = strtoll(optarg, &end, 10);
      if (end == optarg || *end || errno || o.chunk < 0 || o.chunk > (1LL << 30))
        bt_usage_error("invalid --chunk '%s' (0, or 1..2^30 bytes)", optarg);
      break;
    }
    case 'T': {
      char *end;
      long v = strtol(optarg, &end, 10);
      if (end == optarg || *end || v < 1 || v > 4096)
        bt_usage_error("invalid thread count '%s'", optarg);
      o.threads = (int)v;
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
  const char *isa_env = getenv("BT_ISA");
  bt_isa want;
  if (isa_env && *isa_env) {
    if (bt_isa_parse(isa_env, &want) != 0)
      bt_usage_error("BT_ISA='%s' is not one of scalar, avx2, avx512", isa_env);
    if (bt_isa_set(want) != 0) {
      bt_msg("BT_ISA=%s: this CPU lacks it", isa_env);
      return 1;
    }
  }
  if (o.threads)
    bt_set_threads(o.threads);
  int nfiles = argc - optind;
  if (o.out && nfiles > 1)
    bt_usage_error("-o takes one input only");
  if (o.out && o.to_stdout)
    bt_usage_error("give -o or -c, not both");
  g_tty_progress = isatty(2) && !o.quiet;
  g_ckpt_path = find_ckpt(o.ckpt);
  int bad = 0;
  if (nfiles == 0)
    bad |= process("-", &o) != 0;
  for (int i = optind; i < argc; i++)
    bad |= process(argv[i], &o) != 0;
  bt_codec_free(g_codec);
  return bad ? 1 : 0;
}
