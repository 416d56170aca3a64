//! Reports on an Apache DataFusion Ballista cluster (issue #20, `--cluster df://HOST:PORT`).
//!
//! delta-rs's scan node has no codec, so Ballista's scheduler cannot send a Delta scan to its
//! executors. The way through: the Delta snapshot is resolved here, where the query is
//! planned, into exactly the files it holds and their partition values ([`SnapshotTable`]);
//! that list crosses the wire in the logical plan ([`ClusterCodec`]); and the scheduler plans
//! DataFusion's own Parquet scan over those files, which Ballista's default physical codec
//! already carries to the executors. A listing of the table folder would also read files that
//! compaction removed and vacuum has not yet deleted, so the table folder is never listed.
//!
//! The scheduler and executor must use [`ClusterCodec`] too: the `cluster` crate starts them
//! with it.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use ballista::prelude::{SessionConfigExt, SessionContextExt};
use ballista_core::serde::BallistaLogicalExtensionCodec;
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::config::TableParquetOptions;
use datafusion::common::{DFSchema, ScalarValue, TableReference};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::{Expr, Extension, LogicalPlan, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use serde::{Deserialize, Serialize};
use url::Url;
use warehouse::Table;
use warehouse::deltalake::DeltaTable;

use crate::QueryError;

/// The scheduler this process sends its queries to, when set (`--cluster`).
static CLUSTER: OnceLock<String> = OnceLock::new();

/// Sends every query of this process to the Ballista scheduler at `url` (`df://HOST:PORT`)
/// instead of running it here. Like the memory budget, a property of the process: only the
/// first call counts, and only before the first query. Fails on a URL that is not
/// `df://HOST:PORT`.
pub fn set_cluster(url: &str) -> Result<(), QueryError> {
    let parsed = Url::parse(url).map_err(|e| QueryError::BadParameter(format!("--cluster {url:?}: {e}")))?;
    if parsed.scheme() != "df" || parsed.host_str().is_none() || parsed.port().is_none() {
        return Err(QueryError::BadParameter(format!(
            "--cluster {url:?}: expected the Ballista scheduler as df://HOST:PORT"
        )));
    }
    let _ = CLUSTER.set(url.to_owned());
    Ok(())
}

/// The scheduler queries go to, if any.
pub fn cluster() -> Option<&'static str> {
    CLUSTER.get().map(String::as_str)
}

/// A session whose queries run on the cluster at `url`. Nothing is sent until a query runs.
pub(crate) async fn remote_session(url: &str) -> Result<SessionContext, QueryError> {
    let config =
        SessionConfig::new_with_ballista().with_ballista_logical_extension_codec(Arc::new(ClusterCodec::default()));
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(crate::memory::runtime().clone())
        .with_default_features()
        .build();
    Ok(SessionContext::remote_with_state(url, state).await?)
}

/// One data file of a Delta snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SnapshotFile {
    /// Relative to the table root, decoded (as Delta's `path()` gives it).
    path: String,
    size: u64,
    /// In the order of [`SnapshotTable::partition_columns`]; `None` is a null partition value.
    partition_values: Vec<Option<String>>,
}

