/* The erasure report's fields and bounds, built and checked (see erasure_report.h). */
#include "erasure_report.h"

#include <stdio.h>
#include <string.h>

#include "names.h"

struct body {
	const char *tenant_id, *status;
	int64_t events_deleted, rows_deleted;
};

#define F(m) offsetof(struct body, m)
static const struct jsonx_field fields[] = {
	{ "tenant_id", JX_STRING, 1, 0, 0, 36, F(tenant_id) },
	{ "status", JX_STRING, 1, 0, 0, 7, F(status) },
	{ "events_deleted", JX_INT, 1, 0, 0, ERASURE_REPORT_MAX_COUNT, F(events_deleted) },
	{ "rows_deleted", JX_INT, 1, 0, 0, ERASURE_REPORT_MAX_COUNT, F(rows_deleted) },
	JSONX_END
};
#undef F

json_t *erasure_report_build(const struct erasure_report *r)
{
	if (!r->tenant_id || !name_valid_uuid(r->tenant_id) || r->events_deleted < 0 ||
	    r->rows_deleted < r->events_deleted || r->rows_deleted > ERASURE_REPORT_MAX_COUNT)
		return NULL;
	return json_pack("{ss ss sI sI}", "tenant_id", r->tenant_id, "status", r->done ? "done" : "pending",
	                 "events_deleted", (json_int_t)r->events_deleted, "rows_deleted",
	                 (json_int_t)r->rows_deleted);
}

static int fail(struct jsonx_err *err, const char *field, const char *msg)
{
	snprintf(err->field, sizeof err->field, "%s", field);
	snprintf(err->msg, sizeof err->msg, "%s", msg);
	return -1;
}

int erasure_report_parse(const json_t *body, struct erasure_report *r, struct jsonx_err *err)
{
	struct body in = { 0 };
	memset(r, 0, sizeof *r);
	if (jsonx_unpack(body, fields, &in, NULL, err) != 0)
		return -1;
	if (!name_valid_uuid(in.tenant_id))
		return fail(err, "tenant_id", "tenant_id must be a tenant's id (a UUID).");
	if (strcmp(in.status, "pending") && strcmp(in.status, "done"))
		return fail(err, "status", "status must be pending or done.");
	if (in.events_deleted > in.rows_deleted)
		return fail(err, "events_deleted", "events_deleted counts some of rows_deleted: it cannot be larger.");
	r->tenant_id = in.tenant_id;
	r->done = !strcmp(in.status, "done");
	r->events_deleted = in.events_deleted;
	r->rows_deleted = in.rows_deleted;
	return 0;
}
