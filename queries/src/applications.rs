//! `by-application` and `by-publisher` over windows whose whole days `daily_suggestions`
//! answers: its group rows (a few thousand a day, each with its users and devices as Roaring
//! bitmaps) instead of every raw elevation. The days it does not answer are aggregated from
//! the raw rows at the grain of the rollup's rows, their users and devices numbered as stored,
//! and both merge the same way: counts add, extremes keep the least or greatest, sets unite.
//! Windows without such days keep the raw path (`crate::distinct`); both give one answer,
//! which `tests/` check against DuckDB and the simulator's ground truth.

use std::collections::HashMap;

use chrono::DateTime;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::error::ArrowError;
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use datafusion::functions_aggregate::expr_fn::{bool_and, count, max, min};
use datafusion::prelude::{SessionContext, ident, lit};
use foldhash::fast::RandomState;
use futures::StreamExt;
use roaring::{MultiOps, RoaringBitmap};
use warehouse::columns;
use warehouse::suggestion_days::{self as days, ValueNumbers};
use warehouse::user_sets::UserNumbers;

use crate::QueryError;
use crate::reports::Cell;
use crate::request::ReportRequest;

/// Which report: what the rows are grouped by, besides `elevationType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grouping {
    /// `hash`: one row per file and type (`by-application`).
    Application,
    /// `companyName`: one row per publisher and type (`by-publisher`).
    Publisher,
}

/// The columns of `by-application`, in order.
pub(crate) const APPLICATION_COLUMNS: [&str; 12] = [
    "internalName",
    "fileName",
    "fileVersion",
    "hash",
    "companyName",
    "elevationType",
    "count",
    "users",
    "devices",
    "firstSeen",
    "lastSeen",
    "systemInitiated",
];

/// The columns of `by-publisher`, in order.
pub(crate) const PUBLISHER_COLUMNS: [&str; 5] = ["companyName", "elevationType", "count", "users", "devices"];

/// One output row's elevations, gathered from any number of rollup rows and raw aggregates.
#[derive(Debug, Default)]
struct Totals {
    file_name: Option<String>,
    internal_name: Option<String>,
    file_version: Option<String>,
    company_name: Option<String>,
    elevations: i64,
    first: Option<i64>,
    last: Option<i64>,
    /// `bool_and` of `systemInitiatedElevation`: `None` until a part knows it.
    system_initiated: Option<bool>,
    /// The parts' sets, united once at the end (one pass over many bitmaps is far cheaper
    /// than uniting them one by one).
    users: Vec<RoaringBitmap>,
    devices: Vec<RoaringBitmap>,
}

/// One part: a rollup row or a row of the raw aggregate.
struct Part<'a> {
    hash: Option<&'a str>,
    company_name: Option<&'a str>,
    file_name: Option<&'a str>,
    internal_name: Option<&'a str>,
    file_version: Option<&'a str>,
    elevations: i64,
    first: i64,
    last: i64,
    system_initiated: Option<bool>,
    users: RoaringBitmap,
    devices: RoaringBitmap,
}

fn keep_greatest(slot: &mut Option<String>, new: Option<&str>) {
    if let Some(new) = new
        && slot.as_deref().is_none_or(|old| new > old)
    {
        *slot = Some(new.to_owned());
    }
}

impl Totals {
    fn add(&mut self, part: Part<'_>) {
        keep_greatest(&mut self.file_name, part.file_name);
        keep_greatest(&mut self.internal_name, part.internal_name);
        keep_greatest(&mut self.file_version, part.file_version);
        keep_greatest(&mut self.company_name, part.company_name);
        self.elevations += part.elevations;
        self.first = Some(self.first.map_or(part.first, |f| f.min(part.first)));
        self.last = Some(self.last.map_or(part.last, |l| l.max(part.last)));
        self.system_initiated = days::both(self.system_initiated, part.system_initiated);
        self.users.push(part.users);
        self.devices.push(part.devices);
    }
}

/// The report's rows so far, by (grouping value, `elevationType`).
struct Merge {
    grouping: Grouping,
    rows: HashMap<(Option<String>, String), Totals, RandomState>,
}

impl Merge {
    fn add(&mut self, elevation_type: &str, part: Part<'_>) {
        let value = match self.grouping {
            Grouping::Application => part.hash,
            Grouping::Publisher => part.company_name,
        };
        let key = (value.map(str::to_owned), elevation_type.to_owned());
        self.rows.entry(key).or_default().add(part);
    }

    /// Adds the group rows of `daily_suggestions` batches.
    fn add_rollup(&mut self, batches: &[RecordBatch]) -> Result<(), ArrowError> {
        for batch in batches {
            let columns = PartColumns::of(batch)?;
            let users = cast(columns::column(batch, "users")?, &DataType::Binary)?;
            let devices = cast(columns::column(batch, "devices")?, &DataType::Binary)?;
            for row in 0..batch.num_rows() {
                let users = columns::bitmap(users.as_binary::<i32>(), row)?;
                let devices = columns::bitmap(devices.as_binary::<i32>(), row)?;
                let (elevation_type, part) = columns.part(row, users, devices);
                self.add(elevation_type, part);
            }
        }
        Ok(())
    }

