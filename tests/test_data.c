/*
 * test_data.c - checksums (FIPS 180-4 / RFC 1321 vectors, zlib CRC-32) and
 * the data loaders: wiki-valid10m through BT_DATA with its cache (fresh,
 * reused, damaged, truncated), .xz and plain files, ranges, error codes, and
 * the enwik8 fetch path offline and against a local file:// mirror.
 * BT_CACHE points at a fresh folder under $TMPDIR (or /tmp), removed at exit.
 */
#define _XOPEN_SOURCE 700
#include "tests/check.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <lzma.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/data.h"
#include "kernels/hash.h"
#include "kernels/error.h"

static char g_tmp[512];

/* ---- helpers ---- */

static void write_file(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  assert(f);
  if (n) assert(fwrite(p, 1, n, f) == n);
  assert(fclose(f) == 0);
}

static int exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

static long long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

static int sha_is(const uint8_t *p, size_t n, const char *hex) {
  uint8_t d[32];
  char h[65];
  bt_sha256(p, n, d);
  bt_sha256_hex(d, h);
  return strcmp(h, hex) == 0;
}

static int detail_has(const char *needle) { return strstr(bt_error_detail(), needle) != NULL; }

/* Any temp or partial file (random-suffixed names) left in dir? */
static int has_leftovers(const char *dir) {
  static const char *const prefixes[] = {".enwik8.tmp", "enwik8.zip.part", ".wiki-valid10m.txt.tmp"};
  DIR *d = opendir(dir);
  if (!d) return 0;
  int found = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
      if (strncmp(e->d_name, prefixes[i], strlen(prefixes[i])) == 0) found = 1;
  closedir(d);
  return found;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st; (void)flag; (void)ftw;
  return remove(path);
}

/* A single-entry zip archive, entry stored (method 0). */
static void put16(FILE *f, unsigned v) { fputc(v & 255, f); fputc((v >> 8) & 255, f); }
static void put32(FILE *f, uint32_t v) { put16(f, v & 0xffff); put16(f, v >> 16); }
static void write_stored_zip(const char *path, const char *name, const void *p, uint32_t n) {
  FILE *f = fopen(path, "wb");
  assert(f);
  uint32_t crc = bt_crc32(0, p, n), nl = (uint32_t)strlen(name);
  put32(f, 0x04034b50); put16(f, 10); put16(f, 0); put16(f, 0); put16(f, 0); put16(f, 0x21);
  put32(f, crc); put32(f, n); put32(f, n); put16(f, nl); put16(f, 0);
  fwrite(name, 1, nl, f);
  fwrite(p, 1, n, f);
  uint32_t cd = (uint32_t)ftell(f);
  put32(f, 0x02014b50); put16(f, 20); put16(f, 10); put16(f, 0); put16(f, 0); put16(f, 0); put16(f, 0x21);
  put32(f, crc); put32(f, n); put32(f, n); put16(f, nl); put16(f, 0); put16(f, 0); put16(f, 0); put16(f, 0);
  put32(f, 0); put32(f, 0);
  fwrite(name, 1, nl, f);
  uint32_t cd_end = (uint32_t)ftell(f);
  put32(f, 0x06054b50); put16(f, 0); put16(f, 0); put16(f, 1); put16(f, 1);
  put32(f, cd_end - cd); put32(f, cd); put16(f, 0);
  assert(fclose(f) == 0);
}

static size_t xz_encode(const void *p, size_t n, uint8_t *out, size_t cap) {
  size_t pos = 0;
  lzma_ret r = lzma_easy_buffer_encode(1, LZMA_CHECK_CRC64, NULL, p, n, out, &pos, cap);
  assert(r == LZMA_OK);
  return pos;
}

/* ---- checksums ---- */

