/*
 * bpe.c - byte-level BPE: training, encoding, decoding, the .btok file
 * (bpe.h).
 */
#include "data/bpe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/fileio.h"
#include "kernels/hash.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

struct bt_bpe {
  int vocab;
  uint32_t (*merge)[2]; /* (vocab - 256): merge i makes token 256 + i */
  uint32_t *off;        /* (vocab + 1): token t's bytes are bytes[off[t] .. off[t + 1]) */
  uint8_t *bytes;
  /* pair (left << 32 | right) -> merge index + 1; open addressing */
  uint64_t *pkey;
  uint32_t *pval;
  size_t pcap; /* a power of two */
};

static const uint8_t MAGIC[8] = {'B', 'T', 'B', 'P', 'E', '\r', '\n', 0x1a};
enum { VERSION = 1, SCHEME = 1, HEADER = 8 + 12 };

/* ==================================================================== */
/* Pieces                                                                */
/* ==================================================================== */

enum { C_LETTER, C_DIGIT, C_SPACE, C_OTHER };

static int byte_class(uint8_t b) {
  if ((b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || b >= 0x80) /* UTF-8 stays in its word */
    return C_LETTER;
  if (b >= '0' && b <= '9')
    return C_DIGIT;
  if (b == ' ' || (b >= '\t' && b <= '\r'))
    return C_SPACE;
  return C_OTHER;
}

size_t bt_bpe_piece(const uint8_t *in, size_t n) {
  const size_t cap = n < BT_BPE_MAX_PIECE ? n : BT_BPE_MAX_PIECE;
  size_t i = 0;
  int c = byte_class(in[0]);
  if (in[0] == ' ' && n > 1 && byte_class(in[1]) != C_SPACE) { /* " word" */
    c = byte_class(in[1]);
    i = 1;
  }
  while (i < cap && byte_class(in[i]) == c)
    i++;
  /* White space before a word leaves it its one space: "\n\n the" is
   * "\n\n", " the" whether or not the run is cut by the cap. */
  if (c == C_SPACE && i > 1 && i < n && in[i - 1] == ' ' && byte_class(in[i]) != C_SPACE)
    i--;
  return i;
}

/* ==================================================================== */
/* Hash tables                                                           */
/* ==================================================================== */

static uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  return x ^ (x >> 33);
}

static uint64_t pair_key(uint32_t a, uint32_t b) { return (uint64_t)a << 32 | b; }

/* The rank + 1 of merge (a, b), or 0. */
static uint32_t merge_rank(const bt_bpe *t, uint32_t a, uint32_t b) {
  if (!t->pcap)
    return 0;
  const uint64_t k = pair_key(a, b) + 1; /* 0 marks an empty slot */
  for (size_t i = mix64(k) & (t->pcap - 1);; i = (i + 1) & (t->pcap - 1)) {
    if (t->pkey[i] == k)
      return t->pval[i];
    if (!t->pkey[i])
      return 0;
  }
}

/* ==================================================================== */
/* Making a tokenizer from its merges                                    */
/* ==================================================================== */

void bt_bpe_free(bt_bpe *t) {
  if (!t)
    return;
  free(t->merge);
  free(t->off);
  free(t->bytes);
  free(t->pkey);
  free(t->pval);
  free(t);
}

/* Takes ownership of merge ((vocab - 256) pairs), checked: each joins two
 * earlier tokens, no pair twice, no token longer than BT_BPE_MAX_PIECE. */
