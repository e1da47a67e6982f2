/* The cached configuration document on disk. */
#include "config_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

int dp_file_leftovers_remove(const char *dir, const char *name)
{
	size_t n = strlen(name);
	int removed = 0;
	DIR *dh = opendir(dir);
	if (!dh) {
		log_warn(NULL, "cannot read %s to remove what an earlier process left: %s", dir, strerror(errno));
		return 0;
	}
	struct dirent *e;
	while ((e = readdir(dh))) {
		if (e->d_name[0] != '.' || strncmp(e->d_name + 1, name, n) != 0 || e->d_name[n + 1] != '.' ||
		    strlen(e->d_name + n + 2) != 6)
			continue;
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		if (unlink(path) == 0)
			removed++;
		else
			log_warn(NULL, "cannot remove %s, left by an earlier process: %s", path, strerror(errno));
	}
	closedir(dh);
	return removed;
}

int dp_cache_prepare(const char *dir, int *removed, char *err, size_t errlen)
{
	if (removed)
		*removed = 0;
	struct stat st;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s is not a directory", dir);
		return -1;
	}
	if (access(dir, W_OK | X_OK) != 0) {
		snprintf(err, errlen, "%s is not writable: %s", dir, strerror(errno));
		return -1;
	}
	/* What a process ended (crashed, killed) before its rename left of
	 * this module's files: a whole document's is as large as the
	 * document. (The key set's is trust_store's to remove.) */
	static const char *const names[] = { DP_CACHE_FILE, DP_DELTAS_FILE, DP_VERSION_FILE };
	int n = 0;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		n += dp_file_leftovers_remove(dir, names[i]);
	if (n)
		log_warn(NULL, "removed %d temporary file(s) an earlier process left in %s", n, dir);
	if (removed)
		*removed = n;
	return 0;
}

enum dp_cache_read dp_cache_read(const char *dir, size_t max_bytes, char **out, size_t *len,
                                 char *err, size_t errlen)
{
	return dp_cache_read_file(dir, DP_CACHE_FILE, max_bytes, out, len, err, errlen);
}

enum dp_cache_read dp_cache_read_file(const char *dir, const char *name, size_t max_bytes, char **out,
                                      size_t *len, char *err, size_t errlen)
{
	char path[4096];
	enum dp_cache_read ret = DP_CACHE_ERROR;
	char *buf = NULL;
	size_t n = 0, cap = 0;
	int fd;

	*out = NULL;
	*len = 0;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return DP_CACHE_ABSENT;
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return DP_CACHE_ERROR;
	}
	for (;;) {
		if (n + 1 >= cap) {
			/* Room for max_bytes + 1 bytes and the NUL is all it takes. */
			if (cap >= max_bytes + 2)
				break;
			size_t want = cap ? cap * 2 : 16384;
			if (want > max_bytes + 2)
				want = max_bytes + 2;
			char *b = realloc(buf, want);
			if (!b) {
				snprintf(err, errlen, "out of memory reading %s", path);
				goto out;
			}
			buf = b;
			cap = want;
		}
		ssize_t r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max_bytes)
			break;
	}
	while (n && buf[n - 1] && strchr(" \t\r\n", buf[n - 1]))
		n--;
	if (!buf && !(buf = malloc(1)))
		goto out;
	buf[n] = '\0';
	*out = buf;
	*len = n;
	buf = NULL;
	ret = DP_CACHE_FOUND;
out:
	free(buf);
	close(fd);
	return ret;
}

/* Writes `data` to a new temporary file beside dir/name (its path in
 * `tmp`) and syncs it. A megabyte a write: one write of a document of
 * hundreds of megabytes holds the file's lock for its whole copy. Returns
 * 0, or -1 with `err` set and no file left. */
static int write_temp(const char *dir, const char *name, const char *data, size_t len, mode_t mode,
                      const atomic_int *cancel, char tmp[4096], char *err, size_t errlen)
{
	int fd = -1;

	snprintf(tmp, 4096, "%s/.%s.XXXXXX", dir, name);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "cannot create a file in %s: %s", dir, strerror(errno));
		tmp[0] = '\0';
		return -1;
	}
	if (mode != 0600 && fchmod(fd, mode) != 0) {
		snprintf(err, errlen, "cannot chmod %s: %s", tmp, strerror(errno));
		goto fail;
	}
	for (size_t off = 0;;) {
		/* A document that will not be kept is not written further, nor
		 * synced. */
		if (cancel && atomic_load(cancel)) {
			snprintf(err, errlen, "the write of %s was cancelled", tmp);
			goto fail;
		}
		if (off == len)
			break;
		size_t n = len - off < DP_CACHE_WRITE_PIECE ? len - off : DP_CACHE_WRITE_PIECE;
		ssize_t w = write(fd, data + off, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
			goto fail;
		}
		off += (size_t)w;
	}
	if (fsync(fd) != 0) {
		snprintf(err, errlen, "cannot fsync %s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (close(fd) != 0) {
		fd = -1;
		snprintf(err, errlen, "cannot close %s: %s", tmp, strerror(errno));
		goto fail;
	}
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	tmp[0] = '\0';
	return -1;
}

