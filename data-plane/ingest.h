/* POST /v1/events with group commit.
 *
 * A request is validated on its HTTP thread, then queued and suspended.
 * Writer threads (DP_INGEST_WRITERS) each take every request waiting, up
 * to DP_INGEST_GROUP_MAX events, and store them in one transaction: the
 * claim of each request's Idempotency-Key (a request whose key has a
 * record is answered from it), the idempotency check of client ids, the
 * exact monthly quota (usage rows locked in the transaction), the usage
 * counters that feed billing, one multi-row insert, and the keys' records
 * of the answers. Each request is resumed, and answered, only after that
 * transaction committed; while one group commits, the next gathers. A
 * request's events are all stored or none, and an answer acknowledged
 * under a key always has its record. Two requests with one key never
 * share a group: the second waits on the first's claim. A refused request
 * (400) names every invalid member of its batch. */
#ifndef DP_INGEST_H
#define DP_INGEST_H

#include <stddef.h>
#include <stdio.h>

#include "route.h"

struct dp_app;
struct dp_ingest;
struct http_req;

struct dp_ingest *dp_ingest_new(struct dp_app *app);
/* Starts the writers. Returns 0, or -1 with `err` set. */
int dp_ingest_start(struct dp_ingest *g, char *err, size_t errlen) __attribute__((warn_unused_result));
/* From the drain hook: refuses new requests (503), lets the writers commit
 * what is queued (at most `timeout_ms`) and stops them. */
void dp_ingest_drain(struct dp_ingest *g, unsigned timeout_ms);
/* At the drain deadline, once the database has been interrupted: gives the
 * writers `grace_ms` to finish, then answers 503 every request still
 * waiting ("nothing was stored") or still committing ("may or may not be
 * stored") and resumes it. Afterwards no request of the server is held:
 * a writer that finishes later frees what it held and resumes nothing. */
void dp_ingest_abandon(struct dp_ingest *g, unsigned grace_ms);
/* Stops (if needed) and frees. Accepts NULL. */
void dp_ingest_free(struct dp_ingest *g);
void dp_ingest_metrics(struct dp_ingest *g, FILE *out);

enum http_result dp_handle_events_post(struct http_req *req);

#endif
