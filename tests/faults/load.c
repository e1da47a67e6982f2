/* faults-load: fixed-rate HTTP load for tests/faults that records the
 * outcome of every request it sends, so that a checker can count what was
 * acknowledged against what was stored and billed.
 *
 *   faults-load -u URL -k KEY -m post|tenant|query|feed -r RATE -o FILE
 *               [-d SECONDS] [-p PREFIX] [-b EVENTS] [-c INFLIGHT] [-t TIMEOUT_MS]
 *               [-i] [-n] [-a IDS_FILE] [-s CURSOR] [-l LIMIT] [-f]
 *
 * An https URL is checked against the CA file CURL_CA_BUNDLE names, as
 * curl(1) does (the local stack's own CA), else the system's.
 *
 * Sends RATE requests a second to the data plane at URL with the API key
 * KEY, from when it starts until SECONDS have passed (default: until
 * SIGTERM or SIGINT), waits for the requests in flight, and exits 0.
 *
 *   post    POST /v1/events with EVENTS events (default 1): one event
 *           alone, more as {"events": [...]}. The events of request SEQ
 *           have the ids PREFIX-SEQ-0 .. PREFIX-SEQ-(EVENTS-1).
 *           With -i each request carries "Idempotency-Key: PREFIX-SEQ";
 *           with -n its events carry no id (the data plane makes them).
 *   tenant  GET /v1/tenant
 *   query   GET /v1/events?limit=10
 *   feed    GET /v1/events/feed?after=CURSOR&limit=LIMIT (default 100),
 *           one request at a time, each after the next_cursor of the last
 *           page answered (the first after -s CURSOR, or from the start).
 *
 * Every request is one line of FILE, written when it ends:
 *
 *   SEQ MODE STATUS CURLCODE EVENTS START_MS LATENCY_MS RETRY_AFTER CODE
 *
 * STATUS is the HTTP status, 0 when no answer came (CURLCODE, libcurl's
 * error number, says why); START_MS is when it was sent, in Unix
 * milliseconds; RETRY_AFTER the answer's Retry-After header, "-" when it
 * had none (a client told to come back must be told when); CODE the
 * problem document's `code` of an answer that is not 2xx, "-" otherwise.
 * With -a, IDS_FILE gets a line "SEQ ID" for every event id an answer
 * acknowledged (post: each event of a 201) or handed out (feed: each item
 * of a page), and the feed's last next_cursor as "cursor CURSOR" at the
 * end. With -f, a 421 answer's `endpoint` becomes the URL of the requests
 * sent after it (a client following its tenant to its new region); the
 * 421'd request itself is recorded, not resent. At most INFLIGHT (default 32) requests are in flight; a
 * request that could not be sent within a second of its time (all slots
 * taken by requests that hang) is skipped and counted as skipped, so that
 * the rate never bursts to catch up. Each request times out after
 * TIMEOUT_MS (default 5000). A summary goes to stderr at the end. */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

enum mode { MODE_POST, MODE_TENANT, MODE_QUERY, MODE_FEED };
static const char *const mode_names[] = { "post", "tenant", "query", "feed" };

/* Answers are kept up to this size (a feed page of 1000 events fits). */
#define ANSWER_MAX (16 * 1024 * 1024)

struct xfer {
	CURL *easy;
	struct curl_slist *headers;
	char *body;
	uint64_t seq;
	int64_t start_ms;
	char retry_after[16]; /* the answer's Retry-After, "" when none */
	char *answer;         /* the answer's body, NUL-terminated */
	size_t answer_len, answer_cap;
};

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Keeps the answer's body (up to ANSWER_MAX; the rest is dropped, and
 * such an answer does not parse). */
static size_t keep(char *data, size_t size, size_t n, void *userp)
{
	struct xfer *x = userp;
	size_t len = size * n;
	if (x->answer_len + len + 1 > x->answer_cap && x->answer_len + len < ANSWER_MAX) {
		size_t cap = x->answer_cap ? x->answer_cap : 4096;
		while (cap < x->answer_len + len + 1)
			cap *= 2;
		char *p = realloc(x->answer, cap);
		if (!p)
			return len;
		x->answer = p;
		x->answer_cap = cap;
	}
	if (x->answer_len + len + 1 <= x->answer_cap) {
		memcpy(x->answer + x->answer_len, data, len);
		x->answer_len += len;
		x->answer[x->answer_len] = '\0';
	}
	return len;
}

/* Keeps the Retry-After header of the answer (of the last answer, when
 * libcurl follows none: it does not here). */
