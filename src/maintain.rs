//! `elevation compact`, `elevation retention` and the server's maintenance schedule: glue
//! around `warehouse::maintenance`, with a progress bar on the terminal.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use chrono::NaiveDate;
use control::ControlPlane;
use warehouse::{Clock, Location, Retention, Table, Warehouse};

use crate::DataArgs;

/// Compacts `tables` in `memory` bytes (then spilling, keeping `disk_reserve` of the disk
/// free), showing a progress bar per table. Days left for want of disk fail the command once
/// every table has had its turn.
pub(crate) async fn compact(
    location: Location,
    tables: &[Table],
    memory: usize,
    disk_reserve: Option<u64>,
) -> Result<()> {
    let warehouse = Warehouse::new(location)
        .with_maintenance_memory(memory)
        .with_spill_disk_reserve(disk_reserve);
    let mut deferred = Vec::new();
    for &table in tables {
        let bar = indicatif::ProgressBar::new(0).with_message(format!("compacting {}", table.name()));
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg:24} [{bar:30}] {pos}/{len} partitions {elapsed}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        let report = warehouse
            .compact(table, &|done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            })
            .await?;
        bar.finish_and_clear();
        println!(
            "{}: {} partitions compacted, {} files → {}, {} rows → {} ({} duplicates removed), {:.1} MB → {:.1} MB{}",
            table.name(),
            report.partitions,
            report.files_before,
            report.files_after,
            report.rows_before,
            report.rows_after,
            report.rows_before - report.rows_after,
            report.bytes_before as f64 / 1e6,
            report.bytes_after as f64 / 1e6,
            if report.conflicts > 0 {
                format!(", {} partitions busy (retry later)", report.conflicts)
            } else {
                String::new()
            }
        );
        deferred.extend(
            report
                .deferred_for_disk
                .iter()
                .map(|(tenant, day)| format!("{} {tenant} {day}", table.name())),
        );
    }
    let rollups = warehouse.refresh_rollups().await?;
    println!(
        "rollups (daily_elevations, daily_counts, daily_users, daily_devices, daily_user_sets, daily_denied, daily_suggestions): {} tenant-days refreshed from raw elevations ({} rows)",
        rollups.days_refreshed, rollups.rows_written
    );
    if !deferred.is_empty() {
        anyhow::bail!(
            "{} days not compacted: their sort would have spilled into the free disk kept for the write-ahead log \
             (free some disk, or lower --maintenance-disk-reserve-mib, or raise --maintenance-memory-mib): {}",
            deferred.len(),
            deferred.join(", ")
        );
    }
    Ok(())
}

/// Every tenant's retention windows, from the control plane.
async fn retention_windows(control: &ControlPlane) -> Result<impl Fn(&str) -> Retention + Sync> {
    let settings = control.tenant_settings().await?;
    Ok(move |tenant: &str| settings.get(tenant).map(|s| s.retention()).unwrap_or_default())
}

/// Applies every tenant's retention windows.
pub(crate) async fn retention(data: &DataArgs, location: Location, today: NaiveDate) -> Result<()> {
    let warehouse = Warehouse::new(location);
    let control = crate::admin::open(data).await?;
    let lookup = retention_windows(&control).await?;
    let reports = warehouse::maintenance::retention_all(&warehouse, &lookup, today).await?;
    for (table, report) in Table::EVERY.iter().zip(reports) {
        println!(
            "{}: {} rows past retention deleted, {} files removed from storage",
            table.name(),
            report.rows_deleted,
            report.files_vacuumed
        );
    }
    Ok(())
}

/// The lease under which a node runs the maintenance pass.
pub(crate) const LEASE: &str = "maintenance";

/// The server's schedule: one `warehouse::maintenance::scheduled_pass` every `every` while this
/// node holds the maintenance lease (several nodes on one control plane: one at a time), with
/// the tenants' retention windows read from the control plane each time. Failures are logged
/// and retried next time; they never stop ingest.
pub(crate) async fn every(
    warehouse: Arc<Warehouse>,
    control: Arc<ControlPlane>,
    every: Duration,
    lease: Arc<control::LeaseKeeper>,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await; // the first tick is immediate; start one interval after boot
    loop {
        ticks.tick().await;
        if !lease.held() {
            tracing::debug!("another node holds the maintenance lease");
            continue;
        }
        let today = warehouse::SystemClock.now().date_naive();
        let lookup = match retention_windows(&control).await {
            Ok(lookup) => Some(lookup),
            Err(e) => {
                tracing::error!(error = %e, "tenant settings unavailable");
                None
            }
        };
        let lookup = lookup.as_ref().map(|l| l as &(dyn Fn(&str) -> Retention + Sync));
        warehouse::maintenance::scheduled_pass(&warehouse, lookup, today).await;
    }
}
