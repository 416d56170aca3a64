//! What the pages show, as plain data for the templates: the page chrome, the window picker,
//! and the links between pages, live (server URLs) or in the static snapshot (file names).

use chrono::{DateTime, Duration, SecondsFormat, SubsecRound, Utc};

/// Where the pages live: on the server, or as files of a static snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Served by `elevation serve`: every link, filter and drill-down works.
    Live,
    /// Written by `elevation dashboard --out`: one file per page, links between them.
    Static,
}

/// The pages of the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// The readiness dashboard.
    Overview,
    /// Report tables.
    Reports,
    /// Rule suggestions.
    Suggestions,
    /// Agent health.
    Fleet,
    /// Hour × weekday heatmap.
    When,
    /// Support-approved elevation requests.
    Requests,
}

/// Header, navigation and who is signed in: the parts of every page.
#[derive(Debug, Clone)]
pub struct Chrome {
    /// Page title.
    pub title: String,
    /// Navigation links.
    pub nav: Vec<NavItem>,
    /// "contoso · ada@contoso.com (endpoint-privilege-manager)".
    pub who: String,
    /// The session's CSRF token, when signed in with a session (sign-out form).
    pub csrf: Option<String>,
    /// Prefix of asset URLs (`/assets/` or `assets/`).
    pub assets: String,
    /// Whether forms and drill-downs work (not in a static snapshot).
    pub live: bool,
}

/// A link of the navigation.
#[derive(Debug, Clone)]
pub struct NavItem {
    /// Text.
    pub label: String,
    /// Target.
    pub href: String,
    /// The page shown now.
    pub current: bool,
}

impl Chrome {
    /// The chrome of a page.
    pub fn new(mode: Mode, page: Page, title: &str, who: String, csrf: Option<String>) -> Chrome {
        let nav = [
            (Page::Overview, "Overview"),
            (Page::Reports, "Reports"),
            (Page::Suggestions, "Suggestions"),
            (Page::Fleet, "Fleet health"),
            (Page::When, "When"),
            (Page::Requests, "Requests"),
        ]
        .into_iter()
        .map(|(p, label)| NavItem {
            label: label.into(),
            href: page_href(mode, p),
            current: p == page,
        })
        .collect();
        Chrome {
            title: title.into(),
            nav,
            who,
            csrf,
            assets: match mode {
                Mode::Live => "/assets/".into(),
                Mode::Static => "assets/".into(),
            },
            live: mode == Mode::Live,
        }
    }
}

/// The entry link of a page.
pub fn page_href(mode: Mode, page: Page) -> String {
    match (mode, page) {
        (Mode::Live, Page::Overview) => "/".into(),
        (Mode::Live, Page::Reports) => "/reports/by-application".into(),
        (Mode::Live, Page::Suggestions) => "/suggestions".into(),
        (Mode::Live, Page::Fleet) => "/fleet".into(),
        (Mode::Live, Page::When) => "/when".into(),
        (Mode::Live, Page::Requests) => "/requests".into(),
        (Mode::Static, Page::Overview) => "index.html".into(),
        (Mode::Static, Page::Reports) => "report-by-application.html".into(),
        (Mode::Static, Page::Suggestions) => "suggestions.html".into(),
        (Mode::Static, Page::Fleet) => "fleet.html".into(),
        (Mode::Static, Page::When) => "when.html".into(),
        (Mode::Static, Page::Requests) => "requests.html".into(),
    }
}

/// The file of a report in the static snapshot.
pub fn static_report_file(name: &str) -> String {
    format!("report-{name}.html")
}

/// A link with a query string built from `params` (values escaped).
pub fn href(path: &str, params: &[(String, String)]) -> String {
    if params.is_empty() {
        return path.to_owned();
    }
    let query = serde_urlencoded::to_string(params).unwrap_or_default();
    format!("{path}?{query}")
}

/// An instant as it goes into a link: RFC 3339, whole seconds.
pub fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// An event's own instant as it goes into a link (an elevation's `at`): RFC 3339 to the
/// fraction of a second it has, so that the link names that exact instant.
pub fn exact_instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Where a window of `span` ending at `to` starts, as the dashboards choose it. Spans of three
/// whole days or more start at midnight UTC: "30 d" is the day of `to` and the 29 days before
/// it (the last 30 days when `to` is a midnight), so its first day is whole and its daily
/// rollups answer it, where a window cut at the hour of `to` reads that day's raw rows. The
/// Overview's 24 and 48 hours are exact.
pub fn window_start(to: DateTime<Utc>, span: Duration) -> DateTime<Utc> {
    let days = span.num_days();
    if days < 3 || span != Duration::days(days) {
        return to - span;
    }
    // The last instant inside the window is in the window's last day.
    let last_day = (to - Duration::microseconds(1)).date_naive();
    (last_day - Duration::days(days - 1))
        .and_time(chrono::NaiveTime::MIN)
        .and_utc()
}

