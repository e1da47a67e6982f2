/* SQL of the audit log. */
#include <stdio.h>

#include "cpdb.h"

enum db_status cpdb_audit_insert(struct db_conn *c, const char *actor_type, const char *actor_id,
                                 const char *tenant_id, const char *action, const char *object_type,
                                 const char *object_id, const char *before, const char *after,
                                 const char *request_id)
{
	const char *p[] = { actor_type, actor_id, tenant_id, action, object_type, object_id, before,
		                after, request_id };
	return db_exec(c, NULL,
		"INSERT INTO audit_log (actor_type, actor_id, tenant_id, action, object_type, object_id,"
		"                       before, after, request_id)"
		" VALUES ($1, $2, $3::uuid, $4, $5, $6, $7::jsonb, $8::jsonb, $9)", 9, p);
}

enum db_status cpdb_audit_page(struct db_conn *c, const char *tenant_id, const struct cp_page *pg,
                               json_t **items)
{
	char limit[16];
	snprintf(limit, sizeof limit, "%d", pg->limit + 1);
	/* Newest first; the cursor's number is the last id seen. */
	const char *p[] = { tenant_id, pg->have_cursor ? pg->ts : NULL, limit };
	return db_json_page(c, items,
		"SELECT doc::text, id, 'a' FROM api_audit_log"
		" WHERE ($1::uuid IS NULL OR tenant_id = $1::uuid)"
		"   AND ($2::bigint IS NULL OR id < $2::bigint)"
		" ORDER BY id DESC LIMIT $3::int", 3, p);
}
