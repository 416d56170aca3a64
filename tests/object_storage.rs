//! The warehouse on S3: a real S3-compatible server (moto, from PyPI, installed by `.ci/run`)
//! on loopback; the real binary ingests into `s3://bucket/prefix`, compacts there, and reports
//! from there the numbers of the ground truth.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{stdout_of, temp_dir};

struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts moto's S3 server on a free loopback port and waits until it accepts connections.
fn start_moto() -> (Moto, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server runs (.ci/run installs moto[server])");
    let moto = Moto(child);
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "moto did not start");
        std::thread::yield_now();
    }
    (moto, format!("http://127.0.0.1:{port}"))
}

fn s3_env(command: &mut Command, endpoint: &str) {
    command
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ALLOW_HTTP", "true")
        .env_remove("RUST_LOG");
}

fn elevation_s3(args: &[&str], endpoint: &str, cwd: &std::path::Path) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_elevation"));
    command.args(args).current_dir(cwd);
    s3_env(&mut command, endpoint);
    command.output().unwrap()
}

fn trend(json: &str) -> BTreeMap<(String, String), u64> {
    let value: serde_json::Value = serde_json::from_str(json).unwrap();
    value["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                (
                    r["date"].as_str().unwrap().to_owned(),
                    r["elevationType"].as_str().unwrap().to_owned(),
                ),
                r["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_compaction_and_reports_work_on_an_s3_compatible_store() {
    let (_moto, endpoint) = start_moto();
    let created = reqwest::Client::new()
        .put(format!("{endpoint}/elevation-test"))
        .send()
        .await
        .unwrap();
    assert!(
        created.status().is_success(),
        "cannot create the bucket: {}",
        created.status()
    );
    let dir = temp_dir();
    let data = dir.path().join("node");
    let warehouse = "s3://elevation-test/tenants-warehouse";
    let (key, _) = crate::support::create_agent_key(&data, "contoso").await;

    let today = warehouse::Clock::now(&warehouse::SystemClock).date_naive();
    let config = simulator::SimConfig::new(61, 30, 3, today);
    let mut bodies = Vec::new();
    let (_, truth) = simulator::simulate(&config, |_, _, b| {
        bodies.push(ingest::AgentClient::compress(&serde_json::to_vec(b).unwrap()));
        Ok::<_, std::convert::Infallible>(())
    })
    .unwrap();
    // Two lives of the server, each landing every other batch and stopping gracefully (which
    // lands what is left): every day then has files from both, for compaction to merge, however
    // the landings of one life fall.
    let halves: [Vec<_>; 2] = [0, 1].map(|half| bodies.iter().skip(half).step_by(2).cloned().collect());
    let mut uploaded = 0;
    for half in halves {
        let mut command = Command::new(env!("CARGO_BIN_EXE_elevation"));
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--land-interval-ms",
                "50",
                "--warehouse",
                warehouse,
                "--data-dir",
            ])
            .arg(&data)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        s3_env(&mut command, &endpoint);
        let server = crate::support::Server::spawned(command);
        let report = ingest::AgentClient::new(&server.base, &key)
            .upload_all(half, 8)
            .await
            .unwrap();
        uploaded += report.totals().0.elevations;
        assert!(server.terminate().success(), "graceful stop on S3");
    }
    assert_eq!(uploaded, truth.totals.elevations);
    assert!(!data.join("warehouse").exists(), "nothing may land on local disk");

    let mut expected = BTreeMap::new();
    for day in &truth.per_day {
        for (t, n) in &day.by_type {
            expected.insert((day.date.to_string(), t.clone()), *n);
        }
    }
    let from = truth.from.to_string();
    let to = truth.to.to_string();
    let args = [
        "report",
        "trend",
        "--warehouse",
        warehouse,
        "--from",
        &from,
        "--to",
        &to,
        "--format",
        "json",
    ];
    let before = stdout_of(&elevation_s3(&args, &endpoint, dir.path()));
    assert_eq!(trend(&before), expected, "trend from S3");

    let compacted = stdout_of(&elevation_s3(
        &["compact", "--warehouse", warehouse],
        &endpoint,
        dir.path(),
    ));
    let partitions: u64 = compacted
        .split("elevations: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected compact output: {compacted}"));
    assert!(
        partitions > 0,
        "two lives of the server left nothing to compact? {compacted}"
    );
    let after = stdout_of(&elevation_s3(&args, &endpoint, dir.path()));
    assert_eq!(trend(&after), expected, "trend from S3 after compaction");
}
