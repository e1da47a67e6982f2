/* cell-router: a region's router agent. Keeps HAProxy's map of key id ->
 * cell current from the region's signed routes document, so that every
 * request reaches its tenant's cell.
 *
 *   cell-router           run: long-poll the control plane, apply each newer
 *                         verified document (cache, map file, HAProxy)
 *   cell-router --once    apply the cached document, then one pull, write
 *                         the map file and exit (0 when a verified document
 *                         was applied): builds the map before HAProxy starts
 *   cell-router --help    print usage and the configuration table
 *
 * A document is applied only once it verifies as the data plane's do
 * (cfgdoc_verify_routes: trust bundle, ES256 pinned, kid, iss, aud
 * "routes:<region>", nbf/exp with skew, ver above everything applied here
 * before, even across restarts: ROUTER_CACHE_DIR holds the verified token
 * and the version floor). Applying it writes ROUTER_MAP_FILE atomically
 * ("<key id> <cell>" per line) and, with ROUTER_HAPROXY_SOCKET, replaces the
 * map of the running HAProxy through its runtime API in one atomic step
 * (prepare map, add map @ver with payloads, commit map). A push that fails
 * is retried until it succeeds, by a thread of its own, so that the long
 * poll goes on meanwhile. At start the cache is applied first, expired or
 * not (as the data plane does; reported), so that routing survives a
 * restart with the control plane down. Nothing it holds is secret but the
 * region credential: the routes document names no secret and no hash. */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cfgdoc.h"
#include "config.h"
#include "config_store.h"
#include "deadline.h"
#include "http.h"
#include "log.h"
#include "names.h"
#include "svc.h"
#include "trust_store.h"
#include "url.h"

#define PROG "cell-router"
#define ISSUER "celltrail-control-plane"   /* as the data plane's DP_CONFIG_ISSUER */
#define MAX_BYTES (256u << 20)              /* largest routes document accepted */
#define PULL_GRACE_MS 10000                 /* a pull's total timeout = wait + this */
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define PUSH_RETRY_MS 2000                  /* a failed HAProxy update is tried again after this */
#define HAPROXY_TIMEOUT_S 10                /* one runtime API command */
/* HAProxy reads a command and its payload into one buffer of tune.bufsize
 * (16384 by default): each "add map" payload stays well below it. */
#define PAYLOAD_MAX 12000

struct router_config {
	struct cfg_addr listen;
	const char *region;
	const char *control_plane_url;
	const char *control_plane_ca_file;  /* NULL: the system's trust store */
	const char *region_token;           /* secret: never logged */
	const char *trust_bundle;
	const char *cache_dir;
	const char *map_file;
	const char *haproxy_socket;
	int64_t pull_wait_ms;
	int64_t keyset_interval_ms;
	int64_t connect_timeout_ms;
	int64_t clock_skew_ms;
	int log_level;
};

#define O(f) offsetof(struct router_config, f)
static const struct cfg_var router_vars[] = {
	{ "ROUTER_LISTEN", CFG_ADDR, "127.0.0.1:8090", 0, O(listen), 0, 0, NULL,
	  "Address and port of /healthz, /readyz and /metrics." },
	{ "ROUTER_REGION", CFG_STR, NULL, 1, O(region), 0, 0, NULL,
	  "Name of the region whose routes this agent applies ([a-z][a-z0-9-]*)." },
	{ "ROUTER_CONTROL_PLANE_URL", CFG_STR, NULL, 1, O(control_plane_url), 0, 0, NULL,
	  "Base URL of the control plane (GET /v1/regions/{region}/routes)." },
	{ "ROUTER_CONTROL_PLANE_CA_FILE", CFG_STR, NULL, 0, O(control_plane_ca_file), 0, 0, NULL,
	  "CA certificate (PEM) the control plane's https certificate must chain to: pinned, the system's trust store is then not used. Requires an https:// ROUTER_CONTROL_PLANE_URL." },
	{ "ROUTER_REGION_TOKEN", CFG_SECRET, NULL, 1, O(region_token), 0, 0, NULL,
	  "The region's credential at the control plane." },
	{ "ROUTER_TRUST_BUNDLE", CFG_STR, NULL, 1, O(trust_bundle), 0, 0, NULL,
	  "JWK set file of the keys a routes document may be signed with." },
	{ "ROUTER_CACHE_DIR", CFG_STR, NULL, 1, O(cache_dir), 0, 0, NULL,
	  "Directory of the last verified routes document (config.jwt) and the highest version applied (version); created if missing. One process's own: temporary files an earlier process left there are removed at start." },
	{ "ROUTER_MAP_FILE", CFG_STR, NULL, 1, O(map_file), 0, 0, NULL,
	  "The HAProxy map file written (<key id> <cell> per line); also the map's name in HAProxy's runtime API." },
	{ "ROUTER_HAPROXY_SOCKET", CFG_STR, NULL, 0, O(haproxy_socket), 0, 0, NULL,
	  "Unix socket of HAProxy's runtime API (stats socket, level admin); unset: only the map file is written." },
	{ "ROUTER_PULL_WAIT", CFG_DURATION, "30s", 0, O(pull_wait_ms), 1000, 60000, NULL,
	  "How long the control plane may hold a pull open for a newer version (1s to 60s)." },
	{ "ROUTER_KEYSET_INTERVAL", CFG_DURATION, "30s", 0, O(keyset_interval_ms), 1000, 3600000, NULL,
	  "How often the signed key set of the control plane's signing keys is asked for (also at start, and at once when a document is signed with a key not trusted here), between two pulls." },
	{ "ROUTER_PULL_CONNECT_TIMEOUT", CFG_DURATION, "2s", 0, O(connect_timeout_ms), 100, 60000, NULL,
	  "Longest wait to connect to the control plane." },
	{ "ROUTER_CLOCK_SKEW", CFG_DURATION, "60s", 0, O(clock_skew_ms), 0, 3600000, NULL,
	  "Clock difference tolerated on a routes document's nbf and exp." },
	{ "ROUTER_LOG_LEVEL", CFG_ENUM, "info", 0, O(log_level), 0, 0, log_level_names,
	  "Lowest level logged." },
	CFG_END
};
#undef O

