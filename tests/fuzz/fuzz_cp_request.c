/* Fuzz target: the control plane's request validation. The first input
 * byte picks one of the control plane's field tables (byte % TABLES: 'A'
 * is the first, as listed in `tables` below); the rest is the request body,
 * read as the service reads it (jsonx_parse, an object), unpacked with
 * jsonx_unpack, then given to the name validators the handler applies
 * (common/names.c, each checked by names_check.c).
 *
 * The tables are the service's own: control-plane/requests.c, which
 * depends only on common/jsonx, and common/usage_report.c (the usage
 * report's format) are linked into this target.
 *
 * Invariants: jsonx_unpack accepts exactly what the field rules accept
 * (checked with a reference), names the first fault as documented (unknown
 * members first, cut to 90 bytes on a UTF-8 boundary, then the table's
 * fields in order), and on success fills each given field with the
 * member's value, sets its bit in `present`, and leaves absent ones zero. */
#include "fuzz_body.h"
#include "names_check.h"
#include "usage_report.h"
#include "../../control-plane/requests.h"

/* ---- jsonx_unpack against the field rules ---- */

/* The longest prefix of `k` of at most 90 bytes made of whole characters. */
static void shown_name(const char *k, char out[100])
{
	size_t n = 0;
	for (;;) {
		size_t len = 1;
		unsigned char c = (unsigned char)k[n];
		if (!c)
			break;
		if (c >= 0xf0)
			len = 4;
		else if (c >= 0xe0)
			len = 3;
		else if (c >= 0xc0)
			len = 2;
		if (n + len > 90)
			break;
		n += len;
	}
	memcpy(out, k, n);
	out[n] = '\0';
}

static int field_ok(const struct jsonx_field *f, const json_t *v)
{
	switch (f->type) {
	case JX_STRING:
		return json_is_string(v) && (!f->max || (int64_t)json_string_length(v) <= f->max) &&
		       strlen(json_string_value(v)) == json_string_length(v);
	case JX_INT:
		return json_is_integer(v) && json_integer_value(v) >= f->min &&
		       json_integer_value(v) <= f->max;
	case JX_BOOL:
		return json_is_boolean(v);
	case JX_OBJECT:
		return json_is_object(v);
	case JX_ARRAY:
		return json_is_array(v) && (!f->max || (int64_t)json_array_size(v) <= f->max);
	case JX_ANY:
		return 1;
	}
	return 0;
}

static int absent(const struct jsonx_field *f, const json_t *v)
{
	return !v || (json_is_null(v) && f->nullable);
}

/* The rules: 0 when `obj` is acceptable, else -1 with the field a 400 names. */
static int reference(const json_t *obj, const struct jsonx_field *fields, char expect[128])
{
	const char *k;
	json_t *v;
	expect[0] = '\0';
	if (!json_is_object(obj))
		return -1;
	json_object_foreach((json_t *)obj, k, v) {
		int known = 0;
		for (const struct jsonx_field *f = fields; f->name; f++)
			known |= !strcmp(f->name, k);
		if (!known) {
			shown_name(k, expect);
			return -1;
		}
	}
	for (const struct jsonx_field *f = fields; f->name; f++) {
		v = json_object_get(obj, f->name);
		if (absent(f, v) ? f->required : !field_ok(f, v)) {
			snprintf(expect, 128, "%s", f->name);
			return -1;
		}
	}
	return 0;
}

static size_t field_size(enum jsonx_type t)
{
	return t == JX_INT ? sizeof(int64_t) : t == JX_BOOL ? sizeof(int) : sizeof(void *);
}

/* Unpacks `obj` into `dst` (`size` bytes, zeroed here) and checks the
 * outcome against the rules. Returns jsonx_unpack's result. */
