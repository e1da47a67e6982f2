/* Log streams' senders (data-plane/stream_send.h) against the real
 * receivers of tests/streams/: what each kind puts on the wire as its
 * receiver checks it (a Standard Webhooks signature, HEC events, a SigV4-
 * signed gzipped object), the same bytes for a batch sent again, and every
 * way an attempt fails (a wrong secret, 503 with Retry-After, an untrusted
 * certificate, a redirect, an answer that is slow or without end, a
 * receiver gone) reported without a secret in the error. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "../../data-plane/stream_send.h"
#include "buf.h"
#include "it.h"
#include "secret.h"

/* A 24-byte key, the shortest a webhook secret may have. */
#define WH_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
/* The longest key, 64 bytes; and one byte short of the shortest and one
 * past the longest. */
#define WH_KEY64 "whsec_AwoRGB8mLTQ7QklQV15lbHN6gYiPlp2kq7K5wMfO1dzj6vH4/wYNFBsiKTA3PkVMU1phaG92fYSLkpmgp661vA=="
#define WH_KEY23 "whsec_AwoRGB8mLTQ7QklQV15lbHN6gYiPlp0="
#define WH_KEY65 "whsec_AwoRGB8mLTQ7QklQV15lbHN6gYiPlp2kq7K5wMfO1dzj6vH4/wYNFBsiKTA3PkVMU1phaG92fYSLkpmgp661vMM="
/* Another valid secret, which the receiver does not know. */
#define WH_OTHER "whsec_c2VjcmV0LW5vdC1rbm93bi10by10aGUtcmVjZWl2ZXI="
#define HEC_TOKEN "5b0c1d2e-3f40-4a5b-8c6d-7e8f9a0b1c2d"
#define S3_KEY_ID "AKIACELLTRAILTEST01"
#define S3_SECRET "s3-secret-Qm9vdGgtc2VjcmV0LWtleS0wMTIz"
#define STREAM_ID "7d3c2b1a-0f9e-4d8c-b7a6-5f4e3d2c1b0a"
#define TENANT_ID "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
#define MADE_AT INT64_C(1765000000)
/* The largest event a data plane stores is under 300,000 bytes of JSON
 * (64 targets and the actor and context of 4 KiB each, 8 KiB of metadata,
 * the rest short): this one is at least that. */
#define EVENT_MAX_BYTES 300000

/* --- receivers --- */

struct rx {
	struct it_proc p;
	int port, ctl;
	char dir[600];
	char url[160];
};

static int rx_seq;

/* Starts tests/streams/<script> serve with `args` (NULL-terminated, may
 * be NULL) and `env`; its record goes to a fresh directory. */
