/*
 * test_bpe.c - the byte-level BPE tokenizer (data/bpe.h): the piece rules;
 * training picks the pairs a naive recount picks; encoding equals the
 * merges applied one by one to each piece; every byte sequence decodes to
 * itself; the .btok file round-trips, its version-1 golden file still loads
 * and encodes as it did, and damaged or forged files are refused.
 */
#include "tests/check.h"

#include "data/bpe.h"
#include "data/data.h"
#include "kernels/hash.h"

/* ---- the pieces ---- */

static void expect_pieces(const char *s, const char *const *want, int nwant) {
  const uint8_t *p = (const uint8_t *)s;
  size_t n = strlen(s), at = 0;
  int k = 0;
  while (at < n) {
    size_t len = bt_bpe_piece(p + at, n - at);
    CHECK(len >= 1 && len <= BT_BPE_MAX_PIECE && len <= n - at, "piece of %zu bytes", len);
    CHECK(k < nwant && strlen(want[k]) == len && !memcmp(want[k], s + at, len),
          "\"%s\": piece %d is \"%.*s\", want \"%s\"", s, k, (int)len, s + at, k < nwant ? want[k] : "(none)");
    at += len ? len : 1;
    k++;
  }
  CHECK(k == nwant, "\"%s\": %d pieces, want %d", s, k, nwant);
}

static void test_pieces(void) {
  expect_pieces("the cat", (const char *const[]){"the", " cat"}, 2);
  expect_pieces("\n\n the", (const char *const[]){"\n\n", " the"}, 2);
  expect_pieces("a  b", (const char *const[]){"a", " ", " b"}, 3);
  expect_pieces("abc123,.x", (const char *const[]){"abc", "123", ",.", "x"}, 4);
  expect_pieces(" [[caf\xc3\xa9]]", (const char *const[]){" [[", "caf\xc3\xa9", "]]"}, 3);
  expect_pieces("x \n", (const char *const[]){"x", " \n"}, 2);
  char run[101], first[65];
  memset(run, 'a', 100);
  run[100] = 0;
  memcpy(first, run, 64);
  first[64] = 0;
  expect_pieces(run, (const char *const[]){first, run + 64}, 2); /* 64, then 36 */
}

/* ---- a naive reference: each merge in order, left to right ---- */

static size_t naive_encode(const uint32_t (*merge)[2], int nm, const uint8_t *in, size_t n, uint32_t *out) {
  size_t m = 0;
  for (size_t i = 0; i < n;) {
    const size_t len = bt_bpe_piece(in + i, n - i);
    uint32_t s[BT_BPE_MAX_PIECE];
    size_t k = len;
    for (size_t j = 0; j < len; j++)
      s[j] = in[i + j];
    for (int r = 0; r < nm && k > 1; r++) {
      size_t w = 0;
      for (size_t j = 0; j < k;) {
        if (j + 1 < k && s[j] == merge[r][0] && s[j + 1] == merge[r][1]) {
          s[w++] = 256 + (uint32_t)r;
          j += 2;
        } else {
          s[w++] = s[j++];
        }
      }
      k = w;
    }
    memcpy(out + m, s, k * sizeof *s);
    m += k;
    i += len;
  }
  return m;
}

/* The merges of a tokenizer, read back through its tokens' bytes: merge i's
 * pair is the split of token 256 + i that the file stores; get it from the
 * image instead (the API keeps merges private). */
static uint32_t (*merges_of(const bt_bpe *t, int *nm))[2] {
  uint8_t *img;
  size_t len;
  CHECK(bt_bpe_serialize(t, &img, &len) == BT_OK, "serialize");
  *nm = bt_bpe_vocab(t) - 256;
  uint32_t(*m)[2] = malloc(((size_t)*nm + 1) * sizeof *m);
  for (int i = 0; i < *nm; i++)
    for (int j = 0; j < 2; j++) {
      const uint8_t *p = img + 20 + 8 * i + 4 * j;
      m[i][j] = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    }
  free(img);
  return m;
}

/* The most frequent adjacent pair inside the pieces of tokens s (segmented
 * into pieces by `starts`), ties to the smaller (left, right). */
static uint64_t naive_best_pair(const uint32_t *s, const uint8_t *piece_start, size_t n, uint64_t *count) {
  uint64_t best = UINT64_MAX, bc = 0;
  /* counts in a small open-addressing table */
  size_t cap = 1 << 20;
  uint64_t *key = calloc(cap, sizeof *key), *cnt = calloc(cap, sizeof *cnt);
  for (size_t i = 0; i + 1 < n; i++) {
    if (piece_start[i + 1])
      continue;
    const uint64_t k = ((uint64_t)s[i] << 32 | s[i + 1]) + 1;
    size_t h = (size_t)(k * 0x9E3779B97F4A7C15ULL >> 44) & (cap - 1);
    while (key[h] && key[h] != k)
      h = (h + 1) & (cap - 1);
    key[h] = k;
    cnt[h]++;
  }
  for (size_t h = 0; h < cap; h++)
    if (key[h] && (cnt[h] > bc || (cnt[h] == bc && key[h] - 1 < best))) {
      bc = cnt[h];
      best = key[h] - 1;
    }
  free(key);
  free(cnt);
  *count = bc;
  return best;
}

