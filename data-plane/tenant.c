/* GET /v1/tenant: who the caller is, as this region's configuration says,
 * and its usage this month as last read (never waits on the database).
 * The data plane's cheapest authenticated call: the answer is written
 * straight into one buffer, without a JSON tree. */
#include <inttypes.h>
#include <stdio.h>

#include "dp.h"
#include "http.h"
#include "limits.h"
#include "log.h"
#include "timefmt.h"

enum http_result dp_handle_tenant(struct http_req *req)
{
	const struct dp_auth *a = http_req_auth(req);
	struct dp_app *app = http_req_app(req);
	char period[8], as_of[TIMEFMT_LEN + 2] = "null", slug[sizeof a->slug * 6], plan[sizeof a->plan.id * 6];
	char body[1024], events[24] = "null", remaining[24] = "null";
	int64_t used, when;

	if (!a)
		return HTTP_FAILED;
	timefmt_month(timefmt_now_us(), NULL, NULL, period);
	/* Until this instance has read the tenant's usage (just started, or a
	 * new month), the figures are unknown, and said to be: a 0 would read
	 * as "nothing used" to a client deciding whether to send more. */
	int known = dp_limits_usage_get(app->limits, a->tenant_id, period, &used, &when);
	if (known) {
		as_of[0] = '"';
		timefmt_format(when, as_of + 1);
		as_of[TIMEFMT_LEN] = '"';
		as_of[TIMEFMT_LEN + 1] = '\0';
		snprintf(events, sizeof events, "%" PRId64, used);
		snprintf(remaining, sizeof remaining, "%" PRId64, used < a->plan.quota ? a->plan.quota - used : 0);
	}
	/* The ids are validated names and hex; the slug and plan id are
	 * escaped all the same. */
	log_json_escape(a->slug, slug, sizeof slug);
	log_json_escape(a->plan.id, plan, sizeof plan);
	const char *scopes = (a->scopes & CFGDOC_SCOPE_WRITE) && (a->scopes & CFGDOC_SCOPE_READ)
	                         ? "\"events:read\",\"events:write\""
	                     : (a->scopes & CFGDOC_SCOPE_WRITE) ? "\"events:write\""
	                     : (a->scopes & CFGDOC_SCOPE_READ)  ? "\"events:read\""
	                                                        : "";
	int n = snprintf(
		body, sizeof body,
		"{\"tenant\":{\"id\":\"%s\",\"slug\":\"%s\",\"status\":\"%s\",\"region\":\"%s\"},"
		"\"plan\":{\"id\":\"%s\",\"rate_limit\":%" PRId64 ",\"burst\":%" PRId64
		",\"monthly_event_quota\":%" PRId64 ",\"retention_days\":%" PRId64 "},"
		"\"key\":{\"id\":\"%s\",\"scopes\":[%s]},"
		"\"usage\":{\"period\":\"%s\",\"known\":%s,\"events\":%s,\"remaining\":%s,\"as_of\":%s}}",
		a->tenant_id, slug, a->status == 'a' ? "active" : "suspended", app->cfg.region, plan,
		a->plan.rate, a->plan.burst, a->plan.quota, a->plan.retention_days, a->key_id, scopes, period,
		known ? "true" : "false", events, remaining, as_of);
	if (n < 0 || (size_t)n >= sizeof body)
		return HTTP_FAILED;
	return http_reply_raw(req, 200, "application/json", body, (size_t)n);
}
