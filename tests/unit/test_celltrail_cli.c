/* Unit tests of the admin CLI's pure parts (cli/): what an operator types
 * is read as the help says (options, numbers, the configuration file, and
 * a file others may read refused), what a person reads is aligned and
 * cannot carry a terminal escape, paths cannot leave their route, a
 * problem becomes one clear line, and the command tables hold together
 * (every route's arguments, no option shadowing a global one). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../cli/api.c"
#include "../../cli/cli.c"
#include "../../cli/cmd_cells.c"
#include "../../cli/cmd_moves.c"
#include "../../cli/cmd_streams.c"
#include "../../cli/cmd_tenants.c"
#include "../../cli/commands.c"
#include "../../cli/conf.c"
#include "../../cli/opts.c"
#include "../../cli/table.c"
#include "unit.h"

/* ---- options ---- */

static const struct opts_spec t_global[] = {
	{ "url", "URL", "" }, { "json", NULL, "" }, { NULL, NULL, NULL },
};
static const struct opts_spec t_cmd[] = {
	{ "name", "NAME", "" }, { "all", NULL, "" }, { NULL, NULL, NULL },
};
static const struct opts_spec *const t_tables[] = { t_global, t_cmd, NULL };

/* Parses a command line given as one string of words. */
static int parse_words(const char *line, struct opts *o, char *err, size_t errlen)
{
	static char buf[512];
	static char *argv[32];
	int argc = 0;
	snprintf(buf, sizeof buf, "%s", line);
	for (char *save = NULL, *w = strtok_r(buf, " ", &save); w && argc < 32; w = strtok_r(NULL, " ", &save))
		argv[argc++] = w;
	return opts_parse(argc, argv, t_tables, o, err, errlen);
}

START_TEST(options_as_the_help_says)
{
	struct opts o;
	char err[256];

	ck_assert_int_eq(parse_words("a --url http://h --name=x=y --json b --all", &o, err, sizeof err), 0);
	ck_assert_str_eq(opts_get(&o, "url"), "http://h");
	ck_assert_str_eq(opts_get(&o, "name"), "x=y");
	ck_assert_str_eq(opts_get(&o, "json"), "");
	ck_assert_str_eq(opts_get(&o, "all"), "");
	ck_assert_uint_eq(o.npos, 2);
	ck_assert_str_eq(o.pos[0], "a");
	ck_assert_str_eq(o.pos[1], "b");
	ck_assert_ptr_null(opts_get(&o, "nope"));
	ck_assert_int_eq(o.help, 0);

	/* A value option takes the next word whatever it is; "--" ends the
	 * options; "-" is an argument. */
	ck_assert_int_eq(parse_words("--name --json - -- --all -h", &o, err, sizeof err), 0);
	ck_assert_str_eq(opts_get(&o, "name"), "--json");
	ck_assert_ptr_null(opts_get(&o, "json"));
	ck_assert_ptr_null(opts_get(&o, "all"));
	ck_assert_uint_eq(o.npos, 3);
	ck_assert_str_eq(o.pos[0], "-");
	ck_assert_str_eq(o.pos[1], "--all");
	ck_assert_str_eq(o.pos[2], "-h");
	ck_assert_int_eq(o.help, 0);

	/* Help wins over what follows it, even a wrong option. */
	ck_assert_int_eq(parse_words("x --help --no-such", &o, err, sizeof err), 0);
	ck_assert_int_eq(o.help, 1);
	ck_assert_int_eq(parse_words("-h", &o, err, sizeof err), 0);
	ck_assert_int_eq(o.help, 1);
}
END_TEST