/// What crosses the wire for one table: everything but the schema, which DataFusion's own
/// plan serialisation carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SnapshotWire {
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
    schema: SchemaRef,
    wire: Arc<SnapshotWire>,
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
    /// column mapping (physical column names differ).
    ///
    /// Why a tenant: the list travels in every query's plan (Ballista's gRPC messages stop at
    /// 16 MiB, about 100,000 files), and a warehouse of many tenants holds many times the files
    /// any one report reads.
    pub async fn of(delta: &DeltaTable, table: Table, tenant: Option<&str>) -> Result<SnapshotTable, QueryError> {
        let failed = |source| QueryError::Delta {
            table: table.name(),
            source,
        };
        let snapshot = delta.snapshot().map_err(failed)?;
        if let Some(mode) = snapshot.table_config().column_mapping_mode
            && mode != delta_kernel::table_features::ColumnMappingMode::None
        {
            return Err(QueryError::Cluster(format!(
                "table {} uses column mapping ({mode:?}); a cluster reads its files as plain \
                 Parquet and cannot map its columns: run this report without --cluster",
                table.name()
            )));
        }
        let schema = delta.table_provider().await?.schema();
        let partition_columns: Vec<String> = snapshot.metadata().partition_columns().to_vec();
        let tenant_column = partition_columns.iter().position(|c| c == "tenant");
        let views: Vec<_> = futures::TryStreamExt::try_collect(delta.get_active_add_actions_by_partitions(&[]))
            .await
            .map_err(failed)?;
        let mut files = Vec::with_capacity(views.len());
        for view in views {
            if view.deletion_vector_descriptor().is_some() {
                return Err(QueryError::Cluster(format!(
                    "table {} has deletion vectors (in {}); a cluster reads its files as plain \
                     Parquet and would return deleted rows: run this report without --cluster",
                    table.name(),
                    view.path()
                )));
            }
            let values = view.partition_values_map();
            let partition_values: Vec<Option<String>> = partition_columns
                .iter()
                .map(|column| values.get(column).cloned().flatten())
                .collect();
            if let (Some(tenant), Some(column)) = (tenant, tenant_column)
                && partition_values[column].as_deref() != Some(tenant)
            {
                continue;
            }
            files.push(SnapshotFile {
                path: view.path().into_owned(),
                size: view.size().max(0) as u64,
                partition_values,
            });
        }
        let mut root = delta.table_url().to_string();
        if !root.ends_with('/') {
            root.push('/');
        }
        Ok(SnapshotTable {
            schema,
            wire: Arc::new(SnapshotWire {
                table: table.name().to_owned(),
                version: delta.version().unwrap_or(0),
                root,
                partition_columns,
                files,
            }),
        })
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
        let partition_names: HashSet<&str> = self.wire.partition_columns.iter().map(String::as_str).collect();
        // What is in the Parquet files: every column but the partition columns, in order.
        let file_fields: Vec<Field> = self
            .schema
            .fields()
            .iter()
            .filter(|field| !partition_names.contains(field.name().as_str()))
            .map(|field| field.as_ref().clone())
            .collect();
        let file_schema = Arc::new(Schema::new(file_fields));
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
        let source = ParquetSource::new(table_schema).with_table_parquet_options(options);

        let root = Url::parse(&self.wire.root).map_err(|e| DataFusionError::External(Box::new(e)))?;
        let store = ObjectStoreUrl::parse(&root[..url::Position::BeforePath])?;
        let mut parts: Vec<(u64, Vec<PartitionedFile>)> =
            vec![(0, Vec::new()); state.config().target_partitions().max(1)];
        let mut files = self.files_matching(state, filters)?;
        // Largest first, each to the lightest group: tasks of about the same size.
        files.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.path.cmp(&b.path)));
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
            lightest
                .1
                .push(PartitionedFile::new_from_meta(meta).with_partition_values(values));
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

/// The logical codec of the client, the scheduler and the executors: [`SnapshotTable`] as its
/// JSON file list, everything else as Ballista's own codec does it.
#[derive(Debug, Default)]
pub struct ClusterCodec {
    ballista: BallistaLogicalExtensionCodec,
}

/// Marks a [`SnapshotTable`] on the wire (and the format of what follows).
const SNAPSHOT_TAG: &[u8] = b"elevation-snapshot-v1\n";

impl LogicalExtensionCodec for ClusterCodec {
    fn try_decode(&self, buf: &[u8], inputs: &[LogicalPlan], ctx: &TaskContext) -> DfResult<Extension> {
        self.ballista.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> DfResult<()> {
        self.ballista.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> DfResult<Arc<dyn TableProvider>> {
        let Some(json) = buf.strip_prefix(SNAPSHOT_TAG) else {
            return self.ballista.try_decode_table_provider(buf, table_ref, schema, ctx);
        };
        let wire: SnapshotWire = serde_json::from_slice(json)
            .map_err(|e| DataFusionError::Internal(format!("decoding the file list of table {table_ref}: {e}")))?;
        Ok(Arc::new(SnapshotTable {
            schema,
            wire: Arc::new(wire),
        }))
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> DfResult<()> {
        let Some(table) = node.downcast_ref::<SnapshotTable>() else {
            return self.ballista.try_encode_table_provider(table_ref, node, buf);
        };
        buf.extend_from_slice(SNAPSHOT_TAG);
        serde_json::to_writer(buf, table.wire.as_ref())
            .map_err(|e| DataFusionError::Internal(format!("encoding the file list of table {table_ref}: {e}")))
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> DfResult<Arc<dyn datafusion::datasource::file_format::FileFormatFactory>> {
        self.ballista.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn datafusion::datasource::file_format::FileFormatFactory>,
    ) -> DfResult<()> {
        self.ballista.try_encode_file_format(buf, node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded_one_by_one() {
        assert_eq!(
            encode_path("tenant=a b%/eventDate=2026-01-02/part-1.parquet"),
            "tenant%3Da%20b%25/eventDate%3D2026-01-02/part-1.parquet"
        );
    }

    #[test]
    fn only_df_urls_with_a_port_name_a_cluster() {
        for bad in [
            "http://localhost:50050",
            "df://localhost",
            "localhost:50050",
            "df://:50050",
        ] {
            assert!(matches!(set_cluster(bad), Err(QueryError::BadParameter(_))), "{bad}");
        }
    }
}
