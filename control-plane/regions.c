/* The region catalog: GET /v1/regions (public), POST /v1/regions and
 * PATCH /v1/regions/{name} (admin). A catalog change raises the config
 * version of every region, since each region's document carries the
 * directory of all regions' endpoints. A region's shared cells, one per
 * cloud region, are made with it by a trigger of the migrations (so that
 * seeding and the previous build make them too). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_app.h"
#include "cpdb.h"
#include "http.h"
#include "mutate.h"
#include "names.h"
#include "requests.h"
#include "regions.h"
#include "residency.h"
#include "jwk.h"



struct region_ctx {
	struct region_in in;
	const char *name;
	char *clouds;   /* JSON text */
	char wave[16];
	char *stream_hosts, *stream_s3;   /* JSON array texts, NULL when not given */
	int set_stream_key;
	char *stream_key;                 /* JSON text of the public JWK; NULL: none */
};

/* The stream fields given (residency.h patterns, S3 region names, a
 * public P-256 JWK or null) into ctx; a step: 400 on the first bad one. */
static enum http_step validate_streams(struct http_req *req, struct region_ctx *ctx)
{
	struct region_in *in = &ctx->in;
	size_t i;
	json_t *v;
	if (in->stream_hosts) {
		json_array_foreach(in->stream_hosts, i, v)
			if (!json_is_string(v) || !residency_pattern_valid(json_string_value(v)))
				return http_reply_invalid_field(req, "stream_hosts",
				                                "stream_hosts must be at most %d host patterns: a DNS name, "
				                                "an IP address ([::1] for IPv6) or *.<name>; '%.100s' is not one.",
				                                RESIDENCY_MAX_RULES, json_is_string(v) ? json_string_value(v) : "?"),
				       HTTP_ANSWERED;
		ctx->stream_hosts = json_dumps(in->stream_hosts, JSON_COMPACT);
	}
	if (in->stream_s3_regions) {
		json_array_foreach(in->stream_s3_regions, i, v) {
			const char *r = json_string_value(v);
			if (!r || !*r || strlen(r) > 32 || strspn(r, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(r))
				return http_reply_invalid_field(req, "stream_s3_regions",
				                                "stream_s3_regions must be at most %d S3 region names "
				                                "(1 to 32 of a-z, 0-9 and '-').", RESIDENCY_MAX_RULES),
				       HTTP_ANSWERED;
		}
		ctx->stream_s3 = json_dumps(in->stream_s3_regions, JSON_COMPACT);
	}
	if (in->stream_key) {
		ctx->set_stream_key = 1;
		if (!json_is_null(in->stream_key)) {
			struct jwk k;
			char err[200];
			const char *use = json_string_value(json_object_get(in->stream_key, "use"));
			if (!json_is_object(in->stream_key) || jwk_from_json(in->stream_key, &k, err, sizeof err) != 0)
				return http_reply_invalid_field(req, "stream_key", "stream_key must be a public P-256 JWK "
				                                "(data-plane stream-key prints it) or null: %s.",
				                                json_is_object(in->stream_key) ? err : "not an object"),
				       HTTP_ANSWERED;
			if (json_object_get(in->stream_key, "d") || (json_object_get(in->stream_key, "use") && (!use || strcmp(use, "enc")))) {
				jwk_clear(&k);
				return http_reply_invalid_field(req, "stream_key", "stream_key must be the public half "
				                                "(no \"d\") of an encryption key (\"use\":\"enc\")."),
				       HTTP_ANSWERED;
			}
			/* Kept in one form whatever members were sent. */
			json_t *pub = json_pack("{ss ss ss ss ss ss ss}", "kty", "EC", "crv", "P-256", "x", k.x, "y",
			                        k.y, "kid", k.kid, "use", "enc", "alg", "ECDH-ES");
			ctx->stream_key = pub ? json_dumps(pub, JSON_COMPACT) : NULL;
			json_decref(pub);
			jwk_clear(&k);
			if (!ctx->stream_key)
				return HTTP_ANSWERED;
		}
	}
	return HTTP_GO_ON;
}

static void region_ctx_free(struct region_ctx *ctx)
{
	free(ctx->clouds);
	free(ctx->stream_hosts);
	free(ctx->stream_s3);
	free(ctx->stream_key);
}

/* Applies the stream fields given, if any, to region `name`. */
static enum db_status set_streams(struct db_conn *c, struct region_ctx *ctx, const char *name)
{
	if (!ctx->stream_hosts && !ctx->stream_s3 && !ctx->set_stream_key)
		return DB_OK;
	return cpdb_region_set_streams(c, name, ctx->stream_hosts, ctx->stream_s3, ctx->set_stream_key,
	                               ctx->stream_key);
}

enum http_result cp_regions_list(struct http_req *req)
{
	struct cp_app *app = http_req_app(req);
	struct db_conn *c = db_acquire(app->db);
	json_t *items;
	if (!c)
		return cp_reply_db_error(req, DB_UNAVAILABLE);
	enum db_status st = cpdb_regions_list(c, &items);
	db_release(app->db, c);
	if (st != DB_OK)
		return cp_reply_db_error(req, st);
	return http_reply_json(req, 200, cp_list_result(items));
}

enum http_result cp_regions_get(struct http_req *req)
{
	struct cp_app *app = http_req_app(req);
	const char *name = http_req_param(req, "name");
	json_t *doc;
	if (!name_valid_region(name))
		return http_reply_problem(req, PROB_NOT_FOUND, "No such region.");
	struct db_conn *c = db_acquire(app->db);
	if (!c)
		return cp_reply_db_error(req, DB_UNAVAILABLE);
	enum db_status st = cpdb_region_get(c, name, &doc);
	db_release(app->db, c);
	if (st == DB_NOT_FOUND)
		return http_reply_problem(req, PROB_NOT_FOUND, "No region named '%s'.", name);
	return st == DB_OK ? http_reply_json(req, 200, doc) : cp_reply_db_error(req, st);
}

/* Checks the fields given, a step: replies 400 and returns HTTP_ANSWERED
 * on the first bad one. */
static enum http_step validate(struct http_req *req, struct region_ctx *ctx)
{
	struct region_in *in = &ctx->in;
	if (in->display_name && (!*in->display_name))
		return http_reply_invalid_field(req, "display_name", "display_name must not be empty."), HTTP_ANSWERED;
	if (in->endpoint && !name_valid_endpoint(in->endpoint))
		return http_reply_invalid_field(req, "endpoint", "endpoint must be an http(s) URL without query or credentials."), HTTP_ANSWERED;
	if (in->status && strcmp(in->status, "active") && strcmp(in->status, "draining") &&
	    strcmp(in->status, "retired"))
		return http_reply_invalid_field(req, "status", "status must be active, draining or retired."), HTTP_ANSWERED;
	if (in->cloud_regions) {
		size_t i;
		json_t *v;
		if (json_array_size(in->cloud_regions) == 0)
			goto bad_clouds;
		json_array_foreach(in->cloud_regions, i, v)
			if (!json_is_string(v) || !name_valid_region(json_string_value(v)))
				goto bad_clouds;
		ctx->clouds = json_dumps(in->cloud_regions, JSON_COMPACT);
	}
	if (in->wave)
		snprintf(ctx->wave, sizeof ctx->wave, "%lld", (long long)in->wave);
	return validate_streams(req, ctx);
bad_clouds:
	return http_reply_invalid_field(req, "cloud_regions", "cloud_regions must be 1 to 16 names like eu-west-1."), HTTP_ANSWERED;
}

static enum db_status create_tx(struct db_conn *c, struct http_req *req, void *vctx,
                                struct cp_outcome *out)
{
	struct region_ctx *ctx = vctx;
	json_t *doc;
	/* A region never shadows a cell: both name documents and waves. */
	enum db_status st = cpdb_cell_get(c, ctx->in.name, &doc);
	if (st == DB_OK) {
		json_decref(doc);
		out->prob_extra = json_pack("{ss}", "field", "name");
		return cp_fail(out, PROB_CONFLICT, "'%s' is the name of a cell; a region needs another.",
		               ctx->in.name);
	}
	if (st != DB_NOT_FOUND)
		return st;
	st = cpdb_region_insert(c, ctx->in.name, ctx->in.display_name, ctx->clouds,
	                                       ctx->in.endpoint, ctx->wave, ctx->in.status, &doc);
	if (st == DB_CONFLICT)
		return cp_fail(out, PROB_CONFLICT, "Region '%s' exists already.", ctx->in.name);
	if (st != DB_OK)
		return st;
	if (ctx->stream_hosts || ctx->stream_s3 || ctx->set_stream_key) {
		json_decref(doc);
		doc = NULL;
		if ((st = set_streams(c, ctx, ctx->in.name)) != DB_OK ||
		    (st = cpdb_region_get(c, ctx->in.name, &doc)) != DB_OK)
			return st;
	}
	if ((st = cpdb_regions_bump_all(c)) != DB_OK ||
	    (st = cp_audit(c, req, NULL, "region.create", "region", ctx->in.name, NULL, doc)) != DB_OK) {
		json_decref(doc);
		return st;
	}
	snprintf(out->location, sizeof out->location, "/v1/regions/%s", ctx->in.name);
	return cp_done(out, 201, doc);
}

enum http_result cp_regions_create(struct http_req *req)
{
	struct region_ctx ctx = { 0 };
	json_t *obj;
	enum http_result rc = HTTP_REPLIED;
	if (cp_parse_body(req, cpreq_region_create, &ctx.in, NULL, &obj) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (!name_valid_region(ctx.in.name))
		rc = http_reply_invalid_field(req, "name", "name must match [a-z][a-z0-9-]* (at most 32 characters).");
	else if (validate(req, &ctx) == HTTP_GO_ON)
		rc = cp_mutate(req, create_tx, &ctx);
	region_ctx_free(&ctx);
	json_decref(obj);
	return rc;
}

static enum db_status update_tx(struct db_conn *c, struct http_req *req, void *vctx,
                                struct cp_outcome *out)
{
	struct region_ctx *ctx = vctx;
	json_t *before, *after = NULL;
	enum db_status st = cpdb_region_get(c, ctx->name, &before);
	if (st == DB_NOT_FOUND)
		return cp_fail(out, PROB_NOT_FOUND, "No region named '%s'.", ctx->name);
	if (st != DB_OK)
		return st;
	st = set_streams(c, ctx, ctx->name);
	if (st == DB_OK)
		st = cpdb_region_update(c, ctx->name, ctx->in.display_name, ctx->clouds, ctx->in.endpoint,
		                        ctx->wave[0] ? ctx->wave : NULL, ctx->in.status, &after);
	if (st == DB_OK && (st = cpdb_regions_bump_all(c)) == DB_OK)
		st = cp_audit(c, req, NULL, "region.update", "region", ctx->name, before, after);
	json_decref(before);
	if (st != DB_OK) {
		json_decref(after);
		return st;
	}
	/* The answer shows the version after this change's bump. */
	json_decref(after);
	if ((st = cpdb_region_get(c, ctx->name, &after)) != DB_OK)
		return st;
	return cp_done(out, 200, after);
}

enum http_result cp_regions_update(struct http_req *req)
{
	struct region_ctx ctx = { .name = http_req_param(req, "name") };
	json_t *obj;
	enum http_result rc = HTTP_REPLIED;
	if (!name_valid_region(ctx.name))
		return http_reply_problem(req, PROB_NOT_FOUND, "No such region.");
	if (cp_parse_body(req, cpreq_region_update, &ctx.in, NULL, &obj) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (validate(req, &ctx) == HTTP_GO_ON)
		rc = cp_mutate(req, update_tx, &ctx);
	region_ctx_free(&ctx);
	json_decref(obj);
	return rc;
}

/* Seeding: "name wave clouds endpoint display name..." per line. */
static enum db_status seed_tx(struct db_conn *c, void *vpath)
{
	const char *path = vpath;
	long n;
	enum db_status st = cpdb_regions_count(c, &n);
	if (st != DB_OK || n > 0)
		return st;
	FILE *f = fopen(path, "r");
	if (!f)
		return DB_ERROR;
	char line[512];
	while (st == DB_OK && fgets(line, sizeof line, f)) {
		char name[64], wave[16], clouds[256], endpoint[256], display[200];
		char *p = line + strspn(line, " \t");
		if (*p == '#' || *p == '\n' || *p == '\0')
			continue;
		int off = 0;
		if (sscanf(p, "%63s %15s %255s %255s %n", name, wave, clouds, endpoint, &off) != 4 ||
		    !name_valid_region(name) || !name_valid_endpoint(endpoint)) {
			st = DB_INVALID;
			break;
		}
		snprintf(display, sizeof display, "%s", p + off);
		display[strcspn(display, "\r\n")] = '\0';
		json_t *arr = json_array();
		for (char *tok = strtok(clouds, ","); tok; tok = strtok(NULL, ","))
			json_array_append_new(arr, json_string(tok));
		char *cj = json_dumps(arr, JSON_COMPACT);
		json_decref(arr);
		json_t *doc = NULL;
		st = cpdb_region_insert(c, name, display, cj, endpoint, wave, NULL, &doc);
		free(cj);
		json_decref(doc);
	}
	fclose(f);
	return st;
}

int cp_seed_regions(struct cp_app *app, const char *path)
{
	return db_tx(app->db, DB_SERIALIZABLE, seed_tx, (void *)path) == DB_OK ? 0 : -1;
}
