//! A Delta table snapshot read as a plain list of Parquet files ([`SnapshotTable`]): every
//! report, in this process and on a cluster, scans the warehouse through it.
//!
//! Why not delta-rs's own scan: on every scan with a filter, the Delta kernel parses the JSON
//! statistics of every file in the table again, other tenants' files included, to skip files.
//! On a provider's node with a thousand freshly landed files that parsing took the Overview
//! from 36 to 150 ms. Here the log is listed once per table version, the statistics of each
//! file are parsed once in the life of the process ([`LISTINGS`]), files are chosen by their
//! partition values (tenant, day) when the scan is planned, and DataFusion prunes the rest by
//! each file's bounds while it reads (a top-k's threshold skips whole files).
//!
//! On a cluster the same list crosses the wire (`cluster::ClusterCodec`), without the
//! statistics, which the list would otherwise carry to every executor in every plan.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex};

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::config::TableParquetOptions;
use datafusion::common::stats::Precision;
use datafusion::common::{ColumnStatistics, DFSchema, ScalarValue, Statistics};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use serde::{Deserialize, Serialize};
use url::Url;
use warehouse::Table;
use warehouse::deltalake::DeltaTable;

use crate::QueryError;

/// One data file of a Delta snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SnapshotFile {
    /// Relative to the table root, decoded (as Delta's `path()` gives it).
    path: String,
    size: u64,
    /// In the order of [`SnapshotWire::partition_columns`]; `None` is a null partition value.
    partition_values: Vec<Option<String>>,
    /// The file's row count and column bounds from its Delta statistics, when it has them;
    /// not sent to a cluster.
    #[serde(skip)]
    bounds: Option<Arc<FileBounds>>,
}

/// A file's row count and the bounds of its columns that can skip it, kept small: a
/// provider's table between compactions lists a hundred thousand files, and DataFusion's own
/// statistics hold every column of each. They are built for the files a scan keeps.
#[derive(Debug)]
pub(crate) struct FileBounds {
    rows: usize,
    columns: Box<[ColumnBounds]>,
}

/// One bounded column of a file.
#[derive(Debug)]
struct ColumnBounds {
    /// Its position among the file's columns.
    index: usize,
    nulls: Option<usize>,
    min: Option<ScalarValue>,
    max: Option<ScalarValue>,
}

impl FileBounds {
    /// As DataFusion's statistics of a file of `columns` columns: exact bounds, since
    /// DataFusion prunes only with exact ones (see `bounds_of` for why they are bounds).
    fn statistics(&self, columns: usize) -> Statistics {
        let mut column_statistics = vec![ColumnStatistics::new_unknown(); columns];
        for column in &self.columns {
            let exact = |value: &Option<ScalarValue>| value.clone().map_or(Precision::Absent, Precision::Exact);
            column_statistics[column.index] = ColumnStatistics {
                null_count: column.nulls.map_or(Precision::Absent, Precision::Exact),
                min_value: exact(&column.min),
                max_value: exact(&column.max),
                ..ColumnStatistics::new_unknown()
            };
        }
        Statistics {
            num_rows: Precision::Exact(self.rows),
            total_byte_size: Precision::Absent,
            column_statistics,
        }
    }
}

/// What crosses the wire for one table: everything but the schema, which DataFusion's own
/// plan serialisation carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SnapshotWire {
    /// Which snapshot this is, for plans and errors people read.
    table: String,
    version: u64,
    /// The table root, ending in `/`.
    root: String,
    partition_columns: Vec<String>,
    files: Vec<SnapshotFile>,
}

/// A Delta table snapshot as a plain list of Parquet files with partition values: scanned with
/// DataFusion's own Parquet reader, so any DataFusion process can plan and run it.
#[derive(Clone)]
pub struct SnapshotTable {
    /// The schema the in-process Delta scan gives (same names, types and order).
    pub(crate) schema: SchemaRef,
    pub(crate) wire: Arc<SnapshotWire>,
}

/// The last listing of each table (by its root), for the next snapshot of the same table: the
/// same version is not listed again, and a new one parses only the statistics of new files.
static LISTINGS: LazyLock<Mutex<HashMap<String, Arc<Listing>>>> = LazyLock::new(Default::default);

