/* Unit tests of common/merkle: the tree hash, the compact range a log
 * appends to, and the inclusion and consistency proofs a customer checks
 * offline must be exactly RFC 9162's, so that any independent verifier
 * agrees with ours. Checked against a reference written here from the
 * RFC's definitions (section 2.1), for every tree size up to 70 and every
 * index, and at the limits of a 63-bit tree. */
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "merkle.h"
#include "unit.h"

#define NMAX 70

/* ---- the reference: RFC 9162 2.1.1, 2.1.3.1, 2.1.4.1 as written ---- */

static uint8_t leafdata[NMAX][16];
static size_t leaflen[NMAX];

/* HASH(0x00 || d(i)) */
static void ref_leaf(int i, uint8_t out[32])
{
	uint8_t buf[1 + 16];
	buf[0] = 0x00;
	memcpy(buf + 1, leafdata[i], leaflen[i]);
	SHA256(buf, 1 + leaflen[i], out);
}

/* MTH(D[a:b]), memoized (the reference is called for every proof). */
static uint8_t memo[NMAX + 1][NMAX + 1][32];
static int memo_set[NMAX + 1][NMAX + 1];

static void ref_mth(int a, int b, uint8_t out[32])
{
	int n = b - a;
	if (n == 0) {
		SHA256((const uint8_t *)"", 0, out);
		return;
	}
	if (memo_set[a][b]) {
		memcpy(out, memo[a][b], 32);
		return;
	}
	if (n == 1) {
		ref_leaf(a, out);
	} else {
		int k = 1;
		while (k * 2 < n)
			k *= 2; /* the largest power of two smaller than n */
		uint8_t buf[65];
		buf[0] = 0x01;
		ref_mth(a, a + k, buf + 1);
		ref_mth(a + k, b, buf + 33);
		SHA256(buf, sizeof buf, out);
	}
	memcpy(memo[a][b], out, 32);
	memo_set[a][b] = 1;
}

static int largest_k(int n)
{
	int k = 1;
	while (k * 2 < n)
		k *= 2;
	return k;
}

/* PATH(m, D[a:b]) with m relative to a; appends to out, returns count. */
static int ref_path(int m, int a, int b, uint8_t out[][32])
{
	int n = b - a;
	if (n == 1)
		return 0;
	int k = largest_k(n), len;
	if (m < k) {
		len = ref_path(m, a, a + k, out);
		ref_mth(a + k, b, out[len]);
	} else {
		len = ref_path(m - k, a + k, b, out);
		ref_mth(a, a + k, out[len]);
	}
	return len + 1;
}

/* SUBPROOF(m, D[a:b], whole) */
static int ref_subproof(int m, int a, int b, int whole, uint8_t out[][32])
{
	int n = b - a;
	if (m == n) {
		if (whole)
			return 0;
		ref_mth(a, b, out[0]);
		return 1;
	}
	int k = largest_k(n), len;
	if (m <= k) {
		len = ref_subproof(m, a, a + k, whole, out);
		ref_mth(a + k, b, out[len]);
	} else {
		len = ref_subproof(m - k, a + k, b, 0, out);
		ref_mth(a, a + k, out[len]);
	}
	return len + 1;
}

/* The other side of each definition: the root a PATH (or the two roots
 * a PROOF) stands for, rebuilt by walking the same recursion and taking
 * the proof's hashes where the definition put them (deepest first).
 * *idx counts hashes consumed. */
static void node(const uint8_t l[32], const uint8_t r[32], uint8_t out[32])
{
	uint8_t buf[65];
	buf[0] = 0x01;
	memcpy(buf + 1, l, 32);
	memcpy(buf + 33, r, 32);
	SHA256(buf, sizeof buf, out);
}

