/* Tenant moves on the data planes, from outside (suite moves-dp): two
 * cells' data planes (DP_CELL us-east-1 and us-west-2, each its own
 * database), a fake control plane serving their documents, and move
 * credentials signed here with the key the data planes trust. What the
 * mover agent relies on: only a credential of this move, at the right cell,
 * opens a move route; a copied row keeps its id, content hash, tx_id and
 * seq; a page posted again changes nothing; the digests of both sides
 * agree; from the fence's commit no write of the tenant is stored at the
 * source, and every write acknowledged before it is copied; after the flip
 * retries are replays, usage is billed once, a feed cursor of the source
 * continues at the target; the old region sends a moved key on and the new
 * one serves its alias; each copy is erased only when it may be. */
#include <jansson.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../../data-plane/dpdb.h"
#include "buf.h"
#include "cfgdoc.h"
#include "fixtures.h"
#include "it.h"
#include "jwk.h"
#include "keyset.h"
#include "movecred.h"
#include "secret.h"

#define CELL_A "us-east-1"
#define CELL_B "us-west-2"
#define TOKEN_A "cct_us-east-1_it0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
#define TOKEN_B "cct_us-west-2_it0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
#define T "30000000-0000-4000-8000-000000000001"       /* the tenant that moves */
#define T_OTHER "30000000-0000-4000-8000-000000000002" /* stays in cell A */
#define K "d00000000000000000000001"
#define K_OTHER "d00000000000000000000002"
#define SEC "4444444444444444444444444444444444444444444444444444444444444444"
#define KEY "us_" K "_" SEC
#define KEY_OTHER "us_" K_OTHER "_" SEC
#define MOVE "40000000-0000-4000-8000-000000000001"
#define MOVE2 "40000000-0000-4000-8000-000000000002"
#define ISS "celltrail-control-plane"

static struct jwk signer, stranger;
static char dir[512], trust_path[600];

/* ---- documents ---- */

/* Cell `cell`'s document of version `ver`: T (key K) when `with_t`,
 * T_OTHER (key K_OTHER) when `with_other`, and the claim `moved` when not
 * NULL. */
static char *sign_doc(const char *cell, long ver, int with_t, int with_other, const char *moved)
{
	int64_t now = (int64_t)time(NULL);
	struct buf b = { 0 };
	unsigned char h[32];
	char aud[80];
	secret_sha256(SEC, strlen(SEC), h);
	if (with_t) {
		ck_assert_int_eq(cfgdoc_add_tenant(&b, T, "mover", "active", "pro"), 0);
		ck_assert_int_eq(cfgdoc_add_key(&b, K, h, 1, 1, 0), 0);
	}
	if (with_other) {
		ck_assert_int_eq(cfgdoc_add_tenant(&b, T_OTHER, "stayer", "active", "pro"), 0);
		ck_assert_int_eq(cfgdoc_add_key(&b, K_OTHER, h, 1, 1, 0), 0);
	}
	char *tenants = b.p ? buf_take(&b) : strdup("");
	snprintf(aud, sizeof aud, CFGDOC_AUD_CELL "%s", cell);
	json_t *c = json_pack("{ss ss sI sI sI ss sI si ss s{ss ss ss ss si} s[[sss][sss]] s{s[iiii]}"
	                      " s{ss ss ss ss}}",
	                      "iss", ISS, "aud", aud, "iat", (json_int_t)now, "nbf", (json_int_t)now, "exp",
	                      (json_int_t)(now + 3600), "jti", "it", "ver", (json_int_t)ver, "fmt", 1, "kind", "full",
	                      "region", "name", "us", "display_name", "US", "endpoint_url", "https://us.example.test",
	                      "status", "active", "wave", 1, "directory", "us", "https://us.example.test", "active",
	                      "eu", "https://eu.example.test", "active", "plans", "pro", 100000, 100000, 1000000,
	                      30, "cell", "name", cell, "region", "us", "kind", "shared", "status", "active");
	ck_assert_ptr_nonnull(c);
	if (moved)
		json_object_set_new(c, "moved", json_string(moved));
	char *tok = cfgdoc_sign(&signer, c, tenants);
	ck_assert_ptr_nonnull(tok);
	json_decref(c);
	free(tenants);
	return tok;
}

/* ---- a fake control plane: both cells' documents, usage taken ---- */

struct fcp {
	struct fake_srv srv;
	pthread_mutex_t mu;
	char *doc[2];
	long ver[2];
	int64_t usage_events[2];  /* events of T reported by cell A, B */
	char *keyset;             /* GET /v1/signing-keys (NULL: 404) */
	int keyset_gets;
};

static void fcp_handle(struct fake_srv *s, int fd, const char *req)
{
	struct fcp *cp = s->ctx;
	char method[16], path[300], inm[64], auth[300];
	const char *body = strstr(req, "\r\n\r\n") + 4;
	sscanf(req, "%15s %299s", method, path);
	fake_header(req, "If-None-Match", inm, sizeof inm);
	fake_header(req, "Authorization", auth, sizeof auth);
	int i = strstr(path, "/v1/cells/" CELL_A "/config?") == path   ? 0
	        : strstr(path, "/v1/cells/" CELL_B "/config?") == path ? 1
	                                                                : -1;
	if (!strcmp(method, "GET") && i >= 0) {
		char etag[40];
		pthread_mutex_lock(&cp->mu);
		snprintf(etag, sizeof etag, "\"%ld\"", cp->ver[i]);
		char *tok = cp->doc[i] ? strdup(cp->doc[i]) : NULL;
		pthread_mutex_unlock(&cp->mu);
		if (tok && strcmp(inm, etag))
			fake_respond(fd, 200, "application/jwt", tok);
		else
			fake_nothing_newer(&cp->srv, fd, tok != NULL);
		free(tok);
	} else if (!strcmp(method, "GET") && !strcmp(path, "/v1/signing-keys")) {
		pthread_mutex_lock(&cp->mu);
		cp->keyset_gets++;
		char *ks = cp->keyset ? strdup(cp->keyset) : NULL;
		pthread_mutex_unlock(&cp->mu);
		if (ks)
			fake_respond(fd, 200, "application/jose+json", ks);
		else
			fake_respond(fd, 404, "application/problem+json", "{\"code\":\"not_found\"}");
		free(ks);
	} else if (!strcmp(method, "POST") && !strcmp(path, "/v1/usage")) {
		json_t *v = json_loads(body, 0, NULL), *rec;
		size_t k;
		int cell = strstr(auth, TOKEN_B) ? 1 : 0;
		pthread_mutex_lock(&cp->mu);
		json_array_foreach(json_object_get(v, "records"), k, rec)
			if (!strcmp(json_string_value(json_object_get(rec, "tenant")) ?: "", T))
				cp->usage_events[cell] += json_integer_value(json_object_get(rec, "events"));
		pthread_mutex_unlock(&cp->mu);
		json_decref(v);
		fake_respond(fd, 200, "application/json", "{}");
	} else if (!strcmp(method, "POST")) {
		fake_respond(fd, 200, "application/json", "{}");
	} else {
		fake_respond(fd, 404, "application/problem+json", "{\"code\":\"not_found\"}");
	}
}

static void fcp_set(struct fcp *cp, int i, char *doc, long ver)
{
	pthread_mutex_lock(&cp->mu);
	free(cp->doc[i]);
	cp->doc[i] = doc;
	cp->ver[i] = ver;
	pthread_mutex_unlock(&cp->mu);
}

static int fcp_keyset_gets(struct fcp *cp)
{
	pthread_mutex_lock(&cp->mu);
	int n = cp->keyset_gets;
	pthread_mutex_unlock(&cp->mu);
	return n;
}

static int64_t fcp_usage(struct fcp *cp, int i)
{
	pthread_mutex_lock(&cp->mu);
	int64_t n = cp->usage_events[i];
	pthread_mutex_unlock(&cp->mu);
	return n;
}

/* ---- the two cells ---- */

struct dp {
	struct it_proc p;
	int port;
	char db[512];
	const char *cell;
};

static void start_dp(struct dp *d, const char *cell, const char *token, const char *cp_url)
{
	char e_db[600], e_cp[300], e_trust[700], e_cache[700], e_cell[100], e_tok[200], e_inst[100], bin[1024];
	snprintf(e_db, sizeof e_db, "DP_DATABASE_URL=%s", d->db);
	snprintf(e_cp, sizeof e_cp, "DP_CONTROL_PLANE_URL=%s", cp_url);
	snprintf(e_trust, sizeof e_trust, "DP_TRUST_BUNDLE=%s", trust_path);
	snprintf(e_cache, sizeof e_cache, "DP_CACHE_DIR=%s/cache-%s", dir, cell);
	snprintf(e_cell, sizeof e_cell, "DP_CELL=%s", cell);
	snprintf(e_tok, sizeof e_tok, "DP_CELL_TOKEN=%s", token);
	snprintf(e_inst, sizeof e_inst, "DP_INSTANCE=it-%s", cell);
	const char *const env[] = { e_db, e_cp, e_trust, e_cache, e_cell, e_tok, e_inst, "DP_REGION=us",
		                        "DP_LISTEN=127.0.0.1:0", "DP_ACCESS_LOG=false", "DP_USAGE_REPORT_INTERVAL=200ms",
		                        "DP_ERASURE_BATCH=100", "DP_KEYSET_INTERVAL=1h", NULL };
	d->cell = cell;
	it_bin("data-plane", bin, sizeof bin);
	char *argv[] = { bin, NULL };
	it_spawn(&d->p, it_fmt("data-plane-%s", cell), argv, env);
	d->port = it_wait_port(&d->p, 60000);
}

