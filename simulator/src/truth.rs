//! The ground truth: the figures every report must show, computed directly from the events
//! the agents sent — never from the warehouse or the query engine — so that tests can hold
//! the product to numbers it did not compute itself.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use warehouse::{AgentBatch, ElevationType, ReportingLevel};

use crate::catalog::planted;
use crate::world::{Matcher, World};

/// How many files the "frequently …" tiles list.
pub const TOP_FILES: usize = 10;

/// Everything the reports must show for the simulated fleet, assuming the tenant's cap is
/// `all` (the default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroundTruth {
    /// The seed that generated the fleet.
    pub seed: u64,
    /// Tenant name.
    pub tenant: String,
    /// First day of the window (inclusive).
    pub from: NaiveDate,
    /// Day after the last day of the window (exclusive).
    pub to: NaiveDate,
    /// The fleet's shape.
    pub fleet: Fleet,
    /// Event and batch totals.
    pub totals: Totals,
    /// Managed and unmanaged elevations per day, and per elevation type (the `trend` report).
    pub per_day: Vec<DayCounts>,
    /// Per application (hash) and elevation type (`by-application`).
    pub by_application: Vec<ApplicationRow>,
    /// Per publisher (`companyName`) and elevation type (`by-publisher`).
    pub by_publisher: Vec<PublisherRow>,
    /// Per user (`by-user`).
    pub by_user: Vec<UserRow>,
    /// Per device (`by-device`).
    pub by_device: Vec<DeviceRow>,
    /// The Overview readiness tiles over the whole window.
    pub overview: Overview,
    /// The same tiles over the last 48 hours of the window (Intune's fixed snapshot).
    pub overview_last_48h: Overview,
    /// Denied and failed elevations (`denied`).
    pub denied: DeniedTotals,
    /// Agent health (`diagnostics`).
    pub diagnostics: DiagnosticsTruth,
    /// Every rule and how many sent elevations it decided.
    pub rules: Vec<RuleRow>,
    /// The patterns planted for the rule-tuning suggestions, with their evidence.
    pub planted_patterns: Vec<PlantedPattern>,
}

/// The fleet's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fleet {
    /// Devices simulated.
    pub devices: u64,
    /// Users simulated.
    pub users: u64,
    /// Users who kept local admin rights.
    pub admin_users: u64,
    /// Devices per declared reporting level.
    pub devices_per_level: BTreeMap<String, u64>,
    /// Files in the catalogue.
    pub applications: u64,
    /// Elevation rules.
    pub rules: u64,
    /// Elevation rules policies.
    pub policies: u64,
}

/// Event and batch totals.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    /// Batches uploaded.
    pub batches: u64,
    /// Elevations uploaded.
    pub elevations: u64,
    /// Of which managed.
    pub managed: u64,
    /// Of which unmanaged.
    pub unmanaged: u64,
    /// Diagnostic events uploaded.
    pub diagnostics: u64,
    /// Elevations that happened on devices, sent or not.
    pub generated_elevations: u64,
    /// Diagnostic events recorded on devices, sent or not.
    pub generated_diagnostics: u64,
    /// Elevations agents kept back because of their reporting level.
    pub filtered_elevations: u64,
    /// Diagnostic events agents kept back because of their reporting level.
    pub filtered_diagnostics: u64,
}

/// One day of the trend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DayCounts {
    /// UTC date.
    pub date: NaiveDate,
    /// Managed elevations.
    pub managed: u64,
    /// Unmanaged elevations.
    pub unmanaged: u64,
    /// Per elevation type (wire spelling); types with no event are absent.
    pub by_type: BTreeMap<String, u64>,
}

