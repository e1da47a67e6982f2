/* The two services as an operator meets them: --help, configuration
 * errors, migrations, the region identity check, health and shutdown. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "it.h"
#include "jwk.h"

static char out[65536];

static int run_bin(const char *bin, const char *arg, const char *const env[])
{
	char path[1024];
	it_bin(bin, path, sizeof path);
	char *argv[] = { path, (char *)arg, NULL };
	return it_run(bin, argv, env, out, sizeof out);
}

/* --help prints the configuration table, so an operator can see every
 * variable, its type, default and meaning. */
START_TEST(help_prints_table)
{
	ck_assert_int_eq(run_bin("control-plane", "--help", NULL), 0);
	static const char *const cp[] = { "CP_LISTEN", "CP_DATABASE_URL", "CP_DB_POOL_SIZE",
		                              "127.0.0.1:8080", "CP_SIGNING_KEYS_DIR", "migrate", "rotate-key" };
	for (size_t i = 0; i < sizeof cp / sizeof cp[0]; i++)
		ck_assert_msg(strstr(out, cp[i]), "control-plane --help lacks %s:\n%.400s", cp[i], out);
	ck_assert_int_eq(run_bin("data-plane", "--help", NULL), 0);
	static const char *const dp[] = { "DP_REGION", "DP_LISTEN", "DP_DATABASE_URL",
		                              "DP_CONTROL_PLANE_URL" };
	for (size_t i = 0; i < sizeof dp / sizeof dp[0]; i++)
		ck_assert_msg(strstr(out, dp[i]), "data-plane --help lacks %s:\n%.400s", dp[i], out);
}
END_TEST

/* A malformed or missing value stops the service with status 2 and a
 * message naming the variable, instead of running misconfigured. */
