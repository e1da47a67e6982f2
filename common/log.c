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

void log_init(const char *service, enum log_level min_level)
{
	log_service = service;
	log_min = min_level;
}

int log_enabled(enum log_level lvl)
{
	return lvl >= log_min;
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
	if (req_id)
		json_object_set_new(line, "req_id", json_string(req_id));
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
