//! The elevations as the rule-tuning suggestions read them, one day at a time
//! (`daily_suggestions`), and the numbers of the device ids, device names and folders their
//! sets name (`value_numbers`).
//!
//! Suggestions read a window's elevations in fine groups (file, publisher, hash, type, process
//! type, parent, rule, policy, outcome) with the distinct users, devices, device names and
//! folders of each, and each user's unmanaged elevations per file. Counts, first and last, and
//! text minima and maxima merge across days by sum, min and max; distinct sets do not sum but
//! unite, so the rollup keeps them as Roaring bitmaps of numbers that never change (users from
//! `user_numbers`, the rest from `value_numbers`). The same aggregates ([`groups`],
//! [`unmanaged`]) compute a day for the rollup and the days no rollup answers for the reader,
//! and the same merge ([`Groups`], [`Unmanaged`]) unites them, so both paths give one answer.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type, TimestampMicrosecondType};
use arrow::error::ArrowError;
use chrono::NaiveDate;
use deltalake::datafusion::dataframe::DataFrame;
use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::functions_aggregate::expr_fn::{bool_and, count, max, min};
use deltalake::datafusion::prelude::{ident, lit};
use foldhash::fast::RandomState;
use futures::StreamExt;
use roaring::{MultiOps, RoaringBitmap};

use crate::columns::{bitmap, column, int64, micros, text};
use crate::tables::Table;
use crate::user_sets::UserNumbers;

mod unmanaged;
pub use unmanaged::{Span, Unmanaged};

/// `elevationType` of an elevation without EPM (Run as administrator).
pub const UNMANAGED: &str = "unmanagedElevation";

/// What elevations are grouped by, besides the outcome (`failed`). Version-info fields and the
/// certificate follow from the hash, so they are aggregated rather than grouped on; folders are
/// collected per group (a file in each user's profile folder would otherwise make a group per
/// user).
pub const GROUP_COLUMNS: [&str; 8] = [
    "fileName",
    "companyName",
    "hash",
    "elevationType",
    "processType",
    "parentProcessName",
    "ruleId",
    "policyName",
];

/// The version-info fields a group keeps the greatest value of.
pub const MAXIMA: [&str; 4] = ["fileVersion", "productName", "internalName", "fileDescription"];

/// The kinds of `value_numbers`.
pub const VALUE_KINDS: [&str; 3] = ["deviceId", "deviceName", "folder"];

/// The group keys of a row: [`GROUP_COLUMNS`] and whether it failed.
fn group_keys() -> Vec<deltalake::datafusion::prelude::Expr> {
    let mut keys: Vec<_> = GROUP_COLUMNS.iter().map(|c| ident(*c)).collect();
    keys.push(ident("result").not_eq(lit(0i32)).alias("failed"));
    keys
}

/// The elevations of `events` in groups: the count, first and last, version-info maxima,
/// certificate and justification extremes, and whether all were system-initiated. The sets
/// (distinct users, devices, device names, folders) are not here: [`Groups::add_events`]
/// folds them from the rows, because DataFusion's `array_agg(DISTINCT)` holds every distinct
/// value of every group as a `ScalarValue` (hundreds of megabytes for one day of a fleet,
/// more than the maintenance memory pool grants).
pub fn groups(events: DataFrame) -> Result<DataFrame, DataFusionError> {
    let mut aggregates = vec![
        count(lit(1)).alias("elevations"),
        min(ident("eventDateTime")).alias("first"),
        max(ident("eventDateTime")).alias("last"),
    ];
    aggregates.extend(MAXIMA.iter().map(|c| max(ident(*c)).alias(*c)));
    aggregates.extend([
        min(ident("certificatePayload")).alias("certificateLow"),
        max(ident("certificatePayload")).alias("certificateHigh"),
        count(ident("certificatePayload")).alias("signed"),
        min(ident("justification")).alias("justificationLow"),
        max(ident("justification")).alias("justificationHigh"),
        bool_and(ident("systemInitiatedElevation")).alias("systemInitiated"),
    ]);
    events.aggregate(group_keys(), aggregates)
}

