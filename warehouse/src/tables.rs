//! The warehouse on storage: Delta Lake tables — `elevations` and `diagnostics` where events
//! land, and the rollups the maintenance pass derives from them — partitioned by `tenant` and
//! `eventDate`, as Parquet (zstd for the events, LZ4 for the rollups), in a local folder or an
//! S3-compatible bucket.
//!
//! Delta's log gives what plain Parquet folders cannot: atomic commits (readers never see
//! half a landing or half a compaction), several writers on one table, and application
//! transactions (`txn`) that record how far each ingest node has landed its write-ahead log,
//! in the same commit as the data. Any Delta reader (DuckDB, Polars, Spark) sees the same
//! table.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, StructType, Transaction};
use deltalake::parquet::basic::{Compression, ZstdLevel};
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError, ObjectStore};
use tokio::sync::Mutex;
use url::Url;

use crate::schema::{self, Column, PARTITION_COLUMNS};

/// One of the warehouse's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Elevation events.
    Elevations,
    /// Diagnostic events.
    Diagnostics,
    /// Daily rollup of elevations, maintained from `elevations` by the maintenance pass.
    DailyElevations,
    /// Elevations per tenant, day and type, with the fingerprint of the raw files they were
    /// counted from: small enough to answer the trend of years in milliseconds.
    DailyCounts,
    /// Elevations per tenant, day, user and type, with the same fingerprint: what the
    /// per-user reports read for whole days.
    DailyUsers,
    /// Elevations per tenant, day, device, reporting level and type, with the same
    /// fingerprint: what the per-device reports read for whole days.
    DailyDevices,
    /// The number of each user of a tenant, for the user sets of `DailyUserSets`.
    UserNumbers,
    /// Per tenant, day, type and file, the elevations and the set of their users: what the
    /// Overview reads for whole days.
    DailyUserSets,
    /// Denied and failed elevations per tenant, day, user, device, hash and type: what the
    /// `denied` report reads for whole days.
    DailyDenied,
    /// The day's elevations as the suggestions merge them: per group the counts, extremes and
    /// sets of numbers, and each user's unmanaged elevations per file.
    DailySuggestions,
    /// The number of each device id, device name and folder of a tenant, for the sets of
    /// `DailySuggestions`.
    ValueNumbers,
}

impl Table {
    /// The two tables events land in.
    pub const ALL: [Table; 2] = [Table::Elevations, Table::Diagnostics];
    /// The tables derived from `elevations` by the maintenance pass.
    pub const ROLLUPS: [Table; 7] = [
        Table::DailyElevations,
        Table::DailyCounts,
        Table::DailyUsers,
        Table::DailyDevices,
        Table::DailyUserSets,
        Table::DailyDenied,
        Table::DailySuggestions,
    ];
    /// Every table, rollups included. The numbers (`user_numbers`, `value_numbers`) come last:
    /// a reader that opens the tables in this order sees every number the sets it opened name
    /// (numbers are committed before the sets that use them, and only ever added).
    pub const EVERY: [Table; 11] = [
        Table::Elevations,
        Table::Diagnostics,
        Table::DailyElevations,
        Table::DailyCounts,
        Table::DailyUsers,
        Table::DailyDevices,
        Table::DailyUserSets,
        Table::DailyDenied,
        Table::DailySuggestions,
        Table::UserNumbers,
        Table::ValueNumbers,
    ];

