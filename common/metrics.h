/* HTTP and process metrics in the Prometheus text format.
 *
 * Counters are lock-free atomics indexed by (route, status code), so
 * that recording a request costs a few relaxed increments. */
#ifndef CT_METRICS_H
#define CT_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "route.h"

struct metrics;

/* One set of counters per route of `routes` plus one for unmatched requests.
 * The table must outlive the metrics. Returns NULL on allocation failure. */
struct metrics *metrics_new(const struct http_route *routes, size_t nroutes);
void metrics_free(struct metrics *m);

/* Records one finished request. `route` is -1 for unmatched requests. */
void metrics_observe(struct metrics *m, int route, unsigned status, uint64_t micros);

/* Writes all HTTP and process metrics, labelled service="<service>"
 * on the process-wide families. */
void metrics_render(struct metrics *m, const char *service, FILE *out);

#endif