/// Each user's unmanaged elevations of `events` per file: the count, first and last (the
/// devices are folded from the rows by [`Unmanaged::add_events`], for the reason [`groups`]
/// gives: a day has tens of thousands of user-file groups).
fn unmanaged_spans(events: DataFrame) -> Result<DataFrame, DataFusionError> {
    events.aggregate(
        vec![ident("upn"), ident("fileName")],
        vec![
            count(lit(1)).alias("elevations"),
            min(ident("eventDateTime")).alias("first"),
            max(ident("eventDateTime")).alias("last"),
        ],
    )
}

/// The folder of a Windows path (`C:\Tools\x.exe` → `C:\Tools`).
pub fn folder_of(path: &str) -> String {
    path.rsplit_once('\\')
        .map_or_else(String::new, |(folder, _)| folder.to_owned())
}

/// The numbers of a tenant's device ids, device names and folders (`value_numbers`).
#[derive(Debug, Default, Clone)]
pub struct ValueNumbers {
    /// By [`VALUE_KINDS`]' order.
    kinds: [UserNumbers; 3],
}

impl ValueNumbers {
    /// Numbers as stored: batches of `value_numbers` (`kind`, `value`, `number`).
    pub fn from_batches(batches: &[RecordBatch]) -> Result<Self, ArrowError> {
        let mut pairs: [Vec<(String, u32)>; 3] = Default::default();
        for batch in batches {
            let kinds = text(batch, "kind")?;
            let values = text(batch, "value")?;
            let numbers = cast(column(batch, "number")?, &DataType::Int64)?;
            let numbers = numbers.as_primitive::<Int64Type>();
            for row in 0..batch.num_rows() {
                let kind = kinds.as_string::<i32>().value(row);
                let Some(slot) = VALUE_KINDS.iter().position(|k| *k == kind) else {
                    continue;
                };
                let number = u32::try_from(numbers.value(row))
                    .map_err(|_| ArrowError::InvalidArgumentError("a value number out of range".into()))?;
                pairs[slot].push((values.as_string::<i32>().value(row).to_owned(), number));
            }
        }
        Ok(ValueNumbers {
            kinds: pairs.map(UserNumbers::from_pairs),
        })
    }

    /// The number of `value` of one kind ([`VALUE_KINDS`]' position), a new one if it has none.
    pub fn number(&mut self, slot: usize, value: &str) -> u32 {
        self.kinds[slot].number(value)
    }

    /// The numbers of one kind ([`VALUE_KINDS`]' position).
    pub fn kind(&self, slot: usize) -> &UserNumbers {
        &self.kinds[slot]
    }

    /// The numbers given since loading (or the last call) as a batch of `value_numbers` in the
    /// partition of `date`, or `None` when there are none.
    pub fn take_new(&mut self, tenant: &str, date: NaiveDate) -> Result<Option<RecordBatch>, ArrowError> {
        let new: Vec<(&str, String, u32)> = VALUE_KINDS
            .iter()
            .zip(&mut self.kinds)
            .flat_map(|(kind, numbers)| numbers.take_new().into_iter().map(|(v, n)| (*kind, v, n)))
            .collect();
        if new.is_empty() {
            return Ok(None);
        }
        let n = new.len();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![tenant; n])),
            Arc::new(Date32Array::from(vec![crate::rows::date32_of_date(date); n])),
            Arc::new(StringArray::from_iter_values(new.iter().map(|(k, _, _)| *k))),
            Arc::new(StringArray::from_iter_values(new.iter().map(|(_, v, _)| v.as_str()))),
            Arc::new(Int64Array::from_iter_values(new.iter().map(|(_, _, n)| i64::from(*n)))),
        ];
        RecordBatch::try_new(Table::ValueNumbers.schema(), columns).map(Some)
    }
}

/// What a group is: its keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    /// `fileName`.
    pub file_name: String,
    /// `companyName`.
    pub company_name: Option<String>,
    /// `hash`.
    pub hash: String,
    /// `elevationType`.
    pub elevation_type: String,
    /// `processType`.
    pub process_type: String,
    /// `parentProcessName`.
    pub parent_process: Option<String>,
    /// `ruleId`.
    pub rule_id: Option<String>,
    /// `policyName`.
    pub policy_name: Option<String>,
    /// `result` was not 0.
    pub failed: bool,
}

