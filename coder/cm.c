/*
 * cm.c - the context-mixing predictor and binary coder of cm.h.
 *
 * Fixed point throughout. Probabilities of a bit being 1 are 12-bit
 * (1..4095) where they meet the coder and the mixer, 22-bit inside the
 * adaptive tables. The logistic domain ("stretch", ln(p/(1-p))) is in units
 * of 1/256, clamped to +-2047; squash is its inverse, interpolated from 33
 * points. Every table is built with integer arithmetic, so there is nothing
 * here a machine could round differently.
 */
#include "coder/cm.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "coder/coder.h"

/* ---- logistic domain ---- */

/* 4096 / (1 + e^(-x/256)) at x = -2048, -1920, ..., 2048: rounded values of
 * the logistic function, the only constants the predictor depends on. */
static const int16_t squash_pts[33] = {
    1,    2,    4,    6,    10,   17,   27,   45,   74,   120,  194,
    311,  488,  747,  1102, 1546, 2048, 2550, 2994, 3349, 3608, 3785,
    3902, 3976, 4022, 4051, 4069, 4079, 4086, 4090, 4092, 4094, 4095};

static int squash(int d) { /* d in stretch units -> p in 0..4095 */
  if (d > 2047) d = 2047;
  if (d < -2047) d = -2047;
  int w = d & 127, i = (d >> 7) + 16;
  return (squash_pts[i] * (128 - w) + squash_pts[i + 1] * w + 64) >> 7;
}

static int16_t stretch_tab[4096]; /* inverse of squash */

static void init_stretch(void) {
  /* stretch(p) = the smallest d with squash(d) >= p, so squash(stretch(p))
   * is p rounded up to what squash can reach. Built once; the values are
   * a function of the constants above only. */
  int pi = 0;
  for (int d = -2047; d <= 2047; d++) {
    int v = squash(d);
    for (; pi <= v && pi < 4096; pi++) stretch_tab[pi] = (int16_t)d;
  }
  for (; pi < 4096; pi++) stretch_tab[pi] = 2047;
}

static int stretch(int p) { return stretch_tab[p]; }

/* ---- adaptive probabilities with counts ----
 * A slot is 32 bits: p (22 bits, P(1)) above n (10 bits, updates seen).
 * The rate is 1/(n + 1.5) until n reaches the table's limit, so a context
 * first learns as an average, then tracks changes. */

static int32_t rec_tab[1024]; /* 65536 / (n + 1.5) */

static void init_rec(void) {
  for (int n = 0; n < 1024; n++) rec_tab[n] = (int32_t)(131072 / (2 * n + 3));
}

#define SLOT_INIT (((uint32_t)1 << 31)) /* p = 1/2, n = 0 */

static inline int slot_p12(uint32_t s) { return (int)(s >> 20); }

static inline void slot_update(uint32_t *s, int bit, int limit) {
  uint32_t v = *s;
  int n = (int)(v & 1023);
  int32_t p = (int32_t)(v >> 10);
  int32_t target = bit ? (1 << 22) - 1 : 0;
  p += (int32_t)(((int64_t)(target - p) * rec_tab[n]) >> 16);
  if (n < limit) n++;
  *s = ((uint32_t)p << 10) | (uint32_t)n;
}

/* ---- context slots ----
 * A hashed context's slot is 64 bits: its own P(1) (16 bits) and update
 * count (8), the last bits seen in it (a shift register with a leading 1,
 * 8 bits), and 16 bits of the context's hash to tell it from others that
 * share the slot (a new one takes the slot over). The bit history also
 * indexes a per-order table of probabilities learned across all contexts
 * ("what follows this history"): the second input of each context. */

typedef uint64_t cslot;
/* p and the history are stored XORed with their fresh values (1/2 and the
 * lone leading 1), so a fresh slot is all zero bits: tables start as
 * calloc's zero pages and are cleared with memset. */
#define CS_P(s) ((int)(((s) & 0xffff) ^ 0x8000))
#define CS_N(s) ((int)(((s) >> 16) & 0xff))
#define CS_H(s) ((int)((((s) >> 24) & 0xff) ^ 1))
#define CS_CHK(s) ((uint32_t)((s) >> 32) & 0xffff)
static inline cslot cs_make(int p, int n, int h, uint32_t chk) {
  return (cslot)(uint32_t)(p ^ 0x8000) | (cslot)(uint32_t)n << 16 | (cslot)(uint32_t)(h ^ 1) << 24 |
         (cslot)chk << 32;
}
#define CS_FRESH(chk) ((cslot)(chk) << 32)