static void rx_start(struct rx *r, const char *script, const char *tls, const char *const args[],
                     const char *const env[])
{
	char path[700];
	const char *argv[24];
	int n = 0;
	memset(r, 0, sizeof *r);
	snprintf(r->dir, sizeof r->dir, "%s/rx-%d-%d", it_env("IT_LOG_DIR"), (int)getpid(), rx_seq++);
	snprintf(path, sizeof path, "%s/tests/streams/%s", it_env("IT_ROOT"), script);
	argv[n++] = "/usr/bin/python3";
	argv[n++] = path;
	argv[n++] = "serve";
	argv[n++] = "--dir";
	argv[n++] = r->dir;
	if (tls) {
		argv[n++] = "--tls";
		argv[n++] = tls;
	}
	for (int i = 0; args && args[i]; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	it_spawn(&r->p, script, (char *const *)argv, env);
	r->port = it_wait_port(&r->p, 30000);
	long deadline = it_now_ms() + 30000;
	while (!r->ctl && it_now_ms() < deadline) {
		char *log = it_slurp(r->p.log);
		const char *at = log ? strstr(log, "CONTROL ") : NULL;
		if (at)
			r->ctl = atoi(at + 8);
		free(log);
		if (!r->ctl)
			usleep(10000);
	}
	ck_assert_msg(r->ctl > 0, "%s announced no control port", script);
	snprintf(r->url, sizeof r->url, "%s://127.0.0.1:%d", tls ? "https" : "http", r->port);
}

static void rx_stop(struct rx *r)
{
	if (r->p.pid)
		it_stop(&r->p);
}

/* One control call (recvlib.py), e.g. "/fail?n=1&status=503". */
static void rx_ctl(const struct rx *r, const char *path)
{
	struct it_resp a;
	it_http(&a, "POST", it_fmt("http://127.0.0.1:%d%s", r->ctl, path), NULL, "", 0);
	ck_assert_msg(a.status == 200, "control %s: %ld", path, a.status);
	it_resp_free(&a);
}

/* A counter of the receiver's GET /stats. */
static long rx_stat(const struct rx *r, const char *name)
{
	struct it_resp a;
	it_http(&a, "GET", it_fmt("http://127.0.0.1:%d/stats", r->ctl), NULL, NULL, 0);
	ck_assert_int_eq(a.status, 200);
	json_t *j = json_loadb(a.body, a.len, 0, NULL);
	long v = (long)json_integer_value(json_object_get(j, name));
	json_decref(j);
	it_resp_free(&a);
	return v;
}

/* Runs the receiver's check mode with the ids of events 0..n-1 expected
 * and `extra` arguments; returns its exit status, its output in out. */
static int rx_check(const struct rx *r, const char *script, size_t first, size_t n, const char *extra1,
                    const char *extra2, char *out, size_t outlen)
{
	char expect[700], path[700];
	snprintf(expect, sizeof expect, "%s/expect-%d", r->dir, rx_seq++);
	FILE *f = fopen(expect, "w");
	ck_assert_ptr_nonnull(f);
	for (size_t i = first; i < first + n; i++)
		fprintf(f, "ev-%06zu\n", i);
	fclose(f);
	snprintf(path, sizeof path, "%s/tests/streams/%s", it_env("IT_ROOT"), script);
	const char *argv[] = { "/usr/bin/python3", path, "check", "--dir", r->dir, "--expect", expect, extra1, extra2,
		               NULL };
	return it_run("rx-check", (char *const *)argv, NULL, out, outlen);
}

/* Makes a CA and a server certificate for 127.0.0.1 in a fresh directory. */
static void make_ca(char *dir, size_t len)
{
	char out[4096];
	snprintf(dir, len, "%s/ca-%d-%d", it_env("IT_LOG_DIR"), (int)getpid(), rx_seq++);
	const char *argv[] = { "/usr/bin/python3", it_fmt("%s/tests/streams/webhook_receiver.py", it_env("IT_ROOT")),
		               "make-ca", dir, NULL };
	ck_assert_msg(it_run("make-ca", (char *const *)argv, NULL, out, sizeof out) == 0, "make-ca: %s", out);
}

/* --- batches --- */

struct events {
	struct stream_event *ev;
	char **text;
	size_t n;
};

/* Events first..first+n-1: ids ev-<6 digits>, each `pad` bytes of padding
 * (0: a short event), received a millisecond and a few microseconds apart. */
static void events_make(struct events *e, size_t first, size_t n, size_t pad)
{
	e->n = n;
	e->ev = calloc(n, sizeof *e->ev);
	e->text = calloc(n, sizeof *e->text);
	ck_assert(e->ev && e->text);
	for (size_t i = 0; i < n; i++) {
		struct buf b = { 0 };
		buf_printf(&b, "{\"id\":\"ev-%06zu\",\"action\":\"user.login\",\"actor\":{\"id\":\"u-%zu\"},"
		               "\"context\":{\"note\":\"caf\\u00e9 \\\"quoted\\\" \\\\ slash\"}",
		           first + i, (first + i) % 7);
		if (pad) {
			buf_append(&b, ",\"metadata\":{\"pad\":\"", 20);
			for (size_t k = b.len; k + 3 < pad; k++)
				buf_append(&b, "x", 1);
			buf_append(&b, "\"}", 2);
		}
		buf_append(&b, "}", 1);
		ck_assert(!b.failed);
		e->text[i] = buf_take(&b);
		e->ev[i].json = e->text[i];
		e->ev[i].len = strlen(e->text[i]);
		e->ev[i].received_at_us = INT64_C(1765000000000000) + (int64_t)(first + i) * 1003;
	}
}

static void events_free(struct events *e)
{
	for (size_t i = 0; i < e->n; i++)
		free(e->text[i]);
	free(e->text);
	free(e->ev);
}

static void batch_make(struct stream_batch *b, const struct events *e, int64_t no)
{
	memset(b, 0, sizeof *b);
	stream_batch_id(STREAM_ID, no, b->id);
	b->no = no;
	b->made_at = MADE_AT;
	b->events = e->ev;
	b->n = e->n;
}

static struct stream_sender *sender(const char *ca_file, long timeout_ms)
{
	struct stream_send_opts o = { .ca_file = ca_file, .timeout_ms = timeout_ms, .connect_timeout_ms = 5000,
		                      .user_agent = "celltrail-test" };
	struct stream_sender *s = stream_sender_new(&o);
	ck_assert_ptr_nonnull(s);
	return s;
}

static struct stream_dest dest(enum stream_kind kind, const char *url, const char *secret)
{
	struct stream_dest d = { .kind = kind, .stream_id = STREAM_ID, .tenant_id = TENANT_ID, .url = url,
		                 .bucket = "audit-logs", .s3_region = "eu-west-3", .access_key_id = S3_KEY_ID,
		                 .prefix = "celltrail/", .secret = secret, .secret_len = strlen(secret) };
	return d;
}

/* --- reference models: the bodies stream_send.h describes --- */

static char *ref_webhook(const struct stream_batch *b)
{
	struct buf o = { 0 };
	buf_printf(&o, "{\"type\":\"audit_events.batch\",\"timestamp\":\"2025-12-06T05:46:40.000000Z\","
	               "\"data\":{\"stream_id\":\"%s\",\"tenant_id\":\"%s\",\"batch_id\":\"%s\",\"batch_no\":%lld,"
	               "\"events\":[",
	           STREAM_ID, TENANT_ID, b->id, (long long)b->no);
	for (size_t i = 0; i < b->n; i++)
		buf_printf(&o, "%s%.*s", i ? "," : "", (int)b->events[i].len, b->events[i].json);
	buf_append(&o, "]}}", 3);
	return buf_take(&o);
}

static char *ref_hec_line(const struct stream_batch *b, size_t i)
{
	struct buf o = { 0 };
	const struct stream_event *e = &b->events[i];
	buf_printf(&o, "{\"time\":%lld.%06lld,\"source\":\"celltrail\",\"sourcetype\":\"celltrail:audit_event\","
	               "\"event\":%.*s,\"fields\":{\"tenant_id\":\"%s\",\"stream_id\":\"%s\",\"batch_id\":\"%s\"}}",
	           (long long)(e->received_at_us / 1000000), (long long)(e->received_at_us % 1000000), (int)e->len,
	           e->json, TENANT_ID, STREAM_ID, b->id);
	return buf_take(&o);
}

static char *ref_ndjson(const struct stream_batch *b, size_t *len)
{
	struct buf o = { 0 };
	for (size_t i = 0; i < b->n; i++) {
		buf_append(&o, b->events[i].json, b->events[i].len);
		buf_append(&o, "\n", 1);
	}
	*len = o.len;
	return buf_take(&o);
}

static char *gunzip(const char *in, size_t len, size_t *outlen)
{
	struct buf o = { 0 };
	z_stream z = { 0 };
	unsigned char chunk[65536];
	ck_assert_int_eq(inflateInit2(&z, 16 + MAX_WBITS), Z_OK);
	z.next_in = (unsigned char *)in;
	z.avail_in = (uInt)len;
	int rc;
	do {
		z.next_out = chunk;
		z.avail_out = sizeof chunk;
		rc = inflate(&z, Z_NO_FLUSH);
		ck_assert_msg(rc == Z_OK || rc == Z_STREAM_END, "not gzip: %d", rc);
		buf_append(&o, chunk, sizeof chunk - z.avail_out);
	} while (rc != Z_STREAM_END);
	ck_assert_int_eq(z.avail_in, 0);
	inflateEnd(&z);
	*outlen = o.len;
	return o.p ? buf_take(&o) : strdup("");
}

/* The lines of a JSONL file, parsed. */
static json_t *jsonl(const char *path)
{
	json_t *a = json_array();
	char *text = it_slurp(path);
	for (char *line = text, *nl; line && *line; line = nl + 1) {
		if (!(nl = strchr(line, '\n')))
			break;
		*nl = '\0';
		json_array_append_new(a, json_loads(line, 0, NULL));
	}
	free(text);
	return a;
}

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
	buf_append(ctx, data, size * n);
	return size * n;
}

