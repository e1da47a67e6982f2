/* The data plane's tenant events API from outside (issue 5): a real control
 * plane and real data planes on a throwaway PostgreSQL, tenants, keys and
 * plans made through the control plane's admin API, and the regional
 * database looked at directly.
 *
 *   tenant_isolation            two tenants of a region: own events only, a shared client id is two events
 *   misdirected_key             another region's key: 421 with region and endpoint, a made-up region's 401; the database untouched
 *   idempotent_retries          replays (200, Idempotent-Replayed, the stored event), conflicts (409, field)
 *   validation                  every invalid request refused whole with its field; scopes; 401; 405
 *   quota                       monthly quota exact, all or nothing, replays free, 429 quota_exceeded
 *   rate_limit                  token buckets (rate 1, burst 3), reads apart from writes, RateLimit-*, Retry-After
 *   retention                   events older than the plan's retention deleted in batches, nothing else
 *   partitioned_weeks           events partitioned by week: whole weeks no tenant keeps dropped or
 *                               truncated, a week of several retentions emptied row by row of the tenants
 *                               past it only; deletions refused to a session of an older build
 *   ids_indexed_later           a cell partitioned before the index of ids across weeks gets it, every
 *                               week's ids in it (a detached one's too), ids found through it
 *   contract_waits_for_fleet    events stay unpartitioned without DP_EVENTS_PARTITIONED, and with it while
 *                               an instance of an older build is live and DP_CONTRACT_AFTER past it,
 *                               then are converted (nothing lost)
 *   listing_across_weeks        pages over 40 weeks of events, both orders, every page size, filtered or
 *                               not: each event once, in order (a statement per window of weeks)
 *   usage_exactly_once          usage billed exactly once across a control-plane outage
 *   sigkill_under_load          a data plane SIGKILLed under load loses no acknowledged event or usage
 *   pg_restart_under_load       the regional database restarted: 503 + Retry-After, then served again
 *   list_filters_and_pages      filters, newest-first order with ties, cursor pages, bad parameters
 *   tenant_usage                GET /v1/tenant usage: own ingests at once, another instance's at its refresh
 *   tenant_usage_unknown        GET /v1/tenant before usage was read: said unknown (null), never 0
 *   ratelimit_headers_on_every_answer  RateLimit-* on every answer of the events routes
 *   concurrent_retries          one id sent at once to two instances: stored once, also when the copies'
 *                               occurred_at fall in different weekly partitions
 *   quota_exact_across_instances  concurrent load on two instances never passes the quota
 *   ingest_queue_full           DP_INGEST_QUEUE_MAX: 503 with Retry-After, nothing lost
 *
 * Every test is its own TCase with its own control plane on a fresh
 * database, listening on a fixed port so that it can be restarted;
 * CK_RUN_SUITE=events (and CK_RUN_CASE=<test>) runs them alone. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fixtures.h"
#include "problem.h"

#define ADMIN "it-admin-token-0123456789-abcdefghijklmnopqrstuvwxyz"

/* The deadline of a wait for something a background task does (a pull,
 * a refresh, a report, a retention pass, a reconnection): long enough for
 * a loaded machine under ASan, and the wait ends as soon as it is done. */
#define SLOW_MS 30000

/* A malloc'd copy of `text`, freed by keep_free(). */
static char *kept[128];
static int nkept;
static const char *keep(const char *text)
{
	ck_assert_int_lt(nkept, 128);
	kept[nkept] = strdup(text);
	ck_assert_ptr_nonnull(kept[nkept]);
	return kept[nkept++];
}

static void keep_free(void)
{
	while (nkept > 0)
		free(kept[--nkept]);
}

/* `n` copies of `c` (a kept text). */
static const char *rep(char c, size_t n)
{
	char *b = malloc(n + 1);
	ck_assert_ptr_nonnull(b);
	memset(b, c, n);
	b[n] = '\0';
	const char *k = keep(b);
	free(b);
	return k;
}

static char *dump(const json_t *j)
{
	return json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

/* "YYYY-MM" of the current UTC month. */
static void this_period(char out[8])
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 8, "%Y-%m", &tm);
}

/* Seconds from now to the start of the next UTC month. */
static long secs_to_next_month(void)
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	tm.tm_mday = 1;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	tm.tm_mon++;
	if (tm.tm_mon > 11) {
		tm.tm_mon = 0;
		tm.tm_year++;
	}
	return (long)(timegm(&tm) - t);
}

/* The API's normalized time: YYYY-MM-DDTHH:MM:SS.ffffffZ. */
static void api_time(time_t t, long usec, char out[32])
{
	struct tm tm;
	gmtime_r(&t, &tm);
	char b[24];
	strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, 32, "%s.%06ldZ", b, usec);
}

/* ------------------------------------------------------------------ */
/* The control plane                                                   */

static struct it_proc cp;
static char cp_db[512], cp_url[64], env_cpdb[600], env_keys[600], env_listen[64], env_regions[700];
static char trust[600];
static int cp_port;

/* A port nobody listens on, below the ephemeral range. */
static int pick_port(void)
{
	for (int i = 0; i < 200; i++) {
		int port = 20000 + (int)((unsigned)rand() % 12000);
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
		close(fd);
		if (ok)
			return port;
	}
	ck_abort_msg("no free port");
	return -1;
}

static void start_cp(void)
{
	char bin[1024];
	it_bin("control-plane", bin, sizeof bin);
	const char *const env[] = { env_cpdb, env_keys, env_listen, env_regions, "CP_ADMIN_TOKEN=" ADMIN,
		                        "CP_SECRETS_KEY=" IT_SECRETS_KEY, "CP_SCRYPT_LOG2N=10", NULL };
	char *argv[] = { bin, NULL };
	it_spawn(&cp, "control-plane", argv, env);
	int port = it_wait_port(&cp, 10000);
	ck_assert_int_eq(port, cp_port);
}

static void stop_cp(void)
{
	int st = it_stop(&cp);
	ck_assert_msg(st == 0, "control plane exited with %d on SIGTERM (log %s)", st, cp.log);
}

/* One admin call to the control plane. */
static void cp_call(struct res *r, const char *method, const char *path, const char *body)
{
	char u[1024];
	snprintf(u, sizeof u, "%s%s", cp_url, path);
	const char *const h[] = { "Content-Type: application/json", "Authorization: Bearer " ADMIN, NULL };
	res_call(r, method, u, h, body, body ? strlen(body) : 0);
}

#define CP_OK(r, method, path, body, want) cp_ok((r), (method), (path), (body), (want), __LINE__)
static void cp_ok(struct res *r, const char *method, const char *path, const char *body, long want,
                  int line)
{
	cp_call(r, method, path, body);
	ck_assert_msg(r->status == want, "line %d: CP %s %s: %ld, want %ld: %.500s", line, method, path,
	              r->status, want, r->raw.body);
}

static void write_trust(void)
{
	it_write_trust(cp_url, trust);
}

/* A plan of our own (admin API). */
static void new_plan(const char *id, long rate, long burst, long long quota, long retention)
{
	struct res r;
	CP_OK(&r, "POST", "/v1/plans",
	      it_fmt("{\"id\":\"%s\",\"name\":\"Plan %s\",\"currency\":\"USD\",\"base_price\":0,"
	          "\"events_included\":0,\"price_per_1000\":0,\"rate_limit\":%ld,\"burst\":%ld,"
	          "\"monthly_event_quota\":%lld,\"retention_days\":%ld}",
	          id, id, rate, burst, quota, retention),
	      201);
	res_free(&r);
}

struct tenant {
	char id[40], slug[64], region[16];
};

static void new_tenant(struct tenant *t, const char *slug, const char *region, const char *plan)
{
	struct res r;
	CP_OK(&r, "POST", "/v1/tenants",
	      it_fmt("{\"name\":\"%s\",\"slug\":\"%s\",\"region\":\"%s\",\"plan\":\"%s\"}", slug, slug, region,
	          plan),
	      201);
	snprintf(t->id, sizeof t->id, "%s", it_js(r.json, "id"));
	snprintf(t->slug, sizeof t->slug, "%s", slug);
	snprintf(t->region, sizeof t->region, "%s", region);
	ck_assert_int_eq(strlen(t->id), 36);
	res_free(&r);
}

/* An API key of `t` with `scopes` ("w", "r" or "rw"): the full key text. */
static void new_key(const struct tenant *t, const char *scopes, char key[200], char key_id[32])
{
	struct res r;
	const char *s = !strcmp(scopes, "w")   ? "[\"events:write\"]"
	                : !strcmp(scopes, "r") ? "[\"events:read\"]"
	                                       : "[\"events:read\",\"events:write\"]";
	CP_OK(&r, "POST", it_fmt("/v1/tenants/%s/api-keys", t->id), it_fmt("{\"name\":\"k\",\"scopes\":%s}", s),
	      201);
	snprintf(key, 200, "%s", it_js(r.json, "secret"));
	if (key_id)
		snprintf(key_id, 32, "%s", it_js(r.json, "id"));
	ck_assert_msg(!strncmp(key, t->region, strlen(t->region)) && key[strlen(t->region)] == '_',
	              "key %s is not of region %s", key, t->region);
	res_free(&r);
}

static long region_version(const char *region)
{
	struct res r;
	size_t i;
	json_t *it;
	long v = 0;
	CP_OK(&r, "GET", "/v1/regions", NULL, 200);
	json_array_foreach(json_object_get(r.json, "items"), i, it)
		if (!strcmp(it_js(it, "name"), region))
			v = (long)json_integer_value(json_object_get(it, "config_version"));
	res_free(&r);
	ck_assert_msg(v > 0, "region %s has no config_version", region);
	return v;
}

/* Billed usage: CP GET /v1/tenants/{id}/usage?period= -> total. */
static long long billed_total(const char *tenant, const char *period)
{
	struct res r;
	CP_OK(&r, "GET", it_fmt("/v1/tenants/%s/usage?period=%s", tenant, period), NULL, 200);
	json_t *t = json_object_get(r.json, "total");
	ck_assert_msg(json_is_integer(t), "usage: %.300s", r.raw.body);
	long long v = (long long)json_integer_value(t);
	res_free(&r);
	return v;
}

/* ------------------------------------------------------------------ */
/* Data planes                                                         */

#define MAX_DPS 6

struct dp {
	struct it_proc p;
	char region[16], url[64], db[512];
	char env_db[600], env_token[300], env_cache[700], env_inst[80], env_region[40];
	const char *extra[8];
};

static struct dp *dps[MAX_DPS];
static int ndps;

/* A regional database for `region` (migrated and claimed by `data-plane
 * migrate`), a credential, a cache directory. */
static void dp_prepare(struct dp *d, const char *region, const char *tag)
{
	static int seq;
	char name[80], bin[1024], out[4096];
	memset(d, 0, sizeof *d);
	snprintf(d->region, sizeof d->region, "%s", region);
	snprintf(name, sizeof name, "it_ev_%s_%s_%d", region, tag, (int)getpid());
	it_create_db(name, d->db, sizeof d->db);
	snprintf(d->env_db, sizeof d->env_db, "DP_DATABASE_URL=%s", d->db);
	snprintf(d->env_region, sizeof d->env_region, "DP_REGION=%s", region);
	struct res r;
	CP_OK(&r, "POST", it_fmt("/v1/regions/%s/credentials", region), "{}", 201);
	snprintf(d->env_token, sizeof d->env_token, "DP_REGION_TOKEN=%s", it_js(r.json, "token"));
	res_free(&r);
	snprintf(d->env_cache, sizeof d->env_cache, "DP_CACHE_DIR=%s/ev-cache-%s-%s-%d-%d",
	         it_env("IT_LOG_DIR"), region, tag, (int)getpid(), seq++);
	snprintf(d->env_inst, sizeof d->env_inst, "DP_INSTANCE=it-ev-%s-%s", region, tag);
	it_bin("data-plane", bin, sizeof bin);
	const char *const env[] = { d->env_db, d->env_region, "DP_CONTROL_PLANE_URL=http://127.0.0.1:1", NULL };
	char *argv[] = { bin, "migrate", NULL };
	int st = it_run("dp-migrate", argv, env, out, sizeof out);
	ck_assert_msg(st == 0, "data-plane migrate: %d: %.500s", st, out);
}

/* A second instance of the same region on the same database. */
static void dp_clone(struct dp *d, const struct dp *from, const char *tag)
{
	static int seq;
	*d = *from;
	memset(&d->p, 0, sizeof d->p);
	d->url[0] = '\0';
	snprintf(d->env_cache, sizeof d->env_cache, "DP_CACHE_DIR=%s/ev-cache-clone-%s-%d-%d",
	         it_env("IT_LOG_DIR"), tag, (int)getpid(), seq++);
	snprintf(d->env_inst, sizeof d->env_inst, "DP_INSTANCE=it-ev-%s-%s", d->region, tag);
}

static long dp_version(const struct dp *d)
{
	struct it_resp r;
	it_http(&r, "GET", it_fmt("%s/readyz", d->url), NULL, NULL, 0);
	json_t *j = r.status == 200 ? json_loadb(r.body, r.len, 0, NULL) : NULL;
	long v = j ? (long)json_integer_value(json_object_get(j, "config_version")) : 0;
	json_decref(j);
	it_resp_free(&r);
	return v;
}

/* Waits until the data plane uses the region's current document. */
static void dp_sync(const struct dp *d)
{
	/* Generous: a loaded machine under ASan starts and pulls slowly. */
	long want = region_version(d->region), deadline = it_now_ms() + SLOW_MS;
	while (dp_version(d) < want) {
		ck_assert_msg(it_now_ms() < deadline, "the %s data plane did not reach config version %ld",
		              d->region, want);
		usleep(20000);
	}
}

static void dp_start(struct dp *d)
{
	char bin[1024], env_cp[128], env_trust[700];
	const char *env[24];
	int n = 0;
	it_bin("data-plane", bin, sizeof bin);
	snprintf(env_cp, sizeof env_cp, "DP_CONTROL_PLANE_URL=%s", cp_url);
	snprintf(env_trust, sizeof env_trust, "DP_TRUST_BUNDLE=%s", trust);
	env[n++] = d->env_db;
	env[n++] = d->env_region;
	env[n++] = env_cp;
	env[n++] = env_trust;
	env[n++] = d->env_token;
	env[n++] = d->env_cache;
	env[n++] = d->env_inst;
	env[n++] = "DP_LISTEN=127.0.0.1:0";
	env[n++] = "DP_PULL_WAIT=20s";
	env[n++] = "DP_USAGE_REPORT_INTERVAL=200ms";
	env[n++] = "DP_RETENTION_INTERVAL=1s";
	env[n++] = "DP_USAGE_REFRESH=1s";
	for (int i = 0; d->extra[i]; i++)
		env[n++] = d->extra[i];
	env[n] = NULL;
	char *argv[] = { bin, NULL };
	it_spawn(&d->p, "data-plane", argv, env);
	snprintf(d->url, sizeof d->url, "http://127.0.0.1:%d", it_wait_port(&d->p, 10000));
	int known = 0;
	for (int i = 0; i < ndps; i++)
		known |= dps[i] == d;
	if (!known) {
		ck_assert_int_lt(ndps, MAX_DPS);
		dps[ndps++] = d;
	}
	dp_sync(d);
}

static void dp_stop(struct dp *d)
{
	if (d->p.pid <= 0)
		return;
	int st = it_stop(&d->p);
	ck_assert_msg(st == 0, "%s data plane exited with %d on SIGTERM (log %s)", d->region, st, d->p.log);
}

static int dp_alive(const struct dp *d)
{
	int st;
	return d->p.pid > 0 && waitpid(d->p.pid, &st, WNOHANG) == 0;
}

/* ------------------------------------------------------------------ */
/* Fixture                                                             */

static void setup(void)
{
	char name[64], bin[1024], out[4096], keys[500];
	srand((unsigned)getpid() ^ (unsigned)time(NULL));
	ndps = 0;
	snprintf(name, sizeof name, "it_ev_cp_%d", (int)getpid());
	it_create_db(name, cp_db, sizeof cp_db);
	snprintf(env_cpdb, sizeof env_cpdb, "CP_DATABASE_URL=%s", cp_db);
	snprintf(keys, sizeof keys, "%s/ev-keys-%d", it_env("IT_LOG_DIR"), (int)getpid());
	snprintf(env_keys, sizeof env_keys, "CP_SIGNING_KEYS_DIR=%s", keys);
	snprintf(env_regions, sizeof env_regions, "CP_REGIONS_FILE=%s/deploy/regions.conf", it_env("IT_ROOT"));
	snprintf(trust, sizeof trust, "%s/ev-trust-%d.json", it_env("IT_LOG_DIR"), (int)getpid());
	cp_port = pick_port();
	snprintf(env_listen, sizeof env_listen, "CP_LISTEN=127.0.0.1:%d", cp_port);
	snprintf(cp_url, sizeof cp_url, "http://127.0.0.1:%d", cp_port);
	it_bin("control-plane", bin, sizeof bin);
	char *argv[] = { bin, "migrate", NULL };
	const char *const env[] = { env_cpdb, NULL };
	int st = it_run("cp-migrate", argv, env, out, sizeof out);
	ck_assert_msg(st == 0, "control-plane migrate: %d: %.400s", st, out);
	start_cp();
	write_trust();
}

static void teardown(void)
{
	keep_free();
	for (int i = 0; i < ndps; i++)
		dp_stop(dps[i]);
	ndps = 0;
	if (cp.pid > 0)
		stop_cp();
}

/* ------------------------------------------------------------------ */
/* Tenant requests                                                     */

/* One request to a data plane. Whatever the request: an answer exists,
 * carries X-Request-Id; an error is a problem document whose status and
 * type match its code; a success is a JSON object. */
