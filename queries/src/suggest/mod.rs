//! Rule-tuning suggestions: what an EPM admin should change in their rules, ranked, explained
//! and backed by evidence from the warehouse.
//!
//! The tenant's elevations in the window are read grouped finely enough (file, publisher,
//! hash, elevation type, process type, parent, rule, outcome) that every kind below is decided
//! in plain Rust over the groups, with distinct users, devices, device names and folders
//! carried as bitmaps of numbers; with them the rules events ever reported (to find rules that
//! stopped matching) and each user's unmanaged elevations per file (for readiness). Rules that
//! never fired are known from imported policies (`elevation rules import`).
//!
//! `read` takes the whole days whose `daily_suggestions` rows are current from that rollup and
//! every other day from the raw rows, through the aggregates and merge of
//! `warehouse::suggestion_days`: counts sum, extremes compare, sets unite, so the answer is the
//! raw rows' answer (tested against the raw path and an independent computation). `decide`
//! makes the suggestions of each kind, `rule` words them and proposes rules, `params` reads a
//! request from `key=value` parameters.
//!
//! The kinds, their thresholds and the proposed rule's elevation type follow the logic
//! documented on [`Thresholds`] and in the README; the same data always gives the same
//! suggestions in the same order, each with an id derived from what it is about.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use datafusion::error::DataFusionError;
use datafusion::functions_aggregate::expr_fn::{max, min};
use datafusion::prelude::{ident, lit};
use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use warehouse::policy::{
    Certificate, CertificateType, ChildProcessBehavior, ElevationRule, RuleType, RulesPolicy, Validation,
    compare_versions,
};
use warehouse::{Table, Warehouse};

use crate::QueryError;
use crate::reports::{Cell, column_cells, tenant_window};

mod decide;
mod groups;
mod params;
mod read;
mod rule;

use decide::decide;
use groups::{Acc, Dictionary, FileKey, Group, KnownRule, Names, UserUnmanaged, score, stable_id};
pub use params::ParsedSuggest;
use read::{Read, read, rule_type_of};
use rule::{
    display_name, match_note, new_rule_type, proposed_rule, rule_label, rule_type_words, suggestion, with_article,
};

const UNMANAGED: &str = "unmanagedElevation";
const SUPPORT_APPROVED: &str = "supportApprovedElevation";
const DENIED: &str = "deniedElevation";
const AUTOMATIC: &str = "zeroTouchElevation";

/// The thresholds that decide when evidence is strong enough to suggest something. Every one
/// can be set per request (`--threshold minEvents=20`, `?minEvents=20`); the defaults suit a
/// tenant of a few hundred devices looking at 30 days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Thresholds {
    /// New rule: elevations of a file no rule names (default 10) ...
    pub min_events: u64,
    /// ... by at least this many users (default 3).
    pub min_users: u64,
    /// Support approved → user confirmed: support approved the file for at least this many
    /// distinct users (default 5) ...
    pub support_min_users: u64,
    /// ... and approved at least this share of the requests, in percent (default 80).
    pub support_min_approval_percent: u64,
    /// A new rule may be automatic only when at least this many users elevate the file
    /// (default 10), besides being hash-pinned, signed by a trusted publisher and never
    /// denied or failed.
    pub automatic_min_users: u64,
    /// Fewer users than this make a file rare: its new rule is support approved (default 5).
    pub rare_below_users: u64,
    /// Hash churn: at least this many hashes of a file a hash rule pins (default 3).
    pub churn_min_hashes: u64,
    /// Frequently denied: at least this many denials of a file (default 10) ...
    pub denied_min_events: u64,
    /// ... for at least this many users (default 3).
    pub denied_min_users: u64,
    /// Child process: at least this many denied runs of a child without a rule (default 5) ...
    pub child_min_events: u64,
    /// ... for at least this many users (default 3).
    pub child_min_users: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            min_events: 10,
            min_users: 3,
            support_min_users: 5,
            support_min_approval_percent: 80,
            automatic_min_users: 10,
            rare_below_users: 5,
            churn_min_hashes: 3,
            denied_min_events: 10,
            denied_min_users: 3,
            child_min_events: 5,
            child_min_users: 3,
        }
    }
}

