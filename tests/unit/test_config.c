/* Unit tests of common/config: environment loading and per-type parsing. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "unit.h"

/* Variable names unique to these tests, so nothing else in the
 * environment can interfere (and CK_FORK=no leaves nothing behind). */
#define V_REQ     "CT_UNIT_CFG_REQ"
#define V_NAME    "CT_UNIT_CFG_NAME"
#define V_TOKEN   "CT_UNIT_CFG_TOKEN"
#define V_WORKERS "CT_UNIT_CFG_WORKERS"
#define V_DEBUG   "CT_UNIT_CFG_DEBUG"
#define V_TIMEOUT "CT_UNIT_CFG_TIMEOUT"
#define V_LISTEN  "CT_UNIT_CFG_LISTEN"
#define V_FORMAT  "CT_UNIT_CFG_FORMAT"
#define V_OPT     "CT_UNIT_CFG_OPT"

static const char *const all_vars[] = {
	V_REQ, V_NAME, V_TOKEN, V_WORKERS, V_DEBUG, V_TIMEOUT, V_LISTEN, V_FORMAT, V_OPT,
};

struct tcfg {
	const char *req;
	const char *name;
	const char *token;
	long workers;
	int debug;
	int64_t timeout_ms;
	struct cfg_addr listen;
	int format;
	const char *opt;
};

static const char *const formats[] = { "text", "json", NULL };

static const struct cfg_var tab[] = {
	{ V_REQ, CFG_STR, NULL, 1, offsetof(struct tcfg, req), 0, 0, NULL, "Required string." },
	{ V_NAME, CFG_STR, "celltrail", 0, offsetof(struct tcfg, name), 0, 0, NULL, "Name." },
	{ V_TOKEN, CFG_SECRET, "s3cr3t-default", 0, offsetof(struct tcfg, token), 0, 0, NULL,
	  "Token." },
	{ V_WORKERS, CFG_INT, "4", 0, offsetof(struct tcfg, workers), 1, 64, NULL, "Workers." },
	{ V_DEBUG, CFG_BOOL, "false", 0, offsetof(struct tcfg, debug), 0, 0, NULL, "Debug." },
	{ V_TIMEOUT, CFG_DURATION, "30s", 0, offsetof(struct tcfg, timeout_ms), 1, 86400000, NULL,
	  "Timeout." },
	{ V_LISTEN, CFG_ADDR, "127.0.0.1:8080", 0, offsetof(struct tcfg, listen), 0, 0, NULL,
	  "Listen address." },
	{ V_FORMAT, CFG_ENUM, "text", 0, offsetof(struct tcfg, format), 0, 0, formats,
	  "Log format." },
	{ V_OPT, CFG_STR, NULL, 0, offsetof(struct tcfg, opt), 0, 0, NULL, "Optional." },
	CFG_END
};

static void clear_env(void)
{
	for (size_t i = 0; i < sizeof all_vars / sizeof all_vars[0]; i++)
		unsetenv(all_vars[i]);
}

static void setup(void)
{
	clear_env();
	setenv(V_REQ, "present", 1);
}

/* One variable description per type, for cfg_parse_value. */
static const struct cfg_var v_int = { "N", CFG_INT, NULL, 0, 0, 1, 64, NULL, "" };
static const struct cfg_var v_bool = { "B", CFG_BOOL, NULL, 0, 0, 0, 0, NULL, "" };
static const struct cfg_var v_dur = { "D", CFG_DURATION, NULL, 0, 0, 0, LONG_MAX, NULL, "" };
static const struct cfg_var v_addr = { "A", CFG_ADDR, NULL, 0, 0, 0, 0, NULL, "" };
static const struct cfg_var v_enum = { "E", CFG_ENUM, NULL, 0, 0, 0, 0, formats, "" };

static int64_t dur(const char *text, int *rc)
{
	int64_t ms = -1;
	char err[200];
	*rc = cfg_parse_value(&v_dur, text, &ms, err, sizeof err);
	return ms;
}