enum outcome { PULL_UPDATED, PULL_NOT_MODIFIED, PULL_ERROR, PULL__COUNT };
static const char *const outcome_names[PULL__COUNT] = { "updated", "not_modified", "error" };
enum source { SRC_NONE, SRC_CACHE, SRC_CONTROL_PLANE };
static const char *const source_names[] = { NULL, "cache", "control-plane" };

/* The map of the document applied last, shared with the push thread. */
struct mapped {
	int refs;                 /* under router.lock */
	int64_t ver;
	char *text;               /* "<key> <cell>\n" lines */
	size_t len;
};

struct router {
	struct router_config cfg;
	struct trust_store *trust; /* keys a document may be signed with (trust_store.h) */
	int once;
	int64_t next_keyset;       /* the pull thread's: when to ask for the signed key set (mono ms) */
	int keyset_absent;         /* the control plane offers none (404): said once */

	pthread_mutex_t lock;
	pthread_cond_t wake;      /* the push thread: a new map, or stop */
	/* under lock */
	struct mapped *map;
	int64_t ver, exp, iat;
	size_t routes, cells;
	enum source source;
	int64_t last_ok;          /* unix s of the last pull answered 200 or 304 */
	int64_t pushed_ver;       /* the version HAProxy holds (0: none yet) */
	int push_failing;
	char push_error[512];

	atomic_int stop;
	int64_t floor;            /* the pull thread's (main's before it starts) */
	unsigned failures;
	uint64_t rng;
	atomic_uint_least64_t keysets[KEYSET__COUNT]; /* signed key sets fetched, by outcome */
	atomic_uint_least64_t pulls[PULL__COUNT], rejected[CFGDOC__COUNT], map_updates,
		map_update_failures, map_update_us;
};

static void mapped_put(struct router *r, struct mapped *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&r->lock);
	int last = --m->refs == 0;
	pthread_mutex_unlock(&r->lock);
	if (last) {
		free(m->text);
		free(m);
	}
}

/* ---- HAProxy's runtime API ---- */

/* Sends `cmd` (len bytes) on a new connection to the runtime API socket and
 * reads the answer until HAProxy closes it (one command per connection, the
 * socket's non-interactive mode). Returns 0 with the answer in `out`. */
