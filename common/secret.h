/* Secrets: random tokens from OpenSSL, SHA-256, constant-time comparison,
 * hex and base64url, and AES-256-GCM for the few values that must be kept
 * recoverable (encrypted, never in clear) for a short time. */
#ifndef CT_SECRET_H
#define CT_SECRET_H

#include <stddef.h>
#include <stdint.h>

/* Fills `buf` with `len` random bytes. Returns 0, or -1 if the generator
 * failed (callers must then refuse to issue the secret). */
int secret_random(void *buf, size_t len) __attribute__((warn_unused_result));

/* Writes 2*len lowercase hex characters plus NUL into `out`. */
void secret_hex(const void *buf, size_t len, char *out);
/* Decodes exactly `len` bytes from 2*len hex characters. Returns 0 or -1. */
int secret_unhex(const char *hex, void *out, size_t len);

void secret_sha256(const void *data, size_t len, unsigned char out[32]);

/* Constant-time equality of two buffers of the same length. */
int secret_equal(const void *a, const void *b, size_t len);

/* base64url without padding. secret_b64url writes at most
 * 4*ceil(len/3)+1 bytes into out. secret_unb64url returns the decoded
 * length or -1 on invalid input or when it does not fit `cap`. */
void secret_b64url(const void *buf, size_t len, char *out);
long secret_unb64url(const char *in, size_t inlen, void *out, size_t cap);

/* Completes a bearer token: appends the base64url of 32 fresh random bytes
 * (43 characters) to `token`, which holds its prefix, and writes the hex
 * SHA-256 of the whole token, what is stored of it, into `sha_hex`.
 * Returns 0, or -1 when the generator failed or `cap` leaves no room (the
 * token must then not be issued). */
int secret_token_complete(char *token, size_t cap, char sha_hex[65])
	__attribute__((warn_unused_result));

/* AES-256-GCM with a random nonce. The output (malloc'd, caller frees) is
 * base64url(nonce || ciphertext || tag). Returns NULL on failure. */
char *secret_seal(const unsigned char key[32], const void *plain, size_t len);
/* Reverses secret_seal. Returns malloc'd plaintext (NUL-terminated, length
 * in *len) or NULL when the input was not sealed with `key`. */
char *secret_open(const unsigned char key[32], const char *sealed, size_t *len);

#endif
