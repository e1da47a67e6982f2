/* The control plane's SQL, one function per statement, grouped by
 * resource in db_<resource>.c. Everything is parameterized; JSON documents
 * come from the api_* views of the migrations. Functions returning a
 * json_t ** give a new reference the caller json_decref()s. */
#ifndef CP_CPDB_H
#define CP_CPDB_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"

struct buf;

/* The position of a keyset page: `limit` rows after the row (ts, id) of
 * the cursor, when `have_cursor` (filled by cp_parse_page, mutate.h).
 * A page function returns up to limit + 1 rows, so that the caller knows
 * whether there is a next page. */
struct cp_page {
	int limit;
	int have_cursor;
	char ts[24];
	char id[65];
};

/* Runs a statement that returns one id (INSERT/UPDATE ... RETURNING id);
 * DB_NOT_FOUND when it touched no row. */
enum db_status cpdb_returning_id(struct db_conn *c, char id[40], const char *sql, int n,
                                 const char *const *params);

/* ---- regions (db_regions.c) ---- */
enum db_status cpdb_regions_list(struct db_conn *c, json_t **items);
enum db_status cpdb_region_get(struct db_conn *c, const char *name, json_t **doc);
/* cloud_regions is a JSON array text. */
enum db_status cpdb_region_insert(struct db_conn *c, const char *name, const char *display_name,
                                  const char *cloud_regions, const char *endpoint, const char *wave,
                                  const char *status, json_t **doc);
/* NULL arguments leave the field as it is. */
enum db_status cpdb_region_update(struct db_conn *c, const char *name, const char *display_name,
                                  const char *cloud_regions, const char *endpoint, const char *wave,
                                  const char *status, json_t **doc);
/* A change every region must learn (the catalog is in every document). */
enum db_status cpdb_regions_bump_all(struct db_conn *c);
/* A change only `region` must learn (its tenants, keys, limits). */
enum db_status cpdb_region_bump(struct db_conn *c, const char *region);
enum db_status cpdb_regions_count(struct db_conn *c, long *n);

/* ---- plans (db_tenants.c) ---- */
enum db_status cpdb_plan_exists(struct db_conn *c, const char *id, int *exists);

/* ---- tenants (db_tenants.c) ---- */
enum db_status cpdb_tenant_insert(struct db_conn *c, const char *slug, const char *name,
                                  const char *region, const char *plan, const char *cell,
                                  json_t **doc);
enum db_status cpdb_tenant_get(struct db_conn *c, const char *id, int for_update, json_t **doc);
enum db_status cpdb_tenant_by_slug(struct db_conn *c, const char *slug, json_t **doc);
/* `only_id` restricts the list to one tenant (a tenant user's view). */
enum db_status cpdb_tenants_page(struct db_conn *c, const char *region, const char *status,
                                 const char *only_id, const struct cp_page *pg, json_t **items);
enum db_status cpdb_tenant_update(struct db_conn *c, const char *id, const char *name,
                                  const char *plan, const char *status, json_t **doc);
/* Offboarding: revokes every key and ends every session of the tenant. */
enum db_status cpdb_tenant_offboard(struct db_conn *c, const char *id);

/* ---- users and sessions (db_users.c) ---- */
/* tenant_id NULL means platform admins. */
enum db_status cpdb_user_insert(struct db_conn *c, const char *tenant_id, const char *email,
                                const char *role, const char *password_hash, json_t **doc);
enum db_status cpdb_users_page(struct db_conn *c, const char *tenant_id, const struct cp_page *pg,
                               json_t **items);
enum db_status cpdb_user_get(struct db_conn *c, const char *tenant_id, const char *id,
                             int for_update, json_t **doc);
enum db_status cpdb_user_set_role(struct db_conn *c, const char *tenant_id, const char *id,
                                  const char *role, json_t **doc);
enum db_status cpdb_user_delete(struct db_conn *c, const char *tenant_id, const char *id);
enum db_status cpdb_tenant_owner_count(struct db_conn *c, const char *tenant_id, long *n);

struct cpdb_login {
	char user_id[37], tenant_id[37], role[16], tenant_status[16];
	char password_hash[200];
};
/* Finds the account for a login; tenant_slug NULL means platform admins. */
enum db_status cpdb_login_lookup(struct db_conn *c, const char *tenant_slug, const char *email,
                                 struct cpdb_login *out);

