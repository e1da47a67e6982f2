/* Unit tests of event validation (data-plane/event.c), RFC 3339 times
 * (common/timefmt.c), the per-tenant limits (data-plane/limits.c) and
 * array parameters of the DB layer. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "../../data-plane/event.c"
#include "../../data-plane/limits.c"
#include "buf.h"
#include "idemkey.h"
#include "db.h"
#include "timefmt.h"
#include "unit.h"

#define NOW INT64_C(1795660000000000) /* 2026-11-26T02:26:40Z */
#define DAY INT64_C(86400000000)

static int parse(const char *text, const char *prefix, struct dp_event *ev, struct jsonx_err *err)
{
	json_error_t je;
	json_t *in = json_loads(text, JSON_REJECT_DUPLICATES, &je);
	ck_assert_msg(in != NULL, "test JSON: %s", je.text);
	memset(err, 0, sizeof *err);
	int rc = dp_event_parse(in, NOW, NOW - 30 * DAY, prefix, ev, err);
	/* The event borrows from `in`: keep it alive as long as the body. */
	if (rc == 0) {
		ev->action = ev->actor_id = NULL;
		ev->targets = NULL;
	}
	json_decref(in);
	return rc;
}

static void expect_field(const char *text, const char *prefix, const char *field)
{
	struct dp_event ev;
	struct jsonx_err err;
	ck_assert_msg(parse(text, prefix, &ev, &err) == DP_EVENT_INVALID, "accepted: %s", text);
	ck_assert_str_eq(err.field, field);
	ck_assert(err.msg[0] != '\0');
}

#define MIN "\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"user\"}"

START_TEST(stored_form)
{
	struct dp_event ev;
	struct jsonx_err err;
	ck_assert_int_eq(parse("{\"id\":\"x-1\"," MIN ",\"occurred_at\":\"2026-11-25T20:00:00.5+01:00\"}",
	                       "", &ev, &err), 0);
	ck_assert_str_eq(ev.id, "x-1");
	ck_assert_int_eq(ev.id_given, 1);
	ck_assert_str_eq(ev.body,
	                 "{\"id\":\"x-1\",\"occurred_at\":\"2026-11-25T19:00:00.500000Z\","
	                 "\"received_at\":\"2026-11-26T02:26:40.000000Z\",\"action\":\"a\","
	                 "\"actor\":{\"id\":\"u\",\"type\":\"user\"},\"targets\":[],\"context\":{},"
	                 "\"metadata\":{}}");
	dp_event_clear(&ev);
}
END_TEST

START_TEST(generated_id_and_default_time)
{
	struct dp_event a, b;
	struct jsonx_err err;
	ck_assert_int_eq(parse("{" MIN "}", "", &a, &err), 0);
	ck_assert_int_eq(parse("{" MIN "}", "", &b, &err), 0);
	ck_assert_int_eq(a.id_given, 0);
	ck_assert_uint_eq(strlen(a.id), 35);
	ck_assert(!strncmp(a.id, "ev_", 3));
	ck_assert_str_ne(a.id, b.id);
	ck_assert_int_eq(a.occurred_us, NOW);
	/* Same content, same hash, whatever the server chose for the id. */
	ck_assert(!memcmp(a.sha256, b.sha256, 32));
	dp_event_clear(&a);
	dp_event_clear(&b);
}
END_TEST

START_TEST(hash_ignores_key_order_and_offset)
{
	struct dp_event a, b, c;
	struct jsonx_err err;
	ck_assert_int_eq(parse("{\"id\":\"k\"," MIN ",\"occurred_at\":\"2026-11-25T20:00:00Z\"}", "", &a, &err), 0);
	ck_assert_int_eq(parse("{\"occurred_at\":\"2026-11-25T21:00:00+01:00\",\"actor\":{\"type\":\"user\",\"id\":\"u\"},"
	                       "\"action\":\"a\",\"id\":\"k\"}", "", &b, &err), 0);
	ck_assert_int_eq(parse("{\"id\":\"k\"," MIN ",\"occurred_at\":\"2026-11-25T20:00:01Z\"}", "", &c, &err), 0);
	ck_assert(!memcmp(a.sha256, b.sha256, 32));
	ck_assert(memcmp(a.sha256, c.sha256, 32));
	dp_event_clear(&a);
	dp_event_clear(&b);
	dp_event_clear(&c);
}
END_TEST

