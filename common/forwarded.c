/* The client's address behind a trusted proxy (see forwarded.h). */
#include "forwarded.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* `text` (at most 45 characters, no port) as 16 bytes; 4 or 6, or 0. */
static int parse_addr(const char *text, size_t len, unsigned char out[16])
{
	char buf[INET6_ADDRSTRLEN];
	if (len == 0 || len >= sizeof buf)
		return 0;
	memcpy(buf, text, len);
	buf[len] = '\0';
	if (inet_pton(AF_INET, buf, out + 12) == 1) {
		memcpy(out, v4mapped, 12);
		return 4;
	}
	return inet_pton(AF_INET6, buf, out) == 1 ? 6 : 0;
}

static int peer_addr(const struct sockaddr *sa, unsigned char out[16])
{
	if (!sa)
		return -1;
	if (sa->sa_family == AF_INET) {
		memcpy(out, v4mapped, 12);
		memcpy(out + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		return 0;
	}
	return -1;
}

static int in_prefix(const struct fwd_prefix *p, const unsigned char a[16])
{
	unsigned full = p->bits / 8, rest = p->bits % 8;
	if (memcmp(p->addr, a, full))
		return 0;
	if (!rest)
		return 1;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (p->addr[full] & mask) == (a[full] & mask);
}

int fwd_parse(const char *text, struct fwd_list *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	for (const char *s = text ? text : ""; *s;) {
		s += strspn(s, " \t,");
		size_t n = strcspn(s, " \t,");
		if (!n)
			break;
		const char *slash = memchr(s, '/', n);
		size_t alen = slash ? (size_t)(slash - s) : n;
		struct fwd_prefix p = { 0 };
		int fam = parse_addr(s, alen, p.addr);
		unsigned max = fam == 4 ? 32 : 128, bits = max;
		if (fam && slash) {
			const char *b = slash + 1;
			char *end = NULL;
			unsigned long v = max + 1;
			if (b < s + n && *b >= '0' && *b <= '9')
				v = strtoul(b, &end, 10);
			if (end != s + n || v > max)
				fam = 0;
			bits = (unsigned)v;
		}
		if (!fam) {
			snprintf(err, errlen, "'%.*s' is not an IP address or prefix (a.b.c.d[/n], x:y::z[/n])", (int)(n > 64 ? 64 : n), s);
			return -1;
		}
		if (out->n == FWD_MAX) {
			snprintf(err, errlen, "more than %d entries", FWD_MAX);
			return -1;
		}
		p.bits = fam == 4 ? 96 + bits : bits;
		/* The host bits of a prefix are cleared: 10.1.2.3/8 is 10.0.0.0/8. */
		for (unsigned i = p.bits; i < 128; i++)
			p.addr[i / 8] &= (unsigned char)~(0x80 >> (i % 8));
		out->p[out->n++] = p;
		s += n;
	}
	return 0;
}

const struct sockaddr *fwd_client(const struct fwd_list *trusted, const struct sockaddr *peer, const char *xff,
                                  struct sockaddr_storage *buf)
{
	unsigned char a[16];
	size_t i;
	if (!trusted || !trusted->n || !xff || peer_addr(peer, a) != 0)
		return peer;
	for (i = 0; i < trusted->n && !in_prefix(&trusted->p[i], a); i++)
		;
	if (i == trusted->n)
		return peer;
	/* The last entry: what the trusted proxy appended. */
	const char *last = strrchr(xff, ',');
	last = last ? last + 1 : xff;
	last += strspn(last, " \t");
	size_t len = strcspn(last, " \t");
	if (last[len] != '\0' && last[len + strspn(last + len, " \t")] != '\0')
		return peer;
	unsigned char c[16];
	int fam = parse_addr(last, len, c);
	memset(buf, 0, sizeof *buf);
	if (fam == 4) {
		struct sockaddr_in *sin = (struct sockaddr_in *)buf;
		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, c + 12, 4);
	} else if (fam == 6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)buf;
		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, c, 16);
	} else {
		return peer;
	}
	return (const struct sockaddr *)buf;
}
