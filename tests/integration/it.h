/* Integration test harness: real processes, real HTTP (libcurl), real
 * PostgreSQL (a throwaway cluster made by tests/run.sh).
 *
 * Environment from tests/run.sh: IT_ROOT, IT_BIN, IT_LOG_DIR, IT_PG_URL
 * (superuser), IT_PG_DIR, IT_PG_PORT, IT_LOG_KEYS_DIR (the data planes'
 * log key ring); from tests/valgrind.sh also IT_WRAP (see it_spawn). */
#ifndef IT_H
#define IT_H

#include <check.h>
#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

Suite *http_layer_suite(void);
Suite *services_suite(void);
Suite *db_suite(void);
Suite *cp_api_suite(void);   /* test_cp_api.c */
Suite *openapi_suite(void);  /* test_openapi.c */
Suite *dp_config_suite(void); /* test_dp_config.c */
Suite *config_issue_suite(void); /* test_config_issue.c */
Suite *rotation_suite(void);     /* test_rotation.c */
Suite *e2e_config_suite(void); /* test_e2e_config.c */
Suite *billing_suite(void); /* test_billing.c */
Suite *events_suite(void); /* test_events.c */
Suite *hostile_suite(void); /* test_hostile.c */
Suite *scrape_suite(void); /* test_scrape.c */
Suite *cli_suite(void); /* test_cli.c */
Suite *listings_suite(void); /* test_listings.c */
Suite *ratelimit_suite(void); /* test_ratelimit.c */
Suite *login_suite(void); /* test_login.c */
Suite *dp_deps_suite(void); /* test_dp_deps.c */
Suite *ingest_suite(void); /* test_ingest.c */
Suite *log_context_suite(void); /* test_logctx.c */
Suite *write_rules_suite(void); /* test_write_rules.c */
Suite *feed_suite(void); /* test_feed.c */
Suite *erasure_suite(void); /* test_erasure.c */
Suite *export_suite(void); /* test_export.c */
Suite *log_suite(void); /* test_log.c */
Suite *streams_suite(void); /* test_stream_delivery.c */
Suite *queries_suite(void); /* test_queries.c */
Suite *cells_suite(void); /* test_cells.c */
Suite *cfg_delta_suite(void); /* test_cfg_delta.c */
Suite *cells_dp_suite(void); /* test_cells_dp.c */
Suite *moves_dp_suite(void); /* test_moves_dp.c */
Suite *cell_router_suite(void); /* test_cells_dp.c */
Suite *mover_suite(void); /* test_mover.c */
Suite *moves_suite(void); /* test_moves.c */
Suite *log_routes_suite(void); /* test_log_routes.c */
Suite *cp_streams_suite(void); /* test_streams.c */
Suite *stream_send_suite(void); /* test_stream_send.c */
/* Prints the service log lines of the *.log files of `dir` that name
 * neither a request ("req_id") nor a task ("task"); returns their number. */
int it_logs_check(const char *dir);

/* Adds each of the `n` tests to `s` as a TCase of its own named after it,
 * with the checked fixture `setup`/`teardown` (run in the test's own
 * process; either may be NULL, both NULL: none) and a timeout in seconds. */
void it_add_tests(Suite *s, const TTest *const tests[], size_t n, SFun setup, SFun teardown,
                  double timeout_s);

/* A fixed CP_SECRETS_KEY for the services the tests start. */
#define IT_SECRETS_KEY "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* printf into one of a ring of 32 static buffers of 16 KiB: the text
 * stays valid for the next 31 calls. Not for threads. Fails the test when
 * the text does not fit. */
const char *it_fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));

/* Milliseconds of CLOCK_MONOTONIC: for deadlines and durations. */
long it_now_ms(void);

/* --- environment --- */
const char *it_env(const char *name); /* aborts the test when unset */
/* Writes "$IT_BIN/<name>" into buf. */
void it_bin(const char *name, char *buf, size_t len);

