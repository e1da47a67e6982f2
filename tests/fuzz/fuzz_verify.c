/* Fuzz target: bin/celltrail-verify (data-plane/celltrail_verify.c) on a
 * hostile export and checkpoints file: event lines, log lines and the
 * checkpoint line, parsed and cross-checked as a customer's machine would.
 * The input is the export; when it holds a line "--", what comes before
 * is the checkpoints file instead.
 *
 * Invariants: no crash, sanitizer report or leak; the exit status is 0 or
 * 1 (2 is only for unreadable files and a bad JWK set, which the harness
 * never gives). */
#include <unistd.h>

#include "fuzz.h"
#include "jwk.h"

#define CELLTRAIL_VERIFY_MAIN celltrail_verify_main
#include "../../data-plane/celltrail_verify.c"

static char dir[64], jwks_path[96], cps_path[96], export_path[96];

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0)
		abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	snprintf(dir, sizeof dir, "/tmp/fuzz-verify-XXXXXX");
	if (!mkdtemp(dir))
		abort();
	snprintf(jwks_path, sizeof jwks_path, "%s/jwks.json", dir);
	snprintf(cps_path, sizeof cps_path, "%s/checkpoints", dir);
	snprintf(export_path, sizeof export_path, "%s/export.ndjson", dir);
	struct jwk k;
	if (jwk_generate(&k) != 0)
		abort();
	json_t *set = json_pack("{s[o]}", "keys", jwk_public_json(&k));
	if (!set || json_dump_file(set, jwks_path, 0) != 0)
		abort();
	json_decref(set);
	/* A checkpoint this key signed, for the runs without a file of their own. */
	struct checkpoint c = { .tenant_id = "5b0c8f0e-2a43-4c1e-9d1a-7c2f3e4d5a6b", .tree_size = 3,
		                    .iat = 1765000000, .region = "eu" };
	char *tok = checkpoint_sign(&k, &c);
	if (!tok)
		abort();
	write_file(cps_path, tok, strlen(tok));
	free(tok);
	jwk_clear(&k);
	if (!freopen("/dev/null", "w", stdout))
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char own_cps[112];
	const char *cps = cps_path;
	const uint8_t *sep = size >= 4 ? memmem(data, size, "\n--\n", 4) : NULL;
	if (sep) {
		snprintf(own_cps, sizeof own_cps, "%s/own-checkpoints", dir);
		write_file(own_cps, data, (size_t)(sep - data));
		cps = own_cps;
		size -= (size_t)(sep + 4 - data);
		data = sep + 4;
	}
	write_file(export_path, data, size);
	char *argv[] = { "celltrail-verify", "--jwks", jwks_path, "--checkpoints", (char *)cps,
		             "--max-lag", "60", export_path, NULL };
	int rc = celltrail_verify_main(8, argv);
	CHECK(rc == 0 || rc == 1, "exit status %d", rc);
	return 0;
}
