/* SQL of tenant moves and cell drains. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "buf.h"
#include "cfgdoc.h"
#include "cpdb.h"

/* The states in which a move has not ended, as SQL. */
#define OPEN_STATES "('awaiting_approval', 'copying', 'catching_up', 'cutover', 'verifying')"

static const char *num(char b[24], int64_t v)
{
	if (v < 0)
		return NULL;
	snprintf(b, 24, "%" PRId64, v);
	return b;
}

enum db_status cpdb_move_insert(struct db_conn *c, const struct cpdb_move_new *m, json_t **doc)
{
	char ea[24];
	const char *p[] = { m->tenant_id, m->kind, m->from_region, m->from_cell, m->to_region, m->to_cell,
		                m->state, m->requested_by, num(ea, m->erase_after_seconds), m->drain_id };
	char id[40];
	enum db_status st = cpdb_returning_id(c, id,
		"INSERT INTO moves (tenant_id, kind, from_region, from_cell, to_region, to_cell, state,"
		"                   requested_by, erase_after_seconds, drain_id)"
		" VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8, $9::bigint, $10::uuid) RETURNING id", 10, p);
	return st == DB_OK ? cpdb_move_get(c, id, NULL, 0, doc) : st;
}

enum db_status cpdb_moves_list(struct db_conn *c, const char *tenant_id, json_t **items)
{
	const char *p[] = { tenant_id };
	return db_json_rows(c, items,
		"SELECT doc::text FROM api_moves WHERE tenant_id = $1::uuid ORDER BY created_at DESC, id DESC",
		1, p);
}

enum db_status cpdb_move_get(struct db_conn *c, const char *id, const char *tenant_id, int for_update,
                             json_t **doc)
{
	const char *p[] = { id, tenant_id };
	if (for_update) {
		enum db_status st = db_exec(c, NULL, "SELECT 1 FROM moves WHERE id = $1::uuid FOR UPDATE", 1, p);
		if (st != DB_OK)
			return st;
	}
	return db_json_one(c, doc,
		"SELECT doc::text FROM api_moves WHERE id = $1::uuid AND ($2::uuid IS NULL OR tenant_id = $2::uuid)",
		2, p);
}

enum db_status cpdb_move_open_of_tenant(struct db_conn *c, const char *tenant_id, json_t **doc)
{
	const char *p[] = { tenant_id };
	char id[40];
	enum db_status st = cpdb_returning_id(c, id,
		"SELECT id FROM moves WHERE tenant_id = $1::uuid AND state IN " OPEN_STATES " FOR UPDATE", 1, p);
	return st == DB_OK ? cpdb_move_get(c, id, NULL, 0, doc) : st;
}

enum db_status cpdb_move_approve(struct db_conn *c, const char *id, const char *by, json_t **doc)
{
	const char *p[] = { id, by };
	char got[40];
	enum db_status st = cpdb_returning_id(c, got,
		"UPDATE moves SET state = 'copying', approved_by = $2, approved_at = clock_timestamp()"
		" WHERE id = $1::uuid AND state = 'awaiting_approval' RETURNING id", 2, p);
	return st == DB_OK ? cpdb_move_get(c, id, NULL, 0, doc) : st;
}

enum db_status cpdb_move_finish(struct db_conn *c, const char *id, const char *state, const char *error,
                                json_t **doc)
{
	const char *p[] = { id, state, error };
	char got[40];
	enum db_status st = cpdb_returning_id(c, got,
		"UPDATE moves SET state = $2, error = coalesce($3, error), finished_at = clock_timestamp()"
		" WHERE id = $1::uuid AND state IN " OPEN_STATES " RETURNING id", 3, p);
	return st == DB_OK ? cpdb_move_get(c, id, NULL, 0, doc) : st;
}

enum db_status cpdb_move_lease(struct db_conn *c, const char *id, const char *mover, int *held_by_other)
{
	const char *p[] = { id, mover };
	PGresult *r;
	enum db_status st = db_exec(c, &r,
		"SELECT lease_owner IS NOT NULL AND lease_owner <> $2 AND lease_until > now()"
		" FROM moves WHERE id = $1::uuid", 2, p);
	if (st != DB_OK)
		return st;
	if (PQntuples(r) == 0)
		st = DB_NOT_FOUND;
	else
		*held_by_other = PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	return st;
}

