/* Issuing signed regional documents, from outside: region credentials,
 * documents that hold only their region's tenants and verify against the
 * published keys (with our verifier and with PyJWT), 304s and long polls
 * woken by changes (also across two control-plane replicas), key staging
 * and rotation, and fleet status. */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cfgdoc.h"
#include "fixtures.h"
#include "it.h"
#include "secret.h"

#define ADMIN "it-admin-token-0123456789-abcdefghijklmnopqrstuvwxyz"

static struct it_proc cp, cp2;
static char db[512], url[64], url2[64], keys[512], env_db[600], env_keys[600];
static const char *env_extra, *env_extra2; /* more settings of the control planes started, or NULL */

/* The key-encryption keys of the signing keys kept in the database. */
#define KEK "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define KEK_OTHER "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

static void start_cp(struct it_proc *p, char *u, size_t ulen)
{
	char bin[1024];
	it_bin("control-plane", bin, sizeof bin);
	const char *const env[] = { env_db, env_keys, "CP_LISTEN=127.0.0.1:0", "CP_ADMIN_TOKEN=" ADMIN,
		                        "CP_SECRETS_KEY=" IT_SECRETS_KEY, "CP_SCRYPT_LOG2N=10", env_extra, env_extra2, NULL };
	char *argv[] = { bin, NULL };
	it_spawn(p, "control-plane", argv, env);
	snprintf(u, ulen, "http://127.0.0.1:%d", it_wait_port(p, 10000));
}

static void setup(void)
{
	char name[64], bin[1024], out[4096];
	snprintf(name, sizeof name, "it_cfg_%d", (int)getpid());
	it_create_db(name, db, sizeof db);
	snprintf(env_db, sizeof env_db, "CP_DATABASE_URL=%s", db);
	snprintf(keys, sizeof keys, "%s/keys-%d", it_env("IT_LOG_DIR"), (int)getpid());
	snprintf(env_keys, sizeof env_keys, "CP_SIGNING_KEYS_DIR=%s", keys);
	it_bin("control-plane", bin, sizeof bin);
	char *argv[] = { bin, "migrate", NULL };
	const char *const env[] = { env_db, NULL };
	ck_assert_int_eq(it_run("migrate", argv, env, out, sizeof out), 0);
	start_cp(&cp, url, sizeof url);
	cp2.pid = 0;
}

static void teardown(void)
{
	if (cp2.pid > 0)
		ck_assert_int_eq(it_stop(&cp2), 0);
	ck_assert_msg(it_stop(&cp) == 0, "control plane exit (log %s)", cp.log);
}

/* Keys in the database: a migrated database, no control plane yet. */
static void setup_kek(void)
{
	char name[64], bin[1024], out[4096];
	snprintf(name, sizeof name, "it_kek_%d", (int)getpid());
	it_create_db(name, db, sizeof db);
	snprintf(env_db, sizeof env_db, "CP_DATABASE_URL=%s", db);
	snprintf(env_keys, sizeof env_keys, "CP_SIGNING_KEK=" KEK);
	snprintf(keys, sizeof keys, "%s/keys-%d", it_env("IT_LOG_DIR"), (int)getpid());
	env_extra = env_extra2 = NULL;
	it_bin("control-plane", bin, sizeof bin);
	char *argv[] = { bin, "migrate", NULL };
	const char *const env[] = { env_db, NULL };
	ck_assert_int_eq(it_run("migrate", argv, env, out, sizeof out), 0);
	cp.pid = cp2.pid = 0;
}

static void teardown_kek(void)
{
	if (cp2.pid > 0)
		ck_assert_int_eq(it_stop(&cp2), 0);
	if (cp.pid > 0)
		ck_assert_msg(it_stop(&cp) == 0, "control plane exit (log %s)", cp.log);
}

/* ---- helpers ---- */

static json_t *call(long *status, const char *method, const char *base, const char *path,
                    const char *token, const char *body)
{
	struct it_resp r;
	char u[512], auth[600];
	snprintf(u, sizeof u, "%s%s", base, path);
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", token ? token : "");
	const char *const h[] = { "Content-Type: application/json", token ? auth : NULL, NULL };
	it_http(&r, method, u, h, body, body ? strlen(body) : 0);
	*status = r.status;
	json_error_t e;
	json_t *j = r.len ? json_loads(r.body, 0, &e) : NULL;
	it_resp_free(&r);
	return j;
}

static const char *str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	ck_assert_msg(s, "no string member '%s'", k);
	return s;
}

static void admin_ok(const char *method, const char *path, const char *body, long want, char *id,
                     const char *member, size_t len)
{
	long st;
	json_t *j = call(&st, method, url, path, ADMIN, body);
	ck_assert_msg(st == want, "%s %s: %ld, want %ld", method, path, st, want);
	if (id)
		snprintf(id, len, "%s", str(j, member));
	json_decref(j);
}

static void credential(const char *region, char token[128])
{
	char path[128];
	snprintf(path, sizeof path, "/v1/regions/%s/credentials", region);
	admin_ok("POST", path, "{}", 201, token, "token", 128);
}