static long readyz_version(const struct dp *d)
{
	json_t *v = NULL;
	get_json_auth(it_fmt("http://127.0.0.1:%d/readyz", d->port), NULL, &v);
	long ver = (long)json_integer_value(json_object_get(v, "config_version"));
	json_decref(v);
	return ver;
}

static void wait_version(const struct dp *d, long ver)
{
	long deadline = it_now_ms() + 15000;
	while (readyz_version(d) != ver) {
		ck_assert_msg(it_now_ms() < deadline, "cell %s did not apply version %ld", d->cell, ver);
		usleep(50000);
	}
}

struct env {
	struct fcp cp;
	char cp_url[100];
	struct dp a, b;
};

/* Both cells with their databases; T and T_OTHER live in cell A. */
static void env_start(struct env *e)
{
	memset(e, 0, sizeof *e);
	pthread_mutex_init(&e->cp.mu, NULL);
	fake_srv_start(&e->cp.srv, fcp_handle, &e->cp);
	snprintf(e->cp_url, sizeof e->cp_url, "http://127.0.0.1:%d", e->cp.srv.port);
	dp_region_db(it_fmt("it_moves_a_%d", (int)getpid()), e->a.db, sizeof e->a.db);
	dp_region_db(it_fmt("it_moves_b_%d", (int)getpid()), e->b.db, sizeof e->b.db);
	fcp_set(&e->cp, 0, sign_doc(CELL_A, 1, 1, 1, NULL), 1);
	fcp_set(&e->cp, 1, sign_doc(CELL_B, 1, 0, 0, NULL), 1);
	start_dp(&e->a, CELL_A, TOKEN_A, e->cp_url);
	start_dp(&e->b, CELL_B, TOKEN_B, e->cp_url);
	wait_version(&e->a, 1);
	wait_version(&e->b, 1);
}

static void env_stop(struct env *e)
{
	ck_assert_int_eq(it_stop(&e->a.p), 0);
	ck_assert_int_eq(it_stop(&e->b.p), 0);
	fake_srv_stop(&e->cp.srv);
	free(e->cp.doc[0]);
	free(e->cp.doc[1]);
	free(e->cp.keyset);
	pthread_mutex_destroy(&e->cp.mu);
}

static void setup(void)
{
	static int seq;
	snprintf(dir, sizeof dir, "%s/moves-%d-%d", it_env("IT_LOG_DIR"), (int)getpid(), seq++);
	ck_assert_int_eq(mkdir(dir, 0755), 0);
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

/* ---- credentials and calls ---- */

/* A credential of `move` for T from cell A to cell B, signed by `key`,
 * valid from iat = now + `iat_off` to now + `exp_off`. */
static char *cred_ex(const struct jwk *key, const char *move, int64_t erase_after, int64_t iat_off,
                     int64_t exp_off)
{
	int64_t now = (int64_t)time(NULL);
	struct movecred m = { .erase_after = erase_after, .iat = now + iat_off, .exp = now + exp_off };
	snprintf(m.id, sizeof m.id, "%s", move);
	snprintf(m.tenant, sizeof m.tenant, "%s", T);
	snprintf(m.from_region, sizeof m.from_region, "us");
	snprintf(m.from_cell, sizeof m.from_cell, CELL_A);
	snprintf(m.to_region, sizeof m.to_region, "us");
	snprintf(m.to_cell, sizeof m.to_cell, CELL_B);
	char *tok = movecred_sign(key, ISS, &m);
	ck_assert_ptr_nonnull(tok);
	return tok;
}

static char *cred(int64_t erase_after)
{
	return cred_ex(&signer, MOVE, erase_after, 0, 600);
}

/* A move route of `d` with credential `tok` (NULL: no Authorization). */
static void mv(struct res *r, const struct dp *d, const char *method, const char *path, const char *tok,
               const char *body)
{
	char auth[MOVECRED_MAX_BYTES + 40];
	const char *h[3] = { NULL, NULL, NULL };
	int n = 0;
	if (tok) {
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok);
		h[n++] = auth;
	}
	if (body)
		h[n++] = "Content-Type: application/json";
	res_call(r, method, it_fmt("http://127.0.0.1:%d%s", d->port, path), h, body, body ? strlen(body) : 0);
}

/* POST /v1/events with `key` (and Idempotency-Key `ik` unless NULL). */
static void post_ev(struct res *r, const struct dp *d, const char *key, const char *body, const char *ik)
{
	char auth[300], idem[300];
	const char *h[4] = { "Content-Type: application/json", auth, NULL, NULL };
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
	if (ik) {
		snprintf(idem, sizeof idem, "Idempotency-Key: %s", ik);
		h[2] = idem;
	}
	res_call(r, "POST", it_fmt("http://127.0.0.1:%d/v1/events", d->port), h, body, strlen(body));
}

static const char *ev(const char *id, const char *actor)
{
	if (id)
		return it_fmt("{\"id\":\"%s\",\"action\":\"doc.edit\",\"actor\":{\"id\":\"%s\",\"type\":\"user\"}}", id, actor);
	return it_fmt("{\"action\":\"doc.edit\",\"actor\":{\"id\":\"%s\",\"type\":\"user\"}}", actor);
}

static long long metric(const struct dp *d, const char *series)
{
	struct it_resp r;
	char want[256];
	it_http(&r, "GET", it_fmt("http://127.0.0.1:%d/metrics", d->port), NULL, NULL, 0);
	ck_assert_int_eq(r.status, 200);
	snprintf(want, sizeof want, "\n%s ", series);
	const char *at = strstr(r.body, want);
	ck_assert_msg(at, "no metric %s", series);
	long long v = atoll(at + strlen(want));
	it_resp_free(&r);
	return v;
}

/* T's rows of a database as "id:sha:tx_id:seq" in feed order. */
static char *rows_of(const char *db, const char *where)
{
	char *s = it_sql(db, it_fmt("SELECT coalesce(string_agg(id || ':' || encode(content_sha256, 'hex') || ':' ||"
	                            " tx_id || ':' || seq, ',' ORDER BY tx_id, seq), '') FROM events"
	                            " WHERE tenant_id = '" T "' %s",
	                            where));
	ck_assert_ptr_nonnull(s);
	return s;
}

/* Copies pages of at most `limit` rows from A to B from position `pos`
 * until a page has no `more` and (when `fence` is given) its horizon is
 * above it; returns the rows inserted, `pos` moved on. Every answer is
 * checked: a page's `next` is the target's progress. */
static long copy(struct env *e, const char *tok, char pos[48], int limit, const char *fence)
{
	long total = 0;
	for (int pages = 0;; pages++) {
		struct res g, p;
		ck_assert_msg(pages < 10000, "the copy does not end");
		mv(&g, &e->a, "GET", it_fmt("/v1/moves/" MOVE "/events?after=%s&limit=%d", pos, limit), tok, NULL);
		EXPECT(&g, 200);
		char *page = json_dumps(g.json, JSON_COMPACT);
		int more = json_is_true(json_object_get(g.json, "more"));
		const char *next = it_js(g.json, "next");
		unsigned long long horizon = strtoull(it_js(g.json, "horizon"), NULL, 10);
		size_t n = json_array_size(json_object_get(g.json, "events"));
		ck_assert_uint_le(n, (size_t)limit);
		ck_assert(!more || n == (size_t)limit);
		/* As is: the page's text, not rebuilt. */
		mv(&p, &e->b, "POST", "/v1/moves/" MOVE "/events", tok, g.raw.body);
		EXPECT(&p, 200);
		ck_assert_str_eq(it_js(p.json, "next"), next);
		total += (long)json_integer_value(json_object_get(p.json, "inserted"));
		snprintf(pos, 48, "%s", next);
		free(page);
		int done = !more && (!fence || horizon > strtoull(fence, NULL, 10));
		res_free(&g);
		res_free(&p);
		if (done)
			return total;
	}
}

/* One post of a page, for posts at once. */
struct poster {
	const struct dp *d;
	const char *tok, *page;
	long status;
	long long inserted;
};

static void *poster_main(void *arg)
{
	struct poster *p = arg;
	struct res r;
	mv(&r, p->d, "POST", "/v1/moves/" MOVE "/events", p->tok, p->page);
	p->status = r.status;
	p->inserted = json_integer_value(json_object_get(r.json, "inserted"));
	res_free(&r);
	return NULL;
}

/* ---- moves-dp ---- */

/* Only a credential of this move opens its routes, at its cells: each
 * refusal against a reference (no or junk credential, another move's,
 * another signer's, expired, not yet valid, the source's routes at the
 * target and the other way round); and every limit at both ends: limit 1
 * and 5000 (0 and 5001: 400), a page of 5000 rows stored and of 5001
 * refused whole, a body over 64 MiB 413, and a body that is not a page 400
 * or 415, never 500. A fence lifted lets writes in again; the target's copy
 * of a move that stops is erased while the tenant is not served there. */