enum db_status cpdb_move_progress(struct db_conn *c, const char *id, const struct cpdb_move_report *rp,
                                  json_t **doc)
{
	char ec[24], lag[24], se[24], ls[24];
	const char *p[] = { id, rp->mover, rp->state, num(ec, rp->events_copied), num(lag, rp->lag_events),
		                num(se, rp->source_events), rp->error, num(ls, rp->lease_seconds) };
	char got[40];
	enum db_status st = cpdb_returning_id(c, got,
		"UPDATE moves SET lease_owner = $2, lease_until = now() + $8::bigint * interval '1 second',"
		"  state = coalesce($3, state),"
		"  events_copied = coalesce($4::bigint, events_copied),"
		"  lag_events = coalesce($5::bigint, lag_events),"
		"  source_events = coalesce($6::bigint, source_events),"
		"  error = coalesce($7, error),"
		"  cutover_started_at = CASE WHEN $3 = 'cutover' AND state <> 'cutover'"
		"                            THEN clock_timestamp() ELSE cutover_started_at END,"
		"  finished_at = CASE WHEN $3 = 'failed' THEN clock_timestamp() ELSE finished_at END"
		" WHERE id = $1::uuid RETURNING id", 8, p);
	return st == DB_OK ? cpdb_move_get(c, id, NULL, 0, doc) : st;
}

enum db_status cpdb_move_claim(struct db_conn *c, const char *region, const char *mover,
                               int64_t lease_seconds, json_t **doc, int64_t *erase_at)
{
	char ls[24];
	const char *p[] = { region, mover, num(ls, lease_seconds) };
	PGresult *r;
	/* Moves others hold are skipped, not waited for. */
	enum db_status st = db_exec(c, &r,
		"UPDATE moves m SET lease_owner = $2, lease_until = now() + $3::bigint * interval '1 second',"
		"  copy_started_at = CASE WHEN m.state IN ('copying', 'catching_up', 'cutover', 'verifying')"
		"                         THEN coalesce(m.copy_started_at, clock_timestamp())"
		"                         ELSE m.copy_started_at END"
		" WHERE m.id = (SELECT id FROM moves"
		"   WHERE to_region = $1 AND (lease_owner IS NULL OR lease_until <= now() OR lease_owner = $2)"
		"     AND (state IN ('copying', 'catching_up', 'cutover', 'verifying')"
		"          OR (state IN ('aborted', 'failed') AND copy_started_at IS NOT NULL"
		"              AND target_erased_at IS NULL)"
		"          OR (state = 'done' AND erase_at <= now() AND source_erased_at IS NULL))"
		"   ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)"
		" RETURNING m.id, CASE WHEN m.state = 'done' THEN extract(epoch FROM m.erase_at)::bigint"
		"                      ELSE 0 END", 3, p);
	if (st != DB_OK)
		return st;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return DB_NOT_FOUND;
	}
	char id[40];
	snprintf(id, sizeof id, "%s", PQgetvalue(r, 0, 0));
	*erase_at = atoll(PQgetvalue(r, 0, 1));
	PQclear(r);
	return cpdb_move_get(c, id, NULL, 0, doc);
}

