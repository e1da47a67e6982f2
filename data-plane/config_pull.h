/* Loading the region's signed configuration, never on a request's path.
 *
 * At start-up the cached document (DP_CACHE_DIR/config.jwt) is verified and
 * put in use at once, expired or not; a corrupt or tampered one is moved
 * aside. Then one background thread long-polls the control plane for newer
 * versions, verifies each (a version not newer than the one in use, or
 * older than the highest ever applied, kept in DP_CACHE_DIR/version, is a
 * rollback), caches it and swaps it in, backs off with jitter on errors,
 * and reports this instance's state to the control plane (fleet status).
 * It drives libcurl's multi interface, so that stopping it never waits for
 * a hung control plane. */
#ifndef DP_CONFIG_PULL_H
#define DP_CONFIG_PULL_H

#include <stdint.h>
#include <stdio.h>

struct dp_app;
struct dp_pull;

/* The puller's state and counters, without its thread. `app` (its cfg,
 * instance, trust and snaps) must outlive it. NULL when out of memory. */
struct dp_pull *dp_pull_new(struct dp_app *app);

/* Start-up: reads the version floor (DP_CACHE_DIR/version), verifies
 * DP_CACHE_DIR/config.jwt (allowing an expired one) and puts it in use.
 * A file whose bytes do not verify (format, signature, key, issuer,
 * audience, content) is logged, counted and renamed config.jwt.rejected.
 * One that fails only on time or version is kept in place and not served:
 * not valid yet (a clock behind) it is put in use by the pull thread once
 * the clock reaches its nbf, unless a pull brought one first; older than
 * the floor it waits for a pull. Its version raises the floor either way.
 * Never fails the start. Call before the thread starts. */
void dp_pull_load_cache(struct dp_pull *p);

/* Starts the pull thread. Returns 0, or -1 with `err` set. */
int dp_pull_start(struct dp_pull *p, char *err, size_t errlen) __attribute__((warn_unused_result));
/* Stops the thread, abandoning any transfer in flight; returns promptly
 * whatever the control plane does. Idempotent. */
void dp_pull_stop(struct dp_pull *p);
/* Stops (if needed) and frees. Accepts NULL. */
void dp_pull_free(struct dp_pull *p);

/* A request met a credential signed with a key not trusted here (a move's,
 * after a rotation this data plane has not followed yet): the key set is
 * asked for soon, not at the next DP_KEYSET_INTERVAL. At most once every 5
 * seconds, whatever the requests: a made-up key id costs the control plane
 * nothing more. Any thread. */
void dp_pull_want_keyset(struct dp_pull *p);

/* Unix seconds of the last pull answered with a verified document or 304;
 * 0 when there was none. Any thread. */
int64_t dp_pull_last_ok(const struct dp_pull *p);

/* Appends the dp_config_* families to a /metrics page. Any thread. */
void dp_pull_metrics(struct dp_pull *p, FILE *out);

/* Unix seconds as RFC 3339 in UTC: "2024-05-01T12:00:00Z". */
void dp_time_rfc3339(int64_t t, char out[32]);

#endif
