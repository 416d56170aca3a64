//! The simulated tenant: users, devices, the catalogue, elevation policies and their rules,
//! and which users act out the planted patterns.

use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use warehouse::{ReportingLevel, UserType};

use crate::catalog::{self, App, Category, Signing, planted};
use crate::names;

/// What a user does all day; it decides how often they elevate and what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Profile {
    /// Builds software: many elevations, developer tools.
    Developer,
    /// Runs the IT department: most elevations per day, admin tools.
    ItStaff,
    /// Accounting and business applications.
    Finance,
    /// Everyone else: the occasional driver or installer.
    General,
}

impl Profile {
    /// Mean elevations per working day.
    pub fn daily_rate(self) -> f64 {
        match self {
            Profile::Developer => 5.0,
            Profile::ItStaff => 8.0,
            Profile::Finance => 1.2,
            Profile::General => 0.6,
        }
    }

    /// How much more than average this profile uses a category.
    pub fn affinity(self, category: Category) -> f64 {
        use Category::*;
        match (self, category) {
            (Profile::Developer, Developer) => 10.0,
            (Profile::ItStaff, ItTools) => 10.0,
            (Profile::ItStaff, Installer) => 3.0,
            (Profile::Finance, Business) => 12.0,
            (_, General) => 2.0,
            (_, Installer) => 1.0,
            (_, Updater) => 0.0, // updaters are elevated by the system, not picked by users
            _ => 0.3,
        }
    }
}

/// One person in the tenant.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Position in the user list.
    pub index: usize,
    /// User principal name.
    pub upn: String,
    /// Account type.
    pub user_type: UserType,
    /// What they do.
    pub profile: Profile,
    /// Kept local admin rights: their elevations are *Run as administrator*, unmanaged.
    pub is_admin: bool,
    /// Their profile folder under `C:\Users`.
    pub profile_folder: String,
}

/// One Windows device with the EPM agent.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    /// Position in the device list.
    pub index: usize,
    /// Intune device id.
    pub id: String,
    /// Device name.
    pub name: String,
    /// Its primary user (index into the user list).
    pub user: usize,
    /// The reporting level its elevation settings policy declares.
    pub level: ReportingLevel,
    /// EPM agent version.
    pub agent_version: String,
    /// Days after a release before this device runs the new version.
    pub update_lag_days: i32,
    /// The day (from the start of the window) after which the device sends nothing more.
    pub silent_from_day: Option<i32>,
    /// True for the primary device of its user (planted behaviour happens there).
    pub is_primary: bool,
}

// The rule types and child behaviours are Intune's, shared with the exports and imports.
pub use warehouse::policy::{ChildProcessBehavior as ChildBehavior, RuleType, version_at_least};

/// How a rule recognises its file (besides the file name, which every rule names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Matcher {
    /// Exactly one build of the file.
    Hash {
        /// SHA-256, upper-case hex.
        hash: String,
    },
    /// Any build signed by the publisher's certificate, from a minimum version on.
    Certificate {
        /// Certificate hash the file must carry.
        certificate_payload: String,
        /// Minimum file version, `None` for any.
        min_version: Option<String>,
    },
}

/// One elevation rule of one policy.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// Rule id, reported in `ruleId`.
    pub id: String,
    /// Rule name.
    pub name: String,
    /// Index into the policy list.
    pub policy: usize,
    /// Index of the catalogue file it targets.
    pub app: usize,
    /// File name the rule names.
    pub file_name: String,
    /// What it does.
    pub rule_type: RuleType,
    /// What children of the file may do.
    pub child_behavior: ChildBehavior,
    /// How it recognises the file.
    pub matcher: Matcher,
}

/// An elevation rules policy.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    /// Policy id, reported in `policyId`.
    pub id: String,
    /// Policy name, reported in `policyName`.
    pub name: String,
    /// Version, reported by diagnostics.
    pub version: u32,
}

