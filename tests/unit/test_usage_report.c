/* Unit tests of common/usage_report: a usage batch a data plane builds is
 * one the control plane accepts, and each limit holds at both ends on both
 * sides. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "usage_report.h"

#define TENANT "0b6c7f0e-3c1a-4d2b-9e8f-1a2b3c4d5e6f"

static const struct usage_record good = {
	.tenant = TENANT, .period = "2026-03", .events = 7,
	.window_start = "2026-03-01T00:00:00.000000Z", .window_end = "2026-03-01T00:05:00.000000Z",
};

/* Parses `text`; returns 0 or -1 with the error in *err. */
static int parse_text(const char *text, int64_t *events, struct usage_report_err *err)
{
	json_t *body = json_loads(text, 0, NULL), *records;
	ck_assert_ptr_nonnull(body);
	int rc = usage_report_parse(body, &records, events, err);
	if (rc == 0)
		ck_assert_ptr_nonnull(records);
	json_decref(body);
	return rc;
}

START_TEST(round_trip)
{
	/* Built by the data plane, parsed by the control plane: the same
	 * records, in order, with the same total. */
	json_t *report = usage_report_new(), *records;
	ck_assert_ptr_nonnull(report);
	struct usage_record r = good;
	int64_t want = 0;
	for (int i = 0; i < 5; i++) {
		r.events = i * 1000;
		want += r.events;
		ck_assert_int_eq(usage_report_add(report, &r), 0);
	}
	char *text = json_dumps(report, JSON_COMPACT);
	struct usage_report_err err;
	int64_t events;
	ck_assert_int_eq(parse_text(text, &events, &err), 0);
	ck_assert_int_eq(events, want);
	ck_assert_int_eq(usage_report_parse(report, &records, &events, &err), 0);
	ck_assert_int_eq(json_array_size(records), 5);
	for (size_t i = 0; i < 5; i++) {
		json_t *rec = json_array_get(records, i);
		ck_assert_str_eq(json_string_value(json_object_get(rec, "tenant")), TENANT);
		ck_assert_str_eq(json_string_value(json_object_get(rec, "period")), "2026-03");
		ck_assert_int_eq(json_integer_value(json_object_get(rec, "events")), (json_int_t)i * 1000);
		ck_assert_str_eq(json_string_value(json_object_get(rec, "window_end")), good.window_end);
	}
	free(text);
	json_decref(report);
}
END_TEST

START_TEST(records_limit_both_ends)
{
	/* 1 and USAGE_REPORT_MAX_RECORDS records are a batch; 0 and one more
	 * are not, on either side. */
	json_t *report = usage_report_new(), *records;
	struct usage_report_err err;
	int64_t events;
	ck_assert_int_ne(usage_report_parse(report, &records, &events, &err), 0);
	ck_assert_str_eq(err.field, "records");
	for (int i = 0; i < USAGE_REPORT_MAX_RECORDS; i++) {
		ck_assert_int_eq(usage_report_add(report, &good), 0);
		if (i == 0)
			ck_assert_int_eq(usage_report_parse(report, &records, &events, &err), 0);
	}
	ck_assert_int_eq(usage_report_parse(report, &records, &events, &err), 0);
	ck_assert_int_eq(events, (int64_t)USAGE_REPORT_MAX_RECORDS * 7);
	ck_assert_int_ne(usage_report_add(report, &good), 0);
	ck_assert_int_eq(json_array_size(json_object_get(report, "records")), USAGE_REPORT_MAX_RECORDS);
	/* One more, appended behind the builder's back, is refused on parse. */
	json_array_append_new(json_object_get(report, "records"), json_deep_copy(json_array_get(records, 0)));
	ck_assert_int_ne(usage_report_parse(report, &records, &events, &err), 0);
	ck_assert_str_eq(err.field, "records");
	json_decref(report);
}
END_TEST

