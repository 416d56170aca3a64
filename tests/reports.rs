//! Reports (issue #5): every report, over simulated fleets uploaded through the real server,
//! checked row by row against the simulator's ground truth and against DuckDB reading the
//! Delta table's Parquet files; tenant isolation and roles over real HTTP; freshness; the CLI.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use control::{KeyKind, Role};
use queries::{Cell, Report};
use simulator::GroundTruth;

use crate::support::{Node, batch, elevation, elevation_event, one_event_batch, stdout_of, temp_dir, test_now};

/// Simulates a fleet for `tenant`, uploads it with `key` through the node, lands it.
pub(crate) async fn land_fleet(
    node: &Node,
    key: &str,
    tenant: &str,
    seed: u64,
    devices: u32,
    days: u32,
) -> GroundTruth {
    crate::support::land_simulated_fleet(node, key, tenant, seed, devices, days)
        .await
        .truth
}

pub(crate) async fn key_for(node: &Node, tenant: &str, kind: KeyKind, role: Option<Role>) -> String {
    crate::support::create_key(&node.control, tenant, kind, role).await.0
}

pub(crate) fn midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0).unwrap().and_utc()
}

fn owned(params: &[(&str, &str)]) -> Vec<(String, String)> {
    params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Runs a report through the library, as the API and CLI do.
pub(crate) async fn report(node: &Node, tenant: &str, name: &str, params: &[(&str, &str)]) -> Report {
    let parsed =
        queries::ReportRequest::parse(name, tenant, &owned(params), test_now(), warehouse::ReportingLevel::All)
            .unwrap();
    queries::run(&node.warehouse, &parsed.request).await.unwrap()
}

/// The whole window of a truth as `from`/`to` parameters.
fn window(truth: &GroundTruth) -> [(String, String); 2] {
    [
        ("from".into(), truth.from.to_string()),
        ("to".into(), truth.to.to_string()),
    ]
}

pub(crate) async fn report_in(node: &Node, truth: &GroundTruth, name: &str, extra: &[(&str, &str)]) -> Report {
    let w = window(truth);
    let mut params: Vec<(&str, &str)> = w.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    params.extend_from_slice(extra);
    report(node, &truth.tenant, name, &params).await
}

pub(crate) fn text(cell: &Cell) -> Option<String> {
    cell.as_text().map(str::to_owned)
}

pub(crate) fn int(cell: &Cell) -> u64 {
    cell.as_int().unwrap_or_else(|| panic!("{cell:?} is not a number")) as u64
}

fn time(cell: &Cell) -> DateTime<Utc> {
    match cell {
        Cell::Time(at) => *at,
        other => panic!("{other:?} is not a time"),
    }
}

/// Each row of a report as a map, by column name.
pub(crate) fn rows(report: &Report) -> Vec<BTreeMap<&str, &Cell>> {
    report.records()
}

pub(crate) fn trend_of(report: &Report) -> BTreeMap<(String, String), u64> {
    rows(report)
        .iter()
        .map(|r| {
            let date = match r["date"] {
                Cell::Date(d) => d.to_string(),
                other => panic!("date is {other:?}"),
            };
            ((date, text(r["elevationType"]).unwrap()), int(r["count"]))
        })
        .collect()
}

pub(crate) fn truth_trend(truth: &GroundTruth, only: Option<&str>) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    for day in &truth.per_day {
        for (t, n) in &day.by_type {
            if only.is_none_or(|o| o == t) {
                out.insert((day.date.to_string(), t.clone()), *n);
            }
        }
    }
    out
}

type AppKey = (String, String);
type AppValue = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    u64,
    u64,
    u64,
    DateTime<Utc>,
    DateTime<Utc>,
);

pub(crate) fn applications_of(report: &Report) -> BTreeMap<AppKey, AppValue> {
    rows(report)
        .iter()
        .map(|r| {
            (
                (text(r["hash"]).unwrap(), text(r["elevationType"]).unwrap()),
                (
                    text(r["fileName"]).unwrap(),
                    text(r["internalName"]),
                    text(r["fileVersion"]),
                    text(r["companyName"]),
                    int(r["count"]),
                    int(r["users"]),
                    int(r["devices"]),
                    time(r["firstSeen"]),
                    time(r["lastSeen"]),
                ),
            )
        })
        .collect()
}

pub(crate) fn truth_applications(
    truth: &GroundTruth,
    keep: impl Fn(&simulator::truth::ApplicationRow) -> bool,
) -> BTreeMap<AppKey, AppValue> {
    truth
        .by_application
        .iter()
        .filter(|a| keep(a))
        .map(|a| {
            (
                (a.hash.clone(), a.elevation_type.clone()),
                (
                    a.file_name.clone(),
                    a.internal_name.clone(),
                    a.file_version.clone(),
                    a.company_name.clone(),
                    a.count,
                    a.users,
                    a.devices,
                    a.first_seen,
                    a.last_seen,
                ),
            )
        })
        .collect()
}

