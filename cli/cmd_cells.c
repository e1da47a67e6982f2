/* bin/celltrail's commands over where tenants live: the region catalog,
 * each region's cells (and draining one) and the data planes' fleet as
 * they report it (cli.h). Without a region, `cells list` and `fleet
 * status` go over every region of the catalog, one call each. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "table.h"

/* ---- regions ---- */

static const struct cli_col region_cols[] = {
	{ "NAME", "name" },         { "DISPLAY NAME", "display_name" }, { "STATUS", "status" },
	{ "WAVE", "wave" },         { "CONFIG", "config_version" },     { "ENDPOINT", "endpoint" },
	{ "CLOUD REGIONS", "cloud_regions" }, { NULL, NULL },
};

const struct cli_cmd cli_regions_cmds[] = {
	{ .name = "list", .summary = "the region catalog", .method = "GET", .path = "/v1/regions",
	  .cols = region_cols, .flags = CMD_PUBLIC },
	{ .name = "show", .args = "REGION", .min_args = 1, .max_args = 1,
	  .summary = "one region: endpoint, log keys, config version, stream rules", .method = "GET",
	  .path = "/v1/regions/{}", .flags = CMD_PUBLIC },
	{ .name = NULL },
};

/* The names of the catalog's regions, or the one given (a new array the
 * caller releases); NULL with the error printed, *rc set. */
static json_t *region_names(struct cli *c, const struct opts *o, int *rc)
{
	struct api_answer ans;
	json_t *names = json_array();
	if (!names) {
		*rc = API_FAILED;
		return NULL;
	}
	if (o->npos) {
		if (json_array_append_new(names, json_string(o->pos[0])) != 0) {
			json_decref(names);
			*rc = cli_usage(c, "the region is not UTF-8");
			return NULL;
		}
		return names;
	}
	if ((*rc = api_call(c->api, "GET", "/v1/regions", NULL, &ans)) != API_OK) {
		json_decref(names);
		return NULL;
	}
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(ans.json, "items"), i, r)
		if (json_is_string(json_object_get(r, "name")))
			json_array_append(names, json_object_get(r, "name"));
	api_answer_free(&ans);
	return names;
}

/* GET `route` ("/v1/regions/{}/...") of the region `name` into `ans`. */
static int region_get(struct cli *c, const char *route, const json_t *name, struct api_answer *ans)
{
	char path[API_PATH_MAX];
	const char *args[] = { json_string_value(name), NULL };
	int rc = cli_path(c, path, sizeof path, route, args);
	return rc != 0 ? rc : api_call(c->api, "GET", path, NULL, ans);
}

/* ---- cells ---- */

static const struct cli_col cell_cols[] = {
	{ "NAME", "name" },       { "REGION", "region" },     { "STATUS", "status" },     { "KIND", "kind" },
	{ "TENANTS", "tenants" }, { "TENANT", "tenant_id" }, { "CREATED", "created_at" }, { NULL, NULL },
};

/* `cells list [REGION]`: one region's cells, or every region's. */
static int cells_list(struct cli *c, const struct cli_cmd *cmd, const struct opts *o)
{
	char path[API_PATH_MAX];
	int rc = API_OK;
	json_t *names, *all = NULL;
	struct table *t = NULL;

	if (o->npos) {
		const char *args[] = { o->pos[0], NULL };
		if ((rc = cli_path(c, path, sizeof path, "/v1/regions/{}/cells", args)) != 0)
			return rc;
		return cli_list(c, cmd, o, path);
	}
	if (!(names = region_names(c, o, &rc)))
		return rc;
	if (!(all = json_array()) || (!c->json && !(t = cli_table_new(cmd->cols, NULL))))
		goto oom;
	size_t i;
	json_t *name;
	json_array_foreach(names, i, name) {
		struct api_answer ans;
		if ((rc = region_get(c, "/v1/regions/{}/cells", name, &ans)) != API_OK)
			goto out;
		json_t *items = json_object_get(ans.json, "items");
		int bad = !json_is_array(items) ? 1
		        : c->json              ? json_array_extend(all, items) != 0
		                               : cli_table_rows(t, cmd->cols, items, NULL) != 0;
		api_answer_free(&ans);
		if (bad)
			goto oom;
	}
	if (c->json) {
		json_t *doc = json_pack("{sOsb}", "items", all, "has_more", 0);
		rc = doc ? cli_print_json(doc) : API_FAILED;
		json_decref(doc);
	} else {
		rc = table_print(t, stdout, 60) == 0 ? API_OK : API_FAILED;
	}
	goto out;
oom:
	fprintf(stderr, "celltrail: out of memory, or an answer that is not a list\n");
	rc = API_FAILED;
out:
	json_decref(names);
	json_decref(all);
	table_free(t);
	return rc;
}