START_TEST(bad_config_exits_2)
{
	static const struct { const char *bin; const char *env[5]; const char *named; } cases[] = {
		{ "control-plane", { "CP_DATABASE_URL=postgresql://x@127.0.0.1:1/x", "CP_LISTEN=nonsense" }, "CP_LISTEN" },
		{ "control-plane", { "CP_DATABASE_URL=postgresql://x@127.0.0.1:1/x", "CP_LISTEN=127.0.0.1:70000" }, "CP_LISTEN" },
		{ "control-plane", { "CP_DATABASE_URL=postgresql://x@127.0.0.1:1/x", "CP_DB_POOL_SIZE=0" }, "CP_DB_POOL_SIZE" },
		{ "control-plane", { "CP_DATABASE_URL=postgresql://x@127.0.0.1:1/x", "CP_DRAIN_TIMEOUT=soon" }, "CP_DRAIN_TIMEOUT" },
		{ "control-plane", { "CP_DATABASE_URL=postgresql://x@127.0.0.1:1/x", "CP_LOG_LEVEL=loud" }, "CP_LOG_LEVEL" },
		{ "control-plane", { "CP_DATABASE_URL=postgresql://x@127.0.0.1:1/x", "CP_ACCESS_LOG=maybe" }, "CP_ACCESS_LOG" },
		{ "control-plane", { NULL }, "CP_DATABASE_URL" },
		{ "control-plane", { "CP_DATABASE_URL=postgresql://x@127.0.0.1:1/x" }, "CP_SECRETS_KEY" },
		{ "control-plane", { "CP_DATABASE_URL=postgresql://x@127.0.0.1:1/x", "CP_SECRETS_KEY=abc" }, "CP_SECRETS_KEY" },
		{ "control-plane", { "CP_DATABASE_URL=postgresql://x@127.0.0.1:1/x", "CP_SECRETS_KEY=" IT_SECRETS_KEY, "CP_ADMIN_TOKEN=short" }, "CP_ADMIN_TOKEN" },
		{ "data-plane", { "DP_DATABASE_URL=x", "DP_CONTROL_PLANE_URL=http://x" }, "DP_REGION" },
		{ "data-plane", { "DP_REGION=Bad_Region", "DP_DATABASE_URL=x", "DP_CONTROL_PLANE_URL=http://x" }, "DP_REGION" },
		{ "data-plane", { "DP_REGION=us", "DP_DATABASE_URL=x", "DP_CONTROL_PLANE_URL=ftp://x" }, "DP_CONTROL_PLANE_URL" },
		{ "data-plane", { "DP_REGION=us", "DP_DATABASE_URL=x", "DP_CONTROL_PLANE_URL=http://x", "DP_HTTP_THREADS=-1" }, "DP_HTTP_THREADS" },
		/* Both ends of the key-set interval (1 s .. 1 h). */
		{ "data-plane", { "DP_REGION=us", "DP_DATABASE_URL=x", "DP_CONTROL_PLANE_URL=http://x", "DP_KEYSET_INTERVAL=999ms" }, "DP_KEYSET_INTERVAL" },
		{ "data-plane", { "DP_REGION=us", "DP_DATABASE_URL=x", "DP_CONTROL_PLANE_URL=http://x", "DP_KEYSET_INTERVAL=3601s" }, "DP_KEYSET_INTERVAL" },
		{ "control-plane", { "CP_DATABASE_URL=postgresql://x@127.0.0.1:1/x", "CP_SECRETS_KEY=" IT_SECRETS_KEY, "CP_TRUSTED_PROXIES=10.0.0.0/33" }, "CP_TRUSTED_PROXIES" },
		{ "control-plane", { "CP_DATABASE_URL=postgresql://x@127.0.0.1:1/x", "CP_SECRETS_KEY=" IT_SECRETS_KEY, "CP_TRUSTED_PROXIES=proxy.internal" }, "CP_TRUSTED_PROXIES" },
		/* The previous KEK: only beside a KEK, and not the same one. */
		{ "control-plane", { "CP_DATABASE_URL=postgresql://x@127.0.0.1:1/x", "CP_SECRETS_KEY=" IT_SECRETS_KEY, "CP_SIGNING_KEK_PREVIOUS=" IT_SECRETS_KEY }, "CP_SIGNING_KEK_PREVIOUS" },
		{ "control-plane", { "CP_DATABASE_URL=postgresql://x@127.0.0.1:1/x", "CP_SECRETS_KEY=" IT_SECRETS_KEY, "CP_SIGNING_KEK=" IT_SECRETS_KEY, "CP_SIGNING_KEK_PREVIOUS=" IT_SECRETS_KEY }, "CP_SIGNING_KEK_PREVIOUS" },
		{ "control-plane", { "CP_DATABASE_URL=postgresql://x@127.0.0.1:1/x", "CP_SECRETS_KEY=" IT_SECRETS_KEY, "CP_SIGNING_KEK=" IT_SECRETS_KEY, "CP_SIGNING_KEK_PREVIOUS=abc" }, "CP_SIGNING_KEK_PREVIOUS" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int st = run_bin(cases[i].bin, "serve", cases[i].env);
		ck_assert_msg(st == 2, "case %zu: exit %d, want 2: %.400s", i, st, out);
		ck_assert_msg(strstr(out, cases[i].named), "case %zu: message does not name %s: %.400s", i,
		              cases[i].named, out);
	}
	ck_assert_int_eq(run_bin("control-plane", "frobnicate", NULL), 2);
}
END_TEST

static int count_sql_files(const char *dir)
{
	int n = 0;
	DIR *d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		if (strlen(e->d_name) > 4 && !strcmp(e->d_name + strlen(e->d_name) - 4, ".sql"))
			n++;
	closedir(d);
	return n;
}

/* Migrations apply once; a second run changes nothing. */
START_TEST(migrate_idempotent)
{
	char url[512], env0[600];
	it_create_db("it_cp_migrate", url, sizeof url);
	snprintf(env0, sizeof env0, "CP_DATABASE_URL=%s", url);
	const char *const env[] = { env0, NULL };

	char dir[1024], want[64];
	snprintf(dir, sizeof dir, "%s/migrations/control-plane", it_env("IT_ROOT"));
	snprintf(want, sizeof want, "%d migration(s) applied", count_sql_files(dir));
	ck_assert_int_eq(run_bin("control-plane", "migrate", env), 0);
	ck_assert_msg(strstr(out, want), "want '%s': %.400s", want, out);
	char *before = it_sql(url, "SELECT string_agg(version || ':' || checksum || ':' || applied_at, ',') FROM schema_migrations");
	ck_assert_int_eq(run_bin("control-plane", "migrate", env), 0);
	ck_assert_msg(strstr(out, "0 migration(s) applied"), "%.400s", out);
	char *after = it_sql(url, "SELECT string_agg(version || ':' || checksum || ':' || applied_at, ',') FROM schema_migrations");
	ck_assert_str_eq(before, after);
	free(before);
	free(after);
	char *t = it_sql(url, "SELECT count(*) FROM regions");
	ck_assert_str_eq(t, "0");
	free(t);
}
END_TEST

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

/* An applied migration that was edited afterwards is refused with a clear
 * message, and nothing after it runs. */
START_TEST(migrate_refuses_edited)
{
	char url[512], env0[600], env1[600], dir[512], f1[600], f2[600];
	it_create_db("it_cp_edited", url, sizeof url);
	snprintf(dir, sizeof dir, "%s/migrations-edited-%d", it_env("IT_LOG_DIR"), (int)getpid());
	mkdir(dir, 0755);
	snprintf(f1, sizeof f1, "%s/0001_first.sql", dir);
	write_file(f1, "CREATE TABLE t1 (id int);\n");
	snprintf(env0, sizeof env0, "CP_DATABASE_URL=%s", url);
	snprintf(env1, sizeof env1, "CP_MIGRATIONS_DIR=%s", dir);
	const char *const env[] = { env0, env1, NULL };
	ck_assert_int_eq(run_bin("control-plane", "migrate", env), 0);

	write_file(f1, "CREATE TABLE t1 (id bigint);\n");
	snprintf(f2, sizeof f2, "%s/0002_second.sql", dir);
	write_file(f2, "CREATE TABLE t2 (id int);\n");
	int st = run_bin("control-plane", "migrate", env);
	ck_assert_int_eq(st, 1);
	ck_assert_msg(strstr(out, "0001_first.sql") && strstr(out, "must not be edited"), "%.400s", out);
	char *t2 = it_sql(url, "SELECT to_regclass('t2') IS NULL");
	ck_assert_str_eq(t2, "t");
	free(t2);
}
END_TEST

/* A migration that fails leaves nothing behind: its statements and its
 * schema_migrations row are rolled back together. */
START_TEST(migrate_failure_is_atomic)
{
	char url[512], env0[600], env1[600], dir[512], f[600];
	it_create_db("it_cp_atomic", url, sizeof url);
	snprintf(dir, sizeof dir, "%s/migrations-atomic-%d", it_env("IT_LOG_DIR"), (int)getpid());
	mkdir(dir, 0755);
	snprintf(f, sizeof f, "%s/0001_broken.sql", dir);
	write_file(f, "CREATE TABLE half (id int);\nSELECT no_such_function();\n");
	snprintf(env0, sizeof env0, "CP_DATABASE_URL=%s", url);
	snprintf(env1, sizeof env1, "CP_MIGRATIONS_DIR=%s", dir);
	const char *const env[] = { env0, env1, NULL };
	ck_assert_int_eq(run_bin("control-plane", "migrate", env), 1);
	ck_assert_msg(strstr(out, "0001_broken.sql"), "%.400s", out);
	char *v = it_sql(url, "SELECT (to_regclass('half') IS NULL) || ':' || (SELECT count(*) FROM schema_migrations)");
	ck_assert_str_eq(v, "true:0");
	free(v);
}
END_TEST

/* Several migrators started at once (a rolling deploy) are serialized:
 * each migration is applied exactly once and none of them fails. */
START_TEST(migrate_concurrent)
{
	enum { N = 4 };
	char url[512], env0[600], env1[600], dir[512], f[600];
	struct it_proc p[N];
	char bin[1024];

	it_create_db("it_cp_concurrent", url, sizeof url);
	snprintf(dir, sizeof dir, "%s/migrations-concurrent-%d", it_env("IT_LOG_DIR"), (int)getpid());
	mkdir(dir, 0755);
	snprintf(f, sizeof f, "%s/0001_slow.sql", dir);
	write_file(f, "CREATE TABLE slow (id int);\nSELECT pg_sleep(0.3);\n");
	snprintf(f, sizeof f, "%s/0002_counter.sql", dir);
	write_file(f, "CREATE TABLE counter (n int);\nINSERT INTO counter VALUES (1);\n");
	snprintf(env0, sizeof env0, "CP_DATABASE_URL=%s", url);
	snprintf(env1, sizeof env1, "CP_MIGRATIONS_DIR=%s", dir);
	const char *const env[] = { env0, env1, NULL };
	it_bin("control-plane", bin, sizeof bin);
	char *argv[] = { bin, "migrate", NULL };
	for (int i = 0; i < N; i++)
		it_spawn(&p[i], "migrate", argv, env);
	int total = 0;
	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(it_wait(&p[i], 30000), 0);
		char *log = it_slurp(p[i].log);
		const char *m = strstr(log, "migration(s) applied");
		ck_assert_ptr_nonnull(m);
		while (m > log && m[-1] != '\n')
			m--;
		total += atoi(m);
		free(log);
	}
	ck_assert_int_eq(total, 2);
	char *v = it_sql(url, "SELECT (SELECT count(*) FROM counter) || ':' || (SELECT count(*) FROM schema_migrations)");
	ck_assert_str_eq(v, "1:2");
	free(v);
}
END_TEST

