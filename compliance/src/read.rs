//! The period's data, read with DataFusion from `elevations` and `diagnostics` pinned at one
//! Delta version each: the same versions give the same rows, whatever landed or was compacted
//! since.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Date32Type, Int64Type, TimeUnit, TimestampMicrosecondType};
use datafusion::common::ScalarValue;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::functions_aggregate::expr_fn::{count, max, min, sum};
use datafusion::prelude::{SessionContext, ident, lit};
use queries::reports::tenant_window;
use warehouse::{ReportingLevel, Table};

use crate::ComplianceError;

/// The tables a pack reads, in the order their versions are recorded.
pub(crate) const TABLES: [Table; 2] = [Table::Elevations, Table::Diagnostics];

/// The columns of `elevations.csv` and `elevations.parquet`, in order, with the AU-3 content
/// each one gives (what, when, where, source, outcome, identity) or what else it is.
pub(crate) const ELEVATION_FIELDS: &[(&str, &str)] = &[
    ("eventDateTime", "when"),
    ("elevationType", "what: how the elevation was decided"),
    ("result", "outcome: 0 on success, otherwise the exit code"),
    ("upn", "identity"),
    ("userType", "identity"),
    ("deviceName", "where"),
    ("deviceId", "where"),
    ("fileName", "what"),
    ("filePath", "what"),
    ("hash", "what: SHA-256 of the file"),
    ("companyName", "what: publisher"),
    ("productName", "what"),
    ("fileVersion", "what"),
    ("certificatePayload", "what: signing certificate"),
    ("processType", "source: parent or child process"),
    ("parentProcessName", "source"),
    ("systemInitiatedElevation", "source: system or user"),
    ("justification", "the user's justification"),
    ("ruleId", "the rule that decided it"),
    ("policyId", "the policy holding the rule"),
    ("policyName", "the policy's name"),
    ("reportingLevel", "source: the level the device reported at"),
    ("id", "event id"),
    ("batchId", "source: the upload that carried it"),
    ("agentVersion", "source: agent version"),
    ("ingestedAt", "when the server acknowledged it"),
];

/// The AU-3 columns a record must not leave empty.
pub(crate) const AU3_REQUIRED: [&str; 7] = [
    "eventDateTime",
    "elevationType",
    "result",
    "upn",
    "deviceName",
    "filePath",
    "hash",
];

/// The tables of a pack, pinned.
pub(crate) struct Source {
    pub(crate) ctx: SessionContext,
    /// The version read of each table, by name.
    pub(crate) versions: BTreeMap<String, u64>,
}

/// Opens `tenant`'s tables at `versions` (by table name), or at their latest versions.
pub(crate) async fn open(
    warehouse: &warehouse::Warehouse,
    tenant: &str,
    versions: Option<&BTreeMap<String, u64>>,
) -> Result<Source, ComplianceError> {
    let mut pins = Vec::new();
    for table in TABLES {
        let version = match versions {
            None => None,
            Some(v) => Some(*v.get(table.name()).ok_or_else(|| {
                ComplianceError::BadManifest(format!("the table versions asked for do not name {}", table.name()))
            })?),
        };
        pins.push((table, version));
    }
    let (ctx, read) = queries::pinned_session(warehouse, &pins, Some(tenant))
        .await
        .map_err(|e| match (versions, e) {
            (Some(_), queries::QueryError::Warehouse(w)) => ComplianceError::BadManifest(format!(
                "the tables cannot be read at the versions asked for ({w}): the Delta log of a version is kept \
             7 days after a checkpoint, and a retention pass removes the files of older versions"
            )),
            (_, e) => e.into(),
        })?;
    let versions = read.into_iter().map(|(t, v)| (t.name().to_owned(), v)).collect();
    Ok(Source { ctx, versions })
}

