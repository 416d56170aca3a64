//! Starting an ingest node from the command line's settings, and uploading a simulated fleet
//! to one. Glue only: the work is in `ingest` and `simulator`.

use std::sync::Arc;

use anyhow::{Context, Result};
use warehouse::{Location, Warehouse};

use crate::DataArgs;

/// The warehouse location: `--warehouse`, or `DATA_DIR/warehouse`.
pub(crate) fn location(data: &DataArgs) -> Result<Location> {
    let text = match &data.warehouse {
        Some(url) => url.clone(),
        None => data.data_dir.join("warehouse").to_string_lossy().into_owned(),
    };
    Ok(Location::parse(&text)?)
}

/// The server's maintenance: how often it runs (never: `None`) and the memory it may take.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Maintenance {
    pub(crate) every: Option<std::time::Duration>,
    pub(crate) memory: usize,
    /// Free disk maintenance's spill leaves untouched (`None`: the warehouse's default).
    pub(crate) disk_reserve: Option<u64>,
    /// How long this node's maintenance lease lasts (see `control::leases`).
    pub(crate) lease: std::time::Duration,
}

/// Runs `elevation serve` until SIGTERM or Ctrl-C.
pub(crate) async fn serve(
    data: &DataArgs,
    config: ingest::IngestConfig,
    location: Location,
    listen: &str,
    maintenance: Maintenance,
    control: control::ControlOptions,
) -> Result<()> {
    let tls = config.tls.is_some();
    let stop = shutdown_signal()?;
    let control = crate::admin::open_with(data, control).await?;
    let warehouse = Arc::new(
        Warehouse::new(location)
            .with_maintenance_memory(maintenance.memory)
            .with_spill_disk_reserve(maintenance.disk_reserve),
    );
    let ingest = ingest::Ingest::start(
        config,
        warehouse.clone(),
        Arc::new(warehouse::SystemClock),
        control.clone(),
    )
    .await
    .context("starting the ingest node")?;
    // After the start, which installs the metrics recorder: the maintenance failure counters
    // at zero and the memory gauges once now, so they are there from the first scrape.
    // With several nodes on one control-plane database, one at a time runs maintenance.
    let node_id = ingest.node_id().to_owned();
    let maintainer = match maintenance.every {
        Some(every) => {
            warehouse::maintenance::register_metrics();
            metrics::gauge!("elevation_maintenance_lease_held").set(0.0);
            let lease = Arc::new(control::LeaseKeeper::start(
                control.clone(),
                crate::maintain::LEASE,
                node_id.clone(),
                maintenance.lease,
                |held| metrics::gauge!("elevation_maintenance_lease_held").set(if held { 1.0 } else { 0.0 }),
            ));
            warehouse::background::handle().spawn(crate::maintain::every(
                warehouse.clone(),
                control.clone(),
                every,
                lease.clone(),
            ));
            Some(lease)
        }
        None => None,
    };
    crate::memory_stats::publish();
    tokio::spawn(crate::memory_stats::publish_every(std::time::Duration::from_secs(5)));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let address = listener.local_addr()?;
    let scheme = if tls { "https" } else { "http" };
    // Tests and scripts read this line to find the port when --listen ends in :0.
    println!(
        "listening on {scheme}://{address} (warehouse {}, control plane {})",
        warehouse.location().display(),
        control.backend()
    );
    if ingest.replayed() > 0 {
        println!("replayed {} batches from the write-ahead log", ingest.replayed());
    }
    let admin = dashboards::face(dashboards::AdminApi {
        control: control.clone(),
        warehouse: warehouse.clone(),
        clock: Arc::new(warehouse::SystemClock),
        key_dir: Some(data.data_dir.clone()),
    });
    let router = web::app([ingest.face(), admin]);
    // Webhooks of elevation requests: sent from the control plane's outbox, never in the way
    // of a request; a send cut short by the stop is claimed again after its lease.
    let (stop_deliveries, stopped) = tokio::sync::oneshot::channel::<()>();
    let deliveries = tokio::spawn(control.clone().run_webhook_deliveries(async {
        let _ = stopped.await;
    }));
    ingest::serve(listener, ingest, router, stop).await?;
    // Another node may take maintenance over at once instead of after the lease runs out.
    if let Some(lease) = maintainer {
        lease.stop();
        if let Err(error) = control.release_lease(crate::maintain::LEASE, &node_id).await {
            tracing::warn!(%error, "cannot give the maintenance lease up; it expires by itself");
        }
    }
    // The loop ends its pass (a claimed delivery's bookkeeping) before the pool closes.
    let _ = stop_deliveries.send(());
    let _ = deliveries.await;
    control.close().await;
    println!("stopped; every acknowledged batch has landed");
    Ok(())
}

