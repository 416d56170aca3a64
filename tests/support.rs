//! Shared helpers: running the real binary, temporary folders.

use std::path::Path;
use std::process::{Command, Output};

/// Runs the `elevation` binary built for this test run.
pub(crate) fn elevation(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_elevation"))
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .output()
        .expect("the elevation binary runs")
}

/// Stdout of a successful run, or a panic showing stderr.
pub(crate) fn stdout_of(output: &Output) -> String {
    assert!(
        output.status.success(),
        "elevation failed with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("utf-8 output")
}

/// A fresh temporary folder, removed when dropped.
pub(crate) fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary folder")
}

/// The instant every in-process server's clock is stopped at, and the date fleets end on.
pub(crate) fn test_now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339("2026-11-20T12:00:00Z")
        .unwrap()
        .to_utc()
}

/// An ingest and admin-API server on a free loopback port with its own data folder, keys for two tenants
/// and an admin key, and a clock stopped at [`test_now`].
pub(crate) struct Node {
    pub(crate) dir: tempfile::TempDir,
    /// The node's control plane (SQLite in its data folder).
    pub(crate) control: std::sync::Arc<control::ControlPlane>,
    pub(crate) base: String,
    pub(crate) agent_key: String,
    pub(crate) other_tenant_key: String,
    pub(crate) admin_key: String,
    pub(crate) warehouse: std::sync::Arc<warehouse::Warehouse>,
    pub(crate) stats: std::sync::Arc<ingest::LandingStats>,
    /// The clock of the ingest and admin sides (stopped at [`test_now`] unless a test moves it).
    pub(crate) clock: std::sync::Arc<dyn warehouse::Clock>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), ingest::IngestError>>>,
    flusher: Option<ingest::Flusher>,
}

impl Node {
    /// A node with default settings.
    pub(crate) async fn start() -> Node {
        Node::start_with(|_| {}).await
    }

    /// A node whose configuration `adjust` may change (its data folder is fresh).
    pub(crate) async fn start_with(adjust: impl FnOnce(&mut ingest::IngestConfig)) -> Node {
        let dir = temp_dir();
        let db = control::ControlDb::default_in(dir.path());
        Node::start_in(dir, &db, adjust).await
    }

    /// A node whose control plane is `db` (SQLite or PostgreSQL).
    pub(crate) async fn start_on(db: &control::ControlDb) -> Node {
        Node::start_in(temp_dir(), db, |_| {}).await
    }

    /// A node on `db` whose every clock (control plane, ingest, admin) is `clock`, and whose
    /// webhooks may go to loopback over http (a receiver in the test).
    pub(crate) async fn start_with_clock(db: &control::ControlDb, clock: std::sync::Arc<dyn warehouse::Clock>) -> Node {
        let options = control::ControlOptions {
            clock: clock.clone(),
            webhooks_allow_http_loopback: true,
            ..control::ControlOptions::default()
        };
        Node::start_in_with(temp_dir(), db, options, clock, |_| {}).await
    }

    async fn start_in(
        dir: tempfile::TempDir,
        db: &control::ControlDb,
        adjust: impl FnOnce(&mut ingest::IngestConfig),
    ) -> Node {
        let clock = std::sync::Arc::new(warehouse::FixedClock(test_now()));
        Node::start_in_with(dir, db, control::ControlOptions::default(), clock, adjust).await
    }

    async fn start_in_with(
        dir: tempfile::TempDir,
        db: &control::ControlDb,
        options: control::ControlOptions,
        clock: std::sync::Arc<dyn warehouse::Clock>,
        adjust: impl FnOnce(&mut ingest::IngestConfig),
    ) -> Node {
        let control = std::sync::Arc::new(
            control::ControlPlane::open(db, options)
                .await
                .expect("the control plane opens"),
        );
        use control::{KeyKind, Role};
        let (agent_key, _) = create_key(&control, "contoso", KeyKind::Agent, None).await;
        let (other_tenant_key, _) = create_key(&control, "fabrikam", KeyKind::Agent, None).await;
        let (admin_key, _) = create_key(&control, "contoso", KeyKind::Admin, Some(Role::ReadOnlyOperator)).await;
        let mut node = Node {
            dir,
            control,
            base: String::new(),
            agent_key,
            other_tenant_key,
            admin_key,
            warehouse: std::sync::Arc::new(warehouse::Warehouse::new(
                warehouse::Location::Local(Default::default()),
            )),
            stats: Default::default(),
            clock,
            stop: None,
            server: None,
            flusher: None,
        };
        node.run(adjust).await;
        node
    }

