/* Unit tests of common/erasure_report: a report a data plane builds is one
 * the control plane accepts, and each bound holds at both ends on both
 * sides. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erasure_report.h"
#include "unit.h"

#define TENANT "0b6c7f0e-3c1a-4d2b-9e8f-1a2b3c4d5e6f"

/* Parses `text`; returns 0 or -1 with the error in *err. */
static int parse_text(const char *text, struct erasure_report *r, struct jsonx_err *err)
{
	json_t *body = json_loads(text, 0, NULL);
	ck_assert_ptr_nonnull(body);
	int rc = erasure_report_parse(body, r, err);
	json_decref(body);
	return rc;
}

static const char *body(const char *tenant, const char *status, long long events, long long rows)
{
	static char b[300];
	snprintf(b, sizeof b, "{\"tenant_id\":\"%s\",\"status\":\"%s\",\"events_deleted\":%lld,\"rows_deleted\":%lld}",
	         tenant, status, events, rows);
	return b;
}

START_TEST(round_trip)
{
	/* Built by the data plane, parsed by the control plane: the same figures. */
	for (int done = 0; done < 2; done++) {
		struct erasure_report in = { .tenant_id = TENANT, .done = done, .events_deleted = 41,
			                         .rows_deleted = 43 }, out;
		struct jsonx_err err;
		json_t *j = erasure_report_build(&in);
		ck_assert_ptr_nonnull(j);
		ck_assert_int_eq(erasure_report_parse(j, &out, &err), 0);
		ck_assert_str_eq(out.tenant_id, TENANT);
		ck_assert_int_eq(out.done, done);
		ck_assert_int_eq(out.events_deleted, 41);
		ck_assert_int_eq(out.rows_deleted, 43);
		json_decref(j);
	}
}
END_TEST

START_TEST(counts_both_ends)
{
	/* 0 and ERASURE_REPORT_MAX_COUNT pass on both sides; one beyond fails
	 * on both; events never above rows. */
	struct erasure_report r = { .tenant_id = TENANT };
	struct jsonx_err err;
	json_t *j;
	const long long max = ERASURE_REPORT_MAX_COUNT;
	ck_assert_ptr_nonnull(j = erasure_report_build(&r));
	json_decref(j);
	r.events_deleted = r.rows_deleted = ERASURE_REPORT_MAX_COUNT;
	ck_assert_ptr_nonnull(j = erasure_report_build(&r));
	json_decref(j);
	r.rows_deleted++;
	ck_assert_ptr_null(erasure_report_build(&r));
	r.events_deleted = -1;
	r.rows_deleted = 0;
	ck_assert_ptr_null(erasure_report_build(&r));
	r.events_deleted = 2;
	r.rows_deleted = 1;
	ck_assert_ptr_null(erasure_report_build(&r));

	ck_assert_int_eq(parse_text(body(TENANT, "done", 0, 0), &r, &err), 0);
	ck_assert_int_eq(parse_text(body(TENANT, "done", max, max), &r, &err), 0);
	ck_assert_int_eq(r.rows_deleted, max);
	ck_assert_int_ne(parse_text(body(TENANT, "done", 0, max + 1), &r, &err), 0);
	ck_assert_str_eq(err.field, "rows_deleted");
	ck_assert_int_ne(parse_text(body(TENANT, "done", max + 1, max + 1), &r, &err), 0);
	ck_assert_str_eq(err.field, "events_deleted");
	ck_assert_int_ne(parse_text(body(TENANT, "done", -1, 0), &r, &err), 0);
	ck_assert_str_eq(err.field, "events_deleted");
	ck_assert_int_ne(parse_text(body(TENANT, "done", 0, -1), &r, &err), 0);
	ck_assert_str_eq(err.field, "rows_deleted");
	ck_assert_int_ne(parse_text(body(TENANT, "done", 2, 1), &r, &err), 0);
	ck_assert_str_eq(err.field, "events_deleted");
}
END_TEST

START_TEST(malformed_fields_named)
{
	struct erasure_report r;
	struct jsonx_err err;
	struct erasure_report bad = { .tenant_id = "not-a-uuid" };
	ck_assert_ptr_null(erasure_report_build(&bad));
	ck_assert_int_ne(parse_text(body("not-a-uuid", "done", 0, 0), &r, &err), 0);
	ck_assert_str_eq(err.field, "tenant_id");
	ck_assert_int_ne(parse_text(body(TENANT, "finished", 0, 0), &r, &err), 0);
	ck_assert_str_eq(err.field, "status");
	ck_assert_int_ne(parse_text(body(TENANT, "", 0, 0), &r, &err), 0);
	ck_assert_str_eq(err.field, "status");
	ck_assert_int_ne(parse_text("{\"status\":\"done\",\"events_deleted\":0,\"rows_deleted\":0}", &r, &err), 0);
	ck_assert_str_eq(err.field, "tenant_id");
	ck_assert_int_ne(parse_text("{\"tenant_id\":\"" TENANT "\",\"status\":\"done\",\"events_deleted\":0,"
	                            "\"rows_deleted\":0,\"extra\":1}", &r, &err), 0);
	ck_assert_int_ne(parse_text("{\"tenant_id\":\"" TENANT "\",\"status\":\"done\",\"events_deleted\":\"1\","
	                            "\"rows_deleted\":0}", &r, &err), 0);
	ck_assert_str_eq(err.field, "events_deleted");
	ck_assert_int_ne(parse_text("[]", &r, &err), 0);
}
END_TEST

Suite *erasure_report_suite(void)
{
	Suite *s = suite_create("erasure_report");
	TCase *tc = tcase_create("erasure_report");
	tcase_add_test(tc, round_trip);
	tcase_add_test(tc, counts_both_ends);
	tcase_add_test(tc, malformed_fields_named);
	suite_add_tcase(s, tc);
	return s;
}
