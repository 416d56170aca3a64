//! The data files of a pack: `elevations.csv` and `elevations.parquet` streamed from the
//! period's rows, `privileged-use.csv`, `coverage.csv` and `retention.json`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, SecondsFormat, Utc};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{
    DataType, Field, Int32Type, Int64Type, Schema, SchemaRef, TimestampMicrosecondType,
};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use futures::StreamExt;
use warehouse::{ReportingLevel, Table};

use crate::ComplianceError;
use crate::read::{DeviceSeen, UserUse};

/// File names of the pack's data files.
pub(crate) const ELEVATIONS_CSV: &str = "elevations.csv";
pub(crate) const ELEVATIONS_PARQUET: &str = "elevations.parquet";
pub(crate) const PRIVILEGED_USE: &str = "privileged-use.csv";
pub(crate) const COVERAGE: &str = "coverage.csv";
/// The support-approved requests of the period, as of its end.
pub(crate) const SUPPORT_REQUESTS: &str = "support-requests.csv";
pub(crate) const RETENTION: &str = "retention.json";

/// Rows per Parquet write: the file's pages depend on how rows are handed to the writer, so
/// they are always handed over in pieces of this size, whatever the scan produced.
const CHUNK_ROWS: usize = 8192;

/// What streaming the elevations found.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ElevationFiles {
    pub(crate) rows: u64,
    /// Rows with an AU-3 column null or empty.
    pub(crate) incomplete: u64,
}

fn csv_error(e: csv::Error) -> String {
    e.to_string()
}

/// Streams the period's elevations into `elevations.csv` and `elevations.parquet`, one UTC day
/// at a time: DataFusion sorts one day's rows, never the whole period's.
pub(crate) async fn elevations(
    ctx: &datafusion::prelude::SessionContext,
    tenant: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    dir: &Path,
) -> Result<ElevationFiles, ComplianceError> {
    let columns = crate::read::elevation_columns();
    let schema: SchemaRef = Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(c.name, c.data_type.arrow(), c.nullable))
            .collect::<Vec<_>>(),
    ));
    let csv_path = dir.join(ELEVATIONS_CSV);
    let mut csv = csv::Writer::from_writer(BufWriter::new(
        File::create(&csv_path).map_err(ComplianceError::io(&csv_path))?,
    ));
    csv.write_record(columns.iter().map(|c| c.name))
        .map_err(|e| ComplianceError::write(ELEVATIONS_CSV)(csv_error(e)))?;
    let parquet_path = dir.join(ELEVATIONS_PARQUET);
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("valid level")))
        .set_created_by(crate::GENERATOR.to_owned())
        .build();
    let parquet_file = File::create(&parquet_path).map_err(ComplianceError::io(&parquet_path))?;
    let mut parquet = ArrowWriter::try_new(parquet_file, schema.clone(), Some(properties))
        .map_err(|e| ComplianceError::write(ELEVATIONS_PARQUET)(e.to_string()))?;
    let mut found = ElevationFiles::default();
    let mut pending = RecordBatch::new_empty(schema.clone());
    let mut write = |chunk: &RecordBatch| -> Result<(), ComplianceError> {
        found.rows += chunk.num_rows() as u64;
        found.incomplete += crate::read::incomplete_rows(chunk)?;
        write_csv_rows(&mut csv, chunk)?;
        parquet
            .write(chunk)
            .map_err(|e| ComplianceError::write(ELEVATIONS_PARQUET)(e.to_string()))
    };
    let mut start = from;
    while start < to {
        let next_midnight = (start.date_naive() + Duration::days(1))
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc();
        let end = next_midnight.min(to);
        let mut stream = crate::read::elevations(ctx, tenant, start, end).await?;
        while let Some(batch) = stream.next().await {
            let batch = RecordBatch::try_new(schema.clone(), batch?.columns().to_vec())?;
            pending = concat_batches(&schema, [&pending, &batch])?;
            while pending.num_rows() >= CHUNK_ROWS {
                write(&pending.slice(0, CHUNK_ROWS))?;
                pending = pending.slice(CHUNK_ROWS, pending.num_rows() - CHUNK_ROWS);
            }
        }
        start = end;
    }
    if pending.num_rows() > 0 {
        write(&pending)?;
    }
    csv.flush().map_err(ComplianceError::io(&csv_path))?;
    parquet
        .close()
        .map_err(|e| ComplianceError::write(ELEVATIONS_PARQUET)(e.to_string()))?;
    Ok(found)
}

