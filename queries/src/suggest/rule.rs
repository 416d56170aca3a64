//! The proposed rule and the wording shared by every kind.

use super::*;

pub(super) fn suggestion(
    kind: SuggestionKind,
    subject: &str,
    title: String,
    rationale: String,
    acc: &Acc<'_>,
    rule: Option<RuleRef>,
    proposed_rule: Option<ElevationRule>,
) -> Suggestion {
    let sample = acc.sample.as_ref();
    Suggestion {
        id: stable_id(kind, subject),
        kind,
        score: score(kind, acc.events, acc.users.len()),
        title,
        rationale,
        file_name: sample.map(|g| g.file_name.clone()),
        company_name: sample.and_then(|g| g.company_name.clone()),
        upn: None,
        evidence: acc.evidence(),
        rule,
        proposed_rule,
        unnamed: NameSets {
            users: acc.users.clone(),
            device_names: acc.device_names.clone(),
        },
    }
}

pub(super) fn display_name(acc: &Acc<'_>) -> String {
    acc.sample.as_ref().map(|g| g.file_name.clone()).unwrap_or_default()
}

pub(super) fn rule_label(r: &RuleRef) -> String {
    match (&r.rule_name, &r.rule_id) {
        (Some(name), _) => format!("\"{name}\" (policy \"{}\")", r.policy_name),
        (None, Some(id)) => format!("{id} (policy \"{}\")", r.policy_name),
        (None, None) => format!("in policy \"{}\"", r.policy_name),
    }
}

pub(super) fn with_article(words: &str) -> String {
    let article = if words.starts_with(['a', 'e', 'i', 'o']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {words}")
}

pub(super) fn rule_type_words(rule_type: RuleType) -> &'static str {
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
pub(super) fn new_rule_type(acc: &Acc<'_>, t: &Thresholds, trusted: &BTreeSet<String>) -> (RuleType, String) {
    let users = acc.users.len();
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
pub(super) fn proposed_rule(acc: &Acc<'_>, rule_type: RuleType, reason: &str) -> ElevationRule {
    let sample = acc.sample;
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
        1 => acc.folder_names().pop().filter(|f| !f.is_empty()),
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
pub(super) fn match_note(rule: &ElevationRule) -> String {
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
