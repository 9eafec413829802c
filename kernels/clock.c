/* clock.c - see clock.h. */
#include "kernels/clock.h"

#include <time.h>

double bt_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