/* GET of an object, signed with SigV4 by libcurl. Returns the status. */
static long s3_get(const char *url, const char *key_id, const char *secret, struct buf *out)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = curl_slist_append(
		NULL, "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	long st = 0;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_AWS_SIGV4, "aws:amz:eu-west-3:s3");
	curl_easy_setopt(c, CURLOPT_USERPWD, it_fmt("%s:%s", key_id, secret));
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return st;
}

static const char *object_key(const struct stream_batch *b)
{
	return it_fmt("celltrail/%s/%s/%012lld.ndjson.gz", TENANT_ID, STREAM_ID, (long long)b->no);
}

/* `err` says nothing of any secret and holds printable ASCII only. */
static void assert_clean_error(const char *err)
{
	const char *secrets[] = { WH_SECRET, WH_OTHER, WH_KEY64, HEC_TOKEN, S3_SECRET };
	ck_assert_msg(*err, "no error text");
	for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
		for (size_t j = 0; j + 8 <= strlen(secrets[i]); j++) {
			char piece[9];
			memcpy(piece, secrets[i] + j, 8);
			piece[8] = '\0';
			ck_assert_msg(!strstr(err, piece), "a piece of a secret in the error: %s", err);
		}
	for (const char *p = err; *p; p++)
		ck_assert_msg(*p >= 0x20 && *p < 0x7f, "a byte 0x%02x in the error: %s", (unsigned char)*p, err);
}

/* --- tests --- */

/* A webhook batch arrives signed as Standard Webhooks says (the receiver
 * checks it with its own code), its body byte for byte the documented
 * one; sent again (a retry), the body is the same and the consumer keeps
 * one copy. Batches of 1 and 10,000 events, and an event of the largest
 * size stored. */
START_TEST(webhook_delivered_signed)
{
	const char *const env[] = { "WEBHOOK_SECRETS=" WH_SECRET, NULL };
	struct rx r;
	rx_start(&r, "webhook_receiver.py", NULL, NULL, env);
	struct stream_sender *s = sender(NULL, 30000);
	struct stream_dest d = dest(STREAM_WEBHOOK, it_fmt("%s/hooks/celltrail", r.url), WH_SECRET);
	struct stream_send_result res;
	char err[512], out[8192];
	struct events one, many, big;
	struct stream_batch b1, b2, b3;
	events_make(&one, 0, 1, 0);
	events_make(&many, 1, 10000, 300);
	events_make(&big, 10001, 1, EVENT_MAX_BYTES);
	batch_make(&b1, &one, 1);
	batch_make(&b2, &many, 2);
	batch_make(&b3, &big, 3);

	ck_assert_msg(stream_send(s, &d, &b1, &res, err, sizeof err) == 0, "%s", err);
	ck_assert_int_eq(res.http_status, 200);
	ck_assert_msg(stream_send(s, &d, &b2, &res, err, sizeof err) == 0, "%s", err);
	ck_assert_msg(stream_send(s, &d, &b3, &res, err, sizeof err) == 0, "%s", err);
	char *w3 = ref_webhook(&b3);
	ck_assert_uint_eq(res.bytes, strlen(w3));
	free(w3);
	/* The retry of batch 2: same id, same bytes. */
	ck_assert_msg(stream_send(s, &d, &b2, &res, err, sizeof err) == 0, "%s", err);
	ck_assert_int_eq(rx_stat(&r, "accepted"), 3);
	ck_assert_int_eq(rx_stat(&r, "repeats"), 1);
	ck_assert_int_eq(rx_stat(&r, "conflicts"), 0);
	ck_assert_int_eq(rx_stat(&r, "bad_signature"), 0);
	/* One sender, one connection kept for every batch. */
	ck_assert_int_eq(rx_stat(&r, "connections"), 1);

	json_t *rows = jsonl(it_fmt("%s/deliveries.jsonl", r.dir));
	ck_assert_uint_eq(json_array_size(rows), 3);
	const struct stream_batch *bs[] = { &b1, &b2, &b3 };
	for (size_t i = 0; i < 3; i++) {
		json_t *row = json_array_get(rows, i);
		char *want = ref_webhook(bs[i]);
		ck_assert_str_eq(it_js(row, "webhook_id"), bs[i]->id);
		ck_assert_msg(!strcmp(it_js(row, "body"), want), "batch %zu: the body is not the documented one", i);
		free(want);
	}
	json_decref(rows);
	ck_assert_str_eq(b2.id, STREAM_ID "-000000000002");
	int st = rx_check(&r, "webhook_receiver.py", 0, 10002, NULL, NULL, out, sizeof out);
	ck_assert_msg(st == 0, "check: %s", out);
	/* The check itself refuses a gap. */
	st = rx_check(&r, "webhook_receiver.py", 0, 10003, NULL, NULL, out, sizeof out);
	ck_assert_msg(st != 0 && strstr(out, "missing"), "check passed a gap: %s", out);

	events_free(&one);
	events_free(&many);
	events_free(&big);
	stream_sender_free(s);
	rx_stop(&r);
}
END_TEST

/* A secret the destination does not know is refused (webhook 401, HEC
 * 401, S3 403 SignatureDoesNotMatch) and reported as a failure whose text
 * names the status and no secret; a webhook secret that is not whsec_ and
 * the base64 of a 24..64-byte key sends nothing. */
