/* Unit tests of the export formats (data-plane/export_format.c: CSV
 * fields and records, NDJSON lines and the log's trailer) and of streaming gzip with the
 * Accept-Encoding test (common/gzip.c), decompressed here with zlib. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "../../data-plane/export_format.c"
#include "buf.h"
#include "gzip.h"
#include "unit.h"

static char *field(const char *s, size_t n)
{
	struct buf b = { 0 };
	dp_csv_field(&b, s, n);
	buf_append(&b, "", 0);
	return buf_take(&b);
}

START_TEST(csv_field_quoting_and_defusing)
{
	/* A cell a spreadsheet reads back as exactly the text written, but
	 * for the "'" that keeps a formula from running (RFC 4180, OWASP). */
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "", "" },
		{ "plain", "plain" },
		{ "two words", "two words" },
		{ " lead", " lead" },
		{ "a,b", "\"a,b\"" },
		{ "say \"hi\"", "\"say \"\"hi\"\"\"" },
		{ "\"", "\"\"\"\"" },
		{ "line\nbreak", "\"line\nbreak\"" },
		{ "cr\rhere", "\"cr\rhere\"" },
		{ "crlf\r\n", "\"crlf\r\n\"" },
		{ "=1+2", "'=1+2" },
		{ "+1", "'+1" },
		{ "-1", "'-1" },
		{ "@SUM(A1)", "'@SUM(A1)" },
		{ "\tx", "'\tx" },
		{ "\rx", "\"'\rx\"" },
		{ "=HYPERLINK(\"http://x\",\"y\")", "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"" },
		{ "=a,b", "\"'=a,b\"" },
		{ "a=b", "a=b" },
		{ "a-b", "a-b" },
		{ "1-2", "1-2" },
		{ "'quoted", "'quoted" },
		{ "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80" },
		{ "\xc3\xa9,\xe2\x82\xac", "\"\xc3\xa9,\xe2\x82\xac\"" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *got = field(cases[i].in, strlen(cases[i].in));
		ck_assert_msg(!strcmp(got, cases[i].out), "case %zu: [%s] gave [%s], want [%s]", i, cases[i].in, got,
		              cases[i].out);
		free(got);
	}
	/* A NUL inside is data, not the end. */
	char *got = field("a\0b", 3);
	ck_assert_mem_eq(got, "a\0b", 3);
	free(got);
}
END_TEST

/* Splits one CSV record (RFC 4180, CRLF-terminated) into at most `max`
 * fields, undoing the quoting: the reference reader of these tests. */
static int csv_parse(const char *s, char fields[][512], int max, const char **end)
{
	int n = 0;
	for (;;) {
		ck_assert_int_lt(n, max);
		size_t k = 0;
		if (*s == '"') {
			for (s++;; s++) {
				ck_assert_msg(*s, "unterminated quoted field");
				if (*s == '"' && s[1] == '"')
					fields[n][k++] = *s++;
				else if (*s == '"')
					break;
				else
					fields[n][k++] = *s;
			}
			s++;
		} else {
			while (*s && *s != ',' && *s != '\r' && *s != '\n') {
				fields[n][k++] = *s++;
			}
		}
		fields[n++][k] = '\0';
		if (*s == ',') {
			s++;
			continue;
		}
		ck_assert_msg(s[0] == '\r' && s[1] == '\n', "record not ended by CRLF: [%s]", s);
		*end = s + 2;
		return n;
	}
}

