/* The data plane's signed configuration, from outside: it serves tenants
 * from a verified cached document at once, whatever the control plane
 * does; it refuses tampered, foreign, stale-by-policy and rolled-back
 * documents; it pulls newer ones without ever slowing a request.
 *
 * The control plane's config endpoint is played by a small fake server in
 * this process, serving documents signed here with a key of our own. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cfgdoc.h"
#include "fixtures.h"
#include "it.h"
#include "jwk.h"
#include "secret.h"

#define REGION_TOKEN "it-region-token-us-0123456789abcdef"

/* API key ids and secrets of the documents signed here. */
#define ID_ACTIVE  "a00000000000000000000001"
#define ID_EXPIRED "a00000000000000000000002"
#define ID_SUSP    "a00000000000000000000003"
#define ID_DELETED "a00000000000000000000004"
#define ID_NEW     "a00000000000000000000005"
#define ID_UNKNOWN "a0000000000000000000000f"
#define SEC1 "1111111111111111111111111111111111111111111111111111111111111111"
#define SEC2 "2222222222222222222222222222222222222222222222222222222222222222"
#define T_ACTIVE  "10000000-0000-4000-8000-000000000001"
#define T_SUSP    "10000000-0000-4000-8000-000000000002"
#define T_DELETED "10000000-0000-4000-8000-000000000003"

/* ---- documents ---- */

static struct jwk signer, stranger;
static char dir[512], trust_path[600], cache_dir[600], db_url[512];

static void add_key(struct buf *b, const char *id, const char *secret, int64_t expires)
{
	unsigned char h[32];
	secret_sha256(secret, strlen(secret), h);
	ck_assert_int_eq(cfgdoc_add_key(b, id, h, 1, 1, expires), 0);
}

/* A document for region us, version `ver`, expiring at `exp`; `with_new`
 * adds a key that only newer versions have; `pad` adds that many extra
 * tenants (to make it large). */
static char *sign_doc(const struct jwk *key, const char *region, int64_t ver, int64_t exp,
                      int with_new, int pad)
{
	int64_t now = (int64_t)time(NULL);
	struct buf b = { 0 };
	ck_assert_int_eq(cfgdoc_add_tenant(&b, T_ACTIVE, "acme", "active", "pro"), 0);
	add_key(&b, ID_ACTIVE, SEC1, 0);
	add_key(&b, ID_EXPIRED, SEC1, now - 60);
	if (with_new)
		add_key(&b, ID_NEW, SEC2, 0);
	ck_assert_int_eq(cfgdoc_add_tenant(&b, T_SUSP, "paused", "suspended", "free"), 0);
	add_key(&b, ID_SUSP, SEC1, 0);
	ck_assert_int_eq(cfgdoc_add_tenant(&b, T_DELETED, "gone", "deleted", "free"), 0);
	add_key(&b, ID_DELETED, SEC1, 0);
	for (int i = 0; i < pad; i++) {
		char id[37], slug[32];
		snprintf(id, sizeof id, "%08x-0000-4000-8000-00000000ffff", i);
		snprintf(slug, sizeof slug, "pad-%d", i);
		ck_assert_int_eq(cfgdoc_add_tenant(&b, id, slug, "active", "free"), 0);
	}
	char *tenants = buf_take(&b);
	json_t *c = json_pack("{ss ss sI sI sI ss sI si ss"
	                      " s{ss ss ss ss si}"
	                      " s[[sss][sss]]"
	                      " s{s[iiii] s[iiii]}}",
	                      "iss", "celltrail-control-plane", "aud", region, "iat", (json_int_t)(exp - 7200),
	                      "nbf", (json_int_t)(exp - 7200), "exp", (json_int_t)exp, "jti", "it",
	                      "ver", (json_int_t)ver, "fmt", 1, "kind", "full",
	                      "region", "name", region, "display_name", "Region", "endpoint_url",
	                      "https://us.example.test", "status", "active", "wave", 1,
	                      "directory", "us", "https://us.example.test", "active", "eu",
	                      "https://eu.example.test", "active",
	                      "plans", "pro", 100, 200, 1000000, 30, "free", 5, 10, 1000, 7);
	ck_assert_ptr_nonnull(c);
	char *tok = cfgdoc_sign(key, c, tenants);
	ck_assert_ptr_nonnull(tok);
	json_decref(c);
	free(tenants);
	return tok;
}

/* A fresh document of region us. */
static char *doc(int64_t ver, int with_new)
{
	return sign_doc(&signer, "us", ver, (int64_t)time(NULL) + 3600, with_new, 0);
}

static void write_cache(const char *token)
{
	char path[700];
	snprintf(path, sizeof path, "%s/config.jwt", cache_dir);
	write_text(path, token);
}

static char *read_cache(const char *name)
{
	char path[700];
	snprintf(path, sizeof path, "%s/%s", cache_dir, name);
	return it_slurp(path);
}

/* Temporary files left in the cache directory: a document is written to
 * one while it is verified, renamed into place or removed after. */
static int cache_temporaries(void)
{
	DIR *dh = opendir(cache_dir);
	ck_assert_ptr_nonnull(dh);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(dh)))
		n += e->d_name[0] == '.' && strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(dh);
	return n;
}

/* Per test: a signing key and its trust bundle, an empty cache directory
 * and a migrated regional database. */
static void setup(void)
{
	static int seq;
	snprintf(dir, sizeof dir, "%s/dp-config-%d-%d", it_env("IT_LOG_DIR"), (int)getpid(), seq++);
	ck_assert_int_eq(mkdir(dir, 0755), 0);
	snprintf(cache_dir, sizeof cache_dir, "%s/cache", dir);
	ck_assert_int_eq(mkdir(cache_dir, 0700), 0);
	ck_assert_int_eq(jwk_generate(&signer), 0);
	ck_assert_int_eq(jwk_generate(&stranger), 0);
	snprintf(trust_path, sizeof trust_path, "%s/trust.json", dir);
	write_trust_bundle(&signer, trust_path);

	dp_region_db(it_fmt("it_dpcfg_%d", (int)getpid()), db_url, sizeof db_url);
}

static void teardown(void)
{
	jwk_clear(&signer);
	jwk_clear(&stranger);
}

/* ---- the data plane ---- */

struct dp {
	struct it_proc p;
	int port;
	long started_ms;
};

