/* Delta cell documents, from outside: GET /v1/cells/{cell}/config?since=
 * answers the changed tenants' records (upsert) and the tenants gone
 * (remove) signed as a delta, whose state digest equals the one recomputed
 * from a full document of the same version; a chain of deltas after a
 * burst of changes reaches the newest version; the fallbacks (no delta
 * from there: a full) and the refusals (malformed since or full). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfgdoc.h"
#include "cpfx.h"
#include "secret.h"

#define CELL "us-east-1"

static char keys_env[700];

static void setup(void)
{
	snprintf(keys_env, sizeof keys_env, "CP_SIGNING_KEYS_DIR=%s/keys-delta-%d", it_env("IT_LOG_DIR"),
	         (int)getpid());
	/* A full document every 3 versions: every chain below crosses full
	 * rebuilds, which its data planes must follow through their
	 * bridging deltas, never a whole document. */
	const char *const extra[] = { keys_env, "CP_CONFIG_FULL_EVERY=3", NULL };
	cpfx_start("it_delta", extra);
}

static void teardown(void)
{
	cpfx_stop();
}

static json_t *adm(const char *method, const char *path, const char *body, long want)
{
	struct res r;
	api(&r, method, path, ADMIN_TOKEN, body);
	ck_assert_msg(r.status == want, "%s %s: %ld, want %ld: %.300s", method, path, r.status, want,
	              r.raw.body);
	json_t *j = r.json ? json_incref(r.json) : NULL;
	res_free(&r);
	return j;
}

struct got {
	long status;
	long ver;           /* the ETag's */
	char kind[16];      /* Config-Kind */
	json_t *claims;     /* the JWS payload (200 only) */
	size_t len;
	char problem[64];
};

static void got_free(struct got *g)
{
	json_decref(g->claims);
}

/* GET the cell's document with `query` (after '?', may be ""). */
static void get(struct got *g, const char *query)
{
	struct it_resp r;
	char etag[32] = "";
	const char *const h[] = { "Authorization: Bearer " ADMIN_TOKEN, NULL };
	it_http(&r, "GET", it_fmt("%s/v1/cells/" CELL "/config%s%s", cpfx.url, *query ? "?" : "", query), h,
	        NULL, 0);
	memset(g, 0, sizeof *g);
	g->status = r.status;
	g->len = r.len;
	it_header(&r, "ETag", etag, sizeof etag);
	g->ver = etag[0] == '"' ? atol(etag + 1) : -1;
	it_header(&r, "Config-Kind", g->kind, sizeof g->kind);
	if (r.status == 200) {
		const char *a = strchr(r.body, '.'), *b = a ? strchr(a + 1, '.') : NULL;
		ck_assert_ptr_nonnull(b);
		size_t n = (size_t)(b - a - 1);
		char *raw = malloc(n + 1);
		long m = secret_unb64url(a + 1, n, raw, n);
		ck_assert_int_gt(m, 0);
		json_error_t e;
		g->claims = json_loadb(raw, (size_t)m, 0, &e);
		free(raw);
		ck_assert_ptr_nonnull(g->claims);
		ck_assert_int_eq(json_integer_value(json_object_get(g->claims, "ver")), g->ver);
	} else if (r.status >= 400) {
		json_t *p = json_loadb(r.body, r.len, 0, NULL);
		snprintf(g->problem, sizeof g->problem, "%s", json_string_value(json_object_get(p, "code")));
		json_decref(p);
	}
	it_resp_free(&r);
}

