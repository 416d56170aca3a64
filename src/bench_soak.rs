//! `elevation bench soak`: a real `elevation serve` process under mixed load for a long time —
//! agents uploading at a set rate, an admin loading reports and suggestions every few seconds,
//! maintenance on its schedule — with the latency of every request and the server's resident
//! memory, window by window; then the same queries on the same data with the uploads stopped,
//! which is what "idle" means in the comparison. Run it from a release build.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use warehouse::Clock;

use crate::bench::ServerProcess;

/// Settings of the soak.
#[derive(Debug, Clone, Args)]
pub(crate) struct SoakBenchArgs {
    /// Minutes of mixed load.
    #[arg(long, default_value_t = 30)]
    minutes: u64,
    /// Upload rate to hold, in events per second (half of `bench ingest`'s maximum on the
    /// 2-core machine of BENCHMARKS.md).
    #[arg(long, default_value_t = 100_000)]
    events_per_second: u64,
    /// Events per uploaded batch.
    #[arg(long, default_value_t = 1000)]
    batch_events: usize,
    /// Uploads in flight at most (simulated agents at once).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Milliseconds between the admin's requests (Overview, trend, by-application, denied
    /// and suggestions in turn, one at a time).
    #[arg(long, default_value_t = 2000)]
    query_every_ms: u64,
    /// Minutes per line of the result.
    #[arg(long, default_value_t = 5)]
    window_minutes: u64,
    /// Seconds of queries alone on the same data once the uploads have stopped and landed.
    #[arg(long, default_value_t = 60)]
    idle_seconds: u64,
    /// Minutes between the server's maintenance passes.
    #[arg(long, default_value_t = 10)]
    maintenance_interval_minutes: u64,
    /// The tenant the agents upload into (default: the admin's, `--tenant`). Another tenant is
    /// a provider's node: many tenants' agents upload while one tenant's admin reads reports
    /// over data the uploads do not change, so the latencies measure the sharing of the
    /// machine, not the growth of the admin's data.
    #[arg(long)]
    upload_tenant: Option<String>,
    /// Date the uploaded events within this many hours before the soak starts, as real agents
    /// send the last hours' events (default: the benchmark pool's six days, every day of the
    /// admin's windows changing).
    #[arg(long)]
    events_within_hours: Option<u32>,
}

/// One request's outcome.
#[derive(Debug, Clone)]
struct Sample {
    /// Since the start of the soak.
    at: Duration,
    what: &'static str,
    status: u16,
    latency: Duration,
}

/// Batches whose batch and event ids carry a fixed-width round marker, rewritten in place for
/// each round so every upload is new (never a duplicate) without generating or compressing
/// JSON while the clock runs: the load generator shares the machine with the server.
struct Templates {
    bodies: Vec<Vec<u8>>,
    /// Where `MARKER` starts in each body.
    markers: Vec<Vec<usize>>,
}

const MARKER: &[u8] = b"r00000000";

/// `at` moved into `(now - within, now]` by whole multiples of `within` (an instant already
/// there stays): the pool's spread, folded into the last hours.
fn recent(
    at: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
    within: chrono::Duration,
) -> chrono::DateTime<chrono::Utc> {
    let span = within.num_microseconds().unwrap_or(i64::MAX).max(1);
    let back = (now - at).num_microseconds().unwrap_or(0).rem_euclid(span);
    now - chrono::Duration::microseconds(back)
}

impl Templates {
    /// `count` templates of `per_batch` events; with `within`, each event's instant moved into
    /// the span that long before now, keeping its time of day where the span allows.
    fn new(count: usize, per_batch: usize, within: Option<chrono::Duration>) -> Result<Templates> {
        let mut pool = crate::bench::event_pool(11)?;
        if let Some(within) = within {
            let now = warehouse::SystemClock.now();
            for event in &mut pool {
                event.event_date_time = recent(event.event_date_time, now, within);
            }
        }
        let marker = std::str::from_utf8(MARKER).expect("ASCII");
        let mut bodies = Vec::with_capacity(count);
        let mut markers = Vec::with_capacity(count);
        let mut next = 0usize;
        for b in 0..count {
            let batch = crate::bench::pool_batch(&pool, &mut next, &format!("soak-{marker}"), "soak", b, per_batch);
            let body = serde_json::to_vec(&batch)?;
            markers.push(
                body.windows(MARKER.len())
                    .enumerate()
                    .filter(|(_, w)| *w == MARKER)
                    .map(|(i, _)| i)
                    .collect(),
            );
            bodies.push(body);
        }
        Ok(Templates { bodies, markers })
    }

