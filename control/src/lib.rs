//! `control` owns the control plane of elevation: who may do what and who did what. API keys
//! (stored only as hashes), tenant settings, Intune's EPM roles and the permission table,
//! imported rules policies, sign-in sessions for the dashboards, and the tamper-evident audit
//! log — in one relational database, SQLite by default and PostgreSQL when several nodes
//! serve the same tenants. [`ControlPlane`] is the one handle servers and the CLI use.
//!
//! It must not serve HTTP (the servers map [`ControlError::Unavailable`] to `503`; the one
//! HTTP it speaks is the outbound webhook), read
//! or write the warehouse tables, or compute reports. It depends on `warehouse` only for the
//! rules-policy model and the reporting level it stores.
//!
//! # Layout
//!
//! * [`roles`]: `Role`, `Permission` and THE permission table.
//! * [`keys`]: key format, hashing, constant-time verification, `Principal`.
//! * [`tenants`]: tenant names and settings (reporting cap, retention).
//! * [`audit`]: the hash-chained audit log: append, list, verify.
//! * [`sessions`]: server-side sign-in sessions with a CSRF secret.
//! * [`batches`]: batch claims, the idempotency several ingest nodes share.
//! * [`requests`]: support-approved elevation requests, their compare-and-set transitions and
//!   their numbers.
//! * [`webhooks`]: notifications of requests (Standard Webhooks, Teams) from an outbox.
//! * [`store`]: the SQLite and PostgreSQL backends and the versioned migrations.
//! * [`json_files`]: the one-time move of `keys.json`, `tenants.json`, `rules.json`.
//! * `plane`: [`ControlPlane`], with the authentication cache.

pub mod audit;
pub mod batches;
mod error;
pub mod json_files;
pub mod keys;
pub mod leases;
mod plane;
pub mod requests;
pub mod roles;
pub mod sessions;
pub mod store;
pub mod tenants;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod webhooks;

pub use audit::{Actor, AuditContext, AuditEvent, AuditFilter, Draft, ModifiedProperty, Problem, Verification};
pub use error::ControlError;
pub use json_files::JsonMigration;
pub use keys::{KeyKind, KeyRecord, Principal};
pub use leases::LeaseKeeper;
pub use plane::{Authenticated, ControlOptions, ControlPlane};
pub use requests::{Decision, ElevationRequest, NewRequest, RequestFilter, RequestStatus};
pub use roles::{Permission, Role};
pub use sessions::Session;
pub use store::ControlDb;
pub use tenants::{SettingsChange, TenantSettings};

#[cfg(test)]
mod plane_tests;
