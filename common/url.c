/* Joining a base URL with a path (see url.h). */
#include "url.h"

#include <stdio.h>
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

const char *url_ca_problem(const char *url, const char *ca_file)
{
	if (!ca_file)
		return NULL;
	if (!*ca_file)
		return "must be the path of a PEM file (unset it to use the system's trust store)";
	if (strncmp(url, "https://", 8) != 0)
		return "is set but the URL it pins is not https://";
	FILE *f = fopen(ca_file, "r");
	if (!f)
		return "cannot be read";
	/* A PEM certificate within the first 16 KiB: a bundle of many CAs
	 * starts with one too. */
	char buf[16384];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, "-----BEGIN CERTIFICATE-----") ? NULL : "holds no PEM certificate (-----BEGIN CERTIFICATE-----)";
}
