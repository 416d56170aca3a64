//! Keeping the tables fast and lawful: compaction (in [`crate::compaction`]), retention (rows
//! older than policy deleted, then their files vacuumed from storage) and the rollup refresh
//! (each tenant-day's rollups recomputed when its raw files changed), and the memory they run
//! in.
//!
//! Retention is one Delta commit per table and tenant, a day's rollup one commit per rollup
//! table, so a reader sees them before or after, never half. Compaction and the rollup refresh
//! compute in a DataFusion session whose sorts and aggregates share one bounded memory pool
//! and spill to disk past it ([`Warehouse::with_maintenance_memory`]): compaction's memory does
//! not grow with the size of a day; the rollup refresh still holds one day's `daily_elevations`
//! rows (a day's distinct type, file, user and device combinations) while it derives the rest.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::cast;
use chrono::NaiveDate;
use deltalake::datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use deltalake::datafusion::execution::runtime_env::RuntimeEnvBuilder;
use deltalake::datafusion::prelude::{SessionConfig, SessionContext, ident, lit};
use deltalake::kernel::Action;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::protocol::DeltaOperation;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableError};
use futures::TryStreamExt;

use crate::tables::{Table, Warehouse, WarehouseError};

/// The memory maintenance computes in unless told otherwise: 512 MiB of DataFusion's sorts and
/// aggregates. The process holds more besides (the Parquet writer's open row group, Delta's
/// log, the runtime): compaction at fleet scale peaked under 1 GiB of RSS with it
/// (BENCHMARKS.md, "Compaction in bounded memory").
pub const DEFAULT_MAINTENANCE_MEMORY: usize = 512 << 20;

/// The folder of a local warehouse where maintenance spills, beside the tables: on the disk
/// that already holds the data (a system temporary folder may be memory), named so that Delta
/// readers listing the warehouse skip it.
pub const SPILL_FOLDER: &str = "_spill";

/// What a retention run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Rows deleted.
    pub rows_deleted: u64,
    /// Files deleted from storage by the vacuum.
    pub files_vacuumed: u64,
}

/// One partition's files.
#[derive(Default)]
pub(crate) struct PartitionFiles {
    pub(crate) views: Vec<deltalake::kernel::LogicalFileView>,
    pub(crate) bytes: u64,
}

pub(crate) async fn list_partitions(
    handle: &DeltaTable,
    table: Table,
) -> Result<BTreeMap<(String, String), PartitionFiles>, WarehouseError> {
    let mut partitions: BTreeMap<(String, String), PartitionFiles> = BTreeMap::new();
    let views: Vec<_> = handle
        .get_active_add_actions_by_partitions(&[])
        .try_collect()
        .await
        .map_err(delta(table))?;
    for view in views {
        let values = view.partition_values_map();
        let key = |name: &str| values.get(name).cloned().flatten().unwrap_or_default();
        let entry = partitions.entry((key("tenant"), key("eventDate"))).or_default();
        entry.bytes += view.size().max(0) as u64;
        entry.views.push(view);
    }
    Ok(partitions)
}

pub(crate) fn delta(table: Table) -> impl Fn(DeltaTableError) -> WarehouseError {
    move |source| WarehouseError::Delta {
        table: table.name(),
        source,
    }
}

pub(crate) fn datafusion(table: Table) -> impl Fn(deltalake::datafusion::error::DataFusionError) -> WarehouseError {
    move |e| WarehouseError::Delta {
        table: table.name(),
        source: DeltaTableError::from(e),
    }
}

/// What a maintenance session mostly does, which decides how many partitions it runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Work {
    /// One sort of a whole table partition (compaction): one stream, so the merge of its
    /// spilled runs may use the whole pool.
    Sort,
    /// Aggregations (the rollup refresh): a partition per 64 MiB of the pool, up to the cores.
    Aggregate,
}

impl Warehouse {
    /// A DataFusion session for maintenance: its sorts and aggregates share a pool of
    /// [`Warehouse::maintenance_memory`] bytes and, past it, write sorted runs to a temporary
    /// folder in [`SPILL_FOLDER`] of a local warehouse (the system's temporary folder for S3),
    /// deleted when the session is dropped.
    pub(crate) fn maintenance_session(&self, table: Table, work: Work) -> Result<SessionContext, WarehouseError> {
        let limit = self.maintenance_memory();
        let spill = match self.location() {
            crate::Location::Local(root) => root.join(SPILL_FOLDER),
            crate::Location::S3 { .. } => std::env::temp_dir(),
        };
        std::fs::create_dir_all(&spill).map_err(|source| WarehouseError::Spill {
            path: spill.clone(),
            source,
        })?;
        if matches!(self.location(), crate::Location::Local(_)) {
            remove_stale_spills(&spill, STALE_SPILL);
        }
        let pool = TrackConsumersPool::new(FairSpillPool::new(limit), NonZeroUsize::new(5).expect("non-zero"));
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(pool))
            .with_temp_file_path(spill)
            .build_arc()
            .map_err(datafusion(table))?;
        // The pool is shared fairly among the operators of all partitions, and one that cannot
        // hold a couple of batches fails instead of spilling: one partition per 64 MiB at most.
        // A sort keeps back a 32nd of the pool (at most DataFusion's default 10 MiB) to merge
        // its spilled runs, but the merge of many runs then takes whatever the pool has free
        // (as many runs at once as fit), so a second sort merging beside it, or the merge of
        // the sorted partitions, fails: compaction sorts in one partition ([`Work::Sort`]).
        let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        let config = SessionConfig::new()
            .with_target_partitions(match work {
                Work::Sort => 1,
                Work::Aggregate => (limit >> 26).clamp(1, cores),
            })
            .with_sort_spill_reservation_bytes((limit / 32).min(10 << 20));
        Ok(SessionContext::new_with_config_rt(config, runtime))
    }
}

