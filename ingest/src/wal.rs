//! The write-ahead log: what makes `200` mean durable.
//!
//! Every accepted batch becomes one record — its answer plus its rows as Arrow IPC — in a
//! segment file under `data-dir/wal/`. One thread owns the files: it takes every record that
//! is waiting, writes them all, calls `fdatasync` once, and only then hands the records to the
//! landing buffer and lets their requests answer (group commit: a busy second costs a few
//! fsyncs, not one per batch). Because that thread hands records over in sequence order, the
//! landing buffer is always in sequence order too, which is what lets the tables record "landed
//! up to sequence N" in one number.
//!
//! Frame: `[u32 payload length][u32 CRC-32 of seq and payload][u64 seq][payload]`, little
//! endian. A torn frame at the end of the last segment was never acknowledged (its fsync did
//! not return) and is cut off on replay; a bad frame anywhere else is corruption and stops the
//! server rather than silently skipping acknowledged data.
//!
//! A write or fsync that fails (a full disk, an I/O error) fails its group: none of its
//! requests is acknowledged. The thread then cuts the segment back to the end of the last
//! group whose fsync returned, and syncs that cut, so the file again holds exactly the
//! acknowledged frames — a failed fsync never leaves pages whose fate nobody knows behind later,
//! acknowledged ones. Until the disk takes a write again, uploads are refused at once (`/readyz`
//! says why); once a second the thread probes the disk (a 64 KiB probe file), with or without
//! uploads waiting, so a disk that gets space back resumes by itself.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::answer::{BatchAnswer, BatchKey};

/// A segment is closed and a new one started once it holds this much: small enough that replay
/// after a crash takes a second, large enough that rotation is rare.
const SEGMENT_BYTES: u64 = 64 << 20;
/// Records taken into one group commit at most, so one fsync never waits on an endless queue.
const MAX_GROUP: usize = 4096;
const FRAME_HEADER: usize = 16;
/// While the log cannot write, how often the thread probes the disk; uploads meanwhile are
/// refused at once, so a full disk costs one failed write a second, not one per upload.
const RETRY_BROKEN_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// What the log knows about a batch besides its rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RecordHeader {
    /// Tenant, device and batch id: the idempotency key.
    pub(crate) key: BatchKey,
    /// When the server received the batch.
    pub(crate) received_at: chrono::DateTime<chrono::Utc>,
    /// The answer the agent got (and a retry gets again).
    pub(crate) answer: BatchAnswer,
}

/// One record: a batch's answer and accepted rows.
#[derive(Debug, Clone)]
pub(crate) struct LoggedBatch {
    /// Position in the log, increasing across restarts.
    pub(crate) seq: u64,
    /// Answer and key.
    pub(crate) header: RecordHeader,
    /// Accepted elevation rows, if any.
    pub(crate) elevations: Option<RecordBatch>,
    /// Accepted diagnostic rows, if any.
    pub(crate) diagnostics: Option<RecordBatch>,
}

/// What can go wrong with the log. Any of these makes the server stop acknowledging: after a
/// failed fsync nobody knows what reached the disk.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// Reading, writing or syncing a segment failed.
    #[error("write-ahead log {path}: {source}")]
    Io {
        /// The segment or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A segment that is not the last one holds a damaged record.
    #[error(
        "write-ahead log segment {path} is damaged at byte {offset}: {reason}; move it aside to start (its batches would be lost)"
    )]
    Corrupt {
        /// The segment.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The log stopped after an earlier failure, or is shutting down.
    #[error("the write-ahead log is not accepting records: {0}")]
    Closed(String),
}

/// Why the log cannot write right now, if it cannot: shared by the log thread and `/readyz`.
#[derive(Debug, Clone, Default)]
pub(crate) struct WalHealth(Arc<Mutex<Option<String>>>);

impl WalHealth {
    /// The failure that stops writes right now, if any.
    pub(crate) fn failure(&self) -> Option<String> {
        self.0.lock().expect("not poisoned").clone()
    }

    fn set(&self, failure: Option<String>) {
        metrics::gauge!("elevation_wal_failing").set(if failure.is_some() { 1.0 } else { 0.0 });
        *self.0.lock().expect("not poisoned") = failure;
    }
}

/// What an operator reads about a write failure: for a full disk, what to do about it.
fn describe_failure(error: &WalError, dir: &Path) -> String {
    let full = matches!(error, WalError::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull);
    if full {
        format!(
            "no space left for the write-ahead log in {}; uploads resume by themselves once space is freed",
            dir.display()
        )
    } else {
        format!("the write-ahead log cannot write: {error}")
    }
}

