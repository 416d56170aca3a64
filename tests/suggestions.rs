//! Suggestions and rule exports (issue #6): simulated fleets with planted patterns uploaded
//! through the real server; every suggestion checked against an independent computation over
//! the events the simulator sent (recall and precision, evidence to the count), the planted
//! patterns found with the right proposed rule; exports snapshotted and round-tripped; the
//! admin API and the command line.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use control::{KeyKind, Role};
use queries::export::{EPMANAGER_COLUMNS, ExportFormat};
use queries::suggest::{SuggestRequest, Suggestion, SuggestionKind, Thresholds};
use simulator::GroundTruth;
use simulator::world::{Matcher, World};
use warehouse::policy::{RuleType, RulesPolicy, Validation};
use warehouse::{ElevationEvent, ElevationType, ProcessType};

/// One elevation as sent, with the device that sent it.
#[derive(Debug, Clone)]
struct Sent {
    device: String,
    event: ElevationEvent,
}

impl std::ops::Deref for Sent {
    type Target = ElevationEvent;

    fn deref(&self) -> &ElevationEvent {
        &self.event
    }
}

use crate::support::{Node, elevation, stdout_of, test_now};

/// A landed fleet: its world, its truth and every elevation its agents sent.
struct Fleet {
    world: World,
    truth: GroundTruth,
    events: Vec<Sent>,
}

async fn land_fleet(node: &Node, key: &str, tenant: &str, seed: u64, devices: u32, days: u32) -> Fleet {
    let landed = crate::support::land_simulated_fleet(node, key, tenant, seed, devices, days).await;
    Fleet {
        world: landed.world,
        truth: landed.truth,
        events: landed
            .sent
            .into_iter()
            .map(|(device, event)| Sent { device, event })
            .collect(),
    }
}

fn midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0).unwrap().and_utc()
}

/// The fleet's rules policies imported for the tenant, as `elevation rules import` does.
async fn import_policies(node: &Node, tenant: &str, world: &World) -> Vec<RulesPolicy> {
    for policy in world.rules_policies() {
        // Through the JSON an admin would export from Intune.
        let read = RulesPolicy::from_intune(&policy.to_intune()).unwrap();
        assert_eq!(read, policy);
        node.control
            .import_policy(&crate::support::test_actor(), tenant, &read)
            .await
            .unwrap();
    }
    node.control.imported_policies(tenant).await.unwrap()
}

async fn suggest_all(node: &Node, tenant: &str, fleet: &Fleet, imported: Vec<RulesPolicy>) -> Vec<Suggestion> {
    let mut request = SuggestRequest::new(tenant, midnight(fleet.truth.from), midnight(fleet.truth.to));
    request.imported = imported;
    queries::suggest::suggest(&node.warehouse, &request).await.unwrap()
}

/// What a suggestion is about, comparable with the independent computation.
type Subject = (SuggestionKind, String, String);

fn subject_of(s: &Suggestion) -> Subject {
    let lower = |t: &Option<String>| t.clone().unwrap_or_default().to_lowercase();
    match s.kind {
        SuggestionKind::HashChurnToCertificate | SuggestionKind::StaleRule => {
            let rule = s.rule.as_ref().expect("about a rule");
            (s.kind, rule.file_name.to_lowercase(), rule.policy_name.clone())
        }
        SuggestionKind::ChildProcess => (
            s.kind,
            lower(&s.file_name),
            s.evidence.parent_processes.join(",").to_lowercase(),
        ),
        SuggestionKind::Readiness => (s.kind, s.upn.clone().unwrap_or_default(), String::new()),
        _ => (s.kind, lower(&s.file_name), s.company_name.clone().unwrap_or_default()),
    }
}

/// Events, distinct users and distinct devices.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Count {
    events: u64,
    users: BTreeSet<String>,
    devices: BTreeSet<String>,
}

impl Count {
    fn add(&mut self, e: &Sent) {
        self.events += 1;
        self.users.insert(e.upn.clone());
        self.devices.insert(e.device.clone());
    }

    fn figures(&self) -> (u64, u64, u64) {
        (self.events, self.users.len() as u64, self.devices.len() as u64)
    }

    /// The figures and every user by name, sorted, as the evidence must list them.
    fn expected(&self) -> Expected {
        (self.figures(), self.users.iter().cloned().collect())
    }
}

