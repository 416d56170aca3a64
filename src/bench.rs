//! `elevation bench ingest`: upload throughput end to end — simulated agents posting gzip
//! batches of 1,000 events over loopback HTTP to a real `elevation serve` process, durable
//! acknowledgements, landing in the warehouse — against, in the same run, the in-process floor:
//! the same bodies gunzipped, parsed, validated, turned into Arrow and written as zstd Parquet
//! with no HTTP, no write-ahead log and no Delta commit. Run it from a release build.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use warehouse::deltalake::parquet::arrow::ArrowWriter;
use warehouse::deltalake::parquet::basic::{Compression, ZstdLevel};
use warehouse::deltalake::parquet::file::properties::WriterProperties;
use warehouse::{AgentBatch, Clock, ReportingLevel};

/// Settings of the ingest benchmark.
#[derive(Debug, Args)]
pub(crate) struct IngestBenchArgs {
    /// Events uploaded in all.
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    /// Events per batch.
    #[arg(long, default_value_t = 1000)]
    batch_events: usize,
    /// Uploads in flight (simulated agents at once).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seed of the simulated fleet the events are drawn from.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Real agents' batches: 100,000 batches of 24 events (overrides --events and
    /// --batch-events). The figure to watch is batches per second.
    #[arg(long, conflicts_with_all = ["events", "batch_events"])]
    small_batches: bool,
    /// Ingest nodes (`serve` processes) sharing one warehouse and one control plane, the
    /// uploads spread over them as a load balancer would. More than one needs
    /// `--control-db postgres://…`: that is where their batch claims live.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    nodes: u16,
}

impl IngestBenchArgs {
    /// Agents upload a few dozen events at a time.
    const SMALL_BATCH_EVENTS: usize = 24;
    const SMALL_BATCHES: usize = 100_000;

    fn shape(&self) -> (usize, usize) {
        if self.small_batches {
            (Self::SMALL_BATCHES, Self::SMALL_BATCH_EVENTS)
        } else {
            let per_batch = self.batch_events.max(1);
            (self.events.div_ceil(per_batch), per_batch)
        }
    }
}

/// The elevations of a simulated fleet of 2,000 devices over the last six days, for
/// benchmarks to draw events from (each gives them ids of its own).
pub(crate) fn event_pool(seed: u64) -> Result<Vec<warehouse::ElevationEvent>> {
    let today = warehouse::SystemClock.now().date_naive();
    let config = simulator::SimConfig {
        rate: 4.0,
        ..simulator::SimConfig::new(seed, 2000, 6, today)
    };
    let mut pool = Vec::new();
    simulator::simulate(&config, |_, _, batch| {
        pool.extend(batch.elevations.iter().cloned());
        Ok::<(), std::convert::Infallible>(())
    })
    .expect("in memory");
    anyhow::ensure!(!pool.is_empty(), "the simulated fleet produced no elevations");
    Ok(pool)
}

/// Batch `b` of a benchmark: `per_batch` elevations taken in turn from `pool` (from `*next`),
/// each with an id of its own (`{ids}-{b}-{i}`), from one of 20,000 devices named after
/// `devices`.
pub(crate) fn pool_batch(
    pool: &[warehouse::ElevationEvent],
    next: &mut usize,
    ids: &str,
    devices: &str,
    b: usize,
    per_batch: usize,
) -> AgentBatch {
    let elevations = (0..per_batch)
        .map(|i| {
            let mut event = pool[*next % pool.len()].clone();
            *next += 1;
            event.id = format!("{ids}-{b:07}-{i:05}");
            event
        })
        .collect();
    AgentBatch {
        batch_id: format!("{ids}-batch-{b:07}"),
        device_id: format!("{devices}-device-{:05}", b % 20_000),
        device_name: format!("{}-{:05}", devices.to_uppercase(), b % 20_000),
        agent_version: "1.4.0".into(),
        reporting_level: ReportingLevel::All,
        elevations,
        diagnostics: Vec::new(),
    }
}

