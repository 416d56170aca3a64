//! `elevation demo`: the whole pipeline on a simulated fleet. At this stage of the product it
//! simulates the fleet and prints the ground truth's headline figures; every later stage
//! (ingest over HTTP, the warehouse, reports, suggestions) joins the run as it is built.

use std::path::Path;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use simulator::truth::FileCount;

/// Simulates `devices` devices over `days` days into `dir` and prints what a report reader
/// would want to know first.
pub(crate) fn run(dir: &Path, seed: u64, devices: u32, days: u32, end: NaiveDate) -> Result<()> {
    let config = simulator::SimConfig::new(seed, devices, days, end);
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing the previous demo in {}", dir.display()))?;
    }
    let written = simulator::write_dir(&config, dir).context("simulating the demo fleet")?;
    let t = &written.truth;
    let last_day = t.to.pred_opt().unwrap_or(t.to);
    println!(
        "elevation demo: a simulated fleet (seed {seed}), {} to {last_day}",
        t.from
    );
    println!();
    println!(
        "Fleet      {} devices, {} users ({} keep local admin rights), {} files, {} rules in {} policies",
        t.fleet.devices, t.fleet.users, t.fleet.admin_users, t.fleet.applications, t.fleet.rules, t.fleet.policies
    );
    let levels: Vec<String> = ["all", "managed", "diagnostic", "none"]
        .iter()
        .map(|l| format!("{l} {}", t.fleet.devices_per_level.get(*l).copied().unwrap_or(0)))
        .collect();
    println!("Levels     {}", levels.join(" · "));
    println!(
        "Uploaded   {} batches: {} elevations ({} managed, {} unmanaged) and {} diagnostic events",
        t.totals.batches, t.totals.elevations, t.totals.managed, t.totals.unmanaged, t.totals.diagnostics
    );
    println!(
        "Held back  {} elevations and {} diagnostic events never left devices whose reporting level forbids them",
        t.totals.filtered_elevations, t.totals.filtered_diagnostics
    );
    println!();
    println!("Readiness (whole window)");
    println!(
        "  users with only unmanaged elevations  {:>6}",
        t.overview.users_only_unmanaged
    );
    println!("  users with both                       {:>6}", t.overview.users_both);
    println!(
        "  users with only managed elevations    {:>6}   ready to run without admin rights",
        t.overview.users_only_managed
    );
    print_files("Frequently unmanaged", &t.overview.frequently_unmanaged);
    print_files(
        "Frequently approved by support",
        &t.overview.frequently_approved_by_support,
    );
    print_files("Frequently denied", &t.overview.frequently_denied);
    println!();
    println!("Patterns planted for rule tuning (ground truth)");
    for p in &t.planted_patterns {
        println!(
            "  {:<32} {:<24} {:>5} events {:>4} users  {}",
            p.kind, p.file_name, p.events, p.users, p.expected
        );
    }
    println!();
    println!("Wrote");
    println!("  upload-ready batches  {}", written.batches_dir.display());
    println!("  ground truth          {}", written.ground_truth.display());
    println!("  simulated world       {}", written.world.display());
    println!();
    println!(
        "Not part of the demo yet: uploading over HTTP and the warehouse (issue #3), reports (#5), \
         rule suggestions (#6) and dashboards."
    );
    Ok(())
}

fn print_files(title: &str, files: &[FileCount]) {
    println!("{title}");
    if files.is_empty() {
        println!("  (none)");
    }
    for f in files.iter().take(5) {
        println!(
            "  {:<32} {:>6} elevations by {:>4} users",
            f.file_name, f.count, f.users
        );
    }
}