/// The window picker: the usual spans up to now, and a custom from/to.
#[derive(Debug, Clone)]
pub struct WindowView {
    /// 24 h, 48 h, 7 d, 30 d, 90 d.
    pub choices: Vec<WindowChoice>,
    /// Where the custom form goes.
    pub action: String,
    /// Parameters the custom form keeps (filters, report).
    pub keep: Vec<(String, String)>,
    /// `from` as a date for the date input.
    pub from_day: String,
    /// `to` as a date.
    pub to_day: String,
    /// "from … to … (UTC)".
    pub label: String,
}

/// One span of the window picker.
#[derive(Debug, Clone)]
pub struct WindowChoice {
    /// "7 d".
    pub label: String,
    /// The page over that span up to now.
    pub href: String,
    /// Whether the page shows that span now.
    pub current: bool,
}

impl WindowView {
    /// The picker for a page at `path` showing `from..to`, keeping `keep` in every link.
    pub fn new(
        mode: Mode,
        path: &str,
        keep: &[(String, String)],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> WindowView {
        // Links carry whole seconds: each span starts where the page it opens will place it.
        let now = now.trunc_subsecs(0);
        let choices = match mode {
            Mode::Static => Vec::new(),
            Mode::Live => [("24 h", 1), ("48 h", 2), ("7 d", 7), ("30 d", 30), ("90 d", 90)]
                .into_iter()
                .map(|(label, days)| {
                    let span = if days <= 2 {
                        Duration::hours(24 * days)
                    } else {
                        Duration::days(days)
                    };
                    let mut params = vec![
                        ("from".to_owned(), instant(window_start(now, span))),
                        ("to".to_owned(), instant(now)),
                    ];
                    params.extend(keep.iter().cloned());
                    WindowChoice {
                        label: label.into(),
                        href: href(path, &params),
                        current: from == window_start(to, span) && (now - to).num_seconds().abs() < 120,
                    }
                })
                .collect(),
        };
        WindowView {
            choices,
            action: path.into(),
            keep: keep.to_vec(),
            from_day: from.format("%Y-%m-%d").to_string(),
            to_day: to.format("%Y-%m-%d").to_string(),
            label: format!(
                "{} to {} (UTC, to exclusive)",
                from.format("%Y-%m-%d %H:%M"),
                to.format("%Y-%m-%d %H:%M")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn day_windows_start_at_a_midnight_and_hour_windows_are_exact() {
        let afternoon = at("2026-12-07T15:20:00Z");
        assert_eq!(window_start(afternoon, Duration::days(30)), at("2026-11-08T00:00:00Z"));
        assert_eq!(window_start(afternoon, Duration::days(7)), at("2026-12-01T00:00:00Z"));
        assert_eq!(window_start(afternoon, Duration::hours(48)), at("2026-12-05T15:20:00Z"));
        assert_eq!(window_start(afternoon, Duration::hours(24)), at("2026-12-06T15:20:00Z"));
        // A window ending at a midnight holds the 30 whole days before it.
        let midnight = at("2026-12-07T00:00:00Z");
        assert_eq!(window_start(midnight, Duration::days(30)), at("2026-11-07T00:00:00Z"));
        // Not whole days: exact.
        assert_eq!(
            window_start(afternoon, Duration::hours(80)),
            afternoon - Duration::hours(80)
        );
    }

    #[test]
    fn the_picker_marks_the_span_shown() {
        let now = at("2026-12-07T15:20:00Z");
        let picker = WindowView::new(Mode::Live, "/", &[], window_start(now, Duration::days(30)), now, now);
        let current: Vec<&str> = picker
            .choices
            .iter()
            .filter(|c| c.current)
            .map(|c| c.label.as_str())
            .collect();
        assert_eq!(current, ["30 d"]);
        let thirty = picker.choices.iter().find(|c| c.label == "30 d").unwrap();
        assert!(thirty.href.contains("from=2026-11-08T00%3A00%3A00Z"), "{}", thirty.href);
    }
}
