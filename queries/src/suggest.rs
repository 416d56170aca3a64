//! Rule-tuning suggestions: what an EPM admin should change in their rules, ranked, explained
//! and backed by evidence from the warehouse.
//!
//! One DataFusion aggregate reads the tenant's elevations in the window, grouped finely
//! enough (file, publisher, hash, elevation type, process type, parent, rule, outcome) that
//! every kind below is decided in plain Rust over the groups, with distinct users, devices and
//! paths carried as lists. A second aggregate lists the rules events ever reported (to find
//! rules that stopped matching), a third each user's unmanaged elevations per file (for
//! readiness). Rules that never fired are known from imported policies (`elevation rules
//! import`).
//!
//! The kinds, their thresholds and the proposed rule's elevation type follow the logic
//! documented on [`Thresholds`] and in the README; the same data always gives the same
//! suggestions in the same order, each with an id derived from what it is about.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::error::DataFusionError;
use datafusion::functions_aggregate::expr_fn::{array_agg, count, count_distinct, max, min, sum};
use datafusion::logical_expr::ExprFunctionExt;
use datafusion::prelude::{ident, lit, when};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use warehouse::policy::{
    Certificate, CertificateType, ChildProcessBehavior, ElevationRule, RuleType, RulesPolicy, Validation,
    compare_versions,
};
use warehouse::{Table, Warehouse};

use crate::reports::{Cell, column_cells, micros, tenant_window};
use crate::{QueryError, session};

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
        }
    }
}

/// A group of identical-looking elevations, as the aggregate returns them.
#[derive(Debug, Clone)]
struct Group {
    file_name: String,
    company_name: Option<String>,
    hash: String,
    file_version: Option<String>,
    product_name: Option<String>,
    internal_name: Option<String>,
    file_description: Option<String>,
    /// The certificates of the group's builds (`None` for an unsigned one).
    certificates: Vec<Option<String>>,
    /// Distinct full paths the file ran from.
    paths: Vec<String>,
    elevation_type: String,
    child: bool,
    parent_process: Option<String>,
    rule_id: Option<String>,
    policy_name: Option<String>,
    failed: bool,
    events: u64,
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
    users: Vec<String>,
    devices: Vec<String>,
    /// Distinct device names (EPManager's report lists them).
    device_names: Vec<String>,
    justifications: Vec<String>,
}

impl Group {
    fn file_key(&self) -> FileKey {
        (self.file_name.to_lowercase(), self.company_name.clone())
    }

    fn denied(&self) -> bool {
        self.elevation_type == DENIED
    }
}

/// A file as suggestions see it: lower-case name and publisher.
type FileKey = (String, Option<String>);

/// Evidence accumulated over groups.
#[derive(Debug, Default)]
struct Acc {
    events: u64,
    failed: u64,
    users: BTreeSet<String>,
    devices: BTreeSet<String>,
    device_names: BTreeSet<String>,
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
    by_type: BTreeMap<String, u64>,
    users_by_type: BTreeMap<String, BTreeSet<String>>,
    publishers: BTreeSet<String>,
    hashes: BTreeSet<String>,
    /// version → hash, to find the build of the lowest and highest version.
    versions: BTreeMap<String, String>,
    folders: BTreeSet<String>,
    parents: BTreeSet<String>,
    justifications: BTreeSet<String>,
    certificates: BTreeSet<Option<String>>,
    with_rule: u64,
    /// A representative group (the first one seen) for the version-info fields.
    sample: Option<Group>,
}

impl Acc {
    fn add(&mut self, g: &Group) {
        self.events += g.events;
        if g.failed && !g.denied() {
            self.failed += g.events;
        }
        self.users.extend(g.users.iter().cloned());
        self.devices.extend(g.devices.iter().cloned());
        self.device_names.extend(g.device_names.iter().cloned());
        self.first = [self.first, g.first].into_iter().flatten().min();
        self.last = [self.last, g.last].into_iter().flatten().max();
        *self.by_type.entry(g.elevation_type.clone()).or_default() += g.events;
        self.users_by_type
            .entry(g.elevation_type.clone())
            .or_default()
            .extend(g.users.iter().cloned());
        self.publishers.extend(g.company_name.clone());
        self.hashes.insert(g.hash.clone());
        if let Some(version) = &g.file_version {
            self.versions.insert(version.clone(), g.hash.clone());
        }
        self.folders.extend(g.paths.iter().map(|p| folder_of(p)));
        self.parents.extend(g.parent_process.clone());
        self.justifications.extend(g.justifications.iter().cloned());
        self.certificates.extend(g.certificates.iter().cloned());
        if g.rule_id.is_some() {
            self.with_rule += g.events;
        }
        if self.sample.is_none() {
            self.sample = Some(g.clone());
        }
    }