START_TEST(defaults_applied)
{
	/* With nothing set, every variable takes its documented default. */
	struct tcfg c;
	char err[256] = "";
	memset(&c, 0, sizeof c);
	c.opt = "stale";
	ck_assert_int_eq(cfg_load(tab, &c, err, sizeof err), 0);
	ck_assert_str_eq(c.req, "present");
	ck_assert_str_eq(c.name, "celltrail");
	ck_assert_str_eq(c.token, "s3cr3t-default");
	ck_assert_int_eq(c.workers, 4);
	ck_assert_int_eq(c.debug, 0);
	ck_assert_int_eq(c.timeout_ms, 30000);
	ck_assert_str_eq(c.listen.host, "127.0.0.1");
	ck_assert_uint_eq(c.listen.port, 8080);
	ck_assert_int_eq(c.format, 0);
	ck_assert_ptr_null(c.opt);
}
END_TEST

START_TEST(env_overrides_defaults)
{
	/* What the operator sets wins over every default. */
	struct tcfg c;
	char err[256] = "";
	memset(&c, 0, sizeof c);
	setenv(V_NAME, "eu-west", 1);
	setenv(V_WORKERS, "16", 1);
	setenv(V_DEBUG, "yes", 1);
	setenv(V_TIMEOUT, "250ms", 1);
	setenv(V_LISTEN, "[::1]:9000", 1);
	setenv(V_FORMAT, "json", 1);
	setenv(V_OPT, "x", 1);
	ck_assert_msg(cfg_load(tab, &c, err, sizeof err) == 0, "cfg_load: %s", err);
	ck_assert_str_eq(c.name, "eu-west");
	ck_assert_int_eq(c.workers, 16);
	ck_assert_int_eq(c.debug, 1);
	ck_assert_int_eq(c.timeout_ms, 250);
	ck_assert_str_eq(c.listen.host, "::1");
	ck_assert_uint_eq(c.listen.port, 9000);
	ck_assert_int_eq(c.format, 1);
	ck_assert_str_eq(c.opt, "x");
}
END_TEST

START_TEST(required_missing)
{
	/* A required variable left unset stops start-up and names itself. */
	struct tcfg c;
	char err[256] = "";
	memset(&c, 0, sizeof c);
	unsetenv(V_REQ);
	ck_assert_int_eq(cfg_load(tab, &c, err, sizeof err), -1);
	ck_assert_str_eq(err, V_REQ ": required but not set");
}
END_TEST

START_TEST(empty_counts_as_unset)
{
	/* VAR= in a unit file means "not set": defaults apply, required fails. */
	struct tcfg c;
	char err[256] = "";
	memset(&c, 0, sizeof c);
	setenv(V_WORKERS, "", 1);
	setenv(V_NAME, "", 1);
	ck_assert_int_eq(cfg_load(tab, &c, err, sizeof err), 0);
	ck_assert_int_eq(c.workers, 4);
	ck_assert_str_eq(c.name, "celltrail");

	setenv(V_REQ, "", 1);
	ck_assert_int_eq(cfg_load(tab, &c, err, sizeof err), -1);
	ck_assert_str_eq(err, V_REQ ": required but not set");
}
END_TEST

