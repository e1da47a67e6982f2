/* Cells from outside (suites cells-dp and cell-router): a data plane serving one cell (DP_CELL) takes only
 * that cell's signed document, reports with the cell's credential, and
 * never serves a request the router meant for another cell, nor from
 * another cell's database (a cached document: no control plane); the router
 * agent (cell-router) keeps a real HAProxy's map of key id -> cell current
 * from the verified routes document, through HAProxy's runtime API, and
 * from its cache when the control plane is down.
 *
 * The control plane is played by a small fake server in this process,
 * serving documents signed here with a key of our own; it also plays the
 * cells' backends behind HAProxy (GET /echo answers the X-Celltrail-Cell
 * header it received). */
#include <arpa/inet.h>
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
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cfgdoc.h"
#include "fixtures.h"
#include "it.h"
#include "jwk.h"
#include "keyset.h"
#include "secret.h"

#define CELL "us-east-1"
#define OTHER_CELL "us-west-2"
#define CELL_TOKEN "cct_us-east-1_it0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
#define REGION_TOKEN "it-region-token-us-routes-0123456789"

#define T_OWN "20000000-0000-4000-8000-000000000001"
#define K_OWN "c00000000000000000000001"      /* a key of this cell's tenant */
#define K_OTHER "c00000000000000000000002"    /* a key of a tenant of us-west-2 */
#define K_UNKNOWN "c0000000000000000000000f"  /* no key at all */
#define K_NEW "c00000000000000000000003"      /* a key the routes get later */
#define SEC "3333333333333333333333333333333333333333333333333333333333333333"

static struct jwk signer, stranger;
static char dir[512], trust_path[600], cache_dir[600], db_url[512];
/* DP_WRONG_CELL_WAIT of the data planes start_dp() starts. */
static const char *dp_wrong_cell_wait = "DP_WRONG_CELL_WAIT=0";
/* The documents sign_cell_doc() signs also hold K_NEW (of T_OWN). */
static int doc_with_new_key;

/* ---- documents ---- */

/* A full document addressed to `aud`, with claim cell {cell_name,
 * cell_region} unless cell_name is NULL: the tenant T_OWN and its key K_OWN. */
static char *sign_cell_doc(const struct jwk *key, const char *aud, const char *cell_name,
                           const char *cell_region, int64_t ver)
{
	int64_t now = (int64_t)time(NULL);
	struct buf b = { 0 };
	unsigned char h[32];
	secret_sha256(SEC, strlen(SEC), h);
	ck_assert_int_eq(cfgdoc_add_tenant(&b, T_OWN, "acme-east", "active", "pro"), 0);
	ck_assert_int_eq(cfgdoc_add_key(&b, K_OWN, h, 1, 1, 0), 0);
	if (doc_with_new_key)
		ck_assert_int_eq(cfgdoc_add_key(&b, K_NEW, h, 1, 1, 0), 0);
	char *tenants = buf_take(&b);
	json_t *c = json_pack("{ss ss sI sI sI ss sI si ss"
	                      " s{ss ss ss ss si}"
	                      " s[[sss][sss]]"
	                      " s{s[iiii]}}",
	                      "iss", "celltrail-control-plane", "aud", aud, "iat", (json_int_t)now, "nbf",
	                      (json_int_t)now, "exp", (json_int_t)(now + 3600), "jti", "it", "ver",
	                      (json_int_t)ver, "fmt", 1, "kind", "full",
	                      "region", "name", "us", "display_name", "US", "endpoint_url",
	                      "https://us.example.test", "status", "active", "wave", 1,
	                      "directory", "us", "https://us.example.test", "active", "eu",
	                      "https://eu.example.test", "active",
	                      "plans", "pro", 1000, 2000, 1000000, 30);
	ck_assert_ptr_nonnull(c);
	if (cell_name)
		ck_assert_int_eq(json_object_set_new(c, "cell", json_pack("{ss ss ss ss}", "name", cell_name, "region",
		                                                          cell_region, "kind", "shared", "status",
		                                                          "active")),
		                 0);
	char *tok = cfgdoc_sign(key, c, tenants);
	ck_assert_ptr_nonnull(tok);
	json_decref(c);
	free(tenants);
	return tok;
}

static char *cell_doc(int64_t ver)
{
	return sign_cell_doc(&signer, CFGDOC_AUD_CELL CELL, CELL, "us", ver);
}

/* A delta of the cell's document from `base` to `ver` whose upsert is
 * T_OWN with K_OWN (and K_NEW with `with_new`): its digest that of the
 * state it leads to, or, with `bad_digest`, of another. */
static char *cell_delta(int64_t base, int64_t ver, int with_new, int bad_digest)
{
	int saved = doc_with_new_key;
	doc_with_new_key = with_new;
	char *full = cell_doc(ver); /* the same claims, read back from a full document */
	doc_with_new_key = saved;
	const char *dot1 = strchr(full, '.'), *dot2 = strchr(dot1 + 1, '.');
	char *payload = malloc((size_t)(dot2 - dot1) + 1);
	long n = secret_unb64url(dot1 + 1, (size_t)(dot2 - dot1 - 1), payload, (size_t)(dot2 - dot1));
	ck_assert_int_gt(n, 0);
	json_t *c = json_loadb(payload, (size_t)n, 0, NULL);
	ck_assert_ptr_nonnull(c);
	char *records = strdup(json_string_value(json_object_get(c, "tenants")));
	json_object_del(c, "tenants");
	struct cfgdoc_sum sum = { 0 };
	unsigned char h[32];
	cfgdoc_record_hash(records, strlen(records), h);
	cfgdoc_sum_add(&sum, h);
	if (bad_digest)
		cfgdoc_sum_add(&sum, h);
	char digest[CFGDOC_DIGEST_LEN + 1];
	ck_assert_int_eq(cfgdoc_state_digest(c, &sum, digest), 0);
	ck_assert_int_eq(cfgdoc_delta_claims(c, base, NULL, digest), 0);
	char *tok = cfgdoc_sign_text(&signer, c, "upsert", records);
	ck_assert_ptr_nonnull(tok);
	json_decref(c);
	free(records);
	free(payload);
	free(full);
	return tok;
}

/* A routes document of `region` signed with `key`: "<key>|<cell>;" text. */
static char *sign_routes(const struct jwk *key, const char *region, int64_t ver, const char *routes)
{
	int64_t now = (int64_t)time(NULL);
	char aud[64];
	snprintf(aud, sizeof aud, CFGDOC_AUD_ROUTES "%s", region);
	json_t *c = json_pack("{ss ss sI sI sI ss sI si ss ss s[[sss][sss]]}", "iss", "celltrail-control-plane",
	                      "aud", aud, "iat", (json_int_t)now, "nbf", (json_int_t)now, "exp",
	                      (json_int_t)(now + 3600), "jti", "it-routes", "ver", (json_int_t)ver, "fmt", 1,
	                      "kind", CFGDOC_KIND_ROUTES, "region", region, "cells", CELL, "active", "shared",
	                      OTHER_CELL, "active", "shared");
	ck_assert_ptr_nonnull(c);
	char *tok = cfgdoc_sign_text(key, c, "routes", routes);
	ck_assert_ptr_nonnull(tok);
	json_decref(c);
	return tok;
}

/* ---- a fake control plane (and cell backend) ---- */

struct fcp {
	struct fake_srv srv;
	pthread_mutex_t mu;
	/* what it serves (under mu); NULL: 503 */
	char *config, *routes;
	long config_ver, routes_ver;
	char *full;       /* if set: the answer to a config GET with full=1 */
	long full_ver;
	int old_build;    /* answer ?since 400, as a control plane without deltas does */
	char *keyset;     /* the signed key set of GET /v1/signing-keys; NULL: 404 */
	long keyset_ver;
	/* what it saw (under mu) */
	char config_path[300], config_auth[300], routes_auth[300], status_auth[300], status_body[2048];
	char usage_auth[300], usage_key[300], usage_body[8192];
	int usage_posts;
};

/* A long-polled document: 200 with it, or 304 after a short hold when
 * If-None-Match names its version. */
static void serve_doc(struct fcp *cp, int fd, char *const *doc, const long *ver, const char *inm)
{
	char etag[40];
	pthread_mutex_lock(&cp->mu);
	snprintf(etag, sizeof etag, "\"%ld\"", *ver);
	char *token = *doc ? strdup(*doc) : NULL;
	pthread_mutex_unlock(&cp->mu);
	if (token && strcmp(inm, etag)) {
		fake_respond(fd, 200, "application/jwt", token);
	} else {
		fake_nothing_newer(&cp->srv, fd, token != NULL);
	}
	free(token);
}

static void fcp_handle(struct fake_srv *s, int fd, const char *req)
{
	struct fcp *cp = s->ctx;
	char method[16], path[300], inm[64], auth[300], key[300], cell[100];
	const char *body = strstr(req, "\r\n\r\n") + 4;
	sscanf(req, "%15s %299s", method, path);
	fake_header(req, "If-None-Match", inm, sizeof inm);
	fake_header(req, "Authorization", auth, sizeof auth);
	fake_header(req, "Idempotency-Key", key, sizeof key);
	fake_header(req, "X-Celltrail-Cell", cell, sizeof cell);
	if (!strcmp(method, "GET") && !strcmp(path, "/echo")) {
		fake_respond(fd, 200, "text/plain", cell[0] ? cell : "-");
	} else if (!strcmp(method, "POST") && !strcmp(path, "/v1/regions/us/status")) {
		pthread_mutex_lock(&cp->mu);
		snprintf(cp->status_auth, sizeof cp->status_auth, "%s", auth);
		snprintf(cp->status_body, sizeof cp->status_body, "%s", body);
		pthread_mutex_unlock(&cp->mu);
		fake_respond(fd, 200, "application/json", "{}");
	} else if (!strcmp(method, "POST") && !strcmp(path, "/v1/usage")) {
		pthread_mutex_lock(&cp->mu);
		cp->usage_posts++;
		snprintf(cp->usage_auth, sizeof cp->usage_auth, "%s", auth);
		snprintf(cp->usage_key, sizeof cp->usage_key, "%s", key);
		snprintf(cp->usage_body, sizeof cp->usage_body, "%s", body);
		pthread_mutex_unlock(&cp->mu);
		fake_respond(fd, 200, "application/json", "{}");
	} else if (!strcmp(method, "GET") && strstr(path, "/v1/cells/" CELL "/config?") == path) {
		pthread_mutex_lock(&cp->mu);
		snprintf(cp->config_auth, sizeof cp->config_auth, "%s", auth);
		snprintf(cp->config_path, sizeof cp->config_path, "%s", path);
		pthread_mutex_unlock(&cp->mu);
		pthread_mutex_lock(&cp->mu);
		int whole = cp->full && strstr(path, "full=1"), refuse = cp->old_build && strstr(path, "since=");
		pthread_mutex_unlock(&cp->mu);
		if (refuse)
			fake_respond(fd, 400, "application/problem+json", "{\"code\":\"validation_failed\"}");
		else if (whole)
			serve_doc(cp, fd, &cp->full, &cp->full_ver, inm);
		else
			serve_doc(cp, fd, &cp->config, &cp->config_ver, inm);
	} else if (!strcmp(method, "GET") && strstr(path, "/v1/regions/us/routes?") == path) {
		pthread_mutex_lock(&cp->mu);
		snprintf(cp->routes_auth, sizeof cp->routes_auth, "%s", auth);
		pthread_mutex_unlock(&cp->mu);
		serve_doc(cp, fd, &cp->routes, &cp->routes_ver, inm);
	} else if (!strcmp(method, "GET") && !strcmp(path, "/v1/signing-keys")) {
		char etag[40];
		pthread_mutex_lock(&cp->mu);
		char *set = cp->keyset ? strdup(cp->keyset) : NULL;
		snprintf(etag, sizeof etag, "\"%ld\"", cp->keyset_ver);
		pthread_mutex_unlock(&cp->mu);
		if (!set)
			fake_respond(fd, 404, "application/problem+json", "{\"code\":\"not_found\"}");
		else if (!strcmp(inm, etag))
			fake_respond(fd, 304, "application/jose+json", "");
		else
			fake_respond(fd, 200, "application/jose+json", set);
		free(set);
	} else {
		fake_respond(fd, 404, "application/problem+json", "{\"code\":\"not_found\"}");
	}
}

