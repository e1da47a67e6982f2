/* The request plumbing every control-plane handler shares: the runners
 * that put a change, its audit record, its config-version bumps and its
 * idempotency record in one transaction (and reply with its outcome),
 * body parsing, pagination, and replies to failed database calls. */
#ifndef CP_MUTATE_H
#define CP_MUTATE_H

#include <jansson.h>
#include <stdint.h>

#include "db.h"
#include "http.h"
#include "outcome.h"

struct cp_page;


/* A transaction body. Runs the change, writes the audit record, raises
 * config versions, and fills `out`. It may run more than once. */
typedef enum db_status (*cp_apply_fn)(struct db_conn *c, struct http_req *req, void *ctx,
                                      struct cp_outcome *out);

/* Runs `apply` in one transaction with the request's Idempotency-Key (if
 * any): a replay with the same body returns the first response, another
 * body gets 422. Replies in every case; returns the handler's result:
 * HTTP_FAILED when a reply could not be queued or the database failed
 * in a way the server answers 500. */
enum http_result cp_mutate(struct http_req *req, cp_apply_fn apply, void *ctx);
/* The same with a key the caller has read and hashed (idempotency.h): for
 * routes whose key is required, or whose "same request" is not the same
 * bytes. A NULL `k` or k->key runs without one. */
struct idem;
enum http_result cp_mutate_keyed(struct http_req *req, const struct idem *k, cp_apply_fn apply, void *ctx);


/* Appends to the audit log (before/after borrowed, may be NULL). */
enum db_status cp_audit(struct db_conn *c, struct http_req *req, const char *tenant_id,
                        const char *action, const char *object_type, const char *object_id,
                        json_t *before, json_t *after) __attribute__((warn_unused_result));
/* The same for a command an operator ran on a control-plane host (the
 * signing keys'): actor type "operator", `actor` its user@host, no tenant
 * and no request; `before` and `after` (may be NULL) are stolen. */
enum db_status cp_audit_operator(struct db_conn *c, const char *actor, const char *action, const char *object_type,
                                 const char *object_id, json_t *before, json_t *after)
	__attribute__((warn_unused_result));
/* Ends a transaction that created a credential of the fleet, once the
 * caller has audited it (cp_audit with its action, a literal the audit
 * spec test reads): answers 201 with `doc` (stolen) and `token`, shown this
 * once: the outcome is sealed, so the token is never stored in clear. */
enum db_status cp_credential_created(struct cp_outcome *out, json_t *doc, const char *token)
	__attribute__((warn_unused_result));

/* Runs a read-only body (statements in autocommit) and replies with `out`. */
enum http_result cp_read(struct http_req *req, cp_apply_fn fn, void *ctx);
/* Runs a body that writes without idempotency (login, logout). */
enum http_result cp_run(struct http_req *req, cp_apply_fn fn, void *ctx);
/* The same, SERIALIZABLE (retried on conflicts). */
enum http_result cp_run_serializable(struct http_req *req, cp_apply_fn fn, void *ctx);

/* Replies to a failed database call (503, 404, 409, 400), or returns
 * HTTP_FAILED for the server's 500 (the DB layer has logged why). */
enum http_result cp_reply_db_error(struct http_req *req, enum db_status st);

/* Parses the body against `fields` into `dst`, a step. Returns HTTP_GO_ON,
 * or HTTP_ANSWERED after replying 400/415. *obj is the parsed body (caller
 * json_decref()s; NULL when answered). */
enum http_step cp_parse_body(struct http_req *req, const struct jsonx_field *fields, void *dst,
                             uint64_t *present, json_t **obj) __attribute__((warn_unused_result));

/* Pagination: reads ?limit= and ?cursor= into `pg` (struct cp_page, the
 * DB layer's page position: cpdb.h); replies 400 and returns
 * HTTP_ANSWERED when malformed. The kind says what shape a cursor's id must have. */
enum cp_cursor_kind { CP_CURSOR_UUID, CP_CURSOR_KEY_ID, CP_CURSOR_AUDIT };
enum http_step cp_parse_page(struct http_req *req, struct cp_page *pg, enum cp_cursor_kind kind)
	__attribute__((warn_unused_result));
/* Wraps `items` (stolen; the DB layer fetched up to limit + 1 rows) as
 * {"items": [...], "has_more": true, "next_cursor": "..."} when a row
 * follows the page, else {"items": [...], "has_more": false} without a
 * cursor, so a client never fetches an empty last page. Rows carry "_ts"
 * and "_id" sort keys, removed here. */
json_t *cp_page_result(json_t *items, int limit);
/* A list that is never paged (it is small by nature: regions, plans, a
 * region's fleet, a tenant's invoices): {"items": [...], "has_more": false},
 * the same shape as a last page. `items` is stolen. */
json_t *cp_list_result(json_t *items);

#endif
