/* Joining a base URL with a path (see url.h). */
#include "url.h"

#include <string.h>

int url_join(char *out, size_t outlen, const char *base, const char *path)
{
	size_t blen = strlen(base), keep = 0;
	const char *scheme = strstr(base, "://");

	/* The authority's "//" is not a trailing slash, even in "http://". */
	if (scheme)
		keep = (size_t)(scheme - base) + 3;
	while (blen > keep && base[blen - 1] == '/')
		blen--;
	while (*path == '/')
		path++;
	size_t plen = strlen(path);
	if (outlen == 0)
		return -1;
	if (blen + 1 + plen >= outlen) {
		out[0] = '\0';
		return -1;
	}
	memcpy(out, base, blen);
	out[blen] = '/';
	memcpy(out + blen + 1, path, plen + 1);
	return 0;
}
