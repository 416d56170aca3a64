//! What a report is asked for: its name, window, filters and page, parsed from the same
//! `key=value` parameters whether they come from the admin API's query string or the command
//! line, and checked before any query runs.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use warehouse::{ElevationType, ReportingLevel};

use crate::QueryError;

/// The reports, by their contract names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportName {
    /// Every elevation, newest first.
    Elevations,
    /// Managed elevations only, newest first.
    ManagedElevations,
    /// Per application (hash) and elevation type.
    ByApplication,
    /// Per publisher and elevation type.
    ByPublisher,
    /// Managed, unmanaged and total per user.
    ByUser,
    /// Managed, unmanaged and total per device.
    ByDevice,
    /// The readiness tiles and the "frequently …" files.
    Overview,
    /// Elevations per day and type.
    Trend,
    /// Denied and failed elevations.
    Denied,
    /// Agent health.
    Diagnostics,
    /// Per month: shares of users with unmanaged elevations, of managed elevations and of
    /// devices at `all` (progress toward removing local admin rights).
    Compliance,
}

impl ReportName {
    /// Every report.
    pub const ALL: [ReportName; 11] = [
        ReportName::Elevations,
        ReportName::ManagedElevations,
        ReportName::ByApplication,
        ReportName::ByPublisher,
        ReportName::ByUser,
        ReportName::ByDevice,
        ReportName::Overview,
        ReportName::Trend,
        ReportName::Denied,
        ReportName::Diagnostics,
        ReportName::Compliance,
    ];

    /// The contract name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportName::Elevations => "elevations",
            ReportName::ManagedElevations => "managed-elevations",
            ReportName::ByApplication => "by-application",
            ReportName::ByPublisher => "by-publisher",
            ReportName::ByUser => "by-user",
            ReportName::ByDevice => "by-device",
            ReportName::Overview => "overview",
            ReportName::Trend => "trend",
            ReportName::Denied => "denied",
            ReportName::Diagnostics => "diagnostics",
            ReportName::Compliance => "compliance",
        }
    }

    /// Parses a contract name; the error lists them all.
    pub fn parse(text: &str) -> Result<ReportName, QueryError> {
        ReportName::ALL.into_iter().find(|r| r.as_str() == text).ok_or_else(|| {
            let names: Vec<&str> = ReportName::ALL.iter().map(|r| r.as_str()).collect();
            QueryError::UnknownReport(format!("no report {text:?}; the reports are {}", names.join(", ")))
        })
    }

    /// Whether the report lists single events (paginated, 1,000 rows per page by default).
    pub fn is_event_list(self) -> bool {
        matches!(self, ReportName::Elevations | ReportName::ManagedElevations)
    }
}

/// Equality filters on the elevations; each one given narrows the rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// `elevationType`.
    pub elevation_type: Option<ElevationType>,
    /// `upn`.
    pub upn: Option<String>,
    /// `deviceName`.
    pub device_name: Option<String>,
    /// `companyName` (the publisher).
    pub company_name: Option<String>,
    /// `hash` (compared upper-case, as stored).
    pub hash: Option<String>,
    /// `fileName`.
    pub file_name: Option<String>,
    /// `id`: one elevation (the dashboards' detail view).
    pub id: Option<String>,
}

impl Filters {
    /// The text filters as (column, value) pairs.
    pub(crate) fn text(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(t) = self.elevation_type {
            out.push(("elevationType", t.as_str().to_owned()));
        }
        for (column, value) in [
            ("upn", &self.upn),
            ("deviceName", &self.device_name),
            ("companyName", &self.company_name),
            ("hash", &self.hash),
            ("fileName", &self.file_name),
            ("id", &self.id),
        ] {
            if let Some(v) = value {
                out.push((column, v.clone()));
            }
        }
        out
    }
}

/// Every parameter a report takes, in the order the documentation lists them.
pub const PARAMETERS: [&str; 18] = [
    "from",
    "to",
    "elevationType",
    "upn",
    "deviceName",
    "companyName",
    "hash",
    "fileName",
    "id",
    "readiness",
    "kind",
    "limit",
    "offset",
    "sort",
    "order",
    "silentDays",
    "format",
    "profile",
];

