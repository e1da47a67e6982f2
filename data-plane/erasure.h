/* Erasure of deleted tenants' data in their home region. A tenant the
 * signed document marks deleted (status 'd') has every row of it deleted
 * from every regional table of tenant data (the list in db_erasure.c), in
 * batches of at most DP_ERASURE_BATCH rows with DP_ERASURE_PAUSE between
 * them, by a background thread that looks for work every
 * DP_ERASURE_INTERVAL. Each batch and its count commit together, and an
 * instance claims a tenant for the length of a batch, so every instance of
 * the region may run it at once: no row is counted twice, none is missed.
 * Usage not yet cut into a batch for the control plane is left until the
 * usage reporter has cut it (billing outlives the tenant).
 *
 * Progress goes to the control plane's POST /v1/regions/{region}/erasures
 * (common/erasure_report.h) whenever the region's figures differ from the
 * ones it last acknowledged, so a report lost to an outage is sent again
 * on a later pass; "done" once a batch found no row of the tenant left.
 * A tenant keeps being looked at once erased (its row in the region's
 * erasures table stays, also when its document no longer lists it): rows
 * that an instance still on an older document stores later are erased
 * (and reported) in turn. */
#ifndef DP_ERASURE_H
#define DP_ERASURE_H

#include <stdio.h>

struct dp_app;
struct dp_erasure;

/* Starts the thread; NULL on failure. */
struct dp_erasure *dp_erasure_start(struct dp_app *app);
/* Stops after the batch in progress (a report in flight is abandoned and
 * sent again later). Accepts NULL. */
void dp_erasure_stop(struct dp_erasure *e);
/* Appends the dp_erasure_* and dp_region_erasure_* families. */
void dp_erasure_metrics(struct dp_erasure *e, FILE *out);

#endif
