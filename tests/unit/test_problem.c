/* Unit tests of common/problem: the application/problem+json documents. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "problem.h"
#include "unit.h"

static const struct {
	enum problem_code code;
	const char *name;
	unsigned status;
} expected[] = {
	{ PROB_BAD_REQUEST, "bad_request", 400 },
	{ PROB_INVALID_JSON, "invalid_json", 400 },
	{ PROB_VALIDATION, "validation_failed", 400 },
	{ PROB_UNAUTHORIZED, "unauthorized", 401 },
	{ PROB_FORBIDDEN, "forbidden", 403 },
	{ PROB_NOT_FOUND, "not_found", 404 },
	{ PROB_METHOD_NOT_ALLOWED, "method_not_allowed", 405 },
	{ PROB_CONFLICT, "conflict", 409 },
	{ PROB_BODY_TOO_LARGE, "body_too_large", 413 },
	{ PROB_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", 415 },
	{ PROB_MISDIRECTED, "wrong_region", 421 },
	{ PROB_UNPROCESSABLE, "unprocessable", 422 },
	{ PROB_RATE_LIMITED, "rate_limited", 429 },
	{ PROB_QUOTA_EXCEEDED, "quota_exceeded", 429 },
	{ PROB_INTERNAL, "internal_error", 500 },
	{ PROB_UNAVAILABLE, "unavailable", 503 },
	{ PROB_LOGIN_BUSY, "login_busy", 503 },
	{ PROB_TENANT_SUSPENDED, "tenant_suspended", 403 },
	{ PROB_INSUFFICIENT_SCOPE, "insufficient_scope", 403 },
	{ PROB_WRONG_CELL, "wrong_cell", 503 },
};
#define NEXPECTED (sizeof expected / sizeof expected[0])

static const char *str_member(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

START_TEST(body_full)
{
	/* A problem carries type, title, status, code, detail and request id. */
	json_t *o = problem_body(PROB_NOT_FOUND, "No tenant 'acme'.", "req-123");
	ck_assert_ptr_nonnull(o);
	ck_assert_uint_eq(json_object_size(o), 6);
	ck_assert_str_eq(str_member(o, "type"), "urn:celltrail:problem:not_found");
	ck_assert_str_eq(str_member(o, "title"), "Not found");
	ck_assert(json_is_integer(json_object_get(o, "status")));
	ck_assert_int_eq(json_integer_value(json_object_get(o, "status")), 404);
	ck_assert_str_eq(str_member(o, "code"), "not_found");
	ck_assert_str_eq(str_member(o, "detail"), "No tenant 'acme'.");
	ck_assert_str_eq(str_member(o, "request_id"), "req-123");
	json_decref(o);
}
END_TEST

START_TEST(body_optional_members_omitted)
{
	/* Without detail or request id those members are absent, not null. */
	json_t *o = problem_body(PROB_CONFLICT, NULL, NULL);
	ck_assert_ptr_nonnull(o);
	ck_assert_uint_eq(json_object_size(o), 4);
	ck_assert_ptr_null(json_object_get(o, "detail"));
	ck_assert_ptr_null(json_object_get(o, "request_id"));
	ck_assert_str_eq(str_member(o, "code"), "conflict");
	ck_assert_int_eq(json_integer_value(json_object_get(o, "status")), 409);
	json_decref(o);
}
END_TEST

START_TEST(status_per_code)
{
	/* Each stable code keeps its HTTP status, name and type URI (codes
	 * added since are checked by table_well_formed). */
	ck_assert_uint_le(NEXPECTED, PROB__COUNT);
	for (size_t i = 0; i < NEXPECTED; i++) {
		const struct problem_info *p = problem_info(expected[i].code);
		ck_assert_str_eq(p->code, expected[i].name);
		ck_assert_uint_eq(p->status, expected[i].status);
		ck_assert_ptr_nonnull(p->title);
		ck_assert_uint_gt(strlen(p->title), 0);

		json_t *o = problem_body(expected[i].code, NULL, NULL);
		char type[128];
		snprintf(type, sizeof type, "%s%s", PROBLEM_TYPE_PREFIX, expected[i].name);
		ck_assert_str_eq(str_member(o, "type"), type);
		ck_assert_str_eq(str_member(o, "code"), expected[i].name);
		ck_assert_str_eq(str_member(o, "title"), p->title);
		ck_assert_int_eq(json_integer_value(json_object_get(o, "status")), expected[i].status);
		json_decref(o);
	}
}
END_TEST

