/* The configuration in use: one verified, indexed document, swapped whole
 * when a newer one has been verified (off the request path), and freed once
 * no request can still be reading the one it replaced.
 *
 * Readers take no lock and write no shared cache line: epoch-based
 * reclamation with one slot per reading thread. A reader publishes the
 * global epoch in its own slot, then loads the current snapshot; a writer
 * swaps the pointer, advances the epoch and frees a retired snapshot only
 * when every slot is idle or shows an epoch at least as new as its
 * retirement. */
#ifndef DP_SNAPSHOT_H
#define DP_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "cfgdoc.h"

enum dp_source { DP_SOURCE_CACHE, DP_SOURCE_CONTROL_PLANE };
/* "cache", "control-plane": as /readyz and fleet status spell them. */
extern const char *const dp_source_names[];

struct dp_snapshot {
	struct cfgdoc *doc;          /* owned */
	enum dp_source source;
	/* the holder's bookkeeping */
	uint64_t retired_at;
	struct dp_snapshot *next_retired;
};

struct dp_snaps;

/* Makes a snapshot of `doc`; ownership of `doc` passes to it, also when
 * this fails (NULL: out of memory). */
struct dp_snapshot *dp_snapshot_new(struct cfgdoc *doc, enum dp_source source);
/* 1 when the document has passed its exp at `now` (unix seconds). */
int dp_snapshot_stale(const struct dp_snapshot *s, int64_t now);

/* A holder with no snapshot yet. NULL when out of memory. */
struct dp_snaps *dp_snaps_new(void);
/* Frees the holder, its snapshot and every retired one. No thread may be
 * inside a read section or enter one afterwards. Accepts NULL. */
void dp_snaps_free(struct dp_snaps *h);

/* Opens a read section on the calling thread and returns the snapshot in
 * use (NULL before the first one), valid until the matching
 * dp_snaps_leave() on the same thread. Sections nest. Never blocks: the
 * first call on a thread allocates that thread's slot, and when that fails
 * it returns NULL (the caller answers as if nothing were loaded). Hold a
 * section for the duration of one handler, not across a response that a
 * slow client drains. */
const struct dp_snapshot *dp_snaps_enter(struct dp_snaps *h);
void dp_snaps_leave(struct dp_snaps *h);

/* Puts `s` in use (ownership passes). The snapshot it replaces is retired
 * and freed as soon as no read section can hold it. Writers are serialized
 * among themselves; readers are never waited for. */
void dp_snaps_publish(struct dp_snaps *h, struct dp_snapshot *s);
/* Frees the retired snapshots no reader can hold any more. Returns how many
 * are still waiting for a reader to leave. */
size_t dp_snaps_reclaim(struct dp_snaps *h);

#endif
