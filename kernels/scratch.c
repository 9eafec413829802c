/* scratch.c - per-thread scratch buffers that persist across kernel calls.
 *
 * Kernels need packing and tile buffers on every call. Allocating them per
 * call makes glibc hand out fresh mmap'd pages each time, and the page faults
 * and zeroing cost more than the arithmetic (perf: clear_page_erms). These
 * buffers are kept per OpenMP thread and only grow. */
#include <pthread.h>
#include <stdlib.h>

#include "kernels/kernels.h"

#define BT_SCRATCH_SLOTS 4

static _Thread_local struct {
  void *p;
  size_t cap;
} g_slot[BT_SCRATCH_SLOTS];

/* Threads of nested OpenMP teams come and go: free a thread's buffers when it
 * exits, or each one would leak. */
static pthread_key_t g_key;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static void on_thread_exit(void *unused) {
  (void)unused;
  bt_scratch_free();
}
static void make_key(void) { pthread_key_create(&g_key, on_thread_exit); }

void *bt_scratch(int slot, size_t bytes) {
  if (slot < 0 || slot >= BT_SCRATCH_SLOTS)
    return NULL;
  if (g_slot[slot].cap < bytes) {
    pthread_once(&g_once, make_key);
    pthread_setspecific(g_key, (void *)1); /* any non-NULL value arms the destructor */
    size_t cap = (bytes + 4095) & ~(size_t)4095;
    void *p = aligned_alloc(64, cap);
    if (!p)
      return NULL;
    free(g_slot[slot].p);
    g_slot[slot].p = p;
    g_slot[slot].cap = cap;
  }
  return g_slot[slot].p;
}

void bt_scratch_free(void) {
  for (int i = 0; i < BT_SCRATCH_SLOTS; i++) {
    free(g_slot[i].p);
    g_slot[i].p = NULL;
    g_slot[i].cap = 0;
  }
}
