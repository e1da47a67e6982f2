/* The signed key set (keyset.h). */
#include "keyset.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jws.h"
#include "secret.h"

const char *const keyset_result_names[KEYSET__COUNT] = {
	[KEYSET_OK] = "ok",
	[KEYSET_MALFORMED] = "malformed",
	[KEYSET_UNTRUSTED] = "untrusted",
	[KEYSET_OLD] = "old",
	[KEYSET_SAME] = "same",
	[KEYSET_WRONG_ISSUER] = "wrong_issuer",
};

char *keyset_sign(const struct jwk *keys, size_t n, int64_t ver, int64_t iat, const char *issuer)
{
	json_t *pub = json_array(), *sigs = json_array(), *doc = NULL;
	char *claims = NULL, *out = NULL;
	if (!pub || !sigs || n == 0 || n > KEYSET_MAX_SIGNATURES)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (json_array_append_new(pub, jwk_public_json(&keys[i])) != 0)
			goto out;
	json_t *c = json_pack("{ss sI sI sO}", "iss", issuer, "ver", (json_int_t)ver, "iat", (json_int_t)iat, "keys", pub);
	claims = c ? json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(c);
	if (!claims)
		goto out;
	char *payload64 = NULL;
	for (size_t i = 0; i < n; i++) {
		char hdr[200];
		int hl = snprintf(hdr, sizeof hdr, "{\"alg\":\"ES256\",\"kid\":\"%s\",\"typ\":\"" KEYSET_TYP "\"}", keys[i].kid);
		char *tok = jws_es256_sign(&keys[i], hdr, (size_t)hl, claims, strlen(claims));
		char *d1 = tok ? strchr(tok, '.') : NULL, *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
		if (!d2) {
			free(tok);
			free(payload64);
			goto out;
		}
		*d1 = *d2 = '\0';
		if (!payload64)
			payload64 = strdup(d1 + 1);
		int bad = json_array_append_new(sigs, json_pack("{ss ss}", "protected", tok, "signature", d2 + 1));
		free(tok);
		if (bad || !payload64) {
			free(payload64);
			goto out;
		}
	}
	doc = json_pack("{ss sO}", "payload", payload64, "signatures", sigs);
	free(payload64);
	out = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
out:
	json_decref(doc);
	json_decref(pub);
	json_decref(sigs);
	free(claims);
	return out;
}

/* base64url text decoded into a new JSON value, or NULL. */
static json_t *b64_json(const char *in, size_t len, size_t cap)
{
	char *buf = malloc(cap + 1);
	if (!buf)
		return NULL;
	long n = secret_unb64url(in, len, buf, cap);
	json_t *j = n > 0 ? json_loadb(buf, (size_t)n, JSON_REJECT_DUPLICATES, NULL) : NULL;
	free(buf);
	return j;
}

/* The parsed document: its claims, and its signatures (borrowed from `doc`). */
struct parsed {
	json_t *doc, *claims, *sigs;
	const char *payload64;
	int64_t ver;
};

static enum keyset_result parse(const char *text, size_t len, const char *issuer, struct parsed *p,
                                struct cfgdoc_trust *keys, char *err, size_t errlen)
{
	memset(p, 0, sizeof *p);
	memset(keys, 0, sizeof *keys);
	if (len > KEYSET_MAX_BYTES) {
		snprintf(err, errlen, "the key set is larger than %d bytes", KEYSET_MAX_BYTES);
		return KEYSET_MALFORMED;
	}
	p->doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
	p->payload64 = json_string_value(json_object_get(p->doc, "payload"));
	p->sigs = json_object_get(p->doc, "signatures");
	if (!p->payload64 || !json_is_array(p->sigs) || json_array_size(p->sigs) == 0 ||
	    json_array_size(p->sigs) > KEYSET_MAX_SIGNATURES) {
		snprintf(err, errlen, "not a key set: a JSON object with \"payload\" and 1 to %d \"signatures\"",
		         KEYSET_MAX_SIGNATURES);
		return KEYSET_MALFORMED;
	}
	p->claims = b64_json(p->payload64, strlen(p->payload64), KEYSET_MAX_BYTES);
	json_t *ver = json_object_get(p->claims, "ver");
	const char *iss = json_string_value(json_object_get(p->claims, "iss"));
	if (!json_is_object(p->claims) || !json_is_integer(ver) || json_integer_value(ver) < 1 || !iss ||
	    !json_is_integer(json_object_get(p->claims, "iat"))) {
		snprintf(err, errlen, "the key set's claims lack iss, a version of at least 1, or iat");
		return KEYSET_MALFORMED;
	}
	if (strcmp(iss, issuer) != 0) {
		snprintf(err, errlen, "the key set's issuer is '%.64s', not '%s'", iss, issuer);
		return KEYSET_WRONG_ISSUER;
	}
	p->ver = json_integer_value(ver);
	if (cfgdoc_trust_from_json(p->claims, "the key set", keys, err, errlen) != 0)
		return KEYSET_MALFORMED;
	return KEYSET_OK;
}

