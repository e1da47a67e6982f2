/* The read side of a tenant's log from outside (data-plane/log_routes.c,
 * the export's trailer in export.c): a real control plane and data plane
 * (it_stack), libcurl as the client, and a reference model written here:
 * the leaves are SHA-256(0x00 || GET /v1/events/{id}) in the order of
 * GET /v1/events/feed, and every root is RFC 9162's MTH of them, computed
 * by its definition (not with common/merkle.c, whose verifiers are what
 * the answers are checked with).
 *
 *   proofs_and_checkpoints  for every tree size n and every leaf m < n the inclusion proof, and for
 *                           every 1 <= m <= n <= size the consistency proof, verify against the model's
 *                           roots (a wrong leaf or root does not); every stored checkpoint verifies with
 *                           the JWKS and has the model's root, in both forms; every limit at both ends;
 *                           another tenant's event; scope and credentials; an event not in the log yet
 *   export_trailer          an NDJSON export ends with `log` lines of the model's leaves and a checkpoint
 *                           that verifies, taken at its start; `complete` only without filter or cursor;
 *                           a removed leaf; CSV unchanged; the export, a proof and a consistency proof
 *                           verify offline with bin/celltrail-verify and with tests/log/rfc9162.py
 *   week_removed            a week of events removed whole (as retention removes it): its leaves listed as
 *                           removed by their time, unmarked; an event stored there afterwards is not; the
 *                           export verifies offline
 *   log_off                 DP_LOG=false: the routes answer 404, an export has no trailer
 *
 * CK_RUN_SUITE=log-routes (and CK_RUN_CASE=<test>) runs them alone. */
#include <curl/curl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "checkpoint.h"
#include "fixtures.h"
#include "jwk.h"
#include "merkle.h"
#include "secret.h"

#define SLOW_MS 60000
#define MAXLEAVES 64
#define P62 "4611686018427387904"
#define P62_1 "4611686018427387905"

/* ---- a client on one keep-alive connection ---- */

struct cl {
	CURL *c;
	char url[64];
	char auth[300];
};

struct ans {
	long status;
	struct buf body;            /* NUL-terminated */
	char ctype[128];
	char vary[128];
	json_t *json;               /* NULL unless the body is JSON */
};

static size_t ans_body(char *p, size_t size, size_t n, void *arg)
{
	buf_append(&((struct ans *)arg)->body, p, size * n);
	return size * n;
}

static size_t ans_header(char *p, size_t size, size_t n, void *arg)
{
	struct ans *a = arg;
	size_t len = size * n;
	if (len > 14 && !strncasecmp(p, "Content-Type: ", 14))
		snprintf(a->ctype, sizeof a->ctype, "%.*s", (int)strcspn(p + 14, "\r\n"), p + 14);
	if (len > 6 && !strncasecmp(p, "Vary: ", 6))
		snprintf(a->vary, sizeof a->vary, "%.*s", (int)strcspn(p + 6, "\r\n"), p + 6);
	return len;
}

static void cl_init(struct cl *c, const char *url, const char *key)
{
	c->c = curl_easy_init();
	snprintf(c->url, sizeof c->url, "%s", url);
	if (key)
		snprintf(c->auth, sizeof c->auth, "Authorization: Bearer %s", key);
	else
		c->auth[0] = '\0';
}

static void cl_free(struct cl *c)
{
	curl_easy_cleanup(c->c);
}

/* GET `path` (with `accept` as Accept when not NULL). */
static void cl_get(struct cl *c, const char *path, const char *accept, struct ans *a)
{
	struct curl_slist *h = NULL;
	memset(a, 0, sizeof *a);
	if (c->auth[0])
		h = curl_slist_append(h, c->auth);
	if (accept)
		h = curl_slist_append(h, it_fmt("Accept: %s", accept));
	curl_easy_reset(c->c);
	curl_easy_setopt(c->c, CURLOPT_URL, it_fmt("%s%s", c->url, path));
	curl_easy_setopt(c->c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c->c, CURLOPT_WRITEFUNCTION, ans_body);
	curl_easy_setopt(c->c, CURLOPT_WRITEDATA, a);
	curl_easy_setopt(c->c, CURLOPT_HEADERFUNCTION, ans_header);
	curl_easy_setopt(c->c, CURLOPT_HEADERDATA, a);
	curl_easy_setopt(c->c, CURLOPT_TIMEOUT_MS, 120000L);
	curl_easy_setopt(c->c, CURLOPT_NOSIGNAL, 1L);
	CURLcode rc = curl_easy_perform(c->c);
	ck_assert_msg(rc == CURLE_OK, "GET %s: %s", path, curl_easy_strerror(rc));
	curl_easy_getinfo(c->c, CURLINFO_RESPONSE_CODE, &a->status);
	buf_append(&a->body, "", 0); /* NUL-terminated, never NULL */
	a->json = json_loadb(a->body.p, a->body.len, 0, NULL);
	curl_slist_free_all(h);
}

static void ans_free(struct ans *a)
{
	json_decref(a->json);
	buf_free(&a->body);
}

/* The answer is the problem `code` (with `field` when not NULL). */
static void expect_prob(const struct ans *a, long status, const char *code, const char *field, const char *what)
{
	ck_assert_msg(a->status == status, "%s: %ld, want %ld: %.300s", what, a->status, status, a->body.p);
	ck_assert_msg(!strcmp(a->ctype, "application/problem+json"), "%s: Content-Type %s", what, a->ctype);
	ck_assert_msg(!strcmp(it_js(a->json, "code"), code), "%s: code %s, want %s", what, it_js(a->json, "code"),
	              code);
	if (field)
		ck_assert_msg(!strcmp(it_js(a->json, "field"), field), "%s: field %s, want %s", what,
		              it_js(a->json, "field"), field);
}

/* ---- the reference model ---- */

struct model {
	int n;
	char ids[MAXLEAVES][64];
	merkle_hash leaf[MAXLEAVES];
};

static void sha(const void *a, size_t alen, const void *b, size_t blen, const void *c, size_t clen,
                merkle_hash out)
{
	unsigned char *t = malloc(alen + blen + clen + 1);
	memcpy(t, a, alen);
	memcpy(t + alen, b, blen);
	memcpy(t + alen + blen, c, clen);
	secret_sha256(t, alen + blen + clen, out);
	free(t);
}

static void ref_leaf(const char *bytes, size_t len, merkle_hash out)
{
	sha("\0", 1, bytes, len, "", 0, out);
}

