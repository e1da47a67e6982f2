/* The field tables of the control plane's request bodies (requests.h). */
#include <stddef.h>

#include "requests.h"

#define F(n) offsetof(struct tenant_in, n)
const struct jsonx_field cpreq_tenant_create[] = {
	{ "name", JX_STRING, 1, 0, 0, 200, F(name) },
	{ "slug", JX_STRING, 1, 0, 0, 63, F(slug) },
	{ "region", JX_STRING, 1, 0, 0, 32, F(region) },
	{ "plan", JX_STRING, 1, 0, 0, 32, F(plan) },
	{ "cell", JX_STRING, 0, 0, 0, 64, F(cell) },
	JSONX_END
};
const struct jsonx_field cpreq_tenant_update[] = {
	{ "name", JX_STRING, 0, 0, 0, 200, F(name) },
	{ "plan", JX_STRING, 0, 0, 0, 32, F(plan) },
	{ "status", JX_STRING, 0, 0, 0, 16, F(status) },
	{ "region", JX_STRING, 0, 0, 0, 32, F(region) },
	JSONX_END
};
#undef F

#define F(n) offsetof(struct user_in, n)
const struct jsonx_field cpreq_user_create[] = {
	{ "email", JX_STRING, 1, 0, 0, 254, F(email) },
	{ "role", JX_STRING, 1, 0, 0, 16, F(role) },
	{ "password", JX_STRING, 1, 0, 0, PASSWORD_MAX_LEN, F(password) },
	JSONX_END
};
const struct jsonx_field cpreq_admin_create[] = {
	{ "email", JX_STRING, 1, 0, 0, 254, F(email) },
	{ "password", JX_STRING, 1, 0, 0, PASSWORD_MAX_LEN, F(password) },
	JSONX_END
};
const struct jsonx_field cpreq_user_update[] = {
	{ "role", JX_STRING, 1, 0, 0, 16, F(role) },
	JSONX_END
};
#undef F

#define F(n) offsetof(struct key_in, n)
const struct jsonx_field cpreq_key_create[] = {
	{ "name", JX_STRING, 1, 0, 0, 100, F(name) },
	{ "scopes", JX_ARRAY, 1, 0, 0, 2, F(scopes) },
	{ "expires_at", JX_STRING, 0, 1, 0, 40, F(expires_at) },
	JSONX_END
};
#undef F

#define F(n) offsetof(struct region_in, n)
const struct jsonx_field cpreq_region_create[] = {
	{ "name", JX_STRING, 1, 0, 0, 32, F(name) },
	{ "display_name", JX_STRING, 1, 0, 0, 100, F(display_name) },
	{ "cloud_regions", JX_ARRAY, 1, 0, 0, 16, F(cloud_regions) },
	{ "endpoint", JX_STRING, 1, 0, 0, 200, F(endpoint) },
	{ "wave", JX_INT, 1, 0, 1, 100, F(wave) },
	{ "status", JX_STRING, 0, 0, 0, 16, F(status) },
	{ "stream_hosts", JX_ARRAY, 0, 0, 0, 64, F(stream_hosts) },
	{ "stream_s3_regions", JX_ARRAY, 0, 0, 0, 64, F(stream_s3_regions) },
	{ "stream_key", JX_ANY, 0, 0, 0, 0, F(stream_key) },
	JSONX_END
};
const struct jsonx_field cpreq_region_update[] = {
	{ "display_name", JX_STRING, 0, 0, 0, 100, F(display_name) },
	{ "cloud_regions", JX_ARRAY, 0, 0, 0, 16, F(cloud_regions) },
	{ "endpoint", JX_STRING, 0, 0, 0, 200, F(endpoint) },
	{ "wave", JX_INT, 0, 0, 1, 100, F(wave) },
	{ "status", JX_STRING, 0, 0, 0, 16, F(status) },
	{ "stream_hosts", JX_ARRAY, 0, 0, 0, 64, F(stream_hosts) },
	{ "stream_s3_regions", JX_ARRAY, 0, 0, 0, 64, F(stream_s3_regions) },
	{ "stream_key", JX_ANY, 0, 0, 0, 0, F(stream_key) },
	JSONX_END
};
#undef F