/* Failed logins are kept per account, named as the login names it
 * (tenant_slug NULL for platform admins, normalized email), and per source
 * address key, whether the account exists or not. */
struct cpdb_login_policy {
	long max_failures;          /* a source's failures before it waits */
	long lockout_max_s;         /* the longest wait of a source */
	long account_max_failures;  /* failures from all sources before the account slows */
};
/* Serializes the logins to this account until the transaction ends, then
 * sets *wait_s: seconds this source must still wait for it (0: none). */
enum db_status cpdb_login_wait(struct db_conn *c, const char *tenant_slug, const char *email,
                               const char *source, long *wait_s);
/* Counts a failure of `source` on the account and sets its waits. */
enum db_status cpdb_login_failed(struct db_conn *c, const char *tenant_slug, const char *email,
                                 const char *source, const struct cpdb_login_policy *pol);
/* Forgets the failures of `source` on the account (not those of others). */
enum db_status cpdb_login_succeeded(struct db_conn *c, const char *tenant_slug, const char *email,
                                    const char *source);
/* Removes failures nobody has added to for a day and whose wait is over. */
enum db_status cpdb_login_failures_purge(struct db_conn *c, long *removed);
/* token_sha256_hex: 64 hex characters. *expires_at: RFC 3339 text. */
enum db_status cpdb_session_insert(struct db_conn *c, const char *token_sha256_hex,
                                   const char *user_id, int64_t ttl_ms, char expires_at[40]);
struct cpdb_session {
	char user_id[37], tenant_id[37], role[16];
};
/* DB_NOT_FOUND when unknown, expired, or the tenant was deleted. */
enum db_status cpdb_session_lookup(struct db_conn *c, const char *token_sha256_hex,
                                   struct cpdb_session *out);
enum db_status cpdb_session_delete(struct db_conn *c, const char *token_sha256_hex);
enum db_status cpdb_user_end_sessions(struct db_conn *c, const char *user_id);

/* ---- API keys (db_api_keys.c) ---- */
/* scopes: JSON array text; expires_at may be NULL. */
enum db_status cpdb_api_key_insert(struct db_conn *c, const char *id, const char *tenant_id,
                                   const char *name, const unsigned char secret_sha256[32],
                                   const char *scopes, const char *expires_at, json_t **doc);
enum db_status cpdb_api_keys_page(struct db_conn *c, const char *tenant_id,
                                  const struct cp_page *pg, json_t **items);
enum db_status cpdb_api_key_get(struct db_conn *c, const char *tenant_id, const char *id,
                                json_t **doc);
enum db_status cpdb_api_key_revoke(struct db_conn *c, const char *tenant_id, const char *id,
                                   json_t **doc);
/* An expiry as the database's clock sees it: *future when after now,
 * *representable when before 9999-12-31 (UTC). DB_INVALID when the text
 * is not a time the database reads. */
enum db_status cpdb_api_key_expiry_check(struct db_conn *c, const char *expires_at, int *future,
                                         int *representable);

/* ---- signing keys (db_signing.c) ---- */
/* A row of signing_keys as cpdb_signing_keys hands it over (valid during
 * the call). */
struct cpdb_signing_key {
	const char *kid, *state, *public_jwk, *sealed, *kek_id;
	int64_t activated_at; /* unix seconds; 0 when never current */
	int64_t set_ver;      /* the key set's version: the highest ver of any row */
};
typedef void (*cpdb_signing_key_fn)(const struct cpdb_signing_key *k, void *arg);
/* The keys to sign with and publish: current, staged, and previous ones
 * retired less than `overlap_s` ago; current first. */
enum db_status cpdb_signing_keys(struct db_conn *c, int64_t overlap_s, cpdb_signing_key_fn fn, void *arg);
/* A new key, staged or current (DB_CONFLICT: there is one already). */
enum db_status cpdb_signing_key_insert(struct db_conn *c, const char *kid, const char *state,
                                       const char *public_jwk, const char *sealed, const char *kek_id);
/* A key that stopped signing at `retired_at` (unix seconds), imported. */
enum db_status cpdb_signing_key_previous(struct db_conn *c, const char *kid, const char *public_jwk,
                                         const char *sealed, const char *kek_id, int64_t retired_at);