/// A group's elevations over one day or several.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupTotals {
    /// Elevations.
    pub elevations: i64,
    /// The first, microseconds since the epoch.
    pub first: i64,
    /// The last.
    pub last: i64,
    /// The greatest of each of [`MAXIMA`].
    pub maxima: [Option<String>; 4],
    /// The least certificate payload.
    pub certificate_low: Option<String>,
    /// The greatest.
    pub certificate_high: Option<String>,
    /// Elevations with a certificate payload.
    pub signed: i64,
    /// The least justification.
    pub justification_low: Option<String>,
    /// The greatest.
    pub justification_high: Option<String>,
    /// Whether every elevation was system-initiated (`bool_and`; `None` when no elevation
    /// said, or a rollup row predates the column).
    pub system_initiated: Option<bool>,
    /// Users (`user_numbers`).
    pub users: RoaringBitmap,
    /// Device ids (`value_numbers` `deviceId`).
    pub devices: RoaringBitmap,
    /// Device names (`deviceName`).
    pub device_names: RoaringBitmap,
    /// Folders of the paths (`folder`).
    pub folders: RoaringBitmap,
}

impl GroupTotals {
    /// Adds another part of the same group: sums, least and greatest values, united sets.
    pub fn merge(&mut self, other: GroupTotals) {
        self.elevations += other.elevations;
        self.first = self.first.min(other.first);
        self.last = self.last.max(other.last);
        for (mine, theirs) in self.maxima.iter_mut().zip(other.maxima) {
            keep(mine, theirs, |new, old| new > old);
        }
        keep(&mut self.certificate_low, other.certificate_low, |new, old| new < old);
        keep(&mut self.certificate_high, other.certificate_high, |new, old| new > old);
        self.signed += other.signed;
        keep(&mut self.justification_low, other.justification_low, |new, old| {
            new < old
        });
        keep(&mut self.justification_high, other.justification_high, |new, old| {
            new > old
        });
        self.system_initiated = both(self.system_initiated, other.system_initiated);
        self.users |= other.users;
        self.devices |= other.devices;
        self.device_names |= other.device_names;
        self.folders |= other.folders;
    }
}

impl GroupTotals {
    /// A group's parts merged: sums, least and greatest values, and the sets united all at
    /// once (a union of many bitmaps in one pass is far cheaper than one by one).
    pub fn union(parts: Vec<GroupTotals>) -> Option<GroupTotals> {
        let mut sets: [Vec<RoaringBitmap>; 4] = Default::default();
        let mut merged: Option<GroupTotals> = None;
        for mut part in parts {
            for (slot, set) in sets.iter_mut().zip([
                &mut part.users,
                &mut part.devices,
                &mut part.device_names,
                &mut part.folders,
            ]) {
                slot.push(std::mem::take(set));
            }
            match &mut merged {
                Some(known) => known.merge(part),
                None => merged = Some(part),
            }
        }
        let mut merged = merged?;
        let [users, devices, device_names, folders] = sets.map(|s| s.into_iter().union());
        (merged.users, merged.devices, merged.device_names, merged.folders) = (users, devices, device_names, folders);
        Some(merged)
    }
}

/// `bool_and` of two parts, either of which may not know.
pub fn both(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a && b),
        (known, None) | (None, known) => known,
    }
}

/// Keeps `new` in `slot` when the slot is empty or `better(new, old)`.
fn keep(slot: &mut Option<String>, new: Option<String>, better: impl Fn(&str, &str) -> bool) {
    if let Some(new) = new
        && slot.as_deref().is_none_or(|old| better(&new, old))
    {
        *slot = Some(new);
    }
}

/// Groups from any number of days and aggregates, each kept in parts until [`Groups::merged`].
#[derive(Debug, Default, Clone)]
pub struct Groups {
    /// Each group's place in `groups`, by its keys as bytes ([`Keys::bytes`]): a row's group
    /// is found without making its [`GroupKey`], which is made once per group.
    places: HashMap<Box<[u8]>, usize, RandomState>,
    groups: Vec<(GroupKey, Vec<GroupTotals>)>,
}