static int unpack(const json_t *obj, const struct jsonx_field *fields, void *dst, size_t size,
                  uint64_t *present)
{
	struct jsonx_err err;
	char expect[128];
	memset(dst, 0, size);
	memset(&err, 0x5a, sizeof err);
	int ref = reference(obj, fields, expect);
	int rc = jsonx_unpack(obj, fields, dst, present, &err);
	CHECK(rc == ref, "jsonx_unpack returned %d, the rules say %d ('%s': %s)", rc, ref, err.field,
	      err.msg);
	CHECK(memchr(err.field, '\0', sizeof err.field) && memchr(err.msg, '\0', sizeof err.msg),
	      "err is not terminated");
	if (rc != 0) {
		CHECK(!strcmp(err.field, expect), "the fault is named '%s', expected '%s'", err.field, expect);
		CHECK(err.msg[0] && fuzz_utf8(err.msg) && fuzz_utf8(err.field),
		      "the message or the field is empty or not UTF-8: '%s' / '%s'", err.field, err.msg);
		return rc;
	}
	CHECK(!err.field[0], "success with a field named: '%s'", err.field);
	size_t i = 0;
	for (const struct jsonx_field *f = fields; f->name; f++, i++) {
		const json_t *v = json_object_get(obj, f->name);
		const char *out = (const char *)dst + f->offset;
		int bit = (int)((*present >> i) & 1);
		CHECK(f->offset + field_size(f->type) <= size, "field %s is outside the struct", f->name);
		if (absent(f, v)) {
			static const char zero[sizeof(int64_t)];
			CHECK(!bit, "absent field %s is marked present", f->name);
			CHECK(!memcmp(out, zero, field_size(f->type)), "absent field %s was written", f->name);
			continue;
		}
		CHECK(bit, "given field %s is not marked present", f->name);
		switch (f->type) {
		case JX_STRING: {
			const char *s;
			memcpy(&s, out, sizeof s);
			CHECK(s == json_string_value(v), "%s is not the member's string", f->name);
			break;
		}
		case JX_INT: {
			int64_t n;
			memcpy(&n, out, sizeof n);
			CHECK(n == json_integer_value(v) && n >= f->min && n <= f->max, "%s is %lld", f->name,
			      (long long)n);
			break;
		}
		case JX_BOOL: {
			int b;
			memcpy(&b, out, sizeof b);
			CHECK(b == json_is_true(v), "%s is %d", f->name, b);
			break;
		}
		case JX_OBJECT:
		case JX_ARRAY:
		case JX_ANY: {
			const json_t *p;
			memcpy(&p, out, sizeof p);
			CHECK(p == v, "%s is not the member", f->name);
			break;
		}
		}
	}
	return rc;
}

/* ---- what the handlers check next (control-plane/<file>.c) ---- */

static void tenants_create(const void *dst)
{
	const struct tenant_in *in = dst;
	nc_slug(in->slug);
	nc_region(in->region);
	nc_region(in->plan);
}

static void tenants_update(const void *dst)
{
	const struct tenant_in *in = dst;
	if (in->plan)
		nc_region(in->plan);
	if (in->region)
		nc_region(in->region);
}

static void users_create(const void *dst)
{
	const struct user_in *in = dst;
	nc_email(in->email, NULL);
}

static void api_keys_create(const void *dst)
{
	const struct key_in *in = dst;
	if (in->expires_at)
		nc_timestamp(in->expires_at);
}

static void regions(const void *dst)
{
	const struct region_in *in = dst;
	size_t i;
	json_t *v;
	if (in->name)
		nc_region(in->name);
	if (in->endpoint)
		nc_endpoint(in->endpoint);
	json_array_foreach(in->cloud_regions, i, v)
		if (json_is_string(v))
			nc_region(json_string_value(v));
}

static void plan_create(const void *dst)
{
	const struct plan_in *in = dst;
	nc_region(in->id);
}

/* POST /v1/usage: each record through its own table, then the names. */
static void usage(const void *dst)
{
	const struct usage_report_body *in = dst;
	size_t i;
	json_t *rec;
	json_array_foreach(in->records, i, rec) {
		struct usage_record r;
		uint64_t present;
		if (unpack(rec, usage_report_record_fields, &r, sizeof r, &present) != 0)
			break;
		nc_uuid(r.tenant);
		nc_timestamp(r.window_start);
		nc_timestamp(r.window_end);
	}
}