/* Starts a data plane of region us against `cp_url`; `extra` adds
 * variables (NULL-terminated, may be NULL). */
static void start_dp(struct dp *d, const char *cp_url, const char *const extra[])
{
	static char e_db[600], e_cp[300], e_trust[700], e_cache[700];
	const char *env[24];
	int n = 0;
	char bin[1024];

	snprintf(e_db, sizeof e_db, "DP_DATABASE_URL=%s", db_url);
	snprintf(e_cp, sizeof e_cp, "DP_CONTROL_PLANE_URL=%s", cp_url);
	snprintf(e_trust, sizeof e_trust, "DP_TRUST_BUNDLE=%s", trust_path);
	snprintf(e_cache, sizeof e_cache, "DP_CACHE_DIR=%s", cache_dir);
	env[n++] = e_db;
	env[n++] = e_cp;
	env[n++] = e_trust;
	env[n++] = e_cache;
	env[n++] = "DP_REGION=us";
	env[n++] = "DP_LISTEN=127.0.0.1:0";
	env[n++] = "DP_REGION_TOKEN=" REGION_TOKEN;
	env[n++] = "DP_INSTANCE=it-instance";
	env[n++] = "DP_ACCESS_LOG=false";
	for (int i = 0; extra && extra[i]; i++)
		env[n++] = extra[i];
	env[n] = NULL;
	it_bin("data-plane", bin, sizeof bin);
	char *argv[] = { bin, NULL };
	d->started_ms = it_now_ms();
	it_spawn(&d->p, "data-plane", argv, env);
	d->port = it_wait_port(&d->p, 10000);
}

/* SIGTERM: the process must be gone, with status 0, within 3 s. */
static void stop_dp(struct dp *d)
{
	long t0 = it_now_ms();
	kill(d->p.pid, SIGTERM);
	int st = it_wait(&d->p, 3000);
	ck_assert_msg(st == 0, "data plane exit status %d (-1: still running) %ld ms after SIGTERM", st,
	              it_now_ms() - t0);
	/* Neither the region's credential nor a key's secret is ever logged. */
	char *log = it_slurp(d->p.log);
	ck_assert_ptr_nonnull(log);
	ck_assert_msg(!strstr(log, REGION_TOKEN) && !strstr(log, SEC1) && !strstr(log, SEC2),
	              "a secret appears in %s", d->p.log);
	free(log);
}

static void get(struct it_resp *r, const struct dp *d, const char *path, const char *key)
{
	char url[256], auth[300];
	snprintf(url, sizeof url, "http://127.0.0.1:%d%s", d->port, path);
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", key ? key : "");
	const char *const h[] = { auth, NULL };
	it_http(r, "GET", url, key ? h : NULL, NULL, 0);
}

static json_t *body_json(const struct it_resp *r)
{
	json_error_t e;
	json_t *v = json_loads(r->body, 0, &e);
	ck_assert_msg(v, "not JSON: %.300s", r->body);
	return v;
}

/* GET /readyz as JSON, with the status in *status. */
static json_t *readyz(const struct dp *d, long *status)
{
	struct it_resp r;
	get(&r, d, "/readyz", NULL);
	*status = r.status;
	json_t *v = body_json(&r);
	it_resp_free(&r);
	return v;
}

static json_int_t ready_version(const struct dp *d)
{
	long st;
	json_t *v = readyz(d, &st);
	json_int_t ver = json_integer_value(json_object_get(v, "config_version"));
	json_decref(v);
	return ver;
}

/* Waits until /readyz reports `ver`; fails after `timeout_ms`. */
static void wait_version(const struct dp *d, json_int_t ver, int timeout_ms)
{
	long deadline = it_now_ms() + timeout_ms;
	json_int_t got;
	while ((got = ready_version(d)) != ver) {
		ck_assert_msg(it_now_ms() < deadline, "config_version %lld, want %lld", (long long)got,
		              (long long)ver);
		usleep(50000);
	}
}

static const char *key_text(const char *region, const char *id, const char *secret)
{
	static char buf[4][200];
	static int i;
	i = (i + 1) % 4;
	snprintf(buf[i], sizeof buf[i], "%s_%s_%s", region, id, secret);
	return buf[i];
}

/* GET /v1/tenant with `key`: the status, and the problem code (if any) in code. */
static long tenant_call(const struct dp *d, const char *key, char *code, size_t len)
{
	struct it_resp r;
	get(&r, d, "/v1/tenant", key);
	if (code) {
		json_t *v = body_json(&r);
		const char *c = json_string_value(json_object_get(v, "code"));
		snprintf(code, len, "%s", c ? c : "");
		json_decref(v);
	}
	long st = r.status;
	it_resp_free(&r);
	return st;
}

/* The value of a metrics line that starts with `series` ("name{labels}"). */
static long long metric(const struct dp *d, const char *series)
{
	struct it_resp r;
	char want[256];
	get(&r, d, "/metrics", NULL);
	ck_assert_int_eq(r.status, 200);
	snprintf(want, sizeof want, "\n%s ", series);
	const char *at = strstr(r.body, want);
	ck_assert_msg(at, "no metric %s", series);
	long long v = atoll(at + strlen(want));
	it_resp_free(&r);
	return v;
}

static long long wait_metric(const struct dp *d, const char *series, long long at_least, int timeout_ms)
{
	long deadline = it_now_ms() + timeout_ms;
	long long v;
	while ((v = metric(d, series)) < at_least) {
		ck_assert_msg(it_now_ms() < deadline, "%s is %lld, want at least %lld", series, v, at_least);
		usleep(50000);
	}
	return v;
}

/* ---- a fake control plane ---- */

struct fake_cp {
	struct fake_srv srv;
	pthread_mutex_t mu;
	/* what config GETs are answered with (under mu) */
	char *token;      /* 200 body; NULL: 503 */
	long ver;         /* If-None-Match "<ver>" is answered 304 after a short hold */
	int fixed;        /* non-zero: answer config GETs with this status */
	char **chain;     /* if set: If-None-Match "<k>" is answered chain[k] (version k + 1) */
	int nchain;
	/* what it saw (under mu) */
	int gets, posts;
	char inm[64], auth[300], path[300], status_body[2048];
};

