/* Per-tenant state that lives in one data-plane instance's memory: the
 * token buckets of the rate limit, and the tenant's usage this month as
 * last read from the regional database (for GET /v1/tenant, and to refuse
 * a tenant that is certainly over quota without asking the database).
 *
 * A plan's rate holds per region, not per instance: each instance refills
 * a tenant's bucket at its share of the plan's rate (and holds that share
 * of the burst). Shares come from the tenant's recent demand on each
 * instance, exchanged through the regional database by ratesync.c in the
 * background; a request never waits on anything but this memory. Reads
 * and writes have a bucket each, so neither throttles the other. A bucket
 * holds at least half the default share (1/N) of the burst, whatever its
 * share: a share set from a moment's demand may be too small for the
 * traffic that comes next, until the next exchange.
 *
 * Tenants are spread over striped locks; an entry is made on a tenant's
 * first request and lives as long as the process (one per tenant of the
 * region at most). */
#ifndef DP_LIMITS_H
#define DP_LIMITS_H

#include <stdint.h>

struct dp_limits;

/* A tenant's two buckets, each refilled at the plan's full rate. */
enum dp_bucket { DP_BUCKET_READ, DP_BUCKET_WRITE, DP_NBUCKETS };
extern const char *const dp_bucket_names[DP_NBUCKETS]; /* "read", "write" */

struct dp_rate {
	int allowed;          /* 1: a token was taken */
	int64_t limit;        /* the plan's rate, requests per second in the region */
	int64_t remaining;    /* whole tokens left in the region, as this instance sees it */
	int64_t reset_s;      /* seconds until the bucket is full again */
	int64_t retry_after_s;/* when refused: seconds until one token, >= 1 */
};

struct dp_limits *dp_limits_new(void);
void dp_limits_free(struct dp_limits *l);

/* Takes a token from `tenant`'s bucket `b` for a region-wide `rate` per
 * second and `burst`, of which this instance holds its current share, at
 * monotonic time `now_ns`, and counts the request as demand (admitted or
 * not). Returns 0 and fills `out`, or -1 when out of memory (the caller
 * lets the request through). */
int dp_limits_take(struct dp_limits *l, const char *tenant, enum dp_bucket b, int64_t rate,
                   int64_t burst, int64_t now_ns, struct dp_rate *out);

/* ---- shares (called by the rate exchange, off the request path) ---- */

/* Called by dp_limits_demand for each bucket with recent demand here:
 * `demand` is requests per second, smoothed over the last few calls. It
 * runs under the lock of the tenant's stripe: it must not call dp_limits_*. */
typedef void (*dp_demand_fn)(void *ctx, const char *tenant, enum dp_bucket b, double demand);
/* Turns the requests counted since the last call, `elapsed_s` ago, into
 * each bucket's demand, and reports those above zero. A bucket whose
 * demand died away goes back to the default share. */
void dp_limits_demand(struct dp_limits *l, double elapsed_s, dp_demand_fn fn, void *ctx);
/* Sets the share (0 < share <= 1) of `tenant`'s bucket `b`. */
void dp_limits_share_set(struct dp_limits *l, const char *tenant, enum dp_bucket b, double share);
/* The share of a bucket without a share of its own (new or idle): 1 when
 * this instance is alone in the region, 1/N with N instances. When
 * `reset` is set, every bucket goes back to it (the exchange lost touch
 * with the others). */
void dp_limits_share_default(struct dp_limits *l, double share, int reset);

/* Records that `tenant` had stored `events` events in `period` ("YYYY-MM")
 * as of `as_of_us`. A value older than the one held is ignored. */
void dp_limits_usage_set(struct dp_limits *l, const char *tenant, const char *period,
                         int64_t events, int64_t as_of_us);
/* The events of `tenant` in `period` as last recorded and when that was
 * known. Returns 1 when the figure is known; 0 when this instance has not
 * read it yet (no refresh of `period` and no ingest of the tenant since
 * the start or the month's change), and then *events and *as_of_us are 0,
 * a lower bound only: never show it as the tenant's usage. */
int dp_limits_usage_get(struct dp_limits *l, const char *tenant, const char *period,
                        int64_t *events, int64_t *as_of_us);
/* The last time every tenant's usage was read from the database: a
 * tenant without a row had 0 events then. */
void dp_limits_usage_refreshed(struct dp_limits *l, const char *period, int64_t as_of_us);

#endif
