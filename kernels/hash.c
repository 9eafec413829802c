/*
 * hash.c - SHA-256 (FIPS 180-4), MD5 (RFC 1321) and CRC-32 (zlib's), all
 * byte-order independent: words are assembled from bytes explicitly.
 */
#include "kernels/hash.h"

#include <pthread.h>
#include <string.h>

static inline uint32_t rotr32(uint32_t x, unsigned r) { return (x >> r) | (x << (32 - r)); }
static inline uint32_t rotl32(uint32_t x, unsigned r) { return (x << r) | (x >> (32 - r)); }
static inline uint32_t load_be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint32_t load_le32(const uint8_t *p) {
  return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}
static inline void store_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline void store_le32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

/* ======================================================================== */
/* SHA-256                                                                   */
/* ======================================================================== */

/* First 32 bits of the fractional parts of the cube roots of the first 64 primes. */
static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/* Compresses nblocks 64-byte blocks of p into h. */
static void sha256_blocks(uint32_t h[8], const uint8_t *p, size_t nblocks) {
  uint32_t w[64];
  while (nblocks--) {
    for (int t = 0; t < 16; t++) w[t] = load_be32(p + 4 * t);
    for (int t = 16; t < 64; t++) {
      uint32_t s0 = rotr32(w[t - 15], 7) ^ rotr32(w[t - 15], 18) ^ (w[t - 15] >> 3);
      uint32_t s1 = rotr32(w[t - 2], 17) ^ rotr32(w[t - 2], 19) ^ (w[t - 2] >> 10);
      w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int t = 0; t < 64; t++) {
      uint32_t S1 = rotr32(e, 6) ^ rotr32(e, 11) ^ rotr32(e, 25);
      uint32_t ch = (e & f) ^ (~e & g);
      uint32_t t1 = hh + S1 + ch + K256[t] + w[t];
      uint32_t S0 = rotr32(a, 2) ^ rotr32(a, 13) ^ rotr32(a, 22);
      uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
      uint32_t t2 = S0 + maj;
      hh = g; g = f; f = e; e = d + t1;
      d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d;
    h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
    p += 64;
  }
}

/* ---- what both hashes share: 64-byte blocks, a length-padded final block ---- */

typedef void (*blocks_fn)(uint32_t *h, const uint8_t *p, size_t nblocks);

/* Absorbs n bytes: whole blocks go to fn, a partial one waits in buf. */
static void absorb(uint32_t *h, uint8_t buf[64], uint32_t *nbuf, uint64_t *nbytes, blocks_fn fn,
                   const void *data, size_t n) {
  const uint8_t *p = data;
  if (n == 0) return;
  *nbytes += n;
  if (*nbuf) {
    size_t take = 64 - *nbuf < n ? 64 - *nbuf : n;
    memcpy(buf + *nbuf, p, take);
    *nbuf += (uint32_t)take; p += take; n -= take;
    if (*nbuf < 64) return;
    fn(h, buf, 1);
    *nbuf = 0;
  }
  if (n >= 64) {
    fn(h, p, n / 64);
    p += n & ~(size_t)63;
    n &= 63;
  }
  if (n) { memcpy(buf, p, n); *nbuf = (uint32_t)n; }
}

/* 0x80, zeros to 56 mod 64, then the message length in bits (mod 2^64, as
 * both standards define it), big-endian for SHA-256, little for MD5. */
static void pad_final(uint32_t *h, uint8_t buf[64], uint32_t *nbuf, uint64_t *nbytes, blocks_fn fn,
                      int big_endian) {
  const uint64_t bits = *nbytes * 8;
  uint8_t pad[72] = {0x80};
  size_t npad = (*nbuf < 56 ? 56 : 120) - *nbuf;
  for (int i = 0; i < 8; i++) pad[npad + i] = (uint8_t)(bits >> (big_endian ? 56 - 8 * i : 8 * i));
  absorb(h, buf, nbuf, nbytes, fn, pad, npad + 8);
  *nbytes -= npad + 8;
}

void bt_sha256_init(bt_sha256_ctx *c) {
  static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(c->h, iv, sizeof iv);
  c->nbytes = 0;
  c->nbuf = 0;
}

void bt_sha256_update(bt_sha256_ctx *c, const void *data, size_t n) {
  absorb(c->h, c->buf, &c->nbuf, &c->nbytes, sha256_blocks, data, n);
}

void bt_sha256_final(bt_sha256_ctx *c, uint8_t out[32]) {
  pad_final(c->h, c->buf, &c->nbuf, &c->nbytes, sha256_blocks, 1);
  for (int i = 0; i < 8; i++) store_be32(out + 4 * i, c->h[i]);
}

void bt_sha256(const void *p, size_t n, uint8_t out[32]) {
  bt_sha256_ctx c;
  bt_sha256_init(&c);
  bt_sha256_update(&c, p, n);
  bt_sha256_final(&c, out);
}

void bt_hex(const uint8_t *d, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[d[i] >> 4];
    out[2 * i + 1] = digits[d[i] & 15];
  }
  out[2 * n] = '\0';
}

