//! Compaction: the many small files landing leaves in a `(tenant, eventDate)` partition become
//! a few large zstd files sorted by [`compaction_order`], duplicate event ids removed, swapped
//! in with one Delta commit per partition, so a reader sees the partition before or after,
//! never half of it. Compaction removes exactly the files it read: a landing that adds a file
//! to the same partition meanwhile keeps its file, and its rows are compacted next time.
//!
//! A partition is never whole in memory, whatever its size. DataFusion sorts it (and ranks the
//! copies of each event id, when the partition holds a duplicate) under the warehouse's
//! maintenance memory pool ([`Warehouse::with_maintenance_memory`]) and writes sorted runs to
//! disk past it; the merged, sorted stream goes batch by batch to the Parquet writer, which
//! uploads each file as it grows. Holding the partition, as compaction once did, took 9.75 GB
//! at 450,000 elevations a day (BENCHMARKS.md).

use std::collections::HashMap;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::DataType;
use arrow::error::ArrowError;
use deltalake::datafusion::dataframe::DataFrame;
use deltalake::datafusion::prelude::{ident, lit};
use deltalake::kernel::Action;
use deltalake::parquet::basic::{Compression, ZstdLevel};
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::parquet::schema::types::ColumnPath;
use deltalake::protocol::DeltaOperation;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableError};
use futures::TryStreamExt;

use crate::maintenance::{
    PartitionFiles, arrow_error, conform, datafusion, date_literal, delta, list_partitions, plain_columns,
};
use crate::tables::{Table, Warehouse, WarehouseError};

/// Files are written up to this size. 128 MiB: large enough that a year of a 20,000-device
/// tenant is a few files per day, small enough that one file is read by one core in well
/// under a second and a partition rewrite stays cheap.
pub const TARGET_FILE_BYTES: usize = 128 << 20;

/// Rows per Parquet row group of a compacted file.
const ROW_GROUP_ROWS: usize = 1 << 20;

/// What a compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionReport {
    /// Partitions rewritten.
    pub partitions: usize,
    /// Partitions skipped because a concurrent writer won a conflicting commit (retried next
    /// time; nothing lost).
    pub conflicts: usize,
    /// Files before, in the rewritten partitions.
    pub files_before: usize,
    /// Files after.
    pub files_after: usize,
    /// Rows read.
    pub rows_before: u64,
    /// Rows written.
    pub rows_after: u64,
    /// Bytes before, in the rewritten partitions.
    pub bytes_before: u64,
    /// Bytes after.
    pub bytes_after: u64,
    /// Partitions (tenant, day) left as they were because their sort would have spilled into
    /// the free disk kept for the write-ahead log ([`Warehouse::with_spill_disk_reserve`]):
    /// retried next pass, nothing lost; reports read their small files meanwhile.
    pub deferred_for_disk: Vec<(String, String)>,
}

/// What rewriting one partition did.
struct Rewritten {
    rows_before: u64,
    rows_after: u64,
    files_after: usize,
    bytes_after: u64,
}

/// Whether a partition of files of these sizes is worth rewriting: when at least two of them
/// are below three quarters of [`TARGET_FILE_BYTES`]. A compacted partition is files of the
/// target size and one smaller tail, so it is left alone until landings add small files
/// again; "more than one file" rewrote every day larger than one file (≈ 2 M elevations)
/// on every pass, changing its fingerprint and so recomputing its rollups each time.
pub(crate) fn needs_compaction(sizes: impl IntoIterator<Item = i64>) -> bool {
    let small = (TARGET_FILE_BYTES / 4 * 3) as i64;
    sizes.into_iter().filter(|size| *size < small).count() > 1
}

