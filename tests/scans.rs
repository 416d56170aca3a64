//! Reports read the warehouse as a list of its files, each with the bounds Delta recorded for
//! its columns, and skip files by those bounds (issue #21): a bound must never hide a row.

use crate::support::{Node, batch, elevation_event};

/// The ids of the rows of a report over `path`, as the API answers them.
async fn ids(node: &Node, path: &str) -> Vec<String> {
    let (status, body) = node.get_with_key(&node.admin_key, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_late_in_its_millisecond_is_read_although_the_files_bound_is_cut_to_the_millisecond() {
    let mut node = Node::start().await;
    // Two files of one day. Delta keeps a file's newest time to the millisecond, cut down:
    // the first file's newest event, 0.9 ms into its millisecond, is recorded as 11:00:00.000.
    let mut late = elevation_event("late", "userConfirmedElevation");
    late["eventDateTime"] = "2026-11-20T11:00:00.000900Z".into();
    let mut early = elevation_event("early", "userConfirmedElevation");
    early["eventDateTime"] = "2026-11-20T10:00:00Z".into();
    for (name, event) in [("b-late", late), ("b-early", early)] {
        let answer = node.upload(&batch(name, "all", vec![event], vec![])).await;
        assert_eq!(answer.status, 200, "{}", answer.message());
        node.land_all().await;
    }
    // A window that starts inside that millisecond, after the recorded bound.
    let inside = "/v1/reports/elevations?from=2026-11-20T11:00:00.000500Z&to=2026-11-20T12:00:00Z";
    assert_eq!(ids(&node, inside).await, ["late"]);
    // A window that ends inside it, before the event: the bound keeps nothing it should not.
    let before = "/v1/reports/elevations?from=2026-11-20T00:00:00Z&to=2026-11-20T11:00:00.000500Z";
    assert_eq!(ids(&node, before).await, ["early"]);
    // The newest first over the whole day, both files read.
    let day = "/v1/reports/elevations?from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z";
    assert_eq!(ids(&node, day).await, ["late", "early"]);
    node.stop().await;
}
