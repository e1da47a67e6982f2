/* Event validation. A client's event is checked member by member against
 * the contract (the first fault is reported with its field), then written
 * in its stored form, in a fixed member order:
 *   {"id","occurred_at","received_at","action","actor","targets","context","metadata"}
 * The content hash covers the members as the client sent them (keys
 * sorted, occurred_at normalized), so that a retry matches its original
 * whatever the key order or time zone it was written with. */
#include "event.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "secret.h"
#include "timefmt.h"

static enum dp_event_parse_result field_error(struct jsonx_err *err, const char *prefix,
                                              const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static enum dp_event_parse_result field_error(struct jsonx_err *err, const char *prefix,
                                              const char *field, const char *fmt, ...)
{
	va_list ap;
	int full = snprintf(err->field, sizeof err->field, "%s%s", prefix, field);
	/* A long member name is cut on a UTF-8 boundary: the field goes into JSON. */
	if (full >= (int)sizeof err->field) {
		size_t n = sizeof err->field - 1, plen = strlen(prefix);
		while (n > plen && ((unsigned char)field[n - plen] & 0xc0) == 0x80)
			n--;
		err->field[n] = '\0';
	}
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	return DP_EVENT_INVALID;
}

int dp_event_id_valid(const char *id)
{
	size_t n = id ? strlen(id) : 0;
	if (n == 0 || n > DP_EVENT_ID_MAX)
		return 0;
	return strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-") == n;
}

int dp_event_id_reserved(const char *id)
{
	return !strcmp(id, "feed") || !strcmp(id, "export");
}

int dp_event_new_id(char out[DP_EVENT_ID_MAX + 1])
{
	unsigned char r[16];
	if (secret_random(r, sizeof r) != 0)
		return -1;
	memcpy(out, "ev_", 3);
	secret_hex(r, sizeof r, out + 3);
	return 0;
}

/* Code points of valid UTF-8 (jansson has checked it); -1 on a control
 * character. */
static long text_chars(const char *s)
{
	long n = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return -1;
		if ((*p & 0xc0) != 0x80)
			n++;
	}
	return n;
}

static size_t dumped_size(const json_t *v)
{
	return json_dumpb(v, NULL, 0, JSON_COMPACT);
}

/* A string member of `obj` of 1..max bytes; required or not. Returns 0
 * with *out (NULL when absent and optional) or -1. */
static enum dp_event_parse_result str_member(const json_t *obj, const char *name, size_t max,
                                             int required, const char *prefix, const char *path,
                                             const char **out, struct jsonx_err *err)
{
	char field[96];
	const json_t *v = json_object_get(obj, name);
	snprintf(field, sizeof field, "%s%s", path, name);
	*out = NULL;
	if (!v) {
		if (required)
			return field_error(err, prefix, field, "%s is required.", field);
		return DP_EVENT_OK;
	}
	if (!json_is_string(v))
		return field_error(err, prefix, field, "%s must be a string.", field);
	size_t n = json_string_length(v);
	if (n == 0 || n > max)
		return field_error(err, prefix, field, "%s must be 1 to %zu bytes long.", field, max);
	if (strlen(json_string_value(v)) != n)
		return field_error(err, prefix, field, "%s must not contain NUL characters.", field);
	*out = json_string_value(v);
	return DP_EVENT_OK;
}

/* actor and each target: an object with id and type, other members kept. */
static enum dp_event_parse_result check_ref(const json_t *v, const char *prefix, const char *path,
                                            struct jsonx_err *err, const char **id)
{
	const char *type;
	char p[64];
	snprintf(p, sizeof p, "%s.", path);
	if (!json_is_object(v))
		return field_error(err, prefix, path, "%s must be an object with id and type.", path);
	if (str_member(v, "id", DP_EVENT_REF_ID_MAX, 1, prefix, p, id, err) ||
	    str_member(v, "type", DP_EVENT_REF_TYPE_MAX, 1, prefix, p, &type, err))
		return DP_EVENT_INVALID;
	if (dumped_size(v) > DP_EVENT_PART_MAX)
		return field_error(err, prefix, path, "%s must be at most %d bytes as JSON.", path, DP_EVENT_PART_MAX);
	return DP_EVENT_OK;
}