static int ref_root_from_path(uint64_t m, uint64_t n, const uint8_t leaf[32], const merkle_hash *path,
                              int len, int *idx, uint8_t out[32])
{
	if (n == 1) {
		memcpy(out, leaf, 32);
		return 0;
	}
	uint64_t k = 1;
	while (k * 2 < n)
		k *= 2;
	uint8_t sub[32];
	if (m < k ? ref_root_from_path(m, k, leaf, path, len, idx, sub)
	          : ref_root_from_path(m - k, n - k, leaf, path, len, idx, sub))
		return -1;
	if (*idx >= len)
		return -1;
	if (m < k)
		node(sub, path[*idx], out);
	else
		node(path[*idx], sub, out);
	(*idx)++;
	return 0;
}

static int ref_verify_inclusion(uint64_t m, uint64_t n, const uint8_t leaf[32], const merkle_hash *path,
                                int len, const uint8_t root[32])
{
	int idx = 0;
	uint8_t r[32];
	if (n == 0 || m >= n || len < 0 || ref_root_from_path(m, n, leaf, path, len, &idx, r))
		return 0;
	return idx == len && memcmp(r, root, 32) == 0;
}

static int ref_roots_from_proof(uint64_t m, uint64_t n, int whole, const uint8_t root_m[32],
                                const merkle_hash *p, int len, int *idx, uint8_t old[32],
                                uint8_t new[32])
{
	if (m == n) {
		if (whole) {
			memcpy(old, root_m, 32);
		} else {
			if (*idx >= len)
				return -1;
			memcpy(old, p[(*idx)++], 32);
		}
		memcpy(new, old, 32);
		return 0;
	}
	uint64_t k = 1;
	while (k * 2 < n)
		k *= 2;
	uint8_t o[32], nw[32];
	if (m <= k) {
		if (ref_roots_from_proof(m, k, whole, root_m, p, len, idx, o, nw) || *idx >= len)
			return -1;
		memcpy(old, o, 32);
		node(nw, p[*idx], new);
	} else {
		if (ref_roots_from_proof(m - k, n - k, 0, root_m, p, len, idx, o, nw) || *idx >= len)
			return -1;
		node(p[*idx], o, old);
		node(p[*idx], nw, new);
	}
	(*idx)++;
	return 0;
}

static int ref_verify_consistency(uint64_t m, uint64_t n, const uint8_t rm[32], const uint8_t rn[32],
                                  const merkle_hash *p, int len)
{
	int idx = 0;
	uint8_t o[32], nw[32];
	if (m == 0 || m > n || len < 0 || ref_roots_from_proof(m, n, 1, rm, p, len, &idx, o, nw))
		return 0;
	return idx == len && memcmp(o, rm, 32) == 0 && memcmp(nw, rn, 32) == 0;
}

static void setup(void)
{
	memset(memo_set, 0, sizeof memo_set);
	for (int i = 0; i < NMAX; i++) {
		/* different lengths, so a leaf is bytes, not a fixed-size record */
		leaflen[i] = (size_t)snprintf((char *)leafdata[i], sizeof leafdata[i], "leaf-%d%.*s", i,
		                              i % 5, "xxxxx");
	}
}

/* ---- the getter the proofs read perfect subtrees through ---- */

struct store {
	int n;         /* the tree the proof is for: nothing outside [0, n) */
	int calls, outside;
	int fail;      /* fail every call */
};

static int get_ref(void *ctx, int level, uint64_t index, merkle_hash out)
{
	struct store *s = ctx;
	s->calls++;
	if (s->fail)
		return -1;
	if (level < 0 || level > 7 || ((index + 1) << level) > (uint64_t)s->n) {
		s->outside++;
		return -1;
	}
	ref_mth((int)(index << level), (int)((index + 1) << level), out);
	return 0;
}

/* ---- frontier ---- */

struct done_log {
	int count;
	int level[64];
	uint64_t index[64];
	merkle_hash h[64];
};