    fn of<'a>(groups: impl IntoIterator<Item = &'a Group>) -> Acc {
        let mut acc = Acc::default();
        for g in groups {
            acc.add(g);
        }
        acc
    }

    fn count(&self, elevation_type: &str) -> u64 {
        self.by_type.get(elevation_type).copied().unwrap_or(0)
    }

    fn users_of(&self, elevation_type: &str) -> u64 {
        self.users_by_type.get(elevation_type).map_or(0, |u| u.len() as u64)
    }

    fn denied(&self) -> u64 {
        self.count(DENIED)
    }

    /// The one certificate every build carries, if the file is signed consistently.
    fn certificate(&self) -> Option<&str> {
        match (self.certificates.len(), self.certificates.first()) {
            (1, Some(Some(c))) => Some(c),
            _ => None,
        }
    }

    fn versions_ordered(&self) -> Vec<String> {
        let mut versions: Vec<String> = self.versions.keys().cloned().collect();
        versions.sort_by(|a, b| compare_versions(a, b).then_with(|| a.cmp(b)));
        versions
    }

    /// The hash of the newest version seen (or the greatest hash when no version is known).
    fn newest_hash(&self) -> String {
        self.versions_ordered()
            .last()
            .and_then(|v| self.versions.get(v).cloned())
            .or_else(|| self.hashes.last().cloned())
            .unwrap_or_default()
    }

    fn evidence(&self) -> Evidence {
        Evidence {
            events: self.events,
            users: self.users.len() as u64,
            devices: self.devices.len() as u64,
            first_seen: self.first,
            last_seen: self.last,
            by_elevation_type: self.by_type.clone(),
            failed: self.failed,
            publishers: self.publishers.iter().cloned().collect(),
            hashes: self.hashes.iter().cloned().collect(),
            versions: self.versions_ordered(),
            newest_hash: (!self.hashes.is_empty()).then(|| self.newest_hash()),
            folders: self.folders.iter().cloned().collect(),
            parent_processes: self.parents.iter().cloned().collect(),
            sample_justifications: self.justifications.iter().take(3).cloned().collect(),
            sample_users: self.users.iter().take(5).cloned().collect(),
            user_names: self.users.iter().cloned().collect(),
            device_names: self.device_names.iter().cloned().collect(),
            support_requests: None,
        }
    }
}

/// The folder of a Windows path (`C:\Tools\x.exe` → `C:\Tools`).
fn folder_of(path: &str) -> String {
    path.rsplit_once('\\')
        .map_or_else(String::new, |(folder, _)| folder.to_owned())
}

fn stable_id(kind: SuggestionKind, subject: &str) -> String {
    let digest = Sha256::digest(format!("{}\u{1f}{subject}", kind.as_str()).as_bytes());
    format!("{}-{}", kind.as_str(), &hex::encode(digest)[..12])
}

fn score(kind: SuggestionKind, events: u64, users: u64) -> f64 {
    let raw = kind.weight() * (1.0 + events as f64).log2() * (1.0 + users as f64).log2();
    (raw * 10.0).round() / 10.0
}

/// A rule known to the tenant, merged from imports and events by (policy, file).
#[derive(Debug, Clone)]
struct KnownRule {
    reference: RuleRef,
    imported: Option<ElevationRule>,
}

/// Computes the suggestions, best first.
pub async fn suggest(warehouse: &Warehouse, request: &SuggestRequest) -> Result<Vec<Suggestion>, QueryError> {
    if request.from >= request.to {
        return Err(QueryError::BadParameter(format!(
            "from ({}) must be before to ({})",
            request.from, request.to
        )));
    }
    let ctx = session(warehouse).await?;
    let groups = read_groups(&ctx, request).await?;
    let rules = known_rules(&ctx, request, &groups).await?;
    let unmanaged = unmanaged_by_user(&ctx, request).await?;
    let mut suggestions = decide(request, &groups, &rules, &unmanaged);
    if !request.kinds.is_empty() {
        suggestions.retain(|s| request.kinds.contains(&s.kind));
    }
    suggestions.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.kind.cmp(&b.kind))
            .then_with(|| a.id.cmp(&b.id))
    });
    Ok(suggestions)
}

/// What elevations are grouped by. Version-info fields and the certificate follow from the
/// hash, so they are aggregated rather than grouped on; paths are collected per group (a
/// file in each user's profile folder would otherwise make a group per user).
const GROUP_COLUMNS: [&str; 8] = [
    "fileName",
    "companyName",
    "hash",
    "elevationType",
    "processType",
    "parentProcessName",
    "ruleId",
    "policyName",
];

