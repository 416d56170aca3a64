//! `cluster` runs the two processes of a reporting cluster on Apache DataFusion Ballista
//! (issue #20): the scheduler, which plans each query and hands its tasks out, and the
//! executors, which run them. Both are Ballista's own; what this crate adds is the project's
//! codec ([`queries::cluster::ClusterCodec`]), without which a scheduler cannot decode the
//! warehouse's scans, and the project's conventions: loopback unless told otherwise, one line
//! saying where a process listens, typed errors.
//!
//! It must not decide what a report computes (that is `queries`), nor write to the tables.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ballista_core::RuntimeProducer;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::{create_scheduler, start_grpc_service_with_listener};
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::SessionConfig;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
use object_store::ObjectStore;
use queries::cluster::ClusterCodec;
use url::Url;

/// What can go wrong starting or running a cluster process.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The address cannot be bound (in use, or not an address of this machine).
    #[error("binding {address}: {source}")]
    Bind {
        /// What was asked for.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// Ballista refused its configuration or failed while running.
    #[error("{0}")]
    Ballista(#[from] ballista_core::error::BallistaError),
}

/// Where the scheduler listens.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Address for gRPC (clients and executors) and the REST API (`/api/executors`,
    /// `/api/jobs`); port 0 picks a free one.
    pub bind: SocketAddr,
    /// The host name executors and clients reach this scheduler by (defaults to the bound
    /// address).
    pub external_host: Option<String>,
    /// Seconds without a heartbeat after which an executor is considered dead and its tasks
    /// are run elsewhere.
    pub executor_timeout_secs: u64,
}

/// Runs a scheduler until the process is stopped. `listening` is called with the bound address
/// once clients and executors can connect.
pub async fn run_scheduler(options: SchedulerOptions, listening: impl FnOnce(SocketAddr)) -> Result<(), ClusterError> {
    let listener = tokio::net::TcpListener::bind(options.bind)
        .await
        .map_err(|source| ClusterError::Bind {
            address: options.bind.to_string(),
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| ClusterError::Bind {
        address: options.bind.to_string(),
        source,
    })?;
    let config = SchedulerConfig {
        bind_host: bound.ip().to_string(),
        bind_port: bound.port(),
        external_host: options.external_host.unwrap_or_else(|| bound.ip().to_string()),
        executor_timeout_seconds: options.executor_timeout_secs.max(1),
        // A dead executor is looked for at a fifth of the time-out, so it is found soon after.
        expire_dead_executor_interval_seconds: (options.executor_timeout_secs / 5).max(1),
        no_executors_grace_period_seconds: options.executor_timeout_secs.max(1),
        override_logical_codec: Some(Arc::new(ClusterCodec::default())),
        ..SchedulerConfig::default()
    };
    let cluster = BallistaCluster::new_from_config(&config).await?;
    let scheduler = create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, Arc::new(config)).await?;
    listening(bound);
    start_grpc_service_with_listener(listener, scheduler).await?;
    Ok(())
}

/// How an executor runs and where it listens.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler, as `HOST:PORT`.
    pub scheduler_host: String,
    /// The scheduler's port.
    pub scheduler_port: u16,
    /// The host to bind (loopback unless told otherwise).
    pub bind_host: String,
    /// The host name others reach this executor by (defaults to the bound host).
    pub external_host: Option<String>,
    /// Arrow Flight port (results and shuffle data are fetched from it); 0 picks a free one.
    pub flight_port: u16,
    /// gRPC port (the scheduler hands tasks to it); 0 picks a free one.
    pub grpc_port: u16,
    /// Tasks run at once (0: one per core).
    pub concurrent_tasks: usize,
    /// Where shuffle files go (default: a temporary folder removed at exit).
    pub work_dir: Option<PathBuf>,
    /// Seconds between heartbeats to the scheduler.
    pub heartbeat_secs: u64,
}

/// The ports an executor listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecutorPorts {
    /// Arrow Flight.
    pub flight: u16,
    /// gRPC.
    pub grpc: u16,
}

/// Runs an executor until the process is stopped (SIGTERM or Ctrl-C: it tells the scheduler
/// it is leaving first). `starting` is called with the ports chosen before it registers.
pub async fn run_executor(options: ExecutorOptions, starting: impl FnOnce(ExecutorPorts)) -> Result<(), ClusterError> {
    let ports = ExecutorPorts {
        flight: free_port(&options.bind_host, options.flight_port)?,
        grpc: free_port(&options.bind_host, options.grpc_port)?,
    };
    // Spill files of sorts and aggregations: the work folder, or the system's temporary one.
    let spill = options.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    // One registry for the process: each bucket's client is built once, not per session.
    let stores = Arc::new(WarehouseStores::default());
    let runtime: RuntimeProducer = Arc::new(move |_config: &SessionConfig| {
        Ok(Arc::new(
            RuntimeEnvBuilder::new()
                .with_temp_file_path(spill.clone())
                .with_object_store_registry(stores.clone())
                .build()?,
        ))
    });
    let config = ExecutorProcessConfig {
        bind_host: options.bind_host.clone(),
        external_host: options
            .external_host
            .clone()
            .or_else(|| Some(options.bind_host.clone())),
        port: ports.flight,
        grpc_port: ports.grpc,
        scheduler_host: options.scheduler_host.clone(),
        scheduler_port: options.scheduler_port,
        vcores: options.concurrent_tasks,
        work_dir: options.work_dir.as_ref().map(|dir| dir.display().to_string()),
        executor_heartbeat_interval_seconds: options.heartbeat_secs.max(1),
        print_thread_info: false,
        override_logical_codec: Some(Arc::new(ClusterCodec::default())),
        override_runtime_producer: Some(runtime),
        ..ExecutorProcessConfig::default()
    };
    starting(ports);
    start_executor_process(Arc::new(config)).await?;
    Ok(())
}

/// `port`, or when it is 0 one the system says is free. Ballista binds its executor's ports
/// itself, so a free one is found by binding and releasing it; another process could take it
/// in between, in which case the executor fails to start with a clear error.
fn free_port(host: &str, port: u16) -> Result<u16, ClusterError> {
    if port != 0 {
        return Ok(port);
    }
    let address = format!("{host}:0");
    let probe = std::net::TcpListener::bind(&address).map_err(|source| ClusterError::Bind { address, source })?;
    Ok(probe.local_addr().map(|a| a.port()).unwrap_or(0))
}

/// The object stores of an executor: local files as DataFusion has them, and an S3-compatible
/// bucket built from the `AWS_*` settings the first time a scan names it (the same way a node
/// builds its warehouse, `warehouse::tables::s3_store`), so executors read an `s3://`
/// warehouse with nothing but those variables set.
#[derive(Debug, Default)]
struct WarehouseStores {
    known: DefaultObjectStoreRegistry,
}

impl ObjectStoreRegistry for WarehouseStores {
    fn register_store(&self, url: &Url, store: Arc<dyn ObjectStore>) -> Option<Arc<dyn ObjectStore>> {
        self.known.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        self.known.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        if let Ok(store) = self.known.get_store(url) {
            return Ok(store);
        }
        match (url.scheme(), url.host_str()) {
            ("s3", Some(bucket)) => {
                let store = warehouse::tables::s3_store(bucket)?;
                self.known.register_store(url, Arc::clone(&store));
                Ok(store)
            }
            _ => self.known.get_store(url),
        }
    }
}