static void dp_call(struct res *r, const struct dp *d, const char *method, const char *path,
                    const char *key, const char *body, size_t len, const char *ctype)
{
	char url[8192], auth[300], ct[200], v[256];
	const char *h[4];
	int n = 0;
	snprintf(url, sizeof url, "%s%s", d->url, path);
	if (key) {
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
		h[n++] = auth;
	}
	if (body) {
		snprintf(ct, sizeof ct, "Content-Type: %s", ctype ? ctype : "application/json");
		h[n++] = ct;
	}
	h[n] = NULL;
	res_call(r, method, url, h, body, len);
	ck_assert_msg(r->status > 0, "%s %s: no answer", method, path);
	ck_assert_msg(it_header(&r->raw, "X-Request-Id", v, sizeof v) == 0 && v[0],
	              "%s %s: %ld without X-Request-Id", method, path, r->status);
	if (r->status >= 400) {
		ck_assert_msg(it_header(&r->raw, "Content-Type", v, sizeof v) == 0 &&
		                  !strncmp(v, "application/problem+json", 24),
		              "%s %s: %ld answered as %s: %.300s", method, path, r->status, v, r->raw.body);
		ck_assert_msg(json_is_object(r->json), "%s %s: problem is not JSON: %.300s", method, path,
		              r->raw.body);
		const char *code = it_js(r->json, "code");
		char type[128];
		snprintf(type, sizeof type, "urn:celltrail:problem:%s", code);
		ck_assert_msg(json_integer_value(json_object_get(r->json, "status")) == r->status,
		              "%s %s: status member differs from %ld: %.300s", method, path, r->status,
		              r->raw.body);
		ck_assert_msg(!strcmp(it_js(r->json, "type"), type),
		              "%s %s: type '%s' for code '%s'", method, path, it_js(r->json, "type"), code);
		ck_assert_msg(*it_js(r->json, "request_id") && *it_js(r->json, "title"),
		              "%s %s: problem without request_id or title: %.300s", method, path, r->raw.body);
	} else if (r->status != 204) {
		ck_assert_msg(it_header(&r->raw, "Content-Type", v, sizeof v) == 0 &&
		                  !strncmp(v, "application/json", 16),
		              "%s %s: %ld answered as %s", method, path, r->status, v);
		ck_assert_msg(json_is_object(r->json), "%s %s: body is not a JSON object: %.300s", method, path,
		              r->raw.body);
	}
}

static void post(struct res *r, const struct dp *d, const char *key, const char *body)
{
	dp_call(r, d, "POST", "/v1/events", key, body, strlen(body), NULL);
}

static void get(struct res *r, const struct dp *d, const char *key, const char *path)
{
	dp_call(r, d, "GET", path, key, NULL, 0, NULL);
}

/* Idempotent-Replayed: true, the value in any case. */
static int replayed_any_case(const struct res *r)
{
	char v[32];
	return it_header(&r->raw, "Idempotent-Replayed", v, sizeof v) == 0 && !strcasecmp(v, "true");
}

/* A minimal valid event as JSON text (fmt ring). */
static const char *ev(const char *id, const char *action, const char *actor)
{
	if (id)
		return it_fmt("{\"id\":\"%s\",\"action\":\"%s\",\"actor\":{\"id\":\"%s\",\"type\":\"user\"}}", id,
		           action, actor);
	return it_fmt("{\"action\":\"%s\",\"actor\":{\"id\":\"%s\",\"type\":\"user\"}}", action, actor);
}

/* A stored event as returned must have exactly the eight members, its
 * times normalized, and carry what was sent (defaults for what was not). */
#define CHECK_STORED(got, sent) check_stored((got), (sent), __LINE__)
static void check_stored(const json_t *got, const json_t *sent, int line)
{
	static const char *const members[] = { "id", "occurred_at", "received_at", "action",
		                                   "actor", "targets", "context", "metadata" };
	char *text = dump(got);
	ck_assert_msg(json_is_object(got) && json_object_size(got) == 8,
	              "line %d: a stored event has %zu members, want 8: %s", line, json_object_size(got), text);
	for (size_t i = 0; i < 8; i++)
		ck_assert_msg(json_object_get(got, members[i]), "line %d: no '%s' in %s", line, members[i], text);
	ck_assert_msg(is_api_time(it_js(got, "occurred_at")) && is_api_time(it_js(got, "received_at")),
	              "line %d: times not normalized: %s", line, text);
	const char *sid = it_js(sent, "id");
	if (*sid)
		ck_assert_msg(!strcmp(it_js(got, "id"), sid), "line %d: id '%s', want '%s'", line, it_js(got, "id"), sid);
	else {
		const char *id = it_js(got, "id");
		ck_assert_msg(strlen(id) == 35 && !strncmp(id, "ev_", 3) && strspn(id + 3, "0123456789abcdef") == 32,
		              "line %d: generated id '%s'", line, id);
	}
	ck_assert_msg(!strcmp(it_js(got, "action"), it_js(sent, "action")), "line %d: action in %s", line, text);
	ck_assert_msg(json_equal(json_object_get(got, "actor"), json_object_get(sent, "actor")),
	              "line %d: actor differs: %s", line, text);
	static const char *const defaults[][2] = { { "targets", "[]" }, { "context", "{}" }, { "metadata", "{}" } };
	for (int i = 0; i < 3; i++) {
		json_t *want = json_object_get(sent, defaults[i][0]);
		json_t *def = json_loads(defaults[i][1], 0, NULL);
		ck_assert_msg(json_equal(json_object_get(got, defaults[i][0]), want ? want : def),
		              "line %d: %s differs from what was sent: %s", line, defaults[i][0], text);
		json_decref(def);
	}
	free(text);
}

/* ------------------------------------------------------------------ */
/* The regional database                                               */

static long long stored(const struct dp *d, const struct tenant *t)
{
	return sqll(d->db, it_fmt("SELECT count(*) FROM events WHERE tenant_id = '%s'", t->id));
}

static long long counted(const struct dp *d, const struct tenant *t)
{
	return sqll(d->db, it_fmt("SELECT coalesce(sum(events), 0) FROM usage_counters WHERE tenant_id = '%s'", t->id));
}

/* ------------------------------------------------------------------ */
/* 1. Two tenants in one region                                        */

/* Tenants of one region each see only their own events; a client id used
 * by both is two events, each tenant getting its own back. */
START_TEST(tenant_isolation)
{
	struct tenant a, b;
	struct dp us;
	char ka[200], kb[200];
	struct res r;
	new_tenant(&a, "iso-a", "us", "pro");
	new_tenant(&b, "iso-b", "us", "pro");
	new_key(&a, "rw", ka, NULL);
	new_key(&b, "rw", kb, NULL);
	dp_prepare(&us, "us", "iso");
	dp_start(&us);

	const char *sa = "{\"id\":\"shared-1\",\"action\":\"doc.read\",\"actor\":{\"id\":\"alice\",\"type\":\"user\"},"
	                 "\"targets\":[{\"id\":\"d1\",\"type\":\"doc\"}],\"metadata\":{\"who\":\"a\"}}";
	const char *sb = "{\"id\":\"shared-1\",\"action\":\"doc.delete\",\"actor\":{\"id\":\"bob\",\"type\":\"user\"},"
	                 "\"targets\":[{\"id\":\"d2\",\"type\":\"doc\"}],\"metadata\":{\"who\":\"b\"}}";
	json_t *ja = json_loads(sa, 0, NULL), *jb = json_loads(sb, 0, NULL);
	post(&r, &us, ka, sa);
	EXPECT(&r, 201);
	ck_assert(!replayed_any_case(&r));
	CHECK_STORED(r.json, ja);
	json_t *stored_a = json_incref(r.json);
	res_free(&r);
	post(&r, &us, kb, sb);
	EXPECT(&r, 201);
	ck_assert_msg(!replayed_any_case(&r), "tenant b's first event was answered as a replay of tenant a's");
	CHECK_STORED(r.json, jb);
	json_t *stored_b = json_incref(r.json);
	res_free(&r);

	/* Each a few of its own, with ids the other does not have. */
	for (int i = 0; i < 3; i++) {
		post(&r, &us, ka, ev(it_fmt("a-only-%d", i), "a.thing", "alice"));
		EXPECT(&r, 201);
		res_free(&r);
	}
	post(&r, &us, kb, ev("b-only-0", "b.thing", "bob"));
	EXPECT(&r, 201);
	res_free(&r);

	/* By id: each gets its own shared-1; the other's private ids are 404. */
	get(&r, &us, ka, "/v1/events/shared-1");
	EXPECT(&r, 200);
	ck_assert_msg(json_equal(r.json, stored_a), "a's shared-1: %s", r.raw.body);
	res_free(&r);
	get(&r, &us, kb, "/v1/events/shared-1");
	EXPECT(&r, 200);
	ck_assert_msg(json_equal(r.json, stored_b), "b's shared-1: %s", r.raw.body);
	res_free(&r);
	get(&r, &us, ka, "/v1/events/b-only-0");
	EXPECT_PROBLEM_SOME(&r, 404, "not_found", NULL);
	res_free(&r);
	get(&r, &us, kb, "/v1/events/a-only-0");
	EXPECT_PROBLEM_SOME(&r, 404, "not_found", NULL);
	res_free(&r);

	/* Listings: exactly one's own, whatever the filter. */
	static const struct {
		const char *path;
		int na, nb;
	} lists[] = {
		{ "/v1/events", 4, 2 },
		{ "/v1/events?actor=bob", 0, 2 },
		{ "/v1/events?actor=alice", 4, 0 },
		{ "/v1/events?action=doc.delete", 0, 1 },
		{ "/v1/events?target=d1", 1, 0 },
		{ "/v1/events?target=d2", 0, 1 },
	};
	for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
		for (int who = 0; who < 2; who++) {
			get(&r, &us, who ? kb : ka, lists[i].path);
			EXPECT(&r, 200);
			json_t *evs = json_object_get(r.json, "items"), *e;
			size_t k;
			int want = who ? lists[i].nb : lists[i].na;
			ck_assert_msg((int)json_array_size(evs) == want, "%s as %c: %zu events, want %d: %.500s",
			              lists[i].path, who ? 'b' : 'a', json_array_size(evs), want, r.raw.body);
			json_array_foreach(evs, k, e) {
				const char *actor = it_js(json_object_get(e, "actor"), "id");
				ck_assert_msg(!strcmp(actor, who ? "bob" : "alice"), "%s as %c lists %s's event %s",
				              lists[i].path, who ? 'b' : 'a', actor, it_js(e, "id"));
			}
			ck_assert_msg(!json_object_get(r.json, "next_cursor") && json_is_false(json_object_get(r.json, "has_more")),
			              "next_cursor or has_more: %s", r.raw.body);
			res_free(&r);
		}
	}

	/* Two rows with id shared-1, one per tenant. */
	ck_assert_int_eq(sqll(us.db, "SELECT count(*) FROM events WHERE id = 'shared-1'"), 2);
	ck_assert_int_eq(sqll(us.db, it_fmt("SELECT count(DISTINCT tenant_id) FROM events WHERE id = 'shared-1' "
	                                 "AND tenant_id IN ('%s', '%s')", a.id, b.id)), 2);
	ck_assert_int_eq(stored(&us, &a), 4);
	ck_assert_int_eq(stored(&us, &b), 2);
	ck_assert_int_eq(counted(&us, &a), 4);
	ck_assert_int_eq(counted(&us, &b), 2);

	/* A replay of b's event by a is a conflict in a's space, not b's. */
	post(&r, &us, ka, sb);
	EXPECT_PROBLEM(&r, 409, "conflict", "id");
	res_free(&r);
	ck_assert_int_eq(stored(&us, &a), 4);
	json_decref(ja);
	json_decref(jb);
	json_decref(stored_a);
	json_decref(stored_b);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 2. Misdirected keys                                                 */

/* A key of another region is answered 421 with that region and its
 * endpoint, on every events route, a key whose region part names no region
 * 401, and the database is not touched. */
START_TEST(misdirected_key)
{
	struct tenant home, away;
	struct dp us;
	char khome[200], kaway[200];
	struct res r;
	/* A distinctive endpoint for eu, so that the answer cannot be a guess. */
	CP_OK(&r, "PATCH", "/v1/regions/eu", "{\"endpoint\":\"https://eu-it.celltrail.test\"}", 200);
	res_free(&r);
	new_tenant(&home, "home-us", "us", "pro");
	new_tenant(&away, "away-eu", "eu", "pro");
	new_key(&home, "rw", khome, NULL);
	new_key(&away, "rw", kaway, NULL);
	dp_prepare(&us, "us", "mis");
	dp_start(&us);

	post(&r, &us, khome, ev("h1", "x.y", "u1"));
	EXPECT(&r, 201);
	res_free(&r);
	/* Its usage reported first, so that nothing moves on its own below. */
	long t0 = it_now_ms();
	while (sqll(us.db, "SELECT (SELECT count(*) FROM usage_counters WHERE events > reported) +"
	                   " (SELECT count(*) FROM usage_outbox WHERE sent_at IS NULL)") > 0) {
		ck_assert_msg(it_now_ms() - t0 < SLOW_MS, "the usage of one event was not reported within %d ms", SLOW_MS);
		usleep(50000);
	}

	const char *const count_sql =
		"SELECT (SELECT count(*) FROM events) || '/' || (SELECT count(*) FROM usage_counters) || '/' ||"
		" (SELECT coalesce(sum(events), 0) FROM usage_counters) || '/' || (SELECT count(*) FROM usage_outbox)";
	char *before = it_sql(us.db, count_sql);

	/* A real eu key: region eu, endpoint from the directory. */
	const char *single = ev("mis-1", "x.y", "u1");
	const char *batch = it_fmt("{\"events\":[%s,%s]}", ev("mis-2", "x.y", "u1"), ev("mis-3", "x.y", "u1"));
	struct {
		const char *method, *path, *body;
	} calls[] = {
		{ "POST", "/v1/events", single },
		{ "POST", "/v1/events", batch },
		{ "GET", "/v1/events", NULL },
		{ "GET", "/v1/events/h1", NULL },
		{ "GET", "/v1/events?actor=u1&limit=5", NULL },
		{ "GET", "/v1/tenant", NULL },
	};
	const char *code421 = problem_info(PROB_MISDIRECTED)->code;
	for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
		dp_call(&r, &us, calls[i].method, calls[i].path, kaway, calls[i].body,
		        calls[i].body ? strlen(calls[i].body) : 0, NULL);
		ck_assert_msg(r.status == 421, "%s %s with an eu key: %ld: %s", calls[i].method, calls[i].path,
		              r.status, r.raw.body);
		EXPECT_PROBLEM_SOME(&r, 421, code421, NULL);
		ck_assert_msg(!strcmp(it_js(r.json, "region"), "eu"), "region: %s", r.raw.body);
		ck_assert_msg(!strcmp(it_js(r.json, "endpoint"), "https://eu-it.celltrail.test"), "endpoint: %s",
		              r.raw.body);
		res_free(&r);
	}
	/* A key naming a region the directory does not know is a mistyped
	 * key, not a redirect: 401 like any unknown key, on every route, also
	 * for the eu key's own id and secret under the made-up prefix. */
	char typo[200];
	snprintf(typo, sizeof typo, "ue%s", strchr(kaway, '_'));
	const char *ghosts[] = { "zz_aaaaaaaaaaaaaaaaaaaaaaaa_"
		                     "0000000000000000000000000000000000000000000000000000000000000000",
		                     typo };
	for (size_t g = 0; g < 2; g++)
		for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
			dp_call(&r, &us, calls[i].method, calls[i].path, ghosts[g], calls[i].body,
			        calls[i].body ? strlen(calls[i].body) : 0, NULL);
			EXPECT_PROBLEM_SOME(&r, 401, "unauthorized", NULL);
			char www[64];
			ck_assert_msg(it_header(&r.raw, "WWW-Authenticate", www, sizeof www) == 0, "%s %s: no WWW-Authenticate",
			              calls[i].method, calls[i].path);
			res_free(&r);
		}
	/* The eu key's id and secret under a "us" prefix are just unknown here. */
	const char *forged = it_fmt("us%s", strchr(kaway, '_'));
	post(&r, &us, forged, single);
	EXPECT_PROBLEM_SOME(&r, 401, "unauthorized", NULL);
	res_free(&r);

	usleep(500 * 1000); /* a few report intervals: anything counted would be cut by now */
	char *after = it_sql(us.db, count_sql);
	ck_assert_msg(!strcmp(before, after), "the us database changed: %s -> %s", before, after);
	ck_assert_int_eq(sqll(us.db, it_fmt("SELECT count(*) FROM events WHERE tenant_id = '%s'", away.id)), 0);
	ck_assert_int_eq(sqll(us.db, "SELECT count(*) FROM events WHERE id LIKE 'mis-%'"), 0);
	free(before);
	free(after);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 3. Idempotency, validation, scopes                                  */

/* Retries with the same content are replays (stored and counted once);
 * other content under a used id is a conflict. */