static bt_error from_merges(bt_bpe **out, uint32_t (*merge)[2], int vocab) {
  *out = NULL;
  const int nm = vocab - 256;
  bt_bpe *t = calloc(1, sizeof *t);
  if (!t) {
    free(merge);
    return bt_fail(BT_ERR_NOMEM, "tokenizer");
  }
  t->vocab = vocab;
  t->merge = merge;
  t->off = malloc(((size_t)vocab + 1) * sizeof *t->off);
  t->bytes = malloc((size_t)vocab * BT_BPE_MAX_PIECE);
  t->pcap = 1;
  while (t->pcap < 2 * (size_t)(nm > 0 ? nm : 1))
    t->pcap <<= 1;
  t->pkey = calloc(t->pcap, sizeof *t->pkey);
  t->pval = malloc(t->pcap * sizeof *t->pval);
  if (!t->off || !t->bytes || !t->pkey || !t->pval) {
    bt_bpe_free(t);
    return bt_fail(BT_ERR_NOMEM, "tokenizer of %d tokens", vocab);
  }
  t->off[0] = 0;
  for (int b = 0; b < 256; b++) {
    t->bytes[b] = (uint8_t)b;
    t->off[b + 1] = (uint32_t)b + 1;
  }
  for (int i = 0; i < nm; i++) {
    const uint32_t a = merge[i][0], b = merge[i][1], z = 256 + (uint32_t)i;
    if (a >= z || b >= z) {
      bt_bpe_free(t);
      return bt_fail(BT_ERR_CORRUPT, "merge %d joins token %u and %u, not both earlier than %u", i, a,
                     b, z);
    }
    const uint32_t la = t->off[a + 1] - t->off[a], lb = t->off[b + 1] - t->off[b];
    if (la + lb > BT_BPE_MAX_PIECE) {
      bt_bpe_free(t);
      return bt_fail(BT_ERR_CORRUPT, "merge %d makes a token of %u bytes (at most %d)", i, la + lb,
                     BT_BPE_MAX_PIECE);
    }
    memcpy(t->bytes + t->off[z], t->bytes + t->off[a], la);
    memcpy(t->bytes + t->off[z] + la, t->bytes + t->off[b], lb);
    t->off[z + 1] = t->off[z] + la + lb;
    const uint64_t k = pair_key(a, b) + 1;
    size_t s = mix64(k) & (t->pcap - 1);
    while (t->pkey[s] && t->pkey[s] != k)
      s = (s + 1) & (t->pcap - 1);
    if (t->pkey[s]) {
      const uint32_t first = t->pval[s] - 1;
      bt_bpe_free(t);
      return bt_fail(BT_ERR_CORRUPT, "merge %d repeats merge %u (%u, %u)", i, first, a, b);
    }
    t->pkey[s] = k;
    t->pval[s] = (uint32_t)i + 1;
  }
  *out = t;
  return BT_OK;
}

bt_error bt_bpe_prefix(bt_bpe **out, const bt_bpe *t, int vocab) {
  *out = NULL;
  if (vocab < 256 || vocab > t->vocab)
    return bt_fail(BT_ERR_ARG, "a vocabulary of %d from one of %d tokens", vocab, t->vocab);
  uint32_t(*m)[2] = malloc(((size_t)(vocab - 256) + 1) * sizeof *m);
  if (!m)
    return bt_fail(BT_ERR_NOMEM, "merges");
  memcpy(m, t->merge, (size_t)(vocab - 256) * sizeof *m);
  return from_merges(out, m, vocab);
}

int bt_bpe_vocab(const bt_bpe *t) { return t->vocab; }

size_t bt_bpe_token(const bt_bpe *t, uint32_t id, const uint8_t **bytes) {
  if (id >= (uint32_t)t->vocab) {
    *bytes = NULL;
    return 0;
  }
  *bytes = t->bytes + t->off[id];
  return t->off[id + 1] - t->off[id];
}

/* ==================================================================== */
/* Encoding and decoding                                                 */
/* ==================================================================== */

/* s[0..n) (a piece's tokens, bytes at first) merged in rank order: the
 * pair of lowest rank, leftmost first, until no pair has one. A merge only
 * makes pairs of higher rank than its own (they contain its new token), so
 * this is the merges applied one after another, as training did. */
static size_t encode_piece(const bt_bpe *t, uint32_t *s, size_t n) {
  uint32_t r[BT_BPE_MAX_PIECE]; /* r[i]: rank + 1 of (s[i], s[i+1]), 0: none */
  for (size_t i = 0; i + 1 < n; i++)
    r[i] = merge_rank(t, s[i], s[i + 1]);
  while (n > 1) {
    size_t best = n;
    for (size_t i = 0; i + 1 < n; i++)
      if (r[i] && (best == n || r[i] < r[best]))
        best = i;
    if (best == n)
      break;
    s[best] = 256 + r[best] - 1;
    memmove(s + best + 1, s + best + 2, (n - best - 2) * sizeof *s);
    if (best + 3 <= n) /* r loses the pair (s[best+1], s[best+2]) */
      memmove(r + best + 1, r + best + 2, (n - best - 3) * sizeof *r);
    n--;
    if (best > 0)
      r[best - 1] = merge_rank(t, s[best - 1], s[best]);
    if (best + 1 < n)
      r[best] = merge_rank(t, s[best], s[best + 1]);
  }
  return n;
}

