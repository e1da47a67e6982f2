-- Erasure of deleted tenants' data (data-plane/erasure.c): one row per
-- tenant this region has erased or is erasing, kept once its rows are gone
-- as the record that they were, and how many. It holds the tenant's id and
-- counts, nothing the tenant sent. Its column is not named tenant_id on
-- purpose: every table with a tenant_id column holds a tenant's data and is
-- erased (the erasure test finds them by that name). Only a new table: a
-- build without erasure never looks at it.
CREATE TABLE erasures (
    erased_tenant    uuid PRIMARY KEY,
    events_deleted   bigint NOT NULL DEFAULT 0 CHECK (events_deleted >= 0),
    -- Rows of every erased table, events included.
    rows_deleted     bigint NOT NULL DEFAULT 0 CHECK (rows_deleted >= events_deleted),
    batches          bigint NOT NULL DEFAULT 0 CHECK (batches >= 0),
    -- The most rows one batch deleted: never above DP_ERASURE_BATCH.
    largest_batch    integer NOT NULL DEFAULT 0 CHECK (largest_batch >= 0),
    started_at       timestamptz NOT NULL DEFAULT now(),
    -- When a batch first found no row of the tenant left in any table.
    completed_at     timestamptz,
    -- What the control plane last acknowledged: a report is due while
    -- these differ from the figures above.
    reported_events  bigint NOT NULL DEFAULT -1,
    reported_rows    bigint NOT NULL DEFAULT -1,
    reported_done    boolean NOT NULL DEFAULT false,
    reported_at      timestamptz,
    last_error       text
);