static inline void cs_update(cslot *s, int bit, int limit) {
  cslot v = *s;
  int p = CS_P(v), n = CS_N(v), h = CS_H(v);
  int target = bit ? 65535 : 0;
  p += (int)(((int64_t)(target - p) * rec_tab[n]) >> 16);
  if (n < limit) n++;
  h = (h << 1) | bit;
  if (h >= 256) h = (h & 127) | 128; /* keep the last 7 bits */
  *s = cs_make(p, n, h, CS_CHK(v));
}

/* ---- the predictor ---- */

#define N_ORD 10                /* contexts: order 0, 1, then hashed */
#define N_HASHED 8              /* orders 2, 3, 4, 5, 6, 8, the word, the word and the one before */
#define HASH_BITS 21
#define MATCH_BITS 20
#define MATCH_MIN 6             /* bytes hashed to find a match */
#define MATCH_BUCKETS 24
#define N_IN (4 + 2 * N_ORD)    /* transformer, bias, match, two per context, transformer refined */
#define N_MIX 3
#define FMIX_LR 2               /* the final mixer's rate */
#define MIX_LR 8                /* mixer learning rate: weight += x * err * MIX_LR / 2^14 */
#define CTX_LIMIT 250           /* count limit of the context slots */
#define IND_LIMIT 1023          /* and of the bit-history tables */
#define APM_RATE 7

typedef struct {
  int32_t *w; /* (sets, N_IN) weights, 16.16 */
  int sets, sel;
  int dot;    /* last output, stretch units */
} mixer_t;

struct bt_cm {
  unsigned parts;
  int zeroed, mzeroed; /* the context / match tables are still calloc's zeros */
  /* the byte being coded */
  uint32_t cum[257];
  int c0;       /* 1, then 1b, 1bb, ...: the bits of the byte so far */
  int bitpos;   /* 0..7 */
  int c1, c2;   /* the previous two bytes */
  uint32_t h[N_HASHED]; /* context hashes of this byte */
  cslot *slot[N_ORD];   /* this bit's slots */
  int known;            /* hashed contexts seen before, this bit */
  /* tables */
  cslot *o0, *o1, *hashed;     /* 256, 65536, N_HASHED << HASH_BITS */
  uint32_t ind[N_ORD][256];    /* P(1) by bit history, per context order */
  int32_t *mtab;               /* 1 << MATCH_BITS: where the byte after the hashed ones was (0: none) */
  uint32_t msm[MATCH_BUCKETS * 2]; /* P(the expected bit is right) by length */
  size_t mptr, mlen;           /* the match: next predicted byte hist[mptr] */
  int mbyte, mbucket, mexp;    /* predicted byte, its length bucket, expected bit (-1 none) */
  uint32_t word, word1;        /* hashes of the current word and the one before */
  /* mixing */
  int x[N_IN];
  mixer_t mx[N_MIX];
  int32_t fw[256 * N_MIX];     /* the final mixer of the three, by partial byte */
  int fx[N_MIX], fsel, fdot;
  uint16_t *apm;               /* (3, 65536, 33) refinements: two of the mix, one of the transformer */
  int apm_idx[3], apm_w, tapm_w;
  int pr;                      /* final probability */
};

static const int mix_sets[N_MIX] = {256, MATCH_BUCKETS * 3, (N_HASHED + 1) * 8};

size_t bt_cm_bytes(unsigned parts) {
  size_t b = sizeof(bt_cm) + 3 * 65536 * 33 * 2;
  for (int k = 0; k < N_MIX; k++) b += (size_t)mix_sets[k] * N_IN * 4;
  if (parts & BT_CM_CTX) b += (256 + 65536 + ((size_t)N_HASHED << HASH_BITS)) * sizeof(cslot);
  if (parts & BT_CM_MATCH) b += ((size_t)1 << MATCH_BITS) * 4;
  return b;
}

static void mixer_init(mixer_t *m) {
  for (int s = 0; s < m->sets; s++)
    for (int i = 0; i < N_IN; i++) m->w[s * N_IN + i] = i == 0 ? 65536 : 0;
}