START_TEST(table_well_formed)
{
	/* Every row of the table, however many there are: a snake_case code
	 * (it is also the tail of the type URI), an error status, a title. */
	for (int i = 0; i < PROB__COUNT; i++) {
		const struct problem_info *p = problem_info((enum problem_code)i);
		ck_assert_msg(p->code && p->title, "row %d of the problem table is empty", i);
		size_t n = strlen(p->code);
		ck_assert_msg(n > 0 && strspn(p->code, "abcdefghijklmnopqrstuvwxyz_") == n && p->code[0] != '_' &&
		                  p->code[n - 1] != '_' && !strstr(p->code, "__"),
		              "code '%s' is not snake_case", p->code);
		ck_assert_msg(p->status >= 400 && p->status <= 599, "%s: status %u is not an error", p->code, p->status);
		ck_assert_msg(strlen(p->title) > 0, "%s has no title", p->code);
	}
}
END_TEST

START_TEST(codes_unique)
{
	/* Clients switch on the code, so no two problems share one. */
	for (int i = 0; i < PROB__COUNT; i++)
		for (int j = i + 1; j < PROB__COUNT; j++)
			ck_assert_str_ne(problem_info((enum problem_code)i)->code,
			                 problem_info((enum problem_code)j)->code);
}
END_TEST

START_TEST(out_of_range_is_internal)
{
	/* A bad code never reads past the table: it becomes internal_error (500). */
	ck_assert_str_eq(problem_info(PROB__COUNT)->code, "internal_error");
	ck_assert_uint_eq(problem_info((enum problem_code)(PROB__COUNT + 40))->status, 500);
	ck_assert_str_eq(problem_info((enum problem_code)-1)->code, "internal_error");

	json_t *o = problem_body((enum problem_code)99, "oops", NULL);
	ck_assert_str_eq(str_member(o, "code"), "internal_error");
	ck_assert_str_eq(str_member(o, "type"), "urn:celltrail:problem:internal_error");
	ck_assert_int_eq(json_integer_value(json_object_get(o, "status")), 500);
	ck_assert_str_eq(str_member(o, "detail"), "oops");
	json_decref(o);
}
END_TEST

START_TEST(detail_not_utf8)
{
	/* A detail with invalid UTF-8 still yields a detail member, never a NULL hole. */
	json_t *o = problem_body(PROB_VALIDATION, "bad byte \xff here", "r1");
	ck_assert_uint_eq(json_object_size(o), 6);
	ck_assert_str_eq(str_member(o, "detail"), "(detail not valid UTF-8)");
	json_decref(o);
}
END_TEST

START_TEST(body_serializes)
{
	/* The document serializes to the JSON a client receives. */
	json_t *o = problem_body(PROB_RATE_LIMITED, "Slow down.", NULL);
	char *text = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT);
	ck_assert_str_eq(text, "{\"code\":\"rate_limited\",\"detail\":\"Slow down.\",\"status\":429,"
	                       "\"title\":\"Too many requests\","
	                       "\"type\":\"urn:celltrail:problem:rate_limited\"}");
	free(text);
	json_decref(o);
}
END_TEST

Suite *problem_suite(void)
{
	Suite *s = suite_create("problem");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, body_full);
	tcase_add_test(tc, body_optional_members_omitted);
	tcase_add_test(tc, status_per_code);
	tcase_add_test(tc, table_well_formed);
	tcase_add_test(tc, codes_unique);
	tcase_add_test(tc, out_of_range_is_internal);
	tcase_add_test(tc, detail_not_utf8);
	tcase_add_test(tc, body_serializes);
	suite_add_tcase(s, tc);
	return s;
}