START_TEST(error_starts_with_name)
{
	/* Every load error begins with the variable to fix. */
	static const struct { const char *var, *value, *err; } cases[] = {
		{ V_WORKERS, "lots", V_WORKERS ": not an integer" },
		{ V_WORKERS, "65", V_WORKERS ": 65 is out of range [1, 64]" },
		{ V_DEBUG, "maybe", V_DEBUG ": not a boolean (use true or false)" },
		{ V_TIMEOUT, "soon", V_TIMEOUT ": not a duration (examples: 250ms, 30s, 5m, 2h, 7d)" },
		{ V_TIMEOUT, "2d", V_TIMEOUT ": 172800000ms is out of range [1ms, 86400000ms]" },
		{ V_LISTEN, "localhost",
		  V_LISTEN ": not an address (expected host:port, e.g. 127.0.0.1:8080)" },
		{ V_FORMAT, "xml", V_FORMAT ": must be one of: text json" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct tcfg c;
		char err[256] = "";
		memset(&c, 0, sizeof c);
		setup();
		setenv(cases[i].var, cases[i].value, 1);
		ck_assert_int_eq(cfg_load(tab, &c, err, sizeof err), -1);
		ck_assert_str_eq(err, cases[i].err);
	}
}
END_TEST

START_TEST(bad_default_reported)
{
	/* A table whose default does not parse fails loudly, naming the variable. */
	static const struct cfg_var bad[] = {
		{ V_WORKERS, CFG_INT, "zero", 0, 0, 0, 10, NULL, "" },
		CFG_END
	};
	long n = 0;
	char err[256] = "";
	ck_assert_int_eq(cfg_load(bad, &n, err, sizeof err), -1);
	ck_assert_str_eq(err, V_WORKERS ": not an integer");
}
END_TEST

START_TEST(int_range)
{
	/* Integers outside [min, max] are refused; both bounds are allowed. */
	long n = -7;
	char err[200] = "";
	ck_assert_int_eq(cfg_parse_value(&v_int, "1", &n, err, sizeof err), 0);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(cfg_parse_value(&v_int, "64", &n, err, sizeof err), 0);
	ck_assert_int_eq(n, 64);
	ck_assert_int_eq(cfg_parse_value(&v_int, "0", &n, err, sizeof err), -1);
	ck_assert_str_eq(err, "0 is out of range [1, 64]");
	ck_assert_int_eq(cfg_parse_value(&v_int, "-3", &n, err, sizeof err), -1);
	ck_assert_str_eq(err, "-3 is out of range [1, 64]");
	ck_assert_int_eq(cfg_parse_value(&v_int, "65", &n, err, sizeof err), -1);
	ck_assert_str_eq(err, "65 is out of range [1, 64]");
	ck_assert_int_eq(n, 64); /* untouched on error */
}
END_TEST

START_TEST(int_garbage)
{
	/* "8k", " 8", "8 ", "" and overflowing numbers are not integers. */
	static const char *const bad[] = { "8k", " 8", "8 ", "", "0x10", "1.5",
		                           "99999999999999999999999" };
	long n = 5;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char err[200] = "";
		ck_assert_msg(cfg_parse_value(&v_int, bad[i], &n, err, sizeof err) == -1,
		              "'%s' accepted", bad[i]);
		ck_assert_str_eq(err, "not an integer");
	}
	ck_assert_int_eq(n, 5);
}
END_TEST

START_TEST(bool_spellings)
{
	/* The usual spellings of true and false work, in any case. */
	static const struct { const char *text; int want; } ok[] = {
		{ "true", 1 }, { "false", 0 }, { "1", 1 }, { "0", 0 }, { "yes", 1 },
		{ "no", 0 }, { "on", 1 }, { "off", 0 }, { "TRUE", 1 }, { "Off", 0 },
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		int b = 7;
		char err[200] = "";
		ck_assert_msg(cfg_parse_value(&v_bool, ok[i].text, &b, err, sizeof err) == 0,
		              "'%s' refused: %s", ok[i].text, err);
		ck_assert_msg(b == ok[i].want, "'%s' gave %d", ok[i].text, b);
	}
}
END_TEST

START_TEST(bool_garbage)
{
	/* Anything else is refused rather than read as false. */
	static const char *const bad[] = { "maybe", "2", "y", "n", "truee", "", " true" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int b = 7;
		char err[200] = "";
		ck_assert_msg(cfg_parse_value(&v_bool, bad[i], &b, err, sizeof err) == -1,
		              "'%s' accepted", bad[i]);
		ck_assert_str_eq(err, "not a boolean (use true or false)");
		ck_assert_int_eq(b, 7);
	}
}
END_TEST

