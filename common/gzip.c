/* Streaming gzip over zlib, and the Accept-Encoding test. */
#include "gzip.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "buf.h"

struct gzip_stream {
	z_stream z;
	int finished;
};

/* What deflate writes into at a time before the bytes go to `out`. */
#define GZIP_CHUNK 16384

struct gzip_stream *gzip_new(int level)
{
	struct gzip_stream *g = calloc(1, sizeof *g);
	if (!g)
		return NULL;
	/* windowBits 15 + 16: a gzip header and trailer rather than zlib's;
	 * memLevel 8: zlib's default, about 256 KiB of state with the window. */
	if (deflateInit2(&g->z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
		free(g);
		return NULL;
	}
	return g;
}

/* Runs deflate over what z holds with `mode` until it wants more input
 * (or, with Z_FINISH, until the end), appending its output to `out`. */
static int run(struct gzip_stream *g, int mode, struct buf *out)
{
	unsigned char chunk[GZIP_CHUNK];
	int rc;
	do {
		g->z.next_out = chunk;
		g->z.avail_out = sizeof chunk;
		rc = deflate(&g->z, mode);
		if (rc == Z_STREAM_ERROR)
			return -1;
		buf_append(out, chunk, sizeof chunk - g->z.avail_out);
		if (out->failed)
			return -1;
		/* Output filled the chunk: zlib may have more to give. */
	} while (g->z.avail_out == 0 || (mode == Z_FINISH && rc != Z_STREAM_END));
	return 0;
}

int gzip_write(struct gzip_stream *g, const void *data, size_t len, int flush, struct buf *out)
{
	if (g->finished)
		return -1;
	const unsigned char *p = data;
	/* avail_in is an unsigned int: feed a very long piece in parts. */
	while (len > 0) {
		unsigned n = len > (1u << 30) ? (1u << 30) : (unsigned)len;
		g->z.next_in = (unsigned char *)p;
		g->z.avail_in = n;
		if (run(g, Z_NO_FLUSH, out) != 0)
			return -1;
		p += n;
		len -= n;
	}
	g->z.next_in = NULL;
	g->z.avail_in = 0;
	return flush ? run(g, Z_SYNC_FLUSH, out) : 0;
}

int gzip_finish(struct gzip_stream *g, struct buf *out)
{
	if (g->finished)
		return -1;
	g->z.next_in = NULL;
	g->z.avail_in = 0;
	g->finished = 1;
	return run(g, Z_FINISH, out);
}

void gzip_free(struct gzip_stream *g)
{
	if (!g)
		return;
	deflateEnd(&g->z);
	free(g);
}

/* The q-value of one Accept-Encoding member's parameters (after the
 * coding): 1 when absent, 0 when malformed or 0. */
static int q_positive(const char *p, const char *end)
{
	while (p < end) {
		while (p < end && (*p == ' ' || *p == '\t' || *p == ';'))
			p++;
		if (end - p >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
			p += 2;
			/* q = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ) */
			if (p < end && *p == '1')
				return 1;
			if (p >= end || *p != '0')
				return 0;
			for (p++; p < end && (*p == '.' || *p == '0'); p++)
				;
			return p < end && *p >= '1' && *p <= '9';
		}
		while (p < end && *p != ';')
			p++;
	}
	return 1;
}

int gzip_accepted(const char *ae)
{
	int gzip = -1, star = -1; /* -1: not listed, else whether q > 0 */
	if (!ae)
		return 0;
	for (const char *p = ae; *p;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		const char *tok = p;
		while (*p && *p != ',' && *p != ';' && *p != ' ' && *p != '\t')
			p++;
		size_t n = (size_t)(p - tok);
		const char *params = p;
		while (*p && *p != ',')
			p++;
		int pos = q_positive(params, p);
		if ((n == 4 && !strncasecmp(tok, "gzip", 4)) || (n == 6 && !strncasecmp(tok, "x-gzip", 6)))
			gzip = gzip == 1 ? 1 : pos;
		else if (n == 1 && *tok == '*')
			star = pos;
	}
	return gzip >= 0 ? gzip : star == 1;
}
