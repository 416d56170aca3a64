//! The formats admins' tools already speak (issue #14): Intune elevation rules policies as
//! published tools write them, EPManager's report CSV and the rows of Graph's elevation
//! export. The fixtures under `tests/fixtures/` are hand-written in those tools' shapes (see
//! `tests/fixtures/SOURCES.md`), never produced by our own exporter.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;
use warehouse::policy::{
    Certificate, CertificateType, ChildProcessBehavior, ElevationRule, RuleType, RulesPolicy, Validation,
};

use crate::support::{Node, elevation, stdout_of};

fn fixtures(folder: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(folder)
}

fn policy_fixtures() -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures("intune-policies"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 5, "{files:?}");
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, serde_json::from_str(&text).unwrap())
        })
        .collect()
}

/// A rule as the fixture's table in SOURCES.md describes it.
#[allow(clippy::too_many_arguments)]
fn rule(
    name: &str,
    file_name: &str,
    rule_type: RuleType,
    validations: &[Validation],
    file_hash: Option<&str>,
    file_path: Option<&str>,
    min_version: Option<&str>,
    child: ChildProcessBehavior,
    certificate: Option<Certificate>,
) -> Expected {
    (
        name.into(),
        file_name.into(),
        rule_type,
        validations.to_vec(),
        file_hash.map(str::to_owned),
        file_path.map(str::to_owned),
        min_version.map(str::to_owned),
        child,
        certificate,
    )
}

type Expected = (
    String,
    String,
    RuleType,
    Vec<Validation>,
    Option<String>,
    Option<String>,
    Option<String>,
    ChildProcessBehavior,
    Option<Certificate>,
);

fn as_expected(r: &ElevationRule) -> Expected {
    (
        r.name.clone(),
        r.file_name.clone(),
        r.rule_type,
        r.validations.clone(),
        r.file_hash.clone(),
        r.file_path.clone(),
        r.min_version.clone(),
        r.child_process_behavior,
        r.certificate.clone(),
    )
}

fn expected_rules(fixture: &str) -> Vec<Expected> {
    use ChildProcessBehavior::{AllowAll, DenyAll, RequireRule};
    use RuleType::{Automatic, Deny, ElevateAsCurrentUser, SupportApproved, UserConfirmed};
    use Validation::{BusinessJustification as Justify, WindowsAuthentication as WinAuth};
    let uploaded = || {
        Some(Certificate::uploaded(
            "MIIDdzCCAl+gAwIBAgIQExampleCertificateBase64",
            CertificateType::Publisher,
        ))
    };
    match fixture {
        "01-community-script-shape.json" => vec![
            rule(
                "Disk cleanup host  Automatically Approved",
                "cleanmgr.exe",
                Automatic,
                &[],
                None,
                Some("C:\\Windows\\System32"),
                None,
                AllowAll,
                None,
            ),
            rule(
                "Microsoft Management Console  User Approved with Authentication ",
                "mmc.exe",
                UserConfirmed,
                &[WinAuth],
                None,
                Some("C:\\Windows\\system32"),
                None,
                AllowAll,
                None,
            ),
            rule(
                "Windows PowerShell  User Approved with Business Justification",
                "powershell.exe",
                UserConfirmed,
                &[Justify],
                None,
                Some("C:\\Windows\\System32\\WindowsPowerShell\\v1.0"),
                None,
                RequireRule,
                None,
            ),
            rule(
                "Registry Editor  Support Approved",
                "regedit.exe",
                SupportApproved,
                &[],
                None,
                Some("C:\\Windows"),
                None,
                DenyAll,
                None,
            ),
            // No child-process setting: not configured, which is Intune's "require rule".
            rule(
                "Disk cleanup host  Automatically Approved",
                "cleanmgr.exe",
                Automatic,
                &[],
                None,
                Some("C:\\Windows\\SysWOW64"),
                None,
                RequireRule,
                None,
            ),
            rule(
                "Network capture  Denied",
                "nmap.exe",
                Deny,
                &[],
                None,
                Some("C:\\Program Files (x86)\\Nmap"),
                None,
                RequireRule,
                None,
            ),
        ],
        "02-terraform-provider-shape.json" => vec![rule(
            "buildtool",
            "buildtool.exe",
            UserConfirmed,
            &[Justify, WinAuth],
            Some("D5774B403AE04414C6C8E8EB2BC98FC55B1677684F8CEE8A4B1C509E55E3D5C1"),
            Some("c:\\tools"),
            None,
            RequireRule,
            None,
        )],
        "03-reusable-certificate-shape.json" => vec![rule(
            "Collaboration client",
            "collab.exe",
            UserConfirmed,
            &[Justify],
            Some("2C26B46B68FFC68FF99B453C1D30413413422D706483BFA0F98A5E886266E7AE"),
            Some("c:\\Program Files\\Collab"),
            None,
            RequireRule,
            Some(Certificate {
                payload: String::new(),
                reusable_setting_id: Some("6b2d7f0e-3c51-4b8e-9a0d-2f6c1e4b7a90".into()),
                certificate_type: CertificateType::IssuingAuthority,
            }),
        )],
        "04-microsoft365dsc-shape.json" => vec![rule(
            "Rule Name",
            "file.exe",
            Automatic,
            &[],
            None,
            Some("C:\\Temp"),
            None,
            RequireRule,
            None,
        )],
        "05-policy-builder-shape.json" => vec![
            rule(
                "WinMerge",
                "WinMergeU.exe",
                UserConfirmed,
                &[Justify],
                None,
                Some("C:\\Program Files\\WinMerge"),
                Some("2.16.0.0"),
                RequireRule,
                uploaded(),
            ),
            rule(
                "Disk management as current user",
                "diskmgmt.msc",
                ElevateAsCurrentUser,
                &[Justify, WinAuth],
                Some("5E884898DA28047151D0E56F8DC6292773603D0D6AABBDD62A11EF721D1542D8"),
                Some("C:\\Windows\\System32"),
                Some("10.0.0.0"),
                DenyAll,
                None,
            ),
            rule(
                "Process Monitor",
                "procmon64.exe",
                SupportApproved,
                &[],
                Some("6B86B273FF34FCE19D6B804EFF5A3F5747ADA4EAA22F1D49C01E52DDB7875B4B"),
                Some("C:\\Tools\\Sysinternals"),
                Some("3.90.0.0"),
                AllowAll,
                uploaded(),
            ),
        ],
        other => panic!("no expectation for {other}"),
    }
}

