/* Opaque pagination cursors.
 *
 * A cursor names the last row of a page by its sort key: a timestamp in
 * microseconds and an id. Clients treat it as an opaque string; the server
 * decodes it strictly, so a malformed cursor is a 400, never a query. */
#ifndef CT_CURSOR_H
#define CT_CURSOR_H

#include <stddef.h>
#include <stdint.h>

#define CURSOR_ID_MAX 64
#define CURSOR_TEXT_MAX 128

struct cursor {
	int64_t ts_us;
	char id[CURSOR_ID_MAX + 1];   /* [A-Za-z0-9_-]+ */
};

/* Writes the cursor text (at most CURSOR_TEXT_MAX bytes with NUL). */
void cursor_encode(const struct cursor *c, char out[CURSOR_TEXT_MAX]);
/* Decodes `text`. Returns 0, or -1 when it is not a cursor we made. */
int cursor_decode(const char *text, struct cursor *c) __attribute__((warn_unused_result));

/* Parses a list's `limit` query parameter: NULL gives `def`; otherwise an
 * integer in [1, max]. Returns 0 or -1. */
int cursor_parse_limit(const char *text, int def, int max, int *out)
	__attribute__((warn_unused_result));

#endif
