/* JSON helpers over jansson: bounded parsing of request bodies and
 * unpacking of objects against a field table.
 *
 * Handlers describe the fields they accept once; jsonx_unpack() rejects
 * unknown fields, wrong types, missing required fields and over-long values,
 * naming the offending field so that the client can fix its request. */
#ifndef CT_JSONX_H
#define CT_JSONX_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define JSONX_MAX_DEPTH 32

struct jsonx_err {
	char field[128]; /* offending field, "" when the body as a whole is wrong */
	char msg[256];   /* a sentence for the client */
};

/* Parses `len` bytes as one JSON value: UTF-8 only, no duplicate keys,
 * nesting at most `max_depth` (0 means JSONX_MAX_DEPTH).
 * Returns a new reference (caller json_decref()s) or NULL with `err` set. */
json_t *jsonx_parse(const char *buf, size_t len, int max_depth, struct jsonx_err *err);

enum jsonx_type {
	JX_STRING, /* const char * borrowed from the object; max = max bytes    */
	JX_INT,    /* int64_t within [min, max]                                */
	JX_BOOL,   /* int                                                      */
	JX_OBJECT, /* json_t * borrowed                                        */
	JX_ARRAY,  /* json_t * borrowed; max = max items (0: unbounded)         */
	JX_ANY,    /* json_t * borrowed                                        */
};

struct jsonx_field {
	const char *name;
	enum jsonx_type type;
	int required;
	int nullable;        /* null is accepted and reported as absent */
	int64_t min, max;    /* JX_INT bounds; JX_STRING/JX_ARRAY: max length */
	size_t offset;       /* where in the destination struct */
};

#define JSONX_END { NULL, 0, 0, 0, 0, 0, 0 }

/* Unpacks `obj` into `dst` by `fields`. Members not in the table are an
 * error. Bit i of *present is set when field i was given (may be NULL; at
 * most 64 fields). Borrowed pointers stay valid while `obj` lives.
 * Returns 0, or -1 with `err` naming the field. */
int jsonx_unpack(const json_t *obj, const struct jsonx_field *fields, void *dst,
                 uint64_t *present, struct jsonx_err *err) __attribute__((warn_unused_result));

/* Renames member `from` of `obj` to `to` (keeping its value; a no-op when
 * `obj` is not an object or has no `from`), in each element when `obj` is
 * an array of objects. For a stored representation whose member name the
 * API spells differently. */
void jsonx_rename(json_t *obj, const char *from, const char *to);

#endif