/// Builds `count` gzip bodies of `per_batch` elevations each, drawn from a simulated fleet
/// (every event gets a fresh id, so nothing is a duplicate). Returns the bodies and the JSON
/// bytes they hold.
fn bodies(seed: u64, count: usize, per_batch: usize) -> Result<(Vec<Vec<u8>>, u64)> {
    let pool = event_pool(seed)?;
    let mut out = Vec::with_capacity(count);
    let mut json_bytes = 0u64;
    let mut next = 0usize;
    for b in 0..count {
        let batch = pool_batch(&pool, &mut next, "bench", "bench", b, per_batch);
        let json = serde_json::to_vec(&batch)?;
        json_bytes += json.len() as u64;
        out.push(ingest::AgentClient::compress(&json));
    }
    Ok((out, json_bytes))
}

/// The floor: gunzip → parse and validate → Arrow → zstd Parquet, on every core, in process.
fn floor(bodies: &[Vec<u8>], dir: &Path) -> Result<(Duration, u64)> {
    let started = Instant::now();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = bodies.len().div_ceil(threads);
    let rows = AtomicU64::new(0);
    std::thread::scope(|scope| -> Result<()> {
        let mut handles = Vec::new();
        for (t, part) in bodies.chunks(chunk.max(1)).enumerate() {
            let rows = &rows;
            handles.push(scope.spawn(move || -> Result<()> {
                let props = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).expect("valid")))
                    .build();
                let file = std::fs::File::create(dir.join(format!("floor-{t}.parquet")))?;
                let mut writer = ArrowWriter::try_new(file, warehouse::schema::elevation_schema(), Some(props))?;
                let now = warehouse::SystemClock.now();
                let validation = warehouse::ValidationContext::new(now);
                let limits = ingest::UploadLimits::default();
                for body in part {
                    let mut json = Vec::with_capacity(body.len() * 8);
                    flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut json)?;
                    let processed =
                        ingest::batch::process(&json, "bench", ReportingLevel::All, now, &limits, &validation)
                            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
                    if let Some(batch) = processed.elevations {
                        rows.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
                        writer.write(&batch)?;
                    }
                }
                writer.close()?;
                Ok(())
            }));
        }
        for h in handles {
            h.join().expect("floor thread")?;
        }
        Ok(())
    })?;
    Ok((started.elapsed(), rows.load(Ordering::Relaxed)))
}

fn count_files(dir: &Path, extension: &str) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                count_files(&path, extension)
            } else {
                u64::from(path.extension().is_some_and(|x| x == extension))
            }
        })
        .sum()
}

