/* The cells of a region (cells.c): GET/POST /v1/regions/{region}/cells,
 * GET/PATCH /v1/regions/{region}/cells/{cell} and POST
 * /v1/cells/{cell}/credentials, all admin. Route handlers for main.c's
 * route table. Placement of tenants in cells is tenants.c's; the cell
 * documents are region_config.c's. */
#ifndef CP_CELLS_H
#define CP_CELLS_H

struct http_req;
enum http_result cp_cells_list(struct http_req *req);
enum http_result cp_cells_create(struct http_req *req);
enum http_result cp_cells_get(struct http_req *req);
enum http_result cp_cells_update(struct http_req *req);
enum http_result cp_cell_credentials_create(struct http_req *req);

#endif