/* Serializes changes to the keys until the transaction ends. */
enum db_status cpdb_signing_keys_lock(struct db_conn *c);
/* The key `kid` (NULL: any) in `state` (NULL: any), as the list shows it. */
enum db_status cpdb_signing_key_get(struct db_conn *c, const char *kid, const char *state, json_t **doc);
/* Moves `kid` to `state`, setting its times (DB_NOT_FOUND: no such key). */
enum db_status cpdb_signing_key_set_state(struct db_conn *c, const char *kid, const char *state);
/* Every key ever kept, newest first within each state. */
enum db_status cpdb_signing_keys_list(struct db_conn *c, json_t **items);
/* Every row, whatever its state, oldest first: what a reseal goes over. */
enum db_status cpdb_signing_keys_all(struct db_conn *c, cpdb_signing_key_fn fn, void *arg);
/* The private key of `kid` sealed again, under the KEK `kek_id`. */
enum db_status cpdb_signing_key_reseal(struct db_conn *c, const char *kid, const char *sealed, const char *kek_id);
/* The previous keys whose overlap (`overlap_s` after they stopped
 * signing) has passed. */
typedef void (*cpdb_signing_kid_fn)(const char *kid, void *arg);
enum db_status cpdb_signing_keys_aged(struct db_conn *c, int64_t overlap_s, cpdb_signing_kid_fn fn, void *arg);

/* ---- audit log (db_audit.c) ---- */
enum db_status cpdb_audit_insert(struct db_conn *c, const char *actor_type, const char *actor_id,
                                 const char *tenant_id, const char *action, const char *object_type,
                                 const char *object_id, const char *before, const char *after,
                                 const char *request_id);
enum db_status cpdb_audit_page(struct db_conn *c, const char *tenant_id, const struct cp_page *pg,
                               json_t **items);

/* ---- idempotency (db_idempotency.c) ---- */
/* The tables that hold Idempotency-Key records (see idempotency.h). */
enum cpdb_idem_store { CPDB_IDEM_REQUESTS, CPDB_IDEM_USAGE_BATCHES, CPDB_IDEM_CELL_BATCHES };
/* Claims (scope, key) for this transaction. *claimed is 0 when a committed
 * record exists already (then read it with cpdb_idem_get). */
enum db_status cpdb_idem_claim(struct db_conn *c, enum cpdb_idem_store store, const char *scope,
                               const char *key, const char *request_sha256_hex, int *claimed);
struct cpdb_idem {
	char request_sha256[65];
	int status;          /* 0 when the store keeps no status */
	char location[256];
	char *body;   /* malloc'd; caller frees */
	int sealed;
};
enum db_status cpdb_idem_get(struct db_conn *c, enum cpdb_idem_store store, const char *scope,
                             const char *key, struct cpdb_idem *out);
/* Stores the answer. CPDB_IDEM_USAGE_BATCHES and CPDB_IDEM_CELL_BATCHES keep the body only. */
enum db_status cpdb_idem_store(struct db_conn *c, enum cpdb_idem_store store, const char *scope,
                               const char *key, int status, const char *location, const char *body,
                               int sealed);
/* Removes records older than a day. */
enum db_status cpdb_idem_purge(struct db_conn *c, long *removed);

/* A document carries every plan of the catalog while it holds at most
 * this many (the most a data plane reads), else its tenants' plans. */
#define CPDB_DOC_MAX_PLANS "1000"


/* ---- regional config documents, credentials, fleet (db_config.c) ---- */
enum db_status cpdb_region_version(struct db_conn *c, const char *region, int64_t *ver);
/* The stored document of (region, version); DB_NOT_FOUND if none. *token malloc'd. */
enum db_status cpdb_doc_get(struct db_conn *c, const char *region, int64_t ver, char **token);
/* Stores a document unless that version has one already; *stored is 0
 * when another replica stored it first. */
enum db_status cpdb_doc_insert(struct db_conn *c, const char *region, int64_t ver, const char *token,
                               const char *kid, int64_t iat, int64_t exp, int *stored);
/* Keeps the last `keep` versions of a region's documents. */
enum db_status cpdb_doc_prune(struct db_conn *c, const char *region, int64_t ver, int keep);
/* One row of a region's document content: a live tenant of the region
 * and one of its usable keys (not revoked, not expired), or the tenant
 * alone when it has none (key_id NULL). Strings are borrowed: valid
 * during the callback only. */
