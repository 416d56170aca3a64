//! Landing: durable batches become rows in the warehouse tables.
//!
//! The log thread pushes records here in sequence order. The lander takes everything waiting
//! every `land_interval` (or sooner when the buffer passes `roll_bytes`), writes one commit per
//! table — zstd Parquet, one file per partition touched — and records in the same commit
//! `txn(appId = node id, version = highest sequence landed)`. After a crash, replay lands
//! exactly the records above that number: nothing twice, nothing lost.
//!
//! A table that fails to commit keeps its records in the buffer and is retried with backoff;
//! the write-ahead log keeps them on disk meanwhile, and uploads get `503` once the buffer is
//! full instead of growing memory without bound.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use tokio::sync::Notify;
use warehouse::{Table, Warehouse};

use crate::dedup::Dedup;
use crate::wal::{LoggedBatch, Wal};

/// A durable record waiting to land, and which tables still need its rows.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) record: LoggedBatch,
    /// `[elevations, diagnostics]`: false once landed (or when replay found it landed).
    pub(crate) needs: [bool; 2],
    bytes: usize,
}

/// The highest sequence number of this node each landed table ([`Table::ALL`]) holds: the
/// application transaction version its last landing committed with the rows.
pub(crate) async fn landed_through(
    warehouse: &Warehouse,
    node_id: &str,
) -> Result<[u64; 2], warehouse::WarehouseError> {
    let [first, second] = Table::ALL;
    let version = |table| async move {
        Ok::<_, warehouse::WarehouseError>(
            warehouse.transaction_version(table, node_id).await?.unwrap_or(0).max(0) as u64
        )
    };
    // Both at once: with storage unreachable, each waits out its retries. Both to the end:
    // delta-rs' kernel does not take a read dropped half-way (its executor thread panics).
    let (first, second) = tokio::join!(version(first), version(second));
    Ok([first?, second?])
}

impl Pending {
    /// Which tables ([`Table::ALL`]) a record with sequence number `seq` still needs, when each
    /// holds this node's records through `landed` ([`landed_through`]).
    pub(crate) fn needs_after(seq: u64, landed: [u64; 2]) -> [bool; 2] {
        [seq > landed[0], seq > landed[1]]
    }

    pub(crate) fn new(record: LoggedBatch, needs: [bool; 2]) -> Pending {
        let size = |b: &Option<RecordBatch>| b.as_ref().map_or(0, RecordBatch::get_array_memory_size);
        let bytes = size(&record.elevations) + size(&record.diagnostics) + 512;
        Pending { record, needs, bytes }
    }
}

/// Records between the log and the tables.
#[derive(Debug, Default)]
pub(crate) struct LandingBuffer {
    queue: Mutex<VecDeque<Pending>>,
    bytes: AtomicUsize,
    /// Records acknowledged and not yet landed: queued, or taken by a landing in progress.
    waiting: AtomicUsize,
    wake: Notify,
    /// Fired when a landing frees memory: uploads waiting for room below the limit look again.
    room: Notify,
    /// Uploads waiting in [`LandingBuffer::wait_for_room`].
    waiting_for_room: AtomicUsize,
    roll_bytes: usize,
}

impl LandingBuffer {
    pub(crate) fn new(roll_bytes: usize) -> LandingBuffer {
        LandingBuffer {
            roll_bytes,
            ..LandingBuffer::default()
        }
    }

    /// Appends records (in sequence order).
    pub(crate) fn push(&self, records: impl IntoIterator<Item = Pending>) {
        let mut queue = self.queue.lock().expect("not poisoned");
        let (mut added, mut count) = (0, 0);
        for pending in records {
            added += pending.bytes;
            count += 1;
            queue.push_back(pending);
        }
        drop(queue);
        self.waiting.fetch_add(count, Ordering::Relaxed);
        let total = self.bytes.fetch_add(added, Ordering::Relaxed) + added;
        metrics::gauge!("elevation_landing_buffer_bytes").set(total as f64);
        if total >= self.roll_bytes {
            self.wake.notify_one();
        }
    }

