/* Where JSON values end in a text, found without building them: for a
 * large document of which only a few top-level members matter (a move's
 * page: its rows pass through untouched). Nothing here judges whether a
 * value is valid JSON, only where it ends; the reader that needs its
 * contents parses that span. */
#ifndef CELLTRAIL_JSCAN_H
#define CELLTRAIL_JSCAN_H

#include <stddef.h>

/* The first index at or after i in s[0..n) that is not JSON whitespace. */
size_t jscan_ws(const char *s, size_t i, size_t n);
/* The end (one past the closing quote) of the string at s[i] == '"', or 0
 * when it does not end before n. */
size_t jscan_string_end(const char *s, size_t i, size_t n);
/* The end of the value starting at s[i] (a string skipped whole, brackets
 * counted, a literal or number up to the next separator), or 0 when it
 * does not end before n. No value starts at a separator, a closing
 * bracket or whitespace: the answer is then i itself, which a caller
 * treats as an empty, invalid value. */
size_t jscan_value_end(const char *s, size_t i, size_t n);

#endif
