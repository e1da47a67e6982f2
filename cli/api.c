/* bin/celltrail's calls to the control plane (api.h). */
#include "api.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "buf.h"
#include "jsonx.h"
#include "url.h"

#define USER_AGENT "celltrail-cli"
#define TOKEN_MAX 4096
#define BASE_MAX 1024

struct api {
	CURL *easy;
	char base[BASE_MAX];
	char *cacert;                 /* owned, or NULL */
	struct curl_slist *hdr_get;   /* Accept and the credential */
	struct curl_slist *hdr_body;  /* the same and Content-Type */
	long timeout_ms, connect_ms;
	struct buf answer;
	int too_large;
	char errbuf[CURL_ERROR_SIZE];
};

/* ---- paths ---- */

static int unreserved(unsigned char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
	       ch == '.' || ch == '_' || ch == '~';
}

/* Appends `s` percent-encoded at out[*at]; -1 when it does not fit (with
 * the NUL) in `cap`. */
static int put_encoded(char *out, size_t cap, size_t *at, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		size_t need = unreserved(*p) ? 1 : 3;
		if (*at + need >= cap)
			return -1;
		if (need == 1) {
			out[(*at)++] = (char)*p;
		} else {
			out[(*at)++] = '%';
			out[(*at)++] = hex[*p >> 4];
			out[(*at)++] = hex[*p & 15];
		}
	}
	return 0;
}

int api_path(char *out, size_t outlen, const char *tmpl, const char *const args[])
{
	size_t at = 0, next = 0;
	if (outlen == 0)
		return -1;
	for (const char *p = tmpl; *p;) {
		if (p[0] == '{' && p[1] == '}') {
			const char *arg = args ? args[next] : NULL;
			if (!arg || !*arg || put_encoded(out, outlen, &at, arg) != 0)
				goto fail;
			next++;
			p += 2;
			continue;
		}
		if (at + 1 >= outlen)
			goto fail;
		out[at++] = *p++;
	}
	out[at] = '\0';
	return 0;
fail:
	out[0] = '\0';
	return -1;
}

int api_query(char *path, size_t cap, const char *name, const char *value)
{
	if (!value)
		return 0;
	size_t len = strlen(path), at = len;
	if (at + 1 >= cap)
		return -1;
	path[at++] = strchr(path, '?') ? '&' : '?';
	if (put_encoded(path, cap, &at, name) != 0 || at + 1 >= cap)
		goto fail;
	path[at++] = '=';
	if (put_encoded(path, cap, &at, value) != 0)
		goto fail;
	path[at] = '\0';
	return 0;
fail:
	path[len] = '\0';
	return -1;
}

/* ---- problems ---- */

static void clean_copy(char *out, size_t outlen, const char *s)
{
	size_t o = 0;
	for (; *s && o + 1 < outlen; s++) {
		unsigned char ch = (unsigned char)*s;
		out[o++] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
	}
	out[o] = '\0';
}

void api_problem_line(char *out, size_t outlen, long status, const json_t *problem, const char *content_type)
{
	const char *code = json_string_value(json_object_get(problem, "code"));
	const char *detail = json_string_value(json_object_get(problem, "detail"));
	const char *title = json_string_value(json_object_get(problem, "title"));
	const char *field = json_string_value(json_object_get(problem, "field"));
	const char *rid = json_string_value(json_object_get(problem, "request_id"));
	const json_t *retry = json_object_get(problem, "retry_after_seconds");
	char d[600], c[80], f[140], r[100], ct[100];

	if (!json_is_object(problem) || !code) {
		clean_copy(ct, sizeof ct, content_type && *content_type ? content_type : "no content type");
		if (status >= 300 && status < 400)
			snprintf(out, outlen, "HTTP %ld: a redirect, not followed (is the URL the control plane's?)",
			         status);
		else
			snprintf(out, outlen, "HTTP %ld: the answer is not a problem document (%s)", status, ct);
		return;
	}
	clean_copy(c, sizeof c, code);
	clean_copy(d, sizeof d, detail ? detail : title ? title : "(no detail)");
	size_t n = (size_t)snprintf(out, outlen, "HTTP %ld %s: %s", status, c, d);
	const char *sep = " (";
	if (field && n < outlen) {
		clean_copy(f, sizeof f, field);
		n += (size_t)snprintf(out + n, outlen - n, "%sfield %s", sep, f);
		sep = "; ";
	}
	if (json_is_integer(retry) && n < outlen) {
		n += (size_t)snprintf(out + n, outlen - n, "%sretry after %" JSON_INTEGER_FORMAT " s", sep,
		                      json_integer_value(retry));
		sep = "; ";
	}
	if (rid && n < outlen) {
		clean_copy(r, sizeof r, rid);
		n += (size_t)snprintf(out + n, outlen - n, "%srequest %s", sep, r);
		sep = "; ";
	}
	if (sep[0] == ';' && n < outlen)
		snprintf(out + n, outlen - n, ")");
}