impl Groups {
    /// Adds `totals` to the group of row `row` of `keys`; `bytes` is scratch space.
    fn add(&mut self, keys: &Keys, row: usize, bytes: &mut Vec<u8>, totals: GroupTotals) {
        keys.bytes(row, bytes);
        let place = match self.places.get(&bytes[..]) {
            Some(&place) => place,
            None => {
                self.groups.push((keys.key(row), Vec::new()));
                self.places.insert(bytes.as_slice().into(), self.groups.len() - 1);
                self.groups.len() - 1
            }
        };
        self.groups[place].1.push(totals);
    }

    /// Every group with its parts merged, in no particular order.
    pub fn merged(self) -> Vec<(GroupKey, GroupTotals)> {
        self.groups
            .into_iter()
            .filter_map(|(key, parts)| Some((key, GroupTotals::union(parts)?)))
            .collect()
    }

    /// Adds the groups of raw elevations `events`, numbering their users and values (new
    /// ones get new numbers): [`groups`] computes the totals; the sets are folded here from
    /// the rows as they stream by, one bitmap per group and set, so memory grows with the
    /// groups and their distinct values, never with the rows.
    pub async fn add_events(
        &mut self,
        events: DataFrame,
        users: &mut UserNumbers,
        values: &mut ValueNumbers,
    ) -> Result<(), DataFusionError> {
        let totals = groups(events.clone())?.collect().await?;
        let mut columns = group_keys();
        columns.extend(["upn", "deviceId", "deviceName", "filePath"].map(ident));
        let mut rows = events.select(columns)?.execute_stream().await?;
        let mut sets: HashMap<Box<[u8]>, [RoaringBitmap; 4], RandomState> = HashMap::default();
        let mut key = Vec::new();
        while let Some(batch) = rows.next().await {
            let batch = batch?;
            let keys = Keys::of(&batch)?;
            let sources = [
                text(&batch, "upn")?,
                text(&batch, "deviceId")?,
                text(&batch, "deviceName")?,
                text(&batch, "filePath")?,
            ];
            let sources = sources.each_ref().map(|c| c.as_string::<i32>());
            for row in 0..batch.num_rows() {
                keys.bytes(row, &mut key);
                if !sets.contains_key(&key[..]) {
                    sets.insert(key.as_slice().into(), Default::default());
                }
                let group = sets.get_mut(&key[..]).expect("inserted above");
                let value = |i: usize| sources[i].is_valid(row).then(|| sources[i].value(row));
                if let Some(upn) = value(0) {
                    group[0].insert(users.number(upn));
                }
                if let Some(device) = value(1) {
                    group[1].insert(values.kinds[0].number(device));
                }
                if let Some(name) = value(2) {
                    group[2].insert(values.kinds[1].number(name));
                }
                if let Some(path) = value(3) {
                    group[3].insert(values.kinds[2].number(&folder_of(path)));
                }
            }
        }
        for batch in &totals {
            let keys = Keys::of(batch)?;
            let extremes = Extremes::of(batch)?;
            for row in 0..batch.num_rows() {
                keys.bytes(row, &mut key);
                let mut totals = extremes.totals(row);
                let [users, devices, device_names, folders] = sets.remove(&key[..]).unwrap_or_default();
                (totals.users, totals.devices, totals.device_names, totals.folders) =
                    (users, devices, device_names, folders);
                self.add(&keys, row, &mut key, totals);
            }
        }
        Ok(())
    }

    /// Adds the group rows (no `userNumber`) of batches of `daily_suggestions`.
    pub fn add_rollup(&mut self, batches: &[RecordBatch]) -> Result<(), ArrowError> {
        let mut key = Vec::new();
        for batch in batches {
            let keys = Keys::of(batch)?;
            let extremes = Extremes::of(batch)?;
            let user_numbers = column(batch, "userNumber")?;
            let sets: Vec<ArrayRef> = ["users", "devices", "deviceNames", "folders"]
                .iter()
                .map(|name| cast(column(batch, name)?, &DataType::Binary))
                .collect::<Result<_, _>>()?;
            for row in 0..batch.num_rows() {
                if user_numbers.is_valid(row) {
                    continue;
                }
                let mut totals = extremes.totals(row);
                let set = |i: usize| bitmap(sets[i].as_binary::<i32>(), row);
                totals.users = set(0)?;
                totals.devices = set(1)?;
                totals.device_names = set(2)?;
                totals.folders = set(3)?;
                self.add(&keys, row, &mut key, totals);
            }
        }
        Ok(())
    }
}

