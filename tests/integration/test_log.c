/* The tenants' logs (data-plane/log.c): every stored event becomes a leaf,
 * in feed order, whichever instance committed it; every checkpoint stored
 * verifies with the published keys and holds the root of its leaves; one
 * tenant's append never waits on another's; a restart continues the log;
 * retention keeps the hashes of the leaves it removes; DP_LOG=false keeps
 * no log. Against a control plane and data planes of region "us"
 * (it_stack_start), the hashes recomputed here from RFC 9162. */
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "checkpoint.h"
#include "fixtures.h"
#include "jwk.h"

#define APPEND_DEADLINE_MS 60000

struct who {
	char tenant[40];
	char auth[240];
};

static void member(const char *text, const char *name, char *out, size_t len)
{
	json_t *j = json_loads(text, 0, NULL);
	ck_assert_msg(j != NULL, "not JSON: %.300s", text);
	snprintf(out, len, "%s", it_js(j, name));
	json_decref(j);
}

/* A tenant with no practical rate limit, and a key of it. */
static void log_tenant(struct it_stack *s, struct who *w, const char *slug)
{
	struct it_resp r;
	char key[200];
	it_stack_admin(s, &r, "POST", "/v1/plans",
	               it_fmt("{\"id\":\"log-%s\",\"name\":\"Log %s\",\"currency\":\"USD\",\"base_price\":0,"
	                      "\"events_included\":0,\"price_per_1000\":0,\"rate_limit\":1000000,\"burst\":1000000,"
	                      "\"monthly_event_quota\":1000000000,\"retention_days\":30}",
	                      slug, slug));
	ck_assert_msg(r.status == 201, "POST /v1/plans: %ld %.300s", r.status, r.body);
	it_resp_free(&r);
	it_stack_admin(s, &r, "POST", "/v1/tenants",
	               it_fmt("{\"name\":\"%s\",\"slug\":\"%s\",\"region\":\"%s\",\"plan\":\"log-%s\"}", slug, slug,
	                      s->region, slug));
	ck_assert_msg(r.status == 201, "POST /v1/tenants: %ld %.300s", r.status, r.body);
	member(r.body, "id", w->tenant, sizeof w->tenant);
	it_resp_free(&r);
	it_stack_admin(s, &r, "POST", it_fmt("/v1/tenants/%s/api-keys", w->tenant),
	               "{\"name\":\"k\",\"scopes\":[\"events:write\",\"events:read\"]}");
	ck_assert_msg(r.status == 201, "POST api-keys: %ld %.300s", r.status, r.body);
	member(r.body, "secret", key, sizeof key);
	it_resp_free(&r);
	snprintf(w->auth, sizeof w->auth, "Authorization: Bearer %s", key);
	it_stack_sync(s);
}

/* `n` events of `w` in one request, ids "<prefix>-<i>". */
static void post(const char *base, const struct who *w, const char *prefix, int n)
{
	struct buf b = { 0 };
	buf_printf(&b, "{\"events\":[");
	for (int i = 0; i < n; i++)
		buf_printf(&b, "%s{\"id\":\"%s-%d\",\"action\":\"doc.edit\",\"actor\":{\"id\":\"u-%d\",\"type\":\"user\"},"
		               "\"metadata\":{\"n\":%d,\"s\":\"caf\\u00e9 \\\"q\\\"\"}}",
		           i ? "," : "", prefix, i, i % 5, i);
	buf_printf(&b, "]}");
	const char *h[] = { w->auth, "Content-Type: application/json", NULL };
	struct it_resp r;
	it_http(&r, "POST", it_fmt("%s/v1/events", base), h, b.p, b.len);
	ck_assert_msg(r.status == 201 || r.status == 200, "POST /v1/events: %ld %.300s", r.status, r.body);
	it_resp_free(&r);
	buf_free(&b);
}

struct writer {
	const char *base;
	const struct who *w;
	int id, requests, per;
	pthread_t th;
};

static void *writer_main(void *arg)
{
	struct writer *x = arg;
	for (int i = 0; i < x->requests; i++)
		post(x->base, x->w, it_fmt("w%d-r%d", x->id, i), x->per);
	return NULL;
}

