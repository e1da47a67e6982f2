/* JSON helpers: depth-bounded parsing and table-driven unpacking. */
#include "jsonx.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Returns the deepest nesting of arrays/objects in `buf`, counting only
 * brackets outside strings; stops early once `limit` is exceeded. */
static int nesting_depth(const char *buf, size_t len, int limit)
{
	int depth = 0, deepest = 0, in_str = 0;
	for (size_t i = 0; i < len; i++) {
		char c = buf[i];
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = 0;
			continue;
		}
		if (c == '"')
			in_str = 1;
		else if (c == '[' || c == '{') {
			if (++depth > deepest) {
				deepest = depth;
				if (deepest > limit)
					return deepest;
			}
		} else if (c == ']' || c == '}')
			depth--;
	}
	return deepest;
}

json_t *jsonx_parse(const char *buf, size_t len, int max_depth, struct jsonx_err *err)
{
	json_error_t jerr;
	json_t *v;

	err->field[0] = '\0';
	if (max_depth <= 0)
		max_depth = JSONX_MAX_DEPTH;
	if (len == 0) {
		snprintf(err->msg, sizeof err->msg, "The request body is empty; a JSON document is expected.");
		return NULL;
	}
	if (nesting_depth(buf, len, max_depth) > max_depth) {
		snprintf(err->msg, sizeof err->msg, "The JSON document is nested deeper than %d levels.",
		         max_depth);
		return NULL;
	}
	v = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!v) {
		snprintf(err->msg, sizeof err->msg, "Invalid JSON at line %d, column %d: %s.", jerr.line,
		         jerr.column, jerr.text);
		return NULL;
	}
	return v;
}

static const char *type_word(enum jsonx_type t)
{
	switch (t) {
	case JX_STRING: return "a string";
	case JX_INT: return "an integer";
	case JX_BOOL: return "a boolean";
	case JX_OBJECT: return "an object";
	case JX_ARRAY: return "an array";
	case JX_ANY: return "a value";
	}
	return "?";
}

/* Records `field` as the culprit and formats the sentence; returns -1. */
static int __attribute__((format(printf, 3, 4)))
fail(struct jsonx_err *err, const char *field, const char *fmt, ...)
{
	va_list ap;
	snprintf(err->field, sizeof err->field, "%s", field);
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	return -1;
}

int jsonx_unpack(const json_t *obj, const struct jsonx_field *fields, void *dst,
                 uint64_t *present, struct jsonx_err *err)
{
	const char *key;
	json_t *val;
	size_t nfields = 0;

	err->field[0] = '\0';
	err->msg[0] = '\0';
	if (present)
		*present = 0;
	if (!json_is_object(obj)) {
		snprintf(err->msg, sizeof err->msg, "A JSON object is expected.");
		return -1;
	}
	while (fields[nfields].name)
		nfields++;

	/* Unknown members first: a typo must not pass silently. */
	json_object_foreach((json_t *)obj, key, val) {
		size_t i;
		for (i = 0; i < nfields; i++)
			if (strcmp(fields[i].name, key) == 0)
				break;
		if (i == nfields) {
			/* Quote at most 90 bytes of the name, cut on a UTF-8 boundary so
			 * that the message stays valid JSON text. */
			char shown[100];
			size_t n = strlen(key);
			if (n > 90) {
				n = 90;
				while (n > 0 && ((unsigned char)key[n] & 0xC0) == 0x80)
					n--;
			}
			memcpy(shown, key, n);
			shown[n] = '\0';
			return fail(err, shown, "Unknown field '%s'.", shown);
		}
	}

	for (size_t i = 0; i < nfields; i++) {
		const struct jsonx_field *f = &fields[i];
		void *out = (char *)dst + f->offset;

		val = json_object_get(obj, f->name);
		if (!val || (json_is_null(val) && f->nullable)) {
			if (f->required)
				return fail(err, f->name, "Field '%s' is required.", f->name);
			continue;
		}
		switch (f->type) {
		case JX_STRING: {
			if (!json_is_string(val))
				break;
			size_t n = json_string_length(val);
			if (f->max && (int64_t)n > f->max)
				return fail(err, f->name, "Field '%s' is longer than %lld bytes.", f->name,
				            (long long)f->max);
			if (strlen(json_string_value(val)) != n)
				return fail(err, f->name, "Field '%s' contains a NUL character.", f->name);
			*(const char **)out = json_string_value(val);
			goto ok;
		}
		case JX_INT:
			if (!json_is_integer(val))
				break;
			if (json_integer_value(val) < f->min || json_integer_value(val) > f->max)
				return fail(err, f->name, "Field '%s' must be between %lld and %lld.",
				            f->name, (long long)f->min, (long long)f->max);
			*(int64_t *)out = json_integer_value(val);
			goto ok;
		case JX_BOOL:
			if (!json_is_boolean(val))
				break;
			*(int *)out = json_is_true(val);
			goto ok;
		case JX_OBJECT:
			if (!json_is_object(val))
				break;
			*(json_t **)out = val;
			goto ok;
		case JX_ARRAY:
			if (!json_is_array(val))
				break;
			if (f->max && (int64_t)json_array_size(val) > f->max)
				return fail(err, f->name, "Field '%s' has more than %lld items.", f->name,
				            (long long)f->max);
			*(json_t **)out = val;
			goto ok;
		case JX_ANY:
			*(json_t **)out = val;
			goto ok;
		}
		return fail(err, f->name, "Field '%s' must be %s.", f->name, type_word(f->type));
	ok:
		if (present && i < 64)
			*present |= UINT64_C(1) << i;
	}
	return 0;
}

void jsonx_rename(json_t *obj, const char *from, const char *to)
{
	size_t i;
	json_t *v;

	if (json_is_array(obj)) {
		json_array_foreach(obj, i, v)
			jsonx_rename(v, from, to);
		return;
	}
	v = json_object_get(obj, from);
	if (!v)
		return;
	json_object_set(obj, to, v);
	json_object_del(obj, from);
}
