//! Property tests over real HTTP (issue #21): generated query strings against every report of
//! a running server with a small fleet landed. Whatever the parameters, the answer is `200` or
//! a `400 invalid_parameter` whose message names what was wrong — never a `5xx`. A bounded
//! number of cases per run (`PROPTEST_CASES` raises it; README, "Tests"); the shrunk failures
//! proptest finds are kept in `tests/properties.proptest-regressions` and replayed first.

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};

use crate::support::{Node, batch, elevation_event};

const REPORTS: [&str; 12] = [
    "elevations",
    "managed-elevations",
    "by-application",
    "by-publisher",
    "by-user",
    "by-device",
    "overview",
    "trend",
    "denied",
    "diagnostics",
    "compliance",
    "no-such-report",
];

/// Values worth trying for any key: valid ones of every kind, edges and junk.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[ -~]{1,24}",
        ".{1,12}",
        any::<i64>().prop_map(|n| n.to_string()),
        (0u64..100_000).prop_map(|n| n.to_string()),
        Just("18446744073709551616".to_owned()),
        Just("2026-11-19T00:00:00Z".to_owned()),
        Just("2026-11-21".to_owned()),
        Just("1970-01-01T00:00:00Z".to_owned()),
        Just("9999-12-31T23:59:59Z".to_owned()),
        Just("-262143-01-01T00:00:00Z".to_owned()),
        Just("unmanagedElevation".to_owned()),
        Just("onlyUnmanaged".to_owned()),
        Just("desc".to_owned()),
        Just("csv".to_owned()),
        Just("graph".to_owned()),
        Just("count".to_owned()),
        Just("upn".to_owned()),
        (0usize..4000).prop_map(|n| "a".repeat(n)),
        Just("\u{0}\u{7}\r\n".to_owned()),
        Just("%'\";--".to_owned()),
    ]
}

/// A query string: generated pairs, encoded, sometimes with raw bytes no encoder writes
/// (broken escapes, escaped non-UTF-8).
fn query() -> impl Strategy<Value = String> {
    let pair = (
        prop_oneof![
            4 => proptest::sample::select(&queries::PARAMETERS[..]).prop_map(str::to_owned),
            1 => "[a-zA-Z]{0,8}",
        ],
        value(),
    );
    let raw = prop_oneof![
        Just(String::new()),
        Just("&%ZZ=1".to_owned()),
        Just("&from=%FF%FE".to_owned()),
        Just("&limit=%00".to_owned()),
        Just("&&&==".to_owned()),
        Just("&upn".to_owned()),
    ];
    (proptest::collection::vec(pair, 0..5), raw).prop_map(|(pairs, raw)| {
        let encoded = serde_urlencoded::to_string(&pairs).expect("pairs of strings encode");
        format!("{encoded}{raw}")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_report_parameters_get_200_or_a_400_that_says_why_never_a_5xx() {
    let node = Node::start().await;
    let events = vec![
        elevation_event("p-1", "unmanagedElevation"),
        elevation_event("p-2", "userConfirmedElevation"),
    ];
    assert_eq!(node.upload(&batch("b-props", "all", events, vec![])).await.status, 200);
    node.land_all().await;

    let config = Config {
        // The macro's runs read PROPTEST_CASES themselves; a runner built by hand does not.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(96),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        source_file: Some(file!()),
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let strategy = (proptest::sample::select(&REPORTS[..]), query());
    let handle = tokio::runtime::Handle::current();
    let result = runner.run(&strategy, |(report, query)| {
        let path = format!("/v1/reports/{report}?{query}");
        let (status, body) = tokio::task::block_in_place(|| handle.block_on(node.get_with_key(&node.admin_key, &path)));
        if status == 200 {
            return Ok(());
        }
        if status >= 500 {
            return Err(TestCaseError::fail(format!("{path}: {status} {body}")));
        }
        let answer: serde_json::Value = serde_json::from_str(&body)
            .map_err(|e| TestCaseError::fail(format!("{path}: {status} answered {body:?}, not JSON: {e}")))?;
        let code = answer["error"]["code"].as_str().unwrap_or_default();
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        prop_assert!(
            status == 400
                && code
                    == if report == "no-such-report" {
                        "unknown_report"
                    } else {
                        "invalid_parameter"
                    },
            "{path}: {status} {body}"
        );
        // The message names what was wrong: the report, or a parameter of the query.
        let named = report == "no-such-report"
            || query.split('&').filter_map(|pair| pair.split('=').next()).any(|key| {
                let key = url::form_urlencoded::parse(format!("{key}=").as_bytes())
                    .next()
                    .map_or_else(String::new, |(k, _)| k.into_owned());
                message.contains(&key) && (!key.is_empty() || message.contains("\"\""))
            });
        prop_assert!(named, "{path}: the message names no parameter of the query: {body}");
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
