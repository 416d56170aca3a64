//! The ranked suggestions, selectable for export.

use super::*;

// ---------------------------------------------------------------------------------- Suggestions

#[derive(Template)]
#[template(path = "suggestions.html")]
struct SuggestionsPage {
    chrome: Chrome,
    window: WindowView,
    summary: String,
    export_action: String,
    from: String,
    to: String,
    suggestions: Vec<SuggestionView>,
}

struct SuggestionView {
    id: String,
    rank: usize,
    title: String,
    kind: String,
    score: String,
    rationale: String,
    selectable: bool,
    evidence: Vec<(String, String)>,
}

/// The ranked suggestions with rationale and evidence; the proposals can be selected and
/// downloaded as an Intune policy, EPManager CSV or JSON (`/v1/exports/rules?id=…`).
pub async fn suggestions(api: &AdminApi, viewer: &Viewer, params: &[(String, String)]) -> Result<String, QueryError> {
    let (from, to) = window_of(params, Duration::days(30), viewer.now)?;
    let mut query = params_of(&[("from", instant(from)), ("to", instant(to))]);
    query.extend(params.iter().filter(|(k, _)| k != "from" && k != "to").cloned());
    let mut parsed = queries::suggest::SuggestRequest::parse(&viewer.tenant, &query, viewer.now, Vec::new())?;
    suggest_inputs(api, &mut parsed.request).await?;
    let found = parsed.run(&api.warehouse).await?;
    let time = |t: Option<DateTime<Utc>>| t.map(|t| t.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default();
    let views = found
        .iter()
        .enumerate()
        .map(|(rank, s)| {
            let e = &s.evidence;
            let mut evidence = vec![
                ("Elevations".to_owned(), e.events.to_string()),
                ("Users".to_owned(), e.users.to_string()),
                ("Devices".to_owned(), e.devices.to_string()),
                (
                    "First and last".to_owned(),
                    format!("{} – {}", time(e.first_seen), time(e.last_seen)),
                ),
                (
                    "By type".to_owned(),
                    e.by_elevation_type
                        .iter()
                        .map(|(t, n)| format!("{t} {n}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
            ];
            for (label, values) in [
                ("Publishers", &e.publishers),
                ("Versions", &e.versions),
                ("Folders", &e.folders),
                ("Parent processes", &e.parent_processes),
                ("Sample users", &e.sample_users),
                ("Sample justifications", &e.sample_justifications),
            ] {
                if !values.is_empty() {
                    evidence.push((label.into(), values.join(", ")));
                }
            }
            if let Some(rule) = &s.proposed_rule {
                evidence.push((
                    "Proposed rule".into(),
                    format!("{} ({}) for {}", rule.name, rule.rule_type.as_str(), rule.file_name),
                ));
            }
            SuggestionView {
                id: s.id.clone(),
                rank: rank + 1,
                title: s.title.clone(),
                kind: s.kind.as_str().into(),
                score: format!("{:.1}", s.score),
                rationale: s.rationale.clone(),
                selectable: s.proposed_rule.is_some() && viewer.mode == Mode::Live,
                evidence,
            }
        })
        .collect();
    SuggestionsPage {
        chrome: Chrome::new(
            viewer.mode,
            Page::Suggestions,
            "Suggestions",
            viewer.who.clone(),
            viewer.csrf.clone(),
        ),
        window: WindowView::new(viewer.mode, "/suggestions", &[], from, to, viewer.now),
        summary: format!(
            "{} suggestions, {} with a rule to export; ranked by score",
            found.len(),
            found.iter().filter(|s| s.proposed_rule.is_some()).count()
        ),
        export_action: "/v1/exports/rules".into(),
        from: instant(from),
        to: instant(to),
        suggestions: views,
    }
    .render()
    .map_err(|e| QueryError::Render(e.to_string()))
}
