-- Accounts: plans, tenants and their home region, users and sessions, API
-- keys, idempotency records and the audit log.

-- Plan limits travel to the regions inside the signed config. Prices and
-- billing fields come with billing.
CREATE TABLE plans (
    id                   text PRIMARY KEY CHECK (id ~ '^[a-z][a-z0-9-]{0,31}$'),
    name                 text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    rate_limit           integer NOT NULL CHECK (rate_limit > 0),      -- requests per second
    burst                integer NOT NULL CHECK (burst > 0),
    monthly_event_quota  bigint NOT NULL CHECK (monthly_event_quota >= 0),
    retention_days       integer NOT NULL CHECK (retention_days BETWEEN 1 AND 3650),
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

INSERT INTO plans (id, name, rate_limit, burst, monthly_event_quota, retention_days) VALUES
    ('free',       'Free',        10,    20,      100000,   30),
    ('pro',        'Pro',        200,   400,    10000000,  365),
    ('enterprise', 'Enterprise', 2000, 4000,  1000000000, 2555);

CREATE TABLE tenants (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- The home region: chosen at creation, never changed.
    region      text NOT NULL REFERENCES regions (name),
    plan        text NOT NULL REFERENCES plans (id),
    status      text NOT NULL DEFAULT 'active'
                CHECK (status IN ('active', 'suspended', 'deleted')),
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX tenants_page ON tenants (created_at, id);
CREATE INDEX tenants_region_page ON tenants (region, created_at, id);

CREATE FUNCTION tenants_region_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.region <> OLD.region THEN
        RAISE EXCEPTION 'a tenant''s home region cannot change' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER tenants_region_immutable BEFORE UPDATE ON tenants
    FOR EACH ROW EXECUTE FUNCTION tenants_region_immutable();

-- Platform admins have no tenant; tenant users have a tenant and a role.
CREATE TABLE users (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id      uuid REFERENCES tenants (id),
    email          text NOT NULL CHECK (length(email) BETWEEN 3 AND 254 AND email = lower(email)),
    role           text NOT NULL CHECK (role IN ('admin', 'owner', 'member')),
    password_hash  text NOT NULL,
    failed_logins  integer NOT NULL DEFAULT 0,
    locked_until   timestamptz,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK ((tenant_id IS NULL) = (role = 'admin'))
);
CREATE UNIQUE INDEX users_email_per_tenant
    ON users (coalesce(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid), email);
CREATE INDEX users_page ON users (tenant_id, created_at, id);

-- Only the SHA-256 of a session token is stored.
CREATE TABLE sessions (
    token_sha256  bytea PRIMARY KEY CHECK (length(token_sha256) = 32),
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Only the SHA-256 of a key's secret is stored; the secret is shown once.
CREATE TABLE api_keys (
    id             text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{24}$'),
    tenant_id      uuid NOT NULL REFERENCES tenants (id),
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    secret_sha256  bytea NOT NULL CHECK (length(secret_sha256) = 32),
    scopes         text[] NOT NULL CHECK (scopes <@ ARRAY['events:write', 'events:read'] AND cardinality(scopes) > 0),
    expires_at     timestamptz,
    revoked_at     timestamptz,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX api_keys_page ON api_keys (tenant_id, created_at, id);

-- The first response to a POST with an Idempotency-Key, per principal.
-- A response that carries a secret is stored sealed (AES-256-GCM), never
-- in clear. Rows older than a day are removed.
CREATE TABLE idempotency_keys (
    principal       text NOT NULL,
    key             text NOT NULL,
    request_sha256  bytea NOT NULL,
    status          integer NOT NULL,
    location        text,
    body            text NOT NULL,
    sealed          boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (principal, key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);

-- Every change made by an admin or a tenant user, written in the same
-- transaction as the change. Append-only.
CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor_type  text NOT NULL CHECK (actor_type IN ('admin_token', 'user', 'region')),
    actor_id    text,
    tenant_id   uuid,
    action      text NOT NULL,
    object_type text NOT NULL,
    object_id   text NOT NULL,
    before      jsonb,
    after       jsonb,
    request_id  text
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- The API's representation of each resource, in one place. Timestamps are
-- RFC 3339 in UTC with microseconds.
CREATE FUNCTION api_ts(timestamptz) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT to_char($1 AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

CREATE VIEW api_regions AS
SELECT r.name, r.wave, r.status, json_build_object(
        'name', r.name, 'display_name', r.display_name, 'cloud_regions', r.cloud_regions,
        'endpoint_url', r.endpoint_url, 'wave', r.wave, 'status', r.status,
        'config_version', r.config_version,
        'created_at', api_ts(r.created_at), 'updated_at', api_ts(r.updated_at)) AS doc
FROM regions r;

CREATE VIEW api_tenants AS
SELECT t.id, t.slug, t.region, t.status, t.plan, t.created_at, json_build_object(
        'id', t.id, 'slug', t.slug, 'name', t.name, 'region', t.region,
        'region_endpoint', r.endpoint_url, 'plan', t.plan, 'status', t.status,
        'created_at', api_ts(t.created_at), 'updated_at', api_ts(t.updated_at)) AS doc
FROM tenants t JOIN regions r ON r.name = t.region;

CREATE VIEW api_users AS
SELECT u.id, u.tenant_id, u.role, u.created_at, json_build_object(
        'id', u.id, 'tenant_id', u.tenant_id, 'email', u.email, 'role', u.role,
        'created_at', api_ts(u.created_at), 'updated_at', api_ts(u.updated_at)) AS doc
FROM users u;

CREATE VIEW api_keys_view AS
SELECT k.id, k.tenant_id, k.created_at, k.revoked_at, json_build_object(
        'id', k.id, 'tenant_id', k.tenant_id, 'name', k.name,
        'prefix', t.region || '_' || k.id, 'scopes', k.scopes,
        'expires_at', api_ts(k.expires_at), 'revoked_at', api_ts(k.revoked_at),
        'created_at', api_ts(k.created_at)) AS doc
FROM api_keys k JOIN tenants t ON t.id = k.tenant_id;

CREATE VIEW api_audit_log AS
SELECT a.id, a.tenant_id, json_build_object(
        'id', a.id, 'at', api_ts(a.at), 'actor_type', a.actor_type, 'actor_id', a.actor_id,
        'tenant_id', a.tenant_id, 'action', a.action, 'object_type', a.object_type,
        'object_id', a.object_id, 'before', a.before, 'after', a.after,
        'request_id', a.request_id) AS doc
FROM audit_log a;
