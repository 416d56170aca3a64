//! Sets of users per day, for distinct-user answers over any window.
//!
//! Counts of distinct users cannot be summed across days (a user active on two days would count
//! twice), so a rollup of counts cannot answer "how many users elevated this file in the last 90
//! days". Sets can be united: `daily_user_sets` keeps, per tenant, day, elevation type and file,
//! the users as a compressed bitmap of numbers, and a reader ORs the days of its window. The
//! numbers come from `user_numbers`: the rollup refresh gives each new user of a tenant the
//! next number and commits them before any set that uses them. A number is never changed or
//! reused (the table is exempt from retention), so a set written years ago still names the
//! same users.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryArray, Date32Array, Int64Array, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};
use chrono::NaiveDate;
use roaring::RoaringBitmap;

use crate::tables::Table;

/// The numbers of one tenant's users, and the ones given since they were loaded.
#[derive(Debug, Default, Clone)]
pub struct UserNumbers {
    by_upn: HashMap<String, u32>,
    next: u32,
    new: Vec<(String, u32)>,
}

impl UserNumbers {
    /// Numbers as stored in `user_numbers`.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, u32)>) -> Self {
        let by_upn: HashMap<String, u32> = pairs.into_iter().collect();
        let next = by_upn.values().max().map_or(0, |n| n + 1);
        UserNumbers {
            by_upn,
            next,
            new: Vec::new(),
        }
    }

    /// The user's number, given now if the user has none.
    pub fn number(&mut self, upn: &str) -> u32 {
        if let Some(&n) = self.by_upn.get(upn) {
            return n;
        }
        let n = self.next;
        self.next += 1;
        self.by_upn.insert(upn.to_owned(), n);
        self.new.push((upn.to_owned(), n));
        n
    }

    /// One past the greatest number given: every number is below it.
    pub fn len(&self) -> usize {
        self.next as usize
    }

    /// Whether no number was given.
    pub fn is_empty(&self) -> bool {
        self.next == 0
    }

    /// Every value with its number, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u32)> {
        self.by_upn.iter().map(|(value, n)| (value.as_str(), *n))
    }

    /// The numbers given since the last call (or since loading), to be stored.
    pub fn take_new(&mut self) -> Vec<(String, u32)> {
        std::mem::take(&mut self.new)
    }
}

/// Reads `(upn, number)` pairs from batches of `user_numbers` (or any batches with those two
/// columns).
pub fn pairs_of(batches: &[RecordBatch]) -> Result<Vec<(String, u32)>, arrow::error::ArrowError> {
    let mut pairs = Vec::new();
    for batch in batches {
        let upns = cast(column(batch, "upn")?, &DataType::Utf8)?;
        let upns = upns.as_string::<i32>();
        let numbers = cast(column(batch, "number")?, &DataType::Int64)?;
        let numbers = numbers.as_primitive::<Int64Type>();
        for row in 0..batch.num_rows() {
            let number = u32::try_from(numbers.value(row))
                .map_err(|_| arrow::error::ArrowError::InvalidArgumentError("a user number out of range".into()))?;
            pairs.push((upns.value(row).to_owned(), number));
        }
    }
    Ok(pairs)
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, arrow::error::ArrowError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| arrow::error::ArrowError::SchemaError(format!("no column {name}")))
}

/// The users and elevations of one (type, file) — or of one type, `hash` `None` — on one day.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct UserSet {
    /// The greatest file name seen with the hash.
    pub file_name: Option<String>,
    /// Elevations.
    pub elevations: i64,
    /// The users' numbers.
    pub users: RoaringBitmap,
}

impl UserSet {
    /// Counts `elevations` more, seen with `file_name`, keeping the greatest name. The users
    /// are the caller's to add.
    pub fn add(&mut self, file_name: Option<&str>, elevations: i64) -> &mut Self {
        self.elevations += elevations;
        if let Some(name) = file_name
            && self.file_name.as_deref().is_none_or(|best| name > best)
        {
            self.file_name = Some(name.to_owned());
        }
        self
    }
}

/// A day's sets by (elevation type, hash).
pub type DaySets = BTreeMap<(String, Option<String>), UserSet>;

/// Builds a day's sets from rows with `elevationType`, `hash`, `fileName`, `upn` and
/// `elevations` columns (the day's `daily_elevations` rows), numbering new users.
pub fn day_sets(batches: &[RecordBatch], numbers: &mut UserNumbers) -> Result<DaySets, arrow::error::ArrowError> {
    let mut sets = DaySets::new();
    for batch in batches {
        let text = |name: &str| cast(column(batch, name)?, &DataType::Utf8);
        let (types, hashes, names, upns) = (text("elevationType")?, text("hash")?, text("fileName")?, text("upn")?);
        let (types, hashes, names, upns) = (
            types.as_string::<i32>(),
            hashes.as_string::<i32>(),
            names.as_string::<i32>(),
            upns.as_string::<i32>(),
        );
        let elevations = cast(column(batch, "elevations")?, &DataType::Int64)?;
        let elevations = elevations.as_primitive::<Int64Type>();
        for row in 0..batch.num_rows() {
            let elevation_type = types.value(row).to_owned();
            let user = numbers.number(upns.value(row));
            let n = elevations.value(row);
            let name = names.is_valid(row).then(|| names.value(row));
            let whole_type = sets.entry((elevation_type.clone(), None)).or_default();
            whole_type.add(None, n).users.insert(user);
            let file = sets
                .entry((elevation_type, Some(hashes.value(row).to_owned())))
                .or_default();
            file.add(name, n).users.insert(user);
        }
    }
    Ok(sets)
}

