/* What POST /v1/events promises beyond storing events, from outside: a
 * control plane and one data plane of region "us" (it_stack_start), the
 * regional database looked at directly.
 *
 *   idempotency_key_replay       same key and body: the first answer byte for byte (status, body,
 *                                Location); another body: 422; a malformed key: 400; refusals not kept
 *   idempotency_key_concurrent   one key sent at once many times: stored once, every answer the same;
 *                                two bodies under one key at once: one stored, the other body 422
 *   idempotency_key_per_tenant   one key used by two tenants: two independent records
 *   idempotency_key_expiry       past DP_IDEMPOTENCY_TTL a key is new again, and its record is purged
 *   batch_errors_all_named       a refused batch names every invalid member, up to 100, both ends
 *   suspension_reads_not_writes  {active, suspended} x {read, write, both keys} x {GET, POST}
 *
 * CK_RUN_SUITE=write-rules (and CK_RUN_CASE=<test>) runs them alone. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixtures.h"

/* The deadline of a wait for a background task (a config pull, a purge):
 * generous for a loaded machine under ASan; the wait ends when it is done. */
#define SLOW_MS 30000

static json_t *parse(const char *text)
{
	json_t *j = json_loads(text, 0, NULL);
	ck_assert_msg(j != NULL, "not JSON: %.300s", text);
	return j;
}

/* A tenant of the stack's region on plan "pro"; its id into `tenant`. */
static void new_tenant(const struct it_stack *s, const char *slug, char tenant[40])
{
	struct it_resp r;
	it_stack_admin(s, &r, "POST", "/v1/tenants",
	               it_fmt("{\"name\":\"%s\",\"slug\":\"%s\",\"region\":\"%s\",\"plan\":\"pro\"}", slug, slug,
	                      s->region));
	ck_assert_msg(r.status == 201, "POST /v1/tenants: %ld %.300s", r.status, r.body);
	json_t *j = parse(r.body);
	snprintf(tenant, 40, "%s", it_js(j, "id"));
	json_decref(j);
	it_resp_free(&r);
}

/* A key of `tenant` with `scopes` (a JSON array's members). */
static void new_key(const struct it_stack *s, const char *tenant, const char *scopes, char key[200])
{
	struct it_resp r;
	it_stack_admin(s, &r, "POST", it_fmt("/v1/tenants/%s/api-keys", tenant),
	               it_fmt("{\"name\":\"k\",\"scopes\":[%s]}", scopes));
	ck_assert_msg(r.status == 201, "POST api-keys: %ld %.300s", r.status, r.body);
	json_t *j = parse(r.body);
	snprintf(key, 200, "%s", it_js(j, "secret"));
	json_decref(j);
	it_resp_free(&r);
}

/* One call to the data plane with `key`, and an Idempotency-Key header
 * line when `idem` is not NULL (sent as is: "Idempotency-Key: x"). */
static void dp(struct res *r, const struct it_stack *s, const char *method, const char *path, const char *key,
               const char *idem_line, const char *body)
{
	char auth[1300];
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
	const char *h[] = { auth, "Content-Type: application/json", idem_line, NULL };
	res_call(r, method, it_fmt("%s%s", s->dp_url, path), h, body, body ? strlen(body) : 0);
}

static void post(struct res *r, const struct it_stack *s, const char *key, const char *idem, const char *body)
{
	char line[400];
	if (idem)
		snprintf(line, sizeof line, "Idempotency-Key: %s", idem);
	dp(r, s, "POST", "/v1/events", key, idem ? line : NULL, body);
}

static long long sql_n(const struct it_stack *s, const char *sql)
{
	return sqll(s->dp_db, sql);
}

static long long events_of(const struct it_stack *s, const char *tenant)
{
	return sql_n(s, it_fmt("SELECT count(*) FROM events WHERE tenant_id = '%s'", tenant));
}

static long long records_of(const struct it_stack *s, const char *tenant)
{
	return sql_n(s, it_fmt("SELECT count(*) FROM idempotency_keys WHERE tenant_id = '%s'", tenant));
}

static int header_is(const struct res *r, const char *name, const char *want)
{
	char v[512];
	if (it_header(&r->raw, name, v, sizeof v) != 0)
		return want == NULL;
	return want && !strcmp(v, want);
}