/* A second data plane of the stack's region on the same database. */
static void second_dp(const struct it_stack *s, struct it_proc *p, char *url, size_t len)
{
	const char *env[16];
	char cache[700], bin[1024];
	int n = 0;
	snprintf(cache, sizeof cache, "DP_CACHE_DIR=%s/log-dp2-%d", it_env("IT_LOG_DIR"), (int)getpid());
	for (int i = 0; i < 8; i++)
		if (s->dp_base[i][0] && strncmp(s->dp_base[i], "DP_CACHE_DIR=", 13) &&
		    strncmp(s->dp_base[i], "DP_INSTANCE=", 12))
			env[n++] = s->dp_base[i];
	env[n++] = cache;
	env[n++] = "DP_INSTANCE=it-log-2";
	env[n++] = "DP_LOG_INTERVAL=100ms";
	env[n] = NULL;
	it_bin("data-plane", bin, sizeof bin);
	char *argv[] = { bin, NULL };
	it_spawn(p, "data-plane-2", argv, env);
	int port = it_wait_port(p, 60000);
	snprintf(url, len, "http://127.0.0.1:%d", port);
	long deadline = it_now_ms() + 60000;
	for (;;) {
		struct it_resp r;
		it_http(&r, "GET", it_fmt("%s/readyz", url), NULL, NULL, 0);
		long st = r.status;
		it_resp_free(&r);
		if (st == 200)
			break;
		ck_assert_msg(it_now_ms() < deadline, "the second data plane never became ready");
		usleep(50 * 1000);
	}
}

static long long tree_size(const struct it_stack *s, const char *tenant)
{
	char *v = it_sql(s->dp_db, it_fmt("SELECT coalesce((SELECT tree_size FROM log_heads WHERE tenant_id = '%s'), 0)",
	                                  tenant));
	long long n = v ? atoll(v) : -1;
	free(v);
	return n;
}

/* Waits until the tenant's log holds every event of the tenant. */
static long long wait_appended(const struct it_stack *s, const char *tenant)
{
	long deadline = it_now_ms() + APPEND_DEADLINE_MS;
	for (;;) {
		long long events = sqll(s->dp_db, it_fmt("SELECT count(*) FROM events WHERE tenant_id = '%s'", tenant));
		long long size = tree_size(s, tenant);
		if (size == events)
			return size;
		if (it_now_ms() >= deadline) {
			char *act = it_sql(s->dp_db, "SELECT string_agg(coalesce(state, '') || ':' || coalesce(wait_event_type, '')"
			                             " || ':' || coalesce(wait_event, '') || ':' || left(query, 120), ' | ')"
			                             " FROM pg_stat_activity WHERE datname = current_database()");
			ck_assert_msg(0, "the log of %s holds %lld leaves of %lld events (sessions: %s)", tenant, size, events,
			              act ? act : "?");
		}
		usleep(50 * 1000);
	}
}

/* ---- RFC 9162, written from the RFC ---- */

typedef unsigned char hash32[32];

static void sha256_2(const void *a, size_t alen, const void *b, size_t blen, const void *c, size_t clen,
                     hash32 out)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int n = 0;
	ck_assert(md != NULL);
	ck_assert_int_eq(EVP_DigestInit_ex(md, EVP_sha256(), NULL), 1);
	EVP_DigestUpdate(md, a, alen);
	EVP_DigestUpdate(md, b, blen);
	EVP_DigestUpdate(md, c, clen);
	ck_assert_int_eq(EVP_DigestFinal_ex(md, out, &n), 1);
	EVP_MD_CTX_free(md);
}

static void leaf_of(const char *body, size_t len, hash32 out)
{
	static const unsigned char zero = 0;
	sha256_2(&zero, 1, body, len, "", 0, out);
}

/* MTH(D[0:n]) of RFC 9162 2.1.1: split at the largest power of two below n. */
static void mth(const hash32 *leaves, size_t n, hash32 out)
{
	static const unsigned char one = 1;
	if (n == 1) {
		memcpy(out, leaves[0], 32);
		return;
	}
	size_t k = 1;
	while (k * 2 < n)
		k *= 2;
	hash32 l, r;
	mth(leaves, k, l);
	mth(leaves + k, n - k, r);
	sha256_2(&one, 1, l, 32, r, 32, out);
}

