/* Unit tests of control-plane/password: scrypt hashes of user passwords.
 * Cost 2^10 keeps them fast; the format is the same at any cost. */
#include <stdio.h>
#include <string.h>

#include "../../control-plane/password.h"
#include "unit.h"

#define PW "correct horse battery"
/* PW under salt 00 01 .. 0f, N=2^10, r=8, p=1 (from Python's hashlib.scrypt). */
#define KAT_SALT "AAECAwQFBgcICQoLDA0ODw"
#define KAT_KEY  "hKGWL22WtdGfIbxEPAZ06BS2bWyYKuZIKvypfAlYOWk"
#define KAT      "scrypt$10$8$1$" KAT_SALT "$" KAT_KEY
/* PW under salt 00 01 .. 07, N=2^11, r=4, p=2. */
#define KAT2     "scrypt$11$4$2$AAECAwQFBgc$7tSEv_Qao2QF23E76Z0Py6bgrJaVJjnFvgQj4UYQnSc"

/* The salt field of a stored hash (between the 4th and 5th '$'). */
static const char *salt_of(const char *stored, char *buf, size_t len)
{
	const char *p = stored;
	for (int i = 0; i < 4; i++) {
		p = strchr(p, '$');
		ck_assert_ptr_nonnull(p);
		p++;
	}
	const char *end = strchr(p, '$');
	ck_assert_ptr_nonnull(end);
	snprintf(buf, len, "%.*s", (int)(end - p), p);
	return buf;
}

START_TEST(hash_then_verify)
{
	/* A user signs in with the password they set, and only with it. */
	char stored[PASSWORD_HASH_MAX];

	ck_assert_int_eq(password_hash(PW, 10, stored), 0);
	ck_assert_int_eq(password_verify(PW, stored), 1);
	ck_assert_int_eq(password_verify("correct horse batterz", stored), 0);
	ck_assert_int_eq(password_verify("Correct horse battery", stored), 0);
	ck_assert_int_eq(password_verify(PW " ", stored), 0);
	ck_assert_int_eq(password_verify("correct horse batter", stored), 0);
	ck_assert_int_eq(password_verify("", stored), 0);
}
END_TEST

START_TEST(stored_form)
{
	/* The stored hash names its parameters so the cost can be raised later. */
	char stored[PASSWORD_HASH_MAX];

	ck_assert_int_eq(password_hash(PW, 10, stored), 0);
	ck_assert_msg(strncmp(stored, "scrypt$10$8$1$", 14) == 0, "stored form '%s'", stored);
	/* 16-byte salt and 32-byte hash in unpadded base64url */
	ck_assert_uint_eq(strlen(stored), 14 + 22 + 1 + 43);
	ck_assert_int_eq(stored[14 + 22], '$');
	ck_assert_uint_eq(strspn(stored + 14, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	                                      "0123456789-_$"),
	                  strlen(stored) - 14);

	ck_assert_int_eq(password_hash(PW, 11, stored), 0);
	ck_assert(strncmp(stored, "scrypt$11$8$1$", 14) == 0);
	ck_assert_int_eq(password_verify(PW, stored), 1);
}
END_TEST

START_TEST(salted)
{
	/* Two users with the same password get different hashes. */
	char a[PASSWORD_HASH_MAX], b[PASSWORD_HASH_MAX], sa[64], sb[64];

	ck_assert_int_eq(password_hash(PW, 10, a), 0);
	ck_assert_int_eq(password_hash(PW, 10, b), 0);
	ck_assert_str_ne(a, b);
	ck_assert_str_ne(salt_of(a, sa, sizeof sa), salt_of(b, sb, sizeof sb));
	ck_assert_int_eq(password_verify(PW, a), 1);
	ck_assert_int_eq(password_verify(PW, b), 1);
}
END_TEST

START_TEST(known_hashes_verify)
{
	/* Hashes stored by earlier releases, at other costs, still verify. */
	ck_assert_int_eq(password_verify(PW, KAT), 1);
	ck_assert_int_eq(password_verify("correct horse batterY", KAT), 0);
	ck_assert_int_eq(password_verify(PW, KAT2), 1);
	ck_assert_int_eq(password_verify("wrong password", KAT2), 0);
}
END_TEST

