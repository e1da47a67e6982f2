-- The first answer to a POST /v1/events sent with an Idempotency-Key, per
-- tenant. A record is claimed (status 0) and completed in the same
-- transaction as the events it answers for, so an acknowledged answer and
-- its record commit together or not at all; a concurrent request with the
-- same key waits on the claim. Records older than DP_IDEMPOTENCY_TTL count
-- as absent and are deleted in bounded batches by a background thread.
-- The rows are the tenant's data: tenant_id leads the key.
CREATE TABLE idempotency_keys (
    tenant_id       uuid NOT NULL,
    key             text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_sha256  bytea NOT NULL CHECK (length(request_sha256) = 32),
    status          integer NOT NULL,
    location        text,
    body            text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);