    /// The table's name (and folder).
    pub fn name(self) -> &'static str {
        match self {
            Table::Elevations => schema::ELEVATIONS,
            Table::Diagnostics => schema::DIAGNOSTICS,
            Table::DailyElevations => schema::DAILY_ELEVATIONS,
            Table::DailyCounts => schema::DAILY_COUNTS,
            Table::DailyUsers => schema::DAILY_USERS,
            Table::DailyDevices => schema::DAILY_DEVICES,
            Table::UserNumbers => schema::USER_NUMBERS,
            Table::DailyUserSets => schema::DAILY_USER_SETS,
            Table::DailyDenied => schema::DAILY_DENIED,
            Table::DailySuggestions => schema::DAILY_SUGGESTIONS,
            Table::ValueNumbers => schema::VALUE_NUMBERS,
        }
    }

    /// The columns Delta records file statistics of in this table
    /// (`delta.dataSkippingStatsColumns`): those of [`schema::has_file_statistics`]'s types,
    /// partition columns apart (their values are in the log already).
    pub fn statistics_columns(self) -> String {
        let schema = self.schema();
        let columns: Vec<&str> = schema
            .fields()
            .iter()
            .filter(|f| schema::has_file_statistics(f.data_type()) && !PARTITION_COLUMNS.contains(&f.name().as_str()))
            .map(|f| f.name().as_str())
            .collect();
        columns.join(",")
    }

    /// Its Arrow schema.
    pub fn schema(self) -> SchemaRef {
        match self {
            Table::Elevations => schema::elevation_schema(),
            Table::Diagnostics => schema::diagnostic_schema(),
            Table::DailyElevations => schema::daily_elevation_schema(),
            Table::DailyCounts => schema::daily_count_schema(),
            Table::DailyUsers => schema::daily_user_schema(),
            Table::DailyDevices => schema::daily_device_schema(),
            Table::UserNumbers => schema::user_number_schema(),
            Table::DailyUserSets => schema::daily_user_set_schema(),
            Table::DailyDenied => schema::daily_denied_schema(),
            Table::DailySuggestions => schema::daily_suggestion_schema(),
            Table::ValueNumbers => schema::value_number_schema(),
        }
    }

    /// Its documented columns.
    pub fn columns(self) -> &'static [Column] {
        match self {
            Table::Elevations => schema::ELEVATION_COLUMNS,
            Table::Diagnostics => schema::DIAGNOSTIC_COLUMNS,
            Table::DailyElevations => schema::DAILY_ELEVATION_COLUMNS,
            Table::DailyCounts => schema::DAILY_COUNT_COLUMNS,
            Table::DailyUsers => schema::DAILY_USER_COLUMNS,
            Table::DailyDevices => schema::DAILY_DEVICE_COLUMNS,
            Table::UserNumbers => schema::USER_NUMBER_COLUMNS,
            Table::DailyUserSets => schema::DAILY_USER_SET_COLUMNS,
            Table::DailyDenied => schema::DAILY_DENIED_COLUMNS,
            Table::DailySuggestions => schema::DAILY_SUGGESTION_COLUMNS,
            Table::ValueNumbers => schema::VALUE_NUMBER_COLUMNS,
        }
    }

    fn index(self) -> usize {
        match self {
            Table::Elevations => 0,
            Table::Diagnostics => 1,
            Table::DailyElevations => 2,
            Table::DailyCounts => 3,
            Table::DailyUsers => 4,
            Table::DailyDevices => 5,
            Table::UserNumbers => 6,
            Table::DailyUserSets => 7,
            Table::DailyDenied => 8,
            Table::DailySuggestions => 9,
            Table::ValueNumbers => 10,
        }
    }
}

