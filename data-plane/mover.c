/* mover: a region's tenant-move agent. Claims the moves whose target is in
 * its region from the control plane and drives each one, step by step,
 * between the source and the target cells' data planes.
 *
 *   mover           run: claim, drive, claim again (MOVER_INTERVAL when
 *                   nothing is due), serving /healthz and /metrics on
 *                   MOVER_LISTEN
 *   mover --once    drive every move due, then exit 0 when nothing is due
 *   mover --help    print usage and the configuration table
 *
 * The control plane holds each move's state and a lease on it; the target
 * cell holds the copy's position (stored with each page in the same
 * transaction). The mover holds nothing that matters: killed at any point,
 * it claims the move again and resumes from the target's progress and the
 * move's state, every step being idempotent at the other end (pages are
 * inserted ON CONFLICT DO NOTHING, the fence and the records are set, the
 * erasures are bounded batches). A control plane that is down or hung is
 * called again with capped backoff until it answers; a 409 from it means
 * this move is not ours to drive (aborted, or leased to another mover), so
 * the mover leaves it. The region credential and the move credentials are
 * the only secrets: never logged. */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "deadline.h"
#include "http.h"
#include "jscan.h"
#include "log.h"
#include "mover_call.h"
#include "names.h"
#include "svc.h"
#include "url.h"

#define PROG "mover"
#define MAX_CELLS 64
#define CP_MAX_BYTES (1u << 20)             /* largest control-plane answer */
#define DP_MAX_BYTES (80u << 20)            /* a page: 5000 rows, 64 MiB at the target */
#define RECORDS_MAX_BYTES (256u << 20)      /* a source's idempotency records */
#define CONNECT_TIMEOUT_MS 5000
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 10000
#define REPORT_EVERY_MS 1000                /* progress (and lease renewal) */
#define DRAIN_POLL_MS 20                    /* an empty page during the drain */
/* A source that does not say since when its records are complete (no
 * safe_since_us): records are copied again from this long before the
 * newest one seen, as one created earlier may have completed after. */
#define RECORDS_OVERLAP_US (120LL * 1000000)
#define DEFER_MIN_MS 10000                  /* a move waiting on something else */
#define POS_MAX 48                          /* "<tx_id>.<seq>", two 20-digit numbers */
#define DIGEST_MAX 64

struct mover_config {
	struct cfg_addr listen;
	const char *region;
	const char *control_plane_url;
	const char *ca_file;        /* NULL: the system's trust store */
	const char *region_token;   /* secret: never logged */
	const char *cells;
	const char *id;
	long batch;
	long cutover_lag;
	int64_t interval_ms;
	int64_t http_timeout_ms;
	int log_level;
};

#define O(f) offsetof(struct mover_config, f)
static const struct cfg_var mover_vars[] = {
	{ "MOVER_LISTEN", CFG_ADDR, "127.0.0.1:8095", 0, O(listen), 0, 0, NULL,
	  "Address and port of /healthz and /metrics." },
	{ "MOVER_REGION", CFG_STR, NULL, 1, O(region), 0, 0, NULL,
	  "The region this agent moves tenants into ([a-z][a-z0-9-]*): it claims the moves whose target is there." },
	{ "MOVER_CONTROL_PLANE_URL", CFG_STR, NULL, 1, O(control_plane_url), 0, 0, NULL,
	  "Base URL of the control plane (POST /v1/regions/{region}/moves/claim)." },
	{ "MOVER_CA_FILE", CFG_STR, NULL, 0, O(ca_file), 0, 0, NULL,
	  "CA certificate (PEM) that the https certificates of the control plane and of the cells must chain to: pinned, the system's trust store is then not used. Requires an https:// MOVER_CONTROL_PLANE_URL." },
	{ "MOVER_REGION_TOKEN", CFG_SECRET, NULL, 1, O(region_token), 0, 0, NULL,
	  "The region's credential at the control plane." },
	{ "MOVER_CELLS", CFG_STR, NULL, 1, O(cells), 0, 0, NULL,
	  "Space-separated <cell>=<base URL> of every cell a move may read from or write to (each cell's data planes, not the router)." },
	{ "MOVER_ID", CFG_STR, NULL, 0, O(id), 0, 0, NULL,
	  "This agent's name in the moves' leases (1 to 64 of A-Za-z0-9._-); unset: mover-<region>, so that a restarted mover takes its lease back at once." },
	{ "MOVER_BATCH", CFG_INT, "5000", 0, O(batch), 1, 5000, NULL,
	  "Events per page copied from the source to the target." },
	{ "MOVER_CUTOVER_LAG", CFG_INT, "1000", 0, O(cutover_lag), 0, 100000000, NULL,
	  "A move goes to cutover (writes paused) once the target is at most this many events behind the source." },
	{ "MOVER_INTERVAL", CFG_DURATION, "1s", 0, O(interval_ms), 100, 3600000, NULL,
	  "Pause between two claims while no move is due." },
	{ "MOVER_HTTP_TIMEOUT", CFG_DURATION, "30s", 0, O(http_timeout_ms), 1000, 600000, NULL,
	  "Longest call to the control plane or a cell; a call that takes longer is tried again." },
	{ "MOVER_LOG_LEVEL", CFG_ENUM, "info", 0, O(log_level), 0, 0, log_level_names,
	  "Lowest level logged." },
	CFG_END
};
#undef O

/* Steps counted in mover_steps_total{step,outcome}. */
enum step { S_CLAIM, S_COPY, S_CATCH_UP, S_CUTOVER, S_FENCE, S_DRAIN, S_RECORDS, S_VERIFY, S_COMPLETE,
	        S_ERASE_SOURCE, S_ERASE_TARGET, S__COUNT };
static const char *const step_names[S__COUNT] = { "claim", "copy", "catch_up", "cutover", "fence", "drain",
	                                              "records", "verify", "complete", "erase_source",
	                                              "erase_target" };
enum step_outcome { OUT_OK, OUT_CONFLICT, OUT_ERROR, OUT__COUNT };
static const char *const step_outcome_names[OUT__COUNT] = { "ok", "conflict", "error" };
enum move_outcome { MO_DONE, MO_FAILED, MO_ABORTED, MO__COUNT };
static const char *const move_outcome_names[MO__COUNT] = { "done", "failed", "aborted" };

struct cell {
	char name[64];
	char url[1024];
};

struct deferred {
	char id[40], state[24];
	int64_t until_ms;
};

struct mover {
	struct mover_config cfg;
	char id[65];
	struct cell cells[MAX_CELLS];
	int ncells;
	int once;
	atomic_int stop;
	uint64_t rng;
	/* cp: the control plane; src: the source's pages; dst: the target;
	 * aux: the source's other routes (a digest while a page is held) */
	struct mover_conn cp, src, dst, aux;
	CURLM *multi;               /* their connections, kept open between calls */
	struct deferred deferred[16];

	atomic_uint_least64_t events_copied, copy_us, last_pause_us;
	atomic_uint_least64_t moves[MO__COUNT], steps[S__COUNT][OUT__COUNT];
};

/* One claimed move, as this run knows it. */
struct move {
	char id[40], tenant[40], state[24];
	char from_region[40], from_cell[64], to_region[40], to_cell[64];
	char *cred;                 /* the move credential: secret, never logged */
	const char *src_url, *dst_url;
	long lease_s;
	/* the copy: the target's progress */
	char next[POS_MAX];
	long long copied;           /* rows the target stored for the move */
	long long lag;              /* source rows beyond `next`, last measured */
	long long lag_base;         /* `copied` when the lag was measured */
	int64_t lag_at_ms, lag_took_ms, reported_ms;
	/* part A of the source's digest: (0.0, pos_a] */
	char pos_a[POS_MAX], digest_a[DIGEST_MAX];
	long long events_a;
	int64_t records_since_us;   /* the next records copy starts here */
	int final;                  /* done, aborted or failed: no progress to report */
	int fenced;                 /* the fence may be up: an error fails the move */
	char error[512];
	struct buf page;            /* the page being posted */
};

