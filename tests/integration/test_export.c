/* GET /v1/events/export from outside: a real control plane and data plane
 * (it_stack) on the throwaway PostgreSQL, libcurl and raw sockets as the
 * clients, zlib to decompress, and the regional database read directly.
 *
 *   same_as_list           every combination of the filters: the export (NDJSON, CSV, gzip) holds the
 *                          list's events in the list's order; CSV fields as documented; empty results;
 *                          a list's cursor starts the export after its page
 *   format_and_gate        format required (or Accept alone), limit refused, scope, headers, HEAD
 *   large_export           20,000 events (ties across page boundaries) streamed whole, as in SQL
 *   client_goes_away       a client that disconnects mid-export: slot and connection given back
 *   db_stops_mid_stream    the database stops mid-export: a truncated transfer, never a short file
 *   concurrency_bound      DP_EXPORT_CONCURRENCY exports at once, the next 503 with Retry-After
 *   timeout_bounds_stalls  a long export that keeps moving outlives the response timeout; a stalled one does not
 *
 * With the log on (the default), an NDJSON export ends with a trailer
 * (the `log` lines and the `checkpoint` line: export.h); these tests read
 * the events before it and check its shape (test_log_routes.c checks its
 * hashes and signature).
 *
 * CK_RUN_SUITE=export (and CK_RUN_CASE=<test>) runs them alone. */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "buf.h"
#include "fixtures.h"

#define SLOW_MS 60000

/* ---- a client of the export ---- */

struct xres {
	long status;
	CURLcode rc;          /* CURLE_OK: the transfer ended as HTTP says it should */
	struct buf body;
	char headers[8192];
	size_t hlen;
	size_t abort_after;   /* > 0: the client goes away after this many bytes */
	void (*on_first)(void *); /* called once, at the first bytes of the body */
	void *first_arg;
	int firsted;
	long pause_every;     /* > 0: sleeps pause_ms after each this many bytes */
	long pause_ms;
	size_t since_pause;
	long rcvbuf;          /* > 0: the socket's receive buffer */
};

static size_t x_body(char *p, size_t size, size_t n, void *arg)
{
	struct xres *x = arg;
	size_t len = size * n;
	if (!x->firsted && x->on_first) {
		x->firsted = 1;
		x->on_first(x->first_arg);
	}
	if (x->abort_after && x->body.len + len > x->abort_after)
		return 0; /* libcurl closes the connection */
	buf_append(&x->body, p, len);
	if (x->pause_every > 0 && (x->since_pause += len) >= (size_t)x->pause_every) {
		x->since_pause = 0;
		usleep((useconds_t)x->pause_ms * 1000);
	}
	return len;
}

static size_t x_header(char *p, size_t size, size_t n, void *arg)
{
	struct xres *x = arg;
	size_t len = size * n;
	if (x->hlen + len < sizeof x->headers) {
		memcpy(x->headers + x->hlen, p, len);
		x->hlen += len;
		x->headers[x->hlen] = '\0';
	}
	return len;
}

static int x_sockopt(void *arg, curl_socket_t fd, curlsocktype purpose)
{
	struct xres *x = arg;
	int v = (int)x->rcvbuf;
	if (purpose == CURLSOCKTYPE_IPCXN && v > 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
	return CURL_SOCKOPT_OK;
}

/* GET `path` of the data plane with the stack's key and `headers`
 * (NULL-terminated, may be NULL); the body as sent (not decompressed). */
static void xget(const struct it_stack *s, const char *path, const char *const headers[], struct xres *x)
{
	char url[2048], auth[300];
	snprintf(url, sizeof url, "%s%s", s->dp_url, path);
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", s->key);
	struct curl_slist *h = curl_slist_append(NULL, auth);
	for (int i = 0; headers && headers[i]; i++)
		h = curl_slist_append(h, headers[i]);
	CURL *c = curl_easy_init();
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, x_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, x_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 300000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (x->rcvbuf > 0) {
		curl_easy_setopt(c, CURLOPT_SOCKOPTFUNCTION, x_sockopt);
		curl_easy_setopt(c, CURLOPT_SOCKOPTDATA, x);
		curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 16384L);
	}
	x->rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &x->status);
	buf_append(&x->body, "", 0); /* NUL-terminated, never NULL */
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
}

static void xfree(struct xres *x)
{
	buf_free(&x->body);
}

/* The value of response header `name`, "" when absent. */
static const char *xheader(const struct xres *x, const char *name)
{
	static char v[512];
	size_t n = strlen(name);
	v[0] = '\0';
	for (const char *p = x->headers; (p = strstr(p, "\n")) != NULL;) {
		p++;
		if (!strncasecmp(p, name, n) && p[n] == ':') {
			p += n + 1;
			while (*p == ' ')
				p++;
			size_t k = strcspn(p, "\r\n");
			snprintf(v, sizeof v, "%.*s", (int)k, p);
			break;
		}
	}
	return v;
}

