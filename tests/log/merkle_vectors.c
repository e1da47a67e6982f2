/* Prints RFC 9162 test vectors computed by common/merkle.c as one JSON
 * object, for an independent implementation to check (tests/log/):
 * {"leaves":[hex...], "sizes":[{"n","root","inclusion":[[b64url...]...],
 *  "consistency":[[b64url...]...]}]}: leaf i is the bytes "leaf <i>" (data,
 * not hash), inclusion[m] is PATH(m, D[n]) and consistency[m-1] is
 * PROOF(m, D[n]), for n = 1..MAX. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "merkle.h"

#define MAX 40

struct tree {
	merkle_hash leaf[MAX];
	uint64_t n;
};

/* Perfect subtrees hashed from the leaves, as a store would give them. */
static int get(void *ctx, int level, uint64_t index, merkle_hash out)
{
	struct tree *t = ctx;
	uint64_t a = index << level, b = (index + 1) << level;
	if (level > 6 || b > t->n)
		return -1;
	if (level == 0) {
		memcpy(out, t->leaf[a], MERKLE_HASH_LEN);
		return 0;
	}
	merkle_hash l, r;
	if (get(ctx, level - 1, 2 * index, l) || get(ctx, level - 1, 2 * index + 1, r))
		return -1;
	merkle_node_hash(l, r, out);
	return 0;
}

static void print_list(const merkle_hash *h, int n)
{
	char b[44];
	putchar('[');
	for (int i = 0; i < n; i++) {
		checkpoint_b64_hash(h[i], b);
		printf("%s\"%s\"", i ? "," : "", b);
	}
	putchar(']');
}

int main(void)
{
	struct tree t;
	char data[32], b[44];
	printf("{\"leaves\":[");
	for (int i = 0; i < MAX; i++) {
		int len = snprintf(data, sizeof data, "leaf %d", i);
		merkle_leaf_hash(data, (size_t)len, t.leaf[i]);
		printf("%s\"%s\"", i ? "," : "", data);
	}
	printf("],\"sizes\":[");
	for (uint64_t n = 1; n <= MAX; n++) {
		struct merkle_frontier f;
		merkle_hash root, proof[MERKLE_MAX_PROOF];
		merkle_frontier_init(&f);
		for (uint64_t i = 0; i < n; i++)
			if (merkle_frontier_push(&f, t.leaf[i], NULL, NULL) != 0)
				return 1;
		merkle_frontier_root(&f, root);
		checkpoint_b64_hash(root, b);
		t.n = n;
		printf("%s{\"n\":%llu,\"root\":\"%s\",\"inclusion\":[", n > 1 ? "," : "", (unsigned long long)n, b);
		for (uint64_t m = 0; m < n; m++) {
			int len = merkle_inclusion_proof(m, n, get, &t, proof);
			if (len < 0)
				return 1;
			if (m)
				putchar(',');
			print_list((const merkle_hash *)proof, len);
		}
		printf("],\"consistency\":[");
		for (uint64_t m = 1; m <= n; m++) {
			int len = merkle_consistency_proof(m, n, get, &t, proof);
			if (len < 0)
				return 1;
			if (m > 1)
				putchar(',');
			print_list((const merkle_hash *)proof, len);
		}
		printf("]}");
	}
	printf("]}\n");
	return 0;
}
