/* Reading the audit log (audit_log.c): GET /v1/audit-log. Records are
 * written by cp_audit() (mutate.h) in the transaction of each change.
 * Route handler for main.c's route table. */
#ifndef CP_AUDIT_LOG_H
#define CP_AUDIT_LOG_H

struct http_req;
enum http_result cp_audit_list(struct http_req *req);

#endif