    /// Starts (or restarts) the server on the node's folder.
    pub(crate) async fn run(&mut self, adjust: impl FnOnce(&mut ingest::IngestConfig)) {
        let mut config = ingest::IngestConfig::new(self.dir.path());
        adjust(&mut config);
        let location = warehouse::Location::parse(self.dir.path().join("warehouse").to_str().unwrap()).unwrap();
        self.warehouse = std::sync::Arc::new(warehouse::Warehouse::new(location));
        let clock = self.clock.clone();
        let ingest = ingest::Ingest::start(config, self.warehouse.clone(), clock.clone(), self.control.clone())
            .await
            .expect("the node starts");
        self.stats = ingest.stats_handle();
        self.flusher = Some(ingest.flusher());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.base = format!("http://{}", listener.local_addr().unwrap());
        let admin = dashboards::face(dashboards::AdminApi {
            control: self.control.clone(),
            warehouse: self.warehouse.clone(),
            clock,
            key_dir: Some(self.dir.path().to_owned()),
        });
        let router = web::app([ingest.face(), admin]);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        self.stop = Some(stop);
        self.server = Some(tokio::spawn(ingest::serve(listener, ingest, router, async {
            let _ = stopped.await;
        })));
    }

    /// Stops gracefully: in-flight requests finish and everything acknowledged lands.
    pub(crate) async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().expect("the node stops cleanly");
        }
    }

    /// The running node's landing handle.
    pub(crate) fn flusher(&self) -> ingest::Flusher {
        self.flusher.clone().expect("running")
    }

    /// Lands everything acknowledged so far.
    pub(crate) async fn land_all(&self) {
        self.flusher
            .as_ref()
            .expect("running")
            .flush()
            .await
            .expect("landing works");
    }

    /// Rows of a tenant as DataFusion reads them from the tables.
    pub(crate) async fn counts(&self, tenant: &str) -> queries::LandedCounts {
        queries::landed_counts(&self.warehouse, tenant).await.unwrap()
    }

    /// Runs SQL over the tables and returns the rows as JSON objects.
    pub(crate) async fn sql(&self, sql: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
        let ctx = queries::session(&self.warehouse).await.unwrap();
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let mut writer = datafusion::arrow::json::ArrayWriter::new(Vec::new());
        for b in &batches {
            writer.write(b).unwrap();
        }
        writer.finish().unwrap();
        let text = writer.into_inner();
        if text.is_empty() {
            Vec::new()
        } else {
            serde_json::from_slice(&text).unwrap()
        }
    }

    /// The fingerprint of `day`'s raw files (`sourceFiles`) a rollup table recorded: what a
    /// row appended to a rollup must carry to be read as that day's.
    pub(crate) async fn recorded_fingerprint(&self, rollup: &str, day: chrono::NaiveDate) -> String {
        self.sql(&format!(
            r#"SELECT "sourceFiles" AS f FROM {rollup} WHERE "eventDate" = DATE '{day}' LIMIT 1"#
        ))
        .await[0]["f"]
            .as_str()
            .expect("the rollup holds the day")
            .to_owned()
    }

    /// Posts a body with headers; returns status, headers and the body as JSON (or Null).
    pub(crate) async fn post(&self, key: Option<&str>, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
        let client = reqwest::Client::new();
        let mut request = client.post(format!("{}/v1/agent/batches", self.base)).body(body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        answer_of(request.send().await.expect("the server answers")).await
    }

    /// Posts a batch as JSON with the contoso agent key.
    pub(crate) async fn upload(&self, batch: &serde_json::Value) -> Answer {
        self.post(
            Some(&self.agent_key),
            &[("content-type", "application/json")],
            serde_json::to_vec(batch).unwrap(),
        )
        .await
    }

    /// GET on a path of the server.
    pub(crate) async fn get(&self, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("{}{path}", self.base)).await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// GET on a path of the server with a bearer key.
    pub(crate) async fn get_with_key(&self, key: &str, path: &str) -> (u16, String) {
        let response = reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }
}

/// Status, `Retry-After` and JSON body (or Null) of an answer.
pub(crate) async fn answer_of(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.bytes().await.unwrap();
    let json = serde_json::from_slice(&text).unwrap_or(serde_json::Value::Null);
    Answer {
        status,
        json,
        retry_after,
    }
}

/// A server's answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) json: serde_json::Value,
    pub(crate) retry_after: Option<String>,
}

impl Answer {
    /// The error code of an error answer.
    pub(crate) fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("(no error code)")
    }

    /// The error message of an error answer.
    pub(crate) fn message(&self) -> &str {
        self.json["error"]["message"].as_str().unwrap_or("(no error message)")
    }
}