static enum dp_event_parse_result check_context(const json_t *v, const char *prefix,
                                                struct jsonx_err *err)
{
	const char *ip, *ua;
	if (!json_is_object(v))
		return field_error(err, prefix, "context", "context must be an object.");
	if (str_member(v, "ip", 45, 0, prefix, "context.", &ip, err) ||
	    str_member(v, "user_agent", DP_EVENT_USER_AGENT_MAX, 0, prefix, "context.", &ua, err))
		return DP_EVENT_INVALID;
	if (ip) {
		unsigned char a[16];
		if (inet_pton(AF_INET, ip, a) != 1 && inet_pton(AF_INET6, ip, a) != 1)
			return field_error(err, prefix, "context.ip", "context.ip must be an IPv4 or IPv6 address.");
	}
	if (dumped_size(v) > DP_EVENT_PART_MAX)
		return field_error(err, prefix, "context", "context must be at most %d bytes as JSON.", DP_EVENT_PART_MAX);
	return DP_EVENT_OK;
}

static const char *const known[] = { "id", "occurred_at", "action", "actor", "targets", "context",
	                                 "metadata", NULL };

enum dp_event_parse_result dp_event_parse(const json_t *in, int64_t received_us, int64_t oldest_us,
                                          const char *prefix, struct dp_event *ev, struct jsonx_err *err)
{
	const char *key, *id = NULL, *occurred = NULL;
	const json_t *v, *targets, *context, *metadata;
	char when[TIMEFMT_LEN], recv[TIMEFMT_LEN];

	memset(ev, 0, sizeof *ev);
	if (!json_is_object(in)) {
		snprintf(err->field, sizeof err->field, "%.*s", (int)(prefix[0] ? strlen(prefix) - 1 : 0), prefix);
		snprintf(err->msg, sizeof err->msg, "An event must be a JSON object.");
		return DP_EVENT_INVALID;
	}
	json_object_foreach((json_t *)in, key, v) {
		int ok = 0;
		for (int i = 0; known[i]; i++)
			ok |= !strcmp(key, known[i]);
		if (!ok)
			return field_error(err, prefix, key, "Unknown member; an event has id, occurred_at, action, "
			                              "actor, targets, context and metadata.");
	}
	if (str_member(in, "id", DP_EVENT_ID_MAX, 0, prefix, "", &id, err))
		return DP_EVENT_INVALID;
	if (id && dp_event_id_reserved(id))
		return field_error(err, prefix, "id", "id %s is reserved: GET /v1/events/%s is another route.", id, id);
	if (id && !dp_event_id_valid(id))
		return field_error(err, prefix, "id", "id must be 1 to 128 characters of A-Z a-z 0-9 . _ : -");
	if (str_member(in, "occurred_at", 40, 0, prefix, "", &occurred, err))
		return DP_EVENT_INVALID;
	ev->occurred_us = received_us;
	if (occurred) {
		if (timefmt_parse(occurred, &ev->occurred_us) != 0)
			return field_error(err, prefix, "occurred_at",
			            "occurred_at must be an RFC 3339 date-time with an offset, from 1970 on.");
		if (ev->occurred_us > received_us + DP_EVENT_FUTURE_US)
			return field_error(err, prefix, "occurred_at", "occurred_at is more than 5 minutes in the future.");
		if (ev->occurred_us < oldest_us)
			return field_error(err, prefix, "occurred_at",
			            "occurred_at is older than this tenant's retention period.");
	}
	if (str_member(in, "action", 4 * DP_EVENT_ACTION_MAX, 1, prefix, "", &ev->action, err))
		return DP_EVENT_INVALID;
	long chars = text_chars(ev->action);
	if (chars < 0 || chars > DP_EVENT_ACTION_MAX)
		return field_error(err, prefix, "action",
		            "action must be 1 to %d characters without control characters.", DP_EVENT_ACTION_MAX);
	if (!(v = json_object_get(in, "actor")))
		return field_error(err, prefix, "actor", "actor is required.");
	if (check_ref(v, prefix, "actor", err, &ev->actor_id))
		return DP_EVENT_INVALID;
	targets = json_object_get(in, "targets");
	if (targets) {
		if (!json_is_array(targets) || json_array_size(targets) > DP_EVENT_TARGETS_MAX)
			return field_error(err, prefix, "targets", "targets must be an array of at most %d objects.",
			            DP_EVENT_TARGETS_MAX);
		size_t i;
		json_array_foreach(targets, i, v) {
			char path[32];
			const char *tid;
			snprintf(path, sizeof path, "targets[%zu]", i);
			if (check_ref(v, prefix, path, err, &tid))
				return DP_EVENT_INVALID;
		}
	}
	ev->targets = targets;
	context = json_object_get(in, "context");
	if (context && check_context(context, prefix, err))
		return DP_EVENT_INVALID;
	metadata = json_object_get(in, "metadata");
	if (metadata) {
		if (!json_is_object(metadata))
			return field_error(err, prefix, "metadata", "metadata must be an object.");
		if (dumped_size(metadata) > DP_EVENT_METADATA_MAX)
			return field_error(err, prefix, "metadata", "metadata must be at most %d bytes as JSON.",
			            DP_EVENT_METADATA_MAX);
	}

	/* The content hash: the event as sent, occurred_at normalized. */
	json_t *canon = json_deep_copy(in);
	if (!canon)
		return DP_EVENT_NO_MEMORY;
	timefmt_format(ev->occurred_us, when);
	if (occurred)
		json_object_set_new(canon, "occurred_at", json_string(when));
	char *text = json_dumps(canon, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(canon);
	if (!text)
		return DP_EVENT_NO_MEMORY;
	secret_sha256(text, strlen(text), ev->sha256);
	free(text);

	ev->id_given = id != NULL;
	if (id)
		snprintf(ev->id, sizeof ev->id, "%s", id);
	else if (dp_event_new_id(ev->id) != 0)
		return DP_EVENT_NO_MEMORY;
	timefmt_format(received_us, recv);
	json_t *out = json_object();
	json_t *empty_arr = json_array(), *empty_obj = json_object(), *empty_obj2 = json_object();
	json_object_set_new(out, "id", json_string(ev->id));
	json_object_set_new(out, "occurred_at", json_string(when));
	json_object_set_new(out, "received_at", json_string(recv));
	json_object_set(out, "action", json_object_get(in, "action"));
	json_object_set(out, "actor", json_object_get(in, "actor"));
	json_object_set(out, "targets", targets ? (json_t *)targets : empty_arr);
	json_object_set(out, "context", context ? (json_t *)context : empty_obj);
	json_object_set(out, "metadata", metadata ? (json_t *)metadata : empty_obj2);
	json_decref(empty_arr);
	json_decref(empty_obj);
	json_decref(empty_obj2);
	ev->body = json_dumps(out, JSON_COMPACT);
	json_decref(out);
	if (!ev->body)
		return DP_EVENT_NO_MEMORY;
	ev->body_len = strlen(ev->body);
	return DP_EVENT_OK;
}

void dp_event_clear(struct dp_event *ev)
{
	free(ev->body);
	ev->body = NULL;
}

void dp_event_errors_add(struct dp_event_errors *e, const struct jsonx_err *err)
{
	if (e->total++ == 0)
		e->first = *err;
	if (e->total > DP_EVENT_ERRORS_MAX)
		return;
	if (!e->list && !(e->list = json_array())) {
		e->no_memory = 1;
		return;
	}
	/* A field cut inside a character is not a JSON string: it is then
	 * null rather than the answer a 500. */
	json_t *item = json_object(), *field = err->field[0] ? json_string(err->field) : NULL,
	       *detail = json_string(err->msg);
	if (!item || json_object_set_new(item, "field", field ? field : json_null()) != 0 ||
	    json_object_set_new(item, "detail", detail ? detail : json_string("(detail not valid UTF-8)")) != 0 ||
	    json_array_append_new(e->list, item) != 0)
		e->no_memory = 1;
}

json_t *dp_event_errors_extra(struct dp_event_errors *e)
{
	json_t *list = e->list ? e->list : json_array();
	e->list = NULL;
	if (!list || e->no_memory) {
		json_decref(list);
		return NULL;
	}
	json_t *o = json_pack("{so sI sb}", "errors", list, "errors_total", (json_int_t)e->total,
	                      "errors_truncated", e->total > DP_EVENT_ERRORS_MAX);
	json_t *field = e->first.field[0] ? json_string(e->first.field) : NULL;
	if (o && field && json_object_set_new(o, "field", field) != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

void dp_event_errors_clear(struct dp_event_errors *e)
{
	json_decref(e->list);
	e->list = NULL;
	e->total = 0;
	e->no_memory = 0;
}