/* MTH(D[a:b]) of RFC 9162 2.1.1, by its definition. */
static void mth(const struct model *md, int a, int b, merkle_hash out)
{
	if (b - a == 1) {
		memcpy(out, md->leaf[a], 32);
		return;
	}
	int k = 1;
	while (k * 2 < b - a)
		k *= 2;
	merkle_hash l, r;
	mth(md, a, a + k, l);
	mth(md, a + k, b, r);
	sha("\1", 1, l, 32, r, 32, out);
}

/* The model from outside: the feed's order, each event's bytes as GET
 * /v1/events/{id} answers them. */
static void model_read(struct cl *c, struct model *md)
{
	struct ans a;
	cl_get(c, "/v1/events/feed?limit=1000", NULL, &a);
	ck_assert_msg(a.status == 200, "feed: %ld %.300s", a.status, a.body.p);
	json_t *items = json_object_get(a.json, "items");
	ck_assert_int_le(json_array_size(items), MAXLEAVES);
	md->n = (int)json_array_size(items);
	for (int i = 0; i < md->n; i++) {
		snprintf(md->ids[i], sizeof md->ids[i], "%s", it_js(json_array_get(items, (size_t)i), "id"));
		struct ans e;
		cl_get(c, it_fmt("/v1/events/%s", md->ids[i]), NULL, &e);
		ck_assert_int_eq(e.status, 200);
		ref_leaf(e.body.p, e.body.len, md->leaf[i]);
		ans_free(&e);
	}
	ans_free(&a);
}

static const char *b64h(const merkle_hash h)
{
	char s[48];
	secret_b64url(h, 32, s);
	return it_fmt("%s", s);
}

/* The hashes of a JSON array of base64url strings, into out[]; their number. */
static int hashes_of(const json_t *arr, merkle_hash *out, int max)
{
	ck_assert_msg(json_is_array(arr), "not an array of hashes");
	int n = (int)json_array_size(arr);
	ck_assert_int_le(n, max);
	for (int i = 0; i < n; i++) {
		const char *s = json_string_value(json_array_get(arr, (size_t)i));
		ck_assert_msg(s && checkpoint_unb64_hash(s, strlen(s), out[i]) == 0, "hash %d is not base64url of 32 bytes", i);
	}
	return n;
}

/* ---- keys and checkpoints ---- */

struct keys {
	struct jwk k[8];
	size_t n;
};

static void keys_read(struct cl *c, struct keys *ks)
{
	struct ans a;
	cl_get(c, "/.well-known/jwks.json", NULL, &a);
	ck_assert_msg(a.status == 200, "jwks: %ld", a.status);
	json_t *arr = json_object_get(a.json, "keys");
	ck_assert_int_ge(json_array_size(arr), 1);
	ks->n = 0;
	for (size_t i = 0; i < json_array_size(arr) && ks->n < 8; i++) {
		char err[200];
		ck_assert_msg(jwk_from_json(json_array_get(arr, i), &ks->k[ks->n], err, sizeof err) == 0, "jwk: %s", err);
		ks->n++;
	}
	ans_free(&a);
}

static void keys_free(struct keys *ks)
{
	for (size_t i = 0; i < ks->n; i++)
		jwk_clear(&ks->k[i]);
}

/* Verifies a compact checkpoint against the keys and the model: the
 * tenant's, of `size` leaves (any when 0), with the model's root. Returns
 * its tree size. */
static int64_t cp_check(const struct keys *ks, const struct model *md, const char *tenant, const char *jws,
                        size_t len, int64_t size, struct checkpoint *out)
{
	char err[200];
	struct checkpoint cp;
	ck_assert_msg(checkpoint_verify(jws, len, ks->k, ks->n, &cp, err, sizeof err) == 0, "checkpoint: %s", err);
	ck_assert_str_eq(cp.tenant_id, tenant);
	if (size)
		ck_assert_int_eq(cp.tree_size, size);
	ck_assert_int_le(cp.tree_size, md->n);
	merkle_hash root;
	mth(md, 0, (int)cp.tree_size, root);
	ck_assert_msg(!memcmp(root, cp.root, 32), "checkpoint %" PRId64 ": not the model's root", cp.tree_size);
	if (out)
		*out = cp;
	return cp.tree_size;
}

/* ---- a tenant of its own, without a practical rate limit ---- */

struct tenant {
	char id[40];
	char key[200];
};

static void tenant_make(struct it_stack *s, const char *slug, const char *scopes, struct tenant *t)
{
	struct it_resp r;
	it_stack_admin(s, &r, "POST", "/v1/plans",
	               it_fmt("{\"id\":\"lr-%s\",\"name\":\"Log %s\",\"currency\":\"USD\",\"base_price\":0,"
	                      "\"events_included\":0,\"price_per_1000\":0,\"rate_limit\":1000000,\"burst\":1000000,"
	                      "\"monthly_event_quota\":1000000000,\"retention_days\":30}",
	                      slug, slug));
	ck_assert_msg(r.status == 201, "POST /v1/plans: %ld %.300s", r.status, r.body);
	it_resp_free(&r);
	it_stack_admin(s, &r, "POST", "/v1/tenants",
	               it_fmt("{\"name\":\"%s\",\"slug\":\"%s\",\"region\":\"%s\",\"plan\":\"lr-%s\"}", slug, slug,
	                      s->region, slug));
	ck_assert_msg(r.status == 201, "POST /v1/tenants: %ld %.300s", r.status, r.body);
	json_t *j = json_loads(r.body, 0, NULL);
	snprintf(t->id, sizeof t->id, "%s", it_js(j, "id"));
	json_decref(j);
	it_resp_free(&r);
	it_stack_admin(s, &r, "POST", it_fmt("/v1/tenants/%s/api-keys", t->id),
	               it_fmt("{\"name\":\"k\",\"scopes\":%s}", scopes));
	ck_assert_msg(r.status == 201, "POST api-keys: %ld %.300s", r.status, r.body);
	j = json_loads(r.body, 0, NULL);
	snprintf(t->key, sizeof t->key, "%s", it_js(j, "secret"));
	json_decref(j);
	it_resp_free(&r);
}

