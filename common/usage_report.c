/* The usage report's fields and limits, built and checked (see usage_report.h). */
#include "usage_report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"

#define F(m) offsetof(struct usage_record, m)
const struct jsonx_field usage_report_record_fields[] = {
	{ "tenant", JX_STRING, 1, 0, 0, 36, F(tenant) },
	{ "period", JX_STRING, 1, 0, 0, 7, F(period) },
	{ "events", JX_INT, 1, 0, 0, USAGE_REPORT_MAX_EVENTS, F(events) },
	{ "window_start", JX_STRING, 1, 0, 0, 40, F(window_start) },
	{ "window_end", JX_STRING, 1, 0, 0, 40, F(window_end) },
	JSONX_END
};
#undef F

const struct jsonx_field usage_report_fields[] = {
	{ "records", JX_ARRAY, 1, 0, 0, USAGE_REPORT_MAX_RECORDS, offsetof(struct usage_report_body, records) },
	JSONX_END
};

int usage_report_period_valid(const char *s)
{
	return s && strlen(s) == 7 && strspn(s, "0123456789") == 4 && s[4] == '-' &&
	       strspn(s + 5, "0123456789") == 2 && atoi(s + 5) >= 1 && atoi(s + 5) <= 12 &&
	       strncmp(s, "0000", 4) != 0;
}

/* The field of `r` that is malformed, or NULL. */
static const char *malformed(const struct usage_record *r)
{
	return !name_valid_uuid(r->tenant) ? "tenant"
	       : !usage_report_period_valid(r->period) ? "period"
	       : !name_valid_timestamp(r->window_start) ? "window_start"
	       : !name_valid_timestamp(r->window_end) ? "window_end" : NULL;
}

json_t *usage_report_new(void)
{
	return json_pack("{s[]}", "records");
}

int usage_report_add(json_t *report, const struct usage_record *r)
{
	json_t *records = json_object_get(report, "records");
	if (json_array_size(records) >= USAGE_REPORT_MAX_RECORDS || r->events < 0 ||
	    r->events > USAGE_REPORT_MAX_EVENTS || malformed(r) || strlen(r->tenant) > 36 ||
	    strlen(r->window_start) > 40 || strlen(r->window_end) > 40)
		return -1;
	json_t *rec = json_pack("{ss ss sI ss ss}", "tenant", r->tenant, "period", r->period, "events",
	                        (json_int_t)r->events, "window_start", r->window_start, "window_end",
	                        r->window_end);
	return rec && json_array_append_new(records, rec) == 0 ? 0 : -1;
}

int usage_report_parse(const json_t *body, json_t **records, int64_t *events,
                       struct usage_report_err *err)
{
	struct usage_report_body in = { 0 };
	struct jsonx_err e;
	size_t i;
	json_t *rec;

	*records = NULL;
	*events = 0;
	if (jsonx_unpack(body, usage_report_fields, &in, NULL, &e) != 0) {
		snprintf(err->field, sizeof err->field, "%s", e.field);
		snprintf(err->detail, sizeof err->detail, "%s", e.msg);
		return -1;
	}
	if (json_array_size(in.records) == 0) {
		snprintf(err->field, sizeof err->field, "records");
		snprintf(err->detail, sizeof err->detail, "records must hold 1 to %d records.",
		         USAGE_REPORT_MAX_RECORDS);
		return -1;
	}
	json_array_foreach(in.records, i, rec) {
		struct usage_record r = { 0 };
		if (jsonx_unpack(rec, usage_report_record_fields, &r, NULL, &e) != 0) {
			snprintf(err->field, sizeof err->field, "records[%zu]%s%s", i, e.field[0] ? "." : "", e.field);
			snprintf(err->detail, sizeof err->detail, "Record %zu: %s", i, e.msg);
			return -1;
		}
		const char *bad = malformed(&r);
		if (bad) {
			snprintf(err->field, sizeof err->field, "records[%zu].%s", i, bad);
			snprintf(err->detail, sizeof err->detail, "Record %zu: %s is malformed (tenant: a tenant id; "
			         "period: YYYY-MM; windows: RFC 3339 times).", i, bad);
			return -1;
		}
		*events += r.events;
	}
	*records = in.records;
	return 0;
}
