/* Tenant moves (moves.c): a tenant's trail copied from its cell to another
 * cell of its region, or of another region, then its cell (and region)
 * flipped in one transaction; and the evacuation of a cell (a drain),
 * made of such moves.
 *
 * Who calls what:
 *   POST /v1/tenants/{id}/moves                 admin (to_cell) or the tenant's owner (to_region)
 *   GET  /v1/tenants/{id}/moves[/{move}]        admin, the tenant's users (no cells shown)
 *   POST /v1/tenants/{id}/moves/{move}/approve  admin: a region move awaiting approval
 *   POST /v1/tenants/{id}/moves/{move}/abort    admin: before cutover
 *   POST/GET /v1/cells/{cell}/drain             admin
 * and the mover of the target region (its region credential, or an admin):
 *   POST /v1/regions/{region}/moves/claim       lease the oldest move due, with its credential
 *   POST /v1/moves/{move}/progress              counts, and the steps copying -> catching_up
 *                                               -> cutover -> verifying, or failed
 *   POST /v1/moves/{move}/complete              figures checked; the flip
 *   POST /v1/moves/{move}/erased                a copy erased (source after done, target
 *                                               after aborted/failed)
 * A move is due to its region's mover while it is being copied, while a
 * copy that will never serve must be erased at the target (aborted or
 * failed after copying began), and once a done move's grace period has
 * passed until the source's copy is erased. A mover holds a move by a
 * lease (CP_MOVE_LEASE) that every report renews; another mover's report
 * on a held move is 409. New moves of a running drain are created when a
 * mover of the cell's region claims. */
#ifndef CP_MOVES_H
#define CP_MOVES_H

#include <stdio.h>

#include "db.h"

struct http_req;
struct cp_app;
enum http_result cp_moves_create(struct http_req *req);
enum http_result cp_moves_list(struct http_req *req);
enum http_result cp_moves_get(struct http_req *req);
enum http_result cp_moves_approve(struct http_req *req);
enum http_result cp_moves_abort(struct http_req *req);
enum http_result cp_cell_drain(struct http_req *req);
enum http_result cp_cell_drain_get(struct http_req *req);
enum http_result cp_moves_claim(struct http_req *req);
enum http_result cp_moves_progress(struct http_req *req);
enum http_result cp_moves_complete(struct http_req *req);
enum http_result cp_moves_erased(struct http_req *req);

/* Aborts the tenant's move that has not ended, if any, in the caller's
 * transaction (a tenant being deleted), with its audit record. */
enum db_status cp_moves_abort_open(struct db_conn *c, struct http_req *req, const char *tenant_id);

/* The gauge cp_moves{state}: moves per state (one query). */
void cp_moves_metrics(struct cp_app *app, FILE *out);

#endif
