/* Fuzz target: the control plane's request validation. The first input
 * byte picks one of the control plane's field tables (byte % TABLES: 'A'
 * is the first, as listed in `tables` below); the rest is the request body,
 * read as the service reads it (jsonx_parse, an object), unpacked with
 * jsonx_unpack, then given to the name validators the handler applies
 * (common/names.c, each checked by names_check.c).
 *
 * The tables are static in their handlers' files, which link against the
 * whole service; they are copied here verbatim, and tests/fuzz/tables.sh
 * (run before this target is built) fails when a copy differs from its
 * source or a table of control-plane/ is missing here. The usage report's
 * tables are public in common/usage_report.h and linked instead.
 *
 * Invariants: jsonx_unpack accepts exactly what the field rules accept
 * (checked with a reference), names the first fault as documented (unknown
 * members first, cut to 90 bytes on a UTF-8 boundary, then the table's
 * fields in order), and on success fills each given field with the
 * member's value, sets its bit in `present`, and leaves absent ones zero. */
#include "fuzz_body.h"
#include "names_check.h"
#include "usage_report.h"
#include "../../control-plane/password.h"

/* ---- the tables ---- */

/* control-plane/tenants.c */
struct tenant_in {
	const char *name, *slug, *region, *plan, *status;
};
#define F(n) offsetof(struct tenant_in, n)
/* control-plane/tenants.c create_fields */
static const struct jsonx_field tenants_create_fields[] = {
	{ "name", JX_STRING, 1, 0, 0, 200, F(name) },
	{ "slug", JX_STRING, 1, 0, 0, 63, F(slug) },
	{ "region", JX_STRING, 1, 0, 0, 32, F(region) },
	{ "plan", JX_STRING, 1, 0, 0, 32, F(plan) },
	JSONX_END
};
/* control-plane/tenants.c update_fields */
static const struct jsonx_field tenants_update_fields[] = {
	{ "name", JX_STRING, 0, 0, 0, 200, F(name) },
	{ "plan", JX_STRING, 0, 0, 0, 32, F(plan) },
	{ "status", JX_STRING, 0, 0, 0, 16, F(status) },
	{ "region", JX_STRING, 0, 0, 0, 32, F(region) },
	JSONX_END
};
#undef F

/* control-plane/users.c */
struct user_in {
	const char *email, *role, *password;
};
#define F(n) offsetof(struct user_in, n)
/* control-plane/users.c create_fields */
static const struct jsonx_field users_create_fields[] = {
	{ "email", JX_STRING, 1, 0, 0, 254, F(email) },
	{ "role", JX_STRING, 1, 0, 0, 16, F(role) },
	{ "password", JX_STRING, 1, 0, 0, PASSWORD_MAX_LEN, F(password) },
	JSONX_END
};
/* control-plane/users.c admin_fields */
static const struct jsonx_field users_admin_fields[] = {
	{ "email", JX_STRING, 1, 0, 0, 254, F(email) },
	{ "password", JX_STRING, 1, 0, 0, PASSWORD_MAX_LEN, F(password) },
	JSONX_END
};
/* control-plane/users.c update_fields */
static const struct jsonx_field users_update_fields[] = {
	{ "role", JX_STRING, 1, 0, 0, 16, F(role) },
	JSONX_END
};
#undef F

/* control-plane/api_keys.c */
struct key_in {
	const char *name, *expires_at;
	json_t *scopes;
};
#define F(n) offsetof(struct key_in, n)
/* control-plane/api_keys.c create_fields */
static const struct jsonx_field api_keys_create_fields[] = {
	{ "name", JX_STRING, 1, 0, 0, 100, F(name) },
	{ "scopes", JX_ARRAY, 1, 0, 0, 2, F(scopes) },
	{ "expires_at", JX_STRING, 0, 1, 0, 40, F(expires_at) },
	JSONX_END
};
#undef F

/* control-plane/regions.c */
struct region_in {
	const char *name, *display_name, *endpoint_url, *status;
	json_t *cloud_regions;
	int64_t wave;
};
#define F(n) offsetof(struct region_in, n)
/* control-plane/regions.c create_fields */
static const struct jsonx_field regions_create_fields[] = {
	{ "name", JX_STRING, 1, 0, 0, 32, F(name) },
	{ "display_name", JX_STRING, 1, 0, 0, 100, F(display_name) },
	{ "cloud_regions", JX_ARRAY, 1, 0, 0, 16, F(cloud_regions) },
	{ "endpoint_url", JX_STRING, 1, 0, 0, 200, F(endpoint_url) },
	{ "wave", JX_INT, 1, 0, 1, 100, F(wave) },
	{ "status", JX_STRING, 0, 0, 0, 16, F(status) },
	JSONX_END
};
/* control-plane/regions.c update_fields */
static const struct jsonx_field regions_update_fields[] = {
	{ "display_name", JX_STRING, 0, 0, 0, 100, F(display_name) },
	{ "cloud_regions", JX_ARRAY, 0, 0, 0, 16, F(cloud_regions) },
	{ "endpoint_url", JX_STRING, 0, 0, 0, 200, F(endpoint_url) },
	{ "wave", JX_INT, 0, 0, 1, 100, F(wave) },
	{ "status", JX_STRING, 0, 0, 0, 16, F(status) },
	JSONX_END
};
#undef F

