/* Log lines name what they are about: the request being handled (its id,
 * as answered in X-Request-Id, and its tenant and key id once known), or
 * the background task of the thread that wrote them.
 *
 *   request_lines_name_caller   database down: a warning written deep in the
 *                               database layer on the HTTP thread names the
 *                               request, its tenant and key
 *   writer_lines_name_request   a group commit that fails: the writer's lines
 *                               name its task and the request of the group
 *   background_lines_name_task  start-up and the config pull name their task
 *
 * And after the whole run (it_logs_check, from main.c): every line that a
 * service wrote during any suite names a request or a task, so that a new
 * log call cannot go without context. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "it.h"

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* A whole file (NULL when unreadable). Not it_slurp(): this also runs
 * outside of any test, where a check of Check's cannot report. */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, n;
	char tmp[65536];
	if (!f)
		return NULL;
	while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) {
		char *b = realloc(buf, len + n + 1);
		if (!b)
			break;
		buf = b;
		memcpy(buf + len, tmp, n);
		len += n;
		buf[len] = '\0';
	}
	fclose(f);
	return buf;
}

/* The service lines of a log file: one JSON object with "svc" per line;
 * other lines (a sanitizer's, valgrind's, a command's text) are skipped. */
static json_t *service_lines(const char *path)
{
	json_t *lines = json_array();
	char *text = slurp(path);
	for (char *line = text, *nl; line && *line; line = nl + 1) {
		nl = strchr(line, '\n');
		if (!nl)
			break; /* a line being written */
		*nl = '\0';
		json_t *j = line[0] == '{' ? json_loads(line, 0, NULL) : NULL;
		if (json_is_object(j) && json_is_string(json_object_get(j, "svc")))
			json_array_append(lines, j);
		json_decref(j);
	}
	free(text);
	return lines;
}

/* The first line of `lines` whose member `name` is `value` and that is
 * not an access line, or NULL. */
static json_t *find_line(json_t *lines, const char *name, const char *value)
{
	size_t i;
	json_t *j;
	json_array_foreach(lines, i, j)
		if (!strcmp(it_js(j, name), value) && strcmp(it_js(j, "msg"), "request"))
			return j;
	return NULL;
}

/* The access line of request `rid`, or NULL. */
static json_t *access_line(json_t *lines, const char *rid)
{
	size_t i;
	json_t *j;
	json_array_foreach(lines, i, j)
		if (!strcmp(it_js(j, "msg"), "request") && !strcmp(it_js(j, "req_id"), rid))
			return j;
	return NULL;
}

/* The service lines of `path` that name neither a request nor a task:
 * printed (the first `show` of them), and counted. */
static int lines_without_context(const char *path, int show)
{
	json_t *lines = service_lines(path);
	size_t i;
	json_t *j;
	int bad = 0;
	json_array_foreach(lines, i, j) {
		if (*it_js(j, "req_id") || *it_js(j, "task"))
			continue;
		char *text = json_dumps(j, JSON_COMPACT);
		if (bad++ < show)
			fprintf(stderr, "a log line without req_id or task in %s: %s\n", path, text);
		free(text);
	}
	json_decref(lines);
	return bad;
}

/* Stops the stack; fails the test on a line of either service that names
 * neither a request nor a task. */
static void stack_stop_checked(struct it_stack *s)
{
	it_stack_stop(s);
	ck_assert_msg(lines_without_context(s->dp.log, 5) == 0, "lines without context in %s", s->dp.log);
	ck_assert_msg(lines_without_context(s->cp.log, 5) == 0, "lines without context in %s", s->cp.log);
}

/* With the regional database down, a read fails in the database layer on
 * the HTTP thread; its warning names the request (the id answered), the
 * tenant and the key (the ones of the request's access line). */