START_TEST(long_password)
{
	/* A password of PASSWORD_MAX_LEN bytes is hashed whole, last byte included. */
	char pw[PASSWORD_MAX_LEN + 1], stored[PASSWORD_HASH_MAX];

	memset(pw, 'p', PASSWORD_MAX_LEN);
	pw[PASSWORD_MAX_LEN] = '\0';
	ck_assert_int_eq(password_hash(pw, 10, stored), 0);
	ck_assert_int_eq(password_verify(pw, stored), 1);
	pw[PASSWORD_MAX_LEN - 1] = 'q';
	ck_assert_int_eq(password_verify(pw, stored), 0);
}
END_TEST

START_TEST(hash_cost_range)
{
	/* A cost below 2^10 or above 2^22 is refused rather than stored. */
	char stored[PASSWORD_HASH_MAX];
	ck_assert_int_eq(password_hash(PW, 9, stored), -1);
	ck_assert_int_eq(password_hash(PW, 0, stored), -1);
	ck_assert_int_eq(password_hash(PW, -1, stored), -1);
	ck_assert_int_eq(password_hash(PW, 23, stored), -1);
	ck_assert_int_eq(password_hash(PW, 64, stored), -1);
}
END_TEST

START_TEST(malformed_prefix_and_fields)
{
	/* A corrupted stored hash is an internal error (-1), never a match. */
	ck_assert_int_eq(password_verify(PW, ""), -1);
	ck_assert_int_eq(password_verify(PW, "scrypt"), -1);
	ck_assert_int_eq(password_verify(PW, "bcrypt$10$8$1$" KAT_SALT "$" KAT_KEY), -1);
	ck_assert_int_eq(password_verify(PW, "Scrypt$10$8$1$" KAT_SALT "$" KAT_KEY), -1);
	ck_assert_int_eq(password_verify(PW, "scrypt10$8$1$" KAT_SALT "$" KAT_KEY), -1);
	ck_assert_int_eq(password_verify(PW, "$10$8$1$" KAT_SALT "$" KAT_KEY), -1);
	ck_assert_int_eq(password_verify(PW, "scrypt$10$8$1$" KAT_SALT), -1);
	ck_assert_int_eq(password_verify(PW, "scrypt$10$8$1$" KAT_SALT "$"), -1);
	ck_assert_int_eq(password_verify(PW, "scrypt$10$8$1$$" KAT_KEY), -1);
	ck_assert_int_eq(password_verify(PW, "scrypt$10$8$" KAT_SALT "$" KAT_KEY), -1);
	ck_assert_int_eq(password_verify(PW, "scrypt$10$" KAT_SALT "$" KAT_KEY), -1);
	ck_assert_int_eq(password_verify(PW, "scrypt$$8$1$" KAT_SALT "$" KAT_KEY), -1);
	ck_assert_int_eq(password_verify(PW, "scrypt$x$8$1$" KAT_SALT "$" KAT_KEY), -1);
	ck_assert_int_eq(password_verify(PW, KAT "$"), -1);
	ck_assert_int_eq(password_verify(PW, KAT "$extra"), -1);
	ck_assert_int_eq(password_verify(PW, KAT " "), -1);
	ck_assert_int_eq(password_verify(PW, KAT "\n"), -1);
}
END_TEST

START_TEST(malformed_parameters)
{
	/* Parameters out of range are refused before any work is done. */
	ck_assert_int_eq(password_verify(PW, "scrypt$9$8$1$" KAT_SALT "$" KAT_KEY), -1);
	ck_assert_int_eq(password_verify(PW, "scrypt$23$8$1$" KAT_SALT "$" KAT_KEY), -1);
	ck_assert_int_eq(password_verify(PW, "scrypt$0$8$1$" KAT_SALT "$" KAT_KEY), -1);
	ck_assert_int_eq(password_verify(PW, "scrypt$-10$8$1$" KAT_SALT "$" KAT_KEY), -1);
	ck_assert_int_eq(password_verify(PW, "scrypt$64$8$1$" KAT_SALT "$" KAT_KEY), -1);
	ck_assert_int_eq(password_verify(PW, "scrypt$10$0$1$" KAT_SALT "$" KAT_KEY), -1);
	ck_assert_int_eq(password_verify(PW, "scrypt$10$33$1$" KAT_SALT "$" KAT_KEY), -1);
	ck_assert_int_eq(password_verify(PW, "scrypt$10$8$0$" KAT_SALT "$" KAT_KEY), -1);
	ck_assert_int_eq(password_verify(PW, "scrypt$10$8$5$" KAT_SALT "$" KAT_KEY), -1);
}
END_TEST

