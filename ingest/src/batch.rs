//! From a decompressed body to the rows to store and the answer to give: envelope checks,
//! reporting-level enforcement and per-event validation. Pure: no I/O, no clock of its own,
//! so every rule is tested without a server.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;
use warehouse::rows::{BatchContext, diagnostic_rows, elevation_rows};
use warehouse::validate::{self, Rejection, ValidationContext};
use warehouse::{ReportingLevel, model::UnknownValue};

use crate::answer::{BatchAnswer, BatchKey, Counts};
use web::{ApiError, ErrorCode};

/// Limits on one upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadLimits {
    /// Body bytes as sent (compressed or not). 8 MiB: a full batch of 10,000 events gzips to
    /// about 1 MiB, so this is generous for agents and small for attackers.
    pub max_body_bytes: usize,
    /// Body bytes after decompression. 32 MiB: 10,000 events of real agents are about 7 MiB.
    /// Decompression stops at this size, so a bomb costs at most this much memory and time.
    pub max_decompressed_bytes: usize,
    /// Elevations plus diagnostics in one batch. Agents upload every few hours; 10,000 is
    /// far above a busy device's day.
    pub max_events: usize,
    /// Identifier fields of the envelope (`batchId`, `deviceId`), in characters.
    pub max_id_chars: usize,
    /// `deviceName` and `agentVersion`, in characters.
    pub max_name_chars: usize,
    /// Depth of JSON nesting. A batch needs 3 (object, list, event); 32 leaves room for
    /// future fields while refusing documents built to exhaust a parser.
    pub max_nesting: usize,
}

