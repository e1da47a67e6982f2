/* scrypt password hashes. */
#include "password.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secret.h"

#define R 8
#define P 1
#define SALT 16
#define KEY 32

static int derive(const char *pw, const unsigned char *salt, size_t saltlen, int log2n, int r,
                  int p, unsigned char out[KEY])
{
	uint64_t n = (uint64_t)1 << log2n;
	uint64_t maxmem = 128u * n * (uint64_t)r * (uint64_t)p + (1u << 20);
	return EVP_PBE_scrypt(pw, strlen(pw), salt, saltlen, n, (uint64_t)r, (uint64_t)p, maxmem, out,
	                      KEY) == 1 ? 0 : -1;
}

int password_hash(const char *pw, int log2n, char out[PASSWORD_HASH_MAX])
{
	unsigned char salt[SALT], key[KEY];
	char s64[32], k64[48];

	if (log2n < 10 || log2n > 22 || secret_random(salt, sizeof salt) != 0 ||
	    derive(pw, salt, sizeof salt, log2n, R, P, key) != 0)
		return -1;
	secret_b64url(salt, sizeof salt, s64);
	secret_b64url(key, sizeof key, k64);
	snprintf(out, PASSWORD_HASH_MAX, "scrypt$%d$%d$%d$%s$%s", log2n, R, P, s64, k64);
	return 0;
}

int password_verify(const char *pw, const char *stored)
{
	int log2n, r, p, off = 0;
	char s64[64], k64[64];
	unsigned char salt[48], want[KEY], got[KEY];

	if (sscanf(stored, "scrypt$%d$%d$%d$%63[^$]$%63s%n", &log2n, &r, &p, s64, k64, &off) != 5 ||
	    stored[off] != '\0' || log2n < 10 || log2n > 22 || r < 1 || r > 32 || p < 1 || p > 4)
		return -1;
	/* Only the canonical form password_hash writes (no signs, spaces or zeros). */
	char canon[PASSWORD_HASH_MAX + 64];
	snprintf(canon, sizeof canon, "scrypt$%d$%d$%d$%s$%s", log2n, r, p, s64, k64);
	if (strcmp(canon, stored) != 0)
		return -1;
	long slen = secret_unb64url(s64, strlen(s64), salt, sizeof salt);
	if (slen < 8 || secret_unb64url(k64, strlen(k64), want, sizeof want) != KEY)
		return -1;
	if (derive(pw, salt, (size_t)slen, log2n, r, p, got) != 0)
		return -1;
	return secret_equal(got, want, KEY);
}
