/* The access log: every line is one valid JSON object, whatever bytes a
 * client put in its request path, naming the caller but never a secret.
 * Repeated warnings: at most one line per interval, with the count left out.
 * Every line names what it is about: its thread's request or task. */
#include <check.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "unit.h"

static const char *esc(const char *in, size_t cap)
{
	static char out[512];
	log_json_escape(in, out, cap);
	return out;
}

/* Quotes, backslashes and control characters cannot break the line. */
START_TEST(escapes_specials)
{
	ck_assert_str_eq(esc("/a\"b\\c", 512), "/a\\\"b\\\\c");
	ck_assert_str_eq(esc("x\ny\tz\x01", 512), "x\\u000ay\\u0009z\\u0001");
	ck_assert_str_eq(esc("\x7f", 512), "\\u007f");
	ck_assert_str_eq(esc("", 512), "");
}
END_TEST

/* UTF-8 passes through; bytes that are not UTF-8 become U+FFFD. */
START_TEST(utf8_kept_garbage_replaced)
{
	ck_assert_str_eq(esc("/zo\xc3\xab/\xe2\x82\xac/\xf0\x9f\x98\x80", 512), "/zo\xc3\xab/\xe2\x82\xac/\xf0\x9f\x98\x80");
	ck_assert_str_eq(esc("a\xff" "b", 512), "a\\ufffdb");
	ck_assert_str_eq(esc("\xc0\xaf", 512), "\\ufffd\\ufffd");          /* overlong '/' */
	ck_assert_str_eq(esc("\xed\xa0\x80", 512), "\\ufffd\\ufffd\\ufffd"); /* a surrogate */
	ck_assert_str_eq(esc("\xe2\x82", 512), "\\ufffd\\ufffd");            /* cut sequence */
}
END_TEST

/* A long value is cut on a character boundary, never inside an escape or
 * a multi-byte character. */
START_TEST(cut_on_boundaries)
{
	ck_assert_str_eq(esc("abcdef", 4), "abc");
	ck_assert_str_eq(esc("ab\"cd", 4), "ab");           /* \" needs 2 more bytes than fit */
	ck_assert_str_eq(esc("a\xc3\xab", 3), "a");          /* no half of ë */
	ck_assert_str_eq(esc("a\x01", 6), "a");              /* no half of \u0001 */
}
END_TEST

/* A whole access-log line parses as JSON, with the members operators query. */
START_TEST(request_line_is_json)
{
	char path[] = "/tmp/ct-unit-log-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	int saved = dup(2);
	dup2(fd, 2);
	log_init("unit", LOG_INFO);
	log_request(LOG_INFO, "rid-1", "GET", "/v1/x\"y\xff\n", 404, 1.5, -1, NULL, NULL);
	log_request(LOG_WARN, "rid-2", "POST", "/v1/y", 503, 0.25, 3, "t-1\"", "k-1");
	log_request(LOG_DEBUG, "rid-3", "GET", "/dropped", 200, 0.1, -1, NULL, NULL); /* below the level */
	dup2(saved, 2);
	close(saved);
	close(fd);
	FILE *f = fopen(path, "r");
	char line[4096];
	json_error_t e;
	ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
	json_t *a = json_loads(line, 0, &e);
	ck_assert_msg(a, "not JSON: %s (%s)", line, e.text);
	ck_assert_str_eq(json_string_value(json_object_get(a, "path")), "/v1/x\"y\xef\xbf\xbd\n");
	ck_assert_int_eq(json_integer_value(json_object_get(a, "status")), 404);
	ck_assert_str_eq(json_string_value(json_object_get(a, "req_id")), "rid-1");
	ck_assert_str_eq(json_string_value(json_object_get(a, "level")), "info");
	ck_assert_ptr_null(json_object_get(a, "terminated"));
	ck_assert_ptr_null(json_object_get(a, "tenant"));
	ck_assert_ptr_null(json_object_get(a, "key_id"));
	json_decref(a);
	ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
	json_t *b = json_loads(line, 0, &e);
	ck_assert_ptr_nonnull(b);
	ck_assert_str_eq(json_string_value(json_object_get(b, "level")), "warn");
	ck_assert_int_eq(json_integer_value(json_object_get(b, "terminated")), 3);
	ck_assert(json_real_value(json_object_get(b, "duration_ms")) == 0.25);
	ck_assert_str_eq(json_string_value(json_object_get(b, "tenant")), "t-1\"");
	ck_assert_str_eq(json_string_value(json_object_get(b, "key_id")), "k-1");
	json_decref(b);
	ck_assert_ptr_null(fgets(line, sizeof line, f));
	fclose(f);
	unlink(path);
}
END_TEST

