/* The configuration puller: start-up from the cache, then a thread that
 * long-polls the control plane and posts fleet status.
 *
 * The thread runs one libcurl multi handle with at most two transfers: the
 * config long poll and a status POST, so that status is reported every
 * STATUS_INTERVAL_MS even while a long poll is held open. Shutdown sets a
 * flag and calls curl_multi_wakeup(); the loop never blocks longer than
 * LOOP_MAX_MS anyway. */
#include "config_pull.h"

#include <curl/curl.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cell_wait.h"
#include "cfgdoc.h"
#include "config_store.h"
#include "cp_client.h"
#include "cp_errors.h"
#include "deadline.h"
#include "dp.h"
#include "keyset.h"
#include "log.h"
#include "secret.h"
#include "snapshot.h"
#include "trust_store.h"

#define STATUS_INTERVAL_MS 15000  /* fleet status at least this often */
#define STATUS_TIMEOUT_MS 5000    /* a status POST is best effort */
#define STATUS_BODY_MAX 65536     /* what we read of its answer */
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define POLL_FLOOR_MS 1000        /* pulls answered 304 start at most this often */
#define PULL_GRACE_MS 10000       /* total timeout = wait + this */
#define LOOP_MAX_MS 1000          /* the loop wakes at least this often */
#define ERROR_MAX 500             /* fleet status last_error */
#define CACHE_STAGE_MIN 65536    /* a larger answer to a delta request is staged too */
/* A cell's data plane asks for a full document (?full=1) once
 * DP_CONFIG_DELTAS_MAX deltas are applied on the one it has, or once the
 * tenants the deltas replaced outnumber a sixteenth of it (at least
 * LAYER_MIN): lookups stay a few probes, and a restart replays a short
 * chain. */
#define LAYER_MIN 4096
#define NO_DELTAS_RETRY_MS (10 * 60 * 1000)
/* The signed key set (trust_store.h) is asked for every
 * DP_KEYSET_INTERVAL, at start, and at once when a document names a key
 * not trusted here; a request takes at most this long. */
#define KEYSET_TIMEOUT_MS 10000
#define KEYSET_WANT_FLOOR_MS 5000 /* dp_pull_want_keyset: at most this often */

enum outcome { PULL_UPDATED, PULL_NOT_MODIFIED, PULL_ERROR, PULL__COUNT };
static const char *const outcome_names[PULL__COUNT] = { "updated", "not_modified", "error" };

struct dp_pull {
	struct dp_app *app;
	CURLM *multi;
	pthread_t thread;
	int running;                   /* a thread to join */
	atomic_int stop;

	/* read by /metrics and /readyz on any thread */
	atomic_uint_least64_t applied, rejected[CFGDOC__COUNT], pulls[PULL__COUNT];
	atomic_ulong deltas_applied;   /* of `applied` */
	atomic_ullong apply_ms;        /* the last pulled document's verify, cache and swap */
	atomic_uint_least64_t keysets[KEYSET__COUNT]; /* signed key sets fetched, by outcome */
	atomic_int keyset_wanted;      /* dp_pull_want_keyset() */
	atomic_int_least64_t last_ok;
	/* The highest version ever applied here (also DP_CACHE_DIR/version):
	 * nothing older is accepted, whatever happened to the cached file.
	 * Written by the main thread before the pull thread starts, then by it. */
	atomic_int_least64_t floor;
	/* The nbf of a cached document kept because it is not valid yet (the
	 * clock is behind): it is tried again once the clock reaches it, while
	 * nothing is in use. 0: none. The pull thread's. */
	int64_t kept_nbf;

	/* the pull thread's own (the main thread's before it starts) */
	struct dp_cp_request cfg, status, keyset;
	int keyset_due;                /* ask for the key set now */
	int keyset_absent;             /* the control plane offers none (404): said once */
	char last_error[ERROR_MAX + 1];
	unsigned failures;             /* consecutive failed pulls, for the backoff */
	int status_failing;
	int was_stale;
	uint64_t rng;
	/* The delta tokens applied on the cached full document, one a line:
	 * DP_CACHE_DIR/config.deltas. The pull thread's. */
	struct buf chain;
	int want_full;                 /* a delta did not apply: ask for a full document */
	int sent_since;                /* the long poll in flight asks for a delta */
	int sent_full;                 /* ... or for the whole document (&full=1) */
	int no_deltas;                 /* the control plane refused ?since (an older build) */
	int64_t no_deltas_at;          /* when (deadline_mono_ms) */
};

/* ---- small helpers ---- */

void dp_time_rfc3339(int64_t t, char out[32])
{
	struct tm tm;
	time_t tt = (time_t)t;
	if (!gmtime_r(&tt, &tm) || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, 32, "1970-01-01T00:00:00Z");
}

static uint64_t next_rand(struct dp_pull *p)
{
	/* xorshift64*: jitter only, not a secret. */
	p->rng ^= p->rng >> 12;
	p->rng ^= p->rng << 25;
	p->rng ^= p->rng >> 27;
	return p->rng * 2685821657736338717ull;
}

/* 0.5 s doubling to 30 s, with equal jitter so that a fleet that lost the
 * control plane together does not come back in step. */
static int64_t backoff_ms(struct dp_pull *p)
{
	unsigned shift = p->failures > 7 ? 7 : (p->failures ? p->failures - 1 : 0);
	int64_t d = (int64_t)BACKOFF_MIN_MS << shift;
	if (d > BACKOFF_MAX_MS)
		d = BACKOFF_MAX_MS;
	return d / 2 + (int64_t)(next_rand(p) % (uint64_t)(d / 2 + 1));
}

/* Records the last error for fleet status: printable ASCII only, since it
 * may quote a hostile document's header. */
