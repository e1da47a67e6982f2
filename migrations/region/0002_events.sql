-- Tenants' audit-trail events, stored in their home region only, and the
-- per-tenant monthly usage counters that double as the billing outbox.

-- One row per event. Every statement that reads or writes it names
-- tenant_id, and every index leads with it: a tenant's rows are found only
-- through its own id.
CREATE TABLE events (
    tenant_id    uuid NOT NULL,
    id           text NOT NULL CHECK (id ~ '^[A-Za-z0-9._:-]{1,128}$'),
    seq          bigint GENERATED ALWAYS AS IDENTITY,
    occurred_at  timestamptz NOT NULL,
    received_at  timestamptz NOT NULL,
    action       text NOT NULL,
    actor_id     text NOT NULL,
    target_ids   text[] NOT NULL DEFAULT '{}',
    -- SHA-256 of the event as the client sent it: a retry under the same
    -- id is a replay when this matches, a conflict otherwise.
    content_sha256 bytea NOT NULL CHECK (length(content_sha256) = 32),
    -- The event as the API returns it, kept as text (json, not jsonb) so
    -- that reads hand it out without rebuilding it.
    body         json NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- Newest first, with seq breaking ties: the keyset of every listing.
CREATE INDEX events_by_time   ON events (tenant_id, occurred_at DESC, seq DESC);
CREATE INDEX events_by_actor  ON events (tenant_id, actor_id, occurred_at DESC, seq DESC);
CREATE INDEX events_by_action ON events (tenant_id, action, occurred_at DESC, seq DESC);
CREATE INDEX events_by_target ON events USING gin (target_ids);

-- Events a tenant stored per calendar month (UTC, by received_at): the
-- exact quota count, updated in every ingest transaction, and the usage
-- outbox: `events - reported` is what the control plane has not been
-- sent yet, accumulated since `pending_since` up to `last_at`.
CREATE TABLE usage_counters (
    tenant_id      uuid NOT NULL,
    period         date NOT NULL CHECK (extract(day FROM period) = 1),
    events         bigint NOT NULL DEFAULT 0 CHECK (events >= 0),
    reported       bigint NOT NULL DEFAULT 0 CHECK (reported >= 0 AND reported <= events),
    pending_since  timestamptz,
    last_at        timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, period)
);
CREATE INDEX usage_counters_unreported ON usage_counters (period, tenant_id)
    WHERE events > reported;
CREATE INDEX usage_counters_updated ON usage_counters (updated_at);

-- Usage batches cut from the counters, each sent to the control plane
-- under its own Idempotency-Key until it is acknowledged. A batch is
-- written in the same transaction that moves `reported`, so usage is in
-- exactly one batch; a batch is re-sent, never rebuilt.
CREATE TABLE usage_outbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key          text NOT NULL UNIQUE,
    body         json NOT NULL,
    records      integer NOT NULL CHECK (records BETWEEN 1 AND 1000),
    events       bigint NOT NULL CHECK (events > 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text,
    sent_at      timestamptz,
    -- Refused by the control plane as invalid: kept for an operator,
    -- never retried by itself.
    rejected_at  timestamptz
);
CREATE INDEX usage_outbox_pending ON usage_outbox (id) WHERE sent_at IS NULL AND rejected_at IS NULL;