size_t bt_bpe_encode(const bt_bpe *t, const uint8_t *in, size_t n, uint32_t *tok) {
  size_t m = 0;
  for (size_t i = 0; i < n;) {
    const size_t len = bt_bpe_piece(in + i, n - i);
    for (size_t j = 0; j < len; j++)
      tok[m + j] = in[i + j];
    m += encode_piece(t, tok + m, len);
    i += len;
  }
  return m;
}

size_t bt_bpe_encode16(const bt_bpe *t, const uint8_t *in, size_t n, uint16_t *tok) {
  uint32_t piece[BT_BPE_MAX_PIECE];
  size_t m = 0;
  for (size_t i = 0; i < n;) {
    const size_t len = bt_bpe_piece(in + i, n - i);
    for (size_t j = 0; j < len; j++)
      piece[j] = in[i + j];
    const size_t k = encode_piece(t, piece, len);
    for (size_t j = 0; j < k; j++)
      tok[m + j] = (uint16_t)piece[j]; /* < V <= 65536 */
    m += k;
    i += len;
  }
  return m;
}

bt_error bt_bpe_decode(const bt_bpe *t, const uint32_t *tok, size_t ntok, uint8_t *out, size_t cap,
                       size_t *n) {
  size_t m = 0;
  *n = 0;
  for (size_t i = 0; i < ntok; i++) {
    if (tok[i] >= (uint32_t)t->vocab)
      return bt_fail(BT_ERR_CORRUPT, "token %zu is %u, outside the vocabulary of %d", i, tok[i],
                     t->vocab);
    const size_t len = t->off[tok[i] + 1] - t->off[tok[i]];
    if (len > cap - m)
      return bt_fail(BT_ERR_LIMIT, "decoded bytes exceed the %zu-byte buffer", cap);
    memcpy(out + m, t->bytes + t->off[tok[i]], len);
    m += len;
  }
  *n = m;
  return BT_OK;
}

/* ==================================================================== */
/* Training                                                              */
/* ==================================================================== */

/* A distinct piece of the text (a "word"), its count, and its tokens now. */
typedef struct {
  const uint8_t *p; /* in the text: the piece's bytes */
  uint32_t len;     /* its tokens now (<= its bytes) */
  uint32_t sym;     /* its tokens: syms[sym .. sym + len) */
  uint64_t count;
  uint32_t stamp; /* the last merge that visited it, + 1 */
} word_t;

/* A pair of adjacent tokens: its count over the text, the words it may
 * occur in (appended when it appears; stale entries are skipped). */
typedef struct {
  uint64_t key;
  int64_t count;
  uint32_t *w;
  uint32_t nw, cw;
  uint32_t stamp; /* the last merge that changed its count, + 1 */
  int64_t before; /* its count before that merge */
} pair_t;

typedef struct {
  int64_t count;
  uint64_t key;
} heap_t;

typedef struct {
  word_t *words;
  size_t nwords;
  uint32_t *syms;
  pair_t *pairs;
  size_t npairs, cpairs;
  uint32_t *pslot; /* pair index + 1 by key; open addressing */
  size_t pscap;
  heap_t *heap;
  size_t nheap, cheap;
  uint32_t *touched; /* pairs changed by this merge */
  size_t ntouched, ctouched;
} trainer;

/* p (with *cap elements of elem bytes) reallocated to twice *cap, or to
 * first if empty; *cap updated. NULL if out of memory (p still valid). */
static void *grow(void *p, size_t *cap, size_t elem, size_t first) {
  const size_t c = *cap ? 2 * *cap : first;
  if (c < *cap || c > SIZE_MAX / elem)
    return NULL;
  void *q = realloc(p, c * elem);
  if (q)
    *cap = c;
  return q;
}

