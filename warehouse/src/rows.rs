//! Events to Arrow: the rows of the warehouse tables, built column by column in the order of
//! `schema`.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, NaiveDate, Utc};

use crate::ReportingLevel;
use crate::model::{DiagnosticEvent, ElevationEvent};
use crate::schema::{diagnostic_schema, elevation_schema};

/// What the server knows about a batch besides its events: stamped on every row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchContext {
    /// Tenant of the agent key.
    pub tenant: String,
    /// Device id from the batch.
    pub device_id: String,
    /// Device name from the batch.
    pub device_name: String,
    /// Agent version from the batch.
    pub agent_version: Option<String>,
    /// Batch id.
    pub batch_id: String,
    /// Level the device declared.
    pub declared_level: ReportingLevel,
    /// Level applied (declared, capped by the tenant).
    pub effective_level: ReportingLevel,
    /// When the server received the batch.
    pub ingested_at: DateTime<Utc>,
}

const UNIX_EPOCH_DAY: i32 = 719_163; // days from 0001-01-01 to 1970-01-01 (chrono's CE count)

fn date32(at: &DateTime<Utc>) -> i32 {
    date32_of_date(at.date_naive())
}

/// The Date32 value (days since 1970-01-01) of a date.
pub fn date32_of_date(date: NaiveDate) -> i32 {
    use chrono::Datelike;
    date.num_days_from_ce() - UNIX_EPOCH_DAY
}

/// The UTC date of a Date32 value.
pub fn date_of_date32(days: i32) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(days + UNIX_EPOCH_DAY).expect("valid date")
}

// Text columns are sized exactly before they are filled (a second pass over the values, which
// are in memory already): a builder that doubles as it grows keeps its slack in the finished
// array, and these arrays wait in the landing backlog, which is bounded by their capacity. With
// a guessed 16 bytes a value, the doubling and the room reserved for columns that are mostly
// null took a third of the backlog (BENCHMARKS.md, "Where the ingest's heap goes").
fn text<T: AsRef<str>>(values: impl Iterator<Item = T> + Clone, capacity: usize) -> ArrayRef {
    let bytes = values.clone().map(|v| v.as_ref().len()).sum();
    let mut b = StringBuilder::with_capacity(capacity, bytes);
    for v in values {
        b.append_value(v);
    }
    Arc::new(b.finish())
}

fn optional_text<'a>(values: impl Iterator<Item = Option<&'a str>> + Clone, capacity: usize) -> ArrayRef {
    let bytes = values.clone().map(|v| v.map_or(0, str::len)).sum();
    let mut b = StringBuilder::with_capacity(capacity, bytes);
    for v in values {
        b.append_option(v);
    }
    Arc::new(b.finish())
}

fn timestamps(values: impl Iterator<Item = DateTime<Utc>>, capacity: usize) -> ArrayRef {
    let mut b = TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC");
    for v in values {
        b.append_value(v.timestamp_micros());
    }
    Arc::new(b.finish())
}

fn repeated(value: &str, n: usize) -> ArrayRef {
    text(std::iter::repeat_n(value, n), n)
}

/// The rows of `elevations` for one batch's accepted events.
pub fn elevation_rows(ctx: &BatchContext, events: &[ElevationEvent]) -> RecordBatch {
    let n = events.len();
    let mut event_date = Date32Builder::with_capacity(n);
    let mut result = Int32Builder::with_capacity(n);
    let mut system = BooleanBuilder::with_capacity(n);
    for e in events {
        event_date.append_value(date32(&e.event_date_time));
        result.append_value(e.result);
        system.append_value(e.system_initiated_elevation);
    }
    let columns: Vec<ArrayRef> = vec![
        repeated(&ctx.tenant, n),
        Arc::new(event_date.finish()),
        text(events.iter().map(|e| &e.id), n),
        timestamps(events.iter().map(|e| e.event_date_time), n),
        text(events.iter().map(|e| e.elevation_type.as_str()), n),
        repeated(&ctx.device_id, n),
        repeated(&ctx.device_name, n),
        text(events.iter().map(|e| &e.upn), n),
        text(events.iter().map(|e| e.user_type.as_str()), n),
        text(events.iter().map(|e| &e.file_path), n),
        text(events.iter().map(|e| &e.file_name), n),
        text(events.iter().map(|e| &e.hash), n),
        optional_text(events.iter().map(|e| e.product_name.as_deref()), n),
        optional_text(events.iter().map(|e| e.company_name.as_deref()), n),
        optional_text(events.iter().map(|e| e.file_version.as_deref()), n),
        optional_text(events.iter().map(|e| e.file_description.as_deref()), n),
        optional_text(events.iter().map(|e| e.internal_name.as_deref()), n),
        optional_text(events.iter().map(|e| e.certificate_payload.as_deref()), n),
        optional_text(events.iter().map(|e| e.justification.as_deref()), n),
        Arc::new(result.finish()),
        text(events.iter().map(|e| e.process_type.as_str()), n),
        optional_text(events.iter().map(|e| e.parent_process_name.as_deref()), n),
        optional_text(events.iter().map(|e| e.rule_id.as_deref()), n),
        optional_text(events.iter().map(|e| e.policy_id.as_deref()), n),
        optional_text(events.iter().map(|e| e.policy_name.as_deref()), n),
        Arc::new(system.finish()),
        repeated(&ctx.batch_id, n),
        optional_text(std::iter::repeat_n(ctx.agent_version.as_deref(), n), n),
        repeated(ctx.effective_level.as_str(), n),
        timestamps(std::iter::repeat_n(ctx.ingested_at, n), n),
    ];
    RecordBatch::try_new(elevation_schema(), columns).expect("columns follow the schema")
}