/// One row of `by-application`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationRow {
    /// SHA-256 of the file.
    pub hash: String,
    /// Elevation type.
    pub elevation_type: String,
    /// File name.
    pub file_name: String,
    /// Internal name.
    pub internal_name: Option<String>,
    /// File version.
    pub file_version: Option<String>,
    /// Publisher.
    pub company_name: Option<String>,
    /// Elevations.
    pub count: u64,
    /// Distinct users.
    pub users: u64,
    /// Distinct devices.
    pub devices: u64,
    /// First elevation.
    pub first_seen: DateTime<Utc>,
    /// Last elevation.
    pub last_seen: DateTime<Utc>,
}

/// One row of `by-publisher`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublisherRow {
    /// Publisher; `None` when the file names none.
    pub company_name: Option<String>,
    /// Elevation type.
    pub elevation_type: String,
    /// Elevations.
    pub count: u64,
}

/// One row of `by-user`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRow {
    /// User principal name.
    pub upn: String,
    /// Managed elevations.
    pub managed: u64,
    /// Unmanaged elevations.
    pub unmanaged: u64,
    /// All elevations.
    pub total: u64,
}

/// One row of `by-device`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceRow {
    /// Device name.
    pub device_name: String,
    /// Managed elevations.
    pub managed: u64,
    /// Unmanaged elevations.
    pub unmanaged: u64,
    /// All elevations.
    pub total: u64,
}

/// The Overview readiness tiles.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Overview {
    /// Users whose elevations were all unmanaged.
    pub users_only_unmanaged: u64,
    /// Users with both kinds.
    pub users_both: u64,
    /// Users whose elevations were all managed: candidates to lose admin rights.
    pub users_only_managed: u64,
    /// Files with the most unmanaged elevations.
    pub frequently_unmanaged: Vec<FileCount>,
    /// Files support approved most often.
    pub frequently_approved_by_support: Vec<FileCount>,
    /// Files denied most often.
    pub frequently_denied: Vec<FileCount>,
}

/// A file and how often something happened to it. Ties are broken by file name, then hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileCount {
    /// File name.
    pub file_name: String,
    /// SHA-256.
    pub hash: String,
    /// Elevations.
    pub count: u64,
    /// Distinct users.
    pub users: u64,
}

/// Denied and failed elevations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeniedTotals {
    /// `deniedElevation` events.
    pub denied: u64,
    /// Other events with a non-zero `result`.
    pub failed: u64,
}

/// Agent health.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiagnosticsTruth {
    /// Diagnostic events uploaded.
    pub events: u64,
    /// Devices that uploaded anything, per declared level.
    pub reporting_devices_per_level: BTreeMap<String, u64>,
    /// Non-zero error codes and how often they occurred.
    pub error_codes: BTreeMap<i64, u64>,
    /// Per device that uploaded anything, the last event it sent (elevation or diagnostic).
    pub last_seen: BTreeMap<String, DateTime<Utc>>,
    /// Devices that uploaded anything while declaring a level below the tenant's `all`.
    pub below_policy: Vec<String>,
}

/// A rule and how many sent elevations it decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleRow {
    /// Rule id.
    pub rule_id: String,
    /// Rule name.
    pub name: String,
    /// Policy name.
    pub policy_name: String,
    /// Rule type.
    pub rule_type: String,
    /// File the rule names.
    pub file_name: String,
    /// Sent elevations carrying this `ruleId`.
    pub matches: u64,
}

/// A planted pattern and the evidence for it in the sent events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlantedPattern {
    /// The suggestion kind that must find it.
    pub kind: String,
    /// The file concerned.
    pub file_name: String,
    /// Its publisher.
    pub company_name: Option<String>,
    /// Every hash of the file seen in the evidence.
    pub hashes: Vec<String>,
    /// Every version seen, in version order.
    pub versions: Vec<String>,
    /// The rule concerned, when the pattern is about a rule.
    pub rule_id: Option<String>,
    /// Elevations that make up the evidence.
    pub events: u64,
    /// Distinct users in the evidence.
    pub users: u64,
    /// Distinct devices in the evidence.
    pub devices: u64,
    /// What the suggestion should propose, in words.
    pub expected: String,
}

