//! Reports on a Ballista cluster (issue #20): `elevation scheduler` and two `elevation
//! executor` processes on loopback; every report and the suggestions, asked with `--cluster`,
//! give exactly the in-process answer, both executors ran tasks, and with one executor killed
//! the answers stay the same.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use queries::ReportName;

use crate::reports::{land_fleet, truth_trend};
use crate::support::{KilledOnDrop as Process, Node, elevation, first_line, stdout_of, temp_dir};

/// Starts `elevation ARGS…` (with `environment` applied to the command), returns it and the
/// first line it prints (where it listens).
fn start(args: &[&str], environment: &dyn Fn(&mut Command)) -> (Process, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_elevation"));
    command
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    environment(&mut command);
    let mut child = command.spawn().expect("elevation starts");
    let line = first_line(&mut child);
    (Process(child), line)
}

/// A scheduler and its executors, each a separate `elevation` process on loopback.
pub(crate) struct Cluster {
    /// What `--cluster` takes: `df://127.0.0.1:PORT`.
    pub(crate) url: String,
    /// The scheduler's REST API.
    rest: String,
    /// Each executor's work folder (its shuffle files).
    work: Vec<tempfile::TempDir>,
    _scheduler: Process,
    executors: Vec<Process>,
}

impl Cluster {
    /// Starts a scheduler and `executors` executors (one task at a time each, so that a
    /// stage of two tasks needs both), with `environment`
    /// applied to every process, and waits until every executor has registered.
    pub(crate) async fn start(executors: usize, environment: &dyn Fn(&mut Command)) -> Cluster {
        // A dead executor is noticed within seconds: heartbeats every second, dead after 3.
        let (scheduler, line) = start(
            &["scheduler", "--listen", "127.0.0.1:0", "--executor-timeout-secs", "3"],
            environment,
        );
        let url = line
            .split_whitespace()
            .find(|word| word.starts_with("df://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_owned();
        let mut cluster = Cluster {
            rest: url.replace("df://", "http://"),
            url,
            work: (0..executors).map(|_| temp_dir()).collect(),
            _scheduler: scheduler,
            executors: Vec::new(),
        };
        for dir in &cluster.work {
            let args = [
                "executor",
                "--scheduler",
                &cluster.url,
                "--flight-port",
                "0",
                "--grpc-port",
                "0",
                "--concurrent-tasks",
                "1",
                "--work-dir",
                dir.path().to_str().unwrap(),
                "--heartbeat-secs",
                "1",
            ];
            cluster.executors.push(start(&args, environment).0);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while cluster.executors().await.len() < executors {
            assert!(
                Instant::now() < deadline,
                "the executors never registered with {}",
                cluster.rest
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        cluster
    }

    /// How many shuffle files each executor has written: more than none once it ran a task.
    pub(crate) fn shuffle_files(&self) -> Vec<usize> {
        self.work.iter().map(|dir| files_under(dir.path())).collect()
    }

    /// Kills executor `index` with SIGKILL and waits until the scheduler has noticed (its REST
    /// API lists one executor fewer).
    pub(crate) async fn kill_executor(&mut self, index: usize) {
        let mut lost = self.executors.remove(index);
        lost.0.kill().expect("SIGKILL");
        lost.0.wait().unwrap();
        let noticed = Instant::now();
        while self.executors().await.len() != self.executors.len() {
            assert!(
                noticed.elapsed() < Duration::from_secs(60),
                "the scheduler never noticed the dead executor"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The executors the scheduler's REST API knows.
    pub(crate) async fn executors(&self) -> Vec<serde_json::Value> {
        match reqwest::get(format!("{}/api/executors", self.rest)).await {
            Ok(answer) => answer.json().await.unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }
}

/// Files under `dir`, recursively.
fn files_under(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|entry| {
            let path = entry.path();
            if path.is_dir() { files_under(&path) } else { 1 }
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_report_on_a_ballista_cluster_equals_the_in_process_answer() {
    let mut node = Node::start().await;
    let truth = land_fleet(&node, &node.agent_key, "contoso", 20, 40, 4).await;
    // Another tenant in the same tables: a query lists only its own tenant's files.
    let fabrikam = crate::reports::key_for(&node, "fabrikam", control::KeyKind::Agent, None).await;
    land_fleet(&node, &fabrikam, "fabrikam", 21, 10, 2).await;
    let listed = async |tenant| {
        let delta = node.warehouse.latest(warehouse::Table::Elevations).await.unwrap();
        queries::cluster::SnapshotTable::of(&delta, warehouse::Table::Elevations, tenant)
            .await
            .unwrap()
            .file_count()
    };
    let (contoso_files, fabrikam_files) = (listed(Some("contoso")).await, listed(Some("fabrikam")).await);
    assert!(contoso_files > 0 && fabrikam_files > 0);
    assert_eq!(
        contoso_files + fabrikam_files,
        listed(None).await,
        "each file is one tenant's"
    );
    node.stop().await;
    let data = node.dir.path().to_str().unwrap().to_owned();
    // Compaction and the rollups: whole days then come from the rollup tables, so those are
    // read on the cluster too.
    let compacted = elevation(&["compact", "--data-dir", &data], node.dir.path());
    assert!(
        compacted.status.success(),
        "{}",
        String::from_utf8_lossy(&compacted.stderr)
    );

    let mut running = Cluster::start(2, &|_| {}).await;
    let cluster_url = running.url.clone();
    let cluster = cluster_url.as_str();
    let from = truth.from.to_string();
    let to = truth.to.to_string();
    // `elevation ARGS… --data-dir … --tenant contoso [--cluster URL]`: what it printed.
    let run = |args: &[&str], cluster: Option<&str>| {
        let mut all = args.to_vec();
        all.extend(["--data-dir", data.as_str(), "--tenant", "contoso"]);
        all.extend(cluster.map(|url| ["--cluster", url]).into_iter().flatten());
        let output = elevation(&all, node.dir.path());
        assert!(
            output.status.success(),
            "{all:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout_of(&output)
    };
    let window = ["--from", from.as_str(), "--to", to.as_str(), "--format", "json"];
    let ask = |report: &str, cluster: Option<&str>| {
        let text = run(&[&["report", report][..], &window[..]].concat(), cluster);
        serde_json::from_str::<serde_json::Value>(&text).unwrap()
    };
    let mut answers = BTreeMap::new();
    for report in ReportName::ALL {
        let name = report.as_str();
        let here = ask(name, None);
        let there = ask(name, Some(cluster));
        assert!(
            here["rows"].as_array().is_some_and(|rows| !rows.is_empty()),
            "{name} has rows to compare: {here}"
        );
        assert_eq!(there, here, "{name} on the cluster");
        answers.insert(name, here);
    }

    // A warehouse whose path holds characters a URL escapes (`#`, `%`, a space): the cluster
    // names each file exactly as the process that planned the query.
    let odd = temp_dir();
    let odd_path = odd.path().join("odd #%20 name");
    std::os::unix::fs::symlink(node.dir.path().join("warehouse"), &odd_path).unwrap();
    let odd_warehouse = odd_path.to_str().unwrap();
    for name in ["elevations", "trend"] {
        let args = [&["report", name, "--warehouse", odd_warehouse][..], &window[..]].concat();
        let there: serde_json::Value = serde_json::from_str(&run(&args, Some(cluster))).unwrap();
        assert_eq!(&there, &answers[name], "{name} on the cluster from {odd_warehouse}");
    }

    // The cluster's numbers are also the simulator's.
    let trend = ask("trend", Some(cluster));
    let found = crate::support::trend_counts(&trend);
    assert_eq!(found, truth_trend(&truth, None));

    // Suggestions run on the cluster too.
    let suggest = |cluster: Option<&str>| {
        let text = run(&[&["suggest"][..], &window[..]].concat(), cluster);
        serde_json::from_str::<serde_json::Value>(&text).unwrap()
    };
    let here = suggest(None);
    assert!(
        here["suggestions"].as_array().is_some_and(|found| !found.is_empty()),
        "suggestions to compare: {here}"
    );
    assert_eq!(suggest(Some(cluster)), here, "suggestions on the cluster");

    // A server with --cluster answers the admin API (and so the pages built on it) from the
    // cluster: the same JSON as a server without.
    let api = |cluster: Option<&str>| {
        let mut args = vec!["--maintenance-interval-minutes", "0"];
        args.extend(cluster.map(|url| ["--cluster", url]).into_iter().flatten());
        let server = crate::support::start_server(node.dir.path(), &args);
        let base = server.base.clone();
        let key = node.admin_key.clone();
        let path = format!("/v1/reports/overview?from={from}&to={to}");
        let answer = async move {
            let response = reqwest::Client::new()
                .get(format!("{base}{path}"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        };
        (server, answer)
    };
    let (server, answer) = api(Some(cluster));
    let (status, there) = answer.await;
    assert!(server.terminate().success());
    assert_eq!(status, 200, "{there}");
    let (server, answer) = api(None);
    let (_, here) = answer.await;
    assert!(server.terminate().success());
    let json = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap();
    assert_eq!(
        json(&there)["rows"],
        json(&here)["rows"],
        "the Overview from a server on the cluster"
    );

    // A compliance pack is a pure function of the rows it reads: made on the cluster, it is
    // byte for byte the pack made here.
    let after = (truth.to + chrono::Days::new(1)).to_string();
    let pack = |out: &Path, cluster: Option<&str>| {
        let out = out.to_str().unwrap();
        run(
            &["compliance", "pack", "--from", &from, "--to", &after, "--out", out],
            cluster,
        );
        std::fs::read_to_string(Path::new(out).join("SHA256SUMS")).unwrap()
    };
    let keygen = elevation(&["compliance", "keygen", "--data-dir", &data], node.dir.path());
    assert!(keygen.status.success(), "{}", String::from_utf8_lossy(&keygen.stderr));
    let packs = temp_dir();
    let here = pack(&packs.path().join("here"), None);
    assert!(here.contains("elevations"), "{here}");
    assert_eq!(
        pack(&packs.path().join("there"), Some(cluster)),
        here,
        "the pack made on the cluster"
    );

    // Both executors ran tasks: each wrote the shuffle files of the stages it ran.
    assert!(
        running.shuffle_files().iter().all(|&files| files > 0),
        "an executor ran no task: {:?}",
        running.shuffle_files()
    );
    let known = running.executors().await;
    assert_eq!(known.len(), 2, "{known:?}");

    // An executor killed with SIGKILL: once the scheduler has noticed, every report still gives
    // the in-process answer on the executor left.
    running.kill_executor(0).await;
    for (name, here) in &answers {
        assert_eq!(
            &ask(name, Some(cluster)),
            here,
            "{name} on the cluster after an executor died"
        );
    }

    // A cluster nobody listens on: a clear error, not a hang.
    let refused = elevation(
        &["report", "trend", "--data-dir", &data, "--cluster", "df://127.0.0.1:9"],
        node.dir.path(),
    );
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("127.0.0.1:9"), "{said}");
}
