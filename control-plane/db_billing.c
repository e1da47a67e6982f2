/* SQL of billing: plans and their prices, the usage ledger, periods and
 * invoices. Amounts are integer minor units; overage rounds up to the next
 * minor unit: ceil(events beyond those included * price_per_1000 / 1000),
 * computed in bigint (sum() gives numeric, hence the casts: a numeric
 * division would round instead of truncating). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpdb.h"

enum db_status cpdb_plans_list(struct db_conn *c, json_t **items)
{
	return db_json_rows(c, items, "SELECT doc::text FROM api_plans ORDER BY id", 0, NULL);
}

enum db_status cpdb_plan_get(struct db_conn *c, const char *id, json_t **doc)
{
	const char *p[] = { id };
	return db_json_one(c, doc, "SELECT doc::text FROM api_plans WHERE id = $1", 1, p);
}

enum db_status cpdb_plan_insert(struct db_conn *c, const char *id, const char *const v[9], json_t **doc)
{
	const char *p[] = { id, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8] };
	enum db_status st = db_exec(c, NULL,
		"INSERT INTO plans (id, name, currency, base_price, events_included, price_per_1000,"
		"                   rate_limit, burst, monthly_event_quota, retention_days)"
		" VALUES ($1, $2, $3, $4::bigint, $5::bigint, $6::bigint, $7::int, $8::int, $9::bigint, $10::int)",
		10, p);
	return st == DB_OK ? cpdb_plan_get(c, id, doc) : st;
}

enum db_status cpdb_plan_update(struct db_conn *c, const char *id, const char *const v[9], json_t **doc)
{
	const char *p[] = { id, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8] };
	char got[40];
	enum db_status st = cpdb_returning_id(c, got,
		"UPDATE plans SET name = coalesce($2, name), currency = coalesce($3, currency),"
		"  base_price = coalesce($4::bigint, base_price),"
		"  events_included = coalesce($5::bigint, events_included),"
		"  price_per_1000 = coalesce($6::bigint, price_per_1000),"
		"  rate_limit = coalesce($7::int, rate_limit), burst = coalesce($8::int, burst),"
		"  monthly_event_quota = coalesce($9::bigint, monthly_event_quota),"
		"  retention_days = coalesce($10::int, retention_days), updated_at = now()"
		" WHERE id = $1 RETURNING id", 10, p);
	return st == DB_OK ? cpdb_plan_get(c, id, doc) : st;
}

enum db_status cpdb_plan_bump_regions(struct db_conn *c, const char *id)
{
	const char *p[] = { id };
	return db_exec(c, NULL,
		"UPDATE regions SET config_version = config_version + 1"
		" WHERE name IN (SELECT region FROM tenants WHERE plan = $1 AND status <> 'deleted')", 1, p);
}

enum db_status cpdb_usage_check_windows(struct db_conn *c, const char *records, long *index,
                                        char field[16])
{
	const char *p[] = { records };
	PGresult *r;
	enum db_status st = db_exec(c, &r,
		"SELECT i, CASE WHEN (v->>'window_end')::timestamptz < (v->>'window_start')::timestamptz"
		"               THEN 'window_end' ELSE 'window_start' END"
		" FROM json_array_elements($1::json) WITH ORDINALITY AS r(v, i)"
		" WHERE date_trunc('month', (v->>'window_start')::timestamptz AT TIME ZONE 'UTC')::date"
		"       <> to_date(v->>'period', 'YYYY-MM')"
		"    OR (v->>'window_end')::timestamptz < (v->>'window_start')::timestamptz"
		" ORDER BY i LIMIT 1", 1, p);
	if (st != DB_OK)
		return st;
	*index = PQntuples(r) ? atol(PQgetvalue(r, 0, 0)) : 0;
	if (*index)
		snprintf(field, 16, "%s", PQgetvalue(r, 0, 1));
	PQclear(r);
	return DB_OK;
}

enum db_status cpdb_usage_foreign(struct db_conn *c, const char *region, const char *records, long *n)
{
	const char *p[] = { region, records };
	PGresult *r;
	enum db_status st = db_exec(c, &r,
		"SELECT count(*) FROM json_array_elements($2::json) AS r(v)"
		" WHERE NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = (v->>'tenant')::uuid AND t.region = $1)"
		/* the source of a done move reports what it stored before the cutover */
		"   AND NOT EXISTS (SELECT 1 FROM moves m WHERE m.tenant_id = (v->>'tenant')::uuid"
		"                    AND m.from_region = $1 AND m.state = 'done')",
		2, p);
	if (st == DB_OK) {
		*n = atol(PQgetvalue(r, 0, 0));
		PQclear(r);
	}
	return st;
}