/* Inflates a whole gzip stream (fails the test unless it is one). */
static char *gunzip(const char *in, size_t len, size_t *outlen)
{
	z_stream z = { 0 };
	ck_assert_int_eq(inflateInit2(&z, 15 + 16), Z_OK);
	size_t cap = len * 8 + 4096, got = 0;
	char *out = malloc(cap + 1);
	z.next_in = (unsigned char *)in;
	z.avail_in = (unsigned)len;
	int rc;
	do {
		if (cap - got < 65536) {
			cap *= 2;
			out = realloc(out, cap + 1);
		}
		z.next_out = (unsigned char *)out + got;
		z.avail_out = (unsigned)(cap - got);
		rc = inflate(&z, Z_NO_FLUSH);
		got = cap - z.avail_out;
	} while (rc == Z_OK);
	inflateEnd(&z);
	ck_assert_msg(rc == Z_STREAM_END, "not a whole gzip stream (zlib %d, %zu bytes in, %zu out)", rc, len, got);
	out[got] = '\0';
	*outlen = got;
	return out;
}

/* ---- reading exports back ---- */

/* 1 when the line at `p` is one of the trailer's. */
static int trailer_line(const char *p)
{
	return !strncmp(p, "{\"log\":{", 8) || !strncmp(p, "{\"checkpoint\":\"", 15);
}

/* The length of an NDJSON export's events: the bytes before its trailer. */
static size_t events_len(const char *body)
{
	size_t left = strlen(body);
	const char *p = body;
	while (left > 0 && !trailer_line(p)) {
		const char *nl = memchr(p, '\n', left);
		ck_assert_msg(nl, "NDJSON without its last newline");
		left -= (size_t)(nl + 1 - p);
		p = nl + 1;
	}
	return (size_t)(p - body);
}

/* The length of an NDJSON export before its checkpoint line (all of it
 * when it has none). */
static size_t signed_from(const char *body)
{
	const char *c = strstr(body, "\n{\"checkpoint\":\"");
	return c ? (size_t)(c + 1 - body) : strlen(body);
}

/* What the trailer of an NDJSON export holds. */
struct trailer {
	int lines;                /* log lines */
	long long tree_size;      /* 0: no trailer */
	int complete;             /* 1, 0, or -1 when the lines differ */
};

/* Checks the trailer's shape after the events: log lines of one tree
 * size, from 0 up, each of 1 to 1000 leaves after the previous one, then
 * one checkpoint line, the last line. */
static struct trailer trailer_of(const char *body)
{
	struct trailer t = { 0, 0, -2 };
	long long next = 0;
	int checkpoint = 0;
	const char *p = body + events_len(body);
	for (size_t left = strlen(p); left > 0;) {
		const char *nl = memchr(p, '\n', left);
		ck_assert_msg(nl && !checkpoint, "a line after the checkpoint line, or no last newline");
		json_t *o = json_loadb(p, (size_t)(nl - p), 0, NULL);
		json_t *log = json_object_get(o, "log");
		if (log) {
			long long n = json_integer_value(json_object_get(log, "tree_size"));
			size_t k = json_array_size(json_object_get(log, "leaf_hashes"));
			int c = json_is_true(json_object_get(log, "complete"));
			ck_assert_msg(t.lines == 0 || n == t.tree_size, "log lines of two sizes");
			ck_assert_int_eq(json_integer_value(json_object_get(log, "from")), next);
			ck_assert_msg(k >= 1 && k <= 1000, "a log line of %zu leaves", k);
			t.tree_size = n;
			t.complete = t.complete == -2 || t.complete == c ? c : -1;
			next += (long long)k;
			t.lines++;
		} else {
			ck_assert_msg(json_is_string(json_object_get(o, "checkpoint")), "not a trailer line");
			checkpoint = 1;
		}
		json_decref(o);
		left -= (size_t)(nl + 1 - p);
		p = nl + 1;
	}
	ck_assert_int_eq(next, t.tree_size);
	ck_assert_msg(checkpoint == (t.lines > 0), "a trailer without its checkpoint line, or the reverse");
	return t;
}

/* The events of an NDJSON export, in order, each line a JSON object. The
 * bodies are megabytes: lines are found with memchr and a length, as
 * strchr under ASan checks the whole rest of the string at every call. */
static json_t *ndjson_events(const char *body)
{
	json_t *all = json_array();
	size_t left = events_len(body);
	for (const char *p = body; left > 0;) {
		const char *nl = memchr(p, '\n', left);
		ck_assert_msg(nl, "NDJSON without its last newline");
		json_error_t e;
		json_t *ev = json_loadb(p, (size_t)(nl - p), 0, &e);
		ck_assert_msg(json_is_object(ev), "line not a JSON object: %s", e.text);
		json_array_append_new(all, ev);
		left -= (size_t)(nl + 1 - p);
		p = nl + 1;
	}
	return all;
}

#define CSV_COLS 10

/* The records of a CSV export (RFC 4180: quoted fields, "" for a quote,
 * CRLF after each record): an array of arrays of strings. */
static json_t *csv_records(const char *p)
{
	json_t *recs = json_array();
	struct buf f = { 0 };
	while (*p) {
		json_t *rec = json_array();
		for (;;) {
			f.len = 0;
			buf_append(&f, "", 0);
			f.len = 0;
			if (*p == '"') {
				for (p++;; p++) {
					ck_assert_msg(*p, "unterminated quoted field");
					if (p[0] == '"' && p[1] == '"')
						buf_append(&f, p++, 1);
					else if (*p == '"')
						break;
					else
						buf_append(&f, p, 1);
				}
				p++;
			} else {
				size_t n = 0;
				while (p[n] && p[n] != ',' && p[n] != '\r' && p[n] != '\n' && p[n] != '"')
					n++;
				buf_append(&f, p, n);
				p += n;
				ck_assert_msg(*p != '"', "a quote inside an unquoted field");
			}
			json_array_append_new(rec, json_stringn(f.p ? f.p : "", f.len));
			if (*p == ',') {
				p++;
				continue;
			}
			ck_assert_msg(p[0] == '\r' && p[1] == '\n', "record not ended by CRLF");
			p += 2;
			break;
		}
		ck_assert_int_eq(json_array_size(rec), CSV_COLS);
		json_array_append_new(recs, rec);
	}
	buf_free(&f);
	return recs;
}

