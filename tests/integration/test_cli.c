/* Every executable of the tree behaves as users of GNU tools expect:
 * `--help` prints its usage on stdout and exits 0 (doing nothing else),
 * an unknown option prints the usage on stderr and exits 2.
 *
 * The executables are the repository's files of mode 100755 (from
 * `git ls-files -s`; without git, the files with an executable bit), so a
 * new one cannot be left out, and every tracked file starting with "#!"
 * must be one of them; plus the two services, each command of theirs
 * followed by --help. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "it.h"

#define MAX_EXES 64

static char out[65536];

/* Runs `exe args...` through sh with a deadline: `show` 1 keeps stdout
 * (stderr dropped), 2 keeps stderr (stdout dropped). Writes what was kept
 * into buf; returns the exit status. */
static int run_cli(const char *exe, const char *args, int show, char *buf, size_t len)
{
	char script[2048];
	snprintf(script, sizeof script, "cd \"$IT_ROOT\" && timeout 30 \"$0\" %s %s; echo \"rc=$?\"", args,
	         show == 1 ? "2>/dev/null" : "2>&1 >/dev/null");
	char *argv[] = { "/bin/sh", "-c", script, (char *)exe, NULL };
	int st = it_run("cli", argv, NULL, buf, len);
	ck_assert_msg(st == 0, "sh -c for %s exited %d", exe, st);
	char *rc = strstr(buf, "rc=");
	for (char *next; rc && (next = strstr(rc + 3, "rc=")) != NULL;)
		rc = next;
	ck_assert_msg(rc, "%s %s: no exit status", exe, args);
	int code = atoi(rc + 3);
	*rc = '\0';
	return code;
}

/* The executables of the repository, as paths relative to IT_ROOT. */
static int tracked_executables(char exes[][256])
{
	static char listing[1 << 20];
	int n = 0;
	char *git[] = { "/bin/sh", "-c", "cd \"$IT_ROOT\" && git ls-files -s -z | tr '\\0' '\\n'", NULL };
	if (access("/usr/bin/git", X_OK) == 0 && it_run("git", git, NULL, listing, sizeof listing) == 0 &&
	    strstr(listing, "100644 ")) {
		char notx[4096] = "";
		for (char *save = NULL, *line = strtok_r(listing, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save)) {
			char mode[8], *path = strchr(line, '\t');
			if (!path || sscanf(line, "%7s", mode) != 1)
				continue;
			path++;
			if (!strcmp(mode, "100755")) {
				ck_assert_msg(n < MAX_EXES, "more than %d executables", MAX_EXES);
				snprintf(exes[n++], 256, "%s", path);
				continue;
			}
			/* A script users run must be executable, so that it is tested here. */
			char full[1200], head[3] = "";
			snprintf(full, sizeof full, "%s/%s", it_env("IT_ROOT"), path);
			FILE *f = fopen(full, "r");
			if (f) {
				if (fread(head, 1, 2, f) != 2)
					head[0] = '\0';
				fclose(f);
			}
			size_t l = strlen(notx);
			if (!strcmp(head, "#!") && l + strlen(path) + 3 < sizeof notx)
				snprintf(notx + l, sizeof notx - l, " %s;", path);
		}
		ck_assert_msg(!notx[0], "tracked scripts with a #! line but not mode 100755 (chmod +x, so "
		              "that this test runs their --help):%s", notx);
	} else {
		fprintf(stderr, "cli: no git checkout; the executables are the files with an executable bit\n");
		char *find[] = { "/bin/sh", "-c",
			             "cd \"$IT_ROOT\" && find . \\( -name .git -o -path ./build -o -path ./bin "
			             "-o -path ./var \\) -prune -o -type f -perm -u+x -print | sed 's|^\\./||'",
			             NULL };
		ck_assert_int_eq(it_run("find", find, NULL, listing, sizeof listing), 0);
		for (char *save = NULL, *line = strtok_r(listing, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save)) {
			ck_assert_msg(n < MAX_EXES, "more than %d executables", MAX_EXES);
			snprintf(exes[n++], 256, "%s", line);
		}
	}
	ck_assert_msg(n >= 5, "found only %d executables", n);
	return n;
}

/* `exe args --help` prints usage on stdout and exits 0; `exe args
 * --no-such-option` prints it on stderr and exits 2. Failures go to `bad`. */
static void check_one(const char *exe, const char *label, const char *args, char *bad, size_t len)
{
	char a[256];
	size_t l = strlen(bad);
	snprintf(a, sizeof a, "%s --help", args);
	int rc = run_cli(exe, a, 1, out, sizeof out);
	if (rc != 0 || strspn(out, " \n") == strlen(out)) {
		/* Not tried with an unknown option: what ignores --help may act. */
		snprintf(bad + l, len - l, "\n  %s --help: exit %d, %zu bytes on stdout", label, rc, strlen(out));
		return;
	}
	l = strlen(bad);
	snprintf(a, sizeof a, "%s --no-such-option", args);
	rc = run_cli(exe, a, 2, out, sizeof out);
	if (rc != 2 || strspn(out, " \n") == strlen(out))
		snprintf(bad + l, len - l, "\n  %s --no-such-option: exit %d (want 2), %zu bytes on stderr",
		         label, rc, strlen(out));
}

START_TEST(help_and_usage_errors)
{
	static char exes[MAX_EXES][256];
	static char bad[16384];
	char path[1200], label[300];
	bad[0] = '\0';
	int n = tracked_executables(exes);
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof path, "%.900s/%.255s", it_env("IT_ROOT"), exes[i]);
		check_one(path, exes[i], "", bad, sizeof bad);
	}
	static const char *const cp_cmds[] = { "", "serve", "migrate", "routes", "jwks", "stage-key",
		                                   "rotate-key" };
	static const char *const dp_cmds[] = { "", "serve", "migrate", "routes" };
	it_bin("control-plane", path, sizeof path);
	for (size_t i = 0; i < sizeof cp_cmds / sizeof cp_cmds[0]; i++) {
		snprintf(label, sizeof label, "control-plane %s", cp_cmds[i]);
		check_one(path, label, cp_cmds[i], bad, sizeof bad);
	}
	it_bin("data-plane", path, sizeof path);
	for (size_t i = 0; i < sizeof dp_cmds / sizeof dp_cmds[0]; i++) {
		snprintf(label, sizeof label, "data-plane %s", dp_cmds[i]);
		check_one(path, label, dp_cmds[i], bad, sizeof bad);
	}
	ck_assert_msg(!bad[0], "executables that break the --help convention:%s", bad);
}
END_TEST

Suite *cli_suite(void)
{
	Suite *s = suite_create("cli");
	TCase *tc = tcase_create("help");
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, help_and_usage_errors);
	suite_add_tcase(s, tc);
	return s;
}