/* The replay `b` is the answer `a` again: status, Location, body bytes. */
static void expect_same_answer(const struct res *a, const struct res *b, int line)
{
	char la[512] = "", lb[512] = "";
	it_header(&a->raw, "Location", la, sizeof la);
	it_header(&b->raw, "Location", lb, sizeof lb);
	ck_assert_msg(a->status == b->status, "line %d: status %ld then %ld", line, a->status, b->status);
	ck_assert_msg(!strcmp(la, lb), "line %d: Location '%s' then '%s'", line, la, lb);
	ck_assert_msg(a->raw.len == b->raw.len && !memcmp(a->raw.body, b->raw.body, a->raw.len),
	              "line %d: body\n  %.400s\nthen\n  %.400s", line, a->raw.body, b->raw.body);
}

#define EV(action) "{\"action\":\"" action "\",\"actor\":{\"id\":\"u-1\",\"type\":\"user\"}}"

/* A client retrying a request under its Idempotency-Key gets the first
 * answer again, byte for byte, and nothing is stored twice, whether the
 * events carry ids or not; reusing a key for another request is 422, a
 * malformed key 400, and a refused request leaves its key unused. */
START_TEST(idempotency_key_replay)
{
	struct it_stack s;
	struct res a, b;
	it_stack_start(&s, "us", NULL, NULL);

	/* A single event without an id: 201 with Location, then replays. */
	post(&a, &s, s.key, "single-1", EV("doc.read"));
	EXPECT(&a, 201);
	char want_loc[200];
	snprintf(want_loc, sizeof want_loc, "/v1/events/%s", it_js(a.json, "id"));
	ck_assert_msg(header_is(&a, "Location", want_loc), "Location of a single event: %.300s", a.raw.headers);
	ck_assert(!replayed(&a));
	for (int i = 0; i < 3; i++) {
		post(&b, &s, s.key, "single-1", EV("doc.read"));
		expect_same_answer(&a, &b, __LINE__);
		ck_assert(replayed(&b));
		res_free(&b);
	}
	ck_assert_int_eq(events_of(&s, s.tenant), 1);
	/* The Location names the stored event. */
	dp(&b, &s, "GET", want_loc, s.key, NULL, NULL);
	EXPECT(&b, 200);
	ck_assert_str_eq(it_js(b.json, "id"), it_js(a.json, "id"));
	res_free(&b);

	/* The same key with another body: 422 unprocessable, nothing stored. */
	post(&b, &s, s.key, "single-1", EV("doc.write"));
	EXPECT_PROBLEM(&b, 422, "unprocessable", NULL);
	ck_assert(!replayed(&b));
	res_free(&b);
	/* One byte more (a space) is another body. */
	post(&b, &s, s.key, "single-1", EV("doc.read") " ");
	EXPECT_PROBLEM(&b, 422, "unprocessable", NULL);
	res_free(&b);
	ck_assert_int_eq(events_of(&s, s.tenant), 1);
	res_free(&a);

	/* A batch: no Location; replayed the same. */
	const char *batch = "{\"events\":[" EV("b.one") "," EV("b.two") "]}";
	post(&a, &s, s.key, "batch-1", batch);
	EXPECT(&a, 201);
	ck_assert_msg(header_is(&a, "Location", NULL), "a batch has no Location: %.300s", a.raw.headers);
	post(&b, &s, s.key, "batch-1", batch);
	expect_same_answer(&a, &b, __LINE__);
	ck_assert(replayed(&b));
	res_free(&a);
	res_free(&b);
	ck_assert_int_eq(events_of(&s, s.tenant), 3);

	/* A client id with a key: 201 Location; the id replay (a new key) is
	 * 200 without Location, and its own key replays that 200. */
	const char *named = "{\"id\":\"named-1\",\"action\":\"n\",\"actor\":{\"id\":\"u\",\"type\":\"t\"}}";
	post(&a, &s, s.key, "named-a", named);
	EXPECT(&a, 201);
	ck_assert(header_is(&a, "Location", "/v1/events/named-1"));
	res_free(&a);
	post(&a, &s, s.key, "named-b", named);
	EXPECT(&a, 200);
	ck_assert(replayed(&a) && header_is(&a, "Location", NULL));
	post(&b, &s, s.key, "named-b", named);
	expect_same_answer(&a, &b, __LINE__);
	res_free(&a);
	res_free(&b);
	ck_assert_int_eq(events_of(&s, s.tenant), 4);

	/* Malformed keys: 400 validation_failed naming the header, nothing stored;
	 * 255 characters is a key, 256 is not. */
	char k255[256], k256[257];
	memset(k255, 'k', 255);
	k255[255] = '\0';
	memset(k256, 'k', 256);
	k256[256] = '\0';
	const char *bad[] = { k256, "two words", "caf\xc3\xa9", "tab\there" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		post(&b, &s, s.key, bad[i], EV("bad.key"));
		EXPECT_PROBLEM(&b, 400, "validation_failed", "Idempotency-Key");
		res_free(&b);
	}
	/* An empty value (curl's "Name;" sends the header with nothing). */
	dp(&b, &s, "POST", "/v1/events", s.key, "Idempotency-Key;", EV("bad.key"));
	EXPECT_PROBLEM(&b, 400, "validation_failed", "Idempotency-Key");
	res_free(&b);
	ck_assert_int_eq(events_of(&s, s.tenant), 4);
	post(&a, &s, s.key, k255, EV("long.key"));
	EXPECT(&a, 201);
	post(&b, &s, s.key, k255, EV("long.key"));
	expect_same_answer(&a, &b, __LINE__);
	res_free(&a);
	res_free(&b);
	ck_assert_int_eq(events_of(&s, s.tenant), 5);

	/* Refusals are not kept: a 400 or a 409 under a key leaves the key free
	 * for the corrected request. */
	post(&b, &s, s.key, "fix-me", "{\"action\":\"x\"}");
	EXPECT_PROBLEM(&b, 400, "validation_failed", "actor");
	res_free(&b);
	const char *clash = "{\"id\":\"named-1\",\"action\":\"other\",\"actor\":{\"id\":\"u\",\"type\":\"t\"}}";
	post(&b, &s, s.key, "fix-me", clash);
	EXPECT_PROBLEM(&b, 409, "conflict", "id");
	res_free(&b);
	post(&b, &s, s.key, "fix-me", EV("fixed"));
	EXPECT(&b, 201);
	res_free(&b);
	ck_assert_int_eq(events_of(&s, s.tenant), 6);
	/* Every record is the tenant's: one per key that was answered 2xx. */
	ck_assert_int_eq(records_of(&s, s.tenant), 6);
	ck_assert_int_eq(sql_n(&s, "SELECT count(*) FROM idempotency_keys WHERE status = 0"), 0);
	it_stack_stop(&s);
}
END_TEST

