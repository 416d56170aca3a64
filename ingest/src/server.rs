//! The HTTP side: the agent's routes (the upload itself is in `upload`), health, metrics and
//! the OpenAPI document, and the start-up and shutdown of the whole ingest node (replay, log
//! thread, lander).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use control::ControlPlane;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::sync::{Notify, Semaphore};
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use utoipa::OpenApi;
use warehouse::{Clock, Warehouse};

use crate::answer::BatchAnswer;
use crate::batch::UploadLimits;
use crate::dedup::Dedup;
use crate::landing::{Lander, LandingBuffer, LandingStats, Pending};
use crate::wal::{self, LoggedBatch, Wal};
use web::{ApiError, ErrorBody, ErrorCode};

/// How an ingest node runs. Every field has a documented default ([`IngestConfig::new`]).
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// The node's local state: `wal/`, `dedup/`, `node-id`.
    pub data_dir: PathBuf,
    /// Per-upload limits.
    pub limits: UploadLimits,
    /// The lander commits what is waiting this often: the freshness bound (an acknowledged
    /// event is queryable within about this plus one commit).
    pub land_interval: Duration,
    /// ...or sooner once this much is waiting, so a busy second still makes large files.
    pub roll_bytes: usize,
    /// Above this much waiting to land, uploads get `503` (memory stays bounded when the
    /// warehouse is slow or down; the write-ahead log still holds everything acknowledged).
    pub max_buffered_bytes: usize,
    /// Uploads handled at once; more get `503` with `Retry-After`.
    pub max_concurrent_uploads: usize,
    /// How long a batch id is remembered for idempotency.
    pub dedup_window: chrono::Duration,
    /// How long a client may take to send its headers and its body.
    pub timeouts: web::Timeouts,
    /// HTTPS instead of HTTP (`serve --tls-cert --tls-key`).
    pub tls: Option<web::TlsConfig>,
}

/// The default landing backlog, in MiB (`serve --max-buffered-mib`): rows acknowledged and
/// waiting to land, counted by the capacity of their Arrow buffers. 128 MiB holds more rows
/// than 192 did before the rows were sized exactly, and keeps a fleet's upload under 512 MiB
/// of RSS at the same throughput (BENCHMARKS.md, "Where the ingest's heap goes").
pub const DEFAULT_MAX_BUFFERED_MIB: usize = 128;

impl IngestConfig {
    /// Defaults: land every 500 ms or at 64 MiB, shed load above
    /// [`DEFAULT_MAX_BUFFERED_MIB`] waiting or 256 concurrent uploads, remember batch ids for
    /// 7 days.
    pub fn new(data_dir: &Path) -> IngestConfig {
        IngestConfig {
            data_dir: data_dir.to_owned(),
            limits: UploadLimits::default(),
            land_interval: Duration::from_millis(500),
            roll_bytes: 64 << 20,
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_MIB << 20,
            max_concurrent_uploads: 256,
            dedup_window: chrono::Duration::days(7),
            timeouts: web::Timeouts::default(),
            tls: None,
        }
    }
}

/// Why the node cannot start.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The write-ahead log cannot be read or written.
    #[error(transparent)]
    Wal(#[from] wal::WalError),
    /// The tables cannot be opened.
    #[error(transparent)]
    Warehouse(#[from] warehouse::WarehouseError),
    /// A state file of the data folder cannot be used.
    #[error("{path}: {source}")]
    State {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The idempotency answers cannot be read or written.
    #[error(transparent)]
    Dedup(#[from] crate::dedup::DedupError),
    /// Landing failed while flushing.
    #[error(transparent)]
    Landing(#[from] crate::landing::LandingError),
    /// Another process (a running node, or another `wal land`) holds the data folder: two
    /// writers of one write-ahead log would lose or duplicate batches.
    #[error(
        "{} is in use by another elevation process (a running node or `wal land`); stop it \
         first, or land the log from that process",
        path.display()
    )]
    InUse {
        /// The data folder.
        path: PathBuf,
    },
}

/// What `wal land` did with another node's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LandedLog {
    /// Batches the log held.
    pub batches: usize,
    /// Of those, batches another node had stored first (a retry that crossed nodes), so not
    /// landed again.
    pub stored_elsewhere: u64,
}

/// What the handlers share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: IngestConfig,
    pub(crate) control: Arc<ControlPlane>,
    pub(crate) dedup: Arc<Dedup>,
    pub(crate) wal: Arc<Wal>,
    pub(crate) buffer: Arc<LandingBuffer>,
    pub(crate) stats: Arc<LandingStats>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) upload_slots: Semaphore,
}

