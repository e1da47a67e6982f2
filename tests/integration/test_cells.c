/* Cells from the control plane's side, from outside: the catalog of a
 * region's cells (list, add, status) with every limit at both ends,
 * placement of new tenants against a reference model, cell documents that
 * hold exactly their cell's tenants and keys (checked exhaustively against
 * a model, signature verified with the trust bundle), the routes document,
 * who may read which document, long polls on the cell route, and usage
 * reported by a cell. */
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cfgdoc.h"
#include "cpfx.h"
#include "secret.h"

static char keys_env[700];

static void setup(void)
{
	snprintf(keys_env, sizeof keys_env, "CP_SIGNING_KEYS_DIR=%s/keys-cells-%d", it_env("IT_LOG_DIR"),
	         (int)getpid());
	const char *const extra[] = { keys_env, NULL };
	cpfx_start("it_cells", extra);
}

static void teardown(void)
{
	cpfx_stop();
}

/* ---- helpers ---- */

/* A request as the admin that must be answered `want`; the answer's JSON
 * (caller decrefs; NULL without a body). */
#define ADM(method, path, body, want) adm((method), (path), (body), (want), __LINE__)
static json_t *adm(const char *method, const char *path, const char *body, long want, int line)
{
	struct res r;
	api(&r, method, path, ADMIN_TOKEN, body);
	ck_assert_msg(r.status == want, "line %d: %s %s: %ld, want %ld: %.300s", line, method, path,
	              r.status, want, r.raw.body);
	json_t *j = r.json ? json_incref(r.json) : NULL;
	res_free(&r);
	return j;
}

/* The problem's code and field of a refused admin request. */
#define ADM_PROBLEM(method, path, body, st, code, field)                                          \
	do {                                                                                       \
		struct res r_;                                                                         \
		api(&r_, (method), (path), ADMIN_TOKEN, (body));                                       \
		EXPECT_PROBLEM_SOME(&r_, (st), (code), (field));                                       \
		res_free(&r_);                                                                         \
	} while (0)

static long long ji(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

/* A tenant of `region`, in `cell` when not NULL; its id and cell. */
static void tenant_in(const char *slug, const char *region, const char *cell, char id[37], char got[64])
{
	json_t *t = ADM("POST", "/v1/tenants",
	                cell ? it_fmt("{\"name\":\"T %s\",\"slug\":\"%s\",\"region\":\"%s\",\"plan\":\"free\","
	                              "\"cell\":\"%s\"}", slug, slug, region, cell)
	                     : it_fmt("{\"name\":\"T %s\",\"slug\":\"%s\",\"region\":\"%s\",\"plan\":\"free\"}",
	                              slug, slug, region),
	                201);
	snprintf(id, 37, "%s", it_js(t, "id"));
	if (got)
		snprintf(got, 64, "%s", it_js(t, "cell"));
	if (cell)
		ck_assert_str_eq(it_js(t, "cell"), cell);
	json_decref(t);
}

/* A credential: "regions/<r>" or "cells/<c>". */
static void credential(const char *what, char token[160])
{
	json_t *j = ADM("POST", it_fmt("/v1/%s/credentials", what), NULL, 201);
	snprintf(token, 160, "%s", it_js(j, "token"));
	json_decref(j);
}

static long version_of(const char *region)
{
	return qlong(it_fmt("SELECT config_version FROM regions WHERE name = '%s'", region));
}

/* GET a document route (`path`) with `token`, If-None-Match `etag` and ?wait= when nonzero. */
static void fetch(struct doc *d, const char *path, const char *token, const char *etag, int wait)
{
	doc_fetch(d, it_fmt("%s%s", cpfx.url, path), token, etag, wait);
}

static json_t *b64json(const char *s, size_t n)
{
	char *raw = malloc(n + 1);
	long m = secret_unb64url(s, n, raw, n);
	ck_assert_int_gt(m, 0);
	json_error_t e;
	json_t *j = json_loadb(raw, (size_t)m, 0, &e);
	free(raw);
	ck_assert_msg(j != NULL, "not JSON: %s", e.text);
	return j;
}

/* Verifies a compact JWS against the control plane's published keys:
 * header alg ES256 and a kid of the trust bundle, the ES256 signature over
 * exactly the bytes sent, iss, aud, and iat <= now < exp. Returns the
 * claims (caller decrefs). */
static json_t *verified(const struct doc *d, const char *aud)
{
	char path[600], err[300];
	struct cfgdoc_trust t;
	snprintf(path, sizeof path, "%s/trust-cells-%d.json", it_env("IT_LOG_DIR"), (int)getpid());
	it_write_trust(cpfx.url, path);
	ck_assert_msg(cfgdoc_trust_load(path, &t, err, sizeof err) == 0, "%s", err);
	ck_assert_int_eq(d->status, 200);
	const char *a = strchr(d->body, '.'), *b = a ? strchr(a + 1, '.') : NULL;
	ck_assert_ptr_nonnull(b);
	json_t *hdr = b64json(d->body, (size_t)(a - d->body));
	ck_assert_str_eq(it_js(hdr, "alg"), "ES256");
	const struct jwk *key = NULL;
	for (size_t i = 0; i < t.n; i++)
		if (!strcmp(t.keys[i].kid, it_js(hdr, "kid")))
			key = &t.keys[i];
	ck_assert_msg(key != NULL, "kid %s is not in the trust bundle", it_js(hdr, "kid"));
	json_decref(hdr);

	unsigned char raw[64];
	ck_assert_int_eq(secret_unb64url(b + 1, d->len - (size_t)(b + 1 - d->body), raw, sizeof raw), 64);
	BIO *bio = BIO_new_mem_buf(key->public_pem, -1);
	EVP_PKEY *pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	ECDSA_SIG *sig = ECDSA_SIG_new();
	ck_assert_int_eq(ECDSA_SIG_set0(sig, BN_bin2bn(raw, 32, NULL), BN_bin2bn(raw + 32, 32, NULL)), 1);
	unsigned char *der = NULL;
	int derlen = i2d_ECDSA_SIG(sig, &der);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	ck_assert_int_eq(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pkey), 1);
	int ok = EVP_DigestVerify(md, der, (size_t)derlen, (const unsigned char *)d->body,
	                          (size_t)(b - d->body));
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	ECDSA_SIG_free(sig);
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	cfgdoc_trust_free(&t);
	ck_assert_msg(ok == 1, "the %s document's signature does not verify", aud);

	json_t *c = b64json(a + 1, (size_t)(b - a - 1));
	long long now = time(NULL);
	ck_assert_str_eq(it_js(c, "iss"), "celltrail-control-plane");
	ck_assert_str_eq(it_js(c, "aud"), aud);
	ck_assert_msg(ji(c, "iat") <= now + 5 && ji(c, "exp") > now, "outside its lifetime");
	ck_assert_int_eq(ji(c, "fmt"), CFGDOC_FMT);
	return c;
}

