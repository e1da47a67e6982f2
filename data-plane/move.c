/* Tenant moves on a cell's data plane: the source's pages, fence, digest
 * and records, the target's page insert, progress and records, and the
 * erasure of either copy; authorised by the move credential. See dp.h. */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config_pull.h"
#include "dp.h"
#include "dpdb.h"
#include "http.h"
#include "jscan.h"
#include "log.h"
#include "trust_store.h"
#include "movecred.h"
#include "names.h"
#include "snapshot.h"
#include "timefmt.h"

#define RETRY_AFTER_DB "2"
/* How long one POST .../erase deletes before it answers (done or not). */
#define ERASE_BUDGET_MS 2000

enum move_route { MR_EVENTS_GET, MR_EVENTS_POST, MR_FENCE_POST, MR_FENCE_DELETE, MR_DIGEST,
                  MR_RECORDS_GET, MR_RECORDS_POST, MR_PROGRESS, MR_ERASE, MR__N };
static const char *const route_names[MR__N] = {
	[MR_EVENTS_GET] = "events_get",     [MR_EVENTS_POST] = "events_post",
	[MR_FENCE_POST] = "fence_post",     [MR_FENCE_DELETE] = "fence_delete",
	[MR_DIGEST] = "digest",             [MR_RECORDS_GET] = "records_get",
	[MR_RECORDS_POST] = "records_post", [MR_PROGRESS] = "progress",
	[MR_ERASE] = "erase",
};
static atomic_ullong requests[MR__N], events_copied;

void dp_move_metrics(FILE *out)
{
	fprintf(out, "# HELP dp_move_requests_total Requests of tenant moves that passed the credential check, by route.\n"
	             "# TYPE dp_move_requests_total counter\n");
	for (int i = 0; i < MR__N; i++)
		fprintf(out, "dp_move_requests_total{route=\"%s\"} %llu\n", route_names[i],
		        (unsigned long long)atomic_load(&requests[i]));
	fprintf(out, "# HELP dp_move_events_copied_total Events a move inserted into this cell (as its target).\n"
	             "# TYPE dp_move_events_copied_total counter\ndp_move_events_copied_total %llu\n",
	        (unsigned long long)atomic_load(&events_copied));
}

/* ---- authentication ---- */

static enum http_step refuse(struct http_req *req, enum problem_code code, const char *detail)
{
	if (code == PROB_UNAUTHORIZED)
		http_add_header(req, "WWW-Authenticate", "Bearer");
	http_reply_problem(req, code, "%s", detail);
	return HTTP_ANSWERED;
}

enum http_step dp_move_authenticate(struct http_req *req, int auth)
{
	struct dp_app *app = http_req_app(req);
	const char *move = http_req_param(req, "move");
	const char *h = http_req_header(req, "Authorization");
	char detail[200];

