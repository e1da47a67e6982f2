/* Fuzz target: the routes document's content (common/cfgdoc.c,
 * cfgdoc_verify_routes), as the router agent parses it once the signature
 * holds.
 *
 * The input is "<cells>\n<routes text>": <cells> is a comma-separated list
 * of cell names put in the `cells` claim, the rest is the `routes` text. Both
 * are signed with a trusted key (inputs the signer refuses, such as a '"'
 * in the text, are skipped) and verified.
 *
 * Invariants: a document signed here is accepted or refused as content,
 * never for its envelope; a result and its document agree; an accepted
 * document has every route a 24-hex key id, once, and a cell of the cells
 * claim, one route per record of the text, and written again with
 * cfgdoc_add_route() gives the text back byte for byte; a document is
 * accepted whenever the text is made of such records over valid, distinct
 * cells. */
#include "buf.h"
#include "cfgdoc.h"
#include "fuzz.h"
#include "fuzz_trust.h"
#include "jwk.h"
#include "names.h"

#define ISS "celltrail-control-plane"
#define NOW INT64_C(1800000000)

static struct jwk key;
static struct cfgdoc_trust trust;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_trust_init(&key, &trust);
	return 0;
}

/* 1 when `text` is "<24 hex>|<cell>;" records over the names of `cells`
 * with no key id twice: what the verifier must accept. */
static int well_formed(const char *text, json_t *cells)
{
	size_t n = 0;
	int ok = 1;
	char (*seen)[25] = NULL;
	for (const char *p = text; *p && ok;) {
		const char *end = strchr(p, ';'), *bar = end ? memchr(p, '|', (size_t)(end - p)) : NULL;
		if (!end || !bar || bar - p != 24 || strspn(p, "0123456789abcdef") != 24) {
			ok = 0;
			break;
		}
		int listed = 0;
		size_t i;
		json_t *c;
		json_array_foreach(cells, i, c) {
			const char *name = json_string_value(json_array_get(c, 0));
			listed |= strlen(name) == (size_t)(end - bar - 1) && !memcmp(name, bar + 1, strlen(name));
		}
		seen = realloc(seen, (n + 1) * sizeof *seen);
		if (!seen)
			abort();
		memcpy(seen[n], p, 24);
		seen[n][24] = '\0';
		for (size_t j = 0; j < n; j++)
			if (!strcmp(seen[j], seen[n]))
				listed = 0;
		n++;
		ok = listed;
		p = end + 1;
	}
	free(seen);
	return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = fuzz_cstr(data, size), *nl = strchr(in, '\n');
	json_t *cells = json_array(), *claims = NULL;
	char *tok = NULL;
	int cells_ok = 1;
	if (!nl)
		goto out;
	*nl = '\0';
	const char *text = nl + 1;
	for (char *save = NULL, *name = strtok_r(in, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
		if (!fuzz_utf8(name))
			goto out;
		cells_ok &= name_valid_cell(name);
		size_t i;
		json_t *c;
		json_array_foreach(cells, i, c)
			cells_ok &= strcmp(json_string_value(json_array_get(c, 0)), name) != 0;
		json_array_append_new(cells, json_pack("[sss]", name, "active", "shared"));
	}
	cells_ok &= json_array_size(cells) >= 1 && json_array_size(cells) <= CFGDOC_ROUTES_MAX_CELLS;
	claims = json_pack("{ss ss sI sI sI ss sI si ss ss sO}", "iss", ISS, "aud", CFGDOC_AUD_ROUTES "us", "iat",
	                   (json_int_t)NOW, "nbf", (json_int_t)NOW, "exp", (json_int_t)(NOW + 3600), "jti", "fuzz",
	                   "ver", (json_int_t)7, "fmt", 1, "kind", CFGDOC_KIND_ROUTES, "region", "us", "cells", cells);
	if (!claims)
		abort();
	tok = cfgdoc_sign_text(&key, claims, "routes", text);
	if (!tok)
		goto out; /* text the signer refuses: not a document anyone can send */
	struct cfgdoc_verify_opts o = { .issuer = ISS, .region = "us", .now = NOW, .skew = 60, .min_version = 6,
		                            .max_bytes = 1u << 24 };
	struct cfgdoc_routes *r = (struct cfgdoc_routes *)&trust;
	char detail[512];
	enum cfgdoc_result res = cfgdoc_verify_routes(tok, strlen(tok), &trust, &o, &r, detail, sizeof detail);
	CHECK(res == CFGDOC_OK || res == CFGDOC_BAD_CONTENT, "a document signed here refused: %s (%s)",
	      cfgdoc_result_names[res], detail);
	CHECK((res == CFGDOC_OK) == (r != NULL), "result %s with document %p", cfgdoc_result_names[res], (void *)r);
	CHECK(detail[0], "no detail");
	int expect = cells_ok && well_formed(text, cells);
	CHECK((res == CFGDOC_OK) == expect, "%s, but the text is %swell formed (%s)", cfgdoc_result_names[res],
	      expect ? "" : "not ", detail);
	if (r) {
		size_t records = 0;
		for (const char *p = text; *p; p++)
			records += *p == ';';
		CHECK(r->nroutes == records, "%zu routes for %zu records", r->nroutes, records);
		struct buf b = { 0 };
		for (size_t i = 0; i < r->nroutes; i++) {
			CHECK(r->routes[i].cell < r->ncells, "route %zu: cell %u of %zu", i, r->routes[i].cell, r->ncells);
			CHECK(cfgdoc_add_route(&b, r->routes[i].key, r->cells[r->routes[i].cell].name) == 0,
			      "route %zu cannot be written again", i);
		}
		buf_append(&b, "", 1);
		CHECK(!b.failed && !strcmp(b.p, text), "written again: '%.200s', was '%.200s'", b.p, text);
		buf_free(&b);
		cfgdoc_routes_free(r);
	}
out:
	free(tok);
	json_decref(claims);
	json_decref(cells);
	free(in);
	return 0;
}
