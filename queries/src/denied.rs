//! `denied`: denied and failed elevations per user, device, hash and type, merged in plain
//! Rust from `daily_denied` (whole current or closed days) and the raw rows of the other days.
//!
//! `denied` can have hundreds of thousands of rows, most of them seen once, so the merge is
//! built for that: each key column's values are numbered (a few thousand users, devices and
//! files), a row is five numbers, the order compares numbers, and the file's details are read
//! only for the rows of the page asked for.

use std::collections::{BTreeSet, HashMap};

use chrono::DateTime;
use datafusion::arrow::array::{Array, AsArray, RecordBatch, StringViewArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type, TimeUnit, TimestampMicrosecondType};
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::Expr;
use datafusion::prelude::{SessionContext, ident, lit};
use foldhash::fast::RandomState;
use futures::StreamExt;
use warehouse::Table;
use warehouse::rollups::{DENIED_DETAILS, DENIED_KEYS, denials};

use crate::QueryError;
use crate::days::{Split, rollup_and_raw};
use crate::numbering::{Numbering, as_view};
use crate::reports::{Cell, Report};
use crate::request::{Filters, ReportRequest};

/// Where each key is in [`DENIED_KEYS`].
const UPN: usize = 0;
const DEVICE_ID: usize = 1;
const DEVICE_NAME: usize = 2;
const HASH: usize = 3;
const TYPE: usize = 4;

/// A row's keys: each key's number in its column's [`Numbering`]. (Not numbered by string
/// view: a rollup file holds a day of thousands of users, so few views repeat in a batch.)
type Keys = [u32; 5];

/// One row of `denied` being counted: its keys, the count and the last one (microseconds).
struct Denial {
    keys: Keys,
    count: i64,
    last: i64,
}

/// A column as string views (rollup and raw rows may differ in string type).
fn strings(batch: &RecordBatch, column: usize) -> Result<StringViewArray, QueryError> {
    Ok(as_view(batch.column(column))?)
}

/// The five key columns of a batch whose first five columns are [`DENIED_KEYS`].
fn key_columns(batch: &RecordBatch) -> Result<[StringViewArray; 5], QueryError> {
    Ok([
        strings(batch, UPN)?,
        strings(batch, DEVICE_ID)?,
        strings(batch, DEVICE_NAME)?,
        strings(batch, HASH)?,
        strings(batch, TYPE)?,
    ])
}

/// The rows of `denied` being counted.
#[derive(Default)]
struct Denials {
    values: [Numbering; 5],
    index: HashMap<Keys, u32, RandomState>,
    rows: Vec<Denial>,
}

impl Denials {
    /// Adds rows of ([`DENIED_KEYS`], `elevations`, `lastSeen`) — from `daily_denied` or
    /// aggregated from raw rows — merging rows of the same keys (sums, last time).
    fn count(&mut self, batch: &RecordBatch) -> Result<(), QueryError> {
        let columns = key_columns(batch)?;
        let counts = cast(batch.column(5), &DataType::Int64).map_err(DataFusionError::from)?;
        let counts = counts.as_primitive::<Int64Type>();
        let lasts =
            cast(batch.column(6), &DataType::Timestamp(TimeUnit::Microsecond, None)).map_err(DataFusionError::from)?;
        let lasts = lasts.as_primitive::<TimestampMicrosecondType>();
        self.index.reserve(batch.num_rows());
        for row in 0..batch.num_rows() {
            let keys: Keys = std::array::from_fn(|key| self.values[key].number(columns[key].value(row)));
            let next = self.rows.len() as u32;
            let group = *self.index.entry(keys).or_insert(next) as usize;
            if group == self.rows.len() {
                self.rows.push(Denial {
                    keys,
                    count: 0,
                    last: i64::MIN,
                });
            }
            let denial = &mut self.rows[group];
            denial.count += counts.value(row);
            denial.last = denial.last.max(lasts.value(row));
        }
        Ok(())
    }

    /// Adds a stream of such rows as DataFusion produces them, so counting overlaps the scan.
    async fn count_all(&mut self, rows: DataFrame) -> Result<(), QueryError> {
        let mut batches = rows.execute_stream().await?;
        while let Some(batch) = batches.next().await {
            self.count(&batch?)?;
        }
        Ok(())
    }

    /// A row's keys as text.
    fn text(&self, keys: &Keys) -> [&str; 5] {
        std::array::from_fn(|key| &*self.values[key].values[keys[key] as usize])
    }

    /// The keys of row `row` of `columns`, if every value was counted.
    fn known(&self, columns: &[StringViewArray; 5], row: usize) -> Option<Keys> {
        let mut keys = [0; 5];
        for (key, column) in columns.iter().enumerate() {
            keys[key] = *self.values[key].ids.get(column.value(row))?;
        }
        Some(keys)
    }
}

/// The file's details of the rows on a page: per row, the greatest value of each of
/// [`DENIED_DETAILS`] over the input rows merged into it. Computed for the page's rows only,
/// once the page is chosen: for every input row, six string comparisons and lookups were
/// half of the report's time.
struct Details<'a> {
    denials: &'a Denials,
    /// Position on the page of each row's keys.
    on_page: HashMap<Keys, usize, RandomState>,
    greatest: Vec<[Option<String>; 6]>,
}

