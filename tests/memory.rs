//! Queries in bounded memory (issue #19): every report runs under the process's DataFusion
//! memory pool (`--query-memory`). A budget too small for the query fails with a clear error on
//! the command line and `503 query_memory_exhausted` over HTTP, and the process lives on.

use crate::reports::land_fleet;
use crate::support::{Node, elevation, start_server, stdout_of};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_over_its_memory_budget_fails_clearly_and_the_process_lives_on() {
    let mut node = Node::start().await;
    let truth = land_fleet(&node, &node.agent_key, "contoso", 7, 40, 3).await;
    node.stop().await;
    let data = node.dir.path().to_str().unwrap().to_owned();
    let (from, to) = (truth.from.to_string(), truth.to.to_string());
    let report = |budget: &str, name: &str| {
        elevation(
            &[
                "report",
                name,
                "--format",
                "json",
                "--limit",
                "100000",
                "--data-dir",
                &data,
                "--from",
                &from,
                "--to",
                &to,
                "--query-memory",
                budget,
            ],
            node.dir.path(),
        )
    };
    // Every event, newest first: the sort keeps its rows under the pool's accounting.
    let unbounded: serde_json::Value = serde_json::from_str(&stdout_of(&report("50%", "elevations"))).unwrap();
    let rows = unbounded["rows"].as_array().unwrap().len() as u64;
    assert_eq!(rows, truth.totals.elevations);
    let starved = report("1KiB", "elevations");
    assert!(!starved.status.success(), "a 1 KiB budget cannot sort the window");
    let stderr = String::from_utf8_lossy(&starved.stderr);
    assert!(
        stderr.contains("more memory than the query budget of 1 KiB") && stderr.contains("--query-memory"),
        "{stderr}"
    );
    let bad = report("lots", "trend");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("512MiB"));

    // Over HTTP: 503 with the code and Retry-After, and the server still answers afterwards.
    stdout_of(&elevation(
        &["compliance", "keygen", "--data-dir", &data],
        node.dir.path(),
    ));
    let server = start_server(node.dir.path(), &["--query-memory", "1KiB"]);
    let client = reqwest::Client::new();
    let url = format!("{}/v1/reports/elevations?from={from}&to={to}&limit=100000", server.base);
    let response = client.get(&url).bearer_auth(&node.admin_key).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "query_memory_exhausted", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("query budget of 1 KiB"), "{message}");
    assert!(
        !message.contains("allocate"),
        "DataFusion's internals stay in the log: {message}"
    );
    // A compliance pack reads the same way, and answers the same.
    let pack = client
        .get(format!("{}/v1/compliance/pack?from={from}&to={to}", server.base))
        .bearer_auth(&node.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(pack.status(), 503);
    let body: serde_json::Value = pack.json().await.unwrap();
    assert_eq!(body["error"]["code"], "query_memory_exhausted", "{body}");
    let health = client.get(format!("{}/healthz", server.base)).send().await.unwrap();
    assert_eq!(health.status(), 200, "the server lives on");
    // The process's memory, for operators watching it: live heap, allocator and kernel views.
    let metrics = client.get(format!("{}/metrics", server.base)).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    for gauge in [
        "elevation_allocator_allocated_bytes",
        "elevation_allocator_resident_bytes",
        "elevation_process_resident_bytes",
    ] {
        let value: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(gauge)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{gauge} missing from /metrics:\n{metrics}"));
        assert!(value > 1e6, "{gauge} = {value}");
    }
    assert!(server.terminate().success());
}
