/* GET /v1/events and GET /v1/events/{id}, and what every events route
 * checks first: the key's scope and the tenant's rate limit. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cursor.h"
#include "dp.h"
#include "dpdb.h"
#include "event.h"
#include "http.h"
#include "limits.h"
#include "timefmt.h"

#define RETRY_AFTER_DB "2"
#define LIST_DEFAULT 100
#define LIST_MAX 1000
#define FILTER_MAX 256

enum http_step dp_events_admit(struct http_req *req, const struct dp_auth *a, unsigned scope)
{
	struct dp_app *app = http_req_app(req);
	struct dp_rate r;
	struct timespec ts;
	char v[24];

	if (!a)
		return HTTP_ANSWERED; /* nothing queued: the layer answers 500 */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	/* Reads and writes have a bucket each: a dashboard or an export never
	 * throttles ingest. Without memory for a bucket the request goes
	 * unlimited rather than fail. */
	enum dp_bucket b = scope == CFGDOC_SCOPE_WRITE ? DP_BUCKET_WRITE : DP_BUCKET_READ;
	if (dp_limits_take(app->limits, a->tenant_id, b, a->plan.rate, a->plan.burst,
	                   (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec, &r) == 0) {
		snprintf(v, sizeof v, "%" PRId64, r.limit);
		http_add_header(req, "RateLimit-Limit", v);
		snprintf(v, sizeof v, "%" PRId64, r.remaining);
		http_add_header(req, "RateLimit-Remaining", v);
		snprintf(v, sizeof v, "%" PRId64, r.reset_s);
		http_add_header(req, "RateLimit-Reset", v);
		if (!r.allowed) {
			snprintf(v, sizeof v, "%" PRId64, r.retry_after_s);
			http_add_header(req, "Retry-After", v);
			http_reply_problem(req, PROB_RATE_LIMITED,
			                   "This tenant's rate limit of %" PRId64 " %s per second in this region (burst %" PRId64
			                   ") is exhausted; retry in %" PRId64 " s.",
			                   a->plan.rate, b == DP_BUCKET_WRITE ? "writes" : "reads", a->plan.burst,
			                   r.retry_after_s);
			return HTTP_ANSWERED;
		}
	}
	if (scope == CFGDOC_SCOPE_WRITE && a->status == 's') {
		http_reply_problem(req, PROB_TENANT_SUSPENDED,
		                   "This tenant is suspended: it can read its events but not write any.");
		return HTTP_ANSWERED;
	}
	if (!(a->scopes & scope)) {
		http_reply_problem(req, PROB_INSUFFICIENT_SCOPE, "This API key lacks the scope %s.",
		                   scope == CFGDOC_SCOPE_WRITE ? "events:write" : "events:read");
		return HTTP_ANSWERED;
	}
	return HTTP_GO_ON;
}

static enum http_result db_failed(struct http_req *req, enum db_status st)
{
	if (st == DB_UNAVAILABLE || st == DB_RETRY) {
		http_add_header(req, "Retry-After", RETRY_AFTER_DB);
		return http_reply_problem(req, PROB_UNAVAILABLE, "The region's database is unavailable. Retry later.");
	}
	return HTTP_FAILED; /* the DB layer logged it; the HTTP layer answers 500 */
}

struct get_q {
	const char *tenant, *id;
	char *body;
	size_t len;
};

static enum db_status get_tx(struct db_conn *c, void *ctx)
{
	struct get_q *q = ctx;
	return dp_db_event_get(c, q->tenant, q->id, &q->body, &q->len);
}

enum http_result dp_handle_event_get(struct http_req *req)
{
	struct dp_app *app = http_req_app(req);
	const struct dp_auth *a = http_req_auth(req);
	const char *id = http_req_param(req, "id");