async fn read_groups(
    ctx: &datafusion::prelude::SessionContext,
    request: &SuggestRequest,
) -> Result<Vec<Group>, QueryError> {
    let mut keys: Vec<_> = GROUP_COLUMNS.iter().map(|c| ident(*c)).collect();
    keys.push(ident("result").not_eq(lit(0i32)).alias("failed"));
    let distinct = |column: &str| array_agg(ident(column)).distinct().build();
    let batches = tenant_window(ctx, Table::Elevations, &request.tenant, request.from, request.to)
        .await?
        .aggregate(
            keys,
            vec![
                count(lit(1)).alias("events"),
                min(ident("eventDateTime")).alias("first"),
                max(ident("eventDateTime")).alias("last"),
                distinct("upn")?.alias("users"),
                distinct("deviceId")?.alias("devices"),
                distinct("deviceName")?.alias("deviceNames"),
                distinct("filePath")?.alias("paths"),
                max(ident("fileVersion")).alias("fileVersion"),
                max(ident("productName")).alias("productName"),
                max(ident("internalName")).alias("internalName"),
                max(ident("fileDescription")).alias("fileDescription"),
                min(ident("certificatePayload")).alias("certificateLow"),
                max(ident("certificatePayload")).alias("certificateHigh"),
                count(ident("certificatePayload")).alias("signed"),
                min(ident("justification")).alias("justificationLow"),
                max(ident("justification")).alias("justificationHigh"),
            ],
        )?
        .collect()
        .await?;
    let mut groups = Vec::new();
    for batch in &batches {
        let column = |name: &str| -> Result<Vec<Cell>, QueryError> {
            let array = batch
                .column_by_name(name)
                .ok_or_else(|| DataFusionError::Internal(format!("no column {name}")))?;
            column_cells(array)
        };
        let mut text: BTreeMap<&str, Vec<Cell>> = BTreeMap::new();
        for name in GROUP_COLUMNS.iter().copied().chain([
            "failed",
            "events",
            "first",
            "last",
            "fileVersion",
            "productName",
            "internalName",
            "fileDescription",
            "certificateLow",
            "certificateHigh",
            "signed",
            "justificationLow",
            "justificationHigh",
        ]) {
            text.insert(name, column(name)?);
        }
        let users = string_lists(batch, "users")?;
        let devices = string_lists(batch, "devices")?;
        let device_names = string_lists(batch, "deviceNames")?;
        let paths = string_lists(batch, "paths")?;
        let get_text = |name: &str, row: usize| match &text[name][row] {
            Cell::Text(t) => Some(t.clone()),
            _ => None,
        };
        let get_time = |name: &str, row: usize| text[name][row].as_time();
        for row in 0..batch.num_rows() {
            let justifications = [get_text("justificationLow", row), get_text("justificationHigh", row)]
                .into_iter()
                .flatten()
                .filter(|j| !j.trim().is_empty())
                .collect();
            let events = text["events"][row].as_int().unwrap_or(0) as u64;
            // Every build a group saw: the one certificate, several, and/or unsigned ones.
            let mut certificates: Vec<Option<String>> =
                [get_text("certificateLow", row), get_text("certificateHigh", row)]
                    .into_iter()
                    .flatten()
                    .map(Some)
                    .collect();
            if (text["signed"][row].as_int().unwrap_or(0) as u64) < events {
                certificates.push(None);
            }
            groups.push(Group {
                file_name: get_text("fileName", row).unwrap_or_default(),
                company_name: get_text("companyName", row),
                hash: get_text("hash", row).unwrap_or_default(),
                file_version: get_text("fileVersion", row),
                product_name: get_text("productName", row),
                internal_name: get_text("internalName", row),
                file_description: get_text("fileDescription", row),
                certificates,
                paths: paths[row].clone(),
                elevation_type: get_text("elevationType", row).unwrap_or_default(),
                child: get_text("processType", row).as_deref() == Some("child"),
                parent_process: get_text("parentProcessName", row),
                rule_id: get_text("ruleId", row),
                policy_name: get_text("policyName", row),
                failed: matches!(text["failed"][row], Cell::Bool(true)),
                events,
                first: get_time("first", row),
                last: get_time("last", row),
                users: users[row].clone(),
                devices: devices[row].clone(),
                device_names: device_names[row].clone(),
                justifications,
            });
        }
    }
    // The aggregate's row order is not defined; the decisions below must not depend on it.
    groups.sort_by(|a, b| {
        (
            &a.file_name,
            &a.company_name,
            &a.hash,
            &a.elevation_type,
            a.child,
            &a.parent_process,
            &a.rule_id,
            &a.policy_name,
            a.failed,
        )
            .cmp(&(
                &b.file_name,
                &b.company_name,
                &b.hash,
                &b.elevation_type,
                b.child,
                &b.parent_process,
                &b.rule_id,
                &b.policy_name,
                b.failed,
            ))
    });
    Ok(groups)
}

/// One user's unmanaged elevations of one file in the window.
#[derive(Debug, Clone)]
struct UserFile {
    upn: String,
    file_name: String,
    events: u64,
    devices: Vec<String>,
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
}

async fn unmanaged_by_user(
    ctx: &datafusion::prelude::SessionContext,
    request: &SuggestRequest,
) -> Result<Vec<UserFile>, QueryError> {
    let batches = tenant_window(ctx, Table::Elevations, &request.tenant, request.from, request.to)
        .await?
        .filter(ident("elevationType").eq(lit(UNMANAGED)))?
        .aggregate(
            vec![ident("upn"), ident("fileName")],
            vec![
                count(lit(1)).alias("events"),
                array_agg(ident("deviceId")).distinct().build()?.alias("devices"),
                min(ident("eventDateTime")).alias("first"),
                max(ident("eventDateTime")).alias("last"),
            ],
        )?
        .sort(vec![ident("upn").sort(true, true), ident("fileName").sort(true, true)])?
        .collect()
        .await?;
    let mut out = Vec::new();
    for batch in &batches {
        let devices = string_lists(batch, "devices")?;
        // Column 3 is the list of devices, read above; the others are scalars.
        let cells: Vec<Vec<Cell>> = batch
            .columns()
            .iter()
            .enumerate()
            .map(|(i, c)| if i == 3 { Ok(Vec::new()) } else { column_cells(c) })
            .collect::<Result<_, _>>()?;
        for (row, devices) in devices.into_iter().enumerate() {
            out.push(UserFile {
                upn: cells[0][row].as_text().unwrap_or_default().to_owned(),
                file_name: cells[1][row].as_text().unwrap_or_default().to_owned(),
                events: cells[2][row].as_int().unwrap_or(0) as u64,
                devices,
                first: cells[4][row].as_time(),
                last: cells[5][row].as_time(),
            });
        }
    }
    Ok(out)
}

/// A list-of-strings column as vectors (nulls dropped).
fn string_lists(batch: &RecordBatch, name: &str) -> Result<Vec<Vec<String>>, QueryError> {
    let array = batch
        .column_by_name(name)
        .ok_or_else(|| DataFusionError::Internal(format!("no column {name}")))?;
    let target = DataType::List(std::sync::Arc::new(Field::new_list_field(DataType::Utf8, true)));
    let lists = cast(array, &target).map_err(DataFusionError::from)?;
    let lists = lists.as_list::<i32>();
    let mut out = Vec::with_capacity(lists.len());
    for row in 0..lists.len() {
        if lists.is_null(row) {
            out.push(Vec::new());
            continue;
        }
        let values = lists.value(row);
        let values = values.as_string::<i32>();
        out.push(
            (0..values.len())
                .filter(|i| !values.is_null(*i))
                .map(|i| values.value(i).to_owned())
                .collect(),
        );
    }
    Ok(out)
}