START_TEST(fields_named)
{
	char big[9000], text[9200];
	expect_field("{\"actor\":{\"id\":\"u\",\"type\":\"t\"}}", "", "action");
	expect_field("{\"action\":\"a\"}", "", "actor");
	expect_field("{\"action\":\"a\",\"actor\":{\"type\":\"t\"}}", "events[3].", "events[3].actor.id");
	expect_field("{\"action\":\"a\",\"actor\":{\"id\":\"u\"}}", "", "actor.type");
	expect_field("{\"action\":\"a\",\"actor\":[]}", "", "actor");
	expect_field("{" MIN ",\"extra\":1}", "", "extra");
	expect_field("{" MIN ",\"id\":\"a b\"}", "", "id");
	expect_field("{" MIN ",\"id\":\"\"}", "", "id");
	expect_field("{" MIN ",\"id\":7}", "", "id");
	/* The names of routes under /v1/events/ could not be read back. */
	expect_field("{" MIN ",\"id\":\"feed\"}", "", "id");
	expect_field("{" MIN ",\"id\":\"export\"}", "events[0].", "events[0].id");
	{
		struct dp_event ok;
		struct jsonx_err e;
		ck_assert_int_eq(parse("{" MIN ",\"id\":\"feeds\"}", "", &ok, &e), DP_EVENT_OK);
		dp_event_clear(&ok);
		ck_assert_int_eq(parse("{" MIN ",\"id\":\"export.1\"}", "", &ok, &e), DP_EVENT_OK);
		dp_event_clear(&ok);
	}
	expect_field("{" MIN ",\"occurred_at\":\"2026-11-25\"}", "", "occurred_at");
	expect_field("{" MIN ",\"occurred_at\":\"2026-02-30T00:00:00Z\"}", "", "occurred_at");
	expect_field("{" MIN ",\"occurred_at\":\"2026-11-26T02:31:41Z\"}", "", "occurred_at"); /* > 5 min ahead */
	expect_field("{" MIN ",\"occurred_at\":\"2026-10-01T00:00:00Z\"}", "", "occurred_at"); /* past retention */
	expect_field("{" MIN ",\"targets\":{}}", "", "targets");
	expect_field("{" MIN ",\"targets\":[{\"id\":\"d\",\"type\":\"doc\"},{\"id\":\"d\"}]}", "", "targets[1].type");
	expect_field("{" MIN ",\"context\":{\"ip\":\"999.1.1.1\"}}", "", "context.ip");
	expect_field("{" MIN ",\"context\":{\"user_agent\":5}}", "", "context.user_agent");
	expect_field("{" MIN ",\"metadata\":[]}", "", "metadata");
	expect_field("{\"action\":\"a\\u0001\",\"actor\":{\"id\":\"u\",\"type\":\"t\"}}", "", "action");
	memset(big, 'x', 8200);
	big[8200] = '\0';
	snprintf(text, sizeof text, "{" MIN ",\"metadata\":{\"m\":\"%s\"}}", big);
	expect_field(text, "", "metadata");
	expect_field("[1]", "events[2].", "events[2]");
}
END_TEST