/// Default page of the event lists.
pub const DEFAULT_EVENT_LIMIT: usize = 1_000;
/// Largest page anyone may ask for.
pub const MAX_LIMIT: usize = 1_000_000;
/// How many files the Overview's "frequently …" lists show unless `limit` says otherwise.
pub const DEFAULT_TOP_FILES: usize = 10;
/// Days without any event after which `diagnostics` lists a device as silent.
pub const DEFAULT_SILENT_DAYS: u32 = 3;

/// One report, fully specified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRequest {
    /// Which report.
    pub name: ReportName,
    /// Whose rows: always the tenant of the key (API) or `--tenant` (CLI).
    pub tenant: String,
    /// Start of the window, inclusive.
    pub from: DateTime<Utc>,
    /// End of the window, exclusive.
    pub to: DateTime<Utc>,
    /// Filters.
    pub filters: Filters,
    /// Rows per page (`None`: all rows).
    pub limit: Option<usize>,
    /// Rows skipped before the page.
    pub offset: usize,
    /// `diagnostics`: a device is silent when its last event is older than `to` minus this.
    pub silent_days: u32,
    /// `diagnostics`: the tenant's reporting cap, to list devices that report below it.
    pub reporting_cap: ReportingLevel,
    /// `sort` and `order`: the column the rows are ordered by before paging, and whether
    /// descending (`None`: each report's own order).
    pub sort: Option<(String, bool)>,
    /// `by-user` only: keep the users of one Overview readiness tile.
    pub readiness: Option<Readiness>,
    /// `diagnostics` only: keep the rows of one kind (the fleet page's "all silent devices").
    pub kind: Option<DiagnosticKind>,
}

/// The kinds of `diagnostics` rows, as its `kind` column and the `kind` filter name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiagnosticKind {
    /// Devices per effective reporting level.
    ReportingDevices,
    /// Diagnostic events per non-zero error code.
    ErrorCode,
    /// Devices without an event in the last `silentDays` before `to`.
    SilentDevice,
    /// Devices whose effective level is below the tenant's cap.
    BelowCap,
}

impl DiagnosticKind {
    /// Every kind, in the order the report lists them.
    pub const ALL: [DiagnosticKind; 4] = [
        DiagnosticKind::ReportingDevices,
        DiagnosticKind::ErrorCode,
        DiagnosticKind::SilentDevice,
        DiagnosticKind::BelowCap,
    ];

    /// The kind as the `kind` column spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            DiagnosticKind::ReportingDevices => "reportingDevices",
            DiagnosticKind::ErrorCode => "errorCode",
            DiagnosticKind::SilentDevice => "silentDevice",
            DiagnosticKind::BelowCap => "belowCap",
        }
    }

    /// Parses one of the spellings of [`DiagnosticKind::as_str`].
    pub fn parse(text: &str) -> Result<DiagnosticKind, QueryError> {
        one_of("kind", text, &DiagnosticKind::ALL, DiagnosticKind::as_str)
    }
}

/// The Overview's readiness tiles, as a `by-user` filter (`readiness=onlyUnmanaged|both|onlyManaged`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Users whose every elevation in the window was unmanaged.
    OnlyUnmanaged,
    /// Users with unmanaged and managed elevations.
    Both,
    /// Users whose every elevation was managed.
    OnlyManaged,
}

impl Readiness {
    /// Every tile, in the Overview's order (errors, the OpenAPI document, the filter's choices).
    pub const ALL: [Readiness; 3] = [Readiness::OnlyUnmanaged, Readiness::Both, Readiness::OnlyManaged];

    /// The tile as the `readiness` parameter names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Readiness::OnlyUnmanaged => "onlyUnmanaged",
            Readiness::Both => "both",
            Readiness::OnlyManaged => "onlyManaged",
        }
    }

    /// Parses `onlyUnmanaged`, `both` or `onlyManaged`.
    pub fn parse(text: &str) -> Result<Readiness, QueryError> {
        one_of("readiness", text, &Readiness::ALL, Readiness::as_str)
    }

    /// Whether a user with these counts belongs to the tile.
    pub fn holds(self, managed: i64, unmanaged: i64) -> bool {
        match self {
            Readiness::OnlyUnmanaged => managed == 0 && unmanaged > 0,
            Readiness::Both => managed > 0 && unmanaged > 0,
            Readiness::OnlyManaged => managed > 0 && unmanaged == 0,
        }
    }
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns for a terminal.
    Table,
    /// `{ "report", "from", "to", "rows": [...] }`.
    Json,
    /// RFC 4180 CSV with a header line.
    Csv,
}

