/* dist.c - Open MPI, or one process (dist.h). */
#include "train/dist.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef BT_HAVE_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_size = 1, g_joined = 0;

int bt_dist_rank(void) { return g_rank; }
int bt_dist_size(void) { return g_size; }

#ifdef BT_HAVE_MPI

/* Started by mpirun (Open MPI sets OMPI_COMM_WORLD_SIZE; PMI launchers
 * PMI_SIZE or PMIX_RANK)? A process started alone never initialises MPI,
 * which costs a second and may print warnings on a machine without a
 * network. */
static int launched(void) {
  return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

void bt_dist_init(int *argc, char ***argv) {
  if (g_joined || !launched())
    return;
  int provided = 0;
  /* OpenMP threads compute; only the main thread calls MPI. */
  if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
    return;
  g_joined = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  atexit(bt_dist_finalize);
}

/* The exchange's buffers, kept from step to step (a step's gradient is the
 * same size every time): the counts, the receive buffer, the partial sum. */
static int *g_cnt;
static float *g_recv;
static size_t g_recv_cap, g_part_n = SIZE_MAX;
static bt_gradsum g_part;

void bt_dist_finalize(void) {
  free(g_cnt);
  free(g_recv);
  bt_gradsum_free(&g_part);
  g_cnt = NULL, g_recv = NULL, g_recv_cap = 0, g_part_n = SIZE_MAX;
  if (!g_joined)
    return;
  g_joined = 0;
  int fin = 0;
  MPI_Finalized(&fin);
  if (!fin)
    MPI_Finalize();
}

_Noreturn void bt_dist_abort(int code) {
  if (g_joined && g_size > 1)
    MPI_Abort(MPI_COMM_WORLD, code);
  exit(code);
}

static bt_error mpi_fail(int rc, const char *what) {
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  return bt_fail(BT_ERR_IO, "MPI %s: %.*s", what, len, msg);
}

bt_error bt_dist_sum_grads(bt_gradsum *local, long items, float *out, size_t n) {
  const float *mine = bt_gradsum_total(local);
  if (!mine)
    return bt_fail(BT_ERR_ARG, "no gradient to sum");
  if (g_size == 1) {
    memcpy(out, mine, n * sizeof(float));
    return BT_OK;
  }
  if (n / (size_t)g_size > INT_MAX / 2 || n > (size_t)INT_MAX)
    return bt_fail(BT_ERR_ARG, "%zu parameters are too many for one MPI message", n);
  const int P = g_size;
  if (!g_cnt && !(g_cnt = malloc(4 * (size_t)P * sizeof(int))))
    return bt_fail(BT_ERR_NOMEM, "MPI counts");
  int *cnt = g_cnt, *off = cnt + P, *rcnt = cnt + 2 * P, *roff = cnt + 3 * P;
  /* Slice r of every gradient goes to rank r. */
  for (int r = 0; r < P; r++) {
    const size_t a = n * (size_t)r / (size_t)P, b = n * (size_t)(r + 1) / (size_t)P;
    off[r] = (int)a;
    cnt[r] = (int)(b - a);
  }
  const int me = cnt[g_rank];
  for (int r = 0; r < P; r++) {
    rcnt[r] = me;
    roff[r] = r * me;
  }
  const size_t want = (size_t)P * (size_t)me + 1;
  if (want > g_recv_cap) {
    free(g_recv);
    g_recv_cap = 0;
    if (!(g_recv = malloc(want * sizeof(float))))
      return bt_fail(BT_ERR_NOMEM, "MPI receive buffer");
    g_recv_cap = want;
  }
  if (g_part_n != (size_t)me) {
    bt_gradsum_free(&g_part);
    bt_gradsum_init(&g_part, (size_t)me);
    g_part_n = (size_t)me;
  }
  bt_gradsum_reset(&g_part);
  float *recv = g_recv;
  bt_error e = BT_OK;
  int rc;
  if ((rc = MPI_Alltoallv(mine, cnt, off, MPI_FLOAT, recv, rcnt, roff, MPI_FLOAT, MPI_COMM_WORLD)) !=
      MPI_SUCCESS) {
    e = mpi_fail(rc, "reduce-scatter of the gradient");
  } else {
    /* Rank order, each rank's partial covering `items` micro-batches. */
    for (int r = 0; r < P && !e; r++)
      e = bt_gradsum_push(&g_part, recv + (size_t)r * me, items);
    const float *sum = e ? NULL : bt_gradsum_total(&g_part);
    if (sum && (rc = MPI_Allgatherv(sum, me, MPI_FLOAT, out, cnt, off, MPI_FLOAT, MPI_COMM_WORLD)) !=
                   MPI_SUCCESS)
      e = mpi_fail(rc, "allgather of the gradient");
  }
  return e;
}

bt_error bt_dist_allgather(const double *mine, int count, double *all) {
  if (g_size == 1) {
    memcpy(all, mine, (size_t)count * sizeof(double));
    return BT_OK;
  }
  int rc = MPI_Allgather(mine, count, MPI_DOUBLE, all, count, MPI_DOUBLE, MPI_COMM_WORLD);
  return rc == MPI_SUCCESS ? BT_OK : mpi_fail(rc, "allgather");
}

int bt_dist_max(int v) {
  if (g_size == 1)
    return v;
  int out = v;
  if (MPI_Allreduce(&v, &out, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD) != MPI_SUCCESS)
    bt_dist_abort(1);
  return out;
}

/* MPI counts are ints: big messages go in pieces. */
#define PIECE ((size_t)1 << 30)

bt_error bt_dist_bcast(void *p, size_t bytes, int root) {
  if (g_size == 1)
    return BT_OK;
  for (size_t o = 0; o < bytes || (o == 0 && bytes == 0); o += PIECE) {
    const size_t k = bytes - o < PIECE ? bytes - o : PIECE;
    int rc = MPI_Bcast((char *)p + o, (int)k, MPI_BYTE, root, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS)
      return mpi_fail(rc, "broadcast");
    if (bytes == 0)
      break;
  }
  return BT_OK;
}

bt_error bt_dist_send(const void *p, size_t bytes, int dest) {
  for (size_t o = 0; o < bytes; o += PIECE) {
    const size_t k = bytes - o < PIECE ? bytes - o : PIECE;
    int rc = MPI_Send((const char *)p + o, (int)k, MPI_BYTE, dest, 7, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS)
      return mpi_fail(rc, "send");
  }
  return BT_OK;
}

bt_error bt_dist_recv(void *p, size_t bytes, int src) {
  for (size_t o = 0; o < bytes; o += PIECE) {
    const size_t k = bytes - o < PIECE ? bytes - o : PIECE;
    int rc = MPI_Recv((char *)p + o, (int)k, MPI_BYTE, src, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS)
      return mpi_fail(rc, "receive");
  }
  return BT_OK;
}


#else /* one process */

void bt_dist_init(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
}
void bt_dist_finalize(void) {}
_Noreturn void bt_dist_abort(int code) { exit(code); }

bt_error bt_dist_sum_grads(bt_gradsum *local, long items, float *out, size_t n) {
  (void)items;
  const float *mine = bt_gradsum_total(local);
  if (!mine)
    return bt_fail(BT_ERR_ARG, "no gradient to sum");
  memcpy(out, mine, n * sizeof(float));
  return BT_OK;
}

bt_error bt_dist_allgather(const double *mine, int count, double *all) {
  memcpy(all, mine, (size_t)count * sizeof(double));
  return BT_OK;
}
int bt_dist_max(int v) { return v; }
bt_error bt_dist_bcast(void *p, size_t bytes, int root) {
  (void)p;
  (void)bytes;
  (void)root;
  return BT_OK;
}
bt_error bt_dist_send(const void *p, size_t bytes, int dest) {
  (void)p;
  (void)bytes;
  return bt_fail(BT_ERR_ARG, "send to rank %d: one process", dest);
}
bt_error bt_dist_recv(void *p, size_t bytes, int src) {
  (void)p;
  (void)bytes;
  return bt_fail(BT_ERR_ARG, "receive from rank %d: one process", src);
}

#endif
