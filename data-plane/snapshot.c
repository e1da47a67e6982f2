/* The configuration in use: epoch-based reclamation with per-thread slots.
 *
 * Why it is safe (every atomic below is sequentially consistent unless
 * marked otherwise): a reader stores e = epoch into its slot and only then
 * loads `current`. A writer exchanges `current`, then advances the epoch to
 * T and tags the old snapshot with T, then scans the slots. A reader that
 * loaded the old pointer did so before the exchange, so its slot store came
 * before the scan (the scan sees it) and its e was read before the epoch
 * became T (e < T). A reader whose slot shows an epoch >= T, or that is
 * idle (0), cannot hold the old snapshot. So a retired snapshot is freed
 * once every slot is 0 or >= its tag. */
#include "snapshot.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *const dp_source_names[] = { [DP_SOURCE_CACHE] = "cache",
	                                    [DP_SOURCE_CONTROL_PLANE] = "control-plane" };

/* One reading thread's slot, alone on its cache line so that readers on
 * different threads never write to the same line. */
struct slot {
	alignas(64) atomic_uint_least64_t epoch; /* 0: not reading */
	unsigned depth;                          /* touched by the owning thread only */
	pthread_t owner;                         /* immutable once published */
	struct slot *next;                       /* immutable once published */
};

struct dp_snaps {
	uint64_t id;                             /* tells holders apart in thread-local caches */
	_Atomic(struct dp_snapshot *) current;
	atomic_uint_least64_t epoch;             /* starts at 1: 0 marks an idle slot */
	_Atomic(struct slot *) slots;            /* push-only list, freed with the holder */
	pthread_mutex_t wlock;                   /* writers only */
	struct dp_snapshot *retired;             /* under wlock */
};

static atomic_uint_least64_t next_holder_id = 1;

/* The calling thread's slot in the holder it used last. A thread keeps its
 * slot for the holder's lifetime (the servers' threads are fixed), so the
 * list is as long as the number of threads that ever read. */
static _Thread_local struct {
	uint64_t holder;
	struct slot *slot;
} tl;

struct dp_snapshot *dp_snapshot_new(struct cfgdoc *doc, enum dp_source source)
{
	struct dp_snapshot *s = calloc(1, sizeof *s);
	if (!s) {
		cfgdoc_free(doc);
		return NULL;
	}
	s->doc = doc;
	s->source = source;
	return s;
}

static void snapshot_free(struct dp_snapshot *s)
{
	if (!s)
		return;
	cfgdoc_free(s->doc);
	free(s);
}

int dp_snapshot_stale(const struct dp_snapshot *s, int64_t now)
{
	return now >= s->doc->exp;
}

struct dp_snaps *dp_snaps_new(void)
{
	struct dp_snaps *h = calloc(1, sizeof *h);
	if (!h)
		return NULL;
	if (pthread_mutex_init(&h->wlock, NULL) != 0) {
		free(h);
		return NULL;
	}
	h->id = atomic_fetch_add(&next_holder_id, 1);
	atomic_init(&h->current, NULL);
	atomic_init(&h->epoch, 1);
	atomic_init(&h->slots, NULL);
	return h;
}

void dp_snaps_free(struct dp_snaps *h)
{
	if (!h)
		return;
	snapshot_free(atomic_load(&h->current));
	for (struct dp_snapshot *r = h->retired, *next; r; r = next) {
		next = r->next_retired;
		snapshot_free(r);
	}
	for (struct slot *s = atomic_load(&h->slots), *next; s; s = next) {
		next = s->next;
		free(s);
	}
	pthread_mutex_destroy(&h->wlock);
	free(h);
}

static struct slot *my_slot(struct dp_snaps *h)
{
	if (tl.holder == h->id)
		return tl.slot;
	/* A thread that reads from several holders finds its own slot again. */
	pthread_t self = pthread_self();
	struct slot *s;
	for (s = atomic_load(&h->slots); s; s = s->next)
		if (pthread_equal(s->owner, self))
			goto found;
	s = aligned_alloc(alignof(struct slot), sizeof *s);
	if (!s)
		return NULL;
	memset(s, 0, sizeof *s);
	atomic_init(&s->epoch, 0);
	s->owner = self;
	struct slot *head = atomic_load(&h->slots);
	do
		s->next = head;
	while (!atomic_compare_exchange_weak(&h->slots, &head, s));
found:
	tl.holder = h->id;
	tl.slot = s;
	return s;
}

const struct dp_snapshot *dp_snaps_enter(struct dp_snaps *h)
{
	struct slot *s = my_slot(h);
	if (!s)
		return NULL;
	if (s->depth++ == 0)
		atomic_store(&s->epoch, atomic_load(&h->epoch));
	return atomic_load(&h->current);
}

void dp_snaps_leave(struct dp_snaps *h)
{
	struct slot *s = my_slot(h);
	if (!s || s->depth == 0)
		return;
	/* Release: the reads of the snapshot happen before a writer sees 0. */
	if (--s->depth == 0)
		atomic_store_explicit(&s->epoch, 0, memory_order_release);
}

/* Frees what no slot can hold; returns what is left. Caller holds wlock. */
static size_t reclaim_locked(struct dp_snaps *h)
{
	uint64_t oldest = UINT64_MAX;
	size_t left = 0;

	if (!h->retired)
		return 0;
	for (struct slot *s = atomic_load(&h->slots); s; s = s->next) {
		uint64_t e = atomic_load(&s->epoch);
		if (e && e < oldest)
			oldest = e;
	}
	for (struct dp_snapshot **pp = &h->retired; *pp;) {
		struct dp_snapshot *r = *pp;
		if (r->retired_at <= oldest) {
			*pp = r->next_retired;
			snapshot_free(r);
		} else {
			pp = &r->next_retired;
			left++;
		}
	}
	return left;
}

void dp_snaps_publish(struct dp_snaps *h, struct dp_snapshot *s)
{
	pthread_mutex_lock(&h->wlock);
	struct dp_snapshot *old = atomic_exchange(&h->current, s);
	if (old) {
		old->retired_at = atomic_fetch_add(&h->epoch, 1) + 1;
		old->next_retired = h->retired;
		h->retired = old;
	}
	reclaim_locked(h);
	pthread_mutex_unlock(&h->wlock);
}

size_t dp_snaps_reclaim(struct dp_snaps *h)
{
	pthread_mutex_lock(&h->wlock);
	size_t left = reclaim_locked(h);
	pthread_mutex_unlock(&h->wlock);
	return left;
}