fn write_csv_rows(csv: &mut csv::Writer<BufWriter<File>>, batch: &RecordBatch) -> Result<(), ComplianceError> {
    let mut record = Vec::with_capacity(batch.num_columns());
    for row in 0..batch.num_rows() {
        record.clear();
        record.extend(batch.columns().iter().map(|c| cell(c, row)));
        csv.write_record(&record)
            .map_err(|e| ComplianceError::write(ELEVATIONS_CSV)(csv_error(e)))?;
    }
    Ok(())
}

/// One value as CSV text: empty for null, RFC 3339 UTC (microseconds) for instants.
fn cell(column: &ArrayRef, row: usize) -> String {
    if column.is_null(row) {
        return String::new();
    }
    match column.data_type() {
        DataType::Utf8 => column.as_string::<i32>().value(row).to_owned(),
        DataType::Int32 => column.as_primitive::<Int32Type>().value(row).to_string(),
        DataType::Int64 => column.as_primitive::<Int64Type>().value(row).to_string(),
        DataType::Boolean => column.as_boolean().value(row).to_string(),
        DataType::Timestamp(..) => {
            let micros = column.as_primitive::<TimestampMicrosecondType>().value(row);
            DateTime::from_timestamp_micros(micros)
                .map(time_text)
                .unwrap_or_default()
        }
        other => unreachable!("elevations.csv has no column of type {other}"),
    }
}

/// An instant as the pack writes it: RFC 3339, UTC, microseconds.
pub(crate) fn time_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// An instant as the manifest and OSCAL write it: RFC 3339, UTC, seconds.
pub(crate) fn instant_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Writes `privileged-use.csv`: one row per user, by user principal name, with the
/// support-approved requests they made in the period (a user who asked but never elevated has
/// a row too).
pub(crate) fn privileged_use(
    dir: &Path,
    users: &BTreeMap<String, UserUse>,
    requests: &[SupportRequest],
) -> Result<(), ComplianceError> {
    let mut rows = vec![vec![
        "upn".to_owned(),
        "elevations".into(),
        "managed".into(),
        "unmanaged".into(),
        "denied".into(),
        "supportApproved".into(),
        "usesLocalAdminRights".into(),
        "finding".into(),
        "supportRequests".into(),
        "supportRequestsApproved".into(),
        "supportRequestsDenied".into(),
    ]];
    // requests, approved, denied — by requester.
    let mut asked: BTreeMap<&str, [u64; 3]> = BTreeMap::new();
    for r in requests {
        let counts = asked.entry(r.requested_by.as_str()).or_default();
        counts[0] += 1;
        counts[1] += u64::from(r.approval_expiry.is_some());
        counts[2] += u64::from(r.status == "denied");
    }
    let nobody = UserUse::default();
    let mut everyone: BTreeMap<&str, &UserUse> = users.iter().map(|(u, n)| (u.as_str(), n)).collect();
    for upn in asked.keys() {
        everyone.entry(upn).or_insert(&nobody);
    }
    for (upn, u) in everyone {
        let finding = if u.unmanaged > 0 {
            "CIS 5.4: elevates with local administrator rights outside EPM"
        } else {
            ""
        };
        rows.push(
            vec![
                upn.to_owned(),
                u.elevations.to_string(),
                u.managed.to_string(),
                u.unmanaged.to_string(),
                u.denied.to_string(),
                u.support_approved.to_string(),
                (u.unmanaged > 0).to_string(),
                finding.into(),
            ]
            .into_iter()
            .chain(asked.get(upn).copied().unwrap_or_default().map(|n| n.to_string()))
            .collect(),
        );
    }
    write_csv(dir, PRIVILEGED_USE, &rows)
}

/// One support-approved request as the pack records it: its state and decision as of the
/// period's end (a decision after the end is not shown), so a pack made again later for the
/// same period is the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportRequest {
    /// The request's id.
    pub id: String,
    /// Who asked.
    pub requested_by: String,
    /// The device's name.
    pub device_name: String,
    /// Its id.
    pub device_id: String,
    /// The file's name.
    pub file_name: String,
    /// Its SHA-256.
    pub file_hash: String,
    /// When it was asked.
    pub created_at: DateTime<Utc>,
    /// Its state at the period's end.
    pub status: String,
    /// Who decided it (empty when undecided at the end).
    pub reviewed_by: String,
    /// When.
    pub reviewed_at: Option<DateTime<Utc>>,
    /// The reviewer's reason.
    pub reviewer_justification: String,
    /// The end of the approval's window, when approved.
    pub approval_expiry: Option<DateTime<Utc>>,
    /// Who revoked it, when revoked before the end.
    pub revoked_by: String,
    /// The first elevation under the approval before the end.
    pub first_used_at: Option<DateTime<Utc>>,
}

