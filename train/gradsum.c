/* gradsum.c - the fixed-order sum of micro-batch gradients (gradsum.h). */
#include "train/gradsum.h"

#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"

void bt_gradsum_init(bt_gradsum *g, size_t n) {
  memset(g, 0, sizeof *g);
  g->n = n;
}

void bt_gradsum_free(bt_gradsum *g) {
  for (int i = 0; i < g->cap; i++)
    free(g->buf[i]);
  memset(g, 0, sizeof *g);
}

void bt_gradsum_reset(bt_gradsum *g) { g->top = 0; }

bt_error bt_gradsum_push(bt_gradsum *g, const float *x, long items) {
  if (items < 1 || (items & (items - 1)))
    return bt_fail(BT_ERR_ARG, "a gradient sum of %ld items (not a power of two)", items);
  if (g->top == BT_GRADSUM_LEVELS)
    return bt_fail(BT_ERR_ARG, "gradient sum too deep");
  if (g->top == g->cap) {
    size_t bytes = (g->n * sizeof(float) + 63) & ~(size_t)63;
    g->buf[g->cap] = aligned_alloc(64, bytes ? bytes : 64);
    if (!g->buf[g->cap])
      return bt_fail(BT_ERR_NOMEM, "gradient sum");
    g->cap++;
  }
  memcpy(g->buf[g->top], x, g->n * sizeof(float));
  g->size[g->top++] = items;
  while (g->top >= 2 && g->size[g->top - 1] == g->size[g->top - 2]) {
    float *a = g->buf[g->top - 2], *b = g->buf[g->top - 1];
    bt_add(a, a, b, g->n); /* older + newer */
    g->size[g->top - 2] *= 2;
    g->top--;
  }
  return BT_OK;
}

const float *bt_gradsum_total(bt_gradsum *g) {
  if (!g->top)
    return NULL;
  while (g->top >= 2) { /* newest first: older + newer */
    float *a = g->buf[g->top - 2], *b = g->buf[g->top - 1];
    bt_add(a, a, b, g->n);
    g->size[g->top - 2] += g->size[g->top - 1];
    g->top--;
  }
  return g->buf[0];
}