static void fake_cp_handle(struct fake_srv *s, int fd, const char *req)
{
	struct fake_cp *cp = s->ctx;
	char method[16], path[300], inm[64], auth[300];
	sscanf(req, "%15s %299s", method, path);
	fake_header(req, "If-None-Match", inm, sizeof inm);
	fake_header(req, "Authorization", auth, sizeof auth);
	if (!strcmp(method, "POST") && strstr(path, "/v1/regions/us/status") == path) {
		pthread_mutex_lock(&cp->mu);
		cp->posts++;
		snprintf(cp->status_body, sizeof cp->status_body, "%s", strstr(req, "\r\n\r\n") + 4);
		pthread_mutex_unlock(&cp->mu);
		fake_respond(fd, 200, "application/json", "{}");
		return;
	}
	if (strcmp(method, "GET") || strstr(path, "/v1/regions/us/config") != path) {
		fake_respond(fd, 404, "application/problem+json", "{\"code\":\"not_found\"}");
		return;
	}
	pthread_mutex_lock(&cp->mu);
	cp->gets++;
	snprintf(cp->inm, sizeof cp->inm, "%s", inm);
	snprintf(cp->auth, sizeof cp->auth, "%s", auth);
	snprintf(cp->path, sizeof cp->path, "%s", path);
	char etag[40];
	snprintf(etag, sizeof etag, "\"%ld\"", cp->ver);
	int fixed = cp->fixed, same = !strcmp(inm, etag);
	char *token = cp->token ? strdup(cp->token) : NULL;
	if (cp->chain) {
		int k = inm[0] == '"' ? atoi(inm + 1) : 0;
		free(token);
		token = strdup(cp->chain[k < cp->nchain ? k : cp->nchain - 1]);
		same = k >= cp->nchain;
	}
	pthread_mutex_unlock(&cp->mu);
	if (fixed) {
		fake_respond(fd, fixed, "application/problem+json", "{\"code\":\"unauthorized\"}");
	} else if (same || !token) {
		/* A short long poll: nothing newer. */
		fake_nothing_newer(&cp->srv, fd, token != NULL);
	} else {
		fake_respond(fd, 200, "application/jwt", token);
	}
	free(token);
}

static void fake_cp_start(struct fake_cp *cp)
{
	memset(cp, 0, sizeof *cp);
	pthread_mutex_init(&cp->mu, NULL);
	fake_srv_start(&cp->srv, fake_cp_handle, cp);
}

/* What config GETs are answered with from now on (token copied). */
static void fake_cp_serve(struct fake_cp *cp, const char *token, long ver)
{
	pthread_mutex_lock(&cp->mu);
	free(cp->token);
	cp->token = token ? strdup(token) : NULL;
	cp->ver = ver;
	pthread_mutex_unlock(&cp->mu);
}

static void fake_cp_stop(struct fake_cp *cp)
{
	fake_srv_stop(&cp->srv);
	free(cp->token);
	pthread_mutex_destroy(&cp->mu);
}

static void fake_cp_url(const struct fake_cp *cp, char *url, size_t len)
{
	snprintf(url, len, "http://127.0.0.1:%d", cp->srv.port);
}

/* Waits for a status POST whose body holds `needle`; returns a copy of it. */
static json_t *wait_status(struct fake_cp *cp, const char *needle, int timeout_ms)
{
	long deadline = it_now_ms() + timeout_ms;
	for (;;) {
		char body[2048];
		pthread_mutex_lock(&cp->mu);
		snprintf(body, sizeof body, "%s", cp->status_body);
		pthread_mutex_unlock(&cp->mu);
		if (strstr(body, needle)) {
			json_error_t e;
			json_t *v = json_loads(body, 0, &e);
			ck_assert_msg(v, "status body is not JSON: %s", body);
			return v;
		}
		ck_assert_msg(it_now_ms() < deadline, "no status POST with %s; last: %s", needle, body);
		usleep(50000);
	}
}

/* ---- tests ---- */

/* Tenants are served from the cached document within a second of start,
 * with the control plane down, and every kind of key is answered right. */
