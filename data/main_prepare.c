/*
 * bt-prepare - builds one of the paper's evaluation data sets (data/prepare.h)
 * and prints its size and SHA-256; -o writes the bytes out.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/data.h"
#include "data/prepare.h"
#include "kernels/hash.h"
#include "tools/cli.h"

static const char *g_prog = "bt-prepare";

static void usage(FILE *f) {
  fprintf(f,
          "usage: %s [options] SET [SOURCE]\n"
          "Builds one of the paper's evaluation data sets as a byte stream and prints\n"
          "its size and SHA-256.\n"
          "\n"
          "  SET is one of:\n"
          "    text    a data set bt knows (wiki-valid10m, wiki100m, enwik8, enwik9) or any\n"
          "            file, as it is (default wiki-valid10m)\n"
          "    image   every JPEG/PNG under a folder, sorted by path: grayscale\n"
          "            uint8(mean(R,G,B)), 32x64 patches row-major, borders dropped\n"
          "            (default $BT_DATA/images/imagenet)\n"
          "    audio   every FLAC/WAV under a folder, sorted by path: each sample's high\n"
          "            byte + 128, each file cut into 2048-byte chunks on its own, tail\n"
          "            dropped (default $BT_DATA/audio/librispeech)\n"
          "    random  SplitMix64 bytes; SOURCE is the seed (default 0)\n"
          "\n"
          "  -o, --output FILE  write the bytes to FILE (- for stdout)\n"
          "      --size N       bytes of random data (default %zu)\n"
          "      --data DIR     the data folder (default $BT_DATA, else ../shared/data)\n"
          "      --no-cache     neither read nor write the cache ($BT_CACHE/prepared)\n"
          "  -f, --force        write binary data to a terminal\n"
          "  -V, --version      print the version\n"
          "  -h, --help         this help\n",
          g_prog, BT_RANDOM_DEFAULT_BYTES);
}

static int write_out(const char *path, const uint8_t *p, size_t n) {
  int fd = strcmp(path, "-") == 0 ? 1 : open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    bt_msg("cannot write %s: %s", path, strerror(errno));
    return -1;
  }
  while (n) {
    ssize_t k = write(fd, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) {
      bt_msg("cannot write %s: %s", path, strerror(errno));
      if (fd != 1) close(fd);
      return -1;
    }
    p += k;
    n -= (size_t)k;
  }
  if (fd != 1 && close(fd) != 0) {
    bt_msg("cannot write %s: %s", path, strerror(errno));
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  bt_cli_init(g_prog, "[-o FILE] [--size N] [--data DIR] [--no-cache] SET [SOURCE]");
  const char *out = NULL;
  size_t size = 0;
  int use_cache = 1, force = 0;
  enum { O_SIZE = 256, O_DATA, O_NOCACHE };
  static const struct option lo[] = {{"output", 1, 0, 'o'}, {"size", 1, 0, O_SIZE}, {"data", 1, 0, O_DATA},
                                     {"no-cache", 0, 0, O_NOCACHE}, {"force", 0, 0, 'f'},
                                     {"version", 0, 0, 'V'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":o:fVh", lo, NULL)) != -1) {
    switch (c) {
    case 'o': out = optarg; break;
    case O_SIZE: size = (size_t)bt_cli_count("--size", optarg, 1, 1ull << 40); break;
    case O_DATA: setenv("BT_DATA", optarg, 1); break;
    case O_NOCACHE: use_cache = 0; break;
    case 'f': force = 1; break;
    case 'V': printf("%s %s\n", g_prog, BT_VERSION); return 0;
    case 'h': usage(stdout); return 0;
    case ':': bt_usage_error("option %s needs a value", argv[optind - 1]);
    default: bt_usage_error("unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind >= argc) bt_usage_error("no data set given");
  if (argc - optind > 2) bt_usage_error("too many arguments");
  bt_set set;
  if (bt_set_parse(argv[optind], &set) != 0)
    bt_usage_error("unknown data set '%s' (text, image, audio or random)", argv[optind]);
  const char *source = argc - optind == 2 ? argv[optind + 1] : NULL;
  if (out && strcmp(out, "-") == 0 && isatty(1) && !force) {
    bt_msg("refusing to write binary data to a terminal (use -f to force, or -o FILE)");
    return 1;
  }

  char def[4096];
  if (!source && bt_set_default_source(set, def, sizeof def) == BT_OK) source = def;
  uint8_t *bytes;
  size_t n;
  bt_prep_info info;
  bt_error e = bt_prepare(set, source, use_cache, size, &bytes, &n, &info);
  if (e) {
    bt_msg("%s: %s: %s", bt_set_name(set), bt_error_name(e), bt_error_detail());
    return 1;
  }
  /* The report says what was written: a failed write prints only its error. */
  int rc = out ? write_out(out, bytes, n) : 0;
  free(bytes);
  if (rc)
    return 1;
  char hex[65];
  bt_sha256_hex(info.sha256, hex);
  FILE *rep = out && strcmp(out, "-") == 0 ? stderr : stdout;
  fprintf(rep, "%s: %zu bytes, sha256 %s, from %s", bt_set_name(set), n, hex, source);
  if (set == BT_SET_IMAGE || set == BT_SET_AUDIO)
    fprintf(rep, " (%llu files, %zu chunks of %d bytes%s%s)", (unsigned long long)info.n_files,
            n / BT_PREP_CHUNK, BT_PREP_CHUNK, info.from_cache ? "; read from the cache " : "",
            info.from_cache ? info.cache_path : "");
  fputc('\n', rep);
  return 0;
}