	if (!app->cfg.cell)
		return refuse(req, PROB_FORBIDDEN, "Moves are served only by the data planes of a cell (DP_CELL).");
	/* Not http_req_bearer: a credential is longer than an API key. */
	if (!h || strncasecmp(h, "Bearer ", 7) != 0 || !h[7])
		return refuse(req, PROB_UNAUTHORIZED, "Send the move's credential as Authorization: Bearer <credential>.");
	const char *tok = h + 7;
	if (!move || !name_valid_uuid(move))
		return refuse(req, PROB_UNAUTHORIZED, "The move's credential does not name this move.");
	struct cfgdoc_verify_opts o = {
		.issuer = DP_CONFIG_ISSUER, .region = app->cfg.region, .now = (int64_t)time(NULL),
		.skew = app->cfg.clock_skew_ms / 1000, .max_bytes = MOVECRED_MAX_BYTES,
	};
	struct movecred *m = calloc(1, sizeof *m);
	if (!m)
		return HTTP_ANSWERED; /* nothing queued: 500 */
	const struct cfgdoc_trust *trust = trust_store_get(app->trust);
	enum cfgdoc_result r = movecred_verify(tok, strlen(tok), trust, &o, move, m, detail, sizeof detail);
	trust_store_put(app->trust, trust);
	if (r != CFGDOC_OK) {
		free(m);
		log_warn(NULL, "move %s: credential refused (%s): %s", move, cfgdoc_result_names[r], detail);
		/* Perhaps a key of a rotation not followed yet: the mover's
		 * next attempt may find it trusted. */
		if (r == CFGDOC_UNKNOWN_KID)
			dp_pull_want_keyset(app->pull);
		if (r == CFGDOC_WRONG_AUDIENCE)
			return refuse(req, PROB_FORBIDDEN, "This credential is for another move.");
		return refuse(req, PROB_UNAUTHORIZED, "The move's credential is not valid (malformed, "
		                                      "not signed by the control plane, or expired).");
	}
	int source = !strcmp(m->from_cell, app->cfg.cell) && !strcmp(m->from_region, app->cfg.region);
	int target = !strcmp(m->to_cell, app->cfg.cell) && !strcmp(m->to_region, app->cfg.region);
	if ((auth == DP_AUTH_MOVE_SOURCE && !source) || (auth == DP_AUTH_MOVE_TARGET && !target) ||
	    (auth == DP_AUTH_MOVE_EITHER && !source && !target)) {
		free(m);
		return refuse(req, PROB_FORBIDDEN,
		              auth == DP_AUTH_MOVE_SOURCE   ? "This cell is not the move's source."
		              : auth == DP_AUTH_MOVE_TARGET ? "This cell is not the move's target."
		                                            : "This cell is neither the move's source nor its target.");
	}
	http_req_set_log_ids(req, m->tenant, NULL);
	http_req_set_auth(req, m, free);
	return HTTP_GO_ON;
}

/* ---- helpers ---- */

static enum http_result db_failed(struct http_req *req, enum db_status st)
{
	if (st == DB_UNAVAILABLE || st == DB_RETRY || st == DB_COMMIT_UNKNOWN) {
		http_add_header(req, "Retry-After", RETRY_AFTER_DB);
		return http_reply_problem(req, PROB_UNAVAILABLE, "The cell's database is unavailable. Retry later.");
	}
	return HTTP_FAILED; /* the DB layer logged it */
}

/* "<tx_id>.<seq>", both decimal, digits only ("0.0": the start). */
static int pos_parse(const char *s, struct dp_move_pos *p)
{
	const char *dot = s ? strchr(s, '.') : NULL;
	size_t a = dot ? (size_t)(dot - s) : 0, b = dot ? strlen(dot + 1) : 0;
	if (!dot || a == 0 || a > 19 || b == 0 || b > 18 || strspn(s, "0123456789") != a ||
	    strspn(dot + 1, "0123456789") != b)
		return -1;
	p->tx = strtoull(s, NULL, 10);
	p->seq = strtoll(dot + 1, NULL, 10);
	return p->tx <= INT64_MAX ? 0 : -1;
}

/* A query parameter that is a position; 0.0 when absent. */
static int pos_query(struct http_req *req, const char *name, struct dp_move_pos *p)
{
	const char *v = http_req_query(req, name);
	p->tx = 0;
	p->seq = 0;
	return v ? pos_parse(v, p) : 0;
}

/* Whether the tenant is in this data plane's document (served here):
 * 1, 0, or -1 with no configuration yet. */
static int served_here(struct dp_app *app, const char *tenant)
{
	const struct dp_snapshot *s = dp_snaps_enter(app->snaps);
	int r = s ? cfgdoc_find_tenant(s->doc, tenant) != NULL : -1;
	dp_snaps_leave(app->snaps);
	return r;
}

static enum http_result refuse_served(struct http_req *req, int served)
{
	if (served < 0) {
		http_add_header(req, "Retry-After", "5");
		return http_reply_problem(req, PROB_UNAVAILABLE, "This cell has no verified configuration yet.");
	}
	return http_reply_problem(req, PROB_CONFLICT,
	                          "The tenant is served by this cell: its data is not the move's to change.");
}

