/* SQL of users, logins and sessions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpdb.h"

enum db_status cpdb_user_insert(struct db_conn *c, const char *tenant_id, const char *email,
                                const char *role, const char *password_hash, json_t **doc)
{
	const char *p[] = { tenant_id, email, role, password_hash };
	char id[40];
	enum db_status st = cpdb_returning_id(c, id,
		"INSERT INTO users (tenant_id, email, role, password_hash)"
		" VALUES ($1::uuid, $2, $3, $4) RETURNING id", 4, p);
	return st == DB_OK ? cpdb_user_get(c, tenant_id, id, 0, doc) : st;
}

enum db_status cpdb_users_page(struct db_conn *c, const char *tenant_id, const struct cp_page *pg,
                               json_t **items)
{
	char limit[16];
	snprintf(limit, sizeof limit, "%d", pg->limit + 1);
	const char *p[] = { tenant_id, pg->have_cursor ? pg->ts : NULL, pg->have_cursor ? pg->id : NULL,
		                limit };
	return db_json_page(c, items,
		"SELECT doc::text, (extract(epoch FROM created_at) * 1000000)::bigint, id"
		" FROM api_users"
		" WHERE tenant_id IS NOT DISTINCT FROM $1::uuid"
		"   AND ($2::bigint IS NULL OR (created_at, id) >"
		"        ('epoch'::timestamptz + $2::bigint * interval '1 microsecond', $3::uuid))"
		" ORDER BY created_at, id LIMIT $4::int", 4, p);
}

enum db_status cpdb_user_get(struct db_conn *c, const char *tenant_id, const char *id,
                             int for_update, json_t **doc)
{
	const char *p[] = { tenant_id, id };
	if (for_update) {
		enum db_status st = db_exec(c, NULL,
			"SELECT 1 FROM users WHERE tenant_id IS NOT DISTINCT FROM $1::uuid AND id = $2"
			" FOR UPDATE", 2, p);
		if (st != DB_OK)
			return st;
	}
	return db_json_one(c, doc,
		"SELECT doc::text FROM api_users WHERE tenant_id IS NOT DISTINCT FROM $1::uuid AND id = $2",
		2, p);
}

enum db_status cpdb_user_set_role(struct db_conn *c, const char *tenant_id, const char *id,
                                  const char *role, json_t **doc)
{
	const char *p[] = { tenant_id, id, role };
	char got[40];
	enum db_status st = cpdb_returning_id(c, got,
		"UPDATE users SET role = $3, updated_at = clock_timestamp()"
		" WHERE tenant_id = $1::uuid AND id = $2 RETURNING id", 3, p);
	return st == DB_OK ? cpdb_user_get(c, tenant_id, id, 0, doc) : st;
}

enum db_status cpdb_user_delete(struct db_conn *c, const char *tenant_id, const char *id)
{
	const char *p[] = { tenant_id, id };
	return db_exec(c, NULL, "DELETE FROM users WHERE tenant_id IS NOT DISTINCT FROM $1::uuid AND id = $2",
	               2, p);
}

enum db_status cpdb_tenant_owner_count(struct db_conn *c, const char *tenant_id, long *n)
{
	const char *p[] = { tenant_id };
	PGresult *r;
	enum db_status st = db_exec(c, &r,
		"SELECT count(*) FROM users WHERE tenant_id = $1::uuid AND role = 'owner'", 1, p);
	if (st == DB_OK) {
		*n = atol(PQgetvalue(r, 0, 0));
		PQclear(r);
	}
	return st;
}

enum db_status cpdb_login_lookup(struct db_conn *c, const char *tenant_slug, const char *email,
                                 struct cpdb_login *out)
{
	const char *p[] = { tenant_slug, email };
	PGresult *r;
	enum db_status st = db_exec(c, &r,
		"SELECT u.id, coalesce(u.tenant_id::text, ''), u.role, coalesce(t.status, ''),"
		"       u.password_hash"
		" FROM users u LEFT JOIN tenants t ON t.id = u.tenant_id"
		" WHERE u.email = $2 AND (($1::text IS NULL AND u.tenant_id IS NULL) OR t.slug = $1)"
		" FOR UPDATE OF u", 2, p);
	if (st != DB_OK)
		return st;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return DB_NOT_FOUND;
	}
	snprintf(out->user_id, sizeof out->user_id, "%s", PQgetvalue(r, 0, 0));
	snprintf(out->tenant_id, sizeof out->tenant_id, "%s", PQgetvalue(r, 0, 1));
	snprintf(out->role, sizeof out->role, "%s", PQgetvalue(r, 0, 2));
	snprintf(out->tenant_status, sizeof out->tenant_status, "%s", PQgetvalue(r, 0, 3));
	snprintf(out->password_hash, sizeof out->password_hash, "%s", PQgetvalue(r, 0, 4));
	PQclear(r);
	return DB_OK;
}

enum db_status cpdb_login_wait(struct db_conn *c, const char *tenant_slug, const char *email,
                               const char *source, long *wait_s)
{
	const char *p[] = { tenant_slug ? tenant_slug : "", email, source };
	PGresult *r;
	/* One attempt at a time per account name, known or not, until commit:
	 * parallel guesses each see the failures counted before them. The
	 * two-key form keeps clear of the migration lock's single key. */
	enum db_status st = db_exec(c, NULL,
		"SELECT pg_advisory_xact_lock(5102, hashtext($1 || ' ' || $2))", 2, p);
	if (st != DB_OK)
		return st;
	/* clock_timestamp(), not now(): this transaction may have waited on
	 * the lock above behind one that set locked_until from its own, later
	 * now(), and the wait must never exceed the delay that was set. */
	st = db_exec(c, &r,
		"SELECT coalesce(max(ceil(extract(epoch FROM locked_until - clock_timestamp()))), 0)::bigint"
		" FROM login_failures"
		" WHERE tenant_slug = $1 AND email = $2 AND source IN ($3, '*')"
		"   AND locked_until > clock_timestamp()",
		3, p);
	if (st != DB_OK)
		return st;
	*wait_s = atol(PQgetvalue(r, 0, 0));
	PQclear(r);
	return DB_OK;
}

