/* Signed checkpoints of a tenant's log: build, sign, verify. */
#include "checkpoint.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jws.h"
#include "names.h"
#include "secret.h"

#define CHECKPOINT_TYP "checkpoint+jwt"
/* A checkpoint is a few hundred bytes; anything much larger is not one. */
#define CHECKPOINT_MAX_TOKEN 2048

void checkpoint_b64_hash(const merkle_hash h, char out[44])
{
	secret_b64url(h, MERKLE_HASH_LEN, out);
}

/* Only the one spelling checkpoint_b64_hash writes: 43 characters whose
 * unused low bits are zero, so one root has one text. */
int checkpoint_unb64_hash(const char *s, size_t len, merkle_hash out)
{
	merkle_hash h;
	char again[44];
	if (len != 43 || secret_unb64url(s, len, h, sizeof h) != MERKLE_HASH_LEN)
		return -1;
	checkpoint_b64_hash(h, again);
	if (memcmp(again, s, 43) != 0)
		return -1;
	memcpy(out, h, MERKLE_HASH_LEN);
	return 0;
}

char *checkpoint_sign(const struct jwk *key, const struct checkpoint *c)
{
	char root[44], *htext = NULL, *ptext = NULL, *token = NULL;
	json_t *hdr = NULL, *payload = NULL;

	/* Nothing checkpoint_verify would refuse. */
	if (c->tree_size < 1 || c->iat < 0 || !name_valid_uuid(c->tenant_id) ||
	    !name_valid_region(c->region) || (c->cell[0] && !name_valid_cell(c->cell)))
		goto out;
	checkpoint_b64_hash(c->root, root);
	hdr = json_pack("{ss ss ss}", "alg", "ES256", "kid", key->kid, "typ", CHECKPOINT_TYP);
	payload = json_pack("{ss sI ss sI ss}", "tenant_id", c->tenant_id, "tree_size",
	                    (json_int_t)c->tree_size, "root_hash", root, "iat", (json_int_t)c->iat,
	                    "region", c->region);
	if (!hdr || !payload || (c->cell[0] && json_object_set_new(payload, "cell", json_string(c->cell))))
		goto out;
	htext = json_dumps(hdr, JSON_COMPACT);
	ptext = json_dumps(payload, JSON_COMPACT);
	if (htext && ptext)
		token = jws_es256_sign(key, htext, strlen(htext), ptext, strlen(ptext));
out:
	free(htext);
	free(ptext);
	json_decref(hdr);
	json_decref(payload);
	return token;
}

