//! The upload endpoint against the contract, on a real server on loopback with real files:
//! every answer field, and what is actually in the tables afterwards.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{Node, batch, diagnostic, elevation_event, one_event_batch, test_now};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_batch_keeps_every_valid_event_and_rejects_the_rest_one_by_one() {
    let mut node = Node::start().await;
    let mut bad_hash = elevation_event("e-bad-hash", "userConfirmedElevation");
    bad_hash["hash"] = json!("1234");
    let mut bad_type = elevation_event("e-bad-type", "adminElevation");
    bad_type["upn"] = json!("grace@contoso.com");
    let mut diagnostic_with_user = diagnostic(4002);
    diagnostic_with_user["upn"] = json!("ada@contoso.com");
    let body = batch(
        "b-mixed",
        "all",
        vec![
            elevation_event("e-1", "userConfirmedElevation"),
            bad_hash,
            elevation_event("e-2", "unmanagedElevation"),
            bad_type,
            elevation_event("e-3", "zeroTouchElevation"),
        ],
        vec![diagnostic(4001), diagnostic_with_user],
    );
    let answer = node.upload(&body).await;
    assert_eq!(answer.status, 200, "{:?}", answer.json);
    assert_eq!(answer.json["batchId"], "b-mixed");
    assert_eq!(answer.json["duplicate"], false);
    assert_eq!(answer.json["accepted"], json!({ "elevations": 3, "diagnostics": 1 }));
    assert_eq!(
        answer.json["droppedByPolicy"],
        json!({ "elevations": 0, "diagnostics": 0 })
    );
    let rejected = answer.json["rejected"].as_array().unwrap();
    let summary: Vec<(String, u64, String)> = rejected
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap().to_owned(),
                r["index"].as_u64().unwrap(),
                r["field"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("elevation".into(), 1, "hash".into()),
            ("elevation".into(), 3, "elevationType".into()),
            ("diagnostic".into(), 1, "upn".into()),
        ]
    );
    assert!(
        rejected[0]["error"]
            .as_str()
            .unwrap()
            .contains("64 hexadecimal characters"),
        "{rejected:?}"
    );
    assert!(
        rejected[1]["error"].as_str().unwrap().contains("adminElevation"),
        "{rejected:?}"
    );

    node.land_all().await;
    let rows = node
        .sql(r#"SELECT id, tenant, hash, "fileName", "deviceId", "batchId", "reportingLevel" FROM elevations ORDER BY id"#)
        .await;
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["e-1", "e-2", "e-3"]);
    for row in &rows {
        assert_eq!(row["tenant"], "contoso");
        assert_eq!(
            row["hash"],
            "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"
        );
        assert_eq!(row["fileName"], "git.exe");
        assert_eq!(row["deviceId"], "device-1");
        assert_eq!(row["batchId"], "b-mixed");
        assert_eq!(row["reportingLevel"], "all");
    }
    let diagnostics = node.sql(r#"SELECT "eventId" FROM diagnostics"#).await;
    assert_eq!(diagnostics.len(), 1);
    assert_eq!(diagnostics[0]["eventId"], 4001);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_batch_is_stored_once_and_gets_the_first_answer_even_after_a_restart() {
    let mut node = Node::start().await;
    let mut bad = elevation_event("r-bad", "userConfirmedElevation");
    bad["result"] = json!(-5);
    let body = batch(
        "b-retry",
        "all",
        vec![elevation_event("r-1", "userConfirmedElevation"), bad],
        vec![diagnostic(1)],
    );
    let first = node.upload(&body).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.json["duplicate"], false);

    // Retries racing each other and the first: exactly one store.
    let retries = futures::future::join_all((0..4).map(|_| node.upload(&body))).await;
    for retry in &retries {
        assert_eq!(retry.status, 200);
        assert_eq!(retry.json["duplicate"], true);
        assert_eq!(retry.json["accepted"], first.json["accepted"]);
        assert_eq!(retry.json["rejected"], first.json["rejected"]);
    }
    // The same batch id from another device is another batch.
    let mut other_device = body.clone();
    other_device["deviceId"] = json!("device-2");
    other_device["elevations"] = json!([elevation_event("r-2", "userConfirmedElevation")]);
    let answer = node.upload(&other_device).await;
    assert_eq!(answer.json["duplicate"], false);

    // Restart before and after landing: the answer is remembered either way.
    node.stop().await;
    node.run(|_| {}).await;
    let after_restart = node.upload(&body).await;
    assert_eq!(after_restart.json["duplicate"], true, "{:?}", after_restart.json);
    assert_eq!(after_restart.json["accepted"], first.json["accepted"]);
    node.land_all().await;
    // Landed: the answer now comes back from the node's answer files, in full.
    for _ in 0..2 {
        let again = node.upload(&body).await;
        assert_eq!(again.json["duplicate"], true, "{:?}", again.json);
        assert_eq!(again.json["accepted"], first.json["accepted"]);
        assert_eq!(again.json["rejected"], first.json["rejected"]);
        node.stop().await;
        node.run(|_| {}).await;
    }

    node.land_all().await;
    let counts = node.counts("contoso").await;
    // r-1 from device-1 and r-2 from device-2, each batch with its diagnostic.
    assert_eq!((counts.elevations(), counts.diagnostics), (2, 2));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reporting_levels_are_enforced_on_the_server_and_dropped_events_are_never_written() {
    let mut node = Node::start().await;
    // Contoso caps its devices at `managed`.
    node.control
        .update_settings(&crate::support::test_actor(), "contoso", |s| {
            s.reporting_cap = warehouse::ReportingLevel::Managed
        })
        .await
        .unwrap();
    let marked = |id: &str, kind: &str| {
        let mut e = elevation_event(id, kind);
        e["filePath"] = json!("C:\\Secret\\never-stored-marker.exe");
        e
    };
    let cases = [
        // declared level, answer accepted (elevations, diagnostics), dropped (elevations, diagnostics)
        ("all", (1, 1), (1, 0)),
        ("managed", (1, 1), (1, 0)),
        ("diagnostic", (0, 1), (2, 0)),
        ("none", (0, 0), (2, 1)),
    ];
    for (i, (level, accepted, dropped)) in cases.into_iter().enumerate() {
        let body = batch(
            &format!("b-level-{level}"),
            level,
            vec![
                elevation_event(&format!("managed-{i}"), "supportApprovedElevation"),
                marked(&format!("unmanaged-{i}"), "unmanagedElevation"),
            ],
            vec![diagnostic(i as i64)],
        );
        let answer = node.upload(&body).await;
        assert_eq!(answer.status, 200, "{level}: {:?}", answer.json);
        assert_eq!(
            answer.json["accepted"],
            json!({ "elevations": accepted.0, "diagnostics": accepted.1 }),
            "{level}"
        );
        assert_eq!(
            answer.json["droppedByPolicy"],
            json!({ "elevations": dropped.0, "diagnostics": dropped.1 }),
            "{level}"
        );
    }
    node.land_all().await;
    node.stop().await;
    let rows = node
        .sql(r#"SELECT id, "reportingLevel" FROM elevations ORDER BY id"#)
        .await;
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["managed-0", "managed-1"]);
    assert!(rows.iter().all(|r| r["reportingLevel"] == "managed"), "{rows:?}");
    // Not in the tables, not in the write-ahead log, not in any file of the node.
    let mut found = Vec::new();
    for entry in walk(node.dir.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        if bytes
            .windows(b"never-stored-marker".len())
            .any(|w| w == b"never-stored-marker")
        {
            found.push(entry);
        }
    }
    assert!(found.is_empty(), "dropped events were written to {found:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_fleet_lands_exactly_its_ground_truth_per_day_and_type() {
    let mut node = Node::start().await;
    for (seed, devices, days) in [(3, 40, 3), (11, 25, 6)] {
        let mut config = simulator::SimConfig::new(seed, devices, days, test_now().date_naive());
        config.tenant = if seed == 3 { "contoso".into() } else { "fabrikam".into() };
        let mut bodies = Vec::new();
        let (_, truth) = simulator::simulate(&config, |_, _, b| {
            bodies.push(ingest::AgentClient::compress(&serde_json::to_vec(b).unwrap()));
            Ok::<_, std::convert::Infallible>(())
        })
        .unwrap();
        let key = if seed == 3 {
            &node.agent_key
        } else {
            &node.other_tenant_key
        };
        let client = ingest::AgentClient::new(&node.base, key);
        let report = client.upload_all(bodies, 8).await.unwrap();
        let (accepted, dropped, rejected) = report.totals();
        assert_eq!(rejected, 0, "simulated events are valid");
        assert_eq!(
            (dropped.elevations, dropped.diagnostics),
            (0, 0),
            "agents filter by their level already"
        );
        assert_eq!(
            (accepted.elevations, accepted.diagnostics),
            (truth.totals.elevations, truth.totals.diagnostics)
        );
        node.land_all().await;
        let counts = node.counts(&config.tenant).await;
        assert_eq!(
            (
                counts.elevations(),
                counts.managed(),
                counts.unmanaged(),
                counts.diagnostics
            ),
            (
                truth.totals.elevations,
                truth.totals.managed,
                truth.totals.unmanaged,
                truth.totals.diagnostics
            ),
            "seed {seed}"
        );
        let per_day = node
            .sql(&format!(
                r#"SELECT CAST("eventDate" AS VARCHAR) AS day, "elevationType" AS t, COUNT(*) AS n FROM elevations
                   WHERE tenant = '{}' GROUP BY 1, 2"#,
                config.tenant
            ))
            .await;
        let mut found = std::collections::BTreeMap::new();
        for row in per_day {
            found.insert(
                (
                    row["day"].as_str().unwrap().to_owned(),
                    row["t"].as_str().unwrap().to_owned(),
                ),
                row["n"].as_u64().unwrap(),
            );
        }
        let mut expected = std::collections::BTreeMap::new();
        for day in &truth.per_day {
            for (t, n) in &day.by_type {
                expected.insert((day.date.to_string(), t.clone()), *n);
            }
        }
        assert_eq!(found, expected, "seed {seed}: per day and type");
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_event_is_queryable_within_two_seconds_without_a_flush() {
    let mut node = Node::start().await;
    let answer = node
        .upload(&one_event_batch("b-fresh", "fresh-1", "zeroTouchElevation"))
        .await;
    assert_eq!(answer.status, 200);
    let acknowledged = Instant::now();
    // Poll the tables as a dashboard would; the lander runs on its own timer.
    loop {
        if node.counts("contoso").await.elevations() == 1 {
            break;
        }
        assert!(
            acknowledged.elapsed() < Duration::from_secs(2),
            "not visible 2 s after the acknowledgement"
        );
        tokio::task::yield_now().await;
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_metrics_and_openapi_are_served() {
    let mut node = Node::start().await;
    node.upload(&batch(
        "b-metrics",
        "all",
        vec![elevation_event("m-1", "userConfirmedElevation")],
        vec![diagnostic(7)],
    ))
    .await;
    // A landing and a maintenance pass, for the metrics operators watch them by.
    node.land_all().await;
    warehouse::maintenance::scheduled_pass(&node.warehouse, None, test_now().date_naive()).await;
    let (status, body) = node.get("/healthz").await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (status, body) = node.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""status":"ready""#), "{body}");
    let (status, metrics) = node.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains(r#"elevation_ingest_events_total{tenant="contoso",kind="elevation",outcome="accepted"}"#),
        "{metrics}"
    );
    assert!(metrics.contains("elevation_wal_fsync_seconds"), "{metrics}");
    assert!(metrics.contains("elevation_landing_lag_seconds"), "{metrics}");
    for step in [
        r#"step="compaction",outcome="ok""#,
        r#"step="refresh",outcome="ok""#,
        // No tenant settings were given to this pass: its retention step is a failure.
        r#"step="retention",outcome="error""#,
    ] {
        assert!(
            metrics.contains(&format!("elevation_maintenance_runs_total{{{step}}}")),
            "{step}: {metrics}"
        );
    }
    assert!(
        metrics.contains(r#"elevation_maintenance_seconds_count{step="refresh"}"#),
        "{metrics}"
    );
    // Every route's latency and status, by its template.
    for answered in [
        r#"{route="/readyz",method="GET",status="200"}"#,
        r#"{route="/v1/agent/batches",method="POST",status="200"}"#,
    ] {
        assert!(
            metrics.contains(&format!("elevation_http_request_seconds_count{answered}")),
            "{answered}: {metrics}"
        );
    }
    // Bounded labels only: never a user, a device or a hash.
    for personal in ["ada@contoso.com", "device-1", "LAPTOP-0001", "9F86D081", "b-metrics"] {
        assert!(!metrics.contains(personal), "/metrics leaks {personal}");
    }
    let (status, openapi) = node.get("/openapi.json").await;
    assert_eq!(status, 200);
    let openapi: serde_json::Value = serde_json::from_str(&openapi).unwrap();
    assert!(openapi["openapi"].as_str().unwrap().starts_with("3."));
    for path in ["/v1/agent/batches", "/healthz", "/readyz", "/metrics"] {
        assert!(
            openapi["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(openapi["components"]["schemas"]["BatchAnswer"].is_object());
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenant_comes_from_the_key_never_from_the_body() {
    let mut node = Node::start().await;
    let mut body = batch(
        "b-tenant",
        "all",
        vec![elevation_event("t-1", "userConfirmedElevation")],
        vec![],
    );
    body["tenant"] = json!("contoso");
    let answer = node
        .post(
            Some(&node.other_tenant_key.clone()),
            &[("content-type", "application/json")],
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
    assert_eq!(answer.status, 200);
    node.land_all().await;
    assert_eq!(node.counts("contoso").await.elevations(), 0);
    assert_eq!(node.counts("fabrikam").await.elevations(), 1);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_that_finds_the_backlog_full_waits_for_a_landing_instead_of_being_turned_away() {
    let mut node = Node::start_with(|c| {
        c.max_buffered_bytes = 1;
        c.land_interval = Duration::from_secs(3600);
    })
    .await;
    let first = node
        .upload(&one_event_batch("b-wait-1", "w-1", "userConfirmedElevation"))
        .await;
    assert_eq!(first.status, 200);
    let second = tokio::spawn({
        let (base, key) = (node.base.clone(), node.agent_key.clone());
        let body = serde_json::to_vec(&one_event_batch("b-wait-2", "w-2", "userConfirmedElevation")).unwrap();
        async move {
            let response = reqwest::Client::new()
                .post(format!("{base}/v1/agent/batches"))
                .bearer_auth(key)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            crate::support::answer_of(response).await
        }
    });
    // The second upload is held (not answered) while the backlog is full…
    let flusher = node.flusher();
    let until = std::time::Instant::now() + Duration::from_secs(30);
    while flusher.uploads_waiting_for_room() == 0 {
        assert!(
            !second.is_finished(),
            "answered without waiting: {:?}",
            second.await.unwrap()
        );
        assert!(std::time::Instant::now() < until, "the second upload never waited");
        tokio::task::yield_now().await;
    }
    // …and taken as soon as a landing makes room, within its patience.
    node.land_all().await;
    let second = second.await.unwrap();
    assert_eq!(
        (second.status, second.json["duplicate"].as_bool()),
        (200, Some(false)),
        "{second:?}"
    );
    assert_eq!(flusher.uploads_waiting_for_room(), 0);
    node.land_all().await;
    assert_eq!(node.counts("contoso").await.elevations(), 2);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_is_shed_with_retry_after_instead_of_growing_memory() {
    // A landing backlog of zero bytes: every upload finds the buffer "full" once one batch
    // waits, because the lander's timer never fires during the test.
    let mut node = Node::start_with(|c| {
        c.max_buffered_bytes = 1;
        c.land_interval = Duration::from_secs(3600);
    })
    .await;
    let first = node
        .upload(&one_event_batch("b-shed-1", "s-1", "userConfirmedElevation"))
        .await;
    assert_eq!(first.status, 200);
    let shed = node
        .upload(&one_event_batch("b-shed-2", "s-2", "userConfirmedElevation"))
        .await;
    assert_eq!((shed.status, shed.code()), (503, "landing_backlog"));
    assert_eq!(shed.retry_after.as_deref(), Some("1"));
    let (status, _) = node.get("/readyz").await;
    assert_eq!(status, 503);
    // Once landed, uploads are welcome again.
    node.land_all().await;
    let retried = node
        .upload(&one_event_batch("b-shed-2", "s-2", "userConfirmedElevation"))
        .await;
    assert_eq!(
        (retried.status, retried.json["duplicate"].as_bool()),
        (200, Some(false))
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_answers_500_in_the_contract_shape_and_the_server_stays_up() {
    let dir = crate::support::temp_dir();
    let location = warehouse::Location::parse(dir.path().join("warehouse").to_str().unwrap()).unwrap();
    let node = ingest::Ingest::start(
        ingest::IngestConfig::new(dir.path()),
        std::sync::Arc::new(warehouse::Warehouse::new(location)),
        std::sync::Arc::new(warehouse::FixedClock(test_now())),
        crate::support::open_control(dir.path()).await,
    )
    .await
    .unwrap();
    // Any part of the app, as the binary adds the admin API.
    let broken = web::Face {
        routes: axum::Router::new().route(
            "/v1/broken",
            axum::routing::get(|| async {
                panic!("a bug in a handler");
                #[allow(unreachable_code)]
                ""
            }),
        ),
        openapi: utoipa::openapi::OpenApiBuilder::new().build(),
    };
    let router = web::app([node.face(), broken]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(ingest::serve(listener, node, router, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let response = client.get(format!("{base}/v1/broken")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 500);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "internal_error");
    assert!(
        !body.to_string().contains("a bug in a handler"),
        "no internals leak: {body}"
    );
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

/// A key revoked while its agents upload (issue #21): every upload answered `200` before the
/// revocation took hold is in the tables, exactly once; every later one gets `401`; nothing
/// else is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_under_load_keeps_every_acknowledged_upload_and_refuses_the_rest() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let node = Arc::new(Node::start().await);
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(tokio::sync::Notify::new());
    const AGENTS: usize = 4;
    const MOST: usize = 5_000;
    let mut agents = Vec::new();
    for agent in 0..AGENTS {
        let (node, acknowledged, started) = (node.clone(), acknowledged.clone(), started.clone());
        agents.push(tokio::spawn(async move {
            // Uploads until refused: the ids of the events acknowledged, and the refusal.
            let mut stored = Vec::new();
            for n in 0..MOST {
                let ids: Vec<String> = (0..3).map(|i| format!("rev-{agent}-{n}-{i}")).collect();
                let events = ids
                    .iter()
                    .map(|id| elevation_event(id, "userConfirmedElevation"))
                    .collect();
                let answer = node
                    .upload(&batch(&format!("rev-{agent}-{n}"), "all", events, vec![]))
                    .await;
                match answer.status {
                    200 => {
                        stored.extend(ids);
                        if acknowledged.fetch_add(1, Ordering::SeqCst) + 1 == 20 {
                            started.notify_one();
                        }
                    }
                    401 => return (stored, answer.code().to_owned()),
                    other => panic!("agent {agent}, upload {n}: {other} {}", answer.message()),
                }
            }
            panic!("agent {agent}: still accepted after {MOST} uploads");
        }));
    }
    // Revoke once uploads are flowing.
    started.notified().await;
    let id = node.agent_key.split('_').nth(2).unwrap().to_owned();
    node.control
        .revoke_key(&crate::support::test_actor(), None, &id)
        .await
        .unwrap();
    let mut expected = std::collections::BTreeSet::new();
    for agent in agents {
        let (stored, refusal) = agent.await.unwrap();
        assert_eq!(refusal, "unauthorized");
        expected.extend(stored);
    }
    assert!(
        expected.len() >= 60,
        "revoked before uploads flowed: {}",
        expected.len()
    );
    node.land_all().await;
    let rows = node
        .sql("SELECT id, count(*) AS copies FROM elevations WHERE id LIKE 'rev-%' GROUP BY id")
        .await;
    let landed: std::collections::BTreeSet<String> = rows
        .iter()
        .map(|r| {
            assert_eq!(r["copies"], 1, "{r:?} landed twice");
            r["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(landed, expected, "acknowledged and landed differ");
}