/* bt_fail may wrap the detail it replaces: "outer: inner", not "outer: outer: ..." */
static void test_fail_wraps(void) {
  bt_error e = bt_fail(BT_ERR_CORRUPT, "inner %d", 7);
  e = bt_fail(e, "outer: %s", bt_error_detail());
  CHECK(e == BT_ERR_CORRUPT && !strcmp(bt_error_detail(), "outer: inner 7"), "wrapped detail: '%s'",
        bt_error_detail());
  char big[700];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = 0;
  bt_fail(BT_ERR_IO, "%s", big); /* cut to the slot, and still a string */
  bt_fail(BT_ERR_IO, "y%s", bt_error_detail());
  CHECK(bt_error_detail()[0] == 'y' && strlen(bt_error_detail()) > 400 && strlen(bt_error_detail()) < 700,
        "long wrapped detail: %zu chars", strlen(bt_error_detail()));
}

static void test_sha256(void) {
  static const struct { const char *msg, *hex; } v[] = {
      {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
      {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
      {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
       "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
    CHECK(sha_is((const uint8_t *)v[i].msg, strlen(v[i].msg), v[i].hex), "sha256 vector %zu", i);

  const char *million = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
  size_t n = 1000000;
  uint8_t *a = malloc(n);
  assert(a);
  memset(a, 'a', n);
  CHECK(sha_is(a, n, million), "one million 'a' (one shot)");
  /* the same through the incremental API in awkward pieces */
  static const size_t steps[] = {1, 63, 64, 65, 55, 56, 57, 127, 1000, 4096};
  bt_sha256_ctx c;
  bt_sha256_init(&c);
  size_t done = 0;
  for (int k = 0; done < n; k++) {
    size_t s = steps[k % 10];
    if (s > n - done) s = n - done;
    bt_sha256_update(&c, a + done, s);
    done += s;
  }
  uint8_t d[32];
  char h[65];
  bt_sha256_final(&c, d);
  bt_sha256_hex(d, h);
  CHECK(strcmp(h, million) == 0, "one million 'a' (incremental): %s", h);
  free(a);
}

static void test_md5(void) {
  static const struct { const char *msg, *hex; } v[] = {
      {"", "d41d8cd98f00b204e9800998ecf8427e"},
      {"a", "0cc175b9c0f1b6a831c399e269772661"},
      {"abc", "900150983cd24fb0d6963f7d28e17f72"},
      {"message digest", "f96b697d7cb7938d525a2f31aaf161d0"},
      {"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"},
      {"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "d174ab98d277d9f5a5611c2c9f419d9f"},
      {"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
       "57edf4a22be3c955ac49da2e2107b67a"},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    uint8_t d[16];
    char h[33];
    bt_md5(v[i].msg, strlen(v[i].msg), d);
    bt_hex(d, 16, h);
    CHECK(strcmp(h, v[i].hex) == 0, "md5 vector %zu: %s", i, h);
  }
}

static uint32_t crc32_bitwise(uint32_t crc, const uint8_t *p, size_t n) {
  crc = ~crc;
  while (n--) {
    crc ^= *p++;
    for (int k = 0; k < 8; k++) crc = crc & 1 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
  }
  return ~crc;
}

static void test_crc32(void) {
  CHECK(bt_crc32(0, "", 0) == 0, "crc of nothing");
  CHECK(bt_crc32(0, "123456789", 9) == 0xCBF43926u, "crc check value");
  const char *fox = "The quick brown fox jumps over the lazy dog";
  CHECK(bt_crc32(0, fox, strlen(fox)) == 0x414FA339u, "crc fox");
  size_t n = 10007;
  uint8_t *buf = malloc(n + 8);
  assert(buf);
  uint64_t s = 42;
  for (size_t i = 0; i < n + 8; i++) buf[i] = (uint8_t)(check_rng_next_(&s) >> 56);
  uint32_t ref = crc32_bitwise(0, buf + 3, n);
  CHECK(bt_crc32(0, buf + 3, n) == ref, "crc vs bitwise (unaligned)");
  int ok = 1;
  for (size_t cut = 0; cut <= 40; cut++) /* chaining at every alignment */
    ok &= bt_crc32(bt_crc32(0, buf + 3, cut), buf + 3 + cut, n - cut) == ref;
  CHECK(ok, "crc chaining");
  free(buf);
}

/* ---- paths ---- */

static void test_dirs(void) {
  char *save = getenv("BT_CACHE") ? strdup(getenv("BT_CACHE")) : NULL;
  char *home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
  char *xdg = getenv("XDG_CACHE_HOME") ? strdup(getenv("XDG_CACHE_HOME")) : NULL;
  setenv("BT_CACHE", "/x/cache", 1);
  CHECK(strcmp(bt_cache_dir(), "/x/cache") == 0, "BT_CACHE wins: %s", bt_cache_dir());
  unsetenv("BT_CACHE");
  setenv("XDG_CACHE_HOME", "/x/xdg", 1);
  CHECK(strcmp(bt_cache_dir(), "/x/xdg/bt") == 0, "XDG: %s", bt_cache_dir());
  unsetenv("XDG_CACHE_HOME");
  setenv("HOME", "/x/home", 1);
  CHECK(strcmp(bt_cache_dir(), "/x/home/.cache/bt") == 0, "HOME: %s", bt_cache_dir());
  if (save) { setenv("BT_CACHE", save, 1); free(save); }
  if (home) { setenv("HOME", home, 1); free(home); } else unsetenv("HOME");
  if (xdg) { setenv("XDG_CACHE_HOME", xdg, 1); free(xdg); }

  char *data = getenv("BT_DATA") ? strdup(getenv("BT_DATA")) : NULL;
  unsetenv("BT_DATA");
  CHECK(strcmp(bt_data_dir(), "../shared/data") == 0, "default data dir");
  setenv("BT_DATA", "/some/where", 1);
  CHECK(strcmp(bt_data_dir(), "/some/where") == 0, "BT_DATA");
  if (data) { setenv("BT_DATA", data, 1); free(data); }
  else setenv("BT_DATA", "../shared/data", 1);
}

/* ---- wiki-valid10m and its cache ---- */

static const char *VALID_SHA = "025ca3db77c0274e2ca9cd07ff45083d2c6fe07a909b849f5b1a1c0e53c1da2c";

static void test_wiki(void) {
  char cache[600], cfile[700], xz[700];
  snprintf(cache, sizeof cache, "%s/cache/nested", g_tmp); /* made by the loader */
  snprintf(cfile, sizeof cfile, "%s/wiki-valid10m.txt", cache);
  setenv("BT_CACHE", cache, 1);

  uint8_t *a = NULL, *b = NULL;
  size_t na = 0, nb = 0;
  bt_error e = bt_data_load("wiki-valid10m", &a, &na);
  CHECK(e == BT_OK, "load wiki-valid10m: %s: %s", bt_error_name(e), bt_error_detail());
  if (e) return;
  CHECK(na == 10000000, "size %zu", na);
  CHECK(sha_is(a, na, VALID_SHA), "sha256 of wiki-valid10m");
  CHECK(file_size(cfile) == 10000000, "cache written: %lld", file_size(cfile));
  CHECK(!has_leftovers(cache), "no temp files in the cache");

  e = bt_data_load("wiki-valid10m", &b, &nb);
  CHECK(e == BT_OK && nb == na && memcmp(a, b, na) == 0, "cached load equals the first");
  free(b);

  /* a flipped byte in the cache is detected and the cache rebuilt */
  int fd = open(cfile, O_WRONLY);
  assert(fd >= 0);
  assert(pwrite(fd, "#", 1, 5000000) == 1);
  close(fd);
  e = bt_data_load("wiki-valid10m", &b, &nb);
  CHECK(e == BT_OK && nb == na && memcmp(a, b, na) == 0, "damaged cache: still the right data");
  free(b);
  b = NULL;
  {
    FILE *f = fopen(cfile, "rb");
    assert(f);
    uint8_t *c = malloc(na);
    assert(c);
    size_t got = fread(c, 1, na, f);
    fclose(f);
    CHECK(got == na && memcmp(a, c, na) == 0, "damaged cache rebuilt");
    free(c);
  }
  /* a truncated cache as well */
  assert(truncate(cfile, 5) == 0);
  e = bt_data_load("wiki-valid10m", &b, &nb);
  CHECK(e == BT_OK && nb == na && memcmp(a, b, na) == 0, "truncated cache: right data");
  CHECK(file_size(cfile) == 10000000, "truncated cache rebuilt");
  free(b);

  /* ranges */
  e = bt_data_load_range("wiki-valid10m", 0, 1000000, &b, &nb);
  CHECK(e == BT_OK && nb == 1000000 && memcmp(a, b, nb) == 0, "leading 10^6 bytes");
  free(b);
  e = bt_data_load_range("wiki-valid10m", 9999990, 100, &b, &nb);
  CHECK(e == BT_OK && nb == 10 && memcmp(a + 9999990, b, nb) == 0, "range clipped at the end");
  free(b);
  e = bt_data_load_range("wiki-valid10m", 10000000, 1, &b, &nb);
  CHECK(e == BT_ERR_TOO_SHORT && b == NULL && nb == 0, "range past the end: %s", bt_error_name(e));

  /* the .xz file by path: decoded, no cache involved */
  snprintf(xz, sizeof xz, "%s/text/wiki-valid10m.txt.xz", bt_data_dir());
  e = bt_data_load(xz, &b, &nb);
  CHECK(e == BT_OK && nb == na && memcmp(a, b, na) == 0, ".xz by path: %s", bt_error_detail());
  free(b);

  /* missing data folder, no usable cache: BT_ERR_IO naming the path */
  char *data = strdup(bt_data_dir());
  char empty_cache[600];
  snprintf(empty_cache, sizeof empty_cache, "%s/cache-empty", g_tmp);
  setenv("BT_CACHE", empty_cache, 1);
  setenv("BT_DATA", g_tmp, 1);
  e = bt_data_load("wiki-valid10m", &b, &nb);
  CHECK(e == BT_ERR_IO && b == NULL && detail_has("wiki-valid10m.txt.xz") && detail_has("BT_DATA"),
        "no data folder: %s: %s", bt_error_name(e), bt_error_detail());
  setenv("BT_DATA", data, 1);
  setenv("BT_CACHE", cache, 1);
  free(data);
  free(a);
}

/* ---- plain and .xz files, error codes ---- */

static void test_files(void) {
  char p[700], q[700];
  uint8_t *b = (uint8_t *)&b; /* must come back NULL on error */
  size_t nb = 99;
  bt_error e;

  snprintf(p, sizeof p, "%s/hello.txt", g_tmp);
  write_file(p, "hello world", 11);
  e = bt_data_load(p, &b, &nb);
  CHECK(e == BT_OK && nb == 11 && memcmp(b, "hello world", 11) == 0, "plain file");
  free(b);
  e = bt_data_load_range(p, 6, 3, &b, &nb);
  CHECK(e == BT_OK && nb == 3 && memcmp(b, "wor", 3) == 0, "plain range");
  free(b);
  e = bt_data_load_range(p, 6, SIZE_MAX, &b, &nb);
  CHECK(e == BT_OK && nb == 5 && memcmp(b, "world", 5) == 0, "plain range to the end");
  free(b);
  e = bt_data_load_range(p, 11, 5, &b, &nb);
  CHECK(e == BT_ERR_TOO_SHORT && b == NULL && nb == 0, "offset at the end: %s", bt_error_name(e));
  e = bt_data_load_range(p, 0, 0, &b, &nb);
  CHECK(e == BT_ERR_TOO_SHORT, "zero-length range");

  snprintf(p, sizeof p, "%s/does-not-exist.bin", g_tmp);
  b = (uint8_t *)&b;
  e = bt_data_load(p, &b, &nb);
  CHECK(e == BT_ERR_IO && b == NULL && nb == 0, "missing file: %s", bt_error_name(e));
  CHECK(detail_has(p) && detail_has(strerror(ENOENT)), "detail names the path: %s", bt_error_detail());

  snprintf(p, sizeof p, "%s/empty.bin", g_tmp);
  write_file(p, "", 0);
  e = bt_data_load(p, &b, &nb);
  CHECK(e == BT_ERR_TOO_SHORT && b == NULL, "empty file: %s", bt_error_name(e));

  e = bt_data_load(g_tmp, &b, &nb);
  CHECK(e == BT_ERR_IO, "a folder: %s", bt_error_name(e));
  e = bt_data_load(NULL, &b, &nb);
  CHECK(e == BT_ERR_ARG, "NULL spec");
  e = bt_data_load("", &b, &nb);
  CHECK(e == BT_ERR_ARG, "empty spec");
  e = bt_data_load(p, NULL, &nb);
  CHECK(e == BT_ERR_ARG, "NULL out");

  /* small .xz files: good, concatenated, damaged, truncated, not xz, empty */
  size_t n = 100000;
  uint8_t *raw = malloc(n), *enc = malloc(2 * n + 1024);
  assert(raw && enc);
  uint64_t s = 7;
  for (size_t i = 0; i < n; i++) raw[i] = (uint8_t)("abcdefgh"[check_rng_next_(&s) >> 61]);
  size_t m = xz_encode(raw, n, enc, 2 * n + 1024);
  snprintf(p, sizeof p, "%s/small.xz", g_tmp);
  write_file(p, enc, m);
  e = bt_data_load(p, &b, &nb);
  CHECK(e == BT_OK && nb == n && memcmp(b, raw, n) == 0, ".xz file: %s", bt_error_detail());
  free(b);
  e = bt_data_load_range(p, 10, 20, &b, &nb);
  CHECK(e == BT_OK && nb == 20 && memcmp(b, raw + 10, 20) == 0, ".xz range");
  free(b);

  size_t m2 = xz_encode("tail", 4, enc + m, n + 1024);
  snprintf(q, sizeof q, "%s/two.xz", g_tmp);
  write_file(q, enc, m + m2);
  e = bt_data_load(q, &b, &nb);
  CHECK(e == BT_OK && nb == n + 4 && memcmp(b + n, "tail", 4) == 0, "concatenated .xz streams");
  free(b);

  enc[m / 2] ^= 0x55;
  write_file(q, enc, m);
  e = bt_data_load(q, &b, &nb);
  CHECK(e == BT_ERR_CORRUPT && b == NULL, "damaged .xz: %s: %s", bt_error_name(e), bt_error_detail());
  enc[m / 2] ^= 0x55;

  write_file(q, enc, m - 7);
  e = bt_data_load(q, &b, &nb);
  CHECK(e == BT_ERR_CORRUPT && b == NULL, "truncated .xz: %s: %s", bt_error_name(e), bt_error_detail());

  enc[m] = 'x'; /* trailing garbage after a complete stream */
  write_file(q, enc, m + 1);
  e = bt_data_load(q, &b, &nb);
  CHECK(e != BT_OK && b == NULL, "trailing garbage: %s", bt_error_name(e));

  write_file(q, "hello world, not xz", 19);
  e = bt_data_load(q, &b, &nb);
  CHECK(e == BT_ERR_FORMAT && b == NULL, "not xz: %s", bt_error_name(e));

  m = xz_encode("", 0, enc, 1024);
  write_file(q, enc, m);
  e = bt_data_load(q, &b, &nb);
  CHECK(e == BT_ERR_TOO_SHORT && b == NULL, "empty .xz: %s", bt_error_name(e));

  free(raw);
  free(enc);
}

/* ---- enwik8 ---- */

static void test_enwik(void) {
  char cache[600], mirror[600], p[700], url[700];
  uint8_t *b = NULL;
  size_t nb = 0;
  bt_error e;
  snprintf(cache, sizeof cache, "%s/enwik-cache", g_tmp);
  setenv("BT_CACHE", cache, 1);

  setenv("BT_OFFLINE", "1", 1);
  e = bt_data_load("enwik8", &b, &nb);
  CHECK(e == BT_ERR_NETWORK && b == NULL, "offline enwik8: %s", bt_error_name(e));
  CHECK(detail_has("--data") && detail_has(cache) && detail_has("http://mattmahoney.net/dc/enwik8.zip"),
        "offline detail: %s", bt_error_detail());
  unsetenv("BT_OFFLINE");

  /* an unreachable mirror: curl fails, nothing left behind */
  snprintf(mirror, sizeof mirror, "%s/mirror", g_tmp);
  snprintf(url, sizeof url, "file://%s/", mirror);
  setenv("BT_ENWIK_URL", url, 1);
  e = bt_data_load("enwik8", &b, &nb);
  CHECK(e == BT_ERR_NETWORK && b == NULL && detail_has("--data"), "failed download: %s: %s",
        bt_error_name(e), bt_error_detail());
  CHECK(!has_leftovers(cache), "no partial download left");

  /* a mirror serving a zip whose enwik8 is wrong: checksum error, all removed */
  mkdir(mirror, 0755);
  snprintf(p, sizeof p, "%s/enwik8.zip", mirror);
  write_stored_zip(p, "enwik8", "not really enwik8\n", 18);
  e = bt_data_load("enwik8", &b, &nb);
  CHECK(e == BT_ERR_CHECKSUM && b == NULL, "wrong enwik8 from mirror: %s: %s", bt_error_name(e),
        bt_error_detail());
  snprintf(p, sizeof p, "%s/enwik8", cache);
  CHECK(!exists(p) && !has_leftovers(cache), "nothing kept from a bad download");
  /* a zip without the entry */
  snprintf(p, sizeof p, "%s/enwik8.zip", mirror);
  write_stored_zip(p, "other", "x", 1);
  e = bt_data_load("enwik8", &b, &nb);
  CHECK(e == BT_ERR_CORRUPT && b == NULL && !has_leftovers(cache), "zip without enwik8: %s: %s",
        bt_error_name(e), bt_error_detail());
  unsetenv("BT_ENWIK_URL");

  /* a zip the user put in the cache is used but never deleted */
  setenv("BT_OFFLINE", "1", 1);
  snprintf(p, sizeof p, "%s/enwik8.zip", cache);
  write_stored_zip(p, "enwik8", "still not enwik8", 16);
  e = bt_data_load("enwik8", &b, &nb);
  CHECK(e == BT_ERR_CHECKSUM && exists(p) && !has_leftovers(cache), "user zip: %s", bt_error_name(e));
  unlink(p);

  /* a wrong file at <cache>/enwik8 is reported, not replaced */
  snprintf(p, sizeof p, "%s/enwik8", cache);
  write_file(p, "short", 5);
  e = bt_data_load("enwik8", &b, &nb);
  CHECK(e == BT_ERR_CHECKSUM && b == NULL && detail_has("delete it") && exists(p), "wrong cached enwik8: %s: %s",
        bt_error_name(e), bt_error_detail());
  e = bt_data_load("enwik9", &b, &nb);
  CHECK(e == BT_ERR_NETWORK && detail_has("enwik9.zip"), "offline enwik9: %s", bt_error_detail());
  unsetenv("BT_OFFLINE");
}

int main(void) {
  const char *t = getenv("TMPDIR");
  snprintf(g_tmp, sizeof g_tmp, "%s/bt_test_data.XXXXXX", t && *t ? t : "/tmp");
  if (!mkdtemp(g_tmp)) {
    perror("mkdtemp");
    return 1;
  }
  if (!getenv("BT_DATA")) setenv("BT_DATA", "../shared/data", 1);

  test_fail_wraps();
  test_sha256();
  test_md5();
  test_crc32();
  test_dirs();
  test_files();
  test_enwik();
  test_wiki();

  nftw(g_tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  return check_summary("test_data");
}
