/* bin/celltrail's commands over tenants and who may act on them: tenants,
 * their users and API keys, and the platform's admins (cli.h). Each entry
 * names the control-plane route it calls (control-plane/main.c). */
#include <stddef.h>

#include "cli.h"

/* ---- tenants ---- */

static const struct cli_col tenant_cols[] = {
	{ "ID", "id" },     { "SLUG", "slug" },     { "NAME", "name" },         { "REGION", "region" },
	{ "CELL", "cell" }, { "PLAN", "plan" },     { "STATUS", "status" },     { "CREATED", "created_at" },
	{ NULL, NULL },
};

static const struct cli_field tenant_list_fields[] = {
	{ "region", "REGION", "only the tenants of this home region", "region", CF_STR, F_QUERY, 0, 0 },
	{ "status", "STATUS", "only the tenants in this status: active, suspended or deleted", "status", CF_STR,
	  F_QUERY, 0, 0 },
	{ NULL, NULL, NULL, NULL, 0, 0, 0, 0 },
};

static const struct cli_field tenant_create_fields[] = {
	{ "name", "NAME", "the tenant's name (at most 200 bytes)", "name", CF_STR, F_REQUIRED, 0, 0 },
	{ "slug", "SLUG", "its slug: 3 to 63 of a-z, 0-9 and '-'", "slug", CF_STR, F_REQUIRED, 0, 0 },
	{ "region", "REGION", "its home region", "region", CF_STR, F_REQUIRED, 0, 0 },
	{ "plan", "PLAN", "its plan's id", "plan", CF_STR, F_REQUIRED, 0, 0 },
	{ "cell", "CELL", "the cell of the region to place it in (default: the least loaded active shared cell)",
	  "cell", CF_STR, 0, 0, 0 },
	{ NULL, NULL, NULL, NULL, 0, 0, 0, 0 },
};

static const struct cli_field tenant_update_fields[] = {
	{ "name", "NAME", "a new name", "name", CF_STR, 0, 0, 0 },
	{ "plan", "PLAN", "another plan (admins)", "plan", CF_STR, 0, 0, 0 },
	{ "status", "STATUS", "active or suspended (admins)", "status", CF_STR, 0, 0, 0 },
	{ NULL, NULL, NULL, NULL, 0, 0, 0, 0 },
};

const struct cli_cmd cli_tenants_cmds[] = {
	{ .name = "list", .summary = "the tenants (admins see all; a tenant user its own)", .method = "GET",
	  .path = "/v1/tenants", .fields = tenant_list_fields, .cols = tenant_cols, .flags = CMD_PAGED },
	{ .name = "show", .args = "TENANT", .min_args = 1, .max_args = 1,
	  .summary = "one tenant: region, endpoint, cell (admins), erasure once deleted", .method = "GET",
	  .path = "/v1/tenants/{}" },
	{ .name = "create", .summary = "create a tenant (admins)", .method = "POST", .path = "/v1/tenants",
	  .fields = tenant_create_fields,
	  .help = "The tenant is placed in --cell, or else in the least loaded active shared cell of its\n"
	          "region; its home region changes only through a move (celltrail moves start)." },
	{ .name = "update", .args = "TENANT", .min_args = 1, .max_args = 1,
	  .summary = "rename, re-plan, suspend or reactivate a tenant", .method = "PATCH", .path = "/v1/tenants/{}",
	  .fields = tenant_update_fields },
	{ .name = "delete", .args = "TENANT", .min_args = 1, .max_args = 1,
	  .summary = "offboard a tenant (admins): keys revoked, sessions ended, its data erased", .method = "DELETE",
	  .path = "/v1/tenants/{}", .flags = CMD_CONFIRM,
	  .help = "The tenant's status becomes deleted at once; its home region then erases its data\n"
	          "('celltrail tenants show TENANT' follows the erasure). It cannot be undone: --yes is\n"
	          "required." },
	{ .name = NULL },
};

/* ---- users ---- */

static const struct cli_col user_cols[] = {
	{ "ID", "id" }, { "EMAIL", "email" }, { "ROLE", "role" }, { "CREATED", "created_at" }, { NULL, NULL },
};

static const struct cli_field user_create_fields[] = {
	{ "email", "EMAIL", "the user's email", "email", CF_STR, F_REQUIRED, 0, 0 },
	{ "role", "ROLE", "owner or member", "role", CF_STR, F_REQUIRED, 0, 0 },
	{ "password-file", "FILE", "a file holding the password, 10 to 256 bytes ('-': standard input)", "password",
	  CF_FILE, F_REQUIRED, 0, 0 },
	{ NULL, NULL, NULL, NULL, 0, 0, 0, 0 },
};

static const struct cli_field user_update_fields[] = {
	{ "role", "ROLE", "owner or member", "role", CF_STR, F_REQUIRED, 0, 0 },
	{ NULL, NULL, NULL, NULL, 0, 0, 0, 0 },
};