impl Thresholds {
    /// The parameter names, as the API and the command line spell them.
    pub const NAMES: [&'static str; 11] = [
        "minEvents",
        "minUsers",
        "supportMinUsers",
        "supportMinApprovalPercent",
        "automaticMinUsers",
        "rareBelowUsers",
        "churnMinHashes",
        "deniedMinEvents",
        "deniedMinUsers",
        "childMinEvents",
        "childMinUsers",
    ];

    /// Sets one threshold by its parameter name; `Ok(false)` when the name is not one.
    pub fn set(&mut self, name: &str, value: &str) -> Result<bool, QueryError> {
        let slot = match name {
            "minEvents" => &mut self.min_events,
            "minUsers" => &mut self.min_users,
            "supportMinUsers" => &mut self.support_min_users,
            "supportMinApprovalPercent" => &mut self.support_min_approval_percent,
            "automaticMinUsers" => &mut self.automatic_min_users,
            "rareBelowUsers" => &mut self.rare_below_users,
            "churnMinHashes" => &mut self.churn_min_hashes,
            "deniedMinEvents" => &mut self.denied_min_events,
            "deniedMinUsers" => &mut self.denied_min_users,
            "childMinEvents" => &mut self.child_min_events,
            "childMinUsers" => &mut self.child_min_users,
            _ => return Ok(false),
        };
        let max = if name == "supportMinApprovalPercent" {
            100
        } else {
            1_000_000_000
        };
        *slot = match value.parse::<u64>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                return Err(QueryError::BadParameter(format!(
                    "{name} {value:?} must be a whole number from 1 to {max}"
                )));
            }
        };
        Ok(true)
    }
}

/// The kinds of suggestion, in the order they are explained in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SuggestionKind {
    /// A file elevated often without any rule: create one.
    NewRule,
    /// Support keeps approving a file for several users: let users confirm it themselves.
    SupportApprovedToUserConfirmed,
    /// A hash rule keeps breaking as the file is updated: trust the publisher's certificate.
    HashChurnToCertificate,
    /// A rule that matched nothing in the window: retire it.
    StaleRule,
    /// A file users keep trying and failing to elevate: review the deny or the missing rule.
    FrequentlyDenied,
    /// A child process denied because its parent's rule requires a rule for it.
    ChildProcess,
    /// Users who still elevate without EPM, and what stands between them and standard rights.
    Readiness,
}

impl SuggestionKind {
    /// Every kind.
    pub const EVERY: [SuggestionKind; 7] = [
        SuggestionKind::NewRule,
        SuggestionKind::SupportApprovedToUserConfirmed,
        SuggestionKind::HashChurnToCertificate,
        SuggestionKind::StaleRule,
        SuggestionKind::FrequentlyDenied,
        SuggestionKind::ChildProcess,
        SuggestionKind::Readiness,
    ];

    /// The camelCase name.
    pub fn as_str(self) -> &'static str {
        match self {
            SuggestionKind::NewRule => "newRule",
            SuggestionKind::SupportApprovedToUserConfirmed => "supportApprovedToUserConfirmed",
            SuggestionKind::HashChurnToCertificate => "hashChurnToCertificate",
            SuggestionKind::StaleRule => "staleRule",
            SuggestionKind::FrequentlyDenied => "frequentlyDenied",
            SuggestionKind::ChildProcess => "childProcess",
            SuggestionKind::Readiness => "readiness",
        }
    }

    /// Parses a camelCase name.
    pub fn parse(text: &str) -> Result<SuggestionKind, QueryError> {
        SuggestionKind::EVERY
            .into_iter()
            .find(|k| k.as_str() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = SuggestionKind::EVERY.iter().map(|k| k.as_str()).collect();
                QueryError::BadParameter(format!("kind {text:?} is not one of {}", names.join(", ")))
            })
    }

    /// How much one unit of evidence of this kind weighs in the ranking.
    fn weight(self) -> f64 {
        match self {
            // Help-desk time saved on every request, and users no longer waiting.
            SuggestionKind::SupportApprovedToUserConfirmed => 1.5,
            // Every release breaks users until the rule is fixed.
            SuggestionKind::HashChurnToCertificate => 1.3,
            // Users are blocked outright.
            SuggestionKind::ChildProcess => 1.2,
            SuggestionKind::NewRule | SuggestionKind::FrequentlyDenied => 1.0,
            SuggestionKind::Readiness => 0.8,
            // Housekeeping: no user is affected today.
            SuggestionKind::StaleRule => 0.5,
        }
    }
}

