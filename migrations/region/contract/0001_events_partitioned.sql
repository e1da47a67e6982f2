-- Events partitioned by time, contract step: `events` becomes a table
-- partitioned by week of occurred_at (Monday 00:00 UTC to the next). The
-- table as it was becomes its partition `events_before`, holding every
-- event before `events_layout.weekly_from`; weekly partitions are created
-- ahead by the data planes (data-plane/partitions.c) through
-- events_partition_ensure. (No DEFAULT partition: with one, a partition
-- could not be detached without locking out every query of `events`.) Applied only when no live instance of the cell
-- runs a build older than migration 0012: the previous build's statements
-- name a conflict target that no longer exists and delete by ctid, which
-- is not unique across partitions. The guard trigger below refuses its
-- deletions outright, should it be started again.
--
-- Uniqueness of (tenant_id, id) is per partition here (each weekly
-- partition has its own unique index; events_before keeps its primary
-- key); across partitions the ingest holds a transaction lock per
-- tenant before it looks for existing ids (data-plane/ingest.c).
--
-- Cost: one scan of the existing table under this migration's lock (every
-- query of `events` waits for it), to prove the CHECK that makes it a
-- partition without another.

LOCK TABLE events IN ACCESS EXCLUSIVE MODE;

-- The week an instant falls in, as its first instant.
CREATE FUNCTION events_week(t timestamptz) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT date_bin(interval '7 days', t, timestamptz '2000-01-03 00:00:00+00') $$;

