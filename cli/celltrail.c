/* bin/celltrail: the admin command line of the control-plane API.
 *
 *   celltrail [OPTIONS] COMMAND SUBCOMMAND [ARGUMENTS] [OPTIONS]
 *
 * This file owns the command line's shape (global options, the command and
 * subcommand words, --help at every level), where the settings come from
 * (a flag, else the environment, else the configuration file, conf.h) and
 * the exit status (api.h). The commands themselves are tables (cmd_*.c)
 * run by cli.c. */
#include <curl/curl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "cli.h"
#include "conf.h"
#include "opts.h"

#define MAX_FIELDS 24

static const char exit_help[] =
	"Exit status:\n"
	"  0  done\n"
	"  1  the API refused the request (4xx): its problem (status, code, detail) on stderr\n"
	"  2  usage or configuration error (nothing was sent)\n"
	"  3  server or network error: 5xx, no connection, a timeout, an answer that is not the API's\n";

static const char config_help[] =
	"Configuration: each of --url, --token and --cacert, else CELLTRAIL_URL, CELLTRAIL_TOKEN and\n"
	"CELLTRAIL_CACERT, else the lines 'url = ...', 'token = ...', 'cacert = ...' of the file\n"
	"$CELLTRAIL_CONFIG (default ~/.config/celltrail/config), which must be the user's own and\n"
	"readable by nobody else (chmod 600): it holds a token. The token is never printed.\n";

/* The options of `cmd` from its fields, into `out` (MAX_FIELDS + 1). */
static void field_specs(const struct cli_cmd *cmd, struct opts_spec *out)
{
	size_t n = 0;
	for (const struct cli_field *f = cmd->fields; f && f->opt && n < MAX_FIELDS; f++, n++) {
		out[n].name = f->opt;
		out[n].metavar = f->type == CF_FLAG ? NULL : f->metavar;
		out[n].help = f->help;
	}
	out[n].name = NULL;
}

/* "  LEFT  text", the text wrapped at 80 columns under its first line. */
static void put_wrapped(FILE *out, const char *left, const char *text, const char *tail)
{
	enum { INDENT = 27, WIDTH = 80 };
	int col = fprintf(out, "  %-24s", left);
	if (col > INDENT - 1) {
		fputc('\n', out);
		col = fprintf(out, "%*s", INDENT - 1, "");
	}
	for (const char *t = text, *p = NULL; *t || (tail && *tail); t = p) {
		if (!*t) {
			t = tail;
			tail = NULL;
		}
		size_t n = strcspn(t, " ");
		p = t + n + (t[n] == ' ');
		if (col + 1 + (int)n > WIDTH && col > INDENT) {
			fputc('\n', out);
			col = fprintf(out, "%*s", INDENT - 1, "");
		}
		col += fprintf(out, " %.*s", (int)n, t);
	}
	fputc('\n', out);
}

static void print_specs(FILE *out, const struct opts_spec *s, const struct cli_field *fields)
{
	for (; s && s->name; s++) {
		char left[64];
		int required = 0;
		for (const struct cli_field *f = fields; f && f->opt; f++)
			if (!strcmp(f->opt, s->name))
				required = (f->flags & F_REQUIRED) != 0;
		snprintf(left, sizeof left, "--%s%s%s", s->name, s->metavar ? " " : "", s->metavar ? s->metavar : "");
		put_wrapped(out, left, s->help, required ? "(required)" : NULL);
	}
}

static void main_help(FILE *out)
{
	fputs("Usage: celltrail [OPTIONS] COMMAND SUBCOMMAND [ARGUMENTS] [OPTIONS]\n"
	      "\n"
	      "The admin command line of Celltrail's control plane: tenants, users, API keys,\n"
	      "cells, moves, log streams and the data planes' fleet, through the control-plane API.\n"
	      "\n"
	      "Commands:\n", out);
	for (const struct cli_group *g = cli_groups; g->name; g++) {
		fprintf(out, "  %-9s", g->name);
		for (const struct cli_cmd *c = g->cmds; c->name; c++)
			fprintf(out, "%s%s", c == g->cmds ? " " : ", ", c->name);
		fputc('\n', out);
	}
	fputs("\n'celltrail COMMAND --help' and 'celltrail COMMAND SUBCOMMAND --help' say more.\n\n"
	      "Options (every command):\n", out);
	print_specs(out, cli_global_opts, NULL);
	put_wrapped(out, "-h, --help", "this help", NULL);
	fputc('\n', out);
	fputs(config_help, out);
	fputc('\n', out);
	fputs(exit_help, out);
}