/// The rows of `diagnostics` for one batch's accepted events.
pub fn diagnostic_rows(ctx: &BatchContext, events: &[DiagnosticEvent]) -> RecordBatch {
    let n = events.len();
    let mut event_date = Date32Builder::with_capacity(n);
    let mut event_id = Int32Builder::with_capacity(n);
    let mut error_code = Int64Builder::with_capacity(n);
    for e in events {
        event_date.append_value(date32(&e.event_date_time));
        event_id.append_value(e.event_id);
        error_code.append_value(e.error_code);
    }
    let columns: Vec<ArrayRef> = vec![
        repeated(&ctx.tenant, n),
        Arc::new(event_date.finish()),
        repeated(&ctx.device_id, n),
        repeated(&ctx.device_name, n),
        timestamps(events.iter().map(|e| e.event_date_time), n),
        Arc::new(event_id.finish()),
        text(events.iter().map(|e| &e.event_name), n),
        Arc::new(error_code.finish()),
        optional_text(events.iter().map(|e| e.policy_type.as_deref()), n),
        optional_text(events.iter().map(|e| e.policy_id.as_deref()), n),
        optional_text(events.iter().map(|e| e.policy_version.as_deref()), n),
        repeated(ctx.declared_level.as_str(), n),
        repeated(ctx.effective_level.as_str(), n),
        repeated(&ctx.batch_id, n),
        optional_text(std::iter::repeat_n(ctx.agent_version.as_deref(), n), n),
        timestamps(std::iter::repeat_n(ctx.ingested_at, n), n),
    ];
    RecordBatch::try_new(diagnostic_schema(), columns).expect("columns follow the schema")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date32_counts_days_from_the_unix_epoch() {
        let at = DateTime::parse_from_rfc3339("1970-01-02T23:59:59Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(date32(&at), 1);
        assert_eq!(date_of_date32(20_412), NaiveDate::from_ymd_opt(2025, 11, 20).unwrap());
    }

    /// The rows wait in the landing backlog, which is bounded by their capacity: the text
    /// columns hold their values and offsets, not room to grow. With builders that guessed 16
    /// bytes a value and doubled, these rows took 1.9 times what they take now (450 against 239 kB).
    #[test]
    fn text_columns_hold_no_room_to_grow() {
        let event: ElevationEvent = serde_json::from_value(serde_json::json!({
            "id": "3f2c5a1e-0b7d-4c1a-9e8f-1a2b3c4d5e6f",
            "eventDateTime": "2026-11-20T10:00:00Z",
            "elevationType": "unmanagedElevation",
            "filePath": "C:\\Program Files\\Contoso Tools\\Installer\\setup-contoso-tools-x64.exe",
            "hash": "A".repeat(64),
            "upn": "ada.lovelace@contoso.onmicrosoft.com",
            "userType": "azureAd",
            "result": 0,
            "processType": "parent",
            "systemInitiatedElevation": false,
        }))
        .unwrap();
        let ctx = BatchContext {
            tenant: "contoso".into(),
            device_id: "0f8fad5b-d9cb-469f-a165-70867728950e".into(),
            device_name: "DESKTOP-ADA-0001".into(),
            agent_version: Some("10.0.26100.1".into()),
            batch_id: "7c9e6679-7425-40de-944b-e07fc1f90ae7".into(),
            declared_level: ReportingLevel::All,
            effective_level: ReportingLevel::All,
            ingested_at: event.event_date_time,
        };
        let n = 500;
        let rows = elevation_rows(&ctx, &vec![event.clone(); n]);
        let text_bytes_per_row: usize = [
            ctx.tenant.len(),
            event.id.len(),
            event.elevation_type.as_str().len(),
            ctx.device_id.len(),
            ctx.device_name.len(),
            event.upn.len(),
            event.user_type.as_str().len(),
            event.file_path.len(),
            event.hash.len(),
            event.process_type.as_str().len(),
            ctx.batch_id.len(),
            ctx.agent_version.as_deref().unwrap_or_default().len(),
            ctx.effective_level.as_str().len(),
        ]
        .iter()
        .sum();
        let columns = rows.num_columns();
        // Per row: the text, a 4-byte offset and a validity bit per column, 25 bytes of dates,
        // times, numbers and flags; per column, 64-byte rounding of each buffer and the array's
        // own header.
        let bound = n * (text_bytes_per_row + columns * 5 + 32) + columns * 4 * 192;
        let held = rows.get_array_memory_size();
        assert!(held <= bound, "{n} rows hold {held} bytes; their data bound is {bound}");
    }
}