/// The period's elevations with [`ELEVATION_FIELDS`], ordered by time, device, event id and
/// batch id.
pub(crate) async fn elevations(
    ctx: &SessionContext,
    tenant: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<SendableRecordBatchStream, ComplianceError> {
    let columns = elevation_columns();
    let select = columns
        .iter()
        .map(|c| datafusion::logical_expr::cast(ident(c.name), c.data_type.arrow()).alias(c.name))
        .collect::<Vec<_>>();
    let order = ["eventDateTime", "deviceId", "id", "batchId"]
        .into_iter()
        .map(|c| ident(c).sort(true, true))
        .collect::<Vec<_>>();
    let frame = tenant_window(ctx, Table::Elevations, tenant, from, to)
        .await?
        .select(select)?
        .sort(order)?;
    Ok(frame.execute_stream().await?)
}

/// The warehouse's documentation of each output column, in [`ELEVATION_FIELDS`]' order.
pub(crate) fn elevation_columns() -> Vec<warehouse::schema::Column> {
    ELEVATION_FIELDS
        .iter()
        .map(|(name, _)| {
            *warehouse::schema::ELEVATION_COLUMNS
                .iter()
                .find(|c| c.name == *name)
                .expect("every output column is a column of elevations")
        })
        .collect()
}

/// One user's elevations in the period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct UserUse {
    pub(crate) elevations: u64,
    /// Every type but `unmanagedElevation`, as Intune's reports count managed.
    pub(crate) managed: u64,
    pub(crate) unmanaged: u64,
    pub(crate) denied: u64,
    pub(crate) support_approved: u64,
}

/// Elevations per user and type in the period.
pub(crate) async fn privileged_use(
    ctx: &SessionContext,
    tenant: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<BTreeMap<String, UserUse>, ComplianceError> {
    let batches = tenant_window(ctx, Table::Elevations, tenant, from, to)
        .await?
        .aggregate(
            vec![ident("upn"), ident("elevationType")],
            vec![count(lit(1)).alias("n")],
        )?
        .collect()
        .await?;
    let mut users: BTreeMap<String, UserUse> = BTreeMap::new();
    for batch in &batches {
        let upns = text(batch.column(0))?;
        let types = text(batch.column(1))?;
        let n = integers(batch.column(2))?;
        for row in 0..batch.num_rows() {
            let use_ = users.entry(upns[row].clone().unwrap_or_default()).or_default();
            let n = n[row].unwrap_or(0) as u64;
            use_.elevations += n;
            match types[row].as_deref() {
                Some("unmanagedElevation") => use_.unmanaged += n,
                other => {
                    use_.managed += n;
                    match other {
                        Some("deniedElevation") => use_.denied += n,
                        Some("supportApprovedElevation") => use_.support_approved += n,
                        _ => {}
                    }
                }
            }
        }
    }
    Ok(users)
}

/// What one device sent, from the start of the look-back to the end of the period.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeviceSeen {
    pub(crate) name: String,
    /// Effective reporting levels of its events in the period.
    pub(crate) levels: BTreeSet<ReportingLevel>,
    pub(crate) elevations: u64,
    pub(crate) diagnostics: u64,
    /// Its last event, look-back included.
    pub(crate) last: Option<DateTime<Utc>>,
}