struct shot {
	const struct it_stack *s;
	const char *idem, *body;
	struct res r;
};

static void *shot_main(void *arg)
{
	struct shot *x = arg;
	post(&x->r, x->s, x->s->key, x->idem, x->body);
	return NULL;
}

/* Retries racing each other (a client timing out and retrying while the
 * first attempt is still committing, or two workers sharing a key) store
 * the request once: every answer is the one stored answer. Two bodies
 * racing under one key: one is stored, the other body gets 422. */
START_TEST(idempotency_key_concurrent)
{
	enum { N = 16, ROUNDS = 4 };
	struct it_stack s;
	struct shot shots[N];
	const char *env[] = { "DP_INGEST_WRITERS=4", NULL };
	it_stack_start(&s, "us", NULL, env);

	for (int round = 0; round < ROUNDS; round++) {
		char idem[32], body[200];
		snprintf(idem, sizeof idem, "race-%d", round);
		snprintf(body, sizeof body, "{\"events\":[" EV("race") "," EV("race.%d") "]}", round);
		for (int i = 0; i < N; i++)
			shots[i] = (struct shot){ .s = &s, .idem = idem, .body = body };
		run_at_once(shots, sizeof shots[0], N, shot_main);
		int firsts = 0;
		for (int i = 0; i < N; i++) {
			EXPECT(&shots[i].r, 201);
			firsts += !replayed(&shots[i].r);
			expect_same_answer(&shots[0].r, &shots[i].r, __LINE__);
		}
		ck_assert_int_eq(firsts, 1);
		for (int i = 0; i < N; i++)
			res_free(&shots[i].r);
		ck_assert_int_eq(events_of(&s, s.tenant), 2 * (round + 1));
	}

	/* Two bodies under one key at once. */
	for (int round = 0; round < ROUNDS; round++) {
		char idem[32], b0[200], b1[200];
		snprintf(idem, sizeof idem, "rivals-%d", round);
		snprintf(b0, sizeof b0, EV("rival.zero"));
		snprintf(b1, sizeof b1, EV("rival.one"));
		for (int i = 0; i < N; i++)
			shots[i] = (struct shot){ .s = &s, .idem = idem, .body = i % 2 ? b1 : b0 };
		run_at_once(shots, sizeof shots[0], N, shot_main);
		int winner = -1;
		for (int i = 0; i < N; i++)
			if (shots[i].r.status == 201 && !replayed(&shots[i].r)) {
				ck_assert_msg(winner < 0, "two first answers under one key");
				winner = i % 2;
			}
		ck_assert_int_ge(winner, 0);
		for (int i = 0; i < N; i++) {
			if (i % 2 == winner)
				EXPECT(&shots[i].r, 201);
			else
				EXPECT_PROBLEM(&shots[i].r, 422, "unprocessable", NULL);
			res_free(&shots[i].r);
		}
		ck_assert_int_eq(events_of(&s, s.tenant), 2 * ROUNDS + round + 1);
	}
	ck_assert_int_eq(records_of(&s, s.tenant), 2 * ROUNDS);
	it_stack_stop(&s);
}
END_TEST