struct cpdb_doc_row {
	const char *tenant_id, *slug, *status, *plan;
	const char *key_id;          /* NULL: the tenant has no usable key */
	const char *key_sha256_hex;  /* SHA-256 of the secret, hex (64); or */
	const char *key_sha256_b64;  /* the same, base64url (43), when not NULL */
	int can_write, can_read;     /* scopes events:write, events:read */
	int64_t expires_at;          /* unix seconds; 0: never */
	size_t nrows;                /* rows in all, to size a buffer */
};
/* Returns nonzero to stop; cpdb_doc_content then returns DB_ERROR. */
typedef int (*cpdb_doc_row_fn)(const struct cpdb_doc_row *row, void *arg);
/* Calls `fn` on every row of the region's content (only of the tenants
 * placed in `cell` unless it is NULL): a tenant's rows are consecutive,
 * its keys in id order, the tenants in no set order (the document's
 * digest is a sum over them); nrows is 0. */
enum db_status cpdb_doc_content(struct db_conn *c, const char *region, const char *cell,
                                cpdb_doc_row_fn fn, void *arg);
/* The same, only of the tenants of `ids` (a Postgres array literal of
 * uuids, "{...}"): the changed tenants of a delta document; ordered by
 * tenant id, then key id, and nrows set. */
enum db_status cpdb_doc_content_of(struct db_conn *c, const char *region, const char *cell,
                                   const char *ids, cpdb_doc_row_fn fn, void *arg);
/* The change log (0011_config_changes.sql): the tenants changed by the
 * transactions that raised the region's version into (base, ver], as a
 * Postgres array literal appended to `ids` (*n of them). *complete is 0
 * (and nothing is read) when the log lacks a version of the range. */
enum db_status cpdb_config_changed(struct db_conn *c, const char *region, int64_t base, int64_t ver,
                                   struct buf *ids, size_t *n, int *complete);
/* Removes the change log of the region's versions up to ver - keep, and
 * the changes no logged version needs, in bounded batches. */
enum db_status cpdb_config_log_prune(struct db_conn *c, const char *region, int64_t ver, int keep,
                                     long *removed);
/* Signed delta documents by (aud, base version), served only with at
 * least fresh_s seconds before their exp; DB_NOT_FOUND if none. */
enum db_status cpdb_delta_get(struct db_conn *c, const char *aud, int64_t base, int64_t fresh_s,
                              int64_t *ver, char **token);
enum db_status cpdb_delta_insert(struct db_conn *c, const char *aud, int64_t base, int64_t ver,
                                 const char *token, const char *kid, int64_t iat, int64_t exp,
                                 int *stored);
/* Keeps the deltas whose base is above ver - keep. */
enum db_status cpdb_delta_prune(struct db_conn *c, const char *aud, int64_t ver, int keep);
struct cpdb_plan_limits {
	char id[33];
	int64_t rate_limit, burst, monthly_event_quota, retention_days;
};
/* The limits of the plans the tenants of the region's (or, unless NULL,
 * the cell's) document are on, ordered by id.
 * *plans malloc'd (NULL when *n is 0); the caller free()s it. */
enum db_status cpdb_doc_plans(struct db_conn *c, const char *region, const char *cell,
                              struct cpdb_plan_limits **plans, size_t *n);
/* Cell and routes documents, stored by aud like region_documents by region. */
enum db_status cpdb_signed_doc_get(struct db_conn *c, const char *aud, int64_t ver, char **token);
enum db_status cpdb_signed_doc_insert(struct db_conn *c, const char *aud, const char *region,
                                      int64_t ver, const char *token, const char *kid, int64_t iat,
                                      int64_t exp, int *stored);
enum db_status cpdb_signed_doc_prune(struct db_conn *c, const char *aud, int64_t ver, int keep);
/* One route: a key id and its tenant's cell (borrowed during the call);
 * nrows is the number of routes in all. Nonzero stops (DB_ERROR). */
