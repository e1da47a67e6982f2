/* Deleting a tenant erases its data in its home region: a control plane and
 * the data plane(s) of region "us" (it_stack_start), the regional database
 * looked at directly. Which tables hold a tenant's data is read from the
 * catalog (every table with a tenant_id column), never listed here, so a
 * table added later that the erasure leaves out fails these tests.
 *
 *   erased_everywhere_and_reported  every row of the deleted tenant gone from every table, in
 *                                   bounded batches; the neighbour and billing untouched; the
 *                                   admin view says done with the exact count
 *   restart_midway                  a data plane restarted in the middle of an erasure: nothing
 *                                   counted twice, nothing left
 *   control_plane_away_at_completion  the report that could not be delivered is delivered later
 *   two_instances_at_once           two instances erasing the same tenant count each row once
 *   largest_batch                   DP_ERASURE_BATCH at its top end takes a table in one batch
 *   batch_setting_bounds            DP_ERASURE_BATCH outside 1..100000 is refused at start
 *   report_rules                    the control plane's POST /v1/regions/{region}/erasures: only
 *                                   the home region, only a deleted tenant, idempotent, monotonic
 *
 * CK_RUN_SUITE=erasure (and CK_RUN_CASE=<test>) runs them alone. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "fixtures.h"

/* Generous deadline of a wait for background work (a pull, an erasure
 * pass, a usage report) on a loaded machine under ASan; each wait ends as
 * soon as the condition holds. */
#define SLOW_MS 60000
#define MAX_TABLES 32

/* Every erasure setting a test does not choose itself: passes often. */
#define FAST_DP "DP_ERASURE_INTERVAL=200ms", "DP_USAGE_REPORT_INTERVAL=500ms", "DP_RATE_SYNC_INTERVAL=100ms", \
	"DP_LOG_INTERVAL=100ms"

static void json_str(const char *text, const char *member, char *out, size_t len)
{
	json_t *j = json_loads(text, 0, NULL);
	ck_assert_msg(j != NULL, "not JSON: %.300s", text);
	snprintf(out, len, "%s", it_js(j, member));
	json_decref(j);
}

struct tenant {
	char id[40];
	char key[200];
};

/* A tenant of the stack's region on plan "pro", with a key. */
static void new_tenant(struct it_stack *s, struct tenant *t, const char *slug)
{
	struct it_resp r;
	it_stack_admin(s, &r, "POST", "/v1/tenants",
	               it_fmt("{\"name\":\"%s\",\"slug\":\"%s\",\"region\":\"%s\",\"plan\":\"pro\"}", slug, slug,
	                      s->region));
	ck_assert_msg(r.status == 201, "POST /v1/tenants: %ld %.300s", r.status, r.body);
	json_str(r.body, "id", t->id, sizeof t->id);
	it_resp_free(&r);
	it_stack_admin(s, &r, "POST", it_fmt("/v1/tenants/%s/api-keys", t->id),
	               "{\"name\":\"k\",\"scopes\":[\"events:write\",\"events:read\"]}");
	ck_assert_msg(r.status == 201, "POST api-keys: %ld %.300s", r.status, r.body);
	json_str(r.body, "secret", t->key, sizeof t->key);
	it_resp_free(&r);
	it_stack_sync(s);
}

/* `n` events of one tenant, in requests of at most 100, each under an
 * Idempotency-Key (so that a build that keeps idempotency records has
 * some of this tenant to erase too). */
static void post_events(const char *dp_url, const char *key, const char *prefix, int n)
{
	for (int done = 0, req = 0; done < n; req++) {
		int k = n - done < 100 ? n - done : 100;
		struct buf b = { 0 };
		buf_printf(&b, "{\"events\":[");
		for (int i = 0; i < k; i++)
			buf_printf(&b, "%s{\"id\":\"%s-%d\",\"action\":\"user.login\",\"actor\":{\"id\":\"u-%d\",\"type\":\"user\"}}",
			           i ? "," : "", prefix, done + i, (done + i) % 7);
		buf_printf(&b, "]}");
		ck_assert(!b.failed);
		char auth[300], idem[100];
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
		snprintf(idem, sizeof idem, "Idempotency-Key: %s-%d", prefix, req);
		const char *const h[] = { "Content-Type: application/json", auth, idem, NULL };
		struct it_resp r;
		it_http(&r, "POST", it_fmt("%s/v1/events", dp_url), h, b.p, b.len);
		ck_assert_msg(r.status == 201, "POST /v1/events: %ld %.300s", r.status, r.body);
		it_resp_free(&r);
		buf_free(&b);
		done += k;
	}
}