/* Renames the synced temporary file `tmp` to dir/name and syncs the
 * directory. Returns 0, or -1 with `err` set (the temporary file is then
 * removed when it was not renamed). */
static int install(const char *dir, const char *name, char tmp[4096], char *err, size_t errlen)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	if (rename(tmp, path) != 0) {
		snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
		unlink(tmp);
		tmp[0] = '\0';
		return -1;
	}
	tmp[0] = '\0'; /* renamed: nothing to remove */
	/* The rename is durable only once the directory itself is synced. */
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) != 0) {
		snprintf(err, errlen, "cannot fsync directory %s: %s", dir, strerror(errno));
		if (dfd >= 0)
			close(dfd);
		return -1;
	}
	close(dfd);
	return 0;
}

/* Replaces dir/name with `data` atomically and durably: a temporary file,
 * fsync, rename, fsync of the directory. */
static int write_atomic(const char *dir, const char *name, const char *data, size_t len,
                        mode_t mode, char *err, size_t errlen)
{
	char tmp[4096];
	if (write_temp(dir, name, data, len, mode, NULL, tmp, err, errlen) != 0)
		return -1;
	return install(dir, name, tmp, err, errlen);
}

static void *stage_run(void *arg)
{
	struct dp_cache_stage *s = arg;
	s->rc = write_temp(s->dir, DP_CACHE_FILE, s->data, s->len, 0600, &s->cancel, s->tmp, s->err, sizeof s->err);
	return NULL;
}

int dp_cache_stage_begin(struct dp_cache_stage *s, const char *dir, const char *token, size_t len)
{
	memset(s, 0, sizeof *s);
	atomic_init(&s->cancel, 0);
	s->dir = dir;
	s->data = token;
	s->len = len;
	if (pthread_create(&s->thread, NULL, stage_run, s) != 0)
		return -1;
	s->started = 1;
	return 0;
}

int dp_cache_stage_commit(struct dp_cache_stage *s, char *err, size_t errlen)
{
	if (!s->started) {
		snprintf(err, errlen, "no cache write was started");
		return -1;
	}
	pthread_join(s->thread, NULL);
	s->started = 0;
	if (s->rc != 0) {
		snprintf(err, errlen, "%s", s->err);
		return -1;
	}
	return install(s->dir, DP_CACHE_FILE, s->tmp, err, errlen);
}

void dp_cache_stage_abort(struct dp_cache_stage *s)
{
	if (!s->started)
		return;
	atomic_store(&s->cancel, 1);
	pthread_join(s->thread, NULL);
	s->started = 0;
	if (s->rc == 0 && s->tmp[0])
		unlink(s->tmp);
}

int dp_cache_write(const char *dir, const char *token, size_t len, char *err, size_t errlen)
{
	return write_atomic(dir, DP_CACHE_FILE, token, len, 0600, err, errlen);
}

int dp_floor_read(const char *dir, int64_t *ver, char *err, size_t errlen)
{
	char path[4096], text[32];
	*ver = 0;
	snprintf(path, sizeof path, "%s/%s", dir, DP_VERSION_FILE);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	ssize_t n;
	do
		n = read(fd, text, sizeof text - 1);
	while (n < 0 && errno == EINTR);
	int saved = errno;
	close(fd);
	if (n < 0) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(saved));
		return -1;
	}
	text[n] = '\0';
	/* Exactly what dp_floor_write writes: digits and a newline. */
	size_t digits = strspn(text, "0123456789");
	if (digits == 0 || digits > 18 || strcmp(text + digits, "\n") != 0) {
		snprintf(err, errlen, "%s does not hold a version number", path);
		return -1;
	}
	*ver = strtoll(text, NULL, 10);
	return 0;
}

int dp_floor_write(const char *dir, int64_t ver, char *err, size_t errlen)
{
	char text[32];
	int n = snprintf(text, sizeof text, "%lld\n", (long long)ver);
	return write_atomic(dir, DP_VERSION_FILE, text, (size_t)n, 0600, err, errlen);
}

int dp_cache_reject(const char *dir, char *err, size_t errlen)
{
	char from[4096], to[4096];
	snprintf(from, sizeof from, "%s/%s", dir, DP_CACHE_FILE);
	snprintf(to, sizeof to, "%s/%s", dir, DP_CACHE_REJECTED);
	if (rename(from, to) != 0) {
		snprintf(err, errlen, "cannot rename %s to %s: %s", from, to, strerror(errno));
		return -1;
	}
	return 0;
}

int dp_file_replace(const char *path, const char *data, size_t len, unsigned mode, char *err,
                    size_t errlen)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	if (!slash) {
		snprintf(dir, sizeof dir, ".");
		return write_atomic(dir, path, data, len, (mode_t)mode, err, errlen);
	}
	if ((size_t)(slash - path) >= sizeof dir || !slash[1]) {
		snprintf(err, errlen, "%s is not a file path", path);
		return -1;
	}
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = '\0';
	if (!dir[0])
		snprintf(dir, sizeof dir, "/");
	return write_atomic(dir, slash + 1, data, len, (mode_t)mode, err, errlen);
}