static void fcp_start(struct fcp *cp)
{
	memset(cp, 0, sizeof *cp);
	pthread_mutex_init(&cp->mu, NULL);
	fake_srv_start(&cp->srv, fcp_handle, cp);
}

static void fcp_set(struct fcp *cp, char **slot, long *ver_slot, const char *token, long ver)
{
	pthread_mutex_lock(&cp->mu);
	free(*slot);
	*slot = token ? strdup(token) : NULL;
	*ver_slot = ver;
	pthread_mutex_unlock(&cp->mu);
}

static void fcp_stop(struct fcp *cp)
{
	fake_srv_stop(&cp->srv);
	free(cp->config);
	free(cp->routes);
	free(cp->full);
	free(cp->keyset);
	pthread_mutex_destroy(&cp->mu);
}

/* A copy of one of the fake's records, taken under its lock. */
static void fcp_get(struct fcp *cp, const char *field, char *out, size_t len)
{
	pthread_mutex_lock(&cp->mu);
	size_t n = strnlen(field, len - 1);
	memcpy(out, field, n);
	out[n] = '\0';
	pthread_mutex_unlock(&cp->mu);
}

/* ---- fixture ---- */

static void setup(void)
{
	static int seq;
	dp_wrong_cell_wait = "DP_WRONG_CELL_WAIT=0";
	doc_with_new_key = 0;
	snprintf(dir, sizeof dir, "%s/cells-%d-%d", it_env("IT_LOG_DIR"), (int)getpid(), seq++);
	ck_assert_int_eq(mkdir(dir, 0755), 0);
	snprintf(cache_dir, sizeof cache_dir, "%s/cache", dir);
	ck_assert_int_eq(jwk_generate(&signer), 0);
	ck_assert_int_eq(jwk_generate(&stranger), 0);
	snprintf(trust_path, sizeof trust_path, "%s/trust.json", dir);
	write_trust_bundle(&signer, trust_path);
}

static void teardown(void)
{
	jwk_clear(&signer);
	jwk_clear(&stranger);
}

/* A migrated database of region us for the data plane. */
static void dp_db(void)
{
	dp_region_db(it_fmt("it_cells_%d", (int)getpid()), db_url, sizeof db_url);
}

/* ---- the data plane of cell us-east-1 ---- */

struct dp {
	struct it_proc p;
	int port;
};

static void start_dp(struct dp *d, const char *cp_url)
{
	static char e_db[600], e_cp[300], e_trust[700], e_cache[700];
	char bin[1024];
	snprintf(e_db, sizeof e_db, "DP_DATABASE_URL=%s", db_url);
	snprintf(e_cp, sizeof e_cp, "DP_CONTROL_PLANE_URL=%s", cp_url);
	snprintf(e_trust, sizeof e_trust, "DP_TRUST_BUNDLE=%s", trust_path);
	snprintf(e_cache, sizeof e_cache, "DP_CACHE_DIR=%s", cache_dir);
	const char *const env[] = { e_db, e_cp, e_trust, e_cache, "DP_REGION=us", "DP_CELL=" CELL,
		                        "DP_CELL_TOKEN=" CELL_TOKEN, "DP_LISTEN=127.0.0.1:0",
		                        "DP_INSTANCE=it-cell", "DP_ACCESS_LOG=false",
		                        "DP_USAGE_REPORT_INTERVAL=200ms", dp_wrong_cell_wait, NULL };
	it_bin("data-plane", bin, sizeof bin);
	char *argv[] = { bin, NULL };
	it_spawn(&d->p, "data-plane-cell", argv, env);
	d->port = it_wait_port(&d->p, 30000);
}

static void stop_dp(struct dp *d)
{
	ck_assert_int_eq(it_stop(&d->p), 0);
	char *log = it_slurp(d->p.log);
	ck_assert_ptr_nonnull(log);
	ck_assert_msg(!strstr(log, CELL_TOKEN) && !strstr(log, SEC), "a secret appears in %s", d->p.log);
	free(log);
}

static void dp_get(struct it_resp *r, const struct dp *d, const char *path, const char *const h[])
{
	it_http(r, "GET", it_fmt("http://127.0.0.1:%d%s", d->port, path), h, NULL, 0);
}

static json_t *get_json(const struct dp *d, const char *path, long *status)
{
	struct it_resp r;
	json_error_t e;
	dp_get(&r, d, path, NULL);
	*status = r.status;
	json_t *v = json_loads(r.body, 0, &e);
	ck_assert_msg(v, "%s: not JSON: %.300s", path, r.body);
	it_resp_free(&r);
	return v;
}

static void wait_dp_version(const struct dp *d, long ver)
{
	long deadline = it_now_ms() + 10000, st;
	for (;;) {
		json_t *v = get_json(d, "/readyz", &st);
		long got = (long)json_integer_value(json_object_get(v, "config_version"));
		json_decref(v);
		if (got == ver)
			return;
		ck_assert_msg(it_now_ms() < deadline, "config_version %ld, want %ld", got, ver);
		usleep(50000);
	}
}

/* A fresh database, the fake control plane serving the cell's document
 * of version `ver` (its URL in `url`), and the cell's data plane once it
 * applied it. */
static void start_cell_dp(struct fcp *cp, struct dp *d, char url[100], long ver)
{
	dp_db();
	fcp_start(cp);
	snprintf(url, 100, "http://127.0.0.1:%d", cp->srv.port);
	char *doc = cell_doc(ver);
	fcp_set(cp, &cp->config, &cp->config_ver, doc, ver);
	free(doc);
	start_dp(d, url);
	wait_dp_version(d, ver);
}

/* The value of the series `series` in a /metrics page at `url`. */
static long long metric_at(const char *url, const char *series)
{
	struct it_resp r;
	char want[256];
	it_http(&r, "GET", url, NULL, NULL, 0);
	ck_assert_int_eq(r.status, 200);
	snprintf(want, sizeof want, "\n%s ", series);
	const char *at = strstr(r.body, want);
	ck_assert_msg(at, "no metric %s at %s", series, url);
	long long v = atoll(at + strlen(want));
	it_resp_free(&r);
	return v;
}

static long long dp_metric(const struct dp *d, const char *series)
{
	return metric_at(it_fmt("http://127.0.0.1:%d/metrics", d->port), series);
}

/* What a request with `key` (NULL: none) and X-Celltrail-Cell `cell`
 * (NULL: none) gets: the status, the problem code in `code`. */
static long tenant_call(const struct dp *d, const char *key, const char *cell, char *code, size_t len,
                        char *retry, size_t rlen)
{
	struct it_resp r;
	char auth[300], hc[200];
	const char *h[3];
	int n = 0;
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
	snprintf(hc, sizeof hc, "X-Celltrail-Cell: %s", cell ? cell : "");
	h[n++] = auth;
	if (cell)
		h[n++] = hc;
	h[n] = NULL;
	dp_get(&r, d, "/v1/tenant", h);
	json_t *v = json_loads(r.body, 0, NULL);
	const char *c = json_string_value(json_object_get(v, "code"));
	snprintf(code, len, "%s", c ? c : "");
	json_decref(v);
	if (it_header(&r, "Retry-After", retry, rlen) != 0)
		retry[0] = '\0';
	long st = r.status;
	it_resp_free(&r);
	return st;
}

/* ---- cells-dp ---- */

/* The wrong-cell guard against a reference table: every combination of
 * the router's header (absent, this cell, another cell) and the key (of
 * this cell's document, of another cell, unknown, of another region). A
 * request the router meant for another cell, or for this cell with a key
 * its document does not hold, is 503 wrong_cell with Retry-After: 1,
 * counted and logged; without the header the answers are those of a
 * region without cells; a key of another region is 421 whatever the
 * header says. The cell's document is pulled with the cell's credential
 * from the cell's route, and /readyz, /metrics and the fleet status name
 * the cell. */