/// A running ingest node: log thread and lander started, ready to serve.
#[derive(Debug)]
pub struct Ingest {
    shared: Arc<Shared>,
    lander: Arc<Lander>,
    lander_task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    stop: Arc<Notify>,
    replayed: usize,
    /// The data folder's lock (`node.lock`), held while the node runs; the system releases it
    /// when the process ends, however it ends.
    _lock: std::fs::File,
}

/// Takes the data folder's lock, or says who holds it.
fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File, IngestError> {
    let path = data_dir.join("node.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| IngestError::State {
            path: path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(IngestError::InUse {
            path: data_dir.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(IngestError::State { path, source }),
    }
}

/// The node's identity in the tables' `txn` actions: created once per data folder.
fn node_id(data_dir: &Path) -> Result<String, IngestError> {
    let path = data_dir.join("node-id");
    let state = |source| IngestError::State {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        Ok(_) | Err(_) => {
            let id = format!("elevation-ingest-{}", uuid::Uuid::new_v4());
            std::fs::write(&path, format!("{id}\n")).map_err(state)?;
            warehouse::durable::sync_file(&path).map_err(state)?;
            warehouse::durable::sync_dir(data_dir).map_err(state)?;
            Ok(id)
        }
    }
}

impl Ingest {
    /// Starts a node: replays the write-ahead log (landing what was acknowledged but not yet
    /// landed), then starts the log thread and the lander. Agent keys and tenant settings come
    /// from `control`.
    pub async fn start(
        config: IngestConfig,
        warehouse: Arc<Warehouse>,
        clock: Arc<dyn Clock>,
        control: Arc<ControlPlane>,
    ) -> Result<Ingest, IngestError> {
        // Install the recorder before anything counts.
        metrics_handle();
        let data_dir = config.data_dir.clone();
        std::fs::create_dir_all(&data_dir).map_err(|source| IngestError::State {
            path: data_dir.clone(),
            source,
        })?;
        let lock = lock_data_dir(&data_dir)?;
        let node_id = node_id(&data_dir)?;
        let wal_dir = data_dir.join("wal");
        let replay = wal::replay(&wal_dir)?;
        // Operators alert on this: a tail cut off anywhere but after a crash is damage. Counted
        // (at 0 too) on every start, so `increase()` sees the first cut.
        metrics::counter!("elevation_wal_bytes_cut_total").increment(replay.cut.as_ref().map_or(0, |cut| cut.bytes));
        // What each table holds of this node decides which replayed records still need it.
        // Storage that cannot answer now must not keep the node from starting: it takes
        // uploads into its log, and its first landing asks the tables again (as after any
        // failed landing) before it commits.
        let landed = match crate::landing::landed_through(&warehouse, &node_id).await {
            Ok(landed) => Some(landed),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read what the tables hold of this node; starting from the write-ahead log, the first landing asks again");
                None
            }
        };
        let dedup = Arc::new(Dedup::open(&data_dir, config.dedup_window, clock.now())?);
        let buffer = Arc::new(LandingBuffer::new(config.roll_bytes));
        let replayed = replay.records.len();
        let mut pending = Vec::with_capacity(replayed);
        for record in replay.records {
            dedup.restore(
                &record.header.key,
                Arc::new(record.header.answer.clone()),
                record.header.received_at,
            );
            let needs = landed.map_or([true, true], |landed| Pending::needs_after(record.seq, landed));
            pending.push(Pending::new(record, needs));
        }
        buffer.push(pending);
        let [elevations, diagnostics] = landed.unwrap_or_default();
        let next_seq = replay.next_seq.max(elevations + 1).max(diagnostics + 1);
        let to_buffer = buffer.clone();
        let wal = Arc::new(Wal::start(
            &wal_dir,
            next_seq,
            Box::new(move |records: Vec<LoggedBatch>| {
                to_buffer.push(records.into_iter().map(|r| Pending::new(r, [true, true])));
            }),
        )?);
        let stats = Arc::new(LandingStats::default());
        let lander = Arc::new(Lander {
            buffer: buffer.clone(),
            warehouse,
            wal: wal.clone(),
            dedup: dedup.clone(),
            node_id: node_id.clone(),
            stats: stats.clone(),
            clock: clock.clone(),
            control: control.clone(),
            landing: tokio::sync::Mutex::new(()),
            after_failure: std::sync::atomic::AtomicBool::new(landed.is_none()),
        });
        if replayed > 0 {
            tracing::info!(records = replayed, "replaying the write-ahead log");
            // Landed before the node serves when storage answers; when it does not, the
            // records stay in the log and the buffer, and the lander's timer tries again.
            if let Err(e) = lander.land_once().await {
                tracing::warn!(error = %e, "cannot land the replayed records yet; they stay in the write-ahead log and landing retries");
            }
        }
        let stop = Arc::new(Notify::new());
        // Landing encodes Parquet: background work, below reports in CPU priority.
        let task = warehouse::background::handle().spawn(lander.clone().run(config.land_interval, stop.clone()));
        tracing::info!(node = %node_id, data_dir = %data_dir.display(), "ingest node started");
        let upload_slots = Semaphore::new(config.max_concurrent_uploads);
        Ok(Ingest {
            shared: Arc::new(Shared {
                config,
                control,
                dedup,
                wal,
                buffer,
                stats,
                clock,
                upload_slots,
            }),
            lander,
            lander_task: std::sync::Mutex::new(Some(task)),
            stop,
            replayed,
            _lock: lock,
        })
    }

    /// Lands the write-ahead log of another node's data folder `dir` (a node that died and
    /// will not come back; its disk attached here) into `warehouse` under that node's own
    /// identity, so batches it already landed are not landed again and running this twice
    /// lands nothing the second time. Refuses a folder a running node holds. Answers how many
    /// batches the log held and how many of those another node had stored first.
    pub async fn land_log_of(
        dir: &Path,
        warehouse: Arc<Warehouse>,
        clock: Arc<dyn Clock>,
        control: Arc<ControlPlane>,
    ) -> Result<LandedLog, IngestError> {
        if !dir.join("node-id").is_file() {
            return Err(IngestError::State {
                path: dir.join("node-id"),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "not the data folder of an ingest node (it has no node-id)",
                ),
            });
        }
        let node = Ingest::start(IngestConfig::new(dir), warehouse, clock, control).await?;
        let batches = node.replayed();
        let stats = node.stats_handle();
        node.shutdown().await?;
        Ok(LandedLog {
            batches,
            stored_elsewhere: stats.stored_elsewhere.load(Ordering::Relaxed),
        })
    }

    /// This node's identity (its `node-id`): the `txn` app id of its landings, the holder of
    /// its leases.
    pub fn node_id(&self) -> &str {
        &self.lander.node_id
    }

    /// Records the write-ahead log held at start.
    pub fn replayed(&self) -> usize {
        self.replayed
    }

    /// The lander's counters (shared: still readable after the node has shut down).
    pub fn stats_handle(&self) -> Arc<LandingStats> {
        self.shared.stats.clone()
    }

    /// Lands everything acknowledged so far, now (the demo and tests use it to read their own
    /// writes without waiting for the timer).
    pub async fn flush(&self) -> Result<u64, IngestError> {
        Ok(self.lander.land_once().await?)
    }

    /// A handle that lands everything acknowledged so far on demand, usable while the node
    /// serves (the demo and tests read their own writes with it instead of waiting).
    pub fn flusher(&self) -> Flusher {
        Flusher {
            lander: self.lander.clone(),
        }
    }

    /// The agent side of the node's HTTP face: upload, health and metrics, described by
    /// [`ApiDoc`]. [`web::app`] puts it under the layers every route shares.
    pub fn face(&self) -> web::Face {
        web::Face {
            routes: self.router(),
            openapi: ApiDoc::openapi(),
        }
    }

    fn router(&self) -> Router {
        let limits = self.shared.config.limits;
        let upload = Router::new()
            .route("/v1/agent/batches", post(crate::upload::upload))
            .layer(RequestDecompressionLayer::new().gzip(true).zstd(true))
            .layer(axum::middleware::map_request(crate::upload::remember_encoding))
            .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
            .layer(axum::middleware::from_fn(move |request, next| {
                web::refuse_announced_oversize(limits.max_body_bytes, request, next)
            }));
        Router::new()
            .merge(upload)
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics_text))
            .with_state(self.shared.clone())
            .merge(crate::requests::routes(self.shared.control.clone()))
    }

    /// Stops the log thread and lands what is left. Call after the HTTP server stopped.
    pub async fn shutdown(self) -> Result<(), IngestError> {
        self.shared.wal.close();
        self.stop.notify_one();
        let task = self.lander_task.lock().expect("not poisoned").take();
        if let Some(task) = task {
            let _ = task.await;
        }
        self.lander.land_once().await?;
        tracing::info!("ingest node stopped; everything acknowledged has landed");
        Ok(())
    }
}