/* The usage batch of one record of `tenant` this month. */
static const char *usage_body(const char *tenant, long events)
{
	char month[8];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(month, sizeof month, "%Y-%m", &tm);
	return it_fmt("{\"tenant\":\"%s\",\"period\":\"%s\",\"events\":%ld,\"window_start\":\"%s-01T00:00:00Z\","
	              "\"window_end\":\"%s-01T00:01:00Z\"}", tenant, month, events, month, month);
}

/* ---- the catalog ---- */

/* An admin lists a region's cells (one shared active cell per cloud
 * region, seeded), adds shared and dedicated ones and changes their
 * status; every name limit is tried at both ends, a cell never takes a
 * region's name nor a region a cell's, every change is audited and
 * raises the region's config version only. */
START_TEST(catalog)
{
	json_t *j = ADM("GET", "/v1/regions/us/cells", NULL, 200);
	json_t *items = json_object_get(j, "items");
	static const char *const seeded[] = { "us-east-1", "us-east-2", "us-west-2" };
	ck_assert_int_eq(json_array_size(items), 3);
	ck_assert_str_eq(it_js(j, "region"), "us");
	ck_assert(json_is_false(json_object_get(j, "has_more")));
	for (size_t i = 0; i < 3; i++) {
		json_t *c = json_array_get(items, i);
		ck_assert_str_eq(it_js(c, "name"), seeded[i]);
		ck_assert_str_eq(it_js(c, "region"), "us");
		ck_assert_str_eq(it_js(c, "kind"), "shared");
		ck_assert_str_eq(it_js(c, "status"), "active");
		ck_assert_int_eq(ji(c, "tenants"), 0);
		ck_assert_ptr_null(json_object_get(c, "tenant_id"));
	}
	json_decref(j);
	ADM_PROBLEM("GET", "/v1/regions/zz/cells", NULL, 404, "not_found", NULL);
	ADM_PROBLEM("GET", "/v1/regions/Bad/cells", NULL, 404, "not_found", NULL);

	long us = version_of("us"), eu = version_of("eu");
	long audits = qlong("SELECT count(*) FROM audit_log WHERE action LIKE 'cell.%'");
	/* Names: 2 and 63 characters pass, 1 and 64 do not; bad characters. */
	char n63[64], n64[65];
	memset(n63, 'a', 63);
	n63[63] = '\0';
	memset(n64, 'a', 64);
	n64[64] = '\0';
	json_decref(ADM("POST", "/v1/regions/us/cells", "{\"name\":\"ab\",\"kind\":\"shared\"}", 201));
	json_decref(ADM("POST", "/v1/regions/us/cells", it_fmt("{\"name\":\"%s\",\"kind\":\"shared\"}", n63), 201));
	const char *const bad[] = { "a", n64, "Ab", "a_b", "1ab", "a b", "-ab", "ab.c", "" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ADM_PROBLEM("POST", "/v1/regions/us/cells", it_fmt("{\"name\":\"%s\",\"kind\":\"shared\"}", bad[i]),
		            400, "validation_failed", "name");
	ADM_PROBLEM("POST", "/v1/regions/us/cells", "{\"name\":\"eu\",\"kind\":\"shared\"}", 409, "conflict", "name");
	ADM_PROBLEM("POST", "/v1/regions/us/cells", "{\"name\":\"ab\",\"kind\":\"shared\"}", 409, "conflict", "name");
	ADM_PROBLEM("POST", "/v1/regions/us/cells", "{\"name\":\"eu-west-1\",\"kind\":\"shared\"}", 409, "conflict", "name");
	ADM_PROBLEM("POST", "/v1/regions/zz/cells", "{\"name\":\"zz-1\",\"kind\":\"shared\"}", 404, "not_found", NULL);
	ADM_PROBLEM("POST", "/v1/regions/us/cells", "{\"name\":\"us-x\",\"kind\":\"big\"}", 400, "validation_failed", "kind");
	ADM_PROBLEM("POST", "/v1/regions/us/cells", "{\"name\":\"us-x\"}", 400, "validation_failed", "kind");
	ADM_PROBLEM("POST", "/v1/regions/us/cells", "{\"name\":\"us-x\",\"kind\":\"shared\",\"extra\":1}", 400,
	            "validation_failed", "extra");
	/* A dedicated cell for a tenant of the region; not for one elsewhere. */
	char t_us[37], t_eu[37];
	tenant_in("acme", "us", NULL, t_us, NULL);
	tenant_in("euro", "eu", NULL, t_eu, NULL);
	ADM_PROBLEM("POST", "/v1/regions/us/cells",
	            it_fmt("{\"name\":\"us-x\",\"kind\":\"shared\",\"tenant_id\":\"%s\"}", t_us), 400,
	            "validation_failed", "tenant_id");
	ADM_PROBLEM("POST", "/v1/regions/us/cells",
	            it_fmt("{\"name\":\"us-x\",\"kind\":\"dedicated\",\"tenant_id\":\"%s\"}", t_eu), 422,
	            "unprocessable", "tenant_id");
	j = ADM("POST", "/v1/regions/us/cells",
	        it_fmt("{\"name\":\"us-west-2-acme\",\"kind\":\"dedicated\",\"tenant_id\":\"%s\"}", t_us), 201);
	ck_assert_str_eq(it_js(j, "kind"), "dedicated");
	ck_assert_str_eq(it_js(j, "tenant_id"), t_us);
	ck_assert_str_eq(it_js(j, "status"), "active");
	json_decref(j);
	/* One cell reads as the list shows it; only as its own region's. */
	j = ADM("GET", "/v1/regions/us/cells/us-west-2-acme", NULL, 200);
	ck_assert_str_eq(it_js(j, "name"), "us-west-2-acme");
	ck_assert_str_eq(it_js(j, "kind"), "dedicated");
	ck_assert_str_eq(it_js(j, "tenant_id"), t_us);
	json_decref(j);
	ADM_PROBLEM("GET", "/v1/regions/eu/cells/us-west-2-acme", NULL, 404, "not_found", NULL);
	ADM_PROBLEM("GET", "/v1/regions/us/cells/us-nowhere", NULL, 404, "not_found", NULL);
	ADM_PROBLEM("GET", "/v1/regions/us/cells/A", NULL, 404, "not_found", NULL);
	/* Three additions and a tenant: four bumps of us; eu's only for its tenant. */
	ck_assert_int_eq(version_of("us"), us + 4);
	ck_assert_int_eq(version_of("eu"), eu + 1);
	ck_assert_int_eq(qlong("SELECT count(*) FROM audit_log WHERE action = 'cell.create'") , audits + 3);

	/* Status: each value, an unknown one, unknown cells, a cell of another
	 * region; closing a cell that holds tenants is refused. */
	char placed[64], t2[37];
	tenant_in("beta", "us", "us-east-2", t2, placed);
	ADM_PROBLEM("PATCH", "/v1/regions/us/cells/us-east-2", "{\"status\":\"gone\"}", 400, "validation_failed", "status");
	ADM_PROBLEM("PATCH", "/v1/regions/us/cells/us-east-2", "{}", 400, "validation_failed", "status");
	ADM_PROBLEM("PATCH", "/v1/regions/us/cells/nope-1", "{\"status\":\"draining\"}", 404, "not_found", NULL);
	ADM_PROBLEM("PATCH", "/v1/regions/us/cells/eu-west-1", "{\"status\":\"draining\"}", 404, "not_found", NULL);
	ADM_PROBLEM("PATCH", "/v1/regions/us/cells/us-east-2", "{\"status\":\"closed\"}", 409, "conflict", "status");
	us = version_of("us");
	j = ADM("PATCH", "/v1/regions/us/cells/us-east-2", "{\"status\":\"draining\"}", 200);
	ck_assert_str_eq(it_js(j, "status"), "draining");
	ck_assert_int_eq(ji(j, "tenants"), 1);
	json_decref(j);
	json_decref(ADM("DELETE", it_fmt("/v1/tenants/%s", t2), NULL, 200));
	j = ADM("PATCH", "/v1/regions/us/cells/us-east-2", "{\"status\":\"closed\"}", 200);
	ck_assert_str_eq(it_js(j, "status"), "closed");
	ck_assert_int_eq(ji(j, "tenants"), 0);
	json_decref(j);
	json_decref(ADM("PATCH", "/v1/regions/us/cells/us-east-2", "{\"status\":\"active\"}", 200));
	ck_assert_int_eq(version_of("us"), us + 4); /* three status changes and a deletion */
	ck_assert_int_eq(qlong("SELECT count(*) FROM audit_log WHERE action = 'cell.update'"), 3);
	ck_assert_int_eq(qlong("SELECT count(*) FROM audit_log WHERE action = 'cell.update'"
	                       " AND before->>'status' = 'draining' AND after->>'status' = 'closed'"), 1);

	/* A new region brings a cell per cloud region; a region never takes a
	 * cell's name. */
	json_decref(ADM("POST", "/v1/regions",
	                "{\"name\":\"br\",\"display_name\":\"Brazil\",\"cloud_regions\":[\"sa-east-1\",\"sa-east-2\"],"
	                "\"endpoint\":\"https://br.api.celltrail.example\",\"wave\":4}", 201));
	j = ADM("GET", "/v1/regions/br/cells", NULL, 200);
	ck_assert_int_eq(json_array_size(json_object_get(j, "items")), 2);
	ck_assert_str_eq(it_js(json_array_get(json_object_get(j, "items"), 1), "name"), "sa-east-2");
	json_decref(j);
	ADM_PROBLEM("POST", "/v1/regions",
	            "{\"name\":\"ab\",\"display_name\":\"AB\",\"cloud_regions\":[\"ab-1\"],"
	            "\"endpoint\":\"https://ab.api.celltrail.example\",\"wave\":4}", 409, "conflict", "name");
}
END_TEST

/* ---- placement ---- */

/* The model of placement: cells of a region with their kind, status and
 * count of tenants not deleted. */
struct mcell {
	const char *name;
	int dedicated, active;
	int tenants;
};

/* The cell the model places a new tenant in: the active shared cell with
 * the fewest tenants, ties by name (cells are in name order); NULL if none. */
static struct mcell *model_place(struct mcell *m, size_t n)
{
	struct mcell *best = NULL;
	for (size_t i = 0; i < n; i++)
		if (!m[i].dedicated && m[i].active && (!best || m[i].tenants < best->tenants))
			best = &m[i];
	return best;
}

static void expect_counts(const struct mcell *m, size_t n)
{
	json_t *j = ADM("GET", "/v1/regions/us/cells", NULL, 200);
	json_t *items = json_object_get(j, "items");
	ck_assert_int_eq(json_array_size(items), n);
	for (size_t i = 0; i < n; i++) {
		ck_assert_str_eq(it_js(json_array_get(items, i), "name"), m[i].name);
		ck_assert_msg(ji(json_array_get(items, i), "tenants") == m[i].tenants, "%s holds %lld, want %d",
		              m[i].name, ji(json_array_get(items, i), "tenants"), m[i].tenants);
	}
	json_decref(j);
}

/* New tenants go to the least loaded active shared cell (ties by name),
 * never to a draining or closed one nor, unless named, to a dedicated
 * one; an admin may name a cell; with no active shared cell the answer
 * is 409. Only the admin's view shows the cell. A tenant inserted by the
 * previous build (no cell) is placed by the same rule. */
START_TEST(placement)
{
	struct mcell m[] = { { "us-east-1", 0, 1, 0 }, { "us-east-2", 0, 1, 0 },
		                 { "us-west-2", 0, 1, 0 }, { "us-west-2-big", 1, 1, 0 } };
	const size_t n = sizeof m / sizeof m[0];
	char id[37], cell[64], ids[16][37];
	int k = 0;

	json_decref(ADM("POST", "/v1/regions/us/cells", "{\"name\":\"us-west-2-big\",\"kind\":\"dedicated\"}", 201));
	/* Phase 1: all shared cells active; 2: us-east-1 draining; 3: one
	 * tenant deleted; 4: us-east-1 active again. */
	for (int phase = 1; phase <= 4; phase++) {
		if (phase == 2) {
			json_decref(ADM("PATCH", "/v1/regions/us/cells/us-east-1", "{\"status\":\"draining\"}", 200));
			m[0].active = 0;
		}
		if (phase == 3) {
			/* ids[1] went to us-east-2 */
			json_decref(ADM("DELETE", it_fmt("/v1/tenants/%s", ids[1]), NULL, 200));
			m[1].tenants--;
		}
		if (phase == 4) {
			json_decref(ADM("PATCH", "/v1/regions/us/cells/us-east-1", "{\"status\":\"active\"}", 200));
			m[0].active = 1;
		}
		for (int i = 0; i < 3; i++, k++) {
			struct mcell *want = model_place(m, n);
			tenant_in(it_fmt("place-%d", k), "us", NULL, ids[k], cell);
			ck_assert_msg(!strcmp(cell, want->name), "tenant %d (phase %d) went to %s, want %s", k, phase,
			              cell, want->name);
			want->tenants++;
		}
		expect_counts(m, n);
	}
	/* The admin's views carry the cell; a member's does not. */
	json_t *t = ADM("GET", it_fmt("/v1/tenants/%s", ids[0]), NULL, 200);
	ck_assert_str_eq(it_js(t, "cell"), "us-east-1");
	json_decref(t);
	t = ADM("GET", "/v1/tenants?region=us&limit=100", NULL, 200);
	ck_assert_str_eq(it_js(json_array_get(json_object_get(t, "items"), 0), "cell"), "us-east-1");
	json_decref(t);
	char tok[128];
	struct res r;
	new_user(ids[0], "member@place.test", "member", NULL);
	login("place-0", "member@place.test", tok);
	api(&r, "GET", it_fmt("/v1/tenants/%s", ids[0]), tok, NULL);
	EXPECT(&r, 200);
	ck_assert_ptr_null(json_object_get(r.json, "cell"));
	res_free(&r);
	api(&r, "GET", "/v1/tenants", tok, NULL);
	EXPECT(&r, 200);
	ck_assert_ptr_null(json_object_get(json_array_get(json_object_get(r.json, "items"), 0), "cell"));
	res_free(&r);
	/* Nor does an owner's audit log (its records of the tenant). */
	new_user(ids[0], "owner@place.test", "owner", NULL);
	login("place-0", "owner@place.test", tok);
	api(&r, "GET", "/v1/audit-log", tok, NULL);
	EXPECT(&r, 200);
	ck_assert_int_gt(json_array_size(json_object_get(r.json, "items")), 0);
	ck_assert_msg(!strstr(r.raw.body, "us-east-1"), "an owner's audit log names the cell: %.300s", r.raw.body);
	res_free(&r);
	t = ADM("GET", it_fmt("/v1/audit-log?tenant_id=%s", ids[0]), NULL, 200);
	char *all = json_dumps(t, JSON_COMPACT);
	ck_assert_ptr_nonnull(strstr(all, "\"cell\":\"us-east-1\""));
	free(all);
	json_decref(t);

	/* Named cells: a dedicated one takes its first tenant and no other. */
	tenant_in("big-one", "us", "us-west-2-big", id, NULL);
	m[3].tenants++;
	t = ADM("GET", "/v1/regions/us/cells", NULL, 200);
	ck_assert_str_eq(it_js(json_array_get(json_object_get(t, "items"), 3), "tenant_id"), id);
	json_decref(t);
	const char *body = "{\"name\":\"X\",\"slug\":\"named-x\",\"region\":\"us\",\"plan\":\"free\",\"cell\":\"%s\"}";
	ADM_PROBLEM("POST", "/v1/tenants", it_fmt(body, "us-west-2-big"), 409, "conflict", "cell");
	ADM_PROBLEM("POST", "/v1/tenants", it_fmt(body, "eu-west-1"), 422, "unprocessable", "cell");
	ADM_PROBLEM("POST", "/v1/tenants", it_fmt(body, "no-such-cell"), 422, "unprocessable", "cell");
	ADM_PROBLEM("POST", "/v1/tenants", it_fmt(body, "Bad_Cell"), 400, "validation_failed", "cell");
	json_decref(ADM("PATCH", "/v1/regions/us/cells/us-east-2", "{\"status\":\"draining\"}", 200));
	ADM_PROBLEM("POST", "/v1/tenants", it_fmt(body, "us-east-2"), 409, "conflict", "cell");
	m[1].active = 0;
	tenant_in("named-ok", "us", "us-west-2", id, NULL);
	m[2].tenants++;
	expect_counts(m, n);

	/* The previous build inserts without a cell: placed by the same rule. */
	struct mcell *want = model_place(m, n);
	char *c = q("INSERT INTO tenants (slug, name, region, plan) VALUES ('old-build', 'Old', 'us', 'free')"
	            " RETURNING cell");
	ck_assert_str_eq(c, want->name);
	free(c);
	want->tenants++;

	/* No active shared cell: 409, nothing created. */
	json_decref(ADM("PATCH", "/v1/regions/us/cells/us-east-1", "{\"status\":\"draining\"}", 200));
	json_decref(ADM("PATCH", "/v1/regions/us/cells/us-west-2", "{\"status\":\"draining\"}", 200));
	long before = qlong("SELECT count(*) FROM tenants");
	ADM_PROBLEM("POST", "/v1/tenants", "{\"name\":\"X\",\"slug\":\"nowhere\",\"region\":\"us\",\"plan\":\"free\"}",
	            409, "conflict", NULL);
	ck_assert_int_eq(qlong("SELECT count(*) FROM tenants"), before);
	/* ...while the named dedicated cell is still never chosen. */
	ck_assert_int_eq(qlong("SELECT count(*) FROM tenants WHERE cell = 'us-west-2-big'"), 1);
}
END_TEST

/* ---- documents ---- */

/* The model of the documents: tenants with their cell, status and keys. */
enum kstate { K_LIVE, K_REVOKED, K_EXPIRED };
struct mkey {
	char id[25];
	char sha[48];   /* base64url SHA-256 of the secret */
	enum kstate state;
};
struct mtenant {
	char id[37], slug[32], region[8], cell[64];
	int deleted;
	struct mkey keys[3];
	int nkeys;
};

/* A key of `t` in state `state`; records its id and hash. */
static void model_key(struct mtenant *t, enum kstate state)
{
	struct mkey *k = &t->keys[t->nkeys++];
	json_t *j = ADM("POST", it_fmt("/v1/tenants/%s/api-keys", t->id),
	                "{\"name\":\"k\",\"scopes\":[\"events:write\",\"events:read\"]}", 201);
	snprintf(k->id, sizeof k->id, "%s", it_js(j, "id"));
	char *h = q(it_fmt("SELECT rtrim(translate(encode(secret_sha256, 'base64'), '+/', '-_'), '=')"
	                   " FROM api_keys WHERE id = '%s'", k->id));
	snprintf(k->sha, sizeof k->sha, "%s", h);
	free(h);
	json_decref(j);
	k->state = state;
	if (state == K_REVOKED)
		json_decref(ADM("DELETE", it_fmt("/v1/tenants/%s/api-keys/%s", t->id, k->id), NULL, 200));
	if (state == K_EXPIRED)
		free(q(it_fmt("UPDATE api_keys SET expires_at = now() - interval '1 hour' WHERE id = '%s'", k->id)));
}

/* Builds the world of the document tests: in us, three tenants in each of
 * us-east-1 and us-west-2 with 0 to 3 keys in every state, one deleted; a
 * tenant of us-east-2 and one of eu. */
static size_t build_world(struct mtenant *w)
{
	static const struct { const char *region, *cell; int deleted; enum kstate keys[3]; int n; } plan[] = {
		{ "us", "us-east-1", 0, { K_LIVE, K_REVOKED, K_EXPIRED }, 3 },
		{ "us", "us-east-1", 0, { K_LIVE, K_LIVE }, 2 },
		{ "us", "us-east-1", 0, { 0 }, 0 },
		{ "us", "us-west-2", 0, { K_LIVE }, 1 },
		{ "us", "us-west-2", 0, { K_REVOKED, K_LIVE }, 2 },
		{ "us", "us-west-2", 1, { K_LIVE }, 1 },
		{ "us", "us-east-2", 0, { K_LIVE }, 1 },
		{ "eu", "eu-west-1", 0, { K_LIVE, K_LIVE }, 2 },
	};
	size_t n = sizeof plan / sizeof plan[0];
	for (size_t i = 0; i < n; i++) {
		struct mtenant *t = &w[i];
		memset(t, 0, sizeof *t);
		snprintf(t->slug, sizeof t->slug, "doc-%zu", i);
		snprintf(t->region, sizeof t->region, "%s", plan[i].region);
		snprintf(t->cell, sizeof t->cell, "%s", plan[i].cell);
		tenant_in(t->slug, t->region, t->cell, t->id, NULL);
		for (int k = 0; k < plan[i].n; k++)
			model_key(t, plan[i].keys[k]);
		if (plan[i].deleted) {
			json_decref(ADM("DELETE", it_fmt("/v1/tenants/%s", t->id), NULL, 200));
			t->deleted = 1;
			for (int k = 0; k < t->nkeys; k++)
				t->keys[k].state = K_REVOKED; /* offboarding revokes every key */
		}
	}
	return n;
}

/* The tenants text of a document parsed against the model: every tenant
 * and key the model puts in `cell` is there with its fields, and nothing
 * else is (no tenant, key or hash of another cell anywhere in the claims). */
static void check_cell_doc(const struct mtenant *w, size_t n, const char *cell, json_t *claims)
{
	const char *text = it_js(claims, "tenants");
	char *dump = json_dumps(claims, JSON_COMPACT);
	size_t want_t = 0, want_k = 0, got_t = 0, got_k = 0;
	for (size_t i = 0; i < n; i++) {
		const struct mtenant *t = &w[i];
		int in = !strcmp(t->cell, cell);
		want_t += in;
		ck_assert_msg((strstr(dump, t->id) != NULL) == in, "cell %s: tenant %s (cell %s) %s", cell, t->id,
		              t->cell, in ? "missing" : "present");
		const char *rec = strstr(text, it_fmt("t|%s|", t->id));
		if (in) {
			ck_assert_ptr_nonnull(rec);
			char want[4096];
			snprintf(want, sizeof want, "t|%s|%s|%c|free;", t->id, t->slug, t->deleted ? 'd' : 'a');
			ck_assert_msg(!strncmp(rec, want, strlen(want)), "cell %s: %.80s, want %s", cell, rec, want);
		}
		for (int k = 0; k < t->nkeys; k++) {
			/* An expired key stays listed, with its expiry (a data plane
			 * refuses it): a document is a function of its version. */
			int listed = in && t->keys[k].state != K_REVOKED && !t->deleted;
			want_k += listed;
			ck_assert_msg((strstr(dump, t->keys[k].id) != NULL) == listed, "cell %s: key %s %s", cell,
			              t->keys[k].id, listed ? "missing" : "present");
			ck_assert_msg((strstr(dump, t->keys[k].sha) != NULL) == listed, "cell %s: hash of key %s %s",
			              cell, t->keys[k].id, listed ? "missing" : "present");
			if (listed) {
				const char *kr = strstr(text, it_fmt(t->keys[k].state == K_EXPIRED ? "k|%s|%s|wr|" : "k|%s|%s|wr|0;",
				                                     t->keys[k].id, t->keys[k].sha));
				ck_assert_msg(kr && kr > rec, "cell %s: key %s not listed under its tenant", cell,
				              t->keys[k].id);
			}
		}
	}
	for (const char *p = text; *p; p = strchr(p, ';') + 1) {
		got_t += p[0] == 't';
		got_k += p[0] == 'k';
	}
	ck_assert_msg(got_t == want_t && got_k == want_k, "cell %s: %zu tenants and %zu keys, want %zu and %zu",
	              cell, got_t, got_k, want_t, want_k);
	free(dump);
}

/* Each cell's document, verified with the trust bundle, names exactly the
 * tenants placed in that cell and their keys not revoked, and no tenant, key or
 * hash of any other cell or region (checked against a model over 2 cells,
 * their tenants and keys in every state); it carries the cell claim and
 * the region's version. The routes document maps exactly every key of the
 * region that is not revoked to its tenant's cell, names every cell of the
 * region and carries no hash. */
START_TEST(documents)
{
	struct mtenant w[8];
	size_t n = build_world(w);
	char tok[160];
	static const char *const cells[] = { "us-east-1", "us-west-2" };
	for (size_t c = 0; c < 2; c++) {
		struct doc d;
		credential(it_fmt("cells/%s", cells[c]), tok);
		fetch(&d, it_fmt("/v1/cells/%s/config", cells[c]), tok, NULL, 0);
		json_t *claims = verified(&d, it_fmt("cell:%s", cells[c]));
		ck_assert_str_eq(it_js(claims, "kind"), "full");
		ck_assert_int_eq(ji(claims, "ver"), version_of("us"));
		ck_assert_int_eq(atol(d.etag + 1), version_of("us"));
		json_t *cl = json_object_get(claims, "cell");
		ck_assert_str_eq(it_js(cl, "name"), cells[c]);
		ck_assert_str_eq(it_js(cl, "region"), "us");
		ck_assert_str_eq(it_js(cl, "kind"), "shared");
		ck_assert_str_eq(it_js(cl, "status"), "active");
		ck_assert_str_eq(it_js(json_object_get(claims, "region"), "name"), "us");
		ck_assert_ptr_nonnull(json_object_get(json_object_get(claims, "plans"), "free"));
		check_cell_doc(w, n, cells[c], claims);
		json_decref(claims);
		free(d.body);
	}

	/* The routes document. */
	struct doc d;
	credential("regions/us", tok);
	fetch(&d, "/v1/regions/us/routes", tok, NULL, 0);
	json_t *claims = verified(&d, "routes:us");
	ck_assert_str_eq(it_js(claims, "kind"), "routes");
	ck_assert_str_eq(it_js(claims, "region"), "us");
	ck_assert_int_eq(ji(claims, "ver"), version_of("us"));
	ck_assert_ptr_null(json_object_get(claims, "tenants"));
	char *cells_json = json_dumps(json_object_get(claims, "cells"), JSON_COMPACT);
	ck_assert_str_eq(cells_json, "[[\"us-east-1\",\"active\",\"shared\"],[\"us-east-2\",\"active\",\"shared\"],"
	                             "[\"us-west-2\",\"active\",\"shared\"]]");
	free(cells_json);
	/* Expected: every non-revoked key of a us tenant, by key id. */
	char want[8192] = "", *lines[32];
	size_t nl = 0;
	for (size_t i = 0; i < n; i++)
		for (int k = 0; k < w[i].nkeys; k++)
			if (!strcmp(w[i].region, "us") && w[i].keys[k].state != K_REVOKED)
				lines[nl++] = strdup(it_fmt("%s|%s;", w[i].keys[k].id, w[i].cell));
	for (size_t i = 0; i < nl; i++)
		for (size_t j = i + 1; j < nl; j++)
			if (strcmp(lines[j], lines[i]) < 0) {
				char *x = lines[i];
				lines[i] = lines[j];
				lines[j] = x;
			}
	for (size_t i = 0; i < nl; i++) {
		strcat(want, lines[i]);
		free(lines[i]);
	}
	ck_assert_str_eq(it_js(claims, "routes"), want);
	char *dump = json_dumps(claims, JSON_COMPACT);
	for (size_t i = 0; i < n; i++)
		for (int k = 0; k < w[i].nkeys; k++)
			ck_assert_msg(!strstr(dump, w[i].keys[k].sha), "the routes document holds a hash");
	free(dump);
	json_decref(claims);
	free(d.body);
	/* The document cache's sizes, by cell and by region. */
	struct it_resp m;
	it_http(&m, "GET", it_fmt("%s/metrics", cpfx.url), NULL, NULL, 0);
	ck_assert_ptr_nonnull(strstr(m.body, "cp_cell_document_bytes{cell=\"us-east-1\"} "));
	ck_assert_ptr_nonnull(strstr(m.body, "cp_cell_document_bytes{cell=\"us-west-2\"} "));
	ck_assert_ptr_nonnull(strstr(m.body, "cp_routes_document_bytes{region=\"us\"} "));
	ck_assert_ptr_null(strstr(m.body, "cp_config_document_bytes{region=\"us\"}"));
	it_resp_free(&m);
	/* Every replica serves the same bytes: stored once per version. */
	ck_assert_int_eq(qlong("SELECT count(*) FROM signed_documents WHERE aud = 'routes:us'"), 1);
	ck_assert_int_eq(qlong("SELECT count(*) FROM signed_documents WHERE aud LIKE 'cell:%'"), 2);
}
END_TEST

/* The tenant records of a verified cell document, sorted, each checked:
 * a tenant once, its keys in id order. */
static size_t records_of(const json_t *claims, char recs[][600], size_t max)
{
	const char *text = it_js(claims, "tenants"), *p = text;
	size_t n = 0;
	while (*p) {
		const char *next = strstr(p + 1, "t|");
		while (next && next[-1] != ';')
			next = strstr(next + 1, "t|");
		size_t len = next ? (size_t)(next - p) : strlen(p);
		ck_assert_uint_lt(n, max);
		ck_assert_uint_lt(len, 600);
		memcpy(recs[n], p, len);
		recs[n][len] = '\0';
		/* Its keys ascending. */
		char last[25] = "";
		for (const char *k = strstr(recs[n], ";k|"); k; k = strstr(k + 1, ";k|")) {
			ck_assert_msg(strncmp(last, k + 3, 24) < 0, "keys out of order in %s", recs[n]);
			memcpy(last, k + 3, 24);
		}
		n++;
		p += len;
	}
	qsort(recs, n, sizeof recs[0], (int (*)(const void *, const void *))strcmp);
	for (size_t i = 1; i < n; i++)
		ck_assert_msg(strncmp(recs[i - 1], recs[i], 38) != 0, "tenant twice: %.38s", recs[i]);
	return n;
}

/* A cell document holds every tenant of the cell once, its keys in id
 * order, though they are stored interleaved; after a change, only the
 * changed tenant's record differs. */
START_TEST(content_records)
{
	static char a[16][600], b[16][600];
	char tok[160];
	struct doc d;
	/* Six tenants of us-west-2 whose keys are stored interleaved, and a
	 * thousand elsewhere, so that keys outnumber the cell's tenants. */
	free(q("INSERT INTO tenants (slug, name, region, plan, cell) SELECT 'mix-' || i, 'Mix', 'us', 'free', "
	       "'us-west-2' FROM generate_series(1, 6) i"));
	free(q("INSERT INTO tenants (slug, name, region, plan, cell) SELECT 'bulk-' || i, 'Bulk', 'us', 'free', "
	       "'us-east-1' FROM generate_series(1, 1000) i"));
	free(q("INSERT INTO api_keys (id, tenant_id, name, secret_sha256, scopes) SELECT substr(md5(t.id::text || k), "
	       "1, 24), t.id, 'k' || k, sha256(convert_to(t.id::text || k, 'UTF8')), ARRAY['events:read'] "
	       "FROM generate_series(1, 3) k, tenants t WHERE t.slug LIKE 'mix-%' OR t.slug LIKE 'bulk-%' ORDER BY k, t.id"));
	free(q("UPDATE regions SET config_version = config_version + 1 WHERE name = 'us'"));
	free(q("ANALYZE tenants"));
	free(q("ANALYZE api_keys"));
	credential("cells/us-west-2", tok);
	fetch(&d, "/v1/cells/us-west-2/config", tok, NULL, 0);
	json_t *claims = verified(&d, "cell:us-west-2");
	size_t na = records_of(claims, a, 16);
	json_decref(claims);
	free(d.body);
	ck_assert_uint_eq(na, 6);
	for (size_t i = 0; i < na; i++)
		ck_assert_msg(strstr(a[i], "|mix-") && strlen(a[i]) > 38 + 3 * 70, "%s", a[i]);
	/* A delta's records (read in order) agree with the full document's:
	 * the keys of one tenant revoked but one, then the next full. */
	free(q("UPDATE api_keys SET revoked_at = now() WHERE name <> 'k2' AND tenant_id = "
	       "(SELECT id FROM tenants WHERE slug = 'mix-3')"));
	free(q("UPDATE regions SET config_version = config_version + 1 WHERE name = 'us'"));
	fetch(&d, "/v1/cells/us-west-2/config", tok, NULL, 0);
	claims = verified(&d, "cell:us-west-2");
	size_t nb = records_of(claims, b, 16);
	json_decref(claims);
	free(d.body);
	ck_assert_uint_eq(nb, na);
	size_t changed = 0;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i], b[i]) != 0) {
			changed++;
			ck_assert_ptr_nonnull(strstr(b[i], "|mix-3|"));
			ck_assert_ptr_null(strstr(b[i] + 3, ";k|") ? strstr(strstr(b[i] + 3, ";k|") + 3, ";k|") : NULL);
		}
	ck_assert_uint_eq(changed, 1);
}
END_TEST

