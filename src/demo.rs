//! `elevation demo`: the whole pipeline on a simulated fleet. It simulates the fleet, uploads
//! every batch over HTTP to an ingest server started in-process on a free loopback port, lets
//! the server land them in the warehouse, reads the tables back with DataFusion, checks them
//! against the simulator's ground truth, prints the Overview report computed by `queries`, then
//! imports the tenant's rules policies and ends with the top rule suggestions and the three
//! exports (Intune policy JSON, EPManager CSV, our JSON with the evidence), and a signed
//! compliance pack of the whole window, verified.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use control::{AuditContext, ControlPlane, KeyKind};
use warehouse::{Location, Warehouse};

use crate::DataArgs;

/// Runs the demo in the data folder (`demo-fleet/` for the simulated batches and truth,
/// `demo-node/` for the server's state, warehouse and control plane, unless `--control-db`
/// names another; both folders replaced on every run).
pub(crate) async fn run(data: &DataArgs, seed: u64, devices: u32, days: u32, end: NaiveDate) -> Result<()> {
    let data_dir = &data.data_dir;
    let config = simulator::SimConfig::new(seed, devices, days, end);
    let dir = data_dir.join("demo-fleet");
    let node_dir = data_dir.join("demo-node");
    for old in [&dir, &node_dir] {
        if old.exists() {
            std::fs::remove_dir_all(old).with_context(|| format!("clearing the previous demo in {}", old.display()))?;
        }
    }
    let written = simulator::write_dir(&config, &dir).context("simulating the demo fleet")?;
    let (bodies, _) = crate::node::simulated_bodies(&config)?;
    let node = DataArgs {
        data_dir: node_dir.clone(),
        warehouse: None,
        tenant: config.tenant.clone(),
        control_db: data.control_db.clone(),
        query_memory: data.query_memory,
        cluster: data.cluster.clone(),
    };
    std::fs::create_dir_all(&node_dir)?;
    let control = crate::admin::open(&node).await?;
    // The requests come first: the uploads' support-approved elevations then find the
    // approvals they ran under.
    let requests = crate::demo_requests::replay(&node, &config).await?;
    let landed = upload_and_land(&node_dir, &control, &config.tenant, bodies).await?;
    let t = &written.truth;
    let last_day = t.to.pred_opt().unwrap_or(t.to);
    println!(
        "elevation demo: a simulated fleet (seed {seed}), {} to {last_day}",
        t.from
    );
    println!();
    println!(
        "Fleet      {} devices, {} users ({} keep local admin rights), {} files, {} rules in {} policies",
        t.fleet.devices, t.fleet.users, t.fleet.admin_users, t.fleet.applications, t.fleet.rules, t.fleet.policies
    );
    let levels: Vec<String> = ["all", "managed", "diagnostic", "none"]
        .iter()
        .map(|l| format!("{l} {}", t.fleet.devices_per_level.get(*l).copied().unwrap_or(0)))
        .collect();
    println!("Levels     {}", levels.join(" · "));
    println!(
        "Uploaded   {} batches: {} elevations ({} managed, {} unmanaged) and {} diagnostic events",
        t.totals.batches, t.totals.elevations, t.totals.managed, t.totals.unmanaged, t.totals.diagnostics
    );
    println!(
        "Held back  {} elevations and {} diagnostic events never left devices whose reporting level forbids them",
        t.totals.filtered_elevations, t.totals.filtered_diagnostics
    );
    println!();
    landed.print(t)?;
    println!();
    let overview = overview_from_warehouse(&node_dir, t).await?;
    println!("Readiness (whole window, computed from the warehouse)");
    println!(
        "  users with only unmanaged elevations  {:>6}",
        tile(&overview, "usersOnlyUnmanaged")
    );
    println!(
        "  users with both                       {:>6}",
        tile(&overview, "usersBoth")
    );
    println!(
        "  users with only managed elevations    {:>6}   ready to run without admin rights",
        tile(&overview, "usersOnlyManaged")
    );
    print_files(
        "Frequently unmanaged (top applications by unmanaged elevations)",
        &overview,
        "frequentlyUnmanaged",
    );
    print_files(
        "Frequently approved by support",
        &overview,
        "frequentlyApprovedBySupport",
    );
    print_files("Frequently denied", &overview, "frequentlyDenied");
    println!();
    requests.check_and_print(&config).await?;
    println!();
    let found = suggestions(&node_dir, &control, &written, &t.tenant).await?;
    println!("Top rule suggestions (computed by `queries` from the warehouse and the imported policies)");
    for (rank, s) in found
        .suggestions
        .iter()
        .filter(|s| s.kind != queries::suggest::SuggestionKind::Readiness)
        .take(8)
        .enumerate()
    {
        let proposal = s
            .proposed_rule
            .as_ref()
            .map(|r| format!(" → {} rule", r.rule_type.as_str()))
            .unwrap_or_default();
        println!(
            "  {:>2}. {:<76} {:>5} events {:>4} users{proposal}",
            rank + 1,
            s.title,
            s.evidence.events,
            s.evidence.users,
        );
    }
    let readiness = found
        .suggestions
        .iter()
        .filter(|s| s.kind == queries::suggest::SuggestionKind::Readiness)
        .count();
    println!("      … and {readiness} readiness suggestions (per user still elevating without EPM, and the fleet)");
    println!();
    println!("Patterns planted for rule tuning (ground truth) and whether the suggestions found them");
    let mut missed = Vec::new();
    let thresholds = queries::suggest::Thresholds::default();
    for p in &t.planted_patterns {
        let hit = found.suggestions.iter().any(|s| {
            s.kind.as_str() == p.kind
                && s.file_name
                    .as_deref()
                    .is_some_and(|f| f.eq_ignore_ascii_case(&p.file_name))
        });
        let expected = reaches_thresholds(p, &thresholds);
        if expected && !hit {
            missed.push(p.kind.clone());
        }
        let state = match (hit, expected) {
            (true, _) => format!("found {}", p.kind),
            (false, false) => format!("(below thresholds) {}", p.kind),
            (false, true) => format!("MISSED {}", p.kind),
        };
        println!(
            "  {state:<48} {:<24} {:>5} events {:>4} users  {}",
            p.file_name, p.events, p.users, p.expected
        );
    }
    anyhow::ensure!(missed.is_empty(), "the suggestions missed planted patterns: {missed:?}");
    println!();
    let pack = compliance_pack(&node, &control, t).await?;
    println!();
    println!("Wrote");
    println!("  upload-ready batches  {}", written.batches_dir.display());
    println!("  ground truth          {}", written.ground_truth.display());
    println!("  simulated world       {}", written.world.display());
    println!(
        "  Intune policies       {} (imported with elevation rules import)",
        dir.join("intune-policies").display()
    );
    for path in &found.exports {
        println!("  export                {}", path.display());
    }
    println!();
    println!("  compliance pack       {} (signed; verified)", pack.display());
    println!("  warehouse tables      {}", landed.warehouse);
    println!();
    println!(
        "Everything above after the ingest lines is computed by `queries` from the warehouse. Try: \
         elevation --data-dir {} suggest; elevation --data-dir {} export rules --format intune",
        node_dir.display(),
        node_dir.display()
    );
    // The dashboards: the one command that serves this warehouse, and a key to sign in with.
    let (admin_key, _) = control
        .create_key(
            &AuditContext::cli(None),
            &config.tenant,
            KeyKind::Admin,
            Some(control::Role::EndpointPrivilegeManager),
            Some(&format!("demo-admin@{}.example", config.tenant)),
        )
        .await?;
    control.close().await;
    let control_db = data
        .control_db
        .as_deref()
        .map(|db| format!(" --control-db '{db}'"))
        .unwrap_or_default();
    println!();
    println!("Dashboards: serve this warehouse, open http://127.0.0.1:8080/ and sign in with the admin key");
    println!(
        "  cargo run --release -- --data-dir {}{control_db} serve --listen 127.0.0.1:8080",
        node_dir.display()
    );
    println!("  admin key (endpoint-privilege-manager): {admin_key}");
    Ok(())
}

