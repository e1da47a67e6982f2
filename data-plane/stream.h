/* Log streams, delivery side: each stream of this cell's tenants (the
 * `streams` claim of the document in use) is read from its tenant's feed
 * with a durable cursor (stream_cursors, migration region/0011) and sent in
 * batches to its destination (stream_send.h), in feed order, exactly once
 * as the destination sees it: a batch is recorded before its first attempt
 * and every attempt sends the same events under the same batch id.
 *
 * DP_STREAM_WORKERS threads share the streams (by tenant), one more sends
 * their state to the control plane every DP_STREAM_REPORT_INTERVAL. One
 * sender per stream across the cell's instances (a session advisory lock). */
#ifndef DP_STREAM_H
#define DP_STREAM_H

#include <stdio.h>

struct dp_app;
struct dp_streams;

/* Starts delivery when DP_STREAMS is on; NULL otherwise or on failure (then
 * `failed` is set). Without DP_STREAM_KEYS_DIR it runs all the same and
 * reports every stream "refused". */
struct dp_streams *dp_streams_start(struct dp_app *app, int *failed);
void dp_streams_stop(struct dp_streams *s);                  /* accepts NULL */
void dp_streams_metrics(struct dp_streams *s, FILE *out);     /* accepts NULL */

/* Tells delivery that `tenant` committed events here (after an ingest
 * commit): its streams are looked at now. Cheap; never blocks on the
 * database. Accepts NULL. */
void dp_streams_touch(struct dp_streams *s, const char *tenant);

/* `data-plane stream-key`: prints the public JWK ("use":"enc") of the
 * current key of `dir`, creating the ring when it holds none. Returns an
 * exit status. */
int dp_stream_key_command(const char *dir);

#endif