START_TEST(credentials_and_limits)
{
	struct env e;
	struct res r;
	env_start(&e);
	/* 5,001 rows of T straight into cell A, as the ingest stores them. */
	it_sql(e.a.db, "INSERT INTO events (tenant_id, id, occurred_at, received_at, action, actor_id,"
	               " content_sha256, body)"
	               " SELECT '" T "', 'r' || g, now(), now(), 'doc.edit', 'u', sha256(('r' || g)::bytea),"
	               "        json_build_object('id', 'r' || g, 'action', 'doc.edit')"
	               "   FROM generate_series(1, 5001) AS g");

	char *good = cred(0);
	char *other_move = cred_ex(&signer, MOVE2, 0, 0, 600);
	char *foreign = cred_ex(&stranger, MOVE, 0, 0, 600);
	char *expired = cred_ex(&signer, MOVE, 0, -1200, -600);
	char *early = cred_ex(&signer, MOVE, 0, 600, 1200);
	const char *src = "/v1/moves/" MOVE "/events?limit=1";
	struct {
		const struct dp *d;
		const char *method, *path, *tok;
		long status;
		const char *code;
	} cases[] = {
		{ &e.a, "GET", src, NULL, 401, "unauthorized" },
		{ &e.a, "GET", src, "not-a-jws", 401, "unauthorized" },
		{ &e.a, "GET", src, "a.b.c", 401, "unauthorized" },
		{ &e.a, "GET", src, foreign, 401, "unauthorized" },
		{ &e.a, "GET", src, expired, 401, "unauthorized" },
		{ &e.a, "GET", src, early, 401, "unauthorized" },
		{ &e.a, "GET", src, other_move, 403, "forbidden" },
		{ &e.a, "GET", "/v1/moves/not-a-uuid/events", good, 401, "unauthorized" },
		{ &e.b, "GET", src, good, 403, "forbidden" },                          /* source route at the target */
		{ &e.b, "POST", "/v1/moves/" MOVE "/fence", good, 403, "forbidden" },
		{ &e.b, "GET", "/v1/moves/" MOVE "/digest", good, 403, "forbidden" },
		{ &e.b, "GET", "/v1/moves/" MOVE "/records", good, 403, "forbidden" },
		{ &e.a, "GET", "/v1/moves/" MOVE "/progress", good, 403, "forbidden" }, /* target route at the source */
		{ &e.a, "POST", "/v1/moves/" MOVE "/records", good, 403, "forbidden" },
		{ &e.a, "GET", src, good, 200, NULL },
		{ &e.b, "GET", "/v1/moves/" MOVE "/progress", good, 200, NULL },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		mv(&r, cases[i].d, cases[i].method, cases[i].path, cases[i].tok,
		   !strcmp(cases[i].method, "POST") ? "{}" : NULL);
		ck_assert_msg(r.status == cases[i].status, "case %zu: %s %s: %ld, want %ld: %s", i, cases[i].method,
		              cases[i].path, r.status, cases[i].status, r.raw.body);
		if (cases[i].code)
			EXPECT_PROBLEM_SOME(&r, cases[i].status, cases[i].code, NULL);
		res_free(&r);
	}
	/* A data plane that serves no cell serves no move. */
	{
		struct dp none = { 0 };
		char e_db[600], e_cp[300], e_trust[700], e_cache[700], bin[1024];
		snprintf(none.db, sizeof none.db, "%s", e.a.db);
		snprintf(e_db, sizeof e_db, "DP_DATABASE_URL=%s", none.db);
		snprintf(e_cp, sizeof e_cp, "DP_CONTROL_PLANE_URL=%s", e.cp_url);
		snprintf(e_trust, sizeof e_trust, "DP_TRUST_BUNDLE=%s", trust_path);
		snprintf(e_cache, sizeof e_cache, "DP_CACHE_DIR=%s/cache-none", dir);
		const char *const env[] = { e_db, e_cp, e_trust, e_cache, "DP_REGION=us", "DP_REGION_TOKEN=it-region-token-0123456789",
			                        "DP_LISTEN=127.0.0.1:0", "DP_ACCESS_LOG=false", "DP_INSTANCE=it-none", NULL };
		it_bin("data-plane", bin, sizeof bin);
		char *argv[] = { bin, NULL };
		it_spawn(&none.p, "data-plane-none", argv, env);
		none.port = it_wait_port(&none.p, 60000);
		mv(&r, &none, "GET", src, good, NULL);
		EXPECT_PROBLEM_SOME(&r, 403, "forbidden", NULL);
		res_free(&r);
		ck_assert_int_eq(it_stop(&none.p), 0);
	}
	/* Progress before any page. */
	mv(&r, &e.b, "GET", "/v1/moves/" MOVE "/progress", good, NULL);
	ck_assert_str_eq(it_js(r.json, "next"), "0.0");
	ck_assert_str_eq(it_js(r.json, "digest"), "0");
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "events")), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "stored")), 0);
	res_free(&r);

	/* limit and after at both ends. */
	static const struct {
		const char *query;
		long status;
		int rows;
	} q[] = {
		{ "limit=0", 400, 0 },      { "limit=5001", 400, 0 },  { "limit=-1", 400, 0 },
		{ "limit=x", 400, 0 },      { "limit=1", 200, 1 },     { "limit=5000", 200, 5000 },
		{ "", 200, 1000 },          { "after=1", 400, 0 },     { "after=1.", 400, 0 },
		{ "after=.1", 400, 0 },     { "after=1.2.3", 400, 0 }, { "after=0.0&limit=2", 200, 2 },
		{ "after=99999999999999999999.0", 400, 0 },           { "other=1", 400, 0 },
	};
	for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
		mv(&r, &e.a, "GET", it_fmt("/v1/moves/" MOVE "/events?%s", q[i].query), good, NULL);
		ck_assert_msg(r.status == q[i].status, "?%s: %ld: %.300s", q[i].query, r.status, r.raw.body);
		if (r.status == 200)
			ck_assert_int_eq(json_array_size(json_object_get(r.json, "events")), q[i].rows);
		else
			EXPECT_PROBLEM_SOME(&r, 400, "validation_failed", NULL);
		res_free(&r);
	}

	/* Every move route refuses a query parameter it does not declare,
	 * with a credential it accepts (the listing of all routes in
	 * test_queries.c has no data plane of a cell to ask). */
	static const struct {
		int target;
		const char *method, *path;
	} undeclared[] = {
		{ 0, "GET", "events" },  { 0, "GET", "digest" },     { 0, "GET", "records" },
		{ 0, "POST", "fence" },  { 0, "DELETE", "fence" },   { 1, "POST", "events" },
		{ 1, "POST", "records" }, { 1, "GET", "progress" },  { 0, "POST", "erase" },
	};
	for (size_t i = 0; i < sizeof undeclared / sizeof undeclared[0]; i++) {
		mv(&r, undeclared[i].target ? &e.b : &e.a, undeclared[i].method,
		   it_fmt("/v1/moves/" MOVE "/%s?zz_undeclared=1", undeclared[i].path), good,
		   !strcmp(undeclared[i].method, "POST") ? "{}" : NULL);
		EXPECT_PROBLEM_SOME(&r, 400, "validation_failed", "zz_undeclared");
		res_free(&r);
	}

	/* A page of 5000 rows is stored; one of 5001 is refused whole. */
	struct res p5000, p1;
	mv(&p5000, &e.a, "GET", "/v1/moves/" MOVE "/events?limit=5000", good, NULL);
	EXPECT(&p5000, 200);
	ck_assert(json_is_true(json_object_get(p5000.json, "more")));
	mv(&p1, &e.a, "GET", it_fmt("/v1/moves/" MOVE "/events?limit=1&after=%s", it_js(p5000.json, "next")), good, NULL);
	EXPECT(&p1, 200);
	ck_assert(!json_is_true(json_object_get(p1.json, "more")));
	json_t *big = json_deep_copy(p5000.json);
	json_array_extend(json_object_get(big, "events"), json_object_get(p1.json, "events"));
	json_object_set(big, "next", json_object_get(p1.json, "next"));
	char *text = json_dumps(big, JSON_COMPACT);
	mv(&r, &e.b, "POST", "/v1/moves/" MOVE "/events", good, text);
	EXPECT_PROBLEM_SOME(&r, 400, "validation_failed", "events");
	res_free(&r);
	free(text);
	json_decref(big);
	ck_assert_int_eq(sqll(e.b.db, "SELECT count(*) FROM events"), 0);
	mv(&r, &e.b, "POST", "/v1/moves/" MOVE "/events", good, p5000.raw.body);
	EXPECT(&r, 200);
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "inserted")), 5000);
	res_free(&r);
	mv(&r, &e.b, "POST", "/v1/moves/" MOVE "/events", good, p1.raw.body);
	EXPECT(&r, 200);
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "inserted")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "events")), 5001);
	res_free(&r);
	res_free(&p5000);
	res_free(&p1);
	ck_assert_int_eq(metric(&e.b, "dp_move_events_copied_total"), 5001);

	/* Bodies that are not pages: 400 (or 415), never 500. */
	static const char *const junk[] = {
		"{}", "[]", "not json", "{\"events\": 5, \"next\": \"0.0\"}", "{\"events\": [], \"next\": \"x\"}",
		"{\"events\": [{\"id\": \"x\"}], \"next\": \"1.1\"}",
		"{\"events\": [{\"id\": \"bad id!\", \"tx_id\": \"1\", \"seq\": 1, \"occurred_at_us\": 1,"
		" \"received_at_us\": 1, \"action\": \"a\", \"actor_id\": \"u\", \"target_ids\": [],"
		" \"content_sha256\": \"00\", \"body\": {}, \"keys\": []}], \"next\": \"1.1\"}",
		"{\"events\": [], \"events\": [], \"next\": \"0.0\"}", "{\"events\": [], \"next\": \"0.0\"} x",
		"{\"next\": \"0.0\"}", "{\"events\": []}", "{\"events\": [], \"next\": 1}",
		"{\"events\": [1, 2], \"next\": \"0.0\"}", "{\"events\": [\"", "{\"events\": [{}], \"next\": \"0.0\"}",
		"{\"events\": [], \"next\": \"0.0\", \"next\": \"9.9\"}",
	};
	for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
		mv(&r, &e.b, "POST", "/v1/moves/" MOVE "/events", good, junk[i]);
		ck_assert_msg(r.status == 400, "%s: %ld %s", junk[i], r.status, r.raw.body);
		res_free(&r);
		mv(&r, &e.b, "POST", "/v1/moves/" MOVE "/records", good, junk[i]);
		ck_assert_msg(r.status == 400, "records %s: %ld %s", junk[i], r.status, r.raw.body);
		res_free(&r);
	}
	{
		struct it_resp raw;
		char auth[MOVECRED_MAX_BYTES + 40];
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", good);
		const char *h[] = { auth, "Content-Type: text/plain", NULL };
		it_http(&raw, "POST", it_fmt("http://127.0.0.1:%d/v1/moves/" MOVE "/events", e.b.port), h, "{}", 2);
		ck_assert_int_eq(raw.status, 415);
		it_resp_free(&raw);
		/* The body limit: 64 MiB, one byte more is 413. */
		size_t n = 64u * 1024 * 1024 + 1;
		char *huge = malloc(n);
		memset(huge, ' ', n);
		const char *hj[] = { auth, "Content-Type: application/json", NULL };
		it_http(&raw, "POST", it_fmt("http://127.0.0.1:%d/v1/moves/" MOVE "/events", e.b.port), hj, huge, n);
		ck_assert_int_eq(raw.status, 413);
		it_resp_free(&raw);
		/* 64 MiB exactly is read (and judged: this one is no page). */
		memcpy(huge + n - 3, "{}", 2);
		it_http(&raw, "POST", it_fmt("http://127.0.0.1:%d/v1/moves/" MOVE "/events", e.b.port), hj, huge, n - 1);
		ck_assert_int_eq(raw.status, 400);
		it_resp_free(&raw);
		free(huge);
	}
	ck_assert_int_eq(sqll(e.b.db, "SELECT count(*) FROM events"), 5001);

	/* A fence refuses T's writes, not T_OTHER's; lifted, T writes again. */
	mv(&r, &e.a, "POST", "/v1/moves/" MOVE "/fence", good, NULL);
	EXPECT(&r, 200);
	res_free(&r);
	post_ev(&r, &e.a, KEY, ev("f1", "u"), NULL);
	EXPECT_PROBLEM_SOME(&r, 503, "tenant_moving", NULL);
	res_free(&r);
	post_ev(&r, &e.a, KEY_OTHER, ev("o1", "u"), NULL);
	EXPECT(&r, 201);
	res_free(&r);
	mv(&r, &e.a, "POST", "/v1/moves/" MOVE2 "/fence", other_move, NULL);
	EXPECT_PROBLEM_SOME(&r, 409, "conflict", NULL);
	res_free(&r);
	mv(&r, &e.a, "DELETE", "/v1/moves/" MOVE "/fence", good, NULL);
	EXPECT(&r, 204);
	res_free(&r);
	post_ev(&r, &e.a, KEY, ev("f1", "u"), NULL);
	EXPECT(&r, 201);
	res_free(&r);

	/* The move stops: the target's copy goes (T is not served there). */
	mv(&r, &e.b, "POST", "/v1/moves/" MOVE "/erase", good, NULL);
	EXPECT(&r, 200);
	long long erased = json_integer_value(json_object_get(r.json, "events_deleted"));
	int done = json_is_true(json_object_get(r.json, "done"));
	res_free(&r);
	for (int i = 0; !done && i < 100; i++) {
		mv(&r, &e.b, "POST", "/v1/moves/" MOVE "/erase", good, NULL);
		EXPECT(&r, 200);
		erased += json_integer_value(json_object_get(r.json, "events_deleted"));
		done = json_is_true(json_object_get(r.json, "done"));
		res_free(&r);
	}
	ck_assert(done);
	ck_assert_int_eq(erased, 5001);
	ck_assert_int_eq(sqll(e.b.db, "SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM move_progress)"), 0);
	ck_assert_int_eq(sqll(e.a.db, "SELECT count(*) FROM events WHERE tenant_id = '" T "'"), 5002);

	/* The same page posted eight times at once (a replaced mover's request
	 * still running): each row stored once, counted once. */
	mv(&r, &e.a, "GET", "/v1/moves/" MOVE "/events?limit=500", good, NULL);
	EXPECT(&r, 200);
	struct poster posts[8];
	for (int i = 0; i < 8; i++)
		posts[i] = (struct poster){ .d = &e.b, .tok = good, .page = r.raw.body };
	run_at_once(posts, sizeof posts[0], 8, poster_main);
	long long ins = 0;
	for (int i = 0; i < 8; i++) {
		ck_assert_int_eq(posts[i].status, 200);
		ins += posts[i].inserted;
	}
	res_free(&r);
	ck_assert_int_eq(ins, 500);
	ck_assert_int_eq(sqll(e.b.db, "SELECT count(*) FROM events"), 500);
	ck_assert_int_eq(sqll(e.b.db, "SELECT events FROM move_progress"), 500);
	free(good);
	free(other_move);
	free(foreign);
	free(expired);
	free(early);
	env_stop(&e);
}
END_TEST

