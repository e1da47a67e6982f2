/* Log streams on the control plane, from outside: a tenant owner's routes
 * (who may call them, every field's bounds, the residency rule, the limit
 * of streams), the secrets that never come back, the region catalog's
 * stream fields, the documents that carry the streams with their secrets
 * sealed to the region's key, the data planes' reports, and erasure.
 * Each test has its own control plane on a fresh database. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpfx.h"
#include "jwk.h"
#include "seal.h"
#include "secret.h"

static char keys_env[700];

static void setup(void)
{
	snprintf(keys_env, sizeof keys_env, "CP_SIGNING_KEYS_DIR=%s/keys-streams-%d", it_env("IT_LOG_DIR"),
	         (int)getpid());
	const char *const extra[] = { keys_env, NULL };
	cpfx_start("it_streams", extra);
	cpfx.success_is_object = 0;
}

static void teardown(void)
{
	cpfx_stop();
}

/* Secrets of the destinations below, distinctive enough to search for. */
#define WH_SECRET "whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="
#define HEC_TOKEN "hec-TOKEN-5b1e-zq9"
#define S3_SECRET "s3-SECRET/9f+Zq-abc"
static const char *const secrets[] = { "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA", HEC_TOKEN, S3_SECRET };

#define WH_BODY "{\"kind\":\"webhook\",\"url\":\"https://hooks.siem.eu.example/in\",\"secret\":\"" WH_SECRET "\"}"
#define HEC_BODY "{\"kind\":\"splunk_hec\",\"url\":\"https://splunk.siem.eu.example:8088/services/collector/event\"," \
	"\"token\":\"" HEC_TOKEN "\"}"
#define S3_BODY "{\"kind\":\"s3\",\"endpoint\":\"http://127.0.0.1:9000\",\"bucket\":\"audit-logs\"," \
	"\"region\":\"eu-west-1\",\"access_key_id\":\"AKIAEXAMPLE1\",\"secret_access_key\":\"" S3_SECRET "\"}"

/* Every answer's body, to search for secrets at the end. */
static char *seen;
static size_t seen_len;

static void remember(const struct res *r)
{
	if (!r->raw.body)
		return;
	seen = realloc(seen, seen_len + r->raw.len + 2);
	memcpy(seen + seen_len, r->raw.body, r->raw.len);
	seen_len += r->raw.len;
	seen[seen_len++] = '\n';
	seen[seen_len] = '\0';
}

static void call(struct res *r, const char *method, const char *path, const char *token, const char *body)
{
	api(r, method, path, token, body);
	remember(r);
}

static void no_secret_in(const char *text, const char *where)
{
	for (size_t i = 0; text && i < sizeof secrets / sizeof secrets[0]; i++)
		ck_assert_msg(!strstr(text, secrets[i]), "a destination secret in clear in %s", where);
}

/* The region eu allows loopback and *.siem.eu.example, S3 region
 * eu-west-1, and has the stream key `key` (generated here). */
static void region_rule(struct jwk *key)
{
	struct res r;
	ck_assert_int_eq(jwk_generate(key), 0);
	json_t *pub = jwk_public_json(key);
	json_object_set_new(pub, "use", json_string("enc"));
	json_object_del(pub, "alg");
	char *pj = json_dumps(pub, JSON_COMPACT);
	call(&r, "PATCH", "/v1/regions/eu", ADMIN_TOKEN,
	     it_fmt("{\"stream_hosts\":[\"127.0.0.1\",\"localhost\",\"[::1]\",\"*.siem.eu.example\"],"
	            "\"stream_s3_regions\":[\"eu-west-1\"],\"stream_key\":%s}", pj));
	EXPECT(&r, 200);
	ck_assert_str_eq(it_js(json_object_get(r.json, "stream_key"), "kid"), key->kid);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "stream_hosts")), 4);
	res_free(&r);
	free(pj);
	json_decref(pub);
}

/* A tenant of eu with an owner and a member, logged in. */
struct world {
	char tenant[37], owner[128], member[128];
};

static void world(struct world *w, const char *slug)
{
	new_tenant(slug, "eu", "free", w->tenant);
	new_user(w->tenant, it_fmt("owner@%s.test", slug), "owner", NULL);
	new_user(w->tenant, it_fmt("member@%s.test", slug), "member", NULL);
	login(slug, it_fmt("owner@%s.test", slug), w->owner);
	login(slug, it_fmt("member@%s.test", slug), w->member);
}

static const char *spath(const struct world *w, const char *stream, const char *rest)
{
	return stream ? it_fmt("/v1/tenants/%s/streams/%s%s", w->tenant, stream, rest)
	              : it_fmt("/v1/tenants/%s/streams", w->tenant);
}

/* Creates a stream; its id into `id`. */
static void create(const struct world *w, const char *body, char id[37])
{
	struct res r;
	call(&r, "POST", spath(w, NULL, ""), w->owner, body);
	EXPECT(&r, 201);
	snprintf(id, 37, "%s", it_js(r.json, "id"));
	ck_assert(is_uuid(id));
	res_free(&r);
}

/* The payload of a compact JWS (malloc'd). */
static char *payload(const char *tok)
{
	const char *a = strchr(tok, '.'), *b = a ? strchr(a + 1, '.') : NULL;
	ck_assert_ptr_nonnull(b);
	size_t n = (size_t)(b - a - 1);
	char *out = malloc(n + 1);
	long m = secret_unb64url(a + 1, n, out, n);
	ck_assert_int_gt(m, 0);
	out[m] = '\0';
	return out;
}

/* The claims of the document at `path` (admin), and its text in *text. */
static json_t *doc_claims(const char *path, char **text)
{
	struct doc d;
	doc_fetch(&d, it_fmt("%s%s", cpfx.url, path), ADMIN_TOKEN, NULL, 0);
	ck_assert_int_eq(d.status, 200);
	*text = payload(d.body);
	free(d.body);
	json_t *c = json_loads(*text, 0, NULL);
	ck_assert_ptr_nonnull(c);
	return c;
}

static json_t *find_stream(json_t *claims, const char *id)
{
	size_t i;
	json_t *s;
	json_array_foreach(json_object_get(claims, "streams"), i, s)
		if (!strcmp(it_js(s, "id"), id))
			return s;
	return NULL;
}

static long jint(const json_t *o, const char *k)
{
	return (long)json_integer_value(json_object_get(o, k));
}

/* ------------------------------------------------------------------ */

/* An owner creates one stream of each kind, lists, reads, changes,
 * pauses, resumes, replays and deletes them; each change raises the home
 * region's config version (and only it), a PATCH raises the revision. */
