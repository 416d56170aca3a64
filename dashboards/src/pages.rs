//! The dashboards' pages: the Overview, every report as a table, the suggestions with their
//! export, fleet health and the hour × weekday heatmap. Each page is built by one function
//! that serves both the live server and the static snapshot ([`Mode`]); its numbers come from
//! the same `queries` calls as the admin API, with the same parameters.

// The pages pass `queries`' own error through unchanged (the handlers map it to the answer);
// boxing it for size would only move the allocation to every call.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;

use askama::Template;
use chrono::{DateTime, Datelike, Duration, NaiveDate, Timelike, Utc};
use queries::{Cell, QueryError, ReportName, ReportRequest};

use crate::AdminApi;
use crate::charts;
use crate::views::{Chrome, Mode, Page, WindowView, href, instant, page_href, static_report_file};

/// Who looks, and how the page is delivered.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The tenant whose data the page shows (always the key's).
    pub tenant: String,
    /// "contoso · ada@contoso.com (role)".
    pub who: String,
    /// The session's CSRF token for the sign-out form.
    pub csrf: Option<String>,
    /// Live or static.
    pub mode: Mode,
    /// Now, for default windows.
    pub now: DateTime<Utc>,
}

/// Rows per page of a report table unless `limit` says otherwise.
pub const PAGE_ROWS: usize = 100;

const TYPES: [(&str, &str); 7] = [
    ("unmanagedElevation", "Unmanaged"),
    ("zeroTouchElevation", "Automatic"),
    ("userConfirmedElevation", "User confirmed"),
    ("supportApprovedElevation", "Support approved"),
    ("elevateAsCurrentUser", "As current user"),
    ("deniedElevation", "Denied"),
    ("undetermined", "Undetermined"),
];

fn params_of(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

fn text_of(cell: &Cell) -> String {
    match cell {
        Cell::Null => String::new(),
        Cell::Text(t) => t.clone(),
        Cell::Int(n) => n.to_string(),
        Cell::Bool(b) => if *b { "yes" } else { "no" }.into(),
        Cell::Time(t) => t.format("%Y-%m-%d %H:%M:%SZ").to_string(),
        Cell::Date(d) => d.to_string(),
    }
}

fn window_of(
    params: &[(String, String)],
    default_span: Duration,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), QueryError> {
    let find = |key: &str| params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let to = find("to")
        .map(|t| queries::request::parse_instant("to", t))
        .transpose()?
        .unwrap_or(now);
    let from = find("from")
        .map(|t| queries::request::parse_instant("from", t))
        .transpose()?
        .unwrap_or(to - default_span);
    if from >= to {
        return Err(QueryError::BadParameter(format!(
            "from ({from}) must be before to ({to})"
        )));
    }
    Ok((from, to))
}

async fn run_report(
    api: &AdminApi,
    viewer: &Viewer,
    name: &str,
    params: &[(String, String)],
) -> Result<queries::Report, QueryError> {
    let cap = reporting_cap(api, &viewer.tenant).await?;
    let parsed = ReportRequest::parse(name, &viewer.tenant, params, viewer.now, cap)?;
    queries::run(&api.warehouse, &parsed.request).await
}

// ---------------------------------------------------------------------------------- Overview

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    chrome: Chrome,
    window: WindowView,
    tiles: Vec<TileView>,
    lists: Vec<ListView>,
    legend: Vec<(String, String)>,
    trend_svg: String,
    share_svg: String,
    days: Vec<DayView>,
}

struct TileView {
    label: String,
    count: i64,
    href: Option<String>,
}

struct ListView {
    title: String,
    rows: Vec<ListRow>,
}

struct ListRow {
    rank: i64,
    file: String,
    count: i64,
    users: i64,
    href: Option<String>,
}

struct DayView {
    date: String,
    counts: Vec<i64>,
    total: i64,
    share: String,
}