START_TEST(bounds_inclusive)
{
	char action[600], text[1200];
	struct dp_event ev;
	struct jsonx_err err;
	/* 128 characters of two bytes each are fine; 129 are not. */
	action[0] = '\0';
	for (int i = 0; i < 128; i++)
		strcat(action, "\xc3\xa9");
	snprintf(text, sizeof text, "{\"action\":\"%s\",\"actor\":{\"id\":\"u\",\"type\":\"t\"}}", action);
	ck_assert_int_eq(parse(text, "", &ev, &err), 0);
	dp_event_clear(&ev);
	strcat(action, "e");
	snprintf(text, sizeof text, "{\"action\":\"%s\",\"actor\":{\"id\":\"u\",\"type\":\"t\"}}", action);
	expect_field(text, "", "action");
	ck_assert_int_eq(parse("{" MIN ",\"context\":{\"ip\":\"2001:db8::1\",\"user_agent\":\"curl\"}}", "", &ev, &err), 0);
	dp_event_clear(&ev);
	ck_assert_int_eq(parse("{" MIN ",\"occurred_at\":\"2026-11-26T02:31:40Z\"}", "", &ev, &err), 0);
	dp_event_clear(&ev);
}
END_TEST

START_TEST(times)
{
	int64_t us;
	char out[TIMEFMT_LEN], period[8];
	ck_assert_int_eq(timefmt_parse("1970-01-01T00:00:00Z", &us), 0);
	ck_assert_int_eq(us, 0);
	ck_assert_int_eq(timefmt_parse("2024-02-29T12:00:00.1234567-00:30", &us), 0);
	timefmt_format(us, out);
	ck_assert_str_eq(out, "2024-02-29T12:30:00.123456Z");
	ck_assert_int_eq(timefmt_parse("2023-02-29T12:00:00Z", &us), -1);
	ck_assert_int_eq(timefmt_parse("2024-01-01T24:00:00Z", &us), -1);
	ck_assert_int_eq(timefmt_parse("2024-01-01T00:00:60Z", &us), -1);
	ck_assert_int_eq(timefmt_parse("2024-01-01T00:00:00", &us), -1);
	ck_assert_int_eq(timefmt_parse("2024-01-01T00:00:00.Z", &us), -1);
	ck_assert_int_eq(timefmt_parse("2024-01-01T00:00:00Zjunk", &us), -1);
	ck_assert_int_eq(timefmt_parse("1969-12-31T23:59:59Z", &us), -1);
	ck_assert_int_eq(timefmt_parse("1970-01-01T00:30:00+01:00", &us), -1);
	ck_assert_int_eq(timefmt_parse("+2024-01-01T00:00:00Z", &us), -1);
	int64_t start, next;
	ck_assert_int_eq(timefmt_parse("2024-12-31T23:59:59.999999Z", &us), 0);
	timefmt_month(us, &start, &next, period);
	ck_assert_str_eq(period, "2024-12");
	timefmt_format(start, out);
	ck_assert_str_eq(out, "2024-12-01T00:00:00.000000Z");
	timefmt_format(next, out);
	ck_assert_str_eq(out, "2025-01-01T00:00:00.000000Z");
}
END_TEST

START_TEST(token_bucket)
{
	struct dp_limits *l = dp_limits_new();
	struct dp_rate r;
	const char *t = "00000000-0000-0000-0000-000000000001";
	int64_t ns = 1000000000;
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(dp_limits_take(l, t, DP_BUCKET_WRITE, 2, 3, ns, &r), 0);
		ck_assert_int_eq(r.allowed, 1);
		ck_assert_int_eq(r.remaining, 2 - i);
	}
	ck_assert_int_eq(dp_limits_take(l, t, DP_BUCKET_WRITE, 2, 3, ns, &r), 0);
	ck_assert_int_eq(r.allowed, 0);
	ck_assert_int_eq(r.retry_after_s, 1);
	ck_assert_int_eq(r.limit, 2); /* the rate, not the burst */
	ck_assert_int_eq(r.reset_s, 2);
	/* Half a second refills one token at 2 per second. */
	ck_assert_int_eq(dp_limits_take(l, t, DP_BUCKET_WRITE, 2, 3, ns + 500000000, &r), 0);
	ck_assert_int_eq(r.allowed, 1);
	ck_assert_int_eq(dp_limits_take(l, t, DP_BUCKET_WRITE, 2, 3, ns + 500000000, &r), 0);
	ck_assert_int_eq(r.allowed, 0);
	/* Another tenant has its own bucket. */
	ck_assert_int_eq(dp_limits_take(l, "00000000-0000-0000-0000-000000000002", DP_BUCKET_WRITE, 2, 3, ns, &r), 0);
	ck_assert_int_eq(r.allowed, 1);
	/* A long pause fills it to the burst, never beyond. */
	ck_assert_int_eq(dp_limits_take(l, t, DP_BUCKET_WRITE, 2, 3, ns + 60 * INT64_C(1000000000), &r), 0);
	ck_assert_int_eq(r.remaining, 2);
	dp_limits_free(l);
}
END_TEST