typedef int (*cpdb_route_fn)(const char *key_id, const char *cell, size_t nrows, void *arg);
/* Every key of the region not revoked, whose tenant is placed, by key id. */
enum db_status cpdb_routes_content(struct db_conn *c, const char *region, cpdb_route_fn fn, void *arg);
struct cpdb_region_name {
	char name[33];
};
/* Regions whose newest document (regional, cell or routes) expires before now + within_s. *regions
 * malloc'd (NULL when *n is 0); the caller free()s it. */
enum db_status cpdb_docs_expiring(struct db_conn *c, int64_t within_s, struct cpdb_region_name **regions,
                                  size_t *n);
/* This transaction's commit does not wait for the disk (SET LOCAL
 * synchronous_commit = off): for rows that can be rebuilt if lost. */
enum db_status cpdb_commit_unsynced(struct db_conn *c);

/* A connection of its own, LISTENing for config-version changes: a
 * trigger notifies whenever a region's version rises, whichever replica
 * made the change. NULL when it cannot connect or LISTEN. The server's
 * notices go to `notice`. The caller polls PQsocket(), reads with
 * PQconsumeInput() and closes with PQfinish(). */
PGconn *cpdb_listen_config(const char *conninfo, PQnoticeProcessor notice);
/* The next change received on that connection: 1 with region and
 * *version set, 0 when none is pending (malformed payloads are skipped). */
int cpdb_config_change(PGconn *pg, char region[33], int64_t *version);

enum db_status cpdb_credential_insert(struct db_conn *c, const char *region,
                                      const char *token_sha256_hex, json_t **doc);
/* The region of a live credential; DB_NOT_FOUND if unknown or revoked. */
enum db_status cpdb_credential_region(struct db_conn *c, const char *token_sha256_hex,
                                      char region[33]);

enum db_status cpdb_fleet_upsert(struct db_conn *c, const char *region, const char *instance,
                                 const char *version, const char *source,
                                 const char *last_pull_ok_at, const char *last_error,
                                 const char *stale, const char *cell);
enum db_status cpdb_fleet_list(struct db_conn *c, const char *region, int64_t stale_after_s,
                               json_t **items);

/* ---- cells and their credentials (db_cells.c) ---- */
/* The cells of a region by name (api_cells documents). */
enum db_status cpdb_cells_list(struct db_conn *c, const char *region, json_t **items);
enum db_status cpdb_cell_get(struct db_conn *c, const char *name, json_t **doc);
/* A cell's name, region, kind and status only (a document's `cell`
 * claim): without the count of its tenants, which reads them all. */
enum db_status cpdb_cell_claim(struct db_conn *c, const char *name, json_t **doc);
/* Locks the region's cells until the transaction ends: placements and
 * status changes of one region take turns, so a count they read holds. */
enum db_status cpdb_cells_lock(struct db_conn *c, const char *region);
/* DB_CONFLICT when the name is a cell's or a region's already. */
enum db_status cpdb_cell_insert(struct db_conn *c, const char *name, const char *region,
                                const char *kind, const char *tenant_id, json_t **doc);
enum db_status cpdb_cell_set_status(struct db_conn *c, const char *name, const char *status,
                                    json_t **doc);
/* The active shared cell of the region with the fewest tenants not
 * deleted (ties: name order); DB_NOT_FOUND when there is none. */
enum db_status cpdb_cell_least_loaded(struct db_conn *c, const char *region, char cell[64]);
/* Gives a dedicated cell without a tenant to `tenant_id`. */
enum db_status cpdb_cell_dedicate(struct db_conn *c, const char *cell, const char *tenant_id);
enum db_status cpdb_cell_credential_insert(struct db_conn *c, const char *cell,
                                           const char *token_sha256_hex, json_t **doc);
/* The cell (and its region) of a live credential; DB_NOT_FOUND if unknown or revoked. */
enum db_status cpdb_cell_credential_lookup(struct db_conn *c, const char *token_sha256_hex,
                                           char cell[64], char region[33]);
/* The first tenant of the usage records (JSON array text) that is not
 * placed in `cell` ("" when all are); *n how many records name such tenants. */
enum db_status cpdb_usage_outside_cell(struct db_conn *c, const char *cell, const char *records,
                                       char tenant[64], long *n);

/* ---- tenant moves and cell drains (db_moves.c) ---- */
/* A move to create; erase_after_seconds >= 0; drain_id may be NULL. */
struct cpdb_move_new {
	const char *tenant_id, *kind, *from_region, *from_cell, *to_region, *to_cell, *state;
	const char *requested_by, *drain_id;
	int64_t erase_after_seconds;
};
/* DB_CONFLICT when the tenant has a move that has not ended. *doc: the
 * admin view (api_moves). */
