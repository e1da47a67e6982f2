/* The client's address behind a trusted proxy: the one owner of
 * X-Forwarded-For in the tree.
 *
 * A service behind a TLS edge or a load balancer sees every request come
 * from the proxy; whatever is keyed on the client's address (the control
 * plane's login guard) would then put every client in one bucket. With a
 * list of trusted proxies (addresses or CIDR prefixes, IPv4 and IPv6), a
 * request whose TCP peer is one of them is taken to come from the address
 * that proxy put last: the last entry of the last X-Forwarded-For line
 * (nginx's $proxy_add_x_forwarded_for appends to the client's line;
 * HAProxy's `option forwardfor` adds a line of its own after the client's,
 * so the caller passes the last line: http_req_header_last). Whatever
 * comes before it was written by the client and is not believed; a peer
 * that is not trusted is the client, whatever it sends. A malformed last
 * entry, or none, leaves the peer. */
#ifndef CT_FORWARDED_H
#define CT_FORWARDED_H

#include <stddef.h>
#include <sys/socket.h>

#define FWD_MAX 32 /* prefixes in one list */

struct fwd_prefix {
	unsigned char addr[16]; /* IPv4 as ::ffff:a.b.c.d */
	unsigned bits;          /* of the 128 (an IPv4 /n is 96 + n) */
};

struct fwd_list {
	struct fwd_prefix p[FWD_MAX];
	size_t n;
};

/* Parses "10.0.0.0/8 127.0.0.1, fd00::/8" (spaces or commas between
 * entries; an empty text is an empty list) into `out`. Returns 0, or -1
 * with the reason (naming the entry) in `err`. */
int fwd_parse(const char *text, struct fwd_list *out, char *err, size_t errlen);

/* The client of a request from `peer` carrying X-Forwarded-For `xff`
 * (NULL: none): `peer` itself, or `buf` filled with the address the
 * trusted proxy appended. */
const struct sockaddr *fwd_client(const struct fwd_list *trusted, const struct sockaddr *peer, const char *xff,
                                  struct sockaddr_storage *buf);

#endif
