-- Tamper evidence (data-plane/log.c): every tenant's stored events, in the
-- order the cell committed them, are the leaves of an RFC 9162 Merkle tree,
-- and the region signs checkpoints of it. Only new tables: the previous
-- build ignores them (while it runs, the events it stores are appended by
-- the instances of this build, and its retention deletes events without
-- marking their leaves removed, which a verifier then reports).

-- Where a tenant's log stands: its size, the feed position of the last
-- event appended (so the next append starts after it), and the compact
-- range (merkle.h: one 32-byte hash per set bit of tree_size, largest
-- subtree first) from which the next append and the root follow. The row
-- is locked by the append that moves it: one appender per tenant at a
-- time, never one for all tenants.
CREATE TABLE log_heads (
    tenant_id        uuid PRIMARY KEY,
    tree_size        bigint NOT NULL DEFAULT 0 CHECK (tree_size >= 0),
    next_tx          xid8 NOT NULL DEFAULT '0',
    next_seq         bigint NOT NULL DEFAULT 0,
    frontier         bytea NOT NULL DEFAULT '\x',
    root_hash        bytea NOT NULL CHECK (length(root_hash) = 32),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- One row per leaf: the event it was made from and its leaf hash,
-- SHA-256(0x00 || the event's stored JSON). Kept when retention deletes
-- the event (event_id is then cleared and removed_at set), so that what
-- remains still verifies; deleted with the tenant on erasure.
CREATE TABLE log_leaves (
    tenant_id    uuid NOT NULL,
    leaf_index   bigint NOT NULL CHECK (leaf_index >= 0),
    event_id     text,
    leaf_hash    bytea NOT NULL CHECK (length(leaf_hash) = 32),
    removed_at   timestamptz,
    PRIMARY KEY (tenant_id, leaf_index)
);
-- An event's leaf, for its proof. Not unique: an id freed by retention may
-- be used again, and the newest leaf is the event's.
CREATE INDEX log_leaves_event ON log_leaves (tenant_id, event_id) WHERE event_id IS NOT NULL;

-- The hashes of the perfect subtrees (merkle.h) at the levels that are
-- multiples of 4 (4, 8, 12, ...), written when the append completes them:
-- any other subtree is at most 8 stored hashes away, so a proof reads a
-- few hundred rows at most while the table holds one row per 15 leaves.
CREATE TABLE log_nodes (
    tenant_id   uuid NOT NULL,
    level       smallint NOT NULL CHECK (level > 0 AND level % 4 = 0 AND level < 64),
    idx         bigint NOT NULL CHECK (idx >= 0),
    hash        bytea NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (tenant_id, level, idx)
);

-- Signed checkpoints: a compact JWS (ES256) of {tenant_id, tree_size,
-- root_hash, iat}, kept as signed. At most one per tree size: the first
-- signed stays.
CREATE TABLE log_checkpoints (
    tenant_id   uuid NOT NULL,
    tree_size   bigint NOT NULL CHECK (tree_size > 0),
    root_hash   bytea NOT NULL CHECK (length(root_hash) = 32),
    signed_at   timestamptz NOT NULL,
    kid         text NOT NULL,
    jws         text NOT NULL,
    PRIMARY KEY (tenant_id, tree_size)
);