/// Every file of one table version, whoever's.
struct Listing {
    /// The table's id in its log, new each time a table is made.
    table_id: String,
    version: u64,
    /// The table's schema in the log, to tell whether `schema` still holds.
    delta_schema: delta_kernel::schema::SchemaRef,
    /// The schema Delta's scan gives.
    schema: SchemaRef,
    partition_columns: Vec<String>,
    files: Vec<SnapshotFile>,
}

/// Why a plain Parquet reader cannot read a table's files.
enum NotPlain {
    /// Rows deleted without rewriting the file, in this file.
    DeletionVectors(String),
    /// The physical column names differ from the logical ones.
    ColumnMapping(String),
}

impl fmt::Debug for SnapshotTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotTable")
            .field("table", &self.wire.table)
            .field("version", &self.wire.version)
            .field("files", &self.wire.files.len())
            .finish()
    }
}

impl SnapshotTable {
    /// The files of `delta`'s snapshot, with the schema its Delta scan would have; with
    /// `tenant`, only that tenant's files. Refuses a table whose files a plain Parquet reader
    /// would read wrongly: deletion vectors (rows deleted without rewriting the file) or
    /// column mapping (physical column names differ). The warehouse writes neither.
    ///
    /// Why a tenant: the list travels in every cluster query's plan (Ballista's gRPC messages
    /// stop at 16 MiB, about 100,000 files), and a warehouse of many tenants holds many times
    /// the files any one report reads.
    pub async fn of(delta: &DeltaTable, table: Table, tenant: Option<&str>) -> Result<SnapshotTable, QueryError> {
        match Self::plain(delta, table, tenant).await? {
            Ok(snapshot) => Ok(snapshot),
            Err(NotPlain::ColumnMapping(mode)) => Err(QueryError::Cluster(format!(
                "table {} uses column mapping ({mode}); a cluster reads its files as plain \
                 Parquet and cannot map its columns: run this report without --cluster",
                table.name()
            ))),
            Err(NotPlain::DeletionVectors(path)) => Err(QueryError::Cluster(format!(
                "table {} has deletion vectors (in {path}); a cluster reads its files as plain \
                 Parquet and would return deleted rows: run this report without --cluster",
                table.name()
            ))),
        }
    }

    /// [`SnapshotTable::of`], or `None` where only Delta's own scan reads the table right.
    pub(crate) async fn readable(
        delta: &DeltaTable,
        table: Table,
        tenant: Option<&str>,
    ) -> Result<Option<SnapshotTable>, QueryError> {
        Ok(Self::plain(delta, table, tenant).await?.ok())
    }

    async fn plain(
        delta: &DeltaTable,
        table: Table,
        tenant: Option<&str>,
    ) -> Result<Result<SnapshotTable, NotPlain>, QueryError> {
        let mut root = delta.table_url().to_string();
        if !root.ends_with('/') {
            root.push('/');
        }
        let version = delta.version().unwrap_or(0);
        let table_id = delta
            .snapshot()
            .map_err(|source| QueryError::Delta {
                table: table.name(),
                source,
            })?
            .metadata()
            .id()
            .to_owned();
        // A table made again at the same place (a folder emptied and filled anew) is another
        // table: nothing of the old one's listing is used.
        let known = (LISTINGS.lock().expect("listings lock").get(&root).cloned())
            .filter(|listing| listing.table_id == table_id);
        let listing = match known {
            Some(listing) if listing.version == version => listing,
            known => {
                let listing = match list(delta, table, &table_id, version, known.as_deref()).await? {
                    Ok(listing) => Arc::new(listing),
                    Err(refused) => return Ok(Err(refused)),
                };
                let mut listings = LISTINGS.lock().expect("listings lock");
                // An older version (a compliance pack remade at its versions) does not
                // replace the newest listing.
                if listings
                    .get(&root)
                    .is_none_or(|newest| newest.table_id != table_id || newest.version < version)
                {
                    listings.insert(root.clone(), Arc::clone(&listing));
                }
                listing
            }
        };
        let tenant_column = listing.partition_columns.iter().position(|c| c == "tenant");
        let files = listing
            .files
            .iter()
            .filter(|file| match (tenant, tenant_column) {
                (Some(tenant), Some(column)) => file.partition_values[column].as_deref() == Some(tenant),
                _ => true,
            })
            .cloned()
            .collect();
        Ok(Ok(SnapshotTable {
            schema: Arc::clone(&listing.schema),
            wire: Arc::new(SnapshotWire {
                table: table.name().to_owned(),
                version,
                root,
                partition_columns: listing.partition_columns.clone(),
                files,
            }),
        }))
    }