static const char *cs(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

static int add_record(const char *rec, size_t len, void *arg)
{
	unsigned char h[32];
	cfgdoc_record_hash(rec, len, h);
	cfgdoc_sum_add(arg, h);
	return 0;
}

/* The state digest recomputed from a full document's claims and records. */
static void digest_of_full(const json_t *claims, char out[CFGDOC_DIGEST_LEN + 1])
{
	struct cfgdoc_sum sum = { { 0 } };
	const char *t = cs(claims, "tenants");
	ck_assert_int_eq(cfgdoc_each_record(t, strlen(t), add_record, &sum), 0);
	ck_assert_int_eq(cfgdoc_state_digest(claims, &sum, out), 0);
}

/* The full document at version `ver` (without since, the route answers a
 * full document of the newest version: the worker builds it on request);
 * its digest is the one recomputed from it. */
static void full_at(long ver, char digest[CFGDOC_DIGEST_LEN + 1])
{
	struct got f;
	get(&f, "");
	ck_assert_int_eq(f.status, 200);
	ck_assert_str_eq(f.kind, "full");
	ck_assert_int_eq(f.ver, ver);
	digest_of_full(f.claims, digest);
	ck_assert_str_eq(cs(f.claims, "digest"), digest);
	got_free(&f);
}

/* A counter of the control plane's /metrics. */
static long long cp_metric(const char *series)
{
	return it_metric(cpfx.url, series);
}

static long version(void)
{
	return qlong("SELECT config_version FROM regions WHERE name = 'us'");
}

static void tenant(const char *slug, char id[37])
{
	json_t *t = adm("POST", "/v1/tenants",
	                it_fmt("{\"name\":\"T %s\",\"slug\":\"%s\",\"region\":\"us\",\"plan\":\"free\","
	                       "\"cell\":\"" CELL "\"}", slug, slug), 201);
	snprintf(id, 37, "%s", cs(t, "id"));
	json_decref(t);
}

static void key(const char *tenant_id, char id[32])
{
	json_t *k = adm("POST", it_fmt("/v1/tenants/%s/api-keys", tenant_id),
	                "{\"name\":\"k\",\"scopes\":[\"events:write\"]}", 201);
	if (id)
		snprintf(id, 32, "%s", cs(k, "id"));
	json_decref(k);
}

/* Follows the chain of deltas from `since` to the newest version; the
 * last delta's digest is returned. */
static long follow(long since, char digest[CFGDOC_DIGEST_LEN + 1], int *steps)
{
	long now = version();
	*steps = 0;
	while (since < now) {
		struct got g;
		get(&g, it_fmt("since=%ld", since));
		ck_assert_int_eq(g.status, 200);
		ck_assert_str_eq(g.kind, "delta");
		ck_assert_int_eq(json_integer_value(json_object_get(g.claims, "base_ver")), since);
		ck_assert_int_gt(g.ver, since);
		snprintf(digest, CFGDOC_DIGEST_LEN + 1, "%s", cs(g.claims, "digest"));
		since = g.ver;
		got_free(&g);
		ck_assert_int_lt(++*steps, 1000);
	}
	return since;
}

/* Revoking one key: a small delta holding exactly that tenant's record,
 * without the key, whose digest is the full document's. */
START_TEST(revoke_is_a_small_delta)
{
	char a[37], b[37], k1[32], k2[32], dfull[CFGDOC_DIGEST_LEN + 1];
	tenant("delta-a", a);
	tenant("delta-b", b);
	key(a, k1);
	key(a, k2);
	key(b, NULL);
	struct got f, d;
	get(&f, "since=0");
	ck_assert_int_eq(f.status, 200);
	ck_assert_str_eq(f.kind, "full");
	long v0 = f.ver;
	ck_assert_int_eq(v0, version());
	ck_assert_ptr_nonnull(strstr(cs(f.claims, "tenants"), k1));
	digest_of_full(f.claims, dfull);
	ck_assert_str_eq(cs(f.claims, "digest"), dfull);
	got_free(&f);

	json_decref(adm("DELETE", it_fmt("/v1/tenants/%s/api-keys/%s", a, k1), NULL, 200));
	long v1 = version();
	ck_assert_int_gt(v1, v0);
	get(&d, it_fmt("since=%ld&wait=5", v0));
	ck_assert_int_eq(d.status, 200);
	ck_assert_str_eq(d.kind, "delta");
	ck_assert_int_eq(d.ver, v1);
	ck_assert_int_lt(d.len, 4096);
	ck_assert_str_eq(cs(d.claims, "kind"), "delta");
	ck_assert_int_eq(json_integer_value(json_object_get(d.claims, "base_ver")), v0);
	ck_assert_ptr_null(json_object_get(d.claims, "tenants"));
	ck_assert_ptr_null(json_object_get(d.claims, "remove"));
	const char *up = cs(d.claims, "upsert");
	ck_assert_msg(!strncmp(up, it_fmt("t|%s|", a), 39), "upsert: %s", up);
	ck_assert_ptr_null(strstr(up, k1));
	ck_assert_ptr_nonnull(strstr(up, k2));
	ck_assert_ptr_null(strstr(up, b));
	ck_assert_ptr_null(strstr(up + 1, "t|")); /* one record */
	full_at(v1, dfull);
	ck_assert_str_eq(cs(d.claims, "digest"), dfull);
	got_free(&d);
}
END_TEST

/* A new tenant is upserted; one erased leaves the document (removed). */
START_TEST(new_and_gone_tenants)
{
	char a[37], b[37], c[37], dfull[CFGDOC_DIGEST_LEN + 1];
	tenant("gone-a", a);
	tenant("gone-b", b);
	struct got f, d;
	get(&f, "since=0");
	ck_assert_int_eq(f.status, 200);
	long v0 = f.ver;
	got_free(&f);
	tenant("gone-c", c);
	/* b is deleted, then its cell reports it erased: it leaves the document. */
	json_decref(adm("DELETE", it_fmt("/v1/tenants/%s", b), NULL, 200));
	free(q(it_fmt("WITH e AS (UPDATE erasures SET completed_at = now() WHERE tenant_id = '%s' RETURNING 1)"
	              " UPDATE regions SET config_version = config_version + 1 WHERE name = 'us'"
	              " RETURNING (SELECT count(*) FROM e)", b)));
	int steps;
	char last[CFGDOC_DIGEST_LEN + 1];
	long v = follow(v0, last, &steps);
	ck_assert_int_eq(v, version());
	/* Both changes in one delta from v0. */
	get(&d, it_fmt("since=%ld", v0));
	ck_assert_int_eq(d.status, 200);
	if (d.ver == v) {
		ck_assert_ptr_nonnull(strstr(cs(d.claims, "upsert"), c));
		ck_assert_ptr_null(strstr(cs(d.claims, "upsert"), b));
		ck_assert_str_eq(cs(d.claims, "remove"), it_fmt("%s;", b));
	}
	got_free(&d);
	full_at(v, dfull);
	ck_assert_str_eq(last, dfull);
}
END_TEST

/* 100 changes, then the chain from the old version reaches the newest
 * with the digest of the full document of that version. */
START_TEST(chain_after_a_burst)
{
	char a[37], dfull[CFGDOC_DIGEST_LEN + 1], last[CFGDOC_DIGEST_LEN + 1];
	tenant("burst", a);
	struct got f;
	get(&f, "since=0");
	ck_assert_int_eq(f.status, 200);
	long v0 = f.ver;
	got_free(&f);
	for (int i = 0; i < 100; i++) {
		key(a, NULL);
		if (i % 10 == 0) { /* some polls in between, so there are deltas of several sizes */
			struct got g;
			get(&g, it_fmt("since=%ld", v0));
			ck_assert_int_eq(g.status, 200);
			got_free(&g);
		}
	}
	int steps;
	long long fulls0 = cp_metric("cp_config_full_builds_total");
	long v = follow(v0, last, &steps);
	ck_assert_int_eq(v, version());
	ck_assert_int_ge(v - v0, 100);
	/* The chain crossed full rebuilds (one every 3 versions) through
	 * their bridging deltas: follow() took a delta at every step. */
	ck_assert_int_ge(fulls0, 3);
	full_at(v, dfull);
	ck_assert_str_eq(last, dfull);
	/* Up to date: 304 at once without wait. */
	get(&f, it_fmt("since=%ld", v));
	ck_assert_int_eq(f.status, 304);
	ck_assert_int_eq(f.ver, v);
}
END_TEST

START_TEST(fallbacks_and_refusals)
{
	char a[37];
	struct got g;
	tenant("edge", a);
	long v = version();
	/* No delta from version 1: the full document. */
	get(&g, "since=1");
	ck_assert_int_eq(g.status, 200);
	ck_assert_str_eq(g.kind, "full");
	ck_assert_int_eq(g.ver, v);
	got_free(&g);
	/* Ahead of the control plane: nothing newer. */
	get(&g, it_fmt("since=%ld", v + 5));
	ck_assert_int_eq(g.status, 304);
	/* Without since: a full document, as data planes of the previous build read. */
	get(&g, "");
	ck_assert_int_eq(g.status, 200);
	ck_assert_str_eq(g.kind, "full");
	ck_assert_ptr_nonnull(json_object_get(g.claims, "tenants"));
	got_free(&g);
	static const char *const bad[] = { "since=", "since=-1", "since=1x", "since=99999999999999999999",
		                               "full=2", "full=yes", "since=1&full=" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		get(&g, bad[i]);
		ck_assert_msg(g.status == 400, "%s: %ld", bad[i], g.status);
		ck_assert_str_eq(g.problem, "validation_failed");
	}
	/* The regional document's route takes no since. */
	struct res r;
	api(&r, "GET", "/v1/regions/us/config?since=1", ADMIN_TOKEN, NULL);
	ck_assert_int_eq(r.status, 400);
	res_free(&r);
}
END_TEST

/* A stored delta that is about to expire is not served (a data plane
 * would refuse it, and ask for it again): the whole document instead. */
START_TEST(expiring_delta_not_served)
{
	char a[37];
	tenant("expiring", a);
	struct got g;
	get(&g, "since=0");
	long v0 = g.ver;
	got_free(&g);
	key(a, NULL);
	get(&g, it_fmt("since=%ld&wait=10", v0));
	ck_assert_int_eq(g.status, 200);
	ck_assert_str_eq(g.kind, "delta");
	got_free(&g);
	/* The stored copy near its exp, and the control plane restarted so
	 * that only the store has it. */
	ck_assert_int_eq(qlong(it_fmt("WITH u AS (UPDATE config_deltas SET expires_at = now() + interval '1 minute'"
	                              " WHERE base_ver = %ld RETURNING 1) SELECT count(*) FROM u", v0)), 1);
	const char *const extra[] = { keys_env, "CP_CONFIG_FULL_EVERY=3", NULL };
	cpfx_restart(extra);
	get(&g, it_fmt("since=%ld&wait=10", v0));
	ck_assert_int_eq(g.status, 200);
	ck_assert_str_eq(g.kind, "full");
	got_free(&g);
}
END_TEST

Suite *cfg_delta_suite(void)
{
	Suite *s = suite_create("cfg-delta");
	TCase *tc = tcase_create("delta");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, revoke_is_a_small_delta);
	tcase_add_test(tc, expiring_delta_not_served);
	tcase_add_test(tc, new_and_gone_tenants);
	tcase_add_test(tc, chain_after_a_burst);
	tcase_add_test(tc, fallbacks_and_refusals);
	suite_add_tcase(s, tc);
	return s;
}
