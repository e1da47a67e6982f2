/* Structured logging: JSON lines on stderr, one write(2) per line so that
 * lines from concurrent threads never interleave. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *const log_level_names[] = { "debug", "info", "warn", "error", NULL };

static const char *log_service = "celltrail";
static enum log_level log_min = LOG_INFO;
static _Atomic int64_t log_repeat_ms = LOG_REPEAT_INTERVAL_DEFAULT_MS;
static _Thread_local struct log_ctx log_cur;

void log_init(const char *service, enum log_level min_level)
{
	log_service = service;
	log_min = min_level;
}

int log_enabled(enum log_level lvl)
{
	return lvl >= log_min;
}

struct log_ctx log_ctx_set(struct log_ctx ctx)
{
	struct log_ctx prev = log_cur;
	log_cur = ctx;
	return prev;
}

struct log_ctx log_ctx_get(void)
{
	return log_cur;
}

void log_set_task(const char *task)
{
	log_cur = (struct log_ctx){ .task = task };
}

static void ctx_member(json_t *line, const char *name, const char *value)
{
	if (value && *value)
		json_object_set_new(line, name, json_string(value));
}

/* Length of the valid UTF-8 sequence at s (1 to 4), or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s)
{
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xC2 && s[0] <= 0xDF)
		return (s[1] & 0xC0) == 0x80 ? 2 : 0;
	if (s[0] >= 0xE0 && s[0] <= 0xEF) {
		if ((s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
			return 0;
		if ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] > 0x9F))
			return 0; /* overlong, or a UTF-16 surrogate */
		return 3;
	}
	if (s[0] >= 0xF0 && s[0] <= 0xF4) {
		if ((s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
			return 0;
		if ((s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] > 0x8F))
			return 0;
		return 4;
	}
	return 0;
}

size_t log_json_escape(const char *str, char *out, size_t outlen)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t o = 0;
	if (!outlen)
		return 0;
	while (*s) {
		char tmp[8];
		const char *piece = tmp;
		size_t n, adv = 1;
		if (*s == '"' || *s == '\\') {
			tmp[0] = '\\';
			tmp[1] = (char)*s;
			n = 2;
		} else if (*s < 0x20 || *s == 0x7f) {
			n = (size_t)snprintf(tmp, sizeof tmp, "\\u%04x", *s);
		} else if ((adv = utf8_len(s)) == 0) {
			piece = "\\ufffd";
			n = 6;
			adv = 1;
		} else {
			piece = (const char *)s;
			n = adv;
		}
		if (o + n >= outlen)
			break; /* cut before a whole character, never inside one */
		memcpy(out + o, piece, n);
		o += n;
		s += adv;
	}
	out[o] = '\0';
	return o;
}

void log_request(enum log_level lvl, const char *req_id, const char *method, const char *path,
                 unsigned status, double duration_ms, int terminated, const char *tenant,
                 const char *key_id)
{
	char ts[64], m[64], p[2048], term[32] = "", who[200] = "", line[2800];
	struct timespec now;
	struct tm tm;

	if (lvl < log_min)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	         (int)(now.tv_nsec / 1000000) % 1000);
	log_json_escape(method, m, sizeof m);
	log_json_escape(path, p, sizeof p);
	if (terminated >= 0)
		snprintf(term, sizeof term, ",\"terminated\":%d", terminated);
	if (tenant || key_id) {
		char t[80] = "", k[80] = "";
		if (tenant)
			log_json_escape(tenant, t, sizeof t);
		if (key_id)
			log_json_escape(key_id, k, sizeof k);
		snprintf(who, sizeof who, "%s%s%s%s%s%s", tenant ? ",\"tenant\":\"" : "", t, tenant ? "\"" : "",
		         key_id ? ",\"key_id\":\"" : "", k, key_id ? "\"" : "");
	}
	int n = snprintf(line, sizeof line,
	                 "{\"ts\":\"%s\",\"level\":\"%s\",\"svc\":\"%s\",\"msg\":\"request\","
	                 "\"req_id\":\"%s\",\"method\":\"%s\",\"path\":\"%s\",\"status\":%u,"
	                 "\"duration_ms\":%.3f%s%s}\n",
	                 ts, log_level_names[lvl], log_service, req_id, m, p, status, duration_ms, term, who);
	if (n > 0) {
		ssize_t w = write(STDERR_FILENO, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
		(void)w;
	}
}

void log_write(enum log_level lvl, const char *req_id, json_t *fields, const char *fmt, ...)
{
	char msg[1024], ts[64];
	struct timespec now;
	struct tm tm;
	va_list ap;
	json_t *line;
	char *text;

	if (lvl < log_min) {
		json_decref(fields);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	         (int)(now.tv_nsec / 1000000) % 1000);

	line = json_object();
	json_object_set_new(line, "ts", json_string(ts));
	json_object_set_new(line, "level", json_string(log_level_names[lvl]));
	json_object_set_new(line, "svc", json_string(log_service));
	/* The message may hold bytes that are not UTF-8 (a hostile path, say):
	 * json_stringn_nocheck would emit them raw, so replace such messages. */
	json_t *m = json_string(msg);
	json_object_set_new(line, "msg", m ? m : json_string("(message not valid UTF-8)"));
	/* The request named explicitly, or else the thread's; its tenant and
	 * key only when it is the thread's request. */
	int own = !req_id || (log_cur.req_id && !strcmp(req_id, log_cur.req_id));
	ctx_member(line, "req_id", req_id ? req_id : log_cur.req_id);
	if (own) {
		ctx_member(line, "tenant", log_cur.tenant);
		ctx_member(line, "key_id", log_cur.key_id);
	}
	ctx_member(line, "task", log_cur.task);
	if (fields && json_is_object(fields))
		json_object_update(line, fields);
	json_decref(fields);

	text = json_dumps(line, JSON_COMPACT | JSON_REAL_PRECISION(6));
	json_decref(line);
	if (!text)
		return;
	size_t n = strlen(text);
	text[n] = '\n'; /* overwrite the NUL: write() takes the length */
	ssize_t w = write(STDERR_FILENO, text, n + 1);
	(void)w;
	free(text);
}

void log_set_repeat_interval(int64_t ms)
{
	atomic_store(&log_repeat_ms, ms > 0 ? ms : 0);
}

int64_t log_limit_take(struct log_limit *l, int64_t now_ms, int64_t interval_ms)
{
	int64_t next = atomic_load(&l->next_ms);
	/* One thread wins the interval; the others count themselves out. A
	 * count added just after the winner took it goes to the next line. */
	if (now_ms >= next && atomic_compare_exchange_strong(&l->next_ms, &next, now_ms + interval_ms))
		return (int64_t)atomic_exchange(&l->suppressed, 0);
	atomic_fetch_add(&l->suppressed, 1);
	return -1;
}

void log_write_limited(struct log_limit *l, enum log_level lvl, const char *req_id, json_t *fields,
                       const char *fmt, ...)
{
	char msg[1024];
	struct timespec now;
	va_list ap;

	if (lvl < log_min) {
		json_decref(fields);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	int64_t n = log_limit_take(l, (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000,
	                           atomic_load(&log_repeat_ms));
	if (n < 0) {
		json_decref(fields);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (!json_is_object(fields)) {
		json_decref(fields);
		fields = json_object();
	}
	json_object_set_new(fields, "suppressed", json_integer((json_int_t)n));
	log_write(lvl, req_id, fields, "%s", msg);
}
