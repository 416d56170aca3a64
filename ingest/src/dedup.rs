//! Idempotency: a `(tenant, deviceId, batchId)` is stored once, and a retry gets the first
//! answer with `"duplicate": true` — also after a restart.
//!
//! Every batch of the dedup window (7 days by default: far longer than any agent retries) has
//! an entry in memory, but only a compact one: 16 bytes of SHA-256 of its key, when it was
//! received and where its answer lies on disk. Answers themselves stay in memory only from the
//! acknowledgement until the batch lands; they are durable in two steps: while a batch's record
//! is in the write-ahead log, replay restores its answer; before a segment is deleted, the
//! lander appends the answers of its records to `data-dir/dedup/YYYY-MM-DD.jsonl` (JSON lines,
//! fsync'd, one file per UTC day the batches were received). A retry, which is rare, reads its
//! answer back from there. Whole day files are deleted once every batch in them is older than
//! the window, so nothing is ever rewritten.
//!
//! Why so compact: a fleet of 20,000 devices uploading every few hours keeps hundreds of
//! thousands of batches in the window. Held as strings and answers, they took ~740 bytes each
//! and, allocated one by one between the large buffers of every landing, fragmented the heap
//! (3.2 GiB of RSS at fleet scale, see BENCHMARKS.md). A landed batch's entry is now 32 bytes
//! in one table (16 of digest, 16 of place and time); the few batches not landed yet, whose
//! answers are in memory, are in a second, small table, so that the large one's entries need
//! no room for them. With one table of 48-byte entries the index was the part of a fleet
//! upload's heap that grew with the run (BENCHMARKS.md, "Where the ingest's heap goes").

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::answer::{BatchAnswer, BatchKey};

/// What the idempotency state can fail with.
#[derive(Debug, thiserror::Error)]
pub enum DedupError {
    /// Reading or writing an answer file failed.
    #[error("idempotency answers {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The line an entry points at is not that batch's answer.
    #[error("idempotency answers {path}: the answer at byte {offset} is damaged or belongs to another batch")]
    Damaged {
        /// The day file.
        path: PathBuf,
        /// Where the answer should start.
        offset: u64,
    },
}

/// The key of a batch as the index holds it: the first 16 bytes of SHA-256 over the
/// length-prefixed tenant, device and batch id. Two keys share a digest with probability
/// 2⁻¹²⁸; a duplicate's answer is still checked against the full key when read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct KeyDigest([u8; 16]);

impl KeyDigest {
    fn of(key: &BatchKey) -> KeyDigest {
        let mut hasher = Sha256::new();
        for part in [&key.tenant, &key.device_id, &key.batch_id] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        let mut digest = [0u8; 16];
        digest.copy_from_slice(&hasher.finalize()[..16]);
        KeyDigest(digest)
    }
}

/// A landed batch: where its answer lies and when it was received. The day file is the UTC day
/// it was received (the lander writes each answer into the file of its `at`), so the place
/// needs no day of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Logged {
    /// Byte offset of the answer's line in its day file.
    offset: u64,
    /// Length of the line.
    len: u32,
    /// Unix seconds when it was received ([`unix_seconds`]).
    at: u32,
}

impl Logged {
    fn day(&self) -> i32 {
        day_of(DateTime::from_timestamp(i64::from(self.at), 0).unwrap_or_default())
    }
}

/// Unix seconds as the index keeps them: 32 bits, enough until 2106.
fn unix_seconds(at: DateTime<Utc>) -> u32 {
    u32::try_from(at.timestamp().max(0)).unwrap_or(u32::MAX)
}

/// Watched by the requests waiting for a batch that is being stored.
type Outcome = watch::Receiver<Option<Result<Arc<BatchAnswer>, ()>>>;

/// How a batch id stands before it lands.
#[derive(Debug)]
enum Unlanded {
    /// Being stored right now; a retry waits for the outcome.
    InFlight(Outcome),
    /// Durable, not landed yet: the answer is held here (its write-ahead log record has it too).
    Answered {
        answer: Arc<BatchAnswer>,
        /// Unix seconds when it was received.
        at: i64,
    },
}

