/* prof.c - per-kind totals of the training ops' time (prof.h). */
#include "kernels/prof.h"

#include <string.h>

#include "kernels/clock.h"

static _Thread_local int g_on;
static _Thread_local bt_prof g_tot;

void bt_prof_enable(int on) {
  g_on = on != 0;
  if (g_on)
    memset(&g_tot, 0, sizeof g_tot);
}

bt_prof bt_prof_totals(void) { return g_tot; }

const char *bt_prof_name(bt_prof_kind k) {
  static const char *const names[BT_PROF_KINDS] = {
      "linear fwd", "linear bwd", "attention fwd", "attention bwd", "layernorm",
      "gelu",       "rope",       "cross-entropy", "embedding",     "optimizer"};
  return (unsigned)k < BT_PROF_KINDS ? names[k] : "?";
}

double bt_prof_begin(void) { return g_on ? bt_now_s() : -1.0; }

void bt_prof_end(bt_prof_kind k, double t0, double flops) {
  if (t0 < 0 || !g_on || (unsigned)k >= BT_PROF_KINDS)
    return;
  g_tot.seconds[k] += bt_now_s() - t0;
  g_tot.flops[k] += flops;
  g_tot.calls[k]++;
}