/* Every base table of the regional database with a tenant_id column (a
 * partition of one is that table's: events partitioned by week). */
static int tenant_tables(const char *db, char names[MAX_TABLES][64])
{
	char *list = it_sql(db, "SELECT string_agg(c.table_name, ',' ORDER BY c.table_name)"
	                        "  FROM information_schema.columns c"
	                        "  JOIN information_schema.tables t USING (table_schema, table_name)"
	                        " WHERE c.column_name = 'tenant_id' AND c.table_schema = current_schema()"
	                        "   AND t.table_type = 'BASE TABLE'"
	                        "   AND NOT (SELECT k.relispartition FROM pg_class k"
	                        "             WHERE k.oid = quote_ident(c.table_name)::regclass)");
	int n = 0;
	ck_assert_ptr_nonnull(list);
	for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		ck_assert_int_lt(n, MAX_TABLES);
		snprintf(names[n++], 64, "%s", tok);
	}
	free(list);
	ck_assert_msg(n >= 3, "only %d table(s) with a tenant_id column: events, usage_counters and "
	                      "rate_demand at least", n);
	return n;
}

static long rows_of(const char *db, const char *table, const char *tenant)
{
	return sqll(db, it_fmt("SELECT count(*) FROM %s WHERE tenant_id = '%s'", table, tenant));
}

/* Makes sure `victim` has rows in every table of tenant data, so that the
 * erasure must reach each: what the API did not put there is copied from
 * another tenant's row with the id replaced. A rate_demand row is of an
 * instance that does not exist (and will not be purged for an hour), so
 * only the erasure removes it. */
static void fill_every_table(const char *db, const char *victim, char names[MAX_TABLES][64], int n)
{
	/* The tenants' logs hold every event first (the appender's rows are
	 * then the ones to copy, and no longer change under the counts). */
	long t0 = it_now_ms();
	while (sqll(db, "SELECT count(*) FROM (SELECT tenant_id, count(*) AS n FROM events GROUP BY tenant_id) e"
	                "  LEFT JOIN log_heads h USING (tenant_id) WHERE h.tree_size IS DISTINCT FROM e.n") > 0) {
		ck_assert_msg(it_now_ms() - t0 < 60000, "the logs never caught up with the events");
		usleep(50000);
	}
	free(it_sql(db, it_fmt("INSERT INTO rate_demand (instance_id, tenant_id, bucket, demand, updated_at)"
	                       " VALUES ('%032d', '%s', 'write', 1, now() + interval '1 hour')",
	                       0, victim)));
	/* A tenant moving in or out (migration 0009). */
	free(it_sql(db, it_fmt("INSERT INTO move_progress (move_id, tenant_id) VALUES (gen_random_uuid(), '%s')",
	                       victim)));
	free(it_sql(db, it_fmt("INSERT INTO tenant_feed_offsets (tenant_id, off) VALUES ('%s', 1)", victim)));
	free(it_sql(db, it_fmt("INSERT INTO tenant_fences (tenant_id, move_id, fence_tx)"
	                       " VALUES ('%s', gen_random_uuid(), '1')", victim)));
	/* A log stream's cursor (migration 0011). */
	free(it_sql(db, it_fmt("INSERT INTO stream_cursors (stream_id, tenant_id) VALUES (gen_random_uuid(), '%s')",
	                       victim)));
	for (int i = 0; i < n; i++) {
		if (rows_of(db, names[i], victim) > 0)
			continue;
		ck_assert_msg(sqll(db, it_fmt("SELECT count(*) FROM %s", names[i])) > 0,
		              "table %s has a tenant_id column and no row to copy: give the deleted tenant "
		              "rows there in this test", names[i]);
		free(it_sql(db, it_fmt("INSERT INTO %s OVERRIDING SYSTEM VALUE SELECT (jsonb_populate_record("
		                       "NULL::%s, to_jsonb(x) || jsonb_build_object('tenant_id', '%s'))).*"
		                       " FROM %s x LIMIT 1",
		                       names[i], names[i], victim, names[i])));
		ck_assert_int_gt(rows_of(db, names[i], victim), 0);
	}
}

