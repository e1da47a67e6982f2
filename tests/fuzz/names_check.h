/* Checked calls of common/names.c for the fuzz targets: each returns the
 * library's verdict after comparing it with a reference written from the
 * grammar in names.h, and checking the properties of what it accepts;
 * any disagreement aborts. */
#ifndef CT_FUZZ_NAMES_CHECK_H
#define CT_FUZZ_NAMES_CHECK_H

#include <stddef.h>

int nc_region(const char *s);
int nc_slug(const char *s);
int nc_uuid(const char *s);
/* name_normalize_email into a 256-byte buffer; `out` (may be NULL) gets
 * the normalized address. Returns 0 or -1, as the library. */
int nc_email(const char *s, char out[256]);
int nc_timestamp(const char *s);
int nc_endpoint(const char *s);

#endif