/* The body of a POST, as JSON text for the database to parse. */
static enum http_step json_body(struct http_req *req, const char **body)
{
	const char *ct = http_req_header(req, "Content-Type");
	size_t n = strlen("application/json"), len;
	if (!ct || strncasecmp(ct, "application/json", n) != 0 || (ct[n] && ct[n] != ';' && ct[n] != ' ')) {
		http_reply_problem(req, PROB_UNSUPPORTED_MEDIA_TYPE, "Send the body as Content-Type: application/json.");
		return HTTP_ANSWERED;
	}
	*body = http_req_body(req, &len);
	if (len == 0 || strlen(*body) != len) {
		http_reply_problem(req, PROB_INVALID_JSON, "The body must be a JSON object.");
		return HTTP_ANSWERED;
	}
	return HTTP_GO_ON;
}

static enum http_result reply_buf(struct http_req *req, unsigned status, struct buf *b)
{
	enum http_result rc = b->failed ? HTTP_FAILED : http_reply_raw(req, status, "application/json", b->p, b->len);
	buf_free(b);
	return rc;
}

/* ---- source ---- */

struct page_q {
	const char *tenant;
	struct dp_move_pos after;
	int limit;
	struct buf rows;
	struct dp_move_page pg;
};

static enum db_status page_tx(struct db_conn *c, void *ctx)
{
	struct page_q *q = ctx;
	q->rows.len = 0;
	q->rows.failed = 0;
	return dp_db_move_page(c, q->tenant, &q->after, q->limit, &q->rows, &q->pg);
}

enum http_result dp_handle_move_events_get(struct http_req *req)
{
	struct dp_app *app = http_req_app(req);
	const struct movecred *m = http_req_auth(req);
	struct page_q q = { .tenant = m->tenant };
	const char *lim = http_req_query(req, "limit");

	atomic_fetch_add(&requests[MR_EVENTS_GET], 1);
	if (pos_query(req, "after", &q.after) != 0)
		return http_reply_invalid_field(req, "after", "after must be a position \"<tx_id>.<seq>\".");
	q.limit = DP_MOVE_PAGE_DEFAULT;
	if (lim) {
		size_t n = strlen(lim);
		if (n == 0 || n > 4 || strspn(lim, "0123456789") != n || atoi(lim) < 1 || atoi(lim) > DP_MOVE_PAGE_MAX)
			return http_reply_invalid_field(req, "limit", "limit must be an integer from 1 to %d.",
			                                DP_MOVE_PAGE_MAX);
		q.limit = atoi(lim);
	}
	enum db_status st = db_tx(app->db, DB_READ_COMMITTED, page_tx, &q);
	if (st != DB_OK) {
		buf_free(&q.rows);
		return db_failed(req, st);
	}
	struct buf b = { 0 };
	buf_append(&b, "{\"events\":", 10);
	buf_append(&b, q.rows.p ? q.rows.p : "[]", q.rows.p ? q.rows.len : 2);
	buf_printf(&b, ",\"next\":\"%" PRIu64 ".%" PRId64 "\",\"more\":%s,\"horizon\":\"%" PRIu64 "\"}",
	           q.pg.next.tx, q.pg.next.seq, q.pg.more ? "true" : "false", q.pg.horizon);
	buf_free(&q.rows);
	return reply_buf(req, 200, &b);
}

struct fence_q {
	const char *tenant, *move;
	char fence_tx[24];
};

static enum db_status fence_tx(struct db_conn *c, void *ctx)
{
	struct fence_q *q = ctx;
	return dp_db_move_fence(c, q->tenant, q->move, q->fence_tx);
}

static enum db_status unfence_tx(struct db_conn *c, void *ctx)
{
	struct fence_q *q = ctx;
	return dp_db_move_unfence(c, q->tenant, q->move);
}

enum http_result dp_handle_move_fence_post(struct http_req *req)
{
	struct dp_app *app = http_req_app(req);
	const struct movecred *m = http_req_auth(req);
	struct fence_q q = { .tenant = m->tenant, .move = m->id };

