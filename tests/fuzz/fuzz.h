/* Shared by the libFuzzer harnesses of tests/fuzz/: the entry points,
 * invariant checks that abort (so that libFuzzer records the input as a
 * crash and keeps it as a reproducer), and small helpers. */
#ifndef CT_FUZZ_H
#define CT_FUZZ_H

#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static inline void fuzz_fail(const char *file, int line, const char *what, const char *fmt, ...)
	__attribute__((noreturn, format(printf, 4, 5)));

static inline void fuzz_fail(const char *file, int line, const char *what, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "\n==fuzz== invariant violated at %s:%d: %s\n==fuzz== ", file, line, what);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

/* CHECK(condition, printf-format, ...): aborts with the message when the
 * condition is false. */
#define CHECK(cond, ...)                                             \
	do {                                                             \
		if (!(cond))                                                 \
			fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);       \
	} while (0)

/* The input as a NUL-terminated string (malloc'd; an embedded NUL ends
 * it early, as it would end a C string built from a request). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* 1 when `s` can be a JSON string (valid UTF-8): what a problem document
 * needs of every text it carries. */
static inline int fuzz_utf8(const char *s)
{
	json_t *j = json_string(s);
	json_decref(j);
	return j != NULL;
}

/* Nesting of arrays and objects: a scalar is 0, [] is 1. */
static inline int fuzz_json_depth(const json_t *v)
{
	int deepest = 0, d;
	const char *k;
	json_t *e;
	size_t i;
	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, e)
			if ((d = fuzz_json_depth(e)) > deepest)
				deepest = d;
		return deepest + 1;
	}
	if (json_is_array(v)) {
		json_array_foreach(v, i, e)
			if ((d = fuzz_json_depth(e)) > deepest)
				deepest = d;
		return deepest + 1;
	}
	return 0;
}

#endif
