/* The residency rule of log-stream destinations: URL syntax, host patterns, S3 regions. */
#include "residency.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* A DNS name as written: labels of 1..63 letters, digits and '-' (not at
 * either end), separated by single dots, at most 253 bytes. A name whose
 * last label is all digits is refused: resolvers read "127.1" or
 * "2130706433" as an address, which would slip past the patterns. */
static int valid_name(const char *s, size_t len)
{
	if (len == 0 || len > RESIDENCY_MAX_PATTERN)
		return 0;
	size_t lab = 0;
	int digits_only = 1;
	for (size_t i = 0; i <= len; i++) {
		char c = i < len ? s[i] : '.';
		if (c == '.') {
			if (lab == 0 || lab > 63 || s[i - 1] == '-')
				return 0;
			if (i == len && digits_only)
				return 0;
			lab = 0;
			digits_only = 1;
			continue;
		}
		int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (!alnum && !(c == '-' && lab > 0))
			return 0;
		if (!(c >= '0' && c <= '9'))
			digits_only = 0;
		lab++;
	}
	return 1;
}

enum hostkind { H_BAD, H_NAME, H_V4, H_V6 };

/* Classifies a host as written in a URL or a pattern ("[::1]" with its
 * brackets); an address is returned in `addr` (4 or 16 bytes). */
static enum hostkind classify(const char *s, size_t len, unsigned char addr[16])
{
	char buf[64];
	if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
		if (len - 2 >= sizeof buf)
			return H_BAD;
		memcpy(buf, s + 1, len - 2);
		buf[len - 2] = '\0';
		return inet_pton(AF_INET6, buf, addr) == 1 ? H_V6 : H_BAD;
	}
	if (len < sizeof buf) {
		memcpy(buf, s, len);
		buf[len] = '\0';
		if (inet_pton(AF_INET, buf, addr) == 1)
			return H_V4;
	}
	return valid_name(s, len) ? H_NAME : H_BAD;
}

int residency_pattern_valid(const char *p)
{
	unsigned char a[16];
	if (!p)
		return 0;
	size_t len = strlen(p);
	if (len == 0 || len > RESIDENCY_MAX_PATTERN)
		return 0;
	if (len > 2 && p[0] == '*' && p[1] == '.')
		return classify(p + 2, len - 2, a) == H_NAME;
	return classify(p, len, a) != H_BAD;
}

/* 1 when host (of kind k, address a) matches pattern p. */
static int matches(const char *p, const char *host, size_t hlen, enum hostkind k, const unsigned char a[16])
{
	unsigned char pa[16];
	size_t plen = strlen(p);
	if (plen > 2 && p[0] == '*' && p[1] == '.') {
		size_t slen = plen - 2;
		/* At least one label more than the suffix, never an address. */
		return k == H_NAME && hlen > slen + 1 && host[hlen - slen - 1] == '.' &&
		       strncasecmp(host + hlen - slen, p + 2, slen) == 0;
	}
	enum hostkind pk = classify(p, plen, pa);
	if (pk != k)
		return 0;
	if (k == H_V4)
		return memcmp(pa, a, 4) == 0;
	if (k == H_V6)
		return memcmp(pa, a, 16) == 0;
	return plen == hlen && strncasecmp(p, host, hlen) == 0;
}

static int loopback(const char *host, size_t hlen, enum hostkind k, const unsigned char a[16])
{
	static const unsigned char v6one[16] = { [15] = 1 };
	if (k == H_V4)
		return a[0] == 127;
	if (k == H_V6)
		return memcmp(a, v6one, 16) == 0;
	return k == H_NAME && hlen == 9 && strncasecmp(host, "localhost", 9) == 0;
}

/* Writes "a, b, c" (or "none") into out. */
static void list(char *out, size_t outlen, const char *const *items, size_t n)
{
	size_t o = 0;
	out[0] = '\0';
	if (n == 0) {
		snprintf(out, outlen, "none");
		return;
	}
	for (size_t i = 0; i < n && o < outlen; i++) {
		int w = snprintf(out + o, outlen - o, "%s%s", i ? ", " : "", items[i]);
		if (w < 0)
			break;
		o += (size_t)w;
	}
}