/* ---- the handle ---- */

/* http:// or https://, a host, no credentials, no query or fragment, no
 * space or control character. */
static int url_ok(const char *u, char *err, size_t errlen)
{
	const char *auth;
	if (!strncasecmp(u, "http://", 7))
		auth = u + 7;
	else if (!strncasecmp(u, "https://", 8))
		auth = u + 8;
	else {
		snprintf(err, errlen, "the control-plane URL must start with http:// or https://");
		return -1;
	}
	size_t alen = strcspn(auth, "/");
	if (alen == 0) {
		snprintf(err, errlen, "the control-plane URL has no host");
		return -1;
	}
	if (memchr(auth, '@', alen)) {
		snprintf(err, errlen, "the control-plane URL must not carry credentials (give the token with --token)");
		return -1;
	}
	for (const unsigned char *p = (const unsigned char *)u; *p; p++)
		if (*p <= 0x20 || *p == 0x7f || *p == '?' || *p == '#') {
			snprintf(err, errlen, "the control-plane URL holds a space, a control character, a query or a "
			         "fragment");
			return -1;
		}
	if (strlen(u) >= BASE_MAX) {
		snprintf(err, errlen, "the control-plane URL is too long");
		return -1;
	}
	return 0;
}

static struct curl_slist *add_header(struct curl_slist *list, const char *line, int *failed)
{
	struct curl_slist *l = curl_slist_append(list, line);
	if (!l)
		*failed = 1;
	return l ? l : list;
}

/* Wipes every header line (one holds the credential), then frees them. */
static void wipe_headers(struct curl_slist *list)
{
	for (struct curl_slist *l = list; l; l = l->next)
		if (l->data)
			explicit_bzero(l->data, strlen(l->data));
	curl_slist_free_all(list);
}

struct api *api_new(const struct api_settings *s, char *err, size_t errlen)
{
	char auth[TOKEN_MAX + 64];
	int failed = 0;
	struct api *a = NULL;

	if (url_ok(s->url, err, errlen) != 0)
		return NULL;
	if (s->token) {
		size_t n = strlen(s->token);
		int bad = n == 0 || n > TOKEN_MAX;
		for (size_t i = 0; !bad && i < n; i++)
			bad = (unsigned char)s->token[i] <= 0x20 || (unsigned char)s->token[i] >= 0x7f;
		if (bad) {
			snprintf(err, errlen, "the token must be 1 to %d visible ASCII characters (no space)", TOKEN_MAX);
			return NULL;
		}
	}
	if (s->cacert && access(s->cacert, R_OK) != 0) {
		snprintf(err, errlen, "the CA file %s cannot be read: %s", s->cacert, strerror(errno));
		return NULL;
	}
	if (s->timeout_s < 1 || s->timeout_s > 86400) {
		snprintf(err, errlen, "the timeout must be 1 to 86400 seconds");
		return NULL;
	}
	if (!(a = calloc(1, sizeof *a)) || !(a->easy = curl_easy_init()) ||
	    (s->cacert && !(a->cacert = strdup(s->cacert))))
		goto oom;
	snprintf(a->base, sizeof a->base, "%s", s->url);
	a->timeout_ms = s->timeout_s * 1000;
	a->connect_ms = s->timeout_s < API_CONNECT_TIMEOUT_MAX_S ? a->timeout_ms : API_CONNECT_TIMEOUT_MAX_S * 1000L;
	a->hdr_get = add_header(a->hdr_get, "Accept: application/json, application/problem+json", &failed);
	a->hdr_body = add_header(a->hdr_body, "Accept: application/json, application/problem+json", &failed);
	a->hdr_body = add_header(a->hdr_body, "Content-Type: application/json", &failed);
	if (s->token) {
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", s->token);
		a->hdr_get = add_header(a->hdr_get, auth, &failed);
		a->hdr_body = add_header(a->hdr_body, auth, &failed);
		explicit_bzero(auth, sizeof auth);
	}
	if (failed)
		goto oom;
	return a;
oom:
	snprintf(err, errlen, "out of memory");
	api_free(a);
	return NULL;
}

void api_free(struct api *a)
{
	if (!a)
		return;
	curl_easy_cleanup(a->easy);
	wipe_headers(a->hdr_get);
	wipe_headers(a->hdr_body);
	free(a->cacert);
	buf_free(&a->answer);
	free(a);
}

void api_answer_free(struct api_answer *ans)
{
	free(ans->body);
	json_decref(ans->json);
	memset(ans, 0, sizeof *ans);
}

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
	struct api *a = ctx;
	size_t len = size * n;
	if (a->answer.len + len > API_MAX_ANSWER) {
		a->too_large = 1;
		return 0; /* aborts the transfer */
	}
	buf_append(&a->answer, data, len);
	return a->answer.failed ? 0 : len;
}

