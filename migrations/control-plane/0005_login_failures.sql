-- Failed logins per account and source address. A source that keeps
-- failing on an account is delayed for that account only, so an attacker
-- cannot lock the real owner out from elsewhere. Accounts are named as the
-- login names them (tenant slug, '' for platform admins, and the normalized
-- email), so unknown accounts are treated exactly like known ones. The row
-- with source '*' holds the account-wide delay against guessing from many
-- sources. users.failed_logins and users.locked_until are no longer used.
CREATE TABLE login_failures (
    tenant_slug     text NOT NULL CHECK (length(tenant_slug) <= 63),
    email           text NOT NULL CHECK (length(email) <= 254),
    source          text NOT NULL CHECK (length(source) BETWEEN 1 AND 64),
    failures        integer NOT NULL CHECK (failures >= 0),
    last_failed_at  timestamptz NOT NULL,
    locked_until    timestamptz,
    PRIMARY KEY (tenant_slug, email, source)
);
-- For the upkeep's purge of rows nobody has failed on for a day.
CREATE INDEX login_failures_last ON login_failures (last_failed_at);