/// A rule as the suggestions know it: from an imported policy, from events, or both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleRef {
    /// The policy holding it.
    pub policy_name: String,
    /// Its name, when known from an imported policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_name: Option<String>,
    /// Its id, when events reported it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    /// The file it names.
    pub file_name: String,
    /// The hash it pins, if it is a hash rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_hash: Option<String>,
    /// Its elevation type, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_type: Option<RuleType>,
    /// Elevations it decided in the window.
    pub matches_in_window: u64,
    /// The last elevation it decided, ever, when events reported one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_matched: Option<DateTime<Utc>>,
}

/// What a suggestion rests on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    /// Elevations that make up the evidence.
    pub events: u64,
    /// Distinct users among them.
    pub users: u64,
    /// Distinct devices among them.
    pub devices: u64,
    /// The first of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<DateTime<Utc>>,
    /// The last of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<DateTime<Utc>>,
    /// Elevations per `elevationType`.
    pub by_elevation_type: BTreeMap<String, u64>,
    /// Elevations that ran but failed (`result` ≠ 0, not denied).
    pub failed: u64,
    /// Publishers (`companyName`) involved.
    pub publishers: Vec<String>,
    /// Hashes involved.
    pub hashes: Vec<String>,
    /// Versions involved, lowest first.
    pub versions: Vec<String>,
    /// The hash of the newest version seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newest_hash: Option<String>,
    /// Folders the file ran from.
    pub folders: Vec<String>,
    /// Processes that started it.
    pub parent_processes: Vec<String>,
    /// A few of the users' justifications.
    pub sample_justifications: Vec<String>,
    /// A few of the users (the first five by name).
    pub sample_users: Vec<String>,
    /// Every user, by name (EPManager's CSV lists them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_names: Vec<String>,
    /// Every device, by name, likewise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_names: Vec<String>,
    /// The help desk's support-approved requests for the file in the window, when it had any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support_requests: Option<RequestEvidence>,
}

/// What the help desk's support-approved requests say about one file in the window (the
/// control plane counts them; the caller hands them in, as it does the imported policies).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestEvidence {
    /// Requests for the file.
    pub requests: u64,
    /// Approved.
    pub approved: u64,
    /// Denied.
    pub denied: u64,
    /// Distinct requesters.
    pub users: u64,
    /// Median seconds from a request to its decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_seconds_to_decision: Option<i64>,
}

/// One suggestion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Suggestion {
    /// Stable id: the same subject gives the same id on every run.
    pub id: String,
    /// What kind of change it is.
    pub kind: SuggestionKind,
    /// Rank: higher first. `weight(kind) × log2(1 + events) × log2(1 + users)`, rounded.
    pub score: f64,
    /// One line.
    pub title: String,
    /// Why, in plain language, with the numbers.
    pub rationale: String,
    /// The file concerned (none for fleet-wide readiness).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// Its publisher.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    /// The user concerned (readiness).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upn: Option<String>,
    /// The evidence.
    pub evidence: Evidence,
    /// The rule the suggestion is about (stale, hash churn, frequently denied by a rule).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<RuleRef>,
    /// The complete rule it proposes, ready to export.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proposed_rule: Option<ElevationRule>,
    /// The users and devices of the evidence, by number, until [`Ranked`] hands the
    /// suggestion out with their names.
    #[serde(skip)]
    pub(crate) unnamed: NameSets,
}

/// Users and device names by number ([`Names`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct NameSets {
    users: RoaringBitmap,
    device_names: RoaringBitmap,
}

/// Every suggestion of a request, ranked. The evidence's lists of every user and device by
/// name (`userNames`, `deviceNames`) are filled in only for the suggestions handed out
/// ([`Ranked::page`], [`Ranked::all`]): over 30 days of a 20,000-device fleet they hold ~1 M
/// names, and copying and sorting them was a sixth of the dashboard page, which shows none.
#[derive(Debug)]
pub struct Ranked {
    suggestions: Vec<Suggestion>,
    names: Names,
}