/// Every rule the tenant is known to have: imported ones, and those events ever reported
/// (in all retained history, not only the window), merged by policy and file name.
async fn known_rules(
    ctx: &datafusion::prelude::SessionContext,
    request: &SuggestRequest,
    groups: &[Group],
) -> Result<Vec<KnownRule>, QueryError> {
    let in_window = ident("eventDateTime")
        .gt_eq(micros(request.from))
        .and(ident("eventDateTime").lt(micros(request.to)));
    let history = ctx
        .table(Table::Elevations.name())
        .await?
        .filter(ident("tenant").eq(lit(request.tenant.as_str())))?
        .filter(
            ident("ruleId")
                .is_not_null()
                .and(ident("processType").not_eq(lit("child"))),
        )?
        .aggregate(
            vec![ident("ruleId")],
            vec![
                max(ident("policyName")).alias("policyName"),
                max(ident("fileName")).alias("fileName"),
                max(ident("hash")).alias("hash"),
                count_distinct(ident("hash")).alias("hashes"),
                max(ident("elevationType")).alias("elevationType"),
                max(ident("eventDateTime")).alias("lastMatched"),
                sum(when(in_window, lit(1i64)).otherwise(lit(0i64))?).alias("inWindow"),
            ],
        )?
        .sort(vec![ident("ruleId").sort(true, true)])?
        .collect()
        .await?;
    let mut rules: Vec<KnownRule> = Vec::new();
    for policy in &request.imported {
        for rule in &policy.rules {
            let matches_in_window = groups
                .iter()
                .filter(|g| {
                    !g.child
                        && g.rule_id.is_some()
                        && g.policy_name.as_deref() == Some(policy.name.as_str())
                        && g.file_name.eq_ignore_ascii_case(&rule.file_name)
                })
                .map(|g| g.events)
                .sum();
            rules.push(KnownRule {
                reference: RuleRef {
                    policy_name: policy.name.clone(),
                    rule_name: Some(rule.name.clone()),
                    rule_id: None,
                    file_name: rule.file_name.clone(),
                    file_hash: rule.file_hash.clone(),
                    rule_type: Some(rule.rule_type),
                    matches_in_window,
                    last_matched: None,
                },
                imported: Some(rule.clone()),
            });
        }
    }
    for batch in &history {
        let cells: Vec<Vec<Cell>> = batch.columns().iter().map(column_cells).collect::<Result<_, _>>()?;
        let rows = (0..batch.num_rows()).map(|r| cells.iter().map(|c| c[r].clone()).collect::<Vec<Cell>>());
        for row in rows {
            let text = |i: usize| row[i].as_text().map(str::to_owned);
            let (Some(rule_id), Some(file_name)) = (text(0), text(2)) else {
                continue;
            };
            let policy_name = text(1).unwrap_or_default();
            let pinned = (row[4].as_int() == Some(1)).then(|| text(3)).flatten();
            let rule_type = text(5).and_then(|t| rule_type_of(&t));
            let last_matched = row[6].as_time();
            let in_window = row[7].as_int().unwrap_or(0) as u64;
            let same = rules.iter_mut().find(|r| {
                r.reference.policy_name == policy_name && r.reference.file_name.eq_ignore_ascii_case(&file_name)
            });
            match same {
                Some(known) => {
                    known.reference.rule_id = Some(rule_id);
                    known.reference.last_matched = last_matched;
                }
                None => rules.push(KnownRule {
                    reference: RuleRef {
                        policy_name,
                        rule_name: None,
                        rule_id: Some(rule_id),
                        file_name,
                        file_hash: pinned,
                        rule_type,
                        matches_in_window: in_window,
                        last_matched,
                    },
                    imported: None,
                }),
            }
        }
    }
    Ok(rules)
}

fn rule_type_of(elevation_type: &str) -> Option<RuleType> {
    RuleType::EVERY
        .into_iter()
        .find(|t| t.elevation_type().as_str() == elevation_type)
}

