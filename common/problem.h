/* Problem responses (RFC 9457, application/problem+json).
 *
 * Every error a client can act on has a stable code from this enum; the
 * code, its HTTP status and its title are fixed here, the detail sentence is
 * written where the error is found. */
#ifndef CT_PROBLEM_H
#define CT_PROBLEM_H

#include <jansson.h>

enum problem_code {
	PROB_BAD_REQUEST,
	PROB_INVALID_JSON,
	PROB_VALIDATION,
	PROB_UNAUTHORIZED,
	PROB_FORBIDDEN,
	PROB_NOT_FOUND,
	PROB_METHOD_NOT_ALLOWED,
	PROB_CONFLICT,
	PROB_BODY_TOO_LARGE,
	PROB_UNSUPPORTED_MEDIA_TYPE,
	PROB_MISDIRECTED,
	PROB_UNPROCESSABLE,
	PROB_RATE_LIMITED,
	PROB_QUOTA_EXCEEDED,
	PROB_INTERNAL,
	PROB_UNAVAILABLE,
	PROB_LOGIN_BUSY,
	PROB_TENANT_SUSPENDED,
	PROB_INSUFFICIENT_SCOPE,
	PROB_WRONG_CELL,
	PROB_TENANT_MOVING,
	PROB_DESTINATION_NOT_ALLOWED,
	PROB__COUNT
};

struct problem_info {
	const char *code;   /* stable, snake_case: clients switch on it */
	unsigned status;
	const char *title;
};

const struct problem_info *problem_info(enum problem_code code);

/* Builds the problem document. `detail` and `req_id` may be NULL.
 * Returns a new reference; the caller json_decref()s it. */
json_t *problem_body(enum problem_code code, const char *detail, const char *req_id);

#define PROBLEM_TYPE_PREFIX "urn:celltrail:problem:"

#endif
