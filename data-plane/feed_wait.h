/* Long polls of GET /v1/events/feed?wait=N: requests parked without a
 * worker thread or a database connection, and what resumes them.
 *
 * A waiter is resumed when this instance commits events of its tenant
 * (the ingest writers call dp_feed_committed() after each commit), when
 * the poll thread finds events it may be handed (one statement every
 * DP_FEED_POLL_INTERVAL while anyone waits: commits through other
 * instances of the region, and events that were committed but held back
 * by an older transaction still open), at its deadline, and on drain. A
 * resumed request runs its handler again, which reads the feed and
 * answers or parks again. */
#ifndef DP_FEED_WAIT_H
#define DP_FEED_WAIT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct db_pool;
struct http_req;
struct dp_feed;

/* Starts the poll thread, which reads through `db` (it must outlive the
 * feed) every `poll_ms` while requests wait, with at most `max_waiters`
 * requests parked at once. NULL (and `err` says why) when it cannot. */
struct dp_feed *dp_feed_start(struct db_pool *db, long max_waiters, int64_t poll_ms, char *err,
                              size_t errlen);
/* Stops the thread and resumes every request still parked; accepts NULL. */
void dp_feed_stop(struct dp_feed *f);

/* A number that changes whenever this instance commits events of
 * `tenant` (and, rarely, another tenant's). A handler reads it before it
 * reads the feed and hands it to dp_feed_park(), so that a commit in
 * between is not slept through. */
uint64_t dp_feed_gen(struct dp_feed *f, const char *tenant);
/* This instance committed events of `tenant`: its waiters read again.
 * Any thread; accepts NULL. */
void dp_feed_committed(struct dp_feed *f, const char *tenant);

enum dp_feed_parked {
	DP_FEED_PARKED,     /* suspended: return HTTP_SUSPENDED */
	DP_FEED_CHANGED,    /* the tenant committed since `gen`: read again */
	DP_FEED_DRAINING,   /* the service is stopping: answer now */
	DP_FEED_FULL,       /* max_waiters are parked: answer now */
	DP_FEED_NOMEM,
};
/* Parks `req`, which has read `tenant`'s feed up to the position
 * (tx, seq) and found nothing, until there is something after it or
 * `deadline_ms` (CLOCK_MONOTONIC ms, dp_feed_now_ms) passes. Only
 * DP_FEED_PARKED suspended the request. */
enum dp_feed_parked dp_feed_park(struct dp_feed *f, struct http_req *req, const char *tenant,
                                 uint64_t gen, uint64_t tx, int64_t seq, int64_t deadline_ms)
	__attribute__((warn_unused_result));
/* Resumes every parked request and refuses new parks (on_drain); accepts
 * NULL. */
void dp_feed_drain(struct dp_feed *f);
/* Appends dp_feed_waiters, dp_feed_wakeups_total{reason},
 * dp_feed_waiters_refused_total, dp_feed_polls_total and
 * dp_feed_poll_failures_total. */
void dp_feed_metrics(struct dp_feed *f, FILE *out);
/* CLOCK_MONOTONIC in milliseconds, the clock of deadlines. */
int64_t dp_feed_now_ms(void);

#endif
