//! Support-approved elevation requests, as Graph's `privilegeManagementElevationRequest` has
//! them: a user asks to run a file elevated on a device, an admin with *Modify elevation
//! requests* approves or denies it with an optional reason, and an approval lets that user run
//! that file on that device until its window ends.
//!
//! States, as Graph names them: `pending` → `approved` | `denied` | `expired` (no decision
//! before `requestExpiryDateTime`) | `cancelled` (withdrawn by the device); `approved` →
//! `revoked` | `expired` (the window ended unused) | `completed` (the window ended after the
//! file was run under it, Intune's "previously approved and expired has been completed").
//! The database stores what people and devices decided; `expired` and `completed` are read
//! from the times on every read, so expiry never waits for a job that may not run.
//!
//! Every transition is a compare-and-set on the stored state: of two admins deciding the same
//! request at once exactly one wins, the other gets [`ControlError::Conflict`] with the state
//! now. An admin cannot decide a request they made themselves (same user principal name); the
//! refusal is audited.
//!
//! It must not know HTTP; `ingest` serves the device side and `dashboards` the admin side.

#[cfg(test)]
mod lifecycle_tests;
mod ops;
pub mod stats;
mod store;

pub use ops::{MAX_PENDING_PER_DEVICE, RequestUse, Submitted};

pub use stats::RequestStats;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ControlError;

/// Graph's `elevationRequestState` (without `none` and `unknownFutureValue`, which nothing
/// here ever is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RequestStatus {
    /// Waiting for a decision.
    Pending,
    /// Approved; the window is open.
    Approved,
    /// Denied.
    Denied,
    /// No decision before the request expired, or an approval whose window ended unused.
    Expired,
    /// Withdrawn by the device before a decision.
    Cancelled,
    /// An approval withdrawn by an admin before its window ended.
    Revoked,
    /// An approval whose window ended after the file was run under it.
    Completed,
}

impl RequestStatus {
    /// Every state, in lifecycle order.
    pub const ALL: [RequestStatus; 7] = [
        RequestStatus::Pending,
        RequestStatus::Approved,
        RequestStatus::Denied,
        RequestStatus::Expired,
        RequestStatus::Cancelled,
        RequestStatus::Revoked,
        RequestStatus::Completed,
    ];

    /// The state as Graph writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Pending => "pending",
            RequestStatus::Approved => "approved",
            RequestStatus::Denied => "denied",
            RequestStatus::Expired => "expired",
            RequestStatus::Cancelled => "cancelled",
            RequestStatus::Revoked => "revoked",
            RequestStatus::Completed => "completed",
        }
    }

    /// Parses a state; the error lists them.
    pub fn parse(text: &str) -> Result<RequestStatus, ControlError> {
        RequestStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = RequestStatus::ALL.iter().map(|s| s.as_str()).collect();
                ControlError::Invalid(format!("status {text:?} is not one of {}", names.join(", ")))
            })
    }
}

/// Graph's `elevationRequestApplicationDetail`: the file the user asks to run elevated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplicationDetail {
    /// SHA-256 of the file, 64 hex digits (stored lower-case).
    pub file_hash: String,
    /// File name, e.g. `git.exe`.
    pub file_name: String,
    /// Folder, e.g. `%programfiles%\git\cmd`.
    #[serde(default)]
    pub file_path: String,
    /// The file's description.
    #[serde(default)]
    pub file_description: String,
    /// The issuer of the signing certificate.
    #[serde(default)]
    pub publisher_name: String,
    /// The signers' certificates, base64.
    #[serde(default)]
    pub publisher_cert: String,
    /// Product name.
    #[serde(default)]
    pub product_name: String,
    /// Product internal name.
    #[serde(default)]
    pub product_internal_name: String,
    /// Product version.
    #[serde(default)]
    pub product_version: String,
}

/// What a device sends to ask for an elevation (`POST /v1/agent/requests`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewRequest {
    /// Chosen by the device; sending the same one again answers with the stored request.
    pub request_id: String,
    /// Who asks.
    pub requested_by_user_principal_name: String,
    /// The Intune device id (the upload contract's `deviceId`).
    pub requested_on_device_id: String,
    /// The device's name.
    #[serde(default)]
    pub device_name: String,
    /// Why the user needs it.
    #[serde(default)]
    pub request_justification: String,
    /// The file.
    pub application_detail: ApplicationDetail,
}

