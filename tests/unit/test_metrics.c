/* Unit tests of common/metrics: the Prometheus text a scraper reads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "unit.h"

static enum http_result nop(struct http_req *req)
{
	(void)req;
	return HTTP_REPLIED;
}

static const struct http_route routes[] = {
	{ "GET", "/v1/tenants", nop, 0, 0, NULL },
	{ "POST", "/v1/tenants", nop, 4096, 0, NULL },
	{ "GET", "/v1/tenants/{id}", nop, 0, 0, NULL },
};
#define NROUTES (sizeof routes / sizeof routes[0])

#define L_LIST    "method=\"GET\",route=\"/v1/tenants\""
#define L_CREATE  "method=\"POST\",route=\"/v1/tenants\""
#define L_GET     "method=\"GET\",route=\"/v1/tenants/{id}\""
#define L_NOMATCH "method=\"other\",route=\"unmatched\""

/* Renders `m` into a string the caller free()s. */
static char *render(struct metrics *m, const char *service)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	ck_assert_ptr_nonnull(f);
	metrics_render(m, service, f);
	ck_assert_int_eq(fclose(f), 0);
	return text;
}

/* Whether `text` holds `line` as one whole line. */
static int has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
			return 1;
	return 0;
}

/* How many lines of `text` start with `prefix`. */
static int count_lines(const char *text, const char *prefix)
{
	int n = 0;
	size_t len = strlen(prefix);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		n += strncmp(p, prefix, len) == 0;
	return n;
}

/* The line of `text` for the same series as `line` (the part before the
 * last space), to show next to a failure; "(none)" when there is none. */
static const char *same_series(const char *text, const char *line, char *buf, size_t len)
{
	const char *sp = strrchr(line, ' ');
	size_t n = sp ? (size_t)(sp - line) + 1 : strlen(line);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, line, n) == 0) {
			const char *e = strchr(p, '\n');
			snprintf(buf, len, "%.*s", e ? (int)(e - p) : (int)strlen(p), p);
			return buf;
		}
	}
	return "(none)";
}

#define ck_assert_line(text, line) \
	do { \
		char got_[512]; \
		ck_assert_msg(has_line((text), (line)), "missing line: %s; got: %s", (line), \
		              same_series((text), (line), got_, sizeof got_)); \
	} while (0)
#define ck_assert_no_line(text, prefix) \
	ck_assert_msg(count_lines((text), (prefix)) == 0, "unexpected line: %s", (prefix))

START_TEST(fresh_has_no_request_samples)
{
	/* A fresh process reports no request counts but declares its families. */
	struct metrics *m = metrics_new(routes, NROUTES);
	ck_assert_ptr_nonnull(m);
	char *t = render(m, "cp");
	ck_assert_line(t, "# TYPE http_requests_total counter");
	ck_assert_line(t, "# TYPE http_request_duration_seconds histogram");
	ck_assert_no_line(t, "http_requests_total{");
	ck_assert_line(t, "http_request_duration_seconds_count{" L_LIST "} 0");
	ck_assert_line(t, "http_request_duration_seconds_bucket{" L_NOMATCH ",le=\"+Inf\"} 0");
	free(t);
	metrics_free(m);
	metrics_free(NULL); /* shutdown paths may free what they never created */
}
END_TEST

START_TEST(requests_counted_by_route_and_status)
{
	/* Each (method, route, status) gets its own counter with exact labels. */
	struct metrics *m = metrics_new(routes, NROUTES);
	metrics_observe(m, 0, 200, 100);
	metrics_observe(m, 0, 200, 100);
	metrics_observe(m, 1, 201, 100);
	metrics_observe(m, 1, 400, 100);
	metrics_observe(m, 2, 404, 100);
	char *t = render(m, "cp");
	ck_assert_line(t, "http_requests_total{" L_LIST ",status=\"200\"} 2");
	ck_assert_line(t, "http_requests_total{" L_CREATE ",status=\"201\"} 1");
	ck_assert_line(t, "http_requests_total{" L_CREATE ",status=\"400\"} 1");
	ck_assert_line(t, "http_requests_total{" L_GET ",status=\"404\"} 1");
	ck_assert_int_eq(count_lines(t, "http_requests_total{"), 4);
	free(t);
	metrics_free(m);
}
END_TEST

