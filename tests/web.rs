//! The one HTTP face (issue #15): every route the OpenAPI document describes is served, answers
//! with an `x-request-id` and, when it refuses, with the one error shape and a code the
//! document lists, under a status the document gives for that operation. Signing in to the
//! dashboards gives a strict session cookie; CSRF guards every change a session makes.

use std::collections::BTreeSet;

use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};

use crate::support::{Node, create_key};

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// An admin key of contoso whose role may do everything.
async fn manager_key(node: &Node) -> String {
    let role = Some(control::Role::EndpointPrivilegeManager);
    create_key(&node.control, "contoso", control::KeyKind::Admin, role)
        .await
        .0
}

/// A concrete path for a documented path template.
fn concrete(template: &str) -> String {
    template
        .replace("{name}", "by-user")
        .replace("{id}", "no-such-id")
        .replace("{file}", "style.css")
}

/// The codes the document's `ErrorCode` schema lists.
fn documented_codes(document: &serde_json::Value) -> BTreeSet<String> {
    document["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .expect("the document lists the error codes")
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_route_answers_with_a_request_id_and_documented_errors() {
    let node = Node::start().await;
    let manager_key = manager_key(&node).await;
    let client = no_redirects();
    let document: serde_json::Value = client
        .get(format!("{}/openapi.json", node.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let codes = documented_codes(&document);
    let paths = document["paths"].as_object().unwrap();
    for expected in [
        "/v1/agent/batches",
        "/v1/reports/{name}",
        "/v1/suggestions",
        "/v1/exports/rules",
        "/v1/keys",
        "/v1/keys/{id}",
        "/v1/tenant",
        "/v1/rules",
        "/v1/audit",
        "/v1/audit/verify",
        "/sign-in",
        "/sign-out",
        "/",
        "/reports/{name}",
        "/when",
        "/healthz",
    ] {
        assert!(paths.contains_key(expected), "{expected} is not in /openapi.json");
    }
    let mut checked = 0;
    for (template, operations) in paths {
        for (method, operation) in operations.as_object().unwrap() {
            let documented: BTreeSet<u16> = operation["responses"]
                .as_object()
                .unwrap()
                .keys()
                .map(|s| s.parse().unwrap())
                .collect();
            let url = format!("{}{}", node.base, concrete(template));
            for credential in [None, Some(&node.agent_key), Some(&node.admin_key), Some(&manager_key)] {
                let mut request = client
                    .request(method.to_uppercase().parse().unwrap(), &url)
                    .header("content-type", "application/json")
                    .body("{}");
                if let Some(key) = credential {
                    request = request.bearer_auth(key);
                }
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                let headers = response.headers().clone();
                let body = response.text().await.unwrap();
                let what = format!("{method} {template} with {credential:?}: {status} {body}");
                checked += 1;
                assert!(headers.contains_key("x-request-id"), "no x-request-id: {what}");
                assert!(status < 500 || status == 503, "server error: {what}");
                assert!(
                    documented.contains(&status),
                    "status not in the document {documented:?}: {what}"
                );
                let is_json = headers
                    .get("content-type")
                    .is_some_and(|v| v.to_str().unwrap().starts_with("application/json"));
                if status >= 400 && is_json {
                    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
                    let code = error["error"]["code"].as_str().unwrap_or_default();
                    assert!(codes.contains(code), "undocumented code {code:?}: {what}");
                    assert!(
                        !error["error"]["message"].as_str().unwrap_or_default().is_empty(),
                        "no message: {what}"
                    );
                }
            }
        }
    }
    assert!(checked > 80, "walked {checked} requests");

    // A request id the client sends is echoed, on the agent side and the admin side alike.
    for path in ["/healthz", "/v1/reports/by-user", "/no/such/path"] {
        let response = client
            .get(format!("{}{path}", node.base))
            .bearer_auth(&node.admin_key)
            .header("x-request-id", "trace-4711")
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["x-request-id"], "trace-4711", "{path}");
    }
    // Unknown paths and wrong methods answer in the same shape.
    let unknown = client.get(format!("{}/v2/nothing", node.base)).send().await.unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
    let body: serde_json::Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    let wrong_method = client
        .put(format!("{}/v1/suggestions", node.base))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status().as_u16(), 405);
    let body: serde_json::Value = wrong_method.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
    // One bearer parser: the scheme's name in any case, on the admin side too.
    let lower = client
        .get(format!("{}/v1/reports/by-user", node.base))
        .header("authorization", format!("bearer {}", node.admin_key))
        .send()
        .await
        .unwrap();
    assert_eq!(lower.status().as_u16(), 200);
    // One 500: the same code on every side (the agent side's panic test checks it there).
    assert!(codes.contains("internal_error") && !codes.contains("internal"));
}

/// The value a `Set-Cookie` header gives a cookie, with the whole header.
fn set_cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<(&'h str, &'h str)> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| (v[name.len() + 1..].split(';').next().unwrap(), v))
}

/// The value of a hidden form field in a page.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no {name} field")) + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