/// Longest justification or reason: BeyondInsight's limit for a decision's reason.
pub const MAX_JUSTIFICATION_CHARS: usize = 1000;

/// Checks one text field: length in characters and no control characters.
fn check_text(field: &'static str, value: &str, max_chars: usize, required: bool) -> Result<(), ControlError> {
    let invalid = |message: String| ControlError::InvalidField { field, message };
    if required && value.trim().is_empty() {
        return Err(invalid("is required".into()));
    }
    let chars = value.chars().count();
    if chars > max_chars {
        return Err(invalid(format!("is {chars} characters; the limit is {max_chars}")));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(invalid(format!("holds the control character U+{:04X}", u32::from(c))));
    }
    Ok(())
}

/// Checks a reviewer's or device's justification (optional, at most 1,000 characters).
pub fn check_justification(field: &'static str, value: &str) -> Result<(), ControlError> {
    check_text(field, value, MAX_JUSTIFICATION_CHARS, false)
}

impl NewRequest {
    /// Checks every field and returns the request with its hash in lower case. The error names
    /// the field and what is wrong with it.
    pub fn checked(mut self) -> Result<NewRequest, ControlError> {
        let id_ok = !self.request_id.is_empty()
            && self.request_id.len() <= 128
            && self
                .request_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
        if !id_ok {
            return Err(ControlError::InvalidField {
                field: "requestId",
                message: "must be 1-128 letters, digits, '-', '_', '.' or ':'".into(),
            });
        }
        check_text(
            "requestedByUserPrincipalName",
            &self.requested_by_user_principal_name,
            256,
            true,
        )?;
        if !self.requested_by_user_principal_name.contains('@') {
            return Err(ControlError::InvalidField {
                field: "requestedByUserPrincipalName",
                message: "must be a user principal name such as ada@contoso.com".into(),
            });
        }
        check_text("requestedOnDeviceId", &self.requested_on_device_id, 128, true)?;
        check_text("deviceName", &self.device_name, 256, false)?;
        check_justification("requestJustification", &self.request_justification)?;
        let app = &mut self.application_detail;
        if app.file_hash.len() != 64 || !app.file_hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ControlError::InvalidField {
                field: "applicationDetail.fileHash",
                message: "must be a SHA-256: 64 hex digits".into(),
            });
        }
        app.file_hash.make_ascii_lowercase();
        check_text("applicationDetail.fileName", &app.file_name, 260, true)?;
        for (field, value, max) in [
            ("applicationDetail.filePath", &app.file_path, 1024),
            ("applicationDetail.fileDescription", &app.file_description, 1024),
            ("applicationDetail.publisherName", &app.publisher_name, 1024),
            ("applicationDetail.publisherCert", &app.publisher_cert, 65_536),
            ("applicationDetail.productName", &app.product_name, 1024),
            (
                "applicationDetail.productInternalName",
                &app.product_internal_name,
                1024,
            ),
            ("applicationDetail.productVersion", &app.product_version, 128),
        ] {
            check_text(field, value, max, false)?;
        }
        Ok(self)
    }
}

/// A request as the APIs show it: Graph's names, with the approval window and its use added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ElevationRequest {
    /// Unguessable id (a random UUID).
    pub id: String,
    /// The id the device chose.
    pub request_id: String,
    /// Who asked.
    pub requested_by_user_principal_name: String,
    /// The device.
    pub requested_on_device_id: String,
    /// Its name.
    pub device_name: String,
    /// When it was asked.
    pub request_created_date_time: DateTime<Utc>,
    /// When it last changed (created, decided, revoked, cancelled).
    pub request_last_modified_date_time: DateTime<Utc>,
    /// Why the user needs it.
    pub request_justification: String,
    /// The file.
    pub application_detail: ApplicationDetail,
    /// The state now.
    pub status: RequestStatus,
    /// Who decided it ("" before a decision, as Graph has it).
    pub review_completed_by_user_principal_name: String,
    /// When it was decided.
    pub review_completed_date_time: Option<DateTime<Utc>>,
    /// The reviewer's reason ("" when none).
    pub reviewer_justification: String,
    /// When an undecided request expires.
    pub request_expiry_date_time: DateTime<Utc>,
    /// When an approval's window ends (approved requests).
    pub approval_expiry_date_time: Option<DateTime<Utc>>,
    /// Who revoked the approval.
    pub revoked_by_user_principal_name: Option<String>,
    /// When it was revoked.
    pub revoked_date_time: Option<DateTime<Utc>>,
    /// The reason given for the revocation.
    pub revoke_justification: Option<String>,
    /// The first elevation the device reported under the approval.
    pub first_used_date_time: Option<DateTime<Utc>>,
    /// The last one.
    pub last_used_date_time: Option<DateTime<Utc>>,
}

