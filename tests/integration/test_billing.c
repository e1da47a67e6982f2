/* Billing from outside, over HTTP against a real PostgreSQL: the plan
 * catalog and its prices, usage batches reported by the regions
 * (idempotent, all or nothing, only for the region's own tenants), the
 * monthly close and the invoices it makes, each checked against figures
 * worked out by hand in the comments.
 *
 * Every test is its own TCase with its own control plane on a fresh
 * database. The clock cannot be moved, so the months billed here are in
 * the past (2026-08 and 2026-09), and a tenant's past is written straight
 * into the database: tenants.created_at and tenant_plan_history rows
 * dated before those months end (see backdate()). */
#include <jansson.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cpfx.h"

#define MONTH_A "2026-08"
#define MONTH_B "2026-09"
#define LONG_AGO "2026-07-01T00:00:00Z"

/* ------------------------------------------------------------------ */
/* Fixture                                                             */

/* Every route of these tests answers a success with a JSON object. */
static void setup(void)
{
	cpfx_start("it_billing", NULL);
	cpfx.success_is_object = 1;
}

static void teardown(void)
{
	cpfx_stop();
}

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

/* An integer member of `o`; fails the test when it is not an integer. */
static long long ji(const json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	char *text = json_dumps(o, JSON_COMPACT | JSON_ENCODE_ANY);
	ck_assert_msg(json_is_integer(v), "member '%s' is not an integer in %.600s", key, text);
	free(text);
	return (long long)json_integer_value(v);
}

/* "YYYY-MM" of the UTC month `delta` (0 to 11) months from now. */
static void month_from_now(int delta, char out[8])
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	tm.tm_mday = 1;
	tm.tm_mon += delta;
	if (tm.tm_mon > 11) {
		tm.tm_mon -= 12;
		tm.tm_year++;
	}
	ck_assert(strftime(out, 8, "%Y-%m", &tm) == 7);
}

/* ------------------------------------------------------------------ */
/* SQL on this test's database                                         */

static void qexec(const char *sql)
{
	free(q(sql));
}

/* Everything billing keeps, as one text: equal snapshots mean nothing
 * changed. Caller frees. */
static char *billing_snapshot(void)
{
	return q("SELECT concat_ws(' | ',"
	         " (SELECT string_agg(concat_ws(',', id, tenant_id, period, plan, currency, total, status,"
	         "   created_at, finalized_at, voided_at), ';' ORDER BY id) FROM invoices),"
	         " (SELECT string_agg(concat_ws(',', invoice_id, line, kind, period, quantity, amount),"
	         "   ';' ORDER BY invoice_id, line) FROM invoice_lines),"
	         " (SELECT string_agg(concat_ws(',', id, invoice_id), ';' ORDER BY id) FROM usage_ledger),"
	         " (SELECT string_agg(concat_ws(',', period, closed_at, invoices), ';' ORDER BY period)"
	         "   FROM billing_periods))");
}

/* Makes `tenant` look as if it had existed, on `plan`, since `since`: the
 * tests cannot move the clock, so the past is written into the database. */
static void backdate(const char *tenant, const char *plan, const char *since)
{
	qexec(it_fmt("UPDATE tenants SET created_at = '%s' WHERE id = '%s'", since, tenant));
	qexec(it_fmt("INSERT INTO tenant_plan_history (tenant_id, plan, since) VALUES ('%s', '%s', '%s')",
	          tenant, plan, since));
}

/* ------------------------------------------------------------------ */
/* Building a world, as the admin                                      */

/* A credential of `region`'s data planes: crt_<region>_... */
static void credential(const char *region, char token[128])
{
	struct res r;
	api(&r, "POST", it_fmt("/v1/regions/%s/credentials", region), ADMIN_TOKEN, "{}");
	EXPECT(&r, 201);
	snprintf(token, 128, "%s", it_js(r.json, "token"));
	ck_assert_msg(!strncmp(token, it_fmt("crt_%s_", region), strlen(region) + 5), "credential %s", token);
	res_free(&r);
}

static void patch_plan_of(const char *tenant, const char *plan)
{
	struct res r;
	api(&r, "PATCH", it_fmt("/v1/tenants/%s", tenant), ADMIN_TOKEN, it_fmt("{\"plan\":\"%s\"}", plan));
	EXPECT(&r, 200);
	ck_assert_str_eq(it_js(r.json, "plan"), plan);
	res_free(&r);
}

/* ------------------------------------------------------------------ */
/* Usage                                                               */

/* One usage record as JSON text (in the fmt ring). */
static const char *rec(const char *tenant, const char *period, long long events, const char *start,
                       const char *end)
{
	return it_fmt("{\"tenant\":\"%s\",\"period\":\"%s\",\"events\":%lld,\"window_start\":\"%s\","
	           "\"window_end\":\"%s\"}", tenant, period, events, start, end);
}

/* {"records":[...]} of the NULL-terminated records given, into `out`. */
static const char *batch(char out[8192], const char *first, ...)
{
	va_list ap;
	size_t n = (size_t)snprintf(out, 8192, "{\"records\":[");
	int i = 0;
	va_start(ap, first);
	for (const char *r = first; r; r = va_arg(ap, const char *)) {
		n += (size_t)snprintf(out + n, 8192 - n, "%s%s", i++ ? "," : "", r);
		ck_assert_msg(n < 8000, "batch too long");
	}
	va_end(ap);
	snprintf(out + n, 8192 - n, "]}");
	return out;
}

static void post_usage(struct res *r, const char *cred, const char *key, const char *body)
{
	struct opts o = { .token = cred, .idem = key };
	api_ex(r, "POST", "/v1/usage", &o, body, strlen(body));
}

/* Sends a batch that must be answered `want` (201 the first time, 200 for
 * a replay, with Idempotent-Replayed: true) with the batch's key, record
 * count and event sum. Returns the answer's JSON (caller decrefs). */
#define USAGE_OK(cred, key, body, want, nrec, events) \
	usage_ok((cred), (key), (body), (want), (nrec), (events), __LINE__)
static json_t *usage_ok(const char *cred, const char *key, const char *body, long want, long nrec,
                        long long events, int line)
{
	struct res r;
	post_usage(&r, cred, key, body);
	expect_status(&r, want, line);
	ck_assert_msg(!strcmp(it_js(r.json, "batch"), key), "line %d: batch '%s', want '%s'", line,
	              it_js(r.json, "batch"), key);
	ck_assert_msg(ji(r.json, "records") == nrec, "line %d: records %lld, want %ld", line,
	              ji(r.json, "records"), nrec);
	ck_assert_msg(ji(r.json, "events") == events, "line %d: events %lld, want %lld", line,
	              ji(r.json, "events"), events);
	ck_assert_msg(replayed(&r) == (want == 200), "line %d: Idempotent-Replayed %s on a %ld", line,
	              replayed(&r) ? "present" : "absent", want);
	json_t *j = json_incref(r.json);
	res_free(&r);
	return j;
}

/* GET /v1/tenants/{id}/usage?period= as `token`; 200 required. Caller decrefs. */
static json_t *get_usage(const char *token, const char *tenant, const char *period)
{
	struct res r;
	api(&r, "GET", it_fmt("/v1/tenants/%s/usage?period=%s", tenant, period), token, NULL);
	EXPECT(&r, 200);
	ck_assert_str_eq(it_js(r.json, "tenant_id"), tenant);
	ck_assert_str_eq(it_js(r.json, "period"), period);
	ck_assert_msg(json_is_array(json_object_get(r.json, "by_day")), "%s", r.raw.body);
	ck_assert_msg(json_is_array(json_object_get(r.json, "by_region")), "%s", r.raw.body);
	json_t *j = json_incref(r.json);
	res_free(&r);
	return j;
}

static long long usage_total(const char *tenant, const char *period)
{
	json_t *u = get_usage(ADMIN_TOKEN, tenant, period);
	long long t = ji(u, "total");
	json_decref(u);
	return t;
}

/* The events of `key` ("day" or "region" member equal to `name`) in the
 * array `list` of a usage answer; -1 when absent. Each name is listed once. */
static long long usage_entry(const json_t *u, const char *list, const char *member, const char *name)
{
	size_t i;
	json_t *it;
	long long found = -1;
	json_array_foreach(json_object_get(u, list), i, it)
		if (!strcmp(it_js(it, member), name)) {
			ck_assert_msg(found < 0, "%s lists %s twice", list, name);
			found = ji(it, "events");
		}
	return found;
}

/* ------------------------------------------------------------------ */
/* Periods and invoices                                                */

/* POST /v1/billing/periods/{period}/close as the admin: `want` status,
 * and on 200/201 the answer's period and invoice count. Returns the
 * answer's closed_at (static buffer). */
#define CLOSE(period, want, invoices) close_period((period), (want), (invoices), __LINE__)
static const char *close_period(const char *period, long want, long invoices, int line)
{
	static char closed_at[64];
	struct res r;
	api(&r, "POST", it_fmt("/v1/billing/periods/%s/close", period), ADMIN_TOKEN, NULL);
	expect_status(&r, want, line);
	closed_at[0] = '\0';
	if (want < 300) {
		ck_assert_msg(!strcmp(it_js(r.json, "period"), period), "line %d: period '%s'", line,
		              it_js(r.json, "period"));
		ck_assert_msg(ji(r.json, "invoices") == invoices, "line %d: %lld invoices, want %ld", line,
		              ji(r.json, "invoices"), invoices);
		snprintf(closed_at, sizeof closed_at, "%s", it_js(r.json, "closed_at"));
		ck_assert_msg(is_api_time(closed_at), "line %d: closed_at '%s'", line, closed_at);
	}
	res_free(&r);
	return closed_at;
}

/* The items of GET /v1/tenants/{id}/invoices as the admin (caller decrefs). */
static json_t *invoice_list(const char *tenant)
{
	struct res r;
	api(&r, "GET", it_fmt("/v1/tenants/%s/invoices", tenant), ADMIN_TOKEN, NULL);
	EXPECT(&r, 200);
	json_t *items = json_incref(json_object_get(r.json, "items"));
	ck_assert_msg(json_is_array(items), "no items: %.300s", r.raw.body);
	res_free(&r);
	return items;
}

struct want_line {
	const char *kind, *period;
	long long quantity, amount;
};
#define LINES(...) ((const struct want_line[]){ __VA_ARGS__, { NULL, NULL, 0, 0 } })

/* The invoice of `tenant` for `period`, found in the tenant's list and read
 * again through GET /v1/invoices/{id} (the two must agree). It must carry
 * exactly the lines given (in any order), a description on each, and
 * total = the sum of the amounts = `total`. Returns it (caller decrefs). */
#define EXPECT_INVOICE(tenant, period, plan, currency, total, lines) \
	expect_invoice((tenant), (period), (plan), (currency), (total), (lines), __LINE__)
