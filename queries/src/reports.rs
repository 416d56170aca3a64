//! The reports themselves: each one a DataFusion DataFrame over the tables, always filtered
//! by tenant and window first, with every parameter passed as a typed literal.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Date32Type, Int64Type, TimeUnit, TimestampMicrosecondType};
use datafusion::common::ScalarValue;
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use datafusion::functions_aggregate::expr_fn::{bool_and, count, max, min, sum};
use datafusion::logical_expr::{Expr, SortExpr};
use datafusion::prelude::{SessionContext, ident, lit, when};
use warehouse::{Table, Warehouse};

use crate::applications::{self, APPLICATION_COLUMNS, Grouping, PUBLISHER_COLUMNS};
use crate::days::{Coverage, Split, closed_days, rollup_and_raw};
use crate::request::{Filters, ReportName, ReportRequest};
use crate::{Opened, QueryError, distinct, open};

/// One value of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// No value.
    Null,
    /// Text.
    Text(String),
    /// A whole number.
    Int(i64),
    /// True or false.
    Bool(bool),
    /// An instant.
    Time(DateTime<Utc>),
    /// A UTC date.
    Date(NaiveDate),
}

impl Cell {
    /// The text, if the cell holds text.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Cell::Text(t) => Some(t),
            _ => None,
        }
    }

    /// The instant, if the cell holds one.
    pub fn as_time(&self) -> Option<DateTime<Utc>> {
        match self {
            Cell::Time(t) => Some(*t),
            _ => None,
        }
    }

    /// The number, if the cell holds one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Cell::Int(n) => Some(*n),
            _ => None,
        }
    }
}

/// A report's answer: named columns (camelCase) and rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Which report.
    pub name: ReportName,
    /// Start of the window, inclusive.
    pub from: DateTime<Utc>,
    /// End of the window, exclusive.
    pub to: DateTime<Utc>,
    /// Column names.
    pub columns: Vec<String>,
    /// Rows, each as long as `columns`.
    pub rows: Vec<Vec<Cell>>,
    /// The window's days whose raw events retention deleted, and which of them the rows
    /// include (from the daily rollups).
    pub coverage: Coverage,
}

impl Report {
    /// The index of a column.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// Each row as (column name → cell).
    pub fn records(&self) -> Vec<BTreeMap<&str, &Cell>> {
        self.rows
            .iter()
            .map(|row| self.columns.iter().map(String::as_str).zip(row).collect())
            .collect()
    }
}

pub(crate) const UNMANAGED: &str = "unmanagedElevation";

/// The columns of the event lists, in the order the table shows them.
const EVENT_COLUMNS: [&str; 23] = [
    "eventDateTime",
    "fileName",
    "upn",
    "deviceName",
    "result",
    "elevationType",
    "companyName",
    "hash",
    "filePath",
    "justification",
    "ruleId",
    "policyId",
    "policyName",
    "id",
    "deviceId",
    "userType",
    "productName",
    "fileVersion",
    "internalName",
    "fileDescription",
    "processType",
    "parentProcessName",
    "systemInitiatedElevation",
];

/// Runs a report over the warehouse's latest committed data. With `sort`, the rows are
/// ordered by that column (nulls last, ties in the report's own order) before the page is cut.
pub async fn run(warehouse: &Warehouse, request: &ReportRequest) -> Result<Report, QueryError> {
    // Event lists sort in DataFusion (a window may hold millions of events); the others
    // hold every row of their answer anyway and sort here.
    let sort = request.sort.as_ref().filter(|_| !request.name.is_event_list());
    if sort.is_none() && request.readiness.is_none() {
        return run_in_report_order(warehouse, request).await;
    }
    let whole = ReportRequest {
        limit: None,
        offset: 0,
        sort: None,
        readiness: None,
        ..request.clone()
    };
    let mut report = run_in_report_order(warehouse, &whole).await?;
    let mut rows = std::mem::take(&mut report.rows);
    if let Some(readiness) = request.readiness {
        let (managed, unmanaged) = (
            report.column("managed").expect("by-user columns"),
            report.column("unmanaged").expect("by-user columns"),
        );
        rows.retain(|row| readiness.holds(row[managed].as_int().unwrap_or(0), row[unmanaged].as_int().unwrap_or(0)));
    }
    if let Some((column, descending)) = sort {
        let index = report.column(column).ok_or_else(|| {
            QueryError::BadParameter(format!(
                "sort {column:?} is not a column of {}; its columns are {}",
                request.name.as_str(),
                report.columns.join(", ")
            ))
        })?;
        rows.sort_by(|a, b| {
            let ordering = cell_order(&a[index], &b[index]);
            match (&a[index], &b[index]) {
                (Cell::Null, _) | (_, Cell::Null) => ordering,
                _ if *descending => ordering.reverse(),
                _ => ordering,
            }
        });
    }
    report.rows = request.page(rows).collect();
    Ok(report)
}

