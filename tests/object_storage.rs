//! The warehouse on S3: a real S3-compatible server (moto, from PyPI, installed by `.ci/run`)
//! on loopback; the real binary ingests into `s3://bucket/prefix`, compacts there, and reports
//! from there the numbers of the ground truth, also on a Ballista cluster. And the store going away under load: a relay
//! in front of moto is cut (connections refused) and restored.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{KilledOnDrop as Moto, stdout_of, temp_dir};

/// Starts moto's S3 server on a free loopback port and waits until it accepts connections.
pub(crate) fn start_moto() -> (Moto, String) {
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

pub(crate) fn s3_env(command: &mut Command, endpoint: &str) {
    command
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ALLOW_HTTP", "true")
        .env_remove("RUST_LOG");
}

pub(crate) fn elevation_s3(args: &[&str], endpoint: &str, cwd: &std::path::Path) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_elevation"));
    command.args(args).current_dir(cwd);
    s3_env(&mut command, endpoint);
    command.output().unwrap()
}

fn trend(json: &str) -> BTreeMap<(String, String), u64> {
    crate::support::trend_counts(&serde_json::from_str(json).unwrap())
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

    // The same warehouse read on a Ballista cluster whose executor knows the store only from
    // the AWS_* variables: the trend (rollups) and the event list (raw rows) as in-process.
    let cluster = crate::cluster::Cluster::start(1, &|command| s3_env(command, &endpoint)).await;
    let on_cluster = [&args[..], &["--cluster", cluster.url.as_str()]].concat();
    let there = stdout_of(&elevation_s3(&on_cluster, &endpoint, dir.path()));
    assert_eq!(trend(&there), expected, "trend from S3 on a cluster");
    let mut events = args;
    events[1] = "elevations";
    let here = stdout_of(&elevation_s3(&events, &endpoint, dir.path()));
    let events_on_cluster = [&events[..], &["--cluster", cluster.url.as_str()]].concat();
    let there = stdout_of(&elevation_s3(&events_on_cluster, &endpoint, dir.path()));
    let listed: serde_json::Value = serde_json::from_str(&here).unwrap();
    assert!(listed["rows"].as_array().is_some_and(|rows| !rows.is_empty()), "{here}");
    assert_eq!(there, here, "the event list from S3 on a cluster");
    assert!(cluster.shuffle_files()[0] > 0, "the executor ran no task");
}

