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
    previous: Option<String>,
    next: Option<String>,
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

/// The first values of a list, and how many more there are: a file in each user's profile
/// folder has thousands of folders, which the JSON export lists and a page need not.
fn shortened(values: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut text = values.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if values.len() > SHOWN {
        text.push_str(&format!(" and {} more", values.len() - SHOWN));
    }
    text
}

/// The ranked suggestions with rationale and evidence; the proposals can be selected and
/// downloaded as an Intune policy, EPManager CSV or JSON (`/v1/exports/rules?id=…`).
pub async fn suggestions(api: &AdminApi, viewer: &Viewer, params: &[(String, String)]) -> Result<String, QueryError> {
    let (from, to) = window_of(params, Duration::days(30), viewer.now)?;
    let mut query = params_of(&[("from", instant(from)), ("to", instant(to))]);
    query.extend(params.iter().filter(|(k, _)| k != "from" && k != "to").cloned());
    // Pages of 100 like the report tables; the static snapshot, which cannot page, lists all.
    let live = viewer.mode == Mode::Live;
    if live && !query.iter().any(|(k, _)| k == "limit") {
        query.push(("limit".into(), PAGE_ROWS.to_string()));
    }
    let mut parsed = queries::suggest::SuggestRequest::parse(&viewer.tenant, &query, viewer.now, Vec::new())?;
    suggest_inputs(api, &mut parsed.request).await?;
    let every = parsed.every(&api.warehouse).await?;
    let total = every.len();
    let with_rules = every.iter().filter(|s| s.proposed_rule.is_some()).count();
    let (offset, limit) = (parsed.offset, parsed.limit.unwrap_or(usize::MAX));
    // The page shows a few users of each suggestion (`sampleUsers`), never the whole list, so
    // its suggestions are not named (`Ranked::page`).
    let found: Vec<&queries::suggest::Suggestion> = every.iter().skip(offset).take(limit).collect();
    let page_link = |new_offset: usize| {
        let mut link: Vec<(String, String)> = query.iter().filter(|(k, _)| k != "offset").cloned().collect();
        link.push(("offset".into(), new_offset.to_string()));
        href("/suggestions", &link)
    };
    let time = |t: Option<DateTime<Utc>>| t.map(|t| t.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default();
    let views: Vec<SuggestionView> = found
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
                    evidence.push((label.into(), shortened(values)));
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
                rank: offset + rank + 1,
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
            "{total} suggestions, {with_rules} with a rule to export; ranked by score; showing {} to {}",
            if found.is_empty() { 0 } else { offset + 1 },
            offset + found.len()
        ),
        export_action: "/v1/exports/rules".into(),
        from: instant(from),
        to: instant(to),
        previous: (live && offset > 0).then(|| page_link(offset.saturating_sub(limit))),
        next: (live && offset.saturating_add(limit) < total).then(|| page_link(offset + limit)),
        suggestions: views,
    }
    .render()
    .map_err(|e| QueryError::Render(e.to_string()))
}
