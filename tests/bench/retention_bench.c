/* retention-bench: one retention pass over events partitioned by week,
 * against row-by-row deletion of the same rows, measured in the same run
 * on the data plane's own code (partitions.c, db_partitions.c and the
 * retention statement of db_events.c), and the listing of a large tenant
 * in three cells.
 *   retention-bench SUPERUSER_URL MIGRATIONS_DIR
 * BENCH_EVENTS (2000000) events over BENCH_WEEKS (40) weeks, made in SQL,
 * of BENCH_TENANTS (1000) tenants; the first tenant holds BENCH_BIG
 * (BENCH_EVENTS / 10) of them, made in random order of time or, with
 * BENCH_ORDER=time, in the order they occurred. Half the tenants keep 90 days, half (the
 * first among them) 180. Three databases get the same rows, made by two
 * sessions with the indexes built after the rows, and one large copy at a
 * time (at 100M events a copy is about 60 GB):
 *   alone  partitioned, the first tenant's events only (kept to the end);
 *   part   events partitioned by week, as a cell converted before the
 *          oldest event (the contract step, then its layout moved back);
 *          dropped after its pass;
 *   flat   events as before the contract step (one table), made after.
 * Prints, for the pass on `part` and the same rows deleted row by row on
 * `flat` (DP_RETENTION_BATCH 1000, per tenant, as the retention task
 * deletes): rows, seconds, WAL bytes (after a CHECKPOINT each), and their
 * ratios; then GET /v1/events's statement (dp_db_events_scan) for the
 * first tenant, p50/p99 over BENCH_LISTS (300) runs of four pages (the
 * newest 50, 50 past a cursor at the middle, 50 of one action, 50 of the
 * last 7 days) in each database, before the pass, with every event in the
 * cell; the ingest's lookup of a group's ids and its insert of a group
 * (rolled back) on `part` and `flat`; last, the contract steps (the
 * conversion) applied to `flat`,
 * timed. */
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>

#include "bench_clock.h"
#include "db.h"
#include "../../data-plane/dp.h"
#include "../../data-plane/dpdb.h"
#include "log.h"
#include "migrate.h"
#include "../../data-plane/partitions.h"
#include "timefmt.h"

#define DAY_US INT64_C(86400000000)

static long env_long(const char *name, long def)
{
	const char *v = getenv(name);
	return v && *v ? strtol(v, NULL, 10) : def;
}

static void die(const char *what, const char *msg)
{
	fprintf(stderr, "retention-bench: %s: %s\n", what, msg);
	exit(1);
}

static void quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

static PGconn *conn(const char *url)
{
	PGconn *pg = PQconnectdb(url);
	if (PQstatus(pg) != CONNECTION_OK)
		die("connect", PQerrorMessage(pg));
	PQsetNoticeProcessor(pg, quiet, NULL);
	return pg;
}

/* Runs `sql` (no parameters) and returns the first value as a number. */
static long long q1(PGconn *pg, const char *sql)
{
	PGresult *r = PQexec(pg, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK)
		die(sql, PQresultErrorMessage(r));
	long long v = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) && !PQgetisnull(r, 0, 0)
	                  ? strtoll(PQgetvalue(r, 0, 0), NULL, 10)
	                  : 0;
	PQclear(r);
	return v;
}

static void tenant_uuid(long i, char out[37])
{
	snprintf(out, 37, "%08x-0000-4000-8000-%012x", (unsigned)(i / 65536) & 0xfffffffu, (unsigned)i);
}

static char *urlof(const char *super, const char *db)
{
	static char out[3][512];
	static int k;
	char *u = out[k++ % 3];
	const char *slash = strrchr(super, '/');
	snprintf(u, 512, "%.*s/%s", (int)(slash ? slash - super : (long)strlen(super)), super, db);
	return u;
}

/* BENCH_ORDER=time: events are made in the order they occurred, as a
 * cell ingests them; 0 (random, the default): in no order of time, each
 * row's delete on a page of its own, the worst case. */
static long time_order_events;

