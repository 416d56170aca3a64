//! Exact distinct users and devices per group, for `by-application` and `by-publisher`.
//! DataFusion computes every other aggregate of those reports; this adds the two counts.
//!
//! DataFusion's `count(DISTINCT upn)` keeps a set of strings per group and feeds each group its
//! rows one group at a time. Over 13.5 M elevations, distinct users per (hash, type) took 3.1 s
//! that way, against 0.3 s for the same count over an integer column (BENCHMARKS.md). Here each
//! partition of the scan numbers every distinct group key, user and device the first time it
//! sees it (one hash-table lookup per value per row) and sets the user's and the device's bits
//! in the group's two compressed bitmaps. The numbers mean something only inside one partition, so
//! the partitions are merged through the strings their numbers stand for: the answer is exact,
//! the same as `count(DISTINCT …)`.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, Int64Array, RecordBatch, StringViewArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::dataframe::DataFrame;
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::Expr;
use datafusion::prelude::{SessionContext, ident};
use foldhash::fast::RandomState;
use futures::StreamExt;
use roaring::RoaringBitmap;

use crate::QueryError;
use crate::numbering::{NULL, Numbering, ViewNumbering, as_view};

/// A group: the values of the two key columns (either may be null).
type GroupKey = (Option<String>, Option<String>);

/// What one partition saw.
#[derive(Default)]
struct PartitionCounts {
    key_values: [ViewNumbering; 2],
    groups: HashMap<(u32, u32), u32, RandomState>,
    group_keys: Vec<(u32, u32)>,
    users: ViewNumbering,
    devices: ViewNumbering,
    /// Per group, the numbers of its users and of its devices. Compressed bitmaps rather than
    /// one hash set of (group, user) pairs: a set of millions of pairs misses the cache on
    /// every insert, while a group's bitmap stays small and ordered.
    group_users: Vec<RoaringBitmap>,
    group_devices: Vec<RoaringBitmap>,
}

impl PartitionCounts {
    /// `batch` columns: the two keys, `upn`, `deviceId`.
    fn add(&mut self, batch: &RecordBatch) -> Result<(), QueryError> {
        let [key0, key1, users, devices] = [0, 1, 2, 3].map(|i| as_view(batch.column(i)));
        let (key0, key1, users, devices) = (key0?, key1?, users?, devices?);
        self.key_values[0].start(&key0);
        self.key_values[1].start(&key1);
        self.users.start(&users);
        self.devices.start(&devices);
        for row in 0..batch.num_rows() {
            let mut number_key = |slot: usize, column: &StringViewArray| {
                if column.is_null(row) {
                    NULL
                } else {
                    self.key_values[slot].number(column, row)
                }
            };
            let key = (number_key(0, &key0), number_key(1, &key1));
            let next = self.group_keys.len() as u32;
            let group = *self.groups.entry(key).or_insert_with(|| {
                self.group_keys.push(key);
                self.group_users.push(RoaringBitmap::new());
                self.group_devices.push(RoaringBitmap::new());
                next
            }) as usize;
            // count(DISTINCT) ignores nulls.
            if users.is_valid(row) {
                let user = self.users.number(&users, row);
                self.group_users[group].insert(user);
            }
            if devices.is_valid(row) {
                let device = self.devices.number(&devices, row);
                self.group_devices[group].insert(device);
            }
        }
        Ok(())
    }
}

