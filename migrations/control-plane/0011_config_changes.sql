-- The change log of configuration documents: which tenants changed in
-- which region config version, so that a cell document can be sent as a
-- delta (the records of the changed tenants) instead of whole.
--
-- The previous build keeps working on this schema: the triggers below only
-- add rows to tables it never reads, and the bump trigger still notifies.

-- The tenants a transaction changed, in any table whose rows a document's
-- tenant record depends on (tenants, api_keys, erasures, moves).
CREATE TABLE config_changes (
    xact       xid8 NOT NULL DEFAULT pg_current_xact_id(),
    tenant_id  uuid NOT NULL
);
CREATE UNIQUE INDEX config_changes_xact ON config_changes (xact, tenant_id);

-- The transaction that raised a region's config version to `ver`.
CREATE TABLE config_bumps (
    region  text NOT NULL,
    ver     bigint NOT NULL,
    xact    xid8 NOT NULL DEFAULT pg_current_xact_id(),
    PRIMARY KEY (region, ver)
);
CREATE INDEX config_bumps_xact ON config_bumps (xact);

-- Signed delta documents of cells, by audience and base version, so that
-- every replica serves the same bytes for a (base, version).
CREATE TABLE config_deltas (
    aud         text NOT NULL,
    base_ver    bigint NOT NULL,
    ver         bigint NOT NULL CHECK (ver > base_ver),
    token       text NOT NULL,
    kid         text NOT NULL,
    issued_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (aud, base_ver)
);
ALTER TABLE config_deltas ALTER COLUMN token SET STORAGE EXTERNAL;

-- TG_ARGV[0] names the column holding the tenant's id.
CREATE FUNCTION config_change_note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO config_changes (tenant_id)
            VALUES ((to_jsonb(OLD) ->> TG_ARGV[0])::uuid) ON CONFLICT DO NOTHING;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO config_changes (tenant_id)
            VALUES ((to_jsonb(NEW) ->> TG_ARGV[0])::uuid) ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER tenants_config_change AFTER INSERT OR UPDATE OR DELETE ON tenants
    FOR EACH ROW EXECUTE FUNCTION config_change_note('id');
CREATE TRIGGER api_keys_config_change AFTER INSERT OR UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION config_change_note('tenant_id');
CREATE TRIGGER erasures_config_change AFTER INSERT OR UPDATE OR DELETE ON erasures
    FOR EACH ROW EXECUTE FUNCTION config_change_note('tenant_id');
CREATE TRIGGER moves_config_change AFTER INSERT OR UPDATE OR DELETE ON moves
    FOR EACH ROW EXECUTE FUNCTION config_change_note('tenant_id');

-- Every raise of a region's config version is logged with its transaction
-- (joined with config_changes on xact) and still wakes the long polls of
-- every control-plane replica (payload: "<region> <version>").
CREATE OR REPLACE FUNCTION regions_notify_config() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.config_version <> OLD.config_version THEN
        INSERT INTO config_bumps (region, ver) VALUES (NEW.name, NEW.config_version)
            ON CONFLICT DO NOTHING;
        PERFORM pg_notify('region_config', NEW.name || ' ' || NEW.config_version);
    END IF;
    RETURN NEW;
END $$;

-- The keys of a region whose tenant moved to another region (a document's
-- `moved` claim) are found through that region's moves, not by reading
-- every key of the region at every change.
CREATE INDEX moves_from_region ON moves (from_region, tenant_id) WHERE kind = 'region';
