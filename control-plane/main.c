/* control-plane: the global service. Owns tenants, users, keys, plans,
 * billing and the region catalog, and issues each region's signed config.
 *
 *   control-plane [serve]   run the HTTP service
 *   control-plane migrate   apply pending migrations, then exit
 *   control-plane --help    print usage and the configuration table */
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_keys.h"
#include "apidoc.h"
#include "audit_log.h"
#include "auth.h"
#include "billing.h"
#include "cells.h"
#include "config_doc.h"
#include "doc_worker.h"
#include "cp_app.h"
#include "deadline.h"
#include "cpdb.h"
#include "erasures.h"
#include "http.h"
#include "log.h"
#include "login.h"
#include "login_guard.h"
#include "longpoll.h"
#include "migrate.h"
#include "moves.h"
#include "region_config.h"
#include "regions.h"
#include "streams.h"
#include "secret.h"
#include "keyring.h"
#include "signing_keys.h"
#include "svc.h"
#include "tenants.h"
#include "users.h"

#define PROG "control-plane"

#define O(f) offsetof(struct cp_config, f)
static const struct cfg_var cp_vars[] = {
	SVC_COMMON_VARS("CP_", struct cp_config, common, "127.0.0.1:8080", "1024"),
	{ "CP_DATABASE_URL", CFG_SECRET, NULL, 0, O(database_url), 0, 0, NULL,
	  "PostgreSQL connection string of the control-plane database (required by all but jwks and stage-key)." },
	{ "CP_MIGRATIONS_DIR", CFG_STR, NULL, 0, O(migrations_dir), 0, 0, NULL,
	  "Directory of the control-plane migrations (default: the one shipped with the binary)." },
	{ "CP_ADMIN_TOKEN", CFG_SECRET, NULL, 0, O(admin_token), 0, 0, NULL,
	  "Bootstrap platform-admin bearer token (at least 32 characters); unset disables it." },
	{ "CP_SECRETS_KEY", CFG_SECRET, NULL, 0, O(secrets_key), 0, 0, NULL,
	  "Required to serve. 64 hex characters (openssl rand -hex 32): seals secrets kept for idempotent replays." },
	{ "CP_REGIONS_FILE", CFG_STR, NULL, 0, O(regions_file), 0, 0, NULL,
	  "Region catalog seeded at first start (default: regions.conf shipped with the binary)." },
	{ "CP_SESSION_TTL", CFG_DURATION, "12h", 0, O(session_ttl_ms), 60000, 2592000000L, NULL,
	  "Lifetime of a login session." },
	{ "CP_SCRYPT_LOG2N", CFG_INT, "15", 0, O(scrypt_log2n), 10, 20, NULL,
	  "Password hashing cost: scrypt N = 2^value (r=8, p=1; 15 uses 32 MiB per hash)." },
	{ "CP_LOGIN_MAX_FAILURES", CFG_INT, "5", 0, O(login_max_failures), 1, 100, NULL,
	  "Failed logins from one source on one account before that source waits there: 1 s, doubling per failure, at most CP_LOGIN_LOCKOUT_MAX." },
	{ "CP_LOGIN_LOCKOUT_MAX", CFG_DURATION, "15m", 0, O(login_lockout_max_ms), 1000, 86400000, NULL,
	  "Longest wait of a source after failed logins on one account (the owner can still log in from elsewhere)." },
	{ "CP_LOGIN_ACCOUNT_FAILURES", CFG_INT, "100", 0, O(login_account_max_failures), 1, 1000000, NULL,
	  "Failed logins on one account from all sources (within CP_LOGIN_LOCKOUT_MAX) past which each failure holds that account for 1 s." },
	{ "CP_LOGIN_CONCURRENCY", CFG_INT, "2", 0, O(login_concurrency), 1, 256, NULL,
	  "Password checks running at once; further logins get 503 login_busy with Retry-After." },
	{ "CP_LOGIN_PER_SOURCE_RATE", CFG_INT, "10", 0, O(login_per_source_rate), 1, 1000000, NULL,
	  "Login attempts per minute from one source address (an IPv6 /64); beyond, 429 with Retry-After." },
	{ "CP_TRUSTED_PROXIES", CFG_STR, NULL, 0, O(trusted_proxies), 0, 0, NULL,
	  "Addresses or prefixes (a.b.c.d[/n], x:y::z[/n]; at most 32, space- or comma-separated) of the proxies in front of the control plane (its TLS edge, an Ingress): a request from one of them comes from the last address of its X-Forwarded-For, for what is kept per source (logins). Unset: the TCP peer is the source." },
	{ "CP_LOGIN_PER_SOURCE_BURST", CFG_INT, "10", 0, O(login_per_source_burst), 1, 1000000, NULL,
	  "Login attempts one source address may make at once before CP_LOGIN_PER_SOURCE_RATE applies." },
	{ "CP_SIGNING_KEK", CFG_SECRET, NULL, 0, O(signing_kek), 0, 0, NULL,
	  "64 hex characters (openssl rand -hex 32), the same for every replica: keeps the signing keys in the database, sealed with it (any number of replicas sign with one key). Unset: CP_SIGNING_KEYS_DIR." },
	{ "CP_SIGNING_KEK_PREVIOUS", CFG_SECRET, NULL, 0, O(signing_kek_prev), 0, 0, NULL,
	  "Only while the keys move to a new CP_SIGNING_KEK: the one they are sealed with now (64 hex characters). Replicas open keys sealed with either; reseal-keys seals them all under CP_SIGNING_KEK; then unset it." },
	{ "CP_SIGNING_KEYS_DIR", CFG_STR, NULL, 0, O(signing_keys_dir), 0, 0, NULL,
	  "Without CP_SIGNING_KEK: directory of the ES256 signing keys of a single control-plane host (created with a first key if empty). With it: a ring imported into the database at the first start. Neither: no regional documents are issued." },
	{ "CP_CONFIG_LIFETIME", CFG_DURATION, "7d", 0, O(doc_lifetime_ms), 60000, 31536000000L, NULL,
	  "Lifetime of a signed regional document; it is re-issued when half of it has passed." },
	{ "CP_CONFIG_FULL_EVERY", CFG_INT, "256", 0, O(full_every), 1, 1000000, NULL,
	  "Versions between two full documents of a cell; between them, data planes get deltas." },
	{ "CP_KEY_OVERLAP", CFG_DURATION, "8d", 0, O(key_overlap_ms), 0, 31536000000L, NULL,
	  "How long a retired signing key stays in the JWK set (keep it above CP_CONFIG_LIFETIME)." },
	{ "CP_FLEET_SILENT_AFTER", CFG_DURATION, "60s", 0, O(fleet_silent_after_ms), 1000, 86400000, NULL,
	  "A data plane that has not reported for this long is marked silent in the fleet view." },
	{ "CP_MOVE_ERASE_AFTER", CFG_DURATION, "7d", 0, O(move_erase_after_ms), 0, 31536000000L, NULL,
	  "Grace period after a tenant move before the source cell's copy is erased, unless the move names its own (erase_after_seconds)." },
	{ "CP_MOVE_LEASE", CFG_DURATION, "30s", 0, O(move_lease_ms), 1000, 3600000, NULL,
	  "How long a mover holds a move it claimed or reported on; after that another mover may take it." },
	{ "CP_MOVE_LINGER", CFG_DURATION, "10s", 0, O(move_linger_ms), 0, 3600000, NULL,
	  "After a move between cells, how long the source cell's document still lists the tenant, so that it serves reads while the cell router may still send them there (0: none)." },
	{ "CP_MOVE_CREDENTIAL_TTL", CFG_DURATION, "15m", 0, O(move_credential_ttl_ms), 60000, 86400000, NULL,
	  "Lifetime of a move credential (the token the cells of a move verify); a mover claims again for a new one." },
	CFG_END
};
#undef O