static void set_error(struct dp_pull *p, const char *fmt, va_list ap)
{
	vsnprintf(p->last_error, sizeof p->last_error, fmt, ap);
	for (char *c = p->last_error; *c; c++)
		if (*c < 0x20 || *c > 0x7e)
			*c = '?';
}

static void fail(struct dp_pull *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct dp_pull *p, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	set_error(p, fmt, ap);
	va_end(ap);
	log_warn(NULL, "config pull failed: %s", p->last_error);
}

static void reject(struct dp_pull *p, enum cfgdoc_result r, const char *where, const char *detail)
{
	atomic_fetch_add(&p->rejected[r], 1);
	snprintf(p->last_error, sizeof p->last_error, "%s document rejected (%s): %s", where,
	         cfgdoc_result_names[r], detail);
	for (char *c = p->last_error; *c; c++)
		if (*c < 0x20 || *c > 0x7e)
			*c = '?';
	log_write(LOG_WARN, NULL, json_pack("{ss}", "reason", cfgdoc_result_names[r]), "%s",
	          p->last_error);
}

/* What is in use, copied out of a read section. */
struct in_use {
	int loaded;
	int64_t ver, exp;
	enum dp_source source;
	size_t tenants, keys;
	int stale;
	int layered_big;               /* the deltas replaced enough to want a full document */
};

static void in_use(struct dp_pull *p, struct in_use *u)
{
	const struct dp_snapshot *s = dp_snaps_enter(p->app->snaps);
	memset(u, 0, sizeof *u);
	if (s) {
		u->loaded = 1;
		u->ver = s->doc->ver;
		u->exp = s->doc->exp;
		u->source = s->source;
		u->tenants = cfgdoc_tenant_count(s->doc);
		u->keys = cfgdoc_key_count(s->doc);
		u->stale = dp_snapshot_stale(s, (int64_t)time(NULL));
		const struct cfgdoc *d = s->doc;
		u->layered_big = d->base && ((long)d->deltas >= p->app->cfg.config_deltas_max ||
		                             (d->ntenants > LAYER_MIN && d->ntenants > d->base->ntenants / 16));
	}
	dp_snaps_leave(p->app->snaps);
}

/* Between pieces of a large document's verify (cfgdoc_verify_opts.pause):
 * the requests this thread shares its cores with go first. Its nice value
 * sets its share of the cores; this, how long a request waits behind it. */
static void pause_for_requests(void)
{
	sched_yield();
}

static struct cfgdoc_verify_opts verify_opts(const struct dp_pull *p, int64_t min_version,
                                             int allow_expired)
{
	struct cfgdoc_verify_opts o = {
		.issuer = DP_CONFIG_ISSUER,
		.region = p->app->cfg.region,
		.cell = p->app->cfg.cell, /* a cell's document only, with DP_CELL */
		.now = (int64_t)time(NULL),
		.skew = p->app->cfg.clock_skew_ms / 1000,
		.min_version = min_version,
		.allow_expired = allow_expired,
		.max_bytes = (size_t)p->app->cfg.config_max_bytes,
		.no_token = 1, /* cached from the bytes pulled or read */
		.pause = pause_for_requests,
	};
	return o;
}

/* Raises the version floor to `ver`, on disk first. A floor that cannot be
 * written is still raised in memory, and the cached document (when it
 * could be written) still carries it across a restart. */
static void floor_raise(struct dp_pull *p, int64_t ver)
{
	char err[512];
	if (ver <= atomic_load(&p->floor))
		return;
	if (dp_floor_write(p->app->cfg.cache_dir, ver, err, sizeof err) != 0)
		log_warn(NULL, "the version floor %lld is not kept on disk: %s", (long long)ver, err);
	atomic_store(&p->floor, ver);
}

/* The document's `ver` must be above this: above the version in use, and
 * at least the floor (the floor's own version is accepted when nothing is
 * in use, e.g. the same document once the clock has caught up). */
static int64_t min_version(struct dp_pull *p, const struct in_use *u)
{
	int64_t f = atomic_load(&p->floor) - 1, v = u->loaded ? u->ver : 0;
	return f > v ? f : v;
}

/* ---- lifecycle ---- */

struct dp_pull *dp_pull_new(struct dp_app *app)
{
	struct dp_pull *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->app = app;
	if (secret_random(&p->rng, sizeof p->rng) != 0 || !p->rng)
		p->rng = (uint64_t)time(NULL) * 6364136223846793005ull + 1;
	p->multi = curl_multi_init();
	if (!p->multi) {
		free(p);
		return NULL;
	}
	return p;
}

/* Failures of the document's bytes: it can never verify, and is set
 * aside. Time (nbf, exp) and version (rollback) failures are not the
 * bytes' fault: a clock behind before NTP, say. Such a file is kept where
 * it is; it is not served, but it still counts for the floor. */
static int bytes_failure(enum cfgdoc_result r)
{
	/* A key not trusted here is not the bytes' fault: the key set that
	 * names it may not be fetched yet (a restart with the control plane
	 * down, a kept set that was damaged). */
	return r != CFGDOC_NOT_YET_VALID && r != CFGDOC_EXPIRED && r != CFGDOC_ROLLBACK && r != CFGDOC_UNKNOWN_KID;
}

/* The most bytes of deltas kept on one document: beyond, the next pull
 * asks for a whole document (the file is rewritten at each delta). */
static size_t chain_max(const struct dp_pull *p)
{
	size_t m = (size_t)p->app->cfg.config_max_bytes / 4;
	return m < 16u << 20 ? m : 16u << 20;
}

/* Replaces DP_CACHE_DIR/config.deltas with p->chain; `ver` is the version
 * it reaches (0: an emptied or cut chain). */
