/* Unit tests of data-plane/snapshot: the configuration in use is swapped
 * under readers that take no lock, and a replaced configuration is freed
 * only once no reader can hold it (run under ASan, a premature free is a
 * reported use after free). The module is compiled into this test. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "../../data-plane/snapshot.c"
#include "unit.h"

/* A document with just enough in it to be read and freed. */
static struct dp_snapshot *snap(int64_t ver)
{
	struct cfgdoc *d = calloc(1, sizeof *d);
	ck_assert_ptr_nonnull(d);
	d->ver = ver;
	d->exp = ver * 10;
	d->ntenants = 1;
	d->tenants = calloc(1, sizeof *d->tenants);
	ck_assert_ptr_nonnull(d->tenants);
	d->tenants[0].plan = (uint32_t)ver;
	struct dp_snapshot *s = dp_snapshot_new(d, DP_SOURCE_CONTROL_PLANE);
	ck_assert_ptr_nonnull(s);
	return s;
}

START_TEST(reader_keeps_its_snapshot)
{
	/* A request that started on version 1 finishes on version 1, even
	 * though version 2 was put in use meanwhile; then 1 is freed. */
	struct dp_snaps *h = dp_snaps_new();
	ck_assert_ptr_null(dp_snaps_enter(h));
	dp_snaps_leave(h);
	dp_snaps_publish(h, snap(1));

	const struct dp_snapshot *s = dp_snaps_enter(h);
	ck_assert_int_eq(s->doc->ver, 1);
	dp_snaps_publish(h, snap(2));
	ck_assert_uint_eq(dp_snaps_reclaim(h), 1);       /* still held */
	const struct dp_snapshot *inner = dp_snaps_enter(h); /* nested: sees the new one */
	ck_assert_int_eq(inner->doc->ver, 2);
	dp_snaps_leave(h);
	ck_assert_uint_eq(dp_snaps_reclaim(h), 1);
	ck_assert_int_eq(s->doc->tenants[0].plan, 1);     /* still readable */
	dp_snaps_leave(h);
	ck_assert_uint_eq(dp_snaps_reclaim(h), 0);        /* freed */

	s = dp_snaps_enter(h);
	ck_assert_int_eq(s->doc->ver, 2);
	ck_assert(!dp_snapshot_stale(s, 19));
	ck_assert(dp_snapshot_stale(s, 20));
	dp_snaps_leave(h);
	dp_snaps_free(h);
}
END_TEST

struct stress {
	struct dp_snaps *h;
	atomic_int stop;
	atomic_long reads;
};

static void *reader(void *arg)
{
	struct stress *st = arg;
	int64_t last = 0;
	long n = 0;
	while (!atomic_load(&st->stop)) {
		const struct dp_snapshot *s = dp_snaps_enter(st->h);
		if (s) {
			/* Versions never go backwards on one thread, and the whole
			 * document stays intact while it is held. */
			int64_t v = s->doc->ver;
			ck_assert_int_ge(v, last);
			last = v;
			for (int i = 0; i < 50; i++)
				ck_assert_int_eq(s->doc->tenants[0].plan, (uint32_t)v);
			ck_assert_int_eq(s->doc->exp, v * 10);
		}
		dp_snaps_leave(st->h);
		n++;
	}
	atomic_fetch_add(&st->reads, n);
	return NULL;
}

START_TEST(swaps_under_readers)
{
	/* Thousands of swaps under busy readers: none reads freed memory, and
	 * every replaced snapshot is freed in the end. */
	enum { READERS = 4, SWAPS = 3000 };
	struct stress st = { .h = dp_snaps_new() };
	pthread_t th[READERS];
	for (int i = 0; i < READERS; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, reader, &st), 0);
	for (int64_t v = 1; v <= SWAPS; v++) {
		dp_snaps_publish(st.h, snap(v));
		dp_snaps_reclaim(st.h);
		if (v % 100 == 0) {
			/* What waits is bounded by the readers, not by the swaps: once
			 * the writer pauses, every busy reader enters a new section
			 * and nothing retired is left. (How much waits while swaps go
			 * on depends on the scheduler: a reader preempted inside a
			 * section holds back everything retired after it entered.) */
			struct timespec t0, t;
			clock_gettime(CLOCK_MONOTONIC, &t0);
			size_t w;
			while ((w = dp_snaps_reclaim(st.h)) > 0) {
				clock_gettime(CLOCK_MONOTONIC, &t);
				ck_assert_msg(t.tv_sec - t0.tv_sec < 10,
				              "%zu retired snapshots still wait 10 s after swap %lld", w, (long long)v);
				sched_yield();
			}
		}
	}
	atomic_store(&st.stop, 1);
	for (int i = 0; i < READERS; i++)
		pthread_join(th[i], NULL);
	ck_assert_uint_eq(dp_snaps_reclaim(st.h), 0);
	ck_assert_int_gt(atomic_load(&st.reads), 0);
	dp_snaps_free(st.h);
}
END_TEST

START_TEST(two_holders_on_one_thread)
{
	/* A thread reading from two holders does not mix up its slots. */
	struct dp_snaps *a = dp_snaps_new(), *b = dp_snaps_new();
	dp_snaps_publish(a, snap(1));
	dp_snaps_publish(b, snap(5));
	const struct dp_snapshot *sa = dp_snaps_enter(a);
	const struct dp_snapshot *sb = dp_snaps_enter(b);
	dp_snaps_publish(a, snap(2));
	dp_snaps_leave(b);
	ck_assert_uint_eq(dp_snaps_reclaim(a), 1); /* a's reader is still inside */
	ck_assert_int_eq(sa->doc->ver, 1);
	ck_assert_int_eq(sb->doc->ver, 5);
	dp_snaps_leave(a);
	ck_assert_uint_eq(dp_snaps_reclaim(a), 0);
	dp_snaps_free(a);
	dp_snaps_free(b);
}
END_TEST

Suite *snapshot_suite(void)
{
	Suite *s = suite_create("snapshot");
	TCase *tc = tcase_create("snapshot");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, reader_keeps_its_snapshot);
	tcase_add_test(tc, swaps_under_readers);
	tcase_add_test(tc, two_holders_on_one_thread);
	suite_add_tcase(s, tc);
	return s;
}