/// Orders two cells of one column: values by their natural order, nulls after every value.
fn cell_order(a: &Cell, b: &Cell) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Cell::Null, Cell::Null) => Ordering::Equal,
        (Cell::Null, _) => Ordering::Greater,
        (_, Cell::Null) => Ordering::Less,
        (Cell::Int(x), Cell::Int(y)) => x.cmp(y),
        (Cell::Bool(x), Cell::Bool(y)) => x.cmp(y),
        (Cell::Time(x), Cell::Time(y)) => x.cmp(y),
        (Cell::Date(x), Cell::Date(y)) => x.cmp(y),
        (Cell::Text(x), Cell::Text(y)) => x.to_lowercase().cmp(&y.to_lowercase()).then_with(|| x.cmp(y)),
        (x, y) => format!("{x:?}").cmp(&format!("{y:?}")),
    }
}

async fn run_in_report_order(warehouse: &Warehouse, request: &ReportRequest) -> Result<Report, QueryError> {
    let Opened { ctx, elevations: raw } = open(warehouse, Some(&request.tenant)).await?;
    let mut report = Report {
        name: request.name,
        from: request.from,
        to: request.to,
        columns: Vec::new(),
        rows: Vec::new(),
        coverage: Coverage::of_closed(closed_days(&ctx, &raw, &request.tenant, request.from, request.to).await?),
    };
    let frame = match request.name {
        ReportName::Elevations | ReportName::ManagedElevations => {
            let mut events = elevations(&ctx, request).await?;
            if request.name == ReportName::ManagedElevations {
                events = events.filter(ident("elevationType").not_eq(lit(UNMANAGED)))?;
            }
            let mut order = vec![desc("eventDateTime"), desc("id")];
            if let Some((column, descending)) = &request.sort {
                if !EVENT_COLUMNS.contains(&column.as_str()) {
                    return Err(QueryError::BadParameter(format!(
                        "sort {column:?} is not a column of {}; its columns are {}",
                        request.name.as_str(),
                        EVENT_COLUMNS.join(", ")
                    )));
                }
                order.insert(0, ident(column.as_str()).sort(!descending, false));
            }
            events.select(cols(&EVENT_COLUMNS))?.sort(order)?
        }
        ReportName::ByApplication | ReportName::ByPublisher => {
            by_application_or_publisher(&ctx, &raw, request, &mut report).await?;
            return Ok(report);
        }
        ReportName::ByUser => {
            by_subject(&ctx, &raw, request, Subject::User, &mut report).await?;
            return Ok(report);
        }
        ReportName::ByDevice => {
            by_subject(&ctx, &raw, request, Subject::Device, &mut report).await?;
            return Ok(report);
        }
        ReportName::Trend => {
            trend(&ctx, &raw, request, &mut report).await?;
            return Ok(report);
        }
        ReportName::Denied => {
            crate::denied::denied(&ctx, &raw, request, &mut report).await?;
            return Ok(report);
        }
        ReportName::Overview => {
            crate::overview::overview(&ctx, &raw, request, &mut report).await?;
            return Ok(report);
        }
        ReportName::Diagnostics => {
            crate::diagnostics::diagnostics(&ctx, &raw, request, &mut report).await?;
            return Ok(report);
        }
        ReportName::Compliance => {
            crate::monthly::compliance(&ctx, &raw, request, &mut report).await?;
            return Ok(report);
        }
    };
    let frame = frame.limit(request.offset, request.limit)?;
    let (columns, rows) = collect(frame).await?;
    report.columns = columns;
    report.rows = rows;
    Ok(report)
}