static json_t *expect_invoice(const char *tenant, const char *period, const char *plan,
                              const char *currency, long long total, const struct want_line *want,
                              int line)
{
	json_t *items = invoice_list(tenant), *in_list = NULL, *it;
	size_t i;
	json_array_foreach(items, i, it)
		if (!strcmp(it_js(it, "period"), period)) {
			ck_assert_msg(!in_list, "line %d: two invoices of %s for %s", line, tenant, period);
			in_list = it;
		}
	ck_assert_msg(in_list, "line %d: no invoice of %s for %s", line, tenant, period);

	struct res r;
	api(&r, "GET", it_fmt("/v1/invoices/%s", it_js(in_list, "id")), ADMIN_TOKEN, NULL);
	expect_status(&r, 200, line);
	json_t *inv = json_incref(r.json);
	ck_assert_msg(json_equal(inv, in_list), "line %d: the list and GET disagree:\n%.800s", line,
	              r.raw.body);
	res_free(&r);
	json_decref(items);

	char *text = json_dumps(inv, JSON_COMPACT);
	ck_assert_msg(is_uuid(it_js(inv, "id")), "line %d: id in %s", line, text);
	ck_assert_msg(!strcmp(it_js(inv, "tenant_id"), tenant), "line %d: %s", line, text);
	ck_assert_msg(!strcmp(it_js(inv, "plan"), plan), "line %d: plan '%s', want '%s': %s", line,
	              it_js(inv, "plan"), plan, text);
	ck_assert_msg(!strcmp(it_js(inv, "currency"), currency), "line %d: currency '%s', want '%s'", line,
	              it_js(inv, "currency"), currency);
	ck_assert_msg(is_api_time(it_js(inv, "created_at")), "line %d: created_at in %s", line, text);
	ck_assert_msg(json_object_get(inv, "finalized_at") && json_object_get(inv, "voided_at"),
	              "line %d: finalized_at and voided_at must be present: %s", line, text);

	json_t *lines = json_object_get(inv, "lines");
	size_t nwant = 0;
	while (want[nwant].kind)
		nwant++;
	ck_assert_msg(json_array_size(lines) == nwant, "line %d: %zu lines, want %zu: %s", line,
	              json_array_size(lines), nwant, text);
	long long sum = 0;
	json_array_foreach(lines, i, it) {
		sum += ji(it, "amount");
		ck_assert_msg(strlen(it_js(it, "description")) > 0, "line %d: a line without description: %s",
		              line, text);
	}
	for (size_t w = 0; w < nwant; w++) {
		json_t *hit = NULL;
		json_array_foreach(lines, i, it)
			if (!strcmp(it_js(it, "kind"), want[w].kind) && !strcmp(it_js(it, "period"), want[w].period)) {
				ck_assert_msg(!hit, "line %d: two %s lines for %s: %s", line, want[w].kind,
				              want[w].period, text);
				hit = it;
			}
		ck_assert_msg(hit, "line %d: no %s line for %s: %s", line, want[w].kind, want[w].period, text);
		ck_assert_msg(ji(hit, "quantity") == want[w].quantity && ji(hit, "amount") == want[w].amount,
		              "line %d: %s line for %s: quantity %lld amount %lld, want %lld and %lld: %s", line,
		              want[w].kind, want[w].period, ji(hit, "quantity"), ji(hit, "amount"),
		              want[w].quantity, want[w].amount, text);
	}
	ck_assert_msg(ji(inv, "total") == total, "line %d: total %lld, want %lld: %s", line,
	              ji(inv, "total"), total, text);
	ck_assert_msg(sum == total, "line %d: the lines sum to %lld, the total is %lld", line, sum, total);
	free(text);
	return inv;
}

/* POST /v1/invoices/{id}/<action> as the admin. */
static void invoice_action(struct res *r, const char *id, const char *action)
{
	api(r, "POST", it_fmt("/v1/invoices/%s/%s", id, action), ADMIN_TOKEN, NULL);
}

/* ------------------------------------------------------------------ */
/* 1. A month of usage from three regions, and its invoices            */

