/* SQL of log streams (migrations/control-plane/0010_streams.sql). A
 * stream's secret is only ever passed in and out sealed (secret.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpdb.h"

/* A stream as the API shows it, of streams s LEFT JOINed with
 * stream_reports r: the destination's public fields merged in, never
 * secret_sealed. "pending" while no report came since the last change. */
#define STREAM_DOC                                                                                   \
	"(jsonb_build_object('id', s.id, 'tenant_id', s.tenant_id, 'kind', s.kind,"                     \
	"  'status', CASE WHEN s.paused THEN 'paused'"                                                   \
	"                 WHEN r.stream_id IS NULL OR r.reported_at < s.updated_at"                     \
	"                      OR r.status = 'paused' THEN 'pending'"                                   \
	"                 ELSE r.status END,"                                                            \
	"  'paused', s.paused, 'since', api_ts(s.since),"                                                \
	"  'lag_events', coalesce(r.lag_events, 0), 'lag_seconds', coalesce(r.lag_seconds, 0),"        \
	"  'delivered_events', coalesce(r.delivered_events, 0),"                                        \
	"  'last_delivered_at', api_ts(r.last_delivered_at), 'last_error', r.last_error,"              \
	"  'last_error_at', api_ts(r.last_error_at), 'reported_at', api_ts(r.reported_at),"            \
	"  'revision', s.revision, 'created_at', api_ts(s.created_at),"                                 \
	"  'updated_at', api_ts(s.updated_at)) || s.destination)::text"                                 \
	" FROM streams s LEFT JOIN stream_reports r ON r.stream_id = s.id"

enum db_status cpdb_stream_get(struct db_conn *c, const char *tenant_id, const char *id, json_t **doc)
{
	const char *p[] = { tenant_id, id };
	return db_json_one(c, doc,
		"SELECT " STREAM_DOC " WHERE s.tenant_id = $1::uuid AND s.id = $2::uuid AND s.deleted_at IS NULL",
		2, p);
}

enum db_status cpdb_streams_list(struct db_conn *c, const char *tenant_id, json_t **items)
{
	const char *p[] = { tenant_id };
	return db_json_rows(c, items,
		"SELECT " STREAM_DOC " WHERE s.tenant_id = $1::uuid AND s.deleted_at IS NULL"
		" ORDER BY s.created_at, s.id", 1, p);
}

enum db_status cpdb_streams_count(struct db_conn *c, const char *tenant_id, long *n)
{
	const char *p[] = { tenant_id };
	PGresult *r;
	enum db_status st = db_exec(c, &r,
		"SELECT count(*) FROM streams WHERE tenant_id = $1::uuid AND deleted_at IS NULL", 1, p);
	if (st == DB_OK) {
		*n = atol(PQgetvalue(r, 0, 0));
		PQclear(r);
	}
	return st;
}

enum db_status cpdb_stream_insert(struct db_conn *c, const char *tenant_id, const char *kind,
                                  const char *destination, const char *secret_sealed, int paused,
                                  const char *since, char id[40])
{
	const char *p[] = { tenant_id, kind, destination, secret_sealed, paused ? "t" : "f", since };
	return cpdb_returning_id(c, id,
		"INSERT INTO streams (id, tenant_id, kind, destination, secret_sealed, paused, since)"
		" VALUES (gen_random_uuid(), $1::uuid, $2, $3::jsonb, $4, $5::boolean,"
		"         coalesce($6::timestamptz, now()))"
		" RETURNING id", 6, p);
}

enum db_status cpdb_stream_stored(struct db_conn *c, const char *tenant_id, const char *id,
                                  json_t **row)
{
	const char *p[] = { tenant_id, id };
	return db_json_one(c, row,
		"SELECT json_build_object('kind', kind, 'destination', destination)::text FROM streams"
		" WHERE tenant_id = $1::uuid AND id = $2::uuid AND deleted_at IS NULL FOR UPDATE", 2, p);
}