	atomic_fetch_add(&requests[MR_FENCE_POST], 1);
	enum db_status st = db_tx(app->db, DB_READ_COMMITTED, fence_tx, &q);
	if (st == DB_CONFLICT)
		return http_reply_problem(req, PROB_CONFLICT, "The tenant is fenced for another move.");
	if (st != DB_OK)
		return db_failed(req, st);
	log_info(NULL, "move %s: tenant %s fenced at %s", m->id, m->tenant, q.fence_tx);
	return http_reply_json(req, 200, json_pack("{ss}", "fence_tx", q.fence_tx));
}

enum http_result dp_handle_move_fence_delete(struct http_req *req)
{
	struct dp_app *app = http_req_app(req);
	const struct movecred *m = http_req_auth(req);
	struct fence_q q = { .tenant = m->tenant, .move = m->id };

	atomic_fetch_add(&requests[MR_FENCE_DELETE], 1);
	enum db_status st = db_tx(app->db, DB_READ_COMMITTED, unfence_tx, &q);
	if (st != DB_OK)
		return db_failed(req, st);
	log_info(NULL, "move %s: tenant %s unfenced", m->id, m->tenant);
	return http_reply_raw(req, 204, "application/json", "", 0);
}

struct digest_q {
	const char *tenant;
	struct dp_move_pos after, upto;
	int has_upto, count_only;
	int64_t events;
	char digest[48];
};

static enum db_status digest_tx(struct db_conn *c, void *ctx)
{
	struct digest_q *q = ctx;
	if (q->count_only)
		return dp_db_move_count(c, q->tenant, &q->after, q->has_upto ? &q->upto : NULL, &q->events);
	return dp_db_move_digest(c, q->tenant, &q->after, q->has_upto ? &q->upto : NULL, &q->events, q->digest);
}

enum http_result dp_handle_move_digest(struct http_req *req)
{
	struct dp_app *app = http_req_app(req);
	const struct movecred *m = http_req_auth(req);
	struct digest_q q = { .tenant = m->tenant };

	atomic_fetch_add(&requests[MR_DIGEST], 1);
	if (pos_query(req, "after", &q.after) != 0)
		return http_reply_invalid_field(req, "after", "after must be a position \"<tx_id>.<seq>\".");
	q.has_upto = http_req_query(req, "upto") != NULL;
	if (pos_query(req, "upto", &q.upto) != 0)
		return http_reply_invalid_field(req, "upto", "upto must be a position \"<tx_id>.<seq>\".");
	const char *co = http_req_query(req, "count_only");
	if (co && strcmp(co, "true") && strcmp(co, "false"))
		return http_reply_invalid_field(req, "count_only", "count_only must be true or false.");
	q.count_only = co && !strcmp(co, "true");
	enum db_status st = db_tx(app->db, DB_REPEATABLE_READ, digest_tx, &q);
	if (st != DB_OK)
		return db_failed(req, st);
	struct buf b = { 0 };
	if (q.count_only)
		buf_printf(&b, "{\"events\":%" PRId64 "}", q.events);
	else
		buf_printf(&b, "{\"events\":%" PRId64 ",\"digest\":\"%s\"}", q.events, q.digest);
	return reply_buf(req, 200, &b);
}

struct records_q {
	const char *tenant, *body;
	int64_t since_us;
	struct buf out;
	long idem, usage;
	char offset[24];
};

static enum db_status records_get_tx(struct db_conn *c, void *ctx)
{
	struct records_q *q = ctx;
	q->out.len = 0;
	q->out.failed = 0;
	return dp_db_move_records_get(c, q->tenant, q->since_us, &q->out);
}

enum http_result dp_handle_move_records_get(struct http_req *req)
{
	struct dp_app *app = http_req_app(req);
	const struct movecred *m = http_req_auth(req);
	struct records_q q = { .tenant = m->tenant };
	const char *since = http_req_query(req, "since_us");