START_TEST(request_lines_name_caller)
{
	struct it_stack s;
	const char *const dp_env[] = { "DP_LOG_REPEAT_INTERVAL=100ms", "DP_DB_ACQUIRE_TIMEOUT=1s", NULL };
	it_stack_start(&s, "us", NULL, dp_env);
	char url[128], auth[256];
	snprintf(url, sizeof url, "%s/v1/events?limit=1", s.dp_url);
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", s.key);

	it_pg_stop();
	json_t *lines = NULL, *warn = NULL;
	long deadline = now_ms() + 30000;
	/* Paced (the tenant's rate limit), and PostgreSQL is started again
	 * before a failure, for the tests that follow. */
	for (int n = 0; !warn; n++, usleep(50000)) {
		const char *why = NULL;
		struct it_resp r;
		char rid[64], answered[80] = "";
		snprintf(rid, sizeof rid, "it-logctx-%d", n);
		const char *const h[] = { auth, it_fmt("X-Request-Id: %s", rid), NULL };
		it_http(&r, "GET", url, h, NULL, 0);
		it_header(&r, "X-Request-Id", answered, sizeof answered);
		if (r.status != 503 && r.status != 429)
			why = it_fmt("GET /v1/events with the database down: %ld", r.status);
		else if (strcmp(answered, rid))
			why = it_fmt("X-Request-Id %s answered to %s", answered, rid);
		else if (now_ms() >= deadline)
			why = it_fmt("no warning of a request in %s", s.dp.log);
		it_resp_free(&r);
		if (why) {
			it_pg_start();
			ck_abort_msg("%s", why);
		}
		json_decref(lines);
		lines = service_lines(s.dp.log);
		size_t i;
		json_t *j;
		json_array_foreach(lines, i, j)
			if (!strncmp(it_js(j, "req_id"), "it-logctx-", 10) && strcmp(it_js(j, "msg"), "request") &&
			    !strcmp(it_js(j, "level"), "warn")) {
				warn = j;
				break;
			}
	}
	it_pg_start();
	char *text = json_dumps(warn, JSON_COMPACT);
	char rid[80];
	snprintf(rid, sizeof rid, "%s", it_js(warn, "req_id"));
	/* The access line is written once the answer is sent: wait for it. */
	json_t *acc = NULL, *again = NULL;
	for (long until = now_ms() + 30000; !(acc = access_line(again, rid)); usleep(20000)) {
		ck_assert_msg(now_ms() < until, "no access line of %s in %s", rid, s.dp.log);
		json_decref(again);
		again = service_lines(s.dp.log);
	}
	ck_assert_str_eq(it_js(acc, "tenant"), s.tenant);
	ck_assert_msg(*it_js(acc, "key_id"), "the access line of %s names no key", rid);
	ck_assert_msg(!strcmp(it_js(warn, "tenant"), s.tenant), "the warning names another tenant: %s", text);
	ck_assert_msg(!strcmp(it_js(warn, "key_id"), it_js(acc, "key_id")), "the warning names another key: %s",
	              text);
	ck_assert_msg(!*it_js(warn, "task"), "a request's line names a task: %s", text);
	ck_assert_msg(!strstr(text, strrchr(s.key, '_') ? strrchr(s.key, '_') + 1 : s.key),
	              "a line holds the key's secret: %s", text);
	free(text);
	json_decref(lines);
	json_decref(again);
	stack_stop_checked(&s);
}
END_TEST

/* A group commit that the database refuses: the writer's lines (the
 * database's error, the group's failure) name the writer's task and the
 * one request of the group, with its tenant and key; the request is
 * answered 500 under that id. */
