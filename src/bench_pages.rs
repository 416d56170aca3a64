//! `elevation bench pages`: the server time of every dashboard page over an existing warehouse
//! (the time to compute and render it, without the network), and the bytes the browser loads
//! for it as sent and gzip-compressed. Run it from a release build.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use dashboards::pages::{self, Viewer};
use dashboards::views::Mode;
use warehouse::{Clock, Warehouse};

use crate::DataArgs;

/// Settings of the page benchmark.
#[derive(Debug, Args)]
pub(crate) struct PagesBenchArgs {
    /// Runs per page after a first, unmeasured one; the median and the slowest are shown.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// End of the pages' window (RFC 3339 or YYYY-MM-DD); default now.
    #[arg(long)]
    to: Option<String>,
    /// Days in the window of every page but the 48-hour Overview.
    #[arg(long, default_value_t = 30)]
    days: i64,
    /// Only the pages whose name in the table contains this text (`denied`, `report`), to time
    /// or profile one page alone.
    #[arg(long)]
    only: Option<String>,
}

fn gzip_len(body: &[u8]) -> Result<usize> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(body)?;
    Ok(encoder.finish()?.len())
}

/// Runs `bench pages`.
pub(crate) async fn pages(data: &DataArgs, location: warehouse::Location, args: PagesBenchArgs) -> Result<()> {
    let control = crate::admin::open(data).await?;
    let warehouse = Arc::new(Warehouse::new(location));
    let now = warehouse::SystemClock.now();
    let to = match &args.to {
        Some(text) => queries::request::parse_instant("to", text)?,
        None => now,
    };
    // The windows the dashboards' picker sends: whole days up to `to` (the last N days when
    // `to` is a midnight), and the Overview's exact 48 hours.
    let from = dashboards::views::window_start(to, chrono::Duration::days(args.days.max(1)));
    let from_48h = dashboards::views::window_start(to, chrono::Duration::hours(48));
    let api = dashboards::AdminApi {
        key_dir: None,
        control,
        warehouse: warehouse.clone(),
        clock: Arc::new(warehouse::FixedClock(to)),
    };
    let viewer = Viewer {
        tenant: data.tenant.clone(),
        who: "bench".into(),
        csrf: None,
        mode: Mode::Live,
        now: to,
    };
    let rows = queries::landed_counts(&warehouse, &data.tenant).await?;
    let window = |from: chrono::DateTime<chrono::Utc>| {
        vec![
            ("from".to_owned(), from.to_rfc3339()),
            ("to".to_owned(), to.to_rfc3339()),
        ]
    };
    // An elevation to show in detail: the newest of the window.
    let newest = queries::run(
        &warehouse,
        &queries::ReportRequest::parse(
            "elevations",
            &data.tenant,
            &[window(from), vec![("limit".into(), "1".into())]].concat(),
            to,
            warehouse::ReportingLevel::All,
        )?
        .request,
    )
    .await?;
    let id = newest
        .column("id")
        .and_then(|i| newest.rows.first().map(|r| r[i].clone()))
        .map(|cell| match cell {
            queries::Cell::Text(t) => t,
            _ => String::new(),
        })
        .context("the window holds no elevation to show in detail")?;
    // Its time, which the lists' links to the detail carry.
    let detail_params = match newest
        .column("eventDateTime")
        .and_then(|i| newest.rows.first().map(|r| &r[i]))
    {
        Some(queries::Cell::Time(at)) => {
            let mut params = window(from);
            params.push(("at".into(), dashboards::views::exact_instant(*at)));
            params
        }
        _ => window(from),
    };
    println!(
        "{} elevation rows of tenant {} in {}; pages over {} days to {}; median and slowest of {} runs",
        rows.elevations(),
        data.tenant,
        warehouse.location().display(),
        args.days,
        to.format("%Y-%m-%d %H:%M"),
        args.runs
    );
    if cfg!(debug_assertions) {
        println!("(a debug build: run `cargo run --release -- bench pages` for real figures)");
    }
    println!(
        "{:<28} {:>10} {:>10} {:>10} {:>10}",
        "page", "median ms", "slowest", "HTML KB", "gzip KB"
    );
    let mut names = vec![
        (
            "overview (48 h)".to_owned(),
            "overview".to_owned(),
            None,
            window(from_48h),
        ),
        (
            format!("overview ({} d)", args.days),
            "overview".to_owned(),
            None,
            window(from),
        ),
    ];
    for report in queries::ReportName::ALL {
        if report != queries::ReportName::Overview {
            names.push((
                format!("report {}", report.as_str()),
                "report".into(),
                Some(report.as_str().to_owned()),
                window(from),
            ));
        }
    }
    names.push(("elevation detail".into(), "elevation".into(), Some(id), detail_params));
    names.push(("suggestions".into(), "suggestions".into(), None, window(from)));
    names.push(("fleet".into(), "fleet".into(), None, window(from)));
    names.push(("when".into(), "when".into(), None, window(from)));
    // The page's own assets, loaded once per visit (cached after that).
    let assets: usize = pages::ASSETS
        .iter()
        .filter_map(|a| pages::asset(a))
        .map(|(_, bytes)| gzip_len(bytes).unwrap_or(bytes.len()))
        .sum();
    names.retain(|(label, ..)| args.only.as_deref().is_none_or(|only| label.contains(only)));
    for (label, page, argument, params) in names {
        let render = || async {
            match (page.as_str(), argument.as_deref()) {
                ("overview", _) => pages::overview(&api, &viewer, &params).await,
                ("report", Some(name)) => pages::report(&api, &viewer, name, &params).await,
                ("elevation", Some(id)) => pages::elevation(&api, &viewer, id, &params).await,
                ("suggestions", _) => pages::suggestions(&api, &viewer, &params).await,
                ("fleet", _) => pages::fleet(&api, &viewer, &params).await,
                _ => pages::when(&api, &viewer, &params).await,
            }
        };
        let body = render().await.with_context(|| format!("rendering {label}"))?;
        let mut times = Vec::with_capacity(args.runs);
        for _ in 0..args.runs.max(1) {
            let started = Instant::now();
            render().await?;
            times.push(started.elapsed());
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{label:<28} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
            ms(times[times.len() / 2]),
            ms(*times.last().unwrap()),
            body.len() as f64 / 1024.0,
            gzip_len(body.as_bytes())? as f64 / 1024.0
        );
    }
    println!(
        "assets ({}), loaded once: {:.1} KB gzip",
        pages::ASSETS.join(", "),
        assets as f64 / 1024.0
    );
    api.control.close().await;
    Ok(())
}
