/* The data plane's shared state, handed to every handler, and the
 * handlers of its route table. */
#ifndef DP_H
#define DP_H

#include <stdint.h>
#include <stdio.h>

#include "cfgdoc.h"
#include "config.h"
#include "db.h"
#include "route.h"
#include "svc.h"

struct http_req;
struct dp_snaps;
struct dp_pull;
struct dp_ingest;
struct dp_limits;
struct dp_usage;
struct dp_retention;
struct dp_idem_purge;
struct dp_ratesync;
struct dp_feed;
struct dp_erasure;
struct dp_exports;
struct dp_log;
struct dp_streams;

/* DP_STALE_POLICY: what tenant routes do once the document in use expired. */
enum dp_stale_policy { DP_STALE_SERVE, DP_STALE_FAIL_CLOSED };
extern const char *const dp_stale_policy_names[]; /* NULL-terminated */

/* The issuer every configuration document must name. */
#define DP_CONFIG_ISSUER "celltrail-control-plane"

struct dp_config {
	struct svc_common_cfg common;
	const char *region;
	const char *database_url;
	const char *control_plane_url;
	const char *control_plane_ca_file; /* NULL: the system's trust store */
	const char *migrations_dir;
	const char *region_token;           /* secret: never logged */
	const char *cell;                   /* DP_CELL: NULL serves the whole region (no cells) */
	const char *cell_token;             /* secret: never logged; replaces region_token with DP_CELL */
	const char *trust_bundle;
	const char *cache_dir;
	int stale_policy;                   /* enum dp_stale_policy */
	int64_t pull_wait_ms;
	int64_t keyset_interval_ms;   /* DP_KEYSET_INTERVAL */
	int64_t pull_connect_timeout_ms;
	int64_t clock_skew_ms;
	const char *instance;               /* NULL: <hostname>-<pid> */
	long config_max_bytes;
	long config_deltas_max;             /* with DP_CELL: deltas on one document before ?full=1 */
	long ingest_writers;
	long ingest_group_max;
	long ingest_queue_max;
	long ingest_queue_bytes;
	int64_t db_statement_timeout_ms;
	int64_t usage_report_interval_ms;
	int64_t usage_refresh_ms;
	int64_t retention_interval_ms;
	long retention_batch;
	int64_t contract_after_ms;
	int events_partitioned;             /* DP_EVENTS_PARTITIONED: apply the contract step */
	int64_t rate_sync_ms;
	int64_t idempotency_ttl_ms;
	int64_t idempotency_purge_interval_ms;
	long feed_waiters_max;
	int64_t feed_poll_ms;
	int64_t wrong_cell_wait_ms;
	int64_t erasure_interval_ms;
	long erasure_batch;
	int64_t erasure_pause_ms;
	long export_concurrency;
	int log;                            /* DP_LOG: tenants' logs and signed checkpoints (log.h) */
	const char *log_keys_dir;
	int64_t log_key_overlap_ms;
	int64_t log_interval_ms;
	int64_t log_sweep_interval_ms;
	long log_batch;
	int streams;                        /* DP_STREAMS: deliver the tenants' log streams (stream.h) */
	const char *stream_keys_dir;
	long stream_workers;
	long stream_batch;
	long stream_batch_bytes;
	int64_t stream_batch_wait_ms;
	int64_t stream_retry_min_ms;
	int64_t stream_retry_max_ms;
	int64_t stream_failure_budget_ms;
	int64_t stream_timeout_ms;
	const char *stream_ca_file;
	int64_t stream_poll_ms;
	int64_t stream_report_interval_ms;
};

struct dp_app {
	struct dp_config cfg;
	char instance[129];                 /* DP_INSTANCE or its default */
	struct db_pool *db;
	struct trust_store *trust;          /* keys a document may be signed with (trust_store.h) */
	struct dp_snaps *snaps;             /* the configuration in use */
	struct dp_pull *pull;               /* loads it: cache at start, then the control plane */
	struct dp_ingest *ingest;           /* group commit of POST /v1/events */
	struct dp_limits *limits;           /* per-tenant rate buckets and usage counts */
	struct dp_usage *usage;             /* usage refresher and reporter threads */
	struct dp_retention *retention;
	struct dp_ratesync *ratesync;       /* shares tenants' rate limits with the region's instances */
	struct dp_region_guard *region;     /* checks every new database session */
	struct dp_idem_purge *idem_purge;   /* deletes expired Idempotency-Key records */
	struct dp_feed *feed;               /* parked GET /v1/events/feed?wait= requests */
	struct dp_cell_wait *cell_wait;     /* routed requests waiting for a newer cell document */
	struct dp_erasure *erasure;         /* erases deleted tenants' rows */
	struct dp_exports *exports;         /* exports streaming now, and their bound */
	struct dp_log *log;                 /* the tenants' logs' appender (NULL: DP_LOG off) */
	struct dp_streams *streams;         /* log streams' delivery (NULL: DP_STREAMS off) */
};