START_TEST(unmatched_route)
{
	/* Requests no route matched are counted under route="unmatched". */
	struct metrics *m = metrics_new(routes, NROUTES);
	metrics_observe(m, -1, 404, 10);
	metrics_observe(m, -1, 404, 10);
	metrics_observe(m, -1, 405, 10);
	char *t = render(m, "dp");
	ck_assert_line(t, "http_requests_total{" L_NOMATCH ",status=\"404\"} 2");
	ck_assert_line(t, "http_requests_total{" L_NOMATCH ",status=\"405\"} 1");
	ck_assert_line(t, "http_request_duration_seconds_count{" L_NOMATCH "} 3");
	ck_assert_int_eq(count_lines(t, "http_requests_total{"), 2);
	free(t);
	metrics_free(m);
}
END_TEST

START_TEST(every_status_has_its_own_label)
{
	/* Each status of 100-599 is counted under its own code, both ends of the
	 * range included; one outside it (no reply carries it) counts as 500. */
	struct metrics *m = metrics_new(routes, NROUTES);
	metrics_observe(m, 2, 418, 10);
	metrics_observe(m, 2, 100, 10);
	metrics_observe(m, 2, 599, 10);
	metrics_observe(m, 2, 599, 10);
	metrics_observe(m, 2, 0, 10);
	metrics_observe(m, 2, 600, 10);
	metrics_observe(m, 2, 200, 10);
	char *t = render(m, "cp");
	ck_assert_line(t, "http_requests_total{" L_GET ",status=\"418\"} 1");
	ck_assert_line(t, "http_requests_total{" L_GET ",status=\"100\"} 1");
	ck_assert_line(t, "http_requests_total{" L_GET ",status=\"599\"} 2");
	ck_assert_line(t, "http_requests_total{" L_GET ",status=\"500\"} 2");
	ck_assert_line(t, "http_requests_total{" L_GET ",status=\"200\"} 1");
	ck_assert_int_eq(count_lines(t, "http_requests_total{" L_GET), 5);
	ck_assert_no_line(t, "http_requests_total{" L_GET ",status=\"other\"}");
	free(t);
	metrics_free(m);
}
END_TEST

START_TEST(histogram_cumulative)
{
	/* Buckets are cumulative, "le" is inclusive, slow requests reach only +Inf. */
	struct metrics *m = metrics_new(routes, NROUTES);
	metrics_observe(m, 0, 200, 100);       /* <= 0.25 ms */
	metrics_observe(m, 0, 200, 250);       /* exactly on the first bound */
	metrics_observe(m, 0, 200, 251);       /* just past it */
	metrics_observe(m, 0, 200, 20000);     /* 20 ms */
	metrics_observe(m, 0, 200, 20000000);  /* 20 s: beyond the last bound */
	char *t = render(m, "cp");
#define B(le, n) "http_request_duration_seconds_bucket{" L_LIST ",le=\"" le "\"} " #n
	ck_assert_line(t, B("0.00025", 2));
	ck_assert_line(t, B("0.0005", 3));
	ck_assert_line(t, B("0.001", 3));
	ck_assert_line(t, B("0.01", 3));
	ck_assert_line(t, B("0.025", 4));
	ck_assert_line(t, B("1", 4));
	ck_assert_line(t, B("10", 4));
	ck_assert_line(t, B("+Inf", 5));
#undef B
	ck_assert_line(t, "http_request_duration_seconds_count{" L_LIST "} 5");
	ck_assert_line(t, "http_request_duration_seconds_sum{" L_LIST "} 20.020601");
	/* other routes untouched */
	ck_assert_line(t, "http_request_duration_seconds_count{" L_CREATE "} 0");
	free(t);
	metrics_free(m);
}
END_TEST