static void on_done(int level, uint64_t index, const merkle_hash h, void *ctx)
{
	struct done_log *d = ctx;
	ck_assert_int_lt(d->count, 64);
	d->level[d->count] = level;
	d->index[d->count] = index;
	memcpy(d->h[d->count], h, 32);
	d->count++;
}

/* The root a log keeps between appends is the tree hash at every size, and
 * the subtrees it reports as done are exactly those the new leaf completes
 * (a log stores them to answer proofs later). */
START_TEST(test_frontier_root_and_done)
{
	struct merkle_frontier f;
	merkle_frontier_init(&f);
	merkle_hash root, want;
	merkle_frontier_root(&f, root);
	ref_mth(0, 0, want);
	ck_assert_mem_eq(root, want, 32);

	for (int n = 1; n <= NMAX; n++) {
		merkle_hash leaf;
		merkle_leaf_hash(leafdata[n - 1], leaflen[n - 1], leaf);
		ref_leaf(n - 1, want);
		ck_assert_mem_eq(leaf, want, 32);

		struct done_log d = {0};
		ck_assert_int_eq(merkle_frontier_push(&f, leaf, on_done, &d), 0);
		ck_assert_uint_eq(f.size, (uint64_t)n);
		ck_assert_int_eq(f.n, __builtin_popcount((unsigned)n));
		merkle_frontier_root(&f, root);
		ref_mth(0, n, want);
		ck_assert_msg(memcmp(root, want, 32) == 0, "root of size %d", n);

		/* Expected: every (L >= 1, i) with (i + 1) * 2^L == n, lowest L first. */
		int e = 0;
		for (int L = 1; (n % (1 << L)) == 0; L++, e++) {
			ck_assert_int_gt(d.count, e);
			ck_assert_int_eq(d.level[e], L);
			ck_assert_uint_eq(d.index[e], (uint64_t)(n >> L) - 1);
			ref_mth(n - (1 << L), n, want);
			ck_assert_mem_eq(d.h[e], want, 32);
		}
		ck_assert_msg(d.count == e, "size %d: %d subtrees reported, %d completed", n, d.count, e);
	}
	/* No callback is fine too. */
	merkle_hash leaf = {0};
	ck_assert_int_eq(merkle_frontier_push(&f, leaf, NULL, NULL), 0);
}
END_TEST

/* A stored frontier comes back as the same tree; a blob of the wrong
 * length for its size is refused rather than read past or half-used. */
START_TEST(test_frontier_encode_decode)
{
	struct merkle_frontier f, g;
	merkle_frontier_init(&f);
	uint8_t buf[MERKLE_MAX_LEVELS * 32 + 32];
	for (int n = 0; n <= NMAX; n++) {
		if (n > 0) {
			merkle_hash leaf;
			ref_leaf(n - 1, leaf);
			ck_assert_int_eq(merkle_frontier_push(&f, leaf, NULL, NULL), 0);
		}
		size_t len = merkle_frontier_encode(&f, buf, sizeof buf);
		ck_assert_uint_eq(len, (size_t)__builtin_popcount((unsigned)n) * 32);
		ck_assert_int_eq(merkle_frontier_decode(&g, (uint64_t)n, buf, len), 0);
		merkle_hash a, b;
		merkle_frontier_root(&f, a);
		merkle_frontier_root(&g, b);
		ck_assert_mem_eq(a, b, 32);
		ck_assert_uint_eq(g.size, (uint64_t)n);
		/* and it appends like the original */
		merkle_hash extra = {7};
		struct merkle_frontier f2 = f;
		ck_assert_int_eq(merkle_frontier_push(&f2, extra, NULL, NULL), 0);
		ck_assert_int_eq(merkle_frontier_push(&g, extra, NULL, NULL), 0);
		merkle_frontier_root(&f2, a);
		merkle_frontier_root(&g, b);
		ck_assert_mem_eq(a, b, 32);

		ck_assert_int_eq(merkle_frontier_decode(&g, (uint64_t)n, buf, len + 32), -1);
		ck_assert_int_eq(merkle_frontier_decode(&g, (uint64_t)n, buf, len + 1), -1);
		if (len > 0) {
			ck_assert_int_eq(merkle_frontier_decode(&g, (uint64_t)n, buf, len - 32), -1);
			ck_assert_int_eq(merkle_frontier_decode(&g, (uint64_t)n, buf, len - 1), -1);
			ck_assert_uint_eq(merkle_frontier_encode(&f, buf, len - 1), 0);
		}
	}
	/* Beyond 2^63 leaves there is no tree. */
	ck_assert_int_eq(merkle_frontier_decode(&g, ((uint64_t)1 << 63) + 1, buf, 64), -1);
}
END_TEST