START_TEST(events_limit_both_ends)
{
	/* 0 and USAGE_REPORT_MAX_EVENTS events per record pass; -1 and one more
	 * do not, on either side. */
	static const int64_t cases[] = { -1, 0, USAGE_REPORT_MAX_EVENTS, USAGE_REPORT_MAX_EVENTS + 1 };
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int ok = cases[i] >= 0 && cases[i] <= USAGE_REPORT_MAX_EVENTS;
		json_t *report = usage_report_new();
		struct usage_record r = good;
		r.events = cases[i];
		ck_assert_int_eq(usage_report_add(report, &r) == 0, ok);
		char text[512];
		snprintf(text, sizeof text,
		         "{\"records\":[{\"tenant\":\"%s\",\"period\":\"2026-03\",\"events\":%lld,"
		         "\"window_start\":\"%s\",\"window_end\":\"%s\"}]}",
		         TENANT, (long long)cases[i], good.window_start, good.window_end);
		struct usage_report_err err;
		int64_t events;
		ck_assert_msg((parse_text(text, &events, &err) == 0) == ok, "events %lld", (long long)cases[i]);
		if (ok)
			ck_assert_int_eq(events, cases[i]);
		else
			ck_assert_str_eq(err.field, "records[0].events");
		json_decref(report);
	}
}
END_TEST

START_TEST(malformed_fields_named)
{
	/* Each field that is not of its kind is named, with the record's index. */
	static const struct {
		const char *tenant, *period, *start, *end, *field;
	} cases[] = {
		{ "not-a-uuid", "2026-03", "2026-03-01T00:00:00Z", "2026-03-01T00:00:00Z", "records[1].tenant" },
		{ TENANT, "2026-13", "2026-03-01T00:00:00Z", "2026-03-01T00:00:00Z", "records[1].period" },
		{ TENANT, "0000-01", "2026-03-01T00:00:00Z", "2026-03-01T00:00:00Z", "records[1].period" },
		{ TENANT, "2026-03", "yesterday", "2026-03-01T00:00:00Z", "records[1].window_start" },
		{ TENANT, "2026-03", "2026-03-01T00:00:00Z", "soon", "records[1].window_end" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *report = usage_report_new(), *records;
		struct usage_record r = { cases[i].tenant, cases[i].period, 1, cases[i].start, cases[i].end };
		ck_assert_int_eq(usage_report_add(report, &good), 0);
		ck_assert_int_ne(usage_report_add(report, &r), 0); /* never built */
		json_array_append_new(json_object_get(report, "records"),
		                      json_pack("{ss ss sI ss ss}", "tenant", r.tenant, "period", r.period,
		                                "events", (json_int_t)1, "window_start", r.window_start,
		                                "window_end", r.window_end));
		struct usage_report_err err;
		int64_t events;
		ck_assert_int_ne(usage_report_parse(report, &records, &events, &err), 0);
		ck_assert_str_eq(err.field, cases[i].field);
		ck_assert_msg(strstr(err.detail, "Record 1:") == err.detail, "%s", err.detail);
		json_decref(report);
	}
	/* A member the format does not have, and a body that is not a batch. */
	struct usage_report_err err;
	int64_t events;
	ck_assert_int_ne(parse_text("{\"records\":[],\"extra\":1}", &events, &err), 0);
	ck_assert_int_ne(parse_text("{\"records\":{}}", &events, &err), 0);
	ck_assert_str_eq(err.field, "records");
}
END_TEST

START_TEST(period_syntax)
{
	ck_assert(usage_report_period_valid("0001-01"));
	ck_assert(usage_report_period_valid("9999-12"));
	ck_assert(!usage_report_period_valid("2026-00"));
	ck_assert(!usage_report_period_valid("2026-1"));
	ck_assert(!usage_report_period_valid("2026-011"));
	ck_assert(!usage_report_period_valid(NULL));
}
END_TEST

Suite *usage_report_suite(void)
{
	Suite *s = suite_create("usage_report");
	TCase *tc = tcase_create("usage_report");
	tcase_add_test(tc, round_trip);
	tcase_add_test(tc, records_limit_both_ends);
	tcase_add_test(tc, events_limit_both_ends);
	tcase_add_test(tc, malformed_fields_named);
	tcase_add_test(tc, period_syntax);
	suite_add_tcase(s, tc);
	return s;
}