/// `by-publisher`'s counts by (publisher, type).
pub(crate) fn publishers_of(report: &Report) -> BTreeMap<(Option<String>, String), u64> {
    rows(report)
        .iter()
        .map(|r| {
            (
                (text(r["companyName"]), text(r["elevationType"]).unwrap()),
                int(r["count"]),
            )
        })
        .collect()
}

pub(crate) fn truth_publishers(truth: &GroundTruth) -> BTreeMap<(Option<String>, String), u64> {
    truth
        .by_publisher
        .iter()
        .map(|p| ((p.company_name.clone(), p.elevation_type.clone()), p.count))
        .collect()
}

pub(crate) fn split_of(report: &Report, key: &str) -> BTreeMap<String, (u64, u64, u64)> {
    rows(report)
        .iter()
        .map(|r| {
            (
                text(r[key]).unwrap(),
                (int(r["managed"]), int(r["unmanaged"]), int(r["total"])),
            )
        })
        .collect()
}

/// Tiles by name, and the "frequently …" lists of (file name, hash, count, users).
pub(crate) type OverviewFigures = (BTreeMap<String, u64>, BTreeMap<String, Vec<(String, String, u64, u64)>>);

/// The Overview as (tiles, lists) to compare with the truth's.
pub(crate) fn overview_of(report: &Report) -> OverviewFigures {
    let mut tiles = BTreeMap::new();
    let mut lists: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for r in rows(report) {
        let tile = text(r["tile"]).unwrap();
        if *r["rank"] == Cell::Null {
            tiles.insert(tile, int(r["count"]));
        } else {
            lists.entry(tile).or_default().push((
                text(r["fileName"]).unwrap(),
                text(r["hash"]).unwrap(),
                int(r["count"]),
                int(r["users"]),
            ));
        }
    }
    (tiles, lists)
}

pub(crate) fn truth_overview(o: &simulator::truth::Overview) -> OverviewFigures {
    let tiles = BTreeMap::from([
        ("usersOnlyUnmanaged".to_owned(), o.users_only_unmanaged),
        ("usersBoth".to_owned(), o.users_both),
        ("usersOnlyManaged".to_owned(), o.users_only_managed),
    ]);
    let list = |files: &[simulator::truth::FileCount]| {
        files
            .iter()
            .map(|f| (f.file_name.clone(), f.hash.clone(), f.count, f.users))
            .collect::<Vec<_>>()
    };
    let mut lists = BTreeMap::new();
    for (name, files) in [
        ("frequentlyUnmanaged", &o.frequently_unmanaged),
        ("frequentlyApprovedBySupport", &o.frequently_approved_by_support),
        ("frequentlyDenied", &o.frequently_denied),
    ] {
        if !files.is_empty() {
            lists.insert(name.to_owned(), list(files));
        }
    }
    (tiles, lists)
}

/// Every page of an event list, 500 rows at a time.
pub(crate) async fn all_events(
    node: &Node,
    truth: &GroundTruth,
    name: &str,
    extra: &[(&str, &str)],
) -> Vec<(DateTime<Utc>, String)> {
    let mut out = Vec::new();
    loop {
        let offset = out.len().to_string();
        let mut params = vec![("limit", "500"), ("offset", offset.as_str())];
        params.extend_from_slice(extra);
        let page = report_in(node, truth, name, &params).await;
        let n = page.rows.len();
        out.extend(
            rows(&page)
                .iter()
                .map(|r| (time(r["eventDateTime"]), text(r["id"]).unwrap())),
        );
        if n < 500 {
            return out;
        }
    }
}

