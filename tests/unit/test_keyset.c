/* The signed key set (common/keyset.c) and the store that follows it
 * (data-plane/trust_store.c): every refusal a holder must make, and the
 * chain a rotation walks (stage, rotate, retire) with a holder that saw
 * each step, one that missed steps, and a restart from the file. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../data-plane/config_store.h"
#include "../../data-plane/trust_store.c"
#include "jansson.h"
#include "jws.h"
#include "keyset.h"
#include "secret.h"
#include "unit.h"

#define ISS "celltrail-control-plane"

static struct jwk k1, k2, k3, evil;

static void keys_setup(void)
{
	ck_assert_int_eq(jwk_generate(&k1), 0);
	ck_assert_int_eq(jwk_generate(&k2), 0);
	ck_assert_int_eq(jwk_generate(&k3), 0);
	ck_assert_int_eq(jwk_generate(&evil), 0);
}

static void keys_teardown(void)
{
	jwk_clear(&k1);
	jwk_clear(&k2);
	jwk_clear(&k3);
	jwk_clear(&evil);
}

/* A trust of the public halves of `n` keys. */
static void trust_of(struct cfgdoc_trust *t, const struct jwk *const *keys, size_t n)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, jwk_public_json(keys[i]));
	json_t *set = json_pack("{so}", "keys", arr);
	char err[200];
	ck_assert_int_eq(cfgdoc_trust_from_json(set, "test", t, err, sizeof err), 0);
	json_decref(set);
}

/* A set of `n` keys at `ver`, signed by each of them. */
static char *set_of(const struct jwk *const *keys, size_t n, int64_t ver)
{
	struct jwk arr[8];
	for (size_t i = 0; i < n; i++)
		arr[i] = *keys[i]; /* shallow: keyset_sign only reads */
	char *doc = keyset_sign(arr, n, ver, 1700000000, ISS);
	ck_assert_ptr_nonnull(doc);
	return doc;
}

static enum keyset_result check(const char *doc, const struct cfgdoc_trust *t, int64_t held, int64_t *ver,
                                size_t *nkeys)
{
	struct cfgdoc_trust out;
	char err[300];
	enum keyset_result r = keyset_verify(doc, strlen(doc), t, held, ISS, &out, ver, err, sizeof err);
	if (r == KEYSET_OK) {
		*nkeys = out.n;
		cfgdoc_trust_free(&out);
	}
	return r;
}

START_TEST(accepted_by_a_trusted_signer)
{
	const struct jwk *only1[] = { &k1 }, *both[] = { &k1, &k2 };
	struct cfgdoc_trust t;
	int64_t ver = 0;
	size_t n = 0;
	trust_of(&t, only1, 1);
	char *doc = set_of(both, 2, 5);
	ck_assert_int_eq(check(doc, &t, 0, &ver, &n), KEYSET_OK);
	ck_assert_int_eq(ver, 5);
	ck_assert_uint_eq(n, 2);
	/* The version held: nothing to do; an older one: a rollback. */
	ck_assert_int_eq(check(doc, &t, 5, &ver, &n), KEYSET_SAME);
	ck_assert_int_eq(check(doc, &t, 6, &ver, &n), KEYSET_OLD);
	free(doc);
	cfgdoc_trust_free(&t);
}
END_TEST

/* Signed only by keys not trusted here (an unknown key, a key retired
 * from the set held): refused, whatever it holds. */
START_TEST(refused_unless_a_trusted_key_signs)
{
	const struct jwk *only2[] = { &k2 }, *by_evil[] = { &evil }, *by_k1[] = { &k1 }, *k2_evil[] = { &k2, &evil };
	struct cfgdoc_trust t;
	int64_t ver = 0;
	size_t n = 0;
	trust_of(&t, only2, 1);
	char *doc = set_of(by_evil, 1, 9);
	ck_assert_int_eq(check(doc, &t, 1, &ver, &n), KEYSET_UNTRUSTED);
	free(doc);
	doc = set_of(by_k1, 1, 9); /* k1: retired from what this holder trusts */
	ck_assert_int_eq(check(doc, &t, 1, &ver, &n), KEYSET_UNTRUSTED);
	free(doc);
	/* One trusted signature among others suffices. */
	doc = set_of(k2_evil, 2, 9);
	ck_assert_int_eq(check(doc, &t, 1, &ver, &n), KEYSET_OK);
	free(doc);
	cfgdoc_trust_free(&t);
}
END_TEST

