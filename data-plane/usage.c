/* Usage refresher and reporter (see usage.h). */
#include "usage.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "background.h"
#include "buf.h"
#include "cp_client.h"
#include "cp_errors.h"
#include "dp.h"
#include "dpdb.h"
#include "http.h"
#include "limits.h"
#include "log.h"
#include "partitions.h"
#include "snapshot.h"
#include "timefmt.h"
#include "usage_report.h"

/* A row changed by a transaction that committed late still shows an
 * updated_at before the previous refresh started: rows are read again
 * for this long after. */
#define REFRESH_OVERLAP_US (INT64_C(10) * 1000000)
#define SEND_TIMEOUT_MS 10000L
#define BACKOFF_MAX_MS 60000
#define MAX_BATCHES_PER_STEP 50
#define RESPONSE_MAX 4096

struct dp_usage {
	struct dp_app *app;
	struct dp_loop *refresher, *reporter;
	atomic_int stopping;
	/* refresher */
	char period[8];
	int64_t last_start_us;   /* -1: read everything */
	atomic_llong backlog_batches, backlog_events, unbatched_events;
	/* reporter */
	int64_t backoff_ms;
	atomic_ullong batches_sent, events_sent, batches_rejected, send_failures;
	atomic_llong last_sent_us;
};

/* ---- refresher ---- */

struct refresh_ctx {
	struct dp_usage *u;
	const char *period;
	int64_t since_us, as_of_us;
	int64_t batches, events, unbatched;
};

static void on_row(void *ctx, const char *tenant, const char *period, int64_t total)
{
	struct refresh_ctx *r = ctx;
	dp_limits_usage_set(r->u->app->limits, tenant, period, total, r->as_of_us);
}

static enum db_status refresh_tx(struct db_conn *c, void *ctx)
{
	struct refresh_ctx *r = ctx;
	enum db_status st = dp_db_usage_changed(c, r->period, r->since_us, on_row, r);
	if (st == DB_OK)
		st = dp_db_usage_backlog(c, &r->batches, &r->events, &r->unbatched);
	return st;
}

static int64_t refresh_step(void *ctx)
{
	struct dp_usage *u = ctx;
	char period[8];
	int64_t now = timefmt_now_us();

	timefmt_month(now, NULL, NULL, period);
	if (strcmp(period, u->period)) {
		memcpy(u->period, period, sizeof period);
		u->last_start_us = -1;
	}
	struct refresh_ctx r = {
		.u = u, .period = period, .as_of_us = now,
		.since_us = u->last_start_us < 0 ? -1 : u->last_start_us - REFRESH_OVERLAP_US,
	};
	if (db_tx(u->app->db, DB_AUTOCOMMIT, refresh_tx, &r) == DB_OK) {
		u->last_start_us = now;
		dp_limits_usage_refreshed(u->app->limits, period, now);
		atomic_store(&u->backlog_batches, r.batches);
		atomic_store(&u->backlog_events, r.events);
		atomic_store(&u->unbatched_events, r.unbatched);
	}
	return u->app->cfg.usage_refresh_ms;
}

/* ---- reporter ---- */

struct next_ctx {
	const char *prefix;
	struct dp_outbox_batch b;
	int cut;   /* cut a batch first */
};

struct cut_ctx {
	json_t *report;
	int records, failed;
	int64_t events;
};

static void on_record(void *ctx, const struct usage_record *r)
{
	struct cut_ctx *k = ctx;
	if (usage_report_add(k->report, r) != 0) {
		k->failed = 1;
		return;
	}
	k->records++;
	k->events += r->events;
}

/* Moves unreported counters into a new batch in the outbox. */
static enum db_status cut(struct db_conn *c, const char *prefix)
{
	struct cut_ctx k = { .report = usage_report_new() };
	enum db_status st = DB_ERROR;
	char *body = NULL;

