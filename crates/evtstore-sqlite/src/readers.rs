//! Reader threads: a few threads, each with a read connection of its own, take reads from
//! one queue. WAL lets them run beside the writer's commits.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError, mpsc};

use evtstore_core::Result;
use rusqlite::Connection;

use crate::config::Config;

/// Reader threads per provider: one per core, two to four. On 2 cores, 2 threads rather than
/// 4 gave W7 (64 tasks for 20 s, SQLite FULL) a p99 of 18.8–19.3 ms against 19.7–22.5, a max
/// of 31–46 ms against 43–46, 18 MiB resident against 23, and W1–W4 within the runs' noise.
fn threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    cores.clamp(2, 4)
}

/// A read to run on a connection, or to fail with the error of opening one. It sends its own
/// answer.
pub(crate) type Read = Box<dyn FnOnce(rusqlite::Result<&Connection>) + Send>;

/// The handle on the reader threads; they end when it is dropped.
pub(crate) struct Readers {
    reads: mpsc::Sender<Read>,
}

impl Readers {
    /// Starts the reader threads. Each opens its connection at its first read.
    pub(crate) fn start(config: &Arc<Config>) -> Result<Self> {
        let (reads, queue) = mpsc::channel();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads() {
            let (own, queue) = (config.clone(), queue.clone());
            std::thread::Builder::new()
                .name(format!("evtstore-sqlite-reader-{n}"))
                .spawn(move || serve(&own, &queue))
                .map_err(|e| config.other_error("start a reader thread", e))?;
        }
        Ok(Readers { reads })
    }

    /// Queues a read. Should every thread be gone, the dropped read tells its caller.
    pub(crate) fn send(&self, read: Read) {
        let _ = self.reads.send(read);
    }
}

/// Runs reads until the provider is dropped.
fn serve(config: &Config, queue: &Mutex<mpsc::Receiver<Read>>) {
    let mut conn = None;
    loop {
        let next = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(read) = next else { return };
        // A panicking read drops its reply (its caller gets an error) and the connection.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| run(config, &mut conn, read)));
    }
}

fn run(config: &Config, conn: &mut Option<Connection>, read: Read) {
    let connected = match conn.take() {
        Some(open) => Ok(open),
        None => config.connect(),
    };
    match connected {
        Ok(open) => {
            read(Ok(&open));
            *conn = Some(open);
        }
        Err(e) => read(Err(e)),
    }
}
