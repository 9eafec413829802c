/*
 * test_codec_api.c - libbtcodec's calls beyond bt_compress/bt_decompress
 * (coder/codec.h): models by name and hash on the search path, opening the
 * model a file was made with, threads, and the stdio stream calls, each
 * against the buffer calls' bytes. Uses the shipped 200K, found from the
 * build folder (checkpoints/ beside it).
 */
#include "tests/check.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coder/codec.h"

static size_t make_text(uint8_t *d, size_t n) {
  static const char *words[] = {"the ", "model ", "predicts ", "each ", "byte ", "of ", "a ", "file, ",
                                "and ", "coder ", "turns ", "it ", "into ", "bits. "};
  size_t k = 0;
  uint64_t s = 7;
  while (k < n) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    const char *w = words[(s >> 33) % 14];
    for (size_t i = 0; w[i] && k < n; i++)
      d[k++] = (uint8_t)w[i];
  }
  return n;
}

static uint8_t *compress(bt_codec *c, const uint8_t *in, size_t n, size_t *len) {
  uint8_t *out = malloc(bt_compress_bound(n, 2048));
  bt_error e = bt_compress(c, in, n, 2048, out, len, NULL, NULL, NULL);
  CHECK(e == BT_OK, "compress: %s", bt_error_detail());
  return out;
}

int main(void) {
  char path[PATH_MAX];
  CHECK(bt_model_resolve("200K", path, sizeof path) == BT_OK, "%s", bt_error_detail());
  const size_t pl = strlen(path);
  CHECK(pl > 22 && strcmp(path + pl - 22, "checkpoints/bt-200K.h5") == 0, "200K resolved to %s", path);
  CHECK(bt_model_resolve("no-such-model", path, sizeof path) == BT_ERR_NOT_FOUND, "unknown name");
  CHECK(strstr(bt_error_detail(), "no-such-model") != NULL, "the error names it: %s", bt_error_detail());

  bt_codec *c = NULL, *by_file = NULL;
  CHECK(bt_codec_open_model(&c, "200K") == BT_OK, "open 200K: %s", bt_error_detail());
  if (!c)
    return check_summary("test_codec_api");
  CHECK(strcmp(bt_codec_model_name(c), "bt-200K") == 0, "name %s", bt_codec_model_name(c));
  bt_model_info m;
  CHECK(bt_model_find_sha256(bt_codec_weights_sha256(c), NULL, &m) == BT_OK, "by hash");
  CHECK(strcmp(m.name, "bt-200K") == 0 && m.params == bt_codec_num_params(c), "by hash: %s", m.name);
  uint8_t zero[32] = {0};
  CHECK(bt_model_find_sha256(zero, NULL, &m) == BT_ERR_NOT_FOUND, "an unknown hash");

  /* $BT_MODEL_PATH comes first, and the first file with given weights wins */
  char dir[] = "/tmp/bt-models.XXXXXX";
  CHECK(mkdtemp(dir) != NULL, "mkdtemp");
  char copy[PATH_MAX + 32], cmd[3 * PATH_MAX];
  snprintf(copy, sizeof copy, "%s/mine.h5", dir);
  CHECK(bt_model_resolve("200K", path, sizeof path) == BT_OK, "again");
  snprintf(cmd, sizeof cmd, "cp '%s' '%s'", path, copy);
  CHECK(system(cmd) == 0, "copy the model");
  setenv("BT_MODEL_PATH", dir, 1);
  CHECK(bt_model_resolve("mine", path, sizeof path) == BT_OK && strcmp(path, copy) == 0, "mine: %s", path);
  bt_model_info list[32];
  int n = bt_model_list(NULL, list, 32), mine = 0, shipped200 = 0;
  for (int i = 0; i < n && i < 32; i++) {
    mine += strcmp(list[i].name, "mine") == 0;
    shipped200 += strcmp(list[i].name, "bt-200K") == 0;
  }
  CHECK(n >= 3 && mine == 1 && shipped200 == 0, "list: %d models, mine %d, bt-200K %d", n, mine, shipped200);
  for (int i = 1; i < n && i < 32; i++)
    CHECK(strcmp(list[i - 1].name, list[i].name) < 0, "sorted: %s, %s", list[i - 1].name, list[i].name);
  unlink(copy);
  rmdir(dir);
  unsetenv("BT_MODEL_PATH");

  /* threads: the same bytes, and the caller's setting comes back */
  static uint8_t text[9000];
  make_text(text, sizeof text);
  size_t len1, len2;
  omp_set_num_threads(2);
  uint8_t *a = compress(c, text, sizeof text, &len1);
  bt_codec_set_threads(c, 1);
  uint8_t *b = compress(c, text, sizeof text, &len2);
  CHECK(len1 == len2 && memcmp(a, b, len1) == 0, "1 thread and 2 threads differ");
  CHECK(omp_get_max_threads() == 2, "the caller's threads came back as %d", omp_get_max_threads());
  bt_codec_set_threads(c, 0);

  /* the file alone finds its model */
  CHECK(bt_codec_open_for(&by_file, a, len1) == BT_OK, "open_for: %s", bt_error_detail());
  if (by_file)
    CHECK(memcmp(bt_codec_weights_sha256(by_file), bt_codec_weights_sha256(c), 32) == 0, "open_for's model");
  bt_codec_free(by_file);
  CHECK(bt_codec_open_for(&by_file, text, 200) == BT_ERR_FORMAT && !by_file, "open_for on text");

  /* streams: the buffer calls' bytes */
  FILE *in = tmpfile(), *out = tmpfile();
  fwrite(text, 1, sizeof text, in);
  rewind(in);
  bt_codec_stats st;
  CHECK(bt_compress_stream(c, in, out, 2048, &st, NULL, NULL) == BT_OK, "%s", bt_error_detail());
  CHECK(st.raw_bytes == sizeof text && st.out_bytes == len1, "stream stats %llu %llu",
        (unsigned long long)st.raw_bytes, (unsigned long long)st.out_bytes);
  static uint8_t got[20000];
  rewind(out);
  size_t k = fread(got, 1, sizeof got, out);
  CHECK(k == len1 && memcmp(got, a, len1) == 0, "the stream's container differs (%zu bytes)", k);
  rewind(out);
  FILE *back = tmpfile();
  CHECK(bt_decompress_stream(c, out, back, &st, NULL, NULL) == BT_OK, "%s", bt_error_detail());
  rewind(back);
  k = fread(got, 1, sizeof got, back);
  CHECK(k == sizeof text && memcmp(got, text, k) == 0, "the stream round trip differs");
  FILE *garbage = tmpfile(), *sink = tmpfile();
  fwrite(text, 1, 300, garbage);
  rewind(garbage);
  CHECK(bt_decompress_stream(c, garbage, sink, NULL, NULL, NULL) == BT_ERR_FORMAT, "garbage stream");
  CHECK(ftell(sink) == 0, "nothing written on an error");
  fclose(in);
  fclose(out);
  fclose(back);
  fclose(garbage);
  fclose(sink);
  free(a);
  free(b);
  bt_codec_free(c);
  return check_summary("test_codec_api");
}
