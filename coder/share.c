/* share.c - the codec's work spread over mpirun's ranks (share.h).
 *
 * Both exchanges have one shape: each rank > 0 sends rank 0 a head (its
 * status, and the error's detail), then, if it succeeded, its run of
 * chunks; rank 0 receives from every rank in order, whatever failed, and
 * keeps the first error; then every rank returns rank 0's verdict (agree),
 * so all stop together. A failure of MPI itself leaves the ranks unable to
 * agree, so it ends the job (bt_dist_abort). */
#include "coder/share.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/dist.h"

typedef struct {
  int32_t status;
  char detail[476];
} share_head;

/* What rank 0 needs of a coded chunk besides its bytes. */
typedef struct {
  uint64_t size, len;
  double logloss, coded_bits;
} share_meta;

static void must(bt_error e) {
  if (e)
    bt_dist_abort(1);
}

/* Rank > 0: its status, with the detail of its error. */
static void send_head(bt_error status) {
  share_head h;
  memset(&h, 0, sizeof h);
  h.status = status;
  if (status)
    snprintf(h.detail, sizeof h.detail, "%s", bt_error_detail());
  must(bt_dist_send(&h, sizeof h, 0));
}

/* Rank 0: rank q's head. Keeps the first error (*first, its detail in d);
 * returns 1 if rank q's chunks follow. */
static int recv_head(int q, bt_error *first, char *d, size_t cap) {
  share_head h;
  must(bt_dist_recv(&h, sizeof h, q));
  h.detail[sizeof h.detail - 1] = '\0';
  if (!h.status)
    return 1;
  if (!*first) {
    *first = (bt_error)h.status;
    snprintf(d, cap, "rank %d: %s", q, h.detail);
  }
  return 0;
}

/* Every rank returns rank 0's status (rank 0: status, with its detail d). */
static bt_error agree(bt_error status, const char *d) {
  int32_t st = bt_dist_rank() == 0 ? (int32_t)status : 0;
  must(bt_dist_bcast(&st, sizeof st, 0));
  if (bt_dist_rank() == 0)
    return status ? bt_fail(status, "%s", d) : BT_OK;
  return st ? bt_fail((bt_error)st, "failed on another rank") : BT_OK;
}

/* Rank 0's own error detail, before MPI calls can overwrite it. */
static void own_detail(bt_error status, char *d, size_t cap) {
  snprintf(d, cap, "%s", status ? bt_error_detail() : "");
}

bt_error bt_share_exchange(void *user, bt_chunk_result *r, uint64_t n, bt_error status) {
  (void)user;
  const int me = bt_dist_rank(), P = bt_dist_size();
  uint64_t lo, hi;
  char d[512];
  if (me != 0) {
    bt_share_range(n, me, P, &lo, &hi);
    share_meta *m = status ? NULL : calloc(hi - lo + 1, sizeof *m);
    if (!status && !m)
      status = bt_fail(BT_ERR_NOMEM, "chunk table");
    send_head(status);
    if (!status) {
      for (uint64_t i = lo; i < hi; i++)
        m[i - lo] = (share_meta){r[i].size, r[i].len, r[i].logloss, r[i].coded_bits};
      must(bt_dist_send(m, (hi - lo) * sizeof *m, 0));
      for (uint64_t i = lo; i < hi; i++)
        if (r[i].size < r[i].len)
          must(bt_dist_send(r[i].buf, r[i].size, 0));
    }
    free(m);
    return agree(BT_OK, "");
  }
  own_detail(status, d, sizeof d);
  for (int q = 1; q < P; q++) {
    if (!recv_head(q, &status, d, sizeof d))
      continue;
    bt_share_range(n, q, P, &lo, &hi);
    share_meta *m = malloc((hi - lo + 1) * sizeof *m);
    if (!m) /* rank q sends regardless: nothing can be agreed now */
      bt_dist_abort(1);
    must(bt_dist_recv(m, (hi - lo) * sizeof *m, q));
    for (uint64_t i = lo; i < hi; i++) {
      const share_meta *x = &m[i - lo];
      r[i] = (bt_chunk_result){NULL, (size_t)x->size, x->len, x->logloss, x->coded_bits};
      if (x->size < x->len) {
        if (!(r[i].buf = malloc(x->size ? x->size : 1)))
          bt_dist_abort(1);
        must(bt_dist_recv(r[i].buf, x->size, q));
      }
    }
    free(m);
  }
  return agree(status, d);
}

bt_error bt_share_dexchange(void *user, int verdict, uint8_t *res, const bt_span *sp, uint64_t n,
                            bt_error status) {
  (void)user;
  const int me = bt_dist_rank(), P = bt_dist_size();
  uint64_t lo, hi;
  char d[512];
  own_detail(status, d, sizeof d);
  if (verdict)
    return agree(status, d);
  if (me != 0) {
    bt_share_range(n, me, P, &lo, &hi);
    send_head(status);
    for (uint64_t i = lo; i < hi && !status; i++)
      must(bt_dist_send(res + sp[i].at, (size_t)sp[i].len, 0));
    return agree(BT_OK, "");
  }
  for (int q = 1; q < P; q++) {
    if (!recv_head(q, &status, d, sizeof d))
      continue;
    bt_share_range(n, q, P, &lo, &hi);
    for (uint64_t i = lo; i < hi; i++)
      must(bt_dist_recv(res + sp[i].at, (size_t)sp[i].len, q));
  }
  return agree(status, d);
}
