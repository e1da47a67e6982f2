/* Log streams of a tenant, and the data planes' reports of them (streams.h). */
#include <arpa/inet.h>
#include <math.h>
#include <stddef.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "cp_app.h"
#include "cpdb.h"
#include "http.h"
#include "mutate.h"
#include "names.h"
#include "principal.h"
#include "requests.h"
#include "residency.h"
#include "secret.h"
#include "streams.h"

/* The destination fields, as bits; kinds say which they take. */
enum {
	F_URL = 1 << 0,
	F_SECRET = 1 << 1,
	F_TOKEN = 1 << 2,
	F_ENDPOINT = 1 << 3,
	F_BUCKET = 1 << 4,
	F_REGION = 1 << 5,
	F_AKID = 1 << 6,
	F_SAK = 1 << 7,
	F_PREFIX = 1 << 8,
	F_SECRETS = F_SECRET | F_TOKEN | F_SAK,
};
#define NFIELDS 9
static const char *const field_names[NFIELDS] = { "url", "secret", "token", "endpoint", "bucket",
	                                              "region", "access_key_id", "secret_access_key",
	                                              "prefix" };

static const char **field_ptr(struct stream_in *in, int i)
{
	const char **p[NFIELDS] = { &in->url, &in->secret, &in->token, &in->endpoint, &in->bucket,
		                        &in->region, &in->access_key_id, &in->secret_access_key, &in->prefix };
	return p[i];
}

static const struct kind_def {
	const char *name;
	unsigned required, allowed;
} kinds[] = {
	{ "webhook", F_URL | F_SECRET, F_URL | F_SECRET },
	{ "splunk_hec", F_URL | F_TOKEN, F_URL | F_TOKEN },
	{ "s3", F_ENDPOINT | F_BUCKET | F_REGION | F_AKID | F_SAK,
	  F_ENDPOINT | F_BUCKET | F_REGION | F_AKID | F_SAK | F_PREFIX },
};

static const struct kind_def *kind_find(const char *name)
{
	for (size_t i = 0; name && i < sizeof kinds / sizeof kinds[0]; i++)
		if (!strcmp(kinds[i].name, name))
			return &kinds[i];
	return NULL;
}

static unsigned given(struct stream_in *in)
{
	unsigned g = 0;
	for (int i = 0; i < NFIELDS; i++)
		if (*field_ptr(in, i))
			g |= 1u << i;
	return g;
}

static int all_in(const char *s, const char *set)
{
	return strspn(s, set) == strlen(s);
}

#define ALNUM_LOWER "abcdefghijklmnopqrstuvwxyz0123456789"
#define ALNUM ALNUM_LOWER "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

/* Characters from `lo` to `hi` only. */
static int in_range(const char *s, char lo, char hi)
{
	for (; *s; s++)
		if (*s < lo || *s > hi)
			return 0;
	return 1;
}

/* Standard Webhooks: "whsec_" and the base64 (standard alphabet, padded)
 * of the signing key, which is 24 to 64 bytes. */
static int valid_webhook_secret(const char *s)
{
	if (strncmp(s, "whsec_", 6) != 0)
		return 0;
	s += 6;
	size_t n = strlen(s), pad = 0;
	if (n == 0 || n % 4 != 0)
		return 0;
	while (pad < 2 && s[n - 1 - pad] == '=')
		pad++;
	if (strspn(s, ALNUM "+/") != n - pad)
		return 0;
	size_t bytes = n / 4 * 3 - pad;
	return bytes >= 24 && bytes <= 64;
}

/* S3 bucket naming: 3 to 63 of [a-z0-9.-], beginning and ending with a
 * letter or digit, no "..", not an IPv4 address. */
static int valid_bucket(const char *s)
{
	size_t n = strlen(s);
	unsigned char a[4];
	return n >= 3 && n <= 63 && all_in(s, ALNUM_LOWER ".-") && strchr(ALNUM_LOWER, s[0]) &&
	       strchr(ALNUM_LOWER, s[n - 1]) && !strstr(s, "..") && inet_pton(AF_INET, s, a) != 1;
}

