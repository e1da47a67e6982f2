/* The rate exchange: how the instances of one region split each tenant's
 * rate limit, so that a plan's rate holds per region whatever the number
 * of instances behind the balancer.
 *
 * Every DP_RATE_SYNC_INTERVAL a thread publishes in the regional database
 * this instance's recent demand per tenant bucket (requests per second,
 * admitted or refused), reads what the other live instances published for
 * the same buckets, and sets each bucket's share of the plan's rate to its
 * part of the demand (limits.h). A bucket without recent demand here gets
 * 1/N of the rate, N being the instances alive in the region. Instances
 * that published nothing for 12 intervals (3 s by default) count as gone.
 *
 * When the database cannot be reached the shares last computed stay in
 * force for those 12 intervals; after that the instance acts as if alone
 * (the plan's whole rate), since it can no longer tell whether the others
 * are still there. The events routes cannot be served without the
 * database anyway, so this errs towards letting tenants through. */
#ifndef DP_RATESYNC_H
#define DP_RATESYNC_H

#include <stdio.h>

struct dp_app;
struct dp_ratesync;

/* Starts the exchange thread under a random instance id. NULL on failure. */
struct dp_ratesync *dp_ratesync_start(struct dp_app *app);
/* Stops the thread and deletes what this instance published (one
 * database call, skipped when the database was already out of reach).
 * Accepts NULL. */
void dp_ratesync_stop(struct dp_ratesync *r);
void dp_ratesync_metrics(struct dp_ratesync *r, FILE *out);

#endif