/* Writers of T racing the fence. */
struct writer {
	struct env *e;
	int id;
	atomic_int *stop;
	int n201, n503, nother;
	char ids201[400][32], ids503[400][32];
	int bad_retry;
	long other_status;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	for (int i = 0; !atomic_load(w->stop) && i < 400; i++) {
		char id[32];
		struct res r;
		snprintf(id, sizeof id, "w%d-%d", w->id, i);
		post_ev(&r, &w->e->a, KEY, ev(id, "writer"), NULL);
		char ra[16] = "";
		if (r.status == 201 && w->n201 < 400) {
			snprintf(w->ids201[w->n201++], 32, "%s", id);
		} else if (r.status == 503 && w->n503 < 400) {
			it_header(&r.raw, "Retry-After", ra, sizeof ra);
			if (strcmp(ra, "1") || strcmp(it_js(r.json, "code"), "tenant_moving"))
				w->bad_retry++;
			snprintf(w->ids503[w->n503++], 32, "%s", id);
		} else {
			w->nother++;
			w->other_status = r.status;
		}
		res_free(&r);
		if (w->n503 >= 3)
			break;
	}
	return NULL;
}

struct fencer {
	struct env *e;
	const char *tok;
	atomic_int *stop;
	char fence_tx[32];
};

static void *fencer_main(void *arg)
{
	struct fencer *f = arg;
	struct res r;
	usleep(100000); /* the writers are at work */
	mv(&r, &f->e->a, "POST", "/v1/moves/" MOVE "/fence", f->tok, NULL);
	EXPECT(&r, 200);
	snprintf(f->fence_tx, sizeof f->fence_tx, "%s", it_js(r.json, "fence_tx"));
	res_free(&r);
	return NULL;
}

/* One page of the feed of `d` for KEY: `limit` rows after `after` (NULL:
 * the start); appends their ids to `ids` and returns has_more, the next
 * cursor in `cur`. */
static int feed_page(const struct dp *d, const char *after, int limit, struct buf *ids, char cur[512])
{
	struct res r;
	char auth[300];
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", KEY);
	const char *h[] = { auth, NULL };
	res_call(&r, "GET",
	         it_fmt("http://127.0.0.1:%d/v1/events/feed?limit=%d%s%s", d->port, limit, after ? "&after=" : "",
	                after ? query_enc(after) : ""),
	         h, NULL, 0);
	EXPECT(&r, 200);
	json_t *it;
	size_t i;
	json_array_foreach(json_object_get(r.json, "items"), i, it)
		buf_printf(ids, "%s%s", ids->len ? "," : "", it_js(it, "id"));
	snprintf(cur, 512, "%s", it_js(r.json, "next_cursor"));
	int more = json_is_true(json_object_get(r.json, "has_more"));
	res_free(&r);
	return more;
}

/* The ids of the feed of `d` from cursor `after` to its end, in order. */
static char *feed_ids(const struct dp *d, const char *after)
{
	struct buf b = { 0 };
	char cur[512];
	snprintf(cur, sizeof cur, "%s", after);
	while (feed_page(d, cur, 7, &b, cur))
		;
	return b.p ? buf_take(&b) : strdup("");
}

/* A whole move between the cells, with the control plane's part played
 * here: copy under writes, a page posted again, resume from the target's
 * progress, the fence raced by writers, the drain, digests, records, the
 * flip, then replays, billing, the feed across the move, moved keys and
 * aliases, and the erasure rules of the source. */
