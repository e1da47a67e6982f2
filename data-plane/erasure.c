/* Erasure of deleted tenants' data (see erasure.h). */
#include "erasure.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "background.h"
#include "buf.h"
#include "cp_client.h"
#include "dp.h"
#include "dpdb.h"
#include "erasure_report.h"
#include "log.h"
#include "snapshot.h"

#define SEND_TIMEOUT_MS 10000L
#define RESPONSE_MAX 4096
/* The pause between batches is slept in slices this long, so that a stop
 * is never kept waiting by it. */
#define PAUSE_SLICE_MS 50

struct dp_erasure {
	struct dp_app *app;
	struct dp_loop *loop;
	atomic_int stopping;
	atomic_ullong events_deleted, rows_deleted, batches, reports_sent, report_failures;
	atomic_long pending;       /* region-wide, as of the last pass */
};

struct todo {
	char (*ids)[37];
	size_t n, cap;
	int failed;
};

static void on_todo(void *ctx, const char *tenant)
{
	struct todo *t = ctx;
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char(*ids)[37] = realloc(t->ids, cap * sizeof *ids);
		if (!ids) {
			t->failed = 1;
			return;
		}
		t->ids = ids;
		t->cap = cap;
	}
	snprintf(t->ids[t->n++], 37, "%s", tenant);
}

struct todo_ctx {
	const char *deleted;
	struct todo todo;
	long pending;
};

static enum db_status todo_tx(struct db_conn *c, void *ctx)
{
	struct todo_ctx *t = ctx;
	t->todo.n = 0;
	return dp_db_erasure_todo(c, t->deleted, on_todo, &t->todo);
}

static enum db_status pending_tx(struct db_conn *c, void *ctx)
{
	struct todo_ctx *t = ctx;
	return dp_db_erasure_pending(c, t->deleted, &t->pending);
}

struct batch_ctx {
	const char *tenant;
	int batch;
	struct dp_erasure_state s;
};

static enum db_status batch_tx(struct db_conn *c, void *ctx)
{
	struct batch_ctx *b = ctx;
	return dp_db_erasure_batch(c, b->tenant, b->batch, &b->s);
}

struct mark_ctx {
	const char *tenant, *error;
	const struct dp_erasure_state *s;
};

static enum db_status mark_tx(struct db_conn *c, void *ctx)
{
	struct mark_ctx *m = ctx;
	if (m->error)
		return dp_db_erasure_report_failed(c, m->tenant, m->error);
	return dp_db_erasure_reported(c, m->tenant, m->s->events_deleted, m->s->rows_deleted, m->s->done);
}

/* Sleeps `ms`, or less when told to stop; returns 1 when told to stop. */
static int pause_ms(struct dp_erasure *e, int64_t ms)
{
	while (ms > 0 && !atomic_load(&e->stopping)) {
		int64_t slice = ms < PAUSE_SLICE_MS ? ms : PAUSE_SLICE_MS;
		struct timespec ts = { .tv_sec = slice / 1000, .tv_nsec = (long)(slice % 1000) * 1000000 };
		nanosleep(&ts, NULL);
		ms -= slice;
	}
	return atomic_load(&e->stopping);
}

/* POSTs the figures of `s`. Returns the HTTP status, or 0 when there was
 * none; `why` says why it failed. */
