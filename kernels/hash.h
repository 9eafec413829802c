/*
 * hash.h - checksums written for bt: SHA-256 (FIPS 180-4), MD5 (RFC 1321,
 * only to check enwik9 against the MD5 its publisher lists) and the zlib
 * CRC-32 (reflected polynomial 0xEDB88320) for container checksums.
 * No allocation, no global state beyond a table built once; thread-safe.
 */
#ifndef BT_HASH_H
#define BT_HASH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- SHA-256 ---- */

/* Incremental state. Treat as opaque; lives wherever the caller puts it. */
typedef struct {
  uint32_t h[8];     /* chaining value */
  uint64_t nbytes;   /* message bytes absorbed so far */
  uint8_t buf[64];   /* partial block */
  uint32_t nbuf;     /* bytes in buf, < 64 */
} bt_sha256_ctx;

/* Starts a new hash in *c. */
void bt_sha256_init(bt_sha256_ctx *c);
/* Absorbs n bytes of p (p may be NULL when n == 0). */
void bt_sha256_update(bt_sha256_ctx *c, const void *p, size_t n);
/* Writes the 32-byte digest to out; *c must be re-initialised to be reused. */
void bt_sha256_final(bt_sha256_ctx *c, uint8_t out[32]);
/* One-shot: out = SHA-256 of the n bytes at p. */
void bt_sha256(const void *p, size_t n, uint8_t out[32]);
/* Lower-case hex of a 32-byte digest, NUL-terminated (65 chars). */
void bt_sha256_hex(const uint8_t d[32], char out[65]);
/* The inverse: 0 if hex is exactly 64 hex digits (either case), else -1. */
int bt_sha256_parse_hex(const char *hex, uint8_t d[32]);

/* ---- MD5 (not for security: only to match published checksums) ---- */

typedef struct {
  uint32_t h[4];
  uint64_t nbytes;
  uint8_t buf[64];
  uint32_t nbuf;
} bt_md5_ctx;

void bt_md5_init(bt_md5_ctx *c);
void bt_md5_update(bt_md5_ctx *c, const void *p, size_t n);
void bt_md5_final(bt_md5_ctx *c, uint8_t out[16]);
/* One-shot: out = MD5 of the n bytes at p. */
void bt_md5(const void *p, size_t n, uint8_t out[16]);

/* Lower-case hex of any n-byte digest into out (2n+1 chars, NUL-terminated). */
void bt_hex(const uint8_t *d, size_t n, char *out);

/* ---- CRC-32 (zlib's crc32: init 0, reflected 0xEDB88320, final xor) ----
 * Returns the CRC of crc's message followed by the n bytes at p, so
 * bt_crc32(bt_crc32(0, a, na), b, nb) == bt_crc32(0, ab, na + nb). */
uint32_t bt_crc32(uint32_t crc, const void *p, size_t n);

#ifdef __cplusplus
}
#endif
#endif
