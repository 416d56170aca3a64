//! The Overview: readiness tiles, top files, the daily trend and the managed share.

use super::*;

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
    /// Days of the window past raw retention (the tiles, lists and trend read their rollups).
    coverage: Option<String>,
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
        coverage: report.coverage.describe().or_else(|| trend.coverage.describe()),
    }
    .render()
    .map_err(|e| QueryError::Render(e.to_string()))
}
