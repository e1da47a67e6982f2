/* ES256 compact JWS signatures with OpenSSL. */
#include "jws.h"

#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

#include "jwk.h"
#include "secret.h"

int jws_es256_verify(const struct jwk *key, const char *input, size_t len, const char *sig64,
                     size_t sig64len)
{
	return jws_es256_verify_paced(key, input, len, sig64, sig64len, NULL);
}

int jws_es256_verify_paced(const struct jwk *key, const char *input, size_t len, const char *sig64,
                           size_t sig64len, void (*pause)(void))
{
	unsigned char raw[64], der[80];
	BIO *bio = BIO_new_mem_buf(key->public_pem, -1);
	EVP_PKEY *pkey = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	ECDSA_SIG *sig = ECDSA_SIG_new();
	BIGNUM *r = NULL, *s = NULL;
	int ok = 0;

	if (!pkey || !md || !sig || secret_unb64url(sig64, sig64len, raw, sizeof raw) != 64)
		goto out;
	r = BN_bin2bn(raw, 32, NULL);
	s = BN_bin2bn(raw + 32, 32, NULL);
	if (!r || !s || ECDSA_SIG_set0(sig, r, s) != 1)
		goto out;
	r = s = NULL; /* owned by sig now */
	unsigned char *p = der;
	int derlen = i2d_ECDSA_SIG(sig, &p);
	if (derlen <= 0 || EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pkey) != 1)
		goto out;
	for (size_t at = 0; at < len; at += JWS_PACE_BYTES) {
		size_t n = len - at < JWS_PACE_BYTES ? len - at : JWS_PACE_BYTES;
		if (EVP_DigestVerifyUpdate(md, input + at, n) != 1)
			goto out;
		if (pause && at + n < len)
			pause();
	}
	ok = EVP_DigestVerifyFinal(md, der, (size_t)derlen) == 1;
out:
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(sig);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	return ok;
}

/* JOSE wants the ECDSA signature as r || s, 32 bytes each; OpenSSL makes DER. */
static int der_to_jose(const unsigned char *der, size_t len, unsigned char out[64])
{
	const unsigned char *p = der;
	ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
	const BIGNUM *r, *s;
	int ok = 0;
	if (sig) {
		ECDSA_SIG_get0(sig, &r, &s);
		ok = BN_bn2binpad(r, out, 32) == 32 && BN_bn2binpad(s, out + 32, 32) == 32;
		ECDSA_SIG_free(sig);
	}
	return ok ? 0 : -1;
}

/* Signed with OpenSSL rather than libjwt: libjwt 1.10's encoder builds the
 * base64 of the header and payload in alloca() buffers, which overflows a
 * thread's stack for a document of tens of megabytes. */
char *jws_es256_sign(const struct jwk *key, const char *header, size_t hlen, const char *payload,
                     size_t plen)
{
	char *input = NULL, *token = NULL;
	unsigned char der[80], raw[64];
	size_t derlen = sizeof der;
	EVP_PKEY *pkey = NULL;
	EVP_MD_CTX *md = NULL;
	BIO *bio = NULL;

	size_t h64 = 4 * ((hlen + 2) / 3), p64 = 4 * ((plen + 2) / 3);
	input = malloc(h64 + 1 + p64 + 1 + 90);
	if (!input)
		goto out;
	secret_b64url(header, hlen, input);
	size_t n = strlen(input);
	input[n++] = '.';
	secret_b64url(payload, plen, input + n);
	n += strlen(input + n);

	bio = BIO_new_mem_buf(key->private_pem, -1);
	pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	md = EVP_MD_CTX_new();
	if (!pkey || !md || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey) != 1 ||
	    EVP_DigestSign(md, der, &derlen, (const unsigned char *)input, n) != 1 ||
	    der_to_jose(der, derlen, raw) != 0)
		goto out;
	input[n++] = '.';
	secret_b64url(raw, sizeof raw, input + n);
	token = input;
	input = NULL;
out:
	free(input);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	return token;
}