START_TEST(wrong_cell_guard)
{
	struct fcp cp;
	struct dp d;
	char url[100], got[300];
	start_cell_dp(&cp, &d, url, 5);
	fcp_get(&cp, cp.config_auth, got, sizeof got);
	ck_assert_str_eq(got, "Bearer " CELL_TOKEN);
	fcp_get(&cp, cp.config_path, got, sizeof got);
	ck_assert_msg(strstr(got, "/v1/cells/" CELL "/config?wait=") == got, "pulled %s", got);

	enum { H_NONE, H_OWN, H_OTHER, H__N };
	enum { K_IS_OWN, K_IS_OTHER, K_IS_UNKNOWN, K_IS_EU, K__N };
	static const char *const hdr[H__N] = { NULL, CELL, OTHER_CELL };
	static const char *const keys[K__N] = { "us_" K_OWN "_" SEC, "us_" K_OTHER "_" SEC,
		                                    "us_" K_UNKNOWN "_" SEC, "eu_" K_UNKNOWN "_" SEC };
	long long refused = 0;
	for (int h = 0; h < H__N; h++)
		for (int k = 0; k < K__N; k++) {
			/* The reference: region first, then the router's cell, then the key. */
			long want;
			const char *want_code;
			if (k == K_IS_EU)
				want = 421, want_code = "wrong_region";
			else if (h == H_OTHER)
				want = 503, want_code = "wrong_cell";
			else if (k == K_IS_OWN)
				want = 200, want_code = "";
			else if (h == H_OWN)
				want = 503, want_code = "wrong_cell";
			else
				want = 401, want_code = "unauthorized";
			char code[64], retry[32];
			long st = tenant_call(&d, keys[k], hdr[h], code, sizeof code, retry, sizeof retry);
			ck_assert_msg(st == want && !strcmp(code, want_code),
			              "header %s, key %d: %ld %s, want %ld %s", hdr[h] ? hdr[h] : "(none)", k, st, code,
			              want, want_code);
			if (want == 503) {
				ck_assert_str_eq(retry, "1");
				refused++;
			}
		}
	ck_assert_int_eq(dp_metric(&d, "dp_wrong_cell_requests_total"), refused);
	/* DP_WRONG_CELL_WAIT=0: answered at once, none waited. */
	ck_assert_int_eq(dp_metric(&d, "dp_wrong_cell_waits_total{outcome=\"served\"}"), 0);
	ck_assert_int_eq(dp_metric(&d, "dp_wrong_cell_waits_total{outcome=\"refused\"}"), 0);
	ck_assert_int_eq(dp_metric(&d, "dp_info{region=\"us\",cell=\"" CELL "\"}"), 1);
	long st;
	json_t *v = get_json(&d, "/readyz", &st);
	ck_assert_int_eq(st, 200);
	ck_assert_str_eq(it_js(v, "cell"), CELL);
	ck_assert_str_eq(it_js(v, "region"), "us");
	json_decref(v);
	/* Fleet status: with the cell's credential, naming the cell. */
	long deadline = it_now_ms() + 10000;
	for (;;) {
		fcp_get(&cp, cp.status_body, got, sizeof got);
		if (strstr(got, "\"cell\""))
			break;
		ck_assert_msg(it_now_ms() < deadline, "no status naming the cell: %s", got);
		usleep(50000);
	}
	v = json_loads(got, 0, NULL);
	ck_assert_str_eq(it_js(v, "cell"), CELL);
	json_decref(v);
	fcp_get(&cp, cp.status_auth, got, sizeof got);
	ck_assert_str_eq(got, "Bearer " CELL_TOKEN);
	stop_dp(&d);
	/* Each refusal is logged with the key id and both cells. */
	char *log = it_slurp(d.p.log);
	ck_assert_msg(strstr(log, "\"key_id\":\"" K_OTHER "\"") && strstr(log, "\"routed_cell\":\"" OTHER_CELL "\""),
	              "no wrong_cell log line in %s", d.p.log);
	free(log);
	fcp_stop(&cp);
}
END_TEST

struct routed_read {
	const struct dp *d;
	const char *key;
	long status;
	char code[64], retry[32];
	long ms;
};

static void *routed_read_main(void *arg)
{
	struct routed_read *r = arg;
	long t0 = it_now_ms();
	r->status = tenant_call(r->d, r->key, CELL, r->code, sizeof r->code, r->retry, sizeof r->retry);
	r->ms = it_now_ms() - t0;
	return NULL;
}

/* Waits until `n` requests are parked for a newer document. */
static void wait_waiters(const struct dp *d, long long n)
{
	long deadline = it_now_ms() + 20000;
	while (dp_metric(d, "dp_wrong_cell_waiters") != n) {
		ck_assert_msg(it_now_ms() < deadline, "%lld requests never parked", n);
		usleep(20000);
	}
}

/* The router's map may be ahead of the cell's document (a tenant just
 * moved here): a read routed here for a key the document does not hold
 * waits for a newer one and is served by it, not refused; one for a key
 * no document brings is 503 wrong_cell once DP_WRONG_CELL_WAIT has passed
 * (DP_WRONG_CELL_WAIT=0, wrong_cell_guard: at once). Each wait is counted
 * by outcome. */
START_TEST(wrong_cell_waits_for_document)
{
	struct fcp cp;
	struct dp d;
	char url[100];
	pthread_t th;

	/* Long enough that only the newer document ends the wait. */
	dp_wrong_cell_wait = "DP_WRONG_CELL_WAIT=60s";
	start_cell_dp(&cp, &d, url, 5);
	struct routed_read r = { .d = &d, .key = "us_" K_NEW "_" SEC };
	ck_assert_int_eq(pthread_create(&th, NULL, routed_read_main, &r), 0);
	wait_waiters(&d, 1);
	doc_with_new_key = 1;
	char *doc = cell_doc(6);
	fcp_set(&cp, &cp.config, &cp.config_ver, doc, 6);
	free(doc);
	pthread_join(th, NULL);
	ck_assert_msg(r.status == 200, "a key the next document holds: %ld %s", r.status, r.code);
	ck_assert_int_eq(dp_metric(&d, "dp_wrong_cell_waits_total{outcome=\"served\"}"), 1);
	ck_assert_int_eq(dp_metric(&d, "dp_wrong_cell_waiters"), 0);
	ck_assert_int_eq(dp_metric(&d, "dp_wrong_cell_requests_total"), 0);
	stop_dp(&d);

	/* A key no document brings: refused once the wait has passed. */
	dp_wrong_cell_wait = "DP_WRONG_CELL_WAIT=1s";
	start_dp(&d, url);
	wait_dp_version(&d, 6);
	r = (struct routed_read){ .d = &d, .key = "us_" K_UNKNOWN "_" SEC };
	routed_read_main(&r);
	ck_assert_msg(r.status == 503 && !strcmp(r.code, "wrong_cell"), "unknown key: %ld %s", r.status, r.code);
	ck_assert_str_eq(r.retry, "1");
	ck_assert_msg(r.ms >= 1000, "answered after %ld ms, before DP_WRONG_CELL_WAIT", r.ms);
	ck_assert_int_eq(dp_metric(&d, "dp_wrong_cell_waits_total{outcome=\"refused\"}"), 1);
	ck_assert_int_eq(dp_metric(&d, "dp_wrong_cell_waits_total{outcome=\"served\"}"), 0);
	ck_assert_int_eq(dp_metric(&d, "dp_wrong_cell_requests_total"), 1);
	/* A write is not held: a client retries it after Retry-After. */
	struct it_resp w;
	const char *h[] = { "Authorization: Bearer us_" K_UNKNOWN "_" SEC, "X-Celltrail-Cell: " CELL,
		                "Content-Type: application/json", NULL };
	it_http(&w, "POST", it_fmt("http://127.0.0.1:%d/v1/events", d.port), h, "{}", 2);
	ck_assert_int_eq(w.status, 503);
	it_resp_free(&w);
	ck_assert_int_eq(dp_metric(&d, "dp_wrong_cell_waits_total{outcome=\"refused\"}"), 1);
	ck_assert_int_eq(dp_metric(&d, "dp_wrong_cell_requests_total"), 2);
	stop_dp(&d);
	fcp_stop(&cp);
}
END_TEST

/* A document for anything but this cell of this region is refused and
 * counted, and the document in use is kept: the regional document, another
 * cell's, one whose cell claim names another cell or another region, or
 * none at all. A regional document cached by a run without DP_CELL is not
 * served at start: it is set aside. */
START_TEST(foreign_documents_refused)
{
	struct fcp cp;
	struct dp d;
	char url[100], path[700];
	dp_db();
	ck_assert_int_eq(mkdir(cache_dir, 0700), 0);
	/* Left by a run of the whole region (no cell claim, aud "us"). */
	char *regional = sign_cell_doc(&signer, "us", NULL, NULL, 9);
	snprintf(path, sizeof path, "%s/config.jwt", cache_dir);
	write_text(path, regional);
	fcp_start(&cp);
	snprintf(url, sizeof url, "http://127.0.0.1:%d", cp.srv.port);
	start_dp(&d, url);
	long st;
	json_t *v = get_json(&d, "/readyz", &st);
	ck_assert_int_eq(st, 503);
	json_decref(v);
	ck_assert_int_eq(dp_metric(&d, "dp_config_rejected_total{reason=\"audience\"}"), 1);
	snprintf(path, sizeof path, "%s/config.jwt.rejected", cache_dir);
	ck_assert_msg(access(path, F_OK) == 0, "the regional cache was not set aside");

	char *good = cell_doc(10);
	fcp_set(&cp, &cp.config, &cp.config_ver, good, 10);
	wait_dp_version(&d, 10);
	static const struct { const char *aud, *name, *region, *reason; } bad[] = {
		{ "us", NULL, NULL, "audience" },                                  /* the regional document */
		{ CFGDOC_AUD_CELL OTHER_CELL, OTHER_CELL, "us", "audience" },      /* another cell's */
		{ CFGDOC_AUD_CELL CELL, OTHER_CELL, "us", "audience" },            /* claim: another cell */
		{ CFGDOC_AUD_CELL CELL, CELL, "eu", "audience" },                  /* claim: another region */
		{ CFGDOC_AUD_CELL CELL, NULL, NULL, "content" },                   /* no claim */
	};
	long long before_aud = dp_metric(&d, "dp_config_rejected_total{reason=\"audience\"}");
	long long before_content = dp_metric(&d, "dp_config_rejected_total{reason=\"content\"}");
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char *t = sign_cell_doc(&signer, bad[i].aud, bad[i].name, bad[i].region, 11 + (long)i);
		fcp_set(&cp, &cp.config, &cp.config_ver, t, 11 + (long)i);
		free(t);
		char series[100];
		snprintf(series, sizeof series, "dp_config_rejected_total{reason=\"%s\"}", bad[i].reason);
		long long want = 1 + (!strcmp(bad[i].reason, "audience") ? before_aud++ : before_content++);
		long deadline = it_now_ms() + 10000;
		while (dp_metric(&d, series) < want) {
			ck_assert_msg(it_now_ms() < deadline, "case %zu: %s stays below %lld", i, series, want);
			usleep(50000);
		}
		v = get_json(&d, "/readyz", &st);
		ck_assert_msg(json_integer_value(json_object_get(v, "config_version")) == 10,
		              "case %zu: the document in use changed", i);
		json_decref(v);
	}
	stop_dp(&d);
	fcp_stop(&cp);
	free(regional);
	free(good);
}
END_TEST

/* Usage of a cell is reported with the cell's credential, in batches named
 * after the cell (each cell's database numbers its batches from 1). */
START_TEST(usage_with_cell_token)
{
	struct fcp cp;
	struct dp d;
	char url[100], got[8192];
	start_cell_dp(&cp, &d, url, 3);
	struct it_resp r;
	const char *const h[] = { "Authorization: Bearer us_" K_OWN "_" SEC, "Content-Type: application/json",
		                      "X-Celltrail-Cell: " CELL, NULL };
	const char *ev = "{\"id\":\"cell-ev-1\",\"action\":\"user.login\",\"actor\":{\"id\":\"u-1\",\"type\":\"user\"}}";
	it_http(&r, "POST", it_fmt("http://127.0.0.1:%d/v1/events", d.port), h, ev, strlen(ev));
	ck_assert_msg(r.status == 201, "POST /v1/events: %ld %.300s", r.status, r.body);
	it_resp_free(&r);
	long deadline = it_now_ms() + 15000;
	for (;;) {
		pthread_mutex_lock(&cp.mu);
		int posts = cp.usage_posts;
		pthread_mutex_unlock(&cp.mu);
		if (posts)
			break;
		ck_assert_msg(it_now_ms() < deadline, "no usage report");
		usleep(50000);
	}
	fcp_get(&cp, cp.usage_auth, got, sizeof got);
	ck_assert_str_eq(got, "Bearer " CELL_TOKEN);
	fcp_get(&cp, cp.usage_key, got, sizeof got);
	ck_assert_msg(strstr(got, "usage-" CELL "-") == got, "batch key %s", got);
	fcp_get(&cp, cp.usage_body, got, sizeof got);
	ck_assert_msg(strstr(got, T_OWN), "usage body names no tenant: %s", got);
	stop_dp(&d);
	fcp_stop(&cp);
}
END_TEST

