/* Fuzz target: the signed regional configuration document
 * (common/cfgdoc.c), as a data plane verifies what it pulls or finds in
 * its cache.
 *
 * A P-256 key is generated at start and trusted through a JWK set file,
 * loaded with cfgdoc_trust_load(); its kid is then pinned to "fuzz" (in
 * the bundle and in the signing key alike) so that committed seeds can
 * name it. The bits of the first input byte choose the mode:
 *   bit 0 clear: the rest is the token text, verified as received; this
 *     reaches the header, the kid lookup and the signature check.
 *   bit 0 set: the rest is "<claims JSON>\n<tenants text>" (split at the
 *     last newline); it is signed with the trusted key by cfgdoc_sign()
 *     and then verified, so the claim checks and the tenants parser behind
 *     the signature are reached.
 *   bit 1 (signed mode): the claims the input lacks are filled in with
 *     those of a valid document.
 *   bit 2: the verifier allows expired documents (as at start-up).
 * The seeds use 'P' (token), 'T' (token, expired allowed), 'Q' (signed as
 * given), 'S' (signed, completed) and 'W' (signed, completed, expired
 * allowed).
 *
 * Invariants: a result and its document agree; a document signed here is
 * never refused for its signature, alg or kid, and its claim checks give
 * the result they must, in their order; a document accepted is
 * consistent (every tenant and key found by its id, indexes in range, a
 * valid id, slug, status, plan and scopes each), holds every record of its
 * tenants text, and, written again with cfgdoc_add_tenant() and
 * cfgdoc_add_key(), signs and verifies to the same tenants and keys. */
#include "buf.h"
#include "cfgdoc.h"
#include "fuzz.h"
#include "fuzz_trust.h"
#include "jwk.h"
#include "names.h"

#define ISS "celltrail-control-plane"
#define REGION "us"
#define NOW INT64_C(1800000000)
#define SKEW 60
#define MIN_VERSION 5
#define MAX_BYTES (1u << 20)

static struct jwk key;
static struct cfgdoc_trust trust;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_trust_init(&key, &trust);
	snprintf(key.kid, sizeof key.kid, "fuzz");
	snprintf(trust.keys[0].kid, sizeof trust.keys[0].kid, "fuzz");
	return 0;
}

static struct cfgdoc_verify_opts options(int allow_expired)
{
	struct cfgdoc_verify_opts o = { .issuer = ISS, .region = REGION, .now = NOW, .skew = SKEW,
		                            .min_version = MIN_VERSION, .allow_expired = allow_expired,
		                            .max_bytes = MAX_BYTES };
	return o;
}

static enum cfgdoc_result verify(const char *tok, size_t len, int allow_expired, struct cfgdoc **d)
{
	struct cfgdoc_verify_opts o = options(allow_expired);
	char detail[512];
	memset(detail, 0x5a, sizeof detail);
	*d = (struct cfgdoc *)&trust; /* must be overwritten */
	enum cfgdoc_result r = cfgdoc_verify(tok, len, &trust, &o, d, detail, sizeof detail);
	CHECK((unsigned)r < CFGDOC__COUNT, "result %d", (int)r);
	CHECK((r == CFGDOC_OK) == (*d != NULL), "result %s with document %p", cfgdoc_result_names[r],
	      (void *)*d);
	CHECK(memchr(detail, '\0', sizeof detail) && detail[0], "no detail for %s", cfgdoc_result_names[r]);
	return r;
}