START_TEST(duration_units)
{
	/* Each unit converts to the right number of milliseconds. */
	static const struct { const char *text; int64_t ms; } ok[] = {
		{ "250ms", 250 }, { "30s", 30000 }, { "5m", 300000 }, { "2h", 7200000 },
		{ "7d", 604800000 }, { "0s", 0 }, { "1000ms", 1000 },
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		int rc;
		int64_t ms = dur(ok[i].text, &rc);
		ck_assert_msg(rc == 0, "'%s' refused", ok[i].text);
		ck_assert_msg(ms == ok[i].ms, "'%s' gave %lld ms", ok[i].text, (long long)ms);
	}
}
END_TEST

START_TEST(duration_bare_number_is_seconds)
{
	/* A duration without a unit is read as seconds, not milliseconds. */
	int rc;
	ck_assert_int_eq(dur("45", &rc), 45000);
	ck_assert_int_eq(rc, 0);
}
END_TEST

START_TEST(duration_garbage)
{
	/* Malformed durations are refused with a sentence showing examples. */
	static const char *const bad[] = { "", "soon", "ms", "5 m", "1.5s", "-5s", "+5s",
		                           "10x", "5M", "5sec", " 5s", "5s " };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int64_t ms = 123;
		char err[200] = "";
		ck_assert_msg(cfg_parse_value(&v_dur, bad[i], &ms, err, sizeof err) == -1,
		              "'%s' accepted", bad[i]);
		ck_assert_str_eq(err, "not a duration (examples: 250ms, 30s, 5m, 2h, 7d)");
		ck_assert_int_eq(ms, 123);
	}
}
END_TEST

START_TEST(duration_overflow)
{
	/* Durations too large for 64-bit milliseconds are refused, not wrapped. */
	static const char *const bad[] = {
		"99999999999999999999s",  /* beyond strtoll */
		"9223372036854775807d",   /* fits, but not once multiplied */
		"106751991168d",          /* just over INT64_MAX ms */
		"9223372036854776s",
		"213503982335d",          /* would wrap round to 34448384 ms */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int rc;
		int64_t ms = dur(bad[i], &rc);
		ck_assert_msg(rc == -1, "'%s' accepted as %lld ms", bad[i], (long long)ms);
	}
	int rc;
	ck_assert_int_eq(dur("106751991167d", &rc), INT64_C(106751991167) * 86400000);
	ck_assert_int_eq(rc, 0);
}
END_TEST

START_TEST(duration_range)
{
	/* Duration bounds are in milliseconds and inclusive. */
	static const struct cfg_var v = { "D", CFG_DURATION, NULL, 0, 0, 100, 60000, NULL, "" };
	int64_t ms = 0;
	char err[200] = "";
	ck_assert_int_eq(cfg_parse_value(&v, "100ms", &ms, err, sizeof err), 0);
	ck_assert_int_eq(ms, 100);
	ck_assert_int_eq(cfg_parse_value(&v, "1m", &ms, err, sizeof err), 0);
	ck_assert_int_eq(ms, 60000);
	ck_assert_int_eq(cfg_parse_value(&v, "99ms", &ms, err, sizeof err), -1);
	ck_assert_str_eq(err, "99ms is out of range [100ms, 60000ms]");
	ck_assert_int_eq(cfg_parse_value(&v, "61s", &ms, err, sizeof err), -1);
	ck_assert_str_eq(err, "61000ms is out of range [100ms, 60000ms]");
}
END_TEST