START_TEST(move_end_to_end)
{
	struct env e;
	struct res r;
	env_start(&e);
	/* T moved into cell A before, with a feed offset there: its positions
	 * run a million ahead of the cluster's transaction ids (both cells'
	 * databases share them here), so the target must raise its own. */
	free(it_sql(e.a.db, "INSERT INTO tenant_feed_offsets (tenant_id, off) VALUES ('" T "', 1000000)"));

	/* T writes: ids, Idempotency-Keys, a batch without ids; T_OTHER too. */
	for (int i = 1; i <= 10; i++) {
		post_ev(&r, &e.a, KEY, ev(it_fmt("e%d", i), "alice"), i <= 5 ? it_fmt("ik-%d", i) : NULL);
		EXPECT(&r, 201);
		res_free(&r);
	}
	post_ev(&r, &e.a, KEY, it_fmt("{\"events\":[%s,%s,%s]}", ev(NULL, "bob"), ev(NULL, "bob"), ev(NULL, "bob")),
	        "ik-batch");
	EXPECT(&r, 201);
	char *batch_body = json_dumps(r.json, JSON_COMPACT);
	res_free(&r);
	post_ev(&r, &e.a, KEY_OTHER, ev("o1", "carol"), NULL);
	EXPECT(&r, 201);
	res_free(&r);

	/* A feed cursor at the source, after its first 4 events. */
	char c1[512];
	struct buf first4 = { 0 };
	ck_assert(feed_page(&e.a, NULL, 4, &first4, c1));
	ck_assert_str_eq(first4.p, "e1,e2,e3,e4");
	buf_free(&first4);

	char *tok = cred(0);
	char pos[48] = "0.0";
	/* The first page, posted twice: the second inserts nothing and leaves
	 * the progress as it was. */
	struct res g, p1, p2;
	mv(&g, &e.a, "GET", "/v1/moves/" MOVE "/events?limit=5", tok, NULL);
	EXPECT(&g, 200);
	json_t *row0 = json_array_get(json_object_get(g.json, "events"), 0);
	ck_assert_str_eq(it_js(row0, "id"), "e1");
	ck_assert_uint_eq(strlen(it_js(row0, "content_sha256")), 64);
	ck_assert(json_is_object(json_object_get(row0, "body")));
	ck_assert(json_is_array(json_object_get(row0, "keys")));
	mv(&p1, &e.b, "POST", "/v1/moves/" MOVE "/events", tok, g.raw.body);
	EXPECT(&p1, 200);
	ck_assert_int_eq(json_integer_value(json_object_get(p1.json, "inserted")), 5);
	mv(&p2, &e.b, "POST", "/v1/moves/" MOVE "/events", tok, g.raw.body);
	EXPECT(&p2, 200);
	ck_assert_int_eq(json_integer_value(json_object_get(p2.json, "inserted")), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(p2.json, "events")), 5);
	ck_assert_str_eq(it_js(p2.json, "digest"), it_js(p1.json, "digest"));
	ck_assert_str_eq(it_js(p2.json, "next"), it_js(g.json, "next"));
	res_free(&g);
	res_free(&p1);
	res_free(&p2);
	/* A copy that stopped resumes from the target's progress. */
	mv(&r, &e.b, "GET", "/v1/moves/" MOVE "/progress", tok, NULL);
	EXPECT(&r, 200);
	snprintf(pos, sizeof pos, "%s", it_js(r.json, "next"));
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "stored")), 5);
	res_free(&r);
	/* More writes while the copy goes on. */
	post_ev(&r, &e.a, KEY, ev("e11", "alice"), NULL);
	EXPECT(&r, 201);
	res_free(&r);
	copy(&e, tok, pos, 4, NULL);

	/* Part A of the digest, up to here, equals the target's progress. */
	char part_a_pos[48];
	snprintf(part_a_pos, sizeof part_a_pos, "%s", pos);
	mv(&r, &e.a, "GET", it_fmt("/v1/moves/" MOVE "/digest?after=0.0&upto=%s", pos), tok, NULL);
	EXPECT(&r, 200);
	char da[48];
	long long na = json_integer_value(json_object_get(r.json, "events"));
	snprintf(da, sizeof da, "%s", it_js(r.json, "digest"));
	res_free(&r);
	mv(&r, &e.b, "GET", "/v1/moves/" MOVE "/progress", tok, NULL);
	ck_assert_str_eq(it_js(r.json, "digest"), da);
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "events")), na);
	ck_assert_int_eq(na, 14);
	res_free(&r);

	/* The fence, raced by four writers of T: every 201 is at the source
	 * below the fence, every 503 is tenant_moving with Retry-After: 1 and
	 * stored nowhere; nothing else is answered. */
	atomic_int stop = 0;
	struct writer w[4];
	memset(w, 0, sizeof w);
	for (int i = 0; i < 4; i++)
		w[i] = (struct writer){ .e = &e, .id = i, .stop = &stop };
	struct fencer f = { .e = &e, .tok = tok, .stop = &stop };
	pthread_t th[5];
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, writer_main, &w[i]), 0);
	ck_assert_int_eq(pthread_create(&th[4], NULL, fencer_main, &f), 0);
	for (int i = 0; i < 5; i++)
		pthread_join(th[i], NULL);
	ck_assert(f.fence_tx[0]);
	int n201 = 0, n503 = 0;
	for (int i = 0; i < 4; i++) {
		ck_assert_msg(w[i].nother == 0, "writer %d got %ld", i, w[i].other_status);
		ck_assert_int_eq(w[i].bad_retry, 0);
		ck_assert_int_ge(w[i].n503, 3);
		for (int k = 0; k < w[i].n201; k++)
			ck_assert_msg(sqll(e.a.db, it_fmt("SELECT count(*) FROM events WHERE tenant_id = '" T "' AND id = '%s'"
			                                  " AND tx_id <= '%s'::xid8", w[i].ids201[k], f.fence_tx)) == 1,
			              "acknowledged %s is not at the source below the fence", w[i].ids201[k]);
		for (int k = 0; k < w[i].n503; k++)
			ck_assert_int_eq(sqll(e.a.db, it_fmt("SELECT count(*) FROM events WHERE id = '%s'", w[i].ids503[k])), 0);
		n201 += w[i].n201;
		n503 += w[i].n503;
	}
	ck_assert_int_eq(sqll(e.a.db, it_fmt("SELECT count(*) FROM events WHERE tenant_id = '" T "'"
	                                     " AND tx_id > '%s'::xid8", f.fence_tx)), 0);
	ck_assert_int_ge(metric(&e.a, "dp_writes_paused_total"), n503);
	/* The fence again: the same one. A write after it is refused; the
	 * other tenant of the cell writes on; a retry with a key is refused
	 * too and leaves no record. */
	mv(&r, &e.a, "POST", "/v1/moves/" MOVE "/fence", tok, NULL);
	EXPECT(&r, 200);
	ck_assert_str_eq(it_js(r.json, "fence_tx"), f.fence_tx);
	res_free(&r);
	post_ev(&r, &e.a, KEY, ev("late", "alice"), "ik-late");
	EXPECT_PROBLEM_SOME(&r, 503, "tenant_moving", NULL);
	char ra[16] = "";
	it_header(&r.raw, "Retry-After", ra, sizeof ra);
	ck_assert_str_eq(ra, "1");
	res_free(&r);
	post_ev(&r, &e.a, KEY, ev("e1", "alice"), "ik-1");
	EXPECT(&r, 201); /* a key's replay writes nothing: answered */
	ck_assert(replayed(&r));
	res_free(&r);
	ck_assert_int_eq(sqll(e.a.db, "SELECT count(*) FROM idempotency_keys WHERE key = 'ik-late'"), 0);
	ck_assert_int_eq(sqll(e.a.db, "SELECT count(*) FROM events WHERE id = 'late'"), 0);
	post_ev(&r, &e.a, KEY_OTHER, ev("o2", "carol"), NULL);
	EXPECT(&r, 201);
	res_free(&r);

	/* The drain: until a page has no more and its horizon is above the fence. */
	copy(&e, tok, pos, 9, f.fence_tx);
	char *rows_a = rows_of(e.a.db, ""), *rows_b = rows_of(e.b.db, "");
	ck_assert_msg(!strcmp(rows_a, rows_b), "source %s\ntarget %s", rows_a, rows_b);
	free(rows_a);
	free(rows_b);
	long long total = sqll(e.a.db, "SELECT count(*) FROM events WHERE tenant_id = '" T "'");
	ck_assert_int_eq(total, 14 + n201);
	/* Part B from part A's end, added to part A: the target's digest. */
	mv(&r, &e.a, "GET", it_fmt("/v1/moves/" MOVE "/digest?after=%s", part_a_pos), tok, NULL);
	EXPECT(&r, 200);
	long long nb = json_integer_value(json_object_get(r.json, "events"));
	char db_[48];
	snprintf(db_, sizeof db_, "%s", it_js(r.json, "digest"));
	res_free(&r);
	char *sum = it_sql(e.a.db, it_fmt("SELECT (%s::numeric + %s::numeric)::text", da, db_));
	mv(&r, &e.b, "GET", "/v1/moves/" MOVE "/progress", tok, NULL);
	ck_assert_str_eq(it_js(r.json, "digest"), sum);
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "events")), na + nb);
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "stored")), total);
	res_free(&r);
	mv(&r, &e.a, "GET", "/v1/moves/" MOVE "/digest", tok, NULL);
	ck_assert_str_eq(it_js(r.json, "digest"), sum);
	res_free(&r);
	free(sum);

	/* The source's feed from the cursor, to compare with the target's later. */
	char *feed_a = feed_ids(&e.a, c1);

	/* Source erasure is refused while the move is not done. */
	char *tok_erase = cred((int64_t)time(NULL) - 1);
	mv(&r, &e.a, "POST", "/v1/moves/" MOVE "/erase", tok, NULL);
	EXPECT_PROBLEM_SOME(&r, 409, "conflict", NULL);
	res_free(&r);
	mv(&r, &e.a, "POST", "/v1/moves/" MOVE "/erase", tok_erase, NULL);
	EXPECT_PROBLEM_SOME(&r, 409, "conflict", NULL); /* T is still in cell A's document */
	res_free(&r);

	ck_assert_int_gt(sqll(e.a.db, "SELECT min(tx_id)::text::numeric - pg_current_xact_id()::text::numeric"
	                              "  FROM events WHERE tenant_id = '" T "'"), 500000);

	/* Records: the completed Idempotency-Key records and the usage. */
	long t0 = it_now_ms();
	while (sqll(e.a.db, "SELECT coalesce(sum(events - reported), 0) FROM usage_counters WHERE tenant_id = '" T "'") > 0) {
		ck_assert_msg(it_now_ms() - t0 < 15000, "the source's usage is not reported");
		usleep(50000);
	}
	struct res rec;
	mv(&rec, &e.a, "GET", it_fmt("/v1/moves/" MOVE "/records?since_us=%lld", (long long)time(NULL) * 1000000 + 60000000), tok, NULL);
	EXPECT(&rec, 200);
	ck_assert_int_eq(json_array_size(json_object_get(rec.json, "idempotency")), 0);
	res_free(&rec);
	mv(&rec, &e.a, "GET", "/v1/moves/" MOVE "/records?since_us=-1", tok, NULL);
	EXPECT_PROBLEM_SOME(&rec, 400, "validation_failed", "since_us");
	res_free(&rec);
	mv(&rec, &e.a, "GET", "/v1/moves/" MOVE "/digest?upto=1", tok, NULL);
	EXPECT_PROBLEM_SOME(&rec, 400, "validation_failed", "upto");
	res_free(&rec);
	mv(&rec, &e.a, "GET", "/v1/moves/" MOVE "/records?since_us=0", tok, NULL);
	EXPECT(&rec, 200);
	ck_assert_int_eq(json_array_size(json_object_get(rec.json, "idempotency")), 6);
	ck_assert_int_eq(json_array_size(json_object_get(rec.json, "usage")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(json_object_get(rec.json, "usage"), 0), "events")),
	                 total);
	for (int i = 0; i < 2; i++) { /* posted again: the same */
		mv(&r, &e.b, "POST", "/v1/moves/" MOVE "/records", tok, rec.raw.body);
		EXPECT(&r, 200);
		ck_assert_int_eq(json_integer_value(json_object_get(r.json, "idempotency")), i ? 0 : 6);
		ck_assert_int_eq(json_integer_value(json_object_get(r.json, "usage")), 1);
		ck_assert_int_gt(atoll(it_js(r.json, "feed_offset")), 500000);
		res_free(&r);
	}
	res_free(&rec);
	ck_assert_int_eq(sqll(e.b.db, it_fmt("SELECT events FROM usage_counters WHERE tenant_id = '" T "'"
	                                     " AND events = reported")), total);

	/* The flip: T in cell B's document, no longer in A's. */
	fcp_set(&e.cp, 0, sign_doc(CELL_A, 2, 0, 1, NULL), 2);
	fcp_set(&e.cp, 1, sign_doc(CELL_B, 2, 1, 0, NULL), 2);
	wait_version(&e.a, 2);
	wait_version(&e.b, 2);

	/* Retries at the target are replays: by key (the first answer), by id. */
	post_ev(&r, &e.b, KEY, ev("e1", "alice"), "ik-1");
	EXPECT(&r, 201);
	ck_assert(replayed(&r));
	res_free(&r);
	post_ev(&r, &e.b, KEY, it_fmt("{\"events\":[%s,%s,%s]}", ev(NULL, "bob"), ev(NULL, "bob"), ev(NULL, "bob")),
	        "ik-batch");
	EXPECT(&r, 201);
	ck_assert(replayed(&r));
	char *again = json_dumps(r.json, JSON_COMPACT);
	ck_assert_str_eq(again, batch_body);
	free(again);
	res_free(&r);
	post_ev(&r, &e.b, KEY, ev("e7", "alice"), NULL);
	EXPECT(&r, 200);
	ck_assert(replayed(&r));
	res_free(&r);
	ck_assert_int_eq(sqll(e.b.db, "SELECT count(*) FROM events WHERE tenant_id = '" T "'"), total);
	/* The target's log of T is its copied history appended whole once T
	 * is its tenant: no checkpoint signed while pages were arriving (each
	 * would say the log was complete at a moment it was not). */
	t0 = it_now_ms();
	while (sqll(e.b.db, "SELECT coalesce((SELECT tree_size FROM log_heads WHERE tenant_id = '" T "'), 0)") < total) {
		ck_assert_msg(it_now_ms() - t0 < 20000, "the target never appended the copied events to T's log");
		usleep(50000);
	}
	ck_assert_int_eq(sqll(e.b.db, "SELECT min(tree_size) FROM log_checkpoints WHERE tenant_id = '" T "'"), total);
	/* New writes at the target sort after every copied row. */
	for (int i = 1; i <= 3; i++) {
		post_ev(&r, &e.b, KEY, ev(it_fmt("n%d", i), "dave"), NULL);
		EXPECT(&r, 201);
		res_free(&r);
	}
	ck_assert_int_eq(sqll(e.b.db, "SELECT count(*) FROM events WHERE tenant_id = '" T "' AND id LIKE 'n%'"
	                              " AND tx_id <= (SELECT max(tx_id) FROM events WHERE tenant_id = '" T "'"
	                              "               AND id NOT LIKE 'n%')"),
	                 0);
	/* Billed once: the target reports only its own 3 events. */
	t0 = it_now_ms();
	while (fcp_usage(&e.cp, 1) < 3) {
		ck_assert_msg(it_now_ms() - t0 < 15000, "the target's usage is not reported");
		usleep(50000);
	}
	usleep(500000);
	ck_assert_int_eq(fcp_usage(&e.cp, 1), 3);
	ck_assert_int_eq(fcp_usage(&e.cp, 0), total);

	/* The source's cursor continues at the target: nothing missed or repeated. */
	char *feed_b = feed_ids(&e.b, c1);
	char *want = strdup(it_fmt("%s%sn1,n2,n3", feed_a, feed_a[0] ? "," : ""));
	ck_assert_msg(!strcmp(feed_b, want), "target feed %s\nwant %s", feed_b, want);
	free(want);
	free(feed_a);
	free(feed_b);

	/* The target's copy is the tenant's now: not the move's to change. */
	mv(&r, &e.b, "POST", "/v1/moves/" MOVE "/events", tok, "{\"events\":[],\"next\":\"0.0\"}");
	EXPECT_PROBLEM_SOME(&r, 409, "conflict", NULL);
	res_free(&r);
	mv(&r, &e.b, "POST", "/v1/moves/" MOVE "/records", tok, "{\"idempotency\":[],\"usage\":[]}");
	EXPECT_PROBLEM_SOME(&r, 409, "conflict", NULL);
	res_free(&r);
	mv(&r, &e.b, "POST", "/v1/moves/" MOVE "/erase", tok, NULL);
	EXPECT_PROBLEM_SOME(&r, 409, "conflict", NULL);
	res_free(&r);

	/* A key moved to another region: 421 there first; its alias served. */
	fcp_set(&e.cp, 0, sign_doc(CELL_A, 3, 0, 1, K "|eu;"), 3);
	fcp_set(&e.cp, 1, sign_doc(CELL_B, 3, 1, 0, NULL), 3);
	wait_version(&e.a, 3);
	wait_version(&e.b, 3);
	{
		char auth[300];
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", KEY);
		const char *h[] = { auth, NULL };
		res_call(&r, "GET", it_fmt("http://127.0.0.1:%d/v1/tenant", e.a.port), h, NULL, 0);
		EXPECT_PROBLEM_SOME(&r, 421, "wrong_region", NULL);
		ck_assert_str_eq(it_js(r.json, "region"), "eu");
		ck_assert_str_eq(it_js(r.json, "endpoint"), "https://eu.example.test");
		res_free(&r);
		snprintf(auth, sizeof auth, "Authorization: Bearer eu_" K "_" SEC);
		res_call(&r, "GET", it_fmt("http://127.0.0.1:%d/v1/tenant", e.b.port), h, NULL, 0);
		EXPECT(&r, 200);
		ck_assert_str_eq(it_js(json_object_get(r.json, "tenant"), "id"), T);
		res_free(&r);
		/* An alias with a wrong secret is no key. */
		snprintf(auth, sizeof auth, "Authorization: Bearer eu_" K "_%064d", 0);
		res_call(&r, "GET", it_fmt("http://127.0.0.1:%d/v1/tenant", e.b.port), h, NULL, 0);
		EXPECT(&r, 401);
		res_free(&r);
	}

	/* The source's erasure: before erase_after, and with usage not yet
	 * reported, 409; then every row of T goes, T_OTHER's stay. */
	char *tok_later = cred((int64_t)time(NULL) + 3600);
	mv(&r, &e.a, "POST", "/v1/moves/" MOVE "/erase", tok_later, NULL);
	EXPECT_PROBLEM_SOME(&r, 409, "conflict", NULL);
	res_free(&r);
	mv(&r, &e.a, "POST", "/v1/moves/" MOVE "/erase", tok, NULL); /* erase_after 0 */
	EXPECT_PROBLEM_SOME(&r, 409, "conflict", NULL);
	res_free(&r);
	/* An event not yet reported. The cell's usage reporter (every 200 ms)
	 * would take it into its outbox before the call on a busy machine:
	 * the lock it tries first (dp_db_usage_take) is held meanwhile. */
	PGconn *hold = PQconnectdb(e.a.db);
	ck_assert_int_eq(PQstatus(hold), CONNECTION_OK);
	PGresult *locked = PQexec(hold, "SELECT pg_advisory_lock(" DP_USAGE_TAKE_LOCK ")");
	ck_assert_int_eq(PQresultStatus(locked), PGRES_TUPLES_OK);
	PQclear(locked);
	free(it_sql(e.a.db, "UPDATE usage_counters SET reported = reported - 1 WHERE tenant_id = '" T "' AND events > 0"));
	mv(&r, &e.a, "POST", "/v1/moves/" MOVE "/erase", tok_erase, NULL);
	EXPECT_PROBLEM_SOME(&r, 409, "conflict", NULL);
	res_free(&r);
	free(it_sql(e.a.db, "UPDATE usage_counters SET reported = events WHERE tenant_id = '" T "'"));
	PQfinish(hold);
	long long others = sqll(e.a.db, "SELECT count(*) FROM events WHERE tenant_id = '" T_OTHER "'");
	long long erased = 0;
	int done = 0;
	for (int i = 0; !done && i < 100; i++) {
		mv(&r, &e.a, "POST", "/v1/moves/" MOVE "/erase", tok_erase, NULL);
		EXPECT(&r, 200);
		erased += json_integer_value(json_object_get(r.json, "events_deleted"));
		done = json_is_true(json_object_get(r.json, "done"));
		res_free(&r);
	}
	ck_assert(done);
	ck_assert_int_eq(erased, total);
	ck_assert_int_eq(sqll(e.a.db, "SELECT (SELECT count(*) FROM events WHERE tenant_id = '" T "')"
	                              " + (SELECT count(*) FROM usage_counters WHERE tenant_id = '" T "')"
	                              " + (SELECT count(*) FROM idempotency_keys WHERE tenant_id = '" T "')"
	                              " + (SELECT count(*) FROM tenant_fences WHERE tenant_id = '" T "')"
	                              " + (SELECT count(*) FROM tenant_feed_offsets WHERE tenant_id = '" T "')"),
	                 0);
	ck_assert_int_eq(sqll(e.a.db, "SELECT count(*) FROM events WHERE tenant_id = '" T_OTHER "'"), others);
	ck_assert_int_ge(metric(&e.a, "dp_move_requests_total{route=\"erase\"}"), 5);

	free(batch_body);
	free(tok);
	free(tok_erase);
	free(tok_later);
	env_stop(&e);
}
END_TEST