/// Runs the ingest benchmark and prints its figures.
pub(crate) async fn ingest(data: &crate::DataArgs, args: IngestBenchArgs) -> Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build; benchmark figures need `cargo run --release -- bench ingest`");
    }
    let (batches, per_batch) = args.shape();
    println!("preparing {batches} gzip batches of {per_batch} events from a simulated fleet…");
    let seed = args.seed;
    let (bodies, json_bytes) = tokio::task::spawn_blocking(move || bodies(seed, batches, per_batch)).await??;
    let events = (batches * per_batch) as f64;
    let wire_bytes: u64 = bodies.iter().map(|b| b.len() as u64).sum();
    let work = tempfile::tempdir()?;

    // Floor, in process.
    let floor_dir = work.path().join("floor");
    std::fs::create_dir_all(&floor_dir)?;
    let floor_bodies = bodies.clone();
    let floor_path = floor_dir.clone();
    let (floor_time, floor_rows) = tokio::task::spawn_blocking(move || floor(&floor_bodies, &floor_path)).await??;
    anyhow::ensure!(
        floor_rows as f64 == events,
        "the floor stored {floor_rows} rows of {events}"
    );

    // End to end, against real server processes sharing one warehouse.
    let run = run_nodes(data, &work, bodies, &args).await?;
    let acked: u64 = run.reports.iter().map(|r| r.totals().0.elevations).sum();
    anyhow::ensure!(
        acked as f64 == events,
        "the servers acknowledged {acked} of {events} events"
    );
    let elapsed = run.reports.iter().map(|r| r.elapsed).max().unwrap_or_default();
    let landed_after = run.landed_after;
    let warehouse_dir = work.path().join("warehouse");
    let files = count_files(&warehouse_dir.join("elevations"), "parquet");
    let table_bytes: u64 = {
        fn size(dir: &Path) -> u64 {
            std::fs::read_dir(dir)
                .map(|es| {
                    es.flatten()
                        .map(|e| {
                            if e.path().is_dir() {
                                size(&e.path())
                            } else {
                                e.metadata().map_or(0, |m| m.len())
                            }
                        })
                        .sum()
                })
                .unwrap_or(0)
        }
        size(&warehouse_dir.join("elevations"))
    };
    let commits = count_files(&warehouse_dir.join("elevations").join("_delta_log"), "json");

    let e2e = elapsed.as_secs_f64();
    let floor_s = floor_time.as_secs_f64();
    println!();
    println!(
        "elevation bench ingest — {batches} batches × {per_batch} events, {} uploads in flight, {} node(s) on a {} control plane",
        args.concurrency, args.nodes, run.backend
    );
    println!(
        "  JSON {:.1} MB, gzip on the wire {:.1} MB",
        json_bytes as f64 / 1e6,
        wire_bytes as f64 / 1e6
    );
    println!();
    println!(
        "  {:<44} {:>12} {:>10} {:>10} {:>10}",
        "", "events/s", "batches/s", "JSON MB/s", "seconds"
    );
    for (label, seconds) in [
        ("floor (gunzip→validate→Arrow→Parquet zstd)", floor_s),
        ("end to end (HTTP, durable acks)", e2e),
        ("end to end until landed (incl. shutdown)", landed_after.as_secs_f64()),
    ] {
        println!(
            "  {:<44} {:>12.0} {:>10.0} {:>10.1} {:>10.2}",
            label,
            events / seconds,
            batches as f64 / seconds,
            json_bytes as f64 / 1e6 / seconds,
            seconds
        );
    }
    println!();
    println!("  end to end / floor: {:.2}×", floor_s / e2e);
    for (n, (report, node)) in run.reports.iter().zip(&run.nodes).enumerate() {
        println!(
            "  node {n}: {} events, ack latency p50 {:.1} ms, p99 {:.1} ms, CPU {:.1} s ({:.2} cores over the upload), peak RSS {:.0} MiB",
            report.totals().0.elevations,
            report.latency_quantile(0.5).as_secs_f64() * 1e3,
            report.latency_quantile(0.99).as_secs_f64() * 1e3,
            node.cpu_seconds,
            node.cpu_seconds / landed_after.as_secs_f64(),
            node.peak_rss_kib as f64 / 1024.0
        );
    }
    println!(
        "  commits to the elevations table: {commits} ({:.2} per second until landed)",
        commits as f64 / landed_after.as_secs_f64()
    );
    println!(
        "  Parquet files written {files}, table size {:.1} MB ({:.1} bytes/event)",
        table_bytes as f64 / 1e6,
        table_bytes as f64 / events
    );
    Ok(())
}

/// What the end-to-end part measured.
struct NodesRun {
    /// One per node, its share of the uploads.
    reports: Vec<ingest::client::UploadReport>,
    /// From the first upload until every node had stopped (landing what it held).
    landed_after: Duration,
    /// Per node.
    nodes: Vec<NodeUsage>,
    /// `sqlite` or `postgres`.
    backend: &'static str,
}

/// What one `serve` process used.
struct NodeUsage {
    /// User and system CPU time.
    cpu_seconds: f64,
    peak_rss_kib: u64,
}

