/* The usage report: the body a data plane POSTs to the control plane's
 * /v1/usage, {"records": [...]}, one record per (tenant, month) with the
 * events counted since the last batch and the window they were counted in.
 * Both ends use this module: the data plane builds batches with
 * usage_report_add(), the control plane checks them with
 * usage_report_parse(), so the two cannot disagree on a field or a limit.
 *
 * What only the control plane can check (a window inside its period, the
 * tenant's home region, the month's total) is checked there, in SQL. */
#ifndef CT_USAGE_REPORT_H
#define CT_USAGE_REPORT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "jsonx.h"

#define USAGE_REPORT_MAX_RECORDS 1000                  /* records in one batch */
#define USAGE_REPORT_MAX_EVENTS INT64_C(10000000000)   /* events in one record: 1e10 */

/* One record. The strings are borrowed. */
struct usage_record {
	const char *tenant;         /* the tenant's id (a UUID) */
	const char *period;         /* the month the events count in: YYYY-MM (UTC) */
	int64_t events;             /* 0 to USAGE_REPORT_MAX_EVENTS */
	const char *window_start;   /* RFC 3339: when the first of them was stored... */
	const char *window_end;     /* ...and the last */
};

/* The body's field tables (jsonx.h): usage_report_fields fills a
 * struct usage_report_body, usage_report_record_fields each record's
 * struct usage_record. usage_report_parse() applies them; they are public
 * for the fuzz harness, which checks them against jsonx's rules. */
struct usage_report_body {
	json_t *records;
};
extern const struct jsonx_field usage_report_fields[];
extern const struct jsonx_field usage_report_record_fields[];

/* Is `s` a period, "YYYY-MM" with a year from 0001 and a month from 01 to 12? */
int usage_report_period_valid(const char *s);

/* A new, empty batch body; NULL when out of memory. Caller json_decref()s. */
json_t *usage_report_new(void);
/* Appends `r` to the batch. Returns 0, or -1 (the batch unchanged) when the
 * batch is full, the record would not pass usage_report_parse(), or memory
 * ran out. */
int usage_report_add(json_t *report, const struct usage_record *r) __attribute__((warn_unused_result));

/* Why a batch was refused: the field at fault as a JSON path
 * ("records[3].period"; "" for the body as a whole) and a sentence for
 * the client. */
struct usage_report_err {
	char field[160];
	char detail[400];
};

/* Checks a batch body. Returns 0 with *records (borrowed from `body`: 1 to
 * USAGE_REPORT_MAX_RECORDS of them) and *events (their sum), or -1 with
 * `err` filled. Every refusal is the client's mistake (a 422). */
int usage_report_parse(const json_t *body, json_t **records, int64_t *events,
                       struct usage_report_err *err) __attribute__((warn_unused_result));

#endif
