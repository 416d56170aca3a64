//! Fleet health: reporting levels, devices below the cap, silent devices, error codes.

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

/// An error code as Windows shows it, with its decimal value.
fn code_text(code: i64) -> String {
    format!("0x{:08X} ({code})", code as u32)
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
                let code = row[error_code].as_int().map(code_text).unwrap_or_default();
                sections[3]
                    .rows
                    .push(vec![cell(code, None), cell(text_of(&row[count]), None)]);
            }
            _ => {}
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