/// `by-application` (per hash and type) or `by-publisher` (per publisher and type): elevations,
/// distinct users and devices. Whole days `daily_suggestions` answers come from its group
/// rows (`crate::applications`), which also hold closed days; a window without such days is
/// aggregated from the raw rows alone, where DataFusion computes every aggregate but the
/// distinct counts (`crate::distinct`).
async fn by_application_or_publisher(
    ctx: &SessionContext,
    raw: &warehouse::deltalake::DeltaTable,
    request: &ReportRequest,
    report: &mut Report,
) -> Result<(), QueryError> {
    let grouping = if request.name == ReportName::ByApplication {
        Grouping::Application
    } else {
        Grouping::Publisher
    };
    // The filters whose columns the rollup's group rows hold.
    let answerable = Filters {
        elevation_type: request.filters.elevation_type,
        company_name: request.filters.company_name.clone(),
        hash: request.filters.hash.clone(),
        file_name: request.filters.file_name.clone(),
        ..Filters::default()
    };
    let Split { rolled, raw: raw_rows } = rollup_and_raw(
        ctx,
        raw,
        Table::DailySuggestions,
        request,
        answerable,
        &mut report.coverage,
    )
    .await?;
    if let Some(rolled) = rolled {
        let columns: &[&str] = match grouping {
            Grouping::Application => &APPLICATION_COLUMNS,
            Grouping::Publisher => &PUBLISHER_COLUMNS,
        };
        report.columns = columns.iter().map(|c| (*c).to_owned()).collect();
        let rows = applications::rows(ctx, request, grouping, rolled, raw_rows).await?;
        report.rows = request.page(rows).collect();
        return Ok(());
    }
    let frame = match grouping {
        Grouping::Application => distinct::aggregate_with_users_and_devices(
            ctx,
            raw_rows,
            ["hash", "elevationType"],
            vec![
                max(ident("fileName")).alias("fileName"),
                max(ident("internalName")).alias("internalName"),
                max(ident("fileVersion")).alias("fileVersion"),
                max(ident("companyName")).alias("companyName"),
                count(lit(1)).alias("count"),
                min(ident("eventDateTime")).alias("firstSeen"),
                max(ident("eventDateTime")).alias("lastSeen"),
                bool_and(ident("systemInitiatedElevation")).alias("systemInitiated"),
            ],
        )
        .await?
        .select(cols(&APPLICATION_COLUMNS))?
        .sort(vec![desc("count"), asc("fileName"), asc("hash"), asc("elevationType")])?,
        Grouping::Publisher => distinct::aggregate_with_users_and_devices(
            ctx,
            raw_rows,
            ["companyName", "elevationType"],
            vec![count(lit(1)).alias("count")],
        )
        .await?
        .select(cols(&PUBLISHER_COLUMNS))?
        .sort(vec![desc("count"), asc("companyName"), asc("elevationType")])?,
    };
    (report.columns, report.rows) = collect(frame.limit(request.offset, request.limit)?).await?;
    Ok(())
}

pub(crate) fn cols(names: &[&str]) -> Vec<Expr> {
    names.iter().map(|c| ident(*c)).collect()
}

pub(crate) fn asc(column: &str) -> SortExpr {
    ident(column).sort(true, true)
}

pub(crate) fn desc(column: &str) -> SortExpr {
    ident(column).sort(false, false)
}

pub(crate) fn micros(at: DateTime<Utc>) -> Expr {
    lit(ScalarValue::TimestampMicrosecond(
        Some(at.timestamp_micros()),
        Some("UTC".into()),
    ))
}

pub(crate) fn day(date: NaiveDate) -> Expr {
    lit(ScalarValue::Date32(Some(warehouse::rows::date32_of_date(date))))
}

/// A table's rows of the request's tenant inside its window (the date bounds let Delta skip
/// whole partitions).
pub(crate) async fn in_window(
    ctx: &SessionContext,
    table: Table,
    request: &ReportRequest,
) -> Result<DataFrame, QueryError> {
    tenant_window(ctx, table, &request.tenant, request.from, request.to).await
}

