//! Reporting levels: what a device may report, mirroring Intune's *Send elevation data for
//! reporting* and *Reporting scope* settings.
//!
//! | level | Intune setting | lets through |
//! | --- | --- | --- |
//! | `none` | Send elevation data: No | nothing |
//! | `diagnostic` | Diagnostic data only | diagnostic events |
//! | `managed` | Diagnostic data and managed elevations only | diagnostics and managed elevations |
//! | `all` | Diagnostic data and all endpoint elevations (Intune's default) | everything |
//!
//! The server applies the *effective* level: the lower of what the device declares and the
//! cap its tenant configured. A device cannot raise its tenant's cap by declaring more.

use crate::model::ElevationType;

wire_enum! {
    /// How much a device reports. Ordered: `none` < `diagnostic` < `managed` < `all`.
    ReportingLevel, field = "reportingLevel" {
        /// Reports nothing.
        None = "none" / "None",
        /// Reports agent health only: no user, file or hash ever.
        Diagnostic = "diagnostic" / "Diagnostic",
        /// Adds elevations EPM managed (rules, default response, support approval).
        Managed = "managed" / "Managed",
        /// Adds unmanaged elevations (*Run as administrator* by users who kept admin rights).
        All = "all" / "All",
    }
}

impl ReportingLevel {
    /// The level the server applies: the lower of the device's declared level and the
    /// tenant's cap.
    pub fn effective(declared: ReportingLevel, tenant_cap: ReportingLevel) -> ReportingLevel {
        declared.min(tenant_cap)
    }

    /// Whether diagnostic events may be stored at this level.
    pub fn allows_diagnostics(self) -> bool {
        self >= ReportingLevel::Diagnostic
    }

    /// Whether an elevation of this type may be stored at this level.
    pub fn allows_elevation(self, elevation_type: ElevationType) -> bool {
        match self {
            ReportingLevel::None | ReportingLevel::Diagnostic => false,
            ReportingLevel::Managed => elevation_type.is_managed(),
            ReportingLevel::All => true,
        }
    }
}

impl Default for ReportingLevel {
    /// Intune's default scope: diagnostic data and all endpoint elevations.
    fn default() -> Self {
        ReportingLevel::All
    }
}

#[cfg(test)]
mod tests {
    use super::ReportingLevel::{self, *};
    use crate::ElevationType;

    /// Every declared level × every tenant cap, written out by hand so the table is the
    /// specification rather than a restatement of `min`.
    #[test]
    fn effective_level_for_every_declared_level_and_cap() {
        let table: [(ReportingLevel, ReportingLevel, ReportingLevel); 16] = [
            (None, None, None),
            (None, Diagnostic, None),
            (None, Managed, None),
            (None, All, None),
            (Diagnostic, None, None),
            (Diagnostic, Diagnostic, Diagnostic),
            (Diagnostic, Managed, Diagnostic),
            (Diagnostic, All, Diagnostic),
            (Managed, None, None),
            (Managed, Diagnostic, Diagnostic),
            (Managed, Managed, Managed),
            (Managed, All, Managed),
            (All, None, None),
            (All, Diagnostic, Diagnostic),
            (All, Managed, Managed),
            (All, All, All),
        ];
        for (declared, cap, expected) in table {
            assert_eq!(
                ReportingLevel::effective(declared, cap),
                expected,
                "declared {declared}, cap {cap}"
            );
        }
    }

    #[test]
    fn what_each_level_lets_through() {
        // (level, diagnostics, managed elevation, unmanaged elevation)
        let table = [
            (None, false, false, false),
            (Diagnostic, true, false, false),
            (Managed, true, true, false),
            (All, true, true, true),
        ];
        for (level, diagnostics, managed, unmanaged) in table {
            assert_eq!(level.allows_diagnostics(), diagnostics, "{level} diagnostics");
            for t in ElevationType::ALL {
                let expected = if t.is_managed() { managed } else { unmanaged };
                assert_eq!(level.allows_elevation(*t), expected, "{level} {t}");
            }
        }
    }

    #[test]
    fn unknown_level_names_the_allowed_values() {
        assert_eq!(
            ReportingLevel::parse("everything").unwrap_err().to_string(),
            "reportingLevel \"everything\" is not one of none, diagnostic, managed, all"
        );
    }
}