static void group_help(FILE *out, const struct cli_group *g)
{
	fprintf(out, "Usage: celltrail %s SUBCOMMAND [ARGUMENTS] [OPTIONS]\n\n%c%s.\n\nSubcommands:\n", g->name,
	        g->summary[0] - 'a' + 'A', g->summary + 1);
	for (const struct cli_cmd *c = g->cmds; c->name; c++) {
		char left[64];
		snprintf(left, sizeof left, "%s%s%s", c->name, c->args ? " " : "", c->args ? c->args : "");
		fprintf(out, "  %-26s %s\n", left, c->summary);
	}
	fprintf(out, "\n'celltrail %s SUBCOMMAND --help' says more; 'celltrail --help' lists the options every\n"
	        "command takes.\n\n%s", g->name, exit_help);
}

static void cmd_help(FILE *out, const struct cli_group *g, const struct cli_cmd *c)
{
	struct opts_spec fs[MAX_FIELDS + 1];
	field_specs(c, fs);
	fprintf(out, "Usage: celltrail %s %s%s%s [OPTIONS]\n\n%c%s.\n", g->name, c->name, c->args ? " " : "",
	        c->args ? c->args : "", c->summary[0] >= 'a' && c->summary[0] <= 'z' ? c->summary[0] - 'a' + 'A'
	                                                                               : c->summary[0],
	        c->summary + 1);
	if (c->help)
		fprintf(out, "\n%s\n", c->help);
	/* The route with its arguments' names: /v1/tenants/{TENANT}/users. */
	fprintf(out, "\nCalls: %s ", c->method);
	const char *words = c->args ? c->args : "";
	for (const char *p = c->path; *p; p++) {
		if (p[0] != '{' || p[1] != '}') {
			fputc(*p, out);
			continue;
		}
		words += strspn(words, " [");
		size_t n = strcspn(words, " ]");
		fprintf(out, "{%.*s}", (int)n, words);
		words += n;
		p++;
	}
	fprintf(out, "%s\n", c->flags & CMD_PUBLIC ? " (no credential needed)" : "");
	if (fs[0].name || (c->flags & (CMD_PAGED | CMD_CONFIRM))) {
		fputs("\nOptions:\n", out);
		print_specs(out, fs, c->fields);
		if (c->flags & CMD_PAGED)
			print_specs(out, cli_page_opts, NULL);
		if (c->flags & CMD_CONFIRM)
			print_specs(out, cli_confirm_opts, NULL);
	}
	fputs("\nEvery command also takes:\n", out);
	print_specs(out, cli_global_opts, NULL);
	fputc('\n', out);
	fputs(exit_help, out);
}

/* Of an option before the command: -1 when it is not a global option,
 * 1 when it takes the next word as its value, else 0. */
static int global_before_command(const char *a)
{
	if (strncmp(a, "--", 2))
		return -1;
	size_t n = strcspn(a + 2, "=");
	for (const struct opts_spec *s = cli_global_opts; s->name; s++)
		if (strlen(s->name) == n && !strncmp(a + 2, s->name, n))
			return s->metavar && !a[2 + n];
	return -1;
}

/* A setting: the flag's, else the environment's (when not empty), else the
 * configuration file's. */
static const char *setting(const struct opts *o, const char *opt, const char *env, const char *file)
{
	const char *v = opts_get(o, opt);
	if (v)
		return v;
	v = getenv(env);
	return v && *v ? v : file;
}

/* Loads the configuration file into `conf`: $CELLTRAIL_CONFIG (which
 * must exist), else ~/.config/celltrail/config when there is one. */
static int load_conf(struct conf *conf)
{
	char path[4096], err[1024];
	const char *named = getenv("CELLTRAIL_CONFIG"), *home = getenv("HOME");
	if (named && *named) {
		snprintf(path, sizeof path, "%s", named);
	} else {
		if (!home || !*home) {
			const struct passwd *pw = getpwuid(geteuid());
			home = pw ? pw->pw_dir : NULL;
		}
		if (!home)
			return 0;
		snprintf(path, sizeof path, "%s/.config/celltrail/config", home);
	}
	if (conf_load(path, named && *named, conf, err, sizeof err) < 0) {
		fprintf(stderr, "celltrail: %s\n", err);
		return -1;
	}
	return 0;
}

