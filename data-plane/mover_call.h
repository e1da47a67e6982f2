/* The mover's HTTP calls: one reusable connection per peer role (control
 * plane, source cell, target cell), so that a move's many small requests
 * ride kept-alive connections, and two calls performed at once, so that the
 * copy fetches the source's next page while the target stores this one.
 *
 * A call gets: the URL given, a bearer credential (the text is wiped from
 * the stack once libcurl holds it; never logged), an optional body (sent
 * as is, borrowed until the call ends), a connect timeout and a total
 * timeout, no signals, http and https only, an answer of at most `max`
 * bytes (a longer one aborts the transfer), and a progress callback that
 * aborts it as soon as `*stop` is set. */
#ifndef DP_MOVER_CALL_H
#define DP_MOVER_CALL_H

#include <curl/curl.h>
#include <stdatomic.h>
#include <stddef.h>

#include "buf.h"

struct mover_conn {
	CURLM *multi;                  /* borrowed, set by the owner: its connection cache
	                                * keeps every connection open between calls */
	const char *ca_file;           /* borrowed, set by the owner: the CA pinned for
	                                * https (NULL: the system's trust store) */
	CURL *easy;
	struct curl_slist *headers;
	struct buf answer;             /* the last call's answer body */
	size_t max;
	int too_large;
	long status;                   /* 0: no HTTP answer (see rc) */
	CURLcode rc;
	const atomic_int *stop;
	char errbuf[CURL_ERROR_SIZE];
};

/* Sets `c` up for one call. `body` NULL: no body (a POST without one sends
 * Content-Length: 0). `content_type` applies to a body. Returns 0, or -1
 * when the header does not fit or memory runs out (nothing to perform). */
int mover_conn_prepare(struct mover_conn *c, const char *method, const char *url, const char *bearer,
                       const char *content_type, const char *body, size_t len, size_t max,
                       long connect_ms, long total_ms, const atomic_int *stop)
	__attribute__((warn_unused_result));

/* Performs one prepared call; then status, rc and answer are set. With a
 * `multi`, through it (a handle's connection then outlives the call). */
void mover_conn_perform(struct mover_conn *c);

/* Performs two prepared calls at once (either may be NULL), through a's
 * `multi`, which both must share. */
void mover_conn_perform2(struct mover_conn *a, struct mover_conn *b);

/* 1 when the last call was a stop abort, not a failure. */
int mover_conn_stopped(const struct mover_conn *c);

/* Why the last call got no HTTP answer (for logs): libcurl's message. */
const char *mover_conn_error(const struct mover_conn *c);

/* Releases the handle and buffers (accepts a zeroed `c`). */
void mover_conn_free(struct mover_conn *c);

#endif