impl Default for UploadLimits {
    fn default() -> Self {
        UploadLimits {
            max_body_bytes: 8 << 20,
            max_decompressed_bytes: 32 << 20,
            max_events: 10_000,
            max_id_chars: 128,
            max_name_chars: 256,
            max_nesting: 32,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    batch_id: Option<String>,
    device_id: Option<String>,
    device_name: Option<String>,
    agent_version: Option<String>,
    reporting_level: Option<String>,
    #[serde(borrow, default)]
    elevations: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    diagnostics: Option<Vec<&'a RawValue>>,
}

/// A checked batch: what to store and what to answer.
#[derive(Debug)]
pub struct Processed {
    /// Idempotency key.
    pub key: BatchKey,
    /// The rows' batch context.
    pub context: BatchContext,
    /// Accepted elevations as rows (`None` when there are none).
    pub elevations: Option<arrow::record_batch::RecordBatch>,
    /// Accepted diagnostics as rows.
    pub diagnostics: Option<arrow::record_batch::RecordBatch>,
    /// The answer (with `duplicate: false`).
    pub answer: BatchAnswer,
}

fn check_text(field: &str, value: Option<String>, max: usize, required: bool) -> Result<Option<String>, ApiError> {
    match value {
        None if required => Err(ApiError::new(
            ErrorCode::MissingField,
            format!("the batch has no {field}; every upload must carry its {field}"),
        )),
        None => Ok(None),
        Some(v) if required && v.trim().is_empty() => {
            Err(ApiError::new(ErrorCode::InvalidField, format!("{field} is empty")))
        }
        Some(v) if v.chars().count() > max => Err(ApiError::new(
            ErrorCode::InvalidField,
            format!("{field} is longer than {max} characters"),
        )),
        Some(v) if v.chars().any(char::is_control) => Err(ApiError::new(
            ErrorCode::InvalidField,
            format!("{field} contains control characters"),
        )),
        Some(v) => Ok(Some(v)),
    }
}

/// Checks a body and decides, event by event, what is stored, dropped by policy or rejected.
///
/// `tenant_cap` is the tenant's configured reporting cap; `now` stamps `ingestedAt` and anchors
/// the validation windows.
pub fn process(
    body: &[u8],
    tenant: &str,
    tenant_cap: ReportingLevel,
    now: DateTime<Utc>,
    limits: &UploadLimits,
    validation: &ValidationContext,
) -> Result<Processed, ApiError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidUtf8,
            format!(
                "the body is not UTF-8 (invalid byte at offset {}); send JSON encoded as UTF-8",
                e.valid_up_to()
            ),
        )
    })?;
    if !text.trim_start().starts_with('{') {
        return Err(ApiError::new(
            ErrorCode::InvalidJson,
            "the body must be a JSON object: one batch with batchId, deviceId, reportingLevel, elevations and diagnostics",
        ));
    }
    if let Some(offset) = too_deep(text.as_bytes(), limits.max_nesting) {
        return Err(ApiError::new(
            ErrorCode::TooDeep,
            format!(
                "the body nests JSON deeper than {} levels (at byte {offset}); a batch needs 3",
                limits.max_nesting
            ),
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let envelope: Envelope<'_> = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let at = if path == "." {
                String::new()
            } else {
                format!(" at {path}")
            };
            ApiError::new(
                ErrorCode::InvalidJson,
                format!("the body is not a valid batch{at}: {inner}"),
            )
        })
        .and_then(|envelope| {
            deserializer.end().map_err(|e| {
                ApiError::new(
                    ErrorCode::InvalidJson,
                    format!("the body has data after the batch object: {e}"),
                )
            })?;
            Ok(envelope)
        })?;
    let batch_id = check_text("batchId", envelope.batch_id, limits.max_id_chars, true)?.expect("required");
    let device_id = check_text("deviceId", envelope.device_id, limits.max_id_chars, true)?.expect("required");
    let device_name = check_text("deviceName", envelope.device_name, limits.max_name_chars, false)?.unwrap_or_default();
    let agent_version = check_text("agentVersion", envelope.agent_version, limits.max_name_chars, false)?;
    let declared = match envelope.reporting_level {
        None => {
            return Err(ApiError::new(
                ErrorCode::MissingField,
                "the batch has no reportingLevel; send the device's level: none, diagnostic, managed or all",
            ));
        }
        Some(level) => ReportingLevel::parse(&level)
            .map_err(|e: UnknownValue| ApiError::new(ErrorCode::UnknownReportingLevel, format!("{e}")))?,
    };
    let raw_elevations = envelope.elevations.unwrap_or_default();
    let raw_diagnostics = envelope.diagnostics.unwrap_or_default();
    let events = raw_elevations.len() + raw_diagnostics.len();
    if events > limits.max_events {
        return Err(ApiError::new(
            ErrorCode::TooManyEvents,
            format!(
                "the batch holds {events} events; at most {} are accepted per batch, split it into smaller batches",
                limits.max_events
            ),
        ));
    }
    let effective = ReportingLevel::effective(declared, tenant_cap);
    let mut answer = BatchAnswer {
        batch_id: batch_id.clone(),
        duplicate: false,
        accepted: Counts::default(),
        dropped_by_policy: Counts::default(),
        rejected: Vec::new(),
    };
    let mut rejected: Vec<Rejection> = Vec::new();

    let mut elevations = Vec::new();
    if effective >= ReportingLevel::Managed {
        for (index, raw) in raw_elevations.iter().enumerate() {
            match validate::elevation_from_json(raw.get(), index, &device_id, validation) {
                Ok(event) if effective.allows_elevation(event.elevation_type) => elevations.push(event),
                Ok(_) => answer.dropped_by_policy.elevations += 1,
                Err(rejection) => rejected.push(rejection),
            }
        }
    } else {
        // Not even parsed: this level lets no elevation through.
        answer.dropped_by_policy.elevations = raw_elevations.len() as u64;
    }
    let mut diagnostics = Vec::new();
    if effective.allows_diagnostics() {
        for (index, raw) in raw_diagnostics.iter().enumerate() {
            match validate::diagnostic_from_json(raw.get(), index, validation) {
                Ok(event) => diagnostics.push(event),
                Err(rejection) => rejected.push(rejection),
            }
        }
    } else {
        answer.dropped_by_policy.diagnostics = raw_diagnostics.len() as u64;
    }
    answer.accepted = Counts {
        elevations: elevations.len() as u64,
        diagnostics: diagnostics.len() as u64,
    };
    answer.rejected = rejected;

    let context = BatchContext {
        tenant: tenant.to_owned(),
        device_id: device_id.clone(),
        device_name,
        agent_version,
        batch_id: batch_id.clone(),
        declared_level: declared,
        effective_level: effective,
        ingested_at: now,
    };
    let elevation_batch = (!elevations.is_empty()).then(|| elevation_rows(&context, &elevations));
    let diagnostic_batch = (!diagnostics.is_empty()).then(|| diagnostic_rows(&context, &diagnostics));
    Ok(Processed {
        key: BatchKey {
            tenant: tenant.to_owned(),
            device_id,
            batch_id,
        },
        context,
        elevations: elevation_batch,
        diagnostics: diagnostic_batch,
        answer,
    })
}