/// Which users act out each planted pattern.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlantedActors {
    /// Admins who run the signed tool unmanaged.
    pub unmanaged_signed: Vec<usize>,
    /// Standard users who keep asking support for the same file.
    pub support_approved: Vec<usize>,
    /// Standard users who install each new version of the churning app.
    pub hash_churn: Vec<usize>,
    /// Standard users who keep trying the denied file.
    pub frequently_denied: Vec<usize>,
    /// Standard developers whose installer keeps starting the child without a rule.
    pub child_process: Vec<usize>,
}

/// The whole simulated tenant.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct World {
    /// Tenant name.
    pub tenant: String,
    /// Users.
    pub users: Vec<User>,
    /// Devices.
    pub devices: Vec<Device>,
    /// The application catalogue.
    pub apps: Vec<App>,
    /// Elevation rules policies.
    pub policies: Vec<Policy>,
    /// Their rules.
    pub rules: Vec<Rule>,
    /// Who acts out the planted patterns.
    pub planted: PlantedActors,
}

impl World {
    /// Index of a catalogue file by name (curated files always exist).
    pub fn app_named(&self, file_name: &str) -> usize {
        self.apps
            .iter()
            .position(|a| a.file_name == file_name)
            .expect("curated file")
    }

    /// The rule that decides an elevation of `app` at `version` for a standard user:
    /// deny wins; otherwise a hash rule beats a certificate rule (it is more specific).
    pub fn matching_rule(&self, app: usize, hash: &str, version: &str) -> Option<&Rule> {
        let target = &self.apps[app];
        let matches = |rule: &&Rule| {
            rule.file_name.eq_ignore_ascii_case(&target.file_name)
                && match &rule.matcher {
                    Matcher::Hash { hash: pinned } => pinned == hash,
                    Matcher::Certificate {
                        certificate_payload,
                        min_version,
                    } => {
                        target.certificate_payload.as_deref() == Some(certificate_payload.as_str())
                            && min_version.as_deref().is_none_or(|min| version_at_least(version, min))
                    }
                }
        };
        let candidates: Vec<&Rule> = self.rules.iter().filter(matches).collect();
        candidates
            .iter()
            .find(|r| r.rule_type == RuleType::Deny)
            .or_else(|| candidates.iter().find(|r| matches!(r.matcher, Matcher::Hash { .. })))
            .or_else(|| candidates.first())
            .copied()
    }
}

impl World {
    /// The tenant's rules policies as an admin would export them from Intune: what
    /// `elevation rules import` reads, so that suggestions know rules that never fired.
    pub fn rules_policies(&self) -> Vec<warehouse::policy::RulesPolicy> {
        use warehouse::policy::{Certificate, CertificateType, ElevationRule, RulesPolicy, Validation};
        self.policies
            .iter()
            .enumerate()
            .map(|(index, policy)| RulesPolicy {
                name: policy.name.clone(),
                description: None,
                rules: self
                    .rules
                    .iter()
                    .filter(|rule| rule.policy == index)
                    .map(|rule| {
                        let app = &self.apps[rule.app];
                        let (file_hash, certificate, min_version) = match &rule.matcher {
                            Matcher::Hash { hash } => (Some(hash.clone()), None, None),
                            Matcher::Certificate {
                                certificate_payload,
                                min_version,
                            } => (
                                None,
                                Some(Certificate::uploaded(
                                    certificate_payload.clone(),
                                    CertificateType::Publisher,
                                )),
                                min_version.clone(),
                            ),
                        };
                        ElevationRule {
                            name: rule.name.clone(),
                            description: None,
                            file_name: rule.file_name.clone(),
                            file_path: None,
                            file_hash,
                            min_version,
                            file_description: Some(app.description.clone()),
                            product_name: Some(app.product_name.clone()),
                            internal_name: Some(app.internal_name.clone()),
                            rule_type: rule.rule_type,
                            validations: if rule.rule_type == RuleType::UserConfirmed {
                                vec![Validation::BusinessJustification]
                            } else {
                                Vec::new()
                            },
                            child_process_behavior: rule.child_behavior,
                            certificate,
                        }
                    })
                    .collect(),
            })
            .filter(|policy| !policy.rules.is_empty())
            .collect()
    }
}