START_TEST(writer_lines_name_request)
{
	struct it_stack s;
	it_stack_start(&s, "us", NULL, NULL);
	free(it_sql(s.dp_db, "CREATE FUNCTION it_refuse() RETURNS trigger LANGUAGE plpgsql AS "
	                     "$$BEGIN RAISE EXCEPTION 'refused by the test'; END$$"));
	free(it_sql(s.dp_db, "CREATE TRIGGER it_refuse BEFORE INSERT ON events FOR EACH ROW "
	                     "WHEN (NEW.action = 'it.refused') EXECUTE FUNCTION it_refuse()"));
	char url[128], auth[256], answered[80];
	snprintf(url, sizeof url, "%s/v1/events", s.dp_url);
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", s.key);
	const char *const h[] = { auth, "Content-Type: application/json", "X-Request-Id: it-logctx-writer", NULL };
	const char *body = "{\"action\":\"it.refused\",\"actor\":{\"id\":\"u\",\"type\":\"user\"}}";
	struct it_resp r;
	it_http(&r, "POST", url, h, body, strlen(body));
	ck_assert_msg(r.status == 500, "POST /v1/events refused by the database: %ld %.300s", r.status, r.body);
	ck_assert_int_eq(it_header(&r, "X-Request-Id", answered, sizeof answered), 0);
	ck_assert_str_eq(answered, "it-logctx-writer");
	it_resp_free(&r);

	/* The access line is written once the answer is sent: wait for it. */
	json_t *lines = NULL, *acc = NULL;
	for (long deadline = now_ms() + 30000; !acc; usleep(20000)) {
		ck_assert_msg(now_ms() < deadline, "no access line of it-logctx-writer in %s", s.dp.log);
		json_decref(lines);
		lines = service_lines(s.dp.log);
		acc = access_line(lines, "it-logctx-writer");
	}
	int db_line = 0, group_line = 0;
	size_t i;
	json_t *j;
	json_array_foreach(lines, i, j) {
		const char *msg = it_js(j, "msg");
		int is_db = !strncmp(msg, "database: ", 10) && strstr(msg, "refused by the test");
		int is_group = !strncmp(msg, "ingest: a group of 1 request", 28);
		if (!is_db && !is_group)
			continue;
		char *text = json_dumps(j, JSON_COMPACT);
		ck_assert_msg(!strcmp(it_js(j, "task"), "ingest_writer"), "not the writer's task: %s", text);
		ck_assert_msg(!strcmp(it_js(j, "req_id"), "it-logctx-writer"), "not the request's id: %s", text);
		ck_assert_msg(!strcmp(it_js(j, "tenant"), s.tenant), "not the request's tenant: %s", text);
		ck_assert_msg(*it_js(acc, "key_id") && !strcmp(it_js(j, "key_id"), it_js(acc, "key_id")),
		              "not the request's key: %s", text);
		if (is_group) {
			json_t *ids = json_object_get(j, "req_ids");
			ck_assert_msg(json_array_size(ids) == 1 &&
			                  !strcmp(json_string_value(json_array_get(ids, 0)), "it-logctx-writer"),
			              "the group's requests are not named: %s", text);
		}
		free(text);
		db_line |= is_db;
		group_line |= is_group;
	}
	ck_assert_msg(db_line && group_line, "the database's or the group's line is missing in %s", s.dp.log);
	json_decref(lines);
	stack_stop_checked(&s);
}
END_TEST

/* Lines written outside requests name their thread's task: start-up and
 * stop on the main thread, the configuration applied by the pull. */
START_TEST(background_lines_name_task)
{
	struct it_stack s;
	it_stack_start(&s, "us", NULL, NULL);
	stack_stop_checked(&s);
	json_t *dp = service_lines(s.dp.log), *cp = service_lines(s.cp.log);
	ck_assert_msg(find_line(dp, "task", "main"), "no line of the main thread in %s", s.dp.log);
	ck_assert_msg(find_line(dp, "task", "config_pull"), "no line of the config pull in %s", s.dp.log);
	ck_assert_msg(find_line(cp, "task", "main"), "no line of the main thread in %s", s.cp.log);
	json_decref(dp);
	json_decref(cp);
}
END_TEST

int it_logs_check(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int bad = 0;
	if (!d)
		return 0;
	while ((e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);
		if (n < 5 || strcmp(e->d_name + n - 4, ".log"))
			continue;
		char path[1024];
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		bad += lines_without_context(path, bad < 20 ? 20 - bad : 0);
	}
	closedir(d);
	if (bad)
		fprintf(stderr, "%d log line(s) without req_id or task\n", bad);
	return bad;
}

Suite *log_context_suite(void)
{
	Suite *s = suite_create("log-context");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, request_lines_name_caller);
	tcase_add_test(tc, writer_lines_name_request);
	tcase_add_test(tc, background_lines_name_task);
	suite_add_tcase(s, tc);
	return s;
}
