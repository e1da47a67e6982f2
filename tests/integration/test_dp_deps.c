/* What a data plane depends on, misconfigured, from outside: the control
 * plane's URL (usage must reach billing whatever slashes the base URL ends
 * with, and a wrong URL keeps every batch, says so and is counted), and the
 * regional database (no event is written to or read from a database before
 * it was found to be this region's, even when it was unreachable at start).
 *
 *   usage_base_url_slashes      DP_CONTROL_PLANE_URL ending in "/" and "//": usage billed
 *   usage_wrong_prefix_kept     a wrong path prefix: 404 counted, batch kept, delivered once fixed
 *   region_checked_late         database down at start, then another region's behind the URL:
 *                               503, nothing written there, /readyz says why; then the right
 *                               one, served; then, on reconnect, another region's again
 *
 * Each test runs a control plane and a data plane (it_stack_start), and
 * restarts the data plane with some of its variables changed. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "it.h"

/* ---- a data plane restarted with changed variables ---- */

static char env_text[32][1200];
static const char *env_list[34];

static void env_put(int k, const char *e)
{
	size_t n = strlen(e);
	ck_assert_int_lt(k, 32);
	ck_assert_uint_lt(n, sizeof env_text[k]);
	memcpy(env_text[k], e, n + 1);
	env_list[k] = env_text[k];
}

/* The DP_ variables `pid` was started with, `over` ("NAME=value",
 * NULL-terminated) replacing or adding some: into env_list. */
static const char *const *env_from(pid_t pid, const char *const over[])
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	static char all[65536];
	size_t n = fread(all, 1, sizeof all - 1, f);
	fclose(f);
	all[n] = '\0';
	int k = 0;
	for (size_t at = 0; at < n; at += strlen(all + at) + 1) {
		const char *e = all + at;
		if (strncmp(e, "DP_", 3))
			continue;
		int replaced = 0;
		for (int i = 0; over && over[i]; i++)
			replaced |= !strncmp(e, over[i], strcspn(over[i], "=") + 1);
		if (replaced)
			continue;
		env_put(k++, e);
	}
	for (int i = 0; over && over[i]; i++)
		env_put(k++, over[i]);
	env_list[k] = NULL;
	return env_list;
}

/* Starts a data plane like the stack's with `over` changed, into `p`;
 * its base URL into `url`. */
static void dp_like(const struct it_stack *s, struct it_proc *p, const char *const over[], char *url,
                    size_t len)
{
	char bin[1024];
	const char *const *env = env_from(s->dp.pid, over);
	it_bin("data-plane", bin, sizeof bin);
	char *argv[] = { bin, NULL };
	it_spawn(p, "data-plane", argv, env);
	snprintf(url, len, "http://127.0.0.1:%d", it_wait_port(p, 60000));
}

/* Replaces the stack's data plane by one with `over` changed. */
static void dp_restart(struct it_stack *s, const char *const over[])
{
	struct it_proc next;
	char url[64];
	dp_like(s, &next, over, url, sizeof url);
	int st = it_stop(&s->dp);
	ck_assert_msg(st == 0, "the data plane exited with %d on SIGTERM (log %s)", st, s->dp.log);
	s->dp = next;
	snprintf(s->dp_url, sizeof s->dp_url, "%s", url);
	s->dp_port = atoi(strrchr(url, ':') + 1);
}

static json_t *get_json(const char *url, long *status)
{
	struct it_resp r;
	it_http(&r, "GET", url, NULL, NULL, 0);
	*status = r.status;
	json_t *v = json_loadb(r.body ? r.body : "", r.len, 0, NULL);
	ck_assert_msg(v, "GET %s: %ld, not JSON: %.300s", url, r.status, r.body);
	it_resp_free(&r);
	return v;
}

/* Waits until the data plane at `url` serves a configuration. */
static void wait_config(const char *url)
{
	long deadline = it_now_ms() + 60000, st;
	for (;;) {
		json_t *v = get_json(it_fmt("%s/readyz", url), &st);
		long ver = (long)json_integer_value(json_object_get(v, "config_version"));
		json_decref(v);
		if (ver > 0)
			return;
		ck_assert_msg(it_now_ms() < deadline, "%s serves no configuration", url);
		usleep(50000);
	}
}

/* The value of the metrics line starting with `series`; -1 when absent. */
static long long metric(const char *url, const char *series)
{
	struct it_resp r;
	it_http(&r, "GET", it_fmt("%s/metrics", url), NULL, NULL, 0);
	ck_assert_int_eq(r.status, 200);
	const char *at = strstr(r.body, it_fmt("\n%s ", series));
	long long v = at ? atoll(at + strlen(series) + 2) : -1;
	it_resp_free(&r);
	return v;
}

