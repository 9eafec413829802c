/* share.c - the codec's work spread over mpirun's ranks (share.h). */
#include "coder/share.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/dist.h"

typedef struct {
  int32_t status;
  char detail[476];
  uint64_t payload; /* coded bytes that follow the chunk table */
} share_head;

typedef struct {
  uint64_t size, len;
  double logloss, coded_bits;
} share_meta;

bt_error bt_share_exchange(void *user, bt_chunk_result *r, uint64_t n, bt_error status) {
  (void)user;
  const int me = bt_dist_rank(), P = bt_dist_size();
  uint64_t lo, hi;
  bt_error e;
  if (me != 0) {
    bt_share_range(n, me, P, &lo, &hi);
    share_head h;
    memset(&h, 0, sizeof h);
    h.status = status;
    if (status)
      snprintf(h.detail, sizeof h.detail, "%s", bt_error_detail());
    share_meta *m = calloc(hi - lo + 1, sizeof *m);
    if (!m && !status) {
      h.status = BT_ERR_NOMEM;
      snprintf(h.detail, sizeof h.detail, "chunk table");
    }
    for (uint64_t i = lo; i < hi && !h.status; i++) {
      m[i - lo] = (share_meta){r[i].size, r[i].len, r[i].logloss, r[i].coded_bits};
      if (r[i].size < r[i].len)
        h.payload += r[i].size;
    }
    e = bt_dist_send(&h, sizeof h, 0);
    if (!e && !h.status)
      e = bt_dist_send(m, (hi - lo) * sizeof *m, 0);
    for (uint64_t i = lo; i < hi && !e && !h.status; i++)
      if (r[i].size < r[i].len)
        e = bt_dist_send(r[i].buf, r[i].size, 0);
    free(m);
    if (e)
      bt_dist_abort(1);
    int32_t st = 0; /* rank 0's verdict: every rank stops together */
    if (bt_dist_bcast(&st, sizeof st, 0))
      bt_dist_abort(1);
    return st ? bt_fail((bt_error)st, "failed on another rank") : BT_OK;
  }
  bt_error first = status;
  char d[512] = "";
  if (status)
    snprintf(d, sizeof d, "%s", bt_error_detail());
  for (int q = 1; q < P; q++) { /* every rank sends, whatever failed */
    share_head h;
    if ((e = bt_dist_recv(&h, sizeof h, q)))
      return e;
    h.detail[sizeof h.detail - 1] = '\0';
    if (h.status) {
      if (!first) {
        first = (bt_error)h.status;
        snprintf(d, sizeof d, "rank %d: %s", q, h.detail);
      }
      continue;
    }
    bt_share_range(n, q, P, &lo, &hi);
    share_meta *m = malloc((hi - lo + 1) * sizeof *m);
    if (!m)
      return bt_fail(BT_ERR_NOMEM, "chunk table");
    e = bt_dist_recv(m, (hi - lo) * sizeof *m, q);
    for (uint64_t i = lo; i < hi && !e; i++) {
      const share_meta *x = &m[i - lo];
      r[i].size = (size_t)x->size;
      r[i].len = x->len;
      r[i].logloss = x->logloss;
      r[i].coded_bits = x->coded_bits;
      if (x->size < x->len) {
        if (!(r[i].buf = malloc(x->size ? x->size : 1)))
          e = bt_fail(BT_ERR_NOMEM, "chunk buffer");
        else
          e = bt_dist_recv(r[i].buf, x->size, q);
      }
    }
    free(m);
    if (e)
      bt_dist_abort(1);
  }
  int32_t st = (int32_t)first;
  if (bt_dist_bcast(&st, sizeof st, 0))
    bt_dist_abort(1);
  return first ? bt_fail(first, "%s", d) : BT_OK;
}

/* Decompression's exchange (bt_codec_set_decode_share): the other ranks
 * send their decoded runs (or their error) to rank 0, and every rank returns
 * rank 0's status, so all stop at the same member. */
bt_error bt_share_dexchange(void *user, int verdict, uint8_t *res, const bt_span *sp, uint64_t n,
                                bt_error status) {
  (void)user;
  const int me = bt_dist_rank(), P = bt_dist_size();
  bt_error e = BT_OK;
  if (!verdict) {
    uint64_t lo, hi;
    if (me != 0) {
      bt_share_range(n, me, P, &lo, &hi);
      share_head h;
      memset(&h, 0, sizeof h);
      h.status = status;
      if (status)
        snprintf(h.detail, sizeof h.detail, "%s", bt_error_detail());
      e = bt_dist_send(&h, sizeof h, 0);
      for (uint64_t i = lo; i < hi && !e && !status; i++)
        e = bt_dist_send(res + sp[i].at, (size_t)sp[i].len, 0);
    } else {
      char d[512] = "";
      if (status)
        snprintf(d, sizeof d, "%s", bt_error_detail());
      for (int q = 1; q < P && !e; q++) { /* every rank sends, whatever failed */
        share_head h;
        if ((e = bt_dist_recv(&h, sizeof h, q)))
          break;
        h.detail[sizeof h.detail - 1] = '\0';
        if (h.status) {
          if (!status) {
            status = (bt_error)h.status;
            snprintf(d, sizeof d, "rank %d: %s", q, h.detail);
          }
          continue;
        }
        bt_share_range(n, q, P, &lo, &hi);
        for (uint64_t i = lo; i < hi && !e; i++)
          e = bt_dist_recv(res + sp[i].at, (size_t)sp[i].len, q);
      }
      if (e) /* MPI itself failed: the ranks cannot agree any more */
        bt_dist_abort(1);
      if (status)
        bt_fail(status, "%s", d);
    }
    if (e)
      bt_dist_abort(1);
  }
  /* Rank 0's status, to every rank. */
  char d[512];
  snprintf(d, sizeof d, "%s", status ? bt_error_detail() : "");
  int32_t st = me == 0 ? (int32_t)status : 0;
  if (bt_dist_bcast(&st, sizeof st, 0))
    bt_dist_abort(1);
  if (me == 0)
    return status ? bt_fail(status, "%s", d) : BT_OK;
  return st ? bt_fail((bt_error)st, "failed on another rank") : BT_OK;
}