static void fetch(struct doc *d, const char *base, const char *region, const char *token,
                  const char *etag, int wait)
{
	doc_fetch(d, it_fmt("%s/v1/regions/%s/config", base, region), token, etag, wait);
}

/* The published keys as a trust bundle file; returns its path. */
static void trust_file(const char *base, char path[600])
{
	snprintf(path, 600, "%s/trust-%d.json", it_env("IT_LOG_DIR"), (int)getpid());
	it_write_trust(base, path);
}

static struct cfgdoc *verify(const struct doc *d, const char *region, const char *trust_path)
{
	struct cfgdoc_trust t;
	struct cfgdoc *out = NULL;
	char err[300];
	ck_assert_msg(cfgdoc_trust_load(trust_path, &t, err, sizeof err) == 0, "%s", err);
	struct cfgdoc_verify_opts o = { .issuer = "celltrail-control-plane", .region = region,
		                            .now = time(NULL), .skew = 60, .min_version = 0 };
	enum cfgdoc_result res = cfgdoc_verify(d->body, d->len, &t, &o, &out, err, sizeof err);
	ck_assert_msg(res == CFGDOC_OK, "%s document does not verify: %s: %s", region,
	              cfgdoc_result_names[res], err);
	cfgdoc_trust_free(&t);
	return out;
}

/* The decoded payload of a compact JWS (malloc'd). */
static char *payload(const struct doc *d)
{
	const char *a = strchr(d->body, '.'), *b = a ? strchr(a + 1, '.') : NULL;
	ck_assert_ptr_nonnull(b);
	size_t n = (size_t)(b - a - 1);
	char *out = malloc(n + 1);
	long m = secret_unb64url(a + 1, n, out, n);
	ck_assert_int_gt(m, 0);
	out[m] = '\0';
	return out;
}

static long version_of(const char *etag)
{
	ck_assert_msg(etag[0] == '"', "ETag %s", etag);
	return atol(etag + 1);
}

struct tenant {
	char id[40], key_id[32], secret[200];
};

static void tenant_with_key(const char *slug, const char *region, struct tenant *t)
{
	char body[256], path[128];
	snprintf(body, sizeof body, "{\"name\":\"%s\",\"slug\":\"%s\",\"region\":\"%s\",\"plan\":\"pro\"}",
	         slug, slug, region);
	admin_ok("POST", "/v1/tenants", body, 201, t->id, "id", sizeof t->id);
	snprintf(path, sizeof path, "/v1/tenants/%s/api-keys", t->id);
	long st;
	json_t *j = call(&st, "POST", url, path, ADMIN, "{\"name\":\"k\",\"scopes\":[\"events:read\",\"events:write\"]}");
	ck_assert_int_eq(st, 201);
	snprintf(t->key_id, sizeof t->key_id, "%s", str(j, "id"));
	snprintf(t->secret, sizeof t->secret, "%s", str(j, "secret"));
	json_decref(j);
}

/* ---- tests ---- */

/* Only a region's own credential (or an admin) fetches its document; a
 * region credential reaches nothing else. */
START_TEST(config_needs_the_region_credential)
{
	char eu[128], us[128];
	struct doc d;
	long st;
	credential("eu", eu);
	credential("us", us);
	ck_assert_str_eq(strncmp(eu, "crt_eu_", 7) ? "" : "ok", "ok");

	fetch(&d, url, "eu", "", NULL, 0);
	ck_assert_int_eq(d.status, 401);
	free(d.body);
	fetch(&d, url, "eu", "crt_eu_not-a-real-credential", NULL, 0);
	ck_assert_int_eq(d.status, 401);
	free(d.body);
	fetch(&d, url, "eu", us, NULL, 0);
	ck_assert_int_eq(d.status, 403);
	free(d.body);
	fetch(&d, url, "eu", eu, NULL, 0);
	ck_assert_int_eq(d.status, 200);
	free(d.body);
	fetch(&d, url, "eu", ADMIN, NULL, 0);
	ck_assert_int_eq(d.status, 200);
	free(d.body);
	fetch(&d, url, "nowhere", ADMIN, NULL, 0);
	ck_assert_int_eq(d.status, 404);
	free(d.body);
	json_decref(call(&st, "GET", url, "/v1/tenants", eu, NULL));
	ck_assert_int_eq(st, 403);
	json_decref(call(&st, "GET", url, "/v1/regions/eu/fleet", eu, NULL));
	ck_assert_int_eq(st, 403);
}
END_TEST

/* Each region's document verifies against the published keys and holds
 * its own tenants and keys only: the documents of us and jp never contain
 * an eu tenant's key or id. */
