/* Prometheus metrics: per-route request counters, latency histograms and
 * process figures read from /proc. */
#include "metrics.h"

#include <dirent.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Every status of the HTTP range (100-599) gets its own counter, so that a
 * scraper sees the real code: the label's values are bounded by the range. */
#define STATUS_MIN 100u
#define STATUS_MAX 599u
#define NSTATUS (STATUS_MAX - STATUS_MIN + 1)

/* Upper bounds of the latency buckets, in microseconds. */
static const uint64_t bucket_us[] = {
	250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000, 5000000, 10000000,
};
#define NBUCKETS (sizeof bucket_us / sizeof bucket_us[0])

struct route_stats {
	_Atomic uint64_t by_status[NSTATUS];
	_Atomic uint64_t buckets[NBUCKETS + 1]; /* last one is +Inf */
	_Atomic uint64_t sum_us;
};

struct metrics {
	const struct http_route *routes;
	size_t nroutes;
	time_t started;
	struct route_stats *stats; /* nroutes + 1; the last is "unmatched" */
};

struct metrics *metrics_new(const struct http_route *routes, size_t nroutes)
{
	struct metrics *m = calloc(1, sizeof *m);
	if (!m)
		return NULL;
	m->stats = calloc(nroutes + 1, sizeof *m->stats);
	if (!m->stats) {
		free(m);
		return NULL;
	}
	m->routes = routes;
	m->nroutes = nroutes;
	m->started = time(NULL);
	return m;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	free(m->stats);
	free(m);
}

/* A status outside the range is no status a reply can carry: a bug, which
 * counts as the server error it is rather than vanishing. */
static size_t status_slot(unsigned status)
{
	if (status < STATUS_MIN || status > STATUS_MAX)
		status = 500;
	return status - STATUS_MIN;
}

void metrics_observe(struct metrics *m, int route, unsigned status, uint64_t micros)
{
	struct route_stats *s = &m->stats[route < 0 ? m->nroutes : (size_t)route];
	size_t b = 0;

	atomic_fetch_add_explicit(&s->by_status[status_slot(status)], 1, memory_order_relaxed);
	while (b < NBUCKETS && micros > bucket_us[b])
		b++;
	atomic_fetch_add_explicit(&s->buckets[b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&s->sum_us, micros, memory_order_relaxed);
}

static void route_labels(struct metrics *m, size_t i, char *buf, size_t len)
{
	if (i == m->nroutes)
		snprintf(buf, len, "method=\"other\",route=\"unmatched\"");
	else
		snprintf(buf, len, "method=\"%s\",route=\"%s\"", m->routes[i].method,
		         m->routes[i].pattern);
}

static void render_process(const char *service, time_t started, FILE *out)
{
	long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	unsigned long utime = 0, stime = 0;
	long threads = 0, rss = 0;
	char buf[1024];
	FILE *f = fopen("/proc/self/stat", "r");

	if (f) {
		size_t n = fread(buf, 1, sizeof buf - 1, f);
		buf[n] = '\0';
		fclose(f);
		/* Fields after the command name, which may hold spaces: skip past ')'. */
		char *p = strrchr(buf, ')');
		if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu "
		                       "%*d %*d %*d %*d %ld %*d %*u %*u %ld",
		                &utime, &stime, &threads, &rss) != 4)
			utime = stime = 0, threads = rss = 0;
	}
	long fds = 0;
	DIR *d = opendir("/proc/self/fd");
	if (d) {
		for (struct dirent *e; (e = readdir(d)) != NULL;)
			if (e->d_name[0] != '.')
				fds++;
		closedir(d);
		fds--; /* the directory stream's own descriptor */
	}
	fprintf(out,
	        "# HELP process_cpu_seconds_total User and system CPU time spent.\n"
	        "# TYPE process_cpu_seconds_total counter\n"
	        "process_cpu_seconds_total{service=\"%s\"} %.2f\n"
	        "# HELP process_resident_memory_bytes Resident memory size.\n"
	        "# TYPE process_resident_memory_bytes gauge\n"
	        "process_resident_memory_bytes{service=\"%s\"} %ld\n"
	        "# HELP process_open_fds Open file descriptors.\n"
	        "# TYPE process_open_fds gauge\n"
	        "process_open_fds{service=\"%s\"} %ld\n"
	        "# HELP process_threads Threads of the process.\n"
	        "# TYPE process_threads gauge\n"
	        "process_threads{service=\"%s\"} %ld\n"
	        "# HELP process_start_time_seconds Start time since the Unix epoch.\n"
	        "# TYPE process_start_time_seconds gauge\n"
	        "process_start_time_seconds{service=\"%s\"} %lld\n",
	        service, ticks > 0 ? (double)(utime + stime) / (double)ticks : 0.0, service,
	        rss * page, service, fds, service, threads, service, (long long)started);
}

void metrics_render(struct metrics *m, const char *service, FILE *out)
{
	char labels[256];

	fprintf(out, "# HELP http_requests_total Requests answered, by route and status.\n"
	             "# TYPE http_requests_total counter\n");
	for (size_t i = 0; i <= m->nroutes; i++) {
		route_labels(m, i, labels, sizeof labels);
		for (size_t s = 0; s < NSTATUS; s++) {
			uint64_t v = atomic_load_explicit(&m->stats[i].by_status[s], memory_order_relaxed);
			if (!v)
				continue;
			fprintf(out, "http_requests_total{%s,status=\"%u\"} %llu\n", labels,
			        (unsigned)(STATUS_MIN + s), (unsigned long long)v);
		}
	}
	fprintf(out, "# HELP http_request_duration_seconds Time from first byte to response.\n"
	             "# TYPE http_request_duration_seconds histogram\n");
	for (size_t i = 0; i <= m->nroutes; i++) {
		uint64_t cum = 0;
		route_labels(m, i, labels, sizeof labels);
		for (size_t b = 0; b <= NBUCKETS; b++) {
			cum += atomic_load_explicit(&m->stats[i].buckets[b], memory_order_relaxed);
			if (b < NBUCKETS)
				fprintf(out, "http_request_duration_seconds_bucket{%s,le=\"%g\"} %llu\n",
				        labels, (double)bucket_us[b] / 1e6, (unsigned long long)cum);
			else
				fprintf(out, "http_request_duration_seconds_bucket{%s,le=\"+Inf\"} %llu\n",
				        labels, (unsigned long long)cum);
		}
		fprintf(out, "http_request_duration_seconds_sum{%s} %.6f\n", labels,
		        (double)atomic_load_explicit(&m->stats[i].sum_us, memory_order_relaxed) / 1e6);
		fprintf(out, "http_request_duration_seconds_count{%s} %llu\n", labels,
		        (unsigned long long)cum);
	}
	render_process(service, m->started, out);
}
