//! `ingest` owns the agent side of a node: `POST /v1/agent/batches` with agent keys, body
//! limits and decompression, per-event validation (the rules themselves live in
//! `warehouse::validate`), reporting-level enforcement, idempotency, the write-ahead log that
//! makes a batch durable before it is acknowledged, and landing durable batches in the
//! warehouse tables. It also holds the agent-side client used by the simulator and the demo.
//!
//! It must not compute reports or serve the admin API: it only writes. It must never store
//! what a reporting level forbids — not in the tables, not in the write-ahead log.
//!
//! # Layout
//!
//! * [`batch`]: body → checked envelope → accepted rows, dropped and rejected counts (pure).
//! * [`server`]: the axum routes, the node's start (replay), shutdown.
//! * `upload`: the upload handler, from the request to the durable answer.
//! * `wal`: the write-ahead log (segments, frames, replay, group commit on one thread).
//! * `landing`: durable records → Delta commits that record how far the log has landed (and,
//!   just before, the support approvals their rows ran under marked used).
//! * `dedup`: `(tenant, deviceId, batchId)` → first answer, across restarts (a compact index in
//!   memory, the answers in day files).
//! * `requests`: the device side of support-approved requests (ask, cancel, fetch approvals)
//!   and finding the support-approved elevations whose approvals the lander marks used.
//! * [`client`]: the agent's upload with gzip and retries.
//!
//! # The path of a batch
//!
//! ```text
//! HTTP body ─ limit (compressed) ─ decompress ─ limit (decompressed) ─ UTF-8 ─ envelope
//!   ─ level + validation ─ Arrow rows ─ WAL (group fsync) ─ 200
//!                                          └─ landing buffer ─ Delta commit + txn ─ WAL segment deleted
//! ```

pub mod answer;
pub mod batch;
pub mod client;
mod dedup;
mod landing;
mod requests;
pub mod server;
mod upload;
mod wal;

pub use answer::{BatchAnswer, BatchKey, Counts};
pub use batch::UploadLimits;
pub use client::{AgentClient, ClientError};
pub use dedup::DedupError;
pub use landing::{LandingError, LandingStats};
pub use server::{ApiDoc, DEFAULT_MAX_BUFFERED_MIB, Flusher, Ingest, IngestConfig, IngestError, LandedLog, serve};
pub use wal::WalError;