impl Warehouse {
    /// Compacts every partition of `table` that holds small files ([`needs_compaction`]): reads it, drops
    /// duplicate event ids (elevations), sorts by [`compaction_order`], writes large zstd files
    /// and swaps them in with one commit per partition, in the memory
    /// [`Warehouse::with_maintenance_memory`] allows. `progress(done, total)` is called after
    /// each partition.
    pub async fn compact(
        &self,
        table: Table,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<CompactionReport, WarehouseError> {
        let mut handle = self.load(table).await?;
        let partitions = list_partitions(&handle, table).await?;
        let todo: Vec<_> = partitions
            .into_iter()
            .filter(|(_, files)| needs_compaction(files.views.iter().map(|v| v.size())))
            .collect();
        let total = todo.len();
        let mut report = CompactionReport::default();
        for (done, ((tenant, date), _)) in todo.into_iter().enumerate() {
            // List the partition again from the newest snapshot, and read that same snapshot:
            // the rows rewritten are exactly the rows of the files removed.
            handle.update_state().await.map_err(delta(table))?;
            let mut current = list_partitions(&handle, table).await?;
            let Some(files) = current
                .remove(&(tenant.clone(), date.clone()))
                .filter(|f| needs_compaction(f.views.iter().map(|v| v.size())))
            else {
                progress(done + 1, total);
                continue;
            };
            match self.compact_partition(&mut handle, table, &tenant, &date, &files).await {
                Ok(rewritten) => {
                    report.partitions += 1;
                    report.files_before += files.views.len();
                    report.files_after += rewritten.files_after;
                    report.rows_before += rewritten.rows_before;
                    report.rows_after += rewritten.rows_after;
                    report.bytes_before += files.bytes;
                    report.bytes_after += rewritten.bytes_after;
                }
                Err(WarehouseError::Delta {
                    source: DeltaTableError::Transaction { source },
                    ..
                }) => {
                    tracing::info!(%tenant, %date, error = %source, "compaction lost a race; retrying next run");
                    report.conflicts += 1;
                    handle.update_state().await.map_err(delta(table))?;
                }
                // The other days may still fit: only this one waits for disk.
                Err(e) if crate::maintenance::spill_disk_exhausted(&e) => {
                    tracing::warn!(%tenant, %date, error = %e, "compaction would fill the spill folder's disk; day left for a later pass");
                    report.deferred_for_disk.push((tenant, date));
                }
                Err(e) => return Err(e),
            }
            progress(done + 1, total);
        }
        if report.partitions > 0 {
            handle.update_state().await.map_err(delta(table))?;
            self.checkpoint(&handle, table).await?;
        }
        Ok(report)
    }

    /// Rewrites one partition: its rows (first copy of each event id), sorted, streamed into
    /// new files, and one commit that swaps them for `files`.
    async fn compact_partition(
        &self,
        handle: &mut DeltaTable,
        table: Table,
        tenant: &str,
        date: &str,
        files: &PartitionFiles,
    ) -> Result<Rewritten, WarehouseError> {
        let date = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|e| WarehouseError::Delta {
            table: table.name(),
            source: DeltaTableError::Generic(format!("partition date {date:?}: {e}")),
        })?;
        // Read exactly the snapshot the file list came from.
        let ctx = self.maintenance_session(table, crate::maintenance::Work::Sort)?;
        handle.update_datafusion_session(&ctx.state()).map_err(delta(table))?;
        let provider = handle.table_provider().await.map_err(datafusion(table))?;
        let df = ctx
            .read_table(provider)
            .and_then(|df| {
                df.filter(
                    ident("tenant")
                        .eq(lit(tenant))
                        .and(ident("eventDate").eq(date_literal(date))),
                )
            })
            .and_then(|df| plain_columns(df, table))
            .map_err(datafusion(table))?;
        let rows_before = df.clone().count().await.map_err(datafusion(table))? as u64;
        let mut first_copies = match table {
            Table::Elevations => Some(FirstCopies::new(df.clone()).await?),
            _ => None,
        };
        // Copies of one event share its time, hash and user, so the sort puts them next to
        // each other, the first received first.
        let order = compaction_order(table)
            .iter()
            .chain(if first_copies.is_some() { &RECEIVED[..] } else { &[] })
            .map(|c| ident(*c).sort(true, false));
        let mut sorted = df
            .sort(order.collect())
            .map_err(datafusion(table))?
            .execute_stream()
            .await
            .map_err(datafusion(table))?;
        let properties = compacted_file_properties(table);
        let mut writer = RecordBatchWriter::for_table(handle)
            .map_err(delta(table))?
            .with_writer_properties(properties)
            .with_target_file_size(TARGET_FILE_BYTES as u64);
        let mut rows_after = 0u64;
        while let Some(batch) = sorted.try_next().await.map_err(datafusion(table))? {
            let batch = conform(&batch, table)?;
            let batch = match first_copies.as_mut() {
                Some(first) => first.keep(&batch).map_err(arrow_error(table))?,
                None => batch,
            };
            if batch.num_rows() > 0 {
                rows_after += batch.num_rows() as u64;
                writer.write(batch).await.map_err(delta(table))?;
            }
        }
        let adds = writer.flush().await.map_err(delta(table))?;
        let files_after = adds.len();
        let bytes_after = adds.iter().map(|a| a.size.max(0) as u64).sum();
        if let Some(dir) = self.location().local_table_dir(table) {
            crate::tables::sync_added_files(&dir, adds.iter().map(|a| a.path.as_str()))?;
        }
        // Without duplicates the rows are the same, only laid out anew: `dataChange: false`
        // tells readers and concurrent writers that nothing they read changed.
        let data_change = rows_after != rows_before;
        let mut actions: Vec<Action> = files
            .views
            .iter()
            .map(|v| Action::Remove(v.remove_action(data_change)))
            .collect();
        actions.extend(adds.into_iter().map(|mut add| {
            add.data_change = data_change;
            Action::Add(add)
        }));
        let operation = DeltaOperation::Optimize {
            predicate: Some(format!("tenant = '{tenant}' AND eventDate = '{date}'")),
            target_size: TARGET_FILE_BYTES as i64,
        };
        self.commit_synced(handle, table, actions, operation).await?;
        Ok(Rewritten {
            rows_before,
            rows_after,
            files_after,
            bytes_after,
        })
    }
}