void bt_cm_reset(bt_cm *cm) {
  if (cm->o0 && !cm->zeroed) {
    memset(cm->o0, 0, 256 * sizeof(cslot));
    memset(cm->o1, 0, 65536 * sizeof(cslot));
    memset(cm->hashed, 0, ((size_t)N_HASHED << HASH_BITS) * sizeof(cslot));
  }
  cm->zeroed = 0; /* from here on, coding writes them */
  for (int k = 0; k < N_ORD; k++)
    for (int h = 0; h < 256; h++) cm->ind[k][h] = SLOT_INIT;
  if (cm->mtab && !cm->mzeroed) memset(cm->mtab, 0, ((size_t)1 << MATCH_BITS) * sizeof *cm->mtab);
  cm->mzeroed = 0;
  for (int i = 0; i < MATCH_BUCKETS * 2; i++) cm->msm[i] = SLOT_INIT;
  cm->mptr = cm->mlen = 0;
  cm->mexp = -1;
  cm->word = cm->word1 = 0;
  cm->c1 = cm->c2 = 0;
  for (int k = 0; k < N_MIX; k++) mixer_init(&cm->mx[k]);
  for (int i = 0; i < 256 * N_MIX; i++) cm->fw[i] = 65536 / N_MIX;
  for (int c = 0; c < 3 * 65536; c++)
    for (int j = 0; j < 33; j++) cm->apm[c * 33 + j] = (uint16_t)(squash((j - 16) * 128) * 16);
}

static void init_tables(void) {
  init_stretch();
  init_rec();
}

bt_error bt_cm_create(bt_cm **out, unsigned parts) {
  *out = NULL;
  if (parts & ~BT_CM_ALL) return bt_fail(BT_ERR_ARG, "unknown predictor parts 0x%x", parts);
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, init_tables);
  bt_cm *cm = calloc(1, sizeof *cm);
  if (!cm) return bt_fail(BT_ERR_NOMEM, "predictor");
  cm->parts = parts;
  int bad = 0;
  for (int k = 0; k < N_MIX; k++) {
    cm->mx[k].sets = mix_sets[k];
    cm->mx[k].w = malloc((size_t)mix_sets[k] * N_IN * sizeof(int32_t));
    bad |= !cm->mx[k].w;
  }
  cm->apm = malloc((size_t)3 * 65536 * 33 * sizeof(uint16_t));
  bad |= !cm->apm;
  if (parts & BT_CM_CTX) {
    cm->o0 = calloc(256, sizeof(cslot));
    cm->o1 = calloc(65536, sizeof(cslot));
    cm->hashed = calloc((size_t)N_HASHED << HASH_BITS, sizeof(cslot));
    bad |= !cm->o0 || !cm->o1 || !cm->hashed;
    cm->zeroed = 1;
  }
  if (parts & BT_CM_MATCH) {
    cm->mtab = calloc((size_t)1 << MATCH_BITS, sizeof(int32_t));
    bad |= !cm->mtab;
    cm->mzeroed = 1;
  }
  if (bad) {
    bt_cm_free(cm);
    return bt_fail(BT_ERR_NOMEM, "predictor tables (%zu MB)", bt_cm_bytes(parts) >> 20);
  }
  bt_cm_reset(cm);
  *out = cm;
  return BT_OK;
}

void bt_cm_free(bt_cm *cm) {
  if (!cm) return;
  free(cm->o0);
  free(cm->o1);
  free(cm->hashed);
  free(cm->mtab);
  for (int k = 0; k < N_MIX; k++) free(cm->mx[k].w);
  free(cm->apm);
  free(cm);
}

static inline uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

static int match_bucket(size_t len) {
  if (len < 16) return (int)len;
  int b = 16;
  for (size_t l = len >> 5; l && b < MATCH_BUCKETS - 1; l >>= 1) b++;
  return b;
}

/* Follows or finds the match for the byte at pos (hist[0..pos) known). */
static void match_begin(bt_cm *cm, const uint8_t *hist, size_t pos) {
  if (cm->mlen > 0) { /* did the last prediction hold? */
    if (hist[cm->mptr] == hist[pos - 1]) {
      cm->mptr++;
      if (cm->mlen < 65535) cm->mlen++;
    } else {
      cm->mlen = 0;
    }
  }
  if (pos < MATCH_MIN) return;
  uint32_t h = 0;
  for (int i = MATCH_MIN; i >= 1; i--) h = (h + hist[pos - (size_t)i] + 1) * 0x2f0b4c27u;
  h = mix32(h) >> (32 - MATCH_BITS);
  if (cm->mlen == 0 && cm->mtab[h] > 0) {
    size_t cand = (size_t)cm->mtab[h], l = 0; /* hist[cand] followed the same bytes */
    while (l < 64 && l < cand && hist[cand - 1 - l] == hist[pos - 1 - l]) l++;
    if (l >= MATCH_MIN) {
      cm->mptr = cand;
      cm->mlen = l;
    }
  }
  if (pos <= (size_t)INT32_MAX) cm->mtab[h] = (int32_t)pos;
}

