/* The text bin/celltrail shows people: API objects as aligned tables
 * (lists) or as one aligned "member  value" line each (one object).
 *
 * Values come from the API, and some from tenants (a name, a stream's
 * last error): before they reach a terminal, control characters (C0, DEL
 * and C1, escape sequences included) become '?'. Widths count characters
 * (UTF-8 code points), not bytes; a list's cell wider than its column's
 * limit is cut, ending with "...". */
#ifndef CLI_TABLE_H
#define CLI_TABLE_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#define TABLE_MAX_COLS 16

struct table;

/* A table of `ncols` columns (1..TABLE_MAX_COLS) with these headers
 * (copied). Returns NULL when out of memory or `ncols` is out of range.
 * Freed with table_free(). */
struct table *table_new(size_t ncols, const char *const headers[]);

/* Appends a row of `ncols` cells (copied, sanitized). Returns 0 or -1 (out
 * of memory: the table is then marked failed and prints nothing). */
int table_add_row(struct table *t, const char *const cells[]) __attribute__((warn_unused_result));

/* Prints the header and the rows, columns two spaces apart, each at most
 * `max_width` characters (0: no limit), the last column not padded.
 * Returns 0, or -1 when the table failed. */
int table_print(const struct table *t, FILE *out, size_t max_width) __attribute__((warn_unused_result));

size_t table_rows(const struct table *t);

/* Accepts NULL. */
void table_free(struct table *t);

/* The text of a JSON value for people: null and absent "-", strings
 * sanitized, integers in decimal, reals as %g, booleans, an array of
 * scalars joined with ","; anything else compact JSON. Returns a malloc'd
 * string (caller frees) or NULL when out of memory. */
char *table_value_text(const json_t *v);

/* The text of a column of `obj` by `spec`: a member name; "a|b": the
 * first of them that is present and not null; "a/b": those present and
 * not null, joined with "/"; "-" when none is. Returns a malloc'd string
 * (caller frees) or NULL when out of memory. */
char *table_field(const json_t *obj, const char *spec);

/* Prints `obj`'s members in order, one per line, names padded to one
 * width, values as table_value_text(). Returns 0 or -1 (out of memory). */
int table_print_object(FILE *out, const json_t *obj) __attribute__((warn_unused_result));

/* Characters (UTF-8 code points) of `s`. */
size_t table_text_width(const char *s);

/* Copies `s` with control characters replaced by '?' (see above); the
 * result is malloc'd (caller frees), NULL when out of memory. */
char *table_sanitize(const char *s);

#endif
