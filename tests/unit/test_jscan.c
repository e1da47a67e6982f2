/* Unit tests of data-plane/jscan: where a JSON value ends, as the target
 * of a move and the mover find a page's members without building it; a
 * value cut short has no end, whatever it holds. */
#include <jansson.h>
#include <string.h>

#include "../../data-plane/jscan.c"
#include "unit.h"

/* Values whose end must be found, with strings holding every character
 * that could be taken for structure. */
static const char *const values[] = {
	"\"\"", "\"a\"", "\"a\\\"b\"", "\"\\\\\"", "\"\\\\\\\"\"", "\"]}{[,:\"", "\"\\u0022\"",
	"0", "-12.5e3", "true", "false", "null",
	"[]", "{}", "[1,2,3]", "[\"]\",\"[\"]", "{\"a\":{\"b\":[1,{\"c\":\"}\"}]}}",
	"[ [ ] , { } ]", "{\"k\\\"\":\"v\\\\\"}", "[\"\\\\\",\"x\"]",
};

/* The end of each value, followed by each separator a page has after a
 * member, is where the reference parser (jansson, stopping after one value)
 * stopped: scanning from the value's first byte. */
START_TEST(ends_like_a_parser)
{
	static const char *const after[] = { "", ",\"x\":1}", "}", "]", " ,", "\n}" };
	for (size_t v = 0; v < sizeof values / sizeof values[0]; v++)
		for (size_t a = 0; a < sizeof after / sizeof after[0]; a++) {
			char text[256];
			snprintf(text, sizeof text, "%s%s", values[v], after[a]);
			size_t n = strlen(text), want = strlen(values[v]);
			json_error_t err;
			json_t *j = json_loadb(text, n, JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK, &err);
			ck_assert_msg(j != NULL, "reference refused %s", text);
			json_decref(j);
			ck_assert_msg(jscan_value_end(text, 0, n) == want, "%s: end %zu, want %zu", text,
			              jscan_value_end(text, 0, n), want);
		}
}
END_TEST

/* Every strict prefix of a string, array or object has no end (0); a
 * number or literal cut short ends where the text does. */
START_TEST(cut_short)
{
	for (size_t v = 0; v < sizeof values / sizeof values[0]; v++) {
		const char *s = values[v];
		if (s[0] != '"' && s[0] != '[' && s[0] != '{')
			continue;
		for (size_t n = 1; n < strlen(s); n++)
			ck_assert_msg(jscan_value_end(s, 0, n) == 0, "%.*s has an end", (int)n, s);
	}
	ck_assert_uint_eq(jscan_string_end("\"ab\\\"", 0, 5), 0);
	ck_assert_uint_eq(jscan_value_end("tru", 0, 3), 3);
}
END_TEST

START_TEST(whitespace)
{
	ck_assert_uint_eq(jscan_ws(" \t\r\n x", 0, 6), 5);
	ck_assert_uint_eq(jscan_ws("   ", 1, 3), 3);
	ck_assert_uint_eq(jscan_ws("x", 0, 1), 0);
}
END_TEST

Suite *jscan_suite(void)
{
	Suite *s = suite_create("jscan");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, ends_like_a_parser);
	tcase_add_test(tc, cut_short);
	tcase_add_test(tc, whitespace);
	suite_add_tcase(s, tc);
	return s;
}