/// Distinct users and devices of `events` per value of `keys`.
async fn count(events: DataFrame, keys: [&str; 2]) -> Result<HashMap<GroupKey, (i64, i64)>, QueryError> {
    let streams = events
        .select(vec![ident(keys[0]), ident(keys[1]), ident("upn"), ident("deviceId")])?
        .execute_stream_partitioned()
        .await?;
    // One task per partition, so the partitions are counted on every core. In a `JoinSet`, so
    // that an error in one stops the others instead of leaving them scanning; the partitions
    // are merged as they finish (the counts are unions of sets: any order gives the same).
    let mut tasks = tokio::task::JoinSet::new();
    for mut stream in streams {
        tasks.spawn(async move {
            let mut counts = PartitionCounts::default();
            while let Some(batch) = stream.next().await {
                counts.add(&batch?)?;
            }
            Ok::<_, QueryError>(counts)
        });
    }
    let mut partitions = Vec::with_capacity(tasks.len());
    while let Some(counted) = tasks.join_next().await {
        partitions.push(counted.map_err(|e| DataFusionError::External(Box::new(e)))??);
    }
    Ok(merge(partitions))
}

/// Joins the partitions' counts through the strings their numbers stand for.
fn merge(partitions: Vec<PartitionCounts>) -> HashMap<GroupKey, (i64, i64)> {
    let mut groups: HashMap<GroupKey, usize> = HashMap::new();
    let mut users = Numbering::default();
    let mut devices = Numbering::default();
    let mut group_users: Vec<RoaringBitmap> = Vec::new();
    let mut group_devices: Vec<RoaringBitmap> = Vec::new();
    for part in partitions {
        let value = |slot: usize, id: u32| {
            (id != NULL).then(|| part.key_values[slot].numbering.values[id as usize].to_string())
        };
        let user_of: Vec<u32> = part.users.numbering.values.iter().map(|u| users.number(u)).collect();
        let device_of: Vec<u32> = part
            .devices
            .numbering
            .values
            .iter()
            .map(|d| devices.number(d))
            .collect();
        for (local, &(k0, k1)) in part.group_keys.iter().enumerate() {
            let next = groups.len();
            let group = *groups.entry((value(0, k0), value(1, k1))).or_insert(next);
            if group == next {
                group_users.push(RoaringBitmap::new());
                group_devices.push(RoaringBitmap::new());
            }
            group_users[group].extend(part.group_users[local].iter().map(|u| user_of[u as usize]));
            group_devices[group].extend(part.group_devices[local].iter().map(|d| device_of[d as usize]));
        }
    }
    groups
        .into_iter()
        .map(|(key, group)| {
            let count = |bitmap: &RoaringBitmap| i64::try_from(bitmap.len()).expect("fewer than 2^63");
            (key, (count(&group_users[group]), count(&group_devices[group])))
        })
        .collect()
}

