/* ES256 (P-256) keys as JWKs: generation, PEM files, RFC 7638
 * thumbprints as key ids, and the public JWK sets that make a trust
 * bundle. libjwt signs and verifies with the PEM forms kept here. */
#ifndef CT_JWK_H
#define CT_JWK_H

#include <jansson.h>
#include <stddef.h>

struct jwk {
	char kid[64];            /* RFC 7638 thumbprint, base64url */
	char x[48], y[48];       /* public point, base64url */
	char *public_pem;        /* malloc'd */
	char *private_pem;       /* malloc'd; NULL for a public-only key */
};

/* Makes a new P-256 key pair. Returns 0 or -1. */
int jwk_generate(struct jwk *k) __attribute__((warn_unused_result));
/* Loads a private key from a PEM file. Returns 0, or -1 with `err` set. */
int jwk_load_private(const char *path, struct jwk *k, char *err, size_t errlen)
	__attribute__((warn_unused_result));
/* Reads a private key from `len` bytes of PEM in memory; `what` names it
 * in `err`. Returns 0, or -1 with `err` set. */
int jwk_from_private_pem(const char *pem, size_t len, const char *what, struct jwk *k, char *err,
                         size_t errlen) __attribute__((warn_unused_result));
/* Writes the private key to `path` atomically with mode 0600. */
int jwk_save_private(const struct jwk *k, const char *path) __attribute__((warn_unused_result));
/* The public JWK: {kty, crv, x, y, kid, alg, use}. New reference. */
json_t *jwk_public_json(const struct jwk *k);
/* Reads a public JWK (a member of "keys" in a JWK set). Checks kty EC,
 * crv P-256, the point on the curve, and that kid is its thumbprint.
 * Returns 0, or -1 with `err` set. */
int jwk_from_json(const json_t *o, struct jwk *k, char *err, size_t errlen)
	__attribute__((warn_unused_result));
void jwk_clear(struct jwk *k);

#endif
