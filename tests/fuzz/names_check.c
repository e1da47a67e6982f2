/* References for common/names.c, written from the grammar its header
 * documents, and the properties of what it accepts. */
#include "names_check.h"

#include <string.h>

#include "fuzz.h"
#include "names.h"
#include "timefmt.h"

static int lower(char c) { return c >= 'a' && c <= 'z'; }
static int digit(char c) { return c >= '0' && c <= '9'; }
static int hex(char c) { return digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

/* [a-z][a-z0-9-]*, at most 32 bytes */
int nc_region(const char *s)
{
	size_t n = strlen(s);
	int ref = n >= 1 && n <= 32 && lower(s[0]);
	for (size_t i = 1; ref && i < n; i++)
		ref = lower(s[i]) || digit(s[i]) || s[i] == '-';
	int got = name_valid_region(s);
	CHECK(got == ref, "name_valid_region('%s') is %d, the grammar says %d", s, got, ref);
	return got;
}

/* [a-z0-9][a-z0-9-]*[a-z0-9], 3 to 63 bytes */
int nc_slug(const char *s)
{
	size_t n = strlen(s);
	int ref = n >= 3 && n <= 63;
	for (size_t i = 0; ref && i < n; i++)
		ref = lower(s[i]) || digit(s[i]) || (s[i] == '-' && i > 0 && i < n - 1);
	int got = name_valid_slug(s);
	CHECK(got == ref, "name_valid_slug('%s') is %d, the grammar says %d", s, got, ref);
	return got;
}

/* 8-4-4-4-12 hex digits, either case */
int nc_uuid(const char *s)
{
	static const int groups[] = { 8, 4, 4, 4, 12 };
	const char *p = s;
	int ref = 1;
	for (int g = 0; ref && g < 5; g++) {
		for (int i = 0; ref && i < groups[g]; i++, p++)
			ref = hex(*p);
		if (ref && g < 4)
			ref = *p++ == '-';
	}
	ref = ref && *p == '\0';
	int got = name_valid_uuid(s);
	CHECK(got == ref, "name_valid_uuid('%s') is %d, the grammar says %d", s, got, ref);
	return got;
}

/* The address rules of names.h, on the text with its spaces trimmed. */
static int ref_email(const char *s, size_t n)
{
	size_t at = 0, ats = 0;
	if (n < 3 || n > 254)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= ' ' || c >= 0x7f || strchr("\"(),:;<>[]\\", c))
			return 0;
		if (c == '@')
			at = i, ats++;
	}
	if (ats != 1 || at == 0 || at > 64)
		return 0;
	const char *d = s + at + 1, *end = s + n;
	size_t dn = (size_t)(end - d);
	const char *dot = NULL;
	for (const char *p = d; p < end; p++)
		if (*p == '.')
			dot = p;
	if (!dot || d[0] == '.' || dot == end - 1)
		return 0;
	for (size_t i = 0; i + 1 < dn; i++)
		if (d[i] == '.' && d[i + 1] == '.')
			return 0;
	return 1;
}

int nc_email(const char *s, char out[256])
{
	char mine[256], again[256], upper[256 + 16];
	const char *t = s;
	while (*t == ' ' || *t == '\t')
		t++;
	size_t n = strlen(t);
	while (n && (t[n - 1] == ' ' || t[n - 1] == '\t'))
		n--;
	int ref = ref_email(t, n) ? 0 : -1;
	int got = name_normalize_email(s, mine, sizeof mine);
	CHECK(got == ref, "name_normalize_email('%s') is %d, the rules say %d", s, got, ref);
	if (got != 0)
		return got;
	/* The trimmed input, lowercased, and nothing else. */
	CHECK(strlen(mine) == n, "normalized '%s' to '%s'", s, mine);
	for (size_t i = 0; i < n; i++)
		CHECK(mine[i] == ((t[i] >= 'A' && t[i] <= 'Z') ? t[i] + 32 : t[i]),
		      "normalized '%s' to '%s'", s, mine);
	/* Normalizing is idempotent and blind to case. */
	CHECK(name_normalize_email(mine, again, sizeof again) == 0 && !strcmp(mine, again),
	      "'%s' does not normalize to itself", mine);
	if (strlen(s) < sizeof upper) {
		size_t i;
		for (i = 0; s[i]; i++)
			upper[i] = (s[i] >= 'a' && s[i] <= 'z') ? s[i] - 32 : s[i];
		upper[i] = '\0';
		CHECK(name_normalize_email(upper, again, sizeof again) == 0 && !strcmp(mine, again),
		      "'%s' and '%s' normalize differently", s, upper);
	}
	if (out)
		memcpy(out, mine, strlen(mine) + 1);
	return got;
}

