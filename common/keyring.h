/* A ring of ES256 signing keys kept in a directory (the control plane's
 * configuration keys, a region's log keys):
 *   <kid>.pem        a private key, mode 0600
 *   current          the kid that signs
 *   next             (optional) a staged kid: published, not yet signing
 *   retired-<kid>    when <kid> stopped signing (unix seconds)
 * The JWK set publishes the current key, the staged one, and retired keys
 * for an overlap period, so that documents signed before a rotation stay
 * verifiable. Every replica reads the same directory and notices a
 * rotation by the change of `current`. */
#ifndef CT_KEYRING_H
#define CT_KEYRING_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "jwk.h"

struct keyring;

/* Opens `dir`, creating it and a first key when it holds none.
 * Returns NULL with `err` set. */
struct keyring *keyring_open(const char *dir, int64_t overlap_s, char *err, size_t errlen);
/* keyring_open for a directory that must hold a ring already: NULL with
 * `err` empty when it holds none (no `current`), with `err` set when it
 * cannot be read. */
struct keyring *keyring_open_existing(const char *dir, int64_t overlap_s, char *err, size_t errlen);
void keyring_free(struct keyring *kr);

/* Every key the JWK set publishes, private part included, with its role
 * (keyring_keys_free() frees the array). Returns 0 or -1. */
enum keyring_role { KEYRING_CURRENT, KEYRING_NEXT, KEYRING_RETIRED };
struct keyring_key {
	enum keyring_role role;
	int64_t retired_at;   /* unix seconds, for KEYRING_RETIRED */
	struct jwk key;
};
int keyring_keys(struct keyring *kr, struct keyring_key **keys, size_t *n) __attribute__((warn_unused_result));
void keyring_keys_free(struct keyring_key *keys, size_t n);

/* Copies the current signing key into `out` (caller jwk_clear()s it),
 * reloading the directory first if it changed. Returns 0 or -1. */
int keyring_current(struct keyring *kr, struct jwk *out) __attribute__((warn_unused_result));
/* The public JWK set: current, staged, and retired within the overlap. */
json_t *keyring_jwks(struct keyring *kr);

/* Stages a new key as `next` (published, not signing); prints nothing.
 * Writes its kid into `kid`. Returns 0 or -1 with `err`. */
int keyring_stage(const char *dir, char kid[64], char *err, size_t errlen);
/* Makes the staged key (or a new one) current and retires the old one.
 * Writes the new kid into `kid`. Returns 0 or -1 with `err`. */
int keyring_rotate(const char *dir, char kid[64], char *err, size_t errlen);

#endif