/// The sent events behind one planted pattern.
#[derive(Default)]
struct Evidence {
    hashes: BTreeSet<String>,
    versions: BTreeSet<String>,
    users: BTreeSet<String>,
    devices: BTreeSet<String>,
    events: u64,
}

#[derive(Default)]
struct AppAcc {
    file_name: String,
    internal_name: Option<String>,
    file_version: Option<String>,
    company_name: Option<String>,
    count: u64,
    users: BTreeSet<String>,
    devices: BTreeSet<String>,
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
}

#[derive(Default)]
struct FileAcc {
    file_name: String,
    count: u64,
    users: BTreeSet<String>,
}

#[derive(Default)]
struct TileAcc {
    users: BTreeMap<String, (bool, bool)>, // (has managed, has unmanaged)
    unmanaged: BTreeMap<String, FileAcc>,
    support: BTreeMap<String, FileAcc>,
    denied: BTreeMap<String, FileAcc>,
}

impl TileAcc {
    fn add(&mut self, e: &warehouse::ElevationEvent) {
        let flags = self.users.entry(e.upn.clone()).or_default();
        if e.elevation_type.is_managed() {
            flags.0 = true;
        } else {
            flags.1 = true;
        }
        let list = match e.elevation_type {
            ElevationType::Unmanaged => &mut self.unmanaged,
            ElevationType::SupportApproved => &mut self.support,
            ElevationType::Denied => &mut self.denied,
            _ => return,
        };
        let file = list.entry(e.hash.clone()).or_default();
        file.file_name.clone_from(&e.file_name);
        file.count += 1;
        file.users.insert(e.upn.clone());
    }

    fn finish(self) -> Overview {
        let top = |files: BTreeMap<String, FileAcc>| {
            let mut rows: Vec<FileCount> = files
                .into_iter()
                .map(|(hash, f)| FileCount {
                    file_name: f.file_name,
                    hash,
                    count: f.count,
                    users: f.users.len() as u64,
                })
                .collect();
            rows.sort_by(|a, b| {
                b.count
                    .cmp(&a.count)
                    .then_with(|| a.file_name.cmp(&b.file_name))
                    .then_with(|| a.hash.cmp(&b.hash))
            });
            rows.truncate(TOP_FILES);
            rows
        };
        let count = |want: (bool, bool)| self.users.values().filter(|flags| **flags == want).count() as u64;
        Overview {
            users_only_unmanaged: count((false, true)),
            users_both: count((true, true)),
            users_only_managed: count((true, false)),
            frequently_unmanaged: top(self.unmanaged),
            frequently_approved_by_support: top(self.support),
            frequently_denied: top(self.denied),
        }
    }
}

/// Accumulates the ground truth batch by batch, so a fleet of any size streams through.
pub struct TruthBuilder<'w> {
    world: &'w World,
    seed: u64,
    from: NaiveDate,
    to: NaiveDate,
    totals: Totals,
    per_day: BTreeMap<NaiveDate, (u64, u64, BTreeMap<String, u64>)>,
    apps: BTreeMap<(String, String), AppAcc>,
    publishers: BTreeMap<(Option<String>, String), u64>,
    users: BTreeMap<String, (u64, u64)>,
    devices: BTreeMap<String, (u64, u64)>,
    tiles: TileAcc,
    tiles_48h: TileAcc,
    last_48h_from: DateTime<Utc>,
    denied: DeniedTotals,
    diagnostics: DiagnosticsTruth,
    device_levels: BTreeMap<String, ReportingLevel>,
    rule_matches: BTreeMap<String, u64>,
    planted: BTreeMap<&'static str, Evidence>,
}

impl std::fmt::Debug for TruthBuilder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TruthBuilder")
            .field("totals", &self.totals)
            .finish_non_exhaustive()
    }
}