/* Of `n` reads of `tenant` at `ns`, how many its bucket admits. */
static int reads_admitted(struct dp_limits *l, const char *tenant, int64_t rate, int64_t burst, int n,
                          int64_t ns)
{
	struct dp_rate r;
	int ok = 0;
	for (int i = 0; i < n; i++) {
		ck_assert_int_eq(dp_limits_take(l, tenant, DP_BUCKET_READ, rate, burst, ns, &r), 0);
		ok += r.allowed;
	}
	return ok;
}

/* Reads and writes have a bucket each; a share scales the refill and the
 * burst, and the headers still speak for the region. */
START_TEST(bucket_shares)
{
	struct dp_limits *l = dp_limits_new();
	struct dp_rate r;
	const char *t = "00000000-0000-0000-0000-000000000001";
	int64_t ns = 1000000000, s1 = INT64_C(1000000000);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(dp_limits_take(l, t, DP_BUCKET_WRITE, 1, 3, ns, &r), 0);
	ck_assert_int_eq(dp_limits_take(l, t, DP_BUCKET_WRITE, 1, 3, ns, &r), 0);
	ck_assert_int_eq(r.allowed, 0);
	/* Writes exhausted, reads untouched (and the other way round). */
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(dp_limits_take(l, t, DP_BUCKET_READ, 1, 3, ns, &r), 0);
		ck_assert_int_eq(r.allowed, 1);
		ck_assert_int_eq(r.remaining, 2 - i);
	}
	ck_assert_int_eq(dp_limits_take(l, t, DP_BUCKET_READ, 1, 3, ns, &r), 0);
	ck_assert_int_eq(r.allowed, 0);

	/* A quarter of rate 20, burst 40, among four instances: 10 tokens
	 * here, refilled at 5/s; Remaining counts the region's 40. */
	dp_limits_share_default(l, 0.25, 0);
	const char *u = "00000000-0000-0000-0000-000000000003";
	dp_limits_share_set(l, u, DP_BUCKET_WRITE, 0.25);
	for (int i = 0; i < 10; i++) {
		ck_assert_int_eq(dp_limits_take(l, u, DP_BUCKET_WRITE, 20, 40, ns, &r), 0);
		ck_assert_int_eq(r.allowed, 1);
		ck_assert_int_eq(r.limit, 20);
		ck_assert_int_eq(r.remaining, 36 - 4 * i);
	}
	ck_assert_int_eq(dp_limits_take(l, u, DP_BUCKET_WRITE, 20, 40, ns, &r), 0);
	ck_assert_int_eq(r.allowed, 0);
	ck_assert_int_eq(r.reset_s, 2);        /* 10 tokens at 5/s */
	ck_assert_int_eq(r.retry_after_s, 1);
	int ok = 0;
	for (int i = 0; i < 10; i++) {
		ck_assert_int_eq(dp_limits_take(l, u, DP_BUCKET_WRITE, 20, 40, ns + s1, &r), 0);
		ok += r.allowed;
	}
	ck_assert_int_eq(ok, 5);

	/* A share too small for one token of burst still holds one (among
	 * so many instances that half the default share is smaller still). */
	dp_limits_share_default(l, 0.01, 0);
	const char *v = "00000000-0000-0000-0000-000000000004";
	dp_limits_share_set(l, v, DP_BUCKET_READ, 0.01);
	ck_assert_int_eq(dp_limits_take(l, v, DP_BUCKET_READ, 2, 3, ns, &r), 0);
	ck_assert_int_eq(r.allowed, 1);
	ck_assert_int_eq(dp_limits_take(l, v, DP_BUCKET_READ, 2, 3, ns, &r), 0);
	ck_assert_int_eq(r.allowed, 0);
	ck_assert_int_eq(r.retry_after_s, 50); /* one token at 0.02/s */
	ck_assert_int_eq(r.remaining, 0);

	/* A share far below the default (an instance the balancer just took
	 * in, its demand counted from a request or two) still holds half the
	 * default share of the burst: rate 200, burst 400 among four
	 * instances, share 0.01: 50 tokens, not 4, refilled at the share's
	 * 2 per second. */
	dp_limits_share_default(l, 0.25, 0);
	const char *x = "00000000-0000-0000-0000-000000000006";
	dp_limits_share_set(l, x, DP_BUCKET_READ, 0.01);
	ck_assert_int_eq(reads_admitted(l, x, 200, 400, 60, ns), 50);
	ck_assert_int_eq(reads_admitted(l, x, 200, 400, 10, ns + s1), 2);
	/* Its headers still speak for the region: its 50 tokens stand for the
	 * burst of 400, and the region refills at 200/s; Retry-After is when
	 * this bucket holds a token again (at 2/s). */
	const char *z = "00000000-0000-0000-0000-000000000008";
	dp_limits_share_set(l, z, DP_BUCKET_READ, 0.01);
	ck_assert_int_eq(dp_limits_take(l, z, DP_BUCKET_READ, 200, 400, ns, &r), 0);
	ck_assert_int_eq(r.remaining, 392); /* 49 of 50 */
	ck_assert_int_eq(r.reset_s, 1);
	ck_assert_int_eq(reads_admitted(l, z, 200, 400, 49, ns), 49);
	ck_assert_int_eq(dp_limits_take(l, z, DP_BUCKET_READ, 200, 400, ns, &r), 0);
	ck_assert_int_eq(r.allowed, 0);
	ck_assert_int_eq(r.remaining, 0);
	ck_assert_int_eq(r.reset_s, 2);
	ck_assert_int_eq(r.retry_after_s, 1);
	/* At or above half the default, the share alone sizes the bucket. */
	const char *y = "00000000-0000-0000-0000-000000000007";
	dp_limits_share_set(l, y, DP_BUCKET_READ, 0.125);
	ck_assert_int_eq(reads_admitted(l, y, 200, 400, 60, ns), 50);
	dp_limits_share_set(l, y, DP_BUCKET_READ, 0.2);
	ck_assert_int_eq(reads_admitted(l, y, 200, 400, 100, ns + 2 * s1), 80);

	/* The default share applies to buckets without one, and a reset
	 * takes every bucket back to it. */
	const char *w = "00000000-0000-0000-0000-000000000005";
	dp_limits_share_default(l, 0.5, 0);
	ck_assert_int_eq(dp_limits_take(l, w, DP_BUCKET_READ, 10, 10, ns, &r), 0);
	ck_assert_int_eq(r.remaining, 8); /* 5 tokens here, one taken: 4 of the region's 10 in halves */
	dp_limits_share_default(l, 1, 1);
	ck_assert_int_eq(dp_limits_take(l, u, DP_BUCKET_WRITE, 20, 40, ns + 10 * s1, &r), 0);
	ck_assert_int_eq(r.remaining, 39);
	dp_limits_free(l);
}
END_TEST

