/* What the regions and cells use: GET /.well-known/jwks.json (public keys),
 * GET /v1/regions/{region}/config (the signed document, long-polled),
 * GET /v1/cells/{cell}/config (a cell's document, long-polled),
 * GET /v1/regions/{region}/routes (the routes document, long-polled),
 * POST /v1/regions/{name}/credentials (admin: a region's credential),
 * POST /v1/regions/{region}/status (a data plane's report) and
 * GET /v1/regions/{region}/fleet (admin: the reports). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_doc.h"
#include "cp_app.h"
#include "cpdb.h"
#include "http.h"
#include "longpoll.h"
#include "mutate.h"
#include "names.h"
#include "requests.h"
#include "principal.h"
#include "region_config.h"
#include "secret.h"
#include "signing_keys.h"

#define MAX_WAIT_S 60

static enum http_result no_keys(struct http_req *req)
{
	return http_reply_problem(req, PROB_UNAVAILABLE,
	                          "This control plane has no signing keys (neither CP_SIGNING_KEK nor CP_SIGNING_KEYS_DIR is set).");
}

enum http_result cp_jwks(struct http_req *req)
{
	struct cp_app *app = http_req_app(req);
	if (!cp_signing_configured(app))
		return no_keys(req);
	json_t *jwks = cp_signing_jwks(app);
	if (!jwks)
		return HTTP_FAILED;
	http_add_header(req, "Cache-Control", "max-age=60");
	return http_reply_json(req, 200, jwks);
}

/* Region routes are for that region's credential, or an admin; with
 * `cells`, also for a cell credential of a cell of the region (reports). */
static enum http_step region_allowed(struct http_req *req, const char *region, int cells)
{
	const struct cp_principal *p = cp_principal(req);
	if (!region || !name_valid_region(region))
		return http_reply_problem(req, PROB_NOT_FOUND, "No such region."), HTTP_ANSWERED;
	if (p->role == CP_ROLE_CELL && !cells)
		return http_reply_problem(req, PROB_FORBIDDEN, "A cell credential reads its cell's document "
		                          "(GET /v1/cells/%s/config), not the region's.", p->cell), HTTP_ANSWERED;
	if (p->role == CP_ROLE_ADMIN || ((p->role == CP_ROLE_REGION || p->role == CP_ROLE_CELL) &&
	                                 !strcmp(p->region, region)))
		return HTTP_GO_ON;
	return http_reply_problem(req, PROB_FORBIDDEN, "This credential belongs to another region."), HTTP_ANSWERED;
}

/* The version in If-None-Match ("12" or W/"12"); -1 when absent or not ours. */
static int64_t seen_version(struct http_req *req)
{
	const char *v = http_req_header(req, "If-None-Match");
	if (!v)
		return -1;
	if (!strncmp(v, "W/", 2))
		v += 2;
	size_t n = strlen(v);
	if (n < 3 || n > 21 || v[0] != '"' || v[n - 1] != '"' || strspn(v + 1, "0123456789") != n - 2)
		return -1;
	return atoll(v + 1);
}

/* The signed key set (common/keyset.h): public, like the JWK set, and
 * useful only to a holder that trusts one of the keys that sign it. */
enum http_result cp_keyset(struct http_req *req)
{
	struct cp_app *app = http_req_app(req);
	int64_t ver = 0;
	char etag[32];
	if (!app->signing)
		return http_reply_problem(req, PROB_NOT_FOUND, "This control plane keeps its signing keys in "
		                          "CP_SIGNING_KEYS_DIR: signed key sets need the keys in its database "
		                          "(CP_SIGNING_KEK).");
	char *doc = cp_signing_keyset(app, &ver);
	if (!doc)
		return http_reply_problem(req, PROB_UNAVAILABLE, "The signing keys cannot be read now.");
	snprintf(etag, sizeof etag, "\"%lld\"", (long long)ver);
	http_add_header(req, "ETag", etag);
	http_add_header(req, "Cache-Control", "no-cache");
	enum http_result rc = seen_version(req) == ver
	                          ? http_reply_raw(req, 304, NULL, "", 0)
	                          : http_reply_raw(req, 200, "application/jose+json", doc, strlen(doc));
	free(doc);
	return rc;
}