	if (!k.report)
		goto out;
	st = dp_db_usage_take(c, USAGE_REPORT_MAX_RECORDS, USAGE_REPORT_MAX_EVENTS, on_record, &k);
	if (st != DB_OK)
		goto out;
	if (k.failed || !(body = json_dumps(k.report, JSON_COMPACT))) {
		log_error(NULL, "a usage batch could not be built from the counters");
		st = DB_ERROR;
		goto out;
	}
	st = dp_db_outbox_insert(c, prefix, body, k.records, k.events);
out:
	free(body);
	json_decref(k.report);
	return st;
}

static enum db_status next_tx(struct db_conn *c, void *ctx)
{
	struct next_ctx *n = ctx;
	free(n->b.body);
	n->b.body = NULL;
	if (n->cut) {
		enum db_status st = cut(c, n->prefix);
		if (st != DB_OK)
			return st;
	}
	return dp_db_outbox_next(c, &n->b);
}

struct mark_ctx {
	int64_t id;
	enum dp_outbox_outcome o;
	const char *error;
};

static enum db_status mark_tx(struct db_conn *c, void *ctx)
{
	struct mark_ctx *m = ctx;
	return dp_db_outbox_mark(c, m->id, m->o, m->error);
}

/* POSTs one batch. Returns the HTTP status, or 0 when there was none;
 * `why` gets a short reason for the log and the outbox row. */
static long send_batch(struct dp_usage *u, const struct dp_outbox_batch *b, char *why, size_t whylen)
{
	struct dp_cp_request r;
	char key[160];
	long status = 0;

	why[0] = '\0';
	snprintf(key, sizeof key, "Idempotency-Key: %s", b->key);
	if (dp_cp_request_begin(&r, &u->app->cfg, "/v1/usage", RESPONSE_MAX, SEND_TIMEOUT_MS, &u->stopping) ||
	    dp_cp_request_header(&r, "Content-Type: application/json") ||
	    dp_cp_request_header(&r, key) || dp_cp_request_header(&r, "Expect:")) {
		snprintf(why, whylen, "cannot set up the call (DP_CONTROL_PLANE_URL too long, or out of memory)");
		goto out;
	}
	curl_easy_setopt(r.easy, CURLOPT_POSTFIELDS, b->body);
	curl_easy_setopt(r.easy, CURLOPT_POSTFIELDSIZE, (long)strlen(b->body));
	CURLcode rc = curl_easy_perform(r.easy);
	if (rc == CURLE_OK) {
		curl_easy_getinfo(r.easy, CURLINFO_RESPONSE_CODE, &status);
		if (status >= 300) {
			/* The problem's detail, when there is one, says why. */
			json_t *doc = r.body.p ? json_loadb(r.body.p, r.body.len, 0, NULL) : NULL;
			const char *d = json_string_value(json_object_get(doc, "detail"));
			snprintf(why, whylen, "HTTP %ld: %.300s", status, d ? d : "no detail");
			json_decref(doc);
		}
	} else {
		snprintf(why, whylen, "%s", dp_cp_request_error(&r, rc));
	}
out:
	dp_cp_request_end(&r);
	return status;
}