/// A table's rows of one tenant with `from <= eventDateTime < to` (the date bounds let Delta
/// skip whole partitions).
pub async fn tenant_window(
    ctx: &SessionContext,
    table: Table,
    tenant: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<DataFrame, QueryError> {
    let last_day = (to - Duration::microseconds(1)).date_naive();
    Ok(ctx
        .table(table.name())
        .await?
        .filter(ident("tenant").eq(lit(tenant)))?
        .filter(
            ident("eventDate")
                .gt_eq(day(from.date_naive()))
                .and(ident("eventDate").lt_eq(day(last_day))),
        )?
        .filter(
            ident("eventDateTime")
                .gt_eq(micros(from))
                .and(ident("eventDateTime").lt(micros(to))),
        )?)
}

/// The tenant's elevations in the window, narrowed by the request's filters.
pub(crate) async fn elevations(ctx: &SessionContext, request: &ReportRequest) -> Result<DataFrame, QueryError> {
    let mut frame = in_window(ctx, Table::Elevations, request).await?;
    for (column, value) in request.filters.text() {
        frame = frame.filter(ident(column).eq(lit(value)))?;
    }
    Ok(frame)
}

/// Elevations per quarter hour (UTC) in the request's window and filters: the start of each
/// non-empty quarter hour with its count, in time order. Every time zone in use is a whole
/// number of quarter hours from UTC, so these buckets place every elevation in its local
/// hour and weekday exactly (the dashboards' hour × weekday heatmap). Instants need raw rows:
/// the coverage names the window's closed days, none of which the counts include.
pub async fn quarter_hour_counts(
    warehouse: &Warehouse,
    request: &ReportRequest,
) -> Result<(Vec<(DateTime<Utc>, i64)>, Coverage), QueryError> {
    const QUARTER_HOUR_MICROS: i64 = 15 * 60 * 1_000_000;
    let Opened { ctx, elevations: raw } = open(warehouse, Some(&request.tenant)).await?;
    let coverage = Coverage::of_closed(closed_days(&ctx, &raw, &request.tenant, request.from, request.to).await?);
    let bucket = datafusion::logical_expr::cast(ident("eventDateTime"), DataType::Int64) / lit(QUARTER_HOUR_MICROS);
    let frame = elevations(&ctx, request)
        .await?
        .aggregate(vec![bucket.alias("quarter")], vec![count(lit(1)).alias("count")])?
        .sort(vec![asc("quarter")])?;
    let (_, rows) = collect(frame).await?;
    let counts = rows
        .iter()
        .filter_map(|row| {
            let quarter = row[0].as_int()?;
            let at = DateTime::from_timestamp_micros(quarter * QUARTER_HOUR_MICROS)?;
            Some((at, row[1].as_int()?))
        })
        .collect();
    Ok((counts, coverage))
}

/// Diagnostic events with a non-zero error code per UTC day and code, in the request's window
/// (its tenant and device filter): the fleet health page's error codes over time.
pub async fn error_codes_by_day(
    warehouse: &Warehouse,
    request: &ReportRequest,
) -> Result<Vec<(NaiveDate, i64, i64)>, QueryError> {
    let Opened { ctx, .. } = open(warehouse, Some(&request.tenant)).await?;
    let mut frame = in_window(&ctx, Table::Diagnostics, request).await?;
    if let Some(device) = &request.filters.device_name {
        frame = frame.filter(ident("deviceName").eq(lit(device.as_str())))?;
    }
    let frame = frame
        .filter(ident("errorCode").not_eq(lit(0i64)))?
        .aggregate(
            vec![ident("eventDate"), ident("errorCode")],
            vec![count(lit(1)).alias("count")],
        )?
        .sort(vec![asc("eventDate"), asc("errorCode")])?;
    let (_, rows) = collect(frame).await?;
    Ok(rows
        .iter()
        .filter_map(|row| match &row[..] {
            [Cell::Date(day), code, n] => Some((*day, code.as_int()?, n.as_int()?)),
            _ => None,
        })
        .collect())
}

fn is_managed() -> Expr {
    ident("elevationType").not_eq(lit(UNMANAGED))
}

fn is_unmanaged() -> Expr {
    ident("elevationType").eq(lit(UNMANAGED))
}

/// Managed, unmanaged and total elevations of raw `events` per value of `key`.
pub(crate) fn raw_split(events: DataFrame, key: &str) -> Result<DataFrame, QueryError> {
    Ok(events.aggregate(
        vec![ident(key)],
        vec![
            count_if(is_managed())?.alias("managed"),
            count_if(is_unmanaged())?.alias("unmanaged"),
            count(lit(1)).alias("total"),
        ],
    )?)
}

fn count_if(condition: Expr) -> Result<Expr, DataFusionError> {
    Ok(sum(when(condition, lit(1i64)).otherwise(lit(0i64))?))
}

/// Elevations per day and type. Whole days of the window whose `daily_counts` were computed
/// from exactly the files `elevations` holds for that day now are read from the rollup (a few
/// rows a day instead of every event); every other day — today, a day with late arrivals since
/// the last refresh, the window's partial first and last days — is counted from the raw rows.
/// Either way the answer is the raw rows' answer.
async fn trend(
    ctx: &SessionContext,
    raw: &warehouse::deltalake::DeltaTable,
    request: &ReportRequest,
    report: &mut Report,
) -> Result<(), QueryError> {
    report.columns = ["date", "elevationType", "count"].map(String::from).to_vec();
    let answerable = Filters {
        elevation_type: request.filters.elevation_type,
        ..Filters::default()
    };
    let Split { rolled, raw: raw_rows } =
        rollup_and_raw(ctx, raw, Table::DailyCounts, request, answerable, &mut report.coverage).await?;
    let mut counts: BTreeMap<(NaiveDate, String), i64> = BTreeMap::new();
    if let Some(rolled) = rolled {
        let rolled = rolled.select(vec![event_date(), ident("elevationType"), ident("elevations")])?;
        add_day_counts(&mut counts, collect(rolled).await?.1)?;
    }
    let counted = raw_rows.aggregate(
        vec![event_date(), ident("elevationType")],
        vec![count(lit(1)).alias("count")],
    )?;
    add_day_counts(&mut counts, collect(counted).await?.1)?;
    report.rows = request
        .page(counts)
        .map(|((date, elevation_type), n)| vec![Cell::Date(date), Cell::Text(elevation_type), Cell::Int(n)])
        .collect();
    Ok(())
}

/// Adds `(date, elevationType, count)` rows to `counts`.
fn add_day_counts(counts: &mut BTreeMap<(NaiveDate, String), i64>, rows: Vec<Vec<Cell>>) -> Result<(), QueryError> {
    for row in rows {
        let [Cell::Date(date), Cell::Text(elevation_type), Cell::Int(n)] = &row[..] else {
            return Err(DataFusionError::Internal(format!("a trend row of unexpected shape: {row:?}")).into());
        };
        *counts.entry((*date, elevation_type.clone())).or_default() += n;
    }
    Ok(())
}

/// `eventDate` as a plain date (Delta hands partition columns over dictionary-encoded).
fn event_date() -> Expr {
    datafusion::prelude::cast(ident("eventDate"), DataType::Date32).alias("eventDate")
}

/// Whom the managed/unmanaged split of `by-user` and `by-device` is made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Subject {
    User,
    Device,
}

