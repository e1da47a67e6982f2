/* Fuzz target: the JSON span scanner (data-plane/jscan.c) that finds the
 * top-level members of a move's page without parsing its rows.
 *
 * Invariants, on the input as an exactly sized buffer (so that ASan sees
 * any read past it): every end returned is 0 or in [i, n] (i: no value
 * starts there), a string's end is past i and just after a quote; jscan_ws never
 * moves backwards nor past n; and whenever jansson accepts the whole input
 * as one JSON value, the scanner's span of it, plus trailing whitespace,
 * is the whole input (a valid page is never cut short or run past). */
#include "fuzz.h"
#include "../../data-plane/jscan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size ? size : 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	size_t n = size;
	for (size_t i = 0; i < n; i++) {
		size_t w = jscan_ws(s, i, n);
		CHECK(w >= i && w <= n, "jscan_ws(%zu) is %zu of %zu", i, w, n);
		if (s[i] == '"') {
			size_t e = jscan_string_end(s, i, n);
			CHECK(e == 0 || (e > i && e <= n && s[e - 1] == '"'), "string at %zu ends at %zu of %zu", i, e, n);
		}
		size_t v = jscan_value_end(s, i, n);
		CHECK(v == 0 || (v >= i && v <= n), "value at %zu ends at %zu of %zu", i, v, n);
	}
	json_error_t err;
	json_t *j = json_loadb(s, n, JSON_DECODE_ANY, &err);
	if (j) {
		size_t i = jscan_ws(s, 0, n);
		size_t v = i < n ? jscan_value_end(s, i, n) : 0;
		CHECK(v > i, "jansson reads a value the scanner does not end (at %zu of %zu)", i, n);
		CHECK(jscan_ws(s, v, n) == n, "the scanner ends the value at %zu, jansson reads %zu bytes", v, n);
		json_decref(j);
	}
	free(s);
	return 0;
}
