/* The control plane's internal contract: shared state, principals, the
 * mutation runner, and the handlers of each resource (one file each). */
#ifndef CP_H
#define CP_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "db.h"
#include "svc.h"
#include "http.h"

struct cp_config {
	struct svc_common_cfg common;
	const char *database_url;
	const char *migrations_dir;
	const char *admin_token;
	const char *secrets_key;
	const char *regions_file;
	int64_t session_ttl_ms;
	long scrypt_log2n;
	long login_max_failures;
	long login_concurrency;
	long login_per_source_rate;     /* attempts per minute */
	long login_per_source_burst;
	int64_t login_lockout_max_ms;
	long login_account_max_failures;
	const char *signing_keys_dir;
	int64_t doc_lifetime_ms;
	int64_t key_overlap_ms;
	int64_t fleet_silent_after_ms;
};

struct keyring;
struct lp;
struct doc_cache;
struct login_guard;

struct cp_app {
	struct cp_config cfg;
	struct db_pool *db;
	unsigned char secrets_key[32];   /* seals secrets kept for idempotent replays */
	unsigned char admin_token_sha256[32];
	int have_admin_token;
	struct keyring *keys;     /* signing keys (signing.h) */
	struct lp *lp;            /* parked long polls (longpoll.c) */
	struct doc_cache *docs;   /* signed documents by region (config_doc.c) */
	struct login_guard *login; /* login admission (login_guard.h) */
	/* A hash of no one's password, made at start: unknown accounts are
	 * checked against it, so they take as long as known ones. */
	char login_dummy_hash[160];
};

/* Route authentication levels (struct http_route.auth). */
enum { CP_AUTH_PUBLIC = 0, CP_AUTH_USER = 1, CP_AUTH_ADMIN = 2, CP_AUTH_REGION = 3 };

/* A region credential (CP_ROLE_REGION) reaches only its region's config
 * routes (CP_AUTH_REGION); admins reach those too. */
enum cp_role { CP_ROLE_ADMIN, CP_ROLE_OWNER, CP_ROLE_MEMBER, CP_ROLE_REGION };

/* Who is calling: set by the authenticate hook for every non-public route. */
struct cp_principal {
	enum cp_role role;
	int via_admin_token;
	char user_id[37];     /* "" for the bootstrap admin token */
	char tenant_id[37];   /* "" for platform admins */
	char region[33];      /* a region credential's region */
	char session[65];     /* hex SHA-256 of the session token, "" for the admin token */
	char scope[48];       /* idempotency scope: "admin-token" or "user:<id>" */
};

const struct cp_principal *cp_principal(struct http_req *req);
int cp_authenticate(struct http_req *req, int level);
/* Prepares logins (the dummy hash) before the service takes requests.
 * Returns 0, or -1 when hashing fails. */
int cp_login_init(struct cp_app *app) __attribute__((warn_unused_result));
extern const char *const cp_role_names[];

/* Tenant scoping. Admins pass; a tenant user passes for its own tenant
 * only. Another tenant's objects do not exist for it: 404, never 403.
 * With `write`, members get 403 on their own tenant.
 * Returns 0 to go on, -1 after replying. */
int cp_require_tenant(struct http_req *req, const char *tenant_id, int write);

/* ---- mutations: idempotency, audit and rollback in one transaction ---- */

struct cp_outcome {
	unsigned status;          /* success status; 0 when `problem` is set */
	json_t *body;             /* owned */
	char location[256];
	int sealed;               /* the body holds a secret: never store it in clear */
	int replayed;             /* the first answer to an earlier request, again */
	int problem;              /* a client error: reply with prob/detail */
	enum problem_code prob;
	json_t *prob_extra;       /* owned, may be NULL */
	char detail[400];
};

/* A transaction body. Runs the change, writes the audit record, raises
 * config versions, and fills `out`. It may run more than once. */
typedef enum db_status (*cp_apply_fn)(struct db_conn *c, struct http_req *req, void *ctx,
                                      struct cp_outcome *out);

/* Runs `apply` in one transaction with the request's Idempotency-Key (if
 * any): a replay with the same body returns the first response, another
 * body gets 422. Replies in every case; returns the handler's result. */
int cp_mutate(struct http_req *req, cp_apply_fn apply, void *ctx);
/* The same with a key the caller has read and hashed (idempotency.h): for
 * routes whose key is required, or whose "same request" is not the same
 * bytes. A NULL `k` or k->key runs without one. */
struct idem;
int cp_mutate_keyed(struct http_req *req, const struct idem *k, cp_apply_fn apply, void *ctx);

