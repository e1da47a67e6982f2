-- Log streams, delivery side (data-plane/stream.c): each stream's durable
-- cursor on its tenant's feed and the batch it has in flight. A new table
-- only: the previous build ignores it.
--
-- A position is a feed position (tx_id, seq) of the tenant's events (feed.c).
-- after_*: the last event the destination acknowledged; when the row is
-- made (the first time a data plane of the cell sees the stream), the
-- position just before the first event received at or after the stream's
-- `since`, and the same for a replay. batch_no: the number of the last batch made; while
-- batch_to_tx is not NULL, batch number batch_no is in flight: exactly the
-- events after after_* up to and including batch_to_* (batch_events of
-- them), and every attempt sends exactly those, under the same batch id,
-- until one is acknowledged. Only then does after_* move to batch_to_*.
CREATE TABLE stream_cursors (
    stream_id          uuid PRIMARY KEY,
    tenant_id          uuid NOT NULL,
    after_tx           xid8 NOT NULL DEFAULT '0',
    after_seq          bigint NOT NULL DEFAULT 0,
    batch_no           bigint NOT NULL DEFAULT 0 CHECK (batch_no >= 0),
    batch_to_tx        xid8,
    batch_to_seq       bigint,
    batch_events       integer,
    batch_made_at      timestamptz,
    attempts           integer NOT NULL DEFAULT 0,
    next_attempt_at    timestamptz,
    failing_since      timestamptz,
    status             text NOT NULL DEFAULT 'active'
                       CHECK (status IN ('active', 'retrying', 'failed', 'paused', 'refused')),
    last_error         text,
    last_error_at      timestamptz,
    last_delivered_at  timestamptz,
    delivered_events   bigint NOT NULL DEFAULT 0,
    resume_applied     bigint NOT NULL DEFAULT 0,
    replay_applied     bigint NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stream_cursors_tenant ON stream_cursors (tenant_id);
