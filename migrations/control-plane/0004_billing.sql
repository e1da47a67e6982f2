-- Billing: prices on plans, each tenant's plan history, the usage ledger
-- fed by the regions, billing periods and invoices. Money is an integer
-- number of the currency's minor units (cents); nothing is a float.

ALTER TABLE plans
    ADD COLUMN currency text NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    -- per month, in minor units
    ADD COLUMN base_price bigint NOT NULL DEFAULT 0 CHECK (base_price >= 0),
    ADD COLUMN events_included bigint NOT NULL DEFAULT 0 CHECK (events_included >= 0),
    -- per 1,000 events beyond those included, in minor units
    ADD COLUMN price_per_1000 bigint NOT NULL DEFAULT 0 CHECK (price_per_1000 >= 0);

UPDATE plans SET base_price = 0,     events_included = 100000,    price_per_1000 = 0  WHERE id = 'free';
UPDATE plans SET base_price = 4900,  events_included = 1000000,   price_per_1000 = 50 WHERE id = 'pro';
UPDATE plans SET base_price = 99900, events_included = 50000000,  price_per_1000 = 20 WHERE id = 'enterprise';

CREATE VIEW api_plans AS
SELECT p.id, json_build_object(
        'id', p.id, 'name', p.name, 'currency', p.currency, 'base_price', p.base_price,
        'events_included', p.events_included, 'price_per_1000', p.price_per_1000,
        'rate_limit', p.rate_limit, 'burst', p.burst,
        'monthly_event_quota', p.monthly_event_quota, 'retention_days', p.retention_days,
        'created_at', api_ts(p.created_at), 'updated_at', api_ts(p.updated_at)) AS doc
FROM plans p;

-- Which plan a tenant was on, since when: an invoice is priced with the
-- plan in force at the end of its period, whenever the period is closed.
CREATE TABLE tenant_plan_history (
    tenant_id  uuid NOT NULL REFERENCES tenants (id),
    plan       text NOT NULL REFERENCES plans (id),
    since      timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, since)
);
INSERT INTO tenant_plan_history (tenant_id, plan, since) SELECT id, plan, created_at FROM tenants;

CREATE FUNCTION tenants_plan_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.plan <> OLD.plan THEN
        INSERT INTO tenant_plan_history (tenant_id, plan) VALUES (NEW.id, NEW.plan);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER tenants_plan_history AFTER INSERT OR UPDATE OF plan ON tenants
    FOR EACH ROW EXECUTE FUNCTION tenants_plan_history();

-- One row per usage batch a region sent: its Idempotency-Key, the hash of
-- the request, and the first answer. Written in the same transaction as
-- the batch's ledger rows, so a batch counts once or not at all.
CREATE TABLE usage_batches (
    region          text NOT NULL REFERENCES regions (name),
    key             text NOT NULL,
    request_sha256  bytea NOT NULL,
    response        text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (region, key)
);

-- The usage ledger: append-only facts, each billed by exactly one invoice.
CREATE TABLE usage_ledger (
    id            bigserial PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    region        text NOT NULL REFERENCES regions (name),
    period        date NOT NULL CHECK (extract(day FROM period) = 1),
    events        bigint NOT NULL CHECK (events >= 0),
    window_start  timestamptz NOT NULL,
    window_end    timestamptz NOT NULL CHECK (window_end >= window_start),
    batch_key     text NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    invoice_id    uuid
);
CREATE INDEX usage_ledger_period ON usage_ledger (tenant_id, period);
CREATE INDEX usage_ledger_unbilled ON usage_ledger (tenant_id, period) WHERE invoice_id IS NULL;

CREATE TABLE billing_periods (
    period     date PRIMARY KEY CHECK (extract(day FROM period) = 1),
    closed_at  timestamptz NOT NULL DEFAULT now(),
    invoices   integer NOT NULL
);

CREATE TABLE invoices (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    period        date NOT NULL,
    plan          text NOT NULL REFERENCES plans (id),
    currency      text NOT NULL,
    total         bigint NOT NULL,
    status        text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'finalized', 'void')),
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    finalized_at  timestamptz,
    voided_at     timestamptz,
    UNIQUE (tenant_id, period)
);
ALTER TABLE usage_ledger ADD FOREIGN KEY (invoice_id) REFERENCES invoices (id);

CREATE TABLE invoice_lines (
    invoice_id   uuid NOT NULL REFERENCES invoices (id),
    line         integer NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('base', 'overage', 'adjustment')),
    period       date NOT NULL,
    description  text NOT NULL,
    quantity     bigint NOT NULL,
    amount       bigint NOT NULL,
    PRIMARY KEY (invoice_id, line)
);

-- A finalized invoice is immutable; the only change left is to void it.
CREATE FUNCTION invoices_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status = 'void' OR (OLD.status = 'finalized' AND (NEW.status <> 'void'
        OR NEW.total <> OLD.total OR NEW.plan <> OLD.plan OR NEW.period <> OLD.period)) THEN
        RAISE EXCEPTION 'invoice % is %', OLD.id, OLD.status USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER invoices_immutable BEFORE UPDATE ON invoices
    FOR EACH ROW EXECUTE FUNCTION invoices_immutable();

CREATE VIEW api_invoices AS
SELECT i.id, i.tenant_id, i.period, i.created_at, json_build_object(
        'id', i.id, 'tenant_id', i.tenant_id, 'period', to_char(i.period, 'YYYY-MM'),
        'plan', i.plan, 'currency', i.currency, 'total', i.total, 'status', i.status,
        'lines', coalesce((SELECT json_agg(json_build_object(
                    'kind', l.kind, 'period', to_char(l.period, 'YYYY-MM'),
                    'description', l.description, 'quantity', l.quantity, 'amount', l.amount)
                  ORDER BY l.line) FROM invoice_lines l WHERE l.invoice_id = i.id), '[]'::json),
        'created_at', api_ts(i.created_at), 'finalized_at', api_ts(i.finalized_at),
        'voided_at', api_ts(i.voided_at)) AS doc
FROM invoices i;