    /// How many files the snapshot lists.
    pub fn file_count(&self) -> usize {
        self.wire.files.len()
    }

    /// The partition columns as fields of the table's schema.
    fn partition_fields(&self) -> DfResult<Vec<FieldRef>> {
        self.wire
            .partition_columns
            .iter()
            .map(|name| Ok(Arc::new(self.schema.field_with_name(name)?.clone())))
            .collect()
    }

    /// The files whose partition values can satisfy every filter that reads only partition
    /// columns (the tenant, a window of days): the others are not opened at all.
    fn files_matching(&self, state: &dyn Session, filters: &[Expr]) -> DfResult<Vec<&SnapshotFile>> {
        let files: Vec<&SnapshotFile> = self.wire.files.iter().collect();
        let partition_names: HashSet<&str> = self.wire.partition_columns.iter().map(String::as_str).collect();
        let on_partitions: Vec<&Expr> = filters
            .iter()
            .filter(|filter| {
                let columns = filter.column_refs();
                !columns.is_empty() && columns.iter().all(|c| partition_names.contains(c.name.as_str()))
            })
            .collect();
        if on_partitions.is_empty() || files.is_empty() {
            return Ok(files);
        }
        let fields = self.partition_fields()?;
        let schema = Arc::new(Schema::new(fields.clone()));
        let columns: Vec<ArrayRef> = fields
            .iter()
            .enumerate()
            .map(|(index, field)| {
                let values = files
                    .iter()
                    .map(|file| partition_value(file.partition_values[index].as_deref(), field.data_type()))
                    .collect::<DfResult<Vec<_>>>()?;
                ScalarValue::iter_to_array(values)
            })
            .collect::<DfResult<_>>()?;
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
        let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
        let mut keep = vec![true; files.len()];
        for filter in on_partitions {
            let predicate = state.create_physical_expr(filter.clone(), &df_schema)?;
            let result = predicate.evaluate(&batch)?.into_array(batch.num_rows())?;
            let Some(matched) = result.as_any().downcast_ref::<BooleanArray>() else {
                continue;
            };
            for (row, kept) in keep.iter_mut().enumerate() {
                // Null (unknown) keeps the file: the filter above the scan decides.
                *kept &= matched.is_null(row) || matched.value(row);
            }
        }
        Ok(files
            .into_iter()
            .zip(keep)
            .filter_map(|(file, kept)| kept.then_some(file))
            .collect())
    }
}

/// A partition value as Delta writes it (text) in the column's type.
fn partition_value(text: Option<&str>, data_type: &DataType) -> DfResult<ScalarValue> {
    match text {
        None => ScalarValue::try_from(data_type),
        Some(text) => {
            // Delta writes partition values as text; cast to the column's type (a date, or the
            // dictionary-coded text delta-rs gives `tenant`).
            ScalarValue::try_from_string(text.to_owned(), data_type)
        }
    }
}

