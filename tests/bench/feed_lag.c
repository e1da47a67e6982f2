/* Feed lag: how long after an event is committed a follower waiting on
 * GET /v1/events/feed?wait= receives it.
 *
 *   feed-bench FOLLOW_URL WRITE_URL API_KEY SECONDS BACKGROUND_WRITERS
 *
 * One follower long-polls the tenant's feed at FOLLOW_URL without pause;
 * one probe writer POSTs to WRITE_URL (the same instance, or another of
 * the region) one event every 20 ms and notes when it sent it and when
 * the 201 came back (the commit happened in between); BACKGROUND_WRITERS
 * more threads POST 10-event batches as fast as they can, so that commits
 * interleave. The commit happens between the POST's send and its 201, so
 * the lag is given from both ends: seen - 201 received (a lower bound; a
 * follower faster than the writer's own answer counts 0) and seen - sent
 * (an upper bound, the insert itself included). The probe's own POST
 * latency is the baseline of the same run. Prints, in milliseconds,
 * "low_p50 low_p99 high_p50 high_p99 post_p50 post_p99 samples". Probe
 * ids are "probe-<pid>-<n>". */
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROBES 100000

static const char *base, *write_base, *auth_hdr;
static atomic_int stop, stop_follower;
static double sent_at[MAX_PROBES], acked_at[MAX_PROBES], seen_at[MAX_PROBES];
static atomic_int nprobes;
/* Ids of this run: a run never replays another's. */
static char probe_tag[64];
static int run_id;

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

struct body {
	char *p;
	size_t len;
};

static size_t on_body(char *p, size_t sz, size_t n, void *u)
{
	struct body *b = u;
	char *q = realloc(b->p, b->len + sz * n + 1);
	if (!q)
		return 0;
	memcpy(q + b->len, p, sz * n);
	b->p = q;
	b->len += sz * n;
	q[b->len] = '\0';
	return sz * n;
}

/* One request on `c` (reused: keep-alive); the status, the body in `b`. */
static long request(CURL *c, const char *url, const char *post, struct body *b)
{
	struct curl_slist *h = curl_slist_append(NULL, auth_hdr);
	h = curl_slist_append(h, "Content-Type: application/json");
	long st = 0;
	b->len = 0;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	if (post)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 90000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
	curl_slist_free_all(h);
	return st;
}

static void *follower(void *arg)
{
	(void)arg;
	CURL *c = curl_easy_init();
	struct body b = { 0 };
	char url[1024], cur[64] = "";
	/* Start at the end of what is stored now. */
	for (;;) {
		snprintf(url, sizeof url, "%s/v1/events/feed?limit=1000%s%s", base, cur[0] ? "&after=" : "", cur);
		if (request(c, url, NULL, &b) != 200) {
			fprintf(stderr, "feed-bench: the feed answered %.300s\n", b.p ? b.p : "nothing");
			exit(1);
		}
		char *n = strstr(b.p, "\"next_cursor\":\"");
		snprintf(cur, sizeof cur, "%.*s", 28, n + 15);
		if (strstr(b.p, "\"has_more\":false"))
			break;
	}
	while (!atomic_load(&stop_follower)) {
		snprintf(url, sizeof url, "%s/v1/events/feed?limit=1000&wait=5&after=%s", base, cur);
		if (request(c, url, NULL, &b) != 200) {
			fprintf(stderr, "feed-bench: the feed answered %.300s\n", b.p ? b.p : "nothing");
			exit(1);
		}
		double t = now_ms();
		/* Probe ids are "probe-<n>"; the background's are not. */
		size_t tl = strlen(probe_tag);
		for (char *p = b.p; (p = strstr(p, probe_tag)); p += tl) {
			int i = atoi(p + tl);
			if (i >= 0 && i < MAX_PROBES && seen_at[i] == 0)
				seen_at[i] = t;
		}
		char *n = strstr(b.p, "\"next_cursor\":\"");
		snprintf(cur, sizeof cur, "%.*s", 28, n + 15);
	}
	free(b.p);
	curl_easy_cleanup(c);
	return NULL;
}

