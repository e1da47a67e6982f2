/* Integration test harness: processes, HTTP and SQL helpers. */
#include "it.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
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

long it_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* IT_WRAP ("valgrind --leak-check=full ...", words split on blanks) runs
 * every binary of $IT_BIN under that command; other programs run as they
 * are. Returns the argv to exec: `argv` itself, or `buf` filled with the
 * wrapper's words followed by `argv`. */
static char *const *wrapped(char *const argv[], char *words, size_t wlen, char *buf[], size_t n)
{
	const char *wrap = getenv("IT_WRAP"), *bin = getenv("IT_BIN");
	size_t bl = bin ? strlen(bin) : 0;
	if (!wrap || !*wrap || !bl || strncmp(argv[0], bin, bl) != 0 || argv[0][bl] != '/')
		return argv;
	ck_assert_msg(strlen(wrap) < wlen, "IT_WRAP is too long");
	snprintf(words, wlen, "%s", wrap);
	size_t k = 0;
	for (char *save = NULL, *w = strtok_r(words, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
		ck_assert_msg(k + 1 < n, "IT_WRAP has too many words");
		buf[k++] = w;
	}
	for (size_t i = 0; argv[i]; i++) {
		ck_assert_msg(k + 1 < n, "too many arguments under IT_WRAP");
		buf[k++] = argv[i];
	}
	buf[k] = NULL;
	return buf;
}

void it_spawn(struct it_proc *p, const char *name, char *const argv[], const char *const env[])
{
	static int seq;
	char words[4096], *wbuf[96];
	char *const *args = wrapped(argv, words, sizeof words, wbuf, sizeof wbuf / sizeof wbuf[0]);
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
		/* A data plane keeps its tenants' logs (DP_LOG, on by default)
		 * with the run's key ring unless `env` names one ("DP_LOG_KEYS_DIR="
		 * for none). */
		const char *base = strrchr(argv[0], '/');
		if (!strcmp(base ? base + 1 : argv[0], "data-plane") && !getenv("DP_LOG_KEYS_DIR") &&
		    getenv("IT_LOG_KEYS_DIR"))
			setenv("DP_LOG_KEYS_DIR", getenv("IT_LOG_KEYS_DIR"), 1);
		/* The suites run their cells' events partitioned by week (the
		 * default, one table, is what the stack's suites run) unless
		 * `env` says otherwise. */
		if (!strcmp(base ? base + 1 : argv[0], "data-plane") && !getenv("DP_EVENTS_PARTITIONED"))
			setenv("DP_EVENTS_PARTITIONED", "true", 1);
		/* Unblock what the test runner may have blocked. */
		sigset_t all;
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		execvp(args[0], args);
		_exit(127);
	}
}

