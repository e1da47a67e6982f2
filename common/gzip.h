/* Streaming gzip (RFC 1952) over zlib, in constant memory: bytes go in a
 * piece at a time and their compressed form is appended to a struct buf,
 * so that a response of any length is compressed as it is produced. Also
 * what an HTTP handler needs to decide whether the client accepts it. */
#ifndef CT_GZIP_H
#define CT_GZIP_H

#include <stddef.h>

struct buf;
struct gzip_stream;

/* A new compressor (zlib level 1..9; about 300 KiB whatever the input).
 * NULL when out of memory. Free with gzip_free(). */
struct gzip_stream *gzip_new(int level);
/* Compresses `len` bytes of `data`, appending what zlib gives out to
 * `out` (which may be nothing yet: zlib keeps up to its window). With
 * `flush`, everything given so far is appended (a sync flush: a reader can
 * decompress it all now, at a cost of a few bytes), for a stream that
 * pauses. Returns 0, or -1 when zlib or `out` failed (out->failed). */
int gzip_write(struct gzip_stream *g, const void *data, size_t len, int flush, struct buf *out)
	__attribute__((warn_unused_result));
/* Appends the rest and the gzip trailer; nothing may be written after.
 * Returns 0 or -1. */
int gzip_finish(struct gzip_stream *g, struct buf *out) __attribute__((warn_unused_result));
/* Accepts NULL. */
void gzip_free(struct gzip_stream *g);

/* 1 when an Accept-Encoding value (may be NULL) accepts gzip: "gzip" or
 * "x-gzip" listed with a q-value above 0, or "*" above 0 with gzip not
 * refused (RFC 9110, 12.5.3). Case-insensitive. */
int gzip_accepted(const char *accept_encoding);

#endif
