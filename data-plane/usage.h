/* Usage in the background: the refresher keeps each tenant's count of
 * this month in memory (GET /v1/tenant never waits on the database), and
 * the reporter ships the usage outbox to the control plane's
 * POST /v1/usage, batch by batch, each under its own Idempotency-Key,
 * retrying with backoff while the control plane cannot be reached. */
#ifndef DP_USAGE_H
#define DP_USAGE_H

#include <stdio.h>

struct dp_app;
struct dp_usage;

struct dp_usage *dp_usage_start(struct dp_app *app);
void dp_usage_stop(struct dp_usage *u); /* accepts NULL */
void dp_usage_metrics(struct dp_usage *u, FILE *out);

/* Retention: deletes each tenant's events older than its plan keeps them,
 * in bounded batches, every DP_RETENTION_INTERVAL. */
struct dp_retention;
struct dp_retention *dp_retention_start(struct dp_app *app);
void dp_retention_stop(struct dp_retention *r); /* accepts NULL */
void dp_retention_metrics(struct dp_retention *r, FILE *out);

#endif