struct seen {
	int n;
	double write, read;
};

static void seen_demand(void *ctx, const char *tenant, enum dp_bucket b, double d)
{
	struct seen *s = ctx;
	ck_assert_str_eq(tenant, "00000000-0000-0000-0000-000000000001");
	s->n++;
	*(b == DP_BUCKET_WRITE ? &s->write : &s->read) = d;
}

/* Demand is requests per second, smoothed, and dies away. */
START_TEST(bucket_demand)
{
	struct dp_limits *l = dp_limits_new();
	struct dp_rate r;
	const char *t = "00000000-0000-0000-0000-000000000001";
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(dp_limits_take(l, t, DP_BUCKET_WRITE, 1, 1, 1000, &r), 0);
	dp_limits_share_set(l, t, DP_BUCKET_WRITE, 0.5);
	struct seen s = { 0 };
	dp_limits_demand(l, 0.5, seen_demand, &s); /* 10 in half a second */
	ck_assert_int_eq(s.n, 1);
	ck_assert(s.write == 20.0 && s.read == 0);
	memset(&s, 0, sizeof s);
	dp_limits_demand(l, 0.5, seen_demand, &s);
	ck_assert(s.n == 1 && s.write == 10.0);
	int calls = 0;
	do {
		memset(&s, 0, sizeof s);
		dp_limits_demand(l, 0.5, seen_demand, &s);
		ck_assert_int_lt(++calls, 20);
	} while (s.n);
	/* No demand left: the share went back to the default (1). */
	ck_assert_int_eq(dp_limits_take(l, t, DP_BUCKET_WRITE, 4, 4, INT64_C(5000000000), &r), 0);
	ck_assert_int_eq(r.remaining, 3);
	dp_limits_free(l);
}
END_TEST

