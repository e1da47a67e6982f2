/* The commands of bin/celltrail, as tables: each command names its route
 * (method and path template), the options that fill the request's body or
 * query, and how its answer is shown; one generic runner (cli_run) calls
 * the route and prints the answer, and a command with more to do than one
 * call (across regions, a secret read from a file) has a `run` of its own
 * built from the same helpers.
 *
 * Output: by default for people (a list as an aligned table, an object as
 * aligned "member  value" lines, table.h); with --json the API's JSON as
 * it came (a list fetched whole with --all, or across regions, as one
 * {"items": [...], "has_more": false}). Errors: one line on stderr, and
 * the exit status of api.h. */
#ifndef CLI_CLI_H
#define CLI_CLI_H

#include <jansson.h>
#include <stddef.h>

#include "api.h"
#include "opts.h"

enum cli_type {
	CF_STR,  /* a string member */
	CF_INT,  /* an integer member within [min, max] */
	CF_FLAG, /* a flag: the member true when given */
	CF_LIST, /* a comma-separated list: an array of strings */
	CF_FILE, /* a string read from a file ("-": standard input), its last
	          * newline dropped: passwords and secrets stay off the
	          * command line (and out of `ps`) */
};

#define F_REQUIRED 1u /* the option must be given */
#define F_QUERY 2u    /* a query parameter, not a body member */

/* One option of a command and where its value goes. */
struct cli_field {
	const char *opt;     /* the option, without "--" */
	const char *metavar; /* NULL for CF_FLAG */
	const char *help;
	const char *member;  /* body member or query parameter; NULL: the command reads it itself */
	enum cli_type type;
	unsigned flags;
	long long min, max;  /* CF_INT */
};

/* A column of a list: its header and table_field()'s spec. */
struct cli_col {
	const char *header;
	const char *spec;
};

#define CMD_PUBLIC 1u  /* the route needs no credential */
#define CMD_PAGED 2u   /* --limit, --cursor and --all */
#define CMD_CONFIRM 4u /* refused without --yes: it cannot be undone */

struct cli;
struct cli_cmd;
struct table;

typedef int (*cli_run_fn)(struct cli *c, const struct cli_cmd *cmd, const struct opts *o);

struct cli_cmd {
	const char *name;             /* NULL ends a table */
	const char *args;             /* the positional arguments, for --help ("TENANT KEY") */
	size_t min_args, max_args;
	const char *summary;          /* one line */
	const char *method, *path;    /* the route: "{}" takes the next argument */
	const struct cli_field *fields; /* NULL or ended by a NULL opt */
	const struct cli_col *cols;   /* the answer is a list shown with these */
	unsigned flags;
	const char *note;             /* printed on stderr after success, for people */
	const char *done;             /* printed for an answer without a body (204) */
	cli_run_fn run;               /* NULL: cli_run */
	const char *help;             /* more for --help, or NULL */
};

struct cli_group {
	const char *name;
	const char *summary;
	const struct cli_cmd *cmds;
};

/* The groups, in the order --help lists them (commands.c). */
extern const struct cli_group cli_groups[];

/* The commands' tables (cmd_*.c). */
extern const struct cli_cmd cli_tenants_cmds[], cli_users_cmds[], cli_admins_cmds[], cli_keys_cmds[],
	cli_regions_cmds[], cli_cells_cmds[], cli_fleet_cmds[], cli_moves_cmds[], cli_streams_cmds[];

/* What a command runs with. */
struct cli {
	struct api *api;
	int json;                     /* --json */
	const struct cli_group *group;
	const struct cli_cmd *cmd;
};

/* The options every command takes; those of a CMD_PAGED command, of a
 * CMD_CONFIRM one (commands.c). A command's fields never reuse their
 * names. */
extern const struct opts_spec cli_global_opts[], cli_page_opts[], cli_confirm_opts[];

/* The generic runner: the route with the arguments, the body or query
 * from the fields, the answer shown. Returns an exit status. */
int cli_run(struct cli *c, const struct cli_cmd *cmd, const struct opts *o) __attribute__((warn_unused_result));

/* Prints "celltrail: <message>" and a pointer to the command's --help on
 * stderr; returns API_USAGE. */
int cli_usage(struct cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* api_path() of `tmpl` with the command's arguments; a usage error (an
 * empty argument) printed. Returns 0 or API_USAGE. */
int cli_path(struct cli *c, char *out, size_t outlen, const char *tmpl, const char *const args[])
	__attribute__((warn_unused_result));

/* Builds the body of `cmd`'s body fields from `o` into *body (a new
 * object, owned by the caller) and adds its query fields to `path`.
 * Returns 0 or API_USAGE (printed; *body NULL). */
int cli_request_from(struct cli *c, const struct cli_cmd *cmd, const struct opts *o, char *path, size_t cap,
                     json_t **body) __attribute__((warn_unused_result));

/* GET of a list at `path` (paged when `cmd` is), shown with `cmd`'s
 * columns. Returns an exit status. */
int cli_list(struct cli *c, const struct cli_cmd *cmd, const struct opts *o, const char *path)
	__attribute__((warn_unused_result));

/* One call whose answer is one object, shown (`done`, or "Done.", when
 * it has none). `body` is borrowed. */
int cli_show(struct cli *c, const char *method, const char *path, const json_t *body, const char *done)
	__attribute__((warn_unused_result));

/* Zeroes the bytes of every string member of `body` (a password or a
 * secret read from a file), then releases it. Accepts NULL. */
void cli_body_free(json_t *body);

/* Prints a successful answer: its JSON (--json) or, for people, the
 * object's members (`done` when it has no body). */
int cli_print_answer(struct cli *c, const struct api_answer *ans, const char *done)
	__attribute__((warn_unused_result));

/* Adds a row per item of `items` (an array of objects) to `t`, a table
 * of cli_table_new(cols, ...): `first_value` in the first cell of every
 * row when it is not NULL (a table made with a first header). Returns 0
 * or -1 (out of memory). */
int cli_table_rows(struct table *t, const struct cli_col *cols, const json_t *items, const char *first_value)
	__attribute__((warn_unused_result));

/* A table with `cols`' headers (and `first_header` first when not NULL);
 * NULL when out of memory. */
struct table *cli_table_new(const struct cli_col *cols, const char *first_header);

/* Reads a secret from `path` ("-": standard input): at most 4096 bytes,
 * the last "\n" or "\r\n" dropped, no NUL. Returns a malloc'd string (the
 * caller wipes and frees it) or NULL with a usage error printed. */
char *cli_read_secret(struct cli *c, const char *opt, const char *path);

/* Writes a JSON document (and a newline) on stdout. Returns 0 or API_FAILED. */
int cli_print_json(const json_t *doc) __attribute__((warn_unused_result));

#endif