/// One day's `daily_suggestions` rows: the groups (merged), then the users' rows, each sorted.
pub fn day_batch(
    tenant: &str,
    date: NaiveDate,
    groups: &[(GroupKey, GroupTotals)],
    unmanaged: &Unmanaged,
    fingerprint: &str,
) -> Result<RecordBatch, ArrowError> {
    let mut groups: Vec<(&GroupKey, &GroupTotals)> = groups.iter().map(|(k, t)| (k, t)).collect();
    groups.sort_by(|a, b| a.0.cmp(b.0));
    let mut files: Vec<(u32, &str, Span)> = unmanaged
        .per_file
        .iter()
        .map(|(&(user, file), span)| (user, unmanaged.file_names[file as usize].as_str(), *span))
        .collect();
    files.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    let mut users: Vec<(&u32, &(Span, RoaringBitmap))> = unmanaged.per_user.iter().collect();
    users.sort_by_key(|(user, _)| **user);
    let n = groups.len() + files.len() + users.len();
    let users_rows = files.len() + users.len();
    let group_text = |f: &dyn Fn(&GroupKey, &GroupTotals) -> Option<String>| {
        group_column::<String, StringArray>(&groups, users_rows, f)
    };
    let group_bool = |f: &dyn Fn(&GroupKey, &GroupTotals) -> Option<bool>| {
        group_column::<bool, BooleanArray>(&groups, users_rows, f)
    };
    let serialized = |set: &RoaringBitmap| -> Result<Vec<u8>, ArrowError> {
        let mut bytes = Vec::with_capacity(set.serialized_size());
        set.serialize_into(&mut bytes)
            .map_err(|e| ArrowError::IoError(e.to_string(), e))?;
        Ok(bytes)
    };
    let group_set = |f: &dyn Fn(&GroupTotals) -> &RoaringBitmap| -> Result<ArrayRef, ArrowError> {
        let mut values: Vec<Option<Vec<u8>>> = Vec::with_capacity(n);
        for (_, t) in &groups {
            values.push(Some(serialized(f(t))?));
        }
        values.extend(std::iter::repeat_n(None, users_rows));
        Ok(Arc::new(BinaryArray::from_iter(values)))
    };
    let mut devices: Vec<Option<Vec<u8>>> = Vec::with_capacity(n);
    for (_, t) in &groups {
        devices.push(Some(serialized(&t.devices)?));
    }
    devices.extend(std::iter::repeat_n(None, files.len()));
    for (_, (_, set)) in &users {
        devices.push(Some(serialized(set)?));
    }
    let spans: Vec<Span> = groups
        .iter()
        .map(|(_, t)| Span {
            elevations: t.elevations,
            first: t.first,
            last: t.last,
        })
        .chain(files.iter().map(|f| f.2))
        .chain(users.iter().map(|(_, (s, _))| *s))
        .collect();
    let time =
        |values: Vec<i64>| -> ArrayRef { Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC")) };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![tenant; n])),
        Arc::new(Date32Array::from(vec![crate::rows::date32_of_date(date); n])),
        Arc::new(Int64Array::from_iter(
            std::iter::repeat_n(None, groups.len())
                .chain(files.iter().map(|f| Some(i64::from(f.0))))
                .chain(users.iter().map(|(u, _)| Some(i64::from(**u)))),
        )),
        Arc::new(StringArray::from_iter(
            groups
                .iter()
                .map(|(k, _)| Some(k.file_name.as_str()))
                .chain(files.iter().map(|f| Some(f.1)))
                .chain(std::iter::repeat_n(None, users.len())),
        )),
        group_text(&|k, _| k.company_name.clone()),
        group_text(&|k, _| Some(k.hash.clone())),
        Arc::new(StringArray::from_iter_values(
            groups
                .iter()
                .map(|(k, _)| k.elevation_type.as_str())
                .chain(std::iter::repeat_n(UNMANAGED, users_rows)),
        )),
        group_text(&|k, _| Some(k.process_type.clone())),
        group_text(&|k, _| k.parent_process.clone()),
        group_text(&|k, _| k.rule_id.clone()),
        group_text(&|k, _| k.policy_name.clone()),
        group_bool(&|k, _| Some(k.failed)),
        Arc::new(Int64Array::from_iter_values(spans.iter().map(|s| s.elevations))),
        time(spans.iter().map(|s| s.first).collect()),
        time(spans.iter().map(|s| s.last).collect()),
        group_text(&|_, t| t.maxima[0].clone()),
        group_text(&|_, t| t.maxima[1].clone()),
        group_text(&|_, t| t.maxima[2].clone()),
        group_text(&|_, t| t.maxima[3].clone()),
        group_text(&|_, t| t.certificate_low.clone()),
        group_text(&|_, t| t.certificate_high.clone()),
        group_column::<i64, Int64Array>(&groups, users_rows, &|_, t| Some(t.signed)),
        group_text(&|_, t| t.justification_low.clone()),
        group_text(&|_, t| t.justification_high.clone()),
        group_set(&|t| &t.users)?,
        Arc::new(BinaryArray::from_iter(devices)),
        group_set(&|t| &t.device_names)?,
        group_set(&|t| &t.folders)?,
        Arc::new(StringArray::from(vec![fingerprint; n])),
        group_bool(&|_, t| t.system_initiated),
    ];
    RecordBatch::try_new(Table::DailySuggestions.schema(), columns)
}

