-- Erasure of a deleted tenant's data in its home region, as the region
-- reports it (POST /v1/regions/{region}/erasures). Billing (usage_ledger,
-- invoices) is kept; this only records the regional erasure. A row is made
-- when a tenant is deleted; a tenant deleted by an older build (or before
-- this migration) has none until its region first reports, and reads as
-- requested at its deletion (tenants.updated_at: a deleted tenant never
-- changes again). Only a new table: the previous build never looks at it.
CREATE TABLE erasures (
    tenant_id       uuid PRIMARY KEY REFERENCES tenants (id),
    requested_at    timestamptz NOT NULL,
    -- Both only grow: a late or repeated report never lowers them.
    events_deleted  bigint NOT NULL DEFAULT 0 CHECK (events_deleted >= 0),
    rows_deleted    bigint NOT NULL DEFAULT 0 CHECK (rows_deleted >= 0),
    -- Set once, when the region first says it holds no row of the tenant.
    completed_at    timestamptz,
    reported_at     timestamptz
);

INSERT INTO erasures (tenant_id, requested_at)
SELECT id, updated_at FROM tenants WHERE status = 'deleted';

-- Their regions learn of them with their next document: one now.
UPDATE regions SET config_version = config_version + 1
 WHERE name IN (SELECT region FROM tenants WHERE status = 'deleted');