static void delete_tenant(struct it_stack *s, const char *id)
{
	struct it_resp r;
	it_stack_admin(s, &r, "DELETE", it_fmt("/v1/tenants/%s", id), NULL);
	ck_assert_msg(r.status == 200, "DELETE tenant: %ld %.300s", r.status, r.body);
	/* At once: pending, requested, nothing deleted yet. */
	json_t *j = json_loads(r.body, 0, NULL), *e = json_object_get(j, "erasure");
	ck_assert_msg(json_is_object(e), "no erasure in %.300s", r.body);
	ck_assert_str_eq(it_js(e, "status"), "pending");
	ck_assert_int_eq(strlen(it_js(e, "requested_at")), 27);
	ck_assert(json_is_null(json_object_get(e, "completed_at")));
	ck_assert_int_eq(json_integer_value(json_object_get(e, "events_deleted")), 0);
	json_decref(j);
	it_resp_free(&r);
}

/* The tenant's admin view (caller json_decref()s). */
static json_t *tenant_view(const struct it_stack *s, const char *id)
{
	struct it_resp r;
	it_stack_admin(s, &r, "GET", it_fmt("/v1/tenants/%s", id), NULL);
	ck_assert_msg(r.status == 200, "GET tenant: %ld %.300s", r.status, r.body);
	json_t *j = json_loads(r.body, 0, NULL);
	it_resp_free(&r);
	ck_assert_ptr_nonnull(j);
	return j;
}

/* Waits until the control plane shows the erasure done; returns the view. */
static json_t *wait_done(const struct it_stack *s, const char *id)
{
	long t0 = it_now_ms();
	for (;;) {
		json_t *j = tenant_view(s, id);
		if (!strcmp(it_js(json_object_get(j, "erasure"), "status"), "done"))
			return j;
		json_decref(j);
		ck_assert_msg(it_now_ms() - t0 < SLOW_MS, "erasure of %s not done after %d ms (log %s)", id,
		              SLOW_MS, s->dp.log);
		usleep(100000);
	}
}

/* A counter or gauge of a data plane's /metrics (-1 when absent). */
static long long metric(const char *dp_url, const char *name)
{
	struct it_resp r;
	long long v = -1;
	it_http(&r, "GET", it_fmt("%s/metrics", dp_url), NULL, NULL, 0);
	ck_assert_msg(r.status == 200, "GET /metrics: %ld", r.status);
	size_t n = strlen(name);
	for (const char *p = r.body; p && *p;) {
		if (!strncmp(p, name, n) && (p[n] == ' ' || p[n] == '{')) {
			const char *sp = strchr(p, ' ');
			v = sp ? atoll(sp + 1) : -1;
			break;
		}
		p = strchr(p, '\n');
		p = p ? p + 1 : NULL;
	}
	it_resp_free(&r);
	return v;
}

/* Waits until a data plane's metric `name` reads `want`. */
static void wait_metric(const char *dp_url, const char *name, long long want)
{
	long t0 = it_now_ms();
	long long v;
	while ((v = metric(dp_url, name)) != want) {
		ck_assert_msg(it_now_ms() - t0 < SLOW_MS, "%s is %lld, want %lld", name, v, want);
		usleep(50000);
	}
}

/* After "done": no row of `victim` in any table; the erasure's count is
 * the events it had; every other count as it was. */
static void expect_erased(const struct it_stack *s, const char *victim, long events,
                          char names[MAX_TABLES][64], int n, const long before[])
{
	json_t *j = wait_done(s, victim), *e = json_object_get(j, "erasure");
	ck_assert_int_eq(json_integer_value(json_object_get(e, "events_deleted")), events);
	ck_assert_int_eq(strlen(it_js(e, "completed_at")), 27);
	ck_assert_int_le(strcmp(it_js(e, "requested_at"), it_js(e, "completed_at")), 0);
	json_decref(j);
	for (int i = 0; i < n; i++) {
		ck_assert_msg(rows_of(s->dp_db, names[i], victim) == 0, "table %s still holds rows of the deleted "
		              "tenant after the control plane was told done", names[i]);
		if (!strcmp(names[i], "rate_demand"))
			continue; /* not data: its rows come and go with the tenants' demand */
		ck_assert_msg(sqll(s->dp_db, it_fmt("SELECT count(*) FROM %s WHERE tenant_id <> '%s'", names[i],
		                                    victim)) == before[i],
		              "table %s: other tenants' rows changed", names[i]);
	}
	ck_assert_int_eq(sqll(s->dp_db, it_fmt("SELECT events_deleted FROM erasures WHERE erased_tenant = '%s'",
	                                       victim)), events);
}

