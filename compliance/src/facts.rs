//! What a pack found, and what that means for each control it reports on: the findings that
//! `assessment-results.json` and `summary.html` both state.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use warehouse::ReportingLevel;

use crate::files::{self, CoverageRow, ElevationFiles, TableRetention};
use crate::read::UserUse;

/// Everything the pack's files were written from.
#[derive(Debug, Clone)]
pub(crate) struct Facts {
    pub(crate) tenant: String,
    pub(crate) from: DateTime<Utc>,
    pub(crate) to: DateTime<Utc>,
    pub(crate) cap: ReportingLevel,
    pub(crate) versions: BTreeMap<String, u64>,
    pub(crate) elevations: ElevationFiles,
    pub(crate) users: BTreeMap<String, UserUse>,
    pub(crate) coverage: Vec<CoverageRow>,
    pub(crate) retention: Vec<TableRetention>,
    pub(crate) support_requests: Vec<files::SupportRequest>,
}

/// One control's finding.
#[derive(Debug, Clone)]
pub(crate) struct Finding {
    /// The NIST SP 800-53 control id (OSCAL spelling: `ac-6.9`).
    pub(crate) control: &'static str,
    pub(crate) title: &'static str,
    pub(crate) satisfied: bool,
    /// What the data shows, in one paragraph.
    pub(crate) text: String,
    /// The pack's files that evidence it.
    pub(crate) evidence: &'static [&'static str],
    /// The CIS Controls v8 safeguard it also answers.
    pub(crate) cis: Option<&'static str>,
}

impl Facts {
    /// The period's elevations summed over users.
    pub(crate) fn totals(&self) -> UserUse {
        self.users.values().fold(UserUse::default(), |t, u| UserUse {
            elevations: t.elevations + u.elevations,
            managed: t.managed + u.managed,
            unmanaged: t.unmanaged + u.unmanaged,
            denied: t.denied + u.denied,
            support_approved: t.support_approved + u.support_approved,
        })
    }

    /// Users with unmanaged elevations: still using local administrator rights.
    pub(crate) fn users_unmanaged(&self) -> usize {
        self.users.values().filter(|u| u.unmanaged > 0).count()
    }

    /// Devices by the lowest level they reported at in the period (`None`: silent throughout).
    pub(crate) fn devices_by_level(&self) -> BTreeMap<Option<ReportingLevel>, usize> {
        let mut out = BTreeMap::new();
        for row in &self.coverage {
            *out.entry(row.lowest).or_default() += 1;
        }
        out
    }

    pub(crate) fn below_cap(&self) -> usize {
        self.coverage.iter().filter(|r| r.below_cap).count()
    }

    pub(crate) fn silent(&self) -> usize {
        self.coverage.iter().filter(|r| r.silent).count()
    }

    pub(crate) fn not_at_all(&self) -> usize {
        self.coverage
            .iter()
            .filter(|r| r.lowest != Some(ReportingLevel::All))
            .count()
    }

    pub(crate) fn below_managed(&self) -> usize {
        self.coverage
            .iter()
            .filter(|r| r.lowest.is_none_or(|l| l < ReportingLevel::Managed))
            .count()
    }

    /// AC-5: who decided the support-approved requests of the period, against who made them.
    fn separation_of_duties(&self) -> Finding {
        let requests = &self.support_requests;
        let decided: Vec<&files::SupportRequest> = requests.iter().filter(|r| !r.reviewed_by.is_empty()).collect();
        let own = decided
            .iter()
            .filter(|r| r.reviewed_by.eq_ignore_ascii_case(&r.requested_by))
            .count();
        let approvers: std::collections::BTreeSet<String> =
            decided.iter().map(|r| r.reviewed_by.to_lowercase()).collect();
        let approved = requests.iter().filter(|r| r.approval_expiry.is_some()).count();
        let unused = requests
            .iter()
            .filter(|r| r.approval_expiry.is_some() && r.first_used_at.is_none() && r.status != "approved")
            .count();
        Finding {
            control: "ac-5",
            title: "Separation of duties",
            satisfied: own == 0,
            text: format!(
                "{} support-approved elevation requests were made in the period; {} were decided by {} approvers, \
                 {own} of them by the person who made the request (elevation refuses self-approval and records \
                 the attempt in its audit log). {approved} were approved, {unused} of those ended unused.",
                requests.len(),
                decided.len(),
                approvers.len()
            ),
            evidence: &[files::SUPPORT_REQUESTS, files::PRIVILEGED_USE],
            cis: None,
        }
    }