    /// Adds raw elevations `events` at the grain of `daily_suggestions`' rows as these reports
    /// need them (per hash, type and publisher), numbering users and devices as stored
    /// (values the rollups have not numbered get numbers past those, for this answer only).
    /// DataFusion aggregated the `totals` ([`raw_totals`]); the users and devices are folded
    /// into one bitmap per group from the rows as they stream by, so memory grows with the
    /// groups and their distinct values, never with the rows (`array_agg(DISTINCT)` held
    /// every value as a `ScalarValue`, outside any bound).
    async fn add_raw(
        &mut self,
        events: DataFrame,
        totals: &[RecordBatch],
        users: &mut UserNumbers,
        values: &mut ValueNumbers,
    ) -> Result<(), DataFusionError> {
        let mut sets: HashMap<Box<[u8]>, [RoaringBitmap; 2], RandomState> = HashMap::default();
        let mut key = Vec::new();
        let mut rows = events
            .select(
                ["hash", "elevationType", "companyName", "upn", "deviceId"]
                    .map(ident)
                    .to_vec(),
            )?
            .execute_stream()
            .await?;
        while let Some(batch) = rows.next().await {
            let batch = batch?;
            let columns = ["hash", "elevationType", "companyName", "upn", "deviceId"].map(|c| columns::text(&batch, c));
            let [a, b, c, d, e] = columns;
            let columns = [a?, b?, c?, d?, e?];
            let columns = columns.each_ref().map(|c| c.as_string::<i32>());
            let value = |i: usize, row: usize| columns[i].is_valid(row).then(|| columns[i].value(row));
            for row in 0..batch.num_rows() {
                group_key(&mut key, [value(0, row), value(1, row), value(2, row)]);
                if !sets.contains_key(&key[..]) {
                    sets.insert(key.as_slice().into(), Default::default());
                }
                let [group_users, group_devices] = sets.get_mut(&key[..]).expect("inserted above");
                if let Some(upn) = value(3, row) {
                    group_users.insert(users.number(upn));
                }
                if let Some(device) = value(4, row) {
                    group_devices.insert(values.number(0, device));
                }
            }
        }
        for batch in totals {
            let columns = PartColumns::of(batch)?;
            for row in 0..batch.num_rows() {
                let text = |i: usize| columns.text(i, row);
                group_key(&mut key, [text(0), text(1), text(2)]);
                let [group_users, group_devices] = sets.remove(&key[..]).unwrap_or_default();
                let (elevation_type, part) = columns.part(row, group_users, group_devices);
                self.add(elevation_type, part);
            }
        }
        Ok(())
    }

    /// The rows in the report's order: most elevations first, then by file name, hash and
    /// type (`by-application`) or publisher and type (`by-publisher`), nulls first, as the
    /// raw path's DataFusion sort orders them.
    fn rows(self) -> Vec<Vec<Cell>> {
        let text = |value: Option<String>| value.map_or(Cell::Null, Cell::Text);
        let time = |micros: Option<i64>| {
            micros
                .and_then(DateTime::from_timestamp_micros)
                .map_or(Cell::Null, Cell::Time)
        };
        let mut merged: Vec<((Option<String>, String), Totals)> = self.rows.into_iter().collect();
        match self.grouping {
            Grouping::Application => merged.sort_by(|((hash_a, type_a), a), ((hash_b, type_b), b)| {
                b.elevations
                    .cmp(&a.elevations)
                    .then_with(|| a.file_name.cmp(&b.file_name))
                    .then_with(|| hash_a.cmp(hash_b))
                    .then_with(|| type_a.cmp(type_b))
            }),
            Grouping::Publisher => merged.sort_by(|((company_a, type_a), a), ((company_b, type_b), b)| {
                b.elevations
                    .cmp(&a.elevations)
                    .then_with(|| company_a.cmp(company_b))
                    .then_with(|| type_a.cmp(type_b))
            }),
        }
        merged
            .into_iter()
            .map(|((value, elevation_type), totals)| {
                let count = |sets: Vec<RoaringBitmap>| Cell::Int(sets.into_iter().union().len() as i64);
                let (users, devices) = (count(totals.users), count(totals.devices));
                match self.grouping {
                    Grouping::Application => vec![
                        text(totals.internal_name),
                        text(totals.file_name),
                        text(totals.file_version),
                        text(value),
                        text(totals.company_name),
                        Cell::Text(elevation_type),
                        Cell::Int(totals.elevations),
                        users,
                        devices,
                        time(totals.first),
                        time(totals.last),
                        totals.system_initiated.map_or(Cell::Null, Cell::Bool),
                    ],
                    Grouping::Publisher => vec![
                        text(value),
                        Cell::Text(elevation_type),
                        Cell::Int(totals.elevations),
                        users,
                        devices,
                    ],
                }
            })
            .collect()
    }
}

