/* Sealed secrets (JWE ECDH-ES + A256GCM) over OpenSSL 3. */
#include "seal.h"

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secret.h"

#define IV_LEN 12
#define TAG_LEN 16
#define CEK_LEN 32
#define CTY "celltrail-secret"

/* A P-256 public key from its affine coordinates (32 bytes each), checked
 * to be on the curve: an ephemeral key off the curve would leak bits of
 * the region's private key through ECDH (invalid-curve attack). */
static EVP_PKEY *pub_from_xy(const unsigned char xy[64])
{
	unsigned char pub[65];
	EVP_PKEY *pkey = NULL, *ret = NULL;
	EVP_PKEY_CTX *ctx = NULL, *chk = NULL;
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;

	pub[0] = 0x04;
	memcpy(pub + 1, xy, 64);
	if (!bld || !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub) ||
	    !(params = OSSL_PARAM_BLD_to_param(bld)) || !(ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) ||
	    EVP_PKEY_fromdata_init(ctx) != 1 || EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
		goto out;
	if (!(chk = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL)) || EVP_PKEY_public_check(chk) != 1)
		goto out;
	ret = pkey;
	pkey = NULL;
out:
	EVP_PKEY_CTX_free(chk);
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	return ret;
}

static EVP_PKEY *pem_key(const char *pem, int private)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k = NULL;
	if (b)
		k = private ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
	BIO_free(b);
	return k;
}

/* The content key: ECDH between `mine` and `peer`, then the Concat KDF of
 * RFC 7518 §4.6.2 (OtherInfo = AlgorithmID || PartyUInfo || PartyVInfo ||
 * SuppPubInfo, each length-prefixed but the last, the key length in bits). */
static int derive_cek(EVP_PKEY *mine, EVP_PKEY *peer, unsigned char cek[CEK_LEN])
{
	static const unsigned char other[] = {
		0, 0, 0, 7, 'A', '2', '5', '6', 'G', 'C', 'M', /* AlgorithmID */
		0, 0, 0, 0,                                     /* PartyUInfo: empty */
		0, 0, 0, 0,                                     /* PartyVInfo: empty */
		0, 0, 1, 0,                                     /* keydatalen 256 */
	};
	unsigned char z[32];
	size_t zlen = sizeof z;
	EVP_PKEY_CTX *dctx = EVP_PKEY_CTX_new_from_pkey(NULL, mine, NULL);
	EVP_KDF *kdf = NULL;
	EVP_KDF_CTX *kctx = NULL;
	int rc = -1;

	if (!dctx || EVP_PKEY_derive_init(dctx) != 1 || EVP_PKEY_derive_set_peer(dctx, peer) != 1 ||
	    EVP_PKEY_derive(dctx, z, &zlen) != 1 || zlen != sizeof z)
		goto out;
	if (!(kdf = EVP_KDF_fetch(NULL, "SSKDF", NULL)) || !(kctx = EVP_KDF_CTX_new(kdf)))
		goto out;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, z, zlen),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)other, sizeof other),
		OSSL_PARAM_construct_end(),
	};
	if (EVP_KDF_derive(kctx, cek, CEK_LEN, params) != 1)
		goto out;
	rc = 0;
out:
	OPENSSL_cleanse(z, sizeof z);
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	EVP_PKEY_CTX_free(dctx);
	return rc;
}

static char *b64_dup(const void *buf, size_t len)
{
	char *s = malloc(4 * ((len + 2) / 3) + 1);
	if (s)
		secret_b64url(buf, len, s);
	return s;
}

