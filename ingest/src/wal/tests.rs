//! The write-ahead log's tests: replay of torn and damaged segments, by example and as a property.

use std::sync::Mutex as StdMutex;

use arrow::array::Int32Array;
use arrow::datatypes::{DataType, Field, Schema};

use super::*;
use crate::answer::Counts;

fn record(batch_id: &str, rows: Option<i32>) -> (Vec<u8>, LoggedBatch) {
    let header = RecordHeader {
        key: BatchKey {
            tenant: "contoso".into(),
            device_id: "d-1".into(),
            batch_id: batch_id.into(),
        },
        received_at: chrono::DateTime::UNIX_EPOCH,
        answer: BatchAnswer {
            batch_id: batch_id.into(),
            duplicate: false,
            accepted: Counts {
                elevations: rows.unwrap_or(0) as u64,
                diagnostics: 0,
            },
            dropped_by_policy: Counts::default(),
            rejected: Vec::new(),
        },
    };
    let elevations = rows.map(|n| {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int32, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int32Array::from_iter_values(0..n))]).unwrap()
    });
    let payload = encode_payload(&header, elevations.as_ref(), None);
    (
        payload,
        LoggedBatch {
            seq: 0,
            header,
            elevations,
            diagnostics: None,
        },
    )
}

async fn write(dir: &Path, first_seq: u64, batches: &[(&str, Option<i32>)]) -> Vec<u64> {
    let handed: Arc<StdMutex<Vec<u64>>> = Default::default();
    let seen = handed.clone();
    let wal = Wal::start(
        dir,
        first_seq,
        Box::new(move |records| seen.lock().unwrap().extend(records.iter().map(|r| r.seq))),
    )
    .unwrap();
    let mut seqs = Vec::new();
    for (id, rows) in batches {
        let (payload, logged) = record(id, *rows);
        seqs.push(wal.append(payload, logged).await.unwrap());
    }
    wal.close();
    assert_eq!(
        *handed.lock().unwrap(),
        seqs,
        "records reach the landing buffer in sequence order"
    );
    seqs
}

#[tokio::test]
async fn replay_returns_every_record_and_cuts_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        write(dir.path(), 1, &[("a", Some(3)), ("b", None), ("c", Some(1))]).await,
        [1, 2, 3]
    );
    let segment = segment_path(dir.path(), 1);
    let intact = std::fs::metadata(&segment).unwrap().len();
    // A write cut short by a crash: a frame header promising more than is there.
    let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
    file.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, 9, 0, 0, 0, 0, 0, 0, 0, 42])
        .unwrap();
    drop(file);

    let replay = replay(dir.path()).unwrap();
    let ids: Vec<(u64, &str)> = replay
        .records
        .iter()
        .map(|r| (r.seq, r.header.key.batch_id.as_str()))
        .collect();
    assert_eq!(ids, [(1, "a"), (2, "b"), (3, "c")]);
    assert_eq!(replay.next_seq, 4);
    assert_eq!(replay.records[0].elevations.as_ref().unwrap().num_rows(), 3);
    assert!(replay.records[1].elevations.is_none());
    assert_eq!(
        std::fs::metadata(&segment).unwrap().len(),
        intact,
        "the torn tail is cut off"
    );
}