static enum http_result handle_readyz(struct http_req *req)
{
	struct cp_app *app = http_req_app(req);
	if (db_ping(app->db) != DB_OK) {
		http_add_header(req, "Retry-After", "1");
		return http_reply_problem(req, PROB_UNAVAILABLE, "The control-plane database is unreachable.");
	}
	return http_reply_json(req, 200, json_pack("{ss}", "status", "ready"));
}

/* The API reference this binary was built with (common/apidoc.h). */
static enum http_result handle_openapi(struct http_req *req)
{
	size_t len;
	const unsigned char *doc = apidoc_yaml(&len);
	return http_reply_raw(req, 200, APIDOC_CONTENT_TYPE, doc, len);
}

#define BODY (16 * 1024)
#define PUB CP_AUTH_PUBLIC
#define USR CP_AUTH_USER
#define ADM CP_AUTH_ADMIN
#define REG CP_AUTH_REGION
#define CEL CP_AUTH_CELL
/* The query parameters each route reads (route.h): any other is refused. */
static const char *const q_page[] = { "limit", "cursor", NULL };
static const char *const q_tenants[] = { "region", "status", "limit", "cursor", NULL };
static const char *const q_audit[] = { "tenant_id", "limit", "cursor", NULL };
static const char *const q_wait[] = { "wait", NULL };
static const char *const q_cell_doc[] = { "wait", "since", "full", NULL };
static const char *const q_lookup[] = { "tenant", NULL };
static const char *const q_usage[] = { "period", NULL };

