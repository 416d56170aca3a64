//! The decisions, in plain Rust over the groups, the known rules and the unmanaged
//! elevations per user.

use roaring::RoaringBitmap;

use super::*;

/// What every kind is decided over.
struct Inputs<'a> {
    request: &'a SuggestRequest,
    t: &'a Thresholds,
    groups: &'a [Group],
    rules: &'a [KnownRule],
    /// Lower-case names of the files some rule names.
    named: BTreeSet<String>,
    /// Publishers trusted for automatic rules.
    trusted: BTreeSet<String>,
    /// The groups of processes users (or the system) started, by file.
    files: BTreeMap<FileKey, Vec<&'a Group>>,
    names: &'a Names,
}

/// The decisions, in plain Rust over the groups.
pub(super) fn decide(request: &SuggestRequest, read: &Read) -> Vec<Suggestion> {
    let (groups, rules) = (&read.groups[..], &read.rules[..]);
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
    let inputs = Inputs {
        request,
        t,
        groups,
        rules,
        named,
        trusted,
        files,
        names: &read.names,
    };
    let mut out = Vec::new();
    unnamed_files(&inputs, &mut out);
    let replaced_by_churn = hash_churn(&inputs, &mut out);
    stale_rules(&inputs, &replaced_by_churn, &mut out);
    frequently_denied(&inputs, &mut out);
    child_processes(&inputs, &mut out);
    readiness(&inputs, &read.unmanaged, &mut out);
    out
}

/// 1 and 2: files no rule names: a new rule, or user confirmed instead of support approved.
fn unnamed_files(inputs: &Inputs<'_>, out: &mut Vec<Suggestion>) {
    let (request, t, named, trusted, files) = (inputs.request, inputs.t, &inputs.named, &inputs.trusted, &inputs.files);
    for ((lower, company), gs) in files {
        if named.contains(lower) {
            continue;
        }
        let acc = Acc::of(inputs.names, gs.iter().copied());
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
        } else if acc.events >= t.min_events && acc.users.len() >= t.min_users {
            let (rule_type, why) = new_rule_type(&acc, t, trusted);
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
}

/// 3: hash rules that keep breaking. Answers the (policy, lower-case file) of the rules a
/// certificate rule is proposed for.
fn hash_churn(inputs: &Inputs<'_>, out: &mut Vec<Suggestion>) -> BTreeSet<(String, String)> {
    let (t, groups, rules) = (inputs.t, inputs.groups, inputs.rules);
    let mut replaced_by_churn: BTreeSet<(String, String)> = BTreeSet::new();
    for known in rules {
        let Some(pinned) = &known.reference.file_hash else {
            continue;
        };
        let gs: Vec<&Group> = groups
            .iter()
            .filter(|g| !g.child && g.file_name.eq_ignore_ascii_case(&known.reference.file_name))
            .collect();
        let acc = Acc::of(inputs.names, gs.iter().copied());
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

    replaced_by_churn
}

/// 4: rules that matched nothing in the window (unless a hash-churn suggestion replaces them).
fn stale_rules(inputs: &Inputs<'_>, replaced_by_churn: &BTreeSet<(String, String)>, out: &mut Vec<Suggestion>) {
    let (request, rules) = (inputs.request, inputs.rules);
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
        let acc = Acc::new(inputs.names);
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
}

/// 5: frequently denied files.
fn frequently_denied(inputs: &Inputs<'_>, out: &mut Vec<Suggestion>) {
    let (t, rules, files) = (inputs.t, inputs.rules, &inputs.files);
    for ((lower, company), gs) in files {
        let denied: Vec<&Group> = gs.iter().copied().filter(|g| g.denied()).collect();
        let acc = Acc::of(inputs.names, denied.iter().copied());
        if acc.events < t.denied_min_events || acc.users.len() < t.denied_min_users {
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
}

/// 6: children denied because their parent's rule requires a rule for them.
fn child_processes(inputs: &Inputs<'_>, out: &mut Vec<Suggestion>) {
    let (t, groups) = (inputs.t, inputs.groups);
    let mut children: BTreeMap<(FileKey, String), Vec<&Group>> = BTreeMap::new();
    for g in groups.iter().filter(|g| g.child && g.denied() && g.rule_id.is_none()) {
        let parent = g.parent_process.clone().unwrap_or_default().to_lowercase();
        children.entry((g.file_key(), parent)).or_default().push(g);
    }
    for (((lower, company), parent), gs) in &children {
        let acc = Acc::of(inputs.names, gs.iter().copied());
        if acc.events < t.child_min_events || acc.users.len() < t.child_min_users {
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
}

/// 7: readiness, per user who still elevates unmanaged, and for the fleet.
fn readiness(inputs: &Inputs<'_>, unmanaged: &[UserUnmanaged], out: &mut Vec<Suggestion>) {
    let named = &inputs.named;
    let mut managed_users = RoaringBitmap::new();
    for g in inputs.groups.iter().filter(|g| g.elevation_type != UNMANAGED) {
        managed_users |= &g.users;
    }
    for user in unmanaged {
        let (upn, events, rows) = (&user.upn, user.events, &user.files);
        let uncovered: Vec<&(String, u64)> = rows
            .iter()
            .filter(|(file_name, _)| !named.contains(&file_name.to_lowercase()))
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
                    .map(|(file_name, n)| format!("{file_name} ({n})"))
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
            upn: Some(upn.clone()),
            evidence: Evidence {
                events,
                users: 1,
                devices: user.devices,
                first_seen: user.first,
                last_seen: user.last,
                by_elevation_type: BTreeMap::from([(UNMANAGED.to_owned(), events)]),
                sample_users: vec![upn.clone()],
                ..Evidence::default()
            },
            rule: None,
            proposed_rule: None,
            unnamed: NameSets::default(),
        });
    }
    let unmanaged_users: RoaringBitmap = unmanaged.iter().map(|u| u.user).collect();
    let only_managed = inputs.names.users.sorted(&(managed_users - unmanaged_users));
    if !only_managed.is_empty() || !unmanaged.is_empty() {
        let rationale = format!(
            "{} users elevated only through EPM rules or support in the window: they already work as standard users. \
             {} users still elevated without EPM at least once (see their own readiness suggestions).",
            only_managed.len(),
            unmanaged.len(),
        );
        out.push(Suggestion {
            id: stable_id(SuggestionKind::Readiness, "\u{1f}fleet"),
            kind: SuggestionKind::Readiness,
            score: score(
                SuggestionKind::Readiness,
                only_managed.len() as u64,
                unmanaged.len() as u64,
            ),
            title: format!(
                "{} of {} users elevate only through EPM",
                only_managed.len(),
                only_managed.len() + unmanaged.len()
            ),
            rationale,
            file_name: None,
            company_name: None,
            upn: None,
            evidence: Evidence {
                users: only_managed.len() as u64,
                sample_users: only_managed.iter().take(5).cloned().collect(),
                ..Evidence::default()
            },
            rule: None,
            proposed_rule: None,
            unnamed: NameSets::default(),
        });
    }
}
