/* The command line's tables: the options every command takes, those of
 * paged lists and of commands that cannot be undone, and the commands,
 * in the order --help lists them (cli.h). */
#include <stddef.h>

#include "cli.h"

const struct opts_spec cli_global_opts[] = {
	{ "url", "URL", "the control plane's base URL (else CELLTRAIL_URL, else the configuration file)" },
	{ "token", "TOKEN", "the bearer token: the admin token or a session token (else CELLTRAIL_TOKEN, else "
	  "the configuration file; on the command line other users can see it in ps)" },
	{ "cacert", "FILE", "CA certificates to trust for https (else CELLTRAIL_CACERT, else the configuration "
	  "file; default the system's)" },
	{ "timeout", "SECONDS", "give up on a call after this long, 1 to 3600 (default 30)" },
	{ "json", NULL, "print the API's JSON instead of a table" },
	{ NULL, NULL, NULL },
};

const struct opts_spec cli_page_opts[] = {
	{ "limit", "N", "items per page, 1 to 100 (default 50)" },
	{ "cursor", "CURSOR", "the page after this cursor (a previous page's next_cursor)" },
	{ "all", NULL, "every page, one call each" },
	{ NULL, NULL, NULL },
};

const struct opts_spec cli_confirm_opts[] = {
	{ "yes", NULL, "confirm: it cannot be undone" },
	{ NULL, NULL, NULL },
};

const struct cli_group cli_groups[] = {
	{ "tenants", "tenants: list, create, change, offboard", cli_tenants_cmds },
	{ "users", "a tenant's users (owners and members)", cli_users_cmds },
	{ "admins", "the platform's admin users", cli_admins_cmds },
	{ "keys", "a tenant's API keys", cli_keys_cmds },
	{ "regions", "the region catalog", cli_regions_cmds },
	{ "cells", "a region's cells, draining one, its data planes' credential", cli_cells_cmds },
	{ "fleet", "the data planes of each region, as they report", cli_fleet_cmds },
	{ "moves", "tenant moves between cells and regions", cli_moves_cmds },
	{ "streams", "a tenant's log streams", cli_streams_cmds },
	{ NULL, NULL, NULL },
};