/// Column names and value spellings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// camelCase columns, RFC 3339 times, real nulls.
    Native,
    /// Exactly the headers and spellings of Intune's Graph export of the same report.
    Graph,
}

impl Format {
    /// Parses `table`, `json` or `csv`.
    pub fn parse(text: &str) -> Result<Format, QueryError> {
        match text {
            "table" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            other => Err(bad(format!("format {other:?} is not one of table, json, csv"))),
        }
    }
}

impl Profile {
    /// Every profile (errors, the OpenAPI document).
    pub const ALL: [Profile; 2] = [Profile::Native, Profile::Graph];

    /// The profile as the `profile` parameter names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Native => "native",
            Profile::Graph => "graph",
        }
    }

    /// Parses `native` or `graph`.
    pub fn parse(text: &str) -> Result<Profile, QueryError> {
        one_of("profile", text, &Profile::ALL, Profile::as_str)
    }
}

/// The word of `words` that `name` spells as `text`, or a `400` naming `key` and every word.
fn one_of<T: Copy>(key: &str, text: &str, words: &[T], name: fn(T) -> &'static str) -> Result<T, QueryError> {
    words.iter().copied().find(|w| name(*w) == text).ok_or_else(|| {
        let names: Vec<&str> = words.iter().map(|w| name(*w)).collect();
        bad(format!("{key} {text:?} is not one of {}", names.join(", ")))
    })
}

fn bad(message: String) -> QueryError {
    QueryError::BadParameter(message)
}

/// Parses `from`/`to`: RFC 3339, or `YYYY-MM-DD` meaning midnight UTC at the start of that day.
pub fn parse_instant(key: &str, text: &str) -> Result<DateTime<Utc>, QueryError> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.to_utc());
    }
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    Err(bad(format!(
        "{key} {text:?} is neither RFC 3339 (2026-11-20T14:03:11Z) nor a date (2026-11-20)"
    )))
}

/// The most characters a text parameter may have.
pub const MAX_TEXT_CHARS: usize = 2048;

/// A text parameter: 1 to [`MAX_TEXT_CHARS`] characters (not bytes: the OpenAPI document's
/// `maxLength` counts characters too), none of them a control character.
pub fn check_text(key: &str, value: &str) -> Result<(), QueryError> {
    if value.is_empty() || value.chars().count() > MAX_TEXT_CHARS || value.chars().any(char::is_control) {
        return Err(bad(format!("{key} must be 1 to {MAX_TEXT_CHARS} printable characters")));
    }
    Ok(())
}

fn parse_number<T>(key: &str, text: &str, max: T) -> Result<T, QueryError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    match text.parse::<T>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(bad(format!("{key} {text:?} must be a whole number from 0 to {max}"))),
    }
}

/// The request parameters every caller understands, with what `format` and `profile` asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The report to run.
    pub request: ReportRequest,
    /// `format` (default: the caller's).
    pub format: Option<Format>,
    /// `profile` (default native).
    pub profile: Profile,
}

impl ReportRequest {
    /// The requested page of rows already in report order: `offset` skipped, at most `limit`
    /// kept. For reports ranked in Rust rather than by DataFusion's `limit`.
    pub fn page<T>(&self, rows: impl IntoIterator<Item = T>) -> impl Iterator<Item = T> {
        rows.into_iter()
            .skip(self.offset)
            .take(self.limit.unwrap_or(usize::MAX))
    }