#[test]
fn every_published_policy_shape_imports_to_the_rules_it_holds() {
    for (name, json) in policy_fixtures() {
        let imported = RulesPolicy::read_intune(&json).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got: Vec<Expected> = imported.policy.rules.iter().map(as_expected).collect();
        assert_eq!(got, expected_rules(&name), "{name}");
        assert!(imported.warnings.is_empty(), "{name}: {:?}", imported.warnings);
        assert_eq!(imported.policy.name, json["name"].as_str().unwrap(), "{name}");
    }
    // The version-info fields come along (01 has them for every rule).
    let (_, json) = &policy_fixtures()[0];
    let first = &RulesPolicy::from_intune(json).unwrap().rules[0];
    assert_eq!(
        first.product_name.as_deref(),
        Some("Microsoft Windows Operating System")
    );
    assert_eq!(first.internal_name.as_deref(), Some("cleanmgr"));
    assert_eq!(
        first.file_description.as_deref(),
        Some("Disk Space Cleanup Manager for Windows")
    );
}

/// Setting ids, choice values and template ids a policy document uses.
fn vocabulary(json: &Value, out: &mut BTreeSet<String>) {
    match json {
        Value::Object(fields) => {
            for (key, value) in fields {
                let named = matches!(
                    key.as_str(),
                    "settingDefinitionId" | "settingInstanceTemplateId" | "settingValueTemplateId" | "templateId"
                );
                let choice = key == "value" && value.as_str().is_some_and(|v| v.starts_with("device_vendor_msft_"));
                if let (true, Some(text)) = (named || choice, value.as_str()) {
                    out.insert(format!("{key}={text}"));
                }
                vocabulary(value, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| vocabulary(v, out)),
        _ => {}
    }
}

#[test]
fn our_intune_export_uses_only_ids_and_values_that_published_policies_use() {
    let mut published = BTreeSet::new();
    let mut rules = Vec::new();
    for (_, json) in policy_fixtures() {
        vocabulary(&json, &mut published);
        rules.extend(RulesPolicy::from_intune(&json).unwrap().rules);
    }
    // Every rule of every fixture first in turn, so each one's template references are written.
    for first in 0..rules.len() {
        let mut ordered = rules.clone();
        ordered.rotate_left(first);
        let ours = RulesPolicy {
            name: "re-exported".into(),
            description: None,
            rules: ordered,
        }
        .to_intune();
        let mut written = BTreeSet::new();
        vocabulary(&ours, &mut written);
        let unknown: Vec<&String> = written.difference(&published).collect();
        assert!(
            unknown.is_empty(),
            "ids or values no published policy uses: {unknown:#?}"
        );
        // And they read back as the same rules.
        let mut again = RulesPolicy::from_intune(&ours).unwrap().rules;
        again.rotate_right(first);
        assert_eq!(again, rules);
    }
}

#[test]
fn rules_import_accepts_every_published_shape_from_the_command_line() {
    let dir = crate::support::temp_dir();
    let data = dir.path().join("data");
    let mut args: Vec<String> = vec![
        "--data-dir".into(),
        data.display().to_string(),
        "rules".into(),
        "import".into(),
    ];
    let files: Vec<String> = policy_fixtures()
        .iter()
        .map(|(name, _)| fixtures("intune-policies").join(name).display().to_string())
        .collect();
    args.extend(files);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = elevation(&args, dir.path());
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let out = stdout_of(&output);
    assert!(
        out.contains("imported policy \"EPM Policy for \" with 6 rules"),
        "{out}"
    );
    assert!(out.contains("imported policy \"Tools policy\" with 3 rules"), "{out}");
    let listed = stdout_of(&elevation(
        &["--data-dir", &data.display().to_string(), "rules", "list"],
        dir.path(),
    ));
    for file in [
        "cleanmgr.exe",
        "buildtool.exe",
        "collab.exe",
        "file.exe",
        "diskmgmt.msc",
    ] {
        assert!(listed.contains(file), "{file} missing from {listed}");
    }
}

/// The classes of value shapes a Graph export column holds.
fn shape(value: &str) -> &'static str {
    let hex = |n: usize| value.len() == n && value.bytes().all(|b| b.is_ascii_hexdigit());
    if value.is_empty() {
        "empty"
    } else if value == "<Null>" {
        "null-sentinel"
    } else if value == "True" || value == "False" {
        "boolean"
    } else if hex(64) && value.bytes().all(|b| !b.is_ascii_uppercase()) {
        "hex64-lower"
    } else if hex(64) {
        "hex64-upper"
    } else if value.len() == 27 && value.as_bytes()[10] == b' ' && value.ends_with(|c: char| c.is_ascii_digit()) {
        "graph-time"
    } else if value.parse::<i64>().is_ok() {
        "integer"
    } else {
        "text"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_profile_rows_have_the_shapes_of_captured_graph_rows() {
    let captured: Vec<serde_json::Map<String, Value>> = serde_json::from_str(
        &std::fs::read_to_string(fixtures("graph").join("EpmElevationReportElevationEvent-shape.json")).unwrap(),
    )
    .unwrap();
    let mut node = Node::start().await;
    // Two events as such a tenant reports them: an account Graph cannot classify, a
    // down-level `AzureAD\name` user and an e-mail address, no event id (the server derives it).
    let mut events = Vec::new();
    for (upn, at) in [
        ("AzureAD\\AdaLovelace", "2026-11-20T11:00:00Z"),
        ("ada@contoso.com", "2026-11-20T10:00:00Z"),
    ] {
        let mut event = crate::support::elevation_event("x", "unmanagedElevation");
        event["upn"] = upn.into();
        event["userType"] = "undetermined".into();
        event["eventDateTime"] = at.into();
        event.as_object_mut().unwrap().remove("id");
        events.push(event);
    }
    let answer = node
        .upload(&crate::support::batch("graph-shape", "all", events, vec![]))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    node.land_all().await;
    let (status, body) = node
        .get_with_key(
            &node.admin_key,
            "/v1/reports/elevations?from=2026-11-19&to=2026-11-21&format=json&profile=graph",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let ours: Value = serde_json::from_str(&body).unwrap();
    let ours = ours["rows"].as_array().unwrap();
    assert_eq!(ours.len(), captured.len());
    for (row, graph) in ours.iter().zip(&captured) {
        let row = row.as_object().unwrap();
        assert_eq!(
            row.keys().collect::<BTreeSet<_>>(),
            graph.keys().collect::<BTreeSet<_>>()
        );
        for (column, value) in graph {
            let value = value.as_str().unwrap();
            let mine = row[column]
                .as_str()
                .unwrap_or_else(|| panic!("{column} is not text: {:?}", row[column]));
            // Free text differs by nature; everything else must have the captured shape.
            if shape(value) != "text" {
                assert_eq!(shape(mine), shape(value), "{column}: ours {mine:?}, Graph's {value:?}");
            }
        }
        assert_eq!(row["UserType"], graph["UserType"], "an unclassified account is Unknown");
        assert_eq!(row["Upn"], graph["Upn"], "the user principal name is kept as sent");
    }
    node.stop().await;
}