/* How long a request waits for the worker to publish what it needs (its
 * first document, a version the database has, a full document) when its
 * own wait is shorter. */
#define BUILD_WAIT_MS 10000

struct poll_state {
	int64_t deadline_ms;          /* the long poll's (?wait=N) */
	int64_t build_deadline_ms;    /* the wait for the worker, at least BUILD_WAIT_MS */
	int64_t since;                /* ?since=; -1: not given */
	int full;                     /* ?full=1 */
};

/* A query parameter of digits only, at most `max`; -1 when malformed. */
static int64_t digits(const char *v, int64_t max)
{
	if (!*v || strlen(v) > 18 || strspn(v, "0123456789") != strlen(v))
		return -1;
	int64_t n = atoll(v);
	return n > max ? -1 : n;
}

static enum http_result send_doc(struct http_req *req, struct cp_doc *doc)
{
	char etag[32];
	snprintf(etag, sizeof etag, "\"%lld\"", (long long)doc->version);
	http_add_header(req, "ETag", etag);
	http_add_header(req, "Cache-Control", "no-store");
	http_add_header(req, "Config-Kind", doc->base < 0 ? "full" : "delta");
	return http_reply_shared(req, 200, "application/jwt", doc->token, doc->len, cp_doc_release, doc);
}

static enum http_result not_modified(struct http_req *req, int64_t ver)
{
	char etag[32];
	snprintf(etag, sizeof etag, "\"%lld\"", (long long)ver);
	http_add_header(req, "ETag", etag);
	return http_reply_raw(req, 304, NULL, "", 0);
}

static enum http_result not_ready(struct http_req *req)
{
	http_add_header(req, "Retry-After", "1");
	return http_reply_problem(req, PROB_UNAVAILABLE, "The document is being built; try again shortly.");
}

/* Serves the document of `subj` with the long poll every document route
 * shares: ?wait=N (seconds, at most MAX_WAIT_S) and If-None-Match with the
 * version (ETag) the caller holds, or for a cell document ?since=<version>
 * (a delta from it when there is one; ?full=1 for a full document). Only
 * what the document worker published is served: a request that needs a
 * version it has not published yet parks until it has (at least
 * BUILD_WAIT_MS), and is woken by it. */