START_TEST(csv_records)
{
	/* The header and a record per event, fields in the documented order,
	 * JSON members as compact JSON, a missing actor name empty. */
	struct buf b = { 0 };
	const char *ev1 =
		"{\"id\":\"ev-1\",\"occurred_at\":\"2026-01-02T03:04:05.000006Z\",\"received_at\":\"2026-01-02T03:04:06.000000Z\","
		"\"action\":\"user.login\",\"actor\":{\"id\":\"u,1\",\"type\":\"user\",\"name\":\"=cmd|' /C calc'!A0\"},"
		"\"targets\":[{\"id\":\"t\\\"1\",\"type\":\"doc\"}],\"context\":{\"ip\":\"10.0.0.1\"},"
		"\"metadata\":{\"note\":\"line1\\nline2\",\"n\":1}}";
	const char *ev2 =
		"{\"id\":\"-x\",\"occurred_at\":\"2026-01-02T03:04:05.000006Z\",\"received_at\":\"2026-01-02T03:04:06.000000Z\","
		"\"action\":\"a\",\"actor\":{\"id\":\"u\",\"type\":\"user\"},\"targets\":[],\"context\":{},\"metadata\":{}}";
	dp_export_begin(DP_EXPORT_CSV, &b);
	ck_assert_int_eq(dp_export_event(DP_EXPORT_CSV, ev1, strlen(ev1), &b), 0);
	ck_assert_int_eq(dp_export_event(DP_EXPORT_CSV, ev2, strlen(ev2), &b), 0);
	buf_append(&b, "", 0);
	ck_assert(!b.failed);

	static char f[16][512];
	const char *p = b.p;
	ck_assert_int_eq(csv_parse(p, f, 16, &p), 10);
	const char *const names[] = { "id", "occurred_at", "received_at", "action", "actor_id",
		                          "actor_type", "actor_name", "targets", "context", "metadata" };
	for (int i = 0; i < 10; i++)
		ck_assert_str_eq(f[i], names[i]);
	ck_assert_int_eq(csv_parse(p, f, 16, &p), 10);
	ck_assert_str_eq(f[0], "ev-1");
	ck_assert_str_eq(f[1], "2026-01-02T03:04:05.000006Z");
	ck_assert_str_eq(f[2], "2026-01-02T03:04:06.000000Z");
	ck_assert_str_eq(f[3], "user.login");
	ck_assert_str_eq(f[4], "u,1");
	ck_assert_str_eq(f[5], "user");
	ck_assert_str_eq(f[6], "'=cmd|' /C calc'!A0");
	ck_assert_str_eq(f[7], "[{\"id\":\"t\\\"1\",\"type\":\"doc\"}]");
	ck_assert_str_eq(f[8], "{\"ip\":\"10.0.0.1\"}");
	ck_assert_str_eq(f[9], "{\"note\":\"line1\\nline2\",\"n\":1}");
	ck_assert_int_eq(csv_parse(p, f, 16, &p), 10);
	ck_assert_str_eq(f[0], "'-x");
	ck_assert_str_eq(f[6], "");
	ck_assert_str_eq(f[7], "[]");
	ck_assert_str_eq(f[9], "{}");
	ck_assert_str_eq(p, "");
	buf_free(&b);

	/* A body that is not an object adds nothing and says so. */
	struct buf e = { 0 };
	ck_assert_int_eq(dp_export_event(DP_EXPORT_CSV, "[1]", 3, &e), -1);
	ck_assert_int_eq(dp_export_event(DP_EXPORT_CSV, "{", 1, &e), -1);
	ck_assert_uint_eq(e.len, 0);
	buf_free(&e);
}
END_TEST

START_TEST(ndjson_lines)
{
	/* NDJSON is the stored event, byte for byte, one per line; no header. */
	struct buf b = { 0 };
	dp_export_begin(DP_EXPORT_NDJSON, &b);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_int_eq(dp_export_event(DP_EXPORT_NDJSON, "{\"id\":\"=1\"}", 11, &b), 0);
	ck_assert_int_eq(dp_export_event(DP_EXPORT_NDJSON, "{\"id\":\"\xc3\xa9\"}", 11, &b), 0);
	buf_append(&b, "", 0);
	ck_assert_str_eq(b.p, "{\"id\":\"=1\"}\n{\"id\":\"\xc3\xa9\"}\n");
	buf_free(&b);
}
END_TEST

