-- Version 4 of the control plane (postgres): which node stored each recent batch, so that a retry
-- landing on another ingest node is still a duplicate (issue #20). Keep it the same as the
-- other backend's 0004_batch_claims.sql.

-- A row is written by the node that lands the batch, in the same landing as its rows, with
-- the answer the agent was given (JSON); the first node to claim a batch lands it and every
-- other node drops its copy. Rows older than the idempotency window are deleted.
CREATE TABLE batch_claims (
    tenant      TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    batch_id    TEXT NOT NULL,
    node        TEXT NOT NULL,
    answer      TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (tenant, device_id, batch_id)
);
CREATE INDEX batch_claims_by_age ON batch_claims (received_at);
