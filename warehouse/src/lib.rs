//! `warehouse` owns the data of elevation: the event model every other crate speaks,
//! the rules that decide whether an event is valid and whether a device's reporting level
//! lets it through, and the Arrow schemas of the open tables the events land in.
//!
//! It also owns where the events end up: the Delta Lake tables (`tables`), the rows written
//! to them (`rows`) and their maintenance.
//!
//! It must not know about HTTP (that is `ingest`), about reports and SQL (that is
//! `queries`), or about keys, tenants' settings and who may do what (that is `control`).
//! Everything here is plain data and pure functions over it, so the same rules hold whether
//! an event arrives over the network, from the simulator, or from a test.
//!
//! # Layout
//!
//! * [`model`]: elevation and diagnostic events with Microsoft Graph's field names and enum
//!   values, and the agent's upload batch.
//! * [`levels`]: what each reporting level (`none`, `diagnostic`, `managed`, `all`) lets through.
//! * [`validate`]: turns one raw JSON event into a normalised event, or a rejection naming the
//!   field and the reason.
//! * [`schema`]: the Arrow schemas of the raw tables (`elevations`, `diagnostics`) and the
//!   rollups derived from them, column by column.
//! * [`rows`]: events to Arrow record batches, stamped with their batch's context.
//! * [`tables`]: the Delta tables on a local folder or S3, atomic appends with the ingest
//!   node's progress recorded in the same commit.
//! * [`compaction`]: many small landed files → few large sorted ones, duplicate ids removed,
//!   streamed through a bounded memory pool that spills to disk.
//! * [`maintenance`]: retention, the rollup refresh (each tenant-day recomputed when its raw
//!   files changed) and the bounded memory maintenance runs in.
//! * [`user_sets`]: user numbers and per-day sets of users as compressed bitmaps, so distinct
//!   users over any window are a union of days.
//! * [`suggestion_days`]: the elevations as the rule-tuning suggestions read them, per day and
//!   group, with their sets as bitmaps of numbers (`value_numbers`), so any window is a merge
//!   of days.
//! * [`retention`]: how long each table keeps a tenant's rows.
//! * [`policy`]: Intune's elevation rules and rules policies, and their settings-catalog JSON.
//! * [`clock`]: the injected clock, so validation windows are testable.
//! * [`background`]: the lower-priority runtime that landing, maintenance and upload parsing
//!   run on, so reports keep their share of the CPU.

#[macro_use]
mod macros;

pub mod background;
pub mod clock;
pub mod columns;
pub mod compaction;
pub mod durable;
pub mod levels;
pub mod maintenance;
pub mod model;
pub mod policy;
pub mod retention;
pub mod rollups;
pub mod rows;
pub mod schema;
pub mod suggestion_days;
pub mod tables;
pub mod user_sets;
pub mod validate;

pub use clock::{Clock, FixedClock, ManualClock, SystemClock};
pub use levels::ReportingLevel;
pub use model::{
    AgentBatch, DiagnosticEvent, ElevationEvent, ElevationType, ProcessType, UnknownValue, UserType, file_name_of,
};
pub use retention::Retention;
pub use rows::BatchContext;
pub use tables::{Location, Table, Warehouse, WarehouseError};
pub use validate::{EventKind, Limits, Rejection, ValidationContext};

/// Re-exported so that readers (`queries`) use exactly the Delta and Arrow versions the
/// warehouse writes with.
pub use deltalake;
