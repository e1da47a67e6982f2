/* SQL of events partitioned by time (migration 0012, contract step
 * contract/0001): the layout, the fleet's build levels, weekly partitions
 * made ahead and removed whole. The partitions' DDL is in the migration's
 * functions (events_partition_ensure, events_partition_remove); this file
 * only calls them, with parameters. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpdb.h"

enum db_status dp_db_events_layout(struct db_conn *c, int *partitioned, int *ids_indexed, int64_t *weekly_from_us)
{
	PGresult *r;
	enum db_status st = db_exec(c, &r,
	                            "SELECT (SELECT relkind = 'p' FROM pg_class WHERE oid = 'events'::regclass),"
	                            "       to_regclass('events_layout') IS NOT NULL, to_regclass('event_ids') IS NOT NULL",
	                            0, NULL);
	if (st != DB_OK)
		return st;
	*partitioned = !strcmp(PQgetvalue(r, 0, 0), "t") && !strcmp(PQgetvalue(r, 0, 1), "t");
	*ids_indexed = *partitioned && !strcmp(PQgetvalue(r, 0, 2), "t");
	PQclear(r);
	*weekly_from_us = 0;
	if (!*partitioned)
		return DB_OK;
	if ((st = db_exec(c, &r, "SELECT " US("weekly_from") " FROM events_layout", 0, NULL)) != DB_OK)
		return st;
	if (PQntuples(r) == 1)
		*weekly_from_us = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	else
		*partitioned = 0;
	PQclear(r);
	return DB_OK;
}

enum db_status dp_db_fleet_older(struct db_conn *c, int level, int64_t within_ms, long *older, int64_t *quiet_ms)
{
	char lv[16], ms[24];
	snprintf(lv, sizeof lv, "%d", level);
	snprintf(ms, sizeof ms, "%" PRId64, within_ms);
	const char *p[2] = { lv, ms };
	PGresult *r;
	/* Counted, and the time of the sighting kept (contract_gate). */
	enum db_status st = db_exec(
		c, &r,
		"WITH o AS (SELECT count(*) AS n FROM rate_instances"
		"            WHERE seen_at > clock_timestamp() - $2::bigint * interval '1 millisecond'"
		"              AND coalesce(schema_level, 0) < $1::int),"
		" g AS (INSERT INTO contract_gate (older_seen_at) SELECT clock_timestamp() FROM o WHERE o.n > 0"
		"       ON CONFLICT (one) DO UPDATE SET older_seen_at = excluded.older_seen_at)"
		" SELECT o.n, (SELECT (extract(epoch FROM clock_timestamp() - older_seen_at) * 1000)::bigint"
		"                FROM contract_gate) FROM o",
		2, p);
	if (st != DB_OK)
		return st;
	*older = strtol(PQgetvalue(r, 0, 0), NULL, 10);
	*quiet_ms = *older ? 0 : PQgetisnull(r, 0, 1) ? -1 : strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	PQclear(r);
	return DB_OK;
}

enum db_status dp_db_partition_ensure(struct db_conn *c, int64_t lower_us, int *made)
{
	char l[24];
	snprintf(l, sizeof l, "%" PRId64, lower_us);
	const char *p[1] = { l };
	PGresult *r;
	enum db_status st = db_exec(c, &r, "SELECT events_partition_ensure(" TS("$1") ")", 1, p);
	if (st != DB_OK)
		return st;
	*made = !strcmp(PQgetvalue(r, 0, 0), "t");
	PQclear(r);
	return DB_OK;
}

int dp_db_no_partition(struct db_conn *c, enum db_status st)
{
	return st == DB_INVALID && !strcmp(db_last_sqlstate(c), "23514") && !*db_last_constraint(c);
}

