/* faults-load: fixed-rate HTTP load for tests/faults that records the
 * outcome of every request it sends, so that a checker can count what was
 * acknowledged against what was stored and billed.
 *
 *   faults-load -u URL -k KEY -m post|tenant|query -r RATE -o FILE
 *               [-d SECONDS] [-p PREFIX] [-b EVENTS] [-c INFLIGHT] [-t TIMEOUT_MS]
 *
 * Sends RATE requests a second to the data plane at URL with the API key
 * KEY, from when it starts until SECONDS have passed (default: until
 * SIGTERM or SIGINT), waits for the requests in flight, and exits 0.
 *
 *   post    POST /v1/events with EVENTS events (default 1): one event
 *           alone, more as {"events": [...]}. The events of request SEQ
 *           have the ids PREFIX-SEQ-0 .. PREFIX-SEQ-(EVENTS-1).
 *   tenant  GET /v1/tenant
 *   query   GET /v1/events?limit=10
 *
 * Every request is one line of FILE, written when it ends:
 *
 *   SEQ MODE STATUS CURLCODE EVENTS START_MS LATENCY_MS RETRY_AFTER
 *
 * STATUS is the HTTP status, 0 when no answer came (CURLCODE, libcurl's
 * error number, says why); START_MS is when it was sent, in Unix
 * milliseconds; RETRY_AFTER the answer's Retry-After header, "-" when it
 * had none (a client told to come back must be told when). At most INFLIGHT (default 32) requests are in flight; a
 * request that could not be sent within a second of its time (all slots
 * taken by requests that hang) is skipped and counted as skipped, so that
 * the rate never bursts to catch up. Each request times out after
 * TIMEOUT_MS (default 5000). A summary goes to stderr at the end. */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

enum mode { MODE_POST, MODE_TENANT, MODE_QUERY };
static const char *const mode_names[] = { "post", "tenant", "query" };

struct xfer {
	CURL *easy;
	struct curl_slist *headers;
	char *body;
	uint64_t seq;
	int64_t start_ms;
	char retry_after[16]; /* the answer's Retry-After, "" when none */
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

static size_t discard(char *data, size_t size, size_t n, void *userp)
{
	(void)data, (void)userp;
	return size * n;
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
	fprintf(stderr, "usage: faults-load -u URL -k KEY -m post|tenant|query -r RATE -o FILE\n"
	                "                   [-d SECONDS] [-p PREFIX] [-b EVENTS] [-c INFLIGHT] [-t TIMEOUT_MS]\n");
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

/* The body of request `seq`: `events` events with ids PREFIX-SEQ-J. */
static char *post_body(const char *prefix, uint64_t seq, long events)
{
	size_t cap = 256 + (size_t)events * (220 + strlen(prefix));
	char *b = malloc(cap), *p = b;
	if (!b)
		return NULL;
	if (events > 1)
		p += sprintf(p, "{\"events\":[");
	for (long j = 0; j < events; j++)
		p += sprintf(p,
		             "%s{\"id\":\"%s-%" PRIu64 "-%ld\",\"action\":\"faults.load\","
		             "\"actor\":{\"id\":\"load-%" PRIu64 "\",\"type\":\"test\"},"
		             "\"targets\":[{\"id\":\"doc-%ld\",\"type\":\"document\"}]}",
		             j ? "," : "", prefix, seq, j, seq % 97, j);
	if (events > 1)
		p += sprintf(p, "]}");
	return b;
}

int main(int argc, char **argv)
{
	const char *url = NULL, *key = NULL, *out_path = NULL, *prefix = "ev";
	long rate = 0, seconds = 0, events = 1, inflight_max = 32, timeout_ms = 5000;
	enum mode mode = MODE_POST;
	int have_mode = 0, opt;

	while ((opt = getopt(argc, argv, "u:k:m:r:o:d:p:b:c:t:")) != -1) {
		switch (opt) {
		case 'u': url = optarg; break;
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
			else usage();
			break;
		default: usage();
		}
	}
	if (!url || !key || !out_path || !rate || !have_mode || optind != argc)
		usage();

	FILE *out = fopen(out_path, "w");
	if (!out) {
		fprintf(stderr, "faults-load: %s: %s\n", out_path, strerror(errno));
		return 1;
	}
	setvbuf(out, NULL, _IOLBF, 0); /* a line per request, as it ends */

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
	snprintf(target, sizeof target, "%s%s", url,
	         mode == MODE_POST ? "/v1/events" : mode == MODE_TENANT ? "/v1/tenant" : "/v1/events?limit=10");
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
				char rid[256];
				snprintf(rid, sizeof rid, "X-Request-Id: %s-%" PRIu64, prefix, x->seq);
				x->headers = curl_slist_append(NULL, auth);
				x->headers = curl_slist_append(x->headers, rid);
				curl_easy_setopt(x->easy, CURLOPT_URL, target);
				if (mode == MODE_POST) {
					x->body = post_body(prefix, x->seq, events);
					x->headers = curl_slist_append(x->headers, "Content-Type: application/json");
					x->headers = curl_slist_append(x->headers, "Expect:");
					curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, x->body);
				}
				curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->headers);
				curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, discard);
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
			fprintf(out, "%" PRIu64 " %s %ld %d %ld %" PRId64 " %" PRId64 " %s\n", x->seq, mode_names[mode],
			        status, (int)rc, mode == MODE_POST ? events : 0L, x->start_ms,
			        (int64_t)(total_us / 1000), x->retry_after[0] ? x->retry_after : "-");
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
	free(slots);
	curl_multi_cleanup(multi);
	curl_global_cleanup();
	return 0;
}
