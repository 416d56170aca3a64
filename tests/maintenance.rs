//! The warehouse at scale: compaction and retention under concurrent ingest and queries,
//! schema evolution, two writers, and engines that are not this product reading the tables.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::support::{Node, batch, batch_context, create_agent_key, elevation_event, start_server, temp_dir, test_now};

/// Simulated batch bodies (gzip) and the truth, for a tenant.
fn fleet(seed: u64, devices: u32, days: u32, tenant: &str) -> (Vec<Vec<u8>>, simulator::GroundTruth) {
    let mut config = simulator::SimConfig::new(seed, devices, days, test_now().date_naive());
    config.tenant = tenant.to_owned();
    let mut bodies = Vec::new();
    let (_, truth) = simulator::simulate(&config, |_, _, b| {
        bodies.push(ingest::AgentClient::compress(&serde_json::to_vec(b).unwrap()));
        Ok::<_, std::convert::Infallible>(())
    })
    .unwrap();
    (bodies, truth)
}

fn parquet_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(parquet_files(&path));
            } else if path.extension().is_some_and(|e| e == "parquet") {
                out.push(path);
            }
        }
    }
    out
}

/// Changes `tenant`'s settings with `change`, then runs retention for every tenant as of today.
async fn retention_with(
    node: &Node,
    tenant: &str,
    change: impl FnOnce(&mut control::TenantSettings),
) -> [warehouse::maintenance::RetentionReport; warehouse::Table::EVERY.len()] {
    node.control
        .update_settings(&crate::support::test_actor(), tenant, change)
        .await
        .unwrap();
    let settings = node.control.tenant_settings().await.unwrap();
    let lookup = |t: &str| settings.get(t).map(|s| s.retention()).unwrap_or_default();
    warehouse::maintenance::retention_all(&node.warehouse, &lookup, test_now().date_naive())
        .await
        .unwrap()
}