/* Loads rows n0+1..n1 of T into `db` with SQL, as the ingest stores them. */
static void load_rows(const char *db, int n0, int n1)
{
	free(it_sql(db, it_fmt(
		"INSERT INTO events (tenant_id, id, occurred_at, received_at, action, actor_id, target_ids,"
		"                    content_sha256, body, keys)"
		" SELECT '" T "', 'r' || i, now(), now(), 'bulk', 'a' || (i %% 7), '{}',"
		"        sha256(convert_to('{\"id\":\"r' || i || '\"}', 'UTF8')), ('{\"id\":\"r' || i || '\"}')::json, '{}'"
		"   FROM generate_series(%d, %d) i", n0 + 1, n1)));
}

/* The route's figures over (after, upto] (upto NULL: no bound) against one
 * SQL statement over the same rows; and its count alone. */
static void check_digest(const struct env *e, const char *tok, const char *after, const char *upto)
{
	struct res r;
	const char *where = it_fmt("tenant_id = '" T "' AND (tx_id, seq) > ('%.*s'::xid8, %s)%s%s%s%s%s",
	                           (int)strcspn(after, "."), after, strchr(after, '.') + 1,
	                           upto ? " AND (tx_id, seq) <= ('" : "", upto ? it_fmt("%.*s", (int)strcspn(upto, "."), upto) : "",
	                           upto ? "'::xid8, " : "", upto ? strchr(upto, '.') + 1 : "", upto ? ")" : "");
	char *want = it_sql(e->a.db, it_fmt("SELECT count(*) || ' ' || coalesce(sum(move_row_hash(id, content_sha256, body)), 0)"
	                                    "  FROM events WHERE %s", where));
	const char *q = upto ? it_fmt("after=%s&upto=%s", after, upto) : it_fmt("after=%s", after);
	mv(&r, &e->a, "GET", it_fmt("/v1/moves/" MOVE "/digest?%s", q), tok, NULL);
	EXPECT(&r, 200);
	char got[128];
	snprintf(got, sizeof got, "%lld %s", (long long)json_integer_value(json_object_get(r.json, "events")),
	         it_js(r.json, "digest"));
	ck_assert_msg(!strcmp(got, want), "digest?%s: %s, want %s", q, got, want);
	res_free(&r);
	mv(&r, &e->a, "GET", it_fmt("/v1/moves/" MOVE "/digest?%s&count_only=true", q), tok, NULL);
	EXPECT(&r, 200);
	ck_assert_int_eq(json_object_size(r.json), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "events")), atoll(want));
	res_free(&r);
	free(want);
}

