/* Idempotency-Key checks, request hashes, claims and replays (see idempotency.h). */
#include "idempotency.h"

#include <stdlib.h>
#include <string.h>

#include "cp_app.h"
#include "idemkey.h"
#include "log.h"
#include "secret.h"

/* What differs between the stores beyond their tables. */
static const struct {
	const char *conflict;      /* detail of the 422 for a key reused with another request */
	unsigned replay_status;    /* 0: the stored one */
	int keeps_all;             /* keeps status, Location and sealed bodies */
} rules[] = {
	[IDEM_REQUESTS] = { "This Idempotency-Key was used with another request; use a new key.", 0, 1 },
	[IDEM_USAGE_BATCHES] = { "This Idempotency-Key was used for another batch; use a new key.", 200, 0 },
	[IDEM_CELL_BATCHES] = { "This Idempotency-Key was used for another batch; use a new key.", 200, 0 },
};

enum http_step idem_key_read(struct http_req *req, const char *required, struct idem *k)
{
	k->key = http_req_header(req, "Idempotency-Key");
	if (!k->key) {
		if (!required)
			return HTTP_GO_ON;
		http_reply_invalid_field(req, "Idempotency-Key", "%s", required);
		return HTTP_ANSWERED;
	}
	if (!idemkey_valid(k->key)) {
		http_reply_invalid_field(req, "Idempotency-Key", "Idempotency-Key must be 1 to %d visible ASCII characters.",
		                         IDEM_KEY_MAX);
		return HTTP_ANSWERED;
	}
	return HTTP_GO_ON;
}

void idem_hash_bytes(const void *data, size_t len, struct idem *k)
{
	unsigned char md[32];
	secret_sha256(data, len, md);
	secret_hex(md, 32, k->hash);
}

void idem_hash_request(struct http_req *req, struct idem *k)
{
	const char *method = http_req_method(req), *path = http_req_path(req);
	size_t blen, mlen = strlen(method) + 1, plen = strlen(path) + 1;
	const char *body = http_req_body(req, &blen);
	char *buf = malloc(mlen + plen + blen);
	if (!buf) {
		/* No hash to compare: a replay of this key then answers 422. */
		memset(k->hash, '0', 64);
		k->hash[64] = '\0';
		return;
	}
	memcpy(buf, method, mlen);
	memcpy(buf + mlen, path, plen);
	memcpy(buf + mlen + plen, body, blen);
	idem_hash_bytes(buf, mlen + plen + blen, k);
	free(buf);
}

/* Turns the stored record of k into `out`. */
static enum db_status replay(struct db_conn *c, struct http_req *req, const struct idem *k,
                             struct cp_outcome *out)
{
	struct cp_app *app = http_req_app(req);
	struct cpdb_idem rec;
	enum db_status st = cpdb_idem_get(c, (enum cpdb_idem_store)k->store, k->scope, k->key, &rec);
	if (st != DB_OK)
		return st;
	if (strcmp(rec.request_sha256, k->hash) != 0) {
		free(rec.body);
		return cp_fail(out, PROB_UNPROCESSABLE, "%s", rules[k->store].conflict);
	}
	char *text = rec.body;
	size_t len = strlen(text);
	if (rec.sealed) {
		text = secret_open(app->secrets_key, rec.body, &len);
		free(rec.body);
		if (!text) {
			log_error(http_req_id(req), "a sealed idempotent response does not open: was CP_SECRETS_KEY changed?");
			return DB_ERROR;
		}
	}
	json_error_t e;
	json_t *body = json_loadb(text, len, 0, &e);
	free(text);
	if (!body)
		return DB_ERROR;
	out->replayed = 1;
	snprintf(out->location, sizeof out->location, "%s", rec.location);
	return cp_done(out, rules[k->store].replay_status ? rules[k->store].replay_status
	                                                  : (unsigned)rec.status, body);
}

enum db_status idem_claim(struct db_conn *c, struct http_req *req, const struct idem *k,
                          struct cp_outcome *out, int *claimed)
{
	enum db_status st = cpdb_idem_claim(c, (enum cpdb_idem_store)k->store, k->scope, k->key, k->hash,
	                                    claimed);
	if (st != DB_OK || *claimed)
		return st;
	return replay(c, req, k, out);
}

enum db_status idem_record(struct db_conn *c, struct http_req *req, const struct idem *k,
                           const struct cp_outcome *out)
{
	struct cp_app *app = http_req_app(req);
	if (!rules[k->store].keeps_all && (out->status != 201 || out->location[0] || out->sealed)) {
		log_error(http_req_id(req), "an answer this idempotency store cannot keep as it is");
		return DB_ERROR;
	}
	char *text = json_dumps(out->body, JSON_COMPACT);
	if (!text)
		return DB_ERROR;
	if (out->sealed) {
		char *sealed = secret_seal(app->secrets_key, text, strlen(text));
		free(text);
		if (!sealed)
			return DB_ERROR;
		text = sealed;
	}
	enum db_status st = cpdb_idem_store(c, (enum cpdb_idem_store)k->store, k->scope, k->key,
	                                    (int)out->status, out->location, text, out->sealed);
	free(text);
	return st;
}
