/* Sealing a secret to a region: the one owner of the sealed-secret format
 * that carries a stream destination's secret from the control plane to the
 * data planes of the tenant's region, inside a signed document that other
 * parties (a cache file, a router, a log) may hold.
 *
 * The format is a JWE in compact serialization (RFC 7516), with key
 * agreement ECDH-ES on P-256 straight to the content key (RFC 7518 §4.6,
 * "alg":"ECDH-ES", no encrypted key) and content encryption A256GCM:
 *   BASE64URL(header) "." "" "." BASE64URL(iv) "." BASE64URL(ciphertext) "." BASE64URL(tag)
 * header (protected, the AAD): {"alg":"ECDH-ES","enc":"A256GCM","kid":<the
 *   region's stream key's kid>,"epk":{"kty":"EC","crv":"P-256","x","y"},
 *   "cty":"celltrail-secret"}
 * Content key: Concat KDF (NIST SP 800-56A, SHA-256; OpenSSL's SSKDF) over
 * the ECDH shared secret, with AlgorithmID "A256GCM", empty PartyUInfo and
 * PartyVInfo, keydatalen 256 (RFC 7518 §4.6.2). A fresh ephemeral key and
 * 96-bit IV per seal (from OpenSSL's generator).
 * Plaintext: the JSON {"stream":"<stream id>","secret":"<the secret>"}; the
 * data plane checks that "stream" is the stream the sealed value came with,
 * so that a sealed secret cannot be moved to another stream of the region.
 * Any standard JOSE library opens it (tests check against one).
 *
 * The region's stream key is a P-256 key pair: the private key in the data
 * planes' DP_STREAM_KEYS_DIR (common/keyring.h layout; never in a database
 * or a document), the public JWK in the region catalog (`stream_key`, set
 * by an admin), which is the only key the control plane seals to. */
#ifndef CT_SEAL_H
#define CT_SEAL_H

#include <stddef.h>

#include "jwk.h"

#define SEAL_MAX_SECRET 4096     /* bytes of secret a sealed value may carry */
#define SEAL_MAX_BYTES 8192      /* bytes of a sealed value (compact JWE) */

/* Seals `secret` (len bytes, no NUL inside) for stream `stream_id` to the
 * public key `to`. Returns the compact JWE (malloc'd) or NULL. */
char *seal_secret(const struct jwk *to, const char *stream_id, const char *secret, size_t len);

/* The kid in a sealed value's header (to pick the private key), copied
 * into kid. Returns 0, or -1 when `sealed` is not of this format. */
int seal_kid(const char *sealed, char kid[64]);

/* Opens `sealed` with the private key `key` (its kid must be the header's)
 * and checks that it was sealed for `stream_id`. Returns the secret
 * (malloc'd, NUL-terminated, length in *len; the caller wipes and frees
 * it), or NULL with `err` saying why (never containing any secret). */
char *seal_open(const struct jwk *key, const char *stream_id, const char *sealed, size_t *len,
                char *err, size_t errlen);

#endif
