//! Rollups answer whole days only while the day's files are the ones they counted: reports
//! over rollups and raw rows equal DataFusion SQL over the raw rows alone.

use super::*;

/// Trend, per-user and per-device counts.
type Figures = (
    BTreeMap<(String, String), u64>,
    BTreeMap<String, (u64, u64, u64)>,
    BTreeMap<String, (u64, u64, u64)>,
);

/// `(trend, by-user, by-device)` as the raw rows give them, counted by DataFusion SQL straight
/// over `elevations` (never through a rollup).
async fn raw_figures(node: &Node, from: DateTime<Utc>, to: DateTime<Utc>) -> Figures {
    let window = format!(
        r#"tenant = 'contoso' AND "eventDateTime" >= TIMESTAMP '{}' AND "eventDateTime" < TIMESTAMP '{}'"#,
        from.naive_utc(),
        to.naive_utc()
    );
    let trend = node
        .sql(&format!(
            r#"SELECT CAST("eventDate" AS VARCHAR) AS d, "elevationType" AS t, COUNT(*) AS n
               FROM elevations WHERE {window} GROUP BY 1, 2"#
        ))
        .await
        .into_iter()
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap().to_owned();
            ((text("d"), text("t")), r["n"].as_u64().unwrap())
        })
        .collect();
    let split = |key: &str| {
        let sql = format!(
            r#"SELECT "{key}" AS u, SUM(CASE WHEN "elevationType" <> 'unmanagedElevation' THEN 1 ELSE 0 END) AS m,
                      SUM(CASE WHEN "elevationType" = 'unmanagedElevation' THEN 1 ELSE 0 END) AS x, COUNT(*) AS n
               FROM elevations WHERE {window} GROUP BY 1"#
        );
        async move {
            node.sql(&sql)
                .await
                .into_iter()
                .map(|r| {
                    let n = |k: &str| r[k].as_u64().unwrap();
                    (r["u"].as_str().unwrap().to_owned(), (n("m"), n("x"), n("n")))
                })
                .collect()
        }
    };
    (trend, split("upn").await, split("deviceName").await)
}

/// Appends a counterfeit rollup row for `day` that vouches for the day's current files;
/// `name` is the user or device it counts (the elevation type, for `daily_user_sets`).
async fn counterfeit(node: &Node, table: warehouse::Table, day: NaiveDate, name: &str) {
    use datafusion::arrow::array::{ArrayRef, Date32Array, Int64Array, StringArray};
    // Every rollup of a day records the same fingerprint; `daily_counts` has a row every day.
    // `daily_devices` records it with its format (`@2`), so it is read from there.
    let vouching = match table {
        warehouse::Table::DailyDevices => "daily_devices",
        _ => "daily_counts",
    };
    let fingerprint = node.recorded_fingerprint(vouching, day).await;
    if table == warehouse::Table::DailyUserSets {
        // A set of one user whom no one else has: the number 999,999.
        let mut set = warehouse::user_sets::UserSet {
            elevations: 1000,
            ..Default::default()
        };
        set.users.insert(999_999);
        let sets = BTreeMap::from([((name.to_owned(), None), set)]);
        let row = warehouse::user_sets::sets_batch("contoso", day, &sets, &fingerprint).unwrap();
        node.warehouse.append(table, vec![row], None).await.unwrap();
        return;
    }
    let text = |v: &str| -> ArrayRef { std::sync::Arc::new(StringArray::from(vec![v])) };
    let int = |v: i64| -> ArrayRef { std::sync::Arc::new(Int64Array::from(vec![v])) };
    let date: ArrayRef = std::sync::Arc::new(Date32Array::from(vec![warehouse::rows::date32_of_date(day)]));
    let noon: ArrayRef = std::sync::Arc::new(
        datafusion::arrow::array::TimestampMicrosecondArray::from(vec![
            day.and_hms_opt(12, 0, 0).unwrap().and_utc().timestamp_micros(),
        ])
        .with_timezone("UTC"),
    );
    let columns = match table {
        warehouse::Table::DailyDenied => vec![
            text("contoso"),
            date,
            text(name),
            text("COUNTERFEIT-ID"),
            text("COUNTERFEIT-PC"),
            text("C0FFEE"),
            text("deniedElevation"),
            text("counterfeit.exe"),
            text("Counterfeit"),
            text("Counterfeit"),
            text("counterfeit"),
            text("1.0"),
            text("Counterfeit Ltd"),
            int(1000),
            noon,
            text(&fingerprint),
        ],
        warehouse::Table::DailyDevices => vec![
            text("contoso"),
            date,
            text(name),
            text("all"),
            text("unmanagedElevation"),
            int(1000),
            noon,
            text(&fingerprint),
            text("COUNTERFEIT-ID"),
        ],
        warehouse::Table::DailyCounts => vec![
            text("contoso"),
            date,
            text("deniedElevation"),
            int(1000),
            int(0),
            text(&fingerprint),
        ],
        _ => vec![
            text("contoso"),
            date,
            text(name),
            text("unmanagedElevation"),
            int(1000),
            text(&fingerprint),
        ],
    };
    let row = datafusion::arrow::array::RecordBatch::try_new(table.schema(), columns).unwrap();
    node.warehouse.append(table, vec![row], None).await.unwrap();
}