static void login(const void *dst)
{
	const struct login_req *in = dst;
	nc_email(in->email, NULL);
	if (in->tenant)
		nc_slug(in->tenant);
}

static void fleet_status(const void *dst)
{
	const struct status_in *in = dst;
	if (in->last_pull_ok_at)
		nc_timestamp(in->last_pull_ok_at);
}

static void cells_create(const void *dst)
{
	const struct cell_in *in = dst;
	if (in->tenant_id)
		nc_uuid(in->tenant_id);
}

static void moves_create(const void *dst)
{
	const struct move_in *in = dst;
	if (in->to_region)
		nc_region(in->to_region);
}

static const struct table {
	const struct jsonx_field *fields;
	size_t size;
	void (*after)(const void *dst);
} tables[] = {
	{ cpreq_tenant_create, sizeof(struct tenant_in), tenants_create },       /* A */
	{ cpreq_tenant_update, sizeof(struct tenant_in), tenants_update },       /* B */
	{ cpreq_user_create, sizeof(struct user_in), users_create },             /* C */
	{ cpreq_admin_create, sizeof(struct user_in), users_create },            /* D */
	{ cpreq_user_update, sizeof(struct user_in), NULL },                     /* E */
	{ cpreq_key_create, sizeof(struct key_in), api_keys_create },            /* F */
	{ cpreq_region_create, sizeof(struct region_in), regions },              /* G */
	{ cpreq_region_update, sizeof(struct region_in), regions },              /* H */
	{ cpreq_plan_create, sizeof(struct plan_in), plan_create },              /* I */
	{ cpreq_plan_update, sizeof(struct plan_in), NULL },                     /* J */
	{ usage_report_fields, sizeof(struct usage_report_body), usage },                         /* K */
	{ cpreq_login, sizeof(struct login_req), login },                        /* L */
	{ cpreq_region_status, sizeof(struct status_in), fleet_status },         /* M */
	{ usage_report_record_fields, sizeof(struct usage_record), NULL },                  /* N */
	{ cpreq_cell_create, sizeof(struct cell_in), cells_create },             /* O */
	{ cpreq_cell_update, sizeof(struct cell_in), NULL },                     /* P */
	{ cpreq_move_create, sizeof(struct move_in), moves_create },             /* Q */
	{ cpreq_cell_drain, sizeof(struct move_in), NULL },                      /* R */
	{ cpreq_move_claim, sizeof(struct mover_in), NULL },                     /* S */
	{ cpreq_move_progress, sizeof(struct mover_in), NULL },                  /* T */
	{ cpreq_move_complete, sizeof(struct mover_in), NULL },                  /* U */
	{ cpreq_move_erased, sizeof(struct mover_in), NULL },                    /* V */
	{ cpreq_stream_create, sizeof(struct stream_in), NULL },                 /* W */
	{ cpreq_stream_update, sizeof(struct stream_in), NULL },                 /* X */
	{ cpreq_stream_replay, sizeof(struct stream_in), NULL },                 /* Y */
};
#define TABLES (sizeof tables / sizeof tables[0])

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	union {
		struct tenant_in t;
		struct user_in u;
		struct key_in k;
		struct region_in r;
		struct plan_in p;
		struct usage_report_body us;
		struct usage_record rec;
		struct login_req l;
		struct status_in s;
		struct cell_in c;
		struct move_in m;
		struct mover_in mv;
		struct stream_in st;
	} dst;
	uint64_t present;
	if (size < 1)
		return 0;
	const struct table *t = &tables[(data[0] + TABLES * 10 - 'A') % TABLES];
	json_t *obj = fuzz_body(data + 1, size - 1);
	if (!obj)
		return 0;
	CHECK(t->size <= sizeof dst, "destination too small");
	if (unpack(obj, t->fields, &dst, t->size, &present) == 0 && t->after)
		t->after(&dst);
	json_decref(obj);
	return 0;
}
