-- Tenant moves: a tenant's trail copied from its cell to another cell of
-- its region, or of another region, while it keeps writing, then the
-- tenant's cell (and region) flipped in one transaction. The move's state
-- lives here; the mover agent of the target region drives it.
--
-- The previous build keeps working on this schema: it never writes moves
-- or drains, a key it inserts gets its region from the trigger below, and
-- a tenant's cell and region still never change but through a move.

-- The region in a key's text (its first part), kept when its tenant moves
-- to another region: the documents of that region then list the key as
-- moved, and the key works at the new region as an alias.
ALTER TABLE api_keys ADD COLUMN region text REFERENCES regions (name);
UPDATE api_keys k SET region = t.region FROM tenants t WHERE t.id = k.tenant_id AND k.region IS NULL;
CREATE INDEX api_keys_region ON api_keys (region) WHERE revoked_at IS NULL;

CREATE FUNCTION api_keys_region() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.region IS NULL THEN
        NEW.region := (SELECT region FROM tenants WHERE id = NEW.tenant_id);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER api_keys_region BEFORE INSERT ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_region();

-- A key's prefix is the region in its text, not its tenant's region now.
CREATE OR REPLACE VIEW api_keys_view AS
SELECT k.id, k.tenant_id, k.created_at, k.revoked_at, json_build_object(
        'id', k.id, 'tenant_id', k.tenant_id, 'name', k.name,
        'prefix', coalesce(k.region, t.region) || '_' || k.id, 'scopes', k.scopes,
        'expires_at', api_ts(k.expires_at), 'revoked_at', api_ts(k.revoked_at),
        'created_at', api_ts(k.created_at)) AS doc
FROM api_keys k JOIN tenants t ON t.id = k.tenant_id;

-- Evacuating a cell: its tenants are moved out, at most `parallel` at a
-- time; the moves are created as movers claim work.
CREATE TABLE cell_drains (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    cell          text NOT NULL REFERENCES cells (name),
    parallel      integer NOT NULL CHECK (parallel BETWEEN 1 AND 10),
    state         text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done', 'failed')),
    requested_by  text,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at   timestamptz
);
CREATE INDEX cell_drains_cell ON cell_drains (cell, created_at DESC);
-- At most one running drain per cell.
CREATE UNIQUE INDEX cell_drains_running ON cell_drains (cell) WHERE state = 'running';

CREATE TABLE moves (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id            uuid NOT NULL REFERENCES tenants (id),
    kind                 text NOT NULL CHECK (kind IN ('cell', 'region')),
    from_region          text NOT NULL REFERENCES regions (name),
    from_cell            text NOT NULL REFERENCES cells (name),
    to_region            text NOT NULL REFERENCES regions (name),
    to_cell              text NOT NULL REFERENCES cells (name),
    state                text NOT NULL CHECK (state IN ('awaiting_approval', 'copying', 'catching_up',
                                                        'cutover', 'verifying', 'done', 'aborted', 'failed')),
    requested_by         text,
    approved_by          text,
    erase_after_seconds  bigint NOT NULL CHECK (erase_after_seconds BETWEEN 0 AND 31536000),
    events_copied        bigint NOT NULL DEFAULT 0 CHECK (events_copied >= 0),
    lag_events           bigint NOT NULL DEFAULT 0 CHECK (lag_events >= 0),
    source_events        bigint CHECK (source_events >= 0),
    write_pause_ms       bigint CHECK (write_pause_ms >= 0),
    error                text CHECK (length(error) <= 1000),
    created_at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    approved_at          timestamptz,
    copy_started_at      timestamptz,
    cutover_started_at   timestamptz,
    finished_at          timestamptz,
    erase_at             timestamptz,
    source_erased_at     timestamptz,
    events_erased        bigint,
    rows_erased          bigint,
    target_erased_at     timestamptz,
    lease_owner          text CHECK (lease_owner ~ '^[A-Za-z0-9._-]{1,64}$'),
    lease_until          timestamptz,
    drain_id             uuid REFERENCES cell_drains (id),
    CHECK (from_cell <> to_cell),
    CHECK ((kind = 'cell') = (from_region = to_region))
);
-- At most one move per tenant that has not ended.
CREATE UNIQUE INDEX moves_one_open ON moves (tenant_id)
    WHERE state NOT IN ('done', 'aborted', 'failed');