START_TEST(lifecycle)
{
	struct jwk key;
	struct world w;
	struct res r;
	char wh[37], hec[37], s3[37];
	long v[NREGIONS];
	region_rule(&key);
	world(&w, "acme");
	versions(v);

	call(&r, "POST", spath(&w, NULL, ""), w.owner, WH_BODY);
	EXPECT(&r, 201);
	snprintf(wh, sizeof wh, "%s", it_js(r.json, "id"));
	char loc[200];
	ck_assert_int_eq(it_header(&r.raw, "Location", loc, sizeof loc), 0);
	ck_assert_str_eq(loc, spath(&w, wh, ""));
	ck_assert_str_eq(it_js(r.json, "kind"), "webhook");
	ck_assert_str_eq(it_js(r.json, "url"), "https://hooks.siem.eu.example/in");
	ck_assert_str_eq(it_js(r.json, "tenant_id"), w.tenant);
	ck_assert_str_eq(it_js(r.json, "status"), "pending");
	ck_assert(json_is_false(json_object_get(r.json, "paused")));
	ck_assert(is_api_time(it_js(r.json, "since")));
	ck_assert_int_eq(jint(r.json, "revision"), 1);
	ck_assert_int_eq(jint(r.json, "lag_events"), 0);
	ck_assert(json_is_null(json_object_get(r.json, "last_delivered_at")));
	ck_assert(json_is_null(json_object_get(r.json, "last_error")));
	ck_assert(json_is_null(json_object_get(r.json, "reported_at")));
	ck_assert_ptr_null(json_object_get(r.json, "secret"));
	res_free(&r);
	EXPECT_VERSIONS(v, 0, 1, 0, 0);

	create(&w, HEC_BODY, hec);
	call(&r, "POST", spath(&w, NULL, ""), w.owner,
	     "{\"kind\":\"s3\",\"endpoint\":\"http://127.0.0.1:9000\",\"bucket\":\"audit-logs\",\"region\":\"eu-west-1\","
	     "\"access_key_id\":\"AKIAEXAMPLE1\",\"secret_access_key\":\"" S3_SECRET "\",\"prefix\":\"acme/logs/\","
	     "\"since\":\"2026-01-01T00:00:00Z\",\"paused\":true}");
	EXPECT(&r, 201);
	snprintf(s3, sizeof s3, "%s", it_js(r.json, "id"));
	ck_assert_str_eq(it_js(r.json, "bucket"), "audit-logs");
	ck_assert_str_eq(it_js(r.json, "region"), "eu-west-1");
	ck_assert_str_eq(it_js(r.json, "access_key_id"), "AKIAEXAMPLE1");
	ck_assert_str_eq(it_js(r.json, "prefix"), "acme/logs/");
	ck_assert_str_eq(it_js(r.json, "status"), "paused");
	ck_assert_str_eq(it_js(r.json, "since"), "2026-01-01T00:00:00.000000Z");
	ck_assert_ptr_null(json_object_get(r.json, "url"));
	res_free(&r);
	EXPECT_VERSIONS(v, 0, 2, 0, 0);

	call(&r, "GET", spath(&w, NULL, ""), w.member, NULL);
	EXPECT(&r, 200);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "items")), 3);
	ck_assert_str_eq(it_js(json_array_get(json_object_get(r.json, "items"), 0), "id"), wh);
	res_free(&r);

	call(&r, "PATCH", spath(&w, wh, ""), w.owner, "{\"url\":\"https://other.siem.eu.example/x\"}");
	EXPECT(&r, 200);
	ck_assert_str_eq(it_js(r.json, "url"), "https://other.siem.eu.example/x");
	ck_assert_int_eq(jint(r.json, "revision"), 2);
	res_free(&r);
	/* A new secret alone is a change too; the kind is fixed. */
	call(&r, "PATCH", spath(&w, hec, ""), w.owner, "{\"token\":\"hec-TOKEN-5b1e-zq9\",\"kind\":\"splunk_hec\"}");
	EXPECT(&r, 200);
	ck_assert_int_eq(jint(r.json, "revision"), 2);
	res_free(&r);
	EXPECT_VERSIONS(v, 0, 2, 0, 0);
	call(&r, "PATCH", spath(&w, hec, ""), w.owner, "{\"kind\":\"webhook\"}");
	EXPECT_PROBLEM(&r, 409, "conflict", "kind");
	res_free(&r);
	call(&r, "PATCH", spath(&w, hec, ""), w.owner, "{\"bucket\":\"abc\"}");
	EXPECT_PROBLEM(&r, 400, "validation_failed", "bucket");
	res_free(&r);
	call(&r, "PATCH", spath(&w, hec, ""), w.owner, "{}");
	EXPECT(&r, 400);
	res_free(&r);
	call(&r, "PATCH", spath(&w, s3, ""), w.owner, "{\"region\":\"us-east-1\"}");
	EXPECT_PROBLEM(&r, 422, "destination_not_allowed", "region");
	res_free(&r);
	EXPECT_VERSIONS(v, 0, 0, 0, 0);

	call(&r, "POST", spath(&w, wh, "/pause"), w.owner, NULL);
	EXPECT(&r, 200);
	ck_assert_str_eq(it_js(r.json, "status"), "paused");
	ck_assert(json_is_true(json_object_get(r.json, "paused")));
	res_free(&r);
	call(&r, "POST", spath(&w, wh, "/resume"), w.owner, NULL);
	EXPECT(&r, 200);
	ck_assert_str_eq(it_js(r.json, "status"), "pending");
	res_free(&r);
	call(&r, "POST", spath(&w, wh, "/replay"), w.owner, "{\"since\":\"2026-02-01T00:00:00Z\"}");
	EXPECT(&r, 200);
	res_free(&r);
	call(&r, "POST", spath(&w, wh, "/replay"), w.owner, "{\"since\":\"yesterday\"}");
	EXPECT_PROBLEM(&r, 400, "validation_failed", "since");
	res_free(&r);
	call(&r, "POST", spath(&w, wh, "/replay"), w.owner, "{}");
	EXPECT_PROBLEM(&r, 400, "validation_failed", "since");
	res_free(&r);
	EXPECT_VERSIONS(v, 0, 3, 0, 0);
	ck_assert_int_eq(qlong(it_fmt("SELECT resume_gen * 10 + replay_gen FROM streams WHERE id = '%s'", wh)), 11);
	ck_assert_int_eq(qlong(it_fmt("SELECT extract(epoch FROM replay_since)::bigint FROM streams WHERE id = '%s'", wh)),
	                 1769904000);

	call(&r, "DELETE", spath(&w, wh, ""), w.owner, NULL);
	EXPECT(&r, 204);
	ck_assert_uint_eq(r.raw.len, 0);
	res_free(&r);
	EXPECT_VERSIONS(v, 0, 1, 0, 0);
	const char *const gone[][2] = { { "GET", "" }, { "DELETE", "" }, { "POST", "/pause" }, { "POST", "/resume" } };
	for (size_t i = 0; i < 4; i++) {
		call(&r, gone[i][0], spath(&w, wh, gone[i][1]), w.owner, NULL);
		EXPECT_PROBLEM(&r, 404, "not_found", NULL);
		res_free(&r);
	}
	call(&r, "PATCH", spath(&w, wh, ""), w.owner, "{\"url\":\"https://a.siem.eu.example/\"}");
	EXPECT(&r, 404);
	res_free(&r);
	call(&r, "GET", spath(&w, NULL, ""), w.owner, NULL);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "items")), 2);
	res_free(&r);
	/* The audit log records each change, without a secret. */
	ck_assert_int_eq(qlong("SELECT count(*) FROM audit_log WHERE action LIKE 'stream.%'"), 9);
	char *audit = q("SELECT string_agg(coalesce(before::text, '') || coalesce(after::text, ''), ' ') FROM audit_log");
	no_secret_in(audit, "the audit log");
	free(audit);
	no_secret_in(seen, "an answer");
	free(seen);
	seen = NULL;
	seen_len = 0;
	jwk_clear(&key);
}
END_TEST