/* A signature that does not cover these bytes, a header other than
 * ES256 / the key set's typ, another issuer, and documents that are not
 * the format: each refused. */
START_TEST(refused_when_altered_or_malformed)
{
	const struct jwk *only1[] = { &k1 }, *both[] = { &k1, &k2 };
	struct cfgdoc_trust t;
	int64_t ver = 0;
	size_t n = 0;
	trust_of(&t, only1, 1);
	char *doc = set_of(both, 2, 3);
	json_t *j = json_loads(doc, 0, NULL);
	const char *payload = json_string_value(json_object_get(j, "payload"));
	const char *prot = json_string_value(json_object_get(json_array_get(json_object_get(j, "signatures"), 0), "protected"));

	/* The payload of another set, under this set's signatures. */
	const struct jwk *one[] = { &k1 };
	char *other = set_of(one, 1, 3);
	json_t *o = json_loads(other, 0, NULL);
	json_t *spliced = json_deep_copy(j);
	json_object_set(spliced, "payload", json_object_get(o, "payload"));
	char *text = json_dumps(spliced, 0);
	ck_assert_int_eq(check(text, &t, 0, &ver, &n), KEYSET_UNTRUSTED);
	free(text);
	json_decref(spliced);

	/* Headers: alg none, another typ (a configuration document's key
	 * must not vouch for sets by a signature made for something else). */
	static const char *const headers[] = { "{\"alg\":\"none\",\"kid\":\"%s\",\"typ\":\"celltrail-keyset\"}",
		                                   "{\"alg\":\"ES256\",\"kid\":\"%s\",\"typ\":\"JWT\"}",
		                                   "{\"alg\":\"ES256\",\"kid\":\"%s\"}",
		                                   "{\"alg\":\"ES256\",\"kid\":\"%s\",\"typ\":\"celltrail-keyset\",\"crit\":[\"x\"]}" };
	for (size_t h = 0; h < sizeof headers / sizeof headers[0]; h++) {
		char hdr[300], claims[4096];
		snprintf(hdr, sizeof hdr, headers[h], k1.kid);
		long cl = secret_unb64url(payload, strlen(payload), claims, sizeof claims - 1);
		ck_assert_int_gt(cl, 0);
		char *tok = jws_es256_sign(&k1, hdr, strlen(hdr), claims, (size_t)cl);
		char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');
		*d1 = *d2 = '\0';
		json_t *forged = json_pack("{ss s[{ss ss}]}", "payload", d1 + 1, "signatures", "protected", tok, "signature", d2 + 1);
		text = json_dumps(forged, 0);
		ck_assert_msg(check(text, &t, 0, &ver, &n) == KEYSET_UNTRUSTED, "header %s accepted", hdr);
		free(text);
		json_decref(forged);
		free(tok);
	}
	(void)prot;

	/* Another issuer. */
	struct jwk arr[1] = { k1 };
	char *wrong = keyset_sign(arr, 1, 4, 1, "someone-else");
	ck_assert_int_eq(check(wrong, &t, 0, &ver, &n), KEYSET_WRONG_ISSUER);
	free(wrong);

	/* Not the format. */
	static const char *const bad[] = { "", "null", "[]", "{}", "{\"payload\":\"e30\"}",
		                               "{\"payload\":\"e30\",\"signatures\":[]}",
		                               "{\"payload\":1,\"signatures\":[{}]}",
		                               "{\"payload\":\"!!!\",\"signatures\":[{\"protected\":\"e30\",\"signature\":\"AA\"}]}" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(check(bad[i], &t, 0, &ver, &n) == KEYSET_MALFORMED, "'%s' not refused as malformed", bad[i]);
	/* Claims without a version of at least 1, or with no keys. */
	static const char *const claims[] = { "{\"iss\":\"" ISS "\",\"iat\":1,\"keys\":[]}",
		                                  "{\"iss\":\"" ISS "\",\"ver\":0,\"iat\":1,\"keys\":[]}",
		                                  "{\"iss\":\"" ISS "\",\"ver\":2,\"iat\":1,\"keys\":[]}",
		                                  "{\"iss\":\"" ISS "\",\"ver\":2,\"keys\":[]}" };
	for (size_t i = 0; i < sizeof claims / sizeof claims[0]; i++) {
		char hdr[200];
		snprintf(hdr, sizeof hdr, "{\"alg\":\"ES256\",\"kid\":\"%s\",\"typ\":\"celltrail-keyset\"}", k1.kid);
		char *tok = jws_es256_sign(&k1, hdr, strlen(hdr), claims[i], strlen(claims[i]));
		char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');
		*d1 = *d2 = '\0';
		json_t *f = json_pack("{ss s[{ss ss}]}", "payload", d1 + 1, "signatures", "protected", tok, "signature", d2 + 1);
		text = json_dumps(f, 0);
		ck_assert_msg(check(text, &t, 0, &ver, &n) == KEYSET_MALFORMED, "claims %s accepted", claims[i]);
		free(text);
		json_decref(f);
		free(tok);
	}
	/* The bounds: the largest accepted size, one byte more refused unread. */
	char *big = malloc(KEYSET_MAX_BYTES + 2);
	memset(big, ' ', KEYSET_MAX_BYTES + 1);
	memcpy(big, doc, strlen(doc));
	big[KEYSET_MAX_BYTES] = '\0';
	ck_assert_int_eq(check(big, &t, 0, &ver, &n), KEYSET_OK);
	big[KEYSET_MAX_BYTES] = ' ';
	big[KEYSET_MAX_BYTES + 1] = '\0';
	ck_assert_int_eq(check(big, &t, 0, &ver, &n), KEYSET_MALFORMED);
	free(big);
	json_decref(o);
	free(other);
	json_decref(j);
	free(doc);
	cfgdoc_trust_free(&t);
}
END_TEST

/* At most KEYSET_MAX_SIGNATURES signatures; a set of that many signers
 * is made and accepted, one more is refused. */
START_TEST(signatures_bounded)
{
	struct jwk many[KEYSET_MAX_SIGNATURES + 1];
	for (int i = 0; i <= KEYSET_MAX_SIGNATURES; i++)
		ck_assert_int_eq(jwk_generate(&many[i]), 0);
	const struct jwk *first[] = { &many[0] };
	struct cfgdoc_trust t;
	int64_t ver = 0;
	size_t n = 0;
	trust_of(&t, first, 1);
	char *doc = keyset_sign(many, KEYSET_MAX_SIGNATURES, 2, 1, ISS);
	ck_assert_ptr_nonnull(doc);
	ck_assert_int_eq(check(doc, &t, 0, &ver, &n), KEYSET_OK);
	ck_assert_uint_eq(n, KEYSET_MAX_SIGNATURES);
	free(doc);
	ck_assert_ptr_null(keyset_sign(many, KEYSET_MAX_SIGNATURES + 1, 2, 1, ISS));
	/* Made by hand: 17 signatures are refused. */
	doc = keyset_sign(many, KEYSET_MAX_SIGNATURES, 2, 1, ISS);
	json_t *j = json_loads(doc, 0, NULL);
	json_t *sigs = json_object_get(j, "signatures");
	json_array_append(sigs, json_array_get(sigs, 0));
	char *text = json_dumps(j, 0);
	ck_assert_int_eq(check(text, &t, 0, &ver, &n), KEYSET_MALFORMED);
	free(text);
	json_decref(j);
	free(doc);
	cfgdoc_trust_free(&t);
	for (int i = 0; i <= KEYSET_MAX_SIGNATURES; i++)
		jwk_clear(&many[i]);
}
END_TEST

/* Runs tests/unit/keyset_interop.py with `args`; its output (malloc'd)
 * or NULL when it failed. */
static char *interop(const char *args)
{
	char cmd[4096];
	snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/unit/keyset_interop.py %s", args);
	FILE *p = popen(cmd, "r");
	if (!p)
		return NULL;
	char *out = calloc(1, KEYSET_MAX_BYTES);
	size_t n = fread(out, 1, KEYSET_MAX_BYTES - 1, p);
	out[n] = '\0';
	if (pclose(p) != 0) {
		free(out);
		return NULL;
	}
	out[strcspn(out, "\n")] = '\0';
	return out;
}

static void pem_file(const struct jwk *k, char path[64])
{
	snprintf(path, 64, "/tmp/ct-keyset-XXXXXX");
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, k->private_pem, strlen(k->private_pem)), (int)strlen(k->private_pem));
	close(fd);
}

