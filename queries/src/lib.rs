//! `queries` owns every question asked of the warehouse: the managed-vs-unmanaged reports
//! Intune shows, the Overview readiness tiles, rule-tuning suggestions and compliance
//! evidence, computed with DataFusion over the warehouse's Delta tables.
//!
//! It must not write to the tables; it only reads. Parameters reach DataFusion as typed
//! expressions (`col(..).eq(lit(..))`), never pasted into SQL text.
//!
//! Reports (issue #5): [`request`] parses what is asked (name, window, filters, page) from
//! `key=value` parameters, the same for the admin API and the command line; [`reports::run`]
//! answers it with DataFusion, always filtered by the tenant first; [`render`] writes the
//! answer as JSON, CSV or a table, natively or with Graph's export headers. `distinct` counts
//! the distinct users and devices per group of `by-application` and `by-publisher` exactly,
//! faster than DataFusion's `count(DISTINCT)` over strings. Whole days come from the rollups
//! while they are current (trend, by-user, by-device, diagnostics, the Overview's per-day user
//! sets, denied), the rest of a window from the raw rows: the answer is always the raw rows'.
//! Days whose raw rows retention deleted come from the rollups alone, and every answer says
//! which of them it includes and which it cannot ([`days`]).
//!
//! Suggestions (issue #6): [`suggest`] decides the rule-tuning suggestions from aggregates
//! over the tenant's elevations (whole days from the `daily_suggestions` rollup while current,
//! the rest from the raw rows) and its imported policies; [`export`] writes them as text and
//! their proposed rules as an Intune policy, EPManager CSV or our JSON.
//!
//! The `compliance` report (`monthly`) shows, per calendar month, the progress toward removing
//! local admin rights. Compliance evidence packs (issue #18) are assembled by the `compliance`
//! crate over [`pinned_session`] (tables read at recorded Delta versions) and
//! [`reports::tenant_window`].
//!
//! Every table is read through `snapshot::SnapshotTable`: the files of one Delta version as a
//! plain Parquet scan, chosen by tenant and day, skipped by each file's recorded bounds, in
//! this process and on a cluster ([`cluster`]).

mod applications;
pub mod cluster;
pub mod days;
mod denied;
mod diagnostics;
mod distinct;
pub mod export;
pub mod memory;
mod monthly;
mod numbering;
mod overview;
pub mod render;
pub mod reports;
pub mod request;
mod snapshot;
pub mod suggest;

pub use days::Coverage;
pub use memory::{default_query_memory, query_memory, set_query_memory};
pub use reports::{Cell, Report, run};
pub use request::{DiagnosticKind, Filters, Format, PARAMETERS, Parsed, Profile, Readiness, ReportName, ReportRequest};

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::error::DataFusionError;
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::prelude::{SessionContext, col, ident, lit};
use snapshot::SnapshotTable;
use warehouse::{Table, Warehouse};

/// What can go wrong answering a question.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The tables cannot be opened.
    #[error(transparent)]
    Warehouse(#[from] warehouse::WarehouseError),
    /// Delta could not build a scan of a table.
    #[error("reading table {table}: {source}")]
    Delta {
        /// Which table.
        table: &'static str,
        /// Why.
        source: warehouse::deltalake::DeltaTableError,
    },
    /// DataFusion failed.
    #[error(transparent)]
    DataFusion(DataFusionError),
    /// The query needed more memory than the process's query budget allows and could not
    /// spill (`--query-memory`); retrying later, or a shorter window, may succeed.
    #[error(
        "the query needs more memory than the query budget of {} allows ({detail}); \
         retry later, narrow the window, or raise --query-memory",
        memory::human(*budget)
    )]
    MemoryExhausted {
        /// The budget in bytes.
        budget: u64,
        /// DataFusion's words.
        detail: String,
    },
    /// No report has that name.
    #[error("{0}")]
    UnknownReport(String),
    /// A parameter is unknown or has a bad value.
    #[error("{0}")]
    BadParameter(String),
    /// Writing the answer as text failed.
    #[error("writing the report: {0}")]
    Render(String),
    /// The question cannot be sent to the cluster (`--cluster`) as asked.
    #[error("{0}")]
    Cluster(String),
}

impl From<DataFusionError> for QueryError {
    /// DataFusion's "resources exhausted", however deeply wrapped, is the memory budget.
    fn from(error: DataFusionError) -> QueryError {
        match error.find_root() {
            DataFusionError::ResourcesExhausted(detail) => QueryError::MemoryExhausted {
                budget: memory::query_memory(),
                detail: detail.clone(),
            },
            _ => QueryError::DataFusion(error),
        }
    }
}

impl QueryError {
    /// Whether the query failed because object storage could not be reached or kept failing
    /// after its retries (a store that is down, not a missing or damaged file): the error's
    /// text when it did. Such an answer is worth retrying later, so the API says `503`.
    pub fn storage_failure(&self) -> Option<String> {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(error) = cause {
            // The kernel's object store variant is not marked as its source: looked for by name.
            let store = error
                .downcast_ref::<object_store::Error>()
                .or(match error.downcast_ref() {
                    Some(delta_kernel::Error::ObjectStore(store)) => Some(store),
                    _ => None,
                });
            if let Some(store) = store {
                return match store {
                    object_store::Error::NotFound { .. } => None,
                    other => Some(other.to_string()),
                };
            }
            cause = error.source();
        }
        None
    }
}

/// A DataFusion session with every table registered at its latest committed version.
///
/// Every call brings the tables up to their latest version ([`Warehouse::latest`]), so a
/// query sees every commit made before it started — including the last half second of landed
/// uploads. (The scan reads the files the Delta log lists at that version, never a listing of
/// storage, so no cache of listed files hides new ones.)
pub async fn session(warehouse: &Warehouse) -> Result<SessionContext, QueryError> {
    Ok(open(warehouse, None).await?.ctx)
}

