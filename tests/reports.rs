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

fn boolean(cell: &Cell) -> Option<bool> {
    match cell {
        Cell::Bool(b) => Some(*b),
        Cell::Null => None,
        other => panic!("{other:?} is not true or false"),
    }
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

/// Trend, per-user and per-device counts.
type Figures = (
    BTreeMap<(String, String), u64>,
    BTreeMap<String, (u64, u64, u64)>,
    BTreeMap<String, (u64, u64, u64)>,
);

/// `(trend, by-user, by-device)` as the raw rows give them, counted by DataFusion SQL straight
/// over `elevations` (never through a rollup).
async fn raw_figures(node: &Node, from: DateTime<Utc>, to: DateTime<Utc>) -> Figures {
    let window = format!(
        r#"tenant = 'contoso' AND "eventDateTime" >= TIMESTAMP '{}' AND "eventDateTime" < TIMESTAMP '{}'"#,
        from.naive_utc(),
        to.naive_utc()
    );
    let trend = node
        .sql(&format!(
            r#"SELECT CAST("eventDate" AS VARCHAR) AS d, "elevationType" AS t, COUNT(*) AS n
               FROM elevations WHERE {window} GROUP BY 1, 2"#
        ))
        .await
        .into_iter()
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap().to_owned();
            ((text("d"), text("t")), r["n"].as_u64().unwrap())
        })
        .collect();
    let split = |key: &str| {
        let sql = format!(
            r#"SELECT "{key}" AS u, SUM(CASE WHEN "elevationType" <> 'unmanagedElevation' THEN 1 ELSE 0 END) AS m,
                      SUM(CASE WHEN "elevationType" = 'unmanagedElevation' THEN 1 ELSE 0 END) AS x, COUNT(*) AS n
               FROM elevations WHERE {window} GROUP BY 1"#
        );
        async move {
            node.sql(&sql)
                .await
                .into_iter()
                .map(|r| {
                    let n = |k: &str| r[k].as_u64().unwrap();
                    (r["u"].as_str().unwrap().to_owned(), (n("m"), n("x"), n("n")))
                })
                .collect()
        }
    };
    (trend, split("upn").await, split("deviceName").await)
}

/// Appends a counterfeit rollup row for `day` that vouches for the day's current files;
/// `name` is the user or device it counts (the elevation type, for `daily_user_sets`).
async fn counterfeit(node: &Node, table: warehouse::Table, day: NaiveDate, name: &str) {
    use datafusion::arrow::array::{ArrayRef, Date32Array, Int64Array, StringArray};
    // Every rollup of a day records the same fingerprint; `daily_counts` has a row every day.
    // `daily_devices` records it with its format (`@2`), so it is read from there.
    let vouching = match table {
        warehouse::Table::DailyDevices => "daily_devices",
        _ => "daily_counts",
    };
    let fingerprint = node
        .sql(&format!(
            r#"SELECT "sourceFiles" AS f FROM {vouching} WHERE "eventDate" = DATE '{day}' LIMIT 1"#
        ))
        .await[0]["f"]
        .as_str()
        .unwrap()
        .to_owned();
    if table == warehouse::Table::DailyUserSets {
        // A set of one user whom no one else has: the number 999,999.
        let mut set = warehouse::user_sets::UserSet {
            elevations: 1000,
            ..Default::default()
        };
        set.users.insert(999_999);
        let sets = BTreeMap::from([((name.to_owned(), None), set)]);
        let row = warehouse::user_sets::sets_batch("contoso", day, &sets, &fingerprint).unwrap();
        node.warehouse.append(table, vec![row], None).await.unwrap();
        return;
    }
    let text = |v: &str| -> ArrayRef { std::sync::Arc::new(StringArray::from(vec![v])) };
    let int = |v: i64| -> ArrayRef { std::sync::Arc::new(Int64Array::from(vec![v])) };
    let date: ArrayRef = std::sync::Arc::new(Date32Array::from(vec![warehouse::rows::date32_of_date(day)]));
    let noon: ArrayRef = std::sync::Arc::new(
        datafusion::arrow::array::TimestampMicrosecondArray::from(vec![
            day.and_hms_opt(12, 0, 0).unwrap().and_utc().timestamp_micros(),
        ])
        .with_timezone("UTC"),
    );
    let columns = match table {
        warehouse::Table::DailyDenied => vec![
            text("contoso"),
            date,
            text(name),
            text("COUNTERFEIT-ID"),
            text("COUNTERFEIT-PC"),
            text("C0FFEE"),
            text("deniedElevation"),
            text("counterfeit.exe"),
            text("Counterfeit"),
            text("Counterfeit"),
            text("counterfeit"),
            text("1.0"),
            text("Counterfeit Ltd"),
            int(1000),
            noon,
            text(&fingerprint),
        ],
        warehouse::Table::DailyDevices => vec![
            text("contoso"),
            date,
            text(name),
            text("all"),
            text("unmanagedElevation"),
            int(1000),
            noon,
            text(&fingerprint),
            text("COUNTERFEIT-ID"),
        ],
        warehouse::Table::DailyCounts => vec![
            text("contoso"),
            date,
            text("deniedElevation"),
            int(1000),
            int(0),
            text(&fingerprint),
        ],
        _ => vec![
            text("contoso"),
            date,
            text(name),
            text("unmanagedElevation"),
            int(1000),
            text(&fingerprint),
        ],
    };
    let row = datafusion::arrow::array::RecordBatch::try_new(table.schema(), columns).unwrap();
    node.warehouse.append(table, vec![row], None).await.unwrap();
}

