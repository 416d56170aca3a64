//! The whole system past one machine, on one machine (issue #20): moto's S3 server, a
//! PostgreSQL control plane, a Ballista scheduler with two executors and two ingest nodes,
//! each a separate process on loopback. A simulated fleet uploads through both nodes (with
//! retries crossing nodes), one ingest node and one executor are killed with SIGKILL during
//! the run, and afterwards every acknowledged event is in the tables exactly once and every
//! report from the cluster equals the in-process answer and the simulator's ground truth.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use queries::ReportName;

use crate::cluster::Cluster;
use crate::object_storage::{elevation_s3, s3_env, start_moto};
use crate::reports::truth_trend;
use crate::support::{Server, stdout_of, temp_dir};

/// `elevation serve` on loopback for the shared warehouse and control plane.
fn ingest_node(data: &Path, warehouse: &str, control_db: &str, endpoint: &str, land_interval_ms: &str) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_elevation"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args([
            "--warehouse",
            warehouse,
            "--control-db",
            control_db,
            "--land-interval-ms",
            land_interval_ms,
            // Reports run while the nodes work: no compaction replacing files under them.
            "--maintenance-interval-minutes",
            "0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    s3_env(&mut command, endpoint);
    Server::spawned(command)
}

/// A client that tries a node once: a load balancer moves a failed upload to the other node
/// itself, and so does this test.
fn client(node: &Server, key: &str) -> ingest::AgentClient {
    let mut client = ingest::AgentClient::new(&node.base, key);
    client.max_attempts = 1;
    client
}