/// A suggestion's evidence figures (events, users, devices) and its users by name.
type Expected = ((u64, u64, u64), Vec<String>);

/// The suggestions the documented thresholds call for, computed directly from the events the
/// agents sent and the rules of the simulated world (every one of them imported), with the
/// evidence figures each must show. Shares no code with `queries::suggest`.
fn expected_suggestions(fleet: &Fleet, t: &Thresholds) -> BTreeMap<Subject, Expected> {
    let world = &fleet.world;
    let named: BTreeSet<String> = world.rules.iter().map(|r| r.file_name.to_lowercase()).collect();
    let parents: Vec<&Sent> = fleet
        .events
        .iter()
        .filter(|e| e.process_type != ProcessType::Child)
        .collect();
    let company = |e: &Sent| e.company_name.clone().unwrap_or_default();
    let mut out = BTreeMap::new();

    // New rule / support approved → user confirmed, for files no rule names.
    let mut files: BTreeMap<(String, String), Vec<&Sent>> = BTreeMap::new();
    for e in &parents {
        files
            .entry((e.file_name.to_lowercase(), company(e)))
            .or_default()
            .push(e);
    }
    for ((file, publisher), events) in &files {
        if named.contains(file) {
            continue;
        }
        let mut all = Count::default();
        let mut approved = Count::default();
        let mut support_denied = 0;
        for e in events {
            all.add(e);
            if e.elevation_type == ElevationType::SupportApproved {
                approved.add(e);
            }
            if e.elevation_type == ElevationType::Denied && e.rule_id.is_none() {
                support_denied += 1;
            }
        }
        let asked = approved.events + support_denied;
        let percent = (approved.events * 100).checked_div(asked).unwrap_or(0);
        let kind = if approved.users.len() as u64 >= t.support_min_users && percent >= t.support_min_approval_percent {
            SuggestionKind::SupportApprovedToUserConfirmed
        } else if all.events >= t.min_events && all.users.len() as u64 >= t.min_users {
            SuggestionKind::NewRule
        } else {
            continue;
        };
        out.insert((kind, file.clone(), publisher.clone()), all.expected());
    }

    // Hash rules that keep breaking; the rules they replace are not also called stale.
    let mut replaced = BTreeSet::new();
    for rule in &world.rules {
        let Matcher::Hash { .. } = &rule.matcher else { continue };
        let events: Vec<&&Sent> = parents
            .iter()
            .filter(|e| e.file_name.eq_ignore_ascii_case(&rule.file_name))
            .collect();
        let hashes: BTreeSet<&String> = events.iter().map(|e| &e.hash).collect();
        let certificates: BTreeSet<&Option<String>> = events.iter().map(|e| &e.certificate_payload).collect();
        let escaped = events
            .iter()
            .any(|e| e.rule_id.is_none() && e.elevation_type != ElevationType::Unmanaged);
        let signed = certificates.len() == 1 && certificates.first().is_some_and(|c| c.is_some());
        if (hashes.len() as u64) < t.churn_min_hashes || !escaped || !signed {
            continue;
        }
        let mut count = Count::default();
        events.iter().for_each(|e| count.add(e));
        let policy = world.policies[rule.policy].name.clone();
        replaced.insert((policy.clone(), rule.file_name.to_lowercase()));
        out.insert(
            (
                SuggestionKind::HashChurnToCertificate,
                rule.file_name.to_lowercase(),
                policy,
            ),
            count.expected(),
        );
    }

    // Rules that decided nothing in the window.
    for rule in &world.rules {
        let policy = world.policies[rule.policy].name.clone();
        let matched = parents.iter().any(|e| e.rule_id.as_deref() == Some(rule.id.as_str()));
        if !matched && !replaced.contains(&(policy.clone(), rule.file_name.to_lowercase())) {
            out.insert(
                (SuggestionKind::StaleRule, rule.file_name.to_lowercase(), policy),
                ((0, 0, 0), Vec::new()),
            );
        }
    }

    // Frequently denied files.
    for ((file, publisher), events) in &files {
        let mut denied = Count::default();
        events
            .iter()
            .filter(|e| e.elevation_type == ElevationType::Denied)
            .for_each(|e| denied.add(e));
        if denied.events >= t.denied_min_events && denied.users.len() as u64 >= t.denied_min_users {
            out.insert(
                (SuggestionKind::FrequentlyDenied, file.clone(), publisher.clone()),
                denied.expected(),
            );
        }
    }

    // Children denied for want of their own rule.
    let mut children: BTreeMap<(String, String), Count> = BTreeMap::new();
    for e in &fleet.events {
        if e.process_type == ProcessType::Child && e.elevation_type == ElevationType::Denied && e.rule_id.is_none() {
            let parent = e.parent_process_name.clone().unwrap_or_default().to_lowercase();
            children.entry((e.file_name.to_lowercase(), parent)).or_default().add(e);
        }
    }
    for ((file, parent), count) in children {
        if count.events >= t.child_min_events && count.users.len() as u64 >= t.child_min_users {
            out.insert((SuggestionKind::ChildProcess, file, parent), count.expected());
        }
    }

    // Readiness: every user who elevated without EPM, and the fleet.
    let mut unmanaged: BTreeMap<String, Count> = BTreeMap::new();
    for e in fleet
        .events
        .iter()
        .filter(|e| e.elevation_type == ElevationType::Unmanaged)
    {
        unmanaged.entry(e.upn.clone()).or_default().add(e);
    }
    for (upn, count) in unmanaged {
        let (events, _, devices) = count.figures();
        // A user's readiness names no users: the user is the subject.
        out.insert(
            (SuggestionKind::Readiness, upn, String::new()),
            ((events, 1, devices), Vec::new()),
        );
    }
    let only_managed: BTreeSet<&String> = fleet
        .events
        .iter()
        .filter(|e| e.elevation_type != ElevationType::Unmanaged)
        .map(|e| &e.upn)
        .filter(|u| {
            !fleet
                .events
                .iter()
                .any(|e| &e.upn == *u && e.elevation_type == ElevationType::Unmanaged)
        })
        .collect();
    out.insert(
        (SuggestionKind::Readiness, String::new(), String::new()),
        ((0, only_managed.len() as u64, 0), Vec::new()),
    );
    out
}