/* Who may call what: no credential 401, a member may read but not
 * change (403), another tenant's owner finds nothing (404), an admin may
 * do everything; unknown ids are 404. */
START_TEST(authorization)
{
	struct jwk key;
	struct world a, b;
	struct res r;
	char id[37];
	region_rule(&key);
	world(&a, "alpha");
	world(&b, "beta");
	create(&a, WH_BODY, id);
	const char *const paths[][3] = {
		{ "POST", "", WH_BODY }, { "GET", "", NULL }, { "GET", "S", NULL },
		{ "PATCH", "S", "{\"url\":\"https://b.siem.eu.example/\"}" }, { "POST", "S/pause", NULL },
		{ "POST", "S/resume", NULL }, { "POST", "S/replay", "{\"since\":\"2026-01-01T00:00:00Z\"}" },
		{ "DELETE", "S", NULL },
	};
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		const char *path = paths[i][1][0] == 'S' ? spath(&a, id, paths[i][1] + 1) : spath(&a, NULL, "");
		int write = strcmp(paths[i][0], "GET") != 0;
		call(&r, paths[i][0], path, NULL, paths[i][2]);
		EXPECT_PROBLEM(&r, 401, "unauthorized", NULL);
		res_free(&r);
		call(&r, paths[i][0], path, a.member, paths[i][2]);
		if (write)
			EXPECT_PROBLEM(&r, 403, "forbidden", NULL);
		else
			EXPECT(&r, 200);
		res_free(&r);
		call(&r, paths[i][0], path, b.owner, paths[i][2]);
		EXPECT_PROBLEM(&r, 404, "not_found", NULL);
		res_free(&r);
	}
	/* Another tenant's stream under one's own tenant: not found. */
	call(&r, "GET", spath(&b, id, ""), b.owner, NULL);
	EXPECT_PROBLEM(&r, 404, "not_found", NULL);
	res_free(&r);
	call(&r, "GET", spath(&a, "not-a-uuid", ""), a.owner, NULL);
	EXPECT_PROBLEM(&r, 404, "not_found", NULL);
	res_free(&r);
	call(&r, "GET", "/v1/tenants/not-a-uuid/streams", ADMIN_TOKEN, NULL);
	EXPECT_PROBLEM(&r, 404, "not_found", NULL);
	res_free(&r);
	call(&r, "GET", spath(&a, "00000000-0000-4000-8000-000000000000", ""), a.owner, NULL);
	EXPECT_PROBLEM(&r, 404, "not_found", NULL);
	res_free(&r);
	call(&r, "POST", spath(&a, id, "/pause"), ADMIN_TOKEN, NULL);
	EXPECT(&r, 200);
	res_free(&r);
	call(&r, "DELETE", spath(&a, id, ""), ADMIN_TOKEN, NULL);
	EXPECT(&r, 204);
	res_free(&r);
	jwk_clear(&key);
}
END_TEST

/* Every field is checked, each limit at both ends; a field of another
 * kind, an unknown field, a missing one are 400 naming it. */
/* POST the body: status, and for a 400 the field named. Streams made are
 * deleted at once, to stay below the limit. */
static void try_create(const struct world *w, const char *body, long status, const char *field, int line)
{
	struct res r;
	call(&r, "POST", spath(w, NULL, ""), w->owner, body);
	ck_assert_msg(r.status == status, "line %d: %ld %.300s", line, r.status, r.raw.body);
	if (field)
		EXPECT_PROBLEM(&r, status, "validation_failed", field);
	res_free(&r);
	qlong("WITH x AS (UPDATE streams SET deleted_at = now() WHERE deleted_at IS NULL RETURNING 1)"
	      " SELECT count(*) FROM x");
}
#define TRY(body, status, field) try_create(&w, (body), (status), (field), __LINE__)