    /// Memory the waiting records hold.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Waits until the waiting records hold less than `limit` bytes, for at most `patience`.
    /// True when there is room. An upload that finds the backlog full waits here before it is
    /// turned away: a landing in progress usually frees the room within a second, and an
    /// agent told to come back later leaves the node idle in between.
    pub(crate) async fn wait_for_room(&self, limit: usize, patience: Duration) -> bool {
        if self.bytes() < limit {
            return true;
        }
        /// Counts a waiting upload until it stops waiting, also when its client goes away.
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                let left = self.0.fetch_sub(1, Ordering::Relaxed) - 1;
                metrics::gauge!("elevation_ingest_uploads_waiting_for_room").set(left as f64);
            }
        }
        let now_waiting = self.waiting_for_room.fetch_add(1, Ordering::Relaxed) + 1;
        metrics::gauge!("elevation_ingest_uploads_waiting_for_room").set(now_waiting as f64);
        let _waiting = Waiting(&self.waiting_for_room);
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            // Registered before the check, so a landing that ends in between is not missed.
            let freed = self.room.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.bytes() < limit {
                return true;
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return self.bytes() < limit;
            }
        }
    }

    /// Uploads waiting for a landing to make room.
    pub(crate) fn uploads_waiting_for_room(&self) -> usize {
        self.waiting_for_room.load(Ordering::Relaxed)
    }

    /// Records acknowledged and not yet landed, a landing in progress included: `0` means
    /// everything acknowledged is in the tables.
    pub(crate) fn len(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    fn take(&self) -> Vec<Pending> {
        self.queue.lock().expect("not poisoned").drain(..).collect()
    }

    /// Puts records back at the front (a landing failed), keeping the order.
    fn put_back(&self, chunk: Vec<Pending>) {
        let mut queue = self.queue.lock().expect("not poisoned");
        for pending in chunk.into_iter().rev() {
            queue.push_front(pending);
        }
    }

    fn release(&self, chunk: &[Pending]) {
        self.waiting.fetch_sub(chunk.len(), Ordering::Relaxed);
        let freed: usize = chunk.iter().map(|p| p.bytes).sum();
        let left = self.bytes.fetch_sub(freed, Ordering::Relaxed) - freed;
        metrics::gauge!("elevation_landing_buffer_bytes").set(left as f64);
        self.room.notify_waiters();
    }
}

/// Counters the lander keeps, for the demo, the benchmark and `/readyz`.
#[derive(Debug, Default)]
pub struct LandingStats {
    /// Commits made (both tables).
    pub commits: AtomicU64,
    /// Parquet files written.
    pub files: AtomicU64,
    /// Rows landed.
    pub rows: AtomicU64,
    /// Compressed bytes written.
    pub bytes: AtomicU64,
    /// Highest sequence number landed in every table that needed it.
    pub landed_seq: AtomicU64,
    /// Consecutive failed landings (0 when healthy).
    pub failing: AtomicU64,
    /// Batches not landed because another node sharing the control plane had claimed them
    /// first (retries that crossed nodes).
    pub stored_elsewhere: AtomicU64,
}

/// What the lander works with.
#[derive(Debug)]
pub(crate) struct Lander {
    pub(crate) buffer: Arc<LandingBuffer>,
    pub(crate) warehouse: Arc<Warehouse>,
    pub(crate) wal: Arc<Wal>,
    pub(crate) dedup: Arc<Dedup>,
    pub(crate) node_id: String,
    pub(crate) stats: Arc<LandingStats>,
    pub(crate) clock: Arc<dyn warehouse::Clock>,
    /// Where the approvals the landed support-approved elevations ran under are marked used.
    pub(crate) control: Arc<control::ControlPlane>,
    /// One landing at a time: a flush that finds the timer's landing in progress waits for
    /// it, so "flush returned" always means "everything acknowledged before is in the tables".
    pub(crate) landing: tokio::sync::Mutex<()>,
    /// The last landing failed: one of its commits may have reached the table all the same
    /// (storage that went away after taking the commit, before answering), so the next one
    /// first asks each table what it already holds.
    pub(crate) after_failure: std::sync::atomic::AtomicBool,
}