static int64_t report_step(void *ctx)
{
	struct dp_usage *u = ctx;
	struct dp_app *app = u->app;
	char prefix[96], why[400];
	int64_t interval = app->cfg.usage_report_interval_ms;

	/* A cell's batches are named after it: each cell's database numbers
	 * its batches from 1, so a region-wide name would repeat across cells. */
	snprintf(prefix, sizeof prefix, "usage-%s-", app->cfg.cell ? app->cfg.cell : app->cfg.region);
	for (int i = 0; i < MAX_BATCHES_PER_STEP && !atomic_load(&u->stopping); i++) {
		/* Batches already cut go first, oldest first; then a new one. */
		struct next_ctx n = { .prefix = prefix };
		enum db_status st = db_tx(app->db, DB_READ_COMMITTED, next_tx, &n);
		if (st == DB_NOT_FOUND) {
			n.cut = 1;
			st = db_tx(app->db, DB_READ_COMMITTED, next_tx, &n);
		}
		if (st == DB_NOT_FOUND)
			break; /* nothing to report */
		if (st != DB_OK) {
			free(n.b.body);
			return interval; /* the database is away: the next step tries again */
		}
		long status = send_batch(u, &n.b, why, sizeof why);
		struct mark_ctx m = { .id = n.b.id };
		if (status == 200 || status == 201) {
			m.o = DP_OUTBOX_SENT;
			atomic_fetch_add(&u->batches_sent, 1);
			atomic_fetch_add(&u->events_sent, (unsigned long long)n.b.events);
			atomic_store(&u->last_sent_us, timefmt_now_us());
			u->backoff_ms = 0;
			log_debug(NULL, "usage batch %s sent: %d record(s), %" PRId64 " event(s)", n.b.key,
			          n.b.records, n.b.events);
		} else if (status == 400 || status == 413 || status == 422) {
			/* Refused as it is: sending it again changes nothing. Kept in
			 * the outbox for an operator; the next batches go on. */
			m.o = DP_OUTBOX_REJECTED;
			m.error = why;
			atomic_fetch_add(&u->batches_rejected, 1);
			log_error(NULL, "usage batch %s (%" PRId64 " events) refused by the control plane: %s",
			          n.b.key, n.b.events, why);
		} else {
			m.o = DP_OUTBOX_FAILED;
			m.error = why;
			atomic_fetch_add(&u->send_failures, 1);
			u->backoff_ms = u->backoff_ms ? u->backoff_ms * 2 : 1000;
			if (u->backoff_ms > BACKOFF_MAX_MS)
				u->backoff_ms = BACKOFF_MAX_MS;
			/* A wrong URL or a refused credential (401, 403, 404) is the
			 * operator's to fix: the batch stays for when it is, and the
			 * error is said at most once a minute, not on every retry. A
			 * 403 is never the batch's own fault: it is a credential that
			 * is not this region's, or records of tenants homed elsewhere,
			 * which only a database of another region holds (a tenant's
			 * home region never changes). */
			if (dp_cp_config_error(status))
				dp_cp_errors_note(DP_CP_USAGE, status, "POST /v1/usage");
			else
				log_warn(NULL, "usage batch %s not delivered (%s); retrying in %" PRId64 " ms", n.b.key,
				         why, u->backoff_ms);
		}
		free(n.b.body);
		if (db_tx(app->db, DB_READ_COMMITTED, mark_tx, &m) != DB_OK && m.o == DP_OUTBOX_SENT)
			/* Sent but not marked: it is sent again, and the control
			 * plane answers the replay without counting it twice. */
			return interval;
		if (m.o == DP_OUTBOX_FAILED)
			return u->backoff_ms > interval ? u->backoff_ms : interval;
	}
	return interval;
}

struct dp_usage *dp_usage_start(struct dp_app *app)
{
	struct dp_usage *u = calloc(1, sizeof *u);
	if (!u)
		return NULL;
	u->app = app;
	u->last_start_us = -1;
	u->refresher = dp_loop_start("usage_refresher", refresh_step, u);
	u->reporter = dp_loop_start("usage_reporter", report_step, u);
	if (!u->refresher || !u->reporter) {
		dp_usage_stop(u);
		return NULL;
	}
	return u;
}

void dp_usage_stop(struct dp_usage *u)
{
	if (!u)
		return;
	atomic_store(&u->stopping, 1);
	dp_loop_stop(u->refresher);
	dp_loop_stop(u->reporter);
	free(u);
}