/// The decisions, in plain Rust over the groups.
fn decide(request: &SuggestRequest, groups: &[Group], rules: &[KnownRule], unmanaged: &[UserFile]) -> Vec<Suggestion> {
    let t = &request.thresholds;
    let named: BTreeSet<String> = rules.iter().map(|r| r.reference.file_name.to_lowercase()).collect();
    let mut trusted = request.trusted_publishers.clone();
    // Publishers whose files the tenant's own rules already elevate automatically.
    trusted.extend(
        groups
            .iter()
            .filter(|g| g.rule_id.is_some() && g.elevation_type == AUTOMATIC)
            .filter_map(|g| g.company_name.clone()),
    );
    let mut files: BTreeMap<FileKey, Vec<&Group>> = BTreeMap::new();
    for g in groups.iter().filter(|g| !g.child) {
        files.entry(g.file_key()).or_default().push(g);
    }
    let mut out = Vec::new();
    let mut replaced_by_churn: BTreeSet<(String, String)> = BTreeSet::new();

    // 1 and 2: files no rule names.
    for ((lower, company), gs) in &files {
        if named.contains(lower) {
            continue;
        }
        let acc = Acc::of(gs.iter().copied());
        let approved = acc.count(SUPPORT_APPROVED);
        let support_denied: u64 = gs
            .iter()
            .filter(|g| g.denied() && g.rule_id.is_none())
            .map(|g| g.events)
            .sum();
        let approved_users = acc.users_of(SUPPORT_APPROVED);
        let approval_percent = (approved * 100).checked_div(approved + support_denied).unwrap_or(0);
        let subject = format!("{lower}\u{1f}{}", company.clone().unwrap_or_default());
        if approved_users >= t.support_min_users && approval_percent >= t.support_min_approval_percent {
            let rule = proposed_rule(&acc, RuleType::UserConfirmed, "approved by support too often");
            let asked = request.support_requests.get(lower.as_str());
            let desk = asked.map_or_else(String::new, |r| {
                let wait = r
                    .median_seconds_to_decision
                    .map(|s| format!("; users waited {} min for a decision (median)", s / 60))
                    .unwrap_or_default();
                format!(
                    " The help desk answered {} requests for it from {} users: {} approved, {} denied{wait}.",
                    r.requests, r.users, r.approved, r.denied
                )
            });
            let rationale = format!(
                "Support approved {} for {approved_users} different users ({approved} approvals, {approval_percent}% of \
                 the {} requests) in the window, and no rule names it.{desk} Each approval is a help-desk ticket and a \
                 waiting user; a user-confirmed rule with a business justification lets users elevate it themselves while \
                 keeping the justification on record (thresholds: {} users, {}% approved). {}",
                display_name(&acc),
                approved + support_denied,
                t.support_min_users,
                t.support_min_approval_percent,
                match_note(&rule),
            );
            out.push(suggestion(
                SuggestionKind::SupportApprovedToUserConfirmed,
                &subject,
                format!(
                    "Let users confirm {} themselves instead of asking support",
                    display_name(&acc)
                ),
                rationale,
                &acc,
                None,
                Some(rule),
            ));
            if let Some(made) = out.last_mut() {
                made.evidence.support_requests = asked.cloned();
            }
        } else if acc.events >= t.min_events && acc.users.len() as u64 >= t.min_users {
            let (rule_type, why) = new_rule_type(&acc, t, &trusted);
            let rule = proposed_rule(&acc, rule_type, "elevated often without a rule");
            let rationale = format!(
                "{} was elevated {} times by {} users on {} devices without any rule ({} unmanaged, {} through the \
                 default response). {why} {}",
                display_name(&acc),
                acc.events,
                acc.users.len(),
                acc.devices.len(),
                acc.count(UNMANAGED),
                acc.events - acc.count(UNMANAGED),
                match_note(&rule),
            );
            out.push(suggestion(
                SuggestionKind::NewRule,
                &subject,
                format!(
                    "Create {} rule for {}",
                    with_article(rule_type_words(rule_type)),
                    display_name(&acc)
                ),
                rationale,
                &acc,
                None,
                Some(rule),
            ));
        }
    }

    // 3: hash rules that keep breaking.
    for known in rules {
        let Some(pinned) = &known.reference.file_hash else {
            continue;
        };
        let gs: Vec<&Group> = groups
            .iter()
            .filter(|g| !g.child && g.file_name.eq_ignore_ascii_case(&known.reference.file_name))
            .collect();
        let acc = Acc::of(gs.iter().copied());
        let escaped: u64 = gs
            .iter()
            .filter(|g| g.rule_id.is_none() && g.elevation_type != UNMANAGED)
            .map(|g| g.events)
            .sum();
        let Some(certificate) = acc.certificate() else { continue };
        if (acc.hashes.len() as u64) < t.churn_min_hashes || escaped == 0 {
            continue;
        }
        let rule_type = known.reference.rule_type.unwrap_or(RuleType::UserConfirmed);
        let versions = acc.versions_ordered();
        let min_version = versions.first().cloned();
        let mut rule = proposed_rule(&acc, rule_type, "hash rule keeps breaking");
        rule.file_hash = None;
        rule.min_version = min_version.clone();
        rule.certificate = Some(Certificate::uploaded(certificate, CertificateType::Publisher));
        if let Some(base) = &known.imported {
            rule.name = base.name.clone();
            rule.child_process_behavior = base.child_process_behavior;
            rule.validations = base.validations.clone();
            rule.file_path = base.file_path.clone();
        }
        let rationale = format!(
            "The rule {} pins {} to one hash ({}…), but the file was elevated with {} different hashes across {} \
             versions in the window; {escaped} elevations by {} users found no rule and fell back to the default \
             response. A {} rule trusting the publisher's certificate ({}) from version {} on keeps working at every \
             release (threshold: {} hashes).",
            rule_label(&known.reference),
            known.reference.file_name,
            &pinned[..pinned.len().min(12)],
            acc.hashes.len(),
            versions.len(),
            acc.users.len(),
            rule_type_words(rule_type),
            acc.publishers.iter().cloned().collect::<Vec<_>>().join(", "),
            min_version.as_deref().unwrap_or("any"),
            t.churn_min_hashes,
        );
        replaced_by_churn.insert((
            known.reference.policy_name.clone(),
            known.reference.file_name.to_lowercase(),
        ));
        out.push(suggestion(
            SuggestionKind::HashChurnToCertificate,
            &format!(
                "{}\u{1f}{}",
                known.reference.policy_name,
                known.reference.file_name.to_lowercase()
            ),
            format!(
                "Replace the hash rule for {} with a certificate rule",
                known.reference.file_name
            ),
            rationale,
            &acc,
            Some(known.reference.clone()),
            Some(rule),
        ));
    }

    // 4: rules that matched nothing in the window.
    for known in rules {
        let r = &known.reference;
        if r.matches_in_window > 0 || replaced_by_churn.contains(&(r.policy_name.clone(), r.file_name.to_lowercase())) {
            continue;
        }
        let since = match r.last_matched {
            Some(at) => format!("It last matched on {}.", at.format("%Y-%m-%d")),
            None => "No event in the warehouse ever reported it.".to_owned(),
        };
        let rationale = format!(
            "The rule {} for {} matched no elevation between {} and {}. {since} Rules nobody uses widen what can be \
             elevated without need: retire it, or check whether the file was renamed or replaced.",
            rule_label(r),
            r.file_name,
            request.from.format("%Y-%m-%d"),
            request.to.format("%Y-%m-%d"),
        );
        let acc = Acc::default();
        let mut s = suggestion(
            SuggestionKind::StaleRule,
            &format!(
                "{}\u{1f}{}\u{1f}{}",
                r.policy_name,
                r.file_name.to_lowercase(),
                r.rule_id.clone().unwrap_or_default()
            ),
            format!("Retire the unused rule for {} in {}", r.file_name, r.policy_name),
            rationale,
            &acc,
            Some(r.clone()),
            None,
        );
        s.file_name = Some(r.file_name.clone());
        // No events to weigh: every stale rule ranks the same.
        s.score = SuggestionKind::StaleRule.weight() * 10.0;
        out.push(s);
    }

    // 5: frequently denied files.
    for ((lower, company), gs) in &files {
        let denied: Vec<&Group> = gs.iter().copied().filter(|g| g.denied()).collect();
        let acc = Acc::of(denied.iter().copied());
        if acc.events < t.denied_min_events || (acc.users.len() as u64) < t.denied_min_users {
            continue;
        }
        let by_rule = acc.with_rule;
        let rule = denied
            .iter()
            .find_map(|g| g.rule_id.clone())
            .and_then(|id| {
                rules
                    .iter()
                    .find(|r| r.reference.rule_id.as_deref() == Some(id.as_str()))
            })
            .map(|r| r.reference.clone());
        let verdict = if by_rule == acc.events {
            "Every denial came from a deny rule: if the block is intended, tell these users why and what to use \
             instead; if they need the tool, replace the deny with a rule that fits."
                .to_owned()
        } else if by_rule == 0 {
            "No rule decided these: support denied the requests. If the file is needed, a rule is missing; if it is \
             not allowed, a deny rule saves everyone the request."
                .to_owned()
        } else {
            format!(
                "{by_rule} denials came from a rule and {} from support: review both.",
                acc.events - by_rule
            )
        };
        let rationale = format!(
            "{} users tried to elevate {} and were denied {} times on {} devices in the window (thresholds: {} denials, \
             {} users). {verdict}",
            acc.users.len(),
            display_name(&acc),
            acc.events,
            acc.devices.len(),
            t.denied_min_events,
            t.denied_min_users,
        );
        out.push(suggestion(
            SuggestionKind::FrequentlyDenied,
            &format!("{lower}\u{1f}{}", company.clone().unwrap_or_default()),
            format!("Review why users keep being denied {}", display_name(&acc)),
            rationale,
            &acc,
            rule,
            None,
        ));
    }

    // 6: children denied because their parent's rule requires a rule for them.
    let mut children: BTreeMap<(FileKey, String), Vec<&Group>> = BTreeMap::new();
    for g in groups.iter().filter(|g| g.child && g.denied() && g.rule_id.is_none()) {
        let parent = g.parent_process.clone().unwrap_or_default().to_lowercase();
        children.entry((g.file_key(), parent)).or_default().push(g);
    }
    for (((lower, company), parent), gs) in &children {
        let acc = Acc::of(gs.iter().copied());
        if acc.events < t.child_min_events || (acc.users.len() as u64) < t.child_min_users {
            continue;
        }
        // The child gets the parent's elevation type: the parent's rule already decided that
        // these users may elevate this workflow that way.
        let parent_type = groups
            .iter()
            .filter(|g| !g.child && g.rule_id.is_some() && g.file_name.eq_ignore_ascii_case(parent))
            .max_by_key(|g| g.events)
            .and_then(|g| rule_type_of(&g.elevation_type))
            .filter(|t| *t != RuleType::Deny)
            .unwrap_or(RuleType::UserConfirmed);
        let rule = proposed_rule(&acc, parent_type, "child process needs its own rule");
        let rationale = format!(
            "{} started {} elevated {} times for {} users, and each time it was denied: the parent's rule requires \
             a rule for its child processes and {} has none (thresholds: {} denials, {} users). A {} rule for the child \
             lets the parent's workflow finish. {}",
            parent,
            display_name(&acc),
            acc.events,
            acc.users.len(),
            display_name(&acc),
            t.child_min_events,
            t.child_min_users,
            rule_type_words(parent_type),
            match_note(&rule),
        );
        out.push(suggestion(
            SuggestionKind::ChildProcess,
            &format!("{lower}\u{1f}{}\u{1f}{parent}", company.clone().unwrap_or_default()),
            format!("Add a rule for {} when {} starts it", display_name(&acc), parent),
            rationale,
            &acc,
            None,
            Some(rule),
        ));
    }

    // 7: readiness, per user who still elevates unmanaged, and for the fleet.
    let mut by_user: BTreeMap<&str, Vec<&UserFile>> = BTreeMap::new();
    for row in unmanaged {
        by_user.entry(row.upn.as_str()).or_default().push(row);
    }
    let managed_users: BTreeSet<&str> = groups
        .iter()
        .filter(|g| g.elevation_type != UNMANAGED)
        .flat_map(|g| g.users.iter().map(String::as_str))
        .collect();
    for (upn, rows) in &by_user {
        let events: u64 = rows.iter().map(|r| r.events).sum();
        let devices: BTreeSet<&String> = rows.iter().flat_map(|r| r.devices.iter()).collect();
        let uncovered: Vec<&UserFile> = rows
            .iter()
            .copied()
            .filter(|r| !named.contains(&r.file_name.to_lowercase()))
            .collect();
        let covered = rows.len() - uncovered.len();
        let ready = uncovered.is_empty();
        let rationale = if ready {
            format!(
                "{upn} elevated {} files {events} times without EPM (Run as administrator) in the window, and every one \
                 of them already has a rule. Remove the local admin rights: these elevations then go through the rules.",
                rows.len()
            )
        } else {
            format!(
                "{upn} elevated {} files {events} times without EPM (Run as administrator) in the window; {covered} \
                 already have rules, {} have none: {}. Create rules for those first (see the new-rule suggestions), \
                 then remove the local admin rights.",
                rows.len(),
                uncovered.len(),
                uncovered
                    .iter()
                    .take(8)
                    .map(|r| format!("{} ({})", r.file_name, r.events))
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        };
        out.push(Suggestion {
            id: stable_id(SuggestionKind::Readiness, upn),
            kind: SuggestionKind::Readiness,
            score: score(SuggestionKind::Readiness, events, covered as u64 + 1),
            title: if ready {
                format!("{upn} is ready to lose local admin rights")
            } else {
                format!("{upn} still elevates {} files no rule covers", uncovered.len())
            },
            rationale,
            file_name: None,
            company_name: None,
            upn: Some((*upn).to_owned()),
            evidence: Evidence {
                events,
                users: 1,
                devices: devices.len() as u64,
                first_seen: rows.iter().filter_map(|r| r.first).min(),
                last_seen: rows.iter().filter_map(|r| r.last).max(),
                by_elevation_type: BTreeMap::from([(UNMANAGED.to_owned(), events)]),
                sample_users: vec![(*upn).to_owned()],
                ..Evidence::default()
            },
            rule: None,
            proposed_rule: None,
        });
    }
    let only_managed: Vec<&str> = managed_users
        .iter()
        .copied()
        .filter(|u| !by_user.contains_key(u))
        .collect();
    if !only_managed.is_empty() || !by_user.is_empty() {
        let rationale = format!(
            "{} users elevated only through EPM rules or support in the window: they already work as standard users. \
             {} users still elevated without EPM at least once (see their own readiness suggestions).",
            only_managed.len(),
            by_user.len(),
        );
        out.push(Suggestion {
            id: stable_id(SuggestionKind::Readiness, "\u{1f}fleet"),
            kind: SuggestionKind::Readiness,
            score: score(
                SuggestionKind::Readiness,
                only_managed.len() as u64,
                by_user.len() as u64,
            ),
            title: format!(
                "{} of {} users elevate only through EPM",
                only_managed.len(),
                only_managed.len() + by_user.len()
            ),
            rationale,
            file_name: None,
            company_name: None,
            upn: None,
            evidence: Evidence {
                users: only_managed.len() as u64,
                sample_users: only_managed.iter().take(5).map(|u| (*u).to_owned()).collect(),
                ..Evidence::default()
            },
            rule: None,
            proposed_rule: None,
        });
    }
    out
}

fn suggestion(
    kind: SuggestionKind,
    subject: &str,
    title: String,
    rationale: String,
    acc: &Acc,
    rule: Option<RuleRef>,
    proposed_rule: Option<ElevationRule>,
) -> Suggestion {
    let sample = acc.sample.as_ref();
    Suggestion {
        id: stable_id(kind, subject),
        kind,
        score: score(kind, acc.events, acc.users.len() as u64),
        title,
        rationale,
        file_name: sample.map(|g| g.file_name.clone()),
        company_name: sample.and_then(|g| g.company_name.clone()),
        upn: None,
        evidence: acc.evidence(),
        rule,
        proposed_rule,
    }
}

fn display_name(acc: &Acc) -> String {
    acc.sample.as_ref().map(|g| g.file_name.clone()).unwrap_or_default()
}

fn rule_label(r: &RuleRef) -> String {
    match (&r.rule_name, &r.rule_id) {
        (Some(name), _) => format!("\"{name}\" (policy \"{}\")", r.policy_name),
        (None, Some(id)) => format!("{id} (policy \"{}\")", r.policy_name),
        (None, None) => format!("in policy \"{}\"", r.policy_name),
    }
}

fn with_article(words: &str) -> String {
    let article = if words.starts_with(['a', 'e', 'i', 'o']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {words}")
}

fn rule_type_words(rule_type: RuleType) -> &'static str {
    match rule_type {
        RuleType::Automatic => "automatic",
        RuleType::UserConfirmed => "user-confirmed",
        RuleType::SupportApproved => "support-approved",
        RuleType::ElevateAsCurrentUser => "elevate-as-current-user",
        RuleType::Deny => "deny",
    }
}

/// The elevation type of a new rule, and why, by the documented logic: automatic only when
/// hash-pinned (one build), signed by a trusted publisher, widely used and never denied or
/// failed; support approved for unsigned or rare files; user confirmed otherwise.
fn new_rule_type(acc: &Acc, t: &Thresholds, trusted: &BTreeSet<String>) -> (RuleType, String) {
    let users = acc.users.len() as u64;
    let publisher = acc.publishers.first().cloned().unwrap_or_default();
    if acc.certificate().is_none() {
        return (
            RuleType::SupportApproved,
            "It is unsigned (or not consistently signed), so support should keep approving each use, now with a rule \
             that pins the build."
                .to_owned(),
        );
    }
    if users < t.rare_below_users {
        return (
            RuleType::SupportApproved,
            format!(
                "Only {users} users need it (fewer than {}), so support approval per use costs little and keeps \
                 control.",
                t.rare_below_users
            ),
        );
    }
    let one_build = acc.hashes.len() == 1;
    let is_trusted = trusted.contains(&publisher);
    if one_build && is_trusted && users >= t.automatic_min_users && acc.denied() == 0 && acc.failed == 0 {
        return (
            RuleType::Automatic,
            format!(
                "One build (hash-pinned), signed by {publisher} whom the tenant trusts, used by {users} users (at least \
                 {}) and never denied or failed: safe to elevate automatically.",
                t.automatic_min_users
            ),
        );
    }
    let mut missing = Vec::new();
    if !one_build {
        missing.push(format!("{} builds, not one", acc.hashes.len()));
    }
    if !is_trusted {
        missing.push(format!("{publisher} is not a trusted publisher"));
    }
    if users < t.automatic_min_users {
        missing.push(format!("{users} users, fewer than {}", t.automatic_min_users));
    }
    if acc.denied() > 0 || acc.failed > 0 {
        missing.push(format!("{} denied and {} failed runs", acc.denied(), acc.failed));
    }
    (
        RuleType::UserConfirmed,
        format!(
            "User confirmed with a business justification, Microsoft's recommended default (not automatic: {}).",
            missing.join("; ")
        ),
    )
}

/// The full rule proposed for the file the evidence is about: hash-pinned when one build is
/// in use (or the file is unsigned: then the newest build), otherwise the publisher's
/// certificate from the lowest version seen; the folder when every elevation used the same one;
/// children must have their own rule (Intune's default).
fn proposed_rule(acc: &Acc, rule_type: RuleType, reason: &str) -> ElevationRule {
    let sample = acc.sample.clone();
    let file_name = sample.as_ref().map(|g| g.file_name.clone()).unwrap_or_default();
    let product = sample.as_ref().and_then(|g| g.product_name.clone());
    let certificate = acc.certificate().map(str::to_owned);
    let (file_hash, min_version, certificate) = match (acc.hashes.len(), certificate) {
        (1, _) | (_, None) => (Some(acc.newest_hash()), None, None),
        (_, Some(payload)) => (
            None,
            acc.versions_ordered().first().cloned(),
            Some(Certificate::uploaded(payload, CertificateType::Publisher)),
        ),
    };
    let file_path = match acc.folders.len() {
        1 => acc.folders.first().cloned().filter(|f| !f.is_empty()),
        _ => None,
    };
    ElevationRule {
        name: match &product {
            Some(product) => format!("{product} ({file_name})"),
            None => file_name.clone(),
        },
        description: Some(format!(
            "Proposed by elevation: {reason} ({} elevations, {} users).",
            acc.events,
            acc.users.len()
        )),
        file_name,
        file_path,
        file_hash,
        min_version,
        file_description: sample.as_ref().and_then(|g| g.file_description.clone()),
        product_name: product,
        internal_name: sample.as_ref().and_then(|g| g.internal_name.clone()),
        rule_type,
        validations: match rule_type {
            RuleType::UserConfirmed => vec![Validation::BusinessJustification],
            _ => Vec::new(),
        },
        child_process_behavior: ChildProcessBehavior::RequireRule,
        certificate,
    }
}

/// One sentence on how the proposed rule recognises the file.
fn match_note(rule: &ElevationRule) -> String {
    let mut parts = Vec::new();
    if let Some(hash) = &rule.file_hash {
        parts.push(format!("pinned to hash {}…", &hash[..hash.len().min(12)]));
    }
    if rule.certificate.is_some() {
        parts.push(format!(
            "trusting the publisher's certificate from version {} on",
            rule.min_version.as_deref().unwrap_or("any")
        ));
    }
    if let Some(path) = &rule.file_path {
        parts.push(format!("only from {path} (every elevation used that folder)"));
    }
    parts.push("children need their own rule".to_owned());
    format!("Proposed rule: {}.", parts.join(", "))
}

/// What a caller asked for besides the request itself.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSuggest {
    /// The request.
    pub request: SuggestRequest,
    /// `format`, as given (each caller knows its own formats).
    pub format: Option<String>,
    /// Show at most this many suggestions.
    pub limit: Option<usize>,
    /// `id` (repeatable or comma-separated): only these suggestions, as the dashboards'
    /// selection exports them. Empty: every suggestion.
    pub ids: BTreeSet<String>,
}

