/* Configuration errors met calling the control plane.
 *
 * A 401, 403 or 404 from the control plane does not go away by waiting: the
 * data plane calls the wrong URL (DP_CONTROL_PLANE_URL), for a region the
 * control plane does not know (DP_REGION), or with a refused credential
 * (DP_REGION_TOKEN). Each caller still keeps what it was sending
 * and retries with its backoff, since an operator can fix either without
 * the data plane noticing; this module says so loudly but not endlessly:
 * one error line per call kind per minute (with the count of those not
 * logged), and dp_control_plane_config_errors_total{call,status} for
 * alerts. Counters are process-wide: a process talks to one control plane.
 * Every function may be called from any thread. */
#ifndef DP_CP_ERRORS_H
#define DP_CP_ERRORS_H

#include <stdio.h>

enum dp_cp_call { DP_CP_CONFIG, DP_CP_STATUS, DP_CP_USAGE, DP_CP__CALLS };

/* 1 when an answer with HTTP `status` is a configuration error. */
int dp_cp_config_error(long status);

/* Counts one configuration error of `call` (`status` as dp_cp_config_error
 * accepted; `what` names the request, e.g. "POST /v1/usage") and logs it at
 * error level unless that call kind was logged less than a minute ago. */
void dp_cp_errors_note(enum dp_cp_call call, long status, const char *what);

/* Appends dp_control_plane_config_errors_total to a /metrics page. */
void dp_cp_errors_metrics(FILE *out);

#endif
