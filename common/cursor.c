/* Cursor text: base64url of "c1.<ts_us>.<id>". */
#include "cursor.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secret.h"

static int valid_id(const char *s, size_t n)
{
	if (n == 0 || n > CURSOR_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return 0;
	}
	return 1;
}

void cursor_encode(const struct cursor *c, char out[CURSOR_TEXT_MAX])
{
	char plain[96];
	int n = snprintf(plain, sizeof plain, "c1.%lld.%s", (long long)c->ts_us, c->id);
	if (n < 0 || (size_t)n >= sizeof plain)
		n = 0;
	secret_b64url(plain, (size_t)n, out);
}

int cursor_decode(const char *text, struct cursor *c)
{
	char plain[97];
	size_t len = strlen(text);
	if (len == 0 || len >= CURSOR_TEXT_MAX)
		return -1;
	long n = secret_unb64url(text, len, plain, sizeof plain - 1);
	if (n < 5)
		return -1;
	plain[n] = '\0';
	if (memchr(plain, '\0', (size_t)n) || strncmp(plain, "c1.", 3) != 0)
		return -1;
	/* Only the form cursor_encode writes: digits, no sign, no leading zero. */
	const char *num = plain + 3;
	size_t nd = strspn(num, "0123456789");
	if (nd == 0 || nd > 19 || num[nd] != '.' || (num[0] == '0' && nd > 1))
		return -1;
	char *end;
	errno = 0;
	long long ts = strtoll(num, &end, 10);
	if (errno || end != num + nd)
		return -1;
	const char *id = end + 1;
	if (!valid_id(id, strlen(id)))
		return -1;
	c->ts_us = ts;
	snprintf(c->id, sizeof c->id, "%s", id);
	return 0;
}

int cursor_parse_limit(const char *text, int def, int max, int *out)
{
	if (!text) {
		*out = def;
		return 0;
	}
	if (text[0] < '0' || text[0] > '9' || strlen(text) > 9)
		return -1; /* strtol would skip whitespace and take signs */
	char *end;
	errno = 0;
	long v = strtol(text, &end, 10);
	if (errno || *end || v < 1 || v > max)
		return -1;
	*out = (int)v;
	return 0;
}
