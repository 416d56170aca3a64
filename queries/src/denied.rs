//! `denied`: denied and failed elevations per user, device, hash and type, merged in plain
//! Rust from `daily_denied` (whole current or closed days) and the raw rows of the other days.

use std::collections::HashMap;

use chrono::DateTime;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type, TimeUnit, TimestampMicrosecondType};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::Expr;
use datafusion::prelude::{SessionContext, ident};
use foldhash::fast::RandomState;
use warehouse::Table;

use crate::QueryError;
use crate::days::{Split, rollup_and_raw};
use crate::reports::{Cell, Report};
use crate::request::{Filters, ReportRequest};

/// One row of `denied`: its keys (user, device id, device name, hash, type) as one byte
/// string (see [`Denials::key_fields`]), the file's details (greatest values, as numbers in
/// [`Denials::names`]), the count and the last one (microseconds). Keys and details are
/// stored once per distinct value, not once per row: `denied` can have hundreds of thousands.
struct Denial {
    key: Box<[u8]>,
    names: [u32; 6],
    count: i64,
    last: i64,
}

/// No value (a null detail).
const NO_NAME: u32 = u32::MAX;

/// The rows of `denied` being merged.
#[derive(Default)]
struct Denials {
    index: HashMap<Box<[u8]>, usize, RandomState>,
    rows: Vec<Denial>,
    /// Per detail column, its distinct values; a row holds their positions.
    names: [Vec<Box<str>>; 6],
    name_ids: [HashMap<Box<str>, u32, RandomState>; 6],
}

impl Denials {
    /// The five keys of a row, from its length-prefixed byte string.
    fn key_fields(key: &[u8]) -> [&str; 5] {
        let mut rest = key;
        [(); 5].map(|_| {
            let (len, tail) = rest.split_at(4);
            let len = u32::from_le_bytes(len.try_into().expect("four bytes")) as usize;
            let (field, tail) = tail.split_at(len);
            rest = tail;
            std::str::from_utf8(field).expect("keys are built from strings")
        })
    }

    fn name_id(&mut self, column: usize, value: &str) -> u32 {
        if let Some(&id) = self.name_ids[column].get(value) {
            return id;
        }
        let id = self.names[column].len() as u32;
        self.names[column].push(value.into());
        self.name_ids[column].insert(value.into(), id);
        id
    }

    fn name(&self, column: usize, id: u32) -> Option<&str> {
        (id != NO_NAME).then(|| &*self.names[column][id as usize])
    }

    /// Adds rows of (keys, details, `elevations`, `lastSeen`) — from `daily_denied` or
    /// aggregated from raw rows — merging rows of the same keys (sums, greatest values).
    fn add(&mut self, batches: &[RecordBatch]) -> Result<(), QueryError> {
        let mut key = Vec::new();
        for batch in batches {
            let text = |i: usize| -> Result<_, QueryError> {
                Ok(cast(batch.column(i), &DataType::Utf8View)
                    .map_err(DataFusionError::from)?
                    .as_string_view()
                    .clone())
            };
            let keys = [text(0)?, text(1)?, text(2)?, text(3)?, text(4)?];
            let details = [text(5)?, text(6)?, text(7)?, text(8)?, text(9)?, text(10)?];
            let counts = cast(batch.column(11), &DataType::Int64).map_err(DataFusionError::from)?;
            let counts = counts.as_primitive::<Int64Type>();
            let lasts = cast(batch.column(12), &DataType::Timestamp(TimeUnit::Microsecond, None))
                .map_err(DataFusionError::from)?;
            let lasts = lasts.as_primitive::<TimestampMicrosecondType>();
            for row in 0..batch.num_rows() {
                // A lookup builds the key in a reused buffer and allocates nothing.
                key.clear();
                for column in &keys {
                    warehouse::suggestion_days::push_key_part(&mut key, Some(column.value(row)));
                }
                let group = match self.index.get(&key[..]) {
                    Some(&group) => group,
                    None => {
                        let group = self.rows.len();
                        self.index.insert(key.as_slice().into(), group);
                        self.rows.push(Denial {
                            key: key.as_slice().into(),
                            names: [NO_NAME; 6],
                            count: 0,
                            last: i64::MIN,
                        });
                        group
                    }
                };
                for (column, values) in details.iter().enumerate() {
                    if values.is_null(row) {
                        continue;
                    }
                    let value = values.value(row);
                    let best = self.rows[group].names[column];
                    if self.name(column, best).is_none_or(|b| value > b) {
                        let id = self.name_id(column, value);
                        self.rows[group].names[column] = id;
                    }
                }
                let denial = &mut self.rows[group];
                denial.count += counts.value(row);
                denial.last = denial.last.max(lasts.value(row));
            }
        }
        Ok(())
    }
}