static int haproxy_cmd(const char *sock, const char *cmd, size_t len, struct buf *out, char *err,
                       size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = HAPROXY_TIMEOUT_S };
	int fd = -1, ret = -1;

	out->len = 0;
	if (strlen(sock) >= sizeof sa.sun_path) {
		snprintf(err, errlen, "ROUTER_HAPROXY_SOCKET is longer than %zu bytes", sizeof sa.sun_path - 1);
		return -1;
	}
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		snprintf(err, errlen, "cannot connect to %s: %s", sock, strerror(errno));
		goto out;
	}
	for (size_t off = 0; off < len;) {
		ssize_t w = send(fd, cmd + off, len - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			snprintf(err, errlen, "cannot write to %s: %s", sock, strerror(errno));
			goto out;
		}
		off += (size_t)w;
	}
	for (;;) {
		char chunk[4096];
		ssize_t n = recv(fd, chunk, sizeof chunk, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "no answer from %s: %s", sock, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		buf_append(out, chunk, (size_t)n);
		if (out->failed) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
	}
	buf_append(out, "", 1); /* NUL-terminated */
	out->len--;
	ret = out->failed ? -1 : 0;
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

/* An answer of nothing but blank lines is HAProxy's success for "add map"
 * and "commit map"; anything else is its error message. */
static int blank(const struct buf *b)
{
	return !b->p || strspn(b->p, " \r\n") == b->len;
}

/* Copies HAProxy's answer into `err`, printable and on one line. */
static void answer_error(char *err, size_t errlen, const char *what, const struct buf *b)
{
	snprintf(err, errlen, "%s: HAProxy answered '%.200s'", what, b->p ? b->p : "");
	for (char *c = err; *c; c++)
		if (*c < 0x20 || *c > 0x7e)
			*c = ' ';
}

/* Replaces the whole map `name` of the HAProxy at `sock` with `m`'s lines,
 * atomically: a new version is prepared, filled with payloads of at most
 * PAYLOAD_MAX bytes, then committed; a failure before the commit leaves the
 * map in use untouched (the uncommitted version is dropped at the next
 * commit). */
static int haproxy_replace(const char *sock, const char *name, const struct mapped *m, char *err,
                           size_t errlen)
{
	struct buf cmd = { 0 }, ans = { 0 };
	int ret = -1;
	char *end;

	buf_printf(&cmd, "prepare map %s\n", name);
	if (cmd.failed || haproxy_cmd(sock, cmd.p, cmd.len, &ans, err, errlen) != 0)
		goto out;
	const char *v = ans.p ? strstr(ans.p, "New version created:") : NULL;
	unsigned long ver = v ? strtoul(v + strlen("New version created:"), &end, 10) : 0;
	if (!v || end == v + strlen("New version created:")) {
		answer_error(err, errlen, "prepare map", &ans);
		goto out;
	}
	for (size_t off = 0; off < m->len;) {
		size_t n = m->len - off;
		if (n > PAYLOAD_MAX) {
			/* Cut after the last whole line that fits. */
			n = PAYLOAD_MAX;
			while (n && m->text[off + n - 1] != '\n')
				n--;
			if (!n) {
				snprintf(err, errlen, "a map line is longer than %d bytes", PAYLOAD_MAX);
				goto out;
			}
		}
		cmd.len = 0;
		buf_printf(&cmd, "add map @%lu %s <<\n", ver, name);
		buf_append(&cmd, m->text + off, n);
		buf_append(&cmd, "\n", 1); /* the empty line that ends the payload */
		if (cmd.failed || haproxy_cmd(sock, cmd.p, cmd.len, &ans, err, errlen) != 0)
			goto out;
		if (!blank(&ans)) {
			answer_error(err, errlen, "add map", &ans);
			goto out;
		}
		off += n;
	}
	cmd.len = 0;
	buf_printf(&cmd, "commit map @%lu %s\n", ver, name);
	if (cmd.failed || haproxy_cmd(sock, cmd.p, cmd.len, &ans, err, errlen) != 0)
		goto out;
	if (!blank(&ans)) {
		answer_error(err, errlen, "commit map", &ans);
		goto out;
	}
	ret = 0;
out:
	buf_free(&cmd);
	buf_free(&ans);
	return ret;
}

/* Pushes the map applied last to HAProxy unless it holds it already.
 * Returns 0 when HAProxy holds it (or nothing is to be pushed). */
static int push(struct router *r)
{
	char err[512];
	pthread_mutex_lock(&r->lock);
	struct mapped *m = r->map;
	if (!m || m->ver == r->pushed_ver || !r->cfg.haproxy_socket) {
		pthread_mutex_unlock(&r->lock);
		return 0;
	}
	m->refs++;
	pthread_mutex_unlock(&r->lock);

	int64_t t0 = deadline_mono_ms();
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	int rc = haproxy_replace(r->cfg.haproxy_socket, r->cfg.map_file, m, err, sizeof err);
	clock_gettime(CLOCK_MONOTONIC, &b);
	uint64_t us = (uint64_t)((b.tv_sec - a.tv_sec) * 1000000 + (b.tv_nsec - a.tv_nsec) / 1000);
	pthread_mutex_lock(&r->lock);
	int was_failing = r->push_failing;
	if (rc == 0) {
		r->pushed_ver = m->ver;
		r->push_failing = 0;
		r->push_error[0] = '\0';
	} else {
		r->push_failing = 1;
		snprintf(r->push_error, sizeof r->push_error, "%s", err);
	}
	pthread_mutex_unlock(&r->lock);
	if (rc == 0) {
		atomic_fetch_add(&r->map_updates, 1);
		atomic_fetch_add(&r->map_update_us, us);
		log_write(LOG_INFO, NULL,
		          json_pack("{sI sI}", "version", (json_int_t)m->ver, "ms", (json_int_t)(deadline_mono_ms() - t0)),
		          "HAProxy's map %s now holds routes version %lld", r->cfg.map_file, (long long)m->ver);
	} else {
		atomic_fetch_add(&r->map_update_failures, 1);
		/* Said when it starts failing; retried quietly (debug) after. */
		log_write(was_failing ? LOG_DEBUG : LOG_WARN, NULL, json_pack("{sI}", "version", (json_int_t)m->ver),
		          "HAProxy's map not updated (%s; the map file is current): %s",
		          r->once ? "--once does not retry" : "retried every 2 s", err);
	}
	mapped_put(r, m);
	return rc;
}

/* The push thread: waits for a new map (or a retry), pushes it. */
static void *push_thread(void *arg)
{
	struct router *r = arg;
	log_set_task("haproxy");
	int retry = 0;
	pthread_mutex_lock(&r->lock);
	while (!atomic_load(&r->stop)) {
		int due = r->map && r->map->ver != r->pushed_ver;
		if (!due || retry) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += retry ? PUSH_RETRY_MS / 1000 : 60;
			pthread_cond_timedwait(&r->wake, &r->lock, &ts);
			retry = 0;
			continue;
		}
		pthread_mutex_unlock(&r->lock);
		retry = push(r) != 0;
		pthread_mutex_lock(&r->lock);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

/* ---- applying a document ---- */

static struct cfgdoc_verify_opts verify_opts(const struct router *r, int64_t min_version, int allow_expired)
{
	struct cfgdoc_verify_opts o = {
		.issuer = ISSUER,
		.region = r->cfg.region,
		.now = (int64_t)time(NULL),
		.skew = r->cfg.clock_skew_ms / 1000,
		.min_version = min_version,
		.allow_expired = allow_expired,
		.max_bytes = MAX_BYTES,
	};
	return o;
}

/* A document's ver must be above this: above what is applied, and not
 * below the floor (its own version is accepted while nothing is applied:
 * the cached document at start). */
static int64_t min_version(struct router *r)
{
	pthread_mutex_lock(&r->lock);
	int64_t v = r->ver;
	pthread_mutex_unlock(&r->lock);
	return r->floor - 1 > v ? r->floor - 1 : v;
}

static void reject(struct router *r, enum cfgdoc_result res, const char *where, const char *detail)
{
	char safe[600];
	atomic_fetch_add(&r->rejected[res], 1);
	snprintf(safe, sizeof safe, "%s", detail);
	for (char *c = safe; *c; c++)
		if (*c < 0x20 || *c > 0x7e)
			*c = '?';
	log_write(LOG_WARN, NULL, json_pack("{ss}", "reason", cfgdoc_result_names[res]),
	          "%s routes document rejected (%s): %s; the routes applied are kept", where,
	          cfgdoc_result_names[res], safe);
}

/* Writes the map file of `d` and makes it the one applied (and pushed).
 * `cache`: also write the token and the floor to ROUTER_CACHE_DIR. Returns
 * 0, or -1 when the map file could not be written (nothing changed then). */
static int apply(struct router *r, const struct cfgdoc_routes *d, enum source src, int cache)
{
	char err[600];
	struct mapped *m = calloc(1, sizeof *m);
	struct buf b = { 0 };

	if (!m)
		goto oom;
	for (size_t i = 0; i < d->nroutes; i++) {
		const struct cfgdoc_route *rt = &d->routes[i];
		buf_append(&b, rt->key, 24);
		buf_append(&b, " ", 1);
		buf_append(&b, d->cells[rt->cell].name, strlen(d->cells[rt->cell].name));
		buf_append(&b, "\n", 1);
	}
	if (b.failed)
		goto oom;
	/* The cache first: a map file never gets ahead of what a restart
	 * would load again. A cache that cannot be written is not fatal. */
	if (cache) {
		if (dp_cache_write(r->cfg.cache_dir, d->token, d->token_len, err, sizeof err) != 0)
			log_warn(NULL, "routes version %lld is applied but not cached: %s", (long long)d->ver, err);
		if (d->ver > r->floor && dp_floor_write(r->cfg.cache_dir, d->ver, err, sizeof err) != 0)
			log_warn(NULL, "the version floor %lld is not kept on disk: %s", (long long)d->ver, err);
	}
	if (d->ver > r->floor)
		r->floor = d->ver;
	if (dp_file_replace(r->cfg.map_file, b.p ? b.p : "", b.len, 0644, err, sizeof err) != 0) {
		log_error(NULL, "routes version %lld not applied: the map file cannot be written: %s",
		          (long long)d->ver, err);
		buf_free(&b);
		free(m);
		return -1;
	}
	m->refs = 1;
	m->ver = d->ver;
	m->len = b.len;
	m->text = b.p;
	b.p = NULL;
	pthread_mutex_lock(&r->lock);
	struct mapped *old = r->map;
	int64_t prev = r->ver;
	r->map = m;
	r->ver = d->ver;
	r->exp = d->exp;
	r->iat = d->iat;
	r->routes = d->nroutes;
	r->cells = d->ncells;
	r->source = src;
	pthread_cond_signal(&r->wake);
	pthread_mutex_unlock(&r->lock);
	mapped_put(r, old);
	char when[32];
	int stale = (int64_t)time(NULL) >= d->exp;
	struct tm tm;
	time_t te = (time_t)d->exp;
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&te, &tm));
	log_write(stale ? LOG_WARN : LOG_INFO, NULL,
	          json_pack("{sI sI sI sI ss ss sb}", "version", (json_int_t)d->ver, "previous", (json_int_t)prev,
	                    "routes", (json_int_t)d->nroutes, "cells", (json_int_t)d->ncells, "source",
	                    source_names[src], "expires_at", when, "stale", stale),
	          "routes version %lld applied from the %s%s", (long long)d->ver, source_names[src],
	          stale ? "; it has expired: the control plane could not be reached to renew it" : "");
	return 0;
oom:
	buf_free(&b);
	free(m);
	log_error(NULL, "out of memory applying routes version %lld", (long long)d->ver);
	return -1;
}

