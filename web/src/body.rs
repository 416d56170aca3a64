//! Response bodies written as they are sent. A large answer (a whole report as CSV or JSON)
//! is written by a blocking task into chunks that go out while the next ones are written,
//! instead of being built whole in memory first: the 93.8 MB JSON of a 30-day `denied` was
//! held twice over (the rows and their text) before its first byte left.

use std::io::{self, Write};

use axum::body::{Body, Bytes};
use tokio::sync::mpsc;

/// Bytes a chunk collects before it is sent.
const CHUNK_BYTES: usize = 64 << 10;

/// Chunks written but not yet sent: what the body holds in memory at most, beside the
/// writer's own state, when the client reads slower than the writer writes.
const CHUNKS_IN_FLIGHT: usize = 4;

/// How long a chunk may wait for the client to take it. A client that keeps its connection
/// open but stops reading would otherwise hold a blocking thread, and the report behind it,
/// for as long as it liked.
const CLIENT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// A body that `write` fills on a blocking thread. The status and headers are sent before
/// the body, so whatever can fail before the first byte must be checked before calling this; a
/// failure while writing (an error or a panic) is logged and cuts the body short, which a
/// client sees as a broken transfer, never as a complete answer. A client that goes away, or
/// stops reading for [`CLIENT_PATIENCE`], stops the writer at its next chunk.
pub fn written_by<F>(what: &'static str, write: F) -> Body
where
    F: FnOnce(&mut dyn Write) -> io::Result<()> + Send + 'static,
{
    let (sender, receiver) = mpsc::channel::<io::Result<Bytes>>(CHUNKS_IN_FLIGHT);
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut chunks = ChunkWriter {
            sender: sender.clone(),
            runtime: runtime.clone(),
            chunk: Vec::with_capacity(CHUNK_BYTES),
        };
        // A panic must not end the stream as if the answer were complete.
        let written = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            write(&mut chunks).and_then(|()| chunks.send_chunk())
        }))
        .unwrap_or_else(|_| Err(io::Error::other("the writer panicked")));
        match written {
            Ok(()) => {}
            // The client left or stopped reading: nobody is there to tell.
            Err(e) if matches!(e.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::TimedOut) => {
                tracing::debug!(body = what, error = %e, "an answer was not taken to its end");
            }
            Err(e) => {
                tracing::warn!(body = what, error = %e, "an answer failed while it was being sent; its body is cut short");
                // Within the client's patience too, so that a client that stopped reading cannot
                // hold this thread. (One that then comes back after a minute sees the body end
                // without this error: the only case where a cut body can look complete.)
                let _ = runtime.block_on(tokio::time::timeout(CLIENT_PATIENCE, sender.send(Err(e))));
            }
        }
    });
    Body::from_stream(futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    }))
}

struct ChunkWriter {
    sender: mpsc::Sender<io::Result<Bytes>>,
    runtime: tokio::runtime::Handle,
    chunk: Vec<u8>,
}

impl ChunkWriter {
    fn send_chunk(&mut self) -> io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK_BYTES));
        let sent = self.runtime.block_on(tokio::time::timeout(
            CLIENT_PATIENCE,
            self.sender.send(Ok(Bytes::from(full))),
        ));
        match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(io::Error::new(io::ErrorKind::BrokenPipe, "the client went away")),
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading")),
        }
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.chunk.extend_from_slice(bytes);
        if self.chunk.len() >= CHUNK_BYTES {
            self.send_chunk()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_body_is_every_byte_written_in_order() {
        let body = written_by("test", |w| {
            for i in 0..100_000u32 {
                writeln!(w, "{i}")?;
            }
            Ok(())
        });
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        let expected: String = (0..100_000u32).map(|i| format!("{i}\n")).collect();
        assert_eq!(bytes, expected.as_bytes());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failure_while_writing_breaks_the_body() {
        let body = written_by("test", |w| {
            w.write_all(&[b'x'; CHUNK_BYTES * 2])?;
            Err(io::Error::other("the rows ran out"))
        });
        let read = axum::body::to_bytes(body, usize::MAX).await;
        assert!(read.is_err(), "a cut body must not read as complete");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_while_writing_breaks_the_body() {
        let body = written_by("test", |w| {
            w.write_all(&[b'x'; CHUNK_BYTES * 2])?;
            panic!("a bug in a writer");
        });
        let read = axum::body::to_bytes(body, usize::MAX).await;
        assert!(read.is_err(), "a body cut by a panic must not read as complete");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_body_stops_the_writer() {
        let (done, finished) = tokio::sync::oneshot::channel();
        let body = written_by("test", move |w| {
            let mut outcome = Ok(());
            for _ in 0..1_000 {
                outcome = w.write_all(&[b'x'; CHUNK_BYTES]);
                if outcome.is_err() {
                    break;
                }
            }
            let _ = done.send(outcome.map_err(|e| e.kind()));
            Ok(())
        });
        drop(body);
        assert_eq!(finished.await.unwrap(), Err(io::ErrorKind::BrokenPipe));
    }
}