static void chain_store(struct dp_pull *p, int64_t ver)
{
	char path[4096], err[512];
	snprintf(path, sizeof path, "%s/%s", p->app->cfg.cache_dir, DP_DELTAS_FILE);
	if (dp_file_replace(path, p->chain.p ? p->chain.p : "", p->chain.len, 0600, err, sizeof err) == 0)
		return;
	if (ver)
		log_warn(NULL, "configuration version %lld is applied but its delta is not kept on disk: %s "
		         "(a restart serves the cached document and the deltas kept before, when they "
		         "reach the version floor; otherwise it waits for the control plane)", (long long)ver, err);
	else
		log_warn(NULL, "the deltas kept on disk could not be rewritten: %s", err);
}

/* Start-up: applies the deltas of DP_CACHE_DIR/config.deltas that lead on
 * from `doc`, in order, and returns the state reached (doc itself when
 * none applies). The first that does not verify or apply ends the replay;
 * the file then keeps only those before it. */
static struct cfgdoc *replay_chain(struct dp_pull *p, struct cfgdoc *doc)
{
	const struct dp_config *c = &p->app->cfg;
	char err[512], detail[512], *text = NULL;
	size_t len = 0, applied = 0;

	buf_free(&p->chain);
	memset(&p->chain, 0, sizeof p->chain);
	enum dp_cache_read rd = dp_cache_read_file(c->cache_dir, DP_DELTAS_FILE,
	                                           (size_t)c->config_max_bytes * 4, &text, &len, err, sizeof err);
	if (rd != DP_CACHE_FOUND) {
		if (rd == DP_CACHE_ERROR)
			log_warn(NULL, "cached deltas ignored: %s", err);
		return doc;
	}
	int dropped = 0;
	for (char *line = text, *end; line < text + len && *line; line = end + 1) {
		end = strchr(line, '\n');
		if (!end)
			end = text + len;
		*end = '\0';
		struct cfgdoc *next = NULL;
		int is_delta = 0;
		struct cfgdoc_verify_opts o = verify_opts(p, doc->ver, 1);
		const struct cfgdoc_trust *trust = trust_store_get(p->app->trust);
		enum cfgdoc_result r = cfgdoc_verify_any(line, strlen(line), trust, &o, doc, &next,
		                                         &is_delta, detail, sizeof detail);
		trust_store_put(p->app->trust, trust);
		if (r != CFGDOC_OK || !is_delta) {
			cfgdoc_free(next);
			reject(p, r != CFGDOC_OK ? r : CFGDOC_BAD_CONTENT, "cached delta",
			       r != CFGDOC_OK ? detail : "a full document in the delta chain");
			/* Bytes that can never apply are dropped from the file; a
			 * delta refused on time only (a clock behind at boot) is
			 * left there until the next apply rewrites the file. */
			dropped = r != CFGDOC_NOT_YET_VALID;
			break;
		}
		cfgdoc_free(doc);
		doc = next;
		applied++;
		buf_append(&p->chain, line, strlen(line));
		buf_append(&p->chain, "\n", 1);
	}
	free(text);
	if (dropped)
		chain_store(p, 0);
	if (applied)
		log_info(NULL, "%zu cached delta(s) applied on the cached document: version %lld", applied,
		         (long long)doc->ver);
	return doc;
}

/* Loads DP_CACHE_DIR/config.jwt into use if it verifies (see
 * dp_pull_load_cache); any thread, while nothing else publishes. */
static void load_cache(struct dp_pull *p)
{
	const struct dp_config *c = &p->app->cfg;
	char err[512], detail[512];
	char *tok = NULL;
	size_t len;
	struct cfgdoc *doc = NULL;
	struct in_use u;

	p->kept_nbf = 0;
	switch (dp_cache_read(c->cache_dir, (size_t)c->config_max_bytes, &tok, &len, err, sizeof err)) {
	case DP_CACHE_ABSENT:
		log_info(NULL, "no cached configuration in %s; waiting for the control plane", c->cache_dir);
		return;
	case DP_CACHE_ERROR:
		log_warn(NULL, "cached configuration ignored: %s", err);
		return;
	case DP_CACHE_FOUND:
		break;
	}
	in_use(p, &u);
	/* A cell's cached document may be older than the floor: its deltas
	 * (config.deltas) lead on from it, and the version they reach is
	 * what the floor is held against. */
	int64_t floor_min = min_version(p, &u);
	struct cfgdoc_verify_opts o = verify_opts(p, c->cell ? 0 : floor_min, 1);
	const struct cfgdoc_trust *trust = trust_store_get(p->app->trust);
	enum cfgdoc_result r = cfgdoc_verify(tok, len, trust, &o, &doc, detail, sizeof detail);
	if (r == CFGDOC_NOT_YET_VALID) {
		/* Its signature and claims are good: its version still raises the
		 * floor, and the clock is waited for. Verified again with a clock
		 * far ahead only to read them. */
		struct cfgdoc *ahead = NULL;
		char ignored[64];
		struct cfgdoc_verify_opts later = o;
		later.now = INT64_C(1) << 40;
		later.min_version = 0;
		if (cfgdoc_verify(tok, len, trust, &later, &ahead, ignored, sizeof ignored) == CFGDOC_OK) {
			floor_raise(p, ahead->ver);
			p->kept_nbf = ahead->nbf;
			cfgdoc_free(ahead);
		}
	}
	trust_store_put(p->app->trust, trust);
	free(tok);
	if (r != CFGDOC_OK) {
		reject(p, r, "cached", detail);
		if (!bytes_failure(r)) {
			log_warn(NULL, "the cached configuration is kept in %s/%s but not served (%s)%s",
			         c->cache_dir, DP_CACHE_FILE, cfgdoc_result_names[r],
			         r == CFGDOC_NOT_YET_VALID ? "; it is used once this clock reaches its nbf" : "");
			return;
		}
		if (dp_cache_reject(c->cache_dir, err, sizeof err) != 0)
			log_warn(NULL, "%s", err);
		else
			log_warn(NULL, "the rejected cache file was renamed %s/%s", c->cache_dir, DP_CACHE_REJECTED);
		return;
	}
	if (c->cell && (doc = replay_chain(p, doc))->ver <= floor_min) {
		snprintf(detail, sizeof detail, "the cached document and its deltas reach version %lld, not newer "
		         "than %lld, the highest applied", (long long)doc->ver, (long long)floor_min);
		reject(p, CFGDOC_ROLLBACK, "cached", detail);
		log_warn(NULL, "the cached configuration is kept in %s but not served (rollback)", c->cache_dir);
		cfgdoc_free(doc);
		return;
	}
	int64_t ver = doc->ver, exp = doc->exp;
	size_t nt = cfgdoc_tenant_count(doc), nk = cfgdoc_key_count(doc);
	/* A cache written before the floor was kept on its own brings it. */
	floor_raise(p, ver);
	struct dp_snapshot *s = dp_snapshot_new(doc, DP_SOURCE_CACHE);
	if (!s) {
		log_error(NULL, "out of memory loading the cached configuration");
		return;
	}
	atomic_fetch_add(&p->applied, 1);
	dp_snaps_publish(p->app->snaps, s);
	dp_cell_wait_installed(p->app->cell_wait);
	char when[32];
	dp_time_rfc3339(exp, when);
	int stale = (int64_t)time(NULL) >= exp;
	log_write(stale ? LOG_WARN : LOG_INFO, NULL,
	          json_pack("{sI sI sI ss sb}", "version", (json_int_t)ver, "tenants", (json_int_t)nt,
	                    "keys", (json_int_t)nk, "expires_at", when, "stale", stale),
	          "serving the cached configuration%s", stale ? ", which has expired" : "");
}