static enum http_result serve_doc(struct http_req *req, const struct cp_doc_subject *subj,
                                  const char *missing)
{
	struct cp_app *app = http_req_app(req);
	const char *wait = http_req_query(req, "wait");
	struct poll_state *ps = http_req_state(req);
	struct db_conn *c;
	int64_t current, seen, pub;
	int parked;

	if (!cp_signing_configured(app))
		return no_keys(req);
	if (!ps) {
		const char *since = subj->kind == CP_DOC_CELL ? http_req_query(req, "since") : NULL;
		const char *full = subj->kind == CP_DOC_CELL ? http_req_query(req, "full") : NULL;
		long w = 0;
		int64_t sv = -1;
		if (wait && (strspn(wait, "0123456789") != strlen(wait) || !*wait || strlen(wait) > 3 ||
		             (w = atol(wait)) > MAX_WAIT_S))
			return http_reply_invalid_field(req, "wait", "wait must be a number of seconds from 0 to %d.",
			                                MAX_WAIT_S);
		if (since && (sv = digits(since, INT64_MAX / 2)) < 0)
			return http_reply_invalid_field(req, "since", "since must be a config version (digits).");
		if (full && strcmp(full, "0") && strcmp(full, "1"))
			return http_reply_invalid_field(req, "full", "full must be 0 or 1.");
		ps = calloc(1, sizeof *ps);
		if (!ps)
			return HTTP_FAILED;
		ps->deadline_ms = lp_now_ms() + w * 1000;
		ps->build_deadline_ms = ps->deadline_ms > lp_now_ms() + BUILD_WAIT_MS ? ps->deadline_ms
		                                                                      : lp_now_ms() + BUILD_WAIT_MS;
		ps->since = sv;
		ps->full = full && !strcmp(full, "1");
		http_req_set_state(req, ps, free);
	}
	if (!(c = db_acquire(app->db)))
		return cp_reply_db_error(req, DB_UNAVAILABLE);
	enum db_status st = cpdb_region_version(c, subj->region, &current);
	db_release(app->db, c);
	if (st == DB_NOT_FOUND)
		return http_reply_problem(req, PROB_NOT_FOUND, "%s", missing);
	if (st != DB_OK)
		return cp_reply_db_error(req, st);
	seen = ps->since >= 0 ? ps->since : seen_version(req);

	/* A publication between a look and a park makes the park refuse
	 * (1): look again, a bounded number of times. */
	for (int look = 0; look < 4; look++) {
		struct cp_doc *full, *doc = NULL;
		int64_t now = lp_now_ms();
		if (cp_doc_published(app, subj, &pub, &full) != 0)
			return cp_reply_db_error(req, DB_ERROR);
		if (pub < current) {
			/* What the database has is not published yet: the worker
			 * builds it and wakes this request. */
			cp_doc_want(app, subj, -1);
			parked = now < ps->build_deadline_ms
			             ? lp_park(app->lp, req, subj->aud, pub, ps->build_deadline_ms) : -1;
			if (parked == 0 || parked == 1) {
				cp_doc_release(full);
				if (parked == 0)
					return HTTP_SUSPENDED;
				continue;
			}
			if (pub < 0) {
				cp_doc_release(full);
				return not_ready(req);
			}
		}
		if (seen >= pub && ps->full && ps->since >= 0 && seen == pub) {
			/* Up to date, and asking for the whole document of its
			 * version (a data plane whose deltas piled up): it once
			 * built, else the long poll for it. */
			if (full && full->version >= seen)
				return send_doc(req, full);
			cp_doc_release(full);
			cp_doc_want(app, subj, seen);
			parked = now < ps->deadline_ms ? lp_park(app->lp, req, subj->full_key, seen - 1, ps->deadline_ms) : -1;
			if (parked == 0)
				return HTTP_SUSPENDED;
			if (parked == 1)
				continue;
			return not_modified(req, pub);
		}
		if (seen >= pub) {
			/* Up to date: the long poll, then 304. */
			cp_doc_release(full);
			parked = now < ps->deadline_ms ? lp_park(app->lp, req, subj->aud, seen, ps->deadline_ms) : -1;
			if (parked == 0)
				return HTTP_SUSPENDED;
			if (parked == 1)
				continue;
			return not_modified(req, pub);
		}
		if (ps->since >= 0 && !ps->full) {
			/* A delta from the caller's version (its ver may be below
			 * pub: the caller asks again from there). */
			st = cp_doc_delta(app, subj, ps->since, &doc);
			if (st == DB_OK) {
				cp_doc_release(full);
				return send_doc(req, doc);
			}
			if (st != DB_NOT_FOUND) {
				cp_doc_release(full);
				return cp_reply_db_error(req, st);
			}
		}
		/* A full document: with ?since=, any newer than the caller's
		 * version; without (data planes of builds without deltas), the
		 * published version, as before. */
		if (full && (ps->since >= 0 ? full->version > seen : full->version >= pub))
			return send_doc(req, full);
		cp_doc_want(app, subj, pub);
		parked = now < ps->build_deadline_ms
		             ? lp_park(app->lp, req, subj->full_key, pub - 1, ps->build_deadline_ms) : -1;
		if (parked == 0 || parked == 1) {
			cp_doc_release(full);
			if (parked == 0)
				return HTTP_SUSPENDED;
			continue;
		}
		if (full && full->version > seen)
			return send_doc(req, full);
		cp_doc_release(full);
		return not_ready(req);
	}
	return not_ready(req);
}