/* The reference of a CSV field: a formula's first character defused. */
static char *defused(const char *s)
{
	char *out = malloc(strlen(s) + 2);
	if (*s && strchr("=+-@\t\r", *s))
		sprintf(out, "'%s", s);
	else
		strcpy(out, s);
	return out;
}

static char *compact(const json_t *v)
{
	return json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
}

/* Checks a CSV record against the event (from NDJSON) it stands for. */
static void check_record(const json_t *rec, const json_t *ev)
{
	const json_t *actor = json_object_get(ev, "actor");
	const json_t *name = json_object_get(actor, "name");
	char *want[CSV_COLS] = {
		defused(it_js(ev, "id")),
		defused(it_js(ev, "occurred_at")),
		defused(it_js(ev, "received_at")),
		defused(it_js(ev, "action")),
		defused(it_js(actor, "id")),
		defused(it_js(actor, "type")),
		defused(name ? json_string_value(name) : ""),
		compact(json_object_get(ev, "targets")),
		compact(json_object_get(ev, "context")),
		compact(json_object_get(ev, "metadata")),
	};
	for (int i = 0; i < CSV_COLS; i++) {
		const char *got = json_string_value(json_array_get(rec, (size_t)i));
		ck_assert_msg(got && !strcmp(got, want[i]), "CSV column %d of %s: [%s], want [%s]", i, it_js(ev, "id"),
		              got ? got : "(none)", want[i]);
		free(want[i]);
	}
}

/* ---- data ---- */

/* A GET of the data plane with the stack's key, parsed (struct res). */
static void dget(const struct it_stack *s, const char *path, struct res *r)
{
	char auth[300];
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", s->key);
	const char *const h[] = { auth, NULL };
	res_call(r, "GET", it_fmt("%s%s", s->dp_url, path), h, NULL, 0);
}

/* The ids GET /v1/events gives for `query` (every page, 7 at a time). */
static json_t *list_ids(const struct it_stack *s, const char *query)
{
	json_t *ids = json_array();
	char cursor[512] = "";
	for (;;) {
		struct res r;
		dget(s, it_fmt("/v1/events?limit=7%s%s%s", query, cursor[0] ? "&cursor=" : "", cursor), &r);
		EXPECT(&r, 200);
		json_t *evs = json_object_get(r.json, "items");
		ck_assert_msg(json_is_array(evs), "not a page: %.300s", r.raw.body);
		size_t i;
		json_t *ev;
		json_array_foreach(evs, i, ev)
			json_array_append_new(ids, json_string(it_js(ev, "id")));
		const char *next = it_js(r.json, "next_cursor");
		snprintf(cursor, sizeof cursor, "%s", next);
		res_free(&r);
		if (!cursor[0])
			return ids;
	}
}

static json_t *ids_of(const json_t *events)
{
	json_t *ids = json_array();
	size_t i;
	json_t *ev;
	json_array_foreach(events, i, ev)
		json_array_append_new(ids, json_string(json_is_array(ev) ? json_string_value(json_array_get(ev, 0))
		                                                         : it_js(ev, "id")));
	return ids;
}

static void expect_same_ids(json_t *want, json_t *got, const char *what)
{
	char *w = json_dumps(want, JSON_COMPACT), *g = json_dumps(got, JSON_COMPACT);
	ck_assert_msg(json_equal(want, got), "%s: got %.600s\nwant %.600s", what, g, w);
	free(w);
	free(g);
	json_decref(want);
	json_decref(got);
}

/* "YYYY-MM-DDTHH:MM:SSZ" of `t`. */
static const char *stamp(time_t t)
{
	struct tm tm;
	static char out[4][32];
	static int k;
	gmtime_r(&t, &tm);
	k = (k + 1) % 4;
	strftime(out[k], sizeof out[k], "%Y-%m-%dT%H:%M:%SZ", &tm);
	return out[k];
}

/* Inserts `n` events of the stack's tenant straight into the regional
 * database: ids bulk-<g>, two at each occurred_at (ties that the keyset's
 * seq breaks, across page boundaries too), about `pad` bytes of metadata
 * each, hexadecimal, so that gzip shrinks it by half only. */
