/* Login admission: password-check slots and per-source token buckets. */
#include "login_guard.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "secret.h"

#define SETS 1024
#define WAYS 4

struct bucket {
	unsigned char addr[16];   /* IPv4-mapped, or an IPv6 /64 with the rest zero */
	int used;
	double tokens;
	int64_t at_ms;            /* when `tokens` was last brought up to date */
};

struct login_guard {
	pthread_mutex_t lock;
	struct bucket b[SETS][WAYS];
	uint64_t seed;            /* keys the set hash, so no one can aim at a set */
	double per_ms, burst;
	long slots;
	atomic_long in_progress;
	atomic_ulong refused_busy, refused_rate, refused_backoff;
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct login_guard *login_guard_new(long concurrency, long per_min, long burst)
{
	struct login_guard *g = calloc(1, sizeof *g);
	if (!g)
		return NULL;
	if (secret_random((unsigned char *)&g->seed, sizeof g->seed) != 0) {
		free(g);
		return NULL;
	}
	pthread_mutex_init(&g->lock, NULL);
	g->slots = concurrency;
	g->per_ms = (double)per_min / 60000.0;
	g->burst = (double)burst;
	return g;
}

void login_guard_free(struct login_guard *g)
{
	if (!g)
		return;
	pthread_mutex_destroy(&g->lock);
	free(g);
}

/* The 16-byte source of `peer`; -1 when it has none. */
static int source_addr(const struct sockaddr *peer, unsigned char out[16])
{
	static const unsigned char v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	memset(out, 0, 16);
	if (peer && peer->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)peer;
		memcpy(out, v4mapped, 12);
		memcpy(out + 12, &in->sin_addr, 4);
		return 0;
	}
	if (peer && peer->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)peer;
		if (!memcmp(in6->sin6_addr.s6_addr, v4mapped, 12))
			memcpy(out, in6->sin6_addr.s6_addr, 16);
		else
			memcpy(out, in6->sin6_addr.s6_addr, 8);
		return 0;
	}
	return -1;
}

void login_source_key(const struct sockaddr *peer, char out[LOGIN_SOURCE_MAX])
{
	unsigned char a[16];
	static const unsigned char v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	char text[INET6_ADDRSTRLEN];

	if (source_addr(peer, a) != 0) {
		snprintf(out, LOGIN_SOURCE_MAX, "unknown");
		return;
	}
	if (!memcmp(a, v4mapped, 12)) {
		inet_ntop(AF_INET, a + 12, text, sizeof text);
		snprintf(out, LOGIN_SOURCE_MAX, "%s", text);
	} else {
		inet_ntop(AF_INET6, a, text, sizeof text);
		snprintf(out, LOGIN_SOURCE_MAX, "%s/64", text);
	}
}

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15u;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
	return x ^ (x >> 31);
}

static void refill(const struct login_guard *g, struct bucket *b, int64_t now)
{
	if (now > b->at_ms) {
		b->tokens = fmin(g->burst, b->tokens + (double)(now - b->at_ms) * g->per_ms);
		b->at_ms = now;
	}
}

long login_guard_take(struct login_guard *g, const struct sockaddr *peer)
{
	unsigned char a[16];
	uint64_t lo, hi;
	int64_t now = now_ms();
	long wait = 0;

	(void)source_addr(peer, a); /* no address: every such request shares one bucket */
	memcpy(&hi, a, 8);
	memcpy(&lo, a + 8, 8);
	struct bucket *set = g->b[mix(mix(hi ^ g->seed) ^ lo) % SETS];

	pthread_mutex_lock(&g->lock);
	struct bucket *b = NULL;
	for (int i = 0; i < WAYS && !b; i++)
		if (set[i].used && !memcmp(set[i].addr, a, 16))
			b = &set[i];
	if (!b) {
		/* An empty way, else the fullest bucket: a full one is no
		 * different from a new one, so replacing it forgets nothing. */
		for (int i = 0; i < WAYS; i++) {
			if (!set[i].used) {
				b = &set[i];
				break;
			}
			refill(g, &set[i], now);
			if (!b || set[i].tokens > b->tokens)
				b = &set[i];
		}
		memcpy(b->addr, a, 16);
		b->used = 1;
		b->tokens = g->burst;
		b->at_ms = now;
	}
	refill(g, b, now);
	if (b->tokens >= 1.0) {
		b->tokens -= 1.0;
	} else {
		wait = (long)ceil((1.0 - b->tokens) / g->per_ms / 1000.0);
		if (wait < 1)
			wait = 1;
	}
	pthread_mutex_unlock(&g->lock);
	if (wait)
		atomic_fetch_add(&g->refused_rate, 1);
	return wait;
}

int login_guard_enter(struct login_guard *g)
{
	if (atomic_fetch_add(&g->in_progress, 1) >= g->slots) {
		atomic_fetch_sub(&g->in_progress, 1);
		atomic_fetch_add(&g->refused_busy, 1);
		return -1;
	}
	return 0;
}

void login_guard_leave(struct login_guard *g)
{
	atomic_fetch_sub(&g->in_progress, 1);
}

void login_guard_count_backoff(struct login_guard *g)
{
	atomic_fetch_add(&g->refused_backoff, 1);
}

void login_guard_metrics(struct login_guard *g, FILE *out)
{
	if (!g)
		return;
	long in = atomic_load(&g->in_progress);
	fprintf(out,
	        "# HELP cp_logins_in_progress Logins checking a password right now (at most CP_LOGIN_CONCURRENCY).\n"
	        "# TYPE cp_logins_in_progress gauge\n"
	        "cp_logins_in_progress %ld\n"
	        "# HELP cp_login_refused_total Logins refused before any password check, by reason.\n"
	        "# TYPE cp_login_refused_total counter\n"
	        "cp_login_refused_total{reason=\"busy\"} %lu\n"
	        "cp_login_refused_total{reason=\"source_rate\"} %lu\n"
	        "cp_login_refused_total{reason=\"backoff\"} %lu\n",
	        in < 0 ? 0 : in, atomic_load(&g->refused_busy), atomic_load(&g->refused_rate),
	        atomic_load(&g->refused_backoff));
}