static void post_events(const struct it_stack *s, const char *key, int from, int n)
{
	struct buf b = { 0 };
	buf_append(&b, "{\"events\":[", 11);
	for (int i = from; i < from + n; i++)
		buf_printf(&b,
		           "%s{\"id\":\"lr-%d\",\"action\":\"doc.%s\",\"actor\":{\"id\":\"u-%d\",\"type\":\"user\"},"
		           "\"metadata\":{\"i\":%d,\"text\":\"caf\\u00e9 \\\"%d\\\"\"}}",
		           i > from ? "," : "", i, i % 2 ? "read" : "write", i % 3, i, i);
	buf_append(&b, "]}", 3);
	struct it_resp r;
	const char *const h[] = { it_fmt("Authorization: Bearer %s", key), "Content-Type: application/json", NULL };
	it_http(&r, "POST", it_fmt("%s/v1/events", s->dp_url), h, b.p, b.len - 1);
	ck_assert_msg(r.status == 201, "POST /v1/events: %ld %.300s", r.status, r.body);
	it_resp_free(&r);
	buf_free(&b);
}

/* Waits until the newest checkpoint covers `size` leaves; returns its size. */
static int64_t wait_covered(struct cl *c, int64_t size)
{
	long deadline = it_now_ms() + SLOW_MS;
	for (;;) {
		struct ans a;
		cl_get(c, "/v1/checkpoints/latest", "application/json", &a);
		int64_t got = a.status == 200 ? (int64_t)json_integer_value(json_object_get(a.json, "tree_size")) : 0;
		ck_assert_msg(a.status == 200 || a.status == 404, "latest: %ld %.300s", a.status, a.body.p);
		ans_free(&a);
		if (got >= size)
			return got;
		ck_assert_msg(it_now_ms() < deadline, "the log stayed at %" PRId64 " leaves, want %" PRId64, got, size);
		usleep(20000);
	}
}

