/*
 * example.c - libbtcodec from a program of your own.
 *
 *   example c MODEL IN OUT.bt    compress IN with MODEL (a name such as 800K,
 *                                or a checkpoint file), 2048-byte chunks
 *   example d IN.bt OUT          decompress; the model is found from the file
 *   example l                    list the models on the search path
 *
 * Build it against an installed bt:
 *   cc -o example example.c $(pkg-config --cflags --libs libbtcodec)
 * or in CMake: find_package(btcodec) and link bt::btcodec.
 * The files it writes are byte for byte what `bt-compress -m MODEL --chunk
 * 2048` and `bt-decompress` write (tests/test_install.sh checks it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coder/codec.h"

/* Called now and then while coding. */
static void progress(void *user, uint64_t done, uint64_t total) {
  (void)user;
  fprintf(stderr, "\r%5.1f%%", total ? 100.0 * (double)done / (double)total : 100.0);
}

static int fail(const char *what, bt_error e) {
  /* Every call returns a code; bt_error_detail() says what went wrong. */
  fprintf(stderr, "example: %s: %s: %s\n", what, bt_error_name(e), bt_error_detail());
  return 1;
}

int main(int argc, char **argv) {
  if (argc == 2 && !strcmp(argv[1], "l")) {
    bt_model_info m[16];
    int n = bt_model_list(NULL, m, 16);
    for (int i = 0; i < n && i < 16; i++)
      printf("%s\t%zu parameters\t%s\n", m[i].name, m[i].params, m[i].path);
    return 0;
  }
  if (argc != 5 && argc != 4) {
    fprintf(stderr, "usage: example c MODEL IN OUT.bt | example d IN.bt OUT | example l\n");
    return 2;
  }
  const int compress = !strcmp(argv[1], "c");
  const char *in_path = argv[compress ? 3 : 2], *out_path = argv[compress ? 4 : 3];
  FILE *in = fopen(in_path, "rb");
  if (!in) {
    perror(in_path);
    return 1;
  }
  bt_codec *c = NULL;
  bt_codec_stats st;
  bt_error e;
  if (compress) {
    /* Streams in, streams out. */
    e = bt_codec_open_model(&c, argv[2]);
    if (e)
      return fail("opening the model", e);
    bt_codec_set_threads(c, 2); /* the output never depends on it */
    FILE *out = fopen(out_path, "wb");
    if (!out) {
      perror(out_path);
      return 1;
    }
    e = bt_compress_stream(c, in, out, 2048, &st, progress, NULL);
    if (fclose(out) != 0 && !e)
      e = BT_ERR_IO;
  } else {
    /* Buffers: the whole file in memory. Decompression needs no model
     * name: the file records its model's weights hash, and the search path
     * has the model. */
    static uint8_t buf[1 << 24];
    size_t len = fread(buf, 1, sizeof buf, in);
    e = bt_codec_open_for(&c, buf, len);
    if (e)
      return fail("finding the file's model", e);
    uint8_t *res;
    size_t n;
    e = bt_decompress(c, buf, len, &res, &n, &st, progress, NULL);
    if (!e) {
      FILE *out = fopen(out_path, "wb");
      if (!out || fwrite(res, 1, n, out) != n || fclose(out) != 0)
        e = BT_ERR_IO;
      free(res);
    }
  }
  fclose(in);
  fprintf(stderr, "\n");
  if (e)
    return fail(compress ? "compressing" : "decompressing", e);
  char hex[65];
  for (int i = 0; i < 32; i++)
    snprintf(hex + 2 * i, 3, "%02x", bt_codec_weights_sha256(c)[i]);
  fprintf(stderr, "model %s, %zu parameters, weights sha256 %s\n", bt_codec_model_name(c),
          bt_codec_num_params(c), hex);
  fprintf(stderr, "%llu bytes <-> %llu bytes in %.2f s\n", (unsigned long long)st.raw_bytes,
          (unsigned long long)st.out_bytes, st.seconds);
  bt_codec_free(c);
  return 0;
}