/// Checks every suggestion against the independent computation, and every planted pattern.
fn check_fleet(fleet: &Fleet, found: &[Suggestion]) {
    let t = Thresholds::default();
    let expected = expected_suggestions(fleet, &t);
    let mut got: BTreeMap<Subject, Expected> = BTreeMap::new();
    for s in found {
        let e = &s.evidence;
        if !e.user_names.is_empty() {
            assert_eq!(e.sample_users[..], e.user_names[..e.user_names.len().min(5)], "{s:?}");
        }
        assert!(
            got.insert(subject_of(s), ((e.events, e.users, e.devices), e.user_names.clone()))
                .is_none(),
            "one suggestion per subject: {s:?}"
        );
        assert!(!s.rationale.is_empty() && s.score > 0.0, "{s:?}");
    }
    let missing: Vec<_> = expected.keys().filter(|k| !got.contains_key(*k)).collect();
    let invented: Vec<_> = got.keys().filter(|k| !expected.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "seed {}: suggestions missing: {missing:?}",
        fleet.truth.seed
    );
    assert!(
        invented.is_empty(),
        "seed {}: suggestions nothing calls for: {invented:?}",
        fleet.truth.seed
    );
    for (subject, figures) in &expected {
        assert_eq!(
            &got[subject], figures,
            "seed {}: evidence of {subject:?}",
            fleet.truth.seed
        );
    }
    check_planted(fleet, found);
}