/* --- processes --- */
struct it_proc {
	pid_t pid;
	char log[512]; /* stdout and stderr of the process */
};

/* Starts argv[0] with the inherited environment minus CP_* and DP_*, plus
 * `env` ("NAME=value", NULL-terminated, may be NULL), and for a data plane
 * DP_LOG_KEYS_DIR=$IT_LOG_KEYS_DIR unless `env` sets it. Output goes to a log
 * file named after `name`. The process is killed if the test dies. With
 * IT_WRAP set ("valgrind ...", split on blanks), a binary of $IT_BIN runs
 * under that command, keeping its pid. */
void it_spawn(struct it_proc *p, const char *name, char *const argv[], const char *const env[]);
/* Waits for exit at most `timeout_ms`; returns the exit status, 128+signal
 * when killed, or -1 on timeout. */
int it_wait(struct it_proc *p, int timeout_ms);
/* SIGTERM, then wait up to 15 s; returns as it_wait (SIGKILLs on timeout). */
int it_stop(struct it_proc *p);
/* Reads the port the process announced ("PORT n" or a log line's "port":n). */
int it_wait_port(struct it_proc *p, int timeout_ms);
/* Runs to completion; output (stdout+stderr) into out. Returns the status. */
int it_run(const char *name, char *const argv[], const char *const env[], char *out, size_t outlen);
/* Reads a whole file into a malloc'd string (caller frees); NULL if missing. */
char *it_slurp(const char *path);

/* A string member of `o`, "" when absent or not a string. */
const char *it_js(const json_t *o, const char *key);

/* Creates the database "<db_prefix>_<pid>" (its superuser URL into `db`),
 * migrates it and starts a control plane on it on a free port (its base
 * URL into `url`), with the admin token IT_ADMIN_TOKEN, the repository's
 * regions file, fast scrypt and `extra` settings (NULL-terminated, may be
 * NULL). */
void it_cp_start(struct it_proc *p, const char *db_prefix, const char *const extra[], char *db,
                 size_t dblen, char *url, size_t urllen);
/* A control plane again on the database `db` of an earlier it_cp_start
 * (the previous one stopped), with `extra`. */
void it_cp_restart(struct it_proc *p, const char *db, const char *const extra[], char *url, size_t urllen);
/* The value of the line of the /metrics page at `base_url` + "/metrics"
 * that starts with `series` ("name" or "name{labels}"); fails the test
 * when the page or the series is missing. */
long long it_metric(const char *base_url, const char *series);

/* Writes the control plane's published keys (GET /.well-known/jwks.json
 * of `cp_url`) into the file `path`: a data plane's trust bundle. */
void it_write_trust(const char *cp_url, const char *path);

/* --- HTTP --- */
struct it_resp {
	long status;          /* 0 when no response (connection failed) */
	char error[160];      /* with status 0: curl's reason (refused, timed out) */
	char *body;
	size_t len;
	char headers[8192];
};
/* One request. `headers` is NULL-terminated "Name: value" (may be NULL). */
void it_http(struct it_resp *r, const char *method, const char *url, const char *const headers[],
             const char *body, size_t body_len);
/* Like it_http, from the local address `source` (e.g. "127.0.0.2": all of
 * 127.0.0.0/8 is loopback); NULL: the system's choice. */
void it_http_from(struct it_resp *r, const char *source, const char *method, const char *url,
                  const char *const headers[], const char *body, size_t body_len);
/* Like it_http but sends the body chunked, `chunk` bytes at a time. */
void it_http_chunked(struct it_resp *r, const char *url, const char *const headers[],
                     const char *body, size_t body_len, size_t chunk);
/* Copies the value of response header `name` (case-insensitive); 0 if found. */
int it_header(const struct it_resp *r, const char *name, char *out, size_t len);
void it_resp_free(struct it_resp *r);

/* --- PostgreSQL --- */
/* Creates a fresh database; writes its superuser URL into url. */
void it_create_db(const char *name, char *url, size_t len);
/* Runs one statement, returns the first column of the first row as a
 * malloc'd string (NULL when no row). Fails the test on error. */