enum http_result cp_region_config(struct http_req *req)
{
	const char *region = http_req_param(req, "region");
	struct cp_doc_subject subj;
	if (region_allowed(req, region, 0) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (cp_doc_subject(&subj, CP_DOC_REGION, region, NULL) != 0)
		return http_reply_problem(req, PROB_NOT_FOUND, "No such region.");
	return serve_doc(req, &subj, "No such region.");
}

enum http_result cp_region_routes(struct http_req *req)
{
	const char *region = http_req_param(req, "region");
	struct cp_doc_subject subj;
	if (region_allowed(req, region, 0) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (cp_doc_subject(&subj, CP_DOC_ROUTES, region, NULL) != 0)
		return http_reply_problem(req, PROB_NOT_FOUND, "No such region.");
	return serve_doc(req, &subj, "No such region.");
}

enum http_result cp_cell_config(struct http_req *req)
{
	struct cp_app *app = http_req_app(req);
	const struct cp_principal *p = cp_principal(req);
	const char *cell = http_req_param(req, "cell");
	struct cp_doc_subject subj;
	char region[33];
	json_t *doc;

	if (!cell || !name_valid_cell(cell))
		return http_reply_problem(req, PROB_NOT_FOUND, "No such cell.");
	if (p->role == CP_ROLE_CELL) {
		snprintf(region, sizeof region, "%s", p->region); /* the hook checked the cell */
	} else {
		/* Its region, once per request (a long poll runs this again). */
		struct db_conn *c = db_acquire(app->db);
		if (!c)
			return cp_reply_db_error(req, DB_UNAVAILABLE);
		enum db_status st = cpdb_cell_claim(c, cell, &doc);
		db_release(app->db, c);
		if (st == DB_NOT_FOUND)
			return http_reply_problem(req, PROB_NOT_FOUND, "No cell named '%s'.", cell);
		if (st != DB_OK)
			return cp_reply_db_error(req, st);
		snprintf(region, sizeof region, "%s", json_string_value(json_object_get(doc, "region")));
		json_decref(doc);
	}
	if (cp_doc_subject(&subj, CP_DOC_CELL, region, cell) != 0)
		return http_reply_problem(req, PROB_NOT_FOUND, "No such cell.");
	return serve_doc(req, &subj, "No such cell.");
}

struct cred_ctx {
	const char *region;
	char token[96];
};

static enum db_status cred_tx(struct db_conn *c, struct http_req *req, void *vctx,
                              struct cp_outcome *out)
{
	struct cred_ctx *ctx = vctx;
	char hex[65];
	json_t *doc, *r;
	enum db_status st = cpdb_region_get(c, ctx->region, &r);
	if (st == DB_NOT_FOUND)
		return cp_fail(out, PROB_NOT_FOUND, "No such region.");
	if (st != DB_OK)
		return st;
	json_decref(r);
	snprintf(ctx->token, sizeof ctx->token, "crt_%s_", ctx->region);
	if (secret_token_complete(ctx->token, sizeof ctx->token, hex) != 0)
		return DB_ERROR;
	if ((st = cpdb_credential_insert(c, ctx->region, hex, &doc)) != DB_OK)
		return st;
	if ((st = cp_audit(c, req, NULL, "region.credential.create", "region_credential",
	                   json_string_value(json_object_get(doc, "id")), NULL, doc)) != DB_OK) {
		json_decref(doc);
		return st;
	}
	return cp_credential_created(out, doc, ctx->token);
}

enum http_result cp_region_credentials_create(struct http_req *req)
{
	struct cred_ctx ctx = { .region = http_req_param(req, "name") };
	if (!name_valid_region(ctx.region))
		return http_reply_problem(req, PROB_NOT_FOUND, "No such region.");
	enum http_result rc = cp_mutate(req, cred_tx, &ctx);
	memset(ctx.token, 0, sizeof ctx.token);
	return rc;
}



enum http_result cp_region_status(struct http_req *req)
{
	struct cp_app *app = http_req_app(req);
	const char *region = http_req_param(req, "region");
	struct status_in in = { 0 };
	uint64_t present;
	json_t *obj;
	char ver[24];

