/* The signed configuration end to end: a control plane and data planes as
 * real processes. A key revoked at the control plane is refused by its
 * region within a second; tenant requests keep succeeding, and stay fast,
 * while the control plane is killed or hung; a data plane restarted with
 * the control plane down serves from its cache at once; a key rotation
 * prepared through the trust bundle loses no request. */
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "it.h"

#define ADMIN "it-admin-token-0123456789-abcdefghijklmnopqrstuvwxyz"

static struct it_proc cp;
static char cp_db[512], cp_url[64], keys_dir[512], env_cpdb[600], env_keys[600];
static char trust[600];

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void start_cp(void)
{
	char bin[1024];
	it_bin("control-plane", bin, sizeof bin);
	const char *const env[] = { env_cpdb, env_keys, "CP_LISTEN=127.0.0.1:0", "CP_ADMIN_TOKEN=" ADMIN,
		                        "CP_SECRETS_KEY=" IT_SECRETS_KEY, "CP_SCRYPT_LOG2N=10",
		                        "CP_ACCESS_LOG=false", NULL };
	char *argv[] = { bin, NULL };
	it_spawn(&cp, "control-plane", argv, env);
	snprintf(cp_url, sizeof cp_url, "http://127.0.0.1:%d", it_wait_port(&cp, 10000));
}

static json_t *call(long *status, const char *method, const char *path, const char *body)
{
	struct it_resp r;
	char u[512];
	snprintf(u, sizeof u, "%s%s", cp_url, path);
	const char *const h[] = { "Content-Type: application/json", "Authorization: Bearer " ADMIN, NULL };
	it_http(&r, method, u, h, body, body ? strlen(body) : 0);
	*status = r.status;
	json_error_t e;
	json_t *j = r.len ? json_loads(r.body, 0, &e) : NULL;
	it_resp_free(&r);
	return j;
}

static void get_str(json_t *j, const char *k, char *out, size_t len)
{
	const char *s = json_string_value(json_object_get(j, k));
	ck_assert_msg(s, "no '%s'", k);
	snprintf(out, len, "%s", s);
}

struct tenant {
	char id[40], key_id[32], key[200];
};

/* A tenant of `region` (in `cell` when not NULL) with one key. */
static void tenant_in_cell(const char *slug, const char *region, const char *cell, struct tenant *t)
{
	char body[256], path[128], in_cell[96] = "";
	long st;
	if (cell)
		snprintf(in_cell, sizeof in_cell, ",\"cell\":\"%s\"", cell);
	snprintf(body, sizeof body, "{\"name\":\"%s\",\"slug\":\"%s\",\"region\":\"%s\",\"plan\":\"pro\"%s}",
	         slug, slug, region, in_cell);
	json_t *j = call(&st, "POST", "/v1/tenants", body);
	ck_assert_int_eq(st, 201);
	get_str(j, "id", t->id, sizeof t->id);
	json_decref(j);
	snprintf(path, sizeof path, "/v1/tenants/%s/api-keys", t->id);
	j = call(&st, "POST", path, "{\"name\":\"k\",\"scopes\":[\"events:read\",\"events:write\"]}");
	ck_assert_int_eq(st, 201);
	get_str(j, "id", t->key_id, sizeof t->key_id);
	get_str(j, "secret", t->key, sizeof t->key);
	json_decref(j);
}

static void tenant_with_key(const char *slug, const char *region, struct tenant *t)
{
	tenant_in_cell(slug, region, NULL, t);
}

static void write_trust(void)
{
	it_write_trust(cp_url, trust);
}

struct dp {
	struct it_proc p;
	char region[8], url[64], db_env[600], token_env[300], cache_env[600], instance_env[64];
};

