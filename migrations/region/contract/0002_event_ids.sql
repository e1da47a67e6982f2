-- Events partitioned by time, contract step 2: one index of every stored
-- id across the weekly partitions (`event_ids`), so that an id stays one
-- event without the ingest looking for it in every week the cell keeps
-- (or holding a lock per tenant while it looks: 0001's way, which a build
-- before this step still takes and which stays correct beside it).
--
-- `event_ids` holds (tenant_id, id, occurred_at) of every event stored in
-- a weekly partition, and of every event stored from this step on; an
-- event of events_before stored before it is found by events_before's own
-- primary key. Kept by the triggers below, whichever build writes:
--  - every insert adds its rows; an id already indexed fails the statement
--    (23505) once the transaction that indexed it has committed, which the
--    ingest answers by running its group again (data-plane/ingest.c);
--  - every DELETE removes its rows' entries;
--  - a week's truncation removes the week's entries
--    (events_partition_remove below): TRUNCATE fires no DELETE trigger.
--
-- Cost: one pass over the weekly partitions' rows under this step's lock,
-- which holds every query of `events` meanwhile (nothing at a conversion:
-- 0001 starts them the week after; a cell partitioned before this step
-- pays for its weeks, and gets the step under the same conditions as the
-- conversion, data-plane/partitions.c); an entry per stored event (about
-- 80 bytes with its indexes), a statement trigger per insert and per
-- delete, and removing a week deletes its entries one by one.

LOCK TABLE events IN ACCESS EXCLUSIVE MODE;

CREATE TABLE event_ids (
    tenant_id   uuid NOT NULL,
    id          text NOT NULL,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX event_ids_by_time ON event_ids (occurred_at);

INSERT INTO event_ids (tenant_id, id, occurred_at)
SELECT tenant_id, id, occurred_at FROM events WHERE occurred_at >= (SELECT weekly_from FROM events_layout);
-- And the events of a week a detachment left apart (which `events` does
-- not see): events_partition_forget may attach it again.
DO $$
DECLARE
    p record;
BEGIN
    FOR p IN SELECT name FROM event_partitions ORDER BY lower LOOP
        IF to_regclass(p.name) IS NOT NULL AND NOT EXISTS (
               SELECT 1 FROM pg_inherits WHERE inhrelid = p.name::regclass
                  AND inhparent = 'events'::regclass AND NOT inhdetachpending) THEN
            EXECUTE format('INSERT INTO event_ids (tenant_id, id, occurred_at)'
                           ' SELECT tenant_id, id, occurred_at FROM %I ON CONFLICT DO NOTHING', p.name);
        END IF;
    END LOOP;
END $$;

CREATE FUNCTION event_ids_add() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_ids (tenant_id, id, occurred_at) SELECT a.tenant_id, a.id, a.occurred_at FROM added a;
    RETURN NULL;
END $$;
CREATE TRIGGER event_ids_add AFTER INSERT ON events
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION event_ids_add();

CREATE FUNCTION event_ids_remove() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM event_ids d USING removed r
     WHERE d.tenant_id = r.tenant_id AND d.id = r.id AND d.occurred_at = r.occurred_at;
    RETURN NULL;
END $$;
CREATE TRIGGER event_ids_remove AFTER DELETE ON events
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION event_ids_remove();

-- An event of events_before stored before this step by its primary key,
-- every other through event_ids, straight to the one week that holds it.
CREATE OR REPLACE FUNCTION events_find(tenants uuid[], ids text[])
    RETURNS TABLE (tenant_id uuid, id text, occurred_at timestamptz, content_sha256 bytea, body json)
    LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    wf timestamptz := (SELECT l.weekly_from FROM events_layout l);
BEGIN
    RETURN QUERY
        SELECT e.tenant_id, e.id, e.occurred_at, e.content_sha256, e.body
          FROM unnest(tenants, ids) AS k(t, i)
          JOIN events_before e ON e.tenant_id = k.t AND e.id = k.i
        UNION ALL
        SELECT e.tenant_id, e.id, e.occurred_at, e.content_sha256, e.body
          FROM unnest(tenants, ids) AS k(t, i)
          JOIN event_ids d ON d.tenant_id = k.t AND d.id = k.i
          JOIN events e ON e.tenant_id = d.tenant_id AND e.id = d.id AND e.occurred_at = d.occurred_at
         WHERE d.occurred_at >= wf;
END $$;

-- As in 0001, and the week's entries of event_ids go with its events:
-- deleted first, while the week is only held against writes (SHARE:
-- reads of every week go on), then the week truncated, which holds
-- every statement that cannot leave the week out only for as long as
-- TRUNCATE takes. (The caller gives the transaction the time a week of
-- entries takes to delete.)
CREATE OR REPLACE FUNCTION events_partition_remove(pname text) RETURNS bigint
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
    DELETE FROM event_ids WHERE occurred_at >= p.lower AND occurred_at < p.upper;
    PERFORM set_config('lock_timeout', '2s', true);
    EXECUTE format('TRUNCATE %I', pname);
    RETURN est;
END $$;

-- As in 0001; a week attached again brings its events' entries of
-- event_ids (those stored while it was attached have theirs already).
CREATE OR REPLACE FUNCTION events_partition_forget(pname text) RETURNS boolean
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
        EXECUTE format('INSERT INTO event_ids (tenant_id, id, occurred_at)'
                       ' SELECT tenant_id, id, occurred_at FROM %I ON CONFLICT DO NOTHING', pname);
        PERFORM set_config('lock_timeout', '5s', true);
        EXECUTE format('ALTER TABLE events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       pname, p.lower, p.upper);
        RETURN false;
    END IF;
    EXECUTE format('DROP TABLE %I', pname);
    DELETE FROM event_partitions WHERE name = pname;
    RETURN true;
END $$;