/// A TCP relay in front of moto that the test can cut: while down, every connection through
/// it is closed and every new one is closed as soon as it is accepted, as when object storage
/// goes away; up again, it relays. Its port stays bound for the whole test, so no other
/// process of a test running beside this one can take it while it is down.
struct Relay {
    port: u16,
    up: Arc<std::sync::atomic::AtomicBool>,
    connections: Arc<Mutex<tokio::task::JoinSet<()>>>,
    _accepting: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(target: &str) -> Relay {
        let target: std::net::SocketAddr = target.trim_start_matches("http://").parse().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let connections = Arc::new(Mutex::new(tokio::task::JoinSet::new()));
        let accepting = tokio::spawn({
            let (up, connections) = (up.clone(), connections.clone());
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if !up.load(std::sync::atomic::Ordering::SeqCst) {
                        continue; // dropped: closed at once
                    }
                    connections.lock().unwrap().spawn(async move {
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                }
            }
        });
        Relay {
            port,
            up,
            connections,
            _accepting: accepting,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn up(&mut self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    async fn down(&mut self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        // Aborting a connection's task drops both of its sockets.
        self.connections.lock().unwrap().abort_all();
    }
}

/// A batch named `name` of `events` elevations, gzip JSON as agents send it.
fn outage_batch(name: &str, events: usize) -> (Vec<String>, Vec<u8>) {
    let (ids, body) = crate::support::named_batch(name, events);
    (ids, ingest::AgentClient::compress(&serde_json::to_vec(&body).unwrap()))
}

async fn post_gzip(base: &str, key: &str, body: Vec<u8>) -> crate::support::Answer {
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/agent/batches"))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(body)
        .send()
        .await
        .expect("the server answers");
    crate::support::answer_of(response).await
}

/// A node on an S3 warehouse reached through a [`Relay`] the test can cut, with an agent key
/// and a read-only admin key, and what it acknowledged.
struct Outage {
    _moto: Moto,
    moto_endpoint: String,
    /// This test's own bucket: a process keeps one object store per bucket for all its
    /// queries, so two tests running side by side must not share a bucket name.
    bucket: String,
    relay: Relay,
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
    agent_key: String,
    admin_key: String,
    /// Event ids of every batch answered `200`.
    acknowledged: std::collections::BTreeSet<String>,
    next: usize,
}

impl Outage {
    async fn start() -> Outage {
        let (moto, moto_endpoint) = start_moto();
        let port = moto_endpoint.rsplit(':').next().unwrap();
        let bucket = format!("elevation-outage-{port}");
        let created = reqwest::Client::new()
            .put(format!("{moto_endpoint}/{bucket}"))
            .send()
            .await
            .unwrap();
        assert!(created.status().is_success());
        let relay = Relay::start(&moto_endpoint).await;
        let dir = temp_dir();
        let data = dir.path().join("node");
        let (agent_key, _) = crate::support::create_agent_key(&data, "contoso").await;
        let control = crate::support::open_control(&data).await;
        let (admin_key, _) = crate::support::create_key(
            &control,
            "contoso",
            control::KeyKind::Admin,
            Some(control::Role::ReadOnlyOperator),
        )
        .await;
        control.close().await;
        Outage {
            _moto: moto,
            moto_endpoint,
            bucket,
            relay,
            _dir: dir,
            data,
            agent_key,
            admin_key,
            acknowledged: Default::default(),
            next: 0,
        }
    }

    fn warehouse(&self) -> String {
        format!("s3://{}/warehouse", self.bucket)
    }

    /// `elevation serve` on the node's data folder, landing every 50 ms, a 1 MiB backlog.
    fn serve(&self) -> crate::support::Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_elevation"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--land-interval-ms", "50"])
            .args([
                "--max-buffered-mib",
                "1",
                "--warehouse",
                &self.warehouse(),
                "--data-dir",
            ])
            .arg(&self.data)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        s3_env(&mut command, &self.relay.endpoint());
        crate::support::Server::spawned(command)
    }

    /// Uploads batch `name` (200 events) to `base`; remembers its events when answered `200`.
    async fn upload_named(&mut self, base: &str, name: &str) -> crate::support::Answer {
        let (ids, body) = outage_batch(name, 200);
        let answer = post_gzip(base, &self.agent_key, body).await;
        if answer.status == 200 {
            self.acknowledged.extend(ids);
        }
        answer
    }

    /// Uploads the next new batch.
    async fn upload(&mut self, base: &str) -> crate::support::Answer {
        let name = format!("outage-{:04}", self.next);
        self.next += 1;
        self.upload_named(base, &name).await
    }

    /// Uploads new batches until one is refused: the backlog limit, storage being down.
    async fn upload_until_refused(&mut self, base: &str) -> crate::support::Answer {
        for _ in 0..500 {
            let answer = self.upload(base).await;
            match answer.status {
                200 => continue,
                503 => return answer,
                other => panic!("storage down, an upload answered {other}: {answer:?}"),
            }
        }
        panic!("the backlog limit was never reached with storage down");
    }