enum db_status cpdb_move_insert(struct db_conn *c, const struct cpdb_move_new *m, json_t **doc);
/* The tenant's moves, newest first (admin views). */
enum db_status cpdb_moves_list(struct db_conn *c, const char *tenant_id, json_t **items);
/* Move `id` (of `tenant_id` unless NULL), locked with `for_update`. */
enum db_status cpdb_move_get(struct db_conn *c, const char *id, const char *tenant_id, int for_update,
                             json_t **doc);
/* The tenant's move that has not ended, locked; DB_NOT_FOUND if none. */
enum db_status cpdb_move_open_of_tenant(struct db_conn *c, const char *tenant_id, json_t **doc);
/* awaiting_approval -> copying; DB_NOT_FOUND when it was in another state. */
enum db_status cpdb_move_approve(struct db_conn *c, const char *id, const char *by, json_t **doc);
/* An unended move -> `state` (aborted or failed), with `error` unless NULL. */
enum db_status cpdb_move_finish(struct db_conn *c, const char *id, const char *state, const char *error,
                                json_t **doc);
/* *held_by_other: another mover than `mover` holds a lease not yet run out. */
enum db_status cpdb_move_lease(struct db_conn *c, const char *id, const char *mover, int *held_by_other);
/* A mover's report: NULL or negative members leave the field as it is. */
struct cpdb_move_report {
	const char *mover, *state, *error;
	int64_t events_copied, lag_events, source_events, lease_seconds;
};
/* Applies a report the caller has checked, renewing the mover's lease. */
enum db_status cpdb_move_progress(struct db_conn *c, const char *id, const struct cpdb_move_report *r,
                                  json_t **doc);
/* Leases the oldest move due in `region` to `mover` (see moves.h);
 * DB_NOT_FOUND when none is due. *erase_at: unix seconds from which the
 * source may erase (a done move), else 0. */
enum db_status cpdb_move_claim(struct db_conn *c, const char *region, const char *mover,
                               int64_t lease_seconds, json_t **doc, int64_t *erase_at);
/* Flips the tenant of a verifying move to its target and ends the move
 * done; DB_NOT_FOUND when it is not verifying. write_pause_ms < 0: unknown.
 * A move between cells lingers `linger_ms` (> 0): its source cell's
 * document keeps listing the tenant until cpdb_move_lingers_end. */
enum db_status cpdb_move_complete(struct db_conn *c, const char *id, int64_t source_events,
                                  int64_t write_pause_ms, int64_t linger_ms, json_t **doc);
/* Ends the lingers that have run out and raises their source regions'
 * config versions, so that the source cells' documents drop the tenants
 * and their long polls wake. */
enum db_status cpdb_move_lingers_end(struct db_conn *c);
/* Records an erasure of the source's (`source`) or the target's copy;
 * *first is 1 when it is the first report of it. */
enum db_status cpdb_move_erased(struct db_conn *c, const char *id, int source, int64_t events,
                                int64_t rows, int *first, json_t **doc);
/* {"<state>": n, ...} of every state some move is in. */
enum db_status cpdb_moves_by_state(struct db_conn *c, json_t **counts);
/* Appends the `moved` claim's records of `region` to `b`: every key not
 * revoked whose text names the region and whose live tenant lives in
 * another region now. */
struct buf;
enum db_status cpdb_doc_moved(struct db_conn *c, const char *region, struct buf *b);
/* Raises the config version of every region other than the tenant's
 * where keys of the tenant were made: their documents list those keys
 * as moved, and must learn that one was revoked or the tenant deleted. */
enum db_status cpdb_moved_keys_bump(struct db_conn *c, const char *tenant_id);
/* DB_CONFLICT when the cell has a running drain. */
enum db_status cpdb_drain_insert(struct db_conn *c, const char *cell, int64_t parallel,
                                 const char *requested_by, json_t **doc);