/// How long a spill folder outlives its last change before a new pass removes it.
const STALE_SPILL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Removes the spill folders (`datafusion-*`) in `spill` unchanged for `stale`. DataFusion
/// removes its folder when the pass ends, but a process killed mid-pass leaves its spilled
/// runs behind, which nothing else would ever delete. A running pass writes or deletes files
/// in its folder every few seconds while it spills, so its folder is never that old. Failures
/// are logged and left for the next pass: they cost disk, never correctness.
fn remove_stale_spills(spill: &std::path::Path, stale: std::time::Duration) {
    let Ok(entries) = std::fs::read_dir(spill) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_spill = entry.file_name().to_string_lossy().starts_with("datafusion-");
        let age = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok());
        if is_spill && age.is_some_and(|age| age > stale) {
            match std::fs::remove_dir_all(&path) {
                Ok(()) => tracing::info!(path = %path.display(), "removed a spill folder a killed process left"),
                Err(error) => tracing::warn!(path = %path.display(), %error, "cannot remove a stale spill folder"),
            }
        }
    }
}

#[cfg(test)]
mod spill_tests {
    use super::*;

    #[test]
    fn only_spill_folders_unchanged_for_longer_than_the_limit_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let make = |name: &str, age_hours: u64| {
            let path = dir.path().join(name);
            std::fs::create_dir(&path).unwrap();
            std::fs::write(path.join("run-0.arrow"), b"spilled").unwrap();
            // Aged from the file system's own time (mtimes are real time, not a test clock).
            let created = std::fs::metadata(&path).unwrap().modified().unwrap();
            let when = created - std::time::Duration::from_secs(age_hours * 3600);
            std::fs::File::open(&path).unwrap().set_modified(when).unwrap();
            path
        };
        let stale = make("datafusion-old", 30);
        let fresh = make("datafusion-new", 1);
        let other = make("keep-me", 30);
        remove_stale_spills(dir.path(), STALE_SPILL);
        assert!(!stale.exists(), "a spill folder of a killed pass stays");
        assert!(fresh.exists(), "a running pass's folder was removed");
        assert!(other.exists(), "a folder that is not DataFusion's was removed");
    }
}

/// Casts a batch read back by DataFusion (which may use view or dictionary types) to the
/// table's own schema, column by column.
pub(crate) fn conform(batch: &RecordBatch, table: Table) -> Result<RecordBatch, WarehouseError> {
    let schema = table.schema();
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let column = batch
            .column_by_name(field.name())
            .ok_or_else(|| WarehouseError::Delta {
                table: table.name(),
                source: DeltaTableError::Generic(format!("column {} missing when compacting", field.name())),
            })?;
        columns.push(cast(column, field.data_type()).map_err(|e| WarehouseError::Delta {
            table: table.name(),
            source: DeltaTableError::from(e),
        })?);
    }
    RecordBatch::try_new(schema, columns).map_err(|e| WarehouseError::Delta {
        table: table.name(),
        source: DeltaTableError::from(e),
    })
}

/// The table's columns, every one cast to the table's own type. Delta hands partition columns
/// over dictionary-encoded with 16-bit keys: an aggregate that carries them along builds one
/// dictionary entry per group and fails past 65,536 rows in a partition. And the Delta scan
/// reads text as string views, whose batches share the buffers they were read into: a sort
/// that spills counts those buffers again for every batch that points into them (a 4,000-row
/// batch counted as 130 MB) and gives up, and an aggregate grouping by them emits its groups in
/// chunks, each a copy of the views and buffers left (`ByteViewGroupValueBuilder::take`: 1 GiB
/// for the fine rollup of one day of 1.3 M elevations, past the pool, in heaptrack). Plain
/// strings own their bytes, so what a sort or aggregate holds is what it counts.
pub(crate) fn plain_columns(
    df: deltalake::datafusion::dataframe::DataFrame,
    table: Table,
) -> Result<deltalake::datafusion::dataframe::DataFrame, deltalake::datafusion::error::DataFusionError> {
    let columns: Vec<_> = table
        .schema()
        .fields()
        .iter()
        .map(|field| {
            deltalake::datafusion::prelude::cast(ident(field.name()), field.data_type().clone()).alias(field.name())
        })
        .collect();
    df.select(columns)
}

impl Warehouse {
    /// Deletes the rows of `tenant` whose `eventDate` is before `keep_from`, in one commit, then
    /// erases those days' folders from storage, so the data is gone at once, and vacuums the
    /// files other commits replaced more than [`REPLACED_FILES_KEPT`] ago.
    pub async fn apply_retention(
        &self,
        table: Table,
        tenant: &str,
        keep_from: NaiveDate,
    ) -> Result<RetentionReport, WarehouseError> {
        let handle = self.load(table).await?;
        let predicate = ident("tenant")
            .eq(lit(tenant))
            .and(ident("eventDate").lt(date_literal(keep_from)));
        let (handle, metrics) = handle.delete().with_predicate(predicate).await.map_err(delta(table))?;
        if metrics.num_removed_files > 0 {
            self.checkpoint(&handle, table).await?;
        }
        let erased = erase_expired_days(&handle, table, tenant, keep_from).await?;
        let (_, vacuumed) = handle
            .vacuum()
            .with_retention_period(REPLACED_FILES_KEPT)
            .await
            .map_err(delta(table))?;
        Ok(RetentionReport {
            rows_deleted: metrics.num_deleted_rows.unwrap_or(0) as u64,
            files_vacuumed: erased + vacuumed.files_deleted.len() as u64,
        })
    }