static size_t on_header(char *data, size_t size, size_t n, void *userp)
{
	struct xfer *x = userp;
	size_t len = size * n;
	static const char name[] = "retry-after:";
	if (len > sizeof name - 1 && !strncasecmp(data, name, sizeof name - 1)) {
		size_t i = sizeof name - 1, o = 0;
		while (i < len && (data[i] == ' ' || data[i] == '\t'))
			i++;
		while (i < len && o < sizeof x->retry_after - 1 && data[i] > ' ' && data[i] < 127)
			x->retry_after[o++] = data[i++];
		x->retry_after[o] = '\0';
	}
	return len;
}

static void usage(void)
{
	fprintf(stderr, "usage: faults-load -u URL -k KEY -m post|tenant|query|feed -r RATE -o FILE\n"
	                "                   [-d SECONDS] [-p PREFIX] [-b EVENTS] [-c INFLIGHT] [-t TIMEOUT_MS]\n"
	                "                   [-i] [-n] [-a IDS_FILE] [-s CURSOR] [-l LIMIT] [-f]\n");
	exit(2);
}

static long number(const char *s, long lo, long hi)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi) {
		fprintf(stderr, "faults-load: '%s' is not a number from %ld to %ld\n", s, lo, hi);
		exit(2);
	}
	return v;
}

/* The body of request `seq`: `events` events with ids PREFIX-SEQ-J, or
 * without ids (`with_ids` 0). */
static char *post_body(const char *prefix, uint64_t seq, long events, int with_ids)
{
	size_t cap = 256 + (size_t)events * (220 + strlen(prefix));
	char *b = malloc(cap), *p = b;
	if (!b)
		return NULL;
	if (events > 1)
		p += sprintf(p, "{\"events\":[");
	for (long j = 0; j < events; j++) {
		p += sprintf(p, "%s{", j ? "," : "");
		if (with_ids)
			p += sprintf(p, "\"id\":\"%s-%" PRIu64 "-%ld\",", prefix, seq, j);
		p += sprintf(p,
		             "\"action\":\"faults.load\","
		             "\"actor\":{\"id\":\"load-%" PRIu64 "\",\"type\":\"test\"},"
		             "\"targets\":[{\"id\":\"doc-%ld\",\"type\":\"document\"}]}",
		             seq % 97, j);
	}
	if (events > 1)
		p += sprintf(p, "]}");
	return b;
}

/* What an answer says, read from its body: the problem's code (and, on a
 * 421, its endpoint to follow), the ids of a 201's events or of a feed
 * page's items, and a feed page's next_cursor. */
struct outcome {
	char code[64];
	char endpoint[512];
	char cursor[256];
};

static void write_id(FILE *ids, uint64_t seq, const json_t *ev)
{
	const char *id = json_string_value(json_object_get(ev, "id"));
	if (ids && id)
		fprintf(ids, "%" PRIu64 " %s\n", seq, id);
}

static void read_answer(const struct xfer *x, enum mode mode, long status, FILE *ids, struct outcome *o)
{
	memset(o, 0, sizeof *o);
	if (!x->answer)
		return;
	json_t *doc = json_loadb(x->answer, x->answer_len, 0, NULL);
	if (!doc)
		return;
	if (status < 200 || status > 299) {
		const char *code = json_string_value(json_object_get(doc, "code"));
		const char *ep = json_string_value(json_object_get(doc, "endpoint"));
		snprintf(o->code, sizeof o->code, "%s", code ? code : "");
		/* A code is one word in the record. */
		for (char *c = o->code; *c; c++)
			if (*c <= ' ' || *c > '~')
				*c = '?';
		if (ep && strlen(ep) < sizeof o->endpoint)
			snprintf(o->endpoint, sizeof o->endpoint, "%s", ep);
	} else if (mode == MODE_POST && status == 201) {
		const json_t *list = json_object_get(doc, "events");
		if (json_is_array(list)) {
			size_t i;
			const json_t *ev;
			json_array_foreach(list, i, ev) write_id(ids, x->seq, ev);
		} else {
			write_id(ids, x->seq, doc);
		}
	} else if (mode == MODE_FEED && status == 200) {
		const json_t *items = json_object_get(doc, "items");
		const char *next = json_string_value(json_object_get(doc, "next_cursor"));
		size_t i;
		const json_t *ev;
		json_array_foreach(items, i, ev) write_id(ids, x->seq, ev);
		if (next && strlen(next) < sizeof o->cursor)
			snprintf(o->cursor, sizeof o->cursor, "%s", next);
	}
	json_decref(doc);
}

