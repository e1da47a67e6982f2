/* cfgdoc-bench: verifies and indexes one regional document, as a data
 * plane does when it applies one, and prints the time it took and the
 * memory it added.
 *   cfgdoc-bench TOKEN_FILE TRUST_BUNDLE REGION [ROUNDS [CELL]]
 * CELL: the document is a cell's (aud "cell:CELL"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_clock.h"
#include "cfgdoc.h"

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: cfgdoc-bench TOKEN_FILE TRUST_BUNDLE REGION [ROUNDS [CELL]]\n");
		return 2;
	}
	int rounds = argc > 4 ? atoi(argv[4]) : 3;
	FILE *f = fopen(argv[1], "rb");
	if (!f)
		return 1;
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *tok = malloc((size_t)len + 1);
	if (!tok || fread(tok, 1, (size_t)len, f) != (size_t)len)
		return 1;
	fclose(f);
	tok[len] = '\0';
	struct cfgdoc_trust t;
	char err[300];
	if (cfgdoc_trust_load(argv[2], &t, err, sizeof err) != 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	struct cfgdoc_verify_opts o = { .issuer = "celltrail-control-plane", .region = argv[3],
		                            .cell = argc > 5 ? argv[5] : NULL, .now = time(NULL), .skew = 60,
		                            .max_bytes = (size_t)len, .no_token = 1 };
	double best = 1e9;
	long base = rss_kb(), held = 0;
	size_t tenants = 0, keys = 0;
	for (int r = 0; r < rounds; r++) {
		struct cfgdoc *d;
		double t0 = now_s();
		enum cfgdoc_result res = cfgdoc_verify(tok, (size_t)len, &t, &o, &d, err, sizeof err);
		double took = now_s() - t0;
		if (res != CFGDOC_OK) {
			fprintf(stderr, "refused: %s: %s\n", cfgdoc_result_names[res], err);
			return 1;
		}
		if (took < best)
			best = took;
		held = rss_kb() - base; /* the applied tables, still held */
		tenants = d->ntenants;
		keys = d->nkeys;
		cfgdoc_free(d);
	}
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("%.3f %ld %ld %zu %zu\n", best, held / 1024, ru.ru_maxrss / 1024, tenants, keys);
	cfgdoc_trust_free(&t);
	free(tok);
	return 0;
}
