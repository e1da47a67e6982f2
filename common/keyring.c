/* ES256 signing keys in a directory (keyring.h). */
#include "keyring.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

struct keyring {
	char dir[3072];
	int64_t overlap_s;
	pthread_mutex_t lock;
	struct timespec seen_mtime;   /* of `current` and `next` at the last load */
	struct jwk current;
	json_t *jwks;
};

static int read_small(const char *dir, const char *name, char *out, size_t len)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(out, 1, len - 1, f);
	fclose(f);
	out[n] = '\0';
	out[strcspn(out, "\r\n")] = '\0';
	return n ? 0 : -1;
}

/* Writes `text` to dir/name atomically. */
static int write_small(const char *dir, const char *name, const char *text)
{
	char path[4096], tmp[4200];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return -1;
	size_t n = strlen(text);
	int ok = write(fd, text, n) == (ssize_t)n && fsync(fd) == 0;
	ok = close(fd) == 0 && ok;
	if (!ok || rename(tmp, path) != 0) {
		unlink(tmp);
		return -1;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

static int load_key(const char *dir, const char *kid, struct jwk *k, char *err, size_t errlen)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s.pem", dir, kid);
	if (jwk_load_private(path, k, err, errlen) != 0)
		return -1;
	if (strcmp(k->kid, kid) != 0) {
		snprintf(err, errlen, "%s holds key %s, not %s", path, k->kid, kid);
		jwk_clear(k);
		return -1;
	}
	return 0;
}

/* Makes a key, saves it as <kid>.pem, returns its kid. */
static int new_key(const char *dir, char kid[64], char *err, size_t errlen)
{
	struct jwk k;
	char path[4096];
	if (jwk_generate(&k) != 0) {
		snprintf(err, errlen, "cannot generate a P-256 key");
		return -1;
	}
	snprintf(path, sizeof path, "%s/%s.pem", dir, k.kid);
	int rc = jwk_save_private(&k, path);
	if (rc)
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
	else
		snprintf(kid, 64, "%s", k.kid);
	jwk_clear(&k);
	return rc;
}

static struct timespec mtime_of(const char *dir, const char *name)
{
	char path[4096];
	struct stat st;
	struct timespec zero = { 0, 0 };
	snprintf(path, sizeof path, "%s/%s", dir, name);
	if (stat(path, &st) != 0)
		return zero;
	return st.st_mtim;
}

static int changed(struct keyring *kr)
{
	struct timespec a = mtime_of(kr->dir, "current"), b = mtime_of(kr->dir, "next");
	struct timespec m = (a.tv_sec > b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec > b.tv_nsec)) ? a : b;
	return m.tv_sec != kr->seen_mtime.tv_sec || m.tv_nsec != kr->seen_mtime.tv_nsec;
}

/* Hands each key of the ring to `fn`: the current one first (which must
 * load: -1 with `err` otherwise), the staged one, the retired ones within
 * the overlap. `fn` takes the key over. */
typedef int (*ring_fn)(enum keyring_role role, int64_t retired_at, struct jwk *k, void *arg);

static int scan(const struct keyring *kr, ring_fn fn, void *arg, char *err, size_t errlen)
{
	char kid[64], next[64];
	struct jwk k;
	time_t now = time(NULL);

	if (read_small(kr->dir, "current", kid, sizeof kid) != 0) {
		snprintf(err, errlen, "%s/current is missing", kr->dir);
		return -1;
	}
	if (load_key(kr->dir, kid, &k, err, errlen) != 0 || fn(KEYRING_CURRENT, 0, &k, arg) != 0)
		return -1;
	if (read_small(kr->dir, "next", next, sizeof next) == 0 && strcmp(next, kid) != 0) {
		char why[256];
		if (load_key(kr->dir, next, &k, why, sizeof why) == 0) {
			if (fn(KEYRING_NEXT, 0, &k, arg) != 0)
				return -1;
		} else {
			log_warn(NULL, "staged signing key: %s", why);
		}
	}
	DIR *d = opendir(kr->dir);
	int rc = 0;
	for (struct dirent *e; rc == 0 && d && (e = readdir(d)) != NULL;) {
		char when[32], old[64];
		if (strncmp(e->d_name, "retired-", 8) != 0 || strlen(e->d_name + 8) >= sizeof old)
			continue;
		snprintf(old, sizeof old, "%s", e->d_name + 8);
		if (!strcmp(old, kid) || read_small(kr->dir, e->d_name, when, sizeof when) != 0 ||
		    now - atoll(when) > kr->overlap_s)
			continue;
		char why[256];
		if (load_key(kr->dir, old, &k, why, sizeof why) == 0)
			rc = fn(KEYRING_RETIRED, atoll(when), &k, arg);
	}
	if (d)
		closedir(d);
	if (rc)
		snprintf(err, errlen, "out of memory");
	return rc;
}

struct jwks_acc {
	json_t *keys;
	struct jwk current;
};

static int to_jwks(enum keyring_role role, int64_t retired_at, struct jwk *k, void *arg)
{
	struct jwks_acc *a = arg;
	(void)retired_at;
	int rc = json_array_append_new(a->keys, jwk_public_json(k));
	if (role == KEYRING_CURRENT)
		a->current = *k; /* kept */
	else
		jwk_clear(k);
	return rc;
}

