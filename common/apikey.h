/* The text of an API key: "<region>_<key id>_<secret>".
 *
 * The region comes first so that any data plane can tell a key of another
 * region without knowing the tenant; the key id (24 hex) finds the key;
 * the secret (64 hex, 256 random bits) is checked against its SHA-256. */
#ifndef CT_APIKEY_H
#define CT_APIKEY_H

#include <stddef.h>

#define APIKEY_REGION_MAX 32
#define APIKEY_ID_HEX 24
#define APIKEY_SECRET_HEX 64
#define APIKEY_TEXT_MAX (APIKEY_REGION_MAX + 1 + APIKEY_ID_HEX + 1 + APIKEY_SECRET_HEX + 1)

struct apikey {
	char region[APIKEY_REGION_MAX + 1];
	char id[APIKEY_ID_HEX + 1];
	unsigned char secret_sha256[32];
};

/* Splits and validates `text`. The secret itself is not kept, only its
 * hash. Returns 0, or -1 when the text is not a well-formed key. */
int apikey_parse(const char *text, struct apikey *k) __attribute__((warn_unused_result));

/* Makes a new key for `region`: fills `text` (APIKEY_TEXT_MAX) and `k`.
 * Returns 0, or -1 if randomness failed or `region` cannot start a key
 * (longer than APIKEY_REGION_MAX, or not [a-z][a-z0-9-]*). */
int apikey_generate(const char *region, char text[APIKEY_TEXT_MAX], struct apikey *k)
	__attribute__((warn_unused_result));

#endif