/// How compacted files are written: zstd level 3 for the raw tables and LZ4 for the rollups
/// ([`rollup_compression`]), row groups of [`ROW_GROUP_ROWS`], and dictionaries up to
/// [`DICTIONARY_PAGE_BYTES`]. Parquet's default 1 MiB dictionary page holds
/// ~29,000 GUIDs: a day of a 70,000-device fleet has more device ids and batch ids than that,
/// so every later page of a row group fell back to plain 36-byte strings, and compaction made
/// a day 75% larger than the small files it read (114 MB → 201 MB for 2.6 M elevations). With
/// the larger page they stay dictionary-coded. Event ids are unique, so a dictionary of them
/// is pure cost: they are written plain.
pub(crate) fn compacted_file_properties(table: Table) -> WriterProperties {
    let compression = if Table::ROLLUPS.contains(&table) {
        rollup_compression()
    } else {
        Compression::ZSTD(ZstdLevel::try_new(3).expect("valid level"))
    };
    let mut builder = WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_dictionary_page_size_limit(DICTIONARY_PAGE_BYTES);
    if table.schema().field_with_name("id").is_ok() {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from("id"), false);
    }
    builder.build()
}

/// The rollups' codec: LZ4 (Parquet's `LZ4_RAW`), not zstd. The rollups are what every
/// dashboard page reads, a page opens hundreds of their column chunks, and parquet 59's reader
/// builds a zstd codec per column chunk with a fresh compression context beside the
/// decompression one (arrow-rs #9400): 11% of the elevation detail page's CPU. Over the
/// 30 days of 6.8 M elevations in BENCHMARKS.md the rollups take 124 MB instead of 88 MB (the
/// raw tables, 790 MB, stay zstd), and the pages that read them answer 10-25% sooner (detail
/// 209 -> 163 ms, by-application 148 -> 121 ms, suggestions 471 -> 425 ms).
fn rollup_compression() -> Compression {
    Compression::LZ4_RAW
}

/// The largest dictionary page of a compacted file's column chunk: room for ~230,000 GUIDs.
const DICTIONARY_PAGE_BYTES: usize = 8 << 20;

/// Which copy of an elevation sent twice comes first: the first received, and of two
/// received at once the lower batch id, so the choice is the same on every run.
const RECEIVED: [&str; 2] = ["ingestedAt", "batchId"];

/// The same event sent twice (an agent re-sending after a lost answer under a new batch id)
/// is one elevation: keeps the first copy of each event id, as [`RECEIVED`] orders them, from
/// rows sorted by [`compaction_order`] then [`RECEIVED`].
///
/// Copies of an event share its time, hash and user, so in that order they follow each other
/// and the first of a run is kept. The ids whose copies differ in one of those (only a faulty
/// agent sends such) are found beforehand, with the winning copy of each; they are the only
/// ids held in memory.
struct FirstCopies {
    /// The id of the last row seen, across batches.
    last_id: Option<String>,
    /// Ids whose copies are apart in the order, with the winning copy's key and whether it
    /// was kept yet.
    scattered: HashMap<String, (CopyKey, bool)>,
}

/// What tells copies of an event apart: its place in the order, and when it was received.
#[derive(Debug, PartialEq, Eq)]
struct CopyKey {
    event_time: i64,
    hash: String,
    upn: String,
    ingested_at: i64,
    batch_id: String,
}

impl CopyKey {
    fn of(columns: &KeyColumns<'_>, row: usize) -> CopyKey {
        CopyKey {
            event_time: columns.event_time.value(row),
            hash: columns.hash.value(row).to_owned(),
            upn: columns.upn.value(row).to_owned(),
            ingested_at: columns.ingested_at.value(row),
            batch_id: columns.batch_id.value(row).to_owned(),
        }
    }
}