/* The tree is full at 2^63 leaves: the append is refused, nothing wraps. */
START_TEST(test_frontier_full)
{
	struct merkle_frontier f;
	uint8_t blob[32] = {1};
	ck_assert_int_eq(merkle_frontier_decode(&f, (uint64_t)1 << 63, blob, 32), 0);
	merkle_hash leaf = {0};
	ck_assert_int_eq(merkle_frontier_push(&f, leaf, NULL, NULL), -1);
	ck_assert_uint_eq(f.size, (uint64_t)1 << 63);

	/* 2^63 - 1: 63 subtrees, the last append carries through all of them. */
	uint8_t big[63 * 32];
	memset(big, 3, sizeof big);
	ck_assert_int_eq(merkle_frontier_decode(&f, ((uint64_t)1 << 63) - 1, big, sizeof big), 0);
	struct done_log d = {0};
	ck_assert_int_eq(merkle_frontier_push(&f, leaf, on_done, &d), 0);
	ck_assert_int_eq(d.count, 63);
	ck_assert_int_eq(d.level[62], 63);
	ck_assert_uint_eq(d.index[62], 0);
	ck_assert_int_eq(f.n, 1);
	ck_assert_mem_eq(f.h[0], d.h[62], 32);
}
END_TEST

static void flip_fail_inclusion(uint64_t m, uint64_t n, const merkle_hash leaf,
                                merkle_hash *path, int len, const merkle_hash root, int all)
{
	for (int i = 0; i < len; i++)
		for (int b = 0; b < 32; b++) {
			if (!all && b != (i * 7 + (int)m) % 32)
				continue;
			path[i][b] ^= 0x01;
			ck_assert_msg(!merkle_verify_inclusion(m, n, leaf, (const merkle_hash *)path, len, root),
			              "inclusion (%d,%d) accepted hash %d byte %d flipped", (int)m, (int)n, i, b);
			path[i][b] ^= 0x01;
		}
}

/* Every audit path is RFC 9162's PATH, verifies, and stops verifying when
 * anything in it or about it is wrong. */
