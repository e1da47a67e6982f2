/* Requests the cell router sent to this cell for a key id its document
 * does not hold yet (the router's map is ahead of this cell's document,
 * e.g. right after a tenant moved here): parked without a worker thread
 * until a newer document is installed or their deadline (DP_WRONG_CELL_WAIT)
 * passes, then authenticated again (auth.c). */
#ifndef DP_CELL_WAIT_H
#define DP_CELL_WAIT_H

#include <stdint.h>
#include <stdio.h>

struct http_req;
struct dp_cell_wait;

/* At most `max_waiters` parked at once. NULL when it cannot start (`err`
 * says why). */
struct dp_cell_wait *dp_cell_wait_start(long max_waiters, char *err, size_t errlen);
/* Stops its thread and resumes every request still parked; accepts NULL. */
void dp_cell_wait_stop(struct dp_cell_wait *w);

/* A number that changes whenever a document is installed. Read it before
 * looking at the document, and hand it to dp_cell_wait_park(), so that a
 * document installed in between is not slept through. */
uint64_t dp_cell_wait_gen(struct dp_cell_wait *w);
/* A newer document is in use (after dp_snaps_publish): every parked
 * request is resumed. Any thread; accepts NULL. */
void dp_cell_wait_installed(struct dp_cell_wait *w);

enum dp_cell_parked {
	DP_CELL_PARKED,   /* suspended: the hook returns HTTP_PARKED */
	DP_CELL_CHANGED,  /* a document was installed since `gen`: look again */
	DP_CELL_REFUSED,  /* draining, max_waiters parked, or out of memory: answer now */
};
/* Parks `req` until the next document or `deadline_ms` (CLOCK_MONOTONIC
 * milliseconds, dp_feed_now_ms()). Only DP_CELL_PARKED suspended it. */
enum dp_cell_parked dp_cell_wait_park(struct dp_cell_wait *w, struct http_req *req, uint64_t gen,
                                      int64_t deadline_ms) __attribute__((warn_unused_result));
/* Resumes every parked request and refuses new parks (on_drain); accepts NULL. */
void dp_cell_wait_drain(struct dp_cell_wait *w);
/* Appends dp_wrong_cell_waiters (gauge). */
void dp_cell_wait_metrics(struct dp_cell_wait *w, FILE *out);

#endif