struct sum_ctx {
	double d;
};

static void sum_demand(void *ctx, const char *tenant, enum dp_bucket b, double d)
{
	(void)tenant;
	(void)b;
	((struct sum_ctx *)ctx)->d = d;
}

/* The region model: N instances, a tenant's traffic split over them in
 * fixed proportions at far above its rate, the exchange every 250 ms
 * computing shares as ratesync.c does. After a second, what all admit
 * together is the plan's rate (reference: rate x time), for every number
 * of instances and split. */
START_TEST(region_shares_hold_the_rate)
{
	static const double splits[][4] = {
		{ 1, 0, 0, 0 }, { 1, 1, 0, 0 }, { 3, 1, 0, 0 }, { 1, 1, 1, 1 }, { 5, 2, 1, 0.2 }, { 1, 0.05, 0, 0 },
	};
	static const int rates[] = { 1, 20, 500 };
	const char *t = "00000000-0000-0000-0000-000000000001";
	for (size_t k = 0; k < sizeof splits / sizeof splits[0]; k++) {
		for (size_t q = 0; q < sizeof rates / sizeof rates[0]; q++) {
			int rate = rates[q], burst = 2 * rates[q], n = 0;
			double total = 0;
			struct dp_limits *inst[4];
			for (int i = 0; i < 4; i++)
				if (splits[k][i] > 0) {
					inst[n] = dp_limits_new();
					total += splits[k][i];
					n++;
				}
			for (int i = 0; i < n; i++)
				dp_limits_share_default(inst[i], 1.0 / n, 0);
			/* 40 requests per unit of rate per second, spread by the split. */
			double offered = 40.0 * rate, credit[4] = { 0 };
			long admitted = 0, tick_ns = 1000000;
			int64_t ns = 0;
			for (int ms = 0; ms < 6000; ms++, ns += tick_ns) {
				for (int i = 0; i < n; i++) {
					credit[i] += offered * splits[k][i] / total / 1000.0;
					while (credit[i] >= 1) {
						struct dp_rate r;
						credit[i] -= 1;
						ck_assert_int_eq(dp_limits_take(inst[i], t, DP_BUCKET_WRITE, rate, burst, ns, &r), 0);
						if (ms >= 1000)
							admitted += r.allowed;
					}
				}
				if (ms % 250 == 249) {
					double d[4];
					for (int i = 0; i < n; i++) {
						struct sum_ctx c = { 0 };
						dp_limits_demand(inst[i], 0.25, sum_demand, &c);
						d[i] = c.d;
					}
					double all = 0;
					for (int i = 0; i < n; i++)
						all += d[i];
					for (int i = 0; i < n; i++)
						if (d[i] > 0)
							dp_limits_share_set(inst[i], t, DP_BUCKET_WRITE, d[i] / all);
				}
			}
			double want = 5.0 * rate, got = (double)admitted;
			/* Slack: a token per instance at the edges, for the tiny rates. */
			ck_assert_msg(got >= want * 0.98 - n && got <= want * 1.02 + n,
			              "split %zu rate %d over %d instances: %ld admitted in 5 s, want %.0f", k, rate, n,
			              admitted, want);
			for (int i = 0; i < n; i++)
				dp_limits_free(inst[i]);
		}
	}
}
END_TEST