static void unhex32(const char *s, hash32 out)
{
	ck_assert_int_eq((int)strlen(s), 64);
	for (int i = 0; i < 32; i++) {
		unsigned v;
		ck_assert_int_eq(sscanf(s + 2 * i, "%2x", &v), 1);
		out[i] = (unsigned char)v;
	}
}

/* The leaves as stored: event ids ("" when removed) and hashes. */
struct leaves {
	size_t n;
	char (*ids)[130];
	hash32 *h;
	int *removed;
};

static void leaves_load(const struct it_stack *s, const char *tenant, struct leaves *L)
{
	PGconn *pg = PQconnectdb(s->dp_db);
	ck_assert_int_eq(PQstatus(pg), CONNECTION_OK);
	const char *p[1] = { tenant };
	PGresult *r = PQexecParams(pg,
	                           "SELECT leaf_index, coalesce(event_id, ''), encode(leaf_hash, 'hex'), removed_at IS NOT NULL"
	                           "  FROM log_leaves WHERE tenant_id = $1::uuid ORDER BY leaf_index",
	                           1, NULL, p, NULL, NULL, 0);
	ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
	L->n = (size_t)PQntuples(r);
	L->ids = calloc(L->n + 1, sizeof *L->ids);
	L->h = calloc(L->n + 1, sizeof *L->h);
	L->removed = calloc(L->n + 1, sizeof *L->removed);
	for (size_t i = 0; i < L->n; i++) {
		ck_assert_msg(atoll(PQgetvalue(r, (int)i, 0)) == (long long)i, "leaf %zu has index %s: a gap", i,
		              PQgetvalue(r, (int)i, 0));
		snprintf(L->ids[i], sizeof L->ids[i], "%s", PQgetvalue(r, (int)i, 1));
		unhex32(PQgetvalue(r, (int)i, 2), L->h[i]);
		L->removed[i] = PQgetvalue(r, (int)i, 3)[0] == 't';
	}
	PQclear(r);
	PQfinish(pg);
}

static void leaves_free(struct leaves *L)
{
	free(L->ids);
	free(L->h);
	free(L->removed);
}

/* The tenant's feed, whole: its events' ids in feed order. */
static size_t feed_ids(const char *base, const struct who *w, char (**ids)[130])
{
	size_t n = 0, cap = 0;
	char after[200] = "";
	*ids = NULL;
	for (;;) {
		const char *h[] = { w->auth, NULL };
		struct res r;
		res_call(&r, "GET", it_fmt("%s/v1/events/feed?limit=1000%s%s", base, after[0] ? "&after=" : "", after), h,
		         NULL, 0);
		EXPECT(&r, 200);
		json_t *data = json_object_get(r.json, "items");
		size_t k = json_array_size(data);
		for (size_t i = 0; i < k; i++) {
			if (n == cap) {
				cap = cap ? 2 * cap : 256;
				*ids = realloc(*ids, cap * sizeof **ids);
			}
			snprintf((*ids)[n++], sizeof **ids, "%s", it_js(json_array_get(data, i), "id"));
		}
		int more = json_is_true(json_object_get(r.json, "has_more"));
		snprintf(after, sizeof after, "%s", query_enc(it_js(r.json, "next_cursor")));
		res_free(&r);
		if (!more)
			break;
	}
	return n;
}

/* The keys of GET /.well-known/jwks.json. */
static size_t jwks_keys(const char *base, struct jwk keys[8])
{
	json_t *j = NULL;
	ck_assert_int_eq(get_json_auth(it_fmt("%s/.well-known/jwks.json", base), NULL, &j), 200);
	json_t *arr = json_object_get(j, "keys");
	size_t n = 0;
	char err[200];
	for (size_t i = 0; i < json_array_size(arr) && n < 8; i++)
		ck_assert_msg(jwk_from_json(json_array_get(arr, i), &keys[n++], err, sizeof err) == 0, "JWKS key: %s", err);
	ck_assert_msg(n > 0, "the JWK set has no key");
	json_decref(j);
	return n;
}

