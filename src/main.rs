//! The `elevation` binary: parses the command line and calls the libraries. No logic of the
//! product lives here; every subcommand is a few lines that hand over to a crate.

mod admin;
mod audit_render;
mod bench;
mod bench_pages;
mod bench_query;
mod bench_soak;
mod cluster_cmd;
mod compliance_cmd;
mod dashboard;
mod demo;
mod demo_requests;
mod maintain;
mod memory_stats;
mod node;
mod requests_cmd;
mod suggest;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};
use warehouse::Clock;

/// jemalloc instead of glibc's malloc: an ingest node allocates and frees large Arrow and zstd
/// buffers for every landing on many threads, between allocations that live for days. glibc's
/// per-thread arenas kept the freed space, so a fleet-scale run held more than twice its live
/// heap; jemalloc returned it and ran faster (see BENCHMARKS.md). Its settings are compiled in
/// (`JEMALLOC_SYS_WITH_MALLOC_CONF` in `.cargo/config.toml`): freed pages go back after 1 s
/// from a background thread instead of 10 s, because a landing frees hundreds of megabytes of
/// Arrow, zstd and Delta log buffers at once; that cut the fleet-scale peak from 736 to 550 MiB
/// at the same throughput. `_RJEM_MALLOC_CONF` in the environment overrides them.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Elevation telemetry and reporting for Endpoint Privilege Management: live reports, kept
/// for years, with explained rule suggestions and tamper-evident compliance packs.
#[derive(Debug, Parser)]
#[command(name = "elevation", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    data: DataArgs,
    #[command(subcommand)]
    command: Command,
}

/// Options shared by every subcommand that touches data.
#[derive(Debug, Args)]
pub(crate) struct DataArgs {
    /// The node's local state (write-ahead log, keys, tenant settings) and, unless
    /// --warehouse says otherwise, the warehouse in DIR/warehouse.
    #[arg(
        long,
        global = true,
        env = "ELEVATION_DATA_DIR",
        default_value = "./elevation-data",
        value_name = "DIR"
    )]
    data_dir: PathBuf,
    /// Where the tables live: a local folder or s3://bucket/prefix.
    #[arg(long, global = true, env = "ELEVATION_WAREHOUSE", value_name = "URL")]
    warehouse: Option<String>,
    /// The tenant a command run from the shell works on.
    #[arg(long, global = true, env = "ELEVATION_TENANT", default_value = "contoso")]
    tenant: String,
    /// The control plane's database (keys, tenant settings, rules policies, audit log): a
    /// SQLite file, or postgres://user@host:port/db for several nodes (default
    /// DATA_DIR/control.db).
    #[arg(
        long,
        global = true,
        env = "ELEVATION_CONTROL_DB",
        value_name = "URL",
        hide_env_values = true
    )]
    control_db: Option<String>,
    /// Memory all queries of this process may hold at once (reports, suggestions, compliance
    /// packs): `4GiB`, `512MiB`, or a share of the machine such as `25%` (the default). Sorts
    /// and aggregations beyond it spill to temporary files; a query that cannot spill fails
    /// with a clear error (`503 query_memory_exhausted` over HTTP) instead of the process
    /// being killed.
    #[arg(long, global = true, env = "ELEVATION_QUERY_MEMORY", value_name = "SIZE", value_parser = parse_memory)]
    query_memory: Option<u64>,
    /// Run reports, suggestions and compliance packs on this Ballista cluster (its scheduler,
    /// `df://HOST:PORT`, started by `elevation scheduler`) instead of in this process. The
    /// cluster's executors must reach the warehouse at the same address.
    #[arg(long, global = true, env = "ELEVATION_CLUSTER", value_name = "URL")]
    cluster: Option<String>,
}

