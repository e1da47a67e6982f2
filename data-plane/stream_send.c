/* The three wire protocols of a log stream (see stream_send.h): the body of
 * each kind, its headers and signature, and what counts as acknowledged. */
#include "stream_send.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "buf.h"
#include "gzip.h"
#include "secret.h"
#include "timefmt.h"

/* What is kept of an answer: enough for HEC's {"text","code"} and for an
 * excerpt in last_error. A longer answer is cut off (the transfer ends
 * there), so that a destination answering without end costs no memory and
 * no more time than this much reading. */
#define ANSWER_MAX (64 * 1024)
/* The most of a destination's answer quoted in last_error. */
#define EXCERPT_MAX 200
/* A Retry-After further away than this is taken as this (the caller caps
 * it again at its own maximum): keeps the arithmetic far from overflow. */
#define RETRY_AFTER_MAX (7 * 86400)
/* A webhook key: 24 to 64 bytes (stream_send.h). */
#define WEBHOOK_KEY_MIN 24
#define WEBHOOK_KEY_MAX 64

struct stream_sender {
	CURL *easy;
	char *ca_file, *user_agent;   /* owned */
	long timeout_ms, connect_timeout_ms;
	struct buf body, gz, answer;  /* reused from batch to batch */
	int answer_cut;               /* the answer was longer than ANSWER_MAX */
	int64_t retry_after_s;
	char errbuf[CURL_ERROR_SIZE];
};

static const char *const kind_names[] = { "webhook", "splunk_hec", "s3" };

const char *stream_kind_name(enum stream_kind k)
{
	return (unsigned)k < sizeof kind_names / sizeof kind_names[0] ? kind_names[k] : "unknown";
}

int stream_kind_parse(const char *name)
{
	for (size_t i = 0; name && i < sizeof kind_names / sizeof kind_names[0]; i++)
		if (!strcmp(name, kind_names[i]))
			return (int)i;
	return -1;
}

void stream_batch_id(const char *stream_id, int64_t no, char out[64])
{
	snprintf(out, 64, "%s-%012" PRId64, stream_id, no);
}

struct stream_sender *stream_sender_new(const struct stream_send_opts *o)
{
	struct stream_sender *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 10000;
	s->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : s->timeout_ms;
	if (!(s->easy = curl_easy_init()) || (o->ca_file && !(s->ca_file = strdup(o->ca_file))) ||
	    !(s->user_agent = strdup(o->user_agent ? o->user_agent : "celltrail-stream"))) {
		stream_sender_free(s);
		return NULL;
	}
	return s;
}

static void buf_wipe(struct buf *b)
{
	if (b->p)
		OPENSSL_cleanse(b->p, b->cap);
	buf_free(b);
}

void stream_sender_free(struct stream_sender *s)
{
	if (!s)
		return;
	if (s->easy)
		curl_easy_cleanup(s->easy);
	free(s->ca_file);
	free(s->user_agent);
	buf_free(&s->body);
	buf_free(&s->gz);
	buf_wipe(&s->answer);
	free(s);
}

/* Empties `b`, keeping its memory for the next batch. */
static void buf_reset(struct buf *b)
{
	b->len = 0;
	b->failed = 0;
	if (b->p)
		b->p[0] = '\0';
}

/* --- bodies --- */