/* A key is the tenant's own: another tenant using the same key is not
 * answered with the first tenant's events (nor refused 422). */
START_TEST(idempotency_key_per_tenant)
{
	struct it_stack s;
	struct res a, b, a2, b2;
	char other[40], okey[200];
	it_stack_start(&s, "us", NULL, NULL);
	new_tenant(&s, "second", other);
	new_key(&s, other, "\"events:write\",\"events:read\"", okey);
	it_stack_sync(&s);

	post(&a, &s, s.key, "shared", EV("first.tenant"));
	EXPECT(&a, 201);
	post(&b, &s, okey, "shared", EV("second.tenant"));
	EXPECT(&b, 201);
	ck_assert(!replayed(&b));
	ck_assert_str_eq(it_js(b.json, "action"), "second.tenant");
	/* The same body too: still the second tenant's own event. */
	post(&b2, &s, okey, "shared-body", EV("same"));
	post(&a2, &s, s.key, "shared-body", EV("same"));
	EXPECT(&b2, 201);
	EXPECT(&a2, 201);
	ck_assert(!replayed(&a2));
	ck_assert_str_ne(it_js(a2.json, "id"), it_js(b2.json, "id"));
	res_free(&a2);
	res_free(&b2);
	/* Each replays its own. */
	post(&a2, &s, s.key, "shared", EV("first.tenant"));
	expect_same_answer(&a, &a2, __LINE__);
	post(&b2, &s, okey, "shared", EV("second.tenant"));
	expect_same_answer(&b, &b2, __LINE__);
	res_free(&a);
	res_free(&b);
	res_free(&a2);
	res_free(&b2);
	ck_assert_int_eq(events_of(&s, s.tenant), 2);
	ck_assert_int_eq(events_of(&s, other), 2);
	ck_assert_int_eq(records_of(&s, s.tenant), 2);
	ck_assert_int_eq(records_of(&s, other), 2);
	it_stack_stop(&s);
}
END_TEST

