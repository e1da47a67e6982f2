-- Log streams (control-plane/streams.c): the destinations to which a
-- tenant's events are delivered, by the data planes of its home region.
-- Only new tables and new columns with defaults: the previous build ignores
-- them.

-- A stream. The destination's non-secret fields are in `destination`
-- (webhook and splunk_hec: {"url"}; s3: {"endpoint", "bucket", "region",
-- "access_key_id", "prefix"}); its secret (the webhook's signing secret,
-- the HEC token, the S3 secret access key) is in `secret_sealed`, sealed
-- with CP_SECRETS_KEY (secret.h's secret_seal), and leaves the control
-- plane only sealed again to the region's stream key (common/seal.h) in the
-- cell's signed document. `since`: the stream delivers the events received
-- from then on. `resume_gen` and `replay_gen` count the owner's resume and
-- replay commands; the data plane applies each once (stream_cursors in the
-- regional database keeps the last applied). A deleted stream keeps its row
-- (deleted_at) so that its id is never reused.
CREATE TABLE streams (
    id             uuid PRIMARY KEY,
    tenant_id      uuid NOT NULL REFERENCES tenants (id),
    kind           text NOT NULL CHECK (kind IN ('webhook', 'splunk_hec', 's3')),
    destination    jsonb NOT NULL,
    secret_sealed  text NOT NULL,
    paused         boolean NOT NULL DEFAULT false,
    since          timestamptz NOT NULL,
    resume_gen     bigint NOT NULL DEFAULT 0 CHECK (resume_gen >= 0),
    replay_gen     bigint NOT NULL DEFAULT 0 CHECK (replay_gen >= 0),
    replay_since   timestamptz,
    revision       bigint NOT NULL DEFAULT 1 CHECK (revision > 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    deleted_at     timestamptz
);
CREATE INDEX streams_tenant ON streams (tenant_id, created_at) WHERE deleted_at IS NULL;

-- What the data planes of the stream's cell last reported of it (POST
-- /v1/regions/{region}/streams/status); a report older than the one kept
-- (observed_at) is ignored.
CREATE TABLE stream_reports (
    stream_id          uuid PRIMARY KEY REFERENCES streams (id) ON DELETE CASCADE,
    cell               text NOT NULL,
    status             text NOT NULL,
    lag_events         bigint NOT NULL CHECK (lag_events >= 0),
    lag_seconds        double precision NOT NULL CHECK (lag_seconds >= 0),
    delivered_events   bigint NOT NULL CHECK (delivered_events >= 0),
    last_delivered_at  timestamptz,
    last_error         text,
    last_error_at      timestamptz,
    observed_at        timestamptz NOT NULL,
    reported_at        timestamptz NOT NULL DEFAULT now()
);

-- Residency of streams, per region (common/residency.h): the host patterns
-- a destination's host must match and the S3 regions an s3 destination may
-- name; empty: the region allows no destination. stream_key: the public
-- JWK (P-256, "use":"enc") of the region's stream key, to which secrets are
-- sealed; NULL until an admin sets it, and the region's documents then
-- carry streams without their secrets (the data plane reports them
-- "refused").
ALTER TABLE regions
    ADD COLUMN stream_hosts       text[] NOT NULL DEFAULT '{}',
    ADD COLUMN stream_s3_regions  text[] NOT NULL DEFAULT '{}',
    ADD COLUMN stream_key         jsonb;