/// A column of [`day_batch`]: one value per group row, then nulls for the `user_rows`.
fn group_column<T: Clone, A: FromIterator<Option<T>> + Array + 'static>(
    groups: &[(&GroupKey, &GroupTotals)],
    user_rows: usize,
    value: &dyn Fn(&GroupKey, &GroupTotals) -> Option<T>,
) -> ArrayRef {
    Arc::new(
        groups
            .iter()
            .map(|(k, t)| value(k, t))
            .chain(std::iter::repeat_n(None, user_rows))
            .collect::<A>(),
    )
}

/// Computes one day's `daily_suggestions` rows from its raw rows (`day`), numbering the users
/// and values it meets for the first time: the group rows, then the user rows, apart. They are
/// stored as separate files so that a reader of one kind (`by-application` reads only group
/// rows, a few percent of the day's) skips the other's files by their `userNumber` null count.
pub async fn day_rows(
    day: DataFrame,
    tenant: &str,
    date: NaiveDate,
    fingerprint: &str,
    users: &mut UserNumbers,
    values: &mut ValueNumbers,
) -> Result<[RecordBatch; 2], DataFusionError> {
    let mut merged = Groups::default();
    merged.add_events(day.clone(), users, values).await?;
    let mut unmanaged = Unmanaged::default();
    unmanaged.add_events(day, users, values).await?;
    let merged = merged.merged();
    let rows = day_batch(tenant, date, &merged, &unmanaged, fingerprint)?;
    Ok([
        rows.slice(0, merged.len()),
        rows.slice(merged.len(), rows.num_rows() - merged.len()),
    ])
}

/// The key columns of a batch of [`groups`] or of `daily_suggestions`.
struct Keys {
    text: [ArrayRef; 8],
    failed: ArrayRef,
}

impl Keys {
    fn of(batch: &RecordBatch) -> Result<Keys, ArrowError> {
        let mut text_columns = Vec::with_capacity(8);
        for name in GROUP_COLUMNS {
            text_columns.push(text(batch, name)?);
        }
        Ok(Keys {
            text: text_columns.try_into().expect("eight key columns"),
            failed: cast(column(batch, "failed")?, &DataType::Boolean)?,
        })
    }

    fn get(&self, i: usize, row: usize) -> Option<String> {
        let values = self.text[i].as_string::<i32>();
        values.is_valid(row).then(|| values.value(row).to_owned())
    }

