//! Where log lines go: a thread of their own writes them to stderr, in batches.
//!
//! A request thread only hands its formatted line over (no system call). The writing
//! thread waits for a line, lets the lines of the next few milliseconds join it and
//! writes them all at once: under load one `write(2)` carries hundreds of access-log
//! lines instead of one each, and the request threads wake it once per batch, not per
//! line. Nothing is dropped: a full queue makes the logging thread wait.

use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::time::Duration;

/// Lines waiting to be written before a logging thread has to wait.
const QUEUE_LINES: usize = 64 * 1024;
/// How long the lines that follow the first one of a batch may take to join it.
const LINGER: Duration = Duration::from_millis(5);
/// A batch is written once it holds this much, lingering or not.
const BATCH_BYTES: usize = 64 * 1024;
/// How long the last lines may take to be written when the process ends.
const FINAL_FLUSH: Duration = Duration::from_secs(2);

enum Message {
    Line(Vec<u8>),
    /// Write everything before this now, then say so.
    Flush(SyncSender<()>),
}

/// What `tracing_subscriber` writes formatted lines to.
#[derive(Clone)]
pub struct Lines {
    queue: SyncSender<Message>,
}

/// Writes what is left when dropped (at the end of `main`). The writing thread itself
/// lives as long as the process: the subscriber keeps a sender to it.
pub struct Guard {
    queue: SyncSender<Message>,
}

/// Lines to stderr.
pub fn to_stderr() -> (Lines, Guard) {
    to(io::stderr())
}

/// Lines to `out`, from a thread named `log-writer`.
pub fn to<W: Write + Send + 'static>(out: W) -> (Lines, Guard) {
    let (queue, lines) = sync_channel(QUEUE_LINES);
    std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || write_batches(lines, out))
        .expect("starting the log writer");
    (
        Lines {
            queue: queue.clone(),
        },
        Guard { queue },
    )
}

fn write_batches<W: Write>(lines: Receiver<Message>, mut out: W) {
    let mut batch = Vec::with_capacity(BATCH_BYTES);
    let mut flushed = Vec::new();
    while let Ok(first) = lines.recv() {
        match first {
            Message::Line(line) => {
                batch.extend_from_slice(&line);
                std::thread::sleep(LINGER);
            }
            Message::Flush(done) => flushed.push(done),
        }
        while let Ok(next) = lines.try_recv() {
            match next {
                Message::Line(line) => {
                    batch.extend_from_slice(&line);
                    if batch.len() >= BATCH_BYTES {
                        // A failed write has nowhere to be reported; the lines are lost.
                        let _ = out.write_all(&batch);
                        batch.clear();
                    }
                }
                Message::Flush(done) => flushed.push(done),
            }
        }
        let _ = out.write_all(&batch);
        let _ = out.flush();
        batch.clear();
        for done in flushed.drain(..) {
            let _ = done.send(());
        }
    }
}

impl Write for Lines {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        self.queue
            .send(Message::Line(line.to_vec()))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the log writer stopped"))?;
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Lines {
    type Writer = Lines;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let (done, written) = sync_channel(1);
        if self.queue.send(Message::Flush(done)).is_ok() {
            let _ = written.recv_timeout(FINAL_FLUSH);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_whole_and_in_order_by_the_time_the_guard_drops() {
        let out = Shared::default();
        let (lines, guard) = to(out.clone());
        let writers: Vec<_> = (0..4)
            .map(|t| {
                let mut lines = lines.clone();
                std::thread::spawn(move || {
                    for i in 0..5000 {
                        lines
                            .write_all(
                                format!("thread {t} line {i:05} {}\n", "x".repeat(40)).as_bytes(),
                            )
                            .unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        drop(guard);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 20_000);
        for t in 0..4 {
            let numbers: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with(&format!("thread {t} ")))
                .map(|l| l.split(' ').nth(3).unwrap())
                .collect();
            let expected: Vec<String> = (0..5000).map(|i| format!("{i:05}")).collect();
            assert_eq!(numbers, expected, "thread {t}'s lines whole and in order");
        }
    }

    #[test]
    fn a_lone_line_is_written_without_waiting_for_more() {
        let out = Shared::default();
        let (mut lines, _guard) = to(out.clone());
        lines.write_all(b"started\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while out.0.lock().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "the line never came");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(&*out.0.lock().unwrap(), b"started\n");
    }
}
