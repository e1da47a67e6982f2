/* API-key authentication of tenant routes, against the configuration in
 * use only: no database, no control plane on a request's path.
 *
 * Order: the key's text; its region (a key of another region of the
 * directory is answered 421 with that region's endpoint, and nothing else
 * is looked at; a region the directory does not name is a mistyped key,
 * 401; with no document yet, every other region's key is sent on, with a
 * null endpoint); a verified,
 * usable configuration (503 otherwise); the key id, its secret (constant
 * time) and expiry (401); the tenant's status (deleted 401; suspended:
 * 403 tenant_suspended on a write, let through on a read, so that a
 * suspended tenant can still read its trail). The secret is checked before
 * the tenant's status, so that a wrong secret never learns whether a
 * tenant is suspended. A write is refused here, before its body is read.
 *
 * With DP_CELL, a request the cell router sent here for another cell
 * (X-Celltrail-Cell names another one), or for this cell with a key id
 * this cell's document does not hold (the router's map and this document
 * disagree, e.g. while a tenant moves), is never served: 503 wrong_cell
 * with Retry-After: 1, by the time which the router has the newer map. A
 * read without a body routed for this cell with a key id the document does
 * not hold first waits, parked (cell_wait.c), for a newer document, at most
 * DP_WRONG_CELL_WAIT, and is authenticated again with it: the router's map
 * may be ahead of this cell's document (a tenant just moved here). Writes
 * are answered at once: a client retries them after Retry-After anyway. It
 * comes after the region check (a key of another region is 421 whatever
 * the header says) and is logged and counted. Without the header, a key
 * this document does not hold is 401, as in a region without cells.
 *
 * After a move between regions: a key whose id the document's `moved`
 * claim lists is answered 421 with the region its tenant lives in now,
 * before anything else; a key whose first part names another region but
 * whose id this document holds is served (its region is an alias until the
 * key is rotated). Move routes (auth DP_AUTH_MOVE_*) are move.c's. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "apikey.h"
#include "cell_wait.h"
#include "dp.h"
#include "feed_wait.h"
#include "http.h"
#include "log.h"
#include "names.h"
#include "secret.h"
#include "snapshot.h"

#define RETRY_AFTER "5"

static enum http_step unauthorized(struct http_req *req, const char *detail)
{
	http_add_header(req, "WWW-Authenticate", "Bearer");
	http_reply_problem(req, PROB_UNAUTHORIZED, "%s", detail);
	return HTTP_ANSWERED;
}

static atomic_uint_least64_t wrong_cell_requests;
/* Routed requests that waited for a newer document, by how it ended. */
static atomic_uint_least64_t waits_served, waits_refused;

void dp_auth_metrics(FILE *out)
{
	fprintf(out,
	        "# HELP dp_wrong_cell_requests_total Requests refused with 503 wrong_cell: routed for another cell, or for this one with a key its document does not hold.\n"
	        "# TYPE dp_wrong_cell_requests_total counter\n"
	        "dp_wrong_cell_requests_total %llu\n",
	        (unsigned long long)atomic_load(&wrong_cell_requests));
	fprintf(out,
	        "# HELP dp_wrong_cell_waits_total Reads routed here for a key this cell's document did not hold that waited for a newer document (DP_WRONG_CELL_WAIT), by outcome: served (the newer document held it) or refused (503 wrong_cell).\n"
	        "# TYPE dp_wrong_cell_waits_total counter\n"
	        "dp_wrong_cell_waits_total{outcome=\"served\"} %llu\n"
	        "dp_wrong_cell_waits_total{outcome=\"refused\"} %llu\n",
	        (unsigned long long)atomic_load(&waits_served),
	        (unsigned long long)atomic_load(&waits_refused));
}

/* `routed` is the header's value (a client reaching this instance
 * directly may have sent anything: quoted only when it is a cell name). */