/// A memory size: bytes with a unit (`512MiB`, `4 GiB`, `2G`) or a share of the machine (`25%`).
fn parse_memory(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let bytes = if let Some(percent) = text.strip_suffix('%') {
        let share: f64 = percent
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not a percentage such as 25%"))?;
        if !(share > 0.0 && share <= 100.0) {
            return Err(format!(
                "{text:?}: a share of the machine is more than 0% and at most 100%"
            ));
        }
        (queries::memory::machine_memory() as f64 * share / 100.0) as u64
    } else {
        text.parse::<bytesize::ByteSize>()
            .map_err(|e| format!("{text:?} is not a size such as 512MiB or 4GiB: {e}"))?
            .as_u64()
    };
    if bytes == 0 {
        return Err("the query memory must be more than 0 bytes".into());
    }
    Ok(bytes)
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The whole pipeline in one go: simulates a fleet, uploads it over HTTP to an in-process
    /// server, lands it in the warehouse and reads it back.
    Demo(DemoArgs),
    /// Simulate a fleet: upload-ready batches and the ground truth every report must show;
    /// with --target, upload them to a running server.
    Simulate(SimulateArgs),
    /// The ingest server (agent uploads, health, metrics, OpenAPI).
    Serve(ServeArgs),
    /// One report from the warehouse, for --tenant.
    Report(Box<ReportArgs>),
    /// Rule-tuning suggestions with their evidence, best first.
    Suggest(suggest::SuggestArgs),
    /// Suggestions as an importable policy.
    #[command(subcommand)]
    Export(suggest::ExportCommand),
    /// Import and list the tenant's Intune elevation rules policies.
    #[command(subcommand)]
    Rules(suggest::RulesCommand),
    /// Compliance evidence packs: make one for a period (signed), verify one, manage the
    /// signing key.
    #[command(subcommand)]
    Compliance(compliance_cmd::ComplianceCommand),
    /// The dashboards as a static snapshot (links work from disk) for --tenant.
    Dashboard(dashboard::DashboardArgs),
    /// Create, list and revoke agent and admin keys.
    #[command(subcommand)]
    Keys(admin::KeysCommand),
    /// Show or change the settings of the tenant given by --tenant.
    #[command(subcommand)]
    Tenant(admin::TenantCommand),
    /// The audit log: list it, verify its hash chains.
    #[command(subcommand)]
    Audit(admin::AuditCommand),
    /// Support-approved elevation requests of --tenant: list, show, approve, deny, revoke,
    /// and their numbers.
    #[command(subcommand)]
    Requests(requests_cmd::RequestsCommand),
    /// Webhooks told about --tenant's requests (Standard Webhooks or Teams).
    #[command(subcommand)]
    Webhooks(requests_cmd::WebhooksCommand),
    /// Merge the small files of the warehouse tables into large sorted ones, dropping duplicate
    /// event ids (the server also does this on its maintenance schedule).
    Compact {
        /// Which table: elevations, diagnostics or all.
        #[arg(long, default_value = "all", value_parser = ["elevations", "diagnostics", "all"])]
        table: String,
        #[command(flatten)]
        memory: MaintenanceMemoryArgs,
    },
    /// Delete rows older than each tenant's retention window and remove their files from
    /// storage (the server also does this on its maintenance schedule).
    Retention,
    /// Benchmarks (build with --release).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// The write-ahead log of a node's data folder.
    #[command(subcommand)]
    Wal(WalCommand),
    /// A Ballista scheduler for reports on a cluster (`--cluster df://HOST:PORT`).
    Scheduler(cluster_cmd::SchedulerArgs),
    /// A Ballista executor working for `--scheduler`.
    Executor(cluster_cmd::ExecutorArgs),
}