START_TEST(documents_hold_only_their_region)
{
	char trust[600], tok[128];
	struct tenant a, b;
	tenant_with_key("acme-eu", "eu", &a);
	tenant_with_key("bolt-us", "us", &b);
	credential("eu", tok);
	trust_file(url, trust);

	static const char *const regions[] = { "eu", "us", "jp" };
	for (int i = 0; i < 3; i++) {
		struct doc d;
		fetch(&d, url, regions[i], ADMIN, NULL, 0);
		ck_assert_int_eq(d.status, 200);
		struct cfgdoc *cd = verify(&d, regions[i], trust);
		char *pl = payload(&d);
		int is_eu = !strcmp(regions[i], "eu"), is_us = !strcmp(regions[i], "us");
		ck_assert_int_eq(cfgdoc_find_tenant(cd, a.id) != NULL, is_eu);
		ck_assert_int_eq(strstr(pl, a.id) != NULL, is_eu);
		ck_assert_int_eq(strstr(pl, a.key_id) != NULL, is_eu);
		ck_assert_int_eq(strstr(pl, b.id) != NULL, is_us);
		ck_assert_int_eq(strstr(pl, b.key_id) != NULL, is_us);
		ck_assert_ptr_null(strstr(pl, a.secret + strlen("eu_") + 25)); /* no secret, anywhere */
		ck_assert_int_eq(cd->ver, version_of(d.etag));
		ck_assert_ptr_nonnull(cfgdoc_find_region(cd, "eu"));  /* the directory lists all */
		ck_assert_ptr_nonnull(cfgdoc_find_region(cd, "jp"));
		if (is_eu) {
			const struct cfgdoc_key *k = cfgdoc_find_key(cd, a.key_id);
			unsigned char sha[32];
			ck_assert_ptr_nonnull(k);
			secret_sha256(strrchr(a.secret, '_') + 1, 64, sha);
			ck_assert(secret_equal(sha, k->sha256, 32));
			ck_assert_uint_eq(k->scopes, CFGDOC_SCOPE_READ | CFGDOC_SCOPE_WRITE);
		}
		free(pl);
		cfgdoc_free(cd);
		free(d.body);
	}
}
END_TEST

/* A caller holding the current version gets 304; `wait` is bounded. */
START_TEST(not_modified_and_bounds)
{
	char tok[128];
	struct doc d, again;
	credential("eu", tok);
	fetch(&d, url, "eu", tok, NULL, 0);
	ck_assert_int_eq(d.status, 200);
	fetch(&again, url, "eu", tok, d.etag, 0);
	ck_assert_int_eq(again.status, 304);
	ck_assert_str_eq(again.etag, d.etag);
	free(again.body);
	/* A version from the future is not newer than nothing: still 304. */
	fetch(&again, url, "eu", tok, "\"999999\"", 0);
	ck_assert_int_eq(again.status, 304);
	free(again.body);
	fetch(&again, url, "eu", tok, "\"0\"", 0); /* a seeded region starts at version 1 */
	ck_assert_int_eq(again.status, 200);
	ck_assert_int_eq(again.len, d.len); /* the same stored document */
	ck_assert_int_eq(memcmp(again.body, d.body, d.len), 0);
	free(again.body);
	struct it_resp r;
	char u[256], auth[200];
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok);
	const char *const h[] = { auth, NULL };
	snprintf(u, sizeof u, "%s/v1/regions/eu/config?wait=61", url);
	it_http(&r, "GET", u, h, NULL, 0);
	ck_assert_int_eq(r.status, 400);
	it_resp_free(&r);
	snprintf(u, sizeof u, "%s/v1/regions/eu/config?wait=-1", url);
	it_http(&r, "GET", u, h, NULL, 0);
	ck_assert_int_eq(r.status, 400);
	it_resp_free(&r);
	free(d.body);
}
END_TEST

struct later {
	const char *base;
	int delay_ms;
	char path[256];
};

