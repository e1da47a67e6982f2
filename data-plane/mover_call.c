/* The mover's HTTP calls over kept-alive libcurl handles (mover_call.h). */
#include "mover_call.h"

#include <stdio.h>
#include <string.h>

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
	struct mover_conn *c = ctx;
	size_t len = size * n;
	if (c->answer.len + len > c->max) {
		c->too_large = 1;
		return 0;
	}
	buf_append(&c->answer, data, len);
	return c->answer.failed ? 0 : len;
}

static int on_progress(void *ctx, curl_off_t a, curl_off_t b, curl_off_t d, curl_off_t e)
{
	(void)a, (void)b, (void)d, (void)e;
	const struct mover_conn *c = ctx;
	return c->stop && atomic_load(c->stop) ? 1 : 0;
}

int mover_conn_prepare(struct mover_conn *c, const char *method, const char *url, const char *bearer,
                       const char *content_type, const char *body, size_t len, size_t max,
                       long connect_ms, long total_ms, const atomic_int *stop)
{
	char auth[4200], ctype[128];
	int ret = -1;

	curl_slist_free_all(c->headers);
	c->headers = NULL;
	c->answer.len = 0;
	if (c->answer.p)
		c->answer.p[0] = '\0';
	c->answer.failed = 0;
	c->too_large = 0;
	c->status = 0;
	c->rc = CURLE_OK;
	c->errbuf[0] = '\0';
	c->max = max;
	c->stop = stop;
	if (!c->easy && !(c->easy = curl_easy_init()))
		goto out;
	/* reset keeps the connection cache: the next call reuses the socket. */
	curl_easy_reset(c->easy);
	if ((size_t)snprintf(auth, sizeof auth, "Authorization: Bearer %s", bearer) >= sizeof auth ||
	    !(c->headers = curl_slist_append(c->headers, auth)))
		goto out;
	if (body) {
		struct curl_slist *h;
		snprintf(ctype, sizeof ctype, "Content-Type: %s", content_type ? content_type : "application/json");
		if (!(h = curl_slist_append(c->headers, ctype)))
			goto out;
		c->headers = h;
	}
	curl_easy_setopt(c->easy, CURLOPT_URL, url);
	curl_easy_setopt(c->easy, CURLOPT_CUSTOMREQUEST, method);
	if (!strcmp(method, "POST") || body) {
		curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? len : 0));
	}
	curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->headers);
	curl_easy_setopt(c->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	if (c->ca_file) { /* pinned: this CA only */
		curl_easy_setopt(c->easy, CURLOPT_CAINFO, c->ca_file);
		curl_easy_setopt(c->easy, CURLOPT_CAPATH, NULL);
	}
	curl_easy_setopt(c->easy, CURLOPT_USERAGENT, "celltrail-mover");
	curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->easy, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
	curl_easy_setopt(c->easy, CURLOPT_TIMEOUT_MS, total_ms);
	curl_easy_setopt(c->easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(c->easy, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(c->easy, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c->easy, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c->easy, CURLOPT_XFERINFODATA, c);
	curl_easy_setopt(c->easy, CURLOPT_QUICK_EXIT, 1L);
	ret = 0;
out:
	explicit_bzero(auth, sizeof auth);
	return ret;
}

static void finish(struct mover_conn *c, CURLcode rc)
{
	c->rc = rc;
	c->status = 0;
	if (rc == CURLE_OK)
		curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &c->status);
	if (c->answer.failed && rc == CURLE_OK)
		c->rc = CURLE_OUT_OF_MEMORY, c->status = 0;
}

/* Runs the handles of `a` and `b` (b may be NULL) in `m` until both end. */
static void run_multi(CURLM *m, struct mover_conn *a, struct mover_conn *b)
{
	int running = 0;
	a->rc = CURLE_RECV_ERROR;
	if (b)
		b->rc = CURLE_RECV_ERROR;
	if (curl_multi_add_handle(m, a->easy) != CURLM_OK)
		return;
	if (b && curl_multi_add_handle(m, b->easy) != CURLM_OK) {
		curl_multi_remove_handle(m, a->easy);
		return;
	}
	do {
		if (curl_multi_perform(m, &running) != CURLM_OK)
			break;
		if (running && curl_multi_poll(m, NULL, 0, 200, NULL) != CURLM_OK)
			break;
	} while (running);
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(m, &left)))
		if (msg->msg == CURLMSG_DONE)
			finish(msg->easy_handle == a->easy ? a : b, msg->data.result);
	curl_multi_remove_handle(m, a->easy);
	if (b)
		curl_multi_remove_handle(m, b->easy);
}

void mover_conn_perform(struct mover_conn *c)
{
	if (c->multi)
		run_multi(c->multi, c, NULL);
	else
		finish(c, curl_easy_perform(c->easy));
}

void mover_conn_perform2(struct mover_conn *a, struct mover_conn *b)
{
	if (!a || !b || !a->multi || a->multi != b->multi) {
		if (a)
			mover_conn_perform(a);
		if (b)
			mover_conn_perform(b);
		return;
	}
	run_multi(a->multi, a, b);
}

int mover_conn_stopped(const struct mover_conn *c)
{
	return c->rc == CURLE_ABORTED_BY_CALLBACK && c->stop && atomic_load(c->stop);
}

const char *mover_conn_error(const struct mover_conn *c)
{
	if (c->too_large)
		return "the answer is larger than the mover accepts";
	return c->errbuf[0] ? c->errbuf : curl_easy_strerror(c->rc);
}

void mover_conn_free(struct mover_conn *c)
{
	curl_slist_free_all(c->headers);
	c->headers = NULL;
	if (c->easy)
		curl_easy_cleanup(c->easy);
	c->easy = NULL;
	buf_free(&c->answer);
}
