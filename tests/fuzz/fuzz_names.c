/* Fuzz target: the name and identifier validators of common/names.c
 * (region names, slugs, UUIDs, emails, timestamps, endpoint URLs), each
 * against a reference from its documented grammar (names_check.c). The
 * input is one C string, as a path segment or a JSON string gives it. */
#include "fuzz.h"
#include "names_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);
	nc_region(s);
	nc_slug(s);
	nc_uuid(s);
	nc_email(s, NULL);
	nc_timestamp(s);
	nc_endpoint(s);
	free(s);
	return 0;
}