    /// Tenants that have rows in a table (from the partition values, without reading data).
    pub async fn tenants_in(&self, table: Table) -> Result<Vec<String>, WarehouseError> {
        let handle = self.load(table).await?;
        let views: Vec<_> = handle
            .get_active_add_actions_by_partitions(&[])
            .try_collect()
            .await
            .map_err(delta(table))?;
        let mut tenants: Vec<String> = views
            .iter()
            .filter_map(|v| v.partition_values_map().get("tenant").cloned().flatten())
            .collect();
        tenants.sort();
        tenants.dedup();
        Ok(tenants)
    }
}

/// How long a file that a commit replaced (compaction's inputs, a rollup day's previous files)
/// stays in storage: Delta's default, and as long as the log keeps its versions
/// (`delta.logRetentionDuration`), so a report planned just before a maintenance pass, or a
/// compliance pack remade at the table versions it recorded, still finds every file the
/// versions it reads name. Days past retention do not wait for it ([`erase_expired_days`]).
pub const REPLACED_FILES_KEPT: chrono::Duration = chrono::Duration::days(7);

/// Deletes every file in the folders of `tenant`'s days before `keep_from` (`tenant=…/
/// eventDate=…/`), once the retention commit left none of them in the table: the day's rows
/// are gone from storage at once, those of files compaction replaced included, which the
/// vacuum would keep for [`REPLACED_FILES_KEPT`]. A file the latest version still names is
/// left alone (none should be: uploads older than the window are refused). Returns the files
/// deleted.
async fn erase_expired_days(
    handle: &DeltaTable,
    table: Table,
    tenant: &str,
    keep_from: NaiveDate,
) -> Result<u64, WarehouseError> {
    use deltalake::ObjectStore;
    use futures::StreamExt;
    let storage = |e: deltalake::ObjectStoreError| delta(table)(e.into());
    let store = handle.log_store().object_store(None);
    let active: std::collections::HashSet<String> = list_partitions(handle, table)
        .await?
        .into_iter()
        .filter(|((of, _), _)| of == tenant)
        .flat_map(|(_, files)| files.views.into_iter().map(|view| view.path().into_owned()))
        .collect();
    let tenant_folder = deltalake::Path::from(format!("tenant={tenant}"));
    let days = store.list_with_delimiter(Some(&tenant_folder)).await.map_err(storage)?;
    let mut doomed = Vec::new();
    for folder in days.common_prefixes {
        let expired = folder
            .filename()
            .and_then(|name| name.strip_prefix("eventDate="))
            .and_then(|date| NaiveDate::parse_from_str(date, "%Y-%m-%d").ok())
            .is_some_and(|date| date < keep_from);
        if !expired {
            continue;
        }
        let files: Vec<_> = store.list(Some(&folder)).try_collect().await.map_err(storage)?;
        doomed.extend(
            files
                .into_iter()
                .map(|file| file.location)
                .filter(|location| !active.contains(location.as_ref())),
        );
    }
    // One bulk request per thousand files on S3.
    let locations = futures::stream::iter(doomed.into_iter().map(Ok)).boxed();
    let erased: Vec<_> = store.delete_stream(locations).try_collect().await.map_err(storage)?;
    Ok(erased.len() as u64)
}

/// Retention for every tenant with rows, each with its own window: what `elevation serve` runs
/// on its schedule and `elevation retention` runs on demand.
///
/// The rollups are brought up to date first: once a day's raw elevations are deleted, its
/// rollups are the only record of it (reports read them for that day from then on), so they
/// must hold the day as it was last. If the refresh fails nothing is deleted.
pub async fn retention_all(
    warehouse: &Warehouse,
    retention: &(dyn Fn(&str) -> crate::Retention + Sync),
    today: NaiveDate,
) -> Result<[RetentionReport; Table::EVERY.len()], WarehouseError> {
    warehouse.refresh_rollups().await?;
    let mut reports: [RetentionReport; Table::EVERY.len()] = Default::default();
    for (slot, table) in Table::EVERY.into_iter().enumerate() {
        for tenant in warehouse.tenants_in(table).await? {
            let days = retention(&tenant).days(table);
            // A window reaching before the calendar (`user_numbers`) keeps everything.
            let Some(keep_from) = today.checked_sub_signed(chrono::Duration::days(i64::from(days))) else {
                continue;
            };
            let report = warehouse.apply_retention(table, &tenant, keep_from).await?;
            reports[slot].rows_deleted += report.rows_deleted;
            reports[slot].files_vacuumed += report.files_vacuumed;
        }
    }
    Ok(reports)
}

/// One pass of the server's maintenance schedule, in the order correctness needs: compact the
/// raw tables (compaction changes a day's files, and rollups computed from the files it
/// replaced would no longer answer reports), refresh the rollups from them, apply retention
/// (`None`: the tenants' windows are unknown, and the defaults could delete what a tenant chose
/// to keep longer, so retention waits), then compact the rollups and the number tables. A failed step is logged and retried next pass; the
/// others still run.
pub async fn scheduled_pass(
    warehouse: &Warehouse,
    retention: Option<&(dyn Fn(&str) -> crate::Retention + Sync)>,
    today: NaiveDate,
) {
    for table in Table::ALL {
        compact_logged(warehouse, table).await;
    }
    let started = std::time::Instant::now();
    let refreshed = warehouse.refresh_rollups().await;
    observed("refresh", started, refreshed.is_ok());
    match refreshed {
        Ok(report) => tracing::info!(?report, "rollups refreshed"),
        Err(e) => tracing::error!(error = %e, "rollup refresh failed; retrying next pass"),
    }
    let started = std::time::Instant::now();
    match retention {
        Some(lookup) => {
            let applied = retention_all(warehouse, lookup, today).await;
            observed("retention", started, applied.is_ok());
            match applied {
                Ok(reports) => tracing::info!(?reports, "retention applied"),
                Err(e) => tracing::error!(error = %e, "retention failed; retrying next pass"),
            }
        }
        None => {
            observed("retention", started, false);
            tracing::error!("tenant settings unavailable; retention retries next pass");
        }
    }
    // `user_numbers` and `value_numbers` gain a small file for each day with new values; a
    // compaction that overlaps a refresh makes that refresh stop and retry next pass, never
    // renumber.
    for table in Table::ROLLUPS
        .into_iter()
        .chain([Table::UserNumbers, Table::ValueNumbers])
    {
        compact_logged(warehouse, table).await;
    }
}