START_TEST(usage_cache)
{
	struct dp_limits *l = dp_limits_new();
	const char *t = "00000000-0000-0000-0000-000000000001";
	int64_t n, at;
	char id[40];
	/* Nothing read yet: unknown, not 0. */
	ck_assert_int_eq(dp_limits_usage_get(l, t, "2026-11", &n, &at), 0);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(at, 0);
	dp_limits_usage_refreshed(l, "2026-11", 100);
	ck_assert_int_eq(dp_limits_usage_get(l, t, "2026-11", &n, &at), 1);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(at, 100);
	dp_limits_usage_set(l, t, "2026-11", 7, 200);
	dp_limits_usage_set(l, t, "2026-11", 5, 150); /* older: ignored */
	dp_limits_usage_get(l, t, "2026-11", &n, &at);
	ck_assert_int_eq(n, 7);
	ck_assert_int_eq(at, 200);
	dp_limits_usage_set(l, t, "2026-10", 99, 300); /* an earlier month never replaces */
	dp_limits_usage_get(l, t, "2026-11", &n, &at);
	ck_assert_int_eq(n, 7);
	/* A new month is unknown until it is read. */
	ck_assert_int_eq(dp_limits_usage_get(l, t, "2026-12", &n, &at), 0);
	ck_assert_int_eq(n, 0);
	/* Many tenants: the tables grow and keep every one. */
	for (int i = 0; i < 5000; i++) {
		snprintf(id, sizeof id, "00000000-0000-0000-0000-%012d", i);
		dp_limits_usage_set(l, id, "2026-11", i, 400);
	}
	for (int i = 0; i < 5000; i += 499) {
		snprintf(id, sizeof id, "00000000-0000-0000-0000-%012d", i);
		dp_limits_usage_get(l, id, "2026-11", &n, &at);
		ck_assert_int_eq(n, i);
	}
	dp_limits_free(l);
}
END_TEST

START_TEST(array_literals)
{
	struct buf b = { 0 };
	db_array_end(&b);
	ck_assert_str_eq(b.p, "{}");
	buf_free(&b);
	db_array_add(&b, "a", 1);
	db_array_add(&b, "q\"uo\\te", 7);
	db_array_add(&b, "", 0);
	db_array_add(&b, "{,}", 3);
	db_array_end(&b);
	ck_assert_str_eq(b.p, "{\"a\",\"q\\\"uo\\\\te\",\"\",\"{,}\"}");
	buf_free(&b);
}
END_TEST

/* A refused batch lists its faults up to DP_EVENT_ERRORS_MAX, says how many
 * there were and whether the list was cut: both ends of the limit. */
