/* data-plane: one region's stateless API service. Pulls the region's
 * signed config from the control plane and serves the tenants whose home
 * region this is, storing their data in the region's own database.
 *
 *   data-plane [serve]   run the HTTP service
 *   data-plane migrate   apply the regional migrations and claim the
 *                        database for DP_REGION, then exit
 *   data-plane --help    print usage and the configuration table */
#include <curl/curl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apidoc.h"
#include "cell_wait.h"
#include "config_pull.h"
#include "config_store.h"
#include "cp_errors.h"
#include "dp.h"
#include "feed_wait.h"
#include "erasure.h"
#include "export.h"
#include "http.h"
#include "idempotency.h"
#include "ingest.h"
#include "keyring.h"
#include "limits.h"
#include "log.h"
#include "migrate.h"
#include "names.h"
#include "partitions.h"
#include "ratesync.h"
#include "snapshot.h"
#include "stream.h"
#include "svc.h"
#include "trust_store.h"
#include "timefmt.h"
#include "url.h"
#include "usage.h"

#define PROG "data-plane"

const char *const dp_stale_policy_names[] = { [DP_STALE_SERVE] = "serve",
	                                          [DP_STALE_FAIL_CLOSED] = "fail-closed", NULL };

#define O(f) offsetof(struct dp_config, f)
#define LOG_KEY_VARS                                                                                 \
	{ "DP_LOG_KEYS_DIR", CFG_STR, NULL, 0, O(log_keys_dir), 0, 0, NULL,                                 \
	  "Required with DP_LOG. Directory of the region's ES256 log keys, which sign the checkpoints (created with a first key if empty; the same directory for every instance of the region, never in the database)." }, \
	{ "DP_LOG_KEY_OVERLAP", CFG_DURATION, "8d", 0, O(log_key_overlap_ms), 0, 315360000000, NULL,        \
	  "How long a retired log key stays in GET /.well-known/jwks.json." }
#define STREAM_KEY_VARS                                                                              \
	{ "DP_STREAM_KEYS_DIR", CFG_STR, NULL, 0, O(stream_keys_dir), 0, 0, NULL,                          \
	  "Directory of the region's P-256 stream key ring, which opens the destinations' sealed secrets (the same for every instance of the region, never in the database). Unset: no stream is delivered; each is reported refused." }