/// The batch ids remembered.
#[derive(Debug, Default)]
struct Index {
    /// Landed batches: nearly every entry.
    logged: HashMap<KeyDigest, Logged>,
    /// Batches being stored, or stored and waiting to land: about the landing backlog's. (A
    /// batch that landed before its request finished stays here, answer and all, until it
    /// leaves the window: rare, as before the split.)
    unlanded: HashMap<KeyDigest, Unlanded>,
}

/// What a new upload finds.
#[derive(Debug)]
pub(crate) enum Claim {
    /// First time: the caller stores it and must call [`InFlightGuard::finish`].
    New(InFlightGuard),
    /// Stored before: here is the first answer.
    Stored(Arc<BatchAnswer>),
    /// Another request with the same id is being stored; wait on this.
    Wait(Outcome),
}

/// Held by the request storing a batch; dropping it without `finish` releases the id so a
/// retry can try again.
#[derive(Debug)]
pub(crate) struct InFlightGuard {
    dedup: Arc<Dedup>,
    digest: Option<KeyDigest>,
    sender: watch::Sender<Option<Result<Arc<BatchAnswer>, ()>>>,
}

impl InFlightGuard {
    /// The batch is durable: remember its answer.
    pub(crate) fn finish(mut self, answer: Arc<BatchAnswer>, at: DateTime<Utc>) {
        let digest = self.digest.take().expect("finished once");
        self.dedup.remember(digest, answer.clone(), at);
        let _ = self.sender.send(Some(Ok(answer)));
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if let Some(digest) = self.digest.take() {
            self.dedup.map.lock().expect("not poisoned").unlanded.remove(&digest);
            let _ = self.sender.send(Some(Err(())));
        }
    }
}

/// Maps an I/O error on `path` to a [`DedupError`].
fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> DedupError + '_ {
    move |source| DedupError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One line of a day file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogLine {
    key: BatchKey,
    at: DateTime<Utc>,
    answer: BatchAnswer,
}

/// The start of a line, all that start-up needs (the answer is skipped, not built).
#[derive(Debug, Deserialize)]
struct LogLineHead {
    key: BatchKey,
    at: DateTime<Utc>,
}

/// The answers of recent batches.
#[derive(Debug)]
pub(crate) struct Dedup {
    map: Mutex<Index>,
    /// Held while appending, so offsets computed from a file's length stay true.
    appending: Mutex<()>,
    dir: PathBuf,
    window: Duration,
}

/// `YYYY-MM-DD.jsonl` → days since the epoch.
fn day_of_file_name(name: &str) -> Option<i32> {
    let date = NaiveDate::parse_from_str(name.strip_suffix(".jsonl")?, "%Y-%m-%d").ok()?;
    Some(warehouse::rows::date32_of_date(date))
}

fn day_of(at: DateTime<Utc>) -> i32 {
    warehouse::rows::date32_of_date(at.date_naive())
}

