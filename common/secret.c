/* Secrets over OpenSSL. */
#include "secret.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

int secret_random(void *buf, size_t len)
{
	return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}

void secret_hex(const void *buf, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *b = buf;
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * len] = '\0';
}

/* The value of each hex digit plus one, 0 for any other byte: a table,
 * not comparisons, because a control plane decodes three million key
 * hashes per whole document, and random digits defeat branch prediction. */
static const unsigned char hex_plus1[256] = {
	['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6, ['6'] = 7, ['7'] = 8,
	['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
	['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
};

int secret_unhex(const char *hex, void *out, size_t len)
{
	unsigned char *o = out;
	for (size_t i = 0; i < len; i++) {
		/* A NUL maps to 0: a short string ends here, read no further. */
		unsigned hi = hex_plus1[(unsigned char)hex[2 * i]];
		if (!hi)
			return -1;
		unsigned lo = hex_plus1[(unsigned char)hex[2 * i + 1]];
		if (!lo)
			return -1;
		o[i] = (unsigned char)((hi - 1) << 4 | (lo - 1));
	}
	return hex[2 * len] == '\0' ? 0 : -1;
}

/* SHA-256 runs on every API key a request presents: the algorithm is
 * fetched from the provider once, not looked up by name (under a lock) on
 * each call as EVP_sha256() makes OpenSSL 3 do. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void secret_sha256(const void *data, size_t len, unsigned char out[32])
{
	unsigned int n = 32;
	pthread_once(&sha256_once, sha256_fetch);
	EVP_Digest(data, len, out, &n, sha256_md ? sha256_md : EVP_sha256(), NULL);
}

int secret_equal(const void *a, const void *b, size_t len)
{
	return CRYPTO_memcmp(a, b, len) == 0;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void secret_b64url(const void *buf, size_t len, char *out)
{
	const unsigned char *b = buf;
	size_t o = 0, i = 0;
	for (; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)b[i] << 16 | (uint32_t)b[i + 1] << 8 | b[i + 2];
		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = b64[(v >> 6) & 63];
		out[o++] = b64[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)b[i] << 16;
		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)b[i] << 16 | (uint32_t)b[i + 1] << 8;
		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = b64[(v >> 6) & 63];
	}
	out[o] = '\0';
}

/* Decoding table: 6-bit value, or 0x40 for a character outside the alphabet. */
static unsigned char b64tab[256];

static void b64tab_init(void)
{
	memset(b64tab, 0x40, sizeof b64tab);
	for (int i = 0; i < 64; i++)
		b64tab[(unsigned char)b64[i]] = (unsigned char)i;
}

long secret_unb64url(const char *in, size_t inlen, void *out, size_t cap)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	const unsigned char *s = (const unsigned char *)in;
	unsigned char *o = out;
	size_t full = inlen / 4, rest = inlen % 4, n;

	pthread_once(&once, b64tab_init);
	if (rest == 1)
		return -1;
	n = full * 3 + (rest ? rest - 1 : 0);
	if (n > cap)
		return -1;
	/* Four characters make three bytes; any bad character sets bit 6. */
	for (size_t i = 0; i < full; i++, s += 4, o += 3) {
		unsigned a = b64tab[s[0]], b = b64tab[s[1]], c = b64tab[s[2]], d = b64tab[s[3]];
		if ((a | b | c | d) & 0x40)
			return -1;
		uint32_t v = a << 18 | b << 12 | c << 6 | d;
		o[0] = (unsigned char)(v >> 16);
		o[1] = (unsigned char)(v >> 8);
		o[2] = (unsigned char)v;
	}
	if (rest) {
		unsigned a = b64tab[s[0]], b = b64tab[s[1]], c = rest == 3 ? b64tab[s[2]] : 0;
		if ((a | b | c) & 0x40)
			return -1;
		uint32_t v = a << 18 | b << 12 | c << 6;
		o[0] = (unsigned char)(v >> 16);
		if (rest == 3)
			o[1] = (unsigned char)(v >> 8);
		/* Leftover bits must be zero, or two texts would decode alike. */
		if ((rest == 2 && (b & 0x0f)) || (rest == 3 && (c & 0x03)))
			return -1;
	}
	return (long)n;
}

#define NONCE 12
#define TAG 16

int secret_token_complete(char *token, size_t cap, char sha_hex[65])
{
	unsigned char raw[32], sha[32];
	size_t n = strlen(token);
	if (cap < n + 44 || secret_random(raw, sizeof raw) != 0)
		return -1;
	secret_b64url(raw, sizeof raw, token + n);
	OPENSSL_cleanse(raw, sizeof raw);
	secret_sha256(token, strlen(token), sha);
	secret_hex(sha, sizeof sha, sha_hex);
	return 0;
}

char *secret_seal(const unsigned char key[32], const void *plain, size_t len)
{
	unsigned char *buf = malloc(NONCE + len + TAG);
	char *out = NULL;
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n;

	if (!buf || !ctx || secret_random(buf, NONCE) != 0)
		goto done;
	if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, buf) != 1 ||
	    EVP_EncryptUpdate(ctx, buf + NONCE, &n, plain, (int)len) != 1 ||
	    EVP_EncryptFinal_ex(ctx, buf + NONCE + n, &n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG, buf + NONCE + len) != 1)
		goto done;
	out = malloc(4 * ((NONCE + len + TAG + 2) / 3) + 1);
	if (out)
		secret_b64url(buf, NONCE + len + TAG, out);
done:
	EVP_CIPHER_CTX_free(ctx);
	free(buf);
	return out;
}

char *secret_open(const unsigned char key[32], const char *sealed, size_t *len)
{
	size_t slen = strlen(sealed), cap = slen * 3 / 4 + 3;
	unsigned char *raw = malloc(cap);
	char *plain = NULL;
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	long n = raw ? secret_unb64url(sealed, slen, raw, cap) : -1;
	int m, ok = 0;

	if (!ctx || n < NONCE + TAG)
		goto done;
	size_t clen = (size_t)n - NONCE - TAG;
	plain = malloc(clen + 1);
	if (!plain)
		goto done;
	if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, raw) == 1 &&
	    EVP_DecryptUpdate(ctx, (unsigned char *)plain, &m, raw + NONCE, (int)clen) == 1 &&
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG, raw + NONCE + clen) == 1 &&
	    EVP_DecryptFinal_ex(ctx, (unsigned char *)plain + m, &m) == 1) {
		plain[clen] = '\0';
		*len = clen;
		ok = 1;
	}
done:
	EVP_CIPHER_CTX_free(ctx);
	free(raw);
	if (!ok) {
		free(plain);
		plain = NULL;
	}
	return plain;
}