static const struct cfg_var dp_vars[] = {
	SVC_COMMON_VARS("DP_", struct dp_config, common, "127.0.0.1:8081", "4096"),
	{ "DP_REGION", CFG_STR, NULL, 1, O(region), 0, 0, NULL,
	  "Name of the region this instance serves ([a-z][a-z0-9-]*)." },
	{ "DP_DATABASE_URL", CFG_SECRET, NULL, 1, O(database_url), 0, 0, NULL,
	  "PostgreSQL connection string of this region's own database." },
	{ "DP_CONTROL_PLANE_URL", CFG_STR, NULL, 1, O(control_plane_url), 0, 0, NULL,
	  "Base URL of the control plane (config is pulled from it, never on a request's path)." },
	{ "DP_CONTROL_PLANE_CA_FILE", CFG_STR, NULL, 0, O(control_plane_ca_file), 0, 0, NULL,
	  "CA certificate (PEM) the control plane's https certificate must chain to: pinned, the system's trust store is then not used. Requires an https:// DP_CONTROL_PLANE_URL." },
	{ "DP_MIGRATIONS_DIR", CFG_STR, NULL, 0, O(migrations_dir), 0, 0, NULL,
	  "Directory of the regional migrations (default: the one shipped with the binary)." },
	{ "DP_REGION_TOKEN", CFG_SECRET, NULL, 0, O(region_token), 0, 0, NULL,
	  "Required to serve without DP_CELL. This region's credential at the control plane (config pulls, fleet status, usage, erasures)." },
	{ "DP_CELL", CFG_STR, NULL, 0, O(cell), 0, 0, NULL,
	  "The cell of DP_REGION this instance serves ([a-z][a-z0-9-]{1,62}): it pulls that cell's document (GET /v1/cells/{cell}/config) and answers 503 wrong_cell to a request routed for another cell; its database must be this cell's (migrate, or the first session, claims one no cell has). Unset: the whole region's document, as before cells." },
	{ "DP_CELL_TOKEN", CFG_SECRET, NULL, 0, O(cell_token), 0, 0, NULL,
	  "Required to serve with DP_CELL, instead of DP_REGION_TOKEN. The cell's credential at the control plane (config pulls, fleet status, usage, erasures)." },
	{ "DP_TRUST_BUNDLE", CFG_STR, NULL, 0, O(trust_bundle), 0, 0, NULL,
	  "Required to serve. JWK set file of the keys a configuration document may be signed with." },
	{ "DP_CACHE_DIR", CFG_STR, NULL, 0, O(cache_dir), 0, 0, NULL,
	  "Required to serve. Directory of the last verified configuration (config.jwt), the deltas applied on it with DP_CELL (config.deltas) and the highest version applied (version); created if missing. One process's own: temporary files an earlier process left there are removed at start." },
	{ "DP_STALE_POLICY", CFG_ENUM, "serve", 0, O(stale_policy), 0, 0, dp_stale_policy_names,
	  "Tenant routes once the configuration in use has expired: keep serving, or answer 503." },
	{ "DP_PULL_WAIT", CFG_DURATION, "30s", 0, O(pull_wait_ms), 1000, 60000, NULL,
	  "How long the control plane may hold a config pull open for a newer version (1s to 60s)." },
	{ "DP_KEYSET_INTERVAL", CFG_DURATION, "30s", 0, O(keyset_interval_ms), 1000, 3600000, NULL,
	  "How often the signed key set of the control plane's signing keys is asked for (also at start, and at once when a document is signed with a key not trusted here)." },
	{ "DP_PULL_CONNECT_TIMEOUT", CFG_DURATION, "2s", 0, O(pull_connect_timeout_ms), 100, 60000, NULL,
	  "Longest wait to connect to the control plane." },
	{ "DP_CLOCK_SKEW", CFG_DURATION, "60s", 0, O(clock_skew_ms), 0, 3600000, NULL,
	  "Clock difference tolerated on a configuration document's nbf and exp." },
	{ "DP_INSTANCE", CFG_STR, NULL, 0, O(instance), 0, 0, NULL,
	  "Name of this instance in fleet status: 1 to 128 of [A-Za-z0-9._:-] (default: <hostname>-<pid>)." },
	{ "DP_CONFIG_MAX_BYTES", CFG_INT, "268435456", 0, O(config_max_bytes), 4096, 1073741824, NULL,
	  "Largest configuration document accepted, in bytes (a cell of 1,000,000 tenants with 3 keys each takes about 383 MB)." },
	{ "DP_CONFIG_DELTAS_MAX", CFG_INT, "1024", 0, O(config_deltas_max), 1, 100000, NULL,
	  "With DP_CELL, delta documents applied on one full document before a full one is asked for (?full=1)." },
	{ "DP_INGEST_WRITERS", CFG_INT, "2", 0, O(ingest_writers), 1, 64, NULL,
	  "Threads committing POST /v1/events in groups, each with its own database connection." },
	{ "DP_INGEST_GROUP_MAX", CFG_INT, "4000", 0, O(ingest_group_max), 1, 100000, NULL,
	  "Most events one group-commit transaction takes (a single request of up to 1000 always fits)." },
	{ "DP_INGEST_QUEUE_MAX", CFG_INT, "4096", 0, O(ingest_queue_max), 1, 1000000, NULL,
	  "Ingest requests waiting for a commit; beyond it POST /v1/events answers 503." },
	{ "DP_INGEST_QUEUE_BYTES", CFG_INT, "67108864", 0, O(ingest_queue_bytes), 1048576, 17179869184, NULL,
	  "Body bytes of the ingest requests waiting for or in a commit; beyond it POST /v1/events answers 503." },
	{ "DP_DB_STATEMENT_TIMEOUT", CFG_DURATION, "10s", 0, O(db_statement_timeout_ms), 100, 3600000, NULL,
	  "Longest a database statement (or a transaction left idle) may take (100ms to 1h); beyond it the request gets 503." },
	{ "DP_USAGE_REPORT_INTERVAL", CFG_DURATION, "10s", 0, O(usage_report_interval_ms), 100, 3600000, NULL,
	  "How often usage is cut into batches and sent to the control plane's POST /v1/usage." },
	{ "DP_USAGE_REFRESH", CFG_DURATION, "1s", 0, O(usage_refresh_ms), 100, 60000, NULL,
	  "How often tenants' usage this month is read for GET /v1/tenant (its largest lag)." },
	{ "DP_RETENTION_INTERVAL", CFG_DURATION, "10m", 0, O(retention_interval_ms), 1000, 86400000, NULL,
	  "How often events past their tenant's retention are deleted." },
	{ "DP_EVENTS_PARTITIONED", CFG_BOOL, "false", 0, O(events_partitioned), 0, 0, NULL,
	  "Partition this cell's events by week (the contract steps, once DP_CONTRACT_AFTER allows): retention then "
	  "removes whole weeks, and reads in commit order (feed, log, streams) go through every week kept. Once "
	  "applied, it stays." },
	{ "DP_CONTRACT_AFTER", CFG_DURATION, "24h", 0, O(contract_after_ms), 0, 2592000000, NULL,
	  "How long no instance of an older build must have been seen in the cell before the contract step "
	  "(migrations/region/contract: events partitioned by week) is applied; a rollback within it still "
	  "finds the schema the previous build knows (0 to 30d)." },
	{ "DP_RETENTION_BATCH", CFG_INT, "1000", 0, O(retention_batch), 1, 100000, NULL,
	  "Most events one retention statement deletes." },
	{ "DP_RATE_SYNC_INTERVAL", CFG_DURATION, "250ms", 0, O(rate_sync_ms), 50, 10000, NULL,
	  "How often the instances of the region exchange tenants' demand to share their rate limits." },
	{ "DP_IDEMPOTENCY_TTL", CFG_DURATION, "24h", 0, O(idempotency_ttl_ms), 1000, 2592000000, NULL,
	  "How long POST /v1/events remembers an Idempotency-Key and its first answer (1s to 30d)." },
	{ "DP_IDEMPOTENCY_PURGE_INTERVAL", CFG_DURATION, "1m", 0, O(idempotency_purge_interval_ms), 100, 86400000, NULL,
	  "How often Idempotency-Key records past DP_IDEMPOTENCY_TTL are deleted (1000 per statement)." },
	{ "DP_FEED_WAITERS_MAX", CFG_INT, "1000", 0, O(feed_waiters_max), 1, 1000000, NULL,
	  "GET /v1/events/feed requests with wait that may be parked at once; beyond it such a request answers 503." },
	{ "DP_WRONG_CELL_WAIT", CFG_DURATION, "2s", 0, O(wrong_cell_wait_ms), 0, 60000, NULL,
	  "With DP_CELL, how long a read the cell router sent here for a key this cell's document does not hold waits for a newer document before it is answered 503 wrong_cell (0: at once)." },
	{ "DP_FEED_POLL_INTERVAL", CFG_DURATION, "100ms", 0, O(feed_poll_ms), 10, 10000, NULL,
	  "While feed requests wait, how often the database is asked whether other instances committed events for them." },
	{ "DP_ERASURE_INTERVAL", CFG_DURATION, "1m", 0, O(erasure_interval_ms), 100, 86400000, NULL,
	  "How often deleted tenants with rows left in the region are looked for and erased." },
	{ "DP_ERASURE_BATCH", CFG_INT, "1000", 0, O(erasure_batch), 1, 100000, NULL,
	  "Most rows of a deleted tenant one erasure batch (one transaction) deletes." },
	{ "DP_ERASURE_PAUSE", CFG_DURATION, "100ms", 0, O(erasure_pause_ms), 0, 60000, NULL,
	  "Pause between two erasure batches of a tenant, to leave the database to the tenants that remain." },
	{ "DP_EXPORT_CONCURRENCY", CFG_INT, "4", 0, O(export_concurrency), 1, 1024, NULL,
	  "Exports (GET /v1/events/export) this instance streams at once; beyond it they get 503 with Retry-After." },
	{ "DP_LOG", CFG_BOOL, "true", 0, O(log), 0, 0, NULL,
	  "Keep every tenant's events in a verifiable log (RFC 9162 Merkle tree) with signed checkpoints: the appender thread, GET /.well-known/jwks.json, the checkpoint and proof routes, and the log lines of an NDJSON export." },
	LOG_KEY_VARS,
	{ "DP_LOG_INTERVAL", CFG_DURATION, "1s", 0, O(log_interval_ms), 10, 3600000, NULL,
	  "How often the appender appends the tenants whose commits this instance saw, and signs their checkpoints." },
	{ "DP_LOG_SWEEP_INTERVAL", CFG_DURATION, "30s", 0, O(log_sweep_interval_ms), 100, 86400000, NULL,
	  "How often every tenant of the configuration with events past its log's head is looked for (other instances' commits, tenants moved in)." },
	{ "DP_LOG_BATCH", CFG_INT, "10000", 0, O(log_batch), 1, 100000, NULL,
	  "Most leaves one append (one transaction) adds to one tenant's log." },
	{ "DP_STREAMS", CFG_BOOL, "true", 0, O(streams), 0, 0, NULL,
	  "Deliver the log streams of this cell's tenants to their destinations (webhook, Splunk HEC, S3), and report their state to the control plane." },
	STREAM_KEY_VARS,
	{ "DP_STREAM_WORKERS", CFG_INT, "2", 0, O(stream_workers), 1, 64, NULL,
	  "Delivery threads of this instance, each with its own database connection during a round." },
	{ "DP_STREAM_BATCH", CFG_INT, "500", 0, O(stream_batch), 1, 10000, NULL,
	  "Most events one batch of a stream carries." },
	{ "DP_STREAM_BATCH_BYTES", CFG_INT, "1048576", 0, O(stream_batch_bytes), 65536, 16777216, NULL,
	  "Most body bytes of one batch before gzip (64 KiB to 16 MiB); one event always fits." },
	{ "DP_STREAM_BATCH_WAIT", CFG_DURATION, "1s", 0, O(stream_batch_wait_ms), 0, 3600000, NULL,
	  "How long a partial batch waits for more events (counted from its first event's receipt) before it is sent." },
	{ "DP_STREAM_RETRY_MIN", CFG_DURATION, "1s", 0, O(stream_retry_min_ms), 10, 3600000, NULL,
	  "Wait before the second attempt of a failed batch; it doubles with each failure (with 20% jitter) up to DP_STREAM_RETRY_MAX." },
	{ "DP_STREAM_RETRY_MAX", CFG_DURATION, "5m", 0, O(stream_retry_max_ms), 10, 86400000, NULL,
	  "Longest wait between two attempts of a batch, the destination's Retry-After included." },
	{ "DP_STREAM_FAILURE_BUDGET", CFG_DURATION, "24h", 0, O(stream_failure_budget_ms), 0, 2592000000, NULL,
	  "How long a stream may fail continuously before it is marked failed and delivery stops until its owner resumes it." },
	{ "DP_STREAM_TIMEOUT", CFG_DURATION, "10s", 0, O(stream_timeout_ms), 100, 600000, NULL,
	  "Longest one delivery attempt may take." },
	{ "DP_STREAM_CA_FILE", CFG_STR, NULL, 0, O(stream_ca_file), 0, 0, NULL,
	  "CA bundle (PEM) that https destinations are verified against (default: the system's)." },
	{ "DP_STREAM_POLL_INTERVAL", CFG_DURATION, "1s", 0, O(stream_poll_ms), 10, 3600000, NULL,
	  "How often idle streams are looked at for new events (an ingest commit of the tenant on this instance wakes its streams at once)." },
	{ "DP_STREAM_REPORT_INTERVAL", CFG_DURATION, "10s", 0, O(stream_report_interval_ms), 100, 3600000, NULL,
	  "How often the state of this cell's streams is sent to the control plane (POST /v1/regions/{region}/streams/status)." },
	CFG_END
};
/* What the log-* commands read (the keys only: no database, no region). */
static const struct cfg_var log_key_vars[] = { LOG_KEY_VARS, CFG_END };
/* What stream-key reads. */
static const struct cfg_var stream_key_vars[] = { STREAM_KEY_VARS, CFG_END };
#undef LOG_KEY_VARS
#undef STREAM_KEY_VARS
#undef O

