-- After a move between two cells of a region, the source cell's document
-- keeps listing the tenant for a short while (CP_MOVE_LINGER): the cell
-- router may still send the tenant's requests there for one long-poll
-- round, and the source, whose fence stays, serves its reads from its copy
-- (complete up to the fence) and answers its writes 503 tenant_moving. The
-- moment the linger ends; NULL once the source cell's document no longer
-- lists the tenant (its region's config version raised then).
--
-- The previous build keeps working on this schema: it never sets the
-- column, so its moves have no linger.
ALTER TABLE moves ADD COLUMN linger_until timestamptz;
-- Every cell document asks whether a tenant lingers in it; few ever do.
CREATE INDEX moves_lingering ON moves (tenant_id) WHERE linger_until IS NOT NULL;