/// What can go wrong with the tables.
#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    /// The `--warehouse` location cannot be used.
    #[error("invalid warehouse location {location:?}: {reason}")]
    Location {
        /// As given.
        location: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The Delta library failed (storage, log, commit).
    #[error("table {table}: {source}")]
    Delta {
        /// Which table.
        table: &'static str,
        /// The underlying error.
        #[source]
        source: DeltaTableError,
    },
    /// The folder maintenance spills to cannot be made.
    #[error("cannot create the spill folder {path} for maintenance: {source}")]
    Spill {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Syncing landed files to disk failed.
    #[error("cannot sync {path} to disk: {source}")]
    Sync {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Where the tables live.
#[derive(Debug, Clone)]
pub enum Location {
    /// A local folder: `<root>/elevations`, `<root>/diagnostics`.
    Local(PathBuf),
    /// An S3-compatible bucket and prefix, with the store built from the usual `AWS_*`
    /// settings (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_REGION`, `AWS_ALLOW_HTTP`).
    S3 {
        /// `s3://bucket/prefix` without the trailing slash.
        url: Url,
        /// The bucket's store, rooted at the bucket.
        store: Arc<dyn ObjectStore>,
    },
}

/// The store of one S3-compatible bucket, built from the usual `AWS_*` settings
/// (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
/// `AWS_ALLOW_HTTP`; a plain `http://` endpoint is allowed without the last), with the bounded
/// retries of [`s3_retries`]. Every process that reads the tables builds its stores this way:
/// a node, and a cluster's executors.
pub fn s3_store(bucket: &str) -> Result<Arc<dyn ObjectStore>, object_store::Error> {
    let mut builder = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_retry(s3_retries());
    if std::env::var("AWS_ENDPOINT_URL").is_ok_and(|e| e.starts_with("http://")) {
        builder = builder.with_allow_http(true);
    }
    Ok(Arc::new(builder.build()?))
}

impl Location {
    /// Parses a `--warehouse` value: `s3://bucket/prefix` or a local folder.
    pub fn parse(text: &str) -> Result<Location, WarehouseError> {
        if let Some(rest) = text.strip_prefix("s3://") {
            let fail = |reason: String| WarehouseError::Location {
                location: text.to_owned(),
                reason,
            };
            let bucket = rest.split('/').next().unwrap_or_default();
            if bucket.is_empty() {
                return Err(fail("expected s3://bucket/prefix".into()));
            }
            let store = s3_store(bucket).map_err(|e| fail(e.to_string()))?;
            Location::s3(text, store)
        } else {
            if text.contains("://") {
                return Err(WarehouseError::Location {
                    location: text.to_owned(),
                    reason: "only local folders and s3:// URLs are supported".into(),
                });
            }
            let path = std::path::absolute(text).map_err(|e| WarehouseError::Location {
                location: text.to_owned(),
                reason: e.to_string(),
            })?;
            Ok(Location::Local(path))
        }
    }

    /// A warehouse at `s3://bucket/prefix` (`text`) in `store`, a store rooted at that bucket:
    /// for callers that build the store themselves rather than from the `AWS_*` variables.
    pub fn s3(text: &str, store: Arc<dyn ObjectStore>) -> Result<Location, WarehouseError> {
        let url = Url::parse(text.trim_end_matches('/')).map_err(|e| WarehouseError::Location {
            location: text.to_owned(),
            reason: e.to_string(),
        })?;
        register_s3_log_store();
        Ok(Location::S3 { url, store })
    }

    /// The table's URL.
    pub fn table_url(&self, table: Table) -> Url {
        match self {
            Location::Local(root) => {
                Url::from_directory_path(root.join(table.name())).expect("absolute local paths make URLs")
            }
            Location::S3 { url, .. } => {
                Url::parse(&format!("{}/{}/", url.as_str().trim_end_matches('/'), table.name())).expect("valid URL")
            }
        }
    }

    /// The table's folder, for a local warehouse.
    pub fn local_table_dir(&self, table: Table) -> Option<PathBuf> {
        match self {
            Location::Local(root) => Some(root.join(table.name())),
            Location::S3 { .. } => None,
        }
    }

    /// Human-readable form for logs and the demo.
    pub fn display(&self) -> String {
        match self {
            Location::Local(root) => root.display().to_string(),
            Location::S3 { url, .. } => url.to_string(),
        }
    }
}

/// How long one request to object storage is retried before its caller hears of the failure.
/// object_store's default is three minutes, which holds a dashboard page (and a landing) that
/// long when the store is down; ten seconds of backoff (0.1 s, doubling) rides out a restart
/// of the store's front end, and beyond that a report answers `503` and the lander backs off
/// on its own, with everything acknowledged kept in the write-ahead log.
fn s3_retries() -> object_store::RetryConfig {
    object_store::RetryConfig {
        max_retries: 10,
        retry_timeout: std::time::Duration::from_secs(10),
        ..Default::default()
    }
}

/// Delta's commit protocol on S3 needs "create only if absent" for the commit files. S3 (and
/// S3-compatible stores such as MinIO or moto) offer it as conditional writes
/// (`If-None-Match: *`), which object_store uses for `PutMode::Create`; so the default log
/// store is all that is needed, without the DynamoDB lock of older S3 setups.
#[derive(Debug)]
struct ConditionalPutLogStore;

impl deltalake::logstore::LogStoreFactory for ConditionalPutLogStore {
    fn with_options(
        &self,
        prefixed_store: deltalake::logstore::ObjectStoreRef,
        root_store: deltalake::logstore::ObjectStoreRef,
        location: &Url,
        options: &deltalake::logstore::StorageConfig,
    ) -> deltalake::DeltaResult<Arc<dyn deltalake::logstore::LogStore>> {
        Ok(deltalake::logstore::default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}

fn register_s3_log_store() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        deltalake::logstore::logstore_factories().insert(
            Url::parse("s3://").expect("valid URL"),
            Arc::new(ConditionalPutLogStore),
        );
    });
}

/// What one append wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The table version the commit created.
    pub version: i64,
    /// Parquet files added.
    pub files: usize,
    /// Rows added.
    pub rows: usize,
    /// Bytes added (compressed).
    pub bytes: u64,
}

/// The two tables of one warehouse, opened once and kept current by this process's commits.
#[derive(Debug)]
pub struct Warehouse {
    location: Location,
    /// The loaded tables, one lock each: appends to one table are serialised, appends to
    /// different tables run side by side.
    tables: [Mutex<Option<DeltaTable>>; Table::EVERY.len()],
    /// The tables as readers last saw them, kept apart from the writers' handles so a report
    /// never waits for a landing to finish writing its files.
    readers: [Mutex<Option<DeltaTable>>; Table::EVERY.len()],
    /// zstd level for landed files: 1 is as fast as snappy and 1.7× smaller (pipeline.md §7).
    writer_properties: WriterProperties,
    /// Bytes compaction and the rollup refresh may sort and aggregate in before spilling.
    maintenance_memory: usize,
    /// Free disk maintenance's spill leaves untouched (`None`: [`crate::maintenance::default_spill_reserve`]).
    spill_disk_reserve: Option<u64>,
}

impl Warehouse {
    /// Opens a warehouse location; tables are created on first use.
    pub fn new(location: Location) -> Warehouse {
        let writer_properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).expect("valid level")))
            .build();
        Warehouse {
            location,
            tables: Default::default(),
            readers: Default::default(),
            writer_properties,
            maintenance_memory: crate::maintenance::DEFAULT_MAINTENANCE_MEMORY,
            spill_disk_reserve: None,
        }
    }

    /// Lets compaction and the rollup refresh sort and aggregate in `bytes` of memory (default
    /// [`DEFAULT_MAINTENANCE_MEMORY`](crate::maintenance::DEFAULT_MAINTENANCE_MEMORY)); past it
    /// they spill to disk, so a day of any size is maintained in about this much.
    pub fn with_maintenance_memory(mut self, bytes: usize) -> Warehouse {
        self.maintenance_memory = bytes;
        self
    }

    /// The bytes maintenance may sort and aggregate in.
    pub fn maintenance_memory(&self) -> usize {
        self.maintenance_memory
    }

    /// Keeps `bytes` of the spill folder's disk free while maintenance spills (`None`: 5 % of
    /// the disk, at least 1 GiB): a sort that would spill into them stops, and compaction
    /// leaves that day for a later pass, so the write-ahead log on the same disk keeps room
    /// to acknowledge uploads.
    pub fn with_spill_disk_reserve(mut self, bytes: Option<u64>) -> Warehouse {
        self.spill_disk_reserve = bytes;
        self
    }

    /// The free disk maintenance's spill leaves untouched, when set by
    /// [`Warehouse::with_spill_disk_reserve`].
    pub fn spill_disk_reserve(&self) -> Option<u64> {
        self.spill_disk_reserve
    }

    /// Where the tables live.
    pub fn location(&self) -> &Location {
        &self.location
    }

    fn builder(&self, table: Table) -> Result<DeltaTableBuilder, WarehouseError> {
        let url = self.location.table_url(table);
        let delta = |source| WarehouseError::Delta {
            table: table.name(),
            source,
        };
        let builder = DeltaTableBuilder::from_url(url.clone()).map_err(delta)?;
        Ok(match &self.location {
            Location::Local(_) => builder,
            Location::S3 { store, .. } => builder.with_storage_backend(store.clone(), url),
        })
    }

    /// Loads the latest version of a table, creating the table if it does not exist yet.
    pub async fn load(&self, table: Table) -> Result<DeltaTable, WarehouseError> {
        let delta = |source| WarehouseError::Delta {
            table: table.name(),
            source,
        };
        if let Some(dir) = self.location.local_table_dir(table) {
            std::fs::create_dir_all(&dir).map_err(|source| WarehouseError::Sync {
                path: dir.clone(),
                source,
            })?;
        }
        let mut handle = self.builder(table)?.build().map_err(delta)?;
        match handle.load().await {
            Ok(()) => return self.evolve(table, handle).await,
            Err(DeltaTableError::NotATable(_)) => {}
            Err(source) => return Err(delta(source)),
        }
        let columns: StructType = table.schema().as_ref().try_into_kernel().map_err(|e| delta(e.into()))?;
        let create = handle
            .create()
            .with_table_name(table.name())
            .with_columns(columns.fields().cloned())
            .with_partition_columns(PARTITION_COLUMNS)
            // Checkpoint often enough that loading the log stays cheap with a commit a second,
            // and keep a week of log for time travel while investigating.
            .with_configuration_property(deltalake::TableProperty::CheckpointInterval, Some("100"))
            .with_configuration_property(deltalake::TableProperty::LogRetentionDuration, Some("interval 7 days"))
            .with_configuration_property(
                deltalake::TableProperty::DataSkippingStatsColumns,
                Some(table.statistics_columns()),
            );
        let created = create.await;
        match created {
            Ok(created) => Ok(created),
            // Another writer created it first: use theirs.
            Err(_) => {
                let mut handle = self.builder(table)?.build().map_err(delta)?;
                handle.load().await.map_err(delta)?;
                Ok(handle)
            }
        }
    }

    /// The latest committed version of a table, for reading. The handle is kept between calls
    /// and only brought up to date: when nothing was committed since the last call this costs
    /// one listing of the log, instead of replaying the checkpoint and the commits after it
    /// (300 ms for a table of 6,000 files). Every call still sees every commit made before it.
    pub async fn latest(&self, table: Table) -> Result<DeltaTable, WarehouseError> {
        let mut slot = self.readers[table.index()].lock().await;
        let handle = match slot.as_mut() {
            Some(handle) => {
                handle.update_state().await.map_err(|source| WarehouseError::Delta {
                    table: table.name(),
                    source,
                })?;
                handle
            }
            None => slot.insert(self.load(table).await?),
        };
        Ok(handle.clone())
    }

    /// A table as it was at `version` (Delta time travel), for readers that must see exactly
    /// what an earlier reader saw. Fails when that version's log or files are gone.
    pub async fn at_version(
        &self,
        table: Table,
        version: deltalake::kernel::Version,
    ) -> Result<DeltaTable, WarehouseError> {
        self.builder(table)?
            .with_version(version)
            .load()
            .await
            .map_err(|source| WarehouseError::Delta {
                table: table.name(),
                source,
            })
    }

    /// Writes a checkpoint of the table's current version, so that the next process to open
    /// the table reads one Parquet file instead of replaying every commit since the last
    /// checkpoint (and, after a compaction, the removal of every file it replaced).
    pub async fn checkpoint(&self, handle: &DeltaTable, table: Table) -> Result<(), WarehouseError> {
        deltalake::checkpoints::create_checkpoint(handle, None)
            .await
            .map_err(|source| WarehouseError::Delta {
                table: table.name(),
                source,
            })?;
        if let Some(dir) = self.location.local_table_dir(table) {
            let log = dir.join("_delta_log");
            let version = handle.version().unwrap_or(0);
            for name in [
                format!("{version:020}.checkpoint.parquet"),
                "_last_checkpoint".to_owned(),
            ] {
                let path = log.join(name);
                crate::durable::sync_file(&path).map_err(|source| WarehouseError::Sync { path, source })?;
            }
        }
        Ok(())
    }

    /// Schema evolution: a column the code's schema has and the table lacks (a newer release
    /// added it) is added to the table as nullable, in one commit. Old files simply read as
    /// null in it; nothing is rewritten.
    async fn evolve(&self, table: Table, handle: DeltaTable) -> Result<DeltaTable, WarehouseError> {
        let delta = |source| WarehouseError::Delta {
            table: table.name(),
            source,
        };
        let existing = handle.snapshot().map_err(delta)?.schema();
        let wanted: StructType = table.schema().as_ref().try_into_kernel().map_err(|e| delta(e.into()))?;
        let missing: Vec<_> = wanted
            .fields()
            .filter(|f| existing.field(f.name()).is_none() && f.is_nullable())
            .cloned()
            .collect();
        let handle = if missing.is_empty() {
            handle
        } else {
            tracing::info!(table = table.name(), columns = ?missing.iter().map(|f| f.name().to_owned()).collect::<Vec<_>>(), "adding new nullable columns");
            handle.add_columns().with_fields(missing).await.map_err(delta)?
        };
        self.limit_statistics(table, handle).await
    }

    /// Has Delta record file statistics of [`Table::statistics_columns`] only in a table an older
    /// release created with statistics of every column. Files already written keep theirs.
    ///
    /// A metadata commit makes every commit other nodes have in flight on the table fail once
    /// (Delta's `MetadataChanged`; landings retry from the write-ahead log), so it is made only
    /// when the setting is missing or lacks a wanted column, and never narrows it: a setting
    /// naming the union of what two releases want is left alone by both, where "not equal"
    /// would have them rewrite each other's on every load. The setting only saves memory and
    /// parsing, so a failure to commit it (a read-only credential, another node's commit first)
    /// is logged, not returned, and the table is read as it is.
    async fn limit_statistics(&self, table: Table, handle: DeltaTable) -> Result<DeltaTable, WarehouseError> {
        let delta = |source| WarehouseError::Delta {
            table: table.name(),
            source,
        };
        let Some(setting) = statistics_setting(&handle, table).map_err(delta)? else {
            return Ok(handle);
        };
        let reload = handle.clone();
        let property = deltalake::TableProperty::DataSkippingStatsColumns.as_ref().to_owned();
        match handle
            .set_tbl_properties()
            .with_properties(HashMap::from([(property, setting)]))
            .await
        {
            Ok(updated) => {
                if let Some(dir) = self.location.local_table_dir(table)
                    && let Some(version) = updated.version()
                {
                    sync_commit(&dir, version)?;
                }
                tracing::info!(
                    table = table.name(),
                    "file statistics limited to the columns readers skip by"
                );
                Ok(updated)
            }
            Err(error) => {
                let mut handle = reload;
                handle.update_state().await.map_err(delta)?;
                // Another node committing the same setting first is the usual reason.
                if statistics_setting(&handle, table).map_err(delta)?.is_some() {
                    tracing::warn!(table = table.name(), %error, "cannot limit the table's file statistics; reading it as it is");
                }
                Ok(handle)
            }
        }
    }

    /// The last `txn` version an application (an ingest node) recorded in a table.
    pub async fn transaction_version(&self, table: Table, app_id: &str) -> Result<Option<i64>, WarehouseError> {
        let delta = |source| WarehouseError::Delta {
            table: table.name(),
            source,
        };
        let mut slot = self.tables[table.index()].lock().await;
        let handle = match slot.as_mut() {
            Some(handle) => {
                handle.update_state().await.map_err(delta)?;
                handle
            }
            None => slot.insert(self.load(table).await?),
        };
        let state = handle.snapshot().map_err(delta)?;
        state
            .transaction_version(handle.log_store().as_ref(), app_id)
            .await
            .map_err(delta)
    }

    /// Appends rows in one atomic commit, recording `(app_id, version)` as the application
    /// transaction in the same commit when given. On a local warehouse every new file and the
    /// commit itself are on disk (fsync) before this returns.
    pub async fn append(
        &self,
        table: Table,
        batches: Vec<RecordBatch>,
        transaction: Option<(&str, i64)>,
    ) -> Result<Appended, WarehouseError> {
        let delta = |source| WarehouseError::Delta {
            table: table.name(),
            source,
        };
        let mut slot = self.tables[table.index()].lock().await;
        let handle = match slot.as_mut() {
            Some(handle) => handle,
            None => slot.insert(self.load(table).await?),
        };
        let mut writer = RecordBatchWriter::for_table(handle)
            .map_err(delta)?
            .with_writer_properties(self.writer_properties.clone())
            // Large enough that a landing of a busy second is one file per partition.
            .with_target_file_size(256 * 1024 * 1024);
        let rows = batches.iter().map(RecordBatch::num_rows).sum();
        let started = std::time::Instant::now();
        for batch in batches {
            if batch.num_rows() > 0 {
                writer.write(batch).await.map_err(delta)?;
            }
        }
        let adds = writer.flush().await.map_err(delta)?;
        let encoded = started.elapsed();
        let files = adds.len();
        let bytes = adds.iter().map(|a| a.size.max(0) as u64).sum();
        if let Some(dir) = self.location.local_table_dir(table) {
            sync_added_files(&dir, adds.iter().map(|a| a.path.as_str()))?;
        }
        let synced = started.elapsed();
        let mut properties = CommitProperties::default();
        if let Some((app_id, version)) = transaction {
            properties = properties.with_application_transaction(Transaction::new(app_id, version));
        }
        // A landing is a blind append: it read nothing. Saying so with a predicate that matches
        // no file matters: without one, Delta's conflict checker assumes the append read the
        // whole table and fails it whenever a compaction or retention removed any file.
        let operation = DeltaOperation::Write {
            mode: SaveMode::Append,
            partition_by: Some(PARTITION_COLUMNS.iter().map(|c| c.to_string()).collect()),
            predicate: Some("false".to_owned()),
        };
        let snapshot = handle.snapshot().map_err(delta)?;
        let finalized = CommitBuilder::from(properties)
            .with_actions(adds.into_iter().map(Action::Add).collect())
            .build(Some(snapshot), handle.log_store(), operation)
            .await
            .map_err(delta)?;
        let version = finalized.version();
        if let Some(dir) = self.location.local_table_dir(table) {
            sync_commit(&dir, version)?;
        }
        let committed = started.elapsed();
        // Reload from the log rather than trusting the in-memory state when others may write.
        handle.update_state().await.map_err(delta)?;
        tracing::debug!(
            table = table.name(),
            rows,
            files,
            encode_ms = encoded.as_millis() as u64,
            sync_files_ms = (synced - encoded).as_millis() as u64,
            commit_ms = (committed - synced).as_millis() as u64,
            reload_ms = (started.elapsed() - committed).as_millis() as u64,
            "appended"
        );
        Ok(Appended {
            version: version as i64,
            files,
            rows,
            bytes,
        })
    }
}