enum db_status cpdb_stream_update(struct db_conn *c, const char *tenant_id, const char *id,
                                  const char *destination, const char *secret_sealed)
{
	const char *p[] = { tenant_id, id, destination, secret_sealed };
	char got[40];
	return cpdb_returning_id(c, got,
		"UPDATE streams SET destination = $3::jsonb, secret_sealed = coalesce($4, secret_sealed),"
		"  revision = revision + 1, updated_at = clock_timestamp()"
		" WHERE tenant_id = $1::uuid AND id = $2::uuid AND deleted_at IS NULL RETURNING id", 4, p);
}

enum db_status cpdb_stream_command(struct db_conn *c, const char *tenant_id, const char *id,
                                   enum cpdb_stream_cmd cmd, const char *replay_since)
{
	static const char *const sql[] = {
		[CPDB_STREAM_PAUSE] = "UPDATE streams SET paused = true, updated_at = clock_timestamp()"
		                      " WHERE tenant_id = $1::uuid AND id = $2::uuid AND deleted_at IS NULL"
		                      "   AND $3::text IS NULL RETURNING id",
		[CPDB_STREAM_RESUME] = "UPDATE streams SET paused = false, resume_gen = resume_gen + 1,"
		                       "  updated_at = clock_timestamp()"
		                       " WHERE tenant_id = $1::uuid AND id = $2::uuid AND deleted_at IS NULL"
		                       "   AND $3::text IS NULL RETURNING id",
		[CPDB_STREAM_REPLAY] = "UPDATE streams SET replay_gen = replay_gen + 1,"
		                       "  replay_since = $3::timestamptz, updated_at = clock_timestamp()"
		                       " WHERE tenant_id = $1::uuid AND id = $2::uuid AND deleted_at IS NULL"
		                       " RETURNING id",
		[CPDB_STREAM_DELETE] = "UPDATE streams SET deleted_at = clock_timestamp(),"
		                       "  updated_at = clock_timestamp()"
		                       " WHERE tenant_id = $1::uuid AND id = $2::uuid AND deleted_at IS NULL"
		                       "   AND $3::text IS NULL RETURNING id",
	};
	const char *p[] = { tenant_id, id, replay_since };
	char got[40];
	return cpdb_returning_id(c, got, sql[cmd], 3, p);
}

enum db_status cpdb_streams_erase(struct db_conn *c, const char *tenant_id)
{
	const char *p[] = { tenant_id };
	/* stream_reports go with them (ON DELETE CASCADE). */
	return db_exec(c, NULL, "DELETE FROM streams WHERE tenant_id = $1::uuid", 1, p);
}

enum db_status cpdb_region_stream_rule(struct db_conn *c, const char *region, json_t **rule)
{
	const char *p[] = { region };
	return db_json_one(c, rule,
		"SELECT json_build_object('hosts', to_json(stream_hosts), 's3_regions',"
		"  to_json(stream_s3_regions), 'key', stream_key)::text FROM regions WHERE name = $1", 1, p);
}

enum db_status cpdb_region_set_streams(struct db_conn *c, const char *name, const char *hosts,
                                       const char *s3_regions, int set_key, const char *key)
{
	const char *p[] = { name, hosts, s3_regions, set_key ? "t" : "f", key };
	char got[40];
	return cpdb_returning_id(c, got,
		"UPDATE regions SET"
		"  stream_hosts = CASE WHEN $2::json IS NULL THEN stream_hosts"
		"                 ELSE ARRAY(SELECT json_array_elements_text($2::json)) END,"
		"  stream_s3_regions = CASE WHEN $3::json IS NULL THEN stream_s3_regions"
		"                      ELSE ARRAY(SELECT json_array_elements_text($3::json)) END,"
		"  stream_key = CASE WHEN $4::boolean THEN $5::jsonb ELSE stream_key END,"
		"  updated_at = now()"
		" WHERE name = $1 RETURNING name", 5, p);
}

