/* Fuzz target: what a data plane reads of a log stream from its signed
 * document and the owner's request: the residency rule
 * (common/residency.c) and sealed secrets (common/seal.c). The first byte
 * picks the mode; the rest is the input.
 *   'u'  a destination URL, checked against a fixed rule (with and
 *        without an S3 region)
 *   'p'  a host pattern
 *   's'  a sealed value, opened with the fixed region key
 *   anything else: a secret, sealed and opened again
 *
 * Invariants: residency_check answers 0 or -1 with a NUL-terminated
 * reason within its buffer, and allows only URLs of the rule's form
 * (http or https, at most RESIDENCY_MAX_URL bytes, no userinfo, no
 * fragment, no space or control byte, plain http only to loopback); a
 * valid pattern that is not a wildcard allows its own host over https; a
 * sealed value of the input opens (or not) without leaving a secret in the
 * error buffer unterminated; a secret without NUL of at most SEAL_MAX_SECRET bytes seals and
 * opens to the same bytes, and not for another stream. */
#include <strings.h>

#include "fuzz.h"
#include "jwk.h"
#include "residency.h"
#include "seal.h"

static struct jwk priv, pub;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	char err[200];
	if (jwk_generate(&priv) != 0)
		abort();
	json_t *j = jwk_public_json(&priv);
	if (jwk_from_json(j, &pub, err, sizeof err) != 0)
		abort();
	json_decref(j);
	return 0;
}

static const struct residency_rule rule = {
	.hosts = { "127.0.0.1", "[::1]", "localhost", "*.siem.eu.example", "splunk.acme.eu", "10.1.2.3" },
	.nhosts = 6,
	.s3_regions = { "eu-west-1" },
	.ns3 = 1,
};

static void check_url(const char *url)
{
	char why[300];
	for (int s3 = 0; s3 <= 1; s3++) {
		memset(why, 'x', sizeof why);
		int rc = residency_check(&rule, "eu", url, s3 ? "eu-west-1" : NULL, why, sizeof why);
		CHECK(rc == 0 || rc == -1, "rc %d", rc);
		CHECK(memchr(why, '\0', sizeof why) != NULL || rc == 0, "reason not terminated");
		if (rc != 0)
			continue;
		size_t n = strlen(url);
		CHECK(n <= RESIDENCY_MAX_URL, "allowed a URL of %zu bytes", n);
		CHECK(!strncasecmp(url, "https://", 8) || !strncasecmp(url, "http://", 7), "allowed %s", url);
		CHECK(!strchr(url, '#'), "allowed a fragment: %s", url);
		for (size_t i = 0; i < n; i++)
			CHECK((unsigned char)url[i] > ' ' && (unsigned char)url[i] < 0x7f, "allowed byte %02x",
			      (unsigned char)url[i]);
		const char *auth = url + (url[4] == ':' ? 7 : 8);
		size_t alen = strcspn(auth, "/?");
		CHECK(!memchr(auth, '@', alen), "allowed userinfo: %s", url);
		if (url[4] == ':')
			CHECK(!strncmp(auth, "127.", 4) || auth[0] == '[' || !strncasecmp(auth, "localhost", 9),
			      "allowed plain http to %s", url);
	}
}

static void check_pattern(const char *p)
{
	if (!residency_pattern_valid(p) || p[0] == '*')
		return;
	char url[600], why[300];
	snprintf(url, sizeof url, "https://%s/", p);
	struct residency_rule r = { .hosts = { p }, .nhosts = 1 };
	CHECK(residency_check(&r, "eu", url, NULL, why, sizeof why) == 0, "%s does not allow %s: %s", p, url, why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	char *s = fuzz_cstr(data + 1, size - 1);
	char err[300], kid[64];
	size_t len;
	switch (data[0]) {
	case 'u':
		check_url(s);
		break;
	case 'p':
		check_pattern(s);
		break;
	case 's': {
		(void)seal_kid(s, kid);
		char *o = seal_open(&priv, "st", s, &len, err, sizeof err);
		CHECK(memchr(err, '\0', sizeof err) != NULL || o, "error not terminated");
		free(o);
		break;
	}
	default: {
		size_t n = strlen(s);
		char *sealed = seal_secret(&pub, "st", s, n);
		/* Escaped characters grow the plaintext: up to 5000 bytes of
		 * JSON string always fit in SEAL_MAX_BYTES. */
		json_t *js = json_string(s);
		char *esc = js ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
		size_t elen = esc ? strlen(esc) : 0;
		free(esc);
		json_decref(js);
		CHECK(sealed || n > SEAL_MAX_SECRET || !js || elen > 5000, "a secret of %zu bytes did not seal", n);
		if (sealed) {
			CHECK(strlen(sealed) <= SEAL_MAX_BYTES, "sealed %zu bytes", strlen(sealed));
			char *o = seal_open(&priv, "st", sealed, &len, err, sizeof err);
			CHECK(o && len == n && !memcmp(o, s, n), "did not open to the same secret: %s", o ? "" : err);
			free(o);
			o = seal_open(&priv, "other", sealed, &len, err, sizeof err);
			CHECK(!o, "opened for another stream");
			free(sealed);
		}
	}
	}
	free(s);
	return 0;
}