/* The source's digest is computed in ranges of 50,000 rows: the same
 * figures as one statement at every count around a range's end, from the
 * start, from inside the first range, bounded or not; the count alone
 * (count_only) agrees. */
START_TEST(digest_in_ranges)
{
	struct env e;
	struct res r;
	env_start(&e);
	char *tok = cred(0);
	check_digest(&e, tok, "0.0", NULL); /* no row */
	static const int counts[] = { 1, 49999, 50000, 50001, 100000, 100001 };
	int had = 0;
	for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
		load_rows(e.a.db, had, counts[i]);
		had = counts[i];
		check_digest(&e, tok, "0.0", NULL);
		char *first = it_sql(e.a.db, "SELECT tx_id || '.' || seq FROM events WHERE tenant_id = '" T "'"
		                             " ORDER BY tx_id, seq LIMIT 1");
		char *last = it_sql(e.a.db, "SELECT tx_id || '.' || seq FROM events WHERE tenant_id = '" T "'"
		                            " ORDER BY tx_id DESC, seq DESC LIMIT 1");
		check_digest(&e, tok, first, NULL);
		check_digest(&e, tok, "0.0", last);
		check_digest(&e, tok, first, last);
		free(first);
		free(last);
	}
	/* Ranges that start and end inside a chunk. */
	char *p10 = it_sql(e.a.db, "SELECT tx_id || '.' || seq FROM events WHERE tenant_id = '" T "'"
	                           " ORDER BY tx_id, seq OFFSET 9 LIMIT 1");
	char *p60k = it_sql(e.a.db, "SELECT tx_id || '.' || seq FROM events WHERE tenant_id = '" T "'"
	                            " ORDER BY tx_id, seq OFFSET 60009 LIMIT 1");
	check_digest(&e, tok, p10, p60k);
	check_digest(&e, tok, p60k, NULL);
	free(p10);
	free(p60k);
	/* count_only takes true or false only. */
	mv(&r, &e.a, "GET", "/v1/moves/" MOVE "/digest?count_only=yes", tok, NULL);
	EXPECT_PROBLEM_SOME(&r, 400, "validation_failed", "count_only");
	res_free(&r);
	mv(&r, &e.a, "GET", "/v1/moves/" MOVE "/digest?count_only=false", tok, NULL);
	EXPECT(&r, 200);
	ck_assert_ptr_nonnull(json_object_get(r.json, "digest"));
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "events")), 100001);
	res_free(&r);
	free(tok);
	env_stop(&e);
}
END_TEST

/* The records' safe_since_us: a record whose transaction is still open is
 * not in the answer, and safe_since_us stays before its creation; once it
 * commits, the next call from safe_since_us has it, and the one after
 * (from the new safe_since_us) has it no more. */
START_TEST(records_safe_since)
{
	struct env e;
	struct res r;
	env_start(&e);
	char *tok = cred(0);
	PGconn *held = PQconnectdb(e.a.db);
	ck_assert_int_eq(PQstatus(held), CONNECTION_OK);
	PGresult *pr = PQexec(held, "BEGIN; INSERT INTO idempotency_keys (tenant_id, key, request_sha256, status, body)"
	                            " VALUES ('" T "', 'held', sha256('x'), 201, '{}')");
	ck_assert_int_eq(PQresultStatus(pr), PGRES_COMMAND_OK);
	PQclear(pr);
	pr = PQexec(held, "SELECT (extract(epoch FROM now()) * 1000000)::bigint");
	ck_assert_int_eq(PQresultStatus(pr), PGRES_TUPLES_OK);
	long long start_us = atoll(PQgetvalue(pr, 0, 0));
	PQclear(pr);
	mv(&r, &e.a, "GET", "/v1/moves/" MOVE "/records?since_us=0", tok, NULL);
	EXPECT(&r, 200);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "idempotency")), 0);
	long long safe = (long long)json_integer_value(json_object_get(r.json, "safe_since_us"));
	ck_assert_msg(safe > 0 && safe <= start_us, "safe_since_us %lld, the open record's %lld", safe, start_us);
	res_free(&r);
	pr = PQexec(held, "COMMIT");
	ck_assert_int_eq(PQresultStatus(pr), PGRES_COMMAND_OK);
	PQclear(pr);
	PQfinish(held);
	/* From safe_since_us on, the record is there until safe_since_us
	 * passes its creation (a second of margin later). */
	long long safe2 = safe;
	for (long t0 = it_now_ms(); safe2 <= start_us;) {
		ck_assert_msg(it_now_ms() - t0 < 20000, "safe_since_us stays at %lld", safe2);
		mv(&r, &e.a, "GET", it_fmt("/v1/moves/" MOVE "/records?since_us=%lld", safe), tok, NULL);
		EXPECT(&r, 200);
		ck_assert_int_eq(json_array_size(json_object_get(r.json, "idempotency")), 1);
		ck_assert_str_eq(it_js(json_array_get(json_object_get(r.json, "idempotency"), 0), "key"), "held");
		safe2 = (long long)json_integer_value(json_object_get(r.json, "safe_since_us"));
		ck_assert_int_ge(safe2, safe);
		res_free(&r);
		if (safe2 <= start_us)
			usleep(100000);
	}
	mv(&r, &e.a, "GET", it_fmt("/v1/moves/" MOVE "/records?since_us=%lld", safe2), tok, NULL);
	EXPECT(&r, 200);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "idempotency")), 0);
	ck_assert_int_ge(json_integer_value(json_object_get(r.json, "safe_since_us")), safe2);
	res_free(&r);
	free(tok);
	env_stop(&e);
}
END_TEST

