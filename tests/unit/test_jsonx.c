/* Unit tests of common/jsonx: bounded parsing and table-driven unpacking. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "jsonx.h"
#include "unit.h"

/* Parses a NUL-terminated literal with the default depth limit. */
static json_t *parse(const char *text, struct jsonx_err *err)
{
	return jsonx_parse(text, strlen(text), 0, err);
}

/* A string of `depth` nested arrays around 1, e.g. depth 2: "[[1]]". */
static char *nested(int depth)
{
	static char buf[2 * 200 + 2];
	int n = 0;
	for (int i = 0; i < depth; i++)
		buf[n++] = '[';
	buf[n++] = '1';
	for (int i = 0; i < depth; i++)
		buf[n++] = ']';
	buf[n] = '\0';
	return buf;
}

#define ck_assert_prefix(s, prefix) \
	ck_assert_msg(strncmp((s), (prefix), strlen(prefix)) == 0, "'%s' does not start with '%s'", \
	              (s), (prefix))

START_TEST(parse_object)
{
	/* A well-formed body comes back as the JSON value it spells. */
	struct jsonx_err err;
	json_t *v = parse("{\"name\": \"acme\", \"n\": [1, 2]}", &err);
	ck_assert_ptr_nonnull(v);
	ck_assert(json_is_object(v));
	ck_assert_str_eq(json_string_value(json_object_get(v, "name")), "acme");
	ck_assert_uint_eq(json_array_size(json_object_get(v, "n")), 2);
	json_decref(v);
}
END_TEST

START_TEST(parse_uses_length_not_nul)
{
	/* Only `len` bytes are parsed: the body need not be NUL-terminated. */
	struct jsonx_err err;
	const char buf[] = "{\"a\":1}GARBAGE";
	json_t *v = jsonx_parse(buf, 7, 0, &err);
	ck_assert_ptr_nonnull(v);
	ck_assert_int_eq(json_integer_value(json_object_get(v, "a")), 1);
	json_decref(v);
}
END_TEST

START_TEST(parse_empty_body)
{
	/* An empty body gets its own message, not a parser's column number. */
	struct jsonx_err err;
	memset(&err, 'x', sizeof err);
	ck_assert_ptr_null(jsonx_parse("", 0, 0, &err));
	ck_assert_str_eq(err.field, "");
	ck_assert_str_eq(err.msg, "The request body is empty; a JSON document is expected.");
}
END_TEST

START_TEST(parse_syntax_error)
{
	/* Broken JSON, or a document followed by more, is refused with where it broke. */
	struct jsonx_err err;
	ck_assert_ptr_null(parse("{\"a\": }", &err));
	ck_assert_str_eq(err.field, "");
	ck_assert_prefix(err.msg, "Invalid JSON at line 1, column ");
	ck_assert_ptr_null(parse("{} {}", &err));
	ck_assert_prefix(err.msg, "Invalid JSON");
	ck_assert_ptr_null(parse("{\"a\":1}x", &err));
	ck_assert_prefix(err.msg, "Invalid JSON");
}
END_TEST

START_TEST(parse_depth_default)
{
	/* Nesting up to JSONX_MAX_DEPTH is fine; one level more is refused. */
	struct jsonx_err err;
	json_t *v = parse(nested(JSONX_MAX_DEPTH), &err);
	ck_assert_msg(v != NULL, "%s", err.msg);
	json_decref(v);
	ck_assert_ptr_null(parse(nested(JSONX_MAX_DEPTH + 1), &err));
	ck_assert_str_eq(err.msg, "The JSON document is nested deeper than 32 levels.");
	ck_assert_ptr_null(parse(nested(200), &err));
	ck_assert_str_eq(err.msg, "The JSON document is nested deeper than 32 levels.");
}
END_TEST

