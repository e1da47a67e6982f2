/* GET /readyz: ready once a verified configuration is in use (and, under
 * DP_STALE_POLICY=fail-closed, while it has not expired) and unless the
 * regional database was found to be another region's (or no region's);
 * the region and the cell (null without DP_CELL) it serves; what the configuration is (version, validity, where it came from,
 * staleness), what the database check found, and why it is not ready.
 * Liveness is /healthz. */
#include <time.h>

#include "config_pull.h"
#include "dp.h"
#include "http.h"
#include "snapshot.h"

static json_t *time_or_null(int64_t t)
{
	char s[32];
	if (!t)
		return json_null();
	dp_time_rfc3339(t, s);
	return json_string(s);
}

enum http_result dp_handle_readyz(struct http_req *req)
{
	struct dp_app *app = http_req_app(req);
	const struct dp_snapshot *s = dp_snaps_enter(app->snaps);
	int64_t ver = 0, iat = 0, exp = 0;
	const char *source = NULL;
	int loaded = s != NULL, stale = 0;
	if (s) {
		ver = s->doc->ver;
		iat = s->doc->iat;
		exp = s->doc->exp;
		source = dp_source_names[s->source];
		stale = dp_snapshot_stale(s, (int64_t)time(NULL));
	}
	dp_snaps_leave(app->snaps);

	/* The database is not asked here: this is what the check of the last
	 * new session found ("unchecked" until one was opened). */
	char owner[64] = "", reason[200] = "";
	static const char *const db_names[] = { [DP_REGION_OK] = "ok", [DP_REGION_MISMATCH] = "wrong_region",
		                                    [DP_REGION_UNCLAIMED] = "unclaimed",
		                                    [DP_REGION_UNKNOWN] = "unchecked" };
	enum dp_region_check db = app->region ? dp_region_guard_state(app->region, owner, sizeof owner)
	                                      : DP_REGION_UNKNOWN;
	/* Under fail-closed a stale document refuses every tenant request, and
	 * a database of another region every events request: the instance is
	 * not ready, so that a balancer stops sending it any. */
	if (!loaded)
		snprintf(reason, sizeof reason, "no verified configuration yet");
	else if (stale && app->cfg.stale_policy == DP_STALE_FAIL_CLOSED)
		snprintf(reason, sizeof reason, "the configuration has expired and DP_STALE_POLICY is fail-closed");
	else if (db == DP_REGION_MISMATCH)
		snprintf(reason, sizeof reason, "the regional database belongs to region '%s', not '%s'", owner,
		         app->cfg.region);
	else if (db == DP_REGION_UNCLAIMED)
		snprintf(reason, sizeof reason, "the regional database is not claimed for region '%s'",
		         app->cfg.region);
	json_t *body = json_pack("{ss so so so so so so sb ss so}", "region", app->cfg.region, "cell",
	                         app->cfg.cell ? json_string(app->cfg.cell) : json_null(), "config_version",
	                         loaded ? json_integer(ver) : json_null(), "issued_at",
	                         loaded ? time_or_null(iat) : json_null(), "expires_at",
	                         loaded ? time_or_null(exp) : json_null(), "source",
	                         source ? json_string(source) : json_null(), "last_pull_ok_at",
	                         time_or_null(dp_pull_last_ok(app->pull)), "stale", stale, "database",
	                         db_names[db], "reason", reason[0] ? json_string(reason) : json_null());
	return http_reply_json(req, reason[0] ? 503 : 200, body);
}
