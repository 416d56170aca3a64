//! Reports on an Apache DataFusion Ballista cluster (issue #20, `--cluster df://HOST:PORT`).
//!
//! delta-rs's scan node has no codec, so Ballista's scheduler cannot send a Delta scan to its
//! executors. The way through: the Delta snapshot is resolved here, where the query is
//! planned, into exactly the files it holds and their partition values ([`SnapshotTable`],
//! the same scan reports use in one process);
//! that list crosses the wire in the logical plan ([`ClusterCodec`]); and the scheduler plans
//! DataFusion's own Parquet scan over those files, which Ballista's default physical codec
//! already carries to the executors. A listing of the table folder would also read files that
//! compaction removed and vacuum has not yet deleted, so the table folder is never listed.
//!
//! The scheduler and executor must use [`ClusterCodec`] too: the `cluster` crate starts them
//! with it.

use std::sync::{Arc, OnceLock};

use ballista::prelude::{SessionConfigExt, SessionContextExt};
use ballista_core::serde::BallistaLogicalExtensionCodec;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::{Extension, LogicalPlan};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use url::Url;

use crate::QueryError;
pub use crate::snapshot::SnapshotTable;
use crate::snapshot::SnapshotWire;

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