static void start_cp(struct it_proc *p, const char *url, int *port)
{
	char bin[1024];
	static char env0[600];
	snprintf(env0, sizeof env0, "CP_DATABASE_URL=%s", url);
	static char env1[600];
	snprintf(env1, sizeof env1, "CP_SIGNING_KEYS_DIR=%s/keys-%d", it_env("IT_LOG_DIR"), (int)getpid());
	const char *const env[] = { env0, env1, "CP_LISTEN=127.0.0.1:0", "CP_DB_ACQUIRE_TIMEOUT=1s",
		                        "CP_SECRETS_KEY=" IT_SECRETS_KEY, NULL };
	it_bin("control-plane", bin, sizeof bin);
	char *argv[] = { bin, NULL };
	it_spawn(p, "control-plane", argv, env);
	*port = it_wait_port(p, 10000);
}

/* The control plane serves /healthz and /readyz, answers 503 while its
 * database is down, recovers by itself when it returns, and exits 0 on
 * SIGTERM. */
START_TEST(cp_health_and_db_restart)
{
	char url[512], u[128];
	struct it_proc p;
	struct it_resp r;
	int port;

	it_create_db("it_cp_serve", url, sizeof url);
	start_cp(&p, url, &port);
	snprintf(u, sizeof u, "http://127.0.0.1:%d/healthz", port);
	it_http(&r, "GET", u, NULL, NULL, 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.body, "{\"status\":\"ok\"}");
	it_resp_free(&r);
	snprintf(u, sizeof u, "http://127.0.0.1:%d/readyz", port);
	it_http(&r, "GET", u, NULL, NULL, 0);
	ck_assert_int_eq(r.status, 200);
	it_resp_free(&r);

	it_pg_stop();
	int64_t t0 = it_now_ms();
	it_http(&r, "GET", u, NULL, NULL, 0);
	/* The service's own log says where it was when the answer is wrong. */
	if (r.status != 503) {
		char *log = it_slurp(p.log);
		size_t n = log ? strlen(log) : 0;
		ck_assert_msg(0, "/readyz with the database stopped: %ld after %lld ms; the service's log ends:\n%s",
		              r.status, (long long)(it_now_ms() - t0), log ? log + (n > 3000 ? n - 3000 : 0) : "(none)");
	}
	ck_assert_ptr_nonnull(strstr(r.body, "\"code\":\"unavailable\""));
	it_resp_free(&r);
	/* Liveness does not depend on the database. */
	snprintf(u, sizeof u, "http://127.0.0.1:%d/healthz", port);
	it_http(&r, "GET", u, NULL, NULL, 0);
	ck_assert_int_eq(r.status, 200);
	it_resp_free(&r);
	it_pg_start();

	snprintf(u, sizeof u, "http://127.0.0.1:%d/readyz", port);
	it_http(&r, "GET", u, NULL, NULL, 0);
	ck_assert_int_eq(r.status, 200); /* the first request after the restart succeeds */
	it_resp_free(&r);
	snprintf(u, sizeof u, "http://127.0.0.1:%d/metrics", port);
	it_http(&r, "GET", u, NULL, NULL, 0);
	ck_assert_ptr_nonnull(strstr(r.body, "db_pool_connections_max{service=\"control-plane\"} 8"));
	it_resp_free(&r);
	ck_assert_int_eq(it_stop(&p), 0);
}
END_TEST