static void dp_prepare(struct dp *d, const char *region)
{
	char name[64], db[512], bin[1024], out[4096], path[128];
	long st;
	snprintf(d->region, sizeof d->region, "%s", region);
	snprintf(name, sizeof name, "it_e2e_%s_%d", region, (int)getpid());
	it_create_db(name, db, sizeof db);
	snprintf(d->db_env, sizeof d->db_env, "DP_DATABASE_URL=%s", db);
	snprintf(path, sizeof path, "/v1/regions/%s/credentials", region);
	json_t *j = call(&st, "POST", path, "{}");
	ck_assert_int_eq(st, 201);
	snprintf(d->token_env, sizeof d->token_env, "DP_REGION_TOKEN=%s",
	         json_string_value(json_object_get(j, "token")));
	json_decref(j);
	snprintf(d->cache_env, sizeof d->cache_env, "DP_CACHE_DIR=%s/cache-%s-%d", it_env("IT_LOG_DIR"),
	         region, (int)getpid());
	snprintf(d->instance_env, sizeof d->instance_env, "DP_INSTANCE=e2e-%s", region);
	it_bin("data-plane", bin, sizeof bin);
	char env_region[32];
	snprintf(env_region, sizeof env_region, "DP_REGION=%s", region);
	const char *const env[] = { d->db_env, env_region, "DP_CONTROL_PLANE_URL=http://127.0.0.1:1", NULL };
	char *argv[] = { bin, "migrate", NULL };
	ck_assert_int_eq(it_run("dp-migrate", argv, env, out, sizeof out), 0);
}

static void dp_start(struct dp *d)
{
	char bin[1024], env_region[32], env_cp[128], env_trust[700];
	it_bin("data-plane", bin, sizeof bin);
	snprintf(env_region, sizeof env_region, "DP_REGION=%s", d->region);
	snprintf(env_cp, sizeof env_cp, "DP_CONTROL_PLANE_URL=%s", cp_url);
	snprintf(env_trust, sizeof env_trust, "DP_TRUST_BUNDLE=%s", trust);
	const char *const env[] = { d->db_env, env_region, env_cp, env_trust, d->token_env, d->cache_env,
		                        d->instance_env, "DP_LISTEN=127.0.0.1:0", "DP_ACCESS_LOG=false",
		                        "DP_PULL_WAIT=20s", NULL };
	char *argv[] = { bin, NULL };
	it_spawn(&d->p, "data-plane", argv, env);
	snprintf(d->url, sizeof d->url, "http://127.0.0.1:%d", it_wait_port(&d->p, 10000));
}

/* The data plane's config version from /readyz; 0 while it has none. */
static long dp_version(struct dp *d)
{
	struct it_resp r;
	char u[128];
	snprintf(u, sizeof u, "%s/readyz", d->url);
	it_http(&r, "GET", u, NULL, NULL, 0);
	json_error_t e;
	json_t *j = r.status == 200 ? json_loads(r.body, 0, &e) : NULL;
	long v = j ? (long)json_integer_value(json_object_get(j, "config_version")) : 0;
	json_decref(j);
	it_resp_free(&r);
	return v;
}

static void dp_wait_version(struct dp *d, long at_least, double within_s)
{
	double deadline = now_s() + within_s;
	while (dp_version(d) < at_least) {
		ck_assert_msg(now_s() < deadline, "%s data plane did not reach version %ld within %.1f s",
		              d->region, at_least, within_s);
		usleep(20 * 1000);
	}
}

static long region_version(const char *region)
{
	long st;
	json_t *j = call(&st, "GET", "/v1/regions", NULL), *r;
	size_t i;
	long v = 0;
	json_array_foreach(json_object_get(j, "items"), i, r)
		if (!strcmp(json_string_value(json_object_get(r, "name")), region))
			v = (long)json_integer_value(json_object_get(r, "config_version"));
	json_decref(j);
	return v;
}

static long tenant_status(struct dp *d, const char *key, char *body, size_t len)
{
	struct it_resp r;
	char u[128], auth[300];
	snprintf(u, sizeof u, "%s/v1/tenant", d->url);
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
	const char *const h[] = { auth, NULL };
	it_http(&r, "GET", u, h, NULL, 0);
	if (body)
		snprintf(body, len, "%s", r.body);
	long st = r.status;
	it_resp_free(&r);
	return st;
}