START_TEST(wrong_secret_refused)
{
	const char *const wenv[] = { "WEBHOOK_SECRETS=" WH_SECRET "," WH_KEY64, NULL };
	const char *const henv[] = { "HEC_TOKENS=" HEC_TOKEN, NULL };
	const char *const senv[] = { "S3_CREDENTIALS=" S3_KEY_ID ":" S3_SECRET, NULL };
	const char *const sargs[] = { "--bucket", "audit-logs", "--region", "eu-west-3", NULL };
	struct rx w, h, s3;
	rx_start(&w, "webhook_receiver.py", NULL, NULL, wenv);
	rx_start(&h, "hec_receiver.py", NULL, NULL, henv);
	rx_start(&s3, "s3_receiver.py", NULL, sargs, senv);
	struct stream_sender *s = sender(NULL, 30000);
	struct stream_send_result res;
	char err[512];
	struct events e;
	struct stream_batch b;
	events_make(&e, 0, 3, 0);
	batch_make(&b, &e, 1);

	struct stream_dest d = dest(STREAM_WEBHOOK, it_fmt("%s/hook", w.url), WH_OTHER);
	ck_assert_int_eq(stream_send(s, &d, &b, &res, err, sizeof err), -1);
	ck_assert_int_eq(res.http_status, 401);
	ck_assert_msg(strstr(err, "401"), "%s", err);
	assert_clean_error(err);
	ck_assert_int_eq(rx_stat(&w, "bad_signature"), 1);
	ck_assert_int_eq(rx_stat(&w, "accepted"), 0);

	const char *malformed[] = { WH_KEY23, WH_KEY65, "whsec_", "whsec_!!!!", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		                    "whsec_c2hvcnQta2V5", /* 9 bytes */
		                    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS" /* cut */ };
	for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
		d = dest(STREAM_WEBHOOK, it_fmt("%s/hook", w.url), malformed[i]);
		ck_assert_int_eq(stream_send(s, &d, &b, &res, err, sizeof err), -1);
		ck_assert_int_eq(res.http_status, 0);
		ck_assert_msg((strlen(malformed[i]) < 8 || !strstr(err, malformed[i])) && strstr(err, "whsec_"), "%s",
		              err);
	}
	ck_assert_int_eq(rx_stat(&w, "requests"), 1);

	d = dest(STREAM_SPLUNK_HEC, it_fmt("%s/services/collector/event", h.url), "not-" HEC_TOKEN);
	ck_assert_int_eq(stream_send(s, &d, &b, &res, err, sizeof err), -1);
	ck_assert_int_eq(res.http_status, 401);
	ck_assert_msg(strstr(err, "401") && strstr(err, "Invalid authorization"), "%s", err);
	assert_clean_error(err);
	ck_assert_int_eq(rx_stat(&h, "events"), 0);

	d = dest(STREAM_S3, s3.url, "not-" S3_SECRET);
	ck_assert_int_eq(stream_send(s, &d, &b, &res, err, sizeof err), -1);
	ck_assert_int_eq(res.http_status, 403);
	ck_assert_msg(strstr(err, "403") && strstr(err, "SignatureDoesNotMatch"), "%s", err);
	assert_clean_error(err);
	ck_assert_int_eq(rx_stat(&s3, "puts"), 0);

	/* A destination that quotes the request back (the HEC token, the
	 * signature, SigV4's credential) has no secret quoted in the error. */
	rx_ctl(&h, "/echo?n=1&status=400");
	d = dest(STREAM_SPLUNK_HEC, it_fmt("%s/services/collector/event", h.url), HEC_TOKEN);
	ck_assert_int_eq(stream_send(s, &d, &b, &res, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "400") && strstr(err, "Authorization: Splunk"), "%s", err);
	assert_clean_error(err);
	rx_ctl(&w, "/echo?n=1&status=403");
	d = dest(STREAM_WEBHOOK, it_fmt("%s/hook", w.url), WH_SECRET);
	ck_assert_int_eq(stream_send(s, &d, &b, &res, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "403") && strstr(err, "webhook-id"), "%s", err);
	assert_clean_error(err);

	/* The same requests with the right secrets go through: what was
	 * refused was the secret alone. */
	d = dest(STREAM_WEBHOOK, it_fmt("%s/hook", w.url), WH_SECRET);
	ck_assert_msg(stream_send(s, &d, &b, &res, err, sizeof err) == 0, "%s", err);
	d = dest(STREAM_WEBHOOK, it_fmt("%s/hook", w.url), WH_KEY64);
	ck_assert_msg(stream_send(s, &d, &b, &res, err, sizeof err) == 0, "%s", err);
	ck_assert_int_eq(rx_stat(&w, "repeats"), 1);
	d = dest(STREAM_SPLUNK_HEC, it_fmt("%s/services/collector/event", h.url), HEC_TOKEN);
	ck_assert_msg(stream_send(s, &d, &b, &res, err, sizeof err) == 0, "%s", err);
	d = dest(STREAM_S3, s3.url, S3_SECRET);
	ck_assert_msg(stream_send(s, &d, &b, &res, err, sizeof err) == 0, "%s", err);

	events_free(&e);
	stream_sender_free(s);
	rx_stop(&w);
	rx_stop(&h);
	rx_stop(&s3);
}
END_TEST

/* HEC gets one JSON object per event, byte for byte the documented line,
 * acknowledged by {"code":0}; HEC keeps every copy, so a batch sent twice
 * is there twice under one batch_id, which the check removes. A batch of
 * 10,000 events and one of the largest event. */
