//! Validation: one raw JSON event in, one normalised event or one [`Rejection`] out.
//!
//! Every rejection names the event kind, its index in the batch, the field at fault and a
//! sentence a person can act on. Validation never panics and never looks at other events,
//! so one bad event cannot cost the good ones in the same batch.

use std::borrow::Cow;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::{DiagnosticEvent, ElevationEvent, ElevationType, ProcessType, UserType, file_name_of};

/// Which list of the batch an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EventKind {
    /// An entry of `elevations`.
    Elevation,
    /// An entry of `diagnostics`.
    Diagnostic,
}

/// Why one event was not stored. Serialised exactly as the contract's `rejected` entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// `elevation` or `diagnostic`.
    pub kind: EventKind,
    /// Position of the event in its list, from 0.
    pub index: usize,
    /// The field at fault (Graph spelling), or `(event)` when the event as a whole is unusable.
    pub field: String,
    /// What was wrong, in words.
    pub error: String,
}

/// Size limits on string fields, in characters. They protect the warehouse from junk, not
/// from real data: every limit is well above what Windows or Graph produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `filePath` and `parentProcessName`: Windows long paths reach 32,767 UTF-16 units, but
    /// nothing EPM elevates sits that deep; 2,048 leaves room for every real install path.
    pub max_path_chars: usize,
    /// Identifiers (`id`, `ruleId`, `policyId`, `policyVersion`): GUIDs are 36 characters.
    pub max_id_chars: usize,
    /// Names and version-info strings (`upn`, `productName`, `companyName`, ...).
    pub max_text_chars: usize,
    /// `certificatePayload`: a hash of the certificate information (64 hex) on real agents.
    pub max_certificate_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_path_chars: 2048,
            max_id_chars: 128,
            max_text_chars: 512,
            max_certificate_chars: 4096,
        }
    }
}

/// Graph caps `justification` at 256 characters (enforced client-side by Intune's agent).
pub const MAX_JUSTIFICATION_CHARS: usize = 256;

/// Everything validation needs to know about the world: the time, the retention windows
/// (an event older than its table keeps would be deleted at once) and the limits.
#[derive(Debug, Clone, Copy)]
pub struct ValidationContext {
    /// The instant validation happens at (from the injected clock).
    pub now: DateTime<Utc>,
    /// How far in the future an event may be dated: agents' clocks drift.
    pub max_future: Duration,
    /// Days the `elevations` table keeps raw events.
    pub elevation_retention_days: u32,
    /// Days the `diagnostics` table keeps events.
    pub diagnostic_retention_days: u32,
    /// String limits.
    pub limits: Limits,
}

impl ValidationContext {
    /// The defaults the README documents: 24 h of clock drift, 400 days of elevations,
    /// 90 days of diagnostics.
    pub fn new(now: DateTime<Utc>) -> Self {
        ValidationContext {
            now,
            max_future: Duration::hours(24),
            elevation_retention_days: 400,
            diagnostic_retention_days: 90,
            limits: Limits::default(),
        }
    }
}

/// Fields a diagnostic event must never carry: they identify a person or a file, and the
/// `diagnostic` level promises neither leaves the device.
const PERSONAL_DATA_FIELDS: &[&str] = &[
    "upn",
    "userName",
    "user",
    "fileName",
    "filePath",
    "hash",
    "fileHash",
    "justification",
];

/// Parses and validates one elevation (`json` is the event's own JSON text).
///
/// `device_id` comes from the batch; it seeds the derived `id` when the agent sent none, so
/// a retried upload derives the same id again.
pub fn elevation_from_json(
    json: &str,
    index: usize,
    device_id: &str,
    ctx: &ValidationContext,
) -> Result<ElevationEvent, Rejection> {
    let reject = |field: &str, error: String| Rejection {
        kind: EventKind::Elevation,
        index,
        field: field.to_owned(),
        error,
    };
    let raw: RawElevation<'_> = parse_event(json).map_err(|(field, error)| reject(&field, error))?;
    raw.validate(device_id, ctx)
        .map_err(|(field, error)| reject(field, error))
}

/// Parses and validates one diagnostic event.
pub fn diagnostic_from_json(json: &str, index: usize, ctx: &ValidationContext) -> Result<DiagnosticEvent, Rejection> {
    let reject = |field: &str, error: String| Rejection {
        kind: EventKind::Diagnostic,
        index,
        field: field.to_owned(),
        error,
    };
    let raw: RawDiagnostic<'_> = parse_event(json).map_err(|(field, error)| reject(&field, error))?;
    raw.validate(ctx).map_err(|(field, error)| reject(field, error))
}