    /// Upload `n`: template `n % count` with round `n / count` written into its ids.
    fn body(&self, n: usize) -> Vec<u8> {
        let which = n % self.bodies.len();
        let round = format!("r{:08}", n / self.bodies.len());
        let mut body = self.bodies[which].clone();
        for &at in &self.markers[which] {
            body[at..at + MARKER.len()].copy_from_slice(round.as_bytes());
        }
        body
    }
}

/// Runs `bench soak`.
pub(crate) async fn soak(data: &crate::DataArgs, args: SoakBenchArgs) -> Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build; soak figures need `cargo run --release -- bench soak`");
    }
    let per_batch = args.batch_events.max(1);
    println!("preparing 256 batch templates of {per_batch} events…");
    let within = args
        .events_within_hours
        .map(|hours| chrono::Duration::hours(i64::from(hours.max(1))));
    let templates = Arc::new(tokio::task::spawn_blocking(move || Templates::new(256, per_batch, within)).await??);
    let control = crate::admin::open(data).await?;
    let audit = control::AuditContext::cli(None);
    let upload_tenant = args.upload_tenant.as_deref().unwrap_or(&data.tenant);
    let (agent_key, _) = control
        .create_key(&audit, upload_tenant, control::KeyKind::Agent, None, None)
        .await?;
    let (admin_key, _) = control
        .create_key(
            &audit,
            &data.tenant,
            control::KeyKind::Admin,
            Some(control::Role::ReadOnlyOperator),
            Some("soak@bench.example"),
        )
        .await?;
    control.close().await;
    let server = ServerProcess::start(
        data,
        &[
            "--maintenance-interval-minutes",
            &args.maintenance_interval_minutes.to_string(),
        ],
    )?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
    let started = Instant::now();
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let rss: Arc<Mutex<Vec<(Duration, u64)>>> = Arc::default();
    let stop_uploads = Arc::new(tokio::sync::Notify::new());
    // Checked at each tick: a `Notify` would be missed by a loop busy with a request.
    let stop_queries = Arc::new(std::sync::atomic::AtomicBool::new(false));

    let sampler = {
        let (rss, pid) = (rss.clone(), server.pid.to_string());
        let stop = stop_queries.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_secs(5));
            loop {
                ticks.tick().await;
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                if let Some(kib) = crate::memory_stats::status_kib(&pid, "VmRSS") {
                    rss.lock().expect("not poisoned").push((started.elapsed(), kib));
                }
            }
        })
    };
    let uploads = tokio::spawn(upload_at_rate(
        http.clone(),
        format!("{}/v1/agent/batches", server.base),
        agent_key,
        templates,
        (args.events_per_second as f64 / per_batch as f64).max(0.01),
        args.concurrency.max(1),
        started,
        samples.clone(),
        stop_uploads.clone(),
    ));
    let queries = tokio::spawn(query_every(
        http.clone(),
        server.base.clone(),
        admin_key,
        Duration::from_millis(args.query_every_ms.max(100)),
        started,
        samples.clone(),
        stop_queries.clone(),
    ));

    // Each window's line as it ends, on standard error: a run cut short (a full disk, a
    // killed terminal) still leaves its figures. The table at the end is the record.
    let progress = {
        let (samples, rss, args) = (samples.clone(), rss.clone(), args.clone());
        let window = Duration::from_secs(args.window_minutes.max(1) * 60);
        tokio::spawn(async move {
            let mut ended = 0u32;
            loop {
                tokio::time::sleep_until((started + window * (ended + 1)).into()).await;
                let (from, to) = (window * ended, window * (ended + 1));
                let row = window_row(
                    &args,
                    &samples.lock().expect("not poisoned"),
                    &rss.lock().expect("not poisoned"),
                    &window_label(from, to),
                    from,
                    to,
                    to,
                );
                eprintln!("{row}");
                ended += 1;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(args.minutes * 60)).await;
    stop_uploads.notify_one();
    let sent = uploads.await?;
    // After the uploads' last requests: the last window's line is due at the same instant.
    progress.abort();
    let loaded = started.elapsed();
    println!(
        "uploads stopped after {:.0} s; waiting for the backlog to land…",
        loaded.as_secs_f64()
    );
    server.wait_until_landed(&http).await?;
    let idle_from = started.elapsed();
    tokio::time::sleep(Duration::from_secs(args.idle_seconds)).await;
    stop_queries.store(true, std::sync::atomic::Ordering::Relaxed);
    queries.await?;
    sampler.await?;
    server.stop()?;

    let samples = samples.lock().expect("not poisoned").clone();
    let rss = rss.lock().expect("not poisoned").clone();
    print_result(&args, sent, &samples, &rss, loaded, idle_from);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn upload_at_rate(
    http: reqwest::Client,
    url: String,
    key: String,
    templates: Arc<Templates>,
    batches_per_second: f64,
    concurrency: usize,
    started: Instant,
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<tokio::sync::Notify>,
) -> usize {
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / batches_per_second));
    // Behind schedule (the server or this machine is saturated), the rate is what it is: no
    // burst to catch up, which would measure the burst instead.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let in_flight = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    let mut sent = 0usize;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.notified() => break,
        }
        let permit = in_flight.clone().acquire_owned().await.expect("never closed");
        let request = http
            .post(&url)
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(templates.body(sent));
        sent += 1;
        let samples = samples.clone();
        tasks.spawn(async move {
            timed(request, "upload", started, &samples).await;
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    sent
}

/// The admin's requests, in turn: the names in the result, their paths and spans in hours (the
/// window the dashboards send for that span, ending when each is sent, and their page size).
const QUERIES: [(&str, &str, i64); 5] = [
    ("overview 48 h", "/v1/reports/overview", 48),
    ("trend 30 d", "/v1/reports/trend", 30 * 24),
    ("by-application 30 d", "/v1/reports/by-application", 30 * 24),
    ("denied 30 d", "/v1/reports/denied", 30 * 24),
    ("suggestions 30 d", "/v1/suggestions", 30 * 24),
];

async fn query_every(
    http: reqwest::Client,
    base: String,
    key: String,
    every: Duration,
    started: Instant,
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for (what, path, hours) in QUERIES.iter().cycle() {
        ticks.tick().await;
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let to = warehouse::SystemClock.now();
        // The window the dashboards' picker sends (48 h exact, 30 d from a midnight).
        let from = dashboards::views::window_start(to, chrono::Duration::hours(*hours));
        // And the first page of rows, as the report pages ask (the Overview's answer is a few
        // rows either way): `denied` over 30 days is 200,000 rows, which no page shows at once.
        let window = [
            ("from", from.to_rfc3339()),
            ("to", to.to_rfc3339()),
            ("limit", dashboards::pages::PAGE_ROWS.to_string()),
        ];
        let request = http.get(format!("{base}{path}")).query(&window).bearer_auth(&key);
        timed(request, what, started, &samples).await;
    }
}

/// Sends `request`, reads its whole answer, and records its status (0: no answer) and latency.
async fn timed(request: reqwest::RequestBuilder, what: &'static str, started: Instant, samples: &Mutex<Vec<Sample>>) {
    let at = started.elapsed();
    let sent_at = Instant::now();
    let status = match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let _ = response.bytes().await;
            status
        }
        Err(_) => 0,
    };
    let latency = sent_at.elapsed();
    samples.lock().expect("not poisoned").push(Sample {
        at,
        what,
        status,
        latency,
    });
}