/* The API reference this binary was built with (common/apidoc.h). */
static enum http_result handle_openapi(struct http_req *req)
{
	size_t len;
	const unsigned char *doc = apidoc_yaml(&len);
	return http_reply_raw(req, 200, APIDOC_CONTENT_TYPE, doc, len);
}

/* The query parameters each route reads (route.h): any other is refused. */
static const char *const q_feed[] = { "after", "limit", "wait", NULL };
static const char *const q_export[] = { DP_EVENTS_QUERY_PARAMS, "format", NULL };
static const char *const q_move_events[] = { "after", "limit", NULL };
static const char *const q_move_digest[] = { "after", "upto", "count_only", NULL };
static const char *const q_move_records[] = { "since_us", NULL };
static const char *const q_proof[] = { "tree_size", NULL };
static const char *const q_consistency[] = { "from", "to", NULL };

static const struct http_route dp_routes[] = {
	{ "GET", "/healthz", http_handle_healthz, 0, 0, NULL },
	{ "GET", "/readyz", dp_handle_readyz, 0, 0, NULL },
	{ "GET", "/metrics", http_handle_metrics, 0, 0, NULL },
	{ "GET", "/openapi.yaml", handle_openapi, 0, 0, NULL },
	{ "GET", "/.well-known/jwks.json", dp_handle_log_jwks, 0, 0, NULL },
	{ "GET", "/v1/tenant", dp_handle_tenant, 0, DP_AUTH_API_KEY, NULL },
	{ "POST", "/v1/events", dp_handle_events_post, 1024 * 1024, DP_AUTH_API_KEY, NULL },
	{ "GET", "/v1/events", dp_handle_events_list, 0, DP_AUTH_API_KEY, dp_events_query_params },
	/* Before /v1/events/{id}: the first pattern that matches wins. */
	{ "GET", "/v1/events/feed", dp_handle_events_feed, 0, DP_AUTH_API_KEY, q_feed },
	{ "GET", "/v1/events/export", dp_handle_events_export, 0, DP_AUTH_API_KEY, q_export }, /* before {id} */
	{ "GET", "/v1/events/{id}", dp_handle_event_get, 0, DP_AUTH_API_KEY, NULL },
	{ "GET", "/v1/events/{id}/proof", dp_handle_event_proof, 0, DP_AUTH_API_KEY, q_proof },
	/* The log's checkpoints (log_routes.c): the literal names before {tree_size}. */
	{ "GET", "/v1/checkpoints/latest", dp_handle_checkpoint_latest, 0, DP_AUTH_API_KEY, NULL },
	{ "GET", "/v1/checkpoints/consistency", dp_handle_checkpoint_consistency, 0, DP_AUTH_API_KEY, q_consistency },
	{ "GET", "/v1/checkpoints/{tree_size}", dp_handle_checkpoint_get, 0, DP_AUTH_API_KEY, NULL },
	/* Tenant moves (move.c): the source's routes, the target's, the erasure of either copy. */
	{ "GET", "/v1/moves/{move}/events", dp_handle_move_events_get, 0, DP_AUTH_MOVE_SOURCE, q_move_events },
	{ "POST", "/v1/moves/{move}/events", dp_handle_move_events_post, DP_MOVE_BODY_MAX, DP_AUTH_MOVE_TARGET, NULL },
	{ "POST", "/v1/moves/{move}/fence", dp_handle_move_fence_post, 1024, DP_AUTH_MOVE_SOURCE, NULL },
	{ "DELETE", "/v1/moves/{move}/fence", dp_handle_move_fence_delete, 0, DP_AUTH_MOVE_SOURCE, NULL },
	{ "GET", "/v1/moves/{move}/digest", dp_handle_move_digest, 0, DP_AUTH_MOVE_SOURCE, q_move_digest },
	{ "GET", "/v1/moves/{move}/records", dp_handle_move_records_get, 0, DP_AUTH_MOVE_SOURCE, q_move_records },
	{ "POST", "/v1/moves/{move}/records", dp_handle_move_records_post, DP_MOVE_BODY_MAX, DP_AUTH_MOVE_TARGET, NULL },
	{ "GET", "/v1/moves/{move}/progress", dp_handle_move_progress, 0, DP_AUTH_MOVE_TARGET, NULL },
	{ "POST", "/v1/moves/{move}/erase", dp_handle_move_erase, 1024, DP_AUTH_MOVE_EITHER, NULL },
};