/* Records a client error in `out`; returns DB_ROLLBACK. */
enum db_status cp_fail(struct cp_outcome *out, enum problem_code code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Records success: `body` is stolen. Returns DB_OK. */
enum db_status cp_done(struct cp_outcome *out, unsigned status, json_t *body);

/* Appends to the audit log (before/after borrowed, may be NULL). */
enum db_status cp_audit(struct db_conn *c, struct http_req *req, const char *tenant_id,
                        const char *action, const char *object_type, const char *object_id,
                        json_t *before, json_t *after) __attribute__((warn_unused_result));

/* Runs a read-only body (statements in autocommit) and replies with `out`. */
int cp_read(struct http_req *req, cp_apply_fn fn, void *ctx);
/* Runs a body that writes without idempotency (login, logout). */
int cp_run(struct http_req *req, cp_apply_fn fn, void *ctx);
/* The same, SERIALIZABLE (retried on conflicts). */
int cp_run_serializable(struct http_req *req, cp_apply_fn fn, void *ctx);

/* Replies to a failed database call (503, 409, 500...). */
int cp_reply_db_error(struct http_req *req, enum db_status st);

/* Parses the body against `fields` into `dst`. Returns 0, or -1 after
 * replying 400/415. *obj is the parsed body (caller json_decref()s). */
int cp_parse_body(struct http_req *req, const struct jsonx_field *fields, void *dst,
                  uint64_t *present, json_t **obj) __attribute__((warn_unused_result));

/* Pagination: reads ?limit= and ?cursor=; replies 400 and returns -1 when
 * malformed. `have_cursor` tells whether a cursor was given. */
struct cp_page {
	int limit;
	int have_cursor;
	char ts[24];
	char id[65];
};
enum cp_cursor_kind { CP_CURSOR_UUID, CP_CURSOR_KEY_ID, CP_CURSOR_AUDIT };
int cp_parse_page(struct http_req *req, struct cp_page *pg, enum cp_cursor_kind kind)
	__attribute__((warn_unused_result));
/* Wraps `items` (stolen) as {"items": [...], "next_cursor": ...}. Rows
 * carry "_ts" and "_id" sort keys, removed here. */
json_t *cp_page_result(json_t *items, int limit);

/* ---- handlers ---- */
int cp_auth_login(struct http_req *req);
int cp_auth_logout(struct http_req *req);
int cp_regions_list(struct http_req *req);
int cp_regions_get(struct http_req *req);
int cp_users_get(struct http_req *req);
int cp_admins_get(struct http_req *req);
int cp_api_keys_get(struct http_req *req);
int cp_plans_get(struct http_req *req);
int cp_regions_create(struct http_req *req);
int cp_regions_update(struct http_req *req);
int cp_lookup(struct http_req *req);
int cp_tenants_create(struct http_req *req);
int cp_tenants_list(struct http_req *req);
int cp_tenants_get(struct http_req *req);
int cp_tenants_update(struct http_req *req);
int cp_tenants_delete(struct http_req *req);
int cp_users_create(struct http_req *req);
int cp_users_list(struct http_req *req);
int cp_users_update(struct http_req *req);
int cp_users_delete(struct http_req *req);
int cp_admins_create(struct http_req *req);
int cp_admins_list(struct http_req *req);
int cp_admins_delete(struct http_req *req);
int cp_api_keys_create(struct http_req *req);
int cp_api_keys_list(struct http_req *req);
int cp_api_keys_delete(struct http_req *req);
int cp_audit_list(struct http_req *req);

int cp_jwks(struct http_req *req);
int cp_region_config(struct http_req *req);
int cp_region_credentials_create(struct http_req *req);
int cp_region_status(struct http_req *req);
int cp_region_fleet(struct http_req *req);
int cp_plans_list(struct http_req *req);
int cp_plans_create(struct http_req *req);
int cp_plans_update(struct http_req *req);
int cp_usage_ingest(struct http_req *req);
int cp_tenant_usage(struct http_req *req);
int cp_period_close(struct http_req *req);
int cp_tenant_invoices(struct http_req *req);
int cp_invoice_get(struct http_req *req);
int cp_invoice_finalize(struct http_req *req);
int cp_invoice_void(struct http_req *req);

/* ---- regional config documents (config_doc.c) ---- */
#define CP_ISSUER "celltrail-control-plane"

/* A signed document, shared by reference between the cache and the
 * responses that send it. */
struct cp_doc {
	_Atomic int refs;
	int64_t version;
	char *token;
	size_t len;
};
void cp_doc_release(void *doc);

struct doc_cache *doc_cache_new(void);
void doc_cache_free(struct doc_cache *dc);
/* The signed document of `region` at version `want` or newer: from the
 * cache, else from region_documents, else built, signed and stored now.
 * *out holds a reference (cp_doc_release). */
enum db_status cp_doc_get(struct cp_app *app, const char *region, int64_t want,
                          struct cp_doc **out) __attribute__((warn_unused_result));
/* Builds and signs the region's current document in one snapshot, without
 * storing it. *token malloc'd; *ver its version. For issuance and benchmarks. */
enum db_status cp_doc_build(struct db_conn *c, struct cp_app *app, const char *region,
                            int64_t *ver, char **token, int64_t *iat, int64_t *exp, char kid[64])
	__attribute__((warn_unused_result));

/* ---- long polls (longpoll.c) ---- */
/* Starts the LISTEN thread that wakes parked requests when a region's
 * config version rises, and resumes them at their deadline. */
struct lp *lp_start(struct cp_app *app, char *err, size_t errlen);
void lp_stop(struct lp *lp);
/* Parks `req` until `region` passes version `seen` or `deadline_ms`
 * (CLOCK_MONOTONIC ms). Returns 0, or -1 when the service is draining
 * (answer now instead). */
int lp_park(struct lp *lp, struct http_req *req, const char *region, int64_t seen,
            int64_t deadline_ms) __attribute__((warn_unused_result));
/* Resumes every parked request and refuses new parks (drain). */
void lp_drain(void *app);
/* Appends cp_longpolls_parked, cp_longpoll_wakeups_total, cp_notify_connected. */
void lp_metrics(struct lp *lp, FILE *out);
/* Appends cp_config_documents_built_total, cp_config_build_seconds_total,
 * cp_config_document_bytes{region}. */
void doc_cache_metrics(struct doc_cache *dc, FILE *out);
int64_t lp_now_ms(void);

/* Seeds the region catalog from `path` when it is empty. */
int cp_seed_regions(struct cp_app *app, const char *path) __attribute__((warn_unused_result));

#endif