/// `elevation wal land --from DIR`.
pub(crate) async fn land_log_of(data: &DataArgs, from: &std::path::Path, location: Location) -> Result<()> {
    let control = crate::admin::open(data).await?;
    let warehouse = Arc::new(Warehouse::new(location));
    let landed = ingest::Ingest::land_log_of(
        from,
        warehouse.clone(),
        Arc::new(warehouse::SystemClock),
        control.clone(),
    )
    .await
    .with_context(|| format!("landing the write-ahead log of {}", from.display()))?;
    control.close().await;
    println!(
        "landed the write-ahead log of {}: it held {} batches, all of them now in {}{}",
        from.display(),
        landed.batches,
        warehouse.location().display(),
        match landed.stored_elsewhere {
            0 => String::new(),
            n => format!(" ({n} of them stored first by another node, not landed twice)"),
        }
    );
    Ok(())
}

/// Listens for SIGTERM and Ctrl-C from the moment it is called, and resolves when one comes.
/// Registering before the address is printed matters: a signal sent the moment a supervisor
/// (or a test) reads that line must stop the node gracefully, not kill it, which is what the
/// default disposition of SIGTERM does to a process that is not listening yet.
pub(crate) fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C")?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {},
            _ = interrupt.recv() => {},
        }
        tracing::info!("shutting down: finishing in-flight uploads and landing what is left");
    })
}

/// Simulates a fleet in memory and returns each batch as an agent sends it (gzip JSON), with
/// the truth. Compressing as each batch is generated keeps a 20,000-device month in a few GiB
/// instead of holding every JSON body.
pub(crate) fn simulated_bodies(config: &simulator::SimConfig) -> Result<(Vec<Vec<u8>>, simulator::GroundTruth)> {
    config.validate()?;
    let mut bodies = Vec::new();
    let (_, truth) = simulator::simulate(config, |_, _, batch| {
        bodies.push(ingest::AgentClient::compress(
            &serde_json::to_vec(batch).expect("batches serialise"),
        ));
        Ok::<(), std::convert::Infallible>(())
    })
    .expect("collecting in memory cannot fail");
    Ok((bodies, truth))
}

/// `elevation simulate --target`: uploads a simulated fleet and compares the answers with the
/// ground truth.
pub(crate) async fn simulate_to(
    config: &simulator::SimConfig,
    target: &str,
    key: &str,
    concurrency: usize,
) -> Result<()> {
    let (bodies, truth) = simulated_bodies(config)?;
    let client = ingest::AgentClient::new(target, key);
    let report = client
        .upload_all(bodies, concurrency)
        .await
        .context("uploading the simulated fleet")?;
    let (accepted, dropped, rejected) = report.totals();
    println!(
        "uploaded {} batches in {:.1} s: accepted {} elevations and {} diagnostic events, {} dropped by policy, {} rejected, {} duplicates",
        report.answers.len(),
        report.elapsed.as_secs_f64(),
        accepted.elevations,
        accepted.diagnostics,
        dropped.elevations + dropped.diagnostics,
        rejected,
        report.answers.iter().filter(|a| a.duplicate).count()
    );
    println!(
        "ground truth: {} elevations and {} diagnostic events sent",
        truth.totals.elevations, truth.totals.diagnostics
    );
    println!(
        "ack latency p50 {:.1} ms, p99 {:.1} ms",
        report.latency_quantile(0.5).as_secs_f64() * 1e3,
        report.latency_quantile(0.99).as_secs_f64() * 1e3
    );
    Ok(())
}