static int cmd_routes(void)
{
	for (size_t i = 0; i < sizeof dp_routes / sizeof dp_routes[0]; i++)
		printf("%s %s %s\n", dp_routes[i].method, dp_routes[i].pattern,
		       dp_routes[i].auth == DP_AUTH_API_KEY ? "api_key" : dp_routes[i].auth ? "move" : "public");
	return SVC_EXIT_OK;
}

static void dp_metrics(FILE *out, void *arg)
{
	struct dp_app *app = arg;
	svc_db_metrics(out, app->db, PROG);
	dp_pull_metrics(app->pull, out);
	dp_cp_errors_metrics(out);
	dp_auth_metrics(out);
	fprintf(out, "# HELP dp_info This instance's region and cell (cell \"\": it serves the whole region).\n"
	             "# TYPE dp_info gauge\n"
	             "dp_info{region=\"%s\",cell=\"%s\"} 1\n",
	        app->cfg.region, app->cfg.cell ? app->cfg.cell : "");
	if (app->region)
		dp_region_guard_metrics(app->region, out);
	dp_ingest_metrics(app->ingest, out);
	if (app->usage)
		dp_usage_metrics(app->usage, out);
	if (app->retention)
		dp_retention_metrics(app->retention, out);
	if (app->ratesync)
		dp_ratesync_metrics(app->ratesync, out);
	if (app->idem_purge)
		dp_idem_purge_metrics(app->idem_purge, out);
	dp_feed_metrics(app->feed, out);
	dp_cell_wait_metrics(app->cell_wait, out);
	if (app->erasure)
		dp_erasure_metrics(app->erasure, out);
	dp_exports_metrics(app->exports, out);
	dp_move_metrics(out);
	dp_log_metrics(app->log, out);
	dp_streams_metrics(app->streams, out);
}

