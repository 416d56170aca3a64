//! Reports as text: JSON, CSV and terminal tables, in the native profile (camelCase, RFC 3339,
//! real nulls) or the Graph profile (exactly the headers and spellings of Intune's exports).

use std::borrow::Cow;

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

/// A cell as the native profile writes it (`None`: null); text is borrowed, not copied.
fn native_text(cell: &Cell) -> Option<Cow<'_, str>> {
    match cell {
        Cell::Null => None,
        Cell::Text(t) => Some(Cow::Borrowed(t.as_str())),
        Cell::Int(n) => Some(n.to_string().into()),
        Cell::Bool(b) => Some(b.to_string().into()),
        Cell::Time(at) => Some(at.to_rfc3339_opts(SecondsFormat::AutoSi, true).into()),
        Cell::Date(d) => Some(d.to_string().into()),
    }
}

fn graph_text(cell: &Cell, spelling: Spelling) -> Cow<'_, str> {
    match (cell, spelling) {
        (Cell::Null, NullSentinel) => "<Null>".into(),
        (Cell::Null, _) => "".into(),
        (Cell::Text(t), UserType) if t == warehouse::UserType::Undetermined.as_str() => "Unknown".into(),
        (Cell::Text(t), Pascal | UserType) => {
            let mut chars = t.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>().into())
                .unwrap_or_default()
        }
        (Cell::Bool(b), _) => if *b { "True" } else { "False" }.into(),
        (Cell::Time(at), _) => format!(
            "{}.{:07}",
            at.format("%Y-%m-%d %H:%M:%S"),
            at.timestamp_subsec_nanos() / 100
        )
        .into(),
        (Cell::Date(d), Time) => format!("{d} 00:00:00.0000000").into(),
        (other, _) => native_text(other).unwrap_or_default(),
    }
}

/// How a report's rows read as text in a profile: the headers, and which cell of a row each
/// header takes and how it is spelled. Rows are turned into text one at a time
/// ([`TextView::cells`]), never all at once: as a table of strings, the 199,912 rows of a
/// 30-day `denied` doubled what an export held.
#[derive(Debug)]
struct TextView {
    headers: Vec<String>,
    /// `None`: the native profile, every column as it is.
    graph: Option<Vec<(usize, Spelling)>>,
}

impl TextView {
    fn new(report: &Report, profile: Profile) -> Result<TextView, QueryError> {
        check_profile(report.name, profile)?;
        let Some((_, columns)) = graph_columns(report.name).filter(|_| profile == Profile::Graph) else {
            return Ok(TextView {
                headers: report.columns.clone(),
                graph: None,
            });
        };
        let mut headers = Vec::with_capacity(columns.len());
        let mut picks = Vec::with_capacity(columns.len());
        for (header, native, spelling) in columns {
            let index = report
                .column(native)
                .ok_or_else(|| QueryError::BadParameter(format!("{} has no column {native}", report.name.as_str())))?;
            headers.push(header.to_string());
            picks.push((index, *spelling));
        }
        Ok(TextView {
            headers,
            graph: Some(picks),
        })
    }

    /// One row's values under the headers (`None`: null in the native profile). Text cells
    /// are borrowed, not copied.
    fn cells<'r>(&'r self, row: &'r [Cell]) -> Box<dyn Iterator<Item = Option<Cow<'r, str>>> + 'r> {
        match &self.graph {
            None => Box::new(row.iter().map(native_text)),
            Some(picks) => Box::new(
                picks
                    .iter()
                    .map(|(i, spelling)| Some(row.get(*i).map_or(Cow::Borrowed(""), |c| graph_text(c, *spelling)))),
            ),
        }
    }
}

/// The JSON answer as a tree of values (the command line's pretty print, tests). The same
/// document [`JsonAnswer`] writes.
pub fn to_json(report: &Report, profile: Profile) -> Result<serde_json::Value, QueryError> {
    serde_json::to_value(JsonAnswer::new(report, profile)?).map_err(|e| QueryError::Render(e.to_string()))
}

/// A report's JSON answer, written straight from its rows: `{ "report", "from", "to", "rows":
/// [ {…} ] }`, plus `"coverage"` when the window holds days whose raw events retention deleted
/// ([`crate::Coverage::to_json`]); keys in name order, as a `serde_json` map orders them.
/// Native rows keep numbers and nulls typed; Graph rows are the export's strings. Written without a
/// `serde_json::Value` per cell: as a tree of values, the 199,912 rows of a 30-day `denied`
/// took the server from ~450 MiB to 1.4 GiB.
#[derive(Debug)]
pub struct JsonAnswer<'a> {
    report: &'a Report,
    rows: JsonRows<'a>,
}

