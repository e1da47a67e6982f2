/* The region catalog (regions.c): GET /v1/regions, GET/PATCH
 * /v1/regions/{name}, POST /v1/regions (route handlers for main.c's route
 * table), and its seeding from the regions file at start. */
#ifndef CP_REGIONS_H
#define CP_REGIONS_H

struct http_req;
struct cp_app;

enum http_result cp_regions_list(struct http_req *req);
enum http_result cp_regions_get(struct http_req *req);
enum http_result cp_regions_create(struct http_req *req);
enum http_result cp_regions_update(struct http_req *req);

/* Seeds the region catalog from `path` when it is empty. Returns 0, or -1
 * when the database is down or the file is invalid. */
int cp_seed_regions(struct cp_app *app, const char *path) __attribute__((warn_unused_result));

#endif