static const struct cli_field cell_create_fields[] = {
	{ "name", "CELL", "the cell's name, e.g. us-west-2-acme", "name", CF_STR, F_REQUIRED, 0, 0 },
	{ "kind", "KIND", "shared or dedicated", "kind", CF_STR, F_REQUIRED, 0, 0 },
	{ "tenant", "TENANT", "a dedicated cell's tenant (default: the first placed in it)", "tenant_id", CF_STR, 0,
	  0, 0 },
	{ NULL, NULL, NULL, NULL, 0, 0, 0, 0 },
};

static const struct cli_field cell_update_fields[] = {
	{ "status", "STATUS", "active, draining or closed (closed only once it holds no tenant)", "status", CF_STR,
	  F_REQUIRED, 0, 0 },
	{ NULL, NULL, NULL, NULL, 0, 0, 0, 0 },
};

static const struct cli_field drain_fields[] = {
	{ "parallel", "N", "moves at a time, 1 to 10 (default 2)", "parallel", CF_INT, 0, 1, 10 },
	{ NULL, NULL, NULL, NULL, 0, 0, 0, 0 },
};

const struct cli_cmd cli_cells_cmds[] = {
	{ .name = "list", .args = "[REGION]", .min_args = 0, .max_args = 1,
	  .summary = "a region's cells, or every region's: status, kind, tenants placed", .method = "GET",
	  .path = "/v1/regions/{}/cells", .cols = cell_cols, .run = cells_list,
	  .help = "Without REGION, the regions of GET /v1/regions, one call each." },
	{ .name = "show", .args = "REGION CELL", .min_args = 2, .max_args = 2, .summary = "one cell",
	  .method = "GET", .path = "/v1/regions/{}/cells/{}" },
	{ .name = "create", .args = "REGION", .min_args = 1, .max_args = 1,
	  .summary = "add a cell to a region (a dedicated one for a large tenant)", .method = "POST",
	  .path = "/v1/regions/{}/cells", .fields = cell_create_fields,
	  .help = "Then give it a credential (celltrail cells credential CELL), a database and data\n"
	          "planes, a backend in the region's router, and a place in deploy/waves (README,\n"
	          "\"Adding a dedicated cell\")." },
	{ .name = "update", .args = "REGION CELL", .min_args = 2, .max_args = 2,
	  .summary = "set a cell active, draining or closed", .method = "PATCH", .path = "/v1/regions/{}/cells/{}",
	  .fields = cell_update_fields },
	{ .name = "drain", .args = "CELL", .min_args = 1, .max_args = 1,
	  .summary = "set a cell draining and move every tenant out of it", .method = "POST",
	  .path = "/v1/cells/{}/drain", .fields = drain_fields,
	  .help = "Each tenant moves to another active shared cell of the region, least loaded first,\n"
	          "--parallel at a time; 'celltrail cells drain-status CELL' follows it." },
	{ .name = "drain-status", .args = "CELL", .min_args = 1, .max_args = 1,
	  .summary = "the cell's latest drain: tenants left, moves active and done", .method = "GET",
	  .path = "/v1/cells/{}/drain" },
	{ .name = "credential", .args = "CELL", .min_args = 1, .max_args = 1,
	  .summary = "a new credential for the cell's data planes, shown once", .method = "POST",
	  .path = "/v1/cells/{}/credentials", .note = "the credential is shown this once: keep it now" },
	{ .name = NULL },
};

