/* Unit tests of data-plane/config_store: the cached document written
 * while it is verified (dp_cache_stage_*) takes the cached file's place
 * only when committed, whole, and leaves nothing behind when aborted or
 * when its write fails; files are written in pieces, so lengths at and
 * around the piece size are checked; what a process ended before its
 * rename left is removed at the next start, and nothing else. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../data-plane/config_store.h"
#include "unit.h"

static char dir[64];

static void setup(void)
{
	snprintf(dir, sizeof dir, "/tmp/celltrail-store-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[600];
	while (d && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
			unlink(path);
		}
	if (d)
		closedir(d);
	rmdir(dir);
}

/* How many names dir holds, "." and ".." aside. */
static int entries(void)
{
	DIR *d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

/* The cached file's bytes (malloc'd) and length; NULL when absent. */
static char *cached(size_t *len)
{
	char *out = NULL;
	char err[256];
	enum dp_cache_read r = dp_cache_read(dir, 64u << 20, &out, len, err, sizeof err);
	ck_assert_int_ne(r, DP_CACHE_ERROR);
	return r == DP_CACHE_FOUND ? out : NULL;
}

/* The cached file holds `want`, and nothing else is in dir. */
static void cached_alone(const char *want)
{
	size_t len;
	char *got = cached(&len);
	ck_assert_ptr_nonnull(got);
	ck_assert_str_eq(got, want);
	ck_assert_int_eq(entries(), 1);
	free(got);
}

/* Printable bytes that differ from piece to piece (the cache reader cuts
 * trailing whitespace, so none is used). */
static char *pattern(size_t len, unsigned seed)
{
	char *p = malloc(len + 1);
	ck_assert_ptr_nonnull(p);
	for (size_t i = 0; i < len; i++)
		p[i] = (char)('!' + (i * 7 + i / DP_CACHE_WRITE_PIECE + seed) % 90);
	p[len] = '\0';
	return p;
}

static void write_text(const char *path)
{
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("x", f);
	ck_assert_int_eq(fclose(f), 0);
}

static const size_t lengths[] = { 1,
	                          DP_CACHE_WRITE_PIECE - 1,
	                          DP_CACHE_WRITE_PIECE,
	                          DP_CACHE_WRITE_PIECE + 1,
	                          3 * DP_CACHE_WRITE_PIECE + 5 };

START_TEST(stage_commit_replaces_whole)
{
	char err[512];
	ck_assert_int_eq(dp_cache_write(dir, "old", 3, err, sizeof err), 0);
	for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
		char *data = pattern(lengths[i], (unsigned)i);
		struct dp_cache_stage s;
		ck_assert_int_eq(dp_cache_stage_begin(&s, dir, data, lengths[i]), 0);
		ck_assert_msg(dp_cache_stage_commit(&s, err, sizeof err) == 0, "%s", err);
		size_t len;
		char *got = cached(&len);
		ck_assert_ptr_nonnull(got);
		ck_assert_uint_eq(len, lengths[i]);
		ck_assert_int_eq(memcmp(got, data, len), 0);
		/* The cached file alone: no temporary file is left. */
		ck_assert_int_eq(entries(), 1);
		free(got);
		free(data);
	}
}
END_TEST

START_TEST(stage_abort_keeps_previous)
{
	char err[512];
	ck_assert_int_eq(dp_cache_write(dir, "previous", 8, err, sizeof err), 0);
	for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
		char *data = pattern(lengths[i], (unsigned)i + 1);
		struct dp_cache_stage s;
		ck_assert_int_eq(dp_cache_stage_begin(&s, dir, data, lengths[i]), 0);
		dp_cache_stage_abort(&s);
		cached_alone("previous");
		free(data);
	}
	/* Aborting twice, or after nothing started, does nothing. */
	struct dp_cache_stage s;
	ck_assert_int_eq(dp_cache_stage_begin(&s, dir, "x", 1), 0);
	dp_cache_stage_abort(&s);
	dp_cache_stage_abort(&s);
	ck_assert_int_eq(dp_cache_stage_commit(&s, err, sizeof err), -1);
	ck_assert_int_eq(entries(), 1);
}
END_TEST