static long long wait_metric(const char *url, const char *series, long long at_least, int timeout_ms)
{
	long deadline = it_now_ms() + timeout_ms;
	long long v;
	while ((v = metric(url, series)) < at_least) {
		ck_assert_msg(it_now_ms() < deadline, "%s is %lld, want at least %lld", series, v, at_least);
		usleep(100000);
	}
	return v;
}

/* One event, sent with the stack's key: the status. */
static long post_event(const char *url, const char *key, const char *id)
{
	struct it_resp r;
	const char *const h[] = { "Content-Type: application/json", it_fmt("Authorization: Bearer %s", key),
		                      NULL };
	const char *body = it_fmt("{\"id\":\"%s\",\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"user\"}}", id);
	it_http(&r, "POST", it_fmt("%s/v1/events", url), h, body, strlen(body));
	long st = r.status;
	it_resp_free(&r);
	return st;
}

static long list_events(const char *url, const char *key)
{
	struct it_resp r;
	const char *const h[] = { it_fmt("Authorization: Bearer %s", key), NULL };
	it_http(&r, "GET", it_fmt("%s/v1/events", url), h, NULL, 0);
	long st = r.status;
	it_resp_free(&r);
	return st;
}

static void this_period(char out[8])
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 8, "%Y-%m", &tm);
}

/* What the control plane bills the stack's tenant this month. */
static long long billed(const struct it_stack *s)
{
	struct it_resp r;
	char period[8];
	this_period(period);
	it_stack_admin(s, &r, "GET", it_fmt("/v1/tenants/%s/usage?period=%s", s->tenant, period), NULL);
	ck_assert_msg(r.status == 200, "usage: %ld %.300s", r.status, r.body);
	json_t *v = json_loadb(r.body, r.len, 0, NULL);
	long long total = (long long)json_integer_value(json_object_get(v, "total"));
	json_decref(v);
	it_resp_free(&r);
	return total;
}

static void wait_billed(const struct it_stack *s, long long want, int timeout_ms)
{
	long deadline = it_now_ms() + timeout_ms;
	long long got;
	while ((got = billed(s)) != want) {
		ck_assert_msg(got < want, "billed %lld, more than the %lld events stored", got, want);
		ck_assert_msg(it_now_ms() < deadline, "billed %lld after %d ms, want %lld (log %s)", got, timeout_ms,
		              want, s->dp.log);
		usleep(100000);
	}
}

static long long sqll(const char *url, const char *sql)
{
	char *v = it_sql(url, sql);
	long long n = v ? atoll(v) : -1;
	free(v);
	return n;
}

static int count_in(const char *path, const char *needle)
{
	char *text = it_slurp(path);
	int n = 0;
	for (const char *at = text; at && (at = strstr(at, needle)); at++)
		n++;
	free(text);
	return n;
}

/* ---- tests ---- */

/* A base URL written with a trailing slash (or two) still reaches the
 * control plane's POST /v1/usage: what was stored is billed. */
START_TEST(usage_base_url_slashes)
{
	struct it_stack s;
	const char *const fast[] = { "DP_USAGE_REPORT_INTERVAL=200ms", NULL };
	it_stack_start(&s, "us", NULL, fast);
	static const char *const suffixes[] = { "/", "//" };
	long long sent = 0;
	for (int i = 0; i < 2; i++) {
		const char *over[] = { it_fmt("DP_CONTROL_PLANE_URL=%s%s", s.cp_url, suffixes[i]), NULL };
		dp_restart(&s, over);
		it_stack_sync(&s);
		for (int k = 0; k < 3 + i; k++, sent++)
			ck_assert_int_eq(post_event(s.dp_url, s.key, it_fmt("slash-%d-%d", i, k)), 201);
		wait_billed(&s, sent, 20000);
		ck_assert_int_eq(metric(s.dp_url, "dp_control_plane_config_errors_total{call=\"usage\",status=\"404\"}"), 0);
		ck_assert_int_eq(metric(s.dp_url, "dp_control_plane_config_errors_total{call=\"config\",status=\"404\"}"), 0);
	}
	ck_assert_int_eq(sqll(s.dp_db, "SELECT count(*) FROM usage_outbox WHERE sent_at IS NULL"), 0);
	it_stack_stop(&s);
}
END_TEST

/* A base URL with a wrong path prefix: every call answers 404. The usage
 * batch is kept (not rejected), the error is counted per call and logged
 * at error level once a minute, not per retry; restarted with the right
 * URL, the same batch is delivered and billed once. */
