/*
 * bt-tokenize - byte-level BPE tokenizers (data/bpe.h): train them, apply
 * them, and measure them.
 *
 *   bt-tokenize train --vocab 1K,2K,5K,10K,20K [-o NAME] [--bytes N] [-f] [TEXT]
 *   bt-tokenize encode -t TOK.btok [-f] [IN [OUT]]
 *   bt-tokenize decode -t TOK.btok [-f] [IN [OUT]]
 *   bt-tokenize stats  -t TOK.btok[,TOK.btok...] [--bytes N] [TEXT]
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/bpe.h"
#include "data/data.h"
#include "kernels/fileio.h"
#include "kernels/hash.h"
#include "tools/cli.h"

#define SYNOPSIS                                                                     \
  "train --vocab LIST [-o NAME] [--bytes N] [-f] [TEXT]\n"                            \
  "       bt-tokenize encode|decode -t|--tokenizer TOK.btok [-f] [IN [OUT]]\n"          \
  "       bt-tokenize stats -t TOK.btok[,TOK.btok...] [--bytes N] [TEXT]"

static void help(void) {
  printf("Usage: bt-tokenize " SYNOPSIS "\n\n"
         "Byte-level BPE tokenizers: the 256 bytes and merges of adjacent tokens,\n"
         "learned inside pieces of the text (a word with its leading space, a run of\n"
         "digits, of punctuation, of white space; at most 64 bytes). Nothing is\n"
         "normalised: every byte sequence, text or not, decodes to itself.\n\n"
         "  train    learn the merges of the largest vocabulary in LIST from TEXT (a\n"
         "           file, a .xz file, or a named set: wiki100m, the default), and\n"
         "           write NAME.btok for one size, NAME-<size>.btok for each of\n"
         "           several (the smaller ones are the first merges of the larger).\n"
         "           Sizes count tokens: 1K = 1000.\n"
         "  encode   IN's bytes (default stdin) as tokens: 16-bit little-endian ids\n"
         "           to OUT (default stdout, never a terminal)\n"
         "  decode   the reverse\n"
         "  stats    each tokenizer's bytes per token on TEXT (default wiki-valid10m)\n"
         "           and its rate with every token coded in log2(V) bits\n\n"
         "Options:\n"
         "  --vocab LIST   vocabulary sizes, 257..65536 (train)\n"
         "  -o NAME        output name, .btok added (train; default bpe)\n"
         "  -t, --tokenizer FILES  the tokenizer(s), comma-separated for stats; TOK\n"
         "                 stands for TOK.btok where TOK does not exist\n"
         "  --bytes N      use only the first N bytes of TEXT\n"
         "  -f             replace existing outputs\n"
         "  -h, --help     this help\n"
         "  -V, --version  the version\n\n"
         "Exit status: 0 on success, 1 on any error.\n");
}

typedef struct {
  const char *cmd, *vocab, *prefix, *tok;
  const char *pos[2];
  int npos, force;
  uint64_t bytes;
} opts_t;

static bt_bpe *load_tok(const char *path) {
  bt_bpe *t;
  bt_error e = bt_bpe_load(&t, path);
  if (e)
    bt_die("%s", bt_error_detail());
  return t;
}

/* Writes n bytes to OUT (a path, "-" or NULL: stdout) */
static void write_all(const char *path, const void *p, size_t n, int force) {
  if (!path || !strcmp(path, "-")) {
    if (isatty(STDOUT_FILENO))
      bt_die("refusing to write binary data to a terminal (give OUT, or redirect)");
    if (fwrite(p, 1, n, stdout) != n || fflush(stdout))
      bt_die("cannot write to stdout: %s", strerror(errno));
    return;
  }
  struct stat st;
  if (!force && lstat(path, &st) == 0)
    bt_die("%s already exists (-f replaces it)", path);
  if (bt_atomic_write(path, p, n))
    bt_die("%s", bt_error_detail());
}

static uint8_t *load_text(const char *spec, uint64_t bytes, size_t *n) {
  uint8_t *b;
  bt_error e = bt_data_load_range(spec, 0, bytes ? (size_t)bytes : SIZE_MAX, &b, n);
  if (e)
    bt_die("%s: %s", spec, bt_error_detail());
  return b;
}