CREATE INDEX moves_tenant ON moves (tenant_id, created_at DESC);
CREATE INDEX moves_due ON moves (to_region, state);
CREATE INDEX moves_drain ON moves (drain_id) WHERE drain_id IS NOT NULL;
CREATE INDEX moves_from_done ON moves (tenant_id, from_cell) WHERE state = 'done';

-- A tenant's cell and region change only through a move that is being
-- completed: the one in state verifying whose target they become.
CREATE OR REPLACE FUNCTION tenants_region_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.region <> OLD.region AND NOT EXISTS (
            SELECT 1 FROM moves m WHERE m.tenant_id = NEW.id AND m.state = 'verifying'
               AND m.to_region = NEW.region AND m.to_cell = NEW.cell) THEN
        RAISE EXCEPTION 'a tenant''s home region cannot change' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION tenants_place() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' AND NEW.cell IS NULL THEN
        NEW.cell := cell_least_loaded(NEW.region);
    ELSIF TG_OP = 'UPDATE' AND NEW.cell IS DISTINCT FROM OLD.cell AND OLD.cell IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM moves m WHERE m.tenant_id = NEW.id AND m.state = 'verifying'
                             AND m.to_cell = NEW.cell AND m.to_region = NEW.region) THEN
        RAISE EXCEPTION 'a tenant''s cell cannot change' USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.cell IS NOT NULL AND NOT EXISTS (SELECT 1 FROM cells c WHERE c.name = NEW.cell AND c.region = NEW.region) THEN
        RAISE EXCEPTION 'cell % is not in region %', NEW.cell, NEW.region USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;

-- The admin view of a move; the tenant's view leaves out the cells.
CREATE VIEW api_moves AS
SELECT m.id, m.tenant_id, m.created_at, json_build_object(
        'id', m.id, 'tenant_id', m.tenant_id, 'kind', m.kind, 'state', m.state,
        'from_region', m.from_region, 'to_region', m.to_region,
        'from_cell', m.from_cell, 'to_cell', m.to_cell,
        'events_copied', m.events_copied, 'lag_events', m.lag_events,
        'source_events', m.source_events, 'write_pause_ms', m.write_pause_ms,
        'erase_after_seconds', m.erase_after_seconds, 'erase_at', api_ts(m.erase_at),
        'source_erased_at', api_ts(m.source_erased_at), 'events_erased', m.events_erased,
        'rows_erased', m.rows_erased, 'target_erased_at', api_ts(m.target_erased_at),
        'error', m.error, 'requested_by', m.requested_by, 'approved_by', m.approved_by,
        'drain_id', m.drain_id,
        'created_at', api_ts(m.created_at), 'approved_at', api_ts(m.approved_at),
        'copy_started_at', api_ts(m.copy_started_at),
        'cutover_started_at', api_ts(m.cutover_started_at),
        'finished_at', api_ts(m.finished_at)) AS doc
FROM moves m;

CREATE VIEW api_cell_drains AS
SELECT d.id, d.cell, d.created_at, json_build_object(
        'id', d.id, 'cell', d.cell, 'state', d.state, 'parallel', d.parallel,
        'tenants_left', (SELECT count(*) FROM tenants t WHERE t.cell = d.cell AND t.status <> 'deleted'),
        'moves_active', (SELECT count(*) FROM moves m WHERE m.drain_id = d.id
                          AND m.state NOT IN ('done', 'aborted', 'failed')),
        'moves_done', (SELECT count(*) FROM moves m WHERE m.drain_id = d.id AND m.state = 'done'),
        'created_at', api_ts(d.created_at), 'finished_at', api_ts(d.finished_at)) AS doc
FROM cell_drains d;