START_TEST(test_inclusion_all)
{
	merkle_hash path[MERKLE_MAX_LEVELS + 1], ref[MERKLE_MAX_LEVELS], root, leaf;
	for (int n = 1; n <= NMAX; n++) {
		ref_mth(0, n, root);
		struct store s = {.n = n};
		for (int m = 0; m < n; m++) {
			int len = merkle_inclusion_proof((uint64_t)m, (uint64_t)n, get_ref, &s, path);
			int rlen = ref_path(m, 0, n, ref);
			ck_assert_msg(len == rlen, "PATH(%d, %d): %d hashes, want %d", m, n, len, rlen);
			ck_assert_msg(memcmp(path, ref, (size_t)len * 32) == 0, "PATH(%d, %d) differs", m, n);
			ck_assert_int_eq(s.outside, 0);
			ref_leaf(m, leaf);
			ck_assert_msg(merkle_verify_inclusion((uint64_t)m, (uint64_t)n, leaf,
			                                      (const merkle_hash *)path, len, root),
			              "PATH(%d, %d) does not verify", m, n);
			ck_assert(ref_verify_inclusion((uint64_t)m, (uint64_t)n, leaf, (const merkle_hash *)path, len,
			                               root));

			flip_fail_inclusion((uint64_t)m, (uint64_t)n, leaf, path, len, root, n <= 20);
			/* the leaf itself, and the root */
			leaf[5] ^= 1;
			ck_assert(!merkle_verify_inclusion((uint64_t)m, (uint64_t)n, leaf,
			                                   (const merkle_hash *)path, len, root));
			leaf[5] ^= 1;
			merkle_hash r2;
			memcpy(r2, root, 32);
			r2[31] ^= 0x80;
			ck_assert(!merkle_verify_inclusion((uint64_t)m, (uint64_t)n, leaf,
			                                   (const merkle_hash *)path, len, r2));
			/* wrong index or size */
			for (int dm = -1; dm <= 1; dm++)
				for (int dn = -1; dn <= 1; dn++) {
					if ((dm == 0 && dn == 0) || m + dm < 0)
						continue;
					/* A path can also be a valid one for another shape
					 * (the verifier cannot tell a leaf from a node): the
					 * reference decides which. */
					int want = ref_verify_inclusion((uint64_t)(m + dm), (uint64_t)(n + dn), leaf,
					                                (const merkle_hash *)path, len, root);
					ck_assert_msg(merkle_verify_inclusion((uint64_t)(m + dm), (uint64_t)(n + dn), leaf,
					                                      (const merkle_hash *)path, len, root) == want,
					              "PATH(%d, %d) as (%d, %d): want %d", m, n, m + dm, n + dn, want);
				}
			/* truncated, extended */
			if (len > 0) {
				ck_assert(!merkle_verify_inclusion((uint64_t)m, (uint64_t)n, leaf,
				                                   (const merkle_hash *)path, len - 1, root));
				ck_assert(!merkle_verify_inclusion((uint64_t)m, (uint64_t)n, leaf,
				                                   (const merkle_hash *)path + 1, len - 1, root));
			}
			memcpy(path[len], root, 32);
			ck_assert(!merkle_verify_inclusion((uint64_t)m, (uint64_t)n, leaf,
			                                   (const merkle_hash *)path, len + 1, root));
			memset(path[len], 0, 32);
			ck_assert(!merkle_verify_inclusion((uint64_t)m, (uint64_t)n, leaf,
			                                   (const merkle_hash *)path, len + 1, root));
			ck_assert(!merkle_verify_inclusion((uint64_t)m, (uint64_t)n, leaf,
			                                   (const merkle_hash *)path, -1, root));
		}
		/* m == n: no such leaf */
		ck_assert_int_eq(merkle_inclusion_proof((uint64_t)n, (uint64_t)n, get_ref, &s, path), -1);
		ck_assert(!merkle_verify_inclusion((uint64_t)n, (uint64_t)n, leaf, (const merkle_hash *)path,
		                                   0, root));
	}
	struct store s = {.n = 1};
	ck_assert_int_eq(merkle_inclusion_proof(0, 0, get_ref, &s, path), -1);
	ck_assert(!merkle_verify_inclusion(0, 0, leaf, (const merkle_hash *)path, 0, root));
}
END_TEST

/* Every consistency proof is RFC 9162's PROOF, verifies, and stops
 * verifying when anything in it or about it is wrong. */