static void test_train_and_encode(const uint8_t *text, size_t n) {
  bt_bpe *t;
  CHECK(bt_bpe_train(&t, text, n, 1000, NULL, NULL) == BT_OK, "train: %s", bt_error_detail());
  if (!t)
    return;
  CHECK(bt_bpe_vocab(t) == 1000, "vocab %d", bt_bpe_vocab(t));
  int nm;
  uint32_t(*m)[2] = merges_of(t, &nm);

  /* The first merges are what a naive recount picks. */
  uint32_t *s = malloc(n * sizeof *s);
  uint8_t *start = calloc(n + 1, 1);
  for (size_t i = 0; i < n;) {
    start[i] = 1;
    i += bt_bpe_piece(text + i, n - i);
  }
  size_t k = n;
  for (size_t i = 0; i < n; i++)
    s[i] = text[i];
  for (int r = 0; r < 6; r++) {
    uint64_t c;
    const uint64_t best = naive_best_pair(s, start, k, &c);
    CHECK(best == ((uint64_t)m[r][0] << 32 | m[r][1]), "merge %d is (%u, %u); a recount says (%u, %u) x %llu", r,
          m[r][0], m[r][1], (uint32_t)(best >> 32), (uint32_t)best, (unsigned long long)c);
    size_t w = 0; /* apply it (pieces never join: a start stays a start) */
    for (size_t j = 0; j < k;) {
      if (j + 1 < k && !start[j + 1] && s[j] == m[r][0] && s[j + 1] == m[r][1]) {
        start[w] = start[j];
        s[w++] = 256 + (uint32_t)r;
        j += 2;
      } else {
        start[w] = start[j];
        s[w++] = s[j++];
      }
    }
    k = w;
    start[k] = 1;
  }

  /* Encoding = the merges one by one; decoding gives the text back. */
  uint32_t *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
  const size_t na = bt_bpe_encode(t, text, n, a), nb = naive_encode((const uint32_t(*)[2])m, nm, text, n, b);
  CHECK(na == nb && !memcmp(a, b, na * sizeof *a), "encode: %zu tokens, the merges one by one: %zu", na, nb);
  CHECK(na < n / 2, "1000 tokens code %zu bytes of text in %zu tokens", n, na);
  uint8_t *back = malloc(n + 1);
  size_t got;
  CHECK(bt_bpe_decode(t, a, na, back, n, &got) == BT_OK && got == n && !memcmp(back, text, n), "decode");
  CHECK(bt_bpe_decode(t, a, na, back, n - 1, &got) == BT_ERR_LIMIT, "a short buffer is refused");
  uint32_t badtok = 1000;
  CHECK(bt_bpe_decode(t, &badtok, 1, back, n, &got) == BT_ERR_CORRUPT, "an id outside V is refused");

  /* A prefix is the tokenizer the first merges make. */
  bt_bpe *p;
  CHECK(bt_bpe_prefix(&p, t, 300) == BT_OK && bt_bpe_vocab(p) == 300, "prefix");
  const size_t np = bt_bpe_encode(p, text, n, a), nq = naive_encode((const uint32_t(*)[2])m, 44, text, n, b);
  CHECK(np == nq && !memcmp(a, b, np * sizeof *a), "the 300-token prefix encodes as its 44 merges");
  bt_bpe_free(p);

  /* Anything decodes to itself: random bytes, runs, every byte value. */
  uint64_t rng = 99;
  uint8_t buf[5000];
  for (int trial = 0; trial < 200; trial++) {
    const size_t len = (size_t)(check_rng_next_(&rng) % sizeof buf);
    const int kind = trial % 4;
    for (size_t i = 0; i < len; i++) {
      const uint64_t x = check_rng_next_(&rng);
      buf[i] = kind == 0   ? (uint8_t)x                                         /* random bytes */
               : kind == 1 ? (uint8_t)" ae\n"[x % 4]                            /* runs and spaces */
               : kind == 2 ? text[(x >> 8) % n]                                 /* text bytes, shuffled */
                           : (i < len / 2 ? text[i % n] : (uint8_t)(x >> 40)); /* text, then noise */
    }
    uint32_t tok[sizeof buf];
    uint8_t out[sizeof buf];
    const size_t nt = bt_bpe_encode(t, buf, len, tok);
    CHECK(nt <= len && bt_bpe_decode(t, tok, nt, out, sizeof out, &got) == BT_OK && got == len &&
              !memcmp(out, buf, len),
          "trial %d (%zu bytes) does not round-trip", trial, len);
    uint16_t t16[sizeof buf]; /* the ids a model reads: the same tokens */
    const size_t n16 = bt_bpe_encode16(t, buf, len, t16);
    int same = n16 == nt;
    for (size_t i = 0; same && i < nt; i++)
      same = t16[i] == tok[i];
    CHECK(same, "trial %d: bt_bpe_encode16 gives other tokens", trial);
  }
  for (int c = 0; c < 256; c++) {
    uint8_t one = (uint8_t)c, o1;
    uint32_t tk;
    CHECK(bt_bpe_encode(t, &one, 1, &tk) == 1 && tk == (uint32_t)c && bt_bpe_decode(t, &tk, 1, &o1, 1, &got) == BT_OK &&
              got == 1 && o1 == one,
          "byte %d", c);
  }
  CHECK(bt_bpe_encode(t, text, 0, a) == 0, "nothing encodes to nothing");

  /* Training is deterministic. */
  bt_bpe *t2;
  uint8_t *i1, *i2;
  size_t l1, l2;
  CHECK(bt_bpe_train(&t2, text, n, 1000, NULL, NULL) == BT_OK, "train again");
  CHECK(!bt_bpe_serialize(t, &i1, &l1) && !bt_bpe_serialize(t2, &i2, &l2) && l1 == l2 && !memcmp(i1, i2, l1),
        "two trainings differ");
  free(i1);
  free(i2);
  bt_bpe_free(t2);
  free(s);
  free(start);
  free(a);
  free(b);
  free(back);
  free(m);
  bt_bpe_free(t);
}