impl Subject {
    fn column(self) -> &'static str {
        match self {
            Subject::User => "upn",
            Subject::Device => "deviceName",
        }
    }

    /// The rollup holding the subject's elevations per day and type.
    fn rollup(self) -> Table {
        match self {
            Subject::User => Table::DailyUsers,
            Subject::Device => Table::DailyDevices,
        }
    }

    /// The filters of `filters` that the rollup can answer: the type, and the subject itself.
    fn answerable(self, filters: &Filters) -> Filters {
        let mut answerable = Filters {
            elevation_type: filters.elevation_type,
            ..Filters::default()
        };
        match self {
            Subject::User => answerable.upn = filters.upn.clone(),
            Subject::Device => answerable.device_name = filters.device_name.clone(),
        }
        answerable
    }
}

/// Managed, unmanaged and total elevations of each user (or device) in the window. Whole days
/// whose `daily_users` (`daily_devices`) rows are current come from there (a row per user, day
/// and type instead of every event); the rest from the raw rows — the same answer either way.
pub(crate) async fn per_subject_counts(
    ctx: &SessionContext,
    raw: &warehouse::deltalake::DeltaTable,
    request: &ReportRequest,
    subject: Subject,
    coverage: &mut Coverage,
) -> Result<BTreeMap<String, [i64; 3]>, QueryError> {
    let answerable = subject.answerable(&request.filters);
    let Split { rolled, raw: raw_rows } =
        rollup_and_raw(ctx, raw, subject.rollup(), request, answerable, coverage).await?;
    let key = subject.column();
    let mut per_subject: BTreeMap<String, [i64; 3]> = BTreeMap::new();
    let mut add = |rows: Vec<Vec<Cell>>| -> Result<(), QueryError> {
        for row in rows {
            let [
                Cell::Text(name),
                Cell::Int(managed),
                Cell::Int(unmanaged),
                Cell::Int(total),
            ] = &row[..]
            else {
                return Err(DataFusionError::Internal(format!("a {key} row of unexpected shape: {row:?}")).into());
            };
            let entry = per_subject.entry(name.clone()).or_default();
            entry[0] += managed;
            entry[1] += unmanaged;
            entry[2] += total;
        }
        Ok(())
    };
    if let Some(rolled) = rolled {
        let n = || ident("elevations");
        let rolled = rolled.aggregate(
            vec![ident(key)],
            vec![
                sum(when(is_managed(), n()).otherwise(lit(0i64))?).alias("managed"),
                sum(when(is_unmanaged(), n()).otherwise(lit(0i64))?).alias("unmanaged"),
                sum(n()).alias("total"),
            ],
        )?;
        add(collect(rolled).await?.1)?;
    }
    add(collect(raw_split(raw_rows, key)?).await?.1)?;
    Ok(per_subject)
}