#[async_trait]
impl TableProvider for SnapshotTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Filters prune files; the rows are filtered again above the scan.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let partition_fields = self.partition_fields()?;
        let file_schema = file_schema(&self.schema, &self.wire.partition_columns);
        // The scan's columns are the file's, then the partition columns; the table's order
        // may differ, so each requested column is found by name.
        let table_schema = TableSchema::builder(Arc::clone(&file_schema))
            .with_table_partition_cols(partition_fields.clone())
            .build();
        let scan_schema = Arc::clone(table_schema.table_schema());
        let wanted: Vec<usize> = match projection {
            Some(indices) => indices.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let scan_indices = wanted
            .iter()
            .map(|&index| scan_schema.index_of(self.schema.field(index).name()))
            .collect::<Result<Vec<_>, _>>()?;

        let options = TableParquetOptions {
            global: state.config_options().execution.parquet.clone(),
            ..TableParquetOptions::default()
        };
        let root = Url::parse(&self.wire.root).map_err(|e| DataFusionError::External(Box::new(e)))?;
        let store = ObjectStoreUrl::parse(&root[..url::Position::BeforePath])?;
        // Footers parsed once per process, not on every scan: the runtime's metadata cache
        // (DataFusion's own listing tables use it; a `ParquetSource` built by hand does not
        // unless told), bounded by its limit (50 MB by default, least recently used out). It
        // checks an entry by path and size: a Delta file never changes once written and its
        // name holds a fresh UUID, so a path is never another file's.
        // A Ballista scheduler plans without the store (its executors know it): there the
        // scan reads footers as before.
        // Filters are applied while decoding (as Delta's own scan does): a column is decoded
        // only for the rows the filters keep, so a lookup by id decodes one row's columns,
        // not a window's. The filter above the scan sees only those rows.
        let mut source = ParquetSource::new(table_schema)
            .with_table_parquet_options(options)
            .with_pushdown_filters(true);
        if let Ok(objects) = state.runtime_env().object_store(&store) {
            let footers = CachedParquetFileReaderFactory::new(
                objects,
                state.runtime_env().cache_manager.get_file_metadata_cache(),
            );
            source = source.with_parquet_file_reader_factory(Arc::new(footers));
        }

        let mut parts: Vec<(u64, Vec<PartitionedFile>)> =
            vec![(0, Vec::new()); state.config().target_partitions().max(1)];
        let mut files = self.files_matching(state, filters)?;
        // Newest day first, each to the lightest group: a group reads its newest files first,
        // so a list of the latest events (a top-k) finds its rows in the first files and skips
        // the others by their bounds; the groups hold about the same bytes.
        files.sort_by(|a, b| {
            (b.partition_values.cmp(&a.partition_values))
                .then_with(|| b.size.cmp(&a.size))
                .then_with(|| a.path.cmp(&b.path))
        });
        for file in files {
            let url = root
                .join(&encode_path(&file.path))
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            let location = object_store::path::Path::from_url_path(url.path())
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            let values = partition_fields
                .iter()
                .zip(&file.partition_values)
                .map(|(field, value)| partition_value(value.as_deref(), field.data_type()))
                .collect::<DfResult<Vec<_>>>()?;
            let lightest = parts
                .iter_mut()
                .min_by_key(|(bytes, _)| *bytes)
                .expect("at least one group");
            lightest.0 += file.size;
            // From the object's meta, not its text: `PartitionedFile::new` would parse the text
            // as a path again and encode `%`, `#` and the like a second time.
            let meta = object_store::ObjectMeta {
                location,
                last_modified: chrono::DateTime::UNIX_EPOCH,
                size: file.size,
                e_tag: None,
                version: None,
            };
            let mut scanned = PartitionedFile::new_from_meta(meta).with_partition_values(values);
            // Only the files carry bounds, never the scan as a whole: DataFusion prunes with
            // them but takes no answer (a `max`, a count) from them, as they are bounds, not
            // exact values (Delta keeps timestamps to the millisecond).
            if let Some(bounds) = &file.bounds {
                scanned = scanned.with_statistics(Arc::new(bounds.statistics(file_schema.fields().len())));
            }
            lightest.1.push(scanned);
        }
        let mut groups: Vec<FileGroup> = parts
            .into_iter()
            .filter(|(_, files)| !files.is_empty())
            .map(|(_, files)| FileGroup::new(files))
            .collect();
        if groups.is_empty() {
            // No file in the window: one empty partition, so plans that need at least one
            // (a sort, a single-partition merge) still hold.
            groups.push(FileGroup::new(Vec::new()));
        }
        let config = FileScanConfigBuilder::new(store, Arc::new(source))
            .with_file_groups(groups)
            .with_projection_indices(Some(scan_indices))?
            .with_limit(limit)
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}

/// A decoded relative path as a URL path segment list: each segment percent-encoded so that
/// partition values holding `%`, `#`, `?` or spaces name the right object.
fn encode_path(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            url::form_urlencoded::byte_serialize(segment.as_bytes())
                .collect::<String>()
                .replace('+', "%20")
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// What is in a table's Parquet files: every column but the partition columns, in order.
fn file_schema(schema: &Schema, partition_columns: &[String]) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .filter(|field| !partition_columns.contains(field.name()))
        .map(|field| field.as_ref().clone())
        .collect();
    Arc::new(Schema::new(fields))
}

