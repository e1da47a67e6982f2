/* bin/celltrail's commands over tenant moves: start one (to another cell
 * of the region, or to another region), follow it, approve a region move,
 * abort one before its cutover (cli.h). The mover's own routes (claim,
 * progress, complete, erased) are the mover's, not an operator's. */
#include <stddef.h>

#include "cli.h"

static const struct cli_col move_cols[] = {
	{ "ID", "id" },
	{ "KIND", "kind" },
	{ "STATE", "state" },
	{ "FROM", "from_region/from_cell" },
	{ "TO", "to_region/to_cell" },
	{ "COPIED", "events_copied" },
	{ "LAG", "lag_events" },
	{ "PAUSE MS", "write_pause_ms" },
	{ "CREATED", "created_at" },
	{ "FINISHED", "finished_at" },
	{ "ERROR", "error" },
	{ NULL, NULL },
};

static const struct cli_field move_start_fields[] = {
	{ "to-cell", "CELL", "a cell of the tenant's region (admins)", "to_cell", CF_STR, 0, 0, 0 },
	{ "to-region", "REGION", "another region (the tenant's owner requests, an admin approves)", "to_region",
	  CF_STR, 0, 0, 0 },
	{ "erase-after", "SECONDS", "how long the source keeps its copy after the flip, 0 to 31536000 "
	  "(default CP_MOVE_ERASE_AFTER)", "erase_after_seconds", CF_INT, 0, 0, 31536000 },
	{ NULL, NULL, NULL, NULL, 0, 0, 0, 0 },
};

/* Exactly one destination, then the generic runner. */
static int move_start(struct cli *c, const struct cli_cmd *cmd, const struct opts *o)
{
	if (!opts_get(o, "to-cell") == !opts_get(o, "to-region"))
		return cli_usage(c, "give exactly one of --to-cell and --to-region");
	return cli_run(c, cmd, o);
}

const struct cli_cmd cli_moves_cmds[] = {
	{ .name = "list", .args = "TENANT", .min_args = 1, .max_args = 1, .summary = "the tenant's moves, newest first",
	  .method = "GET", .path = "/v1/tenants/{}/moves", .cols = move_cols },
	{ .name = "show", .args = "TENANT MOVE", .min_args = 2, .max_args = 2,
	  .summary = "one move: state, events copied, lag, write pause, erasure", .method = "GET",
	  .path = "/v1/tenants/{}/moves/{}" },
	{ .name = "start", .args = "TENANT", .min_args = 1, .max_args = 1,
	  .summary = "move a tenant to another cell or region", .method = "POST", .path = "/v1/tenants/{}/moves",
	  .fields = move_start_fields, .run = move_start,
	  .help = "A move goes copying, catching_up, cutover, verifying, then done (or failed with its\n"
	          "error); a region move waits in awaiting_approval until an admin approves it." },
	{ .name = "approve", .args = "TENANT MOVE", .min_args = 2, .max_args = 2,
	  .summary = "approve a region move awaiting approval (admins)", .method = "POST",
	  .path = "/v1/tenants/{}/moves/{}/approve" },
	{ .name = "abort", .args = "TENANT MOVE", .min_args = 2, .max_args = 2,
	  .summary = "abort a move before its cutover (admins)", .method = "POST",
	  .path = "/v1/tenants/{}/moves/{}/abort",
	  .help = "From cutover on the API answers 409: the move completes or fails by itself." },
	{ .name = NULL },
};
