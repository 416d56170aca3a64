//! Webhooks told about requests: signed (Standard Webhooks), retried, never in the way of
//! the request itself, and sent once when two nodes share the control plane.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_retried_and_never_in_the_way() {
    let clock = Arc::new(ManualClock::new(test_now()));
    let db = control::testing::TestDb::sqlite();
    let node = Node::start_with_clock(&db.db, clock.clone()).await;
    let http = Http::to(&node.base);
    let ada = admin_key(&node, "ada@contoso.com", control::Role::EndpointPrivilegeManager).await;

    // A receiver that fails its first call, then takes every message.
    let (sent, mut received) = tokio::sync::mpsc::unbounded_channel::<Received>();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: bytes::Bytes| {
            let (sent, calls) = (sent.clone(), calls.clone());
            async move {
                if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                let _ = sent.send((headers, body));
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    // URLs that reach private or metadata addresses, or plain http elsewhere, are refused.
    for url in [
        "http://example.com/x",
        "https://169.254.169.254/latest",
        "https://10.1.2.3/x",
        "ftp://host/x",
    ] {
        let (status, answer) = http.send("POST", "/v1/webhooks", &ada, Some(json!({"url": url}))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().starts_with("url"),
            "{answer}"
        );
    }
    let (status, added) = http
        .send("POST", "/v1/webhooks", &ada, Some(json!({"url": target})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    let secret = added["secret"].as_str().unwrap().to_owned();

    // A request is stored while the target fails; the first attempt is recorded as failed.
    let (status, asked) = http
        .send(
            "POST",
            "/v1/agent/requests",
            &node.agent_key,
            Some(request_body("w-1", "bob@contoso.com", "device-1")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = asked["id"].as_str().unwrap().to_owned();
    assert_eq!(node.control.deliver_due_webhooks(10).await.unwrap(), 1);
    let (_, deliveries) = http.send("GET", "/v1/webhooks/deliveries", &ada, None).await;
    assert_eq!(deliveries["deliveries"][0]["attempts"], 1, "{deliveries}");
    assert!(
        deliveries["deliveries"][0]["lastError"]
            .as_str()
            .unwrap()
            .contains("500"),
        "{deliveries}"
    );
    // Not due again until its backoff has passed.
    assert_eq!(node.control.deliver_due_webhooks(10).await.unwrap(), 0);
    clock.advance(Duration::seconds(3));
    assert_eq!(node.control.deliver_due_webhooks(10).await.unwrap(), 1);
    let (headers, body) = received.recv().await.unwrap();

    // The receiver checks the signature as Standard Webhooks says, with no code of ours.
    let header = |name: &str| headers[name].to_str().unwrap().to_owned();
    let (msg_id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{msg_id}.{timestamp}.").as_bytes());
    mac.update(&body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    assert!(
        header("webhook-signature").split(' ').any(|s| s == expected),
        "signature"
    );
    let message: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(message["type"], "elevationRequest.created");
    assert_eq!(message["data"]["id"], id.as_str());

    // A decision is announced by the node's own delivery loop, without anyone waiting on it.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let loop_task = tokio::spawn(node.control.clone().run_webhook_deliveries(async {
        let _ = stopped.await;
    }));
    let (status, _) = http.send("POST", &format!("/v1/requests/{id}/deny"), &ada, None).await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = received.recv().await.unwrap();
    let message: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (message["type"].as_str(), message["data"]["status"].as_str()),
        (Some("elevationRequest.decided"), Some("denied"))
    );
    // The loop finishes the pass it is in (its delivery's bookkeeping) before it stops.
    let _ = stop.send(());
    loop_task.await.unwrap();

    // A Teams target gets an Adaptive Card.
    let (_, teams) = http
        .send(
            "POST",
            "/v1/webhooks",
            &ada,
            Some(json!({"url": target, "format": "teams"})),
        )
        .await;
    assert_eq!(teams["format"], "teams", "{teams}");
    http.send(
        "POST",
        "/v1/agent/requests",
        &node.agent_key,
        Some(request_body("w-2", "bob@contoso.com", "device-1")),
    )
    .await;
    assert_eq!(node.control.deliver_due_webhooks(10).await.unwrap(), 2);
    let mut kinds = Vec::new();
    for _ in 0..2 {
        let (_, body) = received.recv().await.unwrap();
        let message: Value = serde_json::from_slice(&body).unwrap();
        kinds.push(message["type"].as_str().unwrap_or_default().to_owned());
        if message["type"] == "message" {
            assert_eq!(
                message["attachments"][0]["contentType"],
                "application/vnd.microsoft.card.adaptive"
            );
        }
    }
    kinds.sort();
    assert_eq!(kinds, ["elevationRequest.created", "message"]);

    // A Teams Workflows URL's query is its credential: neither the listing nor the audit log
    // (which readers see) shows it.
    let (status, _) = http
        .send(
            "POST",
            "/v1/webhooks",
            &ada,
            Some(json!({"url": format!("{target}?sig=s3cret-sig"), "format": "teams"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, listed) = http.send("GET", "/v1/webhooks", &ada, None).await;
    let (_, log) = http.send("GET", "/v1/audit?activity=addWebhook", &ada, None).await;
    for shown in [listed.to_string(), log.to_string()] {
        assert!(!shown.contains("s3cret-sig") && shown.contains("/hook"), "{shown}");
    }
}

/// Two `serve` processes on one PostgreSQL both run the delivery loop: every message reaches
/// the receiver once, each delivered on its first attempt (a second claim would have counted a
/// second attempt).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_send_each_webhook_once() {
    let pg = control::testing::TestDb::postgres().await;
    let control = control::ControlPlane::open(&pg.db, control::ControlOptions::default())
        .await
        .unwrap();
    let actor = crate::support::test_actor();
    let (admin, _) = control
        .create_key(
            &actor,
            "contoso",
            control::KeyKind::Admin,
            Some(control::Role::EndpointPrivilegeManager),
            Some("ada@contoso.com"),
        )
        .await
        .unwrap();
    let (agent, _) = control
        .create_key(&actor, "contoso", control::KeyKind::Agent, None, None)
        .await
        .unwrap();
    let dir = crate::support::temp_dir();
    let shared = dir.path().join("shared-warehouse");
    let db = pg.db.as_arg();
    let nodes: Vec<crate::support::Server> = ["node-a", "node-b"]
        .iter()
        .map(|n| {
            crate::support::start_server(
                &dir.path().join(n),
                &[
                    "--warehouse",
                    shared.to_str().unwrap(),
                    "--control-db",
                    &db,
                    "--webhooks-allow-http-loopback",
                ],
            )
        })
        .collect();

    let (sent, mut received) = tokio::sync::mpsc::unbounded_channel::<String>();
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let sent = sent.clone();
            async move {
                let _ = sent.send(headers["webhook-id"].to_str().unwrap().to_owned());
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let a = Http::to(&nodes[0].base);
    let b = Http::to(&nodes[1].base);
    let (status, _) = a
        .send("POST", "/v1/webhooks", &admin, Some(json!({"url": target})))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let asks = 10;
    for n in 0..asks {
        let node = if n % 2 == 0 { &a } else { &b };
        let (status, _) = node
            .send(
                "POST",
                "/v1/agent/requests",
                &agent,
                Some(request_body(&format!("n-{n}"), "bob@contoso.com", "device-1")),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let mut ids = std::collections::BTreeSet::new();
    while ids.len() < asks {
        let id = tokio::time::timeout(std::time::Duration::from_secs(30), received.recv())
            .await
            .expect("every message arrives")
            .unwrap();
        assert!(ids.insert(id.clone()), "{id} arrived twice");
    }
    let (_, deliveries) = a.send("GET", "/v1/webhooks/deliveries", &admin, None).await;
    let deliveries = deliveries["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), asks);
    for d in deliveries {
        // Delivered by one node on one attempt; the bookkeeping may trail the receipt.
        assert!(d["attempts"] == 1, "{d}");
    }
    control.close().await;
    for node in nodes {
        node.terminate();
    }
}