/// The byte offset where JSON nesting first exceeds `max`, if it does. One pass over the
/// bytes, aware of strings and escapes, before any parser sees the document.
fn too_deep(bytes: &[u8], max: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (offset, &byte) in bytes.iter().enumerate() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return Some(offset);
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_measured_outside_strings_only() {
        assert_eq!(too_deep(br#"{"a":[{"b":1}]}"#, 3), None);
        assert_eq!(too_deep(br#"{"a":[{"b":[1]}]}"#, 3), Some(11));
        assert_eq!(too_deep(br#"{"a":"[[[[[[\"[[[["}"#, 1), None);
        assert_eq!(too_deep(br#"{"a":"\\"}[["#, 1), Some(11));
    }
}

/// Property tests (issue #21): generated bodies, a bounded number per run (`PROPTEST_CASES`
/// raises it; README, "Tests"). A failure proptest finds is kept in
/// `proptest-regressions/batch.txt` and replayed first on every later run.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde_json::{Value, json};
    use warehouse::validate::EventKind;

    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-21T00:00:00Z".parse().unwrap()
    }

    fn check(body: &[u8]) -> Result<Processed, ApiError> {
        process(
            body,
            "contoso",
            ReportingLevel::All,
            now(),
            &UploadLimits::default(),
            &ValidationContext::new(now()),
        )
    }

    fn valid_elevation(i: usize) -> Value {
        json!({
            "id": format!("e-{i}"), "eventDateTime": "2026-11-20T11:00:00Z",
            "elevationType": "userConfirmedElevation", "filePath": "C:\\Program Files\\Git\\bin\\git.exe",
            "hash": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "upn": "ada@contoso.com", "userType": "azureAd", "companyName": "The Git Development Community",
            "fileVersion": "2.47.0.0", "result": 0, "processType": "parent", "parentProcessName": "explorer.exe"
        })
    }

    fn valid_diagnostic(i: usize) -> Value {
        json!({
            "eventDateTime": "2026-11-20T10:00:00Z", "eventId": i, "eventName": "PolicyApplied",
            "errorCode": 0, "policyType": "rules", "policyId": "p-1", "policyVersion": "3"
        })
    }

    /// Any JSON value, wrong types and hostile text included.
    fn any_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            ".{0,40}".prop_map(Value::String),
            "[\\x00-\\x1f\u{202e}\u{feff}a-z]{0,8}".prop_map(Value::String),
            (0usize..5000).prop_map(|n| Value::String("x".repeat(n))),
            Just(json!("2026-11-20T11:00:00Z")),
            Just(json!("2126-11-20T11:00:00Z")),
            Just(json!([])),
            Just(json!({"nested": {"deeper": [1, 2]}})),
        ]
    }

    /// Events: each a valid one with some fields replaced by any value or removed.
    fn events(valid: fn(usize) -> Value, fields: &'static [&'static str]) -> impl Strategy<Value = Vec<Value>> {
        let edit = (proptest::sample::select(fields), proptest::option::of(any_value()));
        proptest::collection::vec(proptest::collection::vec(edit, 0..4), 0..12).prop_map(move |edits| {
            edits
                .into_iter()
                .enumerate()
                .map(|(i, changes)| {
                    let mut event = valid(i);
                    for (field, value) in changes {
                        match value {
                            Some(value) => event[field] = value,
                            None => {
                                event.as_object_mut().unwrap().remove(field);
                            }
                        }
                    }
                    event
                })
                .collect()
        })
    }

    const ELEVATION_FIELDS: &[&str] = &[
        "id",
        "eventDateTime",
        "elevationType",
        "filePath",
        "hash",
        "upn",
        "userType",
        "result",
        "processType",
        "justification",
        "ruleId",
    ];
    const DIAGNOSTIC_FIELDS: &[&str] = &["eventDateTime", "eventId", "eventName", "errorCode", "policyType"];

    /// Every event of `kind` in an accepted batch is stored, dropped by policy or rejected
    /// with its own index, exactly once.
    fn accounted(processed: &Processed, kind: EventKind, sent: usize) {
        let answer = &processed.answer;
        let (accepted, dropped, rows) = match kind {
            EventKind::Elevation => (
                answer.accepted.elevations,
                answer.dropped_by_policy.elevations,
                processed.elevations.as_ref().map_or(0, |b| b.num_rows()),
            ),
            EventKind::Diagnostic => (
                answer.accepted.diagnostics,
                answer.dropped_by_policy.diagnostics,
                processed.diagnostics.as_ref().map_or(0, |b| b.num_rows()),
            ),
        };
        let mut rejected: Vec<usize> = answer
            .rejected
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| r.index)
            .collect();
        rejected.sort_unstable();
        rejected.dedup();
        assert!(
            rejected.iter().all(|&i| i < sent),
            "{kind:?}: index past {sent}: {rejected:?}"
        );
        assert_eq!(
            accepted as usize, rows,
            "{kind:?}: accepted count and stored rows differ"
        );
        assert_eq!(
            accepted as usize + dropped as usize + rejected.len(),
            sent,
            "{kind:?}: an event was lost or counted twice: {answer:?}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn any_bytes_get_an_answer_never_a_panic(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
            if let Err(e) = check(&body) {
                prop_assert!(e.status().is_client_error(), "{e:?}");
            }
        }

        #[test]
        fn any_json_gets_an_answer_never_a_panic(body in any_value(), wrap in any::<bool>()) {
            let body = if wrap { json!({"batchId": body, "deviceId": "d-1", "elevations": [body]}) } else { body };
            if let Err(e) = check(&serde_json::to_vec(&body).unwrap()) {
                prop_assert!(e.status().is_client_error(), "{e:?}");
            }
        }

        #[test]
        fn every_event_is_stored_dropped_or_rejected_with_its_index(
            elevations in events(valid_elevation, ELEVATION_FIELDS),
            diagnostics in events(valid_diagnostic, DIAGNOSTIC_FIELDS),
            level in proptest::sample::select(&["none", "diagnostic", "managed", "all"][..]),
        ) {
            let body = json!({
                "batchId": "b-1", "deviceId": "d-1", "deviceName": "LAPTOP-1", "reportingLevel": level,
                "elevations": elevations, "diagnostics": diagnostics,
            });
            let processed = check(&serde_json::to_vec(&body).unwrap()).unwrap();
            accounted(&processed, EventKind::Elevation, elevations.len());
            accounted(&processed, EventKind::Diagnostic, diagnostics.len());
        }
    }
}