/// A day's sets as a batch of `daily_user_sets`.
pub fn sets_batch(
    tenant: &str,
    date: NaiveDate,
    sets: &DaySets,
    fingerprint: &str,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let n = sets.len();
    let mut users = Vec::with_capacity(n);
    for set in sets.values() {
        let mut bytes = Vec::with_capacity(set.users.serialized_size());
        set.users
            .serialize_into(&mut bytes)
            .map_err(|e| arrow::error::ArrowError::IoError(e.to_string(), e))?;
        users.push(bytes);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![tenant; n])),
        Arc::new(Date32Array::from(vec![crate::rows::date32_of_date(date); n])),
        Arc::new(StringArray::from_iter_values(sets.keys().map(|(t, _)| t.as_str()))),
        Arc::new(StringArray::from_iter(sets.keys().map(|(_, h)| h.as_deref()))),
        Arc::new(StringArray::from_iter(sets.values().map(|s| s.file_name.as_deref()))),
        Arc::new(Int64Array::from_iter_values(sets.values().map(|s| s.elevations))),
        Arc::new(BinaryArray::from_iter_values(users.iter())),
        Arc::new(StringArray::from(vec![fingerprint; n])),
    ];
    RecordBatch::try_new(Table::DailyUserSets.schema(), columns)
}

/// New numbers as a batch of `user_numbers`, all in the partition of `date`.
pub fn numbers_batch(
    tenant: &str,
    date: NaiveDate,
    new: &[(String, u32)],
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let n = new.len();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![tenant; n])),
        Arc::new(Date32Array::from(vec![crate::rows::date32_of_date(date); n])),
        Arc::new(StringArray::from_iter_values(new.iter().map(|(u, _)| u.as_str()))),
        Arc::new(Int64Array::from_iter_values(new.iter().map(|(_, n)| i64::from(*n)))),
    ];
    RecordBatch::try_new(Table::UserNumbers.schema(), columns)
}

/// Reads a set written by [`sets_batch`].
pub fn read_set(bytes: &[u8]) -> std::io::Result<RoaringBitmap> {
    RoaringBitmap::deserialize_from(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fine(rows: &[(&str, &str, Option<&str>, &str, i64)]) -> RecordBatch {
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("elevationType", DataType::Utf8, false),
            arrow::datatypes::Field::new("hash", DataType::Utf8, false),
            arrow::datatypes::Field::new("fileName", DataType::Utf8, true),
            arrow::datatypes::Field::new("upn", DataType::Utf8, false),
            arrow::datatypes::Field::new("elevations", DataType::Int64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(StringArray::from_iter(rows.iter().map(|r| r.2))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.3))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.4))),
            ],
        )
        .unwrap()
    }

    #[test]
    fn numbers_are_stable_and_sets_unite_across_days_to_exact_distinct_users() {
        let mut numbers = UserNumbers::from_pairs([("old@x".to_owned(), 7)]);
        let day1 = day_sets(
            &[fine(&[
                ("unmanagedElevation", "H1", Some("a.exe"), "old@x", 2),
                ("unmanagedElevation", "H1", Some("b.exe"), "new@x", 1),
                ("zeroTouch", "H2", None, "new@x", 4),
            ])],
            &mut numbers,
        )
        .unwrap();
        assert_eq!(numbers.take_new(), vec![("new@x".to_owned(), 8)]);
        let day2 = day_sets(
            &[fine(&[("unmanagedElevation", "H1", Some("a.exe"), "new@x", 5)])],
            &mut numbers,
        )
        .unwrap();
        assert!(numbers.take_new().is_empty(), "a known user keeps its number");
        let h1 = ("unmanagedElevation".to_owned(), Some("H1".to_owned()));
        assert_eq!(day1[&h1].elevations, 3);
        assert_eq!(day1[&h1].file_name.as_deref(), Some("b.exe"));
        assert_eq!(day1[&("zeroTouch".to_owned(), None)].users.len(), 1);
        // Two users on day 1, one of them again on day 2: two distinct users, not three.
        let batch = sets_batch("t", NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(), &day1, "f").unwrap();
        let stored = batch.column(6).as_binary::<i32>();
        let row = day1.keys().position(|k| k == &h1).unwrap();
        let united = read_set(stored.value(row)).unwrap() | &day2[&h1].users;
        assert_eq!(united.len(), 2);
        assert_eq!(numbers.number("new@x"), 8);
        assert!(numbers.take_new().is_empty());
        assert_eq!(numbers.number("third@x"), 9);
    }
}