int api_call(struct api *a, const char *method, const char *path, const json_t *body, struct api_answer *ans)
{
	char url[sizeof a->base + API_PATH_MAX], line[1024], ctype[128] = "";
	char *text = NULL;
	int ret = API_FAILED;
	json_t *doc = NULL;
	struct jsonx_err jerr;
	long status = 0;

	memset(ans, 0, sizeof *ans);
	buf_free(&a->answer);
	a->too_large = 0;
	a->errbuf[0] = '\0';
	if (url_join(url, sizeof url, a->base, path) != 0) {
		fprintf(stderr, "celltrail: %s %s: the URL is too long\n", method, path);
		return API_USAGE;
	}
	if (body && !(text = json_dumps(body, JSON_COMPACT))) {
		fprintf(stderr, "celltrail: out of memory\n");
		return API_FAILED;
	}
	/* Options from scratch each call; the connection stays open. */
	curl_easy_reset(a->easy);
	curl_easy_setopt(a->easy, CURLOPT_URL, url);
	curl_easy_setopt(a->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(a->easy, CURLOPT_USERAGENT, USER_AGENT);
	curl_easy_setopt(a->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(a->easy, CURLOPT_CONNECTTIMEOUT_MS, a->connect_ms);
	curl_easy_setopt(a->easy, CURLOPT_TIMEOUT_MS, a->timeout_ms);
	curl_easy_setopt(a->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(a->easy, CURLOPT_WRITEDATA, a);
	curl_easy_setopt(a->easy, CURLOPT_ERRORBUFFER, a->errbuf);
	curl_easy_setopt(a->easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)API_MAX_ANSWER);
	curl_easy_setopt(a->easy, CURLOPT_HTTPHEADER, text ? a->hdr_body : a->hdr_get);
	if (a->cacert)
		curl_easy_setopt(a->easy, CURLOPT_CAINFO, a->cacert);
	if (text) {
		curl_easy_setopt(a->easy, CURLOPT_POSTFIELDS, text);
		curl_easy_setopt(a->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(text));
	}
	if (strcmp(method, "GET") && strcmp(method, "POST"))
		curl_easy_setopt(a->easy, CURLOPT_CUSTOMREQUEST, method);
	else if (!strcmp(method, "POST") && !text)
		curl_easy_setopt(a->easy, CURLOPT_POSTFIELDS, "");

	CURLcode rc = curl_easy_perform(a->easy);
	if (rc != CURLE_OK) {
		if (a->too_large || rc == CURLE_FILESIZE_EXCEEDED)
			fprintf(stderr, "celltrail: %s %s: the answer exceeds %u bytes\n", method, path, API_MAX_ANSWER);
		else if (rc == CURLE_OPERATION_TIMEDOUT)
			fprintf(stderr, "celltrail: %s %s: no answer from %s within the timeout (%s)\n", method, path,
			        a->base, a->errbuf[0] ? a->errbuf : curl_easy_strerror(rc));
		else
			fprintf(stderr, "celltrail: %s %s: cannot reach %s: %s\n", method, path, a->base,
			        a->errbuf[0] ? a->errbuf : curl_easy_strerror(rc));
		goto out;
	}
	if (a->answer.failed) {
		fprintf(stderr, "celltrail: out of memory\n");
		goto out;
	}
	const char *ct = NULL;
	curl_easy_getinfo(a->easy, CURLINFO_RESPONSE_CODE, &status);
	if (curl_easy_getinfo(a->easy, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
		snprintf(ctype, sizeof ctype, "%s", ct);
	if (a->answer.len)
		doc = jsonx_parse(a->answer.p, a->answer.len, 64, &jerr);
	if (status >= 200 && status < 300) {
		if (a->answer.len && !doc) {
			fprintf(stderr, "celltrail: %s %s: HTTP %ld, but the answer is not JSON: %s\n", method, path, status,
			        jerr.msg);
			goto out;
		}
		ans->status = status;
		ans->len = a->answer.len;
		ans->body = buf_take(&a->answer);
		ans->json = doc;
		doc = NULL;
		if (!ans->body) {
			api_answer_free(ans);
			fprintf(stderr, "celltrail: out of memory\n");
			goto out;
		}
		ret = API_OK;
		goto out;
	}
	api_problem_line(line, sizeof line, status, doc, ctype);
	fprintf(stderr, "celltrail: %s %s: %s\n", method, path, line);
	ret = status >= 400 && status < 500 ? API_REFUSED : API_FAILED;
out:
	json_decref(doc);
	if (text) {
		/* A body may hold a password or a stream's secret. */
		explicit_bzero(text, strlen(text));
		free(text);
	}
	buf_free(&a->answer);
	return ret;
}
