/* The erasure report: the body a data plane POSTs to the control plane's
 * POST /v1/regions/{region}/erasures to say how far the erasure of one
 * deleted tenant's data in its home region has come:
 *   {"tenant_id": "<uuid>", "status": "pending"|"done",
 *    "events_deleted": N, "rows_deleted": N}
 * The figures are the region's running totals (never a delta), so a report
 * sent twice, or late, or by two instances, says nothing new: the control
 * plane keeps the largest figures, and "done" once it was said. "done"
 * means the region holds no row of the tenant in any table. Both ends use
 * this module, so they cannot disagree on a field or a bound. */
#ifndef CT_ERASURE_REPORT_H
#define CT_ERASURE_REPORT_H

#include <jansson.h>
#include <stdint.h>

#include "jsonx.h"

#define ERASURE_REPORT_MAX_COUNT INT64_C(1000000000000000)   /* 1e15 rows */

/* One report. The string is borrowed. */
struct erasure_report {
	const char *tenant_id;
	int done;                 /* status "done" (1) or "pending" (0) */
	int64_t events_deleted;   /* 0 to rows_deleted */
	int64_t rows_deleted;     /* every table, events included; 0 to ERASURE_REPORT_MAX_COUNT */
};

/* The body as JSON (caller json_decref()s); NULL when a field is out of
 * its bounds or memory ran out. */
json_t *erasure_report_build(const struct erasure_report *r);

/* Checks a body. Returns 0 with *r filled (its string borrowed from
 * `body`), or -1 with `err` naming the field and saying why. */
int erasure_report_parse(const json_t *body, struct erasure_report *r, struct jsonx_err *err)
	__attribute__((warn_unused_result));

#endif
