/* Fixtures the integration suites share (fixtures.h). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fixtures.h"
#include "jwk.h"
#include "problem.h"

/* --- answers --- */

void res_call(struct res *r, const char *method, const char *url, const char *const headers[],
              const char *body, size_t len)
{
	memset(r, 0, sizeof *r);
	it_http(&r->raw, method, url, headers, body, len);
	r->status = r->raw.status;
	r->json = json_loadb(r->raw.body, r->raw.len, 0, NULL);
}

void res_free(struct res *r)
{
	json_decref(r->json);
	r->json = NULL;
	it_resp_free(&r->raw);
}

void expect_status(const struct res *r, long st, int line)
{
	ck_assert_msg(r->status == st, "line %d: status %ld, want %ld: %s%.700s", line, r->status, st,
	              r->raw.error, r->raw.body);
}

void expect_problem(const struct res *r, long st, const char *code, const char *field,
                    int null_field_absent, int line)
{
	expect_status(r, st, line);
	ck_assert_msg(!strcmp(it_js(r->json, "code"), code), "line %d: code '%s', want '%s': %.500s", line,
	              it_js(r->json, "code"), code, r->raw.body);
	if (field)
		ck_assert_msg(!strcmp(it_js(r->json, "field"), field), "line %d: field '%s', want '%s': %.500s",
		              line, it_js(r->json, "field"), field, r->raw.body);
	else if (null_field_absent)
		ck_assert_msg(!json_object_get(r->json, "field"), "line %d: unexpected field: %.500s", line,
		              r->raw.body);
}

int replayed(const struct res *r)
{
	char v[32];
	return it_header(&r->raw, "Idempotent-Replayed", v, sizeof v) == 0 && !strcmp(v, "true");
}

long code_status(const char *code)
{
	/* The one table of codes (common/problem.c), so that a code added
	 * there is known here at once. */
	for (int i = 0; i < PROB__COUNT; i++)
		if (!strcmp(problem_info((enum problem_code)i)->code, code))
			return problem_info((enum problem_code)i)->status;
	return -1;
}

int is_uuid(const char *s)
{
	if (strlen(s) != 36)
		return 0;
	for (int i = 0; i < 36; i++) {
		int dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	}
	return 1;
}

int is_api_time(const char *s)
{
	return strlen(s) == 27 && s[4] == '-' && s[10] == 'T' && s[19] == '.' && s[26] == 'Z';
}

/* --- signed documents --- */

void doc_fetch(struct doc *d, const char *url, const char *token, const char *etag, int wait)
{
	struct it_resp r;
	char u[400], auth[300], inm[64];
	snprintf(u, sizeof u, "%s", url);
	if (wait)
		snprintf(u + strlen(u), sizeof u - strlen(u), "?wait=%d", wait);
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
	snprintf(inm, sizeof inm, "If-None-Match: %s", etag ? etag : "");
	const char *const h[] = { auth, etag ? inm : NULL, NULL };
	it_http(&r, "GET", u, h, NULL, 0);
	d->status = r.status;
	d->etag[0] = '\0';
	it_header(&r, "ETag", d->etag, sizeof d->etag);
	d->body = r.body;
	d->len = r.len;
}

/* --- SQL --- */

long long sqll(const char *url, const char *sql)
{
	char *v = it_sql(url, sql);
	ck_assert_msg(v != NULL, "%s: no row", sql);
	long long n = atoll(v);
	free(v);
	return n;
}

void dp_region_db(const char *name, char *url, size_t len)
{
	char bin[1024], out[4096], env_db[600];
	it_create_db(name, url, len);
	snprintf(env_db, sizeof env_db, "DP_DATABASE_URL=%s", url);
	const char *const env[] = { env_db, "DP_REGION=us", "DP_CONTROL_PLANE_URL=http://127.0.0.1:1", NULL };
	it_bin("data-plane", bin, sizeof bin);
	char *argv[] = { bin, "migrate", NULL };
	ck_assert_msg(it_run("data-plane", argv, env, out, sizeof out) == 0, "%s", out);
}

/* --- files --- */

void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

void write_trust_bundle(const struct jwk *key, const char *path)
{
	json_t *set = json_pack("{s[o]}", "keys", jwk_public_json(key));
	ck_assert_ptr_nonnull(set);
	ck_assert_int_eq(json_dump_file(set, path, 0), 0);
	json_decref(set);
}

/* --- requests at once --- */

struct at_once {
	pthread_barrier_t *go;
	void *(*fn)(void *item);
	void *item;
};

static void *at_once_main(void *arg)
{
	struct at_once *a = arg;
	pthread_barrier_wait(a->go);
	return a->fn(a->item);
}

void run_at_once(void *items, size_t size, int n, void *(*fn)(void *item))
{
	pthread_t t[32];
	struct at_once a[32];
	pthread_barrier_t go;
	ck_assert_int_le(n, 32);
	pthread_barrier_init(&go, NULL, (unsigned)n);
	for (int i = 0; i < n; i++) {
		a[i] = (struct at_once){ &go, fn, (char *)items + (size_t)i * size };
		ck_assert_int_eq(pthread_create(&t[i], NULL, at_once_main, &a[i]), 0);
	}
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&go);
}