START_TEST(idempotent_retries)
{
	struct tenant t;
	struct dp us;
	char key[200];
	struct res r;
	char at_in[64], at_norm[32];
	new_tenant(&t, "idem", "us", "pro");
	new_key(&t, "rw", key, NULL);
	dp_prepare(&us, "us", "idem");
	dp_start(&us);

	/* occurred_at an hour ago, sent with an offset and milliseconds. */
	time_t when = time(NULL) - 3600;
	struct tm tm;
	gmtime_r(&when, &tm);
	tm.tm_hour += 2; /* the same instant at +02:00 */
	time_t shifted = timegm(&tm);
	struct tm lt;
	gmtime_r(&shifted, &lt);
	strftime(at_in, sizeof at_in, "%Y-%m-%dT%H:%M:%S.123+02:00", &lt);
	api_time(when, 123000, at_norm);

	const char *first = it_fmt("{\"id\":\"ord-1\",\"occurred_at\":\"%s\",\"action\":\"order.create\","
	                        "\"actor\":{\"id\":\"u1\",\"type\":\"user\",\"name\":\"Ann\"},"
	                        "\"targets\":[{\"id\":\"o1\",\"type\":\"order\",\"total\":12.5}],"
	                        "\"context\":{\"ip\":\"2001:db8::1\",\"user_agent\":\"it\",\"k\":[1,2]},"
	                        "\"metadata\":{\"a\":{\"b\":[true,null]}}}", at_in);
	json_t *jfirst = json_loads(first, 0, NULL);
	post(&r, &us, key, first);
	EXPECT(&r, 201);
	ck_assert(!replayed_any_case(&r));
	CHECK_STORED(r.json, jfirst);
	ck_assert_msg(!strcmp(it_js(r.json, "occurred_at"), at_norm), "occurred_at '%s', want '%s'",
	              it_js(r.json, "occurred_at"), at_norm);
	json_t *orig = json_incref(r.json);
	res_free(&r);

	/* The same again, twice, and with members in another order: replays. */
	const char *reordered = it_fmt("{\"metadata\":{\"a\":{\"b\":[true,null]}},\"action\":\"order.create\","
	                            "\"context\":{\"k\":[1,2],\"user_agent\":\"it\",\"ip\":\"2001:db8::1\"},"
	                            "\"targets\":[{\"type\":\"order\",\"id\":\"o1\",\"total\":12.5}],"
	                            "\"actor\":{\"name\":\"Ann\",\"type\":\"user\",\"id\":\"u1\"},"
	                            "\"occurred_at\":\"%s\",\"id\":\"ord-1\"}", at_in);
	const char *retries[] = { first, first, reordered };
	for (int i = 0; i < 3; i++) {
		post(&r, &us, key, retries[i]);
		EXPECT(&r, 200);
		ck_assert_msg(replayed_any_case(&r), "retry %d: no Idempotent-Replayed: true (%s)", i, r.raw.headers);
		char *a = dump(r.json), *b = dump(orig);
		ck_assert_msg(json_equal(r.json, orig), "retry %d answered\n%s\nnot the stored\n%s", i, a, b);
		free(a);
		free(b);
		res_free(&r);
	}
	/* The same instant written in UTC is the same content. */
	post(&r, &us, key, it_fmt("{\"id\":\"ord-1\",\"occurred_at\":\"%s\",\"action\":\"order.create\","
	                       "\"actor\":{\"id\":\"u1\",\"type\":\"user\",\"name\":\"Ann\"},"
	                       "\"targets\":[{\"id\":\"o1\",\"type\":\"order\",\"total\":12.5}],"
	                       "\"context\":{\"ip\":\"2001:db8::1\",\"user_agent\":\"it\",\"k\":[1,2]},"
	                       "\"metadata\":{\"a\":{\"b\":[true,null]}}}", at_norm));
	EXPECT(&r, 200);
	ck_assert(replayed_any_case(&r));
	ck_assert(json_equal(r.json, orig));
	res_free(&r);

	/* Other content under the same id: 409, field id, nothing changes. */
	const char *others[] = {
		it_fmt("{\"id\":\"ord-1\",\"occurred_at\":\"%s\",\"action\":\"order.delete\","
		    "\"actor\":{\"id\":\"u1\",\"type\":\"user\",\"name\":\"Ann\"},"
		    "\"targets\":[{\"id\":\"o1\",\"type\":\"order\",\"total\":12.5}],"
		    "\"context\":{\"ip\":\"2001:db8::1\",\"user_agent\":\"it\",\"k\":[1,2]},"
		    "\"metadata\":{\"a\":{\"b\":[true,null]}}}", at_in),
		it_fmt("{\"id\":\"ord-1\",\"occurred_at\":\"%s\",\"action\":\"order.create\","
		    "\"actor\":{\"id\":\"u1\",\"type\":\"user\",\"name\":\"Ann\"},"
		    "\"targets\":[{\"id\":\"o1\",\"type\":\"order\",\"total\":12.5}],"
		    "\"context\":{\"ip\":\"2001:db8::1\",\"user_agent\":\"it\",\"k\":[1,2]},"
		    "\"metadata\":{\"a\":{\"b\":[true,false]}}}", at_in),
		ev("ord-1", "order.create", "u1"),
	};
	for (int i = 0; i < 3; i++) {
		post(&r, &us, key, others[i]);
		EXPECT_PROBLEM(&r, 409, "conflict", "id");
		res_free(&r);
	}
	ck_assert_int_eq(sqll(us.db, it_fmt("SELECT count(*) FROM events WHERE tenant_id = '%s' AND id = 'ord-1'", t.id)), 1);
	ck_assert_int_eq(stored(&us, &t), 1);
	ck_assert_int_eq(counted(&us, &t), 1);
	get(&r, &us, key, "/v1/events/ord-1");
	EXPECT(&r, 200);
	ck_assert(json_equal(r.json, orig));
	res_free(&r);

	/* Without occurred_at: a retry matches only without it too. */
	post(&r, &us, key, ev("noat", "a.b", "u1"));
	EXPECT(&r, 201);
	char noat_at[40];
	snprintf(noat_at, sizeof noat_at, "%s", it_js(r.json, "occurred_at"));
	json_t *noat = json_incref(r.json);
	res_free(&r);
	usleep(20000);
	post(&r, &us, key, ev("noat", "a.b", "u1"));
	EXPECT(&r, 200);
	ck_assert(replayed_any_case(&r));
	ck_assert_msg(json_equal(r.json, noat), "replay of noat: %s", r.raw.body);
	res_free(&r);
	post(&r, &us, key, it_fmt("{\"id\":\"noat\",\"occurred_at\":\"%s\",\"action\":\"a.b\","
	                       "\"actor\":{\"id\":\"u1\",\"type\":\"user\"}}", noat_at));
	EXPECT_PROBLEM(&r, 409, "conflict", "id");
	res_free(&r);

	/* Batches: all replayed -> 200; some new -> 201 with the stored ones
	 * as stored; one conflict -> 409 naming it, nothing stored. */
	const char *b1 = it_fmt("{\"events\":[%s,%s]}", ev("bt-1", "b.x", "u2"), ev("bt-2", "b.x", "u2"));
	post(&r, &us, key, b1);
	EXPECT(&r, 201);
	json_t *b1_stored = json_incref(r.json);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "events")), 2);
	ck_assert_str_eq(it_js(json_array_get(json_object_get(r.json, "events"), 0), "id"), "bt-1");
	ck_assert_str_eq(it_js(json_array_get(json_object_get(r.json, "events"), 1), "id"), "bt-2");
	res_free(&r);
	post(&r, &us, key, b1);
	EXPECT(&r, 200);
	ck_assert(replayed_any_case(&r));
	ck_assert_msg(json_equal(r.json, b1_stored), "batch replay: %s", r.raw.body);
	res_free(&r);
	post(&r, &us, key, it_fmt("{\"events\":[%s,%s]}", ev("bt-3", "b.x", "u2"), ev("bt-2", "b.x", "u2")));
	EXPECT(&r, 201);
	ck_assert(!replayed_any_case(&r));
	ck_assert_str_eq(it_js(json_array_get(json_object_get(r.json, "events"), 0), "id"), "bt-3");
	ck_assert_msg(json_equal(json_array_get(json_object_get(r.json, "events"), 1),
	                         json_array_get(json_object_get(b1_stored, "events"), 1)),
	              "bt-2 in a mixed batch is not the stored one: %s", r.raw.body);
	res_free(&r);
	post(&r, &us, key, it_fmt("{\"events\":[%s,%s,%s]}", ev("bt-4", "b.x", "u2"), ev("bt-5", "b.x", "u2"),
	                       ev("bt-1", "b.other", "u2")));
	EXPECT_PROBLEM(&r, 409, "conflict", "events[2].id");
	res_free(&r);
	get(&r, &us, key, "/v1/events/bt-4");
	EXPECT_PROBLEM_SOME(&r, 404, "not_found", NULL);
	res_free(&r);

	/* Stored: ord-1, noat, bt-1, bt-2, bt-3; counted once each. */
	ck_assert_int_eq(stored(&us, &t), 5);
	ck_assert_int_eq(counted(&us, &t), 5);
	json_decref(b1_stored);
	json_decref(noat);
	json_decref(orig);
	json_decref(jfirst);
}
END_TEST

/* Every invalid request is refused whole, naming the field; nothing is stored. */
START_TEST(validation)
{
	struct tenant t;
	struct dp us;
	char key[200], kro[200], kwo[200];
	struct res r;
	new_tenant(&t, "valid", "us", "pro");
	new_key(&t, "rw", key, NULL);
	new_key(&t, "r", kro, NULL);
	new_key(&t, "w", kwo, NULL);
	dp_prepare(&us, "us", "val");
	dp_start(&us);

	/* A batch of 3 whose second event has no actor.id. */
	post(&r, &us, key, it_fmt("{\"events\":[%s,{\"id\":\"v2\",\"action\":\"a\",\"actor\":{\"type\":\"user\"}},%s]}",
	                       ev("v1", "a", "u"), ev("v3", "a", "u")));
	EXPECT_PROBLEM(&r, 400, "validation_failed", "events[1].actor.id");
	res_free(&r);
	get(&r, &us, key, "/v1/events/v1");
	EXPECT_PROBLEM_SOME(&r, 404, "not_found", NULL);
	res_free(&r);

	/* 128 code points (256 bytes) is fine; 129 is not. */
	char a128[600] = "", a129[600] = "";
	for (int i = 0; i < 128; i++)
		strcat(a128, "\xc3\xa9");
	strcpy(a129, a128);
	strcat(a129, "\xc3\xa9");
	post(&r, &us, key, ev("act-128", a128, "u"));
	EXPECT(&r, 201);
	res_free(&r);
	ck_assert_int_eq(stored(&us, &t), 1);

	/* metadata: 8192 bytes compact is fine, 8193 is not. {"x":"..."} is 8 + n. */
	char *big = malloc(9000), *bigger = malloc(9000);
	memset(big, 'm', 8184);
	big[8184] = '\0';
	memset(bigger, 'm', 8185);
	bigger[8185] = '\0';
	post(&r, &us, key, it_fmt("{\"id\":\"meta-8192\",\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"t\"},"
	                       "\"metadata\":{\"x\":\"%s\"}}", big));
	EXPECT(&r, 201);
	res_free(&r);
	ck_assert_int_eq(stored(&us, &t), 2);

	/* The other bounds, each at its limit, in one batch: all accepted, and
	 * occurred_at with 6 digits at -05:30 comes back in UTC. */
	{
		char t64[64 * 32], wall[40], want_at[32];
		size_t k = 0;
		for (int i = 0; i < 64; i++)
			k += (size_t)snprintf(t64 + k, sizeof t64 - k, "%s{\"id\":\"t%d\",\"type\":\"d\"}", i ? "," : "", i);
		time_t when = time(NULL) - 7200, shifted = when - 5 * 3600 - 1800;
		struct tm tm;
		gmtime_r(&shifted, &tm);
		strftime(wall, sizeof wall, "%Y-%m-%dT%H:%M:%S.654321-05:30", &tm);
		api_time(when, 654321, want_at);
		const char *body = keep(it_fmt(
			"{\"events\":["
			"{\"id\":\"%s\",\"occurred_at\":\"%s\",\"action\":\"a\",\"actor\":{\"id\":\"%s\",\"type\":\"%s\"}},"
			"{\"id\":\"t64\",\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"t\"},\"targets\":[%s]},"
			"{\"id\":\"ua1024\",\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"t\"},"
			"\"context\":{\"user_agent\":\"%s\",\"ip\":\"192.0.2.1\"}},"
			"{\"id\":\"ip6\",\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"t\"},"
			"\"context\":{\"ip\":\"::ffff:192.0.2.1\"}},"
			"{\"id\":\"abig4096\",\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"t\",\"x\":\"%s\"}}"
			"]}",
			rep('i', 128), wall, rep('x', 256), rep('y', 64), t64, rep('x', 1024),
			rep('x', 4096 - 34)));
		/* {"id":"u","type":"t","x":"..."} is 26 + 2 + n bytes: 34 + (4096 - 34) = 4096. */
		post(&r, &us, key, body);
		EXPECT(&r, 201);
		json_t *sent = json_loads(body, 0, NULL), *e;
		size_t i;
		ck_assert_int_eq(json_array_size(json_object_get(r.json, "events")), 5);
		json_array_foreach(json_object_get(r.json, "events"), i, e)
			CHECK_STORED(e, json_array_get(json_object_get(sent, "events"), i));
		ck_assert_msg(!strcmp(it_js(json_array_get(json_object_get(r.json, "events"), 0), "occurred_at"), want_at),
		              "occurred_at '%s', want '%s'",
		              it_js(json_array_get(json_object_get(r.json, "events"), 0), "occurred_at"), want_at);
		json_decref(sent);
		res_free(&r);
		ck_assert_int_eq(stored(&us, &t), 7);
	}

	char future[32], stale[32];
	api_time(time(NULL) + 600, 0, future);
	api_time(time(NULL) - 400L * 86400, 0, stale); /* pro keeps 365 days */
	char *huge = malloc(1100 * 1024);
	memset(huge, ' ', 1100 * 1024);
	memcpy(huge, "{\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"t\"}}", 44);
	huge[1100 * 1024 - 1] = '\0';
	char recent[32], targets65[65 * 32];
	api_time(time(NULL) - 60, 0, recent);
	size_t tn = 0;
	for (int i = 0; i < 65; i++)
		tn += (size_t)snprintf(targets65 + tn, sizeof targets65 - tn, "%s{\"id\":\"t%d\",\"type\":\"d\"}",
		                       i ? "," : "", i);
	char *many = malloc(1001 * 80 + 64);
	size_t n = (size_t)sprintf(many, "{\"events\":[");
	for (int i = 0; i < 1001; i++)
		n += (size_t)sprintf(many + n, "%s{\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"t\"}}", i ? "," : "");
	strcpy(many + n, "]}");

	struct {
		const char *body, *ctype;
		long status;
		const char *code, *field;
	} cases[] = {
		{ keep(ev("act-129", a129, "u")), NULL, 400, "validation_failed", "action" },
		{ keep(it_fmt("{\"id\":\"meta-8193\",\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"t\"},"
		           "\"metadata\":{\"x\":\"%s\"}}", bigger)), NULL, 400, "validation_failed", "metadata" },
		{ keep(it_fmt("{\"id\":\"fut\",\"occurred_at\":\"%s\",\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"t\"}}",
		           future)), NULL, 400, "validation_failed", "occurred_at" },
		{ keep(it_fmt("{\"id\":\"old\",\"occurred_at\":\"%s\",\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"t\"}}",
		           stale)), NULL, 400, "validation_failed", "occurred_at" },
		{ "{\"id\":\"tz\",\"occurred_at\":\"2025-01-01T00:00:00\",\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"t\"}}",
		  NULL, 400, "validation_failed", "occurred_at" },
		{ keep(it_fmt("{\"id\":\"frac10\",\"occurred_at\":\"%.19s.1234567890Z\",\"action\":\"a\","
		           "\"actor\":{\"id\":\"u\",\"type\":\"t\"}}", recent)), NULL, 400, "validation_failed", "occurred_at" },
		{ "{\"id\":\"unk\",\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"t\"},\"colour\":\"red\"}", NULL, 400,
		  "validation_failed", "colour" },
		{ "{\"id\":\"ip\",\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"t\"},\"context\":{\"ip\":\"999.1.1.1\"}}",
		  NULL, 400, "validation_failed", "context.ip" },
		{ "{\"id\":\"ip2\",\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"t\"},\"context\":{\"ip\":\"example.com\"}}",
		  NULL, 400, "validation_failed", "context.ip" },
		{ keep(it_fmt("{\"events\":[%s,%s,%s]}", ev("dup", "a", "u"), ev("other", "a", "u"), ev("dup", "a", "u"))),
		  NULL, 400, "validation_failed", "events[2].id" },
		{ many, NULL, 400, "validation_failed", "events" },
		{ "{\"events\":[]}", NULL, 400, "validation_failed", "events" },
		{ "{\"events\":{}}", NULL, 400, "validation_failed", "events" },
		{ "{\"id\":\"bad id!\",\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"t\"}}", NULL, 400,
		  "validation_failed", "id" },
		{ keep(it_fmt("{\"id\":\"%s\",\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"t\"}}", rep('i', 129))), NULL,
		  400, "validation_failed", "id" },
		{ "{\"id\":\"noact\",\"actor\":{\"id\":\"u\",\"type\":\"t\"}}", NULL, 400, "validation_failed", "action" },
		{ "{\"id\":\"empty\",\"action\":\"\",\"actor\":{\"id\":\"u\",\"type\":\"t\"}}", NULL, 400, "validation_failed",
		  "action" },
		{ "{\"id\":\"noactor\",\"action\":\"a\"}", NULL, 400, "validation_failed", "actor" },
		{ "{\"id\":\"stractor\",\"action\":\"a\",\"actor\":\"u\"}", NULL, 400, "validation_failed", "actor" },
		{ "{\"id\":\"notype\",\"action\":\"a\",\"actor\":{\"id\":\"u\"}}", NULL, 400, "validation_failed", "actor.type" },
		{ keep(it_fmt("{\"id\":\"aid\",\"action\":\"a\",\"actor\":{\"id\":\"%s\",\"type\":\"t\"}}", rep('x', 257))),
		  NULL, 400, "validation_failed", "actor.id" },
		{ keep(it_fmt("{\"id\":\"atype\",\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"%s\"}}", rep('x', 65))),
		  NULL, 400, "validation_failed", "actor.type" },
		{ keep(it_fmt("{\"id\":\"abig\",\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"t\",\"x\":\"%s\"}}",
		           rep('x', 4100))), NULL, 400, "validation_failed", "actor" },
		{ "{\"id\":\"ctl\",\"action\":\"a\\u0001b\",\"actor\":{\"id\":\"u\",\"type\":\"t\"}}", NULL, 400,
		  "validation_failed", "action" },
		{ "{\"id\":\"tgt\",\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"t\"},\"targets\":[{\"id\":\"x\"}]}",
		  NULL, 400, "validation_failed", "targets[0].type" },
		{ "{\"id\":\"tgto\",\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"t\"},\"targets\":{\"id\":\"x\"}}",
		  NULL, 400, "validation_failed", "targets" },
		{ keep(it_fmt("{\"id\":\"tgt65\",\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"t\"},\"targets\":[%s]}",
		           targets65)), NULL, 400, "validation_failed", "targets" },
		{ keep(it_fmt("{\"id\":\"tbig\",\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"t\"},"
		           "\"targets\":[{\"id\":\"x\",\"type\":\"d\"},{\"id\":\"y\",\"type\":\"d\",\"x\":\"%s\"}]}",
		           rep('x', 4100))), NULL, 400, "validation_failed", "targets[1]" },
		{ keep(it_fmt("{\"id\":\"ua\",\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"t\"},"
		           "\"context\":{\"user_agent\":\"%s\"}}", rep('x', 1025))), NULL, 400, "validation_failed",
		  "context.user_agent" },
		{ keep(it_fmt("{\"id\":\"cbig\",\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"t\"},"
		           "\"context\":{\"x\":\"%s\"}}", rep('x', 4100))), NULL, 400, "validation_failed", "context" },
		{ "{\"id\":\"cstr\",\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"t\"},\"context\":\"x\"}", NULL, 400,
		  "validation_failed", "context" },
		{ "{\"id\":\"marr\",\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"t\"},\"metadata\":[1]}", NULL, 400,
		  "validation_failed", "metadata" },
		{ keep(it_fmt("{\"events\":[%s,{\"id\":\"b2\",\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"t\"},"
		           "\"context\":{\"ip\":\"1.2.3\"}}]}", ev("b1", "a", "u"))),
		  NULL, 400, "validation_failed", "events[1].context.ip" },
		{ keep(it_fmt("{\"events\":[%s],\"extra\":1}", ev("b3", "a", "u"))), NULL, 400, "validation_failed", "extra" },
		{ "{\"action\":\"a\",\"actor\":", NULL, 400, "invalid_json", NULL },
		{ "{\"action\":\"a\",\"action\":\"b\",\"actor\":{\"id\":\"u\",\"type\":\"t\"}}", NULL, 400, "invalid_json", NULL },
		{ "{\"id\":\"utf\",\"action\":\"a\xff\",\"actor\":{\"id\":\"u\",\"type\":\"t\"}}", NULL, 400, "invalid_json", NULL },
		{ "[1,2]", NULL, 400, NULL, NULL },
		{ keep(ev("ct", "a", "u")), "text/plain", 415, "unsupported_media_type", NULL },
		{ huge, NULL, 413, "body_too_large", NULL },
	};
	/* Every case is tried; the disagreements are reported together. */
	char wrong[8192] = "";
	size_t nw = 0;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		dp_call(&r, &us, "POST", "/v1/events", key, cases[i].body, strlen(cases[i].body), cases[i].ctype);
		if (r.status != cases[i].status || (cases[i].code && strcmp(it_js(r.json, "code"), cases[i].code)) ||
		    (cases[i].field && strcmp(it_js(r.json, "field"), cases[i].field)))
			nw += (size_t)snprintf(wrong + nw, sizeof wrong - nw,
			                       "\n  case %zu (%.40s...): got %ld %s field '%s', want %ld %s field '%s': %.200s",
			                       i, cases[i].body, r.status, it_js(r.json, "code"), it_js(r.json, "field"),
			                       cases[i].status, cases[i].code ? cases[i].code : "(any)",
			                       cases[i].field ? cases[i].field : "(any)", r.raw.body);
		res_free(&r);
		if (nw >= sizeof wrong - 1)
			break;
	}
	ck_assert_msg(nw == 0, "invalid events answered otherwise than the contract says:%s", wrong);
	/* No body at all is not an event. */
	dp_call(&r, &us, "POST", "/v1/events", key, "", 0, NULL);
	ck_assert_msg(r.status == 400 || r.status == 415, "empty body: %ld: %s", r.status, r.raw.body);
	res_free(&r);
	ck_assert_int_eq(stored(&us, &t), 7);
	ck_assert_int_eq(counted(&us, &t), 7);

	/* Scopes: read-only cannot write, write-only cannot read. */
	post(&r, &us, kro, ev("ro", "a", "u"));
	EXPECT_PROBLEM_SOME(&r, 403, "insufficient_scope", NULL);
	res_free(&r);
	post(&r, &us, kwo, ev("wo", "a", "u"));
	EXPECT(&r, 201);
	res_free(&r);
	get(&r, &us, kwo, "/v1/events");
	EXPECT_PROBLEM_SOME(&r, 403, "insufficient_scope", NULL);
	res_free(&r);
	get(&r, &us, kwo, "/v1/events/wo");
	EXPECT_PROBLEM_SOME(&r, 403, "insufficient_scope", NULL);
	res_free(&r);
	get(&r, &us, kro, "/v1/events/wo");
	EXPECT(&r, 200);
	res_free(&r);
	get(&r, &us, kro, "/v1/events");
	EXPECT(&r, 200);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "items")), 8);
	res_free(&r);
	/* No key, or a malformed one: 401 with WWW-Authenticate. */
	post(&r, &us, NULL, ev("nokey", "a", "u"));
	EXPECT_PROBLEM_SOME(&r, 401, "unauthorized", NULL);
	char www[64];
	ck_assert_int_eq(it_header(&r.raw, "WWW-Authenticate", www, sizeof www), 0);
	res_free(&r);
	get(&r, &us, "nonsense", "/v1/events");
	EXPECT_PROBLEM_SOME(&r, 401, "unauthorized", NULL);
	res_free(&r);
	/* Other methods: 405 with Allow. */
	dp_call(&r, &us, "DELETE", "/v1/events/wo", key, NULL, 0, NULL);
	EXPECT_PROBLEM_SOME(&r, 405, "method_not_allowed", NULL);
	char allow[64];
	ck_assert_int_eq(it_header(&r.raw, "Allow", allow, sizeof allow), 0);
	res_free(&r);
	ck_assert_int_eq(stored(&us, &t), 8);
	ck_assert_int_eq(counted(&us, &t), 8);
	keep_free();
	free(big);
	free(bigger);
	free(huge);
	free(many);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 4. Quota and rate limit                                             */

