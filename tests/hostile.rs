//! Hostile input against a real server: each case gets the right status, code and a message a
//! person can act on; the server stays up; the valid events of a mixed batch are all stored.

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{Node, batch, diagnostic, elevation_event};

/// A gzip body that inflates to `mib` MiB of zeros (deflate cannot beat about 1:1000, so 40 MiB
/// take about 40 KB).
fn gzip_bomb(mib: usize) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..mib {
        encoder.write_all(&zeros).unwrap();
    }
    encoder.finish().unwrap()
}

/// A zstd frame of `gib` GiB of `{`, built from run-length blocks of 128 KiB at 4 bytes each:
/// the shape of a real decompression bomb (1 GiB in 32 KB).
fn zstd_bomb(gib: usize) -> Vec<u8> {
    const BLOCK: u32 = 128 * 1024;
    let blocks = gib * 8192;
    let mut out = Vec::with_capacity(6 + blocks * 4);
    out.extend_from_slice(&0xFD2F_B528u32.to_le_bytes()); // magic
    out.push(0x00); // no content size, no checksum, no dictionary, not single-segment
    out.push(7 << 3); // window 2^(10+7) = 128 KiB
    for i in 0..blocks {
        let last = u32::from(i + 1 == blocks);
        let header = last | (1 << 1) | (BLOCK << 3); // RLE block of BLOCK bytes
        out.extend_from_slice(&header.to_le_bytes()[..3]);
        out.push(b'{');
    }
    out
}

fn valid() -> serde_json::Value {
    batch(
        "b-valid",
        "all",
        vec![elevation_event("v-1", "userConfirmedElevation")],
        vec![],
    )
}