enum db_status cpdb_move_complete(struct db_conn *c, const char *id, int64_t source_events,
                                  int64_t write_pause_ms, int64_t linger_ms, json_t **doc)
{
	char se[24], wp[24], lg[24];
	const char *p[] = { id, num(se, source_events), num(wp, write_pause_ms), num(lg, linger_ms) };
	char got[40];
	/* The tenant first: its triggers allow the flip while the move is verifying. */
	enum db_status st = cpdb_returning_id(c, got,
		"UPDATE tenants t SET cell = m.to_cell, region = m.to_region, updated_at = clock_timestamp()"
		"  FROM moves m WHERE m.id = $1::uuid AND m.state = 'verifying' AND t.id = m.tenant_id"
		" RETURNING t.id", 1, p);
	if (st != DB_OK)
		return st;
	/* A dedicated target cell becomes the tenant's. */
	if ((st = db_exec(c, NULL,
		"UPDATE cells c SET tenant_id = m.tenant_id FROM moves m"
		" WHERE m.id = $1::uuid AND c.name = m.to_cell AND c.kind = 'dedicated' AND c.tenant_id IS NULL",
		1, p)) != DB_OK)
		return st;
	st = cpdb_returning_id(c, got,
		/* One instant for the end, the erasure and the linger: a grace
		 * period of 0 is due exactly when the move is done. */
		"UPDATE moves SET state = 'done', finished_at = n.t,"
		"  erase_at = n.t + erase_after_seconds * interval '1 second',"
		"  source_events = $2::bigint, lag_events = 0,"
		"  write_pause_ms = coalesce($3::bigint, write_pause_ms),"
		"  linger_until = CASE WHEN kind = 'cell' AND $4::bigint > 0"
		"                      THEN n.t + $4::bigint * interval '1 millisecond' END"
		"  FROM (SELECT clock_timestamp() AS t) AS n"
		" WHERE id = $1::uuid AND state = 'verifying' RETURNING id", 4, p);
	return st == DB_OK ? cpdb_move_get(c, id, NULL, 0, doc) : st;
}

enum db_status cpdb_move_lingers_end(struct db_conn *c)
{
	/* Row locks make two claims at once end a linger (and bump) once. */
	return db_exec(c, NULL,
		"WITH ended AS (UPDATE moves SET linger_until = NULL"
		"               WHERE linger_until IS NOT NULL AND linger_until <= clock_timestamp()"
		"               RETURNING from_region)"
		" UPDATE regions SET config_version = config_version + 1"
		" WHERE name IN (SELECT from_region FROM ended)", 0, NULL);
}

enum db_status cpdb_move_erased(struct db_conn *c, const char *id, int source, int64_t events,
                                int64_t rows, int *first, json_t **doc)
{
	char ev[24], rw[24];
	const char *p[] = { id, num(ev, events), num(rw, rows) };
	char got[40];
	/* The first report's time stays; the counts are the largest said. */
	enum db_status st = cpdb_returning_id(c, got, source
		? "WITH old AS (SELECT source_erased_at IS NULL AS first FROM moves WHERE id = $1::uuid)"
		  " UPDATE moves SET source_erased_at = coalesce(source_erased_at, clock_timestamp()),"
		  "  events_erased = greatest(coalesce(events_erased, 0), $2::bigint),"
		  "  rows_erased = greatest(coalesce(rows_erased, 0), $3::bigint)"
		  " WHERE id = $1::uuid RETURNING (SELECT first FROM old)::text"
		: "WITH old AS (SELECT target_erased_at IS NULL AS first FROM moves WHERE id = $1::uuid)"
		  " UPDATE moves SET target_erased_at = coalesce(target_erased_at, clock_timestamp())"
		  " WHERE id = $1::uuid AND $2::bigint >= 0 AND $3::bigint >= 0"
		  " RETURNING (SELECT first FROM old)::text", 3, p);
	if (st != DB_OK)
		return st;
	*first = got[0] == 't';
	return cpdb_move_get(c, id, NULL, 0, doc);
}

enum db_status cpdb_moves_by_state(struct db_conn *c, json_t **counts)
{
	return db_json_one(c, counts,
		"SELECT coalesce(json_object_agg(state, n), '{}')::text"
		" FROM (SELECT state, count(*) AS n FROM moves GROUP BY state) s", 0, NULL);
}

enum db_status cpdb_doc_moved(struct db_conn *c, const char *region, struct buf *b)
{
	const char *p[] = { region };
	PGresult *r;
	enum db_status st = db_exec(c, &r,
		/* A tenant's region changes only through a move between regions
		 * (migration 0008), so the keys of this region whose tenant lives
		 * elsewhere are found through this region's moves, without
		 * reading every key of the region. */
		"SELECT k.id, t.region FROM api_keys k JOIN tenants t ON t.id = k.tenant_id"
		" WHERE k.tenant_id IN (SELECT m.tenant_id FROM moves m WHERE m.from_region = $1 AND m.kind = 'region')"
		"   AND k.region = $1 AND t.region <> $1 AND k.revoked_at IS NULL AND t.status <> 'deleted'"
		" ORDER BY k.id", 1, p);
	if (st != DB_OK)
		return st;
	int n = PQntuples(r);
	for (int i = 0; i < n && st == DB_OK; i++)
		if (cfgdoc_add_moved(b, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1)) != 0 || b->failed)
			st = DB_ERROR;
	PQclear(r);
	return st;
}