/* ---- routes ---- */

/* The route table's `auth` value of tenant routes: an API key of this
 * region, checked against the configuration in use (never the database,
 * never the control plane). */
#define DP_AUTH_API_KEY 1
/* Move routes (move.c): a move credential (common/movecred.h) for the
 * route's {move}, on a data plane of the move's source cell, of its target
 * cell, or of either. */
#define DP_AUTH_MOVE_SOURCE 2
#define DP_AUTH_MOVE_TARGET 3
#define DP_AUTH_MOVE_EITHER 4

/* What a tenant route knows about its caller once authenticated: a copy
 * taken from the snapshot, so that the handler and the response never hold
 * the configuration. Set with http_req_set_auth(); read with
 * http_req_auth(). */
struct dp_auth {
	char tenant_id[37];
	char slug[64];
	char status;                        /* 'a' or 's' (suspended: reads only) */
	struct cfgdoc_plan plan;
	char key_id[25];
	unsigned scopes;                    /* CFGDOC_SCOPE_* */
	int64_t config_version;
};

/* The service's authenticate hook (auth.c), a step (http.h). Returns
 * HTTP_GO_ON with a struct dp_auth attached, or HTTP_ANSWERED after
 * queueing 401, 403, 421 or 503 (with nothing queued when out of memory:
 * the server answers 500). A suspended tenant gets through on reads only. */
enum http_step dp_authenticate(struct http_req *req, int auth) __attribute__((warn_unused_result));
/* 1 when the request's route may change the tenant's data: every method
 * but GET and HEAD (a route added later is a write unless it reads).
 * A suspended tenant's writes are refused (auth.c). */
int dp_route_writes(struct http_req *req);
/* GET /v1/tenant (tenant.c): the caller's tenant, plan and key. */
enum http_result dp_handle_tenant(struct http_req *req);
/* Every events route first, a step: the tenant's rate limit (429), with
 * the RateLimit-* headers, then a write of a suspended tenant (403
 * tenant_suspended, already refused by authentication: a second line),
 * then the key's scope (403 insufficient_scope). Returns HTTP_GO_ON,
 * or HTTP_ANSWERED after queueing the refusal (with nothing queued when
 * `a` is NULL: the server answers 500) (events.c). */
enum http_step dp_events_admit(struct http_req *req, const struct dp_auth *a, unsigned scope)
	__attribute__((warn_unused_result));
/* The query parameters of GET /v1/events (route.h): its route's
 * declaration, NULL-terminated; a route taking the same filters and more
 * declares { DP_EVENTS_QUERY_PARAMS, "format", NULL }. */
#define DP_EVENTS_QUERY_PARAMS                                                                       \
	"actor[]", "actor_type[]", "action[]", "target[]", "target_type[]", "metadata.*[]", "q", "since", \
		"until", "received_since", "received_until", "order", "limit", "cursor"
extern const char *const dp_events_query_params[];
/* Parses the filters, order, limit (1..1000, default 100) and cursor of
 * GET /v1/events into `q` (strings borrowed from the request; q->tenant is
 * the authenticated tenant), a step: HTTP_GO_ON, or HTTP_ANSWERED after
 * queueing 400 validation_failed naming the parameter. A cursor is
 * accepted only with the filters and order of the query that returned it
 * (events.c). A route that reads more rows per statement (an export) may
 * raise q->limit afterwards, up to DP_SCAN_MAX. */
struct dp_event_query;
enum http_step dp_events_query_parse(struct http_req *req, struct dp_event_query *q)
	__attribute__((warn_unused_result));
/* GET /v1/events and GET /v1/events/{id} (events.c); POST is in ingest.h. */
enum http_result dp_handle_events_list(struct http_req *req);
enum http_result dp_handle_event_get(struct http_req *req);
/* GET /v1/events/feed (feed.c): the tenant's events in commit order. */
enum http_result dp_handle_events_feed(struct http_req *req);
/* The read side of the tenants' logs (log_routes.c, log.h), with the gate
 * of GET /v1/events (scope events:read, the read bucket), and 404
 * not_found when the log is off: GET /v1/checkpoints/latest and
 * /v1/checkpoints/{tree_size} (the stored checkpoint: the compact JWS as
 * application/jose, or JSON with Accept: application/json), GET
 * /v1/checkpoints/consistency?from&to (RFC 9162 PROOF(from, D[to])) and
 * GET /v1/events/{id}/proof?tree_size (RFC 9162 PATH of the event's
 * newest leaf; tree_size defaults to the newest checkpoint's). */
enum http_result dp_handle_checkpoint_latest(struct http_req *req);
enum http_result dp_handle_checkpoint_get(struct http_req *req);
enum http_result dp_handle_checkpoint_consistency(struct http_req *req);
enum http_result dp_handle_event_proof(struct http_req *req);
/* The header the cell router sets on every request it routes by key, naming
 * the cell it sent it to (it deletes any a client sent). */