START_TEST(field_validation)
{
	struct jwk key;
	struct world w;
	region_rule(&key);
	world(&w, "valid");
	char u2048[2100], u2049[2100];
	snprintf(u2048, sizeof u2048, "https://a.siem.eu.example/%0*d", 2048 - 26, 0);
	snprintf(u2049, sizeof u2049, "https://a.siem.eu.example/%0*d", 2049 - 26, 0);
	ck_assert_uint_eq(strlen(u2048), 2048);
	static const char b24[] = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcY";
	static const char b23[] = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhc=";
	static const char b64[] = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4/QA==";
	static const char b65[] = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4/QEE=";
	char tok256[300], tok257[300], sak256[300], sak257[300], akid128[200], akid129[200], pre256[300], pre257[300];
	memset(tok256, 'T', 256), tok256[256] = '\0';
	memset(tok257, 'T', 257), tok257[257] = '\0';
	memset(sak256, 'S', 256), sak256[256] = '\0';
	memset(sak257, 'S', 257), sak257[257] = '\0';
	memset(akid128, 'A', 128), akid128[128] = '\0';
	memset(akid129, 'A', 129), akid129[129] = '\0';
	memset(pre256, 'p', 256), pre256[256] = '\0';
	memset(pre257, 'p', 257), pre257[257] = '\0';
	char b63[64];
	memset(b63, 'b', 63), b63[63] = '\0';
	const char *wh = "{\"kind\":\"webhook\",\"url\":\"%s\",\"secret\":\"%s\"}";
	const char *hec = "{\"kind\":\"splunk_hec\",\"url\":\"https://h.siem.eu.example\",\"token\":\"%s\"}";
	const char *s3 = "{\"kind\":\"s3\",\"endpoint\":\"https://s3.siem.eu.example\",\"bucket\":\"%s\",\"region\":\"%s\","
	                 "\"access_key_id\":\"%s\",\"secret_access_key\":\"%s\",\"prefix\":\"%s\"}";
	TRY(it_fmt(wh, u2048, it_fmt("whsec_%s", b24)), 201, NULL);
	TRY(it_fmt(wh, u2049, it_fmt("whsec_%s", b24)), 400, "url");
	TRY(it_fmt(wh, "https://a.siem.eu.example", it_fmt("whsec_%s", b64)), 201, NULL);
	TRY(it_fmt(wh, "https://a.siem.eu.example", it_fmt("whsec_%s", b23)), 400, "secret");
	TRY(it_fmt(wh, "https://a.siem.eu.example", it_fmt("whsec_%s", b65)), 400, "secret");
	TRY(it_fmt(wh, "https://a.siem.eu.example", b24), 400, "secret");
	TRY(it_fmt(wh, "https://a.siem.eu.example", "whsec_AQID*AUG"), 400, "secret");
	TRY(it_fmt(wh, "", it_fmt("whsec_%s", b24)), 400, "url");
	TRY(it_fmt(hec, tok256), 201, NULL);
	TRY(it_fmt(hec, tok257), 400, "token");
	TRY(it_fmt(hec, ""), 400, "token");
	TRY(it_fmt(hec, "has space"), 400, "token");
	TRY(it_fmt(s3, "abc", "eu-west-1", "AKI", "x", ""), 201, NULL);
	TRY(it_fmt(s3, b63, "eu-west-1", akid128, sak256, pre256), 201, NULL);
	TRY(it_fmt(s3, "ab", "eu-west-1", "AKI", "x", ""), 400, "bucket");
	TRY(it_fmt(s3, it_fmt("%sb", b63), "eu-west-1", "AKI", "x", ""), 400, "bucket");
	TRY(it_fmt(s3, "Abc", "eu-west-1", "AKI", "x", ""), 400, "bucket");
	TRY(it_fmt(s3, "-abc", "eu-west-1", "AKI", "x", ""), 400, "bucket");
	TRY(it_fmt(s3, "a..bc", "eu-west-1", "AKI", "x", ""), 400, "bucket");
	TRY(it_fmt(s3, "10.1.2.3", "eu-west-1", "AKI", "x", ""), 400, "bucket");
	TRY(it_fmt(s3, "abc", "EU", "AKI", "x", ""), 400, "region");
	TRY(it_fmt(s3, "abc", "", "AKI", "x", ""), 400, "region");
	TRY(it_fmt(s3, "abc", "eu-west-1-eu-west-1-eu-west-1-eu1", "AKI", "x", ""), 400, "region");
	TRY(it_fmt(s3, "abc", "eu-west-1", "AK", "x", ""), 400, "access_key_id");
	TRY(it_fmt(s3, "abc", "eu-west-1", akid129, "x", ""), 400, "access_key_id");
	TRY(it_fmt(s3, "abc", "eu-west-1", "AK-1", "x", ""), 400, "access_key_id");
	TRY(it_fmt(s3, "abc", "eu-west-1", "AKI", "", ""), 400, "secret_access_key");
	TRY(it_fmt(s3, "abc", "eu-west-1", "AKI", sak257, ""), 400, "secret_access_key");
	TRY(it_fmt(s3, "abc", "eu-west-1", "AKI", "x", pre257), 400, "prefix");
	TRY(it_fmt(s3, "abc", "eu-west-1", "AKI", "x", "a b"), 400, "prefix");
	TRY(it_fmt(s3, "abc", "eu-west-1", "AKI", "x", "a%2F"), 400, "prefix");
	TRY("{\"kind\":\"kafka\",\"url\":\"https://a.siem.eu.example\"}", 400, "kind");
	TRY("{\"url\":\"https://a.siem.eu.example\"}", 400, "kind");
	TRY("{\"kind\":\"webhook\",\"url\":\"https://a.siem.eu.example\"}", 400, "secret");
	TRY("{\"kind\":\"webhook\",\"url\":\"https://a.siem.eu.example\",\"token\":\"t\"}", 400, "token");
	TRY("{\"kind\":\"splunk_hec\",\"url\":\"https://a.siem.eu.example\",\"token\":\"t\",\"bucket\":\"abc\"}", 400, "bucket");
	TRY("{\"kind\":\"splunk_hec\",\"url\":\"https://a.siem.eu.example\",\"token\":\"t\",\"colour\":1}", 400, "colour");
	TRY("{\"kind\":\"splunk_hec\",\"url\":\"https://a.siem.eu.example\",\"token\":\"t\",\"since\":\"soon\"}", 400, "since");
	TRY("{\"kind\":\"splunk_hec\",\"url\":\"https://a.siem.eu.example\",\"token\":\"t\",\"paused\":\"yes\"}", 400, "paused");
	TRY("{\"kind\":\"splunk_hec\",\"url\":7,\"token\":\"t\"}", 400, "url");
	jwk_clear(&key);
}
END_TEST

/* A destination outside the home region's rule is 422
 * destination_not_allowed, its detail naming the rule; the region's own
 * loopback and names pass. Beyond 10 streams: 409. */