/// Encodes one record's payload (done by the request's own task, so encoding runs on every
/// core while the log thread only writes bytes).
pub(crate) fn encode_payload(
    header: &RecordHeader,
    elevations: Option<&RecordBatch>,
    diagnostics: Option<&RecordBatch>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    let header_json = serde_json::to_vec(header).expect("headers serialise");
    out.extend_from_slice(&(header_json.len() as u32).to_le_bytes());
    out.extend_from_slice(&header_json);
    for batch in [elevations, diagnostics] {
        let ipc = batch.map(ipc_bytes).unwrap_or_default();
        out.extend_from_slice(&(ipc.len() as u32).to_le_bytes());
        out.extend_from_slice(&ipc);
    }
    out
}

fn ipc_bytes(batch: &RecordBatch) -> Vec<u8> {
    let mut buffer = Vec::new();
    let mut writer = StreamWriter::try_new(&mut buffer, &batch.schema()).expect("in-memory IPC");
    writer.write(batch).expect("in-memory IPC");
    writer.finish().expect("in-memory IPC");
    drop(writer);
    buffer
}

fn decode_payload(seq: u64, payload: &[u8]) -> Result<LoggedBatch, String> {
    let mut rest = payload;
    let mut take = |what: &str| -> Result<&[u8], String> {
        if rest.len() < 4 {
            return Err(format!("{what} length missing"));
        }
        let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        if rest.len() < 4 + len {
            return Err(format!("{what} shorter than its length"));
        }
        let (part, tail) = rest[4..].split_at(len);
        rest = tail;
        Ok(part)
    };
    let header: RecordHeader = serde_json::from_slice(take("header")?).map_err(|e| format!("header: {e}"))?;
    let mut batches = [None, None];
    for (slot, what) in batches.iter_mut().zip(["elevations", "diagnostics"]) {
        let bytes = take(what)?;
        if !bytes.is_empty() {
            let mut reader = StreamReader::try_new(bytes, None).map_err(|e| format!("{what}: {e}"))?;
            *slot = reader.next().transpose().map_err(|e| format!("{what}: {e}"))?;
        }
    }
    let [elevations, diagnostics] = batches;
    Ok(LoggedBatch {
        seq,
        header,
        elevations,
        diagnostics,
    })
}

fn frame_crc(seq: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&seq.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.wal"))
}

/// The segment files and where each starts.
#[derive(Debug, Default)]
struct Segments {
    /// `(first seq, path)`, oldest first; the last one is being written.
    files: Vec<(u64, PathBuf)>,
}

/// A record waiting for the log thread.
struct Append {
    payload: Vec<u8>,
    record: LoggedBatch,
    reply: oneshot::Sender<Result<u64, WalError>>,
}

/// Called by the log thread, in sequence order, with each group once it is on disk.
pub(crate) type OnDurable = Box<dyn Fn(Vec<LoggedBatch>) + Send>;

/// Handle to the log thread.
pub(crate) struct Wal {
    sender: Mutex<Option<mpsc::Sender<Append>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    segments: Arc<Mutex<Segments>>,
    dir: PathBuf,
    health: WalHealth,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal").field("dir", &self.dir).finish_non_exhaustive()
    }
}

/// What opening the log found.
pub(crate) struct Replay {
    /// Every record still in the log, in order.
    pub(crate) records: Vec<LoggedBatch>,
    /// Above every sequence number this log ever gave, landed or not: the last record's
    /// successor, or the first number of the newest segment when it holds none (a segment is
    /// named by its first number, and the newest is never deleted). Known without the tables.
    pub(crate) next_seq: u64,
    /// What was cut off the end of the last segment, if anything.
    pub(crate) cut: Option<CutTail>,
}

/// The damaged end of the last segment, cut off on replay: a write a crash tore (never
/// acknowledged, its fsync did not return) or damage to the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CutTail {
    /// The segment.
    pub(crate) segment: PathBuf,
    /// Where its last whole frame ends: the bytes before are kept.
    pub(crate) offset: u64,
    /// The bytes cut off.
    pub(crate) bytes: u64,
    /// What was wrong with the first frame cut off.
    pub(crate) reason: String,
}