static long send_report(struct dp_erasure *e, const char *tenant, const struct dp_erasure_state *s,
                        char *why, size_t whylen)
{
	struct dp_app *app = e->app;
	struct erasure_report rep = { .tenant_id = tenant, .done = s->done,
		                          .events_deleted = s->events_deleted, .rows_deleted = s->rows_deleted };
	struct dp_cp_request r;
	char path[128], key[200];
	char *body = NULL;
	json_t *doc = erasure_report_build(&rep);
	long status = 0;

	why[0] = '\0';
	/* The same figures are the same report: a retry, or another instance
	 * reporting them too, is answered as a replay. */
	snprintf(path, sizeof path, "/v1/regions/%s/erasures", app->cfg.region);
	snprintf(key, sizeof key, "Idempotency-Key: erasure-%s-%" PRId64 "-%" PRId64 "-%s", tenant,
	         s->events_deleted, s->rows_deleted, s->done ? "done" : "pending");
	if (!doc || !(body = json_dumps(doc, JSON_COMPACT))) {
		snprintf(why, whylen, "the report could not be built");
		json_decref(doc);
		return 0;
	}
	json_decref(doc);
	if (dp_cp_request_begin(&r, &app->cfg, path, RESPONSE_MAX, SEND_TIMEOUT_MS, &e->stopping) ||
	    dp_cp_request_header(&r, "Content-Type: application/json") || dp_cp_request_header(&r, key) ||
	    dp_cp_request_header(&r, "Expect:")) {
		snprintf(why, whylen, "cannot set up the call (DP_CONTROL_PLANE_URL too long, or out of memory)");
		goto out;
	}
	curl_easy_setopt(r.easy, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(r.easy, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	CURLcode rc = curl_easy_perform(r.easy);
	if (rc == CURLE_OK) {
		curl_easy_getinfo(r.easy, CURLINFO_RESPONSE_CODE, &status);
		if (status >= 300) {
			json_t *ans = r.body.p ? json_loadb(r.body.p, r.body.len, 0, NULL) : NULL;
			const char *d = json_string_value(json_object_get(ans, "detail"));
			snprintf(why, whylen, "HTTP %ld: %.300s", status, d ? d : "no detail");
			json_decref(ans);
		}
	} else {
		snprintf(why, whylen, "%s", dp_cp_request_error(&r, rc));
	}
out:
	dp_cp_request_end(&r);
	free(body);
	return status;
}

/* Erases `tenant` batch by batch, then reports its figures if they are
 * due. Returns 0, or -1 when the database failed (no more work this
 * pass); sets *cp_away when the control plane could not be reached (no
 * more reports this pass, the work goes on). */
static int erase_tenant(struct dp_erasure *e, const char *tenant, int *cp_away)
{
	struct dp_app *app = e->app;
	struct batch_ctx b = { .tenant = tenant, .batch = (int)app->cfg.erasure_batch };

	for (;;) {
		enum db_status st = db_tx(app->db, DB_READ_COMMITTED, batch_tx, &b);
		if (st != DB_OK) {
			log_warn_limited(NULL, "erasure of tenant %s: a batch failed (%s); retried on the next pass",
			                 tenant, db_status_str(st));
			return -1;
		}
		if (b.s.busy)
			return 0; /* another instance is on it, and reports it */
		if (b.s.deleted > 0) {
			atomic_fetch_add(&e->batches, 1);
			atomic_fetch_add(&e->rows_deleted, (unsigned long long)b.s.deleted);
			atomic_fetch_add(&e->events_deleted, (unsigned long long)b.s.events);
			log_debug(NULL, "erasure of tenant %s: %ld row(s) deleted, %ld of them events", tenant,
			          b.s.deleted, b.s.events);
		}
		if (b.s.deleted == 0)
			break;
		if (pause_ms(e, app->cfg.erasure_pause_ms))
			return 0;
	}
	if (!b.s.report_due || *cp_away)
		return 0;
	char why[400];
	long status = send_report(e, tenant, &b.s, why, sizeof why);
	struct mark_ctx m = { .tenant = tenant, .s = &b.s };
	if (status == 200 || status == 201) {
		atomic_fetch_add(&e->reports_sent, 1);
		if (b.s.done)
			log_info(NULL, "erasure of tenant %s complete: %" PRId64 " event(s), %" PRId64
			               " row(s) in all, acknowledged by the control plane",
			         tenant, b.s.events_deleted, b.s.rows_deleted);
	} else {
		atomic_fetch_add(&e->report_failures, 1);
		m.error = why;
		if (status >= 400 && status < 500)
			/* Refused as it is (a document that disagrees with the control
			 * plane, a credential of another region): an operator's to
			 * look at; the figures stay due and are sent again later. */
			log_warn_limited(NULL, "erasure report of tenant %s refused: %s", tenant, why);
		else {
			log_warn_limited(NULL, "erasure report of tenant %s not delivered (%s); retried on the next pass",
			                 tenant, why);
			*cp_away = 1;
		}
	}
	if (db_tx(app->db, DB_READ_COMMITTED, mark_tx, &m) != DB_OK)
		return -1; /* acknowledged but not marked: sent again, a replay */
	return 0;
}

static int64_t step(void *ctx)
{
	struct dp_erasure *e = ctx;
	struct dp_app *app = e->app;
	struct buf deleted = { 0 };
	struct todo_ctx t = { 0 };

	const struct dp_snapshot *s = dp_snaps_enter(app->snaps);
	size_t it = 0;
	for (const struct cfgdoc_tenant *dt; s && (dt = cfgdoc_tenants_next(s->doc, &it));)
		if (dt->status == 'd')
			db_array_add(&deleted, dt->id, strlen(dt->id));
	dp_snaps_leave(app->snaps);
	db_array_end(&deleted);
	if (!s)
		goto out; /* no document yet: nothing is known to be deleted */
	if (deleted.failed) {
		log_error(NULL, "erasure: out of memory listing deleted tenants");
		goto out;
	}
	t.deleted = deleted.p;
	if (db_tx(app->db, DB_AUTOCOMMIT, todo_tx, &t) != DB_OK || t.todo.failed)
		goto out;
	int cp_away = 0;
	for (size_t i = 0; i < t.todo.n && !atomic_load(&e->stopping); i++)
		if (erase_tenant(e, t.todo.ids[i], &cp_away) != 0)
			break;
	if (db_tx(app->db, DB_AUTOCOMMIT, pending_tx, &t) == DB_OK)
		atomic_store(&e->pending, t.pending);
out:
	free(t.todo.ids);
	buf_free(&deleted);
	return app->cfg.erasure_interval_ms;
}

struct dp_erasure *dp_erasure_start(struct dp_app *app)
{
	struct dp_erasure *e = calloc(1, sizeof *e);
	if (!e)
		return NULL;
	e->app = app;
	if (!(e->loop = dp_loop_start("erasure", step, e))) {
		free(e);
		return NULL;
	}
	return e;
}

void dp_erasure_stop(struct dp_erasure *e)
{
	if (!e)
		return;
	atomic_store(&e->stopping, 1);
	dp_loop_stop(e->loop);
	free(e);
}

void dp_erasure_metrics(struct dp_erasure *e, FILE *out)
{
	fprintf(out,
	        "# HELP dp_erasure_events_deleted_total Events of deleted tenants erased by this instance.\n"
	        "# TYPE dp_erasure_events_deleted_total counter\ndp_erasure_events_deleted_total %llu\n"
	        "# HELP dp_erasure_rows_deleted_total Rows of deleted tenants erased by this instance, every table (events included).\n"
	        "# TYPE dp_erasure_rows_deleted_total counter\ndp_erasure_rows_deleted_total %llu\n"
	        "# HELP dp_erasure_batches_total Erasure batches that deleted rows (each at most DP_ERASURE_BATCH rows).\n"
	        "# TYPE dp_erasure_batches_total counter\ndp_erasure_batches_total %llu\n"
	        "# HELP dp_erasure_reports_sent_total Erasure reports the control plane acknowledged.\n"
	        "# TYPE dp_erasure_reports_sent_total counter\ndp_erasure_reports_sent_total %llu\n"
	        "# HELP dp_erasure_report_failures_total Erasure reports not delivered or refused (sent again on a later pass).\n"
	        "# TYPE dp_erasure_report_failures_total counter\ndp_erasure_report_failures_total %llu\n"
	        "# HELP dp_region_erasure_tenants_pending Deleted tenants not yet erased, or whose erasure the control plane has not acknowledged, region-wide: every instance reports the same figure (max by region, never sum).\n"
	        "# TYPE dp_region_erasure_tenants_pending gauge\ndp_region_erasure_tenants_pending{region=\"%s\"} %ld\n",
	        (unsigned long long)e->events_deleted, (unsigned long long)e->rows_deleted,
	        (unsigned long long)e->batches, (unsigned long long)e->reports_sent,
	        (unsigned long long)e->report_failures, e->app->cfg.region, (long)e->pending);
}