/// A signing key for the demo node, a compliance pack of the fleet's whole window checked
/// against the ground truth, and its verification.
async fn compliance_pack(node: &DataArgs, control: &ControlPlane, truth: &simulator::GroundTruth) -> Result<PathBuf> {
    let key = compliance::keys::keygen(&node.data_dir)?;
    let midnight = |day: NaiveDate| day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
    let (from, to) = (midnight(truth.from), midnight(truth.to));
    let request = dashboards::pack_request(control, &truth.tenant, from, to, None).await?;
    let warehouse = Warehouse::new(crate::node::location(node)?);
    let out = node.data_dir.join("compliance-pack");
    let summary = compliance::pack(&warehouse, &request, &key, &out).await?;
    let draft = control::audit::compliance_pack_draft(from, to, &summary.manifest_sha256, summary.elevations);
    control.record(&AuditContext::cli(None), &truth.tenant, draft).await?;
    anyhow::ensure!(
        summary.elevations == truth.totals.elevations,
        "the pack holds {} elevations, the fleet sent {}",
        summary.elevations,
        truth.totals.elevations
    );
    let verification = compliance::verify(&out, key.public());
    anyhow::ensure!(
        verification.ok(),
        "the demo's pack does not verify: {:?}",
        verification.problems
    );
    println!("Compliance evidence pack (computed by `compliance` from the warehouse, signed, verified)");
    crate::compliance_cmd::print_summary(&summary, key.public());
    Ok(out)
}