static void expect_quota_n(const struct res *r, long long quota, long long used, const char *period, int line)
{
	expect_problem(r, 429, "quota_exceeded", NULL, 0, line);
	json_t *q = json_object_get(r->json, "quota"), *u = json_object_get(r->json, "used");
	ck_assert_msg(json_is_integer(q) && json_integer_value(q) == quota, "line %d: quota, want %lld: %s", line,
	              quota, r->raw.body);
	ck_assert_msg(json_is_integer(u) && json_integer_value(u) == used, "line %d: used, want %lld: %s", line,
	              used, r->raw.body);
	ck_assert_msg(!strcmp(it_js(r->json, "period"), period), "line %d: period, want %s: %s", line, period,
	              r->raw.body);
	char ra[32];
	ck_assert_msg(it_header(&r->raw, "Retry-After", ra, sizeof ra) == 0, "line %d: no Retry-After", line);
	long want = secs_to_next_month();
	ck_assert_msg(labs(atol(ra) - want) <= 5, "line %d: Retry-After %s, want about %ld (next month)", line,
	              ra, want);
}

static void expect_quota(const struct res *r, long long used, const char *period, int line)
{
	expect_quota_n(r, 5, used, period, line);
}

/* A monthly quota of 5: exact, all or nothing, replays free. */
START_TEST(quota)
{
	struct tenant t;
	struct dp us;
	char key[200], period[8];
	struct res r;
	this_period(period);
	new_plan("tiny", 1000, 1000, 5, 30);
	new_tenant(&t, "quota", "us", "pro");
	new_key(&t, "rw", key, NULL);
	dp_prepare(&us, "us", "quota");
	dp_start(&us);
	/* Put on the plan after the fact, as an admin would. */
	CP_OK(&r, "PATCH", it_fmt("/v1/tenants/%s", t.id), "{\"plan\":\"tiny\"}", 200);
	res_free(&r);
	dp_sync(&us);
	get(&r, &us, key, "/v1/tenant");
	EXPECT(&r, 200);
	json_t *plan = json_object_get(r.json, "plan");
	ck_assert_msg(!strcmp(it_js(plan, "id"), "tiny") &&
	                  json_integer_value(json_object_get(plan, "monthly_event_quota")) == 5,
	              "plan: %s", r.raw.body);
	res_free(&r);

	post(&r, &us, key, it_fmt("{\"events\":[%s,%s,%s]}", ev("q1", "a", "u"), ev("q2", "a", "u"), ev("q3", "a", "u")));
	EXPECT(&r, 201);
	res_free(&r);
	/* 3 + 3 > 5: refused whole. */
	post(&r, &us, key, it_fmt("{\"events\":[%s,%s,%s]}", ev("q4", "a", "u"), ev("q5", "a", "u"), ev("q6", "a", "u")));
	expect_quota(&r, 3, period, __LINE__);
	res_free(&r);
	ck_assert_int_eq(stored(&us, &t), 3);
	get(&r, &us, key, "/v1/events/q4");
	EXPECT_PROBLEM_SOME(&r, 404, "not_found", NULL);
	res_free(&r);
	/* A batch of a replay and two new ones is two events: fits exactly. */
	post(&r, &us, key, it_fmt("{\"events\":[%s,%s,%s]}", ev("q3", "a", "u"), ev("q4", "a", "u"), ev("q5", "a", "u")));
	EXPECT(&r, 201);
	res_free(&r);
	ck_assert_int_eq(stored(&us, &t), 5);
	/* The 6th is refused; a replay is not. */
	post(&r, &us, key, ev("q6", "a", "u"));
	expect_quota(&r, 5, period, __LINE__);
	res_free(&r);
	post(&r, &us, key, ev(NULL, "a", "u"));
	expect_quota(&r, 5, period, __LINE__);
	res_free(&r);
	post(&r, &us, key, ev("q1", "a", "u"));
	EXPECT(&r, 200);
	ck_assert(replayed_any_case(&r));
	res_free(&r);
	ck_assert_int_eq(stored(&us, &t), 5);
	ck_assert_int_eq(counted(&us, &t), 5);
	ck_assert_int_eq(sqll(us.db, it_fmt("SELECT events FROM usage_counters WHERE tenant_id = '%s' AND period = "
	                                 "date_trunc('month', now() AT TIME ZONE 'UTC')::date", t.id)), 5);
	/* Reads still work at the quota. */
	get(&r, &us, key, "/v1/events");
	EXPECT(&r, 200);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "items")), 5);
	res_free(&r);
	get(&r, &us, key, "/v1/tenant");
	EXPECT(&r, 200);
	json_t *u = json_object_get(r.json, "usage");
	ck_assert_msg(json_integer_value(json_object_get(u, "events")) == 5 &&
	                  json_is_integer(json_object_get(u, "remaining")) &&
	                  json_integer_value(json_object_get(u, "remaining")) == 0 && !strcmp(it_js(u, "period"), period),
	              "usage: %s", r.raw.body);
	res_free(&r);
}
END_TEST

static long hdr_long(const struct res *r, const char *name)
{
	char v[64];
	ck_assert_msg(it_header(&r->raw, name, v, sizeof v) == 0, "no %s header on a %ld", name, r->status);
	char *end;
	long n = strtol(v, &end, 10);
	ck_assert_msg(end != v && *end == '\0', "%s: '%s' is not an integer", name, v);
	return n;
}

/* rate_limit 1, burst 3: three quick writes pass, the fourth is 429; reads
 * have a bucket of their own; RateLimit-Limit is the rate, not the burst. */
START_TEST(rate_limit)
{
	struct tenant t;
	struct dp us;
	char key[200];
	struct res r;
	new_plan("slow", 1, 3, 1000000, 30);
	new_tenant(&t, "ratel", "us", "slow");
	new_key(&t, "rw", key, NULL);
	dp_prepare(&us, "us", "rate");
	dp_start(&us);

	/* /v1/tenant is not rate limited. */
	for (int i = 0; i < 6; i++) {
		get(&r, &us, key, "/v1/tenant");
		EXPECT(&r, 200);
		res_free(&r);
	}
	long t0 = it_now_ms();
	post(&r, &us, key, ev("r1", "a", "u"));
	EXPECT(&r, 201);
	ck_assert_int_eq(hdr_long(&r, "RateLimit-Limit"), 1);
	ck_assert_int_eq(hdr_long(&r, "RateLimit-Remaining"), 2);
	long reset = hdr_long(&r, "RateLimit-Reset");
	ck_assert_msg(reset >= 1 && reset <= 3, "RateLimit-Reset %ld with one of 3 tokens used at 1/s", reset);
	res_free(&r);
	/* Reads take from their own bucket. */
	get(&r, &us, key, "/v1/events");
	EXPECT(&r, 200);
	ck_assert_int_eq(hdr_long(&r, "RateLimit-Limit"), 1);
	ck_assert_int_eq(hdr_long(&r, "RateLimit-Remaining"), 2);
	res_free(&r);
	get(&r, &us, key, "/v1/events/r1");
	EXPECT(&r, 200);
	ck_assert_int_eq(hdr_long(&r, "RateLimit-Remaining"), 1);
	res_free(&r);
	post(&r, &us, key, ev("r2", "a", "u"));
	EXPECT(&r, 201);
	ck_assert_int_eq(hdr_long(&r, "RateLimit-Remaining"), 1);
	res_free(&r);
	post(&r, &us, key, ev("r3", "a", "u"));
	EXPECT(&r, 201);
	ck_assert_int_eq(hdr_long(&r, "RateLimit-Remaining"), 0);
	res_free(&r);
	post(&r, &us, key, ev("r4", "a", "u"));
	long took = it_now_ms() - t0;
	ck_assert_msg(took < 900, "the six requests took %ld ms: not quick enough to prove anything", took);
	EXPECT_PROBLEM_SOME(&r, 429, "rate_limited", NULL);
	long ra = hdr_long(&r, "Retry-After");
	ck_assert_msg(ra >= 1 && ra <= 2, "Retry-After %ld", ra);
	ck_assert_int_eq(hdr_long(&r, "RateLimit-Limit"), 1);
	ck_assert_int_eq(hdr_long(&r, "RateLimit-Remaining"), 0);
	res_free(&r);
	/* Writes refused, the reads' last token is still there. */
	get(&r, &us, key, "/v1/events");
	EXPECT(&r, 200);
	ck_assert_int_eq(hdr_long(&r, "RateLimit-Remaining"), 0);
	res_free(&r);
	get(&r, &us, key, "/v1/events");
	EXPECT_PROBLEM_SOME(&r, 429, "rate_limited", NULL);
	res_free(&r);
	/* Refused means not stored. */
	ck_assert_int_eq(stored(&us, &t), 3);
	/* /v1/tenant still answers. */
	get(&r, &us, key, "/v1/tenant");
	EXPECT(&r, 200);
	res_free(&r);
	/* A token later, one more passes. */
	usleep(1100 * 1000);
	post(&r, &us, key, ev("r4", "a", "u"));
	EXPECT(&r, 201);
	res_free(&r);
	ck_assert_int_eq(stored(&us, &t), 4);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 5. Retention                                                        */

/* A backdated row written straight into the regional database. */
static void insert_old(const struct dp *d, const struct tenant *t, const char *id, const char *age)
{
	free(it_sql(d->db,
	            it_fmt("INSERT INTO events (tenant_id, id, occurred_at, received_at, action, actor_id, content_sha256, body) "
	                "SELECT '%s', '%s', o, o, 'old.thing', 'ghost', sha256(convert_to('%s', 'UTF8')), "
	                "json_build_object('id', '%s', 'occurred_at', to_char(o AT TIME ZONE 'UTC', "
	                "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), 'received_at', to_char(o AT TIME ZONE 'UTC', "
	                "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), 'action', 'old.thing', 'actor', "
	                "json_build_object('id', 'ghost', 'type', 'user'), 'targets', '[]'::json, 'context', "
	                "'{}'::json, 'metadata', '{}'::json) FROM (SELECT now() - interval '%s' AS o) s",
	                t->id, id, id, id, age)));
}

/* Events older than the plan's retention go; the rest stay. */
START_TEST(retention)
{
	struct tenant t, lasting;
	struct dp us;
	char key[200], klasting[200];
	struct res r;
	new_plan("brief", 1000, 1000, 1000000, 1);
	new_tenant(&t, "ret", "us", "brief");
	new_tenant(&lasting, "ret-keep", "us", "pro"); /* 365 days */
	new_key(&t, "rw", key, NULL);
	new_key(&lasting, "rw", klasting, NULL);
	dp_prepare(&us, "us", "ret");
	us.extra[0] = "DP_RETENTION_BATCH=700";
	dp_start(&us);

	/* Past the retention by more than a week: with events partitioned by
	 * week, an event past its retention may stay until the week its
	 * retention ends in is over (partitioned_weeks). */
	for (int i = 0; i < 5; i++)
		insert_old(&us, &t, it_fmt("old-%d", i), it_fmt("%d days", 9 + i));
	insert_old(&us, &t, "young", "20 hours"); /* within the day */
	/* And many: more than a few retention batches of 700. The retention
	 * task runs already, so the rows are counted as they are inserted, not
	 * afterwards (it may have deleted some by then). */
	char *bulk = it_sql(us.db,
	            it_fmt("WITH ins AS (INSERT INTO events (tenant_id, id, occurred_at, received_at, action, actor_id, content_sha256, body) "
	                "SELECT '%s', 'bulk-' || g, o, o, 'old.thing', 'ghost', sha256(convert_to('bulk-' || g, 'UTF8')), "
	                "json_build_object('id', 'bulk-' || g, 'occurred_at', to_char(o AT TIME ZONE 'UTC', "
	                "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), 'received_at', to_char(o AT TIME ZONE 'UTC', "
	                "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), 'action', 'old.thing', 'actor', "
	                "json_build_object('id', 'ghost', 'type', 'user'), 'targets', '[]'::json, 'context', "
	                "'{}'::json, 'metadata', '{}'::json) "
	                "FROM generate_series(1, 2500) g, LATERAL (SELECT now() - interval '10 days' - g * interval '1 second' AS o) s "
	                "RETURNING 1) SELECT count(*) FROM ins",
	                t.id));
	ck_assert_str_eq(bulk, "2500");
	free(bulk);
	insert_old(&us, &lasting, "keep-old", "3 days");
	for (int i = 0; i < 3; i++) {
		post(&r, &us, key, ev(it_fmt("new-%d", i), "a", "u"));
		EXPECT(&r, 201);
		res_free(&r);
	}
	/* Older than the retention is refused at the door too. */
	char old_at[32];
	api_time(time(NULL) - 2 * 86400, 0, old_at);
	post(&r, &us, key, it_fmt("{\"id\":\"late\",\"occurred_at\":\"%s\",\"action\":\"a\","
	                       "\"actor\":{\"id\":\"u\",\"type\":\"t\"}}", old_at));
	EXPECT_PROBLEM(&r, 400, "validation_failed", "occurred_at");
	res_free(&r);

	long t0 = it_now_ms();
	while (sqll(us.db, it_fmt("SELECT count(*) FROM events WHERE tenant_id = '%s' AND (id LIKE 'old-%%' OR id LIKE 'bulk-%%')", t.id)) > 0) {
		ck_assert_msg(it_now_ms() - t0 < SLOW_MS, "old events still there %ld ms later (retention interval 1s)",
		              it_now_ms() - t0);
		usleep(100000);
	}
	/* A couple more passes change nothing else. */
	usleep(2200 * 1000);
	ck_assert_int_eq(stored(&us, &t), 4);
	ck_assert_int_eq(sqll(us.db, it_fmt("SELECT count(*) FROM events WHERE tenant_id = '%s' AND id IN "
	                                 "('young', 'new-0', 'new-1', 'new-2')", t.id)), 4);
	ck_assert_int_eq(stored(&us, &lasting), 1);
	get(&r, &us, key, "/v1/events");
	EXPECT(&r, 200);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "items")), 4);
	res_free(&r);
	get(&r, &us, key, "/v1/events/old-0");
	EXPECT_PROBLEM_SOME(&r, 404, "not_found", NULL);
	res_free(&r);
	get(&r, &us, klasting, "/v1/events/keep-old");
	EXPECT(&r, 200);
	res_free(&r);
	/* Usage is about what was stored, not what is kept. */
	ck_assert_int_eq(counted(&us, &t), 3);
}
END_TEST