static void train_progress(void *user, int done, int want) {
  (void)user;
  if (isatty(STDERR_FILENO))
    fprintf(stderr, "\rbt-tokenize: %d of %d merges", done, want);
}

static int cmd_train(const opts_t *o) {
  if (!o->vocab)
    bt_usage_error("train needs --vocab");
  enum { MAXV = 32 };
  char list[512], *names[MAXV];
  int sizes[MAXV], nv = 0, vmax = 0;
  snprintf(list, sizeof list, "%s", o->vocab);
  for (char *s = strtok(list, ","); s; s = strtok(NULL, ",")) {
    if (nv == MAXV)
      bt_usage_error("--vocab: at most %d sizes", MAXV);
    names[nv] = s;
    sizes[nv] = (int)bt_cli_count("--vocab", s, 257, BT_BPE_MAX_VOCAB);
    vmax = sizes[nv] > vmax ? sizes[nv] : vmax;
    nv++;
  }
  if (!nv)
    bt_usage_error("--vocab needs at least one size");
  /* One size: -o NAME writes NAME.btok (NAME itself if it ends so); several:
   * NAME-<size>.btok each. */
  char base[4096];
  snprintf(base, sizeof base, "%s", o->prefix ? o->prefix : "bpe");
  const size_t bl = strlen(base);
  if (bl > 5 && !strcmp(base + bl - 5, ".btok"))
    base[bl - 5] = '\0';
  char path[MAXV][4096];
  for (int i = 0; i < nv; i++) {
    if (nv == 1)
      snprintf(path[i], sizeof path[i], "%s.btok", base);
    else
      snprintf(path[i], sizeof path[i], "%s-%s.btok", base, names[i]);
    struct stat st;
    if (!o->force && lstat(path[i], &st) == 0)
      bt_die("%s already exists (-f replaces it)", path[i]);
  }
  const char *spec = o->npos ? o->pos[0] : "wiki100m";
  size_t n;
  uint8_t *text = load_text(spec, o->bytes, &n);
  const double t0 = bt_now_s();
  bt_bpe *big;
  bt_error e = bt_bpe_train(&big, text, n, vmax, train_progress, NULL);
  if (isatty(STDERR_FILENO))
    fputc('\n', stderr);
  free(text);
  if (e)
    bt_die("training: %s", bt_error_detail());
  if (bt_bpe_vocab(big) < vmax)
    bt_msg("note: %s has no pair left that occurs twice after %d tokens", spec, bt_bpe_vocab(big));
  for (int i = 0; i < nv; i++) {
    bt_bpe *t;
    const int v = sizes[i] < bt_bpe_vocab(big) ? sizes[i] : bt_bpe_vocab(big);
    if (bt_bpe_prefix(&t, big, v) || bt_bpe_save(t, path[i]))
      bt_die("%s: %s", path[i], bt_error_detail());
    printf("%s: %d tokens\n", path[i], v);
    bt_bpe_free(t);
  }
  printf("trained on %zu bytes of %s in %.1f s\n", n, spec, bt_now_s() - t0);
  bt_bpe_free(big);
  return 0;
}

static int cmd_code(const opts_t *o, int encode) {
  if (!o->tok)
    bt_usage_error("%s needs -t TOK.btok", o->cmd);
  bt_bpe *t = load_tok(o->tok);
  size_t n;
  uint8_t *in = bt_cli_read_all(o->npos ? o->pos[0] : "-", &n);
  const char *out = o->npos > 1 ? o->pos[1] : NULL;
  if (encode) {
    uint32_t *tok = malloc((n ? n : 1) * sizeof *tok);
    uint8_t *le = malloc(2 * (n ? n : 1));
    if (!tok || !le)
      bt_die("out of memory");
    const size_t m = bt_bpe_encode(t, in, n, tok);
    for (size_t i = 0; i < m; i++) { /* V <= 65536: ids fit 16 bits */
      le[2 * i] = (uint8_t)tok[i];
      le[2 * i + 1] = (uint8_t)(tok[i] >> 8);
    }
    write_all(out, le, 2 * m, o->force);
    free(tok);
    free(le);
  } else {
    if (n % 2)
      bt_die("%s: %zu bytes is not a whole number of 16-bit tokens", o->npos ? o->pos[0] : "stdin", n);
    const size_t m = n / 2;
    uint32_t *tok = malloc((m ? m : 1) * sizeof *tok);
    const size_t cap = m * BT_BPE_MAX_PIECE;
    uint8_t *bytes = malloc(cap ? cap : 1);
    if (!tok || !bytes)
      bt_die("out of memory");
    for (size_t i = 0; i < m; i++)
      tok[i] = (uint32_t)in[2 * i] | (uint32_t)in[2 * i + 1] << 8;
    size_t got;
    if (bt_bpe_decode(t, tok, m, bytes, cap, &got))
      bt_die("%s: %s", o->npos ? o->pos[0] : "stdin", bt_error_detail());
    write_all(out, bytes, got, o->force);
    free(tok);
    free(bytes);
  }
  free(in);
  bt_bpe_free(t);
  return 0;
}

