/* Log streams of a tenant (the destinations its region's data planes
 * deliver its events to), for main.c's route table:
 *   POST/GET /v1/tenants/{id}/streams, GET/PATCH/DELETE
 *   /v1/tenants/{id}/streams/{stream}, POST …/{stream}/pause, …/resume,
 *   …/replay (the tenant's owners, or an admin; members read), and
 *   POST /v1/regions/{region}/streams/status (the region's or a cell's
 *   credential: what the data planes report of each stream).
 * A destination must pass its tenant's home region's residency rule
 * (residency.h; 422 destination_not_allowed). Its secret is kept sealed
 * with CP_SECRETS_KEY and never answered, logged or audited. Every change
 * raises the config version of the tenant's home region, whose documents
 * carry the streams (config_doc.c). */
#ifndef CP_STREAMS_H
#define CP_STREAMS_H

struct http_req;

#define CP_STREAMS_MAX 10          /* live streams per tenant */
#define CP_STREAM_REPORT_MAX 1000  /* streams per report */

enum http_result cp_streams_create(struct http_req *req);
enum http_result cp_streams_list(struct http_req *req);
enum http_result cp_streams_get(struct http_req *req);
enum http_result cp_streams_update(struct http_req *req);
enum http_result cp_streams_delete(struct http_req *req);
enum http_result cp_streams_pause(struct http_req *req);
enum http_result cp_streams_resume(struct http_req *req);
enum http_result cp_streams_replay(struct http_req *req);
enum http_result cp_streams_report(struct http_req *req);

#endif
