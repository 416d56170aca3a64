//! Idempotency: a `(tenant, deviceId, batchId)` is stored once, and a retry gets the first
//! answer with `"duplicate": true` — also after a restart.
//!
//! The answers live in memory for the dedup window (7 days by default: far longer than any
//! agent retries). They are durable in two steps: while a batch's record is in the write-ahead
//! log, replay restores its answer; before a segment is deleted, the lander appends the answers
//! of its records to `data-dir/dedup.log` (JSON lines, fsync'd). Startup reads the log, drops
//! entries older than the window and rewrites it.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::answer::{BatchAnswer, BatchKey};

/// How a batch id stands.
#[derive(Debug)]
enum Slot {
    /// Being stored right now; a retry waits for the outcome.
    InFlight(watch::Receiver<Option<Result<Arc<BatchAnswer>, ()>>>),
    /// Stored, with its first answer.
    Done {
        answer: Arc<BatchAnswer>,
        at: DateTime<Utc>,
    },
}

/// What a new upload finds.
#[derive(Debug)]
pub(crate) enum Claim {
    /// First time: the caller stores it and must call [`InFlightGuard::finish`].
    New(InFlightGuard),
    /// Stored before: here is the first answer.
    Stored(Arc<BatchAnswer>),
    /// Another request with the same id is being stored; wait on this.
    Wait(watch::Receiver<Option<Result<Arc<BatchAnswer>, ()>>>),
}

/// Held by the request storing a batch; dropping it without `finish` releases the id so a
/// retry can try again.
#[derive(Debug)]
pub(crate) struct InFlightGuard {
    dedup: Arc<Dedup>,
    key: Option<BatchKey>,
    sender: watch::Sender<Option<Result<Arc<BatchAnswer>, ()>>>,
}

impl InFlightGuard {
    /// The batch is durable: remember its answer.
    pub(crate) fn finish(mut self, answer: Arc<BatchAnswer>, at: DateTime<Utc>) {
        let key = self.key.take().expect("finished once");
        self.dedup.map.lock().expect("not poisoned").insert(
            key,
            Slot::Done {
                answer: answer.clone(),
                at,
            },
        );
        let _ = self.sender.send(Some(Ok(answer)));
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.dedup.map.lock().expect("not poisoned").remove(&key);
            let _ = self.sender.send(Some(Err(())));
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogLine {
    key: BatchKey,
    at: DateTime<Utc>,
    answer: BatchAnswer,
}

/// The answers of recent batches.
#[derive(Debug)]
pub(crate) struct Dedup {
    map: Mutex<HashMap<BatchKey, Slot>>,
    log: Mutex<File>,
    path: PathBuf,
    window: Duration,
}

impl Dedup {
    /// Opens `data_dir/dedup.log`, keeping what is younger than `window`.
    pub(crate) fn open(data_dir: &Path, window: Duration, now: DateTime<Utc>) -> std::io::Result<Dedup> {
        let path = data_dir.join("dedup.log");
        let mut map = HashMap::new();
        if let Ok(file) = File::open(&path) {
            for line in BufReader::new(file).lines() {
                let line = line?;
                // A torn last line was never relied upon: its records were still in the log.
                let Ok(entry) = serde_json::from_str::<LogLine>(&line) else {
                    continue;
                };
                if now - entry.at <= window {
                    map.insert(
                        entry.key,
                        Slot::Done {
                            answer: Arc::new(entry.answer),
                            at: entry.at,
                        },
                    );
                }
            }
        }
        // Rewrite without the expired entries, atomically.
        let tmp = data_dir.join("dedup.log.tmp");
        {
            let mut out = std::io::BufWriter::new(File::create(&tmp)?);
            for (key, slot) in &map {
                if let Slot::Done { answer, at } = slot {
                    let line = LogLine {
                        key: key.clone(),
                        at: *at,
                        answer: (**answer).clone(),
                    };
                    serde_json::to_writer(&mut out, &line)?;
                    out.write_all(b"\n")?;
                }
            }
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        warehouse::durable::sync_dir(data_dir)?;
        let log = OpenOptions::new().append(true).open(&path)?;
        Ok(Dedup {
            map: Mutex::new(map),
            log: Mutex::new(log),
            path,
            window,
        })
    }

    /// Looks a batch up, claiming it when new.
    pub(crate) fn claim(self: &Arc<Self>, key: &BatchKey) -> Claim {
        let mut map = self.map.lock().expect("not poisoned");
        match map.get(key) {
            Some(Slot::Done { answer, .. }) => Claim::Stored(answer.clone()),
            Some(Slot::InFlight(receiver)) => Claim::Wait(receiver.clone()),
            None => {
                let (sender, receiver) = watch::channel(None);
                map.insert(key.clone(), Slot::InFlight(receiver));
                Claim::New(InFlightGuard {
                    dedup: self.clone(),
                    key: Some(key.clone()),
                    sender,
                })
            }
        }
    }

    /// Remembers a replayed record's answer.
    pub(crate) fn restore(&self, key: BatchKey, answer: Arc<BatchAnswer>, at: DateTime<Utc>) {
        self.map
            .lock()
            .expect("not poisoned")
            .insert(key, Slot::Done { answer, at });
    }

    /// Appends answers to the dedup log and syncs it: called before their write-ahead log
    /// records are deleted.
    pub(crate) fn persist<'a>(
        &self,
        entries: impl Iterator<Item = (&'a BatchKey, &'a BatchAnswer, DateTime<Utc>)>,
    ) -> std::io::Result<()> {
        let mut text = Vec::new();
        for (key, answer, at) in entries {
            let line = LogLine {
                key: key.clone(),
                at,
                answer: answer.clone(),
            };
            serde_json::to_writer(&mut text, &line)?;
            text.push(b'\n');
        }
        if text.is_empty() {
            return Ok(());
        }
        let mut log = self.log.lock().expect("not poisoned");
        log.write_all(&text)?;
        log.sync_data()
    }

    /// Forgets answers older than the window.
    pub(crate) fn prune(&self, now: DateTime<Utc>) {
        let window = self.window;
        self.map.lock().expect("not poisoned").retain(|_, slot| match slot {
            Slot::Done { at, .. } => now - *at <= window,
            Slot::InFlight(_) => true,
        });
    }

    /// Batches remembered.
    pub(crate) fn len(&self) -> usize {
        self.map.lock().expect("not poisoned").len()
    }

    /// The log file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}
