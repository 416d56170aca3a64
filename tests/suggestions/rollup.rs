//! Suggestions from `daily_suggestions` (whole days) with the raw rows of the other days equal
//! the raw rows' suggestions.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suggestions_from_daily_suggestions_are_the_raw_rows_suggestions() {
    let mut node = Node::start().await;
    let fleet = land_fleet(&node, &node.agent_key.clone(), "contoso", 17, 120, 10).await;
    let imported = import_policies(&node, "contoso", &fleet.world).await;
    node.warehouse
        .compact(warehouse::Table::Elevations, &|_, _| {})
        .await
        .unwrap();
    let (from, to) = (midnight(fleet.truth.from), midnight(fleet.truth.to));
    let hours = chrono::Duration::hours;
    let request = |from, to, file: Option<&str>| {
        let mut request = SuggestRequest::new("contoso", from, to);
        request.imported = imported.clone();
        request.file = file.map(str::to_owned);
        request
    };
    let suggest = |request: SuggestRequest| {
        let warehouse = &node.warehouse;
        async move { queries::suggest::suggest(warehouse, &request).await.unwrap() }
    };
    let whole = suggest(request(from, to, None)).await;
    let file = whole
        .iter()
        .find(|s| s.kind == SuggestionKind::NewRule)
        .and_then(|s| s.file_name.clone())
        .expect("a new rule");
    // Whole days; partial first and last days (raw rows around the rollup's days); one file.
    let cases = [
        request(from, to, None),
        request(from + hours(7), to - hours(5), None),
        request(from, to, Some(&file)),
        request(from + hours(30), to - hours(29), Some(&file)),
    ];
    assert_eq!(node.sql("SELECT * FROM daily_suggestions").await.len(), 0);
    let mut raw = Vec::new();
    for case in &cases {
        raw.push(suggest(case.clone()).await);
    }
    assert_eq!(raw[0], whole);
    assert!(!raw[2].is_empty(), "the file's new rule");

    let report = node.warehouse.refresh_rollups().await.unwrap();
    assert_eq!(report.days_refreshed, 10);
    for (case, expected) in cases.iter().zip(&raw) {
        assert_eq!(
            &suggest(case.clone()).await,
            expected,
            "{} to {}, file {:?}: from the rollup as from the raw rows",
            case.from,
            case.to,
            case.file
        );
    }

    // The rollup is what answers: a counterfeit group shows while its day's files are the
    // ones it was computed from, and is gone once a late upload changes that day.
    let day = fleet.truth.from + chrono::Duration::days(3);
    let fingerprint = node.recorded_fingerprint("daily_suggestions", day).await;
    let noon = midnight(day).timestamp_micros() + 12 * 3_600_000_000;
    let totals = warehouse::suggestion_days::GroupTotals {
        elevations: 1000,
        first: noon,
        last: noon,
        maxima: [None, None, None, None],
        certificate_low: None,
        certificate_high: None,
        signed: 0,
        justification_low: None,
        justification_high: None,
        system_initiated: None,
        users: (0..5).collect(),
        devices: (0..5).collect(),
        device_names: (0..5).collect(),
        folders: (0..1).collect(),
    };
    let key = warehouse::suggestion_days::GroupKey {
        file_name: "counterfeit.exe".into(),
        company_name: None,
        hash: "C0FFEE".into(),
        elevation_type: "unmanagedElevation".into(),
        process_type: "parent".into(),
        parent_process: None,
        rule_id: None,
        policy_name: None,
        failed: false,
    };
    let row = warehouse::suggestion_days::day_batch(
        "contoso",
        day,
        &[(key, totals)],
        &warehouse::suggestion_days::Unmanaged::default(),
        &fingerprint,
    )
    .unwrap();
    node.warehouse
        .append(warehouse::Table::DailySuggestions, vec![row], None)
        .await
        .unwrap();
    let counterfeit = |found: &[Suggestion]| found.iter().any(|s| s.file_name.as_deref() == Some("counterfeit.exe"));
    assert!(
        counterfeit(&suggest(request(from, to, None)).await),
        "read from the rollup"
    );
    let mut late = crate::support::elevation_event("late-1", "unmanagedElevation");
    late["eventDateTime"] = serde_json::json!(format!("{day}T11:00:00Z"));
    let late = crate::support::batch("b-late", "all", vec![late], vec![]);
    assert_eq!(node.upload(&late).await.status, 200);
    node.land_all().await;
    let mixed = suggest(request(from, to, None)).await;
    assert!(!counterfeit(&mixed), "a changed day is read raw");
    assert_eq!(node.warehouse.refresh_rollups().await.unwrap().days_refreshed, 1);
    assert_eq!(
        suggest(request(from, to, None)).await,
        mixed,
        "one day raw and the rest rolled up, or every day rolled up: one answer"
    );
    node.stop().await;
}