impl<'w> TruthBuilder<'w> {
    /// Starts an empty truth for the window `[from, to)`.
    pub fn new(world: &'w World, seed: u64, from: NaiveDate, to: NaiveDate) -> Self {
        let mut per_day = BTreeMap::new();
        let mut day = from;
        while day < to {
            per_day.insert(day, (0, 0, BTreeMap::new()));
            day = day.succ_opt().expect("dates continue");
        }
        TruthBuilder {
            world,
            seed,
            from,
            to,
            totals: Totals::default(),
            per_day,
            apps: BTreeMap::new(),
            publishers: BTreeMap::new(),
            users: BTreeMap::new(),
            devices: BTreeMap::new(),
            tiles: TileAcc::default(),
            tiles_48h: TileAcc::default(),
            last_48h_from: crate::generate::midnight(to) - Duration::hours(48),
            denied: DeniedTotals::default(),
            diagnostics: DiagnosticsTruth::default(),
            device_levels: BTreeMap::new(),
            rule_matches: BTreeMap::new(),
            planted: BTreeMap::new(),
        }
    }

    /// Counts what a device generated and what its agent held back.
    pub fn add_generated(&mut self, run: &crate::generate::DeviceRun) {
        self.totals.generated_elevations += run.generated_elevations;
        self.totals.generated_diagnostics += run.generated_diagnostics;
        self.totals.filtered_elevations += run.filtered_elevations;
        self.totals.filtered_diagnostics += run.filtered_diagnostics;
    }

    /// Adds one uploaded batch.
    pub fn add_batch(&mut self, batch: &AgentBatch) {
        self.totals.batches += 1;
        self.device_levels
            .insert(batch.device_name.clone(), batch.reporting_level);
        for e in &batch.elevations {
            self.add_elevation(batch, e);
        }
        for d in &batch.diagnostics {
            self.totals.diagnostics += 1;
            self.diagnostics.events += 1;
            if d.error_code != 0 {
                *self.diagnostics.error_codes.entry(d.error_code).or_default() += 1;
            }
            self.seen(&batch.device_name, d.event_date_time);
        }
    }

    fn seen(&mut self, device: &str, at: DateTime<Utc>) {
        let last = self.diagnostics.last_seen.entry(device.to_owned()).or_insert(at);
        if at > *last {
            *last = at;
        }
    }

    fn add_elevation(&mut self, batch: &AgentBatch, e: &warehouse::ElevationEvent) {
        let managed = e.elevation_type.is_managed();
        let kind = e.elevation_type.as_str().to_owned();
        self.totals.elevations += 1;
        if managed {
            self.totals.managed += 1;
        } else {
            self.totals.unmanaged += 1;
        }
        let day = self.per_day.entry(e.event_date_time.date_naive()).or_default();
        if managed {
            day.0 += 1;
        } else {
            day.1 += 1;
        }
        *day.2.entry(kind.clone()).or_default() += 1;

        let app = self.apps.entry((e.hash.clone(), kind.clone())).or_default();
        app.file_name.clone_from(&e.file_name);
        app.internal_name.clone_from(&e.internal_name);
        app.file_version.clone_from(&e.file_version);
        app.company_name.clone_from(&e.company_name);
        app.count += 1;
        app.users.insert(e.upn.clone());
        app.devices.insert(batch.device_id.clone());
        app.first = Some(app.first.map_or(e.event_date_time, |f| f.min(e.event_date_time)));
        app.last = Some(app.last.map_or(e.event_date_time, |l| l.max(e.event_date_time)));

        *self.publishers.entry((e.company_name.clone(), kind)).or_default() += 1;
        let user = self.users.entry(e.upn.clone()).or_default();
        let device = self.devices.entry(batch.device_name.clone()).or_default();
        if managed {
            user.0 += 1;
            device.0 += 1;
        } else {
            user.1 += 1;
            device.1 += 1;
        }
        self.tiles.add(e);
        if e.event_date_time >= self.last_48h_from {
            self.tiles_48h.add(e);
        }
        match e.elevation_type {
            ElevationType::Denied => self.denied.denied += 1,
            _ if e.result != 0 => self.denied.failed += 1,
            _ => {}
        }
        if let Some(rule) = &e.rule_id {
            *self.rule_matches.entry(rule.clone()).or_default() += 1;
        }
        self.seen(&batch.device_name, e.event_date_time);
        self.add_planted(batch, e);
    }