    /// The row's keys as one byte string in `out` (each value length-prefixed, a null
    /// marked apart from an empty value): a lookup key that allocates nothing.
    fn bytes(&self, row: usize, out: &mut Vec<u8>) {
        out.clear();
        for column in &self.text {
            let values = column.as_string::<i32>();
            push_key_part(out, values.is_valid(row).then(|| values.value(row)));
        }
        let failed = self.failed.as_boolean();
        out.push(u8::from(failed.is_valid(row) && failed.value(row)));
    }

    fn key(&self, row: usize) -> GroupKey {
        let failed = self.failed.as_boolean();
        GroupKey {
            file_name: self.get(0, row).unwrap_or_default(),
            company_name: self.get(1, row),
            hash: self.get(2, row).unwrap_or_default(),
            elevation_type: self.get(3, row).unwrap_or_default(),
            process_type: self.get(4, row).unwrap_or_default(),
            parent_process: self.get(5, row),
            rule_id: self.get(6, row),
            policy_name: self.get(7, row),
            failed: failed.is_valid(row) && failed.value(row),
        }
    }
}

/// Appends one value to a group key held as bytes: its length (`u32::MAX` for null), then its
/// bytes, so two different sequences of values never make the same key.
pub fn push_key_part(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
        Some(value) => {
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            out.extend_from_slice(value.as_bytes());
        }
    }
}

/// The count, time and text-extreme columns of a batch of [`groups`] or `daily_suggestions`.
struct Extremes {
    elevations: Int64Array,
    first: arrow::array::PrimitiveArray<TimestampMicrosecondType>,
    last: arrow::array::PrimitiveArray<TimestampMicrosecondType>,
    signed: Int64Array,
    system_initiated: BooleanArray,
    /// [`MAXIMA`], then certificate low and high, justification low and high.
    text: Vec<ArrayRef>,
}

impl Extremes {
    fn of(batch: &RecordBatch) -> Result<Extremes, ArrowError> {
        let mut text_columns = Vec::new();
        for name in MAXIMA.iter().chain(&[
            "certificateLow",
            "certificateHigh",
            "justificationLow",
            "justificationHigh",
        ]) {
            text_columns.push(text(batch, name)?);
        }
        Ok(Extremes {
            elevations: int64(batch, "elevations")?,
            first: micros(batch, "first")?,
            last: micros(batch, "last")?,
            signed: int64(batch, "signed")?,
            system_initiated: cast(column(batch, "systemInitiated")?, &DataType::Boolean)?
                .as_boolean()
                .clone(),
            text: text_columns,
        })
    }

    fn get(&self, i: usize, row: usize) -> Option<String> {
        let values = self.text[i].as_string::<i32>();
        values.is_valid(row).then(|| values.value(row).to_owned())
    }

    /// The row's totals, with empty sets.
    fn totals(&self, row: usize) -> GroupTotals {
        GroupTotals {
            elevations: self.elevations.value(row),
            first: self.first.value(row),
            last: self.last.value(row),
            maxima: [0, 1, 2, 3].map(|i| self.get(i, row)),
            certificate_low: self.get(4, row),
            certificate_high: self.get(5, row),
            signed: if self.signed.is_valid(row) {
                self.signed.value(row)
            } else {
                0
            },
            justification_low: self.get(6, row),
            justification_high: self.get(7, row),
            system_initiated: self
                .system_initiated
                .is_valid(row)
                .then(|| self.system_initiated.value(row)),
            users: RoaringBitmap::new(),
            devices: RoaringBitmap::new(),
            device_names: RoaringBitmap::new(),
            folders: RoaringBitmap::new(),
        }
    }
}

fn number(value: i64) -> Result<u32, ArrowError> {
    u32::try_from(value).map_err(|_| ArrowError::InvalidArgumentError("a number out of range".into()))
}

/// The names of numbers, as a vector indexed by number (`""` where no value has the number).
pub fn names_by_number(numbers: &UserNumbers) -> Vec<String> {
    let mut names = vec![String::new(); numbers.len()];
    for (value, number) in numbers.iter() {
        names[number as usize] = value.to_owned();
    }
    names
}
