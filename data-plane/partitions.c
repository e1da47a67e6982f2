/* Events partitioned by time: the contract step's timing, weekly partitions
 * made ahead, whole weeks removed (see partitions.h). The SQL is in
 * db_partitions.c and the migrations' functions. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "dp.h"
#include "dpdb.h"
#include "log.h"
#include "migrate.h"
#include "partitions.h"
#include "svc.h"

/* 2000-01-03 00:00:00 UTC, a Monday: the origin of events_week. */
#define WEEK_ORIGIN_US INT64_C(946857600000000)
/* An instance is live if seen within this (its heartbeat is sub-second). */
#define FLEET_LIVE_MS 60000

int64_t dp_week_of(int64_t us)
{
	int64_t d = us - WEEK_ORIGIN_US;
	int64_t q = d / DP_WEEK_US;
	if (d % DP_WEEK_US < 0)
		q--;
	return WEEK_ORIGIN_US + q * DP_WEEK_US;
}

int64_t dp_partitions_cutoff(int64_t kept_from_us, int partitioned, int64_t weekly_from_us)
{
	return partitioned && kept_from_us >= weekly_from_us ? dp_week_of(kept_from_us) : kept_from_us;
}

static int contract(struct dp_app *app)
{
	char dir[4096], err[1024];
	int applied = 0;
	if (app->cfg.migrations_dir)
		snprintf(dir, sizeof dir, "%s/contract", app->cfg.migrations_dir);
	else
		svc_data_path("migrations/region/contract", dir, sizeof dir);
	if (migrate_run_in(app->cfg.database_url, dir, "schema_contracts", &applied, err, sizeof err) != 0) {
		log_error(NULL, "partitions: contract step: %s", err);
		return -1;
	}
	if (applied)
		log_info(NULL, "partitions: %d contract migration(s) applied from %s: events are partitioned by week, "
		         "their ids indexed across weeks", applied, dir);
	return 0;
}

struct layout_q {
	int partitioned, ids_indexed;
	int64_t weekly_from;
	long older;
	int64_t quiet_ms;
};

static enum db_status layout_tx(struct db_conn *c, void *ctx)
{
	struct layout_q *q = ctx;
	enum db_status st = dp_db_events_layout(c, &q->partitioned, &q->ids_indexed, &q->weekly_from);
	if (st == DB_OK && !q->ids_indexed)
		st = dp_db_fleet_older(c, DP_SCHEMA_LEVEL, FLEET_LIVE_MS, &q->older, &q->quiet_ms);
	return st;
}

struct ensure_q {
	int64_t lower;
	int made;
};

static enum db_status ensure_tx(struct db_conn *c, void *ctx)
{
	struct ensure_q *q = ctx;
	return dp_db_partition_ensure(c, q->lower, &q->made);
}

/* Whether the contract steps may be applied now: DP_EVENTS_PARTITIONED
 * on, no instance of an older build live in the cell, and none seen for
 * DP_CONTRACT_AFTER (a rollback within it still finds the schema the
 * previous build knows). Says once why not. */
static int contract_allowed(const struct dp_app *app, const struct layout_q *q)
{
	static long reported_older = -1;
	static int reported_wait;
	if (!app->cfg.events_partitioned)
		return 0; /* the layout stays as it is */
	if (q->older) {
		if (q->older != reported_older)
			log_info(NULL, "partitions: the contract steps wait while %ld instance(s) of an older build run in "
			         "this cell", q->older);
		reported_older = q->older;
		reported_wait = 0;
		return 0;
	}
	if (q->quiet_ms >= 0 && q->quiet_ms < app->cfg.contract_after_ms) {
		if (!reported_wait)
			log_info(NULL, "partitions: the contract steps are applied %" PRId64 " s from now, once no instance "
			         "of an older build was seen for DP_CONTRACT_AFTER",
			         (app->cfg.contract_after_ms - q->quiet_ms) / 1000);
		reported_wait = 1;
		reported_older = 0;
		return 0;
	}
	return 1;
}

int dp_partitions_prepare(struct dp_app *app, int64_t now_us, int64_t oldest_us, int *layout,
                          int64_t *weekly_from_us)
{
	struct layout_q q = { 0 };
	*layout = 0;
	if (db_tx(app->db, DB_READ_COMMITTED, layout_tx, &q) != DB_OK)
		return -1;
	if (!q.partitioned) {
		if (!contract_allowed(app, &q))
			return 0;
		if (contract(app) != 0)
			return -1;
		if (db_tx(app->db, DB_READ_COMMITTED, layout_tx, &q) != DB_OK)
			return -1;
		if (!q.partitioned)
			return 0;
	} else if (!q.ids_indexed && contract_allowed(app, &q)) {
		/* Partitioned by a build before contract 0002: its step, under
		 * the conversion's conditions. Until it is applied the ingest
		 * guards ids with its tenants' locks, and should it fail (logged),
		 * retention goes on all the same. */
		(void)contract(app);
	}
	*layout = 1;
	*weekly_from_us = q.weekly_from;
	int64_t from = dp_week_of(oldest_us);
	if (from < q.weekly_from)
		from = q.weekly_from;
	int64_t to = dp_week_of(now_us) + 2 * DP_WEEK_US;
	for (int64_t w = from; w <= to; w += DP_WEEK_US) {
		struct ensure_q e = { .lower = w };
		if (db_tx(app->db, DB_READ_COMMITTED, ensure_tx, &e) != DB_OK)
			return -1;
		if (e.made)
			log_info(NULL, "partitions: week from %" PRId64 " made", w / 1000000);
	}
	return 0;
}