/// Managed, unmanaged and total elevations per user (or device), most elevations first.
async fn by_subject(
    ctx: &SessionContext,
    raw: &warehouse::deltalake::DeltaTable,
    request: &ReportRequest,
    subject: Subject,
    report: &mut Report,
) -> Result<(), QueryError> {
    report.columns = [subject.column(), "managed", "unmanaged", "total"]
        .map(String::from)
        .to_vec();
    let per_subject = per_subject_counts(ctx, raw, request, subject, &mut report.coverage).await?;
    let mut rows: Vec<(String, [i64; 3])> = per_subject.into_iter().collect();
    // Most elevations first, then by name (the map already ordered them).
    rows.sort_by_key(|(_, n)| std::cmp::Reverse(n[2]));
    report.rows = request
        .page(rows)
        .map(|(name, [managed, unmanaged, total])| {
            vec![
                Cell::Text(name),
                Cell::Int(managed),
                Cell::Int(unmanaged),
                Cell::Int(total),
            ]
        })
        .collect();
    Ok(())
}

/// Runs a DataFrame and turns its batches into cells.
pub(crate) async fn collect(frame: DataFrame) -> Result<(Vec<String>, Vec<Vec<Cell>>), QueryError> {
    let columns: Vec<String> = frame.schema().fields().iter().map(|f| f.name().clone()).collect();
    let batches = frame.collect().await?;
    let mut rows = Vec::new();
    for batch in &batches {
        rows.extend(cells(batch)?);
    }
    Ok((columns, rows))
}

fn cells(batch: &RecordBatch) -> Result<Vec<Vec<Cell>>, QueryError> {
    let mut rows = vec![Vec::with_capacity(batch.num_columns()); batch.num_rows()];
    for column in batch.columns() {
        let values = column_cells(column)?;
        for (row, value) in rows.iter_mut().zip(values) {
            row.push(value);
        }
    }
    Ok(rows)
}

pub(crate) fn column_cells(column: &ArrayRef) -> Result<Vec<Cell>, QueryError> {
    let n = column.len();
    let cast_to = |t: &DataType| cast(column, t).map_err(DataFusionError::from);
    let out = match column.data_type() {
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Dictionary(..) => {
            let text = cast_to(&DataType::Utf8)?;
            let text = text.as_string::<i32>();
            (0..n)
                .map(|i| {
                    if text.is_null(i) {
                        Cell::Null
                    } else {
                        Cell::Text(text.value(i).to_owned())
                    }
                })
                .collect()
        }
        DataType::Boolean => {
            let b = column.as_boolean();
            (0..n)
                .map(|i| {
                    if b.is_null(i) {
                        Cell::Null
                    } else {
                        Cell::Bool(b.value(i))
                    }
                })
                .collect()
        }
        DataType::Timestamp(..) => {
            let t = cast_to(&DataType::Timestamp(TimeUnit::Microsecond, None))?;
            let t = t.as_primitive::<TimestampMicrosecondType>();
            (0..n)
                .map(|i| match DateTime::from_timestamp_micros(t.value(i)) {
                    Some(at) if !t.is_null(i) => Cell::Time(at),
                    _ => Cell::Null,
                })
                .collect()
        }
        DataType::Date32 => {
            let d = column.as_primitive::<Date32Type>();
            (0..n)
                .map(|i| {
                    if d.is_null(i) {
                        Cell::Null
                    } else {
                        Cell::Date(warehouse::rows::date_of_date32(d.value(i)))
                    }
                })
                .collect()
        }
        _ => {
            let v = cast_to(&DataType::Int64)?;
            let v = v.as_primitive::<Int64Type>();
            (0..n)
                .map(|i| {
                    if v.is_null(i) {
                        Cell::Null
                    } else {
                        Cell::Int(v.value(i))
                    }
                })
                .collect()
        }
    };
    Ok(out)
}