static void setup(void)
{
	char name[64], bin[1024], out[4096];
	snprintf(name, sizeof name, "it_e2e_cp_%d", (int)getpid());
	it_create_db(name, cp_db, sizeof cp_db);
	snprintf(env_cpdb, sizeof env_cpdb, "CP_DATABASE_URL=%s", cp_db);
	snprintf(keys_dir, sizeof keys_dir, "%s/e2e-keys-%d", it_env("IT_LOG_DIR"), (int)getpid());
	snprintf(env_keys, sizeof env_keys, "CP_SIGNING_KEYS_DIR=%s", keys_dir);
	snprintf(trust, sizeof trust, "%s/e2e-trust-%d.json", it_env("IT_LOG_DIR"), (int)getpid());
	it_bin("control-plane", bin, sizeof bin);
	char *argv[] = { bin, "migrate", NULL };
	const char *const env[] = { env_cpdb, NULL };
	ck_assert_int_eq(it_run("migrate", argv, env, out, sizeof out), 0);
	start_cp();
	write_trust();
}

static void teardown(void)
{
	if (cp.pid > 0) {
		kill(cp.pid, SIGCONT);
		ck_assert_msg(it_stop(&cp) == 0, "control plane exit (log %s)", cp.log);
	}
}

static void stop_dp(struct dp *d)
{
	int st = it_stop(&d->p);
	ck_assert_msg(st == 0, "%s data plane exited with %d (log %s)", d->region, st, d->p.log);
}

/* ---- load ---- */

struct load {
	char url[128], auth[300];
	atomic_int stop;
	long ok, failed;
	double *lat;
	size_t n, cap;
	double mark_at;     /* latencies after this time go to the second half */
	size_t mark_index;
};

static size_t sink(char *p, size_t s, size_t n, void *u)
{
	(void)p, (void)u;
	return s * n;
}

static void *load_main(void *arg)
{
	struct load *l = arg;
	CURL *c = curl_easy_init();
	struct curl_slist *h = curl_slist_append(NULL, l->auth);
	curl_easy_setopt(c, CURLOPT_URL, l->url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	while (!atomic_load(&l->stop)) {
		double t0 = now_s();
		long code = 0;
		if (curl_easy_perform(c) == CURLE_OK)
			curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
		double dt = now_s() - t0;
		if (code == 200)
			l->ok++;
		else
			l->failed++;
		if (l->n < l->cap)
			l->lat[l->n++] = dt;
		if (!l->mark_index && l->mark_at && t0 >= l->mark_at)
			l->mark_index = l->n - 1;
		usleep(2000);
	}
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return NULL;
}

static void load_start(struct load *l, pthread_t *t, struct dp *d, const char *key)
{
	memset(l, 0, sizeof *l);
	snprintf(l->url, sizeof l->url, "%s/v1/tenant", d->url);
	snprintf(l->auth, sizeof l->auth, "Authorization: Bearer %s", key);
	l->cap = 200000;
	l->lat = calloc(l->cap, sizeof *l->lat);
	pthread_create(t, NULL, load_main, l);
}

static void load_stop(struct load *l, pthread_t t)
{
	atomic_store(&l->stop, 1);
	pthread_join(t, NULL);
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double p99(double *v, size_t n)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof *v, cmp_d);
	return v[(size_t)((double)(n - 1) * 0.99)];
}

/* ---- tests ---- */

/* Revoking a key at the control plane makes its region refuse it within a
 * second; a key of another region is answered 421 with the right endpoint. */
