-- Events partitioned by time, expand step. Nothing here changes what the
-- previous build reads or writes: it ignores the new column and tables.
-- The conversion of `events` itself is the contract step
-- (contract/0001_events_partitioned.sql), which a data plane applies only
-- when no live instance of its cell runs a build without this migration
-- (data-plane/partitions.c).

-- The build level of each live instance, written with its heartbeat: NULL
-- for a build older than this migration.
ALTER TABLE rate_instances ADD COLUMN schema_level integer;

-- When an instance of an older build was last seen live: the contract
-- step waits DP_CONTRACT_AFTER past it, so that a rollback in that time
-- still finds the schema the previous build knows.
CREATE TABLE contract_gate (
    one            boolean PRIMARY KEY DEFAULT true CHECK (one),
    older_seen_at  timestamptz NOT NULL
);
-- A cell that has served events may have run the previous build a moment
-- ago, seen or not: its wait counts from now. An empty one (a new cell)
-- is converted at once.
INSERT INTO contract_gate (older_seen_at) SELECT now() WHERE EXISTS (SELECT 1 FROM events);

-- An event's occurred_at on its leaf, written by the log appender of this
-- build: a leaf whose event was removed with a whole partition (below) is
-- told from a missing event by it.
ALTER TABLE log_leaves ADD COLUMN occurred_at timestamptz;

-- Every range of occurred_at whose events retention removed as a whole
-- (a partition dropped or truncated), for the log: a leaf with its
-- occurred_at in such a range and no event left of that id and time was
-- removed by retention.
CREATE TABLE event_drops (
    lower       timestamptz NOT NULL,
    upper       timestamptz NOT NULL CHECK (upper > lower),
    dropped_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (lower, dropped_at)
);