START_TEST(hec_delivered)
{
	const char *const env[] = { "HEC_TOKENS=" HEC_TOKEN, NULL };
	struct rx r;
	rx_start(&r, "hec_receiver.py", NULL, NULL, env);
	struct stream_sender *s = sender(NULL, 30000);
	struct stream_dest d = dest(STREAM_SPLUNK_HEC, it_fmt("%s/services/collector/event", r.url), HEC_TOKEN);
	struct stream_send_result res;
	char err[512], out[8192];
	struct events one, many, big;
	struct stream_batch b1, b2, b3;
	events_make(&one, 0, 1, 0);
	events_make(&many, 1, 10000, 300);
	events_make(&big, 10001, 1, EVENT_MAX_BYTES);
	batch_make(&b1, &one, 1);
	batch_make(&b2, &many, 2);
	batch_make(&b3, &big, 3);
	ck_assert_msg(stream_send(s, &d, &b1, &res, err, sizeof err) == 0, "%s", err);
	ck_assert_msg(stream_send(s, &d, &b1, &res, err, sizeof err) == 0, "%s", err);
	ck_assert_msg(stream_send(s, &d, &b2, &res, err, sizeof err) == 0, "%s", err);
	ck_assert_msg(stream_send(s, &d, &b3, &res, err, sizeof err) == 0, "%s", err);
	ck_assert_int_eq(rx_stat(&r, "events"), 10003);

	json_t *rows = jsonl(it_fmt("%s/events.jsonl", r.dir));
	ck_assert_uint_eq(json_array_size(rows), 10003);
	const struct stream_batch *order[] = { &b1, &b1 };
	for (size_t i = 0; i < 10003; i += i < 2 ? 1 : 997) {
		const struct stream_batch *b = i < 2 ? order[i] : i < 10002 ? &b2 : &b3;
		size_t k = i < 2 ? 0 : i < 10002 ? i - 2 : 0;
		char *want = ref_hec_line(b, k);
		unsigned char sha[32];
		char hex[65];
		secret_sha256(want, strlen(want), sha);
		secret_hex(sha, 32, hex);
		json_t *row = json_array_get(rows, i);
		ck_assert_msg(!strcmp(it_js(row, "sha256"), hex), "event %zu is not the documented line %s", i, want);
		ck_assert_str_eq(it_js(row, "batch_id"), b->id);
		free(want);
	}
	json_decref(rows);
	int st = rx_check(&r, "hec_receiver.py", 0, 10002, NULL, NULL, out, sizeof out);
	ck_assert_msg(st == 0 && strstr(out, "\"repeats\": 1"), "check: %s", out);

	/* The receiver answers as HEC does, so that a sender is held to it. */
	struct {
		const char *auth, *path, *body;
		long status;
		const char *answer;
	} hec[] = {
		{ NULL, "/services/collector/event", "{\"event\":{}}", 401, "\"code\": 2" },
		{ "Authorization: Splunk wrong", "/services/collector/event", "{\"event\":1}", 401, "\"code\": 3" },
		{ "Authorization: Bearer " HEC_TOKEN, "/services/collector/event", "{\"event\":1}", 401, "\"code\": 3" },
		{ "Authorization: Splunk " HEC_TOKEN, "/services/collector/event", "{\"event\":1}{\"event\"", 400,
		  "\"code\": 6, \"invalid-event-number\": 1" },
		{ "Authorization: Splunk " HEC_TOKEN, "/services/collector/event", "{\"time\":1}", 400, "\"code\": 12" },
		{ "Authorization: Splunk " HEC_TOKEN, "/services/collector/event", "{\"event\":\"\"}", 400, "\"code\": 13" },
		{ "Authorization: Splunk " HEC_TOKEN, "/services/collector/raw", "{\"event\":1}", 404, "\"code\": 404" },
		{ "Authorization: Splunk " HEC_TOKEN, "/services/collector/event/1.0", "{\"event\":1} {\"event\":2}", 200,
		  "\"code\": 0" },
	};
	for (size_t i = 0; i < sizeof hec / sizeof hec[0]; i++) {
		struct it_resp a;
		const char *const hdr[] = { hec[i].auth, NULL };
		it_http(&a, "POST", it_fmt("%s%s", r.url, hec[i].path), hdr, hec[i].body, strlen(hec[i].body));
		ck_assert_msg(a.status == hec[i].status && a.body && strstr(a.body, hec[i].answer), "case %zu: %ld %s",
		              i, a.status, a.body ? a.body : "");
		it_resp_free(&a);
	}

	events_free(&one);
	events_free(&many);
	events_free(&big);
	stream_sender_free(s);
	rx_stop(&r);
}
END_TEST

/* An S3 batch is one object, <prefix><tenant>/<stream>/<batch no>.ndjson.gz,
 * PUT with a SigV4 signature the stand-in verifies and the body's hash,
 * that gunzips to the events' NDJSON; sent again it overwrites itself
 * with the same bytes. Batches of 1 and 10,000 events, the largest event. */
START_TEST(s3_delivered_signed)
{
	const char *const env[] = { "S3_CREDENTIALS=" S3_KEY_ID ":" S3_SECRET, NULL };
	const char *const args[] = { "--bucket", "audit-logs", "--region", "eu-west-3", NULL };
	struct rx r;
	rx_start(&r, "s3_receiver.py", NULL, args, env);
	struct stream_sender *s = sender(NULL, 30000);
	struct stream_dest d = dest(STREAM_S3, it_fmt("%s/", r.url), S3_SECRET);
	struct stream_send_result res;
	char err[512], out[8192];
	struct events one, many, big;
	struct stream_batch b1, b2, b3;
	events_make(&one, 0, 1, 0);
	events_make(&many, 1, 10000, 300);
	events_make(&big, 10001, 1, EVENT_MAX_BYTES);
	batch_make(&b1, &one, 1);
	batch_make(&b2, &many, 2);
	batch_make(&b3, &big, 3);
	const struct stream_batch *bs[] = { &b1, &b2, &b3, &b2 };
	for (size_t i = 0; i < 4; i++) {
		ck_assert_msg(stream_send(s, &d, bs[i], &res, err, sizeof err) == 0, "batch %zu: %s", i, err);
		ck_assert_int_eq(res.http_status, 200);
	}
	ck_assert_int_eq(rx_stat(&r, "refused"), 0);

	json_t *puts = jsonl(it_fmt("%s/puts.jsonl", r.dir));
	ck_assert_uint_eq(json_array_size(puts), 4);
	for (size_t i = 0; i < 4; i++) {
		json_t *p = json_array_get(puts, i);
		ck_assert_str_eq(it_js(p, "key"), object_key(bs[i]));
		ck_assert_str_eq(it_js(p, "batch_id"), bs[i]->id);
		ck_assert_str_eq(it_js(p, "content_type"), "application/gzip");
	}
	ck_assert_str_eq(it_js(json_array_get(puts, 1), "sha256"), it_js(json_array_get(puts, 3), "sha256"));
	json_decref(puts);

	for (size_t i = 0; i < 3; i++) {
		struct buf got = { 0 };
		ck_assert_int_eq(s3_get(it_fmt("%s/audit-logs/%s", r.url, object_key(bs[i])), S3_KEY_ID, S3_SECRET, &got), 200);
		/* No time in the gzip header (MTIME, bytes 4 to 7): the same bytes
		 * whenever the batch is sent again. */
		ck_assert_msg(got.len > 10 && !memcmp(got.p + 4, "\0\0\0\0", 4), "object %zu: a time in its gzip header", i);
		size_t n, wn;
		char *plain = gunzip(got.p, got.len, &n), *want = ref_ndjson(bs[i], &wn);
		ck_assert_msg(n == wn && !memcmp(plain, want, n), "object %zu is not the NDJSON of its events", i);
		free(plain);
		free(want);
		buf_free(&got);
	}
	int st = rx_check(&r, "s3_receiver.py", 0, 10002, "--bucket=audit-logs", "--prefix=celltrail/", out,
	                  sizeof out);
	ck_assert_msg(st == 0 && strstr(out, "\"objects\": 3"), "check: %s", out);

	events_free(&one);
	events_free(&many);
	events_free(&big);
	stream_sender_free(s);
	rx_stop(&r);
}
END_TEST