/* Other tenants' rows of each table, before. */
static void count_others(const char *db, const char *victim, char names[MAX_TABLES][64], int n,
                         long out[])
{
	for (int i = 0; i < n; i++)
		out[i] = sqll(db, it_fmt("SELECT count(*) FROM %s WHERE tenant_id <> '%s'", names[i], victim));
}

START_TEST(erased_everywhere_and_reported)
{
	/* Protects: a deleted tenant's data leaves its region entirely and in
	 * bounded batches, billing is kept, the neighbour is untouched, and the
	 * admin sees the exact count. */
	struct it_stack s;
	struct tenant v;
	char names[MAX_TABLES][64];
	long before[MAX_TABLES];
	const char *const dp_env[] = { FAST_DP, "DP_ERASURE_BATCH=7", "DP_ERASURE_PAUSE=0", NULL };
	it_stack_start(&s, "us", NULL, dp_env);
	new_tenant(&s, &v, "erase-me");
	post_events(s.dp_url, s.key, "keep", 30);
	post_events(s.dp_url, v.key, "gone", 50);
	int n = tenant_tables(s.dp_db, names);
	fill_every_table(s.dp_db, v.id, names, n);
	count_others(s.dp_db, v.id, names, n, before);
	ck_assert_int_eq(rows_of(s.dp_db, "events", v.id), 50);

	/* A live tenant has no erasure, in the view and in the list. */
	json_t *live = tenant_view(&s, s.tenant);
	ck_assert_ptr_null(json_object_get(live, "erasure"));
	json_decref(live);

	delete_tenant(&s, v.id);
	expect_erased(&s, v.id, 50, names, n, before);

	/* Bounded: 50 events in batches of 7 at most, so 8 of them at least. */
	ck_assert_int_eq(sqll(s.dp_db, it_fmt("SELECT largest_batch FROM erasures WHERE erased_tenant = '%s'", v.id)), 7);
	ck_assert_int_ge(sqll(s.dp_db, it_fmt("SELECT batches FROM erasures WHERE erased_tenant = '%s'", v.id)), 8);
	ck_assert_int_ge(metric(s.dp_url, "dp_erasure_batches_total"), 8);
	ck_assert_int_eq(metric(s.dp_url, "dp_erasure_events_deleted_total"), 50);
	wait_metric(s.dp_url, "dp_region_erasure_tenants_pending", 0); /* set as a pass ends */

	/* Billing is kept: the tenant, and every event of its usage, reported
	 * before its counters went. */
	ck_assert_int_eq(sqll(s.cp_db, it_fmt("SELECT count(*) FROM tenants WHERE id = '%s'", v.id)), 1);
	long t0 = it_now_ms();
	while (sqll(s.cp_db, it_fmt("SELECT coalesce(sum(events), 0) FROM usage_ledger WHERE tenant_id = '%s'", v.id)) != 50) {
		ck_assert_msg(it_now_ms() - t0 < SLOW_MS, "the deleted tenant's usage never reached billing");
		usleep(100000);
	}
	/* The list shows the erasure on the deleted tenant only. */
	struct it_resp r;
	it_stack_admin(&s, &r, "GET", "/v1/tenants?limit=100", NULL);
	ck_assert_int_eq(r.status, 200);
	json_t *list = json_loads(r.body, 0, NULL), *items = json_object_get(list, "items"), *it;
	size_t i, seen = 0;
	json_array_foreach(items, i, it) {
		json_t *e = json_object_get(it, "erasure");
		if (!strcmp(it_js(it, "id"), v.id)) {
			ck_assert_str_eq(it_js(e, "status"), "done");
			ck_assert_int_eq(json_integer_value(json_object_get(e, "events_deleted")), 50);
			seen++;
		} else {
			ck_assert_ptr_null(e);
		}
	}
	ck_assert_int_eq(seen, 1);
	json_decref(list);
	it_resp_free(&r);
	/* Passes go on (five a second): once the last report is in, nothing
	 * changes and nothing is reported again. */
	usleep(1000000);
	long long sent = metric(s.dp_url, "dp_erasure_reports_sent_total");
	ck_assert_int_ge(sent, 1);
	usleep(1000000);
	ck_assert_int_eq(metric(s.dp_url, "dp_erasure_reports_sent_total"), sent);

	/* Once erased, the tenant leaves the region's document with its next
	 * version... */
	it_stack_admin(&s, &r, "POST", it_fmt("/v1/tenants/%s/api-keys", s.tenant),
	               "{\"name\":\"k2\",\"scopes\":[\"events:read\"]}");
	ck_assert_int_eq(r.status, 201);
	it_resp_free(&r);
	it_stack_sync(&s);
	ck_assert_int_eq(metric(s.dp_url, "dp_config_tenants"), 1);
	/* ...and an event stored afterwards (by an instance still on an older
	 * document) is erased too, and counted. */
	free(it_sql(s.dp_db, it_fmt("INSERT INTO events (tenant_id, id, occurred_at, received_at, action, actor_id,"
	                            " content_sha256, body) SELECT '%s', 'late', now(), now(), 'a', 'u',"
	                            " sha256('late'), '{}'::json", v.id)));
	t0 = it_now_ms();
	for (;;) {
		json_t *view = tenant_view(&s, v.id);
		long long got = json_integer_value(json_object_get(json_object_get(view, "erasure"), "events_deleted"));
		json_decref(view);
		if (got == 51)
			break;
		ck_assert_msg(it_now_ms() - t0 < SLOW_MS, "a late event of the deleted tenant not erased: %lld", got);
		usleep(100000);
	}
	ck_assert_int_eq(rows_of(s.dp_db, "events", v.id), 0);
	it_stack_stop(&s);
}
END_TEST