START_TEST(usage_wrong_prefix_kept)
{
	struct it_stack s;
	const char *const fast[] = { "DP_USAGE_REPORT_INTERVAL=200ms", NULL };
	it_stack_start(&s, "us", NULL, fast);
	const char *over[] = { it_fmt("DP_CONTROL_PLANE_URL=%s/not-celltrail", s.cp_url), NULL };
	dp_restart(&s, over);
	wait_config(s.dp_url); /* from the cache */
	for (int k = 0; k < 5; k++)
		ck_assert_int_eq(post_event(s.dp_url, s.key, it_fmt("prefix-%d", k)), 201);

	const char *usage404 = "dp_control_plane_config_errors_total{call=\"usage\",status=\"404\"}";
	wait_metric(s.dp_url, usage404, 2, 20000); /* a first try and a retry */
	wait_metric(s.dp_url, "dp_control_plane_config_errors_total{call=\"config\",status=\"404\"}", 1, 20000);
	wait_metric(s.dp_url, "dp_control_plane_config_errors_total{call=\"status\",status=\"404\"}", 1, 20000);
	ck_assert_int_eq(metric(s.dp_url, "dp_control_plane_config_errors_total{call=\"usage\",status=\"401\"}"), 0);
	ck_assert_int_eq(metric(s.dp_url, "dp_usage_batches_rejected_total"), 0);
	/* Kept for delivery, not rejected: a batch cut and unsent, and what
	 * came after it still in the counters (no new batch is cut while the
	 * oldest is failing), five in all. */
	ck_assert_int_eq(sqll(s.dp_db, "SELECT count(*) FROM usage_outbox WHERE rejected_at IS NOT NULL"), 0);
	ck_assert_int_ge(sqll(s.dp_db, "SELECT count(*) FROM usage_outbox WHERE sent_at IS NULL"), 1);
	ck_assert_int_eq(sqll(s.dp_db, "SELECT (SELECT coalesce(sum(events), 0) FROM usage_outbox WHERE sent_at IS NULL)"
	                               " + (SELECT coalesce(sum(events - reported), 0) FROM usage_counters)"),
	                 5);
	ck_assert_int_eq(billed(&s), 0);
	/* Said at error level, once for the retries of this minute. */
	ck_assert_int_eq(count_in(s.dp.log, "answered HTTP 404 to POST /v1/usage"), 1);
	ck_assert_int_ge(count_in(s.dp.log, "\"level\":\"error\""), 1);

	const char *fixed[] = { it_fmt("DP_CONTROL_PLANE_URL=%s", s.cp_url), NULL };
	dp_restart(&s, fixed);
	wait_billed(&s, 5, 20000);
	long deadline = it_now_ms() + 10000;
	while (sqll(s.dp_db, "SELECT count(*) FROM usage_outbox WHERE sent_at IS NULL") > 0) {
		ck_assert_msg(it_now_ms() < deadline, "usage_outbox rows unsent after billing");
		usleep(100000);
	}
	usleep(600000); /* more report intervals: nothing counted twice */
	ck_assert_int_eq(billed(&s), 5);
	it_stack_stop(&s);
}
END_TEST

/* A data plane started while its database cannot be reached serves what
 * needs no database; when another region's database appears behind
 * DP_DATABASE_URL, no event is written to or read from it (503), /readyz
 * says why and the refusals are counted; once the URL reaches this
 * region's database, events are served. */