static int cmd_stats(const opts_t *o) {
  if (!o->tok)
    bt_usage_error("stats needs -t TOK.btok[,...]");
  const char *spec = o->npos ? o->pos[0] : "wiki-valid10m";
  size_t n;
  uint8_t *text = load_text(spec, o->bytes, &n);
  uint32_t *tok = malloc((n ? n : 1) * sizeof *tok);
  if (!tok)
    bt_die("out of memory");
  printf("%zu bytes of %s\n", n, spec);
  printf("| tokenizer | V | tokens | bytes/token | rate at log2(V) bits a token | SHA-256 |\n");
  printf("|---|---|---|---|---|---|\n");
  char list[4096];
  snprintf(list, sizeof list, "%s", o->tok);
  for (char *s = strtok(list, ","); s; s = strtok(NULL, ",")) {
    bt_bpe *t = load_tok(s);
    const size_t m = bt_bpe_encode(t, text, n, tok);
    const int v = bt_bpe_vocab(t);
    uint8_t *img, sha[32];
    size_t len;
    char hex[65];
    if (bt_bpe_serialize(t, &img, &len))
      bt_die("%s", bt_error_detail());
    bt_sha256(img, len, sha);
    bt_sha256_hex(sha, hex);
    free(img);
    printf("| %s | %d | %zu | %.3f | %.2f%% | %.12s |\n", s, v, m, m ? (double)n / m : 0.0,
           n ? 100.0 * m * log2((double)v) / (8.0 * n) : 0.0, hex);
    bt_bpe_free(t);
  }
  free(tok);
  free(text);
  return 0;
}

int main(int argc, char **argv) {
  bt_cli_init("bt-tokenize", SYNOPSIS);
  if (bt_cli_wants_help(argc, argv)) {
    help();
    return 0;
  }
  opts_t o = {0};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const int more = i + 1 < argc;
    if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
      printf("bt-tokenize %s\n", BT_VERSION);
      return 0;
    } else if (!strcmp(a, "--vocab") && more) {
      o.vocab = argv[++i];
    } else if (!strcmp(a, "-o") && more) {
      o.prefix = argv[++i];
    } else if ((!strcmp(a, "-t") || !strcmp(a, "--tokenizer")) && more) {
      o.tok = argv[++i];
    } else if (!strcmp(a, "--bytes") && more) {
      o.bytes = bt_cli_count("--bytes", argv[++i], 1, UINT64_MAX);
    } else if (!strcmp(a, "-f")) {
      o.force = 1;
    } else if (a[0] == '-' && a[1]) {
      bt_usage_error("unknown option %s", a);
    } else if (!o.cmd) {
      o.cmd = a;
    } else if (o.npos < 2) {
      o.pos[o.npos++] = a;
    } else {
      bt_usage_error("too many arguments");
    }
  }
  if (!o.cmd)
    bt_usage_error("no command (train, encode, decode or stats)");
  if (!strcmp(o.cmd, "train"))
    return o.npos > 1 ? (bt_usage_error("train takes one TEXT"), 1) : cmd_train(&o);
  if (!strcmp(o.cmd, "encode") || !strcmp(o.cmd, "decode"))
    return cmd_code(&o, o.cmd[0] == 'e');
  if (!strcmp(o.cmd, "stats"))
    return o.npos > 1 ? (bt_usage_error("stats takes one TEXT"), 1) : cmd_stats(&o);
  bt_usage_error("unknown command %s (train, encode, decode or stats)", o.cmd);
}
