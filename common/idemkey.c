/* Idempotency-Key syntax (see idemkey.h). */
#include "idemkey.h"

#include <string.h>

int idemkey_valid(const char *key)
{
	if (!key)
		return 0;
	size_t n = strlen(key);
	if (n == 0 || n > IDEMKEY_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)key[i] < 0x21 || (unsigned char)key[i] > 0x7e)
			return 0;
	return 1;
}
