/* GET /v1/tenant: who the caller is, as this region's configuration says,
 * and its usage this month as last read (never waits on the database). */
#include "dp.h"
#include "http.h"
#include "limits.h"
#include "timefmt.h"

int dp_handle_tenant(struct http_req *req)
{
	const struct dp_auth *a = http_req_auth(req);
	struct dp_app *app = http_req_app(req);
	char period[8], as_of[TIMEFMT_LEN];
	int64_t used, when;

	if (!a)
		return -1;
	timefmt_month(timefmt_now_us(), NULL, NULL, period);
	dp_limits_usage_get(app->limits, a->tenant_id, period, &used, &when);
	timefmt_format(when, as_of);
	json_t *scopes = json_array();
	if (a->scopes & CFGDOC_SCOPE_WRITE)
		json_array_append_new(scopes, json_string("events:write"));
	if (a->scopes & CFGDOC_SCOPE_READ)
		json_array_append_new(scopes, json_string("events:read"));
	return http_reply_json(
		req, 200,
		json_pack("{s{ss ss ss ss} s{ss sI sI sI sI} s{ss so} s{ss sI sI so}}",
		          "tenant", "id", a->tenant_id, "slug", a->slug, "status",
		          a->status == 'a' ? "active" : "suspended", "region", app->cfg.region,
		          "plan", "id", a->plan.id, "rate_limit", (json_int_t)a->plan.rate, "burst",
		          (json_int_t)a->plan.burst, "monthly_event_quota", (json_int_t)a->plan.quota,
		          "retention_days", (json_int_t)a->plan.retention_days,
		          "key", "id", a->key_id, "scopes", scopes,
		          "usage", "period", period, "events", (json_int_t)used, "remaining",
		          (json_int_t)(used < a->plan.quota ? a->plan.quota - used : 0), "as_of",
		          when ? json_string(as_of) : json_null()));
}