/// The Overview: readiness tiles, the three "frequently …" lists, the daily trend per type
/// and the managed share, over any window (default Intune's 48 hours).
pub async fn overview(api: &AdminApi, viewer: &Viewer, params: &[(String, String)]) -> Result<String, QueryError> {
    let (from, to) = window_of(params, Duration::hours(48), viewer.now)?;
    let window = params_of(&[("from", instant(from)), ("to", instant(to))]);
    let report = run_report(api, viewer, "overview", &window).await?;
    let column = |name: &str| report.column(name).expect("overview columns");
    let (tile, rank, file, hash, count, users) = (
        column("tile"),
        column("rank"),
        column("fileName"),
        column("hash"),
        column("count"),
        column("users"),
    );
    let live = viewer.mode == Mode::Live;
    let mut tiles = Vec::new();
    let mut lists: BTreeMap<String, Vec<ListRow>> = BTreeMap::new();
    for row in &report.rows {
        let name = text_of(&row[tile]);
        let n = row[count].as_int().unwrap_or(0);
        match name.as_str() {
            "usersOnlyUnmanaged" | "usersBoth" | "usersOnlyManaged" => {
                let (label, readiness) = match name.as_str() {
                    "usersOnlyUnmanaged" => ("users with only unmanaged elevations", "onlyUnmanaged"),
                    "usersBoth" => ("users with unmanaged and managed elevations", "both"),
                    _ => ("users with only managed elevations", "onlyManaged"),
                };
                let mut link = window.clone();
                link.push(("readiness".into(), readiness.into()));
                tiles.push(TileView {
                    label: label.into(),
                    count: n,
                    href: live.then(|| href("/reports/by-user", &link)),
                });
            }
            list => {
                let hash_value = text_of(&row[hash]);
                let mut link = window.clone();
                link.push(("hash".into(), hash_value));
                lists.entry(list.to_owned()).or_default().push(ListRow {
                    rank: row[rank].as_int().unwrap_or(0),
                    file: text_of(&row[file]),
                    count: n,
                    users: row[users].as_int().unwrap_or(0),
                    href: live.then(|| href("/reports/by-user", &link)),
                });
            }
        }
    }
    let lists = [
        ("frequentlyUnmanaged", "Frequently unmanaged"),
        ("frequentlyApprovedBySupport", "Frequently approved by support"),
        ("frequentlyDenied", "Frequently denied"),
    ]
    .into_iter()
    .map(|(key, title)| ListView {
        title: title.into(),
        rows: lists.remove(key).unwrap_or_default(),
    })
    .collect();
    // The trend over whole UTC days of the window.
    let trend = run_report(api, viewer, "trend", &window).await?;
    let (date, kind, n) = (
        trend.column("date").expect("trend columns"),
        trend.column("elevationType").expect("trend columns"),
        trend.column("count").expect("trend columns"),
    );
    let mut per_day: BTreeMap<NaiveDate, BTreeMap<String, i64>> = BTreeMap::new();
    let mut day = from.date_naive();
    while day < to.date_naive() || (day == to.date_naive() && to.time() != chrono::NaiveTime::MIN) {
        per_day.insert(day, BTreeMap::new());
        day = day.succ_opt().expect("calendar");
    }
    for row in &trend.rows {
        if let Cell::Date(d) = row[date] {
            *per_day.entry(d).or_default().entry(text_of(&row[kind])).or_default() += row[n].as_int().unwrap_or(0);
        }
    }
    let labels: Vec<String> = per_day.keys().map(NaiveDate::to_string).collect();
    let series: Vec<(String, Vec<i64>)> = TYPES
        .iter()
        .map(|(t, _)| {
            (
                (*t).to_owned(),
                per_day.values().map(|c| c.get(*t).copied().unwrap_or(0)).collect(),
            )
        })
        .collect();
    let mut days = Vec::new();
    let mut shares = Vec::new();
    for (d, counts) in &per_day {
        let total: i64 = counts.values().sum();
        let managed = total - counts.get("unmanagedElevation").copied().unwrap_or(0);
        let share = (total > 0).then(|| managed as f64 / total as f64);
        shares.push(share);
        days.push(DayView {
            date: d.to_string(),
            counts: TYPES
                .iter()
                .map(|(t, _)| counts.get(*t).copied().unwrap_or(0))
                .collect(),
            total,
            share: share
                .map(|s| format!("{:.1} %", s * 100.0))
                .unwrap_or_else(|| "–".into()),
        });
    }
    OverviewPage {
        chrome: Chrome::new(
            viewer.mode,
            Page::Overview,
            "Overview",
            viewer.who.clone(),
            viewer.csrf.clone(),
        ),
        window: WindowView::new(viewer.mode, "/", &[], from, to, viewer.now),
        tiles,
        lists,
        legend: TYPES.iter().map(|(t, l)| ((*t).to_owned(), (*l).to_owned())).collect(),
        trend_svg: charts::stacked_bars("Elevations per day, stacked by elevation type", &labels, &series),
        share_svg: charts::share_line("Share of each day's elevations that were managed", &labels, &shares),
        days,
    }
    .render()
    .map_err(|e| QueryError::Render(e.to_string()))
}

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
const TABLE_REPORTS: [ReportName; 10] = [
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
        ReportName::Diagnostics => &["deviceName"],
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
/// elevation's detail.
fn drill_down(column: &str, value: &str, window: &[(String, String)]) -> Option<String> {
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
        "id" => Some(href(&format!("/elevations/{}", encode_path(value)), window)),
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
        .filter(|(k, _)| k != "format" && k != "profile")
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
        for row in &report.rows {
            rows.push(
                row.iter()
                    .zip(&report.columns)
                    .map(|(cell, column)| {
                        let text = text_of(cell);
                        CellView {
                            href: if live { drill_down(column, &text, &window) } else { None },
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
            "readiness" => ["onlyUnmanaged", "both", "onlyManaged"].map(String::from).to_vec(),
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
    let mut query = window.clone();
    query.push(("id".into(), id.to_owned()));
    query.push(("limit".into(), "1".into()));
    let report = run_report(api, viewer, "elevations", &query).await?;
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
        let suggest_window = params_of(&[("from", instant(to - Duration::days(30))), ("to", instant(to))]);
        let parsed = queries::suggest::SuggestRequest::parse(
            &viewer.tenant,
            &suggest_window,
            viewer.now,
            imported(api, &viewer.tenant).await?,
        )?;
        let file = value("fileName");
        proposal = match parsed.run(&api.warehouse).await?.into_iter().find(|s| {
            s.proposed_rule.is_some() && s.file_name.as_deref().is_some_and(|f| f.eq_ignore_ascii_case(&file))
        }) {
            Some(s) => {
                links.push((
                    format!("Propose a rule for {file}"),
                    format!("{}#{}", href("/suggestions", &suggest_window), s.id),
                ));
                format!("A rule is proposed for {file}: {}", s.title)
            }
            None => format!(
                "No rule is proposed for {file} from the 30 days before {}.",
                to.format("%Y-%m-%d")
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

async fn imported(api: &AdminApi, tenant: &str) -> Result<Vec<warehouse::policy::RulesPolicy>, QueryError> {
    api.control
        .imported_policies(tenant)
        .await
        .map_err(|e| QueryError::Render(format!("the imported rules cannot be read: {e}")))
}

async fn reporting_cap(api: &AdminApi, tenant: &str) -> Result<warehouse::ReportingLevel, QueryError> {
    Ok(api
        .control
        .settings_of(tenant)
        .await
        .map_err(|e| QueryError::Render(format!("the tenant's settings cannot be read: {e}")))?
        .reporting_cap)
}

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
    let parsed = queries::suggest::SuggestRequest::parse(
        &viewer.tenant,
        &query,
        viewer.now,
        imported(api, &viewer.tenant).await?,
    )?;
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

// ---------------------------------------------------------------------------------- Fleet

#[derive(Template)]
#[template(path = "fleet.html")]
struct FleetPage {
    chrome: Chrome,
    window: WindowView,
    sections: Vec<FleetSection>,
}

struct FleetSection {
    title: String,
    note: String,
    headers: Vec<String>,
    rows: Vec<Vec<CellView>>,
}

/// Devices per effective reporting level, devices below the tenant's cap, silent devices and
/// error codes: the `diagnostics` report, laid out.
pub async fn fleet(api: &AdminApi, viewer: &Viewer, params: &[(String, String)]) -> Result<String, QueryError> {
    let (from, to) = window_of(params, Duration::days(30), viewer.now)?;
    let window = params_of(&[("from", instant(from)), ("to", instant(to))]);
    let report = run_report(api, viewer, "diagnostics", &window).await?;
    let column = |name: &str| report.column(name).expect("diagnostics columns");
    let (kind, level, error_code, device, last_seen, count) = (
        column("kind"),
        column("level"),
        column("errorCode"),
        column("deviceName"),
        column("lastSeen"),
        column("count"),
    );
    let live = viewer.mode == Mode::Live;
    let cell = |text: String, href: Option<String>| CellView {
        text,
        numeric: false,
        href,
    };
    let device_cell = |name: String| {
        let mut link = window.clone();
        link.push(("deviceName".into(), name.clone()));
        cell(name, live.then(|| href("/reports/diagnostics", &link)))
    };
    let mut sections = vec![
        FleetSection {
            title: "Devices per effective reporting level".into(),
            note: "A device at managed never reports unmanaged elevations; one at diagnostic or none reports no elevations at all.".into(),
            headers: vec!["Level".into(), "Devices".into()],
            rows: Vec::new(),
        },
        FleetSection {
            title: "Devices reporting below the tenant's cap".into(),
            note: "Their declared level is lower than what the tenant allows: their elevations are missing from every report.".into(),
            headers: vec!["Device".into(), "Level".into(), "Last event".into()],
            rows: Vec::new(),
        },
        FleetSection {
            title: "Silent devices".into(),
            note: "No event in the last days before the window's end (silentDays, default 3).".into(),
            headers: vec!["Device".into(), "Level".into(), "Last event".into()],
            rows: Vec::new(),
        },
        FleetSection {
            title: "Error codes reported by agents".into(),
            note: "Non-zero error codes of diagnostic events in the window.".into(),
            headers: vec!["Error code".into(), "Events".into()],
            rows: Vec::new(),
        },
    ];
    for row in &report.rows {
        match text_of(&row[kind]).as_str() {
            "reportingDevices" => sections[0]
                .rows
                .push(vec![cell(text_of(&row[level]), None), cell(text_of(&row[count]), None)]),
            "belowCap" => sections[1].rows.push(vec![
                device_cell(text_of(&row[device])),
                cell(text_of(&row[level]), None),
                cell(text_of(&row[last_seen]), None),
            ]),
            "silentDevice" => sections[2].rows.push(vec![
                device_cell(text_of(&row[device])),
                cell(text_of(&row[level]), None),
                cell(text_of(&row[last_seen]), None),
            ]),
            "errorCode" => {
                let code = row[error_code]
                    .as_int()
                    .map(|c| format!("0x{:08X} ({c})", c as u32))
                    .unwrap_or_default();
                sections[3]
                    .rows
                    .push(vec![cell(code, None), cell(text_of(&row[count]), None)]);
            }
            _ => {}
        }
    }
    FleetPage {
        chrome: Chrome::new(
            viewer.mode,
            Page::Fleet,
            "Fleet health",
            viewer.who.clone(),
            viewer.csrf.clone(),
        ),
        window: WindowView::new(viewer.mode, "/fleet", &[], from, to, viewer.now),
        sections,
    }
    .render()
    .map_err(|e| QueryError::Render(e.to_string()))
}

// ---------------------------------------------------------------------------------- When

#[derive(Template)]
#[template(path = "when.html")]
struct WhenPage {
    chrome: Chrome,
    window: WindowView,
    from: String,
    to: String,
    tz: String,
    error: Option<String>,
    rows: Vec<HeatRow>,
    hour_totals: Vec<i64>,
    total: i64,
}

struct HeatRow {
    day: &'static str,
    cells: Vec<(i64, u8)>,
    total: i64,
}

/// Counts per (weekday, hour) of a time zone from quarter-hour counts in UTC.
pub fn heat_grid(counts: &[(DateTime<Utc>, i64)], tz: chrono_tz::Tz) -> [[i64; 24]; 7] {
    let mut grid = [[0i64; 24]; 7];
    for (at, n) in counts {
        let local = at.with_timezone(&tz);
        grid[local.weekday().num_days_from_monday() as usize][local.hour() as usize] += n;
    }
    grid
}

/// Elevations by hour of day × weekday in UTC or a chosen time zone, with totals.
pub async fn when(api: &AdminApi, viewer: &Viewer, params: &[(String, String)]) -> Result<String, QueryError> {
    let (from, to) = window_of(params, Duration::days(30), viewer.now)?;
    let tz_name = params
        .iter()
        .find(|(k, _)| k == "tz")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "UTC".into());
    let (tz, error) = match tz_name.parse::<chrono_tz::Tz>() {
        Ok(tz) => (tz, None),
        Err(_) => (
            chrono_tz::UTC,
            Some(format!(
                "{tz_name:?} is not a time zone name such as Europe/Paris or UTC; showing UTC"
            )),
        ),
    };
    let mut query = params_of(&[("from", instant(from)), ("to", instant(to))]);
    query.extend(
        params
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "from" | "to" | "tz"))
            .cloned(),
    );
    let cap = reporting_cap(api, &viewer.tenant).await?;
    let parsed = ReportRequest::parse("elevations", &viewer.tenant, &query, viewer.now, cap)?;
    let counts = queries::reports::quarter_hour_counts(&api.warehouse, &parsed.request).await?;
    let grid = heat_grid(&counts, tz);
    let max = grid.iter().flatten().copied().max().unwrap_or(0).max(1);
    const DAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    let rows = grid
        .iter()
        .zip(DAYS)
        .map(|(hours, day)| HeatRow {
            day,
            cells: hours
                .iter()
                .map(|n| (*n, if *n == 0 { 0 } else { (1 + n * 8 / max).min(9) as u8 }))
                .collect(),
            total: hours.iter().sum(),
        })
        .collect();
    let hour_totals = (0..24).map(|h| grid.iter().map(|d| d[h]).sum()).collect();
    let keep = if tz_name == "UTC" {
        Vec::new()
    } else {
        vec![("tz".to_owned(), tz_name.clone())]
    };
    WhenPage {
        chrome: Chrome::new(viewer.mode, Page::When, "When", viewer.who.clone(), viewer.csrf.clone()),
        window: WindowView::new(viewer.mode, "/when", &keep, from, to, viewer.now),
        from: instant(from),
        to: instant(to),
        tz: tz.name().into(),
        error,
        rows,
        hour_totals,
        total: grid.iter().flatten().sum(),
    }
    .render()
    .map_err(|e| QueryError::Render(e.to_string()))
}

/// The static snapshot's pages: file name and HTML.
pub async fn snapshot(
    api: &AdminApi,
    viewer: &Viewer,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(String, String)>, QueryError> {
    let window = params_of(&[("from", instant(from)), ("to", instant(to))]);
    let mut pages = vec![
        (
            page_href(Mode::Static, Page::Overview),
            overview(api, viewer, &window).await?,
        ),
        (
            page_href(Mode::Static, Page::Suggestions),
            suggestions(api, viewer, &window).await?,
        ),
        (page_href(Mode::Static, Page::Fleet), fleet(api, viewer, &window).await?),
        (page_href(Mode::Static, Page::When), when(api, viewer, &window).await?),
    ];
    for name in TABLE_REPORTS {
        let mut params = window.clone();
        // The snapshot holds every row of the aggregations and the newest page of events.
        if !name.is_event_list() {
            params.push(("limit".into(), queries::request::MAX_LIMIT.to_string()));
        }
        pages.push((
            static_report_file(name.as_str()),
            report(api, viewer, name.as_str(), &params).await?,
        ));
    }
    Ok(pages)
}

/// The assets the pages load, embedded in the binary.
pub fn asset(name: &str) -> Option<(&'static str, &'static [u8])> {
    match name {
        "style.css" => Some(("text/css; charset=utf-8", include_bytes!("../assets/style.css"))),
        "htmx.min.js" => Some((
            "text/javascript; charset=utf-8",
            include_bytes!("../assets/htmx.min.js"),
        )),
        _ => None,
    }
}
