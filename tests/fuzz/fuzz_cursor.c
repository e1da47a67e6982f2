/* Fuzz target: pagination cursors and the limit parameter
 * (common/cursor.c), as the list routes read the `cursor` and `limit`
 * query parameters.
 *
 * Invariants: a text that decodes is exactly the text cursor_encode writes
 * for the decoded value (so it decodes again to the same value); a cursor
 * built from the input (timestamp >= 0, id of 1 to 64 of [A-Za-z0-9_-])
 * encodes within CURSOR_TEXT_MAX and decodes back to itself; and
 * cursor_parse_limit accepts exactly 1 to 9 digits of a value in [1, max]. */
#include "cursor.h"
#include "fuzz.h"

static void check_cursor(const struct cursor *c)
{
	size_t n = strlen(c->id);
	CHECK(c->ts_us >= 0, "decoded a negative timestamp %lld", (long long)c->ts_us);
	CHECK(n >= 1 && n <= CURSOR_ID_MAX, "decoded an id of %zu bytes", n);
	CHECK(strspn(c->id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n,
	      "decoded id '%s'", c->id);
}

/* limit: digits only (no sign, no space), 1 to 9 of them, in [1, max]. */
static void check_limit(const char *text, int max)
{
	int out = -1, ref = -1;
	long v = 0;
	size_t n = strlen(text);
	if (n >= 1 && n <= 9 && strspn(text, "0123456789") == n) {
		for (size_t i = 0; i < n; i++)
			v = v * 10 + (text[i] - '0');
		if (v >= 1 && v <= max)
			ref = 0;
	}
	int rc = cursor_parse_limit(text, 50, max, &out);
	CHECK(rc == ref, "cursor_parse_limit('%s', max %d) is %d, expected %d", text, max, rc, ref);
	if (rc == 0)
		CHECK(out == v, "limit '%s' read as %d", text, out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char alphabet[] =
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-";
	char *s = fuzz_cstr(data, size);
	char text[CURSOR_TEXT_MAX];
	struct cursor c, back;

	/* The text as a client sends it back. */
	if (cursor_decode(s, &c) == 0) {
		check_cursor(&c);
		cursor_encode(&c, text);
		CHECK(!strcmp(text, s), "'%s' decodes, but the same cursor encodes as '%s'", s, text);
		CHECK(cursor_decode(text, &back) == 0 && back.ts_us == c.ts_us && !strcmp(back.id, c.id),
		      "'%s' does not decode to what it encodes", text);
	}

	/* The limit parameter, absent or given. */
	int out = 0;
	CHECK(cursor_parse_limit(NULL, 50, 100, &out) == 0 && out == 50, "no limit is not the default");
	check_limit(s, 100);
	check_limit(s, 1000);

	/* A cursor the server makes from a row: encode, then decode. */
	if (size >= 9) {
		memset(&c, 0, sizeof c);
		memcpy(&c.ts_us, data, sizeof c.ts_us);
		c.ts_us &= INT64_MAX;
		size_t n = size - 8 > CURSOR_ID_MAX ? CURSOR_ID_MAX : size - 8;
		for (size_t i = 0; i < n; i++)
			c.id[i] = alphabet[data[8 + i] % 64];
		c.id[n] = '\0';
		memset(text, 0x5a, sizeof text);
		cursor_encode(&c, text);
		CHECK(memchr(text, '\0', sizeof text), "encoded cursor overflows CURSOR_TEXT_MAX");
		CHECK(cursor_decode(text, &back) == 0, "cursor (%lld, %s) encodes as '%s', which does not decode",
		      (long long)c.ts_us, c.id, text);
		CHECK(back.ts_us == c.ts_us && !strcmp(back.id, c.id),
		      "cursor (%lld, %s) decodes back as (%lld, %s)", (long long)c.ts_us, c.id,
		      (long long)back.ts_us, back.id);
	}
	free(s);
	return 0;
}