char *it_sql(const char *url, const char *sql);
/* Stops / starts the throwaway cluster. */
void it_pg_stop(void);
void it_pg_start(void);

/* --- raw HTTP: for requests libcurl would normalize or refuse to send --- */
struct it_raw {
	long status;       /* 0: no status line (closed, reset or timed out first) */
	int closed;        /* the server closed the connection (or said it would) */
	int timed_out;     /* nothing more arrived within the timeout */
	char head[8192];   /* status line and headers as received */
	char *body;        /* NUL-terminated (never NULL after it_raw_read) */
	size_t len;
};
/* A TCP connection to 127.0.0.1:port (fails the test if refused). */
int it_raw_connect(int port);
/* Sends all of `data`; returns 0, or -1 once the server closed or reset. */
int it_raw_send(int fd, const void *data, size_t len);
/* Reads one response (by Content-Length, or up to the close). */
void it_raw_read(int fd, struct it_raw *r, int timeout_ms);
/* Connects, sends `req`, reads one response within 10 s, closes. */
void it_raw_request(int port, const void *req, size_t len, struct it_raw *r);
/* Like it_header, for a raw response. */
int it_raw_header(const struct it_raw *r, const char *name, char *out, size_t len);
void it_raw_free(struct it_raw *r);

/* --- a process seen from outside --- */
/* Resident set size in KiB from /proc/<pid>/status (-1 if gone). */
long it_rss_kib(pid_t pid);
/* Peak resident set size (VmHWM) in KiB, -1 if gone. */
long it_hwm_kib(pid_t pid);
/* 1 while `p` runs (not exited, not a zombie). */
int it_alive(struct it_proc *p);

/* --- a control plane and one region's data plane on fresh databases --- */
#define IT_ADMIN_TOKEN "it-admin-token-0123456789-abcdefghijklmnopqrstuvwxyz"
struct it_stack {
	struct it_proc cp, dp;
	int cp_port, dp_port;
	char cp_url[64], dp_url[64];
	char cp_db[512], dp_db[512];
	char region[16];
	char tenant[40];  /* a tenant of the region on plan "pro" */
	char key[200];    /* an API key of it with both scopes */
	char dp_base[8][800]; /* the data plane's own settings, for a restart */
	char cp_keys[800];    /* the control plane's keys directory setting, for a restart */
};
/* Migrates and starts a control plane (admin token IT_ADMIN_TOKEN) and a
 * data plane of `region` that trusts it, makes one tenant with a key, and
 * waits until the data plane serves the document that has them. `cp_env`
 * and `dp_env` add variables (NULL-terminated, may be NULL). */
void it_stack_start(struct it_stack *s, const char *region, const char *const cp_env[],
                    const char *const dp_env[]);
/* SIGTERMs both; fails the test unless both exit 0. */
void it_stack_stop(struct it_stack *s);
/* One call to the control plane as the platform admin (JSON body or NULL). */
void it_stack_admin(const struct it_stack *s, struct it_resp *r, const char *method,
                    const char *path, const char *body);
/* Waits until the data plane uses the region's current config version. */
void it_stack_sync(const struct it_stack *s);
/* Stops the data plane (failing the test unless it exits 0) and starts it
 * again on the same database and cache, with `dp_env` (NULL-terminated,
 * may be NULL) replacing or adding variables; waits until it serves. */
void it_stack_dp_restart(struct it_stack *s, const char *const dp_env[]);
/* The same without waiting for the control plane's version (which may be
 * down): only until the data plane listens. */
void it_stack_dp_respawn(struct it_stack *s, const char *const dp_env[]);
/* Stops the control plane (failing the test unless it exits 0), and
 * starts it again on the same database, keys and port, with `cp_env`
 * (NULL-terminated, may be NULL) added. */
void it_stack_cp_stop(struct it_stack *s);
void it_stack_cp_start(struct it_stack *s, const char *const cp_env[]);

#endif
