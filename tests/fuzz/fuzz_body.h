/* A request body as both services read it (common/http.c
 * http_req_json_object): jsonx_parse, then a JSON object. Checked against
 * jansson on its own: the depth bound must neither let a deeper document
 * through nor refuse one within it. */
#ifndef CT_FUZZ_BODY_H
#define CT_FUZZ_BODY_H

#include "fuzz.h"
#include "jsonx.h"

/* Returns the body as an object (caller json_decref()s), or NULL when the
 * service would answer 400. */
static inline json_t *fuzz_body(const uint8_t *data, size_t size)
{
	struct jsonx_err err;
	json_error_t je;
	json_t *v = jsonx_parse((const char *)data, size, 0, &err);
	json_t *plain = size ? json_loadb((const char *)data, size,
	                                  JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je)
	                     : NULL;
	int within = plain && fuzz_json_depth(plain) <= JSONX_MAX_DEPTH;

	CHECK((v != NULL) == within, "jsonx_parse %s a document jansson %s (depth %d)",
	      v ? "accepted" : "refused", plain ? "parses" : "refuses",
	      plain ? fuzz_json_depth(plain) : -1);
	if (v) {
		CHECK(json_equal(v, plain), "jsonx_parse and jansson disagree on the value");
	} else {
		/* The message may quote the input; problem_body() copes with text
		 * that is not UTF-8, so only its presence is checked. */
		CHECK(err.msg[0] != '\0', "refused without a message");
	}
	json_decref(plain);
	if (v && !json_is_object(v)) {
		json_decref(v);
		return NULL;
	}
	return v;
}

#endif