/// `elevation ARGS…` with the S3 variables; what it printed, after asserting it succeeded.
fn run(args: &[&str], endpoint: &str, cwd: &Path) -> String {
    let output = elevation_s3(args, endpoint, cwd);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout_of(&output)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ingest_nodes_and_a_ballista_cluster_on_s3_and_postgresql_behave_as_one_service() {
    let (_moto, endpoint) = start_moto();
    let bucket = reqwest::Client::new()
        .put(format!("{endpoint}/elevation-scale-out"))
        .send()
        .await
        .unwrap();
    assert!(bucket.status().is_success(), "cannot create the bucket");
    let warehouse = "s3://elevation-scale-out/warehouse";
    let pg = control::testing::TestDb::postgres().await;
    let control_db = pg.db.as_arg();
    let control = control::ControlPlane::open(&pg.db, Default::default()).await.unwrap();
    let (key, _) = crate::support::create_key(&control, "contoso", control::KeyKind::Agent, None).await;
    control.close().await;
    let mut cluster = Cluster::start(2, &|command| s3_env(command, &endpoint)).await;

    let dir = temp_dir();
    let (a_dir, b_dir) = (dir.path().join("node-a"), dir.path().join("node-b"));
    let a = ingest_node(&a_dir, warehouse, &control_db, &endpoint, "100");
    // B lands nothing on its own: what it acknowledges stays in its log until it is killed and
    // `wal land` lands that log, after A has landed the copies retried on A.
    let mut b = ingest_node(&b_dir, warehouse, &control_db, &endpoint, "3600000");
    let (to_a, to_b) = (client(&a, &key), client(&b, &key));

    let today = warehouse::Clock::now(&warehouse::SystemClock).date_naive();
    let config = simulator::SimConfig::new(2020, 24, 3, today);
    let mut batches: Vec<(Vec<String>, Vec<u8>)> = Vec::new();
    let (_, truth) = simulator::simulate(&config, |_, _, batch| {
        let ids = batch.elevations.iter().map(|e| e.id.clone()).collect();
        batches.push((ids, ingest::AgentClient::compress(&serde_json::to_vec(batch).unwrap())));
        Ok::<_, std::convert::Infallible>(())
    })
    .unwrap();
    assert!(batches.len() >= 40, "a fleet big enough to spread: {}", batches.len());

    let mut acknowledged: BTreeSet<String> = BTreeSet::new();
    // Which node first acknowledged each batch (0 = A, 1 = B).
    let mut first_on: Vec<usize> = Vec::new();
    let half = batches.len() / 2;
    for (n, (ids, body)) in batches.iter().take(half).enumerate() {
        let (first, other) = if n % 2 == 0 { (&to_a, &to_b) } else { (&to_b, &to_a) };
        let answer = first.upload_prepared(body.clone()).await.expect("acknowledged");
        assert_eq!(answer.accepted.elevations, ids.len() as u64);
        acknowledged.extend(ids.iter().cloned());
        first_on.push(n % 2);
        if n % 3 == 0 {
            // The answer was lost on the way back: the agent retries, and the load balancer
            // picks the other node.
            let retried = other.upload_prepared(body.clone()).await.expect("a retry is answered");
            assert_eq!(retried.accepted, answer.accepted, "batch {n}");
        }
        if n % 5 == 0 {
            // Two copies in flight at once, one on each node.
            let (x, y) = tokio::join!(to_a.upload_prepared(body.clone()), to_b.upload_prepared(body.clone()));
            assert_eq!(x.expect("acknowledged").accepted, answer.accepted);
            assert_eq!(y.expect("acknowledged").accepted, answer.accepted);
        }
    }

    // B dies with an upload in flight: acknowledged or not, nothing is lost or doubled.
    let (in_flight_ids, in_flight_body) = &batches[half];
    let in_flight = tokio::spawn({
        let to_b = to_b.clone();
        let body = in_flight_body.clone();
        async move { to_b.upload_prepared(body).await }
    });
    b.child.kill().expect("SIGKILL");
    b.child.wait().unwrap();
    if let Ok(Ok(answer)) = in_flight.await {
        assert_eq!(answer.accepted.elevations, in_flight_ids.len() as u64);
        acknowledged.extend(in_flight_ids.iter().cloned());
    }
    // The rest of the fleet: what was meant for B fails and moves to A.
    for (n, (ids, body)) in batches.iter().enumerate().skip(half) {
        if n % 2 == 1 {
            assert!(to_b.upload_prepared(body.clone()).await.is_err(), "B is dead");
        }
        let answer = to_a.upload_prepared(body.clone()).await.expect("acknowledged");
        assert_eq!(answer.accepted.elevations, ids.len() as u64);
        acknowledged.extend(ids.iter().cloned());
        first_on.push(0);
    }
    assert!(a.terminate().success(), "A stops gracefully, landing what it holds");

    // B never comes back: its log is landed from another machine. The batches it holds that
    // were retried on A are A's now, and are not landed twice.
    let landed = run(
        &[
            "wal",
            "land",
            "--from",
            b_dir.to_str().unwrap(),
            "--data-dir",
            dir.path().join("lander").to_str().unwrap(),
            "--warehouse",
            warehouse,
            "--control-db",
            &control_db,
        ],
        &endpoint,
        dir.path(),
    );
    assert!(
        landed.contains("stored first by another node, not landed twice"),
        "B's log held copies A stored: {landed}"
    );

    // B comes back on its folder: a retry of a batch A stored is a duplicate there too, with
    // A's answer.
    let b = ingest_node(&b_dir, warehouse, &control_db, &endpoint, "100");
    let to_b = client(&b, &key);
    let mut duplicates = 0;
    for (n, (ids, body)) in batches.iter().enumerate().filter(|(n, _)| first_on[*n] == 0).step_by(4) {
        let answer = to_b.upload_prepared(body.clone()).await.expect("answered");
        assert!(answer.duplicate, "batch {n}, stored by A, retried on B");
        assert_eq!(answer.accepted.elevations, ids.len() as u64);
        duplicates += 1;
    }
    assert!(duplicates >= 5);
    assert!(b.terminate().success());

    // Every acknowledged event is in the table exactly once: the event list, read on the
    // cluster, holds each once and nothing else.
    let from = truth.from.to_string();
    let to = truth.to.to_string();
    let window = ["--tenant", "contoso", "--from", &from, "--to", &to, "--format", "json"];
    let cluster_url = cluster.url.clone();
    let ask = |report: &str, on_cluster: bool| {
        let mut args = vec!["report", report, "--warehouse", warehouse];
        args.extend(window);
        if on_cluster {
            args.extend(["--cluster", cluster_url.as_str()]);
        }
        if report == "elevations" {
            args.extend(["--limit", "1000000"]);
        }
        let text = run(&args, &endpoint, dir.path());
        serde_json::from_str::<serde_json::Value>(&text).unwrap()
    };
    let listed = ask("elevations", true);
    let mut stored: BTreeMap<String, usize> = BTreeMap::new();
    for row in listed["rows"].as_array().unwrap() {
        *stored.entry(row["id"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    let twice: Vec<_> = stored.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "events stored more than once: {twice:?}");
    let stored: BTreeSet<String> = stored.into_keys().collect();
    assert_eq!(
        stored.len(),
        acknowledged.len(),
        "every acknowledged event, and nothing else"
    );
    assert_eq!(stored, acknowledged);
    assert_eq!(stored.len() as u64, truth.totals.elevations, "the whole fleet arrived");

    // Every report from the cluster equals the in-process answer; an executor dies half-way.
    let trend = ask("trend", true);
    let found = crate::support::trend_counts(&trend);
    assert_eq!(
        found,
        truth_trend(&truth, None),
        "the trend on the cluster is the ground truth"
    );
    let reports = ReportName::ALL;
    for (i, report) in reports.iter().enumerate() {
        if i == reports.len() / 2 {
            assert!(
                cluster.shuffle_files().iter().all(|&files| files > 0),
                "both executors ran tasks before one died: {:?}",
                cluster.shuffle_files()
            );
            assert_eq!(cluster.executors().await.len(), 2);
            cluster.kill_executor(0).await;
        }
        let name = report.as_str();
        let here = ask(name, false);
        assert!(
            here["rows"].as_array().is_some_and(|rows| !rows.is_empty()),
            "{name} has rows to compare: {here}"
        );
        assert_eq!(ask(name, true), here, "{name} on the cluster");
    }
}

/// `bench ingest --nodes 2` runs two servers on one warehouse and PostgreSQL, and says what
/// each did (a smoke test: the figures themselves are for release builds, in BENCHMARKS.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingest_benchmark_spreads_uploads_over_two_nodes() {
    let pg = control::testing::TestDb::postgres().await;
    let dir = temp_dir();
    let output = crate::support::elevation(
        &[
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--control-db",
            &pg.db.as_arg(),
            "bench",
            "ingest",
            "--nodes",
            "2",
            "--events",
            "4000",
            "--batch-events",
            "100",
            "--concurrency",
            "4",
        ],
        dir.path(),
    );
    let printed = stdout_of(&output);
    assert!(printed.contains("2 node(s) on a postgres control plane"), "{printed}");
    for node in ["node 0: 2000 events", "node 1: 2000 events"] {
        assert!(printed.contains(node), "{node}: {printed}");
    }
    // Without PostgreSQL two nodes could not share their claims: refused, saying why.
    let refused = crate::support::elevation(
        &[
            "--data-dir",
            dir.path().join("sqlite").to_str().unwrap(),
            "bench",
            "ingest",
            "--nodes",
            "2",
            "--events",
            "100",
        ],
        dir.path(),
    );
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("postgres://"), "{said}");
}