static void *revoke_later(void *arg)
{
	struct later *l = arg;
	usleep((useconds_t)l->delay_ms * 1000);
	long st;
	json_decref(call(&st, "DELETE", l->base, l->path, ADMIN, NULL));
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A long poll answers within a second of a change (here a key revoked at
 * the control plane), and with 304 when its wait runs out. */
START_TEST(long_poll_wakes_on_change)
{
	char tok[128];
	struct tenant a;
	struct doc d, w;
	pthread_t t;
	tenant_with_key("acme-eu", "eu", &a);
	credential("eu", tok);
	fetch(&d, url, "eu", tok, NULL, 0);
	ck_assert_int_eq(d.status, 200);

	struct later l = { .base = url, .delay_ms = 400 };
	snprintf(l.path, sizeof l.path, "/v1/tenants/%s/api-keys/%s", a.id, a.key_id);
	pthread_create(&t, NULL, revoke_later, &l);
	double t0 = now_s();
	fetch(&w, url, "eu", tok, d.etag, 20);
	double took = now_s() - t0;
	pthread_join(t, NULL);
	ck_assert_int_eq(w.status, 200);
	ck_assert_msg(took < 1.4, "the long poll answered %.2f s after it began (change at 0.4 s)", took);
	ck_assert_int_gt(version_of(w.etag), version_of(d.etag));
	char trust[600];
	trust_file(url, trust);
	struct cfgdoc *cd = verify(&w, "eu", trust);
	ck_assert_ptr_null(cfgdoc_find_key(cd, a.key_id)); /* the revoked key is gone */
	ck_assert_ptr_nonnull(cfgdoc_find_tenant(cd, a.id));
	cfgdoc_free(cd);

	t0 = now_s();
	struct doc idle;
	fetch(&idle, url, "eu", tok, w.etag, 1);
	took = now_s() - t0;
	ck_assert_int_eq(idle.status, 304);
	ck_assert_msg(took > 0.8 && took < 3.0, "wait=1 answered after %.2f s", took);
	free(idle.body);

	/* Operators see the polls and the builds. */
	struct it_resp m;
	char u[128];
	snprintf(u, sizeof u, "%s/metrics", url);
	it_http(&m, "GET", u, NULL, NULL, 0);
	ck_assert_ptr_nonnull(strstr(m.body, "cp_notify_connected 1\n"));
	ck_assert_ptr_nonnull(strstr(m.body, "cp_longpolls_parked 0\n"));
	ck_assert_ptr_null(strstr(m.body, "cp_longpoll_wakeups_total 0\n"));
	ck_assert_ptr_null(strstr(m.body, "cp_config_documents_built_total 0\n"));
	ck_assert_ptr_nonnull(strstr(m.body, "cp_config_document_bytes{region=\"eu\"}"));
	it_resp_free(&m);
	free(w.body);
	free(d.body);
}
END_TEST

/* Two control-plane replicas on one database serve the same bytes, and a
 * change made through one wakes the long polls held by the other. */
START_TEST(two_replicas)
{
	char tok[128];
	struct tenant a;
	struct doc d1, d2, w;
	pthread_t t;
	start_cp(&cp2, url2, sizeof url2);
	tenant_with_key("acme-eu", "eu", &a);
	credential("eu", tok);
	fetch(&d1, url, "eu", tok, NULL, 0);
	fetch(&d2, url2, "eu", tok, NULL, 0);
	ck_assert_int_eq(d1.status, 200);
	ck_assert_int_eq(d2.status, 200);
	ck_assert_str_eq(d1.etag, d2.etag);
	ck_assert_int_eq(d1.len, d2.len);
	ck_assert_int_eq(memcmp(d1.body, d2.body, d1.len), 0);

	struct later l = { .base = url, .delay_ms = 400 };
	snprintf(l.path, sizeof l.path, "/v1/tenants/%s/api-keys/%s", a.id, a.key_id);
	pthread_create(&t, NULL, revoke_later, &l);
	double t0 = now_s();
	fetch(&w, url2, "eu", tok, d2.etag, 20); /* held by replica 2, change through replica 1 */
	double took = now_s() - t0;
	pthread_join(t, NULL);
	ck_assert_int_eq(w.status, 200);
	ck_assert_msg(took < 1.4, "replica 2 answered %.2f s after the poll began", took);
	free(w.body);
	free(d1.body);
	free(d2.body);
}
END_TEST

/* A staged key is published before it signs; after rotate-key new
 * documents carry its kid and the old key stays published. */
START_TEST(key_staging_and_rotation)
{
	char bin[1024], out[8192], trust[600];
	struct doc d;
	long st;
	json_t *jwks = call(&st, "GET", url, "/.well-known/jwks.json", NULL, NULL);
	ck_assert_int_eq(json_array_size(json_object_get(jwks, "keys")), 1);
	char old_kid[64];
	snprintf(old_kid, sizeof old_kid, "%s", str(json_array_get(json_object_get(jwks, "keys"), 0), "kid"));
	json_decref(jwks);

	it_bin("control-plane", bin, sizeof bin);
	char *stage[] = { bin, "stage-key", NULL };
	const char *const env[] = { env_db, env_keys, NULL };
	ck_assert_int_eq(it_run("stage-key", stage, env, out, sizeof out), 0);
	usleep(20 * 1000); /* a distinct mtime */
	jwks = call(&st, "GET", url, "/.well-known/jwks.json", NULL, NULL);
	ck_assert_int_eq(json_array_size(json_object_get(jwks, "keys")), 2);
	json_decref(jwks);
	fetch(&d, url, "eu", ADMIN, NULL, 0);
	trust_file(url, trust);
	struct cfgdoc *cd = verify(&d, "eu", trust);
	ck_assert_str_eq(cd->kid, old_kid); /* staged keys do not sign */
	cfgdoc_free(cd);

	char *rotate[] = { bin, "rotate-key", NULL };
	ck_assert_int_eq(it_run("rotate-key", rotate, env, out, sizeof out), 0);
	struct doc n;
	fetch(&n, url, "eu", ADMIN, d.etag, 0);
	ck_assert_int_eq(n.status, 200); /* rotation raised the version */
	trust_file(url, trust);
	cd = verify(&n, "eu", trust);
	ck_assert_str_ne(cd->kid, old_kid);
	cfgdoc_free(cd);
	jwks = call(&st, "GET", url, "/.well-known/jwks.json", NULL, NULL);
	char *text = json_dumps(jwks, 0);
	ck_assert_ptr_nonnull(strstr(text, old_kid)); /* still published for the overlap */
	free(text);
	json_decref(jwks);
	struct stat sb;
	char path[700];
	snprintf(path, sizeof path, "%s/%s.pem", keys, old_kid);
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0600);
	free(n.body);
	free(d.body);
}
END_TEST

