//! How long each table keeps a tenant's rows: the plain numbers maintenance needs. Where a
//! tenant's choice is stored (the control plane) is not the warehouse's concern.

use crate::Table;

/// Raw elevations are kept 400 days by default: 13 months covers a yearly audit plus the month
/// it takes to run one. Tenants that must keep evidence longer (7 years for some regulators)
/// raise it per tenant.
pub const DEFAULT_ELEVATION_RETENTION_DAYS: u32 = 400;
/// Daily rollups are kept 7 years (2,557 days): the longest retention regulators commonly ask.
pub const ROLLUP_RETENTION_DAYS: u32 = 2557;
/// Diagnostic events are kept 90 days by default: they explain recent agent trouble, not history.
pub const DEFAULT_DIAGNOSTIC_RETENTION_DAYS: u32 = 90;

/// A tenant's retention windows; `None` is the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Days of raw elevations kept (default [`DEFAULT_ELEVATION_RETENTION_DAYS`]).
    pub elevation_days: Option<u32>,
    /// Days of diagnostic events kept (default [`DEFAULT_DIAGNOSTIC_RETENTION_DAYS`]).
    pub diagnostic_days: Option<u32>,
}

impl Retention {
    /// Days of rows a table keeps for this tenant.
    pub fn days(&self, table: Table) -> u32 {
        match table {
            Table::Elevations => self.elevation_days.unwrap_or(DEFAULT_ELEVATION_RETENTION_DAYS),
            Table::Diagnostics => self.diagnostic_days.unwrap_or(DEFAULT_DIAGNOSTIC_RETENTION_DAYS),
            // Rollups hold no event detail beyond what the reports group by: kept 7 years, or
            // as long as raw elevations when a tenant keeps those longer.
            Table::DailyElevations
            | Table::DailyCounts
            | Table::DailyUsers
            | Table::DailyDevices
            | Table::DailyUserSets
            | Table::DailyDenied
            | Table::DailySuggestions => self.days(Table::Elevations).max(ROLLUP_RETENTION_DAYS),
            // Numbers are never reused, so they outlive every rollup row that names them: a
            // window longer than the calendar, which retention skips.
            Table::UserNumbers | Table::ValueNumbers => u32::MAX,
        }
    }
}