/* Usage from three regions, replayed, retried, late and re-planned, bills the hand-computed sums. */
START_TEST(billing_month)
{
	char e1[37], e2[37], u1[37], j1[37], n1[37], eu[128], us[128], jp[128], b[8192], b2[8192];
	struct res r;
	json_t *first, *again;

	/* A plan of our own, in euros, with prices that make rounding show. */
	api(&r, "POST", "/v1/plans", ADMIN_TOKEN,
	    "{\"id\":\"metered\",\"name\":\"Metered\",\"currency\":\"EUR\",\"base_price\":1000,"
	    "\"events_included\":1000,\"price_per_1000\":7,\"rate_limit\":10,\"burst\":20,"
	    "\"monthly_event_quota\":100000,\"retention_days\":30}");
	EXPECT(&r, 201);
	res_free(&r);

	new_tenant("bill-eu-1", "eu", "pro", e1);
	new_tenant("bill-eu-2", "eu", "metered", e2);
	new_tenant("bill-us-1", "us", "pro", u1);
	new_tenant("bill-jp-1", "jp", "free", j1);
	new_tenant("bill-us-new", "us", "pro", n1); /* created now: no invoice for past months */
	/* The four were on these plans since July (written into the past by SQL). */
	backdate(e1, "pro", LONG_AGO);
	backdate(e2, "metered", LONG_AGO);
	backdate(u1, "pro", LONG_AGO);
	backdate(j1, "free", LONG_AGO);
	credential("eu", eu);
	credential("us", us);
	credential("jp", jp);

	/* ---- eu: E1 and E2 ---- */
	batch(b, rec(e1, MONTH_A, 700000, "2026-08-03T10:00:00Z", "2026-08-03T11:00:00Z"),
	      rec(e2, MONTH_A, 1000, "2026-08-03T12:00:00Z", "2026-08-03T13:00:00Z"), NULL);
	first = USAGE_OK(eu, "batch-1", b, 201, 2, 701000);
	again = USAGE_OK(eu, "batch-1", b, 200, 2, 701000); /* a replay: nothing added */
	ck_assert(json_equal(first, again));
	json_decref(first);
	json_decref(again);
	ck_assert_int_eq(usage_total(e1, MONTH_A), 700000);

	/* A batch with one bad record fails whole, and records nothing... */
	batch(b, rec(e1, MONTH_A, 500001, "2026-09-01T00:30:00+02:00", "2026-09-01T01:30:00+02:00"),
	      rec(e2, MONTH_A, 1500, "2026-08-20T00:00:00Z", "2026-08-19T23:59:59Z"),
	      rec(e1, MONTH_B, 999999, "2026-09-10T08:00:00Z", "2026-09-10T09:00:00Z"), NULL);
	post_usage(&r, eu, "batch-2", b);
	EXPECT_PROBLEM(&r, 400, "validation_failed", "records[1].window_end");
	res_free(&r);
	ck_assert_int_eq(usage_total(e1, MONTH_A), 700000);
	ck_assert_int_eq(usage_total(e1, MONTH_B), 0);
	/* ...so the corrected batch goes through under the same key. E1's
	 * first record starts at 00:30 +02:00 on 1 September: 22:30 UTC on 31
	 * August, in August. A window may end where it starts. */
	batch(b, rec(e1, MONTH_A, 500001, "2026-09-01T00:30:00+02:00", "2026-09-01T01:30:00+02:00"),
	      rec(e2, MONTH_A, 1500, "2026-08-20T00:00:00Z", "2026-08-20T00:00:00Z"),
	      rec(e1, MONTH_B, 999999, "2026-09-10T08:00:00Z", "2026-09-10T09:00:00Z"), NULL);
	json_decref(USAGE_OK(eu, "batch-2", b, 201, 3, 500001 + 1500 + 999999));
	batch(b2, rec(e2, MONTH_B, 1000, "2026-09-05T00:00:00Z", "2026-09-05T01:00:00Z"), NULL);
	json_decref(USAGE_OK(eu, "batch-3", b2, 201, 1, 1000));
	json_decref(USAGE_OK(eu, "batch-3", b2, 200, 1, 1000));
	json_decref(USAGE_OK(eu, "batch-2", b, 200, 3, 1501500));
	/* The same key with another body is refused and adds nothing. */
	batch(b2, rec(e2, MONTH_B, 2000, "2026-09-05T00:00:00Z", "2026-09-05T01:00:00Z"), NULL);
	post_usage(&r, eu, "batch-3", b2);
	EXPECT_PROBLEM(&r, 422, "unprocessable", NULL);
	res_free(&r);

	/* ---- us: U1 (a key is the region's own: eu's "batch-1" is no clash) ---- */
	batch(b, rec(u1, MONTH_A, 400000, "2026-08-10T00:00:00Z", "2026-08-10T01:00:00Z"),
	      rec(u1, MONTH_A, 500000, "2026-08-11T00:00:00Z", "2026-08-11T01:00:00Z"), NULL);
	json_decref(USAGE_OK(us, "batch-1", b, 201, 2, 900000));
	json_decref(USAGE_OK(us, "batch-1", b, 200, 2, 900000));
	/* The second window ends in October: only its start must be in September. */
	batch(b, rec(u1, MONTH_B, 50000000, "2026-09-20T00:00:00Z", "2026-09-20T01:00:00Z"),
	      rec(u1, MONTH_B, 12345, "2026-09-30T23:59:59Z", "2026-10-01T00:10:00Z"), NULL);
	json_decref(USAGE_OK(us, "batch-2", b, 201, 2, 50012345));

	/* ---- jp: J1. 00:00 +09:00 on 15 August is 15:00 UTC on the 14th. ---- */
	batch(b, rec(j1, MONTH_A, 40000, "2026-08-15T00:00:00+09:00", "2026-08-15T01:00:00+09:00"), NULL);
	json_decref(USAGE_OK(jp, "batch-1", b, 201, 1, 40000));
	batch(b, rec(j1, MONTH_B, 60000, "2026-09-02T00:00:00Z", "2026-09-02T00:00:00Z"),
	      rec(j1, MONTH_B, 40000, "2026-09-03T00:00:00Z", "2026-09-03T06:00:00Z"), NULL);
	json_decref(USAGE_OK(jp, "batch-2", b, 201, 2, 100000));
	json_decref(USAGE_OK(jp, "batch-2", b, 200, 2, 100000));

	/* What each tenant used, by UTC day of window_start and by region. */
	json_t *u = get_usage(ADMIN_TOKEN, e1, MONTH_A);
	ck_assert_int_eq(ji(u, "total"), 1200001);
	ck_assert_int_eq(json_array_size(json_object_get(u, "by_day")), 2);
	ck_assert_int_eq(usage_entry(u, "by_day", "day", "2026-08-03"), 700000);
	ck_assert_int_eq(usage_entry(u, "by_day", "day", "2026-08-31"), 500001);
	ck_assert_int_eq(json_array_size(json_object_get(u, "by_region")), 1);
	ck_assert_int_eq(usage_entry(u, "by_region", "region", "eu"), 1200001);
	json_decref(u);
	u = get_usage(ADMIN_TOKEN, j1, MONTH_A);
	ck_assert_int_eq(ji(u, "total"), 40000);
	ck_assert_int_eq(json_array_size(json_object_get(u, "by_day")), 1);
	ck_assert_int_eq(usage_entry(u, "by_day", "day", "2026-08-14"), 40000);
	ck_assert_int_eq(usage_entry(u, "by_region", "region", "jp"), 40000);
	json_decref(u);
	ck_assert_int_eq(usage_total(e1, MONTH_B), 999999);
	ck_assert_int_eq(usage_total(e2, MONTH_A), 2500);
	ck_assert_int_eq(usage_total(e2, MONTH_B), 1000);
	ck_assert_int_eq(usage_total(u1, MONTH_A), 900000);
	ck_assert_int_eq(usage_total(u1, MONTH_B), 50012345);
	ck_assert_int_eq(usage_total(j1, MONTH_B), 100000);
	ck_assert_int_eq(usage_total(n1, MONTH_A), 0);
	ck_assert_int_eq(qlong("SELECT count(*) FROM usage_ledger"), 13); /* 6 + 4 + 3 records */

	/* ---- close August: the four backdated tenants, not the new one ---- */
	CLOSE(MONTH_A, 201, 4);
	json_t *inv;
	/* E1, pro: 1,200,001 events, 200,001 beyond the 1,000,000 included;
	 * 200,001 × 50 / 1000 = 10,000.05 → 10,001. 4,900 + 10,001 = 14,901. */
	inv = EXPECT_INVOICE(e1, MONTH_A, "pro", "USD", 14901,
	                     LINES({ "base", MONTH_A, 1, 4900 }, { "overage", MONTH_A, 200001, 10001 }));
	ck_assert_str_eq(it_js(inv, "status"), "draft");
	ck_assert(json_is_null(json_object_get(inv, "finalized_at")));
	ck_assert(json_is_null(json_object_get(inv, "voided_at")));
	json_t *e1_a = inv;
	/* E2, metered (EUR): 2,500 events, 1,500 beyond 1,000; 1,500 × 7 /
	 * 1000 = 10.5 → 11. 1,000 + 11 = 1,011. */
	json_decref(EXPECT_INVOICE(e2, MONTH_A, "metered", "EUR", 1011,
	                           LINES({ "base", MONTH_A, 1, 1000 }, { "overage", MONTH_A, 1500, 11 })));
	/* U1, pro: 900,000 ≤ 1,000,000, no overage line. 4,900. */
	json_decref(EXPECT_INVOICE(u1, MONTH_A, "pro", "USD", 4900, LINES({ "base", MONTH_A, 1, 4900 })));
	/* J1, free: 40,000 ≤ 100,000. 0. */
	json_decref(EXPECT_INVOICE(j1, MONTH_A, "free", "USD", 0, LINES({ "base", MONTH_A, 1, 0 })));
	json_t *none = invoice_list(n1);
	ck_assert_int_eq(json_array_size(none), 0);
	json_decref(none);
	ck_assert_int_eq(qlong("SELECT count(*) FROM invoices"), 4);
	/* A replay after the close is still a replay: no late usage from it. */
	batch(b, rec(e1, MONTH_A, 700000, "2026-08-03T10:00:00Z", "2026-08-03T11:00:00Z"),
	      rec(e2, MONTH_A, 1000, "2026-08-03T12:00:00Z", "2026-08-03T13:00:00Z"), NULL);
	json_decref(USAGE_OK(eu, "batch-1", b, 200, 2, 701000));
	ck_assert_int_eq(qlong("SELECT count(*) FROM usage_ledger"), 13);

	/* ---- late August usage, after August was closed ---- */
	batch(b, rec(e1, MONTH_A, 1000, "2026-08-25T00:00:00Z", "2026-08-25T01:00:00Z"), NULL);
	json_decref(USAGE_OK(eu, "late-1", b, 201, 1, 1000));
	batch(b, rec(u1, MONTH_A, 150000, "2026-08-26T00:00:00Z", "2026-08-26T01:00:00Z"), NULL);
	json_decref(USAGE_OK(us, "late-1", b, 201, 1, 150000));
	json_decref(USAGE_OK(us, "late-1", b, 200, 1, 150000));
	ck_assert_int_eq(usage_total(e1, MONTH_A), 1201001);
	ck_assert_int_eq(usage_total(u1, MONTH_A), 1050000);

	/* ---- plan changes between the two closes ---- */
	/* U1 moved from pro to enterprise on 15 September. The API can only
	 * change it now, so the change is also written into the history, dated
	 * the 15th: enterprise is then the plan in force at September's end. */
	patch_plan_of(u1, "enterprise");
	qexec(it_fmt("INSERT INTO tenant_plan_history (tenant_id, plan, since) "
	          "VALUES ('%s', 'enterprise', '2026-09-15T00:00:00Z')", u1));
	/* J1 moves to pro only now, after September ended: September stays free. */
	patch_plan_of(j1, "pro");

	/* ---- close September ---- */
	CLOSE(MONTH_B, 201, 4);
	/* E1, pro: 999,999 ≤ 1,000,000, no overage. Adjustment for August's
	 * 1,000 late events: overage(1,201,001) = ⌈201,001 × 50 / 1000⌉ =
	 * ⌈10,050.05⌉ = 10,051, minus the 10,001 billed: 50. 4,900 + 50 = 4,950. */
	json_decref(EXPECT_INVOICE(e1, MONTH_B, "pro", "USD", 4950,
	                           LINES({ "base", MONTH_B, 1, 4900 }, { "adjustment", MONTH_A, 1000, 50 })));
	/* E2, metered: exactly the 1,000 included. 1,000. */
	json_decref(EXPECT_INVOICE(e2, MONTH_B, "metered", "EUR", 1000, LINES({ "base", MONTH_B, 1, 1000 })));
	/* U1, enterprise for all of September: 50,012,345 events, 12,345 beyond
	 * 50,000,000; 12,345 × 20 / 1000 = 246.9 → 247. Adjustment for August,
	 * priced with August's plan (pro): overage(1,050,000) = 50,000 × 50 /
	 * 1000 = 2,500, minus overage(900,000) = 0: 2,500.
	 * 99,900 + 247 + 2,500 = 102,647. */
	json_decref(EXPECT_INVOICE(u1, MONTH_B, "enterprise", "USD", 102647,
	                           LINES({ "base", MONTH_B, 1, 99900 }, { "overage", MONTH_B, 12345, 247 },
	                                 { "adjustment", MONTH_A, 150000, 2500 })));
	/* J1, free at September's end: 100,000 ≤ 100,000. 0. */
	json_decref(EXPECT_INVOICE(j1, MONTH_B, "free", "USD", 0, LINES({ "base", MONTH_B, 1, 0 })));
	none = invoice_list(n1);
	ck_assert_int_eq(json_array_size(none), 0);
	json_decref(none);

	/* August's invoices did not move; every event is billed exactly once. */
	inv = EXPECT_INVOICE(e1, MONTH_A, "pro", "USD", 14901,
	                     LINES({ "base", MONTH_A, 1, 4900 }, { "overage", MONTH_A, 200001, 10001 }));
	ck_assert(json_equal(inv, e1_a));
	json_decref(inv);
	json_decref(e1_a);
	ck_assert_int_eq(qlong("SELECT count(*) FROM usage_ledger WHERE invoice_id IS NULL"), 0);
	ck_assert_int_eq(qlong("SELECT count(*) FROM invoices"), 8);

	/* Newest period first. */
	json_t *items = invoice_list(u1);
	ck_assert_int_eq(json_array_size(items), 2);
	ck_assert_str_eq(it_js(json_array_get(items, 0), "period"), MONTH_B);
	ck_assert_str_eq(it_js(json_array_get(items, 1), "period"), MONTH_A);
	json_decref(items);

	/* Closing August again changes nothing. */
	char *before = billing_snapshot();
	CLOSE(MONTH_A, 200, 4);
	char *after = billing_snapshot();
	ck_assert_str_eq(before, after);
	free(before);
	free(after);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 2. Concurrent replays                                               */

struct shot {
	const char *path, *token, *body; /* body NULL: none */
	char idem[64];                   /* "" sends none */
	int repeat;                      /* sends this many requests, one after the other; keys get -<k> when > 1 */
	long status;                     /* of the last request */
	int created;                     /* how many were answered 201 */
	int replayed;                    /* the last answer had Idempotent-Replayed: true */
	char *answer;                    /* the last body, malloc'd: the test frees it */
};

static void *fire(void *arg)
{
	struct shot *s = arg;
	char url[512], auth[300], idem[120];
	snprintf(url, sizeof url, "%s%s", cpfx.url, s->path);
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", s->token);
	for (int k = 0; k < (s->repeat > 1 ? s->repeat : 1); k++) {
		const char *h[4] = { auth, NULL, NULL, NULL };
		int n = 1;
		if (s->body)
			h[n++] = "Content-Type: application/json";
		if (s->idem[0]) {
			if (s->repeat > 1)
				snprintf(idem, sizeof idem, "Idempotency-Key: %s-%d", s->idem, k);
			else
				snprintf(idem, sizeof idem, "Idempotency-Key: %s", s->idem);
			h[n++] = idem;
		}
		struct it_resp r;
		it_http(&r, "POST", url, h, s->body, s->body ? strlen(s->body) : 0);
		s->status = r.status;
		s->created += r.status == 201;
		char v[32];
		s->replayed = it_header(&r, "Idempotent-Replayed", v, sizeof v) == 0 && !strcmp(v, "true");
		free(s->answer);
		s->answer = r.body;
		r.body = NULL;
		if (r.status != 201 && r.status != 200)
			break;
	}
	return NULL;
}

static void shot_init(struct shot *s, const char *path, const char *token, const char *idem,
                      const char *body, int repeat)
{
	memset(s, 0, sizeof *s);
	s->path = path;
	s->token = token;
	s->body = body;
	s->repeat = repeat;
	snprintf(s->idem, sizeof s->idem, "%s", idem ? idem : "");
}

/* Runs the n shots at once. */
static void volley(struct shot *s, int n)
{
	run_at_once(s, sizeof *s, n, fire);
}

/* One batch sent concurrently under one key counts once (one 201); rival bodies get 422. */
START_TEST(usage_concurrent_replays)
{
	enum { N = 20 };
	char e[37], eu[128], b[8192];
	struct shot s[N];

	new_tenant("race-eu", "eu", "pro", e);
	/* Usage for a past month needs a tenant that existed then. */
	backdate(e, "pro", LONG_AGO);
	credential("eu", eu);
	batch(b, rec(e, MONTH_A, 1234, "2026-08-01T00:00:00Z", "2026-08-01T01:00:00Z"),
	      rec(e, MONTH_A, 4321, "2026-08-02T00:00:00Z", "2026-08-02T01:00:00Z"),
	      rec(e, MONTH_B, 7, "2026-09-01T00:00:00Z", "2026-09-01T01:00:00Z"), NULL);
	for (int i = 0; i < N; i++)
		shot_init(&s[i], "/v1/usage", eu, "the-one-batch", b, 1);
	volley(s, N);

	int created = 0, replays = 0, first = -1;
	for (int i = 0; i < N; i++) {
		ck_assert_msg(s[i].status == 201 || s[i].status == 200, "request %d: %ld: %.300s", i,
		              s[i].status, s[i].answer ? s[i].answer : "");
		ck_assert_msg(s[i].replayed == (s[i].status == 200), "request %d: %ld with replayed=%d", i,
		              s[i].status, s[i].replayed);
		created += s[i].status == 201;
		replays += s[i].status == 200;
		if (s[i].status == 201)
			first = i;
	}
	ck_assert_int_eq(created, 1);
	ck_assert_int_eq(replays, N - 1);
	json_t *want = json_loads(s[first].answer, 0, NULL);
	ck_assert_str_eq(it_js(want, "batch"), "the-one-batch");
	ck_assert_int_eq(ji(want, "records"), 3);
	ck_assert_int_eq(ji(want, "events"), 1234 + 4321 + 7);
	for (int i = 0; i < N; i++) {
		json_t *got = json_loads(s[i].answer, 0, NULL);
		ck_assert_msg(json_equal(got, want), "answer %d differs: %s", i, s[i].answer);
		json_decref(got);
		free(s[i].answer);
	}
	json_decref(want);
	/* The ledger holds the batch once. */
	ck_assert_int_eq(usage_total(e, MONTH_A), 1234 + 4321);
	ck_assert_int_eq(usage_total(e, MONTH_B), 7);
	ck_assert_int_eq(qlong("SELECT count(*) FROM usage_ledger"), 3);
	ck_assert_int_eq(qlong("SELECT count(*) FROM usage_batches"), 1);

	/* Ten different batches under one new key: exactly one wins. */
	static char bodies[10][1024];
	for (int i = 0; i < 10; i++) {
		snprintf(bodies[i], sizeof bodies[i], "{\"records\":[%s]}",
		         rec(e, MONTH_B, 1000 + i, "2026-09-02T00:00:00Z", "2026-09-02T01:00:00Z"));
		shot_init(&s[i], "/v1/usage", eu, "contested", bodies[i], 1);
	}
	volley(s, 10);
	int won = -1, refused = 0;
	for (int i = 0; i < 10; i++) {
		ck_assert_msg(s[i].status == 201 || s[i].status == 422, "request %d: %ld: %.300s", i,
		              s[i].status, s[i].answer ? s[i].answer : "");
		if (s[i].status == 201) {
			ck_assert_msg(won < 0, "two different batches were both recorded under one key");
			won = i;
		}
		refused += s[i].status == 422;
		free(s[i].answer);
	}
	ck_assert_int_eq(refused, 9);
	ck_assert_int_eq(usage_total(e, MONTH_B), 7 + 1000 + won);
	ck_assert_int_eq(qlong("SELECT count(*) FROM usage_ledger"), 4);
}
END_TEST

/* Concurrent closes invoice a month once; usage racing the close is billed exactly once. */
START_TEST(close_concurrent)
{
	enum { CLOSERS = 12, REPORTERS = 8, BATCHES = 5 };
	char t[37], eu[128], b[8192];
	struct shot s[CLOSERS + REPORTERS];

	new_tenant("close-race", "eu", "pro", t);
	backdate(t, "pro", LONG_AGO);
	credential("eu", eu);
	batch(b, rec(t, MONTH_A, 1000000, "2026-08-01T00:00:00Z", "2026-08-01T01:00:00Z"), NULL);
	json_decref(USAGE_OK(eu, "base", b, 201, 1, 1000000));

	/* Each reporter sends BATCHES batches of 1,000 August events. */
	static char one[1024];
	snprintf(one, sizeof one, "{\"records\":[%s]}",
	         rec(t, MONTH_A, 1000, "2026-08-20T00:00:00Z", "2026-08-20T01:00:00Z"));
	static char keys[REPORTERS][32];
	for (int i = 0; i < CLOSERS; i++)
		shot_init(&s[i], "/v1/billing/periods/" MONTH_A "/close", ADMIN_TOKEN, NULL, NULL, 1);
	for (int i = 0; i < REPORTERS; i++) {
		snprintf(keys[i], sizeof keys[i], "reporter-%d", i);
		shot_init(&s[CLOSERS + i], "/v1/usage", eu, keys[i], one, BATCHES);
	}
	volley(s, CLOSERS + REPORTERS);
	int created = 0;
	for (int i = 0; i < CLOSERS; i++) {
		ck_assert_msg(s[i].status == 201 || s[i].status == 200, "close %d: %ld: %.300s", i, s[i].status,
		              s[i].answer ? s[i].answer : "");
		json_t *j = json_loads(s[i].answer, 0, NULL);
		ck_assert_str_eq(it_js(j, "period"), MONTH_A);
		ck_assert_int_eq(ji(j, "invoices"), 1);
		json_decref(j);
		created += s[i].status == 201;
		free(s[i].answer);
	}
	ck_assert_int_eq(created, 1);
	for (int i = CLOSERS; i < CLOSERS + REPORTERS; i++) {
		ck_assert_msg(s[i].created == BATCHES, "reporter %d: %d of %d batches recorded, last %ld: %.300s",
		              i - CLOSERS, s[i].created, BATCHES, s[i].status, s[i].answer ? s[i].answer : "");
		free(s[i].answer);
	}
	ck_assert_int_eq(qlong("SELECT count(*) FROM invoices"), 1);
	ck_assert_int_eq(qlong("SELECT count(*) FROM billing_periods"), 1);

	CLOSE(MONTH_B, 201, 1);
	const long long total = 1000000 + REPORTERS * BATCHES * 1000LL;
	ck_assert_int_eq(usage_total(t, MONTH_A), total);
	ck_assert_int_eq(qlong("SELECT count(*) FROM usage_ledger WHERE invoice_id IS NULL"), 0);
	/* x: the August events August's invoice billed (as the ledger says);
	 * the rest are late. Pro: overage(n) = ⌈(n − 1,000,000) × 50 / 1000⌉,
	 * so q / 20 cents exactly: every batch is 1,000 events. */
	long long x = qlong(it_fmt("SELECT sum(events) FROM usage_ledger WHERE invoice_id = "
	                        "(SELECT id FROM invoices WHERE tenant_id = '%s' AND period = '2026-08-01')", t));
	long long q = x - 1000000, late = total - x;
	ck_assert_msg(q >= 0 && late >= 0, "August's invoice billed %lld of %lld events", x, total);
	json_t *inv;
	if (q > 0)
		inv = EXPECT_INVOICE(t, MONTH_A, "pro", "USD", 4900 + q / 20,
		                     LINES({ "base", MONTH_A, 1, 4900 }, { "overage", MONTH_A, q, q / 20 }));
	else
		inv = EXPECT_INVOICE(t, MONTH_A, "pro", "USD", 4900, LINES({ "base", MONTH_A, 1, 4900 }));
	json_decref(inv);
	if (late > 0)
		inv = EXPECT_INVOICE(t, MONTH_B, "pro", "USD", 4900 + late / 20,
		                     LINES({ "base", MONTH_B, 1, 4900 }, { "adjustment", MONTH_A, late, late / 20 }));
	else
		inv = EXPECT_INVOICE(t, MONTH_B, "pro", "USD", 4900, LINES({ "base", MONTH_B, 1, 4900 }));
	json_decref(inv);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 3. A region reports only its own tenants                            */

/* A region reporting another region's or an unknown tenant: 403, nothing of the batch kept. */
START_TEST(usage_home_region_only)
{
	char e[37], u[37], j[37], eu[128], us[128], b[8192];
	struct res r;

	new_tenant("home-eu", "eu", "pro", e);
	new_tenant("home-us", "us", "pro", u);
	new_tenant("home-jp", "jp", "pro", j);
	/* Usage for a past month needs a tenant that existed then. */
	backdate(e, "pro", LONG_AGO);
	backdate(u, "pro", LONG_AGO);
	backdate(j, "pro", LONG_AGO);
	credential("eu", eu);
	credential("us", us);
	batch(b, rec(u, MONTH_A, 10, "2026-08-01T00:00:00Z", "2026-08-01T01:00:00Z"), NULL);
	json_decref(USAGE_OK(us, "us-own", b, 201, 1, 10));
	json_t *u0 = get_usage(ADMIN_TOKEN, u, MONTH_A);

	/* eu reports us's tenant: refused, nothing recorded. */
	post_usage(&r, eu, "foreign", b);
	EXPECT_PROBLEM(&r, 403, "forbidden", NULL);
	ck_assert_msg(!strstr(r.raw.body, "home-us"), "the refusal names the other region's tenant");
	res_free(&r);
	json_t *u1 = get_usage(ADMIN_TOKEN, u, MONTH_A);
	ck_assert_msg(json_equal(u0, u1), "us's tenant's usage changed after a refused batch");
	json_decref(u1);

	/* A mixed batch: two of eu's own records and one of jp's tenant. */
	batch(b, rec(e, MONTH_A, 100, "2026-08-01T00:00:00Z", "2026-08-01T01:00:00Z"),
	      rec(j, MONTH_A, 200, "2026-08-01T00:00:00Z", "2026-08-01T01:00:00Z"),
	      rec(e, MONTH_A, 300, "2026-08-02T00:00:00Z", "2026-08-02T01:00:00Z"), NULL);
	post_usage(&r, eu, "mixed", b);
	EXPECT_PROBLEM(&r, 403, "forbidden", NULL);
	res_free(&r);
	ck_assert_int_eq(usage_total(e, MONTH_A), 0);
	ck_assert_int_eq(usage_total(j, MONTH_A), 0);

	/* An unknown tenant (a well-formed id that names no one). */
	batch(b, rec(e, MONTH_A, 100, "2026-08-01T00:00:00Z", "2026-08-01T01:00:00Z"),
	      rec("00000000-0000-4000-8000-000000000000", MONTH_A, 1, "2026-08-01T00:00:00Z",
	          "2026-08-01T01:00:00Z"), NULL);
	post_usage(&r, eu, "unknown", b);
	EXPECT_PROBLEM(&r, 403, "forbidden", NULL);
	res_free(&r);
	ck_assert_int_eq(usage_total(e, MONTH_A), 0);
	ck_assert_int_eq(qlong("SELECT count(*) FROM usage_ledger"), 1);
	ck_assert_int_eq(qlong("SELECT count(*) FROM usage_batches"), 1);

	/* A refusal recorded nothing, so its key is free for the corrected batch. */
	batch(b, rec(e, MONTH_A, 100, "2026-08-01T00:00:00Z", "2026-08-01T01:00:00Z"),
	      rec(e, MONTH_A, 300, "2026-08-02T00:00:00Z", "2026-08-02T01:00:00Z"), NULL);
	json_decref(USAGE_OK(eu, "mixed", b, 201, 2, 400));
	ck_assert_int_eq(usage_total(e, MONTH_A), 400);
	json_t *u2 = get_usage(ADMIN_TOKEN, u, MONTH_A);
	ck_assert_msg(json_equal(u0, u2), "us's tenant's usage changed");
	json_decref(u2);
	json_decref(u0);
	/* An empty month reads as zero. */
	json_t *z = get_usage(ADMIN_TOKEN, j, MONTH_B);
	ck_assert_int_eq(ji(z, "total"), 0);
	ck_assert_int_eq(json_array_size(json_object_get(z, "by_day")), 0);
	ck_assert_int_eq(json_array_size(json_object_get(z, "by_region")), 0);
	json_decref(z);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 4. Closing periods, and an invoice's life                           */

/* Closing twice changes nothing, open months stay open, invoices go draft → finalized → void. */
START_TEST(close_and_invoice_states)
{
	char t[37], t2[37], t3[37], eu[128], b[8192], now[8], next[8];
	struct res r;

	new_tenant("close-a", "eu", "pro", t);
	new_tenant("close-b", "eu", "pro", t2);
	new_tenant("close-gone", "eu", "pro", t3);
	backdate(t, "pro", LONG_AGO);
	backdate(t2, "pro", LONG_AGO);
	backdate(t3, "pro", LONG_AGO);
	api(&r, "DELETE", it_fmt("/v1/tenants/%s", t3), ADMIN_TOKEN, NULL); /* no invoice for it */
	EXPECT(&r, 200);
	res_free(&r);
	credential("eu", eu);
	batch(b, rec(t, MONTH_A, 1000010, "2026-08-05T00:00:00Z", "2026-08-05T01:00:00Z"), NULL);
	json_decref(USAGE_OK(eu, "a-1", b, 201, 1, 1000010));

	/* Months not over yet, and malformed ones. */
	month_from_now(0, now);
	month_from_now(1, next);
	CLOSE(now, 409, 0);
	CLOSE(next, 409, 0);
	static const char *const bad[] = { "2026-8", "2026-13", "2026-00", "26-08", "2026-08-01",
		                               "2026_08", "abcd-ef", "202608" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		api(&r, "POST", it_fmt("/v1/billing/periods/%s/close", bad[i]), ADMIN_TOKEN, NULL);
		ck_assert_msg(r.status == 400, "closing '%s': %ld, want 400: %.300s", bad[i], r.status, r.raw.body);
		res_free(&r);
	}
	ck_assert_int_eq(qlong("SELECT count(*) FROM billing_periods"), 0);
	ck_assert_int_eq(qlong("SELECT count(*) FROM invoices"), 0);

	/* T, pro: 10 events beyond 1,000,000; 10 × 50 / 1000 = 0.5 → 1.
	 * 4,900 + 1 = 4,901. T2 existed but used nothing: 4,900. */
	char closed_at[64];
	snprintf(closed_at, sizeof closed_at, "%s", CLOSE(MONTH_A, 201, 2));
	json_t *a = EXPECT_INVOICE(t, MONTH_A, "pro", "USD", 4901,
	                           LINES({ "base", MONTH_A, 1, 4900 }, { "overage", MONTH_A, 10, 1 }));
	json_t *a2 = EXPECT_INVOICE(t2, MONTH_A, "pro", "USD", 4900, LINES({ "base", MONTH_A, 1, 4900 }));

	/* Late usage, then August closed again: nothing changes, the late
	 * events wait for the next close. */
	batch(b, rec(t, MONTH_A, 990, "2026-08-30T00:00:00Z", "2026-08-30T01:00:00Z"), NULL);
	json_decref(USAGE_OK(eu, "a-late", b, 201, 1, 990));
	char *before = billing_snapshot();
	ck_assert_str_eq(CLOSE(MONTH_A, 200, 2), closed_at);
	char *after = billing_snapshot();
	ck_assert_str_eq(before, after);
	free(before);
	free(after);
	ck_assert_int_eq(qlong("SELECT count(*) FROM usage_ledger WHERE invoice_id IS NULL"), 1);

	/* draft → finalized; then no second finalize. */
	const char *id = it_js(a, "id");
	invoice_action(&r, id, "finalize");
	EXPECT(&r, 200);
	ck_assert_str_eq(it_js(r.json, "status"), "finalized");
	ck_assert_msg(is_api_time(it_js(r.json, "finalized_at")), "%s", r.raw.body);
	ck_assert(json_is_null(json_object_get(r.json, "voided_at")));
	ck_assert_int_eq(ji(r.json, "total"), 4901);
	res_free(&r);
	invoice_action(&r, id, "finalize");
	EXPECT_PROBLEM(&r, 409, "conflict", NULL);
	res_free(&r);
	/* A finalized invoice cannot be changed, not even by SQL. */
	q_fails(it_fmt("UPDATE invoices SET total = total + 1 WHERE id = '%s'", id), "23514");
	q_fails(it_fmt("UPDATE invoices SET plan = 'free' WHERE id = '%s'", id), "23514");
	q_fails(it_fmt("UPDATE invoices SET status = 'draft' WHERE id = '%s'", id), "23514");
	ck_assert_int_eq(qlong(it_fmt("SELECT total FROM invoices WHERE id = '%s'", id)), 4901);

	/* September: T's late August events as an adjustment, priced with pro:
	 * overage(1,001,000) = 1,000 × 50 / 1000 = 50, minus the 1 billed: 49.
	 * 4,900 + 49 = 4,949. The finalized August invoice stays as it was. */
	CLOSE(MONTH_B, 201, 2);
	json_decref(EXPECT_INVOICE(t, MONTH_B, "pro", "USD", 4949,
	                           LINES({ "base", MONTH_B, 1, 4900 }, { "adjustment", MONTH_A, 990, 49 })));
	json_t *a_now = EXPECT_INVOICE(t, MONTH_A, "pro", "USD", 4901,
	                               LINES({ "base", MONTH_A, 1, 4900 }, { "overage", MONTH_A, 10, 1 }));
	ck_assert_str_eq(it_js(a_now, "status"), "finalized");
	json_decref(a_now);

	/* Late usage for both closed months, then October closed. August:
	 * 1,000,010 + 990 = 1,001,000 already billed (by its invoice and by
	 * September's adjustment), 500 late: overage(1,001,500) = ⌈1,500 × 50
	 * / 1000⌉ = 75, minus overage(1,001,000) = 50: 25. September: nothing
	 * billed, 1,000,100 late: overage = ⌈100 × 50 / 1000⌉ = 5, minus 0: 5.
	 * 4,900 + 25 + 5 = 4,930. */
	batch(b, rec(t, MONTH_A, 500, "2026-08-30T00:00:00Z", "2026-08-30T01:00:00Z"),
	      rec(t, MONTH_B, 1000100, "2026-09-30T00:00:00Z", "2026-09-30T01:00:00Z"), NULL);
	json_decref(USAGE_OK(eu, "ab-late", b, 201, 2, 1000600));
	CLOSE("2026-10", 201, 2);
	json_decref(EXPECT_INVOICE(t, "2026-10", "pro", "USD", 4930,
	                           LINES({ "base", "2026-10", 1, 4900 }, { "adjustment", MONTH_A, 500, 25 },
	                                 { "adjustment", MONTH_B, 1000100, 5 })));
	json_decref(EXPECT_INVOICE(t2, "2026-10", "pro", "USD", 4900, LINES({ "base", "2026-10", 1, 4900 })));
	json_t *items = invoice_list(t);
	ck_assert_int_eq(json_array_size(items), 3);
	ck_assert_str_eq(it_js(json_array_get(items, 0), "period"), "2026-10");
	ck_assert_str_eq(it_js(json_array_get(items, 2), "period"), MONTH_A);
	json_decref(items);
	items = invoice_list(t3);
	ck_assert_int_eq(json_array_size(items), 0);
	json_decref(items);

	/* finalized → void; then nothing more. */
	invoice_action(&r, id, "void");
	EXPECT(&r, 200);
	ck_assert_str_eq(it_js(r.json, "status"), "void");
	ck_assert_msg(is_api_time(it_js(r.json, "voided_at")), "%s", r.raw.body);
	ck_assert_msg(is_api_time(it_js(r.json, "finalized_at")), "%s", r.raw.body);
	res_free(&r);
	invoice_action(&r, id, "void");
	EXPECT_PROBLEM(&r, 409, "conflict", NULL);
	res_free(&r);
	invoice_action(&r, id, "finalize");
	EXPECT_PROBLEM(&r, 409, "conflict", NULL);
	res_free(&r);
	q_fails(it_fmt("UPDATE invoices SET status = 'finalized' WHERE id = '%s'", id), "23514");

	/* draft → void directly; a void draft cannot be finalized. */
	const char *id2 = it_js(a2, "id");
	invoice_action(&r, id2, "void");
	EXPECT(&r, 200);
	ck_assert_str_eq(it_js(r.json, "status"), "void");
	ck_assert(json_is_null(json_object_get(r.json, "finalized_at")));
	res_free(&r);
	invoice_action(&r, id2, "finalize");
	EXPECT_PROBLEM(&r, 409, "conflict", NULL);
	res_free(&r);

	/* No such invoice. */
	invoice_action(&r, "00000000-0000-4000-8000-000000000000", "finalize");
	EXPECT_PROBLEM(&r, 404, "not_found", NULL);
	res_free(&r);
	invoice_action(&r, "not-an-id", "void");
	EXPECT_PROBLEM(&r, 404, "not_found", NULL);
	res_free(&r);
	api(&r, "GET", "/v1/invoices/00000000-0000-4000-8000-000000000000", ADMIN_TOKEN, NULL);
	EXPECT_PROBLEM(&r, 404, "not_found", NULL);
	res_free(&r);
	json_decref(a);
	json_decref(a2);
}
END_TEST

/* Usage reported while its month was open is billed by that month, whatever the closing order. */
START_TEST(close_out_of_order)
{
	char t[37], eu[128], b[8192];

	new_tenant("order-eu", "eu", "pro", t);
	backdate(t, "pro", LONG_AGO);
	credential("eu", eu);
	batch(b, rec(t, MONTH_A, 1000100, "2026-08-01T00:00:00Z", "2026-08-01T01:00:00Z"),
	      rec(t, MONTH_B, 1000200, "2026-09-01T00:00:00Z", "2026-09-01T01:00:00Z"), NULL);
	json_decref(USAGE_OK(eu, "both", b, 201, 2, 2000300));
	/* September first: 200 beyond 1,000,000; 200 × 50 / 1000 = 10.
	 * 4,900 + 10 = 4,910. August's events are not late: August is open. */
	CLOSE(MONTH_B, 201, 1);
	json_decref(EXPECT_INVOICE(t, MONTH_B, "pro", "USD", 4910,
	                           LINES({ "base", MONTH_B, 1, 4900 }, { "overage", MONTH_B, 200, 10 })));
	/* Then August: 100 beyond; 100 × 50 / 1000 = 5. 4,900 + 5 = 4,905. */
	CLOSE(MONTH_A, 201, 1);
	json_decref(EXPECT_INVOICE(t, MONTH_A, "pro", "USD", 4905,
	                           LINES({ "base", MONTH_A, 1, 4900 }, { "overage", MONTH_A, 100, 5 })));
	ck_assert_int_eq(qlong("SELECT count(*) FROM usage_ledger WHERE invoice_id IS NULL"), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 5. Who may call what                                                */

enum who { ANON, GARBAGE, REGION, OWNER_B, MEMBER_A, OWNER_A, ADMIN, NWHO };
static const char *const who_name[NWHO] = { "anonymous", "a garbage token", "eu's region credential",
	                                        "the owner of B", "a member of A", "the owner of A",
	                                        "the admin token" };

struct authz_row {
	const char *method;
	const char *path;  /* {A}: tenant A; {inv}: A's August invoice; {n}: a counter */
	const char *body;  /* same placeholders; NULL sends none */
	int expect[NWHO];  /* anonymous, garbage, region, owner B, member A, owner A, admin */
};

/* Tenant users read their own tenant's usage and invoices (owners only;
 * another tenant's are 404); only admins price, close, finalize and void;
 * only a region's credential reports usage. */
static const struct authz_row authz_rows[] = {
	{ "GET", "/v1/plans", NULL, { 200, 200, 200, 200, 200, 200, 200 } },
	{ "GET", "/v1/tenants/{A}/usage?period=" MONTH_A, NULL, { 401, 401, 403, 404, 403, 200, 200 } },
	{ "GET", "/v1/tenants/{A}/invoices", NULL, { 401, 401, 403, 404, 403, 200, 200 } },
	{ "POST", "/v1/usage",
	  "{\"records\":[{\"tenant\":\"{A}\",\"period\":\"" MONTH_A "\",\"events\":1,"
	  "\"window_start\":\"2026-08-09T00:00:00Z\",\"window_end\":\"2026-08-09T00:00:00Z\"}]}",
	  { 401, 401, 201, 403, 403, 403, 403 } },
	{ "POST", "/v1/plans",
	  "{\"id\":\"p{n}\",\"name\":\"P\",\"currency\":\"USD\",\"base_price\":1,\"events_included\":1,"
	  "\"price_per_1000\":1,\"rate_limit\":1,\"burst\":1,\"monthly_event_quota\":1,\"retention_days\":1}",
	  { 401, 401, 403, 403, 403, 403, 201 } },
	{ "PATCH", "/v1/plans/pro", "{\"name\":\"Pro\"}", { 401, 401, 403, 403, 403, 403, 200 } },
	{ "POST", "/v1/billing/periods/" MONTH_A "/close", NULL, { 401, 401, 403, 403, 403, 403, 200 } },
	{ "POST", "/v1/invoices/{inv}/finalize", NULL, { 401, 401, 403, 403, 403, 403, 200 } },
	{ "POST", "/v1/invoices/{inv}/void", NULL, { 401, 401, 403, 403, 403, 403, 200 } },
	/* "owner of its tenant, admin; others 404": a member of A included. */
	{ "GET", "/v1/invoices/{inv}", NULL, { 401, 401, 403, 404, 404, 200, 200 } },
};

/* Replaces {A}, {inv} and {n} in `tpl`. */
static void expand(const char *tpl, const char *a, const char *inv, int n, char *out, size_t len)
{
	size_t o = 0;
	for (const char *p = tpl; *p;) {
		char num[16];
		const char *val = NULL;
		size_t skip = 1;
		snprintf(num, sizeof num, "%d", n);
		if (!strncmp(p, "{A}", 3))
			val = a, skip = 3;
		else if (!strncmp(p, "{inv}", 5))
			val = inv, skip = 5;
		else if (!strncmp(p, "{n}", 3))
			val = num, skip = 3;
		size_t k = val ? strlen(val) : 1;
		ck_assert_msg(o + k < len, "expand: %s is too long", tpl);
		memcpy(out + o, val ? val : p, k);
		o += k;
		p += skip;
	}
	out[o] = '\0';
}

/* Each principal gets the table's answer on every billing route; B's owner never sees A's. */
START_TEST(billing_authz)
{
	char a[37], bb[37], tok[NWHO][128], b[8192], inv[37];
	struct res r;

	new_tenant("tenant-a", "eu", "pro", a);
	new_tenant("tenant-b", "us", "pro", bb);
	backdate(a, "pro", LONG_AGO);
	new_user(a, "owner@a.test", "owner", NULL);
	new_user(a, "member@a.test", "member", NULL);
	new_user(bb, "owner@b.test", "owner", NULL);
	memset(tok, 0, sizeof tok);
	snprintf(tok[GARBAGE], sizeof tok[GARBAGE], "cts_thisIsNotATokenAnyoneWasGiven0123456789abc");
	credential("eu", tok[REGION]);
	login("tenant-b", "owner@b.test", tok[OWNER_B]);
	login("tenant-a", "member@a.test", tok[MEMBER_A]);
	login("tenant-a", "owner@a.test", tok[OWNER_A]);
	snprintf(tok[ADMIN], sizeof tok[ADMIN], "%s", ADMIN_TOKEN);

	batch(b, rec(a, MONTH_A, 5, "2026-08-01T00:00:00Z", "2026-08-01T00:00:00Z"), NULL);
	json_decref(USAGE_OK(tok[REGION], "authz-0", b, 201, 1, 5));
	CLOSE(MONTH_A, 201, 1);
	json_t *items = invoice_list(a);
	snprintf(inv, sizeof inv, "%s", it_js(json_array_get(items, 0), "id"));
	json_decref(items);

	int n = 0;
	for (size_t i = 0; i < sizeof authz_rows / sizeof authz_rows[0]; i++) {
		const struct authz_row *row = &authz_rows[i];
		for (int who = 0; who < NWHO; who++) {
			char path[512], body[1024];
			n++;
			expand(row->path, a, inv, n, path, sizeof path);
			if (row->body)
				expand(row->body, a, inv, n, body, sizeof body);
			struct opts o = { .token = who == ANON ? NULL : tok[who], .idem = it_fmt("authz-%d", n) };
			api_ex(&r, row->method, path, &o, row->body ? body : NULL, row->body ? strlen(body) : 0);
			ck_assert_msg(r.status == row->expect[who], "%s %s as %s: %ld, want %d: %.300s",
			              row->method, path, who_name[who], r.status, row->expect[who], r.raw.body);
			if (who == OWNER_B || who == REGION)
				ck_assert_msg(!strstr(r.raw.body, inv) && (r.status < 300 || !strstr(r.raw.body, a)),
				              "%s %s shows tenant A's objects to %s", row->method, path, who_name[who]);
			res_free(&r);
		}
	}
	/* Only the region's one accepted report was recorded: 5 + 1 events. */
	ck_assert_int_eq(usage_total(a, MONTH_A), 6);
	ck_assert_int_eq(qlong("SELECT count(*) FROM plans"), 4);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 6. Plans                                                            */

/* Plans show their prices; admins change them (400 by field); changes reach only their regions. */
START_TEST(plans)
{
	struct res r;
	long v[NREGIONS];
	char p1[37], p2[37], p3[37];

	api(&r, "GET", "/v1/plans", NULL, NULL);
	EXPECT(&r, 200);
	static const struct {
		const char *id, *name;
		long long base, included, per1000, rate, burst, quota, retention;
	} seeded[] = {
		{ "free", "Free", 0, 100000, 0, 10, 20, 100000, 30 },
		{ "pro", "Pro", 4900, 1000000, 50, 200, 400, 10000000, 365 },
		{ "enterprise", "Enterprise", 99900, 50000000, 20, 2000, 4000, 1000000000, 2555 },
	};
	json_t *items = json_object_get(r.json, "items");
	ck_assert_int_eq(json_array_size(items), 3);
	for (size_t k = 0; k < 3; k++) {
		size_t i;
		json_t *it, *p = NULL;
		json_array_foreach(items, i, it)
			if (!strcmp(it_js(it, "id"), seeded[k].id))
				p = it;
		ck_assert_msg(p, "no plan %s", seeded[k].id);
		ck_assert_str_eq(it_js(p, "name"), seeded[k].name);
		ck_assert_str_eq(it_js(p, "currency"), "USD");
		ck_assert_int_eq(ji(p, "base_price"), seeded[k].base);
		ck_assert_int_eq(ji(p, "events_included"), seeded[k].included);
		ck_assert_int_eq(ji(p, "price_per_1000"), seeded[k].per1000);
		ck_assert_int_eq(ji(p, "rate_limit"), seeded[k].rate);
		ck_assert_int_eq(ji(p, "burst"), seeded[k].burst);
		ck_assert_int_eq(ji(p, "monthly_event_quota"), seeded[k].quota);
		ck_assert_int_eq(ji(p, "retention_days"), seeded[k].retention);
		ck_assert(is_api_time(it_js(p, "created_at")));
		ck_assert(is_api_time(it_js(p, "updated_at")));
		ck_assert_int_eq(json_object_size(p), 12);
	}
	res_free(&r);

	/* Tenants on pro in eu, on pro in us (deleted), on free in jp. */
	new_tenant("plan-eu", "eu", "pro", p1);
	new_tenant("plan-us", "us", "pro", p2);
	new_tenant("plan-jp", "jp", "free", p3);
	api(&r, "DELETE", it_fmt("/v1/tenants/%s", p2), ADMIN_TOKEN, NULL);
	EXPECT(&r, 200);
	res_free(&r);
	versions(v);

	const char *team = "{\"id\":\"team\",\"name\":\"Team\",\"currency\":\"GBP\",\"base_price\":1500,"
	                   "\"events_included\":250000,\"price_per_1000\":3,\"rate_limit\":50,\"burst\":100,"
	                   "\"monthly_event_quota\":500000,\"retention_days\":90}";
	api(&r, "POST", "/v1/plans", ADMIN_TOKEN, team);
	EXPECT(&r, 201);
	json_t *want = json_loads(team, 0, NULL);
	const char *k;
	json_t *val;
	json_object_foreach(want, k, val)
		ck_assert_msg(json_equal(json_object_get(r.json, k), val), "member %s: %s", k, r.raw.body);
	ck_assert(is_api_time(it_js(r.json, "created_at")));
	ck_assert(is_api_time(it_js(r.json, "updated_at")));
	json_decref(want);
	res_free(&r);
	EXPECT_VERSIONS(v, 0, 0, 0, 0); /* nobody is on it */
	api(&r, "POST", "/v1/plans", ADMIN_TOKEN, team);
	EXPECT_PROBLEM(&r, 409, "conflict", "id");
	res_free(&r);

	/* pro changes: eu's tenant is on it; us's is deleted. */
	api(&r, "PATCH", "/v1/plans/pro", ADMIN_TOKEN, "{\"price_per_1000\":60,\"events_included\":2000000}");
	EXPECT(&r, 200);
	ck_assert_int_eq(ji(r.json, "price_per_1000"), 60);
	ck_assert_int_eq(ji(r.json, "events_included"), 2000000);
	ck_assert_int_eq(ji(r.json, "base_price"), 4900);
	ck_assert_str_eq(it_js(r.json, "currency"), "USD");
	ck_assert_str_eq(it_js(r.json, "name"), "Pro");
	res_free(&r);
	EXPECT_VERSIONS(v, 0, 1, 0, 0);
	api(&r, "PATCH", "/v1/plans/free", ADMIN_TOKEN, "{\"name\":\"Free tier\",\"base_price\":0}");
	EXPECT(&r, 200);
	ck_assert_str_eq(it_js(r.json, "name"), "Free tier");
	res_free(&r);
	EXPECT_VERSIONS(v, 0, 0, 0, 1);
	api(&r, "PATCH", "/v1/plans/enterprise", ADMIN_TOKEN, "{\"currency\":\"EUR\"}");
	EXPECT(&r, 200);
	ck_assert_str_eq(it_js(r.json, "currency"), "EUR");
	res_free(&r);
	api(&r, "PATCH", "/v1/plans/team", ADMIN_TOKEN, "{\"base_price\":1600}");
	EXPECT(&r, 200);
	res_free(&r);
	EXPECT_VERSIONS(v, 0, 0, 0, 0);

	/* Bad values: 400 naming the field, nothing changed. */
	static const struct { const char *method, *path, *body, *field; } bad[] = {
		{ "PATCH", "/v1/plans/pro", "{\"currency\":\"usd\"}", "currency" },
		{ "PATCH", "/v1/plans/pro", "{\"currency\":\"US\"}", "currency" },
		{ "PATCH", "/v1/plans/pro", "{\"currency\":\"USDX\"}", "currency" },
		{ "PATCH", "/v1/plans/pro", "{\"currency\":\"U1D\"}", "currency" },
		{ "PATCH", "/v1/plans/pro", "{\"base_price\":-1}", "base_price" },
		{ "PATCH", "/v1/plans/pro", "{\"events_included\":-1}", "events_included" },
		{ "PATCH", "/v1/plans/pro", "{\"price_per_1000\":-50}", "price_per_1000" },
		{ "PATCH", "/v1/plans/pro", "{\"base_price\":1.5}", "base_price" },
		{ "PATCH", "/v1/plans/pro", "{\"base_price\":\"4900\"}", "base_price" },
		{ "PATCH", "/v1/plans/pro", "{\"id\":\"pro2\"}", "id" },
		{ "POST", "/v1/plans",
		  "{\"id\":\"bad\",\"name\":\"Bad\",\"currency\":\"eur\",\"base_price\":1,\"events_included\":1,"
		  "\"price_per_1000\":1,\"rate_limit\":1,\"burst\":1,\"monthly_event_quota\":1,\"retention_days\":1}",
		  "currency" },
		{ "POST", "/v1/plans",
		  "{\"id\":\"bad\",\"name\":\"Bad\",\"currency\":\"EUR\",\"base_price\":-1,\"events_included\":1,"
		  "\"price_per_1000\":1,\"rate_limit\":1,\"burst\":1,\"monthly_event_quota\":1,\"retention_days\":1}",
		  "base_price" },
		{ "POST", "/v1/plans",
		  "{\"id\":\"bad\",\"name\":\"Bad\",\"currency\":\"EUR\",\"base_price\":1,\"events_included\":-1,"
		  "\"price_per_1000\":1,\"rate_limit\":1,\"burst\":1,\"monthly_event_quota\":1,\"retention_days\":1}",
		  "events_included" },
		{ "POST", "/v1/plans",
		  "{\"id\":\"bad\",\"name\":\"Bad\",\"currency\":\"EUR\",\"base_price\":1,\"events_included\":1,"
		  "\"price_per_1000\":-1,\"rate_limit\":1,\"burst\":1,\"monthly_event_quota\":1,\"retention_days\":1}",
		  "price_per_1000" },
		{ "POST", "/v1/plans",
		  "{\"id\":\"bad\",\"name\":\"Bad\",\"base_price\":1,\"events_included\":1,"
		  "\"price_per_1000\":1,\"rate_limit\":1,\"burst\":1,\"monthly_event_quota\":1,\"retention_days\":1}",
		  "currency" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		api(&r, bad[i].method, bad[i].path, ADMIN_TOKEN, bad[i].body);
		ck_assert_msg(r.status == 400 && !strcmp(it_js(r.json, "field"), bad[i].field),
		              "%s %s %s: %ld field '%s', want 400 naming %s: %.300s", bad[i].method,
		              bad[i].path, bad[i].body, r.status, it_js(r.json, "field"), bad[i].field, r.raw.body);
		res_free(&r);
	}
	EXPECT_VERSIONS(v, 0, 0, 0, 0);
	ck_assert_int_eq(qlong("SELECT count(*) FROM plans WHERE id = 'bad'"), 0);
	ck_assert_int_eq(qlong("SELECT price_per_1000 FROM plans WHERE id = 'pro'"), 60);
	ck_assert_int_eq(qlong("SELECT base_price FROM plans WHERE id = 'pro'"), 4900);
	api(&r, "PATCH", "/v1/plans/nope", ADMIN_TOKEN, "{\"base_price\":1}");
	EXPECT_PROBLEM(&r, 404, "not_found", NULL);
	res_free(&r);
	api(&r, "GET", "/v1/plans", NULL, NULL);
	EXPECT(&r, 200);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "items")), 4);
	res_free(&r);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 7. Usage validation                                                 */

/* A malformed batch is 400 naming records[i].<member> and keeps nothing; 1 to 1000 records. */
START_TEST(usage_validation)
{
	char e[37], eu[128], b[8192];
	struct res r;

	new_tenant("valid-eu", "eu", "pro", e);
	/* Usage for a past month needs a tenant that existed then. */
	backdate(e, "pro", LONG_AGO);
	credential("eu", eu);
	const char *good = rec(e, MONTH_A, 5, "2026-08-10T00:00:00Z", "2026-08-10T01:00:00Z");
	char goodtext[512];
	snprintf(goodtext, sizeof goodtext, "%s", good);

	/* The Idempotency-Key is required: a missing one is a missing field
	 * and a malformed one, last below, an invalid one (validation_failed
	 * naming it, as on every route that takes the header). */
	batch(b, goodtext, NULL);
	post_usage(&r, eu, NULL, b);
	EXPECT_PROBLEM(&r, 400, "validation_failed", "Idempotency-Key");
	res_free(&r);

	static const struct { const char *record, *field; } bad[] = {
		{ "{\"tenant\":\"not-a-uuid\",\"period\":\"2026-08\",\"events\":1,"
		  "\"window_start\":\"2026-08-10T00:00:00Z\",\"window_end\":\"2026-08-10T00:00:00Z\"}", "tenant" },
		{ "{\"tenant\":\"{E}\",\"period\":\"2026-8\",\"events\":1,"
		  "\"window_start\":\"2026-08-10T00:00:00Z\",\"window_end\":\"2026-08-10T00:00:00Z\"}", "period" },
		{ "{\"tenant\":\"{E}\",\"period\":\"2026-13\",\"events\":1,"
		  "\"window_start\":\"2026-08-10T00:00:00Z\",\"window_end\":\"2026-08-10T00:00:00Z\"}", "period" },
		{ "{\"tenant\":\"{E}\",\"period\":\"2026-08\",\"events\":-1,"
		  "\"window_start\":\"2026-08-10T00:00:00Z\",\"window_end\":\"2026-08-10T00:00:00Z\"}", "events" },
		{ "{\"tenant\":\"{E}\",\"period\":\"2026-08\",\"events\":1.5,"
		  "\"window_start\":\"2026-08-10T00:00:00Z\",\"window_end\":\"2026-08-10T00:00:00Z\"}", "events" },
		{ "{\"tenant\":\"{E}\",\"period\":\"2026-08\",\"events\":\"5\","
		  "\"window_start\":\"2026-08-10T00:00:00Z\",\"window_end\":\"2026-08-10T00:00:00Z\"}", "events" },
		{ "{\"tenant\":\"{E}\",\"period\":\"2026-08\","
		  "\"window_start\":\"2026-08-10T00:00:00Z\",\"window_end\":\"2026-08-10T00:00:00Z\"}", "events" },
		{ "{\"tenant\":\"{E}\",\"period\":\"2026-08\",\"events\":1,"
		  "\"window_start\":\"yesterday\",\"window_end\":\"2026-08-10T00:00:00Z\"}", "window_start" },
		/* the first instant of September is not in August */
		{ "{\"tenant\":\"{E}\",\"period\":\"2026-08\",\"events\":1,"
		  "\"window_start\":\"2026-09-01T00:00:00Z\",\"window_end\":\"2026-09-01T00:00:00Z\"}", "window_start" },
		/* 23:30 -02:00 on 31 August is 01:30 UTC on 1 September */
		{ "{\"tenant\":\"{E}\",\"period\":\"2026-08\",\"events\":1,"
		  "\"window_start\":\"2026-08-31T23:30:00-02:00\",\"window_end\":\"2026-09-01T02:00:00Z\"}",
		  "window_start" },
		{ "{\"tenant\":\"{E}\",\"period\":\"2026-08\",\"events\":1,"
		  "\"window_start\":\"2026-07-31T23:59:59Z\",\"window_end\":\"2026-08-01T00:00:00Z\"}", "window_start" },
		{ "{\"tenant\":\"{E}\",\"period\":\"2026-08\",\"events\":1,"
		  "\"window_start\":\"2026-08-10T00:00:00Z\",\"window_end\":\"2026-08-09T23:59:59Z\"}", "window_end" },
		{ "{\"tenant\":\"{E}\",\"period\":\"2026-08\",\"events\":1,"
		  "\"window_start\":\"2026-08-10T00:00:00Z\",\"window_end\":\"2026-08-10T00:00:00Z\",\"region\":\"eu\"}",
		  "region" },
	};
	/* Each bad record sits third in its batch, after two good ones; one
	 * key for all, since a failure records nothing. */
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char record[512];
		size_t o = 0;
		for (const char *p = bad[i].record; *p;)
			if (!strncmp(p, "{E}", 3)) {
				o += (size_t)snprintf(record + o, sizeof record - o, "%s", e);
				p += 3;
			} else
				record[o++] = *p++;
		record[o] = '\0';
		batch(b, goodtext, goodtext, record, NULL);
		post_usage(&r, eu, "one-key", b);
		const char *want = it_fmt("records[2].%s", bad[i].field);
		ck_assert_msg(r.status == 400 && !strcmp(it_js(r.json, "code"), "validation_failed") &&
		              !strcmp(it_js(r.json, "field"), want),
		              "%s: %ld %s field '%s', want 400 validation_failed naming %s: %.300s", record,
		              r.status, it_js(r.json, "code"), it_js(r.json, "field"), want, r.raw.body);
		res_free(&r);
	}
	static const struct { const char *body, *code, *field; } bad_body[] = {
		{ "{\"records\":[]}", "validation_failed", "records" },
		{ "{}", "validation_failed", "records" },
		{ "{\"records\":{}}", "validation_failed", "records" },
		{ "{\"records\":[1]}", "validation_failed", "records[0]" },
		{ "{\"records\":[], \"extra\":1}", "validation_failed", NULL },
		{ "not json", "invalid_json", NULL },
	};
	for (size_t i = 0; i < sizeof bad_body / sizeof bad_body[0]; i++) {
		post_usage(&r, eu, "one-key", bad_body[i].body);
		ck_assert_msg(r.status == 400 && !strcmp(it_js(r.json, "code"), bad_body[i].code) &&
		              (!bad_body[i].field || !strcmp(it_js(r.json, "field"), bad_body[i].field)),
		              "%s: %ld %s field '%s', want 400 %s naming %s: %.300s", bad_body[i].body, r.status,
		              it_js(r.json, "code"), it_js(r.json, "field"), bad_body[i].code,
		              bad_body[i].field ? bad_body[i].field : "(any)", r.raw.body);
		res_free(&r);
	}
	ck_assert_int_eq(qlong("SELECT count(*) FROM usage_ledger"), 0);
	ck_assert_int_eq(qlong("SELECT count(*) FROM usage_batches"), 0);

	/* 1,001 records are too many; 1,000 are fine (under the same key). */
	size_t cap = 1001 * (strlen(goodtext) + 1) + 64, n = 0;
	char *big = malloc(cap);
	ck_assert_ptr_nonnull(big);
	n += (size_t)snprintf(big, cap, "{\"records\":[");
	for (int i = 0; i < 1001; i++)
		n += (size_t)snprintf(big + n, cap - n, "%s%s", i ? "," : "", goodtext);
	snprintf(big + n, cap - n, "]}");
	post_usage(&r, eu, "one-key", big);
	EXPECT_PROBLEM(&r, 400, "validation_failed", "records");
	res_free(&r);
	n -= strlen(goodtext) + 1; /* drop the last record */
	snprintf(big + n, cap - n, "]}");
	json_decref(USAGE_OK(eu, "one-key", big, 201, 1000, 5000));
	free(big);
	ck_assert_int_eq(usage_total(e, MONTH_A), 5000);
	ck_assert_int_eq(qlong("SELECT count(*) FROM usage_batches"), 1);

	/* Edges that are accepted: the first instant of the month, an offset
	 * that puts a local September time in UTC August, zero events. */
	batch(b, rec(e, MONTH_A, 0, "2026-08-01T00:00:00Z", "2026-08-01T00:00:00Z"),
	      rec(e, MONTH_A, 2, "2026-09-01T01:00:00+02:00", "2026-09-01T02:00:00+02:00"), NULL);
	json_decref(USAGE_OK(eu, "edges", b, 201, 2, 2));
	json_t *u = get_usage(ADMIN_TOKEN, e, MONTH_A);
	ck_assert_int_eq(ji(u, "total"), 5002);
	ck_assert_int_eq(usage_entry(u, "by_day", "day", "2026-08-31"), 2);
	ck_assert_int_eq(usage_entry(u, "by_day", "day", "2026-08-10"), 5000);
	json_decref(u);

	/* Reading usage needs a well-formed period; a parameter of another
	 * name is refused as unknown, naming it. */
	static const char *const periods[] = { "", "?period=", "?period=2026-8", "?period=2026-13",
		                                   "?period=2026-08-01", "?month=2026-08" };
	for (size_t i = 0; i < sizeof periods / sizeof periods[0]; i++) {
		const char *field = strstr(periods[i], "month") ? "month" : "period";
		api(&r, "GET", it_fmt("/v1/tenants/%s/usage%s", e, periods[i]), ADMIN_TOKEN, NULL);
		ck_assert_msg(r.status == 400 && !strcmp(it_js(r.json, "field"), field) &&
		                  !strcmp(it_js(r.json, "code"), "validation_failed"),
		              "usage%s: %ld field '%s', want 400 validation_failed naming %s: %.300s", periods[i], r.status,
		              it_js(r.json, "field"), field, r.raw.body);
		res_free(&r);
	}
	api(&r, "GET", "/v1/tenants/00000000-0000-4000-8000-000000000000/usage?period=2026-08", ADMIN_TOKEN, NULL);
	EXPECT_PROBLEM(&r, 404, "not_found", NULL);
	res_free(&r);
	api(&r, "GET", "/v1/tenants/not-a-uuid/invoices", ADMIN_TOKEN, NULL);
	EXPECT_PROBLEM(&r, 404, "not_found", NULL);
	res_free(&r);

	batch(b, goodtext, NULL);
	post_usage(&r, eu, "has space", b);
	EXPECT_PROBLEM(&r, 400, "validation_failed", "Idempotency-Key");
	res_free(&r);
	ck_assert_int_eq(qlong("SELECT count(*) FROM usage_batches"), 2);
}
END_TEST


/* Amounts can never overflow: inputs are bounded so that a tenant's month
 * stays within bigint, a tenant that did not exist yet has no usage, and a
 * tenant's currency never changes (an adjustment is in the invoice's
 * currency). One region's batch can then never make a month unclosable. */
START_TEST(billing_bounds)
{
	char e[37], fresh[37], eu[128], b[8192];
	struct res r;

	new_tenant("bound-eu", "eu", "pro", e);
	backdate(e, "pro", LONG_AGO);
	new_tenant("fresh-eu", "eu", "pro", fresh); /* created now: no August */
	credential("eu", eu);

	/* Per record: at most 1e10 events. */
	batch(b, rec(e, MONTH_A, 10000000001LL, "2026-08-10T00:00:00Z", "2026-08-10T01:00:00Z"), NULL);
	post_usage(&r, eu, "bound-1", b);
	EXPECT_PROBLEM(&r, 400, "validation_failed", "records[0].events");
	res_free(&r);

	/* Per tenant and month: at most 1e13 events, across batches. */
	size_t cap = 1024 * 200, n = 0;
	char *big = malloc(cap);
	ck_assert_ptr_nonnull(big);
	n += (size_t)snprintf(big + n, cap - n, "{\"records\":[");
	for (int i = 0; i < 1000; i++)
		n += (size_t)snprintf(big + n, cap - n, "%s%s", i ? "," : "",
		                      rec(e, MONTH_A, 10000000000LL, "2026-08-11T00:00:00Z", "2026-08-11T01:00:00Z"));
	snprintf(big + n, cap - n, "]}");
	struct opts o = { .token = eu, .idem = "bound-2" };
	api_ex(&r, "POST", "/v1/usage", &o, big, strlen(big));
	EXPECT(&r, 201);
	res_free(&r);
	free(big);
	batch(b, rec(e, MONTH_A, 1, "2026-08-12T00:00:00Z", "2026-08-12T01:00:00Z"), NULL);
	post_usage(&r, eu, "bound-3", b);
	EXPECT_PROBLEM(&r, 422, "unprocessable", NULL);
	res_free(&r);
	ck_assert_int_eq(usage_total(e, MONTH_A), 10000000000000LL);

	/* No usage for a month that ended before the tenant existed. */
	batch(b, rec(fresh, MONTH_A, 5, "2026-08-10T00:00:00Z", "2026-08-10T01:00:00Z"), NULL);
	post_usage(&r, eu, "bound-4", b);
	EXPECT_PROBLEM(&r, 422, "unprocessable", NULL);
	res_free(&r);
	ck_assert_int_eq(usage_total(fresh, MONTH_A), 0);

	/* The month still closes, with an exact overage: pro includes 1e6,
	 * 50 per 1,000: ceil((1e13 - 1e6) * 50 / 1000) = 499,999,950,000. */
	close_period(MONTH_A, 201, 1, __LINE__); /* the fresh tenant did not exist in August */
	json_decref(EXPECT_INVOICE(e, MONTH_A, "pro", "USD", 4900LL + 499999950000LL,
	                           LINES({ "base", MONTH_A, 1, 4900 },
	                                 { "overage", MONTH_A, 10000000000000LL - 1000000, 499999950000LL })));

	/* Prices are bounded too. */
	api(&r, "POST", "/v1/plans", ADMIN_TOKEN,
	    "{\"id\":\"dear\",\"name\":\"Dear\",\"currency\":\"USD\",\"base_price\":1,"
	    "\"events_included\":0,\"price_per_1000\":100001,\"rate_limit\":1,\"burst\":1,"
	    "\"monthly_event_quota\":1,\"retention_days\":1}");
	EXPECT_PROBLEM(&r, 400, "validation_failed", "price_per_1000");
	res_free(&r);

	/* A tenant's currency never changes, nor a used plan's. */
	api(&r, "POST", "/v1/plans", ADMIN_TOKEN,
	    "{\"id\":\"euro\",\"name\":\"Euro\",\"currency\":\"EUR\",\"base_price\":100,"
	    "\"events_included\":0,\"price_per_1000\":5,\"rate_limit\":1,\"burst\":1,"
	    "\"monthly_event_quota\":1,\"retention_days\":1}");
	EXPECT(&r, 201);
	res_free(&r);
	api(&r, "PATCH", it_fmt("/v1/tenants/%s", e), ADMIN_TOKEN, "{\"plan\":\"euro\"}");
	EXPECT_PROBLEM(&r, 409, "conflict", "plan");
	res_free(&r);
	api(&r, "PATCH", "/v1/plans/pro", ADMIN_TOKEN, "{\"currency\":\"EUR\"}");
	EXPECT_PROBLEM(&r, 409, "conflict", "currency");
	res_free(&r);
	api(&r, "PATCH", "/v1/plans/euro", ADMIN_TOKEN, "{\"currency\":\"GBP\"}"); /* no tenant yet */
	EXPECT(&r, 200);
	res_free(&r);
}
END_TEST

/* ------------------------------------------------------------------ */

/* One TCase per test, each with its own control plane and database;
 * CK_RUN_CASE=<test name> runs one. */
Suite *billing_suite(void)
{
	const TTest *const tests[] = {
		billing_month, usage_concurrent_replays, close_concurrent, usage_home_region_only,
		close_and_invoice_states, close_out_of_order, billing_authz, plans, usage_validation,
		billing_bounds,
	};
	Suite *s = suite_create("billing");
	it_add_tests(s, tests, sizeof tests / sizeof tests[0], setup, teardown, 60);
	return s;
}
