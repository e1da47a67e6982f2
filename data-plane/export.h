/* GET /v1/events/export: every event a GET /v1/events query matches,
 * streamed as NDJSON or CSV (export_format.h), gzip-compressed when the
 * client accepts it, in memory that does not grow with the export.
 *
 * The rows are read a page at a time (DP_EXPORT_PAGE), each page one
 * statement on a connection taken from the pool and given back at once,
 * never one transaction across the export: a long export holds back no
 * vacuum and no other reader. Pages follow each other by keyset on
 * (occurred_at, seq), strictly after the last row sent, each in its own
 * snapshot. So, of the matching rows: none is sent twice (every row has
 * its own key and the keys sent only move one way); every row present at
 * the start and still present at the end is sent (its key never changes,
 * and the page covering that key is read while it is there); a row
 * committed during the export is sent when its key lies past the page
 * being read, and not when it lies before (a new event, newest first, is
 * not; a backfilled one may be).
 *
 * An NDJSON export ends with the tenant's log (log.h) when the log is on
 * and has leaves: before the first page, the head's checkpoint is taken
 * (dp_log_checkpoint_head: every leaf below it was committed before any
 * event was read); after the last event, its leaves are written a page of
 * 1000 at a time, a `log` line each, then the `checkpoint` line
 * (export_format.h). An export is `complete` when it has no filter and no
 * cursor: then every leaf whose event retention did not delete has its
 * event line.
 *
 * The number of exports an instance streams at once is bounded
 * (DP_EXPORT_CONCURRENCY): beyond it, 503 unavailable with Retry-After. */
#ifndef DP_EXPORT_H
#define DP_EXPORT_H

#include <stdio.h>

#include "route.h"

struct http_req;
struct dp_exports;

/* Events a page reads (one statement). */
#define DP_EXPORT_PAGE 1000

/* The exports of an instance: the concurrency bound and the counters.
 * NULL when out of memory; _free accepts NULL and must come after the
 * HTTP server is freed (a response still streaming holds a slot). */
struct dp_exports *dp_exports_new(long concurrency);
void dp_exports_free(struct dp_exports *x);
/* Appends dp_exports_running, dp_exports_total{outcome} and
 * dp_export_events_total to a /metrics page (accepts NULL). */
void dp_exports_metrics(struct dp_exports *x, FILE *out);

/* GET /v1/events/export, a handler (http.h); needs dp_app.exports. */
enum http_result dp_handle_events_export(struct http_req *req);

#endif