static long long metric(const struct it_stack *s, const char *line_start)
{
	struct it_resp r;
	it_http(&r, "GET", it_fmt("%s/metrics", s->dp_url), NULL, NULL, 0);
	ck_assert_int_eq(r.status, 200);
	long long v = -1;
	size_t n = strlen(line_start);
	for (const char *p = r.body; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (!strncmp(p, line_start, n) && p[n] == ' ')
			v = atoll(p + n + 1);
	it_resp_free(&r);
	return v;
}

/* A key lives DP_IDEMPOTENCY_TTL: past it, the same key is a new request
 * (whether or not its record was purged yet), and the purge deletes
 * expired records, and only those. */
START_TEST(idempotency_key_expiry)
{
	struct it_stack s;
	struct res a, b;
	/* First no purge in sight: an expired record still in the table. */
	const char *slow[] = { "DP_IDEMPOTENCY_TTL=1s", "DP_IDEMPOTENCY_PURGE_INTERVAL=24h", NULL };
	it_stack_start(&s, "us", NULL, slow);

	post(&a, &s, s.key, "ttl", EV("before"));
	EXPECT(&a, 201);
	res_free(&a);
	long start = it_now_ms();
	while (sql_n(&s, "SELECT count(*) FROM idempotency_keys WHERE created_at < now() - interval '1.2 s'") < 1) {
		ck_assert_msg(it_now_ms() - start < SLOW_MS, "the record never aged");
		usleep(100 * 1000);
	}
	post(&b, &s, s.key, "ttl", EV("after"));
	EXPECT(&b, 201);
	ck_assert(!replayed(&b));
	ck_assert_str_eq(it_js(b.json, "action"), "after");
	res_free(&b);
	ck_assert_int_eq(events_of(&s, s.tenant), 2);
	ck_assert_int_eq(records_of(&s, s.tenant), 1);

	/* Then the purge: expired records go, a fresh one stays. */
	const char *fast[] = { "DP_IDEMPOTENCY_TTL=1s", "DP_IDEMPOTENCY_PURGE_INTERVAL=200ms", NULL };
	it_stack_dp_restart(&s, fast);
	for (int i = 0; i < 3; i++) {
		post(&a, &s, s.key, it_fmt("old-%d", i), EV("old"));
		EXPECT(&a, 201);
		res_free(&a);
	}
	start = it_now_ms();
	while (records_of(&s, s.tenant) > 0) {
		ck_assert_msg(it_now_ms() - start < SLOW_MS, "expired records were never purged");
		usleep(100 * 1000);
	}
	ck_assert_int_ge(metric(&s, "dp_idempotency_keys_deleted_total"), 4);
	/* A key's lifetime is counted from its first answer: one sent just now
	 * is replayed, though older ones were purged a moment ago. */
	post(&a, &s, s.key, "fresh", EV("fresh"));
	post(&b, &s, s.key, "fresh", EV("fresh"));
	expect_same_answer(&a, &b, __LINE__);
	res_free(&a);
	res_free(&b);
	it_stack_stop(&s);
}
END_TEST

/* ---- batch errors ---- */

/* The kinds of fault the test puts in an event, and the field each is
 * reported under. */
enum fault { OK, NO_ACTION, BAD_ACTOR, DUP_ID };

/* A batch of `n` events, the faulty ones at the indexes `bad` says, and
 * the problem it must get. Event i is valid with id "<case letter><i>"; a DUP_ID
 * event repeats the id of the first valid event before it (a NO_ACTION
 * when there is none: the model of what the service sees). */
struct batch_case {
	const char *name;
	int n;
	int (*bad)(int i, int n);
};

static int none(int i, int n) { (void)i; (void)n; return 0; }
static int first_only(int i, int n) { (void)n; return i == 0; }
static int last_only(int i, int n) { return i == n - 1; }
static int first_and_last(int i, int n) { return i == 0 || i == n - 1; }
static int first_100(int i, int n) { (void)n; return i < 100; }
static int first_101(int i, int n) { (void)n; return i < 101; }
static int every_10th_100(int i, int n) { (void)n; return i % 10 == 9; }  /* 100 of 1000 */
static int odd_101(int i, int n) { (void)n; return i % 2 == 1 && i < 203; } /* 101, to index 201 */
static int all(int i, int n) { (void)i; (void)n; return 1; }

static enum fault fault_of(int i, int n, int (*bad)(int, int), int first_valid)
{
	if (!bad(i, n))
		return OK;
	switch (i % 3) {
	case 0: return NO_ACTION;
	case 1: return BAD_ACTOR;
	default: return first_valid >= 0 && first_valid < i ? DUP_ID : NO_ACTION;
	}
}

/* A refused batch names every invalid member in order, up to 100, with
 * `errors_total` and `errors_truncated`; the top-level field and detail
 * are the first's; nothing of it is stored. Tried at 0, 1, 100 and 101
 * invalid members, first and last index, and 1000 events. */
START_TEST(batch_errors_all_named)
{
	struct it_stack s;
	it_stack_start(&s, "us", NULL, NULL);
	static const struct batch_case cases[] = {
		{ "valid batch of 3", 3, none },
		{ "valid batch of 1000", 1000, none },
		{ "first of 3", 3, first_only },
		{ "last of 3", 3, last_only },
		{ "last of 1000", 1000, last_only },
		{ "first and last of 1000", 1000, first_and_last },
		{ "100 first of 150", 150, first_100 },
		{ "101 first of 150", 150, first_101 },
		{ "100 spread over 1000", 1000, every_10th_100 },
		{ "101 spread over 300", 300, odd_101 },
		{ "all 1000", 1000, all },
		{ "the only event", 1, all },
	};
	long long stored = 0;
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		const struct batch_case *k = &cases[c];
		char *body = malloc((size_t)k->n * 120 + 32);
		ck_assert_ptr_nonnull(body);
		size_t len = (size_t)sprintf(body, "{\"events\":[");
		json_t *want = json_array();
		int first_valid = -1, total = 0;
		char pre = "abcdefghijklmnop"[c]; /* each case's ids are new */
		for (int i = 0; i < k->n; i++) {
			enum fault f = fault_of(i, k->n, k->bad, first_valid);
			if (i)
				body[len++] = ',';
			switch (f) {
			case OK:
				len += (size_t)sprintf(body + len, "{\"id\":\"%c%d\",\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"t\"}}",
				                       pre, i);
				if (first_valid < 0)
					first_valid = i;
				break;
			case NO_ACTION:
				len += (size_t)sprintf(body + len, "{\"id\":\"x%d\",\"actor\":{\"id\":\"u\",\"type\":\"t\"}}", i);
				json_array_append_new(want, json_string(it_fmt("events[%d].action", i)));
				break;
			case BAD_ACTOR:
				len += (size_t)sprintf(body + len, "{\"id\":\"x%d\",\"action\":\"a\",\"actor\":5}", i);
				json_array_append_new(want, json_string(it_fmt("events[%d].actor", i)));
				break;
			case DUP_ID:
				len += (size_t)sprintf(body + len, "{\"id\":\"%c%d\",\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"t\"}}",
				                       pre, first_valid);
				json_array_append_new(want, json_string(it_fmt("events[%d].id", i)));
				break;
			}
			total += f != OK;
		}
		len += (size_t)sprintf(body + len, "]}");
		struct res r;
		post(&r, &s, s.key, NULL, body);
		free(body);
		if (total == 0) {
			ck_assert_msg(r.status == 201, "%s: %ld %.300s", k->name, r.status, r.raw.body);
			stored += k->n;
		} else {
			ck_assert_msg(r.status == 400 && !strcmp(it_js(r.json, "code"), "validation_failed"), "%s: %ld %.300s",
			              k->name, r.status, r.raw.body);
			const json_t *errs = json_object_get(r.json, "errors");
			size_t listed = (size_t)total < 100 ? (size_t)total : 100;
			ck_assert_msg(json_array_size(errs) == listed, "%s: %zu errors listed, want %zu", k->name,
			              json_array_size(errs), listed);
			ck_assert_int_eq(json_integer_value(json_object_get(r.json, "errors_total")), total);
			ck_assert_msg(json_is_boolean(json_object_get(r.json, "errors_truncated")) &&
			                  json_boolean_value(json_object_get(r.json, "errors_truncated")) == (total > 100),
			              "%s: errors_truncated", k->name);
			for (size_t i = 0; i < listed; i++) {
				const json_t *e = json_array_get(errs, i);
				ck_assert_msg(!strcmp(it_js(e, "field"), json_string_value(json_array_get(want, i))),
				              "%s: errors[%zu].field '%s', want '%s'", k->name, i, it_js(e, "field"),
				              json_string_value(json_array_get(want, i)));
				ck_assert_msg(strlen(it_js(e, "detail")) > 0, "%s: errors[%zu] without detail", k->name, i);
			}
			ck_assert_str_eq(it_js(r.json, "field"), json_string_value(json_array_get(want, 0)));
			ck_assert_str_eq(it_js(r.json, "detail"), it_js(json_array_get(errs, 0), "detail"));
		}
		json_decref(want);
		res_free(&r);
		ck_assert_int_eq(events_of(&s, s.tenant), stored);
	}

	/* A single event: the same shape, one entry. */
	struct res r;
	post(&r, &s, s.key, NULL, "{\"actor\":{\"id\":\"u\",\"type\":\"t\"}}");
	EXPECT_PROBLEM(&r, 400, "validation_failed", "action");
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "errors")), 1);
	ck_assert_str_eq(it_js(json_array_get(json_object_get(r.json, "errors"), 0), "field"), "action");
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "errors_total")), 1);
	res_free(&r);
	/* A batch wrong as a whole (empty, or one event over 1000): one entry
	 * naming events, whatever its members. */
	post(&r, &s, s.key, NULL, "{\"events\":[]}");
	EXPECT_PROBLEM(&r, 400, "validation_failed", "events");
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "errors")), 1);
	res_free(&r);
	char *big = malloc(1001 * 64 + 32);
	ck_assert_ptr_nonnull(big);
	size_t bl = (size_t)sprintf(big, "{\"events\":[");
	for (int i = 0; i < 1001; i++)
		bl += (size_t)sprintf(big + bl, "%s{\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"t\"}}", i ? "," : "");
	sprintf(big + bl, "]}");
	post(&r, &s, s.key, NULL, big);
	free(big);
	EXPECT_PROBLEM(&r, 400, "validation_failed", "events");
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "errors")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "errors_total")), 1);
	res_free(&r);
	ck_assert_int_eq(events_of(&s, s.tenant), stored);
	it_stack_stop(&s);
}
END_TEST