/* Checks the format of every field given, a step: 400 naming the first
 * bad one. Which fields a kind takes is checked against the kind. */
static enum http_step validate_formats(struct http_req *req, struct stream_in *in)
{
	const char *f = NULL, *why = NULL;
	if (in->secret && !valid_webhook_secret(in->secret))
		f = "secret", why = "secret must be whsec_ followed by the base64 of 24 to 64 random bytes.";
	else if (in->token && (!*in->token || !in_range(in->token, '!', '~')))
		f = "token", why = "token must be 1 to 256 printable ASCII characters without spaces.";
	else if (in->bucket && !valid_bucket(in->bucket))
		f = "bucket", why = "bucket must be an S3 bucket name: 3 to 63 of a-z, 0-9, '.' and '-', "
		                    "beginning and ending with a letter or digit.";
	else if (in->region && (!*in->region || !all_in(in->region, ALNUM_LOWER "-")))
		f = "region", why = "region must be an S3 region name: 1 to 32 of a-z, 0-9 and '-'.";
	else if (in->access_key_id && (strlen(in->access_key_id) < 3 || !all_in(in->access_key_id, ALNUM)))
		f = "access_key_id", why = "access_key_id must be 3 to 128 letters and digits.";
	else if (in->secret_access_key && (!*in->secret_access_key || !in_range(in->secret_access_key, ' ', '~')))
		f = "secret_access_key", why = "secret_access_key must be 1 to 256 printable ASCII characters.";
	else if (in->prefix && !all_in(in->prefix, ALNUM "!_.*'()/-"))
		f = "prefix", why = "prefix must be at most 256 of A-Z, a-z, 0-9 and !_.*'()/-.";
	else if (in->url && !*in->url)
		f = "url", why = "url must not be empty.";
	else if (in->endpoint && !*in->endpoint)
		f = "endpoint", why = "endpoint must not be empty.";
	if (!f)
		return HTTP_GO_ON;
	http_reply_invalid_field(req, f, "%s", why);
	return HTTP_ANSWERED;
}

struct stream_ctx {
	struct stream_in in;
	const char *tenant_id, *stream_id;
	unsigned given;
	char *sealed;                 /* the new secret, sealed with CP_SECRETS_KEY; NULL: none given */
	enum cpdb_stream_cmd cmd;
};

/* Seals the secret field given (one at most: the kinds take one each)
 * and wipes it from the parsed body. 0, or -1 when sealing failed. */
static int seal_given_secret(struct http_req *req, struct stream_ctx *ctx)
{
	struct cp_app *app = http_req_app(req);
	const char *s = ctx->in.secret ? ctx->in.secret : ctx->in.token ? ctx->in.token : ctx->in.secret_access_key;
	if (!s)
		return 0;
	ctx->sealed = secret_seal(app->secrets_key, s, strlen(s));
	for (int i = 0; i < NFIELDS; i++) {
		const char *v = *field_ptr(&ctx->in, i);
		if ((F_SECRETS & (1u << i)) && v)
			OPENSSL_cleanse((char *)v, strlen(v));
	}
	return ctx->sealed ? 0 : -1;
}

/* The tenant, live, or a 404 outcome; its home region into `region`. */
static enum db_status tenant_region(struct db_conn *c, const char *tenant_id, int for_update,
                                    struct cp_outcome *out, char region[33])
{
	json_t *tenant;
	enum db_status st = cpdb_tenant_get(c, tenant_id, for_update, &tenant);
	if (st == DB_NOT_FOUND)
		return cp_fail(out, PROB_NOT_FOUND, "No such tenant.");
	if (st != DB_OK)
		return st;
	const char *status = json_string_value(json_object_get(tenant, "status"));
	int deleted = !status || !strcmp(status, "deleted");
	snprintf(region, 33, "%s", json_string_value(json_object_get(tenant, "region")));
	json_decref(tenant);
	return deleted ? cp_fail(out, PROB_NOT_FOUND, "No such tenant.") : DB_OK;
}

