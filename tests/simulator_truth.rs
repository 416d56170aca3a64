//! The fleet simulator's promises: determinism, agent-side filtering exactly as the level
//! says, valid events, and a ground truth that equals the events it wrote — recounted here
//! from the batch files by code that shares nothing with the simulator's own counting.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, TimeZone, Utc};
use serde_json::Value;
use warehouse::{AgentBatch, ReportingLevel, ValidationContext};

use crate::support::{elevation, stdout_of, temp_dir};

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn simulate(dir: &Path, args: &[&str]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let out = dir.join("out");
    let mut all = vec!["simulate", "--out", out.to_str().unwrap()];
    all.extend_from_slice(args);
    stdout_of(&elevation(&all, dir));
    out
}

#[test]
fn the_same_seed_gives_byte_identical_output() {
    let dir = temp_dir();
    let shape = ["--devices", "120", "--days", "7", "--seed", "7", "--end", "2026-11-20"];
    let a = simulate(&dir.path().join("a"), &shape);
    let b = simulate(&dir.path().join("b"), &shape);
    let files_a = files_under(&a);
    let files_b = files_under(&b);
    assert!(files_a.len() > 100, "expected many batch files, got {}", files_a.len());
    assert_eq!(
        files_a.iter().map(|p| p.strip_prefix(&a).unwrap()).collect::<Vec<_>>(),
        files_b.iter().map(|p| p.strip_prefix(&b).unwrap()).collect::<Vec<_>>()
    );
    for (fa, fb) in files_a.iter().zip(&files_b) {
        assert!(
            std::fs::read(fa).unwrap() == std::fs::read(fb).unwrap(),
            "{} differs",
            fa.display()
        );
    }
    // And another seed is another fleet.
    let c = simulate(
        &dir.path().join("c"),
        &["--devices", "120", "--days", "7", "--seed", "8", "--end", "2026-11-20"],
    );
    assert_ne!(
        std::fs::read(a.join("ground-truth.json")).unwrap(),
        std::fs::read(c.join("ground-truth.json")).unwrap()
    );
}

/// Independent recount of the figures a ground truth claims.
#[derive(Default)]
struct Recount {
    batches: u64,
    elevations: u64,
    managed: u64,
    unmanaged: u64,
    diagnostics: u64,
    per_day: BTreeMap<String, (u64, u64)>,
    per_user: BTreeMap<String, (u64, u64)>,
    per_publisher: BTreeMap<(String, String), u64>,
    per_hash_and_type: BTreeMap<(String, String), (u64, BTreeSet<String>)>,
    denied: u64,
    failed: u64,
}

