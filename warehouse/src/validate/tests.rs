//! Every validation rule, table-driven, each with the exact text a user sees.

use chrono::{TimeZone, Utc};
use serde_json::{Value, json};

use super::*;

fn ctx() -> ValidationContext {
    ValidationContext::new(Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0).unwrap())
}

fn valid_elevation() -> Value {
    json!({
        "id": "c2a1f1de-0001-4000-8000-000000000001",
        "eventDateTime": "2026-11-20T10:03:11.512Z",
        "elevationType": "userConfirmedElevation",
        "filePath": "C:\\Program Files\\Git\\bin\\git.exe",
        "hash": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "upn": "ada@contoso.com",
        "userType": "azureAd",
        "productName": "Git", "companyName": "The Git Development Community",
        "fileVersion": "2.47.0.0", "fileDescription": "Git for Windows", "internalName": "git",
        "certificatePayload": "A1B2", "justification": "rebase needs it",
        "result": 0, "processType": "parent", "parentProcessName": "explorer.exe",
        "ruleId": "r1", "policyId": "p1", "policyName": "Dev tools",
        "systemInitiatedElevation": false
    })
}

fn valid_diagnostic() -> Value {
    json!({
        "eventDateTime": "2026-11-20T10:00:00Z", "eventId": 4001, "eventName": "PolicyApplied",
        "errorCode": 0, "policyType": "rules", "policyId": "p1", "policyVersion": "3"
    })
}

/// Applies `patch` to `base`: a `null` in the patch removes the key, anything else sets it.
fn patched(mut base: Value, patch: Value) -> String {
    let object = base.as_object_mut().unwrap();
    for (key, value) in patch.as_object().unwrap() {
        if value.is_null() {
            object.remove(key);
        } else {
            object.insert(key.clone(), value.clone());
        }
    }
    base.to_string()
}

#[test]
fn a_valid_elevation_is_normalised() {
    let event = elevation_from_json(&valid_elevation().to_string(), 0, "dev-1", &ctx()).unwrap();
    assert_eq!(event.file_name, "git.exe");
    assert_eq!(
        event.hash,
        "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"
    );
    assert_eq!(event.elevation_type, ElevationType::UserConfirmed);
    assert_eq!(
        event.event_date_time,
        Utc.with_ymd_and_hms(2026, 11, 20, 10, 3, 11).unwrap() + Duration::milliseconds(512)
    );
    assert_eq!(event.policy_name.as_deref(), Some("Dev tools"));
}

#[test]
fn defaults_and_derived_id() {
    let json = patched(
        valid_elevation(),
        json!({"id": null, "elevationType": null, "userType": null, "processType": null,
               "result": null, "systemInitiatedElevation": null, "companyName": ""}),
    );
    let first = elevation_from_json(&json, 0, "dev-1", &ctx()).unwrap();
    assert_eq!(first.elevation_type, ElevationType::Undetermined);
    assert_eq!(first.user_type, UserType::Undetermined);
    assert_eq!(first.process_type, ProcessType::Undefined);
    assert_eq!(first.result, 0);
    assert!(!first.system_initiated_elevation);
    assert_eq!(first.company_name, None, "an empty string is absent");
    // The derived id is stable for the same device and content, and differs across devices.
    let again = elevation_from_json(&json, 5, "dev-1", &ctx()).unwrap();
    assert_eq!(first.id, again.id);
    // Shaped like Intune's event ids (64 lower-case hex), as Graph's export shows them.
    assert!(
        first.id.len() == 64
            && first
                .id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{}",
        first.id
    );
    let other_device = elevation_from_json(&json, 0, "dev-2", &ctx()).unwrap();
    assert_ne!(first.id, other_device.id);
}