START_TEST(histogram_consistent)
{
	/* For every series, buckets never decrease and +Inf equals _count. */
	struct metrics *m = metrics_new(routes, NROUTES);
	static const unsigned long long lat[] = { 1, 300, 900, 4000, 60000, 700000, 3000000,
		                                  12000000 };
	for (int r = -1; r < (int)NROUTES; r++)
		for (size_t i = 0; i < sizeof lat / sizeof lat[0]; i++)
			for (int k = 0; k <= r + 1; k++)
				metrics_observe(m, r, 200, lat[i] + (unsigned long long)k);
	char *t = render(m, "cp");

	const char *bucket = "http_request_duration_seconds_bucket{";
	const char *count = "http_request_duration_seconds_count{";
	int series = 0;
	unsigned long long prev = 0, inf = 0;
	char cur[256] = "";
	for (char *line = t; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
		char labels[256];
		unsigned long long v;
		if (strncmp(line, bucket, strlen(bucket)) == 0) {
			const char *le = strstr(line, ",le=\"");
			ck_assert_ptr_nonnull(le);
			snprintf(labels, sizeof labels, "%.*s", (int)(le - line - strlen(bucket)),
			         line + strlen(bucket));
			ck_assert_int_eq(sscanf(strstr(line, "} ") + 2, "%llu", &v), 1);
			if (strcmp(labels, cur) != 0) {
				snprintf(cur, sizeof cur, "%s", labels);
				prev = 0;
			}
			ck_assert_msg(v >= prev, "bucket decreased to %llu in {%s}", v, labels);
			prev = v;
			if (strncmp(le, ",le=\"+Inf\"", 10) == 0)
				inf = v;
		} else if (strncmp(line, count, strlen(count)) == 0) {
			ck_assert_msg(strncmp(line + strlen(count), cur, strlen(cur)) == 0,
			              "_count out of order after {%s}", cur);
			ck_assert_int_eq(sscanf(strstr(line, "} ") + 2, "%llu", &v), 1);
			ck_assert_msg(v == inf, "{%s}: _count %llu but +Inf %llu", cur, v, inf);
			series++;
		}
	}
	ck_assert_int_eq(series, (int)NROUTES + 1);
	ck_assert_line(t, "http_request_duration_seconds_count{" L_NOMATCH "} 8");
	ck_assert_line(t, "http_request_duration_seconds_count{" L_GET "} 32");
	free(t);
	metrics_free(m);
}
END_TEST

START_TEST(process_metrics_labelled)
{
	/* Process figures carry the service label so that services can be told apart. */
	struct metrics *m = metrics_new(routes, NROUTES);
	char *t = render(m, "control-plane");
	ck_assert_line(t, "# TYPE process_cpu_seconds_total counter");
	ck_assert_int_eq(count_lines(t, "process_cpu_seconds_total{service=\"control-plane\"} "), 1);
	ck_assert_int_eq(count_lines(t, "process_resident_memory_bytes{service=\"control-plane\"} "), 1);
	ck_assert_int_eq(count_lines(t, "process_open_fds{service=\"control-plane\"} "), 1);
	ck_assert_int_eq(count_lines(t, "process_threads{service=\"control-plane\"} "), 1);
	ck_assert_int_eq(count_lines(t, "process_start_time_seconds{service=\"control-plane\"} "), 1);

	long threads = 0, rss = 0;
	const char *p = strstr(t, "process_threads{service=\"control-plane\"} ");
	ck_assert_int_eq(sscanf(strchr(p, '}') + 2, "%ld", &threads), 1);
	ck_assert_int_ge(threads, 1);
	p = strstr(t, "process_resident_memory_bytes{service=\"control-plane\"} ");
	ck_assert_int_eq(sscanf(strchr(p, '}') + 2, "%ld", &rss), 1);
	ck_assert_int_gt(rss, 0);
	free(t);
	metrics_free(m);
}
END_TEST

Suite *metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, fresh_has_no_request_samples);
	tcase_add_test(tc, requests_counted_by_route_and_status);
	tcase_add_test(tc, unmatched_route);
	tcase_add_test(tc, every_status_has_its_own_label);
	tcase_add_test(tc, histogram_cumulative);
	tcase_add_test(tc, histogram_consistent);
	tcase_add_test(tc, process_metrics_labelled);
	suite_add_tcase(s, tc);
	return s;
}