/* The limiter against a reference: a line is written when at least one
 * interval has passed since the last line written (both ends of the
 * boundary), and it carries the count of the lines left out meanwhile. */
START_TEST(limit_interval_boundaries)
{
	struct log_limit l = { 0 };
	/* The first line of a kind is written, at any time. */
	ck_assert_int_eq(log_limit_take(&l, 5000, 1000), 0);
	/* Within the interval: left out, up to its last millisecond. */
	ck_assert_int_eq(log_limit_take(&l, 5000, 1000), -1);
	ck_assert_int_eq(log_limit_take(&l, 5500, 1000), -1);
	ck_assert_int_eq(log_limit_take(&l, 5999, 1000), -1);
	/* At exactly one interval after the last line: written, with the count. */
	ck_assert_int_eq(log_limit_take(&l, 6000, 1000), 3);
	/* The next interval starts from that line, not from the first one. */
	ck_assert_int_eq(log_limit_take(&l, 6999, 1000), -1);
	ck_assert_int_eq(log_limit_take(&l, 7000, 1000), 1);
	/* Nothing left out: the count is 0 again, also after a long silence. */
	ck_assert_int_eq(log_limit_take(&l, 100000, 1000), 0);
	ck_assert_int_eq(log_limit_take(&l, 100999, 1000), -1);
	ck_assert_int_eq(log_limit_take(&l, 101000, 1000), 1);
	/* Limiters of two kinds do not share anything. */
	struct log_limit other = { 0 };
	ck_assert_int_eq(log_limit_take(&other, 101000, 1000), 0);
	ck_assert_int_eq(log_limit_take(&other, 101001, 1000), -1);
	ck_assert_int_eq(log_limit_take(&l, 101001, 1000), -1);
}
END_TEST

/* A pseudo-random sequence of attempts against the reference model: the
 * written lines, and their counts, are exactly what the rule says. */
START_TEST(limit_matches_model)
{
	struct log_limit l = { 0 };
	int64_t now = 0, last = -1, left = 0, interval = 250;
	uint32_t x = 12345;
	for (int i = 0; i < 20000; i++) {
		x = x * 1103515245u + 12345u;
		now += (x >> 16) % 40;          /* 0..39 ms between attempts */
		int64_t want = last < 0 || now - last >= interval ? left : -1;
		int64_t got = log_limit_take(&l, now, interval);
		ck_assert_msg(got == want, "attempt %d at %lld: got %lld, want %lld", i, (long long)now,
		              (long long)got, (long long)want);
		if (want >= 0) {
			last = now;
			left = 0;
		} else
			left++;
	}
}
END_TEST

/* Captures what the calling test writes on stderr between the two calls:
 * one JSON object per line, into a new array. */
static int capture_fd = -1, capture_saved = -1;
static char capture_path[32];

static void capture_start(void)
{
	snprintf(capture_path, sizeof capture_path, "/tmp/ct-unit-log-XXXXXX");
	capture_fd = mkstemp(capture_path);
	ck_assert_int_ge(capture_fd, 0);
	capture_saved = dup(2);
	dup2(capture_fd, 2);
}