enum db_status cpdb_usage_insert(struct db_conn *c, const char *region, const char *cell,
                                 const char *key, const char *records)
{
	const char *p[] = { region, key, records, cell };
	return db_exec(c, NULL,
		"INSERT INTO usage_ledger (tenant_id, region, period, events, window_start, window_end,"
		"                          batch_key, cell)"
		" SELECT (v->>'tenant')::uuid, $1, to_date(v->>'period', 'YYYY-MM'), (v->>'events')::bigint,"
		"        (v->>'window_start')::timestamptz, (v->>'window_end')::timestamptz, $2, $4"
		" FROM json_array_elements($3::json) AS r(v)", 4, p);
}

enum db_status cpdb_usage_limits(struct db_conn *c, const char *records, const char *max_events,
                                 long *early, long *over)
{
	const char *p[] = { records, max_events };
	PGresult *r;
	enum db_status st = db_exec(c, &r,
		"WITH rec AS (SELECT i, (v->>'tenant')::uuid AS tenant, to_date(v->>'period', 'YYYY-MM') AS period,"
		"                    (v->>'events')::bigint AS events"
		"             FROM json_array_elements($1::json) WITH ORDINALITY AS r(v, i)),"
		" run AS (SELECT i, tenant, period, sum(events) OVER (PARTITION BY tenant, period ORDER BY i) AS upto"
		"         FROM rec)"
		" SELECT coalesce((SELECT min(rec.i) FROM rec JOIN tenants t ON t.id = rec.tenant"
		"                  WHERE (rec.period + interval '1 month') AT TIME ZONE 'UTC' <= t.created_at), 0),"
		"        coalesce((SELECT min(run.i) FROM run"
		"                  WHERE run.upto + (SELECT coalesce(sum(events), 0) FROM usage_ledger u"
		"                                    WHERE u.tenant_id = run.tenant AND u.period = run.period)"
		"                        > $2::numeric), 0)", 2, p);
	if (st == DB_OK) {
		*early = atol(PQgetvalue(r, 0, 0));
		*over = atol(PQgetvalue(r, 0, 1));
		PQclear(r);
	}
	return st;
}

enum db_status cpdb_plan_used(struct db_conn *c, const char *id, long *n)
{
	const char *p[] = { id };
	PGresult *r;
	enum db_status st = db_exec(c, &r,
		"SELECT count(*) FROM (SELECT 1 FROM tenant_plan_history WHERE plan = $1 LIMIT 1) x", 1, p);
	if (st == DB_OK) {
		*n = atol(PQgetvalue(r, 0, 0));
		PQclear(r);
	}
	return st;
}