static void bit_contexts(bt_cm *cm) {
  if (cm->parts & BT_CM_CTX) {
    cm->slot[0] = &cm->o0[cm->c0];
    cm->slot[1] = &cm->o1[(cm->c1 << 8) | cm->c0];
    int known = 0;
    for (int k = 0; k < N_HASHED; k++) {
      uint32_t hh = mix32(cm->h[k] ^ ((uint32_t)cm->c0 * 0x9e3779b1u));
      cslot *s = &cm->hashed[((size_t)k << HASH_BITS) + (hh >> (32 - HASH_BITS))];
      uint32_t chk = hh & 0xffff;
      if (CS_CHK(*s) != chk)
        *s = CS_FRESH(chk);
      else
        known += CS_N(*s) > 0;
      cm->slot[2 + k] = s;
    }
    cm->known = known;
  }
  cm->mexp = -1;
  if ((cm->parts & BT_CM_MATCH) && cm->mlen > 0 && ((cm->mbyte | 256) >> (8 - cm->bitpos)) == cm->c0)
    cm->mexp = (cm->mbyte >> (7 - cm->bitpos)) & 1;
}

void bt_cm_begin(bt_cm *cm, const uint32_t freq[256], const uint8_t *hist, size_t pos) {
  bt_freq_cumulative(freq, cm->cum);
  cm->c0 = 1;
  cm->bitpos = 0;
  cm->c1 = pos ? hist[pos - 1] : 0;
  cm->c2 = pos > 1 ? hist[pos - 2] : 0;
  if (cm->parts & BT_CM_CTX) {
    static const int orders[N_HASHED - 2] = {2, 3, 4, 5, 6, 8};
    for (int k = 0; k < N_HASHED - 2; k++) {
      uint32_t h = (uint32_t)(k + 1) * 0x3c6ef372u;
      for (int i = 1; i <= orders[k]; i++) h = (h + (i <= (int)pos ? hist[pos - (size_t)i] : 0) + 1) * 0x01000193u;
      cm->h[k] = mix32(h);
    }
    int c = cm->c1;
    int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 128;
    if (alnum) {
      cm->word = (cm->word + (uint32_t)(c | 32) + 1) * 0x2f0b4c27u;
    } else if (pos && cm->word) {
      cm->word1 = cm->word;
      cm->word = 0;
    }
    cm->h[N_HASHED - 2] = mix32(cm->word ^ 0x5bd1e995u) + (uint32_t)c * (cm->word == 0);
    cm->h[N_HASHED - 1] = mix32(cm->word * 0x3c6ef372u + cm->word1 + 0x1b873593u) + (uint32_t)c * (cm->word == 0);
  }
  if (cm->parts & BT_CM_MATCH) {
    if (pos) match_begin(cm, hist, pos);
    cm->mbyte = cm->mlen > 0 ? hist[cm->mptr] : 0;
    cm->mbucket = match_bucket(cm->mlen);
  } else {
    cm->mlen = 0;
    cm->mbucket = 0;
  }
  bit_contexts(cm);
}

/* The transformer's P(bit = 1) at the current node, 1..4095. */
static int model_p(const bt_cm *cm) {
  int b = cm->bitpos, width = 256 >> b;
  int lo = (cm->c0 - (1 << b)) * width, mid = lo + width / 2, hi = lo + width;
  uint64_t n = cm->cum[hi] - cm->cum[lo], n1 = cm->cum[hi] - cm->cum[mid];
  int p = (int)((n1 * 4096 + n / 2) / n);
  return p < 1 ? 1 : p > 4095 ? 4095 : p;
}

static int dot(const int32_t *w, const int *x) {
  int64_t s = 0;
  for (int i = 0; i < N_IN; i++) s += (int64_t)w[i] * x[i];
  s >>= 16;
  return s > 2047 ? 2047 : s < -2047 ? -2047 : (int)s;
}

static int apm_read(const uint16_t *a, int w) { return (a[0] * (128 - w) + a[1] * w) >> 11; }