START_TEST(residency_and_limit)
{
	struct jwk key;
	struct world w;
	struct res r;
	char id[37];
	region_rule(&key);
	world(&w, "resid");
	struct {
		const char *body, *field, *rule;
	} refused[] = {
		{ "{\"kind\":\"webhook\",\"url\":\"https://hooks.siem.us.example/\",\"secret\":\"" WH_SECRET "\"}", "url",
		  "stream_hosts" },
		{ "{\"kind\":\"webhook\",\"url\":\"http://a.siem.eu.example/\",\"secret\":\"" WH_SECRET "\"}", "url",
		  "plain http" },
		{ "{\"kind\":\"webhook\",\"url\":\"http://127.0.0.2:8080/\",\"secret\":\"" WH_SECRET "\"}", "url",
		  "stream_hosts" },
		{ "{\"kind\":\"webhook\",\"url\":\"https://u:p@a.siem.eu.example/\",\"secret\":\"" WH_SECRET "\"}", "url",
		  "userinfo" },
		{ "{\"kind\":\"splunk_hec\",\"url\":\"https://siem.eu.example/\",\"token\":\"t\"}", "url", "stream_hosts" },
		{ "{\"kind\":\"s3\",\"endpoint\":\"https://s3.siem.eu.example\",\"bucket\":\"abc\",\"region\":\"us-east-1\","
		  "\"access_key_id\":\"AKI\",\"secret_access_key\":\"x\"}", "region", "stream_s3_regions" },
		{ "{\"kind\":\"s3\",\"endpoint\":\"https://s3.us-east-1.amazonaws.com\",\"bucket\":\"abc\",\"region\":\"eu-west-1\","
		  "\"access_key_id\":\"AKI\",\"secret_access_key\":\"x\"}", "endpoint", "stream_hosts" },
	};
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		call(&r, "POST", spath(&w, NULL, ""), w.owner, refused[i].body);
		EXPECT_PROBLEM(&r, 422, "destination_not_allowed", refused[i].field);
		ck_assert_msg(strstr(it_js(r.json, "detail"), refused[i].rule), "case %zu: %s", i, it_js(r.json, "detail"));
		res_free(&r);
	}
	call(&r, "POST", spath(&w, NULL, ""), w.owner, refused[0].body);
	ck_assert_ptr_nonnull(strstr(it_js(r.json, "detail"), "region eu's"));
	res_free(&r);
	const char *const ok[] = { "http://127.0.0.1:8080/hook", "http://localhost:1/", "http://[::1]:9/",
		                       "https://127.0.0.1/", "https://a.b.siem.eu.example/", "https://A.SIEM.EU.EXAMPLE/" };
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
		create(&w, it_fmt("{\"kind\":\"webhook\",\"url\":\"%s\",\"secret\":\"" WH_SECRET "\"}", ok[i]), id);
	for (int i = 6; i < 10; i++)
		create(&w, HEC_BODY, id);
	call(&r, "POST", spath(&w, NULL, ""), w.owner, HEC_BODY);
	EXPECT_PROBLEM(&r, 409, "conflict", NULL);
	res_free(&r);
	/* A deleted stream makes room. */
	call(&r, "DELETE", spath(&w, id, ""), w.owner, NULL);
	EXPECT(&r, 204);
	res_free(&r);
	create(&w, HEC_BODY, id);
	/* A region whose rule is empty allows nothing. */
	struct world j;
	new_tenant("jpco", "jp", "free", j.tenant);
	call(&r, "POST", it_fmt("/v1/tenants/%s/streams", j.tenant), ADMIN_TOKEN, S3_BODY);
	EXPECT_PROBLEM(&r, 422, "destination_not_allowed", "endpoint");
	ck_assert_ptr_nonnull(strstr(it_js(r.json, "detail"), "stream_hosts: none"));
	res_free(&r);
	jwk_clear(&key);
}
END_TEST

/* The cell's and the region's documents carry the region's rule and the
 * tenant's streams with their secrets sealed to the region's stream key
 * for that stream: they open with the private key, and no secret is in
 * clear anywhere in the documents or the answers. Without a stream key
 * the streams come without their secrets. */
START_TEST(documents_carry_sealed_secrets)
{
	struct jwk key;
	struct world w;
	struct res r;
	char wh[37], hec[37], s3[37], err[200];
	region_rule(&key);
	world(&w, "docs");
	create(&w, WH_BODY, wh);
	create(&w, HEC_BODY, hec);
	create(&w, S3_BODY, s3);
	call(&r, "POST", spath(&w, s3, "/replay"), w.owner, "{\"since\":\"2026-03-01T00:00:00Z\"}");
	EXPECT(&r, 200);
	res_free(&r);
	call(&r, "GET", it_fmt("/v1/tenants/%s", w.tenant), ADMIN_TOKEN, NULL);
	char cell[64];
	snprintf(cell, sizeof cell, "%s", it_js(r.json, "cell"));
	res_free(&r);
	ck_assert(*cell);

	const char *const paths[] = { it_fmt("/v1/cells/%s/config", cell), "/v1/regions/eu/config" };
	for (int p = 0; p < 2; p++) {
		char *text;
		json_t *c = doc_claims(paths[p], &text);
		no_secret_in(text, paths[p]);
		json_t *rules = json_object_get(c, "stream_rules");
		ck_assert_int_eq(json_array_size(json_object_get(rules, "hosts")), 4);
		ck_assert_str_eq(json_string_value(json_array_get(json_object_get(rules, "s3_regions"), 0)), "eu-west-1");
		ck_assert_int_eq(json_array_size(json_object_get(c, "streams")), 3);
		const char *ids[] = { wh, hec, s3 };
		const char *plain[] = { WH_SECRET, HEC_TOKEN, S3_SECRET };
		for (int i = 0; i < 3; i++) {
			json_t *s = find_stream(c, ids[i]);
			ck_assert_ptr_nonnull(s);
			ck_assert_str_eq(it_js(s, "tenant"), w.tenant);
			ck_assert_int_eq(jint(s, "revision"), 1);
			ck_assert(json_is_false(json_object_get(s, "paused")));
			ck_assert_int_gt(jint(s, "since"), 1700000000);
			size_t len;
			char *got = seal_open(&key, ids[i], it_js(s, "secret"), &len, err, sizeof err);
			ck_assert_msg(got != NULL, "%s: %s", ids[i], err);
			ck_assert_str_eq(got, plain[i]);
			free(got);
			/* Not for another stream of the region. */
			ck_assert_ptr_null(seal_open(&key, ids[(i + 1) % 3], it_js(s, "secret"), &len, err, sizeof err));
		}
		json_t *s = find_stream(c, s3);
		ck_assert_str_eq(it_js(s, "endpoint"), "http://127.0.0.1:9000");
		ck_assert_str_eq(it_js(s, "bucket"), "audit-logs");
		ck_assert_str_eq(it_js(s, "s3_region"), "eu-west-1");
		ck_assert_str_eq(it_js(s, "access_key_id"), "AKIAEXAMPLE1");
		ck_assert_str_eq(it_js(s, "prefix"), "");
		ck_assert_int_eq(jint(s, "replay"), 1);
		ck_assert_int_eq(jint(s, "replay_since"), 1772323200);
		ck_assert_int_eq(jint(s, "resume"), 0);
		ck_assert_str_eq(it_js(find_stream(c, wh), "url"), "https://hooks.siem.eu.example/in");
		ck_assert_int_eq(jint(find_stream(c, wh), "replay_since"), 0);
		json_decref(c);
		free(text);
	}
	/* Another region's documents have none of them. */
	char *text;
	json_t *c = doc_claims("/v1/regions/us/config", &text);
	ck_assert_ptr_null(json_object_get(c, "streams"));
	ck_assert_int_eq(json_array_size(json_object_get(json_object_get(c, "stream_rules"), "hosts")), 0);
	json_decref(c);
	free(text);
	/* Without a stream key: the streams, no secret; a paused one says so. */
	call(&r, "PATCH", "/v1/regions/eu", ADMIN_TOKEN, "{\"stream_key\":null}");
	EXPECT(&r, 200);
	ck_assert(json_is_null(json_object_get(r.json, "stream_key")));
	res_free(&r);
	call(&r, "POST", spath(&w, wh, "/pause"), w.owner, NULL);
	EXPECT(&r, 200);
	res_free(&r);
	c = doc_claims("/v1/regions/eu/config", &text);
	ck_assert_int_eq(json_array_size(json_object_get(c, "streams")), 3);
	ck_assert_ptr_null(json_object_get(find_stream(c, hec), "secret"));
	ck_assert(json_is_true(json_object_get(find_stream(c, wh), "paused")));
	json_decref(c);
	free(text);
	/* Nowhere in the database in clear either. */
	char *all = q("SELECT string_agg(x::text, ' ') FROM (SELECT row_to_json(s) x FROM streams s"
	              " UNION ALL SELECT row_to_json(a) FROM audit_log a"
	              " UNION ALL SELECT row_to_json(k) FROM idempotency_keys k"
	              " UNION ALL SELECT row_to_json(d) FROM signed_documents d"
	              " UNION ALL SELECT row_to_json(d) FROM region_documents d) t");
	no_secret_in(all, "the control plane's database");
	free(all);
	no_secret_in(seen, "an answer");
	free(seen);
	seen = NULL;
	seen_len = 0;
	jwk_clear(&key);
}
END_TEST

