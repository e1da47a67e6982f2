/* Background loops of the data plane (usage refresh, usage reports,
 * retention): one thread each, running a step, then sleeping for the delay
 * the step asks for, and stopping promptly when told to. */
#ifndef DP_BACKGROUND_H
#define DP_BACKGROUND_H

#include <stdint.h>

struct dp_loop;

/* A step returns the milliseconds to sleep before the next one. */
typedef int64_t (*dp_step_fn)(void *ctx);

/* Starts `name`'s thread: `step` runs at once, then after each delay.
 * `name` (a string literal, "usage_reporter") is the thread's log task.
 * NULL on failure. */
struct dp_loop *dp_loop_start(const char *name, dp_step_fn step, void *ctx);
/* Cuts the current sleep short (the step runs again now). */
void dp_loop_wake(struct dp_loop *l);
/* Stops after the step in progress, joins and frees. Accepts NULL. */
void dp_loop_stop(struct dp_loop *l);

#endif