enum db_status cpdb_login_failed(struct db_conn *c, const char *tenant_slug, const char *email,
                                 const char *source, const struct cpdb_login_policy *pol)
{
	char maxs[24], caps[24], accs[24];
	snprintf(maxs, sizeof maxs, "%ld", pol->max_failures);
	snprintf(caps, sizeof caps, "%ld", pol->lockout_max_s);
	snprintf(accs, sizeof accs, "%ld", pol->account_max_failures);
	const char *p[] = { tenant_slug ? tenant_slug : "", email, source, maxs, caps, accs };
	/* From the max-th consecutive failure, the source waits 2^(n-max)
	 * seconds, at most lockout_max_s; the exponent is capped before power()
	 * so that a long attack cannot overflow it and end the delay. */
	enum db_status st = db_exec(c, NULL,
		"INSERT INTO login_failures AS f (tenant_slug, email, source, failures, last_failed_at, locked_until)"
		" VALUES ($1, $2, $3, 1, now(),"
		"         CASE WHEN 1 >= $4::int THEN now() + interval '1 second' END)"
		" ON CONFLICT (tenant_slug, email, source) DO UPDATE SET"
		"  failures = least(f.failures, 1000000) + 1, last_failed_at = now(),"
		"  locked_until = CASE WHEN f.failures + 1 >= $4::int"
		"    THEN now() + least(power(2, least(f.failures + 1 - $4::int, 30)), $5::bigint)"
		"                 * interval '1 second'"
		"    ELSE f.locked_until END", 5, p);
	if (st != DB_OK)
		return st;
	/* Many sources each below their own limit: past account_max failures
	 * (by sources that failed within lockout_max_s, each counted up to max,
	 * as its own delay covers the rest), every failure holds the account
	 * for one second, whoever asks. */
	const char *q[] = { p[0], p[1], p[4], p[5], p[3] };
	return db_exec(c, NULL,
		"INSERT INTO login_failures AS f (tenant_slug, email, source, failures, last_failed_at, locked_until)"
		" SELECT $1, $2, '*', 0, now(), now() + interval '1 second'"
		" FROM (SELECT coalesce(sum(least(failures, $5::int)), 0) AS n FROM login_failures"
		"       WHERE tenant_slug = $1 AND email = $2 AND source <> '*'"
		"         AND last_failed_at > now() - $3::bigint * interval '1 second') t"
		" WHERE t.n >= $4::bigint"
		" ON CONFLICT (tenant_slug, email, source) DO UPDATE SET"
		"  last_failed_at = now(), locked_until = now() + interval '1 second'", 5, q);
}