#[test]
fn every_elevation_rule_has_its_message() {
    let long = |n: usize| "x".repeat(n);
    let cases: Vec<(&str, Value, &str, String)> = vec![
        ("unknown elevation type", json!({"elevationType": "adminElevation"}), "elevationType",
         "elevationType \"adminElevation\" is not one of unmanagedElevation, zeroTouchElevation, userConfirmedElevation, \
          supportApprovedElevation, elevateAsCurrentUser, deniedElevation, undetermined".into()),
        ("unknown user type", json!({"userType": "guest"}), "userType",
         "userType \"guest\" is not one of azureAd, hybrid, local, undetermined".into()),
        ("unknown process type", json!({"processType": "grandchild"}), "processType",
         "processType \"grandchild\" is not one of parent, child, undefined".into()),
        ("missing eventDateTime", json!({"eventDateTime": null}), "eventDateTime", "eventDateTime is required".into()),
        ("missing filePath", json!({"filePath": null}), "filePath", "filePath is required".into()),
        ("missing upn", json!({"upn": null}), "upn", "upn is required".into()),
        ("missing hash", json!({"hash": null}), "hash", "hash is required".into()),
        ("empty upn", json!({"upn": "  "}), "upn", "upn is required and must not be empty".into()),
        ("short hash", json!({"hash": "ABC123"}), "hash", "hash must be 64 hexadecimal characters (a SHA-256)".into()),
        ("non-hex hash", json!({"hash": "Z".repeat(64)}), "hash", "hash must be 64 hexadecimal characters (a SHA-256)".into()),
        ("justification over 256", json!({"justification": "é".repeat(257)}), "justification",
         "justification is 257 characters; the limit is 256".into()),
        ("negative result", json!({"result": -1}), "result", "result must be 0 (success) or a positive exit code, not -1".into()),
        ("result beyond i32", json!({"result": 4_294_967_296_i64}), "result",
         "result must be at most 2147483647, not 4294967296".into()),
        ("more than 24 h in the future", json!({"eventDateTime": "2026-11-21T12:00:01Z"}), "eventDateTime",
         "eventDateTime 2026-11-21T12:00:01Z is more than 24 hours in the future; check the device clock".into()),
        ("older than retention", json!({"eventDateTime": "2025-10-15T11:59:59Z"}), "eventDateTime",
         "eventDateTime 2025-10-15T11:59:59Z is older than the retention window of 400 days".into()),
        ("not a timestamp", json!({"eventDateTime": "yesterday"}), "eventDateTime",
         "eventDateTime must be an RFC 3339 timestamp such as 2026-11-20T14:03:11Z, not \"yesterday\"".into()),
        ("oversize path", json!({"filePath": format!("C:\\{}", long(2100))}), "filePath",
         "filePath is 2103 characters; the limit is 2048".into()),
        ("oversize upn", json!({"upn": long(600)}), "upn", "upn is 600 characters; the limit is 512".into()),
        ("oversize company", json!({"companyName": long(513)}), "companyName", "companyName is 513 characters; the limit is 512".into()),
        ("oversize id", json!({"id": long(129)}), "id", "id is 129 characters; the limit is 128".into()),
        ("oversize certificate", json!({"certificatePayload": long(4097)}), "certificatePayload",
         "certificatePayload is 4097 characters; the limit is 4096".into()),
        ("control character", json!({"productName": "Git\u{0}"}), "productName", "productName contains a control character".into()),
        ("path without file", json!({"filePath": "C:\\Tools\\"}), "filePath",
         "filePath must end with a file name, not a separator".into()),
        ("wrong type for result", json!({"result": "zero"}), "result",
         "invalid type: string \"zero\", expected i64".into()),
        ("wrong type for hash", json!({"hash": 42}), "hash",
         "invalid type: integer `42`, expected a string".into()),
        ("wrong type for flag", json!({"systemInitiatedElevation": "no"}), "systemInitiatedElevation",
         "invalid type: string \"no\", expected a boolean".into()),
    ];
    for (name, patch, field, error) in cases {
        let rejection = elevation_from_json(&patched(valid_elevation(), patch), 7, "dev-1", &ctx()).expect_err(name);
        assert_eq!(
            rejection,
            Rejection {
                kind: EventKind::Elevation,
                index: 7,
                field: field.into(),
                error
            },
            "case: {name}"
        );
    }
}

