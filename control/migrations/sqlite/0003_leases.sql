-- Version 3 of the control plane (sqlite): leases, so that one node at a time does a job
-- several nodes could do (the maintenance pass). Keep it the same as the other backend's
-- 0003_leases.sql.

-- `holder` has the job until `expires_at` (RFC 3339 text, like every time here); it renews
-- before then, and once the time has passed any node may take it.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
