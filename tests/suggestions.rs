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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_are_snapshotted_and_the_intune_policy_imports_back_to_the_same_rules() {
    let mut node = Node::start().await;
    let fleet = land_fleet(&node, &node.agent_key.clone(), "contoso", 7, 150, 14).await;
    let imported = import_policies(&node, "contoso", &fleet.world).await;
    let found = suggest_all(&node, "contoso", &fleet, imported).await;
    let (from, to) = (midnight(fleet.truth.from), midnight(fleet.truth.to));
    let t = Thresholds::default();
    let with_rules: Vec<Suggestion> = found.iter().filter(|s| s.proposed_rule.is_some()).cloned().collect();
    assert!(with_rules.len() >= 4, "{with_rules:?}");

    // Intune: the exported policy reads back as exactly the proposed rules.
    let intune = queries::export::export(ExportFormat::Intune, &found, &t, from, to).unwrap();
    let json: serde_json::Value = serde_json::from_str(&intune).unwrap();
    let policy = RulesPolicy::from_intune(&json).unwrap();
    assert_eq!(policy, queries::export::proposed_policy(&found, from, to));
    assert_eq!(policy.rules.len(), with_rules.len());
    for (rule, s) in policy.rules.iter().zip(&with_rules) {
        let proposed = s.proposed_rule.as_ref().unwrap();
        assert_eq!(
            (&rule.file_name, rule.rule_type, &rule.file_hash),
            (&proposed.file_name, proposed.rule_type, &proposed.file_hash)
        );
        assert!(
            rule.description.as_ref().unwrap().contains(&s.id),
            "each rule names its suggestion"
        );
    }
    let settings = &json["settings"][0]["settingInstance"];
    assert_eq!(
        json["templateReference"]["templateId"],
        "cff02aad-51b1-498d-83ad-81161a393f56_1"
    );
    assert_eq!(json["technologies"], "endpointPrivilegeManagement");
    let rules = settings["groupSettingCollectionValue"].as_array().unwrap();
    assert!(!rules[0]["children"][0]["settingInstanceTemplateReference"].is_null());
    assert!(
        rules[1..]
            .iter()
            .all(|r| r["children"][0]["settingInstanceTemplateReference"].is_null())
    );

    // EPManager: its exact columns, one row per proposed rule, its spellings.
    let csv_text = queries::export::export(ExportFormat::EpmanagerCsv, &found, &t, from, to).unwrap();
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        EPMANAGER_COLUMNS.to_vec()
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), with_rules.len());
    // As EPManager's report writes it (tests/fixtures/epmanager/report-shape.csv): the same
    // header line, every value quoted, CRLF, rows by elevation count.
    let shape = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/epmanager/report-shape.csv"),
    )
    .unwrap();
    assert_eq!(csv_text.split("\r\n").next(), shape.split("\r\n").next());
    assert!(csv_text.ends_with("\r\n") && !csv_text.replace("\r\n", "").contains('\n'));
    for line in csv_text.split_terminator("\r\n") {
        assert!(line.starts_with('"') && line.ends_with('"'), "{line}");
    }
    let mut by_count = with_rules.clone();
    by_count.sort_by_key(|s| std::cmp::Reverse(s.evidence.events));
    for (row, s) in rows.iter().zip(&by_count) {
        assert_eq!(row[0].parse::<u64>().unwrap(), s.evidence.events);
        let rule = s.proposed_rule.as_ref().unwrap();
        assert_eq!(&row[4], rule.file_name.as_str());
        // FilePath pasted into a JSON text, as EPManager's import does, gives the rule's folder.
        let pasted: String = serde_json::from_str(&format!("\"{}\"", &row[7])).unwrap();
        assert_eq!(pasted, rule.file_path.clone().unwrap_or_default());
        // Users and Devices: the names, space-separated.
        let users: BTreeSet<&str> = row[9].split(' ').collect();
        assert_eq!(users.len() as u64, s.evidence.users, "{}", &row[9]);
        assert!(
            users.iter().all(|u| fleet.events.iter().any(|e| e.upn == *u)),
            "{}",
            &row[9]
        );
        let devices: BTreeSet<&str> = row[10].split(' ').collect();
        assert_eq!(devices.len() as u64, s.evidence.devices, "{}", &row[10]);
        assert_eq!(&row[13], "AssignmentGroupName");
        assert!(
            [
                "Automatic",
                "UserAuthentication",
                "UserJustification",
                "SupportApproved"
            ]
            .contains(&&row[11])
        );
        assert!(["AllowAll", "RequireRule", "DenyAll", "NotConfigured"].contains(&&row[12]));
    }

    // Our JSON carries every suggestion with its evidence, and the policy.
    let ours: serde_json::Value =
        serde_json::from_str(&queries::export::export(ExportFormat::Json, &found, &t, from, to).unwrap()).unwrap();
    assert_eq!(ours["suggestions"].as_array().unwrap().len(), found.len());
    assert_eq!(ours["policy"]["rules"].as_array().unwrap().len(), with_rules.len());
    assert_eq!(ours["thresholds"]["minEvents"], 10);

    // Snapshots of the three formats for the top suggestions of a fixed fleet.
    let top: Vec<Suggestion> = with_rules.iter().take(3).cloned().collect();
    insta::assert_snapshot!(
        "intune_policy",
        queries::export::export(ExportFormat::Intune, &top, &t, from, to).unwrap()
    );
    insta::assert_snapshot!(
        "epmanager_csv",
        queries::export::export(ExportFormat::EpmanagerCsv, &top, &t, from, to).unwrap()
    );
    insta::assert_snapshot!(
        "recommendations_json",
        queries::export::export(ExportFormat::Json, &top[..1], &t, from, to).unwrap()
    );

    // Importing the exported policy makes its files covered: their new-rule suggestions go.
    node.control
        .import_policy(&crate::support::test_actor(), "contoso", &policy)
        .await
        .unwrap();
    let after = suggest_all(
        &node,
        "contoso",
        &fleet,
        node.control.imported_policies("contoso").await.unwrap(),
    )
    .await;
    for s in &with_rules {
        if matches!(
            s.kind,
            SuggestionKind::NewRule | SuggestionKind::SupportApprovedToUserConfirmed
        ) {
            assert!(!after.iter().any(|a| a.id == s.id), "{} is covered once imported", s.id);
        }
    }
    node.stop().await;
}