/* Data planes report their state; admins see it per region. */
START_TEST(fleet_status)
{
	char tok[128];
	long st;
	credential("eu", tok);
	json_decref(call(&st, "POST", url, "/v1/regions/eu/status", tok,
	                 "{\"instance\":\"dp-eu-1\",\"version\":3,\"source\":\"control-plane\","
	                 "\"last_pull_ok_at\":\"2026-01-01T00:00:00Z\",\"last_error\":null,\"stale\":false}"));
	ck_assert_int_eq(st, 200);
	json_decref(call(&st, "POST", url, "/v1/regions/us/status", tok, "{\"instance\":\"x\"}"));
	ck_assert_int_eq(st, 403);
	json_decref(call(&st, "POST", url, "/v1/regions/eu/status", tok, "{\"instance\":\"bad name!\"}"));
	ck_assert_int_eq(st, 400);
	json_decref(call(&st, "POST", url, "/v1/regions/eu/status", tok, "{\"instance\":\"x\",\"source\":\"moon\"}"));
	ck_assert_int_eq(st, 400);
	json_t *f = call(&st, "GET", url, "/v1/regions/eu/fleet", ADMIN, NULL);
	ck_assert_int_eq(st, 200);
	json_t *item = json_array_get(json_object_get(f, "items"), 0);
	ck_assert_str_eq(str(item, "instance"), "dp-eu-1");
	ck_assert_int_eq(json_integer_value(json_object_get(item, "config_version")), 3);
	/* The names of /readyz and of the region catalog, not synonyms. */
	ck_assert(json_is_false(json_object_get(item, "stale")));
	ck_assert_ptr_null(json_object_get(item, "config_stale"));
	ck_assert_ptr_null(json_object_get(item, "version"));
	ck_assert(json_is_false(json_object_get(item, "silent")));
	json_decref(f);
}
END_TEST

/* An independent JOSE library (PyJWT) verifies the JWK set and a document. */
START_TEST(pyjwt_verifies)
{
	char trust[600], docpath[600], out[4096];
	struct tenant a;
	struct doc d;
	tenant_with_key("acme-eu", "eu", &a);
	fetch(&d, url, "eu", ADMIN, NULL, 0);
	ck_assert_int_eq(d.status, 200);
	trust_file(url, trust);
	snprintf(docpath, sizeof docpath, "%s/doc-%d.jwt", it_env("IT_LOG_DIR"), (int)getpid());
	FILE *f = fopen(docpath, "w");
	ck_assert_ptr_nonnull(f);
	fwrite(d.body, 1, d.len, f);
	fclose(f);
	char script[] =
		"import json, sys, jwt\n"
		"from jwt.algorithms import ECAlgorithm\n"
		"keys = json.load(open(sys.argv[1]))['keys']\n"
		"tok = open(sys.argv[2]).read()\n"
		"kid = jwt.get_unverified_header(tok)['kid']\n"
		"k = ECAlgorithm.from_jwk(json.dumps([k for k in keys if k['kid'] == kid][0]))\n"
		"c = jwt.decode(tok, k, algorithms=['ES256'], audience='eu', issuer='celltrail-control-plane')\n"
		"assert c['aud'] == 'eu' and c['fmt'] == 1 and sys.argv[3] in c['tenants']\n"
		"print('verified', c['ver'])\n";
	char *argv[] = { "/usr/bin/python3", "-c", script, trust, docpath, a.id, NULL };
	int st = it_run("pyjwt", argv, NULL, out, sizeof out);
	ck_assert_msg(st == 0 && strstr(out, "verified"), "PyJWT: exit %d: %.600s", st, out);
	free(d.body);
}
END_TEST

/* ---- signing keys kept in the database (CP_SIGNING_KEK) ---- */

/* `control-plane <cmd> [arg]` with the test database and `env_keys`;
 * its exit status, its output into `out`. */
static int key_cmd(const char *cmd, const char *arg, char *out, size_t len)
{
	char bin[1024];
	it_bin("control-plane", bin, sizeof bin);
	char *argv[] = { bin, (char *)cmd, (char *)arg, NULL };
	const char *const env[] = { env_db, env_keys, env_extra, NULL };
	return it_run(cmd, argv, env, out, len);
}

/* The kids of a control plane's JWK set, sorted, joined by spaces. */
static void jwks_kids(const char *base, char *out, size_t len)
{
	long st;
	json_t *j = call(&st, "GET", base, "/.well-known/jwks.json", NULL, NULL);
	ck_assert_int_eq(st, 200);
	json_t *ks = json_object_get(j, "keys");
	const char *v[8];
	size_t n = json_array_size(ks);
	ck_assert_uint_le(n, 8);
	for (size_t i = 0; i < n; i++)
		v[i] = str(json_array_get(ks, i), "kid");
	for (size_t i = 1; i < n; i++)
		for (size_t k = i; k > 0 && strcmp(v[k - 1], v[k]) > 0; k--) {
			const char *t = v[k];
			v[k] = v[k - 1];
			v[k - 1] = t;
		}
	out[0] = '\0';
	for (size_t i = 0; i < n; i++)
		snprintf(out + strlen(out), len - strlen(out), "%s%s", i ? " " : "", v[i]);
	json_decref(j);
}

/* Waits (up to 5 s) until the JWK set of `base` is `want`. */
static void wait_kids(const char *base, const char *want)
{
	char got[1024] = "";
	for (int i = 0; i < 100; i++) {
		jwks_kids(base, got, sizeof got);
		if (!strcmp(got, want))
			return;
		usleep(50 * 1000);
	}
	ck_abort_msg("%s publishes [%s], want [%s]", base, got, want);
}