long get_json_auth(const char *url, const char *auth, json_t **out)
{
	struct it_resp r;
	char h[512];
	const char *hs[2] = { NULL, NULL };
	if (auth) {
		snprintf(h, sizeof h, "Authorization: %s", auth);
		hs[0] = h;
	}
	it_http(&r, "GET", url, hs, NULL, 0);
	*out = json_loadb(r.body ? r.body : "", r.len, 0, NULL);
	long st = r.status;
	it_resp_free(&r);
	return st;
}

const char *query_enc(const char *s)
{
	char b[4096];
	size_t n = 0;
	for (; *s && n + 4 < sizeof b; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr("-._~", c))
			b[n++] = (char)c;
		else
			n += (size_t)snprintf(b + n, sizeof b - n, "%%%02X", c);
	}
	b[n] = '\0';
	return it_fmt("%s", b);
}

/* --- a fake HTTP server --- */

int listen_loopback(int *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(listen(fd, 64), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

void fake_respond(int fd, int status, const char *ctype, const char *body)
{
	char head[512];
	size_t n = body ? strlen(body) : 0;
	snprintf(head, sizeof head,
	         "HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
	         status, ctype, n);
	if (it_raw_send(fd, head, strlen(head)) == 0 && n)
		it_raw_send(fd, body, n);
}

void fake_nothing_newer(struct fake_srv *s, int fd, int have_doc)
{
	for (int i = 0; i < 6 && !atomic_load(&s->stop); i++)
		usleep(50000);
	if (have_doc)
		fake_respond(fd, 304, "application/jwt", NULL);
	else
		fake_respond(fd, 503, "application/problem+json", "{\"code\":\"unavailable\"}");
}

void fake_header(const char *req, const char *name, char *out, size_t len)
{
	out[0] = '\0';
	for (const char *l = strstr(req, "\r\n"); l && l[2] != '\r'; l = strstr(l + 2, "\r\n")) {
		size_t n = strlen(name);
		if (!strncasecmp(l + 2, name, n) && l[2 + n] == ':') {
			const char *v = l + 3 + n, *end = strstr(v, "\r\n");
			while (*v == ' ')
				v++;
			snprintf(out, len, "%.*s", (int)(end - v), v);
			return;
		}
	}
}

struct conn_arg {
	struct fake_srv *s;
	int fd;
};

static void *conn_main(void *arg)
{
	struct conn_arg *a = arg;
	struct fake_srv *s = a->s;
	int fd = a->fd;
	static __thread char req[65536];
	size_t n = 0;
	free(a);

	/* Headers, then the body of Content-Length. */
	for (;;) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		if (atomic_load(&s->stop))
			goto out;
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		ssize_t r = recv(fd, req + n, sizeof req - 1 - n, 0);
		if (r <= 0)
			goto out;
		n += (size_t)r;
		req[n] = '\0';
		char *end = strstr(req, "\r\n\r\n");
		if (end) {
			char cl[32];
			fake_header(req, "Content-Length", cl, sizeof cl);
			if ((size_t)(end + 4 - req) + (size_t)atol(cl) <= n)
				break;
		}
		if (n == sizeof req - 1)
			goto out;
	}
	s->handle(s, fd, req);
out:
	close(fd);
	return NULL;
}

static void *accept_main(void *arg)
{
	struct fake_srv *s = arg;
	while (!atomic_load(&s->stop)) {
		struct pollfd pfd = { s->lfd, POLLIN, 0 };
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		int fd = accept(s->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		struct conn_arg *a = malloc(sizeof *a);
		a->s = s;
		a->fd = fd;
		pthread_mutex_lock(&s->mu);
		if (s->nconns < (int)(sizeof s->conns / sizeof s->conns[0]) &&
		    pthread_create(&s->conns[s->nconns], NULL, conn_main, a) == 0)
			s->nconns++;
		else {
			close(fd);
			free(a);
		}
		pthread_mutex_unlock(&s->mu);
	}
	return NULL;
}

void fake_srv_start(struct fake_srv *s, fake_handler *handle, void *ctx)
{
	memset(s, 0, sizeof *s);
	s->handle = handle;
	s->ctx = ctx;
	pthread_mutex_init(&s->mu, NULL);
	s->lfd = listen_loopback(&s->port);
	ck_assert_int_eq(pthread_create(&s->accept_th, NULL, accept_main, s), 0);
}

void fake_srv_stop(struct fake_srv *s)
{
	atomic_store(&s->stop, 1);
	pthread_join(s->accept_th, NULL);
	for (int i = 0; i < s->nconns; i++)
		pthread_join(s->conns[i], NULL);
	close(s->lfd);
	pthread_mutex_destroy(&s->mu);
}