	atomic_fetch_add(&requests[MR_RECORDS_GET], 1);
	if (since) {
		size_t n = strlen(since);
		if (n == 0 || n > 17 || strspn(since, "0123456789") != n)
			return http_reply_invalid_field(req, "since_us", "since_us must be microseconds since the epoch.");
		q.since_us = strtoll(since, NULL, 10);
	}
	enum db_status st = db_tx(app->db, DB_READ_COMMITTED, records_get_tx, &q);
	if (st != DB_OK) {
		buf_free(&q.out);
		return db_failed(req, st);
	}
	return reply_buf(req, 200, &q.out);
}

/* ---- target ---- */

/* A source page's two members the target needs: the span of `events` (an
 * array, with the count of its elements) and the position `next`, found by
 * scanning the top-level object without building it, so that the database
 * parses the rows once (a pass over a page of 5000 rows costs tens of
 * milliseconds). A member given twice, or a body of another shape, is -1. */
static int page_split(const char *s, size_t n, const char **ev, size_t *evlen, size_t *rows,
                      struct dp_move_pos *next)
{
	int got_ev = 0, got_next = 0;
	size_t i = jscan_ws(s, 0, n);
	if (i >= n || s[i] != '{')
		return -1;
	i = jscan_ws(s, i + 1, n);
	if (i < n && s[i] == '}')
		return -1;
	for (;;) {
		if (i >= n || s[i] != '"')
			return -1;
		size_t kend = jscan_string_end(s, i, n);
		if (!kend)
			return -1;
		const char *key = s + i + 1;
		size_t klen = kend - i - 2;
		i = jscan_ws(s, kend, n);
		if (i >= n || s[i] != ':')
			return -1;
		i = jscan_ws(s, i + 1, n);
		size_t vend = jscan_value_end(s, i, n);
		if (!vend || vend <= i)
			return -1;
		if (klen == 6 && !memcmp(key, "events", 6)) {
			if (got_ev++ || s[i] != '[')
				return -1;
			*ev = s + i;
			*evlen = vend - i;
			*rows = 0;
			for (size_t j = jscan_ws(s, i + 1, vend); j < vend && s[j] != ']';) {
				size_t e = jscan_value_end(s, j, vend);
				if (!e || e <= j)
					return -1;
				++*rows;
				j = jscan_ws(s, e, vend);
				if (j < vend && s[j] == ',')
					j = jscan_ws(s, j + 1, vend);
				else if (j + 1 != vend)
					return -1;
			}
		} else if (klen == 4 && !memcmp(key, "next", 4)) {
			char pos[48];
			if (got_next++ || s[i] != '"' || vend - i - 2 >= sizeof pos)
				return -1;
			memcpy(pos, s + i + 1, vend - i - 2);
			pos[vend - i - 2] = '\0';
			if (pos_parse(pos, next) != 0)
				return -1;
		}
		i = jscan_ws(s, vend, n);
		if (i < n && s[i] == ',') {
			i = jscan_ws(s, i + 1, n);
			continue;
		}
		if (i < n && s[i] == '}' && jscan_ws(s, i + 1, n) == n)
			break;
		return -1;
	}
	return got_ev && got_next ? 0 : -1;
}

struct insert_q {
	const char *move, *tenant;
	char *rows_json;              /* the page's `events`, NUL-terminated */
	struct dp_move_pos next;
	int careful;
	struct dp_move_progress pr;
	int64_t inserted;
	int weeks_missing;            /* a row's week has no partition yet */
};

static enum db_status insert_tx(struct db_conn *c, void *ctx)
{
	struct insert_q *q = ctx;
	enum db_status st =
		dp_db_move_insert(c, q->move, q->tenant, q->rows_json, &q->next, q->careful, &q->pr, &q->inserted);
	if (st == DB_CONFLICT && !q->careful) {
		q->careful = 1; /* rows already here (a page posted again): again, skipping them */
		return DB_RETRY;
	}
	if (dp_db_no_partition(c, st))
		q->weeks_missing = 1;
	return st;
}

static enum db_status weeks_tx(struct db_conn *c, void *ctx)
{
	struct insert_q *q = ctx;
	long made = 0;
	enum db_status st = dp_db_events_weeks_ensure(c, NULL, q->rows_json, &made);
	if (st == DB_OK)
		log_info(NULL, "move: %ld weekly partition(s) made for the copied events", made);
	q->weeks_missing = st == DB_OK; /* made, or by another instance meanwhile: once more */
	return st;
}

