/* The syntax of an Idempotency-Key header, one rule for both services:
 * 1 to IDEMKEY_MAX visible ASCII characters (0x21 to 0x7e). What a key
 * means (who it belongs to, how long it lives) is each service's. */
#ifndef CT_IDEMKEY_H
#define CT_IDEMKEY_H

#define IDEMKEY_MAX 255

/* 1 when `key` is a valid Idempotency-Key, 0 otherwise (NULL included). */
int idemkey_valid(const char *key);

#endif