START_TEST(restart_midway)
{
	/* Protects: an erasure interrupted by a restart resumes and counts
	 * each row once (DP_ERASURE_BATCH at its low end: one row a batch). */
	struct it_stack s;
	struct tenant v;
	char names[MAX_TABLES][64];
	long before[MAX_TABLES];
	const char *const dp_env[] = { FAST_DP, "DP_ERASURE_BATCH=1", "DP_ERASURE_PAUSE=50ms", NULL };
	it_stack_start(&s, "us", NULL, dp_env);
	new_tenant(&s, &v, "erase-restart");
	post_events(s.dp_url, v.key, "gone", 60);
	int n = tenant_tables(s.dp_db, names);
	fill_every_table(s.dp_db, v.id, names, n);
	count_others(s.dp_db, v.id, names, n, before);
	delete_tenant(&s, v.id);
	long t0 = it_now_ms();
	while (sqll(s.dp_db, it_fmt("SELECT coalesce(max(rows_deleted), 0) FROM erasures WHERE erased_tenant = '%s'", v.id)) < 5) {
		ck_assert_msg(it_now_ms() - t0 < SLOW_MS, "the erasure did not start");
		usleep(20000);
	}
	ck_assert_int_gt(rows_of(s.dp_db, "events", v.id), 0); /* midway */
	it_stack_dp_restart(&s, dp_env);
	expect_erased(&s, v.id, 60, names, n, before);
	ck_assert_int_eq(sqll(s.dp_db, it_fmt("SELECT largest_batch FROM erasures WHERE erased_tenant = '%s'", v.id)), 1);
	it_stack_stop(&s);
}
END_TEST

