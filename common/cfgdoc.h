/* The signed regional configuration document.
 *
 * A compact JWT (ES256) whose claims are:
 *   iss, aud (the region), iat, nbf, exp, jti, ver (the region's config
 *   version, strictly increasing), fmt (1), kind ("full"),
 *   region     {name, display_name, endpoint_url, status, wave}
 *   directory  [[name, endpoint_url, status], ...]   every region
 *   plans      {"<id>": [rate, burst, monthly_quota, retention_days]}
 *   tenants    one string of records ended by ';', fields split by '|':
 *     t|<tenant uuid>|<slug>|<a|s|d: active, suspended, deleted>|<plan id>;
 *     k|<key id, 24 hex>|<SHA-256 of the secret, base64url>|<w, r or wr>|<expiry, unix s; 0 none>;
 *   where each k record belongs to the t record before it. Every character
 *   in it is one JSON carries unescaped, so the control plane splices the
 *   text into the payload without copying it through a JSON encoder.
 * The tenants string holds only tenants whose home region is aud. A key's
 * first part (its region) may name another region than aud: after a move
 * between regions a tenant's keys keep working at its new home, their
 * region becoming an alias; a key is served where its id is found.
 *   moved      optional; one string of records ended by ';':
 *     <key id, 24 hex>|<region>;
 *   one for every key not revoked whose first part names aud's region but
 *   whose tenant now lives in <region>: a data plane answers such a key 421
 *   with that region's endpoint (from directory), before anything else. A
 *   data plane of a build without moves ignores the claim.
 *   stream_rules  optional; {"hosts":[pattern, ...],"s3_regions":[name, ...]}:
 *              the region's residency rule for log streams (residency.h).
 *              Absent: no destination is allowed.
 *   streams    optional; an array, one object per stream (not deleted) of
 *              the document's tenants, at most CFGDOC_MAX_STREAMS:
 *     {"id":<uuid>,"tenant":<uuid>,"kind":"webhook"|"splunk_hec"|"s3",
 *      "revision":N,"paused":true|false,"since":<unix s>,
 *      "resume":N,"replay":N,"replay_since":<unix s, 0 when replay is 0>,
 *      webhook, splunk_hec: "url";
 *      s3: "endpoint","bucket","s3_region","access_key_id","prefix" ("" for none),
 *      "secret": the destination's secret sealed to the region's stream key
 *                (seal.h), absent while the region has no stream key}
 *              resume and replay count the owner's commands (a data plane
 *              applies each new one once); a data plane of a build without
 *              streams ignores both claims.
 * Keeping the bulk in one string lets a data plane build its lookup tables
 * in one pass, without a JSON tree of every tenant. A later "kind":"delta"
 * can carry changes since a base version; a data plane that meets a fmt or
 * kind it does not know rejects the document and keeps what it has.
 *
 * Three documents share this format and the same verification rules
 * (pinned alg, kid, iss, aud, nbf/exp, monotonic ver); aud tells them apart:
 *   regional document  aud "<region>": the tenants of every cell of the
 *                      region (GET /v1/regions/{region}/config; data planes
 *                      of builds without cells).
 *   cell document      aud "cell:<cell>": as above, plus the claim
 *                      cell {name, region, kind, status}, and the tenants
 *                      string holds only the tenants placed in that cell
 *                      (GET /v1/cells/{cell}/config).
 *   routes document    aud "routes:<region>", kind "routes": iss, aud, iat,
 *                      nbf, exp, jti, ver, fmt, kind, region (its name),
 *                      cells [[name, status, kind], ...] (the region's
 *                      cells) and routes, one string of records ended by
 *                      ';': <key id, 24 hex>|<cell>; for every key of the
 *                      region that is not revoked (GET /v1/regions/{region}/routes).
 *                      It names no secret and no hash: a router holds only it.
 * Region names never hold ':', so no aud of one kind is an aud of another.
 * The ver of all three is the region's config version. */
#ifndef CT_CFGDOC_H
#define CT_CFGDOC_H

#define CFGDOC_AUD_CELL "cell:"
#define CFGDOC_AUD_ROUTES "routes:"
#define CFGDOC_KIND_ROUTES "routes"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "jwk.h"

#define CFGDOC_FMT 1
#define CFGDOC_MAX_STREAMS 100000
#define CFGDOC_SCOPE_WRITE 1u
#define CFGDOC_SCOPE_READ 2u

struct cfgdoc_plan {
	char id[33];
	int64_t rate, burst, quota, retention_days;
};