/* A replayed idempotent create answers the first answer (no secret in
 * it), and makes one stream. */
START_TEST(idempotent_create)
{
	struct jwk key;
	struct world w;
	struct res r1, r2;
	region_rule(&key);
	world(&w, "idem");
	struct opts o = { .token = w.owner, .idem = "stream-create-1" };
	api_ex(&r1, "POST", spath(&w, NULL, ""), &o, HEC_BODY, strlen(HEC_BODY));
	EXPECT(&r1, 201);
	api_ex(&r2, "POST", spath(&w, NULL, ""), &o, HEC_BODY, strlen(HEC_BODY));
	EXPECT(&r2, 201);
	ck_assert(replayed(&r2));
	ck_assert_str_eq(it_js(r1.json, "id"), it_js(r2.json, "id"));
	no_secret_in(r2.raw.body, "a replayed answer");
	ck_assert_int_eq(qlong("SELECT count(*) FROM streams"), 1);
	res_free(&r1);
	res_free(&r2);
	api_ex(&r1, "POST", spath(&w, NULL, ""), &o, WH_BODY, strlen(WH_BODY));
	EXPECT(&r1, 422);
	res_free(&r1);
	jwk_clear(&key);
}
END_TEST

/* The data planes' reports: a region's or its cell's credential, the
 * status and lag the owner then sees, an older report ignored, another
 * region's or an unknown stream skipped, a bad report refused whole. */