-- Where the weekly partitions start: the week after the one 5 minutes
-- from now (the ingest refuses an occurred_at more than 5 minutes ahead,
-- so every stored event is before it), this week when there is none.
-- Every event before it stays in events_before.
CREATE TABLE events_layout (
    one          boolean PRIMARY KEY DEFAULT true CHECK (one),
    weekly_from  timestamptz NOT NULL CHECK (weekly_from = events_week(weekly_from)),
    converted_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO events_layout (weekly_from)
SELECT CASE WHEN EXISTS (SELECT 1 FROM events)
            THEN events_week(now() + interval '5 minutes') + interval '7 days'
            ELSE events_week(now()) END;

-- The weekly partitions: one row each, written by the functions below.
CREATE TABLE event_partitions (
    name        text PRIMARY KEY,
    lower       timestamptz NOT NULL UNIQUE CHECK (lower = events_week(lower)),
    upper       timestamptz NOT NULL CHECK (upper = lower + interval '7 days'),
    created_at  timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE events RENAME TO events_before;
ALTER TABLE events_before RENAME CONSTRAINT events_pkey TO events_before_pkey;
ALTER INDEX events_by_time RENAME TO events_before_by_time;
ALTER INDEX events_by_actor RENAME TO events_before_by_actor;
ALTER INDEX events_by_action RENAME TO events_before_by_action;
ALTER INDEX events_by_target RENAME TO events_before_by_target;
ALTER INDEX events_by_key RENAME TO events_before_by_key;
ALTER INDEX events_feed RENAME TO events_before_feed;
DROP TRIGGER events_derive_keys ON events_before;

CREATE TABLE events (
    tenant_id      uuid NOT NULL,
    id             text NOT NULL CONSTRAINT events_id_check CHECK (id ~ '^[A-Za-z0-9._:-]{1,128}$'),
    seq            bigint GENERATED ALWAYS AS IDENTITY,
    occurred_at    timestamptz NOT NULL,
    received_at    timestamptz NOT NULL,
    action         text NOT NULL,
    actor_id       text NOT NULL,
    target_ids     text[] NOT NULL DEFAULT '{}',
    content_sha256 bytea NOT NULL CONSTRAINT events_content_sha256_check CHECK (length(content_sha256) = 32),
    body           json NOT NULL,
    keys           text[],
    tx_id          xid8 NOT NULL DEFAULT pg_current_xact_id()
) PARTITION BY RANGE (occurred_at);
ALTER TABLE events ALTER COLUMN keys SET STATISTICS 1000;

-- seq goes on from where the old table's identity stood (a tenant moved
-- in raised it past its copied rows: data-plane/db_move.c).
SELECT setval(pg_get_serial_sequence('events', 'seq'),
              greatest(coalesce(pg_sequence_last_value(pg_get_serial_sequence('events_before', 'seq')::regclass), 0),
                       1));
ALTER TABLE events_before ALTER COLUMN seq DROP IDENTITY;

DO $$
BEGIN
    EXECUTE format('ALTER TABLE events_before ADD CONSTRAINT events_before_weekly_from CHECK (occurred_at < %L)',
                   (SELECT weekly_from FROM events_layout));
    EXECUTE format('ALTER TABLE events ATTACH PARTITION events_before FOR VALUES FROM (MINVALUE) TO (%L)',
                   (SELECT weekly_from FROM events_layout));
END $$;
-- The partition's bound says the same from now on.
ALTER TABLE events_before DROP CONSTRAINT events_before_weekly_from;

CREATE INDEX events_by_time ON ONLY events (tenant_id, occurred_at DESC, seq DESC);
CREATE INDEX events_by_actor ON ONLY events (tenant_id, actor_id, occurred_at DESC, seq DESC);
CREATE INDEX events_by_action ON ONLY events (tenant_id, action, occurred_at DESC, seq DESC);
CREATE INDEX events_by_target ON ONLY events USING gin (target_ids);
CREATE INDEX events_by_key ON ONLY events USING gin (keys);
CREATE INDEX events_feed ON ONLY events (tenant_id, tx_id, seq);
ALTER INDEX events_by_time ATTACH PARTITION events_before_by_time;
ALTER INDEX events_by_actor ATTACH PARTITION events_before_by_actor;
ALTER INDEX events_by_action ATTACH PARTITION events_before_by_action;
ALTER INDEX events_by_target ATTACH PARTITION events_before_by_target;
ALTER INDEX events_by_key ATTACH PARTITION events_before_by_key;
ALTER INDEX events_feed ATTACH PARTITION events_before_feed;

CREATE TRIGGER events_derive_keys BEFORE INSERT ON events
    FOR EACH ROW WHEN (NEW.keys IS NULL) EXECUTE FUNCTION events_derive_keys();

-- Deletions only from a build that knows the layout: its sessions set
-- celltrail.schema_level (common/db.c).
CREATE FUNCTION events_guard() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(nullif(current_setting('celltrail.schema_level', true), ''), '0')::int < 12 THEN
        RAISE EXCEPTION 'events are partitioned: this build cannot delete them (schema level 12 needed)'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER events_guard BEFORE DELETE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_guard();

-- The weekly partition starting at `lower`, made if it is missing, with
-- its own unique index of (tenant_id, id). Returns whether it made one.
-- Refuses a week before events_layout.weekly_from: those events are in
-- events_before. Made apart, then attached: CREATE TABLE ... PARTITION OF
-- would hold every query of `events` while it waits for its lock; ATTACH
-- does not (and waits at most 5 s: the next pass tries again).
CREATE FUNCTION events_partition_ensure(lower timestamptz) RETURNS boolean
    LANGUAGE plpgsql AS $$
DECLARE
    n text := 'events_w' || to_char(lower AT TIME ZONE 'UTC', 'YYYYMMDD');
    upper timestamptz := lower + interval '7 days';
BEGIN
    IF lower <> events_week(lower) THEN
        RAISE EXCEPTION 'events_partition_ensure: % is not the start of a week', lower;
    END IF;
    IF lower < (SELECT weekly_from FROM events_layout) THEN
        RAISE EXCEPTION 'events_partition_ensure: % is before the weekly partitions', lower;
    END IF;
    -- The instances of a cell make the same weeks: one at a time.
    PERFORM pg_advisory_xact_lock(1667591242);
    IF EXISTS (SELECT 1 FROM event_partitions p WHERE p.lower = events_partition_ensure.lower) THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', n);
    EXECUTE format('ALTER TABLE %I ALTER COLUMN keys SET STATISTICS 1000', n);
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (occurred_at >= %L AND occurred_at < %L)',
                   n, n || '_week', lower, upper);
    EXECUTE format('CREATE UNIQUE INDEX %I ON %I (tenant_id, id)', n || '_id', n);
    PERFORM set_config('lock_timeout', '5s', true);
    EXECUTE format('ALTER TABLE events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', n, lower, upper);
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', n, n || '_week'); -- its bound says it now
    INSERT INTO event_partitions (name, lower, upper) VALUES (n, lower, upper);
    RETURN true;