/// Builds the tenant for `devices` devices over `days` days, deterministically from `seed`.
pub fn build(seed: u64, tenant: &str, devices: u32, days: u32) -> World {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let apps = catalog::build(&mut rng, days);
    let users = build_users(&mut rng, tenant, devices);
    let devices = build_devices(&mut rng, &users, devices, days);
    let (policies, rules) = build_rules(&mut rng, &apps);
    let planted = choose_actors(&mut rng, &users, &devices);
    World {
        tenant: tenant.to_owned(),
        users,
        devices,
        apps,
        policies,
        rules,
        planted,
    }
}

fn uuid(rng: &mut ChaCha8Rng) -> String {
    let mut bytes = [0u8; 16];
    rng.fill(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
}

fn build_users(rng: &mut ChaCha8Rng, tenant: &str, devices: u32) -> Vec<User> {
    // One user per device, except that one user in twenty has a second device.
    let count = (devices as usize - devices as usize / 20).max(1);
    let mut seen = std::collections::BTreeMap::<String, u32>::new();
    (0..count)
        .map(|index| {
            let (first, last) = names::person(rng);
            let base = format!("{first}.{last}");
            let n = seen.entry(base.clone()).or_insert(0);
            *n += 1;
            let local = if *n == 1 { base } else { format!("{base}{n}") };
            let profile = match rng.random_range(0..100) {
                0..15 => Profile::Developer,
                15..20 => Profile::ItStaff,
                20..35 => Profile::Finance,
                _ => Profile::General,
            };
            // The migration is under way: IT keeps admin rights, half the developers still
            // have them, and a stubborn tail of everyone else.
            let admin_share = match profile {
                Profile::ItStaff => 0.9,
                Profile::Developer => 0.45,
                _ => 0.12,
            };
            let user_type = if rng.random_bool(0.85) {
                UserType::AzureAd
            } else {
                UserType::Hybrid
            };
            User {
                index,
                upn: format!("{local}@{tenant}.com"),
                user_type,
                profile,
                is_admin: rng.random_bool(admin_share),
                profile_folder: local,
            }
        })
        .collect()
}

fn build_devices(rng: &mut ChaCha8Rng, users: &[User], devices: u32, days: u32) -> Vec<Device> {
    let width = devices.to_string().len().max(4);
    (0..devices as usize)
        .map(|index| {
            let (user, is_primary) = if index < users.len() {
                (index, true)
            } else {
                ((index - users.len()) * 19 % users.len(), false)
            };
            let kind = if rng.random_bool(0.7) { "LAPTOP" } else { "DESKTOP" };
            let level = match rng.random_range(0..100) {
                0..80 => ReportingLevel::All,
                80..90 => ReportingLevel::Managed,
                90..95 => ReportingLevel::Diagnostic,
                _ => ReportingLevel::None,
            };
            // A few devices stop reporting part-way: switched off, reimaged, or a broken agent.
            let silent_from_day = (days >= 3 && rng.random_bool(0.03)).then(|| rng.random_range(1..days as i32));
            Device {
                index,
                id: uuid(rng),
                name: format!("{kind}-{:0width$}", index + 1),
                user,
                level,
                agent_version: if rng.random_bool(0.8) { "1.4.0" } else { "1.3.2" }.to_owned(),
                update_lag_days: rng.random_range(0..4),
                silent_from_day,
                is_primary,
            }
        })
        .collect()
}

/// How to write one rule: which policy (index into the policy names), what it does, what its
/// children may do, and whether it pins a hash or trusts the certificate.
#[derive(Debug, Clone, Copy)]
struct RuleSpec {
    policy: usize,
    rule_type: RuleType,
    child: ChildBehavior,
    by_hash: bool,
}

const fn spec(policy: usize, rule_type: RuleType, child: ChildBehavior, by_hash: bool) -> RuleSpec {
    RuleSpec {
        policy,
        rule_type,
        child,
        by_hash,
    }
}

/// Rules written on purpose rather than by the random rollout: the planted patterns' rules
/// (a hash rule that breaks at every release, a stale rule, a deny rule, a parent rule that
/// requires rules for children) and the automatic rules of three developer staples.
const FIXED_RULES: &[(&str, RuleSpec)] = &[
    (
        planted::HASH_CHURN,
        spec(3, RuleType::UserConfirmed, ChildBehavior::RequireRule, true),
    ),
    (
        planted::STALE_RULE,
        spec(5, RuleType::UserConfirmed, ChildBehavior::RequireRule, true),
    ),
    (
        planted::FREQUENTLY_DENIED,
        spec(4, RuleType::Deny, ChildBehavior::DenyAll, false),
    ),
    (
        planted::CHILD_PARENT,
        spec(0, RuleType::UserConfirmed, ChildBehavior::RequireRule, false),
    ),
    ("git.exe", spec(0, RuleType::Automatic, ChildBehavior::AllowAll, true)),
    (
        "python.exe",
        spec(0, RuleType::Automatic, ChildBehavior::AllowAll, true),
    ),
    ("node.exe", spec(0, RuleType::Automatic, ChildBehavior::AllowAll, true)),
    (
        "npm.cmd",
        spec(0, RuleType::UserConfirmed, ChildBehavior::RequireRule, false),
    ),
    (
        "pip.exe",
        spec(0, RuleType::UserConfirmed, ChildBehavior::RequireRule, false),
    ),
    (
        "msiexec.exe",
        spec(3, RuleType::UserConfirmed, ChildBehavior::AllowAll, false),
    ),
];

fn build_rules(rng: &mut ChaCha8Rng, apps: &[App]) -> (Vec<Policy>, Vec<Rule>) {
    let policy_names = [
        "Developer tools",
        "Business applications",
        "IT support tools",
        "Everyday apps and installers",
        "Blocked tools",
        "Legacy applications",
        "System updaters",
    ];
    let policies: Vec<Policy> = policy_names
        .iter()
        .map(|name| Policy {
            id: uuid(rng),
            name: (*name).to_owned(),
            version: rng.random_range(1..6),
        })
        .collect();
    let mut rules = Vec::new();
    let add = |rules: &mut Vec<Rule>, rng: &mut ChaCha8Rng, app: &App, spec: RuleSpec| {
        let matcher = match (&app.certificate_payload, spec.by_hash) {
            (Some(cert), false) => Matcher::Certificate {
                certificate_payload: cert.clone(),
                min_version: Some(app.versions[0].version.clone()),
            },
            // A hash rule pins the build that was current when the rule was written.
            _ => Matcher::Hash {
                hash: current_before_window(app).hash.clone(),
            },
        };
        rules.push(Rule {
            id: uuid(rng),
            name: format!("{} ({})", app.product_name, app.file_name),
            policy: spec.policy,
            app: app.index,
            file_name: app.file_name.clone(),
            rule_type: spec.rule_type,
            child_behavior: spec.child,
            matcher,
        });
    };
    let is_planted = |app: &App| planted::ALL.contains(&app.file_name.as_str());
    for app in apps {
        // Planted files, and a few famous ones, get exactly the rules their story needs.
        if let Some((_, spec)) = FIXED_RULES.iter().find(|(file, _)| *file == app.file_name) {
            add(&mut rules, rng, app, *spec);
            continue;
        }
        if is_planted(app) {
            continue;
        }
        // The rest: a realistic, incomplete rollout. Popular files are more likely covered.
        let coverage = if app.popularity > 0.02 { 0.75 } else { 0.35 };
        if !rng.random_bool(coverage) {
            continue;
        }
        let by_hash = app.signing != Signing::KnownPublisher || rng.random_bool(0.25);
        let (policy, rule_type, child, by_hash) = match app.category {
            Category::Developer => (0, RuleType::UserConfirmed, ChildBehavior::RequireRule, by_hash),
            Category::Business => (1, RuleType::UserConfirmed, ChildBehavior::RequireRule, by_hash),
            Category::ItTools if app.signing == Signing::KnownPublisher => {
                (2, RuleType::ElevateAsCurrentUser, ChildBehavior::RequireRule, by_hash)
            }
            Category::ItTools => (2, RuleType::SupportApproved, ChildBehavior::RequireRule, true),
            Category::General | Category::Installer => {
                (3, RuleType::UserConfirmed, ChildBehavior::RequireRule, by_hash)
            }
            Category::Updater => (6, RuleType::Automatic, ChildBehavior::DenyAll, true),
        };
        add(
            &mut rules,
            rng,
            app,
            RuleSpec {
                policy,
                rule_type,
                child,
                by_hash,
            },
        );
    }
    // A couple of unsigned long-tail tools are blocked outright.
    let covered: std::collections::BTreeSet<usize> = rules.iter().map(|r| r.app).collect();
    let mut blocked: Vec<&App> = apps
        .iter()
        .filter(|a| a.signing == Signing::Unsigned && !is_planted(a) && !covered.contains(&a.index))
        .collect();
    blocked.shuffle(rng);
    for app in blocked.into_iter().take(2) {
        add(
            &mut rules,
            rng,
            app,
            RuleSpec {
                policy: 4,
                rule_type: RuleType::Deny,
                child: ChildBehavior::DenyAll,
                by_hash: true,
            },
        );
    }
    (policies, rules)
}

/// The version that was current just before the window opened.
fn current_before_window(app: &App) -> &catalog::AppVersion {
    app.versions
        .iter()
        .rev()
        .find(|v| v.released_day < 0)
        .unwrap_or(&app.versions[0])
}

fn choose_actors(rng: &mut ChaCha8Rng, users: &[User], devices: &[Device]) -> PlantedActors {
    // Planted behaviour happens on primary devices that report everything, so that every
    // planted event reaches the warehouse.
    let reporting: Vec<usize> = devices
        .iter()
        .filter(|d| d.is_primary && d.level == ReportingLevel::All && d.silent_from_day.is_none())
        .map(|d| d.user)
        .collect();
    let pick = |rng: &mut ChaCha8Rng, pool: Vec<usize>, share: f64, minimum: usize| -> Vec<usize> {
        let want = ((pool.len() as f64 * share).ceil() as usize)
            .max(minimum)
            .min(pool.len());
        let mut chosen: Vec<usize> = pool.choose_multiple(rng, want).copied().collect();
        chosen.sort_unstable();
        chosen
    };
    let admins: Vec<usize> = reporting.iter().copied().filter(|u| users[*u].is_admin).collect();
    let standard: Vec<usize> = reporting.iter().copied().filter(|u| !users[*u].is_admin).collect();
    let standard_it_or_dev: Vec<usize> = standard
        .iter()
        .copied()
        .filter(|u| matches!(users[*u].profile, Profile::Developer | Profile::ItStaff))
        .collect();
    let standard_dev: Vec<usize> = standard
        .iter()
        .copied()
        .filter(|u| users[*u].profile == Profile::Developer)
        .collect();
    PlantedActors {
        unmanaged_signed: pick(rng, admins, 0.4, 8),
        support_approved: pick(rng, standard.clone(), 0.08, 6),
        hash_churn: pick(rng, standard.clone(), 0.1, 6),
        frequently_denied: pick(rng, standard_it_or_dev, 0.3, 4),
        child_process: pick(rng, standard_dev, 0.4, 5),
    }
}