/// Records one step of a maintenance pass in `/metrics`: how long it took
/// (`elevation_maintenance_seconds`) and whether it failed (`elevation_maintenance_runs_total`,
/// which operators alert on: a step that keeps failing leaves reports reading raw rows).
/// The steps of a scheduled pass, as `elevation_maintenance_*{step}` names them.
const STEPS: [&str; 3] = ["compaction", "refresh", "retention"];

/// Puts every step's failure counter at zero on a node that runs maintenance, before its first
/// pass: a counter series that is born at 1 is invisible to `increase()`, so the alert on the
/// first failure of a step would never fire.
pub fn register_metrics() {
    for step in STEPS {
        metrics::counter!("elevation_maintenance_runs_total", "step" => step, "outcome" => "error").absolute(0);
    }
}

fn observed(step: &'static str, started: std::time::Instant, ok: bool) {
    metrics::histogram!("elevation_maintenance_seconds", "step" => step).record(started.elapsed().as_secs_f64());
    let outcome = if ok { "ok" } else { "error" };
    metrics::counter!("elevation_maintenance_runs_total", "step" => step, "outcome" => outcome).increment(1);
}

async fn compact_logged(warehouse: &Warehouse, table: Table) {
    let started = std::time::Instant::now();
    let compacted = warehouse.compact(table, &|_, _| {}).await;
    observed("compaction", started, compacted.is_ok());
    match compacted {
        Ok(report) => tracing::info!(table = table.name(), ?report, "compacted"),
        Err(e) => tracing::error!(table = table.name(), error = %e, "compaction failed; retrying next pass"),
    }
}

impl Warehouse {
    /// Commits actions on `handle`'s snapshot (Delta retries against newer versions and checks
    /// conflicts), syncs the commit on a local warehouse, and refreshes the handle.
    pub(crate) async fn commit_synced(
        &self,
        handle: &mut DeltaTable,
        table: Table,
        actions: Vec<Action>,
        operation: DeltaOperation,
    ) -> Result<(), WarehouseError> {
        let snapshot = handle.snapshot().map_err(delta(table))?;
        let finalized = CommitBuilder::from(CommitProperties::default())
            .with_actions(actions)
            .build(Some(snapshot), handle.log_store(), operation)
            .await
            .map_err(delta(table))?;
        if let Some(dir) = self.location().local_table_dir(table) {
            crate::tables::sync_commit(&dir, finalized.version())?;
        }
        handle.update_state().await.map_err(delta(table))
    }
}

/// The keys of a `daily_denied` row and of a `denied` report row.
pub const DENIED_KEYS: [&str; 5] = ["upn", "deviceId", "deviceName", "hash", "elevationType"];

/// The file's details `daily_denied` and `denied` keep the greatest value of.
pub const DENIED_DETAILS: [&str; 6] = [
    "fileName",
    "productName",
    "fileDescription",
    "internalName",
    "fileVersion",
    "companyName",
];

/// The denied (`deniedElevation`) and failed (`result` not 0) elevations of `events`, per the
/// `by` columns and [`DENIED_KEYS`]: the greatest [`DENIED_DETAILS`], how many (`elevations`)
/// and the last one (`lastSeen`). The rollup refresh writes this per day into `daily_denied`;
/// the `denied` report computes it over the days no rollup answers.
pub fn denials(
    events: deltalake::datafusion::dataframe::DataFrame,
    by: &[&str],
) -> Result<deltalake::datafusion::dataframe::DataFrame, deltalake::datafusion::error::DataFusionError> {
    use deltalake::datafusion::functions_aggregate::expr_fn::{count, max};
    let keys = by.iter().chain(&DENIED_KEYS).map(|c| ident(*c)).collect();
    let aggregates = DENIED_DETAILS
        .iter()
        .map(|c| max(ident(*c)).alias(*c))
        .chain([
            count(lit(1)).alias("elevations"),
            max(ident("eventDateTime")).alias("lastSeen"),
        ])
        .collect();
    events
        .filter(
            ident("elevationType")
                .eq(lit("deniedElevation"))
                .or(ident("result").not_eq(lit(0))),
        )?
        .aggregate(keys, aggregates)
}

pub(crate) fn arrow_error(table: Table) -> impl Fn(arrow::error::ArrowError) -> WarehouseError {
    move |e| WarehouseError::Delta {
        table: table.name(),
        source: DeltaTableError::from(e),
    }
}

fn group_by(columns: &[&str]) -> Vec<deltalake::datafusion::prelude::Expr> {
    columns.iter().map(|c| ident(*c)).collect()
}

pub(crate) fn date_literal(date: NaiveDate) -> deltalake::datafusion::prelude::Expr {
    lit(deltalake::datafusion::scalar::ScalarValue::Date32(Some(
        crate::rows::date32_of_date(date),
    )))
}

/// Every row of one tenant in a table registered in `ctx` under its name.
async fn tenant_rows(ctx: &SessionContext, table: Table, tenant: &str) -> Result<Vec<RecordBatch>, WarehouseError> {
    ctx.table(table.name())
        .await
        .and_then(|df| df.filter(ident("tenant").eq(lit(tenant))))
        .map_err(datafusion(table))?
        .collect()
        .await
        .map_err(datafusion(table))
}