static const struct http_route cp_routes[] = {
	{ "GET", "/healthz", http_handle_healthz, 0, PUB, NULL },
	{ "GET", "/readyz", handle_readyz, 0, PUB, NULL },
	{ "GET", "/metrics", http_handle_metrics, 0, PUB, NULL },
	{ "GET", "/openapi.yaml", handle_openapi, 0, PUB, NULL },
	{ "POST", "/v1/auth/login", cp_auth_login, 4096, PUB, NULL },
	{ "POST", "/v1/auth/logout", cp_auth_logout, BODY, USR, NULL },
	{ "GET", "/.well-known/jwks.json", cp_jwks, 0, PUB, NULL },
	{ "GET", "/v1/signing-keys", cp_keyset, 0, PUB, NULL },
	{ "GET", "/v1/regions", cp_regions_list, 0, PUB, NULL },
	{ "GET", "/v1/regions/{region}/config", cp_region_config, 0, REG, q_wait },
	{ "POST", "/v1/regions/{region}/status", cp_region_status, 4096, REG, NULL },
	{ "POST", "/v1/regions/{region}/erasures", cp_region_erasure_report, 4096, REG, NULL },
	{ "GET", "/v1/regions/{region}/fleet", cp_region_fleet, 0, ADM, NULL },
	{ "POST", "/v1/regions/{name}/credentials", cp_region_credentials_create, BODY, ADM, NULL },
	{ "POST", "/v1/regions", cp_regions_create, BODY, ADM, NULL },
	{ "GET", "/v1/regions/{name}", cp_regions_get, 0, PUB, NULL },
	{ "PATCH", "/v1/regions/{name}", cp_regions_update, BODY, ADM, NULL },
	{ "GET", "/v1/lookup", cp_lookup, 0, PUB, q_lookup },
	{ "POST", "/v1/tenants", cp_tenants_create, BODY, ADM, NULL },
	{ "GET", "/v1/tenants", cp_tenants_list, 0, USR, q_tenants },
	{ "GET", "/v1/tenants/{id}", cp_tenants_get, 0, USR, NULL },
	{ "PATCH", "/v1/tenants/{id}", cp_tenants_update, BODY, USR, NULL },
	{ "DELETE", "/v1/tenants/{id}", cp_tenants_delete, 0, ADM, NULL },
	{ "POST", "/v1/tenants/{id}/users", cp_users_create, BODY, USR, NULL },
	{ "GET", "/v1/tenants/{id}/users", cp_users_list, 0, USR, q_page },
	{ "GET", "/v1/tenants/{id}/users/{user_id}", cp_users_get, 0, USR, NULL },
	{ "PATCH", "/v1/tenants/{id}/users/{user_id}", cp_users_update, BODY, USR, NULL },
	{ "DELETE", "/v1/tenants/{id}/users/{user_id}", cp_users_delete, 0, USR, NULL },
	{ "POST", "/v1/tenants/{id}/api-keys", cp_api_keys_create, BODY, USR, NULL },
	{ "GET", "/v1/tenants/{id}/api-keys", cp_api_keys_list, 0, USR, q_page },
	{ "GET", "/v1/tenants/{id}/api-keys/{key_id}", cp_api_keys_get, 0, USR, NULL },
	{ "DELETE", "/v1/tenants/{id}/api-keys/{key_id}", cp_api_keys_delete, 0, USR, NULL },
	{ "GET", "/v1/audit-log", cp_audit_list, 0, USR, q_audit },
	{ "GET", "/v1/plans", cp_plans_list, 0, PUB, NULL },
	{ "POST", "/v1/plans", cp_plans_create, BODY, ADM, NULL },
	{ "GET", "/v1/plans/{id}", cp_plans_get, 0, PUB, NULL },
	{ "PATCH", "/v1/plans/{id}", cp_plans_update, BODY, ADM, NULL },
	{ "POST", "/v1/usage", cp_usage_ingest, 512 * 1024, REG, NULL },
	{ "GET", "/v1/tenants/{id}/usage", cp_tenant_usage, 0, USR, q_usage },
	{ "GET", "/v1/tenants/{id}/invoices", cp_tenant_invoices, 0, USR, NULL },
	{ "POST", "/v1/billing/periods/{period}/close", cp_period_close, BODY, ADM, NULL },
	{ "GET", "/v1/invoices/{id}", cp_invoice_get, 0, USR, NULL },
	{ "POST", "/v1/invoices/{id}/finalize", cp_invoice_finalize, BODY, ADM, NULL },
	{ "POST", "/v1/invoices/{id}/void", cp_invoice_void, BODY, ADM, NULL },
	{ "POST", "/v1/admins", cp_admins_create, BODY, ADM, NULL },
	{ "GET", "/v1/admins", cp_admins_list, 0, ADM, q_page },
	{ "GET", "/v1/admins/{id}", cp_admins_get, 0, ADM, NULL },
	{ "DELETE", "/v1/admins/{id}", cp_admins_delete, 0, ADM, NULL },
	{ "GET", "/v1/regions/{region}/cells", cp_cells_list, 0, ADM, NULL },
	{ "POST", "/v1/regions/{region}/cells", cp_cells_create, BODY, ADM, NULL },
	{ "GET", "/v1/regions/{region}/cells/{cell}", cp_cells_get, 0, ADM, NULL },
	{ "PATCH", "/v1/regions/{region}/cells/{cell}", cp_cells_update, BODY, ADM, NULL },
	{ "GET", "/v1/regions/{region}/routes", cp_region_routes, 0, REG, q_wait },
	{ "POST", "/v1/cells/{cell}/credentials", cp_cell_credentials_create, BODY, ADM, NULL },
	{ "GET", "/v1/cells/{cell}/config", cp_cell_config, 0, CEL, q_cell_doc },
	{ "POST", "/v1/tenants/{id}/moves", cp_moves_create, BODY, USR, NULL },
	{ "GET", "/v1/tenants/{id}/moves", cp_moves_list, 0, USR, NULL },
	{ "GET", "/v1/tenants/{id}/moves/{move}", cp_moves_get, 0, USR, NULL },
	{ "POST", "/v1/tenants/{id}/moves/{move}/approve", cp_moves_approve, BODY, ADM, NULL },
	{ "POST", "/v1/tenants/{id}/moves/{move}/abort", cp_moves_abort, BODY, ADM, NULL },
	{ "POST", "/v1/cells/{cell}/drain", cp_cell_drain, BODY, ADM, NULL },
	{ "GET", "/v1/cells/{cell}/drain", cp_cell_drain_get, 0, ADM, NULL },
	{ "POST", "/v1/regions/{region}/moves/claim", cp_moves_claim, BODY, REG, NULL },
	{ "POST", "/v1/moves/{move}/progress", cp_moves_progress, BODY, REG, NULL },
	{ "POST", "/v1/moves/{move}/complete", cp_moves_complete, BODY, REG, NULL },
	{ "POST", "/v1/moves/{move}/erased", cp_moves_erased, BODY, REG, NULL },
	{ "POST", "/v1/tenants/{id}/streams", cp_streams_create, BODY, USR, NULL },
	{ "GET", "/v1/tenants/{id}/streams", cp_streams_list, 0, USR, NULL },
	{ "GET", "/v1/tenants/{id}/streams/{stream}", cp_streams_get, 0, USR, NULL },
	{ "PATCH", "/v1/tenants/{id}/streams/{stream}", cp_streams_update, BODY, USR, NULL },
	{ "DELETE", "/v1/tenants/{id}/streams/{stream}", cp_streams_delete, 0, USR, NULL },
	{ "POST", "/v1/tenants/{id}/streams/{stream}/pause", cp_streams_pause, BODY, USR, NULL },
	{ "POST", "/v1/tenants/{id}/streams/{stream}/resume", cp_streams_resume, BODY, USR, NULL },
	{ "POST", "/v1/tenants/{id}/streams/{stream}/replay", cp_streams_replay, BODY, USR, NULL },
	{ "POST", "/v1/regions/{region}/streams/status", cp_streams_report, 512 * 1024, REG, NULL },
};
#undef PUB
#undef USR
#undef ADM
#undef REG
#undef CEL

