/* One audit-trail event: validation of what a client sends, and the form
 * it is stored and returned in. Pure functions, no I/O: unit-tested and
 * fuzzed on their own. */
#ifndef DP_EVENT_H
#define DP_EVENT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "jsonx.h"

#define DP_EVENT_ID_MAX 128
#define DP_EVENT_ACTION_MAX 128        /* characters (code points) */
#define DP_EVENT_REF_ID_MAX 256        /* actor.id, targets[i].id, bytes */
#define DP_EVENT_REF_TYPE_MAX 64
#define DP_EVENT_PART_MAX 4096         /* actor, each target, context: serialized bytes */
#define DP_EVENT_METADATA_MAX 8192
#define DP_EVENT_TARGETS_MAX 64
#define DP_EVENT_USER_AGENT_MAX 1024
#define DP_EVENT_FUTURE_US (INT64_C(5) * 60 * 1000000)   /* occurred_at may lead the clock by 5 min */
#define DP_BATCH_MAX 1000

struct dp_event {
	char id[DP_EVENT_ID_MAX + 1];
	int id_given;                  /* the client named it: retries are checked */
	int64_t occurred_us;
	const char *action;            /* borrowed from the parsed request */
	const char *actor_id;          /* borrowed */
	const json_t *targets;         /* borrowed array; NULL when absent */
	unsigned char sha256[32];      /* of the event as the client sent it */
	char *body;                    /* the stored form (malloc'd JSON text) */
	size_t body_len;
};

/* 1 when `id` is 1..128 characters of [A-Za-z0-9._:-]. */
int dp_event_id_valid(const char *id);
/* 1 when `id` names a route under /v1/events/ ("feed", "export"): an
 * event stored under it could not be read back by its id, so a client may
 * not choose it. */
int dp_event_id_reserved(const char *id);

enum dp_event_parse_result {
	DP_EVENT_OK,
	DP_EVENT_INVALID,      /* the client's mistake, described in `err` */
	DP_EVENT_NO_MEMORY,    /* memory or randomness ran out */
};

/* Validates `in` (one event as sent) and fills `ev`. `received_us` is the
 * time of receipt (also the default occurred_at); `oldest_us` the oldest
 * occurred_at accepted (the plan's retention). `prefix` is prepended to the
 * field named in `err` ("events[3]." or ""). On DP_EVENT_OK the caller
 * frees with dp_event_clear(); `in` must outlive `ev`. */
enum dp_event_parse_result dp_event_parse(const json_t *in, int64_t received_us, int64_t oldest_us,
                                          const char *prefix, struct dp_event *ev,
                                          struct jsonx_err *err) __attribute__((warn_unused_result));
void dp_event_clear(struct dp_event *ev);

/* The faults of a refused request, gathered so that one answer names every
 * invalid member of a batch: the first in full, then up to
 * DP_EVENT_ERRORS_MAX as {field, detail}, and how many there were. Each
 * invalid event contributes the first fault dp_event_parse() finds in it
 * (an event fixed may then show another). Zero-initialize; finish with
 * dp_event_errors_extra() or dp_event_errors_clear(). */
#define DP_EVENT_ERRORS_MAX 100
struct dp_event_errors {
	json_t *list;                  /* array of {field, detail}; NULL until the first */
	size_t total;                  /* faults found, listed or not */
	struct jsonx_err first;
	int no_memory;                 /* a fault could not be listed */
};
void dp_event_errors_add(struct dp_event_errors *e, const struct jsonx_err *err);
/* The members the problem document adds for `e` (a new reference):
 * `field` (the first's, when it names one in UTF-8), `errors`,
 * `errors_total` and `errors_truncated` (total > DP_EVENT_ERRORS_MAX).
 * Takes e->list; NULL only without memory. */
json_t *dp_event_errors_extra(struct dp_event_errors *e);
void dp_event_errors_clear(struct dp_event_errors *e);

/* Fills `out` with a random server id "ev_" + 32 lowercase hex; -1 when
 * the random source fails. */
int dp_event_new_id(char out[DP_EVENT_ID_MAX + 1]);

#endif
