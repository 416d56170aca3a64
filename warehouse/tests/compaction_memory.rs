//! Compaction and the rollup refresh in bounded memory (issue #19): a partition many times the
//! maintenance memory compacts, spilling, into the same rows in the same order as a run with
//! memory to spare, and its rollups refresh, while the process's peak RSS grows by a fraction
//! of the partition's size.
//!
//! Its own test binary, with this one test, so that the peak RSS it reads is compaction's
//! alone (Linux: `/proc/self/status`, reset through `/proc/self/clear_refs`), under the
//! allocator the `elevation` binary uses.

use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::TimestampMicrosecondType;
use chrono::{DateTime, Duration, TimeZone, Utc};
use warehouse::{
    BatchContext, ElevationEvent, ElevationType, Location, ProcessType, ReportingLevel, Table, UserType, Warehouse,
};

#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const LANDINGS: usize = 60;
const PER_LANDING: usize = 4_000;
/// Each landing after the first sends again this many events of the landing before it, as an
/// agent re-sending after a lost answer does.
const RESENT: usize = 40;

fn day_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap()
}

/// Text repeated across events: large in memory, a few dictionary entries in Parquet, so the
/// partition in memory is many times its files and the writer's buffers.
fn long(what: &str, n: usize) -> String {
    format!(
        "{what} {n} {}",
        "of a tool that needs administrator rights on this device ".repeat(3)
    )
}

/// Event `i` of landing `landing`: many share a second, a hash and a user, so the sort's ties
/// are broken by the id.
fn event(landing: usize, i: usize) -> ElevationEvent {
    let n = landing * PER_LANDING + i;
    ElevationEvent {
        id: format!("{:08x}-4c1e-4a7b-9f00-{:012x}", (n * 2_654_435_761) % (1 << 32), n),
        event_date_time: day_start() + Duration::seconds((n % 40_000) as i64 * 2),
        elevation_type: if n.is_multiple_of(7) {
            ElevationType::Unmanaged
        } else {
            ElevationType::UserConfirmed
        },
        file_path: format!(
            "C:\\Program Files\\{}\\bin\\tool{}.exe",
            long("Vendor", n % 50),
            n % 300
        ),
        file_name: format!("tool{}.exe", n % 300),
        hash: format!("{:064X}", n % 300),
        // Each file's events spread over 400 users (the suggestions' sets are large), while
        // events 120,000 apart still share second, hash and user.
        upn: format!("user{}@contoso.com", (n / 300) % 400),
        user_type: UserType::AzureAd,
        product_name: Some(format!("Tool {}", n % 300)),
        company_name: Some(format!("Vendor {}", n % 50)),
        file_version: Some("1.2.3.4".into()),
        file_description: Some(long("Description", n % 300)),
        internal_name: None,
        certificate_payload: None,
        justification: n.is_multiple_of(3).then(|| long("Justification", n % 20)),
        result: 0,
        process_type: ProcessType::Parent,
        parent_process_name: Some("explorer.exe".into()),
        rule_id: None,
        policy_id: None,
        policy_name: None,
        system_initiated_elevation: false,
    }
}

fn context(landing: usize) -> BatchContext {
    BatchContext {
        tenant: "contoso".into(),
        device_id: format!("device-{landing}"),
        device_name: format!("DEVICE-{landing}"),
        agent_version: Some("1.0.0".into()),
        batch_id: format!("batch-{landing:03}"),
        declared_level: ReportingLevel::All,
        effective_level: ReportingLevel::All,
        ingested_at: day_start() + Duration::days(1) + Duration::minutes(landing as i64),
    }
}

/// Lands the partition in `LANDINGS` files; returns its size in memory as Arrow batches.
async fn land(root: &Path) -> usize {
    let warehouse = Warehouse::new(Location::Local(root.to_owned()));
    let mut bytes = 0;
    for landing in 0..LANDINGS {
        let mut events: Vec<_> = (0..PER_LANDING).map(|i| event(landing, i)).collect();
        if landing > 0 {
            events.extend((0..RESENT).map(|i| event(landing - 1, i * 97)));
        }
        let rows = warehouse::rows::elevation_rows(&context(landing), &events);
        bytes += rows.get_array_memory_size();
        warehouse.append(Table::Elevations, vec![rows], None).await.unwrap();
    }
    bytes
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The process's peak resident set since the last [`reset_peak_rss`], in bytes.
fn peak_rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib << 10
}

fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

/// Compacts the warehouse at `root` in `memory` bytes; returns its one file's rows, in the
/// file's order, and the growth of the peak RSS over the compaction.
async fn compact(root: &Path, memory: usize) -> (RecordBatch, usize) {
    let warehouse = Warehouse::new(Location::Local(root.to_owned())).with_maintenance_memory(memory);
    reset_peak_rss();
    let before = peak_rss();
    let report = warehouse.compact(Table::Elevations, &|_, _| {}).await.unwrap();
    let growth = peak_rss().saturating_sub(before);
    eprintln!("compaction in {memory} bytes: peak RSS grew by {growth} bytes");
    assert_eq!((report.partitions, report.files_after), (1, 1), "{report:?}");
    let files: Vec<PathBuf> = warehouse
        .load(Table::Elevations)
        .await
        .unwrap()
        .get_file_uris()
        .unwrap()
        .map(|uri| url::Url::parse(&uri).map_or_else(|_| PathBuf::from(&uri), |u| u.to_file_path().unwrap()))
        .collect();
    assert_eq!(files.len(), 1);
    let reader = deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(&files[0]).unwrap(),
    )
    .unwrap()
    .build()
    .unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    let rows = concat_batches(&batches[0].schema(), &batches).unwrap();
    let spill = root.join(warehouse::maintenance::SPILL_FOLDER);
    assert_eq!(
        std::fs::read_dir(&spill).unwrap().count(),
        0,
        "spill files left in {spill:?}"
    );
    (rows, growth)
}