void dp_pull_load_cache(struct dp_pull *p)
{
	const struct dp_config *c = &p->app->cfg;
	char err[512];
	int64_t floor;

	if (dp_floor_read(c->cache_dir, &floor, err, sizeof err) != 0)
		/* Not fatal: the cached document, when there is one, still
		 * holds a floor; the file is rewritten at the next apply. */
		log_error(NULL, "the version floor is unreadable (%s); rollbacks are measured against the "
		                "cached document only", err);
	atomic_store(&p->floor, floor);
	load_cache(p);
}

/* ---- transfers ---- */

static void transfer_end(struct dp_pull *p, struct dp_cp_request *t)
{
	if (t->easy)
		curl_multi_remove_handle(p->multi, t->easy);
	dp_cp_request_end(t);
}

/* Prepares `t` for `path` under the control plane's base URL, with the
 * region credential. The caller adds its own headers and options, then
 * transfer_add(). */
static int transfer_begin(struct dp_pull *p, struct dp_cp_request *t, const char *path, size_t max,
                          long total_ms)
{
	return dp_cp_request_begin(t, &p->app->cfg, path, max, total_ms, &p->stop);
}

static int transfer_add(struct dp_pull *p, struct dp_cp_request *t)
{
	return curl_multi_add_handle(p->multi, t->easy) == CURLM_OK ? 0 : -1;
}

/* ---- the config long poll ---- */

static int start_config(struct dp_pull *p)
{
	const struct dp_config *c = &p->app->cfg;
	struct in_use u;
	char path[256], inm[64];
	long wait_s = (long)(c->pull_wait_ms / 1000);

	in_use(p, &u);
	/* A cell's data plane asks for a delta from the version it holds. A
	 * control plane that refused ?since is asked again after a while:
	 * one replica of an older build during a rolling upgrade. */
	if (p->no_deltas && deadline_mono_ms() - p->no_deltas_at > NO_DELTAS_RETRY_MS)
		p->no_deltas = 0;
	p->sent_since = c->cell && !p->no_deltas;
	/* since=0 with nothing in use: the newest whole document published,
	 * never one built for this request. */
	p->sent_full = p->sent_since && u.loaded && (p->want_full || u.layered_big || p->chain.len > chain_max(p));
	if (p->sent_since)
		snprintf(path, sizeof path, "/v1/cells/%s/config?wait=%ld&since=%lld%s", c->cell, wait_s,
		         (long long)(u.loaded ? u.ver : 0), p->sent_full ? "&full=1" : "");
	else if (c->cell)
		snprintf(path, sizeof path, "/v1/cells/%s/config?wait=%ld", c->cell, wait_s);
	else
		snprintf(path, sizeof path, "/v1/regions/%s/config?wait=%ld", c->region, wait_s);
	if (transfer_begin(p, &p->cfg, path, (size_t)c->config_max_bytes, wait_s * 1000 + PULL_GRACE_MS))
		return -1;
	if (dp_cp_request_header(&p->cfg, "Accept: application/jwt") != 0)
		return -1;
	if (u.loaded) {
		snprintf(inm, sizeof inm, "If-None-Match: \"%lld\"", (long long)u.ver);
		if (dp_cp_request_header(&p->cfg, inm) != 0)
			return -1;
	}
	curl_easy_setopt(p->cfg.easy, CURLOPT_ACCEPT_ENCODING, "");
	return transfer_add(p, &p->cfg);
}

