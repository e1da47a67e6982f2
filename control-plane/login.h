/* POST /v1/auth/login and POST /v1/auth/logout: password checks behind
 * login admission (login_guard.h) and the per-account delays kept in the
 * database, and the sessions they open and end. */
#ifndef CP_LOGIN_H
#define CP_LOGIN_H

struct cp_app;
struct http_req;

/* Prepares logins (the dummy hash) before the service takes requests.
 * Returns 0, or -1 when hashing fails. */
int cp_login_init(struct cp_app *app) __attribute__((warn_unused_result));

enum http_result cp_auth_login(struct http_req *req);
enum http_result cp_auth_logout(struct http_req *req);

#endif
