/*
 * rc.c - the range coder: 256-symbol arithmetic coding over 24-bit integer
 * frequency tables (see coder.h for the state and the invariants).
 *
 * Integer arithmetic only, so the encoder and decoder agree on every machine.
 * The decoder treats its input as hostile: it reads only inside the buffer,
 * clamps its target into the table, and keeps code < range whatever it reads.
 */
#include "coder/coder.h"

#include <assert.h>

#define RC_BITS 56                          /* significant bits of low */
#define RC_TOP ((uint64_t)1 << RC_BITS)     /* range < RC_TOP */
#define RC_BOT ((uint64_t)1 << (RC_BITS - 8)) /* range >= RC_BOT, normalised */
#define RC_MASK (RC_TOP - 1)

/* ---- encoder ---- */

void bt_rc_enc_init(bt_rc_enc *e, uint8_t *buf, size_t cap) {
  e->low = 0;
  e->range = RC_MASK;
  e->buf = buf;
  e->cap = buf ? cap : 0;
  e->pos = 0;
  e->end = 0;
  e->pending = 0;
  e->cache = 0;
  e->has_cache = 0;
  e->n_carry = 0;
  e->max_pending = 0;
}

static void put_byte(bt_rc_enc *e, uint8_t b) {
  if (e->pos < e->cap) e->buf[e->pos] = b;
  /* Past cap the byte is dropped but still counted: a zero there may yet be
   * trimmed away, a non-zero one proves the overflow. */
  if (b) e->end = e->pos + 1;
  e->pos++;
}

/* Moves the top byte of low's 56 bits out. A byte of 0xFF cannot be emitted
 * yet, since a later carry would turn it into 0x00 and bump the byte before
 * it; so it is counted in pending and the byte before it waits in cache. */
static void shift_low(bt_rc_enc *e) {
  uint32_t top = (uint32_t)(e->low >> (RC_BITS - 8)); /* 0..0x1FF: bit 8 = carry */
  if (top != 0xFF) {
    uint32_t carry = top >> 8;
    if (e->has_cache) {
      /* The interval never reaches above a byte already fixed at 0xFF plus
       * one, so the cache cannot overflow. */
      assert(e->cache + carry <= 0xFF);
      put_byte(e, (uint8_t)(e->cache + carry));
    } else {
      /* The first interval lies below 2^56, so nothing carries out of it. */
      assert(carry == 0);
    }
    e->n_carry += carry;
    for (; e->pending; e->pending--) put_byte(e, (uint8_t)(0xFF + carry));
    e->cache = (uint8_t)top;
    e->has_cache = 1;
  } else {
    e->pending++;
    if (e->pending > e->max_pending) e->max_pending = e->pending;
  }
  e->low = (e->low << 8) & RC_MASK;
}

void bt_rc_encode(bt_rc_enc *e, uint32_t cum, uint32_t freq) {
  assert(freq >= 1 && cum <= BT_FREQ_TOTAL && freq <= BT_FREQ_TOTAL - cum);
  assert(e->range >= RC_BOT && e->range < RC_TOP);
  uint64_t r = e->range >> BT_FREQ_BITS; /* >= 2^24 */
  e->low += r * cum;                      /* < 2^57: carry in bit 56 */
  e->range = r * freq;
  assert(e->range > 0);
  while (e->range < RC_BOT) {
    shift_low(e);
    e->range <<= 8;
  }
  assert(e->range >= RC_BOT && e->range < RC_TOP);
}

size_t bt_rc_enc_finish(bt_rc_enc *e) {
  /* Pick the number in [low, low + range) with the most trailing zero bytes:
   * those bytes need not be written. range >= 2^48 guarantees a multiple of
   * 2^48 in the interval, so at most the carry and one byte of the window
   * remain, plus whatever is held in cache and pending. */
  uint64_t x = e->low;
  for (int k = RC_BITS / 8; k >= 1; k--) {
    uint64_t m = (uint64_t)1 << (8 * k);
    uint64_t c = (e->low + m - 1) & ~(m - 1);
    if (c - e->low < e->range) {
      x = c;
      break;
    }
  }
  e->low = x;
  for (int i = 0; i <= RC_BITS / 8; i++) shift_low(e); /* window, then cache */
  return e->end <= e->cap ? e->end : SIZE_MAX;
}

size_t bt_rc_enc_bytes(const bt_rc_enc *e) { return e->end; }

int bt_rc_enc_overflowed(const bt_rc_enc *e) { return e->end > e->cap; }

/* ---- decoder ---- */

static uint64_t next_byte(bt_rc_dec *d) {
  if (d->pos >= d->len) return 0; /* pos stops at len: no overflow, no read */
  return d->buf[d->pos++];
}

/* Keeps code < range, which every valid stream satisfies: a violation is
 * corruption, and clamping keeps the arithmetic in range afterwards. */
static void check_code(bt_rc_dec *d) {
  if (d->code >= d->range) {
    d->corrupt = 1;
    d->code = d->range - 1;
  }
}

void bt_rc_dec_init(bt_rc_dec *d, const uint8_t *buf, size_t len) {
  d->buf = buf;
  d->len = buf ? len : 0;
  d->pos = 0;
  d->corrupt = 0;
  d->range = RC_MASK;
  d->code = 0;
  for (int i = 0; i < RC_BITS / 8; i++) d->code = (d->code << 8) | next_byte(d);
  check_code(d);
}

uint32_t bt_rc_decode_target(bt_rc_dec *d) {
  assert(d->range >= RC_BOT && d->range < RC_TOP && d->code < d->range);
  uint64_t v = d->code / (d->range >> BT_FREQ_BITS);
  /* Only a corrupt stream gets here with v >= 2^24 (code beyond
   * r * 2^24, in the sliver range loses to truncation). */
  if (v >= BT_FREQ_TOTAL) v = BT_FREQ_TOTAL - 1;
  return (uint32_t)v;
}

void bt_rc_decode_update(bt_rc_dec *d, uint32_t cum, uint32_t freq) {
  assert(freq >= 1 && cum <= BT_FREQ_TOTAL && freq <= BT_FREQ_TOTAL - cum);
  uint64_t r = d->range >> BT_FREQ_BITS;
  uint64_t sub = r * cum;
  /* The caller chose cum <= target <= code / r, so sub <= code; guard
   * anyway against a caller passing another symbol. */
  if (sub > d->code) {
    d->corrupt = 1;
    d->code = 0;
  } else {
    d->code -= sub;
  }
  d->range = r * freq;
  check_code(d);
  while (d->range < RC_BOT) {
    d->code = (d->code << 8) | next_byte(d); /* code < range < 2^48: no overflow */
    d->range <<= 8;
  }
  assert(d->range >= RC_BOT && d->range < RC_TOP && d->code < d->range);
}

int bt_rc_decode(bt_rc_dec *d, const uint32_t cum[257]) {
  assert(cum[0] == 0 && cum[256] == BT_FREQ_TOTAL);
  uint32_t v = bt_rc_decode_target(d);
  /* Largest s with cum[s] <= v: cum[lo] <= v < cum[hi] throughout. */
  int lo = 0, hi = 256;
  while (hi - lo > 1) {
    int mid = (lo + hi) >> 1;
    if (cum[mid] <= v)
      lo = mid;
    else
      hi = mid;
  }
  assert(cum[lo] < cum[lo + 1]);
  bt_rc_decode_update(d, cum[lo], cum[lo + 1] - cum[lo]);
  return lo;
}

int bt_rc_dec_corrupt(const bt_rc_dec *d) { return d->corrupt; }