START_TEST(addr_valid)
{
	/* IPv4, bracketed IPv6, host names and ":port" (all interfaces) parse. */
	static const struct { const char *text, *host; unsigned port; } ok[] = {
		{ "127.0.0.1:8080", "127.0.0.1", 8080 },
		{ "[::1]:9000", "::1", 9000 },
		{ ":8080", "0.0.0.0", 8080 },
		{ "db-1.internal:5432", "db-1.internal", 5432 },
		{ "[fe80::1]:0", "fe80::1", 0 },
		{ "0.0.0.0:65535", "0.0.0.0", 65535 },
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		struct cfg_addr a;
		char err[200] = "";
		memset(&a, 0, sizeof a);
		ck_assert_msg(cfg_parse_value(&v_addr, ok[i].text, &a, err, sizeof err) == 0,
		              "'%s' refused: %s", ok[i].text, err);
		ck_assert_str_eq(a.host, ok[i].host);
		ck_assert_uint_eq(a.port, ok[i].port);
	}
}
END_TEST

START_TEST(addr_invalid)
{
	/* Addresses without a usable port, or ambiguous IPv6, are refused. */
	static const char *const bad[] = {
		"127.0.0.1",      /* missing port */
		"127.0.0.1:",     /* empty port */
		"localhost:70000", /* port out of range */
		"localhost:65536",
		"localhost:-1",
		"localhost:http",
		"::1:8080",       /* unbracketed IPv6 */
		"[::1]",          /* bracketed, no port */
		"[::1]8080",
		"[::1:8080",
		"bad host:80",
		"",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct cfg_addr a;
		char err[200] = "";
		memset(&a, 0, sizeof a);
		ck_assert_msg(cfg_parse_value(&v_addr, bad[i], &a, err, sizeof err) == -1,
		              "'%s' accepted as %s port %u", bad[i], a.host, a.port);
		ck_assert_str_eq(err, "not an address (expected host:port, e.g. 127.0.0.1:8080)");
	}
}
END_TEST

START_TEST(addr_host_too_long)
{
	/* A host name that does not fit is refused, not truncated. */
	char text[128];
	struct cfg_addr a;
	char err[200];
	memset(text, 'h', 63);
	strcpy(text + 63, ":80");
	ck_assert_int_eq(cfg_parse_value(&v_addr, text, &a, err, sizeof err), 0);
	ck_assert_uint_eq(strlen(a.host), 63);
	memset(text, 'h', 64);
	strcpy(text + 64, ":80");
	ck_assert_int_eq(cfg_parse_value(&v_addr, text, &a, err, sizeof err), -1);
}
END_TEST

START_TEST(addr_format)
{
	/* Addresses print back in the form they are written in (brackets for IPv6). */
	struct cfg_addr a;
	char buf[96], err[200];
	ck_assert_int_eq(cfg_parse_value(&v_addr, "127.0.0.1:8080", &a, err, sizeof err), 0);
	cfg_addr_format(&a, buf, sizeof buf);
	ck_assert_str_eq(buf, "127.0.0.1:8080");
	ck_assert_int_eq(cfg_parse_value(&v_addr, "[::1]:9000", &a, err, sizeof err), 0);
	cfg_addr_format(&a, buf, sizeof buf);
	ck_assert_str_eq(buf, "[::1]:9000");
	ck_assert_int_eq(cfg_parse_value(&v_addr, ":443", &a, err, sizeof err), 0);
	cfg_addr_format(&a, buf, sizeof buf);
	ck_assert_str_eq(buf, "0.0.0.0:443");
}
END_TEST

START_TEST(enum_choices)
{
	/* An enum gives the index of its choice; anything else lists the choices. */
	int e = -1;
	char err[200] = "";
	ck_assert_int_eq(cfg_parse_value(&v_enum, "text", &e, err, sizeof err), 0);
	ck_assert_int_eq(e, 0);
	ck_assert_int_eq(cfg_parse_value(&v_enum, "json", &e, err, sizeof err), 0);
	ck_assert_int_eq(e, 1);
	ck_assert_int_eq(cfg_parse_value(&v_enum, "yaml", &e, err, sizeof err), -1);
	ck_assert_str_eq(err, "must be one of: text json");
	ck_assert_int_eq(cfg_parse_value(&v_enum, "", &e, err, sizeof err), -1);
	ck_assert_int_eq(e, 1);
}
END_TEST