START_TEST(test_consistency_all)
{
	merkle_hash proof[MERKLE_MAX_PROOF + 1], ref[MERKLE_MAX_PROOF], rm, rn;
	for (int n = 1; n <= NMAX; n++) {
		ref_mth(0, n, rn);
		struct store s = {.n = n};
		for (int m = 1; m <= n; m++) {
			ref_mth(0, m, rm);
			int len = merkle_consistency_proof((uint64_t)m, (uint64_t)n, get_ref, &s, proof);
			int rlen = ref_subproof(m, 0, n, 1, ref);
			ck_assert_msg(len == rlen, "PROOF(%d, %d): %d hashes, want %d", m, n, len, rlen);
			ck_assert_msg(memcmp(proof, ref, (size_t)len * 32) == 0, "PROOF(%d, %d) differs", m, n);
			ck_assert_int_eq(s.outside, 0);
			ck_assert_msg(merkle_verify_consistency((uint64_t)m, (uint64_t)n, rm, rn,
			                                        (const merkle_hash *)proof, len),
			              "PROOF(%d, %d) does not verify", m, n);
			ck_assert(ref_verify_consistency((uint64_t)m, (uint64_t)n, rm, rn, (const merkle_hash *)proof,
			                                 len));

			for (int i = 0; i < len; i++)
				for (int b = 0; b < 32; b++) {
					if (n > 20 && b != (i * 7 + m) % 32)
						continue;
					proof[i][b] ^= 0x40;
					ck_assert_msg(!merkle_verify_consistency((uint64_t)m, (uint64_t)n, rm, rn,
					                                         (const merkle_hash *)proof, len),
					              "PROOF(%d, %d) accepted hash %d byte %d flipped", m, n, i, b);
					proof[i][b] ^= 0x40;
				}
			/* either root wrong */
			rm[0] ^= 1;
			ck_assert(!merkle_verify_consistency((uint64_t)m, (uint64_t)n, rm, rn,
			                                     (const merkle_hash *)proof, len));
			rm[0] ^= 1;
			rn[0] ^= 1;
			ck_assert(!merkle_verify_consistency((uint64_t)m, (uint64_t)n, rm, rn,
			                                     (const merkle_hash *)proof, len));
			rn[0] ^= 1;
			/* wrong sizes */
			for (int dm = -1; dm <= 1; dm++)
				for (int dn = -1; dn <= 1; dn++) {
					if (dm == 0 && dn == 0)
						continue;
					int want = ref_verify_consistency((uint64_t)(m + dm), (uint64_t)(n + dn), rm, rn,
					                                  (const merkle_hash *)proof, len);
					ck_assert_msg(merkle_verify_consistency((uint64_t)(m + dm), (uint64_t)(n + dn),
					                                        rm, rn, (const merkle_hash *)proof, len) == want,
					              "PROOF(%d, %d) as (%d, %d): want %d", m, n, m + dm, n + dn, want);
				}
			/* truncated, extended */
			if (len > 0) {
				ck_assert(!merkle_verify_consistency((uint64_t)m, (uint64_t)n, rm, rn,
				                                     (const merkle_hash *)proof, len - 1));
				ck_assert(!merkle_verify_consistency((uint64_t)m, (uint64_t)n, rm, rn,
				                                     (const merkle_hash *)proof + 1, len - 1));
			}
			memcpy(proof[len], rn, 32);
			ck_assert(!merkle_verify_consistency((uint64_t)m, (uint64_t)n, rm, rn,
			                                     (const merkle_hash *)proof, len + 1));
			ck_assert(!merkle_verify_consistency((uint64_t)m, (uint64_t)n, rm, rn,
			                                     (const merkle_hash *)proof, -1));
		}
		/* m == 0 has no proof; m > n neither */
		ck_assert_int_eq(merkle_consistency_proof(0, (uint64_t)n, get_ref, &s, proof), -1);
		ck_assert_int_eq(merkle_consistency_proof((uint64_t)n + 1, (uint64_t)n, get_ref, &s, proof), -1);
		ck_assert(!merkle_verify_consistency(0, (uint64_t)n, rn, rn, (const merkle_hash *)proof, 0));
	}
}
END_TEST