struct week {
	char name[64];
	int64_t lower, upper;
};

struct weeks {
	struct week *w;
	size_t n, cap;
	int failed;
};

static void on_week(void *ctx, const char *name, int64_t lower, int64_t upper)
{
	struct weeks *ws = ctx;
	if (ws->n == ws->cap) {
		size_t cap = ws->cap ? ws->cap * 2 : 64;
		struct week *p = realloc(ws->w, cap * sizeof *p);
		if (!p) {
			ws->failed = 1;
			return;
		}
		ws->w = p;
		ws->cap = cap;
	}
	snprintf(ws->w[ws->n].name, sizeof ws->w[0].name, "%s", name);
	ws->w[ws->n].lower = lower;
	ws->w[ws->n++].upper = upper;
}

struct list_q {
	int64_t before;
	struct weeks *ws;
};

static enum db_status list_tx(struct db_conn *c, void *ctx)
{
	struct list_q *q = ctx;
	return dp_db_partitions(c, q->before, on_week, q->ws);
}

struct remove_q {
	const struct week *w;
	const char *tenants, *from;
	int freed, removed, detached, dropped;
	int64_t estimate;
};

static enum db_status remove_tx(struct db_conn *c, void *ctx)
{
	struct remove_q *q = ctx;
	return dp_db_partition_remove(c, q->w->name, q->w->lower, q->w->upper, q->tenants, q->from, &q->freed,
	                              &q->removed, &q->detached, &q->estimate);
}

static enum db_status detach_tx(struct db_conn *c, void *ctx)
{
	struct remove_q *q = ctx;
	return dp_db_partition_detach(c, q->w->name);
}

static enum db_status forget_tx(struct db_conn *c, void *ctx)
{
	struct remove_q *q = ctx;
	return dp_db_partition_forget(c, q->w->name, &q->dropped);
}

int dp_partitions_remove(struct dp_app *app, const struct dp_kept *kept, size_t n, int64_t now_us,
                         int64_t insertable_us, unsigned long long *weeks, unsigned long long *events,
                         unsigned long long *dropped)
{
	struct weeks ws = { 0 };
	struct list_q lq = { .before = now_us, .ws = &ws };
	struct buf ids = { 0 }, from = { 0 };
	int ret = -1;
	int64_t latest = INT64_MIN;

	if (db_tx(app->db, DB_READ_COMMITTED, list_tx, &lq) != DB_OK || ws.failed)
		goto out;
	/* A week no tenant could have let go yet is not looked at. */
	for (size_t i = 0; i < n; i++)
		if (kept[i].from_us > latest)
			latest = kept[i].from_us;
	for (size_t i = 0; i < n; i++) {
		char num[24];
		db_array_add(&ids, kept[i].id, strlen(kept[i].id));
		int len = snprintf(num, sizeof num, "%" PRId64, kept[i].from_us);
		db_array_add(&from, num, (size_t)len);
	}
	db_array_end(&ids);
	db_array_end(&from);
	if (ids.failed || from.failed)
		goto out;
	for (size_t i = 0; i < ws.n; i++) {
		if (ws.w[i].upper > latest)
			continue;
		struct remove_q rq = { .w = &ws.w[i], .tenants = ids.p, .from = from.p };
		/* A week whose lock is not had in time (its readers, a statement
		 * timeout) is left for the next pass; the others go on. */
		enum db_status st = db_tx(app->db, DB_READ_COMMITTED, remove_tx, &rq);
		if (st == DB_UNAVAILABLE) {
			log_info(NULL, "retention: week %s busy, left for the next pass", ws.w[i].name);
			continue;
		}
		if (st != DB_OK)
			goto out;
		if (rq.removed) {
			log_info(NULL, "retention: week %s emptied (about %" PRId64 " event(s)): every tenant with events "
			         "in it keeps none of them", ws.w[i].name, rq.estimate);
			(*weeks)++;
			*events += (unsigned long long)(rq.estimate > 0 ? rq.estimate : 0);
		}
		/* Older than every retention: no tenant may store an event there
		 * any more, and the table goes. Or a detachment left it apart:
		 * finished, then dropped empty or attached again. */
		if (!rq.detached && (!rq.freed || ws.w[i].upper > insertable_us))
			continue;
		if ((st = db_tx(app->db, DB_AUTOCOMMIT, detach_tx, &rq)) == DB_OK)
			st = db_tx(app->db, DB_READ_COMMITTED, forget_tx, &rq);
		if (st == DB_UNAVAILABLE) {
			log_info(NULL, "retention: week %s busy, its detachment left for the next pass", ws.w[i].name);
			continue;
		}
		if (st != DB_OK)
			goto out;
		if (rq.dropped) {
			log_info(NULL, "retention: week %s dropped", ws.w[i].name);
			(*dropped)++;
		}
	}
	ret = 0;
out:
	free(ws.w);
	buf_free(&ids);
	buf_free(&from);
	return ret;
}