/* A sample of the data plane's /metrics (the line `series` then a space). */
static double metric(const struct it_stack *s, const char *series)
{
	struct it_resp r;
	it_http(&r, "GET", it_fmt("%s/metrics", s->dp_url), NULL, NULL, 0);
	double v = -1;
	size_t n = strlen(series);
	for (const char *p = r.body; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (!strncmp(p, series, n) && p[n] == ' ') {
			v = strtod(p + n + 1, NULL);
			break;
		}
	it_resp_free(&r);
	return v;
}

/* Stores the event sql-1 of `tenant` straight into the regional database,
 * as a client of the database would: no ingest tells the appender. */
static void sql_event(const struct it_stack *s, const char *tenant)
{
	free(it_sql(s->dp_db,
	            it_fmt("INSERT INTO events (tenant_id, id, occurred_at, received_at, action, actor_id, target_ids,"
	                   "                    content_sha256, body)"
	                   " SELECT '%s'::uuid, 'sql-1', now(), now(), 'x.y', 'u-1', '{}', sha256('x'::bytea),"
	                   "        json_build_object('id', 'sql-1',"
	                   "          'occurred_at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
	                   "          'received_at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
	                   "          'action', 'x.y', 'actor', json_build_object('id', 'u-1', 'type', 'user'),"
	                   "          'targets', '[]'::json, 'context', '{}'::json, 'metadata', '{}'::json)",
	                   tenant)));
}

/* The stack, a tenant `t` of it with a log of 40 leaves that grew in
 * rounds (so that checkpoints of several sizes are stored, 1 among them),
 * covered by a checkpoint, and the model of it. */
static const int rounds[] = { 1, 2, 5, 8, 1, 14, 9 };

static void log_setup(struct it_stack *s, struct tenant *t, struct cl *c, struct model *md)
{
	/* Appends at once; sweeps never (an event inserted in SQL waits for
	 * a commit of its tenant). */
	const char *const env[] = { "DP_LOG_INTERVAL=20ms", "DP_LOG_SWEEP_INTERVAL=24h", NULL };
	it_stack_start(s, "us", NULL, env);
	tenant_make(s, "log-a", "[\"events:read\",\"events:write\"]", t);
	it_stack_sync(s);
	cl_init(c, s->dp_url, t->key);
	int total = 0;
	for (size_t i = 0; i < sizeof rounds / sizeof rounds[0]; i++) {
		post_events(s, t->key, total, rounds[i]);
		total += rounds[i];
		ck_assert_int_eq(wait_covered(c, total), total);
	}
	model_read(c, md);
	ck_assert_int_eq(md->n, total);
}

/* ---- tests ---- */

START_TEST(proofs_and_checkpoints)
{
	struct it_stack s;
	struct tenant t;
	struct cl c;
	struct model md;
	struct keys ks;
	log_setup(&s, &t, &c, &md);
	keys_read(&c, &ks);
	const int size = md.n;
	merkle_hash root[MAXLEAVES + 1];
	for (int n = 1; n <= size; n++)
		mth(&md, 0, n, root[n]);

	/* Checkpoints: every stored one verifies and has the model's root,
	 * in both forms; the sizes the rounds ended at are all there. */
	int have[MAXLEAVES + 1] = { 0 }, ncp = 0;
	for (int n = 1; n <= size + 1; n++) {
		struct ans a, j;
		cl_get(&c, it_fmt("/v1/checkpoints/%d", n), NULL, &a);
		if (a.status == 404) {
			expect_prob(&a, 404, "not_found", NULL, "checkpoint of a size never signed");
			ans_free(&a);
			continue;
		}
		ck_assert_msg(a.status == 200, "checkpoint %d: %ld", n, a.status);
		ck_assert_str_eq(a.ctype, "application/jose");
		ck_assert_str_eq(a.vary, "Accept");
		struct checkpoint cp;
		cp_check(&ks, &md, t.id, a.body.p, a.body.len, n, &cp);
		have[n] = 1;
		ncp++;
		cl_get(&c, it_fmt("/v1/checkpoints/%d", n), "application/json", &j);
		ck_assert_int_eq(j.status, 200);
		ck_assert_str_eq(j.ctype, "application/json");
		ck_assert_int_eq(json_object_size(j.json), 5);
		ck_assert_str_eq(it_js(j.json, "tenant_id"), t.id);
		ck_assert_int_eq(json_integer_value(json_object_get(j.json, "tree_size")), n);
		ck_assert_str_eq(it_js(j.json, "root_hash"), b64h(root[n]));
		ck_assert_int_eq(json_integer_value(json_object_get(j.json, "iat")), cp.iat);
		ck_assert_str_eq(it_js(j.json, "checkpoint"), a.body.p);
		ans_free(&j);
		/* The JWS wins unless JSON is asked for alone. */
		cl_get(&c, it_fmt("/v1/checkpoints/%d", n), "application/json;q=0, application/jose", &j);
		ck_assert_str_eq(j.ctype, "application/jose");
		ans_free(&j);
		cl_get(&c, it_fmt("/v1/checkpoints/%d", n), "application/jose, application/json", &j);
		ck_assert_str_eq(j.ctype, "application/jose");
		ans_free(&j);
		ans_free(&a);
	}
	ck_assert_int_eq(have[size + 1], 0);
	for (size_t i = 0, total = 0; i < sizeof rounds / sizeof rounds[0]; i++)
		ck_assert_msg(have[total += (size_t)rounds[i]], "no checkpoint of size %zu", total);
	struct ans a;
	cl_get(&c, "/v1/checkpoints/latest", NULL, &a);
	ck_assert_int_eq(a.status, 200);
	ck_assert_str_eq(a.ctype, "application/jose");
	ck_assert_int_eq(cp_check(&ks, &md, t.id, a.body.p, a.body.len, 0, NULL), size);
	ans_free(&a);

	/* Inclusion: every leaf m in every tree size n, against the model's
	 * root; the leaf next to it (or a flipped one) fails. */
	long proofs = 0;
	double before = metric(&s, "dp_log_proofs_total{kind=\"inclusion\"}");
	for (int n = 1; n <= size; n++)
		for (int m = 0; m < n; m++) {
			cl_get(&c, it_fmt("/v1/events/%s/proof?tree_size=%d", md.ids[m], n), NULL, &a);
			ck_assert_msg(a.status == 200, "proof of %d in %d: %ld %.300s", m, n, a.status, a.body.p);
			ck_assert_str_eq(a.ctype, "application/json");
			ck_assert_int_eq(json_object_size(a.json), 5);
			ck_assert_str_eq(it_js(a.json, "event_id"), md.ids[m]);
			ck_assert_int_eq(json_integer_value(json_object_get(a.json, "leaf_index")), m);
			ck_assert_int_eq(json_integer_value(json_object_get(a.json, "tree_size")), n);
			ck_assert_str_eq(it_js(a.json, "leaf_hash"), b64h(md.leaf[m]));
			merkle_hash path[MERKLE_MAX_LEVELS], wrong;
			int len = hashes_of(json_object_get(a.json, "audit_path"), path, MERKLE_MAX_LEVELS);
			ck_assert_msg(merkle_verify_inclusion((uint64_t)m, (uint64_t)n, md.leaf[m], path, len, root[n]) == 1,
			              "the proof of leaf %d in %d does not verify", m, n);
			memcpy(wrong, n > 1 ? md.leaf[(m + 1) % n] : md.leaf[m], 32);
			wrong[0] ^= n > 1 ? 0 : 1;
			ck_assert_msg(merkle_verify_inclusion((uint64_t)m, (uint64_t)n, wrong, path, len, root[n]) == 0,
			              "a wrong leaf %d in %d verifies", m, n);
			ans_free(&a);
			proofs++;
		}
	/* The default size: the newest checkpoint's. */
	cl_get(&c, it_fmt("/v1/events/%s/proof", md.ids[3]), NULL, &a);
	ck_assert_int_eq(a.status, 200);
	ck_assert_int_eq(json_integer_value(json_object_get(a.json, "tree_size")), size);
	ans_free(&a);
	proofs++;
	ck_assert_int_eq((long)(metric(&s, "dp_log_proofs_total{kind=\"inclusion\"}") - before), proofs);

	/* Consistency: every 1 <= m <= n <= size; a wrong old root fails. */
	for (int n = 1; n <= size; n++)
		for (int m = 1; m <= n; m++) {
			cl_get(&c, it_fmt("/v1/checkpoints/consistency?from=%d&to=%d", m, n), NULL, &a);
			ck_assert_msg(a.status == 200, "consistency %d %d: %ld %.300s", m, n, a.status, a.body.p);
			ck_assert_int_eq(json_object_size(a.json), 3);
			ck_assert_int_eq(json_integer_value(json_object_get(a.json, "from")), m);
			ck_assert_int_eq(json_integer_value(json_object_get(a.json, "to")), n);
			merkle_hash proof[MERKLE_MAX_PROOF];
			int len = hashes_of(json_object_get(a.json, "proof"), proof, MERKLE_MAX_PROOF);
			ck_assert_msg(merkle_verify_consistency((uint64_t)m, (uint64_t)n, root[m], root[n], proof, len) == 1,
			              "consistency %d -> %d does not verify", m, n);
			if (m < n)
				ck_assert_msg(merkle_verify_consistency((uint64_t)m, (uint64_t)n, root[m == 1 ? 2 : m - 1],
				                                        root[n], proof, len) == 0,
				              "consistency %d -> %d verifies a wrong old root", m, n);
			ans_free(&a);
		}

	/* Limits, each at both ends. A path's "%s" is the event of leaf `leaf`. */
	static const struct {
		const char *path;
		int leaf;
		long status;
		const char *code, *field;
	} lim[] = {
		{ "/v1/checkpoints/0", 0, 400, "validation_failed", "tree_size" },
		{ "/v1/checkpoints/-1", 0, 400, "validation_failed", "tree_size" },
		{ "/v1/checkpoints/+1", 0, 400, "validation_failed", "tree_size" },
		{ "/v1/checkpoints/abc", 0, 400, "validation_failed", "tree_size" },
		{ "/v1/checkpoints/", 0, 404, "not_found", NULL }, /* an empty size: no route */
		{ "/v1/checkpoints/1", 0, 200, NULL, NULL },
		{ "/v1/checkpoints/40", 0, 200, NULL, NULL },
		{ "/v1/checkpoints/41", 0, 404, "not_found", NULL },
		{ "/v1/checkpoints/" P62, 0, 404, "not_found", NULL },
		{ "/v1/checkpoints/" P62_1, 0, 400, "validation_failed", "tree_size" },
		{ "/v1/checkpoints/99999999999999999999999", 0, 400, "validation_failed", "tree_size" },
		{ "/v1/checkpoints/consistency?from=0&to=5", 0, 400, "validation_failed", "from" },
		{ "/v1/checkpoints/consistency?from=1&to=1", 0, 200, NULL, NULL },
		{ "/v1/checkpoints/consistency?from=40&to=40", 0, 200, NULL, NULL },
		{ "/v1/checkpoints/consistency?from=1&to=41", 0, 400, "validation_failed", "to" },
		{ "/v1/checkpoints/consistency?from=6&to=5", 0, 400, "validation_failed", "from" },
		{ "/v1/checkpoints/consistency?from=1&to=0", 0, 400, "validation_failed", "to" },
		{ "/v1/checkpoints/consistency?from=1&to=" P62, 0, 400, "validation_failed", "to" },
		{ "/v1/checkpoints/consistency?from=1&to=" P62_1, 0, 400, "validation_failed", "to" },
		{ "/v1/checkpoints/consistency?from=" P62 "&to=" P62, 0, 400, "validation_failed", "to" },
		{ "/v1/checkpoints/consistency?from=" P62_1 "&to=5", 0, 400, "validation_failed", "from" },
		{ "/v1/checkpoints/consistency?from=abc&to=5", 0, 400, "validation_failed", "from" },
		{ "/v1/checkpoints/consistency?from=&to=5", 0, 400, "validation_failed", "from" },
		{ "/v1/checkpoints/consistency?from=1&to=", 0, 400, "validation_failed", "to" },
		{ "/v1/checkpoints/consistency?to=5", 0, 400, "validation_failed", "from" },
		{ "/v1/checkpoints/consistency?from=1", 0, 400, "validation_failed", "to" },
		{ "/v1/checkpoints/consistency?from=1&to=5&x=1", 0, 400, "validation_failed", "x" },
		{ "/v1/events/%s/proof?tree_size=0", 0, 400, "validation_failed", "tree_size" },
		{ "/v1/events/%s/proof?tree_size=1", 0, 200, NULL, NULL },
		{ "/v1/events/%s/proof?tree_size=5", 5, 409, "conflict", NULL },
		{ "/v1/events/%s/proof?tree_size=6", 5, 200, NULL, NULL },
		{ "/v1/events/%s/proof?tree_size=40", 39, 200, NULL, NULL },
		{ "/v1/events/%s/proof?tree_size=41", 0, 400, "validation_failed", "tree_size" },
		{ "/v1/events/%s/proof?tree_size=" P62, 0, 400, "validation_failed", "tree_size" },
		{ "/v1/events/%s/proof?tree_size=" P62_1, 0, 400, "validation_failed", "tree_size" },
		{ "/v1/events/%s/proof?tree_size=abc", 0, 400, "validation_failed", "tree_size" },
		{ "/v1/events/%s/proof?tree_size=", 0, 400, "validation_failed", "tree_size" },
		{ "/v1/events/%s/proof?tree_size=1&tree_size=2", 0, 400, "validation_failed", "tree_size" },
		{ "/v1/events/%s/proof?size=1", 0, 400, "validation_failed", "size" },
		{ "/v1/events/nope/proof", 0, 404, "not_found", NULL },
		{ "/v1/events/nope/proof?tree_size=abc", 0, 400, "validation_failed", "tree_size" },
		{ "/v1/events/%s", 0, 200, NULL, NULL }, /* the event itself, beside its proof */
	};
	for (size_t i = 0; i < sizeof lim / sizeof lim[0]; i++) {
		char path[200];
		if (strstr(lim[i].path, "%s"))
			snprintf(path, sizeof path, lim[i].path, md.ids[lim[i].leaf]);
		else
			snprintf(path, sizeof path, "%s", lim[i].path);
		cl_get(&c, path, NULL, &a);
		if (lim[i].code)
			expect_prob(&a, lim[i].status, lim[i].code, lim[i].field, path);
		else
			ck_assert_msg(a.status == lim[i].status, "%s: %ld %.300s", path, a.status, a.body.p);
		ans_free(&a);
	}

	/* Another tenant's event is no event of this one. */
	post_events(&s, s.key, 1000, 1);
	cl_get(&c, "/v1/events/lr-1000/proof", NULL, &a);
	expect_prob(&a, 404, "not_found", NULL, "another tenant's event");
	ans_free(&a);
	cl_get(&c, "/v1/events/lr-1000", NULL, &a);
	ck_assert_int_eq(a.status, 404);
	ans_free(&a);

	/* The gate: events:read, and a key at all. */
	struct tenant w;
	tenant_make(&s, "log-w", "[\"events:write\"]", &w);
	it_stack_sync(&s);
	struct cl wc, none;
	cl_init(&wc, s.dp_url, w.key);
	cl_init(&none, s.dp_url, NULL);
	const char *gated[] = { "/v1/checkpoints/latest", "/v1/checkpoints/1", "/v1/checkpoints/consistency?from=1&to=1",
		                "/v1/events/lr-0/proof" };
	for (size_t i = 0; i < sizeof gated / sizeof gated[0]; i++) {
		cl_get(&wc, gated[i], NULL, &a);
		expect_prob(&a, 403, "insufficient_scope", NULL, gated[i]);
		ans_free(&a);
		cl_get(&none, gated[i], NULL, &a);
		ck_assert_msg(a.status == 401, "%s without a key: %ld", gated[i], a.status);
		ans_free(&a);
	}
	cl_free(&wc);
	cl_free(&none);

	/* An event stored and not appended yet (no commit of its tenant has
	 * told the appender, and it does not sweep): 409, until a commit of
	 * the tenant gets both appended. */
	sql_event(&s, t.id);
	cl_get(&c, "/v1/events/sql-1/proof", NULL, &a);
	expect_prob(&a, 409, "conflict", NULL, "an event not in the log yet");
	ans_free(&a);
	post_events(&s, t.key, 40, 1);
	ck_assert_int_eq(wait_covered(&c, size + 2), size + 2);
	cl_get(&c, "/v1/events/sql-1/proof", NULL, &a);
	ck_assert_msg(a.status == 200, "sql-1 once appended: %ld %.300s", a.status, a.body.p);
	ck_assert_int_eq(json_integer_value(json_object_get(a.json, "leaf_index")), size);
	ans_free(&a);

	keys_free(&ks);
	cl_free(&c);
	it_stack_stop(&s);
}
END_TEST

/* ---- the export's trailer ---- */

struct xp {
	int events;                  /* event lines */
	merkle_hash ev[MAXLEAVES * 2];
	int nlog;                    /* log lines */
	int64_t tree_size;
	int complete;                /* of every log line; -1 when they differ */
	merkle_hash leaf[MAXLEAVES * 2];
	int nleaves;
	json_t *removed;             /* every line's, concatenated */
	json_t *ids;                 /* every line's event_ids, concatenated */
	char *checkpoint;            /* the checkpoint line's token; NULL when none */
	int after_checkpoint;        /* lines after it */
};

/* Splits an NDJSON export into events and trailer, checking the trailer's
 * shape: log lines after the events, consecutive from 0, then one
 * checkpoint line, the last. */
static void xp_parse(const char *body, size_t len, struct xp *x)
{
	memset(x, 0, sizeof *x);
	x->removed = json_array();
	x->ids = json_array();
	x->complete = -2;
	for (const char *p = body; p < body + len;) {
		const char *nl = memchr(p, '\n', (size_t)(body + len - p));
		ck_assert_msg(nl, "NDJSON without its last newline");
		json_t *o = json_loadb(p, (size_t)(nl - p), 0, NULL);
		ck_assert_msg(json_is_object(o), "a line that is not a JSON object");
		json_t *log = json_object_get(o, "log");
		const char *cp = json_string_value(json_object_get(o, "checkpoint"));
		if (x->checkpoint)
			x->after_checkpoint++;
		if (log) {
			ck_assert_int_eq(json_object_size(o), 1);
			ck_assert_int_eq(json_object_size(log), 7);
			ck_assert_ptr_null(x->checkpoint);
			int64_t n = json_integer_value(json_object_get(log, "tree_size"));
			ck_assert_msg(x->nlog == 0 || n == x->tree_size, "log lines of two sizes");
			x->tree_size = n;
			int c = json_is_true(json_object_get(log, "complete"));
			ck_assert_msg(json_is_boolean(json_object_get(log, "complete")), "complete not a boolean");
			x->complete = x->complete == -2 || x->complete == c ? c : -1;
			ck_assert_int_eq(json_integer_value(json_object_get(log, "from")), x->nleaves);
			ck_assert_msg(x->nleaves < MAXLEAVES * 2, "too many leaves for the test");
			int k = hashes_of(json_object_get(log, "leaf_hashes"), x->leaf + x->nleaves,
			                  MAXLEAVES * 2 - x->nleaves);
			ck_assert_int_ge(k, 1);
			ck_assert_int_le(k, 1000);
			x->nleaves += k;
			/* event_ids parallels leaf_hashes. */
			json_t *ids = json_object_get(log, "event_ids");
			ck_assert_msg(json_is_array(ids) && json_array_size(ids) == (size_t)k, "event_ids is not parallel");
			json_array_extend(x->ids, ids);
			json_array_extend(x->removed, json_object_get(log, "removed"));
			x->nlog++;
		} else if (cp) {
			ck_assert_int_eq(json_object_size(o), 1);
			ck_assert_ptr_null(x->checkpoint);
			x->checkpoint = strdup(cp);
		} else {
			ck_assert_msg(x->nlog == 0 && !x->checkpoint, "an event line after the trailer");
			ck_assert_msg(x->events < MAXLEAVES * 2, "too many events for the test");
			ref_leaf(p, (size_t)(nl - p), x->ev[x->events++]);
		}
		json_decref(o);
		p = nl + 1;
	}
	ck_assert_int_eq(x->nleaves, x->tree_size);
	ck_assert_int_eq(x->after_checkpoint, 0);
	ck_assert_msg(!x->nlog == !x->checkpoint, "log lines without a checkpoint line, or the reverse");
}

static void xp_free(struct xp *x)
{
	json_decref(x->removed);
	json_decref(x->ids);
	free(x->checkpoint);
}

static void export_get(struct cl *c, const char *query, struct ans *a)
{
	cl_get(c, it_fmt("/v1/events/export?%s", query), NULL, a);
	ck_assert_msg(a->status == 200, "export %s: %ld %.300s", query, a->status, a->body.p);
}

START_TEST(export_trailer)
{
	struct it_stack s;
	struct tenant t;
	struct cl c;
	struct model md;
	struct keys ks;
	log_setup(&s, &t, &c, &md);
	keys_read(&c, &ks);

	/* An event inserted in SQL, which no commit told the appender of: the
	 * export appends it before it starts, so its checkpoint covers it. */
	sql_event(&s, t.id);
	static const struct {
		const char *query;
		int complete;
	} cases[] = {
		{ "format=ndjson", 1 },
		{ "format=ndjson&order=asc", 1 },
		{ "format=ndjson&actor=u-1", 0 },
		{ "format=ndjson&action=doc.read&order=asc", 0 },
		{ "format=ndjson&since=2000-01-01T00:00:00Z", 0 },
		{ "format=ndjson&q=read", 0 },
		{ "format=ndjson&actor=nobody", 0 },
		{ "format=ndjson&cursor=", 0 }, /* filled in below */
	};
	char cursor[512];
	struct ans a;
	cl_get(&c, "/v1/events?limit=5", NULL, &a);
	snprintf(cursor, sizeof cursor, "%s", it_js(a.json, "next_cursor"));
	ck_assert_str_ne(cursor, "");
	ans_free(&a);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *q = strstr(cases[i].query, "cursor=") ? it_fmt("%s%s", cases[i].query, cursor) : cases[i].query;
		export_get(&c, q, &a);
		struct xp x;
		xp_parse(a.body.p, a.body.len, &x);
		if (i == 0) {
			/* The model now: the 40 events and sql-1, in feed order. */
			model_read(&c, &md);
			ck_assert_int_eq(md.n, 41);
			ck_assert_int_eq(x.events, 41);
		}
		ck_assert_msg(x.nlog == 1 && x.tree_size == md.n, "%s: %d log lines of %" PRId64 " leaves", q, x.nlog,
		              x.tree_size);
		ck_assert_msg(x.complete == cases[i].complete, "%s: complete %d", q, x.complete);
		ck_assert_int_eq(json_array_size(x.removed), 0);
		for (int k = 0; k < md.n; k++) {
			ck_assert_msg(!memcmp(x.leaf[k], md.leaf[k], 32), "%s: leaf %d is not the model's", q, k);
			const char *id = json_string_value(json_array_get(x.ids, (size_t)k));
			ck_assert_msg(id && !strcmp(id, md.ids[k]), "%s: leaf %d names %s, not %s", q, k, id ? id : "null",
			              md.ids[k]);
		}
		cp_check(&ks, &md, t.id, x.checkpoint, strlen(x.checkpoint), md.n, NULL);
		/* Every event line is a leaf, each once. */
		int used[MAXLEAVES * 2] = { 0 };
		for (int e = 0; e < x.events; e++) {
			int k = 0;
			while (k < x.nleaves && memcmp(x.ev[e], x.leaf[k], 32))
				k++;
			ck_assert_msg(k < x.nleaves && !used[k]++, "%s: event line %d is no leaf, or a leaf twice", q, e);
		}
		xp_free(&x);
		ans_free(&a);
	}

	/* CSV has no trailer. */
	export_get(&c, "format=csv", &a);
	ck_assert_ptr_null(strstr(a.body.p, "\"log\""));
	ck_assert_ptr_null(strstr(a.body.p, "checkpoint"));
	int lines = 0;
	for (const char *p = a.body.p; (p = strstr(p, "\r\n")); p += 2)
		lines++;
	ck_assert_int_eq(lines, 42);
	ans_free(&a);

	/* Retention's mark, as retention sets it: the leaf stays, listed as
	 * removed, its event gone. (Partitioned events take deletions only
	 * from a session of a build that knows them.) */
	free(it_sql(s.dp_db, it_fmt("SET celltrail.schema_level = 12; WITH d AS (DELETE FROM events WHERE tenant_id = '%s' AND id = 'lr-2' RETURNING id)"
	                            " UPDATE log_leaves SET event_id = NULL, removed_at = now() FROM d"
	                            " WHERE tenant_id = '%s' AND event_id = d.id",
	                            t.id, t.id)));
	export_get(&c, "format=ndjson", &a);
	struct xp x;
	xp_parse(a.body.p, a.body.len, &x);
	ck_assert_int_eq(x.events, 40);
	ck_assert_int_eq(x.tree_size, 41);
	ck_assert_int_eq(x.complete, 1);
	int lr2 = 0;
	while (strcmp(md.ids[lr2], "lr-2"))
		lr2++;
	ck_assert_int_eq(json_array_size(x.removed), 1);
	ck_assert_int_eq(json_integer_value(json_array_get(x.removed, 0)), lr2);
	/* Its id is gone with its event; the others stay. */
	for (int k = 0; k < md.n; k++) {
		json_t *id = json_array_get(x.ids, (size_t)k);
		ck_assert_msg(k == lr2 ? json_is_null(id) : json_is_string(id) && !strcmp(json_string_value(id), md.ids[k]),
		              "leaf %d's id", k);
	}
	xp_free(&x);

	/* What the service hands out verifies offline, with bin/celltrail-verify
	 * and with the independent implementation in Python: the export
	 * against a checkpoint saved early, a proof, a consistency proof. */
	const char *dir = it_fmt("%s/log-routes-%d", it_env("IT_LOG_DIR"), (int)getpid());
	char d[512];
	snprintf(d, sizeof d, "%s", dir);
	mkdir(d, 0700);
	write_text(it_fmt("%s/export.ndjson", d), a.body.p);
	ans_free(&a);
	struct ans jw, c1, cl2, ev, pr, cons;
	cl_get(&c, "/.well-known/jwks.json", NULL, &jw);
	cl_get(&c, "/v1/checkpoints/1", NULL, &c1);
	cl_get(&c, "/v1/checkpoints/latest", NULL, &cl2);
	cl_get(&c, it_fmt("/v1/events/%s", md.ids[3]), NULL, &ev);
	cl_get(&c, it_fmt("/v1/events/%s/proof", md.ids[3]), NULL, &pr);
	cl_get(&c, "/v1/checkpoints/consistency?from=1&to=41", NULL, &cons);
	ck_assert_msg(jw.status == 200 && c1.status == 200 && cl2.status == 200 && ev.status == 200 &&
	                  pr.status == 200 && cons.status == 200,
	              "the files to verify");
	write_text(it_fmt("%s/jwks.json", d), jw.body.p);
	write_text(it_fmt("%s/old.jws", d), c1.body.p);
	write_text(it_fmt("%s/new.jws", d), cl2.body.p);
	write_text(it_fmt("%s/checkpoints", d), it_fmt("%s\n%s\n", c1.body.p, cl2.body.p));
	write_text(it_fmt("%s/event.json", d), ev.body.p);
	write_text(it_fmt("%s/proof.json", d), pr.body.p);
	write_text(it_fmt("%s/consistency.json", d), cons.body.p);
	ans_free(&jw);
	ans_free(&c1);
	ans_free(&cl2);
	ans_free(&ev);
	ans_free(&pr);
	ans_free(&cons);
	char cv[1024], py[1024], out[4096];
	it_bin("celltrail-verify", cv, sizeof cv);
	snprintf(py, sizeof py, "%s/tests/log/rfc9162.py", it_env("IT_ROOT"));
	char *const run_cv[] = { cv, "--jwks", (char *)it_fmt("%s/jwks.json", d), "--checkpoints",
		                 (char *)it_fmt("%s/checkpoints", d), (char *)it_fmt("%s/export.ndjson", d), NULL };
	ck_assert_msg(it_run("celltrail-verify", run_cv, NULL, out, sizeof out) == 0 && !strncmp(out, "verified:", 9),
	              "celltrail-verify: %s", out);
	char *const run_py[] = { "/usr/bin/python3", py, "verify-export", "--jwks", (char *)it_fmt("%s/jwks.json", d),
		                 "--checkpoints", (char *)it_fmt("%s/checkpoints", d),
		                 (char *)it_fmt("%s/export.ndjson", d), NULL };
	ck_assert_msg(it_run("rfc9162-export", run_py, NULL, out, sizeof out) == 0, "rfc9162.py verify-export: %s", out);
	char *const run_pp[] = { "/usr/bin/python3", py, "verify-proof", "--jwks", (char *)it_fmt("%s/jwks.json", d),
		                 "--checkpoint", (char *)it_fmt("%s/new.jws", d), "--event",
		                 (char *)it_fmt("%s/event.json", d), "--proof", (char *)it_fmt("%s/proof.json", d), NULL };
	ck_assert_msg(it_run("rfc9162-proof", run_pp, NULL, out, sizeof out) == 0, "rfc9162.py verify-proof: %s", out);
	char *const run_pc[] = { "/usr/bin/python3", py, "verify-consistency", "--jwks", (char *)it_fmt("%s/jwks.json", d),
		                 "--old", (char *)it_fmt("%s/old.jws", d), "--new", (char *)it_fmt("%s/new.jws", d),
		                 "--proof", (char *)it_fmt("%s/consistency.json", d), NULL };
	ck_assert_msg(it_run("rfc9162-consistency", run_pc, NULL, out, sizeof out) == 0,
	              "rfc9162.py verify-consistency: %s", out);

	keys_free(&ks);
	cl_free(&c);
	it_stack_stop(&s);
}
END_TEST