/// Why a landing failed.
#[derive(Debug, thiserror::Error)]
pub enum LandingError {
    /// Writing a table failed.
    #[error(transparent)]
    Warehouse(#[from] warehouse::WarehouseError),
    /// Claiming the batches in the shared control-plane database failed: nothing was landed.
    #[error("cannot claim the batches in the control-plane database: {0}")]
    Claims(#[from] control::ControlError),
    /// Persisting answers or deleting log segments failed.
    #[error("after landing: {0}")]
    Bookkeeping(String),
}

impl Lander {
    /// Lands everything waiting now. Returns the rows landed.
    pub(crate) async fn land_once(&self) -> Result<u64, LandingError> {
        let _one_at_a_time = self.landing.lock().await;
        let mut chunk = self.buffer.take();
        if chunk.is_empty() {
            return Ok(0);
        }
        match self.land(&mut chunk).await {
            Ok(rows) => {
                self.buffer.release(&chunk);
                self.stats.failing.store(0, Ordering::Relaxed);
                Ok(rows)
            }
            Err(e) => {
                self.stats.failing.fetch_add(1, Ordering::Relaxed);
                self.after_failure.store(true, Ordering::Relaxed);
                self.buffer.put_back(chunk);
                Err(e)
            }
        }
    }

    async fn land(&self, chunk: &mut [Pending]) -> Result<u64, LandingError> {
        let max_seq = chunk.iter().map(|p| p.record.seq).max().expect("chunk is not empty");
        let landing_started = Instant::now();
        if self.control.shared_between_nodes() {
            self.claim(chunk).await?;
        }
        // Before the rows are committed: a crash between the two replays these records and
        // marks them again (marking is idempotent), where a mark after the commit could be lost.
        self.mark_approvals_used(chunk).await;
        if self.after_failure.load(Ordering::Relaxed) {
            self.skip_what_landed(chunk).await?;
        }
        let prepared = landing_started.elapsed();
        let mut rows = 0;
        for (slot, table) in Table::ALL.into_iter().enumerate() {
            let batches: Vec<RecordBatch> = chunk
                .iter()
                .filter(|p| p.needs[slot])
                .filter_map(|p| match table {
                    Table::Elevations => p.record.elevations.clone(),
                    Table::Diagnostics => p.record.diagnostics.clone(),
                    // Rollups are derived by the maintenance pass, never landed.
                    Table::DailyElevations
                    | Table::DailyCounts
                    | Table::DailyUsers
                    | Table::DailyDevices
                    | Table::UserNumbers
                    | Table::DailyUserSets
                    | Table::DailyDenied
                    | Table::DailySuggestions
                    | Table::ValueNumbers => None,
                })
                .filter(|b| b.num_rows() > 0)
                .collect();
            if !batches.is_empty() {
                let started = Instant::now();
                let appended = self
                    .warehouse
                    .append(table, batches, Some((&self.node_id, max_seq as i64)))
                    .await;
                let outcome = if appended.is_ok() { "ok" } else { "error" };
                metrics::counter!("elevation_land_commits_total", "table" => table.name(), "outcome" => outcome)
                    .increment(1);
                let appended = appended?;
                metrics::histogram!("elevation_land_commit_seconds", "table" => table.name())
                    .record(started.elapsed().as_secs_f64());
                metrics::counter!("elevation_landed_rows_total", "table" => table.name())
                    .increment(appended.rows as u64);
                self.stats.commits.fetch_add(1, Ordering::Relaxed);
                self.stats.files.fetch_add(appended.files as u64, Ordering::Relaxed);
                self.stats.bytes.fetch_add(appended.bytes, Ordering::Relaxed);
                rows += appended.rows as u64;
            }
            // Landed (or nothing to land): a retry after a failure in the other table must
            // not write these rows again.
            for pending in chunk.iter_mut() {
                pending.needs[slot] = false;
            }
        }
        self.stats.rows.fetch_add(rows, Ordering::Relaxed);
        self.stats.landed_seq.fetch_max(max_seq, Ordering::Relaxed);
        // The freshness promise, as operators watch it: from the oldest answer `200` of this
        // landing to its commit.
        if let Some(oldest) = chunk.iter().map(|p| p.record.header.received_at).min() {
            let lag = (self.clock.now() - oldest).to_std().unwrap_or_default();
            metrics::histogram!("elevation_landing_lag_seconds").record(lag.as_secs_f64());
        }
        let committed = landing_started.elapsed();
        // The answers must outlive the log records that hold them.
        self.dedup
            .persist(chunk.iter().map(|p| {
                (
                    &p.record.header.key,
                    &p.record.header.answer,
                    p.record.header.received_at,
                )
            }))
            .map_err(|e| LandingError::Bookkeeping(e.to_string()))?;
        self.wal
            .retire_through(max_seq)
            .map_err(|e| LandingError::Bookkeeping(e.to_string()))?;
        // Where a landing's time goes, for whoever tunes `--land-interval-ms` and the backlog.
        tracing::debug!(
            batches = chunk.len(),
            rows,
            before_commits_ms = prepared.as_millis() as u64,
            commits_ms = (committed - prepared).as_millis() as u64,
            bookkeeping_ms = (landing_started.elapsed() - committed).as_millis() as u64,
            "landed"
        );
        Ok(rows)
    }

    /// After a failed landing: marks the records each table already holds as landed. A commit
    /// whose answer was lost is in the table with this node's transaction version (the highest
    /// sequence number it held); committing those rows again would store them twice, and Delta
    /// refuses it anyway as a concurrent transaction of the same application, forever. The
    /// same rule start-up applies to the records it replays.
    async fn skip_what_landed(&self, chunk: &mut [Pending]) -> Result<(), LandingError> {
        let landed = landed_through(&self.warehouse, &self.node_id).await?;
        for pending in chunk.iter_mut() {
            let still = Pending::needs_after(pending.record.seq, landed);
            pending.needs = [pending.needs[0] && still[0], pending.needs[1] && still[1]];
        }
        self.after_failure.store(false, Ordering::Relaxed);
        Ok(())
    }

    /// Claims the chunk's batches for this node in the control-plane database that every node
    /// shares (see `control::batches`), before any of its rows are committed. A batch another
    /// node claimed first was stored there (a retry that crossed nodes): this node drops its
    /// copy. Claims already this node's (a landing retried or replayed) stay so.
    async fn claim(&self, chunk: &mut [Pending]) -> Result<(), LandingError> {
        let answers: Vec<String> = chunk
            .iter()
            .map(|p| serde_json::to_string(&p.record.header.answer).expect("an answer always serialises"))
            .collect();
        let claims: Vec<control::batches::BatchClaim<'_>> = chunk
            .iter()
            .zip(&answers)
            .map(|(p, answer)| control::batches::BatchClaim {
                batch: p.record.header.key.as_batch_ref(),
                answer,
                received_at: p.record.header.received_at,
            })
            .collect();
        let stored_elsewhere = self.control.claim_batches(&self.node_id, &claims).await?;
        if !stored_elsewhere.is_empty() {
            tracing::info!(
                batches = stored_elsewhere.len(),
                "dropping batches another node stored first (retries that crossed nodes)"
            );
            metrics::counter!("elevation_ingest_cross_node_duplicates_total").increment(stored_elsewhere.len() as u64);
        }
        self.stats
            .stored_elsewhere
            .fetch_add(stored_elsewhere.len() as u64, Ordering::Relaxed);
        for i in stored_elsewhere {
            chunk[i].needs = [false, false];
        }
        Ok(())
    }

    /// Marks the support-approved requests whose approvals the chunk's not yet landed
    /// `supportApprovedElevation` rows ran under (off the upload's path: one control-plane
    /// call per tenant per landing). A failure is logged and never holds up landing: those
    /// approvals then end `expired` instead of `completed`.
    async fn mark_approvals_used(&self, chunk: &[Pending]) {
        let mut by_tenant: std::collections::BTreeMap<&str, Vec<control::requests::RequestUse>> =
            std::collections::BTreeMap::new();
        for pending in chunk.iter().filter(|p| p.needs[0]) {
            if let Some(elevations) = &pending.record.elevations {
                let uses = crate::requests::approved_uses(elevations);
                if !uses.is_empty() {
                    by_tenant
                        .entry(pending.record.header.key.tenant.as_str())
                        .or_default()
                        .extend(uses);
                }
            }
        }
        for (tenant, uses) in by_tenant {
            if let Err(e) = self.control.record_request_uses(tenant, &uses).await {
                tracing::warn!(error = %e, tenant, uses = uses.len(), "cannot mark the approvals landed elevations used");
            }
        }
    }

    /// Lands on a timer until `stop` fires, then lands what is left.
    pub(crate) async fn run(self: Arc<Self>, interval: Duration, stop: Arc<Notify>) {
        let mut backoff = interval;
        let mut last_prune = Instant::now();
        loop {
            if last_prune.elapsed() > Duration::from_secs(60) {
                if let Err(e) = self.dedup.prune(self.clock.now()) {
                    tracing::warn!(error = %e, "cannot delete expired idempotency answers");
                }
                if self.control.shared_between_nodes() {
                    let before = self.clock.now() - self.dedup.window();
                    if let Err(e) = self.control.forget_batch_claims(before).await {
                        tracing::warn!(error = %e, "cannot delete expired batch claims");
                    }
                }
                last_prune = Instant::now();
            }
            let stopping = tokio::select! {
                _ = tokio::time::sleep(backoff) => false,
                _ = self.buffer.wake.notified() => false,
                _ = stop.notified() => true,
            };
            let landed = self.land_once().await;
            // The backlog an operator alerts on: what the log holds that is not yet landed.
            metrics::gauge!("elevation_wal_bytes").set(self.wal.segment_bytes() as f64);
            metrics::gauge!("elevation_wal_segments").set(self.wal.segment_count() as f64);
            metrics::gauge!("elevation_landing_failing_attempts")
                .set(self.stats.failing.load(Ordering::Relaxed) as f64);
            match landed {
                Ok(_) => backoff = interval,
                Err(e) => {
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    tracing::error!(error = %e, retry_in = ?backoff, "landing failed; the batches stay in the write-ahead log");
                }
            }
            if stopping {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use chrono::{DateTime, Utc};
    use warehouse::{ReportingLevel, Table, ValidationContext, Warehouse};

    use super::*;
    use crate::wal::{LoggedBatch, RecordHeader, Wal};

    fn now() -> DateTime<Utc> {
        "2026-11-21T00:00:00Z".parse().unwrap()
    }

    /// Batch `n` of two elevations, as the upload path makes it, with sequence number `seq`.
    fn record(n: usize, seq: u64) -> LoggedBatch {
        let events: Vec<serde_json::Value> = (0..2)
            .map(|i| {
                serde_json::json!({"id": format!("e-{n}-{i}"), "eventDateTime": "2026-11-20T11:00:00Z",
                    "elevationType": "userConfirmedElevation", "filePath": "C:\\Program Files\\Git\\bin\\git.exe",
                    "hash": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                    "upn": "ada@contoso.com", "userType": "azureAd", "companyName": "The Git Development Community",
                    "fileVersion": "2.47.0.0", "result": 0, "processType": "parent", "parentProcessName": "explorer.exe"})
            })
            .collect();
        let body = serde_json::json!({"batchId": format!("b-{n}"), "deviceId": "d-1", "reportingLevel": "all",
            "elevations": events});
        let processed = crate::batch::process(
            &serde_json::to_vec(&body).unwrap(),
            "contoso",
            ReportingLevel::All,
            now(),
            &crate::batch::UploadLimits::default(),
            &ValidationContext::new(now()),
        )
        .unwrap();
        assert!(processed.answer.rejected.is_empty(), "{:?}", processed.answer.rejected);
        LoggedBatch {
            seq,
            header: RecordHeader {
                key: processed.key,
                received_at: now(),
                answer: processed.answer,
            },
            elevations: processed.elevations,
            diagnostics: processed.diagnostics,
        }
    }

    async fn rows(warehouse: &Warehouse) -> i64 {
        let table = warehouse.latest(Table::Elevations).await.unwrap();
        table
            .snapshot()
            .unwrap()
            .log_data()
            .iter()
            .map(|file| file.num_records().unwrap_or(0) as i64)
            .sum()
    }

    /// Storage that takes a commit and loses its answer: the lander saw a failure, the table
    /// holds the commit. The next landing must not store those rows again.
    #[tokio::test]
    async fn a_commit_whose_answer_was_lost_is_not_landed_again() {
        let dir = tempfile::tempdir().unwrap();
        let warehouse = Arc::new(Warehouse::new(warehouse::Location::Local(dir.path().join("warehouse"))));
        let db = control::ControlDb::default_in(dir.path());
        let control = Arc::new(control::ControlPlane::open(&db, Default::default()).await.unwrap());
        let buffer = Arc::new(LandingBuffer::new(1 << 20));
        std::fs::create_dir_all(dir.path().join("wal")).unwrap();
        let lander = Lander {
            buffer: buffer.clone(),
            warehouse: warehouse.clone(),
            wal: Arc::new(Wal::start(&dir.path().join("wal"), 1, Box::new(|_| {})).unwrap()),
            dedup: Arc::new(crate::dedup::Dedup::open(dir.path(), chrono::Duration::days(7), now()).unwrap()),
            node_id: "node-a".into(),
            stats: Default::default(),
            clock: Arc::new(warehouse::FixedClock(now())),
            control,
            landing: tokio::sync::Mutex::new(()),
            after_failure: Default::default(),
        };
        let (first, second) = (record(1, 1), record(2, 2));
        // The commit of the first record that "failed": in the table, with this node's version.
        warehouse
            .append(
                Table::Elevations,
                vec![first.elevations.clone().unwrap()],
                Some(("node-a", 1)),
            )
            .await
            .unwrap();
        lander.after_failure.store(true, Ordering::Relaxed);
        buffer.push([Pending::new(first, [true, true]), Pending::new(second, [true, true])]);
        lander.land_once().await.unwrap();
        assert_eq!(rows(&warehouse).await, 4, "each of the two batches' two rows once");
        assert_eq!(
            warehouse
                .transaction_version(Table::Elevations, "node-a")
                .await
                .unwrap(),
            Some(2)
        );
    }
}