impl<'a> Details<'a> {
    fn for_page(denials: &'a Denials, page: impl IntoIterator<Item = Keys>) -> Self {
        let on_page: HashMap<_, _, _> = page.into_iter().enumerate().map(|(at, keys)| (keys, at)).collect();
        let greatest = vec![Default::default(); on_page.len()];
        Details {
            denials,
            on_page,
            greatest,
        }
    }

    /// Adds rows of ([`DENIED_KEYS`], [`DENIED_DETAILS`]); rows not on the page are skipped.
    fn add(&mut self, batch: &RecordBatch) -> Result<(), QueryError> {
        let keys = key_columns(batch)?;
        let details = [5, 6, 7, 8, 9, 10].map(|column| strings(batch, column));
        let details = details.into_iter().collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            let Some(&at) = self.denials.known(&keys, row).and_then(|keys| self.on_page.get(&keys)) else {
                continue;
            };
            for (best, values) in self.greatest[at].iter_mut().zip(&details) {
                if values.is_null(row) {
                    continue;
                }
                let value = values.value(row);
                if best.as_deref().is_none_or(|b| value > b) {
                    *best = Some(value.to_owned());
                }
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
    let names = |columns: &[&[&str]]| -> Vec<Expr> { columns.concat().into_iter().map(ident).collect() };
    // The raw days are aggregated once, with their details: keys, details, `elevations`,
    // `lastSeen`. The rollup is read twice: every row's keys and counts, then the details of
    // the page's rows.
    let raw_groups = denials(raw_rows, &[])?
        .select(names(&[&DENIED_KEYS, &DENIED_DETAILS, &["elevations", "lastSeen"]]))?
        .collect()
        .await?;
    let mut counted = Denials::default();
    for batch in &raw_groups {
        counted.count(&batch.project(&[0, 1, 2, 3, 4, 11, 12]).map_err(DataFusionError::from)?)?;
    }
    if let Some(rolled) = &rolled {
        let rows = rolled
            .clone()
            .select(names(&[&DENIED_KEYS, &["elevations", "lastSeen"]]))?;
        counted.count_all(rows).await?;
    }
    // Most elevations first; then user, device name, hash and outcome (then device id and
    // type, so the order is total and every page is the same on every call). Values are
    // compared by their places in sorted order; "denied" sorts before "failed".
    let places = counted.values.each_ref().map(|values| values.places());
    let denied_type = counted.values[TYPE].ids.get("deniedElevation").copied();
    let order = |d: &Denial| {
        let place = |key: usize| places[key][d.keys[key] as usize];
        let outcome = Some(d.keys[TYPE]) != denied_type;
        (
            std::cmp::Reverse(d.count),
            place(UPN),
            place(DEVICE_NAME),
            place(HASH),
            outcome,
            place(DEVICE_ID),
            place(TYPE),
        )
    };
    let mut ranked: Vec<&Denial> = counted.rows.iter().collect();
    // A page needs only its first offset + limit rows in order, not all of them.
    if let Some(end) = request.limit.map(|limit| request.offset.saturating_add(limit))
        && end < ranked.len()
    {
        ranked.select_nth_unstable_by_key(end, |d| order(d));
        ranked.truncate(end);
    }
    ranked.sort_unstable_by_key(|d| order(d));
    let page: Vec<&Denial> = request.page(ranked).collect();
    let mut details = Details::for_page(&counted, page.iter().map(|d| d.keys));
    for batch in &raw_groups {
        details.add(
            &batch
                .project(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
                .map_err(DataFusionError::from)?,
        )?;
    }
    if let Some(rolled) = rolled
        && !page.is_empty()
    {
        // Only the rows of the page's users and hashes: `IN` lists the Parquet reader applies
        // before it decodes the details.
        let of = |key: usize| -> Vec<Expr> {
            let values: BTreeSet<&str> = page.iter().map(|d| counted.text(&d.keys)[key]).collect();
            values.into_iter().map(lit).collect()
        };
        let rolled = rolled.filter(
            ident("hash")
                .in_list(of(HASH), false)
                .and(ident("upn").in_list(of(UPN), false)),
        )?;
        for batch in rolled
            .select(names(&[&DENIED_KEYS, &DENIED_DETAILS]))?
            .collect()
            .await?
        {
            details.add(&batch)?;
        }
    }
    let text = |s: &str| Cell::Text(s.to_owned());
    report.rows = page
        .into_iter()
        .zip(details.greatest)
        .map(|(d, greatest)| {
            let [upn, device_id, device_name, hash, elevation_type] = counted.text(&d.keys);
            let outcome = if elevation_type == "deniedElevation" {
                "denied"
            } else {
                "failed"
            };
            let [file_name, product_name, description, internal_name, version, company] =
                greatest.map(|value| value.map_or(Cell::Null, Cell::Text));
            vec![
                text(outcome),
                text(upn),
                text(device_id),
                text(device_name),
                file_name,
                product_name,
                description,
                internal_name,
                version,
                text(hash),
                company,
                text(elevation_type),
                Cell::Int(d.count),
                DateTime::from_timestamp_micros(d.last).map_or(Cell::Null, Cell::Time),
            ]
        })
        .collect();
    Ok(())
}
