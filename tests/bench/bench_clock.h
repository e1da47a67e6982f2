/* The clock and the memory gauge of the in-process benchmarks
 * (cfgdoc-bench, delta-bench): one copy of each. */
#ifndef CT_BENCH_CLOCK_H
#define CT_BENCH_CLOCK_H

#include <stdio.h>
#include <time.h>

/* CLOCK_MONOTONIC in seconds. */
static inline double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* This process's resident set, in KiB (0 when it cannot be read). */
static inline long rss_kb(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long pages = 0, res = 0;
	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &res) != 2)
			res = 0;
		fclose(f);
	}
	return res * 4;
}

#endif
