/* What keeps logins from starving the control plane: a bound on the
 * password checks running at once, and a token bucket of login attempts
 * per source address, both in this process's memory.
 *
 * A source is the TCP peer: an IPv4 address, or the /64 prefix of an IPv6
 * address (one host usually holds a whole /64). Forwarding headers are not
 * trusted, so behind a proxy every client shares the proxy's bucket.
 * Buckets live in a fixed table (4,096 of them, 4-way set associative with
 * a keyed hash); a new source replaces the fullest bucket of its set, which
 * forgets the least. The per-account backoff of failed logins is kept in
 * the database (cpdb_login_failed), not here. Thread-safe. */
#ifndef CP_LOGIN_GUARD_H
#define CP_LOGIN_GUARD_H

#include <stdio.h>

struct login_guard;
struct sockaddr;

#define LOGIN_SOURCE_MAX 56

/* `concurrency` password checks at once; `per_min` attempts per minute per
 * source, `burst` at once. NULL when out of memory. */
struct login_guard *login_guard_new(long concurrency, long per_min, long burst);
/* Accepts NULL. */
void login_guard_free(struct login_guard *g);

/* The source key of `peer` (NULL or another family: "unknown"), as stored
 * with failed logins: "192.0.2.7" or "2001:db8:1:2::/64". */
void login_source_key(const struct sockaddr *peer, char out[LOGIN_SOURCE_MAX]);

/* Takes one attempt from the source's bucket. Returns 0 when allowed, or
 * the whole seconds (>= 1) until the next attempt will be. */
long login_guard_take(struct login_guard *g, const struct sockaddr *peer)
	__attribute__((warn_unused_result));

/* Takes a password-check slot without waiting: 0, or -1 when all are in
 * use. Every 0 is paired with one login_guard_leave(). */
int login_guard_enter(struct login_guard *g) __attribute__((warn_unused_result));
void login_guard_leave(struct login_guard *g);

/* Counts a login refused because the source waits after failures. */
void login_guard_count_backoff(struct login_guard *g);

/* Appends cp_logins_in_progress and cp_login_refused_total{reason}. */
void login_guard_metrics(struct login_guard *g, FILE *out);

#endif
