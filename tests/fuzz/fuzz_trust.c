/* A signing key and the trust bundle of it, for the fuzz targets (fuzz_trust.h). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz_trust.h"

void fuzz_trust_init(struct jwk *key, struct cfgdoc_trust *trust)
{
	char path[] = "/tmp/celltrail-fuzz-trust-XXXXXX", err[256];
	if (jwk_generate(key) != 0)
		abort();
	json_t *set = json_pack("{s[o]}", "keys", jwk_public_json(key));
	int fd = mkstemp(path);
	if (!set || fd < 0)
		abort();
	close(fd);
	if (json_dump_file(set, path, 0) != 0)
		abort();
	json_decref(set);
	if (cfgdoc_trust_load(path, trust, err, sizeof err) != 0) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	unlink(path);
}
