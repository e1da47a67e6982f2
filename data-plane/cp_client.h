/* Calls from the data plane to the control plane: the one way an easy handle
 * is set up for them (configuration pulls, fleet status, usage batches), so
 * that every call has the same URL rules, credential, bounds and errors.
 *
 * A request gets: the URL of `path` under DP_CONTROL_PLANE_URL (url_join),
 * the region credential as a bearer token (the text is wiped from the
 * stack once libcurl holds it), DP_PULL_CONNECT_TIMEOUT to connect, the
 * caller's total timeout, TCP keepalive, no signals, a User-Agent naming
 * the service, http and https only, an answer of at most `max` bytes (a
 * longer one aborts the transfer and sets `too_large`), a progress callback
 * that aborts the transfer as soon as `*stop` is set (prompt shutdown), and
 * a name lookup that is abandoned rather than waited for at cleanup.
 *
 * The caller adds its own headers (dp_cp_request_header) and options
 * (method, body, Accept-Encoding), then performs the transfer itself, easy
 * or multi, and reads the answer from `body`. */
#ifndef DP_CP_CLIENT_H
#define DP_CP_CLIENT_H

#include <curl/curl.h>
#include <stdatomic.h>
#include <stddef.h>

#include "buf.h"
#include "dp.h"

#define DP_CP_USER_AGENT "celltrail-data-plane"

struct dp_cp_request {
	CURL *easy;                    /* NULL when idle */
	struct curl_slist *headers;    /* set on `easy` by dp_cp_request_header */
	struct buf body;               /* the answer, at most `max` bytes */
	size_t max;
	int too_large;                 /* the answer was longer than `max`: the transfer aborted */
	const atomic_int *stop;
	char errbuf[CURL_ERROR_SIZE];
};

/* Sets up `r` (overwritten) for `path` under cfg->control_plane_url, with
 * a total timeout of `total_ms`. `stop` (borrowed, may be NULL) aborts the
 * transfer when it becomes non-zero. Returns 0, or -1 (`r` then needs
 * dp_cp_request_end() all the same) when the URL or the credential header
 * does not fit (2048 and 1024 bytes) or memory runs out. */
int dp_cp_request_begin(struct dp_cp_request *r, const struct dp_config *cfg, const char *path,
                        size_t max, long total_ms, const atomic_int *stop)
	__attribute__((warn_unused_result));

/* Adds one header line ("Name: value"). Returns 0 or -1 (out of memory). */
int dp_cp_request_header(struct dp_cp_request *r, const char *line) __attribute__((warn_unused_result));

/* Why a transfer that ended with `rc` (not CURLE_OK) failed, for logs and
 * status: libcurl's detailed message when it left one, else its text for
 * `rc`. The pointer lives as long as `r`. */
const char *dp_cp_request_error(const struct dp_cp_request *r, CURLcode rc);

/* Releases the handle, headers and answer; `r` is idle again. A handle in a
 * multi handle must be removed from it first. Accepts an idle `r`. */
void dp_cp_request_end(struct dp_cp_request *r);

#endif