/* Checks `dest` (the destination's public fields) against the region's
 * rule: a 422 outcome naming the rule, or DB_OK. */
static enum db_status check_residency(struct db_conn *c, const char *region, const char *kind,
                                      json_t *dest, struct cp_outcome *out)
{
	json_t *rule;
	struct residency_rule r = { 0 };
	char why[600];
	size_t i;
	json_t *v;
	enum db_status st = cpdb_region_stream_rule(c, region, &rule);
	if (st != DB_OK)
		return st;
	json_array_foreach(json_object_get(rule, "hosts"), i, v)
		if (r.nhosts < RESIDENCY_MAX_RULES)
			r.hosts[r.nhosts++] = json_string_value(v);
	json_array_foreach(json_object_get(rule, "s3_regions"), i, v)
		if (r.ns3 < RESIDENCY_MAX_RULES)
			r.s3_regions[r.ns3++] = json_string_value(v);
	int s3 = !strcmp(kind, "s3");
	const char *url = json_string_value(json_object_get(dest, s3 ? "endpoint" : "url"));
	const char *s3r = s3 ? json_string_value(json_object_get(dest, "region")) : NULL;
	if (s3 && !s3r)
		s3r = "";
	if (residency_check(&r, region, url ? url : "", s3r, why, sizeof why) != 0) {
		out->prob_extra = json_pack("{ss}", "field",
		                            s3 && strstr(why, "stream_s3_regions") ? "region" : s3 ? "endpoint" : "url");
		st = cp_fail(out, PROB_DESTINATION_NOT_ALLOWED, "%s", why);
	}
	json_decref(rule);
	return st;
}

/* Sets the given public fields of `in` into `dest`. */
static void dest_set(json_t *dest, struct stream_in *in, unsigned allowed)
{
	for (int i = 0; i < NFIELDS; i++) {
		const char *v = *field_ptr(in, i);
		if (v && (allowed & (1u << i)) && !(F_SECRETS & (1u << i)))
			json_object_set_new(dest, field_names[i], json_string(v));
	}
}

/* A field given that the kind does not take: a 400 outcome, else DB_OK. */
static enum db_status foreign_fields(const struct kind_def *k, unsigned g, struct cp_outcome *out)
{
	for (int i = 0; i < NFIELDS; i++)
		if ((g & (1u << i)) && !(k->allowed & (1u << i))) {
			out->prob_extra = json_pack("{ss}", "field", field_names[i]);
			return cp_fail(out, PROB_VALIDATION, "%s is not a field of a %s stream.", field_names[i], k->name);
		}
	return DB_OK;
}

static enum db_status create_tx(struct db_conn *c, struct http_req *req, void *vctx,
                                struct cp_outcome *out)
{
	struct stream_ctx *ctx = vctx;
	const struct kind_def *k = kind_find(ctx->in.kind);
	char region[33], id[40];
	long n;
	json_t *dest = NULL, *doc = NULL;
	char *dtext = NULL;
	enum db_status st = tenant_region(c, ctx->tenant_id, 1, out, region);
	if (st != DB_OK)
		return st;
	if ((st = cpdb_streams_count(c, ctx->tenant_id, &n)) != DB_OK)
		return st;
	if (n >= CP_STREAMS_MAX)
		return cp_fail(out, PROB_CONFLICT, "The tenant has %ld streams, the most it may have; delete one first.", n);
	if (!(dest = json_object()))
		return DB_ERROR;
	dest_set(dest, &ctx->in, k->allowed);
	if (!strcmp(k->name, "s3") && !json_object_get(dest, "prefix"))
		json_object_set_new(dest, "prefix", json_string(""));
	if ((st = check_residency(c, region, k->name, dest, out)) != DB_OK)
		goto out;
	st = DB_ERROR;
	if (!(dtext = json_dumps(dest, JSON_COMPACT)))
		goto out;
	st = cpdb_stream_insert(c, ctx->tenant_id, k->name, dtext, ctx->sealed, ctx->in.paused, ctx->in.since, id);
	if (st == DB_INVALID) {
		out->prob_extra = json_pack("{ss}", "field", "since");
		st = cp_fail(out, PROB_VALIDATION, "since is not a time the service can keep.");
	}
	if (st != DB_OK)
		goto out;
	if ((st = cpdb_stream_get(c, ctx->tenant_id, id, &doc)) != DB_OK ||
	    (st = cpdb_region_bump(c, region)) != DB_OK ||
	    (st = cp_audit(c, req, ctx->tenant_id, "stream.create", "stream", id, NULL, doc)) != DB_OK)
		goto out;
	snprintf(out->location, sizeof out->location, "/v1/tenants/%s/streams/%s", ctx->tenant_id, id);
	st = cp_done(out, 201, doc);
	doc = NULL;
out:
	json_decref(doc);
	json_decref(dest);
	free(dtext);
	return st;
}

