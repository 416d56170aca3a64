//! The control plane (issue #16) the way admins and nodes meet it: every admin route for every
//! role over HTTP, two `serve` processes on one PostgreSQL, a database that goes away and comes
//! back, the move from the JSON files, and `elevation audit` on a tampered log. Everything runs
//! on both backends unless it is about PostgreSQL itself.

use std::time::{Duration, Instant};

use control::testing::{TestDb, TestPostgres, each_backend, execute};
use control::{ControlDb, KeyKind, Permission, Role};

use crate::support::{Node, Server, elevation, one_event_batch, start_server, stdout_of, temp_dir};

/// An HTTP call with a key and an `x-request-id`; returns status, headers' Retry-After and body.
async fn call(
    base: &str,
    method: &str,
    path: &str,
    key: &str,
    body: Option<serde_json::Value>,
) -> (u16, Option<String>, serde_json::Value) {
    let client = reqwest::Client::new();
    let url = format!("{base}{path}");
    let mut request = match method {
        "GET" => client.get(url),
        "POST" => client.post(url),
        "PATCH" => client.patch(url),
        "DELETE" => client.delete(url),
        other => panic!("no method {other}"),
    }
    .bearer_auth(key)
    .header("x-request-id", format!("test-{method}-{path}"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = crate::support::answer_of(request.send().await.expect("the server answers")).await;
    (answer.status, answer.retry_after, answer.json)
}

/// An Intune rules policy as an admin would post it.
fn intune_policy(name: &str) -> serde_json::Value {
    let policy: warehouse::policy::RulesPolicy = serde_json::from_value(serde_json::json!({
        "name": name,
        "rules": [{ "name": "git", "fileName": "git.exe", "ruleType": "userConfirmed",
                    "childProcessBehavior": "requireRule", "fileHash": "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08" }]
    }))
    .unwrap();
    policy.to_intune()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_on_every_admin_route_is_allowed_or_forbidden_as_the_table_says() {
    each_backend(|t: TestDb| async move {
        let mut node = Node::start_on(&t.db).await;
        assert_eq!(
            node.upload(&one_event_batch("b-1", "e-1", "userConfirmedElevation"))
                .await
                .status,
            200
        );
        node.land_all().await;
        // The permission each route needs: the specification this test holds the code to.
        compliance::keys::keygen(node.dir.path()).unwrap();
        let routes: [(&str, &str, Permission); 23] = [
            ("GET", "/v1/requests", Permission::ViewElevationRequests),
            ("GET", "/v1/requests/stats", Permission::ViewElevationRequests),
            ("GET", "/v1/requests/{pending}", Permission::ViewElevationRequests),
            (
                "POST",
                "/v1/requests/{pending}/approve",
                Permission::ModifyElevationRequests,
            ),
            (
                "POST",
                "/v1/requests/{pending}/deny",
                Permission::ModifyElevationRequests,
            ),
            (
                "POST",
                "/v1/requests/{approved}/revoke",
                Permission::ModifyElevationRequests,
            ),
            ("GET", "/v1/webhooks", Permission::ManageTenant),
            ("GET", "/v1/webhooks/deliveries", Permission::ManageTenant),
            ("POST", "/v1/webhooks", Permission::ManageTenant),
            ("DELETE", "/v1/webhooks/{webhook}", Permission::ManageTenant),
            ("GET", "/v1/reports/by-user", Permission::ViewReports),
            (
                "GET",
                "/v1/compliance/pack?from=2026-11-01&to=2026-11-21",
                Permission::ViewReports,
            ),
            ("GET", "/v1/suggestions", Permission::ViewReports),
            ("GET", "/v1/exports/rules", Permission::ViewReports),
            ("GET", "/v1/audit", Permission::ViewAudit),
            ("GET", "/v1/audit/verify", Permission::ViewAudit),
            ("GET", "/v1/keys", Permission::ManageKeys),
            ("POST", "/v1/keys", Permission::ManageKeys),
            ("DELETE", "/v1/keys/{id}", Permission::ManageKeys),
            ("GET", "/v1/tenant", Permission::Read),
            ("PATCH", "/v1/tenant", Permission::ManageTenant),
            ("GET", "/v1/rules", Permission::Read),
            ("POST", "/v1/rules", Permission::ImportRules),
        ];
        let mut checked = 0;
        let device = node
            .control
            .authenticate_upload(&node.agent_key)
            .await
            .unwrap()
            .unwrap()
            .principal;
        let cli = crate::support::test_actor();
        for role in Role::ALL {
            let (key, _) = crate::support::create_key(&node.control, "contoso", KeyKind::Admin, Some(role)).await;
            for (method, path, permission) in routes {
                let (victim, victim_record) =
                    crate::support::create_key(&node.control, "contoso", KeyKind::Agent, None).await;
                // A pending request, an approved one and a webhook for the routes that act on one.
                let ask = |n: &str| control::NewRequest {
                    request_id: format!("{n}-{}", victim_record.id),
                    requested_by_user_principal_name: "bob@contoso.com".into(),
                    // A device of its own: one device may have only 20 requests waiting.
                    requested_on_device_id: format!("device-{}", victim_record.id),
                    device_name: String::new(),
                    request_justification: String::new(),
                    application_detail: control::requests::ApplicationDetail {
                        file_hash: "ab".repeat(32),
                        file_name: "tool.exe".into(),
                        ..Default::default()
                    },
                };
                let pending = node.control.submit_request(&device, ask("p")).await.unwrap().request.id;
                let approved = node.control.submit_request(&device, ask("a")).await.unwrap().request.id;
                let approve = control::Decision::Approve { hours: None };
                node.control
                    .decide_request(&cli, "contoso", &approved, approve, None)
                    .await
                    .unwrap();
                let hook = control::webhooks::WebhookFormat::Standard;
                let (webhook, _) = node
                    .control
                    .add_webhook(&cli, "contoso", "https://hooks.example.com/x", hook)
                    .await
                    .unwrap();
                let path = path
                    .replace("{id}", &victim_record.id)
                    .replace("{pending}", &pending)
                    .replace("{approved}", &approved)
                    .replace("{webhook}", &webhook.id);
                let body = match (method, path.as_str()) {
                    ("POST", "/v1/webhooks") => Some(serde_json::json!({ "url": "https://hooks.example.com/y" })),
                    ("POST", "/v1/keys") => Some(serde_json::json!({ "kind": "agent" })),
                    ("PATCH", _) => Some(serde_json::json!({ "diagnosticRetentionDays": 60 })),
                    ("POST", "/v1/rules") => Some(intune_policy("Dev tools")),
                    _ => None,
                };
                let (status, _, answer) = call(&node.base, method, &path, &key, body).await;
                let expected = if role.allows(permission) { 200..=201 } else { 403..=403 };
                assert!(
                    expected.contains(&status),
                    "{}: {role:?} {method} {path}: {status} {answer}",
                    t.backend
                );
                // A refused revocation left the key working.
                let victim_works = node
                    .post(Some(&victim), &[("content-type", "application/json")], b"{}".to_vec())
                    .await
                    .status
                    != 401;
                assert_eq!(
                    victim_works,
                    !(method == "DELETE" && path.starts_with("/v1/keys/") && role.allows(permission)),
                    "{role:?}"
                );
                checked += 1;
            }
        }
        for (method, path, _) in routes {
            let (status, _, _) = call(&node.base, method, path, &node.agent_key, None).await;
            assert_eq!(status, 403, "{}: agent key on {method} {path}", t.backend);
            let (status, _, _) = call(&node.base, method, path, "elv_admin_00_unknown", None).await;
            assert_eq!(status, 401, "{}: unknown key on {method} {path}", t.backend);
        }
        assert_eq!(checked, Role::ALL.len() * routes.len());
        // Another tenant's key cannot be revoked by id (BOLA): it is unknown here.
        let (other, other_record) = crate::support::create_key(&node.control, "fabrikam", KeyKind::Agent, None).await;
        let (manager, _) = crate::support::create_key(
            &node.control,
            "contoso",
            KeyKind::Admin,
            Some(Role::EndpointPrivilegeManager),
        )
        .await;
        let (status, _, _) = call(
            &node.base,
            "DELETE",
            &format!("/v1/keys/{}", other_record.id),
            &manager,
            None,
        )
        .await;
        assert_eq!(status, 404);
        assert!(node.control.authenticate_upload(&other).await.unwrap().is_some());
        node.stop().await;
    })
    .await;
}

/// Reads the audit log of the key's tenant over HTTP.
async fn audit_over_http(base: &str, key: &str) -> Vec<serde_json::Value> {
    let (status, _, answer) = call(base, "GET", "/v1/audit", key, None).await;
    assert_eq!(status, 200, "{answer}");
    answer["events"].as_array().unwrap().clone()
}

/// Polls `still` until it is false; returns how long it took (fails after `limit`).
async fn until_not<F, Fut>(limit: Duration, mut still: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while still().await {
        assert!(started.elapsed() < limit, "still true after {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_processes_on_one_postgresql_share_keys_revocations_and_one_audit_chain() {
    let pg = TestDb::postgres().await;
    let db = pg.db.as_arg();
    let dir = temp_dir();
    let shared = dir.path().join("shared-warehouse");
    let shared = shared.to_str().unwrap();
    let cwd = dir.path();
    let created = stdout_of(&elevation(
        &[
            "--control-db",
            &db,
            "--data-dir",
            dir.path().join("cli").to_str().unwrap(),
            "keys",
            "create",
            "--kind",
            "admin",
            "--role",
            "endpoint-privilege-manager",
            "--upn",
            "ada@contoso.com",
            "--actor",
            "root@contoso.com",
        ],
        cwd,
    ));
    let admin = created.lines().last().unwrap().to_owned();
    let nodes: Vec<Server> = ["node-a", "node-b"]
        .iter()
        .map(|n| start_server(&dir.path().join(n), &["--warehouse", shared, "--control-db", &db]))
        .collect();
    let (a, b) = (&nodes[0].base, &nodes[1].base);

    // A key created on A works on B.
    let (status, _, answer) = call(
        a,
        "POST",
        "/v1/keys",
        &admin,
        Some(serde_json::json!({ "kind": "agent" })),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let agent = answer["key"].as_str().unwrap().to_owned();
    let id = answer["id"].as_str().unwrap().to_owned();
    let upload = |base: String, n: u32| {
        let agent = agent.clone();
        async move {
            reqwest::Client::new()
                .post(format!("{base}/v1/agent/batches"))
                .bearer_auth(agent)
                .json(&one_event_batch(
                    &format!("b-{n}"),
                    &format!("e-{n}"),
                    "userConfirmedElevation",
                ))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(upload(b.clone(), 1).await, 200, "a key made on A uploads on B");
    // B changes a setting: both nodes' actions go into one chain.
    let (status, _, _) = call(
        b,
        "PATCH",
        "/v1/tenant",
        &admin,
        Some(serde_json::json!({ "elevationRetentionDays": 800 })),
    )
    .await;
    assert_eq!(status, 200);

    // A revocation on A is refused by B within 2 s.
    let (status, _, _) = call(a, "DELETE", &format!("/v1/keys/{id}"), &admin, None).await;
    assert_eq!(status, 200);
    let mut n = 1;
    let took = until_not(Duration::from_secs(10), || {
        n += 1;
        let attempt = upload(b.clone(), n);
        async move { attempt.await == 200 }
    })
    .await;
    eprintln!("revocation on node A refused by node B after {took:?}");
    assert!(
        took <= Duration::from_secs(2),
        "B accepted the revoked key for {took:?}"
    );
    assert_eq!(upload(a.clone(), 999).await, 401);

    let events = audit_over_http(b, &admin).await;
    let correlations: Vec<&str> = events.iter().map(|e| e["correlationId"].as_str().unwrap()).collect();
    assert!(correlations.contains(&"test-POST-/v1/keys"), "{correlations:?}");
    assert!(correlations.contains(&"test-PATCH-/v1/tenant"), "{correlations:?}");
    let activities: Vec<&str> = events.iter().map(|e| e["activity"].as_str().unwrap()).collect();
    assert_eq!(activities, ["createKey", "createKey", "setTenantSettings", "revokeKey"]);
    assert!(
        events[1..]
            .iter()
            .all(|e| e["actor"]["userPrincipalName"] == "ada@contoso.com")
    );
    assert_eq!(events[0]["actor"]["userPrincipalName"], "root@contoso.com");
    let (status, _, verified) = call(a, "GET", "/v1/audit/verify", &admin, None).await;
    assert_eq!(
        (
            status,
            verified["entries"].as_u64(),
            verified["problems"].as_array().map(Vec::len)
        ),
        (200, Some(4), Some(0))
    );
    let cli = elevation(&["--control-db", &db, "audit", "verify"], cwd);
    assert!(stdout_of(&cli).contains("tenant contoso: 4 entries, chain intact"));
    for node in nodes {
        assert!(node.terminate().success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_postgresql_down_uploads_go_on_admin_calls_answer_503_and_the_node_recovers_by_itself() {
    let pg = TestPostgres::start().expect("a dedicated PostgreSQL starts");
    let db = ControlDb::Postgres(pg.fresh_database().await);
    let mut node = Node::start_on(&db).await;
    let admin = crate::support::create_key(
        &node.control,
        "contoso",
        KeyKind::Admin,
        Some(Role::EndpointPrivilegeManager),
    )
    .await
    .0;
    let (never_used, _) = crate::support::create_key(&node.control, "contoso", KeyKind::Agent, None).await;
    assert_eq!(
        node.upload(&one_event_batch("b-1", "e-1", "userConfirmedElevation"))
            .await
            .status,
        200
    );
    assert_eq!(call(&node.base, "GET", "/v1/tenant", &admin, None).await.0, 200);

    pg.stop().expect("PostgreSQL stops");
    // Keys verified within the offline grace keep uploading: nothing acknowledged is lost.
    for i in 2..6 {
        let answer = node
            .upload(&one_event_batch(
                &format!("b-{i}"),
                &format!("e-{i}"),
                "userConfirmedElevation",
            ))
            .await;
        assert_eq!(answer.status, 200, "{:?}", answer.json);
    }
    // A key this node never verified cannot be checked: 503, retry later.
    let unknown = node
        .post(
            Some(&never_used),
            &[("content-type", "application/json")],
            serde_json::to_vec(&one_event_batch("x", "x", "undetermined")).unwrap(),
        )
        .await;
    assert_eq!((unknown.status, unknown.code()), (503, "storage_unavailable"));
    assert!(unknown.retry_after.is_some());
    // Admin calls need the database: they answer 503 once the node's connection attempt (at
    // most 3 s) fails, never hang.
    until_not(Duration::from_secs(10), || async {
        call(&node.base, "GET", "/v1/tenant", &admin, None).await.0 == 200
    })
    .await;
    for (method, path, body) in [
        ("GET", "/v1/tenant", None),
        ("GET", "/v1/reports/by-user", None),
        ("POST", "/v1/keys", Some(serde_json::json!({ "kind": "agent" }))),
        ("GET", "/v1/audit", None),
    ] {
        let (status, retry_after, answer) = call(&node.base, method, path, &admin, body).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (503, Some("storage_unavailable")),
            "{method} {path}"
        );
        assert!(retry_after.is_some(), "{method} {path}");
    }

    pg.resume().expect("PostgreSQL starts again");
    let took = until_not(Duration::from_secs(30), || async {
        call(&node.base, "GET", "/v1/tenant", &admin, None).await.0 != 200
    })
    .await;
    eprintln!("admin calls work again {took:?} after PostgreSQL came back");
    let (status, _, _) = call(
        &node.base,
        "POST",
        "/v1/keys",
        &admin,
        Some(serde_json::json!({ "kind": "agent" })),
    )
    .await;
    assert_eq!(status, 201);
    node.land_all().await;
    assert_eq!(
        node.counts("contoso").await.elevations(),
        5,
        "every acknowledged upload landed"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_on_a_data_folder_of_the_json_version_moves_the_files_once_and_keeps_them() {
    let dir = temp_dir();
    let data = dir.path().join("node");
    std::fs::create_dir_all(&data).unwrap();
    // A key of the JSON-file version, written as that version wrote it (the same record).
    let (key, record) =
        control::keys::generate("contoso", KeyKind::Agent, None, None, crate::support::test_now()).unwrap();
    let keys = serde_json::json!({ "keys": [record] });
    std::fs::write(data.join("keys.json"), keys.to_string()).unwrap();
    std::fs::write(data.join("tenants.json"), r#"{"contoso":{"reportingCap":"managed"}}"#).unwrap();
    let log = dir.path().join("serve.log");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_elevation"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("RUST_LOG", "warn,control=info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap());
    let server = Server::spawned(command);
    let answer = reqwest::Client::new()
        .post(format!("{}/v1/agent/batches", server.base))
        .bearer_auth(&key)
        .json(&one_event_batch("b-1", "e-1", "unmanagedElevation"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let answer: serde_json::Value = answer.json().await.unwrap();
    // The tenant's cap came along: an unmanaged elevation is dropped at `managed`.
    assert_eq!(answer["droppedByPolicy"]["elevations"], 1, "{answer}");
    assert!(server.terminate().success());
    for file in ["keys.json", "tenants.json"] {
        assert!(
            !data.join(file).exists() && data.join(format!("{file}.migrated")).exists(),
            "{file}"
        );
    }
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("moved 1 keys, settings of 1 tenants and 0 rules policies"),
        "{logged}"
    );
    let listed = stdout_of(&elevation(
        &["--data-dir", data.to_str().unwrap(), "keys", "list"],
        dir.path(),
    ));
    assert!(listed.contains(&record.id), "{listed}");
    let log = stdout_of(&elevation(
        &["--data-dir", data.to_str().unwrap(), "audit", "list", "--format", "csv"],
        dir.path(),
    ));
    assert!(log.contains("migrateJsonFiles"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_cli_lists_filters_and_catches_a_tampered_entry() {
    each_backend(|t: TestDb| async move {
        let db = t.db.as_arg();
        let cwd = t.path();
        let run = |args: &[&str]| {
            let mut all = vec!["--control-db", db.as_str(), "--data-dir", cwd.to_str().unwrap()];
            all.extend_from_slice(args);
            elevation(&all, cwd)
        };
        stdout_of(&run(&[
            "keys",
            "create",
            "--kind",
            "agent",
            "--actor",
            "ada@contoso.com",
        ]));
        stdout_of(&run(&[
            "tenant",
            "set",
            "--reporting-cap",
            "managed",
            "--actor",
            "bob@contoso.com",
        ]));
        let created = stdout_of(&run(&["keys", "create", "--kind", "agent"]));
        assert!(created.contains("created agent key"));
        let json: Vec<serde_json::Value> =
            serde_json::from_str(&stdout_of(&run(&["audit", "list", "--format", "json"]))).unwrap();
        assert_eq!(json.len(), 3, "{}", t.backend);
        assert_eq!(json[1]["modifiedProperties"][0]["newValue"], "managed");
        assert!(
            json[2]["actor"]["userPrincipalName"]
                .as_str()
                .unwrap()
                .starts_with("cli:"),
            "{:?}",
            json[2]["actor"]
        );
        let bob = stdout_of(&run(&[
            "audit",
            "list",
            "--actor",
            "bob@contoso.com",
            "--format",
            "csv",
        ]));
        assert_eq!(bob.lines().count(), 2, "{bob}");
        let table = stdout_of(&run(&["audit", "list", "--activity", "createKey"]));
        assert_eq!(table.lines().count(), 3, "{table}");
        assert!(stdout_of(&run(&["audit", "verify"])).contains("3 entries, chain intact"));

        let unguard = match t.db {
            ControlDb::Sqlite(_) => "DROP TRIGGER audit_events_no_update;",
            ControlDb::Postgres(_) => "DROP TRIGGER audit_events_no_change ON audit_events;",
        };
        execute(&t.db, unguard).await;
        execute(
            &t.db,
            "UPDATE audit_events SET activity_result = 'failure' WHERE seq = 2",
        )
        .await;
        let broken = run(&["audit", "verify"]);
        assert_eq!(broken.status.code(), Some(1), "{}", t.backend);
        let said = String::from_utf8_lossy(&broken.stdout);
        assert!(said.contains("entry 2 was edited"), "{said}");
    })
    .await;
}

/// What a node's `/metrics` says of maintenance: whether it holds the lease, and how many
/// maintenance steps it has run (any outcome).
async fn maintenance_state(base: &str) -> (bool, u64) {
    let Ok(answer) = reqwest::get(format!("{base}/metrics")).await else {
        return (false, 0);
    };
    let text = answer.text().await.unwrap_or_default();
    let mut held = false;
    let mut runs = 0.0;
    for line in text.lines() {
        if let Some(value) = line.strip_prefix("elevation_maintenance_lease_held ") {
            held = value.trim() == "1";
        } else if line.starts_with("elevation_maintenance_runs_total{") {
            runs += line.rsplit(' ').next().unwrap().parse::<f64>().unwrap_or(0.0);
        }
    }
    (held, runs as u64)
}

/// Several nodes on one PostgreSQL: one at a time runs the maintenance pass (a lease in the
/// control plane's database); killed with SIGKILL, another takes over once the lease expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_at_a_time_runs_maintenance_and_another_takes_over_when_it_dies() {
    let pg = TestDb::postgres().await;
    let db = pg.db.as_arg();
    let dir = temp_dir();
    let shared = dir.path().join("shared-warehouse");
    let args = [
        "--warehouse",
        shared.to_str().unwrap(),
        "--control-db",
        &db,
        "--maintenance-interval-secs",
        "1",
        "--maintenance-lease-secs",
        "10",
    ];
    let folders = [dir.path().join("node-a"), dir.path().join("node-b")];
    let mut nodes: Vec<Option<Server>> = folders.iter().map(|f| Some(start_server(f, &args))).collect();
    let bases: Vec<String> = nodes.iter().map(|n| n.as_ref().unwrap().base.clone()).collect();

    // Exactly one node holds the lease and runs passes; the other runs none meanwhile.
    let deadline = Instant::now() + Duration::from_secs(60);
    let holder = loop {
        let a = maintenance_state(&bases[0]).await;
        let b = maintenance_state(&bases[1]).await;
        assert!(!(a.0 && b.0), "both nodes hold the maintenance lease: {a:?} {b:?}");
        match (a, b) {
            ((true, runs), (false, 0)) if runs > 0 => break 0,
            ((false, 0), (true, runs)) if runs > 0 => break 1,
            _ => {}
        }
        assert!(Instant::now() < deadline, "no node ran maintenance alone: {a:?} {b:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let other = 1 - holder;
    // A few more passes: still only the holder.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        maintenance_state(&bases[other]).await,
        (false, 0),
        "the other node ran maintenance"
    );

    // The holder dies; the other takes over within the lease and its renewal.
    let mut dead = nodes[holder].take().unwrap();
    dead.child.kill().expect("SIGKILL");
    dead.child.wait().unwrap();
    let killed = Instant::now();
    loop {
        let (held, runs) = maintenance_state(&bases[other]).await;
        if held && runs > 0 {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(40),
            "the surviving node did not take maintenance over: {held} {runs}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let control = control::ControlPlane::open(&pg.db, Default::default()).await.unwrap();
    let (holder_id, _) = control.lease_holder("maintenance").await.unwrap().expect("a holder");
    let other_id = std::fs::read_to_string(folders[other].join("node-id")).unwrap();
    assert_eq!(holder_id, other_id.trim(), "the lease names the surviving node");
    control.close().await;
    if let Some(node) = nodes[other].take() {
        assert!(node.terminate().success());
    }
}
