//! Reports as text: JSON, CSV and terminal tables, in the native profile (camelCase, RFC 3339,
//! real nulls) or the Graph profile (exactly the headers and spellings of Intune's exports).

use chrono::SecondsFormat;

use crate::QueryError;
use crate::reports::{Cell, Report};
use crate::request::{Profile, ReportName};

/// How a Graph export spells a column's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spelling {
    /// As is; null is empty.
    Plain,
    /// An enum member in PascalCase (`UnmanagedElevation`, `AzureAd`, `Parent`).
    Pascal,
    /// `2026-07-19 19:10:54.0000000` (no zone, seven fractional digits).
    Time,
    /// `True` / `False`.
    Boolean,
    /// As is; null is the `<Null>` sentinel.
    NullSentinel,
    /// `userType` as the export spells it: PascalCase, and `Unknown` for an account Graph
    /// cannot classify (our `undetermined`), as rows captured from a live tenant show.
    UserType,
}

use Spelling::{Boolean, NullSentinel, Pascal, Plain, Time, UserType};

/// A Graph export column: its header, the native column it comes from, how it is spelled.
type GraphColumn = (&'static str, &'static str, Spelling);

/// Headers and rows as text (`None`: null).
type TextRows = (Vec<String>, Vec<Vec<Option<String>>>);

/// The Graph export behind a report, and its columns.
fn graph_columns(name: ReportName) -> Option<(&'static str, &'static [GraphColumn])> {
    const EVENTS: &[GraphColumn] = &[
        ("Id", "id", Plain),
        ("DeviceId", "deviceId", Plain),
        ("DeviceName", "deviceName", Plain),
        ("EventDateTime", "eventDateTime", Time),
        ("ElevationType", "elevationType", Pascal),
        ("FilePath", "filePath", Plain),
        ("Upn", "upn", Plain),
        ("UserType", "userType", UserType),
        ("ProductName", "productName", Plain),
        ("CompanyName", "companyName", Plain),
        ("FileVersion", "fileVersion", Plain),
        ("Justification", "justification", Plain),
        ("Hash", "hash", Plain),
        ("InternalName", "internalName", Plain),
        ("FileDescription", "fileDescription", Plain),
        ("Result", "result", Plain),
        ("ProcessType", "processType", Pascal),
        ("RuleId", "ruleId", NullSentinel),
        ("ParentProcessName", "parentProcessName", Plain),
        ("PolicyId", "policyId", NullSentinel),
        ("PolicyName", "policyName", Plain),
        ("IsSystemInitiated", "systemInitiatedElevation", Boolean),
    ];
    Some(match name {
        ReportName::Elevations | ReportName::ManagedElevations => ("EpmElevationReportElevationEvent", EVENTS),
        ReportName::ByApplication => (
            "EpmAggregationReportByApplication",
            &[
                ("CompanyName", "companyName", Plain),
                ("ElevationType", "elevationType", Pascal),
                ("FileVersion", "fileVersion", Plain),
                ("Hash", "hash", Plain),
                ("InternalName", "internalName", Plain),
                ("ElevationCount", "count", Plain),
                ("FileName", "fileName", Plain),
                ("IsBackgroundProcess", "systemInitiated", Boolean),
            ],
        ),
        ReportName::ByPublisher => (
            "EpmAggregationReportByPublisher",
            &[
                ("CompanyName", "companyName", Plain),
                ("ElevationType", "elevationType", Pascal),
                ("ElevationCount", "count", Plain),
            ],
        ),
        ReportName::ByUser => (
            "EpmAggregationReportByUser",
            &[
                ("Upn", "upn", Plain),
                ("ManagedCount", "managed", Plain),
                ("UnmanagedCount", "unmanaged", Plain),
                ("TotalCount", "total", Plain),
            ],
        ),
        ReportName::Denied => (
            "EpmDeniedReport",
            &[
                ("UserName", "upn", Plain),
                ("DeviceId", "deviceId", Plain),
                ("DeviceName", "deviceName", Plain),
                ("FileName", "fileName", Plain),
                ("FileProductName", "productName", Plain),
                ("FileDescription", "fileDescription", Plain),
                ("FileInternalName", "internalName", Plain),
                ("FileVersion", "fileVersion", Plain),
                ("HashValue", "hash", Plain),
                ("Publisher", "companyName", Plain),
                ("ElevationType", "elevationType", Pascal),
                ("MonthElevationCount", "count", Plain),
            ],
        ),
        ReportName::Trend => (
            "EpmInsightsElevationTrend",
            &[
                ("DateCreated", "date", Time),
                ("ElevationType", "elevationType", Pascal),
                ("DailyElevationCount", "count", Plain),
            ],
        ),
        ReportName::ByDevice | ReportName::Overview | ReportName::Diagnostics | ReportName::Compliance => return None,
    })
}

/// The name of the Graph export a report mirrors with `profile=graph`, if any.
pub fn graph_export_name(name: ReportName) -> Option<&'static str> {
    graph_columns(name).map(|(export, _)| export)
}

/// Fails early when a report has no Graph export to mirror.
pub fn check_profile(name: ReportName, profile: Profile) -> Result<(), QueryError> {
    if profile == Profile::Graph && graph_columns(name).is_none() {
        let with: Vec<&str> = ReportName::ALL
            .into_iter()
            .filter(|r| graph_columns(*r).is_some())
            .map(ReportName::as_str)
            .collect();
        return Err(QueryError::BadParameter(format!(
            "{} has no Graph export; profile=graph works for {}",
            name.as_str(),
            with.join(", ")
        )));
    }
    Ok(())
}

