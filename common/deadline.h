/* Deadlines for pthread_cond_timedwait(): a point `ms` milliseconds from
 * now on a given clock; and the monotonic clock in milliseconds. A condition variable waits on CLOCK_REALTIME
 * unless it was made with pthread_condattr_setclock(); the caller names
 * the clock its condition variable uses. */
#ifndef CT_DEADLINE_H
#define CT_DEADLINE_H

#include <stdint.h>
#include <time.h>

/* The time `ms` (>= 0) milliseconds after now on `clk`. */
struct timespec deadline_in(clockid_t clk, int64_t ms);

/* Milliseconds on CLOCK_MONOTONIC (any origin): for intervals and the
 * times things are due, which a change of the wall clock must not move. */
int64_t deadline_mono_ms(void);

#endif
