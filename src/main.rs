//! The `elevation` binary: parses the command line and calls the libraries. No logic of the
//! product lives here; every subcommand is a few lines that hand over to a crate.

mod demo;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};
use warehouse::Clock;

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
struct DataArgs {
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
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The whole pipeline in one go on a simulated fleet, printing the headline figures.
    Demo(DemoArgs),
    /// Simulate a fleet: upload-ready batches and the ground truth every report must show.
    Simulate(SimulateArgs),
    /// The ingest + admin + dashboard server.
    Serve,
    /// One report from the warehouse.
    Report {
        /// Report name: elevations, managed-elevations, by-application, by-publisher, by-user,
        /// overview, trend, denied, diagnostics.
        name: String,
    },
    /// Rule-tuning suggestions with their evidence.
    Suggest,
    /// Suggestions as an importable policy.
    Export,
    /// A compliance evidence pack for a period.
    Compliance,
    /// Create, list and revoke agent and admin keys.
    Keys,
    /// Merge small files of the warehouse tables.
    Compact,
    /// Apply the retention policy to the warehouse tables.
    Retention,
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
    /// Upload the batches to a running server instead (not built yet: issue #3).
    #[arg(long, value_name = "URL")]
    target: Option<String>,
}

fn parse_date(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|e| format!("expected YYYY-MM-DD: {e}"))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn,elevation=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
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
    match cli.command {
        Command::Demo(args) => {
            let dir = cli.data.data_dir.join("demo-fleet");
            demo::run(&dir, args.seed, args.devices, args.days, today)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Simulate(args) => {
            if args.target.is_some() {
                return not_built(
                    "simulate --target",
                    "uploading to a server arrives with the ingest service (issue #3)",
                );
            }
            let Some(out) = args.out else {
                anyhow::bail!("simulate needs --out DIR (uploading with --target arrives with the ingest service)");
            };
            let config = simulator::SimConfig {
                upload_interval_hours: args.upload_interval_hours,
                rate: args.intensity,
                tenant: cli.data.tenant,
                ..simulator::SimConfig::new(args.seed, args.devices, args.days, args.end.unwrap_or(today))
            };
            let written =
                simulator::write_dir(&config, &out).with_context(|| format!("simulating into {}", out.display()))?;
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
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve => not_built("serve", "the ingest service is issue #3"),
        Command::Report { .. } => not_built("report", "reports are issue #5"),
        Command::Suggest => not_built("suggest", "rule-tuning suggestions are issue #6"),
        Command::Export => not_built("export", "policy exports are issue #6"),
        Command::Compliance => not_built("compliance", "compliance packs are not scheduled yet"),
        Command::Keys => not_built("keys", "agent and admin keys arrive with the ingest service (issue #3)"),
        Command::Compact => not_built("compact", "warehouse maintenance is issue #4"),
        Command::Retention => not_built("retention", "warehouse maintenance is issue #4"),
    }
}

/// Says plainly that a subcommand does not exist yet, and fails: never a fake result.
fn not_built(command: &str, why: &str) -> Result<ExitCode> {
    eprintln!("elevation {command} is not built yet: {why}");
    Ok(ExitCode::from(2))
}
