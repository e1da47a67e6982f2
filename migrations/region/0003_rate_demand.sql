-- How the instances of a region share each tenant's rate limit. Every
-- instance publishes, a few times a second, the recent demand (requests
-- per second, admitted or refused) of each tenant bucket it serves, and
-- reads the others': its part of the plan's rate is its part of the
-- demand. Rows are not data: an instance deletes its own when it stops,
-- and rows nobody refreshed for a while are purged. Only new tables: a
-- build without them never looks at them.

-- The instances alive in the region (a new or idle tenant's bucket gets
-- 1/N of the rate until its demand is known).
CREATE TABLE rate_instances (
    instance_id  text PRIMARY KEY CHECK (instance_id ~ '^[0-9a-f]{32}$'),
    seen_at      timestamptz NOT NULL
);
CREATE INDEX rate_instances_seen ON rate_instances (seen_at);

CREATE TABLE rate_demand (
    instance_id  text NOT NULL,
    tenant_id    uuid NOT NULL,
    bucket       text NOT NULL CHECK (bucket IN ('read', 'write')),
    demand       double precision NOT NULL CHECK (demand >= 0),
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (instance_id, tenant_id, bucket)
);
CREATE INDEX rate_demand_by_tenant ON rate_demand (tenant_id, bucket);
CREATE INDEX rate_demand_updated ON rate_demand (updated_at);