	if (region_allowed(req, region, 1) != HTTP_GO_ON ||
	    cp_parse_body(req, cpreq_region_status, &in, &present, &obj) != HTTP_GO_ON)
		return HTTP_REPLIED;
	const struct cp_principal *p = cp_principal(req);
	enum http_result rc;
	if (in.cell && !name_valid_cell(in.cell))
		rc = http_reply_invalid_field(req, "cell", "cell must be a cell name like us-east-1.");
	else if (p->role == CP_ROLE_CELL && in.cell && strcmp(in.cell, p->cell) != 0)
		rc = http_reply_problem(req, PROB_FORBIDDEN, "This credential belongs to cell %s.", p->cell);
	else if (!*in.instance || strspn(in.instance, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-") != strlen(in.instance))
		rc = http_reply_invalid_field(req, "instance", "instance must be 1 to 128 characters of [A-Za-z0-9._:-].");
	else if (in.source && strcmp(in.source, "control-plane") && strcmp(in.source, "cache"))
		rc = http_reply_invalid_field(req, "source", "source must be control-plane or cache.");
	else if (in.last_pull_ok_at && !name_valid_timestamp(in.last_pull_ok_at))
		rc = http_reply_invalid_field(req, "last_pull_ok_at", "last_pull_ok_at must be an RFC 3339 time.");
	else {
		struct db_conn *c = db_acquire(app->db);
		const char *cell = p->role == CP_ROLE_CELL ? p->cell : in.cell;
		json_t *cd = NULL;
		snprintf(ver, sizeof ver, "%lld", (long long)in.version);
		enum db_status st = DB_UNAVAILABLE;
		int foreign = 0;
		if (c) {
			/* A cell named by a region credential must be of the region. */
			st = cell ? cpdb_cell_get(c, cell, &cd) : DB_OK;
			if (st == DB_NOT_FOUND || (cd && strcmp(json_string_value(json_object_get(cd, "region")), region)))
				foreign = 1, st = DB_OK;
			json_decref(cd);
			if (st == DB_OK && !foreign)
				st = cpdb_fleet_upsert(c, region, in.instance, (present & 2) ? ver : NULL, in.source,
				                       in.last_pull_ok_at, in.last_error, in.stale ? "true" : "false",
				                       cell);
			db_release(app->db, c);
		}
		if (foreign)
			rc = http_reply_problem_ex(req, PROB_UNPROCESSABLE, json_pack("{ss}", "field", "cell"),
			                           "Region %s has no cell named '%s'.", region, cell);
		else
			rc = st == DB_OK ? http_reply_json(req, 200, json_pack("{sb}", "recorded", 1))
			                 : cp_reply_db_error(req, st);
	}
	json_decref(obj);
	return rc;
}

enum http_result cp_region_fleet(struct http_req *req)
{
	struct cp_app *app = http_req_app(req);
	const char *region = http_req_param(req, "region");
	json_t *items;
	int64_t ver;
	if (!name_valid_region(region))
		return http_reply_problem(req, PROB_NOT_FOUND, "No such region.");
	struct db_conn *c = db_acquire(app->db);
	if (!c)
		return cp_reply_db_error(req, DB_UNAVAILABLE);
	enum db_status st = cpdb_region_version(c, region, &ver);
	if (st == DB_OK)
		st = cpdb_fleet_list(c, region, app->cfg.fleet_silent_after_ms / 1000, &items);
	db_release(app->db, c);
	if (st == DB_NOT_FOUND)
		return http_reply_problem(req, PROB_NOT_FOUND, "No such region.");
	if (st != DB_OK)
		return cp_reply_db_error(req, st);
	json_t *body = cp_list_result(items);
	json_object_set_new(body, "region", json_string(region));
	json_object_set_new(body, "config_version", json_integer(ver));
	return http_reply_json(req, 200, body);
}
