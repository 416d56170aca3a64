//! Support-approved elevation requests end to end over HTTP (issue #17), on both control-plane
//! backends: a device asks, an admin approves, the device fetches the approval, uploads the
//! elevation it made under it, and the request completes when its window ends; a denial
//! reaches the device; a revocation withdraws an approval; a pending request expires by time
//! (the node's clock is moved by hand). Two admins racing, a self-approval, hostile bodies,
//! another tenant and another device are refused as the issue says; webhooks reach a local
//! receiver that checks the Standard Webhooks signature itself.

use std::sync::Arc;

use base64::Engine;
use chrono::Duration;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use warehouse::ManualClock;

use crate::support::{Node, batch, elevation_event, test_now};

/// The file of the tests' requests: the same hash as [`elevation_event`]'s.
const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn request_body(request_id: &str, user: &str, device: &str) -> Value {
    json!({
        "requestId": request_id,
        "requestedByUserPrincipalName": user,
        "requestedOnDeviceId": device,
        "deviceName": device.to_uppercase(),
        "requestJustification": "update the git client",
        "applicationDetail": {
            "fileHash": HASH.to_uppercase(), "fileName": "git.exe", "filePath": "C:\\Program Files\\Git\\bin",
            "fileDescription": "Git", "publisherName": "Sectigo Public Code Signing CA R36",
            "productName": "Git", "productInternalName": "git", "productVersion": "2.47.0"
        }
    })
}

struct Http {
    client: reqwest::Client,
    base: String,
}

impl Http {
    /// A client of the node at `base`.
    fn to(base: &str) -> Http {
        Http {
            client: reqwest::Client::new(),
            base: base.to_owned(),
        }
    }