START_TEST(region_checked_late)
{
	struct it_stack s;
	it_stack_start(&s, "us", NULL, NULL);

	char name[64], db[600], bin[1024], out[4096], cache[700];
	const char *super = it_env("IT_PG_URL");
	snprintf(name, sizeof name, "it_late_db_%d", (int)getpid());
	snprintf(db, sizeof db, "%.*s/%s", (int)(strrchr(super, '/') - super), super, name);
	free(it_sql(super, it_fmt("DROP DATABASE IF EXISTS \"%s\"", name)));
	snprintf(cache, sizeof cache, "%s/late-db-cache-%d", it_env("IT_LOG_DIR"), (int)getpid());

	struct it_proc p;
	char url[64];
	const char *over[] = { it_fmt("DP_DATABASE_URL=%s", db), it_fmt("DP_CACHE_DIR=%s", cache),
		                   "DP_INSTANCE=it-late-db", NULL };
	dp_like(&s, &p, over, url, sizeof url);
	wait_config(url);
	ck_assert_int_eq(post_event(url, s.key, "down-1"), 503);
	long st;
	json_t *early = get_json(it_fmt("%s/readyz", url), &st); /* looked at below */

	/* Another region's database appears behind the connection string. */
	free(it_sql(super, it_fmt("CREATE DATABASE \"%s\"", name)));
	it_bin("data-plane", bin, sizeof bin);
	{
		const char *const env[] = { it_fmt("DP_DATABASE_URL=%s", db), "DP_REGION=eu",
			                        "DP_CONTROL_PLANE_URL=http://127.0.0.1:1", NULL };
		char *argv[] = { bin, "migrate", NULL };
		ck_assert_msg(it_run("dp-migrate", argv, env, out, sizeof out) == 0, "%s", out);
	}
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(post_event(url, s.key, it_fmt("foreign-%d", i)), 503);
		ck_assert_int_eq(list_events(url, s.key), 503);
	}
	ck_assert_int_eq(sqll(db, "SELECT count(*) FROM events"), 0);
	ck_assert_int_eq(sqll(db, "SELECT count(*) FROM usage_counters"), 0);
	/* Before any session: unchecked, and ready for what needs no database. */
	ck_assert_int_eq(st, 200);
	ck_assert_str_eq(it_js(early, "database"), "unchecked");
	json_decref(early);
	json_t *v = get_json(it_fmt("%s/readyz", url), &st);
	ck_assert_int_eq(st, 503);
	ck_assert_str_eq(it_js(v, "database"), "wrong_region");
	ck_assert_msg(strstr(it_js(v, "reason"), "'eu'"), "reason: %s", it_js(v, "reason"));
	json_decref(v);
	ck_assert_int_ge(metric(url, "dp_db_region_check_failures_total{reason=\"wrong_region\"}"), 3);
	ck_assert_int_ge(count_in(p.log, "reaches the database of region 'eu'"), 1);
	/* Said once (the state did not change within the minute), not per request. */
	ck_assert_int_eq(count_in(p.log, "reaches the database of region 'eu'"), 1);

	/* The URL now reaches this region's database: served. */
	free(it_sql(super, it_fmt("DROP DATABASE \"%s\" WITH (FORCE)", name)));
	free(it_sql(super, it_fmt("CREATE DATABASE \"%s\"", name)));
	{
		const char *const env[] = { it_fmt("DP_DATABASE_URL=%s", db), "DP_REGION=us",
			                        "DP_CONTROL_PLANE_URL=http://127.0.0.1:1", NULL };
		char *argv[] = { bin, "migrate", NULL };
		ck_assert_msg(it_run("dp-migrate", argv, env, out, sizeof out) == 0, "%s", out);
	}
	long deadline = it_now_ms() + 20000;
	while ((st = post_event(url, s.key, "home-1")) != 201) {
		ck_assert_msg(st == 503, "POST answered %ld", st);
		ck_assert_msg(it_now_ms() < deadline, "events still refused on this region's database");
		usleep(100000);
	}
	ck_assert_int_eq(list_events(url, s.key), 200);
	ck_assert_int_eq(sqll(db, "SELECT count(*) FROM events"), 1);
	v = get_json(it_fmt("%s/readyz", url), &st);
	ck_assert_int_eq(st, 200);
	ck_assert_str_eq(it_js(v, "database"), "ok");
	ck_assert(json_is_null(json_object_get(v, "reason")));
	json_decref(v);

	/* The sessions break and the URL reaches another region's database
	 * again: the reconnects are checked too. */
	free(it_sql(super, it_fmt("DROP DATABASE \"%s\" WITH (FORCE)", name)));
	free(it_sql(super, it_fmt("CREATE DATABASE \"%s\"", name)));
	{
		const char *const env[] = { it_fmt("DP_DATABASE_URL=%s", db), "DP_REGION=eu",
			                        "DP_CONTROL_PLANE_URL=http://127.0.0.1:1", NULL };
		char *argv[] = { bin, "migrate", NULL };
		ck_assert_msg(it_run("dp-migrate", argv, env, out, sizeof out) == 0, "%s", out);
	}
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(post_event(url, s.key, it_fmt("again-%d", i)), 503);
		ck_assert_int_eq(list_events(url, s.key), 503);
	}
	ck_assert_int_eq(sqll(db, "SELECT count(*) FROM events"), 0);
	v = get_json(it_fmt("%s/readyz", url), &st);
	ck_assert_int_eq(st, 503);
	ck_assert_str_eq(it_js(v, "database"), "wrong_region");
	json_decref(v);
	st = it_stop(&p);
	ck_assert_msg(st == 0, "the data plane exited with %ld (log %s)", st, p.log);
	it_stack_stop(&s);
	free(it_sql(super, it_fmt("DROP DATABASE \"%s\" WITH (FORCE)", name)));
}
END_TEST

Suite *dp_deps_suite(void)
{
	Suite *s = suite_create("dp-deps");
	const TTest *const tests[] = { usage_base_url_slashes, usage_wrong_prefix_kept, region_checked_late };
	it_add_tests(s, tests, sizeof tests / sizeof tests[0], NULL, NULL, 120);
	return s;
}
