/* The signed envelope shared by every document cfgdoc.c verifies and by the
 * move credential (movecred.c): one implementation of the checks, so a
 * credential is held to exactly the rules of a configuration document.
 * Internal to common/: services use cfgdoc.h and movecred.h.
 * (Forward declarations only: cfgdoc.c includes this header, so it must
 * not include cfgdoc.h back.) */
#ifndef CT_CFGDOC_ENVELOPE_H
#define CT_CFGDOC_ENVELOPE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct cfgdoc_trust;
struct cfgdoc_verify_opts;
struct jwk;

/* What an envelope carries, once verified. */
struct cfgdoc_envelope {
	int64_t ver, iat, nbf, exp;
	char jti[65], kid[64];
	json_t *claims;       /* the payload; the caller json_decref()s it */
};

/* The checks, in order: header alg exactly ES256 and kid in the trust
 * bundle (before any signature work); signature; iss; aud == `want_aud`;
 * nbf/exp (o->skew, o->allow_expired); ver above o->min_version; fmt
 * CFGDOC_FMT and kind == `want_kind`. Returns an enum cfgdoc_result; on
 * CFGDOC_OK, e->claims is the payload, otherwise NULL and `detail` says why. */
int cfgdoc_envelope_verify(const char *token, size_t len, const struct cfgdoc_trust *trust,
                           const struct cfgdoc_verify_opts *o, const char *want_aud,
                           const char *want_kind, struct cfgdoc_envelope *e, char *detail,
                           size_t dlen) __attribute__((warn_unused_result));

/* Signs `payload` (`len` bytes of JSON) with `key` (ES256, header kid).
 * Returns the compact token (malloc'd; caller frees) or NULL. */
char *cfgdoc_envelope_sign(const struct jwk *key, const char *payload, size_t len);

#endif