#[derive(Debug, Subcommand)]
enum WalCommand {
    /// Land the write-ahead log of another node's data folder (a node that died and will not
    /// come back, its disk attached here) into --warehouse, under that node's identity: what
    /// it already landed is not landed again. Refused while a node runs on that folder.
    Land {
        /// The dead node's data folder (holding `node-id` and `wal/`).
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Upload throughput over loopback HTTP against the in-process floor.
    Ingest(bench::IngestBenchArgs),
    /// Time every report over the warehouse (--warehouse or DATA_DIR/warehouse, --tenant),
    /// and DuckDB over the same Parquet files.
    Query(bench_query::QueryBenchArgs),
    /// Time every dashboard page (server time) over the warehouse, and its size as sent and
    /// gzip-compressed.
    Pages(bench_pages::PagesBenchArgs),
    /// Mixed load on a real server for a long time (uploads at a set rate, reports and
    /// suggestions every few seconds, maintenance on its schedule): latencies and memory,
    /// window by window, then the same queries idle (build with --release).
    Soak(bench_soak::SoakBenchArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, env = "ELEVATION_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// How often acknowledged batches are committed to the tables (milliseconds).
    #[arg(long, env = "ELEVATION_LAND_INTERVAL_MS", default_value_t = 500)]
    land_interval_ms: u64,
    /// Uploads handled at once; more are answered 503 with Retry-After.
    #[arg(long, env = "ELEVATION_MAX_CONCURRENT_UPLOADS", default_value_t = 256)]
    max_concurrent_uploads: usize,
    /// Seconds a client may take to send a request's headers; a slower one is disconnected.
    #[arg(long, env = "ELEVATION_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    header_timeout_secs: u64,
    /// Seconds an upload's body may take to arrive after its headers; a slower one is answered
    /// 408 request_timeout.
    #[arg(long, env = "ELEVATION_BODY_TIMEOUT_SECS", default_value_t = 60)]
    body_timeout_secs: u64,
    /// Largest upload body as sent, in MiB (gzip or zstd bodies count compressed).
    #[arg(long, env = "ELEVATION_MAX_BODY_MIB", default_value_t = 8)]
    max_body_mib: usize,
    /// Largest upload body after decompression, in MiB; decompression stops there.
    #[arg(long, env = "ELEVATION_MAX_DECOMPRESSED_MIB", default_value_t = 32)]
    max_decompressed_mib: usize,
    /// Most events (elevations plus diagnostics) in one batch.
    #[arg(long, env = "ELEVATION_MAX_EVENTS", default_value_t = 10_000)]
    max_events: usize,
    /// MiB acknowledged but not yet landed above which uploads get 503 landing_backlog.
    #[arg(long, env = "ELEVATION_MAX_BUFFERED_MIB", default_value_t = ingest::DEFAULT_MAX_BUFFERED_MIB)]
    max_buffered_mib: usize,
    /// Days a batch id is remembered: a retry within them gets the first answer.
    #[arg(long, env = "ELEVATION_DEDUP_DAYS", default_value_t = 7)]
    dedup_days: u32,
    /// Serve HTTPS with this PEM certificate (chain included); read again when it changes
    /// (needs --tls-key).
    #[arg(long, env = "ELEVATION_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "ELEVATION_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Minutes between maintenance passes (retention, then compaction); 0 turns them off.
    #[arg(long, env = "ELEVATION_MAINTENANCE_INTERVAL_MINUTES", default_value_t = 60)]
    maintenance_interval_minutes: u64,
    /// Seconds between maintenance passes, when minutes are too coarse (overrides
    /// --maintenance-interval-minutes; 0 turns them off).
    #[arg(long, env = "ELEVATION_MAINTENANCE_INTERVAL_SECS")]
    maintenance_interval_secs: Option<u64>,
    /// Seconds a node's maintenance lease lasts: with several nodes on one control-plane
    /// database, one node at a time runs the passes, and another takes over this long after it
    /// stops renewing (it renews every third of it).
    #[arg(long, env = "ELEVATION_MAINTENANCE_LEASE_SECS", default_value_t = 60)]
    maintenance_lease_secs: u64,
    #[command(flatten)]
    maintenance_memory: MaintenanceMemoryArgs,
    /// While the control-plane database is unreachable, agent keys verified within this many
    /// minutes keep uploading (admin calls answer 503).
    #[arg(long, env = "ELEVATION_OFFLINE_GRACE_MINUTES", default_value_t = 15)]
    offline_grace_minutes: u64,
    /// Let webhooks target http:// on this machine's loopback (a local receiver, tests); by
    /// default a webhook must be https and never a private or link-local address.
    #[arg(long)]
    webhooks_allow_http_loopback: bool,
}

/// How much memory maintenance may take, shared by `compact` and `serve`.
#[derive(Debug, Args)]
struct MaintenanceMemoryArgs {
    /// MiB that compaction and the rollup refresh may sort and aggregate in; past it they spill
    /// to disk (the warehouse's _spill folder, or the system's temporary folder for S3).
    #[arg(
        long = "maintenance-memory-mib",
        env = "ELEVATION_MAINTENANCE_MEMORY_MIB",
        default_value_t = warehouse::maintenance::DEFAULT_MAINTENANCE_MEMORY >> 20
    )]
    mib: usize,
    /// MiB of the spill folder's disk that maintenance leaves free (default 5 % of the disk, at
    /// least 1024): a compaction whose sort would spill into them leaves its day for a later
    /// pass, so the write-ahead log on the same disk keeps room to acknowledge uploads.
    #[arg(
        long = "maintenance-disk-reserve-mib",
        env = "ELEVATION_MAINTENANCE_DISK_RESERVE_MIB"
    )]
    disk_reserve_mib: Option<u64>,
}