static void bulk_insert(const struct it_stack *s, int n, int pad)
{
	free(it_sql(s->dp_db, it_fmt(
		"INSERT INTO events (tenant_id, id, occurred_at, received_at, action, actor_id, target_ids,"
		"                    content_sha256, body)"
		" SELECT '%s'::uuid, 'bulk-' || g, o, now(), 'bulk.event', 'u-' || (g %% 10), '{}',"
		"        sha256(g::text::bytea),"
		"        json_build_object('id', 'bulk-' || g,"
		"          'occurred_at', to_char(o AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
		"          'received_at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
		"          'action', 'bulk.event', 'actor', json_build_object('id', 'u-' || (g %% 10), 'type', 'user'),"
		"          'targets', '[]'::json, 'context', '{}'::json,"
		"          'metadata', json_build_object('pad', (SELECT string_agg(md5(g::text || '.' || i), '')"
		"                                                  FROM generate_series(1, %d / 32) i)))"
		"   FROM generate_series(1, %d) g, LATERAL (SELECT now() - (g / 2) * interval '1 second' AS o) t",
		s->tenant, pad, n)));
}

/* The ids of the tenant's events in the listing's order, as SQL has them. */
static char *sql_ids(const struct it_stack *s)
{
	return it_sql(s->dp_db, it_fmt("SELECT string_agg(id, ',' ORDER BY occurred_at DESC, seq DESC) FROM events"
	                               " WHERE tenant_id = '%s'",
	                               s->tenant));
}

/* The ids of an NDJSON body joined with commas (malloc'd). */
static char *joined_ids(const char *body, long *count)
{
	struct buf b = { 0 };
	*count = 0;
	size_t left = events_len(body);
	for (const char *p = body; left > 0;) {
		const char *nl = memchr(p, '\n', left);
		ck_assert_ptr_nonnull(nl);
		/* The first member, "id" (json_build_object writes " : "). */
		ck_assert_msg(!strncmp(p, "{\"id\"", 5), "a line that does not start with its id");
		const char *id = p + 5;
		while (*id == ' ' || *id == ':')
			id++;
		ck_assert_msg(*id == '"', "an id that is not a string");
		id++;
		size_t n = 0;
		while (id + n < nl && id[n] != '"')
			n++;
		if (*count)
			buf_append(&b, ",", 1);
		buf_append(&b, id, n);
		(*count)++;
		left -= (size_t)(nl + 1 - p);
		p = nl + 1;
	}
	buf_append(&b, "", 0);
	return buf_take(&b);
}

/* A sample of the data plane's /metrics: the value of the line that starts
 * with `series` followed by a space; -1 when absent. */