	if (dp_events_admit(req, a, CFGDOC_SCOPE_READ) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (!dp_event_id_valid(id))
		return http_reply_problem(req, PROB_NOT_FOUND, "No event has this id.");
	struct get_q q = { .tenant = a->tenant_id, .id = id };
	enum db_status st = db_tx(app->db, DB_AUTOCOMMIT, get_tx, &q);
	if (st == DB_NOT_FOUND)
		return http_reply_problem(req, PROB_NOT_FOUND, "No event has this id.");
	if (st != DB_OK)
		return db_failed(req, st);
	enum http_result rc = http_reply_raw(req, 200, "application/json", q.body, q.len);
	free(q.body);
	return rc;
}

struct list_q {
	struct dp_event_query q;
	struct buf out;
	int n, more;
	int64_t last_us, last_seq;
};

static enum db_status list_tx(struct db_conn *c, void *ctx)
{
	struct list_q *l = ctx;
	l->out.len = 0;
	if (l->out.p)
		l->out.p[0] = '\0';
	return dp_db_events_list(c, &l->q, &l->out, &l->n, &l->more, &l->last_us, &l->last_seq);
}

/* A filter's value: absent, or 1..FILTER_MAX bytes. A step. */
static enum http_step filter(struct http_req *req, const char *name, const char **out)
{
	const char *v = http_req_query(req, name);
	*out = NULL;
	if (!v)
		return HTTP_GO_ON;
	size_t n = strlen(v);
	if (n == 0 || n > FILTER_MAX) {
		http_reply_invalid_field(req, name, "%s must be 1 to %d bytes.", name, FILTER_MAX);
		return HTTP_ANSWERED;
	}
	*out = v;
	return HTTP_GO_ON;
}

static enum http_step time_param(struct http_req *req, const char *name, int64_t *out)
{
	const char *v = http_req_query(req, name);
	*out = -1;
	if (v && timefmt_parse(v, out) != 0) {
		http_reply_invalid_field(req, name, "%s must be an RFC 3339 date-time with an offset.", name);
		return HTTP_ANSWERED;
	}
	return HTTP_GO_ON;
}

enum http_step dp_events_query_parse(struct http_req *req, struct dp_event_query *q)
{
	const char *cur;

	*q = (struct dp_event_query){ .since_us = -1, .until_us = -1 };
	if (filter(req, "actor", &q->actor) != HTTP_GO_ON || filter(req, "action", &q->action) != HTTP_GO_ON ||
	    filter(req, "target", &q->target) != HTTP_GO_ON || time_param(req, "since", &q->since_us) != HTTP_GO_ON ||
	    time_param(req, "until", &q->until_us) != HTTP_GO_ON)
		return HTTP_ANSWERED;
	if (cursor_parse_limit(http_req_query(req, "limit"), LIST_DEFAULT, LIST_MAX, &q->limit) != 0)
		return http_reply_invalid_field(req, "limit", "limit must be an integer from 1 to %d.", LIST_MAX),
		       HTTP_ANSWERED;
	if ((cur = http_req_query(req, "cursor"))) {
		struct cursor c;
		char *end;
		if (cursor_decode(cur, &c) != 0 || (q->cursor_seq = strtoll(c.id, &end, 10)) <= 0 || *end)
			return http_reply_invalid_field(req, "cursor", "cursor is not one this API returned."),
			       HTTP_ANSWERED;
		q->has_cursor = 1;
		q->cursor_us = c.ts_us;
	}
	return HTTP_GO_ON;
}

enum http_result dp_handle_events_list(struct http_req *req)
{
	struct dp_app *app = http_req_app(req);
	const struct dp_auth *a = http_req_auth(req);
	struct list_q l = { .out = { 0 } };

	if (dp_events_admit(req, a, CFGDOC_SCOPE_READ) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (dp_events_query_parse(req, &l.q) != HTTP_GO_ON)
		return HTTP_REPLIED;
	l.q.tenant = a->tenant_id;
	buf_append(&l.out, "", 0);
	enum db_status st = db_tx(app->db, DB_AUTOCOMMIT, list_tx, &l);
	if (st != DB_OK) {
		buf_free(&l.out);
		return db_failed(req, st);
	}
	struct buf b = { 0 };
	buf_append(&b, "{\"events\":[", 11);
	buf_append(&b, l.out.p ? l.out.p : "", l.out.len);
	buf_free(&l.out);
	if (l.more) {
		struct cursor c = { .ts_us = l.last_us };
		char text[CURSOR_TEXT_MAX];
		snprintf(c.id, sizeof c.id, "%" PRId64, l.last_seq);
		cursor_encode(&c, text);
		buf_printf(&b, "],\"next_cursor\":\"%s\"}", text);
	} else {
		buf_append(&b, "],\"next_cursor\":null}", 21);
	}
	if (b.failed) {
		buf_free(&b);
		return HTTP_FAILED;
	}
	enum http_result rc = http_reply_raw(req, 200, "application/json", b.p, b.len);
	buf_free(&b);
	return rc;
}
