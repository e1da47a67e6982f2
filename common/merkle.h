/* RFC 9162 (Certificate Transparency 2.0) Merkle trees, section 2.1: the
 * tree hash, the compact range a log appends to, inclusion and consistency
 * proofs, and their verification. Pure computation: where the hashes are
 * kept is the caller's business (a data plane's tenant log, the offline
 * verifier). The one owner of the hashing rules in the tree.
 *
 *   leaf hash   SHA-256(0x00 || leaf bytes)
 *   node hash   SHA-256(0x01 || left || right)
 *   empty tree  SHA-256("")
 *
 * A "perfect subtree" (level L, index i) is the subtree over leaves
 * [i * 2^L, (i + 1) * 2^L); level 0 is a leaf. Every proof of a tree of
 * size n is made of hashes of perfect subtrees lying wholly inside [0, n),
 * so a log that can give those (stored or recomputed) can prove anything. */
#ifndef CT_MERKLE_H
#define CT_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#define MERKLE_HASH_LEN 32
/* Levels a tree of 2^63 leaves needs; a proof has at most 2x this many
 * hashes (a consistency proof), an inclusion proof at most this many. */
#define MERKLE_MAX_LEVELS 64
#define MERKLE_MAX_PROOF (2 * MERKLE_MAX_LEVELS)

typedef uint8_t merkle_hash[MERKLE_HASH_LEN];

void merkle_leaf_hash(const void *data, size_t len, merkle_hash out);
void merkle_node_hash(const merkle_hash left, const merkle_hash right, merkle_hash out);
void merkle_empty_root(merkle_hash out);

/* The compact range of a tree: the roots of the perfect subtrees its size
 * decomposes into, one per set bit of `size`, the largest (leftmost) first.
 * Enough to append and to compute the root; kept by a log between appends. */
struct merkle_frontier {
	uint64_t size;
	int n;                                   /* popcount(size) */
	merkle_hash h[MERKLE_MAX_LEVELS];
};

void merkle_frontier_init(struct merkle_frontier *f);
/* Appends one leaf (its leaf hash). For every perfect subtree the append
 * completes at level >= 1 (the carries), calls done(level, index, hash,
 * ctx) when `done` is not NULL, lowest level first. Returns 0, or -1 when
 * the tree is full (2^63 leaves). */
int merkle_frontier_push(struct merkle_frontier *f, const merkle_hash leaf,
                         void (*done)(int level, uint64_t index, const merkle_hash h, void *ctx),
                         void *ctx);
/* MTH of the tree: the frontier folded right to left. */
void merkle_frontier_root(const struct merkle_frontier *f, merkle_hash out);
/* The frontier as n * 32 bytes (largest subtree first), and back: `len`
 * must be popcount(size) * 32. Returns 0 or -1. */
size_t merkle_frontier_encode(const struct merkle_frontier *f, uint8_t *out, size_t cap);
int merkle_frontier_decode(struct merkle_frontier *f, uint64_t size, const uint8_t *in, size_t len);

/* Reads the hash of perfect subtree (level, index). Returns 0, or -1 when
 * it cannot (the proof then fails with -1). */
typedef int (*merkle_get_fn)(void *ctx, int level, uint64_t index, merkle_hash out);

/* PATH(m, D[n]) of RFC 9162 2.1.3.1: the audit path of leaf m (0-based) in
 * the tree of the first n leaves, leaf to root. 0 <= m < n. Writes at most
 * MERKLE_MAX_LEVELS hashes; returns how many, or -1 (bad arguments, or
 * `get` failed). */
int merkle_inclusion_proof(uint64_t m, uint64_t n, merkle_get_fn get, void *ctx,
                           merkle_hash path[MERKLE_MAX_LEVELS]);
/* PROOF(m, D[n]) of RFC 9162 2.1.4.1: that the tree of the first m leaves
 * is a prefix of the tree of the first n. 0 < m <= n (m == n: empty proof).
 * Writes at most MERKLE_MAX_PROOF hashes; returns how many, or -1. */
int merkle_consistency_proof(uint64_t m, uint64_t n, merkle_get_fn get, void *ctx,
                             merkle_hash proof[MERKLE_MAX_PROOF]);
/* MTH(D[a:b]) for a range that proofs use: any 0 <= a < b. Returns 0 or -1. */
int merkle_range_root(uint64_t a, uint64_t b, merkle_get_fn get, void *ctx, merkle_hash out);

/* Verification, RFC 9162 2.1.3.2 and 2.1.4.2. Return 1 when the proof
 * holds, 0 when it does not (or the arguments are out of range). */
int merkle_verify_inclusion(uint64_t m, uint64_t n, const merkle_hash leaf,
                            const merkle_hash *path, int len, const merkle_hash root);
int merkle_verify_consistency(uint64_t m, uint64_t n, const merkle_hash root_m,
                              const merkle_hash root_n, const merkle_hash *proof, int len);

#endif