/// What a rollup refresh did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollupReport {
    /// Tenant-days recomputed because raw rows changed.
    pub days_refreshed: usize,
    /// Rollup rows written.
    pub rows_written: u64,
}

/// A fingerprint of each `(tenant, eventDate)` partition of a table snapshot: a hash of the
/// sorted paths of its files. Delta never changes a file once written, so two snapshots with
/// the same fingerprint for a day hold exactly the same rows for it; any append, compaction or
/// deletion that touches the day changes it. Computed from the log alone, without reading data.
pub async fn partition_fingerprints(
    handle: &DeltaTable,
    table: Table,
) -> Result<BTreeMap<(String, NaiveDate), String>, WarehouseError> {
    use sha2::{Digest, Sha256};
    let mut out = BTreeMap::new();
    for ((tenant, date), files) in list_partitions(handle, table).await? {
        let Ok(date) = NaiveDate::parse_from_str(&date, "%Y-%m-%d") else {
            continue;
        };
        let mut paths: Vec<String> = files.views.iter().map(|v| v.path().into_owned()).collect();
        paths.sort();
        let mut hasher = Sha256::new();
        for path in &paths {
            hasher.update(path.as_bytes());
            hasher.update(b"\n");
        }
        out.insert((tenant, date), hex::encode(&hasher.finalize()[..16]));
    }
    Ok(out)
}

/// The `sourceFiles` fingerprint recorded in a rollup table (any but `daily_elevations` and
/// `user_numbers`, registered in `ctx` under its name) for each tenant-day, of one tenant or
/// of all, and of the days `first..=last` or of all (the bounds let Delta skip the other days'
/// files, so a short window does not read the fingerprints of years).
pub async fn recorded_fingerprints(
    ctx: &SessionContext,
    table: Table,
    tenant: Option<&str>,
    days: Option<(NaiveDate, NaiveDate)>,
) -> Result<BTreeMap<(String, NaiveDate), String>, WarehouseError> {
    let mut frame = ctx.table(table.name()).await.map_err(datafusion(table))?;
    if let Some(tenant) = tenant {
        frame = frame
            .filter(ident("tenant").eq(lit(tenant)))
            .map_err(datafusion(table))?;
    }
    if let Some((first, last)) = days {
        frame = frame
            .filter(
                ident("eventDate")
                    .gt_eq(date_literal(first))
                    .and(ident("eventDate").lt_eq(date_literal(last))),
            )
            .map_err(datafusion(table))?;
    }
    if table == Table::DailySuggestions {
        // Every row of a day carries the same fingerprint; the group rows' files alone are a
        // few percent of the day's (see `suggestion_days::day_rows`).
        frame = frame.filter(ident("userNumber").is_null()).map_err(datafusion(table))?;
    }
    let frame = frame
        .aggregate(vec![ident("tenant"), ident("eventDate"), ident("sourceFiles")], vec![])
        .map_err(datafusion(table))?;
    let mut recorded = fingerprints_of(frame, table).await?;
    for value in recorded.values_mut() {
        *value = fingerprint_recorded(table, value);
    }
    Ok(recorded)
}

/// The suffix a rollup's `sourceFiles` carries after the fingerprint when the meaning of its
/// rows changed since the table first shipped. [`recorded_fingerprints`] strips it, and
/// reports rows recorded without it (by an older release) as stale, so the next refresh
/// recomputes them and readers read those days' raw rows meanwhile.
fn rollup_format(table: Table) -> Option<&'static str> {
    match table {
        // Format 2: group rows carry `systemInitiated` (`by-application` reads them).
        Table::DailySuggestions => Some("@2"),
        _ => None,
    }
}

/// What a refresh records in `table`'s `sourceFiles` for rows computed from files with
/// `fingerprint`.
fn recorded_as(table: Table, fingerprint: &str) -> String {
    format!("{fingerprint}{}", rollup_format(table).unwrap_or_default())
}

/// The fingerprint a rollup row's `sourceFiles` vouches for: [`recorded_as`] undone, and for
/// a row recorded without its table's current format a value never equal to a fingerprint,
/// so the day is stale yet still recorded (a closed day keeps its rows whatever their format).
fn fingerprint_recorded(table: Table, recorded: &str) -> String {
    match rollup_format(table) {
        None => recorded.to_owned(),
        Some(format) => match recorded.strip_suffix(format) {
            Some(fingerprint) => fingerprint.to_owned(),
            None => format!("older format: {recorded}"),
        },
    }
}

#[cfg(test)]
mod format_tests {
    use super::*;

    #[test]
    fn rows_recorded_without_the_current_format_are_stale_and_others_current() {
        let fingerprint = "0123456789abcdef0123456789abcdef";
        for table in [Table::DailySuggestions, Table::DailyCounts, Table::DailyDenied] {
            let recorded = recorded_as(table, fingerprint);
            assert_eq!(fingerprint_recorded(table, &recorded), fingerprint, "{table:?}");
        }
        // `daily_suggestions` rows of the first format (no `systemInitiated`) carry the bare
        // fingerprint: they must be recomputed, and read raw meanwhile.
        assert_eq!(
            recorded_as(Table::DailySuggestions, fingerprint),
            format!("{fingerprint}@2")
        );
        let old = fingerprint_recorded(Table::DailySuggestions, fingerprint);
        assert_ne!(old, fingerprint);
        assert!(old.contains(fingerprint), "{old}");
    }
}

