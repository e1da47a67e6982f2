/* Users (users.c): a tenant's users under /v1/tenants/{id}/users and
 * platform admins under /v1/admins. Route handlers for main.c's route
 * table. */
#ifndef CP_USERS_H
#define CP_USERS_H

struct http_req;
enum http_result cp_users_create(struct http_req *req);
enum http_result cp_users_list(struct http_req *req);
enum http_result cp_users_get(struct http_req *req);
enum http_result cp_users_update(struct http_req *req);
enum http_result cp_users_delete(struct http_req *req);
enum http_result cp_admins_create(struct http_req *req);
enum http_result cp_admins_list(struct http_req *req);
enum http_result cp_admins_get(struct http_req *req);
enum http_result cp_admins_delete(struct http_req *req);

#endif