END $$;

-- Holds a weekly partition against writes (SHARE: reads go on) until the
-- transaction ends, so that what is decided about its rows stays true
-- until they are removed. Returns 'held'; 'detached' for one a detachment
-- left apart (or half done), which no query of `events` sees and which
-- must not be decided through them; 'missing' for no such week.
CREATE FUNCTION events_partition_hold(pname text) RETURNS text
    LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM event_partitions WHERE name = pname) OR to_regclass(pname) IS NULL THEN
        RETURN 'missing';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = pname::regclass
                     AND inhparent = 'events'::regclass AND NOT inhdetachpending) THEN
        RETURN 'detached';
    END IF;
    EXECUTE format('LOCK TABLE %I IN SHARE MODE', pname);
    RETURN 'held';
END $$;

-- Removes every event of a weekly partition (held by
-- events_partition_hold in the same transaction): truncated, and its range
-- recorded for the log (event_drops). An empty partition is left as it is.
-- Returns the planner's estimate of the rows it held, NULL when empty.
-- TRUNCATE waits at most 2 s for the readers of the week (every statement
-- that cannot leave the week out waits behind it meanwhile); then the
-- next pass tries again.
CREATE FUNCTION events_partition_remove(pname text) RETURNS bigint
    LANGUAGE plpgsql AS $$
DECLARE
    p event_partitions;
    est bigint;
    nonempty boolean;
BEGIN
    SELECT * INTO p FROM event_partitions WHERE name = pname FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I)', pname) INTO nonempty;
    IF NOT nonempty THEN
        RETURN NULL;
    END IF;
    SELECT greatest(c.reltuples, 0)::bigint INTO est FROM pg_class c WHERE c.oid = pname::regclass;
    INSERT INTO event_drops (lower, upper) VALUES (p.lower, p.upper);
    PERFORM set_config('lock_timeout', '2s', true);
    EXECUTE format('TRUNCATE %I', pname);
    RETURN est;
END $$;

-- After `ALTER TABLE events DETACH PARTITION <pname> CONCURRENTLY` (which
-- no function may run): drops the detached week if it is empty, or
-- attaches it again (an event was stored in it between its truncation and
-- its detachment: the next pass decides about it as about any week).
-- Returns whether it was dropped.
CREATE FUNCTION events_partition_forget(pname text) RETURNS boolean
    LANGUAGE plpgsql AS $$
DECLARE
    p event_partitions;
    nonempty boolean;
BEGIN
    SELECT * INTO p FROM event_partitions WHERE name = pname FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF to_regclass(pname) IS NULL THEN
        DELETE FROM event_partitions WHERE name = pname;
        RETURN false;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = pname::regclass) THEN
        RETURN false;
    END IF;
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I)', pname) INTO nonempty;
    IF nonempty THEN
        PERFORM set_config('lock_timeout', '5s', true);
        EXECUTE format('ALTER TABLE events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       pname, p.lower, p.upper);
        RETURN false;
    END IF;
    EXECUTE format('DROP TABLE %I', pname);
    DELETE FROM event_partitions WHERE name = pname;
    RETURN true;
END $$;

SELECT events_partition_ensure((SELECT weekly_from FROM events_layout) + k * interval '7 days')
  FROM generate_series(0, 2) k;