/* Draining: the requests waiting for a group commit are committed and
 * answered before the server stops; those the database does not let
 * commit by the deadline are answered 503. */
static void dp_on_drain(void *arg)
{
	struct dp_app *app = arg;
	dp_feed_drain(app->feed); /* parked feed reads answer with what they have */
	dp_cell_wait_drain(app->cell_wait); /* parked wrong-cell reads are answered now */
	dp_ingest_drain(app->ingest, (unsigned)app->cfg.common.drain_timeout_ms);
}

/* After the database is interrupted, how long the ingest writers have to
 * answer their requests with what they know (stored, not stored) before
 * the rest is answered "may or may not be stored". */
#define DRAIN_WRITER_GRACE_MS 500

/* After the server stopped, how long the last writes of the background
 * threads (withdrawing rate demand) may wait on the database. */
#define STOP_DB_GRACE_MS 1000
/* Routed requests parked for a newer cell document at once; beyond it they
 * are answered 503 wrong_cell at once, as with DP_WRONG_CELL_WAIT 0. */
#define WRONG_CELL_WAITERS_MAX 10000

/* The drain deadline passed with requests still running: whatever waits on
 * the database gives up now, so that they are answered (503) and stop. */
static void dp_on_drain_deadline(void *arg)
{
	struct dp_app *app = arg;
	db_pool_interrupt(app->db);
	dp_ingest_abandon(app->ingest, DRAIN_WRITER_GRACE_MS);
}

static void usage(FILE *out)
{
	cfg_print_help(out,
	               "Usage: " PROG " [serve|migrate|routes|log-jwks|log-stage-key|log-rotate-key|stream-key|--help]\n\n"
	               "  serve     run the regional tenant API (the default)\n"
	               "  routes    print the route table (method, path, auth) and exit\n"
	               "  migrate   apply the regional migrations to DP_DATABASE_URL, claim that\n"
	               "            database for DP_REGION, and exit\n"
	               "  log-jwks        print the public JWK set of DP_LOG_KEYS_DIR (creating the\n"
	               "                  directory and a first key if empty); needs DP_LOG_KEYS_DIR only\n"
	               "  log-stage-key   add a next log key: published in the JWK set, not yet signing\n"
	               "  log-rotate-key  make the staged (or a new) log key sign checkpoints; the\n"
	               "                  instances notice the change of the directory\n"
	               "  stream-key      print the public JWK (\"use\":\"enc\") of the current key of\n"
	               "                  DP_STREAM_KEYS_DIR (creating the ring if empty), to set as the\n"
	               "                  region's stream_key; needs DP_STREAM_KEYS_DIR only",
	               dp_vars);
}

static int open_pool(struct dp_app *app)
{
	char err[512];
	app->db = db_pool_new(app->cfg.database_url, (unsigned)app->cfg.common.db_pool_size,
	                      (unsigned)app->cfg.common.db_acquire_timeout_ms, err, sizeof err);
	if (!app->db) {
		fprintf(stderr, PROG ": DP_DATABASE_URL: %s\n", err);
		return -1;
	}
	/* The build level on every session: the partitioned events' guard
	 * lets only a build that knows the layout delete from them. */
	if (db_pool_set_timeouts(app->db, (unsigned)app->cfg.db_statement_timeout_ms) != 0 ||
	    db_pool_add_options(app->db, "-c celltrail.schema_level=" DP_SCHEMA_LEVEL_SQL) != 0) {
		fprintf(stderr, PROG ": out of memory\n");
		db_pool_free(app->db);
		app->db = NULL;
		return -1;
	}
	return 0;
}

static int cmd_migrate(struct dp_app *app)
{
	char dir[4096], err[1024], owner[64];
	int applied, ret = SVC_EXIT_FAILURE;

	if (app->cfg.migrations_dir)
		snprintf(dir, sizeof dir, "%s", app->cfg.migrations_dir);
	else
		svc_data_path("migrations/region", dir, sizeof dir);
	if (migrate_run(app->cfg.database_url, dir, &applied, err, sizeof err) != 0) {
		fprintf(stderr, PROG ": migrate: %s\n", err);
		return SVC_EXIT_FAILURE;
	}
	if (open_pool(app))
		return SVC_EXIT_USAGE;
	/* With DP_CELL a database no cell claimed yet becomes this cell's: the
	 * first cell of a region keeps the region's database. */
	switch (dp_db_region_claim(app->db, app->cfg.region, app->cfg.cell, owner, sizeof owner)) {
	case DP_REGION_OK:
		printf("%d migration(s) applied from %s; database belongs to region %s%s%s\n", applied, dir,
		       app->cfg.region, app->cfg.cell ? ", cell " : "", app->cfg.cell ? app->cfg.cell : "");
		ret = SVC_EXIT_OK;
		break;
	case DP_REGION_MISMATCH:
		fprintf(stderr, PROG ": migrate: this database belongs to region '%s', not '%s'\n", owner,
		        app->cfg.region);
		break;
	case DP_REGION_WRONG_CELL:
		fprintf(stderr, PROG ": migrate: this database belongs to cell '%s', not '%s'\n", owner,
		        app->cfg.cell);
		break;
	case DP_REGION_UNCLAIMED: /* with DP_CELL, only when 0008 was not among the migrations */
		fprintf(stderr, PROG ": migrate: the database has no cell column (is %s/0008_cell_identity.sql missing?)\n",
		        dir);
		break;
	default:
		fprintf(stderr, PROG ": migrate: could not record the region in the database\n");
	}
	db_pool_free(app->db);
	return ret;
}

