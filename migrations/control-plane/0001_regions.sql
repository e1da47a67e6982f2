-- The region catalog: every region a tenant can live in, its public
-- endpoint and its deployment wave. config_version counts the changes a
-- region's data planes must learn; it only ever grows.
CREATE TABLE regions (
    name            text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9-]{0,31}$'),
    display_name    text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 100),
    cloud_regions   text[] NOT NULL,
    endpoint_url    text NOT NULL CHECK (endpoint_url ~ '^https?://'),
    wave            integer NOT NULL CHECK (wave BETWEEN 1 AND 100),
    status          text NOT NULL DEFAULT 'active'
                    CHECK (status IN ('active', 'draining', 'retired')),
    config_version  bigint NOT NULL DEFAULT 1 CHECK (config_version > 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