/// Every file of `delta`'s snapshot at `version`, with the statistics of the files `known`
/// already holds and those of the others parsed.
async fn list(
    delta: &DeltaTable,
    table: Table,
    table_id: &str,
    version: u64,
    known: Option<&Listing>,
) -> Result<Result<Listing, NotPlain>, QueryError> {
    let failed = |source| QueryError::Delta {
        table: table.name(),
        source,
    };
    let snapshot = delta.snapshot().map_err(failed)?;
    if let Some(mode) = snapshot.table_config().column_mapping_mode
        && mode != delta_kernel::table_features::ColumnMappingMode::None
    {
        return Ok(Err(NotPlain::ColumnMapping(format!("{mode:?}"))));
    }
    // The schema as Delta's scan gives it (its string and dictionary types), built only when
    // the table's schema changed.
    let delta_schema = snapshot.schema();
    let schema = match known {
        Some(known) if known.delta_schema == delta_schema => Arc::clone(&known.schema),
        _ => delta.table_provider().await?.schema(),
    };
    let partition_columns: Vec<String> = snapshot.metadata().partition_columns().to_vec();
    let in_files = file_schema(&schema, &partition_columns);
    let parsed: HashMap<&str, &Option<Arc<FileBounds>>> = known
        .map(|known| known.files.iter().map(|f| (f.path.as_str(), &f.bounds)).collect())
        .unwrap_or_default();
    let views: Vec<_> = futures::TryStreamExt::try_collect(delta.get_active_add_actions_by_partitions(&[]))
        .await
        .map_err(failed)?;
    let mut files = Vec::with_capacity(views.len());
    for view in views {
        if view.deletion_vector_descriptor().is_some() {
            return Ok(Err(NotPlain::DeletionVectors(view.path().into_owned())));
        }
        let path = view.path().into_owned();
        let values = view.partition_values_map();
        let partition_values: Vec<Option<String>> = partition_columns
            .iter()
            .map(|column| values.get(column).cloned().flatten())
            .collect();
        let bounds = match parsed.get(path.as_str()) {
            Some(bounds) => (*bounds).clone(),
            None => view
                .stats()
                .and_then(|stats| bounds_of(&stats, &in_files))
                .map(Arc::new),
        };
        files.push(SnapshotFile {
            path,
            size: view.size().max(0) as u64,
            partition_values,
            bounds,
        });
    }
    Ok(Ok(Listing {
        table_id: table_id.to_owned(),
        version,
        delta_schema,
        schema,
        partition_columns,
        files,
    }))
}

/// A file's row count and bounds from its Delta statistics (`numRecords`, `minValues`,
/// `maxValues`, `nullCount`), for the columns of `columns` that have them; `None` when the text
/// is not such statistics.
///
/// Delta writes timestamps to the millisecond, cut down: a maximum is raised to the end of its
/// millisecond so that it stays an upper bound. Only the columns of the types the warehouse has
/// Delta record ([`warehouse::schema::has_file_statistics`]) are kept: files an older release
/// wrote also carry text bounds, which skip nothing.
fn bounds_of(stats: &str, columns: &Schema) -> Option<FileBounds> {
    let stats: serde_json::Value = serde_json::from_str(stats).ok()?;
    let rows = stats.get("numRecords")?.as_u64()?;
    let value_of = |kind: &str, field: &Field| {
        let value = stats.get(kind)?.get(field.name())?;
        let text = match value {
            serde_json::Value::String(text) => text.clone(),
            serde_json::Value::Number(number) => number.to_string(),
            serde_json::Value::Bool(flag) => flag.to_string(),
            _ => return None,
        };
        ScalarValue::try_from_string(text, field.data_type()).ok()
    };
    let bounded = columns
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, field)| warehouse::schema::has_file_statistics(field.data_type()))
        .filter_map(|(index, field)| {
            let nulls = stats
                .get("nullCount")
                .and_then(|counts| counts.get(field.name()))
                .and_then(serde_json::Value::as_u64)
                .map(|n| n as usize);
            let min = value_of("minValues", field);
            let max = value_of("maxValues", field).and_then(end_of_millisecond);
            (nulls.is_some() || min.is_some() || max.is_some()).then_some(ColumnBounds { index, nulls, min, max })
        })
        .collect();
    Some(FileBounds {
        rows: rows as usize,
        columns: bounded,
    })
}