#define F(n) offsetof(struct stream_in, n)
/* The destination's fields: the same in both tables. */
#define STREAM_DEST                                                                     \
	{ "url", JX_STRING, 0, 0, 0, 2048, F(url) },                                       \
	{ "secret", JX_STRING, 0, 0, 0, 100, F(secret) },                                  \
	{ "token", JX_STRING, 0, 0, 0, 256, F(token) },                                    \
	{ "endpoint", JX_STRING, 0, 0, 0, 2048, F(endpoint) },                             \
	{ "bucket", JX_STRING, 0, 0, 0, 63, F(bucket) },                                   \
	{ "region", JX_STRING, 0, 0, 0, 32, F(region) },                                   \
	{ "access_key_id", JX_STRING, 0, 0, 0, 128, F(access_key_id) },                    \
	{ "secret_access_key", JX_STRING, 0, 0, 0, 256, F(secret_access_key) },            \
	{ "prefix", JX_STRING, 0, 1, 0, 256, F(prefix) }
const struct jsonx_field cpreq_stream_create[] = {
	{ "kind", JX_STRING, 1, 0, 0, 16, F(kind) },
	STREAM_DEST,
	{ "since", JX_STRING, 0, 1, 0, 40, F(since) },
	{ "paused", JX_BOOL, 0, 0, 0, 0, F(paused) },
	JSONX_END
};
const struct jsonx_field cpreq_stream_update[] = {
	{ "kind", JX_STRING, 0, 0, 0, 16, F(kind) },
	STREAM_DEST,
	JSONX_END
};
const struct jsonx_field cpreq_stream_replay[] = {
	{ "since", JX_STRING, 1, 0, 0, 40, F(since) },
	JSONX_END
};
#undef STREAM_DEST
#undef F

#define F(n) offsetof(struct cell_in, n)
const struct jsonx_field cpreq_cell_create[] = {
	{ "name", JX_STRING, 1, 0, 0, 64, F(name) },
	{ "kind", JX_STRING, 1, 0, 0, 16, F(kind) },
	{ "tenant_id", JX_STRING, 0, 1, 0, 36, F(tenant_id) },
	JSONX_END
};
const struct jsonx_field cpreq_cell_update[] = {
	{ "status", JX_STRING, 1, 0, 0, 16, F(status) },
	JSONX_END
};
#undef F

#define F(m) offsetof(struct plan_in, m)
#define N(i) (offsetof(struct plan_in, n) + (i) * sizeof(int64_t))
const struct jsonx_field cpreq_plan_create[] = {
	{ "id", JX_STRING, 1, 0, 0, 32, F(id) },
	{ "name", JX_STRING, 1, 0, 0, 100, F(name) },
	{ "currency", JX_STRING, 1, 0, 0, 3, F(currency) },
	{ "base_price", JX_INT, 1, 0, 0, MAX_BASE_PRICE, N(0) },
	{ "events_included", JX_INT, 1, 0, 0, INT64_C(1000000000000000), N(1) },
	{ "price_per_1000", JX_INT, 1, 0, 0, MAX_PRICE_PER_1000, N(2) },
	{ "rate_limit", JX_INT, 1, 0, 1, 1000000, N(3) },
	{ "burst", JX_INT, 1, 0, 1, 1000000, N(4) },
	{ "monthly_event_quota", JX_INT, 1, 0, 0, INT64_C(1000000000000000), N(5) },
	{ "retention_days", JX_INT, 1, 0, 1, 3650, N(6) },
	JSONX_END
};
const struct jsonx_field cpreq_plan_update[] = {
	{ "name", JX_STRING, 0, 0, 0, 100, F(name) },
	{ "currency", JX_STRING, 0, 0, 0, 3, F(currency) },
	{ "base_price", JX_INT, 0, 0, 0, MAX_BASE_PRICE, N(0) },
	{ "events_included", JX_INT, 0, 0, 0, INT64_C(1000000000000000), N(1) },
	{ "price_per_1000", JX_INT, 0, 0, 0, MAX_PRICE_PER_1000, N(2) },
	{ "rate_limit", JX_INT, 0, 0, 1, 1000000, N(3) },
	{ "burst", JX_INT, 0, 0, 1, 1000000, N(4) },
	{ "monthly_event_quota", JX_INT, 0, 0, 0, INT64_C(1000000000000000), N(5) },
	{ "retention_days", JX_INT, 0, 0, 1, 3650, N(6) },
	JSONX_END
};
#undef F
#undef N

