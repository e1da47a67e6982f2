/* RFC 9162 Merkle tree hashing, compact ranges, proofs and their checks. */
#include "merkle.h"

#include <openssl/evp.h>
#include <string.h>

/* Top bit of a 64-bit size: a tree is full at 2^63 leaves (merkle.h). */
#define MERKLE_FULL ((uint64_t)1 << 63)

static void sha256_two(const void *a, size_t alen, const void *b, size_t blen, merkle_hash out)
{
	/* Only fails when out of memory or without SHA-256: a hash that is
	 * silently wrong would make every proof fail, never pass, so zeroing
	 * is the safe outcome. */
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int len = 0;
	if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(md, a, alen) != 1 || (blen && EVP_DigestUpdate(md, b, blen) != 1) ||
	    EVP_DigestFinal_ex(md, out, &len) != 1 || len != MERKLE_HASH_LEN)
		memset(out, 0, MERKLE_HASH_LEN);
	EVP_MD_CTX_free(md);
}

void merkle_leaf_hash(const void *data, size_t len, merkle_hash out)
{
	static const uint8_t zero = 0x00;
	sha256_two(&zero, 1, data, len, out);
}

void merkle_node_hash(const merkle_hash left, const merkle_hash right, merkle_hash out)
{
	uint8_t buf[1 + 2 * MERKLE_HASH_LEN];
	buf[0] = 0x01;
	memcpy(buf + 1, left, MERKLE_HASH_LEN);
	memcpy(buf + 1 + MERKLE_HASH_LEN, right, MERKLE_HASH_LEN);
	sha256_two(buf, sizeof buf, NULL, 0, out);
}

void merkle_empty_root(merkle_hash out)
{
	sha256_two("", 0, NULL, 0, out);
}

/* ---- the compact range ---- */

void merkle_frontier_init(struct merkle_frontier *f)
{
	memset(f, 0, sizeof *f);
}

int merkle_frontier_push(struct merkle_frontier *f, const merkle_hash leaf,
                         void (*done)(int level, uint64_t index, const merkle_hash h, void *ctx),
                         void *ctx)
{
	if (f->size >= MERKLE_FULL)
		return -1;
	merkle_hash cur;
	memcpy(cur, leaf, MERKLE_HASH_LEN);
	/* Each set low bit of the old size is a subtree of that level waiting
	 * for its right sibling: the new leaf completes them, lowest first.
	 * The subtree of level L ends at the new leaf (index size). */
	uint64_t end = f->size + 1;
	for (int level = 0; f->size >> level & 1; level++) {
		merkle_node_hash(f->h[f->n - 1], cur, cur);
		f->n--;
		if (done)
			done(level + 1, (end >> (level + 1)) - 1, cur, ctx);
	}
	memcpy(f->h[f->n++], cur, MERKLE_HASH_LEN);
	f->size = end;
	return 0;
}

void merkle_frontier_root(const struct merkle_frontier *f, merkle_hash out)
{
	if (f->n == 0) {
		merkle_empty_root(out);
		return;
	}
	merkle_hash r;
	memcpy(r, f->h[f->n - 1], MERKLE_HASH_LEN);
	for (int i = f->n - 2; i >= 0; i--)
		merkle_node_hash(f->h[i], r, r);
	memcpy(out, r, MERKLE_HASH_LEN);
}

/* Returns the bytes written: n * 32, or 0 when `cap` is too small. */
size_t merkle_frontier_encode(const struct merkle_frontier *f, uint8_t *out, size_t cap)
{
	size_t len = (size_t)f->n * MERKLE_HASH_LEN;
	if (len > cap)
		return 0;
	for (int i = 0; i < f->n; i++)
		memcpy(out + (size_t)i * MERKLE_HASH_LEN, f->h[i], MERKLE_HASH_LEN);
	return len;
}

int merkle_frontier_decode(struct merkle_frontier *f, uint64_t size, const uint8_t *in, size_t len)
{
	if (size > MERKLE_FULL)
		return -1;
	int n = __builtin_popcountll(size);
	if (len != (size_t)n * MERKLE_HASH_LEN)
		return -1;
	merkle_frontier_init(f);
	f->size = size;
	f->n = n;
	for (int i = 0; i < n; i++)
		memcpy(f->h[i], in + (size_t)i * MERKLE_HASH_LEN, MERKLE_HASH_LEN);
	return 0;
}

/* ---- proofs ---- */

/* The largest power of two strictly below n (n >= 2): RFC 9162's k. */
static uint64_t split_point(uint64_t n)
{
	return (uint64_t)1 << (63 - __builtin_clzll(n - 1));
}

static int is_pow2(uint64_t n)
{
	return n && !(n & (n - 1));
}

/* MTH(D[a:b]). A range of 2^L leaves starting at a multiple of 2^L is a
 * perfect subtree and costs one `get`; the ranges proofs use are always
 * split into such subtrees, at most two per level. An unaligned range is
 * hashed by the definition, down to its leaves (cost proportional to its
 * size): nothing in a proof asks for one. */
int merkle_range_root(uint64_t a, uint64_t b, merkle_get_fn get, void *ctx, merkle_hash out)
{
	if (a >= b || b > MERKLE_FULL)
		return -1;
	uint64_t size = b - a;
	if (is_pow2(size) && a % size == 0)
		return get(ctx, __builtin_ctzll(size), a / size, out);
	uint64_t k = split_point(size);
	merkle_hash l, r;
	if (merkle_range_root(a, a + k, get, ctx, l) != 0 ||
	    merkle_range_root(a + k, b, get, ctx, r) != 0)
		return -1;
	merkle_node_hash(l, r, out);
	return 0;
}