static int two(const char *s) { return (s[0] - '0') * 10 + (s[1] - '0'); }

/* YYYY-MM-DD(T|t)HH:MM:SS[.f{1,9}](Z|z|+hh:mm|-hh:mm), a day that exists,
 * year from 0001, second 60 allowed (leap second); *year set when it has
 * the shape. */
static int ref_timestamp(const char *s, int *year, int *sec)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd";
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	for (int i = 0; i < 19; i++) {
		if (shape[i] == 'd' ? !digit(s[i]) : shape[i] == 'T' ? (s[i] != 'T' && s[i] != 't')
		                                                     : s[i] != shape[i])
			return 0;
	}
	int y = two(s) * 100 + two(s + 2), mo = two(s + 5), d = two(s + 8);
	*year = y;
	*sec = two(s + 17);
	if (y < 1 || mo < 1 || mo > 12 || d < 1 ||
	    d > mdays[mo - 1] + (mo == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
		return 0;
	if (two(s + 11) > 23 || two(s + 14) > 59 || two(s + 17) > 60)
		return 0;
	const char *p = s + 19;
	if (*p == '.') {
		int k = 0;
		while (digit(p[1 + k]))
			k++;
		if (k < 1 || k > 9)
			return 0;
		p += 1 + k;
	}
	if (*p == 'Z' || *p == 'z')
		return p[1] == '\0';
	return (*p == '+' || *p == '-') && digit(p[1]) && digit(p[2]) && p[3] == ':' && digit(p[4]) &&
	       digit(p[5]) && p[6] == '\0' && two(p + 1) <= 23 && two(p + 4) <= 59;
}

int nc_timestamp(const char *s)
{
	int year = 0, sec = 0;
	int ref = strlen(s) >= 19 && ref_timestamp(s, &year, &sec);
	int got = name_valid_timestamp(s);
	CHECK(got == ref, "name_valid_timestamp('%s') is %d, the grammar says %d", s, got, ref);
	/* timefmt_parse takes a narrower range of the same grammar: whatever it
	 * takes is a valid timestamp, and it takes every valid one away from the
	 * ends of its range and from leap seconds. */
	int64_t us;
	int tf = timefmt_parse(s, &us) == 0;
	CHECK(!tf || got, "timefmt_parse takes '%s' but name_valid_timestamp does not", s);
	CHECK(!got || tf || year < 1971 || year > 9998 || sec == 60,
	      "name_valid_timestamp takes '%s' but timefmt_parse does not", s);
	return got;
}

/* http:// or https://, a host not starting with '/' or ':', then only
 * [A-Za-z0-9.:/_~%-]: no spaces, userinfo, query or fragment; <= 200 bytes. */
int nc_endpoint(const char *s)
{
	const char *h = !strncmp(s, "https://", 8) ? s + 8 : !strncmp(s, "http://", 7) ? s + 7 : NULL;
	int ref = h && strlen(s) <= 200 && *h && *h != '/' && *h != ':';
	for (const char *p = h; ref && *p; p++)
		ref = lower(*p) || (*p >= 'A' && *p <= 'Z') || digit(*p) || strchr(".:/_~%-", *p);
	int got = name_valid_endpoint(s);
	CHECK(got == ref, "name_valid_endpoint('%s') is %d, the rules say %d", s, got, ref);
	if (got)
		CHECK(!strpbrk(s, " @?#"), "endpoint '%s' has a space, userinfo, query or fragment", s);
	return got;
}