fn check_planted(fleet: &Fleet, found: &[Suggestion]) {
    let t = Thresholds::default();
    assert_eq!(fleet.truth.planted_patterns.len(), 6);
    for p in &fleet.truth.planted_patterns {
        let s = found
            .iter()
            .find(|s| s.kind.as_str() == p.kind && s.file_name.as_deref() == Some(p.file_name.as_str()))
            .unwrap_or_else(|| {
                panic!(
                    "seed {}: planted {} on {} not suggested",
                    fleet.truth.seed, p.kind, p.file_name
                )
            });
        let rule = s.proposed_rule.as_ref();
        match s.kind {
            SuggestionKind::NewRule => {
                let rule = rule.expect("a new rule is proposed");
                assert_eq!(s.evidence.figures(), (p.events, p.users, p.devices), "{}", p.kind);
                // Signed by Microsoft, one build, not trusted by any automatic rule of the
                // tenant: user confirmed with a justification, pinned to its one hash.
                assert_eq!(p.hashes.len(), 1);
                assert_eq!(rule.file_hash.as_deref(), Some(p.hashes[0].as_str()));
                let expected_type = if p.users < t.rare_below_users {
                    RuleType::SupportApproved
                } else {
                    RuleType::UserConfirmed
                };
                assert_eq!(rule.rule_type, expected_type, "{}", s.rationale);
                assert_eq!(rule.file_name, p.file_name);
                assert_eq!(
                    rule.file_path.as_deref(),
                    Some("C:\\Tools\\Sysinternals"),
                    "one folder: the path is required"
                );
            }
            SuggestionKind::SupportApprovedToUserConfirmed => {
                let rule = rule.expect("a rule is proposed");
                assert_eq!(s.evidence.figures(), (p.events, p.users, p.devices), "{}", p.kind);
                assert_eq!(rule.rule_type, RuleType::UserConfirmed);
                assert_eq!(rule.validations, vec![Validation::BusinessJustification]);
                assert_eq!(rule.file_hash.as_deref(), Some(p.hashes[0].as_str()));
            }
            SuggestionKind::HashChurnToCertificate => {
                let rule = rule.expect("a certificate rule is proposed");
                assert_eq!(s.evidence.figures(), (p.events, p.users, p.devices), "{}", p.kind);
                assert_eq!(s.evidence.hashes, p.hashes);
                assert_eq!(rule.file_hash, None);
                assert!(rule.certificate.is_some());
                assert_eq!(rule.min_version.as_deref(), Some(p.versions[0].as_str()));
                let world_rule = planted_rule(fleet, p);
                assert_eq!(rule.rule_type, world_rule.rule_type);
                assert_eq!(rule.name, world_rule.name, "replaces the rule it names");
                assert_eq!(
                    s.rule.as_ref().unwrap().rule_name.as_deref(),
                    Some(world_rule.name.as_str())
                );
            }
            SuggestionKind::StaleRule => {
                let world_rule = planted_rule(fleet, p);
                let r = s.rule.as_ref().unwrap();
                assert_eq!(r.rule_name.as_deref(), Some(world_rule.name.as_str()));
                assert_eq!(r.policy_name, fleet.world.policies[world_rule.policy].name);
                assert_eq!(r.matches_in_window, 0);
                assert!(rule.is_none(), "retiring proposes no rule");
            }
            SuggestionKind::FrequentlyDenied => {
                assert_eq!(s.evidence.figures(), (p.events, p.users, p.devices), "{}", p.kind);
                assert_eq!(s.evidence.by_elevation_type.get("deniedElevation"), Some(&p.events));
                assert!(s.rule.is_some(), "the deny rule is named: {s:#?}");
                assert!(s.rationale.contains("deny rule"), "{}", s.rationale);
            }
            SuggestionKind::ChildProcess => {
                let rule = rule.expect("a rule for the child is proposed");
                assert_eq!(s.evidence.figures(), (p.events, p.users, p.devices), "{}", p.kind);
                assert_eq!(s.evidence.parent_processes, vec!["vs_installer.exe".to_owned()]);
                assert_eq!(rule.file_name, p.file_name);
                // The parent's rule is user confirmed: so is the child's.
                assert_eq!(rule.rule_type, RuleType::UserConfirmed);
            }
            SuggestionKind::Readiness => unreachable!("nothing planted for readiness"),
        }
    }
}

/// The world's rule a planted pattern is about.
fn planted_rule<'w>(fleet: &'w Fleet, p: &simulator::truth::PlantedPattern) -> &'w simulator::world::Rule {
    let id = p.rule_id.as_ref().expect("the pattern names a rule");
    fleet.world.rules.iter().find(|r| &r.id == id).expect("the rule exists")
}

trait Figures {
    fn figures(&self) -> (u64, u64, u64);
}

