//! Fleet health: reporting levels, devices below the cap, silent devices, error codes.

use queries::DiagnosticKind;

use super::*;

// ---------------------------------------------------------------------------------- Fleet

#[derive(Template)]
#[template(path = "fleet.html")]
struct FleetPage {
    chrome: Chrome,
    window: WindowView,
    sections: Vec<FleetSection>,
    errors_svg: String,
    /// The codes of the chart, as column headers.
    error_codes: Vec<String>,
    /// Per day: the date and the count of each code.
    error_days: Vec<(String, Vec<i64>)>,
    /// Days of the window past raw retention (device activity reads their rollups).
    coverage: Option<String>,
}

/// Codes of their own in the chart; the rest are summed as "other".
const CHARTED_CODES: usize = 6;

/// Devices each device list shows; the rest are a link away, in the `diagnostics` report's
/// table (paged, with its CSV), so that a fleet with thousands of silent devices still loads
/// as a page rather than as every one of them.
pub const LISTED_DEVICES: usize = 25;

/// An error code as Windows shows it, with its decimal value.
fn code_text(code: i64) -> String {
    format!("0x{:08X} ({code})", code as u32)
}

struct FleetSection {
    title: String,
    note: String,
    headers: Vec<String>,
    rows: Vec<Vec<CellView>>,
    /// A device list's rows, listed or not.
    total: usize,
    /// Every row of a device list in the `diagnostics` report's table, when some are not listed.
    all_of_them: Option<String>,
}

impl FleetSection {
    fn new(title: &str, note: &str, headers: &[&str]) -> FleetSection {
        FleetSection {
            title: title.into(),
            note: note.into(),
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
            total: 0,
            all_of_them: None,
        }
    }

    /// Adds a device's row: listed while the list is short, counted in any case.
    fn add_device(&mut self, row: Vec<CellView>) {
        self.total += 1;
        if self.rows.len() < LISTED_DEVICES {
            self.rows.push(row);
        }
    }
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
        FleetSection::new(
            "Devices per effective reporting level",
            "A device at managed never reports unmanaged elevations; one at diagnostic or none reports no elevations at all.",
            &["Level", "Devices"],
        ),
        FleetSection::new(
            "Devices reporting below the tenant's cap",
            "Their declared level is lower than what the tenant allows: their elevations are missing from every report.",
            &["Device", "Level", "Last event"],
        ),
        FleetSection::new(
            "Silent devices",
            "No event in the last days before the window's end (silentDays, default 3).",
            &["Device", "Level", "Last event"],
        ),
        FleetSection::new(
            "Error codes reported by agents",
            "Non-zero error codes of diagnostic events in the window.",
            &["Error code", "Events"],
        ),
    ];
    let device_row = |row: &[Cell]| {
        vec![
            device_cell(text_of(&row[device])),
            cell(text_of(&row[level]), None),
            cell(text_of(&row[last_seen]), None),
        ]
    };
    for row in &report.rows {
        let Some(Ok(row_kind)) = row[kind].as_text().map(DiagnosticKind::parse) else {
            continue;
        };
        match row_kind {
            DiagnosticKind::ReportingDevices => sections[0]
                .rows
                .push(vec![cell(text_of(&row[level]), None), cell(text_of(&row[count]), None)]),
            DiagnosticKind::BelowCap => sections[1].add_device(device_row(row)),
            DiagnosticKind::SilentDevice => sections[2].add_device(device_row(row)),
            DiagnosticKind::ErrorCode => {
                let code = row[error_code].as_int().map(code_text).unwrap_or_default();
                sections[3]
                    .rows
                    .push(vec![cell(code, None), cell(text_of(&row[count]), None)]);
            }
        }
    }
    for (section, listed_kind) in [(1, DiagnosticKind::BelowCap), (2, DiagnosticKind::SilentDevice)] {
        let section = &mut sections[section];
        if section.total > section.rows.len() {
            let mut link = window.clone();
            link.push(("kind".into(), listed_kind.as_str().into()));
            section.all_of_them = Some(match viewer.mode {
                Mode::Live => href("/reports/diagnostics", &link),
                // The snapshot's diagnostics table holds every row.
                Mode::Static => static_report_file("diagnostics"),
            });
        }
    }
    let cap = reporting_cap(api, &viewer.tenant).await?;
    let parsed = ReportRequest::parse("diagnostics", &viewer.tenant, &window, viewer.now, cap)?;
    let by_day = queries::reports::error_codes_by_day(&api.warehouse, &parsed.request).await?;
    let (error_codes, error_days) = error_series(&by_day, from, to);
    let series: Vec<(String, Vec<i64>)> = error_codes
        .iter()
        .enumerate()
        .map(|(i, code)| (code.clone(), error_days.iter().map(|(_, counts)| counts[i]).collect()))
        .collect();
    let labels: Vec<String> = error_days.iter().map(|(day, _)| day.clone()).collect();
    FleetPage {
        errors_svg: charts::stacked_bars(
            "Diagnostic events with an error code, per day, stacked by code",
            &labels,
            &series,
        ),
        error_codes,
        error_days,
        chrome: Chrome::new(
            viewer.mode,
            Page::Fleet,
            "Fleet health",
            viewer.who.clone(),
            viewer.csrf.clone(),
        ),
        window: WindowView::new(viewer.mode, "/fleet", &[], from, to, viewer.now),
        sections,
        coverage: report.coverage.describe(),
    }
    .render()
    .map_err(|e| QueryError::Render(e.to_string()))
}

/// The chart's codes (the most frequent first, then "other") and each day's counts of them,
/// every day of the window included.
fn error_series(
    by_day: &[(NaiveDate, i64, i64)],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> (Vec<String>, Vec<(String, Vec<i64>)>) {
    let mut totals: BTreeMap<i64, i64> = BTreeMap::new();
    for (_, code, n) in by_day {
        *totals.entry(*code).or_default() += n;
    }
    let mut ranked: Vec<(i64, i64)> = totals.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let charted: Vec<i64> = ranked.iter().take(CHARTED_CODES).map(|(code, _)| *code).collect();
    let mut codes: Vec<String> = charted.iter().map(|c| code_text(*c)).collect();
    let other = ranked.len() > CHARTED_CODES;
    if other {
        codes.push("other".into());
    }
    let mut days: BTreeMap<NaiveDate, Vec<i64>> = BTreeMap::new();
    let last = (to - Duration::microseconds(1)).date_naive();
    let mut day = from.date_naive();
    while day <= last {
        days.insert(day, vec![0; codes.len()]);
        day += Duration::days(1);
    }
    for (day, code, n) in by_day {
        let Some(counts) = days.get_mut(day) else { continue };
        match charted.iter().position(|c| c == code) {
            Some(i) => counts[i] += n,
            None => *counts.last_mut().expect("an uncharted code means an other column") += n,
        }
    }
    let days = days
        .into_iter()
        .map(|(day, counts)| (day.to_string(), counts))
        .collect();
    (codes, days)
}