/* Rows g in [from, to) of the data set: tenant, id, occurred_at. The big
 * tenant (0) has every g % 10 == 0 when BENCH_BIG is a tenth; in general
 * g < big. Everything is a function of g and `base_us`, so a copy made
 * again holds the same rows. In time order (BENCH_EVENTS a multiple s of
 * BENCH_BIG), g is given the slot of time `slot`: the big tenant's rows
 * every s-th slot, the others' the slots between, in order, so that each
 * is made (first the big tenant's, then the others') oldest first. */
static void fill_sql(char *sql, size_t len, long from, long to, long tenants, long big, long weeks, int64_t base_us)
{
	char when[512];
	long span_s = weeks * 7 * 86400;
	if (time_order_events) {
		long s = time_order_events / big;
		snprintf(when, sizeof when,
		         "%" PRId64 " - ((%ld - 1 - CASE WHEN g < %ld THEN g * %ld"
		         " ELSE (g - %ld) + (g - %ld) / %ld + 1 END) * %ld / %ld) * 1000000",
		         base_us, time_order_events, big, s, big, big, s - 1, span_s, time_order_events);
	} else {
		snprintf(when, sizeof when, "%" PRId64 " - ((g * 104729) %% %ld) * 1000000", base_us, span_s);
	}
	snprintf(sql, len,
	         "INSERT INTO events (tenant_id, id, occurred_at, received_at, action, actor_id, target_ids,"
	         "                    content_sha256, body, keys)"
	         " SELECT t, 'e' || g, o, o, a, 'u-' || (g %% 97), '{}', sha256(convert_to('e' || g, 'UTF8')),"
	         "        json_build_object('id', 'e' || g, 'occurred_at', o, 'action', a, 'actor',"
	         "                          json_build_object('id', 'u-' || (g %% 97), 'type', 'user'),"
	         "                          'targets', '[]'::json, 'context', '{}'::json, 'metadata', '{}'::json),"
	         "        ARRAY['a:' || a, 'w:doc']"
	         "   FROM generate_series(%ld::bigint, %ld::bigint) g,"
	         "   LATERAL (SELECT CASE WHEN g < %ld THEN 0 ELSE 1 + (g * 7919) %% (%ld - 1) END AS n) k,"
	         "   LATERAL (SELECT (lpad(to_hex(k.n / 65536), 8, '0') || '-0000-4000-8000-' ||"
	         "                    lpad(to_hex(k.n), 12, '0'))::uuid AS t,"
	         "                   'epoch'::timestamptz + (%s - 1000000) * interval '1 microsecond' AS o,"
	         "                   CASE WHEN g %% 3 = 0 THEN 'doc.write' ELSE 'doc.read' END AS a) x",
	         from, to - 1, big, tenants, when);
}

/* The indexes of `events` (and its weeks) and of `event_ids`, as the
 * migrations made them, set aside in bench_defs and dropped: a load builds
 * each once, sorted, instead of inserting every row into eight indexes
 * (hours at 100M rows on two cores). An index of a week that hangs on a
 * partitioned index goes and comes back with it. */
static void indexes_drop(PGconn *pg)
{
	(void)q1(pg,
	         "CREATE TABLE bench_defs AS"
	         " SELECT i.indexrelid::regclass::text AS name, c.relname AS tbl, con.conname AS con,"
	         "        CASE WHEN con.oid IS NOT NULL THEN pg_get_constraintdef(con.oid)"
	         "             ELSE replace(pg_get_indexdef(i.indexrelid), ' ON ONLY ', ' ON ') END AS def"
	         "   FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid"
	         "   LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid"
	         "                              AND con.contype IN ('p', 'u')"
	         "  WHERE (c.relname IN ('events', 'event_ids')"
	         "         OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'events'::regclass))"
	         "    AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)");
	(void)q1(pg,
	         "DO $$ DECLARE d record; BEGIN"
	         " FOR d IN SELECT * FROM bench_defs LOOP"
	         "  IF d.con IS NOT NULL THEN EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', d.tbl, d.con);"
	         "  ELSE EXECUTE format('DROP INDEX %s', d.name); END IF;"
	         " END LOOP; END $$");
}

