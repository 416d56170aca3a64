//! The database behind the control plane: SQLite (a file in the data folder, nothing to set
//! up) or PostgreSQL (several nodes). Both run the same SQL: `$1` placeholders (SQLite reads
//! them too), text for times and JSON, 64-bit integers, `ON CONFLICT` upserts. Where they
//! differ — how a writer locks — [`Store::begin_write`] hides it.
//!
//! Every operation runs in a transaction ([`Tx`]); [`on!`](crate::on) runs one body of code on
//! either backend's connection, each arm compiled for its own database type.

pub(crate) mod migrate;
pub(crate) mod records;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool};

use crate::ControlError;

/// Where the control plane's database is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlDb {
    /// A SQLite file (created when missing).
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (`postgres://user@host:port/db`).
    Postgres(String),
}

impl ControlDb {
    /// `postgres://…` or `postgresql://…` is PostgreSQL; `sqlite:PATH` or a plain path is a
    /// SQLite file.
    pub fn parse(text: &str) -> ControlDb {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            ControlDb::Postgres(text.to_owned())
        } else {
            let path = text
                .strip_prefix("sqlite://")
                .or_else(|| text.strip_prefix("sqlite:"))
                .unwrap_or(text);
            ControlDb::Sqlite(PathBuf::from(path))
        }
    }

    /// The default: `control.db` in the data folder.
    pub fn default_in(data_dir: &Path) -> ControlDb {
        ControlDb::Sqlite(data_dir.join("control.db"))
    }

    /// The location as `--control-db` takes it (with its password: not for logs).
    pub fn as_arg(&self) -> String {
        match self {
            ControlDb::Sqlite(path) => path.display().to_string(),
            ControlDb::Postgres(url) => url.clone(),
        }
    }

    /// The location for logs and messages, without a password.
    pub fn display(&self) -> String {
        match self {
            ControlDb::Sqlite(path) => path.display().to_string(),
            ControlDb::Postgres(url) => match (url.find("://"), url.rfind('@')) {
                (Some(scheme), Some(at)) if at > scheme => {
                    let credentials = &url[scheme + 3..at];
                    let user = credentials.split(':').next().unwrap_or_default();
                    format!("{}{user}{}", &url[..scheme + 3], &url[at..])
                }
                _ => url.clone(),
            },
        }
    }
}

/// How long an admin call waits for a connection before it answers `503`: long enough for a
/// busy pool, short enough that a client is not left hanging when the database is down.
pub(crate) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// The connection pool of one backend.
#[derive(Debug, Clone)]
pub(crate) enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// An open transaction on either backend.
#[derive(Debug)]
pub(crate) enum Tx {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

/// A pooled connection outside any transaction, for one statement on the hot path: a read
/// in a transaction costs three round trips (`BEGIN`, the statement, `COMMIT`), this one.
pub(crate) enum Conn {
    Sqlite(sqlx::pool::PoolConnection<Sqlite>),
    Postgres(sqlx::pool::PoolConnection<Postgres>),
}

/// Runs `$body` with `$conn` bound to the transaction's connection (or, with `conn` first,
/// the pooled [`Conn`]'s), whichever backend it is. The body is compiled once per backend, so
/// `sqlx::query(...)` gets each database's types.
#[macro_export]
#[doc(hidden)]
macro_rules! on {
    (conn $c:expr, $conn:ident => $body:expr) => {
        match $c {
            $crate::store::Conn::Sqlite(c) => {
                let $conn: &mut ::sqlx::SqliteConnection = &mut **c;
                $body
            }
            $crate::store::Conn::Postgres(c) => {
                let $conn: &mut ::sqlx::PgConnection = &mut **c;
                $body
            }
        }
    };
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            $crate::store::Tx::Sqlite(tx) => {
                let $conn: &mut ::sqlx::SqliteConnection = &mut **tx;
                $body
            }
            $crate::store::Tx::Postgres(tx) => {
                let $conn: &mut ::sqlx::PgConnection = &mut **tx;
                $body
            }
        }
    };
}