/* Start: the floor, then the cached document (expired or not), applied. */
static void load_cache(struct router *r)
{
	char err[600], detail[600];
	char *tok = NULL;
	size_t len;
	struct cfgdoc_routes *d = NULL;

	if (dp_floor_read(r->cfg.cache_dir, &r->floor, err, sizeof err) != 0)
		log_error(NULL, "the version floor is unreadable (%s); rollbacks are measured against the cached "
		                "document only", err);
	switch (dp_cache_read(r->cfg.cache_dir, MAX_BYTES, &tok, &len, err, sizeof err)) {
	case DP_CACHE_ABSENT:
		log_info(NULL, "no cached routes in %s; waiting for the control plane", r->cfg.cache_dir);
		return;
	case DP_CACHE_ERROR:
		log_warn(NULL, "cached routes ignored: %s", err);
		return;
	case DP_CACHE_FOUND:
		break;
	}
	struct cfgdoc_verify_opts o = verify_opts(r, min_version(r), 1);
	const struct cfgdoc_trust *trust = trust_store_get(r->trust);
	enum cfgdoc_result res = cfgdoc_verify_routes(tok, len, trust, &o, &d, detail, sizeof detail);
	trust_store_put(r->trust, trust);
	free(tok);
	if (res != CFGDOC_OK) {
		reject(r, res, "cached", detail);
		/* Bytes that can never verify are set aside; a time or version
		 * failure is kept (a clock behind), and so is a key not trusted
		 * yet (its key set not fetched): a pull replaces it. */
		if (res != CFGDOC_NOT_YET_VALID && res != CFGDOC_ROLLBACK && res != CFGDOC_UNKNOWN_KID) {
			if (dp_cache_reject(r->cfg.cache_dir, err, sizeof err) != 0)
				log_warn(NULL, "%s", err);
			else
				log_warn(NULL, "the rejected cache file was renamed %s/%s", r->cfg.cache_dir,
				         DP_CACHE_REJECTED);
		}
		return;
	}
	(void)apply(r, d, SRC_CACHE, 0);
	/* A cache written before the floor file brings its version. */
	if (d->ver > r->floor)
		r->floor = d->ver;
	char ignored[600];
	if (dp_floor_write(r->cfg.cache_dir, r->floor, ignored, sizeof ignored) != 0)
		log_warn(NULL, "the version floor %lld is not kept on disk: %s", (long long)r->floor, ignored);
	cfgdoc_routes_free(d);
}

