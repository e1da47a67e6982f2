/* The keys a data plane or a router trusts, and how they change while it
 * runs: the one owner of that state in a process and of its file.
 *
 * At start the store holds the key set this holder accepted last (the
 * file `keyset.json` in its cache directory, written atomically), or, when
 * there is none, the trust bundle file it was given, which only
 * bootstraps. A signed key set fetched from the control plane (keyset.h)
 * replaces the keys only when a key held now signs it and its version is
 * newer; it is written to the file before it is used, so that a restart
 * with the control plane down starts from it.
 *
 * Readers take a reference to the keys of the moment (trust_store_get)
 * and give it back (trust_store_put): a change never frees keys a
 * verification is using. */
#ifndef CT_TRUST_STORE_H
#define CT_TRUST_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "cfgdoc.h"
#include "keyset.h"

#define DP_KEYSET_FILE "keyset.json"

struct trust_store;

/* The keys of `cache_dir`/DP_KEYSET_FILE when it holds a set this holder
 * accepted, else of the trust bundle `bundle_path`. NULL with `err`. */
struct trust_store *trust_store_open(const char *bundle_path, const char *cache_dir, const char *issuer, char *err,
                                     size_t errlen);
void trust_store_free(struct trust_store *s);

/* The keys now (never NULL), until trust_store_put. */
const struct cfgdoc_trust *trust_store_get(struct trust_store *s);
void trust_store_put(struct trust_store *s, const struct cfgdoc_trust *t);

/* The version of the key set held (0: the bundle's keys). */
int64_t trust_store_version(struct trust_store *s);

/* Applies a fetched key set: KEYSET_OK when it replaced the keys (and was
 * written), KEYSET_SAME when it is the set held, a refusal otherwise
 * (`err` says why; the keys stay). A set that cannot be written is not
 * used (KEYSET_MALFORMED with `err`). */
enum keyset_result trust_store_apply(struct trust_store *s, const char *doc, size_t len, char *err, size_t errlen);

#endif
