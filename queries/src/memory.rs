//! How much memory queries may hold. Every session this crate opens shares one DataFusion
//! runtime whose memory pool is the process's budget for queries: sorts and aggregations that
//! outgrow their share spill to temporary files, and an operator that cannot spill fails with
//! [`crate::QueryError::MemoryExhausted`] (the API answers `503`) instead of the process being killed.
//! The budget is a property of the process, like its address space, so it is set once at
//! start (`--query-memory`); until then it is [`DEFAULT_SHARE`] of the machine's memory.

use std::sync::{Arc, OnceLock};

use datafusion::execution::memory_pool::{FairSpillPool, MemoryLimit};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};

/// The default budget: a quarter of physical memory, leaving the rest to ingest, the page
/// cache and the reports' own merging outside DataFusion.
pub const DEFAULT_SHARE: f64 = 0.25;

/// Without `/proc/meminfo` (not Linux), the machine is assumed to have this much.
const ASSUMED_MACHINE_BYTES: u64 = 8 << 30;

static RUNTIME: OnceLock<Arc<RuntimeEnv>> = OnceLock::new();

/// Sets the process's query memory budget. Only the first call counts, and only before the
/// first query: answers `false` when the budget was already fixed.
pub fn set_query_memory(bytes: u64) -> bool {
    let mut installed = false;
    RUNTIME.get_or_init(|| {
        installed = true;
        runtime_of(bytes)
    });
    installed
}

/// The budget in force (the default until [`set_query_memory`]).
pub fn query_memory() -> u64 {
    match runtime().memory_pool.memory_limit() {
        MemoryLimit::Finite(bytes) => bytes as u64,
        MemoryLimit::Infinite | MemoryLimit::Unknown => u64::MAX,
    }
}

/// The default budget on this machine.
pub fn default_query_memory() -> u64 {
    (machine_memory() as f64 * DEFAULT_SHARE) as u64
}

pub(crate) fn runtime() -> &'static Arc<RuntimeEnv> {
    RUNTIME.get_or_init(|| runtime_of(default_query_memory()))
}

fn runtime_of(bytes: u64) -> Arc<RuntimeEnv> {
    RuntimeEnvBuilder::new()
        // Fair: concurrent queries each get a share instead of the first taking it all.
        .with_memory_pool(Arc::new(FairSpillPool::new(bytes.min(usize::MAX as u64) as usize)))
        .build_arc()
        .expect("a runtime with a memory pool and the default disk manager")
}

/// Bytes as people write them: `512 MiB`, `1 KiB`, `12.5 GiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 {
        format!("{value} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A session on the shared runtime. What it spills is zstd-compressed, as maintenance's is:
/// uncompressed Arrow runs are ~60 times their Parquet (BENCHMARKS.md, "Compaction's spilled
/// runs, compressed").
pub(crate) fn new_session() -> SessionContext {
    let mut config = SessionConfig::new();
    config.options_mut().execution.spill_compression = datafusion::common::config::SpillCompression::Zstd;
    SessionContext::new_with_config_rt(config, Arc::clone(runtime()))
}

/// Physical memory from `/proc/meminfo`.
pub fn machine_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(ASSUMED_MACHINE_BYTES, |kib| kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_has_memory_and_the_default_is_a_share_of_it() {
        let machine = machine_memory();
        assert!(machine > 0);
        let default = default_query_memory();
        assert!(default > 0 && default < machine);
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human(1024), "1 KiB");
        assert_eq!(human(512 << 20), "512 MiB");
        assert_eq!(human((25 << 30) / 2), "12.5 GiB");
        assert_eq!(human(100), "100 bytes");
    }
}