START_TEST(revocation_within_a_second)
{
	struct tenant a;
	struct dp eu, us;
	char body[2048], path[160];
	long st;
	tenant_with_key("acme-eu", "eu", &a);
	dp_prepare(&eu, "eu");
	dp_prepare(&us, "us");
	dp_start(&eu);
	dp_start(&us);
	dp_wait_version(&eu, region_version("eu"), 5);
	dp_wait_version(&us, region_version("us"), 5);
	ck_assert_int_eq(tenant_status(&eu, a.key, body, sizeof body), 200);
	ck_assert_int_eq(tenant_status(&us, a.key, body, sizeof body), 421);
	ck_assert_msg(strstr(body, "\"region\":\"eu\""), "%s", body);

	snprintf(path, sizeof path, "/v1/tenants/%s/api-keys/%s", a.id, a.key_id);
	json_decref(call(&st, "DELETE", path, NULL));
	ck_assert_int_eq(st, 200);
	double t0 = now_s();
	while (tenant_status(&eu, a.key, NULL, 0) == 200) {
		ck_assert_msg(now_s() - t0 < 1.0, "the eu data plane still accepts the revoked key after 1 s");
		usleep(10 * 1000);
	}
	double took = now_s() - t0;
	ck_assert_int_eq(tenant_status(&eu, a.key, NULL, 0), 401);
	fprintf(stderr, "  revocation applied in the region after %.0f ms\n", took * 1000);
	stop_dp(&eu);
	stop_dp(&us);
}
END_TEST

static long long dp_metric(struct dp *d, const char *series)
{
	return it_metric(d->url, series);
}

/* A data plane of one cell follows its document through deltas: a key
 * revoked, then a burst of 30 changes, each applied as a delta (never a
 * whole document after the first), the last version reached; restarted
 * with the control plane down, it serves that last version from its
 * cached document and deltas, within a second. */