enum http_result dp_handle_move_events_post(struct http_req *req)
{
	struct dp_app *app = http_req_app(req);
	const struct movecred *m = http_req_auth(req);
	struct insert_q q = { .move = m->id, .tenant = m->tenant };

	atomic_fetch_add(&requests[MR_EVENTS_POST], 1);
	int served = served_here(app, m->tenant);
	if (served)
		return refuse_served(req, served);
	const char *page, *ev = NULL;
	size_t len, evlen = 0, rows = 0;
	if (json_body(req, &page) != HTTP_GO_ON)
		return HTTP_REPLIED;
	len = strlen(page);
	if (page_split(page, len, &ev, &evlen, &rows, &q.next) != 0)
		return http_reply_problem(req, PROB_VALIDATION,
		                          "The body is not a page of the source's events: an object with `events` "
		                          "(an array) and `next` (\"<tx_id>.<seq>\"), each once.");
	if (rows > DP_MOVE_PAGE_MAX)
		return http_reply_invalid_field(req, "events", "A page holds at most %d events.", DP_MOVE_PAGE_MAX);
	if (!(q.rows_json = malloc(evlen + 1)))
		return HTTP_FAILED;
	memcpy(q.rows_json, ev, evlen);
	q.rows_json[evlen] = '\0';
	enum db_status st = db_tx(app->db, DB_READ_COMMITTED, insert_tx, &q);
	/* Events partitioned by week, and a row older than every week the
	 * cell had: its week made, and the page inserted once more. */
	if (st == DB_INVALID && q.weeks_missing && db_tx(app->db, DB_READ_COMMITTED, weeks_tx, &q) == DB_OK &&
	    q.weeks_missing) {
		q.weeks_missing = 0;
		st = db_tx(app->db, DB_READ_COMMITTED, insert_tx, &q);
	}
	free(q.rows_json);
	if (st == DB_INVALID || st == DB_CONFLICT)
		return http_reply_problem(req, PROB_VALIDATION,
		                          "The body is not a page of the source's events "
		                          "({\"events\": [...], \"next\": \"<tx_id>.<seq>\"}, each row complete).");
	if (st != DB_OK)
		return db_failed(req, st);
	atomic_fetch_add(&events_copied, (unsigned long long)q.inserted);
	struct buf b = { 0 };
	buf_printf(&b, "{\"next\":\"%" PRIu64 ".%" PRId64 "\",\"events\":%" PRId64 ",\"digest\":\"%s\",\"inserted\":%" PRId64 "}",
	           q.pr.next.tx, q.pr.next.seq, q.pr.events, q.pr.digest, q.inserted);
	return reply_buf(req, 200, &b);
}

static enum db_status progress_tx(struct db_conn *c, void *ctx)
{
	struct insert_q *q = ctx;
	return dp_db_move_progress(c, q->move, q->tenant, &q->pr);
}

enum http_result dp_handle_move_progress(struct http_req *req)
{
	struct dp_app *app = http_req_app(req);
	const struct movecred *m = http_req_auth(req);
	struct insert_q q = { .move = m->id, .tenant = m->tenant };

	atomic_fetch_add(&requests[MR_PROGRESS], 1);
	enum db_status st = db_tx(app->db, DB_REPEATABLE_READ, progress_tx, &q);
	if (st != DB_OK)
		return db_failed(req, st);
	struct buf b = { 0 };
	buf_printf(&b, "{\"next\":\"%" PRIu64 ".%" PRId64 "\",\"events\":%" PRId64 ",\"digest\":\"%s\",\"stored\":%" PRId64 "}",
	           q.pr.next.tx, q.pr.next.seq, q.pr.events, q.pr.digest, q.pr.stored);
	return reply_buf(req, 200, &b);
}

static enum db_status records_put_tx(struct db_conn *c, void *ctx)
{
	struct records_q *q = ctx;
	return dp_db_move_records_put(c, q->tenant, q->body, &q->idem, &q->usage, q->offset);
}