START_TEST(reports)
{
	struct jwk key;
	struct world w;
	struct res r;
	char id[37], other[37], reg[200], usreg[200], cell_tok[200];
	region_rule(&key);
	world(&w, "rep");
	create(&w, HEC_BODY, id);
	char ustenant[37];
	new_tenant("usco", "us", "free", ustenant);
	free(q("UPDATE regions SET stream_hosts = '{*.siem.eu.example}' WHERE name = 'us' RETURNING 1"));
	call(&r, "POST", it_fmt("/v1/tenants/%s/streams", ustenant), ADMIN_TOKEN, HEC_BODY);
	EXPECT(&r, 201);
	snprintf(other, sizeof other, "%s", it_js(r.json, "id"));
	res_free(&r);
	const char *which[] = { "regions/eu", "regions/us", "cells/eu-west-1" };
	char *toks[] = { reg, usreg, cell_tok };
	for (int i = 0; i < 3; i++) {
		call(&r, "POST", it_fmt("/v1/%s/credentials", which[i]), ADMIN_TOKEN, NULL);
		EXPECT(&r, 201);
		snprintf(toks[i], 200, "%s", it_js(r.json, "token"));
		res_free(&r);
	}
	const char *item = "{\"id\":\"%s\",\"status\":\"%s\",\"lag_events\":%d,\"lag_seconds\":%s,\"delivered_events\":%d,"
	                   "\"last_delivered_at\":%s,\"last_error\":%s,\"last_error_at\":%s}";
	const char *rep = it_fmt("{\"cell\":\"eu-west-1\",\"observed_at\":1780000000,\"streams\":[%s,%s,%s]}",
	                         it_fmt(item, id, "retrying", 42, "3.5", 1000, "1779999990",
	                                "\"HTTP 503 from the destination\"", "1779999999"),
	                         it_fmt(item, other, "active", 0, "0", 5, "null", "null", "null"),
	                         it_fmt(item, "00000000-0000-4000-8000-000000000000", "active", 0, "0", 0, "null", "null",
	                                "null"));
	call(&r, "POST", "/v1/regions/eu/streams/status", reg, rep);
	EXPECT(&r, 204);
	res_free(&r);
	call(&r, "GET", spath(&w, id, ""), w.member, NULL);
	EXPECT(&r, 200);
	ck_assert_str_eq(it_js(r.json, "status"), "retrying");
	ck_assert_int_eq(jint(r.json, "lag_events"), 42);
	ck_assert(json_real_value(json_object_get(r.json, "lag_seconds")) == 3.5);
	ck_assert_int_eq(jint(r.json, "delivered_events"), 1000);
	ck_assert_str_eq(it_js(r.json, "last_delivered_at"), "2026-05-28T20:26:30.000000Z");
	ck_assert_str_eq(it_js(r.json, "last_error"), "HTTP 503 from the destination");
	ck_assert(is_api_time(it_js(r.json, "last_error_at")));
	ck_assert(is_api_time(it_js(r.json, "reported_at")));
	res_free(&r);
	/* The us stream was skipped: still pending. */
	call(&r, "GET", it_fmt("/v1/tenants/%s/streams/%s", ustenant, other), ADMIN_TOKEN, NULL);
	ck_assert_str_eq(it_js(r.json, "status"), "pending");
	res_free(&r);
	ck_assert_int_eq(qlong(it_fmt("SELECT count(*) FROM stream_reports WHERE stream_id = '%s'", other)), 0);
	/* An older observation changes nothing; a newer one from the cell does. */
	call(&r, "POST", "/v1/regions/eu/streams/status", cell_tok,
	     it_fmt("{\"cell\":\"eu-west-1\",\"observed_at\":1779999000,\"streams\":[%s]}",
	            it_fmt(item, id, "failed", 1, "1", 1, "null", "null", "null")));
	EXPECT(&r, 204);
	res_free(&r);
	ck_assert_int_eq(qlong(it_fmt("SELECT lag_events FROM stream_reports WHERE stream_id = '%s'", id)), 42);
	call(&r, "POST", "/v1/regions/eu/streams/status", cell_tok,
	     it_fmt("{\"cell\":\"eu-west-1\",\"observed_at\":1780000100,\"streams\":[%s]}",
	            it_fmt(item, id, "active", 0, "0", 1042, "1780000099", "null", "null")));
	EXPECT(&r, 204);
	res_free(&r);
	call(&r, "GET", spath(&w, id, ""), w.owner, NULL);
	ck_assert_str_eq(it_js(r.json, "status"), "active");
	ck_assert(json_is_null(json_object_get(r.json, "last_error")));
	res_free(&r);
	/* Paused by the owner: "paused" whatever was reported; resumed:
	 * "pending" until the next report. */
	call(&r, "POST", spath(&w, id, "/pause"), w.owner, NULL);
	ck_assert_str_eq(it_js(r.json, "status"), "paused");
	res_free(&r);
	call(&r, "POST", spath(&w, id, "/resume"), w.owner, NULL);
	ck_assert_str_eq(it_js(r.json, "status"), "pending");
	res_free(&r);
	call(&r, "POST", "/v1/regions/eu/streams/status", reg,
	     it_fmt("{\"cell\":\"eu-west-1\",\"observed_at\":1780000200,\"streams\":[%s]}",
	            it_fmt(item, id, "refused", 0, "0", 1042, "null", "\"host not allowed\"", "1780000200")));
	EXPECT(&r, 204);
	res_free(&r);
	call(&r, "GET", spath(&w, id, ""), w.owner, NULL);
	ck_assert_str_eq(it_js(r.json, "status"), "refused");
	res_free(&r);

	/* Who may report, and what. */
	const char *good = it_fmt("{\"cell\":\"eu-west-1\",\"observed_at\":1,\"streams\":[]}");
	call(&r, "POST", "/v1/regions/eu/streams/status", usreg, good);
	EXPECT_PROBLEM(&r, 403, "forbidden", NULL);
	res_free(&r);
	call(&r, "POST", "/v1/regions/eu/streams/status", w.owner, good);
	EXPECT(&r, 403);
	res_free(&r);
	call(&r, "POST", "/v1/regions/eu/streams/status", NULL, good);
	EXPECT(&r, 401);
	res_free(&r);
	call(&r, "POST", "/v1/regions/eu/streams/status", cell_tok,
	     "{\"cell\":\"eu-west-2\",\"observed_at\":1,\"streams\":[]}");
	EXPECT_PROBLEM(&r, 403, "forbidden", NULL);
	res_free(&r);
	const char *const bad[][2] = {
		{ "{\"cell\":\"eu-west-1\",\"observed_at\":-1,\"streams\":[]}", "observed_at" },
		{ "{\"cell\":\"eu-west-1\",\"streams\":[]}", "observed_at" },
		{ "{\"cell\":\"EU\",\"observed_at\":1,\"streams\":[]}", "cell" },
		{ "{\"cell\":\"eu-west-1\",\"observed_at\":1,\"streams\":[1]}", "streams[0]" },
		{ "{\"cell\":\"eu-west-1\",\"observed_at\":1,\"streams\":[{\"id\":\"x\",\"status\":\"active\",\"lag_events\":0,"
		  "\"lag_seconds\":0,\"delivered_events\":0}]}", "streams[0].id" },
		{ "{\"cell\":\"eu-west-1\",\"observed_at\":1,\"streams\":[{\"id\":\"00000000-0000-4000-8000-000000000000\","
		  "\"status\":\"great\",\"lag_events\":0,\"lag_seconds\":0,\"delivered_events\":0}]}", "streams[0].status" },
		{ "{\"cell\":\"eu-west-1\",\"observed_at\":1,\"streams\":[{\"id\":\"00000000-0000-4000-8000-000000000000\","
		  "\"status\":\"active\",\"lag_events\":-1,\"lag_seconds\":0,\"delivered_events\":0}]}", "streams[0].lag_events" },
		{ "{\"cell\":\"eu-west-1\",\"observed_at\":1,\"streams\":[{\"id\":\"00000000-0000-4000-8000-000000000000\","
		  "\"status\":\"active\",\"lag_events\":0,\"lag_seconds\":-0.5,\"delivered_events\":0}]}", "streams[0].lag_seconds" },
		{ "{\"cell\":\"eu-west-1\",\"observed_at\":1,\"streams\":[{\"id\":\"00000000-0000-4000-8000-000000000000\","
		  "\"status\":\"active\",\"lag_events\":0,\"lag_seconds\":0,\"delivered_events\":0,\"extra\":1}]}",
		  "streams[0].extra" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		call(&r, "POST", "/v1/regions/eu/streams/status", reg, bad[i][0]);
		EXPECT_PROBLEM(&r, 400, "validation_failed", bad[i][1]);
		res_free(&r);
	}
	/* The most streams a report may carry, and one more. */
	for (int n = 1000; n <= 1001; n++) {
		size_t cap = (size_t)n * 200 + 100, o = 0;
		char *big = malloc(cap);
		o += (size_t)snprintf(big + o, cap - o, "{\"cell\":\"eu-west-1\",\"observed_at\":1,\"streams\":[");
		for (int i = 0; i < n; i++)
			o += (size_t)snprintf(big + o, cap - o,
			                      "%s{\"id\":\"00000000-0000-4000-8000-%012d\",\"status\":\"active\","
			                      "\"lag_events\":0,\"lag_seconds\":0,\"delivered_events\":0}",
			                      i ? "," : "", i);
		snprintf(big + o, cap - o, "]}");
		call(&r, "POST", "/v1/regions/eu/streams/status", reg, big);
		if (n == 1000)
			EXPECT(&r, 204);
		else
			EXPECT_PROBLEM(&r, 400, "validation_failed", "streams");
		res_free(&r);
		free(big);
	}
	jwk_clear(&key);
}
END_TEST

/* The region catalog's stream fields: admin only, each checked, and a
 * change raises every region's config version as catalog changes do. */
START_TEST(region_catalog)
{
	struct res r;
	struct jwk key;
	long v[NREGIONS];
	ck_assert_int_eq(jwk_generate(&key), 0);
	versions(v);
	call(&r, "GET", "/v1/regions/eu", NULL, NULL);
	EXPECT(&r, 200);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "stream_hosts")), 0);
	ck_assert(json_is_null(json_object_get(r.json, "stream_key")));
	res_free(&r);
	const char *const bad[][2] = {
		{ "{\"stream_hosts\":[\"https://a.example\"]}", "stream_hosts" },
		{ "{\"stream_hosts\":[\"a.*.example\"]}", "stream_hosts" },
		{ "{\"stream_hosts\":[7]}", "stream_hosts" },
		{ "{\"stream_hosts\":\"a.example\"}", "stream_hosts" },
		{ "{\"stream_s3_regions\":[\"EU-WEST-1\"]}", "stream_s3_regions" },
		{ "{\"stream_s3_regions\":[\"\"]}", "stream_s3_regions" },
		{ "{\"stream_key\":{\"kty\":\"EC\"}}", "stream_key" },
		{ "{\"stream_key\":\"abc\"}", "stream_key" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		call(&r, "PATCH", "/v1/regions/eu", ADMIN_TOKEN, bad[i][0]);
		EXPECT_PROBLEM(&r, 400, "validation_failed", bad[i][1]);
		res_free(&r);
	}
	/* 64 patterns at most. */
	char list[8192];
	size_t o = 0;
	for (int i = 0; i < 65; i++)
		o += (size_t)snprintf(list + o, sizeof list - o, "%s\"h%d.example\"", i ? "," : "", i);
	call(&r, "PATCH", "/v1/regions/eu", ADMIN_TOKEN, it_fmt("{\"stream_hosts\":[%s]}", list));
	EXPECT_PROBLEM(&r, 400, "validation_failed", "stream_hosts");
	res_free(&r);
	*strrchr(list, ',') = '\0';
	call(&r, "PATCH", "/v1/regions/eu", ADMIN_TOKEN, it_fmt("{\"stream_hosts\":[%s]}", list));
	EXPECT(&r, 200);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "stream_hosts")), 64);
	res_free(&r);
	EXPECT_VERSIONS(v, 1, 1, 1, 1);
	/* A signing key (use sig) or a private one is refused. */
	json_t *pub = jwk_public_json(&key);
	char *sig = json_dumps(pub, JSON_COMPACT);
	call(&r, "PATCH", "/v1/regions/eu", ADMIN_TOKEN, it_fmt("{\"stream_key\":%s}", sig));
	EXPECT_PROBLEM(&r, 400, "validation_failed", "stream_key");
	res_free(&r);
	json_object_del(pub, "use");
	char *nouse = json_dumps(pub, JSON_COMPACT);
	call(&r, "POST", "/v1/regions", ADMIN_TOKEN,
	     it_fmt("{\"name\":\"ch\",\"display_name\":\"Switzerland\",\"cloud_regions\":[\"eu-central-2\"],"
	            "\"endpoint\":\"https://ch.api.celltrail.example\",\"wave\":4,\"stream_hosts\":[\"*.ch.example\"],"
	            "\"stream_s3_regions\":[\"eu-central-2\"],\"stream_key\":%s}", nouse));
	EXPECT(&r, 201);
	ck_assert_str_eq(it_js(json_object_get(r.json, "stream_key"), "use"), "enc");
	ck_assert_str_eq(it_js(json_object_get(r.json, "stream_key"), "kid"), key.kid);
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(r.json, "stream_s3_regions"), 0)), "eu-central-2");
	res_free(&r);
	EXPECT_VERSIONS(v, 1, 1, 1, 1);
	/* Members and owners may not change the catalog. */
	char t[37], tok[128];
	new_tenant("cat", "eu", "free", t);
	new_user(t, "owner@cat.test", "owner", NULL);
	login("cat", "owner@cat.test", tok);
	call(&r, "PATCH", "/v1/regions/eu", tok, "{\"stream_hosts\":[]}");
	EXPECT(&r, 403);
	res_free(&r);
	free(sig);
	free(nouse);
	json_decref(pub);
	jwk_clear(&key);
}
END_TEST