struct cfgdoc_tenant {
	char id[37];
	char slug[64];
	char status;          /* 'a', 's' or 'd' */
	uint32_t plan;        /* index into plans */
	uint32_t nkeys;       /* its keys */
};

struct cfgdoc_key {
	char id[25];
	unsigned char sha256[32];
	unsigned scopes;      /* CFGDOC_SCOPE_* */
	int64_t expires;      /* unix seconds; 0 = never */
	uint32_t tenant;      /* index into tenants */
};

struct cfgdoc_region {
	char name[33];
	char endpoint[201];
	char status[16];
};

/* A record of the `moved` claim: a key of this region whose tenant lives
 * in `region` now. */
struct cfgdoc_moved {
	char key[25];
	char region[33];
};

/* The `cell` claim of a cell document. */
struct cfgdoc_cell {
	char name[64];
	char region[33];
	char kind[16];        /* "shared" or "dedicated" */
	char status[16];      /* "active", "draining" or "closed" */
};

/* A record of the `streams` claim. Strings are NUL-terminated. */
struct cfgdoc_stream {
	char id[37];
	char tenant[37];
	char kind[16];            /* "webhook", "splunk_hec" or "s3" */
	int64_t revision;
	int paused;               /* by the owner */
	int64_t since;            /* unix seconds */
	int64_t resume, replay, replay_since;
	char *url;                /* malloc'd: webhook and splunk_hec: the URL; s3: the endpoint */
	char bucket[64];          /* s3 */
	char s3_region[33];       /* s3 */
	char access_key_id[129];  /* s3 */
	char prefix[257];         /* s3; "" for none */
	char *sealed;             /* malloc'd sealed secret (seal.h), or NULL */
};

/* The sum of a state's record hashes (see the state digest below). */
struct cfgdoc_sum {
	unsigned char v[32];  /* little-endian */
};

struct cfgdoc {
	int64_t ver, iat, nbf, exp;
	char jti[65], kid[64];
	struct cfgdoc_region self;
	struct cfgdoc_cell cell;               /* a cell document's; all empty in a regional one */
	struct cfgdoc_region *dir;
	size_t ndir;
	struct cfgdoc_plan *plans;
	size_t nplans;
	struct cfgdoc_tenant *tenants;
	size_t ntenants;
	struct cfgdoc_key *keys;
	size_t nkeys;
	struct cfgdoc_moved *moved;            /* the `moved` claim, in its order */
	size_t nmoved;
	struct cfgdoc_stream *streams;         /* the `streams` claim, in its order */
	size_t nstreams;
	char **stream_hosts;                   /* the `stream_rules` claim; malloc'd strings */
	size_t nstream_hosts;
	char **stream_s3_regions;
	size_t nstream_s3_regions;
	uint32_t *key_slots, *tenant_slots;   /* open addressing; value = index + 1 */
	size_t key_cap, tenant_cap;
	uint32_t *moved_slots;                 /* the same, over moved[].key */
	size_t moved_cap;
	char *token;                           /* the verified text, for the cache; */
	size_t token_len;                      /* NULL, 0 with cfgdoc_verify_opts.no_token */

	/* The state digest (cfgdoc_state_digest): thash[i] is the record hash
	 * of tenants[i], sum their sum over the whole state. */
	unsigned char (*thash)[32];
	struct cfgdoc_sum sum;
	/* A state reached through deltas is layered on the full document it
	 * started from: `base` (shared, counted in its `refs`) holds the
	 * tenants no delta touched since; tenants, keys and their tables here
	 * hold the records the deltas upserted, and `removed` the base's
	 * tenants they removed. A base tenant whose id is in tenants or
	 * removed is masked, keys and all. Every other claim is the newest
	 * delta's. NULL for a full document. Use the functions below, not
	 * the arrays, to read a state that may be layered. */
	struct cfgdoc *base;
	_Atomic int refs;                      /* the states layered on it (its holder not counted) */
	char (*removed)[37];
	size_t nremoved;
	uint32_t *removed_slots;
	size_t removed_cap;
	uint32_t *base_plans;                  /* base->plans[i] is plans[base_plans[i]] */
	size_t live_tenants, live_keys;        /* counts over the whole state */
	size_t deltas;                         /* deltas applied since the full document */
};

/* Lookups over the whole state, layered or not. A key's tenant and a
 * tenant's plan are found with cfgdoc_key_tenant and cfgdoc_tenant_plan:
 * in a layered state they may live in the base. */