/* ---- suspension ---- */

enum scope_set { K_READ, K_WRITE, K_BOTH, NKEYS };
static const char *const scope_json[NKEYS] = { "\"events:read\"", "\"events:write\"",
	                                           "\"events:write\",\"events:read\"" };
static const char *const scope_name[NKEYS] = { "read", "write", "read+write" };

enum route { R_LIST, R_GET, R_TENANT, R_POST, NROUTES };
static const char *const route_name[NROUTES] = { "GET /v1/events", "GET /v1/events/{id}", "GET /v1/tenant",
	                                             "POST /v1/events" };

struct want {
	long status;
	const char *code;
};

/* The reference: a suspended tenant reads as before and cannot write;
 * the scope is looked at after the tenant's status. */
static struct want model(int suspended, enum scope_set k, enum route r)
{
	int can_read = k != K_WRITE, can_write = k != K_READ;
	switch (r) {
	case R_TENANT: return (struct want){ 200, NULL };
	case R_LIST:
	case R_GET: return can_read ? (struct want){ 200, NULL } : (struct want){ 403, "insufficient_scope" };
	default:
		if (suspended)
			return (struct want){ 403, "tenant_suspended" };
		return can_write ? (struct want){ 201, NULL } : (struct want){ 403, "insufficient_scope" };
	}
}