START_TEST(control_plane_away_at_completion)
{
	/* Protects: an erasure completed while the control plane is away is
	 * reported once it is back. The test holds the tenant's erasure row
	 * locked, so that the erasure can only run once the control plane is
	 * down. */
	struct it_stack s;
	struct tenant v;
	char names[MAX_TABLES][64];
	long before[MAX_TABLES];
	const char *const dp_env[] = { FAST_DP, "DP_ERASURE_BATCH=10", "DP_ERASURE_PAUSE=0", NULL };
	it_stack_start(&s, "us", NULL, dp_env);
	new_tenant(&s, &v, "erase-away");
	post_events(s.dp_url, v.key, "gone", 40);
	int n = tenant_tables(s.dp_db, names);
	fill_every_table(s.dp_db, v.id, names, n);
	count_others(s.dp_db, v.id, names, n, before);
	/* Usage reported before the control plane goes: the counters can go. */
	long t0 = it_now_ms();
	while (sqll(s.dp_db, it_fmt("SELECT count(*) FROM usage_counters WHERE tenant_id = '%s' AND events > reported", v.id)) > 0 ||
	       sqll(s.dp_db, "SELECT count(*) FROM usage_outbox WHERE sent_at IS NULL") > 0) {
		ck_assert_msg(it_now_ms() - t0 < SLOW_MS, "usage not reported");
		usleep(50000);
	}

	/* The erasure's row, made and held by the test until it commits: the
	 * data plane's batches wait for it. */
	PGconn *hold = PQconnectdb(s.dp_db);
	ck_assert_int_eq(PQstatus(hold), CONNECTION_OK);
	PGresult *r = PQexec(hold, it_fmt("BEGIN; INSERT INTO erasures (erased_tenant) VALUES ('%s');"
	                                  " SELECT 1 FROM erasures WHERE erased_tenant = '%s' FOR UPDATE",
	                                  v.id, v.id));
	ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
	PQclear(r);

	delete_tenant(&s, v.id);
	it_stack_sync(&s); /* the data plane has the document that says so */
	usleep(500000);    /* a pass waits on the tenant */
	ck_assert_int_eq(rows_of(s.dp_db, "events", v.id), 40);
	it_stack_cp_stop(&s);
	r = PQexec(hold, "COMMIT");
	ck_assert_int_eq(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);
	PQfinish(hold);

	t0 = it_now_ms();
	while (sqll(s.dp_db, it_fmt("SELECT count(*) FROM erasures WHERE erased_tenant = '%s' AND completed_at IS NOT NULL", v.id)) != 1 ||
	       metric(s.dp_url, "dp_erasure_report_failures_total") < 1) {
		ck_assert_msg(it_now_ms() - t0 < SLOW_MS, "no erasure, or no failed report, with the control plane away");
		usleep(50000);
	}
	ck_assert_int_eq(sqll(s.dp_db, it_fmt("SELECT count(*) FROM erasures WHERE erased_tenant = '%s' AND NOT reported_done"
	                                      " AND last_error IS NOT NULL", v.id)), 1);
	wait_metric(s.dp_url, "dp_region_erasure_tenants_pending", 1);
	it_stack_cp_start(&s, NULL);
	expect_erased(&s, v.id, 40, names, n, before);
	wait_metric(s.dp_url, "dp_region_erasure_tenants_pending", 0);
	it_stack_stop(&s);
}
END_TEST

START_TEST(two_instances_at_once)
{
	/* Protects: every instance of a region erases at once without counting
	 * a row twice. */
	struct it_stack s;
	struct tenant v;
	struct it_proc second;
	char names[MAX_TABLES][64];
	long before[MAX_TABLES];
	char cache[700], bin[1024];
	const char *const dp_env[] = { FAST_DP, "DP_ERASURE_BATCH=3", "DP_ERASURE_PAUSE=0", NULL };
	it_stack_start(&s, "us", NULL, dp_env);
	new_tenant(&s, &v, "erase-two");

	/* A second instance on the same database. */
	const char *env[24];
	int k = 0;
	for (int i = 0; i < 8; i++)
		if (strncmp(s.dp_base[i], "DP_CACHE_DIR=", 13) && strncmp(s.dp_base[i], "DP_INSTANCE=", 12))
			env[k++] = s.dp_base[i];
	snprintf(cache, sizeof cache, "%s-second", strchr(s.dp_base[5], '=') + 1);
	env[k++] = it_fmt("DP_CACHE_DIR=%s", cache);
	env[k++] = "DP_INSTANCE=it-second";
	for (int i = 0; dp_env[i]; i++)
		env[k++] = dp_env[i];
	env[k] = NULL;
	it_bin("data-plane", bin, sizeof bin);
	char *argv[] = { bin, NULL };
	it_spawn(&second, "data-plane-second", argv, env);
	char second_url[64];
	snprintf(second_url, sizeof second_url, "http://127.0.0.1:%d", it_wait_port(&second, 60000));

	post_events(s.dp_url, v.key, "gone", 300);
	int n = tenant_tables(s.dp_db, names);
	fill_every_table(s.dp_db, v.id, names, n);
	count_others(s.dp_db, v.id, names, n, before);
	delete_tenant(&s, v.id);
	expect_erased(&s, v.id, 300, names, n, before);
	long long a = metric(s.dp_url, "dp_erasure_events_deleted_total");
	long long b = metric(second_url, "dp_erasure_events_deleted_total");
	ck_assert_msg(a + b == 300, "the instances erased %lld + %lld events of 300", a, b);
	ck_assert_int_le(sqll(s.dp_db, it_fmt("SELECT largest_batch FROM erasures WHERE erased_tenant = '%s'", v.id)), 3);
	ck_assert_int_eq(it_stop(&second), 0);
	it_stack_stop(&s);
}
END_TEST