/* Verifies an NDJSON export offline with bin/celltrail-verify against the
 * service's JWKS and newest checkpoint; returns its first line. */
static void verify_offline(struct cl *c, const char *body, const char *tag, char *out, size_t outlen)
{
	const char *d = it_fmt("%s/log-routes-%s-%d", it_env("IT_LOG_DIR"), tag, (int)getpid());
	char dir[512], cv[1024];
	snprintf(dir, sizeof dir, "%s", d);
	mkdir(dir, 0700);
	struct ans jw, cl;
	cl_get(c, "/.well-known/jwks.json", NULL, &jw);
	cl_get(c, "/v1/checkpoints/latest", NULL, &cl);
	ck_assert_msg(jw.status == 200 && cl.status == 200, "jwks %ld, latest %ld", jw.status, cl.status);
	write_text(it_fmt("%s/export.ndjson", dir), body);
	write_text(it_fmt("%s/jwks.json", dir), jw.body.p);
	write_text(it_fmt("%s/checkpoints", dir), it_fmt("%s\n", cl.body.p));
	ans_free(&jw);
	ans_free(&cl);
	it_bin("celltrail-verify", cv, sizeof cv);
	char *const run_cv[] = { cv, "--jwks", (char *)it_fmt("%s/jwks.json", dir), "--checkpoints",
		                 (char *)it_fmt("%s/checkpoints", dir), (char *)it_fmt("%s/export.ndjson", dir), NULL };
	ck_assert_msg(it_run("celltrail-verify", run_cv, NULL, out, outlen) == 0 && !strncmp(out, "verified:", 9),
	              "celltrail-verify (%s): %s", tag, out);
}