int bt_cm_p(bt_cm *cm) {
  int *x = cm->x;
  const int pt = model_p(cm);
  if (cm->parts == 0)
    return cm->pr = pt;
  int st = stretch(pt);
  x[0] = st;
  x[1] = 256;
  x[2] = 0;
  if (cm->mexp >= 0) {
    int ps = stretch(slot_p12(cm->msm[cm->mbucket * 2 + (cm->bitpos == 0)]));
    x[2] = cm->mexp ? ps : -ps;
  }
  { /* the transformer's probability, recalibrated in its order-1 context */
    int dd = st + 2048;
    cm->tapm_w = dd & 127;
    cm->apm_idx[2] = (2 * 65536 + ((cm->c1 << 8) | cm->c0)) * 33 + (dd >> 7);
    x[N_IN - 1] = (cm->parts & BT_CM_SSE) ? stretch(apm_read(cm->apm + cm->apm_idx[2], cm->tapm_w)) : 0;
  }
  for (int k = 0; k < N_ORD; k++) {
    if (cm->parts & BT_CM_CTX) {
      cslot s = *cm->slot[k];
      x[3 + 2 * k] = stretch(CS_P(s) >> 4);
      x[4 + 2 * k] = stretch(slot_p12(cm->ind[k][CS_H(s)]));
    } else {
      x[3 + 2 * k] = x[4 + 2 * k] = 0;
    }
  }
  int conf = st < 0 ? -st : st; /* how sure the transformer is: 3 buckets */
  int cb = conf < 256 ? 0 : conf < 1024 ? 1 : 2;
  cm->mx[0].sel = cm->c0;
  cm->mx[1].sel = (cm->mexp >= 0 ? cm->mbucket : 0) * 3 + cb;
  cm->mx[2].sel = cm->known * 8 + cm->bitpos;
  int64_t fd = 0;
  cm->fsel = cm->c0;
  for (int k = 0; k < N_MIX; k++) {
    mixer_t *m = &cm->mx[k];
    m->dot = dot(m->w + m->sel * N_IN, x);
    cm->fx[k] = m->dot;
    fd += (int64_t)cm->fw[cm->fsel * N_MIX + k] * m->dot;
  }
  fd >>= 16;
  int d = fd > 2047 ? 2047 : fd < -2047 ? -2047 : (int)fd;
  cm->fdot = d;
  int p = squash(d);
  if (cm->parts & BT_CM_SSE) { /* interpolate between two of 33 buckets */
    int dd = d + 2048; /* 1..4095 */
    int j = dd >> 7;
    cm->apm_w = dd & 127;
    cm->apm_idx[0] = ((cm->c1 << 8) | cm->c0) * 33 + j;
    cm->apm_idx[1] = (65536 + (int)((mix32((uint32_t)(cm->c2 << 8 | cm->c1) * 0x2f0b4c27u + (uint32_t)cm->c0) >> 16))) * 33 + j;
    int a0 = apm_read(cm->apm + cm->apm_idx[0], cm->apm_w), a1 = apm_read(cm->apm + cm->apm_idx[1], cm->apm_w);
    p = (p + a0 + 2 * a1 + 2) >> 2;
  }
  cm->pr = p < 1 ? 1 : p > 4095 ? 4095 : p;
  return cm->pr;
}

static void mixer_update(mixer_t *m, const int *x, int err) {
  int32_t *w = m->w + m->sel * N_IN;
  for (int i = 0; i < N_IN; i++) w[i] += (x[i] * err + (1 << 13)) >> 14;
}

void bt_cm_update(bt_cm *cm, int bit) {
  if (cm->parts != 0) {
    for (int k = 0; k < N_MIX; k++) {
      mixer_t *m = &cm->mx[k];
      int err = ((bit << 12) - squash(m->dot)) * MIX_LR;
      mixer_update(m, cm->x, err);
    }
    {
      int err = ((bit << 12) - squash(cm->fdot)) * FMIX_LR;
      int32_t *w = cm->fw + cm->fsel * N_MIX;
      for (int k = 0; k < N_MIX; k++) w[k] += (cm->fx[k] * err + (1 << 13)) >> 14;
    }
    if (cm->parts & BT_CM_CTX)
      for (int k = 0; k < N_ORD; k++) {
        slot_update(&cm->ind[k][CS_H(*cm->slot[k])], bit, IND_LIMIT);
        cs_update(cm->slot[k], bit, CTX_LIMIT);
      }
    if (cm->mexp >= 0) slot_update(&cm->msm[cm->mbucket * 2 + (cm->bitpos == 0)], bit == cm->mexp, 1023);
    if (cm->parts & BT_CM_SSE) {
      int t = bit ? 65535 : 0;
      for (int k = 0; k < 3; k++) {
        uint16_t *a = cm->apm + cm->apm_idx[k] + ((k == 2 ? cm->tapm_w : cm->apm_w) >= 64);
        *a = (uint16_t)(*a + ((t - *a) >> APM_RATE));
      }
    }
  }
  cm->c0 = (cm->c0 << 1) | bit;
  cm->bitpos++;
  if (cm->bitpos < 8) bit_contexts(cm);
}