/// Starts `args.nodes` servers on one warehouse (`WORK/warehouse`) and control plane, spreads
/// `bodies` over them round-robin (each node its share of the uploads in flight), and stops
/// them gracefully.
async fn run_nodes(
    data: &crate::DataArgs,
    work: &tempfile::TempDir,
    bodies: Vec<Vec<u8>>,
    args: &IngestBenchArgs,
) -> Result<NodesRun> {
    let nodes = usize::from(args.nodes);
    let node_data: Vec<crate::DataArgs> = (0..nodes)
        .map(|n| crate::DataArgs {
            data_dir: work.path().join(format!("node-{n}")),
            warehouse: Some(work.path().join("warehouse").display().to_string()),
            tenant: "bench".into(),
            // The first node's folder holds the SQLite file when no database is named.
            control_db: Some(
                data.control_db
                    .clone()
                    .unwrap_or_else(|| work.path().join("node-0").join("control.db").display().to_string()),
            ),
            query_memory: data.query_memory,
            cluster: data.cluster.clone(),
        })
        .collect();
    for node in &node_data {
        std::fs::create_dir_all(&node.data_dir)?;
    }
    let control = crate::admin::open(&node_data[0]).await?;
    let backend = control.backend();
    anyhow::ensure!(
        nodes == 1 || control.shared_between_nodes(),
        "{nodes} nodes must share their batch claims: pass --control-db postgres://…"
    );
    let (key, _) = control
        .create_key(
            &control::AuditContext::cli(None),
            "bench",
            control::KeyKind::Agent,
            None,
            None,
        )
        .await?;
    control.close().await;
    let servers = node_data
        .iter()
        .map(|node| ServerProcess::start(node, &["--maintenance-interval-minutes", "0"]))
        .collect::<Result<Vec<_>>>()?;
    let peaks: Vec<Arc<AtomicU64>> = servers.iter().map(|_| Arc::new(AtomicU64::new(0))).collect();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let pids: Vec<String> = servers.iter().map(|s| s.pid.to_string()).collect();
        let (peaks, done) = (peaks.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                for (pid, peak) in pids.iter().zip(&peaks) {
                    if let Some(kib) = crate::memory_stats::status_kib(pid, "VmHWM") {
                        peak.fetch_max(kib, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let mut shares: Vec<Vec<Vec<u8>>> = vec![Vec::new(); nodes];
    for (n, body) in bodies.into_iter().enumerate() {
        shares[n % nodes].push(body);
    }
    let in_flight = args.concurrency.div_ceil(nodes).max(1);
    let started = Instant::now();
    let uploads = servers.iter().zip(shares).map(|(server, share)| {
        let client = ingest::AgentClient::new(&server.base, &key);
        async move { client.upload_all(share, in_flight).await }
    });
    let reports = futures::future::try_join_all(uploads).await.context("uploading")?;
    let mut usage = Vec::new();
    for (server, peak) in servers.into_iter().zip(&peaks) {
        let pid = server.pid;
        let before_exit = cpu_seconds(pid);
        server.stop()?;
        usage.push(NodeUsage {
            // Read just before the stop (its final landing adds a little): /proc forgets a
            // process once it is reaped.
            cpu_seconds: before_exit.unwrap_or(0.0),
            peak_rss_kib: peak.load(Ordering::Relaxed),
        });
    }
    let landed_after = started.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler");
    Ok(NodesRun {
        reports,
        landed_after,
        nodes: usage,
        backend,
    })
}

/// User plus system CPU seconds of a live process, from `/proc/PID/stat` (in clock ticks of
/// 1/100 s, Linux's fixed USER_HZ).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields are counted after its closing parenthesis.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some((ticks(11)? + ticks(12)?) as f64 / 100.0)
}

/// A real `elevation serve` child process of a benchmark, on a free loopback port.
pub(crate) struct ServerProcess {
    child: std::process::Child,
    pub(crate) pid: u32,
    pub(crate) base: String,
}

impl ServerProcess {
    /// Starts `elevation serve` on `data`'s folder and control plane with `extra` flags, and
    /// reads the address it prints.
    pub(crate) fn start(data: &crate::DataArgs, extra: &[&str]) -> Result<ServerProcess> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data.data_dir)
            .arg("--control-db")
            .arg(crate::admin::control_db(data).as_arg())
            .args(data.warehouse.iter().flat_map(|w| ["--warehouse", w.as_str()]))
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Quiet unless the caller asked for a log (RUST_LOG=warn,ingest::landing=debug shows
            // where each landing's time goes).
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,buoyant_kernel::snapshot::builder=off".into()),
            )
            .spawn()
            .context("starting elevation serve")?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        lines.read_line(&mut line)?;
        let base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .with_context(|| format!("unexpected first line from the server: {line:?}"))?
            .to_owned();
        // Keep reading so the server never writes into a closed pipe.
        std::thread::spawn(move || for _ in lines.lines() {});
        Ok(ServerProcess {
            pid: child.id(),
            child,
            base,
        })
    }

    /// Waits until the server has landed everything it acknowledged (`/readyz`).
    pub(crate) async fn wait_until_landed(&self, http: &reqwest::Client) -> Result<()> {
        loop {
            let ready: serde_json::Value = http.get(format!("{}/readyz", self.base)).send().await?.json().await?;
            if ready["waitingToLand"] == 0 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGTERM, and waits for the graceful stop (which lands what is left).
    pub(crate) fn stop(mut self) -> Result<()> {
        Command::new("kill").args(["-TERM", &self.pid.to_string()]).status()?;
        let status = self.child.wait()?;
        anyhow::ensure!(status.success(), "the server exited with {status}");
        Ok(())
    }
}