START_TEST(parse_depth_custom)
{
	/* A route can ask for a shallower limit; objects count like arrays. */
	struct jsonx_err err;
	const char *two = "{\"a\": {\"b\": 1}}", *three = "{\"a\": {\"b\": [1]}}";
	json_t *v = jsonx_parse(two, strlen(two), 2, &err);
	ck_assert_ptr_nonnull(v);
	json_decref(v);
	ck_assert_ptr_null(jsonx_parse(three, strlen(three), 2, &err));
	ck_assert_str_eq(err.msg, "The JSON document is nested deeper than 2 levels.");
}
END_TEST

START_TEST(parse_depth_ignores_strings)
{
	/* Brackets and escaped quotes inside strings do not count as nesting. */
	struct jsonx_err err;
	const char *text = "{\"a\": \"[[[[{{{{\\\"[[[[\"}";
	json_t *v = jsonx_parse(text, strlen(text), 1, &err);
	ck_assert_msg(v != NULL, "%s", err.msg);
	ck_assert_str_eq(json_string_value(json_object_get(v, "a")), "[[[[{{{{\"[[[[");
	json_decref(v);
}
END_TEST

START_TEST(parse_duplicate_keys)
{
	/* {"a":1,"a":2} is refused: which value wins is not left to chance. */
	struct jsonx_err err;
	ck_assert_ptr_null(parse("{\"role\": \"user\", \"role\": \"admin\"}", &err));
	ck_assert_prefix(err.msg, "Invalid JSON");
	ck_assert_ptr_nonnull(strstr(err.msg, "duplicate object key"));
}
END_TEST

