/* GET /v1/tenant: who the caller is, as this region's configuration says. */
#include "dp.h"
#include "http.h"

int dp_handle_tenant(struct http_req *req)
{
	const struct dp_auth *a = http_req_auth(req);
	struct dp_app *app = http_req_app(req);
	if (!a)
		return -1;
	json_t *scopes = json_array();
	if (a->scopes & CFGDOC_SCOPE_WRITE)
		json_array_append_new(scopes, json_string("events:write"));
	if (a->scopes & CFGDOC_SCOPE_READ)
		json_array_append_new(scopes, json_string("events:read"));
	return http_reply_json(
		req, 200,
		json_pack("{s{ss ss ss ss} s{ss sI sI sI sI} s{ss so}}",
		          "tenant", "id", a->tenant_id, "slug", a->slug, "status",
		          a->status == 'a' ? "active" : "suspended", "region", app->cfg.region,
		          "plan", "id", a->plan.id, "rate_limit", (json_int_t)a->plan.rate, "burst",
		          (json_int_t)a->plan.burst, "monthly_event_quota", (json_int_t)a->plan.quota,
		          "retention_days", (json_int_t)a->plan.retention_days,
		          "key", "id", a->key_id, "scopes", scopes));
}