const struct cli_cmd cli_users_cmds[] = {
	{ .name = "list", .args = "TENANT", .min_args = 1, .max_args = 1, .summary = "the tenant's users",
	  .method = "GET", .path = "/v1/tenants/{}/users", .cols = user_cols, .flags = CMD_PAGED },
	{ .name = "show", .args = "TENANT USER", .min_args = 2, .max_args = 2, .summary = "one user",
	  .method = "GET", .path = "/v1/tenants/{}/users/{}" },
	{ .name = "create", .args = "TENANT", .min_args = 1, .max_args = 1,
	  .summary = "add a user to the tenant (owners, admins)", .method = "POST", .path = "/v1/tenants/{}/users",
	  .fields = user_create_fields,
	  .help = "The password is read from a file (or standard input), never from the command line,\n"
	          "where other users of the machine could see it." },
	{ .name = "update", .args = "TENANT USER", .min_args = 2, .max_args = 2,
	  .summary = "change a user's role (owners, admins)", .method = "PATCH", .path = "/v1/tenants/{}/users/{}",
	  .fields = user_update_fields },
	{ .name = "delete", .args = "TENANT USER", .min_args = 2, .max_args = 2,
	  .summary = "remove a user (a tenant keeps at least one owner)", .method = "DELETE",
	  .path = "/v1/tenants/{}/users/{}" },
	{ .name = NULL },
};

/* ---- platform admins ---- */

static const struct cli_col admin_cols[] = {
	{ "ID", "id" }, { "EMAIL", "email" }, { "CREATED", "created_at" }, { NULL, NULL },
};

static const struct cli_field admin_create_fields[] = {
	{ "email", "EMAIL", "the admin's email", "email", CF_STR, F_REQUIRED, 0, 0 },
	{ "password-file", "FILE", "a file holding the password, 10 to 256 bytes ('-': standard input)", "password",
	  CF_FILE, F_REQUIRED, 0, 0 },
	{ NULL, NULL, NULL, NULL, 0, 0, 0, 0 },
};

const struct cli_cmd cli_admins_cmds[] = {
	{ .name = "list", .summary = "the platform's admin users", .method = "GET", .path = "/v1/admins",
	  .cols = admin_cols, .flags = CMD_PAGED },
	{ .name = "show", .args = "ADMIN", .min_args = 1, .max_args = 1, .summary = "one admin user",
	  .method = "GET", .path = "/v1/admins/{}" },
	{ .name = "create", .summary = "add a platform admin user", .method = "POST", .path = "/v1/admins",
	  .fields = admin_create_fields },
	{ .name = "delete", .args = "ADMIN", .min_args = 1, .max_args = 1, .summary = "remove a platform admin user",
	  .method = "DELETE", .path = "/v1/admins/{}" },
	{ .name = NULL },
};

/* ---- API keys ---- */

static const struct cli_col key_cols[] = {
	{ "ID", "id" },          { "NAME", "name" },          { "PREFIX", "prefix" },       { "SCOPES", "scopes" },
	{ "EXPIRES", "expires_at" }, { "REVOKED", "revoked_at" }, { "CREATED", "created_at" }, { NULL, NULL },
};

static const struct cli_field key_create_fields[] = {
	{ "name", "NAME", "the key's name (at most 100 bytes)", "name", CF_STR, F_REQUIRED, 0, 0 },
	{ "scopes", "SCOPES", "comma-separated: events:read, events:write", "scopes", CF_LIST, F_REQUIRED, 0, 0 },
	{ "expires-at", "TIME", "when it stops working (RFC 3339); default never", "expires_at", CF_STR, 0, 0, 0 },
	{ NULL, NULL, NULL, NULL, 0, 0, 0, 0 },
};

const struct cli_cmd cli_keys_cmds[] = {
	{ .name = "list", .args = "TENANT", .min_args = 1, .max_args = 1,
	  .summary = "the tenant's API keys, revoked ones included (never a secret)", .method = "GET",
	  .path = "/v1/tenants/{}/api-keys", .cols = key_cols, .flags = CMD_PAGED },
	{ .name = "show", .args = "TENANT KEY", .min_args = 2, .max_args = 2, .summary = "one key (never its secret)",
	  .method = "GET", .path = "/v1/tenants/{}/api-keys/{}" },
	{ .name = "create", .args = "TENANT", .min_args = 1, .max_args = 1,
	  .summary = "create an API key; its secret is shown this once", .method = "POST",
	  .path = "/v1/tenants/{}/api-keys", .fields = key_create_fields,
	  .note = "the key's secret is shown this once: keep it now",
	  .help = "The answer's secret is the whole key to send to the data plane\n"
	          "(<region>_<id>_<64 hex digits>); the control plane keeps only its hash. The region\n"
	          "learns of the key from its next signed document, well under a second later." },
	{ .name = "revoke", .args = "TENANT KEY", .min_args = 2, .max_args = 2, .summary = "revoke an API key",
	  .method = "DELETE", .path = "/v1/tenants/{}/api-keys/{}" },
	{ .name = NULL },
};