/* ---- the file ---- */

static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

/* An image of these merges with a valid checksum (a forger's file). */
static uint8_t *forge(const uint32_t (*m)[2], uint32_t nm, uint32_t version, uint32_t vocab, size_t *len) {
  *len = 20 + 8 * (size_t)nm + 32;
  uint8_t *b = malloc(*len);
  memcpy(b, "BTBPE\r\n\x1a", 8);
  put32(b + 8, version);
  put32(b + 12, 1);
  put32(b + 16, vocab);
  for (uint32_t i = 0; i < nm; i++) {
    put32(b + 20 + 8 * i, m[i][0]);
    put32(b + 24 + 8 * i, m[i][1]);
  }
  bt_sha256(b, *len - 32, b + *len - 32);
  return b;
}

static void expect_refused(const uint8_t *b, size_t len, bt_error want, const char *what) {
  bt_bpe *t = (bt_bpe *)1;
  const bt_error e = bt_bpe_parse(&t, b, len);
  CHECK(e == want && t == NULL, "%s: got %s (%s), want %s", what, bt_error_name(e), e ? bt_error_detail() : "",
        bt_error_name(want));
  if (!e)
    bt_bpe_free(t);
}

static void test_file(const uint8_t *text, size_t n) {
  bt_bpe *t;
  CHECK(bt_bpe_train(&t, text, n < 20000 ? n : 20000, 400, NULL, NULL) == BT_OK, "train");
  uint8_t *img;
  size_t len;
  CHECK(bt_bpe_serialize(t, &img, &len) == BT_OK && len == 20 + 8 * 144 + 32, "image of %zu bytes", len);
  bt_bpe *u;
  CHECK(bt_bpe_parse(&u, img, len) == BT_OK && bt_bpe_vocab(u) == 400, "parse its own image");
  uint8_t *img2;
  size_t len2;
  CHECK(u && !bt_bpe_serialize(u, &img2, &len2) && len2 == len && !memcmp(img, img2, len), "round trip");
  free(img2);
  bt_bpe_free(u);
  for (size_t cut = 0; cut < len; cut += cut < 40 ? 1 : 97)
    expect_refused(img, cut, cut < 8 ? BT_ERR_FORMAT : BT_ERR_CORRUPT, "a truncated file");
  for (size_t i = 0; i < len; i += 7) {
    img[i] ^= 0x10;
    bt_bpe *x = NULL;
    CHECK(bt_bpe_parse(&x, img, len) != BT_OK && !x, "a flipped bit at byte %zu is accepted", i);
    img[i] ^= 0x10;
  }
  free(img);
  bt_bpe_free(t);

  const uint32_t ok[3][2] = {{'a', 'b'}, {256, 'c'}, {'x', 'y'}};
  size_t fl;
  uint8_t *f = forge(ok, 3, 1, 259, &fl);
  bt_bpe *g;
  CHECK(bt_bpe_parse(&g, f, fl) == BT_OK, "a valid forged file: %s", bt_error_detail());
  const uint8_t *tb;
  CHECK(g && bt_bpe_token(g, 257, &tb) == 3 && !memcmp(tb, "abc", 3), "token 257 is \"abc\"");
  bt_bpe_free(g);
  free(f);
  const uint32_t later[2][2] = {{'a', 'b'}, {'a', 257}};
  f = forge(later, 2, 1, 258, &fl);
  expect_refused(f, fl, BT_ERR_CORRUPT, "a merge of a later token");
  free(f);
  const uint32_t twice[2][2] = {{'a', 'b'}, {'a', 'b'}};
  f = forge(twice, 2, 1, 258, &fl);
  expect_refused(f, fl, BT_ERR_CORRUPT, "a pair merged twice");
  free(f);
  uint32_t dbl[7][2];
  dbl[0][0] = dbl[0][1] = 'a';
  for (int i = 1; i < 7; i++)
    dbl[i][0] = dbl[i][1] = 255 + (uint32_t)i; /* 2, 4, ..., 128 bytes */
  f = forge(dbl, 7, 1, 263, &fl);
  expect_refused(f, fl, BT_ERR_CORRUPT, "a token of 128 bytes");
  free(f);
  f = forge(dbl, 6, 1, 262, &fl); /* 64 bytes: allowed */
  CHECK(bt_bpe_parse(&g, f, fl) == BT_OK, "a 64-byte token: %s", bt_error_detail());
  bt_bpe_free(g);
  free(f);
  f = forge(ok, 3, 2, 259, &fl);
  expect_refused(f, fl, BT_ERR_FORMAT, "version 2");
  free(f);
  f = forge(ok, 3, 1, 260, &fl);
  expect_refused(f, fl, BT_ERR_CORRUPT, "a vocabulary its merges do not fill");
  free(f);
  f = forge(ok, 0, 1, 70000, &fl);
  expect_refused(f, fl, BT_ERR_CORRUPT, "a vocabulary over 65536");
  free(f);
  f = forge(ok, 3, 1, 259, &fl);
  f[fl - 1] ^= 1;
  expect_refused(f, fl, BT_ERR_CHECKSUM, "a wrong checksum");
  free(f);
}

