-- The events of given (tenant_id, id) pairs, whatever the layout of
-- `events`: the one way the ingest, GET /v1/events/{id} and the log's
-- proofs look an event up by its id. Here, with `events` one table, it is
-- a join on its primary key (inlined into the caller's statement). The
-- contract step that indexes ids across weekly partitions
-- (contract/0002_event_ids.sql) replaces it with a lookup through that
-- index, so that a lookup probes one partition per id instead of every
-- week the cell keeps. The previous build does not call it.
CREATE FUNCTION events_find(tenants uuid[], ids text[])
    RETURNS TABLE (tenant_id uuid, id text, occurred_at timestamptz, content_sha256 bytea, body json)
    LANGUAGE sql STABLE
    AS $$
        SELECT e.tenant_id, e.id, e.occurred_at, e.content_sha256, e.body
          FROM unnest(tenants, ids) AS k(t, i)
          JOIN events e ON e.tenant_id = k.t AND e.id = k.i
    $$;