/* (Re)loads the current key and builds the JWK set. Called with the lock held. */
static int reload(struct keyring *kr, char *err, size_t errlen)
{
	struct jwks_acc a = { .keys = json_array() };
	if (!a.keys || scan(kr, to_jwks, &a, err, errlen) != 0) {
		json_decref(a.keys);
		jwk_clear(&a.current);
		return -1;
	}
	jwk_clear(&kr->current);
	kr->current = a.current;
	json_decref(kr->jwks);
	kr->jwks = json_pack("{so}", "keys", a.keys);
	struct timespec m1 = mtime_of(kr->dir, "current"), m2 = mtime_of(kr->dir, "next");
	kr->seen_mtime = (m1.tv_sec > m2.tv_sec || (m1.tv_sec == m2.tv_sec && m1.tv_nsec > m2.tv_nsec)) ? m1 : m2;
	return 0;
}

struct keys_acc {
	struct keyring_key *k;
	size_t n, cap;
};

static int to_list(enum keyring_role role, int64_t retired_at, struct jwk *k, void *arg)
{
	struct keys_acc *a = arg;
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 4;
		struct keyring_key *p = realloc(a->k, cap * sizeof *p);
		if (!p) {
			jwk_clear(k);
			return -1;
		}
		a->k = p;
		a->cap = cap;
	}
	a->k[a->n++] = (struct keyring_key){ .role = role, .retired_at = retired_at, .key = *k };
	return 0;
}

int keyring_keys(struct keyring *kr, struct keyring_key **keys, size_t *n)
{
	struct keys_acc a = { 0 };
	char err[256];
	pthread_mutex_lock(&kr->lock);
	int rc = scan(kr, to_list, &a, err, sizeof err);
	pthread_mutex_unlock(&kr->lock);
	if (rc) {
		keyring_keys_free(a.k, a.n);
		return -1;
	}
	*keys = a.k;
	*n = a.n;
	return 0;
}

void keyring_keys_free(struct keyring_key *keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		jwk_clear(&keys[i].key);
	free(keys);
}

struct keyring *keyring_open_existing(const char *dir, int64_t overlap_s, char *err, size_t errlen)
{
	char kid[64];
	err[0] = '\0';
	if (read_small(dir, "current", kid, sizeof kid) != 0)
		return NULL;
	return keyring_open(dir, overlap_s, err, errlen);
}

struct keyring *keyring_open(const char *dir, int64_t overlap_s, char *err, size_t errlen)
{
	struct keyring *kr = calloc(1, sizeof *kr);
	char kid[64];
	if (!kr)
		return NULL;
	snprintf(kr->dir, sizeof kr->dir, "%s", dir);
	kr->overlap_s = overlap_s;
	pthread_mutex_init(&kr->lock, NULL);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		goto fail;
	}
	if (read_small(dir, "current", kid, sizeof kid) != 0) {
		/* A first start: make the first key. */
		if (new_key(dir, kid, err, errlen) != 0 || write_small(dir, "current", kid) != 0) {
			if (!*err)
				snprintf(err, errlen, "cannot write %s/current", dir);
			goto fail;
		}
		log_info(NULL, "created signing key %s in %s", kid, dir);
	}
	if (reload(kr, err, errlen) != 0)
		goto fail;
	return kr;
fail:
	keyring_free(kr);
	return NULL;
}

void keyring_free(struct keyring *kr)
{
	if (!kr)
		return;
	jwk_clear(&kr->current);
	json_decref(kr->jwks);
	pthread_mutex_destroy(&kr->lock);
	free(kr);
}

static void refresh(struct keyring *kr)
{
	char err[256];
	if (changed(kr) && reload(kr, err, sizeof err) != 0)
		log_error(NULL, "signing keys: %s; still signing with %s", err, kr->current.kid);
}

int keyring_current(struct keyring *kr, struct jwk *out)
{
	int rc = -1;
	pthread_mutex_lock(&kr->lock);
	refresh(kr);
	memset(out, 0, sizeof *out);
	memcpy(out->kid, kr->current.kid, sizeof out->kid);
	memcpy(out->x, kr->current.x, sizeof out->x);
	memcpy(out->y, kr->current.y, sizeof out->y);
	out->public_pem = strdup(kr->current.public_pem);
	out->private_pem = strdup(kr->current.private_pem);
	if (out->public_pem && out->private_pem)
		rc = 0;
	else
		jwk_clear(out);
	pthread_mutex_unlock(&kr->lock);
	return rc;
}

json_t *keyring_jwks(struct keyring *kr)
{
	pthread_mutex_lock(&kr->lock);
	refresh(kr);
	json_t *j = json_deep_copy(kr->jwks);
	pthread_mutex_unlock(&kr->lock);
	return j;
}

int keyring_stage(const char *dir, char kid[64], char *err, size_t errlen)
{
	if (new_key(dir, kid, err, errlen) != 0)
		return -1;
	if (write_small(dir, "next", kid) != 0) {
		snprintf(err, errlen, "cannot write %s/next", dir);
		return -1;
	}
	return 0;
}

int keyring_rotate(const char *dir, char kid[64], char *err, size_t errlen)
{
	char old[64], when[32], name[80], path[4096];
	struct jwk k;
	if (read_small(dir, "current", old, sizeof old) != 0) {
		snprintf(err, errlen, "%s/current is missing: make the key ring first (control-plane jwks, data-plane log-jwks)", dir);
		return -1;
	}
	if (read_small(dir, "next", kid, 64) != 0 || !strcmp(kid, old)) {
		if (new_key(dir, kid, err, errlen) != 0)
			return -1;
	}
	if (load_key(dir, kid, &k, err, errlen) != 0)
		return -1;
	jwk_clear(&k);
	snprintf(when, sizeof when, "%lld", (long long)time(NULL));
	snprintf(name, sizeof name, "retired-%s", old);
	if (write_small(dir, name, when) != 0 || write_small(dir, "current", kid) != 0) {
		snprintf(err, errlen, "cannot write to %s", dir);
		return -1;
	}
	snprintf(path, sizeof path, "%s/next", dir);
	unlink(path);
	return 0;
}