static void check_doc(const struct cfgdoc *d, const char *tok, size_t len)
{
	CHECK(d->token_len == len && !memcmp(d->token, tok, len) && d->token[len] == '\0',
	      "the document does not keep the token");
	CHECK(!strcmp(d->self.name, REGION), "document of region '%s' accepted", d->self.name);
	CHECK(d->ver > MIN_VERSION && d->nbf <= NOW + SKEW, "ver %lld, nbf %lld accepted",
	      (long long)d->ver, (long long)d->nbf);
	CHECK(!strcmp(d->kid, "fuzz"), "kid '%s'", d->kid);
	CHECK(d->tenant_cap >= 2 * d->ntenants && !(d->tenant_cap & (d->tenant_cap - 1)) &&
	      d->key_cap >= 2 * d->nkeys && !(d->key_cap & (d->key_cap - 1)),
	      "tables of %zu and %zu slots for %zu tenants and %zu keys", d->tenant_cap, d->key_cap,
	      d->ntenants, d->nkeys);
	for (size_t i = 0; i < d->ndir; i++) {
		const struct cfgdoc_region *r = cfgdoc_find_region(d, d->dir[i].name);
		CHECK(r && r <= &d->dir[i] && !strcmp(r->name, d->dir[i].name), "region %zu not found", i);
	}
	for (size_t i = 0; i < d->nplans; i++)
		CHECK(strlen(d->plans[i].id) < sizeof d->plans[i].id && d->plans[i].rate >= 0 &&
		      d->plans[i].burst >= 0 && d->plans[i].quota >= 0 && d->plans[i].retention_days >= 0,
		      "plan %zu", i);
	for (size_t i = 0; i < d->ntenants; i++) {
		const struct cfgdoc_tenant *t = &d->tenants[i];
		CHECK(name_valid_uuid(t->id) && name_valid_slug(t->slug) && strchr("asd", t->status) &&
		      t->status && t->plan < d->nplans, "tenant %zu ('%s', '%s', %c, plan %u)", i, t->id,
		      t->slug, t->status ? t->status : '0', t->plan);
		CHECK(cfgdoc_find_tenant(d, t->id) == t, "tenant '%s' is not found by its id", t->id);
	}
	for (size_t i = 0; i < d->nkeys; i++) {
		const struct cfgdoc_key *k = &d->keys[i];
		CHECK(strlen(k->id) == 24 && strspn(k->id, "0123456789abcdef") == 24, "key id '%s'", k->id);
		CHECK(k->scopes >= 1 && k->scopes <= 3 && k->expires >= 0, "key '%s': scopes %u, expires %lld",
		      k->id, k->scopes, (long long)k->expires);
		CHECK(k->tenant < d->ntenants && (i == 0 || d->keys[i - 1].tenant <= k->tenant),
		      "key '%s' belongs to tenant %u", k->id, k->tenant);
		CHECK(cfgdoc_find_key(d, k->id) == k, "key '%s' is not found by its id", k->id);
	}
	CHECK(!cfgdoc_find_key(d, "not-a-key-id") && !cfgdoc_find_tenant(d, "not-a-tenant-id"),
	      "found what is not there");
}

/* ---- mode T: the token as received ---- */

static void token_mode(const uint8_t *data, size_t size, int allow_expired)
{
	struct cfgdoc *d;
	if (verify((const char *)data, size, allow_expired, &d) == CFGDOC_OK) {
		check_doc(d, (const char *)data, size);
		cfgdoc_free(d);
	}
}

/* ---- mode S: claims and tenants signed here ---- */

static void fill(json_t *claims)
{
	json_t *valid = json_pack(
		"{ss ss sI sI sI ss sI si ss"
		" s{ss ss ss ss si}"
		" s[[sss][sss]]"
		" s{s[iiii] s[iiii]}}",
		"iss", ISS, "aud", REGION, "iat", (json_int_t)NOW, "nbf", (json_int_t)NOW - 5, "exp",
		(json_int_t)NOW + 3600, "jti", "doc-1", "ver", (json_int_t)MIN_VERSION + 1, "fmt", 1, "kind",
		"full", "region", "name", REGION, "display_name", "US", "endpoint_url",
		"https://us.example.test", "status", "active", "wave", 1, "directory", "us",
		"https://us.example.test", "active", "eu", "https://eu.example.test", "active", "plans",
		"pro", 100, 200, 1000000, 30, "free", 5, 10, 1000, 7);
	CHECK(valid, "json_pack");
	json_object_update_missing(claims, valid);
	json_decref(valid);
}

/* What the claim checks must say, in their order; -1 when they pass and
 * only the content decides (CFGDOC_OK or CFGDOC_BAD_CONTENT). */
static int expected(const json_t *c, int allow_expired)
{
	const char *iss = json_string_value(json_object_get(c, "iss"));
	const char *aud = json_string_value(json_object_get(c, "aud"));
	const json_t *iat = json_object_get(c, "iat"), *nbf = json_object_get(c, "nbf");
	const json_t *exp = json_object_get(c, "exp"), *ver = json_object_get(c, "ver");
	if (!iss || strcmp(iss, ISS))
		return CFGDOC_BAD_ISSUER;
	if (!aud || strcmp(aud, REGION))
		return CFGDOC_WRONG_AUDIENCE;
	if (!json_is_integer(iat) || !json_is_integer(nbf) || !json_is_integer(exp) || !json_is_integer(ver))
		return CFGDOC_BAD_CONTENT;
	if (json_integer_value(nbf) > NOW + SKEW)
		return CFGDOC_NOT_YET_VALID;
	if (json_integer_value(exp) <= NOW - SKEW && !allow_expired)
		return CFGDOC_EXPIRED;
	if (json_integer_value(ver) <= MIN_VERSION)
		return CFGDOC_ROLLBACK;
	return -1;
}

static const char *status_word(char s)
{
	return s == 'a' ? "active" : s == 's' ? "suspended" : "deleted";
}

/* Writes the document's tenants and keys again as the control plane
 * would, signs them with the same claims and checks they come back. */