/* ---- who reads what ---- */

static long status_of(const char *path, const char *token)
{
	struct doc d;
	fetch(&d, path, token, NULL, 0);
	free(d.body);
	return d.status;
}

/* A cell credential reads its own cell's document only, never another
 * cell's, the region's or the routes; a region credential reads its
 * region's routes but no cell document; tenant users reach none of these
 * nor the cell catalog; status reports with a cell credential go to its
 * region and name its cell, erasure reports only for its own tenants. */
START_TEST(credentials)
{
	char ca[160], cb[160], ceu[160], rus[160], reu[160], owner[128], member[128], t[37];
	credential("cells/us-east-1", ca);
	credential("cells/us-west-2", cb);
	credential("cells/eu-west-1", ceu);
	credential("regions/us", rus);
	credential("regions/eu", reu);
	ck_assert_msg(!strncmp(ca, "cct_us-east-1_", 14) && strlen(ca) == 14 + 43, "token %s", ca);
	ck_assert_int_eq(qlong("SELECT count(*) FROM audit_log WHERE action = 'cell.credential.create'"), 3);
	ck_assert_int_eq(qlong("SELECT count(*) FROM cell_credentials"), 3);
	char *log = it_slurp(cpfx.proc.log);
	ck_assert_msg(log && !strstr(log, ca + 14), "the log holds a credential");
	free(log);
	tenant_in("creds", "us", "us-east-1", t, NULL);
	new_user(t, "owner@creds.test", "owner", NULL);
	new_user(t, "member@creds.test", "member", NULL);
	login("creds", "owner@creds.test", owner);
	login("creds", "member@creds.test", member);

	static const char *const paths[] = { "/v1/cells/us-east-1/config", "/v1/cells/us-west-2/config",
		                                 "/v1/cells/eu-west-1/config", "/v1/regions/us/config",
		                                 "/v1/regions/us/routes", "/v1/regions/eu/routes",
		                                 "/v1/regions/us/cells" };
	const char *who[] = { ca, cb, ceu, rus, reu, ADMIN_TOKEN, owner, member, "cct_us-east-1_nope", "crt_us_nope" };
	static const char *const who_name[] = { "cell us-east-1", "cell us-west-2", "cell eu-west-1",
		                                    "region us", "region eu", "admin", "owner", "member",
		                                    "unknown cell credential", "unknown region credential" };
	static const long want[10][7] = {
		{ 200, 403, 403, 403, 403, 403, 403 }, /* cell us-east-1 */
		{ 403, 200, 403, 403, 403, 403, 403 }, /* cell us-west-2 */
		{ 403, 403, 200, 403, 403, 403, 403 }, /* cell eu-west-1 */
		{ 403, 403, 403, 200, 200, 403, 403 }, /* region us */
		{ 403, 403, 403, 403, 403, 200, 403 }, /* region eu */
		{ 200, 200, 200, 200, 200, 200, 200 }, /* admin */
		{ 403, 403, 403, 403, 403, 403, 403 }, /* owner */
		{ 403, 403, 403, 403, 403, 403, 403 }, /* member */
		{ 401, 401, 401, 401, 401, 401, 401 },
		{ 401, 401, 401, 401, 401, 401, 401 },
	};
	for (size_t i = 0; i < 10; i++)
		for (size_t p = 0; p < 7; p++) {
			long got = status_of(paths[p], who[i]);
			ck_assert_msg(got == want[i][p], "%s on %s: %ld, want %ld", who_name[i], paths[p], got, want[i][p]);
		}
	ck_assert_int_eq(status_of("/v1/cells/no-such-cell/config", ADMIN_TOKEN), 404);
	ck_assert_int_eq(status_of("/v1/cells/BAD/config", ADMIN_TOKEN), 404);
	ck_assert_int_eq(status_of("/v1/regions/zz/routes", ADMIN_TOKEN), 404);
	/* The cell credential reaches nothing of the admin's or the users'. */
	struct res r;
	api(&r, "GET", "/v1/tenants", ca, NULL);
	EXPECT_PROBLEM_SOME(&r, 403, "forbidden", NULL);
	res_free(&r);
	api(&r, "POST", "/v1/cells/us-east-1/credentials", ca, NULL);
	EXPECT_PROBLEM_SOME(&r, 403, "forbidden", NULL);
	res_free(&r);

	/* Status reports: a cell reports into its region, naming its cell. */
	api(&r, "POST", "/v1/regions/us/status", ca, "{\"instance\":\"dp-a\",\"version\":3}");
	EXPECT(&r, 200);
	res_free(&r);
	api(&r, "POST", "/v1/regions/us/status", ca, "{\"instance\":\"dp-a2\",\"cell\":\"us-east-1\"}");
	EXPECT(&r, 200);
	res_free(&r);
	api(&r, "POST", "/v1/regions/us/status", ca, "{\"instance\":\"dp-a3\",\"cell\":\"us-west-2\"}");
	EXPECT_PROBLEM_SOME(&r, 403, "forbidden", NULL);
	res_free(&r);
	api(&r, "POST", "/v1/regions/eu/status", ca, "{\"instance\":\"dp-a\"}");
	EXPECT_PROBLEM_SOME(&r, 403, "forbidden", NULL);
	res_free(&r);
	api(&r, "POST", "/v1/regions/us/status", rus, "{\"instance\":\"dp-b\",\"cell\":\"us-west-2\"}");
	EXPECT(&r, 200);
	res_free(&r);
	api(&r, "POST", "/v1/regions/us/status", rus, "{\"instance\":\"dp-c\",\"cell\":\"eu-west-1\"}");
	EXPECT_PROBLEM_SOME(&r, 422, "unprocessable", "cell");
	res_free(&r);
	api(&r, "POST", "/v1/regions/us/status", rus, "{\"instance\":\"dp-d\"}");
	EXPECT(&r, 200);
	res_free(&r);
	/* Erasure reports: only the cell that holds the tenant reports it. */
	json_decref(ADM("DELETE", it_fmt("/v1/tenants/%s", t), NULL, 200));
	const char *er = it_fmt("{\"tenant_id\":\"%s\",\"status\":\"done\",\"events_deleted\":0,"
	                        "\"rows_deleted\":0}", t);
	struct opts eo = { .token = cb, .idem = "erase-1" };
	api_ex(&r, "POST", "/v1/regions/us/erasures", &eo, er, strlen(er));
	EXPECT_PROBLEM_SOME(&r, 403, "forbidden", "tenant_id");
	res_free(&r);
	ck_assert_int_eq(qlong("SELECT count(*) FROM erasures WHERE completed_at IS NOT NULL"), 0);
	eo.token = ca;
	api_ex(&r, "POST", "/v1/regions/us/erasures", &eo, er, strlen(er));
	EXPECT(&r, 200);
	res_free(&r);
	ck_assert_int_eq(qlong("SELECT count(*) FROM erasures WHERE completed_at IS NOT NULL"), 1);

	json_t *f = ADM("GET", "/v1/regions/us/fleet", NULL, 200);
	json_t *items = json_object_get(f, "items");
	ck_assert_int_eq(json_array_size(items), 4);
	static const char *const fleet_cell[] = { "us-east-1", "us-east-1", "us-west-2", NULL };
	for (size_t i = 0; i < 4; i++) {
		json_t *c = json_object_get(json_array_get(items, i), "cell");
		if (fleet_cell[i])
			ck_assert_str_eq(json_string_value(c), fleet_cell[i]);
		else
			ck_assert(json_is_null(c));
	}
	json_decref(f);
}
END_TEST

