/* Idempotency-Key: the one mechanism behind every control-plane route that
 * takes a key. It owns the key's syntax, what makes two requests "the
 * same" (a SHA-256 the caller chooses the input of), and the claim / replay
 * / conflict rules, run inside the caller's transaction so that a change
 * and its record commit together or not at all.
 *
 * A key is claimed by inserting its record; a concurrent request with the
 * same key waits on that insert until the first transaction ends, then
 * replays its answer (or claims the key itself if the first rolled back).
 * The same key with another request hash is a 422 that changes nothing.
 *
 * Records live in one of two stores (tables), which differ in how long they
 * are kept and what they keep:
 *   IDEM_REQUESTS       idempotency_keys: any mutation, keyed by the
 *                       principal's scope; status, Location and body are
 *                       kept (a body holding a secret sealed); kept a day.
 *   IDEM_USAGE_BATCHES  usage_batches: a region's usage batches, keyed by
 *                       region; only the first answer's body is kept, as
 *                       long as the ledger rows it counted. A replay is a
 *                       200: nothing is added the second time.
 *   IDEM_CELL_BATCHES   usage_batches too, keyed by cell: a cell's usage
 *                       batches, with the rules of IDEM_USAGE_BATCHES. */
#ifndef CP_IDEMPOTENCY_H
#define CP_IDEMPOTENCY_H

#include "cpdb.h"
#include "http.h"
#include "idemkey.h"
#include "outcome.h"

#define IDEM_KEY_MAX IDEMKEY_MAX

enum idem_store { IDEM_REQUESTS = CPDB_IDEM_REQUESTS, IDEM_USAGE_BATCHES = CPDB_IDEM_USAGE_BATCHES,
                  IDEM_CELL_BATCHES = CPDB_IDEM_CELL_BATCHES };

/* One request's key. `scope` and `key` are borrowed: they must outlive the
 * transaction (the principal's scope and the request header do). */
struct idem {
	enum idem_store store;
	const char *scope;   /* whose keys these are: a principal's scope, a region or a cell */
	const char *key;     /* the Idempotency-Key header; NULL when the request has none */
	char hash[65];       /* lowercase hex SHA-256 of what makes two requests the same */
};

/* Reads the Idempotency-Key header into k->key (NULL when absent). A key
 * that is not 1 to IDEM_KEY_MAX visible ASCII characters is answered 400
 * (field Idempotency-Key). When `required` is not NULL, a missing key is
 * answered 422 (field Idempotency-Key) with `required` as the detail.
 * A step: HTTP_GO_ON, or HTTP_ANSWERED after replying. */
enum http_step idem_key_read(struct http_req *req, const char *required, struct idem *k)
	__attribute__((warn_unused_result));

/* Sets k->hash from the request's method, path and body: the same call
 * again is the same request. */
void idem_hash_request(struct http_req *req, struct idem *k);
/* Sets k->hash from `len` bytes the caller has made canonical. */
void idem_hash_bytes(const void *data, size_t len, struct idem *k);

/* In the caller's transaction: claims k->key, or, when a record exists,
 * turns it into `out`: the first answer with out->replayed set (*claimed 0,
 * DB_OK), or a 422 when it was made for another request (DB_ROLLBACK via
 * cp_fail). *claimed is 1 when this transaction owns the key: run the
 * change, then idem_record() its answer. */
enum db_status idem_claim(struct db_conn *c, struct http_req *req, const struct idem *k,
                          struct cp_outcome *out, int *claimed)
	__attribute__((warn_unused_result));

/* Stores the answer in `out` (status, Location, body; sealed when
 * out->sealed) as the record of the key this transaction claimed. A store
 * that cannot keep the answer as it is (a usage batch's is always a 201
 * with no Location and nothing secret) fails with DB_ERROR. */
enum db_status idem_record(struct db_conn *c, struct http_req *req, const struct idem *k,
                           const struct cp_outcome *out) __attribute__((warn_unused_result));

#endif