    /// Collects the evidence for each planted pattern, by the rule that pattern follows.
    fn add_planted(&mut self, batch: &AgentBatch, e: &warehouse::ElevationEvent) {
        use warehouse::ProcessType;
        let key = match (e.file_name.as_str(), e.elevation_type) {
            (planted::UNMANAGED_SIGNED, ElevationType::Unmanaged) => "unmanaged_signed",
            (planted::SUPPORT_APPROVED, ElevationType::SupportApproved) => "support_approved",
            (planted::HASH_CHURN, _) if e.elevation_type.is_managed() => "hash_churn",
            (planted::FREQUENTLY_DENIED, ElevationType::Denied) => "frequently_denied",
            (planted::CHILD, ElevationType::Denied)
                if e.process_type == ProcessType::Child
                    && e.parent_process_name.as_deref() == Some(planted::CHILD_PARENT) =>
            {
                "child_process"
            }
            _ => return,
        };
        let entry = self.planted.entry(key).or_default();
        entry.hashes.insert(e.hash.clone());
        if let Some(v) = &e.file_version {
            entry.versions.insert(v.clone());
        }
        entry.users.insert(e.upn.clone());
        entry.devices.insert(batch.device_id.clone());
        entry.events += 1;
    }

    /// Finishes the truth.
    pub fn finish(mut self) -> GroundTruth {
        let world = self.world;
        let mut devices_per_level = BTreeMap::new();
        for d in &world.devices {
            *devices_per_level.entry(d.level.as_str().to_owned()).or_default() += 1;
        }
        for level in self.device_levels.values() {
            *self
                .diagnostics
                .reporting_devices_per_level
                .entry(level.as_str().to_owned())
                .or_default() += 1;
        }
        self.diagnostics.below_policy = self
            .device_levels
            .iter()
            .filter(|(_, level)| **level < ReportingLevel::All)
            .map(|(name, _)| name.clone())
            .collect();

        let rules = world
            .rules
            .iter()
            .map(|r| RuleRow {
                rule_id: r.id.clone(),
                name: r.name.clone(),
                policy_name: world.policies[r.policy].name.clone(),
                rule_type: format!("{:?}", r.rule_type),
                file_name: r.file_name.clone(),
                matches: self.rule_matches.get(&r.id).copied().unwrap_or(0),
            })
            .collect();

        let planted_patterns = self.planted_patterns();
        GroundTruth {
            seed: self.seed,
            tenant: world.tenant.clone(),
            from: self.from,
            to: self.to,
            fleet: Fleet {
                devices: world.devices.len() as u64,
                users: world.users.len() as u64,
                admin_users: world.users.iter().filter(|u| u.is_admin).count() as u64,
                devices_per_level,
                applications: world.apps.len() as u64,
                rules: world.rules.len() as u64,
                policies: world.policies.len() as u64,
            },
            totals: self.totals,
            per_day: self
                .per_day
                .into_iter()
                .map(|(date, (managed, unmanaged, by_type))| DayCounts {
                    date,
                    managed,
                    unmanaged,
                    by_type,
                })
                .collect(),
            by_application: self
                .apps
                .into_iter()
                .map(|((hash, elevation_type), a)| ApplicationRow {
                    hash,
                    elevation_type,
                    file_name: a.file_name,
                    internal_name: a.internal_name,
                    file_version: a.file_version,
                    company_name: a.company_name,
                    count: a.count,
                    users: a.users.len() as u64,
                    devices: a.devices.len() as u64,
                    first_seen: a.first.expect("counted"),
                    last_seen: a.last.expect("counted"),
                })
                .collect(),
            by_publisher: self
                .publishers
                .into_iter()
                .map(|((company_name, elevation_type), count)| PublisherRow {
                    company_name,
                    elevation_type,
                    count,
                })
                .collect(),
            by_user: self
                .users
                .into_iter()
                .map(|(upn, (managed, unmanaged))| UserRow {
                    upn,
                    managed,
                    unmanaged,
                    total: managed + unmanaged,
                })
                .collect(),
            by_device: self
                .devices
                .into_iter()
                .map(|(device_name, (managed, unmanaged))| DeviceRow {
                    device_name,
                    managed,
                    unmanaged,
                    total: managed + unmanaged,
                })
                .collect(),
            overview: self.tiles.finish(),
            overview_last_48h: self.tiles_48h.finish(),
            denied: self.denied,
            diagnostics: self.diagnostics,
            rules,
            planted_patterns,
        }
    }