/* Waits until the data plane's first passes have partitioned `events`. */
static void wait_partitioned(const struct dp *d)
{
	long t0 = it_now_ms();
	while (sqll(d->db, "SELECT count(*) FROM pg_class WHERE relname = 'events' AND relkind = 'p'") != 1) {
		ck_assert_msg(it_now_ms() - t0 < SLOW_MS, "events not partitioned %ld ms after start", it_now_ms() - t0);
		usleep(50000);
	}
}

/* The events of (tenant, week k from this one) in the database. */
static long long week_rows(const struct dp *d, const struct tenant *t, int k)
{
	return sqll(d->db, it_fmt("SELECT count(*) FROM events WHERE tenant_id = '%s' AND occurred_at >= "
	                          "events_week(now()) + %d * interval '7 days' AND occurred_at < "
	                          "events_week(now()) + %d * interval '7 days'",
	                          t->id, k, k + 1));
}

/* `n` events in SQL, 3 days into week k (from this one). */
static void insert_week(const struct dp *d, const struct tenant *t, const char *prefix, int k, int n)
{
	char *c = it_sql(
		d->db,
		it_fmt("WITH ins AS (INSERT INTO events (tenant_id, id, occurred_at, received_at, action, actor_id, "
		       "content_sha256, body) SELECT '%s', '%s-' || g, o, o, 'old.thing', 'ghost', "
		       "sha256(convert_to('%s-' || g, 'UTF8')), json_build_object('id', '%s-' || g, 'occurred_at', "
		       "to_char(o AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), 'received_at', "
		       "to_char(o AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), 'action', 'old.thing', "
		       "'actor', json_build_object('id', 'ghost', 'type', 'user'), 'targets', '[]'::json, "
		       "'context', '{}'::json, 'metadata', '{}'::json) FROM generate_series(1, %d) g, "
		       "LATERAL (SELECT events_week(now()) + %d * interval '7 days' + interval '3 days' + "
		       "g * interval '1 second' AS o) s RETURNING 1) SELECT count(*) FROM ins",
		       t->id, prefix, prefix, prefix, n, k));
	ck_assert_int_eq(atol(c), n);
	free(c);
}

/* The layout of a cell converted `weeks` weeks ago: events_before up to
 * then, a partition for every week since. (Its data plane stopped
 * meanwhile: nothing else changes the layout.) */
static void converted_weeks_ago(const struct dp *d, int weeks)
{
	free(it_sql(d->db, it_fmt("ALTER TABLE events DETACH PARTITION events_before;"
	                          "UPDATE events_layout SET weekly_from = events_week(now()) - interval '%d weeks';"
	                          "DO $$ BEGIN EXECUTE format('ALTER TABLE events ATTACH PARTITION events_before "
	                          "FOR VALUES FROM (MINVALUE) TO (%%L)', (SELECT weekly_from FROM events_layout)); END $$;"
	                          "SELECT count(events_partition_ensure(events_week(now()) - k * interval '7 days')) "
	                          "FROM generate_series(1, %d) k",
	                          weeks, weeks)));
}

/* Events partitioned by week, as a cell converted 60 weeks ago has them:
 * a week whose every tenant is past it goes whole (dropped when older
 * than every plan's retention, truncated otherwise); in a week another
 * tenant still keeps, or one of a tenant the cell does not know, the
 * events of the tenants past it go row by row; nothing else goes. A
 * session of an older build cannot delete. */
START_TEST(partitioned_weeks)
{
	struct tenant t, lasting, other;
	struct dp us;
	char key[200], klasting[200];
	struct res r;
	new_plan("brief", 1000, 1000, 1000000, 1);
	new_tenant(&t, "wk-brief", "us", "brief");
	new_tenant(&lasting, "wk-keep", "us", "pro"); /* 365 days, the longest in this cell */
	new_key(&t, "rw", key, NULL);
	new_key(&lasting, "rw", klasting, NULL);
	dp_prepare(&us, "us", "wk");
	us.extra[0] = "DP_RETENTION_INTERVAL=1h"; /* a pass at start only */
	dp_start(&us);
	wait_partitioned(&us);
	ck_assert_int_eq(it_metric(us.url, "dp_events_partitioned"), 1);
	/* Made ahead: this week and the two after it, no more. */
	ck_assert_int_eq(sqll(us.db, "SELECT count(*) FROM event_partitions WHERE lower >= events_week(now())"), 3);
	/* Ingested now: a weekly partition. */
	post(&r, &us, key, ev("young", "a", "u"));
	EXPECT(&r, 201);
	res_free(&r);
	ck_assert_int_eq(sqll(us.db, it_fmt("SELECT count(*) FROM events e JOIN event_partitions p ON "
	                                    "p.name = e.tableoid::regclass::text WHERE e.tenant_id = '%s'", t.id)),
	                 1);

	/* The layout of a cell converted 60 weeks ago: events_before up to
	 * then, a partition for every week since. (The data plane stopped
	 * meanwhile: nothing else changes the layout.) */
	dp_stop(&us);
	converted_weeks_ago(&us, 60);
	/* Week -58: older than every retention of the cell, both tenants'.
	 * Week -40: the lasting tenant's only. Week -3: the brief tenant's only.
	 * Week -2: both. (Each 3 days into its week, so past the brief
	 * tenant's day whatever today is.) */
	insert_week(&us, &t, "w58", -58, 30);
	insert_week(&us, &lasting, "l58", -58, 20);
	insert_week(&us, &lasting, "l40", -40, 10);
	insert_week(&us, &t, "w3", -3, 1500);
	insert_week(&us, &t, "w2", -2, 1200);
	insert_week(&us, &lasting, "l2", -2, 5);
	/* An event of a tenant this cell does not know holds its week. */
	memset(&other, 0, sizeof other);
	snprintf(other.id, sizeof other.id, "00000000-0000-4000-8000-00000000abcd");
	insert_week(&us, &other, "x5", -5, 3);
	insert_week(&us, &t, "w5", -5, 3);
	/* Week -4, the lasting tenant's, left apart by a detachment cut short
	 * (a statement timeout, a crash): attached again, not emptied. */
	insert_week(&us, &lasting, "l4", -4, 4);
	free(it_sql(us.db, "DO $$ BEGIN EXECUTE format('ALTER TABLE events DETACH PARTITION %I', "
	                   "(SELECT name FROM event_partitions WHERE lower = events_week(now()) - interval '4 weeks')); END $$"));
	ck_assert_int_eq(week_rows(&us, &lasting, -4), 0);

	/* Deleting is for this build's sessions only. */
	PGconn *pg = PQconnectdb(us.db);
	ck_assert_int_eq(PQstatus(pg), CONNECTION_OK);
	PGresult *pr = PQexec(pg, "DELETE FROM events WHERE id = 'w3-1'");
	ck_assert_msg(PQresultStatus(pr) == PGRES_FATAL_ERROR && strstr(PQresultErrorMessage(pr), "partitioned"),
	              "a deletion without the build level: %s", PQresultErrorMessage(pr));
	PQclear(pr);
	PQfinish(pg);
	ck_assert_int_eq(week_rows(&us, &t, -3), 1500);

	/* A pass (at start). */
	dp_start(&us);
	long t0 = it_now_ms();
	while (week_rows(&us, &t, -2) > 0 || week_rows(&us, &t, -3) > 0 || week_rows(&us, &t, -58) > 0 ||
	       week_rows(&us, &t, -5) > 0) {
		ck_assert_msg(it_now_ms() - t0 < SLOW_MS, "weeks past retention still there %ld ms later",
		              it_now_ms() - t0);
		usleep(100000);
	}
	/* Week -58 dropped, week -3 truncated (a tenant of a longer plan may
	 * still store an event there), both recorded for the log. */
	ck_assert_int_eq(sqll(us.db, "SELECT count(*) FROM event_partitions WHERE lower = events_week(now()) - "
	                             "interval '58 weeks'"),
	                 0);
	ck_assert_int_eq(sqll(us.db, "SELECT count(*) FROM event_partitions WHERE lower = events_week(now()) - "
	                             "interval '3 weeks'"),
	                 1);
	ck_assert_int_eq(sqll(us.db, "SELECT count(*) FROM event_drops WHERE lower IN (events_week(now()) - "
	                             "interval '58 weeks', events_week(now()) - interval '3 weeks')"),
	                 2);
	/* Weeks -2 and -5 kept, emptied of the brief tenant's rows only. */
	ck_assert_int_eq(sqll(us.db, "SELECT count(*) FROM event_drops WHERE lower IN (events_week(now()) - "
	                             "interval '2 weeks', events_week(now()) - interval '5 weeks')"),
	                 0);
	ck_assert_int_eq(week_rows(&us, &lasting, -2), 5);
	ck_assert_int_eq(week_rows(&us, &lasting, -40), 10);
	ck_assert_int_eq(week_rows(&us, &lasting, -58), 0);
	ck_assert_int_eq(week_rows(&us, &other, -5), 3);
	ck_assert_int_eq(week_rows(&us, &lasting, -4), 4);
	ck_assert_int_eq(it_metric(us.url, "dp_retention_partitions_emptied_total"), 2);
	ck_assert_int_ge(it_metric(us.url, "dp_retention_partitions_dropped_total"), 1);
	ck_assert_int_eq(it_metric(us.url, "dp_retention_deleted_total"), 1200 + 3);
	/* What the API answers. */
	get(&r, &us, key, "/v1/events");
	EXPECT(&r, 200);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "items")), 1);
	res_free(&r);
	get(&r, &us, klasting, "/v1/events?limit=100");
	EXPECT(&r, 200);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "items")), 19);
	res_free(&r);
	/* The truncated week takes events again. */
	insert_week(&us, &lasting, "l3", -3, 2);
	ck_assert_int_eq(week_rows(&us, &lasting, -3), 2);
	/* The index of ids across weeks says exactly what is stored: an id
	 * whose event went (a week truncated, rows deleted) is free again. */
	ck_assert_int_eq(sqll(us.db, "SELECT count(*) FROM event_ids d FULL JOIN (SELECT tenant_id, id, occurred_at "
	                             "FROM events WHERE occurred_at >= (SELECT weekly_from FROM events_layout)) e "
	                             "USING (tenant_id, id, occurred_at) WHERE d.tenant_id IS NULL OR e.tenant_id IS NULL"),
	                 0);
	/* young; l2, l40, l4, l3; x5 */
	ck_assert_int_eq(sqll(us.db, "SELECT count(*) FROM event_ids"), 1 + 5 + 10 + 4 + 2 + 3);
	post(&r, &us, key, ev("w3-1", "a", "u"));
	EXPECT(&r, 201);
	res_free(&r);
	post(&r, &us, key, ev("w2-1", "a", "u"));
	EXPECT(&r, 201);
	res_free(&r);
	post(&r, &us, key, ev("w2-1", "a", "u"));
	EXPECT(&r, 200);
	res_free(&r);
	/* A week the cell has no partition for (dropped, or never made: no
	 * tenant kept that long at the last pass) is made when an event of a
	 * tenant that keeps it comes. */
	free(it_sql(us.db, "DO $$ DECLARE n text := (SELECT name FROM event_partitions WHERE lower = "
	                   "events_week(now()) - interval '30 weeks'); BEGIN "
	                   "EXECUTE format('ALTER TABLE events DETACH PARTITION %I', n); EXECUTE format('DROP TABLE %I', n); "
	                   "DELETE FROM event_partitions WHERE name = n; END $$"));
	char *at = it_sql(us.db, "SELECT to_char((events_week(now()) - interval '30 weeks' + interval '3 days') "
	                         "AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')");
	post(&r, &us, klasting, it_fmt("{\"id\":\"back-30\",\"occurred_at\":\"%s\",\"action\":\"a\","
	                               "\"actor\":{\"id\":\"u\",\"type\":\"user\"}}", at));
	free(at);
	EXPECT(&r, 201);
	res_free(&r);
	ck_assert_int_eq(week_rows(&us, &lasting, -30), 1);
	ck_assert_int_eq(sqll(us.db, "SELECT count(*) FROM event_partitions WHERE lower = events_week(now()) - "
	                             "interval '30 weeks'"),
	                 1);
}
END_TEST

/* A cell partitioned by a build before the index of ids across weeks
 * (contract 0001 only): this build applies 0002 under the conversion's
 * conditions, indexing every event of its weeks, those of a week a
 * detachment left apart too; an id stored before is then found whatever
 * week a copy of it names, and the detached week comes back with its ids. */
START_TEST(ids_indexed_later)
{
	struct tenant t, brief;
	struct dp us;
	char key[200];
	struct res r;
	new_tenant(&t, "idx", "us", "pro");
	new_key(&t, "rw", key, NULL);
	/* A tenant keeping a day: every week that ended is looked at. */
	new_plan("idx-brief", 1000, 1000, 1000000, 1);
	new_tenant(&brief, "idx-brief", "us", "idx-brief");
	dp_prepare(&us, "us", "idx");
	us.extra[0] = "DP_RETENTION_INTERVAL=1h";
	dp_start(&us);
	wait_partitioned(&us);
	dp_stop(&us);
	/* Back to 0001 only, weeks made for the last ten. */
	free(it_sql(us.db,
	            "DROP TRIGGER event_ids_add ON events; DROP TRIGGER event_ids_remove ON events;"
	            "DROP FUNCTION event_ids_add(); DROP FUNCTION event_ids_remove();"
	            "CREATE OR REPLACE FUNCTION events_find(tenants uuid[], ids text[]) RETURNS TABLE (tenant_id uuid,"
	            " id text, occurred_at timestamptz, content_sha256 bytea, body json) LANGUAGE sql STABLE AS $$"
	            " SELECT e.tenant_id, e.id, e.occurred_at, e.content_sha256, e.body FROM unnest(tenants, ids) AS k(t, i)"
	            " JOIN events e ON e.tenant_id = k.t AND e.id = k.i $$;"
	            "DROP TABLE event_ids; DELETE FROM schema_contracts WHERE version = 2"));
	converted_weeks_ago(&us, 10);
	insert_week(&us, &t, "a", -6, 20);
	insert_week(&us, &t, "b", -2, 30);
	insert_week(&us, &t, "c", -4, 5);
	free(it_sql(us.db, "DO $$ BEGIN EXECUTE format('ALTER TABLE events DETACH PARTITION %I', "
	                   "(SELECT name FROM event_partitions WHERE lower = events_week(now()) - interval '4 weeks')); END $$"));
	ck_assert_int_eq(sqll(us.db, "SELECT count(*) FROM pg_class WHERE relname = 'event_ids'"), 0);

	/* The step waits for DP_EVENTS_PARTITIONED, as the conversion does. */
	us.extra[1] = "DP_EVENTS_PARTITIONED=false";
	dp_start(&us);
	usleep(1500 * 1000);
	ck_assert_int_eq(sqll(us.db, "SELECT count(*) FROM pg_class WHERE relname = 'event_ids'"), 0);
	/* Ids still found through every week meanwhile (the tenants' locks). */
	post(&r, &us, key, ev("b-1", "other", "u"));
	EXPECT_PROBLEM(&r, 409, "conflict", "id");
	res_free(&r);
	dp_stop(&us);
	us.extra[1] = NULL;
	dp_start(&us);
	long t0 = it_now_ms();
	while (sqll(us.db, "SELECT count(*) FROM schema_contracts") != 2) {
		ck_assert_msg(it_now_ms() - t0 < SLOW_MS, "contract 0002 not applied");
		usleep(50000);
	}
	/* Every event of the weeks indexed, those of the detached week too. */
	ck_assert_int_eq(sqll(us.db, "SELECT count(*) FROM event_ids"), 20 + 30 + 5);
	/* A copy of a stored id in another week is a conflict, found through
	 * the index; a new id is stored. */
	post(&r, &us, key, ev("a-3", "other", "u"));
	EXPECT_PROBLEM(&r, 409, "conflict", "id");
	res_free(&r);
	post(&r, &us, key, ev("fresh-1", "a", "u"));
	EXPECT(&r, 201);
	res_free(&r);
	ck_assert_int_eq(sqll(us.db, "SELECT count(*) FROM event_ids"), 20 + 30 + 5 + 1);
	/* The detached week attached again by a pass, its ids found. */
	dp_stop(&us);
	us.extra[0] = "DP_RETENTION_INTERVAL=1s";
	dp_start(&us);
	t0 = it_now_ms();
	while (week_rows(&us, &t, -4) != 5) {
		ck_assert_msg(it_now_ms() - t0 < SLOW_MS, "the detached week not attached again");
		usleep(100000);
	}
	post(&r, &us, key, ev("c-2", "other", "u"));
	EXPECT_PROBLEM(&r, 409, "conflict", "id");
	res_free(&r);
}
END_TEST

/* DP_EVENTS_PARTITIONED=false (the default) keeps events unpartitioned.
 * With it, an instance of an older build (no schema_level in its
 * heartbeat) keeps them so, and DP_CONTRACT_AFTER (3 s here) after it was
 * last seen; then a pass converts them, and every event stored before is
 * still there, found, listed and replayed. */