impl MaintenanceMemoryArgs {
    fn disk_reserve(&self) -> Option<u64> {
        self.disk_reserve_mib.map(|mib| mib << 20)
    }

    fn bytes(&self) -> usize {
        self.mib.max(1) << 20
    }
}

#[derive(Debug, Args)]
struct ReportArgs {
    /// Report name: elevations, managed-elevations, by-application, by-publisher, by-user,
    /// by-device, overview, trend, denied, diagnostics, compliance.
    name: String,
    /// Start of the window, inclusive: RFC 3339 or YYYY-MM-DD (default: 30 days before --to,
    /// 48 hours for overview).
    #[arg(long)]
    from: Option<String>,
    /// End of the window, exclusive: RFC 3339 or YYYY-MM-DD (midnight at its start; default now).
    #[arg(long)]
    to: Option<String>,
    /// table, csv or json.
    #[arg(long, default_value = "table")]
    format: String,
    /// native (camelCase, RFC 3339) or graph (the headers and spellings of Intune's export).
    #[arg(long, default_value = "native")]
    profile: String,
    /// Rows per page (event lists default to 1000, overview lists to 10; others show all).
    #[arg(long)]
    limit: Option<String>,
    /// Rows skipped before the page.
    #[arg(long)]
    offset: Option<String>,
    /// Only this elevation type.
    #[arg(long)]
    elevation_type: Option<String>,
    /// Only this user.
    #[arg(long)]
    upn: Option<String>,
    /// Only this device.
    #[arg(long)]
    device_name: Option<String>,
    /// Only this publisher.
    #[arg(long)]
    company_name: Option<String>,
    /// Only this SHA-256.
    #[arg(long)]
    hash: Option<String>,
    /// Only this file name.
    #[arg(long)]
    file_name: Option<String>,
    /// Only the elevation with this id.
    #[arg(long)]
    id: Option<String>,
    /// by-user: the users of one Overview readiness tile (onlyUnmanaged, both, onlyManaged).
    #[arg(long)]
    readiness: Option<String>,
    /// diagnostics: the rows of one kind (reportingDevices, errorCode, silentDevice, belowCap).
    #[arg(long)]
    kind: Option<String>,
    /// A column to order the rows by before the page is cut.
    #[arg(long)]
    sort: Option<String>,
    /// asc or desc (needs --sort).
    #[arg(long)]
    order: Option<String>,
    /// diagnostics: days without events after which a device counts as silent (default 3).
    #[arg(long)]
    silent_days: Option<String>,
}