    fn planted_patterns(&mut self) -> Vec<PlantedPattern> {
        let world = self.world;
        let company = |file: &str| world.apps[world.app_named(file)].company_name.clone();
        let mut take = |key: &str| self.planted.remove(key).unwrap_or_default();
        let pattern = |kind: &str, file: &str, evidence: Evidence, rule_id: Option<String>, expected: String| {
            let mut versions: Vec<String> = evidence.versions.into_iter().collect();
            versions.sort_by(|a, b| warehouse::policy::compare_versions(a, b));
            PlantedPattern {
                kind: kind.to_owned(),
                file_name: file.to_owned(),
                company_name: company(file),
                hashes: evidence.hashes.into_iter().collect(),
                versions,
                rule_id,
                events: evidence.events,
                users: evidence.users.len() as u64,
                devices: evidence.devices.len() as u64,
                expected,
            }
        };
        let stale = world
            .rules
            .iter()
            .find(|r| r.file_name == planted::STALE_RULE)
            .expect("the stale rule is planted");
        let stale_hash = match &stale.matcher {
            Matcher::Hash { hash } => hash.clone(),
            Matcher::Certificate {
                certificate_payload, ..
            } => certificate_payload.clone(),
        };
        let churn_rule = world
            .rules
            .iter()
            .find(|r| r.file_name == planted::HASH_CHURN)
            .map(|r| r.id.clone());
        let unmanaged = take("unmanaged_signed");
        let support = take("support_approved");
        let churn = take("hash_churn");
        let denied = take("frequently_denied");
        let child = take("child_process");
        let mut stale_evidence = Evidence::default();
        stale_evidence.hashes.insert(stale_hash);
        vec![
            pattern(
                "newRule",
                planted::UNMANAGED_SIGNED,
                unmanaged,
                None,
                "a new rule for a signed file many users elevate unmanaged".into(),
            ),
            pattern(
                "supportApprovedToUserConfirmed",
                planted::SUPPORT_APPROVED,
                support,
                None,
                "a user-confirmed rule for a file support keeps approving for several users".into(),
            ),
            pattern(
                "hashChurnToCertificate",
                planted::HASH_CHURN,
                churn,
                churn_rule,
                "a certificate rule with a minimum version instead of the hash rule that breaks at every release"
                    .into(),
            ),
            pattern(
                "staleRule",
                planted::STALE_RULE,
                stale_evidence,
                Some(stale.id.clone()),
                "retire the rule: it matched nothing in the window".into(),
            ),
            pattern(
                "frequentlyDenied",
                planted::FREQUENTLY_DENIED,
                denied,
                None,
                "review the deny rule users keep running into".into(),
            ),
            pattern(
                "childProcess",
                planted::CHILD,
                child,
                None,
                "a rule for the child process its parent's rule requires".into(),
            ),
        ]
    }
}
