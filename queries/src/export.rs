//! Suggestions as text (table, JSON, CSV) and their proposed rules as policies admins import:
//! Intune's settings-catalog JSON, EPManager's CSV, and our own JSON with the evidence.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use warehouse::policy::{ElevationRule, RulesPolicy, epmanager_child_behaviour, epmanager_elevation_type};

use crate::QueryError;
use crate::suggest::{Suggestion, Thresholds};

/// The export formats of `elevation export rules` and `GET /v1/exports/rules`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// A Graph `configurationPolicies` POST body.
    Intune,
    /// EPManager's import CSV.
    EpmanagerCsv,
    /// Our JSON: the policy and every suggestion with its evidence.
    Json,
}

impl ExportFormat {
    /// Every format, in the order they are listed (errors, the OpenAPI document).
    pub const ALL: [ExportFormat; 3] = [ExportFormat::Intune, ExportFormat::EpmanagerCsv, ExportFormat::Json];

    /// Parses `intune`, `epmanager-csv` or `json`.
    pub fn parse(text: &str) -> Result<ExportFormat, QueryError> {
        ExportFormat::ALL
            .into_iter()
            .find(|f| f.as_str() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = ExportFormat::ALL.iter().map(|f| f.as_str()).collect();
                QueryError::BadParameter(format!("format {text:?} is not one of {}", names.join(", ")))
            })
    }

    /// The format as a request names it.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Intune => "intune",
            ExportFormat::EpmanagerCsv => "epmanager-csv",
            ExportFormat::Json => "json",
        }
    }

    /// The usual file name of the export.
    pub fn file_name(self) -> &'static str {
        match self {
            ExportFormat::Intune => "epm-rules-policy.json",
            ExportFormat::EpmanagerCsv => "recommendations.csv",
            ExportFormat::Json => "recommendations.json",
        }
    }

    /// The HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::EpmanagerCsv => "text/csv; charset=utf-8",
            _ => "application/json",
        }
    }
}

/// The proposed rules of the suggestions, in rank order, as one policy. Rule names are made
/// unique (Intune refuses two rules of one name in a policy) by numbering repeats.
pub fn proposed_policy(suggestions: &[Suggestion], from: DateTime<Utc>, to: DateTime<Utc>) -> RulesPolicy {
    let mut rules: Vec<ElevationRule> = Vec::new();
    for s in suggestions {
        let Some(rule) = &s.proposed_rule else { continue };
        let mut rule = rule.clone();
        let base = rule.name.clone();
        let mut n = 2;
        while rules.iter().any(|r| r.name == rule.name) {
            rule.name = format!("{base} #{n}");
            n += 1;
        }
        rule.description = Some(format!("{} [{}]", rule.description.clone().unwrap_or_default(), s.id));
        rules.push(rule);
    }
    RulesPolicy {
        name: format!("elevation recommended rules {}", to.format("%Y-%m-%d")),
        description: Some(format!(
            "{} rules proposed by elevation from the elevations of {} to {}. Review, then assign to groups.",
            rules.len(),
            from.format("%Y-%m-%d"),
            to.format("%Y-%m-%d")
        )),
        rules,
    }
}

/// The export in the given format, as text.
pub fn export(
    format: ExportFormat,
    suggestions: &[Suggestion],
    thresholds: &Thresholds,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<String, QueryError> {
    let policy = proposed_policy(suggestions, from, to);
    match format {
        ExportFormat::Intune => pretty(&policy.to_intune()),
        ExportFormat::Json => pretty(&json!({
            "from": from,
            "to": to,
            "thresholds": thresholds,
            "policy": policy,
            "suggestions": suggestions,
        })),
        ExportFormat::EpmanagerCsv => epmanager_csv(suggestions, &policy),
    }
}

fn pretty(value: &Value) -> Result<String, QueryError> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| QueryError::Render(e.to_string()))?;
    text.push('\n');
    Ok(text)
}

/// EPManager's report columns, in its order.
pub const EPMANAGER_COLUMNS: [&str; 14] = [
    "ElevationCount",
    "Product",
    "Description",
    "Publisher",
    "FileName",
    "FileInternalName",
    "FileVersion",
    "FilePath",
    "FileHash",
    "Users",
    "Devices",
    "ElevationType",
    "ChildProcessBehaviour",
    "Group",
];

/// What EPManager's report writes in `Group` until the admin names the assignment group.
pub const EPMANAGER_GROUP_PLACEHOLDER: &str = "AssignmentGroupName";

/// A folder as EPManager's report writes it: every backslash doubled, because its `-import`
/// pastes the value straight into a JSON text (`"value": "$filePath"`).
pub fn epmanager_path(folder: &str) -> String {
    folder.replace('\\', "\\\\")
}

