/* ES256 compact JWS (RFC 7515, RFC 7518 3.4) at the level of bytes: the
 * signature over "header64.payload64" as the raw 64-byte r || s. The
 * signed formats (cfgdoc.c's envelope, checkpoint.c) own their headers
 * and claims and call this for the cryptography only. */
#ifndef CT_JWS_H
#define CT_JWS_H

#include <stddef.h>

struct jwk;

/* Signs: base64url(header) "." base64url(payload) "." base64url(r || s).
 * `header` and `payload` are the JSON texts as they are to be encoded.
 * Returns the compact token (malloc'd; the caller frees it) or NULL. */
char *jws_es256_sign(const struct jwk *key, const char *header, size_t hlen, const char *payload,
                     size_t plen);

/* 1 when `sig64` (base64url of the 64-byte r || s) is key's ES256
 * signature of input[0..len), else 0 (also on any malformed input). */
int jws_es256_verify(const struct jwk *key, const char *input, size_t len, const char *sig64,
                     size_t sig64len);
/* The same, hashing the input a megabyte at a time with pause() (when not
 * NULL) between: a large document's verify yields to other work. */
int jws_es256_verify_paced(const struct jwk *key, const char *input, size_t len, const char *sig64,
                           size_t sig64len, void (*pause)(void));
#define JWS_PACE_BYTES ((size_t)1 << 20)

#endif