impl Dedup {
    /// Opens `data_dir/dedup/`, remembering what is younger than `window`; deletes day files
    /// that hold nothing younger. A `dedup.log` of an older version is moved into day files.
    pub(crate) fn open(data_dir: &Path, window: Duration, now: DateTime<Utc>) -> Result<Dedup, DedupError> {
        let dir = data_dir.join("dedup");
        std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let dedup = Dedup {
            map: Mutex::new(Index::default()),
            appending: Mutex::new(()),
            dir,
            window,
        };
        dedup.delete_expired_files(now)?;
        let mut days: Vec<(i32, PathBuf)> = std::fs::read_dir(&dedup.dir)
            .map_err(io_error(&dedup.dir))?
            .filter_map(Result::ok)
            .filter_map(|entry| Some((day_of_file_name(entry.file_name().to_str()?)?, entry.path())))
            .collect();
        days.sort();
        let mut map = dedup.map.lock().expect("not poisoned");
        for (day, path) in days {
            // Only the key and the time: the answers stay on disk.
            for (line, offset, len) in read_lines::<LogLineHead>(&path)? {
                let at = line.at.timestamp();
                let place = Logged {
                    offset,
                    len,
                    at: unix_seconds(line.at),
                };
                // Every line of a day file was received that day; one that was not could not
                // be found again from its time.
                if dedup.in_window(at, now) && place.day() == day {
                    map.logged.insert(KeyDigest::of(&line.key), place);
                }
            }
        }
        drop(map);
        let legacy = data_dir.join("dedup.log");
        if legacy.exists() {
            let lines = read_lines::<LogLine>(&legacy)?;
            let young: Vec<&LogLine> = lines
                .iter()
                .map(|(line, ..)| line)
                .filter(|line| dedup.in_window(line.at.timestamp(), now))
                .collect();
            for line in &young {
                dedup.restore(&line.key, Arc::new(line.answer.clone()), line.at);
            }
            dedup.persist(young.iter().map(|line| (&line.key, &line.answer, line.at)))?;
            std::fs::remove_file(&legacy).map_err(io_error(&legacy))?;
            warehouse::durable::sync_dir(data_dir).map_err(io_error(data_dir))?;
        }
        Ok(dedup)
    }

    fn path_of(&self, day: i32) -> PathBuf {
        let date = warehouse::rows::date_of_date32(day);
        self.dir.join(format!("{}.jsonl", date.format("%Y-%m-%d")))
    }

    /// Looks a batch up, claiming it when new.
    pub(crate) fn claim(self: &Arc<Self>, key: &BatchKey) -> Result<Claim, DedupError> {
        let digest = KeyDigest::of(key);
        let mut map = self.map.lock().expect("not poisoned");
        match map.unlanded.get(&digest) {
            Some(Unlanded::Answered { answer, .. }) => return Ok(Claim::Stored(answer.clone())),
            Some(Unlanded::InFlight(receiver)) => return Ok(Claim::Wait(receiver.clone())),
            None => {}
        }
        // Read under the lock: retries are rare and the line is a few hundred bytes, usually
        // still in the page cache; releasing the lock here would let the entry change under us.
        if let Some(place) = map.logged.get(&digest) {
            match self.read_answer(*place, key)? {
                Some(answer) => return Ok(Claim::Stored(Arc::new(answer))),
                // Another key with the same 128-bit digest: astronomically unlikely, and then
                // the newer batch takes the entry once it lands.
                None => tracing::warn!("two batch keys share an idempotency digest"),
            }
        }
        let (sender, receiver) = watch::channel(None);
        map.unlanded.insert(digest, Unlanded::InFlight(receiver));
        Ok(Claim::New(InFlightGuard {
            dedup: self.clone(),
            digest: Some(digest),
            sender,
        }))
    }

    /// The answer at `place`, if the line there is `key`'s.
    fn read_answer(&self, place: Logged, key: &BatchKey) -> Result<Option<BatchAnswer>, DedupError> {
        let path = self.path_of(place.day());
        let file = File::open(&path).map_err(io_error(&path))?;
        let mut bytes = vec![0u8; place.len as usize];
        file.read_exact_at(&mut bytes, place.offset).map_err(io_error(&path))?;
        let line: LogLine = serde_json::from_slice(&bytes).map_err(|_| DedupError::Damaged {
            path,
            offset: place.offset,
        })?;
        Ok((line.key == *key).then_some(line.answer))
    }

    /// Remembers a replayed record's answer.
    pub(crate) fn restore(&self, key: &BatchKey, answer: Arc<BatchAnswer>, at: DateTime<Utc>) {
        self.remember(KeyDigest::of(key), answer, at);
    }

    /// Holds a durable, not yet landed answer in memory. A replayed record can be in a day
    /// file already (its answers were persisted, its log segment not yet deleted): it is in one
    /// table at a time, the unlanded one, until its landing persists it again.
    fn remember(&self, digest: KeyDigest, answer: Arc<BatchAnswer>, at: DateTime<Utc>) {
        let mut map = self.map.lock().expect("not poisoned");
        map.logged.remove(&digest);
        map.unlanded.insert(
            digest,
            Unlanded::Answered {
                answer,
                at: at.timestamp(),
            },
        );
    }