/* The kid a region document of `base` is signed with, and its etag. */
static void doc_kid(const char *base, const char *tok, const char *etag, char kid[64], char new_etag[32])
{
	struct doc d;
	char trust[600];
	fetch(&d, base, "eu", tok, etag, 0);
	ck_assert_msg(d.status == 200, "%s: document status %ld", base, d.status);
	trust_file(base, trust);
	struct cfgdoc *cd = verify(&d, "eu", trust);
	snprintf(kid, 64, "%s", cd->kid);
	if (new_etag)
		snprintf(new_etag, 32, "%s", d.etag);
	cfgdoc_free(cd);
	free(d.body);
}

static char *sql1(const char *q)
{
	char *v = it_sql(db, q);
	return v ? v : strdup("");
}

/* Two replicas on one database sign with one key and publish one set;
 * the key is kept sealed, never as a PEM. */
START_TEST(kek_replicas_one_identity)
{
	char k1[1024], k2[1024], tok[128], kid1[64], kid2[64];
	start_cp(&cp, url, sizeof url);
	start_cp(&cp2, url2, sizeof url2);
	jwks_kids(url, k1, sizeof k1);
	jwks_kids(url2, k2, sizeof k2);
	ck_assert_str_eq(k1, k2);
	ck_assert_int_eq(strlen(k1), 43); /* one key */
	credential("eu", tok);
	doc_kid(url, tok, NULL, kid1, NULL);
	doc_kid(url2, tok, NULL, kid2, NULL);
	ck_assert_str_eq(kid1, k1);
	ck_assert_str_eq(kid2, k1);
	char *v = sql1("SELECT count(*) || ' ' || bool_and(sealed NOT LIKE '%PRIVATE%' AND kek_id ~ '^[0-9a-f]{16}$')"
	               " || ' ' || min(state) FROM signing_keys");
	ck_assert_str_eq(v, "1 true current");
	free(v);
	v = sql1("SELECT actor_type || ' ' || action || ' ' || object_id FROM audit_log WHERE object_type = 'signing_key'");
	ck_assert_str_eq(v, it_fmt("operator signing_key.create %s", k1));
	free(v);
	ck_assert_int_ge(it_metric(url, "cp_signing_key_age_seconds"), 0);
	ck_assert_int_le(it_metric(url, "cp_signing_key_age_seconds"), 60);
	/* Nothing on disk: no directory was named. */
	struct stat sb;
	ck_assert_int_ne(stat(keys, &sb), 0);
}
END_TEST

/* Two control planes started at once on an empty table make one key. */
START_TEST(kek_first_start_race)
{
	char bin[1024], k1[1024], k2[1024];
	it_bin("control-plane", bin, sizeof bin);
	const char *const env[] = { env_db, env_keys, "CP_LISTEN=127.0.0.1:0", "CP_ADMIN_TOKEN=" ADMIN,
		                        "CP_SECRETS_KEY=" IT_SECRETS_KEY, "CP_SCRYPT_LOG2N=10", NULL };
	char *argv[] = { bin, NULL };
	it_spawn(&cp, "control-plane", argv, env);
	it_spawn(&cp2, "control-plane", argv, env);
	snprintf(url, sizeof url, "http://127.0.0.1:%d", it_wait_port(&cp, 30000));
	snprintf(url2, sizeof url2, "http://127.0.0.1:%d", it_wait_port(&cp2, 30000));
	jwks_kids(url, k1, sizeof k1);
	jwks_kids(url2, k2, sizeof k2);
	ck_assert_str_eq(k1, k2);
	ck_assert_int_eq(sqll(db, "SELECT count(*) FROM signing_keys"), 1);
}
END_TEST

/* Stage, rotate and retire, each one command on the database, reach
 * every replica without a restart, and are recorded. */
