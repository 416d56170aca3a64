//! `elevation scheduler` and `elevation executor`: a reporting cluster on Ballista (issue #20).
//! The processes themselves are the `cluster` crate's; this file only reads their flags.

use anyhow::{Context, Result};
use clap::Args;

/// `elevation scheduler`.
#[derive(Debug, Args)]
pub(crate) struct SchedulerArgs {
    /// Address for clients (`--cluster df://HOST:PORT`), executors and the REST API
    /// (`/api/executors`, `/api/jobs`); port 0 picks a free port (the address is printed).
    #[arg(long, env = "ELEVATION_SCHEDULER_LISTEN", default_value = "127.0.0.1:50050")]
    listen: std::net::SocketAddr,
    /// The host name executors and clients reach this scheduler by, when not the listening
    /// address (behind NAT, in containers).
    #[arg(long, env = "ELEVATION_SCHEDULER_EXTERNAL_HOST")]
    external_host: Option<String>,
    /// Seconds without a heartbeat after which an executor is dead and its tasks run elsewhere
    /// (at least three of the executors' --heartbeat-secs).
    #[arg(long, env = "ELEVATION_EXECUTOR_TIMEOUT_SECS", default_value_t = 180)]
    executor_timeout_secs: u64,
}

/// `elevation executor`.
#[derive(Debug, Args)]
pub(crate) struct ExecutorArgs {
    /// The scheduler to work for, as `df://HOST:PORT` (what clients give to --cluster).
    #[arg(long, env = "ELEVATION_SCHEDULER", default_value = "df://127.0.0.1:50050")]
    scheduler: String,
    /// Host to listen on (loopback unless told otherwise).
    #[arg(long, env = "ELEVATION_EXECUTOR_BIND_HOST", default_value = "127.0.0.1")]
    bind_host: String,
    /// The host name others reach this executor by, when not --bind-host.
    #[arg(long, env = "ELEVATION_EXECUTOR_EXTERNAL_HOST")]
    external_host: Option<String>,
    /// Arrow Flight port: results and shuffle data are fetched from it (0: a free port).
    #[arg(long, env = "ELEVATION_EXECUTOR_FLIGHT_PORT", default_value_t = 50051)]
    flight_port: u16,
    /// gRPC port: the scheduler hands tasks to it (0: a free port).
    #[arg(long, env = "ELEVATION_EXECUTOR_GRPC_PORT", default_value_t = 50052)]
    grpc_port: u16,
    /// Tasks run at once (0: one per core).
    #[arg(long, env = "ELEVATION_EXECUTOR_TASKS", default_value_t = 0)]
    concurrent_tasks: usize,
    /// Folder for shuffle files (default: a temporary folder).
    #[arg(long, env = "ELEVATION_EXECUTOR_WORK_DIR")]
    work_dir: Option<std::path::PathBuf>,
    /// Seconds between heartbeats to the scheduler: well under the scheduler's
    /// --executor-timeout-secs (a third at most), or the scheduler stops this executor as dead.
    #[arg(long, env = "ELEVATION_EXECUTOR_HEARTBEAT_SECS", default_value_t = 10)]
    heartbeat_secs: u64,
}

pub(crate) async fn scheduler(args: SchedulerArgs) -> Result<()> {
    let options = cluster::SchedulerOptions {
        bind: args.listen,
        external_host: args.external_host,
        executor_timeout_secs: args.executor_timeout_secs,
    };
    cluster::run_scheduler(options, |address| {
        println!("scheduler listening on df://{address} (REST API http://{address}/api/executors)");
    })
    .await?;
    Ok(())
}

pub(crate) async fn executor(args: ExecutorArgs) -> Result<()> {
    let scheduler = url::Url::parse(&args.scheduler).with_context(|| format!("--scheduler {:?}", args.scheduler))?;
    let (Some(host), Some(port)) = (scheduler.host_str(), scheduler.port()) else {
        anyhow::bail!("--scheduler {:?}: expected df://HOST:PORT", args.scheduler);
    };
    let options = cluster::ExecutorOptions {
        scheduler_host: host.to_owned(),
        scheduler_port: port,
        bind_host: args.bind_host,
        external_host: args.external_host,
        flight_port: args.flight_port,
        grpc_port: args.grpc_port,
        concurrent_tasks: args.concurrent_tasks,
        work_dir: args.work_dir,
        heartbeat_secs: args.heartbeat_secs,
    };
    let scheduler = args.scheduler.clone();
    cluster::run_executor(options, |ports| {
        println!(
            "executor for {scheduler}: flight port {}, grpc port {}",
            ports.flight, ports.grpc
        );
    })
    .await?;
    Ok(())
}
