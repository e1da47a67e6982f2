/* Environment configuration: parse, validate, print. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int parse_long(const char *s, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || isspace((unsigned char)*s))
		return -1;
	*out = v;
	return 0;
}

static int parse_duration(const char *s, int64_t *ms)
{
	static const struct { const char *unit; int64_t mult; } units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
		{ "d", 86400000 }, { "", 1000 }, /* a bare number is seconds */
	};
	char *end;
	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || v < 0)
		return -1;
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (strcmp(end, units[i].unit) == 0) {
			if (v > INT64_MAX / units[i].mult)
				return -1;
			*ms = v * units[i].mult;
			return 0;
		}
	}
	return -1;
}

static int parse_addr(const char *s, struct cfg_addr *a)
{
	const char *colon, *host = s;
	size_t hlen;
	long port;

	if (*s == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':')
			return -1;
		host = s + 1;
		hlen = (size_t)(close - host);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -1;
		hlen = (size_t)(colon - s);
		if (memchr(s, ':', hlen))
			return -1; /* unbracketed IPv6 */
	}
	if (hlen >= sizeof a->host)
		return -1;
	if (parse_long(colon + 1, &port) || port < 0 || port > 65535)
		return -1;
	for (size_t i = 0; i < hlen; i++) {
		unsigned char c = (unsigned char)host[i];
		if (!isalnum(c) && c != '.' && c != '-' && c != ':')
			return -1;
	}
	memcpy(a->host, host, hlen);
	a->host[hlen] = '\0';
	if (hlen == 0)
		strcpy(a->host, "0.0.0.0");
	a->port = (uint16_t)port;
	return 0;
}

int cfg_parse_value(const struct cfg_var *v, const char *text, void *dst, char *err, size_t errlen)
{
	switch (v->type) {
	case CFG_STR:
	case CFG_SECRET:
		*(const char **)dst = text;
		return 0;
	case CFG_INT: {
		long n;
		if (parse_long(text, &n)) {
			snprintf(err, errlen, "not an integer");
			return -1;
		}
		if (n < v->min || n > v->max) {
			snprintf(err, errlen, "%ld is out of range [%ld, %ld]", n, v->min, v->max);
			return -1;
		}
		*(long *)dst = n;
		return 0;
	}
	case CFG_BOOL: {
		static const char *const yes[] = { "1", "true", "yes", "on" };
		static const char *const no[] = { "0", "false", "no", "off" };
		for (size_t i = 0; i < 4; i++) {
			if (strcasecmp(text, yes[i]) == 0) { *(int *)dst = 1; return 0; }
			if (strcasecmp(text, no[i]) == 0) { *(int *)dst = 0; return 0; }
		}
		snprintf(err, errlen, "not a boolean (use true or false)");
		return -1;
	}
	case CFG_DURATION: {
		int64_t ms;
		if (parse_duration(text, &ms)) {
			snprintf(err, errlen, "not a duration (examples: 250ms, 30s, 5m, 2h, 7d)");
			return -1;
		}
		if (ms < v->min || ms > v->max) {
			snprintf(err, errlen, "%" PRId64 "ms is out of range [%ldms, %ldms]", ms, v->min, v->max);
			return -1;
		}
		*(int64_t *)dst = ms;
		return 0;
	}
	case CFG_ADDR:
		if (parse_addr(text, (struct cfg_addr *)dst)) {
			snprintf(err, errlen, "not an address (expected host:port, e.g. 127.0.0.1:8080)");
			return -1;
		}
		return 0;
	case CFG_ENUM:
		for (int i = 0; v->choices[i]; i++) {
			if (strcmp(text, v->choices[i]) == 0) {
				*(int *)dst = i;
				return 0;
			}
		}
		{
			size_t off = (size_t)snprintf(err, errlen, "must be one of:");
			for (int i = 0; v->choices[i] && off < errlen; i++)
				off += (size_t)snprintf(err + off, errlen - off, " %s", v->choices[i]);
		}
		return -1;
	}
	snprintf(err, errlen, "unknown type");
	return -1;
}

int cfg_load(const struct cfg_var *tab, void *dst, char *err, size_t errlen)
{
	for (const struct cfg_var *v = tab; v->name; v++) {
		const char *text = getenv(v->name);
		char why[200];

		if (text && !*text)
			text = NULL; /* an empty variable counts as unset */
		if (!text)
			text = v->def;
		if (!text) {
			if (v->required) {
				snprintf(err, errlen, "%s: required but not set", v->name);
				return -1;
			}
			if (v->type == CFG_STR || v->type == CFG_SECRET)
				*(const char **)((char *)dst + v->offset) = NULL;
			continue;
		}
		if (cfg_parse_value(v, text, (char *)dst + v->offset, why, sizeof why)) {
			snprintf(err, errlen, "%s: %s", v->name, why);
			return -1;
		}
	}
	return 0;
}

void cfg_addr_format(const struct cfg_addr *a, char *buf, size_t len)
{
	if (strchr(a->host, ':'))
		snprintf(buf, len, "[%s]:%u", a->host, a->port);
	else
		snprintf(buf, len, "%s:%u", a->host, a->port);
}

static const char *type_name(enum cfg_type t)
{
	switch (t) {
	case CFG_STR: return "string";
	case CFG_SECRET: return "secret";
	case CFG_INT: return "integer";
	case CFG_BOOL: return "boolean";
	case CFG_DURATION: return "duration";
	case CFG_ADDR: return "host:port";
	case CFG_ENUM: return "enum";
	}
	return "?";
}

void cfg_print_help(FILE *out, const char *usage, const struct cfg_var *tab)
{
	fprintf(out, "%s\n\nConfiguration (environment variables):\n\n", usage);
	fprintf(out, "  %-28s %-10s %-24s %s\n", "VARIABLE", "TYPE", "DEFAULT", "MEANING");
	for (const struct cfg_var *v = tab; v->name; v++) {
		const char *def = v->def ? v->def : (v->required ? "(required)" : "(unset)");
		if (v->type == CFG_SECRET && v->def)
			def = "(hidden)";
		fprintf(out, "  %-28s %-10s %-24s %s", v->name, type_name(v->type), def, v->help);
		if (v->type == CFG_ENUM) {
			fprintf(out, " One of:");
			for (int i = 0; v->choices[i]; i++)
				fprintf(out, " %s", v->choices[i]);
			fprintf(out, ".");
		}
		if (v->type == CFG_INT)
			fprintf(out, " Range %ld..%ld.", v->min, v->max);
		fputc('\n', out);
	}
}