fn quantile(latencies: &mut [Duration], q: f64) -> Option<f64> {
    if latencies.is_empty() {
        return None;
    }
    latencies.sort();
    let index = ((latencies.len() - 1) as f64 * q).round() as usize;
    Some(latencies[index].as_secs_f64() * 1e3)
}

fn cell(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.0}"))
}

/// A window's label in the result: `  5–10  min`.
fn window_label(from: Duration, to: Duration) -> String {
    format!("{:>3}–{:<3} min", from.as_secs() / 60, to.as_secs() / 60)
}

/// One line of the result: uploads stored and shed, latencies and the RSS peak of the samples
/// taken from `from` to `to` (the uploads ran until `loaded`).
fn window_row(
    args: &SoakBenchArgs,
    samples: &[Sample],
    rss: &[(Duration, u64)],
    label: &str,
    from: Duration,
    to: Duration,
    loaded: Duration,
) -> String {
    use std::fmt::Write as _;
    let within: Vec<&Sample> = samples.iter().filter(|s| s.at >= from && s.at < to).collect();
    let uploads: Vec<&&Sample> = within.iter().filter(|s| s.what == "upload").collect();
    let seconds = (to.min(loaded).saturating_sub(from)).as_secs_f64();
    let stored = uploads.iter().filter(|s| s.status == 200).count();
    let events_per_second = if seconds > 0.0 && to <= loaded {
        format!("{:.0}", stored as f64 * args.batch_events as f64 / seconds)
    } else {
        "–".to_owned()
    };
    let shed = uploads.iter().filter(|s| s.status != 200).count();
    let mut upload_latencies: Vec<Duration> = uploads.iter().map(|s| s.latency).collect();
    let mut row = format!(
        "{label:<14} {events_per_second:>10} {shed:>7} {:>12}",
        format!(
            "{}/{}",
            cell(quantile(&mut upload_latencies, 0.5)),
            cell(quantile(&mut upload_latencies, 0.99))
        )
    );
    for (what, _, _) in QUERIES {
        let answered: Vec<&&Sample> = within.iter().filter(|s| s.what == what).collect();
        let failed = answered.iter().filter(|s| s.status != 200).count();
        let mut latencies: Vec<Duration> = answered.iter().map(|s| s.latency).collect();
        let text = format!(
            "{}/{}{}",
            cell(quantile(&mut latencies, 0.5)),
            cell(quantile(&mut latencies, 0.99)),
            if failed > 0 {
                format!(" ({failed} failed)")
            } else {
                String::new()
            }
        );
        let _ = write!(row, " {text:>20}");
    }
    let peak = rss
        .iter()
        .filter(|(at, _)| *at >= from && *at < to)
        .map(|(_, kib)| *kib)
        .max();
    let _ = write!(
        row,
        " {:>8}",
        peak.map_or_else(|| "–".to_owned(), |kib| format!("{:.0}", kib as f64 / 1024.0))
    );
    row
}