fn native_text(cell: &Cell) -> Option<String> {
    match cell {
        Cell::Null => None,
        Cell::Text(t) => Some(t.clone()),
        Cell::Int(n) => Some(n.to_string()),
        Cell::Bool(b) => Some(b.to_string()),
        Cell::Time(at) => Some(at.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        Cell::Date(d) => Some(d.to_string()),
    }
}

fn graph_text(cell: &Cell, spelling: Spelling) -> String {
    match (cell, spelling) {
        (Cell::Null, NullSentinel) => "<Null>".into(),
        (Cell::Null, _) => String::new(),
        (Cell::Text(t), UserType) if t == warehouse::UserType::Undetermined.as_str() => "Unknown".into(),
        (Cell::Text(t), Pascal | UserType) => {
            let mut chars = t.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect())
                .unwrap_or_default()
        }
        (Cell::Bool(b), _) => if *b { "True" } else { "False" }.into(),
        (Cell::Time(at), _) => format!(
            "{}.{:07}",
            at.format("%Y-%m-%d %H:%M:%S"),
            at.timestamp_subsec_nanos() / 100
        ),
        (Cell::Date(d), Time) => format!("{d} 00:00:00.0000000"),
        (other, _) => native_text(other).unwrap_or_default(),
    }
}

/// Headers and rows as text, in the chosen profile.
fn text_rows(report: &Report, profile: Profile) -> Result<TextRows, QueryError> {
    check_profile(report.name, profile)?;
    match graph_columns(report.name).filter(|_| profile == Profile::Graph) {
        None => Ok((
            report.columns.clone(),
            report
                .rows
                .iter()
                .map(|row| row.iter().map(native_text).collect())
                .collect(),
        )),
        Some((_, columns)) => {
            let mut picks = Vec::new();
            for (header, native, spelling) in columns {
                let index = report.column(native).ok_or_else(|| {
                    QueryError::BadParameter(format!("{} has no column {native}", report.name.as_str()))
                })?;
                picks.push((header.to_string(), index, *spelling));
            }
            let rows = report
                .rows
                .iter()
                .map(|row| {
                    picks
                        .iter()
                        .map(|(_, i, spelling)| Some(graph_text(&row[*i], *spelling)))
                        .collect()
                })
                .collect();
            Ok((picks.into_iter().map(|(h, _, _)| h).collect(), rows))
        }
    }
}

/// `{ "report", "from", "to", "rows": [ {…} ] }`, plus `"coverage"` when the window holds days
/// whose raw events retention deleted ([`crate::Coverage::to_json`]). Native rows keep numbers
/// and nulls typed; Graph rows are the export's strings.
pub fn to_json(report: &Report, profile: Profile) -> Result<serde_json::Value, QueryError> {
    use serde_json::{Map, Value};
    let rows: Vec<Value> = if profile == Profile::Native {
        report
            .rows
            .iter()
            .map(|row| {
                let mut object = Map::new();
                for (name, cell) in report.columns.iter().zip(row) {
                    let value = match cell {
                        Cell::Null => Value::Null,
                        Cell::Int(n) => Value::from(*n),
                        Cell::Bool(b) => Value::from(*b),
                        other => Value::from(native_text(other)),
                    };
                    object.insert(name.clone(), value);
                }
                Value::Object(object)
            })
            .collect()
    } else {
        let (headers, rows) = text_rows(report, profile)?;
        rows.into_iter()
            .map(|row| {
                Value::Object(
                    headers
                        .iter()
                        .cloned()
                        .zip(row.into_iter().map(|v| Value::from(v.unwrap_or_default())))
                        .collect(),
                )
            })
            .collect()
    };
    let mut answer = serde_json::json!({
        "report": report.name.as_str(),
        "from": report.from.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        "to": report.to.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        "rows": rows,
    });
    // Only when the window holds days past raw retention: other answers keep their shape.
    if !report.coverage.is_complete() {
        answer["coverage"] = report.coverage.to_json();
    }
    Ok(answer)
}

/// CSV with a header line (nulls are empty fields in the native profile).
pub fn to_csv(report: &Report, profile: Profile) -> Result<String, QueryError> {
    let (headers, rows) = text_rows(report, profile)?;
    let mut writer = csv::Writer::from_writer(Vec::new());
    let failed = |e: csv::Error| QueryError::Render(e.to_string());
    writer.write_record(&headers).map_err(failed)?;
    for row in rows {
        writer
            .write_record(row.iter().map(|v| v.as_deref().unwrap_or("")))
            .map_err(failed)?;
    }
    let bytes = writer.into_inner().map_err(|e| QueryError::Render(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| QueryError::Render(e.to_string()))
}

/// Aligned columns for a terminal; long values are cut at 48 characters.
pub fn to_table(report: &Report, profile: Profile) -> Result<String, QueryError> {
    const WIDEST: usize = 48;
    let (headers, rows) = text_rows(report, profile)?;
    let cut = |v: &str| -> String {
        if v.chars().count() > WIDEST {
            let kept: String = v.chars().take(WIDEST - 1).collect();
            format!("{kept}…")
        } else {
            v.to_owned()
        }
    };
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|v| cut(v.as_deref().unwrap_or("-"))).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, v) in widths.iter_mut().zip(row) {
            *w = (*w).max(v.chars().count());
        }
    }
    let line = |values: &[String]| {
        let cells: Vec<String> = values.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect();
        cells.join("  ").trim_end().to_owned()
    };
    let mut out = format!(
        "{} from {} to {}: {} rows\n",
        report.name.as_str(),
        report.from.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        report.to.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        rows.len()
    );
    if let Some(note) = report.coverage.describe() {
        out.push_str(&format!("note: {note}\n"));
    }
    out.push_str(&line(&headers));
    out.push('\n');
    for row in &rows {
        out.push_str(&line(row));
        out.push('\n');
    }
    Ok(out)
}