START_TEST(serves_from_cache_with_control_plane_down)
{
	struct dp d;
	char *tok = doc(7, 0), code[64];
	write_cache(tok);
	start_dp(&d, "http://127.0.0.1:1", NULL);

	long st;
	json_t *v;
	for (;;) {
		v = readyz(&d, &st);
		if (st == 200)
			break;
		json_decref(v);
		ck_assert_msg(it_now_ms() - d.started_ms < 1000, "not ready within 1 s of start");
		usleep(20000);
	}
	ck_assert_msg(it_now_ms() - d.started_ms < 1000, "ready only after %ld ms", it_now_ms() - d.started_ms);
	ck_assert_str_eq(json_string_value(json_object_get(v, "region")), "us");
	ck_assert_int_eq(json_integer_value(json_object_get(v, "config_version")), 7);
	ck_assert_str_eq(json_string_value(json_object_get(v, "source")), "cache");
	ck_assert(json_is_false(json_object_get(v, "stale")));
	ck_assert(json_is_null(json_object_get(v, "last_pull_ok_at")));
	const char *exp = json_string_value(json_object_get(v, "expires_at"));
	ck_assert_msg(exp && strlen(exp) == 20 && exp[10] == 'T' && exp[19] == 'Z', "expires_at %s", exp);
	ck_assert_ptr_nonnull(json_string_value(json_object_get(v, "issued_at")));
	json_decref(v);

	/* The caller's tenant, plan and key. */
	struct it_resp r;
	get(&r, &d, "/v1/tenant", key_text("us", ID_ACTIVE, SEC1));
	ck_assert_int_eq(r.status, 200);
	v = body_json(&r);
	/* Usage this month: what the regional database had, as last read,
	 * or said to be unknown (nulls) before the first read. */
	json_t *usage = json_object_get(v, "usage");
	ck_assert_msg(json_is_object(usage), "%s", r.body);
	ck_assert_uint_eq(strlen(json_string_value(json_object_get(usage, "period"))), 7);
	if (json_is_true(json_object_get(usage, "known"))) {
		json_int_t used = json_integer_value(json_object_get(usage, "events"));
		ck_assert_int_ge(used, 0);
		ck_assert_int_eq(json_integer_value(json_object_get(usage, "remaining")), 1000000 - used);
	} else {
		ck_assert_msg(json_is_false(json_object_get(usage, "known")) &&
		                  json_is_null(json_object_get(usage, "events")) &&
		                  json_is_null(json_object_get(usage, "remaining")) &&
		                  json_is_null(json_object_get(usage, "as_of")),
		              "%s", r.body);
	}
	json_object_del(v, "usage");
	json_t *want = json_pack("{s{ss ss ss ss} s{ss si si si si} s{ss s[ss]}}",
	                         "tenant", "id", T_ACTIVE, "slug", "acme", "status", "active", "region", "us",
	                         "plan", "id", "pro", "rate_limit", 100, "burst", 200,
	                         "monthly_event_quota", 1000000, "retention_days", 30,
	                         "key", "id", ID_ACTIVE, "scopes", "events:read", "events:write");
	ck_assert_msg(json_equal(v, want), "%s", r.body);
	json_decref(want);
	json_decref(v);
	it_resp_free(&r);

	ck_assert_int_eq(tenant_call(&d, key_text("us", ID_UNKNOWN, SEC1), code, sizeof code), 401);
	ck_assert_str_eq(code, "unauthorized");
	ck_assert_int_eq(tenant_call(&d, key_text("us", ID_ACTIVE, SEC2), code, sizeof code), 401);
	ck_assert_int_eq(tenant_call(&d, key_text("us", ID_EXPIRED, SEC1), code, sizeof code), 401);
	ck_assert_int_eq(tenant_call(&d, key_text("us", ID_DELETED, SEC1), code, sizeof code), 401);
	/* A suspended tenant still reads (its writes are 403 tenant_suspended:
	 * test_write_rules.c). */
	ck_assert_int_eq(tenant_call(&d, key_text("us", ID_SUSP, SEC1), code, sizeof code), 200);
	/* A wrong secret never learns that the tenant is suspended. */
	ck_assert_int_eq(tenant_call(&d, key_text("us", ID_SUSP, SEC2), code, sizeof code), 401);
	ck_assert_int_eq(tenant_call(&d, NULL, code, sizeof code), 401);
	ck_assert_int_eq(tenant_call(&d, "us_not-a-key", code, sizeof code), 401);

	/* Another region's key (an id this document does not hold: one it
	 * holds is an alias after a move, suite moves-dp): 421 with that
	 * region's endpoint; a key whose region the directory does not name
	 * is mistyped: 401. */
	get(&r, &d, "/v1/tenant", key_text("eu", ID_UNKNOWN, SEC1));
	ck_assert_int_eq(r.status, 421);
	v = body_json(&r);
	ck_assert_str_eq(json_string_value(json_object_get(v, "code")), "wrong_region");
	ck_assert_str_eq(json_string_value(json_object_get(v, "region")), "eu");
	ck_assert_str_eq(json_string_value(json_object_get(v, "endpoint")), "https://eu.example.test");
	json_decref(v);
	it_resp_free(&r);
	get(&r, &d, "/v1/tenant", key_text("jp", ID_ACTIVE, SEC1));
	ck_assert_int_eq(r.status, 401);
	v = body_json(&r);
	ck_assert_str_eq(json_string_value(json_object_get(v, "code")), "unauthorized");
	ck_assert_ptr_null(json_object_get(v, "endpoint"));
	json_decref(v);
	it_resp_free(&r);

	ck_assert_int_eq(metric(&d, "dp_config_version"), 7);
	ck_assert_int_eq(metric(&d, "dp_config_tenants"), 3);
	ck_assert_int_eq(metric(&d, "dp_config_keys"), 4);
	ck_assert_int_eq(metric(&d, "dp_config_stale"), 0);
	ck_assert_int_eq(metric(&d, "dp_config_applied_total"), 1);
	wait_metric(&d, "dp_config_pulls_total{outcome=\"error\"}", 1, 5000);
	ck_assert_int_eq(metric(&d, "dp_config_pulls_total{outcome=\"updated\"}"), 0);
	/* Liveness says nothing about the configuration. */
	get(&r, &d, "/healthz", NULL);
	ck_assert_int_eq(r.status, 200);
	it_resp_free(&r);
	stop_dp(&d);
	free(tok);
}
END_TEST

/* A control plane that accepts connections and never answers (stopped,
 * say) neither slows requests nor delays shutdown. */
START_TEST(hung_control_plane)
{
	struct dp d;
	char url[64], *tok = doc(7, 0);
	int port, lfd = listen_loopback(&port); /* never accepted from */
	snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
	write_cache(tok);
	start_dp(&d, url, NULL);
	long st;
	json_t *v = readyz(&d, &st);
	ck_assert_int_eq(st, 200);
	ck_assert_str_eq(json_string_value(json_object_get(v, "source")), "cache");
	json_decref(v);
	ck_assert_msg(it_now_ms() - d.started_ms < 1000, "ready only after %ld ms", it_now_ms() - d.started_ms);

	usleep(300000); /* the pull is connected and waiting by now */
	long worst = 0;
	for (int i = 0; i < 50; i++) {
		long t0 = it_now_ms();
		ck_assert_int_eq(tenant_call(&d, key_text("us", ID_ACTIVE, SEC1), NULL, 0), 200);
		if (it_now_ms() - t0 > worst)
			worst = it_now_ms() - t0;
	}
	ck_assert_msg(worst < 250, "a request took %ld ms while the pull was stuck", worst);
	ck_assert_int_eq(metric(&d, "dp_config_pulls_total{outcome=\"error\"}"), 0);
	stop_dp(&d);
	close(lfd);
	free(tok);
}
END_TEST

/* A corrupt or tampered cache file is never served: it is moved aside and
 * the region waits for the control plane. */