impl Store {
    /// Connects (creating a SQLite file when missing). PostgreSQL must be reachable now: a node
    /// does not start without its control plane.
    pub(crate) async fn connect(db: &ControlDb) -> Result<Store, ControlError> {
        match db {
            ControlDb::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| ControlError::File {
                        path: dir.to_owned(),
                        message: e.to_string(),
                    })?;
                }
                // WAL lets the CLI write while a server reads; FULL makes a commit (a revoked
                // key, an audit entry) survive a power cut; the busy timeout makes a second
                // process wait for the write lock instead of failing.
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(10));
                let pool = SqlitePoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await?;
                Ok(Store::Sqlite(pool))
            }
            ControlDb::Postgres(url) => {
                let options = PgConnectOptions::from_str(url)
                    .map_err(|e| ControlError::Invalid(format!("--control-db {}: {e}", db.display())))?
                    .application_name("elevation");
                // Connections are checked before use, so a pool whose server restarted drops
                // the dead ones and reconnects by itself.
                let pool = PgPoolOptions::new()
                    .max_connections(8)
                    .min_connections(0)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .test_before_acquire(true)
                    .connect_with(options)
                    .await?;
                Ok(Store::Postgres(pool))
            }
        }
    }

    /// A transaction for reading.
    pub(crate) async fn begin_read(&self) -> Result<Tx, ControlError> {
        Ok(match self {
            Store::Sqlite(pool) => Tx::Sqlite(pool.begin().await?),
            Store::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// A connection for one statement that needs no transaction around it.
    pub(crate) async fn acquire(&self) -> Result<Conn, ControlError> {
        Ok(match self {
            Store::Sqlite(pool) => Conn::Sqlite(pool.acquire().await?),
            Store::Postgres(pool) => Conn::Postgres(pool.acquire().await?),
        })
    }

    /// A transaction that will write. SQLite takes the file's write lock at once (`BEGIN
    /// IMMEDIATE`), so two writers queue instead of one failing when it upgrades a read lock;
    /// PostgreSQL writers lock the rows they change (the audit head first, see `audit`).
    pub(crate) async fn begin_write(&self) -> Result<Tx, ControlError> {
        Ok(match self {
            Store::Sqlite(pool) => Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Store::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Which backend this is ("sqlite" or "postgres").
    pub(crate) fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Closes every connection.
    pub(crate) async fn close(&self) {
        match self {
            Store::Sqlite(pool) => pool.close().await,
            Store::Postgres(pool) => pool.close().await,
        }
    }
}

impl Tx {
    /// Commits.
    pub(crate) async fn commit(self) -> Result<(), ControlError> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }

    /// Whether this is a PostgreSQL transaction (for the one statement that differs).
    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self, Tx::Postgres(_))
    }
}

/// Times are stored as RFC 3339 text with microseconds and `Z`: fixed width, so text order is
/// time order on both backends, and readable in `sqlite3` or `psql`.
pub(crate) fn time_text(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Reads a time written by [`time_text`].
pub(crate) fn parse_time(text: &str) -> Result<chrono::DateTime<chrono::Utc>, ControlError> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.to_utc())
        .map_err(|e| ControlError::Corrupt(format!("time {text:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_and_hide_passwords() {
        assert_eq!(ControlDb::parse("sqlite:/x/c.db"), ControlDb::Sqlite("/x/c.db".into()));
        assert_eq!(ControlDb::parse("/x/c.db"), ControlDb::Sqlite("/x/c.db".into()));
        let pg = ControlDb::parse("postgres://elevation:s3cret@127.0.0.1:5432/control");
        assert_eq!(pg.display(), "postgres://elevation@127.0.0.1:5432/control");
        assert!(!pg.display().contains("s3cret"));
    }
}
