//! Reports past raw retention (issue #19): once retention deletes a day's raw elevations, the
//! reports the daily rollups can answer still count that day, from the rollups, equal to the
//! simulator's ground truth for the whole window; the answers that need raw rows say which days
//! they lack instead of showing zeros.

use std::collections::BTreeSet;

use chrono::{Duration, NaiveDate};
use queries::Report;

use crate::reports::{
    all_events, int, land_fleet, midnight, overview_of, report, report_in, rows, split_of, text, trend_of,
    truth_overview, truth_trend,
};
use crate::support::Node;

fn days(first: NaiveDate, last_exclusive: NaiveDate) -> BTreeSet<NaiveDate> {
    first.iter_days().take_while(|d| *d < last_exclusive).collect()
}

fn coverage(report: &Report) -> (BTreeSet<NaiveDate>, BTreeSet<NaiveDate>) {
    (report.coverage.from_rollups(), report.coverage.unavailable())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_serve_days_past_raw_retention_from_the_rollups_and_name_the_days_they_lack() {
    let mut node = Node::start().await;
    let truth = land_fleet(&node, &node.agent_key, "contoso", 41, 30, 6).await;
    // Keep 3 days of raw elevations. No `compact` or refresh first: retention must bring the
    // rollups up to date itself before it deletes the only raw copy of a day.
    let today = truth.to;
    let keep_from = today - Duration::days(3);
    node.control
        .update_settings(&crate::support::test_actor(), "contoso", |s| {
            s.elevation_retention_days = Some(3);
        })
        .await
        .unwrap();
    let settings = node.control.tenant_settings().await.unwrap();
    let lookup = |t: &str| settings.get(t).map(|s| s.retention()).unwrap_or_default();
    let suggest_window = || queries::suggest::SuggestRequest::new("contoso", midnight(truth.from), midnight(truth.to));
    let suggested_before = queries::suggest::suggest(&node.warehouse, &suggest_window())
        .await
        .unwrap();
    assert!(!suggested_before.is_empty());
    let deleted = warehouse::maintenance::retention_all(&node.warehouse, &lookup, today)
        .await
        .unwrap();
    let retired = days(truth.from, keep_from);
    let retired_events: u64 = truth
        .per_day
        .iter()
        .filter(|d| d.date < keep_from)
        .map(|d| d.managed + d.unmanaged)
        .sum();
    assert_eq!(retired.len(), 3, "the fleet's first three days are past retention");
    assert!(retired_events > 0);
    assert_eq!(
        deleted[0].rows_deleted, retired_events,
        "raw rows of the first 3 days deleted"
    );

    // Served from the rollups: the whole window's numbers, exactly the ground truth's.
    let trend = report_in(&node, &truth, "trend", &[]).await;
    assert_eq!(trend_of(&trend), truth_trend(&truth, None), "trend");
    assert_eq!(coverage(&trend), (retired.clone(), BTreeSet::new()), "trend's coverage");
    let users = report_in(&node, &truth, "by-user", &[]).await;
    let expected: std::collections::BTreeMap<String, (u64, u64, u64)> = truth
        .by_user
        .iter()
        .map(|u| (u.upn.clone(), (u.managed, u.unmanaged, u.total)))
        .collect();
    assert_eq!(split_of(&users, "upn"), expected, "by-user");
    assert_eq!(coverage(&users).0, retired, "by-user from rollups");
    let devices = report_in(&node, &truth, "by-device", &[]).await;
    let expected: std::collections::BTreeMap<String, (u64, u64, u64)> = truth
        .by_device
        .iter()
        .map(|d| (d.device_name.clone(), (d.managed, d.unmanaged, d.total)))
        .collect();
    assert_eq!(split_of(&devices, "deviceName"), expected, "by-device");
    // The monthly compliance report: elevations and managed ones add up across months, users
    // do within one; closed days come from the rollups.
    let compliance = report_in(&node, &truth, "compliance", &[]).await;
    let months = compliance.records();
    let sum = |column: &str| -> i64 { months.iter().map(|m| m[column].as_int().unwrap()).sum() };
    let total: u64 = truth.by_user.iter().map(|u| u.total).sum();
    let managed: u64 = truth.by_user.iter().map(|u| u.managed).sum();
    assert_eq!(
        (sum("elevations"), sum("managed")),
        (total as i64, managed as i64),
        "compliance"
    );
    if months.len() == 1 {
        let unmanaged_users = truth.by_user.iter().filter(|u| u.unmanaged > 0).count();
        assert_eq!(
            (sum("users"), sum("usersWithUnmanaged")),
            (truth.by_user.len() as i64, unmanaged_users as i64),
            "compliance's users"
        );
    }
    assert_eq!(coverage(&compliance).0, retired, "compliance from rollups");
    let overview = report_in(&node, &truth, "overview", &[]).await;
    assert_eq!(overview_of(&overview), truth_overview(&truth.overview), "overview");
    assert_eq!(
        coverage(&overview),
        (retired.clone(), BTreeSet::new()),
        "overview's coverage"
    );
    let denied = report_in(&node, &truth, "denied", &[]).await;
    let (mut denied_count, mut failed_count) = (0, 0);
    for r in rows(&denied) {
        match text(r["outcome"]).as_deref() {
            Some("denied") => denied_count += int(r["count"]),
            _ => failed_count += int(r["count"]),
        }
    }
    assert_eq!(
        (denied_count, failed_count),
        (truth.denied.denied, truth.denied.failed),
        "denied"
    );
    assert_eq!(
        coverage(&denied),
        (retired.clone(), BTreeSet::new()),
        "denied's coverage"
    );

    // By application and by publisher from `daily_suggestions`' group rows.
    let apps = report_in(&node, &truth, "by-application", &[]).await;
    assert_eq!(
        crate::reports::applications_of(&apps),
        crate::reports::truth_applications(&truth, |_| true),
        "by-application"
    );
    assert_eq!(
        coverage(&apps),
        (retired.clone(), BTreeSet::new()),
        "by-application's coverage"
    );
    let publishers = report_in(&node, &truth, "by-publisher", &[]).await;
    assert_eq!(
        crate::reports::publishers_of(&publishers),
        crate::reports::truth_publishers(&truth),
        "by-publisher"
    );
    assert_eq!(coverage(&publishers).0, retired, "by-publisher from rollups");

    // The suggestions read closed days from `daily_suggestions`: the same as before retention.
    let suggested_after = queries::suggest::suggest(&node.warehouse, &suggest_window())
        .await
        .unwrap();
    assert_eq!(suggested_after, suggested_before, "suggestions over retired days");

    // Needing raw rows: what is left, and the days that are not.
    let events = all_events(&node, &truth, "elevations", &[]).await;
    assert_eq!(
        events.len() as u64,
        truth.totals.elevations - retired_events,
        "elevations list"
    );
    let first_page = report_in(&node, &truth, "elevations", &[("limit", "10")]).await;
    assert_eq!(
        coverage(&first_page),
        (BTreeSet::new(), retired.clone()),
        "event list's coverage"
    );
    // A filter the rollup does not hold, and a window cut inside a retired day.
    let filtered = report_in(&node, &truth, "trend", &[("fileName", "nothing.exe")]).await;
    assert_eq!(coverage(&filtered).1, retired, "trend filtered by file name");
    let noon = (midnight(truth.from) + Duration::hours(12)).to_rfc3339();
    let to = midnight(truth.to).to_rfc3339();
    let cut = report(&node, "contoso", "trend", &[("from", &noon), ("to", &to)]).await;
    let (served, missing) = coverage(&cut);
    assert_eq!(
        missing,
        BTreeSet::from([truth.from]),
        "a retired day cut by the window is not served"
    );
    assert_eq!(served.len(), 2);
    assert!(!trend_of(&cut).keys().any(|(d, _)| *d == truth.from.to_string()));

    // A window of retained days only says nothing.
    let recent = report(
        &node,
        "contoso",
        "trend",
        &[("from", &midnight(keep_from).to_rfc3339()), ("to", &to)],
    )
    .await;
    assert!(recent.coverage.is_complete());

    // A late upload cannot reopen a closed day: the event is refused by the tenant's own
    // window, and another maintenance pass leaves the day's rollups as they were.
    let mut late = crate::support::elevation_event("late-1", "unmanagedElevation");
    late["eventDateTime"] = serde_json::json!(format!("{}T12:00:00Z", truth.from));
    let answer = node
        .upload(&crate::support::batch("late-batch", "all", vec![late], vec![]))
        .await;
    assert!(
        answer
            .json
            .to_string()
            .contains("older than the retention window of 3 days"),
        "{}",
        answer.json
    );
    node.land_all().await;
    warehouse::maintenance::scheduled_pass(&node.warehouse, Some(&lookup), today).await;
    let again = report_in(&node, &truth, "trend", &[]).await;
    assert_eq!(
        trend_of(&again),
        truth_trend(&truth, None),
        "trend after a late upload and a pass"
    );

    // The pages say it too: the heatmap needs instants (raw rows), the fleet page's device
    // activity reads the rollups.
    for (page, words) in [
        ("when", "3 days not included"),
        ("fleet", "3 days from the daily rollups"),
        ("reports/by-user", "3 days from the daily rollups"),
    ] {
        let html = reqwest::Client::new()
            .get(format!(
                "{}/{page}?from={}T00:00:00Z&to={}T00:00:00Z",
                node.base, truth.from, truth.to
            ))
            .bearer_auth(&node.admin_key)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains(words), "/{page} lacks {words:?}");
    }

    // Over HTTP: JSON says it in the body, CSV in headers.
    let path = format!("/v1/reports/elevations?from={}&to={}&limit=1", truth.from, truth.to);
    let response = reqwest::Client::new()
        .get(format!("{}{path}", node.base))
        .bearer_auth(&node.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let first = truth.from.to_string();
    let last = (keep_from - Duration::days(1)).to_string();
    assert_eq!(
        response.headers()["elevation-days-unavailable"].to_str().unwrap(),
        format!("{first}/{last}")
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["coverage"],
        serde_json::json!({"fromRollups": [], "unavailable": [{"first": first, "last": last}]})
    );
    let csv = reqwest::Client::new()
        .get(format!(
            "{}/v1/reports/trend?from={}&to={}&format=csv",
            node.base, truth.from, truth.to
        ))
        .bearer_auth(&node.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        csv.headers()["elevation-days-from-rollups"].to_str().unwrap(),
        format!("{first}/{last}")
    );
    assert!(csv.headers().get("elevation-days-unavailable").is_none());
    node.stop().await;
}