START_TEST(largest_batch)
{
	/* Protects: DP_ERASURE_BATCH at its top end is taken as it is. */
	struct it_stack s;
	struct tenant v;
	char names[MAX_TABLES][64];
	long before[MAX_TABLES];
	const char *const dp_env[] = { FAST_DP, "DP_ERASURE_BATCH=100000", NULL };
	it_stack_start(&s, "us", NULL, dp_env);
	new_tenant(&s, &v, "erase-big");
	post_events(s.dp_url, v.key, "gone", 250);
	int n = tenant_tables(s.dp_db, names);
	fill_every_table(s.dp_db, v.id, names, n);
	count_others(s.dp_db, v.id, names, n, before);
	delete_tenant(&s, v.id);
	expect_erased(&s, v.id, 250, names, n, before);
	ck_assert_int_eq(sqll(s.dp_db, it_fmt("SELECT largest_batch FROM erasures WHERE erased_tenant = '%s'", v.id)), 250);
	it_stack_stop(&s);
}
END_TEST

START_TEST(batch_setting_bounds)
{
	/* Protects: a batch size outside 1..100000 stops the start, naming it. */
	char bin[1024], out[4096];
	it_bin("data-plane", bin, sizeof bin);
	const char *bad[] = { "DP_ERASURE_BATCH=0", "DP_ERASURE_BATCH=100001" };
	for (int i = 0; i < 2; i++) {
		const char *const env[] = { bad[i], "DP_REGION=us", "DP_DATABASE_URL=postgresql://127.0.0.1:1/x",
			                        "DP_CONTROL_PLANE_URL=http://127.0.0.1:1", NULL };
		char *argv[] = { bin, NULL };
		int st = it_run("data-plane-bad", argv, env, out, sizeof out);
		ck_assert_msg(st == 2, "%s: exit %d: %.300s", bad[i], st, out);
		ck_assert_msg(strstr(out, "DP_ERASURE_BATCH") != NULL, "%s: %.300s", bad[i], out);
	}
}
END_TEST

/* One erasure report to the control plane with `token`. */
static long report(const struct it_stack *s, const char *token, const char *region, const char *idem,
                   const char *body, json_t **answer)
{
	char auth[400], key[300];
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
	snprintf(key, sizeof key, "Idempotency-Key: %s", idem ? idem : "");
	const char *const h[] = { "Content-Type: application/json", auth, idem ? key : NULL, NULL };
	struct it_resp r;
	it_http(&r, "POST", it_fmt("%s/v1/regions/%s/erasures", s->cp_url, region), h, body, strlen(body));
	long st = r.status;
	if (answer)
		*answer = json_loads(r.body ? r.body : "", 0, NULL);
	if (st >= 400) {
		json_t *p = json_loads(r.body, 0, NULL);
		ck_assert_msg(p && *it_js(p, "code"), "a refusal without a problem code: %.300s", r.body);
		json_decref(p);
	}
	it_resp_free(&r);
	return st;
}

static const char *body_of(const char *tenant, const char *status, long events, long rows)
{
	return it_fmt("{\"tenant_id\":\"%s\",\"status\":\"%s\",\"events_deleted\":%ld,\"rows_deleted\":%ld}",
	              tenant, status, events, rows);
}