static void rebuild(const struct cfgdoc *d, const json_t *claims, int allow_expired)
{
	struct buf b = { 0 };
	size_t k = 0;
	for (size_t i = 0; i < d->ntenants; i++)
		if (!name_valid_region(d->plans[d->tenants[i].plan].id))
			return; /* a plan id the control plane never writes */
	buf_append(&b, "", 0);
	for (size_t i = 0; i < d->ntenants; i++) {
		const struct cfgdoc_tenant *t = &d->tenants[i];
		CHECK(cfgdoc_add_tenant(&b, t->id, t->slug, status_word(t->status), d->plans[t->plan].id) == 0,
		      "tenant '%s' cannot be written again", t->id);
		for (; k < d->nkeys && d->keys[k].tenant == i; k++) {
			const struct cfgdoc_key *key_i = &d->keys[k];
			CHECK(cfgdoc_add_key(&b, key_i->id, key_i->sha256, !!(key_i->scopes & CFGDOC_SCOPE_WRITE),
			                     !!(key_i->scopes & CFGDOC_SCOPE_READ), key_i->expires) == 0,
			      "key '%s' cannot be written again", key_i->id);
		}
	}
	char *text = buf_take(&b);
	CHECK(text, "out of memory");
	char *tok = cfgdoc_sign(&key, claims, text);
	CHECK(tok, "the rewritten tenants text does not sign: %s", text);
	struct cfgdoc *d2;
	enum cfgdoc_result r = verify(tok, strlen(tok), allow_expired, &d2);
	CHECK(r == CFGDOC_OK, "the rewritten document is refused: %s", cfgdoc_result_names[r]);
	CHECK(d2->ntenants == d->ntenants && d2->nkeys == d->nkeys, "rewritten: %zu tenants, %zu keys",
	      d2->ntenants, d2->nkeys);
	for (size_t i = 0; i < d->ntenants; i++)
		CHECK(!strcmp(d->tenants[i].id, d2->tenants[i].id) &&
		      !strcmp(d->tenants[i].slug, d2->tenants[i].slug) &&
		      d->tenants[i].status == d2->tenants[i].status && d->tenants[i].plan == d2->tenants[i].plan,
		      "tenant %zu differs once rewritten", i);
	for (size_t i = 0; i < d->nkeys; i++)
		CHECK(!strcmp(d->keys[i].id, d2->keys[i].id) && !memcmp(d->keys[i].sha256, d2->keys[i].sha256, 32) &&
		      d->keys[i].scopes == d2->keys[i].scopes && d->keys[i].expires == d2->keys[i].expires &&
		      d->keys[i].tenant == d2->keys[i].tenant,
		      "key %zu differs once rewritten", i);
	cfgdoc_free(d2);
	free(tok);
	free(text);
}

static void signed_mode(const uint8_t *data, size_t size, int complete, int allow_expired)
{
	size_t nl = size;
	while (nl > 0 && data[nl - 1] != '\n')
		nl--;
	size_t clen = nl ? nl - 1 : size;
	char *tenants = fuzz_cstr(nl ? data + nl : data + size, nl ? size - nl : 0);
	json_error_t je;
	json_t *claims = json_loadb((const char *)data, clen, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(claims))
		goto out;
	if (complete)
		fill(claims);

	int clean = !json_object_get(claims, "tenants");
	for (const char *t = tenants; *t; t++)
		clean &= *t >= 0x20 && *t <= 0x7e && *t != '"' && *t != '\\';
	char *tok = cfgdoc_sign(&key, claims, tenants);
	CHECK((tok != NULL) == clean, "cfgdoc_sign %s", tok ? "signed what it must refuse" : "failed");
	if (!tok)
		goto out;

	size_t len = strlen(tok);
	struct cfgdoc *d;
	enum cfgdoc_result r = verify(tok, len, allow_expired, &d);
	CHECK(r != CFGDOC_BAD_ALG && r != CFGDOC_UNKNOWN_KID && r != CFGDOC_BAD_SIGNATURE,
	      "a document signed with the trusted key is refused: %s", cfgdoc_result_names[r]);
	CHECK(r != CFGDOC_MALFORMED || len > MAX_BYTES, "a signed document is malformed");
	int want = expected(claims, allow_expired);
	if (r != CFGDOC_MALFORMED)
		CHECK(want < 0 ? (r == CFGDOC_OK || r == CFGDOC_BAD_CONTENT) : (int)r == want,
		      "result %s where the claims give %s", cfgdoc_result_names[r],
		      want < 0 ? "ok or content" : cfgdoc_result_names[want]);
	if (r == CFGDOC_OK) {
		size_t records = 0;
		for (const char *t = tenants; *t; t++)
			records += *t == ';';
		check_doc(d, tok, len);
		CHECK(d->ntenants + d->nkeys == records, "%zu records, but %zu tenants and %zu keys", records,
		      d->ntenants, d->nkeys);
		rebuild(d, claims, allow_expired);
		cfgdoc_free(d);
	}
	free(tok);
out:
	json_decref(claims);
	free(tenants);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	int allow_expired = (data[0] >> 2) & 1;
	if (data[0] & 1)
		signed_mode(data + 1, size - 1, (data[0] >> 1) & 1, allow_expired);
	else
		token_mode(data + 1, size - 1, allow_expired);
	return 0;
}