fn text(value: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

struct Case {
    name: &'static str,
    key: KeyChoice,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
    message: &'static str,
}

#[derive(Clone, Copy)]
enum KeyChoice {
    None,
    Agent,
    Admin,
    Unknown,
    Revoked,
    Raw(&'static str),
}

const JSON: (&str, &str) = ("content-type", "application/json");

fn envelope_cases() -> Vec<Case> {
    let case = |name, body: Vec<u8>, status, code, message| Case {
        name,
        key: KeyChoice::Agent,
        headers: vec![JSON],
        body,
        status,
        code,
        message,
    };
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut b = valid();
        f(&mut b);
        text(&b)
    };
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let deep_event =
        format!(r#"{{"batchId":"b-deep","deviceId":"d","reportingLevel":"all","elevations":[{{"id":{deep}}}]}}"#);
    let many = json!({
        "batchId": "b-many", "deviceId": "d", "reportingLevel": "all",
        "diagnostics": vec![json!({}); 10_001]
    });
    vec![
        Case {
            key: KeyChoice::None,
            ..case("no key", text(&valid()), 401, "unauthorized", "Authorization: Bearer")
        },
        Case {
            key: KeyChoice::Raw("Basic YWRhOnNlY3JldA=="),
            ..case(
                "basic auth instead of a bearer key",
                text(&valid()),
                401,
                "unauthorized",
                "agent key",
            )
        },
        Case {
            key: KeyChoice::Unknown,
            ..case("unknown key", text(&valid()), 401, "unauthorized", "agent key")
        },
        Case {
            key: KeyChoice::Revoked,
            ..case("revoked key", text(&valid()), 401, "unauthorized", "agent key")
        },
        Case {
            key: KeyChoice::Admin,
            ..case(
                "admin key on the agent endpoint",
                text(&valid()),
                403,
                "forbidden",
                "agent key",
            )
        },
        Case {
            headers: vec![("content-type", "text/plain")],
            ..case(
                "text/plain",
                text(&valid()),
                415,
                "unsupported_media_type",
                "application/json",
            )
        },
        Case {
            headers: vec![],
            ..case(
                "no content type",
                text(&valid()),
                415,
                "unsupported_media_type",
                "application/json",
            )
        },
        Case {
            headers: vec![JSON, ("content-encoding", "br")],
            ..case("brotli", text(&valid()), 415, "unsupported_encoding", "gzip, zstd")
        },
        Case {
            headers: vec![JSON, ("content-encoding", "gzip")],
            ..case(
                "says gzip, is not",
                text(&valid()),
                400,
                "invalid_encoding",
                "does not decompress",
            )
        },
        Case {
            headers: vec![JSON, ("content-encoding", "gzip")],
            ..case(
                "gzip bomb (40 MiB in 40 KB)",
                gzip_bomb(40),
                413,
                "body_too_large",
                "decompressed",
            )
        },
        Case {
            headers: vec![JSON, ("content-encoding", "zstd")],
            ..case(
                "zstd bomb (1 GiB in 32 KB)",
                zstd_bomb(1),
                413,
                "body_too_large",
                "decompressed",
            )
        },
        case(
            "not UTF-8",
            b"{\"batchId\":\"\xff\xfe\"}".to_vec(),
            400,
            "invalid_utf8",
            "offset 12",
        ),
        case(
            "not JSON",
            b"hello".to_vec(),
            400,
            "invalid_json",
            "must be a JSON object",
        ),
        case(
            "an array",
            b"[1,2]".to_vec(),
            400,
            "invalid_json",
            "must be a JSON object",
        ),
        case(
            "wrong type inside",
            br#"{"batchId":"b","deviceId":"d","reportingLevel":"all","diagnostics":{}}"#.to_vec(),
            400,
            "invalid_json",
            "diagnostics",
        ),
        case(
            "truncated",
            b"{\"batchId\":\"b\",\"deviceId\"".to_vec(),
            400,
            "invalid_json",
            "EOF",
        ),
        case(
            "trailing data",
            [text(&valid()), b"{}".to_vec()].concat(),
            400,
            "invalid_json",
            "after the batch",
        ),
        case(
            "no batchId",
            with(&|b| {
                b.as_object_mut().unwrap().remove("batchId");
            }),
            400,
            "missing_field",
            "batchId",
        ),
        case(
            "no deviceId",
            with(&|b| {
                b.as_object_mut().unwrap().remove("deviceId");
            }),
            400,
            "missing_field",
            "deviceId",
        ),
        case(
            "empty batchId",
            with(&|b| b["batchId"] = json!("  ")),
            400,
            "invalid_field",
            "batchId is empty",
        ),
        case(
            "huge batchId",
            with(&|b| b["batchId"] = json!("x".repeat(200))),
            400,
            "invalid_field",
            "longer than 128",
        ),
        case(
            "batchId is a number",
            with(&|b| b["batchId"] = json!(42)),
            400,
            "invalid_json",
            "batchId",
        ),
        case(
            "control characters in deviceId",
            with(&|b| b["deviceId"] = json!("dev\u{0}ice")),
            400,
            "invalid_field",
            "control",
        ),
        case(
            "unknown level",
            with(&|b| b["reportingLevel"] = json!("everything")),
            400,
            "unknown_reporting_level",
            "everything",
        ),
        case(
            "no level",
            with(&|b| {
                b.as_object_mut().unwrap().remove("reportingLevel");
            }),
            400,
            "missing_field",
            "reportingLevel",
        ),
        case(
            "elevations is a string",
            with(&|b| b["elevations"] = json!("many")),
            400,
            "invalid_json",
            "elevations",
        ),
        case(
            "deep nesting",
            deep_event.into_bytes(),
            400,
            "too_deep",
            "deeper than 32 levels",
        ),
        case(
            "duplicated batchId key",
            br#"{"batchId":"a","batchId":"b","deviceId":"d","reportingLevel":"all"}"#.to_vec(),
            400,
            "invalid_json",
            "duplicate field `batchId`",
        ),
        case("10,001 events", text(&many), 413, "too_many_events", "at most 10000"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_envelopes_get_the_right_status_code_and_message_and_the_server_stays_up() {
    let mut node = Node::start().await;
    let (revoked, record) = crate::support::create_agent_key(node.dir.path(), "contoso").await;
    node.control
        .revoke_key(&crate::support::test_actor(), None, &record.id)
        .await
        .unwrap();
    let unknown = format!("elv_agent_0123456789abcdef_{}", "0".repeat(64));
    let cases = envelope_cases();
    assert!(cases.len() >= 29, "the hostile suite shrank to {}", cases.len());
    for case in cases {
        let key = match case.key {
            KeyChoice::None => None,
            KeyChoice::Agent => Some(node.agent_key.clone()),
            KeyChoice::Admin => Some(node.admin_key.clone()),
            KeyChoice::Unknown => Some(unknown.clone()),
            KeyChoice::Revoked => Some(revoked.clone()),
            KeyChoice::Raw(_) => None,
        };
        let mut headers = case.headers.clone();
        if let KeyChoice::Raw(value) = case.key {
            headers.push(("authorization", value));
        }
        let started = Instant::now();
        let answer = node.post(key.as_deref(), &headers, case.body).await;
        let took = started.elapsed();
        assert_eq!(
            (answer.status, answer.code()),
            (case.status, case.code),
            "{}: {:?}",
            case.name,
            answer.json
        );
        assert!(
            answer.message().contains(case.message),
            "{}: message {:?} does not say {:?}",
            case.name,
            answer.message(),
            case.message
        );
        assert!(took < Duration::from_secs(20), "{} took {took:?}", case.name);
        let (health, _) = node.get("/healthz").await;
        assert_eq!(health, 200, "the server went down after {}", case.name);
    }
    // Method and path errors are in the contract's shape too.
    let client = reqwest::Client::new();
    let response = client
        .get(format!("{}/v1/agent/batches", node.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
    let response = client.get(format!("{}/v1/nothing", node.base)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");

    // Nothing of the refused bodies was stored.
    node.land_all().await;
    assert_eq!(node.counts("contoso").await.elevations(), 0);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announced_oversize_body_is_refused_before_it_is_sent() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut node = Node::start().await;
    let address = node.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /v1/agent/batches HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        node.agent_key,
        9 << 20
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // Not one byte of the 9 MiB is sent: the answer must come from the headers alone.
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&response).contains("split the batch") {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(
            n > 0,
            "connection closed without an answer: {}",
            String::from_utf8_lossy(&response)
        );
        response.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains(r#""code":"body_too_large""#), "{text}");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_events_are_rejected_one_by_one_and_every_valid_event_of_the_batch_is_stored() {
    let mut node = Node::start().await;
    let mut bad: Vec<(serde_json::Value, &str, &str)> = Vec::new();
    let mut with = |field: &str, value: serde_json::Value, expect_field: &'static str, says: &'static str| {
        let mut e = elevation_event(&format!("bad-{}", bad.len()), "userConfirmedElevation");
        e[field] = value;
        bad.push((e, expect_field, says));
    };
    with(
        "elevationType",
        json!("rootElevation"),
        "elevationType",
        "rootElevation",
    );
    with("hash", json!("ABC"), "hash", "64 hexadecimal");
    with("hash", json!("Z".repeat(64)), "hash", "64 hexadecimal");
    with("result", json!("zero"), "result", "");
    with("result", json!(-1), "result", "positive exit code");
    with(
        "filePath",
        json!(format!("C:\\{}", "a".repeat(100_000))),
        "filePath",
        "the limit is 2048",
    );
    with("justification", json!("j".repeat(300)), "justification", "256");
    with(
        "eventDateTime",
        json!("2026-11-25T00:00:00Z"),
        "eventDateTime",
        "future",
    );
    with("eventDateTime", json!("yesterday"), "eventDateTime", "");
    with("userType", json!(7), "userType", "");
    with("upn", json!(null), "upn", "");
    let mut elevations: Vec<serde_json::Value> = Vec::new();
    let mut expected_rejections = Vec::new();
    let mut valid_ids = Vec::new();
    for (i, (event, field, says)) in bad.into_iter().enumerate() {
        let id = format!("good-{i}");
        elevations.push(elevation_event(&id, "userConfirmedElevation"));
        valid_ids.push(id);
        expected_rejections.push(("elevation", elevations.len() as u64, field, says));
        elevations.push(event);
    }
    // An event that is not an object, and one with a duplicated key.
    expected_rejections.push(("elevation", elevations.len() as u64, "(event)", "object"));
    elevations.push(json!("just a string"));
    let mut diagnostics = vec![diagnostic(1)];
    for (field, value) in [
        ("upn", json!("ada@contoso.com")),
        ("filePath", json!("C:\\x.exe")),
        ("hash", json!("AB")),
    ] {
        let mut d = diagnostic(2);
        d[field] = value;
        expected_rejections.push(("diagnostic", diagnostics.len() as u64, field, "personal"));
        diagnostics.push(d);
    }
    let body = batch("b-hostile-events", "all", elevations, diagnostics);
    let mut raw = serde_json::to_string(&body).unwrap();
    // Duplicate a key inside the first valid event by hand (serde_json cannot build it).
    raw = raw.replacen(
        r#""id":"good-0""#,
        r#""id":"good-0","upn":"x@contoso.com","upn":"y@contoso.com""#,
        1,
    );
    let answer = node
        .post(
            Some(&node.agent_key.clone()),
            &[("content-type", "application/json")],
            raw.into_bytes(),
        )
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.json);
    let rejected = answer.json["rejected"].as_array().unwrap();
    // good-0 now has a duplicated upn: rejected too.
    let duplicate = rejected
        .iter()
        .find(|r| r["index"] == 0 && r["kind"] == "elevation")
        .expect("good-0 rejected");
    assert!(
        duplicate["error"].as_str().unwrap().contains("duplicate"),
        "{duplicate:?}"
    );
    for (kind, index, field, says) in &expected_rejections {
        let found = rejected
            .iter()
            .find(|r| r["kind"] == *kind && r["index"] == *index)
            .unwrap_or_else(|| panic!("{kind} {index} ({field}) was not rejected: {rejected:?}"));
        assert_eq!(found["field"], *field, "{found:?}");
        assert!(
            found["error"].as_str().unwrap().contains(says),
            "{found:?} should say {says:?}"
        );
    }
    assert_eq!(rejected.len(), expected_rejections.len() + 1);
    let stored: Vec<String> = valid_ids.into_iter().filter(|id| id != "good-0").collect();
    assert_eq!(answer.json["accepted"]["elevations"], stored.len());
    assert_eq!(answer.json["accepted"]["diagnostics"], 1);

    node.land_all().await;
    let rows = node.sql("SELECT id FROM elevations ORDER BY id").await;
    let mut ids: Vec<String> = rows.iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    let mut expected = stored.clone();
    expected.sort();
    assert_eq!(ids, expected);
    node.stop().await;
}

/// A client that writes its whole body before reading the answer (Python's `http.client`)
/// gets the `413` for a body announced too large, not a broken pipe: the server reads and
/// throws away what it sends after answering (lingering close).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_its_whole_oversize_body_before_reading_still_reads_the_413() {
    let mut node = Node::start().await;
    let port = node.base.rsplit(':').next().unwrap().to_owned();
    let script = r#"
import http.client, json, sys
port, key = int(sys.argv[1]), sys.argv[2]
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
try:
    conn.request("POST", "/v1/agent/batches", body=b"{" + b" " * (9 << 20) + b"}",
                 headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    answer = conn.getresponse()
    print(answer.status, json.loads(answer.read())["error"]["code"])
except Exception as e:
    print("failed", type(e).__name__, e)
"#;
    let key = node.agent_key.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args(["-c", script, &port, &key])
            .output()
            .expect("python3 runs (installed by .ci/test)")
    })
    .await
    .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        printed.trim(),
        "413 body_too_large",
        "{printed} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The server is fine and takes the next upload.
    assert_eq!(node.upload(&valid()).await.status, 200);
    node.stop().await;
}

/// A client sending its headers slowly is disconnected after the header time-out; one sending
/// its body slowly gets `408 request_timeout` after the body time-out, and the upload slot it
/// held is free again (the node takes one upload at a time here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_after_the_time_outs_and_hold_no_upload_slot() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut node = Node::start_with(|config| {
        config.timeouts.headers = Duration::from_secs(1);
        config.timeouts.body = Duration::from_secs(1);
        config.max_concurrent_uploads = 1;
    })
    .await;
    let address = node.base.trim_start_matches("http://").to_owned();
    // At most this long for either cut-off: far above the 1 s time-outs, far below a hang.
    let bound = Duration::from_secs(20);

    // Headers, one line and then nothing: the server closes the connection.
    let mut slow_headers = tokio::net::TcpStream::connect(&address).await.unwrap();
    slow_headers
        .write_all(b"POST /v1/agent/batches HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(bound, slow_headers.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "a client stuck in its headers was never cut off");
    assert!(
        answer.is_empty() || String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(started.elapsed() < bound);

    // A body of 100 bytes announced, 10 sent: 408 with the contract's error.
    let mut slow_body = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /v1/agent/batches HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"batchId\"",
        node.agent_key
    );
    slow_body.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("request_timeout") {
        let n = tokio::time::timeout(bound, slow_body.read(&mut chunk))
            .await
            .expect("a slow body is answered")
            .unwrap();
        assert!(n > 0, "closed without an answer: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&chunk[..n]);
    }
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408"));
    // The slot is free: the next upload is taken, not refused as busy.
    assert_eq!(node.upload(&valid()).await.status, 200);
    node.stop().await;
}

/// The upload limits are the `serve` flags given (issue #21: every ingest limit has a flag).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upload_limits_are_the_flags_given() {
    let dir = crate::support::temp_dir();
    let data = dir.path().join("node");
    let (key, _) = crate::support::create_agent_key(&data, "contoso").await;
    let server = crate::support::start_server(&data, &["--max-events", "2", "--max-body-mib", "1"]);
    let post = |body: Vec<u8>| {
        reqwest::Client::new()
            .post(format!("{}/v1/agent/batches", server.base))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let three = ["l-1", "l-2", "l-3"].map(|id| elevation_event(id, "userConfirmedElevation"));
    let answer = post(text(&batch("b-three", "all", three.to_vec(), vec![])))
        .await
        .unwrap();
    assert_eq!(answer.status(), 413);
    let said = answer.text().await.unwrap();
    assert!(said.contains("too_many_events") && said.contains("at most 2"), "{said}");
    let two = batch("b-two", "all", three[..2].to_vec(), vec![]);
    assert_eq!(post(text(&two)).await.unwrap().status(), 200);
    let mut large = text(&valid());
    large.splice(1..1, vec![b' '; 1 << 20]);
    let answer = post(large).await.unwrap();
    assert_eq!(answer.status(), 413);
    let said = answer.text().await.unwrap();
    assert!(said.contains("body_too_large") && said.contains("1 MiB"), "{said}");
    assert!(server.terminate().success());
}