/// Lands on demand; see [`Ingest::flusher`].
#[derive(Debug, Clone)]
pub struct Flusher {
    lander: Arc<Lander>,
}

impl Flusher {
    /// Lands everything acknowledged before this call. Returns the rows landed by this call.
    pub async fn flush(&self) -> Result<u64, crate::landing::LandingError> {
        self.lander.land_once().await
    }

    /// Uploads waiting for a landing to make room in a full backlog.
    pub fn uploads_waiting_for_room(&self) -> usize {
        self.lander.buffer.uploads_waiting_for_room()
    }
}

/// Serves `ingest` on `listener` until `shutdown` completes, then finishes in-flight requests
/// and lands what is left.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ingest: Ingest,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), IngestError> {
    let address = listener.local_addr().ok();
    tracing::info!(address = ?address, "listening");
    let config = &ingest.shared.config;
    web::serve(listener, router, shutdown, config.timeouts, config.tls.clone()).await;
    ingest.shutdown().await
}

/// How often histogram samples are folded into their buckets when nobody reads `/metrics`.
const METRICS_UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// The process-wide Prometheus recorder (installed once; later servers in the same process
/// share it).
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets(&[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ])
            .expect("non-empty buckets")
            // Durations that run to minutes: the freshness promise (alerted on past a minute)
            // and maintenance steps.
            .set_buckets_for_metric(
                Matcher::Full("elevation_landing_lag_seconds".into()),
                &[
                    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0,
                ],
            )
            .expect("non-empty buckets")
            .set_buckets_for_metric(
                Matcher::Full("elevation_maintenance_seconds".into()),
                &[0.1, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0],
            )
            .expect("non-empty buckets");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics shows only what it exports");
        }
        // A histogram's samples wait in a list until an upkeep folds them into its buckets.
        // Left to the scrapes, an unscraped node kept every sample: 29 MB of its heap after
        // four minutes of fleet upload (BENCHMARKS.md, "Where the ingest's heap goes").
        let upkeep = handle.clone();
        let started = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(METRICS_UPKEEP_INTERVAL);
                    upkeep.run_upkeep();
                }
            });
        if let Err(e) = started {
            tracing::warn!(error = %e, "no metrics upkeep thread; histogram samples are folded only when /metrics is read");
        }
        handle
    })
}