/* The same to s3rver, a real S3-compatible server: it stores the object
 * (read back by GET and from its store) with the batch id as metadata, and
 * a batch sent again leaves one object with the same bytes. */
START_TEST(s3rver_stores_batches)
{
	struct rx r;
	char script[700], sh[] = "/bin/sh";
	memset(&r, 0, sizeof r);
	snprintf(r.dir, sizeof r.dir, "%s/s3rver-%d", it_env("IT_LOG_DIR"), (int)getpid());
	snprintf(script, sizeof script, "%s/tests/streams/s3rver.sh", it_env("IT_ROOT"));
	char *const argv[] = { sh, script, "serve", r.dir, "audit-logs", NULL };
	it_spawn(&r.p, "s3rver", argv, NULL);
	/* A first run installs it from npm. */
	r.port = it_wait_port(&r.p, 240000);
	snprintf(r.url, sizeof r.url, "http://127.0.0.1:%d", r.port);

	struct stream_sender *s = sender(NULL, 30000);
	struct stream_dest d = dest(STREAM_S3, r.url, "S3RVER");
	d.access_key_id = "S3RVER";
	struct stream_send_result res;
	char err[512], out[8192];
	struct events e;
	struct stream_batch b;
	events_make(&e, 0, 2000, 200);
	batch_make(&b, &e, 7);
	ck_assert_msg(stream_send(s, &d, &b, &res, err, sizeof err) == 0, "%s", err);
	char file[1200];
	snprintf(file, sizeof file, "%s/audit-logs/%s._S3rver_object", r.dir, object_key(&b));
	char *first = it_slurp(file);
	struct stat st1;
	ck_assert_int_eq(stat(file, &st1), 0);
	ck_assert_msg(stream_send(s, &d, &b, &res, err, sizeof err) == 0, "%s", err);
	char *again = it_slurp(file);
	struct stat st2;
	ck_assert_int_eq(stat(file, &st2), 0);
	ck_assert(first && again && st1.st_size == st2.st_size && !memcmp(first, again, (size_t)st1.st_size));

	struct buf got = { 0 };
	ck_assert_int_eq(s3_get(it_fmt("%s/audit-logs/%s", r.url, object_key(&b)), "S3RVER", "S3RVER", &got), 200);
	size_t n, wn;
	char *plain = gunzip(got.p, got.len, &n), *want = ref_ndjson(&b, &wn);
	ck_assert_msg(n == wn && !memcmp(plain, want, n), "the object is not the NDJSON of its events");
	char *meta = it_slurp(it_fmt("%s/audit-logs/%s._S3rver_metadata.json", r.dir, object_key(&b)));
	ck_assert_msg(meta && strstr(meta, b.id), "no batch id in the metadata: %s", meta ? meta : "");

	char path[700], expect[700];
	snprintf(expect, sizeof expect, "%s.expect", r.dir);
	FILE *f = fopen(expect, "w");
	for (size_t i = 0; i < 2000; i++)
		fprintf(f, "ev-%06zu\n", i);
	fclose(f);
	snprintf(path, sizeof path, "%s/tests/streams/s3_receiver.py", it_env("IT_ROOT"));
	const char *cargv[] = { "/usr/bin/python3", path, "check", "--s3rver", "--dir", r.dir, "--bucket", "audit-logs",
		                "--prefix", "celltrail/", "--expect", expect, NULL };
	int rc = it_run("rx-check", (char *const *)cargv, NULL, out, sizeof out);
	ck_assert_msg(rc == 0 && strstr(out, "\"objects\": 1"), "check: %s", out);

	free(first);
	free(again);
	free(plain);
	free(want);
	free(meta);
	buf_free(&got);
	events_free(&e);
	stream_sender_free(s);
	rx_stop(&r);
}
END_TEST

/* 503 with Retry-After, in seconds or as an HTTP date, is a failure that
 * carries the delay; the next attempt goes through. */