START_TEST(kek_stage_rotate_retire)
{
	char out[8192], tok[128], old[64], staged[64], kid[64], etag[32], etag2[32];
	start_cp(&cp, url, sizeof url);
	start_cp(&cp2, url2, sizeof url2);
	credential("eu", tok);
	jwks_kids(url, old, sizeof old);
	doc_kid(url, tok, NULL, kid, etag);
	doc_kid(url2, tok, NULL, kid, etag2);
	ck_assert_str_eq(kid, old);

	ck_assert_msg(key_cmd("stage-key", NULL, out, sizeof out) == 0, "%s", out);
	char *v = sql1("SELECT kid FROM signing_keys WHERE state = 'staged'");
	snprintf(staged, sizeof staged, "%s", v);
	free(v);
	ck_assert_ptr_nonnull(strstr(out, staged));
	char both[200];
	snprintf(both, sizeof both, "%s %s", strcmp(old, staged) < 0 ? old : staged, strcmp(old, staged) < 0 ? staged : old);
	wait_kids(url, both);
	wait_kids(url2, both);
	/* One staged key at a time. */
	ck_assert_int_ne(key_cmd("stage-key", NULL, out, sizeof out), 0);
	ck_assert_msg(strstr(out, "is staged already"), "%s", out);

	ck_assert_msg(key_cmd("rotate-key", NULL, out, sizeof out) == 0, "%s", out);
	/* The rotation raised the versions: both replicas' new documents are
	 * signed with the staged key, the old one stays published. */
	doc_kid(url, tok, etag, kid, NULL);
	ck_assert_str_eq(kid, staged);
	doc_kid(url2, tok, etag2, kid, NULL);
	ck_assert_str_eq(kid, staged);
	wait_kids(url2, both);

	/* The current key cannot be retired; the previous one can. */
	ck_assert_int_ne(key_cmd("retire-key", staged, out, sizeof out), 0);
	ck_assert_msg(strstr(out, "is current"), "%s", out);
	ck_assert_int_ne(key_cmd("retire-key", "no-such-key", out, sizeof out), 0);
	ck_assert_msg(key_cmd("retire-key", old, out, sizeof out) == 0, "%s", out);
	wait_kids(url, staged);
	wait_kids(url2, staged);
	ck_assert_int_ne(key_cmd("retire-key", old, out, sizeof out), 0);
	ck_assert_msg(strstr(out, "retired already"), "%s", out);

	ck_assert_msg(key_cmd("signing-keys", NULL, out, sizeof out) == 0, "%s", out);
	json_t *list = json_loads(strchr(out, '['), 0, NULL);
	ck_assert_int_eq(json_array_size(list), 2);
	ck_assert_str_eq(str(json_array_get(list, 0), "state"), "current");
	ck_assert_str_eq(str(json_array_get(list, 0), "kid"), staged);
	ck_assert_str_eq(str(json_array_get(list, 1), "state"), "retired");
	json_decref(list);
	v = sql1("SELECT string_agg(action || ':' || actor_type, ' ' ORDER BY id) FROM audit_log"
	         " WHERE object_type = 'signing_key'");
	ck_assert_str_eq(v, "signing_key.create:operator signing_key.stage:operator signing_key.rotate:operator "
	                    "signing_key.rotate:operator signing_key.retire:operator");
	free(v);
	/* `jwks` prints the database's set without a replica. */
	ck_assert_msg(key_cmd("jwks", NULL, out, sizeof out) == 0, "%s", out);
	ck_assert_ptr_nonnull(strstr(out, staged));
	ck_assert_ptr_null(strstr(out, old));
}
END_TEST

/* A replica with another CP_SIGNING_KEK refuses to start and says why;
 * one with a malformed KEK is a usage error. */
START_TEST(kek_wrong_key_refused)
{
	char out[8192], bin[1024];
	start_cp(&cp, url, sizeof url);
	it_bin("control-plane", bin, sizeof bin);
	char *argv[] = { bin, NULL };
	const char *const env[] = { env_db, "CP_SIGNING_KEK=" KEK_OTHER, "CP_LISTEN=127.0.0.1:0",
		                        "CP_SECRETS_KEY=" IT_SECRETS_KEY, "CP_SCRYPT_LOG2N=10", NULL };
	ck_assert_int_ne(it_run("control-plane-other-kek", argv, env, out, sizeof out), 0);
	ck_assert_msg(strstr(out, "sealed with the key-encryption key") && strstr(out, "CP_SIGNING_KEK"), "%s", out);
	const char *const bad[] = { env_db, "CP_SIGNING_KEK=abc", "CP_LISTEN=127.0.0.1:0",
		                        "CP_SECRETS_KEY=" IT_SECRETS_KEY, NULL };
	ck_assert_int_eq(it_run("control-plane-bad-kek", argv, bad, out, sizeof out), 2);
	ck_assert_msg(strstr(out, "CP_SIGNING_KEK must be 64 hex characters"), "%s", out);
	/* The key commands too: a key sealed with another KEK could not be
	 * opened by the replicas, so nothing is changed. */
	char before[1024], after[1024];
	jwks_kids(url, before, sizeof before);
	snprintf(env_keys, sizeof env_keys, "CP_SIGNING_KEK=" KEK_OTHER);
	static const char *const cmds[] = { "stage-key", "rotate-key" };
	for (int i = 0; i < 2; i++) {
		ck_assert_int_ne(key_cmd(cmds[i], NULL, out, sizeof out), 0);
		ck_assert_msg(strstr(out, "is not the key-encryption key that sealed the current signing key"), "%s", out);
	}
	ck_assert_int_eq(sqll(db, "SELECT count(*) FROM signing_keys"), 1);
	snprintf(env_keys, sizeof env_keys, "CP_SIGNING_KEK=" KEK);
	/* A staged key sealed with the right one, then rotate-key with the
	 * wrong one: refused for the staged key as well. */
	ck_assert_msg(key_cmd("stage-key", NULL, out, sizeof out) == 0, "%s", out);
	snprintf(env_keys, sizeof env_keys, "CP_SIGNING_KEK=" KEK_OTHER);
	ck_assert_int_ne(key_cmd("rotate-key", NULL, out, sizeof out), 0);
	snprintf(env_keys, sizeof env_keys, "CP_SIGNING_KEK=" KEK);
	ck_assert_int_eq(sqll(db, "SELECT count(*) FROM signing_keys WHERE state = 'current'"), 1);
	usleep(1100 * 1000); /* past the JWK set's age */
	jwks_kids(url, after, sizeof after);
	ck_assert_uint_eq(strlen(after), 2 * 43 + 1); /* the first key and the staged one */
	ck_assert_ptr_nonnull(strstr(after, before));
}
END_TEST