static int heap_before(const heap_t *x, const heap_t *y) {
  return x->count != y->count ? x->count > y->count : x->key < y->key;
}

static int heap_push(trainer *tr, int64_t count, uint64_t key) {
  if (tr->nheap == tr->cheap) {
    heap_t *h = grow(tr->heap, &tr->cheap, sizeof *h, 1024);
    if (!h)
      return -1;
    tr->heap = h;
  }
  size_t i = tr->nheap++;
  const heap_t e = {count, key};
  while (i > 0 && heap_before(&e, &tr->heap[(i - 1) / 2])) {
    tr->heap[i] = tr->heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  tr->heap[i] = e;
  return 0;
}

static heap_t heap_pop(trainer *tr) {
  const heap_t top = tr->heap[0], last = tr->heap[--tr->nheap];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= tr->nheap)
      break;
    if (c + 1 < tr->nheap && heap_before(&tr->heap[c + 1], &tr->heap[c]))
      c++;
    if (!heap_before(&tr->heap[c], &last))
      break;
    tr->heap[i] = tr->heap[c];
    i = c;
  }
  if (tr->nheap)
    tr->heap[i] = last;
  return top;
}

/* The pair's index, made if new (-1: out of memory). */
static long pair_at(trainer *tr, uint64_t key) {
  if (2 * (tr->npairs + 1) > tr->pscap) {
    size_t cap = tr->pscap ? 2 * tr->pscap : 1 << 16;
    uint32_t *s = calloc(cap, sizeof *s);
    if (!s)
      return -1;
    for (size_t i = 0; i < tr->npairs; i++) {
      size_t j = mix64(tr->pairs[i].key) & (cap - 1);
      while (s[j])
        j = (j + 1) & (cap - 1);
      s[j] = (uint32_t)i + 1;
    }
    free(tr->pslot);
    tr->pslot = s;
    tr->pscap = cap;
  }
  size_t j = mix64(key) & (tr->pscap - 1);
  while (tr->pslot[j]) {
    if (tr->pairs[tr->pslot[j] - 1].key == key)
      return (long)tr->pslot[j] - 1;
    j = (j + 1) & (tr->pscap - 1);
  }
  if (tr->npairs == tr->cpairs) {
    pair_t *p = grow(tr->pairs, &tr->cpairs, sizeof *p, 1 << 15);
    if (!p)
      return -1;
    tr->pairs = p;
  }
  tr->pairs[tr->npairs] = (pair_t){.key = key};
  tr->pslot[j] = (uint32_t)tr->npairs + 1;
  return (long)tr->npairs++;
}

/* Adds d occurrences of (a, b) in word w; a new occurrence lists w. */
static int pair_add(trainer *tr, uint32_t a, uint32_t b, int64_t d, uint32_t w, int list,
                    uint32_t stamp) {
  const long i = pair_at(tr, pair_key(a, b));
  if (i < 0)
    return -1;
  pair_t *p = &tr->pairs[i];
  if (p->stamp != stamp)
    p->before = p->count;
  p->count += d;
  if (list) {
    if (p->nw == p->cw) {
      size_t c = p->cw; /* 32 bits in the pair, which there are many of */
      uint32_t *x = c <= UINT32_MAX / 2 ? grow(p->w, &c, sizeof *x, 4) : NULL;
      if (!x)
        return -1;
      p->w = x;
      p->cw = (uint32_t)c;
    }
    p->w[p->nw++] = w;
  }
  if (p->stamp != stamp) {
    p->stamp = stamp;
    if (tr->ntouched == tr->ctouched) {
      uint32_t *x = grow(tr->touched, &tr->ctouched, sizeof *x, 1024);
      if (!x)
        return -1;
      tr->touched = x;
    }
    tr->touched[tr->ntouched++] = (uint32_t)i;
  }
  return 0;
}