impl ReportArgs {
    /// The options as the `key=value` parameters the admin API takes.
    fn params(&self) -> Vec<(String, String)> {
        [
            ("from", &self.from),
            ("to", &self.to),
            ("limit", &self.limit),
            ("offset", &self.offset),
            ("elevationType", &self.elevation_type),
            ("upn", &self.upn),
            ("deviceName", &self.device_name),
            ("companyName", &self.company_name),
            ("hash", &self.hash),
            ("fileName", &self.file_name),
            ("id", &self.id),
            ("readiness", &self.readiness),
            ("kind", &self.kind),
            ("sort", &self.sort),
            ("order", &self.order),
            ("silentDays", &self.silent_days),
            ("format", &Some(self.format.clone())),
            ("profile", &Some(self.profile.clone())),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_owned(), v.clone())))
        .collect()
    }
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Devices in the demo fleet.
    #[arg(long, env = "ELEVATION_DEMO_DEVICES", default_value_t = 200)]
    devices: u32,
    /// Days of history.
    #[arg(long, env = "ELEVATION_DEMO_DAYS", default_value_t = 7)]
    days: u32,
    /// Seed of the simulation.
    #[arg(long, env = "ELEVATION_DEMO_SEED", default_value_t = 42)]
    seed: u64,
}

#[derive(Debug, Args)]
struct SimulateArgs {
    /// Number of devices.
    #[arg(long, env = "ELEVATION_SIM_DEVICES", default_value_t = 1000)]
    devices: u32,
    /// Days of history, ending yesterday (or the day before --end).
    #[arg(long, env = "ELEVATION_SIM_DAYS", default_value_t = 7)]
    days: u32,
    /// Seed: the same seed, shape and end date give byte-identical output.
    #[arg(long, env = "ELEVATION_SIM_SEED", default_value_t = 7)]
    seed: u64,
    /// The window ends at midnight UTC starting this date (YYYY-MM-DD); default today (UTC).
    #[arg(long, env = "ELEVATION_SIM_END", value_parser = parse_date)]
    end: Option<NaiveDate>,
    /// Agents upload one batch per this many hours.
    #[arg(long, env = "ELEVATION_SIM_UPLOAD_INTERVAL_HOURS", default_value_t = 6)]
    upload_interval_hours: u32,
    /// Multiplies every user's elevation rate (benchmarks raise it).
    #[arg(long, env = "ELEVATION_SIM_INTENSITY", default_value_t = 1.0)]
    intensity: f64,
    /// Write the batches, ground-truth.json and world.json into this folder.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Upload the batches to the server at this URL (for example http://127.0.0.1:8080).
    #[arg(long, value_name = "URL")]
    target: Option<String>,
    /// Agent key for --target.
    #[arg(long, env = "ELEVATION_AGENT_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Uploads in flight at once with --target.
    #[arg(long, env = "ELEVATION_SIM_CONCURRENCY", default_value_t = 16)]
    concurrency: usize,
}

fn parse_date(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|e| format!("expected YYYY-MM-DD: {e}"))
}

