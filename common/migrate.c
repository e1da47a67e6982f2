/* Migration runner. SQL text comes from the project's own files, never from
 * a request; it is the one place where SQL is not parameterized, because a
 * migration is a script of several statements. */
#include "migrate.h"
#include "log.h"

#include <dirent.h>
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Any fixed number works; all migrators of one database must agree on it. */
#define MIGRATE_LOCK_KEY "7259436012"

struct mfile {
	int version;
	char name[256];
	char sha[65];
	char *sql;
};

static int cmp_mfile(const void *a, const void *b)
{
	return ((const struct mfile *)a)->version - ((const struct mfile *)b)->version;
}

static void sha256_hex(const char *data, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)n + 1);
		if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n) {
			buf[n] = '\0';
			*len = (size_t)n;
		} else {
			free(buf);
			buf = NULL;
		}
	}
	fclose(f);
	return buf;
}

/* A migration file name: four digits, '_', [a-z0-9_]+, ".sql". */
static int parse_name(const char *name, int *version)
{
	size_t n = strlen(name);
	if (n < 10 || strcmp(name + n - 4, ".sql") != 0 || name[4] != '_')
		return 0;
	for (int i = 0; i < 4; i++)
		if (name[i] < '0' || name[i] > '9')
			return 0;
	for (size_t i = 5; i < n - 4; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') || name[i] == '_'))
			return 0;
	*version = atoi(name);
	return *version > 0;
}

static void free_files(struct mfile *files, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(files[i].sql);
	free(files);
}

/* Loads every migration of `dir`, sorted. Returns the count or -1. */
static long load_dir(const char *dir, struct mfile **out, char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	struct mfile *files = NULL;
	size_t n = 0, cap = 0;

	if (!d) {
		snprintf(err, errlen, "cannot open migrations directory %s", dir);
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		int version;
		if (e->d_name[0] == '.')
			continue;
		if (!parse_name(e->d_name, &version)) {
			if (strstr(e->d_name, ".sql"))
				log_warn(NULL, "migrations: ignoring %s (expected NNNN_name.sql)", e->d_name);
			continue;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			struct mfile *f = realloc(files, cap * sizeof *files);
			if (!f)
				goto oom;
			files = f;
		}
		char path[4096 + 256];
		size_t len = 0;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		memset(&files[n], 0, sizeof files[n]);
		files[n].version = version;
		snprintf(files[n].name, sizeof files[n].name, "%s", e->d_name);
		files[n].sql = read_file(path, &len);
		if (!files[n].sql) {
			snprintf(err, errlen, "cannot read %s", path);
			goto fail;
		}
		sha256_hex(files[n].sql, len, files[n].sha);
		n++;
	}
	closedir(d);
	qsort(files, n, sizeof *files, cmp_mfile);
	for (size_t i = 1; i < n; i++)
		if (files[i].version == files[i - 1].version) {
			snprintf(err, errlen, "two migrations share version %04d: %s and %s", files[i].version,
			         files[i - 1].name, files[i].name);
			free_files(files, n);
			return -1;
		}
	*out = files;
	return (long)n;
oom:
	snprintf(err, errlen, "out of memory");
fail:
	closedir(d);
	free_files(files, n);
	return -1;
}

static int ok(PGresult *r)
{
	ExecStatusType s = PQresultStatus(r);
	return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
}

/* Runs `sql` (no parameters); on failure copies the server's message. */
static int run(PGconn *pg, const char *sql, const char *what, char *err, size_t errlen)
{
	PGresult *r = PQexec(pg, sql);
	int good = ok(r);
	if (!good) {
		snprintf(err, errlen, "%s: %s", what, PQresultErrorMessage(r));
		err[strcspn(err, "\n")] = '\0';
	}
	PQclear(r);
	return good ? 0 : -1;
}

int migrate_run(const char *conninfo, const char *dir, int *applied, char *err, size_t errlen)
{
	return migrate_run_in(conninfo, dir, "schema_migrations", applied, err, errlen);
}

int migrate_run_in(const char *conninfo, const char *dir, const char *table, int *applied, char *err,
                   size_t errlen)
{
	char create[512], find[160], record[200];
	struct mfile *files = NULL;
	long nfiles;
	PGconn *pg = NULL;
	PGresult *r = NULL;
	int ret = -1;

	*applied = 0;
	/* `table` is one of the callers' constants, never input. */
	snprintf(create, sizeof create,
	         "CREATE TABLE IF NOT EXISTS %s ("
	         " version integer PRIMARY KEY,"
	         " name text NOT NULL,"
	         " checksum text NOT NULL,"
	         " applied_at timestamptz NOT NULL DEFAULT now())",
	         table);
	snprintf(find, sizeof find, "SELECT name, checksum FROM %s WHERE version = $1", table);
	snprintf(record, sizeof record, "INSERT INTO %s (version, name, checksum) VALUES ($1, $2, $3)", table);
	nfiles = load_dir(dir, &files, err, errlen);
	if (nfiles < 0)
		return -1;

	pg = PQconnectdb(conninfo);
	if (PQstatus(pg) != CONNECTION_OK) {
		snprintf(err, errlen, "cannot connect to the database: %s", PQerrorMessage(pg));
		err[strcspn(err, "\n")] = '\0';
		goto out;
	}
	/* Quiet the NOTICEs of IF NOT EXISTS. */
	if (run(pg, "SET client_min_messages = warning", "setup", err, errlen) ||
	    run(pg, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", "taking the migration lock", err,
	        errlen) ||
	    run(pg, create, "creating the migrations table", err, errlen))
		goto out;

	for (long i = 0; i < nfiles; i++) {
		struct mfile *f = &files[i];
		char vbuf[16];
		const char *params[3] = { vbuf, f->name, f->sha };
		snprintf(vbuf, sizeof vbuf, "%d", f->version);

		r = PQexecParams(pg, find, 1,
		                 NULL, params, NULL, NULL, 0);
		if (!ok(r)) {
			snprintf(err, errlen, "reading %s: %s", table, PQresultErrorMessage(r));
			goto out;
		}
		if (PQntuples(r) == 1) {
			if (strcmp(PQgetvalue(r, 0, 1), f->sha) != 0) {
				snprintf(err, errlen,
				         "migration %s was applied with checksum %.12s but the file now has %.12s: "
				         "an applied migration must not be edited; add a new numbered file instead",
				         f->name, PQgetvalue(r, 0, 1), f->sha);
				goto out;
			}
			PQclear(r);
			r = NULL;
			continue;
		}
		PQclear(r);
		r = NULL;

		if (run(pg, "BEGIN", f->name, err, errlen))
			goto out;
		if (run(pg, f->sql, f->name, err, errlen)) {
			PQclear(PQexec(pg, "ROLLBACK"));
			goto out;
		}
		r = PQexecParams(pg, record, 3, NULL, params, NULL, NULL, 0);
		if (!ok(r)) {
			snprintf(err, errlen, "recording %s: %s", f->name, PQresultErrorMessage(r));
			PQclear(PQexec(pg, "ROLLBACK"));
			goto out;
		}
		PQclear(r);
		r = NULL;
		if (run(pg, "COMMIT", f->name, err, errlen))
			goto out;
		log_info(NULL, "migration %s applied", f->name);
		(*applied)++;
	}
	ret = 0;
out:
	if (ret)
		err[strcspn(err, "\n")] = '\0';
	PQclear(r);
	PQfinish(pg); /* also releases the advisory lock */
	free_files(files, (size_t)nfiles);
	return ret;
}
