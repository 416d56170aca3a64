//! Crash safety with the real binary: agents upload concurrently, the server is killed with
//! SIGKILL at random points over several cycles and restarted; at the end every acknowledged
//! event is in the tables exactly once, and retries of acknowledged batches are duplicates.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::{Arc, Mutex};

use rand::{Rng, SeedableRng};

use crate::support::{batch, elevation_event, start_server, temp_dir};

/// One batch: its id and the event ids it carries.
fn make_batch(n: usize, events: usize) -> (String, Vec<String>, Vec<u8>) {
    let batch_id = format!("crash-batch-{n:05}");
    let ids: Vec<String> = (0..events).map(|i| format!("crash-{n:05}-{i:03}")).collect();
    let body = batch(
        &batch_id,
        "all",
        ids.iter()
            .map(|id| elevation_event(id, "userConfirmedElevation"))
            .collect(),
        vec![],
    );
    (
        batch_id,
        ids,
        ingest::AgentClient::compress(&serde_json::to_vec(&body).unwrap()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_kill_9_and_land_exactly_once() {
    let dir = temp_dir();
    let (key, _) = crate::support::create_agent_key(dir.path(), "contoso").await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261123);
    let acked: Arc<Mutex<BTreeMap<String, Vec<String>>>> = Default::default();
    // Batches whose fate is unknown: sent when the server died, no answer.
    let mut unknown: BTreeMap<String, (Vec<String>, Vec<u8>)> = BTreeMap::new();
    let mut next_batch = 0usize;

    for cycle in 0..4 {
        let server = start_server(
            dir.path(),
            &["--land-interval-ms", &rng.random_range(10..200).to_string()],
        );
        let mut client = ingest::AgentClient::new(&server.base, &key);
        client.max_attempts = 1;

        // Retries of acknowledged batches from earlier lives are duplicates with the first answer.
        let earlier: Vec<(String, Vec<String>)> = acked
            .lock()
            .unwrap()
            .iter()
            .take(3)
            .map(|(b, ids)| (b.clone(), ids.clone()))
            .collect();
        for (batch_id, ids) in earlier {
            let n: usize = batch_id.trim_start_matches("crash-batch-").parse().unwrap();
            let (_, _, body) = make_batch(n, ids.len());
            let answer = client
                .upload_prepared(body)
                .await
                .expect("the restarted server answers");
            assert!(
                answer.duplicate,
                "cycle {cycle}: {batch_id} was stored again after a restart"
            );
            assert_eq!(answer.accepted.elevations, ids.len() as u64);
        }

        // Agents upload concurrently until the server is killed after a random number of acks.
        let kill_after = rng.random_range(5..40);
        let (acks, mut ack_events) = tokio::sync::mpsc::unbounded_channel::<()>();
        let mut uploads = Vec::new();
        for _ in 0..60 {
            let events = rng.random_range(1..40);
            let (batch_id, ids, body) = make_batch(next_batch, events);
            next_batch += 1;
            unknown.insert(batch_id.clone(), (ids.clone(), body.clone()));
            let (client, acked, acks) = (client.clone(), acked.clone(), acks.clone());
            uploads.push(tokio::spawn(async move {
                if let Ok(answer) = client.upload_prepared(body).await {
                    assert_eq!(answer.accepted.elevations, ids.len() as u64);
                    acked.lock().unwrap().insert(batch_id, ids);
                    let _ = acks.send(());
                }
            }));
        }
        for _ in 0..kill_after {
            ack_events.recv().await.expect("uploads keep being acknowledged");
        }
        let mut server = server;
        server.child.kill().expect("SIGKILL");
        server.child.wait().unwrap();
        for upload in uploads {
            upload.await.unwrap();
        }
        let acked_now = acked.lock().unwrap();
        unknown.retain(|batch_id, _| !acked_now.contains_key(batch_id));
        assert!(acked_now.len() >= kill_after, "cycle {cycle}");
    }

    // Last life: agents retry what never got an answer, then the server stops gracefully.
    let server = start_server(dir.path(), &["--land-interval-ms", "100"]);
    let client = ingest::AgentClient::new(&server.base, &key);
    for (batch_id, (ids, body)) in std::mem::take(&mut unknown) {
        let answer = client.upload_prepared(body).await.expect("retry after restart");
        assert_eq!(answer.accepted.elevations, ids.len() as u64);
        acked.lock().unwrap().insert(batch_id, ids);
    }
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut server = server;
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "graceful stop failed: {exit}");

    let expected: BTreeSet<String> = acked.lock().unwrap().values().flatten().cloned().collect();
    crate::support::assert_stored_exactly_once(warehouse::Location::Local(dir.path().join("warehouse")), &expected)
        .await;
}

/// A node that dies and never comes back: another machine lands its write-ahead log with
/// `elevation wal land --from DIR`, exactly once, and not while the node still runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_of_a_node_that_never_comes_back_is_landed_by_another_exactly_once() {
    let dir = temp_dir();
    let dead = dir.path().join("dead-node");
    let other = dir.path().join("other-node");
    let tables = dir.path().join("shared-warehouse");
    let tables_arg = tables.to_str().unwrap();
    let (key, _) = crate::support::create_agent_key(&dead, "contoso").await;
    // Nothing lands on its own for an hour: everything acknowledged is only in the log.
    let server = start_server(&dead, &["--land-interval-ms", "3600000", "--warehouse", tables_arg]);
    let client = ingest::AgentClient::new(&server.base, &key);
    let mut expected = BTreeSet::new();
    let batches = 12;
    for n in 0..batches {
        let (_, ids, body) = make_batch(n, 5 + n);
        let answer = client.upload_prepared(body).await.expect("acknowledged");
        assert_eq!(answer.accepted.elevations, ids.len() as u64);
        expected.extend(ids);
    }
    let control_db = dead.join("control.db");
    let land = || {
        crate::support::elevation(
            &[
                "wal",
                "land",
                "--from",
                dead.to_str().unwrap(),
                "--data-dir",
                other.to_str().unwrap(),
                "--warehouse",
                tables_arg,
                "--control-db",
                control_db.to_str().unwrap(),
            ],
            dir.path(),
        )
    };
    let refused = land();
    assert!(
        !refused.status.success(),
        "a running node's log was landed by another process"
    );
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("in use"), "{said}");

    let mut server = server;
    server.child.kill().expect("SIGKILL");
    server.child.wait().unwrap();

    let shared = warehouse::Warehouse::new(warehouse::Location::Local(tables.clone()));
    let before = queries::landed_counts(&shared, "contoso")
        .await
        .map_or(0, |counts| counts.elevations());
    assert_eq!(
        before, 0,
        "the node landed before it died: nothing left for `wal land` to do"
    );
    let landed = land();
    assert!(landed.status.success(), "{}", String::from_utf8_lossy(&landed.stderr));
    let said = crate::support::stdout_of(&landed);
    assert!(said.contains(&format!("held {batches} batches")), "{said}");
    crate::support::assert_stored_exactly_once(warehouse::Location::Local(tables.clone()), &expected).await;
    // Landing the same log again lands nothing twice.
    assert!(land().status.success());
    crate::support::assert_stored_exactly_once(warehouse::Location::Local(tables), &expected).await;
}