START_TEST(tampered_cache_ignored)
{
	struct dp d;
	char *a = doc(7, 0), *b = doc(8, 1), spliced[65536], code[64];
	/* a's header and signature around b's payload */
	const char *pa = strchr(a, '.'), *sa = strrchr(a, '.'), *pb = strchr(b, '.'), *sb = strrchr(b, '.');
	snprintf(spliced, sizeof spliced, "%.*s%.*s%s", (int)(pa - a), a, (int)(sb - pb), pb, sa);
	write_cache(spliced);
	start_dp(&d, "http://127.0.0.1:1", NULL);

	long st;
	json_t *v = readyz(&d, &st);
	ck_assert_int_eq(st, 503);
	ck_assert(json_is_null(json_object_get(v, "config_version")));
	ck_assert(json_is_null(json_object_get(v, "source")));
	ck_assert_str_eq(json_string_value(json_object_get(v, "region")), "us");
	json_decref(v);
	ck_assert_int_eq(tenant_call(&d, key_text("us", ID_ACTIVE, SEC1), code, sizeof code), 503);
	ck_assert_str_eq(code, "unavailable");
	ck_assert_int_eq(metric(&d, "dp_config_rejected_total{reason=\"signature\"}"), 1);
	ck_assert_int_eq(metric(&d, "dp_config_version"), 0);
	char *cached = read_cache("config.jwt"), *rejected = read_cache("config.jwt.rejected");
	ck_assert_ptr_null(cached);
	ck_assert_ptr_nonnull(rejected);
	ck_assert_str_eq(rejected, spliced);
	free(rejected);
	stop_dp(&d);

	/* Another region's genuine document is no better. */
	free(a);
	a = sign_doc(&signer, "eu", 9, (int64_t)time(NULL) + 3600, 0, 0);
	write_cache(a);
	start_dp(&d, "http://127.0.0.1:1", NULL);
	v = readyz(&d, &st);
	ck_assert_int_eq(st, 503);
	json_decref(v);
	ck_assert_int_eq(metric(&d, "dp_config_rejected_total{reason=\"audience\"}"), 1);
	stop_dp(&d);

	/* Nor garbage, or one signed by a key outside the trust bundle. */
	write_cache("not a token\n");
	start_dp(&d, "http://127.0.0.1:1", NULL);
	ck_assert_int_eq(metric(&d, "dp_config_rejected_total{reason=\"malformed\"}"), 1);
	stop_dp(&d);
	free(b);
	b = sign_doc(&stranger, "us", 9, (int64_t)time(NULL) + 3600, 0, 0);
	write_cache(b);
	start_dp(&d, "http://127.0.0.1:1", NULL);
	ck_assert_int_eq(metric(&d, "dp_config_rejected_total{reason=\"kid\"}"), 1);
	ck_assert_int_eq(ready_version(&d), 0);
	stop_dp(&d);
	free(a);
	free(b);
}
END_TEST

/* Past its expiry, a cached document keeps serving under DP_STALE_POLICY=serve
 * and closes the tenant routes under fail-closed; /readyz reports it either way,
 * and is 503 under fail-closed so that a balancer stops sending requests. */
START_TEST(stale_policy)
{
	struct dp d;
	char code[64];
	char *tok = sign_doc(&signer, "us", 7, (int64_t)time(NULL) - 600, 0, 0);
	write_cache(tok);

	start_dp(&d, "http://127.0.0.1:1", NULL);
	long st;
	json_t *v = readyz(&d, &st);
	ck_assert_int_eq(st, 200);
	ck_assert(json_is_true(json_object_get(v, "stale")));
	ck_assert_int_eq(json_integer_value(json_object_get(v, "config_version")), 7);
	json_decref(v);
	ck_assert_int_eq(tenant_call(&d, key_text("us", ID_ACTIVE, SEC1), NULL, 0), 200);
	ck_assert_int_eq(metric(&d, "dp_config_stale"), 1);
	stop_dp(&d);

	const char *const fc[] = { "DP_STALE_POLICY=fail-closed", NULL };
	start_dp(&d, "http://127.0.0.1:1", fc);
	v = readyz(&d, &st);
	ck_assert_int_eq(st, 503); /* refusing every tenant request: not ready */
	ck_assert(json_is_true(json_object_get(v, "stale")));
	json_decref(v);
	struct it_resp r;
	get(&r, &d, "/v1/tenant", key_text("us", ID_ACTIVE, SEC1));
	ck_assert_int_eq(r.status, 503);
	char ct[128], ra[16];
	ck_assert_int_eq(it_header(&r, "Content-Type", ct, sizeof ct), 0);
	ck_assert_str_eq(ct, "application/problem+json");
	ck_assert_int_eq(it_header(&r, "Retry-After", ra, sizeof ra), 0);
	it_resp_free(&r);
	ck_assert_int_eq(tenant_call(&d, key_text("us", ID_ACTIVE, SEC1), code, sizeof code), 503);
	ck_assert_str_eq(code, "unavailable");
	stop_dp(&d);

	/* A fresh document under fail-closed serves as usual. */
	free(tok);
	tok = doc(8, 0);
	write_cache(tok);
	start_dp(&d, "http://127.0.0.1:1", fc);
	ck_assert_int_eq(tenant_call(&d, key_text("us", ID_ACTIVE, SEC1), NULL, 0), 200);
	stop_dp(&d);
	free(tok);
}
END_TEST

/* A newer document from the control plane is verified, cached and put in
 * use without a restart; the instance reports its state as fleet status. */
START_TEST(pulls_newer_version)
{
	struct fake_cp cp;
	struct dp d;
	char url[64], *v7 = doc(7, 0), *v8 = doc(8, 1);
	fake_cp_start(&cp);
	fake_cp_url(&cp, url, sizeof url);
	fake_cp_serve(&cp, v7, 7);
	write_cache(v7);
	start_dp(&d, url, NULL);

	/* Up to date: the poll asks for what is newer than 7 and gets 304. */
	wait_metric(&d, "dp_config_pulls_total{outcome=\"not_modified\"}", 1, 5000);
	pthread_mutex_lock(&cp.mu);
	ck_assert_str_eq(cp.inm, "\"7\"");
	ck_assert_str_eq(cp.auth, "Bearer " REGION_TOKEN);
	ck_assert_str_eq(cp.path, "/v1/regions/us/config?wait=30");
	pthread_mutex_unlock(&cp.mu);
	ck_assert_int_eq(tenant_call(&d, key_text("us", ID_NEW, SEC2), NULL, 0), 401);
	json_t *s = wait_status(&cp, "\"last_pull_ok_at\":\"", 5000);
	ck_assert_str_eq(json_string_value(json_object_get(s, "instance")), "it-instance");
	ck_assert_int_eq(json_integer_value(json_object_get(s, "version")), 7);
	ck_assert_str_eq(json_string_value(json_object_get(s, "source")), "cache");
	ck_assert(json_is_null(json_object_get(s, "last_error")));
	ck_assert(json_is_false(json_object_get(s, "stale")));
	json_decref(s);

	fake_cp_serve(&cp, v8, 8);
	wait_version(&d, 8, 5000);
	long st;
	json_t *v = readyz(&d, &st);
	ck_assert_int_eq(st, 200);
	ck_assert_str_eq(json_string_value(json_object_get(v, "source")), "control-plane");
	ck_assert(json_is_string(json_object_get(v, "last_pull_ok_at")));
	json_decref(v);
	ck_assert_int_eq(tenant_call(&d, key_text("us", ID_NEW, SEC2), NULL, 0), 200);
	ck_assert_int_eq(metric(&d, "dp_config_applied_total"), 2);
	ck_assert_int_eq(metric(&d, "dp_config_pulls_total{outcome=\"updated\"}"), 1);
	ck_assert_int_eq(metric(&d, "dp_config_keys"), 5);
	char *cached = read_cache("config.jwt");
	ck_assert_ptr_nonnull(cached);
	ck_assert_str_eq(cached, v8);
	free(cached);
	ck_assert_int_eq(cache_temporaries(), 0);
	s = wait_status(&cp, "\"version\":8", 5000);
	ck_assert_str_eq(json_string_value(json_object_get(s, "source")), "control-plane");
	json_decref(s);
	stop_dp(&d);

	/* After a restart the cached version 8 is what rollbacks are measured against. */
	fake_cp_serve(&cp, v7, 7);
	start_dp(&d, url, NULL);
	ck_assert_int_eq(ready_version(&d), 8);
	wait_metric(&d, "dp_config_rejected_total{reason=\"rollback\"}", 1, 5000);
	ck_assert_int_eq(ready_version(&d), 8);
	s = wait_status(&cp, "rollback", 5000);
	ck_assert_int_eq(json_integer_value(json_object_get(s, "version")), 8);
	json_decref(s);
	stop_dp(&d);
	fake_cp_stop(&cp);
	free(v7);
	free(v8);
}
END_TEST

