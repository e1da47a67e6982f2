/* RFC 3339 timestamps as the APIs accept and write them: parsed strictly
 * into microseconds since the Unix epoch (UTC), written in UTC with six
 * fractional digits so that they sort as text. */
#ifndef CT_TIMEFMT_H
#define CT_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

#define TIMEFMT_LEN 28 /* "YYYY-MM-DDTHH:MM:SS.ffffffZ" and NUL */

/* Parses "YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|+hh:mm|-hh:mm)" ('t' and 'z'
 * accepted too), years 1970 to 9999; digits past the sixth fractional one
 * are dropped. Returns 0, or -1 when the text is not such a time (a
 * leap second, day 31 of a 30-day month and the like included). */
int timefmt_parse(const char *text, int64_t *us) __attribute__((warn_unused_result));

/* Writes `us` as "YYYY-MM-DDTHH:MM:SS.ffffffZ". */
void timefmt_format(int64_t us, char out[TIMEFMT_LEN]);

/* Microseconds since the epoch, from the real-time clock. */
int64_t timefmt_now_us(void);

/* The first microsecond of the UTC month holding `us`, and of the month
 * after; `period` gets "YYYY-MM" (may be NULL). */
void timefmt_month(int64_t us, int64_t *start, int64_t *next, char period[8]);

#endif
