/* A tenant's API keys (api_keys.c): POST/GET /v1/tenants/{id}/api-keys,
 * GET/DELETE /v1/tenants/{id}/api-keys/{key_id}. The SQL is in
 * db_api_keys.c; the data plane learns of a key from its region's signed
 * document (config_doc.h). Route handlers for main.c's route table. */
#ifndef CP_API_KEYS_H
#define CP_API_KEYS_H

struct http_req;
enum http_result cp_api_keys_create(struct http_req *req);
enum http_result cp_api_keys_list(struct http_req *req);
enum http_result cp_api_keys_get(struct http_req *req);
enum http_result cp_api_keys_delete(struct http_req *req);

#endif
