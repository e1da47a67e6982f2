/* The request plumbing every control-plane handler shares: body parsing,
 * pagination, database error replies, and the mutation runner that puts
 * the change, its audit record, its config-version bumps and its
 * idempotency record in one transaction. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_app.h"
#include "cpdb.h"
#include "cursor.h"
#include "idempotency.h"
#include "log.h"
#include "mutate.h"
#include "names.h"
#include "principal.h"
#include "secret.h"

enum http_step cp_parse_body(struct http_req *req, const struct jsonx_field *fields, void *dst,
                  uint64_t *present, json_t **obj)
{
	struct jsonx_err err;
	if (http_req_json_object(req, obj) != HTTP_GO_ON)
		return HTTP_ANSWERED;
	if (jsonx_unpack(*obj, fields, dst, present, &err) != 0) {
		http_reply_invalid(req, &err);
		json_decref(*obj);
		*obj = NULL;
		return HTTP_ANSWERED;
	}
	return HTTP_GO_ON;
}

/* Does the cursor's id have the shape of the list's ids? */
static int cursor_id_ok(const char *id, enum cp_cursor_kind kind)
{
	switch (kind) {
	case CP_CURSOR_UUID:
		return name_valid_uuid(id);
	case CP_CURSOR_KEY_ID:
		return strlen(id) == 24 && strspn(id, "0123456789abcdef") == 24;
	case CP_CURSOR_AUDIT:
		return !strcmp(id, "a");
	}
	return 0;
}

enum http_step cp_parse_page(struct http_req *req, struct cp_page *pg, enum cp_cursor_kind kind)
{
	struct cursor c;
	const char *text = http_req_query(req, "cursor");

	/* The same fault answers the same code as on the data plane. */
	if (cursor_parse_limit(http_req_query(req, "limit"), 50, 100, &pg->limit) != 0) {
		http_reply_invalid_field(req, "limit", "%s", "limit must be an integer from 1 to 100.");
		return HTTP_ANSWERED;
	}
	pg->have_cursor = 0;
	if (text) {
		if (cursor_decode(text, &c) != 0 || !cursor_id_ok(c.id, kind)) {
			http_reply_invalid_field(req, "cursor", "%s", "cursor is not one this API returned.");
			return HTTP_ANSWERED;
		}
		pg->have_cursor = 1;
		snprintf(pg->ts, sizeof pg->ts, "%lld", (long long)c.ts_us);
		snprintf(pg->id, sizeof pg->id, "%s", c.id);
	}
	return HTTP_GO_ON;
}

json_t *cp_page_result(json_t *items, int limit)
{
	json_t *next = NULL;
	size_t n = json_array_size(items);

	if (n > (size_t)limit) {
		json_t *last = json_array_get(items, (size_t)limit - 1);
		struct cursor c = { .ts_us = json_integer_value(json_object_get(last, "_ts")) };
		char text[CURSOR_TEXT_MAX];
		snprintf(c.id, sizeof c.id, "%s", json_string_value(json_object_get(last, "_id")));
		cursor_encode(&c, text);
		next = json_string(text);
		json_array_remove(items, (size_t)limit);
	}
	size_t i;
	json_t *v;
	json_array_foreach(items, i, v) {
		json_object_del(v, "_ts");
		json_object_del(v, "_id");
	}
	json_t *page = cp_list_result(items);
	if (next) {
		json_object_set_new(page, "next_cursor", next);
		json_object_set_new(page, "has_more", json_true());
	}
	return page;
}

json_t *cp_list_result(json_t *items)
{
	return json_pack("{so sb}", "items", items, "has_more", 0);
}

enum http_result cp_reply_db_error(struct http_req *req, enum db_status st)
{
	switch (st) {
	case DB_UNAVAILABLE:
	case DB_RETRY:
		http_add_header(req, "Retry-After", "1");
		return http_reply_problem(req, PROB_UNAVAILABLE,
		                          "The control-plane database is unavailable; retry shortly.");
	case DB_COMMIT_UNKNOWN:
		http_add_header(req, "Retry-After", "1");
		return http_reply_problem(req, PROB_UNAVAILABLE,
		                          "The connection to the control-plane database broke while the change "
		                          "was committing: it may or may not have been made. Retry with the same "
		                          "Idempotency-Key to find out.");
	case DB_NOT_FOUND:
		return http_reply_problem(req, PROB_NOT_FOUND, "No such object.");
	case DB_CONFLICT:
		return http_reply_problem(req, PROB_CONFLICT, "The change conflicts with an existing object.");
	case DB_INVALID:
		return http_reply_problem(req, PROB_VALIDATION, "A value was rejected by the database's rules.");
	default:
		return HTTP_FAILED; /* the layer answers 500 and the DB layer has logged why */
	}
}

enum db_status cp_audit(struct db_conn *c, struct http_req *req, const char *tenant_id,
                        const char *action, const char *object_type, const char *object_id,
                        json_t *before, json_t *after)
{
	const struct cp_principal *p = cp_principal(req);
	char *b = before ? json_dumps(before, JSON_COMPACT) : NULL;
	char *a = after ? json_dumps(after, JSON_COMPACT) : NULL;
	enum db_status st = cpdb_audit_insert(
		c, p->via_admin_token ? "admin_token" : p->role == CP_ROLE_REGION ? "region" : "user",
		p->via_admin_token ? NULL : p->role == CP_ROLE_REGION ? p->region : p->user_id,
		tenant_id && *tenant_id ? tenant_id : NULL, action, object_type, object_id, b, a,
		http_req_id(req));
	free(b);
	free(a);
	return st;
}