/// Writes `support-requests.csv`: every request of the period with requester and reviewer side
/// by side (AC-5 separation of duties, AU-10 non-repudiation of the approver).
pub(crate) fn support_requests(dir: &Path, requests: &[SupportRequest]) -> Result<(), ComplianceError> {
    let time = |t: Option<DateTime<Utc>>| t.map(instant_text).unwrap_or_default();
    let mut rows = vec![
        [
            "id",
            "requestCreatedDateTime",
            "requestedByUserPrincipalName",
            "deviceName",
            "deviceId",
            "fileName",
            "fileHash",
            "status",
            "reviewCompletedByUserPrincipalName",
            "reviewCompletedDateTime",
            "reviewerJustification",
            "approvalExpiryDateTime",
            "revokedByUserPrincipalName",
            "firstUsedDateTime",
            "reviewerIsRequester",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    let mut sorted: Vec<&SupportRequest> = requests.iter().collect();
    sorted.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    for r in sorted {
        rows.push(vec![
            r.id.clone(),
            instant_text(r.created_at),
            r.requested_by.clone(),
            r.device_name.clone(),
            r.device_id.clone(),
            r.file_name.clone(),
            r.file_hash.clone(),
            r.status.clone(),
            r.reviewed_by.clone(),
            time(r.reviewed_at),
            r.reviewer_justification.clone(),
            time(r.approval_expiry),
            r.revoked_by.clone(),
            time(r.first_used_at),
            (!r.reviewed_by.is_empty() && r.reviewed_by.eq_ignore_ascii_case(&r.requested_by)).to_string(),
        ]);
    }
    write_csv(dir, SUPPORT_REQUESTS, &rows)
}

/// One device of `coverage.csv`.
#[derive(Debug, Clone)]
pub(crate) struct CoverageRow {
    pub(crate) device_id: String,
    pub(crate) seen: DeviceSeen,
    pub(crate) lowest: Option<ReportingLevel>,
    pub(crate) below_cap: bool,
    pub(crate) silent: bool,
    pub(crate) gap: String,
}

/// Days without any event at the end of the period after which a device counts as silent.
pub(crate) const SILENT_DAYS: i64 = queries::request::DEFAULT_SILENT_DAYS as i64;
/// How far before the period devices are looked for, so that a device silent through the
/// whole period is still listed.
pub(crate) const LOOKBACK_DAYS: i64 = 30;

/// Decides each device's coverage.
pub(crate) fn coverage_rows(
    devices: BTreeMap<String, DeviceSeen>,
    cap: ReportingLevel,
    to: DateTime<Utc>,
) -> Vec<CoverageRow> {
    let silent_from = to - Duration::days(SILENT_DAYS);
    devices
        .into_iter()
        .map(|(device_id, seen)| {
            let lowest = seen.levels.iter().next().copied();
            let silent = seen.last.is_none_or(|last| last < silent_from);
            let mut gaps = Vec::new();
            match lowest {
                None => gaps.push("no events in the period: nothing of it is evidenced".to_owned()),
                Some(ReportingLevel::All) => {}
                Some(ReportingLevel::Managed) => gaps.push(
                    "reports at managed: unmanaged elevations (local administrator rights in use) are never sent"
                        .to_owned(),
                ),
                Some(_) => gaps.push("reports diagnostics only: none of its elevations are evidenced".to_owned()),
            }
            if silent && lowest.is_some() {
                gaps.push(format!(
                    "silent: no events in the last {SILENT_DAYS} days of the period (agent stopped, device off or retired)"
                ));
            }
            CoverageRow {
                below_cap: lowest.is_none_or(|l| l < cap),
                device_id,
                seen,
                lowest,
                silent,
                gap: gaps.join("; "),
            }
        })
        .collect()
}

/// Writes `coverage.csv`: one row per device, by device id.
pub(crate) fn coverage(dir: &Path, rows: &[CoverageRow]) -> Result<(), ComplianceError> {
    let mut out = vec![Vec::from(
        [
            "deviceId",
            "deviceName",
            "reportingLevels",
            "lowestLevel",
            "belowTenantCap",
            "elevations",
            "diagnosticEvents",
            "lastEvent",
            "silent",
            "gap",
        ]
        .map(str::to_owned),
    )];
    for row in rows {
        let levels: Vec<&str> = row.seen.levels.iter().map(|l| l.as_str()).collect();
        out.push(vec![
            row.device_id.clone(),
            row.seen.name.clone(),
            levels.join(";"),
            row.lowest.map(|l| l.as_str()).unwrap_or("").to_owned(),
            row.below_cap.to_string(),
            row.seen.elevations.to_string(),
            row.seen.diagnostics.to_string(),
            row.seen.last.map(time_text).unwrap_or_default(),
            row.silent.to_string(),
            row.gap.clone(),
        ]);
    }
    write_csv(dir, COVERAGE, &out)
}

fn write_csv(dir: &Path, name: &'static str, rows: &[Vec<String>]) -> Result<(), ComplianceError> {
    let path = dir.join(name);
    let mut csv = csv::Writer::from_writer(BufWriter::new(File::create(&path).map_err(ComplianceError::io(&path))?));
    for row in rows {
        csv.write_record(row)
            .map_err(|e| ComplianceError::write(name)(csv_error(e)))?;
    }
    csv.flush().map_err(ComplianceError::io(&path))
}

/// One table of `retention.json`.
#[derive(Debug, Clone)]
pub(crate) struct TableRetention {
    pub(crate) table: Table,
    pub(crate) days: u32,
    pub(crate) oldest: Option<NaiveDate>,
    /// The period starts before the oldest row held (or nothing is held).
    pub(crate) flagged: bool,
    pub(crate) note: String,
}

/// Compares what each table holds with the tenant's retention and the period.
pub(crate) fn retention_rows(
    oldest: Vec<(Table, Option<NaiveDate>)>,
    retention: &warehouse::Retention,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<TableRetention> {
    let period_days = (to - from).num_days();
    oldest
        .into_iter()
        .map(|(table, oldest)| {
            let days = retention.days(table);
            let (flagged, mut note) = match oldest {
                None => (true, "the tenant has no rows in this table: the period is not evidenced by it".to_owned()),
                Some(day) if from.date_naive() < day => (
                    true,
                    format!(
                        "the period starts {} before the oldest row held ({day}): the pack covers {day} to the end only",
                        from.date_naive()
                    ),
                ),
                Some(day) => (false, format!("rows are held from {day}, so the whole period is")),
            };
            if period_days > i64::from(days) {
                note.push_str(&format!(
                    "; the period ({period_days} days) is longer than the tenant keeps this table ({days} days)"
                ));
            }
            TableRetention {
                table,
                days,
                oldest,
                flagged,
                note,
            }
        })
        .collect()
}

/// Writes `retention.json`.
pub(crate) fn retention(
    dir: &Path,
    tenant: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    rows: &[TableRetention],
) -> Result<(), ComplianceError> {
    let tables: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "table": r.table.name(),
                "retentionDays": r.days,
                "oldestData": r.oldest.map(|d| d.to_string()),
                "periodStartsBeforeOldestData": r.flagged,
                "note": r.note,
            })
        })
        .collect();
    let value = serde_json::json!({
        "tenant": tenant,
        "period": { "from": instant_text(from), "to": instant_text(to) },
        "tables": tables,
        "flagged": rows.iter().any(|r| r.flagged),
        "rollupRetentionDays": warehouse::retention::ROLLUP_RETENTION_DAYS,
    });
    write_json(dir, RETENTION, &value)
}

/// Writes pretty JSON with sorted keys and a final newline.
pub(crate) fn write_json(dir: &Path, name: &'static str, value: &serde_json::Value) -> Result<(), ComplianceError> {
    let mut text = serde_json::to_string_pretty(&crate::manifest::sorted(value.clone()))
        .map_err(|e| ComplianceError::write(name)(e.to_string()))?;
    text.push('\n');
    write_file(dir, name, text.as_bytes())
}

/// Writes a whole file.
pub(crate) fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), ComplianceError> {
    let path = dir.join(name);
    let mut file = File::create(&path).map_err(ComplianceError::io(&path))?;
    file.write_all(bytes).map_err(ComplianceError::io(&path))
}