START_TEST(retry_after_parsed)
{
	const char *const env[] = { "WEBHOOK_SECRETS=" WH_SECRET, NULL };
	struct rx r;
	rx_start(&r, "webhook_receiver.py", NULL, NULL, env);
	struct stream_sender *s = sender(NULL, 30000);
	struct stream_dest d = dest(STREAM_WEBHOOK, it_fmt("%s/hook", r.url), WH_SECRET);
	struct stream_send_result res;
	char err[512];
	struct events e;
	struct stream_batch b;
	events_make(&e, 0, 2, 0);
	batch_make(&b, &e, 1);

	rx_ctl(&r, "/fail?n=1&status=503&retry_after=7");
	ck_assert_int_eq(stream_send(s, &d, &b, &res, err, sizeof err), -1);
	ck_assert_int_eq(res.http_status, 503);
	ck_assert_int_eq(res.retry_after_s, 7);
	ck_assert_msg(strstr(err, "503"), "%s", err);
	assert_clean_error(err);

	char date[64], q[160];
	time_t t = time(NULL) + 120;
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(date, sizeof date, "%a,%%20%d%%20%b%%20%Y%%20%H:%M:%S%%20GMT", &tm);
	snprintf(q, sizeof q, "/fail?n=1&status=429&retry_after=%s", date);
	rx_ctl(&r, q);
	ck_assert_int_eq(stream_send(s, &d, &b, &res, err, sizeof err), -1);
	ck_assert_int_eq(res.http_status, 429);
	ck_assert_msg(res.retry_after_s >= 100 && res.retry_after_s <= 121, "%lld", (long long)res.retry_after_s);

	/* Retry-After's edges: past dates and what is not a delay ask for
	 * none; a delay beyond a week is a week. */
	struct {
		const char *value;
		long long want;
	} ra[] = { { "0", 0 }, { "1", 1 }, { "604800", 604800 }, { "604801", 604800 },
		   { "99999999999999999999999", 604800 }, { "-5", 0 }, { "7x", 0 }, { "soon", 0 },
		   { "Thu,%2001%20Jan%201970%2000:00:00%20GMT", 0 } };
	for (size_t i = 0; i < sizeof ra / sizeof ra[0]; i++) {
		snprintf(q, sizeof q, "/fail?n=1&status=503&retry_after=%s", ra[i].value);
		rx_ctl(&r, q);
		ck_assert_int_eq(stream_send(s, &d, &b, &res, err, sizeof err), -1);
		ck_assert_msg(res.retry_after_s == ra[i].want, "Retry-After %s: %lld", ra[i].value,
		              (long long)res.retry_after_s);
	}

	/* Without the header: no delay asked for. */
	rx_ctl(&r, "/fail?n=1&status=500");
	ck_assert_int_eq(stream_send(s, &d, &b, &res, err, sizeof err), -1);
	ck_assert_int_eq(res.retry_after_s, 0);

	ck_assert_msg(stream_send(s, &d, &b, &res, err, sizeof err) == 0, "%s", err);
	ck_assert_int_eq(res.retry_after_s, 0);
	ck_assert_int_eq(rx_stat(&r, "accepted"), 1);
	events_free(&e);
	stream_sender_free(s);
	rx_stop(&r);
}
END_TEST

/* An https destination is trusted only through the CA file given (the
 * system's store does not know a private CA; another CA is not it). */
START_TEST(tls_trust)
{
	char ca[700], other[700];
	make_ca(ca, sizeof ca);
	make_ca(other, sizeof other);
	const char *const env[] = { "WEBHOOK_SECRETS=" WH_SECRET, NULL };
	const char *const henv[] = { "HEC_TOKENS=" HEC_TOKEN, NULL };
	struct rx r, h;
	rx_start(&r, "webhook_receiver.py", ca, NULL, env);
	rx_start(&h, "hec_receiver.py", ca, NULL, henv);
	struct stream_send_result res;
	char err[512];
	struct events e;
	struct stream_batch b;
	events_make(&e, 0, 2, 0);
	batch_make(&b, &e, 1);
	struct stream_dest d = dest(STREAM_WEBHOOK, it_fmt("%s/hook", r.url), WH_SECRET);
	struct stream_dest dh = dest(STREAM_SPLUNK_HEC, it_fmt("%s/services/collector/event", h.url), HEC_TOKEN);

	struct stream_sender *sys = sender(NULL, 30000), *wrong = sender(it_fmt("%s/ca.crt", other), 30000);
	ck_assert_int_eq(stream_send(sys, &d, &b, &res, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "TLS") && res.http_status == 0, "%s", err);
	assert_clean_error(err);
	ck_assert_int_eq(stream_send(wrong, &d, &b, &res, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "TLS"), "%s", err);
	ck_assert_int_eq(stream_send(wrong, &dh, &b, &res, err, sizeof err), -1);
	ck_assert_int_eq(rx_stat(&r, "requests"), 0);
	ck_assert_int_eq(rx_stat(&h, "requests"), 0);

	struct stream_sender *good = sender(it_fmt("%s/ca.crt", ca), 30000);
	ck_assert_msg(stream_send(good, &d, &b, &res, err, sizeof err) == 0, "%s", err);
	ck_assert_msg(stream_send(good, &dh, &b, &res, err, sizeof err) == 0, "%s", err);
	/* By name too: the certificate is for localhost as well. */
	d.url = it_fmt("https://localhost:%d/hook", r.port);
	ck_assert_msg(stream_send(good, &d, &b, &res, err, sizeof err) == 0, "%s", err);
	ck_assert_int_eq(rx_stat(&r, "accepted"), 1);
	ck_assert_int_eq(rx_stat(&r, "repeats"), 1);
	events_free(&e);
	stream_sender_free(sys);
	stream_sender_free(wrong);
	stream_sender_free(good);
	rx_stop(&r);
	rx_stop(&h);
}
END_TEST

/* A redirect is a failure, not followed: the place it points to (which
 * the residency rule never saw) gets nothing. */