#define DP_CELL_HEADER "X-Celltrail-Cell"
/* Appends dp_wrong_cell_requests_total to a /metrics page (auth.c). */
void dp_auth_metrics(FILE *out);
/* The credential calls to the control plane carry: DP_CELL_TOKEN with
 * DP_CELL, DP_REGION_TOKEN without (main.c has checked it is set). */
static inline const char *dp_cp_token(const struct dp_config *c)
{
	return c->cell ? c->cell_token : c->region_token;
}
/* ---- tenant moves (move.c) ---- */

/* The authenticate hook of the move routes, a step: the route's {move} a
 * UUID, Authorization: Bearer <move credential> verified offline with the
 * trust bundle and the documents' issuer and clock skew (401 otherwise;
 * 403 forbidden when it is another move's), and this data plane the
 * move's source cell (DP_AUTH_MOVE_SOURCE), target cell
 * (DP_AUTH_MOVE_TARGET) or either (403 forbidden otherwise, and on a data
 * plane without DP_CELL). */
enum http_step dp_move_authenticate(struct http_req *req, int auth) __attribute__((warn_unused_result));
/* Source: GET /v1/moves/{move}/events, POST and DELETE .../fence,
 * GET .../digest, GET .../records. Target: POST .../events, GET
 * .../progress, POST .../records. Either: POST .../erase. */
enum http_result dp_handle_move_events_get(struct http_req *req);
enum http_result dp_handle_move_fence_post(struct http_req *req);
enum http_result dp_handle_move_fence_delete(struct http_req *req);
enum http_result dp_handle_move_digest(struct http_req *req);
enum http_result dp_handle_move_records_get(struct http_req *req);
enum http_result dp_handle_move_events_post(struct http_req *req);
enum http_result dp_handle_move_progress(struct http_req *req);
enum http_result dp_handle_move_records_post(struct http_req *req);
enum http_result dp_handle_move_erase(struct http_req *req);
/* The most rows of one page, either way, and a page's body limit. */
#define DP_MOVE_PAGE_MAX 5000
#define DP_MOVE_PAGE_DEFAULT 1000
#define DP_MOVE_BODY_MAX (64L * 1024 * 1024)
/* Appends dp_move_requests_total and dp_move_events_copied_total. */
void dp_move_metrics(FILE *out);

/* GET /readyz (readyz.c): the configuration in use, 503 before there is one. */
enum http_result dp_handle_readyz(struct http_req *req);

/* The regional database records which region it belongs to, so that a data
 * plane pointed at another region's database never writes or reads a
 * tenant's data there; and, with DP_CELL, which cell of the region, so that
 * a data plane never serves one cell from another cell's database
 * (db_region.c). Without DP_CELL the cell is not judged. */
enum dp_region_check {
	DP_REGION_OK,
	DP_REGION_MISMATCH,                 /* another region's */
	DP_REGION_UNCLAIMED,                /* no region's (not migrated), or no cell's before migration 0008 */
	DP_REGION_WRONG_CELL,               /* this region's, claimed by another cell */
	DP_REGION_UNKNOWN,                  /* not checked (yet), or the database could not be asked (last) */
};

/* Records `region` as the owner of an unclaimed database, and `cell`
 * (NULL: none) as its cell if no cell claimed it (migrate does this).
 * Returns DP_REGION_OK, or DP_REGION_MISMATCH / DP_REGION_WRONG_CELL with
 * the owning region / cell in `owner`, or DP_REGION_UNKNOWN when the
 * database cannot be asked. */
enum dp_region_check dp_db_region_claim(struct db_pool *db, const char *region, const char *cell,
                                        char *owner, size_t len);

/* The pool's check of every new session (db_pool_set_check with
 * dp_region_guard_check and the guard as its argument): a session that
 * reaches a database of another region, of another cell (with `cell`, not
 * NULL: an unclaimed cell is claimed by the check, so that a database
 * migrated without DP_CELL becomes the cell's at its first start), or of
 * none, is refused, so that no statement of the data plane ever runs on
 * it, whether the database was reachable at start or only later, or a
 * reconnect reached another one. Refusals are counted and logged at error
 * level (on a change, then at most once a minute). `region` and `cell`
 * must outlive the guard. NULL when out of memory; _free accepts NULL. */
struct dp_region_guard;
struct dp_region_guard *dp_region_guard_new(const char *region, const char *cell);
void dp_region_guard_free(struct dp_region_guard *g);
int dp_region_guard_check(struct db_conn *c, void *guard);
/* What the last completed check found (DP_REGION_UNKNOWN before any), and
 * the owner it read (the owning cell for DP_REGION_WRONG_CELL, else the
 * region). Any thread. */
enum dp_region_check dp_region_guard_state(struct dp_region_guard *g, char *owner, size_t len);
/* Appends dp_db_region_check_failures_total{reason} to a /metrics page. */
void dp_region_guard_metrics(struct dp_region_guard *g, FILE *out);

#endif
