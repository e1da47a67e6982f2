/* bin/celltrail's commands over a tenant's log streams: the destinations
 * its home region's data planes deliver its events to (cli.h). A
 * destination's secret (a webhook's signing secret, a Splunk HEC token,
 * an S3 secret access key) is read from a file, never from the command
 * line, and the API never shows it again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const struct cli_col stream_cols[] = {
	{ "ID", "id" },
	{ "KIND", "kind" },
	{ "STATUS", "status" },
	{ "DESTINATION", "url|endpoint" },
	{ "BUCKET", "bucket" },
	{ "LAG", "lag_events" },
	{ "LAG S", "lag_seconds" },
	{ "DELIVERED", "delivered_events" },
	{ "LAST DELIVERED", "last_delivered_at" },
	{ "LAST ERROR", "last_error" },
	{ NULL, NULL },
};

#define DESTINATION                                                                                          \
	{ "dest-url", "URL", "webhook, splunk_hec: where to deliver", "url", CF_STR, 0, 0, 0 },                \
	{ "endpoint", "URL", "s3: the S3-compatible service's URL", "endpoint", CF_STR, 0, 0, 0 },            \
	{ "bucket", "BUCKET", "s3: the bucket", "bucket", CF_STR, 0, 0, 0 },                                   \
	{ "region", "REGION", "s3: the S3 region requests are signed for", "region", CF_STR, 0, 0, 0 },       \
	{ "access-key-id", "ID", "s3: the access key id", "access_key_id", CF_STR, 0, 0, 0 },                 \
	{ "prefix", "PREFIX", "s3: prepended to every object name", "prefix", CF_STR, 0, 0, 0 },              \
	{ "secret-file", "FILE",                                                                               \
	  "a file holding the kind's secret: webhook signing secret (whsec_...), Splunk HEC token "         \
	  "or S3 secret access key ('-': standard input)",                                                     \
	  NULL, CF_FILE, 0, 0, 0 }

static const struct cli_field stream_create_fields[] = {
	{ "kind", "KIND", "webhook, splunk_hec or s3", "kind", CF_STR, F_REQUIRED, 0, 0 },
	DESTINATION,
	{ "since", "TIME", "deliver the events received from then on (RFC 3339; default now)", "since", CF_STR, 0, 0,
	  0 },
	{ "paused", NULL, "create it paused", "paused", CF_FLAG, 0, 0, 0 },
	{ NULL, NULL, NULL, NULL, 0, 0, 0, 0 },
};

static const struct cli_field stream_update_fields[] = {
	{ "kind", "KIND", "the stream's own kind (the kind never changes)", "kind", CF_STR, 0, 0, 0 },
	DESTINATION,
	{ NULL, NULL, NULL, NULL, 0, 0, 0, 0 },
};

static const struct cli_field stream_replay_fields[] = {
	{ "since", "TIME", "deliver again the events received from then on (RFC 3339)", "since", CF_STR, F_REQUIRED, 0,
	  0 },
	{ NULL, NULL, NULL, NULL, 0, 0, 0, 0 },
};

/* The body member that holds `kind`'s secret, or NULL. */
static const char *secret_member(const char *kind)
{
	return !strcmp(kind, "webhook")      ? "secret"
	     : !strcmp(kind, "splunk_hec")   ? "token"
	     : !strcmp(kind, "s3")           ? "secret_access_key"
	                                     : NULL;
}

/* `streams create` and `streams update`: the generic request, and the
 * secret under the member of the stream's kind (an update without --kind
 * asks the API for the stream's). */
