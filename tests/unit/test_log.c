/* The access log: every line is one valid JSON object, whatever bytes a
 * client put in its request path. */
#include <check.h>
#include <jansson.h>
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
	log_request(LOG_INFO, "rid-1", "GET", "/v1/x\"y\xff\n", 404, 1.5, -1);
	log_request(LOG_WARN, "rid-2", "POST", "/v1/y", 503, 0.25, 3);
	log_request(LOG_DEBUG, "rid-3", "GET", "/dropped", 200, 0.1, -1); /* below the level */
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
	json_decref(a);
	ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
	json_t *b = json_loads(line, 0, &e);
	ck_assert_ptr_nonnull(b);
	ck_assert_str_eq(json_string_value(json_object_get(b, "level")), "warn");
	ck_assert_int_eq(json_integer_value(json_object_get(b, "terminated")), 3);
	ck_assert(json_real_value(json_object_get(b, "duration_ms")) == 0.25);
	json_decref(b);
	ck_assert_ptr_null(fgets(line, sizeof line, f));
	fclose(f);
	unlink(path);
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
	suite_add_tcase(s, tc);
	return s;
}