/* What a step did with its move. */
enum res { MV_OK = 0, MV_STOP, MV_FAIL, MV_DEFER };

static int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Sleeps `ms`, or less once stopping. */
static void nap(struct mover *mv, int64_t ms)
{
	for (int64_t until = deadline_mono_ms() + ms; !atomic_load(&mv->stop) && deadline_mono_ms() < until;) {
		int64_t left = until - deadline_mono_ms();
		usleep((useconds_t)(left > 50 ? 50000 : left > 0 ? left * 1000 : 0));
	}
}

/* The n-th retry's pause: doubling from BACKOFF_MIN_MS up to BACKOFF_MAX_MS,
 * half of it random, so that movers do not call in step. */
static int64_t backoff_ms(struct mover *mv, unsigned n)
{
	int64_t d = (int64_t)BACKOFF_MIN_MS << (n > 6 ? 6 : n);
	if (d > BACKOFF_MAX_MS)
		d = BACKOFF_MAX_MS;
	mv->rng = mv->rng * 6364136223846793005ull + 1442695040888963407ull;
	return d / 2 + (int64_t)((mv->rng >> 33) % (uint64_t)(d / 2 + 1));
}

static void count_step(struct mover *mv, enum step s, enum step_outcome o)
{
	atomic_fetch_add(&mv->steps[s][o], 1);
}

/* ---- figures: positions, xid8, digests ---- */

/* "<digits>.<digits>": a feed position as the data planes write it. */
static int pos_valid(const char *s)
{
	size_t a = strspn(s, "0123456789");
	if (!a || a > 20 || s[a] != '.')
		return 0;
	size_t b = strspn(s + a + 1, "0123456789");
	return b && b <= 20 && !s[a + 1 + b];
}

static int decimal_valid(const char *s, size_t max)
{
	size_t n = strspn(s, "0123456789");
	return n && n <= max && !s[n];
}

/* a + b of two non-negative decimal strings into out; -1 when it does not fit. */
static int dec_add(const char *a, const char *b, char *out, size_t outlen)
{
	char tmp[DIGEST_MAX + 2];
	size_t la = strlen(a), lb = strlen(b), n = 0;
	int carry = 0;
	while (la || lb || carry) {
		int d = carry + (la ? a[--la] - '0' : 0) + (lb ? b[--lb] - '0' : 0);
		if (n + 1 >= sizeof tmp)
			return -1;
		tmp[n++] = (char)('0' + d % 10);
		carry = d / 10;
	}
	while (n > 1 && tmp[n - 1] == '0')
		n--;
	if (n + 1 > outlen)
		return -1;
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	out[n] = '\0';
	return 0;
}

/* The lag now: the last measurement less what was copied since. */
static long long lag_now(const struct move *m)
{
	long long l = m->lag - (m->copied - m->lag_base);
	return l > 0 ? l : 0;
}

/* ---- log lines: one per step, with the move's figures ---- */

static json_t *move_fields(const struct move *m, const char *step)
{
	return json_pack("{ss ss ss ss ss ss ss sI sI}", "move", m->id, "tenant", m->tenant, "state", m->state,
	                 "step", step, "from_cell", m->from_cell, "to_cell", m->to_cell, "next", m->next,
	                 "events_copied", (json_int_t)m->copied, "lag_events", (json_int_t)lag_now(m));
}

static void move_log(enum log_level lvl, const struct move *m, const char *step, json_t *extra, const char *msg)
{
	json_t *f = move_fields(m, step);
	if (f && extra)
		json_object_update(f, extra);
	json_decref(extra);
	log_write(lvl, NULL, f, "move %s: %s", m->id, msg);
}

/* ---- the control plane ---- */

/* Calls the control plane until it answers other than 5xx or 429 (down,
 * hung, restarting: pauses with backoff). Returns the status, with the
 * answer parsed into *out when it is a JSON object (else NULL; out may be
 * NULL), or -1 once stopping. `body` is stolen. */
static long cp_call(struct mover *mv, const char *method, const char *path, json_t *body, json_t **out)
{
	char url[2048];
	char *text = NULL;
	long status = -1;
	if (out)
		*out = NULL;
	if (url_join(url, sizeof url, mv->cfg.control_plane_url, path) != 0 ||
	    (body && !(text = json_dumps(body, JSON_COMPACT)))) {
		log_error(NULL, "cannot make the call %s %s (out of memory, or the URL is too long)", method, path);
		goto out;
	}
	for (unsigned tries = 0; !atomic_load(&mv->stop); tries++) {
		if (mover_conn_prepare(&mv->cp, method, url, mv->cfg.region_token, "application/json", text,
		                       text ? strlen(text) : 0, CP_MAX_BYTES, CONNECT_TIMEOUT_MS,
		                       (long)mv->cfg.http_timeout_ms, &mv->stop) != 0) {
			log_error(NULL, "cannot set up a call to the control plane (out of memory)");
		} else {
			mover_conn_perform(&mv->cp);
			long st = mv->cp.status;
			if (st && st < 500 && st != 429) {
				if (tries)
					log_info(NULL, "the control plane answered %s %s after %u failed tries", method, path, tries);
				status = st;
				if (out && mv->cp.answer.len) {
					json_t *j = json_loadb(mv->cp.answer.p, mv->cp.answer.len, 0, NULL);
					if (json_is_object(j))
						*out = j;
					else
						json_decref(j);
				}
				goto out;
			}
			if (mover_conn_stopped(&mv->cp))
				goto out;
			if (st)
				log_warn_limited(NULL, "the control plane answered %s %s with HTTP %ld: trying again", method,
				                 path, st);
			else
				log_warn_limited(NULL, "the control plane is unreachable (%s %s: %s): trying again", method, path,
				                 mover_conn_error(&mv->cp));
		}
		nap(mv, backoff_ms(mv, tries));
	}
out:
	free(text);
	json_decref(body);
	return status;
}

/* A problem answer's detail (or code), for a log line or an error. */
static const char *problem_text(const json_t *j)
{
	const char *d = json_string_value(json_object_get(j, "detail"));
	if (!d)
		d = json_string_value(json_object_get(j, "code"));
	return d ? d : "no detail";
}

/* POST /v1/moves/{move}/progress with the move's figures, and `state` when
 * not NULL (a transition). Returns MV_OK, or MV_STOP when the control plane
 * refuses (409: aborted, or another mover's lease) or when stopping. */
static enum res report(struct mover *mv, struct move *m, const char *state, const char *error)
{
	long long lag = lag_now(m);
	json_t *b = json_pack("{ss sI sI sI}", "mover", mv->id, "events_copied", (json_int_t)m->copied, "lag_events",
	                      (json_int_t)lag, "source_events", (json_int_t)(m->copied + lag));
	json_t *ans = NULL;
	char path[128];
	snprintf(path, sizeof path, "/v1/moves/%s/progress", m->id);
	if (b && state)
		json_object_set_new(b, "state", json_string(state));
	if (b && error)
		json_object_set_new(b, "error", json_string(error));
	long st = cp_call(mv, "POST", path, b, &ans);
	enum res r = MV_STOP;
	m->reported_ms = deadline_mono_ms();
	if (st >= 200 && st < 300) {
		if (state)
			snprintf(m->state, sizeof m->state, "%s", state);
		r = MV_OK;
	} else if (st == 409) {
		move_log(LOG_WARN, m, state ? state : "progress",
		         json_pack("{ss}", "reason", problem_text(ans)),
		         "the control plane refuses this mover's progress: leaving the move");
	} else if (st > 0) {
		move_log(LOG_ERROR, m, state ? state : "progress",
		         json_pack("{si ss}", "status", (int)st, "reason", problem_text(ans)),
		         "the control plane refused the progress: leaving the move");
	}
	json_decref(ans);
	return r;
}

/* ---- claiming ---- */

static const char *cell_url(const struct mover *mv, const char *cell)
{
	for (int i = 0; i < mv->ncells; i++)
		if (!strcmp(mv->cells[i].name, cell))
			return mv->cells[i].url;
	return NULL;
}