/* Any standard JOSE library verifies the sets we sign, and we verify the
 * sets it signs: python3-jwcrypto, written apart from ours. */
START_TEST(interoperates_with_jwcrypto)
{
	char p1[64], p2[64], p3[64], set[64], args[512], want[300];
	pem_file(&k1, p1);
	pem_file(&k2, p2);
	pem_file(&k3, p3);
	const struct jwk *both[] = { &k1, &k2 };
	char *doc = set_of(both, 2, 9);
	snprintf(set, sizeof set, "/tmp/ct-keyset-XXXXXX");
	int fd = mkstemp(set);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, doc, strlen(doc)), (int)strlen(doc));
	close(fd);
	free(doc);
	snprintf(args, sizeof args, "verify %s %s %s", set, p1, p2);
	char *out = interop(args);
	ck_assert_msg(out, "jwcrypto did not verify our key set");
	snprintf(want, sizeof want, "9 %s %s", strcmp(k1.kid, k2.kid) < 0 ? k1.kid : k2.kid,
	         strcmp(k1.kid, k2.kid) < 0 ? k2.kid : k1.kid);
	ck_assert_str_eq(out, want);
	free(out);
	/* A key that did not sign it: jwcrypto refuses too. */
	snprintf(args, sizeof args, "verify %s %s 2>/dev/null", set, p3);
	ck_assert_ptr_null(interop(args));

	snprintf(args, sizeof args, "sign 11 %s %s", p1, p3);
	char *theirs = interop(args);
	ck_assert_msg(theirs, "jwcrypto did not sign");
	const struct jwk *only1[] = { &k1 }, *only2[] = { &k2 };
	struct cfgdoc_trust t;
	int64_t ver = 0;
	size_t n = 0;
	trust_of(&t, only1, 1);
	ck_assert_int_eq(check(theirs, &t, 9, &ver, &n), KEYSET_OK);
	ck_assert_int_eq(ver, 11);
	ck_assert_uint_eq(n, 2);
	cfgdoc_trust_free(&t);
	trust_of(&t, only2, 1);
	ck_assert_int_eq(check(theirs, &t, 9, &ver, &n), KEYSET_UNTRUSTED);
	cfgdoc_trust_free(&t);
	free(theirs);
	unlink(p1);
	unlink(p2);
	unlink(p3);
	unlink(set);
}
END_TEST