enum db_status cpdb_plan_currency(struct db_conn *c, const char *id, char currency[4])
{
	const char *p[] = { id };
	PGresult *r;
	enum db_status st = db_exec(c, &r, "SELECT currency FROM plans WHERE id = $1", 1, p);
	if (st != DB_OK)
		return st;
	if (PQntuples(r) == 0)
		st = DB_NOT_FOUND;
	else
		snprintf(currency, 4, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return st;
}

enum db_status cpdb_usage_report(struct db_conn *c, const char *tenant_id, const char *period,
                                 json_t **doc)
{
	const char *p[] = { tenant_id, period };
	return db_json_one(c, doc,
		"WITH u AS (SELECT * FROM usage_ledger WHERE tenant_id = $1::uuid"
		"           AND period = to_date($2, 'YYYY-MM'))"
		" SELECT json_build_object('tenant_id', $1::uuid, 'period', $2,"
		"   'total', (SELECT coalesce(sum(events), 0) FROM u),"
		"   'by_day', coalesce((SELECT json_agg(json_build_object('day', d, 'events', e) ORDER BY d)"
		"     FROM (SELECT to_char(window_start AT TIME ZONE 'UTC', 'YYYY-MM-DD') d, sum(events) e"
		"           FROM u GROUP BY 1) x), '[]'::json),"
		"   'by_region', coalesce((SELECT json_agg(json_build_object('region', region, 'events', e)"
		"                                ORDER BY region)"
		"     FROM (SELECT region, sum(events) e FROM u GROUP BY 1) y), '[]'::json))::text", 2, p);
}

enum db_status cpdb_period_ended(struct db_conn *c, const char *period, int *ended)
{
	const char *p[] = { period };
	PGresult *r;
	enum db_status st = db_exec(c, &r,
		"SELECT (to_date($1, 'YYYY-MM') + interval '1 month') AT TIME ZONE 'UTC' <= now()", 1, p);
	if (st == DB_OK) {
		*ended = PQgetvalue(r, 0, 0)[0] == 't';
		PQclear(r);
	}
	return st;
}

/* The statements of a close, in order; each takes $1 = the period's first
 * day and $2 = the first instant after it (UTC). */
static const char *const close_sql[] = {
	/* One invoice per tenant that existed before the period's end and is
	 * not deleted, or that has unbilled usage up to this period, priced
	 * with the plan in force at the end of the period. */
	"INSERT INTO invoices (tenant_id, period, plan, currency, total)"
	" SELECT t.id, $1::date, h.plan, p.currency, 0"
	" FROM tenants t"
	" CROSS JOIN LATERAL (SELECT plan FROM tenant_plan_history h WHERE h.tenant_id = t.id"
	"                     AND h.since < $2::timestamptz ORDER BY h.since DESC LIMIT 1) h"
	" JOIN plans p ON p.id = h.plan"
	" WHERE t.created_at < $2::timestamptz"
	"   AND (t.status <> 'deleted' OR EXISTS (SELECT 1 FROM usage_ledger u WHERE u.tenant_id = t.id"
	"        AND u.invoice_id IS NULL AND (u.period = $1::date OR u.period IN"
	"            (SELECT period FROM billing_periods WHERE period < $1::date))))",
	/* The plan's base fee. */
	"INSERT INTO invoice_lines (invoice_id, line, kind, period, description, quantity, amount)"
	" SELECT i.id, 1, 'base', $1::date, p.name || ' plan, ' || to_char($1::date, 'YYYY-MM'), 1, p.base_price"
	" FROM invoices i JOIN plans p ON p.id = i.plan WHERE i.period = $1::date",
	/* Events of the period beyond those included. */
	"INSERT INTO invoice_lines (invoice_id, line, kind, period, description, quantity, amount)"
	" SELECT i.id, 2, 'overage', $1::date,"
	"        x.used - p.events_included || ' events beyond the ' || p.events_included || ' included',"
	"        x.used - p.events_included,"
	"        ((x.used - p.events_included) * p.price_per_1000 + 999) / 1000"
	" FROM invoices i JOIN plans p ON p.id = i.plan"
	" CROSS JOIN LATERAL (SELECT coalesce(sum(events), 0)::bigint AS used FROM usage_ledger u"
	"                     WHERE u.tenant_id = i.tenant_id AND u.period = $1::date"
	"                       AND u.invoice_id IS NULL) x"
	" WHERE i.period = $1::date AND x.used > p.events_included",
	/* Usage that arrived after its own period was closed: the overage it
	 * adds to that period, at that period's plan. Only closed periods: an
	 * earlier period still open is billed by its own close. */
	"INSERT INTO invoice_lines (invoice_id, line, kind, period, description, quantity, amount)"
	" SELECT i.id, 2 + row_number() OVER (PARTITION BY i.id ORDER BY late.period), 'adjustment',"
	"        late.period,"
	"        late.events || ' events reported after ' || to_char(late.period, 'YYYY-MM') || ' was closed',"
	"        late.events,"
	"        (greatest(billed.events + late.events - q.events_included, 0) * q.price_per_1000 + 999) / 1000"
	"        - (greatest(billed.events - q.events_included, 0) * q.price_per_1000 + 999) / 1000"
	" FROM invoices i"
	" JOIN (SELECT tenant_id, period, sum(events)::bigint AS events FROM usage_ledger"
	"       WHERE invoice_id IS NULL AND period < $1::date"
	"         AND period IN (SELECT period FROM billing_periods) GROUP BY 1, 2) late"
	"   ON late.tenant_id = i.tenant_id"
	" CROSS JOIN LATERAL (SELECT coalesce(sum(events), 0)::bigint AS events FROM usage_ledger u"
	"                     WHERE u.tenant_id = i.tenant_id AND u.period = late.period"
	"                       AND u.invoice_id IS NOT NULL) billed"
	" CROSS JOIN LATERAL (SELECT p.* FROM plans p WHERE p.id = (SELECT h.plan FROM tenant_plan_history h"
	"                     WHERE h.tenant_id = i.tenant_id"
	"                       AND h.since < late.period + interval '1 month'"
	"                     ORDER BY h.since DESC LIMIT 1)) q"
	" WHERE i.period = $1::date",
	/* The ledger rows these invoices bill: this period's, and late ones of
	 * periods already closed (a period still open keeps its own usage for
	 * its own close, whatever order periods are closed in). */
	"UPDATE usage_ledger u SET invoice_id = i.id FROM invoices i"
	" WHERE i.period = $1::date AND i.tenant_id = u.tenant_id AND u.invoice_id IS NULL"
	"   AND (u.period = $1::date OR u.period IN"
	"        (SELECT period FROM billing_periods WHERE period < $1::date))",
	"UPDATE invoices i SET total = (SELECT coalesce(sum(amount), 0) FROM invoice_lines l"
	"                               WHERE l.invoice_id = i.id)"
	" WHERE i.period = $1::date",
	"UPDATE billing_periods SET invoices = (SELECT count(*) FROM invoices WHERE period = $1::date)"
	" WHERE period = $1::date",
};

enum db_status cpdb_period_close(struct db_conn *c, const char *period, int *closed_now,
                                 json_t **summary)
{
	const char *p[] = { period };
	PGresult *r;
	enum db_status st = db_exec(c, &r,
		"INSERT INTO billing_periods (period, invoices) VALUES (to_date($1, 'YYYY-MM'), 0)"
		" ON CONFLICT DO NOTHING RETURNING 1", 1, p);
	if (st != DB_OK)
		return st;
	*closed_now = PQntuples(r) == 1;
	PQclear(r);
	if (*closed_now) {
		PGresult *b;
		if ((st = db_exec(c, &b,
		                  "SELECT to_date($1, 'YYYY-MM')::text,"
		                  " ((to_date($1, 'YYYY-MM') + interval '1 month') AT TIME ZONE 'UTC')::text",
		                  1, p)) != DB_OK)
			return st;
		char start[32], end[64];
		snprintf(start, sizeof start, "%s", PQgetvalue(b, 0, 0));
		snprintf(end, sizeof end, "%s", PQgetvalue(b, 0, 1));
		PQclear(b);
		const char *q[] = { start, end };
		/* Each statement gets the parameters it refers to ($1, or $1 and $2). */
		for (size_t i = 0; i < sizeof close_sql / sizeof close_sql[0] && st == DB_OK; i++)
			st = db_exec(c, NULL, close_sql[i], strstr(close_sql[i], "$2") ? 2 : 1, q);
		if (st != DB_OK)
			return st;
	}
	return db_json_one(c, summary,
		"SELECT json_build_object('period', to_char(period, 'YYYY-MM'), 'invoices', invoices,"
		"                         'closed_at', api_ts(closed_at))::text"
		" FROM billing_periods WHERE period = to_date($1, 'YYYY-MM')", 1, p);
}

enum db_status cpdb_invoices_for_tenant(struct db_conn *c, const char *tenant_id, json_t **items)
{
	const char *p[] = { tenant_id };
	return db_json_rows(c, items,
		"SELECT doc::text FROM api_invoices WHERE tenant_id = $1::uuid ORDER BY period DESC", 1, p);
}

enum db_status cpdb_invoice_get(struct db_conn *c, const char *id, int for_update, json_t **doc)
{
	const char *p[] = { id };
	if (for_update) {
		enum db_status st = db_exec(c, NULL, "SELECT 1 FROM invoices WHERE id = $1::uuid FOR UPDATE", 1, p);
		if (st != DB_OK)
			return st;
	}
	return db_json_one(c, doc, "SELECT doc::text FROM api_invoices WHERE id = $1::uuid", 1, p);
}

enum db_status cpdb_invoice_set_status(struct db_conn *c, const char *id, const char *status,
                                       json_t **doc)
{
	const char *p[] = { id, status };
	char got[40];
	enum db_status st = cpdb_returning_id(c, got,
		"UPDATE invoices SET status = $2,"
		"  finalized_at = CASE WHEN $2 = 'finalized' THEN clock_timestamp() ELSE finalized_at END,"
		"  voided_at = CASE WHEN $2 = 'void' THEN clock_timestamp() ELSE voided_at END"
		" WHERE id = $1::uuid RETURNING id", 2, p);
	return st == DB_OK ? cpdb_invoice_get(c, id, 0, doc) : st;
}
