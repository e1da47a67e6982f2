/* Fuzz target: event validation (data-plane/event.c dp_event_parse) the
 * way POST /v1/events drives it (data-plane/ingest.c): the body through
 * jsonx_parse, then either one event or a batch {"events": [...]} of 1 to
 * DP_BATCH_MAX events, each with its "events[i]." prefix.
 *
 * Invariants, beyond the sanitizers:
 * - an accepted event's stored body is JSON that jsonx_parse takes back,
 *   with exactly the stored members in their fixed order, a valid id (the
 *   client's when it named one), occurred_at and received_at that parse
 *   back to the times used, and action, actor, targets, context and
 *   metadata equal to what was sent (or the empty defaults);
 * - the content hash ignores member order and the offset occurred_at was
 *   written with;
 * - a refusal names a field that is valid UTF-8 (it goes into the problem
 *   document) under the event's prefix, has a message, and holds no memory. */
#include "../../data-plane/event.h"
#include "fuzz_body.h"
#include "timefmt.h"

#define NOW INT64_C(1795660000000000) /* 2026-11-26T02:26:40Z */
#define DAY INT64_C(86400000000)
#define OLDEST (NOW - 30 * DAY)

static const char *const stored_members[] = { "id",    "occurred_at", "received_at", "action",
	                                          "actor", "targets",     "context",     "metadata" };

/* A deep copy whose objects list their members in reverse order. */
static json_t *reversed(const json_t *v)
{
	if (json_is_object(v)) {
		size_t n = json_object_size(v), i = 0;
		const char **keys = calloc(n ? n : 1, sizeof *keys);
		json_t *out = json_object(), *e;
		const char *k;
		CHECK(keys && out, "out of memory");
		json_object_foreach((json_t *)v, k, e)
			keys[i++] = k;
		while (i-- > 0)
			json_object_set_new(out, keys[i], reversed(json_object_get(v, keys[i])));
		free(keys);
		return out;
	}
	if (json_is_array(v)) {
		json_t *out = json_array(), *e;
		size_t i;
		json_array_foreach(v, i, e)
			json_array_append_new(out, reversed(e));
		return out;
	}
	return json_deep_copy(v);
}

/* Code points of `s`, or -1 on a control character. */
static long chars(const char *s)
{
	long n = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return -1;
		n += (*p & 0xc0) != 0x80;
	}
	return n;
}

static void check_member(const json_t *stored, const json_t *in, const char *name, json_t *dflt)
{
	const json_t *sent = json_object_get(in, name);
	CHECK(json_equal(json_object_get(stored, name), sent ? sent : dflt),
	      "stored %s differs from what was sent", name);
	json_decref(dflt);
}

