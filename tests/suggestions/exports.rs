//! Exports (snapshotted; the Intune policy imports back to the same rules), the admin API's
//! suggestions and exports by tenant and role with the suggestions page and an elevation's page
//! naming the same proposals, and the command line's import, suggest and export.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_are_snapshotted_and_the_intune_policy_imports_back_to_the_same_rules() {
    let mut node = Node::start().await;
    let fleet = land_fleet(&node, &node.agent_key.clone(), "contoso", 7, 150, 14).await;
    let imported = import_policies(&node, "contoso", &fleet.world).await;
    let found = suggest_all(&node, "contoso", &fleet, imported).await;
    let (from, to) = (midnight(fleet.truth.from), midnight(fleet.truth.to));
    let t = Thresholds::default();
    let with_rules: Vec<Suggestion> = found.iter().filter(|s| s.proposed_rule.is_some()).cloned().collect();
    assert!(with_rules.len() >= 4, "{with_rules:?}");

    // Intune: the exported policy reads back as exactly the proposed rules.
    let intune = queries::export::export(ExportFormat::Intune, &found, &t, from, to).unwrap();
    let json: serde_json::Value = serde_json::from_str(&intune).unwrap();
    let policy = RulesPolicy::from_intune(&json).unwrap();
    assert_eq!(policy, queries::export::proposed_policy(&found, from, to));
    assert_eq!(policy.rules.len(), with_rules.len());
    for (rule, s) in policy.rules.iter().zip(&with_rules) {
        let proposed = s.proposed_rule.as_ref().unwrap();
        assert_eq!(
            (&rule.file_name, rule.rule_type, &rule.file_hash),
            (&proposed.file_name, proposed.rule_type, &proposed.file_hash)
        );
        assert!(
            rule.description.as_ref().unwrap().contains(&s.id),
            "each rule names its suggestion"
        );
    }
    let settings = &json["settings"][0]["settingInstance"];
    assert_eq!(
        json["templateReference"]["templateId"],
        "cff02aad-51b1-498d-83ad-81161a393f56_1"
    );
    assert_eq!(json["technologies"], "endpointPrivilegeManagement");
    let rules = settings["groupSettingCollectionValue"].as_array().unwrap();
    assert!(!rules[0]["children"][0]["settingInstanceTemplateReference"].is_null());
    assert!(
        rules[1..]
            .iter()
            .all(|r| r["children"][0]["settingInstanceTemplateReference"].is_null())
    );

    // EPManager: its exact columns, one row per proposed rule, its spellings.
    let csv_text = queries::export::export(ExportFormat::EpmanagerCsv, &found, &t, from, to).unwrap();
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        EPMANAGER_COLUMNS.to_vec()
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), with_rules.len());
    // As EPManager's report writes it (tests/fixtures/epmanager/report-shape.csv): the same
    // header line, every value quoted, CRLF, rows by elevation count.
    let shape = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/epmanager/report-shape.csv"),
    )
    .unwrap();
    assert_eq!(csv_text.split("\r\n").next(), shape.split("\r\n").next());
    assert!(csv_text.ends_with("\r\n") && !csv_text.replace("\r\n", "").contains('\n'));
    for line in csv_text.split_terminator("\r\n") {
        assert!(line.starts_with('"') && line.ends_with('"'), "{line}");
    }
    let mut by_count = with_rules.clone();
    by_count.sort_by_key(|s| std::cmp::Reverse(s.evidence.events));
    for (row, s) in rows.iter().zip(&by_count) {
        assert_eq!(row[0].parse::<u64>().unwrap(), s.evidence.events);
        let rule = s.proposed_rule.as_ref().unwrap();
        assert_eq!(&row[4], rule.file_name.as_str());
        // FilePath pasted into a JSON text, as EPManager's import does, gives the rule's folder.
        let pasted: String = serde_json::from_str(&format!("\"{}\"", &row[7])).unwrap();
        assert_eq!(pasted, rule.file_path.clone().unwrap_or_default());
        // Users and Devices: the names, space-separated.
        let users: BTreeSet<&str> = row[9].split(' ').collect();
        assert_eq!(users.len() as u64, s.evidence.users, "{}", &row[9]);
        assert!(
            users.iter().all(|u| fleet.events.iter().any(|e| e.upn == *u)),
            "{}",
            &row[9]
        );
        let devices: BTreeSet<&str> = row[10].split(' ').collect();
        assert_eq!(devices.len() as u64, s.evidence.devices, "{}", &row[10]);
        assert_eq!(&row[13], "AssignmentGroupName");
        assert!(
            [
                "Automatic",
                "UserAuthentication",
                "UserJustification",
                "SupportApproved"
            ]
            .contains(&&row[11])
        );
        assert!(["AllowAll", "RequireRule", "DenyAll", "NotConfigured"].contains(&&row[12]));
    }

    // Our JSON carries every suggestion with its evidence, and the policy.
    let ours: serde_json::Value =
        serde_json::from_str(&queries::export::export(ExportFormat::Json, &found, &t, from, to).unwrap()).unwrap();
    assert_eq!(ours["suggestions"].as_array().unwrap().len(), found.len());
    assert_eq!(ours["policy"]["rules"].as_array().unwrap().len(), with_rules.len());
    assert_eq!(ours["thresholds"]["minEvents"], 10);

    // Snapshots of the three formats for the top suggestions of a fixed fleet.
    let top: Vec<Suggestion> = with_rules.iter().take(3).cloned().collect();
    insta::assert_snapshot!(
        "intune_policy",
        queries::export::export(ExportFormat::Intune, &top, &t, from, to).unwrap()
    );
    insta::assert_snapshot!(
        "epmanager_csv",
        queries::export::export(ExportFormat::EpmanagerCsv, &top, &t, from, to).unwrap()
    );
    insta::assert_snapshot!(
        "recommendations_json",
        queries::export::export(ExportFormat::Json, &top[..1], &t, from, to).unwrap()
    );

    // Importing the exported policy makes its files covered: their new-rule suggestions go.
    node.control
        .import_policy(&crate::support::test_actor(), "contoso", &policy)
        .await
        .unwrap();
    let after = suggest_all(
        &node,
        "contoso",
        &fleet,
        node.control.imported_policies("contoso").await.unwrap(),
    )
    .await;
    for s in &with_rules {
        if matches!(
            s.kind,
            SuggestionKind::NewRule | SuggestionKind::SupportApprovedToUserConfirmed
        ) {
            assert!(!after.iter().any(|a| a.id == s.id), "{} is covered once imported", s.id);
        }
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_serves_suggestions_and_exports_to_the_keys_tenant_and_role_only() {
    let mut node = Node::start().await;
    let fleet = land_fleet(&node, &node.agent_key.clone(), "contoso", 13, 100, 14).await;
    import_policies(&node, "contoso", &fleet.world).await;
    let window = format!("from={}&to={}", fleet.truth.from, fleet.truth.to);
    let expected = suggest_all(
        &node,
        "contoso",
        &fleet,
        node.control.imported_policies("contoso").await.unwrap(),
    )
    .await;

    let (status, _, body) = get(&node, Some(&node.admin_key), &format!("/v1/suggestions?{window}")).await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let served: Vec<Suggestion> = serde_json::from_value(json["suggestions"].clone()).unwrap();
    assert_eq!(served, expected);
    check_pages(&node, &fleet, &window, &expected).await;

    let (status, content_type, body) = get(
        &node,
        Some(&node.admin_key),
        &format!("/v1/suggestions?{window}&format=csv&limit=5"),
    )
    .await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "text/csv; charset=utf-8"),
        "{body}"
    );
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let ids: Vec<String> = reader.records().map(|r| r.unwrap()[1].to_owned()).collect();
    assert_eq!(ids, expected.iter().take(5).map(|s| s.id.clone()).collect::<Vec<_>>());

    let (status, _, body) = get(
        &node,
        Some(&node.admin_key),
        &format!("/v1/exports/rules?{window}&format=intune"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let policy = RulesPolicy::from_intune(&serde_json::from_str(&body).unwrap()).unwrap();
    assert_eq!(
        policy.rules.len(),
        expected.iter().filter(|s| s.proposed_rule.is_some()).count()
    );
    let (status, content_type, body) = get(
        &node,
        Some(&node.admin_key),
        &format!("/v1/exports/rules?{window}&format=epmanager-csv"),
    )
    .await;
    assert_eq!((status, content_type.as_str()), (200, "text/csv; charset=utf-8"));
    assert!(
        body.starts_with("\"ElevationCount\",\"Product\",\"Description\",\"Publisher\",\"FileName\""),
        "{body}"
    );

    // Another tenant's admin sees none of contoso's suggestions, whatever it asks.
    let fabrikam_admin = crate::support::create_key(
        &node.control,
        "fabrikam",
        KeyKind::Admin,
        Some(Role::EndpointPrivilegeReader),
    )
    .await
    .0;
    let (status, _, body) = get(
        &node,
        Some(&fabrikam_admin),
        &format!("/v1/suggestions?{window}&tenant=contoso"),
    )
    .await;
    assert_eq!(status, 400, "unknown parameters are refused: {body}");
    let (status, _, body) = get(&node, Some(&fabrikam_admin), &format!("/v1/suggestions?{window}")).await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        json["suggestions"],
        serde_json::json!([]),
        "fabrikam has no elevations: {body}"
    );

    // Keys and parameters.
    for (key, path, status) in [
        (None, format!("/v1/suggestions?{window}"), 401),
        (Some(node.agent_key.clone()), format!("/v1/suggestions?{window}"), 403),
        (Some(node.agent_key.clone()), format!("/v1/exports/rules?{window}"), 403),
        (
            Some(node.admin_key.clone()),
            format!("/v1/exports/rules?{window}&format=xml"),
            400,
        ),
        (
            Some(node.admin_key.clone()),
            format!("/v1/suggestions?{window}&format=table"),
            400,
        ),
        (
            Some(node.admin_key.clone()),
            format!("/v1/suggestions?{window}&minUsers=-1"),
            400,
        ),
    ] {
        let (got, _, body) = get(&node, key.as_deref(), &path).await;
        assert_eq!(got, status, "{path}: {body}");
        let error: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(
            error["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_imports_policies_suggests_and_exports() {
    let mut node = Node::start().await;
    let fleet = land_fleet(&node, &node.agent_key.clone(), "contoso", 7, 80, 14).await;
    node.stop().await;
    let dir = node.dir.path();
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    let mut files = Vec::new();
    for (i, policy) in fleet.world.rules_policies().iter().enumerate() {
        let path = policies.join(format!("{i}.json"));
        std::fs::write(&path, serde_json::to_vec_pretty(&policy.to_intune()).unwrap()).unwrap();
        files.push(path.to_string_lossy().into_owned());
    }
    let data_dir = dir.to_string_lossy().into_owned();
    let mut args = vec!["--data-dir", &data_dir, "rules", "import"];
    args.extend(files.iter().map(String::as_str));
    let output = elevation(&args, dir);
    let text = stdout_of(&output);
    assert_eq!(text.matches("imported policy").count(), files.len(), "{text}");
    // Importing again replaces, never duplicates.
    let text = stdout_of(&elevation(&args, dir));
    assert_eq!(text.matches("replaced policy").count(), files.len(), "{text}");
    let listed = stdout_of(&elevation(&["--data-dir", &data_dir, "rules", "list"], dir));
    assert!(listed.contains("erpclient.exe"), "{listed}");

    let (from, to) = (fleet.truth.from.to_string(), fleet.truth.to.to_string());
    let window = ["--from", from.as_str(), "--to", to.as_str()];
    let mut suggest = vec!["--data-dir", &data_dir, "suggest", "--format", "json"];
    suggest.extend(window);
    let json: serde_json::Value = serde_json::from_str(&stdout_of(&elevation(&suggest, dir))).unwrap();
    let suggestions: Vec<Suggestion> = serde_json::from_value(json["suggestions"].clone()).unwrap();
    let expected = suggest_all(
        &node,
        "contoso",
        &fleet,
        crate::support::open_control(dir)
            .await
            .imported_policies("contoso")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(suggestions, expected);
    assert!(
        suggestions
            .iter()
            .any(|s| s.kind == SuggestionKind::StaleRule && s.file_name.as_deref() == Some("erpclient.exe"))
    );

    let mut table = vec![
        "--data-dir",
        &data_dir,
        "suggest",
        "--limit",
        "3",
        "--threshold",
        "minEvents=5",
    ];
    table.extend(window);
    let text = stdout_of(&elevation(&table, dir));
    assert!(text.starts_with("  1. ["), "{text}");
    assert!(text.contains("  3. [") && !text.contains("  4. ["), "{text}");

    let out = dir.join("recommendations.csv");
    let out_arg = out.to_string_lossy().into_owned();
    let mut export = vec![
        "--data-dir",
        &data_dir,
        "export",
        "rules",
        "--format",
        "epmanager-csv",
        "--out",
        &out_arg,
    ];
    export.extend(window);
    let text = stdout_of(&elevation(&export, dir));
    assert!(text.contains("proposed rules"), "{text}");
    let csv_text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        csv_text.lines().count() - 1,
        expected.iter().filter(|s| s.proposed_rule.is_some()).count()
    );

    let bad = elevation(&["--data-dir", &data_dir, "suggest", "--threshold", "minEvents"], dir);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("NAME=VALUE"));
    let not_a_policy = dir.join("settings.json");
    std::fs::write(&not_a_policy, r#"{"name": "EPM settings", "settings": []}"#).unwrap();
    let bad = elevation(
        &[
            "--data-dir",
            &data_dir,
            "rules",
            "import",
            &not_a_policy.to_string_lossy(),
        ],
        dir,
    );
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("elevation settings policy"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

/// GET with an optional key: the status, the content type and the body.
async fn get(node: &Node, key: Option<&str>, path: &str) -> (u16, String, String) {
    let mut request = reqwest::Client::new().get(format!("{}{path}", node.base));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (response.status().as_u16(), content_type, response.text().await.unwrap())
}

/// The ids of the suggestions a suggestions page lists, in its order.
fn listed_ids(page: &str) -> Vec<String> {
    page.split("<article class=\"suggestion\" id=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

/// The suggestions page in pages of the ranked list with the total, and an elevation's page
/// naming the proposal for its file (computed for that file only) by the id all of them give.
async fn check_pages(node: &Node, fleet: &Fleet, window: &str, expected: &[Suggestion]) {
    assert!(expected.len() > 6, "{expected:?}");
    let ids = |range: std::ops::Range<usize>| expected[range].iter().map(|s| s.id.clone()).collect::<Vec<_>>();
    let (status, _, first) = get(node, Some(&node.admin_key), &format!("/suggestions?{window}&limit=3")).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(listed_ids(&first), ids(0..3));
    assert!(
        first.contains(&format!("{} suggestions", expected.len())) && first.contains("showing 1 to 3"),
        "the page states the total"
    );
    assert!(
        first.contains("offset=3") && first.contains("rel=\"next\""),
        "a next page"
    );
    let (status, _, second) = get(
        node,
        Some(&node.admin_key),
        &format!("/suggestions?{window}&limit=3&offset=3"),
    )
    .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(listed_ids(&second), ids(3..6), "{second}");
    assert!(second.contains("rel=\"prev\"") && second.contains("showing 4 to 6"));
    let last = expected.len() - 1;
    let (_, _, end) = get(
        node,
        Some(&node.admin_key),
        &format!("/suggestions?{window}&limit=3&offset={last}"),
    )
    .await;
    assert_eq!(listed_ids(&end), ids(last..expected.len()));
    assert!(!end.contains("rel=\"next\""), "no page after the last");
    let (_, _, default) = get(node, Some(&node.admin_key), &format!("/suggestions?{window}")).await;
    assert_eq!(
        listed_ids(&default),
        ids(0..expected.len().min(100)),
        "100 a page by default"
    );

    // Every file's suggestions, computed for that file alone, are the file's among all.
    let imported = node.control.imported_policies("contoso").await.unwrap();
    let files: BTreeSet<String> = expected.iter().filter_map(|s| s.file_name.clone()).collect();
    for file in &files {
        let mut request = SuggestRequest::new("contoso", midnight(fleet.truth.from), midnight(fleet.truth.to));
        request.imported = imported.clone();
        request.file = Some(file.to_uppercase());
        let only = queries::suggest::suggest(&node.warehouse, &request).await.unwrap();
        let about: Vec<&Suggestion> = expected
            .iter()
            .filter(|s| s.file_name.as_ref().is_some_and(|f| f.eq_ignore_ascii_case(file)))
            .collect();
        assert_eq!(only.iter().collect::<Vec<_>>(), about, "{file}");
    }

    // An elevation of a file with a proposed rule links to that proposal.
    let proposal = expected
        .iter()
        .find(|s| s.kind == SuggestionKind::NewRule)
        .expect("a new rule is proposed");
    let file = proposal.file_name.clone().unwrap();
    let event = fleet
        .events
        .iter()
        .find(|e| e.file_name == file && e.process_type != ProcessType::Child)
        .unwrap();
    let (status, _, detail) = get(
        node,
        Some(&node.admin_key),
        &format!("/elevations/{}?{window}", event.id),
    )
    .await;
    assert_eq!(status, 200, "{detail}");
    assert!(detail.contains(&format!("Propose a rule for {file}")), "{detail}");
    assert!(
        detail.contains(&format!("id={}#{}", proposal.id, proposal.id)),
        "{detail}"
    );
}