impl ElevationRequest {
    /// The state the request was in at `at`, from its times alone (a decision, revocation or
    /// use after `at` had not happened yet). A compliance pack records its period's requests
    /// as of the period's end with this, so the pack made again later is the same.
    pub fn status_at(&self, at: DateTime<Utc>) -> RequestStatus {
        let happened = |t: Option<DateTime<Utc>>| t.is_some_and(|t| t <= at);
        if self.status == RequestStatus::Cancelled && self.request_last_modified_date_time <= at {
            return RequestStatus::Cancelled;
        }
        if happened(self.revoked_date_time) {
            return RequestStatus::Revoked;
        }
        if happened(self.review_completed_date_time) {
            return match self.approval_expiry_date_time {
                None => RequestStatus::Denied,
                Some(end) if end > at => RequestStatus::Approved,
                Some(end) if self.first_used_date_time.is_some_and(|used| used < end) => RequestStatus::Completed,
                Some(_) => RequestStatus::Expired,
            };
        }
        if self.request_expiry_date_time <= at {
            RequestStatus::Expired
        } else {
            RequestStatus::Pending
        }
    }

    /// Seconds from the request to its decision, once decided.
    pub fn seconds_to_decision(&self) -> Option<i64> {
        self.review_completed_date_time
            .map(|at| (at - self.request_created_date_time).num_seconds())
    }
}

/// What an admin does to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Approve, for `hours` (the tenant's default when `None`, at most its maximum).
    Approve {
        /// The window asked for.
        hours: Option<u32>,
    },
    /// Deny.
    Deny,
    /// Withdraw an approval before its window ends.
    Revoke,
}

impl Decision {
    /// The audit log's activity name.
    pub fn activity(self) -> &'static str {
        match self {
            Decision::Approve { .. } => "approveElevationRequest",
            Decision::Deny => "denyElevationRequest",
            Decision::Revoke => "revokeElevationRequest",
        }
    }

    /// The state it leads to.
    fn target(self) -> RequestStatus {
        match self {
            Decision::Approve { .. } => RequestStatus::Approved,
            Decision::Deny => RequestStatus::Denied,
            Decision::Revoke => RequestStatus::Revoked,
        }
    }

    /// The state it starts from.
    fn source(self) -> RequestStatus {
        match self {
            Decision::Approve { .. } | Decision::Deny => RequestStatus::Pending,
            Decision::Revoke => RequestStatus::Approved,
        }
    }
}

/// Which requests a listing shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFilter {
    /// Only this state.
    pub status: Option<RequestStatus>,
    /// Only this requester (case-insensitive).
    pub user: Option<String>,
    /// Only this device (id or name).
    pub device: Option<String>,
    /// Only this file (hash or name, case-insensitive).
    pub file: Option<String>,
    /// Created at or after (default: 30 days ago, unless listing pending requests).
    pub from: Option<DateTime<Utc>>,
    /// Created before.
    pub to: Option<DateTime<Utc>>,
    /// At most this many (default and cap 1,000).
    pub limit: Option<i64>,
    /// Skip this many.
    pub offset: Option<i64>,
}