/* Every distinct piece of the text, counted (words, nwords; syms made). */
static bt_error count_pieces(trainer *tr, const uint8_t *text, size_t n) {
  size_t cap = 1 << 16, nw = 0, total = 0;
  uint32_t *slot = calloc(cap, sizeof *slot);
  word_t *w = malloc((cap / 2) * sizeof *w);
  if (!slot || !w)
    goto nomem;
  for (size_t i = 0; i < n;) {
    const size_t len = bt_bpe_piece(text + i, n - i);
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ len;
    for (size_t j = 0; j < len; j++)
      h = (h ^ text[i + j]) * 0x100000001B3ULL;
    h = mix64(h);
    size_t s = h & (cap - 1);
    while (slot[s] && !(w[slot[s] - 1].len == len && !memcmp(w[slot[s] - 1].p, text + i, len)))
      s = (s + 1) & (cap - 1);
    if (slot[s]) {
      w[slot[s] - 1].count++;
    } else {
      w[nw] = (word_t){.p = text + i, .len = (uint32_t)len, .count = 1};
      slot[s] = (uint32_t)++nw;
      total += len;
      if (2 * nw >= cap) { /* grow: rehash by the same function */
        const size_t nc = 2 * cap;
        uint32_t *ns = calloc(nc, sizeof *ns);
        word_t *nwp = realloc(w, (nc / 2) * sizeof *w);
        if (!ns || !nwp) {
          free(ns);
          if (nwp)
            w = nwp;
          goto nomem;
        }
        w = nwp;
        for (size_t k = 0; k < nw; k++) {
          uint64_t g = 0x9E3779B97F4A7C15ULL ^ w[k].len;
          for (size_t j = 0; j < w[k].len; j++)
            g = (g ^ w[k].p[j]) * 0x100000001B3ULL;
          size_t t = mix64(g) & (nc - 1);
          while (ns[t])
            t = (t + 1) & (nc - 1);
          ns[t] = (uint32_t)k + 1;
        }
        free(slot);
        slot = ns;
        cap = nc;
      }
    }
    i += len;
  }
  free(slot);
  tr->syms = malloc((total ? total : 1) * sizeof *tr->syms);
  if (!tr->syms) {
    free(w);
    return bt_fail(BT_ERR_NOMEM, "tokenizer training: %zu piece bytes", total);
  }
  size_t at = 0;
  for (size_t k = 0; k < nw; k++) {
    w[k].sym = (uint32_t)at;
    for (size_t j = 0; j < w[k].len; j++)
      tr->syms[at++] = w[k].p[j];
  }
  tr->words = w;
  tr->nwords = nw;
  return BT_OK;
nomem:
  free(slot);
  free(w);
  return bt_fail(BT_ERR_NOMEM, "tokenizer training: counting the pieces");
}

static void trainer_free(trainer *tr) {
  for (size_t i = 0; i < tr->npairs; i++)
    free(tr->pairs[i].w);
  free(tr->pairs);
  free(tr->pslot);
  free(tr->heap);
  free(tr->touched);
  free(tr->words);
  free(tr->syms);
}

/* Applies merge (a, b) -> z to word k, with its pairs' counts. */
static int merge_word(trainer *tr, uint32_t k, uint32_t a, uint32_t b, uint32_t z, uint32_t stamp) {
  word_t *w = &tr->words[k];
  uint32_t *s = tr->syms + w->sym;
  const int64_t c = (int64_t)w->count;
  size_t i = 0;
  while (i + 1 < w->len && !(s[i] == a && s[i + 1] == b))
    i++;
  if (i + 1 >= w->len)
    return 0; /* a stale entry: the pair is gone from this word */
  for (size_t j = 0; j + 1 < w->len; j++)
    if (pair_add(tr, s[j], s[j + 1], -c, k, 0, stamp))
      return -1;
  size_t m = 0;
  for (size_t j = 0; j < w->len;) {
    if (j + 1 < w->len && s[j] == a && s[j + 1] == b) {
      s[m++] = z;
      j += 2;
    } else {
      s[m++] = s[j++];
    }
  }
  w->len = (uint32_t)m;
  for (size_t j = 0; j + 1 < m; j++) /* pairs with z are new: list the word */
    if (pair_add(tr, s[j], s[j + 1], c, k, s[j] == z || s[j + 1] == z, stamp))
      return -1;
  return 0;
}