/// The columns of a batch of `elevations` (the table's own types) that [`CopyKey`] reads.
struct KeyColumns<'a> {
    id: &'a StringArray,
    event_time: &'a TimestampMicrosecondArray,
    hash: &'a StringArray,
    upn: &'a StringArray,
    ingested_at: &'a TimestampMicrosecondArray,
    batch_id: &'a StringArray,
}

impl<'a> KeyColumns<'a> {
    fn of(batch: &'a RecordBatch) -> Result<KeyColumns<'a>, ArrowError> {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| ArrowError::SchemaError(format!("no column {name} to find copies of an event by")))
        };
        let text = |name: &str| {
            column(name)?
                .as_string_opt::<i32>()
                .ok_or_else(|| ArrowError::SchemaError(format!("{name} is not text")))
        };
        let time = |name: &str| {
            column(name)?
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .ok_or_else(|| ArrowError::SchemaError(format!("{name} is not a timestamp")))
        };
        Ok(KeyColumns {
            id: text("id")?,
            event_time: time("eventDateTime")?,
            hash: text("hash")?,
            upn: text("upn")?,
            ingested_at: time("ingestedAt")?,
            batch_id: text("batchId")?,
        })
    }
}

impl FirstCopies {
    /// Finds, in one grouping of `rows` by id (which DataFusion spills), the ids whose copies
    /// differ in time, hash or user, then reads those ids' copies to choose each one's winner.
    async fn new(rows: DataFrame) -> Result<FirstCopies, WarehouseError> {
        use deltalake::datafusion::functions_aggregate::expr_fn::{max, min};
        let table = Table::Elevations;
        let mut bounds = Vec::new();
        let mut differs = lit(false);
        for column in ["eventDateTime", "hash", "upn"] {
            let (low, high) = (format!("{column}_min"), format!("{column}_max"));
            bounds.push(min(ident(column)).alias(&low));
            bounds.push(max(ident(column)).alias(&high));
            differs = differs.or(ident(low).not_eq(ident(high)));
        }
        let ids = rows
            .clone()
            .aggregate(vec![ident("id")], bounds)
            .and_then(|df| df.filter(differs))
            .and_then(|df| df.select(vec![ident("id")]))
            .map_err(datafusion(table))?
            .collect()
            .await
            .map_err(datafusion(table))?;
        let mut scattered_ids = Vec::new();
        for batch in &ids {
            let column = cast(batch.column(0), &DataType::Utf8).map_err(arrow_error(table))?;
            scattered_ids.extend(column.as_string::<i32>().iter().flatten().map(str::to_owned));
        }
        let mut scattered: HashMap<String, (CopyKey, bool)> = HashMap::new();
        if scattered_ids.is_empty() {
            return Ok(FirstCopies {
                last_id: None,
                scattered,
            });
        }
        let copies = rows
            .filter(ident("id").in_list(scattered_ids.into_iter().map(lit).collect(), false))
            .map_err(datafusion(table))?
            .collect()
            .await
            .map_err(datafusion(table))?;
        for batch in &copies {
            let batch = conform(batch, table)?;
            let columns = KeyColumns::of(&batch).map_err(arrow_error(table))?;
            for row in 0..batch.num_rows() {
                let copy = CopyKey::of(&columns, row);
                let id = columns.id.value(row);
                match scattered.get_mut(id) {
                    Some((winner, _))
                        if (winner.ingested_at, &winner.batch_id) <= (copy.ingested_at, &copy.batch_id) => {}
                    Some((winner, _)) => *winner = copy,
                    None => {
                        scattered.insert(id.to_owned(), (copy, false));
                    }
                }
            }
        }
        Ok(FirstCopies {
            last_id: None,
            scattered,
        })
    }

    /// The rows of `batch` (the next of the sorted stream) that are first copies.
    fn keep(&mut self, batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
        let columns = KeyColumns::of(batch)?;
        let mut keep = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            let id = columns.id.value(row);
            let first = match self.scattered.get_mut(id) {
                Some((winner, kept)) => {
                    let won = !*kept && *winner == CopyKey::of(&columns, row);
                    *kept |= won;
                    won
                }
                None if row == 0 => self.last_id.as_deref() != Some(id),
                None => columns.id.value(row - 1) != id,
            };
            keep.push(first);
        }
        if batch.num_rows() > 0 {
            self.last_id = Some(columns.id.value(batch.num_rows() - 1).to_owned());
        }
        filter_record_batch(batch, &BooleanArray::from(keep))
    }
}