impl Figures for queries::suggest::Evidence {
    fn figures(&self) -> (u64, u64, u64) {
        (self.events, self.users, self.devices)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suggestions_find_every_planted_pattern_and_only_what_the_thresholds_call_for() {
    let mut node = Node::start().await;
    let northwind = crate::support::create_key(&node.control, "northwind", KeyKind::Agent, None)
        .await
        .0;
    let fleets = [
        ("contoso", node.agent_key.clone(), 7, 150, 14),
        ("fabrikam", node.other_tenant_key.clone(), 11, 100, 21),
        ("northwind", northwind, 23, 220, 10),
    ];
    for (tenant, key, seed, devices, days) in fleets {
        let fleet = land_fleet(&node, &key, tenant, seed, devices, days).await;
        let imported = import_policies(&node, tenant, &fleet.world).await;
        let found = suggest_all(&node, tenant, &fleet, imported.clone()).await;
        check_fleet(&fleet, &found);
        // After maintenance the whole days come from `daily_suggestions`: the same answer.
        node.warehouse
            .compact(warehouse::Table::Elevations, &|_, _| {})
            .await
            .unwrap();
        assert!(node.warehouse.refresh_rollups().await.unwrap().days_refreshed > 0);
        let rolled = suggest_all(&node, tenant, &fleet, imported).await;
        check_fleet(&fleet, &rolled);
        assert_eq!(rolled, found, "seed {seed}: from the rollup as from the raw rows");
        // Ranked best first; the same data gives the same suggestions in the same order.
        assert!(found.windows(2).all(|w| w[0].score >= w[1].score));
        let again = suggest_all(
            &node,
            tenant,
            &fleet,
            node.control.imported_policies(tenant).await.unwrap(),
        )
        .await;
        assert_eq!(again, found, "seed {seed}: same data, same suggestions");
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_imported_policies_rules_that_never_fired_are_unknown_and_thresholds_are_honoured() {
    let mut node = Node::start().await;
    let fleet = land_fleet(&node, &node.agent_key.clone(), "contoso", 5, 120, 14).await;
    let found = suggest_all(&node, "contoso", &fleet, Vec::new()).await;
    // The stale rule never fired, so only an imported policy can tell about it.
    assert!(!found.iter().any(|s| s.kind == SuggestionKind::StaleRule), "{found:?}");
    // Rules known from events still count as coverage: no new rule for git.exe.
    assert!(
        !found
            .iter()
            .any(|s| s.kind == SuggestionKind::NewRule && s.file_name.as_deref() == Some("git.exe"))
    );

    let window = |extra: &[(&str, &str)]| {
        let mut params: Vec<(String, String)> = [("from", fleet.truth.from), ("to", fleet.truth.to)]
            .into_iter()
            .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
            .map(|(k, v)| (k.to_owned(), v.to_string()))
            .collect();
        params.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        params
    };
    let strict = SuggestRequest::parse(
        "contoso",
        &window(&[("minEvents", "1000000"), ("kind", "newRule")]),
        test_now(),
        Vec::new(),
    )
    .unwrap();
    assert!(
        queries::suggest::suggest(&node.warehouse, &strict.request)
            .await
            .unwrap()
            .is_empty()
    );
    let only = SuggestRequest::parse(
        "contoso",
        &window(&[("kind", "frequentlyDenied,childProcess")]),
        test_now(),
        Vec::new(),
    )
    .unwrap();
    let subset = queries::suggest::suggest(&node.warehouse, &only.request).await.unwrap();
    let expected: Vec<&Suggestion> = found
        .iter()
        .filter(|s| matches!(s.kind, SuggestionKind::FrequentlyDenied | SuggestionKind::ChildProcess))
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(
        subset.iter().collect::<Vec<_>>(),
        expected,
        "a kind filter keeps order and ids"
    );
    for (params, message) in [
        (
            window(&[("minEvents", "0")]),
            "minEvents \"0\" must be a whole number from 1",
        ),
        (window(&[("supportMinApprovalPercent", "101")]), "from 1 to 100"),
        (
            window(&[("kind", "everything")]),
            "kind \"everything\" is not one of newRule",
        ),
        (window(&[("minimumEvents", "3")]), "unknown parameter \"minimumEvents\""),
        (window(&[("from", "2026-11-30")]), "must be before"),
    ] {
        let err = SuggestRequest::parse("contoso", &params, test_now(), Vec::new()).unwrap_err();
        assert!(err.to_string().contains(message), "{err}");
    }
    node.stop().await;
}

mod exports;
mod rollup;
