//! Tenant names and settings: how much a tenant lets its devices report, and how long its rows
//! are kept. The warehouse gets the retention as plain numbers ([`warehouse::Retention`]).

use serde::{Deserialize, Serialize};
use warehouse::{ReportingLevel, Retention, Table};

use crate::ControlError;

/// Settings of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantSettings {
    /// The highest reporting level the tenant accepts; devices declaring more are capped.
    pub reporting_cap: ReportingLevel,
    /// Days of raw elevations kept (default 400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elevation_retention_days: Option<u32>,
    /// Days of diagnostic events kept (default 90).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostic_retention_days: Option<u32>,
    /// Hours an approval of an elevation request lasts when the approver names none
    /// (default 24, Intune's fixed window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_hours: Option<u32>,
    /// The most hours an approver may give one approval (default 168, a week).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_approval_hours: Option<u32>,
    /// Hours a request waits for a decision before it expires (default 48).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_expiry_hours: Option<u32>,
}

/// Hours an approval lasts unless the tenant or the approver says otherwise.
pub const DEFAULT_APPROVAL_HOURS: u32 = 24;
/// The longest approval unless the tenant says otherwise.
pub const DEFAULT_MAX_APPROVAL_HOURS: u32 = 168;
/// Hours a request waits for a decision unless the tenant says otherwise.
pub const DEFAULT_REQUEST_EXPIRY_HOURS: u32 = 48;
/// No window over a year: a longer one is a rule, not an approval.
const MAX_WINDOW_HOURS: u32 = 24 * 366;

impl Default for TenantSettings {
    fn default() -> Self {
        TenantSettings {
            reporting_cap: ReportingLevel::All,
            elevation_retention_days: None,
            diagnostic_retention_days: None,
            approval_hours: None,
            max_approval_hours: None,
            request_expiry_hours: None,
        }
    }
}

impl TenantSettings {
    /// The retention windows, as the warehouse's maintenance takes them.
    pub fn retention(&self) -> Retention {
        Retention {
            elevation_days: self.elevation_retention_days,
            diagnostic_days: self.diagnostic_retention_days,
        }
    }

    /// Days of rows a table keeps for this tenant.
    pub fn retention_days(&self, table: Table) -> u32 {
        self.retention().days(table)
    }

    /// Hours an approval lasts when the approver names none.
    pub fn approval_hours(&self) -> u32 {
        self.approval_hours.unwrap_or(DEFAULT_APPROVAL_HOURS)
    }

    /// The most hours one approval may last.
    pub fn max_approval_hours(&self) -> u32 {
        self.max_approval_hours.unwrap_or(DEFAULT_MAX_APPROVAL_HOURS)
    }

    /// Hours a request waits for a decision.
    pub fn request_expiry_hours(&self) -> u32 {
        self.request_expiry_hours.unwrap_or(DEFAULT_REQUEST_EXPIRY_HOURS)
    }

    /// Refuses retention windows outside 1 to 36,500 days, and request windows outside 1 hour
    /// to a year or a default approval longer than the maximum.
    pub fn check(&self) -> Result<(), ControlError> {
        for (name, hours) in [
            ("approvalHours", self.approval_hours),
            ("maxApprovalHours", self.max_approval_hours),
            ("requestExpiryHours", self.request_expiry_hours),
        ] {
            if let Some(hours) = hours
                && !(1..=MAX_WINDOW_HOURS).contains(&hours)
            {
                return Err(ControlError::Invalid(format!(
                    "{name} must be 1 to {MAX_WINDOW_HOURS} hours, not {hours}"
                )));
            }
        }
        if self.approval_hours() > self.max_approval_hours() {
            return Err(ControlError::Invalid(format!(
                "approvalHours ({}) cannot exceed maxApprovalHours ({})",
                self.approval_hours(),
                self.max_approval_hours()
            )));
        }
        for days in [self.elevation_retention_days, self.diagnostic_retention_days]
            .into_iter()
            .flatten()
        {
            if !(1..=36_500).contains(&days) {
                return Err(ControlError::Invalid(format!(
                    "retention must be 1 to 36500 days, not {days}"
                )));
            }
        }
        Ok(())
    }