/// The Overview's readiness tiles as they follow from per-user (managed, unmanaged, total).
fn tiles_from(users: &BTreeMap<String, (u64, u64, u64)>) -> BTreeMap<String, u64> {
    let count = |f: fn(u64, u64) -> bool| users.values().filter(|(m, u, _)| f(*m, *u)).count() as u64;
    BTreeMap::from([
        ("usersOnlyUnmanaged".to_owned(), count(|m, u| m == 0 && u > 0)),
        ("usersBoth".to_owned(), count(|m, u| m > 0 && u > 0)),
        ("usersOnlyManaged".to_owned(), count(|m, u| m > 0 && u == 0)),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_answer_whole_days_only_while_the_days_files_are_the_ones_they_counted() {
    let mut node = Node::start().await;
    let truth = land_fleet(&node, &node.agent_key, "contoso", 37, 30, 6).await;
    let figures = |params: Vec<(String, String)>| {
        let node = &node;
        async move {
            let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let users = split_of(&report(node, "contoso", "by-user", &params).await, "upn");
            let devices = split_of(&report(node, "contoso", "by-device", &params).await, "deviceName");
            // The Overview's tiles come from the same per-user counts.
            let tiles = overview_of(&report(node, "contoso", "overview", &params).await).0;
            assert_eq!(tiles, tiles_from(&users), "overview tiles for {params:?}");
            (
                trend_of(&report(node, "contoso", "trend", &params).await),
                users,
                devices,
            )
        }
    };
    // Diagnostics' devices with their level and last event (every device is "silent" with
    // silentDays=0), and devices per level.
    let activity = || {
        let node = &node;
        let params = window(&truth);
        async move {
            let mut params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            params.push(("silentDays", "0"));
            let diagnostics = report(node, "contoso", "diagnostics", &params).await;
            rows(&diagnostics)
                .iter()
                .filter(|r| matches!(text(r["kind"]).as_deref(), Some("silentDevice" | "reportingDevices")))
                .map(|r| {
                    let at = match r["lastSeen"] {
                        Cell::Time(at) => Some(*at),
                        _ => None,
                    };
                    (
                        text(r["kind"]),
                        text(r["deviceName"]),
                        text(r["level"]),
                        at,
                        r["count"].as_int(),
                    )
                })
                .collect::<BTreeSet<_>>()
        }
    };
    // The Overview with every file of its lists.
    let overview = |params: Vec<(String, String)>| {
        let node = &node;
        async move {
            let mut params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            params.push(("limit", "100000"));
            overview_of(&report(node, "contoso", "overview", &params).await)
        }
    };
    let whole = || window(&truth).to_vec();
    // The compliance report's figures over the window, every month added up: users, with
    // unmanaged elevations, elevations, managed ones, devices, at `all`.
    let compliance = |params: Vec<(String, String)>| {
        let node = &node;
        async move {
            let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let months = report(node, "contoso", "compliance", &params).await;
            let mut sums = [0i64; 6];
            for month in rows(&months) {
                for (sum, column) in sums.iter_mut().zip(crate::support::COMPLIANCE_COUNTS) {
                    *sum += month[column].as_int().unwrap();
                }
            }
            sums
        }
    };
    let (start, end) = (midnight(truth.from), midnight(truth.to));
    // Windows that start and end inside a day: the partial days come from raw rows.
    let (from, to) = (start + chrono::Duration::hours(13), end - chrono::Duration::hours(30));
    let partial = || {
        vec![
            ("from".to_owned(), from.to_rfc3339()),
            ("to".to_owned(), to.to_rfc3339()),
        ]
    };
    let overview_before = overview(whole()).await;
    let compliance_before = compliance(whole()).await;
    let compliance_partial_before = compliance(partial()).await;
    assert_eq!(
        overview_before.0,
        truth_overview(&truth.overview).0,
        "the Overview's tiles before any rollup"
    );
    let partial_overview_before = overview(partial()).await;
    let expected_trend = truth_trend(&truth, None);
    let before = figures(whole()).await;
    let activity_before = activity().await;
    assert!(activity_before.len() > 6, "{activity_before:?}");
    assert_eq!(before.0, expected_trend, "trend before any rollup");
    assert_eq!(before, raw_figures(&node, start, end).await, "before any rollup");

    let refreshed = node.warehouse.refresh_rollups().await.unwrap();
    assert!(refreshed.days_refreshed >= 5, "{refreshed:?}");
    assert_eq!(figures(whole()).await, before, "from rollups");
    assert_eq!(activity().await, activity_before, "diagnostics from rollups");
    assert_eq!(compliance(whole()).await, compliance_before, "compliance from rollups");
    assert_eq!(
        compliance(partial()).await,
        compliance_partial_before,
        "compliance from rollups and partial days"
    );
    assert_eq!(overview(whole()).await, overview_before, "the Overview from rollups");
    assert_eq!(
        overview(partial()).await,
        partial_overview_before,
        "the Overview from rollups and partial days"
    );
    assert_eq!(
        figures(partial()).await,
        raw_figures(&node, from, to).await,
        "partial days"
    );
    // Filters the rollup holds are answered from it; the busiest user's own row is the same.
    let busiest = before.1.iter().max_by_key(|(_, n)| n.2).unwrap();
    let mut only = whole();
    only.push(("upn".to_owned(), busiest.0.clone()));
    assert_eq!(figures(only).await.1, BTreeMap::from([(busiest.0.clone(), *busiest.1)]));
    let busiest = before.2.iter().max_by_key(|(_, n)| n.2).unwrap();
    let mut only = whole();
    only.push(("deviceName".to_owned(), busiest.0.clone()));
    assert_eq!(figures(only).await.2, BTreeMap::from([(busiest.0.clone(), *busiest.1)]));

    // Prove the rollups are what answers: counterfeit rows that vouch for the day's current
    // files show up in the answers...
    let day = truth.per_day[1].date;
    counterfeit(&node, warehouse::Table::DailyCounts, day, "").await;
    counterfeit(&node, warehouse::Table::DailyUsers, day, "counterfeit@contoso.com").await;
    counterfeit(&node, warehouse::Table::DailyDevices, day, "COUNTERFEIT-PC").await;
    counterfeit(&node, warehouse::Table::DailyUserSets, day, "unmanagedElevation").await;
    counterfeit(&node, warehouse::Table::DailyDenied, day, "counterfeit@contoso.com").await;
    // The counterfeit denial, as the `denied` report shows it (if it does).
    let counterfeit_denial = || {
        let node = &node;
        let params = window(&truth);
        async move {
            let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let denied = report(node, "contoso", "denied", &params).await;
            rows(&denied)
                .iter()
                .find(|r| text(r["upn"]).as_deref() == Some("counterfeit@contoso.com"))
                .map(|r| (text(r["outcome"]), text(r["fileName"]), int(r["count"])))
        }
    };
    assert_eq!(
        counterfeit_denial().await,
        Some((Some("denied".to_owned()), Some("counterfeit.exe".to_owned()), 1000)),
        "denied reads daily_denied"
    );
    let denied = (day.to_string(), "deniedElevation".to_owned());
    let (trend, users, devices) = figures(whole()).await;
    assert_eq!(trend[&denied], before.0.get(&denied).copied().unwrap_or(0) + 1000);
    assert_eq!(users["counterfeit@contoso.com"], (0, 1000, 1000));
    assert_eq!(devices["COUNTERFEIT-PC"], (0, 1000, 1000));
    // A user with 1,000 unmanaged elevations, and a device at `all`.
    let [u, uu, e, m, d, da] = compliance_before;
    assert_eq!(
        compliance(whole()).await,
        [u + 1, uu + 1, e + 1000, m, d + 1, da + 1],
        "compliance reads daily_users and daily_devices"
    );
    let counterfeit_seen = day.and_hms_opt(12, 0, 0).unwrap().and_utc();
    assert!(
        activity().await.contains(&(
            Some("silentDevice".to_owned()),
            Some("COUNTERFEIT-PC".to_owned()),
            Some("all".to_owned()),
            Some(counterfeit_seen),
            None
        )),
        "diagnostics read daily_devices"
    );
    let tiles = overview(whole()).await.0;
    assert_eq!(
        tiles["usersOnlyUnmanaged"],
        overview_before.0["usersOnlyUnmanaged"] + 1,
        "the Overview reads daily_user_sets"
    );

    // ...until the day's files change: a late upload for that day is counted from raw rows.
    let mut late = elevation_event("late-1", "deniedElevation");
    late["eventDateTime"] = serde_json::json!(format!("{day}T10:00:00Z"));
    let answer = node.upload(&batch("b-late", "all", vec![late], vec![])).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    node.land_all().await;
    let after_late = raw_figures(&node, start, end).await;
    assert_eq!(after_late.0[&denied], before.0.get(&denied).copied().unwrap_or(0) + 1);
    assert_eq!(
        figures(whole()).await,
        after_late,
        "a late arrival makes the day's rollups stale"
    );
    let activity_after_late = activity().await;
    assert!(
        !activity_after_late
            .iter()
            .any(|row| row.1.as_deref() == Some("COUNTERFEIT-PC")),
        "a late arrival makes the day's daily_devices stale"
    );
    // The late denial is ada's on LAPTOP-0001, at `all`: counted once, and the counterfeits gone.
    let new_user = i64::from(!before.1.contains_key("ada@contoso.com"));
    let new_device = i64::from(!before.2.contains_key("LAPTOP-0001"));
    assert_eq!(
        compliance(whole()).await,
        [u + new_user, uu, e + 1, m + 1, d + new_device, da + new_device],
        "a late arrival makes the day's daily_users and daily_devices stale"
    );
    let overview_after_late = overview(whole()).await;
    assert_eq!(
        overview_after_late.0,
        tiles_from(&after_late.1),
        "a late arrival makes the day's daily_user_sets stale"
    );
    assert_eq!(
        counterfeit_denial().await,
        None,
        "a late arrival makes the day's daily_denied stale"
    );

    // Refreshing recomputes that day (the counterfeits go); compaction changes every day's
    // files and the answers stay the same.
    assert_eq!(node.warehouse.refresh_rollups().await.unwrap().days_refreshed, 1);
    assert_eq!(figures(whole()).await, after_late, "after the refresh");
    assert_eq!(activity().await, activity_after_late, "diagnostics after the refresh");
    assert_eq!(
        overview(whole()).await,
        overview_after_late,
        "the Overview after the refresh"
    );
    node.warehouse
        .compact(warehouse::Table::Elevations, &|_, _| {})
        .await
        .unwrap();
    assert_eq!(figures(whole()).await, after_late, "after compaction");
    assert_eq!(activity().await, activity_after_late, "diagnostics after compaction");
    assert_eq!(
        overview(whole()).await,
        overview_after_late,
        "the Overview after compaction"
    );
    node.stop().await;
}

/// The Python program that computes the same figures with DuckDB over the Parquet files the
/// Delta log lists (via the `deltalake` package).
const DUCKDB_SCRIPT: &str = r#"
import json, sys
import duckdb
from deltalake import DeltaTable

path, tenant, start, end = sys.argv[1:5]
files = DeltaTable(path + "/elevations").file_uris()
con = duckdb.connect()
con.read_parquet(files, hive_partitioning=True).create_view("e")
con.read_parquet(DeltaTable(path + "/diagnostics").file_uris(), hive_partitioning=True).create_view("d")
where = "tenant = $tenant AND \"eventDateTime\" >= CAST($start AS TIMESTAMPTZ) AND \"eventDateTime\" < CAST($end AS TIMESTAMPTZ)"
args = {"tenant": tenant, "start": start, "end": end}
def q(sql):
    return con.execute(sql.replace("WHERE_WINDOW", where), args).fetchall()
out = {
  "byUser": [[r[0], r[1], r[2], r[3]] for r in q("""SELECT upn,
      SUM(CASE WHEN "elevationType" <> 'unmanagedElevation' THEN 1 ELSE 0 END),
      SUM(CASE WHEN "elevationType" = 'unmanagedElevation' THEN 1 ELSE 0 END), COUNT(*)
      FROM e WHERE WHERE_WINDOW GROUP BY upn""")],
  "byApplication": [list(r) for r in q("""SELECT hash, "elevationType",
      COUNT(*), COUNT(DISTINCT upn), COUNT(DISTINCT "deviceId"),
      epoch_us(MIN("eventDateTime")), epoch_us(MAX("eventDateTime")),
      MAX("fileName"), MAX("internalName"), MAX("fileVersion"), MAX("companyName"), BOOL_AND("systemInitiatedElevation")
      FROM e WHERE WHERE_WINDOW GROUP BY 1, 2""")],
  "byPublisher": [list(r) for r in q("""SELECT "companyName", "elevationType", COUNT(*), COUNT(DISTINCT upn),
      COUNT(DISTINCT "deviceId") FROM e WHERE WHERE_WINDOW GROUP BY 1, 2""")],
  "byDevice": [list(r) for r in q("""SELECT "deviceName",
      SUM(CASE WHEN "elevationType" <> 'unmanagedElevation' THEN 1 ELSE 0 END),
      SUM(CASE WHEN "elevationType" = 'unmanagedElevation' THEN 1 ELSE 0 END), COUNT(*)
      FROM e WHERE WHERE_WINDOW GROUP BY 1""")],
  "trend": [[str(r[0]), r[1], r[2]] for r in q("""SELECT CAST("eventDate" AS VARCHAR), "elevationType", COUNT(*)
      FROM e WHERE WHERE_WINDOW GROUP BY 1, 2""")],
  "denied": [list(r) for r in q("""SELECT CASE WHEN "elevationType" = 'deniedElevation' THEN 'denied' ELSE 'failed' END,
      upn, "deviceId", "deviceName", "fileName", "productName", "fileDescription", "internalName", "fileVersion", hash,
      "companyName", "elevationType", n, epoch_us(last) FROM (SELECT upn, "deviceId", "deviceName", hash, "elevationType",
      MAX("fileName") AS "fileName", MAX("productName") AS "productName", MAX("fileDescription") AS "fileDescription",
      MAX("internalName") AS "internalName", MAX("fileVersion") AS "fileVersion", MAX("companyName") AS "companyName",
      COUNT(*) AS n, MAX("eventDateTime") AS last
      FROM e WHERE WHERE_WINDOW AND ("elevationType" = 'deniedElevation' OR result <> 0) GROUP BY 1, 2, 3, 4, 5)""")],
  "overviewTiles": [list(r) for r in q("""SELECT
      SUM(CASE WHEN m = 0 AND u > 0 THEN 1 ELSE 0 END), SUM(CASE WHEN m > 0 AND u > 0 THEN 1 ELSE 0 END),
      SUM(CASE WHEN m > 0 AND u = 0 THEN 1 ELSE 0 END)
      FROM (SELECT upn, SUM(CASE WHEN "elevationType" <> 'unmanagedElevation' THEN 1 ELSE 0 END) AS m,
        SUM(CASE WHEN "elevationType" = 'unmanagedElevation' THEN 1 ELSE 0 END) AS u FROM e WHERE WHERE_WINDOW GROUP BY upn)""")],
  "overviewLists": [list(r) for r in q("""SELECT "elevationType", MAX("fileName"), hash, COUNT(*), COUNT(DISTINCT upn)
      FROM e WHERE WHERE_WINDOW AND "elevationType" IN ('unmanagedElevation', 'supportApprovedElevation', 'deniedElevation')
      GROUP BY "elevationType", hash""")],
  "devicesLastSeen": [list(r) for r in q("""SELECT "deviceName", ARG_MAX("reportingLevel", "eventDateTime"), epoch_us(MAX("eventDateTime"))
      FROM (SELECT "deviceName", "reportingLevel", "eventDateTime" FROM e WHERE WHERE_WINDOW
            UNION ALL SELECT "deviceName", "reportingLevel", "eventDateTime" FROM d WHERE WHERE_WINDOW) GROUP BY 1""")],
  "errorCodes": [list(r) for r in q("""SELECT "errorCode", COUNT(*) FROM d WHERE WHERE_WINDOW AND "errorCode" <> 0 GROUP BY 1""")],
  "ids": [r[0] for r in q("""SELECT id FROM e WHERE WHERE_WINDOW ORDER BY "eventDateTime" DESC, id DESC""")],
  "managedIds": [r[0] for r in q("""SELECT id FROM e WHERE WHERE_WINDOW AND "elevationType" <> 'unmanagedElevation'
      ORDER BY "eventDateTime" DESC, id DESC""")],
}
print(json.dumps(out))
"#;

fn duckdb(warehouse: &std::path::Path, tenant: &str, from: &str, to: &str) -> serde_json::Value {
    let dir = temp_dir();
    let script = dir.path().join("reports.py");
    std::fs::write(&script, DUCKDB_SCRIPT).unwrap();
    let output = std::process::Command::new("python3")
        .arg(&script)
        .arg(warehouse)
        .args([tenant, from, to])
        .output()
        .expect("python3 runs (CI installs duckdb and deltalake in .ci/run)");
    assert!(
        output.status.success(),
        "the DuckDB script failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn json_rows(value: &serde_json::Value) -> BTreeSet<String> {
    value.as_array().unwrap().iter().map(|r| r.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_agree_with_duckdb_reading_the_delta_tables_parquet_files() {
    let mut node = Node::start().await;
    let truth = land_fleet(&node, &node.agent_key, "contoso", 17, 40, 5).await;
    // The other tenant's rows sit in the same tables; both engines must leave them out.
    land_fleet(&node, &node.other_tenant_key, "fabrikam", 18, 15, 5).await;
    // A window that cuts days in half, so both engines must honour the instants, not dates.
    let from = format!("{}T06:30:00Z", truth.from.succ_opt().unwrap());
    let to = format!("{}T18:00:00Z", truth.to.pred_opt().unwrap());
    let window = [("from", from.as_str()), ("to", to.as_str())];
    let duck = duckdb(&node.dir.path().join("warehouse"), "contoso", &from, &to);

    // Every report from the raw rows, then again once the rollups hold the whole days in the
    // window (its partial first and last days still come from the raw rows).
    // The raw path's rows of `by-application` and `by-publisher`, in their order.
    let mut raw_order: Vec<Vec<Vec<queries::Cell>>> = Vec::new();
    for rollups in [false, true] {
        if rollups {
            let refreshed = node.warehouse.refresh_rollups().await.unwrap();
            assert!(refreshed.days_refreshed >= 3, "{refreshed:?}");
        }
        for (i, name) in ["by-application", "by-publisher"].into_iter().enumerate() {
            let rows = report(&node, "contoso", name, &window).await.rows;
            if rollups {
                assert_eq!(
                    rows, raw_order[i],
                    "{name}: the same rows in the same order from the rollup"
                );
            } else {
                raw_order.push(rows);
            }
        }
        let users = report(&node, "contoso", "by-user", &window).await;
        let ours: BTreeSet<String> = rows(&users)
            .iter()
            .map(|r| {
                serde_json::json!([text(r["upn"]), int(r["managed"]), int(r["unmanaged"]), int(r["total"])]).to_string()
            })
            .collect();
        assert_eq!(ours, json_rows(&duck["byUser"]), "by-user");
        assert!(!ours.is_empty());

        let apps = report(&node, "contoso", "by-application", &window).await;
        let ours: BTreeSet<String> = rows(&apps)
            .iter()
            .map(|r| {
                serde_json::json!([
                    text(r["hash"]),
                    text(r["elevationType"]),
                    int(r["count"]),
                    int(r["users"]),
                    int(r["devices"]),
                    time(r["firstSeen"]).timestamp_micros(),
                    time(r["lastSeen"]).timestamp_micros(),
                    text(r["fileName"]),
                    text(r["internalName"]),
                    text(r["fileVersion"]),
                    text(r["companyName"]),
                    boolean(r["systemInitiated"]),
                ])
                .to_string()
            })
            .collect();
        assert_eq!(ours, json_rows(&duck["byApplication"]), "by-application");

        let publishers = report(&node, "contoso", "by-publisher", &window).await;
        let ours: BTreeSet<String> = rows(&publishers)
            .iter()
            .map(|r| {
                serde_json::json!([
                    text(r["companyName"]),
                    text(r["elevationType"]),
                    int(r["count"]),
                    int(r["users"]),
                    int(r["devices"])
                ])
                .to_string()
            })
            .collect();
        assert_eq!(ours, json_rows(&duck["byPublisher"]), "by-publisher");

        let devices = report(&node, "contoso", "by-device", &window).await;
        let ours: BTreeSet<String> = rows(&devices)
            .iter()
            .map(|r| {
                serde_json::json!([
                    text(r["deviceName"]),
                    int(r["managed"]),
                    int(r["unmanaged"]),
                    int(r["total"])
                ])
                .to_string()
            })
            .collect();
        assert_eq!(ours, json_rows(&duck["byDevice"]), "by-device");

        let trend = report(&node, "contoso", "trend", &window).await;
        let ours: BTreeSet<String> = trend_of(&trend)
            .into_iter()
            .map(|((d, t), n)| serde_json::json!([d, t, n]).to_string())
            .collect();
        assert_eq!(ours, json_rows(&duck["trend"]), "trend");

        let denied_json = |r: &BTreeMap<&str, &queries::Cell>| {
            let mut row: Vec<serde_json::Value> = [
                "outcome",
                "upn",
                "deviceId",
                "deviceName",
                "fileName",
                "productName",
                "fileDescription",
                "internalName",
                "fileVersion",
                "hash",
                "companyName",
                "elevationType",
            ]
            .iter()
            .map(|c| serde_json::json!(text(r[c])))
            .collect();
            row.push(int(r["count"]).into());
            row.push(time(r["lastSeen"]).timestamp_micros().into());
            serde_json::Value::from(row).to_string()
        };
        let denied = report(&node, "contoso", "denied", &window).await;
        let ours: BTreeSet<String> = rows(&denied).iter().map(denied_json).collect();
        assert_eq!(ours, json_rows(&duck["denied"]), "denied");
        assert!(ours.len() > 10, "the fleet has denied and failed elevations");
        // The order, and pages of it put end to end: most first, then user, device name,
        // hash, outcome, device id and type, as sorted here from DuckDB's rows.
        let mut expected = duck["denied"].as_array().unwrap().clone();
        expected.sort_by_key(|r| {
            let s = |i: usize| r[i].as_str().unwrap_or_default().to_owned();
            (
                std::cmp::Reverse(r[12].as_i64().unwrap()),
                s(1),
                s(3),
                s(9),
                s(0),
                s(2),
                s(11),
            )
        });
        let mut paged: Vec<String> = Vec::new();
        loop {
            let offset = paged.len().to_string();
            let params = [window[0], window[1], ("limit", "7"), ("offset", offset.as_str())];
            let page = report(&node, "contoso", "denied", &params).await;
            if page.rows.is_empty() {
                break;
            }
            paged.extend(rows(&page).iter().map(denied_json));
        }
        let expected: Vec<String> = expected.iter().map(|r| r.to_string()).collect();
        assert_eq!(paged, expected, "denied, in order, seven rows a page");

        // The Overview: its tiles, and every file of its three lists.
        let overview = report(
            &node,
            "contoso",
            "overview",
            &[window[0], window[1], ("limit", "100000")],
        )
        .await;
        let tile = |name: &str| {
            rows(&overview)
                .iter()
                .find(|r| text(r["tile"]).as_deref() == Some(name))
                .map(|r| int(r["count"]))
        };
        let tiles = serde_json::json!([tile("usersOnlyUnmanaged"), tile("usersBoth"), tile("usersOnlyManaged")]);
        assert_eq!(
            json_rows(&serde_json::json!([tiles])),
            json_rows(&duck["overviewTiles"]),
            "overview tiles"
        );
        let listed_type = |list: &str| match list {
            "frequentlyUnmanaged" => Some("unmanagedElevation"),
            "frequentlyApprovedBySupport" => Some("supportApprovedElevation"),
            "frequentlyDenied" => Some("deniedElevation"),
            _ => None,
        };
        let ours: BTreeSet<String> = rows(&overview)
            .iter()
            .filter_map(|r| {
                let elevation_type = listed_type(&text(r["tile"])?)?;
                Some(
                    serde_json::json!([
                        elevation_type,
                        text(r["fileName"]),
                        text(r["hash"]),
                        int(r["count"]),
                        int(r["users"])
                    ])
                    .to_string(),
                )
            })
            .collect();
        assert_eq!(ours, json_rows(&duck["overviewLists"]), "overview lists");

        // Diagnostics: with silentDays=0 every device is listed with its last event and level.
        let diagnostics = report(
            &node,
            "contoso",
            "diagnostics",
            &[window[0], window[1], ("silentDays", "0")],
        )
        .await;
        let of_kind = |kind: &str| -> Vec<BTreeMap<&str, &Cell>> {
            rows(&diagnostics)
                .into_iter()
                .filter(|r| text(r["kind"]).as_deref() == Some(kind))
                .collect()
        };
        let ours: BTreeSet<String> = of_kind("silentDevice")
            .iter()
            .map(|r| {
                serde_json::json!([
                    text(r["deviceName"]),
                    text(r["level"]),
                    time(r["lastSeen"]).timestamp_micros()
                ])
                .to_string()
            })
            .collect();
        assert_eq!(
            ours,
            json_rows(&duck["devicesLastSeen"]),
            "diagnostics: devices, last event and level"
        );
        let ours: BTreeSet<String> = of_kind("errorCode")
            .iter()
            .map(|r| serde_json::json!([int(r["errorCode"]), int(r["count"])]).to_string())
            .collect();
        assert_eq!(ours, json_rows(&duck["errorCodes"]), "diagnostics: error codes");
        assert!(!ours.is_empty(), "the fleet reports error codes");

        // The event lists, page by page, in order.
        for (name, expected) in [("elevations", "ids"), ("managed-elevations", "managedIds")] {
            let mut ids = Vec::new();
            loop {
                let offset = ids.len().to_string();
                let page = report(
                    &node,
                    "contoso",
                    name,
                    &[window[0], window[1], ("limit", "700"), ("offset", &offset)],
                )
                .await;
                let n = page.rows.len();
                ids.extend(
                    rows(&page)
                        .iter()
                        .map(|r| serde_json::Value::from(text(r["id"]).unwrap())),
                );
                if n < 700 {
                    break;
                }
            }
            assert_eq!(serde_json::Value::from(ids), duck[expected], "{name}, in order");
        }
    }
    node.stop().await;
}

/// GET on the admin API with a key; returns the status and the body as text.
async fn get(node: &Node, key: Option<&str>, path: &str) -> (u16, String) {
    let mut request = reqwest::Client::new().get(format!("{}{path}", node.base));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn get_json(node: &Node, key: &str, path: &str) -> serde_json::Value {
    let (status, body) = get(node, Some(key), path).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn error_code(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    v["error"]["code"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_sees_only_its_own_tenant_whatever_the_parameters() {
    let mut node = Node::start().await;
    let contoso = land_fleet(&node, &node.agent_key, "contoso", 5, 20, 3).await;
    let fabrikam = land_fleet(&node, &node.other_tenant_key, "fabrikam", 6, 20, 3).await;
    let fabrikam_admin = key_for(&node, "fabrikam", KeyKind::Admin, Some(Role::EndpointPrivilegeReader)).await;
    let window = format!("from={}&to={}", contoso.from, contoso.to);

    for (key, own, other) in [
        (&node.admin_key, &contoso, &fabrikam),
        (&fabrikam_admin, &fabrikam, &contoso),
    ] {
        // Everything the key sees is its own tenant's, to the row.
        let users = get_json(&node, key, &format!("/v1/reports/by-user?{window}")).await;
        let found: BTreeMap<String, u64> = users["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["upn"].as_str().unwrap().to_owned(), r["total"].as_u64().unwrap()))
            .collect();
        let expected: BTreeMap<String, u64> = own.by_user.iter().map(|u| (u.upn.clone(), u.total)).collect();
        assert_eq!(found, expected, "{}", own.tenant);

        // Naming the other tenant's users, devices, files or hashes finds nothing.
        let user = &other.by_user[0].upn;
        let device = &other.by_device[0].device_name;
        let app = &other.by_application[0];
        let filters = [
            format!("upn={user}"),
            format!("deviceName={device}"),
            format!("hash={}", app.hash),
        ];
        for name in queries::ReportName::ALL {
            for filter in &filters {
                if name == queries::ReportName::Diagnostics && !filter.starts_with("deviceName") {
                    continue;
                }
                // Month by month over the whole tenant: it takes no filters.
                if name == queries::ReportName::Compliance {
                    continue;
                }
                let body = get_json(&node, key, &format!("/v1/reports/{}?{window}&{filter}", name.as_str())).await;
                let leaked: Vec<&serde_json::Value> = body["rows"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|r| r.get("tile").is_none() || r["count"].as_u64() != Some(0))
                    .collect();
                assert!(
                    leaked.is_empty(),
                    "{} saw {} {filter}: {leaked:?}",
                    own.tenant,
                    name.as_str()
                );
            }
        }
        // The tenant cannot be chosen by a parameter.
        let (status, body) = get(
            &node,
            Some(key),
            &format!("/v1/reports/by-user?tenant={}", other.tenant),
        )
        .await;
        assert_eq!((status, error_code(&body).as_str()), (400, "invalid_parameter"));
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_need_an_admin_key_whose_role_views_reports() {
    let mut node = Node::start().await;
    land_fleet(&node, &node.agent_key, "contoso", 8, 5, 2).await;
    for role in Role::ALL {
        let key = key_for(&node, "contoso", KeyKind::Admin, Some(role)).await;
        assert_eq!(
            role.allows(control::Permission::ViewReports),
            get(&node, Some(&key), "/v1/reports/overview").await.0 == 200,
            "{role:?}"
        );
    }
    let (status, body) = get(&node, Some(&node.agent_key), "/v1/reports/overview").await;
    assert_eq!((status, error_code(&body).as_str()), (403, "forbidden"), "agent key");
    let (status, body) = get(&node, Some("elv_admin_not-a-key"), "/v1/reports/overview").await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (401, "unauthorized"),
        "unknown key"
    );
    let (status, body) = get(&node, None, "/v1/reports/overview").await;
    assert_eq!((status, error_code(&body).as_str()), (401, "unauthorized"), "no key");
    let admin = node.admin_key.clone();
    for (path, code) in [
        ("/v1/reports/nope", "unknown_report"),
        ("/v1/reports/trend?from=yesterday", "invalid_parameter"),
        ("/v1/reports/trend?from=2026-11-20&to=2026-11-19", "invalid_parameter"),
        ("/v1/reports/trend?elevationType=sudo", "invalid_parameter"),
        ("/v1/reports/elevations?limit=-1", "invalid_parameter"),
        ("/v1/reports/by-device?profile=graph", "invalid_parameter"),
        ("/v1/reports/trend?format=xml", "invalid_parameter"),
        ("/v1/reports/diagnostics?upn=ada@contoso.com", "invalid_parameter"),
    ] {
        let (status, body) = get(&node, Some(&admin), path).await;
        assert_eq!((status, error_code(&body).as_str()), (400, code), "{path}");
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_event_is_in_the_reports_after_landing_and_within_two_seconds_without() {
    let mut node = Node::start().await;
    let admin = node.admin_key.clone();
    let total_of_ada = |body: serde_json::Value| {
        body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["upn"] == "ada@contoso.com")
            .map(|r| r["total"].as_u64().unwrap())
            .unwrap_or(0)
    };
    let path = "/v1/reports/by-user?from=2026-11-20";
    assert_eq!(total_of_ada(get_json(&node, &admin, path).await), 0);
    assert_eq!(
        node.upload(&one_event_batch("b-1", "e-1", "userConfirmedElevation"))
            .await
            .status,
        200
    );
    node.land_all().await;
    assert_eq!(total_of_ada(get_json(&node, &admin, path).await), 1);

    assert_eq!(
        node.upload(&one_event_batch("b-2", "e-2", "unmanagedElevation"))
            .await
            .status,
        200
    );
    let acknowledged = Instant::now();
    while total_of_ada(get_json(&node, &admin, path).await) != 2 {
        assert!(
            acknowledged.elapsed() < Duration::from_secs(2),
            "not in the report 2 s after the ack"
        );
        tokio::task::yield_now().await;
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_json_and_csv_and_the_graph_profile_speaks_intunes_exports() {
    let mut node = Node::start().await;
    let truth = land_fleet(&node, &node.agent_key, "contoso", 9, 20, 3).await;
    let admin = node.admin_key.clone();
    let window = format!("from={}&to={}", truth.from, truth.to);

    // JSON over HTTP is the library's report.
    for name in queries::ReportName::ALL {
        let body = get_json(&node, &admin, &format!("/v1/reports/{}?{window}", name.as_str())).await;
        let direct = report_in(&node, &truth, name.as_str(), &[]).await;
        assert_eq!(
            body,
            queries::render::to_json(&direct, queries::Profile::Native).unwrap(),
            "{}",
            name.as_str()
        );
        assert_eq!(body["report"], name.as_str());
        assert_eq!(body["from"], format!("{}T00:00:00Z", truth.from));
    }

    let csv = |text: &str| -> (Vec<String>, Vec<Vec<String>>) {
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let headers = reader.headers().unwrap().iter().map(str::to_owned).collect();
        let rows = reader
            .records()
            .map(|r| r.unwrap().iter().map(str::to_owned).collect())
            .collect();
        (headers, rows)
    };
    let exports: [(&str, &str); 6] = [
        (
            "elevations",
            "Id,DeviceId,DeviceName,EventDateTime,ElevationType,FilePath,Upn,UserType,ProductName,CompanyName,\
             FileVersion,Justification,Hash,InternalName,FileDescription,Result,ProcessType,RuleId,\
             ParentProcessName,PolicyId,PolicyName,IsSystemInitiated",
        ),
        (
            "by-application",
            "CompanyName,ElevationType,FileVersion,Hash,InternalName,ElevationCount,FileName,IsBackgroundProcess",
        ),
        ("by-publisher", "CompanyName,ElevationType,ElevationCount"),
        ("by-user", "Upn,ManagedCount,UnmanagedCount,TotalCount"),
        (
            "denied",
            "UserName,DeviceId,DeviceName,FileName,FileProductName,FileDescription,FileInternalName,FileVersion,\
             HashValue,Publisher,ElevationType,MonthElevationCount",
        ),
        ("trend", "DateCreated,ElevationType,DailyElevationCount"),
    ];
    let pascal: BTreeSet<&str> = warehouse::ElevationType::ALL
        .iter()
        .map(|t| t.graph_export_name())
        .collect();
    for (name, headers) in exports {
        let (status, body) = get(
            &node,
            Some(&admin),
            &format!("/v1/reports/{name}?{window}&format=csv&profile=graph&limit=100000"),
        )
        .await;
        assert_eq!(status, 200, "{name}: {body}");
        let (found, rows) = csv(&body);
        assert_eq!(found.join(","), headers, "{name}");
        assert!(!rows.is_empty(), "{name}: no rows");
        let at = |h: &str| found.iter().position(|x| x == h).unwrap();
        if found.iter().any(|h| h == "ElevationType") {
            for row in &rows {
                assert!(pascal.contains(row[at("ElevationType")].as_str()), "{name}: {row:?}");
            }
        }
        if name == "elevations" {
            assert_eq!(rows.len() as u64, truth.totals.elevations);
            for row in &rows {
                let time = &row[at("EventDateTime")];
                assert!(
                    chrono::NaiveDateTime::parse_from_str(time, "%Y-%m-%d %H:%M:%S%.f").is_ok() && time.len() == 27,
                    "EventDateTime {time}"
                );
                assert!(["True", "False"].contains(&row[at("IsSystemInitiated")].as_str()));
                assert!(["Parent", "Child", "Undefined"].contains(&row[at("ProcessType")].as_str()));
                if row[at("ElevationType")] == "UnmanagedElevation" {
                    assert_eq!(
                        (row[at("RuleId")].as_str(), row[at("PolicyId")].as_str()),
                        ("<Null>", "<Null>")
                    );
                }
            }
        }
        if name == "by-user" {
            let found: BTreeMap<String, Vec<u64>> = rows
                .iter()
                .map(|r| (r[0].clone(), r[1..].iter().map(|n| n.parse().unwrap()).collect()))
                .collect();
            let expected: BTreeMap<String, Vec<u64>> = truth
                .by_user
                .iter()
                .map(|u| (u.upn.clone(), vec![u.managed, u.unmanaged, u.total]))
                .collect();
            assert_eq!(found, expected);
        }
    }
    // Native CSV: camelCase headers, one row per by-device row of the truth.
    let (status, body) = get(
        &node,
        Some(&admin),
        &format!("/v1/reports/by-device?{window}&format=csv"),
    )
    .await;
    assert_eq!(status, 200);
    let (headers, rows) = csv(&body);
    assert_eq!(headers.join(","), "deviceName,managed,unmanaged,total");
    assert_eq!(rows.len(), truth.by_device.len());
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elevation_report_on_the_command_line_reads_the_warehouse() {
    let mut node = Node::start().await;
    let truth = land_fleet(&node, &node.agent_key, "contoso", 12, 15, 2).await;
    node.stop().await;
    let data = node.dir.path().to_str().unwrap().to_owned();
    let from = truth.from.to_string();
    let to = truth.to.to_string();
    let base = [
        "--data-dir",
        data.as_str(),
        "--tenant",
        "contoso",
        "--from",
        from.as_str(),
        "--to",
        to.as_str(),
    ];
    let run = |extra: &[&str]| {
        let mut args = vec!["report"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&base);
        stdout_of(&elevation(&args, node.dir.path()))
    };
    let json: serde_json::Value = serde_json::from_str(&run(&["by-user", "--format", "json"])).unwrap();
    let found: BTreeMap<String, u64> = json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["upn"].as_str().unwrap().to_owned(), r["total"].as_u64().unwrap()))
        .collect();
    let expected: BTreeMap<String, u64> = truth.by_user.iter().map(|u| (u.upn.clone(), u.total)).collect();
    assert_eq!(found, expected);

    let table = run(&["overview"]);
    assert!(table.contains("usersOnlyManaged"), "{table}");
    assert!(
        table.contains(&format!(" {} ", truth.overview.users_only_managed)),
        "{table}"
    );
    let csv = run(&["trend", "--format", "csv", "--profile", "graph"]);
    assert_eq!(
        csv.lines().next(),
        Some("DateCreated,ElevationType,DailyElevationCount")
    );
    let days: u64 = csv
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(days, truth.totals.elevations);

    let output = elevation(&["report", "nope", "--data-dir", &data], node.dir.path());
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("by-application"));
}