START_TEST(batch_errors_limit)
{
	static const size_t counts[] = { 1, DP_EVENT_ERRORS_MAX - 1, DP_EVENT_ERRORS_MAX, DP_EVENT_ERRORS_MAX + 1,
		                             DP_BATCH_MAX };
	for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
		struct dp_event_errors e = { 0 };
		for (size_t i = 0; i < counts[c]; i++) {
			struct jsonx_err err;
			snprintf(err.field, sizeof err.field, "events[%zu].action", i * 2);
			snprintf(err.msg, sizeof err.msg, "fault %zu", i);
			dp_event_errors_add(&e, &err);
		}
		json_t *x = dp_event_errors_extra(&e);
		ck_assert_ptr_nonnull(x);
		const json_t *list = json_object_get(x, "errors");
		size_t listed = counts[c] < DP_EVENT_ERRORS_MAX ? counts[c] : DP_EVENT_ERRORS_MAX;
		ck_assert_uint_eq(json_array_size(list), listed);
		ck_assert_int_eq(json_integer_value(json_object_get(x, "errors_total")), (json_int_t)counts[c]);
		ck_assert(json_boolean_value(json_object_get(x, "errors_truncated")) == (counts[c] > DP_EVENT_ERRORS_MAX));
		ck_assert_str_eq(json_string_value(json_object_get(x, "field")), "events[0].action");
		/* In order, each with its own field and detail. */
		for (size_t i = 0; i < listed; i++) {
			char f[48], d[32];
			snprintf(f, sizeof f, "events[%zu].action", i * 2);
			snprintf(d, sizeof d, "fault %zu", i);
			const json_t *it = json_array_get(list, i);
			ck_assert_uint_eq(json_object_size(it), 2);
			ck_assert_str_eq(json_string_value(json_object_get(it, "field")), f);
			ck_assert_str_eq(json_string_value(json_object_get(it, "detail")), d);
		}
		ck_assert_str_eq(e.first.msg, "fault 0");
		json_decref(x);
		dp_event_errors_clear(&e);
	}
}
END_TEST

/* A field cut inside a UTF-8 character (a long unknown member's name) is
 * listed with a null field, never lost with the whole answer. */
START_TEST(batch_errors_field_not_utf8)
{
	struct dp_event_errors e = { 0 };
	struct jsonx_err err;
	snprintf(err.field, sizeof err.field, "events[0].caf\xc3");
	snprintf(err.msg, sizeof err.msg, "Unknown member.");
	dp_event_errors_add(&e, &err);
	json_t *x = dp_event_errors_extra(&e);
	ck_assert_ptr_nonnull(x);
	ck_assert(json_is_null(json_object_get(json_array_get(json_object_get(x, "errors"), 0), "field")));
	ck_assert_ptr_null(json_object_get(x, "field"));
	json_decref(x);
	dp_event_errors_clear(&e);
}
END_TEST

/* The Idempotency-Key rule both services share: 1 to 255 visible ASCII. */
START_TEST(idempotency_key_syntax)
{
	char k[IDEMKEY_MAX + 2];
	memset(k, 'a', sizeof k);
	k[IDEMKEY_MAX] = '\0';
	ck_assert_int_eq(idemkey_valid(k), 1);
	k[IDEMKEY_MAX] = 'a';
	k[IDEMKEY_MAX + 1] = '\0';
	ck_assert_int_eq(idemkey_valid(k), 0);
	ck_assert_int_eq(idemkey_valid("x"), 1);
	ck_assert_int_eq(idemkey_valid("!~"), 1);
	ck_assert_int_eq(idemkey_valid(""), 0);
	ck_assert_int_eq(idemkey_valid(NULL), 0);
	ck_assert_int_eq(idemkey_valid("a b"), 0);
	ck_assert_int_eq(idemkey_valid("a\x7f"), 0);
	ck_assert_int_eq(idemkey_valid("a\x1f"), 0);
	ck_assert_int_eq(idemkey_valid("caf\xc3\xa9"), 0);
}
END_TEST

Suite *event_suite(void)
{
	Suite *s = suite_create("event");
	TCase *tc = tcase_create("event");
	tcase_add_test(tc, stored_form);
	tcase_add_test(tc, generated_id_and_default_time);
	tcase_add_test(tc, hash_ignores_key_order_and_offset);
	tcase_add_test(tc, fields_named);
	tcase_add_test(tc, bounds_inclusive);
	tcase_add_test(tc, times);
	tcase_add_test(tc, token_bucket);
	tcase_add_test(tc, bucket_shares);
	tcase_add_test(tc, bucket_demand);
	tcase_add_test(tc, region_shares_hold_the_rate);
	tcase_add_test(tc, usage_cache);
	tcase_add_test(tc, array_literals);
	tcase_add_test(tc, batch_errors_limit);
	tcase_add_test(tc, batch_errors_field_not_utf8);
	tcase_add_test(tc, idempotency_key_syntax);
	suite_add_tcase(s, tc);
	return s;
}