/// Logs by default: warnings, and our own progress. The Delta kernel logs an error when it
/// looks for a table that does not exist yet, which is how every table starts; our own errors
/// report real failures. Delta's writer warns, for every file of a rollup, that it keeps no
/// statistics of binary columns (the rollups' bitmaps): nobody filters on them, by design.
const DEFAULT_LOG_FILTER: &str = "warn,elevation=info,ingest=info,control=info,buoyant_kernel::snapshot::builder=off,deltalake_core::writer::stats=error";

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| DEFAULT_LOG_FILTER.into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never into a log file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    if let Some(bytes) = cli.data.query_memory {
        queries::set_query_memory(bytes);
    }
    if let Some(url) = &cli.data.cluster
        && let Err(err) = queries::cluster::set_cluster(url)
    {
        eprintln!("error: {err}");
        return ExitCode::FAILURE;
    }
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let today = warehouse::SystemClock.now().date_naive();
    let data = cli.data;
    match cli.command {
        Command::Demo(args) => {
            runtime()?.block_on(demo::run(&data, args.seed, args.devices, args.days, today))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Simulate(args) => {
            let config = simulator::SimConfig {
                upload_interval_hours: args.upload_interval_hours,
                rate: args.intensity,
                tenant: data.tenant.clone(),
                ..simulator::SimConfig::new(args.seed, args.devices, args.days, args.end.unwrap_or(today))
            };
            match (args.out, args.target) {
                (_, Some(target)) => {
                    let key = args
                        .key
                        .context("--target needs --key (or ELEVATION_AGENT_KEY): an agent key of the tenant")?;
                    runtime()?.block_on(node::simulate_to(&config, &target, &key, args.concurrency))?;
                }
                (Some(out), None) => simulate_to_dir(&config, &out)?,
                (None, None) => anyhow::bail!("simulate needs --out DIR (write batches) or --target URL (upload them)"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(args) => {
            let mut config = ingest::IngestConfig::new(&data.data_dir);
            config.land_interval = std::time::Duration::from_millis(args.land_interval_ms.max(10));
            config.max_concurrent_uploads = args.max_concurrent_uploads.max(1);
            config.limits.max_body_bytes = args.max_body_mib.max(1) << 20;
            config.limits.max_decompressed_bytes = args.max_decompressed_mib.max(args.max_body_mib).max(1) << 20;
            config.limits.max_events = args.max_events.max(1);
            config.max_buffered_bytes = args.max_buffered_mib.max(1) << 20;
            config.dedup_window = chrono::Duration::days(i64::from(args.dedup_days.max(1)));
            config.timeouts.headers = std::time::Duration::from_secs(args.header_timeout_secs.max(1));
            config.timeouts.body = std::time::Duration::from_secs(args.body_timeout_secs.max(1));
            if let (Some(cert), Some(key)) = (args.tls_cert, args.tls_key) {
                config.tls = Some(web::server_config(web::TlsFiles { cert, key }).context("--tls-cert/--tls-key")?);
            }
            let location = node::location(&data)?;
            let maintenance_secs = args
                .maintenance_interval_secs
                .unwrap_or(args.maintenance_interval_minutes * 60);
            let maintenance = (maintenance_secs > 0).then(|| std::time::Duration::from_secs(maintenance_secs));
            let control = control::ControlOptions {
                offline_grace: std::time::Duration::from_secs(args.offline_grace_minutes * 60),
                webhooks_allow_http_loopback: args.webhooks_allow_http_loopback,
                ..Default::default()
            };
            let maintenance = node::Maintenance {
                every: maintenance,
                memory: args.maintenance_memory.bytes(),
                disk_reserve: args.maintenance_memory.disk_reserve(),
                lease: std::time::Duration::from_secs(args.maintenance_lease_secs.max(1)),
            };
            runtime()?.block_on(node::serve(&data, config, location, &args.listen, maintenance, control))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys(command) => {
            runtime()?.block_on(admin::keys(&data, command))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Tenant(command) => {
            runtime()?.block_on(admin::tenant(&data, command))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit(command) => runtime()?.block_on(admin::audit(&data, command)),
        Command::Requests(command) => {
            runtime()?.block_on(requests_cmd::run(&data, command))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Webhooks(command) => {
            runtime()?.block_on(requests_cmd::webhooks(&data, command))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Query(args)) => {
            let location = node::location(&data)?;
            runtime()?.block_on(bench_query::query(location, &data.tenant, args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Pages(args)) => {
            let location = node::location(&data)?;
            runtime()?.block_on(bench_pages::pages(&data, location, args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Soak(args)) => {
            runtime()?.block_on(bench_soak::soak(&data, args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Ingest(args)) => {
            runtime()?.block_on(bench::ingest(&data, args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Report(args) => {
            let location = node::location(&data)?;
            let runtime = runtime()?;
            let cap = runtime.block_on(async {
                let control = admin::open(&data).await?;
                anyhow::Ok(control.settings_of(&data.tenant).await?.reporting_cap)
            })?;
            let parsed = queries::ReportRequest::parse(
                &args.name,
                &data.tenant,
                &args.params(),
                warehouse::SystemClock.now(),
                cap,
            )?;
            queries::render::check_profile(parsed.request.name, parsed.profile)?;
            let warehouse = warehouse::Warehouse::new(location);
            let report = runtime.block_on(queries::run(&warehouse, &parsed.request))?;
            // Written straight to standard output: a whole report need not be held as text too.
            use std::io::Write as _;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            match parsed.format.unwrap_or(queries::Format::Table) {
                queries::Format::Table => {
                    out.write_all(queries::render::to_table(&report, parsed.profile)?.as_bytes())?
                }
                queries::Format::Csv => {
                    // The table and JSON carry it; CSV has no place for it.
                    if let Some(note) = report.coverage.describe() {
                        eprintln!("note: {note}");
                    }
                    queries::render::write_csv(&report, parsed.profile, &mut out)?
                }
                queries::Format::Json => {
                    serde_json::to_writer_pretty(
                        &mut out,
                        &queries::render::JsonAnswer::new(&report, parsed.profile)?,
                    )?;
                    out.write_all(b"\n")?;
                }
            };
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Suggest(args) => {
            runtime()?.block_on(suggest::suggest(&data, &args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Export(suggest::ExportCommand::Rules(args)) => {
            runtime()?.block_on(suggest::export_rules(&data, &args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Rules(command) => {
            runtime()?.block_on(suggest::rules(&data, &command))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Compliance(command) => runtime()?.block_on(compliance_cmd::run(&data, command)),
        Command::Dashboard(args) => {
            let index = dashboard::write(&data, &args)?;
            println!("dashboard snapshot written: open {}", index.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Compact { table, memory } => {
            let location = node::location(&data)?;
            let tables: Vec<warehouse::Table> = warehouse::Table::ALL
                .into_iter()
                .filter(|t| table == "all" || t.name() == table)
                .collect();
            runtime()?.block_on(maintain::compact(
                location,
                &tables,
                memory.bytes(),
                memory.disk_reserve(),
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Retention => {
            let location = node::location(&data)?;
            runtime()?.block_on(maintain::retention(&data, location, today))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Wal(WalCommand::Land { from }) => {
            let location = node::location(&data)?;
            runtime()?.block_on(node::land_log_of(&data, &from, location))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Scheduler(args) => {
            runtime()?.block_on(cluster_cmd::scheduler(args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Executor(args) => {
            runtime()?.block_on(cluster_cmd::executor(args))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn simulate_to_dir(config: &simulator::SimConfig, out: &std::path::Path) -> Result<()> {
    let written = simulator::write_dir(config, out).with_context(|| format!("simulating into {}", out.display()))?;
    let totals = &written.truth.totals;
    println!(
        "simulated {} devices over {} days (seed {}): {} batches, {} elevations ({} managed, {} unmanaged), {} diagnostic events",
        config.devices,
        config.days,
        config.seed,
        totals.batches,
        totals.elevations,
        totals.managed,
        totals.unmanaged,
        totals.diagnostics
    );
    println!("batches:      {}", written.batches_dir.display());
    println!("ground truth: {}", written.ground_truth.display());
    println!("world:        {}", written.world.display());
    Ok(())
}

#[cfg(all(test, not(target_env = "msvc")))]
mod tests {
    /// jemalloc was built with the settings of `.cargo/config.toml` (its background thread is
    /// off by default).
    #[test]
    fn the_allocator_runs_with_the_settings_compiled_in() {
        assert!(tikv_jemalloc_ctl::opt::background_thread::read().unwrap());
    }
}
