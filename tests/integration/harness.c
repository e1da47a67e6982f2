/* Integration test harness: processes, HTTP and SQL helpers. */
#include "it.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

const char *it_env(const char *name)
{
	const char *v = getenv(name);
	ck_assert_msg(v && *v, "%s is not set: run the tests through tests/run.sh", name);
	return v;
}

void it_bin(const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", it_env("IT_BIN"), name);
}

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

void it_spawn(struct it_proc *p, const char *name, char *const argv[], const char *const env[])
{
	static int seq;
	snprintf(p->log, sizeof p->log, "%s/%s-%d-%d.log", it_env("IT_LOG_DIR"), name, (int)getpid(),
	         seq++);
	pid_t parent = getpid();
	p->pid = fork();
	ck_assert_int_ge(p->pid, 0);
	if (p->pid == 0) {
		/* If the test process dies (a failed assertion), take the service along. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		int fd = open(p->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0)
			_exit(127);
		dup2(fd, 1);
		dup2(fd, 2);
		close(fd);
		/* Hermetic: nothing of the caller's CP_ or DP_ configuration leaks in. */
		for (int again = 1; again;) {
			again = 0;
			for (char **e = environ; *e; e++)
				if (!strncmp(*e, "CP_", 3) || !strncmp(*e, "DP_", 3)) {
					char n[256];
					snprintf(n, sizeof n, "%.*s", (int)strcspn(*e, "="), *e);
					unsetenv(n);
					again = 1;
					break;
				}
		}
		for (int i = 0; env && env[i]; i++)
			putenv((char *)env[i]);
		/* Unblock what the test runner may have blocked. */
		sigset_t all;
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		execv(argv[0], argv);
		_exit(127);
	}
}

int it_wait(struct it_proc *p, int timeout_ms)
{
	long deadline = now_ms() + timeout_ms;
	int st;
	for (;;) {
		pid_t r = waitpid(p->pid, &st, WNOHANG);
		if (r == p->pid) {
			p->pid = 0;
			if (WIFEXITED(st))
				return WEXITSTATUS(st);
			return 128 + WTERMSIG(st);
		}
		if (now_ms() > deadline)
			return -1;
		usleep(5000);
	}
}

int it_stop(struct it_proc *p)
{
	if (p->pid <= 0)
		return -1;
	kill(p->pid, SIGTERM);
	int st = it_wait(p, 15000);
	if (st == -1) {
		kill(p->pid, SIGKILL);
		it_wait(p, 5000);
	}
	return st;
}

char *it_slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = NULL;
	size_t len = 0, cap = 0, n;
	char tmp[4096];
	while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) {
		if (len + n + 1 > cap) {
			cap = (len + n + 1) * 2;
			buf = realloc(buf, cap);
			ck_assert_ptr_nonnull(buf);
		}
		memcpy(buf + len, tmp, n);
		len += n;
	}
	fclose(f);
	if (!buf)
		buf = calloc(1, 1);
	else
		buf[len] = '\0';
	return buf;
}

int it_wait_port(struct it_proc *p, int timeout_ms)
{
	long deadline = now_ms() + timeout_ms;
	while (now_ms() < deadline) {
		char *log = it_slurp(p->log);
		const char *at;
		int port = 0;
		if (log && (at = strstr(log, "PORT ")) != NULL)
			port = atoi(at + 5);
		else if (log && (at = strstr(log, "\"port\":")) != NULL)
			port = atoi(at + 7);
		free(log);
		if (port > 0)
			return port;
		int st;
		if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
			p->pid = 0;
			char *out = it_slurp(p->log);
			ck_abort_msg("process exited before listening: %.600s", out ? out : "");
		}
		usleep(10000);
	}
	ck_abort_msg("no port announced within %d ms (log %s)", timeout_ms, p->log);
	return -1;
}

int it_run(const char *name, char *const argv[], const char *const env[], char *out, size_t outlen)
{
	struct it_proc p;
	it_spawn(&p, name, argv, env);
	int st = it_wait(&p, 60000);
	ck_assert_msg(st >= 0, "%s did not finish within 60 s", argv[0]);
	char *log = it_slurp(p.log);
	snprintf(out, outlen, "%s", log ? log : "");
	free(log);
	return st;
}

/* --- HTTP --- */

static size_t on_body(char *data, size_t size, size_t n, void *userp)
{
	struct it_resp *r = userp;
	size_t len = size * n;
	char *b = realloc(r->body, r->len + len + 1);
	if (!b)
		return 0;
	memcpy(b + r->len, data, len);
	r->body = b;
	r->len += len;
	r->body[r->len] = '\0';
	return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *userp)
{
	struct it_resp *r = userp;
	size_t len = size * n, have = strlen(r->headers);
	if (have + len < sizeof r->headers) {
		memcpy(r->headers + have, data, len);
		r->headers[have + len] = '\0';
	}
	return len;
}

