/*
 * clock.h - the one clock bt reads: seconds on the monotonic clock, for
 * progress, throughput and the codec's measured choices. Part of the base
 * layer (with error.h, fileio.h and hash.h) that everything else builds on.
 */
#ifndef BT_CLOCK_H
#define BT_CLOCK_H

#ifdef __cplusplus
extern "C" {
#endif

/* Seconds on the monotonic clock (an arbitrary origin). */
double bt_now_s(void);

#ifdef __cplusplus
}
#endif

#endif
