//! `ingest` will own the agent upload service: `POST /v1/agent/batches`, agent keys,
//! per-event validation (the rules live in `warehouse::validate`), reporting-level
//! enforcement, the write-ahead log that makes a batch durable before it is acknowledged, and
//! landing batches in the warehouse tables.
//!
//! It must not compute reports or serve the admin API; it only writes.
//!
//! Status: not built yet (issue #3). `elevation serve` says so and exits non-zero.