/// Whether a planted pattern's evidence in this fleet is strong enough for the default
/// thresholds (a small or short fleet may not give it enough events).
fn reaches_thresholds(p: &simulator::truth::PlantedPattern, t: &queries::suggest::Thresholds) -> bool {
    match p.kind.as_str() {
        "newRule" => p.events >= t.min_events && p.users >= t.min_users,
        "supportApprovedToUserConfirmed" => p.users >= t.support_min_users,
        "hashChurnToCertificate" => p.hashes.len() as u64 >= t.churn_min_hashes,
        "frequentlyDenied" => p.events >= t.denied_min_events && p.users >= t.denied_min_users,
        "childProcess" => p.events >= t.child_min_events && p.users >= t.child_min_users,
        _ => true,
    }
}

/// The suggestions and their exports.
struct Found {
    suggestions: Vec<queries::suggest::Suggestion>,
    exports: Vec<std::path::PathBuf>,
}

/// Imports the fleet's Intune policies for the tenant (as an admin would), computes the
/// suggestions over the whole window and writes the three exports next to the node's data.
async fn suggestions(
    node_dir: &Path,
    control: &ControlPlane,
    written: &simulator::Written,
    tenant: &str,
) -> Result<Found> {
    let context = AuditContext::cli(None);
    for path in &written.policies {
        crate::suggest::import_policy_file(control, &context, tenant, path).await?;
    }
    let truth = &written.truth;
    let location = Location::parse(&node_dir.join("warehouse").to_string_lossy())?;
    let warehouse = Warehouse::new(location);
    let mut request = queries::suggest::SuggestRequest::new(
        tenant,
        truth.from.and_hms_opt(0, 0, 0).expect("midnight").and_utc(),
        truth.to.and_hms_opt(0, 0, 0).expect("midnight").and_utc(),
    );
    dashboards::suggest_inputs(control, &mut request).await?;
    let suggestions = queries::suggest::suggest(&warehouse, &request)
        .await
        .context("computing the suggestions")?;
    let exports_dir = node_dir.join("exports");
    std::fs::create_dir_all(&exports_dir)?;
    let mut exports = Vec::new();
    for format in [
        queries::export::ExportFormat::Intune,
        queries::export::ExportFormat::EpmanagerCsv,
        queries::export::ExportFormat::Json,
    ] {
        let text = queries::export::export(format, &suggestions, &request.thresholds, request.from, request.to)?;
        let draft = control::audit::export_draft(format.file_name(), request.from, request.to, suggestions.len());
        control.record(&context, tenant, draft).await?;
        let path = exports_dir.join(format.file_name());
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        exports.push(path);
    }
    Ok(Found { suggestions, exports })
}

/// The Overview report over the fleet's whole window, read back from the demo's warehouse.
async fn overview_from_warehouse(node_dir: &Path, truth: &simulator::GroundTruth) -> Result<queries::Report> {
    let location = Location::parse(&node_dir.join("warehouse").to_string_lossy())?;
    let warehouse = Warehouse::new(location);
    let params = [("from", truth.from.to_string()), ("to", truth.to.to_string())]
        .map(|(k, v)| (k.to_owned(), v))
        .to_vec();
    let now = warehouse::Clock::now(&warehouse::SystemClock);
    let parsed =
        queries::ReportRequest::parse("overview", &truth.tenant, &params, now, warehouse::ReportingLevel::All)?;
    queries::run(&warehouse, &parsed.request)
        .await
        .context("computing the overview report")
}

fn tile(overview: &queries::Report, name: &str) -> i64 {
    rows_of(overview, name)
        .first()
        .and_then(|r| r.get("count"))
        .and_then(|c| c.as_int())
        .unwrap_or(0)
}

