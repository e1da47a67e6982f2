/* Idempotency-Key syntax, request hashes and the purge of expired records
 * of POST /v1/events (see idempotency.h). */
#include "idempotency.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "background.h"
#include "dp.h"
#include "dpdb.h"
#include "log.h"
#include "secret.h"

/* Most records one purge statement deletes: a backlog is cleared in short
 * statements that never hold many rows locked. */
#define PURGE_BATCH 1000

enum http_step dp_idem_key_read(struct http_req *req, char key[IDEMKEY_MAX + 1])
{
	const char *k = http_req_header(req, "Idempotency-Key");
	key[0] = '\0';
	if (!k)
		return HTTP_GO_ON;
	if (!idemkey_valid(k)) {
		http_reply_invalid_field(req, "Idempotency-Key", "Idempotency-Key must be 1 to %d visible ASCII characters.",
		                         IDEMKEY_MAX);
		return HTTP_ANSWERED;
	}
	memcpy(key, k, strlen(k) + 1);
	return HTTP_GO_ON;
}

void dp_idem_hash_request(struct http_req *req, char hex[65])
{
	const char *method = http_req_method(req), *path = http_req_path(req);
	size_t blen, mlen = strlen(method) + 1, plen = strlen(path) + 1;
	const char *body = http_req_body(req, &blen);
	unsigned char md[32];
	char *buf = malloc(mlen + plen + blen + 1);
	if (!buf) {
		/* No hash to compare: a retry of this key then answers 422. */
		memset(hex, '0', 64);
		hex[64] = '\0';
		return;
	}
	memcpy(buf, method, mlen);
	memcpy(buf + mlen, path, plen);
	if (blen)
		memcpy(buf + mlen + plen, body, blen);
	secret_sha256(buf, mlen + plen + blen, md);
	secret_hex(md, 32, hex);
	free(buf);
}

/* ---- the purge ---- */

struct dp_idem_purge {
	struct dp_app *app;
	struct dp_loop *loop;
	atomic_int stopping;
	atomic_ullong deleted, runs, failures;
};

struct purge_q {
	int64_t ttl_ms;
	long deleted;
};

static enum db_status purge_tx(struct db_conn *c, void *ctx)
{
	struct purge_q *q = ctx;
	return dp_db_idem_purge(c, q->ttl_ms, PURGE_BATCH, &q->deleted);
}

static int64_t purge_step(void *ctx)
{
	struct dp_idem_purge *p = ctx;
	struct dp_app *app = p->app;
	struct purge_q q = { .ttl_ms = app->cfg.idempotency_ttl_ms };
	unsigned long long total = 0;
	int failed = 0;
	do {
		if (db_tx(app->db, DB_AUTOCOMMIT, purge_tx, &q) != DB_OK) {
			failed = 1;
			break;
		}
		total += (unsigned long long)q.deleted;
	} while (q.deleted == PURGE_BATCH && !atomic_load(&p->stopping));
	atomic_fetch_add(&p->deleted, total);
	atomic_fetch_add(failed ? &p->failures : &p->runs, 1);
	if (total)
		log_info(NULL, "idempotency: %llu expired Idempotency-Key record(s) deleted", total);
	return app->cfg.idempotency_purge_interval_ms;
}

struct dp_idem_purge *dp_idem_purge_start(struct dp_app *app)
{
	struct dp_idem_purge *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->app = app;
	if (!(p->loop = dp_loop_start("idempotency_purge", purge_step, p))) {
		free(p);
		return NULL;
	}
	return p;
}

void dp_idem_purge_stop(struct dp_idem_purge *p)
{
	if (!p)
		return;
	atomic_store(&p->stopping, 1);
	dp_loop_stop(p->loop);
	free(p);
}

void dp_idem_purge_metrics(struct dp_idem_purge *p, FILE *out)
{
	fprintf(out,
	        "# HELP dp_idempotency_keys_deleted_total Idempotency-Key records deleted past DP_IDEMPOTENCY_TTL.\n"
	        "# TYPE dp_idempotency_keys_deleted_total counter\ndp_idempotency_keys_deleted_total %llu\n"
	        "# HELP dp_idempotency_purge_runs_total Purges of expired Idempotency-Key records by result.\n"
	        "# TYPE dp_idempotency_purge_runs_total counter\n"
	        "dp_idempotency_purge_runs_total{result=\"ok\"} %llu\n"
	        "dp_idempotency_purge_runs_total{result=\"failed\"} %llu\n",
	        (unsigned long long)p->deleted, (unsigned long long)p->runs, (unsigned long long)p->failures);
}