/// The Overview's readiness tiles as they follow from per-user (managed, unmanaged, total).
fn tiles_from(users: &BTreeMap<String, (u64, u64, u64)>) -> BTreeMap<String, u64> {
    let count = |f: fn(u64, u64) -> bool| users.values().filter(|(m, u, _)| f(*m, *u)).count() as u64;
    BTreeMap::from([
        ("usersOnlyUnmanaged".to_owned(), count(|m, u| m == 0 && u > 0)),
        ("usersBoth".to_owned(), count(|m, u| m > 0 && u > 0)),
        ("usersOnlyManaged".to_owned(), count(|m, u| m > 0 && u == 0)),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_answer_whole_days_only_while_the_days_files_are_the_ones_they_counted() {
    let mut node = Node::start().await;
    let truth = land_fleet(&node, &node.agent_key, "contoso", 37, 30, 6).await;
    let figures = |params: Vec<(String, String)>| {
        let node = &node;
        async move {
            let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let users = split_of(&report(node, "contoso", "by-user", &params).await, "upn");
            let devices = split_of(&report(node, "contoso", "by-device", &params).await, "deviceName");
            // The Overview's tiles come from the same per-user counts.
            let tiles = overview_of(&report(node, "contoso", "overview", &params).await).0;
            assert_eq!(tiles, tiles_from(&users), "overview tiles for {params:?}");
            (
                trend_of(&report(node, "contoso", "trend", &params).await),
                users,
                devices,
            )
        }
    };
    // Diagnostics' devices with their level and last event (every device is "silent" with
    // silentDays=0), and devices per level.
    let activity = || {
        let node = &node;
        let params = window(&truth);
        async move {
            let mut params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            params.push(("silentDays", "0"));
            let diagnostics = report(node, "contoso", "diagnostics", &params).await;
            rows(&diagnostics)
                .iter()
                .filter(|r| matches!(text(r["kind"]).as_deref(), Some("silentDevice" | "reportingDevices")))
                .map(|r| {
                    let at = match r["lastSeen"] {
                        Cell::Time(at) => Some(*at),
                        _ => None,
                    };
                    (
                        text(r["kind"]),
                        text(r["deviceName"]),
                        text(r["level"]),
                        at,
                        r["count"].as_int(),
                    )
                })
                .collect::<BTreeSet<_>>()
        }
    };
    // The Overview with every file of its lists.
    let overview = |params: Vec<(String, String)>| {
        let node = &node;
        async move {
            let mut params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            params.push(("limit", "100000"));
            overview_of(&report(node, "contoso", "overview", &params).await)
        }
    };
    let whole = || window(&truth).to_vec();
    // The compliance report's figures over the window, every month added up: users, with
    // unmanaged elevations, elevations, managed ones, devices, at `all`.
    let compliance = |params: Vec<(String, String)>| {
        let node = &node;
        async move {
            let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let months = report(node, "contoso", "compliance", &params).await;
            let mut sums = [0i64; 6];
            for month in rows(&months) {
                for (sum, column) in sums.iter_mut().zip(crate::support::COMPLIANCE_COUNTS) {
                    *sum += month[column].as_int().unwrap();
                }
            }
            sums
        }
    };
    let (start, end) = (midnight(truth.from), midnight(truth.to));
    // Windows that start and end inside a day: the partial days come from raw rows.
    let (from, to) = (start + chrono::Duration::hours(13), end - chrono::Duration::hours(30));
    let partial = || {
        vec![
            ("from".to_owned(), from.to_rfc3339()),
            ("to".to_owned(), to.to_rfc3339()),
        ]
    };
    let overview_before = overview(whole()).await;
    let compliance_before = compliance(whole()).await;
    let compliance_partial_before = compliance(partial()).await;
    assert_eq!(
        overview_before.0,
        truth_overview(&truth.overview).0,
        "the Overview's tiles before any rollup"
    );
    let partial_overview_before = overview(partial()).await;
    let expected_trend = truth_trend(&truth, None);
    let before = figures(whole()).await;
    let activity_before = activity().await;
    assert!(activity_before.len() > 6, "{activity_before:?}");
    assert_eq!(before.0, expected_trend, "trend before any rollup");
    assert_eq!(before, raw_figures(&node, start, end).await, "before any rollup");

    let refreshed = node.warehouse.refresh_rollups().await.unwrap();
    assert!(refreshed.days_refreshed >= 5, "{refreshed:?}");
    assert_eq!(figures(whole()).await, before, "from rollups");
    assert_eq!(activity().await, activity_before, "diagnostics from rollups");
    assert_eq!(compliance(whole()).await, compliance_before, "compliance from rollups");
    assert_eq!(
        compliance(partial()).await,
        compliance_partial_before,
        "compliance from rollups and partial days"
    );
    assert_eq!(overview(whole()).await, overview_before, "the Overview from rollups");
    assert_eq!(
        overview(partial()).await,
        partial_overview_before,
        "the Overview from rollups and partial days"
    );
    assert_eq!(
        figures(partial()).await,
        raw_figures(&node, from, to).await,
        "partial days"
    );
    // Filters the rollup holds are answered from it; the busiest user's own row is the same.
    let busiest = before.1.iter().max_by_key(|(_, n)| n.2).unwrap();
    let mut only = whole();
    only.push(("upn".to_owned(), busiest.0.clone()));
    assert_eq!(figures(only).await.1, BTreeMap::from([(busiest.0.clone(), *busiest.1)]));
    let busiest = before.2.iter().max_by_key(|(_, n)| n.2).unwrap();
    let mut only = whole();
    only.push(("deviceName".to_owned(), busiest.0.clone()));
    assert_eq!(figures(only).await.2, BTreeMap::from([(busiest.0.clone(), *busiest.1)]));

    // Prove the rollups are what answers: counterfeit rows that vouch for the day's current
    // files show up in the answers...
    let day = truth.per_day[1].date;
    counterfeit(&node, warehouse::Table::DailyCounts, day, "").await;
    counterfeit(&node, warehouse::Table::DailyUsers, day, "counterfeit@contoso.com").await;
    counterfeit(&node, warehouse::Table::DailyDevices, day, "COUNTERFEIT-PC").await;
    counterfeit(&node, warehouse::Table::DailyUserSets, day, "unmanagedElevation").await;
    counterfeit(&node, warehouse::Table::DailyDenied, day, "counterfeit@contoso.com").await;
    // The counterfeit denial, as the `denied` report shows it (if it does).
    let counterfeit_denial = || {
        let node = &node;
        let params = window(&truth);
        async move {
            let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let denied = report(node, "contoso", "denied", &params).await;
            rows(&denied)
                .iter()
                .find(|r| text(r["upn"]).as_deref() == Some("counterfeit@contoso.com"))
                .map(|r| (text(r["outcome"]), text(r["fileName"]), int(r["count"])))
        }
    };
    assert_eq!(
        counterfeit_denial().await,
        Some((Some("denied".to_owned()), Some("counterfeit.exe".to_owned()), 1000)),
        "denied reads daily_denied"
    );
    let denied = (day.to_string(), "deniedElevation".to_owned());
    let (trend, users, devices) = figures(whole()).await;
    assert_eq!(trend[&denied], before.0.get(&denied).copied().unwrap_or(0) + 1000);
    assert_eq!(users["counterfeit@contoso.com"], (0, 1000, 1000));
    assert_eq!(devices["COUNTERFEIT-PC"], (0, 1000, 1000));
    // A user with 1,000 unmanaged elevations, and a device at `all`.
    let [u, uu, e, m, d, da] = compliance_before;
    assert_eq!(
        compliance(whole()).await,
        [u + 1, uu + 1, e + 1000, m, d + 1, da + 1],
        "compliance reads daily_users and daily_devices"
    );
    let counterfeit_seen = day.and_hms_opt(12, 0, 0).unwrap().and_utc();
    assert!(
        activity().await.contains(&(
            Some("silentDevice".to_owned()),
            Some("COUNTERFEIT-PC".to_owned()),
            Some("all".to_owned()),
            Some(counterfeit_seen),
            None
        )),
        "diagnostics read daily_devices"
    );
    let tiles = overview(whole()).await.0;
    assert_eq!(
        tiles["usersOnlyUnmanaged"],
        overview_before.0["usersOnlyUnmanaged"] + 1,
        "the Overview reads daily_user_sets"
    );

    // ...until the day's files change: a late upload for that day is counted from raw rows.
    let mut late = elevation_event("late-1", "deniedElevation");
    late["eventDateTime"] = serde_json::json!(format!("{day}T10:00:00Z"));
    let answer = node.upload(&batch("b-late", "all", vec![late], vec![])).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    node.land_all().await;
    let after_late = raw_figures(&node, start, end).await;
    assert_eq!(after_late.0[&denied], before.0.get(&denied).copied().unwrap_or(0) + 1);
    assert_eq!(
        figures(whole()).await,
        after_late,
        "a late arrival makes the day's rollups stale"
    );
    let activity_after_late = activity().await;
    assert!(
        !activity_after_late
            .iter()
            .any(|row| row.1.as_deref() == Some("COUNTERFEIT-PC")),
        "a late arrival makes the day's daily_devices stale"
    );
    // The late denial is ada's on LAPTOP-0001, at `all`: counted once, and the counterfeits gone.
    let new_user = i64::from(!before.1.contains_key("ada@contoso.com"));
    let new_device = i64::from(!before.2.contains_key("LAPTOP-0001"));
    assert_eq!(
        compliance(whole()).await,
        [u + new_user, uu, e + 1, m + 1, d + new_device, da + new_device],
        "a late arrival makes the day's daily_users and daily_devices stale"
    );
    let overview_after_late = overview(whole()).await;
    assert_eq!(
        overview_after_late.0,
        tiles_from(&after_late.1),
        "a late arrival makes the day's daily_user_sets stale"
    );
    assert_eq!(
        counterfeit_denial().await,
        None,
        "a late arrival makes the day's daily_denied stale"
    );

    // Refreshing recomputes that day (the counterfeits go); compaction changes every day's
    // files and the answers stay the same.
    assert_eq!(node.warehouse.refresh_rollups().await.unwrap().days_refreshed, 1);
    assert_eq!(figures(whole()).await, after_late, "after the refresh");
    assert_eq!(activity().await, activity_after_late, "diagnostics after the refresh");
    assert_eq!(
        overview(whole()).await,
        overview_after_late,
        "the Overview after the refresh"
    );
    node.warehouse
        .compact(warehouse::Table::Elevations, &|_, _| {})
        .await
        .unwrap();
    assert_eq!(figures(whole()).await, after_late, "after compaction");
    assert_eq!(activity().await, activity_after_late, "diagnostics after compaction");
    assert_eq!(
        overview(whole()).await,
        overview_after_late,
        "the Overview after compaction"
    );
    node.stop().await;
}
