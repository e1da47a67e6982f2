-- Which region this database belongs to. A data plane refuses to start on
-- a database claimed by another region, so a wrong connection string can
-- never put one region's tenant data in another region.
CREATE TABLE region_identity (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    region      text NOT NULL CHECK (region ~ '^[a-z][a-z0-9-]{0,31}$'),
    claimed_at  timestamptz NOT NULL DEFAULT now()
);