START_TEST(trailer_lines)
{
	/* The trailer's lines, byte for byte as export.h documents them: a
	 * verifier in any language reads them with a JSON parser. */
	unsigned char h[3][32];
	for (int i = 0; i < 3; i++)
		memset(h[i], i == 0 ? 0x00 : i == 1 ? 0xff : 0xfb, 32);
	int64_t removed[] = { 1001 };
	/* An id is the database's text, so it is escaped whatever it holds. */
	const char *ids[] = { "evt_1", NULL, "a\"b\\c\n\u00e9" };
	struct buf b = { 0 };
	dp_export_log_line(&b, "6f1c2a9e-0000-4000-8000-000000000001", 4000, 1, 1000, (const unsigned char(*)[32])h, ids,
	                   3, removed, 1);
	dp_export_log_line(&b, "6f1c2a9e-0000-4000-8000-000000000001", 1, 0, 0, (const unsigned char(*)[32])h, ids, 1,
	                   NULL, 0);
	dp_export_checkpoint_line(&b, "eyJh.eyJ0.c2ln");
	dp_export_checkpoint_line(&b, "a\"b");
	buf_append(&b, "", 0);
	ck_assert_str_eq(b.p, "{\"log\":{\"tenant_id\":\"6f1c2a9e-0000-4000-8000-000000000001\",\"tree_size\":4000,"
	                      "\"complete\":true,\"from\":1000,\"leaf_hashes\":["
	                      "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
	                      "\"__________________________________________8\","
	                      "\"-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_s\"],"
	                      "\"event_ids\":[\"evt_1\",null,\"a\\\"b\\\\c\\n\u00e9\"],\"removed\":[1001]}}\n"
	                      "{\"log\":{\"tenant_id\":\"6f1c2a9e-0000-4000-8000-000000000001\",\"tree_size\":1,"
	                      "\"complete\":false,\"from\":0,\"leaf_hashes\":["
	                      "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"],\"event_ids\":[\"evt_1\"],\"removed\":[]}}\n"
	                      "{\"checkpoint\":\"eyJh.eyJ0.c2ln\"}\n"
	                      "{\"checkpoint\":\"a\\\"b\"}\n");
	buf_free(&b);
}
END_TEST

/* Inflates a whole gzip stream; returns the bytes (len in *n) or NULL when
 * it is not a complete, valid stream. */
static unsigned char *inflate_all(const unsigned char *in, size_t len, size_t *n, int need_end)
{
	z_stream z = { 0 };
	ck_assert_int_eq(inflateInit2(&z, 15 + 16), Z_OK);
	size_t cap = 1024 + len * 4, got = 0;
	unsigned char *out = malloc(cap);
	z.next_in = (unsigned char *)in;
	z.avail_in = (unsigned)len;
	int rc;
	do {
		if (cap - got < 65536) {
			cap *= 2;
			out = realloc(out, cap);
		}
		z.next_out = out + got;
		z.avail_out = (unsigned)(cap - got);
		rc = inflate(&z, Z_NO_FLUSH);
		got = cap - z.avail_out;
	} while (rc == Z_OK && (z.avail_in > 0 || z.avail_out == 0));
	inflateEnd(&z);
	if (rc != Z_STREAM_END && (need_end || (rc != Z_OK && rc != Z_BUF_ERROR))) {
		free(out);
		return NULL;
	}
	*n = got;
	return out;
}

