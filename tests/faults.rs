//! Faults an operator meets in production, with the real binary.
//!
//! A full disk under the write-ahead log: the test gives the server a real, size-limited
//! tmpfs as `data-dir/wal` — mounted in a mount namespace of its own (`unshare -Urm`), which
//! needs no privilege beyond user namespaces — and fills it up from outside through
//! `/proc/PID/root`. No fault-injecting file layer is involved: the WAL meets `ENOSPC` from the
//! kernel.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Answer, Server, answer_of, start_server, temp_dir};

/// A batch named `name` of `events` elevations, as JSON bytes.
fn named_batch(name: &str, events: usize) -> (Vec<String>, Vec<u8>) {
    let (ids, body) = crate::support::named_batch(name, events);
    (ids, serde_json::to_vec(&body).unwrap())
}

async fn post(server: &Server, key: &str, body: &[u8]) -> Answer {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/agent/batches", server.base))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .expect("the server answers");
    answer_of(response).await
}

async fn readyz(server: &Server) -> Answer {
    answer_of(reqwest::get(format!("{}/readyz", server.base)).await.unwrap()).await
}

/// Writes zeros into `path` until the filesystem refuses: the disk is then full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    for chunk in [1 << 16, 512] {
        loop {
            match file.write_all(&vec![0u8; chunk]) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
    }
    let _ = file.sync_all();
}

/// `elevation serve` with `data-dir/wal` on a tmpfs of `size`, in a mount namespace of its own.
fn serve_with_small_wal_disk(data: &Path, size: &str) -> Server {
    std::fs::create_dir_all(data.join("wal")).unwrap();
    let probe = Command::new("unshare")
        .args(["-Urm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs \"$0\""])
        .arg(data.join("wal"))
        .output()
        .expect("unshare (util-linux) runs");
    assert!(
        probe.status.success(),
        "this test mounts a small tmpfs in a user and mount namespace (`unshare -Urm`); this machine refuses: {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let mut command = Command::new("unshare");
    command
        .args([
            "-Urm",
            "sh",
            "-c",
            &format!(
                "mount -t tmpfs -o size={size} tmpfs \"$1/wal\" && exec \"$0\" serve --listen 127.0.0.1:0 --land-interval-ms 50 --data-dir \"$1\""
            ),
            env!("CARGO_BIN_EXE_elevation"),
        ])
        .arg(data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    Server::spawned(command)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_the_log_refuses_uploads_says_why_and_resumes_by_itself() {
    let dir = temp_dir();
    let data = dir.path().join("node");
    let (key, _) = crate::support::create_agent_key(&data, "contoso").await;
    let server = serve_with_small_wal_disk(&data, "4m");
    // The server's view of its log folder: the tmpfs in its own mount namespace.
    let wal_seen_by_server: PathBuf =
        Path::new(&format!("/proc/{}/root", server.child.id())).join(data.join("wal").strip_prefix("/").unwrap());
    let mut acknowledged = BTreeSet::new();

    for n in 0..5 {
        let (ids, body) = named_batch(&format!("before-full-{n}"), 40);
        let answer = post(&server, &key, &body).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        acknowledged.extend(ids);
    }

    let filler = wal_seen_by_server.join("filler");
    fill(&filler);
    let (refused_ids, refused_body) = named_batch("while-full", 300);
    for attempt in 0..3 {
        let answer = post(&server, &key, &refused_body).await;
        assert_eq!(answer.status, 503, "attempt {attempt} on a full disk: {answer:?}");
        assert_eq!(answer.code(), "storage_unavailable", "{answer:?}");
        assert!(answer.retry_after.is_some(), "a 503 says when to retry: {answer:?}");
    }
    let ready = readyz(&server).await;
    assert_eq!(ready.status, 503, "{ready:?}");
    assert_eq!(ready.code(), "storage_unavailable");
    assert!(
        ready.message().contains("no space left") && ready.message().contains("wal"),
        "/readyz says why and where: {}",
        ready.message()
    );

    // Space comes back; nobody restarts anything.
    std::fs::remove_file(&filler).unwrap();
    let started = Instant::now();
    while readyz(&server).await.status != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the node did not resume after space was freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answer = post(&server, &key, &refused_body).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        answer.json["duplicate"], false,
        "a refused batch was never stored, so its retry is new"
    );
    acknowledged.extend(refused_ids);
    for n in 0..3 {
        let (ids, body) = named_batch(&format!("after-full-{n}"), 40);
        let answer = post(&server, &key, &body).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        acknowledged.extend(ids);
    }

    // The log as it is on the full-then-freed disk, copied before the server stops: replayed
    // into a fresh node it must give back every acknowledged batch, so the failed writes left
    // nothing between the frames before and after them.
    let copy = dir.path().join("replayed");
    std::fs::create_dir_all(copy.join("wal")).unwrap();
    for entry in std::fs::read_dir(&wal_seen_by_server).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wal") {
            std::fs::copy(&path, copy.join("wal").join(path.file_name().unwrap())).unwrap();
        }
    }
    assert!(server.terminate().success(), "graceful stop after the fault");
    crate::support::assert_stored_exactly_once(warehouse::Location::Local(data.join("warehouse")), &acknowledged).await;

    let replayed = start_server(&copy, &[]);
    let status = replayed.terminate();
    assert!(status.success(), "the copied log replays: {status}");
    crate::support::assert_stored_exactly_once(warehouse::Location::Local(copy.join("warehouse")), &acknowledged).await;
}