START_TEST(enum_error_truncates_safely)
{
	/* A long list of choices in a small buffer is cut, never overrun. */
	char err[20];
	int e;
	memset(err, 'Z', sizeof err);
	ck_assert_int_eq(cfg_parse_value(&v_enum, "nope", &e, err, 12), -1);
	ck_assert_str_eq(err, "must be one");
	ck_assert_int_eq(err[12], 'Z');
	ck_assert_int_eq(cfg_parse_value(&v_enum, "nope", &e, err, 18), -1);
	ck_assert_str_eq(err, "must be one of: t");
}
END_TEST

START_TEST(help_lists_table)
{
	/* --help shows every variable with its type, default and constraints. */
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	ck_assert_ptr_nonnull(f);
	cfg_print_help(f, "usage: unit [--help]", tab);
	fclose(f);

	ck_assert_msg(strncmp(text, "usage: unit [--help]\n\n", 22) == 0, "%s", text);
	ck_assert_ptr_nonnull(strstr(text, "Configuration (environment variables):"));
	for (size_t i = 0; i < sizeof all_vars / sizeof all_vars[0]; i++)
		ck_assert_msg(strstr(text, all_vars[i]) != NULL, "%s missing", all_vars[i]);
	ck_assert_ptr_nonnull(strstr(text, "(required)"));
	ck_assert_ptr_nonnull(strstr(text, "(unset)"));
	ck_assert_ptr_nonnull(strstr(text, "celltrail"));
	ck_assert_ptr_nonnull(strstr(text, "127.0.0.1:8080"));
	ck_assert_ptr_nonnull(strstr(text, "Workers. Range 1..64."));
	ck_assert_ptr_nonnull(strstr(text, "Log format. One of: text json."));
	ck_assert_ptr_nonnull(strstr(text, "duration"));
	ck_assert_ptr_nonnull(strstr(text, "host:port"));
	free(text);
}
END_TEST

START_TEST(help_hides_secret)
{
	/* --help never prints a secret's default value. */
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	ck_assert_ptr_nonnull(f);
	cfg_print_help(f, "usage", tab);
	fclose(f);
	ck_assert_ptr_null(strstr(text, "s3cr3t-default"));
	ck_assert_ptr_nonnull(strstr(text, "(hidden)"));
	free(text);
}
END_TEST

Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *load = tcase_create("load");
	TCase *parse = tcase_create("parse");
	TCase *help = tcase_create("help");

	/* Checked fixtures run around each test, in the test's own process. */
	tcase_add_checked_fixture(load, setup, clear_env);
	tcase_add_test(load, defaults_applied);
	tcase_add_test(load, env_overrides_defaults);
	tcase_add_test(load, required_missing);
	tcase_add_test(load, empty_counts_as_unset);
	tcase_add_test(load, error_starts_with_name);
	tcase_add_test(load, bad_default_reported);
	suite_add_tcase(s, load);

	tcase_add_test(parse, int_range);
	tcase_add_test(parse, int_garbage);
	tcase_add_test(parse, bool_spellings);
	tcase_add_test(parse, bool_garbage);
	tcase_add_test(parse, duration_units);
	tcase_add_test(parse, duration_bare_number_is_seconds);
	tcase_add_test(parse, duration_overflow);
	tcase_add_test(parse, duration_garbage);
	tcase_add_test(parse, duration_range);
	tcase_add_test(parse, addr_valid);
	tcase_add_test(parse, addr_invalid);
	tcase_add_test(parse, addr_host_too_long);
	tcase_add_test(parse, addr_format);
	tcase_add_test(parse, enum_choices);
	tcase_add_test(parse, enum_error_truncates_safely);
	suite_add_tcase(s, parse);

	tcase_add_test(help, help_lists_table);
	tcase_add_test(help, help_hides_secret);
	suite_add_tcase(s, help);
	return s;
}
