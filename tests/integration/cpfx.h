/* A control plane of a test's own on a fresh database, SQL on that
 * database, a client of its API that checks every answer it gets, and the
 * world a test builds through that API as the admin: the fixtures of the
 * suites that test the control plane from outside (cp-api, billing).
 *
 * Not for threads: the fixture is the state of the test's process (Check
 * forks per test). */
#ifndef IT_CPFX_H
#define IT_CPFX_H

#include <libpq-fe.h>

#include "fixtures.h"

#define ADMIN_TOKEN IT_ADMIN_TOKEN
/* The password of the users the fixtures make. */
#define PASSWORD "correct horse battery staple"

/* Started by cpfx_start in a TCase's checked fixture (Check forks per
 * test, so it lives in the test's own process), stopped by cpfx_stop. */
struct cpfx {
	struct it_proc proc;
	char db[512];   /* superuser URL of the test's database */
	char url[64];   /* http://127.0.0.1:<port> */
	PGconn *pg;     /* the test's connection to db, opened on first use */
	/* api_ex's rule for a success: 0, a body, when there is one, is JSON;
	 * 1, every success is a JSON object (for suites whose routes never
	 * answer 204). Set after cpfx_start. */
	int success_is_object;
};
extern struct cpfx cpfx;

/* it_cp_start on a database named after `db_prefix`, with `extra`. */
void cpfx_start(const char *db_prefix, const char *const extra[]);
/* Closes the connection, SIGTERMs the control plane and fails the test
 * unless it exits 0. */
void cpfx_stop(void);
/* cpfx_stop, then a control plane again on the same database. */
void cpfx_restart(const char *const extra[]);

/* The connection to the test's database (notices discarded). */
PGconn *db(void);
/* The first column of the first row, malloc'd (caller frees); NULL when
 * there is no row. Fails the test on an error. */
char *q(const char *sql);
/* The first column of the first row as a number; fails without a row. */
long qlong(const char *sql);
/* Runs `sql`, which must fail with SQLSTATE `state`. */
void q_fails(const char *sql, const char *state);

/* Request options of api_ex; all may be NULL. */
struct opts {
	const char *token;   /* Authorization: Bearer <token>; NULL sends none */
	const char *auth;    /* a whole Authorization header value, instead of token */
	const char *idem;    /* Idempotency-Key */
	const char *req_id;  /* X-Request-Id */
	const char *ctype;   /* Content-Type of a body; default application/json */
};
/* One request to the control plane (`path` after its URL). Whatever the
 * request, the answer must exist, be below 500, carry X-Request-Id, and an
 * error must be a well-formed problem document whose code matches its
 * status; a success is JSON as cpfx.success_is_object says. */
void api_ex(struct res *r, const char *method, const char *path, const struct opts *o,
            const char *body, size_t len);
/* api_ex with only a token (NULL: none) and a body (NULL: none). */
void api(struct res *r, const char *method, const char *path, const char *token, const char *body);

/* --- a world built by the admin through the API --- */

/* A tenant named "Tenant <slug>" on `plan`; its id into `id`. */
void new_tenant(const char *slug, const char *region, const char *plan, char id[37]);
/* A user of `tenant_id` with PASSWORD; `id` may be NULL. */
void new_user(const char *tenant_id, const char *email, const char *role, char id[37]);
/* Logs in (`slug` NULL: as a platform admin); returns the status, and the
 * token in `token` (may be NULL) on 200. */
long login_pw(const char *slug, const char *email, const char *password, char token[128]);
/* Logs in with PASSWORD; fails the test unless that succeeds. */
void login(const char *slug, const char *email, char token[128]);

/* The seeded regions, in the order versions() reports them. */
#define NREGIONS 4
extern const char *const region_names[NREGIONS];
/* config_version of every seeded region, read through GET /v1/regions. */
void versions(long v[NREGIONS]);
/* Asserts that each region's version moved by exactly delta[k] since
 * `before`, then sets `before` to the versions now. */
#define EXPECT_VERSIONS(before, ...) expect_versions((before), (const long[]){ __VA_ARGS__ }, __LINE__)
void expect_versions(long before[NREGIONS], const long delta[NREGIONS], int line);

#endif
