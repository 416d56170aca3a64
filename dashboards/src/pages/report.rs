//! Every report as a table, and one elevation with every column.

use super::*;

// ---------------------------------------------------------------------------------- Reports

#[derive(Template)]
#[template(path = "report.html")]
struct ReportPage {
    chrome: Chrome,
    heading: String,
    reports: Vec<crate::views::NavItem>,
    window: WindowView,
    action: String,
    from: String,
    to: String,
    fields: Vec<FieldView>,
    error: Option<String>,
    /// Days of the window past raw retention: which the table includes, which it cannot.
    coverage: Option<String>,
    csv: Option<String>,
    permalink: Option<String>,
    summary: String,
    caption: String,
    columns: Vec<ColumnView>,
    rows: Vec<Vec<CellView>>,
    previous: Option<String>,
    next: Option<String>,
}

struct FieldView {
    name: String,
    label: String,
    value: String,
    options: Vec<String>,
}

struct ColumnView {
    name: String,
    numeric: bool,
    href: Option<String>,
    sorted: Option<&'static str>,
}

/// A table cell, with a drill-down link where there is one.
#[derive(Debug, Clone)]
pub struct CellView {
    /// Shown text.
    pub text: String,
    /// Right-aligned number.
    pub numeric: bool,
    /// Drill-down.
    pub href: Option<String>,
}

/// The reports the Reports page lists (the Overview has its own page).
pub(super) const TABLE_REPORTS: [ReportName; 10] = [
    ReportName::ByApplication,
    ReportName::ByPublisher,
    ReportName::ByUser,
    ReportName::ByDevice,
    ReportName::Elevations,
    ReportName::ManagedElevations,
    ReportName::Denied,
    ReportName::Trend,
    ReportName::Diagnostics,
    ReportName::Compliance,
];

/// Which filters a report's form offers.
fn filter_fields(name: ReportName) -> &'static [&'static str] {
    match name {
        ReportName::Diagnostics => &["deviceName", "kind"],
        ReportName::Compliance => &[],
        ReportName::ByUser => &[
            "elevationType",
            "upn",
            "deviceName",
            "companyName",
            "hash",
            "fileName",
            "readiness",
        ],
        _ => &["elevationType", "upn", "deviceName", "companyName", "hash", "fileName"],
    }
}

/// The drill-down of a cell: a file's users, a user's and a device's elevations, an
/// elevation's detail (with the elevation's time as `at`, when its row has one).
fn drill_down(column: &str, value: &str, window: &[(String, String)], at: Option<DateTime<Utc>>) -> Option<String> {
    if value.is_empty() {
        return None;
    }
    let with = |key: &str| {
        let mut params = window.to_vec();
        params.push((key.to_owned(), value.to_owned()));
        params
    };
    match column {
        "hash" | "fileName" => Some(href("/reports/by-user", &with(column))),
        "upn" => Some(href("/reports/elevations", &with("upn"))),
        "deviceName" => Some(href("/reports/elevations", &with("deviceName"))),
        "companyName" => Some(href("/reports/by-application", &with("companyName"))),
        "id" => {
            let mut params = window.to_vec();
            params.extend(at.map(|at| ("at".to_owned(), exact_instant(at))));
            Some(href(&format!("/elevations/{}", encode_path(value)), &params))
        }
        _ => None,
    }
}

fn encode_path(segment: &str) -> String {
    serde_urlencoded::to_string([("", segment)])
        .unwrap_or_default()
        .trim_start_matches('=')
        .replace('+', "%20")
}