/* A data plane refuses a database that belongs to another region: a wrong
 * connection string must never put a tenant's data in the wrong region. */
START_TEST(dp_region_identity)
{
	char url[512], e_db[600], bin[1024], trust[512], e_trust[600], e_cache[600];
	it_create_db("it_region_us", url, sizeof url);
	snprintf(e_db, sizeof e_db, "DP_DATABASE_URL=%s", url);
	/* Serving also needs a region credential, a trust bundle and a cache directory. */
	struct jwk k;
	ck_assert_int_eq(jwk_generate(&k), 0);
	json_t *set = json_pack("{s[o]}", "keys", jwk_public_json(&k));
	snprintf(trust, sizeof trust, "%s/trust-%d.json", it_env("IT_LOG_DIR"), (int)getpid());
	ck_assert_int_eq(json_dump_file(set, trust, 0), 0);
	json_decref(set);
	jwk_clear(&k);
	snprintf(e_trust, sizeof e_trust, "DP_TRUST_BUNDLE=%s", trust);
	snprintf(e_cache, sizeof e_cache, "DP_CACHE_DIR=%s/dp-cache-%d", it_env("IT_LOG_DIR"), (int)getpid());
	const char *const us[] = { e_db, "DP_REGION=us", "DP_CONTROL_PLANE_URL=http://127.0.0.1:1",
		                       "DP_LISTEN=127.0.0.1:0", "DP_REGION_TOKEN=it-token", e_trust, e_cache, NULL };
	const char *const eu[] = { e_db, "DP_REGION=eu", "DP_CONTROL_PLANE_URL=http://127.0.0.1:1",
		                       "DP_LISTEN=127.0.0.1:0", "DP_REGION_TOKEN=it-token", e_trust, e_cache, NULL };

	/* Not migrated yet: refuses to serve. */
	ck_assert_int_eq(run_bin("data-plane", "serve", us), 1);
	ck_assert_msg(strstr(out, "migrate"), "%.400s", out);

	ck_assert_int_eq(run_bin("data-plane", "migrate", us), 0);
	ck_assert_msg(strstr(out, "belongs to region us"), "%.400s", out);
	ck_assert_int_eq(run_bin("data-plane", "migrate", us), 0); /* again: a no-op */

	ck_assert_int_eq(run_bin("data-plane", "migrate", eu), 1);
	ck_assert_msg(strstr(out, "belongs to region 'us'"), "%.400s", out);
	ck_assert_int_eq(run_bin("data-plane", "serve", eu), 2);
	ck_assert_msg(strstr(out, "belongs to region 'us'"), "%.400s", out);

	/* Its own region serves, and stops cleanly. */
	struct it_proc p;
	struct it_resp r;
	char u[128];
	const char *const us_serve[] = { e_db, "DP_REGION=us", "DP_CONTROL_PLANE_URL=http://127.0.0.1:1",
		                             "DP_LISTEN=127.0.0.1:0", "DP_REGION_TOKEN=it-token", e_trust,
		                             e_cache, NULL };
	it_bin("data-plane", bin, sizeof bin);
	char *argv[] = { bin, NULL };
	it_spawn(&p, "data-plane", argv, us_serve);
	snprintf(u, sizeof u, "http://127.0.0.1:%d/healthz", it_wait_port(&p, 10000));
	it_http(&r, "GET", u, NULL, NULL, 0);
	ck_assert_int_eq(r.status, 200);
	it_resp_free(&r);
	ck_assert_int_eq(it_stop(&p), 0);
}
END_TEST