/* ---- binary arithmetic coder ----
 * The interval [x1, x2] of 32-bit values splits at
 * xmid = x1 + (x2 - x1) * p / 4096: a 1 takes [x1, xmid], a 0 (xmid, x2].
 * Once x1 and x2 agree in their top byte it is final and goes out. */

void bt_bin_enc_init(bt_bin_enc *e, uint8_t *buf, size_t cap) {
  e->x1 = 0;
  e->x2 = 0xffffffffu;
  e->buf = buf;
  e->cap = buf ? cap : 0;
  e->pos = 0;
}

static inline void enc_put(bt_bin_enc *e, uint8_t b) {
  if (e->pos < e->cap) e->buf[e->pos] = b;
  e->pos++;
}

static inline uint32_t split(uint32_t x1, uint32_t x2, int p) {
  return x1 + (uint32_t)(((uint64_t)(x2 - x1) * (uint32_t)p) >> 12);
}

void bt_bin_encode(bt_bin_enc *e, int bit, int p) {
  uint32_t xmid = split(e->x1, e->x2, p);
  if (bit)
    e->x2 = xmid;
  else
    e->x1 = xmid + 1;
  while (((e->x1 ^ e->x2) & 0xff000000u) == 0) {
    enc_put(e, (uint8_t)(e->x2 >> 24));
    e->x1 <<= 8;
    e->x2 = (e->x2 << 8) | 255;
  }
}

int bt_bin_enc_overflowed(const bt_bin_enc *e) { return e->pos > e->cap; }

size_t bt_bin_enc_finish(bt_bin_enc *e) {
  /* Any value in [x1, x2] decodes right, and the decoder reads zeros past
   * the end: so the value there with the fewest significant bytes, x1
   * rounded up to a multiple of 256^(4-n), goes out as its top n bytes. */
  for (int n = 0; n <= 4; n++) {
    uint64_t unit = (uint64_t)1 << (32 - 8 * n);
    uint64_t v = ((uint64_t)e->x1 + unit - 1) / unit * unit;
    if (v <= e->x2) {
      for (int i = 0; i < n; i++) enc_put(e, (uint8_t)(v >> (24 - 8 * i)));
      break;
    }
  }
  return e->pos > e->cap ? SIZE_MAX : e->pos;
}

static inline uint8_t dec_get(bt_bin_dec *d) { return d->pos < d->len ? d->buf[d->pos++] : (d->pos++, 0); }

void bt_bin_dec_init(bt_bin_dec *d, const uint8_t *buf, size_t len) {
  d->buf = buf;
  d->len = buf ? len : 0;
  d->pos = 0;
  d->x1 = 0;
  d->x2 = 0xffffffffu;
  d->x = 0;
  for (int i = 0; i < 4; i++) d->x = (d->x << 8) | dec_get(d);
}

int bt_bin_decode(bt_bin_dec *d, int p) {
  uint32_t xmid = split(d->x1, d->x2, p);
  int bit = d->x <= xmid;
  if (bit)
    d->x2 = xmid;
  else
    d->x1 = xmid + 1;
  while (((d->x1 ^ d->x2) & 0xff000000u) == 0) {
    d->x1 <<= 8;
    d->x2 = (d->x2 << 8) | 255;
    d->x = (d->x << 8) | dec_get(d);
  }
  return bit;
}

double bt_cm_encode_byte(bt_cm *cm, bt_bin_enc *e, int sym) {
  double prob = 1; /* the byte's probability: 8 factors >= 2^-12 each, no underflow */
  for (int i = 7; i >= 0; i--) {
    int bit = (sym >> i) & 1, p = bt_cm_p(cm);
    prob *= (bit ? p : 4096 - p) / 4096.0;
    bt_bin_encode(e, bit, p);
    bt_cm_update(cm, bit);
  }
  return -log2(prob); /* report only */
}

int bt_cm_decode_byte(bt_cm *cm, bt_bin_dec *d) {
  for (int i = 0; i < 8; i++) {
    int bit = bt_bin_decode(d, bt_cm_p(cm));
    bt_cm_update(cm, bit);
  }
  return cm->c0 & 255;
}
