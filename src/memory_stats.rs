//! The process's memory as gauges on `/metrics`: what the allocator holds for live data, what
//! it keeps resident, and the resident set the kernel counts. Their gap tells an operator (and
//! a benchmark) whether a growing RSS is live data or memory the allocator has not returned.

use std::time::Duration;

/// Publishes the gauges every `every`, for the life of the process.
pub(crate) async fn publish_every(every: Duration) {
    let mut ticks = tokio::time::interval(every);
    loop {
        ticks.tick().await;
        publish();
    }
}

/// Sets the gauges once.
pub(crate) fn publish() {
    #[cfg(not(target_env = "msvc"))]
    {
        use tikv_jemalloc_ctl::{epoch, stats};
        // jemalloc's statistics are a snapshot taken when the epoch advances.
        if epoch::advance().is_ok() {
            for (name, value) in [
                ("elevation_allocator_allocated_bytes", stats::allocated::read()),
                ("elevation_allocator_resident_bytes", stats::resident::read()),
                ("elevation_allocator_retained_bytes", stats::retained::read()),
            ] {
                if let Ok(bytes) = value {
                    metrics::gauge!(name).set(bytes as f64);
                }
            }
        }
    }
    if let Some(bytes) = resident_set_bytes() {
        metrics::gauge!("elevation_process_resident_bytes").set(bytes as f64);
    }
}

/// `VmRSS` from `/proc/self/status` (Linux).
fn resident_set_bytes() -> Option<u64> {
    status_kib("self", "VmRSS").map(|kib| kib * 1024)
}

/// A `kB` field (`VmRSS`, `VmHWM`, …) of `/proc/PROCESS/status`, where PROCESS is a pid or
/// `self` (Linux).
pub(crate) fn status_kib(process: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{process}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
