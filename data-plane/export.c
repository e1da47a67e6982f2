/* GET /v1/events/export (export.h): the handler, the stream's pages and
 * the instance's bound on exports at once. */
#include "export.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "buf.h"
#include "dp.h"
#include "dpdb.h"
#include "export_format.h"
#include "gzip.h"
#include "http.h"
#include "log.h"

/* Retry-After of a refusal for want of a slot: an export takes seconds. */
#define RETRY_AFTER_BUSY "5"
#define RETRY_AFTER_DB "2"
/* zlib's level: 1 costs a third of the CPU of 6 for some 10% more bytes,
 * and an export is CPU-bound on the worker thread. */
#define GZIP_LEVEL 1
/* How long an export waits, before its first page, for the appender to
 * take in what the tenant committed (dp_log_checkpoint_head). */
#define LOG_HEAD_BUDGET_MS 2000
/* Leaves per `log` line of the NDJSON trailer (export_format.h). */
#define LOG_LINE_LEAVES 1000

enum { OUT_COMPLETE, OUT_FAILED, OUT_ABORTED, OUT_REFUSED, OUT__COUNT };
static const char *const outcome_names[OUT__COUNT] = { "complete", "failed", "aborted", "refused" };

struct dp_exports {
	long limit;
	atomic_long running;
	atomic_ullong outcomes[OUT__COUNT];
	atomic_ullong events;
};

struct dp_exports *dp_exports_new(long concurrency)
{
	struct dp_exports *x = calloc(1, sizeof *x);
	if (x)
		x->limit = concurrency;
	return x;
}

void dp_exports_free(struct dp_exports *x)
{
	free(x);
}

void dp_exports_metrics(struct dp_exports *x, FILE *out)
{
	if (!x)
		return;
	fprintf(out,
	        "# HELP dp_exports_running Exports this instance is streaming now.\n"
	        "# TYPE dp_exports_running gauge\n"
	        "dp_exports_running %ld\n"
	        "# HELP dp_exports_total Exports ended, by outcome (refused: no slot free).\n"
	        "# TYPE dp_exports_total counter\n",
	        atomic_load(&x->running));
	for (int i = 0; i < OUT__COUNT; i++)
		fprintf(out, "dp_exports_total{outcome=\"%s\"} %llu\n", outcome_names[i], atomic_load(&x->outcomes[i]));
	fprintf(out,
	        "# HELP dp_export_events_total Events read for exports.\n"
	        "# TYPE dp_export_events_total counter\n"
	        "dp_export_events_total %llu\n",
	        atomic_load(&x->events));
}

/* One export in flight: the query (its strings are the request's, valid
 * while the stream is read, but the tenant's id is copied) and what the
 * last page produced. */
struct export {
	struct dp_app *app;
	char req_id[65];
	char tenant[37];
	struct dp_event_query q;
	enum dp_export_format format;
	struct gzip_stream *gz;   /* NULL: not compressed */
	struct buf page;          /* a page's records before compression */
	struct buf out;           /* bytes to send; `sent` of them are */
	size_t sent;
	int more;                 /* another page may follow */
	int finished;             /* everything is in `out` */
	int outcome;              /* OUT_*, or -1 while running */
	long rows;                /* of the page being read */
	int64_t last_us, last_seq;
	int bad_row;
	int began;                /* the CSV header is out */
	long long total;
	int events_done;          /* the last page of events is read */
	/* The NDJSON trailer (log on): the head's checkpoint, taken before
	 * the first page (tree_size 0: no trailer), and the next leaf to
	 * write; leaf hashes and removed indexes of one line. */
	struct dp_checkpoint head;
	int complete;             /* no filter, no cursor: every leaf's event is in the export */
	int64_t log_from;
	unsigned char (*leaves)[32];
	char **ids; /* the leaves' event ids (NULL: removed), owned */
	int64_t *removed;
	int nleaves, nremoved;
	int64_t next_leaf;
};

static int on_row(void *ctx, const struct dp_event_row *row)
{
	struct export *ex = ctx;
	struct buf *dst = ex->gz ? &ex->page : &ex->out;
	if (dp_export_event(ex->format, row->body, row->body_len, dst) != 0) {
		ex->bad_row = 1;
		return 1;
	}
	ex->rows++;
	ex->last_us = row->occurred_us;
	ex->last_seq = row->seq;
	return 0;
}