START_TEST(report_rules)
{
	/* Protects: only a deleted tenant's home region reports its erasure;
	 * reports are idempotent and never undo progress. */
	struct it_stack s;
	struct tenant v, live;
	struct it_resp r;
	json_t *a;
	const char *const dp_env[] = { "DP_ERASURE_INTERVAL=1h", NULL }; /* the test reports itself */
	it_stack_start(&s, "us", NULL, dp_env);
	new_tenant(&s, &v, "erase-rules");
	new_tenant(&s, &live, "erase-live");
	const char *us = strchr(s.dp_base[4], '=') + 1;
	it_stack_admin(&s, &r, "POST", "/v1/regions/eu/credentials", "{}");
	ck_assert_int_eq(r.status, 201);
	char eu[300];
	json_str(r.body, "token", eu, sizeof eu);
	it_resp_free(&r);
	delete_tenant(&s, v.id);

	/* Refusals, each changing nothing. */
	ck_assert_int_eq(report(&s, us, "us", "k-live", body_of(live.id, "done", 1, 1), NULL), 409);
	ck_assert_int_eq(report(&s, eu, "eu", "k-eu", body_of(v.id, "done", 1, 1), NULL), 403);
	ck_assert_int_eq(report(&s, eu, "us", "k-eu2", body_of(v.id, "done", 1, 1), NULL), 403);
	ck_assert_int_eq(report(&s, us, "us", "k-none", body_of("00000000-0000-4000-8000-000000000000", "done", 1, 1), NULL), 404);
	ck_assert_int_eq(report(&s, us, "us", NULL, body_of(v.id, "done", 1, 1), NULL), 400);
	ck_assert_int_eq(report(&s, us, "us", "k-bad", body_of(v.id, "finished", 1, 1), NULL), 400);
	ck_assert_int_eq(report(&s, us, "us", "k-bad2", body_of(v.id, "done", 2, 1), NULL), 400);
	ck_assert_int_eq(report(&s, us, "us", "k-bad3", body_of(v.id, "done", -1, 1), NULL), 400);
	ck_assert_int_eq(report(&s, us, "us", "k-bad4", "{\"tenant_id\":\"x\",\"status\":\"done\",\"events_deleted\":0,\"rows_deleted\":0}", NULL), 400);
	ck_assert_int_eq(report(&s, us, "us", "k-bad5", it_fmt("{\"tenant_id\":\"%s\",\"status\":\"done\",\"events_deleted\":0,\"rows_deleted\":0,\"extra\":1}", v.id), NULL), 400);
	ck_assert_int_eq(report(&s, s.key, "us", "k-key", body_of(v.id, "done", 1, 1), NULL), 401);
	json_t *j = tenant_view(&s, v.id);
	ck_assert_str_eq(it_js(json_object_get(j, "erasure"), "status"), "pending");
	json_decref(j);

	/* A reference model: the largest figures, done once said. */
	struct { const char *key, *status; long events, rows; long want_status; } steps[] = {
		{ "a", "pending", 10, 12, 200 },
		{ "a", "pending", 10, 12, 200 },   /* a retry: replayed */
		{ "a", "pending", 11, 12, 422 },   /* the same key, another body */
		{ "b", "pending", 5, 6, 200 },     /* late: changes nothing */
		{ "c", "done", 20, 25, 200 },
		{ "d", "pending", 30, 31, 200 },   /* stragglers after done: counted, still done */
		{ "e", "done", 7, 8, 200 },
	};
	long m_events = 0, m_rows = 0;
	int m_done = 0;
	char completed[40] = "";
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		long st = report(&s, us, "us", steps[i].key, body_of(v.id, steps[i].status, steps[i].events, steps[i].rows), &a);
		ck_assert_msg(st == steps[i].want_status, "step %zu: %ld", i, st);
		json_decref(a);
		if (st == 200) {
			m_events = steps[i].events > m_events ? steps[i].events : m_events;
			m_rows = steps[i].rows > m_rows ? steps[i].rows : m_rows;
			m_done |= !strcmp(steps[i].status, "done");
		}
		j = tenant_view(&s, v.id);
		json_t *e = json_object_get(j, "erasure");
		ck_assert_str_eq(it_js(e, "status"), m_done ? "done" : "pending");
		ck_assert_int_eq(json_integer_value(json_object_get(e, "events_deleted")), m_events);
		if (m_done && !*completed)
			snprintf(completed, sizeof completed, "%s", it_js(e, "completed_at"));
		if (m_done)
			ck_assert_str_eq(it_js(e, "completed_at"), completed); /* set once */
		else
			ck_assert(json_is_null(json_object_get(e, "completed_at")));
		json_decref(j);
	}
	ck_assert_int_eq(sqll(s.cp_db, it_fmt("SELECT rows_deleted FROM erasures WHERE tenant_id = '%s'", v.id)), m_rows);
	it_stack_stop(&s);
}
END_TEST

Suite *erasure_suite(void)
{
	Suite *s = suite_create("erasure");
	const TTest *const tests[] = {
		erased_everywhere_and_reported,
		restart_midway,
		control_plane_away_at_completion,
		two_instances_at_once,
		largest_batch,
		batch_setting_bounds,
		report_rules,
	};
	it_add_tests(s, tests, sizeof tests / sizeof tests[0], NULL, NULL, 300);
	return s;
}