START_TEST(parse_invalid_utf8)
{
	/* Bytes that are not UTF-8 are refused, inside strings or out. */
	static const char *const bad[] = {
		"\"\xff\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "{\"k\xe9\": 1}", "\"abc\xe2\x82\"",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct jsonx_err err;
		json_t *v = parse(bad[i], &err);
		ck_assert_msg(v == NULL, "case %zu accepted", i);
		json_decref(v);
		ck_assert_prefix(err.msg, "Invalid JSON");
	}
	struct jsonx_err err;
	json_t *v = parse("\"caf\xc3\xa9 \xe2\x82\xac\"", &err);
	ck_assert_ptr_nonnull(v);
	json_decref(v);
}
END_TEST

START_TEST(parse_rejects_escaped_nul)
{
	/* "\u0000" cannot smuggle a NUL into a C string. */
	struct jsonx_err err;
	ck_assert_ptr_null(parse("{\"name\": \"a\\u0000b\"}", &err));
	ck_assert_prefix(err.msg, "Invalid JSON");
}
END_TEST

/* The body a handler accepts in these tests. */
struct body {
	const char *name;
	int64_t count;
	int active;
	json_t *meta;
	json_t *tags;
	json_t *extra;
	const char *note;
};

enum { F_NAME, F_COUNT, F_ACTIVE, F_META, F_TAGS, F_EXTRA, F_NOTE };

static const struct jsonx_field fields[] = {
	[F_NAME]   = { "name", JX_STRING, 1, 0, 0, 16, offsetof(struct body, name) },
	[F_COUNT]  = { "count", JX_INT, 0, 0, 1, 100, offsetof(struct body, count) },
	[F_ACTIVE] = { "active", JX_BOOL, 0, 0, 0, 0, offsetof(struct body, active) },
	[F_META]   = { "meta", JX_OBJECT, 0, 0, 0, 0, offsetof(struct body, meta) },
	[F_TAGS]   = { "tags", JX_ARRAY, 0, 0, 0, 3, offsetof(struct body, tags) },
	[F_EXTRA]  = { "extra", JX_ANY, 0, 0, 0, 0, offsetof(struct body, extra) },
	[F_NOTE]   = { "note", JX_STRING, 0, 1, 0, 0, offsetof(struct body, note) },
	JSONX_END
};

#define BIT(i) (UINT64_C(1) << (i))

/* Parses `text` (which must be valid) and unpacks it against `fields`.
 * The caller json_decref()s *doc. */
static int unpack(const char *text, json_t **doc, struct body *b, uint64_t *present,
                  struct jsonx_err *err)
{
	*doc = parse(text, err);
	ck_assert_msg(*doc != NULL, "fixture does not parse: %s", err->msg);
	memset(b, 0, sizeof *b);
	return jsonx_unpack(*doc, fields, b, present, err);
}

/* Expects `text` to be refused, blaming `field` with message `msg`. */
static void expect_refused(const char *text, const char *field, const char *msg)
{
	json_t *doc;
	struct body b;
	struct jsonx_err err;
	int rc = unpack(text, &doc, &b, NULL, &err);
	json_decref(doc);
	ck_assert_msg(rc == -1, "%s accepted", text);
	ck_assert_str_eq(err.field, field);
	ck_assert_str_eq(err.msg, msg);
}

START_TEST(unpack_all_fields)
{
	/* Every declared field lands in the struct with its value. */
	json_t *doc;
	struct body b;
	uint64_t present = 0;
	struct jsonx_err err;
	int rc = unpack("{\"name\": \"acme\", \"count\": 7, \"active\": true, \"meta\": {\"k\": 1},"
	                " \"tags\": [\"a\", \"b\"], \"extra\": 3.5, \"note\": \"hi\"}",
	                &doc, &b, &present, &err);
	ck_assert_msg(rc == 0, "%s: %s", err.field, err.msg);
	ck_assert_str_eq(b.name, "acme");
	ck_assert_int_eq(b.count, 7);
	ck_assert_int_eq(b.active, 1);
	ck_assert_int_eq(json_integer_value(json_object_get(b.meta, "k")), 1);
	ck_assert_uint_eq(json_array_size(b.tags), 2);
	ck_assert(json_is_real(b.extra));
	ck_assert_str_eq(b.note, "hi");
	ck_assert_uint_eq(present, BIT(F_NAME) | BIT(F_COUNT) | BIT(F_ACTIVE) | BIT(F_META) |
	                           BIT(F_TAGS) | BIT(F_EXTRA) | BIT(F_NOTE));
	json_decref(doc);
}
END_TEST

START_TEST(unpack_unknown_field)
{
	/* A typo in a JSON field name is reported, not silently ignored. */
	expect_refused("{\"name\": \"acme\", \"cuont\": 3}", "cuont", "Unknown field 'cuont'.");
}
END_TEST

START_TEST(unpack_unknown_before_missing)
{
	/* A misspelt required field is reported as the typo, which is the fix. */
	expect_refused("{\"nmae\": \"acme\"}", "nmae", "Unknown field 'nmae'.");
}
END_TEST

START_TEST(unpack_unknown_field_long_name)
{
	/* A huge unknown key is named, but cut short in the reply. */
	char text[400], key[301];
	memset(key, 'k', 300);
	key[300] = '\0';
	snprintf(text, sizeof text, "{\"%s\": 1}", key);
	json_t *doc;
	struct body b;
	struct jsonx_err err;
	ck_assert_int_eq(unpack(text, &doc, &b, NULL, &err), -1);
	json_decref(doc);
	ck_assert_uint_gt(strlen(err.field), 0);
	ck_assert_uint_lt(strlen(err.field), sizeof err.field);
	ck_assert_uint_eq(strspn(err.field, "k"), strlen(err.field));
	ck_assert_prefix(err.msg, "Unknown field 'kkkk");
}
END_TEST

START_TEST(unpack_required_missing)
{
	/* Leaving out a required field names it. */
	expect_refused("{}", "name", "Field 'name' is required.");
	expect_refused("{\"count\": 3}", "name", "Field 'name' is required.");
}
END_TEST

START_TEST(unpack_wrong_types)
{
	/* A value of the wrong JSON type is refused, naming field and expected type. */
	expect_refused("{\"name\": 5}", "name", "Field 'name' must be a string.");
	expect_refused("{\"name\": \"a\", \"count\": \"5\"}", "count", "Field 'count' must be an integer.");
	expect_refused("{\"name\": \"a\", \"count\": 5.0}", "count", "Field 'count' must be an integer.");
	expect_refused("{\"name\": \"a\", \"active\": \"true\"}", "active",
	               "Field 'active' must be a boolean.");
	expect_refused("{\"name\": \"a\", \"active\": 1}", "active", "Field 'active' must be a boolean.");
	expect_refused("{\"name\": \"a\", \"meta\": []}", "meta", "Field 'meta' must be an object.");
	expect_refused("{\"name\": \"a\", \"tags\": {}}", "tags", "Field 'tags' must be an array.");
}
END_TEST

START_TEST(unpack_string_max_length)
{
	/* String limits are in bytes: 16 fit, 17 do not, multibyte counts per byte. */
	json_t *doc;
	struct body b;
	struct jsonx_err err;
	ck_assert_int_eq(unpack("{\"name\": \"0123456789abcdef\"}", &doc, &b, NULL, &err), 0);
	ck_assert_str_eq(b.name, "0123456789abcdef");
	json_decref(doc);
	/* eight two-byte characters: 16 bytes */
	ck_assert_int_eq(unpack("{\"name\": \"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	                        "\xc3\xa9\xc3\xa9\"}", &doc, &b, NULL, &err), 0);
	json_decref(doc);

	expect_refused("{\"name\": \"0123456789abcdefg\"}", "name",
	               "Field 'name' is longer than 16 bytes.");
	expect_refused("{\"name\": \"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	               "\xc3\xa9\xc3\xa9\"}", "name", "Field 'name' is longer than 16 bytes.");
}
END_TEST

START_TEST(unpack_nul_in_string)
{
	/* A string with an embedded NUL is refused, not silently cut at the NUL. */
	/* jsonx_parse refuses "\u0000", so such a value can only come from code. */
	json_t *doc = json_object();
	json_object_set_new(doc, "name", json_stringn("adm\0in", 6));
	struct body b;
	struct jsonx_err err;
	memset(&b, 0, sizeof b);
	ck_assert_int_eq(jsonx_unpack(doc, fields, &b, NULL, &err), -1);
	ck_assert_str_eq(err.field, "name");
	ck_assert_str_eq(err.msg, "Field 'name' contains a NUL character.");
	ck_assert_ptr_null(b.name);
	json_decref(doc);
}
END_TEST

START_TEST(unpack_int_bounds)
{
	/* Integer bounds are inclusive and stated in the error. */
	json_t *doc;
	struct body b;
	struct jsonx_err err;
	ck_assert_int_eq(unpack("{\"name\": \"a\", \"count\": 1}", &doc, &b, NULL, &err), 0);
	ck_assert_int_eq(b.count, 1);
	json_decref(doc);
	ck_assert_int_eq(unpack("{\"name\": \"a\", \"count\": 100}", &doc, &b, NULL, &err), 0);
	ck_assert_int_eq(b.count, 100);
	json_decref(doc);
	expect_refused("{\"name\": \"a\", \"count\": 0}", "count", "Field 'count' must be between 1 and 100.");
	expect_refused("{\"name\": \"a\", \"count\": 101}", "count", "Field 'count' must be between 1 and 100.");
	expect_refused("{\"name\": \"a\", \"count\": -9223372036854775808}", "count",
	               "Field 'count' must be between 1 and 100.");
}
END_TEST

START_TEST(unpack_array_max_items)
{
	/* An array may hold at most its declared number of items. */
	json_t *doc;
	struct body b;
	struct jsonx_err err;
	ck_assert_int_eq(unpack("{\"name\": \"a\", \"tags\": [1, 2, 3]}", &doc, &b, NULL, &err), 0);
	ck_assert_uint_eq(json_array_size(b.tags), 3);
	json_decref(doc);
	expect_refused("{\"name\": \"a\", \"tags\": [1, 2, 3, 4]}", "tags",
	               "Field 'tags' has more than 3 items.");
}
END_TEST

START_TEST(unpack_nullable)
{
	/* null on a nullable field means "absent"; on other fields it is a type error. */
	json_t *doc;
	struct body b;
	uint64_t present = 0;
	struct jsonx_err err;
	ck_assert_int_eq(unpack("{\"name\": \"a\", \"note\": null}", &doc, &b, &present, &err), 0);
	ck_assert_ptr_null(b.note);
	ck_assert_uint_eq(present, BIT(F_NAME));
	json_decref(doc);
	expect_refused("{\"name\": null}", "name", "Field 'name' must be a string.");
	expect_refused("{\"name\": \"a\", \"count\": null}", "count", "Field 'count' must be an integer.");
}
END_TEST

START_TEST(unpack_required_nullable_null)
{
	/* A required field sent as null is reported as missing, not accepted. */
	struct req { const char *id; };
	static const struct jsonx_field f[] = {
		{ "id", JX_STRING, 1, 1, 0, 0, offsetof(struct req, id) },
		JSONX_END
	};
	struct jsonx_err err;
	struct req r = { NULL };
	json_t *doc = parse("{\"id\": null}", &err);
	ck_assert_ptr_nonnull(doc);
	ck_assert_int_eq(jsonx_unpack(doc, f, &r, NULL, &err), -1);
	ck_assert_str_eq(err.field, "id");
	ck_assert_str_eq(err.msg, "Field 'id' is required.");
	json_decref(doc);
}
END_TEST

START_TEST(unpack_present_bitmask)
{
	/* A PATCH handler can tell "not sent" from "sent as false/0". */
	json_t *doc;
	struct body b;
	uint64_t present = ~UINT64_C(0);
	struct jsonx_err err;
	ck_assert_int_eq(unpack("{\"name\": \"a\", \"active\": false}", &doc, &b, &present, &err), 0);
	ck_assert_uint_eq(present, BIT(F_NAME) | BIT(F_ACTIVE));
	ck_assert_int_eq(b.active, 0);
	json_decref(doc);
}
END_TEST

START_TEST(unpack_not_an_object)
{
	/* A body that is an array or a scalar is refused as a whole. */
	static const char *const bad[] = { "[]", "\"name\"", "42", "null" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct jsonx_err err;
		struct body b;
		uint64_t present = 99;
		json_t *doc = parse(bad[i], &err);
		ck_assert_ptr_nonnull(doc);
		ck_assert_int_eq(jsonx_unpack(doc, fields, &b, &present, &err), -1);
		ck_assert_str_eq(err.field, "");
		ck_assert_str_eq(err.msg, "A JSON object is expected.");
		ck_assert_uint_eq(present, 0);
		json_decref(doc);
	}
}
END_TEST

Suite *jsonx_suite(void)
{
	Suite *s = suite_create("jsonx");
	TCase *p = tcase_create("parse");
	TCase *u = tcase_create("unpack");

	tcase_add_test(p, parse_object);
	tcase_add_test(p, parse_uses_length_not_nul);
	tcase_add_test(p, parse_empty_body);
	tcase_add_test(p, parse_syntax_error);
	tcase_add_test(p, parse_depth_default);
	tcase_add_test(p, parse_depth_custom);
	tcase_add_test(p, parse_depth_ignores_strings);
	tcase_add_test(p, parse_duplicate_keys);
	tcase_add_test(p, parse_invalid_utf8);
	tcase_add_test(p, parse_rejects_escaped_nul);
	suite_add_tcase(s, p);

	tcase_add_test(u, unpack_all_fields);
	tcase_add_test(u, unpack_unknown_field);
	tcase_add_test(u, unpack_unknown_before_missing);
	tcase_add_test(u, unpack_unknown_field_long_name);
	tcase_add_test(u, unpack_required_missing);
	tcase_add_test(u, unpack_wrong_types);
	tcase_add_test(u, unpack_string_max_length);
	tcase_add_test(u, unpack_nul_in_string);
	tcase_add_test(u, unpack_int_bounds);
	tcase_add_test(u, unpack_array_max_items);
	tcase_add_test(u, unpack_nullable);
	tcase_add_test(u, unpack_required_nullable_null);
	tcase_add_test(u, unpack_present_bitmask);
	tcase_add_test(u, unpack_not_an_object);
	suite_add_tcase(s, u);
	return s;
}
