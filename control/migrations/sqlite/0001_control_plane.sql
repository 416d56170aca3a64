-- Version 1 of the control plane (SQLite): keys, tenant settings, imported rules policies,
-- sign-in sessions and the audit log. Times are RFC 3339 text in UTC with microseconds, so
-- text order is time order; JSON is text. Keep it the same as ../postgres/0001_control_plane.sql.

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('agent', 'admin')),
    role          TEXT,
    upn           TEXT,
    secret_sha256 TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    revoked_at    TEXT
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant);

CREATE TABLE tenant_settings (
    tenant                    TEXT PRIMARY KEY,
    reporting_cap             TEXT NOT NULL,
    elevation_retention_days  BIGINT,
    diagnostic_retention_days BIGINT,
    updated_at                TEXT NOT NULL
);

CREATE TABLE rules_policies (
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    policy      TEXT NOT NULL,
    imported_at TEXT NOT NULL,
    PRIMARY KEY (tenant, name)
);

CREATE TABLE sign_in_sessions (
    token_sha256 TEXT PRIMARY KEY,
    key_id       TEXT NOT NULL REFERENCES api_keys (id),
    csrf_secret  TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL
);
CREATE INDEX sign_in_sessions_by_expiry ON sign_in_sessions (expires_at);

-- The newest entry of each tenant's chain: locked by every writer of the tenant, so appends
-- from several nodes queue, and compared by `audit verify`, so a removed last entry shows.
CREATE TABLE audit_heads (
    tenant TEXT PRIMARY KEY,
    seq    BIGINT NOT NULL,
    hash   TEXT NOT NULL
);

CREATE TABLE audit_events (
    tenant                  TEXT NOT NULL,
    seq                     BIGINT NOT NULL,
    id                      TEXT NOT NULL UNIQUE,
    activity_date_time      TEXT NOT NULL,
    actor_type              TEXT NOT NULL,
    actor_upn               TEXT NOT NULL,
    actor_key_id            TEXT,
    activity                TEXT NOT NULL,
    activity_operation_type TEXT NOT NULL,
    activity_result         TEXT NOT NULL,
    resource_type           TEXT NOT NULL,
    resource_id             TEXT NOT NULL,
    modified_properties     TEXT NOT NULL,
    correlation_id          TEXT NOT NULL,
    prev_hash               TEXT NOT NULL,
    hash                    TEXT NOT NULL,
    PRIMARY KEY (tenant, seq)
);
CREATE INDEX audit_events_by_time ON audit_events (tenant, activity_date_time);

-- Append-only for anyone using the database normally; someone who drops these triggers is
-- still caught by the hash chain.
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
