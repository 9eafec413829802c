/*
 * prof.h - where a training step's time goes, by kind of kernel: the wall
 * seconds and the FLOPs of every call of the training ops (gemm.c's linear
 * layer, attention.c, ops.c) made on this thread while profiling is on.
 * Off by default; then a call costs one test of a thread-local flag.
 * bt-bench-train turns it on to print each kernel's share of the step time
 * and its GFLOP/s (tools/bench-engine). The ops call no other profiled op,
 * so no time is counted twice.
 */
#ifndef BT_PROF_H
#define BT_PROF_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  BT_PROF_LINEAR_FWD,
  BT_PROF_LINEAR_BWD,
  BT_PROF_ATTN_FWD,
  BT_PROF_ATTN_BWD,
  BT_PROF_LAYERNORM, /* forward and backward */
  BT_PROF_GELU,
  BT_PROF_ROPE,
  BT_PROF_LOSS,      /* cross-entropy, forward and backward */
  BT_PROF_EMBED,
  BT_PROF_OPTIM,     /* AdamW updates, gradient norms and scaling, sums */
  BT_PROF_KINDS
} bt_prof_kind;

typedef struct {
  double seconds[BT_PROF_KINDS];
  double flops[BT_PROF_KINDS];
  long calls[BT_PROF_KINDS];
} bt_prof;

/* Starts (on != 0) or stops profiling this thread's calls; starting clears
 * the totals. */
void bt_prof_enable(int on);
/* This thread's totals since profiling began. */
bt_prof bt_prof_totals(void);
/* A short name of the kind: "linear fwd", "attention bwd", ... */
const char *bt_prof_name(bt_prof_kind k);

/* For the ops: t = bt_prof_begin() before the work, bt_prof_end(kind, t,
 * flops) after it. begin returns a negative time when profiling is off,
 * and end then does nothing. */
double bt_prof_begin(void);
void bt_prof_end(bt_prof_kind k, double t0, double flops);
/* Runs the statement `call`, counted as kind k with `flops` FLOPs. */
#define BT_PROF_CALL(k, flops, call)      \
  do {                                    \
    const double bt_prof_t0_ = bt_prof_begin(); \
    call;                                 \
    bt_prof_end(k, bt_prof_t0_, flops);   \
  } while (0)

#ifdef __cplusplus
}
#endif

#endif
