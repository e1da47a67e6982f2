/* Configuration errors of control-plane calls (see cp_errors.h). */
#include "cp_errors.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "log.h"

#define LOG_EVERY_S 60

static const char *const call_names[DP_CP__CALLS] = { "config", "status", "usage" };
static const long statuses[] = { 401, 403, 404 };
#define NSTATUS (sizeof statuses / sizeof statuses[0])

static atomic_ullong counts[DP_CP__CALLS][NSTATUS];
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t last_logged[DP_CP__CALLS];   /* monotonic seconds; 0: never */
static unsigned long long unlogged[DP_CP__CALLS];

static int status_index(long status)
{
	for (size_t i = 0; i < NSTATUS; i++)
		if (statuses[i] == status)
			return (int)i;
	return -1;
}

int dp_cp_config_error(long status)
{
	return status_index(status) >= 0;
}

static int64_t mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec + 1; /* never 0, which means "never logged" */
}

void dp_cp_errors_note(enum dp_cp_call call, long status, const char *what)
{
	int si = status_index(status);
	if (si < 0 || (unsigned)call >= DP_CP__CALLS)
		return;
	atomic_fetch_add(&counts[call][si], 1);

	int64_t now = mono_s();
	unsigned long long skipped = 0;
	int say = 0;
	pthread_mutex_lock(&log_lock);
	if (!last_logged[call] || now - last_logged[call] >= LOG_EVERY_S) {
		say = 1;
		skipped = unlogged[call];
		unlogged[call] = 0;
		last_logged[call] = now;
	} else {
		unlogged[call]++;
	}
	pthread_mutex_unlock(&log_lock);
	if (!say)
		return;
	const char *hint = status == 404 ? "check DP_CONTROL_PLANE_URL (a wrong host or path prefix) and DP_REGION"
	                                 : "check DP_REGION_TOKEN (the region's credential) and DP_REGION, or with DP_CELL DP_CELL_TOKEN and DP_CELL";
	log_write(LOG_ERROR, NULL,
	          json_pack("{ss sI sI}", "call", call_names[call], "status", (json_int_t)status,
	                    "not_logged", (json_int_t)skipped),
	          "the control plane answered HTTP %ld to %s: %s; kept and retried "
	          "(%llu more such answer(s) since the last line)",
	          status, what, hint, skipped);
}

void dp_cp_errors_metrics(FILE *out)
{
	fputs("# HELP dp_control_plane_config_errors_total Control-plane answers that mean a wrong "
	      "DP_CONTROL_PLANE_URL (404) or a refused DP_REGION_TOKEN or DP_CELL_TOKEN (401, 403), by call.\n"
	      "# TYPE dp_control_plane_config_errors_total counter\n",
	      out);
	for (int c = 0; c < DP_CP__CALLS; c++)
		for (size_t s = 0; s < NSTATUS; s++)
			fprintf(out, "dp_control_plane_config_errors_total{call=\"%s\",status=\"%ld\"} %llu\n",
			        call_names[c], statuses[s], (unsigned long long)atomic_load(&counts[c][s]));
}
