/* What the regions use (region_config.c): the JWK set, the signed
 * regional, cell and routes documents (long-polled), region credentials, a
 * data plane's status report and the fleet view. Route handlers for main.c's route table. */
#ifndef CP_REGION_CONFIG_H
#define CP_REGION_CONFIG_H

struct http_req;
enum http_result cp_jwks(struct http_req *req);
/* GET /v1/signing-keys: the signed key set the data planes and routers follow. */
enum http_result cp_keyset(struct http_req *req);
enum http_result cp_region_config(struct http_req *req);
/* GET /v1/regions/{region}/routes: the routes document (region credential or admin). */
enum http_result cp_region_routes(struct http_req *req);
/* GET /v1/cells/{cell}/config: the cell document (its cell credential or admin). */
enum http_result cp_cell_config(struct http_req *req);
enum http_result cp_region_credentials_create(struct http_req *req);
enum http_result cp_region_status(struct http_req *req);
enum http_result cp_region_fleet(struct http_req *req);

#endif