START_TEST(stage_write_failure_reported)
{
	char err[512], missing[128];
	ck_assert_int_eq(dp_cache_write(dir, "previous", 8, err, sizeof err), 0);
	/* A directory that is not there: the write fails on its thread, the
	 * commit says why, and the cached file is what it was. */
	snprintf(missing, sizeof missing, "%s/gone", dir);
	struct dp_cache_stage s;
	ck_assert_int_eq(dp_cache_stage_begin(&s, missing, "new", 3), 0);
	ck_assert_int_eq(dp_cache_stage_commit(&s, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "cannot create a file in"));
	ck_assert_ptr_nonnull(strstr(err, missing));
	ck_assert_int_eq(dp_cache_stage_begin(&s, missing, "new", 3), 0);
	dp_cache_stage_abort(&s);
	cached_alone("previous");
}
END_TEST

START_TEST(stage_rename_failure_reported)
{
	char err[512], path[128], inner[160];
	/* config.jwt a directory that is not empty: the rename fails, the
	 * commit says so, and no temporary file is left. */
	snprintf(path, sizeof path, "%s/config.jwt", dir);
	ck_assert_int_eq(mkdir(path, 0700), 0);
	snprintf(inner, sizeof inner, "%s/x", path);
	write_text(inner);
	struct dp_cache_stage s;
	ck_assert_int_eq(dp_cache_stage_begin(&s, dir, "new", 3), 0);
	ck_assert_int_eq(dp_cache_stage_commit(&s, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "cannot rename"), "%s", err);
	ck_assert_int_eq(entries(), 1);
	ck_assert_int_eq(unlink(inner), 0);
	ck_assert_int_eq(rmdir(path), 0);
}
END_TEST

START_TEST(replace_in_pieces)
{
	char err[512], path[128];
	snprintf(path, sizeof path, "%s/file", dir);
	for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
		char *data = pattern(lengths[i], (unsigned)i + 2);
		ck_assert_int_eq(dp_file_replace(path, data, lengths[i], 0640, err, sizeof err), 0);
		char *out;
		size_t len;
		ck_assert_int_eq(dp_cache_read_file(dir, "file", 64u << 20, &out, &len, err, sizeof err), DP_CACHE_FOUND);
		ck_assert_uint_eq(len, lengths[i]);
		ck_assert_int_eq(memcmp(out, data, len), 0);
		struct stat st;
		ck_assert_int_eq(stat(path, &st), 0);
		ck_assert_int_eq(st.st_mode & 0777, 0640);
		ck_assert_int_eq(entries(), 1);
		free(out);
		free(data);
	}
}
END_TEST

static int exists(const char *name)
{
	char path[600];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	return access(path, F_OK) == 0;
}

START_TEST(prepare_removes_leftovers)
{
	/* What a process ended before its rename leaves, and names alike
	 * that are not that. */
	static const char *const left[] = { ".config.jwt.aB3xY9", ".config.deltas.000000", ".version.zzzzzz" };
	static const char *const kept[] = { "config.jwt", ".config.jwt.aB3xY", ".config.jwt.aB3xY9z",
		                            ".config.jwtXaB3xY9", ".other.aB3xY9", "config.jwt.aB3xY9",
		                            ".config.jwt.rejected", ".keyset.json.Q1w2E3" };
	char path[600];
	for (size_t i = 0; i < sizeof left / sizeof left[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, left[i]);
		write_text(path);
	}
	for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, kept[i]);
		write_text(path);
	}
	char err[512];
	int removed = -1;
	ck_assert_int_eq(dp_cache_prepare(dir, &removed, err, sizeof err), 0);
	ck_assert_int_eq(removed, (int)(sizeof left / sizeof left[0]));
	for (size_t i = 0; i < sizeof left / sizeof left[0]; i++)
		ck_assert_msg(!exists(left[i]), "%s was left", left[i]);
	for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++)
		ck_assert_msg(exists(kept[i]), "%s was removed", kept[i]);
	ck_assert_int_eq(dp_cache_prepare(dir, &removed, err, sizeof err), 0);
	ck_assert_int_eq(removed, 0);
	/* The key set's is its module's to remove, with the same rule. */
	ck_assert_int_eq(dp_file_leftovers_remove(dir, "keyset.json"), 1);
	ck_assert(!exists(".keyset.json.Q1w2E3"));
	ck_assert_int_eq(dp_file_leftovers_remove(dir, "keyset.json"), 0);
}
END_TEST

Suite *config_store_suite(void)
{
	Suite *s = suite_create("config_store");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, stage_commit_replaces_whole);
	tcase_add_test(tc, stage_abort_keeps_previous);
	tcase_add_test(tc, stage_write_failure_reported);
	tcase_add_test(tc, stage_rename_failure_reported);
	tcase_add_test(tc, replace_in_pieces);
	tcase_add_test(tc, prepare_removes_leftovers);
	suite_add_tcase(s, tc);
	return s;
}
