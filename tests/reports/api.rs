//! Reports over real HTTP and the command line: tenant isolation, roles, freshness, JSON and
//! CSV, the Graph profile, `elevation report`.

use super::*;

/// GET on the admin API with a key; returns the status and the body as text.
async fn get(node: &Node, key: Option<&str>, path: &str) -> (u16, String) {
    let mut request = reqwest::Client::new().get(format!("{}{path}", node.base));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn get_json(node: &Node, key: &str, path: &str) -> serde_json::Value {
    let (status, body) = get(node, Some(key), path).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn error_code(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    v["error"]["code"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_sees_only_its_own_tenant_whatever_the_parameters() {
    let mut node = Node::start().await;
    let contoso = land_fleet(&node, &node.agent_key, "contoso", 5, 20, 3).await;
    let fabrikam = land_fleet(&node, &node.other_tenant_key, "fabrikam", 6, 20, 3).await;
    let fabrikam_admin = key_for(&node, "fabrikam", KeyKind::Admin, Some(Role::EndpointPrivilegeReader)).await;
    let window = format!("from={}&to={}", contoso.from, contoso.to);

    for (key, own, other) in [
        (&node.admin_key, &contoso, &fabrikam),
        (&fabrikam_admin, &fabrikam, &contoso),
    ] {
        // Everything the key sees is its own tenant's, to the row.
        let users = get_json(&node, key, &format!("/v1/reports/by-user?{window}")).await;
        let found: BTreeMap<String, u64> = users["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["upn"].as_str().unwrap().to_owned(), r["total"].as_u64().unwrap()))
            .collect();
        let expected: BTreeMap<String, u64> = own.by_user.iter().map(|u| (u.upn.clone(), u.total)).collect();
        assert_eq!(found, expected, "{}", own.tenant);

        // Naming the other tenant's users, devices, files or hashes finds nothing.
        let user = &other.by_user[0].upn;
        let device = &other.by_device[0].device_name;
        let app = &other.by_application[0];
        let filters = [
            format!("upn={user}"),
            format!("deviceName={device}"),
            format!("hash={}", app.hash),
        ];
        for name in queries::ReportName::ALL {
            for filter in &filters {
                if name == queries::ReportName::Diagnostics && !filter.starts_with("deviceName") {
                    continue;
                }
                // Month by month over the whole tenant: it takes no filters.
                if name == queries::ReportName::Compliance {
                    continue;
                }
                let body = get_json(&node, key, &format!("/v1/reports/{}?{window}&{filter}", name.as_str())).await;
                let leaked: Vec<&serde_json::Value> = body["rows"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|r| r.get("tile").is_none() || r["count"].as_u64() != Some(0))
                    .collect();
                assert!(
                    leaked.is_empty(),
                    "{} saw {} {filter}: {leaked:?}",
                    own.tenant,
                    name.as_str()
                );
            }
        }
        // The tenant cannot be chosen by a parameter.
        let (status, body) = get(
            &node,
            Some(key),
            &format!("/v1/reports/by-user?tenant={}", other.tenant),
        )
        .await;
        assert_eq!((status, error_code(&body).as_str()), (400, "invalid_parameter"));
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_need_an_admin_key_whose_role_views_reports() {
    let mut node = Node::start().await;
    land_fleet(&node, &node.agent_key, "contoso", 8, 5, 2).await;
    for role in Role::ALL {
        let key = key_for(&node, "contoso", KeyKind::Admin, Some(role)).await;
        assert_eq!(
            role.allows(control::Permission::ViewReports),
            get(&node, Some(&key), "/v1/reports/overview").await.0 == 200,
            "{role:?}"
        );
    }
    let (status, body) = get(&node, Some(&node.agent_key), "/v1/reports/overview").await;
    assert_eq!((status, error_code(&body).as_str()), (403, "forbidden"), "agent key");
    let (status, body) = get(&node, Some("elv_admin_not-a-key"), "/v1/reports/overview").await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (401, "unauthorized"),
        "unknown key"
    );
    let (status, body) = get(&node, None, "/v1/reports/overview").await;
    assert_eq!((status, error_code(&body).as_str()), (401, "unauthorized"), "no key");
    let admin = node.admin_key.clone();
    for (path, code) in [
        ("/v1/reports/nope", "unknown_report"),
        ("/v1/reports/trend?from=yesterday", "invalid_parameter"),
        ("/v1/reports/trend?from=2026-11-20&to=2026-11-19", "invalid_parameter"),
        ("/v1/reports/trend?elevationType=sudo", "invalid_parameter"),
        ("/v1/reports/elevations?limit=-1", "invalid_parameter"),
        ("/v1/reports/by-device?profile=graph", "invalid_parameter"),
        ("/v1/reports/trend?format=xml", "invalid_parameter"),
        ("/v1/reports/diagnostics?upn=ada@contoso.com", "invalid_parameter"),
    ] {
        let (status, body) = get(&node, Some(&admin), path).await;
        assert_eq!((status, error_code(&body).as_str()), (400, code), "{path}");
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_event_is_in_the_reports_after_landing_and_within_two_seconds_without() {
    let mut node = Node::start().await;
    let admin = node.admin_key.clone();
    let total_of_ada = |body: serde_json::Value| {
        body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["upn"] == "ada@contoso.com")
            .map(|r| r["total"].as_u64().unwrap())
            .unwrap_or(0)
    };
    let path = "/v1/reports/by-user?from=2026-11-20";
    assert_eq!(total_of_ada(get_json(&node, &admin, path).await), 0);
    assert_eq!(
        node.upload(&one_event_batch("b-1", "e-1", "userConfirmedElevation"))
            .await
            .status,
        200
    );
    node.land_all().await;
    assert_eq!(total_of_ada(get_json(&node, &admin, path).await), 1);

    assert_eq!(
        node.upload(&one_event_batch("b-2", "e-2", "unmanagedElevation"))
            .await
            .status,
        200
    );
    let acknowledged = Instant::now();
    while total_of_ada(get_json(&node, &admin, path).await) != 2 {
        assert!(
            acknowledged.elapsed() < Duration::from_secs(2),
            "not in the report 2 s after the ack"
        );
        tokio::task::yield_now().await;
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_json_and_csv_and_the_graph_profile_speaks_intunes_exports() {
    let mut node = Node::start().await;
    let truth = land_fleet(&node, &node.agent_key, "contoso", 9, 20, 3).await;
    let admin = node.admin_key.clone();
    let window = format!("from={}&to={}", truth.from, truth.to);

    // JSON over HTTP is the library's report.
    for name in queries::ReportName::ALL {
        let body = get_json(&node, &admin, &format!("/v1/reports/{}?{window}", name.as_str())).await;
        let direct = report_in(&node, &truth, name.as_str(), &[]).await;
        assert_eq!(
            body,
            queries::render::to_json(&direct, queries::Profile::Native).unwrap(),
            "{}",
            name.as_str()
        );
        assert_eq!(body["report"], name.as_str());
        assert_eq!(body["from"], format!("{}T00:00:00Z", truth.from));
    }

    let csv = |text: &str| -> (Vec<String>, Vec<Vec<String>>) {
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let headers = reader.headers().unwrap().iter().map(str::to_owned).collect();
        let rows = reader
            .records()
            .map(|r| r.unwrap().iter().map(str::to_owned).collect())
            .collect();
        (headers, rows)
    };
    let exports: [(&str, &str); 6] = [
        (
            "elevations",
            "Id,DeviceId,DeviceName,EventDateTime,ElevationType,FilePath,Upn,UserType,ProductName,CompanyName,\
             FileVersion,Justification,Hash,InternalName,FileDescription,Result,ProcessType,RuleId,\
             ParentProcessName,PolicyId,PolicyName,IsSystemInitiated",
        ),
        (
            "by-application",
            "CompanyName,ElevationType,FileVersion,Hash,InternalName,ElevationCount,FileName,IsBackgroundProcess",
        ),
        ("by-publisher", "CompanyName,ElevationType,ElevationCount"),
        ("by-user", "Upn,ManagedCount,UnmanagedCount,TotalCount"),
        (
            "denied",
            "UserName,DeviceId,DeviceName,FileName,FileProductName,FileDescription,FileInternalName,FileVersion,\
             HashValue,Publisher,ElevationType,MonthElevationCount",
        ),
        ("trend", "DateCreated,ElevationType,DailyElevationCount"),
    ];
    let pascal: BTreeSet<&str> = warehouse::ElevationType::ALL
        .iter()
        .map(|t| t.graph_export_name())
        .collect();
    for (name, headers) in exports {
        let (status, body) = get(
            &node,
            Some(&admin),
            &format!("/v1/reports/{name}?{window}&format=csv&profile=graph&limit=100000"),
        )
        .await;
        assert_eq!(status, 200, "{name}: {body}");
        let (found, rows) = csv(&body);
        assert_eq!(found.join(","), headers, "{name}");
        assert!(!rows.is_empty(), "{name}: no rows");
        let at = |h: &str| found.iter().position(|x| x == h).unwrap();
        if found.iter().any(|h| h == "ElevationType") {
            for row in &rows {
                assert!(pascal.contains(row[at("ElevationType")].as_str()), "{name}: {row:?}");
            }
        }
        if name == "elevations" {
            assert_eq!(rows.len() as u64, truth.totals.elevations);
            for row in &rows {
                let time = &row[at("EventDateTime")];
                assert!(
                    chrono::NaiveDateTime::parse_from_str(time, "%Y-%m-%d %H:%M:%S%.f").is_ok() && time.len() == 27,
                    "EventDateTime {time}"
                );
                assert!(["True", "False"].contains(&row[at("IsSystemInitiated")].as_str()));
                assert!(["Parent", "Child", "Undefined"].contains(&row[at("ProcessType")].as_str()));
                if row[at("ElevationType")] == "UnmanagedElevation" {
                    assert_eq!(
                        (row[at("RuleId")].as_str(), row[at("PolicyId")].as_str()),
                        ("<Null>", "<Null>")
                    );
                }
            }
        }
        if name == "by-user" {
            let found: BTreeMap<String, Vec<u64>> = rows
                .iter()
                .map(|r| (r[0].clone(), r[1..].iter().map(|n| n.parse().unwrap()).collect()))
                .collect();
            let expected: BTreeMap<String, Vec<u64>> = truth
                .by_user
                .iter()
                .map(|u| (u.upn.clone(), vec![u.managed, u.unmanaged, u.total]))
                .collect();
            assert_eq!(found, expected);
        }
    }
    // Native CSV: camelCase headers, one row per by-device row of the truth.
    let (status, body) = get(
        &node,
        Some(&admin),
        &format!("/v1/reports/by-device?{window}&format=csv"),
    )
    .await;
    assert_eq!(status, 200);
    let (headers, rows) = csv(&body);
    assert_eq!(headers.join(","), "deviceName,managed,unmanaged,total");
    assert_eq!(rows.len(), truth.by_device.len());
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elevation_report_on_the_command_line_reads_the_warehouse() {
    let mut node = Node::start().await;
    let truth = land_fleet(&node, &node.agent_key, "contoso", 12, 15, 2).await;
    node.stop().await;
    let data = node.dir.path().to_str().unwrap().to_owned();
    let from = truth.from.to_string();
    let to = truth.to.to_string();
    let base = [
        "--data-dir",
        data.as_str(),
        "--tenant",
        "contoso",
        "--from",
        from.as_str(),
        "--to",
        to.as_str(),
    ];
    let run = |extra: &[&str]| {
        let mut args = vec!["report"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&base);
        stdout_of(&elevation(&args, node.dir.path()))
    };
    let json: serde_json::Value = serde_json::from_str(&run(&["by-user", "--format", "json"])).unwrap();
    let found: BTreeMap<String, u64> = json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["upn"].as_str().unwrap().to_owned(), r["total"].as_u64().unwrap()))
        .collect();
    let expected: BTreeMap<String, u64> = truth.by_user.iter().map(|u| (u.upn.clone(), u.total)).collect();
    assert_eq!(found, expected);

    let table = run(&["overview"]);
    assert!(table.contains("usersOnlyManaged"), "{table}");
    assert!(
        table.contains(&format!(" {} ", truth.overview.users_only_managed)),
        "{table}"
    );
    let csv = run(&["trend", "--format", "csv", "--profile", "graph"]);
    assert_eq!(
        csv.lines().next(),
        Some("DateCreated,ElevationType,DailyElevationCount")
    );
    let days: u64 = csv
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(days, truth.totals.elevations);

    let output = elevation(&["report", "nope", "--data-dir", &data], node.dir.path());
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("by-application"));
}