    async fn send(&self, method: &str, path: &str, key: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}

async fn admin_key(node: &Node, upn: &str, role: control::Role) -> String {
    node.control
        .create_key(
            &crate::support::test_actor(),
            "contoso",
            control::KeyKind::Admin,
            Some(role),
            Some(upn),
        )
        .await
        .unwrap()
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_lifecycle_runs_over_http_on_both_backends() {
    control::testing::each_backend(|t: control::testing::TestDb| async move {
        let clock = Arc::new(ManualClock::new(test_now()));
        let node = Node::start_with_clock(&t.db, clock.clone()).await;
        let http = Http::to(&node.base);
        let ada = admin_key(&node, "ada@contoso.com", control::Role::EndpointPrivilegeManager).await;
        let reader = node.admin_key.clone();
        let agent = node.agent_key.clone();
        let backend = t.backend;

        // request → approve → the device fetches the approval → elevation → completed.
        let (status, asked) = http
            .send(
                "POST",
                "/v1/agent/requests",
                &agent,
                Some(request_body("r-1", "bob@contoso.com", "device-1")),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{backend}: {asked}");
        assert_eq!(asked["status"], "pending");
        assert_eq!(asked["applicationDetail"]["fileHash"], HASH);
        let id = asked["id"].as_str().unwrap().to_owned();
        let (status, again) = http
            .send(
                "POST",
                "/v1/agent/requests",
                &agent,
                Some(request_body("r-1", "bob@contoso.com", "device-1")),
            )
            .await;
        assert_eq!(
            (status, again["id"].as_str()),
            (StatusCode::OK, Some(id.as_str())),
            "a retry is stored once"
        );
        let (status, _) = http.send("GET", "/v1/requests?status=pending", &reader, None).await;
        assert_eq!(status, StatusCode::OK);
        let (status, refused) = http
            .send("POST", &format!("/v1/requests/{id}/approve"), &reader, Some(json!({})))
            .await;
        assert_eq!(
            (status, refused["error"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden"))
        );

        clock.advance(Duration::minutes(3));
        let (status, approved) = http
            .send(
                "POST",
                &format!("/v1/requests/{id}/approve"),
                &ada,
                Some(json!({"reviewerJustification": "known tool", "approvalHours": 2})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{backend}: {approved}");
        assert_eq!(approved["status"], "approved");
        assert_eq!(approved["reviewCompletedByUserPrincipalName"], "ada@contoso.com");
        let (_, seen) = http
            .send("GET", "/v1/agent/approvals?deviceId=device-1", &agent, None)
            .await;
        assert_eq!(seen["approvals"][0]["fileHash"], HASH, "{backend}: {seen}");
        assert_eq!(seen["approvals"][0]["userPrincipalName"], "bob@contoso.com");
        // The device runs the file 10 minutes later and uploads the event.
        clock.advance(Duration::minutes(10));
        let mut event = elevation_event("e-1", "supportApprovedElevation");
        event["eventDateTime"] = json!((test_now() + Duration::minutes(13)).to_rfc3339());
        event["upn"] = json!("bob@contoso.com");
        let mut upload = batch("b-1", "all", vec![event], vec![]);
        upload["deviceId"] = json!("device-1");
        assert_eq!(node.upload(&upload).await.status, 200);
        // Landing marks the approval used (before the rows commit).
        node.land_all().await;
        let (_, used) = http.send("GET", &format!("/v1/requests/{id}"), &reader, None).await;
        assert_eq!(used["status"], "approved", "{backend}: {used}");
        assert!(used["firstUsedDateTime"].is_string(), "{used}");
        clock.advance(Duration::hours(2));
        let (_, done) = http.send("GET", &format!("/v1/requests/{id}"), &reader, None).await;
        assert_eq!(done["status"], "completed", "{backend}: {done}");

        // request → deny: the device is told.
        let since = done["requestLastModifiedDateTime"].as_str().unwrap().to_owned();
        let (_, second) = http
            .send(
                "POST",
                "/v1/agent/requests",
                &agent,
                Some(request_body("r-2", "bob@contoso.com", "device-1")),
            )
            .await;
        let second_id = second["id"].as_str().unwrap().to_owned();
        // A key that may not decide is refused for who it is, whatever its body holds.
        for (who, key) in [("the agent key", &agent), ("a reader", &reader)] {
            let (status, refused) = http
                .send(
                    "POST",
                    &format!("/v1/requests/{second_id}/deny"),
                    key,
                    Some(json!({"approvalHours": 5, "unknown": true})),
                )
                .await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{backend}, {who}: {refused}");
        }
        let (status, denied) = http
            .send(
                "POST",
                &format!("/v1/requests/{second_id}/deny"),
                &ada,
                Some(json!({"reviewerJustification": "use the portable build"})),
            )
            .await;
        assert_eq!(
            (status, denied["status"].as_str()),
            (StatusCode::OK, Some("denied")),
            "{denied}"
        );
        let (_, told) = http
            .send(
                "GET",
                &format!("/v1/agent/approvals?deviceId=device-1&since={}", urlencode(&since)),
                &agent,
                None,
            )
            .await;
        let denial = told["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == second_id.as_str())
            .unwrap_or_else(|| panic!("{backend}: the denial is not among {told}"));
        assert_eq!(denial["reviewerJustification"], "use the portable build");
        // A decision on a request that is no longer pending: 409 with its state.
        let (status, late) = http
            .send("POST", &format!("/v1/requests/{second_id}/approve"), &ada, None)
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{late}");
        assert!(late["error"]["message"].as_str().unwrap().contains("denied"), "{late}");

        // approve → revoke: the approval is gone from the device at once.
        let (_, third) = http
            .send(
                "POST",
                "/v1/agent/requests",
                &agent,
                Some(request_body("r-3", "carol@contoso.com", "device-1")),
            )
            .await;
        let third_id = third["id"].as_str().unwrap().to_owned();
        http.send("POST", &format!("/v1/requests/{third_id}/approve"), &ada, None)
            .await;
        let (_, open) = http
            .send("GET", "/v1/agent/approvals?deviceId=device-1", &agent, None)
            .await;
        assert_eq!(open["approvals"].as_array().unwrap().len(), 1, "{open}");
        let (status, revoked) = http
            .send(
                "POST",
                &format!("/v1/requests/{third_id}/revoke"),
                &ada,
                Some(json!({"reviewerJustification": "wrong user"})),
            )
            .await;
        assert_eq!(
            (status, revoked["status"].as_str()),
            (StatusCode::OK, Some("revoked")),
            "{revoked}"
        );
        let (_, open) = http
            .send("GET", "/v1/agent/approvals?deviceId=device-1", &agent, None)
            .await;
        assert!(open["approvals"].as_array().unwrap().is_empty(), "{open}");

        // Expiry by time: no decision within the tenant's 48 hours.
        let (_, fourth) = http
            .send(
                "POST",
                "/v1/agent/requests",
                &agent,
                Some(request_body("r-4", "dan@contoso.com", "device-2")),
            )
            .await;
        let fourth_id = fourth["id"].as_str().unwrap().to_owned();
        clock.advance(Duration::hours(48));
        let (_, expired) = http
            .send("GET", &format!("/v1/requests/{fourth_id}"), &reader, None)
            .await;
        assert_eq!(expired["status"], "expired", "{backend}: {expired}");
        let (status, _) = http
            .send("POST", &format!("/v1/requests/{fourth_id}/approve"), &ada, None)
            .await;
        assert_eq!(status, StatusCode::CONFLICT);

        // The numbers, counted here by hand from what this test did.
        let (status, stats) = http
            .send("GET", "/v1/requests/stats?from=2026-11-19&to=2026-11-30", &reader, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{stats}");
        assert_eq!(stats["requests"], 4);
        assert_eq!(
            [
                &stats["byStatus"]["completed"],
                &stats["byStatus"]["denied"],
                &stats["byStatus"]["revoked"],
                &stats["byStatus"]["expired"]
            ],
            [&json!(1), &json!(1), &json!(1), &json!(1)],
            "{stats}"
        );
        assert_eq!(
            (stats["approvals"].as_i64(), stats["approvedNeverUsed"].as_i64()),
            (Some(2), Some(1))
        );
        assert_eq!(stats["timeToDecision"]["count"], 3);
        // The first decision took 3 minutes, the others none: nearest-rank median 0, p90 180.
        assert_eq!(stats["timeToDecision"]["p90Seconds"], 180, "{stats}");
        assert_eq!(stats["files"][0]["requests"], 4);

        // Every decision is audited with the request id as its correlation.
        let (_, log) = http
            .send("GET", "/v1/audit?activity=approveElevationRequest", &reader, None)
            .await;
        assert_eq!(log["events"].as_array().unwrap().len(), 2, "{log}");

        // The compliance pack records each request as of its period's end.
        let key = compliance::keys::keygen(node.dir.path()).unwrap();
        for (hours, expected) in [
            (1, vec![("bob@contoso.com", "approved", "ada@contoso.com")]),
            (
                24 * 9,
                vec![
                    ("bob@contoso.com", "completed", "ada@contoso.com"),
                    ("bob@contoso.com", "denied", "ada@contoso.com"),
                    ("carol@contoso.com", "revoked", "ada@contoso.com"),
                    ("dan@contoso.com", "expired", ""),
                ],
            ),
        ] {
            let (from, to) = (test_now() - Duration::days(1), test_now() + Duration::hours(hours));
            let request = dashboards::pack_request(&node.control, "contoso", from, to, None)
                .await
                .unwrap();
            let out = node.dir.path().join(format!("pack-{hours}"));
            compliance::pack(&node.warehouse, &request, &key, &out).await.unwrap();
            let mut csv = csv::Reader::from_path(out.join("support-requests.csv")).unwrap();
            let mut rows: Vec<(String, String, String)> = csv
                .deserialize::<std::collections::BTreeMap<String, String>>()
                .map(|row| {
                    let row = row.unwrap();
                    (
                        row["requestedByUserPrincipalName"].clone(),
                        row["status"].clone(),
                        row["reviewCompletedByUserPrincipalName"].clone(),
                    )
                })
                .collect();
            let mut expected: Vec<(String, String, String)> = expected
                .into_iter()
                .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
                .collect();
            // Requests made at the same instant are in id order: compare as sets.
            rows.sort();
            expected.sort();
            assert_eq!(
                rows, expected,
                "{backend}: a pack ending {hours} h after the first request"
            );
            let mut privileged = csv::Reader::from_path(out.join("privileged-use.csv")).unwrap();
            let bob = privileged
                .deserialize::<std::collections::BTreeMap<String, String>>()
                .map(Result::unwrap)
                .find(|row| row["upn"] == "bob@contoso.com")
                .expect("bob asked");
            assert_eq!(bob["supportRequests"], if hours == 1 { "1" } else { "2" });
            // AC-5: every decision was made by someone other than the requester.
            let results: Value =
                serde_json::from_slice(&std::fs::read(out.join("assessment-results.json")).unwrap()).unwrap();
            let ac5 = results["assessment-results"]["results"][0]["findings"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["target"]["target-id"] == "ac-5_obj")
                .expect("a separation-of-duties finding")
                .clone();
            assert_eq!(ac5["target"]["status"]["state"], "satisfied", "{ac5}");
            let decided = if hours == 1 {
                "1 were decided by 1 approvers"
            } else {
                "3 were decided by 1 approvers"
            };
            assert!(ac5["description"].as_str().unwrap().contains(decided), "{ac5}");
        }
    })
    .await;
}

fn urlencode(text: &str) -> String {
    serde_urlencoded::to_string([("x", text)]).unwrap()[2..].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn races_self_approval_hostile_bodies_and_other_tenants_are_refused() {
    let clock = Arc::new(ManualClock::new(test_now()));
    let db = control::testing::TestDb::sqlite();
    let node = Node::start_with_clock(&db.db, clock.clone()).await;
    let http = Http::to(&node.base);
    let ada = admin_key(&node, "ada@contoso.com", control::Role::EndpointPrivilegeManager).await;
    let dan = admin_key(&node, "dan@contoso.com", control::Role::EndpointSecurityManager).await;
    let agent = node.agent_key.clone();

    // Two admins decide at once: exactly one wins, the other gets 409 with the state.
    for round in 0..4 {
        let (_, asked) = http
            .send(
                "POST",
                "/v1/agent/requests",
                &agent,
                Some(request_body(&format!("race-{round}"), "bob@contoso.com", "device-1")),
            )
            .await;
        let id = asked["id"].as_str().unwrap().to_owned();
        let (approve, deny) = (format!("/v1/requests/{id}/approve"), format!("/v1/requests/{id}/deny"));
        let (a, d) = tokio::join!(
            http.send("POST", &approve, &ada, None),
            http.send("POST", &deny, &dan, None),
        );
        let statuses = [a.0, d.0];
        assert!(
            statuses.contains(&StatusCode::OK) && statuses.contains(&StatusCode::CONFLICT),
            "{statuses:?}: {} / {}",
            a.1,
            d.1
        );
    }

    // The Requests page pages its list (the API key works for pages too).
    clock.advance(Duration::minutes(1));
    let page = http
        .client
        .get(format!("{}/requests?limit=2", node.base))
        .bearer_auth(&ada)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(page.matches("<a href=\"/requests/").count(), 2, "{page}");
    assert!(page.contains("Next page") && page.contains("offset=2"), "{page}");

    // An admin cannot approve their own request; the attempt is in the audit log.
    let (_, own) = http
        .send(
            "POST",
            "/v1/agent/requests",
            &agent,
            Some(request_body("own", "ADA@contoso.com", "device-1")),
        )
        .await;
    let own_id = own["id"].as_str().unwrap().to_owned();
    let (status, refused) = http
        .send("POST", &format!("/v1/requests/{own_id}/approve"), &ada, None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    let (_, log) = http
        .send("GET", "/v1/audit?activity=refuseSelfApproval", &ada, None)
        .await;
    assert_eq!(log["events"][0]["activityResult"], "failure", "{log}");
    assert_eq!(log["events"][0]["actor"]["userPrincipalName"], "ada@contoso.com");

    // Bad input: 400 with the field.
    let mut bad_hash = request_body("h", "bob@contoso.com", "device-1");
    bad_hash["applicationDetail"]["fileHash"] = json!("abc");
    let mut long = request_body("l", "bob@contoso.com", "device-1");
    long["requestJustification"] = json!("x".repeat(1001));
    let mut control_chars = request_body("c", "bob@contoso.com", "device-1");
    control_chars["requestJustification"] = json!("line\u{0}nul");
    let mut extra = request_body("e", "bob@contoso.com", "device-1");
    extra["status"] = json!("approved");
    for (body, field) in [
        (bad_hash, "applicationDetail.fileHash"),
        (long, "requestJustification"),
        (control_chars, "requestJustification"),
        (extra, "status"),
    ] {
        let (status, answer) = http.send("POST", "/v1/agent/requests", &agent, Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(field),
            "{field}: {answer}"
        );
    }
    let (status, answer) = http
        .send(
            "POST",
            &format!("/v1/requests/{own_id}/deny"),
            &dan,
            Some(json!({"reviewerJustification": "x".repeat(1001)})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("reviewerJustification")
    );
    let not_json = http
        .client
        .post(format!("{}/v1/agent/requests", node.base))
        .bearer_auth(&agent)
        .header("content-type", "application/json")
        .body(vec![0xff, 0xfe, 0x00])
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
    let huge = http
        .client
        .post(format!("{}/v1/agent/requests", node.base))
        .bearer_auth(&agent)
        .header("content-type", "application/json")
        .body(vec![b' '; 256 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // Another tenant's admin: 404, never 403, and an id nobody issued looks the same.
    let other = node
        .control
        .create_key(
            &crate::support::test_actor(),
            "fabrikam",
            control::KeyKind::Admin,
            Some(control::Role::EndpointPrivilegeManager),
            Some("eve@fabrikam.com"),
        )
        .await
        .unwrap()
        .0;
    for (key, id) in [
        (&other, own_id.as_str()),
        (&ada, "00000000-0000-4000-8000-000000000000"),
    ] {
        let (status, answer) = http
            .send("POST", &format!("/v1/requests/{id}/approve"), key, None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
        let (status, _) = http.send("GET", &format!("/v1/requests/{id}"), key, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let (_, listed) = http.send("GET", "/v1/requests", &other, None).await;
    assert!(listed["requests"].as_array().unwrap().is_empty(), "{listed}");
    let (status, _) = http
        .send(
            "GET",
            "/v1/agent/approvals?deviceId=device-1",
            &node.other_tenant_key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // A device-bound key reads only its own device's approvals.
    let laptop = node
        .control
        .create_key_for(
            &crate::support::test_actor(),
            "contoso",
            control::KeyKind::Agent,
            None,
            None,
            Some("device-9"),
        )
        .await
        .unwrap()
        .0;
    let (status, _) = http
        .send("GET", "/v1/agent/approvals?deviceId=device-1", &laptop, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = http
        .send("GET", "/v1/agent/approvals?deviceId=device-9", &laptop, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    // An admin key is not a device.
    let (status, _) = http
        .send("GET", "/v1/agent/approvals?deviceId=device-1", &ada, None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// What the receiver got: headers and body.
type Received = (axum::http::HeaderMap, bytes::Bytes);

mod webhooks;