async fn get(node: &Node, key: Option<&str>, path: &str) -> (u16, String, String) {
    let mut request = reqwest::Client::new().get(format!("{}{path}", node.base));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (response.status().as_u16(), content_type, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_serves_suggestions_and_exports_to_the_keys_tenant_and_role_only() {
    let mut node = Node::start().await;
    let fleet = land_fleet(&node, &node.agent_key.clone(), "contoso", 13, 100, 14).await;
    import_policies(&node, "contoso", &fleet.world).await;
    let window = format!("from={}&to={}", fleet.truth.from, fleet.truth.to);
    let expected = suggest_all(
        &node,
        "contoso",
        &fleet,
        node.control.imported_policies("contoso").await.unwrap(),
    )
    .await;

    let (status, _, body) = get(&node, Some(&node.admin_key), &format!("/v1/suggestions?{window}")).await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let served: Vec<Suggestion> = serde_json::from_value(json["suggestions"].clone()).unwrap();
    assert_eq!(served, expected);
    check_pages(&node, &fleet, &window, &expected).await;

    let (status, content_type, body) = get(
        &node,
        Some(&node.admin_key),
        &format!("/v1/suggestions?{window}&format=csv&limit=5"),
    )
    .await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "text/csv; charset=utf-8"),
        "{body}"
    );
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let ids: Vec<String> = reader.records().map(|r| r.unwrap()[1].to_owned()).collect();
    assert_eq!(ids, expected.iter().take(5).map(|s| s.id.clone()).collect::<Vec<_>>());

    let (status, _, body) = get(
        &node,
        Some(&node.admin_key),
        &format!("/v1/exports/rules?{window}&format=intune"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let policy = RulesPolicy::from_intune(&serde_json::from_str(&body).unwrap()).unwrap();
    assert_eq!(
        policy.rules.len(),
        expected.iter().filter(|s| s.proposed_rule.is_some()).count()
    );
    let (status, content_type, body) = get(
        &node,
        Some(&node.admin_key),
        &format!("/v1/exports/rules?{window}&format=epmanager-csv"),
    )
    .await;
    assert_eq!((status, content_type.as_str()), (200, "text/csv; charset=utf-8"));
    assert!(
        body.starts_with("\"ElevationCount\",\"Product\",\"Description\",\"Publisher\",\"FileName\""),
        "{body}"
    );

    // Another tenant's admin sees none of contoso's suggestions, whatever it asks.
    let fabrikam_admin = crate::support::create_key(
        &node.control,
        "fabrikam",
        KeyKind::Admin,
        Some(Role::EndpointPrivilegeReader),
    )
    .await
    .0;
    let (status, _, body) = get(
        &node,
        Some(&fabrikam_admin),
        &format!("/v1/suggestions?{window}&tenant=contoso"),
    )
    .await;
    assert_eq!(status, 400, "unknown parameters are refused: {body}");
    let (status, _, body) = get(&node, Some(&fabrikam_admin), &format!("/v1/suggestions?{window}")).await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        json["suggestions"],
        serde_json::json!([]),
        "fabrikam has no elevations: {body}"
    );

    // Keys and parameters.
    for (key, path, status) in [
        (None, format!("/v1/suggestions?{window}"), 401),
        (Some(node.agent_key.clone()), format!("/v1/suggestions?{window}"), 403),
        (Some(node.agent_key.clone()), format!("/v1/exports/rules?{window}"), 403),
        (
            Some(node.admin_key.clone()),
            format!("/v1/exports/rules?{window}&format=xml"),
            400,
        ),
        (
            Some(node.admin_key.clone()),
            format!("/v1/suggestions?{window}&format=table"),
            400,
        ),
        (
            Some(node.admin_key.clone()),
            format!("/v1/suggestions?{window}&minUsers=-1"),
            400,
        ),
    ] {
        let (got, _, body) = get(&node, key.as_deref(), &path).await;
        assert_eq!(got, status, "{path}: {body}");
        let error: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(
            error["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suggestions_from_daily_suggestions_are_the_raw_rows_suggestions() {
    let mut node = Node::start().await;
    let fleet = land_fleet(&node, &node.agent_key.clone(), "contoso", 17, 120, 10).await;
    let imported = import_policies(&node, "contoso", &fleet.world).await;
    node.warehouse
        .compact(warehouse::Table::Elevations, &|_, _| {})
        .await
        .unwrap();
    let (from, to) = (midnight(fleet.truth.from), midnight(fleet.truth.to));
    let hours = chrono::Duration::hours;
    let request = |from, to, file: Option<&str>| {
        let mut request = SuggestRequest::new("contoso", from, to);
        request.imported = imported.clone();
        request.file = file.map(str::to_owned);
        request
    };
    let suggest = |request: SuggestRequest| {
        let warehouse = &node.warehouse;
        async move { queries::suggest::suggest(warehouse, &request).await.unwrap() }
    };
    let whole = suggest(request(from, to, None)).await;
    let file = whole
        .iter()
        .find(|s| s.kind == SuggestionKind::NewRule)
        .and_then(|s| s.file_name.clone())
        .expect("a new rule");
    // Whole days; partial first and last days (raw rows around the rollup's days); one file.
    let cases = [
        request(from, to, None),
        request(from + hours(7), to - hours(5), None),
        request(from, to, Some(&file)),
        request(from + hours(30), to - hours(29), Some(&file)),
    ];
    assert_eq!(node.sql("SELECT * FROM daily_suggestions").await.len(), 0);
    let mut raw = Vec::new();
    for case in &cases {
        raw.push(suggest(case.clone()).await);
    }
    assert_eq!(raw[0], whole);
    assert!(!raw[2].is_empty(), "the file's new rule");

    let report = node.warehouse.refresh_rollups().await.unwrap();
    assert_eq!(report.days_refreshed, 10);
    for (case, expected) in cases.iter().zip(&raw) {
        assert_eq!(
            &suggest(case.clone()).await,
            expected,
            "{} to {}, file {:?}: from the rollup as from the raw rows",
            case.from,
            case.to,
            case.file
        );
    }

    // The rollup is what answers: a counterfeit group shows while its day's files are the
    // ones it was computed from, and is gone once a late upload changes that day.
    let day = fleet.truth.from + chrono::Duration::days(3);
    let fingerprint = node
        .sql(&format!(
            r#"SELECT "sourceFiles" AS f FROM daily_suggestions WHERE "eventDate" = DATE '{day}' LIMIT 1"#
        ))
        .await[0]["f"]
        .as_str()
        .unwrap()
        .to_owned();
    let noon = midnight(day).timestamp_micros() + 12 * 3_600_000_000;
    let totals = warehouse::suggestion_days::GroupTotals {
        elevations: 1000,
        first: noon,
        last: noon,
        maxima: [None, None, None, None],
        certificate_low: None,
        certificate_high: None,
        signed: 0,
        justification_low: None,
        justification_high: None,
        system_initiated: None,
        users: (0..5).collect(),
        devices: (0..5).collect(),
        device_names: (0..5).collect(),
        folders: (0..1).collect(),
    };
    let key = warehouse::suggestion_days::GroupKey {
        file_name: "counterfeit.exe".into(),
        company_name: None,
        hash: "C0FFEE".into(),
        elevation_type: "unmanagedElevation".into(),
        process_type: "parent".into(),
        parent_process: None,
        rule_id: None,
        policy_name: None,
        failed: false,
    };
    let row = warehouse::suggestion_days::day_batch(
        "contoso",
        day,
        &[(key, totals)],
        &warehouse::suggestion_days::Unmanaged::default(),
        &fingerprint,
    )
    .unwrap();
    node.warehouse
        .append(warehouse::Table::DailySuggestions, vec![row], None)
        .await
        .unwrap();
    let counterfeit = |found: &[Suggestion]| found.iter().any(|s| s.file_name.as_deref() == Some("counterfeit.exe"));
    assert!(
        counterfeit(&suggest(request(from, to, None)).await),
        "read from the rollup"
    );
    let mut late = crate::support::elevation_event("late-1", "unmanagedElevation");
    late["eventDateTime"] = serde_json::json!(format!("{day}T11:00:00Z"));
    let late = crate::support::batch("b-late", "all", vec![late], vec![]);
    assert_eq!(node.upload(&late).await.status, 200);
    node.land_all().await;
    let mixed = suggest(request(from, to, None)).await;
    assert!(!counterfeit(&mixed), "a changed day is read raw");
    assert_eq!(node.warehouse.refresh_rollups().await.unwrap().days_refreshed, 1);
    assert_eq!(
        suggest(request(from, to, None)).await,
        mixed,
        "one day raw and the rest rolled up, or every day rolled up: one answer"
    );
    node.stop().await;
}

/// The ids of the suggestions a suggestions page lists, in its order.
fn listed_ids(page: &str) -> Vec<String> {
    page.split("<article class=\"suggestion\" id=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

/// The suggestions page in pages of the ranked list with the total, and an elevation's page
/// naming the proposal for its file (computed for that file only) by the id all of them give.
async fn check_pages(node: &Node, fleet: &Fleet, window: &str, expected: &[Suggestion]) {
    assert!(expected.len() > 6, "{expected:?}");
    let ids = |range: std::ops::Range<usize>| expected[range].iter().map(|s| s.id.clone()).collect::<Vec<_>>();
    let (status, _, first) = get(node, Some(&node.admin_key), &format!("/suggestions?{window}&limit=3")).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(listed_ids(&first), ids(0..3));
    assert!(
        first.contains(&format!("{} suggestions", expected.len())) && first.contains("showing 1 to 3"),
        "the page states the total"
    );
    assert!(
        first.contains("offset=3") && first.contains("rel=\"next\""),
        "a next page"
    );
    let (status, _, second) = get(
        node,
        Some(&node.admin_key),
        &format!("/suggestions?{window}&limit=3&offset=3"),
    )
    .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(listed_ids(&second), ids(3..6), "{second}");
    assert!(second.contains("rel=\"prev\"") && second.contains("showing 4 to 6"));
    let last = expected.len() - 1;
    let (_, _, end) = get(
        node,
        Some(&node.admin_key),
        &format!("/suggestions?{window}&limit=3&offset={last}"),
    )
    .await;
    assert_eq!(listed_ids(&end), ids(last..expected.len()));
    assert!(!end.contains("rel=\"next\""), "no page after the last");
    let (_, _, default) = get(node, Some(&node.admin_key), &format!("/suggestions?{window}")).await;
    assert_eq!(
        listed_ids(&default),
        ids(0..expected.len().min(100)),
        "100 a page by default"
    );

    // Every file's suggestions, computed for that file alone, are the file's among all.
    let imported = node.control.imported_policies("contoso").await.unwrap();
    let files: BTreeSet<String> = expected.iter().filter_map(|s| s.file_name.clone()).collect();
    for file in &files {
        let mut request = SuggestRequest::new("contoso", midnight(fleet.truth.from), midnight(fleet.truth.to));
        request.imported = imported.clone();
        request.file = Some(file.to_uppercase());
        let only = queries::suggest::suggest(&node.warehouse, &request).await.unwrap();
        let about: Vec<&Suggestion> = expected
            .iter()
            .filter(|s| s.file_name.as_ref().is_some_and(|f| f.eq_ignore_ascii_case(file)))
            .collect();
        assert_eq!(only.iter().collect::<Vec<_>>(), about, "{file}");
    }

    // An elevation of a file with a proposed rule links to that proposal.
    let proposal = expected
        .iter()
        .find(|s| s.kind == SuggestionKind::NewRule)
        .expect("a new rule is proposed");
    let file = proposal.file_name.clone().unwrap();
    let event = fleet
        .events
        .iter()
        .find(|e| e.file_name == file && e.process_type != ProcessType::Child)
        .unwrap();
    let (status, _, detail) = get(
        node,
        Some(&node.admin_key),
        &format!("/elevations/{}?{window}", event.id),
    )
    .await;
    assert_eq!(status, 200, "{detail}");
    assert!(detail.contains(&format!("Propose a rule for {file}")), "{detail}");
    assert!(
        detail.contains(&format!("id={}#{}", proposal.id, proposal.id)),
        "{detail}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_imports_policies_suggests_and_exports() {
    let mut node = Node::start().await;
    let fleet = land_fleet(&node, &node.agent_key.clone(), "contoso", 7, 80, 14).await;
    node.stop().await;
    let dir = node.dir.path();
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    let mut files = Vec::new();
    for (i, policy) in fleet.world.rules_policies().iter().enumerate() {
        let path = policies.join(format!("{i}.json"));
        std::fs::write(&path, serde_json::to_vec_pretty(&policy.to_intune()).unwrap()).unwrap();
        files.push(path.to_string_lossy().into_owned());
    }
    let data_dir = dir.to_string_lossy().into_owned();
    let mut args = vec!["--data-dir", &data_dir, "rules", "import"];
    args.extend(files.iter().map(String::as_str));
    let output = elevation(&args, dir);
    let text = stdout_of(&output);
    assert_eq!(text.matches("imported policy").count(), files.len(), "{text}");
    // Importing again replaces, never duplicates.
    let text = stdout_of(&elevation(&args, dir));
    assert_eq!(text.matches("replaced policy").count(), files.len(), "{text}");
    let listed = stdout_of(&elevation(&["--data-dir", &data_dir, "rules", "list"], dir));
    assert!(listed.contains("erpclient.exe"), "{listed}");

    let (from, to) = (fleet.truth.from.to_string(), fleet.truth.to.to_string());
    let window = ["--from", from.as_str(), "--to", to.as_str()];
    let mut suggest = vec!["--data-dir", &data_dir, "suggest", "--format", "json"];
    suggest.extend(window);
    let json: serde_json::Value = serde_json::from_str(&stdout_of(&elevation(&suggest, dir))).unwrap();
    let suggestions: Vec<Suggestion> = serde_json::from_value(json["suggestions"].clone()).unwrap();
    let expected = suggest_all(
        &node,
        "contoso",
        &fleet,
        crate::support::open_control(dir)
            .await
            .imported_policies("contoso")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(suggestions, expected);
    assert!(
        suggestions
            .iter()
            .any(|s| s.kind == SuggestionKind::StaleRule && s.file_name.as_deref() == Some("erpclient.exe"))
    );

    let mut table = vec![
        "--data-dir",
        &data_dir,
        "suggest",
        "--limit",
        "3",
        "--threshold",
        "minEvents=5",
    ];
    table.extend(window);
    let text = stdout_of(&elevation(&table, dir));
    assert!(text.starts_with("  1. ["), "{text}");
    assert!(text.contains("  3. [") && !text.contains("  4. ["), "{text}");

    let out = dir.join("recommendations.csv");
    let out_arg = out.to_string_lossy().into_owned();
    let mut export = vec![
        "--data-dir",
        &data_dir,
        "export",
        "rules",
        "--format",
        "epmanager-csv",
        "--out",
        &out_arg,
    ];
    export.extend(window);
    let text = stdout_of(&elevation(&export, dir));
    assert!(text.contains("proposed rules"), "{text}");
    let csv_text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        csv_text.lines().count() - 1,
        expected.iter().filter(|s| s.proposed_rule.is_some()).count()
    );

    let bad = elevation(&["--data-dir", &data_dir, "suggest", "--threshold", "minEvents"], dir);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("NAME=VALUE"));
    let not_a_policy = dir.join("settings.json");
    std::fs::write(&not_a_policy, r#"{"name": "EPM settings", "settings": []}"#).unwrap();
    let bad = elevation(
        &[
            "--data-dir",
            &data_dir,
            "rules",
            "import",
            &not_a_policy.to_string_lossy(),
        ],
        dir,
    );
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("elevation settings policy"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