    /// Whether a batch received at `at` (Unix seconds) is still inside the window at `now`.
    fn in_window(&self, at: i64, now: DateTime<Utc>) -> bool {
        at >= (now - self.window).timestamp()
    }

    /// Appends answers to their day files and syncs them: called before their write-ahead log
    /// records are deleted. From then on the index points at the files instead of holding the
    /// answers.
    pub(crate) fn persist<'a>(
        &self,
        entries: impl Iterator<Item = (&'a BatchKey, &'a BatchAnswer, DateTime<Utc>)>,
    ) -> Result<(), DedupError> {
        // Lines per day file, and where each starts inside its day's text.
        let mut texts: HashMap<i32, Vec<u8>> = HashMap::new();
        let mut written: Vec<(KeyDigest, i32, u64, u32, u32)> = Vec::new();
        for (key, answer, at) in entries {
            let line = LogLine {
                key: key.clone(),
                at,
                answer: answer.clone(),
            };
            let day = day_of(at);
            let text = texts.entry(day).or_default();
            let start = text.len() as u64;
            serde_json::to_writer(&mut *text, &line).expect("an answer always serialises");
            let len = u32::try_from(text.len() as u64 - start).expect("an answer line is far below 4 GiB");
            text.push(b'\n');
            written.push((KeyDigest::of(key), day, start, len, unix_seconds(at)));
        }
        if texts.is_empty() {
            return Ok(());
        }
        let _appending = self.appending.lock().expect("not poisoned");
        let mut base: HashMap<i32, u64> = HashMap::new();
        for (day, text) in &texts {
            let path = self.path_of(*day);
            let created = !path.exists();
            let mut file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io_error(&path))?;
            let length = file.metadata().map_err(io_error(&path))?.len();
            file.write_all(text).map_err(io_error(&path))?;
            file.sync_data().map_err(io_error(&path))?;
            if created {
                warehouse::durable::sync_dir(&self.dir).map_err(io_error(&self.dir))?;
            }
            base.insert(*day, length);
        }
        // An entry still in flight (its request has not finished yet) keeps its answer in
        // memory until it leaves the window; everything else now points at the files.
        let mut map = self.map.lock().expect("not poisoned");
        for (digest, day, start, len, at) in written {
            if let Entry::Occupied(entry) = map.unlanded.entry(digest)
                && let Unlanded::Answered { .. } = entry.get()
            {
                entry.remove();
                let place = Logged {
                    offset: base[&day] + start,
                    len,
                    at,
                };
                map.logged.insert(digest, place);
            }
        }
        Ok(())
    }

    /// Forgets answers older than the window and deletes the day files that hold only those.
    pub(crate) fn prune(&self, now: DateTime<Utc>) -> Result<(), DedupError> {
        let mut map = self.map.lock().expect("not poisoned");
        map.unlanded.retain(|_, slot| match slot {
            Unlanded::Answered { at, .. } => self.in_window(*at, now),
            Unlanded::InFlight(_) => true,
        });
        map.logged.retain(|_, place| self.in_window(i64::from(place.at), now));
        drop(map);
        self.delete_expired_files(now)
    }

    /// A day file can go once the end of its day is older than the window: every batch in it
    /// was received that day.
    fn delete_expired_files(&self, now: DateTime<Utc>) -> Result<(), DedupError> {
        let last_expired_day = day_of(now - self.window) - 1;
        let _appending = self.appending.lock().expect("not poisoned");
        let entries = std::fs::read_dir(&self.dir).map_err(io_error(&self.dir))?;
        for entry in entries.filter_map(Result::ok) {
            let expired = entry
                .file_name()
                .to_str()
                .and_then(day_of_file_name)
                .is_some_and(|day| day <= last_expired_day);
            if expired {
                std::fs::remove_file(entry.path()).map_err(io_error(&entry.path()))?;
            }
        }
        Ok(())
    }

    /// How long a batch is remembered.
    pub(crate) fn window(&self) -> Duration {
        self.window
    }

    /// Batches remembered.
    pub(crate) fn len(&self) -> usize {
        let map = self.map.lock().expect("not poisoned");
        map.logged.len() + map.unlanded.len()
    }
}