const struct cfgdoc_key *cfgdoc_find_key(const struct cfgdoc *d, const char *id);
const struct cfgdoc_tenant *cfgdoc_find_tenant(const struct cfgdoc *d, const char *id);
const struct cfgdoc_tenant *cfgdoc_key_tenant(const struct cfgdoc *d, const struct cfgdoc_key *k);
const struct cfgdoc_plan *cfgdoc_tenant_plan(const struct cfgdoc *d, const struct cfgdoc_tenant *t);
/* Every tenant of the state once, in no set order: start with *it = 0;
 * NULL at the end. */
const struct cfgdoc_tenant *cfgdoc_tenants_next(const struct cfgdoc *d, size_t *it);
size_t cfgdoc_tenant_count(const struct cfgdoc *d);
size_t cfgdoc_key_count(const struct cfgdoc *d);
const struct cfgdoc_region *cfgdoc_find_region(const struct cfgdoc *d, const char *name);
/* The `moved` record of key `id`, or NULL. */
const struct cfgdoc_moved *cfgdoc_find_moved(const struct cfgdoc *d, const char *id);
/* Drops the caller's reference: a full document a layered state still
 * uses is freed with the last of them. Accepts NULL. */
void cfgdoc_free(struct cfgdoc *d);

/* ---- trust bundle: a JWK set file of the keys a data plane accepts ---- */
struct cfgdoc_trust {
	struct jwk *keys;
	size_t n;
};
int cfgdoc_trust_load(const char *path, struct cfgdoc_trust *t, char *err, size_t errlen)
	__attribute__((warn_unused_result));
/* The same from a JWK set already parsed; `what` names it in `err`. */
int cfgdoc_trust_from_json(const json_t *set, const char *what, struct cfgdoc_trust *t, char *err, size_t errlen)
	__attribute__((warn_unused_result));
/* The key `kid` of `t`, or NULL. */
const struct jwk *cfgdoc_trust_find(const struct cfgdoc_trust *t, const char *kid);
void cfgdoc_trust_free(struct cfgdoc_trust *t);

/* ---- verification ---- */
enum cfgdoc_result {
	CFGDOC_OK = 0,
	CFGDOC_MALFORMED,     /* not a compact JWS, or too large */
	CFGDOC_BAD_ALG,       /* header alg other than ES256 */
	CFGDOC_UNKNOWN_KID,   /* kid missing or not among the keys trusted */
	CFGDOC_BAD_SIGNATURE,
	CFGDOC_BAD_ISSUER,
	CFGDOC_WRONG_AUDIENCE,
	CFGDOC_NOT_YET_VALID,
	CFGDOC_EXPIRED,
	CFGDOC_ROLLBACK,      /* ver not greater than the version in use */
	CFGDOC_BAD_CONTENT,
	CFGDOC__COUNT
};
extern const char *const cfgdoc_result_names[CFGDOC__COUNT];

struct cfgdoc_verify_opts {
	const char *issuer;
	const char *region;
	/* NULL: a regional document, aud `region`. A cell name: a cell
	 * document, aud "cell:<cell>", whose `cell` claim must name this cell
	 * in `region` (otherwise CFGDOC_WRONG_AUDIENCE; no claim at all is
	 * CFGDOC_BAD_CONTENT). Not used by cfgdoc_verify_routes. */
	const char *cell;
	int64_t now;              /* unix seconds */
	int64_t skew;             /* seconds allowed on nbf and exp */
	int64_t min_version;      /* the document's ver must be greater */
	int allow_expired;        /* for a cached document at start: report, do not refuse */
	size_t max_bytes;
	/* The caller keeps the token's bytes itself (to cache them): the
	 * document holds no copy (token NULL). A million tenants' document is
	 * 380 MB of text the state in use never reads again. */
	int no_token;
	/* Called every CFGDOC_PAUSE_EVERY records while a document's records
	 * are hashed and parsed, and between the JWS_PACE_BYTES pieces of its
	 * payload's decode and its signature's hash (seconds in all at a
	 * million tenants), or NULL: a caller sharing its cores with requests
	 * yields there, so that they wait behind this work for a fraction of a
	 * millisecond at most. */
	void (*pause)(void);
};
#define CFGDOC_PAUSE_EVERY 128

/* Verifies `token` in this order: header alg exactly ES256 and kid in the
 * trust bundle (before any signature work); signature; iss; aud; nbf/exp;
 * ver; content. On CFGDOC_OK, *out is the document (caller cfgdoc_free()s),
 * holding a copy of the token. Otherwise `detail` says why. */
enum cfgdoc_result cfgdoc_verify(const char *token, size_t len, const struct cfgdoc_trust *trust,
                                 const struct cfgdoc_verify_opts *o, struct cfgdoc **out,
                                 char *detail, size_t detail_len) __attribute__((warn_unused_result));