static void cp_metrics(FILE *out, void *vapp)
{
	struct cp_app *app = vapp;
	svc_db_metrics(out, app->db, PROG);
	lp_metrics(app->lp, out);
	login_guard_metrics(app->login, out);
	doc_cache_metrics(app->docs, out);
	cp_moves_metrics(app, out);
	cp_signing_metrics(app, out);
}

static void usage(FILE *out)
{
	cfg_print_help(out,
	               "Usage: " PROG " [serve|migrate|routes|jwks|signing-keys|stage-key|rotate-key|retire-key KID|reseal-keys|--help]\n\n"
	               "  serve         run the HTTP API (the default)\n"
	               "  migrate       apply pending migrations to CP_DATABASE_URL and exit\n"
	               "  routes        print the route table (method, path, auth) and exit\n"
	               "  jwks          print the public JWK set of the signing keys (a trust bundle)\n"
	               "  signing-keys  list the signing keys with their states and times (CP_SIGNING_KEK)\n"
	               "  stage-key     add a next signing key: published in the JWK set, not yet signing\n"
	               "  rotate-key    make the staged (or a new) key sign, keep the old one published\n"
	               "                for CP_KEY_OVERLAP, and raise every region's config version so\n"
	               "                documents are re-signed\n"
	               "  retire-key KID  stop publishing a staged or previous key (CP_SIGNING_KEK)\n"
	               "  reseal-keys   seal every key again under a new CP_SIGNING_KEK, from the one in\n"
	               "                CP_SIGNING_KEK_PREVIOUS (the keys, the key set and documents stay)\n"
	               "With CP_SIGNING_KEK the keys are the database's: each command is one change for\n"
	               "every replica, recorded in the audit log as done by $USER@host.",
	               cp_vars);
}

static int cmd_routes(void)
{
	static const char *const auth[] = { "public", "user", "admin", "region", "cell" };
	for (size_t i = 0; i < sizeof cp_routes / sizeof cp_routes[0]; i++)
		printf("%s %s %s\n", cp_routes[i].method, cp_routes[i].pattern, auth[cp_routes[i].auth]);
	return SVC_EXIT_OK;
}

