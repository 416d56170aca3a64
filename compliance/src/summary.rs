//! `summary.html`: one printable page for people who read PDFs — the numbers, the findings,
//! the coverage gaps and retention, and how to check the pack. No scripts, no external files.

use std::fmt::Write;
use std::path::Path;

use crate::ComplianceError;
use crate::facts::Facts;
use crate::files::{self, instant_text};

/// The file's name.
pub(crate) const SUMMARY: &str = "summary.html";

/// Users with unmanaged elevations listed on the page (all are in privileged-use.csv).
const TOP_USERS: usize = 20;
/// Devices with gaps listed on the page (all are in coverage.csv).
const TOP_GAPS: usize = 20;

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Writes `summary.html`.
pub(crate) fn write(dir: &Path, facts: &Facts) -> Result<(), ComplianceError> {
    files::write_file(dir, SUMMARY, render(facts).as_bytes())
}

fn render(facts: &Facts) -> String {
    let totals = facts.totals();
    let mut h = String::new();
    let title = format!(
        "Elevation evidence — {} — {} to {}",
        facts.tenant,
        instant_text(facts.from),
        instant_text(facts.to)
    );
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>\
body{{font:11pt/1.4 system-ui,sans-serif;margin:1.5cm;color:#111}}h1{{font-size:16pt}}h2{{font-size:12pt;margin-top:1.2em}}\
table{{border-collapse:collapse;width:100%;margin:.4em 0}}td,th{{border:1px solid #999;padding:2px 6px;text-align:left;vertical-align:top}}\
.num{{text-align:right}}.bad{{color:#a00;font-weight:bold}}.ok{{color:#060}}small{{color:#444}}\
@media print{{body{{margin:1cm}}}}</style></head><body>\n<h1>{}</h1>\n",
        esc(&title),
        esc(&title)
    );
    let versions: Vec<String> = facts.versions.iter().map(|(t, v)| format!("{t} {v}")).collect();
    let _ = writeln!(
        h,
        "<p><small>Period from {} (inclusive) to {} (exclusive), UTC. Tenant reporting cap: {}. Read from the Delta \
         tables at versions {}. Made by {}.</small></p>",
        esc(&instant_text(facts.from)),
        esc(&instant_text(facts.to)),
        facts.cap.as_str(),
        esc(&versions.join(", ")),
        esc(crate::GENERATOR)
    );
    h.push_str("<h2>Numbers</h2>\n<table>\n");
    let rows = [
        ("Elevations", totals.elevations),
        ("Managed (every type but unmanaged)", totals.managed),
        ("Unmanaged (local administrator rights)", totals.unmanaged),
        ("Denied", totals.denied),
        ("Support-approved", totals.support_approved),
        ("Users who elevated", facts.users.len() as u64),
        (
            "Users with unmanaged elevations (CIS 5.4)",
            facts.users_unmanaged() as u64,
        ),
        ("Devices seen", facts.coverage.len() as u64),
        ("Devices below the tenant's cap", facts.below_cap() as u64),
        ("Devices silent at the end of the period", facts.silent() as u64),
    ];
    for (label, n) in rows {
        let _ = writeln!(h, "<tr><th>{}</th><td class=\"num\">{n}</td></tr>", esc(label));
    }
    h.push_str(
        "</table>\n<h2>Findings</h2>\n<table>\n<tr><th>Control</th><th>State</th><th>What the data shows</th></tr>\n",
    );
    for f in facts.findings() {
        let (class, state) = if f.satisfied {
            ("ok", "satisfied")
        } else {
            ("bad", "not satisfied")
        };
        let cis = f.cis.map(|c| format!(" (CIS {c})")).unwrap_or_default();
        let _ = writeln!(
            h,
            "<tr><td>{} {}{}</td><td class=\"{class}\">{state}</td><td>{}</td></tr>",
            esc(&f.control.to_uppercase()),
            esc(f.title),
            esc(&cis),
            esc(&f.text)
        );
    }
    h.push_str("</table>\n");
    coverage(&mut h, facts);
    users(&mut h, facts);
    h.push_str("<h2>Retention</h2>\n<ul>\n");
    for r in &facts.retention {
        let class = if r.flagged { "bad" } else { "ok" };
        let _ = writeln!(
            h,
            "<li class=\"{class}\">{} (kept {} days): {}</li>",
            r.table.name(),
            r.days,
            esc(&r.note)
        );
    }
    h.push_str(
        "</ul>\n<h2>Checking this pack</h2>\n<p>With only minisign and sha256sum, in the pack's folder: \
         <code>minisign -Vm SHA256SUMS -p key.pub &amp;&amp; sha256sum -c SHA256SUMS</code>, and \
         <code>minisign -Vm manifest.json -p key.pub</code>; the folder must hold exactly the files manifest.json \
         lists plus manifest.json and its three signature files. Or <code>elevation compliance verify DIR \
         --public-key key.pub</code>.</p>\n</body></html>\n",
    );
    h
}

fn coverage(h: &mut String, facts: &Facts) {
    h.push_str("<h2>Coverage and what this pack cannot evidence</h2>\n<table>\n<tr><th>Lowest reporting level in the period</th><th>Devices</th></tr>\n");
    for (level, n) in facts.devices_by_level() {
        let label = level.map(|l| l.as_str()).unwrap_or("no events in the period");
        let _ = writeln!(h, "<tr><td>{label}</td><td class=\"num\">{n}</td></tr>");
    }
    h.push_str(
        "</table>\n<p>A device at <code>managed</code> never reports unmanaged elevations; a device at \
                <code>diagnostic</code> reports no elevations; a silent device reports nothing. Their elevations \
                are not in this pack.</p>\n",
    );
    let gaps: Vec<_> = facts.coverage.iter().filter(|r| !r.gap.is_empty()).collect();
    if gaps.is_empty() {
        h.push_str(
            "<p class=\"ok\">No gaps: every device reported at <code>all</code> until the end of the period.</p>\n",
        );
        return;
    }
    let _ = writeln!(
        h,
        "<p>{} devices with gaps{} (all in coverage.csv):</p>\n<table>\n<tr><th>Device</th><th>Gap</th></tr>",
        gaps.len(),
        if gaps.len() > TOP_GAPS {
            format!(", the first {TOP_GAPS}")
        } else {
            String::new()
        }
    );
    for row in gaps.into_iter().take(TOP_GAPS) {
        let _ = writeln!(
            h,
            "<tr><td>{} ({})</td><td>{}</td></tr>",
            esc(&row.seen.name),
            esc(&row.device_id),
            esc(&row.gap)
        );
    }
    h.push_str("</table>\n");
}

fn users(h: &mut String, facts: &Facts) {
    let mut unmanaged: Vec<_> = facts.users.iter().filter(|(_, u)| u.unmanaged > 0).collect();
    if unmanaged.is_empty() {
        h.push_str("<h2>Local administrator rights in use</h2>\n<p class=\"ok\">No user elevated outside EPM.</p>\n");
        return;
    }
    unmanaged.sort_by(|a, b| b.1.unmanaged.cmp(&a.1.unmanaged).then(a.0.cmp(b.0)));
    let _ = writeln!(
        h,
        "<h2>Local administrator rights in use (CIS 5.4)</h2>\n<p>{} users elevated with local administrator \
         rights outside EPM{} (all in privileged-use.csv):</p>\n<table>\n<tr><th>User</th><th>Unmanaged</th><th>Managed</th></tr>",
        unmanaged.len(),
        if unmanaged.len() > TOP_USERS {
            format!("; the {TOP_USERS} with the most")
        } else {
            String::new()
        }
    );
    for (upn, u) in unmanaged.into_iter().take(TOP_USERS) {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(upn),
            u.unmanaged,
            u.managed
        );
    }
    h.push_str("</table>\n");
}
