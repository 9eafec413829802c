/* consumer.c - a program outside bt that links the installed libbtcodec:
 *   consumer MODEL.h5 IN OUT.bt
 * compresses IN with the model through the library, writes OUT.bt (which
 * must equal `bt-compress --ckpt MODEL.h5 -c IN`), decompresses it again in
 * memory and checks the round trip. Built by tests/test_install.sh with
 * pkg-config and with CMake's find_package. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coder/codec.h"

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: consumer MODEL.h5 IN OUT.bt\n");
    return 2;
  }
  FILE *f = fopen(argv[2], "rb");
  if (!f) return 1;
  static uint8_t in[1 << 20];
  size_t n = fread(in, 1, sizeof in, f);
  fclose(f);
  bt_codec *c;
  bt_error e = bt_codec_open(&c, argv[1]);
  if (e) {
    fprintf(stderr, "consumer: %s: %s\n", bt_error_name(e), bt_error_detail());
    return 1;
  }
  size_t cap = bt_compress_bound(n, 2048), len = 0, back_n = 0;
  uint8_t *out = malloc(cap), *back = NULL;
  e = bt_compress(c, in, n, 2048, out, &len, NULL, NULL, NULL);
  if (!e) e = bt_decompress(c, out, len, &back, &back_n, NULL, NULL, NULL);
  if (e) {
    fprintf(stderr, "consumer: %s: %s\n", bt_error_name(e), bt_error_detail());
    return 1;
  }
  if (back_n != n || memcmp(back, in, n) != 0) {
    fprintf(stderr, "consumer: the round trip differs\n");
    return 1;
  }
  f = fopen(argv[3], "wb");
  if (!f || fwrite(out, 1, len, f) != len || fclose(f) != 0) return 1;
  printf("%zu -> %zu bytes, %zu parameters\n", n, len, bt_codec_num_params(c));
  free(out);
  free(back);
  bt_codec_free(c);
  return 0;
}