    /// The findings, in the order the documents list them.
    pub(crate) fn findings(&self) -> Vec<Finding> {
        let totals = self.totals();
        let devices = self.coverage.len();
        let not_all = self.not_at_all();
        let below_managed = self.below_managed();
        let silent = self.silent();
        let retention_flagged: Vec<&TableRetention> = self.retention.iter().filter(|r| r.flagged).collect();
        let users_unmanaged = self.users_unmanaged();
        vec![
            Finding {
                control: "ac-6.9",
                title: "Log use of privileged functions",
                satisfied: not_all == 0 && silent == 0,
                text: format!(
                    "{} elevations by {} users on {devices} devices were logged in the period. {not_all} devices did \
                     not report at level all for the whole period (their unmanaged elevations are not logged) and \
                     {silent} were silent at its end.",
                    totals.elevations,
                    self.users.len()
                ),
                evidence: &[files::ELEVATIONS_CSV, files::ELEVATIONS_PARQUET, files::COVERAGE],
                cis: None,
            },
            Finding {
                control: "au-2",
                title: "Event logging",
                satisfied: below_managed == 0,
                text: format!(
                    "Elevations (every type Intune reports) and agent diagnostics are logged. {below_managed} of \
                     {devices} devices logged no elevations in the period (diagnostics only, or no events)."
                ),
                evidence: &[files::COVERAGE],
                cis: None,
            },
            Finding {
                control: "au-3",
                title: "Content of audit records",
                satisfied: self.elevations.incomplete == 0,
                text: format!(
                    "Each of the {} records states what (type, file, hash, publisher), when, where (device), source \
                     (process, batch, agent), outcome (result) and identity (user principal name, user type), with \
                     justification, rule and policy. {} records lack a required field.",
                    self.elevations.rows, self.elevations.incomplete
                ),
                evidence: &[files::ELEVATIONS_CSV, files::ELEVATIONS_PARQUET],
                cis: None,
            },
            Finding {
                control: "au-9",
                title: "Protection of audit information",
                satisfied: true,
                text: format!(
                    "Every file of this pack is listed with its SHA-256 in manifest.json, signed with Ed25519 (DSSE \
                     envelope and minisign). The rows were read from append-only Delta tables at the recorded \
                     versions ({}).",
                    self.versions
                        .iter()
                        .map(|(t, v)| format!("{t} {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                evidence: &[files::ELEVATIONS_CSV, files::ELEVATIONS_PARQUET],
                cis: None,
            },
            Finding {
                control: "au-11",
                title: "Audit record retention",
                satisfied: retention_flagged.is_empty(),
                text: self
                    .retention
                    .iter()
                    .map(|r| format!("{}: kept {} days; {}.", r.table.name(), r.days, r.note))
                    .collect::<Vec<_>>()
                    .join(" "),
                evidence: &[files::RETENTION],
                cis: None,
            },
            self.separation_of_duties(),
            Finding {
                control: "cm-11",
                title: "User-installed software",
                satisfied: totals.unmanaged == 0,
                text: format!(
                    "{} of {} elevations were managed by EPM rules or support approval; {} were unmanaged (run as \
                     administrator with local administrator rights) by {users_unmanaged} users: the CIS 5.4 finding \
                     (administrator privileges used from a daily account). {} were denied.",
                    totals.managed, totals.elevations, totals.unmanaged, totals.denied
                ),
                evidence: &[files::PRIVILEGED_USE, files::ELEVATIONS_CSV],
                cis: Some("5.4"),
            },
        ]
    }
}