/// `(rows, distinct ids)` of a tenant's elevations.
async fn rows_and_ids(node: &Node, tenant: &str) -> (u64, u64) {
    let rows = node
        .sql(&format!(
            "SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS ids FROM elevations WHERE tenant = '{tenant}'"
        ))
        .await;
    (rows[0]["n"].as_u64().unwrap(), rows[0]["ids"].as_u64().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_under_concurrent_ingest_and_queries_loses_nothing_and_duplicates_nothing() {
    // Land every 20 ms: many small files, as a busy server makes.
    let mut node = Node::start_with(|c| c.land_interval = std::time::Duration::from_millis(20)).await;
    let (bodies, truth) = fleet(21, 60, 5, "contoso");
    let half = bodies.len() / 2;
    let client = ingest::AgentClient::new(&node.base, &node.agent_key);
    client.upload_all(bodies[..half].to_vec(), 8).await.unwrap();
    node.land_all().await;
    let files_before = parquet_files(&node.dir.path().join("warehouse/elevations")).len();

    // Upload the second half, compact, and read, all at once.
    let uploading = {
        let client = client.clone();
        let rest = bodies[half..].to_vec();
        tokio::spawn(async move { client.upload_all(rest, 8).await.unwrap() })
    };
    let warehouse = node.warehouse.clone();
    let compacting = tokio::spawn(async move {
        let mut reports = Vec::new();
        for _ in 0..3 {
            for table in warehouse::Table::ALL {
                reports.push(warehouse.compact(table, &|_, _| {}).await.unwrap());
            }
        }
        reports
    });
    let mut last_rows = 0;
    while !(uploading.is_finished() && compacting.is_finished()) {
        let (rows, ids) = rows_and_ids(&node, "contoso").await;
        assert_eq!(rows, ids, "a reader saw rows twice during compaction");
        assert!(
            rows >= last_rows,
            "a reader saw rows disappear during compaction: {last_rows} → {rows}"
        );
        last_rows = rows;
    }
    uploading.await.unwrap();
    let reports = compacting.await.unwrap();
    assert!(
        reports.iter().any(|r| r.partitions > 0),
        "nothing was compacted: {reports:?}"
    );
    node.land_all().await;
    node.warehouse
        .compact(warehouse::Table::Elevations, &|_, _| {})
        .await
        .unwrap();

    let counts = node.counts("contoso").await;
    assert_eq!(
        (counts.elevations(), counts.unmanaged(), counts.diagnostics),
        (
            truth.totals.elevations,
            truth.totals.unmanaged,
            truth.totals.diagnostics
        )
    );
    // One file per partition after a quiet compaction.
    let partitions = node
        .sql(r#"SELECT COUNT(DISTINCT "eventDate") AS n FROM elevations"#)
        .await[0]["n"]
        .as_u64()
        .unwrap();
    let files_after = parquet_files(&node.dir.path().join("warehouse/elevations")).len();
    let live = node
        .warehouse
        .load(warehouse::Table::Elevations)
        .await
        .unwrap()
        .get_file_uris()
        .unwrap()
        .count();
    assert_eq!(live as u64, partitions, "live files after compaction");
    assert!(files_before > live, "compaction did not reduce {files_before} files");
    assert!(files_after >= live, "old files stay until vacuum");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_removes_duplicate_event_ids_sent_in_different_batches() {
    let mut node = Node::start().await;
    for batch_id in ["b-first", "b-resent"] {
        let body = batch(
            batch_id,
            "all",
            vec![
                elevation_event("same-event", "userConfirmedElevation"),
                elevation_event(&format!("only-{batch_id}"), "zeroTouchElevation"),
            ],
            vec![],
        );
        assert_eq!(node.upload(&body).await.status, 200);
        node.land_all().await;
    }
    assert_eq!(rows_and_ids(&node, "contoso").await, (4, 3));
    let report = node
        .warehouse
        .compact(warehouse::Table::Elevations, &|_, _| {})
        .await
        .unwrap();
    assert_eq!((report.rows_before, report.rows_after, report.files_after), (4, 3, 1));
    assert_eq!(rows_and_ids(&node, "contoso").await, (3, 3));
    // The first landed copy is kept.
    let kept = node
        .sql(r#"SELECT "batchId" FROM elevations WHERE id = 'same-event'"#)
        .await;
    assert_eq!(kept[0]["batchId"], "b-first");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_is_per_tenant_and_old_data_is_gone_from_disk() {
    let mut node = Node::start().await;
    let (contoso, contoso_truth) = fleet(31, 30, 30, "contoso");
    let (fabrikam, fabrikam_truth) = fleet(32, 30, 30, "fabrikam");
    ingest::AgentClient::new(&node.base, &node.agent_key)
        .upload_all(contoso, 8)
        .await
        .unwrap();
    ingest::AgentClient::new(&node.base, &node.other_tenant_key)
        .upload_all(fabrikam, 8)
        .await
        .unwrap();
    node.land_all().await;
    // Fabrikam keeps 10 days of elevations and 5 of diagnostics; contoso keeps the defaults.
    let reports = retention_with(&node, "fabrikam", |s| {
        s.elevation_retention_days = Some(10);
        s.diagnostic_retention_days = Some(5);
    })
    .await;
    let today = test_now().date_naive();

    let keep_from = today - chrono::Duration::days(10);
    let expected_deleted: u64 = fabrikam_truth
        .per_day
        .iter()
        .filter(|d| d.date < keep_from)
        .map(|d| d.managed + d.unmanaged)
        .sum();
    assert!(expected_deleted > 0, "the fleet has nothing older than 10 days");
    assert_eq!(reports[0].rows_deleted, expected_deleted);
    assert!(reports[0].files_vacuumed > 0);
    let fabrikam_left = node.counts("fabrikam").await.elevations();
    assert_eq!(fabrikam_left, fabrikam_truth.totals.elevations - expected_deleted);
    assert_eq!(
        node.counts("contoso").await.elevations(),
        contoso_truth.totals.elevations,
        "contoso untouched"
    );
    let oldest = node
        .sql(r#"SELECT MIN(CAST("eventDate" AS VARCHAR)) AS d FROM elevations WHERE tenant = 'fabrikam'"#)
        .await;
    assert!(oldest[0]["d"].as_str().unwrap() >= keep_from.to_string().as_str());
    // Gone from disk, not only from the log.
    for file in parquet_files(&node.dir.path().join("warehouse/elevations/tenant=fabrikam")) {
        let date = file
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .trim_start_matches("eventDate=")
            .to_owned();
        assert!(date >= keep_from.to_string(), "{} survived retention", file.display());
    }
    let diagnostics_from = (today - chrono::Duration::days(5)).to_string();
    let old_diagnostics = node
        .sql(&format!(r#"SELECT COUNT(*) AS n FROM diagnostics WHERE tenant = 'fabrikam' AND CAST("eventDate" AS VARCHAR) < '{diagnostics_from}'"#))
        .await;
    assert_eq!(old_diagnostics[0]["n"], 0);
    node.stop().await;
}

/// Retention erases expired days from storage at once, but the files compaction replaced in
/// the days kept stay for `REPLACED_FILES_KEPT`: a report planned before the maintenance pass,
/// or a compliance pack remade at the table versions it recorded, reads the version it names.
/// Before, the vacuum deleted every replaced file at once and the older version failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_the_files_compaction_replaced_for_older_versions_and_erases_expired_days() {
    let mut node = Node::start_with(|c| c.land_interval = std::time::Duration::from_millis(20)).await;
    let (bodies, truth) = fleet(33, 30, 20, "contoso");
    let client = ingest::AgentClient::new(&node.base, &node.agent_key);
    // Two landings at least, so every day has small files for compaction to replace.
    let half = bodies.len() / 2;
    client.upload_all(bodies[..half].to_vec(), 8).await.unwrap();
    node.land_all().await;
    client.upload_all(bodies[half..].to_vec(), 8).await.unwrap();
    node.land_all().await;
    let landed_version = node
        .warehouse
        .latest(warehouse::Table::Elevations)
        .await
        .unwrap()
        .version()
        .unwrap();
    let compacted = node
        .warehouse
        .compact(warehouse::Table::Elevations, &|_, _| {})
        .await
        .unwrap();
    assert!(compacted.partitions > 0, "{compacted:?}");
    let reports = retention_with(&node, "contoso", |s| s.elevation_retention_days = Some(10)).await;
    let today = test_now().date_naive();
    let keep_from = today - chrono::Duration::days(10);
    let kept: u64 = truth
        .per_day
        .iter()
        .filter(|d| d.date >= keep_from)
        .map(|d| d.managed + d.unmanaged)
        .sum();
    assert!(
        kept > 0 && kept < truth.totals.elevations,
        "{kept} of {}",
        truth.totals.elevations
    );
    assert_eq!(reports[0].rows_deleted, truth.totals.elevations - kept);

    // The version landed before compaction and retention, read as a report planned then reads it
    // (distinct ids: a plain count would be answered from the log's statistics, reading no file;
    // the expired days, which that version still names, are pruned by their partition).
    let (ctx, _) = queries::pinned_session(
        &node.warehouse,
        &[(warehouse::Table::Elevations, Some(landed_version))],
        Some("contoso"),
    )
    .await
    .unwrap();
    let kept_days =
        format!(r#"SELECT COUNT(DISTINCT id) AS n FROM elevations WHERE "eventDate" >= DATE '{keep_from}'"#);
    let batches = ctx.sql(&kept_days).await.unwrap().collect().await.unwrap();
    let count = datafusion::arrow::array::AsArray::as_primitive::<datafusion::arrow::datatypes::Int64Type>(
        batches[0].column(0),
    )
    .value(0);
    assert_eq!(count as u64, kept, "the kept days at the version before compaction");
    assert_eq!(node.counts("contoso").await.elevations(), kept);

    // The expired days are gone from disk, the files compaction replaced in them included.
    let files = parquet_files(&node.dir.path().join("warehouse/elevations/tenant=contoso"));
    let mut days = std::collections::BTreeSet::new();
    for file in &files {
        let folder = file.parent().unwrap().file_name().unwrap().to_str().unwrap().to_owned();
        let date = folder.trim_start_matches("eventDate=").to_owned();
        assert!(date >= keep_from.to_string(), "{} survived retention", file.display());
        days.insert(date);
    }
    // Each kept day holds its compacted file and the landed files it replaced.
    assert!(
        files.len() > days.len(),
        "the replaced files were vacuumed: {} files in {} days",
        files.len(),
        days.len()
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_nullable_column_does_not_break_reading_old_files() {
    let dir = temp_dir();
    let root = dir.path().join("warehouse");
    // An "old release" table: the current schema without `agentVersion`, with one row.
    let table_dir = root.join("elevations");
    std::fs::create_dir_all(&table_dir).unwrap();
    let full = warehouse::schema::elevation_schema();
    let old_fields: Vec<_> = full
        .fields()
        .iter()
        .filter(|f| f.name() != "agentVersion")
        .cloned()
        .collect();
    let old_schema = Arc::new(datafusion::arrow::datatypes::Schema::new(old_fields));
    let context = warehouse::rows::BatchContext {
        device_name: "OLD".into(),
        agent_version: Some("0.9".into()),
        ..batch_context("d-old", "b-old")
    };
    let event = warehouse::validate::elevation_from_json(
        &elevation_event("old-1", "userConfirmedElevation").to_string(),
        0,
        "d-old",
        &warehouse::ValidationContext::new(test_now()),
    )
    .unwrap();
    let rows = warehouse::rows::elevation_rows(&context, std::slice::from_ref(&event));
    let old_rows = rows
        .project(
            &(0..full.fields().len())
                .filter(|i| full.field(*i).name() != "agentVersion")
                .collect::<Vec<_>>(),
        )
        .unwrap();
    assert_eq!(old_rows.schema().fields().len(), old_schema.fields().len());
    let url = url::Url::from_directory_path(&table_dir).unwrap();
    let table = warehouse::deltalake::DeltaTableBuilder::from_url(url)
        .unwrap()
        .build()
        .unwrap();
    use warehouse::deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
    let columns: warehouse::deltalake::kernel::StructType = old_schema.as_ref().try_into_kernel().unwrap();
    let table = table
        .create()
        .with_columns(columns.fields().cloned())
        .with_partition_columns(["tenant", "eventDate"])
        .await
        .unwrap();
    table.write(vec![old_rows]).await.unwrap();

    // The current release opens it, adds the column and appends.
    let warehouse = warehouse::Warehouse::new(warehouse::Location::Local(root));
    let new_context = warehouse::rows::BatchContext {
        batch_id: "b-new".into(),
        agent_version: Some("1.4.0".into()),
        ..context
    };
    let mut new_event = event;
    new_event.id = "new-1".into();
    let new_rows = warehouse::rows::elevation_rows(&new_context, &[new_event]);
    warehouse
        .append(warehouse::Table::Elevations, vec![new_rows], None)
        .await
        .unwrap();
    let text = query_text(&warehouse, r#"SELECT id, "agentVersion" FROM elevations ORDER BY id"#).await;
    assert!(text.contains("| new-1 | 1.4.0        |"), "{text}");
    assert!(
        text.contains("| old-1 |              |"),
        "the old file reads as null: {text}"
    );

    // The old table recorded statistics of every column; opened by this release, it records
    // them of the columns readers skip files by only, in the files written from then on.
    let table = warehouse.load(warehouse::Table::Elevations).await.unwrap();
    let wanted = warehouse::Table::Elevations.statistics_columns();
    let configuration = table.snapshot().unwrap().metadata().configuration().clone();
    assert_eq!(configuration.get("delta.dataSkippingStatsColumns"), Some(&wanted));
    let files: Vec<_> = futures::TryStreamExt::try_collect(table.get_active_add_actions_by_partitions(&[]))
        .await
        .unwrap();
    assert_eq!(files.len(), 2);
    let mut new_files = 0;
    for file in files {
        let stats: serde_json::Value = serde_json::from_str(&file.stats().expect("statistics")).unwrap();
        let mut columns: Vec<String> = stats["minValues"].as_object().unwrap().keys().cloned().collect();
        columns.sort();
        if columns.contains(&"upn".to_owned()) {
            continue; // the old release's file keeps what it recorded
        }
        new_files += 1;
        let mut expected: Vec<String> = wanted.split(',').map(str::to_owned).collect();
        expected.sort();
        assert_eq!(columns, expected, "{stats}");
        assert_eq!(stats["numRecords"], 1);
    }
    assert_eq!(new_files, 1, "one file written with the limited statistics");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_writing_the_same_tables_lose_nothing_and_duplicate_nothing() {
    let dir = temp_dir();
    let shared = dir.path().join("shared-warehouse");
    let shared = shared.to_str().unwrap();
    let (bodies, truth) = fleet(41, 50, 4, "contoso");
    let mut servers = Vec::new();
    for node in ["node-a", "node-b"] {
        let data = dir.path().join(node);
        let (key, _) = create_agent_key(&data, "contoso").await;
        let server = start_server(&data, &["--warehouse", shared, "--land-interval-ms", "30"]);
        servers.push((server, key));
    }
    // A load balancer alternating between the nodes; each agent retries on the same node.
    let mut halves = [Vec::new(), Vec::new()];
    for (i, body) in bodies.into_iter().enumerate() {
        halves[i % 2].push(body);
    }
    let uploads: Vec<_> = servers
        .iter()
        .zip(halves)
        .map(|((server, key), half)| {
            let client = ingest::AgentClient::new(&server.base, key);
            tokio::spawn(async move { client.upload_all(half, 8).await.unwrap() })
        })
        .collect();
    for upload in uploads {
        upload.await.unwrap();
    }
    for (server, _) in servers {
        assert!(server.terminate().success());
    }
    let warehouse = warehouse::Warehouse::new(warehouse::Location::parse(shared).unwrap());
    let counts = queries::landed_counts(&warehouse, "contoso").await.unwrap();
    assert_eq!(
        (counts.elevations(), counts.managed(), counts.diagnostics),
        (truth.totals.elevations, truth.totals.managed, truth.totals.diagnostics)
    );
    let ctx = queries::session(&warehouse).await.unwrap();
    let batches = ctx
        .sql("SELECT COUNT(DISTINCT id) AS n FROM elevations")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let n = datafusion::arrow::array::AsArray::as_primitive::<datafusion::arrow::datatypes::Int64Type>(
        batches[0].column(0),
    )
    .value(0);
    assert_eq!(n as u64, truth.totals.elevations, "an event id landed twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_engines_read_the_same_numbers_python_deltalake_and_duckdb() {
    let mut node = Node::start().await;
    let (bodies, truth) = fleet(51, 40, 5, "contoso");
    ingest::AgentClient::new(&node.base, &node.agent_key)
        .upload_all(bodies, 8)
        .await
        .unwrap();
    node.land_all().await;
    // Compacted and uncompacted files both: compact only the diagnostics.
    node.warehouse
        .compact(warehouse::Table::Diagnostics, &|_, _| {})
        .await
        .unwrap();
    // The rollups too: their files are LZ4, not zstd like the raw tables'.
    node.warehouse.refresh_rollups().await.unwrap();
    node.stop().await;
    let script = r#"
import json, sys
import duckdb
from deltalake import DeltaTable
root = sys.argv[1]
out = {}
for name in ["elevations", "diagnostics"]:
    dt = DeltaTable(f"{root}/{name}")
    out[name + "_pyarrow_rows"] = dt.to_pyarrow_table().num_rows
    files = dt.file_uris()
    con = duckdb.connect()
    if name == "elevations":
        rows = con.execute(
            "SELECT \"elevationType\", COUNT(*) FROM read_parquet(?, hive_partitioning = true) GROUP BY 1", [files]
        ).fetchall()
        out["duckdb_by_type"] = {t: n for t, n in rows}
    else:
        out["duckdb_diagnostics"] = con.execute("SELECT COUNT(*) FROM read_parquet(?)", [files]).fetchone()[0]
counts = DeltaTable(f"{root}/daily_counts")
out["rollup_pyarrow_elevations"] = counts.to_pyarrow_table().column("elevations").to_pylist()
rows = duckdb.connect().execute(
    "SELECT \"elevationType\", SUM(elevations)::BIGINT FROM read_parquet(?) GROUP BY 1", [counts.file_uris()]
).fetchall()
out["rollup_duckdb_by_type"] = {t: n for t, n in rows}
print(json.dumps(out))
"#;
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(node.dir.path().join("warehouse"))
        .output()
        .expect("python3 runs (.ci/run installs deltalake and duckdb)");
    assert!(
        output.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let found: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(found["elevations_pyarrow_rows"], truth.totals.elevations);
    assert_eq!(found["diagnostics_pyarrow_rows"], truth.totals.diagnostics);
    assert_eq!(found["duckdb_diagnostics"], truth.totals.diagnostics);
    let mut expected_by_type: BTreeMap<String, u64> = BTreeMap::new();
    for day in &truth.per_day {
        for (t, n) in &day.by_type {
            *expected_by_type.entry(t.clone()).or_default() += n;
        }
    }
    let by_type: BTreeMap<String, u64> =
        serde_json::from_value(found["duckdb_by_type"].clone()).expect("a map of counts");
    assert_eq!(by_type, expected_by_type);
    let rollup_by_type: BTreeMap<String, u64> =
        serde_json::from_value(found["rollup_duckdb_by_type"].clone()).expect("a map of counts");
    assert_eq!(rollup_by_type, expected_by_type, "DuckDB over the rollup's files");
    let pyarrow_total: u64 = serde_json::from_value::<Vec<u64>>(found["rollup_pyarrow_elevations"].clone())
        .expect("a list of counts")
        .iter()
        .sum();
    assert_eq!(pyarrow_total, truth.totals.elevations, "deltalake over the rollup");
}

/// `(day, elevationType) → elevations` from the rollup table.
async fn rollup_by_day_and_type(node: &Node) -> BTreeMap<(String, String), u64> {
    node.sql(
        r#"SELECT CAST("eventDate" AS VARCHAR) AS d, "elevationType" AS t, CAST(SUM(elevations) AS BIGINT) AS n
           FROM daily_elevations WHERE tenant = 'contoso' GROUP BY 1, 2"#,
    )
    .await
    .into_iter()
    .map(|r| {
        (
            (r["d"].as_str().unwrap().to_owned(), r["t"].as_str().unwrap().to_owned()),
            r["n"].as_u64().unwrap(),
        )
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_agree_with_raw_events_and_outlive_their_retention() {
    let mut node = Node::start().await;
    let (bodies, truth) = fleet(71, 40, 20, "contoso");
    ingest::AgentClient::new(&node.base, &node.agent_key)
        .upload_all(bodies, 8)
        .await
        .unwrap();
    node.land_all().await;
    let mut expected = BTreeMap::new();
    for day in &truth.per_day {
        for (t, n) in &day.by_type {
            expected.insert((day.date.to_string(), t.clone()), *n);
        }
    }
    let days_with_events = truth.per_day.iter().filter(|d| d.managed + d.unmanaged > 0).count();
    let report = node.warehouse.refresh_rollups().await.unwrap();
    assert_eq!(report.days_refreshed, days_with_events);
    assert_eq!(
        rollup_by_day_and_type(&node).await,
        expected,
        "rollups equal the ground truth"
    );
    // Distinct users per day from rollups equal those from raw events.
    let users = |table: &str| {
        format!(
            r#"SELECT CAST("eventDate" AS VARCHAR) AS d, COUNT(DISTINCT upn) AS n FROM {table} GROUP BY 1 ORDER BY 1"#
        )
    };
    assert_eq!(
        node.sql(&users("daily_elevations")).await,
        node.sql(&users("elevations")).await
    );
    assert_eq!(
        node.warehouse.refresh_rollups().await.unwrap().days_refreshed,
        0,
        "nothing changed"
    );

    // Raw elevations expire after 10 days; the rollups stay.
    let settings = node
        .control
        .update_settings(&crate::support::test_actor(), "contoso", |s| {
            s.elevation_retention_days = Some(10)
        })
        .await
        .unwrap();
    let reports =
        warehouse::maintenance::retention_all(&node.warehouse, &|_| settings.retention(), test_now().date_naive())
            .await
            .unwrap();
    assert!(reports[0].rows_deleted > 0);
    assert_eq!(reports[2].rows_deleted, 0, "rollups are kept 7 years");
    assert_eq!(node.warehouse.refresh_rollups().await.unwrap().days_refreshed, 0);
    assert_eq!(
        rollup_by_day_and_type(&node).await,
        expected,
        "rollups outlive raw retention"
    );

    // A late upload changes one day: only that day is recomputed.
    let late = batch(
        "b-late",
        "all",
        vec![elevation_event("late-1", "unmanagedElevation")],
        vec![],
    );
    assert_eq!(node.upload(&late).await.status, 200);
    node.land_all().await;
    assert_eq!(node.warehouse.refresh_rollups().await.unwrap().days_refreshed, 1);
    *expected
        .entry(("2026-11-20".to_owned(), "unmanagedElevation".to_owned()))
        .or_default() += 1;
    assert_eq!(rollup_by_day_and_type(&node).await, expected);
    node.stop().await;
}

/// The answer of `sql` over the warehouse's latest tables, as a text table.
async fn query_text(warehouse: &warehouse::Warehouse, sql: &str) -> String {
    let ctx = queries::session(warehouse).await.unwrap();
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string()
}

/// A valid elevation event of `device`, as the warehouse stores it, dated like
/// [`elevation_event`].
fn stored_elevation(id: &str, device: &str) -> warehouse::ElevationEvent {
    warehouse::validate::elevation_from_json(
        &elevation_event(id, "userConfirmedElevation").to_string(),
        0,
        device,
        &warehouse::ValidationContext::new(test_now()),
    )
    .unwrap()
}

/// Appends each landing to `elevations` (one commit, so one file, each), then compacts it.
async fn land_then_compact(
    warehouse: &warehouse::Warehouse,
    landings: Vec<(warehouse::BatchContext, Vec<warehouse::ElevationEvent>)>,
) -> warehouse::compaction::CompactionReport {
    for (context, events) in landings {
        let rows = warehouse::rows::elevation_rows(&context, &events);
        warehouse
            .append(warehouse::Table::Elevations, vec![rows], None)
            .await
            .unwrap();
    }
    warehouse
        .compact(warehouse::Table::Elevations, &|_, _| {})
        .await
        .unwrap()
}

/// Two landings of `per_landing` elevations each of device `d-big` on one day, distinct ids,
/// 5,000 users.
fn two_big_landings(per_landing: u64) -> Vec<(warehouse::BatchContext, Vec<warehouse::ElevationEvent>)> {
    let template = stored_elevation("template", "d-big");
    (0..2)
        .map(|landing| {
            let events = (0..per_landing)
                .map(|i| {
                    let mut e = template.clone();
                    e.id = format!("e-{landing}-{i}");
                    e.upn = format!("user{}@contoso.com", i % 5_000);
                    e
                })
                .collect();
            (batch_context("d-big", &format!("b-{landing}")), events)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_of_more_than_65536_rows_compacts_and_rolls_up() {
    // Delta hands partition columns over with 16-bit dictionary keys; a partition past 65,536
    // rows once broke compaction's duplicate removal.
    let dir = temp_dir();
    let warehouse = warehouse::Warehouse::new(warehouse::Location::Local(dir.path().join("warehouse")));
    // Enough rows that each of the aggregate's hash partitions holds more than 65,536 ids.
    let per_landing = 100_000;
    let landings = two_big_landings(per_landing);
    let report = land_then_compact(&warehouse, landings).await;
    assert_eq!(report.partitions, 1);
    assert_eq!(
        (report.rows_before, report.rows_after),
        (2 * per_landing, 2 * per_landing)
    );
    let rollups = warehouse.refresh_rollups().await.unwrap();
    assert_eq!(rollups.days_refreshed, 1);
    let text = query_text(&warehouse, r#"SELECT SUM(elevations) AS n FROM daily_elevations"#).await;
    assert!(text.contains(&format!("| {} |", 2 * per_landing)), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_whose_sort_would_spill_into_the_disk_reserve_waits_and_the_other_days_compact() {
    // A soak's compaction once spilled 28 GB beside the write-ahead log and nearly filled its
    // disk. With all the free disk reserved, a day too large for the sort's memory cannot
    // spill: it is left as it was, and a day that fits in memory still compacts.
    let dir = temp_dir();
    let root = dir.path().join("warehouse");
    let open = |reserve: Option<u64>| {
        warehouse::Warehouse::new(warehouse::Location::Local(root.clone()))
            .with_maintenance_memory(16 << 20)
            .with_spill_disk_reserve(reserve)
    };
    let reserved = open(Some(u64::MAX));
    let template = stored_elevation("template", "d-big");
    let big_day = template.event_date_time.date_naive().to_string();
    let per_landing = 80_000;
    let mut landings = two_big_landings(per_landing);
    landings.extend((0..2).map(|landing| {
        let mut e = template.clone();
        e.id = format!("small-{landing}");
        e.event_date_time -= chrono::Duration::days(1);
        (batch_context("d-small", &format!("s-{landing}")), vec![e])
    }));
    let report = land_then_compact(&reserved, landings).await;
    assert_eq!(
        report.deferred_for_disk,
        [("contoso".to_owned(), big_day)],
        "{report:?}"
    );
    assert_eq!(
        (report.partitions, report.rows_after),
        (1, 2),
        "the small day compacts: {report:?}"
    );
    let spill = root.join(warehouse::maintenance::SPILL_FOLDER);
    assert_eq!(
        std::fs::read_dir(&spill).unwrap().count(),
        0,
        "spill files left in {spill:?}"
    );
    let count = |w: warehouse::Warehouse| async move {
        query_text(&w, "SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS ids FROM elevations").await
    };
    let all = 2 * per_landing + 2;
    assert!(
        count(open(Some(u64::MAX)))
            .await
            .contains(&format!("| {all} | {all} |"))
    );

    // Room again: the day compacts, spilling, into the same rows.
    let report = open(Some(0))
        .compact(warehouse::Table::Elevations, &|_, _| {})
        .await
        .unwrap();
    assert!(report.deferred_for_disk.is_empty(), "{report:?}");
    assert_eq!(
        (report.partitions, report.rows_after),
        (1, 2 * per_landing),
        "{report:?}"
    );
    let text = count(open(None)).await;
    assert!(text.contains(&format!("| {all} | {all} |")), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_of_one_id_that_differ_in_time_keep_only_the_first_received() {
    // A faulty agent re-sends an event id with another time: compaction's order does not put
    // the copies side by side, and only the first received copy is kept all the same.
    let dir = temp_dir();
    let warehouse = warehouse::Warehouse::new(warehouse::Location::Local(dir.path().join("warehouse")));
    let event = |id: &str, hour: u32| {
        let mut e = stored_elevation(id, "d-1");
        e.event_date_time = chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 11, 20, hour, 0, 0).unwrap();
        e
    };
    // The first received copy is the later event; the re-sent one sorts first.
    let landings = [
        (0, vec![event("faulty", 11), event("a", 10)]),
        (1, vec![event("faulty", 9), event("b", 10), event("faulty", 11)]),
    ]
    .into_iter()
    .map(|(landing, events)| {
        let mut context = batch_context("d-1", &format!("b-{landing}"));
        context.ingested_at += chrono::Duration::minutes(landing);
        (context, events)
    })
    .collect();
    let report = land_then_compact(&warehouse, landings).await;
    assert_eq!((report.rows_before, report.rows_after), (5, 3));
    let text = query_text(
        &warehouse,
        r#"SELECT id, "batchId", CAST("eventDateTime" AS VARCHAR) AS t FROM elevations ORDER BY id"#,
    )
    .await;
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("| ")).skip(1).collect();
    assert_eq!(rows.len(), 3, "{text}");
    assert!(rows[0].contains("| a ") && rows[1].contains("| b "), "{text}");
    assert!(
        rows[2].contains("| faulty | b-0 ") && rows[2].contains("T11:00:00"),
        "{text}"
    );
}

#[tokio::test]
async fn after_a_hundred_landing_commits_a_checkpoint_exists_and_a_fresh_reader_sees_every_row() {
    // deltalake's post-commit hook checkpoints every 100th commit (the table's
    // `delta.checkpointInterval`); appends go through `CommitBuilder`, which must keep it, or
    // every reader of a busy table would replay thousands of commits.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("warehouse");
    let warehouse = warehouse::Warehouse::new(warehouse::Location::Local(root.clone()));
    let log = root.join("elevations").join("_delta_log");
    let checkpoints = || {
        std::fs::read_dir(&log)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".checkpoint.parquet"))
                    .count()
            })
            .unwrap_or(0)
    };
    let validation = warehouse::ValidationContext::new(test_now());
    let mut appended_versions = Vec::new();
    assert_eq!(checkpoints(), 0);
    for n in 0..101 {
        let context = batch_context("d-1", &format!("b-{n}"));
        let json = elevation_event(&format!("e-{n}"), "userConfirmedElevation").to_string();
        let event = warehouse::validate::elevation_from_json(&json, 0, "d-1", &validation).unwrap();
        let rows = warehouse::rows::elevation_rows(&context, &[event]);
        let appended = warehouse
            .append(warehouse::Table::Elevations, vec![rows], None)
            .await
            .unwrap();
        appended_versions.push(appended.version);
    }
    assert!(appended_versions.contains(&100), "{appended_versions:?}");
    assert!(checkpoints() >= 1, "no checkpoint after 101 commits");
    assert!(log.join("_last_checkpoint").exists());
    // A new process starts from the checkpoint and the one commit after it.
    let fresh = warehouse::Warehouse::new(warehouse::Location::Local(root));
    let ctx = queries::session(&fresh).await.unwrap();
    let batches = ctx
        .sql("SELECT count(DISTINCT id) AS n FROM elevations")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let n = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<datafusion::arrow::array::Int64Array>()
        .unwrap()
        .value(0);
    assert_eq!(n, 101);
}