/// Reads every segment in `dir`, cutting off a torn tail of the last one.
pub(crate) fn replay(dir: &Path) -> Result<Replay, WalError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| WalError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let files = segment_files(dir)?;
    let mut records = Vec::new();
    let mut last_seq = 0;
    let mut cut = None;
    for (i, (_, path)) in files.iter().enumerate() {
        let is_last = i + 1 == files.len();
        let mut bytes = Vec::new();
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(io(path))?;
        let mut offset = 0usize;
        while offset < bytes.len() {
            let damaged = match read_frame(&bytes[offset..]) {
                Ok((seq, payload, used)) => match decode_payload(seq, payload) {
                    Ok(record) => {
                        last_seq = last_seq.max(seq);
                        records.push(record);
                        offset += used;
                        continue;
                    }
                    Err(reason) => reason,
                },
                Err(reason) => reason,
            };
            if is_last {
                let dropped = (bytes.len() - offset) as u64;
                tracing::warn!(segment = %path.display(), offset, bytes = dropped, reason = %damaged, "cutting off a damaged write-ahead log tail (a write torn by a crash is never acknowledged)");
                let file = OpenOptions::new().write(true).open(path).map_err(io(path))?;
                file.set_len(offset as u64).map_err(io(path))?;
                file.sync_all().map_err(io(path))?;
                cut = Some(CutTail {
                    segment: path.clone(),
                    offset: offset as u64,
                    bytes: dropped,
                    reason: damaged,
                });
                break;
            }
            return Err(WalError::Corrupt {
                path: path.clone(),
                offset: offset as u64,
                reason: damaged,
            });
        }
    }
    let next_seq = files.last().map_or(0, |(first, _)| *first).max(last_seq + 1);
    Ok(Replay { records, next_seq, cut })
}

/// The segment files in `dir` (`{first sequence}.wal`), with their first sequence, in order.
fn segment_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>, WalError> {
    let io = |source| WalError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let first = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(first) = first {
            files.push((first, path));
        }
    }
    files.sort();
    Ok(files)
}

fn read_frame(bytes: &[u8]) -> Result<(u64, &[u8], usize), String> {
    if bytes.len() < FRAME_HEADER {
        return Err("frame header cut short".into());
    }
    let len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    let seq = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    let Some(payload) = bytes.get(FRAME_HEADER..FRAME_HEADER + len) else {
        return Err("frame cut short".into());
    };
    if frame_crc(seq, payload) != crc {
        return Err("checksum mismatch".into());
    }
    Ok((seq, payload, FRAME_HEADER + len))
}

impl Wal {
    /// Starts the log thread writing a new segment from `next_seq`; `existing` are the segment
    /// files replay read (they stay until their records have landed).
    pub(crate) fn start(dir: &Path, next_seq: u64, on_durable: OnDurable) -> Result<Wal, WalError> {
        let files = segment_files(dir)?;
        let segments = Arc::new(Mutex::new(Segments { files }));
        let writer = SegmentWriter::open(dir, next_seq, segments.clone())?;
        let (sender, receiver) = mpsc::channel(MAX_GROUP);
        let health = WalHealth::default();
        health.set(None);
        let thread_health = health.clone();
        let thread = std::thread::Builder::new()
            .name("elevation-wal".into())
            .spawn(move || {
                warehouse::background::lower_priority();
                run_log_thread(writer, next_seq, receiver, on_durable, thread_health)
            })
            .map_err(|source| WalError::Io {
                path: dir.to_owned(),
                source,
            })?;
        Ok(Wal {
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
            segments,
            dir: dir.to_owned(),
            health,
        })
    }

    /// Why the log cannot write right now, if it cannot.
    pub(crate) fn failure(&self) -> Option<String> {
        self.health.failure()
    }

    /// Logs one record and returns its sequence number once it is on disk.
    pub(crate) async fn append(&self, payload: Vec<u8>, record: LoggedBatch) -> Result<u64, WalError> {
        let sender = self.sender.lock().expect("not poisoned").clone();
        let Some(sender) = sender else {
            return Err(WalError::Closed("shutting down".into()));
        };
        let (reply, answer) = oneshot::channel();
        sender
            .send(Append { payload, record, reply })
            .await
            .map_err(|_| WalError::Closed("the log thread stopped after an earlier failure".into()))?;
        answer
            .await
            .map_err(|_| WalError::Closed("the log thread stopped after an earlier failure".into()))?
    }