/// Checks every report of one landed fleet against its ground truth.
async fn check_against_truth(node: &Node, truth: &GroundTruth) {
    let seed = truth.seed;
    assert!(
        truth.totals.elevations > 0,
        "seed {seed}: an empty fleet proves nothing"
    );

    let trend = report_in(node, truth, "trend", &[]).await;
    assert_eq!(trend_of(&trend), truth_trend(truth, None), "seed {seed}: trend");

    let apps = report_in(node, truth, "by-application", &[]).await;
    assert_eq!(
        applications_of(&apps),
        truth_applications(truth, |_| true),
        "seed {seed}: by-application"
    );

    let publishers = report_in(node, truth, "by-publisher", &[]).await;
    assert_eq!(
        publishers_of(&publishers),
        truth_publishers(truth),
        "seed {seed}: by-publisher"
    );

    let users = report_in(node, truth, "by-user", &[]).await;
    let expected: BTreeMap<String, (u64, u64, u64)> = truth
        .by_user
        .iter()
        .map(|u| (u.upn.clone(), (u.managed, u.unmanaged, u.total)))
        .collect();
    assert_eq!(split_of(&users, "upn"), expected, "seed {seed}: by-user");
    let totals: Vec<u64> = rows(&users).iter().map(|r| int(r["total"])).collect();
    assert!(
        totals.windows(2).all(|w| w[0] >= w[1]),
        "seed {seed}: by-user is ordered by total"
    );

    let devices = report_in(node, truth, "by-device", &[]).await;
    let expected: BTreeMap<String, (u64, u64, u64)> = truth
        .by_device
        .iter()
        .map(|d| (d.device_name.clone(), (d.managed, d.unmanaged, d.total)))
        .collect();
    assert_eq!(split_of(&devices, "deviceName"), expected, "seed {seed}: by-device");

    let overview = report_in(node, truth, "overview", &[]).await;
    assert_eq!(
        overview_of(&overview),
        truth_overview(&truth.overview),
        "seed {seed}: overview"
    );
    let last_48h_from = (midnight(truth.to) - chrono::Duration::hours(48)).to_rfc3339();
    let to = truth.to.to_string();
    let recent = report(
        node,
        &truth.tenant,
        "overview",
        &[("from", &last_48h_from), ("to", &to)],
    )
    .await;
    assert_eq!(
        overview_of(&recent),
        truth_overview(&truth.overview_last_48h),
        "seed {seed}: overview of the last 48 hours"
    );

    let denied = report_in(node, truth, "denied", &[]).await;
    let mut outcomes = BTreeMap::from([("denied".to_owned(), 0), ("failed".to_owned(), 0)]);
    for r in rows(&denied) {
        *outcomes.get_mut(&text(r["outcome"]).unwrap()).unwrap() += int(r["count"]);
    }
    assert_eq!(
        (outcomes["denied"], outcomes["failed"]),
        (truth.denied.denied, truth.denied.failed),
        "seed {seed}: denied and failed"
    );

    check_diagnostics(node, truth).await;

    let events = all_events(node, truth, "elevations", &[]).await;
    assert_eq!(
        events.len() as u64,
        truth.totals.elevations,
        "seed {seed}: elevations list"
    );
    assert!(events.windows(2).all(|w| w[0] >= w[1]), "seed {seed}: newest first");
    let ids: BTreeSet<&String> = events.iter().map(|(_, id)| id).collect();
    assert_eq!(ids.len(), events.len(), "seed {seed}: pages neither repeat nor skip");
    let managed = all_events(node, truth, "managed-elevations", &[]).await;
    assert_eq!(managed.len() as u64, truth.totals.managed, "seed {seed}: managed list");

    check_filters(node, truth).await;
}

async fn check_diagnostics(node: &Node, truth: &GroundTruth) {
    let seed = truth.seed;
    let report = report_in(node, truth, "diagnostics", &[]).await;
    let mut per_level = BTreeMap::new();
    let mut errors = BTreeMap::new();
    let mut silent = BTreeMap::new();
    let mut below = BTreeSet::new();
    for r in rows(&report) {
        match text(r["kind"]).unwrap().as_str() {
            "reportingDevices" => {
                per_level.insert(text(r["level"]).unwrap(), int(r["count"]));
            }
            "errorCode" => {
                errors.insert(r["errorCode"].as_int().unwrap(), int(r["count"]));
            }
            "silentDevice" => {
                silent.insert(text(r["deviceName"]).unwrap(), time(r["lastSeen"]));
            }
            "belowCap" => {
                below.insert(text(r["deviceName"]).unwrap());
            }
            other => panic!("unexpected kind {other}"),
        }
    }
    let d = &truth.diagnostics;
    assert_eq!(
        per_level, d.reporting_devices_per_level,
        "seed {seed}: devices per level"
    );
    assert_eq!(errors, d.error_codes, "seed {seed}: error codes");
    assert_eq!(
        below,
        d.below_policy.iter().cloned().collect(),
        "seed {seed}: below the cap"
    );
    let silent_before = midnight(truth.to) - chrono::Duration::days(3);
    let expected: BTreeMap<String, DateTime<Utc>> = d
        .last_seen
        .iter()
        .filter(|(_, at)| **at < silent_before)
        .map(|(n, at)| (n.clone(), *at))
        .collect();
    assert_eq!(silent, expected, "seed {seed}: silent devices");

    // `kind` keeps one kind's rows in the report's order; `limit` and `offset` cut a page of
    // them (both were ignored by diagnostics and compliance, which answered every row).
    let all = rows(&report);
    for kind in queries::DiagnosticKind::ALL {
        let only = report_in(node, truth, "diagnostics", &[("kind", kind.as_str())]).await;
        let expected: Vec<_> = all
            .iter()
            .filter(|r| text(r["kind"]).as_deref() == Some(kind.as_str()))
            .cloned()
            .collect();
        assert_eq!(rows(&only), expected, "seed {seed}: kind={}", kind.as_str());
    }
    assert!(all.len() > 3, "seed {seed}: diagnostics has rows to page");
    let page = report_in(node, truth, "diagnostics", &[("limit", "2"), ("offset", "1")]).await;
    assert_eq!(rows(&page), all[1..3], "seed {seed}: a page of diagnostics");
    let months = report_in(node, truth, "compliance", &[]).await;
    let first = report_in(node, truth, "compliance", &[("limit", "1")]).await;
    assert_eq!(rows(&first), rows(&months)[..1], "seed {seed}: a page of compliance");
}