START_TEST(contract_waits_for_fleet)
{
	struct tenant t;
	struct dp us;
	char key[200];
	struct res r;
	new_tenant(&t, "fleet", "us", "pro");
	new_key(&t, "rw", key, NULL);
	dp_prepare(&us, "us", "fleet");
	us.extra[0] = "DP_EVENTS_PARTITIONED=false";
	dp_start(&us);
	post(&r, &us, key, ev("before-0", "a", "u"));
	EXPECT(&r, 201);
	res_free(&r);
	usleep(2500 * 1000); /* two passes and more */
	ck_assert_int_eq(sqll(us.db, "SELECT count(*) FROM pg_class WHERE relname = 'events' AND relkind = 'r'"), 1);
	ck_assert_int_eq(it_metric(us.url, "dp_events_partitioned"), 0);
	dp_stop(&us);
	free(it_sql(us.db, "INSERT INTO rate_instances (instance_id, seen_at) "
	                   "VALUES ('0123456789abcdef0123456789abcdef', now() + interval '1 hour')"));
	us.extra[0] = "DP_CONTRACT_AFTER=3s";
	dp_start(&us);
	for (int i = 1; i < 20; i++) {
		post(&r, &us, key, ev(it_fmt("before-%d", i), "a", "u"));
		EXPECT(&r, 201);
		res_free(&r);
	}
	usleep(2500 * 1000); /* two passes and more */
	ck_assert_int_eq(sqll(us.db, "SELECT count(*) FROM pg_class WHERE relname = 'events' AND relkind = 'r'"), 1);
	ck_assert_int_eq(it_metric(us.url, "dp_events_partitioned"), 0);
	free(it_sql(us.db, "DELETE FROM rate_instances WHERE instance_id = '0123456789abcdef0123456789abcdef'"));
	long gone = it_now_ms();
	ck_assert_int_eq(sqll(us.db, "SELECT count(*) FROM contract_gate"), 1);
	wait_partitioned(&us);
	ck_assert_msg(it_now_ms() - gone >= 2000, "partitioned %ld ms after the older instance left, "
	              "DP_CONTRACT_AFTER is 3 s", it_now_ms() - gone);
	ck_assert_int_eq(sqll(us.db, "SELECT count(*) FROM schema_contracts"), 2);
	ck_assert_int_eq(stored(&us, &t), 20);
	for (int i = 20; i < 25; i++) {
		post(&r, &us, key, ev(it_fmt("after-%d", i), "a", "u"));
		EXPECT(&r, 201);
		res_free(&r);
	}
	/* The identity goes on past the old rows'. */
	ck_assert_int_eq(sqll(us.db, it_fmt("SELECT count(*) FROM events WHERE tenant_id = '%s' AND id LIKE 'after-%%' "
	                                    "AND seq > (SELECT max(seq) FROM events WHERE id LIKE 'before-%%')",
	                                    t.id)),
	                 5);
	get(&r, &us, key, "/v1/events?limit=100");
	EXPECT(&r, 200);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "items")), 25);
	res_free(&r);
	get(&r, &us, key, "/v1/events/before-3");
	EXPECT(&r, 200);
	res_free(&r);
	/* A replay of an event stored before is still a replay. */
	post(&r, &us, key, ev("before-3", "a", "u"));
	EXPECT(&r, 200);
	res_free(&r);
	ck_assert_int_eq(stored(&us, &t), 25);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 6. Usage billed exactly once across a control-plane outage          */

static void wait_billed(const struct tenant *t, const char *period, long long want, int timeout_ms)
{
	long t0 = it_now_ms();
	long long got;
	while ((got = billed_total(t->id, period)) != want) {
		ck_assert_msg(got < want, "billed %lld, more than the %lld events stored", got, want);
		ck_assert_msg(it_now_ms() - t0 < timeout_ms, "billed %lld after %d ms, want %lld", got, timeout_ms, want);
		usleep(200000);
	}
}

START_TEST(usage_exactly_once)
{
	struct tenant t, other;
	struct dp us;
	char key[200], kother[200], period[8];
	struct res r;
	this_period(period);
	new_tenant(&t, "usage", "us", "pro");
	new_tenant(&other, "usage-2", "us", "pro");
	new_key(&t, "rw", key, NULL);
	new_key(&other, "rw", kother, NULL);
	dp_prepare(&us, "us", "usage");
	dp_start(&us);
	ck_assert_int_eq(billed_total(t.id, period), 0);

	stop_cp();
	/* 10 singles, 2 batches of 20: 50 events; and replays of both kinds. */
	for (int i = 0; i < 10; i++) {
		post(&r, &us, key, ev(it_fmt("s-%d", i), "a", "u"));
		EXPECT(&r, 201);
		res_free(&r);
	}
	char *batches[2];
	for (int b = 0; b < 2; b++) {
		char *body = malloc(8192);
		size_t n = (size_t)sprintf(body, "{\"events\":[");
		for (int i = 0; i < 20; i++)
			n += (size_t)sprintf(body + n, "%s%s", i ? "," : "", ev(it_fmt("b%d-%d", b, i), "a", "u"));
		strcpy(body + n, "]}");
		batches[b] = body;
		post(&r, &us, key, body);
		EXPECT(&r, 201);
		res_free(&r);
	}
	post(&r, &us, key, ev("s-3", "a", "u"));
	EXPECT(&r, 200);
	res_free(&r);
	post(&r, &us, key, batches[1]);
	EXPECT(&r, 200);
	res_free(&r);
	/* Another tenant's 7 are billed to it, not to t. */
	for (int i = 0; i < 7; i++) {
		post(&r, &us, kother, ev(NULL, "a", "u"));
		EXPECT(&r, 201);
		res_free(&r);
	}
	ck_assert_int_eq(stored(&us, &t), 50);
	ck_assert_int_eq(counted(&us, &t), 50);
	usleep(600 * 1000); /* the sender tries, and fails, a few times */

	start_cp();
	wait_billed(&t, period, 50, 20000);
	wait_billed(&other, period, 7, SLOW_MS);
	/* More report intervals pass: nothing is counted twice. */
	usleep(1500 * 1000);
	ck_assert_int_eq(billed_total(t.id, period), 50);
	ck_assert_int_eq(billed_total(other.id, period), 7);
	long t0 = it_now_ms();
	while (sqll(us.db, "SELECT count(*) FROM usage_outbox WHERE sent_at IS NULL") > 0) {
		ck_assert_msg(it_now_ms() - t0 < SLOW_MS, "usage_outbox rows unsent after billing converged");
		usleep(100000);
	}
	ck_assert_int_eq(sqll(us.db, "SELECT count(*) FROM usage_outbox WHERE rejected_at IS NOT NULL"), 0);
	ck_assert_int_eq(sqll(us.db, "SELECT coalesce(sum(events), 0) FROM usage_outbox WHERE sent_at IS NOT NULL"), 57);
	ck_assert_int_eq(sqll(us.db, "SELECT count(*) FROM usage_counters WHERE reported <> events"), 0);
	ck_assert_int_eq(sqll(us.db, it_fmt("SELECT reported FROM usage_counters WHERE tenant_id = '%s'", t.id)), 50);
	free(batches[0]);
	free(batches[1]);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Load (7 and 8)                                                      */

struct loader {
	char url[128], auth[300];
	atomic_int stop;
	int threads, batch_every; /* every Nth request a batch of 3 (0: never) */
	int no_ids;               /* events without ids (the server names them) */
	char prefix[8];           /* of the ids */
	long events_acked;        /* events in 201 answers */
	pthread_mutex_t mu;
	char (*ids)[40];          /* ids answered 201 */
	size_t nids, cap;
	long status[600];         /* answers by status; [0]: no answer */
	long no_retry_after;      /* 503s without Retry-After */
	char last_bad[512];
	pthread_t th[16];
};

struct hdrs {
	int retry_after;
};

static size_t sink(char *p, size_t s, size_t n, void *u)
{
	(void)p, (void)u;
	return s * n;
}

static size_t on_hdr(char *p, size_t s, size_t n, void *u)
{
	struct hdrs *h = u;
	if (s * n > 12 && !strncasecmp(p, "Retry-After:", 12))
		h->retry_after = 1;
	return s * n;
}

struct worker {
	struct loader *l;
	int no;
};

static void *loader_main(void *arg)
{
	struct worker *w = arg;
	struct loader *l = w->l;
	char body[2048], ids[3][32];
	struct curl_slist *h = curl_slist_append(NULL, l->auth);
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "Expect:");
	for (long n = 0; !atomic_load(&l->stop); n++) {
		int k = l->batch_every && n % l->batch_every == l->batch_every - 1 ? 3 : 1;
		size_t len = 0;
		char idm[3][48];
		for (int i = 0; i < k; i++) {
			snprintf(ids[i], sizeof ids[i], "%.7s%d-%ld-%d", l->prefix, w->no, n, i);
			if (l->no_ids)
				idm[i][0] = '\0';
			else
				snprintf(idm[i], sizeof idm[i], "\"id\":\"%s\",", ids[i]);
		}
		if (k == 1)
			len = (size_t)snprintf(body, sizeof body,
			                       "{%s\"action\":\"load.x\",\"actor\":{\"id\":\"w%d\",\"type\":\"bot\"}}",
			                       idm[0], w->no);
		else {
			len = (size_t)snprintf(body, sizeof body, "{\"events\":[");
			for (int i = 0; i < k; i++)
				len += (size_t)snprintf(body + len, sizeof body - len,
				                        "%s{%s\"action\":\"load.x\",\"actor\":{\"id\":\"w%d\",\"type\":\"bot\"}}",
				                        i ? "," : "", idm[i], w->no);
			len += (size_t)snprintf(body + len, sizeof body - len, "]}");
		}
		CURL *c = curl_easy_init();
		struct hdrs hd = { 0 };
		curl_easy_setopt(c, CURLOPT_URL, l->url);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
		curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_hdr);
		curl_easy_setopt(c, CURLOPT_HEADERDATA, &hd);
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
		curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
		long code = 0;
		CURLcode cc = curl_easy_perform(c);
		if (cc == CURLE_OK)
			curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
		curl_easy_cleanup(c);
		pthread_mutex_lock(&l->mu);
		l->status[code >= 0 && code < 600 ? code : 599]++;
		if (code == 503 && !hd.retry_after)
			l->no_retry_after++;
		if (code == 201) {
			l->events_acked += k;
			for (int i = 0; i < k && l->nids < l->cap && !l->no_ids; i++)
				memcpy(l->ids[l->nids++], ids[i], sizeof ids[i]);
		}
		if (code != 201 && code != 503)
			snprintf(l->last_bad, sizeof l->last_bad, "%ld (%s)", code,
			         cc == CURLE_OK ? "answered" : curl_easy_strerror(cc));
		pthread_mutex_unlock(&l->mu);
		if (code == 503)
			usleep(20000);
	}
	curl_slist_free_all(h);
	free(w);
	return NULL;
}

/* `threads` posting to `d` with `key`: singles, and every `batch_every`th
 * request a batch of 3 (0: singles only; -1: singles without ids); ids
 * start with `prefix`. */
static void loader_start(struct loader *l, const struct dp *d, const char *key, int threads, int batch_every,
                         const char *prefix)
{
	memset(l, 0, sizeof *l);
	snprintf(l->prefix, sizeof l->prefix, "%s", prefix);
	ck_assert_int_le(threads, (int)(sizeof l->th / sizeof l->th[0]));
	snprintf(l->url, sizeof l->url, "%s/v1/events", d->url);
	snprintf(l->auth, sizeof l->auth, "Authorization: Bearer %s", key);
	l->threads = threads;
	l->batch_every = batch_every;
	if (batch_every < 0) { /* id-less singles */
		l->batch_every = 0;
		l->no_ids = 1;
	}
	l->cap = 400000;
	l->ids = calloc(l->cap, sizeof *l->ids);
	pthread_mutex_init(&l->mu, NULL);
	for (int i = 0; i < threads; i++) {
		struct worker *w = malloc(sizeof *w);
		w->l = l;
		w->no = i;
		ck_assert_int_eq(pthread_create(&l->th[i], NULL, loader_main, w), 0);
	}
}

static void loader_stop(struct loader *l)
{
	atomic_store(&l->stop, 1);
	for (int i = 0; i < l->threads; i++)
		pthread_join(l->th[i], NULL);
}

static long loader_count(struct loader *l, int status)
{
	pthread_mutex_lock(&l->mu);
	long n = l->status[status];
	pthread_mutex_unlock(&l->mu);
	return n;
}

static long loader_others(struct loader *l, int a, int b)
{
	long n = 0;
	for (int i = 0; i < 600; i++)
		if (i != a && i != b)
			n += l->status[i];
	return n;
}

/* How many of the loader's 201 ids are stored (one query). */
static long long acked_stored(const struct dp *d, const struct tenant *t, struct loader *l)
{
	size_t cap = l->nids * 48 + 256;
	char *sql = malloc(cap);
	size_t n = (size_t)snprintf(sql, cap, "SELECT count(*) FROM events WHERE tenant_id = '%s' AND id IN (", t->id);
	for (size_t i = 0; i < l->nids; i++)
		n += (size_t)snprintf(sql + n, cap - n, "%s'%s'", i ? "," : "", l->ids[i]);
	snprintf(sql + n, cap - n, ")");
	long long v = l->nids ? sqll(d->db, sql) : 0;
	free(sql);
	return v;
}

/* ------------------------------------------------------------------ */
/* 7. SIGKILL under load                                               */