/* A 200: verify, cache, swap in. Returns 1 when the document was applied. */
static int apply(struct dp_pull *p)
{
	const struct dp_config *c = &p->app->cfg;
	struct in_use u;
	struct cfgdoc *doc = NULL;
	char detail[512], err[512], when[32];

	int64_t t0 = deadline_mono_ms();
	in_use(p, &u);
	/* Asked for the whole document, one of the version in use is taken
	 * too: it replaces the deltas piled on the document (a delta of that
	 * version would not lead on from the state, and is refused). */
	struct cfgdoc_verify_opts o = verify_opts(p, min_version(p, &u) - (p->sent_full && u.loaded ? 1 : 0), 0);
	/* The state in use is only ever replaced by this thread: it stays
	 * valid while a delta is applied to it. */
	const struct dp_snapshot *cur = dp_snaps_enter(p->app->snaps);
	int is_delta = 0;
	/* A whole document is written to disk while it is verified, on a
	 * thread of its own (at 1,000,000 tenants the write and its fsync take
	 * over a second); it replaces the cached one only once verified. An
	 * answer to a delta request is staged only when large: a delta is
	 * written with the chain after it applies. */
	struct dp_cache_stage stage;
	int expect_full = !p->sent_since || p->sent_full || !u.loaded;
	int staged = (expect_full || p->cfg.body.len > CACHE_STAGE_MIN) && p->cfg.body.p &&
	             dp_cache_stage_begin(&stage, c->cache_dir, p->cfg.body.p, p->cfg.body.len) == 0;
	const struct cfgdoc_trust *trust = trust_store_get(p->app->trust);
	enum cfgdoc_result r = cfgdoc_verify_any(p->cfg.body.p ? p->cfg.body.p : "", p->cfg.body.len,
	                                         trust, &o, cur ? cur->doc : NULL, &doc, &is_delta,
	                                         detail, sizeof detail);
	trust_store_put(p->app->trust, trust);
	dp_snaps_leave(p->app->snaps);
	/* Signed with a key not trusted here: a rotation this data plane has
	 * not followed yet. The key set is asked for at once. */
	if (r == CFGDOC_UNKNOWN_KID)
		p->keyset_due = 1;
	if (staged && (r != CFGDOC_OK || is_delta)) {
		dp_cache_stage_abort(&stage);
		staged = 0;
	}
	if (r != CFGDOC_OK) {
		reject(p, r, is_delta ? "pulled delta" : "pulled", detail);
		/* A delta for another base, one that does not reach the state it
		 * names, or any answer to a delta request that does not verify
		 * (an expired delta, say): the next pull asks for the whole
		 * document, so that no refused answer is asked for again. */
		if (is_delta || p->sent_since)
			p->want_full = 1;
		return 0;
	}
	if (!is_delta) {
		/* A document that cannot be cached is still applied: serving the
		 * newer configuration matters more; a restart would pull it again. */
		if ((staged ? dp_cache_stage_commit(&stage, err, sizeof err)
		            : dp_cache_write(c->cache_dir, p->cfg.body.p, p->cfg.body.len, err, sizeof err)) != 0)
			log_warn(NULL, "configuration version %lld is applied but not cached: %s",
			         (long long)doc->ver, err);
		p->want_full = 0;
		if (p->chain.len) {
			buf_free(&p->chain);
			memset(&p->chain, 0, sizeof p->chain);
			chain_store(p, 0);
		}
	} else {
		buf_append(&p->chain, p->cfg.body.p, p->cfg.body.len);
		buf_append(&p->chain, "\n", 1);
		chain_store(p, doc->ver);
	}
	atomic_fetch_add(&p->deltas_applied, (unsigned long)is_delta);
	int64_t ver = doc->ver;
	size_t nt = cfgdoc_tenant_count(doc), nk = cfgdoc_key_count(doc);
	floor_raise(p, ver);
	dp_time_rfc3339(doc->exp, when);
	struct dp_snapshot *s = dp_snapshot_new(doc, DP_SOURCE_CONTROL_PLANE);
	if (!s) {
		fail(p, "out of memory applying configuration version %lld", (long long)ver);
		return 0;
	}
	/* Counted and timed first, so that whoever sees the new version sees
	 * it counted (the swap itself is a pointer's store). */
	int64_t took = deadline_mono_ms() - t0;
	atomic_store(&p->apply_ms, (unsigned long long)took);
	atomic_fetch_add(&p->applied, 1);
	atomic_fetch_add(&p->pulls[PULL_UPDATED], 1);
	dp_snaps_publish(p->app->snaps, s);
	dp_cell_wait_installed(p->app->cell_wait);
	log_write(LOG_INFO, NULL,
	          json_pack("{sI sI sI sI ss ss sI}", "version", (json_int_t)ver, "previous",
	                    (json_int_t)(u.loaded ? u.ver : 0), "tenants", (json_int_t)nt, "keys",
	                    (json_int_t)nk, "expires_at", when, "kind",
	                    is_delta ? CFGDOC_KIND_DELTA : CFGDOC_KIND_FULL, "apply_ms", (json_int_t)took),
	          "configuration version %lld applied", (long long)ver);
	return 1;
}

