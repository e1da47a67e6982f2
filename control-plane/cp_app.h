/* The control plane's configuration (read once at start, from the table in
 * main.c) and the application state every request reaches through
 * http_req_app(): the database pool and the long-lived parts below. */
#ifndef CP_APP_H
#define CP_APP_H

#include <stdint.h>

#include "forwarded.h"
#include "svc.h"

/* The issuer of everything the control plane signs: documents, move
 * credentials, key sets (the data planes' DP_CONFIG_ISSUER). */
#define CP_ISSUER "celltrail-control-plane"

struct cp_config {
	struct svc_common_cfg common;
	const char *database_url;
	const char *migrations_dir;
	const char *admin_token;
	const char *secrets_key;
	const char *regions_file;
	int64_t session_ttl_ms;
	long scrypt_log2n;
	long login_max_failures;
	long login_concurrency;
	long login_per_source_rate;     /* attempts per minute */
	long login_per_source_burst;
	int64_t login_lockout_max_ms;
	long login_account_max_failures;
	const char *trusted_proxies;    /* CP_TRUSTED_PROXIES */
	const char *signing_kek;        /* CP_SIGNING_KEK: keys in the database */
	const char *signing_kek_prev;   /* CP_SIGNING_KEK_PREVIOUS: while resealing */
	const char *signing_keys_dir;
	int64_t doc_lifetime_ms;
	long full_every;            /* CP_CONFIG_FULL_EVERY */
	int64_t key_overlap_ms;
	int64_t fleet_silent_after_ms;
	int64_t move_erase_after_ms;        /* default grace period before a moved tenant's source copy is erased */
	int64_t move_lease_ms;              /* a mover's hold on a move */
	int64_t move_linger_ms;             /* the source cell's document keeps a moved tenant */
	int64_t move_credential_ttl_ms;     /* lifetime of a move credential */
};

struct db_pool;
struct keyring;
struct cp_signing;
struct lp;
struct doc_cache;
struct doc_worker;
struct login_guard;

struct cp_app {
	struct cp_config cfg;
	struct db_pool *db;
	unsigned char secrets_key[32];   /* seals secrets kept for idempotent replays */
	unsigned char admin_token_sha256[32];
	int have_admin_token;
	struct keyring *keys;     /* signing keys of CP_SIGNING_KEYS_DIR (keyring.h) */
	struct cp_signing *signing; /* or of the database (signing_keys.h) */
	struct lp *lp;            /* parked long polls (longpoll.h) */
	struct doc_cache *docs;   /* signed documents by region (config_doc.h) */
	struct doc_worker *worker; /* builds them (doc_worker.h) */
	struct login_guard *login; /* login admission (login_guard.h) */
	struct fwd_list proxies;  /* CP_TRUSTED_PROXIES: whose X-Forwarded-For is believed */
	/* A hash of no one's password, made at start: unknown accounts are
	 * checked against it, so they take as long as known ones. */
	char login_dummy_hash[160];
};

#endif