/* Every stored checkpoint of the tenant verifies with the published keys,
 * is of the tenant and region, and its root is the leaves'. Returns how
 * many there are. */
static long check_checkpoints(const struct it_stack *s, const char *base, const char *tenant,
                              const struct leaves *L)
{
	struct jwk keys[8] = { 0 };
	size_t nk = jwks_keys(base, keys);
	PGconn *pg = PQconnectdb(s->dp_db);
	ck_assert_int_eq(PQstatus(pg), CONNECTION_OK);
	const char *p[1] = { tenant };
	PGresult *r = PQexecParams(pg,
	                           "SELECT tree_size, jws, encode(root_hash, 'hex') FROM log_checkpoints"
	                           " WHERE tenant_id = $1::uuid ORDER BY tree_size",
	                           1, NULL, p, NULL, NULL, 0);
	ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
	long n = PQntuples(r);
	for (int i = 0; i < n; i++) {
		struct checkpoint cp;
		char err[300] = "";
		const char *jws = PQgetvalue(r, i, 1);
		long long size = atoll(PQgetvalue(r, i, 0));
		ck_assert_msg(checkpoint_verify(jws, strlen(jws), keys, nk, &cp, err, sizeof err) == 0,
		              "checkpoint of size %lld does not verify: %s", size, err);
		ck_assert_str_eq(cp.tenant_id, tenant);
		ck_assert_str_eq(cp.region, s->region);
		ck_assert_int_eq(cp.tree_size, size);
		ck_assert_msg(size >= 1 && (size_t)size <= L->n, "checkpoint of size %lld, %zu leaves", size, L->n);
		hash32 root, stored;
		mth(L->h, (size_t)size, root);
		unhex32(PQgetvalue(r, i, 2), stored);
		ck_assert_msg(!memcmp(root, cp.root, 32), "checkpoint of size %lld: not the root of its leaves", size);
		ck_assert_msg(!memcmp(root, stored, 32), "stored root of size %lld: not the root of its leaves", size);
	}
	PQclear(r);
	PQfinish(pg);
	for (size_t i = 0; i < nk; i++)
		jwk_clear(&keys[i]);
	return n;
}

/* The leaves are the feed's events, in feed order, each the hash of what
 * GET /v1/events/{id} answers. */
static void check_leaves_are_feed(const char *base, const struct who *w, const struct leaves *L)
{
	char(*ids)[130];
	size_t n = feed_ids(base, w, &ids);
	ck_assert_msg(n == L->n, "%zu events in the feed, %zu leaves", n, L->n);
	for (size_t i = 0; i < n; i++) {
		ck_assert_msg(!strcmp(ids[i], L->ids[i]), "leaf %zu is event %s, the feed's %zu-th is %s", i, L->ids[i],
		              i, ids[i]);
		const char *h[] = { w->auth, NULL };
		struct it_resp r;
		it_http(&r, "GET", it_fmt("%s/v1/events/%s", base, ids[i]), h, NULL, 0);
		ck_assert_int_eq(r.status, 200);
		hash32 lh;
		leaf_of(r.body, r.len, lh);
		ck_assert_msg(!memcmp(lh, L->h[i], 32), "leaf %zu is not SHA-256(0x00 || the event %s as served)", i,
		              ids[i]);
		it_resp_free(&r);
	}
	free(ids);
}

/* Several clients write through two instances at once: the log holds
 * every event once, in feed order, and every checkpoint verifies; after a
 * restart the same log goes on; retention marks leaves removed and keeps
 * their hashes. */
