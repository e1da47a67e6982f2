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
#include "partitions.h"
#include "timefmt.h"

#define RETRY_AFTER_DB "2"
#define LIST_DEFAULT 100
#define LIST_MAX 1000
#define FILTER_MAX 256
#define META_KEY_MAX 128
#define Q_WORDS_MAX 8

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

/* The query parameters of GET /v1/events (route.h), for the route table
 * and for every route that takes the same filters. */
const char *const dp_events_query_params[] = { DP_EVENTS_QUERY_PARAMS, NULL };

/* The values of a repeatable filter, each 1..max bytes. A step. */
static enum http_step values(struct http_req *req, const char *name, size_t max, const char **out, int *n)
{
	*n = http_req_query_values(req, name, out, DP_QUERY_VALUES_MAX);
	if (*n > DP_QUERY_VALUES_MAX)
		*n = DP_QUERY_VALUES_MAX; /* the HTTP layer refused more already */
	for (int i = 0; i < *n; i++) {
		size_t len = strlen(out[i]);
		if (len == 0 || len > max) {
			http_reply_invalid_field(req, name, "Each %s must be 1 to %zu bytes.", name, max);
			return HTTP_ANSWERED;
		}
	}
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

/* Words of `q` as the database splits them (a run of letters and digits;
 * every byte of a multibyte character counts as a letter here). */
static int q_words(const char *q)
{
	int n = 0, in = 0;
	for (const unsigned char *p = (const unsigned char *)q; *p; p++) {
		int w = (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p >= 0x80;
		n += w && !in;
		in = w;
	}
	return n;
}

/* FNV-1a over every member of `q` that selects or orders rows, names and
 * values delimited: a cursor carries it so that it is refused under any
 * other query (not a secret: the tenant is always filtered on anyway). */
static uint64_t fp_add(uint64_t h, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++)
		h = (h ^ *p) * UINT64_C(1099511628211);
	return (h ^ 0xff) * UINT64_C(1099511628211); /* 0xff is never UTF-8: a delimiter */
}

static uint64_t query_fingerprint(const struct dp_event_query *q)
{
	char num[24];
	uint64_t h = UINT64_C(14695981039346656037);
	const struct {
		const char *name;
		const char *const *v;
		int n;
	} f[] = { { "actor", q->actor, q->n_actor }, { "actor_type", q->actor_type, q->n_actor_type },
		  { "action", q->action, q->n_action }, { "target", q->target, q->n_target },
		  { "target_type", q->target_type, q->n_target_type }, { "meta_key", q->meta_key, q->n_meta },
		  { "meta_value", q->meta_value, q->n_meta } };
	h = fp_add(h, q->tenant);
	for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
		h = fp_add(h, f[i].name);
		for (int j = 0; j < f[i].n; j++)
			h = fp_add(h, f[i].v[j]);
	}
	h = fp_add(h, q->q ? q->q : "\x01");
	int64_t t[] = { q->since_us, q->until_us, q->received_since_us, q->received_until_us, q->asc };
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		snprintf(num, sizeof num, "%" PRId64, t[i]);
		h = fp_add(h, num);
	}
	return h;
}

/* The cursor of the row (us, seq) under query `q`. */
static void cursor_make(const struct dp_event_query *q, int64_t us, int64_t seq, char text[CURSOR_TEXT_MAX])
{
	struct cursor c = { .ts_us = us };
	snprintf(c.id, sizeof c.id, "%" PRId64 "_%016" PRIx64, seq, query_fingerprint(q));
	cursor_encode(&c, text);
}

enum http_step dp_events_query_parse(struct http_req *req, struct dp_event_query *q)
{
	const struct dp_auth *a = http_req_auth(req);
	const char *v, *names[DP_QUERY_META_MAX];

