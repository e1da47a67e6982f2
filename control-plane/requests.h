/* What each request body of the control plane may contain: the struct a
 * body is unpacked into and its field table (common/jsonx.h), one pair per
 * route that takes a JSON body, with the bounds that keep values sane.
 *
 * Handlers parse with these tables (cp_parse_body) and then check names,
 * references and state; the fuzz target of tests/fuzz/ links this file, so
 * it is fuzzed with exactly the tables the service uses. Depends only on
 * common/jsonx.h and password.h, never on the service. Strings and arrays
 * unpacked through a table are borrowed from the parsed body. */
#ifndef CP_REQUESTS_H
#define CP_REQUESTS_H

#include <stdint.h>

#include "jsonx.h"
#include "password.h"

/* POST /v1/tenants, PATCH /v1/tenants/{id} (tenants.c). */
struct tenant_in {
	const char *name, *slug, *region, *plan, *status, *cell;
};
extern const struct jsonx_field cpreq_tenant_create[];
/* region is listed so that trying to change it gets a 409 that says why,
 * not a 400 about an unknown field. */
extern const struct jsonx_field cpreq_tenant_update[];

/* POST /v1/tenants/{id}/users, POST /v1/admins, PATCH /v1/tenants/{id}/users/{user_id} (users.c). */
struct user_in {
	const char *email, *role, *password;
};
extern const struct jsonx_field cpreq_user_create[];
extern const struct jsonx_field cpreq_admin_create[];
extern const struct jsonx_field cpreq_user_update[];

/* POST /v1/tenants/{id}/api-keys (api_keys.c). */
struct key_in {
	const char *name, *expires_at;
	json_t *scopes;
};
extern const struct jsonx_field cpreq_key_create[];

/* POST /v1/regions, PATCH /v1/regions/{name} (regions.c). */
struct region_in {
	const char *name, *display_name, *endpoint, *status;
	json_t *cloud_regions;
	int64_t wave;
	/* NULL when not given; stream_key may be a JSON null (no key). */
	json_t *stream_hosts, *stream_s3_regions, *stream_key;
};
extern const struct jsonx_field cpreq_region_create[];
extern const struct jsonx_field cpreq_region_update[];

/* POST /v1/tenants/{id}/streams, PATCH /v1/tenants/{id}/streams/{stream}
 * (streams.c): every field of every kind; which belong to which kind is
 * checked there. Lengths: a URL as residency.h allows (2048), the
 * secrets as streams.c's formats allow. PATCH has neither since nor
 * paused (pause, resume and replay are routes of their own). */
struct stream_in {
	const char *kind, *url, *secret, *token, *endpoint, *bucket, *region, *access_key_id,
		*secret_access_key, *prefix, *since;
	int paused;
};
extern const struct jsonx_field cpreq_stream_create[];
extern const struct jsonx_field cpreq_stream_update[];
/* POST /v1/tenants/{id}/streams/{stream}/replay. */
extern const struct jsonx_field cpreq_stream_replay[];

/* POST /v1/regions/{region}/cells, PATCH /v1/regions/{region}/cells/{cell} (cells.c). */
struct cell_in {
	const char *name, *kind, *tenant_id, *status;
};
extern const struct jsonx_field cpreq_cell_create[];
extern const struct jsonx_field cpreq_cell_update[];

/* Bounds that keep every amount within bigint: at most 1e13 events per
 * tenant and month (billing.c checks that in SQL), at most 1e5 minor units
 * per 1,000 events, so an overage stays below 1e15 minor units and a total
 * far below 2^63. */
#define MAX_PRICE_PER_1000 INT64_C(100000)              /* 1e5 */
#define MAX_BASE_PRICE INT64_C(10000000000)             /* 1e10 */

/* POST /v1/plans, PATCH /v1/plans/{id} (billing.c). */
struct plan_in {
	const char *id, *name, *currency;
	int64_t n[7]; /* base_price, events_included, price_per_1000, rate_limit, burst, quota, retention */
};
extern const struct jsonx_field cpreq_plan_create[];
extern const struct jsonx_field cpreq_plan_update[];

/* POST /v1/usage: its format is common/usage_report.h's. */

/* POST /v1/auth/login (auth.c). */
struct login_req {
	const char *email;
	const char *password;
	const char *tenant;
};
extern const struct jsonx_field cpreq_login[];

/* POST /v1/regions/{region}/status, a data plane's report (region_config.c). */
struct status_in {
	const char *instance, *source, *last_pull_ok_at, *last_error, *cell;
	int64_t version;
	int stale;
};
extern const struct jsonx_field cpreq_region_status[];

/* POST /v1/tenants/{id}/moves, POST /v1/cells/{cell}/drain (moves.c). */
struct move_in {
	const char *to_cell, *to_region;
	int64_t erase_after_seconds, parallel;
};
#define MOVE_ERASE_AFTER_MAX INT64_C(31536000)
extern const struct jsonx_field cpreq_move_create[];
extern const struct jsonx_field cpreq_cell_drain[];

/* The mover's reports (moves.c): claim, progress, complete, erased. */
struct mover_in {
	const char *mover, *state, *error, *side, *source_digest, *target_digest;
	int64_t events_copied, lag_events, source_events, target_events, write_pause_ms;
	int64_t events_deleted, rows_deleted;
};
/* Counts of events stay far below 2^62. */
#define MOVE_COUNT_MAX (INT64_C(1) << 62)
extern const struct jsonx_field cpreq_move_claim[];
extern const struct jsonx_field cpreq_move_progress[];
extern const struct jsonx_field cpreq_move_complete[];
extern const struct jsonx_field cpreq_move_erased[];

#endif