/// Checks `rows` against the events landed, without the compaction's code: every event once,
/// in its first landed copy, in (eventDateTime, hash, upn, id) order.
fn check_against_landed(rows: &RecordBatch) {
    assert_eq!(rows.num_rows(), LANDINGS * PER_LANDING);
    let text = |name: &str| {
        let column =
            arrow::compute::cast(rows.column_by_name(name).unwrap(), &arrow::datatypes::DataType::Utf8).unwrap();
        column
            .as_string::<i32>()
            .iter()
            .map(|v| v.unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let (ids, hashes, upns, batches) = (text("id"), text("hash"), text("upn"), text("batchId"));
    let times = rows.column_by_name("eventDateTime").unwrap();
    let times = times.as_primitive::<TimestampMicrosecondType>();
    let key = |r: usize| (times.value(r), &hashes[r], &upns[r], &ids[r]);
    for r in 1..rows.num_rows() {
        assert!(key(r - 1) < key(r), "rows {} and {r} out of order", r - 1);
    }
    assert_eq!(times.null_count(), 0);
    for landing in 0..LANDINGS {
        for i in [0, 97, PER_LANDING - 1] {
            let expected = event(landing, i);
            let row = ids.iter().position(|id| *id == expected.id).unwrap();
            assert_eq!(
                batches[row],
                context(landing).batch_id,
                "not the first copy of {}",
                expected.id
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_many_times_the_memory_limit_compacts_in_bounded_memory_to_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (spacious, tight) = (dir.path().join("spacious"), dir.path().join("tight"));
    let partition_bytes = land(&spacious).await;
    copy_dir(&spacious, &tight);

    // The tight run first: memory the allocator keeps after the spacious run would hide its
    // growth.
    let memory = partition_bytes / 8;
    let (rows, growth) = compact(&tight, memory).await;
    let (expected, _) = compact(&spacious, 4 * partition_bytes).await;
    check_against_landed(&expected);
    assert_eq!(
        rows, expected,
        "compaction in {memory} bytes wrote other rows or another order"
    );
    // Holding the partition, compaction grew by 10 times its size here (3.1 GB); streaming,
    // by half of it (pool, writer and reader buffers, allocator).
    assert!(
        growth < partition_bytes,
        "peak RSS grew by {growth} bytes compacting a partition of {partition_bytes} bytes in {memory}"
    );

    // The day's rollups, refreshed in the same memory. The suggestions' per-group sets are
    // folded from the rows as they stream; DataFusion's `array_agg(DISTINCT)` held them as
    // values that asked this pool (and, at fleet scale, the default 512 MiB) for more than
    // it had, and the whole refresh failed.
    let warehouse = Warehouse::new(Location::Local(tight.clone())).with_maintenance_memory(memory);
    reset_peak_rss();
    let before = peak_rss();
    let refreshed = warehouse.refresh_rollups().await.unwrap();
    let growth = peak_rss().saturating_sub(before);
    eprintln!("refresh: peak RSS grew by {growth} bytes (partition {partition_bytes}, memory {memory})");
    assert_eq!(refreshed.days_refreshed, 1, "{refreshed:?}");
    // Grouping the day by string views, DataFusion copied the views and buffers left at every
    // chunk it emitted, outside the pool: the peak grew by 170 MB here (1 GiB a day at fleet
    // scale); over plain strings by 38 to 76 MB (286 MB partition). The spread is the
    // allocator's: freed pages stay in the RSS for a second (`dirty_decay_ms` in
    // `.cargo/config.toml`), and whether the refresh reuses the pages the compactions before it
    // freed or takes new ones depends on which threads, and so which of jemalloc's arenas, run
    // it. A third of the partition still fails on the copies of views (170 MB).
    assert!(
        growth < partition_bytes / 3,
        "peak RSS grew by {growth} bytes refreshing the rollups of a partition of {partition_bytes} bytes in {memory}"
    );
    assert_eq!(suggestion_sets(&warehouse).await, expected_sets());
}

/// Per (hash, type) group of `daily_suggestions`: elevations, distinct users and devices.
type Sets = std::collections::BTreeMap<(String, String), (i64, u64, u64)>;

async fn suggestion_sets(warehouse: &Warehouse) -> Sets {
    use warehouse::deltalake::datafusion::prelude::SessionContext;
    let table = warehouse.load(Table::DailySuggestions).await.unwrap();
    let ctx = SessionContext::new();
    table.update_datafusion_session(&ctx.state()).unwrap();
    ctx.register_table("s", table.table_provider().await.unwrap()).unwrap();
    let batches = ctx
        .sql(r#"SELECT "hash", "elevationType", "elevations", "users", "devices" FROM s WHERE "userNumber" IS NULL"#)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut out = Sets::new();
    for batch in &batches {
        let text = |i: usize| arrow::compute::cast(batch.column(i), &arrow::datatypes::DataType::Utf8).unwrap();
        let (hashes, types) = (text(0), text(1));
        let counts = arrow::compute::cast(batch.column(2), &arrow::datatypes::DataType::Int64).unwrap();
        let sets = |i: usize| arrow::compute::cast(batch.column(i), &arrow::datatypes::DataType::Binary).unwrap();
        let (users, devices) = (sets(3), sets(4));
        for row in 0..batch.num_rows() {
            let count =
                |set: &arrow::array::ArrayRef| warehouse::columns::bitmap(set.as_binary::<i32>(), row).unwrap().len();
            out.insert(
                (
                    hashes.as_string::<i32>().value(row).to_owned(),
                    types.as_string::<i32>().value(row).to_owned(),
                ),
                (
                    counts.as_primitive::<arrow::datatypes::Int64Type>().value(row),
                    count(&users),
                    count(&devices),
                ),
            );
        }
    }
    out
}

/// The same from the events as landed, without the warehouse's code.
fn expected_sets() -> Sets {
    use std::collections::{BTreeMap, BTreeSet};
    type Group = (i64, BTreeSet<String>, BTreeSet<String>);
    let mut groups: BTreeMap<(String, String), Group> = BTreeMap::new();
    for landing in 0..LANDINGS {
        for i in 0..PER_LANDING {
            let e = event(landing, i);
            let group = groups
                .entry((e.hash.clone(), e.elevation_type.as_str().to_owned()))
                .or_default();
            group.0 += 1;
            group.1.insert(e.upn);
            group.2.insert(context(landing).device_id);
        }
    }
    groups
        .into_iter()
        .map(|(k, (n, users, devices))| (k, (n, users.len() as u64, devices.len() as u64)))
        .collect()
}
