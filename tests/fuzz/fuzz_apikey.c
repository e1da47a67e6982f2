/* Fuzz target: the API key parser (common/apikey.c), as a data plane reads
 * the bearer token of every request.
 *
 * Invariants: apikey_parse accepts exactly "<region>_<24 hex>_<64 hex>"
 * (lowercase hex) whose region is a valid region name for common/names.c;
 * what it returns is that region, that key id and the SHA-256 of that
 * secret; and a key generated for a valid region parses back to itself. */
#include "apikey.h"
#include "fuzz.h"
#include "names.h"
#include "secret.h"

static int lower_hex(const char *s, size_t n)
{
	return strspn(s, "0123456789abcdef") >= n;
}

/* The format, from the header. */
static int reference(const char *s)
{
	const char *u1 = strchr(s, '_'), *u2 = u1 ? strchr(u1 + 1, '_') : NULL;
	if (!u2 || strchr(u2 + 1, '_'))
		return -1;
	char region[64];
	size_t rlen = (size_t)(u1 - s);
	if (rlen >= sizeof region)
		return -1;
	memcpy(region, s, rlen);
	region[rlen] = '\0';
	return name_valid_region(region) && u2 - u1 - 1 == APIKEY_ID_HEX && lower_hex(u1 + 1, APIKEY_ID_HEX) &&
	               strlen(u2 + 1) == APIKEY_SECRET_HEX && lower_hex(u2 + 1, APIKEY_SECRET_HEX)
	           ? 0
	           : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);
	struct apikey k;
	int rc = apikey_parse(s, &k), ref = reference(s);
	CHECK(rc == ref, "apikey_parse('%s') is %d, the format says %d", s, rc, ref);
	if (rc == 0) {
		unsigned char sha[32];
		size_t rlen = strlen(k.region);
		CHECK(name_valid_region(k.region), "key region '%s' is not a valid region name", k.region);
		CHECK(!strncmp(s, k.region, rlen) && s[rlen] == '_', "region '%s' is not the key's", k.region);
		CHECK(!strncmp(s + rlen + 1, k.id, APIKEY_ID_HEX) && strlen(k.id) == APIKEY_ID_HEX,
		      "key id '%s' is not the key's", k.id);
		secret_sha256(s + rlen + 1 + APIKEY_ID_HEX + 1, APIKEY_SECRET_HEX, sha);
		CHECK(!memcmp(sha, k.secret_sha256, 32), "the digest is not the secret's");
	}
	/* A key made for a region the input names. */
	if (name_valid_region(s)) {
		char text[APIKEY_TEXT_MAX];
		struct apikey g, back;
		CHECK(apikey_generate(s, text, &g) == 0, "no key for region '%s'", s);
		CHECK(apikey_parse(text, &back) == 0 && !strcmp(back.region, s) && !strcmp(back.id, g.id) &&
		      !memcmp(back.secret_sha256, g.secret_sha256, 32),
		      "key '%s' of region '%s' does not parse back", text, s);
	}
	free(s);
	return 0;
}
