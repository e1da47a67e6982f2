/* JWKs over OpenSSL 3. */
#include "jwk.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "secret.h"

static char *bio_string(BIO *b)
{
	char *data;
	long n = BIO_get_mem_data(b, &data);
	char *s = n > 0 ? malloc((size_t)n + 1) : NULL;
	if (s) {
		memcpy(s, data, (size_t)n);
		s[n] = '\0';
	}
	return s;
}

/* Fills kid, x, y and the PEM forms from an EVP_PKEY. */
static int fill(struct jwk *k, EVP_PKEY *pkey, int with_private)
{
	unsigned char pub[65];
	size_t len = 0;
	char canon[256];
	unsigned char md[32];
	BIO *b;

	if (EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub, &len) != 1 ||
	    len != 65 || pub[0] != 0x04)
		return -1;
	secret_b64url(pub + 1, 32, k->x);
	secret_b64url(pub + 33, 32, k->y);
	/* RFC 7638: the required members in lexicographic order, no spaces. */
	snprintf(canon, sizeof canon, "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", k->x, k->y);
	secret_sha256(canon, strlen(canon), md);
	secret_b64url(md, 32, k->kid);

	if (!(b = BIO_new(BIO_s_mem())))
		return -1;
	if (PEM_write_bio_PUBKEY(b, pkey) == 1)
		k->public_pem = bio_string(b);
	BIO_free(b);
	if (!k->public_pem)
		return -1;
	if (with_private) {
		if (!(b = BIO_new(BIO_s_mem())))
			return -1;
		if (PEM_write_bio_PrivateKey(b, pkey, NULL, NULL, 0, NULL, NULL) == 1)
			k->private_pem = bio_string(b);
		BIO_free(b);
		if (!k->private_pem)
			return -1;
	}
	return 0;
}

int jwk_generate(struct jwk *k)
{
	memset(k, 0, sizeof *k);
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (!pkey)
		return -1;
	int rc = fill(k, pkey, 1);
	EVP_PKEY_free(pkey);
	if (rc)
		jwk_clear(k);
	return rc;
}

/* Fills `k` from a private key just read (freed here); `what` names its
 * source in `err`. */
static int load_pkey(EVP_PKEY *pkey, const char *what, struct jwk *k, char *err, size_t errlen)
{
	char group[32] = "";
	size_t glen;
	if (!pkey || EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
	                                            sizeof group, &glen) != 1 ||
	    strcmp(group, "prime256v1") != 0) {
		EVP_PKEY_free(pkey);
		snprintf(err, errlen, "%s is not a P-256 private key in PEM", what);
		return -1;
	}
	int rc = fill(k, pkey, 1);
	EVP_PKEY_free(pkey);
	if (rc) {
		jwk_clear(k);
		snprintf(err, errlen, "cannot use the key in %s", what);
	}
	return rc;
}

int jwk_load_private(const char *path, struct jwk *k, char *err, size_t errlen)
{
	memset(k, 0, sizeof *k);
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	EVP_PKEY *pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	return load_pkey(pkey, path, k, err, errlen);
}

int jwk_from_private_pem(const char *pem, size_t len, const char *what, struct jwk *k, char *err,
                         size_t errlen)
{
	memset(k, 0, sizeof *k);
	if (len > INT_MAX) {
		snprintf(err, errlen, "%s is not a P-256 private key in PEM", what);
		return -1;
	}
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	EVP_PKEY *pkey = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	return load_pkey(pkey, what, k, err, errlen);
}

int jwk_save_private(const struct jwk *k, const char *path)
{
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return -1;
	size_t n = strlen(k->private_pem);
	int ok = write(fd, k->private_pem, n) == (ssize_t)n && fsync(fd) == 0;
	ok = close(fd) == 0 && ok;
	if (!ok || rename(tmp, path) != 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

json_t *jwk_public_json(const struct jwk *k)
{
	return json_pack("{ss ss ss ss ss ss ss}", "kty", "EC", "crv", "P-256", "x", k->x, "y", k->y,
	                 "kid", k->kid, "alg", "ES256", "use", "sig");
}

int jwk_from_json(const json_t *o, struct jwk *k, char *err, size_t errlen)
{
	const char *kty = json_string_value(json_object_get(o, "kty"));
	const char *crv = json_string_value(json_object_get(o, "crv"));
	const char *x = json_string_value(json_object_get(o, "x"));
	const char *y = json_string_value(json_object_get(o, "y"));
	const char *kid = json_string_value(json_object_get(o, "kid"));
	unsigned char pub[65];
	EVP_PKEY *pkey = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	int rc = -1;

	memset(k, 0, sizeof *k);
	if (!kty || strcmp(kty, "EC") || !crv || strcmp(crv, "P-256") || !x || !y || !kid) {
		snprintf(err, errlen, "a key is not an EC P-256 JWK with x, y and kid");
		return -1;
	}
	pub[0] = 0x04;
	if (secret_unb64url(x, strlen(x), pub + 1, 32) != 32 || secret_unb64url(y, strlen(y), pub + 33, 32) != 32) {
		snprintf(err, errlen, "key %.60s: x or y is not 32 bytes of base64url", kid);
		return -1;
	}
	bld = OSSL_PARAM_BLD_new();
	if (!bld || !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub) ||
	    !(params = OSSL_PARAM_BLD_to_param(bld)) || !(ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) ||
	    EVP_PKEY_fromdata_init(ctx) != 1 || EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
		snprintf(err, errlen, "key %.60s: not a point on P-256", kid);
		goto out;
	}
	/* fromdata does not check the point; a public-key check does. */
	EVP_PKEY_CTX *chk = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	int on_curve = chk && EVP_PKEY_public_check(chk) == 1;
	EVP_PKEY_CTX_free(chk);
	if (!on_curve) {
		snprintf(err, errlen, "key %.60s: not a point on P-256", kid);
		goto out;
	}
	if (fill(k, pkey, 0) != 0) {
		snprintf(err, errlen, "key %.60s: cannot be used", kid);
		goto out;
	}
	if (strcmp(k->kid, kid) != 0) {
		snprintf(err, errlen, "key %.60s: kid is not the key's RFC 7638 thumbprint", kid);
		goto out;
	}
	rc = 0;
out:
	if (rc)
		jwk_clear(k);
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	return rc;
}

void jwk_clear(struct jwk *k)
{
	free(k->public_pem);
	if (k->private_pem) {
		OPENSSL_cleanse(k->private_pem, strlen(k->private_pem));
		free(k->private_pem);
	}
	memset(k, 0, sizeof *k);
}
