/* API key text: generation and parsing. */
#include "apikey.h"

#include <stdio.h>
#include <string.h>

#include "secret.h"

static int is_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

int apikey_parse(const char *text, struct apikey *k)
{
	const char *us = strchr(text, '_');
	if (!us)
		return -1;
	size_t rlen = (size_t)(us - text);
	if (rlen == 0 || rlen > APIKEY_REGION_MAX || text[0] < 'a' || text[0] > 'z')
		return -1;
	for (size_t i = 0; i < rlen; i++) {
		char c = text[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return -1;
	}
	const char *id = us + 1;
	if (strlen(id) != APIKEY_ID_HEX + 1 + APIKEY_SECRET_HEX || id[APIKEY_ID_HEX] != '_' ||
	    !is_hex(id, APIKEY_ID_HEX) || !is_hex(id + APIKEY_ID_HEX + 1, APIKEY_SECRET_HEX))
		return -1;
	memcpy(k->region, text, rlen);
	k->region[rlen] = '\0';
	memcpy(k->id, id, APIKEY_ID_HEX);
	k->id[APIKEY_ID_HEX] = '\0';
	secret_sha256(id + APIKEY_ID_HEX + 1, APIKEY_SECRET_HEX, k->secret_sha256);
	return 0;
}

int apikey_generate(const char *region, char text[APIKEY_TEXT_MAX], struct apikey *k)
{
	unsigned char id[APIKEY_ID_HEX / 2], secret[APIKEY_SECRET_HEX / 2];
	char sec[APIKEY_SECRET_HEX + 1];

	if (strlen(region) > APIKEY_REGION_MAX || secret_random(id, sizeof id) != 0 ||
	    secret_random(secret, sizeof secret) != 0)
		return -1;
	snprintf(k->region, sizeof k->region, "%s", region);
	secret_hex(id, sizeof id, k->id);
	secret_hex(secret, sizeof secret, sec);
	snprintf(text, APIKEY_TEXT_MAX, "%s_%s_%s", region, k->id, sec);
	secret_sha256(sec, APIKEY_SECRET_HEX, k->secret_sha256);
	return apikey_parse(text, k); /* the one definition of the format */
}
