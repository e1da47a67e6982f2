/* The move credential: what lets the data planes of two cells take part
 * in one tenant move, and nothing else.
 *
 * A compact JWS (ES256) the control plane signs for one move, which the
 * source and the target cells' data planes verify offline, with the trust
 * bundle they already hold and the rules of the configuration documents
 * (cfgdoc.h: alg pinned, kid in the bundle, signature, iss, aud, nbf/exp
 * with skew). Claims:
 *   iss, aud "move:<move id>", iat, nbf (= iat), exp (short: minutes), jti,
 *   ver 1, fmt 1, kind "move",
 *   move {id, tenant, from_region, from_cell, to_region, to_cell, erase_after}
 * erase_after: unix seconds from which the source cell may erase its copy
 * of the tenant; 0 while the move is not done. A move id is a UUID, so no
 * aud of a move is the aud of any other document. */
#ifndef CT_MOVECRED_H
#define CT_MOVECRED_H

#include <stdint.h>

#include "cfgdoc.h"
#include "jwk.h"

#define MOVECRED_AUD "move:"
#define MOVECRED_KIND "move"
#define MOVECRED_MAX_BYTES 4096

struct movecred {
	char id[37];           /* the move, a UUID */
	char tenant[37];
	char from_region[33], from_cell[64];
	char to_region[33], to_cell[64];
	int64_t erase_after;   /* unix seconds; 0: the source's copy may not be erased */
	int64_t iat, exp;
	char jti[65];
};

/* Signs `m` (its iat and exp are used as given; jti is made here) with
 * `key` as issuer `iss`. Returns the compact token (malloc'd) or NULL. */
char *movecred_sign(const struct jwk *key, const char *iss, const struct movecred *m);

/* Verifies `token` as a credential for move `move_id` (aud
 * "move:<move_id>"), in the order and with the results of cfgdoc_verify;
 * o->region, o->cell, o->min_version and o->allow_expired are not used.
 * Every member of `move` must be present and valid (UUIDs, region and cell
 * names, erase_after >= 0) and move.id equal to `move_id`, otherwise
 * CFGDOC_BAD_CONTENT. On CFGDOC_OK, *out holds the claims. */
enum cfgdoc_result movecred_verify(const char *token, size_t len, const struct cfgdoc_trust *trust,
                                   const struct cfgdoc_verify_opts *o, const char *move_id,
                                   struct movecred *out, char *detail, size_t detail_len)
	__attribute__((warn_unused_result));

#endif