    /// Deletes the segments whose every record has sequence number `<= landed`.
    pub(crate) fn retire_through(&self, landed: u64) -> Result<usize, WalError> {
        let mut segments = self.segments.lock().expect("not poisoned");
        let mut removed = 0;
        // A segment ends where the next begins; the last one is still being written.
        while segments.files.len() > 1 && segments.files[1].0 <= landed + 1 {
            let (_, path) = segments.files.remove(0);
            std::fs::remove_file(&path).map_err(|source| WalError::Io {
                path: path.clone(),
                source,
            })?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Segment files on disk right now.
    pub(crate) fn segment_count(&self) -> usize {
        self.segments.lock().expect("not poisoned").files.len()
    }

    /// Bytes in the segment files on disk right now, as `/metrics` shows the log's backlog: what
    /// is not landed, plus the landed start of the segment being written (at most 64 MiB).
    pub(crate) fn segment_bytes(&self) -> u64 {
        let segments = self.segments.lock().expect("not poisoned");
        segments
            .files
            .iter()
            .filter_map(|(_, path)| std::fs::metadata(path).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Stops accepting records and waits for the log thread to write what it holds.
    pub(crate) fn close(&self) {
        self.sender.lock().expect("not poisoned").take();
        if let Some(thread) = self.thread.lock().expect("not poisoned").take() {
            let _ = thread.join();
        }
    }
}

struct SegmentWriter {
    dir: PathBuf,
    path: PathBuf,
    out: BufWriter<File>,
    written: u64,
    /// Where the last group whose fsync returned ends: every byte before is acknowledged.
    synced: u64,
    segments: Arc<Mutex<Segments>>,
}

impl SegmentWriter {
    fn open(dir: &Path, first_seq: u64, segments: Arc<Mutex<Segments>>) -> Result<SegmentWriter, WalError> {
        let path = segment_path(dir, first_seq);
        let io = |source| WalError::Io {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(io)?;
        let written = file.metadata().map_err(io)?.len();
        warehouse::durable::sync_dir(dir).map_err(|source| WalError::Io {
            path: dir.to_owned(),
            source,
        })?;
        {
            let mut list = segments.lock().expect("not poisoned");
            if !list.files.iter().any(|(_, p)| p == &path) {
                list.files.push((first_seq, path.clone()));
            }
        }
        Ok(SegmentWriter {
            dir: dir.to_owned(),
            path,
            out: BufWriter::with_capacity(1 << 20, file),
            written,
            synced: written,
            segments,
        })
    }

    fn write(&mut self, seq: u64, payload: &[u8]) -> Result<(), WalError> {
        let io = |source| WalError::Io {
            path: self.path.clone(),
            source,
        };
        let mut header = [0u8; FRAME_HEADER];
        header[0..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        header[4..8].copy_from_slice(&frame_crc(seq, payload).to_le_bytes());
        header[8..16].copy_from_slice(&seq.to_le_bytes());
        self.out.write_all(&header).map_err(io)?;
        self.out.write_all(payload).map_err(io)?;
        self.written += (FRAME_HEADER + payload.len()) as u64;
        Ok(())
    }

    fn sync(&mut self) -> Result<(), WalError> {
        let io = |source| WalError::Io {
            path: self.path.clone(),
            source,
        };
        self.out.flush().map_err(io)?;
        self.out.get_ref().sync_data().map_err(io)?;
        self.synced = self.written;
        Ok(())
    }

    /// Whether the log can write again after a failure: cuts the failed group off, then writes
    /// and syncs a 64 KiB probe file beside the segment.
    fn recover(&mut self) -> Result<(), WalError> {
        self.cut_back_to_synced()?;
        let probe = self.dir.join("probe.tmp");
        let io = |source| WalError::Io {
            path: probe.clone(),
            source,
        };
        let written = File::create(&probe)
            .and_then(|mut f| f.write_all(&[0u8; 1 << 16]).and_then(|()| f.sync_data()))
            .map_err(io);
        let removed = std::fs::remove_file(&probe).map_err(io);
        written.and(removed)
    }

    /// After a failed write or fsync: drops what is buffered, cuts the segment back to the end
    /// of the last synced group and syncs the cut, so the file holds exactly the acknowledged
    /// frames again. Cutting frees space, so it works on a full disk.
    fn cut_back_to_synced(&mut self) -> Result<(), WalError> {
        let io = |source| WalError::Io {
            path: self.path.clone(),
            source,
        };
        let file = OpenOptions::new().append(true).open(&self.path).map_err(io)?;
        file.set_len(self.synced).map_err(io)?;
        file.sync_all().map_err(io)?;
        let failed = std::mem::replace(&mut self.out, BufWriter::with_capacity(1 << 20, file));
        // `into_parts` hands back the unwritten bytes instead of flushing them on drop.
        drop(failed.into_parts());
        self.written = self.synced;
        Ok(())
    }

    fn rotate_if_full(&mut self, next_seq: u64) -> Result<(), WalError> {
        if self.written >= SEGMENT_BYTES {
            *self = SegmentWriter::open(&self.dir, next_seq, self.segments.clone())?;
        }
        Ok(())
    }
}

/// The log thread's state while writes fail.
struct Broken {
    reason: String,
    last_try: Instant,
}

/// The next group of waiting records, or `None` once every sender is gone. While the log is
/// broken it does not block: an empty group every tenth of a second lets the thread try the
/// disk again on its own, because agents backing off (and a load balancer reading `/readyz`)
/// may send nothing until it does.
fn next_group(receiver: &mut mpsc::Receiver<Append>, broken: bool) -> Option<Vec<Append>> {
    let first = if broken {
        match receiver.try_recv() {
            Ok(first) => first,
            Err(mpsc::error::TryRecvError::Empty) => {
                std::thread::sleep(RETRY_BROKEN_EVERY / 10);
                return Some(Vec::new());
            }
            Err(mpsc::error::TryRecvError::Disconnected) => return None,
        }
    } else {
        receiver.blocking_recv()?
    };
    let mut group = vec![first];
    while group.len() < MAX_GROUP {
        match receiver.try_recv() {
            Ok(next) => group.push(next),
            Err(_) => break,
        }
    }
    Some(group)
}

fn run_log_thread(
    mut writer: SegmentWriter,
    mut next_seq: u64,
    mut receiver: mpsc::Receiver<Append>,
    on_durable: OnDurable,
    health: WalHealth,
) {
    let mut broken: Option<Broken> = None;
    while let Some(group) = next_group(&mut receiver, broken.is_some()) {
        if let Some(state) = &mut broken
            && state.last_try.elapsed() >= RETRY_BROKEN_EVERY
        {
            state.last_try = Instant::now();
            match writer.recover() {
                Ok(()) => {
                    tracing::info!("the write-ahead log writes again; accepting uploads");
                    broken = None;
                    health.set(None);
                }
                Err(e) => {
                    state.reason = describe_failure(&e, &writer.dir);
                    health.set(Some(state.reason.clone()));
                }
            }
        }
        if let Some(state) = &broken {
            for append in group {
                let _ = append.reply.send(Err(WalError::Closed(state.reason.clone())));
            }
            continue;
        }
        if group.is_empty() {
            continue;
        }
        let started = Instant::now();
        let first_seq = next_seq;
        let mut outcome = Ok(());
        for (i, append) in group.iter().enumerate() {
            outcome = writer.write(first_seq + i as u64, &append.payload);
            if outcome.is_err() {
                break;
            }
        }
        if outcome.is_ok() {
            outcome = writer.sync();
        }
        match outcome {
            Ok(()) => {
                metrics::histogram!("elevation_wal_fsync_seconds").record(started.elapsed().as_secs_f64());
                metrics::histogram!("elevation_wal_group_records").record(group.len() as f64);
                let mut records = Vec::with_capacity(group.len());
                let mut replies = Vec::with_capacity(group.len());
                for (i, append) in group.into_iter().enumerate() {
                    let seq = first_seq + i as u64;
                    let mut record = append.record;
                    record.seq = seq;
                    records.push(record);
                    replies.push((seq, append.reply));
                }
                next_seq += records.len() as u64;
                // Hand over before answering: an acknowledged batch is always either in the
                // landing buffer or in the tables.
                on_durable(records);
                for (seq, reply) in replies {
                    let _ = reply.send(Ok(seq));
                }
                if let Err(e) = writer.rotate_if_full(next_seq) {
                    // The full segment stays open and takes the next groups; rotation is
                    // tried again after each.
                    tracing::warn!(error = %e, "cannot start a new write-ahead log segment; writing on in the current one");
                }
            }
            Err(e) => {
                let reason = describe_failure(&e, &writer.dir);
                tracing::error!(error = %e, "write-ahead log write failed; refusing uploads until the disk takes a write again");
                if let Err(cut) = writer.cut_back_to_synced() {
                    // `recover` cuts again before anything else is written.
                    tracing::error!(error = %cut, "cannot cut the failed group off the write-ahead log yet");
                }
                health.set(Some(reason.clone()));
                broken = Some(Broken {
                    reason: reason.clone(),
                    last_try: Instant::now(),
                });
                for append in group {
                    let _ = append.reply.send(Err(WalError::Closed(reason.clone())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