	memset(q, 0, sizeof *q);
	q->tenant = a ? a->tenant_id : NULL;
	q->kept_from_us = q->stored_before_us = -1;
	if (values(req, "actor", DP_EVENT_REF_ID_MAX, q->actor, &q->n_actor) != HTTP_GO_ON ||
	    values(req, "actor_type", DP_EVENT_REF_TYPE_MAX, q->actor_type, &q->n_actor_type) != HTTP_GO_ON ||
	    values(req, "action", 4 * DP_EVENT_ACTION_MAX, q->action, &q->n_action) != HTTP_GO_ON ||
	    values(req, "target", DP_EVENT_REF_ID_MAX, q->target, &q->n_target) != HTTP_GO_ON ||
	    values(req, "target_type", DP_EVENT_REF_TYPE_MAX, q->target_type, &q->n_target_type) != HTTP_GO_ON ||
	    time_param(req, "since", &q->since_us) != HTTP_GO_ON || time_param(req, "until", &q->until_us) != HTTP_GO_ON ||
	    time_param(req, "received_since", &q->received_since_us) != HTTP_GO_ON ||
	    time_param(req, "received_until", &q->received_until_us) != HTTP_GO_ON)
		return HTTP_ANSWERED;
	q->n_meta = http_req_query_prefixed(req, "metadata.", names, q->meta_value, DP_QUERY_META_MAX);
	if (q->n_meta > DP_QUERY_META_MAX)
		q->n_meta = DP_QUERY_META_MAX; /* the HTTP layer refused more already */
	for (int i = 0; i < q->n_meta; i++) {
		q->meta_key[i] = names[i] + strlen("metadata.");
		size_t klen = strlen(q->meta_key[i]), vlen = strlen(q->meta_value[i]);
		if (klen > META_KEY_MAX || vlen == 0 || vlen > FILTER_MAX) {
			http_reply_invalid_field(req, names[i],
			                         "A metadata filter is metadata.<key>=<value>, the key at most %d bytes, "
			                         "the value 1 to %d bytes.", META_KEY_MAX, FILTER_MAX);
			return HTTP_ANSWERED;
		}
	}
	if ((v = http_req_query(req, "q"))) {
		int words = q_words(v);
		if (strlen(v) > FILTER_MAX || words < 1 || words > Q_WORDS_MAX) {
			http_reply_invalid_field(req, "q", "q must be at most %d bytes of 1 to %d words (letters and digits).",
			                         FILTER_MAX, Q_WORDS_MAX);
			return HTTP_ANSWERED;
		}
		q->q = v;
	}
	if ((v = http_req_query(req, "order")) && strcmp(v, "desc") != 0) {
		if (strcmp(v, "asc") != 0) {
			http_reply_invalid_field(req, "order", "order must be desc (newest first) or asc.");
			return HTTP_ANSWERED;
		}
		q->asc = 1;
	}
	if (cursor_parse_limit(http_req_query(req, "limit"), LIST_DEFAULT, LIST_MAX, &q->limit) != 0) {
		http_reply_invalid_field(req, "limit", "limit must be an integer from 1 to %d.", LIST_MAX);
		return HTTP_ANSWERED;
	}
	if ((v = http_req_query(req, "cursor"))) {
		struct cursor c;
		char *end, want[24];
		if (cursor_decode(v, &c) != 0 || (q->cursor_seq = strtoll(c.id, &end, 10)) <= 0 || *end != '_') {
			http_reply_invalid_field(req, "cursor", "cursor is not one this API returned.");
			return HTTP_ANSWERED;
		}
		snprintf(want, sizeof want, "%016" PRIx64, query_fingerprint(q));
		if (strcmp(end + 1, want) != 0) {
			http_reply_invalid_field(req, "cursor",
			                         "This cursor belongs to another query: page with the filters and order "
			                         "it came from.");
			return HTTP_ANSWERED;
		}
		q->has_cursor = 1;
		q->cursor_us = c.ts_us;
	}
	return HTTP_GO_ON;
}

/* A page: the rows up to the limit, and whether one more exists. */
struct list_q {
	struct dp_event_query q;
	struct buf out;
	int n, more;
	int64_t last_us, last_seq;
};

static int list_row(void *ctx, const struct dp_event_row *row)
{
	struct list_q *l = ctx;
	if (l->n == l->q.limit - 1) {
		l->more = 1; /* the one row more than the page */
		return 1;
	}
	if (l->n)
		buf_append(&l->out, ",", 1);
	buf_append(&l->out, row->body, row->body_len);
	l->last_us = row->occurred_us;
	l->last_seq = row->seq;
	l->n++;
	return 0;
}

static enum db_status list_tx(struct db_conn *c, void *ctx)
{
	struct list_q *l = ctx;
	l->out.len = 0;
	if (l->out.p)
		l->out.p[0] = '\0';
	l->n = l->more = 0;
	return dp_db_events_scan(c, &l->q, list_row, l);
}

enum http_result dp_handle_events_list(struct http_req *req)
{
	struct dp_app *app = http_req_app(req);
	const struct dp_auth *a = http_req_auth(req);
	struct list_q *l = calloc(1, sizeof *l); /* the query's arrays are large for a stack */
	struct buf b = { 0 };
	enum http_result rc = HTTP_FAILED;

	if (!l)
		return HTTP_FAILED;
	if (dp_events_admit(req, a, CFGDOC_SCOPE_READ) != HTTP_GO_ON ||
	    dp_events_query_parse(req, &l->q) != HTTP_GO_ON) {
		rc = HTTP_REPLIED;
		goto out;
	}
	/* An event is stored with an occurred_at at most DP_EVENT_FUTURE_US
	 * ahead of a clock (an hour more for the clocks' differences), and
	 * not listed once the week its retention ends in is over. */
	int64_t now = timefmt_now_us();
	l->q.kept_from_us = dp_week_of(now - a->plan.retention_days * INT64_C(86400000000));
	l->q.stored_before_us = now + DP_EVENT_FUTURE_US + INT64_C(3600000000);
	l->q.limit++; /* one row more than the page: whether a next page exists */
	buf_append(&l->out, "", 0);
	enum db_status st = db_tx(app->db, DB_AUTOCOMMIT, list_tx, l);
	l->q.limit--;
	if (st != DB_OK) {
		rc = db_failed(req, st);
		goto out;
	}
	buf_append(&b, "{\"items\":[", 10);
	buf_append(&b, l->out.p ? l->out.p : "", l->out.len);
	if (l->more) {
		char text[CURSOR_TEXT_MAX];
		cursor_make(&l->q, l->last_us, l->last_seq, text);
		buf_printf(&b, "],\"next_cursor\":\"%s\",\"has_more\":true}", text);
	} else {
		/* Nothing follows: no cursor, so that no client asks for an
		 * empty last page. */
		buf_append(&b, "],\"has_more\":false}", 19);
	}
	if (l->out.failed || b.failed)
		goto out;
	rc = http_reply_raw(req, 200, "application/json", b.p, b.len);
out:
	buf_free(&b);
	buf_free(&l->out);
	free(l);
	return rc;
}