impl RequestFilter {
    /// Reads `status`, `user`, `device`, `file`, `from`, `to`, `limit`, `offset`; `parse_time`
    /// reads a time parameter (RFC 3339 or a date). The error names the parameter.
    pub fn parse(
        params: &[(String, String)],
        parse_time: impl Fn(&str, &str) -> Result<DateTime<Utc>, String>,
    ) -> Result<RequestFilter, ControlError> {
        let mut filter = RequestFilter::default();
        for (key, value) in params {
            if value.is_empty() {
                continue;
            }
            let number = || {
                value
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| ControlError::Invalid(format!("{key} must be a whole number, not {value:?}")))
            };
            match key.as_str() {
                "status" => filter.status = Some(RequestStatus::parse(value)?),
                "user" => filter.user = Some(value.clone()),
                "device" => filter.device = Some(value.clone()),
                "file" => filter.file = Some(value.clone()),
                "from" => filter.from = Some(parse_time(key, value).map_err(ControlError::Invalid)?),
                "to" => filter.to = Some(parse_time(key, value).map_err(ControlError::Invalid)?),
                "limit" => filter.limit = Some(number()?),
                "offset" => filter.offset = Some(number()?),
                other => {
                    return Err(ControlError::Invalid(format!(
                        "unknown parameter {other:?}; requests take status, user, device, file, from, to, limit, offset"
                    )));
                }
            }
        }
        Ok(filter)
    }
}

/// What a device may elevate now, and what was decided about its requests since it last asked
/// (`GET /v1/agent/approvals`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceApprovals {
    /// The device.
    pub device_id: String,
    /// The server's time of the answer: the next call's `since`.
    pub as_of: DateTime<Utc>,
    /// Approvals whose window is open now.
    pub approvals: Vec<Approval>,
    /// Requests decided (approved, denied, revoked) or expired since `since`, so the device can
    /// tell its user about a denial too.
    pub decisions: Vec<ElevationRequest>,
}

/// One open approval, as a device enforces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    /// The request.
    pub id: String,
    /// The device's own id for it.
    pub request_id: String,
    /// The file.
    pub file_hash: String,
    /// Its name.
    pub file_name: String,
    /// The user it is approved for.
    pub user_principal_name: String,
    /// Until when.
    pub approved_until: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn new_request() -> NewRequest {
        NewRequest {
            request_id: "req-1".into(),
            requested_by_user_principal_name: "bob@contoso.com".into(),
            requested_on_device_id: "device-1".into(),
            device_name: "LAPTOP-1".into(),
            request_justification: "install the printer driver".into(),
            application_detail: ApplicationDetail {
                file_hash: "AB".repeat(32),
                file_name: "setup.exe".into(),
                ..ApplicationDetail::default()
            },
        }
    }

    #[test]
    fn a_request_is_checked_field_by_field() {
        let ok = new_request().checked().unwrap();
        assert_eq!(ok.application_detail.file_hash, "ab".repeat(32));
        let field = |change: fn(&mut NewRequest)| {
            let mut request = new_request();
            change(&mut request);
            match request.checked().unwrap_err() {
                ControlError::InvalidField { field, message } => format!("{field}: {message}"),
                other => panic!("{other}"),
            }
        };
        assert!(field(|r| r.application_detail.file_hash = "abc".into()).starts_with("applicationDetail.fileHash"));
        assert!(field(|r| r.application_detail.file_hash = "g".repeat(64)).starts_with("applicationDetail.fileHash"));
        assert!(field(|r| r.request_justification = "x".repeat(1001)).contains("1001 characters"));
        assert!(field(|r| r.request_justification = "line\u{7}bell".into()).contains("U+0007"));
        assert!(field(|r| r.requested_by_user_principal_name = "bob".into()).starts_with("requestedBy"));
        assert!(field(|r| r.request_id = "a b".into()).starts_with("requestId"));
        assert!(field(|r| r.requested_on_device_id = String::new()).contains("is required"));
        assert!(field(|r| r.application_detail.file_name = String::new()).starts_with("applicationDetail.fileName"));
    }

    #[test]
    fn states_parse_as_graph_names_them() {
        for status in RequestStatus::ALL {
            assert_eq!(RequestStatus::parse(status.as_str()).unwrap(), status);
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        assert!(
            RequestStatus::parse("done")
                .unwrap_err()
                .to_string()
                .contains("pending")
        );
    }
}
