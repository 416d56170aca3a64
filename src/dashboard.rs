//! `elevation dashboard --out DIR`: the dashboards as a static snapshot, for people without
//! access to the server. Glue only: the pages are `dashboards::pages`.

use std::sync::Arc;

use anyhow::{Result, bail};
use clap::Args;
use warehouse::Clock;

use crate::DataArgs;

#[derive(Debug, Args)]
pub(crate) struct DashboardArgs {
    /// Folder to write the pages into (created; must be empty if it exists).
    #[arg(long, env = "ELEVATION_DASHBOARD_OUT")]
    out: std::path::PathBuf,
    /// Start of the window, inclusive: RFC 3339 or YYYY-MM-DD (default: the 30 days to --to, from a midnight UTC).
    #[arg(long, env = "ELEVATION_DASHBOARD_FROM")]
    from: Option<String>,
    /// End of the window, exclusive: RFC 3339 or YYYY-MM-DD (default: now).
    #[arg(long, env = "ELEVATION_DASHBOARD_TO")]
    to: Option<String>,
}

/// Writes every page of the snapshot and its assets; returns the index page's path.
pub(crate) fn write(data: &DataArgs, args: &DashboardArgs) -> Result<std::path::PathBuf> {
    let now = warehouse::SystemClock.now();
    let to = match &args.to {
        Some(t) => queries::request::parse_instant("to", t)?,
        None => chrono::SubsecRound::trunc_subsecs(now, 0),
    };
    let from = match &args.from {
        Some(t) => queries::request::parse_instant("from", t)?,
        None => dashboards::views::window_start(to, chrono::Duration::days(30)),
    };
    if from >= to {
        bail!("--from ({from}) must be before --to ({to})");
    }
    if args.out.exists() && std::fs::read_dir(&args.out)?.next().is_some() {
        bail!("{} exists and is not empty: choose a new folder", args.out.display());
    }
    let runtime = crate::runtime()?;
    let api = dashboards::AdminApi {
        control: runtime.block_on(crate::admin::open(data))?,
        warehouse: Arc::new(warehouse::Warehouse::new(crate::node::location(data)?)),
        clock: Arc::new(warehouse::SystemClock),
        key_dir: None,
    };
    let viewer = dashboards::pages::Viewer {
        tenant: data.tenant.clone(),
        who: format!("{} · snapshot of {}", data.tenant, now.format("%Y-%m-%d %H:%M UTC")),
        csrf: None,
        mode: dashboards::views::Mode::Static,
        now,
    };
    let pages = runtime.block_on(dashboards::pages::snapshot(&api, &viewer, from, to))?;
    std::fs::create_dir_all(args.out.join("assets"))?;
    for (file, html) in &pages {
        std::fs::write(args.out.join(file), html)?;
    }
    for name in dashboards::pages::ASSETS {
        let (_, bytes) = dashboards::pages::asset(name).expect("embedded asset");
        std::fs::write(args.out.join("assets").join(name), bytes)?;
    }
    Ok(args.out.join("index.html"))
}