enum db_status cpdb_moved_keys_bump(struct db_conn *c, const char *tenant_id)
{
	const char *p[] = { tenant_id };
	return db_exec(c, NULL,
		"UPDATE regions SET config_version = config_version + 1 WHERE name IN"
		" (SELECT DISTINCT k.region FROM api_keys k JOIN tenants t ON t.id = k.tenant_id"
		"   WHERE k.tenant_id = $1::uuid AND k.region <> t.region)", 1, p);
}

/* ---- drains ---- */

enum db_status cpdb_drain_insert(struct db_conn *c, const char *cell, int64_t parallel,
                                 const char *requested_by, json_t **doc)
{
	char pa[24];
	const char *p[] = { cell, num(pa, parallel), requested_by };
	char id[40];
	enum db_status st = cpdb_returning_id(c, id,
		"INSERT INTO cell_drains (cell, parallel, requested_by) VALUES ($1, $2::int, $3) RETURNING id",
		3, p);
	return st == DB_OK ? cpdb_drain_get(c, id, doc) : st;
}

enum db_status cpdb_drain_get(struct db_conn *c, const char *id, json_t **doc)
{
	const char *p[] = { id };
	return db_json_one(c, doc, "SELECT doc::text FROM api_cell_drains WHERE id = $1::uuid", 1, p);
}

enum db_status cpdb_drain_latest(struct db_conn *c, const char *cell, json_t **doc)
{
	const char *p[] = { cell };
	return db_json_one(c, doc,
		"SELECT doc::text FROM api_cell_drains WHERE cell = $1 ORDER BY created_at DESC, id DESC LIMIT 1",
		1, p);
}

enum db_status cpdb_drains_running(struct db_conn *c, const char *region, json_t **items)
{
	const char *p[] = { region };
	return db_json_rows(c, items,
		"SELECT json_build_object('id', d.id, 'cell', d.cell, 'parallel', d.parallel)::text"
		" FROM cell_drains d JOIN cells c ON c.name = d.cell"
		" WHERE c.region = $1 AND d.state = 'running' ORDER BY d.created_at, d.id FOR UPDATE OF d",
		1, p);
}

enum db_status cpdb_drain_state(struct db_conn *c, const char *id, const char *cell, long *active,
                                long *left, char next_tenant[37])
{
	const char *p[] = { id, cell };
	PGresult *r;
	/* A tenant whose move of this drain ended without moving it is left
	 * where it is: retrying it would loop. */
	enum db_status st = db_exec(c, &r,
		"SELECT (SELECT count(*) FROM moves WHERE drain_id = $1::uuid AND state IN " OPEN_STATES "),"
		"       (SELECT count(*) FROM tenants WHERE cell = $2 AND status <> 'deleted'),"
		"       (SELECT t.id FROM tenants t WHERE t.cell = $2 AND t.status <> 'deleted'"
		"          AND NOT EXISTS (SELECT 1 FROM moves m WHERE m.tenant_id = t.id"
		"                           AND (m.state IN " OPEN_STATES " OR m.drain_id = $1::uuid))"
		"        ORDER BY t.created_at, t.id LIMIT 1)", 2, p);
	if (st != DB_OK)
		return st;
	*active = atol(PQgetvalue(r, 0, 0));
	*left = atol(PQgetvalue(r, 0, 1));
	snprintf(next_tenant, 37, "%s", PQgetisnull(r, 0, 2) ? "" : PQgetvalue(r, 0, 2));
	PQclear(r);
	return DB_OK;
}

enum db_status cpdb_drain_finish(struct db_conn *c, const char *id, const char *state)
{
	const char *p[] = { id, state };
	return db_exec(c, NULL,
		"UPDATE cell_drains SET state = $2, finished_at = clock_timestamp()"
		" WHERE id = $1::uuid AND state = 'running'", 2, p);
}