/// The tenant-days whose current `daily_counts` show no denied or failed elevation (so
/// `daily_denied` holds no row, and no fingerprint, for them), with that fingerprint.
pub async fn denial_free_days(ctx: &SessionContext) -> Result<BTreeMap<(String, NaiveDate), String>, WarehouseError> {
    use deltalake::datafusion::functions_aggregate::expr_fn::sum;
    use deltalake::datafusion::prelude::when;
    let table = Table::DailyCounts;
    let denials = when(ident("elevationType").eq(lit("deniedElevation")), ident("elevations"))
        .otherwise(ident("failed"))
        .map_err(datafusion(table))?;
    let frame = ctx
        .table(table.name())
        .await
        .and_then(|df| {
            df.aggregate(
                vec![ident("tenant"), ident("eventDate"), ident("sourceFiles")],
                vec![sum(denials).alias("denials")],
            )
        })
        .and_then(|df| df.filter(ident("denials").eq(lit(0i64))))
        .and_then(|df| df.select(vec![ident("tenant"), ident("eventDate"), ident("sourceFiles")]))
        .map_err(datafusion(table))?;
    fingerprints_of(frame, table).await
}

/// Runs `frame` (columns `tenant`, `eventDate`, `sourceFiles`) into a map.
async fn fingerprints_of(
    frame: deltalake::datafusion::dataframe::DataFrame,
    table: Table,
) -> Result<BTreeMap<(String, NaiveDate), String>, WarehouseError> {
    use arrow::array::AsArray;
    let batches = frame.collect().await.map_err(datafusion(table))?;
    let text = |column: &arrow::array::ArrayRef| {
        cast(column, &arrow::datatypes::DataType::Utf8).map_err(|e| WarehouseError::Delta {
            table: table.name(),
            source: e.into(),
        })
    };
    let mut out = BTreeMap::new();
    for batch in batches {
        let tenants = text(batch.column(0))?;
        let dates = batch.column(1).as_primitive::<arrow::datatypes::Date32Type>();
        let fingerprints = text(batch.column(2))?;
        for row in 0..batch.num_rows() {
            let date = crate::rows::date_of_date32(dates.value(row));
            out.insert(
                (tenants.as_string::<i32>().value(row).to_owned(), date),
                fingerprints.as_string::<i32>().value(row).to_owned(),
            );
        }
    }
    Ok(out)
}