enum db_status dp_db_events_weeks_ensure(struct db_conn *c, const char *occurred_us, const char *rows_json,
                                         long *made)
{
	const char *p[2] = { occurred_us ? occurred_us : "{}", rows_json ? rows_json : "[]" };
	PGresult *r;
	/* The weeks of the instants, or of a move page's rows, that have no
	 * partition (a tenant whose retention is longer than any the cell
	 * knew at its last pass, one moved in): made now, never one before
	 * the weekly partitions (those events are in events_before) nor past
	 * the two weeks a pass makes ahead. */
	enum db_status st = db_exec(
		c, &r,
		"SELECT count(*) FILTER (WHERE events_partition_ensure(s.w))"
		"  FROM (SELECT DISTINCT events_week('epoch'::timestamptz + x.o * interval '1 microsecond') AS w"
		"          FROM (SELECT unnest($1::bigint[]) AS o"
		"                UNION ALL SELECT (e->>'occurred_at_us')::bigint FROM json_array_elements($2::json) e) x"
		"         WHERE x.o IS NOT NULL) s"
		" WHERE s.w >= (SELECT weekly_from FROM events_layout)"
		"   AND s.w <= events_week(clock_timestamp()) + interval '14 days'"
		"   AND NOT EXISTS (SELECT 1 FROM event_partitions p WHERE p.lower = s.w)",
		2, p);
	if (st != DB_OK)
		return st;
	*made = strtol(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return DB_OK;
}

enum db_status dp_db_partitions(struct db_conn *c, int64_t before_us, dp_partition_fn fn, void *ctx)
{
	char b[24];
	snprintf(b, sizeof b, "%" PRId64, before_us);
	const char *p[1] = { b };
	PGresult *r;
	enum db_status st = db_exec(c, &r,
	                            "SELECT name, " US("lower") ", " US("upper") " FROM event_partitions"
	                            " WHERE upper <= " TS("$1") " ORDER BY lower",
	                            1, p);
	if (st != DB_OK)
		return st;
	for (int i = 0; i < PQntuples(r); i++)
		fn(ctx, PQgetvalue(r, i, 0), strtoll(PQgetvalue(r, i, 1), NULL, 10),
		   strtoll(PQgetvalue(r, i, 2), NULL, 10));
	PQclear(r);
	return DB_OK;
}

enum db_status dp_db_partition_remove(struct db_conn *c, const char *name, int64_t lower_us, int64_t upper_us,
                                      const char *tenants, const char *kept_from_us, int *freed, int *removed,
                                      int *detached, int64_t *estimate)
{
	char l[24], u[24];
	snprintf(l, sizeof l, "%" PRId64, lower_us);
	snprintf(u, sizeof u, "%" PRId64, upper_us);
	const char *p1[1] = { name };
	PGresult *r;
	*freed = *removed = *detached = 0;
	*estimate = 0;
	/* Held against writes first: an event stored after the look below
	 * and before the removal would go with the week. A week a detachment
	 * left apart is not looked at through `events` (which does not see
	 * it): the caller finishes the detachment, and what it holds is
	 * attached again or dropped empty. */
	enum db_status st = db_exec(c, &r, "SELECT events_partition_hold($1)", 1, p1);
	if (st != DB_OK)
		return st;
	int held = !strcmp(PQgetvalue(r, 0, 0), "held");
	*detached = !strcmp(PQgetvalue(r, 0, 0), "detached");
	PQclear(r);
	if (!held)
		return DB_OK;
	/* The tenants with events in the week, one index descent each (a
	 * loose scan of events_by_time), stopping at the first that may keep
	 * some: one not in the list (not this cell's, or being erased) keeps
	 * them all. */
	const char *p4[4] = { l, u, tenants, kept_from_us };
	st = db_exec(
		c, &r,
		"WITH RECURSIVE k AS (SELECT * FROM unnest($3::uuid[], $4::bigint[]) AS k(t, f)),"
		" t(id) AS ((SELECT tenant_id FROM events WHERE occurred_at >= " TS("$1") " AND occurred_at < " TS("$2")
		"            ORDER BY tenant_id LIMIT 1)"
		"  UNION ALL"
		"  SELECT (SELECT tenant_id FROM events WHERE occurred_at >= " TS("$1") " AND occurred_at < " TS("$2")
		"             AND tenant_id > t.id ORDER BY tenant_id LIMIT 1) FROM t WHERE t.id IS NOT NULL)"
		" SELECT EXISTS (SELECT 1 FROM t LEFT JOIN k ON k.t = t.id"
		"                 WHERE t.id IS NOT NULL AND (k.f IS NULL OR k.f < $2::bigint))",
		4, p4);
	if (st != DB_OK)
		return st;
	int kept = !strcmp(PQgetvalue(r, 0, 0), "t");
	PQclear(r);
	if (kept)
		return DB_OK;
	/* With ids indexed across weeks, the week's entries are deleted one
	 * by one first (the week held against writes only): the time that
	 * takes for a week of millions of events, beyond the statements'
	 * usual bound, this transaction only. */
	if ((st = db_exec(c, NULL, "SET LOCAL statement_timeout = '" DP_WEEK_REMOVE_TIMEOUT "'", 0, NULL)) != DB_OK ||
	    (st = db_exec(c, &r, "SELECT events_partition_remove($1)", 1, p1)) != DB_OK)
		return st;
	*removed = !PQgetisnull(r, 0, 0);
	*estimate = *removed ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
	PQclear(r);
	*freed = 1;
	return DB_OK;
}

/* A weekly partition's name as events_partition_ensure makes it. */
static int week_name_ok(const char *name)
{
	if (strncmp(name, "events_w", 8) || strlen(name) != 16)
		return 0;
	for (int i = 8; i < 16; i++)
		if (name[i] < '0' || name[i] > '9')
			return 0;
	return 1;
}

enum db_status dp_db_partition_detach(struct db_conn *c, const char *name)
{
	const char *p[1] = { name };
	PGresult *r;
	char sql[128];
	if (!week_name_ok(name))
		return DB_ERROR;
	enum db_status st = db_exec(c, &r,
	                            "SELECT i.inhdetachpending FROM pg_inherits i"
	                            " WHERE i.inhrelid = to_regclass($1) AND i.inhparent = 'events'::regclass",
	                            1, p);
	if (st != DB_OK)
		return st;
	int attached = PQntuples(r) == 1, pending = attached && !strcmp(PQgetvalue(r, 0, 0), "t");
	PQclear(r);
	if (!attached)
		return DB_OK;
	/* The one statement here not fully parameterized: DETACH takes no
	 * parameter and no function may run it CONCURRENTLY. The name is the
	 * catalog's, of the one shape checked above. FINALIZE completes a
	 * detachment an earlier attempt left half done. */
	snprintf(sql, sizeof sql, "ALTER TABLE events DETACH PARTITION \"%s\" %s", name,
	         pending ? "FINALIZE" : "CONCURRENTLY");
	return db_exec(c, NULL, sql, 0, NULL);
}

enum db_status dp_db_partition_forget(struct db_conn *c, const char *name, int *dropped)
{
	const char *p[1] = { name };
	PGresult *r;
	enum db_status st = db_exec(c, &r, "SELECT events_partition_forget($1)", 1, p);
	if (st != DB_OK)
		return st;
	*dropped = !strcmp(PQgetvalue(r, 0, 0), "t");
	PQclear(r);
	return DB_OK;
}

enum db_status dp_db_events_lock_tenants(struct db_conn *c, const char *tenants, const char *occurred_us,
                                         int64_t margin_ms)
{
	char m[24];
	snprintf(m, sizeof m, "%" PRId64, margin_ms);
	const char *p[3] = { tenants, occurred_us, m };
	/* Only when events are partitioned and their ids not yet indexed
	 * across partitions (contract 0002, event_ids, makes these locks
	 * needless): (tenant_id, id) is then unique per partition only, so two
	 * transactions that may store one id in two partitions must not look
	 * for it at once. Per tenant (hashed into
	 * 256 locks, so that a group of many tenants takes at most 256), in
	 * order, so that two groups never wait on each other:
	 *  - shared when all of the tenant's events of the group fall in this
	 *    week, farther from its ends than a transaction can last
	 *    ($3 ms): two such transactions store into one partition, whose
	 *    unique index orders them;
	 *  - exclusive otherwise.
	 * The layout is read by name when the statement runs, after reading
	 * `events` waited for the contract step and holds it off until this
	 * transaction ends. */
	return db_exec(
		c, NULL,
		"WITH n AS (SELECT date_bin(interval '7 days', clock_timestamp(), timestamptz '2000-01-03 00:00:00+00') AS w,"
		"                  clock_timestamp() AS now, $3::bigint * interval '1 millisecond' AS margin),"
		" k AS (SELECT (hashtextextended(e.t::text, 0) & 255)::int AS b,"
		"              bool_and('epoch'::timestamptz + e.o * interval '1 microsecond' >= n.w"
		"                       AND 'epoch'::timestamptz + e.o * interval '1 microsecond' < n.w + interval '7 days'"
		"                       AND n.now >= n.w + n.margin"
		"                       AND n.now < n.w + interval '7 days' - n.margin) AS shared"
		"         FROM unnest($1::uuid[], $2::bigint[]) AS e(t, o), n GROUP BY 1)"
		" SELECT count(CASE WHEN k.shared THEN pg_advisory_xact_lock_shared(1667591241, k.b)"
		"                   ELSE pg_advisory_xact_lock(1667591241, k.b) END)"
		"   FROM (SELECT * FROM k ORDER BY b) k"
		"  WHERE NOT EXISTS (SELECT FROM events WHERE false)"
		"    AND (SELECT c.relkind FROM pg_class c WHERE c.relname = 'events'"
		"          AND c.relnamespace = current_schema()::regnamespace) = 'p'"
		"    AND to_regclass('event_ids') IS NULL",
		3, p);
}