const struct jsonx_field cpreq_login[] = {
	{ "email", JX_STRING, 1, 0, 0, 254, offsetof(struct login_req, email) },
	{ "password", JX_STRING, 1, 0, 0, PASSWORD_MAX_LEN, offsetof(struct login_req, password) },
	{ "tenant", JX_STRING, 0, 1, 0, 63, offsetof(struct login_req, tenant) },
	JSONX_END
};

#define F(n) offsetof(struct status_in, n)
const struct jsonx_field cpreq_region_status[] = {
	{ "instance", JX_STRING, 1, 0, 0, 128, F(instance) },
	{ "version", JX_INT, 0, 1, 0, INT64_MAX, F(version) },
	{ "source", JX_STRING, 0, 1, 0, 16, F(source) },
	{ "last_pull_ok_at", JX_STRING, 0, 1, 0, 40, F(last_pull_ok_at) },
	{ "last_error", JX_STRING, 0, 1, 0, 500, F(last_error) },
	{ "stale", JX_BOOL, 0, 0, 0, 0, F(stale) },
	{ "cell", JX_STRING, 0, 1, 0, 64, F(cell) },
	JSONX_END
};
#undef F

#define F(n) offsetof(struct move_in, n)
const struct jsonx_field cpreq_move_create[] = {
	{ "to_cell", JX_STRING, 0, 0, 0, 64, F(to_cell) },
	{ "to_region", JX_STRING, 0, 0, 0, 32, F(to_region) },
	{ "erase_after_seconds", JX_INT, 0, 0, 0, MOVE_ERASE_AFTER_MAX, F(erase_after_seconds) },
	JSONX_END
};
const struct jsonx_field cpreq_cell_drain[] = {
	{ "parallel", JX_INT, 0, 0, 1, 10, F(parallel) },
	JSONX_END
};
#undef F

#define F(n) offsetof(struct mover_in, n)
#define MOVER { "mover", JX_STRING, 1, 0, 0, 64, F(mover) }
const struct jsonx_field cpreq_move_claim[] = {
	MOVER,
	JSONX_END
};
const struct jsonx_field cpreq_move_progress[] = {
	MOVER,
	{ "state", JX_STRING, 0, 0, 0, 32, F(state) },
	{ "events_copied", JX_INT, 0, 0, 0, MOVE_COUNT_MAX, F(events_copied) },
	{ "lag_events", JX_INT, 0, 0, 0, MOVE_COUNT_MAX, F(lag_events) },
	{ "source_events", JX_INT, 0, 0, 0, MOVE_COUNT_MAX, F(source_events) },
	{ "error", JX_STRING, 0, 0, 0, 1000, F(error) },
	JSONX_END
};
const struct jsonx_field cpreq_move_complete[] = {
	MOVER,
	{ "source_events", JX_INT, 1, 0, 0, MOVE_COUNT_MAX, F(source_events) },
	{ "source_digest", JX_STRING, 1, 0, 0, 64, F(source_digest) },
	{ "target_events", JX_INT, 1, 0, 0, MOVE_COUNT_MAX, F(target_events) },
	{ "target_digest", JX_STRING, 1, 0, 0, 64, F(target_digest) },
	{ "write_pause_ms", JX_INT, 0, 0, 0, INT64_C(86400000), F(write_pause_ms) },
	JSONX_END
};
const struct jsonx_field cpreq_move_erased[] = {
	MOVER,
	{ "side", JX_STRING, 1, 0, 0, 16, F(side) },
	{ "events_deleted", JX_INT, 1, 0, 0, MOVE_COUNT_MAX, F(events_deleted) },
	{ "rows_deleted", JX_INT, 1, 0, 0, MOVE_COUNT_MAX, F(rows_deleted) },
	JSONX_END
};
#undef MOVER
#undef F
