/* GET /readyz: ready once a verified configuration is in use (and, under
 * DP_STALE_POLICY=fail-closed, while it has not expired), and what it
 * is (version, validity, where it came from, staleness). Liveness is
 * /healthz. */
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

int dp_handle_readyz(struct http_req *req)
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

	json_t *body = json_pack("{ss so so so so so sb}", "region", app->cfg.region, "config_version",
	                         loaded ? json_integer(ver) : json_null(), "issued_at",
	                         loaded ? time_or_null(iat) : json_null(), "expires_at",
	                         loaded ? time_or_null(exp) : json_null(), "source",
	                         source ? json_string(source) : json_null(), "last_pull_ok_at",
	                         time_or_null(dp_pull_last_ok(app->pull)), "stale", stale);
	/* Under fail-closed a stale document refuses every tenant request: the
	 * instance is not ready, so that a balancer stops sending it any. */
	int ready = loaded && !(stale && app->cfg.stale_policy == DP_STALE_FAIL_CLOSED);
	return http_reply_json(req, ready ? 200 : 503, body);
}