/// The batch context of rows appended straight to the warehouse: tenant `contoso`, level
/// `all`, received at [`test_now`].
pub(crate) fn batch_context(device_id: &str, batch_id: &str) -> warehouse::rows::BatchContext {
    warehouse::rows::BatchContext {
        tenant: "contoso".into(),
        device_id: device_id.into(),
        device_name: device_id.to_uppercase(),
        agent_version: None,
        batch_id: batch_id.into(),
        declared_level: warehouse::ReportingLevel::All,
        effective_level: warehouse::ReportingLevel::All,
        ingested_at: test_now(),
    }
}

/// A valid elevation event dated an hour before [`test_now`].
pub(crate) fn elevation_event(id: &str, elevation_type: &str) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "eventDateTime": "2026-11-20T11:00:00Z",
        "elevationType": elevation_type,
        "filePath": "C:\\Program Files\\Git\\bin\\git.exe",
        "hash": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "upn": "ada@contoso.com",
        "userType": "azureAd",
        "companyName": "The Git Development Community",
        "fileVersion": "2.47.0.0",
        "result": 0,
        "processType": "parent",
        "parentProcessName": "explorer.exe"
    })
}

/// A valid diagnostic event.
pub(crate) fn diagnostic(event_id: i64) -> serde_json::Value {
    serde_json::json!({
        "eventDateTime": "2026-11-20T10:00:00Z", "eventId": event_id, "eventName": "PolicyApplied",
        "errorCode": 0, "policyType": "rules", "policyId": "p-1", "policyVersion": "3"
    })
}

/// A batch envelope.
pub(crate) fn batch(
    batch_id: &str,
    level: &str,
    elevations: Vec<serde_json::Value>,
    diagnostics: Vec<serde_json::Value>,
) -> serde_json::Value {
    serde_json::json!({
        "batchId": batch_id, "deviceId": "device-1", "deviceName": "LAPTOP-0001", "agentVersion": "1.4.0",
        "reportingLevel": level, "elevations": elevations, "diagnostics": diagnostics
    })
}

/// A batch whose id is `name`, of `events` elevations with ids `{name}-{i}`: the ids and
/// the envelope.
pub(crate) fn named_batch(name: &str, events: usize) -> (Vec<String>, serde_json::Value) {
    let ids: Vec<String> = (0..events).map(|i| format!("{name}-{i:04}")).collect();
    let elevations = ids
        .iter()
        .map(|id| elevation_event(id, "userConfirmedElevation"))
        .collect();
    (ids, batch(name, "all", elevations, vec![]))
}

/// A batch of one elevation and no diagnostics.
pub(crate) fn one_event_batch(batch_id: &str, event_id: &str, elevation_type: &str) -> serde_json::Value {
    batch(batch_id, "all", vec![elevation_event(event_id, elevation_type)], vec![])
}

/// The control plane of a data folder (its default SQLite file), as `elevation` opens it.
pub(crate) async fn open_control(data_dir: &Path) -> std::sync::Arc<control::ControlPlane> {
    let db = control::ControlDb::default_in(data_dir);
    std::sync::Arc::new(
        control::ControlPlane::open(&db, control::ControlOptions::default())
            .await
            .expect("the control plane opens"),
    )
}

/// What the tests do as an admin on the command line: the audit log's actor.
pub(crate) fn test_actor() -> control::AuditContext {
    control::AuditContext::cli(Some("test@contoso.com"))
}

/// Creates a key (admin keys are held by `admin@<tenant>.com`).
pub(crate) async fn create_key(
    control: &control::ControlPlane,
    tenant: &str,
    kind: control::KeyKind,
    role: Option<control::Role>,
) -> (String, control::KeyRecord) {
    let upn = (kind == control::KeyKind::Admin).then(|| format!("admin@{tenant}.com"));
    control
        .create_key(&test_actor(), tenant, kind, role, upn.as_deref())
        .await
        .expect("the key is created")
}

/// Creates an agent key of `tenant` in a data folder, as `elevation keys create` does.
pub(crate) async fn create_agent_key(data_dir: &Path, tenant: &str) -> (String, control::KeyRecord) {
    let control = open_control(data_dir).await;
    let created = create_key(&control, tenant, control::KeyKind::Agent, None).await;
    control.close().await;
    created
}

/// The first line a child prints on its piped stdout (where it listens). The rest is read and
/// dropped on a thread, so the child never writes into a closed pipe.
pub(crate) fn first_line(child: &mut std::process::Child) -> String {
    use std::io::{BufRead, BufReader};
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    std::thread::spawn(move || for _ in stdout.lines() {});
    line
}