#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "The process is alive")))]
async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Accepting uploads"),
    (status = 503, description = "Not accepting uploads: backlog or storage failing", body = ErrorBody)))]
async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let buffered = shared.buffer.bytes();
    let failing = shared.stats.failing.load(Ordering::Relaxed);
    if let Some(failure) = shared.wal.failure() {
        return ApiError::unavailable(ErrorCode::StorageUnavailable, failure, 5).into_response();
    }
    if buffered >= shared.config.max_buffered_bytes {
        return ApiError::unavailable(ErrorCode::LandingBacklog, "the landing backlog is full", 2).into_response();
    }
    if failing >= 3 {
        return ApiError::unavailable(
            ErrorCode::WarehouseFailing,
            "landing in the warehouse keeps failing; see the log",
            5,
        )
        .into_response();
    }
    axum::Json(serde_json::json!({
        "status": "ready",
        "waitingToLand": shared.buffer.len(),
        "walSegments": shared.wal.segment_count(),
        "rememberedBatches": shared.dedup.len(),
        "landedSeq": shared.stats.landed_seq.load(Ordering::Relaxed),
    }))
    .into_response()
}

#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format")))]
async fn metrics_text() -> Response {
    let handle = metrics_handle();
    handle.run_upkeep();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response()
}

/// The OpenAPI document of the HTTP API.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "elevation", description = "Elevation telemetry and reporting for Endpoint Privilege Management"),
    paths(crate::upload::upload, healthz, readyz, metrics_text, crate::requests::submit, crate::requests::approvals,
          crate::requests::cancel),
    components(schemas(BatchAnswer, crate::answer::Counts, ErrorBody, web::ErrorDetail, web::ErrorCode)),
    modifiers(&BearerKeys)
)]
pub struct ApiDoc;

#[derive(Debug)]
struct BearerKeys;

impl utoipa::Modify for BearerKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("agent_key", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}