/// Deserialises one event, reporting the path of the field serde choked on.
fn parse_event<'a, T: Deserialize<'a>>(json: &'a str) -> Result<T, (String, String)> {
    // serde would also accept a struct written as a JSON array of its fields; events are
    // objects, full stop.
    if !json.trim_start().starts_with('{') {
        let found = match json.trim_start().as_bytes().first() {
            Some(b'[') => "an array",
            Some(b'"') => "a string",
            Some(b'n') => "null",
            Some(b't' | b'f') => "a boolean",
            Some(_) => "a number",
            None => "nothing",
        };
        return Err((
            "(event)".to_owned(),
            format!("each event must be a JSON object, not {found}"),
        ));
    }
    let mut de = serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let field = if path == "." || path.is_empty() {
            "(event)".to_owned()
        } else {
            path
        };
        let inner = err.into_inner();
        // serde_json appends "at line 1 column 57", which means nothing inside a batch.
        let message = inner.to_string();
        let message = match message.rfind(" at line ") {
            Some(cut) => message[..cut].to_owned(),
            None => message,
        };
        // A duplicated key is reported at the object, but the key is the field at fault.
        let field = match message
            .strip_prefix("duplicate field `")
            .and_then(|rest| rest.split('`').next())
        {
            Some(duplicated) => duplicated.to_owned(),
            None => field,
        };
        (field, message)
    })
}

type FieldError = (&'static str, String);

/// An elevation as it arrives: every field optional and borrowed where possible, so that
/// "missing", "wrong type" and "unknown value" each get their own precise message.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawElevation<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    event_date_time: Option<Cow<'a, str>>,
    #[serde(borrow)]
    elevation_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    file_path: Option<Cow<'a, str>>,
    #[serde(borrow)]
    hash: Option<Cow<'a, str>>,
    #[serde(borrow)]
    upn: Option<Cow<'a, str>>,
    #[serde(borrow)]
    user_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    product_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    company_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    file_version: Option<Cow<'a, str>>,
    #[serde(borrow)]
    file_description: Option<Cow<'a, str>>,
    #[serde(borrow)]
    internal_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    certificate_payload: Option<Cow<'a, str>>,
    #[serde(borrow)]
    justification: Option<Cow<'a, str>>,
    result: Option<i64>,
    #[serde(borrow)]
    process_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    parent_process_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    rule_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    policy_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    policy_name: Option<Cow<'a, str>>,
    system_initiated_elevation: Option<bool>,
}

impl RawElevation<'_> {
    fn validate(self, device_id: &str, ctx: &ValidationContext) -> Result<ElevationEvent, FieldError> {
        let limits = &ctx.limits;
        let event_date_time = required("eventDateTime", self.event_date_time)?;
        let event_date_time = timestamp("eventDateTime", &event_date_time, ctx, ctx.elevation_retention_days)?;
        let elevation_type = match optional_text("elevationType", self.elevation_type, 64)? {
            Some(value) => ElevationType::parse(&value).map_err(|e| ("elevationType", e.to_string()))?,
            None => ElevationType::Undetermined,
        };
        let file_path = required("filePath", self.file_path)?;
        check_text("filePath", &file_path, limits.max_path_chars)?;
        let file_name = file_name_of(&file_path).to_owned();
        if file_name.is_empty() {
            return Err((
                "filePath",
                "filePath must end with a file name, not a separator".to_owned(),
            ));
        }
        let hash = required("hash", self.hash)?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(("hash", "hash must be 64 hexadecimal characters (a SHA-256)".to_owned()));
        }
        let hash = hash.to_ascii_uppercase();
        let upn = required("upn", self.upn)?;
        check_text("upn", &upn, limits.max_text_chars)?;
        let user_type = match optional_text("userType", self.user_type, 64)? {
            Some(value) => UserType::parse(&value).map_err(|e| ("userType", e.to_string()))?,
            None => UserType::Undetermined,
        };
        let process_type = match optional_text("processType", self.process_type, 64)? {
            Some(value) => ProcessType::parse(&value).map_err(|e| ("processType", e.to_string()))?,
            None => ProcessType::Undefined,
        };
        let result = match self.result {
            None => 0,
            Some(code) if code < 0 => {
                return Err((
                    "result",
                    format!("result must be 0 (success) or a positive exit code, not {code}"),
                ));
            }
            Some(code) => i32::try_from(code)
                .map_err(|_| ("result", format!("result must be at most {}, not {code}", i32::MAX)))?,
        };
        let justification = optional_text("justification", self.justification, usize::MAX)?;
        if let Some(text) = &justification {
            let chars = text.chars().count();
            if chars > MAX_JUSTIFICATION_CHARS {
                return Err((
                    "justification",
                    format!("justification is {chars} characters; the limit is {MAX_JUSTIFICATION_CHARS}"),
                ));
            }
        }
        let id = match optional_text("id", self.id, limits.max_id_chars)? {
            Some(id) => id,
            None => derived_event_id(device_id, &event_date_time, &hash, &upn, &file_path, process_type),
        };
        Ok(ElevationEvent {
            id,
            event_date_time,
            elevation_type,
            file_name,
            file_path: file_path.into_owned(),
            hash,
            upn: upn.into_owned(),
            user_type,
            product_name: optional_text("productName", self.product_name, limits.max_text_chars)?,
            company_name: optional_text("companyName", self.company_name, limits.max_text_chars)?,
            file_version: optional_text("fileVersion", self.file_version, limits.max_text_chars)?,
            file_description: optional_text("fileDescription", self.file_description, limits.max_text_chars)?,
            internal_name: optional_text("internalName", self.internal_name, limits.max_text_chars)?,
            certificate_payload: optional_text(
                "certificatePayload",
                self.certificate_payload,
                limits.max_certificate_chars,
            )?,
            justification,
            result,
            process_type,
            parent_process_name: optional_text("parentProcessName", self.parent_process_name, limits.max_path_chars)?,
            rule_id: optional_text("ruleId", self.rule_id, limits.max_id_chars)?,
            policy_id: optional_text("policyId", self.policy_id, limits.max_id_chars)?,
            policy_name: optional_text("policyName", self.policy_name, limits.max_text_chars)?,
            system_initiated_elevation: self.system_initiated_elevation.unwrap_or(false),
        })
    }
}