/// Denied (`deniedElevation`) and failed (`result` not 0) elevations per user, device, hash
/// and type, most first. Whole days come from `daily_denied` while current (unless filtered by
/// more than its keys), the rest from the raw rows; rows of several days merge by summing the
/// counts and keeping the greatest details and the last time, which is the raw rows' answer.
pub(crate) async fn denied(
    ctx: &SessionContext,
    raw: &warehouse::deltalake::DeltaTable,
    request: &ReportRequest,
    report: &mut Report,
) -> Result<(), QueryError> {
    use warehouse::rollups::{DENIED_DETAILS, DENIED_KEYS, denials};
    report.columns = [
        "outcome",
        "upn",
        "deviceId",
        "deviceName",
        "fileName",
        "productName",
        "fileDescription",
        "internalName",
        "fileVersion",
        "hash",
        "companyName",
        "elevationType",
        "count",
        "lastSeen",
    ]
    .map(String::from)
    .to_vec();
    let answerable = Filters {
        elevation_type: request.filters.elevation_type,
        upn: request.filters.upn.clone(),
        device_name: request.filters.device_name.clone(),
        hash: request.filters.hash.clone(),
        ..Filters::default()
    };
    let Split { rolled, raw: raw_rows } =
        rollup_and_raw(ctx, raw, Table::DailyDenied, request, answerable, &mut report.coverage).await?;
    // Raw days and rollup rows alike: keys, details, `elevations`, `lastSeen`.
    let columns: Vec<Expr> = DENIED_KEYS
        .iter()
        .chain(&DENIED_DETAILS)
        .chain(&["elevations", "lastSeen"])
        .map(|c| ident(*c))
        .collect();
    let raw_groups = denials(raw_rows, &[])?.select(columns.clone())?;
    let mut merged = Denials::default();
    merged.add(&raw_groups.collect().await?)?;
    if let Some(rolled) = rolled {
        merged.add(&rolled.select(columns)?.collect().await?)?;
    }
    let Denials { rows: found, names, .. } = merged;
    let outcome = |key: &[&str; 5]| {
        if key[4] == "deniedElevation" {
            "denied"
        } else {
            "failed"
        }
    };
    // Each row's keys decoded once, not in every comparison of the ordering.
    let mut ranked: Vec<(&Denial, [&str; 5])> = found.iter().map(|d| (d, Denials::key_fields(&d.key))).collect();
    // Most elevations first; then user, device name, hash and outcome (then device id and
    // type, so the order is total and every page is the same on every call).
    let order = |(a, ka): &(&Denial, [&str; 5]), (b, kb): &(&Denial, [&str; 5])| {
        b.count
            .cmp(&a.count)
            .then_with(|| ka[0].cmp(kb[0]))
            .then_with(|| ka[2].cmp(kb[2]))
            .then_with(|| ka[3].cmp(kb[3]))
            .then_with(|| outcome(ka).cmp(outcome(kb)))
            .then_with(|| ka[1].cmp(kb[1]))
            .then_with(|| ka[4].cmp(kb[4]))
    };
    // A page needs only its first offset + limit rows in order, not all of them.
    if let Some(end) = request.limit.map(|limit| request.offset.saturating_add(limit))
        && end < ranked.len()
    {
        ranked.select_nth_unstable_by(end, order);
        ranked.truncate(end);
    }
    ranked.sort_unstable_by(order);
    let text = |s: &str| Cell::Text(s.to_owned());
    report.rows = request
        .page(ranked)
        .map(|(d, key)| {
            let [upn, device_id, device_name, hash, elevation_type] = key;
            let name = |column: usize| {
                let id = d.names[column];
                if id == NO_NAME {
                    Cell::Null
                } else {
                    text(&names[column][id as usize])
                }
            };
            vec![
                text(outcome(&key)),
                text(upn),
                text(device_id),
                text(device_name),
                name(0),
                name(1),
                name(2),
                name(3),
                name(4),
                text(hash),
                name(5),
                text(elevation_type),
                Cell::Int(d.count),
                DateTime::from_timestamp_micros(d.last).map_or(Cell::Null, Cell::Time),
            ]
        })
        .collect();
    Ok(())
}
