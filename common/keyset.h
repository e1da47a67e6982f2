/* The signed key set: the one owner of the document by which the control
 * plane tells data planes and routers which keys sign its documents, so
 * that a rotation reaches them without a restart and without a new trust
 * bundle file. As in a root rotation of TUF, a holder accepts a new set
 * only when it is signed by a key the holder already trusts: the file
 * bundle bootstraps the chain, every set after it is vouched for by the
 * one before.
 *
 * The format is a JWS in the general JSON serialization (RFC 7515 §7.2.1),
 * one ES256 signature per key the control plane holds and publishes (the
 * current key, a staged one, previous ones within their overlap), so that
 * a holder that missed a step still finds a key it trusts:
 *   {"payload": BASE64URL(claims),
 *    "signatures": [{"protected": BASE64URL(header), "signature": BASE64URL(r || s)}, ...]}
 * header: {"alg":"ES256","kid":<signing key>,"typ":"celltrail-keyset"}
 * claims: {"iss":"celltrail-control-plane","ver":<version, grows with
 *   every change of the keys>,"iat":<unix seconds>,"keys":[<public JWKs>]}
 * Served as application/jose+json by the control plane's
 * GET /v1/signing-keys (an ETag of the version). */
#ifndef CT_KEYSET_H
#define CT_KEYSET_H

#include <stddef.h>
#include <stdint.h>

#include "cfgdoc.h"
#include "jwk.h"

#define KEYSET_MAX_BYTES (256 * 1024)   /* a set larger than this is refused unread */
#define KEYSET_MAX_KEYS 64
#define KEYSET_MAX_SIGNATURES 16
#define KEYSET_TYP "celltrail-keyset"

/* Signs the set of the public halves of `keys` (n of them, each with its
 * private key) at version `ver`, once with each key. Returns the document
 * (malloc'd, NUL-terminated) or NULL. */
char *keyset_sign(const struct jwk *keys, size_t n, int64_t ver, int64_t iat, const char *issuer);

enum keyset_result {
	KEYSET_OK = 0,
	KEYSET_MALFORMED,     /* not the format above, or too large */
	KEYSET_UNTRUSTED,     /* no signature by a trusted key verifies */
	KEYSET_OLD,           /* a version below the one held: a rollback */
	KEYSET_SAME,          /* the version held: nothing to do */
	KEYSET_WRONG_ISSUER,
	KEYSET__COUNT
};
extern const char *const keyset_result_names[KEYSET__COUNT];

/* Verifies `doc` against `trusted` and the version held `held_ver` (0:
 * none). On KEYSET_OK, `*out` holds the new set's keys (the caller
 * cfgdoc_trust_free()s it) and `*ver` its version; on KEYSET_SAME only
 * `*ver`. `err` says why on a refusal. */
enum keyset_result keyset_verify(const char *doc, size_t len, const struct cfgdoc_trust *trusted, int64_t held_ver,
                                 const char *issuer, struct cfgdoc_trust *out, int64_t *ver, char *err,
                                 size_t errlen);

/* Reads a document this holder accepted earlier (a cache file): its keys
 * and version, checked for form and for a signature by one of its own
 * keys (the chain that led to it was checked when it was accepted). */
enum keyset_result keyset_read_accepted(const char *doc, size_t len, const char *issuer, struct cfgdoc_trust *out,
                                        int64_t *ver, char *err, size_t errlen);

#endif