static double metric(const struct it_stack *s, const char *series)
{
	struct it_resp r;
	it_http(&r, "GET", it_fmt("%s/metrics", s->dp_url), NULL, NULL, 0);
	double v = -1;
	size_t n = strlen(series);
	for (const char *p = r.body; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (!strncmp(p, series, n) && p[n] == ' ') {
			v = strtod(p + n + 1, NULL);
			break;
		}
	it_resp_free(&r);
	return v;
}

/* Waits until `series` equals `want` (fails the test past SLOW_MS). */
static void wait_metric(const struct it_stack *s, const char *series, double want)
{
	long deadline = it_now_ms() + SLOW_MS;
	double v;
	while ((v = metric(s, series)) != want) {
		ck_assert_msg(it_now_ms() < deadline, "%s stayed %g, want %g", series, v, want);
		usleep(50000);
	}
}

/* ---- tests ---- */

/* The events of same_as_list: actors, actions, targets and times that
 * every filter splits, ties in occurred_at, and text that CSV must quote or
 * defuse. */
static void post_sample(const struct it_stack *s, time_t t0)
{
	static const char *const names[] = { "=1+1", "Zo\xc3\xab, \\\"the\\\" admin", "-neg", "line\\nbreak", NULL };
	static const char *const actions[] = { "user.login", "doc.read", "=cmd" };
	struct buf b = { 0 };
	buf_append(&b, "{\"events\":[", 11);
	for (int i = 0; i < 40; i++) {
		char name[80] = "";
		if (names[i % 5])
			snprintf(name, sizeof name, ",\"name\":\"%s\"", names[i % 5]);
		buf_printf(&b,
		           "%s{\"id\":\"e-%02d\",\"occurred_at\":\"%s\",\"action\":\"%s\","
		           "\"actor\":{\"id\":\"u-%d\",\"type\":\"%s\"%s},\"targets\":%s,"
		           "\"context\":{\"ip\":\"10.0.0.%d\"},\"metadata\":{\"k\":\"@x,\\\"y\\\"\\r\\n\",\"n\":%d}}",
		           i ? "," : "", i, stamp(t0 - (i / 3) * 60), actions[i % 3], i % 4, i % 2 ? "user" : "service",
		           name, i % 3 == 0 ? "[]" : it_fmt("[{\"id\":\"t-%d\",\"type\":\"doc\"}]", i % 3), i, i);
	}
	buf_append(&b, "]}", 2);
	char auth[300];
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", s->key);
	const char *const h[] = { auth, "Content-Type: application/json", NULL };
	struct res r;
	res_call(&r, "POST", it_fmt("%s/v1/events", s->dp_url), h, b.p, b.len);
	EXPECT(&r, 201);
	res_free(&r);
	buf_free(&b);
}

START_TEST(same_as_list)
{
	/* Whatever the filters, an export holds exactly the events the list
	 * pages through, in the same order, in either format, compressed or
	 * not; a CSV record is its event's fields as documented. */
	struct it_stack s;
	it_stack_start(&s, "us", NULL, NULL);
	time_t t0 = time(NULL) - 86400;
	post_sample(&s, t0);
	const char *const filters[] = { "&actor=u-1", "&action=doc.read", "&target=t-1",
		                            it_fmt("&since=%s", stamp(t0 - 9 * 60)), it_fmt("&until=%s", stamp(t0 - 2 * 60)) };
	const char *since = strdup(filters[3]), *until = strdup(filters[4]);
	const char *f[5] = { filters[0], filters[1], filters[2], since, until };
	int nonempty = 0, empty = 0;
	for (int mask = 0; mask <= 32; mask++) {
		char q[512] = "";
		for (int i = 0; i < 5; i++)
			if (mask & (1 << i))
				strcat(q, f[i]);
		if (mask == 32)
			strcat(q, "&actor=nobody");
		json_t *want = list_ids(&s, q);
		size_t n = json_array_size(want);
		n ? nonempty++ : empty++;

		struct xres nd = { 0 }, csv = { 0 };
		xget(&s, it_fmt("/v1/events/export?format=ndjson%s", q), NULL, &nd);
		ck_assert_msg(nd.rc == CURLE_OK && nd.status == 200, "ndjson %s: %d %ld", q, nd.rc, nd.status);
		ck_assert_str_eq(xheader(&nd, "Content-Type"), "application/x-ndjson");
		json_t *events = ndjson_events(nd.body.p);
		expect_same_ids(json_deep_copy(want), ids_of(events), it_fmt("ndjson%s", q));

		xget(&s, it_fmt("/v1/events/export?format=csv%s", q), NULL, &csv);
		ck_assert_msg(csv.rc == CURLE_OK && csv.status == 200, "csv %s: %d %ld", q, csv.rc, csv.status);
		ck_assert_str_eq(xheader(&csv, "Content-Type"), "text/csv; charset=utf-8");
		json_t *recs = csv_records(csv.body.p);
		ck_assert_int_eq(json_array_size(recs), n + 1);
		ck_assert_str_eq(json_string_value(json_array_get(json_array_get(recs, 0), 0)), "id");
		ck_assert_str_eq(json_string_value(json_array_get(json_array_get(recs, 0), 9)), "metadata");
		json_array_remove(recs, 0);
		for (size_t i = 0; i < n; i++)
			check_record(json_array_get(recs, i), json_array_get(events, i));
		expect_same_ids(want, ids_of(recs), it_fmt("csv%s", q));
		/* The log's trailer: complete without filters only. */
		struct trailer tr = trailer_of(nd.body.p);
		ck_assert_int_eq(tr.lines, 1);
		ck_assert_int_eq(tr.tree_size, 40);
		ck_assert_int_eq(tr.complete, mask == 0);
		if (n == 0) {
			ck_assert_uint_eq(events_len(nd.body.p), 0);
			ck_assert_str_eq(csv.body.p, "id,occurred_at,received_at,action,actor_id,actor_type,actor_name,"
			                             "targets,context,metadata\r\n");
		}

		/* Compressed when asked: the same bytes once inflated. */
		if (mask == 0 || mask == 3 || mask == 31 || mask == 32) {
			for (int k = 0; k < 2; k++) {
				struct xres gz = { 0 };
				const char *const h[] = { "Accept-Encoding: gzip", NULL };
				xget(&s, it_fmt("/v1/events/export?format=%s%s", k ? "csv" : "ndjson", q), h, &gz);
				ck_assert_msg(gz.rc == CURLE_OK && gz.status == 200, "gzip %s: %d %ld", q, gz.rc, gz.status);
				ck_assert_str_eq(xheader(&gz, "Content-Encoding"), "gzip");
				ck_assert_str_eq(xheader(&gz, "Vary"), "Accept-Encoding");
				size_t len;
				char *plain = gunzip(gz.body.p, gz.body.len, &len);
				const struct buf *ref = k ? &csv.body : &nd.body;
				/* The same bytes, but for the trailer's checkpoint, which
				 * each export has signed when it started. */
				size_t same = k ? ref->len : signed_from(ref->p);
				ck_assert_msg(len >= same && !memcmp(plain, ref->p, same) &&
				                  (same == ref->len ? len == same : !strncmp(plain + same, "{\"checkpoint\":\"", 15)),
				              "gzip %s differs", q);
				free(plain);
				xfree(&gz);
			}
		}
		ck_assert_str_eq(xheader(&nd, "Vary"), "Accept-Encoding");
		ck_assert_str_eq(xheader(&nd, "Content-Encoding"), "");
		json_decref(events);
		json_decref(recs);
		xfree(&nd);
		xfree(&csv);
	}
	ck_assert_int_gt(nonempty, 10);
	ck_assert_int_gt(empty, 0);

	/* With a list's cursor, the export starts after that page. */
	struct res r;
	dget(&s, "/v1/events?limit=7&actor=u-1", &r);
	EXPECT(&r, 200);
	char cur[512];
	snprintf(cur, sizeof cur, "%s", it_js(r.json, "next_cursor"));
	ck_assert_str_ne(cur, "");
	res_free(&r);
	json_t *all = list_ids(&s, "&actor=u-1"), *rest = json_array();
	for (size_t i = 7; i < json_array_size(all); i++)
		json_array_append(rest, json_array_get(all, i));
	json_decref(all);
	struct xres xc = { 0 };
	xget(&s, it_fmt("/v1/events/export?format=ndjson&actor=u-1&cursor=%s", cur), NULL, &xc);
	ck_assert_int_eq(xc.status, 200);
	json_t *evs = ndjson_events(xc.body.p);
	expect_same_ids(rest, ids_of(evs), "export after a cursor");
	ck_assert_int_eq(trailer_of(xc.body.p).complete, 0);
	json_decref(evs);
	xfree(&xc);
	free((void *)since);
	free((void *)until);
	it_stack_stop(&s);
}
END_TEST

START_TEST(format_and_gate)
{
	/* The format is said (format=, or an Accept naming one type alone),
	 * never guessed; limit does not apply; the gate of GET /v1/events. */
	struct it_stack s;
	it_stack_start(&s, "us", NULL, NULL);
	post_sample(&s, time(NULL) - 3600);
	static const struct {
		const char *query, *accept, *field;
		const char *ctype;
	} cases[] = {
		{ "", NULL, "format", NULL },
		{ "", "Accept: */*", "format", NULL },
		{ "", "Accept: application/json", "format", NULL },
		{ "", "Accept: text/csv, application/x-ndjson", "format", NULL },
		{ "format=", NULL, "format", NULL },
		{ "format=xml", NULL, "format", NULL },
		{ "format=CSV", NULL, "format", NULL },
		{ "format=csv&limit=5", NULL, "limit", NULL },
		{ "format=csv&actor=", NULL, "actor", NULL },
		{ "format=csv&since=yesterday", NULL, "since", NULL },
		{ "format=csv&cursor=nope", NULL, "cursor", NULL },
		{ "format=csv", NULL, NULL, "text/csv; charset=utf-8" },
		{ "format=ndjson", "Accept: text/csv", NULL, "application/x-ndjson" },
		{ "", "Accept: text/csv", NULL, "text/csv; charset=utf-8" },
		{ "", "Accept: application/x-ndjson;q=0.9, */*;q=0.1", NULL, "application/x-ndjson" },
		{ "", "Accept: text/csv;q=0, application/x-ndjson", NULL, "application/x-ndjson" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct xres x = { 0 };
		const char *const h[] = { cases[i].accept, NULL };
		xget(&s, it_fmt("/v1/events/export?%s", cases[i].query), h, &x);
		if (cases[i].field) {
			ck_assert_msg(x.status == 400, "case %zu: %ld", i, x.status);
			json_t *p = json_loads(x.body.p, 0, NULL);
			ck_assert_str_eq(it_js(p, "code"), "validation_failed");
			ck_assert_str_eq(it_js(p, "field"), cases[i].field);
			ck_assert_str_eq(xheader(&x, "Content-Type"), "application/problem+json");
			json_decref(p);
		} else {
			ck_assert_msg(x.status == 200 && x.rc == CURLE_OK, "case %zu: %ld", i, x.status);
			ck_assert_str_eq(xheader(&x, "Content-Type"), cases[i].ctype);
			const char *ext = strstr(cases[i].ctype, "csv") ? "csv" : "ndjson";
			const char *cd = xheader(&x, "Content-Disposition");
			const char *suffix = it_fmt(".%s\"", ext);
			ck_assert_msg(!strncmp(cd, "attachment; filename=\"events-", 29) && strlen(cd) > strlen(suffix) &&
			                  !strcmp(cd + strlen(cd) - strlen(suffix), suffix),
			              "Content-Disposition: %s", cd);
			ck_assert_str_ne(xheader(&x, "RateLimit-Remaining"), "");
		}
		xfree(&x);
	}
	/* A key without events:read, and no key. */
	struct it_resp r;
	it_stack_admin(&s, &r, "POST", it_fmt("/v1/tenants/%s/api-keys", s.tenant),
	               "{\"name\":\"w\",\"scopes\":[\"events:write\"]}");
	ck_assert_int_eq(r.status, 201);
	json_t *k = json_loads(r.body, 0, NULL);
	char wkey[200];
	snprintf(wkey, sizeof wkey, "%s", it_js(k, "secret"));
	json_decref(k);
	it_resp_free(&r);
	it_stack_sync(&s);
	struct res p;
	const char *const wh[] = { it_fmt("Authorization: Bearer %s", wkey), NULL };
	res_call(&p, "GET", it_fmt("%s/v1/events/export?format=csv", s.dp_url), wh, NULL, 0);
	EXPECT_PROBLEM(&p, 403, "insufficient_scope", NULL);
	res_free(&p);
	res_call(&p, "GET", it_fmt("%s/v1/events/export?format=csv", s.dp_url), NULL, NULL, 0);
	ck_assert_int_eq(p.status, 401);
	res_free(&p);
	/* HEAD: the headers of an export, no body, nothing left running. */
	struct it_resp h;
	const char *const hh[] = { it_fmt("Authorization: Bearer %s", s.key), NULL };
	it_http(&h, "HEAD", it_fmt("%s/v1/events/export?format=csv", s.dp_url), hh, NULL, 0);
	ck_assert_int_eq(h.status, 200);
	ck_assert_uint_eq(h.len, 0);
	it_resp_free(&h);
	wait_metric(&s, "dp_exports_running", 0);
	/* POST is not an export. */
	const char *const ah[] = { it_fmt("Authorization: Bearer %s", s.key), NULL };
	res_call(&p, "POST", it_fmt("%s/v1/events/export?format=csv", s.dp_url), ah, NULL, 0);
	ck_assert_int_eq(p.status, 405);
	res_free(&p);
	it_stack_stop(&s);
}
END_TEST

START_TEST(large_export)
{
	/* 20,000 events, pairs of them at one occurred_at (some astride the
	 * pages the export reads), arrive whole, each once, in the listing's
	 * order, compressed or not. */
	struct it_stack s;
	it_stack_start(&s, "us", NULL, NULL);
	bulk_insert(&s, 20000, 200);
	char *want = sql_ids(&s);
	for (int gz = 0; gz < 2; gz++) {
		struct xres x = { 0 };
		const char *const h[] = { gz ? "Accept-Encoding: gzip" : NULL, NULL };
		xget(&s, "/v1/events/export?format=ndjson", h, &x);
		ck_assert_msg(x.rc == CURLE_OK && x.status == 200, "%d %ld", x.rc, x.status);
		size_t len = x.body.len;
		char *plain = gz ? gunzip(x.body.p, x.body.len, &len) : strdup(x.body.p);
		long n;
		char *got = joined_ids(plain, &n);
		ck_assert_int_eq(n, 20000);
		ck_assert_msg(!strcmp(got, want), "the export's order differs from SQL's");
		ck_assert_int_le(trailer_of(plain).tree_size, 20000);
		fprintf(stderr, "  large export: %ld events, %zu bytes%s\n", n, x.body.len, gz ? " (gzip)" : "");
		free(got);
		free(plain);
		xfree(&x);
	}
	ck_assert_int_eq((long)metric(&s, "dp_exports_total{outcome=\"complete\"}"), 2);
	ck_assert_int_eq((long)metric(&s, "dp_export_events_total"), 40000);
	/* The trailer in pages: each export appends (within a budget) what
	 * the events inserted in SQL added, until the log holds them all in
	 * 20 lines of 1000 leaves. */
	long deadline = it_now_ms() + SLOW_MS;
	for (;;) {
		struct xres x = { 0 };
		xget(&s, "/v1/events/export?format=ndjson&actor=u-1", NULL, &x);
		ck_assert_msg(x.rc == CURLE_OK && x.status == 200, "%d %ld", x.rc, x.status);
		struct trailer t = trailer_of(x.body.p);
		xfree(&x);
		ck_assert_int_eq(t.complete, 0);
		if (t.tree_size == 20000) {
			ck_assert_int_eq(t.lines, 20);
			break;
		}
		ck_assert_msg(it_now_ms() < deadline, "the log stayed at %lld leaves", t.tree_size);
	}
	free(want);
	it_stack_stop(&s);
}
END_TEST

START_TEST(client_goes_away)
{
	/* A client that hangs up mid-export frees its slot and its database
	 * connection; the next export is whole. */
	struct it_stack s;
	it_stack_start(&s, "us", NULL, NULL);
	bulk_insert(&s, 20000, 1000);
	for (int gz = 0; gz < 2; gz++) {
		struct xres x = { .abort_after = 300000, .rcvbuf = 32768 };
		const char *const h[] = { gz ? "Accept-Encoding: gzip" : NULL, NULL };
		xget(&s, "/v1/events/export?format=csv", h, &x);
		ck_assert_msg(x.rc == CURLE_WRITE_ERROR, "curl %d, status %ld, %zu bytes", x.rc, x.status, x.body.len);
		xfree(&x);
	}
	wait_metric(&s, "dp_exports_running", 0);
	wait_metric(&s, "dp_exports_total{outcome=\"aborted\"}", 2);
	wait_metric(&s, "db_pool_connections_in_use{service=\"data-plane\"}", 0);
	struct xres x = { 0 };
	xget(&s, "/v1/events/export?format=ndjson", NULL, &x);
	ck_assert_int_eq(x.rc, CURLE_OK);
	long n;
	free(joined_ids(x.body.p, &n));
	ck_assert_int_eq(n, 20000);
	xfree(&x);
	it_stack_stop(&s);
}
END_TEST

static void stop_pg(void *arg)
{
	(void)arg;
	it_pg_stop();
}

START_TEST(db_stops_mid_stream)
{
	/* The database gone after the 200: the client sees a broken transfer
	 * (no last chunk), never a file that looks whole; once the database is
	 * back, exports are whole again. */
	struct it_stack s;
	it_stack_start(&s, "us", NULL, NULL);
	bulk_insert(&s, 20000, 1000);
	/* A small receive window: most of the export is still unread, in the
	 * database, when the client's first bytes stop it. */
	struct xres x = { .on_first = stop_pg, .rcvbuf = 32768 };
	xget(&s, "/v1/events/export?format=ndjson", NULL, &x);
	it_pg_start();
	fprintf(stderr, "  database stopped mid-export: curl %d (%s) after %zu bytes\n", x.rc, curl_easy_strerror(x.rc),
	        x.body.len);
	ck_assert_int_eq(x.status, 200);
	ck_assert_msg(x.rc == CURLE_PARTIAL_FILE || x.rc == CURLE_RECV_ERROR, "curl %d: the transfer looked whole",
	              x.rc);
	ck_assert_uint_lt(x.body.len, 20000u * 1000u);
	xfree(&x);
	wait_metric(&s, "dp_exports_total{outcome=\"failed\"}", 1);
	wait_metric(&s, "dp_exports_running", 0);
	/* Back: whole again (the pool reconnects). */
	long deadline = it_now_ms() + SLOW_MS;
	for (;;) {
		struct xres y = { 0 };
		xget(&s, "/v1/events/export?format=csv&actor=u-3", NULL, &y);
		int whole = y.rc == CURLE_OK && y.status == 200;
		xfree(&y);
		if (whole)
			break;
		ck_assert_msg(it_now_ms() < deadline, "exports did not recover after the database came back");
		usleep(200000);
	}
	it_stack_stop(&s);
}
END_TEST

/* Sends an export request on a raw connection and reads its status line
 * and headers, no more; returns the status. */
static long raw_export(const struct it_stack *s, int fd)
{
	char req[600], head[4096];
	size_t n = 0;
	snprintf(req, sizeof req,
	         "GET /v1/events/export?format=ndjson HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", s->key);
	ck_assert_int_eq(it_raw_send(fd, req, strlen(req)), 0);
	while (n < sizeof head - 1) {
		ssize_t k = recv(fd, head + n, 1, 0);
		ck_assert_msg(k == 1, "connection closed before the headers");
		n++;
		head[n] = '\0';
		if (n >= 4 && !strcmp(head + n - 4, "\r\n\r\n"))
			break;
	}
	return strtol(head + 9, NULL, 10);
}

START_TEST(concurrency_bound)
{
	/* DP_EXPORT_CONCURRENCY=2: two exports stream at once, a third is
	 * refused (503, Retry-After) while they do, and admitted once one of
	 * them ends. */
	struct it_stack s;
	const char *const env[] = { "DP_EXPORT_CONCURRENCY=2", NULL };
	it_stack_start(&s, "us", NULL, env);
	bulk_insert(&s, 20000, 1000);
	int small = 4096;
	int a = it_raw_connect(s.dp_port), b = it_raw_connect(s.dp_port);
	setsockopt(a, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
	setsockopt(b, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
	ck_assert_int_eq(raw_export(&s, a), 200);
	ck_assert_int_eq(raw_export(&s, b), 200); /* the bound itself is allowed */
	ck_assert_int_eq((long)metric(&s, "dp_exports_running"), 2);
	struct xres x = { 0 };
	xget(&s, "/v1/events/export?format=csv&actor=u-1", NULL, &x);
	ck_assert_int_eq(x.status, 503);
	json_t *p = json_loads(x.body.p, 0, NULL);
	ck_assert_str_eq(it_js(p, "code"), "unavailable");
	json_decref(p);
	ck_assert_str_eq(xheader(&x, "Retry-After"), "5");
	xfree(&x);
	ck_assert_int_eq((long)metric(&s, "dp_exports_total{outcome=\"refused\"}"), 1);
	/* The list is not bound by exports. */
	struct res r;
	dget(&s, "/v1/events?limit=1", &r);
	EXPECT(&r, 200);
	res_free(&r);
	/* One ends (its client hangs up): the next is admitted. */
	close(a);
	wait_metric(&s, "dp_exports_running", 1);
	struct xres y = { 0 };
	xget(&s, "/v1/events/export?format=csv&actor=u-1", NULL, &y);
	ck_assert_msg(y.status == 200 && y.rc == CURLE_OK, "%ld %d", y.status, y.rc);
	json_t *recs = csv_records(y.body.p);
	ck_assert_int_eq(json_array_size(recs), 2001);
	json_decref(recs);
	xfree(&y);
	close(b);
	wait_metric(&s, "dp_exports_running", 0);
	it_stack_stop(&s);
}
END_TEST

START_TEST(timeout_bounds_stalls)
{
	/* DP_RESPONSE_TIMEOUT=1s: an export that keeps moving runs longer than
	 * that, whole; one whose client stops reading is reset after it. */
	struct it_stack s;
	const char *const env[] = { "DP_RESPONSE_TIMEOUT=1s", NULL };
	it_stack_start(&s, "us", NULL, env);
	bulk_insert(&s, 20000, 1000);
	struct xres x = { .pause_every = 1 << 20, .pause_ms = 120, .rcvbuf = 65536 };
	long t0 = it_now_ms();
	xget(&s, "/v1/events/export?format=ndjson", NULL, &x);
	long took = it_now_ms() - t0;
	fprintf(stderr, "  slow reader: %zu bytes in %ld ms, curl %d\n", x.body.len, took, x.rc);
	ck_assert_msg(x.rc == CURLE_OK && x.status == 200, "curl %d status %ld after %ld ms", x.rc, x.status, took);
	ck_assert_int_gt(took, 1500);
	long n;
	free(joined_ids(x.body.p, &n));
	ck_assert_int_eq(n, 20000);
	xfree(&x);

	int fd = it_raw_connect(s.dp_port);
	int small = 4096;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
	ck_assert_int_eq(raw_export(&s, fd), 200);
	wait_metric(&s, "dp_exports_total{outcome=\"aborted\"}", 1);
	wait_metric(&s, "dp_exports_running", 0);
	close(fd);
	it_stack_stop(&s);
}
END_TEST

Suite *export_suite(void)
{
	Suite *s = suite_create("export");
	const TTest *const tests[] = {
		same_as_list, format_and_gate, large_export, client_goes_away, db_stops_mid_stream, concurrency_bound,
		timeout_bounds_stalls,
	};
	it_add_tests(s, tests, sizeof tests / sizeof tests[0], NULL, NULL, 240);
	return s;
}
