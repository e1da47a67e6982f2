-- The control plane's signing keys (control-plane/signing_keys.c), kept
-- once for every replica: each replica signs with the one key marked
-- current and publishes the JWK set made of these rows, so that staging,
-- rotating and retiring a key is one change for the whole fleet.
-- Only a new table and a wider CHECK: the previous build, which keeps its
-- keys in CP_SIGNING_KEYS_DIR, ignores both.

-- A key's life: staged (published in the JWK set, not signing) -> current
-- (signing; one at a time) -> previous (no longer signing, published for
-- CP_KEY_OVERLAP after retired_at, so that documents it signed stay
-- verifiable) -> retired (no longer published). `sealed` is the private
-- key's PEM sealed with CP_SIGNING_KEK (AES-256-GCM, secret.h's
-- secret_seal); `kek_id` names that key (the hex of the first 8 bytes of
-- its SHA-256) so that a replica with another key says so instead of
-- failing to open it. The kid is the RFC 7638 thumbprint of the public
-- key, which a replica recomputes from the key it opens: a sealed key
-- copied onto another row is refused.
-- `ver` is taken from signing_keys_ver at every change of a row: the
-- highest is the version of the signed key set (common/keyset.h) that the
-- data planes and routers follow.
CREATE SEQUENCE signing_keys_ver;
CREATE TABLE signing_keys (
    kid          text PRIMARY KEY CHECK (kid ~ '^[A-Za-z0-9_-]{43}$'),
    state        text NOT NULL CHECK (state IN ('staged', 'current', 'previous', 'retired')),
    public_jwk   jsonb NOT NULL,
    sealed       text NOT NULL,
    kek_id       text NOT NULL CHECK (kek_id ~ '^[0-9a-f]{16}$'),
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    activated_at timestamptz,
    retired_at   timestamptz,
    ver          bigint NOT NULL DEFAULT nextval('signing_keys_ver'),
    CHECK (state <> 'current' OR (activated_at IS NOT NULL AND retired_at IS NULL)),
    CHECK (state <> 'previous' OR retired_at IS NOT NULL)
);
-- One key signs; at most one waits to.
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys ((true)) WHERE state = 'current';
CREATE UNIQUE INDEX signing_keys_one_staged ON signing_keys ((true)) WHERE state = 'staged';

-- Changes to the keys are made by an operator's command on a control-plane
-- host (control-plane stage-key, rotate-key, retire-key), recorded with
-- actor_type 'operator'.
-- NOT VALID: the rows already there passed the narrower check this one
-- replaces, so no scan of the whole log under this migration's lock.
ALTER TABLE audit_log DROP CONSTRAINT audit_log_actor_type_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_actor_type_check
    CHECK (actor_type IN ('admin_token', 'user', 'region', 'operator')) NOT VALID;