fn check_fleet(dir: &Path, seed: &str, devices: &str, days: &str, interval: &str) {
    let end = "2026-11-20";
    let out = simulate(
        dir,
        &[
            "--devices",
            devices,
            "--days",
            days,
            "--seed",
            seed,
            "--end",
            end,
            "--upload-interval-hours",
            interval,
        ],
    );
    let truth: Value = serde_json::from_slice(&std::fs::read(out.join("ground-truth.json")).unwrap()).unwrap();
    let world: Value = serde_json::from_slice(&std::fs::read(out.join("world.json")).unwrap()).unwrap();
    let level_of: BTreeMap<String, ReportingLevel> = world["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap().to_owned(),
                ReportingLevel::parse(d["level"].as_str().unwrap()).unwrap(),
            )
        })
        .collect();
    let ctx = ValidationContext::new(
        Utc.from_utc_datetime(
            &NaiveDate::parse_from_str(end, "%Y-%m-%d")
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap(),
        ),
    );

    let mut count = Recount::default();
    for path in files_under(&out.join("batches")) {
        let text = std::fs::read_to_string(&path).unwrap();
        let batch: AgentBatch = serde_json::from_str(&text).unwrap();
        let raw: Value = serde_json::from_str(&text).unwrap();
        count.batches += 1;
        // The agent sent exactly what its declared level allows, and the level is the device's.
        assert_eq!(
            level_of[&batch.device_name],
            batch.reporting_level,
            "{}",
            path.display()
        );
        assert_ne!(
            batch.reporting_level,
            ReportingLevel::None,
            "a device at `none` uploaded {}",
            path.display()
        );
        if !batch.reporting_level.allows_diagnostics() {
            assert!(batch.diagnostics.is_empty());
        }
        for (index, e) in batch.elevations.iter().enumerate() {
            assert!(
                batch.reporting_level.allows_elevation(e.elevation_type),
                "{} carries a {} elevation at level {}",
                path.display(),
                e.elevation_type,
                batch.reporting_level
            );
            // Every event is valid by the warehouse's own rules, read from the wire form.
            let json = raw["elevations"][index].to_string();
            let validated = warehouse::validate::elevation_from_json(&json, index, &batch.device_id, &ctx)
                .unwrap_or_else(|r| panic!("{}: {r:?}", path.display()));
            assert_eq!(validated.id, e.id);
            count.elevations += 1;
            let day = e.event_date_time.date_naive().to_string();
            let managed = e.elevation_type.is_managed();
            let (m, u) = (u64::from(managed), u64::from(!managed));
            count.managed += m;
            count.unmanaged += u;
            let d = count.per_day.entry(day).or_default();
            d.0 += m;
            d.1 += u;
            let user = count.per_user.entry(e.upn.clone()).or_default();
            user.0 += m;
            user.1 += u;
            *count
                .per_publisher
                .entry((
                    e.company_name.clone().unwrap_or_default(),
                    e.elevation_type.as_str().to_owned(),
                ))
                .or_default() += 1;
            let app = count
                .per_hash_and_type
                .entry((e.hash.clone(), e.elevation_type.as_str().to_owned()))
                .or_default();
            app.0 += 1;
            app.1.insert(e.upn.clone());
            if e.elevation_type == warehouse::ElevationType::Denied {
                count.denied += 1;
            } else if e.result != 0 {
                count.failed += 1;
            }
        }
        for (index, _) in batch.diagnostics.iter().enumerate() {
            let json = raw["diagnostics"][index].to_string();
            warehouse::validate::diagnostic_from_json(&json, index, &ctx)
                .unwrap_or_else(|r| panic!("{}: {r:?}", path.display()));
            count.diagnostics += 1;
        }
    }

    let totals = &truth["totals"];
    let u = |v: &Value| v.as_u64().unwrap();
    assert_eq!(u(&totals["batches"]), count.batches);
    assert_eq!(u(&totals["elevations"]), count.elevations);
    assert_eq!(u(&totals["managed"]), count.managed);
    assert_eq!(u(&totals["unmanaged"]), count.unmanaged);
    assert_eq!(u(&totals["diagnostics"]), count.diagnostics);
    assert_eq!(u(&truth["denied"]["denied"]), count.denied);
    assert_eq!(u(&truth["denied"]["failed"]), count.failed);
    assert!(count.elevations > 0);
    // Generated = sent + held back by the agents.
    assert_eq!(
        u(&totals["generatedElevations"]),
        count.elevations + u(&totals["filteredElevations"])
    );
    assert_eq!(
        u(&totals["generatedDiagnostics"]),
        count.diagnostics + u(&totals["filteredDiagnostics"])
    );

    for day in truth["perDay"].as_array().unwrap() {
        let date = day["date"].as_str().unwrap();
        let expected = count.per_day.get(date).copied().unwrap_or_default();
        assert_eq!((u(&day["managed"]), u(&day["unmanaged"])), expected, "day {date}");
    }
    assert_eq!(
        truth["perDay"].as_array().unwrap().len(),
        days.parse::<usize>().unwrap()
    );

    let by_user: BTreeMap<String, (u64, u64)> = truth["byUser"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(u(&r["total"]), u(&r["managed"]) + u(&r["unmanaged"]));
            (
                r["upn"].as_str().unwrap().to_owned(),
                (u(&r["managed"]), u(&r["unmanaged"])),
            )
        })
        .collect();
    assert_eq!(by_user, count.per_user);

    let by_publisher: BTreeMap<(String, String), u64> = truth["byPublisher"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let company = r["companyName"].as_str().unwrap_or("").to_owned();
            (
                (company, r["elevationType"].as_str().unwrap().to_owned()),
                u(&r["count"]),
            )
        })
        .collect();
    assert_eq!(by_publisher, count.per_publisher);

    let by_app: BTreeMap<(String, String), (u64, u64)> = truth["byApplication"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let key = (
                r["hash"].as_str().unwrap().to_owned(),
                r["elevationType"].as_str().unwrap().to_owned(),
            );
            (key, (u(&r["count"]), u(&r["users"])))
        })
        .collect();
    let recounted: BTreeMap<(String, String), (u64, u64)> = count
        .per_hash_and_type
        .iter()
        .map(|(k, (n, users))| (k.clone(), (*n, users.len() as u64)))
        .collect();
    assert_eq!(by_app, recounted);

    // Readiness tiles: every user who elevated is in exactly one of the three.
    let only_managed = count.per_user.values().filter(|(m, un)| *m > 0 && *un == 0).count() as u64;
    let both = count.per_user.values().filter(|(m, un)| *m > 0 && *un > 0).count() as u64;
    let only_unmanaged = count.per_user.values().filter(|(m, un)| *m == 0 && *un > 0).count() as u64;
    let overview = &truth["overview"];
    assert_eq!(u(&overview["usersOnlyManaged"]), only_managed);
    assert_eq!(u(&overview["usersBoth"]), both);
    assert_eq!(u(&overview["usersOnlyUnmanaged"]), only_unmanaged);

    // Devices at `none` never upload; each level is represented in a fleet this size.
    let uploading: BTreeSet<String> = files_under(&out.join("batches"))
        .iter()
        .map(|p| p.parent().unwrap().file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    for (name, level) in &level_of {
        if *level == ReportingLevel::None {
            assert!(!uploading.contains(name), "{name} is at `none` but uploaded");
        }
    }
}