/// The `delta.dataSkippingStatsColumns` a table should be given, or `None` when its setting
/// already names every column of [`Table::statistics_columns`].
fn statistics_setting(handle: &DeltaTable, table: Table) -> Result<Option<String>, DeltaTableError> {
    let property = deltalake::TableProperty::DataSkippingStatsColumns.as_ref();
    let snapshot = handle.snapshot()?;
    let current = snapshot.metadata().configuration().get(property).cloned();
    Ok(widened_columns(current.as_deref(), &table.statistics_columns()))
}

/// `current` (a comma-separated column list, or none) widened to name every column of `wanted`:
/// its own columns, then those it lacks; `None` when it lacks none. The union, so that no
/// release narrows what another asked for.
fn widened_columns(current: Option<&str>, wanted: &str) -> Option<String> {
    let current: Vec<&str> = current
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    let missing: Vec<&str> = wanted.split(',').filter(|c| !current.contains(c)).collect();
    if missing.is_empty() {
        return None;
    }
    Some([current, missing].concat().join(","))
}

/// Syncs a commit file and the log folder.
pub(crate) fn sync_commit(table_dir: &Path, version: u64) -> Result<(), WarehouseError> {
    let log = table_dir.join("_delta_log");
    let commit = log.join(format!("{version:020}.json"));
    crate::durable::sync_file(&commit).map_err(|source| WarehouseError::Sync {
        path: commit.clone(),
        source,
    })?;
    crate::durable::sync_dir(&log).map_err(|source| WarehouseError::Sync {
        path: log.clone(),
        source,
    })
}