impl ParsedSuggest {
    /// The suggestions asked for, best first, at most `limit` of them.
    pub async fn run(&self, warehouse: &Warehouse) -> Result<Vec<Suggestion>, QueryError> {
        let mut found = suggest(warehouse, &self.request).await?;
        if !self.ids.is_empty() {
            found.retain(|s| self.ids.contains(&s.id));
        }
        if let Some(limit) = self.limit {
            found.truncate(limit);
        }
        Ok(found)
    }
}

impl SuggestRequest {
    /// Builds a request from `key=value` parameters (query string or command line): `from`,
    /// `to` (default: the 30 days before now), `kind` and `trustedPublisher` (repeatable or
    /// comma-separated), `limit`, `format`, and any threshold by name (`minEvents=20`).
    pub fn parse(
        tenant: &str,
        params: &[(String, String)],
        now: DateTime<Utc>,
        imported: Vec<RulesPolicy>,
    ) -> Result<ParsedSuggest, QueryError> {
        let bad = QueryError::BadParameter;
        let mut from = None;
        let mut to = None;
        let mut request = SuggestRequest::new(tenant, now, now);
        let mut format = None;
        let mut limit = None;
        let mut ids = BTreeSet::new();
        let mut seen = BTreeSet::new();
        for (key, value) in params {
            let repeatable = matches!(key.as_str(), "kind" | "trustedPublisher" | "id");
            if !repeatable && !seen.insert(key.as_str()) {
                return Err(bad(format!("{key} is given twice")));
            }
            if value.is_empty() || value.len() > 2048 || value.chars().any(char::is_control) {
                return Err(bad(format!("{key} must be 1 to 2048 printable characters")));
            }
            match key.as_str() {
                "from" => from = Some(crate::request::parse_instant(key, value)?),
                "to" => to = Some(crate::request::parse_instant(key, value)?),
                "kind" => {
                    for kind in value.split(',') {
                        request.kinds.insert(SuggestionKind::parse(kind.trim())?);
                    }
                }
                "trustedPublisher" => {
                    request.trusted_publishers.insert(value.trim().to_owned());
                }
                "format" => format = Some(value.clone()),
                "id" => ids.extend(
                    value
                        .split(',')
                        .map(|id| id.trim().to_owned())
                        .filter(|id| !id.is_empty()),
                ),
                "limit" => {
                    limit = Some(
                        value
                            .parse::<usize>()
                            .ok()
                            .filter(|n| *n > 0)
                            .ok_or_else(|| bad(format!("limit {value:?} must be a whole number from 1 up")))?,
                    );
                }
                other => {
                    if !request.thresholds.set(other, value)? {
                        return Err(bad(format!(
                            "unknown parameter {other:?}; suggestions take from, to, kind, trustedPublisher, id, limit, \
                             format and the thresholds {}",
                            Thresholds::NAMES.join(", ")
                        )));
                    }
                }
            }
        }
        request.to = to.unwrap_or(now);
        request.from = from.unwrap_or(request.to - chrono::Duration::days(30));
        if request.from >= request.to {
            return Err(bad(format!(
                "from ({}) must be before to ({})",
                request.from, request.to
            )));
        }
        request.imported = imported;
        Ok(ParsedSuggest {
            request,
            format,
            limit,
            ids,
        })
    }
}