START_TEST(leaves_follow_the_feed)
{
	struct it_stack s;
	struct who w;
	struct it_proc dp2;
	char url2[64];
	const char *dp_env[] = { "DP_LOG_INTERVAL=100ms", "DP_LOG_BATCH=97", "DP_RETENTION_INTERVAL=1s", NULL };
	it_stack_start(&s, "us", NULL, dp_env);
	log_tenant(&s, &w, "logfeed");
	second_dp(&s, &dp2, url2, sizeof url2);

	struct writer wr[4];
	for (int i = 0; i < 4; i++) {
		wr[i] = (struct writer){ .base = i % 2 ? url2 : s.dp_url, .w = &w, .id = i, .requests = 15, .per = 10 };
		ck_assert_int_eq(pthread_create(&wr[i].th, NULL, writer_main, &wr[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(wr[i].th, NULL);
	ck_assert_int_eq(wait_appended(&s, w.tenant), 600);

	struct leaves L;
	leaves_load(&s, w.tenant, &L);
	check_leaves_are_feed(s.dp_url, &w, &L);
	ck_assert_msg(check_checkpoints(&s, url2, w.tenant, &L) >= 1, "no checkpoint");
	/* The newest checkpoint is of the whole log. */
	ck_assert_int_eq(sqll(s.dp_db, it_fmt("SELECT max(tree_size) FROM log_checkpoints WHERE tenant_id = '%s'",
	                                      w.tenant)),
	                 600);
	leaves_free(&L);
	ck_assert_int_eq(it_stop(&dp2), 0);

	/* A restart continues the log: no leaf twice, none missing. */
	it_stack_dp_restart(&s, dp_env);
	post(s.dp_url, &w, "after-restart", 25);
	ck_assert_int_eq(wait_appended(&s, w.tenant), 625);
	leaves_load(&s, w.tenant, &L);
	check_leaves_are_feed(s.dp_url, &w, &L);
	check_checkpoints(&s, s.dp_url, w.tenant, &L);
	ck_assert_int_eq(sqll(s.dp_db, it_fmt("SELECT count(DISTINCT event_id) FROM log_leaves WHERE tenant_id = '%s'",
	                                      w.tenant)),
	                 625);
	leaves_free(&L);

	/* A backlog (here 60 events committed at once, appended 7 at a time)
	 * is signed once caught up, never in between: a checkpoint of a head
	 * that lags what was committed before it would make a verifier call
	 * the events it does not cover backdated. */
	const char *small_env[] = { "DP_LOG_INTERVAL=100ms", "DP_LOG_BATCH=7", "DP_RETENTION_INTERVAL=1s", NULL };
	it_stack_dp_restart(&s, small_env);
	post(s.dp_url, &w, "backlog", 60);
	ck_assert_int_eq(wait_appended(&s, w.tenant), 685);
	char *sizes = it_sql(s.dp_db, it_fmt("SELECT string_agg(tree_size::text, ',' ORDER BY tree_size)"
	                                     "  FROM log_checkpoints WHERE tenant_id = '%s' AND tree_size > 625",
	                                     w.tenant));
	ck_assert_str_eq(sizes, "685");
	free(sizes);
	leaves_load(&s, w.tenant, &L);
	check_leaves_are_feed(s.dp_url, &w, &L);

	/* Retention: the events of one request fall out of the retention
	 * period (changed here as the clock would); their leaves stay, with
	 * their hashes, marked removed. */
	free(it_sql(s.dp_db, it_fmt("UPDATE events SET occurred_at = now() - interval '400 days'"
	                            " WHERE tenant_id = '%s' AND id LIKE 'w2-r3-%%'",
	                            w.tenant)));
	long deadline = it_now_ms() + APPEND_DEADLINE_MS;
	while (sqll(s.dp_db, it_fmt("SELECT count(*) FROM events WHERE tenant_id = '%s' AND id LIKE 'w2-r3-%%'",
	                            w.tenant)) > 0) {
		ck_assert_msg(it_now_ms() < deadline, "retention never deleted the old events");
		usleep(100 * 1000);
	}
	struct leaves R;
	leaves_load(&s, w.tenant, &R);
	ck_assert_int_eq(R.n, L.n);
	int removed = 0;
	for (size_t i = 0; i < R.n; i++) {
		ck_assert_msg(!memcmp(R.h[i], L.h[i], 32), "leaf %zu changed its hash", i);
		int old = !strncmp(L.ids[i], "w2-r3-", 6);
		ck_assert_msg(R.removed[i] == old && (old ? !R.ids[i][0] : !strcmp(R.ids[i], L.ids[i])),
		              "leaf %zu (event %s): removed %d, event now \"%s\"", i, L.ids[i], R.removed[i], R.ids[i]);
		removed += old;
	}
	ck_assert_int_eq(removed, 10);
	check_checkpoints(&s, s.dp_url, w.tenant, &R);
	leaves_free(&R);
	leaves_free(&L);
	it_stack_stop(&s);
}
END_TEST

/* A tenant whose log head another transaction holds (another instance
 * appending it, here a test's transaction) does not hold up the others;
 * an instance finds at its sweep what other instances committed. The
 * events are committed before the head is locked (a transaction holding
 * a lock holds the feed's horizon back for every tenant), by an instance
 * that keeps no log, and the appender starts after the lock. */
START_TEST(unrelated_tenants_not_serialized)
{
	struct it_stack s;
	struct who a, b, t;
	/* No statement timeout to cut a wait on the held head short. */
	const char *dp_on[] = { "DP_LOG=true", "DP_LOG_INTERVAL=100ms", "DP_LOG_SWEEP_INTERVAL=200ms",
		                    "DP_DB_STATEMENT_TIMEOUT=1h", NULL };
	const char *dp_off[] = { "DP_LOG=false", NULL };
	it_stack_start(&s, "us", NULL, dp_on);
	log_tenant(&s, &a, "loga");
	log_tenant(&s, &b, "logb");
	/* The held tenant is the one a round takes first (by id), so that an
	 * appender that waited on it would never reach the other. */
	if (strcmp(a.tenant, b.tenant) > 0) {
		t = a;
		a = b;
		b = t;
	}
	post(s.dp_url, &a, "first", 3);
	ck_assert_int_eq(wait_appended(&s, a.tenant), 3);

	it_stack_dp_restart(&s, dp_off);
	post(s.dp_url, &a, "held", 5);
	post(s.dp_url, &b, "free", 7);
	PGconn *pg = PQconnectdb(s.dp_db);
	ck_assert_int_eq(PQstatus(pg), CONNECTION_OK);
	PGresult *r = PQexec(pg, it_fmt("BEGIN; SELECT 1 FROM log_heads WHERE tenant_id = '%s' FOR UPDATE", a.tenant));
	ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
	PQclear(r);
	it_stack_dp_restart(&s, dp_on);
	ck_assert_int_eq(wait_appended(&s, b.tenant), 7);
	/* Rounds went by (b's append is one): a's head is still where it was. */
	ck_assert_int_eq(tree_size(&s, a.tenant), 3);
	r = PQexec(pg, "ROLLBACK");
	PQclear(r);
	PQfinish(pg);
	ck_assert_int_eq(wait_appended(&s, a.tenant), 8);
	it_stack_stop(&s);
}
END_TEST

/* The log keys rotate as the control plane's do: a staged key is
 * published before it signs; after the rotation new checkpoints carry the
 * new key, and those signed before still verify with the JWK set. */
START_TEST(key_rotation)
{
	struct it_stack s;
	struct who w;
	char bin[1024], out[4096], dir[700], kid[64];
	snprintf(dir, sizeof dir, "DP_LOG_KEYS_DIR=%s/rot-keys-%d", it_env("IT_LOG_DIR"), (int)getpid());
	it_bin("data-plane", bin, sizeof bin);
	const char *env[] = { dir, NULL };
	char *jwks_argv[] = { bin, "log-jwks", NULL }, *stage_argv[] = { bin, "log-stage-key", NULL },
	     *rotate_argv[] = { bin, "log-rotate-key", NULL };
	ck_assert_int_eq(it_run("log-jwks", jwks_argv, env, out, sizeof out), 0);
	const char *dp_env[] = { dir, "DP_LOG_INTERVAL=100ms", NULL };
	it_stack_start(&s, "us", NULL, dp_env);
	log_tenant(&s, &w, "logrot");
	post(s.dp_url, &w, "before", 4);
	ck_assert_int_eq(wait_appended(&s, w.tenant), 4);
	struct jwk keys[8] = { 0 };
	size_t nk = jwks_keys(s.dp_url, keys);
	ck_assert_int_eq(nk, 1);
	snprintf(kid, sizeof kid, "%s", keys[0].kid);
	jwk_clear(&keys[0]);

	ck_assert_int_eq(it_run("log-stage-key", stage_argv, env, out, sizeof out), 0);
	nk = jwks_keys(s.dp_url, keys);
	ck_assert_int_eq(nk, 2); /* published before it signs */
	for (size_t i = 0; i < nk; i++)
		jwk_clear(&keys[i]);
	ck_assert_int_eq(it_run("log-rotate-key", rotate_argv, env, out, sizeof out), 0);
	post(s.dp_url, &w, "after", 3);
	ck_assert_int_eq(wait_appended(&s, w.tenant), 7);
	char *oldest = it_sql(s.dp_db, it_fmt("SELECT kid FROM log_checkpoints WHERE tenant_id = '%s'"
	                                      " ORDER BY tree_size LIMIT 1", w.tenant));
	ck_assert_str_eq(oldest, kid);
	free(oldest);
	char *newest = it_sql(s.dp_db, it_fmt("SELECT kid FROM log_checkpoints WHERE tenant_id = '%s'"
	                                      " ORDER BY tree_size DESC LIMIT 1", w.tenant));
	ck_assert_str_ne(newest, kid);
	free(newest);
	struct leaves L;
	leaves_load(&s, w.tenant, &L);
	ck_assert_int_ge(check_checkpoints(&s, s.dp_url, w.tenant, &L), 2);
	leaves_free(&L);
	it_stack_stop(&s);
}
END_TEST

/* DP_LOG=false: no log is kept and no key is published (404); DP_LOG on
 * without DP_LOG_KEYS_DIR does not start. */
START_TEST(log_off)
{
	struct it_stack s;
	struct who w;
	char bin[1024], out[4096];
	it_bin("data-plane", bin, sizeof bin);
	char *argv[] = { bin, NULL };
	const char *env[] = { "DP_REGION=us", "DP_DATABASE_URL=postgresql://127.0.0.1:1/x",
		                  "DP_CONTROL_PLANE_URL=http://127.0.0.1:1", "DP_REGION_TOKEN=t",
		                  "DP_TRUST_BUNDLE=/nonexistent", it_fmt("DP_CACHE_DIR=%s/log-off-cache", it_env("IT_LOG_DIR")),
		                  "DP_LOG_KEYS_DIR=", NULL };
	ck_assert_int_eq(it_run("dp-no-log-keys", argv, env, out, sizeof out), 2);
	ck_assert_msg(strstr(out, "DP_LOG_KEYS_DIR") && strstr(out, "DP_LOG"), "%s", out);

	const char *dp_env[] = { "DP_LOG=false", "DP_LOG_INTERVAL=10ms", "DP_LOG_SWEEP_INTERVAL=100ms", NULL };
	it_stack_start(&s, "us", NULL, dp_env);
	log_tenant(&s, &w, "logoff");
	post(s.dp_url, &w, "off", 5);
	struct res r;
	res_call(&r, "GET", it_fmt("%s/.well-known/jwks.json", s.dp_url), NULL, NULL, 0);
	EXPECT_PROBLEM(&r, 404, "not_found", NULL);
	res_free(&r);
	/* A log on would have appended within a few of its 10 ms rounds and
	 * its 100 ms sweeps. */
	usleep(500 * 1000);
	ck_assert_int_eq(sqll(s.dp_db, "SELECT count(*) FROM log_heads"), 0);
	ck_assert_int_eq(sqll(s.dp_db, "SELECT count(*) FROM log_leaves"), 0);
	it_stack_stop(&s);
}
END_TEST

Suite *log_suite(void)
{
	Suite *s = suite_create("log");
	const TTest *const tests[] = {
		leaves_follow_the_feed,
		unrelated_tenants_not_serialized,
		key_rotation,
		log_off,
	};
	it_add_tests(s, tests, sizeof tests / sizeof tests[0], NULL, NULL, 300);
	return s;
}
