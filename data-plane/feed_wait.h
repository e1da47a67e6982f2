/* Long polls of GET /v1/events/feed?wait=N: requests parked without a
 * worker thread or a database connection, and the thread that resumes
 * them.
 *
 * A waiter is resumed when its tenant commits events (a notification of
 * the trigger of migration 0005, heard on a LISTEN connection of its own,
 * so a commit through any instance of the region wakes the waiters of
 * every instance), at its recheck time when it asked for one (events are
 * committed but held back by an older open transaction, whose end nobody
 * announces), at its deadline, when the LISTEN connection comes back
 * (whatever was missed meanwhile; while it is down every waiter is
 * resumed once a second), and on drain. A resumed request runs its handler
 * again, which reads the feed and answers or parks again. */
#ifndef DP_FEED_WAIT_H
#define DP_FEED_WAIT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct http_req;
struct dp_feed;

/* Starts the LISTEN thread on `conninfo` (copied), with at most
 * `max_waiters` requests parked at once. NULL (and `err` says why) when it
 * cannot. */
struct dp_feed *dp_feed_start(const char *conninfo, long max_waiters, char *err, size_t errlen);
/* Stops the thread and resumes every request still parked; accepts NULL. */
void dp_feed_stop(struct dp_feed *f);

/* A number that changes whenever `tenant` may have committed events (and,
 * rarely, when another tenant did). A handler reads it before it reads the
 * feed and hands it to dp_feed_park(), so that a commit heard in between
 * is not slept through. */
uint64_t dp_feed_gen(struct dp_feed *f, const char *tenant);

enum dp_feed_parked {
	DP_FEED_PARKED,     /* suspended: return HTTP_SUSPENDED */
	DP_FEED_CHANGED,    /* the tenant committed since `gen`: read again */
	DP_FEED_DRAINING,   /* the service is stopping: answer now */
	DP_FEED_FULL,       /* max_waiters are parked: answer now */
	DP_FEED_NOMEM,
};
/* Parks `req` until `tenant` commits, `deadline_ms` passes, or, when
 * `recheck_ms` > 0, that time passes (CLOCK_MONOTONIC ms, dp_feed_now_ms).
 * Only DP_FEED_PARKED suspended the request. */
enum dp_feed_parked dp_feed_park(struct dp_feed *f, struct http_req *req, const char *tenant,
                                 uint64_t gen, int64_t deadline_ms, int64_t recheck_ms)
	__attribute__((warn_unused_result));
/* Resumes every parked request and refuses new parks (on_drain); accepts
 * NULL. */
void dp_feed_drain(struct dp_feed *f);
/* Appends dp_feed_waiters, dp_feed_wakeups_total{reason},
 * dp_feed_waiters_refused_total and dp_feed_notify_connected. */
void dp_feed_metrics(struct dp_feed *f, FILE *out);
/* CLOCK_MONOTONIC in milliseconds, the clock of deadlines. */
int64_t dp_feed_now_ms(void);

#endif
