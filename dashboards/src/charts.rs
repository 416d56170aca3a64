//! Charts as SVG drawn on the server: they need no script, print, and appear in the static
//! snapshot. Each page shows the same numbers in a table beside its chart (accessibility).

use std::fmt::Write as _;

/// Colours of the elevation types, the same as the CSS legend's.
fn colour(kind: &str) -> &'static str {
    match kind {
        "unmanagedElevation" => "#c0392b",
        "zeroTouchElevation" => "#2e86c1",
        "userConfirmedElevation" => "#28b463",
        "supportApprovedElevation" => "#d68910",
        "elevateAsCurrentUser" => "#8e44ad",
        "deniedElevation" => "#5d6d7e",
        _ => "#aab7b8",
    }
}

/// Colours of series that are not elevation types (error codes), by position.
const PALETTE: [&str; 7] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#aab7b8",
];

/// The colour of the `index`-th series named `kind`.
fn series_colour(kind: &str, index: usize) -> &'static str {
    match colour(kind) {
        "#aab7b8" if kind != "undetermined" => PALETTE[index.min(PALETTE.len() - 1)],
        known => known,
    }
}

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 28.0;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A stacked bar per day: `series` holds (type, count per day), `days` the labels. Each bar
/// segment carries a `<title>`, which browsers show on hover.
pub fn stacked_bars(title: &str, days: &[String], series: &[(String, Vec<i64>)]) -> String {
    let totals: Vec<i64> = (0..days.len())
        .map(|d| series.iter().map(|(_, counts)| counts[d]).sum())
        .collect();
    let top = totals.iter().copied().max().unwrap_or(0).max(1) as f64;
    let plot_h = HEIGHT - BOTTOM - 8.0;
    let slot = (WIDTH - LEFT) / days.len().max(1) as f64;
    let bar = (slot * 0.8).max(1.0);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" role="img" aria-label="{}" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}"><title>{}</title>"#,
        escape(title),
        escape(title)
    );
    axis(&mut svg, top, plot_h);
    for (d, day) in days.iter().enumerate() {
        let x = LEFT + d as f64 * slot + (slot - bar) / 2.0;
        let mut y = HEIGHT - BOTTOM;
        for (index, (kind, counts)) in series.iter().enumerate() {
            let n = counts[d];
            if n == 0 {
                continue;
            }
            let h = n as f64 / top * plot_h;
            y -= h;
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{bar:.1}" height="{h:.1}" fill="{}"><title>{} {}: {n}</title></rect>"#,
                series_colour(kind, index),
                escape(day),
                escape(kind)
            );
        }
        label_day(&mut svg, d, days.len(), x + bar / 2.0, day);
    }
    svg.push_str("</svg>");
    svg
}

/// A line of shares (0 to 1) per day; days without elevations leave a gap.
pub fn share_line(title: &str, days: &[String], shares: &[Option<f64>]) -> String {
    let plot_h = HEIGHT - BOTTOM - 8.0;
    let slot = (WIDTH - LEFT) / days.len().max(1) as f64;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" role="img" aria-label="{}" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}"><title>{}</title>"#,
        escape(title),
        escape(title)
    );
    for (fraction, label) in [(0.0, "0 %"), (0.5, "50 %"), (1.0, "100 %")] {
        let y = HEIGHT - BOTTOM - fraction * plot_h;
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{WIDTH}" y1="{y:.1}" y2="{y:.1}" stroke="#d0d6de"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end" fill="#4a5361">{label}</text>"##,
            LEFT - 4.0,
            y + 4.0
        );
    }
    let mut path = String::new();
    for (d, share) in shares.iter().enumerate() {
        let x = LEFT + d as f64 * slot + slot / 2.0;
        if let Some(share) = share {
            let y = HEIGHT - BOTTOM - share * plot_h;
            let _ = write!(
                path,
                "{}{x:.1},{y:.1} ",
                if path.is_empty() || shares[d.saturating_sub(1)].is_none() {
                    "M"
                } else {
                    "L"
                }
            );
            let _ = write!(
                svg,
                r##"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="#0b5cad"><title>{}: {:.1} % managed</title></circle>"##,
                escape(&days[d]),
                share * 100.0
            );
        }
        label_day(&mut svg, d, days.len(), x, &days[d]);
    }
    let _ = write!(
        svg,
        r##"<path d="{}" fill="none" stroke="#0b5cad" stroke-width="2"/></svg>"##,
        path.trim()
    );
    svg
}

fn axis(svg: &mut String, top: f64, plot_h: f64) {
    for fraction in [0.0, 0.5, 1.0] {
        let y = HEIGHT - BOTTOM - fraction * plot_h;
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{WIDTH}" y1="{y:.1}" y2="{y:.1}" stroke="#d0d6de"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end" fill="#4a5361">{}</text>"##,
            LEFT - 4.0,
            y + 4.0,
            (top * fraction).round() as i64
        );
    }
}

/// Labels every day when there are few, otherwise about ten of them.
fn label_day(svg: &mut String, index: usize, count: usize, x: f64, day: &str) {
    let every = count.div_ceil(10).max(1);
    if index.is_multiple_of(every) {
        let short = day.get(5..).unwrap_or(day);
        let _ = write!(
            svg,
            r##"<text x="{x:.1}" y="{}" font-size="11" text-anchor="middle" fill="#4a5361">{}</text>"##,
            HEIGHT - 10.0,
            escape(short)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_as_tall_as_their_share_of_the_highest_day() {
        let days = vec!["2026-11-01".to_owned(), "2026-11-02".to_owned()];
        let svg = stacked_bars(
            "t",
            &days,
            &[
                ("unmanagedElevation".into(), vec![10, 0]),
                ("userConfirmedElevation".into(), vec![10, 5]),
            ],
        );
        assert_eq!(svg.matches("<rect").count(), 3, "no segment for a zero");
        let plot_h = HEIGHT - BOTTOM - 8.0;
        assert!(svg.contains(&format!(r#"height="{:.1}""#, plot_h / 2.0)), "{svg}");
        assert!(svg.contains("<title>2026-11-02 userConfirmedElevation: 5</title>"));
    }

    #[test]
    fn the_share_line_breaks_on_days_without_elevations() {
        let days: Vec<String> = (1..=3).map(|d| format!("2026-11-0{d}")).collect();
        let svg = share_line("s", &days, &[Some(1.0), None, Some(0.5)]);
        assert_eq!(
            svg.matches(" M").count() + usize::from(svg.contains("d=\"M")),
            2,
            "{svg}"
        );
        assert!(svg.contains("100.0 % managed") && svg.contains("50.0 % managed"));
    }
}