/* A string member into out[cap]; -1 when absent, not a string or too long. */
static int str_member(const json_t *o, const char *name, char *out, size_t cap)
{
	const json_t *v = json_object_get(o, name);
	if (!json_is_string(v) || json_string_length(v) >= cap)
		return -1;
	memcpy(out, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

static int int_member(const json_t *o, const char *name, int64_t *out)
{
	const json_t *v = json_object_get(o, name);
	if (!json_is_integer(v))
		return -1;
	*out = json_integer_value(v);
	return 0;
}

/* One text per value: a part whose last character carries bits beyond
 * the decoded bytes is refused, so a token cannot be re-spelt. */
static int b64_canonical(const char *s, size_t n)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	if (n % 4 == 0)
		return 1;
	if (n % 4 == 1)
		return 0;
	const char *p = strchr(alphabet, s[n - 1]);
	unsigned v = p ? (unsigned)(p - alphabet) : 64;
	return n % 4 == 2 ? (v & 0x0f) == 0 : (v & 0x03) == 0;
}

/* In the order of cfgdoc_verify: the shape of the token, the header (alg
 * pinned, kid in the set) before any signature work, the signature over
 * exactly the bytes given, then every member of the payload. */
int checkpoint_verify(const char *token, size_t len, const struct jwk *keys, size_t nkeys,
                      struct checkpoint *out, char *err, size_t errlen)
{
	int ret = -1;
	json_t *hdr = NULL, *payload = NULL;
	char *buf = NULL;
	const struct jwk *key = NULL;
	json_error_t je;

	memset(out, 0, sizeof *out);
	snprintf(err, errlen, "not a compact JWS");
	if (len == 0 || len > CHECKPOINT_MAX_TOKEN)
		goto out;
	/* Exactly three base64url parts: no padding, whitespace or other bytes. */
	size_t dots[2], nd = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)token[i];
		if (ch == '.') {
			if (nd == 2) {
				snprintf(err, errlen, "not a compact JWS: more than three parts");
				goto out;
			}
			dots[nd++] = i;
		} else if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		             ch == '-' || ch == '_')) {
			snprintf(err, errlen, "not a compact JWS: byte %zu (0x%02x) is not base64url", i, ch);
			goto out;
		}
	}
	if (nd != 2)
		goto out;
	if (!b64_canonical(token, dots[0]) || !b64_canonical(token + dots[0] + 1, dots[1] - dots[0] - 1) ||
	    !b64_canonical(token + dots[1] + 1, len - dots[1] - 1)) {
		snprintf(err, errlen, "not a compact JWS: a part is not canonical base64url");
		goto out;
	}
	buf = malloc(len + 1);
	if (!buf) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}

	/* 1. The header. */
	long n = secret_unb64url(token, dots[0], buf, len);
	if (n <= 0 || !(hdr = json_loadb(buf, (size_t)n, JSON_REJECT_DUPLICATES, &je)) ||
	    !json_is_object(hdr)) {
		snprintf(err, errlen, "the header is not a JSON object");
		goto out;
	}
	const char *alg = json_string_value(json_object_get(hdr, "alg"));
	const char *kid = json_string_value(json_object_get(hdr, "kid"));
	const char *typ = json_string_value(json_object_get(hdr, "typ"));
	if (!alg || strcmp(alg, "ES256") != 0) {
		snprintf(err, errlen, "header alg is '%.20s'; only ES256 is accepted", alg ? alg : "(none)");
		goto out;
	}
	if (!typ || strcmp(typ, CHECKPOINT_TYP) != 0) {
		snprintf(err, errlen, "header typ is '%.40s', not '" CHECKPOINT_TYP "'", typ ? typ : "(none)");
		goto out;
	}
	if (json_object_get(hdr, "crit")) {
		snprintf(err, errlen, "header 'crit' is not supported");
		goto out;
	}
	for (size_t i = 0; kid && i < nkeys; i++)
		if (!strcmp(keys[i].kid, kid))
			key = &keys[i];
	if (!key) {
		snprintf(err, errlen, "kid '%.64s' is not in the key set", kid ? kid : "(none)");
		goto out;
	}

	/* 2. The signature, with the key the kid names. */
	if (!jws_es256_verify(key, token, dots[1], token + dots[1] + 1, len - dots[1] - 1)) {
		snprintf(err, errlen, "the signature does not verify with key %.64s", key->kid);
		goto out;
	}

	/* 3. The payload. */
	n = secret_unb64url(token + dots[0] + 1, dots[1] - dots[0] - 1, buf, len);
	if (n <= 0 || !(payload = json_loadb(buf, (size_t)n, JSON_REJECT_DUPLICATES, &je)) ||
	    !json_is_object(payload)) {
		snprintf(err, errlen, "the payload is not a JSON object");
		goto out;
	}
	if (str_member(payload, "tenant_id", out->tenant_id, sizeof out->tenant_id) ||
	    !name_valid_uuid(out->tenant_id)) {
		snprintf(err, errlen, "tenant_id is missing or not a UUID");
		goto out;
	}
	if (int_member(payload, "tree_size", &out->tree_size) || out->tree_size < 1) {
		snprintf(err, errlen, "tree_size is missing or not a positive integer");
		goto out;
	}
	const json_t *root = json_object_get(payload, "root_hash");
	if (!json_is_string(root) ||
	    checkpoint_unb64_hash(json_string_value(root), json_string_length(root), out->root)) {
		snprintf(err, errlen, "root_hash is missing or not the base64url of 32 bytes");
		goto out;
	}
	if (int_member(payload, "iat", &out->iat) || out->iat < 0) {
		snprintf(err, errlen, "iat is missing or not a non-negative integer");
		goto out;
	}
	if (str_member(payload, "region", out->region, sizeof out->region) ||
	    !name_valid_region(out->region)) {
		snprintf(err, errlen, "region is missing or not a region name");
		goto out;
	}
	if (json_object_get(payload, "cell") &&
	    (str_member(payload, "cell", out->cell, sizeof out->cell) || !name_valid_cell(out->cell))) {
		snprintf(err, errlen, "cell is not a cell name");
		goto out;
	}
	snprintf(out->kid, sizeof out->kid, "%s", key->kid);
	snprintf(err, errlen, "ok");
	ret = 0;
out:
	if (ret != 0)
		memset(out, 0, sizeof *out); /* nothing half-verified to misuse */
	free(buf);
	json_decref(hdr);
	json_decref(payload);
	return ret;
}