enum db_status cpdb_drain_get(struct db_conn *c, const char *id, json_t **doc);
enum db_status cpdb_drain_latest(struct db_conn *c, const char *cell, json_t **doc);
/* The running drains of the region's cells, locked: [{id, cell, parallel}]. */
enum db_status cpdb_drains_running(struct db_conn *c, const char *region, json_t **items);
/* A drain's moves not ended, tenants left in its cell, and the next one
 * to move ("" when none may move now). */
enum db_status cpdb_drain_state(struct db_conn *c, const char *id, const char *cell, long *active,
                                long *left, char next_tenant[37]);
/* running -> `state` (done or failed). */
enum db_status cpdb_drain_finish(struct db_conn *c, const char *id, const char *state);

/* ---- billing (db_billing.c) ---- */
enum db_status cpdb_plans_list(struct db_conn *c, json_t **items);
enum db_status cpdb_plan_get(struct db_conn *c, const char *id, json_t **doc);
/* v: name, currency, base_price, events_included, price_per_1000,
 * rate_limit, burst, monthly_event_quota, retention_days (text; NULL keeps). */
enum db_status cpdb_plan_insert(struct db_conn *c, const char *id, const char *const v[9], json_t **doc);
enum db_status cpdb_plan_update(struct db_conn *c, const char *id, const char *const v[9], json_t **doc);
/* Raises the config version of every region with live tenants on the plan. */
enum db_status cpdb_plan_bump_regions(struct db_conn *c, const char *id);

/* The first record (1-based) whose window does not fit its period, with
 * the field at fault; *index 0 when all fit. records: JSON array text. */
enum db_status cpdb_usage_check_windows(struct db_conn *c, const char *records, long *index,
                                        char field[16]);
/* How many of the records' tenants do not live in `region`. */
enum db_status cpdb_usage_foreign(struct db_conn *c, const char *region, const char *records, long *n);
/* `cell` NULL: reported by a region credential. */
enum db_status cpdb_usage_insert(struct db_conn *c, const char *region, const char *cell,
                                 const char *key, const char *records);
/* The first record (1-based; 0 if none) whose period ended before its
 * tenant was created, and the first that would take its tenant's period
 * past `max_events` (a decimal text). */
enum db_status cpdb_usage_limits(struct db_conn *c, const char *records, const char *max_events,
                                 long *early, long *over);
/* Whether any tenant has ever been on the plan. */
enum db_status cpdb_plan_used(struct db_conn *c, const char *id, long *n);
/* The currency of a plan (DB_NOT_FOUND when there is none). */
enum db_status cpdb_plan_currency(struct db_conn *c, const char *id, char currency[4]);
/* {tenant, period, total, by_day, by_region} of one tenant and period ("YYYY-MM"). */
enum db_status cpdb_usage_report(struct db_conn *c, const char *tenant_id, const char *period,
                                 json_t **doc);

/* Closes a period ("YYYY-MM"): invoices, their lines and totals, the
 * ledger rows they bill. *closed_now is 0 when it was closed before (then
 * nothing changes). DB_ROLLBACK-free: the caller checks the period ended. */
enum db_status cpdb_period_close(struct db_conn *c, const char *period, int *closed_now,
                                 json_t **summary);
/* Whether the period has ended (its last instant is in the past). */
enum db_status cpdb_period_ended(struct db_conn *c, const char *period, int *ended);
enum db_status cpdb_invoices_for_tenant(struct db_conn *c, const char *tenant_id, json_t **items);
enum db_status cpdb_invoice_get(struct db_conn *c, const char *id, int for_update, json_t **doc);
enum db_status cpdb_invoice_set_status(struct db_conn *c, const char *id, const char *status,
                                       json_t **doc);

/* ---- erasure of deleted tenants in their region (db_erasures.c) ---- */

/* Records that `tenant_id` (deleted in this transaction) is to be erased,
 * requested when it was deleted (its updated_at). */
enum db_status cpdb_erasure_request(struct db_conn *c, const char *tenant_id)
	__attribute__((warn_unused_result));
/* Sets the member "erasure" of every deleted tenant's document in `docs`
 * (one tenant document, or an array of them as db_json_page returns):
 * {status: pending|done, requested_at, completed_at, events_deleted}. A
 * live tenant's document is left as it is. */
enum db_status cpdb_erasure_attach(struct db_conn *c, json_t *docs) __attribute__((warn_unused_result));
/* Takes a region's figures for `tenant_id`, keeping the largest ones and
 * "done" once said (the completion time is the first report of it).
 * *completed_now is 1 when this report completed it. *erasure is the
 * erasure as the admin view shows it (caller json_decref()s). */
