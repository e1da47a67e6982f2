-- Which cell of its region this database belongs to, beside the region
-- (0001), so that a data plane of one cell never serves from another
-- cell's database: a failure never crosses a cell.
--
-- NULL is a database of a region without cells (the previous build), or
-- one not claimed by a cell yet. A data plane with DP_CELL claims a NULL
-- cell (`data-plane migrate`, or the check of its first session), so the
-- first cell of a region keeps the region's database and its events; a
-- database claimed by another cell is then refused like another region's.
--
-- Nullable and without a default, so that nothing is rewritten and the
-- previous build's statements (INSERT naming only region, SELECT region)
-- work unchanged: a data plane without DP_CELL still serves a database
-- of its region whatever cell claimed it, which a rollback needs.
ALTER TABLE region_identity
    ADD COLUMN cell text CHECK (cell ~ '^[a-z][a-z0-9-]{1,62}$');
