/* Idempotency-Key on POST /v1/events: the header's syntax (common/idemkey,
 * the control plane's rule), what makes two requests the same (a SHA-256
 * of method, path and body), and the thread that deletes records past
 * DP_IDEMPOTENCY_TTL in bounded batches. Claims, replays and records are
 * part of the group commit (ingest.c): a request's record is written in
 * the transaction that stores its events, keyed by tenant. */
#ifndef DP_IDEMPOTENCY_H
#define DP_IDEMPOTENCY_H

#include <stdio.h>

#include "http.h"
#include "idemkey.h"

struct dp_app;
struct dp_idem_purge;

/* The 422 of a key used again with another request, as on the control plane. */
#define DP_IDEM_CONFLICT_DETAIL "This Idempotency-Key was used with another request; use a new key."

/* Copies the request's Idempotency-Key into `key` ("" when there is none).
 * A key that is not 1 to IDEMKEY_MAX visible ASCII characters is answered
 * 400 bad_request (field Idempotency-Key), as on the control plane. A step:
 * HTTP_GO_ON, or HTTP_ANSWERED after replying. */
enum http_step dp_idem_key_read(struct http_req *req, char key[IDEMKEY_MAX + 1])
	__attribute__((warn_unused_result));
/* The request's hash (64 lowercase hex digits and a NUL) over its method,
 * path and body bytes: the same body sent again hashes the same. */
void dp_idem_hash_request(struct http_req *req, char hex[65]);

/* Starts the thread deleting expired records every
 * DP_IDEMPOTENCY_PURGE_INTERVAL. NULL on failure. */
struct dp_idem_purge *dp_idem_purge_start(struct dp_app *app);
void dp_idem_purge_stop(struct dp_idem_purge *p); /* accepts NULL */
void dp_idem_purge_metrics(struct dp_idem_purge *p, FILE *out);

#endif