void bt_sha256_hex(const uint8_t d[32], char out[65]) { bt_hex(d, 32, out); }

static int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int bt_sha256_parse_hex(const char *hex, uint8_t d[32]) {
  uint8_t v[32];
  for (int i = 0; i < 32; i++) {
    int a = hex_digit(hex[2 * i]), b = a < 0 ? -1 : hex_digit(hex[2 * i + 1]);
    if (a < 0 || b < 0) return -1;
    v[i] = (uint8_t)(a << 4 | b);
  }
  if (hex[64] != '\0') return -1;
  memcpy(d, v, 32);
  return 0;
}

/* ======================================================================== */
/* MD5                                                                       */
/* ======================================================================== */

/* floor(2^32 * |sin(i + 1)|) */
static const uint32_t KMD5[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};
static const uint8_t SMD5[4][4] = {{7, 12, 17, 22}, {5, 9, 14, 20}, {4, 11, 16, 23}, {6, 10, 15, 21}};

static void md5_blocks(uint32_t h[4], const uint8_t *p, size_t nblocks) {
  uint32_t m[16];
  while (nblocks--) {
    for (int i = 0; i < 16; i++) m[i] = load_le32(p + 4 * i);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
    for (int i = 0; i < 64; i++) {
      uint32_t f;
      int g, round = i >> 4;
      switch (round) {
      case 0: f = (b & c) | (~b & d); g = i; break;
      case 1: f = (b & d) | (c & ~d); g = (5 * i + 1) & 15; break;
      case 2: f = b ^ c ^ d; g = (3 * i + 5) & 15; break;
      default: f = c ^ (b | ~d); g = (7 * i) & 15; break;
      }
      uint32_t t = d;
      d = c;
      c = b;
      b = b + rotl32(a + f + KMD5[i] + m[g], SMD5[round][i & 3]);
      a = t;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d;
    p += 64;
  }
}

void bt_md5_init(bt_md5_ctx *c) {
  c->h[0] = 0x67452301; c->h[1] = 0xefcdab89; c->h[2] = 0x98badcfe; c->h[3] = 0x10325476;
  c->nbytes = 0;
  c->nbuf = 0;
}

void bt_md5_update(bt_md5_ctx *c, const void *data, size_t n) {
  absorb(c->h, c->buf, &c->nbuf, &c->nbytes, md5_blocks, data, n);
}

void bt_md5_final(bt_md5_ctx *c, uint8_t out[16]) {
  pad_final(c->h, c->buf, &c->nbuf, &c->nbytes, md5_blocks, 0);
  for (int i = 0; i < 4; i++) store_le32(out + 4 * i, c->h[i]);
}

void bt_md5(const void *p, size_t n, uint8_t out[16]) {
  bt_md5_ctx c;
  bt_md5_init(&c);
  bt_md5_update(&c, p, n);
  bt_md5_final(&c, out);
}

/* ======================================================================== */
/* CRC-32, slicing by 8                                                      */
/* ======================================================================== */

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_build(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
    crc_table[0][i] = c;
  }
  /* table[k][i]: CRC contribution of byte i followed by k zero bytes */
  for (int k = 1; k < 8; k++)
    for (int i = 0; i < 256; i++)
      crc_table[k][i] = (crc_table[k - 1][i] >> 8) ^ crc_table[0][crc_table[k - 1][i] & 0xff];
}

uint32_t bt_crc32(uint32_t crc, const void *data, size_t n) {
  const uint8_t *p = data;
  pthread_once(&crc_once, crc_build);
  const uint32_t(*t)[256] = (const uint32_t(*)[256])crc_table;
  crc = ~crc;
  while (n && ((uintptr_t)p & 7)) { crc = (crc >> 8) ^ t[0][(crc ^ *p++) & 0xff]; n--; }
  while (n >= 8) {
    uint32_t lo = crc ^ load_le32(p), hi = load_le32(p + 4);
    crc = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^
          t[3][hi & 0xff] ^ t[2][(hi >> 8) & 0xff] ^ t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n--) crc = (crc >> 8) ^ t[0][(crc ^ *p++) & 0xff];
  return ~crc;
}