static char dir[256], bundle[300];

static void store_setup(void)
{
	keys_setup();
	snprintf(dir, sizeof dir, "/tmp/celltrail-keyset-%d-XXXXXX", (int)getpid());
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(bundle, sizeof bundle, "%s/bundle.json", dir);
	json_t *set = json_pack("{s[o]}", "keys", jwk_public_json(&k1));
	ck_assert_int_eq(json_dump_file(set, bundle, 0), 0);
	json_decref(set);
}

static void store_teardown(void)
{
	char path[400];
	snprintf(path, sizeof path, "%s/" DP_KEYSET_FILE, dir);
	unlink(path);
	unlink(bundle);
	rmdir(dir);
	keys_teardown();
}

static int trusts(struct trust_store *s, const struct jwk *k)
{
	const struct cfgdoc_trust *t = trust_store_get(s);
	int yes = cfgdoc_trust_find(t, k->kid) != NULL;
	trust_store_put(s, t);
	return yes;
}

static enum keyset_result apply(struct trust_store *s, const struct jwk *const *keys, size_t n, int64_t ver)
{
	char err[300];
	char *doc = set_of(keys, n, ver);
	enum keyset_result r = trust_store_apply(s, doc, strlen(doc), err, sizeof err);
	free(doc);
	return r;
}

/* The rotation's chain, as the control plane signs it (each set by every
 * key it publishes): staged {k1,k2}, rotated {k2,k1}, retired {k2}. A
 * holder that saw each step follows; one that missed the staging still
 * follows (the rotated set is signed by k1 too); after the retirement a
 * set by k1 alone is refused; a restart starts from the file. */