/// Syncs each new file and every folder between it and the table root, so new partition
/// folders survive a power cut too.
pub(crate) fn sync_added_files<'a>(
    table_dir: &Path,
    relative: impl Iterator<Item = &'a str>,
) -> Result<(), WarehouseError> {
    let mut dirs = BTreeSet::new();
    for path in relative {
        let decoded = percent_decode(path);
        let full = table_dir.join(&decoded);
        crate::durable::sync_file(&full).map_err(|source| WarehouseError::Sync {
            path: full.clone(),
            source,
        })?;
        let mut dir = full.parent();
        while let Some(d) = dir {
            if !d.starts_with(table_dir) {
                break;
            }
            dirs.insert(d.to_owned());
            dir = d.parent();
        }
    }
    for dir in dirs.iter().rev() {
        crate::durable::sync_dir(dir).map_err(|source| WarehouseError::Sync {
            path: dir.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Delta stores file paths percent-encoded (partition values may hold any character).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_statistics_cover_the_columns_readers_skip_by_and_no_text() {
        let elevations = Table::Elevations.statistics_columns();
        let columns: Vec<&str> = elevations.split(',').collect();
        for kept in ["eventDateTime", "ingestedAt", "result", "systemInitiatedElevation"] {
            assert!(columns.contains(&kept), "{kept} in {elevations}");
        }
        for dropped in ["upn", "hash", "filePath", "id", "tenant", "eventDate"] {
            assert!(!columns.contains(&dropped), "{dropped} in {elevations}");
        }
        // An empty list would be no setting at all: every column's statistics again.
        for table in Table::EVERY {
            assert!(!table.statistics_columns().is_empty(), "{table:?}");
        }
    }

    #[test]
    fn a_statistics_setting_is_only_ever_widened() {
        let wanted = "eventDateTime,result";
        assert_eq!(widened_columns(None, wanted).as_deref(), Some("eventDateTime,result"));
        // Another release's column kept, ours added after it.
        assert_eq!(
            widened_columns(Some("eventDateTime, receivedAt"), wanted).as_deref(),
            Some("eventDateTime,receivedAt,result")
        );
        // A setting naming more than we want is left alone: no commit.
        assert_eq!(widened_columns(Some("result,receivedAt,eventDateTime"), wanted), None);
        assert_eq!(widened_columns(Some(wanted), wanted), None);
    }
}