/// EPManager's report, as its `-report` mode writes it (`Export-Csv -NoTypeInformation`):
/// every value quoted, CRLF line ends, rows by elevation count (most first), `Users` and
/// `Devices` the names joined by spaces, `FilePath` the folder with doubled backslashes.
fn epmanager_csv(suggestions: &[Suggestion], policy: &RulesPolicy) -> Result<String, QueryError> {
    let render = |e: csv::Error| QueryError::Render(e.to_string());
    let mut writer = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Always)
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    writer.write_record(EPMANAGER_COLUMNS).map_err(render)?;
    let with_rules = suggestions.iter().filter(|s| s.proposed_rule.is_some());
    let mut rows: Vec<(u64, [String; 14])> = Vec::new();
    for (s, rule) in with_rules.zip(&policy.rules) {
        // EPManager imports only the types it knows; we never propose deny or elevate-as-user.
        let Some(elevation_type) = epmanager_elevation_type(rule) else {
            continue;
        };
        let version = rule
            .min_version
            .clone()
            .or_else(|| s.evidence.versions.last().cloned())
            .unwrap_or_default();
        rows.push((
            s.evidence.events,
            [
                s.evidence.events.to_string(),
                rule.product_name.clone().unwrap_or_default(),
                rule.file_description.clone().unwrap_or_default(),
                s.company_name.clone().unwrap_or_default(),
                rule.file_name.clone(),
                rule.internal_name.clone().unwrap_or_default(),
                version,
                // Empty when the rule requires no folder: EPManager's import makes whatever
                // is here the rule's required path.
                epmanager_path(rule.file_path.as_deref().unwrap_or_default()),
                // EPManager writes hash rules only: a certificate rule goes out pinned to the
                // newest build (the Intune and JSON exports keep the certificate).
                rule.file_hash
                    .clone()
                    .or_else(|| s.evidence.newest_hash.clone())
                    .unwrap_or_default(),
                s.evidence.user_names.join(" "),
                s.evidence.device_names.join(" "),
                elevation_type.to_owned(),
                epmanager_child_behaviour(rule.child_process_behavior).to_owned(),
                // EPManager creates one policy per assignment group: the admin names it.
                EPMANAGER_GROUP_PLACEHOLDER.to_owned(),
            ],
        ));
    }
    // Stable: equal counts keep the suggestions' rank order.
    rows.sort_by_key(|row| std::cmp::Reverse(row.0));
    for (_, row) in rows {
        writer.write_record(row).map_err(render)?;
    }
    let bytes = writer.into_inner().map_err(|e| QueryError::Render(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| QueryError::Render(e.to_string()))
}

/// `{ "from", "to", "thresholds", "suggestions": [...] }`.
pub fn suggestions_json(
    suggestions: &[Suggestion],
    thresholds: &Thresholds,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Value {
    json!({ "from": from, "to": to, "thresholds": thresholds, "suggestions": suggestions })
}

/// The CSV columns of suggestions.
pub const SUGGESTION_COLUMNS: [&str; 16] = [
    "rank",
    "id",
    "kind",
    "score",
    "title",
    "fileName",
    "companyName",
    "upn",
    "events",
    "users",
    "devices",
    "firstSeen",
    "lastSeen",
    "hashes",
    "proposedRuleType",
    "rationale",
];

/// One line per suggestion, with the evidence's headline numbers.
pub fn suggestions_csv(suggestions: &[Suggestion]) -> Result<String, QueryError> {
    let render = |e: csv::Error| QueryError::Render(e.to_string());
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(SUGGESTION_COLUMNS).map_err(render)?;
    let time = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
    for (rank, s) in suggestions.iter().enumerate() {
        writer
            .write_record([
                (rank + 1).to_string(),
                s.id.clone(),
                s.kind.as_str().to_owned(),
                format!("{:.1}", s.score),
                s.title.clone(),
                s.file_name.clone().unwrap_or_default(),
                s.company_name.clone().unwrap_or_default(),
                s.upn.clone().unwrap_or_default(),
                s.evidence.events.to_string(),
                s.evidence.users.to_string(),
                s.evidence.devices.to_string(),
                time(s.evidence.first_seen),
                time(s.evidence.last_seen),
                s.evidence.hashes.join(";"),
                s.proposed_rule
                    .as_ref()
                    .map(|r| r.rule_type.as_str().to_owned())
                    .unwrap_or_default(),
                s.rationale.clone(),
            ])
            .map_err(render)?;
    }
    let bytes = writer.into_inner().map_err(|e| QueryError::Render(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| QueryError::Render(e.to_string()))
}

/// A terminal view: rank, kind, score, title, and the rationale wrapped under it.
pub fn suggestions_table(suggestions: &[Suggestion]) -> String {
    let mut out = String::new();
    if suggestions.is_empty() {
        out.push_str("no suggestions: nothing in the window reaches the thresholds\n");
        return out;
    }
    for (rank, s) in suggestions.iter().enumerate() {
        let _ = writeln!(
            out,
            "{:>3}. [{}] {}  (score {:.1}, {} events, {} users)  {}",
            rank + 1,
            s.kind.as_str(),
            s.title,
            s.score,
            s.evidence.events,
            s.evidence.users,
            s.id
        );
        for line in wrap(&s.rationale, 100) {
            let _ = writeln!(out, "       {line}");
        }
    }
    out
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}