#[test]
fn whole_event_problems() {
    let cases = [
        ("42", "(event)", "each event must be a JSON object, not a number"),
        ("[]", "(event)", "each event must be a JSON object, not an array"),
        ("null", "(event)", "each event must be a JSON object, not null"),
        ("\"x\"", "(event)", "each event must be a JSON object, not a string"),
        (r#"{"upn":"a","upn":"b"}"#, "upn", "duplicate field `upn`"),
    ];
    for (json, field, error) in cases {
        let rejection = elevation_from_json(json, 0, "d", &ctx()).unwrap_err();
        assert_eq!(
            (rejection.field.as_str(), rejection.error.as_str()),
            (field, error),
            "{json}"
        );
    }
}

#[test]
fn a_valid_diagnostic_is_normalised() {
    let event = diagnostic_from_json(&valid_diagnostic().to_string(), 0, &ctx()).unwrap();
    assert_eq!(event.event_id, 4001);
    assert_eq!(event.policy_type.as_deref(), Some("rules"));
    // Both spellings of an HRESULT are stored as one value.
    let negative = diagnostic_from_json(
        &patched(valid_diagnostic(), json!({"errorCode": -2147024891_i64})),
        0,
        &ctx(),
    )
    .unwrap();
    let positive = diagnostic_from_json(
        &patched(valid_diagnostic(), json!({"errorCode": 2147942405_i64})),
        0,
        &ctx(),
    )
    .unwrap();
    assert_eq!(negative.error_code, 2147942405);
    assert_eq!(positive.error_code, 2147942405);
}

#[test]
fn every_diagnostic_rule_has_its_message() {
    let personal = |field: &str| {
        format!(
            "diagnostic events must not carry {field}: user names, file names, paths and hashes are personal data \
             that the diagnostic level never holds"
        )
    };
    let mut cases: Vec<(String, Value, &str, String)> = Vec::new();
    for field in PERSONAL_DATA_FIELDS {
        cases.push((
            format!("carries {field}"),
            json!({ *field: "x" }),
            field,
            personal(field),
        ));
    }
    let more: Vec<(&str, Value, &str, String)> = vec![
        (
            "missing eventDateTime",
            json!({"eventDateTime": null}),
            "eventDateTime",
            "eventDateTime is required".into(),
        ),
        (
            "missing eventId",
            json!({"eventId": null}),
            "eventId",
            "eventId is required".into(),
        ),
        (
            "negative eventId",
            json!({"eventId": -4}),
            "eventId",
            "eventId must be between 0 and 2147483647, not -4".into(),
        ),
        (
            "missing eventName",
            json!({"eventName": null}),
            "eventName",
            "eventName is required".into(),
        ),
        (
            "error code too wide",
            json!({"errorCode": 1_i64 << 40}),
            "errorCode",
            "errorCode must fit in 32 bits (an exit code or an HRESULT)".into(),
        ),
        (
            "in the future",
            json!({"eventDateTime": "2026-11-22T00:00:00Z"}),
            "eventDateTime",
            "eventDateTime 2026-11-22T00:00:00Z is more than 24 hours in the future; check the device clock".into(),
        ),
        (
            "older than diagnostic retention",
            json!({"eventDateTime": "2026-08-01T00:00:00Z"}),
            "eventDateTime",
            "eventDateTime 2026-08-01T00:00:00Z is older than the retention window of 90 days".into(),
        ),
        (
            "path smuggled in eventName",
            json!({"eventName": "Failed C:\\Users\\ada\\x.exe"}),
            "eventName",
            "eventName looks like it holds a file path; diagnostic events must not carry personal data".into(),
        ),
        (
            "upn smuggled in policyId",
            json!({"policyId": "ada@contoso.com"}),
            "policyId",
            "policyId looks like it holds a user name; diagnostic events must not carry personal data".into(),
        ),
        (
            "hash smuggled in policyVersion",
            json!({"policyVersion": "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"}),
            "policyVersion",
            "policyVersion looks like it holds a file hash; diagnostic events must not carry personal data".into(),
        ),
        (
            "oversize eventName",
            json!({"eventName": "x".repeat(513)}),
            "eventName",
            "eventName is 513 characters; the limit is 512".into(),
        ),
        (
            "wrong type for eventId",
            json!({"eventId": "4001"}),
            "eventId",
            "invalid type: string \"4001\", expected i64".into(),
        ),
    ];
    cases.extend(more.into_iter().map(|(n, p, f, e)| (n.to_owned(), p, f, e)));
    for (name, patch, field, error) in cases {
        let rejection = diagnostic_from_json(&patched(valid_diagnostic(), patch), 3, &ctx()).expect_err(&name);
        assert_eq!(
            rejection,
            Rejection {
                kind: EventKind::Diagnostic,
                index: 3,
                field: field.into(),
                error
            },
            "case: {name}"
        );
    }
}

#[test]
fn rejection_serialises_in_the_contract_shape() {
    let rejection = Rejection {
        kind: EventKind::Elevation,
        index: 7,
        field: "hash".into(),
        error: "bad".into(),
    };
    assert_eq!(
        serde_json::to_value(&rejection).unwrap(),
        json!({"kind": "elevation", "index": 7, "field": "hash", "error": "bad"})
    );
}