/* ---- the routes document (the router agent's) ---- */
struct cfgdoc_route_cell {
	char name[64];
	char status[16];
	char kind[16];
};

struct cfgdoc_route {
	char key[25];         /* key id, 24 hex */
	uint32_t cell;        /* index into cells */
};

struct cfgdoc_routes {
	int64_t ver, iat, nbf, exp;
	char jti[65], kid[64];
	char region[33];
	struct cfgdoc_route_cell *cells;
	size_t ncells;
	struct cfgdoc_route *routes;           /* in the document's order; no key twice */
	size_t nroutes;
	char *token;                           /* the verified text, for the cache */
	size_t token_len;
};

/* Verifies a routes document with the checks of cfgdoc_verify (alg pinned,
 * kid, signature, iss, nbf/exp with o->skew, ver above o->min_version; the
 * same order, results and size bound), aud "routes:<o->region>", fmt
 * CFGDOC_FMT, kind CFGDOC_KIND_ROUTES, the `region` claim equal to
 * o->region, `cells` 1 to CFGDOC_ROUTES_MAX_CELLS entries [name, status,
 * kind] with valid, distinct cell names, and every route record
 * "<24 hex>|<cell>;" naming a cell of `cells`, no key id twice
 * (CFGDOC_BAD_CONTENT otherwise). On CFGDOC_OK, *out is the document
 * (caller cfgdoc_routes_free()s). */
#define CFGDOC_ROUTES_MAX_CELLS 1000
enum cfgdoc_result cfgdoc_verify_routes(const char *token, size_t len,
                                        const struct cfgdoc_trust *trust,
                                        const struct cfgdoc_verify_opts *o,
                                        struct cfgdoc_routes **out, char *detail,
                                        size_t detail_len) __attribute__((warn_unused_result));
void cfgdoc_routes_free(struct cfgdoc_routes *r);

/* ---- delta documents and the state digest ----
 *
 * A delta document (kind "delta") takes a data plane from the state of
 * version base_ver to the state of version ver. Its claims are those of a
 * full document with three changes:
 *   kind      "delta"
 *   base_ver  the version of the state it applies to, and only to it
 *   upsert    instead of tenants: the records (same grammar) of every
 *             tenant that changed since base_ver and is in the document;
 *             each replaces the tenant's whole record (its keys with it)
 *   remove    optional; "<tenant uuid>;" records: tenants no longer in
 *             the document (one the base state does not hold is no
 *             change)
 * and every other claim (region, directory, plans, cell, moved,
 * stream_rules, streams) carried whole, replacing the base's.
 *
 * Every full and delta document carries `digest`: the state digest of the
 * state it leads to (a data plane of an older build ignores the claim).
 *   digest = base64url(SHA-256("celltrail-cfgdoc-state-1\n" || C || S))
 *   C = SHA-256 of the state claims that are present among region,
 *       directory, plans, cell, moved, stream_rules and streams, as one
 *       JSON object dumped compact with sorted keys (jansson's
 *       JSON_COMPACT | JSON_SORT_KEYS);
 *   S = the sum, modulo 2^256 (32 bytes, little-endian), of SHA-256 of
 *       every tenant record, a record being the tenant's "t|...;" line and
 *       its "k|...;" lines, byte for byte as in the text.
 * The sum lets both sides update the digest with the records a delta
 * changes, without hashing the unchanged million; it detects a state that
 * differs from the intended one (the signature, not the digest, is what
 * makes the document authentic).
 *
 * How the format evolves: a reader ignores claims it does not know, so a
 * claim may be added without changing fmt; fmt rises (and every reader of
 * an older build refuses the document and keeps what it has) only for a
 * change that an older reader would misread: a claim whose meaning
 * changes, a record grammar that changes, a kind an older reader would
 * take for one it knows. A new kind (like "delta") is only sent to a
 * reader that asked for it. */
#define CFGDOC_KIND_DELTA "delta"
#define CFGDOC_DIGEST_LEN 43   /* base64url of 32 bytes, no padding */

/* SHA-256 of one tenant record (`len` bytes of text). */
void cfgdoc_record_hash(const char *rec, size_t len, unsigned char out[32]);
void cfgdoc_sum_add(struct cfgdoc_sum *s, const unsigned char h[32]);
void cfgdoc_sum_sub(struct cfgdoc_sum *s, const unsigned char h[32]);
/* The digest claim of a state whose claims are `claims` (only the state
 * claims named above are read) and whose records sum to `sum`. Returns 0,
 * or -1 when out of memory. */