static enum http_step wrong_cell(struct http_req *req, const char *cell, const char *routed,
                                 const char *key_id)
{
	const char *shown = name_valid_cell(routed) ? routed : "(not a cell name)";
	atomic_fetch_add(&wrong_cell_requests, 1);
	log_write(LOG_WARN, NULL, json_pack("{ss ss ss}", "key_id", key_id, "cell", cell, "routed_cell", shown),
	          "request for key %s routed to cell %s reached cell %s: refused (wrong_cell)", key_id,
	          shown, cell);
	http_add_header(req, "Retry-After", "1");
	http_reply_problem(req, PROB_WRONG_CELL,
	                   "This request reached cell %s, which does not serve its key; retry shortly.", cell);
	return HTTP_ANSWERED;
}

static enum http_step unavailable(struct http_req *req, const char *detail)
{
	http_add_header(req, "Retry-After", RETRY_AFTER);
	http_reply_problem(req, PROB_UNAVAILABLE, "%s", detail);
	return HTTP_ANSWERED;
}

int dp_route_writes(struct http_req *req)
{
	const char *m = http_req_method(req);
	return strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0;
}

/* A request's wait for a newer document (its state across its parks). */
struct cell_wait_state {
	int64_t deadline_ms;
};

/* A read with no body: the only requests that may be parked here. */
static int may_wait(struct http_req *req)
{
	const char *cl = http_req_header(req, "Content-Length");
	return !dp_route_writes(req) && !http_req_header(req, "Transfer-Encoding") &&
	       (!cl || strcmp(cl, "0") == 0);
}

/* Parks a request routed here for key id unknown to the document, until a
 * newer document or its deadline. HTTP_PARKED when parked, HTTP_GO_ON to
 * authenticate again now (a document was installed meanwhile), else
 * HTTP_ANSWERED when it is refused (wrong_cell). */
static enum http_step wait_for_document(struct http_req *req, uint64_t gen, const char *routed,
                                        const char *key_id)
{
	struct dp_app *app = http_req_app(req);
	struct cell_wait_state *w = http_req_state(req);
	int64_t now = dp_feed_now_ms();

	if (app->cfg.wrong_cell_wait_ms <= 0 || !may_wait(req))
		return wrong_cell(req, app->cfg.cell, routed, key_id);
	if (!w) {
		if (!(w = calloc(1, sizeof *w)))
			return wrong_cell(req, app->cfg.cell, routed, key_id);
		w->deadline_ms = now + app->cfg.wrong_cell_wait_ms;
		http_req_set_state(req, w, free);
	}
	if (now < w->deadline_ms) {
		switch (dp_cell_wait_park(app->cell_wait, req, gen, w->deadline_ms)) {
		case DP_CELL_PARKED:
			return HTTP_PARKED;
		case DP_CELL_CHANGED:
			return HTTP_GO_ON;
		case DP_CELL_REFUSED:
			break;
		}
	}
	atomic_fetch_add(&waits_refused, 1);
	http_req_set_state(req, NULL, NULL);
	return wrong_cell(req, app->cfg.cell, routed, key_id);
}

enum http_step dp_authenticate(struct http_req *req, int auth)
{
	struct dp_app *app = http_req_app(req);
	const char *text = http_req_bearer(req);
	struct apikey key;
	enum http_step ret = HTTP_ANSWERED;