static void free_ids(struct export *ex)
{
	for (int i = 0; ex->ids && i < ex->nleaves; i++) {
		free(ex->ids[i]);
		ex->ids[i] = NULL;
	}
}

static void on_leaf(void *ctx, int64_t index, const unsigned char hash[32], const char *event_id)
{
	struct export *ex = ctx;
	/* Exactly the leaves asked for, each once and in order, or the page
	 * fails: a line must never claim a leaf it does not hold. */
	if (index != ex->next_leaf || ex->nleaves == LOG_LINE_LEAVES) {
		ex->bad_row = 1;
		return;
	}
	if (event_id && !(ex->ids[ex->nleaves] = strdup(event_id))) {
		ex->bad_row = 1;
		return;
	}
	memcpy(ex->leaves[ex->nleaves++], hash, 32);
	if (!event_id)
		ex->removed[ex->nremoved++] = index;
	ex->next_leaf++;
}

/* The trailer's next `log` line, and the `checkpoint` line after the
 * last one. A tx body. */
static enum db_status log_tx(struct db_conn *c, void *ctx)
{
	struct export *ex = ctx;
	int64_t n = ex->head.tree_size - ex->log_from;
	if (n > LOG_LINE_LEAVES)
		n = LOG_LINE_LEAVES;
	ex->page.len = 0;
	ex->out.len = 0;
	ex->sent = 0;
	ex->bad_row = 0;
	free_ids(ex); /* a retry's, or the previous line's */
	ex->nleaves = ex->nremoved = 0;
	ex->next_leaf = ex->log_from;
	enum db_status st = dp_db_log_leaves(c, ex->tenant, ex->log_from, (int)n, on_leaf, ex);
	if (st != DB_OK)
		return st;
	if (ex->bad_row || ex->nleaves != n)
		return DB_ERROR;
	struct buf *dst = ex->gz ? &ex->page : &ex->out;
	dp_export_log_line(dst, ex->tenant, ex->head.tree_size, ex->complete, ex->log_from,
	                   (const unsigned char(*)[32])ex->leaves, (const char *const *)ex->ids, ex->nleaves,
	                   ex->removed, ex->nremoved);
	if (ex->log_from + n == ex->head.tree_size)
		dp_export_checkpoint_line(dst, ex->head.jws);
	return dst->failed ? DB_ERROR : DB_OK;
}

static enum db_status page_tx(struct db_conn *c, void *ctx)
{
	struct export *ex = ctx;
	/* The body may run again (a retry): it starts from the same place. */
	ex->rows = 0;
	ex->bad_row = 0;
	ex->page.len = 0;
	ex->out.len = 0;
	ex->sent = 0;
	if (!ex->began)
		dp_export_begin(ex->format, ex->gz ? &ex->page : &ex->out);
	enum db_status st = dp_db_events_scan(c, &ex->q, on_row, ex);
	if (st == DB_OK && ex->bad_row)
		st = DB_ERROR;
	return st;
}

/* Reads the next page into `out` (compressed when asked, the gzip trailer
 * after the last page): a page of events, then, once they are all out,
 * a line of the log's trailer. Runs when `out` has all been sent. Returns
 * DB_OK or the database's failure. */
static enum db_status next_page(struct export *ex)
{
	int events = !ex->events_done;
	enum db_status st = db_tx(ex->app->db, DB_AUTOCOMMIT, events ? page_tx : log_tx, ex);
	if (st != DB_OK) {
		if (ex->bad_row)
			log_error(ex->req_id, events ? "a stored event is not a JSON object: the export stops"
			                             : "the tenant's log lacks leaves below its checkpoint: the export stops");
		return st;
	}
	if (events) {
		atomic_fetch_add(&ex->app->exports->events, (unsigned long long)ex->rows);
		ex->total += ex->rows;
		ex->began = 1;
		ex->events_done = ex->rows < ex->q.limit;
		if (ex->rows) {
			ex->q.has_cursor = 1;
			ex->q.cursor_us = ex->last_us;
			ex->q.cursor_seq = ex->last_seq;
		}
	} else {
		ex->log_from = ex->next_leaf;
	}
	ex->more = !ex->events_done || ex->log_from < ex->head.tree_size;
	if (ex->gz) {
		/* A sync flush per page: the client can read what it got while
		 * the next page is read, for a few bytes. */
		if (gzip_write(ex->gz, ex->page.p, ex->page.len, ex->more, &ex->out) != 0 ||
		    (!ex->more && gzip_finish(ex->gz, &ex->out) != 0))
			return DB_ERROR;
	}
	if (ex->out.failed)
		return DB_ERROR;
	ex->finished = !ex->more;
	return DB_OK;
}