/* Keys and tokens from the configuration, checked once at start. */
static int load_secrets(struct cp_app *app)
{
	if (!app->cfg.secrets_key) {
		fprintf(stderr, PROG ": invalid configuration: CP_SECRETS_KEY: required to serve "
		                "(generate one with: openssl rand -hex 32)\n");
		return -1;
	}
	if (strlen(app->cfg.secrets_key) != 64 ||
	    secret_unhex(app->cfg.secrets_key, app->secrets_key, 32) != 0) {
		fprintf(stderr, PROG ": invalid configuration: CP_SECRETS_KEY: must be 64 hex characters "
		                "(generate one with: openssl rand -hex 32)\n");
		return -1;
	}
	char why[200];
	if (app->cfg.signing_kek && cp_signing_kek_check(app->cfg.signing_kek, why, sizeof why) != 0) {
		fprintf(stderr, PROG ": invalid configuration: %s\n", why);
		return -1;
	}
	if (app->cfg.signing_kek_prev &&
	    cp_signing_kek_prev_check(app->cfg.signing_kek, app->cfg.signing_kek_prev, why, sizeof why) != 0) {
		fprintf(stderr, PROG ": invalid configuration: %s\n", why);
		return -1;
	}
	if (app->cfg.admin_token) {
		if (strlen(app->cfg.admin_token) < 32) {
			fprintf(stderr, PROG ": invalid configuration: CP_ADMIN_TOKEN: must have at least 32 characters\n");
			return -1;
		}
		secret_sha256(app->cfg.admin_token, strlen(app->cfg.admin_token), app->admin_token_sha256);
		app->have_admin_token = 1;
	}
	return 0;
}

static int need_keys_dir(struct cp_app *app)
{
	if (!app->cfg.signing_keys_dir) {
		fprintf(stderr, PROG ": invalid configuration: CP_SIGNING_KEYS_DIR or CP_SIGNING_KEK: required for this command\n");
		return -1;
	}
	return 0;
}

/* A pool of one connection for a command, or NULL (said on stderr). */
static struct db_pool *command_db(struct cp_app *app)
{
	char err[512];
	if (!app->cfg.database_url) {
		fprintf(stderr, PROG ": invalid configuration: CP_DATABASE_URL: required with CP_SIGNING_KEK\n");
		return NULL;
	}
	struct db_pool *db = db_pool_new(app->cfg.database_url, 1, 5000, err, sizeof err);
	if (!db)
		fprintf(stderr, PROG ": CP_DATABASE_URL: %s\n", err);
	return db;
}

static int cmd_jwks(struct cp_app *app)
{
	char err[512];
	json_t *j = NULL;
	if (app->cfg.signing_kek) {
		struct db_pool *db = command_db(app);
		if (!db)
			return SVC_EXIT_USAGE;
		j = cp_signing_db_jwks(db, app->cfg.key_overlap_ms / 1000, err, sizeof err);
		db_pool_free(db);
	} else {
		if (need_keys_dir(app))
			return SVC_EXIT_USAGE;
		struct keyring *kr = keyring_open(app->cfg.signing_keys_dir, app->cfg.key_overlap_ms / 1000, err, sizeof err);
		if (kr)
			j = keyring_jwks(kr);
		keyring_free(kr);
	}
	if (!j) {
		fprintf(stderr, PROG ": %s\n", err);
		return SVC_EXIT_FAILURE;
	}
	json_dumpf(j, stdout, JSON_INDENT(2));
	putchar('\n');
	json_decref(j);
	return SVC_EXIT_OK;
}

static enum db_status bump_all_tx(struct db_conn *c, void *ctx)
{
	(void)ctx;
	return cpdb_regions_bump_all(c);
}

enum key_cmd { KEY_STAGE, KEY_ROTATE, KEY_RETIRE, KEY_LIST, KEY_RESEAL };