/* The README's configuration tables say what --help says: every variable
 * with its type and default, and no variable that does not exist. */
START_TEST(readme_matches_help)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/README.md", it_env("IT_ROOT"));
	char *readme = it_slurp(path);
	ck_assert_ptr_nonnull(readme);
	static const char *const bins[] = { "control-plane", "data-plane", "cell-router", "mover" };
	char names[8192] = "";
	for (int b = 0; b < 4; b++) {
		ck_assert_int_eq(run_bin(bins[b], "--help", NULL), 0);
		for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
			char name[64], type[32], def[64], row[200];
			if (strncmp(line, "  CP_", 5) && strncmp(line, "  DP_", 5) && strncmp(line, "  ROUTER_", 9) &&
			    strncmp(line, "  MOVER_", 8))
				continue;
			ck_assert_int_eq(sscanf(line, "%63s %31s %63s", name, type, def), 3);
			snprintf(row, sizeof row, "\n| %s | %s | %s |", name, type, def);
			ck_assert_msg(strstr(readme, row), "README.md lacks the row for %s (want '%s')", name, row + 1);
			strcat(names, name);
			strcat(names, " ");
		}
	}
	for (const char *r = readme; (r = strstr(r, "\n| ")) != NULL; r++) {
		char name[64];
		if (strncmp(r + 3, "CP_", 3) && strncmp(r + 3, "DP_", 3) && strncmp(r + 3, "ROUTER_", 7) &&
		    strncmp(r + 3, "MOVER_", 6))
			continue;
		ck_assert_int_eq(sscanf(r + 3, "%63s", name), 1);
		char key[70];
		snprintf(key, sizeof key, "%s ", name);
		ck_assert_msg(strstr(names, key), "README.md documents %s, which --help does not know", name);
	}
	free(readme);
}
END_TEST

Suite *services_suite(void)
{
	Suite *s = suite_create("services");
	TCase *tc = tcase_create("services");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, help_prints_table);
	tcase_add_test(tc, bad_config_exits_2);
	tcase_add_test(tc, readme_matches_help);
	tcase_add_test(tc, migrate_idempotent);
	tcase_add_test(tc, migrate_refuses_edited);
	tcase_add_test(tc, migrate_failure_is_atomic);
	tcase_add_test(tc, migrate_concurrent);
	tcase_add_test(tc, cp_health_and_db_restart);
	tcase_add_test(tc, dp_region_identity);
	suite_add_tcase(s, tc);
	return s;
}