/* ---- pulling ---- */

struct answer {
	struct buf body;
	int too_large;            /* longer than MAX_BYTES: the transfer was cut */
};

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
	struct answer *a = ctx;
	if (a->body.len + size * n > MAX_BYTES) {
		a->too_large = 1;
		return 0;
	}
	buf_append(&a->body, data, size * n);
	return a->body.failed ? 0 : size * n;
}

static int on_progress(void *ctx, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	(void)a, (void)b, (void)c, (void)d;
	return atomic_load(&((struct router *)ctx)->stop) ? 1 : 0;
}

/* The options every call to the control plane shares: `url`, headers
 * `h`, at most `timeout_ms`, the answer into `ans` (bounded), the reason
 * of a failure into `errbuf`, cut short when the router stops. */
static void easy_setup(struct router *r, CURL *easy, const char *url, struct curl_slist *h, long timeout_ms,
                       struct answer *ans, char *errbuf)
{
	curl_easy_setopt(easy, CURLOPT_URL, url);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	if (r->cfg.control_plane_ca_file) { /* pinned: this CA only */
		curl_easy_setopt(easy, CURLOPT_CAINFO, r->cfg.control_plane_ca_file);
		curl_easy_setopt(easy, CURLOPT_CAPATH, NULL);
	}
	curl_easy_setopt(easy, CURLOPT_USERAGENT, "celltrail-cell-router");
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long)r->cfg.connect_timeout_ms);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, ans);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(easy, CURLOPT_XFERINFODATA, r);
}

/* One pull, holding it open at most `wait_s`; applies a newer document. */
static enum outcome pull(struct router *r, long wait_s)
{
	char url[2048], path[256], auth[1024], inm[64];
	struct answer ans = { 0 };
	struct buf *body = &ans.body;
	struct curl_slist *h = NULL;
	enum outcome o = PULL_ERROR;
	long status = 0;
	CURL *easy = curl_easy_init();
	char errbuf[CURL_ERROR_SIZE] = "";

	pthread_mutex_lock(&r->lock);
	int64_t ver = r->ver;
	pthread_mutex_unlock(&r->lock);
	snprintf(path, sizeof path, "/v1/regions/%s/routes?wait=%ld", r->cfg.region, wait_s);
	if (!easy || url_join(url, sizeof url, r->cfg.control_plane_url, path) != 0 ||
	    (size_t)snprintf(auth, sizeof auth, "Authorization: Bearer %s", r->cfg.region_token) >= sizeof auth ||
	    !(h = curl_slist_append(h, auth)) || !(h = curl_slist_append(h, "Accept: application/jwt"))) {
		log_error(NULL, "cannot set up a pull (out of memory, or ROUTER_CONTROL_PLANE_URL too long)");
		goto out;
	}
	if (ver) {
		snprintf(inm, sizeof inm, "If-None-Match: \"%lld\"", (long long)ver);
		struct curl_slist *h2 = curl_slist_append(h, inm);
		if (!h2)
			goto out;
		h = h2;
	}
	easy_setup(r, easy, url, h, wait_s * 1000 + PULL_GRACE_MS, &ans, errbuf);
	curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(easy, CURLOPT_QUICK_EXIT, 1L);
	CURLcode rc = curl_easy_perform(easy);
	explicit_bzero(auth, sizeof auth);
	if (rc == CURLE_ABORTED_BY_CALLBACK && atomic_load(&r->stop))
		goto out;
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	if (ans.too_large) {
		reject(r, CFGDOC_MALFORMED, "pulled", "larger than the largest routes document accepted");
	} else if (rc != CURLE_OK) {
		log_warn(NULL, "routes pull failed: control plane unreachable: %s",
		         errbuf[0] ? errbuf : curl_easy_strerror(rc));
	} else if (status == 304) {
		o = PULL_NOT_MODIFIED;
	} else if (status == 200) {
		struct cfgdoc_routes *d = NULL;
		char detail[600];
		struct cfgdoc_verify_opts vo = verify_opts(r, min_version(r), 0);
		const struct cfgdoc_trust *trust = trust_store_get(r->trust);
		enum cfgdoc_result res = cfgdoc_verify_routes(body->p ? body->p : "", body->len, trust, &vo, &d,
		                                              detail, sizeof detail);
		trust_store_put(r->trust, trust);
		/* Signed with a key not trusted here: the key set is asked for at once. */
		if (res == CFGDOC_UNKNOWN_KID)
			r->next_keyset = 0;
		if (res != CFGDOC_OK)
			reject(r, res, "pulled", detail);
		else if (apply(r, d, SRC_CONTROL_PLANE, 1) == 0)
			o = PULL_UPDATED;
		cfgdoc_routes_free(d);
	} else {
		log_warn(NULL, "routes pull failed: the control plane answered HTTP %ld%s", status,
		         status == 401 || status == 403 ? " (check ROUTER_REGION_TOKEN)"
		         : status == 404            ? " (check ROUTER_CONTROL_PLANE_URL and ROUTER_REGION)"
		                                    : "");
	}
	atomic_fetch_add(&r->pulls[o], 1);
	if (o != PULL_ERROR) {
		pthread_mutex_lock(&r->lock);
		r->last_ok = (int64_t)time(NULL);
		pthread_mutex_unlock(&r->lock);
	}
out:
	explicit_bzero(auth, sizeof auth);
	curl_slist_free_all(h);
	curl_easy_cleanup(easy);
	buf_free(body);
	return o;
}