START_TEST(gzip_round_trip)
{
	/* What goes in, in any pieces, with or without flushes, comes out of
	 * zlib's inflate whole; a flush makes all of it readable at once. */
	size_t total = 3 * 1000 * 1000;
	unsigned char *data = malloc(total);
	uint32_t x = 12345;
	for (size_t i = 0; i < total; i++) {
		x = x * 1103515245 + 12345;
		/* half random, half repetitive: both of deflate's paths */
		data[i] = (i / 4096) % 2 ? (unsigned char)(x >> 24) : (unsigned char)("audit,"[i % 6]);
	}
	static const size_t pieces[] = { 1, 7, 4096, 65536, 1000000 };
	for (size_t k = 0; k < sizeof pieces / sizeof pieces[0]; k++) {
		struct gzip_stream *g = gzip_new(1);
		ck_assert_ptr_nonnull(g);
		struct buf out = { 0 };
		size_t len = pieces[k] == 1 ? 100000 : total; /* a byte at a time: shorter */
		for (size_t off = 0; off < len; off += pieces[k]) {
			size_t n = len - off < pieces[k] ? len - off : pieces[k];
			ck_assert_int_eq(gzip_write(g, data + off, n, (off / pieces[k]) % 3 == 0, &out), 0);
		}
		/* Flushed: everything so far is readable before the end. */
		ck_assert_int_eq(gzip_write(g, NULL, 0, 1, &out), 0);
		size_t n1 = 0;
		unsigned char *part = inflate_all((unsigned char *)out.p, out.len, &n1, 0);
		ck_assert_ptr_nonnull(part);
		ck_assert_uint_eq(n1, len);
		ck_assert_int_eq(memcmp(part, data, len), 0);
		free(part);
		ck_assert_int_eq(gzip_finish(g, &out), 0);
		ck_assert_int_eq(gzip_write(g, "x", 1, 0, &out), -1); /* nothing after the end */
		size_t n2 = 0;
		unsigned char *whole = inflate_all((unsigned char *)out.p, out.len, &n2, 1);
		ck_assert_ptr_nonnull(whole);
		ck_assert_uint_eq(n2, len);
		ck_assert_int_eq(memcmp(whole, data, len), 0);
		free(whole);
		/* Cut short, it is not a whole stream. */
		ck_assert_ptr_null(inflate_all((unsigned char *)out.p, out.len - 4, &n2, 1));
		buf_free(&out);
		gzip_free(g);
	}
	/* Nothing in: a valid stream of nothing. */
	struct gzip_stream *g = gzip_new(6);
	struct buf out = { 0 };
	ck_assert_int_eq(gzip_finish(g, &out), 0);
	size_t n = 1;
	unsigned char *none = inflate_all((unsigned char *)out.p, out.len, &n, 1);
	ck_assert_ptr_nonnull(none);
	ck_assert_uint_eq(n, 0);
	free(none);
	buf_free(&out);
	gzip_free(g);
	gzip_free(NULL);
	free(data);
}
END_TEST

START_TEST(gzip_accept_encoding)
{
	/* Compressed only when the client says it takes gzip (RFC 9110). */
	static const struct {
		const char *ae;
		int want;
	} cases[] = {
		{ NULL, 0 },
		{ "", 0 },
		{ "gzip", 1 },
		{ "GZip", 1 },
		{ "x-gzip", 1 },
		{ "deflate, gzip;q=0.5", 1 },
		{ "gzip;q=0", 0 },
		{ "gzip; q=0.000", 0 },
		{ "gzip;q=0.001", 1 },
		{ "gzip;q=1.0", 1 },
		{ "identity", 0 },
		{ "br, deflate", 0 },
		{ "*", 1 },
		{ "*;q=0", 0 },
		{ "*, gzip;q=0", 0 },
		{ "gzipx", 0 },
		{ "xgzip, br", 0 },
		{ "br,gzip", 1 },
		{ " , gzip ,", 1 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		ck_assert_msg(gzip_accepted(cases[i].ae) == cases[i].want, "Accept-Encoding [%s]: want %d",
		              cases[i].ae ? cases[i].ae : "(none)", cases[i].want);
}
END_TEST

Suite *export_suite(void)
{
	Suite *s = suite_create("export");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, csv_field_quoting_and_defusing);
	tcase_add_test(tc, csv_records);
	tcase_add_test(tc, ndjson_lines);
	tcase_add_test(tc, trailer_lines);
	tcase_add_test(tc, gzip_round_trip);
	tcase_add_test(tc, gzip_accept_encoding);
	suite_add_tcase(s, tc);
	return s;
}
