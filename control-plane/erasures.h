/* A region's reports on erasing a deleted tenant's data (erasures.c):
 * POST /v1/regions/{region}/erasures, with the region's credential (or an
 * admin's) and a required Idempotency-Key; the body is
 * common/erasure_report.h's. Only the tenant's home region may report, and
 * only for a deleted tenant (403, 409 otherwise); figures only grow and
 * "done" stays done, so retries, late reports and several instances
 * reporting at once change nothing they should not. What is recorded
 * shows as the member "erasure" of the tenant's admin view
 * (cpdb_erasure_attach). Route handler for main.c's route table. */
#ifndef CP_ERASURES_H
#define CP_ERASURES_H

struct http_req;
enum http_result cp_region_erasure_report(struct http_req *req);

#endif