#[derive(Debug)]
enum JsonRows<'a> {
    /// The report's own columns and cells (native profile).
    Native(&'a Report),
    /// The report's rows under the export's headers and spellings (Graph profile).
    Text(&'a Report, TextView),
}

impl<'a> JsonAnswer<'a> {
    /// The answer of `report` in `profile`; fails on a profile the report has no columns for.
    pub fn new(report: &'a Report, profile: Profile) -> Result<JsonAnswer<'a>, QueryError> {
        let rows = if profile == Profile::Native {
            check_profile(report.name, profile)?;
            JsonRows::Native(report)
        } else {
            JsonRows::Text(report, TextView::new(report, profile)?)
        };
        Ok(JsonAnswer { report, rows })
    }
}

impl serde::Serialize for JsonAnswer<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let report = self.report;
        let mut answer = serializer.serialize_map(None)?;
        if !report.coverage.is_complete() {
            answer.serialize_entry("coverage", &report.coverage.to_json())?;
        }
        answer.serialize_entry("from", &report.from.to_rfc3339_opts(SecondsFormat::AutoSi, true))?;
        answer.serialize_entry("report", report.name.as_str())?;
        answer.serialize_entry("rows", &self.rows)?;
        answer.serialize_entry("to", &report.to.to_rfc3339_opts(SecondsFormat::AutoSi, true))?;
        answer.end()
    }
}

impl serde::Serialize for JsonRows<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        /// Column indices by name: each row's keys in name order (a name given twice, its
        /// last column, as a map keeps it).
        fn by_name(names: &[String]) -> Vec<usize> {
            let mut order: Vec<usize> = (0..names.len()).collect();
            order.sort_by(|a, b| names[*a].cmp(&names[*b]).then(b.cmp(a)));
            order.dedup_by(|later, earlier| names[*later] == names[*earlier]);
            order
        }
        match self {
            JsonRows::Native(report) => {
                let order = by_name(&report.columns);
                let mut rows = serializer.serialize_seq(Some(report.rows.len()))?;
                for row in &report.rows {
                    rows.serialize_element(&NativeRow {
                        columns: &report.columns,
                        order: &order,
                        row,
                    })?;
                }
                rows.end()
            }
            JsonRows::Text(report, view) => {
                let order = by_name(&view.headers);
                let mut rows = serializer.serialize_seq(Some(report.rows.len()))?;
                for row in &report.rows {
                    let values: Vec<Option<Cow<'_, str>>> = view.cells(row).collect();
                    rows.serialize_element(&TextRow {
                        headers: &view.headers,
                        order: &order,
                        row: &values,
                    })?;
                }
                rows.end()
            }
        }
    }
}

struct NativeRow<'a> {
    columns: &'a [String],
    order: &'a [usize],
    row: &'a [Cell],
}

impl serde::Serialize for NativeRow<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut object = serializer.serialize_map(Some(self.order.len()))?;
        // A row shorter than the columns gives the keys it has, as zipping them did.
        for (&i, cell) in self.order.iter().filter_map(|i| Some((i, self.row.get(*i)?))) {
            let name = self.columns[i].as_str();
            match cell {
                Cell::Null => object.serialize_entry(name, &())?,
                Cell::Int(n) => object.serialize_entry(name, n)?,
                Cell::Bool(b) => object.serialize_entry(name, b)?,
                Cell::Text(t) => object.serialize_entry(name, t.as_str())?,
                other => object.serialize_entry(name, &native_text(other))?,
            }
        }
        object.end()
    }
}

struct TextRow<'a> {
    headers: &'a [String],
    order: &'a [usize],
    row: &'a [Option<Cow<'a, str>>],
}

impl serde::Serialize for TextRow<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut object = serializer.serialize_map(Some(self.order.len()))?;
        for (&i, value) in self.order.iter().filter_map(|i| Some((i, self.row.get(*i)?))) {
            object.serialize_entry(self.headers[i].as_str(), value.as_deref().unwrap_or_default())?;
        }
        object.end()
    }
}