START_TEST(cell_follows_deltas_and_restarts_on_them)
{
	struct dp c = { 0 };
	char body[2048], path[200], cell[64], bin[1024], out[4096], name[64], db[512];
	long st;
	json_t *j = call(&st, "GET", "/v1/regions/eu/cells", NULL);
	ck_assert_int_eq(st, 200);
	get_str(json_array_get(json_object_get(j, "items"), 0), "name", cell, sizeof cell);
	json_decref(j);
	struct tenant a, more[30];
	tenant_in_cell("delta-eu", "eu", cell, &a);

	snprintf(c.region, sizeof c.region, "eu");
	snprintf(name, sizeof name, "it_e2e_cell_%d", (int)getpid());
	it_create_db(name, db, sizeof db);
	snprintf(c.db_env, sizeof c.db_env, "DP_DATABASE_URL=%s", db);
	snprintf(path, sizeof path, "/v1/cells/%s/credentials", cell);
	j = call(&st, "POST", path, "{}");
	ck_assert_int_eq(st, 201);
	snprintf(c.token_env, sizeof c.token_env, "DP_CELL_TOKEN=%s", json_string_value(json_object_get(j, "token")));
	json_decref(j);
	snprintf(c.cache_env, sizeof c.cache_env, "DP_CACHE_DIR=%s/cache-cell-%d", it_env("IT_LOG_DIR"), (int)getpid());
	snprintf(c.instance_env, sizeof c.instance_env, "DP_INSTANCE=e2e-cell");
	it_bin("data-plane", bin, sizeof bin);
	char env_cell[96], env_cp[128], env_trust[700];
	snprintf(env_cell, sizeof env_cell, "DP_CELL=%s", cell);
	{
		const char *const env[] = { c.db_env, "DP_REGION=eu", env_cell, "DP_CONTROL_PLANE_URL=http://127.0.0.1:1", NULL };
		char *argv[] = { bin, "migrate", NULL };
		ck_assert_int_eq(it_run("dp-migrate", argv, env, out, sizeof out), 0);
	}
	snprintf(env_cp, sizeof env_cp, "DP_CONTROL_PLANE_URL=%s", cp_url);
	snprintf(env_trust, sizeof env_trust, "DP_TRUST_BUNDLE=%s", trust);
	const char *const env[] = { c.db_env, "DP_REGION=eu", env_cell, env_cp, env_trust, c.token_env, c.cache_env,
		                        c.instance_env, "DP_LISTEN=127.0.0.1:0", "DP_ACCESS_LOG=false",
		                        "DP_PULL_WAIT=20s", NULL };
	char *argv[] = { bin, NULL };
	it_spawn(&c.p, "data-plane", argv, env);
	snprintf(c.url, sizeof c.url, "http://127.0.0.1:%d", it_wait_port(&c.p, 10000));
	dp_wait_version(&c, region_version("eu"), 10);
	ck_assert_int_eq(tenant_status(&c, a.key, body, sizeof body), 200);
	long long applied0 = dp_metric(&c, "dp_config_applied_total");
	ck_assert_int_eq(dp_metric(&c, "dp_config_deltas_applied_total"), 0);

	/* One key revoked: a delta, applied within a second. */
	snprintf(path, sizeof path, "/v1/tenants/%s/api-keys/%s", a.id, a.key_id);
	json_decref(call(&st, "DELETE", path, NULL));
	ck_assert_int_eq(st, 200);
	dp_wait_version(&c, region_version("eu"), 1.0);
	ck_assert_int_eq(tenant_status(&c, a.key, NULL, 0), 401);
	ck_assert_int_eq(dp_metric(&c, "dp_config_deltas_applied_total"), 1);

	/* A burst: every change is a delta, and the last version is reached. */
	for (int i = 0; i < 30; i++) {
		char slug[32];
		snprintf(slug, sizeof slug, "burst-%d", i);
		tenant_in_cell(slug, "eu", cell, &more[i]);
	}
	long last = region_version("eu");
	dp_wait_version(&c, last, 10);
	long long applied = dp_metric(&c, "dp_config_applied_total") - applied0;
	ck_assert_int_ge(applied, 2);
	ck_assert_int_eq(dp_metric(&c, "dp_config_deltas_applied_total"), applied);
	for (int i = 0; i < 30; i++)
		ck_assert_int_eq(tenant_status(&c, more[i].key, NULL, 0), 200);
	ck_assert_int_eq(tenant_status(&c, a.key, NULL, 0), 401);
	stop_dp(&c);

	/* The control plane gone: the restart serves the last version. */
	ck_assert_int_eq(it_stop(&cp), 0);
	cp.pid = 0;
	double t0 = now_s();
	it_spawn(&c.p, "data-plane", argv, env);
	snprintf(c.url, sizeof c.url, "http://127.0.0.1:%d", it_wait_port(&c.p, 10000));
	dp_wait_version(&c, last, 1.0);
	fprintf(stderr, "  cell data plane restarted on its deltas: version %ld served %.0f ms after start\n", last,
	        (now_s() - t0) * 1000);
	ck_assert_int_eq(tenant_status(&c, a.key, NULL, 0), 401);
	for (int i = 0; i < 30; i++)
		ck_assert_int_eq(tenant_status(&c, more[i].key, NULL, 0), 200);
	stop_dp(&c);
	start_cp(); /* for teardown */
}
END_TEST

/* With the control plane SIGKILLed, then a new one SIGSTOPped (it accepts
 * connections and never answers), tenant requests keep succeeding and their
 * p99 does not grow; a data plane restarted meanwhile serves from its cache
 * within a second. */