/* A previous key whose CP_KEY_OVERLAP has passed is retired by the
 * control plane itself: a change of the keys like any other (a new key
 * set version, an audit record), so that the data planes stop trusting
 * it too. */
START_TEST(kek_overlap_passed)
{
	char out[8192];
	env_extra = "CP_KEY_OVERLAP=0s";
	env_extra2 = "CP_CONFIG_LIFETIME=60s"; /* the upkeep every 7.5 s */
	start_cp(&cp, url, sizeof url);
	char *first = sql1("SELECT kid FROM signing_keys WHERE state = 'current'");
	long long ver = sqll(db, "SELECT max(ver) FROM signing_keys");
	/* (Staged first: with no overlap an unstaged rotation is refused.) */
	ck_assert_msg(key_cmd("stage-key", NULL, out, sizeof out) == 0, "%s", out);
	ck_assert_msg(key_cmd("rotate-key", NULL, out, sizeof out) == 0, "%s", out);
	for (int i = 0; i < 300 && sqll(db, it_fmt("SELECT count(*) FROM signing_keys WHERE kid = '%s' AND state = 'retired'", first)) == 0; i++)
		usleep(100 * 1000);
	ck_assert_int_eq(sqll(db, it_fmt("SELECT count(*) FROM signing_keys WHERE kid = '%s' AND state = 'retired'", first)), 1);
	ck_assert_int_gt(sqll(db, "SELECT max(ver) FROM signing_keys"), ver + 1);
	char *v = sql1("SELECT actor_id FROM audit_log WHERE action = 'signing_key.retire'");
	ck_assert_msg(strstr(v, "(CP_KEY_OVERLAP passed)"), "%s", v);
	free(v);
	free(first);
}
END_TEST

/* At the first start with keys in the database, the ring of
 * CP_SIGNING_KEYS_DIR is imported: its kids, and which one signs. */
START_TEST(kek_imports_the_directory)
{
	char out[8192], ring[1024], cur[64];
	snprintf(env_keys, sizeof env_keys, "CP_SIGNING_KEYS_DIR=%s", keys);
	ck_assert_msg(key_cmd("jwks", NULL, out, sizeof out) == 0, "%s", out);
	ck_assert_msg(key_cmd("stage-key", NULL, out, sizeof out) == 0, "%s", out);
	char path[700];
	snprintf(path, sizeof path, "%s/current", keys);
	char *c = it_slurp(path);
	snprintf(cur, sizeof cur, "%.43s", c);
	free(c);
	static char dir_env[600];
	snprintf(dir_env, sizeof dir_env, "CP_SIGNING_KEYS_DIR=%s", keys);
	snprintf(env_keys, sizeof env_keys, "CP_SIGNING_KEK=" KEK);
	env_extra = dir_env;
	start_cp(&cp, url, sizeof url);
	jwks_kids(url, ring, sizeof ring);
	ck_assert_int_eq(strlen(ring), 43 * 2 + 1);
	ck_assert_ptr_nonnull(strstr(ring, cur));
	char *v = sql1("SELECT kid FROM signing_keys WHERE state = 'current'");
	ck_assert_str_eq(v, cur);
	free(v);
	ck_assert_int_eq(sqll(db, "SELECT count(*) FROM signing_keys WHERE state = 'staged'"), 1);
	ck_assert_int_eq(sqll(db, "SELECT count(*) FROM audit_log WHERE action = 'signing_key.import'"), 2);
	/* A second start imports nothing more. */
	ck_assert_int_eq(it_stop(&cp), 0);
	start_cp(&cp, url, sizeof url);
	ck_assert_int_eq(sqll(db, "SELECT count(*) FROM signing_keys"), 2);
}
END_TEST

Suite *config_issue_suite(void)
{
	Suite *s = suite_create("config-issue");
	TCase *tc = tcase_create("issue");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, config_needs_the_region_credential);
	tcase_add_test(tc, documents_hold_only_their_region);
	tcase_add_test(tc, not_modified_and_bounds);
	tcase_add_test(tc, long_poll_wakes_on_change);
	tcase_add_test(tc, two_replicas);
	tcase_add_test(tc, key_staging_and_rotation);
	tcase_add_test(tc, fleet_status);
	tcase_add_test(tc, pyjwt_verifies);
	suite_add_tcase(s, tc);
	TCase *kek = tcase_create("keys-in-database");
	tcase_set_timeout(kek, 60);
	tcase_add_checked_fixture(kek, setup_kek, teardown_kek);
	tcase_add_test(kek, kek_replicas_one_identity);
	tcase_add_test(kek, kek_first_start_race);
	tcase_add_test(kek, kek_stage_rotate_retire);
	tcase_add_test(kek, kek_wrong_key_refused);
	tcase_add_test(kek, kek_imports_the_directory);
	tcase_add_test(kek, kek_overlap_passed);
	suite_add_tcase(s, kek);
	return s;
}
