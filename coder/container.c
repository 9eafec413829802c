/*
 * container.c - the .bt container: a 64-byte header, a table of payload
 * sizes, the payloads (layout in coder.h).
 *
 * The parser treats its input as hostile: every field is range-checked,
 * every sum is done so it cannot overflow, and nothing is allocated before
 * the input has been shown to be long enough to justify it.
 */
#include "coder/coder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/hash.h"

/* ---- little-endian fields ---- */

static void put_le(uint8_t *p, uint64_t v, int n) {
  for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

enum {
  OFF_MAGIC = 0,
  OFF_VERSION = 4,
  OFF_FLAGS = 5,
  OFF_SHA = 6,
  OFF_NLAYER = 38,
  OFF_NHEAD = 39,
  OFF_DMODEL = 40,
  OFF_CTX = 42,
  OFF_CHUNK = 46,
  OFF_ORIG = 50,
  OFF_ORIGCRC = 56,
  OFF_NAME = 60,   /* version 3 from here */
  OFF_ADAPT = 76,
  OFF_HDRCRC = 108, /* in both versions the header's last 4 bytes, before the table */
};

static void put_f32(uint8_t *p, float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  put_le(p, u, 4);
}

static float get_f32(const uint8_t *p) {
  uint32_t u = (uint32_t)get_le(p, 4);
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static int in_range(float x, float lo, float hi) { return x >= lo && x <= hi; } /* NaN: no */

bt_error bt_adapt_check(const bt_adapt *a, uint32_t ctx) {
  if (a->window < 2 || a->window > ctx || a->window % 2)
    return bt_fail(BT_ERR_ARG, "adaptive window %u must be even and in 2..%u", a->window, ctx);
  if (a->steps < 0 || a->steps > 16)
    return bt_fail(BT_ERR_ARG, "adaptive steps %d must be in 0..16", a->steps);
  if (a->optimizer != 1)
    return bt_fail(BT_ERR_ARG, "adaptive optimizer %d is unknown (1: AdamW)", a->optimizer);
  if (a->tensors != 0)
    return bt_fail(BT_ERR_ARG, "adaptive tensor set %d is unknown (0: all)", a->tensors);
  if (a->parts & ~7u)
    return bt_fail(BT_ERR_ARG, "adaptive predictor parts 0x%x are unknown", a->parts);
  if (!in_range(a->lr, 0.0f, 1.0f) || !in_range(a->beta1, 0.0f, 0.9999f) ||
      !in_range(a->beta2, 0.0f, 0.99999f) || !in_range(a->eps, 1e-12f, 1.0f) ||
      !in_range(a->weight_decay, 0.0f, 1.0f) || !in_range(a->lr_decay, 0.5f, 1.0f))
    return bt_fail(BT_ERR_ARG, "adaptive optimizer settings out of range (lr %g, betas %g %g, eps %g, wd %g, lr decay %g)",
                   (double)a->lr, (double)a->beta1, (double)a->beta2, (double)a->eps,
                   (double)a->weight_decay, (double)a->lr_decay);
  return BT_OK;
}

/* ---- sizes ---- */

uint64_t bt_container_n_chunks(uint64_t orig_size, uint32_t chunk, int stream) {
  if (orig_size == 0) return 0;
  if (stream) return 1;
  if (chunk == 0) return UINT64_MAX;
  return orig_size / chunk + (orig_size % chunk != 0);
}

uint64_t bt_container_chunk_len(const bt_container_header *h, uint64_t i) {
  if (i >= h->n_chunks) return 0;
  if (h->stream) return h->orig_size;
  uint64_t start = i * h->chunk; /* i < n_chunks: no overflow */
  uint64_t left = h->orig_size - start;
  return left < h->chunk ? left : h->chunk;
}

static size_t header_bytes(int version) {
  return version == 2 ? BT_CONTAINER_V2_HEADER_BYTES : BT_CONTAINER_HEADER_BYTES;
}

size_t bt_container_header_size(uint64_t n_chunks) {
  if (n_chunks > (SIZE_MAX - BT_CONTAINER_HEADER_BYTES) / 4) return SIZE_MAX;
  return BT_CONTAINER_HEADER_BYTES + 4 * (size_t)n_chunks;
}

uint64_t bt_container_bound(uint64_t orig_size, uint32_t chunk, int stream) {
  uint64_t n = bt_container_n_chunks(orig_size, chunk, stream);
  if (n == UINT64_MAX || orig_size > BT_CONTAINER_MAX_ORIG) return UINT64_MAX;
  return orig_size + BT_CONTAINER_HEADER_BYTES + 4 * n; /* < 2^51 */
}

/* ---- writing ---- */

bt_error bt_container_write_header(uint8_t *out, const bt_container_header *h,
                                   const uint32_t *chunk_sizes) {
  if (!out || !h) return bt_fail(BT_ERR_ARG, "container: NULL argument");
  if (h->n_layer < 0 || h->n_layer > 255 || h->n_head < 0 || h->n_head > 255 ||
      h->d_model < 0 || h->d_model > 65535)
    return bt_fail(BT_ERR_ARG, "container: model config out of range (%d layers, %d heads, d_model %d)",
                   h->n_layer, h->n_head, h->d_model);
  if (h->orig_size > BT_CONTAINER_MAX_ORIG)
    return bt_fail(BT_ERR_ARG, "container: input of %llu bytes is too large",
                   (unsigned long long)h->orig_size);
  if (h->stream && h->chunk != 0)
    return bt_fail(BT_ERR_ARG, "container: stream mode needs chunk 0");
  if (h->stream && h->orig_size > UINT32_MAX)
    return bt_fail(BT_ERR_ARG, "container: stream mode is limited to 4 GiB - 1");
  uint64_t n = bt_container_n_chunks(h->orig_size, h->chunk, h->stream);
  if (n == UINT64_MAX) return bt_fail(BT_ERR_ARG, "container: chunk size 0");
  if (n != h->n_chunks)
    return bt_fail(BT_ERR_ARG, "container: %llu chunks given, %llu expected",
                   (unsigned long long)h->n_chunks, (unsigned long long)n);
  if (n > 0 && !chunk_sizes) return bt_fail(BT_ERR_ARG, "container: NULL chunk sizes");
  if (h->adaptive) {
    bt_error e = bt_adapt_check(&h->adapt, h->ctx);
    if (e) return e;
  }
  if (strlen(h->model_name) > BT_MODEL_NAME_MAX)
    return bt_fail(BT_ERR_ARG, "container: model name longer than %d bytes", BT_MODEL_NAME_MAX);
  for (uint64_t i = 0; i < n; i++)
    if (chunk_sizes[i] > bt_container_chunk_len(h, i))
      return bt_fail(BT_ERR_ARG, "container: payload %llu (%u bytes) longer than its chunk",
                     (unsigned long long)i, chunk_sizes[i]);

  memcpy(out + OFF_MAGIC, BT_CONTAINER_MAGIC, 4);
  /* Version 4 only where its one addition is used: a bfloat16 member stays
   * readable by version-3 decoders. */
  out[OFF_VERSION] = h->kv8 ? 4 : 3;
  out[OFF_FLAGS] = (uint8_t)((h->stream ? BT_CONTAINER_FLAG_STREAM : 0) |
                             (h->adaptive ? BT_CONTAINER_FLAG_ADAPT : 0) |
                             (h->kv8 ? BT_CONTAINER_FLAG_KV8 : 0));
  memcpy(out + OFF_SHA, h->ckpt_sha256, 32);
  out[OFF_NLAYER] = (uint8_t)h->n_layer;
  out[OFF_NHEAD] = (uint8_t)h->n_head;
  put_le(out + OFF_DMODEL, (uint64_t)h->d_model, 2);
  put_le(out + OFF_CTX, h->ctx, 4);
  put_le(out + OFF_CHUNK, h->chunk, 4);
  put_le(out + OFF_ORIG, h->orig_size, 6);
  put_le(out + OFF_ORIGCRC, h->orig_crc, 4);
  memset(out + OFF_NAME, 0, OFF_HDRCRC - OFF_NAME);
  memcpy(out + OFF_NAME, h->model_name, strlen(h->model_name));
  if (h->adaptive) {
    const bt_adapt *a = &h->adapt;
    uint8_t *p = out + OFF_ADAPT;
    put_le(p, a->window, 4);
    p[4] = (uint8_t)a->steps;
    p[5] = (uint8_t)a->optimizer;
    p[6] = (uint8_t)a->tensors;
    p[7] = (uint8_t)a->parts;
    put_f32(p + 8, a->lr);
    put_f32(p + 12, a->beta1);
    put_f32(p + 16, a->beta2);
    put_f32(p + 20, a->eps);
    put_f32(p + 24, a->weight_decay);
    put_f32(p + 28, a->lr_decay);
  }
  for (uint64_t i = 0; i < n; i++)
    put_le(out + BT_CONTAINER_HEADER_BYTES + 4 * i, chunk_sizes[i], 4);
  uint32_t crc = bt_crc32(0, out, OFF_HDRCRC);
  crc = bt_crc32(crc, out + BT_CONTAINER_HEADER_BYTES, 4 * (size_t)n);
  put_le(out + OFF_HDRCRC, crc, 4);
  return BT_OK;
}

/* ---- parsing ---- */

/* Parses the member at the start of in[len]; with exact, it must end at len. */
static bt_error parse_member(const uint8_t *in, size_t len, bt_container_header *h,
                             uint64_t **offsets, size_t *member_len, int exact) {
  if (!offsets || !h || (!in && len)) return bt_fail(BT_ERR_ARG, "container: NULL argument");
  *offsets = NULL;
  if (len < 4 && memcmp(in ? (const void *)in : "", BT_CONTAINER_MAGIC, len) == 0)
    return bt_fail(BT_ERR_CORRUPT, "container truncated: %zu bytes", len);
  if (len < 4 || memcmp(in, BT_CONTAINER_MAGIC, 4) != 0)
    return bt_fail(BT_ERR_FORMAT, "not a bt container (bad magic)");
  if (len < 5)
    return bt_fail(BT_ERR_CORRUPT, "container truncated: %zu bytes", len);
  const int version = in[OFF_VERSION];
  if (version < 2 || version > BT_CONTAINER_VERSION)
    return bt_fail(BT_ERR_FORMAT, "container version %u is not supported (this reads 2 to %d)",
                   in[OFF_VERSION], BT_CONTAINER_VERSION);
  const size_t hb = header_bytes(version);
  const size_t off_crc = hb - 4;
  if (len < hb)
    return bt_fail(BT_ERR_CORRUPT, "container truncated: %zu of %zu header bytes", len, hb);

  memset(h, 0, sizeof *h);
  h->version = version;
  uint8_t flags = in[OFF_FLAGS];
  h->stream = flags & BT_CONTAINER_FLAG_STREAM;
  memcpy(h->ckpt_sha256, in + OFF_SHA, 32);
  h->n_layer = in[OFF_NLAYER];
  h->n_head = in[OFF_NHEAD];
  h->d_model = (int)get_le(in + OFF_DMODEL, 2);
  h->ctx = (uint32_t)get_le(in + OFF_CTX, 4);
  h->chunk = (uint32_t)get_le(in + OFF_CHUNK, 4);
  h->orig_size = get_le(in + OFF_ORIG, 6);
  h->orig_crc = (uint32_t)get_le(in + OFF_ORIGCRC, 4);

  /* The table's length comes from the header; it must fit in the input
   * before it is read or checksummed. */
  if (h->stream && h->chunk != 0)
    return bt_fail(BT_ERR_CORRUPT, "container: stream mode with chunk size %u", h->chunk);
  uint64_t n = bt_container_n_chunks(h->orig_size, h->chunk, h->stream);
  if (n == UINT64_MAX)
    return bt_fail(BT_ERR_CORRUPT, "container: chunk size 0 for %llu bytes",
                   (unsigned long long)h->orig_size);
  size_t body = len - hb;
  if (n > body / 4)
    return bt_fail(BT_ERR_CORRUPT, "container truncated: table of %llu chunks, %zu bytes left",
                   (unsigned long long)n, body);
  h->n_chunks = n;
  const uint8_t *table = in + hb;
  uint32_t crc = bt_crc32(0, in, off_crc);
  crc = bt_crc32(crc, table, 4 * (size_t)n);
  if (crc != (uint32_t)get_le(in + off_crc, 4))
    return bt_fail(BT_ERR_CORRUPT, "container: header checksum mismatch");
  /* Checked after the CRC: a damaged flags byte is corruption, an intact
   * unknown one is a feature from a later writer. */
  const unsigned known = version == 2   ? BT_CONTAINER_FLAG_STREAM
                         : version == 3 ? BT_CONTAINER_FLAG_STREAM | BT_CONTAINER_FLAG_ADAPT
                                        : BT_CONTAINER_FLAG_STREAM | BT_CONTAINER_FLAG_ADAPT | BT_CONTAINER_FLAG_KV8;
  if (flags & ~known)
    return bt_fail(BT_ERR_FORMAT, "container: unknown flags 0x%02x", flags);
  h->kv8 = (flags & BT_CONTAINER_FLAG_KV8) != 0;
  if (version >= 3) {
    const uint8_t *nm = in + OFF_NAME;
    for (int i = 0; i < BT_MODEL_NAME_MAX && nm[i]; i++) /* printable ASCII, or cut there */
      h->model_name[i] = nm[i] >= 32 && nm[i] < 127 ? (char)nm[i] : '?';
    const uint8_t *p = in + OFF_ADAPT;
    h->adaptive = (flags & BT_CONTAINER_FLAG_ADAPT) != 0;
    if (h->adaptive) {
      bt_adapt *a = &h->adapt;
      a->window = (uint32_t)get_le(p, 4);
      a->steps = p[4];
      a->optimizer = p[5];
      a->tensors = p[6];
      a->parts = p[7];
      a->lr = get_f32(p + 8);
      a->beta1 = get_f32(p + 12);
      a->beta2 = get_f32(p + 16);
      a->eps = get_f32(p + 20);
      a->weight_decay = get_f32(p + 24);
      a->lr_decay = get_f32(p + 28);
      if (bt_adapt_check(a, h->ctx))
        return bt_fail(BT_ERR_FORMAT, "container: an adaptive schedule this version cannot replay (%s)",
                       bt_error_detail());
    } else {
      for (int i = 0; i < OFF_HDRCRC - OFF_ADAPT; i++)
        if (p[i])
          return bt_fail(BT_ERR_FORMAT, "container: adaptive settings on a member that is not adaptive");
    }
  }

  /* Payload sizes: each at most its chunk's raw length, all within the rest
   * of the input. left shrinks, so nothing can overflow. */
  size_t left = body - 4 * (size_t)n;
  for (uint64_t i = 0; i < n; i++) {
    uint32_t sz = (uint32_t)get_le(table + 4 * i, 4);
    if (sz > bt_container_chunk_len(h, i))
      return bt_fail(BT_ERR_CORRUPT, "container: payload %llu of %u bytes exceeds its chunk",
                     (unsigned long long)i, sz);
    if (sz > left)
      return bt_fail(BT_ERR_CORRUPT, "container truncated: payload %llu needs %u bytes, %zu left",
                     (unsigned long long)i, sz, left);
    left -= sz;
  }
  if (exact && left != 0)
    return bt_fail(BT_ERR_CORRUPT, "container: %zu trailing bytes after the last payload", left);

  uint64_t *off = malloc(((size_t)n + 1) * sizeof *off); /* n <= len / 4 */
  if (!off) return bt_fail(BT_ERR_NOMEM, "container: offsets for %llu chunks",
                           (unsigned long long)n);
  off[0] = hb + 4 * n;
  for (uint64_t i = 0; i < n; i++) off[i + 1] = off[i] + get_le(table + 4 * i, 4);
  *offsets = off;
  if (member_len) *member_len = len - left;
  return BT_OK;
}

bt_error bt_container_parse(const uint8_t *in, size_t len, bt_container_header *h,
                            uint64_t **offsets) {
  return parse_member(in, len, h, offsets, NULL, 1);
}

bt_error bt_container_parse_member(const uint8_t *in, size_t len, bt_container_header *h,
                                   uint64_t **offsets, size_t *member_len) {
  if (!member_len) return bt_fail(BT_ERR_ARG, "container: NULL argument");
  return parse_member(in, len, h, offsets, member_len, 0);
}