/* The long poll ended with `rc`. Returns the delay before the next one. */
static int64_t finish_config(struct dp_pull *p, CURLcode rc, int64_t started)
{
	long status = 0;
	enum outcome o = PULL_ERROR;

	curl_easy_getinfo(p->cfg.easy, CURLINFO_RESPONSE_CODE, &status);
	if (p->cfg.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
		char detail[128];
		snprintf(detail, sizeof detail, "larger than DP_CONFIG_MAX_BYTES (%ld bytes)",
		         p->app->cfg.config_max_bytes);
		reject(p, CFGDOC_MALFORMED, "pulled", detail);
	} else if (rc != CURLE_OK) {
		fail(p, "control plane unreachable: %s", dp_cp_request_error(&p->cfg, rc));
	} else if (status == 304) {
		o = PULL_NOT_MODIFIED;
	} else if (status == 200) {
		o = apply(p) ? PULL_UPDATED : PULL_ERROR;
	} else if (status == 400 && p->sent_since) {
		/* A control plane of a build without deltas refuses the unknown
		 * parameter: ask it for whole documents from now on. */
		log_warn(NULL, "the control plane does not answer delta documents (HTTP 400 to ?since); "
		               "pulling whole documents");
		p->no_deltas = 1;
		p->no_deltas_at = deadline_mono_ms();
		o = PULL_NOT_MODIFIED;
	} else if (dp_cp_config_error(status)) {
		/* Logged by dp_cp_errors_note, at most once a minute. */
		snprintf(p->last_error, sizeof p->last_error, "%s (HTTP %ld)",
		         status == 404 ? (p->app->cfg.cell ? "the control plane has no such route or cell: DP_CONTROL_PLANE_URL or DP_CELL is wrong"
		                                           : "the control plane has no such route or region: DP_CONTROL_PLANE_URL or DP_REGION is wrong")
		                       : (p->app->cfg.cell ? "the control plane refused DP_CELL_TOKEN"
		                                           : "the control plane refused DP_REGION_TOKEN"),
		         status);
		dp_cp_errors_note(DP_CP_CONFIG, status,
		                  p->app->cfg.cell ? "GET /v1/cells/{cell}/config" : "GET /v1/regions/{region}/config");
	} else {
		fail(p, "the control plane answered HTTP %ld", status);
	}
	transfer_end(p, &p->cfg);
	if (o != PULL_UPDATED) /* counted by apply() */
		atomic_fetch_add(&p->pulls[o], 1);
	if (o == PULL_ERROR) {
		p->failures++;
		return backoff_ms(p);
	}
	if (p->failures)
		log_info(NULL, "configuration pull succeeded after %u failure(s)", p->failures);
	p->failures = 0;
	p->last_error[0] = '\0';
	atomic_store(&p->last_ok, (int64_t)time(NULL));
	if (o == PULL_NOT_MODIFIED) {
		/* A control plane that answers 304 at once is not polled in a loop. */
		int64_t left = started + POLL_FLOOR_MS - deadline_mono_ms();
		return left > 0 ? left : 0;
	}
	return 0;
}

/* ---- the signed key set ---- */

static struct log_limit keyset_refused_limit;

static int start_keyset(struct dp_pull *p)
{
	char inm[64];
	int64_t held = trust_store_version(p->app->trust);
	if (transfer_begin(p, &p->keyset, "/v1/signing-keys", KEYSET_MAX_BYTES, KEYSET_TIMEOUT_MS))
		return -1;
	if (held > 0) {
		snprintf(inm, sizeof inm, "If-None-Match: \"%lld\"", (long long)held);
		if (dp_cp_request_header(&p->keyset, inm) != 0)
			return -1;
	}
	return transfer_add(p, &p->keyset);
}

/* The key set's request ended with `rc`. Returns 1 when the keys trusted
 * here changed (a document refused for its key is then asked for again). */
static int finish_keyset(struct dp_pull *p, CURLcode rc)
{
	long status = 0;
	char err[512];
	int changed = 0;
	curl_easy_getinfo(p->keyset.easy, CURLINFO_RESPONSE_CODE, &status);
	if (rc != CURLE_OK) {
		log_warn_limited(NULL, "signed key set not fetched: %s", dp_cp_request_error(&p->keyset, rc));
	} else if (status == 200) {
		enum keyset_result r = trust_store_apply(p->app->trust, p->keyset.body.p ? p->keyset.body.p : "",
		                                         p->keyset.body.len, err, sizeof err);
		atomic_fetch_add(&p->keysets[r], 1);
		if (r == KEYSET_OK) {
			const struct cfgdoc_trust *t = trust_store_get(p->app->trust);
			log_info(NULL, "now trusting the %zu signing key(s) of key set version %lld",
			         t->n, (long long)trust_store_version(p->app->trust));
			trust_store_put(p->app->trust, t);
			changed = 1;
		} else if (r != KEYSET_SAME) {
			log_write_limited(&keyset_refused_limit, LOG_ERROR, NULL, NULL, "signed key set refused (%s): %s",
			                  keyset_result_names[r], err);
		}
	} else if (status == 304) {
		atomic_fetch_add(&p->keysets[KEYSET_SAME], 1);
	} else if (status == 404) {
		if (!p->keyset_absent)
			log_info(NULL, "the control plane offers no signed key set (its keys are kept in CP_SIGNING_KEYS_DIR, or it is of an older build): "
			               "the keys trusted now stay until it does");
		p->keyset_absent = 1;
	} else {
		log_warn_limited(NULL, "signed key set not fetched: the control plane answered HTTP %ld", status);
	}
	transfer_end(p, &p->keyset);
	return changed;
}

/* ---- fleet status ---- */

static int start_status(struct dp_pull *p)
{
	const struct dp_config *c = &p->app->cfg;
	struct in_use u;
	char path[256], when[32];
	int64_t ok = atomic_load(&p->last_ok);
	int ret = -1;

	in_use(p, &u);
	if (ok)
		dp_time_rfc3339(ok, when);
	json_t *body = json_pack("{ss so so so so sb}", "instance", p->app->instance, "version",
	                         u.loaded ? json_integer(u.ver) : json_null(), "source",
	                         u.loaded ? json_string(dp_source_names[u.source]) : json_null(),
	                         "last_pull_ok_at", ok ? json_string(when) : json_null(), "last_error",
	                         p->last_error[0] ? json_string(p->last_error) : json_null(), "stale",
	                         u.stale);
	/* Only with DP_CELL: a control plane from before cells knows no such member. */
	if (body && c->cell && json_object_set_new(body, "cell", json_string(c->cell)) != 0) {
		json_decref(body);
		body = NULL;
	}
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (!text)
		goto out;
	snprintf(path, sizeof path, "/v1/regions/%s/status", c->region);
	if (transfer_begin(p, &p->status, path, STATUS_BODY_MAX, STATUS_TIMEOUT_MS))
		goto out;
	if (dp_cp_request_header(&p->status, "Content-Type: application/json") != 0)
		goto out;
	curl_easy_setopt(p->status.easy, CURLOPT_COPYPOSTFIELDS, text);
	ret = transfer_add(p, &p->status);
out:
	free(text);
	return ret;
}

