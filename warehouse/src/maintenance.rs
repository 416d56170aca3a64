//! Keeping the tables fast and lawful: compaction (in [`crate::compaction`]), retention (rows
//! older than policy deleted, then their files vacuumed from storage) and the rollup refresh
//! (in [`crate::rollups`]: each tenant-day's rollups recomputed when its raw files changed),
//! the order of a scheduled pass, and the memory they run in.
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
use deltalake::datafusion::common::config::SpillCompression;
use deltalake::datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use deltalake::datafusion::execution::runtime_env::RuntimeEnvBuilder;
use deltalake::datafusion::prelude::{SessionConfig, SessionContext, ident, lit};
use deltalake::kernel::Action;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::protocol::DeltaOperation;
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
        let mut runtime = RuntimeEnvBuilder::new().with_memory_pool(Arc::new(pool));
        if let Some(disk) = SpillDisk::of(&spill, self.spill_disk_reserve()) {
            tracing::debug!(folder = %spill.display(), ?disk, "maintenance may spill {} bytes", disk.allowance());
            runtime = runtime.with_max_temp_directory_size(disk.allowance());
        }
        let runtime = runtime
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
        let mut config = SessionConfig::new()
            .with_target_partitions(match work {
                Work::Sort => 1,
                Work::Aggregate => (limit >> 26).clamp(1, cores),
            })
            .with_sort_spill_reservation_bytes((limit / 32).min(10 << 20));
        // Spilled runs are zstd-compressed Arrow IPC. Uncompressed, the sort of a day of 15.4 M
        // elevations (264 MB of Parquet) spilled 15 GiB, and a 30-minute soak's day filled the
        // disk the write-ahead log shares; zstd spills 1.8 GiB in the same time (BENCHMARKS.md,
        // "Compaction's spilled runs, compressed").
        config.options_mut().execution.spill_compression = SpillCompression::Zstd;
        Ok(SessionContext::new_with_config_rt(config, runtime))
    }
}

/// The least free disk maintenance leaves to the write-ahead log and landed files by default.
const MIN_SPILL_RESERVE: u64 = 1 << 30;

/// The free disk maintenance's spill leaves untouched unless told otherwise: 5 % of a disk of
/// `total` bytes, at least [`MIN_SPILL_RESERVE`].
pub fn default_spill_reserve(total: u64) -> u64 {
    (total / 20).max(MIN_SPILL_RESERVE)
}

/// The disk under a spill folder when a maintenance session starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SpillDisk {
    /// Bytes an unprivileged process may still write.
    pub(crate) available: u64,
    /// Bytes the spill leaves free.
    pub(crate) reserve: u64,
}

impl SpillDisk {
    /// The disk under `folder`, or `None` where it cannot be read (then DataFusion's own limit
    /// holds: 100 GB).
    pub(crate) fn of(folder: &std::path::Path, reserve: Option<u64>) -> Option<SpillDisk> {
        #[cfg(unix)]
        {
            let stats = rustix::fs::statvfs(folder)
                .inspect_err(|e| tracing::warn!(folder = %folder.display(), error = %e, "cannot read the spill folder's free disk"))
                .ok()?;
            Some(SpillDisk {
                available: stats.f_bavail.saturating_mul(stats.f_frsize),
                reserve: reserve
                    .unwrap_or_else(|| default_spill_reserve(stats.f_blocks.saturating_mul(stats.f_frsize))),
            })
        }
        #[cfg(not(unix))]
        {
            let _ = (folder, reserve);
            None
        }
    }

    /// What one session may spill: the free disk beyond the reserve.
    pub(crate) fn allowance(&self) -> u64 {
        self.available.saturating_sub(self.reserve)
    }
}

/// Whether `error` is a maintenance session's spill reaching its [`SpillDisk::allowance`]
/// (DataFusion's words: the error reaches us as text inside Delta's and DataFusion's).
pub(crate) fn spill_disk_exhausted(error: &WarehouseError) -> bool {
    error.to_string().contains("exceeded the allowable limit")
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
    // A day left for want of disk fails the step, so the alert on maintenance failures fires.
    let whole = compacted.as_ref().is_ok_and(|r| r.deferred_for_disk.is_empty());
    observed("compaction", started, whole);
    match compacted {
        Ok(report) if !whole => tracing::error!(
            table = table.name(),
            ?report,
            "compaction left days for want of disk (spill reserve); retrying next pass"
        ),
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

pub(crate) fn arrow_error(table: Table) -> impl Fn(arrow::error::ArrowError) -> WarehouseError {
    move |e| WarehouseError::Delta {
        table: table.name(),
        source: DeltaTableError::from(e),
    }
}

pub(crate) fn date_literal(date: NaiveDate) -> deltalake::datafusion::prelude::Expr {
    lit(deltalake::datafusion::scalar::ScalarValue::Date32(Some(
        crate::rows::date32_of_date(date),
    )))
}

#[cfg(test)]
mod spill_tests {
    use super::*;

    #[test]
    fn maintenance_spills_compressed_runs() {
        let dir = tempfile::tempdir().unwrap();
        let warehouse = Warehouse::new(crate::Location::Local(dir.path().to_owned()));
        for work in [Work::Sort, Work::Aggregate] {
            let session = warehouse.maintenance_session(Table::Elevations, work).unwrap();
            let compression = session.copied_config().options().execution.spill_compression;
            assert_eq!(compression, SpillCompression::Zstd, "{work:?}");
        }
    }

    #[test]
    fn maintenance_spills_no_further_than_the_free_disk_beyond_the_reserve() {
        let dir = tempfile::tempdir().unwrap();
        let spill_limit = |warehouse: Warehouse| {
            let session = warehouse.maintenance_session(Table::Elevations, Work::Sort).unwrap();
            session.runtime_env().disk_manager.max_temp_directory_size()
        };
        let local = || Warehouse::new(crate::Location::Local(dir.path().to_owned()));
        let disk = SpillDisk::of(dir.path(), None).expect("a Unix file system");
        assert!(disk.reserve >= MIN_SPILL_RESERVE, "{disk:?}");
        assert!(disk.available > 0, "{disk:?}");
        // Free disk moves while the test runs (other processes write): within 256 MiB.
        let limit = spill_limit(local());
        assert!(limit.abs_diff(disk.allowance()) < 256 << 20, "{limit} against {disk:?}");
        assert_eq!(spill_limit(local().with_spill_disk_reserve(Some(u64::MAX))), 0);
        let unreserved = spill_limit(local().with_spill_disk_reserve(Some(0)));
        assert!(
            unreserved.abs_diff(disk.available) < 256 << 20,
            "{unreserved} against {disk:?}"
        );
        assert_eq!(default_spill_reserve(100 << 30), 5 << 30);
        assert_eq!(default_spill_reserve(4 << 30), MIN_SPILL_RESERVE);
    }

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