fn rows_of<'r>(
    overview: &'r queries::Report,
    name: &str,
) -> Vec<std::collections::BTreeMap<&'r str, &'r queries::Cell>> {
    overview
        .records()
        .into_iter()
        .filter(|r| r.get("tile").and_then(|c| c.as_text()) == Some(name))
        .collect()
}

fn print_files(title: &str, overview: &queries::Report, name: &str) {
    println!("{title}");
    let rows = rows_of(overview, name);
    if rows.is_empty() {
        println!("  (none)");
    }
    for r in rows.iter().take(5) {
        let text = |k: &str| r.get(k).and_then(|c| c.as_text()).unwrap_or("-").to_owned();
        let int = |k: &str| r.get(k).and_then(|c| c.as_int()).unwrap_or(0);
        println!(
            "  {:<32} {:>6} elevations by {:>4} users",
            text("fileName"),
            int("count"),
            int("users")
        );
    }
}

/// What the in-process server took in and what the tables hold afterwards.
struct Landed {
    report: ingest::client::UploadReport,
    counts: queries::LandedCounts,
    files: u64,
    commits: u64,
    warehouse: String,
}

/// Starts an ingest server on a free loopback port, uploads every gzip body as agents
/// do, stops the server gracefully (which lands everything) and counts the landed rows.
async fn upload_and_land(
    node_dir: &Path,
    control: &Arc<ControlPlane>,
    tenant: &str,
    bodies: Vec<Vec<u8>>,
) -> Result<Landed> {
    let (key, _) = control
        .create_key(&AuditContext::cli(None), tenant, KeyKind::Agent, None, None)
        .await?;
    let location = Location::parse(&node_dir.join("warehouse").to_string_lossy())?;
    let warehouse = Arc::new(Warehouse::new(location));
    let node = ingest::Ingest::start(
        ingest::IngestConfig::new(node_dir),
        warehouse.clone(),
        Arc::new(warehouse::SystemClock),
        control.clone(),
    )
    .await
    .context("starting the in-process ingest server")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let router = web::app([node.face()]);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let stats = node.stats_handle();
    let server = tokio::spawn(ingest::serve(listener, node, router, async {
        let _ = stopped.await;
    }));
    let client = ingest::AgentClient::new(&base, &key);
    let report = client
        .upload_all(bodies, 16)
        .await
        .context("uploading the demo fleet")?;
    let _ = stop.send(());
    server.await.context("the server task")??;
    let counts = queries::landed_counts(&warehouse, tenant)
        .await
        .context("reading the landed tables")?;
    use std::sync::atomic::Ordering::Relaxed;
    Ok(Landed {
        report,
        counts,
        files: stats.files.load(Relaxed),
        commits: stats.commits.load(Relaxed),
        warehouse: warehouse.location().display(),
    })
}

impl Landed {
    /// Prints the ingest figures and fails when the tables disagree with the ground truth.
    fn print(&self, truth: &simulator::GroundTruth) -> Result<()> {
        let (accepted, dropped, rejected) = self.report.totals();
        let seconds = self.report.elapsed.as_secs_f64();
        println!(
            "Ingest     {} batches over HTTP in {seconds:.2} s: accepted {} elevations and {} diagnostic events, \
             {} dropped by policy, {} rejected; ack p50 {:.1} ms, p99 {:.1} ms",
            self.report.answers.len(),
            accepted.elevations,
            accepted.diagnostics,
            dropped.elevations + dropped.diagnostics,
            rejected,
            self.report.latency_quantile(0.5).as_secs_f64() * 1e3,
            self.report.latency_quantile(0.99).as_secs_f64() * 1e3,
        );
        println!(
            "Warehouse  {} elevation rows ({} managed, {} unmanaged) and {} diagnostic rows in {} Parquet files, {} commits",
            self.counts.elevations(),
            self.counts.managed(),
            self.counts.unmanaged(),
            self.counts.diagnostics,
            self.files,
            self.commits
        );
        let expected = (
            truth.totals.elevations,
            truth.totals.managed,
            truth.totals.unmanaged,
            truth.totals.diagnostics,
        );
        let found = (
            self.counts.elevations(),
            self.counts.managed(),
            self.counts.unmanaged(),
            self.counts.diagnostics,
        );
        anyhow::ensure!(
            expected == found,
            "the warehouse disagrees with the ground truth: expected (elevations, managed, unmanaged, diagnostics) = \
             {expected:?}, found {found:?}"
        );
        println!("           every row the agents sent is in the tables, once: matches the ground truth");
        Ok(())
    }
}