impl Warehouse {
    /// Brings the rollups (`daily_elevations`, `daily_counts`, `daily_users`, `daily_devices`,
    /// `daily_user_sets` with the `user_numbers` they name, `daily_denied`, `daily_suggestions`
    /// with the `value_numbers` it names) in line with
    /// `elevations`: every tenant-day whose files changed since its rollups were computed (a
    /// different [`partition_fingerprints`] from the `sourceFiles` recorded) is recomputed from
    /// the raw rows of that same snapshot and swapped in, one commit per table. Readers check
    /// each rollup's fingerprint themselves, so those commits need not be one; new user numbers
    /// are committed before the sets that use them. Days whose raw rows retention already
    /// deleted keep their rollups.
    pub async fn refresh_rollups(&self) -> Result<RollupReport, WarehouseError> {
        use deltalake::datafusion::functions_aggregate::expr_fn::{count, max, sum};
        use deltalake::datafusion::prelude::{case, lit};
        let raw_table = Table::Elevations;
        let raw = self.load(raw_table).await?;
        let mut rollup = self.load(Table::DailyElevations).await?;
        let mut counts = self.load(Table::DailyCounts).await?;
        let mut users = self.load(Table::DailyUsers).await?;
        let mut devices = self.load(Table::DailyDevices).await?;
        let mut sets = self.load(Table::DailyUserSets).await?;
        let mut numbers = self.load(Table::UserNumbers).await?;
        let mut denied = self.load(Table::DailyDenied).await?;
        let mut suggestions = self.load(Table::DailySuggestions).await?;
        let mut value_numbers = self.load(Table::ValueNumbers).await?;
        let ctx = self.maintenance_session(raw_table, Work::Aggregate)?;
        for (table, handle) in [
            (raw_table, &raw),
            (Table::DailyCounts, &counts),
            (Table::DailyUsers, &users),
            (Table::DailyDevices, &devices),
            (Table::DailyUserSets, &sets),
            (Table::UserNumbers, &numbers),
            (Table::DailyDenied, &denied),
            (Table::DailySuggestions, &suggestions),
            (Table::ValueNumbers, &value_numbers),
        ] {
            handle.update_datafusion_session(&ctx.state()).map_err(delta(table))?;
            let provider = handle.table_provider().await.map_err(datafusion(table))?;
            ctx.register_table(table.name(), provider).map_err(datafusion(table))?;
        }
        let recorded_counts = recorded_fingerprints(&ctx, Table::DailyCounts, None, None).await?;
        let recorded_users = recorded_fingerprints(&ctx, Table::DailyUsers, None, None).await?;
        let recorded_devices = recorded_fingerprints(&ctx, Table::DailyDevices, None, None).await?;
        let recorded_sets = recorded_fingerprints(&ctx, Table::DailyUserSets, None, None).await?;
        let recorded_denied = recorded_fingerprints(&ctx, Table::DailyDenied, None, None).await?;
        let recorded_suggestions = recorded_fingerprints(&ctx, Table::DailySuggestions, None, None).await?;
        let denial_free = denial_free_days(&ctx).await?;
        // Each tenant's user numbers, read once per tenant from the snapshot this pass started
        // from. The only commits to `user_numbers` after it are this pass's own, and those add
        // numbers of tenants already read (partitions come grouped by tenant): another refresh
        // committing meanwhile makes `append_numbers` fail rather than reuse a number.
        let mut tenant_numbers: BTreeMap<String, crate::user_sets::UserNumbers> = BTreeMap::new();
        // Likewise the numbers of device ids, device names and folders (`value_numbers`).
        let mut tenant_values: BTreeMap<String, crate::suggestion_days::ValueNumbers> = BTreeMap::new();
        let mut report = RollupReport::default();
        for ((tenant, date), fingerprint) in partition_fingerprints(&raw, raw_table).await? {
            let key = (tenant.clone(), date);
            let current = |recorded: &BTreeMap<(String, NaiveDate), String>| recorded.get(&key) == Some(&fingerprint);
            let day = ctx
                .table(raw_table.name())
                .await
                .map_err(datafusion(raw_table))?
                .filter(
                    ident("tenant")
                        .eq(lit(tenant.as_str()))
                        .and(ident("eventDate").eq(date_literal(date))),
                )
                .and_then(|df| plain_columns(df, raw_table))
                .map_err(datafusion(raw_table))?;
            // A day without denials has no `daily_denied` rows to carry a fingerprint: its
            // current `daily_counts` vouch for it instead.
            let denied_current = current(&recorded_denied) || current(&denial_free);
            if current(&recorded_counts)
                && current(&recorded_users)
                && current(&recorded_devices)
                && current(&recorded_sets)
                && current(&recorded_suggestions)
                && denied_current
            {
                continue;
            }
            let failed = sum(case(ident("result").not_eq(lit(0)))
                .when(lit(true), lit(1i64))
                .otherwise(lit(0i64))
                .map_err(datafusion(raw_table))?);
            // Held in memory: `daily_users`, `daily_counts` and the user sets are sums over it,
            // computed without reading the raw rows again (devices and denials need columns it
            // lacks and read the day's raw rows).
            let fine = day
                .clone()
                .aggregate(
                    group_by(&[
                        "tenant",
                        "eventDate",
                        "elevationType",
                        "hash",
                        "fileName",
                        "companyName",
                        "upn",
                        "deviceName",
                    ]),
                    vec![count(lit(1)).alias("elevations"), failed.alias("failed")],
                )
                .map_err(datafusion(raw_table))?
                .cache()
                .await
                .map_err(datafusion(raw_table))?;
            let rows = fine.clone().collect().await.map_err(datafusion(raw_table))?;
            let derive = |group: &[&str], sums: &[&str]| {
                let sums = sums.iter().map(|c| sum(ident(*c)).alias(*c)).collect();
                fine.clone()
                    .aggregate(group_by(group), sums)?
                    .with_column("sourceFiles", lit(fingerprint.as_str()))
            };
            let per_user = derive(&["tenant", "eventDate", "upn", "elevationType"], &["elevations"])
                .map_err(datafusion(Table::DailyUsers))?
                .collect()
                .await
                .map_err(datafusion(Table::DailyUsers))?;
            let per_type = derive(&["tenant", "eventDate", "elevationType"], &["elevations", "failed"])
                .map_err(datafusion(Table::DailyCounts))?
                .collect()
                .await
                .map_err(datafusion(Table::DailyCounts))?;
            // Devices from the raw rows: the fine rollup holds neither levels nor instants.
            let per_device = day
                .clone()
                .aggregate(
                    group_by(&["tenant", "eventDate", "deviceName", "reportingLevel", "elevationType"]),
                    vec![
                        count(lit(1)).alias("elevations"),
                        max(ident("eventDateTime")).alias("lastSeen"),
                    ],
                )
                .and_then(|df| df.with_column("sourceFiles", lit(fingerprint.as_str())))
                .map_err(datafusion(Table::DailyDevices))?
                .collect()
                .await
                .map_err(datafusion(Table::DailyDevices))?;
            // Denied and failed elevations from the raw rows (the fine rollup lacks the details).
            let per_denial = denials(day.clone(), &["tenant", "eventDate"])
                .and_then(|df| df.with_column("sourceFiles", lit(fingerprint.as_str())))
                .map_err(datafusion(Table::DailyDenied))?
                .collect()
                .await
                .map_err(datafusion(Table::DailyDenied))?;
            self.replace_partition(&mut denied, Table::DailyDenied, &tenant, date, &per_denial)
                .await?;
            // The day's user sets, over numbers committed before the sets that use them.
            if !tenant_numbers.contains_key(&tenant) {
                let stored = tenant_rows(&ctx, Table::UserNumbers, &tenant).await?;
                let pairs = crate::user_sets::pairs_of(&stored).map_err(arrow_error(Table::UserNumbers))?;
                tenant_numbers.insert(tenant.clone(), crate::user_sets::UserNumbers::from_pairs(pairs));
            }
            if !tenant_values.contains_key(&tenant) {
                let stored = tenant_rows(&ctx, Table::ValueNumbers, &tenant).await?;
                let values = crate::suggestion_days::ValueNumbers::from_batches(&stored)
                    .map_err(arrow_error(Table::ValueNumbers))?;
                tenant_values.insert(tenant.clone(), values);
            }
            let tenant_users = tenant_numbers.get_mut(&tenant).expect("inserted above");
            let tenant_value_numbers = tenant_values.get_mut(&tenant).expect("inserted above");
            let day_sets =
                crate::user_sets::day_sets(&rows, tenant_users).map_err(arrow_error(Table::DailyUserSets))?;
            let per_group = crate::suggestion_days::day_rows(
                day.clone(),
                &tenant,
                date,
                &recorded_as(Table::DailySuggestions, &fingerprint),
                tenant_users,
                tenant_value_numbers,
            )
            .await
            .map_err(datafusion(Table::DailySuggestions))?;
            let new = tenant_users.take_new();
            if !new.is_empty() {
                let batch =
                    crate::user_sets::numbers_batch(&tenant, date, &new).map_err(arrow_error(Table::UserNumbers))?;
                self.append_numbers(&mut numbers, Table::UserNumbers, batch).await?;
            }
            if let Some(batch) = tenant_value_numbers
                .take_new(&tenant, date)
                .map_err(arrow_error(Table::ValueNumbers))?
            {
                self.append_numbers(&mut value_numbers, Table::ValueNumbers, batch)
                    .await?;
            }
            self.replace_partition_files(
                &mut suggestions,
                Table::DailySuggestions,
                &tenant,
                date,
                &[&per_group[..1], &per_group[1..]],
            )
            .await?;
            let sets_batch = crate::user_sets::sets_batch(&tenant, date, &day_sets, &fingerprint)
                .map_err(arrow_error(Table::DailyUserSets))?;
            self.replace_partition(&mut sets, Table::DailyUserSets, &tenant, date, &[sets_batch])
                .await?;
            report.rows_written += self
                .replace_partition(&mut rollup, Table::DailyElevations, &tenant, date, &rows)
                .await?;
            self.replace_partition(&mut devices, Table::DailyDevices, &tenant, date, &per_device)
                .await?;
            self.replace_partition(&mut users, Table::DailyUsers, &tenant, date, &per_user)
                .await?;
            self.replace_partition(&mut counts, Table::DailyCounts, &tenant, date, &per_type)
                .await?;
            report.days_refreshed += 1;
        }
        if report.days_refreshed > 0 {
            for (table, handle) in [
                (Table::DailyElevations, &rollup),
                (Table::DailyUsers, &users),
                (Table::DailyCounts, &counts),
                (Table::DailyDevices, &devices),
                (Table::DailyUserSets, &sets),
                (Table::UserNumbers, &numbers),
                (Table::DailyDenied, &denied),
                (Table::DailySuggestions, &suggestions),
                (Table::ValueNumbers, &value_numbers),
            ] {
                self.checkpoint(handle, table).await?;
            }
        }
        Ok(report)
    }

