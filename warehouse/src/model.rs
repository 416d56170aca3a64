//! The event model: one elevation (Graph's `privilegeManagementElevation`), one diagnostic
//! event, and the batch an agent uploads. Field names and enum spellings follow Microsoft
//! Graph so that Intune admins and their scripts recognise them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A value that is not one of an enum's spellings. Its `Display` lists the allowed values so
/// the person reading the error can fix the agent or the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {value:?} is not one of {allowed}")]
pub struct UnknownValue {
    /// The field (Graph spelling) the value was given for.
    pub field: &'static str,
    /// The value as received.
    pub value: String,
    /// The accepted spellings, comma separated.
    pub allowed: String,
}

wire_enum! {
    /// How an elevation happened (Graph `privilegeManagementElevationType`, extended with the
    /// two outcomes Intune reports but Graph's 2024 enum lacks: denial and elevate-as-current-user).
    ElevationType, field = "elevationType" {
        /// Done without Endpoint Privilege Management: a user with admin rights used
        /// *Run as administrator*. The only unmanaged type.
        Unmanaged = "unmanagedElevation" / "UnmanagedElevation",
        /// An automatic rule elevated the file silently ("zero touch").
        Automatic = "zeroTouchElevation" / "ZeroTouchElevation",
        /// The user confirmed (justification and/or Windows authentication).
        UserConfirmed = "userConfirmedElevation" / "UserConfirmedElevation",
        /// Support approved the user's request.
        SupportApproved = "supportApprovedElevation" / "SupportApprovedElevation",
        /// Elevated under the user's own account after Windows authentication.
        ElevateAsCurrentUser = "elevateAsCurrentUser" / "ElevateAsCurrentUser",
        /// A deny rule, or support, refused the elevation.
        Denied = "deniedElevation" / "DeniedElevation",
        /// The agent could not tell.
        Undetermined = "undetermined" / "Undetermined",
    }
}

impl ElevationType {
    /// Intune's definition: any elevation EPM facilitated is managed; only *Run as
    /// administrator* by a user who kept admin rights is unmanaged.
    pub fn is_managed(self) -> bool {
        self != ElevationType::Unmanaged
    }
}

wire_enum! {
    /// The kind of account that elevated (Graph `privilegeManagementEndUserType`).
    UserType, field = "userType" {
        /// Entra ID (Azure AD) account.
        AzureAd = "azureAd" / "AzureAd",
        /// Hybrid-joined account.
        Hybrid = "hybrid" / "Hybrid",
        /// Local account on the device.
        Local = "local" / "Local",
        /// Unknown account type.
        Undetermined = "undetermined" / "Undetermined",
    }
}

wire_enum! {
    /// Whether the elevated process was started by the user or by another elevated process
    /// (Graph `privilegeManagementProcessType`).
    ProcessType, field = "processType" {
        /// Started directly (by the shell or a script).
        Parent = "parent" / "Parent",
        /// Started by an elevated parent process.
        Child = "child" / "Child",
        /// Unknown.
        Undefined = "undefined" / "Undefined",
    }
}

