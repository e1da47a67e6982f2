-- Live tenant moves between cells (data-plane/move.c): what a cell's
-- database keeps of a move, as the source or as the target. Only new
-- tables and functions: the previous build's statements are unchanged, and
-- it ignores them (a fence is then not enforced: a region is upgraded
-- before any move starts).

-- A fenced tenant: from the commit of its row, no write of the tenant
-- commits here (the ingest answers 503 tenant_moving). fence_tx is a
-- position in the tenant's feed (its offset added): every row of the
-- tenant stored here is at or below it.
CREATE TABLE tenant_fences (
    tenant_id   uuid PRIMARY KEY,
    move_id     uuid NOT NULL,
    fence_tx    xid8 NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- A tenant moved in: its rows copied from the source keep the source's
-- tx_id, so its own later rows are stored with tx_id = the inserting
-- transaction's id + off, and its feed's horizon is the snapshot's xmin +
-- off: a cursor handed out by the source continues here.
CREATE TABLE tenant_feed_offsets (
    tenant_id   uuid PRIMARY KEY,
    off         bigint NOT NULL CHECK (off >= 0)
);

-- The target's progress of a move, written in the transaction of each page
-- it stores, so that a copy resumes where it stopped: the source position
-- reached, and the count and digest of the rows it inserted.
CREATE TABLE move_progress (
    move_id     uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL,
    next_tx     xid8 NOT NULL DEFAULT '0',
    next_seq    bigint NOT NULL DEFAULT 0,
    events      bigint NOT NULL DEFAULT 0 CHECK (events >= 0),
    digest      numeric NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX move_progress_tenant ON move_progress (tenant_id);

-- One row's share of a digest: 60 bits of SHA-256 over the id, a zero
-- byte, the content hash and the body's text. A set's digest is the sum of
-- its rows' (order-free, so that parts computed apart add up), kept in
-- numeric: a million rows never overflow it. (The first 8 bytes of the
-- hash, in hex, cut to 60 bits: hex of the whole hash costs 3x as much.)
CREATE FUNCTION move_row_hash(id text, content_sha256 bytea, body json) RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT ('x' || encode(substr(sha256(convert_to(id, 'UTF8') || '\x00'::bytea || content_sha256
                                        || convert_to(body::text, 'UTF8')), 1, 8), 'hex'))::bit(64)::bit(60)::bigint::numeric
$$;

-- A feed position plus an offset (xid8 has no arithmetic).
CREATE FUNCTION move_xid_add(x xid8, off bigint) RETURNS xid8
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN off = 0 THEN x ELSE (x::text::numeric + off)::text::xid8 END
$$;

-- A move copies a tenant's Idempotency-Key records created since a moment,
-- once a round while it catches up and once after the fence: each copy
-- reads only those, not every record of the tenant.
CREATE INDEX idempotency_keys_tenant_age ON idempotency_keys (tenant_id, created_at);
