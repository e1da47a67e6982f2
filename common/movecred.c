/* The move credential: signed by the control plane for one move, verified
 * offline by the two cells' data planes with the documents' rules. */
#include "movecred.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfgdoc_envelope.h"
#include "names.h"
#include "secret.h"

char *movecred_sign(const struct jwk *key, const char *iss, const struct movecred *m)
{
	unsigned char rnd[16];
	char jti[33], aud[sizeof MOVECRED_AUD + 37], *text = NULL, *token = NULL;
	json_t *claims = NULL;

	if (secret_random(rnd, sizeof rnd) != 0)
		goto out;
	secret_hex(rnd, sizeof rnd, jti);
	snprintf(aud, sizeof aud, MOVECRED_AUD "%s", m->id);
	claims = json_pack("{ss ss sI sI sI ss si si ss"
	                   " s{ss ss ss ss ss ss sI}}",
	                   "iss", iss, "aud", aud, "iat", (json_int_t)m->iat, "nbf", (json_int_t)m->iat,
	                   "exp", (json_int_t)m->exp, "jti", jti, "ver", 1, "fmt", CFGDOC_FMT, "kind",
	                   MOVECRED_KIND, "move", "id", m->id, "tenant", m->tenant, "from_region",
	                   m->from_region, "from_cell", m->from_cell, "to_region", m->to_region,
	                   "to_cell", m->to_cell, "erase_after", (json_int_t)m->erase_after);
	text = claims ? json_dumps(claims, JSON_COMPACT) : NULL;
	if (text)
		token = cfgdoc_envelope_sign(key, text, strlen(text));
out:
	json_decref(claims);
	free(text);
	return token;
}

/* Copies string member `name` of `o` into out[len] when `valid` accepts it. */
static int member(const json_t *o, const char *name, char *out, size_t len,
                  int (*valid)(const char *))
{
	const char *s = json_string_value(json_object_get(o, name));
	if (!s || strlen(s) >= len || strlen(s) != json_string_length(json_object_get(o, name)) ||
	    !valid(s))
		return -1;
	memcpy(out, s, strlen(s) + 1);
	return 0;
}

enum cfgdoc_result movecred_verify(const char *token, size_t len, const struct cfgdoc_trust *trust,
                                   const struct cfgdoc_verify_opts *o, const char *move_id,
                                   struct movecred *out, char *detail, size_t dlen)
{
	struct cfgdoc_envelope e = { 0 };
	struct cfgdoc_verify_opts vo = *o;
	char aud[sizeof MOVECRED_AUD + 64];
	enum cfgdoc_result res;

	memset(out, 0, sizeof *out);
	/* A credential is never served from a cache: an expired one is refused,
	 * and ver is the format's (1), not a version that advances. */
	vo.allow_expired = 0;
	vo.min_version = 0;
	if (!vo.max_bytes || vo.max_bytes > MOVECRED_MAX_BYTES)
		vo.max_bytes = MOVECRED_MAX_BYTES;
	snprintf(aud, sizeof aud, MOVECRED_AUD "%.40s", move_id);
	res = (enum cfgdoc_result)cfgdoc_envelope_verify(token, len, trust, &vo, aud, MOVECRED_KIND, &e,
	                                                 detail, dlen);
	if (res != CFGDOC_OK)
		goto out;
	res = CFGDOC_BAD_CONTENT;
	json_t *m = json_object_get(e.claims, "move");
	json_t *ea = json_object_get(m, "erase_after");
	if (!json_is_object(m) || member(m, "id", out->id, sizeof out->id, name_valid_uuid) ||
	    member(m, "tenant", out->tenant, sizeof out->tenant, name_valid_uuid) ||
	    member(m, "from_region", out->from_region, sizeof out->from_region, name_valid_region) ||
	    member(m, "from_cell", out->from_cell, sizeof out->from_cell, name_valid_cell) ||
	    member(m, "to_region", out->to_region, sizeof out->to_region, name_valid_region) ||
	    member(m, "to_cell", out->to_cell, sizeof out->to_cell, name_valid_cell) ||
	    !json_is_integer(ea) || json_integer_value(ea) < 0) {
		snprintf(detail, dlen, "claim 'move' is missing or malformed");
		goto out;
	}
	if (strcmp(out->id, move_id) != 0) {
		snprintf(detail, dlen, "the credential is for move %s", out->id);
		goto out;
	}
	out->erase_after = json_integer_value(ea);
	out->iat = e.iat;
	out->exp = e.exp;
	snprintf(out->jti, sizeof out->jti, "%s", e.jti);
	res = CFGDOC_OK;
	snprintf(detail, dlen, "ok");
out:
	if (res != CFGDOC_OK)
		memset(out, 0, sizeof *out);
	json_decref(e.claims);
	return res;
}