START_TEST(control_plane_down_or_hung)
{
	struct tenant a;
	struct dp eu;
	struct load l;
	pthread_t t;
	tenant_with_key("acme-eu", "eu", &a);
	dp_prepare(&eu, "eu");
	dp_start(&eu);
	dp_wait_version(&eu, region_version("eu"), 5);

	load_start(&l, &t, &eu, a.key);
	usleep(800 * 1000);
	l.mark_at = now_s();
	kill(cp.pid, SIGKILL);
	it_wait(&cp, 5000);
	usleep(1200 * 1000);
	load_stop(&l, t);
	ck_assert_msg(l.failed == 0, "%ld of %ld requests failed with the control plane killed", l.failed,
	              l.ok + l.failed);
	ck_assert_int_gt(l.ok, 50);
	free(l.lat);

	/* A control plane that accepts TCP and never answers. */
	start_cp();
	kill(cp.pid, SIGSTOP);
	load_start(&l, &t, &eu, a.key);
	usleep(1000 * 1000);
	l.mark_at = now_s();
	usleep(2500 * 1000);
	load_stop(&l, t);
	ck_assert_msg(l.failed == 0, "%ld requests failed with the control plane hung", l.failed);
	size_t half = l.mark_index;
	ck_assert_int_gt(half, 20);
	double before = p99(l.lat, half), during = p99(l.lat + half, l.n - half);
	fprintf(stderr, "  tenant p99 %.2f ms before, %.2f ms while the control plane hangs\n",
	        before * 1000, during * 1000);
	ck_assert_msg(during < before * 3 + 0.005, "p99 grew from %.2f ms to %.2f ms", before * 1000,
	              during * 1000);
	free(l.lat);

	/* Restart the data plane while the control plane hangs: from cache. */
	stop_dp(&eu);
	double t0 = now_s();
	dp_start(&eu);
	while (tenant_status(&eu, a.key, NULL, 0) != 200)
		ck_assert_msg(now_s() - t0 < 1.0, "the restarted data plane did not serve within 1 s");
	fprintf(stderr, "  restarted data plane served from its cache %.0f ms after start\n",
	        (now_s() - t0) * 1000);
	stop_dp(&eu);
}
END_TEST

/* A rotation prepared through the trust bundle: the data plane, given the
 * staged key, accepts the documents signed with it; no request fails. */
START_TEST(key_rotation_without_failures)
{
	struct tenant a;
	struct dp eu;
	struct load l;
	pthread_t t;
	char bin[1024], out[4096];
	tenant_with_key("acme-eu", "eu", &a);
	dp_prepare(&eu, "eu");
	dp_start(&eu);
	dp_wait_version(&eu, region_version("eu"), 5);

	it_bin("control-plane", bin, sizeof bin);
	const char *const env[] = { env_cpdb, env_keys, NULL };
	char *stage[] = { bin, "stage-key", NULL };
	ck_assert_int_eq(it_run("stage-key", stage, env, out, sizeof out), 0);
	usleep(20 * 1000);
	write_trust(); /* now with the staged key */

	/* The data plane takes the new bundle at its (rolling) restart; then
	 * the rotation happens under load. */
	stop_dp(&eu);
	dp_start(&eu);
	dp_wait_version(&eu, region_version("eu"), 2);
	long before = dp_version(&eu);
	load_start(&l, &t, &eu, a.key);
	usleep(300 * 1000);
	char *rotate[] = { bin, "rotate-key", NULL };
	ck_assert_int_eq(it_run("rotate-key", rotate, env, out, sizeof out), 0);
	long v = region_version("eu");
	ck_assert_int_gt(v, before);
	dp_wait_version(&eu, v, 3); /* a document signed with the new key, accepted */
	usleep(300 * 1000);
	load_stop(&l, t);
	free(l.lat);
	ck_assert_msg(l.failed == 0, "%ld of %ld requests failed during the rotation", l.failed,
	              l.ok + l.failed);
	ck_assert_int_gt(l.ok, 20);
	ck_assert_int_eq(tenant_status(&eu, a.key, NULL, 0), 200);
	stop_dp(&eu);
}
END_TEST

Suite *e2e_config_suite(void)
{
	Suite *s = suite_create("e2e-config");
	TCase *tc = tcase_create("e2e");
	tcase_set_timeout(tc, 90);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, revocation_within_a_second);
	tcase_add_test(tc, control_plane_down_or_hung);
	tcase_add_test(tc, key_rotation_without_failures);
	tcase_add_test(tc, cell_follows_deltas_and_restarts_on_them);
	suite_add_tcase(s, tc);
	return s;
}