static void finish_status(struct dp_pull *p, CURLcode rc)
{
	long status = 0;
	curl_easy_getinfo(p->status.easy, CURLINFO_RESPONSE_CODE, &status);
	int ok = rc == CURLE_OK && status >= 200 && status < 300;
	if (rc == CURLE_OK && dp_cp_config_error(status))
		dp_cp_errors_note(DP_CP_STATUS, status, "POST /v1/regions/{region}/status");
	/* Best effort: said once when it starts failing, not on every attempt. */
	else if (!ok && !p->status_failing)
		log_warn(NULL, "fleet status not accepted: %s",
		         rc != CURLE_OK ? dp_cp_request_error(&p->status, rc)
		                        : (status == 401 || status == 403 ? (p->app->cfg.cell ? "DP_CELL_TOKEN refused" : "DP_REGION_TOKEN refused")
		                                                          : "unexpected HTTP status"));
	p->status_failing = !ok;
	transfer_end(p, &p->status);
}

/* ---- the thread ---- */

static void *run(void *arg)
{
	struct dp_pull *p = arg;
	log_set_task("config_pull");
	int64_t next_pull = 0, next_status = 0, next_keyset = 0, started = 0, want_next = 0;
	int cfg_on = 0, status_on = 0, status_due = 1, keyset_on = 0;

	/* Verifying and indexing a large document is CPU work that should not
	 * take cores from the requests being served meanwhile: this thread
	 * yields to them (on Linux a thread's nice value is its own). Nice 5,
	 * not more: under a load that fills every core, a lower share would
	 * delay the apply itself by seconds. */
	if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 5) != 0)
		log_warn(NULL, "config pull: could not lower this thread's priority");

	while (!atomic_load(&p->stop)) {
		int64_t now = deadline_mono_ms();
		struct in_use u;

		in_use(p, &u);
		/* A cached document kept for a clock that was behind is put in
		 * use once the clock reaches it, if nothing newer came meanwhile. */
		if (!u.loaded && p->kept_nbf &&
		    (int64_t)time(NULL) + p->app->cfg.clock_skew_ms / 1000 >= p->kept_nbf) {
			load_cache(p);
			in_use(p, &u);
			status_due = 1;
		}
		if (u.stale != p->was_stale) {
			if (u.stale)
				log_warn(NULL, "the configuration in use (version %lld) has expired; tenant routes %s",
				         (long long)u.ver,
				         p->app->cfg.stale_policy == DP_STALE_FAIL_CLOSED ? "answer 503" : "keep serving");
			p->was_stale = u.stale;
			status_due = 1;
		}
		if (!cfg_on && now >= next_pull) {
			started = now;
			if (start_config(p) == 0) {
				cfg_on = 1;
			} else {
				transfer_end(p, &p->cfg);
				fail(p, "cannot start a pull (out of memory)");
				atomic_fetch_add(&p->pulls[PULL_ERROR], 1);
				p->failures++;
				next_pull = now + backoff_ms(p);
				status_due = 1;
			}
		}
		/* A key a request met: asked for at once, once per floor. */
		if (now >= want_next && atomic_exchange(&p->keyset_wanted, 0)) {
			p->keyset_due = 1;
			want_next = now + KEYSET_WANT_FLOOR_MS;
		}
		if (!keyset_on && (p->keyset_due || now >= next_keyset)) {
			p->keyset_due = 0;
			if (start_keyset(p) == 0) {
				keyset_on = 1;
			} else {
				transfer_end(p, &p->keyset);
				next_keyset = now + p->app->cfg.keyset_interval_ms;
			}
		}
		if (!status_on && (status_due || now >= next_status)) {
			status_due = 0;
			if (start_status(p) == 0) {
				status_on = 1;
			} else {
				transfer_end(p, &p->status);
				next_status = now + STATUS_INTERVAL_MS;
			}
		}

		int running, left;
		curl_multi_perform(p->multi, &running);
		CURLMsg *m;
		while ((m = curl_multi_info_read(p->multi, &left)) != NULL) {
			if (m->msg != CURLMSG_DONE)
				continue;
			/* Copied out: the message does not survive removing its handle. */
			CURL *easy = m->easy_handle;
			CURLcode rc = m->data.result;
			if (rc == CURLE_ABORTED_BY_CALLBACK)
				continue; /* stopping: not a failure to report */
			if (cfg_on && easy == p->cfg.easy) {
				next_pull = deadline_mono_ms() + finish_config(p, rc, started);
				cfg_on = 0;
				status_due = 1;
			} else if (status_on && easy == p->status.easy) {
				finish_status(p, rc);
				status_on = 0;
				next_status = deadline_mono_ms() + STATUS_INTERVAL_MS;
			} else if (keyset_on && easy == p->keyset.easy) {
				/* New keys: a document refused for its key is asked for again now. */
				if (finish_keyset(p, rc) && !cfg_on)
					next_pull = 0;
				keyset_on = 0;
				next_keyset = deadline_mono_ms() + p->app->cfg.keyset_interval_ms;
			}
		}
		dp_snaps_reclaim(p->app->snaps);

		now = deadline_mono_ms();
		int64_t timeout = LOOP_MAX_MS;
		if (!cfg_on && next_pull - now < timeout)
			timeout = next_pull - now;
		if (!status_on && next_status - now < timeout)
			timeout = next_status - now;
		if (!keyset_on && (p->keyset_due || next_keyset - now < timeout))
			timeout = p->keyset_due ? 0 : next_keyset - now;
		if (atomic_load(&p->keyset_wanted) && want_next - now < timeout)
			timeout = want_next - now;
		if (!status_on && status_due)
			timeout = 0;
		if (timeout > 0)
			curl_multi_poll(p->multi, NULL, 0, (int)timeout, NULL);
	}
	transfer_end(p, &p->cfg);
	transfer_end(p, &p->status);
	transfer_end(p, &p->keyset);
	return NULL;
}