int it_wait(struct it_proc *p, int timeout_ms)
{
	long deadline = it_now_ms() + timeout_ms;
	int st;
	for (;;) {
		pid_t r = waitpid(p->pid, &st, WNOHANG);
		if (r == p->pid) {
			p->pid = 0;
			if (WIFEXITED(st))
				return WEXITSTATUS(st);
			return 128 + WTERMSIG(st);
		}
		if (it_now_ms() > deadline)
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

/* What a process that does not answer is doing, on stderr for the
 * failure's report: the end of its log, the cluster's sessions that are
 * not idle (a lock wait shows there), and its threads' stacks. */
static void it_diagnose(const struct it_proc *p)
{
	char *log = it_slurp(p->log);
	size_t n = log ? strlen(log) : 0;
	fprintf(stderr, "---- %s, its last lines:\n%s\n", p->log, log ? log + (n > 3000 ? n - 3000 : 0) : "");
	free(log);
	const char *super = getenv("IT_PG_URL");
	PGconn *pg = super ? PQconnectdb(super) : NULL;
	if (pg && PQstatus(pg) == CONNECTION_OK) {
		PGresult *r = PQexec(pg, "SELECT string_agg(format('%s pid %s %s %s/%s %s s: %s', datname, pid, state,"
		                         " wait_event_type, wait_event, round(extract(epoch FROM now() - query_start)),"
		                         " left(query, 200)), E'\\n') FROM pg_stat_activity"
		                         " WHERE state IS DISTINCT FROM 'idle' AND pid <> pg_backend_pid()");
		if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
			fprintf(stderr, "---- sessions not idle:\n%s\n", PQgetvalue(r, 0, 0));
		PQclear(r);
	}
	PQfinish(pg);
	char pglog[600];
	snprintf(pglog, sizeof pglog, "%s/postgres.log", getenv("IT_PG_DIR") ? getenv("IT_PG_DIR") : "/nonexistent");
	if ((log = it_slurp(pglog)) != NULL) {
		n = strlen(log);
		fprintf(stderr, "---- %s, its last lines:\n%s\n", pglog, log + (n > 2000 ? n - 2000 : 0));
		free(log);
	}
	if (p->pid > 0 && access("/usr/bin/gdb", X_OK) == 0) {
		char cmd[256];
		snprintf(cmd, sizeof cmd, "timeout 60 /usr/bin/gdb -p %d -batch -ex 'thread apply all bt' 2>&1 | grep '^#\\|^Thread' >&2",
		         (int)p->pid);
		fprintf(stderr, "---- threads of pid %d:\n", (int)p->pid);
		fflush(stderr);
		if (system(cmd) != 0)
			fprintf(stderr, "(gdb gave no stacks)\n");
	}
}

int it_wait_port(struct it_proc *p, int timeout_ms)
{
	long deadline = it_now_ms() + timeout_ms;
	while (it_now_ms() < deadline) {
		char *log = it_slurp(p->log);
		const char *at;
		int port = 0;
		if (log && (at = strstr(log, "PORT ")) != NULL)
			port = atoi(at + 5);
		else if (log && (at = strstr(log, "\"port\":")) != NULL)
			port = atoi(at + 7);
		free(log);
		if (port > 0) {
			long took = it_now_ms() - (deadline - timeout_ms);
			if (took > 5000) /* a start takes well under a second: worth a line */
				fprintf(stderr, "note: %s announced its port after %ld ms\n", p->log, took);
			return port;
		}
		int st;
		if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
			p->pid = 0;
			char *out = it_slurp(p->log);
			ck_abort_msg("process exited before listening: %.600s", out ? out : "");
		}
		usleep(10000);
	}
	it_diagnose(p);
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
	long t0 = it_now_ms();
	CURLcode cc = curl_easy_perform(c);
	if (cc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	else {
		r->status = 0;
		snprintf(r->error, sizeof r->error, "curl %d (%s) after %ld ms", (int)cc, curl_easy_strerror(cc),
		         it_now_ms() - t0);
	}
	if (!r->body)
		r->body = calloc(1, 1);
	curl_slist_free_all(list);
	curl_easy_cleanup(c);
}

void it_http(struct it_resp *r, const char *method, const char *url, const char *const headers[],
             const char *body, size_t body_len)
{
	it_http_from(r, NULL, method, url, headers, body, body_len);
}

void it_http_from(struct it_resp *r, const char *source, const char *method, const char *url,
                  const char *const headers[], const char *body, size_t body_len)
{
	char iface[64];
	CURL *c = curl_easy_init();
	ck_assert_ptr_nonnull(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	if (source) {
		snprintf(iface, sizeof iface, "host!%s", source);
		curl_easy_setopt(c, CURLOPT_INTERFACE, iface);
	}
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

/* The value of the first line "name: value" of `lines` (CRLF-separated;
 * the name case-insensitive) into `out`; 0 if found. */
static int header_in(const char *lines, const char *name, char *out, size_t len)
{
	size_t n = strlen(name);
	for (const char *line = lines; *line;) {
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

int it_header(const struct it_resp *r, const char *name, char *out, size_t len)
{
	return header_in(r->headers, name, out, len);
}

void it_write_trust(const char *cp_url, const char *path)
{
	struct it_resp r;
	char u[128];
	snprintf(u, sizeof u, "%s/.well-known/jwks.json", cp_url);
	it_http(&r, "GET", u, NULL, NULL, 0);
	ck_assert_msg(r.status == 200, "jwks: %ld", r.status);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fwrite(r.body, 1, r.len, f);
	ck_assert_int_eq(fclose(f), 0);
	it_resp_free(&r);
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

static void pg_restart_if_left_stopped(void);

void it_create_db(const char *name, char *url, size_t len)
{
	char sql[256];
	const char *super = it_env("IT_PG_URL");
	pg_restart_if_left_stopped();
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

/* A test that stops the cluster and then fails an assertion ends before
 * it starts it again. The mark left while it is stopped lets the next
 * test that needs a database start it, so one failure stays one failure
 * instead of failing every later test of the run. */
static void pg_stopped_mark(char *path, size_t len)
{
	snprintf(path, len, "%s/stopped-by-test", it_env("IT_PG_DIR"));
}

void it_pg_stop(void)
{
	char mark[1024];
	pg_stopped_mark(mark, sizeof mark);
	FILE *f = fopen(mark, "w");
	ck_assert_msg(f != NULL, "%s: %s", mark, strerror(errno));
	fclose(f);
	pgtmp("stop");
}

void it_pg_start(void)
{
	char mark[1024];
	pgtmp("start");
	pg_stopped_mark(mark, sizeof mark);
	unlink(mark);
}

static void pg_restart_if_left_stopped(void)
{
	char mark[1024];
	pg_stopped_mark(mark, sizeof mark);
	if (access(mark, F_OK) == 0) {
		fprintf(stderr, "harness: PostgreSQL was left stopped by a failed test; starting it\n");
		it_pg_start();
	}
}

/* --- raw HTTP --- */

int it_raw_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_msg(connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect to port %d: %s", port,
	              strerror(errno));
	return fd;
}

int it_raw_send(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Appends what arrives within the deadline; returns bytes read, 0 on
 * close or reset, -1 on timeout. */
static ssize_t raw_recv(int fd, char *buf, size_t len, long deadline)
{
	for (;;) {
		long left = deadline - it_now_ms();
		if (left <= 0)
			return -1;
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int pr = poll(&pfd, 1, (int)left);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			return -1;
		ssize_t n = recv(fd, buf, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 ? 0 : n; /* a reset counts as closed */
	}
}

void it_raw_read(int fd, struct it_raw *r, int timeout_ms)
{
	long deadline = it_now_ms() + timeout_ms;
	size_t have = 0;
	char *end = NULL;
	memset(r, 0, sizeof *r);
	/* Head: up to the blank line. */
	while (!end) {
		if (have + 1 >= sizeof r->head)
			break; /* a head this large is not ours: keep what we have */
		ssize_t n = raw_recv(fd, r->head + have, sizeof r->head - 1 - have, deadline);
		if (n <= 0) {
			r->closed = n == 0;
			r->timed_out = n < 0;
			break;
		}
		have += (size_t)n;
		r->head[have] = '\0';
		end = strstr(r->head, "\r\n\r\n");
	}
	if (!strncmp(r->head, "HTTP/1.", 7) && strlen(r->head) > 12)
		r->status = strtol(r->head + 9, NULL, 10);
	size_t extra = 0;
	if (end) {
		extra = have - (size_t)(end + 4 - r->head);
		end[2] = '\0'; /* the head keeps its last CRLF; what followed is body */
	}
	char v[64];
	long want = -1;
	if (it_raw_header(r, "Content-Length", v, sizeof v) == 0)
		want = strtol(v, NULL, 10);
	if (it_raw_header(r, "Connection", v, sizeof v) == 0 && !strcasecmp(v, "close"))
		r->closed = 1;
	size_t cap = (want >= 0 ? (size_t)want : 4096) + extra + 1;
	r->body = malloc(cap);
	ck_assert_ptr_nonnull(r->body);
	if (extra)
		memcpy(r->body, end + 4, extra);
	r->len = extra;
	/* Body: by Content-Length, or up to the close when there is none. */
	while (end && !r->timed_out && (want < 0 || r->len < (size_t)want) && strncmp(r->head, "HTTP/1.1 1", 10)) {
		if (r->len + 4096 + 1 > cap) {
			cap = (r->len + 4096 + 1) * 2;
			r->body = realloc(r->body, cap);
			ck_assert_ptr_nonnull(r->body);
		}
		size_t room = want >= 0 ? (size_t)want - r->len : 4096;
		ssize_t n = raw_recv(fd, r->body + r->len, room, deadline);
		if (n <= 0) {
			r->closed |= n == 0;
			r->timed_out = n < 0;
			break;
		}
		r->len += (size_t)n;
	}
	r->body[r->len] = '\0';
}

void it_raw_request(int port, const void *req, size_t len, struct it_raw *r)
{
	int fd = it_raw_connect(port);
	int sent = it_raw_send(fd, req, len);
	it_raw_read(fd, r, 10000);
	if (sent != 0)
		r->closed = 1;
	close(fd);
}

int it_raw_header(const struct it_raw *r, const char *name, char *out, size_t len)
{
	const char *headers = strstr(r->head, "\r\n"); /* after the status line */
	return headers ? header_in(headers + 2, name, out, len) : -1;
}

void it_raw_free(struct it_raw *r)
{
	free(r->body);
	r->body = NULL;
}

/* --- a process seen from outside --- */

/* A "<field> n kB" line of /proc/<pid>/status in KiB, -1 if gone. */
static long status_kib(pid_t pid, const char *field)
{
	char path[64], line[256];
	long kib = -1;
	size_t len = strlen(field);
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, field, len))
			kib = strtol(line + len, NULL, 10);
	fclose(f);
	return kib;
}

long it_rss_kib(pid_t pid)
{
	return status_kib(pid, "VmRSS:");
}

long it_hwm_kib(pid_t pid)
{
	return status_kib(pid, "VmHWM:");
}

int it_alive(struct it_proc *p)
{
	int st;
	if (p->pid <= 0)
		return 0;
	if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
		p->pid = 0;
		return 0;
	}
	return 1;
}

/* --- a control plane and one region's data plane --- */

void it_stack_admin(const struct it_stack *s, struct it_resp *r, const char *method,
                    const char *path, const char *body)
{
	char u[1024];
	snprintf(u, sizeof u, "%s%s", s->cp_url, path);
	const char *const h[] = { "Content-Type: application/json",
		                      "Authorization: Bearer " IT_ADMIN_TOKEN, NULL };
	it_http(r, method, u, h, body, body ? strlen(body) : 0);
}

/* The string member `key` of the JSON object `text` into out. */
static void json_member(const char *text, const char *key, char *out, size_t len)
{
	json_t *j = json_loads(text, 0, NULL);
	const char *v = json_string_value(json_object_get(j, key));
	ck_assert_msg(v != NULL, "no \"%s\" in %.300s", key, text);
	snprintf(out, len, "%s", v);
	json_decref(j);
}

static long readyz_version(const char *url)
{
	struct it_resp r;
	char u[128];
	snprintf(u, sizeof u, "%s/readyz", url);
	it_http(&r, "GET", u, NULL, NULL, 0);
	json_t *j = r.status == 200 ? json_loads(r.body, 0, NULL) : NULL;
	long v = j ? (long)json_integer_value(json_object_get(j, "config_version")) : 0;
	json_decref(j);
	it_resp_free(&r);
	return v;
}

void it_stack_sync(const struct it_stack *s)
{
	struct it_resp r;
	char path[64];
	snprintf(path, sizeof path, "/v1/regions/%s", s->region);
	it_stack_admin(s, &r, "GET", path, NULL);
	ck_assert_msg(r.status == 200, "GET %s: %ld %.300s", path, r.status, r.body);
	json_t *j = json_loads(r.body, 0, NULL);
	long want = (long)json_integer_value(json_object_get(j, "config_version"));
	json_decref(j);
	it_resp_free(&r);
	ck_assert_int_gt(want, 0);
	/* Generous: under valgrind a data plane is many times slower. */
	long deadline = it_now_ms() + 60000;
	while (readyz_version(s->dp_url) < want) {
		ck_assert_msg(it_now_ms() < deadline, "the data plane did not reach config version %ld (log %s)",
		              want, s->dp.log);
		usleep(20000);
	}
}

/* Migrates the database `db_url` and starts a control plane on it on a
 * free port with the settings every test wants, then `own` and `extra`
 * (NULL-terminated, may be NULL; later entries win). Returns its port. */
static int cp_spawn(struct it_proc *p, const char *db_url, const char *const own[],
                    const char *const extra[], int port_timeout_ms)
{
	char env_db[600], env_regions[1100], bin[1024], out[4096];
	const char *env[48];
	int n = 0;

	snprintf(env_db, sizeof env_db, "CP_DATABASE_URL=%s", db_url);
	it_bin("control-plane", bin, sizeof bin);

	const char *const menv[] = { env_db, NULL };
	char *margv[] = { bin, "migrate", NULL };
	int st = it_run("cp-migrate", margv, menv, out, sizeof out);
	ck_assert_msg(st == 0, "control-plane migrate: exit %d: %.400s", st, out);

	/* Named explicitly: the sanitizer build's bin/ has no regions.conf beside it. */
	snprintf(env_regions, sizeof env_regions, "CP_REGIONS_FILE=%s/deploy/regions.conf", it_env("IT_ROOT"));
	env[n++] = env_db;
	env[n++] = env_regions;
	env[n++] = "CP_LISTEN=127.0.0.1:0";
	env[n++] = "CP_SECRETS_KEY=" IT_SECRETS_KEY;
	env[n++] = "CP_ADMIN_TOKEN=" IT_ADMIN_TOKEN;
	env[n++] = "CP_SCRYPT_LOG2N=10";
	/* Suites log in often and at once from one address; the login suite
	 * sets its own limits (later entries win). */
	env[n++] = "CP_LOGIN_CONCURRENCY=64";
	env[n++] = "CP_LOGIN_PER_SOURCE_BURST=1000000";
	for (int i = 0; own && own[i]; i++) {
		ck_assert_int_lt(n, 46);
		env[n++] = own[i];
	}
	for (int i = 0; extra && extra[i]; i++) {
		ck_assert_int_lt(n, 46);
		env[n++] = extra[i];
	}
	env[n] = NULL;
	char *argv[] = { bin, NULL };
	it_spawn(p, "control-plane", argv, env);
	return it_wait_port(p, port_timeout_ms);
}

static void stack_run(const char *name, char *const argv[], const char *const env[])
{
	static char out[8192];
	int st = it_run(name, argv, env, out, sizeof out);
	ck_assert_msg(st == 0, "%s %s: exit %d: %.600s", argv[0], argv[1], st, out);
}

/* Starts the data plane of `s` with its own settings, those of `extra`
 * replacing them by name. */
static void stack_dp_spawn(struct it_stack *s, const char *const extra[])
{
	const char *env[48];
	char bin[1024];
	int n = 0;
	for (int i = 0; i < 8; i++) {
		size_t klen = strcspn(s->dp_base[i], "=") + 1;
		int replaced = 0;
		for (int k = 0; extra && extra[k]; k++)
			replaced |= !strncmp(extra[k], s->dp_base[i], klen);
		if (!replaced)
			env[n++] = s->dp_base[i];
	}
	for (int i = 0; extra && extra[i]; i++) {
		ck_assert_int_lt(n, 46);
		env[n++] = extra[i];
	}
	env[n] = NULL;
	it_bin("data-plane", bin, sizeof bin);
	char *argv[] = { bin, NULL };
	it_spawn(&s->dp, "data-plane", argv, env);
	s->dp_port = it_wait_port(&s->dp, 60000);
	snprintf(s->dp_url, sizeof s->dp_url, "http://127.0.0.1:%d", s->dp_port);
}

void it_stack_start(struct it_stack *s, const char *region, const char *const cp_env[],
                    const char *const dp_env[])
{
	static int seq;
	char name[64], bin[1024], dir[600], e_keys[700], e_dpdb[600];
	char e_region[40], e_token[300], e_trust[800], e_cache[700], e_cp[128], trust[700];
	struct it_resp r;

	memset(s, 0, sizeof *s);
	snprintf(s->region, sizeof s->region, "%s", region);
	snprintf(dir, sizeof dir, "%s/stack-%d-%d", it_env("IT_LOG_DIR"), (int)getpid(), seq);
	ck_assert_int_eq(mkdir(dir, 0755), 0);

	/* The control plane. */
	snprintf(name, sizeof name, "it_stack_cp_%d_%d", (int)getpid(), seq);
	it_create_db(name, s->cp_db, sizeof s->cp_db);
	snprintf(e_keys, sizeof e_keys, "CP_SIGNING_KEYS_DIR=%s/keys", dir);
	{
		const char *const own[] = { e_keys, NULL };
		s->cp_port = cp_spawn(&s->cp, s->cp_db, own, cp_env, 60000);
	}
	snprintf(s->cp_keys, sizeof s->cp_keys, "%s", e_keys);
	snprintf(s->cp_url, sizeof s->cp_url, "http://127.0.0.1:%d", s->cp_port);

	/* Its trust bundle, a tenant with a key, a region credential. */
	snprintf(trust, sizeof trust, "%s/trust.json", dir);
	it_write_trust(s->cp_url, trust);
	char body[300], path[128];
	snprintf(body, sizeof body, "{\"name\":\"Stack %d\",\"slug\":\"stack-%d-%d\",\"region\":\"%s\",\"plan\":\"pro\"}",
	         seq, (int)getpid(), seq, region);
	it_stack_admin(s, &r, "POST", "/v1/tenants", body);
	ck_assert_msg(r.status == 201, "POST /v1/tenants: %ld %.300s", r.status, r.body);
	json_member(r.body, "id", s->tenant, sizeof s->tenant);
	it_resp_free(&r);
	snprintf(path, sizeof path, "/v1/tenants/%s/api-keys", s->tenant);
	it_stack_admin(s, &r, "POST", path, "{\"name\":\"k\",\"scopes\":[\"events:read\",\"events:write\"]}");
	ck_assert_msg(r.status == 201, "POST %s: %ld %.300s", path, r.status, r.body);
	json_member(r.body, "secret", s->key, sizeof s->key);
	it_resp_free(&r);
	snprintf(path, sizeof path, "/v1/regions/%s/credentials", region);
	it_stack_admin(s, &r, "POST", path, "{}");
	ck_assert_msg(r.status == 201, "POST %s: %ld %.300s", path, r.status, r.body);
	snprintf(e_token, sizeof e_token, "DP_REGION_TOKEN=");
	json_member(r.body, "token", e_token + strlen(e_token), sizeof e_token - strlen(e_token));
	it_resp_free(&r);

	/* The data plane. */
	snprintf(name, sizeof name, "it_stack_%s_%d_%d", region, (int)getpid(), seq);
	it_create_db(name, s->dp_db, sizeof s->dp_db);
	snprintf(e_dpdb, sizeof e_dpdb, "DP_DATABASE_URL=%s", s->dp_db);
	snprintf(e_region, sizeof e_region, "DP_REGION=%s", region);
	snprintf(e_cp, sizeof e_cp, "DP_CONTROL_PLANE_URL=%s", s->cp_url);
	snprintf(e_trust, sizeof e_trust, "DP_TRUST_BUNDLE=%s", trust);
	snprintf(e_cache, sizeof e_cache, "DP_CACHE_DIR=%s/cache", dir);
	it_bin("data-plane", bin, sizeof bin);
	{
		char *argv[] = { bin, "migrate", NULL };
		const char *const menv[] = { e_dpdb, e_region, e_cp, NULL };
		stack_run("dp-migrate", argv, menv);
	}
	snprintf(s->dp_base[0], sizeof s->dp_base[0], "%s", e_dpdb);
	snprintf(s->dp_base[1], sizeof s->dp_base[1], "%s", e_region);
	snprintf(s->dp_base[2], sizeof s->dp_base[2], "%s", e_cp);
	snprintf(s->dp_base[3], sizeof s->dp_base[3], "%s", e_trust);
	snprintf(s->dp_base[4], sizeof s->dp_base[4], "%s", e_token);
	snprintf(s->dp_base[5], sizeof s->dp_base[5], "%s", e_cache);
	snprintf(s->dp_base[6], sizeof s->dp_base[6], "%s", "DP_LISTEN=127.0.0.1:0");
	snprintf(s->dp_base[7], sizeof s->dp_base[7], "%s", "DP_INSTANCE=it-stack");
	stack_dp_spawn(s, dp_env);
	it_stack_sync(s);
	seq++;
}

void it_stack_dp_restart(struct it_stack *s, const char *const dp_env[])
{
	int st = it_stop(&s->dp);
	ck_assert_msg(st == 0, "the data plane exited with %d on SIGTERM (log %s)", st, s->dp.log);
	stack_dp_spawn(s, dp_env);
	it_stack_sync(s);
}

void it_stack_dp_respawn(struct it_stack *s, const char *const dp_env[])
{
	int st = it_stop(&s->dp);
	ck_assert_msg(st == 0, "the data plane exited with %d on SIGTERM (log %s)", st, s->dp.log);
	stack_dp_spawn(s, dp_env);
}

void it_stack_cp_stop(struct it_stack *s)
{
	int st = it_stop(&s->cp);
	ck_assert_msg(st == 0, "the control plane exited with %d on SIGTERM (log %s)", st, s->cp.log);
	s->cp.pid = 0;
}

void it_stack_cp_start(struct it_stack *s, const char *const cp_env[])
{
	char listen[64];
	snprintf(listen, sizeof listen, "CP_LISTEN=127.0.0.1:%d", s->cp_port);
	const char *const own[] = { s->cp_keys, listen, NULL };
	int port = cp_spawn(&s->cp, s->cp_db, own, cp_env, 60000);
	ck_assert_int_eq(port, s->cp_port);
}

void it_stack_stop(struct it_stack *s)
{
	int dp = s->dp.pid > 0 ? it_stop(&s->dp) : 0;
	int cp = s->cp.pid > 0 ? it_stop(&s->cp) : 0;
	ck_assert_msg(dp == 0, "the data plane exited with %d on SIGTERM (log %s)", dp, s->dp.log);
	ck_assert_msg(cp == 0, "the control plane exited with %d on SIGTERM (log %s)", cp, s->cp.log);
}

void it_add_tests(Suite *s, const TTest *const tests[], size_t n, SFun setup, SFun teardown,
                  double timeout_s)
{
	for (size_t i = 0; i < n; i++) {
		TCase *tc = tcase_create(tests[i]->name);
		if (setup || teardown)
			tcase_add_checked_fixture(tc, setup, teardown);
		tcase_set_timeout(tc, timeout_s);
		tcase_add_test(tc, tests[i]);
		suite_add_tcase(s, tc);
	}
}

const char *it_fmt(const char *f, ...)
{
	static char ring[32][16384];
	static unsigned next;
	char *b = ring[next++ % 32];
	va_list ap;
	va_start(ap, f);
	int n = vsnprintf(b, sizeof ring[0], f, ap);
	va_end(ap);
	ck_assert_msg(n >= 0 && (size_t)n < sizeof ring[0], "it_fmt: text too long");
	return b;
}

const char *it_js(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

long long it_metric(const char *base_url, const char *series)
{
	struct it_resp r;
	char want[256];
	it_http(&r, "GET", it_fmt("%s/metrics", base_url), NULL, NULL, 0);
	ck_assert_msg(r.status == 200, "GET %s/metrics: %ld", base_url, r.status);
	snprintf(want, sizeof want, "\n%s ", series);
	const char *at = strstr(r.body, want);
	ck_assert_msg(at, "no metric %s at %s", series, base_url);
	long long v = atoll(at + strlen(want));
	it_resp_free(&r);
	return v;
}

void it_cp_restart(struct it_proc *p, const char *db, const char *const extra[], char *url, size_t urllen)
{
	snprintf(url, urllen, "http://127.0.0.1:%d", cp_spawn(p, db, NULL, extra, 10000));
}

void it_cp_start(struct it_proc *p, const char *db_prefix, const char *const extra[], char *db,
                 size_t dblen, char *url, size_t urllen)
{
	char name[64];

	snprintf(name, sizeof name, "%s_%d", db_prefix, (int)getpid());
	it_create_db(name, db, dblen);
	snprintf(url, urllen, "http://127.0.0.1:%d", cp_spawn(p, db, NULL, extra, 10000));
}