/// The order compaction writes a table's rows in: the columns its readers filter or group by
/// first. `elevations` ends with `id`, unique after compaction, so the order is total and two
/// runs over the same rows write them in the same order.
pub(crate) fn compaction_order(table: Table) -> &'static [&'static str] {
    match table {
        Table::Elevations => &["eventDateTime", "hash", "upn", "id"],
        Table::Diagnostics => &["deviceId", "eventDateTime"],
        Table::DailyElevations => &["hash", "upn"],
        Table::DailyCounts => &["elevationType"],
        Table::DailyUsers => &["upn", "elevationType"],
        Table::DailyDevices => &["deviceName", "elevationType"],
        Table::UserNumbers => &["number"],
        Table::DailyUserSets => &["elevationType", "hash"],
        Table::DailyDenied => &["upn", "deviceId", "hash"],
        Table::DailySuggestions => &["userNumber", "fileName", "hash"],
        Table::ValueNumbers => &["kind", "number"],
    }
}

#[cfg(test)]
mod selection_tests {
    use super::*;

    #[test]
    fn a_compacted_partition_is_left_alone_until_small_files_arrive_again() {
        let full = TARGET_FILE_BYTES as i64 - 2_000_000;
        // What compaction writes: full files and one smaller tail.
        assert!(!needs_compaction([full, full, 36_000_000]));
        assert!(!needs_compaction([5_000]));
        // Landings add small files: two or more small ones are merged, beside full files too.
        assert!(needs_compaction([full, 36_000_000, 40_000]));
        assert!(needs_compaction([40_000, 41_000]));
        assert!(!needs_compaction([full, 40_000]));
    }
}

#[cfg(test)]
mod file_properties_tests {
    use std::sync::Arc;

    use arrow::array::StringArray;
    use arrow::datatypes::{Field, Schema};
    use deltalake::parquet::arrow::ArrowWriter;
    use deltalake::parquet::file::reader::{FileReader, SerializedFileReader};

    use super::*;

    /// Bytes of the `deviceId` column chunk of a file of `rows` written with `properties`.
    fn device_id_bytes(rows: &RecordBatch, properties: WriterProperties) -> i64 {
        let file = tempfile::tempfile().unwrap();
        let mut writer = ArrowWriter::try_new(file.try_clone().unwrap(), rows.schema(), Some(properties)).unwrap();
        writer.write(rows).unwrap();
        writer.close().unwrap();
        let reader = SerializedFileReader::new(file).unwrap();
        reader.metadata().row_group(0).column(0).compressed_size()
    }

    /// The codec the files of `table` are written with, read back from a file's metadata.
    fn written_codec(table: Table) -> Compression {
        let schema = Arc::new(Schema::new(vec![Field::new("tenant", DataType::Utf8, false)]));
        let rows = RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(vec!["contoso"; 100]))]).unwrap();
        let file = tempfile::tempfile().unwrap();
        let properties = compacted_file_properties(table);
        let mut writer = ArrowWriter::try_new(file.try_clone().unwrap(), rows.schema(), Some(properties)).unwrap();
        writer.write(&rows).unwrap();
        writer.close().unwrap();
        let reader = SerializedFileReader::new(file).unwrap();
        reader.metadata().row_group(0).column(0).compression()
    }

    #[test]
    fn raw_tables_are_written_with_zstd_and_the_rollups_the_pages_read_with_lz4() {
        for table in Table::ALL {
            assert!(matches!(written_codec(table), Compression::ZSTD(_)), "{table:?}");
        }
        for table in Table::ROLLUPS {
            assert_eq!(written_codec(table), Compression::LZ4_RAW, "{table:?}");
        }
    }

    #[test]
    fn a_day_of_a_large_fleet_keeps_its_device_ids_dictionary_coded() {
        // 60,000 devices' ids (more than a 1 MiB dictionary page holds), each in 8 rows, in
        // the time order compaction writes.
        let ids: Vec<String> = (0..60_000u64)
            .map(|d| {
                let h = d.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                format!(
                    "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                    h >> 32,
                    h & 0xffff,
                    d % 4096,
                    d % 4093,
                    h >> 16
                )
            })
            .collect();
        let column: StringArray = (0..480_000)
            .map(|i| Some(ids[(i * 7_919) % ids.len()].as_str()))
            .collect();
        let schema = Arc::new(Schema::new(vec![Field::new("deviceId", DataType::Utf8, false)]));
        let rows = RecordBatch::try_new(schema, vec![Arc::new(column)]).unwrap();
        let parquet_default = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap()))
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .build();
        let default = device_id_bytes(&rows, parquet_default);
        let compacted = device_id_bytes(&rows, compacted_file_properties(Table::Elevations));
        assert!(
            compacted * 2 < default,
            "device ids took {compacted} bytes in a compacted file, {default} with Parquet's default dictionary page"
        );
    }
}