/* MTH over ranges proofs do not use (unaligned) still follows the definition. */
START_TEST(test_range_root)
{
	for (int a = 0; a < 40; a++)
		for (int b = a + 1; b <= 40; b++) {
			struct store s = {.n = 40};
			merkle_hash got, want;
			ck_assert_int_eq(merkle_range_root((uint64_t)a, (uint64_t)b, get_ref, &s, got), 0);
			ref_mth(a, b, want);
			ck_assert_msg(memcmp(got, want, 32) == 0, "MTH(D[%d:%d])", a, b);
		}
	struct store s = {.n = 40};
	merkle_hash out;
	ck_assert_int_eq(merkle_range_root(3, 3, get_ref, &s, out), -1);
	ck_assert_int_eq(merkle_range_root(4, 3, get_ref, &s, out), -1);
}
END_TEST

/* A store that cannot give a hash makes the proof fail, never a wrong proof. */
START_TEST(test_get_fails)
{
	merkle_hash proof[MERKLE_MAX_PROOF], out;
	for (int n = 2; n <= 20; n++) {
		struct store s = {.n = n, .fail = 1};
		ck_assert_int_eq(merkle_inclusion_proof(0, (uint64_t)n, get_ref, &s, proof), -1);
		ck_assert_int_eq(merkle_inclusion_proof((uint64_t)n - 1, (uint64_t)n, get_ref, &s, proof), -1);
		ck_assert_int_eq(merkle_consistency_proof(1, (uint64_t)n, get_ref, &s, proof), -1);
		ck_assert_int_eq(merkle_consistency_proof((uint64_t)n - 1, (uint64_t)n, get_ref, &s, proof), -1);
		ck_assert_int_eq(merkle_range_root(0, (uint64_t)n, get_ref, &s, out), -1);
		ck_assert_int_gt(s.calls, 0);
	}
	/* these need no hash at all */
	struct store s = {.n = 1, .fail = 1};
	ck_assert_int_eq(merkle_inclusion_proof(0, 1, get_ref, &s, proof), 0);
	ck_assert_int_eq(merkle_consistency_proof(5, 5, get_ref, &s, proof), 0);
}
END_TEST

/* ---- huge trees: synthetic hashes, a hash per (level, index) ---- */

/* A huge tree whose leaves are all the same bytes: its perfect subtrees
 * of one level all have one hash, so the getter is consistent with the
 * tree without hashing 2^62 leaves. */
static uint8_t synth_level[64][32];

static void synth_init(void)
{
	SHA256((const uint8_t *)"\0same", 5, synth_level[0]);
	for (int l = 1; l < 64; l++)
		node(synth_level[l - 1], synth_level[l - 1], synth_level[l]);
}

/* MTH(D[0:n]) of that tree from its definition: the perfect subtrees of
 * n's set bits, folded right to left. */
static void synth_root(uint64_t n, uint8_t out[32])
{
	int first = 1;
	for (int l = 0; l < 64; l++)
		if (n >> l & 1) {
			if (first)
				memcpy(out, synth_level[l], 32);
			else
				node(synth_level[l], out, out);
			first = 0;
		}
}

struct synth {
	uint64_t n;
	int calls, outside;
};

static int get_synth(void *ctx, int level, uint64_t index, merkle_hash out)
{
	struct synth *s = ctx;
	s->calls++;
	if (level < 0 || level > 63 || index > (s->n >> level) || ((index + 1) << level) > s->n ||
	    ((index + 1) << level) == 0) {
		s->outside++;
		return -1;
	}
	memcpy(out, synth_level[level], 32);
	return 0;
}

/* Sizes near 2^62 and 2^63 prove and verify without overflow, with proofs
 * as long as the tree is deep. */