/// One report as a table with its filters, sorting, paging, CSV download and permalink.
pub async fn report(
    api: &AdminApi,
    viewer: &Viewer,
    name: &str,
    params: &[(String, String)],
) -> Result<String, QueryError> {
    let report_name = ReportName::parse(name)?;
    let live = viewer.mode == Mode::Live;
    let mut params: Vec<(String, String)> = params
        .iter()
        // A filter form sends its empty fields too: an empty field filters nothing.
        .filter(|(k, v)| k != "format" && k != "profile" && !v.is_empty())
        .cloned()
        .collect();
    let default_span = if report_name == ReportName::Overview {
        Duration::hours(48)
    } else {
        Duration::days(30)
    };
    let (from, to) = window_of(&params, default_span, viewer.now)?;
    params.retain(|(k, _)| k != "from" && k != "to");
    if !params.iter().any(|(k, _)| k == "limit") {
        params.push(("limit".into(), PAGE_ROWS.to_string()));
    }
    let window = params_of(&[("from", instant(from)), ("to", instant(to))]);
    let mut full = window.clone();
    full.extend(params.iter().cloned());
    let path = format!("/reports/{name}");
    let (outcome, error) = match run_report(api, viewer, name, &full).await {
        Ok(report) => (Some(report), None),
        Err(QueryError::BadParameter(message)) | Err(QueryError::UnknownReport(message)) => (None, Some(message)),
        Err(other) => return Err(other),
    };
    let get = |key: &str| params.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let limit: usize = get("limit").and_then(|l| l.parse().ok()).unwrap_or(PAGE_ROWS);
    let offset: usize = get("offset").and_then(|o| o.parse().ok()).unwrap_or(0);
    let sort = get("sort");
    let order_desc = get("order").as_deref() == Some("desc");
    let without = |drop: &[&str]| -> Vec<(String, String)> {
        full.iter()
            .filter(|(k, _)| !drop.contains(&k.as_str()))
            .cloned()
            .collect()
    };
    let mut columns = Vec::new();
    let mut rows = Vec::new();
    let mut shown = 0;
    if let Some(report) = &outcome {
        for column in &report.columns {
            let numeric = report
                .rows
                .first()
                .is_some_and(|r| matches!(r[columns.len()], Cell::Int(_)));
            let current = sort.as_deref() == Some(column.as_str());
            let mut link = without(&["sort", "order", "offset"]);
            link.push(("sort".into(), column.clone()));
            link.push((
                "order".into(),
                if current && !order_desc { "desc" } else { "asc" }.into(),
            ));
            columns.push(ColumnView {
                name: column.clone(),
                numeric,
                href: (live && report_name != ReportName::Overview).then(|| href(&path, &link)),
                sorted: current.then_some(if order_desc { "descending" } else { "ascending" }),
            });
        }
        let time_column = report.column("eventDateTime");
        for row in &report.rows {
            let at = time_column.and_then(|i| match row[i] {
                Cell::Time(at) => Some(at),
                _ => None,
            });
            rows.push(
                row.iter()
                    .zip(&report.columns)
                    .map(|(cell, column)| {
                        let text = text_of(cell);
                        CellView {
                            href: if live {
                                drill_down(column, &text, &window, at)
                            } else {
                                None
                            },
                            numeric: matches!(cell, Cell::Int(_)),
                            text,
                        }
                    })
                    .collect(),
            );
        }
        shown = report.rows.len();
    }
    let page_link = |new_offset: usize| {
        let mut link = without(&["offset"]);
        link.push(("offset".into(), new_offset.to_string()));
        href(&path, &link)
    };
    let mut fields = Vec::new();
    for field in filter_fields(report_name) {
        let options: Vec<String> = match *field {
            "elevationType" => TYPES.iter().map(|(t, _)| (*t).to_owned()).collect(),
            "readiness" => queries::request::Readiness::ALL
                .iter()
                .map(|r| r.as_str().to_owned())
                .collect(),
            "kind" => queries::DiagnosticKind::ALL
                .iter()
                .map(|k| k.as_str().to_owned())
                .collect(),
            _ => Vec::new(),
        };
        fields.push(FieldView {
            name: (*field).into(),
            label: (*field).into(),
            value: get(field).unwrap_or_default(),
            options,
        });
    }
    let mut csv = full.clone();
    csv.push(("format".into(), "csv".into()));
    let reports = TABLE_REPORTS
        .iter()
        .map(|r| crate::views::NavItem {
            label: r.as_str().into(),
            href: match viewer.mode {
                Mode::Live => href(&format!("/reports/{}", r.as_str()), &window),
                Mode::Static => static_report_file(r.as_str()),
            },
            current: *r == report_name,
        })
        .collect();
    let keep: Vec<(String, String)> = params.iter().filter(|(k, _)| k != "offset").cloned().collect();
    ReportPage {
        chrome: Chrome::new(
            viewer.mode,
            Page::Reports,
            &format!("Report {name}"),
            viewer.who.clone(),
            viewer.csrf.clone(),
        ),
        heading: format!("Report: {name}"),
        reports,
        window: WindowView::new(viewer.mode, &path, &keep, from, to, viewer.now),
        action: path.clone(),
        from: instant(from),
        to: instant(to),
        fields,
        error,
        coverage: outcome.as_ref().and_then(|r| r.coverage.describe()),
        csv: live.then(|| href(&format!("/v1/reports/{name}"), &csv)),
        permalink: live.then(|| href(&path, &full)),
        summary: format!("rows {} to {}", if shown == 0 { 0 } else { offset + 1 }, offset + shown),
        caption: format!(
            "{name}, {} to {} (UTC)",
            from.format("%Y-%m-%d %H:%M"),
            to.format("%Y-%m-%d %H:%M")
        ),
        columns,
        rows,
        previous: (live && offset > 0).then(|| page_link(offset.saturating_sub(limit))),
        next: (live && shown == limit && limit > 0).then(|| page_link(offset + limit)),
    }
    .render()
    .map_err(|e| QueryError::Render(e.to_string()))
}