/// Devices that sent anything from `lookback` to `to`, by device id.
pub(crate) async fn devices(
    ctx: &SessionContext,
    tenant: &str,
    lookback: DateTime<Utc>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<BTreeMap<String, DeviceSeen>, ComplianceError> {
    let mut devices: BTreeMap<String, DeviceSeen> = BTreeMap::new();
    let from_literal = lit(ScalarValue::TimestampMicrosecond(
        Some(from.timestamp_micros()),
        Some("UTC".into()),
    ));
    for table in TABLES {
        let in_period =
            datafusion::logical_expr::cast(ident("eventDateTime").gt_eq(from_literal.clone()), DataType::Int64);
        let batches = tenant_window(ctx, table, tenant, lookback, to)
            .await?
            .aggregate(
                vec![ident("deviceId"), ident("reportingLevel")],
                vec![
                    max(ident("deviceName")).alias("name"),
                    max(ident("eventDateTime")).alias("last"),
                    sum(in_period).alias("inPeriod"),
                ],
            )?
            .collect()
            .await?;
        for batch in &batches {
            let ids = text(batch.column(0))?;
            let levels = text(batch.column(1))?;
            let names = text(batch.column(2))?;
            let last = times(batch.column(3))?;
            let in_period = integers(batch.column(4))?;
            for row in 0..batch.num_rows() {
                let seen = devices.entry(ids[row].clone().unwrap_or_default()).or_default();
                let name = names[row].clone().unwrap_or_default();
                if name > seen.name {
                    seen.name = name;
                }
                seen.last = seen.last.max(last[row]);
                let n = in_period[row].unwrap_or(0) as u64;
                if n == 0 {
                    continue;
                }
                if let Some(level) = levels[row].as_deref().and_then(|l| ReportingLevel::parse(l).ok()) {
                    seen.levels.insert(level);
                }
                match table {
                    Table::Elevations => seen.elevations += n,
                    _ => seen.diagnostics += n,
                }
            }
        }
    }
    Ok(devices)
}

/// The oldest `eventDate` of the tenant's rows in each table read.
pub(crate) async fn oldest(
    ctx: &SessionContext,
    tenant: &str,
) -> Result<Vec<(Table, Option<NaiveDate>)>, ComplianceError> {
    let mut out = Vec::new();
    for table in TABLES {
        let batches = ctx
            .table(table.name())
            .await?
            .filter(ident("tenant").eq(lit(tenant)))?
            .aggregate(vec![], vec![min(ident("eventDate")).alias("oldest")])?
            .collect()
            .await?;
        let mut oldest = None;
        for batch in &batches {
            let dates = cast(batch.column(0), &DataType::Date32)?;
            let dates = dates.as_primitive::<Date32Type>();
            for row in 0..batch.num_rows() {
                if !dates.is_null(row) {
                    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
                    let day = epoch + Duration::days(i64::from(dates.value(row)));
                    oldest = Some(oldest.map_or(day, |o: NaiveDate| o.min(day)));
                }
            }
        }
        out.push((table, oldest));
    }
    Ok(out)
}

/// A column as optional strings (Delta scans may hand strings over as Utf8View).
pub(crate) fn text(column: &ArrayRef) -> Result<Vec<Option<String>>, ComplianceError> {
    let column = cast(column, &DataType::Utf8)?;
    let column = column.as_string::<i32>();
    Ok((0..column.len())
        .map(|i| (!column.is_null(i)).then(|| column.value(i).to_owned()))
        .collect())
}

fn integers(column: &ArrayRef) -> Result<Vec<Option<i64>>, ComplianceError> {
    let column = cast(column, &DataType::Int64)?;
    let column = column.as_primitive::<Int64Type>();
    Ok((0..column.len())
        .map(|i| (!column.is_null(i)).then(|| column.value(i)))
        .collect())
}

fn times(column: &ArrayRef) -> Result<Vec<Option<DateTime<Utc>>>, ComplianceError> {
    let column = cast(column, &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())))?;
    let column = column.as_primitive::<TimestampMicrosecondType>();
    Ok((0..column.len())
        .map(|i| {
            (!column.is_null(i))
                .then(|| DateTime::from_timestamp_micros(column.value(i)))
                .flatten()
        })
        .collect())
}

/// Rows of `batch` whose AU-3 columns are null or empty.
pub(crate) fn incomplete_rows(batch: &RecordBatch) -> Result<u64, ComplianceError> {
    let mut incomplete = vec![false; batch.num_rows()];
    for name in AU3_REQUIRED {
        let Some(column) = batch.column_by_name(name) else {
            continue;
        };
        let as_text = cast(column, &DataType::Utf8)?;
        let as_text = as_text.as_string::<i32>();
        for (row, flag) in incomplete.iter_mut().enumerate() {
            if as_text.is_null(row) || as_text.value(row).trim().is_empty() {
                *flag = true;
            }
        }
    }
    Ok(incomplete.into_iter().filter(|f| *f).count() as u64)
}
