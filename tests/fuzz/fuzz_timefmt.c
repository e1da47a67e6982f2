/* Fuzz target: RFC 3339 times (common/timefmt.c), as occurred_at and the
 * since/until parameters of the data plane are read.
 *
 * Invariants: a time that parses is at or after the epoch, is written as
 * "YYYY-MM-DDTHH:MM:SS.ffffffZ", and that text parses back to the same
 * microsecond; its month holds it and is named by the text's first seven
 * characters; it is a valid timestamp for common/names.c as well
 * (names_check.c compares the two). Every microsecond from the epoch to
 * the end of 9999 is written as a text that parses back to itself. */
#include "fuzz.h"
#include "names_check.h"
#include "timefmt.h"

#define LAST_US INT64_C(253402300799999999) /* 9999-12-31T23:59:59.999999Z */

static void round_trip(int64_t us, const char *what)
{
	char out[TIMEFMT_LEN], period[8];
	int64_t back = -1, start, next;
	memset(out, 0x5a, sizeof out);
	timefmt_format(us, out);
	CHECK(memchr(out, '\0', sizeof out) && strlen(out) == TIMEFMT_LEN - 1 && out[10] == 'T' &&
	      out[19] == '.' && out[26] == 'Z', "%s: %lld is written as '%.28s'", what, (long long)us, out);
	CHECK(timefmt_parse(out, &back) == 0 && back == us,
	      "%s: %lld is written as '%s', which parses as %lld", what, (long long)us, out,
	      (long long)back);
	timefmt_month(us, &start, &next, period);
	CHECK(start <= us && us < next, "%s: month [%lld, %lld) does not hold %lld", what,
	      (long long)start, (long long)next, (long long)us);
	CHECK(!strncmp(period, out, 7) && strlen(period) == 7, "%s: month '%s' of '%s'", what, period, out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);
	int64_t us;
	if (timefmt_parse(s, &us) == 0) {
		CHECK(us >= 0, "'%s' parses as %lld, before the epoch", s, (long long)us);
		round_trip(us, s);
	}
	nc_timestamp(s);
	free(s);

	if (size >= 8) {
		uint64_t v;
		memcpy(&v, data, sizeof v);
		round_trip((int64_t)(v % (uint64_t)(LAST_US + 1)), "from bytes");
	}
	return 0;
}