/* Erasing a deleted tenant removes its streams and their reports. */
START_TEST(erasure_removes_streams)
{
	struct jwk key;
	struct world w;
	struct res r;
	char id[37], reg[200];
	region_rule(&key);
	world(&w, "gone");
	create(&w, HEC_BODY, id);
	call(&r, "POST", "/v1/regions/eu/credentials", ADMIN_TOKEN, NULL);
	snprintf(reg, sizeof reg, "%s", it_js(r.json, "token"));
	res_free(&r);
	call(&r, "POST", "/v1/regions/eu/streams/status", reg,
	     it_fmt("{\"cell\":\"eu-west-1\",\"observed_at\":5,\"streams\":[{\"id\":\"%s\",\"status\":\"active\","
	            "\"lag_events\":0,\"lag_seconds\":0,\"delivered_events\":0}]}", id));
	EXPECT(&r, 204);
	res_free(&r);
	call(&r, "DELETE", it_fmt("/v1/tenants/%s", w.tenant), ADMIN_TOKEN, NULL);
	EXPECT(&r, 200);
	res_free(&r);
	/* A deleted tenant's streams leave the documents at once. */
	char *text;
	json_t *c = doc_claims("/v1/regions/eu/config", &text);
	ck_assert_ptr_null(json_object_get(c, "streams"));
	json_decref(c);
	free(text);
	struct opts o = { .token = reg, .idem = "erase-1" };
	const char *body = it_fmt("{\"tenant_id\":\"%s\",\"status\":\"done\",\"events_deleted\":0,\"rows_deleted\":0}",
	                          w.tenant);
	api_ex(&r, "POST", "/v1/regions/eu/erasures", &o, body, strlen(body));
	EXPECT(&r, 200);
	res_free(&r);
	ck_assert_int_eq(qlong("SELECT count(*) FROM streams"), 0);
	ck_assert_int_eq(qlong("SELECT count(*) FROM stream_reports"), 0);
	jwk_clear(&key);
}
END_TEST

Suite *cp_streams_suite(void)
{
	const TTest *const tests[] = {
		lifecycle, authorization, field_validation, residency_and_limit, documents_carry_sealed_secrets,
		idempotent_create, reports, region_catalog, erasure_removes_streams,
	};
	Suite *s = suite_create("cp-streams");
	it_add_tests(s, tests, sizeof tests / sizeof tests[0], setup, teardown, 60);
	return s;
}