int dp_pull_start(struct dp_pull *p, char *err, size_t errlen)
{
	int rc = pthread_create(&p->thread, NULL, run, p);
	if (rc != 0) {
		snprintf(err, errlen, "cannot start the configuration pull thread: %s", strerror(rc));
		return -1;
	}
	p->running = 1;
	return 0;
}

void dp_pull_want_keyset(struct dp_pull *p)
{
	if (!p || atomic_exchange(&p->keyset_wanted, 1))
		return; /* already wanted: the loop was woken for it */
	curl_multi_wakeup(p->multi);
}

void dp_pull_stop(struct dp_pull *p)
{
	if (!p || !p->running)
		return;
	atomic_store(&p->stop, 1);
	curl_multi_wakeup(p->multi);
	pthread_join(p->thread, NULL);
	p->running = 0;
}

void dp_pull_free(struct dp_pull *p)
{
	if (!p)
		return;
	dp_pull_stop(p);
	transfer_end(p, &p->cfg);
	transfer_end(p, &p->status);
	transfer_end(p, &p->keyset);
	curl_multi_cleanup(p->multi);
	buf_free(&p->chain);
	free(p);
}

int64_t dp_pull_last_ok(const struct dp_pull *p)
{
	return p ? atomic_load(&p->last_ok) : 0;
}

/* ---- metrics ---- */

void dp_pull_metrics(struct dp_pull *p, FILE *out)
{
	struct in_use u;
	if (!p)
		return;
	in_use(p, &u);
	fprintf(out,
	        "# HELP dp_config_version Version of the configuration document in use (0: none).\n"
	        "# TYPE dp_config_version gauge\n"
	        "dp_config_version %lld\n"
	        "# HELP dp_config_expires_timestamp_seconds When the document in use expires, in unix seconds (0: none).\n"
	        "# TYPE dp_config_expires_timestamp_seconds gauge\n"
	        "dp_config_expires_timestamp_seconds %lld\n"
	        "# HELP dp_config_stale 1 when the document in use has passed its expiry.\n"
	        "# TYPE dp_config_stale gauge\n"
	        "dp_config_stale %d\n"
	        "# HELP dp_config_tenants Tenants in the document in use.\n"
	        "# TYPE dp_config_tenants gauge\n"
	        "dp_config_tenants %zu\n"
	        "# HELP dp_config_keys API keys in the document in use.\n"
	        "# TYPE dp_config_keys gauge\n"
	        "dp_config_keys %zu\n"
	        "# HELP dp_config_version_floor Highest version ever applied here (kept in DP_CACHE_DIR/version): an older document is refused as a rollback.\n"
	        "# TYPE dp_config_version_floor gauge\n"
	        "dp_config_version_floor %lld\n"
	        "# HELP dp_config_applied_total Verified documents put in use (from the cache or the control plane).\n"
	        "# TYPE dp_config_applied_total counter\n"
	        "dp_config_applied_total %llu\n"
	        "# HELP dp_config_deltas_applied_total Delta documents among them (a cell's data plane).\n"
	        "# TYPE dp_config_deltas_applied_total counter\n"
	        "dp_config_deltas_applied_total %lu\n"
	        "# HELP dp_config_apply_seconds Time the last document pulled from the control plane took to verify, cache and put in use (0: none yet).\n"
	        "# TYPE dp_config_apply_seconds gauge\n"
	        "dp_config_apply_seconds %.3f\n"
	        "# HELP dp_config_rejected_total Documents refused, by reason.\n"
	        "# TYPE dp_config_rejected_total counter\n",
	        (long long)u.ver, (long long)u.exp, u.stale, u.tenants, u.keys,
	        (long long)atomic_load(&p->floor), (unsigned long long)atomic_load(&p->applied), atomic_load(&p->deltas_applied),
	        (double)atomic_load(&p->apply_ms) / 1e3);
	for (int r = 1; r < CFGDOC__COUNT; r++)
		fprintf(out, "dp_config_rejected_total{reason=\"%s\"} %llu\n", cfgdoc_result_names[r],
		        (unsigned long long)atomic_load(&p->rejected[r]));
	fprintf(out, "# HELP dp_config_pulls_total Pulls from the control plane, by outcome.\n"
	             "# TYPE dp_config_pulls_total counter\n");
	for (int o = 0; o < PULL__COUNT; o++)
		fprintf(out, "dp_config_pulls_total{outcome=\"%s\"} %llu\n", outcome_names[o],
		        (unsigned long long)atomic_load(&p->pulls[o]));
	fprintf(out, "# HELP dp_keyset_version Version of the signed key set whose keys are trusted here (0: the trust bundle's).\n"
	             "# TYPE dp_keyset_version gauge\ndp_keyset_version %lld\n"
	             "# HELP dp_keysets_total Signed key sets fetched from the control plane, by outcome.\n"
	             "# TYPE dp_keysets_total counter\n",
	        (long long)trust_store_version(p->app->trust));
	for (int r = 0; r < KEYSET__COUNT; r++)
		fprintf(out, "dp_keysets_total{outcome=\"%s\"} %llu\n", keyset_result_names[r],
		        (unsigned long long)atomic_load(&p->keysets[r]));
}