void dp_usage_metrics(struct dp_usage *u, FILE *out)
{
	fprintf(out,
	        "# HELP dp_usage_batches_sent_total Usage batches the control plane acknowledged.\n"
	        "# TYPE dp_usage_batches_sent_total counter\ndp_usage_batches_sent_total %llu\n"
	        "# HELP dp_usage_events_sent_total Events in acknowledged usage batches.\n"
	        "# TYPE dp_usage_events_sent_total counter\ndp_usage_events_sent_total %llu\n"
	        "# HELP dp_usage_batches_rejected_total Usage batches the control plane refused for good (kept in usage_outbox).\n"
	        "# TYPE dp_usage_batches_rejected_total counter\ndp_usage_batches_rejected_total %llu\n"
	        "# HELP dp_usage_send_failures_total Attempts to deliver a usage batch that failed and will be retried.\n"
	        "# TYPE dp_usage_send_failures_total counter\ndp_usage_send_failures_total %llu\n"
	        "# HELP dp_region_usage_backlog_batches Usage batches cut but not yet acknowledged, region-wide: every instance reports the same figure (max by region, never sum).\n"
	        "# TYPE dp_region_usage_backlog_batches gauge\ndp_region_usage_backlog_batches{region=\"%s\"} %lld\n"
	        "# HELP dp_region_usage_backlog_events Events stored but not yet acknowledged by the control plane, region-wide: every instance reports the same figure (max by region, never sum).\n"
	        "# TYPE dp_region_usage_backlog_events gauge\ndp_region_usage_backlog_events{region=\"%s\"} %lld\n"
	        "# HELP dp_usage_last_sent_timestamp_seconds When this instance last delivered a usage batch.\n"
	        "# TYPE dp_usage_last_sent_timestamp_seconds gauge\ndp_usage_last_sent_timestamp_seconds %lld\n",
	        (unsigned long long)u->batches_sent, (unsigned long long)u->events_sent,
	        (unsigned long long)u->batches_rejected, (unsigned long long)u->send_failures,
	        u->app->cfg.region, (long long)u->backlog_batches,
	        u->app->cfg.region, (long long)(u->backlog_events + u->unbatched_events),
	        (long long)(u->last_sent_us / 1000000));
}

/* ---- retention ---- */

#define OUTBOX_KEEP_DAYS 30

struct dp_retention {
	struct dp_app *app;
	struct dp_loop *loop;
	atomic_int stopping;
	atomic_ullong deleted, runs, failures;
	atomic_ullong weeks_removed, weeks_events; /* whole weeks emptied, their events (estimated) */
	atomic_ullong weeks_dropped;
	atomic_int partitioned;
};

struct ret_ctx {
	const char *tenant;
	int64_t cutoff_us;
	int batch;
	long deleted;
};

static enum db_status retention_tx(struct db_conn *c, void *ctx)
{
	struct ret_ctx *r = ctx;
	return dp_db_retention(c, r->tenant, r->cutoff_us, r->batch, &r->deleted);
}

static enum db_status purge_tx(struct db_conn *c, void *ctx)
{
	return dp_db_outbox_purge(c, OUTBOX_KEEP_DAYS, ctx);
}

/* A pass. With events partitioned by week (partitions.h), the weeks no
 * tenant keeps go whole first; then each tenant's events past its
 * retention are deleted in batches, as far as the start of the week its
 * retention ends in: the rest of that week goes with the week, when every
 * tenant in it lets it go, or row by row once this tenant's retention has
 * passed the whole week. So an event past retention stays at most a week
 * (before the first weekly partition, none: those rows are deleted as
 * their retention ends). */
