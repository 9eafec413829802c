/*
 * gradsum.h - a step's gradient as one fixed-order sum of micro-batch
 * gradients, whatever the layout that computed them.
 *
 * A step of B micro-batches (each T tokens) sums their gradients g_0 ..
 * g_{B-1} as a binary counter does: each new item is pushed, and while the
 * two newest entries cover the same number of items they are added, older +
 * newer. What remains at the end is added newest first. So the sum of B = 8
 * is ((g0 + g1) + (g2 + g3)) + ((g4 + g5) + (g6 + g7)).
 *
 * Because only entries of equal size are merged, a run of 2^k consecutive
 * items starting at a multiple of 2^k is summed into one entry by itself.
 * So P processes that each take B / P consecutive items (a power of two) can
 * each sum their own, and pushing those P partial sums, in order, with their
 * sizes, gives the same floats as one process pushing all B items: the
 * result does not depend on how the micro-batches were spread (train/dist.h).
 * Each addition is one float add per element (bt_add), the same on every
 * thread count and ISA path.
 */
#ifndef BT_GRADSUM_H
#define BT_GRADSUM_H

#include <stddef.h>

#include "kernels/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BT_GRADSUM_LEVELS 40

typedef struct {
  size_t n;                         /* floats per gradient */
  float *buf[BT_GRADSUM_LEVELS];     /* entries, oldest first; owned */
  long size[BT_GRADSUM_LEVELS];      /* items each entry covers */
  int top;                           /* entries in use */
  int cap;                           /* buffers allocated */
} bt_gradsum;

/* An empty sum of n-float gradients (nothing allocated yet). */
void bt_gradsum_init(bt_gradsum *g, size_t n);
void bt_gradsum_free(bt_gradsum *g);
/* Starts a new sum (keeps the buffers). */
void bt_gradsum_reset(bt_gradsum *g);
/* Pushes x (n floats), the sum of `items` items (a power of two; 1 for one
 * micro-batch's gradient). BT_ERR_NOMEM, BT_ERR_ARG. */
bt_error bt_gradsum_push(bt_gradsum *g, const float *x, long items);
/* The total: merges what remains and returns it (n floats, owned by g,
 * valid until the next push or reset), or NULL if nothing was pushed. */
const float *bt_gradsum_total(bt_gradsum *g);

#ifdef __cplusplus
}
#endif
#endif