/* Builds again what indexes_drop set aside, constraints first. */
static void indexes_build(PGconn *pg)
{
	(void)q1(pg, "SET maintenance_work_mem = '1GB'");
	(void)q1(pg,
	         "DO $$ DECLARE d record; BEGIN"
	         " FOR d IN SELECT * FROM bench_defs ORDER BY con IS NULL, name LOOP"
	         "  IF d.con IS NOT NULL THEN"
	         "   EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I %s', d.tbl, d.con, d.def);"
	         "  ELSE EXECUTE d.def; END IF;"
	         " END LOOP; END $$");
	(void)q1(pg, "DROP TABLE bench_defs");
}

/* Rows [0, upto) into the database at `url`: indexes dropped, the rows
 * inserted by two sessions at once, 500,000 a statement, the indexes
 * built, then VACUUM ANALYZE. Returns the seconds it took. */
static double fill(const char *url, long upto, long tenants, long big, long weeks, int64_t base_us)
{
	double t0 = now_s();
	PGconn *pg[2] = { conn(url), conn(url) };
	indexes_drop(pg[0]);
	long next = 0;
	int busy[2] = { 0, 0 };
	for (;;) {
		for (int k = 0; k < 2; k++)
			if (!busy[k] && next < upto) {
				char sql[4096];
				long to = next + 500000 < upto ? next + 500000 : upto;
				fill_sql(sql, sizeof sql, next, to, tenants, big, weeks, base_us);
				if (!PQsendQuery(pg[k], sql))
					die("fill", PQerrorMessage(pg[k]));
				busy[k] = 1;
				next = to;
			}
		if (!busy[0] && !busy[1])
			break;
		fd_set in;
		FD_ZERO(&in);
		int top = 0;
		for (int k = 0; k < 2; k++)
			if (busy[k]) {
				FD_SET(PQsocket(pg[k]), &in);
				top = PQsocket(pg[k]) > top ? PQsocket(pg[k]) : top;
			}
		if (select(top + 1, &in, NULL, NULL, NULL) < 0)
			die("fill", "select failed");
		for (int k = 0; k < 2; k++) {
			if (!busy[k] || !FD_ISSET(PQsocket(pg[k]), &in))
				continue;
			if (!PQconsumeInput(pg[k]))
				die("fill", PQerrorMessage(pg[k]));
			if (PQisBusy(pg[k]))
				continue;
			for (PGresult *r; (r = PQgetResult(pg[k]));) {
				if (PQresultStatus(r) != PGRES_COMMAND_OK)
					die("fill", PQresultErrorMessage(r));
				PQclear(r);
			}
			busy[k] = 0;
		}
	}
	indexes_build(pg[0]);
	(void)q1(pg[0], "VACUUM ANALYZE");
	PQfinish(pg[0]);
	PQfinish(pg[1]);
	return now_s() - t0;
}

static void make_db(PGconn *super, const char *name)
{
	char sql[256];
	snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", name);
	(void)q1(super, sql);
	snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
	(void)q1(super, sql);
}

static void migrate(const char *url, const char *dir, int partitioned, long weeks)
{
	char err[1024], sub[4096];
	int applied;
	if (migrate_run(url, dir, &applied, err, sizeof err) != 0)
		die("migrate", err);
	if (!partitioned)
		return;
	snprintf(sub, sizeof sub, "%s/contract", dir);
	if (migrate_run_in(url, sub, "schema_contracts", &applied, err, sizeof err) != 0)
		die("contract", err);
	/* As a cell converted before its oldest event. */
	PGconn *pg = conn(url);
	char sql[1024];
	snprintf(sql, sizeof sql,
	         "BEGIN; ALTER TABLE events DETACH PARTITION events_before;"
	         " UPDATE events_layout SET weekly_from = events_week(now()) - %ld * interval '7 days';"
	         " DO $$ BEGIN EXECUTE format('ALTER TABLE events ATTACH PARTITION events_before"
	         "   FOR VALUES FROM (MINVALUE) TO (%%L)', (SELECT weekly_from FROM events_layout)); END $$;"
	         " SELECT count(events_partition_ensure(events_week(now()) + k * interval '7 days'))"
	         "   FROM generate_series(-%ld, 5) k; COMMIT",
	         weeks + 1, weeks + 1);
	(void)q1(pg, sql);
	PQfinish(pg);
}