/* Appends `s` as a JSON string. */
static void json_str(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	buf_append(b, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
		if (*p == '"' || *p == '\\') {
			char e[2] = { '\\', (char)*p };
			buf_append(b, e, 2);
		} else if (*p < 0x20) {
			char e[6] = { '\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15] };
			buf_append(b, e, 6);
		} else {
			buf_append(b, p, 1);
		}
	}
	buf_append(b, "\"", 1);
}

static void webhook_body(struct buf *b, const struct stream_dest *d, const struct stream_batch *bt)
{
	char when[TIMEFMT_LEN];
	timefmt_format(bt->made_at * INT64_C(1000000), when);
	buf_printf(b, "{\"type\":\"audit_events.batch\",\"timestamp\":\"%s\",\"data\":{\"stream_id\":", when);
	json_str(b, d->stream_id);
	buf_append(b, ",\"tenant_id\":", 13);
	json_str(b, d->tenant_id);
	buf_append(b, ",\"batch_id\":", 12);
	json_str(b, bt->id);
	buf_printf(b, ",\"batch_no\":%" PRId64 ",\"events\":[", bt->no);
	for (size_t i = 0; i < bt->n; i++) {
		if (i)
			buf_append(b, ",", 1);
		buf_append(b, bt->events[i].json, bt->events[i].len);
	}
	buf_append(b, "]}}", 3);
}

static void hec_body(struct buf *b, const struct stream_dest *d, const struct stream_batch *bt)
{
	for (size_t i = 0; i < bt->n; i++) {
		const struct stream_event *e = &bt->events[i];
		int64_t us = e->received_at_us;
		/* Seconds with six decimals, the sign kept apart so that a time
		 * before 1970 (never stored, but representable) stays exact. */
		uint64_t a = us < 0 ? (uint64_t)0 - (uint64_t)us : (uint64_t)us;
		buf_printf(b, "{\"time\":%s%" PRIu64 ".%06" PRIu64 ",\"source\":\"celltrail\","
		              "\"sourcetype\":\"celltrail:audit_event\",\"event\":",
		           us < 0 ? "-" : "", a / 1000000, a % 1000000);
		buf_append(b, e->json, e->len);
		buf_append(b, ",\"fields\":{\"tenant_id\":", 23);
		json_str(b, d->tenant_id);
		buf_append(b, ",\"stream_id\":", 13);
		json_str(b, d->stream_id);
		buf_append(b, ",\"batch_id\":", 12);
		json_str(b, bt->id);
		buf_append(b, "}}\n", 3);
	}
}

/* The NDJSON of the batch, gzipped into `gz` with `body` as scratch.
 * Returns 0 or -1 (out of memory). */
static int s3_body(struct stream_sender *s, const struct stream_batch *bt)
{
	int ret = -1;
	/* Level 6: zlib's default, the usual size/time balance. gzip.h writes
	 * no time and no name in the header, so a batch compresses to the
	 * same bytes on every attempt. */
	struct gzip_stream *g = gzip_new(6);
	if (!g)
		goto out;
	for (size_t i = 0; i < bt->n; i++)
		if (gzip_write(g, bt->events[i].json, bt->events[i].len, 0, &s->gz) != 0 ||
		    gzip_write(g, "\n", 1, 0, &s->gz) != 0)
			goto out;
	if (gzip_finish(g, &s->gz) != 0)
		goto out;
	ret = s->gz.failed ? -1 : 0;
out:
	gzip_free(g);
	return ret;
}

/* Appends `seg` to `b` percent-encoded as one S3 path segment ('/' kept
 * when `slash`): the unreserved characters of RFC 3986 stay as they are,
 * which is also how SigV4 encodes a canonical URI, so that the path libcurl
 * signs is the path sent. */
static void path_enc(struct buf *b, const char *seg, int slash)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)(seg ? seg : ""); *p; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '_' || *p == '.' || *p == '~' || (slash && *p == '/')) {
			buf_append(b, p, 1);
		} else {
			char e[3] = { '%', hex[*p >> 4], hex[*p & 15] };
			buf_append(b, e, 3);
		}
	}
}

/* --- the webhook signature --- */

/* Decodes standard base64 (padding optional, no whitespace) into `out`.
 * Returns the length, or -1 when `in` is not base64 or does not fit. */
static long b64_decode(const char *in, size_t inlen, unsigned char *out, size_t cap)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t n = 0, pad = 0;
	for (size_t i = 0; i < inlen; i++) {
		unsigned char c = (unsigned char)in[i];
		int v;
		if (c == '=') {
			pad++;
			continue;
		}
		if (pad)
			return -1; /* data after padding */
		if (c >= 'A' && c <= 'Z')
			v = c - 'A';
		else if (c >= 'a' && c <= 'z')
			v = c - 'a' + 26;
		else if (c >= '0' && c <= '9')
			v = c - '0' + 52;
		else if (c == '+')
			v = 62;
		else if (c == '/')
			v = 63;
		else
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n >= cap)
				return -1;
			out[n++] = (unsigned char)(acc >> bits);
		}
	}
	if (pad > 2 || bits >= 6 || (pad && (inlen % 4) != 0))
		return -1;
	return (long)n;
}

