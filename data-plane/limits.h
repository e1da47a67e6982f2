/* Per-tenant state that lives in one data-plane instance's memory: the
 * token bucket of the rate limit, and the tenant's usage this month as
 * last read from the regional database (for GET /v1/tenant, and to refuse
 * a tenant that is certainly over quota without asking the database).
 *
 * Tenants are spread over striped locks; an entry is made on a tenant's
 * first request and lives as long as the process (one per tenant of the
 * region at most). */
#ifndef DP_LIMITS_H
#define DP_LIMITS_H

#include <stdint.h>

struct dp_limits;

struct dp_rate {
	int allowed;          /* 1: a token was taken */
	int64_t limit;        /* the bucket's capacity (the plan's burst) */
	int64_t remaining;    /* whole tokens left */
	int64_t reset_s;      /* seconds until the bucket is full again */
	int64_t retry_after_s;/* when refused: seconds until one token, >= 1 */
};

struct dp_limits *dp_limits_new(void);
void dp_limits_free(struct dp_limits *l);

/* Takes a token from `tenant`'s bucket, refilled at `rate` per second up
 * to `burst`, at monotonic time `now_ns`. Returns 0 and fills `out`, or -1
 * when out of memory (the caller lets the request through). */
int dp_limits_take(struct dp_limits *l, const char *tenant, int64_t rate, int64_t burst,
                   int64_t now_ns, struct dp_rate *out);

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
