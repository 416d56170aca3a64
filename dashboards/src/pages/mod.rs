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
use crate::views::{Chrome, Mode, Page, WindowView, exact_instant, href, instant, page_href, static_report_file};

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
        .unwrap_or_else(|| crate::views::window_start(to, default_span));
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

mod fleet;
mod overview;
mod report;
mod requests;
mod suggestions;
mod when;

pub use fleet::{LISTED_DEVICES, fleet};
pub use overview::overview;
use report::TABLE_REPORTS;
pub use report::{CellView, elevation, report};
pub use requests::{request, requests};
pub use suggestions::suggestions;
pub use when::{heat_grid, when};

/// Fills a suggestions request with what the control plane holds (imported rules, requests).
async fn suggest_inputs(api: &AdminApi, request: &mut queries::suggest::SuggestRequest) -> Result<(), QueryError> {
    crate::suggest_inputs(&api.control, request)
        .await
        .map_err(|e| QueryError::Render(format!("the imported rules and requests cannot be read: {e}")))
}

async fn reporting_cap(api: &AdminApi, tenant: &str) -> Result<warehouse::ReportingLevel, QueryError> {
    Ok(api
        .control
        .settings_of(tenant)
        .await
        .map_err(|e| QueryError::Render(format!("the tenant's settings cannot be read: {e}")))?
        .reporting_cap)
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
        (
            page_href(Mode::Static, Page::Requests),
            requests(api, viewer, &window).await?,
        ),
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

/// The names of the assets the pages load (served under `/assets/`, written by the snapshot).
pub const ASSETS: [&str; 3] = ["style.css", "htmx.min.js", "favicon.svg"];

/// The assets the pages load, embedded in the binary.
pub fn asset(name: &str) -> Option<(&'static str, &'static [u8])> {
    match name {
        "style.css" => Some(("text/css; charset=utf-8", include_bytes!("../../assets/style.css"))),
        "favicon.svg" => Some(("image/svg+xml", include_bytes!("../../assets/favicon.svg"))),
        "htmx.min.js" => Some((
            "text/javascript; charset=utf-8",
            include_bytes!("../../assets/htmx.min.js"),
        )),
        _ => None,
    }
}