/* Asks for the signed key set and applies it (trust_store.h). Returns 1
 * when the keys trusted here changed. */
static int keyset_pull(struct router *r)
{
	char url[2048], inm[64], err[512], errbuf[CURL_ERROR_SIZE] = "";
	struct answer ans = { 0 };
	struct curl_slist *h = NULL;
	long status = 0;
	int changed = 0;
	CURL *easy = curl_easy_init();
	int64_t held = trust_store_version(r->trust);
	snprintf(inm, sizeof inm, "If-None-Match: \"%lld\"", (long long)held);
	if (!easy || url_join(url, sizeof url, r->cfg.control_plane_url, "/v1/signing-keys") != 0 ||
	    (held && !(h = curl_slist_append(h, inm))))
		goto out;
	easy_setup(r, easy, url, h, 10000, &ans, errbuf);
	CURLcode rc = curl_easy_perform(easy);
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	if (rc != CURLE_OK) {
		if (!atomic_load(&r->stop))
			log_warn_limited(NULL, "signed key set not fetched: %s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
	} else if (status == 200 && !ans.too_large) {
		enum keyset_result kr = trust_store_apply(r->trust, ans.body.p ? ans.body.p : "", ans.body.len, err, sizeof err);
		atomic_fetch_add(&r->keysets[kr], 1);
		if (kr == KEYSET_OK) {
			log_info(NULL, "now trusting the signing keys of key set version %lld",
			         (long long)trust_store_version(r->trust));
			changed = 1;
		} else if (kr != KEYSET_SAME) {
			log_error(NULL, "signed key set refused (%s): %s", keyset_result_names[kr], err);
		}
	} else if (status == 404) {
		if (!r->keyset_absent)
			log_info(NULL, "the control plane offers no signed key set: the keys trusted now stay until it does");
		r->keyset_absent = 1;
	} else if (status == 304) {
		atomic_fetch_add(&r->keysets[KEYSET_SAME], 1);
	} else {
		log_warn_limited(NULL, "signed key set not fetched: the control plane answered HTTP %ld", status);
	}
out:
	curl_slist_free_all(h);
	curl_easy_cleanup(easy);
	buf_free(&ans.body);
	return changed;
}

static void *pull_thread(void *arg)
{
	struct router *r = arg;
	log_set_task("routes_pull");
	while (!atomic_load(&r->stop)) {
		if (deadline_mono_ms() >= r->next_keyset) {
			keyset_pull(r);
			r->next_keyset = deadline_mono_ms() + r->cfg.keyset_interval_ms;
		}
		int64_t started = deadline_mono_ms(), delay = 0;
		enum outcome o = pull(r, (long)(r->cfg.pull_wait_ms / 1000));
		if (o == PULL_ERROR && r->next_keyset == 0) {
			/* A document signed with a key not trusted here: the key set
			 * first, and the pull again at once when it brought new keys. */
			r->next_keyset = deadline_mono_ms() + r->cfg.keyset_interval_ms;
			if (keyset_pull(r))
				continue;
		}
		if (o == PULL_ERROR) {
			r->failures++;
			unsigned shift = r->failures > 7 ? 7 : r->failures - 1;
			int64_t d = (int64_t)BACKOFF_MIN_MS << shift;
			if (d > BACKOFF_MAX_MS)
				d = BACKOFF_MAX_MS;
			r->rng = r->rng * 6364136223846793005ull + 1442695040888963407ull;
			delay = d / 2 + (int64_t)((r->rng >> 33) % (uint64_t)(d / 2 + 1));
		} else {
			if (r->failures)
				log_info(NULL, "routes pull succeeded after %u failure(s)", r->failures);
			r->failures = 0;
			/* A control plane that answers 304 at once is not polled in a loop. */
			if (o == PULL_NOT_MODIFIED)
				delay = started + 1000 - deadline_mono_ms();
		}
		for (int64_t until = deadline_mono_ms() + delay; !atomic_load(&r->stop) && deadline_mono_ms() < until;)
			usleep(50000);
	}
	return NULL;
}

/* ---- HTTP: /healthz, /readyz, /metrics ---- */

static json_t *time_or_null(int64_t t)
{
	char s[32];
	struct tm tm;
	time_t tt = (time_t)t;
	if (!t)
		return json_null();
	strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&tt, &tm));
	return json_string(s);
}

