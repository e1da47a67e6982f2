/* Where a region's log streams may deliver: the one owner of the residency
 * rule, applied by the control plane when a stream is created or changed
 * (422 destination_not_allowed) and again by the data plane before every
 * delivery (the stream is then "refused"), with the rule the region's
 * signed document carries.
 *
 * A region's rule is two lists (region catalog: stream_hosts,
 * stream_s3_regions; document claim stream_rules {hosts, s3_regions}):
 *   hosts       patterns a destination URL's host must match, compared
 *               case-insensitively: an exact name ("splunk.acme.eu"), an IP
 *               literal ("127.0.0.1", "[::1]"), or "*.<suffix>" (matches
 *               any name ending in ".<suffix>", at least one label more;
 *               never an IP literal). At most RESIDENCY_MAX_RULES.
 *   s3_regions  the S3 regions ("eu-west-1") an s3 destination may name;
 *               its endpoint's host must match `hosts` as well.
 * Further, for every kind:
 *   - the URL is http or https, with a host, no userinfo, no fragment, at
 *     most RESIDENCY_MAX_URL bytes; a port is allowed;
 *   - plain http only when the host is a loopback address (127.0.0.0/8,
 *     [::1], "localhost") and that host is allowed by `hosts` (so only a
 *     region whose rule names loopback, such as the local stack's, accepts
 *     it); elsewhere https.
 * An empty `hosts` allows nothing. The check is on names, as written; the
 * address a name resolves to is not checked (see README: Log streams). */
#ifndef CT_RESIDENCY_H
#define CT_RESIDENCY_H

#include <stddef.h>

#define RESIDENCY_MAX_RULES 64
#define RESIDENCY_MAX_PATTERN 253
#define RESIDENCY_MAX_URL 2048

struct residency_rule {
	const char *hosts[RESIDENCY_MAX_RULES];
	size_t nhosts;
	const char *s3_regions[RESIDENCY_MAX_RULES];
	size_t ns3;
};

/* 1 when `p` is a well-formed host pattern (see above), else 0. */
int residency_pattern_valid(const char *p);

/* Checks a destination against `rule`. `url` is the webhook's or HEC's URL,
 * or the s3 endpoint; `s3_region` is NULL except for s3. Returns 0 when
 * allowed; otherwise -1 with `why` a sentence naming the rule broken (for
 * a 422 detail and a stream's last_error), e.g. "host
 * 'siem.eu.example' is not among region us's stream destinations
 * (stream_hosts: *.us.example, 127.0.0.1)". `region` names the region in
 * that sentence. */
int residency_check(const struct residency_rule *rule, const char *region, const char *url,
                    const char *s3_region, char *why, size_t whylen);

#endif
