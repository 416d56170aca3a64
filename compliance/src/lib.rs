//! `compliance` owns compliance evidence packs (issue #18): one folder per tenant and period
//! that says what happened (every elevation with the AU-3 content, privileged use per user,
//! coverage of the fleet, retention), what it means for the controls auditors ask about (a NIST
//! OSCAL assessment-results document and a printable summary), and proves it was not edited
//! (a manifest with the SHA-256 of every file, signed with Ed25519 as a DSSE envelope and as
//! minisign signatures). [`verify`] checks a pack offline; [`archive`] hands it out as one
//! `.tar.gz`.
//!
//! It must not write to the tables or decide who may ask for a pack: it reads the warehouse
//! through `queries` (pinned to Delta versions, so a pack can be re-made byte for byte) and
//! takes the tenant's settings from its caller. It knows nothing of HTTP, the control plane or
//! the command line.
//!
//! # Layout
//!
//! * [`keys`]: the signing key (created once, kept in the data folder, mode 0600) and its
//!   public half in minisign's format.
//! * [`sign`]: DSSE envelopes and minisign signatures, made and checked.
//! * `read`: the period's rows and aggregates, from DataFusion at pinned table versions.
//! * `files`: the CSV, Parquet and JSON files of the pack.
//! * `oscal`, `summary`: the assessment results and the printable page.
//! * [`manifest`]: the manifest, canonical JSON and `SHA256SUMS`.
//! * [`pack`](mod@pack): assembling a pack in a temporary folder and renaming it into place.
//! * [`verify`](mod@verify): every hash, the file list and the signatures of a pack.

pub mod archive;
mod facts;
mod files;
pub mod keys;
pub mod manifest;
mod oscal;
pub mod pack;
mod read;
pub mod sign;
mod summary;
pub mod verify;

use std::path::PathBuf;

use chrono::{DateTime, Utc};

pub use files::SupportRequest;
pub use keys::{PackKey, PublicKey};
pub use manifest::Manifest;
pub use pack::{PackRequest, PackSummary, pack, pack_archive};
pub use verify::{Verification, verify};

/// What can go wrong making or checking a pack.
#[derive(Debug, thiserror::Error)]
pub enum ComplianceError {
    /// `from` is not before `to`.
    #[error("the period is empty: from {from} is not before to {to}; give --from earlier than --to")]
    EmptyPeriod {
        /// As given.
        from: DateTime<Utc>,
        /// As given.
        to: DateTime<Utc>,
    },
    /// The tenant has no keys and no data.
    #[error("unknown tenant {0:?}: it has no keys and no data in the warehouse; check --tenant")]
    UnknownTenant(String),
    /// The output folder exists and holds files.
    #[error("{0} exists and is not empty; give a new folder for the pack")]
    OutputNotEmpty(PathBuf),
    /// No signing key in the data folder.
    #[error("no signing key at {0}; create one with `elevation compliance keygen`")]
    NoSigningKey(PathBuf),
    /// `keygen` would overwrite a key.
    #[error(
        "a signing key already exists at {0}; packs signed with it are verified with its public key \
         (`elevation compliance public-key`); move it away first to make a new one"
    )]
    KeyExists(PathBuf),
    /// A key file cannot be used.
    #[error("{path}: {reason}")]
    BadKey {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A manifest or the versions asked for cannot be used.
    #[error("{0}")]
    BadManifest(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Writing a file of the pack failed.
    #[error("writing {file}: {reason}")]
    Write {
        /// The pack's file.
        file: &'static str,
        /// Why.
        reason: String,
    },
    /// The tables could not be read.
    #[error(transparent)]
    Query(Box<queries::QueryError>),
    /// Arrow failed converting or joining the rows.
    #[error("reading the rows: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    /// DataFusion failed while reading the rows.
    #[error("reading the tables: {0}")]
    DataFusion(Box<datafusion::error::DataFusionError>),
}

impl From<queries::QueryError> for ComplianceError {
    fn from(e: queries::QueryError) -> ComplianceError {
        ComplianceError::Query(Box::new(e))
    }
}

impl From<datafusion::error::DataFusionError> for ComplianceError {
    /// The query memory budget running out is the queries' error (a `503`, not a failure).
    fn from(e: datafusion::error::DataFusionError) -> ComplianceError {
        match queries::QueryError::from(e) {
            queries::QueryError::DataFusion(e) => ComplianceError::DataFusion(Box::new(e)),
            other => ComplianceError::Query(Box::new(other)),
        }
    }
}

impl ComplianceError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ComplianceError {
        let path = path.into();
        move |source| ComplianceError::Io { path, source }
    }

    pub(crate) fn write(file: &'static str) -> impl FnOnce(String) -> ComplianceError {
        move |reason| ComplianceError::Write { file, reason }
    }
}

/// The generator named in every manifest.
pub const GENERATOR: &str = concat!("elevation ", env!("CARGO_PKG_VERSION"));