/* log-jwks, log-stage-key, log-rotate-key: the region's log keys, as
 * the control plane's jwks, stage-key and rotate-key keep its own. */
static int cmd_log_keys(const char *cmd)
{
	struct dp_config cfg = { 0 };
	char err[512], kid[64];
	svc_load_config(PROG, log_key_vars, &cfg);
	if (!cfg.log_keys_dir || !*cfg.log_keys_dir) {
		fprintf(stderr, PROG ": invalid configuration: DP_LOG_KEYS_DIR: required for this command\n");
		return SVC_EXIT_USAGE;
	}
	if (!strcmp(cmd, "log-jwks")) {
		struct keyring *kr = keyring_open(cfg.log_keys_dir, cfg.log_key_overlap_ms / 1000, err, sizeof err);
		if (!kr) {
			fprintf(stderr, PROG ": %s\n", err);
			return SVC_EXIT_FAILURE;
		}
		json_t *j = keyring_jwks(kr);
		json_dumpf(j, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(j);
		keyring_free(kr);
		return SVC_EXIT_OK;
	}
	int rotate = !strcmp(cmd, "log-rotate-key");
	if ((rotate ? keyring_rotate : keyring_stage)(cfg.log_keys_dir, kid, err, sizeof err) != 0) {
		fprintf(stderr, PROG ": %s\n", err);
		return SVC_EXIT_FAILURE;
	}
	if (rotate)
		printf("log key %s signs checkpoints from now on\n", kid);
	else
		printf("staged log key %s; it is published in GET /.well-known/jwks.json: let verifiers fetch it, then log-rotate-key\n",
		       kid);
	return SVC_EXIT_OK;
}

/* stream-key: the region's stream key, for the region catalog. */
static int cmd_stream_key(void)
{
	struct dp_config cfg = { 0 };
	svc_load_config(PROG, stream_key_vars, &cfg);
	if (!cfg.stream_keys_dir || !*cfg.stream_keys_dir) {
		fprintf(stderr, PROG ": invalid configuration: DP_STREAM_KEYS_DIR: required for this command\n");
		return SVC_EXIT_USAGE;
	}
	return dp_stream_key_command(cfg.stream_keys_dir) == 0 ? SVC_EXIT_OK : SVC_EXIT_FAILURE;
}

static int usage_error(const char *var, const char *why)
{
	fprintf(stderr, PROG ": invalid configuration: %s: %s (see " PROG " --help)\n", var, why);
	return SVC_EXIT_USAGE;
}

/* What only `serve` needs: the region credential, the trust bundle (loaded
 * here), the cache directory and the instance name. Returns 0 or an exit
 * status after a message naming the variable. */
static int serve_config(struct dp_app *app)
{
	const struct dp_config *c = &app->cfg;
	char err[600] = "";

	/* With DP_CELL every call to the control plane carries the cell's
	 * credential; DP_REGION_TOKEN is then not needed (nor used). */
	const char *tok_var = c->cell ? "DP_CELL_TOKEN" : "DP_REGION_TOKEN";
	const char *tok = dp_cp_token(c);
	if (!tok || !*tok)
		return usage_error(tok_var, c->cell ? "required to serve with DP_CELL" : "required to serve");
	for (const char *t = tok; *t; t++)
		if (*t <= ' ' || *t > '~')
			return usage_error(tok_var, "must be printable ASCII without spaces");
	if (strlen(c->control_plane_url) > 900)
		return usage_error("DP_CONTROL_PLANE_URL", "longer than 900 characters");
	const char *ca = url_ca_problem(c->control_plane_url, c->control_plane_ca_file);
	if (ca)
		return usage_error("DP_CONTROL_PLANE_CA_FILE", ca);
	if (!c->trust_bundle || !*c->trust_bundle)
		return usage_error("DP_TRUST_BUNDLE", "required to serve");
	if (!c->cache_dir || !*c->cache_dir)
		return usage_error("DP_CACHE_DIR", "required to serve");
	if (dp_cache_prepare(c->cache_dir, NULL, err, sizeof err) != 0)
		return usage_error("DP_CACHE_DIR", err);
	if (c->log && (!c->log_keys_dir || !*c->log_keys_dir))
		return usage_error("DP_LOG_KEYS_DIR", "required while DP_LOG is on (the region's log keys; "
		                                      "or set DP_LOG=false to run without the tamper-evident log)");
	/* Fleet status accepts 1 to 128 characters of [A-Za-z0-9._:-]. */
	static const char inst_chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-";
	if (c->instance) {
		size_t n = strlen(c->instance);
		if (n == 0 || n >= sizeof app->instance || strspn(c->instance, inst_chars) != n)
			return usage_error("DP_INSTANCE", "must be 1 to 128 characters of [A-Za-z0-9._:-]");
		snprintf(app->instance, sizeof app->instance, "%s", c->instance);
	} else {
		char host[100] = "";
		if (gethostname(host, sizeof host - 1) != 0 || !host[0])
			snprintf(host, sizeof host, "data-plane");
		for (char *h = host; *h; h++)
			if (!strchr(inst_chars, *h))
				*h = '-';
		snprintf(app->instance, sizeof app->instance, "%s-%ld", host, (long)getpid());
	}
	/* The key set accepted last (DP_CACHE_DIR), else the bundle. */
	if (!(app->trust = trust_store_open(c->trust_bundle, c->cache_dir, DP_CONFIG_ISSUER, err, sizeof err)))
		return usage_error("DP_TRUST_BUNDLE", err[0] ? err : "cannot be loaded");
	return 0;
}

static int cmd_serve(struct dp_app *app)
{
	char err[512], addr[96], owner[64];
	struct http_server *srv = NULL;
	struct http_server_opts o = {
		.service = PROG,
		.routes = dp_routes,
		.nroutes = sizeof dp_routes / sizeof dp_routes[0],
		.authenticate = dp_authenticate,
		.metrics_extra = dp_metrics,
		.on_drain = dp_on_drain,
		.on_drain_deadline = dp_on_drain_deadline,
		.app = app,
	};
	svc_http_opts(&app->cfg.common, &o);
	int ret = serve_config(app);

	if (ret != 0)
		return ret;
	ret = SVC_EXIT_FAILURE;
	if (open_pool(app)) {
		trust_store_free(app->trust);
		return SVC_EXIT_USAGE;
	}
	/* Every session is checked before it is used, at start as later: a
	 * database that cannot be reached now is checked once it can. */
	if (!(app->region = dp_region_guard_new(app->cfg.region, app->cfg.cell))) {
		log_error(NULL, "out of memory");
		goto out;
	}
	db_pool_set_check(app->db, dp_region_guard_check, app->region);
	/* A wrong database at start is a fatal misconfiguration; an
	 * unreachable one is not: the region keeps answering what it can
	 * without it. */
	(void)db_ping(app->db);
	int region_ok = 0;
	switch (dp_region_guard_state(app->region, owner, sizeof owner)) {
	case DP_REGION_OK:
		region_ok = 1;
		break;
	case DP_REGION_MISMATCH:
		log_error(NULL, "DP_DATABASE_URL points at the database of region '%s', not '%s'; refusing to start",
		          owner, app->cfg.region);
		fprintf(stderr, PROG ": DP_DATABASE_URL belongs to region '%s', not '%s'\n", owner,
		        app->cfg.region);
		ret = SVC_EXIT_USAGE;
		goto out;
	case DP_REGION_WRONG_CELL:
		log_error(NULL, "DP_DATABASE_URL points at the database of cell '%s', not '%s'; refusing to start",
		          owner, app->cfg.cell);
		fprintf(stderr, PROG ": DP_DATABASE_URL belongs to cell '%s', not '%s'\n", owner, app->cfg.cell);
		ret = SVC_EXIT_USAGE;
		goto out;
	case DP_REGION_UNCLAIMED:
		if (app->cfg.cell)
			log_error(NULL, "the database has not been migrated for cell '%s' of region '%s'; run '" PROG
			                " migrate'", app->cfg.cell, app->cfg.region);
		else
			log_error(NULL, "the regional database has not been migrated for region '%s'; run '" PROG
			                " migrate'", app->cfg.region);
		goto out;
	case DP_REGION_UNKNOWN:
		log_warn(NULL, "regional database unreachable at start; serving what needs no database, "
		               "and events once the database is reached and found to be this region's");
		break;
	}
	/* The cached configuration is in use before the first connection is
	 * accepted; the control plane is only ever asked by the pull thread. */
	if (!(app->snaps = dp_snaps_new()) || !(app->pull = dp_pull_new(app)) ||
	    !(app->limits = dp_limits_new()) || !(app->ingest = dp_ingest_new(app)) ||
	    !(app->exports = dp_exports_new(app->cfg.export_concurrency))) {
		log_error(NULL, "out of memory");
		goto out;
	}
	/* Before the server: handlers and ingest writers use it from the start. */
	if (!(app->feed = dp_feed_start(app->db, app->cfg.feed_waiters_max, app->cfg.feed_poll_ms, err, sizeof err))) {
		log_error(NULL, "%s", err);
		goto out;
	}
	/* Before the cache is loaded: installing a document wakes its waiters. */
	if (!(app->cell_wait = dp_cell_wait_start(WRONG_CELL_WAITERS_MAX, err, sizeof err))) {
		log_error(NULL, "%s", err);
		goto out;
	}
	/* Events' layout before the first request (partitions.h): the contract
	 * step when the cell's fleet allows it, the weeks ahead made. Retried
	 * by every retention pass when the database is not there yet. */
	if (region_ok) {
		int layout;
		int64_t weekly_from, now = timefmt_now_us();
		if (dp_partitions_prepare(app, now, now, &layout, &weekly_from) != 0)
			log_warn(NULL, "events' partitions not prepared at start; the retention task retries");
	}
	dp_pull_load_cache(app->pull);
	srv = http_server_start(&o, err, sizeof err);
	if (!srv) {
		log_error(NULL, "%s", err);
		goto out;
	}
	cfg_addr_format(&app->cfg.common.listen, addr, sizeof addr);
	log_write(LOG_INFO, NULL,
	          json_pack("{ss so ss si ss}", "region", app->cfg.region, "cell",
	                    app->cfg.cell ? json_string(app->cfg.cell) : json_null(), "listen", addr,
	                    "port", http_server_port(srv), "instance", app->instance),
	          "data plane listening");
	if (dp_pull_start(app->pull, err, sizeof err) != 0 ||
	    dp_ingest_start(app->ingest, err, sizeof err) != 0) {
		log_error(NULL, "%s", err);
		goto stop_server;
	}
	if (!(app->usage = dp_usage_start(app)) || !(app->retention = dp_retention_start(app)) ||
	    !(app->ratesync = dp_ratesync_start(app)) || !(app->idem_purge = dp_idem_purge_start(app))) {
		log_error(NULL, "cannot start the background threads");
		goto stop_server;
	}
	if (!(app->erasure = dp_erasure_start(app))) {
		log_error(NULL, "cannot start the erasure thread");
		goto stop_server;
	}
	int log_failed;
	if (!(app->log = dp_log_start(app, &log_failed)) && log_failed) {
		log_error(NULL, "cannot start the log appender");
		goto stop_server;
	}
	int streams_failed;
	if (!(app->streams = dp_streams_start(app, &streams_failed)) && streams_failed) {
		log_error(NULL, "cannot start the log streams' delivery");
		goto stop_server;
	}

	svc_wait_and_drain(srv, app->cfg.common.drain_timeout_ms);
	/* The server is stopped. The rate exchange withdraws this instance's
	 * demand, so the others take over its share at once; but the threads
	 * left must not wait on a stalled database, or stopping them would not
	 * end: whatever still waits on it after a moment is cut. */
	struct db_interrupt_timer *cut = db_pool_interrupt_after(app->db, STOP_DB_GRACE_MS);
	dp_ratesync_stop(app->ratesync);
	app->ratesync = NULL;
	db_interrupt_timer_cancel(cut);
	db_pool_interrupt(app->db);
	dp_pull_stop(app->pull);
	log_info(NULL, "stopped");
	ret = SVC_EXIT_OK;
	goto out;
stop_server:
	/* Started, then failed: the server may already hold requests, which
	 * use the ingest queue freed below. */
	http_server_drain(srv, (unsigned)app->cfg.common.drain_timeout_ms);
out:
	/* The server's threads are the readers: they are gone before the
	 * snapshots are freed. The writers resume requests of the server:
	 * they stop first. */
	dp_ratesync_stop(app->ratesync);
	dp_idem_purge_stop(app->idem_purge);
	dp_erasure_stop(app->erasure);
	dp_retention_stop(app->retention);
	dp_usage_stop(app->usage);
	dp_ingest_free(app->ingest);
	http_server_free(srv);
	dp_streams_stop(app->streams); /* after the writers, which touch it, and the server's /metrics */
	dp_log_stop(app->log); /* after the writers, which touch it, and the server's /metrics */
	dp_feed_stop(app->feed); /* after the server and the writers, which use it */
	dp_cell_wait_stop(app->cell_wait); /* after the server, whose requests it holds */
	dp_exports_free(app->exports);
	dp_limits_free(app->limits);
	dp_pull_free(app->pull);
	dp_snaps_free(app->snaps);
	trust_store_free(app->trust);
	db_pool_free(app->db);
	dp_region_guard_free(app->region);
	return ret;
}

int main(int argc, char **argv)
{
	struct dp_app app = { 0 };
	const char *cmd = argc > 1 ? argv[1] : "serve";

	http_signals_block();
	if (!strcmp(cmd, "help") || svc_wants_help(argc, argv)) {
		usage(stdout);
		return SVC_EXIT_OK;
	}
	if (!strcmp(cmd, "routes") && argc == 2)
		return cmd_routes();
	if (argc == 2 && (!strcmp(cmd, "log-jwks") || !strcmp(cmd, "log-stage-key") || !strcmp(cmd, "log-rotate-key"))) {
		log_init(PROG, LOG_WARN);
		return cmd_log_keys(cmd);
	}
	if (argc == 2 && !strcmp(cmd, "stream-key")) {
		log_init(PROG, LOG_WARN);
		return cmd_stream_key();
	}
	if (argc > 2 || (strcmp(cmd, "serve") && strcmp(cmd, "migrate"))) {
		usage(stderr);
		return SVC_EXIT_USAGE;
	}
	svc_load_config(PROG, dp_vars, &app.cfg);
	if (!name_valid_region(app.cfg.region)) {
		fprintf(stderr, PROG ": invalid configuration: DP_REGION: '%s' is not a region name "
		                "([a-z][a-z0-9-]*, at most 32 characters)\n", app.cfg.region);
		return SVC_EXIT_USAGE;
	}
	/* migrate records it in the database too. */
	if (app.cfg.cell && !name_valid_cell(app.cfg.cell))
		return usage_error("DP_CELL", "not a cell name ([a-z][a-z0-9-]{1,62})");
	if (strncmp(app.cfg.control_plane_url, "http://", 7) && strncmp(app.cfg.control_plane_url, "https://", 8)) {
		fprintf(stderr, PROG ": invalid configuration: DP_CONTROL_PLANE_URL: must start with http:// or https://\n");
		return SVC_EXIT_USAGE;
	}
	log_init(PROG, (enum log_level)app.cfg.common.log_level);
	log_set_task("main"); /* start-up, signals, drain and stop */
	log_set_repeat_interval(app.cfg.common.log_repeat_ms);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, PROG ": cannot initialize libcurl\n");
		return SVC_EXIT_FAILURE;
	}
	int ret = !strcmp(cmd, "migrate") ? cmd_migrate(&app) : cmd_serve(&app);
	curl_global_cleanup();
	return ret;
}