    /// The settings as the audit log's old and new values.
    pub(crate) fn audit_properties(&self) -> [(&'static str, String); 6] {
        let days = |d: Option<u32>| d.map(|d| d.to_string()).unwrap_or_else(|| "default".into());
        [
            ("reportingCap", self.reporting_cap.as_str().to_owned()),
            ("elevationRetentionDays", days(self.elevation_retention_days)),
            ("diagnosticRetentionDays", days(self.diagnostic_retention_days)),
            ("approvalHours", days(self.approval_hours)),
            ("maxApprovalHours", days(self.max_approval_hours)),
            ("requestExpiryHours", days(self.request_expiry_hours)),
        ]
    }
}

/// A change to a tenant's settings: fields left `None` stay as they are. The command line and
/// the admin API both change settings with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsChange {
    /// The highest reporting level accepted.
    pub reporting_cap: Option<ReportingLevel>,
    /// Days of raw elevations kept.
    pub elevation_retention_days: Option<u32>,
    /// Days of diagnostic events kept.
    pub diagnostic_retention_days: Option<u32>,
    /// Hours an approval lasts when the approver names none.
    pub approval_hours: Option<u32>,
    /// The most hours one approval may last.
    pub max_approval_hours: Option<u32>,
    /// Hours a request waits for a decision.
    pub request_expiry_hours: Option<u32>,
}

impl SettingsChange {
    /// Applies the change (the caller checks the result with [`TenantSettings::check`]).
    pub fn apply(&self, settings: &mut TenantSettings) {
        if let Some(cap) = self.reporting_cap {
            settings.reporting_cap = cap;
        }
        for (new, setting) in [
            (self.elevation_retention_days, &mut settings.elevation_retention_days),
            (self.diagnostic_retention_days, &mut settings.diagnostic_retention_days),
            (self.approval_hours, &mut settings.approval_hours),
            (self.max_approval_hours, &mut settings.max_approval_hours),
            (self.request_expiry_hours, &mut settings.request_expiry_hours),
        ] {
            if new.is_some() {
                *setting = new;
            }
        }
    }
}

/// Checks a tenant name: lower-case letters, digits and dashes, 1–63 characters, so it is
/// safe as a partition value and a path segment everywhere.
pub fn check_tenant_name(tenant: &str) -> Result<(), ControlError> {
    let ok = !tenant.is_empty()
        && tenant.len() <= 63
        && tenant
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !tenant.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(ControlError::Invalid(format!(
            "tenant {tenant:?} must be 1-63 lower-case letters, digits or dashes, not starting with a dash"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_default_to_everything_and_the_warehouse_windows() {
        let settings = TenantSettings::default();
        assert_eq!(settings.reporting_cap, ReportingLevel::All);
        assert_eq!(
            settings.retention_days(Table::Elevations),
            warehouse::retention::DEFAULT_ELEVATION_RETENTION_DAYS
        );
        let long = TenantSettings {
            elevation_retention_days: Some(3000),
            ..settings
        };
        assert_eq!(long.retention_days(Table::DailyCounts), 3000);
        assert!(
            TenantSettings {
                diagnostic_retention_days: Some(0),
                ..long
            }
            .check()
            .is_err()
        );
        assert!(check_tenant_name("-x").is_err() && check_tenant_name("north-wind2").is_ok());
    }

    #[test]
    fn a_change_touches_only_the_fields_it_names() {
        let mut settings = TenantSettings {
            elevation_retention_days: Some(800),
            approval_hours: Some(8),
            ..TenantSettings::default()
        };
        SettingsChange {
            reporting_cap: Some(ReportingLevel::Managed),
            request_expiry_hours: Some(12),
            ..SettingsChange::default()
        }
        .apply(&mut settings);
        assert_eq!(settings.reporting_cap, ReportingLevel::Managed);
        assert_eq!(
            (
                settings.elevation_retention_days,
                settings.approval_hours,
                settings.request_expiry_hours
            ),
            (Some(800), Some(8), Some(12))
        );
        assert_eq!(settings.diagnostic_retention_days, None);
        settings.approval_hours = Some(200);
        assert!(settings.check().unwrap_err().to_string().contains("maxApprovalHours"));
    }
}