START_TEST(option_errors_name_the_option)
{
	struct opts o;
	char err[256];
	static const struct {
		const char *line, *want;
	} bad[] = {
		{ "--nope", "unknown option '--nope'" },
		{ "--nope=1", "unknown option '--nope'" },
		{ "-x", "unknown option '-x' (options are long: --name)" },
		{ "--url", "option --url needs a value (URL)" },
		{ "--json=1", "option --json takes no value" },
		{ "--name a --name=b", "option --name is given twice" },
		{ "--all --all", "option --all is given twice" },
		{ "1 2 3 4 5 6 7 8 9", "too many arguments (from '9')" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		ck_assert_msg(parse_words(bad[i].line, &o, err, sizeof err) == -1, "'%s' was accepted", bad[i].line);
		ck_assert_msg(!strcmp(err, bad[i].want), "'%s': '%s', want '%s'", bad[i].line, err, bad[i].want);
	}
	/* Exactly OPTS_MAX_POS arguments are fine. */
	ck_assert_int_eq(parse_words("1 2 3 4 5 6 7 8", &o, err, sizeof err), 0);
	ck_assert_uint_eq(o.npos, OPTS_MAX_POS);
}
END_TEST

START_TEST(numbers_are_digits_within_bounds)
{
	long long v = 42;
	ck_assert_int_eq(opts_int("1", 1, 100, &v), 0);
	ck_assert_int_eq(v, 1);
	ck_assert_int_eq(opts_int("100", 1, 100, &v), 0);
	ck_assert_int_eq(v, 100);
	ck_assert_int_eq(opts_int("-5", -5, 5, &v), 0);
	ck_assert_int_eq(v, -5);
	static const char *const bad[] = { "0", "101", "", " 5", "+5", "5 ", "5x", "0x10", "-", "1e2",
		                               "99999999999999999999", NULL };
	for (size_t i = 0; bad[i]; i++) {
		v = 42;
		ck_assert_msg(opts_int(bad[i], 1, 100, &v) == -1, "'%s' was taken", bad[i]);
		ck_assert_int_eq(v, 42);
	}
	ck_assert_int_eq(opts_int(NULL, 1, 100, &v), -1);
}
END_TEST

/* ---- the configuration file ---- */

START_TEST(config_lines)
{
	struct conf c;
	char err[256];
	const char text[] = "# celltrail\r\n\n  url = https://cp.example/ct  \r\n"
	                    "token=\"cta_abc = def\"\n\t# indented comment\ncacert =/etc/ca.pem";
	ck_assert_int_eq(conf_parse(text, strlen(text), &c, err, sizeof err), 0);
	ck_assert_str_eq(c.url, "https://cp.example/ct");
	ck_assert_str_eq(c.token, "cta_abc = def");
	ck_assert_str_eq(c.cacert, "/etc/ca.pem");
	conf_clear(&c);
	ck_assert_ptr_null(c.url);
	conf_clear(&c); /* twice: a zeroed conf is fine */

	ck_assert_int_eq(conf_parse("", 0, &c, err, sizeof err), 0);
	ck_assert_ptr_null(c.url);
	ck_assert_ptr_null(c.token);
	/* A lone quote is kept: only a pair around the value is taken off. */
	ck_assert_int_eq(conf_parse("url = \"x", 8, &c, err, sizeof err), 0);
	ck_assert_str_eq(c.url, "\"x");
	conf_clear(&c);

	static const struct {
		const char *text, *want;
	} bad[] = {
		{ "url = a\nproxy = b\n", "line 2: unknown key 'proxy' (known: url, token, cacert)" },
		{ "url = a\n\nurl = b\n", "line 3: url is given twice" },
		{ "# x\nurl\n", "line 2: expected 'key = value'" },
		{ "token =   \n", "line 1: token has no value" },
		{ "token = \"\"\n", "line 1: token has no value" },
		{ " = x\n", "line 1: unknown key '' (known: url, token, cacert)" },
		{ "URL = x\n", "line 1: unknown key 'URL' (known: url, token, cacert)" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_msg(conf_parse(bad[i].text, strlen(bad[i].text), &c, err, sizeof err) == -1, "'%s' was taken",
		              bad[i].text);
		ck_assert_msg(!strcmp(err, bad[i].want), "'%s': '%s', want '%s'", bad[i].text, err, bad[i].want);
		ck_assert_ptr_null(c.url);
		ck_assert_ptr_null(c.token);
	}
	ck_assert_int_eq(conf_parse("url = a\0b", 9, &c, err, sizeof err), -1);
	ck_assert_str_eq(err, "the file holds a NUL byte");
}
END_TEST

/* Writes `text` to a new file of mode `mode`; returns its path (static). */
static const char *conf_file(const char *text, mode_t mode)
{
	static char path[64];
	snprintf(path, sizeof path, "/tmp/celltrail-cli-unit.XXXXXX");
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	ck_assert_int_eq(chmod(path, mode), 0);
	return path;
}

START_TEST(config_file_others_may_not_read)
{
	struct conf c;
	char err[512];
	const char *p = conf_file("url = http://h\ntoken = t\n", 0600);

	ck_assert_int_eq(conf_load(p, 1, &c, err, sizeof err), 1);
	ck_assert_str_eq(c.token, "t");
	conf_clear(&c);
	ck_assert_int_eq(chmod(p, 0400), 0);
	ck_assert_int_eq(conf_load(p, 1, &c, err, sizeof err), 1);
	conf_clear(&c);
	/* Any bit for the group or others: read, write or even execute. */
	static const mode_t open_modes[] = { 0640, 0620, 0610, 0604, 0602, 0601, 0644, 0666 };
	for (size_t i = 0; i < sizeof open_modes / sizeof open_modes[0]; i++) {
		ck_assert_int_eq(chmod(p, open_modes[i]), 0);
		err[0] = '\0';
		ck_assert_msg(conf_load(p, 1, &c, err, sizeof err) == -1, "mode %04o was read", (unsigned)open_modes[i]);
		ck_assert_msg(strstr(err, "it holds a token") && strstr(err, "chmod 600"), "mode %04o: %s",
		              (unsigned)open_modes[i], err);
		ck_assert_ptr_null(c.token);
	}
	ck_assert_int_eq(unlink(p), 0);

	/* Missing: fine when it need not exist; named, an error. */
	ck_assert_int_eq(conf_load(p, 0, &c, err, sizeof err), 0);
	ck_assert_int_eq(conf_load(p, 1, &c, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "No such file"));
	/* Not a regular file. */
	ck_assert_int_eq(conf_load("/tmp", 1, &c, err, sizeof err), -1);
	/* A malformed line names the file and the line. */
	p = conf_file("url = x\nbogus\n", 0600);
	ck_assert_int_eq(conf_load(p, 1, &c, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, ": line 2: expected 'key = value'"));
	unlink(p);
	/* The size limit at both ends. */
	char *big = malloc(CONF_MAX_BYTES + 2);
	ck_assert_ptr_nonnull(big);
	memset(big, '#', CONF_MAX_BYTES + 1);
	big[CONF_MAX_BYTES + 1] = '\0';
	big[CONF_MAX_BYTES - 1] = '\n';
	big[CONF_MAX_BYTES] = '\0';
	p = conf_file(big, 0600);
	ck_assert_int_eq(conf_load(p, 1, &c, err, sizeof err), 1);
	conf_clear(&c);
	unlink(p);
	big[CONF_MAX_BYTES] = '#';
	p = conf_file(big, 0600);
	ck_assert_int_eq(conf_load(p, 1, &c, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "larger than"));
	unlink(p);
	free(big);
}
END_TEST

/* ---- tables ---- */

/* Prints `t` into a string (static). */
static const char *printed(const struct table *t, size_t max_width)
{
	static char out[4096];
	FILE *f = fmemopen(out, sizeof out, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(table_print(t, f, max_width), 0);
	fclose(f);
	return out;
}

START_TEST(tables_align_by_characters)
{
	const char *h[] = { "ID", "NAME", "STATUS" };
	struct table *t = table_new(3, h);
	ck_assert_ptr_nonnull(t);
	const char *r1[] = { "1", "café ☕", "active" };
	const char *r2[] = { "22222", "x", NULL };
	ck_assert_int_eq(table_add_row(t, r1), 0);
	ck_assert_int_eq(table_add_row(t, r2), 0);
	ck_assert_uint_eq(table_rows(t), 2);
	/* Columns two spaces apart, widths in characters, the last column
	 * not padded, a missing cell "-". */
	ck_assert_str_eq(printed(t, 0), "ID     NAME    STATUS\n"
	                                "1      café ☕  active\n"
	                                "22222  x       -\n");
	table_free(t);
	table_free(NULL);
	ck_assert_ptr_null(table_new(0, h));
	ck_assert_ptr_null(table_new(TABLE_MAX_COLS + 1, h));
}
END_TEST

START_TEST(tables_cut_long_cells)
{
	const char *h[] = { "A", "B" };
	struct table *t = table_new(2, h);
	const char *r[] = { "0123456789", "ééééééééééé" };
	ck_assert_int_eq(table_add_row(t, r), 0);
	/* At the limit a cell is whole; one character more and it is cut to
	 * the limit with "...", never inside a character. */
	ck_assert_str_eq(printed(t, 11), "A           B\n0123456789  ééééééééééé\n");
	ck_assert_str_eq(printed(t, 10), "A           B\n0123456789  ééééééé...\n");
	ck_assert_str_eq(printed(t, 9), "A          B\n012345...  éééééé...\n");
	table_free(t);
}
END_TEST

START_TEST(nothing_reaches_the_terminal_raw)
{
	/* C0 controls (ESC, newline, tab), DEL and the C1 controls (CSI is
	 * U+009B) become '?'; other characters stay. */
	char *s = table_sanitize("a\x1b[31mb\nc\td\x7f" "e\xc2\x9b" "f\xc2\xa0g é");
	ck_assert_str_eq(s, "a?[31mb?c?d?e?f\xc2\xa0g é");
	free(s);
	const char *h[] = { "X\x1b" };
	struct table *t = table_new(1, h);
	const char *r[] = { "\x1b]0;title\x07" };
	ck_assert_int_eq(table_add_row(t, r), 0);
	ck_assert_str_eq(printed(t, 0), "X?\n?]0;title?\n");
	table_free(t);
	json_t *o = json_pack("{s:s, s:{s:s}}", "na\x1bme", "v\x1b", "nested", "k", "\x1b");
	char out[256];
	FILE *f = fmemopen(out, sizeof out, "w");
	ck_assert_int_eq(table_print_object(f, o), 0);
	fclose(f);
	ck_assert_ptr_null(strchr(out, '\x1b'));
	json_decref(o);
}
END_TEST

START_TEST(values_and_fields_for_people)
{
	json_t *o = json_pack("{s:n, s:I, s:f, s:b, s:b, s:[s,s], s:[], s:{s:i}, s:[{s:i}], s:s}", "null", "int",
	                      (json_int_t)-7, "real", 1.5, "yes", 1, "no", 0, "scopes", "events:read", "events:write",
	                      "empty", "obj", "a", 1, "objs", "b", 2, "name", "acme");
	static const struct {
		const char *spec, *want;
	} cases[] = {
		{ "null", "-" },
		{ "absent", "-" },
		{ "int", "-7" },
		{ "real", "1.5" },
		{ "yes", "true" },
		{ "no", "false" },
		{ "scopes", "events:read,events:write" },
		{ "empty", "-" },
		{ "obj", "{\"a\":1}" },
		{ "objs", "[{\"b\":2}]" },
		{ "null|absent|name|int", "acme" },
		{ "null|absent", "-" },
		{ "name/null/int/absent", "acme/-7" },
		{ "absent/null", "-" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *s = table_field(o, cases[i].spec);
		ck_assert_ptr_nonnull(s);
		ck_assert_msg(!strcmp(s, cases[i].want), "%s: '%s', want '%s'", cases[i].spec, s, cases[i].want);
		free(s);
	}
	char *s = table_field(json_object_get(o, "scopes"), "name"); /* not an object */
	ck_assert_str_eq(s, "-");
	free(s);
	s = table_value_text(NULL);
	ck_assert_str_eq(s, "-");
	free(s);

	char out[512];
	FILE *f = fmemopen(out, sizeof out, "w");
	json_t *small = json_pack("{s:s, s:n, s:i}", "id", "t-1", "revoked_at", "tenants", 3);
	ck_assert_int_eq(table_print_object(f, small), 0);
	fclose(f);
	ck_assert_str_eq(out, "id          t-1\nrevoked_at  -\ntenants     3\n");
	json_decref(small);
	json_decref(o);
}
END_TEST

/* ---- paths and problems ---- */

START_TEST(paths_keep_arguments_in_their_segment)
{
	char p[64];
	const char *a1[] = { "t-1", "k_2.~", NULL };
	ck_assert_int_eq(api_path(p, sizeof p, "/v1/tenants/{}/api-keys/{}", a1), 0);
	ck_assert_str_eq(p, "/v1/tenants/t-1/api-keys/k_2.~");
	const char *a2[] = { "../../v1/regions?x=1#f", NULL };
	ck_assert_int_eq(api_path(p, sizeof p, "/v1/tenants/{}", a2), 0);
	ck_assert_str_eq(p, "/v1/tenants/..%2F..%2Fv1%2Fregions%3Fx%3D1%23f");
	const char *a3[] = { "caf\xc3\xa9 %", NULL };
	ck_assert_int_eq(api_path(p, sizeof p, "/v1/tenants/{}", a3), 0);
	ck_assert_str_eq(p, "/v1/tenants/caf%C3%A9%20%25");
	/* An empty or missing argument is an error, never "//". */
	const char *a4[] = { "", NULL };
	ck_assert_int_eq(api_path(p, sizeof p, "/v1/tenants/{}", a4), -1);
	ck_assert_str_eq(p, "");
	const char *a5[] = { "t", NULL };
	ck_assert_int_eq(api_path(p, sizeof p, "/v1/tenants/{}/users/{}", a5), -1);
	ck_assert_int_eq(api_path(p, sizeof p, "/v1/tenants/{}", NULL), -1);
	ck_assert_int_eq(api_path(p, sizeof p, "/v1/regions", NULL), 0);
	ck_assert_str_eq(p, "/v1/regions");
	/* The length at both ends: "/v1/x/" + "%20" + "ab" is 11 bytes. */
	const char *a6[] = { " ab", NULL };
	ck_assert_int_eq(api_path(p, 12, "/v1/x/{}", a6), 0);
	ck_assert_str_eq(p, "/v1/x/%20ab");
	ck_assert_int_eq(api_path(p, 11, "/v1/x/{}", a6), -1);
	ck_assert_str_eq(p, "");
	ck_assert_int_eq(api_path(p, 10, "/v1/x/{}", a6), -1);
}
END_TEST

START_TEST(queries_are_encoded)
{
	char p[64] = "/v1/tenants";
	ck_assert_int_eq(api_query(p, sizeof p, "region", NULL), 0);
	ck_assert_str_eq(p, "/v1/tenants");
	ck_assert_int_eq(api_query(p, sizeof p, "region", "eu"), 0);
	ck_assert_int_eq(api_query(p, sizeof p, "cursor", "a+b/c="), 0);
	ck_assert_str_eq(p, "/v1/tenants?region=eu&cursor=a%2Bb%2Fc%3D");
	/* One that does not fit leaves the path as it was. */
	ck_assert_int_eq(api_query(p, 48, "limit", "100"), -1);
	ck_assert_str_eq(p, "/v1/tenants?region=eu&cursor=a%2Bb%2Fc%3D");
	char q[15] = "/v1/x";
	ck_assert_int_eq(api_query(q, sizeof q, "a", "123456"), 0); /* 14 characters and the NUL: fits */
	ck_assert_str_eq(q, "/v1/x?a=123456");
	char r[15] = "/v1/x";
	ck_assert_int_eq(api_query(r, sizeof r, "a", "1234567"), -1);
	ck_assert_str_eq(r, "/v1/x");
}
END_TEST

START_TEST(a_problem_is_one_clear_line)
{
	char line[512];
	json_t *p = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:i}", "type", "urn:celltrail:problem:validation_failed",
	                      "title", "Validation failed", "status", 400, "code", "validation_failed", "detail",
	                      "slug must be 3 to 63 of [a-z0-9-].", "field", "slug", "retry_after_seconds", 2);
	json_object_set_new(p, "request_id", json_string("req-9"));
	api_problem_line(line, sizeof line, 400, p, "application/problem+json");
	ck_assert_str_eq(line, "HTTP 400 validation_failed: slug must be 3 to 63 of [a-z0-9-]. "
	                       "(field slug; retry after 2 s; request req-9)");
	json_decref(p);

	p = json_pack("{s:s, s:s}", "code", "not_found", "title", "Not found");
	api_problem_line(line, sizeof line, 404, p, NULL);
	ck_assert_str_eq(line, "HTTP 404 not_found: Not found");
	json_decref(p);

	p = json_pack("{s:s, s:s}", "code", "unauthorized\n", "detail", "No\x1b[2J credentials.\r\n");
	api_problem_line(line, sizeof line, 401, p, NULL);
	ck_assert_str_eq(line, "HTTP 401 unauthorized?: No?[2J credentials.??");
	json_decref(p);

	/* Not a problem document: said so, with what it is. */
	api_problem_line(line, sizeof line, 502, NULL, "text/html\x1b");
	ck_assert_str_eq(line, "HTTP 502: the answer is not a problem document (text/html?)");
	p = json_pack("{s:s}", "error", "x");
	api_problem_line(line, sizeof line, 500, p, "application/json");
	ck_assert_str_eq(line, "HTTP 500: the answer is not a problem document (application/json)");
	json_decref(p);
	api_problem_line(line, sizeof line, 503, NULL, "");
	ck_assert_str_eq(line, "HTTP 503: the answer is not a problem document (no content type)");
	api_problem_line(line, sizeof line, 301, NULL, "text/html");
	ck_assert_str_eq(line, "HTTP 301: a redirect, not followed (is the URL the control plane's?)");
	/* Cut short, never overrun. */
	char small[16];
	p = json_pack("{s:s, s:s, s:s}", "code", "conflict", "detail", "a long detail sentence", "request_id", "r");
	api_problem_line(small, sizeof small, 409, p, NULL);
	ck_assert_str_eq(small, "HTTP 409 confli");
	json_decref(p);
}
END_TEST

START_TEST(settings_are_checked_before_any_call)
{
	char err[256];
	struct api_settings s = { .url = "http://127.0.0.1:1", .token = "cta_x", .timeout_s = 30 };
	struct api *a = api_new(&s, err, sizeof err);
	ck_assert_ptr_nonnull(a);
	api_free(a);
	api_free(NULL);
	s.token = NULL; /* public routes */
	ck_assert_ptr_nonnull(a = api_new(&s, err, sizeof err));
	api_free(a);
	static const struct {
		const char *url, *token, *cacert;
		long timeout;
		const char *want;
	} bad[] = {
		{ "ftp://h", "t", NULL, 30, "must start with http:// or https://" },
		{ "h:8080", "t", NULL, 30, "must start with http:// or https://" },
		{ "http://", "t", NULL, 30, "has no host" },
		{ "https://u:p@h", "t", NULL, 30, "must not carry credentials" },
		{ "http://h/x?y=1", "t", NULL, 30, "a query" },
		{ "http://h/a b", "t", NULL, 30, "a space" },
		{ "http://h", "", NULL, 30, "the token must be" },
		{ "http://h", "a b", NULL, 30, "the token must be" },
		{ "http://h", "a\r\nX-Evil: 1", NULL, 30, "the token must be" },
		{ "http://h", "t\xc3\xa9", NULL, 30, "the token must be" },
		{ "http://h", "t", "/no/such/ca.pem", 30, "the CA file /no/such/ca.pem cannot be read" },
		{ "http://h", "t", NULL, 0, "the timeout must be" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct api_settings b = { bad[i].url, bad[i].token, bad[i].cacert, bad[i].timeout };
		err[0] = '\0';
		ck_assert_msg(!api_new(&b, err, sizeof err), "%s was taken", bad[i].url);
		ck_assert_msg(strstr(err, bad[i].want), "%s: '%s', want '%s'", bad[i].url, err, bad[i].want);
		ck_assert_msg(!strstr(err, "X-Evil") && !strstr(err, "a b"), "the token is in the message: %s", err);
	}
}
END_TEST

/* ---- the command tables ---- */

static size_t holes(const char *path)
{
	size_t n = 0;
	for (const char *p = path; (p = strstr(p, "{}")) != NULL; p += 2)
		n++;
	return n;
}

static int named_in(const struct opts_spec *t, const char *name)
{
	for (; t->name; t++)
		if (!strcmp(t->name, name))
			return 1;
	return 0;
}

START_TEST(command_tables_hold_together)
{
	size_t ncmds = 0;
	for (const struct cli_group *g = cli_groups; g->name; g++) {
		ck_assert_msg(g->cmds[0].name, "%s has no subcommand", g->name);
		for (const struct cli_cmd *c = g->cmds; c->name; c++, ncmds++) {
			const char *n = c->name;
			ck_assert_msg(c->method && c->path && c->summary, "%s %s: method, path and summary", g->name, n);
			ck_assert_msg(!strncmp(c->path, "/v1/", 4), "%s %s: %s", g->name, n, c->path);
			/* Each argument fills one "{}" of the route. */
			ck_assert_msg(holes(c->path) == c->max_args && c->min_args <= c->max_args &&
			                  c->max_args <= OPTS_MAX_POS,
			              "%s %s: %zu arguments (%zu..%zu) for %s", g->name, n, holes(c->path), c->min_args,
			              c->max_args, c->path);
			ck_assert_msg(!c->max_args || c->args, "%s %s: its arguments are not named for --help", g->name, n);
			ck_assert_msg(!c->cols || !strcmp(c->method, "GET"), "%s %s: a list is a GET", g->name, n);
			ck_assert_msg(!(c->flags & CMD_PAGED) || c->cols, "%s %s: paged but not a list", g->name, n);
			size_t ncols = 0;
			for (const struct cli_col *col = c->cols; col && col->header; col++)
				ncols++;
			ck_assert_msg(ncols + 1 <= TABLE_MAX_COLS, "%s %s: %zu columns", g->name, n, ncols);
			size_t nf = 0;
			for (const struct cli_field *f = c->fields; f && f->opt; f++, nf++) {
				/* No option of a command shadows one every command takes. */
				ck_assert_msg(!named_in(cli_global_opts, f->opt) && !named_in(cli_page_opts, f->opt) &&
				                  !named_in(cli_confirm_opts, f->opt) && strcmp(f->opt, "help"),
				              "%s %s: --%s is a global option", g->name, n, f->opt);
				for (const struct cli_field *e = f + 1; e->opt; e++)
					ck_assert_msg(strcmp(e->opt, f->opt), "%s %s: --%s twice", g->name, n, f->opt);
				ck_assert_msg((f->type == CF_FLAG) == (f->metavar == NULL), "%s %s: --%s: metavar", g->name, n,
				              f->opt);
				ck_assert_msg(f->help && *f->help, "%s %s: --%s has no help", g->name, n, f->opt);
				/* A query parameter goes with a GET; a body member with anything else. */
				if (f->member)
					ck_assert_msg(((f->flags & F_QUERY) != 0) == !strcmp(c->method, "GET"),
					              "%s %s: --%s: query or body", g->name, n, f->opt);
				ck_assert_msg(f->type != CF_INT || f->min <= f->max, "%s %s: --%s bounds", g->name, n, f->opt);
			}
			ck_assert_msg(nf <= 24, "%s %s: %zu options", g->name, n, nf);
		}
	}
	ck_assert_uint_ge(ncmds, 30);
}
END_TEST

Suite *celltrail_cli_suite(void)
{
	Suite *s = suite_create("celltrail_cli");
	TCase *tc = tcase_create("celltrail_cli");
	tcase_add_test(tc, options_as_the_help_says);
	tcase_add_test(tc, option_errors_name_the_option);
	tcase_add_test(tc, numbers_are_digits_within_bounds);
	tcase_add_test(tc, config_lines);
	tcase_add_test(tc, config_file_others_may_not_read);
	tcase_add_test(tc, tables_align_by_characters);
	tcase_add_test(tc, tables_cut_long_cells);
	tcase_add_test(tc, nothing_reaches_the_terminal_raw);
	tcase_add_test(tc, values_and_fields_for_people);
	tcase_add_test(tc, paths_keep_arguments_in_their_segment);
	tcase_add_test(tc, queries_are_encoded);
	tcase_add_test(tc, a_problem_is_one_clear_line);
	tcase_add_test(tc, settings_are_checked_before_any_call);
	tcase_add_test(tc, command_tables_hold_together);
	suite_add_tcase(s, tc);
	return s;
}
