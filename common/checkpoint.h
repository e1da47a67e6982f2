/* Signed checkpoints of a tenant's log: the one owner of their format.
 *
 * A checkpoint is a compact JWS (RFC 7515), ES256 over P-256:
 *   header   {"alg":"ES256","kid":"<RFC 7638 thumbprint>","typ":"checkpoint+jwt"}
 *   payload  {"tenant_id":"<uuid>","tree_size":N,"root_hash":"<base64url of
 *            the 32-byte RFC 9162 root>","iat":<unix seconds>,"region":"<region>"}
 *            plus "cell":"<cell>" when the region has cells.
 * It says: at iat, the tenant's log in that region held tree_size leaves
 * and had this root (a tree head, as in RFC 9162's signed tree heads).
 *
 * Verification never takes the algorithm from the header: it must be
 * ES256; the kid must be a key of the given set; the signature is the raw
 * 64-byte r || s of RFC 7518 3.4. */
#ifndef CT_CHECKPOINT_H
#define CT_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "jwk.h"
#include "merkle.h"

struct checkpoint {
	char tenant_id[37];
	int64_t tree_size;           /* >= 1 */
	merkle_hash root;
	int64_t iat;
	char region[64];
	char cell[64];               /* "" when none */
	char kid[64];
};

/* Signs `c` (its kid is ignored: the key's is used). Returns the compact
 * token, malloc'd, or NULL. */
char *checkpoint_sign(const struct jwk *key, const struct checkpoint *c);

/* Verifies `token` (`len` bytes, no surrounding whitespace) against the
 * public keys `keys[0..nkeys)` and fills `out`. Returns 0, or -1 with a
 * sentence in `err` (unknown kid, bad signature, a malformed or missing
 * member...). */
int checkpoint_verify(const char *token, size_t len, const struct jwk *keys, size_t nkeys,
                      struct checkpoint *out, char *err, size_t errlen) __attribute__((warn_unused_result));

/* Base64url (no padding) of a 32-byte hash into out[44] (NUL-terminated),
 * and back (returns 0, or -1 unless exactly 32 bytes). */
void checkpoint_b64_hash(const merkle_hash h, char out[44]);
int checkpoint_unb64_hash(const char *s, size_t len, merkle_hash out);

#endif