START_TEST(store_follows_a_rotation)
{
	char err[300];
	struct trust_store *s = trust_store_open(bundle, dir, ISS, err, sizeof err);
	ck_assert_msg(s, "%s", err);
	ck_assert_int_eq(trust_store_version(s), 0);
	ck_assert(trusts(s, &k1) && !trusts(s, &k2));

	const struct jwk *staged[] = { &k1, &k2 }, *rotated[] = { &k2, &k1 }, *retired[] = { &k2 },
	                 *by_k1[] = { &k1, &k3 }, *by_evil[] = { &evil };
	/* A holder that missed the staging. */
	struct trust_store *late = trust_store_open(bundle, "/nonexistent-dir", ISS, err, sizeof err);
	ck_assert_ptr_nonnull(late);

	ck_assert_int_eq(apply(s, staged, 2, 2), KEYSET_OK);
	ck_assert(trusts(s, &k1) && trusts(s, &k2));
	ck_assert_int_eq(apply(s, staged, 2, 2), KEYSET_SAME);
	ck_assert_int_eq(apply(s, rotated, 2, 3), KEYSET_OK);
	ck_assert_int_eq(apply(s, retired, 1, 4), KEYSET_OK);
	ck_assert(!trusts(s, &k1) && trusts(s, &k2));
	ck_assert_int_eq(trust_store_version(s), 4);
	/* The retired key vouches for nothing now, an unknown one never did,
	 * and an older version is a rollback. */
	ck_assert_int_eq(apply(s, by_k1, 2, 5), KEYSET_UNTRUSTED);
	ck_assert_int_eq(apply(s, by_evil, 1, 5), KEYSET_UNTRUSTED);
	ck_assert_int_eq(apply(s, rotated, 2, 3), KEYSET_OLD);
	ck_assert(!trusts(s, &k3) && !trusts(s, &evil));

	/* The late holder: the rotated set (signed by k1 as well) is taken,
	 * though its file cannot be written: refused then, keys unchanged. */
	ck_assert_int_eq(apply(late, rotated, 2, 3), KEYSET_MALFORMED);
	ck_assert(!trusts(late, &k2));
	trust_store_free(late);

	/* A restart: the file, not the bundle. */
	trust_store_free(s);
	s = trust_store_open(bundle, dir, ISS, err, sizeof err);
	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(trust_store_version(s), 4);
	ck_assert(!trusts(s, &k1) && trusts(s, &k2));
	/* A file others may write decides nothing: the bundle again. */
	char path[400];
	snprintf(path, sizeof path, "%s/" DP_KEYSET_FILE, dir);
	trust_store_free(s);
	ck_assert_int_eq(chmod(path, 0666), 0);
	s = trust_store_open(bundle, dir, ISS, err, sizeof err);
	ck_assert_int_eq(trust_store_version(s), 0);
	ck_assert(trusts(s, &k1) && !trusts(s, &k2));
	trust_store_free(s);
	ck_assert_int_eq(chmod(path, 0644), 0);
	s = trust_store_open(bundle, dir, ISS, err, sizeof err);
	ck_assert_int_eq(trust_store_version(s), 4);
	/* A damaged file: the bundle again, said in the log. */
	FILE *f = fopen(path, "w");
	fputs("{\"payload\":", f);
	fclose(f);
	trust_store_free(s);
	s = trust_store_open(bundle, dir, ISS, err, sizeof err);
	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(trust_store_version(s), 0);
	ck_assert(trusts(s, &k1));
	trust_store_free(s);
}
END_TEST

/* A reference taken before a change stays whole after it. */
START_TEST(store_reference_outlives_a_change)
{
	char err[300];
	struct trust_store *s = trust_store_open(bundle, dir, ISS, err, sizeof err);
	ck_assert_ptr_nonnull(s);
	const struct cfgdoc_trust *before = trust_store_get(s);
	const struct jwk *staged[] = { &k1, &k2 }, *retired[] = { &k2 };
	ck_assert_int_eq(apply(s, staged, 2, 2), KEYSET_OK);
	ck_assert_int_eq(apply(s, retired, 1, 3), KEYSET_OK);
	ck_assert_uint_eq(before->n, 1);
	ck_assert_str_eq(before->keys[0].kid, k1.kid);
	trust_store_put(s, before);
	trust_store_free(s);
}
END_TEST

Suite *keyset_suite(void)
{
	Suite *s = suite_create("keyset");
	TCase *tc = tcase_create("verify");
	tcase_add_checked_fixture(tc, keys_setup, keys_teardown);
	tcase_add_test(tc, accepted_by_a_trusted_signer);
	tcase_add_test(tc, refused_unless_a_trusted_key_signs);
	tcase_add_test(tc, refused_when_altered_or_malformed);
	tcase_add_test(tc, signatures_bounded);
	tcase_add_test(tc, interoperates_with_jwcrypto);
	suite_add_tcase(s, tc);
	TCase *st = tcase_create("store");
	tcase_add_checked_fixture(st, store_setup, store_teardown);
	tcase_add_test(st, store_follows_a_rotation);
	tcase_add_test(st, store_reference_outlives_a_change);
	suite_add_tcase(s, st);
	return s;
}