bt_error bt_bpe_train(bt_bpe **out, const uint8_t *text, size_t n, int vocab, bt_bpe_progress_fn fn,
                      void *user) {
  *out = NULL;
  if (vocab < 256 || vocab > BT_BPE_MAX_VOCAB)
    return bt_fail(BT_ERR_ARG, "a vocabulary must have 256..%d tokens (got %d)", BT_BPE_MAX_VOCAB, vocab);
  trainer tr = {0};
  bt_error e = count_pieces(&tr, text, n);
  if (e)
    return e;
  const int want = vocab - 256;
  uint32_t(*merge)[2] = malloc(((size_t)want + 1) * sizeof *merge);
  if (!merge) {
    trainer_free(&tr);
    return bt_fail(BT_ERR_NOMEM, "merges");
  }
  int oom = 0;
  for (size_t k = 0; k < tr.nwords && !oom; k++) {
    const word_t *w = &tr.words[k];
    const uint32_t *s = tr.syms + w->sym;
    for (size_t j = 0; j + 1 < w->len && !oom; j++)
      oom = pair_add(&tr, s[j], s[j + 1], (int64_t)w->count, (uint32_t)k, 1, 1);
  }
  for (size_t i = 0; i < tr.npairs && !oom; i++)
    oom = heap_push(&tr, tr.pairs[i].count, tr.pairs[i].key);
  int nm = 0;
  while (nm < want && !oom && tr.nheap) {
    const heap_t top = heap_pop(&tr);
    const long pi = pair_at(&tr, top.key);
    if (pi < 0) {
      oom = 1;
      break;
    }
    if (tr.pairs[pi].count != top.count)
      continue; /* stale: the pair's count changed since */
    if (top.count < 2)
      break; /* no pair occurs twice: a larger vocabulary only memorises */
    const uint32_t a = (uint32_t)(top.key >> 32), b = (uint32_t)top.key, z = 256 + (uint32_t)nm;
    const uint32_t stamp = (uint32_t)nm + 2;
    merge[nm][0] = a;
    merge[nm][1] = b;
    tr.ntouched = 0;
    /* The word list may grow while it is walked (a word gaining (a, b)
     * again cannot: z replaces every occurrence), so index, don't point. */
    for (uint32_t x = 0; x < tr.pairs[pi].nw && !oom; x++) {
      const uint32_t k = tr.pairs[pi].w[x];
      if (tr.words[k].stamp == stamp)
        continue;
      tr.words[k].stamp = stamp;
      oom = merge_word(&tr, k, a, b, z, stamp);
    }
    free(tr.pairs[pi].w);
    tr.pairs[pi].w = NULL;
    tr.pairs[pi].nw = tr.pairs[pi].cw = 0;
    for (size_t x = 0; x < tr.ntouched && !oom; x++) {
      /* a word's pairs away from the merge are taken out and put back:
       * their counts, and their heap entries, still hold */
      const pair_t *p = &tr.pairs[tr.touched[x]];
      if (p->count > 0 && p->count != p->before)
        oom = heap_push(&tr, p->count, p->key);
    }
    nm++;
    if (fn && nm % 256 == 0)
      fn(user, nm, want);
  }
  trainer_free(&tr);
  if (oom) {
    free(merge);
    return bt_fail(BT_ERR_NOMEM, "tokenizer training: pair tables");
  }
  if (fn)
    fn(user, nm, want);
  return from_merges(out, merge, 256 + nm);
}

/* ==================================================================== */
/* The .btok file                                                        */
/* ==================================================================== */

static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

bt_error bt_bpe_serialize(const bt_bpe *t, uint8_t **buf, size_t *len) {
  const size_t nm = (size_t)t->vocab - 256, n = HEADER + 8 * nm + 32;
  uint8_t *b = malloc(n);
  if (!b)
    return bt_fail(BT_ERR_NOMEM, "tokenizer image");
  memcpy(b, MAGIC, 8);
  put32(b + 8, VERSION);
  put32(b + 12, SCHEME);
  put32(b + 16, (uint32_t)t->vocab);
  for (size_t i = 0; i < nm; i++) {
    put32(b + HEADER + 8 * i, t->merge[i][0]);
    put32(b + HEADER + 8 * i + 4, t->merge[i][1]);
  }
  bt_sha256(b, n - 32, b + n - 32);
  *buf = b;
  *len = n;
  return BT_OK;
}