int main(int argc, char **argv)
{
	const char *url = NULL, *key = NULL, *out_path = NULL, *prefix = "ev", *ids_path = NULL;
	long rate = 0, seconds = 0, events = 1, inflight_max = 32, timeout_ms = 5000, feed_limit = 100;
	enum mode mode = MODE_POST;
	int have_mode = 0, opt, idem = 0, with_ids = 1, follow = 0;
	char base[512] = "", cursor[256] = "";
	const char *ca_file = getenv("CURL_CA_BUNDLE");

	while ((opt = getopt(argc, argv, "u:k:m:r:o:d:p:b:c:t:ina:s:l:f")) != -1) {
		switch (opt) {
		case 'u': url = optarg; break;
		case 'i': idem = 1; break;
		case 'n': with_ids = 0; break;
		case 'a': ids_path = optarg; break;
		case 's': snprintf(cursor, sizeof cursor, "%s", optarg); break;
		case 'l': feed_limit = number(optarg, 1, 1000); break;
		case 'f': follow = 1; break;
		case 'k': key = optarg; break;
		case 'o': out_path = optarg; break;
		case 'p': prefix = optarg; break;
		case 'r': rate = number(optarg, 1, 100000); break;
		case 'd': seconds = number(optarg, 0, 86400); break;
		case 'b': events = number(optarg, 1, 1000); break;
		case 'c': inflight_max = number(optarg, 1, 4096); break;
		case 't': timeout_ms = number(optarg, 100, 600000); break;
		case 'm':
			have_mode = 1;
			if (!strcmp(optarg, "post")) mode = MODE_POST;
			else if (!strcmp(optarg, "tenant")) mode = MODE_TENANT;
			else if (!strcmp(optarg, "query")) mode = MODE_QUERY;
			else if (!strcmp(optarg, "feed")) mode = MODE_FEED;
			else usage();
			break;
		default: usage();
		}
	}
	if (!url || !key || !out_path || !rate || !have_mode || optind != argc || strlen(url) >= sizeof base)
		usage();
	snprintf(base, sizeof base, "%s", url);
	if (mode == MODE_FEED)
		inflight_max = 1; /* each page starts where the last one ended */

	FILE *out = fopen(out_path, "w");
	if (!out) {
		fprintf(stderr, "faults-load: %s: %s\n", out_path, strerror(errno));
		return 1;
	}
	setvbuf(out, NULL, _IOLBF, 0); /* a line per request, as it ends */
	FILE *ids = NULL;
	if (ids_path) {
		ids = fopen(ids_path, "w");
		if (!ids) {
			fprintf(stderr, "faults-load: %s: %s\n", ids_path, strerror(errno));
			return 1;
		}
		setvbuf(ids, NULL, _IOLBF, 0);
	}

	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
		return 1;
	CURLM *multi = curl_multi_init();
	curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, inflight_max);
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, inflight_max);

	char target[2048], auth[1024];
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);

	struct xfer *slots = calloc((size_t)inflight_max, sizeof *slots);
	if (!slots)
		return 1;
	long inflight = 0;
	uint64_t seq = 0, skipped = 0, answered = 0, no_answer = 0;
	uint64_t by_status[600] = { 0 };
	const int64_t period_ns = 1000000000 / rate;
	const int64_t t0 = mono_ns();
	const int64_t end = seconds ? t0 + (int64_t)seconds * 1000000000 : INT64_MAX;
	uint64_t slot_no = 0; /* requests due so far, sent or skipped */

	for (;;) {
		int64_t now = mono_ns();
		if (stopping || now >= end) {
			if (inflight == 0)
				break;
		} else {
			/* Send every request that is due, as slots allow. */
			while (t0 + (int64_t)slot_no * period_ns <= now) {
				if (inflight == inflight_max) {
					if (now - (t0 + (int64_t)slot_no * period_ns) > 1000000000) {
						skipped++;
						slot_no++;
						continue;
					}
					break;
				}
				struct xfer *x = NULL;
				for (long i = 0; i < inflight_max; i++)
					if (!slots[i].easy) {
						x = &slots[i];
						break;
					}
				x->seq = ++seq;
				slot_no++;
				x->easy = curl_easy_init();
				if (ca_file) /* like curl(1): the CA https answers are checked against */
					curl_easy_setopt(x->easy, CURLOPT_CAINFO, ca_file);
				char rid[256];
				snprintf(rid, sizeof rid, "X-Request-Id: %s-%" PRIu64, prefix, x->seq);
				x->headers = curl_slist_append(NULL, auth);
				x->headers = curl_slist_append(x->headers, rid);
				if (mode == MODE_FEED)
					snprintf(target, sizeof target, "%s/v1/events/feed?limit=%ld%s%s", base, feed_limit,
					         cursor[0] ? "&after=" : "", cursor);
				else
					snprintf(target, sizeof target, "%s%s", base,
					         mode == MODE_POST     ? "/v1/events"
					         : mode == MODE_TENANT ? "/v1/tenant"
					                               : "/v1/events?limit=10");
				curl_easy_setopt(x->easy, CURLOPT_URL, target);
				if (mode == MODE_POST) {
					x->body = post_body(prefix, x->seq, events, with_ids);
					if (idem) {
						char ik[300];
						snprintf(ik, sizeof ik, "Idempotency-Key: %s-%" PRIu64, prefix, x->seq);
						x->headers = curl_slist_append(x->headers, ik);
					}
					x->headers = curl_slist_append(x->headers, "Content-Type: application/json");
					x->headers = curl_slist_append(x->headers, "Expect:");
					curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, x->body);
				}
				curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->headers);
				curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, keep);
				curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
				curl_easy_setopt(x->easy, CURLOPT_HEADERFUNCTION, on_header);
				curl_easy_setopt(x->easy, CURLOPT_HEADERDATA, x);
				curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
				curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, timeout_ms);
				curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 2000 ? timeout_ms : 2000L);
				curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
				x->start_ms = wall_ms();
				curl_multi_add_handle(multi, x->easy);
				inflight++;
			}
		}

		int running;
		curl_multi_perform(multi, &running);
		CURLMsg *m;
		int left;
		while ((m = curl_multi_info_read(multi, &left)) != NULL) {
			if (m->msg != CURLMSG_DONE)
				continue;
			struct xfer *x;
			CURL *easy = m->easy_handle;
			CURLcode rc = m->data.result;
			long status = 0;
			curl_off_t total_us = 0;
			curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
			if (rc == CURLE_OK)
				curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
			curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME_T, &total_us);
			if (rc != CURLE_OK || status <= 0)
				status = 0;
			struct outcome o;
			read_answer(x, mode, status, ids, &o);
			if (o.cursor[0])
				snprintf(cursor, sizeof cursor, "%s", o.cursor);
			if (follow && status == 421 && o.endpoint[0])
				snprintf(base, sizeof base, "%s", o.endpoint);
			fprintf(out, "%" PRIu64 " %s %ld %d %ld %" PRId64 " %" PRId64 " %s %s\n", x->seq, mode_names[mode],
			        status, (int)rc, mode == MODE_POST ? events : 0L, x->start_ms,
			        (int64_t)(total_us / 1000), x->retry_after[0] ? x->retry_after : "-",
			        o.code[0] ? o.code : "-");
			if (status > 0 && status < 600) {
				by_status[status]++;
				answered++;
			} else {
				no_answer++;
			}
			curl_multi_remove_handle(multi, easy);
			curl_easy_cleanup(easy);
			curl_slist_free_all(x->headers);
			free(x->body);
			free(x->answer);
			memset(x, 0, sizeof *x);
			inflight--;
		}

		/* Until the next request is due, at most 20 ms: a signal is
		 * noticed at that pace. */
		now = mono_ns();
		int64_t wait_ms = (t0 + (int64_t)slot_no * period_ns - now + 999999) / 1000000;
		if (stopping || now >= end)
			wait_ms = 20;
		if (wait_ms > 20)
			wait_ms = 20;
		if (wait_ms > 0 || inflight)
			curl_multi_poll(multi, NULL, 0, wait_ms > 0 ? (int)wait_ms : 0, NULL);
	}

	fprintf(stderr, "faults-load %s %s: %" PRIu64 " sent, %" PRIu64 " answered", mode_names[mode], prefix,
	        seq, answered);
	for (int s = 100; s < 600; s++)
		if (by_status[s])
			fprintf(stderr, ", %d: %" PRIu64, s, by_status[s]);
	fprintf(stderr, ", no answer: %" PRIu64 ", skipped: %" PRIu64 "\n", no_answer, skipped);
	fclose(out);
	if (ids) {
		if (mode == MODE_FEED)
			fprintf(ids, "cursor %s\n", cursor[0] ? cursor : "-");
		fclose(ids);
	}
	free(slots);
	curl_multi_cleanup(multi);
	curl_global_cleanup();
	return 0;
}