#[tokio::test]
async fn damage_before_the_last_segment_stops_the_start_and_retired_segments_are_gone() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 1, &[("a", Some(2)), ("b", Some(2))]).await;
    // A second life writes a new segment from sequence 3.
    write(dir.path(), 3, &[("c", Some(1))]).await;
    let first = segment_path(dir.path(), 1);
    let mut bytes = std::fs::read(&first).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&first, bytes).unwrap();
    let err = replay(dir.path()).err().expect("damage in an older segment is refused");
    assert!(matches!(err, WalError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("checksum mismatch"), "{err}");

    // Retiring through sequence 2 deletes the first segment, never the one being written.
    let wal = Wal::start(dir.path(), 4, Box::new(|_| {})).unwrap();
    assert_eq!(wal.retire_through(2).unwrap(), 1);
    assert!(!first.exists());
    assert_eq!(wal.retire_through(100).unwrap(), 1, "segment 3 goes once 3 has landed");
    assert_eq!(wal.segment_count(), 1);
    wal.close();
    // Every record landed and retired, the log itself still knows where numbering stands
    // (a node must not reuse a number its tables hold, even when it cannot ask them).
    let replay = replay(dir.path()).unwrap();
    assert!(replay.records.is_empty());
    assert_eq!(replay.next_seq, 4);
}

/// Where each frame of a segment ends, read from the length fields alone.
fn frame_ends(bytes: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        let len = u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
        offset += FRAME_HEADER + len;
        ends.push(offset);
    }
    ends
}

/// How a test damages the last segment.
#[derive(Debug, Clone)]
enum Damage {
    /// The file cut to this fraction of its length.
    Truncate(f64),
    /// This byte (a fraction of the length) xor-ed with a non-zero mask.
    Flip(f64, u8),
}

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Property (issue #21): whatever truncates or damages the last segment, replay
    /// recovers exactly the whole frames before the damage, cuts the rest off and says
    /// how much; nothing panics.
    #[test]
    fn replay_recovers_exactly_the_frames_before_any_damage_to_the_last_segment(
        rows in proptest::collection::vec(proptest::option::of(0i32..50), 1..6),
        damage in prop_oneof![
            (0.0..1.0f64).prop_map(Damage::Truncate),
            (0.0..1.0f64, 1u8..=255).prop_map(|(at, mask)| Damage::Flip(at, mask)),
        ],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let batches: Vec<(String, Option<i32>)> =
            rows.iter().enumerate().map(|(i, r)| (format!("b-{i}"), *r)).collect();
        let named: Vec<(&str, Option<i32>)> = batches.iter().map(|(id, r)| (id.as_str(), *r)).collect();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(write(dir.path(), 1, &named));
        let segment = segment_path(dir.path(), 1);
        let mut bytes = std::fs::read(&segment).unwrap();
        let ends = frame_ends(&bytes);
        prop_assert_eq!(ends.len(), rows.len());
        // The first byte the damage touches; bytes from there on are suspect.
        let first_bad = match damage {
            Damage::Truncate(at) => {
                let at = (bytes.len() as f64 * at) as usize;
                bytes.truncate(at);
                at
            }
            Damage::Flip(at, mask) => {
                let at = ((bytes.len() as f64 * at) as usize).min(bytes.len() - 1);
                bytes[at] ^= mask;
                at
            }
        };
        let length = bytes.len();
        std::fs::write(&segment, &bytes).unwrap();

        let replay = replay(dir.path()).unwrap();
        let whole = ends.iter().take_while(|&&end| end <= first_bad).count();
        // A truncation exactly at a frame's end leaves whole frames only.
        let kept = if whole == 0 { 0 } else { ends[whole - 1] };
        let ids: Vec<String> = replay.records.iter().map(|r| r.header.key.batch_id.clone()).collect();
        let expected: Vec<String> = batches[..whole].iter().map(|(id, _)| id.clone()).collect();
        prop_assert_eq!(ids, expected);
        for (record, (_, rows)) in replay.records.iter().zip(&batches) {
            prop_assert_eq!(record.elevations.as_ref().map(|b| b.num_rows() as i32), *rows);
        }
        prop_assert_eq!(std::fs::metadata(&segment).unwrap().len(), kept as u64);
        match replay.cut {
            None => prop_assert_eq!(kept, length, "bytes were cut without a word"),
            Some(cut) => {
                prop_assert_eq!(cut.offset, kept as u64);
                prop_assert_eq!(cut.bytes, (length - kept) as u64);
            }
        }
    }
}
