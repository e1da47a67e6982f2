/* Events partitioned by time (migrations 0012, 0013 and the contract steps
 * migrations/region/contract/0001, 0002): when to convert `events`, weekly
 * partitions made ahead, and whole weeks removed by retention. Called by the
 * retention task (usage.c) only. */
#ifndef DP_PARTITIONS_H
#define DP_PARTITIONS_H

#include <stddef.h>
#include <stdint.h>

struct dp_app;

/* The build level of this data plane: the newest region migration it
 * knows. Written with every heartbeat (rate_instances.schema_level) and set
 * on every database session (celltrail.schema_level). */
#define DP_SCHEMA_LEVEL 13
#define DP_SCHEMA_STR_(x) #x
#define DP_SCHEMA_STR(x) DP_SCHEMA_STR_(x)
#define DP_SCHEMA_LEVEL_SQL DP_SCHEMA_STR(DP_SCHEMA_LEVEL)

/* A week: Monday 00:00 UTC to the next, as the migration's events_week. */
#define DP_WEEK_US (INT64_C(7) * 86400 * 1000000)
int64_t dp_week_of(int64_t us);

/* A tenant retention applies to and the instant from which it keeps its
 * events (now minus its plan's retention). */
struct dp_kept {
	char id[37];
	int64_t from_us;
};

/* Applies the contract steps when no instance of the cell seen in the last
 * minute runs an older build (in a cell partitioned before contract 0002:
 * its pending steps, at once); then makes the weekly partitions from
 * `oldest_us`'s week (never before the first) to two weeks ahead. *layout:
 * 1 partitioned (and *weekly_from_us set), 0 not yet. Returns 0, or -1 when
 * the database failed (logged). */
int dp_partitions_prepare(struct dp_app *app, int64_t now_us, int64_t oldest_us, int *layout,
                          int64_t *weekly_from_us);

/* Where a tenant's row-by-row deletion stops: `kept_from_us` (now minus its
 * retention), or, in the weekly partitions (from weekly_from_us), the
 * start of the week it falls in: the rest of that week goes with the
 * week, or once the week is past. */
int64_t dp_partitions_cutoff(int64_t kept_from_us, int partitioned, int64_t weekly_from_us);

/* Empties every week that ended before now and that no tenant keeps
 * (every tenant with events in it is listed in `kept`, with from_us at or
 * after the week's end): truncated, and, once it ended at or before
 * `insertable_us` (the `oldest_us` given to dp_partitions_prepare: no
 * partition is made there again), detached and dropped. Adds the weeks emptied, the planner's estimate of their
 * events, and the weeks dropped. Returns 0 or -1. */
int dp_partitions_remove(struct dp_app *app, const struct dp_kept *kept, size_t n, int64_t now_us,
                         int64_t insertable_us, unsigned long long *weeks, unsigned long long *events,
                         unsigned long long *dropped);

#endif