enum db_status cpdb_login_succeeded(struct db_conn *c, const char *tenant_slug, const char *email,
                                    const char *source)
{
	const char *p[] = { tenant_slug ? tenant_slug : "", email, source };
	return db_exec(c, NULL,
		"DELETE FROM login_failures WHERE tenant_slug = $1 AND email = $2 AND source = $3", 3, p);
}

enum db_status cpdb_login_failures_purge(struct db_conn *c, long *removed)
{
	PGresult *r;
	enum db_status st = db_exec(c, &r,
		"WITH d AS (DELETE FROM login_failures"
		"           WHERE last_failed_at < now() - interval '1 day'"
		"             AND (locked_until IS NULL OR locked_until < now()) RETURNING 1)"
		" SELECT count(*) FROM d", 0, NULL);
	if (st != DB_OK)
		return st;
	*removed = atol(PQgetvalue(r, 0, 0));
	PQclear(r);
	return DB_OK;
}

enum db_status cpdb_session_insert(struct db_conn *c, const char *token_sha256_hex,
                                   const char *user_id, int64_t ttl_ms, char expires_at[40])
{
	char hex[80], ttl[32];
	snprintf(hex, sizeof hex, "\\x%s", token_sha256_hex);
	snprintf(ttl, sizeof ttl, "%lld", (long long)ttl_ms);
	const char *p[] = { hex, user_id, ttl };
	PGresult *r;
	enum db_status st = db_exec(c, &r,
		"INSERT INTO sessions (token_sha256, user_id, expires_at)"
		" VALUES ($1::bytea, $2, now() + $3::bigint * interval '1 millisecond')"
		" RETURNING api_ts(expires_at)", 3, p);
	if (st == DB_OK) {
		snprintf(expires_at, 40, "%s", PQgetvalue(r, 0, 0));
		PQclear(r);
	}
	return st;
}

enum db_status cpdb_session_lookup(struct db_conn *c, const char *token_sha256_hex,
                                   struct cpdb_session *out)
{
	char hex[80];
	snprintf(hex, sizeof hex, "\\x%s", token_sha256_hex);
	const char *p[] = { hex };
	PGresult *r;
	enum db_status st = db_exec(c, &r,
		"SELECT u.id, coalesce(u.tenant_id::text, ''), u.role"
		" FROM sessions s JOIN users u ON u.id = s.user_id"
		" LEFT JOIN tenants t ON t.id = u.tenant_id"
		" WHERE s.token_sha256 = $1::bytea AND s.expires_at > now()"
		"   AND (t.id IS NULL OR t.status <> 'deleted')", 1, p);
	if (st != DB_OK)
		return st;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return DB_NOT_FOUND;
	}
	snprintf(out->user_id, sizeof out->user_id, "%s", PQgetvalue(r, 0, 0));
	snprintf(out->tenant_id, sizeof out->tenant_id, "%s", PQgetvalue(r, 0, 1));
	snprintf(out->role, sizeof out->role, "%s", PQgetvalue(r, 0, 2));
	PQclear(r);
	return DB_OK;
}

enum db_status cpdb_session_delete(struct db_conn *c, const char *token_sha256_hex)
{
	char hex[80];
	snprintf(hex, sizeof hex, "\\x%s", token_sha256_hex);
	const char *p[] = { hex };
	return db_exec(c, NULL, "DELETE FROM sessions WHERE token_sha256 = $1::bytea", 1, p);
}

enum db_status cpdb_user_end_sessions(struct db_conn *c, const char *user_id)
{
	const char *p[] = { user_id };
	return db_exec(c, NULL, "DELETE FROM sessions WHERE user_id = $1", 1, p);
}