/* "v1,<base64 HMAC-SHA256(key, id "." ts "." body)>" into `out`; the key is
 * the base64 after "whsec_" in `secret`. Returns 0, or -1 (with `err`) when
 * the secret is not such a key or OpenSSL failed. */
static int webhook_sign(const struct stream_dest *d, const char *id, const char *ts, const struct buf *body,
                        char *out, size_t outlen, char *err, size_t errlen)
{
	unsigned char key[WEBHOOK_KEY_MAX + 3], mac[EVP_MAX_MD_SIZE];
	size_t maclen = 0;
	long keylen = -1;
	int ret = -1;
	EVP_MAC *m = NULL;
	EVP_MAC_CTX *c = NULL;

	if (d->secret && d->secret_len > 6 && !memcmp(d->secret, "whsec_", 6))
		keylen = b64_decode(d->secret + 6, d->secret_len - 6, key, sizeof key);
	if (keylen < WEBHOOK_KEY_MIN || keylen > WEBHOOK_KEY_MAX) {
		snprintf(err, errlen, "the webhook secret is not \"whsec_\" and the base64 of a %d to %d byte key",
		         WEBHOOK_KEY_MIN, WEBHOOK_KEY_MAX);
		goto out;
	}
	char digest[] = "SHA256";
	OSSL_PARAM params[] = { OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
		                OSSL_PARAM_construct_end() };
	if (!(m = EVP_MAC_fetch(NULL, "HMAC", NULL)) || !(c = EVP_MAC_CTX_new(m)) ||
	    !EVP_MAC_init(c, key, (size_t)keylen, params) ||
	    !EVP_MAC_update(c, (const unsigned char *)id, strlen(id)) ||
	    !EVP_MAC_update(c, (const unsigned char *)".", 1) ||
	    !EVP_MAC_update(c, (const unsigned char *)ts, strlen(ts)) ||
	    !EVP_MAC_update(c, (const unsigned char *)".", 1) ||
	    !EVP_MAC_update(c, (const unsigned char *)body->p, body->len) ||
	    !EVP_MAC_final(c, mac, &maclen, sizeof mac)) {
		snprintf(err, errlen, "signing the webhook failed (OpenSSL)");
		goto out;
	}
	/* 32 bytes: 44 characters of base64. */
	if (outlen < 3 + 4 * ((maclen + 2) / 3) + 1) {
		snprintf(err, errlen, "signing the webhook failed (no room)");
		goto out;
	}
	memcpy(out, "v1,", 3);
	EVP_EncodeBlock((unsigned char *)out + 3, mac, (int)maclen);
	ret = 0;
out:
	EVP_MAC_CTX_free(c);
	EVP_MAC_free(m);
	OPENSSL_cleanse(key, sizeof key);
	OPENSSL_cleanse(mac, sizeof mac);
	return ret;
}

/* --- the transfer --- */

static size_t on_answer(char *data, size_t size, size_t n, void *ctx)
{
	struct stream_sender *s = ctx;
	size_t len = size * n;
	if (s->answer.len + len > ANSWER_MAX) {
		s->answer_cut = 1;
		return 0; /* ends the transfer: the status is known already */
	}
	buf_append(&s->answer, data, len);
	return s->answer.failed ? 0 : len;
}