/// Every complete line of a day file with its offset and length. A torn last line (a crash
/// while appending: its records were still in the write-ahead log, so nothing relied on it) is
/// cut off, so that the next append starts on a line of its own; a damaged line elsewhere is
/// skipped.
fn read_lines<T: DeserializeOwned>(path: &Path) -> Result<Vec<(T, u64, u32)>, DedupError> {
    let file = File::open(path).map_err(io_error(path))?;
    let mut reader = BufReader::new(&file);
    let mut lines = Vec::new();
    let mut offset = 0u64;
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        let read = reader.read_until(b'\n', &mut buffer).map_err(io_error(path))?;
        if read == 0 {
            break;
        }
        if buffer.last() != Some(&b'\n') {
            drop(reader);
            OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|f| f.set_len(offset).and_then(|()| f.sync_all()))
                .map_err(io_error(path))?;
            break;
        }
        let text = &buffer[..buffer.len() - 1];
        if let Ok(line) = serde_json::from_slice::<T>(text) {
            lines.push((line, offset, text.len() as u32));
        }
        offset += read as u64;
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(batch: &str) -> BatchKey {
        BatchKey {
            tenant: "contoso".into(),
            device_id: "device-1".into(),
            batch_id: batch.into(),
        }
    }

    fn answer(batch: &str, elevations: u64) -> BatchAnswer {
        BatchAnswer {
            batch_id: batch.into(),
            duplicate: false,
            accepted: crate::answer::Counts {
                elevations,
                diagnostics: 0,
            },
            dropped_by_policy: Default::default(),
            rejected: Vec::new(),
        }
    }

    fn stored(dedup: &Arc<Dedup>, batch: &str) -> Option<u64> {
        match dedup.claim(&key(batch)).unwrap() {
            Claim::Stored(answer) => Some(answer.accepted.elevations),
            Claim::New(_) => None,
            Claim::Wait(_) => panic!("nothing is in flight"),
        }
    }

    fn store(dedup: &Arc<Dedup>, batch: &str, elevations: u64, at: DateTime<Utc>) {
        let Claim::New(guard) = dedup.claim(&key(batch)).unwrap() else {
            panic!("{batch} is new")
        };
        guard.finish(Arc::new(answer(batch, elevations)), at);
    }

    #[test]
    fn answers_survive_landing_restarts_and_a_torn_line_and_expire_with_their_day() {
        let dir = tempfile::tempdir().unwrap();
        let window = Duration::days(7);
        let monday: DateTime<Utc> = "2026-11-02T23:59:00Z".parse().unwrap();
        let tuesday = monday + Duration::minutes(2);
        let dedup = Arc::new(Dedup::open(dir.path(), window, tuesday).unwrap());
        store(&dedup, "a", 3, monday);
        store(&dedup, "b", 5, tuesday);
        // Before landing the answers are held in memory.
        assert_eq!(stored(&dedup, "a"), Some(3));
        let (ka, kb) = (key("a"), key("b"));
        let (aa, ab) = (answer("a", 3), answer("b", 5));
        dedup
            .persist([(&ka, &aa, monday), (&kb, &ab, tuesday)].into_iter())
            .unwrap();
        // After landing they are read back from the day files, one per day received.
        assert_eq!(stored(&dedup, "a"), Some(3));
        assert_eq!(stored(&dedup, "b"), Some(5));
        assert!(dir.path().join("dedup/2026-11-02.jsonl").exists());
        assert!(dir.path().join("dedup/2026-11-03.jsonl").exists());
        // A crash in the middle of an append leaves a torn line; the next start cuts it off
        // and later appends stay readable.
        let tuesday_file = dir.path().join("dedup/2026-11-03.jsonl");
        OpenOptions::new()
            .append(true)
            .open(&tuesday_file)
            .unwrap()
            .write_all(br#"{"key":{"tenant":"con"#)
            .unwrap();
        drop(dedup);
        let dedup = Arc::new(Dedup::open(dir.path(), window, tuesday).unwrap());
        assert_eq!(dedup.len(), 2);
        store(&dedup, "c", 7, tuesday);
        let (kc, ac) = (key("c"), answer("c", 7));
        dedup.persist([(&kc, &ac, tuesday)].into_iter()).unwrap();
        let dedup = Arc::new(Dedup::open(dir.path(), window, tuesday).unwrap());
        assert_eq!(
            (stored(&dedup, "a"), stored(&dedup, "b"), stored(&dedup, "c")),
            (Some(3), Some(5), Some(7))
        );
        // Monday's batch leaves the window first; its file goes once the whole day has left.
        dedup.prune(monday + window + Duration::seconds(30)).unwrap();
        assert_eq!(dedup.len(), 2);
        assert!(dir.path().join("dedup/2026-11-02.jsonl").exists());
        dedup.prune(monday + window + Duration::minutes(2)).unwrap();
        assert!(!dir.path().join("dedup/2026-11-02.jsonl").exists());
        assert_eq!(stored(&dedup, "a"), None, "an expired batch id is new again");
        assert_eq!(stored(&dedup, "b"), Some(5));
    }

    /// Nearly every entry of a fleet's index is a landed batch: it stays 32 bytes, digest
    /// included.
    #[test]
    fn a_landed_entry_is_32_bytes() {
        assert_eq!(std::mem::size_of::<(KeyDigest, Logged)>(), 32);
    }

    #[test]
    fn a_dedup_log_of_the_previous_version_is_moved_into_day_files() {
        let dir = tempfile::tempdir().unwrap();
        let now: DateTime<Utc> = "2026-11-20T10:00:00Z".parse().unwrap();
        let mut legacy = String::new();
        for (batch, at) in [("old", now - Duration::days(9)), ("young", now - Duration::days(1))] {
            let line = LogLine {
                key: key(batch),
                at,
                answer: answer(batch, 2),
            };
            legacy.push_str(&serde_json::to_string(&line).unwrap());
            legacy.push('\n');
        }
        std::fs::write(dir.path().join("dedup.log"), legacy).unwrap();
        let dedup = Arc::new(Dedup::open(dir.path(), Duration::days(7), now).unwrap());
        assert!(!dir.path().join("dedup.log").exists());
        assert_eq!(stored(&dedup, "young"), Some(2));
        assert_eq!(stored(&dedup, "old"), None);
        let dedup = Arc::new(Dedup::open(dir.path(), Duration::days(7), now).unwrap());
        assert_eq!(stored(&dedup, "young"), Some(2));
    }

    /// A record replayed at start-up whose answer a day file already holds (persisted, log
    /// segment not yet deleted) is one entry, answered from memory, and one again once its
    /// landing persists it a second time.
    #[test]
    fn a_replayed_record_already_in_a_day_file_is_remembered_once() {
        let dir = tempfile::tempdir().unwrap();
        let window = Duration::days(7);
        let at: DateTime<Utc> = "2026-11-03T10:00:00Z".parse().unwrap();
        let dedup = Arc::new(Dedup::open(dir.path(), window, at).unwrap());
        store(&dedup, "a", 3, at);
        let (ka, aa) = (key("a"), answer("a", 3));
        dedup.persist([(&ka, &aa, at)].into_iter()).unwrap();
        drop(dedup);
        let dedup = Arc::new(Dedup::open(dir.path(), window, at).unwrap());
        dedup.restore(&ka, Arc::new(aa.clone()), at);
        assert_eq!(dedup.len(), 1);
        assert_eq!(stored(&dedup, "a"), Some(3));
        dedup.persist([(&ka, &aa, at)].into_iter()).unwrap();
        assert_eq!(dedup.len(), 1);
        assert_eq!(stored(&dedup, "a"), Some(3));
        let reopened = Arc::new(Dedup::open(dir.path(), window, at).unwrap());
        assert_eq!(reopened.len(), 1);
        assert_eq!(stored(&reopened, "a"), Some(3));
    }
}