START_TEST(sigkill_under_load)
{
	struct tenant t;
	struct dp us;
	char key[200], period[8];
	struct res r;
	struct loader l;
	this_period(period);
	new_plan("bulk", 1000000, 1000000, 1000000000, 30);
	new_tenant(&t, "killed", "us", "bulk");
	new_key(&t, "rw", key, NULL);
	dp_prepare(&us, "us", "kill");
	dp_start(&us);

	loader_start(&l, &us, key, 6, 4, "L");
	long t0 = it_now_ms();
	while (loader_count(&l, 201) < 150) {
		ck_assert_msg(it_now_ms() - t0 < SLOW_MS, "only %ld events acknowledged in %d ms", loader_count(&l, 201), SLOW_MS);
		usleep(20000);
	}
	usleep(300 * 1000);
	kill(us.p.pid, SIGKILL);
	ck_assert_int_eq(it_wait(&us.p, 5000), 128 + SIGKILL);
	usleep(200 * 1000);
	loader_stop(&l);
	long ok = l.status[201], failed = l.status[0];
	fprintf(stderr, "  sigkill: %ld requests acknowledged (%zu events), %ld without an answer\n", ok, l.nids, failed);
	ck_assert_msg(loader_others(&l, 201, 0) == 0, "answers other than 201 under load, the last %s", l.last_bad);
	ck_assert_int_gt(ok, 150);

	/* Restarted on the same database, from its cache. */
	dp_start(&us);
	long long acked = acked_stored(&us, &t, &l);
	ck_assert_msg(acked == (long long)l.nids, "%lld of the %zu acknowledged events are stored", acked, l.nids);
	long long n_stored = stored(&us, &t);
	ck_assert_msg(n_stored >= (long long)l.nids, "stored %lld < acknowledged %zu", n_stored, l.nids);
	ck_assert_msg(counted(&us, &t) == n_stored, "usage_counters %lld, events stored %lld", counted(&us, &t),
	              n_stored);
	/* Each stored event is readable. */
	get(&r, &us, key, it_fmt("/v1/events/%s", l.ids[l.nids - 1]));
	EXPECT(&r, 200);
	res_free(&r);
	wait_billed(&t, period, n_stored, 20000);
	usleep(800 * 1000);
	ck_assert_int_eq(billed_total(t.id, period), n_stored);
	ck_assert_int_eq(sqll(us.db, "SELECT count(*) FROM usage_outbox WHERE sent_at IS NULL"), 0);
	free(l.ids);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 8. The regional database restarted under load                       */

START_TEST(pg_restart_under_load)
{
	struct tenant t;
	struct dp us;
	char key[200];
	struct res r;
	struct loader l;
	new_plan("bulk", 1000000, 1000000, 1000000000, 30);
	new_tenant(&t, "pgdown", "us", "bulk");
	new_key(&t, "rw", key, NULL);
	dp_prepare(&us, "us", "pgr");
	us.extra[0] = "DP_DB_ACQUIRE_TIMEOUT=1s";
	dp_start(&us);

	loader_start(&l, &us, key, 3, 0, "L");
	for (long t0 = it_now_ms(); loader_count(&l, 201) <= 10; usleep(20000))
		ck_assert_msg(it_now_ms() - t0 < SLOW_MS, "only %ld events before the restart", loader_count(&l, 201));

	/* The whole cluster goes (the control plane's database with it: the
	 * data plane has no use for the control plane on a request's path). */
	it_pg_stop();
	long down_at = it_now_ms();
	long long tenant_worst = 0;
	int probes = 0;
	while (it_now_ms() - down_at < 2500) {
		long q0 = it_now_ms();
		get(&r, &us, key, "/v1/tenant");
		long took = it_now_ms() - q0;
		EXPECT(&r, 200);
		res_free(&r);
		if (took > tenant_worst)
			tenant_worst = took;
		post(&r, &us, key, ev(it_fmt("down-%d", probes), "a", "u"));
		EXPECT_PROBLEM_SOME(&r, 503, "unavailable", NULL);
		char ra[16];
		ck_assert_msg(it_header(&r.raw, "Retry-After", ra, sizeof ra) == 0 && atol(ra) >= 1,
		              "503 without Retry-After");
		res_free(&r);
		get(&r, &us, key, "/v1/events?limit=1");
		EXPECT_PROBLEM_SOME(&r, 503, "unavailable", NULL);
		res_free(&r);
		get(&r, &us, key, "/v1/events/down-0");
		EXPECT_PROBLEM_SOME(&r, 503, "unavailable", NULL);
		res_free(&r);
		ck_assert_msg(dp_alive(&us), "the data plane died with its database down (log %s)", us.p.log);
		probes++;
	}
	ck_assert_msg(tenant_worst < 1000, "GET /v1/tenant took %lld ms with the database down", tenant_worst);
	ck_assert_int_gt(probes, 0);
	long s503 = loader_count(&l, 503);
	ck_assert_msg(s503 > 0, "the loader saw no 503 while the database was down");

	it_pg_start();
	long up_at = it_now_ms(), recovered = -1;
	for (int i = 0; recovered < 0; i++) {
		ck_assert_msg(it_now_ms() - up_at < SLOW_MS, "POST still failing %d ms after the database came back", SLOW_MS);
		post(&r, &us, key, ev(it_fmt("up-%d", i), "a", "u"));
		if (r.status == 201)
			recovered = it_now_ms() - up_at;
		else
			EXPECT_PROBLEM_SOME(&r, 503, "unavailable", NULL);
		res_free(&r);
		if (recovered < 0)
			usleep(100000);
	}
	fprintf(stderr, "  pg restart: POST served again %ld ms after the database was back\n", recovered);
	get(&r, &us, key, "/v1/events?limit=1");
	EXPECT(&r, 200);
	res_free(&r);
	long before = loader_count(&l, 201);
	for (long t0 = it_now_ms(); loader_count(&l, 201) <= before; usleep(20000))
		ck_assert_msg(it_now_ms() - t0 < SLOW_MS, "the loader is not served again");
	loader_stop(&l);
	ck_assert_msg(loader_others(&l, 201, 503) == 0,
	              "%ld answers neither 201 nor 503 (no answer: %ld, 500: %ld), the last %s", loader_others(&l, 201, 503),
	              l.status[0], l.status[500], l.last_bad);
	ck_assert_msg(l.no_retry_after == 0, "%ld 503s without Retry-After", l.no_retry_after);
	ck_assert_msg(dp_alive(&us), "the data plane is gone");
	long long acked = acked_stored(&us, &t, &l);
	ck_assert_msg(acked == (long long)l.nids, "%lld of the %zu acknowledged events are stored", acked, l.nids);
	ck_assert_int_eq(counted(&us, &t), stored(&us, &t));
	free(l.ids);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 9. Listing: filters and pages                                       */

/* The ids of a listing, in order, as "a,b,c"; checks next_cursor. */
static void list_ids(const struct dp *d, const char *key, const char *path, char *out, size_t len,
                     char *cursor, size_t clen)
{
	struct res r;
	get(&r, d, key, path);
	ck_assert_msg(r.status == 200, "%s: %ld: %s", path, r.status, r.raw.body);
	json_t *evs = json_object_get(r.json, "items"), *e;
	size_t i, n = 0;
	ck_assert_msg(json_is_array(evs), "%s: %s", path, r.raw.body);
	out[0] = '\0';
	json_array_foreach(evs, i, e)
		n += (size_t)snprintf(out + n, len - n, "%s%s", i ? "," : "", it_js(e, "id"));
	/* has_more says whether a page follows; next_cursor is there exactly then. */
	json_t *c = json_object_get(r.json, "next_cursor"), *more = json_object_get(r.json, "has_more");
	ck_assert_msg(json_is_boolean(more), "%s: has_more must be a boolean: %s", path, r.raw.body);
	ck_assert_msg(json_is_true(more) ? json_is_string(c) && *json_string_value(c) : c == NULL,
	              "%s: next_cursor must be a string when has_more, absent otherwise: %s", path, r.raw.body);
	snprintf(cursor, clen, "%s", json_is_string(c) ? json_string_value(c) : "");
	res_free(&r);
}

/* Pages through `query` with `limit`, expecting `want` ("a,b,c") overall. */
static void expect_pages(const struct dp *d, const char *key, const char *query, int limit, const char *want)
{
	char all[8192] = "", page[8192], cursor[1024] = "", path[2048];
	size_t n = 0;
	int pages = 0;
	int total = *want ? 1 : 0;
	for (const char *p = want; *p; p++)
		total += *p == ',';
	do {
		CURL *c = curl_easy_init();
		char *esc = curl_easy_escape(c, cursor, 0);
		snprintf(path, sizeof path, "/v1/events?%s%slimit=%d%s%s", query, *query ? "&" : "", limit,
		         *cursor ? "&cursor=" : "", *cursor ? esc : "");
		curl_free(esc);
		curl_easy_cleanup(c);
		list_ids(d, key, path, page, sizeof page, cursor, sizeof cursor);
		int in_page = *page ? 1 : 0;
		for (const char *p = page; *p; p++)
			in_page += *p == ',';
		pages++;
		ck_assert_msg(in_page <= limit, "%s: %d events on a page of %d", path, in_page, limit);
		if (*cursor)
			ck_assert_msg(in_page == limit, "%s: a short page (%d of %d) with a next_cursor", path, in_page, limit);
		if (*page)
			n += (size_t)snprintf(all + n, sizeof all - n, "%s%s", n ? "," : "", page);
		ck_assert_msg(pages <= total / limit + 2, "%s: too many pages", query);
	} while (*cursor);
	ck_assert_msg(!strcmp(all, want), "GET /v1/events?%s by %d:\n got  %s\n want %s", query, limit, all, want);
	ck_assert_msg(pages == (total + limit - 1) / limit || (total % limit == 0 && pages == total / limit + 1) ||
	                  (total == 0 && pages == 1),
	              "%s by %d: %d pages for %d events", query, limit, pages, total);
}

/* The ids p<i> for i from hi down to lo where pick(i), as "a,b,c". */
static const char *expected(int hi, int lo, int (*pick)(int), const char *suffix)
{
	static char out[4][4096];
	static int k;
	char *o = out[k++ % 4];
	size_t n = 0;
	o[0] = '\0';
	for (int i = hi; i >= lo; i--)
		if (!pick || pick(i))
			n += (size_t)snprintf(o + n, 4096 - n, "%sp%02d", n ? "," : "", i);
	if (suffix && *suffix)
		snprintf(o + n, 4096 - n, "%s%s", n ? "," : "", suffix);
	return o;
}

static int even(int i) { return i % 2 == 0; }
static int odd(int i) { return i % 2 == 1; }
static int act1(int i) { return i % 3 == 1; }
static int tgt2(int i) { return i % 5 == 2 || i % 7 == 0; }
static int odd_mid(int i) { return i % 2 == 1 && i >= 10 && i < 20; }

START_TEST(list_filters_and_pages)
{
	struct tenant t, other;
	struct dp us;
	char key[200], kother[200], ids[8192], cursor[1024];
	struct res r;
	new_tenant(&t, "lister", "us", "pro");
	new_tenant(&other, "lister-2", "us", "pro");
	new_key(&t, "rw", key, NULL);
	new_key(&other, "rw", kother, NULL);
	dp_prepare(&us, "us", "list");
	dp_start(&us);

	/* p00..p24, a second apart, posted out of order (time, not arrival,
	 * orders the listing); actor alice/bob by parity, action a.<i%3>,
	 * target t<i%5> (and t2 too when i%7 == 0). */
	time_t base = time(NULL) - 3600;
	char at[32];
	int order[25];
	for (int i = 0; i < 25; i++)
		order[i] = (i * 7) % 25;
	for (int k = 0; k < 25; k++) {
		int i = order[k];
		api_time(base + i, 0, at);
		const char *targets = i % 7 == 0 && i % 5 != 2
		                          ? it_fmt("[{\"id\":\"t%d\",\"type\":\"doc\"},{\"id\":\"t2\",\"type\":\"doc\"}]", i % 5)
		                          : it_fmt("[{\"id\":\"t%d\",\"type\":\"doc\"}]", i % 5);
		post(&r, &us, key, it_fmt("{\"id\":\"p%02d\",\"occurred_at\":\"%s\",\"action\":\"a.%d\","
		                       "\"actor\":{\"id\":\"%s\",\"type\":\"user\"},\"targets\":%s}",
		                       i, at, i % 3, i % 2 ? "bob" : "alice", targets));
		EXPECT(&r, 201);
		res_free(&r);
	}
	/* Three at one instant, before all the others: the most recently stored first. */
	api_time(base - 100, 0, at);
	const char *tie[] = { "tie-a", "tie-b", "tie-c" };
	for (int i = 0; i < 3; i++) {
		post(&r, &us, key, it_fmt("{\"id\":\"%s\",\"occurred_at\":\"%s\",\"action\":\"tie\","
		                       "\"actor\":{\"id\":\"carol\",\"type\":\"user\"}}", tie[i], at));
		EXPECT(&r, 201);
		res_free(&r);
	}
	/* The other tenant's events at the same times never show. */
	for (int i = 0; i < 5; i++) {
		api_time(base + i * 5, 0, at);
		post(&r, &us, kother, it_fmt("{\"id\":\"p%02d\",\"occurred_at\":\"%s\",\"action\":\"a.1\","
		                          "\"actor\":{\"id\":\"alice\",\"type\":\"user\"},"
		                          "\"targets\":[{\"id\":\"t2\",\"type\":\"doc\"}]}", 90 + i, at));
		EXPECT(&r, 201);
		res_free(&r);
	}

	const char *everything = expected(24, 0, NULL, "tie-c,tie-b,tie-a");
	/* Default limit: all 28 on one page. */
	list_ids(&us, key, "/v1/events", ids, sizeof ids, cursor, sizeof cursor);
	ck_assert_msg(!strcmp(ids, everything), "GET /v1/events:\n got  %s\n want %s", ids, everything);
	ck_assert_str_eq(cursor, "");
	expect_pages(&us, key, "", 10, everything);
	expect_pages(&us, key, "", 26, everything); /* a page boundary inside the tie */
	expect_pages(&us, key, "", 1, everything);
	expect_pages(&us, key, "", 7, everything);  /* 28 = 4 x 7 */
	expect_pages(&us, key, "actor=alice", 10, expected(24, 0, even, NULL));
	expect_pages(&us, key, "actor=bob", 4, expected(24, 0, odd, NULL));
	expect_pages(&us, key, "actor=carol", 2, "tie-c,tie-b,tie-a");
	expect_pages(&us, key, "actor=nobody", 10, "");
	expect_pages(&us, key, "action=a.1", 3, expected(24, 0, act1, NULL));
	expect_pages(&us, key, "target=t2", 4, expected(24, 0, tgt2, NULL));
	char since[32], until[32], q[200];
	api_time(base + 10, 0, since);
	api_time(base + 20, 0, until);
	snprintf(q, sizeof q, "since=%s&until=%s", since, until);
	expect_pages(&us, key, q, 4, expected(19, 10, NULL, NULL));
	snprintf(q, sizeof q, "actor=bob&since=%s&until=%s", since, until);
	expect_pages(&us, key, q, 2, expected(19, 0, odd_mid, NULL));
	snprintf(q, sizeof q, "since=%s", since);
	expect_pages(&us, key, q, 10, expected(24, 10, NULL, NULL));
	snprintf(q, sizeof q, "until=%s", since);
	expect_pages(&us, key, q, 10, expected(9, 0, NULL, "tie-c,tie-b,tie-a"));
	/* An offset given with since: the same instant in UTC. */
	snprintf(q, sizeof q, "since=%.19s%%2B00:00", since);
	expect_pages(&us, key, q, 100, expected(24, 10, NULL, NULL));

	/* Bad parameters: 400 naming the parameter. */
	static const struct {
		const char *query, *field;
	} bad[] = {
		{ "limit=0", "limit" },      { "limit=1001", "limit" }, { "limit=abc", "limit" },
		{ "limit=-1", "limit" },     { "cursor=garbage", "cursor" },
		{ "since=yesterday", "since" }, { "until=2024-13-01T00:00:00Z", "until" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		get(&r, &us, key, it_fmt("/v1/events?%s", bad[i].query));
		ck_assert_msg(r.status == 400, "?%s: %ld: %s", bad[i].query, r.status, r.raw.body);
		EXPECT_PROBLEM(&r, 400, "validation_failed", bad[i].field);
		res_free(&r);
	}
	/* A cursor of one tenant means nothing to the other. */
	list_ids(&us, key, "/v1/events?limit=3", ids, sizeof ids, cursor, sizeof cursor);
	ck_assert_str_eq(ids, "p24,p23,p22");
	CURL *c = curl_easy_init();
	char *esc = curl_easy_escape(c, cursor, 0);
	get(&r, &us, kother, it_fmt("/v1/events?limit=3&cursor=%s", esc));
	curl_free(esc);
	curl_easy_cleanup(c);
	if (r.status == 200) {
		json_t *e;
		size_t i;
		json_array_foreach(json_object_get(r.json, "items"), i, e) {
			int n = atoi(it_js(e, "id") + 1);
			ck_assert_msg(n >= 90, "the other tenant's page lists %s", it_js(e, "id"));
		}
	} else
		EXPECT_PROBLEM(&r, 400, "validation_failed", "cursor");
	res_free(&r);
	/* Unknown id: 404. */
	get(&r, &us, key, "/v1/events/p99");
	EXPECT_PROBLEM_SOME(&r, 404, "not_found", NULL);
	res_free(&r);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 10. GET /v1/tenant reports usage                                    */

/* A usage figure that is not known yet must say so: known false and
 * events, remaining and as_of null, never a 0 that reads as "nothing
 * used". Returns whether the figure is known. */
static int usage_known(const struct res *r)
{
	json_t *u = json_object_get(r->json, "usage");
	ck_assert_msg(json_is_object(u), "no usage: %s", r->raw.body);
	json_t *known = json_object_get(u, "known");
	ck_assert_msg(json_is_boolean(known), "usage.known is not a boolean: %s", r->raw.body);
	if (json_is_true(known))
		return 1;
	ck_assert_msg(json_is_null(json_object_get(u, "events")) && json_is_null(json_object_get(u, "remaining")) &&
	                  json_is_null(json_object_get(u, "as_of")),
	              "usage not known yet, but events, remaining or as_of are not null: %s", r->raw.body);
	return 0;
}

/* Waits up to `wait_ms` until GET /v1/tenant on `d` reports `events`
 * (0: the first answer must), checking every answer on the way: an
 * unknown figure said to be unknown, a known one never above `events`. */
static void expect_tenant_usage(const struct dp *d, const char *key, const struct tenant *t, long long events,
                                long long limit, int wait_ms)
{
	char period[8];
	this_period(period);
	long t0 = it_now_ms();
	for (;;) {
		struct res r;
		get(&r, d, key, "/v1/tenant");
		EXPECT(&r, 200);
		json_t *u = json_object_get(r.json, "usage");
		json_t *tn = json_object_get(r.json, "tenant");
		ck_assert_msg(!strcmp(it_js(tn, "id"), t->id) && !strcmp(it_js(tn, "slug"), t->slug) &&
		                  !strcmp(it_js(tn, "status"), "active") && !strcmp(it_js(tn, "region"), "us"),
		              "tenant: %s", r.raw.body);
		ck_assert_msg(json_is_object(u), "no usage: %s", r.raw.body);
		ck_assert_msg(!strcmp(it_js(u, "period"), period), "usage.period: %s", r.raw.body);
		long long got = -1;
		if (usage_known(&r)) {
			ck_assert_msg(json_is_integer(json_object_get(u, "events")) &&
			                  json_is_integer(json_object_get(u, "remaining")),
			              "usage: %s", r.raw.body);
			const char *as_of = it_js(u, "as_of");
			ck_assert_msg(strlen(as_of) >= 20 && as_of[4] == '-' && as_of[10] == 'T', "usage.as_of: %s", r.raw.body);
			got = (long long)json_integer_value(json_object_get(u, "events"));
			long long rem = (long long)json_integer_value(json_object_get(u, "remaining"));
			ck_assert_msg(got <= events, "usage.events %lld > %lld ingested", got, events);
			if (got == events) {
				ck_assert_msg(rem == (limit - events > 0 ? limit - events : 0), "remaining %lld: %s", rem, r.raw.body);
				res_free(&r);
				return;
			}
		}
		ck_assert_msg(it_now_ms() - t0 < wait_ms, "usage.events %lld (-1: unknown) after %d ms, want %lld: %s", got,
		              wait_ms, events, r.raw.body);
		res_free(&r);
		usleep(50000);
	}
}

START_TEST(tenant_usage)
{
	struct tenant t;
	struct dp us, us2;
	char key[200];
	struct res r;
	new_plan("metered", 1000, 1000, 100, 30);
	new_tenant(&t, "tusage", "us", "metered");
	new_key(&t, "rw", key, NULL);
	dp_prepare(&us, "us", "tu");
	dp_clone(&us2, &us, "tu2");
	dp_start(&us);
	dp_start(&us2);

	/* Nothing stored yet: 0 once each instance has read it. */
	expect_tenant_usage(&us, key, &t, 0, 100, SLOW_MS);
	expect_tenant_usage(&us2, key, &t, 0, 100, SLOW_MS);
	post(&r, &us, key, it_fmt("{\"events\":[%s,%s,%s,%s]}", ev("u1", "a", "u"), ev("u2", "a", "u"),
	                       ev("u3", "a", "u"), ev("u4", "a", "u")));
	EXPECT(&r, 201);
	res_free(&r);
	for (int i = 0; i < 3; i++) {
		post(&r, &us, key, ev(NULL, "a", "u"));
		EXPECT(&r, 201);
		res_free(&r);
	}
	post(&r, &us, key, ev("u1", "a", "u")); /* a replay: not usage */
	EXPECT(&r, 200);
	res_free(&r);
	/* This instance counts its own at once; another at its next refresh
	 * (DP_USAGE_REFRESH=1s; waited for, not timed: a loaded machine may
	 * run the refresher late). */
	expect_tenant_usage(&us, key, &t, 7, 100, 0);
	expect_tenant_usage(&us2, key, &t, 7, 100, SLOW_MS);
	/* And the other way round. */
	post(&r, &us2, key, ev("u5", "a", "u"));
	EXPECT(&r, 201);
	res_free(&r);
	expect_tenant_usage(&us2, key, &t, 8, 100, 0);
	expect_tenant_usage(&us, key, &t, 8, 100, SLOW_MS);
	/* Near the quota, remaining is what is left. */
	char *many = malloc(100 * 80);
	size_t n = (size_t)sprintf(many, "{\"events\":[");
	for (int i = 0; i < 92; i++)
		n += (size_t)sprintf(many + n, "%s{\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"t\"}}", i ? "," : "");
	strcpy(many + n, "]}");
	post(&r, &us, key, many);
	EXPECT(&r, 201);
	res_free(&r);
	free(many);
	expect_tenant_usage(&us, key, &t, 100, 100, 0);
	expect_tenant_usage(&us2, key, &t, 100, 100, SLOW_MS);
	ck_assert_int_eq(counted(&us, &t), 100);
}
END_TEST

/* Until a data plane has read a tenant's usage, GET /v1/tenant says the
 * figure is unknown (known false, events/remaining/as_of null), never 0;
 * once read, it is the real figure. The refresher is held off by a lock
 * on the counters, so the unknown state lasts as long as the test wants. */
START_TEST(tenant_usage_unknown)
{
	struct tenant t;
	struct dp us;
	char key[200];
	struct res r;
	new_plan("metered", 1000, 1000, 100, 30);
	new_tenant(&t, "tunknown", "us", "metered");
	new_key(&t, "rw", key, NULL);
	dp_prepare(&us, "us", "tk");
	PGconn *pg = PQconnectdb(us.db);
	ck_assert_msg(PQstatus(pg) == CONNECTION_OK, "connect: %s", PQerrorMessage(pg));
	PGresult *res = PQexec(pg, "BEGIN; LOCK TABLE usage_counters IN ACCESS EXCLUSIVE MODE");
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "lock: %s", PQresultErrorMessage(res));
	PQclear(res);
	dp_start(&us);
	for (int i = 0; i < 5; i++) {
		get(&r, &us, key, "/v1/tenant");
		EXPECT(&r, 200);
		ck_assert_msg(!usage_known(&r), "usage known while the counters cannot be read: %s", r.raw.body);
		res_free(&r);
		usleep(100000);
	}
	res = PQexec(pg, "ROLLBACK");
	PQclear(res);
	PQfinish(pg);
	expect_tenant_usage(&us, key, &t, 0, 100, SLOW_MS);
}
END_TEST

/* ------------------------------------------------------------------ */
/* More: RateLimit headers, concurrent retries, exact quota, full queue */

/* Every answer of the events routes to an authenticated tenant carries
 * RateLimit-Limit, -Remaining and -Reset (the contract's "every answer"). */
START_TEST(ratelimit_headers_on_every_answer)
{
	struct tenant t;
	struct dp us;
	char key[200], kro[200], kwo[200], missing[4096] = "";
	size_t nm = 0;
	struct res r;
	new_plan("roomy", 1000, 1000, 3, 30);
	new_tenant(&t, "rlh", "us", "roomy");
	new_key(&t, "rw", key, NULL);
	new_key(&t, "r", kro, NULL);
	new_key(&t, "w", kwo, NULL);
	dp_prepare(&us, "us", "rlh");
	dp_start(&us);

	struct {
		const char *what, *method, *path, *k, *body, *ctype;
		long status;
	} calls[] = {
		{ "stored", "POST", "/v1/events", key, keep(ev("h1", "a", "u")), NULL, 201 },
		{ "replayed", "POST", "/v1/events", key, keep(ev("h1", "a", "u")), NULL, 200 },
		{ "conflict", "POST", "/v1/events", key, keep(ev("h1", "b", "u")), NULL, 409 },
		{ "validation", "POST", "/v1/events", key, "{\"action\":\"a\"}", NULL, 400 },
		{ "invalid json", "POST", "/v1/events", key, "{", NULL, 400 },
		{ "media type", "POST", "/v1/events", key, keep(ev("h2", "a", "u")), "text/plain", 415 },
		{ "quota", "POST", "/v1/events", key,
		  keep(it_fmt("{\"events\":[%s,%s,%s]}", ev("h3", "a", "u"), ev("h4", "a", "u"), ev("h5", "a", "u"))), NULL, 429 },
		{ "scope (write)", "POST", "/v1/events", kro, keep(ev("h6", "a", "u")), NULL, 403 },
		{ "list", "GET", "/v1/events", key, NULL, NULL, 200 },
		{ "bad limit", "GET", "/v1/events?limit=0", key, NULL, NULL, 400 },
		{ "by id", "GET", "/v1/events/h1", key, NULL, NULL, 200 },
		{ "unknown id", "GET", "/v1/events/nope", key, NULL, NULL, 404 },
		{ "scope (read list)", "GET", "/v1/events", kwo, NULL, NULL, 403 },
		{ "scope (read id)", "GET", "/v1/events/h1", kwo, NULL, NULL, 403 },
	};
	for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
		dp_call(&r, &us, calls[i].method, calls[i].path, calls[i].k, calls[i].body,
		        calls[i].body ? strlen(calls[i].body) : 0, calls[i].ctype);
		ck_assert_msg(r.status == calls[i].status, "%s: %ld, want %ld: %s", calls[i].what, r.status,
		              calls[i].status, r.raw.body);
		char v[32];
		int ok = it_header(&r.raw, "RateLimit-Limit", v, sizeof v) == 0 && atol(v) == 1000 &&
		         it_header(&r.raw, "RateLimit-Remaining", v, sizeof v) == 0 &&
		         it_header(&r.raw, "RateLimit-Reset", v, sizeof v) == 0;
		if (!ok)
			nm += (size_t)snprintf(missing + nm, sizeof missing - nm, "%s%s %s -> %ld (%s)", nm ? "; " : "",
			                       calls[i].method, calls[i].path, r.status, calls[i].what);
		res_free(&r);
	}
	ck_assert_msg(nm == 0, "answers without RateLimit-Limit/-Remaining/-Reset: %s", missing);
}
END_TEST

struct shot {
	const char *url, *auth, *body;
	long status;
	int replayed;
	char out[4096];
};

static void *shot_main(void *arg)
{
	struct shot *x = arg;
	const char *const h[] = { x->auth, "Content-Type: application/json", NULL };
	struct it_resp r;
	char v[32];
	it_http(&r, "POST", x->url, h, x->body, strlen(x->body));
	x->status = r.status;
	x->replayed = it_header(&r, "Idempotent-Replayed", v, sizeof v) == 0 && !strcasecmp(v, "true");
	snprintf(x->out, sizeof x->out, "%s", r.body);
	it_resp_free(&r);
	return NULL;
}

/* `n` simultaneous POSTs of bodies[i], alternating between the instances. */
static void volley(struct shot *shots, int n, struct dp *const *inst, int ninst, const char *key,
                   const char *const *bodies)
{
	static char urls[4][128];
	static char auth[300];
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
	for (int i = 0; i < ninst; i++)
		snprintf(urls[i], sizeof urls[i], "%s/v1/events", inst[i]->url);
	for (int i = 0; i < n; i++) {
		memset(&shots[i], 0, sizeof shots[i]);
		shots[i].url = urls[i % ninst];
		shots[i].auth = auth;
		shots[i].body = bodies[i];
	}
	run_at_once(shots, sizeof shots[0], n, shot_main);
}

/* The same event sent at once to two instances, twelve times: stored once,
 * one 201 and eleven replays, all the same event; other content under
 * one id at once: one 201, the rest 409. */
START_TEST(concurrent_retries)
{
	enum { N = 12 };
	struct tenant t;
	struct dp us, us2;
	char key[200];
	struct shot shots[N];
	const char *bodies[N];
	new_plan("bulk", 1000000, 1000000, 1000000000, 30);
	new_tenant(&t, "race", "us", "bulk");
	new_key(&t, "rw", key, NULL);
	dp_prepare(&us, "us", "race");
	dp_clone(&us2, &us, "race2");
	dp_start(&us);
	dp_start(&us2);
	struct dp *const both[] = { &us, &us2 };

	for (int round = 0; round < 3; round++) {
		const char *same = keep(it_fmt("{\"id\":\"same-%d\",\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"t\"},"
		                            "\"metadata\":{\"n\":%d}}", round, round));
		for (int i = 0; i < N; i++)
			bodies[i] = same;
		volley(shots, N, both, 2, key, bodies);
		int created = 0, replays = 0;
		json_t *first = NULL;
		for (int i = 0; i < N; i++) {
			ck_assert_msg(shots[i].status == 201 || (shots[i].status == 200 && shots[i].replayed),
			              "round %d shot %d: %ld (replayed %d): %s", round, i, shots[i].status, shots[i].replayed,
			              shots[i].out);
			created += shots[i].status == 201;
			replays += shots[i].status == 200;
			json_t *j = json_loads(shots[i].out, 0, NULL);
			ck_assert_ptr_nonnull(j);
			if (!first)
				first = j;
			else {
				ck_assert_msg(json_equal(first, j), "round %d: answers differ:\n%s\n%s", round, shots[0].out,
				              shots[i].out);
				json_decref(j);
			}
		}
		json_decref(first);
		ck_assert_msg(created == 1 && replays == N - 1, "round %d: %d created, %d replayed", round, created, replays);
	}
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < N; i++)
			bodies[i] = keep(it_fmt("{\"id\":\"diff-%d\",\"action\":\"a.%d\",\"actor\":{\"id\":\"u\",\"type\":\"t\"}}",
			                     round, i));
		volley(shots, N, both, 2, key, bodies);
		int created = 0, conflicts = 0;
		for (int i = 0; i < N; i++) {
			json_t *j = json_loads(shots[i].out, 0, NULL);
			ck_assert_msg(shots[i].status == 201 ||
			                  (shots[i].status == 409 && j && !strcmp(it_js(j, "field"), "id") && !shots[i].replayed),
			              "round %d shot %d: %ld: %s", round, i, shots[i].status, shots[i].out);
			created += shots[i].status == 201;
			conflicts += shots[i].status == 409;
			json_decref(j);
		}
		ck_assert_msg(created == 1 && conflicts == N - 1, "round %d: %d created, %d conflicts", round, created,
		              conflicts);
	}
	/* Events partitioned by week keep (tenant_id, id) unique within a
	 * partition only: copies of one id whose occurred_at fall in different
	 * weeks (this one, 8 and 15 days ago) and in the DEFAULT partition
	 * are still one event. */
	wait_partitioned(&us);
	for (int round = 0; round < 8; round++) {
		for (int i = 0; i < N; i++) {
			char at[32];
			api_time(time(NULL) - (time_t)(i % 3) * 8 * 86400 - (time_t)(round % 4) * 2 * 86400, i, at);
			bodies[i] = keep(it_fmt("{\"id\":\"weeks-%d\",\"occurred_at\":\"%s\",\"action\":\"a\","
			                     "\"actor\":{\"id\":\"u\",\"type\":\"t\"}}",
			                     round, at));
		}
		volley(shots, N, both, 2, key, bodies);
		int created = 0, conflicts = 0;
		for (int i = 0; i < N; i++) {
			created += shots[i].status == 201;
			conflicts += shots[i].status == 409;
		}
		ck_assert_msg(created == 1 && conflicts == N - 1, "weeks round %d: %d created, %d conflicts", round,
		              created, conflicts);
		ck_assert_int_eq(sqll(us.db, it_fmt("SELECT count(*) FROM events WHERE tenant_id = '%s' AND id = 'weeks-%d'",
		                                    t.id, round)),
		                 1);
	}
	ck_assert_int_eq(stored(&us, &t), 13);
	ck_assert_int_eq(counted(&us, &t), 13);
	keep_free();
}
END_TEST