/* The tenant in the path may be seen (read) or changed (write) by the
 * caller, and its id has a UUID's shape: a step. */
static enum http_step tenant_allowed(struct http_req *req, const char *tenant_id, int write)
{
	if (!name_valid_uuid(tenant_id))
		return http_reply_problem(req, PROB_NOT_FOUND, "No such tenant."), HTTP_ANSWERED;
	return cp_require_tenant(req, tenant_id, write);
}

enum http_result cp_streams_create(struct http_req *req)
{
	struct stream_ctx ctx = { .tenant_id = http_req_param(req, "id") };
	json_t *obj;
	enum http_result rc = HTTP_REPLIED;
	if (tenant_allowed(req, ctx.tenant_id, 1) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (cp_parse_body(req, cpreq_stream_create, &ctx.in, NULL, &obj) != HTTP_GO_ON)
		return HTTP_REPLIED;
	const struct kind_def *k = kind_find(ctx.in.kind);
	unsigned g = given(&ctx.in);
	if (!k) {
		rc = http_reply_invalid_field(req, "kind", "kind must be webhook, splunk_hec or s3.");
		goto out;
	}
	for (int i = 0; i < NFIELDS; i++)
		if ((g & (1u << i)) && !(k->allowed & (1u << i))) {
			rc = http_reply_invalid_field(req, field_names[i], "%s is not a field of a %s stream.",
			                              field_names[i], k->name);
			goto out;
		}
	for (int i = 0; i < NFIELDS; i++) {
		if ((k->required & (1u << i)) && !(g & (1u << i))) {
			rc = http_reply_invalid_field(req, field_names[i], "A %s stream needs %s.", k->name,
			                              field_names[i]);
			goto out;
		}
	}
	if (validate_formats(req, &ctx.in) != HTTP_GO_ON)
		goto out;
	if (ctx.in.since && !name_valid_timestamp(ctx.in.since)) {
		rc = http_reply_invalid_field(req, "since", "since must be an RFC 3339 time, e.g. 2030-01-01T00:00:00Z.");
		goto out;
	}
	if (seal_given_secret(req, &ctx) != 0) {
		rc = HTTP_FAILED;
		goto out;
	}
	rc = cp_mutate(req, create_tx, &ctx);
out:
	free(ctx.sealed);
	json_decref(obj);
	return rc;
}

static enum db_status list_tx(struct db_conn *c, struct http_req *req, void *vctx, struct cp_outcome *out)
{
	(void)req;
	struct stream_ctx *ctx = vctx;
	char region[33];
	json_t *items;
	enum db_status st = tenant_region(c, ctx->tenant_id, 0, out, region);
	if (st == DB_OK && (st = cpdb_streams_list(c, ctx->tenant_id, &items)) == DB_OK)
		st = cp_done(out, 200, cp_list_result(items));
	return st;
}

enum http_result cp_streams_list(struct http_req *req)
{
	struct stream_ctx ctx = { .tenant_id = http_req_param(req, "id") };
	if (tenant_allowed(req, ctx.tenant_id, 0) != HTTP_GO_ON)
		return HTTP_REPLIED;
	return cp_read(req, list_tx, &ctx);
}

static enum db_status get_tx(struct db_conn *c, struct http_req *req, void *vctx, struct cp_outcome *out)
{
	(void)req;
	struct stream_ctx *ctx = vctx;
	char region[33];
	json_t *doc;
	enum db_status st = tenant_region(c, ctx->tenant_id, 0, out, region);
	if (st != DB_OK)
		return st;
	st = cpdb_stream_get(c, ctx->tenant_id, ctx->stream_id, &doc);
	if (st == DB_NOT_FOUND)
		return cp_fail(out, PROB_NOT_FOUND, "No such stream.");
	return st == DB_OK ? cp_done(out, 200, doc) : st;
}

/* The path's tenant and stream, a step (404 for a stream id that is no UUID). */
static enum http_step stream_path(struct http_req *req, struct stream_ctx *ctx, int write)
{
	ctx->tenant_id = http_req_param(req, "id");
	ctx->stream_id = http_req_param(req, "stream");
	if (tenant_allowed(req, ctx->tenant_id, write) != HTTP_GO_ON)
		return HTTP_ANSWERED;
	if (!name_valid_uuid(ctx->stream_id))
		return http_reply_problem(req, PROB_NOT_FOUND, "No such stream."), HTTP_ANSWERED;
	return HTTP_GO_ON;
}

enum http_result cp_streams_get(struct http_req *req)
{
	struct stream_ctx ctx = { 0 };
	if (stream_path(req, &ctx, 0) != HTTP_GO_ON)
		return HTTP_REPLIED;
	return cp_read(req, get_tx, &ctx);
}

static enum db_status update_tx(struct db_conn *c, struct http_req *req, void *vctx,
                                struct cp_outcome *out)
{
	struct stream_ctx *ctx = vctx;
	char region[33];
	json_t *row = NULL, *before = NULL, *after = NULL;
	char *dtext = NULL;
	enum db_status st = tenant_region(c, ctx->tenant_id, 1, out, region);
	if (st != DB_OK)
		return st;
	st = cpdb_stream_stored(c, ctx->tenant_id, ctx->stream_id, &row);
	if (st == DB_NOT_FOUND)
		return cp_fail(out, PROB_NOT_FOUND, "No such stream.");
	if (st != DB_OK)
		return st;
	const struct kind_def *k = kind_find(json_string_value(json_object_get(row, "kind")));
	json_t *dest = json_object_get(row, "destination");
	st = DB_ERROR;
	if (!k || !json_is_object(dest))
		goto out;
	if (ctx->in.kind && strcmp(ctx->in.kind, k->name) != 0) {
		out->prob_extra = json_pack("{ss}", "field", "kind");
		st = cp_fail(out, PROB_CONFLICT, "A stream's kind cannot change (it is %s): create another stream.",
		             k->name);
		goto out;
	}
	if ((st = foreign_fields(k, ctx->given, out)) != DB_OK)
		goto out;
	if (!ctx->given) {
		st = cp_fail(out, PROB_VALIDATION, "The body changes nothing: give a destination field to change.");
		goto out;
	}
	dest_set(dest, &ctx->in, k->allowed);
	if ((st = check_residency(c, region, k->name, dest, out)) != DB_OK)
		goto out;
	st = DB_ERROR;
	if (!(dtext = json_dumps(dest, JSON_COMPACT)))
		goto out;
	if ((st = cpdb_stream_get(c, ctx->tenant_id, ctx->stream_id, &before)) != DB_OK ||
	    (st = cpdb_stream_update(c, ctx->tenant_id, ctx->stream_id, dtext, ctx->sealed)) != DB_OK ||
	    (st = cpdb_stream_get(c, ctx->tenant_id, ctx->stream_id, &after)) != DB_OK ||
	    (st = cpdb_region_bump(c, region)) != DB_OK ||
	    (st = cp_audit(c, req, ctx->tenant_id, "stream.update", "stream", ctx->stream_id, before, after)) != DB_OK)
		goto out;
	st = cp_done(out, 200, after);
	after = NULL;
out:
	json_decref(row);
	json_decref(before);
	json_decref(after);
	free(dtext);
	return st;
}

enum http_result cp_streams_update(struct http_req *req)
{
	struct stream_ctx ctx = { 0 };
	json_t *obj;
	enum http_result rc = HTTP_REPLIED;
	if (stream_path(req, &ctx, 1) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (cp_parse_body(req, cpreq_stream_update, &ctx.in, NULL, &obj) != HTTP_GO_ON)
		return HTTP_REPLIED;
	ctx.given = given(&ctx.in);
	if (!ctx.given && !ctx.in.kind) {
		rc = http_reply_problem(req, PROB_VALIDATION, "The body changes nothing: give a destination field to change.");
		goto out;
	}
	if (validate_formats(req, &ctx.in) != HTTP_GO_ON)
		goto out;
	if (seal_given_secret(req, &ctx) != 0) {
		rc = HTTP_FAILED;
		goto out;
	}
	rc = cp_mutate(req, update_tx, &ctx);
out:
	free(ctx.sealed);
	json_decref(obj);
	return rc;
}

/* The audit record of an owner's command (each action a literal, which
 * the audit log's spec test reads). */
static enum db_status audit_command(struct db_conn *c, struct http_req *req, const struct stream_ctx *ctx,
                                    json_t *before, json_t *after)
{
	const char *t = ctx->tenant_id, *id = ctx->stream_id;
	switch (ctx->cmd) {
	case CPDB_STREAM_PAUSE:
		return cp_audit(c, req, t, "stream.pause", "stream", id, before, after);
	case CPDB_STREAM_RESUME:
		return cp_audit(c, req, t, "stream.resume", "stream", id, before, after);
	case CPDB_STREAM_REPLAY:
		return cp_audit(c, req, t, "stream.replay", "stream", id, before, after);
	case CPDB_STREAM_DELETE:
		return cp_audit(c, req, t, "stream.delete", "stream", id, before, after);
	}
	return DB_ERROR;
}

static enum db_status command_tx(struct db_conn *c, struct http_req *req, void *vctx,
                                 struct cp_outcome *out)
{
	struct stream_ctx *ctx = vctx;
	char region[33];
	json_t *before = NULL, *after = NULL;
	enum db_status st = tenant_region(c, ctx->tenant_id, 1, out, region);
	if (st != DB_OK)
		return st;
	st = cpdb_stream_get(c, ctx->tenant_id, ctx->stream_id, &before);
	if (st == DB_NOT_FOUND)
		return cp_fail(out, PROB_NOT_FOUND, "No such stream.");
	if (st != DB_OK)
		return st;
	st = cpdb_stream_command(c, ctx->tenant_id, ctx->stream_id, ctx->cmd,
	                         ctx->cmd == CPDB_STREAM_REPLAY ? ctx->in.since : NULL);
	if (st == DB_INVALID) {
		out->prob_extra = json_pack("{ss}", "field", "since");
		st = cp_fail(out, PROB_VALIDATION, "since is not a time the service can keep.");
	}
	if (st == DB_OK && ctx->cmd != CPDB_STREAM_DELETE)
		st = cpdb_stream_get(c, ctx->tenant_id, ctx->stream_id, &after);
	if (st == DB_OK && (st = cpdb_region_bump(c, region)) == DB_OK)
		st = audit_command(c, req, ctx, before, after);
	json_decref(before);
	if (st != DB_OK) {
		json_decref(after);
		return st;
	}
	return ctx->cmd == CPDB_STREAM_DELETE ? cp_done(out, 204, json_object()) : cp_done(out, 200, after);
}

static enum http_result command(struct http_req *req, enum cpdb_stream_cmd cmd)
{
	struct stream_ctx ctx = { .cmd = cmd };
	json_t *obj = NULL;
	enum http_result rc = HTTP_REPLIED;
	if (stream_path(req, &ctx, 1) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (cmd == CPDB_STREAM_REPLAY) {
		if (cp_parse_body(req, cpreq_stream_replay, &ctx.in, NULL, &obj) != HTTP_GO_ON)
			return HTTP_REPLIED;
		if (!name_valid_timestamp(ctx.in.since)) {
			rc = http_reply_invalid_field(req, "since", "since must be an RFC 3339 time, e.g. 2030-01-01T00:00:00Z.");
			goto out;
		}
	}
	rc = cp_mutate(req, command_tx, &ctx);
out:
	json_decref(obj);
	return rc;
}

enum http_result cp_streams_delete(struct http_req *req)
{
	return command(req, CPDB_STREAM_DELETE);
}

enum http_result cp_streams_pause(struct http_req *req)
{
	return command(req, CPDB_STREAM_PAUSE);
}

enum http_result cp_streams_resume(struct http_req *req)
{
	return command(req, CPDB_STREAM_RESUME);
}

enum http_result cp_streams_replay(struct http_req *req)
{
	return command(req, CPDB_STREAM_REPLAY);
}

/* ---- POST /v1/regions/{region}/streams/status ---- */

struct report_in {
	const char *cell;
	int64_t observed_at;
	json_t *streams;
};
struct report_item {
	const char *id, *status, *last_error;
	int64_t lag_events, delivered_events, last_delivered_at, last_error_at;
	json_t *lag_seconds;
};
/* Times are unix seconds up to the year 9999; counts within bigint. */
#define UNIX_MAX INT64_C(253402300799)
#define RF(n) offsetof(struct report_in, n)
static const struct jsonx_field report_fields[] = {
	{ "cell", JX_STRING, 1, 0, 0, 64, RF(cell) },
	{ "observed_at", JX_INT, 1, 0, 0, UNIX_MAX, RF(observed_at) },
	{ "streams", JX_ARRAY, 1, 0, 0, CP_STREAM_REPORT_MAX, RF(streams) },
	JSONX_END
};
#undef RF
#define IF(n) offsetof(struct report_item, n)
static const struct jsonx_field item_fields[] = {
	{ "id", JX_STRING, 1, 0, 0, 36, IF(id) },
	{ "status", JX_STRING, 1, 0, 0, 16, IF(status) },
	{ "lag_events", JX_INT, 1, 0, 0, INT64_MAX, IF(lag_events) },
	{ "lag_seconds", JX_ANY, 1, 0, 0, 0, IF(lag_seconds) },
	{ "delivered_events", JX_INT, 1, 0, 0, INT64_MAX, IF(delivered_events) },
	{ "last_delivered_at", JX_INT, 0, 1, 0, UNIX_MAX, IF(last_delivered_at) },
	{ "last_error", JX_STRING, 0, 1, 0, 1000, IF(last_error) },
	{ "last_error_at", JX_INT, 0, 1, 0, UNIX_MAX, IF(last_error_at) },
	JSONX_END
};
#undef IF

struct report_ctx {
	const char *region, *cell;
	int64_t observed_at;
	char *rows;   /* JSON array text */
};

static enum db_status report_tx(struct db_conn *c, struct http_req *req, void *vctx, struct cp_outcome *out)
{
	(void)req;
	struct report_ctx *ctx = vctx;
	long stored;
	enum db_status st = cpdb_stream_reports(c, ctx->region, ctx->cell, ctx->observed_at, ctx->rows, &stored);
	return st == DB_OK ? cp_done(out, 204, json_object()) : st;
}

/* Checks every item of the report into a canonical array (new reference),
 * or returns NULL: after replying 400 naming the item and field
 * (*answered set), or out of memory. */
static json_t *report_rows(struct http_req *req, json_t *streams, int *answered)
{
	json_t *rows = json_array(), *v;
	size_t i;
	static const char *const statuses[] = { "active", "retrying", "failed", "refused", "paused" };
	json_array_foreach(streams, i, v) {
		struct report_item it = { 0 };
		struct jsonx_err err;
		uint64_t present = 0;
		char field[160];
		if (!json_is_object(v)) {
			snprintf(field, sizeof field, "streams[%zu]", i);
			http_reply_invalid_field(req, field, "%s", "Each member of streams must be an object.");
			*answered = 1;
			goto fail;
		}
		if (jsonx_unpack(v, item_fields, &it, &present, &err) != 0) {
			snprintf(field, sizeof field, "streams[%zu].%s", i, err.field);
			http_reply_invalid_field(req, field, "%s", err.msg);
			*answered = 1;
			goto fail;
		}
		const char *bad = NULL;
		size_t s;
		for (s = 0; s < sizeof statuses / sizeof statuses[0] && strcmp(statuses[s], it.status); s++)
			;
		double lag = json_number_value(it.lag_seconds);
		if (!name_valid_uuid(it.id))
			bad = "id";
		else if (s == sizeof statuses / sizeof statuses[0])
			bad = "status";
		else if (!json_is_number(it.lag_seconds) || !isfinite(lag) || lag < 0 || lag > 1e12)
			bad = "lag_seconds";
		for (size_t j = 0; !bad && j < json_array_size(rows); j++)
			if (!strcmp(json_string_value(json_object_get(json_array_get(rows, j), "id")), it.id))
				bad = "id";
		if (bad) {
			snprintf(field, sizeof field, "streams[%zu].%s", i, bad);
			http_reply_invalid_field(req, field, "%s",
			                         !strcmp(bad, "id") ? "id must be a stream's UUID, once per report."
			                         : !strcmp(bad, "status") ? "status must be active, retrying, failed, refused or paused."
			                                                  : "lag_seconds must be a number from 0 to 1e12.");
			*answered = 1;
			goto fail;
		}
		json_t *row = json_pack("{ss ss sI sf sI so so so}", "id", it.id, "status", it.status, "lag_events",
		                        (json_int_t)it.lag_events, "lag_seconds", lag, "delivered_events",
		                        (json_int_t)it.delivered_events, "last_delivered_at",
		                        (present & (1u << 5)) ? json_integer(it.last_delivered_at) : json_null(),
		                        "last_error", it.last_error ? json_string(it.last_error) : json_null(),
		                        "last_error_at",
		                        (present & (1u << 7)) ? json_integer(it.last_error_at) : json_null());
		if (!row || json_array_append_new(rows, row) != 0)
			goto fail;
	}
	return rows;
fail:
	json_decref(rows);
	return NULL;
}

enum http_result cp_streams_report(struct http_req *req)
{
	const struct cp_principal *p = cp_principal(req);
	struct report_ctx ctx = { .region = http_req_param(req, "region") };
	struct report_in in = { 0 };
	json_t *obj = NULL, *rows = NULL;
	enum http_result rc = HTTP_REPLIED;