/// A diagnostic event as it arrives. The personal-data fields are listed only to be refused.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDiagnostic<'a> {
    #[serde(borrow)]
    event_date_time: Option<Cow<'a, str>>,
    event_id: Option<i64>,
    #[serde(borrow)]
    event_name: Option<Cow<'a, str>>,
    error_code: Option<i64>,
    #[serde(borrow)]
    policy_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    policy_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    policy_version: Option<Cow<'a, str>>,
    upn: Option<serde::de::IgnoredAny>,
    user_name: Option<serde::de::IgnoredAny>,
    user: Option<serde::de::IgnoredAny>,
    file_name: Option<serde::de::IgnoredAny>,
    file_path: Option<serde::de::IgnoredAny>,
    hash: Option<serde::de::IgnoredAny>,
    file_hash: Option<serde::de::IgnoredAny>,
    justification: Option<serde::de::IgnoredAny>,
}

impl RawDiagnostic<'_> {
    fn validate(self, ctx: &ValidationContext) -> Result<DiagnosticEvent, FieldError> {
        let carried = [
            self.upn.is_some(),
            self.user_name.is_some(),
            self.user.is_some(),
            self.file_name.is_some(),
            self.file_path.is_some(),
            self.hash.is_some(),
            self.file_hash.is_some(),
            self.justification.is_some(),
        ];
        if let Some(position) = carried.iter().position(|present| *present) {
            let field = PERSONAL_DATA_FIELDS[position];
            return Err((
                field,
                format!(
                    "diagnostic events must not carry {field}: user names, file names, paths and hashes \
                     are personal data that the diagnostic level never holds"
                ),
            ));
        }
        let limits = &ctx.limits;
        let event_date_time = required("eventDateTime", self.event_date_time)?;
        let event_date_time = timestamp("eventDateTime", &event_date_time, ctx, ctx.diagnostic_retention_days)?;
        let event_id = self.event_id.ok_or(("eventId", "eventId is required".to_owned()))?;
        let event_id = i32::try_from(event_id).ok().filter(|id| *id >= 0).ok_or((
            "eventId",
            format!("eventId must be between 0 and {}, not {event_id}", i32::MAX),
        ))?;
        let event_name = required("eventName", self.event_name)?;
        check_text("eventName", &event_name, limits.max_text_chars)?;
        let error_code = normalise_error_code(self.error_code.unwrap_or(0)).ok_or((
            "errorCode",
            "errorCode must fit in 32 bits (an exit code or an HRESULT)".to_owned(),
        ))?;
        let diagnostic = DiagnosticEvent {
            event_date_time,
            event_id,
            event_name: event_name.into_owned(),
            error_code,
            policy_type: optional_text("policyType", self.policy_type, limits.max_text_chars)?,
            policy_id: optional_text("policyId", self.policy_id, limits.max_id_chars)?,
            policy_version: optional_text("policyVersion", self.policy_version, limits.max_id_chars)?,
        };
        // Free-text fields must not smuggle personal data either.
        let texts = [
            ("eventName", Some(&diagnostic.event_name)),
            ("policyType", diagnostic.policy_type.as_ref()),
            ("policyId", diagnostic.policy_id.as_ref()),
            ("policyVersion", diagnostic.policy_version.as_ref()),
        ];
        for (field, text) in texts {
            if let Some(what) = text.and_then(|t| looks_like_personal_data(t)) {
                return Err((
                    field,
                    format!("{field} looks like it holds {what}; diagnostic events must not carry personal data"),
                ));
            }
        }
        Ok(diagnostic)
    }
}

