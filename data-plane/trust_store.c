/* The keys a data plane or a router trusts (trust_store.h). */
#include "trust_store.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_store.h"
#include "log.h"

/* One generation of keys, freed with its last reference. */
struct gen {
	struct cfgdoc_trust t; /* first: readers get &gen->t */
	int64_t ver;
	long refs;
};

struct trust_store {
	pthread_mutex_t lock;
	struct gen *now;
	char path[4200];
	char issuer[64];
};

static void gen_unref(struct gen *g)
{
	if (g && --g->refs == 0) {
		cfgdoc_trust_free(&g->t);
		free(g);
	}
}

struct trust_store *trust_store_open(const char *bundle_path, const char *cache_dir, const char *issuer, char *err,
                                     size_t errlen)
{
	struct trust_store *s = calloc(1, sizeof *s);
	struct gen *g = calloc(1, sizeof *g);
	if (!s || !g) {
		free(s);
		free(g);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&s->lock, NULL);
	snprintf(s->path, sizeof s->path, "%s/%s", cache_dir, DP_KEYSET_FILE);
	int left = dp_file_leftovers_remove(cache_dir, DP_KEYSET_FILE);
	if (left)
		log_warn(NULL, "removed %d temporary file(s) of %s an earlier process left", left, s->path);
	snprintf(s->issuer, sizeof s->issuer, "%s", issuer);
	g->refs = 1;
	s->now = g;
	FILE *f = fopen(s->path, "rb");
	struct stat st;
	/* Only a file this process's user wrote, and nobody else may change:
	 * whoever can write it decides what is trusted. */
	if (f && (fstat(fileno(f), &st) != 0 || st.st_uid != geteuid() || (st.st_mode & 022))) {
		log_error(NULL, "%s is not this user's own file or others may write it: not trusted; trusting the "
		          "trust bundle %s", s->path, bundle_path);
		fclose(f);
		f = NULL;
		errno = 0;
	}
	if (f) {
		char *buf = malloc(KEYSET_MAX_BYTES + 1);
		size_t n = buf ? fread(buf, 1, KEYSET_MAX_BYTES + 1, f) : 0;
		fclose(f);
		char why[300];
		enum keyset_result r = buf ? keyset_read_accepted(buf, n, issuer, &g->t, &g->ver, why, sizeof why)
		                           : KEYSET_MALFORMED;
		free(buf);
		if (r == KEYSET_OK) {
			log_info(NULL, "trusting the signing keys of key set version %lld (%s; %zu key(s)); the trust "
			         "bundle only bootstraps", (long long)g->ver, s->path, g->t.n);
			return s;
		}
		/* A file this process wrote is whole (written atomically): one
		 * that does not read is a damaged disk or a hand edit. Starting
		 * from the bundle again is what a new instance would do. */
		log_error(NULL, "%s cannot be used (%s): trusting the trust bundle %s", s->path,
		          keyset_result_names[r], bundle_path);
	} else if (errno && errno != ENOENT) {
		log_error(NULL, "cannot open %s: %s; trusting the trust bundle %s", s->path, strerror(errno), bundle_path);
	}
	if (cfgdoc_trust_load(bundle_path, &g->t, err, errlen) != 0) {
		trust_store_free(s);
		return NULL;
	}
	return s;
}

void trust_store_free(struct trust_store *s)
{
	if (!s)
		return;
	gen_unref(s->now);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

const struct cfgdoc_trust *trust_store_get(struct trust_store *s)
{
	pthread_mutex_lock(&s->lock);
	struct gen *g = s->now;
	g->refs++;
	pthread_mutex_unlock(&s->lock);
	return &g->t;
}

void trust_store_put(struct trust_store *s, const struct cfgdoc_trust *t)
{
	if (!t)
		return;
	pthread_mutex_lock(&s->lock);
	gen_unref((struct gen *)(void *)t); /* t is the first member of its gen */
	pthread_mutex_unlock(&s->lock);
}

int64_t trust_store_version(struct trust_store *s)
{
	pthread_mutex_lock(&s->lock);
	int64_t v = s->now->ver;
	pthread_mutex_unlock(&s->lock);
	return v;
}

enum keyset_result trust_store_apply(struct trust_store *s, const char *doc, size_t len, char *err, size_t errlen)
{
	struct gen *g = calloc(1, sizeof *g);
	if (!g) {
		snprintf(err, errlen, "out of memory");
		return KEYSET_MALFORMED;
	}
	const struct cfgdoc_trust *now = trust_store_get(s);
	int64_t held = trust_store_version(s);
	enum keyset_result r = keyset_verify(doc, len, now, held, s->issuer, &g->t, &g->ver, err, errlen);
	trust_store_put(s, now);
	if (r != KEYSET_OK) {
		free(g);
		return r;
	}
	/* On disk before in use: a restart never trusts less than this run did. */
	if (dp_file_replace(s->path, doc, len, 0600, err, errlen) != 0) {
		cfgdoc_trust_free(&g->t);
		free(g);
		return KEYSET_MALFORMED;
	}
	g->refs = 1;
	pthread_mutex_lock(&s->lock);
	struct gen *old = s->now;
	s->now = g;
	gen_unref(old);
	pthread_mutex_unlock(&s->lock);
	return KEYSET_OK;
}