/* Retry-After (RFC 9110, 10.2.3): delay-seconds or an HTTP date. */
static int64_t retry_after(const char *v)
{
	while (*v == ' ' || *v == '\t')
		v++;
	int64_t r = -1;
	if (*v >= '0' && *v <= '9') {
		r = 0;
		for (; *v >= '0' && *v <= '9'; v++)
			r = r > RETRY_AFTER_MAX ? r : r * 10 + (*v - '0');
		while (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n')
			v++;
		if (*v)
			return 0; /* not a number after all */
	} else {
		char date[128];
		size_t n = strcspn(v, "\r\n");
		if (n == 0 || n >= sizeof date)
			return 0;
		memcpy(date, v, n);
		date[n] = '\0';
		time_t t = curl_getdate(date, NULL);
		if (t == (time_t)-1)
			return 0;
		r = (int64_t)t - (int64_t)time(NULL);
	}
	return r < 0 ? 0 : r > RETRY_AFTER_MAX ? RETRY_AFTER_MAX : r;
}

static size_t on_header(char *data, size_t size, size_t n, void *ctx)
{
	struct stream_sender *s = ctx;
	size_t len = size * n;
	static const char name[] = "retry-after:";
	/* A new status line (after a 100 Continue, say): what came before it
	 * belongs to another answer. */
	if (len >= 5 && !memcmp(data, "HTTP/", 5))
		s->retry_after_s = 0;
	else if (len > sizeof name - 1 && len < 256 && !strncasecmp(data, name, sizeof name - 1)) {
		char v[256];
		memcpy(v, data + sizeof name - 1, len - (sizeof name - 1));
		v[len - (sizeof name - 1)] = '\0';
		s->retry_after_s = retry_after(v);
	}
	return len;
}

/* Up to EXCERPT_MAX printable bytes of the answer, for last_error: runs of
 * anything else (control bytes, UTF-8, line breaks) as one space, and the
 * secret, should the destination echo it, blanked out. */
static void excerpt(const struct stream_sender *s, const struct stream_dest *d, char *out, size_t outlen)
{
	size_t n = 0;
	int space = 0;
	for (size_t i = 0; i < s->answer.len && n < EXCERPT_MAX && n + 1 < outlen; i++) {
		unsigned char c = (unsigned char)s->answer.p[i];
		if (c >= 0x20 && c < 0x7f) {
			if (space && n > 0 && n + 2 < outlen && n + 1 < EXCERPT_MAX)
				out[n++] = ' ';
			space = 0;
			out[n++] = (char)c;
		} else {
			space = 1;
		}
	}
	out[n] = '\0';
	/* Every 8-byte piece of the secret (also a webhook key's base64
	 * quoted in part), marked on the text as quoted, then starred out. */
	if (d->secret && d->secret_len >= 8) {
		unsigned char hit[EXCERPT_MAX] = { 0 };
		for (size_t i = 0; i + 8 <= n; i++)
			for (size_t j = 0; j + 8 <= d->secret_len; j++)
				if (!CRYPTO_memcmp(out + i, d->secret + j, 8)) {
					memset(hit + i, 1, 8);
					break;
				}
		for (size_t i = 0; i < n; i++)
			if (hit[i])
				out[i] = '*';
	}
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* HEC acknowledged: {"code":0} (text may say "Success"). */
static int hec_ok(const struct stream_sender *s)
{
	json_t *j = json_loadb(s->answer.p ? s->answer.p : "", s->answer.len, 0, NULL);
	json_t *code = json_object_get(j, "code");
	int ok = json_is_integer(code) && json_integer_value(code) == 0;
	json_decref(j);
	return ok;
}

/* Appends one header line to *h; sets *failed when out of memory (the
 * list is kept as it was, to be freed by the caller). */
static void header_add(struct curl_slist **h, const char *line, int *failed)
{
	struct curl_slist *n = line ? curl_slist_append(*h, line) : NULL;
	if (n)
		*h = n;
	else
		*failed = 1;
}

int stream_send(struct stream_sender *s, const struct stream_dest *d, const struct stream_batch *b,
                struct stream_send_result *r, char *err, size_t errlen)
{
	struct curl_slist *h = NULL;
	struct buf url = { 0 }, line = { 0 };
	char *userpwd = NULL;
	const struct buf *payload = &s->body;
	int ret = -1, hfail = 0;
	CURL *e = s->easy;

	memset(r, 0, sizeof *r);
	if (err && errlen)
		err[0] = '\0';
	buf_reset(&s->body);
	buf_reset(&s->gz);
	buf_reset(&s->answer);
	s->answer_cut = 0;
	s->retry_after_s = 0;
	s->errbuf[0] = '\0';
	curl_easy_reset(e);

	/* "Expect:" off: no round trip to wait on before a large body, and a
	 * destination that does not answer 100 costs no second. Not for S3:
	 * libcurl 7.88 would sign the header it then leaves out, which S3
	 * refuses (S3 answers 100 anyway). */
	if (d->kind != STREAM_S3)
		header_add(&h, "Expect:", &hfail);
	switch (d->kind) {
	case STREAM_WEBHOOK: {
		char ts[24], sig[128];
		webhook_body(&s->body, d, b);
		if (s->body.failed) {
			set_err(err, errlen, "out of memory building the batch");
			goto out;
		}
		snprintf(ts, sizeof ts, "%" PRId64, (int64_t)time(NULL));
		if (webhook_sign(d, b->id, ts, &s->body, sig, sizeof sig, err, errlen) != 0)
			goto out;
		buf_printf(&line, "webhook-id: %s", b->id);
		header_add(&h, line.p, &hfail);
		buf_reset(&line);
		buf_printf(&line, "webhook-timestamp: %s", ts);
		header_add(&h, line.p, &hfail);
		buf_reset(&line);
		buf_printf(&line, "webhook-signature: %s", sig);
		header_add(&h, line.p, &hfail);
		header_add(&h, "Content-Type: application/json", &hfail);
		buf_printf(&url, "%s", d->url ? d->url : "");
		break;
	}
	case STREAM_SPLUNK_HEC:
		hec_body(&s->body, d, b);
		if (s->body.failed) {
			set_err(err, errlen, "out of memory building the batch");
			goto out;
		}
		buf_append(&line, "Authorization: Splunk ", 22);
		buf_append(&line, d->secret ? d->secret : "", d->secret ? d->secret_len : 0);
		if (line.failed || (d->secret && memchr(d->secret, '\n', d->secret_len)) ||
		    (d->secret && memchr(d->secret, '\r', d->secret_len))) {
			set_err(err, errlen, "the HEC token is not a header value");
			goto out;
		}
		header_add(&h, line.p, &hfail);
		header_add(&h, "Content-Type: application/json", &hfail);
		buf_printf(&url, "%s", d->url ? d->url : "");
		break;
	case STREAM_S3: {
		unsigned char sha[32];
		char hex[65], sigv4[160];
		if (s3_body(s, b) != 0) {
			set_err(err, errlen, "out of memory compressing the batch");
			goto out;
		}
		payload = &s->gz;
		const char *ep = d->url ? d->url : "";
		size_t eplen = strlen(ep);
		while (eplen && ep[eplen - 1] == '/')
			eplen--;
		buf_append(&url, ep, eplen);
		buf_append(&url, "/", 1);
		path_enc(&url, d->bucket, 0);
		buf_append(&url, "/", 1);
		path_enc(&url, d->prefix, 1);
		path_enc(&url, d->tenant_id, 0);
		buf_append(&url, "/", 1);
		path_enc(&url, d->stream_id, 0);
		buf_printf(&url, "/%012" PRId64 ".ndjson.gz", b->no);
		/* libcurl 7.88 signs the body's hash but sends no
		 * x-amz-content-sha256, which S3 requires: given here, it is
		 * sent and signed too. */
		SHA256((const unsigned char *)(payload->p ? payload->p : ""), payload->len, sha);
		secret_hex(sha, sizeof sha, hex);
		buf_printf(&line, "x-amz-content-sha256: %s", hex);
		header_add(&h, line.p, &hfail);
		buf_reset(&line);
		buf_printf(&line, "x-amz-meta-batch-id: %s", b->id);
		header_add(&h, line.p, &hfail);
		header_add(&h, "Content-Type: application/gzip", &hfail);
		if ((size_t)snprintf(sigv4, sizeof sigv4, "aws:amz:%s:s3", d->s3_region ? d->s3_region : "") >=
		    sizeof sigv4) {
			set_err(err, errlen, "the S3 region name is too long");
			goto out;
		}
		curl_easy_setopt(e, CURLOPT_AWS_SIGV4, sigv4);
		size_t klen = d->access_key_id ? strlen(d->access_key_id) : 0;
		if (!(userpwd = malloc(klen + 1 + d->secret_len + 1))) {
			set_err(err, errlen, "out of memory");
			goto out;
		}
		memcpy(userpwd, d->access_key_id ? d->access_key_id : "", klen);
		userpwd[klen] = ':';
		if (d->secret_len)
			memcpy(userpwd + klen + 1, d->secret, d->secret_len);
		userpwd[klen + 1 + d->secret_len] = '\0';
		curl_easy_setopt(e, CURLOPT_USERPWD, userpwd);
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PUT");
		break;
	}
	default:
		set_err(err, errlen, "unknown destination kind");
		goto out;
	}
	if (hfail || line.failed || url.failed || !url.p) {
		set_err(err, errlen, "out of memory building the request");
		goto out;
	}

	curl_easy_setopt(e, CURLOPT_URL, url.p);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, s->user_agent);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, s->connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, s->timeout_ms);
	if (s->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, s->ca_file);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	/* POSTFIELDS (with PUT as the method for S3): libcurl hashes exactly
	 * these bytes for SigV4; an upload by read callback would be signed
	 * as an empty body. */
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)payload->len);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, payload->p ? payload->p : "");
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_answer);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, s);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, s->errbuf);

	CURLcode rc = curl_easy_perform(e);
	double secs = 0;
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->http_status);
	curl_easy_getinfo(e, CURLINFO_TOTAL_TIME, &secs);
	r->seconds = secs;
	r->bytes = payload->len;
	r->retry_after_s = s->retry_after_s;

	/* The transfer ended early only because the answer was too long: the
	 * status stands (a 2xx is an acknowledgement whatever follows). */
	if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && s->answer_cut)) {
		const char *why = s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc);
		if (rc == CURLE_OPERATION_TIMEDOUT)
			set_err(err, errlen, "no answer within %ld ms (%s)", s->timeout_ms, why);
		else if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CONNECT_ERROR ||
		         rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_SSL_CERTPROBLEM)
			set_err(err, errlen, "TLS: %s", why);
		else
			set_err(err, errlen, "%s", why);
		goto out;
	}

	char ex[EXCERPT_MAX + 1];
	excerpt(s, d, ex, sizeof ex);
	long st = r->http_status;
	switch (d->kind) {
	case STREAM_WEBHOOK:
		ret = st >= 200 && st <= 299 ? 0 : -1;
		break;
	case STREAM_SPLUNK_HEC:
		ret = st == 200 && !s->answer_cut && hec_ok(s) ? 0 : -1;
		break;
	case STREAM_S3:
		ret = st == 200 ? 0 : -1;
		break;
	}
	if (ret != 0) {
		if (st >= 300 && st <= 399)
			set_err(err, errlen, "HTTP %ld (redirects are not followed)%s%s", st, ex[0] ? ": " : "", ex);
		else if (st == 200 && d->kind == STREAM_SPLUNK_HEC)
			set_err(err, errlen, "HTTP 200 without {\"code\":0}%s%s", ex[0] ? ": " : "", ex);
		else
			set_err(err, errlen, "HTTP %ld%s%s", st, ex[0] ? ": " : "", ex);
	}
out:
	/* Nothing of the secret stays in the handle or in memory. */
	if (userpwd) {
		curl_easy_setopt(e, CURLOPT_USERPWD, NULL);
		OPENSSL_cleanse(userpwd, strlen(userpwd));
		free(userpwd);
	}
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, NULL);
	for (struct curl_slist *i = h; i; i = i->next)
		OPENSSL_cleanse(i->data, strlen(i->data));
	curl_slist_free_all(h);
	buf_wipe(&line);
	buf_free(&url);
	return ret;
}