static int copy_str(char *dst, size_t len, const json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));
	if (!v || strlen(v) >= len)
		return -1;
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

/* POST /v1/regions/{region}/moves/claim. Returns 200 with `m` filled (its
 * credential replaced), 204 when nothing is due, -1 when stopping, or
 * another status (logged). */
static long claim(struct mover *mv, struct move *m)
{
	char path[128];
	json_t *ans = NULL;
	snprintf(path, sizeof path, "/v1/regions/%s/moves/claim", mv->cfg.region);
	long st = cp_call(mv, "POST", path, json_pack("{ss}", "mover", mv->id), &ans);
	if (st == 200) {
		const json_t *mo = json_object_get(ans, "move");
		const char *cred = json_string_value(json_object_get(ans, "credential"));
		if (copy_str(m->id, sizeof m->id, mo, "id") || !name_valid_uuid(m->id) ||
		    copy_str(m->tenant, sizeof m->tenant, mo, "tenant_id") ||
		    copy_str(m->state, sizeof m->state, mo, "state") ||
		    copy_str(m->from_cell, sizeof m->from_cell, mo, "from_cell") ||
		    copy_str(m->to_cell, sizeof m->to_cell, mo, "to_cell") ||
		    copy_str(m->from_region, sizeof m->from_region, mo, "from_region") ||
		    copy_str(m->to_region, sizeof m->to_region, mo, "to_region") || !cred || !*cred ||
		    strlen(cred) > 4000 || strpbrk(cred, " \r\n")) {
			log_error(NULL, "the control plane's claim answer is not a move with a credential");
			st = 502;
		} else {
			if (m->cred)
				explicit_bzero(m->cred, strlen(m->cred));
			free(m->cred);
			m->cred = strdup(cred);
			json_int_t lease = json_integer_value(json_object_get(ans, "lease_seconds"));
			m->lease_s = lease > 0 ? (long)lease : 30;
			m->src_url = cell_url(mv, m->from_cell);
			m->dst_url = cell_url(mv, m->to_cell);
			if (!m->cred)
				st = 502;
		}
	} else if (st > 0 && st != 204) {
		log_error(NULL, "the control plane refused the claim: HTTP %ld (%s)%s", st, problem_text(ans),
		          st == 401 || st == 403 ? "; check MOVER_REGION_TOKEN and MOVER_REGION"
		          : st == 404           ? "; check MOVER_CONTROL_PLANE_URL and MOVER_REGION"
		                                : "");
	}
	count_step(mv, S_CLAIM, st == 200 || st == 204 ? OUT_OK : st == 409 ? OUT_CONFLICT : OUT_ERROR);
	json_decref(ans);
	return st;
}

/* ---- the cells ---- */

/* Renews the lease (and reports the figures) once a second. */
static enum res renew(struct mover *mv, struct move *m)
{
	if (m->final || deadline_mono_ms() - m->reported_ms < REPORT_EVERY_MS)
		return MV_OK;
	return report(mv, m, NULL, NULL);
}

static int dp_prepare(struct mover *mv, struct move *m, struct mover_conn *c, const char *base,
                      const char *method, const char *path, const char *body, size_t len, size_t max)
{
	char url[2048];
	if (url_join(url, sizeof url, base, path) != 0)
		return -1;
	return mover_conn_prepare(c, method, url, m->cred, "application/json", body, len, max, CONNECT_TIMEOUT_MS,
	                          (long)mv->cfg.http_timeout_ms, &mv->stop);
}

/* A call of a cell's move route, prepared on `c` and maybe performed
 * already (`done`): tries again while the cell is unreachable or answers
 * 5xx or 429 (a database restarting: the move waits for it), renewing the
 * lease meanwhile; on a 401 (the credential expired) claims the move again
 * for a fresh credential, once. Returns the status (2xx, or a 4xx the
 * caller judges) with the answer in c->answer, or -1 when the move is to be
 * left (stopping, or the control plane took it back). */
static long dp_finish(struct mover *mv, struct move *m, struct mover_conn *c, int done, const char *base,
                      const char *method, const char *path, const char *body, size_t len, size_t max)
{
	int refreshed = 0;
	for (unsigned tries = 0;; tries++) {
		if (!done) {
			if (dp_prepare(mv, m, c, base, method, path, body, len, max) != 0) {
				move_log(LOG_ERROR, m, "call", json_pack("{ss}", "path", path),
				         "cannot set up a call to a cell (out of memory, or the URL is too long)");
				return -1;
			}
			mover_conn_perform(c);
		}
		done = 0;
		long st = c->status;
		if (atomic_load(&mv->stop) || mover_conn_stopped(c))
			return -1;
		if (st == 401 && !refreshed) {
			char id[40];
			snprintf(id, sizeof id, "%s", m->id);
			refreshed = 1;
			long cs = claim(mv, m);
			if (cs != 200 || strcmp(id, m->id)) {
				log_warn(NULL, "move %s: the cell refused the credential and no fresh one came: leaving the move", id);
				snprintf(m->id, sizeof m->id, "%s", id);
				return -1;
			}
			continue;
		}
		if (st && st < 500 && st != 429)
			return st;
		if (st)
			log_warn_limited(NULL, "move %s: %s %s%s answered HTTP %ld: trying again", m->id, method, base, path, st);
		else
			log_warn_limited(NULL, "move %s: %s %s%s failed (%s): trying again", m->id, method, base, path,
			                 mover_conn_error(c));
		int64_t until = deadline_mono_ms() + backoff_ms(mv, tries);
		while (deadline_mono_ms() < until && !atomic_load(&mv->stop)) {
			if (renew(mv, m) != MV_OK)
				return -1;
			nap(mv, 100);
		}
	}
}

static long dp_call(struct mover *mv, struct move *m, struct mover_conn *c, const char *base, const char *method,
                    const char *path, const char *body, size_t len, size_t max)
{
	return dp_finish(mv, m, c, 0, base, method, path, body, len, max);
}