	if (!ctx.region || !name_valid_region(ctx.region))
		return http_reply_problem(req, PROB_NOT_FOUND, "No such region.");
	if (!(p->role == CP_ROLE_ADMIN ||
	      ((p->role == CP_ROLE_REGION || p->role == CP_ROLE_CELL) && !strcmp(p->region, ctx.region))))
		return http_reply_problem(req, PROB_FORBIDDEN, "This credential belongs to another region.");
	if (cp_parse_body(req, report_fields, &in, NULL, &obj) != HTTP_GO_ON)
		return HTTP_REPLIED;
	if (!name_valid_cell(in.cell)) {
		rc = http_reply_invalid_field(req, "cell", "cell must be a cell name like us-east-1.");
		goto out;
	}
	if (p->role == CP_ROLE_CELL && strcmp(in.cell, p->cell) != 0) {
		rc = http_reply_problem(req, PROB_FORBIDDEN, "This credential belongs to cell %s.", p->cell);
		goto out;
	}
	int answered = 0;
	if (!(rows = report_rows(req, in.streams, &answered))) {
		rc = answered ? HTTP_REPLIED : HTTP_FAILED;
		goto out;
	}
	ctx.cell = in.cell;
	ctx.observed_at = in.observed_at;
	if (!(ctx.rows = json_dumps(rows, JSON_COMPACT))) {
		rc = HTTP_FAILED;
		goto out;
	}
	rc = cp_run(req, report_tx, &ctx);
out:
	free(ctx.rows);
	json_decref(rows);
	json_decref(obj);
	return rc;
}