char *seal_secret(const struct jwk *to, const char *stream_id, const char *secret, size_t len)
{
	EVP_PKEY *peer = NULL, *eph = NULL;
	EVP_CIPHER_CTX *cctx = NULL;
	json_t *hdr = NULL, *pt = NULL;
	char *hjson = NULL, *h64 = NULL, *ptjson = NULL, *c64 = NULL, *out = NULL;
	unsigned char cek[CEK_LEN], iv[IV_LEN], tag[TAG_LEN], pub[65], *ct = NULL;
	char x[48], y[48], iv64[24], tag64[32];
	size_t publen = 0, ptlen = 0;
	int n;

	if (!to || !to->public_pem || !stream_id || !secret || len > SEAL_MAX_SECRET || memchr(secret, 0, len))
		return NULL;
	if (!(peer = pem_key(to->public_pem, 0)) || !(eph = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) ||
	    EVP_PKEY_get_octet_string_param(eph, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub, &publen) != 1 ||
	    publen != 65 || derive_cek(eph, peer, cek) != 0)
		goto out;
	secret_b64url(pub + 1, 32, x);
	secret_b64url(pub + 33, 32, y);
	hdr = json_pack("{ss ss ss s{ss ss ss ss} ss}", "alg", "ECDH-ES", "enc", "A256GCM", "kid", to->kid, "epk",
	                "kty", "EC", "crv", "P-256", "x", x, "y", y, "cty", CTY);
	pt = json_pack("{ss ss#}", "stream", stream_id, "secret", secret, len);
	if (!hdr || !pt || !(hjson = json_dumps(hdr, JSON_COMPACT | JSON_PRESERVE_ORDER)) ||
	    !(ptjson = json_dumps(pt, JSON_COMPACT | JSON_PRESERVE_ORDER)) ||
	    !(h64 = b64_dup(hjson, strlen(hjson))) || secret_random(iv, sizeof iv) != 0)
		goto out;
	ptlen = strlen(ptjson);
	if (!(ct = malloc(ptlen + 1)) || !(cctx = EVP_CIPHER_CTX_new()) ||
	    EVP_EncryptInit_ex(cctx, EVP_aes_256_gcm(), NULL, cek, iv) != 1 ||
	    EVP_EncryptUpdate(cctx, NULL, &n, (const unsigned char *)h64, (int)strlen(h64)) != 1 ||
	    EVP_EncryptUpdate(cctx, ct, &n, (const unsigned char *)ptjson, (int)ptlen) != 1 ||
	    EVP_EncryptFinal_ex(cctx, ct + n, &n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(cctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1 || !(c64 = b64_dup(ct, ptlen)))
		goto out;
	secret_b64url(iv, sizeof iv, iv64);
	secret_b64url(tag, sizeof tag, tag64);
	size_t total = strlen(h64) + 2 + strlen(iv64) + 1 + strlen(c64) + 1 + strlen(tag64);
	/* A value the data plane would refuse is not made at all. */
	if (total > SEAL_MAX_BYTES || !(out = malloc(total + 1)))
		goto out;
	snprintf(out, total + 1, "%s..%s.%s.%s", h64, iv64, c64, tag64);
out:
	OPENSSL_cleanse(cek, sizeof cek);
	if (ptjson) {
		OPENSSL_cleanse(ptjson, strlen(ptjson));
		free(ptjson);
	}
	if (pt) {
		/* jansson keeps its own copy of the secret: wipe it too. */
		json_t *s = json_object_get(pt, "secret");
		if (json_is_string(s))
			OPENSSL_cleanse((void *)json_string_value(s), json_string_length(s));
		json_decref(pt);
	}
	EVP_CIPHER_CTX_free(cctx);
	free(ct);
	free(c64);
	free(h64);
	free(hjson);
	json_decref(hdr);
	EVP_PKEY_free(eph);
	EVP_PKEY_free(peer);
	return out;
}

/* The five parts of a compact JWE, as offsets into `s`; 0 when `s` has
 * exactly four dots, an empty encrypted key, and is within the size. */
struct parts {
	const char *p[5];
	size_t len[5];
};

static int split(const char *s, struct parts *pt)
{
	size_t slen = strnlen(s, SEAL_MAX_BYTES + 1);
	if (slen > SEAL_MAX_BYTES)
		return -1;
	const char *start = s;
	for (int i = 0; i < 5; i++) {
		const char *dot = memchr(start, '.', slen - (size_t)(start - s));
		if ((i < 4) != (dot != NULL))
			return -1;
		const char *end = dot ? dot : s + slen;
		pt->p[i] = start;
		pt->len[i] = (size_t)(end - start);
		start = end + 1;
	}
	return pt->len[1] == 0 && pt->len[0] > 0 ? 0 : -1;
}

/* Decodes and parses the protected header. New reference or NULL. */
static json_t *header(const struct parts *pt)
{
	char buf[1024];
	long n = secret_unb64url(pt->p[0], pt->len[0], buf, sizeof buf - 1);
	if (n < 0)
		return NULL;
	buf[n] = '\0';
	json_t *h = json_loadb(buf, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
	if (h && !json_is_object(h)) {
		json_decref(h);
		h = NULL;
	}
	return h;
}

int seal_kid(const char *sealed, char kid[64])
{
	struct parts pt;
	json_t *h;
	int rc = -1;
	if (!sealed || split(sealed, &pt) != 0 || !(h = header(&pt)))
		return -1;
	const char *k = json_string_value(json_object_get(h, "kid"));
	if (k && *k && strlen(k) < 64) {
		strcpy(kid, k);
		rc = 0;
	}
	json_decref(h);
	return rc;
}

static int streq(json_t *o, const char *key, const char *want)
{
	const char *v = json_string_value(json_object_get(o, key));
	return v && strcmp(v, want) == 0;
}

char *seal_open(const struct jwk *key, const char *stream_id, const char *sealed, size_t *len, char *err,
                size_t errlen)
{
	struct parts pt;
	json_t *h = NULL, *pj = NULL;
	EVP_PKEY *priv = NULL, *epk = NULL;
	EVP_CIPHER_CTX *cctx = NULL;
	unsigned char cek[CEK_LEN], iv[IV_LEN], tag[TAG_LEN], xy[64];
	unsigned char *plain = NULL;
	long clen = -1;
	char *ret = NULL;
	int n, m;

	if (len)
		*len = 0;
	if (!key || !key->private_pem || !stream_id || !sealed) {
		snprintf(err, errlen, "no private stream key to open the sealed secret with");
		return NULL;
	}
	if (split(sealed, &pt) != 0) {
		snprintf(err, errlen, "the sealed secret is not a compact JWE of at most %d bytes with an empty encrypted key",
		         SEAL_MAX_BYTES);
		return NULL;
	}
	if (!(h = header(&pt))) {
		snprintf(err, errlen, "the sealed secret's header is not base64url JSON");
		goto out;
	}
	json_t *e = json_object_get(h, "epk");
	const char *ex = json_string_value(json_object_get(e, "x"));
	const char *ey = json_string_value(json_object_get(e, "y"));
	/* Exactly the header this module writes: nothing else (no "crit", no
	 * "zip") may change how the value is read. */
	if (json_object_size(h) != 5 || !streq(h, "alg", "ECDH-ES") || !streq(h, "enc", "A256GCM") ||
	    !streq(h, "cty", CTY) || !json_is_string(json_object_get(h, "kid")) || !json_is_object(e) ||
	    json_object_size(e) != 4 || !streq(e, "kty", "EC") || !streq(e, "crv", "P-256") || !ex || !ey) {
		snprintf(err, errlen, "the sealed secret's header is not {alg ECDH-ES, enc A256GCM, kid, epk P-256, cty %s}",
		         CTY);
		goto out;
	}
	if (!streq(h, "kid", key->kid)) {
		snprintf(err, errlen, "the secret is sealed to key %.60s, not to the stream key %s",
		         json_string_value(json_object_get(h, "kid")), key->kid);
		goto out;
	}
	if (secret_unb64url(ex, strlen(ex), xy, 32) != 32 || secret_unb64url(ey, strlen(ey), xy + 32, 32) != 32 ||
	    !(epk = pub_from_xy(xy))) {
		snprintf(err, errlen, "the sealed secret's ephemeral key is not a point on P-256");
		goto out;
	}
	if (secret_unb64url(pt.p[2], pt.len[2], iv, sizeof iv) != IV_LEN ||
	    secret_unb64url(pt.p[4], pt.len[4], tag, sizeof tag) != TAG_LEN ||
	    !(plain = malloc(pt.len[3] * 3 / 4 + 3)) ||
	    (clen = secret_unb64url(pt.p[3], pt.len[3], plain, pt.len[3] * 3 / 4 + 3)) < 0) {
		snprintf(err, errlen, "the sealed secret's iv, ciphertext or tag is malformed");
		goto out;
	}
	if (!(priv = pem_key(key->private_pem, 1)) || derive_cek(priv, epk, cek) != 0) {
		snprintf(err, errlen, "cannot agree a key with the stream key");
		goto out;
	}
	/* Decrypted in place: the plaintext replaces the ciphertext. */
	if (!(cctx = EVP_CIPHER_CTX_new()) || EVP_DecryptInit_ex(cctx, EVP_aes_256_gcm(), NULL, cek, iv) != 1 ||
	    EVP_DecryptUpdate(cctx, NULL, &n, (const unsigned char *)pt.p[0], (int)pt.len[0]) != 1 ||
	    EVP_DecryptUpdate(cctx, plain, &n, plain, (int)clen) != 1 ||
	    EVP_CIPHER_CTX_ctrl(cctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) != 1 ||
	    EVP_DecryptFinal_ex(cctx, plain + n, &m) != 1) {
		snprintf(err, errlen, "the sealed secret does not open with the stream key (altered, or sealed to another key)");
		goto out;
	}
	if (!(pj = json_loadb((const char *)plain, (size_t)clen, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL)) ||
	    !json_is_object(pj) || json_object_size(pj) != 2 ||
	    !json_is_string(json_object_get(pj, "stream")) || !json_is_string(json_object_get(pj, "secret"))) {
		snprintf(err, errlen, "the sealed secret's content is not {stream, secret}");
		goto out;
	}
	if (!streq(pj, "stream", stream_id)) {
		snprintf(err, errlen, "the secret was sealed for another stream");
		goto out;
	}
	json_t *s = json_object_get(pj, "secret");
	size_t slen = json_string_length(s);
	if (slen > SEAL_MAX_SECRET || memchr(json_string_value(s), 0, slen)) {
		snprintf(err, errlen, "the sealed secret is longer than %d bytes or holds a NUL", SEAL_MAX_SECRET);
		goto out;
	}
	if (!(ret = malloc(slen + 1))) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	memcpy(ret, json_string_value(s), slen);
	ret[slen] = '\0';
	if (len)
		*len = slen;
out:
	if (pj) {
		json_t *s2 = json_object_get(pj, "secret");
		if (json_is_string(s2))
			OPENSSL_cleanse((void *)json_string_value(s2), json_string_length(s2));
		json_decref(pj);
	}
	if (plain) {
		if (clen > 0)
			OPENSSL_cleanse(plain, (size_t)clen);
		free(plain);
	}
	OPENSSL_cleanse(cek, sizeof cek);
	EVP_CIPHER_CTX_free(cctx);
	EVP_PKEY_free(priv);
	EVP_PKEY_free(epk);
	json_decref(h);
	return ret;
}