static void *probe(void *arg)
{
	(void)arg;
	CURL *c = curl_easy_init();
	struct body b = { 0 };
	char url[1024], ev[256];
	snprintf(url, sizeof url, "%s/v1/events", write_base);
	for (int i = 0; i < MAX_PROBES && !atomic_load(&stop); i++) {
		snprintf(ev, sizeof ev, "{\"id\":\"probe-%d-%d\",\"action\":\"bench.probe\",\"actor\":{\"id\":\"p\",\"type\":\"user\"}}",
		         run_id, i);
		sent_at[i] = now_ms();
		if (request(c, url, ev, &b) != 201) {
			fprintf(stderr, "feed-bench: POST answered %.300s\n", b.p ? b.p : "nothing");
			exit(1);
		}
		acked_at[i] = now_ms();
		atomic_store(&nprobes, i + 1);
		usleep(20 * 1000);
	}
	free(b.p);
	curl_easy_cleanup(c);
	return NULL;
}

static void *background(void *arg)
{
	long w = (long)arg;
	CURL *c = curl_easy_init();
	struct body b = { 0 };
	char url[1024], batch[4096];
	snprintf(url, sizeof url, "%s/v1/events", write_base);
	for (long i = 0; !atomic_load(&stop); i++) {
		size_t k = (size_t)snprintf(batch, sizeof batch, "{\"events\":[");
		for (int j = 0; j < 10; j++)
			k += (size_t)snprintf(batch + k, sizeof batch - k,
			                      "%s{\"id\":\"bg-%d-%ld-%ld-%d\",\"action\":\"bench.bg\",\"actor\":{\"id\":\"b\",\"type\":\"user\"}}",
			                      j ? "," : "", run_id, w, i, j);
		snprintf(batch + k, sizeof batch - k, "]}");
		if (request(c, url, batch, &b) != 201) {
			fprintf(stderr, "feed-bench: POST answered %.300s\n", b.p ? b.p : "nothing");
			exit(1);
		}
	}
	free(b.p);
	curl_easy_cleanup(c);
	return NULL;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
	return n ? v[(int)(p * (n - 1) + 0.5)] : 0;
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: feed-bench FOLLOW_URL WRITE_URL API_KEY SECONDS BACKGROUND_WRITERS\n");
		return 2;
	}
	static char h[600];
	base = argv[1];
	write_base = argv[2];
	argv += 1;
	snprintf(h, sizeof h, "Authorization: Bearer %s", argv[2]);
	auth_hdr = h;
	run_id = (int)getpid();
	snprintf(probe_tag, sizeof probe_tag, "\"id\":\"probe-%d-", run_id);
	int secs = atoi(argv[3]), nbg = atoi(argv[4]);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	pthread_t f, p, bg[64];
	if (nbg > 64)
		nbg = 64;
	pthread_create(&f, NULL, follower, NULL);
	usleep(300 * 1000); /* the follower has caught up and waits */
	for (long i = 0; i < nbg; i++)
		pthread_create(&bg[i], NULL, background, (void *)i);
	pthread_create(&p, NULL, probe, NULL);
	sleep((unsigned)secs);
	atomic_store(&stop, 1);
	pthread_join(p, NULL);
	for (int i = 0; i < nbg; i++)
		pthread_join(bg[i], NULL);
	/* The last probes reach the follower; it stops within its wait of 5 s. */
	sleep(1);
	atomic_store(&stop_follower, 1);
	pthread_join(f, NULL);
	int n = atomic_load(&nprobes), got = 0, missing = 0;
	static double lag[MAX_PROBES], hi[MAX_PROBES], post[MAX_PROBES];
	for (int i = 0; i < n; i++) {
		post[i] = acked_at[i] - sent_at[i];
		if (seen_at[i] == 0) {
			missing++;
			continue;
		}
		double l = seen_at[i] - acked_at[i];
		hi[got] = seen_at[i] - sent_at[i];
		lag[got++] = l < 0 ? 0 : l;
	}
	qsort(lag, (size_t)got, sizeof lag[0], cmp);
	qsort(hi, (size_t)got, sizeof hi[0], cmp);
	qsort(post, (size_t)n, sizeof post[0], cmp);
	if (missing > 2) /* the last ones may land after the follower stopped */
		fprintf(stderr, "feed-bench: %d of %d probes never seen by the follower\n", missing, n);
	printf("%.2f %.2f %.2f %.2f %.2f %.2f %d\n", pct(lag, got, 0.5), pct(lag, got, 0.99), pct(hi, got, 0.5),
	       pct(hi, got, 0.99), pct(post, n, 0.5), pct(post, n, 0.99), got);
	curl_global_cleanup();
	return missing > 2;
}
