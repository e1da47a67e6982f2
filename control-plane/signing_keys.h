/* The control plane's signing identity: the ES256 key that signs every
 * regional and cell document and move credential, and the JWK set that
 * publishes it. This module owns where that key is kept, in one of two
 * ways, and is the only way the rest of the control plane reaches it:
 *
 * - In the control-plane database (CP_SIGNING_KEK set; migration 0012),
 *   for any number of replicas: one row per key, its private key sealed
 *   under CP_SIGNING_KEK (AES-256-GCM, secret.h), so that every replica
 *   signs with the same key and staging, rotating or retiring a key is
 *   one transaction for the whole fleet, recorded in the audit log
 *   (actor_type operator). A replica reads the rows again in the
 *   transaction of every document it signs, so that the documents a
 *   rotation re-issues are signed with the new key by whichever replica
 *   builds them; the JWK set it serves is at most a second old. At the
 *   first start on an empty table the ring of CP_SIGNING_KEYS_DIR, when
 *   set, is imported (its kids kept, so trust bundles stay valid); else a
 *   first key is made.
 * - In CP_SIGNING_KEYS_DIR alone (common/keyring.h), for one control-plane
 *   host: the layout of earlier builds, kept for them.
 *
 * The key's life: staged (published, not signing) -> current (signing) ->
 * previous (published for CP_KEY_OVERLAP) -> retired (not published). */
#ifndef CP_SIGNING_KEYS_H
#define CP_SIGNING_KEYS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "jwk.h"

struct cp_app;
struct db_conn;
struct db_pool;

/* Whether `kek_hex` is a key-encryption key (64 hex characters): 0, or
 * -1 with `err`. */
int cp_signing_kek_check(const char *kek_hex, char *err, size_t errlen);
/* Whether `prev_hex` can be CP_SIGNING_KEK_PREVIOUS beside CP_SIGNING_KEK
 * `kek_hex` (NULL: unset, which it cannot be beside): 0, or -1 with `err`. */
int cp_signing_kek_prev_check(const char *kek_hex, const char *prev_hex, char *err, size_t errlen);

/* The database's keys: checks `kek_hex` (64 hex characters), makes or
 * imports the first key when there is none (from `import_dir` when it
 * holds a ring, NULL: none), and opens the current key. NULL with `err`
 * (a wrong CP_SIGNING_KEK says so). */
struct cp_signing *cp_signing_open(struct db_pool *db, const char *kek_hex, const char *prev_hex,
                                   int64_t overlap_s, const char *import_dir, char *err, size_t errlen);
void cp_signing_free(struct cp_signing *s);

/* The current signing key into `key` (the caller jwk_clear()s it), read
 * on `c` (a connection the caller holds, in its transaction; NULL: one of
 * the pool's). Whichever way the keys are kept. Returns 0, or -1 when the
 * control plane has no signing key or cannot read it (logged). */
int cp_signing_key(struct cp_app *app, struct db_conn *c, struct jwk *key) __attribute__((warn_unused_result));
/* The public JWK set (new reference), NULL when there are no keys. */
json_t *cp_signing_jwks(struct cp_app *app);
/* The signed key set (common/keyset.h) of the database's keys and its
 * version, at most a second old (malloc'd); NULL with keys in
 * CP_SIGNING_KEYS_DIR or none. */
char *cp_signing_keyset(struct cp_app *app, int64_t *ver);
/* Whether this control plane has signing keys at all. */
int cp_signing_configured(const struct cp_app *app);
/* cp_signing_key_age_seconds (the current key's time since it began to
 * sign; database-kept keys only). */
void cp_signing_metrics(struct cp_app *app, FILE *out);

/* The operator's commands on the database's keys, each one transaction,
 * recorded in the audit log as done by `actor` (user@host). The key they
 * made or moved into `kid`. Return 0, or -1 with `err`.
 * stage:  a new key, published and not signing (refused while one is staged);
 * rotate: the staged key (or a new one) signs, the current one becomes
 *         previous, and every region's config version is raised so that
 *         documents are re-signed;
 * retire: a staged or previous key leaves the JWK set (refused for the
 *         current key). */
/* A new key-encryption key: every key sealed under `prev_hex`
 * (CP_SIGNING_KEK_PREVIOUS, the one in use) is sealed again under
 * `kek_hex` (CP_SIGNING_KEK, the new one), in one transaction, each
 * recorded in the audit log (signing_key.reseal). Keys already under the
 * new one are left (the command can run again); a retired key under
 * neither is left; any other under neither refuses the whole change. The
 * public keys, the key set and the documents do not change. Replicas
 * started with both keys open either, before and after. */
struct cp_reseal_result {
	int resealed, already, left;
	char kek_id[17], prev_id[17];
};
int cp_signing_reseal(struct db_pool *db, const char *kek_hex, const char *prev_hex, const char *actor,
                      struct cp_reseal_result *out, char *err, size_t errlen);
/* Retires the previous keys whose CP_KEY_OVERLAP has passed, as a
 * change of the keys (a new key set version, an audit record), so that
 * the holders of the key set stop trusting them too. Run by every
 * replica's upkeep; one at a time (the table lock). */
void cp_signing_age(struct cp_app *app);
/* Who runs this process, for the audit log: $USER@host. */
void cp_signing_actor(char *out, size_t len);
int cp_signing_stage(struct db_pool *db, const char *kek_hex, const char *actor, char kid[64], char *err,
                     size_t errlen);
/* (Refused with CP_KEY_OVERLAP `overlap_s` 0 and no staged key.) */
int cp_signing_rotate(struct db_pool *db, const char *kek_hex, int64_t overlap_s, const char *actor, char kid[64],
                      char *err, size_t errlen);
int cp_signing_retire(struct db_pool *db, const char *kid, const char *actor, char *err, size_t errlen);
/* The JWK set of the database's keys (no CP_SIGNING_KEK needed), and the
 * list of every key with its state and times (new references). */
json_t *cp_signing_db_jwks(struct db_pool *db, int64_t overlap_s, char *err, size_t errlen);
json_t *cp_signing_db_list(struct db_pool *db, char *err, size_t errlen);

#endif
