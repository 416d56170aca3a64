//! Elevations by hour of day × weekday.

use super::*;

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
    /// Days of the window past raw retention, which the grid cannot include.
    coverage: Option<String>,
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
    let (counts, coverage) = queries::reports::quarter_hour_counts(&api.warehouse, &parsed.request).await?;
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
        coverage: coverage.describe(),
    }
    .render()
    .map_err(|e| QueryError::Render(e.to_string()))
}