/* A week of events removed whole by retention, as the data plane removes
 * it (events_partition_hold and events_partition_remove, in one
 * transaction): no leaf is marked, yet the export lists every leaf of that
 * week as removed, by its event's occurred_at, and the rest verifies
 * offline; an event stored in that week afterwards is not removed, nor is
 * one of another week. */
START_TEST(week_removed)
{
	struct it_stack s;
	struct tenant t;
	struct cl c;
	struct model md;
	log_setup(&s, &t, &c, &md); /* 40 events of now */
	/* Three of 8 days ago: another week. */
	char at[32];
	time_t old = time(NULL) - 8 * 86400;
	strftime(at, sizeof at, "%Y-%m-%dT%H:%M:%SZ", gmtime(&old));
	struct it_resp r;
	const char *const h[] = { it_fmt("Authorization: Bearer %s", t.key), "Content-Type: application/json", NULL };
	for (int i = 0; i < 3; i++) {
		const char *body = it_fmt("{\"id\":\"old-%d\",\"occurred_at\":\"%s\",\"action\":\"doc.read\","
		                          "\"actor\":{\"id\":\"u-1\",\"type\":\"user\"}}", i, at);
		it_http(&r, "POST", it_fmt("%s/v1/events", s.dp_url), h, body, strlen(body));
		ck_assert_msg(r.status == 201, "POST old-%d: %ld %.300s", i, r.status, r.body);
		it_resp_free(&r);
	}
	ck_assert_int_eq(wait_covered(&c, 43), 43);
	/* This week's partition holds the 40. */
	char *week = it_sql(s.dp_db, it_fmt("SELECT DISTINCT tableoid::regclass::text FROM events "
	                                    "WHERE tenant_id = '%s' AND id LIKE 'lr-%%'", t.id));
	ck_assert_msg(week && !strncmp(week, "events_w", 8), "the 40 events are in %s", week ? week : "(none)");
	ck_assert_int_eq(sqll(s.dp_db, it_fmt("SELECT count(*) FROM events WHERE tableoid = '%s'::regclass", week)), 40);
	free(it_sql(s.dp_db, it_fmt("BEGIN; SELECT events_partition_hold('%s'); SELECT events_partition_remove('%s');"
	                            " COMMIT", week, week)));
	ck_assert_int_eq(sqll(s.dp_db, it_fmt("SELECT count(*) FROM log_leaves WHERE tenant_id = '%s' AND "
	                                      "(removed_at IS NOT NULL OR event_id IS NULL)", t.id)),
	                 0);
	free(week);

	struct ans a;
	struct xp x;
	char out[4096];
	export_get(&c, "format=ndjson", &a);
	xp_parse(a.body.p, a.body.len, &x);
	ck_assert_int_eq(x.events, 3);
	ck_assert_int_eq(x.tree_size, 43);
	ck_assert_int_eq(json_array_size(x.removed), 40);
	for (int k = 0; k < 43; k++) {
		json_t *id = json_array_get(x.ids, (size_t)k);
		ck_assert_msg(k < 40 ? json_is_null(id) : json_is_string(id), "leaf %d's id", k);
	}
	verify_offline(&c, a.body.p, "week", out, sizeof out);
	ck_assert_msg(strstr(out, "(40 removed)"), "celltrail-verify: %s", out);
	xp_free(&x);
	ans_free(&a);

	/* The week takes events again: the new one is no removed leaf. */
	post_events(&s, t.key, 100, 1);
	ck_assert_int_eq(wait_covered(&c, 44), 44);
	export_get(&c, "format=ndjson", &a);
	xp_parse(a.body.p, a.body.len, &x);
	ck_assert_int_eq(x.events, 4);
	ck_assert_int_eq(json_array_size(x.removed), 40);
	ck_assert_str_eq(json_string_value(json_array_get(x.ids, 43)), "lr-100");
	verify_offline(&c, a.body.p, "week-again", out, sizeof out);
	xp_free(&x);
	ans_free(&a);

	cl_free(&c);
	it_stack_stop(&s);
}
END_TEST