struct pass {
	double seconds;
	long long wal, rows_before, rows_after;
	unsigned long long weeks, dropped, week_events, deleted;
};

struct ret_q {
	const char *tenant;
	int64_t cutoff;
	long deleted;
};

static enum db_status ret_tx(struct db_conn *c, void *ctx)
{
	struct ret_q *q = ctx;
	return dp_db_retention(c, q->tenant, q->cutoff, 1000, &q->deleted);
}

/* One pass: with `partitioned`, whole weeks first (partitions.c), then
 * per tenant up to the week its retention ends in, as usage.c does; the
 * row-by-row baseline deletes per tenant up to the same instants. */
static void run_pass(const char *url, const struct dp_kept *kept, long n, int64_t now, int64_t longest_days,
                     int partitioned, int64_t weekly_from, struct pass *p)
{
	char err[256];
	struct dp_app app;
	memset(&app, 0, sizeof app);
	if (!(app.db = db_pool_new(url, 2, 10000, err, sizeof err)) ||
	    db_pool_add_options(app.db, "-c celltrail.schema_level=" DP_SCHEMA_LEVEL_SQL) != 0)
		die("pool", err);
	PGconn *pg = conn(url);
	p->rows_before = q1(pg, "SELECT count(*) FROM events");
	(void)q1(pg, "CHECKPOINT");
	long long lsn0 = q1(pg, "SELECT pg_current_wal_lsn() - '0/0'");
	double t0 = now_s();
	int64_t oldest = dp_week_of(now - longest_days * DAY_US) - DP_WEEK_US; /* as usage.c */
	if (partitioned && dp_partitions_remove(&app, kept, (size_t)n, now, oldest, &p->weeks, &p->week_events,
	                                        &p->dropped) != 0)
		die("pass", "dp_partitions_remove failed");
	for (long i = 0; i < n; i++) {
		/* The partitioned pass's cutoffs on both: the same rows. */
		struct ret_q q = { .tenant = kept[i].id, .cutoff = dp_partitions_cutoff(kept[i].from_us, 1, weekly_from) };
		do {
			if (db_tx(app.db, DB_READ_COMMITTED, ret_tx, &q) != DB_OK)
				die("pass", "retention statement failed");
			p->deleted += (unsigned long long)q.deleted;
		} while (q.deleted == 1000);
	}
	p->seconds = now_s() - t0;
	p->wal = q1(pg, "SELECT pg_current_wal_lsn() - '0/0'") - lsn0;
	p->rows_after = q1(pg, "SELECT count(*) FROM events");
	PQfinish(pg);
	db_pool_free(app.db);
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct list_ctx {
	int rows;
	int64_t last_us, last_seq;
};

static int on_row(void *ctx, const struct dp_event_row *row)
{
	struct list_ctx *l = ctx;
	l->rows++;
	l->last_us = row->occurred_us;
	l->last_seq = row->seq;
	return 0;
}

struct scan_q {
	const struct dp_event_query *q;
	struct list_ctx l;
};

static enum db_status scan_tx(struct db_conn *c, void *ctx)
{
	struct scan_q *s = ctx;
	memset(&s->l, 0, sizeof s->l);
	return dp_db_events_scan(c, s->q, on_row, &s->l);
}

struct exist_q {
	const char *tenants, *ids;
};

static void on_exist(void *ctx, const char *tenant, const char *id, const char *sha, const char *body, size_t len)
{
	(void)ctx, (void)tenant, (void)id, (void)sha, (void)body, (void)len;
}

static enum db_status exist_tx(struct db_conn *c, void *ctx)
{
	struct exist_q *q = ctx;
	return dp_db_events_existing(c, q->tenants, q->ids, on_exist, NULL);
}

/* The ingest's lookup of a group's ids (dp_db_events_existing), `n` new
 * ids of the first tenant, p50 in ms over `runs`. */
static double lookup_ms(const char *url, int n, int runs)
{
	char err[256];
	struct db_pool *db = db_pool_new(url, 1, 10000, err, sizeof err);
	if (!db)
		die("pool", err);
	double *ms = malloc(sizeof *ms * (size_t)runs);
	char *t = malloc((size_t)n * 40 + 3), *ids = malloc((size_t)n * 24 + 3);
	if (!ms || !t || !ids)
		die("lookup", "out of memory");
	for (int r = 0; r < runs; r++) {
		size_t a = 0, b = 0;
		t[a++] = '{';
		ids[b++] = '{';
		for (int i = 0; i < n; i++) {
			a += (size_t)sprintf(t + a, "%s00000000-0000-4000-8000-000000000000", i ? "," : "");
			b += (size_t)sprintf(ids + b, "%snew-%d-%d", i ? "," : "", r, i);
		}
		t[a++] = '}';
		t[a] = '\0';
		ids[b++] = '}';
		ids[b] = '\0';
		struct exist_q q = { t, ids };
		double t0 = now_s();
		if (db_tx(db, DB_READ_COMMITTED, exist_tx, &q) != DB_OK)
			die("lookup", "dp_db_events_existing failed");
		ms[r] = (now_s() - t0) * 1000;
	}
	qsort(ms, (size_t)runs, sizeof *ms, cmp_d);
	double p50 = ms[runs / 2];
	free(ms);
	free(t);
	free(ids);
	db_pool_free(db);
	return p50;
}

struct insert_q {
	struct buf *cols;
	long inserted;
};

static enum db_status insert_tx(struct db_conn *c, void *ctx)
{
	struct insert_q *q = ctx;
	enum db_status st = dp_db_events_insert(c, q->cols, &q->inserted);
	return st == DB_OK ? DB_ROLLBACK : st; /* measured, not kept */
}

/* The ingest's insert of a group (dp_db_events_insert), `n` new events of
 * the first tenant occurring now, rolled back; p50 in ms over `runs`. */
static double insert_ms(const char *url, int n, int runs)
{
	char err[256];
	struct db_pool *db = db_pool_new(url, 1, 10000, err, sizeof err);
	if (!db || db_pool_add_options(db, "-c celltrail.schema_level=" DP_SCHEMA_LEVEL_SQL) != 0)
		die("pool", err);
	double *ms = malloc(sizeof *ms * (size_t)runs);
	if (!ms)
		die("insert", "out of memory");
	for (int r = 0; r < runs; r++) {
		struct buf cols[DP_NCOLS] = { { 0 } };
		int64_t now = (int64_t)(now_s() * 1e6);
		for (int i = 0; i < n; i++) {
			char id[48], num[24], body[256];
			snprintf(id, sizeof id, "ins-%d-%d", r, i);
			db_array_add(&cols[DP_COL_TENANT], "00000000-0000-4000-8000-000000000000", 36);
			db_array_add(&cols[DP_COL_ID], id, strlen(id));
			snprintf(num, sizeof num, "%" PRId64, now);
			db_array_add(&cols[DP_COL_OCCURRED], num, strlen(num));
			db_array_add(&cols[DP_COL_RECEIVED], num, strlen(num));
			db_array_add(&cols[DP_COL_ACTION], "doc.write", 9);
			db_array_add(&cols[DP_COL_ACTOR], "u-1", 3);
			db_array_add(&cols[DP_COL_TARGETS], "{}", 2);
			db_array_add(&cols[DP_COL_SHA], "00000000000000000000000000000000000000000000000000000000000000aa", 64);
			int bl = snprintf(body, sizeof body,
			                  "{\"id\":\"%s\",\"action\":\"doc.write\",\"actor\":{\"id\":\"u-1\",\"type\":\"user\"},"
			                  "\"targets\":[],\"context\":{},\"metadata\":{}}",
			                  id);
			db_array_add(&cols[DP_COL_BODY], body, (size_t)bl);
		}
		for (int k = 0; k < DP_NCOLS; k++) {
			db_array_end(&cols[k]);
			if (cols[k].failed)
				die("insert", "out of memory");
		}
		struct insert_q q = { cols, 0 };
		double t0 = now_s();
		if (db_tx(db, DB_READ_COMMITTED, insert_tx, &q) != DB_ROLLBACK || q.inserted != n)
			die("insert", "dp_db_events_insert failed");
		ms[r] = (now_s() - t0) * 1000;
		for (int k = 0; k < DP_NCOLS; k++)
			buf_free(&cols[k]);
	}
	qsort(ms, (size_t)runs, sizeof *ms, cmp_d);
	double p50 = ms[runs / 2];
	free(ms);
	db_pool_free(db);
	return p50;
}

/* p50/p99 in ms of the four pages, `runs` times each, on `url`. */
static void listing(const char *url, const char *tenant, int64_t now, int64_t mid_us, int runs, double out[2])
{
	char err[256];
	struct db_pool *db = db_pool_new(url, 1, 10000, err, sizeof err);
	if (!db)
		die("pool", err);
	double *ms = malloc(sizeof *ms * (size_t)runs * 4);
	if (!ms)
		die("listing", "out of memory");
	int n = 0;
	for (int i = 0; i < runs; i++)
		for (int kind = 0; kind < 4; kind++) {
			struct dp_event_query q;
			memset(&q, 0, sizeof q);
			q.tenant = tenant;
			q.limit = 50;
			q.since_us = q.until_us = q.received_since_us = q.received_until_us = -1;
			/* As GET /v1/events bounds it (events.c), for 180 days. */
			q.kept_from_us = dp_week_of(now - 180 * DAY_US);
			q.stored_before_us = now + INT64_C(3900000000);
			if (kind == 1) {
				q.has_cursor = 1;
				q.cursor_us = mid_us;
				q.cursor_seq = INT64_MAX;
			} else if (kind == 2) {
				q.action[0] = "doc.write";
				q.n_action = 1;
			} else if (kind == 3) {
				q.since_us = now - 7 * DAY_US;
			}
			struct scan_q s = { .q = &q };
			double t0 = now_s();
			if (db_tx(db, DB_READ_COMMITTED, scan_tx, &s) != DB_OK)
				die("listing", "dp_db_events_scan failed");
			ms[n++] = (now_s() - t0) * 1000;
			if (s.l.rows != 50)
				die("listing", "a page of fewer than 50 rows");
		}
	qsort(ms, (size_t)n, sizeof *ms, cmp_d);
	out[0] = ms[n / 2];
	out[1] = ms[(size_t)((double)n * 0.99)];
	free(ms);
	db_pool_free(db);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: retention-bench SUPERUSER_URL MIGRATIONS_DIR\n");
		return 2;
	}
	log_init("retention-bench", LOG_WARN);
	long events = env_long("BENCH_EVENTS", 2000000), tenants = env_long("BENCH_TENANTS", 1000),
	     weeks = env_long("BENCH_WEEKS", 40), big = env_long("BENCH_BIG", events / 10),
	     runs = env_long("BENCH_LISTS", 300);
	const char *order = getenv("BENCH_ORDER") ? getenv("BENCH_ORDER") : "random";
	if (events < 1000 || tenants < 2 || weeks < 30 || big < 1000 || big >= events || runs < 10 ||
	    (strcmp(order, "random") && strcmp(order, "time")) || (!strcmp(order, "time") && events % big)) {
		fprintf(stderr, "retention-bench: BENCH_EVENTS >= 1000, BENCH_TENANTS >= 2, BENCH_WEEKS >= 30, "
		                "1000 <= BENCH_BIG < BENCH_EVENTS, BENCH_LISTS >= 10, BENCH_ORDER random or time "
		                "(time: BENCH_EVENTS a multiple of BENCH_BIG)\n");
		return 2;
	}
	if (!strcmp(order, "time"))
		time_order_events = events;
	const char *super = argv[1], *dir = argv[2];
	PGconn *s = conn(super);
	const char *names[3] = { "bench_ret_part", "bench_ret_flat", "bench_ret_alone" };
	for (int i = 0; i < 3; i++)
		make_db(s, names[i]);
	int64_t now = timefmt_now_us();
	/* The newest event a second before now. */
	int64_t base = now;
	printf("retention bench: %ld events of %ld tenants over %ld weeks (the first tenant %ld), made in %s; one "
	       "copy of the cell at a time\n", events, tenants, weeks, big,
	       time_order_events ? "the order they occurred (BENCH_ORDER=time)" : "random order of time");
	fflush(stdout);

	/* Tenants' retention: the first and every odd one 180 days, the even
	 * ones 90. */
	struct dp_kept *kept = calloc((size_t)tenants, sizeof *kept);
	if (!kept)
		die("kept", "out of memory");
	for (long i = 0; i < tenants; i++) {
		tenant_uuid(i, kept[i].id);
		kept[i].from_us = now - (i == 0 || i % 2 ? 180 : 90) * DAY_US;
	}
	char first[37];
	tenant_uuid(0, first);
	int64_t mid = now - 90 * DAY_US;
	double lp[2], lf[2], la[2], lk[4], ik[4];
	struct pass part = { 0 }, flat = { 0 }, alone = { 0 };

	/* The first tenant alone in its cell, kept to the end (a tenth of the
	 * size at most). */
	migrate(urlof(super, names[2]), dir, 1, weeks);
	double made = fill(urlof(super, names[2]), big, tenants, big, weeks, base);
	printf("  the first tenant alone, partitioned: made in %.0f s\n", made);
	fflush(stdout);

	/* The partitioned cell: listed with every event in it, then one pass. */
	migrate(urlof(super, names[0]), dir, 1, weeks);
	made = fill(urlof(super, names[0]), events, tenants, big, weeks, base);
	PGconn *pp = conn(urlof(super, names[0]));
	int64_t weekly_from = q1(pp, "SELECT (extract(epoch FROM weekly_from) * 1000000)::bigint FROM events_layout");
	long long part_bytes = q1(pp, "SELECT pg_database_size(current_database())");
	long long weeks_then = q1(pp, "SELECT count(*) FROM event_partitions");
	PQfinish(pp);
	printf("  partitioned: made in %.0f s, %.1f GB (%.0f bytes an event with its indexes)\n", made,
	       (double)part_bytes / 1e9, (double)part_bytes / (double)events);
	fflush(stdout);
	listing(urlof(super, names[2]), first, now, mid, (int)runs, la);
	listing(urlof(super, names[0]), first, now, mid, (int)runs, lp);
	/* What partitioning costs the ingest: its lookup of a group's ids
	 * (through event_ids, contract 0002: one probe per id whatever the
	 * weeks) and its insert (event_ids' trigger). */
	lk[0] = lookup_ms(urlof(super, names[0]), 10, (int)runs);
	lk[2] = lookup_ms(urlof(super, names[0]), 100, (int)runs);
	ik[0] = insert_ms(urlof(super, names[0]), 10, (int)runs);
	ik[2] = insert_ms(urlof(super, names[0]), 100, (int)runs);
	run_pass(urlof(super, names[0]), kept, tenants, now, 180, 1, weekly_from, &part);
	run_pass(urlof(super, names[2]), kept, 1, now, 180, 1, weekly_from, &alone);
	printf("  retention pass, partitioned: %lld rows removed (%llu week(s) emptied whole, %llu of them dropped; "
	       "%llu rows deleted one by one) in %.2f s, %.1f MB of WAL\n",
	       part.rows_before - part.rows_after, part.weeks, part.dropped, part.deleted, part.seconds,
	       (double)part.wal / 1e6);
	fflush(stdout);
	if (!getenv("BENCH_KEEP"))
		(void)q1(s, "DROP DATABASE bench_ret_part");

	/* The same rows in one table (as before the contract step), deleted
	 * row by row. */
	migrate(urlof(super, names[1]), dir, 0, weeks);
	made = fill(urlof(super, names[1]), events, tenants, big, weeks, base);
	printf("  unpartitioned: made in %.0f s\n", made);
	fflush(stdout);
	listing(urlof(super, names[1]), first, now, mid, (int)runs, lf);
	lk[1] = lookup_ms(urlof(super, names[1]), 10, (int)runs);
	lk[3] = lookup_ms(urlof(super, names[1]), 100, (int)runs);
	ik[1] = insert_ms(urlof(super, names[1]), 10, (int)runs);
	ik[3] = insert_ms(urlof(super, names[1]), 100, (int)runs);
	run_pass(urlof(super, names[1]), kept, tenants, now, 180, 0, weekly_from, &flat);

	long long gone_part = part.rows_before - part.rows_after, gone_flat = flat.rows_before - flat.rows_after;
	printf("retention pass, partitioned: %lld rows removed (%llu week(s) emptied whole, %llu of them dropped; "
	       "%llu rows deleted one by one) in %.2f s, %.1f MB of WAL\n",
	       gone_part, part.weeks, part.dropped, part.deleted, part.seconds, (double)part.wal / 1e6);
	printf("baseline, row by row:        %lld rows deleted in %.2f s, %.1f MB of WAL\n", gone_flat, flat.seconds,
	       (double)flat.wal / 1e6);
	printf("same rows: %s; time %.1fx less, WAL %.1fx less\n", gone_part == gone_flat ? "yes" : "NO",
	       part.seconds > 0 ? flat.seconds / part.seconds : 0, part.wal > 0 ? (double)flat.wal / (double)part.wal : 0);
	/* Listing: the first tenant's 50 newest, past a cursor at the middle
	 * of its events, of one action, of the last 7 days; before the pass,
	 * with every event in the cell. */
	printf("listing of the first tenant (%lld events kept after the pass), p50/p99 ms: alone in its cell "
	       "%.2f/%.2f; with %lld events in the cell, partitioned %.2f/%.2f (p99 %.2fx alone); unpartitioned "
	       "%.2f/%.2f; %lld weekly partitions in the cell\n",
	       alone.rows_after, la[0], la[1], part.rows_before, lp[0], lp[1], la[1] > 0 ? lp[1] / la[1] : 0, lf[0],
	       lf[1], weeks_then);
	printf("the ingest's lookup of a group's ids, p50 ms: 10 ids partitioned %.2f, unpartitioned %.2f (%.1fx); "
	       "100 ids %.2f, %.2f (%.1fx)\n",
	       lk[0], lk[1], lk[1] > 0 ? lk[0] / lk[1] : 0, lk[2], lk[3], lk[3] > 0 ? lk[2] / lk[3] : 0);
	printf("the ingest's insert of a group, p50 ms: 10 events partitioned %.2f, unpartitioned %.2f (%.1fx); "
	       "100 events %.2f, %.2f (%.1fx)\n",
	       ik[0], ik[1], ik[1] > 0 ? ik[0] / ik[1] : 0, ik[2], ik[3], ik[3] > 0 ? ik[2] / ik[3] : 0);
	/* The conversion of a cell of that many events. */
	{
		char err[1024], sub[4096];
		int applied;
		snprintf(sub, sizeof sub, "%s/contract", dir);
		double c0 = now_s();
		if (migrate_run_in(urlof(super, names[1]), sub, "schema_contracts", &applied, err, sizeof err) != 0)
			die("contract", err);
		printf("contract step (events partitioned) on the unpartitioned copy of %lld events: %.2f s\n",
		       flat.rows_after, now_s() - c0);
	}
	free(kept);
	if (!getenv("BENCH_KEEP"))
		for (int i = 0; i < 3; i++) {
			char sql[128];
			snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", names[i]);
			(void)q1(s, sql);
		}
	PQfinish(s);
	return gone_part == gone_flat ? 0 : 1;
}