enum db_status cpdb_erasure_record(struct db_conn *c, const char *tenant_id, int64_t events,
                                   int64_t rows, int done, int *completed_now, json_t **erasure)
	__attribute__((warn_unused_result));

/* ---- log streams (db_streams.c) ---- */
/* A stream as the API shows it (no secret), its report merged in;
 * DB_NOT_FOUND when the tenant has no such stream or it was deleted.
 * id must be a UUID. */
enum db_status cpdb_stream_get(struct db_conn *c, const char *tenant_id, const char *id, json_t **doc);
/* The tenant's streams, not deleted, oldest first (at most a few). */
enum db_status cpdb_streams_list(struct db_conn *c, const char *tenant_id, json_t **items);
enum db_status cpdb_streams_count(struct db_conn *c, const char *tenant_id, long *n);
/* destination: JSON object text; secret_sealed: secret_seal()'s output;
 * since: RFC 3339, NULL for now (DB_INVALID when the database refuses
 * it). The new stream's id is written into `id`. */
enum db_status cpdb_stream_insert(struct db_conn *c, const char *tenant_id, const char *kind,
                                  const char *destination, const char *secret_sealed, int paused,
                                  const char *since, char id[40]);
/* {kind, destination} of a live stream, its row locked for the change. */
enum db_status cpdb_stream_stored(struct db_conn *c, const char *tenant_id, const char *id,
                                  json_t **row);
/* New destination (and secret, NULL: kept); the revision goes up. */
enum db_status cpdb_stream_update(struct db_conn *c, const char *tenant_id, const char *id,
                                  const char *destination, const char *secret_sealed);
enum cpdb_stream_cmd { CPDB_STREAM_PAUSE, CPDB_STREAM_RESUME, CPDB_STREAM_REPLAY, CPDB_STREAM_DELETE };
/* An owner's command (replay_since: RFC 3339, for CPDB_STREAM_REPLAY only,
 * else NULL). DB_NOT_FOUND when there is no such live stream. */
enum db_status cpdb_stream_command(struct db_conn *c, const char *tenant_id, const char *id,
                                   enum cpdb_stream_cmd cmd, const char *replay_since);
/* Erasure of a tenant: its streams and their reports are removed. */
enum db_status cpdb_streams_erase(struct db_conn *c, const char *tenant_id);
/* A region's residency rule and stream key: {hosts: [...], s3_regions:
 * [...], key: JWK object or null}. */
enum db_status cpdb_region_stream_rule(struct db_conn *c, const char *region, json_t **rule);
/* Sets the region's stream fields: hosts and s3_regions JSON array texts
 * (NULL: kept), the key JSON text (NULL: none) when set_key. */
enum db_status cpdb_region_set_streams(struct db_conn *c, const char *name, const char *hosts,
                                       const char *s3_regions, int set_key, const char *key);
/* A stream as a signed document carries it; strings borrowed for the call. */
struct cpdb_doc_stream {
	const char *id, *tenant_id, *kind;
	const char *destination;      /* JSON object text */
	const char *secret_sealed;    /* sealed with the control plane's secrets key */
	int64_t revision, since, resume, replay, replay_since;
	int paused;
	size_t nrows;                 /* rows in all */
};
typedef int (*cpdb_doc_stream_fn)(const struct cpdb_doc_stream *s, void *arg);
/* The live streams of the live tenants of a region (of cell `cell` only,
 * when not NULL), in one query, each passed to `fn` (non-zero stops:
 * DB_ERROR). */
enum db_status cpdb_doc_streams(struct db_conn *c, const char *region, const char *cell,
                                cpdb_doc_stream_fn fn, void *arg);
/* Stores a data plane's report: `reports` a JSON array text of {id, status,
 * lag_events, lag_seconds, delivered_events, last_delivered_at,
 * last_error, last_error_at} (times unix s or null), checked by the
 * caller; streams not of `region` are skipped, as is an observation older
 * than the one kept. *stored: the rows written. */
enum db_status cpdb_stream_reports(struct db_conn *c, const char *region, const char *cell,
                                   int64_t observed_at, const char *reports, long *stored);

#endif