/* The database's keys: one transaction each, audited. */
static int cmd_db_keys(struct cp_app *app, enum key_cmd what, const char *arg)
{
	char err[512], kid[64] = "", actor[300];
	cp_signing_actor(actor, sizeof actor);
	struct db_pool *db = command_db(app);
	if (!db)
		return SVC_EXIT_USAGE;
	int rc = 0;
	json_t *list = NULL;
	struct cp_reseal_result rs;
	switch (what) {
	case KEY_RESEAL:
		rc = cp_signing_reseal(db, app->cfg.signing_kek, app->cfg.signing_kek_prev, actor, &rs, err, sizeof err);
		break;
	case KEY_STAGE:
		rc = cp_signing_stage(db, app->cfg.signing_kek, actor, kid, err, sizeof err);
		break;
	case KEY_ROTATE:
		rc = cp_signing_rotate(db, app->cfg.signing_kek, app->cfg.key_overlap_ms / 1000, actor, kid, err, sizeof err);
		break;
	case KEY_RETIRE:
		rc = cp_signing_retire(db, arg, actor, err, sizeof err);
		break;
	case KEY_LIST:
		rc = (list = cp_signing_db_list(db, err, sizeof err)) ? 0 : -1;
		break;
	}
	db_pool_free(db);
	if (rc != 0) {
		fprintf(stderr, PROG ": %s\n", err);
		return SVC_EXIT_FAILURE;
	}
	if (what == KEY_STAGE)
		printf("staged signing key %s: every replica publishes it within a second; rotate-key once the data "
		       "planes trust it\n", kid);
	else if (what == KEY_ROTATE)
		printf("signing key %s is current on every replica; documents are re-signed\n", kid);
	else if (what == KEY_RETIRE)
		printf("signing key %s is retired: no longer published\n", arg);
	else if (what == KEY_RESEAL)
		printf("%d signing key(s) resealed from key-encryption key %s to %s (%d already under it, %d retired "
		       "left under another); once every replica runs with CP_SIGNING_KEK alone, CP_SIGNING_KEK_PREVIOUS "
		       "can be destroyed\n", rs.resealed, rs.prev_id, rs.kek_id, rs.already, rs.left);
	else {
		json_dumpf(list, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(list);
	}
	return SVC_EXIT_OK;
}

static int cmd_keys(struct cp_app *app, enum key_cmd what, const char *arg)
{
	char err[512], kid[64];
	if (app->cfg.signing_kek)
		return cmd_db_keys(app, what, arg);
	if (what == KEY_RETIRE || what == KEY_LIST || what == KEY_RESEAL) {
		fprintf(stderr, PROG ": invalid configuration: CP_SIGNING_KEK: required for this command (the keys of "
		                "CP_SIGNING_KEYS_DIR retire by themselves after CP_KEY_OVERLAP)\n");
		return SVC_EXIT_USAGE;
	}
	int rotate = what == KEY_ROTATE;
	if (need_keys_dir(app))
		return SVC_EXIT_USAGE;
	if ((rotate ? keyring_rotate : keyring_stage)(app->cfg.signing_keys_dir, kid, err, sizeof err) != 0) {
		fprintf(stderr, PROG ": %s\n", err);
		return SVC_EXIT_FAILURE;
	}
	if (!rotate) {
		printf("staged signing key %s; publish it to the data planes' trust bundles, then rotate-key\n", kid);
		return SVC_EXIT_OK;
	}
	printf("signing key %s is current\n", kid);
	if (!app->cfg.database_url) {
		fprintf(stderr, PROG ": invalid configuration: CP_DATABASE_URL: required but not set (see " PROG " --help)\n");
		return SVC_EXIT_USAGE;
	}
	/* New documents for every region, signed with the new key. */
	app->db = db_pool_new(app->cfg.database_url, 1, 5000, err, sizeof err);
	enum db_status st = app->db ? db_tx(app->db, DB_READ_COMMITTED, bump_all_tx, NULL) : DB_ERROR;
	db_pool_free(app->db);
	if (st != DB_OK) {
		fprintf(stderr, PROG ": the key rotated, but raising the config versions failed (%s); "
		                "documents are re-signed at the next change\n", db_status_str(st));
		return SVC_EXIT_FAILURE;
	}
	return SVC_EXIT_OK;
}

static enum db_status reissue_tx(struct db_conn *c, void *ctx)
{
	struct cp_app *app = ctx;
	struct cpdb_region_name *r;
	size_t n;
	/* Movers end lingers on their claims; this ends them without one. */
	enum db_status st = cpdb_move_lingers_end(c);
	if (st == DB_OK)
		st = cpdb_docs_expiring(c, app->cfg.doc_lifetime_ms / 2000, &r, &n);
	if (st != DB_OK)
		return st;
	for (size_t i = 0; i < n && st == DB_OK; i++) {
		log_info(NULL, "region %s: its document passed half its lifetime; issuing a new one",
		         r[i].name);
		st = cpdb_region_bump(c, r[i].name);
	}
	free(r);
	return st;
}

/* Background upkeep: removes idempotency records older than a day, and
 * raises the version of regions whose document is half-way to expiry or
 * whose moves' lingers have ended. */
struct upkeep {
	struct cp_app *app;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	int stop;
};

static enum db_status purge_tx(struct db_conn *c, void *ctx)
{
	long removed = 0;
	enum db_status st = cpdb_idem_purge(c, &removed);
	if (st == DB_OK && removed)
		log_info(NULL, "removed %ld idempotency record(s) older than a day", removed);
	if (st == DB_OK && (st = cpdb_login_failures_purge(c, &removed)) == DB_OK && removed)
		log_info(NULL, "forgot %ld source(s) of failed logins idle for a day", removed);
	(void)ctx;
	return st;
}

static void *upkeep_main(void *arg)
{
	struct upkeep *u = arg;
	log_set_task("upkeep");
	pthread_mutex_lock(&u->lock);
	while (!u->stop) {
		pthread_mutex_unlock(&u->lock);
		if (db_tx(u->app->db, DB_READ_COMMITTED, purge_tx, NULL) != DB_OK)
			log_warn(NULL, "idempotency purge failed; will retry");
		if (db_tx(u->app->db, DB_READ_COMMITTED, reissue_tx, u->app) != DB_OK)
			log_warn(NULL, "re-issuing expiring documents failed; will retry");
		cp_signing_age(u->app);
		pthread_mutex_lock(&u->lock);
		/* Often enough that a document is re-issued well before it
		 * expires, whatever CP_CONFIG_LIFETIME is: a re-issue is due at half
		 * the lifetime and is at most an eighth of it late. */
		int64_t every_ms = u->app->cfg.doc_lifetime_ms / 8;
		if (every_ms > 60000)
			every_ms = 60000;
		if (every_ms < 1000)
			every_ms = 1000;
		struct timespec until;
		until = deadline_in(CLOCK_REALTIME, every_ms);
		while (!u->stop && pthread_cond_timedwait(&u->wake, &u->lock, &until) == 0)
			;
	}
	pthread_mutex_unlock(&u->lock);
	return NULL;
}

static int cmd_migrate(struct cp_app *app)
{
	char dir[4096], err[1024];
	int applied;

	if (app->cfg.migrations_dir)
		snprintf(dir, sizeof dir, "%s", app->cfg.migrations_dir);
	else
		svc_data_path("migrations/control-plane", dir, sizeof dir);
	if (migrate_run(app->cfg.database_url, dir, &applied, err, sizeof err) != 0) {
		log_error(NULL, "migrate: %s", err);
		fprintf(stderr, PROG ": migrate: %s\n", err);
		return SVC_EXIT_FAILURE;
	}
	printf("%d migration(s) applied from %s\n", applied, dir);
	return SVC_EXIT_OK;
}

static int cmd_serve(struct cp_app *app)
{
	char err[512], addr[96];
	struct http_server_opts o = {
		.service = PROG,
		.routes = cp_routes,
		.nroutes = sizeof cp_routes / sizeof cp_routes[0],
		.authenticate = cp_authenticate,
		.on_drain = lp_drain,
		.metrics_extra = cp_metrics,
		.app = app,
	};
	svc_http_opts(&app->cfg.common, &o);
	struct upkeep up = { .app = app, .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER };
	pthread_t upkeep_thread;
	char regions[4096];

	if (fwd_parse(app->cfg.trusted_proxies, &app->proxies, err, sizeof err) != 0) {
		fprintf(stderr, PROG ": CP_TRUSTED_PROXIES: %s\n", err);
		return SVC_EXIT_USAGE;
	}
	app->db = db_pool_new(app->cfg.database_url, (unsigned)app->cfg.common.db_pool_size,
	                      (unsigned)app->cfg.common.db_acquire_timeout_ms, err, sizeof err);
	if (!app->db) {
		fprintf(stderr, PROG ": CP_DATABASE_URL: %s\n", err);
		return SVC_EXIT_USAGE;
	}
	if (app->cfg.regions_file)
		snprintf(regions, sizeof regions, "%s", app->cfg.regions_file);
	else
		svc_data_path("regions.conf", regions, sizeof regions);
	/* Seeding needs the database; without it the service still starts and
	 * seeds nothing, which a later start with the database up fixes. */
	if (cp_seed_regions(app, regions) != 0)
		log_warn(NULL, "could not seed the region catalog from %s (database down or file invalid)",
		         regions);
	err[0] = '\0';
	int keys_failed = 0;
	if (app->cfg.signing_kek) {
		app->signing = cp_signing_open(app->db, app->cfg.signing_kek, app->cfg.signing_kek_prev,
		                               app->cfg.key_overlap_ms / 1000,
		                               app->cfg.signing_keys_dir, err, sizeof err);
		keys_failed = !app->signing;
	} else if (app->cfg.signing_keys_dir) {
		app->keys = keyring_open(app->cfg.signing_keys_dir, app->cfg.key_overlap_ms / 1000, err, sizeof err);
		keys_failed = !app->keys;
	} else {
		log_warn(NULL, "neither CP_SIGNING_KEK nor CP_SIGNING_KEYS_DIR is set: no regional documents will be issued");
	}
	/* A login holds a database connection through its password check (its
	 * delay and its account are decided in one transaction): as many
	 * checks as connections would leave none to the other routes. */
	if (app->cfg.login_concurrency >= app->cfg.common.db_pool_size)
		log_warn(NULL, "CP_LOGIN_CONCURRENCY (%ld) is not below CP_DB_POOL_SIZE (%ld): a flood of "
		         "logins can hold every database connection", app->cfg.login_concurrency,
		         app->cfg.common.db_pool_size);
	app->docs = doc_cache_new();
	app->login = login_guard_new(app->cfg.login_concurrency, app->cfg.login_per_source_rate,
	                             app->cfg.login_per_source_burst);
	if (cp_login_init(app) != 0)
		snprintf(err, sizeof err, "cannot hash passwords (CP_SCRYPT_LOG2N=%ld)", app->cfg.scrypt_log2n);
	if (keys_failed || !app->docs || !app->login ||
	    !app->login_dummy_hash[0] || !(app->lp = lp_start(app, err, sizeof err))) {
		log_error(NULL, "signing keys, logins or long polls: %s", err);
		fprintf(stderr, PROG ": %s\n", err);
		keyring_free(app->keys);
		cp_signing_free(app->signing);
		doc_cache_free(app->docs);
		login_guard_free(app->login);
		db_pool_free(app->db);
		return SVC_EXIT_FAILURE;
	}
	/* The worker builds the documents the polls wait for; a NOTIFY wakes it. */
	if (cp_signing_configured(app) && !(app->worker = doc_worker_start(app, err, sizeof err))) {
		log_error(NULL, "%s", err);
		lp_stop(app->lp);
		keyring_free(app->keys);
		cp_signing_free(app->signing);
		doc_cache_free(app->docs);
		login_guard_free(app->login);
		db_pool_free(app->db);
		return SVC_EXIT_FAILURE;
	}
	lp_set_hook(app->lp, doc_worker_kick, app->worker);
	struct http_server *srv = http_server_start(&o, err, sizeof err);
	if (!srv) {
		log_error(NULL, "%s", err);
		lp_set_hook(app->lp, NULL, NULL);
		doc_worker_stop(app->worker);
		lp_stop(app->lp);
		keyring_free(app->keys);
		cp_signing_free(app->signing);
		doc_cache_free(app->docs);
		login_guard_free(app->login);
		db_pool_free(app->db);
		return SVC_EXIT_FAILURE;
	}
	if (pthread_create(&upkeep_thread, NULL, upkeep_main, &up) != 0) {
		log_error(NULL, "cannot start the upkeep thread");
		http_server_free(srv);
		lp_set_hook(app->lp, NULL, NULL);
		doc_worker_stop(app->worker);
		db_pool_free(app->db);
		return SVC_EXIT_FAILURE;
	}
	cfg_addr_format(&app->cfg.common.listen, addr, sizeof addr);
	log_write(LOG_INFO, NULL, json_pack("{ss si}", "listen", addr, "port", http_server_port(srv)),
	          "control plane listening");

	svc_wait_and_drain(srv, app->cfg.common.drain_timeout_ms);
	pthread_mutex_lock(&up.lock);
	up.stop = 1;
	pthread_cond_signal(&up.wake);
	pthread_mutex_unlock(&up.lock);
	pthread_join(upkeep_thread, NULL);
	http_server_free(srv);
	lp_set_hook(app->lp, NULL, NULL);
	doc_worker_stop(app->worker);
	lp_stop(app->lp);
	keyring_free(app->keys);
	cp_signing_free(app->signing);
	doc_cache_free(app->docs);
	login_guard_free(app->login);
	db_pool_free(app->db);
	log_info(NULL, "stopped");
	return SVC_EXIT_OK;
}

int main(int argc, char **argv)
{
	struct cp_app app = { 0 };
	const char *cmd = argc > 1 ? argv[1] : "serve";

	http_signals_block();
	if (!strcmp(cmd, "help") || svc_wants_help(argc, argv)) {
		usage(stdout);
		return SVC_EXIT_OK;
	}
	if (!strcmp(cmd, "routes") && argc == 2)
		return cmd_routes();
	static const char *const cmds[] = { "serve",     "migrate",    "jwks",        "signing-keys",
		                            "stage-key", "rotate-key", "reseal-keys", NULL };
	int known = 0;
	for (int i = 0; cmds[i]; i++)
		known |= !strcmp(cmd, cmds[i]);
	int retire = !strcmp(cmd, "retire-key");
	if ((retire && argc != 3) || (!retire && (argc > 2 || !known))) {
		usage(stderr);
		return SVC_EXIT_USAGE;
	}
	svc_load_config(PROG, cp_vars, &app.cfg);
	log_init(PROG, (enum log_level)app.cfg.common.log_level);
	log_set_task("main"); /* start-up, signals, drain and stop */
	log_set_repeat_interval(app.cfg.common.log_repeat_ms);
	if (!strcmp(cmd, "jwks"))
		return cmd_jwks(&app);
	if (!strcmp(cmd, "stage-key"))
		return cmd_keys(&app, KEY_STAGE, NULL);
	if (!strcmp(cmd, "signing-keys"))
		return cmd_keys(&app, KEY_LIST, NULL);
	if (retire)
		return cmd_keys(&app, KEY_RETIRE, argv[2]);
	if (!app.cfg.database_url) {
		fprintf(stderr, PROG ": invalid configuration: CP_DATABASE_URL: required but not set (see " PROG " --help)\n");
		return SVC_EXIT_USAGE;
	}
	if (!strcmp(cmd, "migrate"))
		return cmd_migrate(&app);
	if (!strcmp(cmd, "rotate-key"))
		return cmd_keys(&app, KEY_ROTATE, NULL);
	if (!strcmp(cmd, "reseal-keys"))
		return cmd_keys(&app, KEY_RESEAL, NULL);
	if (load_secrets(&app) != 0)
		return SVC_EXIT_USAGE;
	return cmd_serve(&app);
}
