//! Schema migrations, versioned in `control/migrations/{sqlite,postgres}` and embedded in the
//! binary. On start every migration the database lacks is applied, all of them in ONE
//! transaction: both SQLite and PostgreSQL roll DDL back, so a migration that fails leaves the
//! schema exactly as it was. A database that holds a version this binary does not know was
//! migrated by a newer `elevation`, and the node refuses to start against it.
//!
//! Why not `sqlx::migrate!`: it needs sqlx's macro crates (another build of sqlx for the host)
//! and runs each migration in its own transaction; this is forty lines with the behaviour we
//! need, and the test can hand it a deliberately broken migration set.

use sha2::{Digest, Sha256};

use super::{Store, time_text};
use crate::ControlError;

/// One migration: a version, what it does, and its SQL (several statements).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Migration {
    /// Increasing version number.
    pub(crate) version: i64,
    /// What it changes.
    pub(crate) description: &'static str,
    /// The statements.
    pub(crate) sql: &'static str,
}

/// The SQLite migrations, in order.
pub(crate) const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        description: "keys, tenant settings, rules policies, sign-in sessions, audit log",
        sql: include_str!("../../migrations/sqlite/0001_control_plane.sql"),
    },
    Migration {
        version: 2,
        description: "elevation requests, approval windows, device-bound agent keys, webhook outbox",
        sql: include_str!("../../migrations/sqlite/0002_elevation_requests.sql"),
    },
    Migration {
        version: 3,
        description: "leases: one node at a time for the maintenance pass",
        sql: include_str!("../../migrations/sqlite/0003_leases.sql"),
    },
    Migration {
        version: 4,
        description: "batch claims: a retry on another ingest node is still a duplicate",
        sql: include_str!("../../migrations/sqlite/0004_batch_claims.sql"),
    },
];

/// The PostgreSQL migrations, in order (the same versions as SQLite's).
pub(crate) const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        description: "keys, tenant settings, rules policies, sign-in sessions, audit log",
        sql: include_str!("../../migrations/postgres/0001_control_plane.sql"),
    },
    Migration {
        version: 2,
        description: "elevation requests, approval windows, device-bound agent keys, webhook outbox",
        sql: include_str!("../../migrations/postgres/0002_elevation_requests.sql"),
    },
    Migration {
        version: 3,
        description: "leases: one node at a time for the maintenance pass",
        sql: include_str!("../../migrations/postgres/0003_leases.sql"),
    },
    Migration {
        version: 4,
        description: "batch claims: a retry on another ingest node is still a duplicate",
        sql: include_str!("../../migrations/postgres/0004_batch_claims.sql"),
    },
];

/// Serialises nodes migrating one PostgreSQL database at the same time.
const MIGRATION_LOCK: i64 = 0x656c_6576_6174_6531; // "elevate1"

impl Store {
    /// The migrations this binary carries for this backend.
    pub(crate) fn migrations(&self) -> &'static [Migration] {
        match self {
            Store::Sqlite(_) => SQLITE,
            Store::Postgres(_) => POSTGRES,
        }
    }

    /// Applies `migrations` the database lacks, in one transaction. Returns the versions
    /// applied now.
    pub(crate) async fn migrate_with(&self, migrations: &[Migration]) -> Result<Vec<i64>, ControlError> {
        let mut tx = self.begin_write().await?;
        let applied: Vec<(i64, String)> = crate::on!(&mut tx, conn => {
            if let Store::Postgres(_) = self {
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(MIGRATION_LOCK).execute(&mut *conn).await?;
            }
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS control_migrations (version BIGINT PRIMARY KEY, \
                 description TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TEXT NOT NULL)",
            )
            .execute(&mut *conn)
            .await?;
            sqlx::query_as("SELECT version, checksum FROM control_migrations ORDER BY version")
                .fetch_all(&mut *conn)
                .await?
        });
        let known = migrations.last().map_or(0, |m| m.version);
        let unknown: Vec<i64> = applied
            .iter()
            .map(|(v, _)| *v)
            .filter(|v| !migrations.iter().any(|m| m.version == *v))
            .collect();
        if !unknown.is_empty() {
            return Err(ControlError::SchemaTooNew { unknown, known });
        }
        let mut now_applied = Vec::new();
        for migration in migrations {
            let checksum = hex::encode(Sha256::digest(migration.sql.as_bytes()));
            if let Some((_, stored)) = applied.iter().find(|(v, _)| *v == migration.version) {
                if *stored != checksum {
                    return Err(ControlError::MigrationChanged {
                        version: migration.version,
                        description: migration.description.to_owned(),
                    });
                }
                continue;
            }
            let failed = |source| ControlError::Migration {
                version: migration.version,
                description: migration.description.to_owned(),
                source,
            };
            let at = time_text(warehouse::Clock::now(&warehouse::SystemClock));
            crate::on!(&mut tx, conn => {
                sqlx::raw_sql(migration.sql).execute(&mut *conn).await.map_err(failed)?;
                sqlx::query(
                    "INSERT INTO control_migrations (version, description, checksum, applied_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(migration.version)
                .bind(migration.description)
                .bind(&checksum)
                .bind(&at)
                .execute(&mut *conn)
                .await
                .map_err(failed)?;
            });
            now_applied.push(migration.version);
        }
        tx.commit().await?;
        Ok(now_applied)
    }
}