/* Whatever the control plane sends that does not verify leaves the
 * configuration in use, and its cache, untouched. */
START_TEST(pulled_documents_verified)
{
	struct fake_cp cp;
	struct dp d;
	char url[64], *v7 = doc(7, 0);
	fake_cp_start(&cp);
	fake_cp_url(&cp, url, sizeof url);
	write_cache(v7);
	const char *const small[] = { "DP_CONFIG_MAX_BYTES=4096", NULL };

	static const struct {
		const char *reason;
	} cases[] = { { "kid" }, { "expired" }, { "audience" }, { "malformed" }, { "rollback" } };
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int64_t now = (int64_t)time(NULL);
		char *bad;
		switch (i) {
		case 0: bad = sign_doc(&stranger, "us", 9, now + 3600, 1, 0); break;
		case 1: bad = sign_doc(&signer, "us", 9, now - 600, 1, 0); break;
		case 2: bad = sign_doc(&signer, "eu", 9, now + 3600, 1, 0); break;
		case 3: bad = sign_doc(&signer, "us", 9, now + 3600, 1, 100); break; /* > 4096 bytes */
		default: bad = sign_doc(&signer, "us", 6, now + 3600, 1, 0); break;
		}
		fake_cp_serve(&cp, bad, 9);
		start_dp(&d, url, i == 3 ? small : NULL);
		char series[128];
		snprintf(series, sizeof series, "dp_config_rejected_total{reason=\"%s\"}", cases[i].reason);
		wait_metric(&d, series, 1, 5000);
		ck_assert_int_eq(ready_version(&d), 7);
		ck_assert_int_eq(tenant_call(&d, key_text("us", ID_NEW, SEC2), NULL, 0), 401);
		ck_assert_int_eq(metric(&d, "dp_config_applied_total"), 1);
		wait_metric(&d, "dp_config_pulls_total{outcome=\"error\"}", 1, 5000);
		json_t *s = wait_status(&cp, cases[i].reason, 5000);
		ck_assert_int_eq(json_integer_value(json_object_get(s, "version")), 7);
		json_decref(s);
		stop_dp(&d);
		char *cached = read_cache("config.jwt");
		ck_assert_str_eq(cached, v7);
		free(cached);
		/* Written while it was verified, the refused document is gone. */
		ck_assert_int_eq(cache_temporaries(), 0);
		free(bad);
	}

	/* The control plane refusing the region's credential is an error too. */
	pthread_mutex_lock(&cp.mu);
	cp.fixed = 401;
	pthread_mutex_unlock(&cp.mu);
	start_dp(&d, url, NULL);
	json_t *s = wait_status(&cp, "DP_REGION_TOKEN", 5000);
	json_decref(s);
	ck_assert_int_eq(ready_version(&d), 7);
	stop_dp(&d);
	fake_cp_stop(&cp);
	free(v7);
}
END_TEST

struct load {
	const struct dp *d;
	atomic_int stop;
	atomic_long ok, bad, last_bad;
};

static void *load_main(void *arg)
{
	struct load *l = arg;
	const char *key = "us_" ID_ACTIVE "_" SEC1; /* key_text() is not for threads */
	while (!atomic_load(&l->stop)) {
		long st = tenant_call(l->d, key, NULL, 0);
		atomic_fetch_add(st == 200 ? &l->ok : &l->bad, 1);
		if (st != 200)
			atomic_store(&l->last_bad, st);
	}
	return NULL;
}

/* Configurations swapped one after another under a steady stream of
 * requests: every request is answered from a whole document (under ASan,
 * a document freed too early would be a reported use after free). */
START_TEST(swaps_under_load)
{
	enum { VERSIONS = 40 };
	struct fake_cp cp;
	struct dp d;
	char url[64], *chain[VERSIONS];
	for (int i = 0; i < VERSIONS; i++)
		chain[i] = doc(i + 1, i % 2);
	fake_cp_start(&cp);
	fake_cp_url(&cp, url, sizeof url);
	write_cache(chain[0]);
	start_dp(&d, url, NULL);
	ck_assert_int_eq(ready_version(&d), 1);

	struct load l = { .d = &d };
	pthread_t th[3];
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, load_main, &l), 0);
	usleep(100000);
	pthread_mutex_lock(&cp.mu);
	cp.chain = chain;
	cp.nchain = VERSIONS;
	pthread_mutex_unlock(&cp.mu);
	wait_version(&d, VERSIONS, 20000);
	atomic_store(&l.stop, 1);
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	ck_assert_msg(atomic_load(&l.bad) == 0, "%ld requests failed, the last with status %ld",
	              atomic_load(&l.bad), atomic_load(&l.last_bad));
	ck_assert_int_gt(atomic_load(&l.ok), 0);
	ck_assert_int_eq(metric(&d, "dp_config_applied_total"), VERSIONS);
	ck_assert_int_eq(metric(&d, "dp_config_pulls_total{outcome=\"updated\"}"), VERSIONS - 1);
	stop_dp(&d);
	pthread_mutex_lock(&cp.mu);
	cp.chain = NULL;
	pthread_mutex_unlock(&cp.mu);
	fake_cp_stop(&cp);
	for (int i = 0; i < VERSIONS; i++)
		free(chain[i]);
}
END_TEST