/* The stream's fill (http.h): at most one page per call. */
static long export_fill(void *cls, char *dst, size_t max)
{
	struct export *ex = cls;
	/* An empty page (uncompressed) is skipped: the last page of events
	 * may be empty with the trailer still to come. */
	while (ex->sent == ex->out.len) {
		if (ex->finished) {
			ex->outcome = OUT_COMPLETE;
			return HTTP_STREAM_END;
		}
		enum db_status st = next_page(ex);
		if (st != DB_OK) {
			log_warn(ex->req_id, "export cut after %lld events: %s", ex->total, db_status_str(st));
			ex->outcome = OUT_FAILED;
			return HTTP_STREAM_BROKEN;
		}
	}
	size_t n = ex->out.len - ex->sent;
	if (n > max)
		n = max;
	memcpy(dst, ex->out.p + ex->sent, n);
	ex->sent += n;
	return (long)n;
}

static void export_free(void *cls)
{
	struct export *ex = cls;
	if (!ex)
		return;
	struct dp_exports *x = ex->app->exports;
	/* Neither completed nor failed: the client went away, or the server
	 * stopped, before the end. */
	atomic_fetch_add(&x->outcomes[ex->outcome >= 0 ? ex->outcome : OUT_ABORTED], 1);
	atomic_fetch_sub(&x->running, 1);
	gzip_free(ex->gz);
	buf_free(&ex->page);
	buf_free(&ex->out);
	dp_checkpoint_clear(&ex->head);
	free_ids(ex);
	free(ex->ids);
	free(ex->leaves);
	free(ex->removed);
	free(ex);
}

/* The format an Accept header names: exactly one of text/csv and
 * application/x-ndjson listed (not refused with q=0). -1 otherwise:
 * neither (a wildcard says nothing about which), or both. */
static int accept_format(const char *accept)
{
	int csv = http_accept_lists(accept, "text/csv"), ndjson = http_accept_lists(accept, "application/x-ndjson");
	return csv == ndjson ? -1 : csv ? DP_EXPORT_CSV : DP_EXPORT_NDJSON;
}

/* 1 when `q` selects every event of its tenant: no filter, no cursor
 * (the order does not matter). */
static int query_whole(const struct dp_event_query *q)
{
	return !q->n_actor && !q->n_actor_type && !q->n_action && !q->n_target && !q->n_target_type && !q->n_meta &&
	       !q->q && q->since_us < 0 && q->until_us < 0 && q->received_since_us < 0 && q->received_until_us < 0 &&
	       !q->has_cursor;
}

/* The trailer's checkpoint: the head of the tenant's log once what it
 * committed before now is appended, so that every leaf below it was
 * committed before the first page is read. */
static enum db_status log_head(struct export *ex)
{
	struct db_conn *c = db_acquire(ex->app->db);
	if (!c)
		return DB_UNAVAILABLE;
	int rc = dp_log_checkpoint_head(ex->app->log, c, ex->tenant, LOG_HEAD_BUDGET_MS, &ex->head);
	db_release(ex->app->db, c);
	if (rc != 0) {
		log_warn(ex->req_id, "no checkpoint of the tenant's log for the export");
		return DB_UNAVAILABLE;
	}
	if (ex->head.tree_size > 0 && !ex->head.jws)
		return DB_ERROR;
	return DB_OK;
}

static enum http_result db_failed(struct http_req *req, enum db_status st)
{
	if (st == DB_UNAVAILABLE || st == DB_RETRY) {
		http_add_header(req, "Retry-After", RETRY_AFTER_DB);
		return http_reply_problem(req, PROB_UNAVAILABLE, "The region's database is unavailable. Retry later.");
	}
	return HTTP_FAILED;
}