    /// Builds a request from `key=value` parameters (query string or command line). Unknown
    /// keys, bad values and empty filters are refused with the reason. The window defaults
    /// to the 48 hours before `now` for `overview` (Intune's snapshot) and the 30 days before
    /// `now` otherwise (Intune's retention).
    pub fn parse(
        name: &str,
        tenant: &str,
        params: &[(String, String)],
        now: DateTime<Utc>,
        reporting_cap: ReportingLevel,
    ) -> Result<Parsed, QueryError> {
        let name = ReportName::parse(name)?;
        let mut from = None;
        let mut to = None;
        let mut filters = Filters::default();
        let mut limit = None;
        let mut offset = 0;
        let mut silent_days = DEFAULT_SILENT_DAYS;
        let mut format = None;
        let mut profile = Profile::Native;
        let mut sort = None;
        let mut descending = None;
        let mut readiness = None;
        let mut kind = None;
        let mut seen = std::collections::BTreeSet::new();
        for (key, value) in params {
            if !seen.insert(key.as_str()) {
                return Err(bad(format!("{key} is given twice")));
            }
            let text = |v: &String| check_text(key, v).map(|()| Some(v.clone()));
            match key.as_str() {
                "from" => from = Some(parse_instant(key, value)?),
                "to" => to = Some(parse_instant(key, value)?),
                "elevationType" => {
                    filters.elevation_type = Some(ElevationType::parse(value).map_err(|e| bad(e.to_string()))?);
                }
                "upn" => filters.upn = text(value)?,
                "deviceName" => filters.device_name = text(value)?,
                "companyName" => filters.company_name = text(value)?,
                "hash" => filters.hash = text(value)?.map(|h| h.to_ascii_uppercase()),
                "fileName" => filters.file_name = text(value)?,
                "id" => filters.id = text(value)?,
                "sort" => sort = text(value)?,
                "readiness" => readiness = Some(Readiness::parse(value)?),
                "kind" => kind = Some(DiagnosticKind::parse(value)?),
                "order" => {
                    descending = Some(match value.as_str() {
                        "asc" => false,
                        "desc" => true,
                        other => return Err(bad(format!("order {other:?} is not one of asc, desc"))),
                    })
                }
                "limit" => limit = Some(parse_number(key, value, MAX_LIMIT)?),
                "offset" => offset = parse_number(key, value, usize::MAX)?,
                "silentDays" => silent_days = parse_number(key, value, 3650u32)?,
                "format" => format = Some(Format::parse(value)?),
                "profile" => profile = Profile::parse(value)?,
                other => {
                    return Err(bad(format!(
                        "unknown parameter {other:?}; reports take {}",
                        PARAMETERS.join(", ")
                    )));
                }
            }
        }
        let to = to.unwrap_or(now);
        let default_span = match name {
            ReportName::Overview => Duration::hours(48),
            ReportName::Compliance => Duration::days(365),
            _ => Duration::days(30),
        };
        let from = from.unwrap_or(to - default_span);
        if from >= to {
            return Err(bad(format!("from ({from}) must be before to ({to})")));
        }
        if readiness.is_some() && name != ReportName::ByUser {
            return Err(bad("readiness filters by-user only".into()));
        }
        if kind.is_some() && name != ReportName::Diagnostics {
            return Err(bad("kind filters diagnostics only".into()));
        }
        if descending.is_some() && sort.is_none() {
            return Err(bad("order needs sort: the column to order by".into()));
        }
        // The messages name the parameters given, so a caller sees which one to drop.
        let given = |keep: fn(&str) -> bool| -> Vec<&'static str> {
            filters
                .text()
                .into_iter()
                .map(|(column, _)| column)
                .filter(|c| keep(c))
                .collect()
        };
        if name == ReportName::Diagnostics {
            let personal = given(|column| column != "deviceName");
            if !personal.is_empty() {
                return Err(bad(format!(
                    "diagnostics hold no user, file, hash or elevation type, so {} cannot filter them; filter them \
                     by deviceName only",
                    personal.join(", ")
                )));
            }
        }
        if name == ReportName::Compliance {
            let filtered = given(|_| true);
            if !filtered.is_empty() {
                return Err(bad(format!(
                    "compliance covers the whole tenant month by month; it takes no filters ({} given)",
                    filtered.join(", ")
                )));
            }
        }
        let limit = match limit {
            Some(n) => Some(n),
            None if name.is_event_list() => Some(DEFAULT_EVENT_LIMIT),
            None if name == ReportName::Overview => Some(DEFAULT_TOP_FILES),
            None => None,
        };
        Ok(Parsed {
            request: ReportRequest {
                name,
                tenant: tenant.to_owned(),
                from,
                to,
                filters,
                limit,
                offset,
                silent_days,
                reporting_cap,
                sort: sort.map(|column| (column, descending.unwrap_or(false))),
                readiness,
                kind,
            },
            format,
            profile,
        })
    }
}