/* Without a cache and without a control plane there is nothing to serve:
 * /readyz and tenant routes say so, and /healthz stays up. */
START_TEST(no_config_yet)
{
	struct dp d;
	char code[64];
	start_dp(&d, "http://127.0.0.1:1", NULL);
	long st;
	json_t *v = readyz(&d, &st);
	ck_assert_int_eq(st, 503);
	json_t *want = json_pack("{ss sn sn sn sn sn sn sb ss ss}", "region", "us", "cell", "config_version",
	                         "issued_at", "expires_at", "source", "last_pull_ok_at", "stale", 0,
	                         "database", "ok", "reason", "no verified configuration yet");
	ck_assert_msg(json_equal(v, want), "readyz: %s", json_dumps(v, 0));
	json_decref(want);
	json_decref(v);
	ck_assert_int_eq(tenant_call(&d, key_text("us", ID_ACTIVE, SEC1), code, sizeof code), 503);
	ck_assert_str_eq(code, "unavailable");
	/* Another region's key is still told where to go. */
	ck_assert_int_eq(tenant_call(&d, key_text("eu", ID_ACTIVE, SEC1), code, sizeof code), 421);
	struct it_resp r;
	get(&r, &d, "/healthz", NULL);
	ck_assert_int_eq(r.status, 200);
	it_resp_free(&r);
	stop_dp(&d);
}
END_TEST

/* Serving without what serving needs stops at once with status 2 and a
 * message naming the variable. */
