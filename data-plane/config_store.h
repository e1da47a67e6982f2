/* The on-disk copy of the last verified configuration document,
 * DP_CACHE_DIR/config.jwt, the delta documents applied since
 * (config.deltas), and the version floor beside them: what a data plane serves from at start-up when
 * the control plane cannot be reached. It is written atomically (a
 * temporary file, fsync, rename, fsync of the directory), so a crash leaves
 * either the old document or the new one, never a mixture. The file holds
 * only the signed token: it is verified again when it is read. */
#ifndef DP_CONFIG_STORE_H
#define DP_CONFIG_STORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define DP_CACHE_FILE "config.jwt"
#define DP_CACHE_REJECTED "config.jwt.rejected"
#define DP_VERSION_FILE "version"
/* The delta documents applied on top of config.jwt, in order, one token a
 * line; replaced whole, atomically, at every apply (dp_file_replace), and
 * emptied when a full document is cached. A delta that does not lead on
 * from the document before it is not applied (cfgdoc_verify_any). */
#define DP_DELTAS_FILE "config.deltas"

/* Removes the temporary files of `name` (".<name>.XXXXXX") that a
 * process ended before it renamed them; one that cannot be removed is
 * logged. Returns how many were removed. For the modules that write files
 * of their own in the cache directory with dp_file_replace. */
int dp_file_leftovers_remove(const char *dir, const char *name);

/* Makes sure `dir` is a directory this process can write, creating it
 * (mode 0700) when missing, and removes (and logs) the temporary files of
 * config.jwt, config.deltas and version an earlier process left there,
 * counted in *removed when not NULL: a cache directory belongs to one
 * process. Returns 0, or -1 with a sentence in `err`. */
int dp_cache_prepare(const char *dir, int *removed, char *err, size_t errlen)
	__attribute__((warn_unused_result));

enum dp_cache_read { DP_CACHE_FOUND, DP_CACHE_ABSENT, DP_CACHE_ERROR };
/* Reads the cached token into *out (malloc'd, NUL-terminated, caller
 * frees), at most `max_bytes` + 1 bytes so that an oversized file is still
 * seen as too large. Trailing whitespace (a file written by hand) is cut. */
enum dp_cache_read dp_cache_read(const char *dir, size_t max_bytes, char **out, size_t *len,
                                 char *err, size_t errlen) __attribute__((warn_unused_result));

/* The same for the file `name` of `dir`. */
enum dp_cache_read dp_cache_read_file(const char *dir, const char *name, size_t max_bytes, char **out,
                                      size_t *len, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Replaces the cached token atomically. Returns 0, or -1 with `err` set
 * (the previous file is then left as it was). */
int dp_cache_write(const char *dir, const char *token, size_t len, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Files are written a piece of this size at a time. */
#define DP_CACHE_WRITE_PIECE (1u << 20)

/* A document written to its temporary file on a thread of its own while
 * it is verified, so that a large document's write and fsync overlap its
 * verification instead of following it. It takes the cached file's place
 * only through dp_cache_stage_commit, once verified: a document that does
 * not verify is never renamed into place. `token` must stay unchanged
 * until the commit or the abort, one of which must follow every begin
 * that returned 0. */
struct dp_cache_stage {
	pthread_t thread;
	int started;
	atomic_int cancel; /* set by the abort: the rest is not written */
	const char *dir, *data;
	size_t len;
	int rc;
	char tmp[4096];
	char err[512];
};
/* Starts the write. Returns 0, or -1 when no thread could be started
 * (nothing was written: dp_cache_write is the way left). */
int dp_cache_stage_begin(struct dp_cache_stage *s, const char *dir, const char *token, size_t len)
	__attribute__((warn_unused_result));
/* Waits for the write and renames the file into place, as dp_cache_write
 * would have. Returns 0, or -1 with `err` set and the previous file left
 * as it was. */
int dp_cache_stage_commit(struct dp_cache_stage *s, char *err, size_t errlen)
	__attribute__((warn_unused_result));
/* Stops the write where it is, waits for it, and removes what it wrote. */
void dp_cache_stage_abort(struct dp_cache_stage *s);

/* The version floor, DP_CACHE_DIR/version: the highest configuration
 * version this instance has applied, as decimal digits and a newline. It
 * is kept apart from config.jwt so that losing the document (set aside,
 * deleted, replaced) never lowers what a rollback is measured against.
 * dp_floor_read sets *ver (0 when the file is absent) and returns 0, or
 * -1 with `err` set when the file cannot be read or holds anything else.
 * dp_floor_write replaces it atomically and durably, like dp_cache_write. */
int dp_floor_read(const char *dir, int64_t *ver, char *err, size_t errlen)
	__attribute__((warn_unused_result));
int dp_floor_write(const char *dir, int64_t ver, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Replaces the file at `path` with `data` as dp_cache_write does (a
 * temporary file beside it, fsync, rename, fsync of the directory), with
 * permissions `mode`: a reader sees the old file or the new one, whole.
 * Returns 0, or -1 with `err` set and the old file left as it was. */
int dp_file_replace(const char *path, const char *data, size_t len, unsigned mode, char *err,
                    size_t errlen) __attribute__((warn_unused_result));

/* Moves a cached file whose bytes failed verification aside (config.jwt.rejected,
 * replacing an older one) so that it is kept for inspection and never read
 * again. Returns 0 or -1 with `err` set. */
int dp_cache_reject(const char *dir, char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