/// Each filter narrows exactly to the truth's matching rows.
async fn check_filters(node: &Node, truth: &GroundTruth) {
    let seed = truth.seed;
    let busiest = truth.by_user.iter().max_by_key(|u| (u.total, u.upn.clone())).unwrap();
    let one = report_in(node, truth, "by-user", &[("upn", &busiest.upn)]).await;
    assert_eq!(
        split_of(&one, "upn"),
        BTreeMap::from([(busiest.upn.clone(), (busiest.managed, busiest.unmanaged, busiest.total))]),
        "seed {seed}: upn filter"
    );
    let theirs = all_events(node, truth, "elevations", &[("upn", &busiest.upn)]).await;
    assert_eq!(theirs.len() as u64, busiest.total, "seed {seed}: upn filter on events");

    let device = truth
        .by_device
        .iter()
        .max_by_key(|d| (d.total, d.device_name.clone()))
        .unwrap();
    let one = report_in(node, truth, "by-device", &[("deviceName", &device.device_name)]).await;
    assert_eq!(
        split_of(&one, "deviceName"),
        BTreeMap::from([(
            device.device_name.clone(),
            (device.managed, device.unmanaged, device.total)
        )]),
        "seed {seed}: deviceName filter"
    );

    for t in ["unmanagedElevation", "supportApprovedElevation", "deniedElevation"] {
        let only = report_in(node, truth, "trend", &[("elevationType", t)]).await;
        assert_eq!(
            trend_of(&only),
            truth_trend(truth, Some(t)),
            "seed {seed}: elevationType {t}"
        );
    }

    let app = truth
        .by_application
        .iter()
        .max_by_key(|a| (a.count, a.hash.clone()))
        .unwrap();
    // Lower case on purpose: hashes are stored and compared upper-case.
    let lower = app.hash.to_lowercase();
    let by_hash = report_in(node, truth, "by-application", &[("hash", &lower)]).await;
    assert_eq!(
        applications_of(&by_hash),
        truth_applications(truth, |a| a.hash == app.hash),
        "seed {seed}: hash filter"
    );
    let by_name = report_in(node, truth, "by-application", &[("fileName", &app.file_name)]).await;
    assert_eq!(
        applications_of(&by_name),
        truth_applications(truth, |a| a.file_name == app.file_name),
        "seed {seed}: fileName filter"
    );
    if let Some(company) = &app.company_name {
        let by_company = report_in(node, truth, "by-publisher", &[("companyName", company)]).await;
        let found: u64 = rows(&by_company).iter().map(|r| int(r["count"])).sum();
        let expected: u64 = truth
            .by_publisher
            .iter()
            .filter(|p| p.company_name.as_ref() == Some(company))
            .map(|p| p.count)
            .sum();
        assert_eq!(found, expected, "seed {seed}: companyName filter");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_report_matches_the_ground_truth_to_the_row_for_several_fleets() {
    let mut node = Node::start().await;
    let northwind = key_for(&node, "northwind", KeyKind::Agent, None).await;
    let contoso = land_fleet(&node, &node.agent_key, "contoso", 3, 40, 3).await;
    let fabrikam = land_fleet(&node, &node.other_tenant_key, "fabrikam", 11, 25, 6).await;
    let northwind = land_fleet(&node, &northwind, "northwind", 29, 60, 8).await;
    for truth in [&contoso, &fabrikam, &northwind] {
        check_against_truth(&node, truth).await;
    }
    // Again once the rollups hold every day: the same truth from the other path.
    let refreshed = node.warehouse.refresh_rollups().await.unwrap();
    assert!(refreshed.days_refreshed >= 17, "{refreshed:?}");
    for truth in [&contoso, &fabrikam, &northwind] {
        check_against_truth(&node, truth).await;
    }
    node.stop().await;
}

mod api;
mod duckdb;
mod rollups;