START_TEST(serve_config_required)
{
	char bin[1024], out[8192], e_db[600], e_trust[700], e_cache[700], bad_trust[700], e_bad[800];
	it_bin("data-plane", bin, sizeof bin);
	snprintf(e_db, sizeof e_db, "DP_DATABASE_URL=%s", db_url);
	snprintf(e_trust, sizeof e_trust, "DP_TRUST_BUNDLE=%s", trust_path);
	snprintf(e_cache, sizeof e_cache, "DP_CACHE_DIR=%s", cache_dir);
	snprintf(bad_trust, sizeof bad_trust, "%s/bad-trust.json", dir);
	write_text(bad_trust, "{\"keys\": [{\"kty\": \"EC\"}]}");
	snprintf(e_bad, sizeof e_bad, "DP_TRUST_BUNDLE=%s", bad_trust);
	static const char *const base_env[] = { "DP_REGION=us", "DP_CONTROL_PLANE_URL=http://127.0.0.1:1",
		                                    "DP_LISTEN=127.0.0.1:0" };
	struct {
		const char *env[5];
		const char *named;
	} cases[] = {
		{ { e_trust, e_cache, NULL }, "DP_REGION_TOKEN" },
		{ { "DP_REGION_TOKEN=" REGION_TOKEN, e_cache, NULL }, "DP_TRUST_BUNDLE" },
		{ { "DP_REGION_TOKEN=" REGION_TOKEN, e_trust, NULL }, "DP_CACHE_DIR" },
		{ { "DP_REGION_TOKEN=" REGION_TOKEN, e_cache, "DP_TRUST_BUNDLE=/nonexistent/trust.json" }, "DP_TRUST_BUNDLE" },
		{ { "DP_REGION_TOKEN=" REGION_TOKEN, e_cache, e_bad }, "DP_TRUST_BUNDLE" },
		{ { "DP_REGION_TOKEN=" REGION_TOKEN, e_trust, "DP_CACHE_DIR=/proc/nope" }, "DP_CACHE_DIR" },
		{ { "DP_REGION_TOKEN=has space", e_trust, e_cache }, "DP_REGION_TOKEN" },
		{ { "DP_REGION_TOKEN=" REGION_TOKEN, e_trust, "DP_STALE_POLICY=sometimes" }, "DP_STALE_POLICY" },
		{ { "DP_REGION_TOKEN=" REGION_TOKEN, e_trust, "DP_PULL_WAIT=5m" }, "DP_PULL_WAIT" },
		{ { "DP_REGION_TOKEN=" REGION_TOKEN, e_trust, e_cache, "DP_INSTANCE=bad name!" }, "DP_INSTANCE" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *env[12];
		int n = 0;
		env[n++] = e_db;
		for (int j = 0; j < 3; j++)
			env[n++] = base_env[j];
		for (int j = 0; j < 4 && cases[i].env[j]; j++)
			env[n++] = cases[i].env[j];
		env[n] = NULL;
		char *argv[] = { bin, "serve", NULL };
		int st = it_run("data-plane", argv, env, out, sizeof out);
		ck_assert_msg(st == 2, "case %zu: exit %d, want 2: %.400s", i, st, out);
		ck_assert_msg(strstr(out, cases[i].named), "case %zu: message does not name %s: %.400s", i,
		              cases[i].named, out);
		ck_assert_msg(!strstr(out, REGION_TOKEN), "case %zu: the region token was printed", i);
	}
}
END_TEST

/* A cached document that is not valid yet (this clock behind, as before
 * NTP has run) is kept in place and not served, and its version stays the
 * floor: an older document from the control plane is refused. Once the
 * clock reaches its nbf it is served, after a restart or without one. */
START_TEST(clock_behind_cache_kept)
{
	struct fake_cp cp;
	struct dp d;
	char url[64];
	int64_t now = (int64_t)time(NULL);
	/* sign_doc puts nbf 2 h before exp: nbf 10 minutes from now */
	char *ahead = sign_doc(&signer, "us", 7, now + 7200 + 600, 0, 0), *v6 = doc(6, 0);
	write_cache(ahead);
	fake_cp_start(&cp);
	fake_cp_url(&cp, url, sizeof url);
	fake_cp_serve(&cp, v6, 6);
	start_dp(&d, url, NULL);
	ck_assert_int_eq(metric(&d, "dp_config_rejected_total{reason=\"not_yet_valid\"}"), 1);
	wait_metric(&d, "dp_config_rejected_total{reason=\"rollback\"}", 1, 5000);
	long st;
	json_t *v = readyz(&d, &st);
	ck_assert_int_eq(st, 503);
	ck_assert(json_is_null(json_object_get(v, "config_version")));
	json_decref(v);
	ck_assert_int_eq(metric(&d, "dp_config_applied_total"), 0);
	char *cached = read_cache("config.jwt"), *rejected = read_cache("config.jwt.rejected");
	ck_assert_ptr_nonnull(cached);
	ck_assert_str_eq(cached, ahead);
	ck_assert_ptr_null(rejected);
	ck_assert_int_eq(metric(&d, "dp_config_version_floor"), 7);
	stop_dp(&d);
	char *floor = read_cache("version");
	ck_assert_ptr_nonnull(floor);
	ck_assert_str_eq(floor, "7\n");
	free(cached);
	free(floor);

	/* The clock has caught up (here: a skew allowance past the nbf). */
	const char *const skew[] = { "DP_CLOCK_SKEW=1h", NULL };
	start_dp(&d, url, skew);
	ck_assert_int_eq(ready_version(&d), 7);
	stop_dp(&d);

	/* Without a restart: nbf a few seconds ahead, no skew allowed. The
	 * control plane offers only the older version meanwhile. */
	free(ahead);
	now = (int64_t)time(NULL);
	ahead = sign_doc(&signer, "us", 7, now + 7200 + 4, 0, 0);
	write_cache(ahead);
	const char *const noskew[] = { "DP_CLOCK_SKEW=0s", NULL };
	start_dp(&d, url, noskew);
	/* Never served before its nbf, served from the cache once the clock
	 * reaches it: every answer until then is checked against the clock
	 * read before it was asked for. */
	int64_t deadline = (int64_t)time(NULL) + 30;
	for (;;) {
		int64_t asked = (int64_t)time(NULL);
		json_int_t ver = ready_version(&d);
		ck_assert_msg(ver != 7 || (int64_t)time(NULL) >= now + 4,
		              "version 7 served before its nbf (asked at %lld, nbf %lld)", (long long)asked,
		              (long long)(now + 4));
		if (ver == 7)
			break;
		ck_assert_msg(asked < deadline, "the cached document was not served after its nbf");
		usleep(100 * 1000);
	}
	v = readyz(&d, &st);
	ck_assert_str_eq(json_string_value(json_object_get(v, "source")), "cache");
	json_decref(v);
	rejected = read_cache("config.jwt.rejected");
	ck_assert_ptr_null(rejected);
	stop_dp(&d);
	fake_cp_stop(&cp);
	free(ahead);
	free(v6);
}
END_TEST

/* The version floor outlives the cached document: after the cache was set
 * aside (tampered) or deleted, an older signed version is refused as a
 * rollback; the floor's own version, or a newer one, is accepted. */
START_TEST(floor_outlives_cache)
{
	struct fake_cp cp;
	struct dp d;
	char url[64], *v7 = doc(7, 0), *v8 = doc(8, 1), *v9 = doc(9, 1), spliced[65536];
	write_cache(v8);
	start_dp(&d, "http://127.0.0.1:1", NULL);
	ck_assert_int_eq(ready_version(&d), 8);
	stop_dp(&d);

	/* Tampered: v8's header and signature around v9's payload. */
	const char *p8 = strchr(v8, '.'), *s8 = strrchr(v8, '.'), *p9 = strchr(v9, '.'), *s9 = strrchr(v9, '.');
	snprintf(spliced, sizeof spliced, "%.*s%.*s%s", (int)(p8 - v8), v8, (int)(s9 - p9), p9, s8);
	write_cache(spliced);
	fake_cp_start(&cp);
	fake_cp_url(&cp, url, sizeof url);
	fake_cp_serve(&cp, v7, 7);
	start_dp(&d, url, NULL);
	ck_assert_int_eq(metric(&d, "dp_config_rejected_total{reason=\"signature\"}"), 1);
	wait_metric(&d, "dp_config_rejected_total{reason=\"rollback\"}", 1, 5000);
	ck_assert_int_eq(ready_version(&d), 0);
	ck_assert_int_eq(metric(&d, "dp_config_version_floor"), 8);
	stop_dp(&d);
	char *rejected = read_cache("config.jwt.rejected"), *floor = read_cache("version");
	ck_assert_ptr_nonnull(rejected);
	ck_assert_ptr_nonnull(floor);
	ck_assert_str_eq(floor, "8\n");
	free(rejected);
	free(floor);

	/* Deleted (and the set-aside copy too): still refused. */
	char path[700];
	snprintf(path, sizeof path, "%s/config.jwt.rejected", cache_dir);
	ck_assert_int_eq(unlink(path), 0);
	start_dp(&d, url, NULL);
	wait_metric(&d, "dp_config_rejected_total{reason=\"rollback\"}", 1, 5000);
	ck_assert_int_eq(ready_version(&d), 0);
	ck_assert_int_eq(metric(&d, "dp_config_version_floor"), 8);
	/* The floor's own version is no rollback when nothing is in use. */
	fake_cp_serve(&cp, v8, 8);
	wait_version(&d, 8, 10000);
	fake_cp_serve(&cp, v9, 9);
	wait_version(&d, 9, 10000);
	ck_assert_int_eq(metric(&d, "dp_config_version_floor"), 9);
	stop_dp(&d);
	floor = read_cache("version");
	ck_assert_str_eq(floor, "9\n");
	free(floor);
	fake_cp_stop(&cp);
	free(v7);
	free(v8);
	free(v9);
}
END_TEST

Suite *dp_config_suite(void)
{
	Suite *s = suite_create("dp-config");
	TCase *tc = tcase_create("dp-config");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, serves_from_cache_with_control_plane_down);
	tcase_add_test(tc, hung_control_plane);
	tcase_add_test(tc, tampered_cache_ignored);
	tcase_add_test(tc, stale_policy);
	tcase_add_test(tc, pulls_newer_version);
	tcase_add_test(tc, pulled_documents_verified);
	tcase_add_test(tc, swaps_under_load);
	tcase_add_test(tc, no_config_yet);
	tcase_add_test(tc, serve_config_required);
	tcase_add_test(tc, clock_behind_cache_kept);
	tcase_add_test(tc, floor_outlives_cache);
	suite_add_tcase(s, tc);
	return s;
}