/* Reverses hashes[0..n): the recursions below collect from the root down,
 * the proofs list from the leaf up. */
static void reverse(merkle_hash *h, int n)
{
	for (int i = 0, j = n - 1; i < j; i++, j--) {
		merkle_hash t;
		memcpy(t, h[i], MERKLE_HASH_LEN);
		memcpy(h[i], h[j], MERKLE_HASH_LEN);
		memcpy(h[j], t, MERKLE_HASH_LEN);
	}
}

int merkle_inclusion_proof(uint64_t m, uint64_t n, merkle_get_fn get, void *ctx,
                           merkle_hash path[MERKLE_MAX_LEVELS])
{
	if (n == 0 || n > MERKLE_FULL || m >= n)
		return -1;
	/* PATH(m, D[lo:hi]) unrolled: each step keeps the half holding m and
	 * appends the other half's MTH. */
	uint64_t lo = 0, hi = n;
	int len = 0;
	while (hi - lo > 1) {
		uint64_t k = split_point(hi - lo);
		int rc;
		if (m - lo < k) {
			rc = merkle_range_root(lo + k, hi, get, ctx, path[len]);
			hi = lo + k;
		} else {
			rc = merkle_range_root(lo, lo + k, get, ctx, path[len]);
			lo += k;
		}
		if (rc != 0)
			return -1;
		len++;
	}
	reverse(path, len);
	return len;
}

int merkle_consistency_proof(uint64_t m, uint64_t n, merkle_get_fn get, void *ctx,
                             merkle_hash proof[MERKLE_MAX_PROOF])
{
	if (m == 0 || n > MERKLE_FULL || m > n)
		return -1;
	/* SUBPROOF(m, D[lo:hi], b) unrolled; `whole` is b. */
	uint64_t lo = 0, hi = n;
	int whole = 1, len = 0;
	for (;;) {
		if (m - lo == hi - lo) {
			if (!whole) {
				if (merkle_range_root(lo, hi, get, ctx, proof[len]) != 0)
					return -1;
				len++;
			}
			break;
		}
		uint64_t k = split_point(hi - lo);
		int rc;
		if (m - lo <= k) {
			rc = merkle_range_root(lo + k, hi, get, ctx, proof[len]);
			hi = lo + k;
		} else {
			rc = merkle_range_root(lo, lo + k, get, ctx, proof[len]);
			lo += k;
			whole = 0;
		}
		if (rc != 0)
			return -1;
		len++;
	}
	reverse(proof, len);
	return len;
}

/* ---- verification, step by step as RFC 9162 writes it ---- */

int merkle_verify_inclusion(uint64_t m, uint64_t n, const merkle_hash leaf,
                            const merkle_hash *path, int len, const merkle_hash root)
{
	if (n == 0 || n > MERKLE_FULL || m >= n || len < 0 || len > MERKLE_MAX_LEVELS)
		return 0;
	uint64_t fn = m, sn = n - 1;
	merkle_hash r;
	memcpy(r, leaf, MERKLE_HASH_LEN);
	for (int i = 0; i < len; i++) {
		if (sn == 0)
			return 0;
		if ((fn & 1) || fn == sn) {
			merkle_node_hash(path[i], r, r);
			if (!(fn & 1))
				while (fn != 0 && !(fn & 1)) {
					fn >>= 1;
					sn >>= 1;
				}
		} else {
			merkle_node_hash(r, path[i], r);
		}
		fn >>= 1;
		sn >>= 1;
	}
	return sn == 0 && memcmp(r, root, MERKLE_HASH_LEN) == 0;
}

int merkle_verify_consistency(uint64_t m, uint64_t n, const merkle_hash root_m,
                              const merkle_hash root_n, const merkle_hash *proof, int len)
{
	if (m == 0 || n > MERKLE_FULL || m > n || len < 0 || len > MERKLE_MAX_PROOF)
		return 0;
	/* Equal sizes: the proof is empty and the roots must be the same tree. */
	if (m == n)
		return len == 0 && memcmp(root_m, root_n, MERKLE_HASH_LEN) == 0;
	if (len == 0)
		return 0;
	merkle_hash path[MERKLE_MAX_PROOF + 1];
	int plen = 0;
	if (is_pow2(m))
		memcpy(path[plen++], root_m, MERKLE_HASH_LEN);
	for (int i = 0; i < len; i++)
		memcpy(path[plen++], proof[i], MERKLE_HASH_LEN);

	uint64_t fn = m - 1, sn = n - 1;
	while (fn & 1) {
		fn >>= 1;
		sn >>= 1;
	}
	merkle_hash fr, sr;
	memcpy(fr, path[0], MERKLE_HASH_LEN);
	memcpy(sr, path[0], MERKLE_HASH_LEN);
	for (int i = 1; i < plen; i++) {
		if (sn == 0)
			return 0;
		if ((fn & 1) || fn == sn) {
			merkle_node_hash(path[i], fr, fr);
			merkle_node_hash(path[i], sr, sr);
			if (!(fn & 1))
				while (fn != 0 && !(fn & 1)) {
					fn >>= 1;
					sn >>= 1;
				}
		} else {
			merkle_node_hash(sr, path[i], sr);
		}
		fn >>= 1;
		sn >>= 1;
	}
	return sn == 0 && memcmp(fr, root_m, MERKLE_HASH_LEN) == 0 &&
	       memcmp(sr, root_n, MERKLE_HASH_LEN) == 0;
}