enum http_result dp_handle_move_records_post(struct http_req *req)
{
	struct dp_app *app = http_req_app(req);
	const struct movecred *m = http_req_auth(req);
	struct records_q q = { .tenant = m->tenant };

	atomic_fetch_add(&requests[MR_RECORDS_POST], 1);
	int served = served_here(app, m->tenant);
	if (served)
		return refuse_served(req, served);
	if (json_body(req, &q.body) != HTTP_GO_ON)
		return HTTP_REPLIED;
	enum db_status st = db_tx(app->db, DB_READ_COMMITTED, records_put_tx, &q);
	if (st == DB_INVALID || st == DB_CONFLICT)
		return http_reply_problem(req, PROB_VALIDATION,
		                          "The body is not the source's records ({\"idempotency\": [...], \"usage\": [...]}).");
	if (st != DB_OK)
		return db_failed(req, st);
	log_info(NULL, "move %s: records of tenant %s stored (%ld keys, %ld usage periods, feed offset %s)", m->id,
	         m->tenant, q.idem, q.usage, q.offset);
	return http_reply_json(req, 200, json_pack("{si si ss}", "idempotency", (int)q.idem, "usage", (int)q.usage,
	                                           "feed_offset", q.offset));
}

/* ---- either side ---- */

struct erase_q {
	const char *tenant;
	int batch;
	long deleted, events;
	int left;
	int64_t unreported;
};

static enum db_status erase_tx(struct db_conn *c, void *ctx)
{
	struct erase_q *q = ctx;
	return dp_db_tenant_erase_batch(c, q->tenant, q->batch, &q->deleted, &q->events, &q->left);
}

static enum db_status unreported_tx(struct db_conn *c, void *ctx)
{
	struct erase_q *q = ctx;
	return dp_db_move_unreported(c, q->tenant, &q->unreported);
}

enum http_result dp_handle_move_erase(struct http_req *req)
{
	struct dp_app *app = http_req_app(req);
	const struct movecred *m = http_req_auth(req);
	struct erase_q q = { .tenant = m->tenant, .batch = (int)app->cfg.erasure_batch };
	int source = !strcmp(m->from_cell, app->cfg.cell);
	enum db_status st;

	atomic_fetch_add(&requests[MR_ERASE], 1);
	if (source && (m->erase_after <= 0 || (int64_t)time(NULL) < m->erase_after))
		return http_reply_problem(req, PROB_CONFLICT,
		                          "The source's copy may be erased only once the move is done and its grace "
		                          "period has passed.");
	int served = served_here(app, m->tenant);
	if (served)
		return refuse_served(req, served);
	if (source) {
		if ((st = db_tx(app->db, DB_READ_COMMITTED, unreported_tx, &q)) != DB_OK)
			return db_failed(req, st);
		if (q.unreported > 0)
			return http_reply_problem(req, PROB_CONFLICT,
			                          "%" PRId64 " event(s) of the tenant stored here are not reported for billing "
			                          "yet; retry once they are.",
			                          q.unreported);
	}
	int64_t until = timefmt_now_us() + ERASE_BUDGET_MS * 1000LL, events = 0, rows = 0;
	int done = 0;
	while (!done && timefmt_now_us() < until) {
		if ((st = db_tx(app->db, DB_READ_COMMITTED, erase_tx, &q)) != DB_OK)
			return db_failed(req, st);
		events += q.events;
		rows += q.deleted;
		done = !q.left;
		if (q.deleted == 0 && q.left)
			break; /* held back (usage being reported): the caller retries */
	}
	log_info(NULL, "move %s: %s copy of tenant %s: %" PRId64 " events, %" PRId64 " rows erased%s", m->id,
	         source ? "source" : "target", m->tenant, events, rows, done ? ", none left" : "");
	return http_reply_json(req, 200, json_pack("{sb sI sI}", "done", done, "events_deleted", (json_int_t)events,
	                                           "rows_deleted", (json_int_t)rows));
}