/// A helper process (moto, a cluster process) that is killed when the test ends, whatever
/// happens.
pub(crate) struct KilledOnDrop(pub(crate) std::process::Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A real `elevation serve` process on a free loopback port.
pub(crate) struct Server {
    pub(crate) child: std::process::Child,
    pub(crate) base: String,
}

/// Starts `elevation serve --listen 127.0.0.1:0 --data-dir DIR ARGS…` and reads the address it
/// prints.
pub(crate) fn start_server(data_dir: &Path, args: &[&str]) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_elevation"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    Server::spawned(command)
}

impl Server {
    /// Spawns a prepared `elevation serve` command (stdout piped) and reads the address it
    /// prints.
    pub(crate) fn spawned(mut command: Command) -> Server {
        let mut child = command.spawn().expect("elevation serve starts");
        let line = first_line(&mut child);
        let base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://") || w.starts_with("https://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_owned();
        Server { child, base }
    }

    /// SIGKILL (`kill -9`), then waits: nothing of the server's runs after this.
    pub(crate) fn kill(&mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits: the server finishes in-flight uploads and lands everything.
    pub(crate) fn terminate(mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM failed");
        self.child.wait().unwrap()
    }
}

/// A simulated fleet uploaded through a node and landed: its world, its ground truth and
/// every elevation its agents sent, with the device that sent it.
pub(crate) struct LandedFleet {
    pub(crate) world: simulator::world::World,
    pub(crate) truth: simulator::GroundTruth,
    pub(crate) sent: Vec<(String, warehouse::ElevationEvent)>,
}

/// Simulates a fleet for `tenant` ending at [`test_now`], uploads it gzip-compressed with
/// `key` through the node and lands it; every event must be accepted.
pub(crate) async fn land_simulated_fleet(
    node: &Node,
    key: &str,
    tenant: &str,
    seed: u64,
    devices: u32,
    days: u32,
) -> LandedFleet {
    let mut config = simulator::SimConfig::new(seed, devices, days, test_now().date_naive());
    config.tenant = tenant.into();
    let mut bodies = Vec::new();
    let mut sent = Vec::new();
    let (world, truth) = simulator::simulate(&config, |_, _, batch| {
        sent.extend(batch.elevations.iter().map(|e| (batch.device_id.clone(), e.clone())));
        bodies.push(ingest::AgentClient::compress(&serde_json::to_vec(batch).unwrap()));
        Ok::<_, std::convert::Infallible>(())
    })
    .unwrap();
    let report = ingest::AgentClient::new(&node.base, key)
        .upload_all(bodies, 8)
        .await
        .unwrap();
    let (accepted, _, rejected) = report.totals();
    assert_eq!(rejected, 0);
    assert_eq!(accepted.elevations, truth.totals.elevations);
    node.land_all().await;
    LandedFleet { world, truth, sent }
}

/// Asserts that the elevations table of the warehouse at `location` holds each of `expected`
/// (event ids) exactly once and nothing else.
pub(crate) async fn assert_stored_exactly_once(
    location: warehouse::Location,
    expected: &std::collections::BTreeSet<String>,
) {
    use datafusion::arrow::array::AsArray;
    let warehouse = warehouse::Warehouse::new(location);
    let ctx = queries::session(&warehouse).await.unwrap();
    let batches = ctx
        .sql("SELECT id, COUNT(*) AS n FROM elevations GROUP BY id")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut stored = std::collections::BTreeMap::new();
    for b in &batches {
        let ids = datafusion::arrow::compute::cast(b.column(0), &datafusion::arrow::datatypes::DataType::Utf8).unwrap();
        let n = b.column(1).as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        for (row, id) in ids.as_string::<i32>().iter().enumerate() {
            stored.insert(id.unwrap().to_owned(), n.value(row));
        }
    }
    let twice: Vec<_> = stored.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "events stored more than once: {twice:?}");
    let missing: Vec<_> = expected.iter().filter(|id| !stored.contains_key(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(stored.len(), expected.len(), "rows that nobody sent");
}

/// The rows of a `trend` report's JSON as (date, elevationType) → count, the shape of
/// `reports::truth_trend`.
pub(crate) fn trend_counts(report: &serde_json::Value) -> std::collections::BTreeMap<(String, String), u64> {
    report["rows"]
        .as_array()
        .expect("a report has rows")
        .iter()
        .map(|row| {
            (
                (
                    row["date"].as_str().unwrap().to_owned(),
                    row["elevationType"].as_str().unwrap().to_owned(),
                ),
                row["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The counts of a `compliance` report month, in the report's order.
pub(crate) const COMPLIANCE_COUNTS: [&str; 6] = [
    "users",
    "usersWithUnmanaged",
    "elevations",
    "managed",
    "devices",
    "devicesAtAll",
];