/// Signs in through the form; returns the session cookie's header and the whole answer.
async fn sign_in(node: &Node, key: &str, next: &str, tls: bool) -> reqwest::Response {
    let client = no_redirects();
    let form = client
        .get(format!("{}/sign-in?next={}", node.base, next))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status().as_u16(), 200);
    let headers = form.headers().clone();
    let (token, _) = set_cookie(&headers, "elevation_sign_in").expect("the form sets its CSRF cookie");
    let html = form.text().await.unwrap();
    let csrf = hidden(&html, "csrf");
    assert_eq!(
        csrf, token,
        "double submit: the field and the cookie hold the same token"
    );
    let mut request = client
        .post(format!("{}/sign-in", node.base))
        .header("cookie", format!("elevation_sign_in={token}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string([("key", key), ("csrf", &csrf), ("next", &hidden(&html, "next"))]).unwrap());
    if tls {
        request = request.header("x-forwarded-proto", "https");
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_gives_a_strict_session_and_csrf_guards_every_change() {
    let node = Node::start().await;
    let manager_key = manager_key(&node).await;
    let client = no_redirects();

    // A page without a session sends the visitor to the form, and back afterwards.
    let page = client
        .get(format!("{}/reports/by-user", node.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 303);
    assert_eq!(page.headers()[LOCATION], "/sign-in?next=%2Freports%2Fby-user");

    // An agent key cannot sign in; nor can a made-up key.
    for key in [node.agent_key.as_str(), "elv_not_a_key"] {
        let refused = sign_in(&node, key, "/", false).await;
        assert_eq!(refused.status().as_u16(), 401);
        assert!(set_cookie(refused.headers(), "elevation_session").is_none());
        assert!(refused.text().await.unwrap().contains("not an admin key"));
    }
    // A form posted without its cookie (from another site) is refused.
    let forged = client
        .post(format!("{}/sign-in", node.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string([("key", manager_key.as_str()), ("csrf", "0000"), ("next", "/")]).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 403);
    assert!(set_cookie(forged.headers(), "elevation_session").is_none());

    // The session cookie: HttpOnly, SameSite=Strict, Secure only over TLS; then on to `next`.
    let signed_in = sign_in(&node, &manager_key, "%2Freports%2Fby-user", false).await;
    assert_eq!(signed_in.status().as_u16(), 303);
    assert_eq!(signed_in.headers()[LOCATION], "/reports/by-user");
    let (session, header) = set_cookie(signed_in.headers(), "elevation_session").unwrap();
    let session = session.to_owned();
    assert!(header.contains("HttpOnly") && header.contains("SameSite=Strict") && header.contains("Path=/"));
    assert!(!header.contains("Secure"), "{header}");
    let over_tls = sign_in(&node, &manager_key, "/", true).await;
    let (_, tls_header) = set_cookie(over_tls.headers(), "elevation_session").unwrap();
    assert!(tls_header.contains("; Secure"), "{tls_header}");
    // A next that points at another site is not followed.
    let elsewhere = sign_in(&node, &manager_key, "%2F%2Fevil.example%2F", false).await;
    assert_eq!(elsewhere.headers()[LOCATION], "/");

    let cookie = format!("elevation_session={session}");
    let page = client
        .get(format!("{}/reports/by-user", node.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("admin@contoso.com (endpoint-privilege-manager)"));
    let csrf = hidden(&html, "csrf");

    // A change riding on the session needs the page's token, and our own origin.
    let new_key = serde_json::json!({ "kind": "agent" }).to_string();
    let without = client
        .post(format!("{}/v1/keys", node.base))
        .header("cookie", &cookie)
        .body(new_key.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(without.status().as_u16(), 403);
    assert_eq!(
        without.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "csrf_rejected"
    );
    let other_origin = client
        .post(format!("{}/v1/keys", node.base))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .header("origin", "https://evil.example")
        .body(new_key.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(other_origin.status().as_u16(), 403);
    let with = client
        .post(format!("{}/v1/keys", node.base))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .body(new_key)
        .send()
        .await
        .unwrap();
    assert_eq!(with.status().as_u16(), 201);
    // Reading needs no token.
    let read = client
        .get(format!("{}/v1/reports/by-user", node.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status().as_u16(), 200);

    // A reader's session: pages yes, key management no.
    let reader = sign_in(&node, &node.admin_key, "/", false).await;
    let (reader_session, _) = set_cookie(reader.headers(), "elevation_session").unwrap();
    let reader_cookie = format!("elevation_session={reader_session}");
    let keys = client
        .get(format!("{}/v1/keys", node.base))
        .header("cookie", &reader_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(keys.status().as_u16(), 403);
    assert_eq!(
        keys.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "forbidden"
    );

    // Sign-out needs the session's token; afterwards the cookie is worthless and cleared.
    let forged_out = client
        .post(format!("{}/sign-out", node.base))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("csrf=nope")
        .send()
        .await
        .unwrap();
    assert_eq!(forged_out.status().as_u16(), 403);
    let out = client
        .post(format!("{}/sign-out", node.base))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status().as_u16(), 303);
    assert_eq!(out.headers()[LOCATION], "/sign-in");
    let (cleared, cleared_header) = set_cookie(out.headers(), "elevation_session").unwrap();
    assert!(cleared.is_empty() && cleared_header.contains("Max-Age=0"));
    let after = client
        .get(format!("{}/", node.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status().as_u16(), 303, "the old cookie no longer signs in");

    // Both ends of the session are in the audit log, with the person.
    let audit = node
        .control
        .audit_list("contoso", &control::AuditFilter::default())
        .await
        .unwrap();
    let activities: Vec<(&str, &str)> = audit
        .iter()
        .map(|e| (e.activity.as_str(), e.actor.user_principal_name.as_str()))
        .collect();
    assert!(activities.contains(&("signIn", "admin@contoso.com")), "{activities:?}");
    assert!(activities.contains(&("signOut", "admin@contoso.com")), "{activities:?}");
}