/* A quota of 60 under concurrent load on two instances, with and without
 * ids, singles and batches: exactly 60 events stored and acknowledged. */
START_TEST(quota_exact_across_instances)
{
	struct tenant t;
	struct dp us, us2;
	char key[200], period[8];
	struct res r;
	struct loader a, b;
	this_period(period);
	new_plan("sixty", 1000000, 1000000, 60, 30);
	new_tenant(&t, "exact", "us", "sixty");
	new_key(&t, "rw", key, NULL);
	dp_prepare(&us, "us", "exact");
	/* One writer each: requests pile up into groups. */
	us.extra[0] = "DP_INGEST_WRITERS=1";
	dp_clone(&us2, &us, "exact2");
	dp_start(&us);
	dp_start(&us2);

	loader_start(&a, &us, key, 8, 2, "A");
	loader_start(&b, &us2, key, 8, -1, "B");
	long t0 = it_now_ms();
	while ((loader_count(&a, 429) < 20 || loader_count(&b, 429) < 20) && it_now_ms() - t0 < 5000)
		usleep(20000);
	loader_stop(&a);
	loader_stop(&b);
	ck_assert_msg(loader_others(&a, 201, 429) == 0 && loader_others(&b, 201, 429) == 0,
	              "answers other than 201 and 429: %s / %s", a.last_bad, b.last_bad);
	fprintf(stderr, "  quota: %ld + %ld events acknowledged, %ld + %ld refused\n", a.events_acked, b.events_acked,
	        a.status[429], b.status[429]);
	ck_assert_msg(a.events_acked + b.events_acked == 60, "%ld + %ld events acknowledged with a quota of 60",
	              a.events_acked, b.events_acked);
	ck_assert_int_eq(stored(&us, &t), 60);
	ck_assert_int_eq(counted(&us, &t), 60);
	ck_assert_int_eq(acked_stored(&us, &t, &a), (long long)a.nids);
	post(&r, &us, key, ev("after", "a", "u"));
	expect_quota_n(&r, 60, 60, period, __LINE__);
	res_free(&r);
	post(&r, &us2, key, ev(NULL, "a", "u"));
	expect_quota_n(&r, 60, 60, period, __LINE__);
	res_free(&r);
	free(a.ids);
	free(b.ids);
}
END_TEST

/* More requests than DP_INGEST_QUEUE_MAX lets wait: 503 with Retry-After,
 * nothing else; what was acknowledged is stored and counted. */
START_TEST(ingest_queue_full)
{
	struct tenant t;
	struct dp us;
	char key[200];
	struct loader l;
	new_plan("bulk", 1000000, 1000000, 1000000000, 30);
	new_tenant(&t, "queue", "us", "bulk");
	new_key(&t, "rw", key, NULL);
	dp_prepare(&us, "us", "queue");
	us.extra[0] = "DP_INGEST_QUEUE_MAX=1";
	us.extra[1] = "DP_INGEST_WRITERS=1";
	dp_start(&us);

	loader_start(&l, &us, key, 12, 0, "Q");
	long t0 = it_now_ms();
	while ((loader_count(&l, 503) < 5 || loader_count(&l, 201) < 20) && it_now_ms() - t0 < 5000)
		usleep(20000);
	loader_stop(&l);
	fprintf(stderr, "  queue full: %ld stored, %ld refused with 503\n", l.status[201], l.status[503]);
	ck_assert_msg(loader_others(&l, 201, 503) == 0, "answers other than 201 and 503: the last %s", l.last_bad);
	ck_assert_msg(l.status[503] > 0, "no 503 with 12 clients and a queue of 1");
	ck_assert_msg(l.no_retry_after == 0, "%ld 503s without Retry-After", l.no_retry_after);
	ck_assert_int_gt(l.status[201], 0);
	ck_assert_int_eq(acked_stored(&us, &t, &l), (long long)l.nids);
	ck_assert_int_eq(stored(&us, &t), (long long)l.nids);
	ck_assert_int_eq(counted(&us, &t), (long long)l.nids);
	free(l.ids);
}
END_TEST

/* Pages of GET /v1/events over events spread across 40 weeks (empty weeks,
 * dense ones, ties of one instant, some before the weekly partitions),
 * newest and oldest first, by 1, 7, 50 and 200, with and without an action
 * filter and a time range: each event once, in the database's own order
 * (a statement per window of weeks, data-plane/db_events.c). */
START_TEST(listing_across_weeks)
{
	struct tenant t;
	struct dp us;
	char key[200], t1[32], t2[32];
	new_plan("wide", 1000000, 1000000, 1000000000, 365);
	new_tenant(&t, "weeks-list", "us", "wide");
	new_key(&t, "rw", key, NULL);
	dp_prepare(&us, "us", "wl");
	dp_start(&us);
	wait_partitioned(&us);
	/* 160 events, g seconds apart in clusters: g % 16 picks one of 16
	 * weeks among the last 40 (weeks 5..12 and 20..27 empty), and every
	 * tenth shares its instant with the one before. */
	char *c = it_sql(us.db, it_fmt(
		"WITH ins AS (INSERT INTO events (tenant_id, id, occurred_at, received_at, action, actor_id, "
		"content_sha256, body) SELECT '%s', 'lw-' || g, o, o, a, 'u', sha256(convert_to('lw-' || g, 'UTF8')), "
		"json_build_object('id', 'lw-' || g, 'occurred_at', to_char(o AT TIME ZONE 'UTC', "
		"'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), 'action', a, 'actor', json_build_object('id', 'u', 'type', 'user'), "
		"'targets', '[]'::json, 'context', '{}'::json, 'metadata', '{}'::json) "
		"FROM generate_series(1, 160) g, LATERAL (SELECT (ARRAY[0, 1, 2, 3, 4, 13, 14, 15, 16, 17, 18, 19, 28, 33, "
		"36, 39])[1 + g %% 16] AS wk, CASE WHEN g %% 3 = 0 THEN 'doc.write' ELSE 'doc.read' END AS a) k, "
		"LATERAL (SELECT now() - interval '1 hour' - k.wk * interval '7 days' - "
		"(g - CASE WHEN g %% 10 = 0 THEN 1 ELSE 0 END) * interval '1 second' AS o) x RETURNING 1) "
		"SELECT count(*) FROM ins",
		t.id));
	ck_assert_str_eq(c, "160");
	free(c);
	api_time(time(NULL) - 200 * 86400, 0, t1);
	api_time(time(NULL) - 20 * 86400, 0, t2);
	const struct {
		const char *query, *where;
	} cases[] = {
		{ "", "true" },
		{ "action=doc.write", "action = 'doc.write'" },
		{ keep(it_fmt("since=%s&until=%s", t1, t2)),
		  keep(it_fmt("occurred_at >= '%s'::timestamptz AND occurred_at < '%s'::timestamptz", t1, t2)) },
		{ "until=1970-01-06T00:00:00Z", "false" },
		{ "since=1970-01-01T00:00:00Z&until=1970-01-12T00:00:00Z", "false" },
	};
	static const int limits[] = { 1, 7, 50, 200 };
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		for (int asc = 0; asc < 2; asc++) {
			char *want = it_sql(us.db, it_fmt("SELECT coalesce(string_agg(id, ',' ORDER BY occurred_at %s, seq %s), '')"
			                                  " FROM events WHERE tenant_id = '%s' AND %s",
			                                  asc ? "ASC" : "DESC", asc ? "ASC" : "DESC", t.id, cases[i].where));
			ck_assert_ptr_nonnull(want);
			const char *q = asc ? keep(it_fmt("%s%sorder=asc", cases[i].query, *cases[i].query ? "&" : ""))
			                    : cases[i].query;
			for (size_t l = 0; l < sizeof limits / sizeof limits[0]; l++)
				expect_pages(&us, key, q, limits[l], want);
			free(want);
		}
	/* An export has no retention bound: a range in 1970's first weeks
	 * (windows of weeks before the epoch) holds nothing, nor does a page
	 * oldest first from there. */
	static const char *const empty[] = { "until=1970-01-06T00:00:00Z", "until=1970-01-12T00:00:00Z&order=asc",
		                             "since=1970-01-01T00:00:00Z&until=1970-01-06T00:00:00Z&order=asc" };
	for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++) {
		struct it_resp r;
		const char *const h[] = { it_fmt("Authorization: Bearer %s", key), NULL };
		it_http(&r, "GET", it_fmt("%s/v1/events/export?format=ndjson&%s", us.url, empty[i]), h, NULL, 0);
		ck_assert_msg(r.status == 200, "export?%s: %ld %.300s", empty[i], r.status, r.body);
		/* Every line is the log's trailer: none is an event. */
		for (char *line = r.body, *nl; line && *line; line = nl ? nl + 1 : NULL) {
			nl = strchr(line, '\n');
			json_t *j = json_loadb(line, nl ? (size_t)(nl - line) : strlen(line), 0, NULL);
			ck_assert_msg(j && (json_object_get(j, "log") || json_object_get(j, "checkpoint")),
			              "export?%s holds an event: %.200s", empty[i], line);
			json_decref(j);
		}
		it_resp_free(&r);
	}
	keep_free();
}
END_TEST

Suite *events_suite(void)
{
	Suite *s = suite_create("events");
	const TTest *const tests[] = {
		tenant_isolation, misdirected_key, idempotent_retries, validation, quota, rate_limit, retention,
		partitioned_weeks, ids_indexed_later, contract_waits_for_fleet, listing_across_weeks, usage_exactly_once, sigkill_under_load, pg_restart_under_load, list_filters_and_pages, tenant_usage,
		tenant_usage_unknown, ratelimit_headers_on_every_answer, concurrent_retries, quota_exact_across_instances, ingest_queue_full,
	};
	it_add_tests(s, tests, sizeof tests / sizeof tests[0], setup, teardown, 60);
	return s;
}