bt_error bt_bpe_parse(bt_bpe **out, const uint8_t *buf, size_t len) {
  *out = NULL;
  if (len < 8 || memcmp(buf, MAGIC, 8))
    return bt_fail(BT_ERR_FORMAT, "not a bt tokenizer (no BTBPE magic)");
  if (len < HEADER + 32)
    return bt_fail(BT_ERR_CORRUPT, "tokenizer file truncated: %zu bytes", len);
  const uint32_t version = get32(buf + 8), scheme = get32(buf + 12), vocab = get32(buf + 16);
  if (version != VERSION)
    return bt_fail(BT_ERR_FORMAT, "tokenizer format version %u (this bt reads %d)", version, VERSION);
  if (scheme != SCHEME)
    return bt_fail(BT_ERR_FORMAT, "tokenizer piece scheme %u (this bt knows %d)", scheme, SCHEME);
  if (vocab < 256 || vocab > BT_BPE_MAX_VOCAB)
    return bt_fail(BT_ERR_CORRUPT, "tokenizer vocabulary %u outside 256..%d", vocab, BT_BPE_MAX_VOCAB);
  const size_t nm = vocab - 256;
  if (len != HEADER + 8 * nm + 32)
    return bt_fail(BT_ERR_CORRUPT, "tokenizer file of %zu bytes; %u tokens need %zu", len, vocab,
                   HEADER + 8 * nm + 32);
  uint8_t sha[32];
  bt_sha256(buf, len - 32, sha);
  if (memcmp(sha, buf + len - 32, 32))
    return bt_fail(BT_ERR_CHECKSUM, "tokenizer file does not match its SHA-256");
  uint32_t(*m)[2] = malloc((nm + 1) * sizeof *m);
  if (!m)
    return bt_fail(BT_ERR_NOMEM, "merges");
  for (size_t i = 0; i < nm; i++) {
    m[i][0] = get32(buf + HEADER + 8 * i);
    m[i][1] = get32(buf + HEADER + 8 * i + 4);
  }
  return from_merges(out, m, (int)vocab);
}

bt_error bt_bpe_save(const bt_bpe *t, const char *path) {
  uint8_t *b;
  size_t n;
  bt_error e = bt_bpe_serialize(t, &b, &n);
  if (e)
    return e;
  e = bt_atomic_write(path, b, n);
  free(b);
  return e;
}

bt_error bt_bpe_load(bt_bpe **out, const char *path) {
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  char alt[4096];
  if (fd < 0 && errno == ENOENT && snprintf(alt, sizeof alt, "%s.btok", path) < (int)sizeof alt) {
    const int alt_fd = open(alt, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (alt_fd >= 0) {
      fd = alt_fd;
      path = alt;
    } else {
      errno = ENOENT; /* the message names the path as given */
    }
  }
  if (fd < 0)
    return bt_fail(errno == ENOENT ? BT_ERR_NOT_FOUND : BT_ERR_IO, "cannot open %s: %s", path,
                   strerror(errno));
  struct stat st;
  /* 20 + 8 x 65,280 + 32 bytes at most: anything else is not a tokenizer */
  const off_t most = HEADER + 8 * (off_t)(BT_BPE_MAX_VOCAB - 256) + 32;
  if (fstat(fd, &st)) {
    const int err = errno;
    close(fd);
    return bt_fail(BT_ERR_IO, "cannot stat %s: %s", path, strerror(err));
  }
  if (!S_ISREG(st.st_mode) || st.st_size > most) {
    close(fd);
    return bt_fail(BT_ERR_FORMAT, "%s: not a tokenizer file (%s)", path,
                   !S_ISREG(st.st_mode) ? "not a regular file" : "too large");
  }
  uint8_t *b = malloc((size_t)st.st_size + 1);
  if (!b) {
    close(fd);
    return bt_fail(BT_ERR_NOMEM, "%s", path);
  }
  const int rd = bt_read_full(fd, b, (size_t)st.st_size);
  close(fd);
  if (rd) {
    free(b);
    return bt_fail(BT_ERR_IO, "cannot read %s", path);
  }
  bt_error e = bt_bpe_parse(out, b, (size_t)st.st_size);
  free(b);
  return e;
}