    /// Waits until the node says everything acknowledged is in the tables.
    async fn wait_until_landed(base: &str) {
        let started = Instant::now();
        loop {
            let ready = crate::support::answer_of(reqwest::get(format!("{base}/readyz")).await.unwrap()).await;
            if ready.status == 200 && ready.json["waitingToLand"] == 0 {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "the backlog did not land after storage returned: {ready:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Asserts the warehouse holds every acknowledged event once and nothing else.
    async fn assert_stored_exactly_once(&self) {
        let store = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&self.moto_endpoint)
            .with_bucket_name(&self.bucket)
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .with_region("us-east-1")
            .with_allow_http(true)
            .build()
            .unwrap();
        let location = warehouse::Location::s3(&self.warehouse(), Arc::new(store)).unwrap();
        crate::support::assert_stored_exactly_once(location, &self.acknowledged).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_storage_going_away_under_load_keeps_what_was_acknowledged_and_lands_it_once_when_back() {
    let mut outage = Outage::start().await;
    let server = outage.serve();
    let base = server.base.clone();
    for _ in 0..5 {
        assert_eq!(outage.upload(&base).await.status, 200);
    }

    outage.relay.down().await;
    // Agents keep uploading: the log takes their batches until the backlog limit, then the
    // node sheds them with a 503 that says so.
    let refused = outage.upload_until_refused(&base).await;
    assert_eq!(refused.code(), "landing_backlog", "{refused:?}");
    assert!(refused.retry_after.is_some());
    let ready = crate::support::answer_of(reqwest::get(format!("{base}/readyz")).await.unwrap()).await;
    assert_eq!(ready.status, 503, "{ready:?}");

    let report = reqwest::Client::new()
        .get(format!("{base}/v1/reports/trend"))
        .bearer_auth(&outage.admin_key)
        .send()
        .await
        .unwrap();
    let report = crate::support::answer_of(report).await;
    assert_eq!(report.status, 503, "a report with storage down: {report:?}");
    assert_eq!(report.code(), "storage_unavailable", "{report:?}");
    assert!(report.message().contains("object storage"), "{}", report.message());

    // Storage comes back: the node lands its backlog by itself and takes uploads again.
    outage.relay.up().await;
    Outage::wait_until_landed(&base).await;
    for _ in 0..3 {
        assert_eq!(outage.upload(&base).await.status, 200);
    }
    assert!(server.terminate().success(), "graceful stop after the outage");
    outage.assert_stored_exactly_once().await;
}

/// Two faults at once: the node dies (`kill -9`) while object storage is away, and starts again
/// before storage returns. It must start (its log holds what it acknowledged; what each table
/// holds is asked once storage answers), land the log when storage returns, and store each
/// batch once, a batch retried across the restart included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_while_object_storage_is_down_starts_again_and_lands_its_log_once_storage_returns() {
    let mut outage = Outage::start().await;
    let mut first = outage.serve();
    let base = first.base.clone();
    for _ in 0..5 {
        assert_eq!(outage.upload(&base).await.status, 200);
    }
    Outage::wait_until_landed(&base).await;
    outage.relay.down().await;
    let refused = outage.upload_until_refused(&base).await;
    assert_eq!(refused.code(), "landing_backlog", "{refused:?}");
    let refused_name = format!("outage-{:04}", outage.next - 1);

    first.kill();
    let second = outage.serve();
    let base = second.base.clone();
    let ready = crate::support::answer_of(reqwest::get(format!("{base}/readyz")).await.unwrap()).await;
    assert_eq!(
        ready.status, 503,
        "restarted with storage down and a full log: {ready:?}"
    );

    outage.relay.up().await;
    Outage::wait_until_landed(&base).await;
    // The agent retries the batch refused before the crash, and sends a new one.
    let retried = outage.upload_named(&base, &refused_name).await;
    assert_eq!(
        (retried.status, retried.json["duplicate"].as_bool()),
        (200, Some(false)),
        "{retried:?}"
    );
    assert_eq!(outage.upload(&base).await.status, 200);
    // A batch acknowledged before the crash, retried: answered from the first answer.
    let again = outage.upload_named(&base, "outage-0000").await;
    assert_eq!(
        (again.status, again.json["duplicate"].as_bool()),
        (200, Some(true)),
        "{again:?}"
    );
    assert!(second.terminate().success(), "graceful stop after the outage");
    outage.assert_stored_exactly_once().await;
}