static int run(const struct cli_group *g, const struct cli_cmd *cmd, int argc, char **argv)
{
	struct opts_spec fs[MAX_FIELDS + 1];
	const struct opts_spec *tables[5];
	struct opts o;
	struct conf conf = { 0 };
	struct cli c = { .group = g, .cmd = cmd };
	char err[512];
	size_t n = 0;
	long long timeout = API_TIMEOUT_DEFAULT_S;
	int rc = API_USAGE;

	field_specs(cmd, fs);
	tables[n++] = cli_global_opts;
	tables[n++] = fs;
	if (cmd->flags & CMD_PAGED)
		tables[n++] = cli_page_opts;
	if (cmd->flags & CMD_CONFIRM)
		tables[n++] = cli_confirm_opts;
	tables[n] = NULL;
	if (opts_parse(argc, argv, tables, &o, err, sizeof err) != 0) {
		fprintf(stderr, "celltrail: %s\n\n", err);
		cmd_help(stderr, g, cmd);
		return API_USAGE;
	}
	if (o.help) {
		cmd_help(stdout, g, cmd);
		return API_OK;
	}
	if (o.npos < cmd->min_args || o.npos > cmd->max_args)
		return cli_usage(&c, "'%s %s' takes %s%s", g->name, cmd->name, cmd->args ? "the arguments " : "no argument",
		                 cmd->args ? cmd->args : "");
	c.json = opts_get(&o, "json") != NULL;
	if (opts_get(&o, "timeout") && opts_int(opts_get(&o, "timeout"), 1, 3600, &timeout) != 0)
		return cli_usage(&c, "--timeout must be a number of seconds from 1 to 3600");
	if (load_conf(&conf) != 0)
		return API_USAGE;
	struct api_settings s = {
		.url = setting(&o, "url", "CELLTRAIL_URL", conf.url),
		.token = setting(&o, "token", "CELLTRAIL_TOKEN", conf.token),
		.cacert = setting(&o, "cacert", "CELLTRAIL_CACERT", conf.cacert),
		.timeout_s = (long)timeout,
	};
	if (!s.url) {
		rc = cli_usage(&c, "no control-plane URL: give --url, set CELLTRAIL_URL, or write 'url = ...' in the "
		               "configuration file");
		goto out;
	}
	if (!s.token && !(cmd->flags & CMD_PUBLIC)) {
		rc = cli_usage(&c, "no token: set CELLTRAIL_TOKEN, write 'token = ...' in the configuration file, or "
		               "give --token");
		goto out;
	}
	if (!(c.api = api_new(&s, err, sizeof err))) {
		rc = cli_usage(&c, "%s", err);
		goto out;
	}
	rc = cmd->run ? cmd->run(&c, cmd, &o) : cli_run(&c, cmd, &o);
	if (fflush(stdout) != 0 && rc == API_OK) {
		fprintf(stderr, "celltrail: cannot write the answer\n");
		rc = API_FAILED;
	}
out:
	api_free(c.api);
	conf_clear(&conf);
	return rc;
}

int main(int argc, char **argv)
{
	char *rest[256];
	int nrest = 0, gi = 0, help = 0;
	const struct cli_group *g = NULL;
	const struct cli_cmd *cmd = NULL;

	if (argc > (int)(sizeof rest / sizeof rest[0])) {
		fprintf(stderr, "celltrail: too many arguments\n");
		return API_USAGE;
	}
	/* The command is the first word that is neither an option nor a global
	 * option's value; the options before it go with the rest. */
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--"))
			break;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			help = 1;
			continue;
		}
		if (a[0] == '-' && a[1]) {
			int skip = global_before_command(a);
			if (skip < 0) {
				fprintf(stderr, "celltrail: unknown option '%.60s' before the command (a command's own "
				        "options follow it)\n\n", a);
				main_help(stderr);
				return API_USAGE;
			}
			i += skip;
			continue;
		}
		gi = i;
		break;
	}
	if (!gi) {
		if (help) {
			main_help(stdout);
			return API_OK;
		}
		fprintf(stderr, "celltrail: no command\n\n");
		main_help(stderr);
		return API_USAGE;
	}
	for (g = cli_groups; g->name && strcmp(g->name, argv[gi]); g++)
		;
	if (!g->name) {
		if (!strcmp(argv[gi], "rollout"))
			fprintf(stderr, "celltrail: no 'rollout' command: the control plane has no rollout API; "
			        "deploy/rollout reports its own progress, and 'celltrail fleet status' shows the "
			        "configuration each data plane serves\n\n");
		else
			fprintf(stderr, "celltrail: unknown command '%.60s'\n\n", argv[gi]);
		main_help(stderr);
		return API_USAGE;
	}
	int si = gi + 1;
	if (si >= argc || argv[si][0] == '-') {
		for (int i = si; i < argc && strcmp(argv[i], "--"); i++)
			help |= !strcmp(argv[i], "-h") || !strcmp(argv[i], "--help");
		if (help) {
			group_help(stdout, g);
			return API_OK;
		}
		fprintf(stderr, "celltrail: '%s' needs a subcommand\n\n", g->name);
		group_help(stderr, g);
		return API_USAGE;
	}
	for (cmd = g->cmds; cmd->name && strcmp(cmd->name, argv[si]); cmd++)
		;
	if (!cmd->name) {
		fprintf(stderr, "celltrail: '%s' has no subcommand '%.60s'\n\n", g->name, argv[si]);
		group_help(stderr, g);
		return API_USAGE;
	}
	for (int i = 1; i < argc; i++)
		if (i != gi && i != si)
			rest[nrest++] = argv[i];
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "celltrail: libcurl did not start\n");
		return API_FAILED;
	}
	int rc = run(g, cmd, nrest, rest);
	curl_global_cleanup();
	return rc;
}