START_TEST(redirect_not_followed)
{
	const char *const env[] = { "WEBHOOK_SECRETS=" WH_SECRET, NULL };
	struct rx r, elsewhere;
	rx_start(&r, "webhook_receiver.py", NULL, NULL, env);
	rx_start(&elsewhere, "webhook_receiver.py", NULL, NULL, env);
	struct stream_sender *s = sender(NULL, 30000);
	struct stream_send_result res;
	char err[512];
	struct events e;
	struct stream_batch b;
	events_make(&e, 0, 2, 0);
	batch_make(&b, &e, 1);
	char q[300];
	snprintf(q, sizeof q, "/redirect?n=3&to=%s/hook", elsewhere.url);
	rx_ctl(&r, q);
	enum stream_kind kinds[] = { STREAM_WEBHOOK, STREAM_SPLUNK_HEC, STREAM_S3 };
	const char *secrets[] = { WH_SECRET, HEC_TOKEN, S3_SECRET };
	for (size_t i = 0; i < 3; i++) {
		struct stream_dest d = dest(kinds[i], it_fmt("%s/hook", r.url), secrets[i]);
		ck_assert_int_eq(stream_send(s, &d, &b, &res, err, sizeof err), -1);
		ck_assert_int_eq(res.http_status, 302);
		ck_assert_msg(strstr(err, "302") && strstr(err, "redirect"), "%s", err);
		assert_clean_error(err);
	}
	ck_assert_int_eq(rx_stat(&elsewhere, "requests"), 0);
	events_free(&e);
	stream_sender_free(s);
	rx_stop(&r);
	rx_stop(&elsewhere);
}
END_TEST

/* An answer that does not come, or comes without end, costs one timeout
 * at most; a long answer is read only as far as needed (a 2xx webhook is
 * acknowledged, a 500 fails) and quoted in at most 200 printable bytes. */
START_TEST(answers_bounded)
{
	const char *const env[] = { "WEBHOOK_SECRETS=" WH_SECRET, NULL };
	const char *const henv[] = { "HEC_TOKENS=" HEC_TOKEN, NULL };
	struct rx r, h;
	rx_start(&r, "webhook_receiver.py", NULL, NULL, env);
	rx_start(&h, "hec_receiver.py", NULL, NULL, henv);
	struct stream_sender *s = sender(NULL, 1500);
	struct stream_dest d = dest(STREAM_WEBHOOK, it_fmt("%s/hook", r.url), WH_SECRET);
	struct stream_dest dh = dest(STREAM_SPLUNK_HEC, it_fmt("%s/services/collector/event", h.url), HEC_TOKEN);
	struct stream_send_result res;
	char err[512];
	struct events e;
	struct stream_batch b;
	events_make(&e, 0, 2, 0);
	batch_make(&b, &e, 1);

	rx_ctl(&r, "/slow?n=1&ms=20000");
	long t0 = it_now_ms();
	ck_assert_int_eq(stream_send(s, &d, &b, &res, err, sizeof err), -1);
	ck_assert_msg(it_now_ms() - t0 < 10000 && strstr(err, "no answer within 1500 ms"), "%s", err);

	rx_ctl(&r, "/drip?n=1");
	t0 = it_now_ms();
	ck_assert_int_eq(stream_send(s, &d, &b, &res, err, sizeof err), -1);
	ck_assert_msg(it_now_ms() - t0 < 10000 && strstr(err, "no answer within"), "%s", err);

	rx_ctl(&r, "/huge?n=1&status=500");
	ck_assert_int_eq(stream_send(s, &d, &b, &res, err, sizeof err), -1);
	ck_assert_int_eq(res.http_status, 500);
	ck_assert_msg(!strncmp(err, "HTTP 500: xxxx", 14) && strlen(err) <= strlen("HTTP 500: ") + 200, "%s", err);
	assert_clean_error(err);

	rx_ctl(&h, "/huge?n=1&status=200");
	ck_assert_int_eq(stream_send(s, &dh, &b, &res, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "code"), "%s", err);

	rx_ctl(&r, "/huge?n=1&status=200");
	ck_assert_msg(stream_send(s, &d, &b, &res, err, sizeof err) == 0, "%s", err);
	/* And the sender is still good for the next batch, on any of them. */
	ck_assert_msg(stream_send(s, &d, &b, &res, err, sizeof err) == 0, "%s", err);
	ck_assert_msg(stream_send(s, &dh, &b, &res, err, sizeof err) == 0, "%s", err);
	events_free(&e);
	stream_sender_free(s);
	rx_stop(&r);
	rx_stop(&h);
}
END_TEST

/* A receiver that is down fails the attempt (connection refused, also on
 * a connection kept from before); back on its port, the next goes through. */
START_TEST(receiver_down_and_back)
{
	const char *const env[] = { "WEBHOOK_SECRETS=" WH_SECRET, NULL };
	struct rx r;
	rx_start(&r, "webhook_receiver.py", NULL, NULL, env);
	struct stream_sender *s = sender(NULL, 5000);
	struct stream_dest d = dest(STREAM_WEBHOOK, it_fmt("%s/hook", r.url), WH_SECRET);
	struct stream_send_result res;
	char err[512];
	struct events e1, e2;
	struct stream_batch b1, b2;
	events_make(&e1, 0, 2, 0);
	events_make(&e2, 2, 2, 0);
	batch_make(&b1, &e1, 1);
	batch_make(&b2, &e2, 2);
	ck_assert_msg(stream_send(s, &d, &b1, &res, err, sizeof err) == 0, "%s", err);
	rx_ctl(&r, "/down?seconds=3");
	ck_assert_int_eq(stream_send(s, &d, &b2, &res, err, sizeof err), -1);
	ck_assert_int_eq(res.http_status, 0);
	assert_clean_error(err);
	int ok = 0;
	for (long deadline = it_now_ms() + 30000; !ok && it_now_ms() < deadline;) {
		ok = stream_send(s, &d, &b2, &res, err, sizeof err) == 0;
		if (!ok)
			usleep(200000);
	}
	ck_assert_msg(ok, "not delivered after the receiver came back: %s", err);
	char out[4096];
	ck_assert_msg(rx_check(&r, "webhook_receiver.py", 0, 4, NULL, NULL, out, sizeof out) == 0, "%s", out);
	events_free(&e1);
	events_free(&e2);
	stream_sender_free(s);
	rx_stop(&r);
}
END_TEST

Suite *stream_send_suite(void)
{
	Suite *s = suite_create("stream-send");
	const TTest *const tests[] = {
		webhook_delivered_signed, wrong_secret_refused, hec_delivered, s3_delivered_signed,
		s3rver_stores_batches, retry_after_parsed, tls_trust, redirect_not_followed, answers_bounded,
		receiver_down_and_back,
	};
	it_add_tests(s, tests, sizeof tests / sizeof tests[0], NULL, NULL, 300);
	return s;
}