enum db_status cpdb_doc_streams(struct db_conn *c, const char *region, const char *cell,
                                cpdb_doc_stream_fn fn, void *arg)
{
	const char *p[] = { region, cell };
	PGresult *r;
	/* Only the tenant's own cell delivers: a cell that still serves a
	 * moved tenant's reads for a while (its linger) must not send too.
	 * since rounds down, so that its second's events are not left out. */
	enum db_status st = db_exec(c, &r,
		"SELECT s.id, s.tenant_id, s.kind, s.destination::text, s.secret_sealed, s.revision,"
		"       s.paused, floor(extract(epoch FROM s.since))::bigint, s.resume_gen, s.replay_gen,"
		"       CASE WHEN s.replay_gen = 0 THEN 0"
		"            ELSE coalesce(floor(extract(epoch FROM s.replay_since))::bigint, 0) END"
		" FROM streams s JOIN tenants t ON t.id = s.tenant_id"
		" WHERE t.region = $1 AND ($2::text IS NULL OR t.cell = $2) AND t.status <> 'deleted'"
		"   AND s.deleted_at IS NULL"
		" ORDER BY s.tenant_id, s.created_at, s.id", 2, p);
	if (st != DB_OK)
		return st;
	int n = PQntuples(r);
	for (int i = 0; i < n && st == DB_OK; i++) {
		struct cpdb_doc_stream s = {
			.id = PQgetvalue(r, i, 0),
			.tenant_id = PQgetvalue(r, i, 1),
			.kind = PQgetvalue(r, i, 2),
			.destination = PQgetvalue(r, i, 3),
			.secret_sealed = PQgetvalue(r, i, 4),
			.revision = atoll(PQgetvalue(r, i, 5)),
			.paused = PQgetvalue(r, i, 6)[0] == 't',
			.since = atoll(PQgetvalue(r, i, 7)),
			.resume = atoll(PQgetvalue(r, i, 8)),
			.replay = atoll(PQgetvalue(r, i, 9)),
			.replay_since = atoll(PQgetvalue(r, i, 10)),
			.nrows = (size_t)n,
		};
		if (fn(&s, arg) != 0)
			st = DB_ERROR;
	}
	PQclear(r);
	return st;
}

enum db_status cpdb_stream_reports(struct db_conn *c, const char *region, const char *cell,
                                   int64_t observed_at, const char *reports, long *stored)
{
	char obs[24];
	snprintf(obs, sizeof obs, "%" PRId64, observed_at);
	const char *p[] = { region, cell, obs, reports };
	PGresult *r;
	/* Streams of other regions, deleted or unknown ones are skipped by the
	 * joins; an older observation than the one kept changes nothing. */
	enum db_status st = db_exec(c, &r,
		"INSERT INTO stream_reports AS k (stream_id, cell, status, lag_events, lag_seconds,"
		"  delivered_events, last_delivered_at, last_error, last_error_at, observed_at, reported_at)"
		" SELECT s.id, $2, x.status, x.lag_events, x.lag_seconds, x.delivered_events,"
		"        to_timestamp(x.last_delivered_at), x.last_error, to_timestamp(x.last_error_at),"
		"        to_timestamp($3::bigint), clock_timestamp()"
		" FROM json_to_recordset($4::json) AS x(id uuid, status text, lag_events bigint,"
		"      lag_seconds double precision, delivered_events bigint, last_delivered_at bigint,"
		"      last_error text, last_error_at bigint)"
		" JOIN streams s ON s.id = x.id AND s.deleted_at IS NULL"
		" JOIN tenants t ON t.id = s.tenant_id AND t.region = $1"
		" ON CONFLICT (stream_id) DO UPDATE SET cell = excluded.cell, status = excluded.status,"
		"   lag_events = excluded.lag_events, lag_seconds = excluded.lag_seconds,"
		"   delivered_events = excluded.delivered_events,"
		"   last_delivered_at = excluded.last_delivered_at, last_error = excluded.last_error,"
		"   last_error_at = excluded.last_error_at, observed_at = excluded.observed_at,"
		"   reported_at = excluded.reported_at"
		" WHERE k.observed_at <= excluded.observed_at", 4, p);
	if (st != DB_OK)
		return st;
	*stored = atol(PQcmdTuples(r));
	PQclear(r);
	return DB_OK;
}