fn print_result(
    args: &SoakBenchArgs,
    sent: usize,
    samples: &[Sample],
    rss: &[(Duration, u64)],
    loaded: Duration,
    idle_from: Duration,
) {
    println!();
    println!(
        "elevation bench soak — {} min at {} events/s asked ({}-event batches, {} in flight), a request every {} ms, maintenance every {} min",
        args.minutes,
        args.events_per_second,
        args.batch_events,
        args.concurrency,
        args.query_every_ms,
        args.maintenance_interval_minutes
    );
    println!(
        "uploads into {}, events dated {}",
        args.upload_tenant.as_deref().unwrap_or("the admin's tenant"),
        args.events_within_hours.map_or_else(
            || "over the six days before today".to_owned(),
            |h| format!("within the last {h} hours")
        )
    );
    println!("latencies in ms, p50/p99 (requests); RSS of the server, MiB, highest sample of the window");
    print!("{:<14} {:>10} {:>7} {:>12}", "window", "events/s", "shed", "upload");
    for (what, _, _) in QUERIES {
        print!(" {what:>20}");
    }
    println!(" {:>8}", "RSS");
    let window = Duration::from_secs(args.window_minutes.max(1) * 60);
    // Whole windows; the seconds the stop takes past the last one belong to it.
    let windows = ((loaded.as_secs_f64() / window.as_secs_f64()).round() as u32).max(1);
    let mut bounds: Vec<(String, Duration, Duration)> = (0..windows)
        .map(|i| {
            let start = window * i;
            let end = if i + 1 == windows { loaded } else { window * (i + 1) };
            (window_label(start, end), start, end)
        })
        .collect();
    bounds.push(("idle after".to_owned(), idle_from, Duration::MAX));
    for (label, from, to) in bounds {
        println!("{}", window_row(args, samples, rss, &label, from, to, loaded));
    }
    println!("{sent} batches sent in all");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_folded_into_the_last_hours_and_recent_ones_stay() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-07T10:30:00Z")
            .unwrap()
            .to_utc();
        let within = chrono::Duration::hours(6);
        let at = |text: &str| chrono::DateTime::parse_from_rfc3339(text).unwrap().to_utc();
        assert_eq!(
            recent(at("2026-12-07T09:00:00Z"), now, within),
            at("2026-12-07T09:00:00Z")
        );
        // Five days and an hour and a half back: folded by whole six-hour spans.
        assert_eq!(
            recent(at("2026-12-02T09:00:00Z"), now, within),
            at("2026-12-07T09:00:00Z")
        );
        assert_eq!(
            recent(at("2026-12-01T05:00:00Z"), now, within),
            at("2026-12-07T05:00:00Z")
        );
        for hours in 0..200 {
            let folded = recent(now - chrono::Duration::minutes(hours * 37 + 1), now, within);
            assert!(folded <= now && folded > now - within, "{folded}");
        }
    }
}