static int stream_write(struct cli *c, const struct cli_cmd *cmd, const struct opts *o)
{
	char path[API_PATH_MAX], kind[32] = "";
	const char *args[OPTS_MAX_POS + 1] = { 0 }, *file = opts_get(o, "secret-file");
	json_t *body = NULL;
	char *secret = NULL;
	int rc;

	for (size_t i = 0; i < o->npos; i++)
		args[i] = o->pos[i];
	if ((rc = cli_path(c, path, sizeof path, cmd->path, args)) != 0 ||
	    (rc = cli_request_from(c, cmd, o, path, sizeof path, &body)) != 0)
		return rc;
	if (file) {
		if (opts_get(o, "kind")) {
			snprintf(kind, sizeof kind, "%s", opts_get(o, "kind"));
		} else {
			struct api_answer ans;
			if ((rc = api_call(c->api, "GET", path, NULL, &ans)) != API_OK)
				goto out;
			const char *k = json_string_value(json_object_get(ans.json, "kind"));
			snprintf(kind, sizeof kind, "%s", k ? k : "");
			api_answer_free(&ans);
		}
		const char *member = secret_member(kind);
		if (!member) {
			rc = cli_usage(c, "--kind must be webhook, splunk_hec or s3");
			goto out;
		}
		if (!(secret = cli_read_secret(c, "secret-file", file))) {
			rc = API_USAGE;
			goto out;
		}
		if (json_object_set_new(body, member, json_string(secret)) != 0) {
			rc = cli_usage(c, "--secret-file: the file is not UTF-8");
			goto out;
		}
	}
	rc = cli_show(c, cmd->method, path, body, NULL);
out:
	if (secret) {
		explicit_bzero(secret, strlen(secret));
		free(secret);
	}
	cli_body_free(body);
	return rc;
}

const struct cli_cmd cli_streams_cmds[] = {
	{ .name = "list", .args = "TENANT", .min_args = 1, .max_args = 1,
	  .summary = "the tenant's streams: status, lag, delivered, last error", .method = "GET",
	  .path = "/v1/tenants/{}/streams", .cols = stream_cols },
	{ .name = "show", .args = "TENANT STREAM", .min_args = 2, .max_args = 2,
	  .summary = "one stream (never its secret)", .method = "GET", .path = "/v1/tenants/{}/streams/{}" },
	{ .name = "create", .args = "TENANT", .min_args = 1, .max_args = 1,
	  .summary = "stream the tenant's events to a webhook, Splunk HEC or S3", .method = "POST",
	  .path = "/v1/tenants/{}/streams", .fields = stream_create_fields, .run = stream_write,
	  .help = "webhook takes --dest-url and --secret-file; splunk_hec --dest-url and --secret-file\n"
	          "(the HEC token); s3 --endpoint, --bucket, --region, --access-key-id, --secret-file and\n"
	          "--prefix. A destination outside the home region's rule is refused (422\n"
	          "destination_not_allowed, naming the rule)." },
	{ .name = "update", .args = "TENANT STREAM", .min_args = 2, .max_args = 2,
	  .summary = "change a stream's destination or secret", .method = "PATCH",
	  .path = "/v1/tenants/{}/streams/{}", .fields = stream_update_fields, .run = stream_write },
	{ .name = "delete", .args = "TENANT STREAM", .min_args = 2, .max_args = 2, .summary = "delete a stream",
	  .method = "DELETE", .path = "/v1/tenants/{}/streams/{}", .done = "Deleted." },
	{ .name = "pause", .args = "TENANT STREAM", .min_args = 2, .max_args = 2,
	  .summary = "pause delivery (events wait)", .method = "POST", .path = "/v1/tenants/{}/streams/{}/pause" },
	{ .name = "resume", .args = "TENANT STREAM", .min_args = 2, .max_args = 2,
	  .summary = "resume delivery (also after failed): the backlog is delivered", .method = "POST",
	  .path = "/v1/tenants/{}/streams/{}/resume" },
	{ .name = "replay", .args = "TENANT STREAM", .min_args = 2, .max_args = 2,
	  .summary = "deliver again from a time", .method = "POST", .path = "/v1/tenants/{}/streams/{}/replay",
	  .fields = stream_replay_fields },
	{ .name = NULL },
};