struct upload {
	const char *data;
	size_t len, off, chunk;
};

static size_t on_read(char *buf, size_t size, size_t n, void *userp)
{
	struct upload *u = userp;
	size_t want = size * n;
	if (want > u->chunk)
		want = u->chunk;
	if (want > u->len - u->off)
		want = u->len - u->off;
	memcpy(buf, u->data + u->off, want);
	u->off += want;
	return want;
}

static void perform(struct it_resp *r, CURL *c, const char *const headers[], struct curl_slist *extra)
{
	struct curl_slist *list = extra;
	for (int i = 0; headers && headers[i]; i++)
		list = curl_slist_append(list, headers[i]);
	memset(r, 0, sizeof *r);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	else
		r->status = 0;
	if (!r->body)
		r->body = calloc(1, 1);
	curl_slist_free_all(list);
	curl_easy_cleanup(c);
}

void it_http(struct it_resp *r, const char *method, const char *url, const char *const headers[],
             const char *body, size_t body_len)
{
	CURL *c = curl_easy_init();
	ck_assert_ptr_nonnull(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	if (!strcmp(method, "HEAD"))
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
	}
	/* curl would otherwise wait for "100 Continue" on larger bodies. */
	perform(r, c, headers, curl_slist_append(NULL, "Expect:"));
}

void it_http_chunked(struct it_resp *r, const char *url, const char *const headers[],
                     const char *body, size_t body_len, size_t chunk)
{
	struct upload u = { body, body_len, 0, chunk };
	CURL *c = curl_easy_init();
	ck_assert_ptr_nonnull(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
	curl_easy_setopt(c, CURLOPT_READDATA, &u);
	struct curl_slist *extra = curl_slist_append(NULL, "Transfer-Encoding: chunked");
	extra = curl_slist_append(extra, "Expect:");
	perform(r, c, headers, extra);
}

int it_header(const struct it_resp *r, const char *name, char *out, size_t len)
{
	size_t n = strlen(name);
	for (const char *line = r->headers; *line;) {
		const char *end = strstr(line, "\r\n");
		size_t l = end ? (size_t)(end - line) : strlen(line);
		if (l > n && !strncasecmp(line, name, n) && line[n] == ':') {
			const char *v = line + n + 1;
			while (*v == ' ')
				v++;
			snprintf(out, len, "%.*s", (int)(l - (size_t)(v - line)), v);
			return 0;
		}
		line += l + (end ? 2 : 0);
	}
	return -1;
}

void it_resp_free(struct it_resp *r)
{
	free(r->body);
	r->body = NULL;
}

/* --- PostgreSQL --- */

static void url_with_db(const char *base, const char *db, char *out, size_t len)
{
	/* IT_PG_URL ends in "/postgres". */
	const char *slash = strrchr(base, '/');
	snprintf(out, len, "%.*s/%s", (int)(slash - base), base, db);
}

static void quiet(void *arg, const char *message)
{
	(void)arg, (void)message; /* "database ... does not exist, skipping" and the like */
}

char *it_sql(const char *url, const char *sql)
{
	PGconn *pg = PQconnectdb(url);
	ck_assert_msg(PQstatus(pg) == CONNECTION_OK, "connect: %s", PQerrorMessage(pg));
	PQsetNoticeProcessor(pg, quiet, NULL);
	PGresult *r = PQexec(pg, sql);
	ExecStatusType st = PQresultStatus(r);
	ck_assert_msg(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", sql,
	              PQresultErrorMessage(r));
	char *v = NULL;
	if (st == PGRES_TUPLES_OK && PQntuples(r) > 0)
		v = strdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	PQfinish(pg);
	return v;
}

void it_create_db(const char *name, char *url, size_t len)
{
	char sql[256];
	const char *super = it_env("IT_PG_URL");
	snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS \"%s\"", name);
	free(it_sql(super, sql));
	snprintf(sql, sizeof sql, "CREATE DATABASE \"%s\"", name);
	free(it_sql(super, sql));
	url_with_db(super, name, url, len);
}

static void pgtmp(const char *verb)
{
	char cmd[2048];
	snprintf(cmd, sizeof cmd, "sh '%s/tests/pgtmp.sh' %s '%s' %s >/dev/null", it_env("IT_ROOT"),
	         verb, it_env("IT_PG_DIR"), !strcmp(verb, "start") ? it_env("IT_PG_PORT") : "");
	ck_assert_msg(system(cmd) == 0, "%s failed", cmd);
}

void it_pg_stop(void) { pgtmp("stop"); }
void it_pg_start(void) { pgtmp("start"); }