/* A suspended tenant can still read its trail (every read route, with a
 * key that has the read scope) and cannot write (403 tenant_suspended,
 * before its body is read); a key without the route's scope is 403
 * insufficient_scope whatever the tenant's status: every combination
 * against the table above. Lifting the suspension lets writes in again. */
START_TEST(suspension_reads_not_writes)
{
	struct it_stack s;
	char tenants[2][40], keys[2][NKEYS][200];
	it_stack_start(&s, "us", NULL, NULL);
	for (int t = 0; t < 2; t++) {
		new_tenant(&s, t ? "paused" : "running", tenants[t]);
		for (int k = 0; k < NKEYS; k++)
			new_key(&s, tenants[t], scope_json[k], keys[t][k]);
	}
	it_stack_sync(&s);
	/* One event each before the suspension: something to read. */
	for (int t = 0; t < 2; t++) {
		struct res r;
		post(&r, &s, keys[t][K_BOTH], NULL, "{\"id\":\"before\",\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"t\"}}");
		EXPECT(&r, 201);
		res_free(&r);
	}
	struct it_resp ar;
	it_stack_admin(&s, &ar, "PATCH", it_fmt("/v1/tenants/%s", tenants[1]), "{\"status\":\"suspended\"}");
	ck_assert_msg(ar.status == 200, "suspend: %ld %.300s", ar.status, ar.body);
	it_resp_free(&ar);
	it_stack_sync(&s);

	char wrong[8192] = "";
	size_t nw = 0;
	int cells = 0, writes = 0;
	long long stored[2] = { 1, 1 };
	for (int t = 0; t < 2; t++)
		for (int k = 0; k < NKEYS; k++)
			for (int rt = 0; rt < NROUTES; rt++, cells++) {
				struct res r;
				struct want w = model(t, (enum scope_set)k, (enum route)rt);
				if (rt == R_POST)
					post(&r, &s, keys[t][k], NULL,
					     it_fmt("{\"id\":\"w-%d\",\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"t\"}}", writes++));
				else
					dp(&r, &s, "GET", rt == R_LIST ? "/v1/events" : rt == R_GET ? "/v1/events/before" : "/v1/tenant",
					   keys[t][k], NULL, NULL);
				int ok = r.status == w.status && (!w.code || !strcmp(it_js(r.json, "code"), w.code));
				if (ok && rt == R_LIST && w.status == 200)
					ok = json_array_size(json_object_get(r.json, "events")) == (size_t)stored[t] ||
					     json_array_size(json_object_get(r.json, "items")) == (size_t)stored[t];
				if (ok && rt == R_TENANT)
					ok = !strcmp(it_js(json_object_get(r.json, "tenant"), "status"), t ? "suspended" : "active");
				if (ok && w.status == 201)
					stored[t]++;
				if (!ok && nw < sizeof wrong - 1)
					nw += (size_t)snprintf(wrong + nw, sizeof wrong - nw, "\n  %s tenant, %s key, %s: got %ld %s, want %ld %s: %.200s",
					                       t ? "suspended" : "active", scope_name[k], route_name[rt], r.status,
					                       it_js(r.json, "code"), w.status, w.code ? w.code : "", r.raw.body);
				res_free(&r);
			}
	ck_assert_msg(nw == 0, "answers other than the table's:%s", wrong);
	printf("  suspension_reads_not_writes: %d combinations as the table says\n", cells);
	for (int t = 0; t < 2; t++)
		ck_assert_int_eq(events_of(&s, tenants[t]), stored[t]);

	/* Refused before the body is looked at: an invalid body is still 403. */
	struct res r;
	post(&r, &s, keys[1][K_BOTH], NULL, "not json at all");
	EXPECT_PROBLEM(&r, 403, "tenant_suspended", NULL);
	res_free(&r);
	/* A wrong secret never learns that the tenant is suspended. */
	char forged[200];
	snprintf(forged, sizeof forged, "%s", keys[1][K_BOTH]);
	size_t fl = strlen(forged);
	forged[fl - 1] = forged[fl - 1] == '0' ? '1' : '0';
	post(&r, &s, forged, NULL, EV("forged"));
	EXPECT_PROBLEM(&r, 401, "unauthorized", NULL);
	res_free(&r);
	dp(&r, &s, "GET", "/v1/events", forged, NULL, NULL);
	EXPECT_PROBLEM(&r, 401, "unauthorized", NULL);
	res_free(&r);

	/* Active again: writes are back. */
	it_stack_admin(&s, &ar, "PATCH", it_fmt("/v1/tenants/%s", tenants[1]), "{\"status\":\"active\"}");
	ck_assert_msg(ar.status == 200, "reactivate: %ld %.300s", ar.status, ar.body);
	it_resp_free(&ar);
	it_stack_sync(&s);
	post(&r, &s, keys[1][K_WRITE], NULL, EV("again"));
	EXPECT(&r, 201);
	res_free(&r);
	ck_assert_int_eq(events_of(&s, tenants[1]), stored[1] + 1);
	it_stack_stop(&s);
}
END_TEST

Suite *write_rules_suite(void)
{
	Suite *s = suite_create("write-rules");
	const TTest *const tests[] = {
		idempotency_key_replay,
		idempotency_key_concurrent,
		idempotency_key_per_tenant,
		idempotency_key_expiry,
		batch_errors_all_named,
		suspension_reads_not_writes,
	};
	it_add_tests(s, tests, sizeof tests / sizeof tests[0], NULL, NULL, 300);
	return s;
}