impl Ranked {
    /// How many.
    pub fn len(&self) -> usize {
        self.suggestions.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.suggestions.is_empty()
    }

    /// The suggestions in rank order, their evidence not yet naming every user and device.
    pub fn iter(&self) -> std::slice::Iter<'_, Suggestion> {
        self.suggestions.iter()
    }

    /// Keeps the suggestions `keep` accepts, in order.
    pub fn retain(&mut self, keep: impl FnMut(&Suggestion) -> bool) {
        self.suggestions.retain(keep);
    }

    /// `limit` suggestions (all when `None`) from `offset`, named.
    pub fn page(self, offset: usize, limit: Option<usize>) -> Vec<Suggestion> {
        let names = self.names;
        self.suggestions
            .into_iter()
            .skip(offset)
            .take(limit.unwrap_or(usize::MAX))
            .map(|mut s| {
                let sets = std::mem::take(&mut s.unnamed);
                s.evidence.user_names = names.users.sorted(&sets.users);
                s.evidence.device_names = names.device_names.sorted(&sets.device_names);
                s
            })
            .collect()
    }

    /// Every suggestion, named.
    pub fn all(self) -> Vec<Suggestion> {
        self.page(0, None)
    }
}

/// One request for suggestions.
#[derive(Debug, Clone, PartialEq)]
pub struct SuggestRequest {
    /// Whose elevations: the key's tenant (API) or `--tenant` (CLI).
    pub tenant: String,
    /// Start of the window, inclusive.
    pub from: DateTime<Utc>,
    /// End of the window, exclusive.
    pub to: DateTime<Utc>,
    /// The thresholds.
    pub thresholds: Thresholds,
    /// Publishers the tenant trusts enough for automatic rules, besides those its automatic
    /// rules already trust.
    pub trusted_publishers: BTreeSet<String>,
    /// Rules policies imported for the tenant.
    pub imported: Vec<RulesPolicy>,
    /// The tenant's support-approved requests in the window, by lower-case file name.
    pub support_requests: BTreeMap<String, RequestEvidence>,
    /// Only these kinds (all when empty).
    pub kinds: BTreeSet<SuggestionKind>,
    /// Only the suggestions about this file (its name, in any case): the scans read its
    /// elevations and the rule-decided ones the decisions about it also weigh (trusted
    /// publishers, a parent's rule), so the answer for the file is the unrestricted one.
    /// Readiness, which is about users, is then not computed.
    pub file: Option<String>,
}

impl SuggestRequest {
    /// A request with the default thresholds over `[from, to)`.
    pub fn new(tenant: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> SuggestRequest {
        SuggestRequest {
            tenant: tenant.to_owned(),
            from,
            to,
            thresholds: Thresholds::default(),
            trusted_publishers: BTreeSet::new(),
            imported: Vec::new(),
            support_requests: BTreeMap::new(),
            kinds: BTreeSet::new(),
            file: None,
        }
    }
}

/// Computes the suggestions, best first.
pub async fn suggest(warehouse: &Warehouse, request: &SuggestRequest) -> Result<Vec<Suggestion>, QueryError> {
    Ok(ranked(warehouse, request).await?.all())
}

/// [`suggest`], with the users and devices named only for the suggestions handed out.
pub async fn ranked(warehouse: &Warehouse, request: &SuggestRequest) -> Result<Ranked, QueryError> {
    if request.from >= request.to {
        return Err(QueryError::BadParameter(format!(
            "from ({}) must be before to ({})",
            request.from, request.to
        )));
    }
    let read = read(warehouse, request).await?;
    let mut suggestions = decide(request, &read);
    if !request.kinds.is_empty() {
        suggestions.retain(|s| request.kinds.contains(&s.kind));
    }
    if let Some(file) = &request.file {
        let file = file.to_lowercase();
        suggestions.retain(|s| s.file_name.as_ref().is_some_and(|f| f.to_lowercase() == file));
    }
    suggestions.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.kind.cmp(&b.kind))
            .then_with(|| a.id.cmp(&b.id))
    });
    Ok(Ranked {
        suggestions,
        names: read.names,
    })
}