START_TEST(log_off)
{
	/* DP_LOG=false: no log, so no checkpoint, proof or trailer. */
	struct it_stack s;
	const char *const env[] = { "DP_LOG=false", NULL };
	it_stack_start(&s, "us", NULL, env);
	post_events(&s, s.key, 0, 3);
	struct cl c;
	cl_init(&c, s.dp_url, s.key);
	const char *routes[] = { "/v1/checkpoints/latest", "/v1/checkpoints/1", "/v1/checkpoints/consistency?from=1&to=1",
		                 "/v1/events/lr-0/proof" };
	struct ans a;
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		cl_get(&c, routes[i], NULL, &a);
		expect_prob(&a, 404, "not_found", NULL, routes[i]);
		ans_free(&a);
	}
	export_get(&c, "format=ndjson", &a);
	struct xp x;
	xp_parse(a.body.p, a.body.len, &x);
	ck_assert_int_eq(x.events, 3);
	ck_assert_int_eq(x.nlog, 0);
	xp_free(&x);
	ans_free(&a);
	cl_free(&c);
	it_stack_stop(&s);
}
END_TEST

Suite *log_routes_suite(void)
{
	Suite *s = suite_create("log-routes");
	const TTest *const tests[] = { proofs_and_checkpoints, export_trailer, week_removed, log_off };
	it_add_tests(s, tests, sizeof tests / sizeof tests[0], NULL, NULL, 240);
	return s;
}