/// CSV with a header line (nulls are empty fields in the native profile).
pub fn to_csv(report: &Report, profile: Profile) -> Result<String, QueryError> {
    let mut bytes = Vec::new();
    write_csv(report, profile, &mut bytes).map_err(|e| QueryError::Render(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| QueryError::Render(e.to_string()))
}

/// Writes [`to_csv`]'s text into `out` row by row, for answers sent as they are written. The
/// writer's own errors come back as they are (a client gone is `BrokenPipe`); a profile the
/// report has no columns for is `InvalidInput` ([`check_profile`] says it before any byte).
pub fn write_csv(report: &Report, profile: Profile, out: impl std::io::Write) -> std::io::Result<()> {
    let view = TextView::new(report, profile)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    // csv's own conversion to an I/O error would hide the writer's error kind (a client gone).
    fn unwrapped(e: csv::Error) -> std::io::Error {
        match e.into_kind() {
            csv::ErrorKind::Io(e) => e,
            other => std::io::Error::other(format!("{other:?}")),
        }
    }
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(&view.headers).map_err(unwrapped)?;
    let mut fields: Vec<Option<Cow<'_, str>>> = Vec::with_capacity(view.headers.len());
    for row in &report.rows {
        fields.clear();
        fields.extend(view.cells(row));
        writer
            .write_record(fields.iter().map(|v| v.as_deref().unwrap_or("")))
            .map_err(unwrapped)?;
    }
    writer.flush()
}

/// Aligned columns for a terminal; long values are cut at 48 characters.
pub fn to_table(report: &Report, profile: Profile) -> Result<String, QueryError> {
    const WIDEST: usize = 48;
    let view = TextView::new(report, profile)?;
    let headers = &view.headers;
    let cut = |v: &str| -> String {
        if v.chars().count() > WIDEST {
            let kept: String = v.chars().take(WIDEST - 1).collect();
            format!("{kept}…")
        } else {
            v.to_owned()
        }
    };
    let rows: Vec<Vec<String>> = report
        .rows
        .iter()
        .map(|row| view.cells(row).map(|v| cut(v.as_deref().unwrap_or("-"))).collect())
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
    out.push_str(&line(headers));
    out.push('\n');
    for row in &rows {
        out.push_str(&line(row));
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use chrono::{NaiveDate, TimeZone, Utc};

    use super::*;
    use crate::days::Coverage;

    /// Columns out of name order, a name given twice, every kind of cell, a closed day.
    fn report() -> Report {
        let at = Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap() + chrono::Duration::milliseconds(250);
        let day = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        Report {
            name: ReportName::Elevations,
            from: Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap(),
            to: Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(),
            columns: [
                "upn",
                "eventDateTime",
                "result",
                "count",
                "eventDate",
                "systemInitiated",
                "count",
            ]
            .map(String::from)
            .to_vec(),
            rows: vec![
                vec![
                    Cell::Text("ada@contoso.com \"admin\"".into()),
                    Cell::Time(at),
                    Cell::Int(-1),
                    Cell::Int(7),
                    Cell::Date(day),
                    Cell::Bool(true),
                    Cell::Int(8),
                ],
                vec![Cell::Null; 7],
            ],
            coverage: Coverage::of_closed(BTreeSet::from([day])),
        }
    }

    #[test]
    fn the_written_answer_is_the_document_of_values_byte_for_byte() {
        let report = report();
        let expected = serde_json::json!({
            "report": "elevations",
            "from": "2026-11-01T00:00:00Z",
            "to": "2026-12-01T00:00:00Z",
            "coverage": report.coverage.to_json(),
            "rows": [
                {
                    "upn": "ada@contoso.com \"admin\"",
                    "eventDateTime": "2026-11-20T10:00:00.250Z",
                    "result": -1,
                    "count": 8,
                    "eventDate": "2026-11-20",
                    "systemInitiated": true,
                },
                {
                    "upn": null, "eventDateTime": null, "result": null, "count": null,
                    "eventDate": null, "systemInitiated": null,
                },
            ],
        });
        let written = serde_json::to_string(&JsonAnswer::new(&report, Profile::Native).unwrap()).unwrap();
        assert_eq!(written, serde_json::to_string(&expected).unwrap());
        assert_eq!(to_json(&report, Profile::Native).unwrap(), expected);
    }

    #[test]
    fn a_complete_window_has_no_coverage_key() {
        let report = Report {
            coverage: Coverage::default(),
            ..report()
        };
        let written = to_json(&report, Profile::Native).unwrap();
        assert!(written.get("coverage").is_none(), "{written}");
        assert_eq!(written["rows"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn csv_rows_are_the_cells_as_text_with_nulls_empty() {
        let csv = to_csv(&report(), Profile::Native).unwrap();
        assert_eq!(
            csv,
            "upn,eventDateTime,result,count,eventDate,systemInitiated,count\n\
             \"ada@contoso.com \"\"admin\"\"\",2026-11-20T10:00:00.250Z,-1,7,2026-11-20,true,8\n\
             ,,,,,,\n"
        );
    }

    #[test]
    fn graph_rows_are_spelled_as_the_export_in_csv_and_json_alike() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        let trend = Report {
            name: ReportName::Trend,
            columns: ["count", "elevationType", "date"].map(String::from).to_vec(),
            rows: vec![
                vec![Cell::Int(3), Cell::Text("unmanagedElevation".into()), Cell::Date(day)],
                vec![Cell::Null, Cell::Null, Cell::Date(day)],
            ],
            coverage: Coverage::default(),
            ..report()
        };
        assert_eq!(
            to_csv(&trend, Profile::Graph).unwrap(),
            "DateCreated,ElevationType,DailyElevationCount\n\
             2026-11-20 00:00:00.0000000,UnmanagedElevation,3\n\
             2026-11-20 00:00:00.0000000,,\n"
        );
        assert_eq!(
            to_json(&trend, Profile::Graph).unwrap()["rows"],
            serde_json::json!([
                {"DailyElevationCount": "3", "DateCreated": "2026-11-20 00:00:00.0000000", "ElevationType": "UnmanagedElevation"},
                {"DailyElevationCount": "", "DateCreated": "2026-11-20 00:00:00.0000000", "ElevationType": ""},
            ])
        );
    }
}