/* ---- fleet ---- */

static const struct cli_col fleet_cols[] = {
	{ "CELL", "cell" },        { "INSTANCE", "instance" },       { "CONFIG", "config_version" },
	{ "CURRENT", "current_version" }, { "SOURCE", "source" },    { "STALE", "stale" },
	{ "SILENT", "silent" },    { "LAST SEEN", "last_seen" },     { "LAST ERROR", "last_error" },
	{ NULL, NULL },
};

/* One line per region under the table: how many instances serve the
 * region's current configuration. */
static void fleet_summary(const json_t *fleet, const char *region)
{
	size_t i, n = 0, behind = 0, stale = 0, silent = 0;
	const json_t *it;
	json_int_t cur = json_integer_value(json_object_get(fleet, "config_version"));
	json_array_foreach(json_object_get(fleet, "items"), i, it) {
		const json_t *v = json_object_get(it, "config_version");
		n++;
		behind += !json_is_integer(v) || json_integer_value(v) < cur;
		stale += json_is_true(json_object_get(it, "stale"));
		silent += json_is_true(json_object_get(it, "silent"));
	}
	char *r = table_sanitize(region);
	printf("%s: config version %" JSON_INTEGER_FORMAT ", %zu instance%s: %zu current, %zu behind, %zu stale, "
	       "%zu silent\n", r ? r : "?", cur, n, n == 1 ? "" : "s", n - behind, behind, stale, silent);
	free(r);
}

/* `fleet status [REGION]`: each data plane as it last reported. */
static int fleet_status(struct cli *c, const struct cli_cmd *cmd, const struct opts *o)
{
	int rc = API_OK;
	json_t *names, *docs = NULL;
	struct table *t = NULL;

	if (!(names = region_names(c, o, &rc)))
		return rc;
	if (!(docs = json_array()) || (!c->json && !(t = cli_table_new(cmd->cols, "REGION"))))
		goto oom;
	size_t i;
	json_t *name;
	json_array_foreach(names, i, name) {
		struct api_answer ans;
		if ((rc = region_get(c, "/v1/regions/{}/fleet", name, &ans)) != API_OK)
			goto out;
		if (o->npos && c->json) {
			rc = cli_print_answer(c, &ans, NULL);
			api_answer_free(&ans);
			goto out;
		}
		json_t *items = json_object_get(ans.json, "items");
		int bad = !json_is_array(items) || json_array_append(docs, ans.json) != 0 ||
		          (t && cli_table_rows(t, cmd->cols, items, json_string_value(name)) != 0);
		api_answer_free(&ans);
		if (bad)
			goto oom;
	}
	if (c->json) {
		json_t *doc = json_pack("{sOsb}", "items", docs, "has_more", 0);
		rc = doc ? cli_print_json(doc) : API_FAILED;
		json_decref(doc);
		goto out;
	}
	if (table_print(t, stdout, 60) != 0)
		goto oom;
	putchar('\n');
	json_array_foreach(docs, i, name)
		fleet_summary(name, json_string_value(json_object_get(name, "region")));
	rc = API_OK;
	goto out;
oom:
	fprintf(stderr, "celltrail: out of memory, or an answer that is not a list\n");
	rc = API_FAILED;
out:
	json_decref(names);
	json_decref(docs);
	table_free(t);
	return rc;
}

const struct cli_cmd cli_fleet_cmds[] = {
	{ .name = "status", .args = "[REGION]", .min_args = 0, .max_args = 1,
	  .summary = "each data plane: its cell, the config version it serves, stale, silent",
	  .method = "GET", .path = "/v1/regions/{}/fleet", .cols = fleet_cols, .run = fleet_status,
	  .help = "Without REGION, the regions of GET /v1/regions, one call each. Under the table, a\n"
	          "line per region: its config version and how many instances serve it, are behind,\n"
	          "stale (serving an expired configuration) or silent (no report for\n"
	          "CP_FLEET_SILENT_AFTER)." },
	{ .name = NULL },
};