static int64_t retention_step(void *ctx)
{
	struct dp_retention *r = ctx;
	struct dp_app *app = r->app;
	struct dp_kept *list = NULL;
	size_t n = 0;
	int64_t now = timefmt_now_us(), longest = 0;

	const struct dp_snapshot *s = dp_snaps_enter(app->snaps);
	size_t it = 0, count = s ? cfgdoc_tenant_count(s->doc) : 0;
	if (s && (list = calloc(count ? count : 1, sizeof *list))) {
		for (const struct cfgdoc_tenant *t; n < count && (t = cfgdoc_tenants_next(s->doc, &it));) {
			if (t->status == 'd')
				continue; /* kept as they are: deleting a tenant's data is not retention */
			int64_t days = cfgdoc_tenant_plan(s->doc, t)->retention_days;
			if (days > longest)
				longest = days;
			memcpy(list[n].id, t->id, sizeof list[n].id);
			list[n++].from_us = now - days * INT64_C(86400000000);
		}
	}
	dp_snaps_leave(app->snaps);

	unsigned long long total = 0, weeks = 0, week_events = 0, dropped = 0;
	int failed = 0, layout = 0;
	int64_t weekly_from = 0;
	/* Without a configuration yet, nothing is known of any tenant's
	 * retention: the layout is still prepared, and the pass comes back
	 * soon. */
	/* The oldest week a tenant of the cell may still store an event in,
	 * with a week to spare (another cell's retention, moving a tenant here,
	 * may run up to a pass behind): made if missing, never dropped. */
	int64_t oldest = dp_week_of(now - longest * INT64_C(86400000000)) - DP_WEEK_US;
	if (dp_partitions_prepare(app, now, oldest, &layout, &weekly_from) != 0) {
		failed = 1;
	} else if (layout && n &&
	           dp_partitions_remove(app, list, n, now, oldest, &weeks,
	                                &week_events, &dropped) != 0) {
		failed = 1;
	}
	atomic_store(&r->partitioned, layout);
	for (size_t i = 0; i < n && !failed && !atomic_load(&r->stopping); i++) {
		struct ret_ctx q = { .tenant = list[i].id, .batch = (int)app->cfg.retention_batch,
			                 .cutoff_us = dp_partitions_cutoff(list[i].from_us, layout, weekly_from) };
		do {
			if (db_tx(app->db, DB_READ_COMMITTED, retention_tx, &q) != DB_OK) {
				failed = 1;
				break;
			}
			total += (unsigned long long)q.deleted;
		} while (q.deleted == q.batch && !atomic_load(&r->stopping));
	}
	free(list);
	long purged = 0;
	if (!failed && db_tx(app->db, DB_AUTOCOMMIT, purge_tx, &purged) != DB_OK)
		failed = 1;
	atomic_fetch_add(&r->deleted, total);
	atomic_fetch_add(&r->weeks_removed, weeks);
	atomic_fetch_add(&r->weeks_events, week_events);
	atomic_fetch_add(&r->weeks_dropped, dropped);
	atomic_fetch_add(failed ? &r->failures : &r->runs, 1);
	if (total)
		log_info(NULL, "retention: %llu event(s) past their tenants' retention deleted", total);
	if (!s && app->cfg.retention_interval_ms > 1000)
		return 1000;
	return app->cfg.retention_interval_ms;
}

struct dp_retention *dp_retention_start(struct dp_app *app)
{
	struct dp_retention *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->app = app;
	if (!(r->loop = dp_loop_start("retention", retention_step, r))) {
		free(r);
		return NULL;
	}
	return r;
}

void dp_retention_stop(struct dp_retention *r)
{
	if (!r)
		return;
	atomic_store(&r->stopping, 1);
	dp_loop_stop(r->loop);
	free(r);
}

void dp_retention_metrics(struct dp_retention *r, FILE *out)
{
	fprintf(out,
	        "# HELP dp_retention_deleted_total Events deleted past their tenant's retention.\n"
	        "# TYPE dp_retention_deleted_total counter\ndp_retention_deleted_total %llu\n"
	        "# HELP dp_retention_runs_total Retention passes by result.\n"
	        "# TYPE dp_retention_runs_total counter\n"
	        "dp_retention_runs_total{result=\"ok\"} %llu\ndp_retention_runs_total{result=\"failed\"} %llu\n"
	        "# HELP dp_retention_partitions_emptied_total Weekly partitions of events emptied whole by retention.\n"
	        "# TYPE dp_retention_partitions_emptied_total counter\ndp_retention_partitions_emptied_total %llu\n"
	        "# HELP dp_retention_partitions_dropped_total Weekly partitions dropped, older than every retention.\n"
	        "# TYPE dp_retention_partitions_dropped_total counter\ndp_retention_partitions_dropped_total %llu\n"
	        "# HELP dp_retention_partition_events_total Events of the partitions emptied whole, as the planner estimated them.\n"
	        "# TYPE dp_retention_partition_events_total counter\ndp_retention_partition_events_total %llu\n"
	        "# HELP dp_events_partitioned Whether the cell's events are partitioned by week (1) or not yet (0).\n"
	        "# TYPE dp_events_partitioned gauge\ndp_events_partitioned %d\n",
	        (unsigned long long)r->deleted, (unsigned long long)r->runs, (unsigned long long)r->failures,
	        (unsigned long long)r->weeks_removed, (unsigned long long)r->weeks_dropped,
	        (unsigned long long)r->weeks_events, atomic_load(&r->partitioned));
}