static json_t *capture_end(void)
{
	dup2(capture_saved, 2);
	close(capture_saved);
	close(capture_fd);
	FILE *f = fopen(capture_path, "r");
	ck_assert_ptr_nonnull(f);
	json_t *lines = json_array();
	char line[4096];
	while (fgets(line, sizeof line, f)) {
		json_error_t e;
		json_t *j = json_loads(line, 0, &e);
		ck_assert_msg(json_is_object(j), "not a JSON object: %s (%s)", line, e.text);
		json_array_append_new(lines, j);
	}
	fclose(f);
	unlink(capture_path);
	return lines;
}

/* The lines written through a limiter name the count as "suppressed". */
START_TEST(limited_lines_carry_count)
{
	capture_start();
	log_init("unit", LOG_INFO);
	log_set_repeat_interval(3600000); /* nothing but the first within the test */
	for (int i = 0; i < 50; i++)
		log_warn_limited(NULL, "database down (%d)", i);
	log_set_repeat_interval(LOG_REPEAT_INTERVAL_DEFAULT_MS);
	json_t *lines = capture_end();
	ck_assert_int_eq(json_array_size(lines), 1);
	json_t *a = json_array_get(lines, 0);
	ck_assert_str_eq(json_string_value(json_object_get(a, "msg")), "database down (0)");
	ck_assert_str_eq(json_string_value(json_object_get(a, "level")), "warn");
	ck_assert_int_eq(json_integer_value(json_object_get(a, "suppressed")), 0);
	json_decref(lines);
}
END_TEST


/* A member of line `i`, NULL when absent. */
static const char *member(const json_t *lines, size_t i, const char *name)
{
	return json_string_value(json_object_get(json_array_get(lines, i), name));
}

/* The thread's context against a reference: the members each kind of
 * context puts on a line, the explicit request id that is another
 * request's (no tenant or key of the context's), empty members left out,
 * and the context set back. */
START_TEST(context_members)
{
	static const struct {
		struct log_ctx ctx;
		const char *explicit_rid;
		/* the line's expected members, NULL: absent */
		const char *req_id, *tenant, *key_id, *task;
	} cases[] = {
		{ { 0 }, NULL, NULL, NULL, NULL, NULL },
		{ { .task = "config_pull" }, NULL, NULL, NULL, NULL, "config_pull" },
		{ { .req_id = "r-1" }, NULL, "r-1", NULL, NULL, NULL },
		{ { .req_id = "r-1", .tenant = "t-1", .key_id = "k-1" }, NULL, "r-1", "t-1", "k-1", NULL },
		{ { .req_id = "r-1", .tenant = "t-1", .key_id = "" }, NULL, "r-1", "t-1", NULL, NULL },
		{ { .req_id = "", .tenant = "", .key_id = "", .task = "" }, NULL, NULL, NULL, NULL, NULL },
		/* the same request named explicitly: the context's tenant stays */
		{ { .req_id = "r-1", .tenant = "t-1", .key_id = "k-1" }, "r-1", "r-1", "t-1", "k-1", NULL },
		/* another request: its own id, not the context's tenant or key */
		{ { .req_id = "r-1", .tenant = "t-1", .key_id = "k-1" }, "r-2", "r-2", NULL, NULL, NULL },
		{ { .task = "ingest_writer" }, "r-3", "r-3", NULL, NULL, "ingest_writer" },
		{ { .task = "ingest_writer", .req_id = "r-4", .tenant = "t-4", .key_id = "k-4" }, NULL, "r-4",
		  "t-4", "k-4", "ingest_writer" },
	};
	size_t n = sizeof cases / sizeof cases[0];
	log_init("unit", LOG_INFO);
	struct log_ctx before = log_ctx_set((struct log_ctx){ .task = "outer" });
	capture_start();
	for (size_t i = 0; i < n; i++) {
		struct log_ctx prev = log_ctx_set(cases[i].ctx);
		log_warn(cases[i].explicit_rid, "case %zu", i);
		struct log_ctx back = log_ctx_set(prev);
		ck_assert_ptr_eq(back.req_id, cases[i].ctx.req_id);
		ck_assert_ptr_eq(back.task, cases[i].ctx.task);
	}
	log_info(NULL, "outer again");
	/* Members given by the caller win over the context's. */
	log_write(LOG_INFO, NULL, json_pack("{ss}", "task", "given"), "given");
	json_t *lines = capture_end();
	log_ctx_set(before);
	ck_assert_int_eq(json_array_size(lines), n + 2);
	for (size_t i = 0; i < n; i++) {
		const char *names[] = { "req_id", "tenant", "key_id", "task" };
		const char *want[] = { cases[i].req_id, cases[i].tenant, cases[i].key_id, cases[i].task };
		for (int m = 0; m < 4; m++) {
			const char *got = member(lines, i, names[m]);
			if (want[m])
				ck_assert_msg(got && !strcmp(got, want[m]), "case %zu: %s is %s, want %s", i, names[m],
				              got ? got : "(absent)", want[m]);
			else
				ck_assert_msg(!got, "case %zu: %s is %s, want none", i, names[m], got);
		}
	}
	ck_assert_str_eq(member(lines, n, "task"), "outer");
	ck_assert_ptr_null(member(lines, n, "req_id"));
	ck_assert_str_eq(member(lines, n + 1, "task"), "given");
	json_decref(lines);
}
END_TEST

