-- Signed regional configuration: the documents issued to each region, the
-- credentials regions fetch them with, and what each data plane reports.

-- Each version of a region's document is signed once and kept here, so
-- every control-plane replica serves the same bytes for a version.
CREATE TABLE region_documents (
    region      text NOT NULL REFERENCES regions (name),
    version     bigint NOT NULL,
    token       text NOT NULL,
    kid         text NOT NULL,
    issued_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (region, version)
);
-- A token is base64 of mostly random bytes: compressing it costs time and
-- saves little, so it is stored as it is.
ALTER TABLE region_documents ALTER COLUMN token SET STORAGE EXTERNAL;

-- A region's credential, shown once; only its SHA-256 is stored.
CREATE TABLE region_credentials (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    region        text NOT NULL REFERENCES regions (name),
    token_sha256  bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);

-- The last report of each data-plane instance.
CREATE TABLE fleet_instances (
    region           text NOT NULL REFERENCES regions (name),
    instance         text NOT NULL CHECK (length(instance) BETWEEN 1 AND 128),
    version          bigint,
    source           text CHECK (source IN ('control-plane', 'cache')),
    stale            boolean NOT NULL DEFAULT false,
    last_pull_ok_at  timestamptz,
    last_error       text CHECK (length(last_error) <= 500),
    last_seen        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (region, instance)
);

-- Every raise of a region's config version wakes the long polls of every
-- control-plane replica (payload: "<region> <version>").
CREATE FUNCTION regions_notify_config() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.config_version <> OLD.config_version THEN
        PERFORM pg_notify('region_config', NEW.name || ' ' || NEW.config_version);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER regions_notify_config AFTER UPDATE OF config_version ON regions
    FOR EACH ROW EXECUTE FUNCTION regions_notify_config();