START_TEST(malformed_base64)
{
	/* A salt or hash that is not exact base64url is refused. */
	/* salt: bad character, padding, too short (5 bytes) */
	ck_assert_int_eq(password_verify(PW, "scrypt$10$8$1$AAECAwQFBgcICQoLDA0OD!$" KAT_KEY), -1);
	ck_assert_int_eq(password_verify(PW, "scrypt$10$8$1$AAECAwQFBgcICQoLDA0ODw==$" KAT_KEY), -1);
	ck_assert_int_eq(password_verify(PW, "scrypt$10$8$1$AAECAwQ$" KAT_KEY), -1);
	ck_assert_int_eq(password_verify(PW, "scrypt$10$8$1$AAECAwQFBgcICQoLDA0OD$" KAT_KEY), -1);
	/* hash: bad character, padding, 31, 30 and 35 bytes, nonzero trailing bits */
	ck_assert_int_eq(password_verify(PW, "scrypt$10$8$1$" KAT_SALT
	                                     "$hKGWL22WtdGfIbxEPAZ06BS2bWyYKuZIKvypfAlYOW+"), -1);
	ck_assert_int_eq(password_verify(PW, KAT "="), -1);
	ck_assert_int_eq(password_verify(PW, "scrypt$10$8$1$" KAT_SALT
	                                     "$hKGWL22WtdGfIbxEPAZ06BS2bWyYKuZIKvypfAlYOW"), -1);
	ck_assert_int_eq(password_verify(PW, "scrypt$10$8$1$" KAT_SALT
	                                     "$hKGWL22WtdGfIbxEPAZ06BS2bWyYKuZIKvypfAlY"), -1);
	ck_assert_int_eq(password_verify(PW, KAT "AAAA"), -1);
	ck_assert_int_eq(password_verify(PW, "scrypt$10$8$1$" KAT_SALT
	                                     "$hKGWL22WtdGfIbxEPAZ06BS2bWyYKuZIKvypfAlYOWl"), -1);
}
END_TEST

/* Only the canonical stored form verifies: signs, spaces or leading zeros
 * in the parameters mean the text was not written by password_hash. */
START_TEST(rejects_noncanonical_params)
{
	char h[PASSWORD_HASH_MAX], bad[PASSWORD_HASH_MAX + 8];
	ck_assert_int_eq(password_hash("correct horse battery", 10, h), 0);
	ck_assert_int_eq(password_verify("correct horse battery", h), 1);
	snprintf(bad, sizeof bad, "scrypt$+10%s", h + strlen("scrypt$10"));
	ck_assert_int_eq(password_verify("correct horse battery", bad), -1);
	snprintf(bad, sizeof bad, "scrypt$010%s", h + strlen("scrypt$10"));
	ck_assert_int_eq(password_verify("correct horse battery", bad), -1);
	snprintf(bad, sizeof bad, "scrypt$ 10%s", h + strlen("scrypt$10"));
	ck_assert_int_eq(password_verify("correct horse battery", bad), -1);
}
END_TEST

Suite *password_suite(void)
{
	Suite *s = suite_create("password");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, hash_then_verify);
	tcase_add_test(tc, rejects_noncanonical_params);
	tcase_add_test(tc, stored_form);
	tcase_add_test(tc, salted);
	tcase_add_test(tc, known_hashes_verify);
	tcase_add_test(tc, long_password);
	tcase_add_test(tc, hash_cost_range);
	tcase_add_test(tc, malformed_prefix_and_fields);
	tcase_add_test(tc, malformed_parameters);
	tcase_add_test(tc, malformed_base64);
	suite_add_tcase(s, tc);
	return s;
}