enum db_status cp_audit_operator(struct db_conn *c, const char *actor, const char *action, const char *object_type,
                                 const char *object_id, json_t *before, json_t *after)
{
	char *b = before ? json_dumps(before, JSON_COMPACT) : NULL;
	char *a = after ? json_dumps(after, JSON_COMPACT) : NULL;
	enum db_status st = (before && !b) || (after && !a)
	                        ? DB_ERROR
	                        : cpdb_audit_insert(c, "operator", actor, NULL, action, object_type, object_id, b, a, NULL);
	free(b);
	free(a);
	json_decref(before);
	json_decref(after);
	return st;
}

enum db_status cp_credential_created(struct cp_outcome *out, json_t *doc, const char *token)
{
	json_object_set_new(doc, "token", json_string(token));
	out->sealed = 1;
	return cp_done(out, 201, doc);
}

struct mutation {
	struct http_req *req;
	cp_apply_fn apply;
	void *ctx;
	const struct idem *idem;   /* NULL: the request has no key */
	struct cp_outcome out;
};

static enum db_status mutation_tx(struct db_conn *c, void *ctx)
{
	struct mutation *m = ctx;
	enum db_status st;

	cp_outcome_reset(&m->out);
	if (m->idem) {
		int claimed;
		st = idem_claim(c, m->req, m->idem, &m->out, &claimed);
		if (st != DB_OK || !claimed)
			return st;
	}
	st = m->apply(c, m->req, m->ctx, &m->out);
	if (st != DB_OK || !m->idem)
		return st;
	return idem_record(c, m->req, m->idem, &m->out);
}

static enum http_result reply_outcome(struct http_req *req, struct cp_outcome *out)
{
	enum http_result rc;
	if (out->problem) {
		if (out->prob == PROB_UNAUTHORIZED) /* every 401 names its scheme (RFC 9110) */
			http_add_header(req, "WWW-Authenticate", "Bearer");
		rc = http_reply_problem_ex(req, out->prob, out->prob_extra, "%s", out->detail);
		out->prob_extra = NULL;
		return rc;
	}
	if (out->location[0])
		http_add_header(req, "Location", out->location);
	if (out->replayed)
		http_add_header(req, "Idempotent-Replayed", "true");
	if (out->status == 204) {
		/* No content: the outcome's body (an empty object, which the
		 * idempotency record keeps) is not sent. */
		json_decref(out->body);
		out->body = NULL;
		return http_reply_raw(req, 204, "application/json", "", 0);
	}
	rc = http_reply_json(req, out->status, out->body);
	out->body = NULL;
	return rc;
}

enum http_result cp_mutate_keyed(struct http_req *req, const struct idem *k, cp_apply_fn apply, void *ctx)
{
	struct cp_app *app = http_req_app(req);
	struct mutation m = { .req = req, .apply = apply, .ctx = ctx, .idem = k && k->key ? k : NULL };
	enum http_result rc;

	enum db_status st = db_tx(app->db, DB_READ_COMMITTED, mutation_tx, &m);
	if (st == DB_OK || (st == DB_ROLLBACK && m.out.problem))
		rc = reply_outcome(req, &m.out);
	else
		rc = cp_reply_db_error(req, st);
	cp_outcome_reset(&m.out);
	return rc;
}

enum http_result cp_mutate(struct http_req *req, cp_apply_fn apply, void *ctx)
{
	struct idem k = { .store = IDEM_REQUESTS, .scope = cp_principal(req)->scope };

	if (idem_key_read(req, NULL, &k) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (k.key)
		idem_hash_request(req, &k);
	return cp_mutate_keyed(req, &k, apply, ctx);
}

struct reading {
	struct http_req *req;
	cp_apply_fn fn;
	void *ctx;
	struct cp_outcome out;
};

static enum db_status read_tx(struct db_conn *c, void *ctx)
{
	struct reading *r = ctx;
	cp_outcome_reset(&r->out);
	return r->fn(c, r->req, r->ctx, &r->out);
}

static enum http_result run(struct http_req *req, enum db_isolation iso, cp_apply_fn fn, void *ctx)
{
	struct cp_app *app = http_req_app(req);
	struct reading r = { .req = req, .fn = fn, .ctx = ctx };
	enum http_result rc;
	enum db_status st = db_tx(app->db, iso, read_tx, &r);
	if (st == DB_OK || (st == DB_ROLLBACK && r.out.problem))
		rc = reply_outcome(req, &r.out);
	else
		rc = cp_reply_db_error(req, st);
	cp_outcome_reset(&r.out);
	return rc;
}

enum http_result cp_read(struct http_req *req, cp_apply_fn fn, void *ctx)
{
	return run(req, DB_AUTOCOMMIT, fn, ctx);
}

enum http_result cp_run(struct http_req *req, cp_apply_fn fn, void *ctx)
{
	return run(req, DB_READ_COMMITTED, fn, ctx);
}

enum http_result cp_run_serializable(struct http_req *req, cp_apply_fn fn, void *ctx)
{
	return run(req, DB_SERIALIZABLE, fn, ctx);
}