#[test]
fn ground_truth_equals_the_events_written_for_several_seeds_and_shapes() {
    let dir = temp_dir();
    check_fleet(&dir.path().join("small"), "1", "40", "3", "6");
    check_fleet(&dir.path().join("medium"), "7", "300", "14", "24");
    check_fleet(&dir.path().join("hourly"), "99", "150", "7", "1");
}

#[test]
fn the_world_is_rich_enough_for_every_report_and_suggestion() {
    let config = simulator::SimConfig::new(7, 1000, 7, NaiveDate::from_ymd_opt(2026, 11, 20).unwrap());
    let (world, truth) = simulator::simulate(&config, |_, _, _| Ok::<(), ()>(())).unwrap();

    // A catalogue of at least 200 files, from known, unknown and no publishers.
    use simulator::catalog::Signing;
    assert!(world.apps.len() >= 200);
    for signing in [Signing::KnownPublisher, Signing::UnknownPublisher, Signing::Unsigned] {
        assert!(
            world.apps.iter().filter(|a| a.signing == signing).count() >= 10,
            "{signing:?}"
        );
    }
    // Zipf-like popularity: the head dwarfs the tail.
    let mut popularity: Vec<f64> = world.apps.iter().map(|a| a.popularity).filter(|p| *p > 0.0).collect();
    popularity.sort_by(|a, b| b.total_cmp(a));
    assert!(popularity[0] > 50.0 * popularity[100]);
    // Version updates change hashes inside the window.
    assert!(
        world
            .apps
            .iter()
            .filter(|a| a.versions.iter().any(|v| v.released_day >= 0))
            .count()
            >= 20
    );

    // Every elevation type, child processes, system-initiated elevations, failures, denials
    // and justifications all occur.
    let types: BTreeSet<&str> = truth.by_application.iter().map(|r| r.elevation_type.as_str()).collect();
    for t in [
        "unmanagedElevation",
        "zeroTouchElevation",
        "userConfirmedElevation",
        "supportApprovedElevation",
        "elevateAsCurrentUser",
        "deniedElevation",
    ] {
        assert!(types.contains(t), "no {t}");
    }
    assert!(truth.denied.failed > 0 && truth.denied.denied > 0);
    assert!(
        truth.overview.users_only_managed > 0
            && truth.overview.users_both > 0
            && truth.overview.users_only_unmanaged > 0
    );

    // Every reporting level is present, and some devices go silent.
    for level in ["all", "managed", "diagnostic", "none"] {
        assert!(
            truth.fleet.devices_per_level.get(level).copied().unwrap_or(0) > 0,
            "no device at {level}"
        );
    }
    assert!(world.devices.iter().any(|d| d.silent_from_day.is_some()));
    assert!(!truth.diagnostics.below_policy.is_empty());
    assert!(!truth.diagnostics.error_codes.is_empty());

    // Rules of every type, some of which never fire.
    assert!(truth.rules.iter().any(|r| r.matches == 0));
    let rule_types: BTreeSet<&str> = truth.rules.iter().map(|r| r.rule_type.as_str()).collect();
    assert_eq!(rule_types.len(), 5, "{rule_types:?}");

    // Each planted pattern is there, clearly above any sensible threshold.
    let pattern = |kind: &str| truth.planted_patterns.iter().find(|p| p.kind == kind).unwrap();
    let unmanaged = pattern("newRule");
    assert!(unmanaged.users >= 8 && unmanaged.events >= 20, "{unmanaged:?}");
    let support = pattern("supportApprovedToUserConfirmed");
    assert!(support.users >= 5, "{support:?}");
    let churn = pattern("hashChurnToCertificate");
    assert!(churn.hashes.len() >= 3, "{churn:?}");
    let stale = pattern("staleRule");
    let stale_rule = truth
        .rules
        .iter()
        .find(|r| Some(&r.rule_id) == stale.rule_id.as_ref())
        .unwrap();
    assert_eq!(stale_rule.matches, 0);
    let denied = pattern("frequentlyDenied");
    assert!(denied.events >= 10 && denied.users >= 3, "{denied:?}");
    let child = pattern("childProcess");
    assert!(child.events >= 5, "{child:?}");
}
