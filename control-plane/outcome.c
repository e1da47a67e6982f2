/* A transaction body's answer (outcome.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "outcome.h"

enum db_status cp_fail(struct cp_outcome *out, enum problem_code code, const char *fmt, ...)
{
	va_list ap;
	out->problem = 1;
	out->prob = code;
	va_start(ap, fmt);
	vsnprintf(out->detail, sizeof out->detail, fmt, ap);
	va_end(ap);
	return DB_ROLLBACK;
}

enum db_status cp_done(struct cp_outcome *out, unsigned status, json_t *body)
{
	out->status = status;
	json_decref(out->body);
	out->body = body;
	return DB_OK;
}

void cp_outcome_reset(struct cp_outcome *out)
{
	json_decref(out->body);
	json_decref(out->prob_extra);
	memset(out, 0, sizeof *out);
}