/* The version-1 golden file (tests/corpus/tok/bpe-v1-512.btok: 512 tokens
 * trained on the first 64 KiB of wiki-valid10m) loads and encodes a fixed
 * sentence as it did when it was made. */
/* pinned when the file was made: the tokens (uint32, host order) and their SHA-256 */
#define GOLDEN_TOKENS 34
#define GOLDEN_SHA "bb02776fcee38ee891a2c0101c0064e9bb5ab8b09871e43de2c7d379f03acc11"
static void test_golden(void) {
  const char *src = getenv("BT_SOURCE_DIR");
  char path[4096];
  snprintf(path, sizeof path, "%s/tests/corpus/tok/bpe-v1-512.btok", src ? src : ".");
  bt_bpe *t;
  const bt_error e = bt_bpe_load(&t, path);
  CHECK(e == BT_OK, "%s: %s", path, e ? bt_error_detail() : "");
  if (e)
    return;
  CHECK(bt_bpe_vocab(t) == 512, "golden vocab %d", bt_bpe_vocab(t));
  const char *s = "Language modeling is compression: the model predicts the next byte.";
  uint32_t tok[128];
  const size_t nt = bt_bpe_encode(t, (const uint8_t *)s, strlen(s), tok);
  uint8_t sha[32];
  char hex[65];
  bt_sha256(tok, nt * sizeof *tok, sha);
  bt_sha256_hex(sha, hex);
  CHECK(nt == GOLDEN_TOKENS && !strcmp(hex, GOLDEN_SHA), "golden encoding: %zu tokens, %s", nt, hex);
  bt_bpe *x = NULL;
  CHECK(bt_bpe_load(&x, "/dev/null") == BT_ERR_FORMAT && !x, "/dev/null is not a tokenizer");
  CHECK(bt_bpe_load(&x, "/nonexistent/t.btok") == BT_ERR_NOT_FOUND && !x, "a missing file");
  bt_bpe_free(t);
}

int main(void) {
  test_pieces();
  uint8_t *text = NULL;
  size_t n = 0;
  if (bt_data_load_range("wiki-valid10m", 0, 200000, &text, &n) != BT_OK || n < 100000) {
    fprintf(stderr, "test_bpe: no wiki-valid10m under $BT_DATA (%s)\n", bt_error_detail());
    return 1;
  }
  test_train_and_encode(text, n);
  test_file(text, n);
  test_golden();
  free(text);
  return check_summary("test_bpe");
}
