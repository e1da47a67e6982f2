/* Tenants and their home region (tenants.c): POST/GET /v1/tenants,
 * GET/PATCH/DELETE /v1/tenants/{id}, and the public region lookup
 * GET /v1/lookup. Route handlers for main.c's route table. */
#ifndef CP_TENANTS_H
#define CP_TENANTS_H

struct http_req;
enum http_result cp_tenants_create(struct http_req *req);
enum http_result cp_tenants_list(struct http_req *req);
enum http_result cp_tenants_get(struct http_req *req);
enum http_result cp_tenants_update(struct http_req *req);
enum http_result cp_tenants_delete(struct http_req *req);
enum http_result cp_lookup(struct http_req *req);

#endif