int cfgdoc_state_digest(const json_t *claims, const struct cfgdoc_sum *sum,
                        char out[CFGDOC_DIGEST_LEN + 1]) __attribute__((warn_unused_result));
/* Calls fn(record, len, arg) for each tenant record of a tenants or upsert
 * text, in order; stops at the first non-zero return and returns it. Text
 * before the first "t|" line (none in a well-formed text) is no record. */
int cfgdoc_each_record(const char *text, size_t len,
                       int (*fn)(const char *rec, size_t len, void *arg), void *arg);

/* Turns the claims of a full document (cfgdoc_claims) into those of a
 * delta: kind "delta", base_ver, remove (NULL or "" for none) and digest.
 * The upsert text is signed with cfgdoc_sign_text(key, claims, "upsert",
 * text). Returns 0, or -1 when out of memory or an argument is invalid. */
int cfgdoc_delta_claims(json_t *claims, int64_t base_ver, const char *remove, const char *digest)
	__attribute__((warn_unused_result));

/* Verifies a document that is either full or a delta, as cfgdoc_verify
 * does, with `state` the state in use (NULL: none). A full document gives
 * a new state. A delta is refused unless `state` is exactly the state of
 * its base_ver (CFGDOC_BAD_CONTENT, "base"): it gives a new state layered
 * on state's (shared) full document, whose digest must equal the delta's
 * digest claim (CFGDOC_BAD_CONTENT, "digest"). *is_delta tells which. */
enum cfgdoc_result cfgdoc_verify_any(const char *token, size_t len, const struct cfgdoc_trust *trust,
                                     const struct cfgdoc_verify_opts *o, const struct cfgdoc *state,
                                     struct cfgdoc **out, int *is_delta, char *detail, size_t detail_len)
	__attribute__((warn_unused_result));

/* ---- building (control plane) ---- */
#define CFGDOC_KIND_FULL "full"

/* The claims every document carries besides its content; nbf is iat. */
struct cfgdoc_head {
	const char *iss, *aud, *jti;
	int64_t iat, exp, ver;
};
/* The claims of a full document but "tenants": `head`, fmt CFGDOC_FMT and
 * kind CFGDOC_KIND_FULL, the region's own record taken from `region`
 * (borrowed: its name, display_name, endpoint_url, status and wave), and
 * `directory` and `plans` (stolen) as built by
 * cfgdoc_directory_add() and cfgdoc_plans_add(). Returns a new object, or
 * NULL when a member is missing or memory ran out. */
json_t *cfgdoc_claims(const struct cfgdoc_head *head, const json_t *region, json_t *directory,
                      json_t *plans);
/* Appends one region to a directory claim (from json_array()). Returns 0 or -1. */
int cfgdoc_directory_add(json_t *directory, const char *name, const char *endpoint_url,
                         const char *status) __attribute__((warn_unused_result));
/* Adds plan `id` to a plans claim (from json_object()). Returns 0 or -1. */
int cfgdoc_plans_add(json_t *plans, const char *id, int64_t rate, int64_t burst, int64_t quota,
                     int64_t retention_days) __attribute__((warn_unused_result));
/* Appends one tenant line / one key line to `b`. Returns 0, or -1 when a
 * field cannot be represented (the caller has a bug). */
int cfgdoc_add_tenant(struct buf *b, const char *id, const char *slug, const char *status,
                      const char *plan);
int cfgdoc_add_key(struct buf *b, const char *id, const unsigned char sha256[32], int write,
                   int read, int64_t expires);
/* The same with the digest already in base64url (43 characters). */
int cfgdoc_add_key_b64(struct buf *b, const char *id, const char *sha256_b64url, int write,
                       int read, int64_t expires);
/* Appends one record of the `moved` claim to `b`. Returns 0, or -1 when
 * the key id or the region name is not valid. */
int cfgdoc_add_moved(struct buf *b, const char *key_id, const char *region);
/* Appends one route line of a routes document to `b`. Returns 0, or -1
 * when the key id or the cell name is not valid. */
int cfgdoc_add_route(struct buf *b, const char *key_id, const char *cell);
/* Signs `claims` (borrowed; must not hold "tenants") plus the tenants text
 * with `key`. Returns the compact token (malloc'd) or NULL. */
char *cfgdoc_sign(const struct jwk *key, const json_t *claims, const char *tenants);
/* The same with the bulk text under member `member` ([a-z_]{1,32}, not in
 * `claims`): "tenants" for a full document, "routes" for a routes document. */
char *cfgdoc_sign_text(const struct jwk *key, const json_t *claims, const char *member,
                       const char *text);

#endif