/// HRESULTs arrive both as negative `i32` (-2147024891) and as unsigned (2147942405); store
/// the unsigned form so the same error counts once. `None` when it fits neither.
fn normalise_error_code(code: i64) -> Option<i64> {
    if (i64::from(i32::MIN)..0).contains(&code) {
        Some(i64::from(code as i32 as u32))
    } else if (0..=i64::from(u32::MAX)).contains(&code) {
        Some(code)
    } else {
        None
    }
}

/// Recognises the shapes of personal data in free text: a UPN or e-mail address, a Windows
/// path, a SHA-256.
fn looks_like_personal_data(text: &str) -> Option<&'static str> {
    let bytes = text.as_bytes();
    let has_drive_path = bytes
        .windows(3)
        .any(|w| w[0].is_ascii_alphabetic() && w[1] == b':' && w[2] == b'\\');
    if has_drive_path || text.contains("\\\\") || text.contains("\\Users\\") {
        return Some("a file path");
    }
    if let Some(at) = text.find('@')
        && at > 0
        && text[at + 1..].contains('.')
    {
        return Some("a user name");
    }
    let mut hex_run = 0;
    for b in bytes {
        hex_run = if b.is_ascii_hexdigit() { hex_run + 1 } else { 0 };
        if hex_run >= 64 {
            return Some("a file hash");
        }
    }
    None
}

fn required<'a>(field: &'static str, value: Option<Cow<'a, str>>) -> Result<Cow<'a, str>, FieldError> {
    match value {
        Some(text) if !text.trim().is_empty() => Ok(text),
        Some(_) => Err((field, format!("{field} is required and must not be empty"))),
        None => Err((field, format!("{field} is required"))),
    }
}

/// An optional string: empty means absent; present means checked against the limit.
fn optional_text(
    field: &'static str,
    value: Option<Cow<'_, str>>,
    max_chars: usize,
) -> Result<Option<String>, FieldError> {
    match value {
        Some(text) if !text.is_empty() => {
            check_text(field, &text, max_chars)?;
            Ok(Some(text.into_owned()))
        }
        _ => Ok(None),
    }
}

fn check_text(field: &'static str, text: &str, max_chars: usize) -> Result<(), FieldError> {
    if text.chars().any(char::is_control) {
        return Err((field, format!("{field} contains a control character")));
    }
    if max_chars != usize::MAX {
        let chars = text.chars().count();
        if chars > max_chars {
            return Err((
                field,
                format!("{field} is {chars} characters; the limit is {max_chars}"),
            ));
        }
    }
    Ok(())
}

fn timestamp(
    field: &'static str,
    text: &str,
    ctx: &ValidationContext,
    retention_days: u32,
) -> Result<DateTime<Utc>, FieldError> {
    let parsed = DateTime::parse_from_rfc3339(text).map_err(|_| {
        (
            field,
            format!("{field} must be an RFC 3339 timestamp such as 2026-11-20T14:03:11Z, not {text:?}"),
        )
    })?;
    let at = parsed.with_timezone(&Utc);
    if at > ctx.now + ctx.max_future {
        return Err((
            field,
            format!(
                "{field} {text} is more than {} hours in the future; check the device clock",
                ctx.max_future.num_hours()
            ),
        ));
    }
    if at < ctx.now - Duration::days(i64::from(retention_days)) {
        return Err((
            field,
            format!("{field} {text} is older than the retention window of {retention_days} days"),
        ));
    }
    Ok(at)
}

/// A stable id for an event the agent sent without one: the same device, time, file, user
/// and process always give the same id, so a re-sent event is recognised as a duplicate.
/// Shaped like Intune's own event ids: 64 lower-case hexadecimal characters (SHA-256).
fn derived_event_id(
    device_id: &str,
    at: &DateTime<Utc>,
    hash: &str,
    upn: &str,
    file_path: &str,
    process_type: ProcessType,
) -> String {
    let mut hasher = Sha256::new();
    for part in [device_id, &at.to_rfc3339(), hash, upn, file_path, process_type.as_str()] {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests;