enum http_result dp_handle_events_export(struct http_req *req)
{
	struct dp_app *app = http_req_app(req);
	const struct dp_auth *a = http_req_auth(req);
	struct dp_exports *x = app->exports;
	struct export *ex = NULL;
	enum http_result rc = HTTP_FAILED;
	int fmt;

	if (dp_events_admit(req, a, CFGDOC_SCOPE_READ) != HTTP_GO_ON)
		return HTTP_REPLIED;
	const char *f = http_req_query(req, "format");
	if (f)
		fmt = !strcmp(f, "ndjson") ? DP_EXPORT_NDJSON : !strcmp(f, "csv") ? DP_EXPORT_CSV : -1;
	else
		fmt = accept_format(http_req_header(req, "Accept"));
	if (fmt < 0)
		return http_reply_invalid_field(req, "format",
		                                f ? "format must be ndjson or csv."
		                                  : "format is required: ndjson or csv (or Accept: text/csv or "
		                                    "application/x-ndjson alone).");
	/* An export is every matching event: a page size does not apply. */
	if (http_req_query(req, "limit"))
		return http_reply_invalid_field(req, "limit",
		                                "limit does not apply to an export, which returns every matching event.");
	if (!(ex = calloc(1, sizeof *ex)))
		return HTTP_FAILED;
	ex->app = app;
	ex->outcome = -1;
	ex->format = (enum dp_export_format)fmt;
	snprintf(ex->req_id, sizeof ex->req_id, "%s", http_req_id(req));
	snprintf(ex->tenant, sizeof ex->tenant, "%s", a->tenant_id);
	if (dp_events_query_parse(req, &ex->q) != HTTP_GO_ON) {
		free(ex);
		return HTTP_REPLIED;
	}
	ex->q.tenant = ex->tenant;
	ex->q.limit = DP_EXPORT_PAGE;
	ex->complete = query_whole(&ex->q);
	int gz = gzip_accepted(http_req_header(req, "Accept-Encoding"));
	if (gz && !(ex->gz = gzip_new(GZIP_LEVEL))) {
		free(ex);
		return HTTP_FAILED;
	}
	/* A slot, held until the response is done (export_free). */
	if (atomic_fetch_add(&x->running, 1) >= x->limit) {
		atomic_fetch_sub(&x->running, 1);
		atomic_fetch_add(&x->outcomes[OUT_REFUSED], 1);
		gzip_free(ex->gz);
		free(ex);
		http_add_header(req, "Retry-After", RETRY_AFTER_BUSY);
		return http_reply_problem(req, PROB_UNAVAILABLE,
		                          "This instance is streaming its maximum of %ld exports. Retry later.", x->limit);
	}
	/* The trailer's checkpoint before the first page (NDJSON with the log
	 * on), then the first page, both before the status: a database that
	 * fails now gets a 503 the client can act on, not a broken 200. */
	enum db_status st = DB_OK;
	if (ex->format == DP_EXPORT_NDJSON && app->log) {
		if (!(ex->leaves = malloc(LOG_LINE_LEAVES * sizeof *ex->leaves)) ||
		    !(ex->ids = calloc(LOG_LINE_LEAVES, sizeof *ex->ids)) ||
		    !(ex->removed = malloc(LOG_LINE_LEAVES * sizeof *ex->removed))) {
			ex->outcome = OUT_FAILED;
			goto out;
		}
		st = log_head(ex);
	}
	if (st == DB_OK)
		st = next_page(ex);
	if (st != DB_OK) {
		ex->outcome = OUT_FAILED;
		rc = db_failed(req, st);
		goto out;
	}
	char name[96], stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
	snprintf(name, sizeof name, "attachment; filename=\"events-%s.%s\"", stamp,
	         ex->format == DP_EXPORT_CSV ? "csv" : "ndjson");
	if (http_add_header(req, "Content-Disposition", name) != 0 ||
	    http_add_header(req, "Vary", "Accept-Encoding") != 0 ||
	    http_add_header(req, "Cache-Control", "no-store") != 0 ||
	    (ex->gz && http_add_header(req, "Content-Encoding", "gzip") != 0))
		goto out;
	/* From here the response owns `ex`, whatever happens. */
	return http_reply_stream(req, 200,
	                         ex->format == DP_EXPORT_CSV ? "text/csv; charset=utf-8" : "application/x-ndjson",
	                         export_fill, export_free, ex);
out:
	export_free(ex);
	return rc;
}