	if (auth != DP_AUTH_API_KEY)
		return dp_move_authenticate(req, auth);
	if (!text || apikey_parse(text, &key) != 0)
		return unauthorized(req, "Send an API key as Authorization: Bearer <key>.");

again:;
	/* Read before the document, so that one installed after it wakes. */
	uint64_t gen = dp_cell_wait_gen(app->cell_wait);
	const struct dp_snapshot *s = dp_snaps_enter(app->snaps);
	const struct cfgdoc_moved *mv = s ? cfgdoc_find_moved(s->doc, key.id) : NULL;
	if (mv) {
		const struct cfgdoc_region *r = cfgdoc_find_region(s->doc, mv->region);
		json_t *extra = json_pack("{ss so}", "region", mv->region, "endpoint",
		                          r && r->endpoint[0] ? json_string(r->endpoint) : json_null());
		http_reply_problem_ex(req, PROB_MISDIRECTED, extra,
		                      "This key's tenant now lives in region %s; send its requests there.",
		                      mv->region);
		goto out;
	}
	if (strcmp(key.region, app->cfg.region) != 0) {
		/* Told from the key and the directory of whatever document is
		 * loaded, even an expired one: a region it does not name is a
		 * typo, not a place to send the client. */
		const struct cfgdoc_region *r = s ? cfgdoc_find_region(s->doc, key.region) : NULL;
		if (s && !r) {
			unauthorized(req, "Unknown API key: its first part names no region.");
			goto out;
		}
		/* A key this document holds is one whose tenant moved here: its
		 * first part is an alias of this region. */
		if (!r || !cfgdoc_find_key(s->doc, key.id)) {
			json_t *extra = json_pack("{ss so}", "region", key.region, "endpoint",
			                          r && r->endpoint[0] ? json_string(r->endpoint) : json_null());
			http_reply_problem_ex(req, PROB_MISDIRECTED, extra,
			                      "This key belongs to region %s; send its requests to that region.",
			                      key.region);
			goto out;
		}
	}
	/* The router's cell, when it routed the request (cell mode only). */
	const char *routed = app->cfg.cell ? http_req_header(req, DP_CELL_HEADER) : NULL;
	if (routed && strcmp(routed, app->cfg.cell) != 0) {
		wrong_cell(req, app->cfg.cell, routed, key.id);
		goto out;
	}
	if (!s) {
		unavailable(req, "This region has no verified configuration yet.");
		goto out;
	}
	int64_t now = (int64_t)time(NULL);
	if (app->cfg.stale_policy == DP_STALE_FAIL_CLOSED && dp_snapshot_stale(s, now)) {
		unavailable(req, "This region's configuration has expired and it is set to fail closed.");
		goto out;
	}
	const struct cfgdoc_key *k = cfgdoc_find_key(s->doc, key.id);
	if (!k && routed) {
		ret = wait_for_document(req, gen, routed, key.id);
		if (ret == HTTP_GO_ON) {
			dp_snaps_leave(app->snaps);
			goto again;
		}
		goto out;
	}
	/* The handler starts with a state of its own. */
	if (http_req_state(req)) {
		atomic_fetch_add(&waits_served, 1);
		http_req_set_state(req, NULL, NULL);
	}
	static const unsigned char none[32];
	/* Compared even for an unknown id, so that both take the same time. */
	int match = secret_equal(k ? k->sha256 : none, key.secret_sha256, 32) && k;
	if (!match || (k->expires && now >= k->expires)) {
		unauthorized(req, "Unknown, revoked or expired API key.");
		goto out;
	}
	const struct cfgdoc_tenant *t = cfgdoc_key_tenant(s->doc, k);
	if (t->status != 'd')
		http_req_set_log_ids(req, t->id, k->id);
	if (t->status == 'd') {
		unauthorized(req, "Unknown, revoked or expired API key.");
		goto out;
	}
	if (t->status == 's' && dp_route_writes(req)) {
		http_reply_problem(req, PROB_TENANT_SUSPENDED,
		                   "This tenant is suspended: it can read its events but not write any.");
		goto out;
	}
	struct dp_auth *a = calloc(1, sizeof *a);
	if (!a)
		goto out; /* the layer answers 500 */
	memcpy(a->tenant_id, t->id, sizeof a->tenant_id);
	memcpy(a->slug, t->slug, sizeof a->slug);
	a->status = t->status;
	a->plan = *cfgdoc_tenant_plan(s->doc, t);
	memcpy(a->key_id, k->id, sizeof a->key_id);
	a->scopes = k->scopes;
	a->config_version = s->doc->ver;
	http_req_set_auth(req, a, free);
	ret = HTTP_GO_ON;
out:
	dp_snaps_leave(app->snaps);
	return ret;
}