/// A timestamp maximum as Delta wrote it (cut to its millisecond) raised to the last instant of
/// that millisecond; other values as they are. `None` on overflow.
fn end_of_millisecond(value: ScalarValue) -> Option<ScalarValue> {
    Some(match value {
        ScalarValue::TimestampMicrosecond(Some(at), zone) => {
            ScalarValue::TimestampMicrosecond(Some(at.checked_add(999)?), zone)
        }
        ScalarValue::TimestampNanosecond(Some(at), zone) => {
            ScalarValue::TimestampNanosecond(Some(at.checked_add(999_999)?), zone)
        }
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::TimeUnit;

    use super::*;

    fn columns() -> Schema {
        Schema::new(vec![
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("id", DataType::Utf8View, true),
            Field::new("result", DataType::Int32, true),
            Field::new("blob", DataType::Binary, true),
        ])
    }

    #[test]
    fn bounds_come_from_delta_statistics_with_a_time_maximum_raised_to_its_millisecond_end() {
        let stats = r#"{"numRecords":3,
            "minValues":{"at":"2026-11-20T10:00:00.250Z","id":"a","result":-1,"blob":"AAEC"},
            "maxValues":{"at":"2026-11-20T11:00:00.000Z","id":"zz","result":7,"blob":"AAEC"},
            "nullCount":{"at":0,"id":1,"result":0,"blob":3}}"#;
        let bounds = bounds_of(stats, &columns()).expect("statistics").statistics(4);
        assert_eq!(bounds.num_rows, Precision::Exact(3));
        let at = |text: &str| {
            let micros = chrono::DateTime::parse_from_rfc3339(text).unwrap().timestamp_micros();
            Precision::Exact(ScalarValue::TimestampMicrosecond(Some(micros), Some("UTC".into())))
        };
        let [time, id, result, blob] = &bounds.column_statistics[..] else {
            panic!("four columns: {bounds:?}");
        };
        assert_eq!(time.min_value, at("2026-11-20T10:00:00.250Z"));
        assert_eq!(time.max_value, at("2026-11-20T11:00:00.000999Z"));
        assert_eq!(time.null_count, Precision::Exact(0));
        assert_eq!(result.min_value, Precision::Exact(ScalarValue::Int32(Some(-1))));
        assert_eq!(result.max_value, Precision::Exact(ScalarValue::Int32(Some(7))));
        // Text bounds are not kept, and binary ones never read: unknown, never the text taken
        // as bytes.
        for unknown in [id, blob] {
            assert_eq!(unknown.min_value, Precision::Absent);
            assert_eq!(unknown.max_value, Precision::Absent);
            assert_eq!(unknown.null_count, Precision::Absent);
        }
    }

    #[test]
    fn a_file_without_usable_statistics_has_no_bounds() {
        for stats in [
            "",
            "not json",
            "{}",
            r#"{"minValues":{"result":1}}"#,
            r#"{"numRecords":"3"}"#,
        ] {
            assert!(bounds_of(stats, &columns()).is_none(), "{stats}");
        }
        // Columns the statistics do not name, or name with a value of another type, are unknown.
        let bounds = bounds_of(r#"{"numRecords":2,"minValues":{"result":"x"}}"#, &columns())
            .unwrap()
            .statistics(4);
        assert!(
            bounds
                .column_statistics
                .iter()
                .all(|c| c.min_value == Precision::Absent)
        );
        assert!(
            bounds
                .column_statistics
                .iter()
                .all(|c| c.max_value == Precision::Absent)
        );
    }

    #[test]
    fn path_segments_are_encoded_one_by_one() {
        assert_eq!(
            encode_path("tenant=a b%/eventDate=2026-01-02/part-1.parquet"),
            "tenant%3Da%20b%25/eventDate%3D2026-01-02/part-1.parquet"
        );
    }
}
