/* Validation of the names and identifiers that appear in paths and bodies
 * of both services. Pure functions: no allocation, no I/O. */
#ifndef CT_NAMES_H
#define CT_NAMES_H

#include <stddef.h>

/* A region name: [a-z][a-z0-9-]*, at most 32 bytes. */
int name_valid_region(const char *s);
/* A cell: [a-z][a-z0-9-]{1,62}, e.g. "us-east-1" or "us-west-2-acme". */
int name_valid_cell(const char *s);
/* A tenant slug: [a-z0-9][a-z0-9-]*[a-z0-9], 3 to 63 bytes. */
int name_valid_slug(const char *s);
/* A UUID in its 36-byte form (8-4-4-4-12 hex digits, either case). */
int name_valid_uuid(const char *s);
/* Normalizes an email (trims spaces, lowercases) into `out` and validates
 * it: one '@', a non-empty local part, a domain with a dot, no spaces or
 * control characters, ASCII only (lowercasing non-ASCII letters is
 * locale-dependent, so such addresses are refused), at most 254 bytes.
 * Returns 0 or -1. */
int name_normalize_email(const char *in, char *out, size_t outlen);
/* An RFC 3339 date-time with seconds and a zone ('Z' or +hh:mm), on a
 * day that exists (leap years included). */
int name_valid_timestamp(const char *s);
/* An http(s) URL without spaces, userinfo, query or fragment, at most 200 bytes. */
int name_valid_endpoint(const char *s);

#endif