static void parsed_free(struct parsed *p)
{
	json_decref(p->doc);
	json_decref(p->claims);
}

/* Whether one signature of `p` is by a key of `by` and verifies: its kid
 * into `who`. */
static int signed_by(const struct parsed *p, const struct cfgdoc_trust *by, char who[64])
{
	size_t i, plen = strlen(p->payload64);
	json_t *s;
	json_array_foreach(p->sigs, i, s) {
		const char *prot = json_string_value(json_object_get(s, "protected"));
		const char *sig = json_string_value(json_object_get(s, "signature"));
		if (!prot || !sig || strlen(prot) > 1024)
			continue;
		json_t *h = b64_json(prot, strlen(prot), 1024);
		const char *alg = json_string_value(json_object_get(h, "alg"));
		const char *kid = json_string_value(json_object_get(h, "kid"));
		const char *typ = json_string_value(json_object_get(h, "typ"));
		const struct jwk *key = NULL;
		if (alg && !strcmp(alg, "ES256") && typ && !strcmp(typ, KEYSET_TYP) && kid && !json_object_get(h, "crit"))
			key = cfgdoc_trust_find(by, kid);
		int ok = 0;
		if (key) {
			size_t hl = strlen(prot);
			char *input = malloc(hl + 1 + plen);
			if (input) {
				memcpy(input, prot, hl);
				input[hl] = '.';
				memcpy(input + hl + 1, p->payload64, plen);
				ok = jws_es256_verify(key, input, hl + 1 + plen, sig, strlen(sig));
				free(input);
			}
			if (ok)
				snprintf(who, 64, "%s", kid);
		}
		json_decref(h);
		if (ok)
			return 1;
	}
	return 0;
}

enum keyset_result keyset_verify(const char *doc, size_t len, const struct cfgdoc_trust *trusted, int64_t held_ver,
                                 const char *issuer, struct cfgdoc_trust *out, int64_t *ver, char *err,
                                 size_t errlen)
{
	struct parsed p;
	char who[64];
	enum keyset_result r = parse(doc, len, issuer, &p, out, err, errlen);
	if (r != KEYSET_OK)
		goto fail;
	*ver = p.ver;
	if (!signed_by(&p, trusted, who)) {
		snprintf(err, errlen, "no signature of key set version %lld is by a key trusted here", (long long)p.ver);
		r = KEYSET_UNTRUSTED;
		goto fail;
	}
	if (p.ver < held_ver) {
		snprintf(err, errlen, "key set version %lld is older than the one held, %lld", (long long)p.ver,
		         (long long)held_ver);
		r = KEYSET_OLD;
		goto fail;
	}
	if (p.ver == held_ver) {
		r = KEYSET_SAME;
		goto fail;
	}
	parsed_free(&p);
	return KEYSET_OK;
fail:
	cfgdoc_trust_free(out);
	parsed_free(&p);
	return r;
}

enum keyset_result keyset_read_accepted(const char *doc, size_t len, const char *issuer, struct cfgdoc_trust *out,
                                        int64_t *ver, char *err, size_t errlen)
{
	struct parsed p;
	char who[64];
	enum keyset_result r = parse(doc, len, issuer, &p, out, err, errlen);
	if (r == KEYSET_OK && !signed_by(&p, out, who)) {
		snprintf(err, errlen, "no signature of the key set is by one of its own keys");
		r = KEYSET_UNTRUSTED;
	}
	if (r == KEYSET_OK)
		*ver = p.ver;
	else
		cfgdoc_trust_free(out);
	parsed_free(&p);
	return r;
}