/* Limited lines carry the context too. */
START_TEST(limited_lines_carry_context)
{
	log_init("unit", LOG_INFO);
	struct log_ctx prev = log_ctx_set((struct log_ctx){ .req_id = "r-9", .tenant = "t-9", .key_id = "k-9" });
	capture_start();
	log_warn_limited(NULL, "database down");
	json_t *lines = capture_end();
	log_ctx_set(prev);
	ck_assert_int_eq(json_array_size(lines), 1);
	ck_assert_str_eq(member(lines, 0, "req_id"), "r-9");
	ck_assert_str_eq(member(lines, 0, "tenant"), "t-9");
	ck_assert_str_eq(member(lines, 0, "key_id"), "k-9");
	json_decref(lines);
}
END_TEST

static void *other_thread(void *arg)
{
	(void)arg;
	log_info(NULL, "fresh thread"); /* no context: a new thread has none */
	log_set_task("other");
	log_info(NULL, "named thread");
	return NULL;
}

/* The context belongs to its thread: a new thread starts without one, and
 * naming its task leaves the others' alone. */
START_TEST(context_is_per_thread)
{
	pthread_t t;
	log_init("unit", LOG_INFO);
	struct log_ctx prev = log_ctx_set((struct log_ctx){ .req_id = "r-main", .tenant = "t-main" });
	capture_start();
	ck_assert_int_eq(pthread_create(&t, NULL, other_thread, NULL), 0);
	pthread_join(t, NULL);
	log_info(NULL, "this thread");
	json_t *lines = capture_end();
	log_ctx_set(prev);
	ck_assert_int_eq(json_array_size(lines), 3);
	for (int m = 0; m < 4; m++) {
		const char *names[] = { "req_id", "tenant", "key_id", "task" };
		ck_assert_ptr_null(member(lines, 0, names[m]));
	}
	ck_assert_str_eq(member(lines, 1, "task"), "other");
	ck_assert_ptr_null(member(lines, 1, "req_id"));
	ck_assert_str_eq(member(lines, 2, "req_id"), "r-main");
	ck_assert_str_eq(member(lines, 2, "tenant"), "t-main");
	ck_assert_ptr_null(member(lines, 2, "task"));
	json_decref(lines);
}
END_TEST

Suite *log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, escapes_specials);
	tcase_add_test(tc, utf8_kept_garbage_replaced);
	tcase_add_test(tc, cut_on_boundaries);
	tcase_add_test(tc, request_line_is_json);
	tcase_add_test(tc, limit_interval_boundaries);
	tcase_add_test(tc, limit_matches_model);
	tcase_add_test(tc, limited_lines_carry_count);
	tcase_add_test(tc, context_members);
	tcase_add_test(tc, limited_lines_carry_context);
	tcase_add_test(tc, context_is_per_thread);
	suite_add_tcase(s, tc);
	return s;
}