    /// Appends new numbers (`user_numbers` or `value_numbers`) in one commit that succeeds only
    /// if nobody committed to the table since `handle`'s snapshot, the one the numbers were
    /// given from: two refreshes running at once cannot give one number to two values. The
    /// loser fails and its next pass starts from the winner's numbers.
    async fn append_numbers(
        &self,
        handle: &mut DeltaTable,
        table: Table,
        batch: RecordBatch,
    ) -> Result<(), WarehouseError> {
        let mut writer = RecordBatchWriter::for_table(handle).map_err(delta(table))?;
        writer.write(batch).await.map_err(delta(table))?;
        let adds = writer.flush().await.map_err(delta(table))?;
        if let Some(dir) = self.location().local_table_dir(table) {
            crate::tables::sync_added_files(&dir, adds.iter().map(|a| a.path.as_str()))?;
        }
        let actions = adds.into_iter().map(Action::Add).collect();
        let operation = DeltaOperation::Write {
            mode: deltalake::protocol::SaveMode::Append,
            partition_by: None,
            predicate: None,
        };
        let snapshot = handle.snapshot().map_err(delta(table))?;
        let finalized = CommitBuilder::from(CommitProperties::default().with_max_retries(0))
            .with_actions(actions)
            .build(Some(snapshot), handle.log_store(), operation)
            .await
            .map_err(|e| WarehouseError::Delta {
                table: table.name(),
                source: DeltaTableError::Generic(format!(
                    "another rollup refresh numbered values since this one began, so this one stops \
                     (the next pass starts from those numbers): {e}"
                )),
            })?;
        if let Some(dir) = self.location().local_table_dir(table) {
            crate::tables::sync_commit(&dir, finalized.version())?;
        }
        handle.update_state().await.map_err(delta(table))?;
        // Another refresh committed right after this one: its numbers are not in memory here.
        if handle.version() != Some(finalized.version()) {
            return Err(WarehouseError::Delta {
                table: table.name(),
                source: DeltaTableError::Generic("another rollup refresh is numbering values; this one stops".into()),
            });
        }
        Ok(())
    }

    /// Replaces one tenant-day of a rollup table with `rows`, in one commit. Returns the rows
    /// written.
    async fn replace_partition(
        &self,
        handle: &mut DeltaTable,
        table: Table,
        tenant: &str,
        date: NaiveDate,
        rows: &[RecordBatch],
    ) -> Result<u64, WarehouseError> {
        self.replace_partition_files(handle, table, tenant, date, &[rows]).await
    }

    /// Replaces one tenant-day of a rollup table with `files` (the rows of each in files of
    /// their own, so their statistics tell them apart), in one commit. Returns the rows written.
    async fn replace_partition_files(
        &self,
        handle: &mut DeltaTable,
        table: Table,
        tenant: &str,
        date: NaiveDate,
        files: &[&[RecordBatch]],
    ) -> Result<u64, WarehouseError> {
        let old: Vec<_> = list_partitions(handle, table)
            .await?
            .remove(&(tenant.to_owned(), date.to_string()))
            .map(|p| p.views)
            .unwrap_or_default();
        let mut writer = RecordBatchWriter::for_table(handle)
            .map_err(delta(table))?
            .with_writer_properties(crate::compaction::compacted_file_properties(table));
        let mut written = 0;
        let mut adds = Vec::new();
        for rows in files {
            for batch in rows.iter() {
                if batch.num_rows() > 0 {
                    written += batch.num_rows() as u64;
                    writer.write(conform(batch, table)?).await.map_err(delta(table))?;
                }
            }
            adds.extend(writer.flush().await.map_err(delta(table))?);
        }
        if let Some(dir) = self.location().local_table_dir(table) {
            crate::tables::sync_added_files(&dir, adds.iter().map(|a| a.path.as_str()))?;
        }
        let mut actions: Vec<Action> = old.iter().map(|v| Action::Remove(v.remove_action(true))).collect();
        actions.extend(adds.into_iter().map(Action::Add));
        let operation = DeltaOperation::Write {
            mode: deltalake::protocol::SaveMode::Overwrite,
            partition_by: None,
            predicate: Some(format!("tenant = '{tenant}' AND eventDate = '{date}'")),
        };
        self.commit_synced(handle, table, actions, operation).await?;
        Ok(written)
    }
}
