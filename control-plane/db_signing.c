/* SQL of the signing keys (signing_keys.h, migration 0012). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpdb.h"

/* The columns of a struct cpdb_signing_key, in each_key()'s order. */
#define KEY_COLUMNS                                                                                            \
	"kid, state, public_jwk::text, sealed, kek_id, COALESCE(floor(extract(epoch FROM activated_at))::bigint, 0)," \
	" (SELECT max(ver) FROM signing_keys)"

/* Hands each row of `r` (KEY_COLUMNS) to `fn`, then clears `r`. */
static void each_key(PGresult *r, cpdb_signing_key_fn fn, void *arg)
{
	for (int i = 0; i < PQntuples(r); i++) {
		struct cpdb_signing_key k = {
			.kid = PQgetvalue(r, i, 0),
			.state = PQgetvalue(r, i, 1),
			.public_jwk = PQgetvalue(r, i, 2),
			.sealed = PQgetisnull(r, i, 3) ? NULL : PQgetvalue(r, i, 3),
			.kek_id = PQgetvalue(r, i, 4),
			.activated_at = strtoll(PQgetvalue(r, i, 5), NULL, 10),
			.set_ver = strtoll(PQgetvalue(r, i, 6), NULL, 10),
		};
		fn(&k, arg);
	}
	PQclear(r);
}

enum db_status cpdb_signing_keys(struct db_conn *c, int64_t overlap_s, cpdb_signing_key_fn fn, void *arg)
{
	char ov[24];
	snprintf(ov, sizeof ov, "%lld", (long long)overlap_s);
	const char *p[] = { ov };
	PGresult *r;
	/* What a replica signs with and publishes: the current key, the staged
	 * one, and previous keys within the overlap. */
	enum db_status st = db_exec(
		c, &r,
		"SELECT " KEY_COLUMNS
		"  FROM signing_keys"
		" WHERE state IN ('staged', 'current')"
		"    OR (state = 'previous' AND retired_at > now() - $1::bigint * interval '1 second')"
		" ORDER BY CASE state WHEN 'current' THEN 0 WHEN 'staged' THEN 1 ELSE 2 END, retired_at DESC, kid",
		1, p);
	if (st != DB_OK)
		return st;
	each_key(r, fn, arg);
	return DB_OK;
}

enum db_status cpdb_signing_key_insert(struct db_conn *c, const char *kid, const char *state,
                                       const char *public_jwk, const char *sealed, const char *kek_id)
{
	const char *p[] = { kid, state, public_jwk, sealed, kek_id };
	return db_exec(c, NULL,
		"INSERT INTO signing_keys (kid, state, public_jwk, sealed, kek_id, activated_at)"
		" VALUES ($1, $2, $3::jsonb, $4, $5, CASE WHEN $2 = 'current' THEN clock_timestamp() END)",
		5, p);
}

enum db_status cpdb_signing_key_previous(struct db_conn *c, const char *kid, const char *public_jwk,
                                         const char *sealed, const char *kek_id, int64_t retired_at)
{
	char at[24];
	snprintf(at, sizeof at, "%lld", (long long)retired_at);
	const char *p[] = { kid, public_jwk, sealed, kek_id, at };
	return db_exec(c, NULL,
		"INSERT INTO signing_keys (kid, state, public_jwk, sealed, kek_id, retired_at)"
		" VALUES ($1, 'previous', $2::jsonb, $3, $4, to_timestamp($5::bigint))",
		5, p);
}

enum db_status cpdb_signing_keys_lock(struct db_conn *c)
{
	/* Key changes one at a time, whichever replica or command makes them. */
	return db_exec(c, NULL, "LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE", 0, NULL);
}

enum db_status cpdb_signing_key_get(struct db_conn *c, const char *kid, const char *state, json_t **doc)
{
	const char *p[] = { kid, state };
	return db_json_one(c, doc,
		"SELECT json_build_object('kid', kid, 'state', state, 'kek_id', kek_id, 'created_at', created_at,"
		"                         'activated_at', activated_at, 'retired_at', retired_at)::text"
		"  FROM signing_keys WHERE ($1::text IS NULL OR kid = $1) AND ($2::text IS NULL OR state = $2)",
		2, p);
}

/* An UPDATE of the one row of key $1: DB_NOT_FOUND when there is none. */
static enum db_status update_key(struct db_conn *c, const char *sql, int n, const char *const *p)
{
	PGresult *r;
	enum db_status st = db_exec(c, &r, sql, n, p);
	if (st != DB_OK)
		return st;
	st = strcmp(PQcmdTuples(r), "1") ? DB_NOT_FOUND : DB_OK;
	PQclear(r);
	return st;
}

enum db_status cpdb_signing_key_set_state(struct db_conn *c, const char *kid, const char *state)
{
	const char *p[] = { kid, state };
	return update_key(c,
	                  "UPDATE signing_keys SET state = $2, ver = nextval('signing_keys_ver'),"
	                  "       activated_at = CASE WHEN $2 = 'current' THEN clock_timestamp() ELSE activated_at END,"
	                  "       retired_at = CASE WHEN $2 = 'previous' OR (state = 'current' AND $2 = 'retired')"
	                  "                         THEN clock_timestamp() ELSE retired_at END"
	                  " WHERE kid = $1",
	                  2, p);
}

enum db_status cpdb_signing_keys_list(struct db_conn *c, json_t **items)
{
	return db_json_rows(c, items,
		"SELECT json_build_object('kid', kid, 'state', state, 'kek_id', kek_id, 'created_at', created_at,"
		"                         'activated_at', activated_at, 'retired_at', retired_at)::text"
		"  FROM signing_keys"
		" ORDER BY CASE state WHEN 'current' THEN 0 WHEN 'staged' THEN 1 WHEN 'previous' THEN 2 ELSE 3 END,"
		"          created_at DESC",
		0, NULL);
}

enum db_status cpdb_signing_keys_aged(struct db_conn *c, int64_t overlap_s, cpdb_signing_kid_fn fn, void *arg)
{
	char ov[24];
	snprintf(ov, sizeof ov, "%lld", (long long)overlap_s);
	const char *p[] = { ov };
	PGresult *r;
	enum db_status st = db_exec(c, &r,
		"SELECT kid FROM signing_keys"
		" WHERE state = 'previous' AND retired_at <= now() - $1::bigint * interval '1 second'"
		" ORDER BY kid",
		1, p);
	if (st != DB_OK)
		return st;
	for (int i = 0; i < PQntuples(r); i++)
		fn(PQgetvalue(r, i, 0), arg);
	PQclear(r);
	return DB_OK;
}

enum db_status cpdb_signing_keys_all(struct db_conn *c, cpdb_signing_key_fn fn, void *arg)
{
	PGresult *r;
	enum db_status st = db_exec(c, &r,
	                            "SELECT " KEY_COLUMNS " FROM signing_keys ORDER BY created_at, kid", 0, NULL);
	if (st != DB_OK)
		return st;
	each_key(r, fn, arg);
	return DB_OK;
}

enum db_status cpdb_signing_key_reseal(struct db_conn *c, const char *kid, const char *sealed, const char *kek_id)
{
	const char *p[] = { kid, sealed, kek_id };
	return update_key(c, "UPDATE signing_keys SET sealed = $2, kek_id = $3 WHERE kid = $1", 3, p);
}
