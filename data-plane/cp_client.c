/* The setup of every call to the control plane (see cp_client.h). */
#include "cp_client.h"

#include <stdio.h>
#include <string.h>

#include "url.h"

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
	struct dp_cp_request *r = ctx;
	size_t len = size * n;
	if (r->body.len + len > r->max) {
		r->too_large = 1;
		return 0; /* aborts the transfer */
	}
	buf_append(&r->body, data, len);
	return r->body.failed ? 0 : len;
}

static int on_progress(void *ctx, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	(void)a, (void)b, (void)c, (void)d;
	const struct dp_cp_request *r = ctx;
	return r->stop && atomic_load(r->stop) ? 1 : 0;
}

int dp_cp_request_begin(struct dp_cp_request *r, const struct dp_config *cfg, const char *path,
                        size_t max, long total_ms, const atomic_int *stop)
{
	char url[2048], auth[1024];
	int ret = -1;

	memset(r, 0, sizeof *r);
	r->max = max;
	r->stop = stop;
	if (url_join(url, sizeof url, cfg->control_plane_url, path) != 0 || !(r->easy = curl_easy_init()))
		goto out;
	/* A credential cut short would only be refused: not sent at all. */
	if ((size_t)snprintf(auth, sizeof auth, "Authorization: Bearer %s", dp_cp_token(cfg)) >= sizeof auth ||
	    dp_cp_request_header(r, auth) != 0)
		goto out;
	curl_easy_setopt(r->easy, CURLOPT_URL, url);
	curl_easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	if (cfg->control_plane_ca_file) { /* pinned: this CA only */
		curl_easy_setopt(r->easy, CURLOPT_CAINFO, cfg->control_plane_ca_file);
		curl_easy_setopt(r->easy, CURLOPT_CAPATH, NULL);
	}
	curl_easy_setopt(r->easy, CURLOPT_USERAGENT, DP_CP_USER_AGENT);
	curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->pull_connect_timeout_ms);
	curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, total_ms);
	curl_easy_setopt(r->easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(r->easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max);
	curl_easy_setopt(r->easy, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(r->easy, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(r->easy, CURLOPT_XFERINFODATA, r);
	/* A name lookup that hangs must not hold up shutdown either: the
	 * resolver thread is abandoned rather than waited for. */
	curl_easy_setopt(r->easy, CURLOPT_QUICK_EXIT, 1L);
	ret = 0;
out:
	explicit_bzero(auth, sizeof auth);
	return ret;
}

int dp_cp_request_header(struct dp_cp_request *r, const char *line)
{
	struct curl_slist *h = curl_slist_append(r->headers, line);
	if (!h)
		return -1;
	r->headers = h;
	curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
	return 0;
}

const char *dp_cp_request_error(const struct dp_cp_request *r, CURLcode rc)
{
	return r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc);
}

void dp_cp_request_end(struct dp_cp_request *r)
{
	curl_easy_cleanup(r->easy);
	curl_slist_free_all(r->headers);
	buf_free(&r->body);
	memset(r, 0, sizeof *r);
}