/// The text columns of a part, in [`PartColumns::part`]'s order.
const PART_TEXT: [&str; 6] = [
    "hash",
    "elevationType",
    "companyName",
    "fileName",
    "internalName",
    "fileVersion",
];

/// The columns a part is read from, in a rollup batch or a raw aggregate's batch.
struct PartColumns {
    text: [datafusion::arrow::array::ArrayRef; 6],
    elevations: datafusion::arrow::array::Int64Array,
    first: datafusion::arrow::array::TimestampMicrosecondArray,
    last: datafusion::arrow::array::TimestampMicrosecondArray,
    system_initiated: datafusion::arrow::array::ArrayRef,
}

impl PartColumns {
    fn of(batch: &RecordBatch) -> Result<Self, ArrowError> {
        let text = PART_TEXT.map(|name| columns::text(batch, name));
        let [a, b, c, d, e, f] = text;
        Ok(PartColumns {
            text: [a?, b?, c?, d?, e?, f?],
            elevations: columns::int64(batch, "elevations")?,
            first: columns::micros(batch, "first")?,
            last: columns::micros(batch, "last")?,
            system_initiated: cast(columns::column(batch, "systemInitiated")?, &DataType::Boolean)?,
        })
    }

    /// Text column `i` (in [`PART_TEXT`]'s order) of `row`.
    fn text(&self, i: usize, row: usize) -> Option<&str> {
        let values = self.text[i].as_string::<i32>();
        values.is_valid(row).then(|| values.value(row))
    }

    fn part(&self, row: usize, users: RoaringBitmap, devices: RoaringBitmap) -> (&str, Part<'_>) {
        let text = |i: usize| self.text(i, row);
        let system = self.system_initiated.as_boolean();
        let part = Part {
            hash: text(0),
            company_name: text(2),
            file_name: text(3),
            internal_name: text(4),
            file_version: text(5),
            elevations: self.elevations.value(row),
            first: self.first.value(row),
            last: self.last.value(row),
            system_initiated: system.is_valid(row).then(|| system.value(row)),
            users,
            devices,
        };
        (text(1).unwrap_or_default(), part)
    }
}

/// The totals of raw elevations per hash, type and publisher (the first three of
/// [`PART_TEXT`]): counts, extremes and the greatest names; [`Merge::add_raw`] adds the sets.
fn raw_totals(events: DataFrame) -> Result<DataFrame, DataFusionError> {
    events.aggregate(
        vec![ident("hash"), ident("elevationType"), ident("companyName")],
        vec![
            max(ident("fileName")).alias("fileName"),
            max(ident("internalName")).alias("internalName"),
            max(ident("fileVersion")).alias("fileVersion"),
            count(lit(1)).alias("elevations"),
            min(ident("eventDateTime")).alias("first"),
            max(ident("eventDateTime")).alias("last"),
            bool_and(ident("systemInitiatedElevation")).alias("systemInitiated"),
        ],
    )
}

/// The key of a raw group: hash, type and publisher.
fn group_key(out: &mut Vec<u8>, parts: [Option<&str>; 3]) {
    out.clear();
    for part in parts {
        days::push_key_part(out, part);
    }
}

/// The report's rows (every one, in the report's order) from `rolled`, the group rows of
/// `daily_suggestions` for the days it answers, and `raw`, the raw elevations of every other
/// day of the window.
pub(crate) async fn rows(
    ctx: &SessionContext,
    request: &ReportRequest,
    grouping: Grouping,
    rolled: DataFrame,
    raw: DataFrame,
) -> Result<Vec<Vec<Cell>>, QueryError> {
    let mut merge = Merge {
        grouping,
        rows: HashMap::default(),
    };
    let mut wanted = PART_TEXT.to_vec();
    wanted.extend(["elevations", "first", "last", "systemInitiated", "users", "devices"]);
    let rolled = rolled
        .filter(ident("userNumber").is_null())?
        .select(wanted.into_iter().map(ident).collect::<Vec<_>>())?
        .collect()
        .await?;
    merge.add_rollup(&rolled).map_err(DataFusionError::from)?;
    let totals = raw_totals(raw.clone())?.collect().await?;
    // Numbers are read only when some day is counted from raw rows.
    if totals.iter().any(|b| b.num_rows() > 0) {
        let (mut users, mut values) = crate::days::stored_numbers(ctx, &request.tenant).await?;
        merge.add_raw(raw, &totals, &mut users, &mut values).await?;
    }
    Ok(merge.rows())
}
