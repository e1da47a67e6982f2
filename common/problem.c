/* The table of problem codes. */
#include "problem.h"

#include <stdio.h>

static const struct problem_info problems[PROB__COUNT] = {
	[PROB_BAD_REQUEST]            = { "bad_request", 400, "Bad request" },
	[PROB_INVALID_JSON]           = { "invalid_json", 400, "The body is not valid JSON" },
	[PROB_VALIDATION]             = { "validation_failed", 400, "A field is invalid" },
	[PROB_UNAUTHORIZED]           = { "unauthorized", 401, "Authentication required" },
	[PROB_FORBIDDEN]              = { "forbidden", 403, "Not allowed" },
	[PROB_NOT_FOUND]              = { "not_found", 404, "Not found" },
	[PROB_METHOD_NOT_ALLOWED]     = { "method_not_allowed", 405, "Method not allowed" },
	[PROB_CONFLICT]               = { "conflict", 409, "Conflict" },
	[PROB_BODY_TOO_LARGE]         = { "body_too_large", 413, "Request body too large" },
	[PROB_UNSUPPORTED_MEDIA_TYPE] = { "unsupported_media_type", 415, "Unsupported media type" },
	[PROB_MISDIRECTED]            = { "wrong_region", 421, "This region does not serve the tenant" },
	[PROB_UNPROCESSABLE]          = { "unprocessable", 422, "The request cannot be processed" },
	[PROB_RATE_LIMITED]           = { "rate_limited", 429, "Too many requests" },
	[PROB_QUOTA_EXCEEDED]         = { "quota_exceeded", 429, "Quota exceeded" },
	[PROB_INTERNAL]               = { "internal_error", 500, "Internal error" },
	[PROB_UNAVAILABLE]            = { "unavailable", 503, "Service unavailable" },
	[PROB_LOGIN_BUSY]             = { "login_busy", 503, "Too many logins in progress" },
	[PROB_TENANT_SUSPENDED]       = { "tenant_suspended", 403, "The tenant is suspended" },
	[PROB_INSUFFICIENT_SCOPE]     = { "insufficient_scope", 403, "The credential lacks the scope" },
	[PROB_WRONG_CELL]             = { "wrong_cell", 503, "The request reached another cell than its key's" },
	[PROB_TENANT_MOVING]          = { "tenant_moving", 503, "The tenant's writes are paused while it moves" },
	[PROB_DESTINATION_NOT_ALLOWED] = { "destination_not_allowed", 422,
	                                   "The destination is outside the tenant's region" },
};

const struct problem_info *problem_info(enum problem_code code)
{
	if ((unsigned)code >= PROB__COUNT)
		code = PROB_INTERNAL;
	return &problems[code];
}

json_t *problem_body(enum problem_code code, const char *detail, const char *req_id)
{
	const struct problem_info *p = problem_info(code);
	char type[96];
	json_t *o = json_object();

	snprintf(type, sizeof type, PROBLEM_TYPE_PREFIX "%s", p->code);
	json_object_set_new(o, "type", json_string(type));
	json_object_set_new(o, "title", json_string(p->title));
	json_object_set_new(o, "status", json_integer(p->status));
	json_object_set_new(o, "code", json_string(p->code));
	if (detail) {
		json_t *d = json_string(detail);
		json_object_set_new(o, "detail", d ? d : json_string("(detail not valid UTF-8)"));
	}
	if (req_id)
		json_object_set_new(o, "request_id", json_string(req_id));
	return o;
}
