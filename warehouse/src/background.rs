//! The runtime of background work — landing acknowledged uploads, maintenance, and the parsing
//! and validation of each upload — at a lower CPU priority than the threads that answer reports
//! and pages.
//!
//! Why: on a busy node, uploads and landing can take every core, and a report waits behind
//! them (measured on 14.6 M elevations: the Overview took 131 ms idle and 1.47 s while ingest
//! saturated the machine). Agents do not mind an upload taking a few milliseconds longer; an
//! admin minds a page taking seconds. This runtime's threads run at nice [`NICE`]: when a
//! report and background work both want a core, the report gets about nine tenths of it; when
//! nothing else runs, background work gets everything (the scheduler wastes no idle CPU).

use std::sync::OnceLock;

use thread_priority::{ThreadPriority, ThreadPriorityValue};
use tokio::runtime::{Builder, Handle, Runtime};

/// The nice value of background threads (0 is normal, 19 the lowest priority).
pub const NICE: i32 = 10;

/// The background runtime, started on first use and kept for the life of the process (as many
/// worker threads as cores, and its own pool for blocking work).
pub fn handle() -> &'static Handle {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            Builder::new_multi_thread()
                .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
                .thread_name("elevation-background")
                .on_thread_start(lower_priority)
                .enable_all()
                .build()
                .expect("the background runtime starts")
        })
        .handle()
}

/// Lowers the calling thread to nice [`NICE`] (on Linux the nice value is a per-thread
/// attribute), for background threads that are not the runtime's, such as the write-ahead
/// log's. A failure only costs the priority, so it is logged, never fatal.
pub fn lower_priority() {
    // thread-priority maps 0–99 onto nice 19 to -20; 22 is nice 10 (checked by the test below).
    let priority = ThreadPriorityValue::try_from(22u8).expect("in 0..=99");
    if let Err(e) = thread_priority::set_current_thread_priority(ThreadPriority::Crossplatform(priority)) {
        tracing::warn!(error = ?e, "cannot lower a background thread's priority; reports may wait behind ingest");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calling thread's nice value, from `/proc/thread-self/stat` (the 19th field).
    fn own_nice() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let after_name = stat.rsplit_once(") ").unwrap().1;
        after_name.split_whitespace().nth(16).unwrap().parse().unwrap()
    }

    #[test]
    fn background_threads_run_at_the_lower_priority_and_others_do_not() {
        let before = own_nice();
        let worker = handle().block_on(async { handle().spawn(async { own_nice() }).await.unwrap() });
        let blocking = handle().block_on(async { handle().spawn_blocking(own_nice).await.unwrap() });
        assert_eq!((worker, blocking), (before + NICE, before + NICE));
        assert_eq!(own_nice(), before, "the caller's own priority is untouched");
    }
}