/* DP_CELL needs DP_CELL_TOKEN (DP_REGION_TOKEN does not stand in for it)
 * and a valid cell name: the service stops with status 2 naming it. */
START_TEST(cell_settings_checked)
{
	static const struct { const char *env[3]; const char *named; } cases[] = {
		{ { "DP_CELL=" CELL, "DP_REGION_TOKEN=" REGION_TOKEN }, "DP_CELL_TOKEN" },
		{ { "DP_CELL=" CELL, "DP_CELL_TOKEN=" }, "DP_CELL_TOKEN" },
		{ { "DP_CELL=US_East", "DP_CELL_TOKEN=" CELL_TOKEN }, "DP_CELL" },
		{ { "DP_CELL=u", "DP_CELL_TOKEN=" CELL_TOKEN }, "DP_CELL" },
	};
	char bin[1024], out[4096], e_trust[700], e_cache[700];
	it_bin("data-plane", bin, sizeof bin);
	snprintf(e_trust, sizeof e_trust, "DP_TRUST_BUNDLE=%s", trust_path);
	snprintf(e_cache, sizeof e_cache, "DP_CACHE_DIR=%s", cache_dir);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *const env[] = { "DP_REGION=us", "DP_DATABASE_URL=postgresql://x@127.0.0.1:1/x",
			                        "DP_CONTROL_PLANE_URL=http://127.0.0.1:1", e_trust, e_cache,
			                        cases[i].env[0], cases[i].env[1], NULL };
		char *argv[] = { bin, "serve", NULL };
		int st = it_run("data-plane", argv, env, out, sizeof out);
		ck_assert_msg(st == 2 && strstr(out, cases[i].named), "case %zu: exit %d: %.300s", i, st, out);
		ck_assert_msg(!strstr(out, CELL_TOKEN), "case %zu: the token is printed", i);
	}
}
END_TEST

/* ---- the cell's database ---- */

/* A database "it_cellid_<pid>_<what>" migrated by a data plane of region
 * us without DP_CELL: claimed by region us, by no cell. */
static void fresh_region_db(const char *what, char *url, size_t len)
{
	dp_region_db(it_fmt("it_cellid_%d_%s", (int)getpid(), what), url, len);
}

/* The region and cell recorded in `db` ("-" for a NULL cell). */
static void recorded(const char *db, char region[64], char cell[64])
{
	char *v = it_sql(db, "SELECT region || ' ' || coalesce(cell, '-') FROM region_identity");
	ck_assert_ptr_nonnull(v);
	ck_assert_int_eq(sscanf(v, "%63s %63s", region, cell), 2);
	free(v);
}

/* Closes every session of `db` but ours: the data plane's next ones are
 * new, and checked. */
static void cut_sessions(const char *db)
{
	free(it_sql(db, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
	                "WHERE datname = current_database() AND pid <> pg_backend_pid()"));
}

/* A data plane of region us (of cell `cell`, or of the whole region when
 * NULL) on `db`, serving the document cached in `cache` with the control
 * plane unreachable; it checks new sessions often (the rate exchange opens
 * one every 50 ms while they are refused). */
static void start_db_dp(struct dp *d, const char *db, const char *cache, const char *cell)
{
	char bin[1024], e_db[600], e_trust[700], e_cache[700];
	snprintf(e_db, sizeof e_db, "DP_DATABASE_URL=%s", db);
	snprintf(e_trust, sizeof e_trust, "DP_TRUST_BUNDLE=%s", trust_path);
	snprintf(e_cache, sizeof e_cache, "DP_CACHE_DIR=%s", cache);
	const char *const env[] = { e_db, e_trust, e_cache, "DP_REGION=us", "DP_CONTROL_PLANE_URL=http://127.0.0.1:1",
		                        "DP_LISTEN=127.0.0.1:0", "DP_ACCESS_LOG=false", "DP_RATE_SYNC_INTERVAL=50ms",
		                        cell ? "DP_CELL=" CELL : "DP_REGION_TOKEN=" REGION_TOKEN,
		                        cell ? "DP_CELL_TOKEN=" CELL_TOKEN : NULL, NULL };
	it_bin("data-plane", bin, sizeof bin);
	char *argv[] = { bin, NULL };
	it_spawn(&d->p, cell ? "data-plane-cell" : "data-plane-region", argv, env);
	d->port = it_wait_port(&d->p, 30000);
}

/* /readyz's "database" once it is no longer `from`; its body into *out. */
static const char *wait_db_state_not(const struct dp *d, const char *from, json_t **out, long *status)
{
	long deadline = it_now_ms() + 20000;
	for (;;) {
		json_t *v = get_json(d, "/readyz", status);
		if (strcmp(it_js(v, "database"), from)) {
			*out = v;
			return it_js(v, "database");
		}
		json_decref(v);
		ck_assert_msg(it_now_ms() < deadline, "/readyz: database stays '%s' (log %s)", from, d->p.log);
		usleep(20000);
	}
}

static long list_events_at(const struct dp *d)
{
	struct it_resp r;
	const char *const h[] = { "Authorization: Bearer us_" K_OWN "_" SEC, NULL };
	dp_get(&r, d, "/v1/events", h);
	long st = r.status;
	it_resp_free(&r);
	return st;
}

static int occurrences(const char *path, const char *needle)
{
	char *log = it_slurp(path);
	ck_assert_ptr_nonnull(log);
	int n = 0;
	for (const char *at = log; (at = strstr(at, needle)) != NULL; at += strlen(needle))
		n++;
	free(log);
	return n;
}

/* A data plane never serves one cell from another cell's database, nor a
 * region from another region's. Every combination of DP_CELL (unset, this
 * cell), the cell the database records (none, this cell, another) and its
 * region (this one, another), against a reference table: whether it
 * serves or refuses and why, and the cell recorded afterwards; through
 * `data-plane migrate`, and through the check of a new session of a
 * running data plane (events 200 or 503, /readyz 200, or 503 with the
 * reason, the refusal counted by reason and logged once). A data plane
 * with DP_CELL claims a database no cell claimed, of its region only; one
 * without serves its region's database whichever cell claimed it (a
 * rollback to the build before cells). At start, another cell's database
 * stops a cell's data plane (status 2), and one migrated before the cell
 * column existed asks for `data-plane migrate`. */
