/*
 * dist.h - bt's programs across processes (Open MPI), or one process.
 *
 * Built with -DBT_MPI=ON (on by default where Debian's libopenmpi-dev is
 * found), a program started by mpirun runs as one of its ranks; started on
 * its own, it is rank 0 of 1 and never calls MPI at all. Built without MPI,
 * every function below is the one-process case.
 *
 * Training (bt-train) is data-parallel: each rank computes its share of a
 * step's micro-batches, and bt_dist_sum_grads adds every rank's partial sum
 * in the fixed order of train/gradsum.h, so the weights are the same floats
 * for any number of ranks and threads. Only rank 0 writes files and prints.
 */
#ifndef BT_DIST_H
#define BT_DIST_H

#include <stddef.h>

#include "kernels/error.h"
#include "train/gradsum.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Joins the job if the process was started by mpirun (Open MPI, or a PMI
 * launcher); else stays one process. Call before anything else. */
void bt_dist_init(int *argc, char ***argv);
/* Leaves the job (MPI_Finalize), if joined; bt_dist_init registers it
 * with atexit, so exit() after init is fine. */
void bt_dist_finalize(void);
int bt_dist_rank(void);
int bt_dist_size(void);

/* Ends every rank of the job with exit status code (MPI_Abort); the one-
 * process case exits. For errors on one rank, which the others cannot see. */
_Noreturn void bt_dist_abort(int code);

/* out (n floats) = the sum, in gradsum.h's order, of every rank's local sum,
 * each of `items` micro-batches (the same power of two on every rank), in
 * rank order. Reduce-scatter then allgather: each rank sends and receives
 * about 2 n (size - 1) / size floats. One rank: out = local's total. */
bt_error bt_dist_sum_grads(bt_gradsum *local, long items, float *out, size_t n);

/* all (count * size doubles) = every rank's mine (count each), in rank order. */
bt_error bt_dist_allgather(const double *mine, int count, double *all);
/* The largest of every rank's v (for flags: non-zero on any rank). */
int bt_dist_max(int v);
/* bytes at p from rank root to every rank. */
bt_error bt_dist_bcast(void *p, size_t bytes, int root);
/* bytes at p to rank dest / from rank src (blocking, any size). */
bt_error bt_dist_send(const void *p, size_t bytes, int dest);
bt_error bt_dist_recv(void *p, size_t bytes, int src);

#ifdef __cplusplus
}
#endif
#endif