/* control-plane/billing.c */
#define MAX_PRICE_PER_1000 INT64_C(100000)              /* 1e5 */
#define MAX_BASE_PRICE INT64_C(10000000000)             /* 1e10 */
struct plan_in {
	const char *id, *name, *currency;
	int64_t n[7];
};
#define F(m) offsetof(struct plan_in, m)
#define N(i) (offsetof(struct plan_in, n) + (i) * sizeof(int64_t))
/* control-plane/billing.c plan_create_fields */
static const struct jsonx_field billing_plan_create_fields[] = {
	{ "id", JX_STRING, 1, 0, 0, 32, F(id) },
	{ "name", JX_STRING, 1, 0, 0, 100, F(name) },
	{ "currency", JX_STRING, 1, 0, 0, 3, F(currency) },
	{ "base_price", JX_INT, 1, 0, 0, MAX_BASE_PRICE, N(0) },
	{ "events_included", JX_INT, 1, 0, 0, INT64_C(1000000000000000), N(1) },
	{ "price_per_1000", JX_INT, 1, 0, 0, MAX_PRICE_PER_1000, N(2) },
	{ "rate_limit", JX_INT, 1, 0, 1, 1000000, N(3) },
	{ "burst", JX_INT, 1, 0, 1, 1000000, N(4) },
	{ "monthly_event_quota", JX_INT, 1, 0, 0, INT64_C(1000000000000000), N(5) },
	{ "retention_days", JX_INT, 1, 0, 1, 3650, N(6) },
	JSONX_END
};
/* control-plane/billing.c plan_update_fields */
static const struct jsonx_field billing_plan_update_fields[] = {
	{ "name", JX_STRING, 0, 0, 0, 100, F(name) },
	{ "currency", JX_STRING, 0, 0, 0, 3, F(currency) },
	{ "base_price", JX_INT, 0, 0, 0, MAX_BASE_PRICE, N(0) },
	{ "events_included", JX_INT, 0, 0, 0, INT64_C(1000000000000000), N(1) },
	{ "price_per_1000", JX_INT, 0, 0, 0, MAX_PRICE_PER_1000, N(2) },
	{ "rate_limit", JX_INT, 0, 0, 1, 1000000, N(3) },
	{ "burst", JX_INT, 0, 0, 1, 1000000, N(4) },
	{ "monthly_event_quota", JX_INT, 0, 0, 0, INT64_C(1000000000000000), N(5) },
	{ "retention_days", JX_INT, 0, 0, 1, 3650, N(6) },
	JSONX_END
};
#undef F
#undef N
/* common/usage_report.c: linked, not copied */

/* control-plane/auth.c */
struct login_req {
	const char *email;
	const char *password;
	const char *tenant;
};
/* control-plane/auth.c login_fields */
static const struct jsonx_field auth_login_fields[] = {
	{ "email", JX_STRING, 1, 0, 0, 254, offsetof(struct login_req, email) },
	{ "password", JX_STRING, 1, 0, 0, PASSWORD_MAX_LEN, offsetof(struct login_req, password) },
	{ "tenant", JX_STRING, 0, 1, 0, 63, offsetof(struct login_req, tenant) },
	JSONX_END
};

/* control-plane/region_config.c */
struct status_in {
	const char *instance, *source, *last_pull_ok_at, *last_error;
	int64_t version;
	int stale;
};
#define F(n) offsetof(struct status_in, n)
/* control-plane/region_config.c status_fields */
static const struct jsonx_field region_config_status_fields[] = {
	{ "instance", JX_STRING, 1, 0, 0, 128, F(instance) },
	{ "version", JX_INT, 0, 1, 0, INT64_MAX, F(version) },
	{ "source", JX_STRING, 0, 1, 0, 16, F(source) },
	{ "last_pull_ok_at", JX_STRING, 0, 1, 0, 40, F(last_pull_ok_at) },
	{ "last_error", JX_STRING, 0, 1, 0, 500, F(last_error) },
	{ "stale", JX_BOOL, 0, 0, 0, 0, F(stale) },
	JSONX_END
};
#undef F

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
	if (in->endpoint_url)
		nc_endpoint(in->endpoint_url);
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

static const struct table {
	const struct jsonx_field *fields;
	size_t size;
	void (*after)(const void *dst);
} tables[] = {
	{ tenants_create_fields, sizeof(struct tenant_in), tenants_create },              /* A */
	{ tenants_update_fields, sizeof(struct tenant_in), tenants_update },              /* B */
	{ users_create_fields, sizeof(struct user_in), users_create },                    /* C */
	{ users_admin_fields, sizeof(struct user_in), users_create },                     /* D */
	{ users_update_fields, sizeof(struct user_in), NULL },                            /* E */
	{ api_keys_create_fields, sizeof(struct key_in), api_keys_create },               /* F */
	{ regions_create_fields, sizeof(struct region_in), regions },                     /* G */
	{ regions_update_fields, sizeof(struct region_in), regions },                     /* H */
	{ billing_plan_create_fields, sizeof(struct plan_in), plan_create },              /* I */
	{ billing_plan_update_fields, sizeof(struct plan_in), NULL },                     /* J */
	{ usage_report_fields, sizeof(struct usage_report_body), usage },                 /* K */
	{ auth_login_fields, sizeof(struct login_req), login },                           /* L */
	{ region_config_status_fields, sizeof(struct status_in), fleet_status },          /* M */
	{ usage_report_record_fields, sizeof(struct usage_record), NULL },                /* N */
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
