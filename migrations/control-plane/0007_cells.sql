-- Cells: each region is a set of cells, each with its own database and
-- data-plane fleet. A tenant lives in one cell of its home region; the
-- region stays the contract, the cell is implementation. One shared cell
-- per cloud region of a region is made with the region (named after the
-- cloud region); an admin adds dedicated cells for one tenant each.
--
-- The previous build keeps working on this schema: it knows no cell, so
-- triggers make the cells of a region it creates and place a tenant it
-- creates; every column it writes keeps its meaning, and region_documents
-- stays the store of the regional documents it serves.

CREATE TABLE cells (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9-]{1,62}$'),
    region      text NOT NULL REFERENCES regions (name),
    kind        text NOT NULL DEFAULT 'shared' CHECK (kind IN ('shared', 'dedicated')),
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'draining', 'closed')),
    -- The tenant a dedicated cell is for (set when it is named or when
    -- its first tenant is placed in it); never for a shared cell.
    tenant_id   uuid REFERENCES tenants (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (tenant_id IS NULL OR kind = 'dedicated')
);
CREATE INDEX cells_region ON cells (region, name);

-- A cell's name never equals a region's: both appear where either may be
-- meant (a document's aud, a deploy wave), so neither may shadow the other.
CREATE FUNCTION cells_name_unshadowed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'cells' AND EXISTS (SELECT 1 FROM regions WHERE name = NEW.name) THEN
        RAISE EXCEPTION 'cell % has the name of a region', NEW.name USING ERRCODE = 'unique_violation';
    END IF;
    IF TG_TABLE_NAME = 'regions' AND EXISTS (SELECT 1 FROM cells WHERE name = NEW.name) THEN
        RAISE EXCEPTION 'region % has the name of a cell', NEW.name USING ERRCODE = 'unique_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER cells_name_unshadowed BEFORE INSERT OR UPDATE OF name ON cells
    FOR EACH ROW EXECUTE FUNCTION cells_name_unshadowed();
CREATE TRIGGER regions_name_unshadowed BEFORE INSERT OR UPDATE OF name ON regions
    FOR EACH ROW EXECUTE FUNCTION cells_name_unshadowed();

-- One shared active cell per cloud region of a region, made when the
-- region is created or gains a cloud region (by either build). A cloud
-- region whose name is taken (by a cell of another region, or a region)
-- gets no cell here: an admin adds the region's cells then.
CREATE FUNCTION regions_seed_cells() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO cells (name, region)
    SELECT c, NEW.name FROM unnest(NEW.cloud_regions) AS c
     WHERE c ~ '^[a-z][a-z0-9-]{1,62}$' AND NOT EXISTS (SELECT 1 FROM regions r WHERE r.name = c)
    ON CONFLICT DO NOTHING;
    RETURN NEW;
END $$;
CREATE TRIGGER regions_seed_cells AFTER INSERT OR UPDATE OF cloud_regions ON regions
    FOR EACH ROW EXECUTE FUNCTION regions_seed_cells();

INSERT INTO cells (name, region)
SELECT c, r.name FROM regions r, unnest(r.cloud_regions) AS c
 WHERE c ~ '^[a-z][a-z0-9-]{1,62}$' AND NOT EXISTS (SELECT 1 FROM regions x WHERE x.name = c)
ON CONFLICT DO NOTHING;

-- The cell a tenant is placed in. NULL only for a tenant of a region with
-- no active shared cell, placed by the previous build.
ALTER TABLE tenants ADD COLUMN cell text REFERENCES cells (name);
CREATE INDEX tenants_cell ON tenants (cell) WHERE status <> 'deleted';

-- Existing tenants live in their region's first cloud region.
UPDATE tenants t SET cell = c.name
  FROM regions r JOIN cells c ON c.region = r.name AND c.name = r.cloud_regions[1]
 WHERE r.name = t.region;

-- The placement rule, in one place: the active shared cell of the region
-- with the fewest tenants not deleted; ties go to the first name.
CREATE FUNCTION cell_least_loaded(p_region text) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT c.name FROM cells c
     WHERE c.region = p_region AND c.kind = 'shared' AND c.status = 'active'
     ORDER BY (SELECT count(*) FROM tenants t WHERE t.cell = c.name AND t.status <> 'deleted'), c.name
     LIMIT 1
$$;

-- A tenant inserted without a cell (by the previous build) is placed by
-- the rule. A tenant's cell, like its region, never changes.
CREATE FUNCTION tenants_place() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' AND NEW.cell IS NULL THEN
        NEW.cell := cell_least_loaded(NEW.region);
    ELSIF TG_OP = 'UPDATE' AND NEW.cell IS DISTINCT FROM OLD.cell AND OLD.cell IS NOT NULL THEN
        RAISE EXCEPTION 'a tenant''s cell cannot change' USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.cell IS NOT NULL AND NOT EXISTS (SELECT 1 FROM cells c WHERE c.name = NEW.cell AND c.region = NEW.region) THEN
        RAISE EXCEPTION 'cell % is not in region %', NEW.cell, NEW.region USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER tenants_place BEFORE INSERT OR UPDATE OF cell ON tenants
    FOR EACH ROW EXECUTE FUNCTION tenants_place();

-- A cell's credential, shown once; only its SHA-256 is stored.
CREATE TABLE cell_credentials (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    cell          text NOT NULL REFERENCES cells (name),
    token_sha256  bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);

-- Signed cell and routes documents, each version signed once and kept so
-- every replica serves the same bytes (regional documents stay in
-- region_documents, which the previous build reads). aud names the
-- document ("cell:<cell>", "routes:<region>"); version is its region's
-- config version.
CREATE TABLE signed_documents (
    aud         text NOT NULL CHECK (length(aud) BETWEEN 1 AND 80),
    region      text NOT NULL REFERENCES regions (name),
    version     bigint NOT NULL,
    token       text NOT NULL,
    kid         text NOT NULL,
    issued_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (aud, version)
);
ALTER TABLE signed_documents ALTER COLUMN token SET STORAGE EXTERNAL;
CREATE INDEX signed_documents_region ON signed_documents (region, version);

-- The cell a data plane serves, when it reports as a cell.
ALTER TABLE fleet_instances ADD COLUMN cell text REFERENCES cells (name);

-- Usage reported by a cell names it; a region credential's has none. A
-- cell's batches have Idempotency-Keys of their own.
ALTER TABLE usage_ledger ADD COLUMN cell text REFERENCES cells (name);
ALTER TABLE usage_batches ADD COLUMN cell text REFERENCES cells (name);
ALTER TABLE usage_batches DROP CONSTRAINT usage_batches_pkey;
CREATE UNIQUE INDEX usage_batches_region_key ON usage_batches (region, key) WHERE cell IS NULL;
CREATE UNIQUE INDEX usage_batches_cell_key ON usage_batches (cell, key) WHERE cell IS NOT NULL;

-- The admin view of a tenant names its cell.
CREATE OR REPLACE VIEW api_tenants AS
SELECT t.id, t.slug, t.region, t.status, t.plan, t.created_at, json_build_object(
        'id', t.id, 'slug', t.slug, 'name', t.name, 'region', t.region,
        'region_endpoint', r.endpoint_url, 'plan', t.plan, 'status', t.status,
        'created_at', api_ts(t.created_at), 'updated_at', api_ts(t.updated_at),
        'cell', t.cell) AS doc
FROM tenants t JOIN regions r ON r.name = t.region;

-- tenant_id appears only when a dedicated cell has one.
CREATE VIEW api_cells AS
SELECT c.name, c.region, json_strip_nulls(json_build_object(
        'name', c.name, 'region', c.region, 'status', c.status, 'kind', c.kind,
        'tenant_id', c.tenant_id,
        'tenants', (SELECT count(*) FROM tenants t WHERE t.cell = c.name AND t.status <> 'deleted'),
        'created_at', api_ts(c.created_at))) AS doc
FROM cells c;