/// `events` aggregated by `keys` with `aggregates` (computed by DataFusion), plus two columns:
/// `users` and `devices`, the distinct `upn` and `deviceId` values of each group's events.
pub(crate) async fn aggregate_with_users_and_devices(
    ctx: &SessionContext,
    events: DataFrame,
    keys: [&str; 2],
    aggregates: Vec<Expr>,
) -> Result<DataFrame, QueryError> {
    let groups = events
        .clone()
        .aggregate(vec![ident(keys[0]), ident(keys[1])], aggregates)?;
    let counts = count(events, keys).await?;
    let schema = groups.schema().as_arrow().clone();
    let key_columns = [
        schema.index_of(keys[0]).map_err(DataFusionError::from)?,
        schema.index_of(keys[1]).map_err(DataFusionError::from)?,
    ];
    let mut fields: Vec<Arc<Field>> = schema.fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new("users", DataType::Int64, false)));
    fields.push(Arc::new(Field::new("devices", DataType::Int64, false)));
    let schema = Arc::new(Schema::new(fields));
    let mut batches = Vec::new();
    for batch in groups.collect().await? {
        let [key0, key1] = key_columns.map(|i| as_view(batch.column(i)));
        let (key0, key1) = (key0?, key1?);
        let mut users = Vec::with_capacity(batch.num_rows());
        let mut devices = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            let value = |column: &StringViewArray| column.is_valid(row).then(|| column.value(row).to_owned());
            let (u, d) = counts.get(&(value(&key0), value(&key1))).copied().unwrap_or((0, 0));
            users.push(u);
            devices.push(d);
        }
        let mut columns = batch.columns().to_vec();
        columns.push(Arc::new(Int64Array::from(users)));
        columns.push(Arc::new(Int64Array::from(devices)));
        batches.push(RecordBatch::try_new(schema.clone(), columns).map_err(DataFusionError::from)?);
    }
    // The groups are few and already here: what follows (sorting, paging) runs in this
    // process, also when the events were read on a cluster (which cannot read a table held
    // in this process's memory).
    let local = if crate::cluster::cluster().is_some() {
        crate::memory::new_session()
    } else {
        ctx.clone()
    };
    Ok(local.read_table(Arc::new(MemTable::try_new(schema, vec![batches])?))?)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use datafusion::arrow::array::{ArrayRef, StringViewBuilder};

    use super::*;

    /// A batch of (key0, key1, upn, deviceId) rows.
    fn batch(rows: &[[Option<&str>; 4]]) -> RecordBatch {
        let columns: Vec<ArrayRef> = (0..4)
            .map(|c| {
                let mut builder = StringViewBuilder::new();
                for row in rows {
                    builder.append_option(row[c]);
                }
                Arc::new(builder.finish()) as ArrayRef
            })
            .collect();
        let fields: Vec<Field> = ["k0", "k1", "upn", "deviceId"]
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8View, true))
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
    }

    /// The same rows as `rows`, but as views into one shared buffer (as the Parquet reader
    /// decodes a dictionary), cut into batches of `size` rows.
    fn shared_buffer_batches(rows: &[[Option<&str>; 4]], size: usize) -> Vec<RecordBatch> {
        let whole = batch(rows);
        (0..rows.len())
            .step_by(size)
            .map(|start| whole.slice(start, size.min(rows.len() - start)))
            .collect()
    }

    #[test]
    fn counts_equal_distinct_counts_over_every_row_whatever_the_partitioning_and_buffers() {
        let long = |prefix: &str, i: usize| format!("{prefix}-{i:04}-with-a-value-longer-than-twelve-bytes");
        let mut owned: Vec<[Option<String>; 4]> = Vec::new();
        for i in 0..3000usize {
            owned.push([
                (i % 7 != 0).then(|| long("hash", i % 13)),
                Some(["unmanagedElevation", "zeroTouch"][i % 2].to_owned()),
                (i % 11 != 0).then(|| long("user", (i * 7) % 101)),
                Some(format!("dev{}", (i * 3) % 59)),
            ]);
        }
        let rows: Vec<[Option<&str>; 4]> = owned.iter().map(|r| r.each_ref().map(|v| v.as_deref())).collect();
        let mut expected: HashMap<GroupKey, (HashSet<&str>, HashSet<&str>)> = HashMap::new();
        for row in &rows {
            let entry = expected
                .entry((row[0].map(str::to_owned), row[1].map(str::to_owned)))
                .or_default();
            entry.0.extend(row[2]);
            entry.1.extend(row[3]);
        }
        let expected: HashMap<GroupKey, (i64, i64)> = expected
            .into_iter()
            .map(|(k, (u, d))| (k, (u.len() as i64, d.len() as i64)))
            .collect();

        // Two partitions: one of separate batches, one of batches sharing a buffer.
        let (first, second) = rows.split_at(1234);
        let mut a = PartitionCounts::default();
        for chunk in first.chunks(100) {
            a.add(&batch(chunk)).unwrap();
        }
        let mut b = PartitionCounts::default();
        for shared in shared_buffer_batches(second, 250) {
            b.add(&shared).unwrap();
        }
        assert_eq!(merge(vec![a, b]), expected);

        // One partition, all in shared-buffer batches.
        let mut whole = PartitionCounts::default();
        for shared in shared_buffer_batches(&rows, 333) {
            whole.add(&shared).unwrap();
        }
        assert_eq!(merge(vec![whole]), expected);
    }
}