/* Ready once a verified document is applied (the map file written). */
static enum http_result handle_readyz(struct http_req *req)
{
	struct router *r = http_req_app(req);
	pthread_mutex_lock(&r->lock);
	int loaded = r->map != NULL;
	const char *haproxy = !r->cfg.haproxy_socket ? "none"
	                      : !loaded || r->pushed_ver == r->ver ? (r->pushed_ver ? "ok" : "pending")
	                      : r->push_failing                     ? "failing"
	                                                            : "pending";
	json_t *body = json_pack("{ss so so so so so so sb ss so so}", "region", r->cfg.region,
	                         "config_version", loaded ? json_integer(r->ver) : json_null(), "routes",
	                         loaded ? json_integer((json_int_t)r->routes) : json_null(), "expires_at",
	                         loaded ? time_or_null(r->exp) : json_null(), "source",
	                         loaded ? json_string(source_names[r->source]) : json_null(),
	                         "last_pull_ok_at", time_or_null(r->last_ok), "haproxy_version",
	                         r->pushed_ver ? json_integer(r->pushed_ver) : json_null(), "stale",
	                         loaded && (int64_t)time(NULL) >= r->exp, "haproxy", haproxy,
	                         "haproxy_error", r->push_failing ? json_string(r->push_error) : json_null(),
	                         "reason", loaded ? json_null() : json_string("no verified routes document yet"));
	pthread_mutex_unlock(&r->lock);
	return http_reply_json(req, loaded ? 200 : 503, body);
}

static void router_metrics(FILE *out, void *arg)
{
	struct router *r = arg;
	pthread_mutex_lock(&r->lock);
	int64_t ver = r->ver;
	size_t routes = r->routes;
	pthread_mutex_unlock(&r->lock);
	fprintf(out,
	        "# HELP router_config_version Version of the routes document applied (0: none).\n"
	        "# TYPE router_config_version gauge\n"
	        "router_config_version %lld\n"
	        "# HELP router_routes Key ids in the map applied.\n"
	        "# TYPE router_routes gauge\n"
	        "router_routes %zu\n"
	        "# HELP router_map_updates_total HAProxy map replacements committed through the runtime API.\n"
	        "# TYPE router_map_updates_total counter\n"
	        "router_map_updates_total %llu\n"
	        "# HELP router_map_update_failures_total HAProxy map replacements that failed (retried).\n"
	        "# TYPE router_map_update_failures_total counter\n"
	        "router_map_update_failures_total %llu\n"
	        "# HELP router_map_update_seconds_total Time spent in committed HAProxy map replacements.\n"
	        "# TYPE router_map_update_seconds_total counter\n"
	        "router_map_update_seconds_total %.6f\n"
	        "# HELP router_pulls_total Pulls from the control plane, by outcome.\n"
	        "# TYPE router_pulls_total counter\n",
	        (long long)ver, routes, (unsigned long long)atomic_load(&r->map_updates),
	        (unsigned long long)atomic_load(&r->map_update_failures),
	        (double)atomic_load(&r->map_update_us) / 1e6);
	for (int o = 0; o < PULL__COUNT; o++)
		fprintf(out, "router_pulls_total{outcome=\"%s\"} %llu\n", outcome_names[o],
		        (unsigned long long)atomic_load(&r->pulls[o]));
	fprintf(out, "# HELP router_documents_rejected_total Routes documents refused, by reason.\n"
	             "# TYPE router_documents_rejected_total counter\n");
	for (int i = 1; i < CFGDOC__COUNT; i++)
		fprintf(out, "router_documents_rejected_total{reason=\"%s\"} %llu\n", cfgdoc_result_names[i],
		        (unsigned long long)atomic_load(&r->rejected[i]));
	fprintf(out, "# HELP router_keyset_version Version of the signed key set whose keys are trusted here (0: the trust bundle's).\n"
	             "# TYPE router_keyset_version gauge\nrouter_keyset_version %lld\n"
	             "# HELP router_keysets_total Signed key sets fetched from the control plane, by outcome.\n"
	             "# TYPE router_keysets_total counter\n",
	        (long long)trust_store_version(r->trust));
	for (int i = 0; i < KEYSET__COUNT; i++)
		fprintf(out, "router_keysets_total{outcome=\"%s\"} %llu\n", keyset_result_names[i],
		        (unsigned long long)atomic_load(&r->keysets[i]));
}

static const struct http_route routes[] = {
	{ "GET", "/healthz", http_handle_healthz, 0, 0, NULL },
	{ "GET", "/readyz", handle_readyz, 0, 0, NULL },
	{ "GET", "/metrics", http_handle_metrics, 0, 0, NULL },
};

/* ---- main ---- */

static void usage(FILE *out)
{
	cfg_print_help(out,
	               "Usage: " PROG " [--once|--help]\n\n"
	               "  (none)    keep HAProxy's map of key id -> cell current from the region's\n"
	               "            signed routes document (long poll), serving /healthz, /readyz\n"
	               "            and /metrics on ROUTER_LISTEN\n"
	               "  --once    apply the cached document, pull once, write ROUTER_MAP_FILE\n"
	               "            (and update HAProxy, with ROUTER_HAPROXY_SOCKET) and exit: 0\n"
	               "            when a verified document was applied, 1 otherwise",
	               router_vars);
}

static int usage_error(const char *var, const char *why)
{
	fprintf(stderr, PROG ": invalid configuration: %s: %s (see " PROG " --help)\n", var, why);
	return SVC_EXIT_USAGE;
}