/* ---- long polls ---- */

struct poller {
	const char *path, *token, *etag;
	struct doc d;
	long ms;
};

static void *poll_main(void *arg)
{
	struct poller *p = arg;
	long t0 = it_now_ms();
	fetch(&p->d, p->path, p->token, p->etag, 30);
	p->ms = it_now_ms() - t0;
	return NULL;
}

/* A long poll on the cell route (and on the routes route) holding the
 * current version wakes with the new document when a change reaches the
 * region, not at its 30 s deadline. */
START_TEST(long_poll)
{
	char ca[160], rus[160], etag[32], retag[32], t[37];
	struct doc d;
	credential("cells/us-east-1", ca);
	credential("regions/us", rus);
	fetch(&d, "/v1/cells/us-east-1/config", ca, NULL, 0);
	ck_assert_int_eq(d.status, 200);
	snprintf(etag, sizeof etag, "%s", d.etag);
	free(d.body);
	fetch(&d, "/v1/cells/us-east-1/config", ca, etag, 0);
	ck_assert_int_eq(d.status, 304);
	free(d.body);
	fetch(&d, "/v1/regions/us/routes", rus, NULL, 0);
	snprintf(retag, sizeof retag, "%s", d.etag);
	free(d.body);

	struct poller p[2] = { { "/v1/cells/us-east-1/config", ca, etag, { 0 }, 0 },
		                   { "/v1/regions/us/routes", rus, retag, { 0 }, 0 } };
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, poll_main, &p[i]), 0);
	/* Both parked before the change. */
	long deadline = it_now_ms() + 20000;
	while (it_now_ms() < deadline) {
		struct it_resp m;
		it_http(&m, "GET", it_fmt("%s/metrics", cpfx.url), NULL, NULL, 0);
		int parked = m.body && strstr(m.body, "cp_longpolls_parked 2\n");
		it_resp_free(&m);
		if (parked)
			break;
		usleep(20000);
	}
	tenant_in("polled", "us", "us-east-1", t, NULL);
	json_decref(ADM("POST", it_fmt("/v1/tenants/%s/api-keys", t), "{\"name\":\"k\",\"scopes\":[\"events:write\"]}", 201));
	for (int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(p[i].d.status, 200);
		ck_assert_msg(p[i].ms < 20000, "%s woke after %ld ms", p[i].path, p[i].ms);
		ck_assert_int_gt(atol(p[i].d.etag + 1), atol(p[i].etag + 1));
		free(p[i].d.body);
	}
	/* The new cell document has the tenant. */
	fetch(&d, "/v1/cells/us-east-1/config", ca, NULL, 0);
	ck_assert_ptr_nonnull(strstr(d.body, ".")); /* a token */
	json_t *claims = verified(&d, "cell:us-east-1");
	ck_assert_ptr_nonnull(strstr(it_js(claims, "tenants"), t));
	json_decref(claims);
	free(d.body);
}
END_TEST