int residency_check(const struct residency_rule *rule, const char *region, const char *url,
                    const char *s3_region, char *why, size_t whylen)
{
	char names[1024];
	unsigned char addr[16];
	const char *what = s3_region ? "endpoint" : "url";

	if (!url || !*url) {
		snprintf(why, whylen, "the destination has no %s", what);
		return -1;
	}
	size_t ulen = strlen(url);
	if (ulen > RESIDENCY_MAX_URL) {
		snprintf(why, whylen, "the %s is longer than %d bytes", what, RESIDENCY_MAX_URL);
		return -1;
	}
	for (size_t i = 0; i < ulen; i++)
		if ((unsigned char)url[i] <= ' ' || (unsigned char)url[i] >= 0x7f) {
			snprintf(why, whylen, "the %s holds a space, a control character or a non-ASCII byte", what);
			return -1;
		}
	int https;
	const char *p;
	if (!strncasecmp(url, "https://", 8)) {
		https = 1;
		p = url + 8;
	} else if (!strncasecmp(url, "http://", 7)) {
		https = 0;
		p = url + 7;
	} else {
		snprintf(why, whylen, "the %s is not an http or https URL", what);
		return -1;
	}
	if (strchr(url, '#')) {
		snprintf(why, whylen, "the %s has a fragment", what);
		return -1;
	}
	size_t alen = strcspn(p, "/?");
	if (memchr(p, '@', alen)) {
		snprintf(why, whylen, "the %s has userinfo (credentials go in the secret fields)", what);
		return -1;
	}
	/* host [":" port], the host an IPv6 literal in brackets or not. */
	size_t hlen;
	if (alen > 0 && p[0] == '[') {
		const char *close = memchr(p, ']', alen);
		hlen = close ? (size_t)(close - p) + 1 : alen;
	} else {
		const char *colon = memchr(p, ':', alen);
		hlen = colon ? (size_t)(colon - p) : alen;
	}
	if (hlen == 0) {
		snprintf(why, whylen, "the %s has no host", what);
		return -1;
	}
	if (hlen < alen) {
		const char *port = p + hlen;
		size_t plen = alen - hlen;
		unsigned v = 0;
		int ok = port[0] == ':' && plen >= 2 && plen <= 6;
		for (size_t i = 1; ok && i < plen; i++) {
			ok = port[i] >= '0' && port[i] <= '9';
			v = v * 10 + (unsigned)(port[i] - '0');
		}
		if (!ok || v == 0 || v > 65535) {
			snprintf(why, whylen, "the %s's port is not a number from 1 to 65535", what);
			return -1;
		}
	}
	enum hostkind k = classify(p, hlen, addr);
	if (k == H_BAD) {
		snprintf(why, whylen, "the %s's host '%.*s' is not a DNS name or an IP address", what,
		         (int)(hlen > 253 ? 253 : hlen), p);
		return -1;
	}
	size_t nh = rule ? rule->nhosts : 0;
	if (nh > RESIDENCY_MAX_RULES)
		nh = RESIDENCY_MAX_RULES;
	int allowed = 0;
	for (size_t i = 0; i < nh && !allowed; i++)
		allowed = rule->hosts[i] && matches(rule->hosts[i], p, hlen, k, addr);
	if (!allowed) {
		list(names, sizeof names, rule ? rule->hosts : NULL, nh);
		snprintf(why, whylen, "host '%.*s' is not among region %s's stream destinations (stream_hosts: %s)",
		         (int)hlen, p, region ? region : "?", names);
		return -1;
	}
	if (!https && !loopback(p, hlen, k, addr)) {
		snprintf(why, whylen,
		         "plain http is allowed only to a loopback host; host '%.*s' needs https", (int)hlen, p);
		return -1;
	}
	if (s3_region) {
		size_t ns = rule->ns3 > RESIDENCY_MAX_RULES ? RESIDENCY_MAX_RULES : rule->ns3;
		for (size_t i = 0; i < ns; i++)
			if (rule->s3_regions[i] && !strcmp(rule->s3_regions[i], s3_region))
				return 0;
		list(names, sizeof names, rule->s3_regions, ns);
		snprintf(why, whylen,
		         "S3 region '%.64s' is not among region %s's stream S3 regions (stream_s3_regions: %s)",
		         s3_region, region ? region : "?", names);
		return -1;
	}
	return 0;
}