START_TEST(db_cell_identity)
{
	static const struct {
		const char *dp_cell;    /* DP_CELL; NULL: unset */
		const char *db_cell;    /* the cell the database records; NULL: none */
		const char *db_region;  /* the region it records; the data planes serve "us" */
		const char *want;       /* "ok": served; else the refusal (/readyz "database", the metric's reason) */
		const char *cell_after; /* the cell recorded afterwards ("-": none) */
	} cases[] = {
		{ NULL, NULL, "us", "ok", "-" },
		{ NULL, CELL, "us", "ok", CELL },
		{ NULL, OTHER_CELL, "us", "ok", OTHER_CELL },
		{ NULL, NULL, "eu", "wrong_region", "-" },
		{ NULL, CELL, "eu", "wrong_region", CELL },
		{ NULL, OTHER_CELL, "eu", "wrong_region", OTHER_CELL },
		{ CELL, NULL, "us", "ok", CELL },
		{ CELL, CELL, "us", "ok", CELL },
		{ CELL, OTHER_CELL, "us", "wrong_cell", OTHER_CELL },
		{ CELL, NULL, "eu", "wrong_region", "-" },
		{ CELL, CELL, "eu", "wrong_region", CELL },
		{ CELL, OTHER_CELL, "eu", "wrong_region", OTHER_CELL },
	};
	char db_region[512], db_cell[512], db_mig[512], cache_r[700], cache_c[700], path[800];
	char bin[1024], out[4096], e_db[600], reg[64], cell[64];
	fresh_region_db("region", db_region, sizeof db_region);
	fresh_region_db("cell", db_cell, sizeof db_cell);
	fresh_region_db("migrate", db_mig, sizeof db_mig);
	it_bin("data-plane", bin, sizeof bin);

	/* The documents each data plane serves, from its cache. */
	snprintf(cache_r, sizeof cache_r, "%s/cache-region", dir);
	snprintf(cache_c, sizeof cache_c, "%s/cache-cell", dir);
	ck_assert_int_eq(mkdir(cache_r, 0700), 0);
	ck_assert_int_eq(mkdir(cache_c, 0700), 0);
	char *regional = sign_cell_doc(&signer, "us", NULL, NULL, 4), *celldoc = cell_doc(4);
	snprintf(path, sizeof path, "%s/config.jwt", cache_r);
	write_text(path, regional);
	snprintf(path, sizeof path, "%s/config.jwt", cache_c);
	write_text(path, celldoc);
	free(regional);
	free(celldoc);
	struct dp dps[2];
	const char *dbs[2] = { db_region, db_cell };
	start_db_dp(&dps[0], db_region, cache_r, NULL);
	start_db_dp(&dps[1], db_cell, cache_c, CELL);
	for (int i = 0; i < 2; i++)
		wait_dp_version(&dps[i], 4);
	const char *last[2] = { "ok", "ok" }; /* what each found last */

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *ins = it_fmt("INSERT INTO region_identity (region, cell) VALUES ('%s', %s)", cases[i].db_region,
		                         cases[i].db_cell ? it_fmt("'%s'", cases[i].db_cell) : "NULL");
		int ok = !strcmp(cases[i].want, "ok");

		/* migrate */
		free(it_sql(db_mig, "DELETE FROM region_identity"));
		free(it_sql(db_mig, ins));
		snprintf(e_db, sizeof e_db, "DP_DATABASE_URL=%s", db_mig);
		const char *const env[] = { e_db, "DP_REGION=us", "DP_CONTROL_PLANE_URL=http://127.0.0.1:1",
			                        cases[i].dp_cell ? "DP_CELL=" CELL : NULL, NULL };
		char *argv[] = { bin, "migrate", NULL };
		int st = it_run("data-plane", argv, env, out, sizeof out);
		const char *said = ok ? (cases[i].dp_cell ? "belongs to region us, cell " CELL "\n" : "belongs to region us\n")
		                   : !strcmp(cases[i].want, "wrong_cell") ? "belongs to cell '" OTHER_CELL "', not '" CELL "'"
		                                                          : "belongs to region 'eu', not 'us'";
		ck_assert_msg(st == (ok ? 0 : 1) && strstr(out, said), "case %zu, migrate: exit %d: %.400s", i, st, out);
		recorded(db_mig, reg, cell);
		ck_assert_msg(!strcmp(reg, cases[i].db_region) && !strcmp(cell, cases[i].cell_after),
		              "case %zu, migrate: recorded %s %s, want %s %s", i, reg, cell, cases[i].db_region,
		              cases[i].cell_after);

		/* The check of a new session: first none claimed (refused as
		 * such), then the case's identity, which the next check finds. */
		int k = cases[i].dp_cell != NULL;
		const struct dp *d = &dps[k];
		long status;
		json_t *v;
		free(it_sql(dbs[k], "DELETE FROM region_identity"));
		cut_sessions(dbs[k]);
		wait_db_state_not(d, last[k], &v, &status);
		ck_assert_msg(!strcmp(it_js(v, "database"), "unclaimed") && status == 503,
		              "case %zu: /readyz %ld, database '%s'", i, status, it_js(v, "database"));
		ck_assert_str_eq(it_js(v, "reason"), k ? "the database is not claimed for cell '" CELL "' of region 'us'"
		                                       : "the regional database is not claimed for region 'us'");
		json_decref(v);
		long long before = ok ? 0
		                      : dp_metric(d, it_fmt("dp_db_region_check_failures_total{reason=\"%s\"}", cases[i].want));
		free(it_sql(dbs[k], ins));
		const char *got = wait_db_state_not(d, "unclaimed", &v, &status);
		ck_assert_msg(!strcmp(got, cases[i].want), "case %zu: /readyz database '%s', want '%s'", i, got,
		              cases[i].want);
		const char *reason = ok ? NULL
		                     : !strcmp(cases[i].want, "wrong_cell")
		                         ? "the database belongs to cell '" OTHER_CELL "', not '" CELL "'"
		                         : "the regional database belongs to region 'eu', not 'us'";
		ck_assert_msg(status == (ok ? 200 : 503), "case %zu: /readyz %ld", i, status);
		ck_assert_msg(reason ? !strcmp(it_js(v, "reason"), reason) : json_is_null(json_object_get(v, "reason")),
		              "case %zu: reason '%s'", i, it_js(v, "reason"));
		json_decref(v);
		ck_assert_msg(list_events_at(d) == (ok ? 200 : 503), "case %zu: GET /v1/events", i);
		if (!ok)
			ck_assert_int_gt(dp_metric(d, it_fmt("dp_db_region_check_failures_total{reason=\"%s\"}", cases[i].want)),
			                 before);
		recorded(dbs[k], reg, cell);
		last[k] = cases[i].want;
		ck_assert_msg(!strcmp(reg, cases[i].db_region) && !strcmp(cell, cases[i].cell_after),
		              "case %zu, session: recorded %s %s, want %s %s", i, reg, cell, cases[i].db_region,
		              cases[i].cell_after);
	}
	for (int i = 0; i < 2; i++)
		stop_dp(&dps[i]);
	/* Logged when it changes, not per refusal: the cell's data plane met
	 * another cell's database once (case 8), and refused it many times. */
	ck_assert_int_eq(occurrences(dps[1].p.log, "reaches the database of cell '" OTHER_CELL "', not '" CELL "'"), 1);
	ck_assert_int_eq(occurrences(dps[0].p.log, "reaches the database of cell"), 0);

	/* At start: another cell's database stops the cell's data plane. */
	free(it_sql(db_mig, "UPDATE region_identity SET region = 'us', cell = '" OTHER_CELL "'"));
	char e_trust[800], e_cache[800];
	snprintf(e_db, sizeof e_db, "DP_DATABASE_URL=%s", db_mig);
	snprintf(e_trust, sizeof e_trust, "DP_TRUST_BUNDLE=%s", trust_path);
	snprintf(e_cache, sizeof e_cache, "DP_CACHE_DIR=%s", cache_c);
	const char *const serve_env[] = { e_db, e_trust, e_cache, "DP_REGION=us", "DP_CONTROL_PLANE_URL=http://127.0.0.1:1",
		                              "DP_LISTEN=127.0.0.1:0", "DP_CELL=" CELL, "DP_CELL_TOKEN=" CELL_TOKEN, NULL };
	char *serve_argv[] = { bin, "serve", NULL };
	int st = it_run("data-plane", serve_argv, serve_env, out, sizeof out);
	ck_assert_msg(st == 2 && strstr(out, "belongs to cell '" OTHER_CELL "', not '" CELL "'"), "exit %d: %.400s", st,
	              out);
	/* A database of the build before cells (no cell column): not this
	 * cell's until migrated. */
	free(it_sql(db_mig, "ALTER TABLE region_identity DROP COLUMN cell"));
	st = it_run("data-plane", serve_argv, serve_env, out, sizeof out);
	ck_assert_msg(st == 1 && strstr(out, "run 'data-plane migrate'"), "exit %d: %.400s", st, out);
}
END_TEST

/* ---- cell-router against a real HAProxy ---- */

struct hap {
	struct it_proc p;
	int port;
	char sock[600], map[600], cfg[600];
};

/* One runtime API command; the answer (malloc'd). */
static char *hap_cmd(const struct hap *h, const char *cmd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	ck_assert_uint_lt(strlen(h->sock), sizeof sa.sun_path);
	memcpy(sa.sun_path, h->sock, strlen(h->sock) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		close(fd);
		return NULL;
	}
	ck_assert_int_eq(it_raw_send(fd, cmd, strlen(cmd)), 0);
	struct buf b = { 0 };
	char chunk[4096];
	for (ssize_t n; (n = recv(fd, chunk, sizeof chunk, 0)) > 0;)
		buf_append(&b, chunk, (size_t)n);
	close(fd);
	buf_append(&b, "", 1);
	return buf_take(&b);
}

/* "show map": the map HAProxy matches against now, as "<key> <cell>\n"
 * lines in its order (each of its lines is "<ptr> <key> <value>"). */