static void check_accepted(const json_t *in, const char *prefix, const struct dp_event *ev)
{
	struct jsonx_err err;
	int64_t us;

	CHECK(ev->body && ev->body_len == strlen(ev->body), "no stored body, or a wrong length");
	json_t *st = jsonx_parse(ev->body, ev->body_len, 0, &err);
	CHECK(st && json_is_object(st), "stored body does not parse back: %s (%s)", err.msg, ev->body);

	/* Exactly the stored members, in their order. */
	size_t i = 0;
	const char *k;
	json_t *v;
	json_object_foreach(st, k, v) {
		CHECK(i < 8 && !strcmp(k, stored_members[i]), "stored member %zu is '%s'", i, k);
		i++;
	}
	CHECK(i == 8, "stored body has %zu members", i);

	/* id: valid; the client's when given, else a server one. */
	const json_t *sent_id = json_object_get(in, "id");
	CHECK(dp_event_id_valid(ev->id), "id '%s' is not valid", ev->id);
	CHECK(!strcmp(json_string_value(json_object_get(st, "id")), ev->id), "stored id differs");
	CHECK(ev->id_given == (sent_id != NULL), "id_given is %d", ev->id_given);
	if (sent_id)
		CHECK(!strcmp(json_string_value(sent_id), ev->id), "the client's id was not kept");
	else
		CHECK(strlen(ev->id) == 35 && !strncmp(ev->id, "ev_", 3), "server id '%s'", ev->id);

	/* Times parse back to what was used. */
	const char *occurred = json_string_value(json_object_get(st, "occurred_at"));
	CHECK(occurred && timefmt_parse(occurred, &us) == 0 && us == ev->occurred_us,
	      "stored occurred_at '%s' does not parse back to %lld", occurred ? occurred : "(none)",
	      (long long)ev->occurred_us);
	const json_t *sent_at = json_object_get(in, "occurred_at");
	if (sent_at) {
		int64_t sent_us;
		CHECK(timefmt_parse(json_string_value(sent_at), &sent_us) == 0 && sent_us == us,
		      "occurred_at '%s' was stored as '%s'", json_string_value(sent_at), occurred);
		CHECK(us >= OLDEST && us <= NOW + DP_EVENT_FUTURE_US, "occurred_at %lld out of bounds",
		      (long long)us);
	} else {
		CHECK(us == NOW, "default occurred_at is not the receipt time");
	}
	const char *received = json_string_value(json_object_get(st, "received_at"));
	CHECK(received && timefmt_parse(received, &us) == 0 && us == NOW, "received_at '%s'",
	      received ? received : "(none)");

	/* The client's members, as sent. */
	const char *action = json_string_value(json_object_get(in, "action"));
	CHECK(action && ev->action == action, "action is not borrowed from the request");
	long n = chars(action);
	CHECK(n >= 1 && n <= DP_EVENT_ACTION_MAX, "action of %ld characters accepted", n);
	const json_t *actor = json_object_get(in, "actor");
	CHECK(ev->actor_id && ev->actor_id == json_string_value(json_object_get(actor, "id")),
	      "actor_id is not actor.id");
	CHECK(ev->targets == json_object_get(in, "targets"), "targets is not borrowed");
	CHECK(json_array_size(ev->targets) <= DP_EVENT_TARGETS_MAX, "too many targets accepted");
	check_member(st, in, "action", NULL);
	check_member(st, in, "actor", NULL);
	check_member(st, in, "targets", json_array());
	check_member(st, in, "context", json_object());
	check_member(st, in, "metadata", json_object());
	json_decref(st);

	/* The content hash: the same event written in another member order,
	 * and with occurred_at already normalized, hashes alike. */
	json_t *again = reversed(in);
	if (sent_at) {
		char when[TIMEFMT_LEN];
		timefmt_format(ev->occurred_us, when);
		json_object_set_new(again, "occurred_at", json_string(when));
	}
	struct dp_event ev2;
	int rc = dp_event_parse(again, NOW, OLDEST, prefix, &ev2, &err);
	CHECK(rc == 0, "the reordered event is refused (%d): %s: %s", rc, err.field, err.msg);
	CHECK(!memcmp(ev->sha256, ev2.sha256, 32), "the hash depends on member order or offset");
	if (ev->id_given) {
		/* Same stored value (its objects keep the member order they came in). */
		json_t *a = json_loads(ev->body, 0, NULL), *b = json_loads(ev2.body, 0, NULL);
		CHECK(json_equal(a, b), "the stored value depends on member order or offset");
		json_decref(a);
		json_decref(b);
	}
	dp_event_clear(&ev2);
	json_decref(again);
}

static void check_refused(const char *prefix, const struct dp_event *ev, const struct jsonx_err *err)
{
	size_t plen = strlen(prefix);
	CHECK(ev->body == NULL, "a refused event holds a body");
	CHECK(err->msg[0] != '\0', "refused without a message");
	CHECK(fuzz_utf8(err->msg), "message is not UTF-8: %s", err->msg);
	CHECK(fuzz_utf8(err->field), "field is not UTF-8, so the problem document would lose it: %s",
	      err->field);
	if (plen)
		CHECK(!strncmp(err->field, prefix, plen - 1), "field '%s' is not under '%s'", err->field,
		      prefix);
}

/* Parses `in` as the event at `prefix`; 0 when accepted. */
static int one(const json_t *in, const char *prefix)
{
	struct dp_event ev;
	struct jsonx_err err;
	memset(&err, 0, sizeof err);
	int rc = dp_event_parse(in, NOW, OLDEST, prefix, &ev, &err);
	CHECK(rc == DP_EVENT_OK || rc == DP_EVENT_INVALID, "dp_event_parse returned %d", rc);
	if (rc == 0) {
		check_accepted(in, prefix, &ev);
		dp_event_clear(&ev);
	} else {
		check_refused(prefix, &ev, &err);
		/* Every refusal can be listed in a batch's answer. */
		struct dp_event_errors errs = { 0 };
		dp_event_errors_add(&errs, &err);
		json_t *x = dp_event_errors_extra(&errs);
		CHECK(x && json_array_size(json_object_get(x, "errors")) == 1, "a refusal cannot be listed");
		json_decref(x);
		dp_event_errors_clear(&errs);
	}
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *body = fuzz_body(data, size);
	if (!body)
		return 0;
	const json_t *list = json_object_get(body, "events");
	if (!list) {
		one(body, "");
	} else if (json_object_size(body) == 1 && json_is_array(list) && json_array_size(list) >= 1 &&
	           json_array_size(list) <= DP_BATCH_MAX) {
		for (size_t i = 0; i < json_array_size(list); i++) {
			char prefix[40];
			snprintf(prefix, sizeof prefix, "events[%zu].", i);
			if (one(json_array_get(list, i), prefix) != 0)
				break;
		}
	}
	json_decref(body);
	return 0;
}
