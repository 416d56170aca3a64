-- Version 2 of the control plane (postgres): support-approved elevation requests, the approval
-- window settings, agent keys bound to one device, and the webhook outbox. Keep it the same as
-- ../sqlite/0002_elevation_requests.sql.

-- An agent key may be bound to one device: it then speaks for that device only.
ALTER TABLE api_keys ADD COLUMN device_id TEXT;

-- Hours an approval lasts when the approver names none, the most an approver may give, and
-- how long a request waits for a decision; NULL is the default (24, 168, 48).
ALTER TABLE tenant_settings ADD COLUMN approval_hours BIGINT;
ALTER TABLE tenant_settings ADD COLUMN max_approval_hours BIGINT;
ALTER TABLE tenant_settings ADD COLUMN request_expiry_hours BIGINT;

-- A request as Graph's privilegeManagementElevationRequest has it. `status` holds what a person
-- or device decided (pending, approved, denied, revoked, cancelled); expired and completed are
-- read from the times, so expiry never waits for a job. `version` is the compare-and-set token.
CREATE TABLE elevation_requests (
    id                     TEXT PRIMARY KEY,
    tenant                 TEXT NOT NULL,
    client_request_id      TEXT NOT NULL,
    device_id              TEXT NOT NULL,
    device_name            TEXT NOT NULL,
    requested_by_upn       TEXT NOT NULL,
    request_justification  TEXT NOT NULL,
    file_hash              TEXT NOT NULL,
    file_name              TEXT NOT NULL,
    application_detail     TEXT NOT NULL,
    status                 TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'revoked', 'cancelled')),
    created_at             TEXT NOT NULL,
    last_modified_at       TEXT NOT NULL,
    request_expiry_at      TEXT NOT NULL,
    reviewed_by_upn        TEXT,
    reviewed_by_key_id     TEXT,
    reviewed_at            TEXT,
    reviewer_justification TEXT,
    approval_expiry_at     TEXT,
    revoked_by_upn         TEXT,
    revoked_at             TEXT,
    revoke_justification   TEXT,
    first_used_at          TEXT,
    last_used_at           TEXT,
    version                BIGINT NOT NULL,
    UNIQUE (tenant, device_id, client_request_id)
);
CREATE INDEX elevation_requests_by_time ON elevation_requests (tenant, created_at);
CREATE INDEX elevation_requests_by_device ON elevation_requests (tenant, device_id, file_hash);

-- Where a tenant wants to hear about requests: Standard Webhooks (signed) or a Teams workflow.
CREATE TABLE webhooks (
    id         TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL,
    url        TEXT NOT NULL,
    format     TEXT NOT NULL CHECK (format IN ('standard', 'teams')),
    secret     TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX webhooks_by_tenant ON webhooks (tenant);

-- The outbox: written in the same transaction as the change it tells of, sent by any node.
CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    tenant          TEXT NOT NULL,
    webhook_id      TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_at TEXT,
    delivered_at    TEXT,
    failed_at       TEXT,
    last_error      TEXT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at);