START_TEST(test_huge)
{
	const uint64_t P62 = (uint64_t)1 << 62, P63 = (uint64_t)1 << 63;
	const uint64_t sizes[] = {P62, P62 + 1, P62 - 1, P62 + 12345, P63, P63 - 1};
	merkle_hash path[MERKLE_MAX_PROOF + 1], root, leaf, rm, want;
	synth_init();
	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
		uint64_t n = sizes[i];
		struct synth s = {.n = n};
		ck_assert_int_eq(merkle_range_root(0, n, get_synth, &s, root), 0);
		synth_root(n, want);
		ck_assert_mem_eq(root, want, 32);
		const uint64_t ms[] = {0, 1, n / 2, n / 3, n - 2, n - 1};
		for (size_t j = 0; j < sizeof ms / sizeof *ms; j++) {
			uint64_t m = ms[j];
			int len = merkle_inclusion_proof(m, n, get_synth, &s, path);
			ck_assert_int_ge(len, m == 0 ? 62 : 1); /* leaf 0 is at the full depth */
			ck_assert_int_le(len, MERKLE_MAX_LEVELS);
			ck_assert_int_eq(get_synth(&s, 0, m, leaf), 0);
			ck_assert_msg(merkle_verify_inclusion(m, n, leaf, (const merkle_hash *)path, len, root),
			              "inclusion of %llu in %llu", (unsigned long long)m, (unsigned long long)n);
			path[len / 2][3] ^= 1;
			ck_assert(!merkle_verify_inclusion(m, n, leaf, (const merkle_hash *)path, len, root));
			if (m == 0)
				continue;
			struct synth sm = {.n = m};
			ck_assert_int_eq(merkle_range_root(0, m, get_synth, &sm, rm), 0);
			synth_root(m, want);
			ck_assert_mem_eq(rm, want, 32);
			len = merkle_consistency_proof(m, n, get_synth, &s, path);
			ck_assert_int_ge(len, 1);
			ck_assert_int_le(len, MERKLE_MAX_PROOF);
			ck_assert_msg(merkle_verify_consistency(m, n, rm, root, (const merkle_hash *)path, len),
			              "consistency %llu -> %llu", (unsigned long long)m, (unsigned long long)n);
			path[len - 1][0] ^= 1;
			ck_assert(!merkle_verify_consistency(m, n, rm, root, (const merkle_hash *)path, len));
		}
		ck_assert_int_eq(s.outside, 0);
	}
	/* Past 2^63: refused everywhere. */
	struct synth s = {.n = P63};
	ck_assert_int_eq(merkle_inclusion_proof(0, P63 + 1, get_synth, &s, path), -1);
	ck_assert_int_eq(merkle_consistency_proof(1, P63 + 1, get_synth, &s, path), -1);
	ck_assert_int_eq(merkle_range_root(0, P63 + 1, get_synth, &s, root), -1);
	ck_assert(!merkle_verify_inclusion(0, UINT64_MAX, leaf, (const merkle_hash *)path, 64, root));
	ck_assert(!merkle_verify_consistency(1, UINT64_MAX, leaf, root, (const merkle_hash *)path, 64));
	ck_assert(!merkle_verify_inclusion(UINT64_MAX - 1, UINT64_MAX, leaf, (const merkle_hash *)path, 64,
	                                   root));
	ck_assert(!merkle_verify_consistency(1, 2, leaf, root, (const merkle_hash *)path,
	                                     MERKLE_MAX_PROOF + 1));
}
END_TEST

/* The empty tree's hash is SHA-256 of nothing (RFC 9162 2.1.1). */
START_TEST(test_empty)
{
	merkle_hash h;
	merkle_empty_root(h);
	static const uint8_t want[32] = {0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4,
	                                 0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b,
	                                 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55};
	ck_assert_mem_eq(h, want, 32);
}
END_TEST

Suite *merkle_suite(void)
{
	Suite *s = suite_create("merkle");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_empty);
	tcase_add_test(tc, test_frontier_root_and_done);
	tcase_add_test(tc, test_frontier_encode_decode);
	tcase_add_test(tc, test_frontier_full);
	tcase_add_test(tc, test_inclusion_all);
	tcase_add_test(tc, test_consistency_all);
	tcase_add_test(tc, test_range_root);
	tcase_add_test(tc, test_get_fails);
	tcase_add_test(tc, test_huge);
	suite_add_tcase(s, tc);
	return s;
}