/// One elevation on one device: Graph's `privilegeManagementElevation`, normalised.
///
/// Serialised with Graph's camelCase field names, which is also the agent wire format.
/// `fileName` is not on the wire: the warehouse derives it from `filePath`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ElevationEvent {
    /// Unique id of the event; derived from the device, time and file when the agent sent none.
    pub id: String,
    /// When the file was elevated, UTC.
    pub event_date_time: DateTime<Utc>,
    /// How the elevation happened.
    pub elevation_type: ElevationType,
    /// Full path including the file name, Windows separators.
    pub file_path: String,
    /// The last component of `file_path`; derived, never sent.
    #[serde(skip_serializing, default)]
    pub file_name: String,
    /// SHA-256 of the file, 64 upper-case hexadecimal characters.
    pub hash: String,
    /// User principal name of the user who elevated.
    pub upn: String,
    /// The kind of account.
    pub user_type: UserType,
    /// Version-info product name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_name: Option<String>,
    /// Version-info company name: the *publisher* of Intune's reports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    /// Version-info file version, `x.x.x.x`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_version: Option<String>,
    /// Version-info file description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_description: Option<String>,
    /// Version-info internal name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internal_name: Option<String>,
    /// Hash of the signing certificate information; absent for unsigned files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_payload: Option<String>,
    /// The user's justification (user confirmed and support approved only), ≤ 256 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    /// 0 on success, otherwise the exit code; always 0 for unmanaged elevations.
    pub result: i32,
    /// Parent or child process.
    pub process_type: ProcessType,
    /// The process that started this one (always populated by real agents).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_process_name: Option<String>,
    /// The elevation rule that matched (managed elevations only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    /// The policy holding that rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_id: Option<String>,
    /// The policy's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_name: Option<String>,
    /// True when the system, not a user, initiated the elevation.
    pub system_initiated_elevation: bool,
}

/// One diagnostic event: the health of the agent. It never carries a user name, file name,
/// path or hash, which is what lets a device at the `diagnostic` level send it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiagnosticEvent {
    /// When the agent recorded it, UTC.
    pub event_date_time: DateTime<Utc>,
    /// The agent's numeric event id.
    pub event_id: i32,
    /// The agent's event name, for example `PolicyApplied`.
    pub event_name: String,
    /// 0, or the error the agent hit (HRESULTs are stored as their unsigned 32-bit value).
    pub error_code: i64,
    /// `rules` or `settings`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_type: Option<String>,
    /// The policy concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_id: Option<String>,
    /// Its version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
}

/// One upload from one device: the body of `POST /v1/agent/batches`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentBatch {
    /// Chosen by the agent; the same id from the same device is stored once.
    pub batch_id: String,
    /// Intune device id.
    pub device_id: String,
    /// Device name, for example `LAPTOP-0042`.
    pub device_name: String,
    /// Agent version.
    pub agent_version: String,
    /// The device's declared reporting level.
    pub reporting_level: crate::ReportingLevel,
    /// Elevations, already filtered by the agent according to its level.
    #[serde(default)]
    pub elevations: Vec<ElevationEvent>,
    /// Diagnostic events.
    #[serde(default)]
    pub diagnostics: Vec<DiagnosticEvent>,
}

/// The file name of a Windows path: the text after the last `\` (or `/`, which Windows
/// accepts too). `C:\Program Files\Git\bin\git.exe` gives `git.exe`.
pub fn file_name_of(path: &str) -> &str {
    path.rsplit(['\\', '/']).next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_name_uses_windows_separators() {
        assert_eq!(file_name_of(r"C:\Program Files\Git\bin\git.exe"), "git.exe");
        assert_eq!(file_name_of(r"\\server\share\setup.msi"), "setup.msi");
        assert_eq!(file_name_of("C:/tools/x.ps1"), "x.ps1");
        assert_eq!(file_name_of("plain.exe"), "plain.exe");
    }

    #[test]
    fn enums_round_trip_their_wire_spelling() {
        for t in ElevationType::ALL {
            assert_eq!(ElevationType::parse(t.as_str()), Ok(*t));
            let json = serde_json::to_string(t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
        }
        let err = ElevationType::parse("adminElevation").unwrap_err();
        assert_eq!(
            err.to_string(),
            "elevationType \"adminElevation\" is not one of unmanagedElevation, zeroTouchElevation, \
             userConfirmedElevation, supportApprovedElevation, elevateAsCurrentUser, deniedElevation, undetermined"
        );
    }

    #[test]
    fn only_unmanaged_is_unmanaged() {
        let unmanaged: Vec<_> = ElevationType::ALL.iter().filter(|t| !t.is_managed()).collect();
        assert_eq!(unmanaged, vec![&ElevationType::Unmanaged]);
    }
}
