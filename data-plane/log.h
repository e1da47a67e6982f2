/* Tamper evidence: each tenant's log (migration region/0010). The appender
 * thread turns every event the cell commits into a leaf of the tenant's
 * RFC 9162 tree (common/merkle.h), in feed order, and signs a checkpoint
 * (common/checkpoint.h) with the region's log key after each append; the
 * routes (log_routes.c) hand out checkpoints and proofs, and an export ends
 * with the leaves and the checkpoint it verifies against.
 *
 * The leaf of an event is SHA-256(0x00 || its stored JSON), the bytes
 * GET /v1/events/{id} answers and an NDJSON export line holds. */
#ifndef DP_LOG_H
#define DP_LOG_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

/* This header's name hides common/log.h from the data plane's sources that
 * include "log.h" for logging (a quoted name is looked up beside the
 * including file first): they get both. */
#include "../common/log.h"
#include "http.h"
#include "merkle.h"

struct dp_app;
struct db_conn;
struct dp_log;

/* Starts the appender (one thread) when DP_LOG is on; NULL otherwise or on
 * failure (then `failed` is set). Loads the key ring of DP_LOG_KEYS_DIR. */
struct dp_log *dp_log_start(struct dp_app *app, int *failed);
void dp_log_stop(struct dp_log *l);                     /* accepts NULL */
void dp_log_metrics(struct dp_log *l, FILE *out);        /* accepts NULL */

/* Tells the appender that `tenant` committed events here (called after an
 * ingest commit): it is appended at the next round instead of the next
 * sweep. Cheap; never blocks on the database. Accepts a NULL log. */
void dp_log_touch(struct dp_log *l, const char *tenant);

/* The public JWK set of the log keys (current, staged, retired within
 * DP_LOG_KEY_OVERLAP). New reference, or NULL. */
json_t *dp_log_jwks(struct dp_log *l);

/* GET /.well-known/jwks.json: dp_log_jwks(), public; 404 not_found when
 * the log is off. */
enum http_result dp_handle_log_jwks(struct http_req *req);

/* Counts a proof answered, for dp_log_proofs_total{kind} (consistency: 1
 * for a consistency proof, 0 for an inclusion proof). Accepts NULL. */
void dp_log_count_proof(struct dp_log *l, int consistency);

/* A checkpoint as stored. */
struct dp_checkpoint {
	int64_t tree_size;
	merkle_hash root;
	int64_t iat;                 /* unix seconds */
	char *jws;                   /* compact JWS, malloc'd */
};
void dp_checkpoint_clear(struct dp_checkpoint *c);

/* For a reader that needs the log as of now (an export): appends what the
 * tenant committed and has not been appended yet (within `budget_ms`),
 * then returns a checkpoint of the head signed now, its iat this second
 * (stored when none of that size is, else not: the first of a size stays),
 * so that it says the log still had that size when the reader started.
 * tree_size 0 (and jws NULL) when the tenant's
 * log is empty. Uses `c` (no transaction open on it). Returns 0, or -1 on a
 * database or signing failure. */
int dp_log_checkpoint_head(struct dp_log *l, struct db_conn *c, const char *tenant, int64_t budget_ms,
                           struct dp_checkpoint *out) __attribute__((warn_unused_result));

#endif