// ---------------------------------------------------------------------------------- Detail

#[derive(Template)]
#[template(path = "detail.html")]
struct DetailPage {
    chrome: Chrome,
    heading: String,
    window_label: String,
    fields: Vec<(String, String)>,
    links: Vec<(String, String)>,
    proposal: String,
}

/// One elevation with every column, links to its file, user and device, and the suggestion
/// that proposes a rule for its file, when there is one.
pub async fn elevation(
    api: &AdminApi,
    viewer: &Viewer,
    id: &str,
    params: &[(String, String)],
) -> Result<String, QueryError> {
    let (from, to) = window_of(params, Duration::days(400), viewer.now)?;
    let window = params_of(&[("from", instant(from)), ("to", instant(to))]);
    let lookup = |from: DateTime<Utc>, to: DateTime<Utc>| {
        let query = params_of(&[
            ("from", exact_instant(from)),
            ("to", exact_instant(to)),
            ("id", id.to_owned()),
            ("limit", "1".to_owned()),
        ]);
        async move { run_report(api, viewer, "elevations", &query).await }
    };
    // The lists' links carry the elevation's time (`at`): the lookup then reads the files of
    // that instant's day, not the window's. A wrong or missing `at` falls back to the window.
    let hinted = match params.iter().find(|(k, _)| k == "at") {
        Some((_, at)) => match queries::request::parse_instant("at", at) {
            Ok(at) if at >= from && at < to => Some(lookup(at, at + Duration::microseconds(1)).await?),
            _ => None,
        },
        None => None,
    };
    let report = match hinted.filter(|found| !found.rows.is_empty()) {
        Some(found) => found,
        None => lookup(from, to).await?,
    };
    let mut fields = Vec::new();
    let mut links = Vec::new();
    let mut proposal = String::new();
    if let Some(row) = report.rows.first() {
        fields = report
            .columns
            .iter()
            .zip(row)
            .map(|(c, v)| (c.clone(), text_of(v)))
            .collect();
        let value = |name: &str| report.column(name).map(|i| text_of(&row[i])).unwrap_or_default();
        for (label, column, target) in [
            ("Every elevation of this file", "hash", "/reports/elevations"),
            ("Users and devices of this file", "hash", "/reports/by-user"),
            ("This user's elevations", "upn", "/reports/elevations"),
            ("This device's elevations", "deviceName", "/reports/elevations"),
            ("This device's diagnostics", "deviceName", "/reports/diagnostics"),
        ] {
            let mut link = window.clone();
            link.push((column.into(), value(column)));
            links.push((label.into(), href(target, &link)));
        }
        let suggest_from = crate::views::window_start(to, Duration::days(30));
        let suggest_window = params_of(&[("from", instant(suggest_from)), ("to", instant(to))]);
        let mut parsed =
            queries::suggest::SuggestRequest::parse(&viewer.tenant, &suggest_window, viewer.now, Vec::new())?;
        suggest_inputs(api, &mut parsed.request).await?;
        let file = value("fileName");
        // Only this file's suggestions are computed: the same as its among all of them.
        parsed.request.file = Some(file.clone());
        // Unnamed (`Ranked::iter`): the page shows no user or device of the suggestion.
        let found = parsed.every(&api.warehouse).await?;
        proposal = match found.iter().find(|s| s.proposed_rule.is_some()) {
            Some(s) => {
                // With the id, the suggestions page shows this one whatever its rank.
                let mut link = suggest_window.clone();
                link.push(("id".into(), s.id.clone()));
                links.push((
                    format!("Propose a rule for {file}"),
                    format!("{}#{}", href("/suggestions", &link), s.id),
                ));
                format!("A rule is proposed for {file}: {}", s.title)
            }
            None => format!(
                "No rule is proposed for {file} from its elevations of {} through {}.",
                suggest_from.format("%Y-%m-%d"),
                (to - Duration::microseconds(1)).format("%Y-%m-%d")
            ),
        };
    }
    DetailPage {
        chrome: Chrome::new(
            viewer.mode,
            Page::Reports,
            "Elevation",
            viewer.who.clone(),
            viewer.csrf.clone(),
        ),
        heading: format!("Elevation {id}"),
        window_label: format!("{} to {}", from.format("%Y-%m-%d"), to.format("%Y-%m-%d")),
        fields,
        links,
        proposal,
    }
    .render()
    .map_err(|e| QueryError::Render(e.to_string()))
}
