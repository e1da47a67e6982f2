/* Password hashing with scrypt (OpenSSL's EVP_PBE_scrypt), a memory-hard
 * KDF. The stored form carries its parameters, so the cost can be raised
 * later without breaking existing hashes:
 *   scrypt$<log2 N>$<r>$<p>$<salt, base64url>$<hash, base64url> */
#ifndef CP_PASSWORD_H
#define CP_PASSWORD_H

#include <stddef.h>

#define PASSWORD_HASH_MAX 160
#define PASSWORD_MIN_LEN 10
#define PASSWORD_MAX_LEN 256

/* Hashes `pw` with cost 2^log2n (r=8, p=1) into `out`. Returns 0 or -1. */
int password_hash(const char *pw, int log2n, char out[PASSWORD_HASH_MAX])
	__attribute__((warn_unused_result));
/* 1 when `pw` matches `stored`, 0 when not, -1 when `stored` is malformed.
 * The comparison takes the same time wherever the first difference is. */
int password_verify(const char *pw, const char *stored) __attribute__((warn_unused_result));

#endif