static int check_config(struct router *r)
{
	const struct router_config *c = &r->cfg;
	char err[600];
	if (!name_valid_region(c->region))
		return usage_error("ROUTER_REGION", "not a region name ([a-z][a-z0-9-]*, at most 32 characters)");
	if (strncmp(c->control_plane_url, "http://", 7) && strncmp(c->control_plane_url, "https://", 8))
		return usage_error("ROUTER_CONTROL_PLANE_URL", "must start with http:// or https://");
	if (strlen(c->control_plane_url) > 900)
		return usage_error("ROUTER_CONTROL_PLANE_URL", "longer than 900 characters");
	const char *ca = url_ca_problem(c->control_plane_url, c->control_plane_ca_file);
	if (ca)
		return usage_error("ROUTER_CONTROL_PLANE_CA_FILE", ca);
	for (const char *t = c->region_token; *t; t++)
		if (*t <= ' ' || *t > '~')
			return usage_error("ROUTER_REGION_TOKEN", "must be printable ASCII without spaces");
	if (!*c->region_token)
		return usage_error("ROUTER_REGION_TOKEN", "must not be empty");
	/* The map's name in HAProxy's runtime API is the path: one word. */
	if (!*c->map_file || strpbrk(c->map_file, " \t\r\n"))
		return usage_error("ROUTER_MAP_FILE", "must be a path without spaces");
	if (c->haproxy_socket && !*c->haproxy_socket)
		return usage_error("ROUTER_HAPROXY_SOCKET", "must not be empty when set");
	if (dp_cache_prepare(c->cache_dir, NULL, err, sizeof err) != 0)
		return usage_error("ROUTER_CACHE_DIR", err);
	/* The key set accepted last (ROUTER_CACHE_DIR), else the bundle. */
	if (!(r->trust = trust_store_open(c->trust_bundle, c->cache_dir, ISSUER, err, sizeof err)))
		return usage_error("ROUTER_TRUST_BUNDLE", err);
	return 0;
}

static int run_once(struct router *r)
{
	load_cache(r);
	(void)pull(r, 0);
	if (!r->map) {
		log_error(NULL, "no verified routes document: %s not written", r->cfg.map_file);
		return SVC_EXIT_FAILURE;
	}
	if (push(r) != 0)
		log_warn(NULL, "the map file is written; HAProxy's map is not updated");
	return SVC_EXIT_OK;
}

static int run(struct router *r)
{
	char err[512];
	struct http_server_opts o = {
		.service = PROG,
		.listen = r->cfg.listen,
		.threads = 1,
		.max_connections = 64,
		.connection_timeout_s = 30,
		.response_timeout_ms = 10000,
		.connection_memory = 16384,
		.access_log = 0,
		.routes = routes,
		.nroutes = sizeof routes / sizeof routes[0],
		.metrics_extra = router_metrics,
		.app = r,
	};
	pthread_t puller, pusher;
	int ret = SVC_EXIT_FAILURE, have_pusher = 0, have_puller = 0;

	load_cache(r);
	struct http_server *srv = http_server_start(&o, err, sizeof err);
	if (!srv) {
		log_error(NULL, "%s", err);
		return SVC_EXIT_FAILURE;
	}
	char addr[96];
	cfg_addr_format(&r->cfg.listen, addr, sizeof addr);
	log_write(LOG_INFO, NULL,
	          json_pack("{ss ss si ss}", "region", r->cfg.region, "listen", addr, "port",
	                    http_server_port(srv), "map_file", r->cfg.map_file),
	          "cell router listening");
	if (pthread_create(&pusher, NULL, push_thread, r) != 0 ||
	    !(have_pusher = 1) || pthread_create(&puller, NULL, pull_thread, r) != 0) {
		log_error(NULL, "cannot start the threads");
		goto out;
	}
	have_puller = 1;
	int sig = http_signals_wait();
	log_info(NULL, "signal %d: stopping", sig);
	ret = SVC_EXIT_OK;
out:
	atomic_store(&r->stop, 1);
	pthread_mutex_lock(&r->lock);
	pthread_cond_broadcast(&r->wake);
	pthread_mutex_unlock(&r->lock);
	if (have_puller)
		pthread_join(puller, NULL);
	if (have_pusher)
		pthread_join(pusher, NULL);
	http_server_drain(srv, 1000);
	http_server_free(srv);
	log_info(NULL, "stopped");
	return ret;
}

int main(int argc, char **argv)
{
	static struct router r;
	http_signals_block();
	if (svc_wants_help(argc, argv)) {
		usage(stdout);
		return SVC_EXIT_OK;
	}
	if (argc > 2 || (argc == 2 && strcmp(argv[1], "--once"))) {
		usage(stderr);
		return SVC_EXIT_USAGE;
	}
	r.once = argc == 2;
	svc_load_config(PROG, router_vars, &r.cfg);
	int ret = check_config(&r);
	if (ret != 0)
		return ret;
	log_init(PROG, (enum log_level)r.cfg.log_level);
	log_set_task("main");
	pthread_mutex_init(&r.lock, NULL);
	pthread_cond_init(&r.wake, NULL);
	r.rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, PROG ": cannot initialize libcurl\n");
		trust_store_free(r.trust);
		return SVC_EXIT_FAILURE;
	}
	ret = r.once ? run_once(&r) : run(&r);
	mapped_put(&r, r.map);
	r.map = NULL;
	trust_store_free(r.trust);
	curl_global_cleanup();
	pthread_cond_destroy(&r.wake);
	pthread_mutex_destroy(&r.lock);
	return ret;
}
