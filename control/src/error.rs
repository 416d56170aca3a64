//! The one error type of the control plane. Callers branch on three things: the caller's input
//! was wrong ([`ControlError::Invalid`], [`ControlError::UnknownKey`]), the database cannot be
//! reached right now ([`ControlError::Unavailable`]: answer `503`, retry later), or something
//! is broken that an operator must look at (the rest).

use std::path::PathBuf;

/// What can go wrong in the control plane.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// A name, kind, role or setting the user gave is not valid.
    #[error("{0}")]
    Invalid(String),
    /// The key does not exist (or belongs to another tenant).
    #[error("no key with id {0:?}; `elevation keys list` shows the ids")]
    UnknownKey(String),
    /// A field of a request body has a bad value; the message names the field.
    #[error("{field}: {message}")]
    InvalidField {
        /// The field, as the body names it.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// No elevation request (or webhook) with this id in the caller's tenant, or for the
    /// caller's device: the same answer either way, so ids cannot be probed.
    #[error("no {what} with id {id:?}")]
    NotFound {
        /// `elevation request` or `webhook`.
        what: &'static str,
        /// The id asked for.
        id: String,
    },
    /// The request is no longer in a state that allows this; the message gives its state now.
    #[error("{0}")]
    Conflict(String),
    /// The caller may not do this to this request (approving their own, say).
    #[error("{0}")]
    Refused(String),
    /// The database cannot be reached or stopped answering: nothing was changed, retry later.
    #[error("the control-plane database is unavailable: {0}")]
    Unavailable(String),
    /// The database holds migrations this binary does not know: a newer `elevation` created it.
    #[error(
        "the control-plane database has schema version(s) {unknown:?}, newer than this binary knows \
         (up to {known}); upgrade elevation on this node before starting it against that database"
    )]
    SchemaTooNew {
        /// Versions applied in the database that this binary does not have.
        unknown: Vec<i64>,
        /// The newest version this binary knows.
        known: i64,
    },
    /// A migration that was applied differs from the one this binary carries.
    #[error(
        "control-plane migration {version} in the database differs from this binary's ({description}); \
         the database was migrated by a different build"
    )]
    MigrationChanged {
        /// The migration.
        version: i64,
        /// Its description.
        description: String,
    },
    /// A migration failed; the transaction rolled back and the schema is as it was.
    #[error("control-plane migration {version} ({description}) failed, the schema is unchanged: {source}")]
    Migration {
        /// The migration.
        version: i64,
        /// Its description.
        description: String,
        /// Why.
        source: sqlx::Error,
    },
    /// The database answered with an error that is not about connectivity.
    #[error("the control-plane database failed: {0}")]
    Database(sqlx::Error),
    /// A stored value cannot be read back (a row edited by hand, or a bug).
    #[error("the control-plane database holds an unreadable value: {0}")]
    Corrupt(String),
    /// A file of the JSON-file version could not be read or renamed.
    #[error("cannot use {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

impl ControlError {
    /// Whether the database could not be reached: the caller answers `503` and retries.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, ControlError::Unavailable(_))
    }
}

impl From<sqlx::Error> for ControlError {
    fn from(e: sqlx::Error) -> ControlError {
        if is_connectivity(&e) {
            ControlError::Unavailable(e.to_string())
        } else {
            ControlError::Database(e)
        }
    }
}

/// Whether an error means "the database is not there right now" rather than "the statement
/// is wrong": lost connections, timeouts, a server shutting down or starting up.
fn is_connectivity(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_)
        | sqlx::Error::BeginFailed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            // PostgreSQL: class 08 connection exception, 57P01-57P03 shutdown and start-up.
            // SQLite: 5 busy and 6 locked past the busy timeout (another process holds the file).
            code.starts_with("08") || code.starts_with("57P") || code == "5" || code == "6"
        }
        _ => false,
    }
}
