//! What operators watch: the Prometheus alert rules and the Grafana dashboard in `ops/`.
//!
//! The rules are checked and unit-tested by `promtool` (Debian's `prometheus` package, which
//! `.ci/test` installs); every query of the dashboard is checked by `promtool` as well, and every
//! metric the rules and the dashboard name must be one a real node exports on `/metrics`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{start_server, temp_dir};

fn ops(file: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("ops").join(file)
}

fn promtool(args: &[&str], cwd: &Path) {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("promtool runs (.ci/test installs Debian's prometheus package)");
    assert!(
        output.status.success(),
        "promtool {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every `elevation_*` metric a text names, without the `_bucket`, `_sum` and `_count` a
/// histogram's series add.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (start, _) in text.match_indices("elevation_") {
        let name: String = text[start..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(&name);
        names.insert(base.to_owned());
    }
    names
}

/// The dashboard's queries, with Grafana's variables replaced by what they stand for.
fn dashboard_queries() -> Vec<(String, String)> {
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ops("grafana-dashboard.json")).unwrap()).unwrap();
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "5m")
                .replace("$instance", ".*");
            queries.push((panel["title"].as_str().unwrap().to_owned(), expr));
        }
    }
    queries
}

#[test]
fn the_alert_rules_are_valid_and_fire_as_their_unit_tests_say() {
    promtool(&["check", "rules", "alerts.yml"], &ops(""));
    promtool(&["test", "rules", "alerts.test.yml"], &ops(""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_the_alerts_query_only_metrics_a_node_exports() {
    // Every panel's query parses: promtool checks them as recording rules.
    let queries = dashboard_queries();
    assert!(queries.len() >= 15, "the dashboard lost its panels: {}", queries.len());
    let rules = serde_json::json!({"groups": [{"name": "dashboard", "rules": queries.iter().enumerate()
        .map(|(i, (_, expr))| serde_json::json!({"record": format!("dashboard:query_{i}"), "expr": expr}))
        .collect::<Vec<_>>()}]});
    let dir = temp_dir();
    std::fs::write(dir.path().join("dashboard-queries.yml"), rules.to_string()).unwrap();
    promtool(&["check", "rules", "dashboard-queries.yml"], dir.path());

    // A node that has taken an upload, landed it and answered a report.
    let data = dir.path().join("node");
    let (key, _) = crate::support::create_agent_key(&data, "contoso").await;
    let server = start_server(&data, &["--land-interval-ms", "20"]);
    let (_, batch) = crate::support::named_batch("monitoring", 3);
    let answer = ingest::AgentClient::new(&server.base, &key)
        .upload_prepared(ingest::AgentClient::compress(&serde_json::to_vec(&batch).unwrap()))
        .await
        .unwrap();
    assert_eq!(answer.accepted.elevations, 3);
    let started = Instant::now();
    let exported = loop {
        let ready: serde_json::Value = reqwest::get(format!("{}/readyz", server.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let text = reqwest::get(format!("{}/metrics", server.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if ready["landedSeq"] == 1 && text.contains("elevation_wal_bytes ") {
            break text;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the upload did not land");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let exported: BTreeSet<String> = exported
        .lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(metric_names)
        .collect();
    assert!(server.terminate().success());

    // Recorded only by a maintenance pass, which a fresh node runs an interval after it starts.
    let maintenance_source = include_str!("../warehouse/src/maintenance.rs");
    let after_a_pass = ["elevation_maintenance_seconds"];
    let alerts = std::fs::read_to_string(ops("alerts.yml")).unwrap();
    let named: BTreeSet<String> = queries
        .iter()
        .flat_map(|(_, expr)| metric_names(expr))
        .chain(metric_names(&alerts))
        .collect();
    for name in &named {
        if after_a_pass.contains(&name.as_str()) {
            assert!(
                maintenance_source.contains(&format!("\"{name}\"")),
                "{name} is no longer recorded"
            );
        } else {
            assert!(
                exported.contains(name),
                "ops/ names {name}, which a node does not export; it exports {exported:?}"
            );
        }
    }
}