/// A session and the table snapshots registered in it, for questions that look at a table's
/// files (which rollup days are current) as well as its rows.
pub(crate) struct Opened {
    pub(crate) ctx: SessionContext,
    /// `elevations` as registered in `ctx`.
    pub(crate) elevations: warehouse::deltalake::DeltaTable,
}

/// Opens every table; `tenant` says whose rows the session will read (on a cluster only that
/// tenant's files are listed), `None` everyone's.
pub(crate) async fn open(warehouse: &Warehouse, tenant: Option<&str>) -> Result<Opened, QueryError> {
    let ctx = new_context().await?;
    let mut elevations = None;
    // In `EVERY`'s order: `user_numbers` after `daily_user_sets`, so every number a set names
    // is known.
    for table in Table::EVERY {
        let delta = warehouse.latest(table).await?;
        register(&ctx, table, &delta, tenant).await?;
        if table == Table::Elevations {
            elevations = Some(delta);
        }
    }
    let elevations = elevations.expect("Table::EVERY holds elevations");
    Ok(Opened { ctx, elevations })
}

/// A session on this process's query memory, or on the cluster when one is set (`--cluster`).
async fn new_context() -> Result<SessionContext, QueryError> {
    match cluster::cluster() {
        Some(url) => cluster::remote_session(url).await,
        None => Ok(memory::new_session()),
    }
}

/// Registers one table snapshot in a session under the table's name: the snapshot's files as a
/// plain Parquet scan ([`SnapshotTable`]), here or on a cluster; in this process Delta's own
/// scan for a table a plain reader would read wrongly (none the warehouse writes).
async fn register(
    ctx: &SessionContext,
    table: Table,
    delta: &warehouse::deltalake::DeltaTable,
    tenant: Option<&str>,
) -> Result<(), QueryError> {
    if cluster::cluster().is_some() {
        ctx.register_table(table.name(), Arc::new(SnapshotTable::of(delta, table, tenant).await?))?;
        return Ok(());
    }
    let failed = |source| QueryError::Delta {
        table: table.name(),
        source,
    };
    // The table's object store, under the table's address, for either scan.
    delta.update_datafusion_session(&ctx.state()).map_err(failed)?;
    match SnapshotTable::readable(delta, table, tenant).await? {
        Some(snapshot) => ctx.register_table(table.name(), Arc::new(snapshot))?,
        // The provider's errors are DataFusion errors.
        None => ctx.register_table(table.name(), delta.table_provider().await?)?,
    };
    Ok(())
}

/// A session over some tables, each pinned to one Delta version: `Some(v)` reads the table as
/// it was at version `v` (time travel), `None` at its latest version. Answers the versions
/// read, so a later reader can ask for exactly the same rows (a compliance pack re-made from
/// its manifest). Fails when a version's log or files are gone (the log is kept 7 days after
/// a checkpoint; a retention pass vacuums the files of older versions). With `tenant`, the
/// session reads that tenant's rows only (on a cluster only its files are listed).
pub async fn pinned_session(
    warehouse: &Warehouse,
    tables: &[(Table, Option<u64>)],
    tenant: Option<&str>,
) -> Result<(SessionContext, Vec<(Table, u64)>), QueryError> {
    let ctx = new_context().await?;
    let mut versions = Vec::with_capacity(tables.len());
    for &(table, version) in tables {
        let delta = match version {
            Some(version) => warehouse.at_version(table, version).await?,
            None => warehouse.latest(table).await?,
        };
        register(&ctx, table, &delta, tenant).await?;
        versions.push((table, delta.version().unwrap_or(0)));
    }
    Ok((ctx, versions))
}

/// Rows landed for one tenant: elevations per `elevationType`, and diagnostics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LandedCounts {
    /// Elevation rows per elevation type.
    pub elevations_by_type: BTreeMap<String, u64>,
    /// Diagnostic rows.
    pub diagnostics: u64,
}

impl LandedCounts {
    /// All elevation rows.
    pub fn elevations(&self) -> u64 {
        self.elevations_by_type.values().sum()
    }

    /// Elevation rows of every type but `unmanagedElevation`.
    pub fn managed(&self) -> u64 {
        self.elevations() - self.unmanaged()
    }

    /// `unmanagedElevation` rows.
    pub fn unmanaged(&self) -> u64 {
        self.elevations_by_type.get("unmanagedElevation").copied().unwrap_or(0)
    }
}

/// Counts a tenant's landed rows.
pub async fn landed_counts(warehouse: &Warehouse, tenant: &str) -> Result<LandedCounts, QueryError> {
    let ctx = session(warehouse).await?;
    let mut counts = LandedCounts::default();
    let by_type = ctx
        .table(Table::Elevations.name())
        .await?
        .filter(col("tenant").eq(lit(tenant)))?
        .aggregate(vec![ident("elevationType")], vec![count(lit(1)).alias("n")])?
        .collect()
        .await?;
    for batch in by_type {
        // Delta scans may hand strings over as Utf8View; read both the same way.
        let types = cast(batch.column(0), &DataType::Utf8).map_err(DataFusionError::from)?;
        let types = types.as_string::<i32>();
        let n = batch.column(1).as_primitive::<Int64Type>();
        for row in 0..batch.num_rows() {
            if !types.is_null(row) {
                counts
                    .elevations_by_type
                    .insert(types.value(row).to_owned(), n.value(row) as u64);
            }
        }
    }
    let diagnostics = ctx
        .table(Table::Diagnostics.name())
        .await?
        .filter(col("tenant").eq(lit(tenant)))?
        .count()
        .await?;
    counts.diagnostics = diagnostics as u64;
    Ok(counts)
}