/* ---- usage ---- */

static long ledger(void)
{
	return qlong("SELECT count(*) FROM usage_ledger");
}

/* A cell credential reports usage of the tenants placed in its cell,
 * exactly once (a retry is a replay); a batch naming a tenant of another
 * cell is refused whole (403 naming the tenant, nothing recorded); keys
 * are the cell's own; region credentials keep reporting as before. */
START_TEST(usage)
{
	char ca[160], cb[160], rus[160], a[37], b[37];
	credential("cells/us-east-1", ca);
	credential("cells/us-west-2", cb);
	credential("regions/us", rus);
	tenant_in("use-a", "us", "us-east-1", a, NULL);
	tenant_in("use-b", "us", "us-west-2", b, NULL);
	struct res r;
	struct opts o = { .token = ca, .idem = "batch-1" };
	const char *one = it_fmt("{\"records\":[%s]}", usage_body(a, 10));
	api_ex(&r, "POST", "/v1/usage", &o, one, strlen(one));
	EXPECT(&r, 201);
	res_free(&r);
	ck_assert_int_eq(ledger(), 1);
	api_ex(&r, "POST", "/v1/usage", &o, one, strlen(one));
	EXPECT(&r, 200);
	ck_assert(replayed(&r));
	res_free(&r);
	ck_assert_int_eq(ledger(), 1);
	ck_assert_int_eq(qlong("SELECT count(*) FROM usage_ledger WHERE cell = 'us-east-1' AND events = 10"), 1);

	/* A tenant of another cell: the whole batch is refused. */
	const char *mixed = it_fmt("{\"records\":[%s,%s]}", usage_body(a, 5), usage_body(b, 7));
	o.idem = "batch-2";
	api_ex(&r, "POST", "/v1/usage", &o, mixed, strlen(mixed));
	EXPECT_PROBLEM_SOME(&r, 403, "forbidden", NULL);
	ck_assert_msg(strstr(it_js(r.json, "detail"), b) != NULL, "the refusal names the tenant: %s",
	              it_js(r.json, "detail"));
	res_free(&r);
	ck_assert_int_eq(ledger(), 1);
	ck_assert_int_eq(qlong("SELECT count(*) FROM usage_batches WHERE key = 'batch-2'"), 0);

	/* The other cell's keys are its own: the same key is a new batch. */
	const char *other = it_fmt("{\"records\":[%s]}", usage_body(b, 7));
	o.token = cb;
	o.idem = "batch-1";
	api_ex(&r, "POST", "/v1/usage", &o, other, strlen(other));
	EXPECT(&r, 201);
	res_free(&r);
	ck_assert_int_eq(ledger(), 2);
	/* A region credential still reports (the previous build's data planes). */
	o.token = rus;
	api_ex(&r, "POST", "/v1/usage", &o, mixed, strlen(mixed));
	EXPECT(&r, 201);
	res_free(&r);
	ck_assert_int_eq(ledger(), 4);
	ck_assert_int_eq(qlong("SELECT count(*) FROM usage_ledger WHERE cell IS NULL"), 2);
	/* The previous build's claim of a region's key still finds a repeat
	 * (its statement, verbatim), and a cell's key of the same name is not it. */
	const char *claim = "INSERT INTO usage_batches (region, key, request_sha256, response)"
	                    " VALUES ('us', '%s', '\\x00'::bytea, '') ON CONFLICT DO NOTHING RETURNING 1";
	char *v = q(it_fmt(claim, "batch-1"));
	ck_assert_ptr_null(v); /* the region credential's batch-1 above */
	v = q(it_fmt(claim, "old-1"));
	ck_assert_str_eq(v, "1");
	free(v);
	ck_assert_ptr_null(q(it_fmt(claim, "old-1")));
	/* Billed: 10 + 5 for a, 7 + 7 for b. */
	ck_assert_int_eq(qlong(it_fmt("SELECT sum(events) FROM usage_ledger WHERE tenant_id = '%s'", a)), 15);
	ck_assert_int_eq(qlong(it_fmt("SELECT sum(events) FROM usage_ledger WHERE tenant_id = '%s'", b)), 14);
}
END_TEST

Suite *cells_suite(void)
{
	Suite *s = suite_create("cells");
	const TTest *const tests[] = { catalog, placement, documents, content_records, credentials, long_poll, usage };
	it_add_tests(s, tests, sizeof tests / sizeof tests[0], setup, teardown, 60);
	return s;
}