/* Sets T's row `id` (inserted if new) to a body of exactly `len` bytes. */
static void big_row(const char *db, const char *id, long len)
{
	/* (No conflict target: events partitioned by week have none.) */
	free(it_sql(db, it_fmt(
		"WITH b AS (SELECT ('{\"x\":\"' || repeat('a', %ld) || '\"}')::json AS j),"
		" u AS (UPDATE events e SET body = b.j FROM b WHERE e.tenant_id = '" T "' AND e.id = '%s' RETURNING 1)"
		" INSERT INTO events (tenant_id, id, occurred_at, received_at, action, actor_id, target_ids,"
		"                    content_sha256, body, keys)"
		" SELECT '" T "', '%s', now(), now(), 'bulk', 'a', '{}', sha256('x'), b.j, '{}' FROM b"
		"  WHERE NOT EXISTS (SELECT 1 FROM u)",
		len - 8, id, id)));
}

/* The ids of a source page from `after`, its `more`, and its `next` in `after`. */
static char *page_ids(const struct env *e, const char *tok, char after[48], int *more)
{
	struct res r;
	mv(&r, &e->a, "GET", it_fmt("/v1/moves/" MOVE "/events?after=%s&limit=5000", after), tok, NULL);
	EXPECT(&r, 200);
	struct buf b = { 0 };
	size_t i;
	json_t *row;
	json_array_foreach(json_object_get(r.json, "events"), i, row)
		buf_printf(&b, "%s%s", i ? "," : "", it_js(row, "id"));
	*more = json_is_true(json_object_get(r.json, "more"));
	snprintf(after, 48, "%s", it_js(r.json, "next"));
	res_free(&r);
	char *ids = strdup(b.p ? b.p : "");
	buf_free(&b);
	return ids;
}

/* A source page ends before DP_MOVE_PAGE_BYTES (24 MiB) of bodies counted
 * twice and 512 bytes a row, so that big events never make a page the
 * target refuses: rows that come to exactly the budget share a page, one
 * byte more and the second goes to the next page; a row alone over it
 * still goes (one at least). */
START_TEST(page_bytes)
{
	struct env e;
	env_start(&e);
	char *tok = cred(0);
	const long fit = (24L * 1024 * 1024 / 2 - 512) / 2; /* two rows: exactly the budget */
	big_row(e.a.db, "b1", fit);
	big_row(e.a.db, "b2", fit);
	big_row(e.a.db, "b3", 13L * 1024 * 1024); /* alone over the budget */
	char pos[48] = "0.0";
	int more;
	char *ids = page_ids(&e, tok, pos, &more);
	ck_assert_str_eq(ids, "b1,b2");
	ck_assert(more);
	free(ids);
	ids = page_ids(&e, tok, pos, &more);
	ck_assert_str_eq(ids, "b3");
	ck_assert(!more);
	free(ids);
	big_row(e.a.db, "b2", fit + 1);
	snprintf(pos, sizeof pos, "0.0");
	ids = page_ids(&e, tok, pos, &more);
	ck_assert_str_eq(ids, "b1");
	ck_assert(more);
	free(ids);
	ids = page_ids(&e, tok, pos, &more);
	ck_assert_str_eq(ids, "b2");
	ck_assert(more);
	free(ids);
	free(tok);
	env_stop(&e);
}
END_TEST

/* A target cell partitioned by week long ago, whose old weeks retention
 * dropped (or never made: no tenant kept that long): a moved-in tenant's
 * events of such a week make it, and the page is stored, not refused. */
START_TEST(weeks_on_demand)
{
	struct env e;
	struct res r;
	env_start(&e);
	char *tok = cred(0);
	long t0 = it_now_ms();
	while (sqll(e.b.db, "SELECT count(*) FROM pg_class WHERE relname = 'events' AND relkind = 'p'") != 1) {
		ck_assert_msg(it_now_ms() - t0 < 20000, "cell B not partitioned");
		usleep(50000);
	}
	free(it_sql(e.b.db, "ALTER TABLE events DETACH PARTITION events_before;"
	                    "UPDATE events_layout SET weekly_from = events_week(now()) - interval '60 weeks';"
	                    "DO $$ BEGIN EXECUTE format('ALTER TABLE events ATTACH PARTITION events_before "
	                    "FOR VALUES FROM (MINVALUE) TO (%L)', (SELECT weekly_from FROM events_layout)); END $$"));
	const char *week = "events_week(now() - interval '70 days')";
	ck_assert_int_eq(sqll(e.b.db, it_fmt("SELECT count(*) FROM event_partitions WHERE lower = %s", week)), 0);
	long long at = (long long)time(NULL) * 1000000 - 70LL * 86400 * 1000000;
	const char *page = it_fmt(
		"{\"events\": [{\"id\": \"old-1\", \"tx_id\": \"5\", \"seq\": 1, \"occurred_at_us\": %lld,"
		" \"received_at_us\": %lld, \"action\": \"a\", \"actor_id\": \"u\", \"target_ids\": [],"
		" \"content_sha256\": \"%064d\", \"body\": {\"id\": \"old-1\"}, \"keys\": []}], \"next\": \"5.1\"}",
		at, at, 0);
	mv(&r, &e.b, "POST", "/v1/moves/" MOVE "/events", tok, page);
	EXPECT(&r, 200);
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "inserted")), 1);
	res_free(&r);
	ck_assert_int_eq(sqll(e.b.db, it_fmt("SELECT count(*) FROM event_partitions WHERE lower = %s", week)), 1);
	ck_assert_int_eq(sqll(e.b.db, it_fmt("SELECT count(*) FROM events e JOIN event_partitions p ON "
	                                     "p.name = e.tableoid::regclass::text WHERE e.id = 'old-1' AND p.lower = %s",
	                                     week)),
	                 1);
	free(tok);
	env_stop(&e);
}
END_TEST

/* A move credential signed with a key this data plane does not trust yet
 * (a rotation it has not followed: its next key-set fetch is an hour
 * away) makes it ask for the signed key set at once: the mover's next
 * attempt is served. Credentials of made-up keys make it ask at most once
 * every 5 s, however many come. */
START_TEST(credential_of_a_key_not_followed_yet)
{
	struct env e;
	struct res r;
	struct jwk rotated;
	ck_assert_int_eq(jwk_generate(&rotated), 0);
	env_start(&e);
	/* The new set, vouched for by the key the data planes trust. */
	const struct jwk both[2] = { signer, rotated };
	char *ks = keyset_sign(both, 2, 2, (int64_t)time(NULL), ISS);
	ck_assert_ptr_nonnull(ks);
	pthread_mutex_lock(&e.cp.mu);
	e.cp.keyset = ks;
	pthread_mutex_unlock(&e.cp.mu);

	const char *src = "/v1/moves/" MOVE "/events?limit=1";
	char *tok = cred_ex(&rotated, MOVE, 0, 0, 600);
	mv(&r, &e.a, "GET", src, tok, NULL);
	ck_assert_msg(r.status == 401, "a key not trusted yet: %ld, want 401", r.status);
	res_free(&r);
	long st = 0;
	long t0 = it_now_ms();
	while (st != 200 && it_now_ms() - t0 < 10000) {
		usleep(200 * 1000);
		mv(&r, &e.a, "GET", src, tok, NULL);
		st = r.status;
		res_free(&r);
	}
	ck_assert_msg(st == 200, "the credential of the new key is still refused after 10 s (%ld)", st);

	/* 100 credentials of a key no set holds, within about a second: the
	 * key set is asked for once more (at the floor), not 100 times. */
	char *junk = cred_ex(&stranger, MOVE, 0, 0, 600);
	int g0 = fcp_keyset_gets(&e.cp);
	t0 = it_now_ms();
	for (int i = 0; i < 100; i++) {
		mv(&r, &e.a, "GET", src, junk, NULL);
		ck_assert_int_eq(r.status, 401);
		res_free(&r);
	}
	/* (The floor since the fetch the new key caused has passed by then.) */
	usleep(6000 * 1000);
	long took = it_now_ms() - t0;
	int asked = fcp_keyset_gets(&e.cp) - g0;
	ck_assert_msg(asked >= 1 && asked <= took / 5000 + 1,
	              "%d key-set fetches for 100 made-up keys in %lld ms (want 1 .. %lld)", asked, (long long)took,
	              (long long)(took / 5000 + 1));
	free(junk);
	free(tok);
	jwk_clear(&rotated);
	env_stop(&e);
}
END_TEST

Suite *moves_dp_suite(void)
{
	Suite *s = suite_create("moves-dp");
	const TTest *const tests[] = { credentials_and_limits, move_end_to_end, digest_in_ranges, records_safe_since,
	                               page_bytes, weeks_on_demand, credential_of_a_key_not_followed_yet };
	it_add_tests(s, tests, sizeof tests / sizeof tests[0], setup, teardown, 180);
	return s;
}