/* The answer of the last call on `c` as a JSON object (caller decrefs), or NULL. */
static json_t *answer_json(const struct mover_conn *c)
{
	json_t *j = c->answer.len ? json_loadb(c->answer.p, c->answer.len, 0, NULL) : NULL;
	if (!json_is_object(j)) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/* A cell's refusal. Before the fence, one that says the cell cannot take
 * part here (a credential refused even fresh, a wrong cell behind the URL,
 * a data plane without the move routes: a mover's configuration or a
 * rollout in progress) leaves the move for later rather than failing it;
 * anything else, and everything once the tenant's writes are paused,
 * fails the move (the error for the failed report). */
static enum res cell_refused(struct move *m, const struct mover_conn *c, const char *what, long st)
{
	json_t *j = answer_json(c);
	snprintf(m->error, sizeof m->error, "%s: HTTP %ld (%s)", what, st, j ? problem_text(j) : "no detail");
	json_decref(j);
	if (!m->fenced && (st == 401 || st == 403 || st == 404 || st == 405)) {
		move_log(LOG_ERROR, m, "call", json_pack("{ss}", "error", m->error),
		         "a cell cannot take part in this move now (check MOVER_CELLS): later");
		return MV_DEFER;
	}
	return MV_FAIL;
}

/* Reads {"events": n, "digest": "<decimal>"} (a digest or a progress). */
static int read_count_digest(const json_t *j, long long *events, char *digest, size_t len)
{
	const json_t *e = json_object_get(j, "events");
	const char *d = json_string_value(json_object_get(j, "digest"));
	if (!json_is_integer(e) || json_integer_value(e) < 0 || !d || !decimal_valid(d, len - 1))
		return -1;
	*events = (long long)json_integer_value(e);
	memcpy(digest, d, strlen(d) + 1);
	return 0;
}

/* GET the source's digest over (after, upto] (upto NULL: everything after). */
static enum res source_digest(struct mover *mv, struct move *m, const char *after, const char *upto,
                              long long *events, char *digest, size_t len)
{
	char path[256];
	if (upto)
		snprintf(path, sizeof path, "/v1/moves/%s/digest?after=%s&upto=%s", m->id, after, upto);
	else
		snprintf(path, sizeof path, "/v1/moves/%s/digest?after=%s", m->id, after);
	long st = dp_call(mv, m, &mv->aux, m->src_url, "GET", path, NULL, 0, CP_MAX_BYTES);
	if (st < 0)
		return MV_STOP;
	if (st != 200)
		return cell_refused(m, &mv->aux, "the source's digest", st);
	json_t *j = answer_json(&mv->aux);
	int bad = !j || read_count_digest(j, events, digest, len) != 0;
	json_decref(j);
	if (bad) {
		snprintf(m->error, sizeof m->error, "the source's digest answer is malformed");
		return MV_FAIL;
	}
	return MV_OK;
}

/* GET the target's progress: next, events, digest, stored. */
static enum res target_progress(struct mover *mv, struct move *m, char *digest, size_t len, long long *stored)
{
	char path[128];
	snprintf(path, sizeof path, "/v1/moves/%s/progress", m->id);
	long st = dp_call(mv, m, &mv->dst, m->dst_url, "GET", path, NULL, 0, CP_MAX_BYTES);
	if (st < 0)
		return MV_STOP;
	if (st != 200)
		return cell_refused(m, &mv->dst, "the target's progress", st);
	json_t *j = answer_json(&mv->dst);
	const char *next = json_string_value(json_object_get(j, "next"));
	const json_t *s = json_object_get(j, "stored");
	long long events;
	int bad = !j || !next || !pos_valid(next) || read_count_digest(j, &events, digest, len) != 0 ||
	          !json_is_integer(s);
	if (!bad) {
		snprintf(m->next, sizeof m->next, "%s", next);
		m->copied = events;
		*stored = (long long)json_integer_value(s);
	}
	json_decref(j);
	if (bad) {
		snprintf(m->error, sizeof m->error, "the target's progress answer is malformed");
		return MV_FAIL;
	}
	return MV_OK;
}

/* Measures the lag (source rows after the target's position) when due: at
 * most once a second, and less often while measuring is slow (the source
 * counts the rows after the position in its feed index). Between two
 * measurements the lag shrinks by what was copied. */
static enum res measure_lag(struct mover *mv, struct move *m, int now)
{
	int64_t t = deadline_mono_ms(), every = m->lag_took_ms * 4;
	if (!now && t - m->lag_at_ms < (every > REPORT_EVERY_MS ? every : REPORT_EVERY_MS))
		return MV_OK;
	char path[256];
	snprintf(path, sizeof path, "/v1/moves/%s/digest?after=%s&count_only=true", m->id, m->next);
	long st = dp_call(mv, m, &mv->aux, m->src_url, "GET", path, NULL, 0, CP_MAX_BYTES);
	if (st < 0)
		return MV_STOP;
	if (st != 200)
		return cell_refused(m, &mv->aux, "the source's count", st);
	json_t *j = answer_json(&mv->aux);
	const json_t *e = json_object_get(j, "events");
	long long n = json_is_integer(e) ? (long long)json_integer_value(e) : -1;
	json_decref(j);
	if (n < 0) {
		snprintf(m->error, sizeof m->error, "the source's count answer is malformed");
		return MV_FAIL;
	}
	m->lag = n;
	m->lag_base = m->copied;
	m->lag_at_ms = deadline_mono_ms();
	m->lag_took_ms = m->lag_at_ms - t;
	return MV_OK;
}

/* The figures of a move between two lag measurements, then the report. */
static enum res tick(struct mover *mv, struct move *m)
{
	enum res r = measure_lag(mv, m, 0);
	if (r != MV_OK)
		return r;
	return renew(mv, m);
}

/* ---- copying ---- */

struct page {
	char next[POS_MAX];
	int more;
	unsigned long long horizon;
	int rows;                   /* the page has rows */
};

/* Reads what the mover needs of a source page, its top-level members
 * `events` (only whether it has rows), `next`, `more` and `horizon`, by
 * scanning the text: the rows go to the target as they came, and building
 * them (megabytes of JSON a page) would cost more than the target's insert. */
static int page_read(const struct buf *b, struct page *p)
{
	const char *s = b->p;
	size_t n = b->len, i = jscan_ws(s, 0, n);
	unsigned got = 0;
	if (i >= n || s[i] != '{')
		return -1;
	for (i = jscan_ws(s, i + 1, n); i < n && s[i] == '"';) {
		size_t kend = jscan_string_end(s, i, n), vend;
		if (!kend)
			return -1;
		const char *key = s + i + 1;
		size_t klen = kend - i - 2;
		i = jscan_ws(s, kend, n);
		if (i >= n || s[i] != ':')
			return -1;
		i = jscan_ws(s, i + 1, n);
		if (!(vend = jscan_value_end(s, i, n)) || vend <= i)
			return -1;
		const char *v = s + i;
		size_t vlen = vend - i;
		char str[POS_MAX];
		/* a string value's text, when it is a short one without escapes */
		int is_str = vlen >= 2 && vlen - 2 < sizeof str && v[0] == '"' && !memchr(v + 1, '\\', vlen - 2);
		if (is_str) {
			memcpy(str, v + 1, vlen - 2);
			str[vlen - 2] = '\0';
		}
		if (klen == 6 && !memcmp(key, "events", 6)) {
			if (got & 1 || v[0] != '[')
				return -1;
			got |= 1;
			p->rows = s[jscan_ws(s, i + 1, n)] != ']';
		} else if (klen == 4 && !memcmp(key, "next", 4)) {
			if (got & 2 || !is_str || !pos_valid(str))
				return -1;
			got |= 2;
			memcpy(p->next, str, strlen(str) + 1);
		} else if (klen == 4 && !memcmp(key, "more", 4)) {
			if (got & 4 || !((vlen == 4 && !memcmp(v, "true", 4)) || (vlen == 5 && !memcmp(v, "false", 5))))
				return -1;
			got |= 4;
			p->more = vlen == 4;
		} else if (klen == 7 && !memcmp(key, "horizon", 7)) {
			if (got & 8 || !is_str || !decimal_valid(str, 20))
				return -1;
			got |= 8;
			errno = 0;
			p->horizon = strtoull(str, NULL, 10);
			if (errno)
				return -1;
		}
		i = jscan_ws(s, vend, n);
		if (i < n && s[i] == ',')
			i = jscan_ws(s, i + 1, n);
		else if (i < n && s[i] == '}' && jscan_ws(s, i + 1, n) == n)
			return got == 15 ? 0 : -1;
		else
			return -1;
	}
	return -1;
}

/* The target's answer to a page: its position and count move on. */
static enum res page_stored(struct mover *mv, struct move *m, long st)
{
	if (st < 0)
		return MV_STOP;
	if (st != 200)
		return cell_refused(m, &mv->dst, "the target refused a page", st);
	json_t *j = answer_json(&mv->dst);
	const char *next = json_string_value(json_object_get(j, "next"));
	const json_t *ev = json_object_get(j, "events"), *ins = json_object_get(j, "inserted");
	int bad = !next || !pos_valid(next) || !json_is_integer(ev) || !json_is_integer(ins) ||
	          json_integer_value(ins) < 0;
	if (!bad) {
		snprintf(m->next, sizeof m->next, "%s", next);
		m->copied = (long long)json_integer_value(ev);
		atomic_fetch_add(&mv->events_copied, (uint64_t)json_integer_value(ins));
	}
	json_decref(j);
	if (bad) {
		snprintf(m->error, sizeof m->error, "the target's answer to a page is malformed");
		return MV_FAIL;
	}
	return MV_OK;
}

/* Copies pages from the target's position on: until a page comes back
 * without `more` or, draining (`drain`), until one without `more` whose
 * horizon is above the fence's transaction (every write the source
 * committed before the fence is then copied). While the target stores a
 * page, the next one is fetched from the source. */
static enum res copy_until(struct mover *mv, struct move *m, int drain, unsigned long long fence_tx)
{
	char cursor[POS_MAX], get[256], post[128];
	enum res r = MV_OK;
	int64_t t0 = mono_us();
	long gst;

	snprintf(cursor, sizeof cursor, "%s", m->next);
	snprintf(post, sizeof post, "/v1/moves/%s/events", m->id);
	snprintf(get, sizeof get, "/v1/moves/%s/events?after=%s&limit=%ld", m->id, cursor, mv->cfg.batch);
	gst = dp_call(mv, m, &mv->src, m->src_url, "GET", get, NULL, 0, DP_MAX_BYTES);
	for (;;) {
		struct page pg;
		if (gst < 0) {
			r = MV_STOP;
			break;
		}
		if (gst != 200) {
			r = cell_refused(m, &mv->src, "the source refused a page", gst);
			break;
		}
		if (page_read(&mv->src.answer, &pg) != 0) {
			snprintf(m->error, sizeof m->error, "a page of the source is malformed");
			r = MV_FAIL;
			break;
		}
		/* The page to post is kept while the source's connection fetches the next. */
		struct buf held = m->page;
		m->page = mv->src.answer;
		mv->src.answer = held;
		int last = !pg.more && (!drain || pg.horizon > fence_tx);
		int prefetch = pg.rows && pg.more;
		snprintf(cursor, sizeof cursor, "%s", pg.next);
		snprintf(get, sizeof get, "/v1/moves/%s/events?after=%s&limit=%ld", m->id, cursor, mv->cfg.batch);
		gst = 0;
		if (pg.rows) {
			if (dp_prepare(mv, m, &mv->dst, m->dst_url, "POST", post, m->page.p, m->page.len, CP_MAX_BYTES) != 0 ||
			    (prefetch && dp_prepare(mv, m, &mv->src, m->src_url, "GET", get, NULL, 0, DP_MAX_BYTES) != 0)) {
				snprintf(m->error, sizeof m->error, "cannot set up the copy's calls (out of memory)");
				r = MV_FAIL;
				break;
			}
			mover_conn_perform2(&mv->dst, prefetch ? &mv->src : NULL);
			long pst = dp_finish(mv, m, &mv->dst, 1, m->dst_url, "POST", post, m->page.p, m->page.len,
			                     CP_MAX_BYTES);
			if (prefetch && pst >= 0)
				gst = dp_finish(mv, m, &mv->src, 1, m->src_url, "GET", get, NULL, 0, DP_MAX_BYTES);
			if ((r = page_stored(mv, m, pst)) != MV_OK)
				break;
		}
		if (last)
			break;
		if ((r = tick(mv, m)) != MV_OK)
			break;
		if (!prefetch) {
			if (!pg.more)
				nap(mv, DRAIN_POLL_MS);
			gst = dp_call(mv, m, &mv->src, m->src_url, "GET", get, NULL, 0, DP_MAX_BYTES);
		}
	}
	atomic_fetch_add(&mv->copy_us, (uint64_t)(mono_us() - t0));
	return r;
}

/* Copies the source's idempotency records and usage counters to the
 * target (from records_since_us on; the target sets the tenant's feed
 * offset then). Pages of neither side are held: the source's connection
 * for pages carries it. */
static enum res copy_records(struct mover *mv, struct move *m)
{
	char path[160];
	snprintf(path, sizeof path, "/v1/moves/%s/records?since_us=%lld", m->id, (long long)m->records_since_us);
	long st = dp_call(mv, m, &mv->src, m->src_url, "GET", path, NULL, 0, RECORDS_MAX_BYTES);
	if (st < 0)
		return MV_STOP;
	if (st != 200)
		return cell_refused(m, &mv->src, "the source's records", st);
	json_t *j = answer_json(&mv->src);
	const json_t *idem = json_object_get(j, "idempotency"), *rec, *safe = json_object_get(j, "safe_since_us");
	size_t i;
	long long newest = -1, safe_us = json_is_integer(safe) ? (long long)json_integer_value(safe) : -1;
	if (!json_is_array(idem) || !json_is_array(json_object_get(j, "usage"))) {
		json_decref(j);
		snprintf(m->error, sizeof m->error, "the source's records answer is malformed");
		return MV_FAIL;
	}
	json_array_foreach(idem, i, rec) {
		const json_t *c = json_object_get(rec, "created_at_us");
		if (json_is_integer(c) && json_integer_value(c) > newest)
			newest = (long long)json_integer_value(c);
	}
	size_t nidem = json_array_size(idem);
	json_decref(j);
	snprintf(path, sizeof path, "/v1/moves/%s/records", m->id);
	st = dp_call(mv, m, &mv->dst, m->dst_url, "POST", path, mv->src.answer.p, mv->src.answer.len, CP_MAX_BYTES);
	if (st < 0)
		return MV_STOP;
	if (st != 200)
		return cell_refused(m, &mv->dst, "the target refused the records", st);
	/* Every record created before safe_since_us is copied now or never
	 * completes: the next copy starts there and holds only the last moments. */
	if (safe_us < 0)
		safe_us = newest - RECORDS_OVERLAP_US;
	if (safe_us > m->records_since_us)
		m->records_since_us = safe_us;
	count_step(mv, S_RECORDS, OUT_OK);
	move_log(LOG_DEBUG, m, "records", json_pack("{sI sI}", "idempotency_records", (json_int_t)nidem, "since_us",
	                                            (json_int_t)m->records_since_us),
	         "idempotency records and usage counters copied");
	return MV_OK;
}

/* copying / catching_up: copy until the lag is small, then cutover. */
static enum res phase_copy(struct mover *mv, struct move *m)
{
	char digest[DIGEST_MAX];
	long long stored;
	enum res r;

	if ((r = target_progress(mv, m, digest, sizeof digest, &stored)) != MV_OK ||
	    (r = measure_lag(mv, m, 1)) != MV_OK || (r = report(mv, m, NULL, NULL)) != MV_OK)
		return r;
	move_log(LOG_INFO, m, "copy", json_pack("{sI}", "stored", (json_int_t)stored),
	         strcmp(m->next, "0.0") ? "copy resumes from the target's position" : "copy starts");
	if (!strcmp(m->state, "copying")) {
		if ((r = copy_until(mv, m, 0, 0)) != MV_OK)
			return r;
		count_step(mv, S_COPY, OUT_OK);
		if ((r = measure_lag(mv, m, 1)) != MV_OK || (r = report(mv, m, "catching_up", NULL)) != MV_OK)
			return r;
		move_log(LOG_INFO, m, "catching_up", NULL, "copied up to the source's position: catching up");
	}
	/* Part A of the source's digest, and the records so far, while writes go on. */
	if ((r = source_digest(mv, m, "0.0", m->next, &m->events_a, m->digest_a, sizeof m->digest_a)) != MV_OK)
		return r;
	snprintf(m->pos_a, sizeof m->pos_a, "%s", m->next);
	if ((r = copy_records(mv, m)) != MV_OK)
		return r;
	for (;;) {
		/* The records too, each round: the copy after the fence then holds
		 * only those of the last round's moments. */
		if ((r = copy_until(mv, m, 0, 0)) != MV_OK || (r = copy_records(mv, m)) != MV_OK ||
		    (r = measure_lag(mv, m, 1)) != MV_OK)
			return r;
		if (lag_now(m) <= mv->cfg.cutover_lag)
			break;
		if ((r = renew(mv, m)) != MV_OK)
			return r;
	}
	count_step(mv, S_CATCH_UP, OUT_OK);
	r = report(mv, m, "cutover", NULL);
	count_step(mv, S_CUTOVER, r == MV_OK ? OUT_OK : OUT_CONFLICT);
	if (r == MV_OK)
		move_log(LOG_INFO, m, "cutover", json_pack("{sI}", "events_a", (json_int_t)m->events_a),
		         "lag small enough: cutover");
	return r;
}

/* cutover / verifying: fence, drain, records, verify, complete. */
static enum res phase_cutover(struct mover *mv, struct move *m)
{
	char path[128], total[DIGEST_MAX], digest_b[DIGEST_MAX], digest_t[DIGEST_MAX];
	long long events_b, stored;
	enum res r;
	json_t *ans = NULL;

	/* From cutover on, a previous run may have fenced the source already. */
	m->fenced = 1;
	if (!m->pos_a[0]) {
		/* Resumed here: part A is not known, part B covers everything. */
		snprintf(m->pos_a, sizeof m->pos_a, "0.0");
		snprintf(m->digest_a, sizeof m->digest_a, "0");
		m->events_a = 0;
		if ((r = target_progress(mv, m, digest_t, sizeof digest_t, &stored)) != MV_OK)
			return r;
	}
	snprintf(path, sizeof path, "/v1/moves/%s/fence", m->id);
	long st = dp_call(mv, m, &mv->aux, m->src_url, "POST", path, NULL, 0, CP_MAX_BYTES);
	if (st < 0)
		return MV_STOP;
	if (st != 200) {
		count_step(mv, S_FENCE, OUT_ERROR);
		return cell_refused(m, &mv->aux, "the source refused the fence", st);
	}
	/* The writes are paused from here. */
	int64_t fenced_us = mono_us();
	json_t *j = answer_json(&mv->aux);
	const char *ftx = json_string_value(json_object_get(j, "fence_tx"));
	unsigned long long fence_tx = ftx && decimal_valid(ftx, 20) ? strtoull(ftx, NULL, 10) : 0;
	json_decref(j);
	if (!fence_tx) {
		snprintf(m->error, sizeof m->error, "the source's fence answer is malformed");
		return MV_FAIL;
	}
	count_step(mv, S_FENCE, OUT_OK);
	move_log(LOG_INFO, m, "fence", json_pack("{sI}", "fence_tx", (json_int_t)fence_tx),
	         "the source is fenced: the tenant's writes are paused");
	if ((r = copy_until(mv, m, 1, fence_tx)) != MV_OK)
		return r;
	count_step(mv, S_DRAIN, OUT_OK);
	move_log(LOG_INFO, m, "drain", NULL, "every write before the fence is copied");
	if ((r = copy_records(mv, m)) != MV_OK)
		return r;
	if (!strcmp(m->state, "cutover") && (r = report(mv, m, "verifying", NULL)) != MV_OK)
		return r;
	if ((r = source_digest(mv, m, m->pos_a, m->next, &events_b, digest_b, sizeof digest_b)) != MV_OK ||
	    (r = target_progress(mv, m, digest_t, sizeof digest_t, &stored)) != MV_OK)
		return r;
	long long src_events = m->events_a + events_b;
	if (dec_add(m->digest_a, digest_b, total, sizeof total) != 0) {
		snprintf(m->error, sizeof m->error, "the source's digest does not fit");
		return MV_FAIL;
	}
	count_step(mv, S_VERIFY, OUT_OK);
	move_log(LOG_INFO, m, "verifying",
	         json_pack("{sI ss sI ss}", "source_events", (json_int_t)src_events, "source_digest", total,
	                   "target_events", (json_int_t)stored, "target_digest", digest_t),
	         "digests computed: completing");
	snprintf(path, sizeof path, "/v1/moves/%s/complete", m->id);
	int64_t sent_pause_ms = (mono_us() - fenced_us) / 1000;
	st = cp_call(mv, "POST", path,
	             json_pack("{ss sI ss sI ss sI}", "mover", mv->id, "source_events", (json_int_t)src_events,
	                       "source_digest", total, "target_events", (json_int_t)stored, "target_digest",
	                       digest_t, "write_pause_ms", (json_int_t)sent_pause_ms),
	             &ans);
	int64_t pause_us = mono_us() - fenced_us;
	if (st == 200) {
		snprintf(m->state, sizeof m->state, "done");
		atomic_store(&mv->last_pause_us, (uint64_t)pause_us);
		atomic_fetch_add(&mv->moves[MO_DONE], 1);
		count_step(mv, S_COMPLETE, OUT_OK);
		move_log(LOG_INFO, m, "done",
		         json_pack("{sI ss sI sI}", "events", (json_int_t)stored, "digest", digest_t, "write_pause_ms",
		                   (json_int_t)(pause_us / 1000), "reported_write_pause_ms", (json_int_t)sent_pause_ms),
		         "move done: the tenant lives at the target");
		r = MV_OK;
	} else if (st == 422) {
		count_step(mv, S_COMPLETE, OUT_ERROR);
		snprintf(m->error, sizeof m->error,
		         "verification failed: the source has %lld events (digest %s), the target %lld (digest %s)",
		         src_events, total, stored, digest_t);
		r = MV_FAIL;
	} else {
		count_step(mv, S_COMPLETE, st == 409 ? OUT_CONFLICT : OUT_ERROR);
		if (st > 0)
			move_log(LOG_WARN, m, "complete", json_pack("{si ss}", "status", (int)st, "reason", problem_text(ans)),
			         "the control plane refused to complete: leaving the move");
		r = MV_STOP;
	}
	json_decref(ans);
	return r;
}

/* ---- after the move: erasures ---- */

/* Erases the tenant's copy at one side (bounded batches until done), then
 * reports it. MV_DEFER when the cell cannot erase yet (409: the tenant is
 * served there, or its usage is not all reported). */
static enum res erase_side(struct mover *mv, struct move *m, int source)
{
	char path[128];
	const char *side = source ? "source" : "target";
	enum step step = source ? S_ERASE_SOURCE : S_ERASE_TARGET;
	struct mover_conn *c = source ? &mv->aux : &mv->dst;
	long long events = 0, rows = 0;
	json_t *ans = NULL;
	snprintf(path, sizeof path, "/v1/moves/%s/erase", m->id);
	for (;;) {
		long st = dp_call(mv, m, c, source ? m->src_url : m->dst_url, "POST", path, NULL, 0, CP_MAX_BYTES);
		if (st < 0)
			return MV_STOP;
		json_t *j = answer_json(c);
		if (st != 200) {
			count_step(mv, step, st == 409 ? OUT_CONFLICT : OUT_ERROR);
			move_log(st == 409 ? LOG_INFO : LOG_ERROR, m, step_names[step],
			         json_pack("{si ss}", "status", (int)st, "reason", j ? problem_text(j) : "no detail"),
			         st == 409 ? "the cell cannot erase the tenant's copy yet: later"
			                   : "the cell refused to erase the tenant's copy: later");
			json_decref(j);
			return MV_DEFER;
		}
		const json_t *done = json_object_get(j, "done"), *ev = json_object_get(j, "events_deleted"),
		             *rw = json_object_get(j, "rows_deleted");
		int ok = json_is_boolean(done) && json_is_integer(ev) && json_is_integer(rw);
		int finished = json_is_true(done);
		if (ok) {
			events += (long long)json_integer_value(ev);
			rows += (long long)json_integer_value(rw);
		}
		json_decref(j);
		if (!ok) {
			count_step(mv, step, OUT_ERROR);
			move_log(LOG_ERROR, m, step_names[step], NULL, "the cell's erase answer is malformed: later");
			return MV_DEFER;
		}
		if (finished)
			break;
	}
	snprintf(path, sizeof path, "/v1/moves/%s/erased", m->id);
	long st = cp_call(mv, "POST", path,
	                  json_pack("{ss ss sI sI}", "mover", mv->id, "side", side, "events_deleted", (json_int_t)events,
	                            "rows_deleted", (json_int_t)rows),
	                  &ans);
	enum res r = st == 200 ? MV_OK : MV_STOP;
	count_step(mv, step, st == 200 ? OUT_OK : st == 409 ? OUT_CONFLICT : OUT_ERROR);
	move_log(st == 200 ? LOG_INFO : LOG_WARN, m, step_names[step],
	         json_pack("{ss sI sI si}", "side", side, "events_deleted", (json_int_t)events, "rows_deleted",
	                   (json_int_t)rows, "status", (int)st),
	         st == 200 ? "the tenant's copy is erased" : "erased, but the control plane refused the report");
	json_decref(ans);
	return r;
}

/* A failed or aborted move: the source is authoritative again (its fence
 * lifted), the target's copy erased. */
static enum res undo(struct mover *mv, struct move *m, int lift_fence)
{
	if (lift_fence) {
		char path[128];
		snprintf(path, sizeof path, "/v1/moves/%s/fence", m->id);
		long st = dp_call(mv, m, &mv->aux, m->src_url, "DELETE", path, NULL, 0, CP_MAX_BYTES);
		if (st < 0)
			return MV_STOP;
		if (st >= 300 && st != 404) {
			/* The tenant's writes stay refused at the source until this works. */
			move_log(LOG_ERROR, m, "unfence", json_pack("{si}", "status", (int)st),
			         "the source refused to lift the fence: trying again later");
			return MV_DEFER;
		}
		move_log(LOG_INFO, m, "unfence", NULL, "the source's fence is lifted: it is authoritative");
	}
	enum res r = erase_side(mv, m, 0);
	if (r == MV_OK && !strcmp(m->state, "aborted"))
		atomic_fetch_add(&mv->moves[MO_ABORTED], 1);
	return r;
}

/* A fatal error (m->error): failed at the control plane, then undone. */
static enum res fail_move(struct mover *mv, struct move *m)
{
	move_log(LOG_ERROR, m, "failed", json_pack("{ss}", "error", m->error), "the move fails");
	enum res r = report(mv, m, "failed", m->error);
	if (r != MV_OK)
		return r;
	atomic_fetch_add(&mv->moves[MO_FAILED], 1);
	m->final = 1;
	return undo(mv, m, 1);
}

/* Drives one claimed move as far as it goes now. */
static enum res drive(struct mover *mv, struct move *m)
{
	enum res r = MV_DEFER;
	if (!m->src_url || !m->dst_url) {
		move_log(LOG_ERROR, m, "claim", NULL, "a cell of this move is not in MOVER_CELLS: later");
		return MV_DEFER;
	}
	const char *s = m->state;
	if (!strcmp(s, "copying") || !strcmp(s, "catching_up")) {
		r = phase_copy(mv, m);
		if (r == MV_OK)
			r = phase_cutover(mv, m);
	} else if (!strcmp(s, "cutover") || !strcmp(s, "verifying")) {
		r = phase_cutover(mv, m);
	} else if (!strcmp(s, "aborted") || !strcmp(s, "failed")) {
		m->final = 1;
		move_log(LOG_INFO, m, s, NULL, "the move ended without the flip: undoing it at the target");
		return undo(mv, m, !strcmp(s, "failed"));
	} else if (!strcmp(s, "done")) {
		m->final = 1;
		move_log(LOG_INFO, m, "erase_source", NULL, "grace period over: erasing the source's copy");
		return erase_side(mv, m, 1);
	} else {
		move_log(LOG_WARN, m, "claim", NULL, "the move's state is not one the mover drives: later");
		return MV_DEFER;
	}
	if (r == MV_FAIL)
		r = fail_move(mv, m);
	return r;
}

/* ---- the claim loop ---- */

static struct deferred *deferred_find(struct mover *mv, const char *id, const char *state)
{
	for (size_t i = 0; i < sizeof mv->deferred / sizeof mv->deferred[0]; i++) {
		struct deferred *d = &mv->deferred[i];
		if (!strcmp(d->id, id) && !strcmp(d->state, state))
			return d;
	}
	return NULL;
}

static void defer(struct mover *mv, const struct move *m, int64_t ms)
{
	struct deferred *d = deferred_find(mv, m->id, m->state), *oldest = &mv->deferred[0];
	for (size_t i = 0; !d && i < sizeof mv->deferred / sizeof mv->deferred[0]; i++)
		if (mv->deferred[i].until_ms < oldest->until_ms)
			oldest = &mv->deferred[i];
	if (!d)
		d = oldest;
	snprintf(d->id, sizeof d->id, "%s", m->id);
	snprintf(d->state, sizeof d->state, "%s", m->state);
	d->until_ms = deadline_mono_ms() + ms;
}

/* Claims and drives moves until stopped; with --once, until nothing is
 * due (or only moves left aside for now). Returns the exit code. */
static int work(struct mover *mv)
{
	struct move m = { 0 };
	int ret = SVC_EXIT_OK;
	unsigned fails = 0;
	while (!atomic_load(&mv->stop)) {
		long st = claim(mv, &m);
		if (st < 0)
			break;
		if (st != 200 && st != 204) {
			if (mv->once) {
				ret = SVC_EXIT_FAILURE;
				break;
			}
			nap(mv, backoff_ms(mv, fails++));
			continue;
		}
		fails = 0;
		const struct deferred *d = st == 200 ? deferred_find(mv, m.id, m.state) : NULL;
		if (st == 204 || (d && d->until_ms > deadline_mono_ms())) {
			if (mv->once)
				break;
			nap(mv, mv->cfg.interval_ms);
			continue;
		}
		/* A fresh start for this run's figures: the cells hold the truth. */
		struct buf page = m.page;
		char *cred = m.cred;
		struct move fresh = m;
		memset(&m, 0, sizeof m);
		memcpy(m.id, fresh.id, sizeof m.id);
		memcpy(m.tenant, fresh.tenant, sizeof m.tenant);
		memcpy(m.state, fresh.state, sizeof m.state);
		memcpy(m.from_region, fresh.from_region, sizeof m.from_region);
		memcpy(m.from_cell, fresh.from_cell, sizeof m.from_cell);
		memcpy(m.to_region, fresh.to_region, sizeof m.to_region);
		memcpy(m.to_cell, fresh.to_cell, sizeof m.to_cell);
		snprintf(m.next, sizeof m.next, "0.0");
		m.src_url = fresh.src_url;
		m.dst_url = fresh.dst_url;
		m.lease_s = fresh.lease_s;
		m.cred = cred;
		m.page = page;
		m.reported_ms = deadline_mono_ms();
		char state[24];
		snprintf(state, sizeof state, "%s", m.state);
		move_log(LOG_INFO, &m, "claim", json_pack("{ss ss}", "from_region", m.from_region, "to_region", m.to_region),
		         "move claimed");
		enum res r = drive(mv, &m);
		/* Left aside, the move is not claimed again in the same state for a while. */
		if (r == MV_DEFER || r == MV_STOP) {
			snprintf(m.state, sizeof m.state, "%s", state);
			defer(mv, &m, r == MV_DEFER ? (mv->cfg.interval_ms > DEFER_MIN_MS ? mv->cfg.interval_ms : DEFER_MIN_MS)
			                           : mv->cfg.interval_ms);
		}
	}
	if (m.cred)
		explicit_bzero(m.cred, strlen(m.cred));
	free(m.cred);
	buf_free(&m.page);
	return ret;
}

/* ---- HTTP: /healthz, /metrics ---- */

static void mover_metrics(FILE *out, void *arg)
{
	struct mover *mv = arg;
	fprintf(out,
	        "# HELP mover_events_copied_total Events the targets stored from pages this mover copied.\n"
	        "# TYPE mover_events_copied_total counter\n"
	        "mover_events_copied_total %llu\n"
	        "# HELP mover_copy_seconds_total Time spent copying pages.\n"
	        "# TYPE mover_copy_seconds_total counter\n"
	        "mover_copy_seconds_total %.6f\n"
	        "# HELP mover_last_write_pause_seconds Write pause of the last move done: from the fence to the control plane's answer to complete.\n"
	        "# TYPE mover_last_write_pause_seconds gauge\n"
	        "mover_last_write_pause_seconds %.6f\n"
	        "# HELP mover_moves_total Moves ended by this mover, by outcome.\n"
	        "# TYPE mover_moves_total counter\n",
	        (unsigned long long)atomic_load(&mv->events_copied), (double)atomic_load(&mv->copy_us) / 1e6,
	        (double)atomic_load(&mv->last_pause_us) / 1e6);
	for (int o = 0; o < MO__COUNT; o++)
		fprintf(out, "mover_moves_total{outcome=\"%s\"} %llu\n", move_outcome_names[o],
		        (unsigned long long)atomic_load(&mv->moves[o]));
	fprintf(out, "# HELP mover_steps_total Steps of moves, by step and outcome.\n"
	             "# TYPE mover_steps_total counter\n");
	for (int s = 0; s < S__COUNT; s++)
		for (int o = 0; o < OUT__COUNT; o++)
			fprintf(out, "mover_steps_total{step=\"%s\",outcome=\"%s\"} %llu\n", step_names[s],
			        step_outcome_names[o], (unsigned long long)atomic_load(&mv->steps[s][o]));
}

static const struct http_route routes[] = {
	{ "GET", "/healthz", http_handle_healthz, 0, 0, NULL },
	{ "GET", "/metrics", http_handle_metrics, 0, 0, NULL },
};

/* ---- main ---- */

static void usage(FILE *out)
{
	cfg_print_help(out,
	               "Usage: " PROG " [--once|--help]\n\n"
	               "  (none)    claim the moves into MOVER_REGION from the control plane and\n"
	               "            drive each (copy, catch up, cutover, verify, complete; erase\n"
	               "            the other side's copy when due), serving /healthz and /metrics\n"
	               "            on MOVER_LISTEN\n"
	               "  --once    drive every move due, then exit: 0 once nothing is due, 1\n"
	               "            when the control plane refuses the claim",
	               mover_vars);
}

static int usage_error(const char *var, const char *why)
{
	fprintf(stderr, PROG ": invalid configuration: %s: %s (see " PROG " --help)\n", var, why);
	return SVC_EXIT_USAGE;
}

static int parse_cells(struct mover *mv)
{
	const char *p = mv->cfg.cells;
	while (*p) {
		p += strspn(p, " \t\r\n");
		size_t n = strcspn(p, " \t\r\n");
		if (!n)
			break;
		const char *eq = memchr(p, '=', n);
		if (!eq || eq == p || (size_t)(eq - p) >= sizeof mv->cells[0].name)
			return usage_error("MOVER_CELLS", "each entry must be <cell>=<base URL>");
		if (mv->ncells == MAX_CELLS)
			return usage_error("MOVER_CELLS", "more than 64 cells");
		struct cell *c = &mv->cells[mv->ncells];
		memcpy(c->name, p, (size_t)(eq - p));
		c->name[eq - p] = '\0';
		size_t ul = n - (size_t)(eq - p) - 1;
		if (!name_valid_cell(c->name))
			return usage_error("MOVER_CELLS", "a cell name is not valid");
		if (ul >= 900 || ul < 8)
			return usage_error("MOVER_CELLS", "a base URL is missing or longer than 900 characters");
		memcpy(c->url, eq + 1, ul);
		c->url[ul] = '\0';
		if (strncmp(c->url, "http://", 7) && strncmp(c->url, "https://", 8))
			return usage_error("MOVER_CELLS", "a base URL must start with http:// or https://");
		for (int i = 0; i < mv->ncells; i++)
			if (!strcmp(mv->cells[i].name, c->name))
				return usage_error("MOVER_CELLS", "a cell is named twice");
		mv->ncells++;
		p += n;
	}
	if (!mv->ncells)
		return usage_error("MOVER_CELLS", "must name at least one cell");
	return 0;
}

static int check_config(struct mover *mv)
{
	const struct mover_config *c = &mv->cfg;
	if (!name_valid_region(c->region))
		return usage_error("MOVER_REGION", "not a region name ([a-z][a-z0-9-]*, at most 32 characters)");
	if (strncmp(c->control_plane_url, "http://", 7) && strncmp(c->control_plane_url, "https://", 8))
		return usage_error("MOVER_CONTROL_PLANE_URL", "must start with http:// or https://");
	if (strlen(c->control_plane_url) > 900)
		return usage_error("MOVER_CONTROL_PLANE_URL", "longer than 900 characters");
	const char *ca = url_ca_problem(c->control_plane_url, c->ca_file);
	if (ca)
		return usage_error("MOVER_CA_FILE", ca);
	if (!*c->region_token)
		return usage_error("MOVER_REGION_TOKEN", "must not be empty");
	for (const char *t = c->region_token; *t; t++)
		if (*t <= ' ' || *t > '~')
			return usage_error("MOVER_REGION_TOKEN", "must be printable ASCII without spaces");
	if (c->id) {
		size_t n = strlen(c->id);
		if (!n || n > 64 || strspn(c->id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != n)
			return usage_error("MOVER_ID", "must be 1 to 64 of A-Za-z0-9._-");
		snprintf(mv->id, sizeof mv->id, "%s", c->id);
	} else {
		snprintf(mv->id, sizeof mv->id, "mover-%s", c->region);
	}
	return parse_cells(mv);
}

static void *signal_thread(void *arg)
{
	struct mover *mv = arg;
	log_set_task("signals");
	int sig = http_signals_wait();
	if (!atomic_load(&mv->stop))
		log_info(NULL, "signal %d: stopping", sig);
	atomic_store(&mv->stop, 1);
	return NULL;
}

int main(int argc, char **argv)
{
	static struct mover mv;
	char err[512];
	struct http_server *srv = NULL;
	pthread_t sigth;
	int ret = SVC_EXIT_FAILURE;

	http_signals_block();
	if (svc_wants_help(argc, argv)) {
		usage(stdout);
		return SVC_EXIT_OK;
	}
	if (argc > 2 || (argc == 2 && strcmp(argv[1], "--once"))) {
		usage(stderr);
		return SVC_EXIT_USAGE;
	}
	mv.once = argc == 2;
	svc_load_config(PROG, mover_vars, &mv.cfg);
	if ((ret = check_config(&mv)) != 0)
		return ret;
	log_init(PROG, (enum log_level)mv.cfg.log_level);
	log_set_task("mover");
	mv.rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, PROG ": cannot initialize libcurl\n");
		return SVC_EXIT_FAILURE;
	}
	ret = SVC_EXIT_FAILURE;
	if (!(mv.multi = curl_multi_init())) {
		fprintf(stderr, PROG ": cannot initialize libcurl\n");
		goto out;
	}
	mv.cp.multi = mv.src.multi = mv.dst.multi = mv.aux.multi = mv.multi;
	mv.cp.ca_file = mv.src.ca_file = mv.dst.ca_file = mv.aux.ca_file = mv.cfg.ca_file;
	if (!mv.once) {
		struct http_server_opts o = {
			.service = PROG,
			.listen = mv.cfg.listen,
			.threads = 1,
			.max_connections = 64,
			.connection_timeout_s = 30,
			.response_timeout_ms = 10000,
			.connection_memory = 16384,
			.access_log = 0,
			.routes = routes,
			.nroutes = sizeof routes / sizeof routes[0],
			.metrics_extra = mover_metrics,
			.app = &mv,
		};
		if (!(srv = http_server_start(&o, err, sizeof err))) {
			log_error(NULL, "%s", err);
			goto out;
		}
		char addr[96];
		cfg_addr_format(&mv.cfg.listen, addr, sizeof addr);
		log_write(LOG_INFO, NULL,
		          json_pack("{ss ss ss si si}", "region", mv.cfg.region, "mover", mv.id, "listen", addr, "port",
		                    http_server_port(srv), "cells", mv.ncells),
		          "mover listening");
	}
	if (pthread_create(&sigth, NULL, signal_thread, &mv) != 0) {
		log_error(NULL, "cannot start the signal thread");
		goto out;
	}
	ret = work(&mv);
	if (!atomic_load(&mv.stop)) {
		/* --once ended by itself: wake the signal thread. */
		atomic_store(&mv.stop, 1);
		pthread_kill(sigth, SIGTERM);
	}
	pthread_join(sigth, NULL);
out:
	if (srv) {
		http_server_drain(srv, 1000);
		http_server_free(srv);
	}
	mover_conn_free(&mv.cp);
	mover_conn_free(&mv.src);
	mover_conn_free(&mv.dst);
	mover_conn_free(&mv.aux);
	if (mv.multi)
		curl_multi_cleanup(mv.multi);
	curl_global_cleanup();
	log_info(NULL, "stopped");
	return ret;
}