static char *hap_map(const struct hap *h)
{
	char *ans = hap_cmd(h, it_fmt("show map %s\n", h->map));
	ck_assert_ptr_nonnull(ans);
	struct buf b = { 0 };
	for (char *save = NULL, *l = strtok_r(ans, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char ptr[64], key[64], val[80];
		if (sscanf(l, "%63s %63s %79s", ptr, key, val) == 3)
			buf_printf(&b, "%s %s\n", key, val);
	}
	free(ans);
	buf_append(&b, "", 1);
	return buf_take(&b);
}

static void wait_hap_map(const struct hap *h, const char *want)
{
	long deadline = it_now_ms() + 15000;
	for (;;) {
		char *got = hap_map(h);
		int same = !strcmp(got, want);
		if (!same && it_now_ms() >= deadline)
			ck_abort_msg("HAProxy's map:\n%s\nwant:\n%s", got, want);
		free(got);
		if (same)
			return;
		usleep(50000);
	}
}

/* HAProxy routing on the map as the local stack writes it: the header
 * deleted, the key id looked up, the cell named to the backend. */
static void hap_start(struct hap *h, int backend_port)
{
	int lfd = listen_loopback(&h->port);
	close(lfd); /* its port, for HAProxy to bind */
	snprintf(h->cfg, sizeof h->cfg, "%s/haproxy.cfg", dir);
	write_text(h->cfg, it_fmt("global\n"
	                          "  stats socket %s level admin\n"
	                          "defaults\n"
	                          "  mode http\n"
	                          "  timeout connect 2s\n"
	                          "  timeout client 10s\n"
	                          "  timeout server 10s\n"
	                          "frontend us\n"
	                          "  bind 127.0.0.1:%d\n"
	                          "  http-request del-header X-Celltrail-Cell\n"
	                          "  http-request set-var(txn.cell) req.hdr(authorization),word(2,_),map(%s)\n"
	                          "  http-request set-header X-Celltrail-Cell %%[var(txn.cell)] if { var(txn.cell) -m found }\n"
	                          "  use_backend cell_%%[var(txn.cell)] if { var(txn.cell) -m found }\n"
	                          "  default_backend cell_" CELL "\n"
	                          "backend cell_" CELL "\n"
	                          "  server a 127.0.0.1:%d\n"
	                          "backend cell_" OTHER_CELL "\n"
	                          "  server a 127.0.0.1:%d\n",
	                          h->sock, h->port, h->map, backend_port, backend_port));
	char *argv[] = { "haproxy", "-db", "-f", h->cfg, NULL };
	it_spawn(&h->p, "haproxy", argv, NULL);
	long deadline = it_now_ms() + 10000;
	char *a;
	while (!(a = hap_cmd(h, "show info\n"))) {
		ck_assert_msg(it_now_ms() < deadline && it_alive(&h->p), "HAProxy did not start (log %s)", h->p.log);
		usleep(50000);
	}
	free(a);
}

/* What HAProxy's backend saw as X-Celltrail-Cell for a request with `key`
 * and a forged header. */
static void hap_echo(const struct hap *h, const char *key, char *out, size_t len)
{
	struct it_resp r;
	char auth[300];
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
	const char *const hd[] = { auth, "X-Celltrail-Cell: forged", NULL };
	it_http(&r, "GET", it_fmt("http://127.0.0.1:%d/echo", h->port), hd, NULL, 0);
	ck_assert_msg(r.status == 200, "through HAProxy: %ld", r.status);
	snprintf(out, len, "%s", r.body);
	it_resp_free(&r);
}

struct router {
	struct it_proc p;
	int port;
};

static const char *const *router_env(const char *cp_url, const struct hap *h)
{
	static char e_cp[300], e_trust[700], e_cache[700], e_map[700], e_sock[700];
	static const char *env[16];
	snprintf(e_cp, sizeof e_cp, "ROUTER_CONTROL_PLANE_URL=%s", cp_url);
	snprintf(e_trust, sizeof e_trust, "ROUTER_TRUST_BUNDLE=%s", trust_path);
	snprintf(e_cache, sizeof e_cache, "ROUTER_CACHE_DIR=%s", cache_dir);
	snprintf(e_map, sizeof e_map, "ROUTER_MAP_FILE=%s", h->map);
	snprintf(e_sock, sizeof e_sock, "ROUTER_HAPROXY_SOCKET=%s", h->sock);
	int n = 0;
	env[n++] = e_cp;
	env[n++] = e_trust;
	env[n++] = e_cache;
	env[n++] = e_map;
	env[n++] = e_sock;
	env[n++] = "ROUTER_REGION=us";
	env[n++] = "ROUTER_REGION_TOKEN=" REGION_TOKEN;
	env[n++] = "ROUTER_LISTEN=127.0.0.1:0";
	env[n++] = "ROUTER_PULL_WAIT=1s";
	env[n] = NULL;
	return env;
}

static int router_once(const char *cp_url, const struct hap *h, char *out, size_t len)
{
	char bin[1024];
	it_bin("cell-router", bin, sizeof bin);
	char *argv[] = { bin, "--once", NULL };
	return it_run("cell-router-once", argv, router_env(cp_url, h), out, len);
}

static void router_start(struct router *r, const char *cp_url, const struct hap *h)
{
	char bin[1024];
	it_bin("cell-router", bin, sizeof bin);
	char *argv[] = { bin, NULL };
	it_spawn(&r->p, "cell-router", argv, router_env(cp_url, h));
	r->port = it_wait_port(&r->p, 10000);
}

static long long router_metric(const struct router *r, const char *series)
{
	return metric_at(it_fmt("http://127.0.0.1:%d/metrics", r->port), series);
}

/* The README's table of the router's metrics ("### Cell router" under
 * "## Metrics", rows "| `name` | type | ...") and the router_* families of
 * a scrape ("# TYPE name type") agree both ways. */
static void router_metrics_match_readme(const struct router *r)
{
	char *readme = it_slurp(it_fmt("%s/README.md", it_env("IT_ROOT")));
	ck_assert_ptr_nonnull(readme);
	const char *m = strstr(readme, "\n## Metrics\n");
	ck_assert_ptr_nonnull(m);
	const char *t = strstr(m, "\n### Cell router\n"), *end = strstr(m + 1, "\n## ");
	ck_assert_msg(t && (!end || t < end), "README: no '### Cell router' table under '## Metrics'");
	/* The table ends at the next subsection (the mover's) or section. */
	const char *sub = strstr(t + 1, "\n### ");
	if (sub && (!end || sub < end))
		end = sub;
	struct it_resp s;
	it_http(&s, "GET", it_fmt("http://127.0.0.1:%d/metrics", r->port), NULL, NULL, 0);
	ck_assert_int_eq(s.status, 200);
	int rows = 0;
	for (const char *l = t; (l = strstr(l + 1, "\n| `")) && (!end || l < end);) {
		char name[100], type[20];
		ck_assert_int_eq(sscanf(l, "\n| `%99[^`]` | %19s", name, type), 2);
		ck_assert_msg(strstr(s.body, it_fmt("# TYPE %s %s\n", name, type)),
		              "README lists %s (%s), which the router does not export so", name, type);
		rows++;
	}
	int families = 0;
	for (const char *l = s.body; (l = strstr(l, "# TYPE router_")); l++) {
		char name[100];
		ck_assert_int_eq(sscanf(l, "# TYPE %99s", name), 1);
		ck_assert_msg(strstr(t, it_fmt("\n| `%s` |", name)), "the router exports %s, which the README does not list", name);
		families++;
	}
	ck_assert_int_eq(rows, families);
	it_resp_free(&s);
	free(readme);
}

static void router_stop(struct router *r)
{
	ck_assert_int_eq(it_stop(&r->p), 0);
	char *log = it_slurp(r->p.log);
	ck_assert_msg(log && !strstr(log, REGION_TOKEN), "the region token appears in %s", r->p.log);
	free(log);
}

#define ROUTES_1 K_OWN "|" CELL ";" K_OTHER "|" OTHER_CELL ";"
#define MAP_1 K_OWN " " CELL "\n" K_OTHER " " OTHER_CELL "\n"
#define ROUTES_2 ROUTES_1 K_NEW "|" OTHER_CELL ";"
#define MAP_2 MAP_1 K_NEW " " OTHER_CELL "\n"
#define ROUTES_3 ROUTES_1 K_NEW "|" CELL ";"
#define MAP_3 MAP_1 K_NEW " " CELL "\n"

static json_t *router_readyz(const struct router *r, long *status)
{
	struct it_resp rr;
	it_http(&rr, "GET", it_fmt("http://127.0.0.1:%d/readyz", r->port), NULL, NULL, 0);
	*status = rr.status;
	json_t *v = json_loads(rr.body, 0, NULL);
	ck_assert_msg(v, "router /readyz: %.300s", rr.body);
	it_resp_free(&rr);
	return v;
}

/* Waits until the router's /readyz says `haproxy` is `want`. */
static void wait_router_haproxy(const struct router *r, const char *want)
{
	long deadline = it_now_ms() + 15000, st;
	for (;;) {
		json_t *v = router_readyz(r, &st);
		int same = !strcmp(it_js(v, "haproxy"), want);
		json_decref(v);
		if (same)
			return;
		ck_assert_msg(it_now_ms() < deadline, "the router's haproxy state is not %s", want);
		usleep(50000);
	}
}

/* The router's whole life with a real HAProxy: the map built by --once
 * before HAProxy starts; a new key at the control plane reaches HAProxy's
 * map through the runtime API (and routes there); documents signed by an
 * untrusted key, or for another region, are refused and change nothing;
 * restarted with the control plane down, it routes from its cache. */
START_TEST(router_keeps_haproxy_current)
{
	struct fcp cp, cells; /* the control plane; the cells' backend */
	struct hap h;
	struct router r;
	char url[100], out[16384], got[256];
	snprintf(h.map, sizeof h.map, "%s/routes.map", dir);
	/* A socket path must fit sun_path (108 bytes): not under the log directory. */
	snprintf(h.sock, sizeof h.sock, "/tmp/ct-it-haproxy-%d.sock", (int)getpid());

	/* Nothing cached, no control plane: --once fails and writes no map. */
	ck_assert_int_eq(router_once("http://127.0.0.1:1", &h, out, sizeof out), 1);
	ck_assert_int_eq(access(h.map, F_OK), -1);

	fcp_start(&cp);
	snprintf(url, sizeof url, "http://127.0.0.1:%d", cp.srv.port);
	char *v1 = sign_routes(&signer, "us", 1, ROUTES_1);
	fcp_set(&cp, &cp.routes, &cp.routes_ver, v1, 1);
	ck_assert_msg(router_once(url, &h, out, sizeof out) == 0, "%s", out);
	char *text = it_slurp(h.map);
	ck_assert_str_eq(text, MAP_1);
	free(text);
	fcp_get(&cp, cp.routes_auth, got, sizeof got);
	ck_assert_str_eq(got, "Bearer " REGION_TOKEN);

	fcp_start(&cells);
	hap_start(&h, cells.srv.port);
	wait_hap_map(&h, MAP_1);
	router_start(&r, url, &h);
	hap_echo(&h, "us_" K_OTHER "_" SEC, got, sizeof got);
	ck_assert_str_eq(got, OTHER_CELL);
	hap_echo(&h, "us_" K_NEW "_" SEC, got, sizeof got);
	ck_assert_str_eq(got, "-"); /* not routed yet: the forged header is gone */

	/* A new key at the control plane. */
	char *v2 = sign_routes(&signer, "us", 2, ROUTES_2);
	fcp_set(&cp, &cp.routes, &cp.routes_ver, v2, 2);
	wait_hap_map(&h, MAP_2);
	text = it_slurp(h.map);
	ck_assert_str_eq(text, MAP_2);
	free(text);
	hap_echo(&h, "us_" K_NEW "_" SEC, got, sizeof got);
	ck_assert_str_eq(got, OTHER_CELL);
	ck_assert_int_eq(router_metric(&r, "router_config_version"), 2);
	ck_assert_int_eq(router_metric(&r, "router_routes"), 3);
	ck_assert_int_ge(router_metric(&r, "router_map_updates_total"), 1);
	router_metrics_match_readme(&r);

	/* Refused: an untrusted signer, another region. The map stays. */
	static const struct { int stranger; const char *region, *reason; } bad[] = {
		{ 1, "us", "kid" },
		{ 0, "eu", "audience" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char series[100];
		snprintf(series, sizeof series, "router_documents_rejected_total{reason=\"%s\"}", bad[i].reason);
		long long before = router_metric(&r, series);
		char *t = sign_routes(bad[i].stranger ? &stranger : &signer, bad[i].region, 3 + (long)i, K_NEW "|" CELL ";");
		fcp_set(&cp, &cp.routes, &cp.routes_ver, t, 3 + (long)i);
		free(t);
		long deadline = it_now_ms() + 10000;
		while (router_metric(&r, series) <= before) {
			ck_assert_msg(it_now_ms() < deadline, "case %zu: not refused", i);
			usleep(50000);
		}
		ck_assert_int_eq(router_metric(&r, "router_config_version"), 2);
		char *m = hap_map(&h);
		ck_assert_str_eq(m, MAP_2);
		free(m);
		text = it_slurp(h.map);
		ck_assert_str_eq(text, MAP_2);
		free(text);
	}

	/* HAProxy down when a change comes: the map file is written, the
	 * update is retried, and HAProxy back holds the change. */
	wait_router_haproxy(&r, "ok");
	it_stop(&h.p);
	long long failures = router_metric(&r, "router_map_update_failures_total");
	char *v5 = sign_routes(&signer, "us", 5, ROUTES_3);
	fcp_set(&cp, &cp.routes, &cp.routes_ver, v5, 5);
	free(v5);
	wait_router_haproxy(&r, "failing");
	ck_assert_int_gt(router_metric(&r, "router_map_update_failures_total"), failures);
	text = it_slurp(h.map);
	ck_assert_str_eq(text, MAP_3);
	free(text);
	hap_start(&h, cells.srv.port);
	wait_hap_map(&h, MAP_3);
	wait_router_haproxy(&r, "ok");
	router_stop(&r);

	/* The control plane down, HAProxy's map emptied, the map file gone:
	 * the restarted router puts both back from its verified cache. */
	fcp_stop(&cp);
	free(hap_cmd(&h, it_fmt("clear map %s\n", h.map)));
	wait_hap_map(&h, "");
	ck_assert_int_eq(unlink(h.map), 0);
	router_start(&r, "http://127.0.0.1:1", &h);
	wait_hap_map(&h, MAP_3);
	text = it_slurp(h.map);
	ck_assert_str_eq(text, MAP_3);
	free(text);
	long st;
	json_t *v = router_readyz(&r, &st);
	ck_assert_int_eq(st, 200);
	ck_assert_str_eq(it_js(v, "source"), "cache");
	ck_assert_int_eq(json_integer_value(json_object_get(v, "config_version")), 5);
	json_decref(v);
	hap_echo(&h, "us_" K_NEW "_" SEC, got, sizeof got);
	ck_assert_str_eq(got, CELL);
	router_stop(&r);
	it_stop(&h.p);
	fcp_stop(&cells);
	unlink(h.sock);
	free(v1);
	free(v2);
}
END_TEST

/* The router follows the control plane's key rotation through signed key
 * sets, without a restart: a set signed by a key it trusts brings a new
 * key, and a routes document signed with that key is applied; a set
 * signed by a key it does not trust is refused and changes nothing. */
START_TEST(router_follows_key_sets)
{
	struct fcp cp;
	struct hap h;
	struct router r;
	char url[100];
	snprintf(h.map, sizeof h.map, "%s/routes.map", dir);
	h.sock[0] = '\0';
	fcp_start(&cp);
	snprintf(url, sizeof url, "http://127.0.0.1:%d", cp.srv.port);
	char *v1 = sign_routes(&signer, "us", 1, ROUTES_1);
	fcp_set(&cp, &cp.routes, &cp.routes_ver, v1, 1);
	free(v1);
	/* The set {signer, stranger}, signed by both: the router trusts signer. */
	struct jwk both[2] = { signer, stranger };
	char *set = keyset_sign(both, 2, 5, (int64_t)time(NULL), "celltrail-control-plane");
	ck_assert_ptr_nonnull(set);
	fcp_set(&cp, &cp.keyset, &cp.keyset_ver, set, 5);
	free(set);
	router_start(&r, url, &h);
	long deadline = it_now_ms() + 15000;
	while (router_metric(&r, "router_keyset_version") != 5 && it_now_ms() < deadline)
		usleep(50 * 1000);
	ck_assert_int_eq(router_metric(&r, "router_keyset_version"), 5);
	ck_assert_int_ge(router_metric(&r, "router_keysets_total{outcome=\"ok\"}"), 1);

	/* Routes signed with the key the set brought: applied. */
	char *v2 = sign_routes(&stranger, "us", 2, ROUTES_2);
	fcp_set(&cp, &cp.routes, &cp.routes_ver, v2, 2);
	free(v2);
	deadline = it_now_ms() + 15000;
	while (router_metric(&r, "router_config_version") != 2 && it_now_ms() < deadline)
		usleep(50 * 1000);
	ck_assert_int_eq(router_metric(&r, "router_config_version"), 2);
	char *text = it_slurp(h.map);
	ck_assert_str_eq(text, MAP_2);
	free(text);

	/* A newer set signed only by a key the router does not trust. */
	struct jwk other;
	ck_assert_int_eq(jwk_generate(&other), 0);
	set = keyset_sign(&other, 1, 6, (int64_t)time(NULL), "celltrail-control-plane");
	fcp_set(&cp, &cp.keyset, &cp.keyset_ver, set, 6);
	free(set);
	/* A routes document signed with that key makes the router ask at once. */
	char *v3 = sign_routes(&other, "us", 3, ROUTES_1);
	fcp_set(&cp, &cp.routes, &cp.routes_ver, v3, 3);
	free(v3);
	deadline = it_now_ms() + 15000;
	while (router_metric(&r, "router_keysets_total{outcome=\"untrusted\"}") < 1 && it_now_ms() < deadline)
		usleep(50 * 1000);
	ck_assert_int_ge(router_metric(&r, "router_keysets_total{outcome=\"untrusted\"}"), 1);
	ck_assert_int_eq(router_metric(&r, "router_keyset_version"), 5);
	ck_assert_int_eq(router_metric(&r, "router_config_version"), 2);
	jwk_clear(&other);
	router_metrics_match_readme(&r);
	router_stop(&r);
	fcp_stop(&cp);
}
END_TEST

/* The router's cache at start, with the control plane down: an expired
 * verified document is applied all the same and reported; one for
 * another region is set aside; one signed by a key not trusted here is
 * kept but not applied (the key set that names the key may not be
 * fetched yet); one older than the version floor is not applied. --once
 * exits 0 only when a verified document was applied. */
START_TEST(router_cache_at_start)
{
	struct hap h;
	char out[16384], path[700];
	snprintf(h.map, sizeof h.map, "%s/routes.map", dir);
	h.sock[0] = '\0';
	ck_assert_int_eq(mkdir(cache_dir, 0700), 0);
	snprintf(path, sizeof path, "%s/config.jwt", cache_dir);
	int64_t now = (int64_t)time(NULL);
	static const struct { int stranger; const char *region; int64_t exp_in; long floor; int want_rc; const char *says; } cases[] = {
		{ 0, "us", -7200, 0, 0, "has expired" },                   /* applied, reported */
		{ 1, "us", 3600, 0, 1, "rejected (kid)" },                 /* kept, not applied */
		{ 0, "eu", 3600, 0, 1, "rejected (audience)" },            /* set aside */
		{ 0, "us", 3600, 5, 1, "rejected (rollback)" },            /* below the floor: kept, not applied */
		{ 0, "us", 3600, 4, 0, "applied from the cache" },         /* at the floor */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		unlink(h.map);
		char *tok = sign_routes(cases[i].stranger ? &stranger : &signer, cases[i].region, 4, ROUTES_1);
		/* sign_routes makes exp now + 3600: re-sign the expired one by hand. */
		if (cases[i].exp_in < 0) {
			free(tok);
			json_t *c = json_pack("{ss ss sI sI sI ss sI si ss ss s[[sss][sss]]}", "iss", "celltrail-control-plane",
			                      "aud", CFGDOC_AUD_ROUTES "us", "iat", (json_int_t)(now - 9000), "nbf",
			                      (json_int_t)(now - 9000), "exp", (json_int_t)(now + cases[i].exp_in), "jti", "x",
			                      "ver", (json_int_t)4, "fmt", 1, "kind", CFGDOC_KIND_ROUTES, "region", "us",
			                      "cells", CELL, "active", "shared", OTHER_CELL, "active", "shared");
			tok = cfgdoc_sign_text(&signer, c, "routes", ROUTES_1);
			json_decref(c);
		}
		write_text(path, tok);
		free(tok);
		char vpath[700];
		snprintf(vpath, sizeof vpath, "%s/version", cache_dir);
		if (cases[i].floor)
			write_text(vpath, it_fmt("%ld\n", cases[i].floor));
		else
			unlink(vpath);
		int rc = router_once("http://127.0.0.1:1", &h, out, sizeof out);
		ck_assert_msg(rc == cases[i].want_rc && strstr(out, cases[i].says), "case %zu: exit %d: %.2000s", i, rc, out);
		char *text = it_slurp(h.map);
		if (rc == 0)
			ck_assert_msg(text && !strcmp(text, MAP_1), "case %zu: map %s", i, text ? text : "(none)");
		else
			ck_assert_msg(!text, "case %zu: a map was written", i);
		free(text);
		char rejected[700];
		snprintf(rejected, sizeof rejected, "%s/config.jwt.rejected", cache_dir);
		int aside = access(rejected, F_OK) == 0;
		ck_assert_msg(aside == (i == 2), "case %zu: set aside %d", i, aside);
		unlink(rejected);
	}
}
END_TEST

/* A map of 100,000 keys replaces HAProxy's in seconds (one prepared
 * version, filled in payloads of a few hundred lines, committed at once),
 * and a change of one key replaces it again just as whole. */
START_TEST(router_large_map)
{
	struct fcp cp;
	struct hap h;
	char url[100], out[16384];
	enum { N = 100000 };
	snprintf(h.map, sizeof h.map, "%s/routes.map", dir);
	snprintf(h.sock, sizeof h.sock, "/tmp/ct-it-haproxy-%d.sock", (int)getpid());
	write_text(h.map, "");
	hap_start(&h, 1);
	fcp_start(&cp);
	snprintf(url, sizeof url, "http://127.0.0.1:%d", cp.srv.port);
	struct buf b = { 0 };
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(cfgdoc_add_route(&b, it_fmt("%024x", i), i % 2 ? CELL : OTHER_CELL), 0);
	char *routes = buf_take(&b);
	char *v1 = sign_routes(&signer, "us", 1, routes);
	fcp_set(&cp, &cp.routes, &cp.routes_ver, v1, 1);
	long t0 = it_now_ms();
	ck_assert_msg(router_once(url, &h, out, sizeof out) == 0, "%.2000s", out);
	long took = it_now_ms() - t0;
	ck_assert_msg(strstr(out, "now holds routes version 1"), "HAProxy not updated: %.2000s", out);
	char *ans = hap_cmd(&h, it_fmt("show map %s\n", h.map));
	size_t lines = 0;
	for (const char *p = ans; (p = strchr(p, '\n')) != NULL; p++)
		lines++;
	ck_assert_msg(lines >= N && lines <= N + 1, "HAProxy's map has %zu lines", lines);
	ck_assert_msg(strstr(ans, it_fmt(" %024x %s\n", N - 1, CELL)), "the last key is missing");
	free(ans);
	fprintf(stderr, "cell-router: %d keys pulled, verified, written and pushed to HAProxy in %ld ms\n", N, took);
	ck_assert_msg(took < 30000, "%ld ms for %d keys", took, N);
	it_stop(&h.p);
	unlink(h.sock);
	fcp_stop(&cp);
	free(routes);
	free(v1);
}
END_TEST

/* ---- with the real control plane ---- */

static json_t *admin_json(const struct it_stack *s, const char *method, const char *path, const char *body,
                          long want)
{
	struct it_resp r;
	it_stack_admin(s, &r, method, path, body);
	ck_assert_msg(r.status == want, "%s %s: %ld, want %ld: %.300s", method, path, r.status, want, r.body);
	json_t *j = json_loads(r.body, 0, NULL);
	it_resp_free(&r);
	return j;
}

/* The key id of a key's text "<region>_<id>_<secret>". */
static void key_id_of(const char *key, char id[25])
{
	const char *u = strchr(key, '_');
	ck_assert_ptr_nonnull(u);
	snprintf(id, 25, "%.24s", u + 1);
}

/* Against the real control plane: a data plane restarted into its
 * tenant's cell sets the regional cache aside, serves that cell's document
 * (a key of the region's other cell is not in it), refuses a request
 * routed for the other cell, reports usage the control plane accepts from
 * the cell's credential and shows in the fleet with its cell; and the
 * router's map built by cell-router --once sends each key to its cell. */
START_TEST(with_the_control_plane)
{
	struct it_stack s;
	char cell[64], other[64], tok[200], other_key[200], id_a[25], id_b[25], out[16384];
	it_stack_start(&s, "us", NULL, NULL);
	json_t *t = admin_json(&s, "GET", it_fmt("/v1/tenants/%s", s.tenant), NULL, 200);
	snprintf(cell, sizeof cell, "%s", it_js(t, "cell"));
	json_decref(t);
	ck_assert_msg(cell[0], "the admin view of the tenant names no cell");
	snprintf(other, sizeof other, "%s", strcmp(cell, "us-east-1") ? "us-east-1" : "us-west-2");
	t = admin_json(&s, "POST", it_fmt("/v1/cells/%s/credentials", cell), "{}", 201);
	snprintf(tok, sizeof tok, "%s", it_js(t, "token"));
	json_decref(t);
	t = admin_json(&s, "POST", "/v1/tenants",
	               it_fmt("{\"name\":\"Other\",\"slug\":\"other-%d\",\"region\":\"us\",\"plan\":\"pro\",\"cell\":\"%s\"}",
	                      (int)getpid(), other),
	               201);
	char other_id[40];
	snprintf(other_id, sizeof other_id, "%s", it_js(t, "id"));
	json_decref(t);
	t = admin_json(&s, "POST", it_fmt("/v1/tenants/%s/api-keys", other_id),
	               "{\"name\":\"k\",\"scopes\":[\"events:read\",\"events:write\"]}", 201);
	snprintf(other_key, sizeof other_key, "%s", it_js(t, "secret"));
	json_decref(t);
	key_id_of(s.key, id_a);
	key_id_of(other_key, id_b);

	char e_cell[100], e_tok[260];
	snprintf(e_cell, sizeof e_cell, "DP_CELL=%s", cell);
	snprintf(e_tok, sizeof e_tok, "DP_CELL_TOKEN=%s", tok);
	const char *const env[] = { e_cell, e_tok, "DP_USAGE_REPORT_INTERVAL=200ms", "DP_ERASURE_INTERVAL=200ms", NULL };
	it_stack_dp_restart(&s, env);
	struct dp d = { .p = s.dp, .port = s.dp_port };
	long st;
	json_t *v = get_json(&d, "/readyz", &st);
	ck_assert_int_eq(st, 200);
	ck_assert_str_eq(it_js(v, "cell"), cell);
	json_decref(v);
	ck_assert_int_eq(dp_metric(&d, "dp_config_rejected_total{reason=\"audience\"}"), 1); /* the regional cache */

	char code[64], retry[16];
	ck_assert_int_eq(tenant_call(&d, s.key, NULL, code, sizeof code, retry, sizeof retry), 200);
	ck_assert_int_eq(tenant_call(&d, s.key, cell, code, sizeof code, retry, sizeof retry), 200);
	ck_assert_int_eq(tenant_call(&d, s.key, other, code, sizeof code, retry, sizeof retry), 503);
	ck_assert_str_eq(code, "wrong_cell");
	ck_assert_int_eq(tenant_call(&d, other_key, NULL, code, sizeof code, retry, sizeof retry), 401);
	ck_assert_int_eq(tenant_call(&d, other_key, cell, code, sizeof code, retry, sizeof retry), 503);
	ck_assert_str_eq(code, "wrong_cell");

	struct it_resp r;
	char auth[300];
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", s.key);
	const char *const h[] = { auth, "Content-Type: application/json", NULL };
	const char *ev = "{\"id\":\"cell-e2e-1\",\"action\":\"user.login\",\"actor\":{\"id\":\"u-1\",\"type\":\"user\"}}";
	it_http(&r, "POST", it_fmt("%s/v1/events", s.dp_url), h, ev, strlen(ev));
	ck_assert_msg(r.status == 201, "POST /v1/events: %ld %.300s", r.status, r.body);
	it_resp_free(&r);
	long deadline = it_now_ms() + 20000;
	while (dp_metric(&d, "dp_usage_batches_sent_total") < 1) {
		ck_assert_msg(it_now_ms() < deadline, "no usage batch accepted (rejected %lld)",
		              dp_metric(&d, "dp_usage_batches_rejected_total"));
		usleep(50000);
	}
	ck_assert_int_eq(dp_metric(&d, "dp_usage_batches_rejected_total"), 0);
	/* The fleet shows this instance in its cell. */
	deadline = it_now_ms() + 20000;
	for (;;) {
		json_t *f = admin_json(&s, "GET", "/v1/regions/us/fleet", NULL, 200);
		int found = 0;
		size_t i;
		json_t *it;
		json_array_foreach(json_object_get(f, "items"), i, it)
			found |= !strcmp(it_js(it, "instance"), "it-stack") && !strcmp(it_js(it, "cell"), cell);
		json_decref(f);
		if (found)
			break;
		ck_assert_msg(it_now_ms() < deadline, "the fleet does not show it-stack in %s", cell);
		usleep(100000);
	}

	/* The router's map from the control plane's routes document. */
	struct hap hp;
	snprintf(hp.map, sizeof hp.map, "%s/routes.map", dir);
	hp.sock[0] = '\0';
	const char *const *renv = router_env(s.cp_url, &hp);
	const char *env2[20];
	int n = 0;
	for (int i = 0; renv[i]; i++)
		if (strncmp(renv[i], "ROUTER_HAPROXY_SOCKET=", 22) && strncmp(renv[i], "ROUTER_TRUST_BUNDLE=", 20) &&
		    strncmp(renv[i], "ROUTER_REGION_TOKEN=", 20))
			env2[n++] = renv[i];
	char e_trust[1000], e_rtok[1000];
	snprintf(e_trust, sizeof e_trust, "ROUTER_TRUST_BUNDLE=%.900s", s.dp_base[3] + strlen("DP_TRUST_BUNDLE="));
	snprintf(e_rtok, sizeof e_rtok, "ROUTER_REGION_TOKEN=%.900s", s.dp_base[4] + strlen("DP_REGION_TOKEN="));
	env2[n++] = e_trust;
	env2[n++] = e_rtok;
	env2[n] = NULL;
	char bin[1024];
	it_bin("cell-router", bin, sizeof bin);
	char *argv[] = { bin, "--once", NULL };
	ck_assert_msg(it_run("cell-router-once", argv, env2, out, sizeof out) == 0, "%s", out);
	char *map = it_slurp(hp.map);
	ck_assert_ptr_nonnull(map);
	ck_assert_msg(strstr(map, it_fmt("%s %s\n", id_a, cell)) && strstr(map, it_fmt("%s %s\n", id_b, other)),
	              "map:\n%s", map);
	free(map);

	/* The cell's erasure report, with the cell's credential, is accepted. */
	json_decref(admin_json(&s, "DELETE", it_fmt("/v1/tenants/%s", s.tenant), NULL, 200));
	deadline = it_now_ms() + 60000;
	for (;;) {
		t = admin_json(&s, "GET", it_fmt("/v1/tenants/%s", s.tenant), NULL, 200);
		int done = !strcmp(it_js(json_object_get(t, "erasure"), "status"), "done");
		json_decref(t);
		if (done)
			break;
		ck_assert_msg(it_now_ms() < deadline, "the erasure is not reported done (log %s)", s.dp.log);
		usleep(100000);
	}
	it_stack_stop(&s);
}
END_TEST

/* A cell's data plane asks for deltas from the version it holds
 * (?since=); it applies a good one (and keeps it on disk beside the
 * document), refuses one whose digest names another state and then asks
 * for the whole document (?full=1), and refuses a replayed older delta. */
START_TEST(deltas_applied_or_refused)
{
	struct fcp cp;
	struct dp d;
	char url[100], path[300], code[64], retry[16];
	start_cell_dp(&cp, &d, url, 5);
	fcp_get(&cp, cp.config_path, path, sizeof path);
	const char *own = "us_" K_OWN "_" SEC, *new_key = "us_" K_NEW "_" SEC;

	/* v5 -> v6 adds K_NEW: applied, and kept in config.deltas. */
	char *good = cell_delta(5, 6, 1, 0);
	fcp_set(&cp, &cp.config, &cp.config_ver, good, 6);
	wait_dp_version(&d, 6);
	ck_assert_int_eq(tenant_call(&d, new_key, NULL, code, sizeof code, retry, sizeof retry), 200);
	ck_assert_int_eq(dp_metric(&d, "dp_config_deltas_applied_total"), 1);
	fcp_get(&cp, cp.config_path, path, sizeof path);
	ck_assert_msg(strstr(path, "since=6"), "the pull after v6 asks %s", path);
	char *chain = it_slurp(it_fmt("%s/config.deltas", cache_dir));
	ck_assert_ptr_nonnull(chain);
	ck_assert_msg(!strcmp(chain, it_fmt("%s\n", good)), "config.deltas holds %.100s", chain);
	free(chain);

	/* v6 -> v7 with a digest of another state: refused, v6 kept; the
	 * next pull asks for the whole document, which is applied. */
	long long refused0 = dp_metric(&d, "dp_config_rejected_total{reason=\"content\"}");
	char *bad = cell_delta(6, 7, 0, 1), *whole = cell_doc(7);
	pthread_mutex_lock(&cp.mu);
	cp.full = strdup(whole);
	cp.full_ver = 7;
	pthread_mutex_unlock(&cp.mu);
	fcp_set(&cp, &cp.config, &cp.config_ver, bad, 7);
	wait_dp_version(&d, 7);
	ck_assert_int_gt(dp_metric(&d, "dp_config_rejected_total{reason=\"content\"}"), refused0);
	ck_assert_int_eq(dp_metric(&d, "dp_config_deltas_applied_total"), 1);
	ck_assert_int_eq(tenant_call(&d, new_key, NULL, code, sizeof code, retry, sizeof retry), 401);
	ck_assert_int_eq(tenant_call(&d, own, NULL, code, sizeof code, retry, sizeof retry), 200);
	/* A whole document empties the delta chain. */
	chain = it_slurp(it_fmt("%s/config.deltas", cache_dir));
	ck_assert_str_eq(chain, "");
	free(chain);

	/* The v5 -> v6 delta again, offered as something newer: refused. */
	long long rollback0 = dp_metric(&d, "dp_config_rejected_total{reason=\"rollback\"}");
	fcp_set(&cp, &cp.config, &cp.config_ver, good, 8);
	long deadline = it_now_ms() + 10000;
	while (dp_metric(&d, "dp_config_rejected_total{reason=\"rollback\"}") == rollback0) {
		ck_assert_msg(it_now_ms() < deadline, "the replayed delta was not refused");
		usleep(50000);
	}
	wait_dp_version(&d, 7);
	ck_assert_int_eq(tenant_call(&d, new_key, NULL, code, sizeof code, retry, sizeof retry), 401);
	stop_dp(&d);
	fcp_stop(&cp);
	free(good);
	free(bad);
	free(whole);
}
END_TEST

/* Against a control plane of a build without deltas (it refuses the
 * unknown ?since), the data plane pulls whole documents again. */
START_TEST(older_control_plane_whole_documents)
{
	struct fcp cp;
	struct dp d;
	char url[100], path[300];
	start_cell_dp(&cp, &d, url, 5);
	pthread_mutex_lock(&cp.mu);
	cp.old_build = 1;
	pthread_mutex_unlock(&cp.mu);
	char *doc = cell_doc(6);
	fcp_set(&cp, &cp.config, &cp.config_ver, doc, 6);
	free(doc);
	wait_dp_version(&d, 6);
	fcp_get(&cp, cp.config_path, path, sizeof path);
	ck_assert_msg(!strstr(path, "since="), "the data plane still asks %s", path);
	stop_dp(&d);
	fcp_stop(&cp);
}
END_TEST

Suite *cells_dp_suite(void)
{
	Suite *s = suite_create("cells-dp");
	const TTest *const tests[] = { wrong_cell_guard, wrong_cell_waits_for_document, foreign_documents_refused, usage_with_cell_token,
		                                  cell_settings_checked, with_the_control_plane, db_cell_identity,
		                                  deltas_applied_or_refused, older_control_plane_whole_documents };
	it_add_tests(s, tests, sizeof tests / sizeof tests[0], setup, teardown, 120);
	return s;
}

Suite *cell_router_suite(void)
{
	Suite *s = suite_create("cell-router");
	const TTest *const tests[] = { router_keeps_haproxy_current, router_cache_at_start, router_large_map,
		                           router_follows_key_sets };
	it_add_tests(s, tests, sizeof tests / sizeof tests[0], setup, teardown, 120);
	return s;
}
