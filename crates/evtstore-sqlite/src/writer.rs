//! The writer thread: it owns the one write connection and commits in groups. Every write
//! queued while a commit runs goes into the next transaction (one fsync for all of them), each
//! append in a savepoint of its own and checked against its own aggregate's version, so one
//! caller's conflict never touches another's events.
//!
//! Callers send jobs over a channel and await a oneshot reply: no SQLite call runs on their
//! thread. The thread ends once the provider is dropped and the jobs already sent are done.
//! While it waits for a commit, the jobs that arrive queue up for the next one.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use evtstore_core::{Error, EventMeta, Lease, NewEvent, Position, Result, Snapshot};
use rusqlite::Connection;
use tokio::sync::{oneshot, watch};

use crate::append::{append, save_snapshot, set_bookmark};
use crate::config::Config;
use crate::lease::LeaseJob;
use crate::readers::Read;

/// Most writes committed in one transaction.
const MAX_BATCH: usize = 512;
/// How long the thread stays awake for the next message after its last.
const AWAKE: Duration = Duration::from_micros(200);

/// A write waiting for a commit.
pub(crate) enum Job {
    Append(Vec<NewEvent>, oneshot::Sender<Result<Vec<EventMeta>>>),
    Bookmark(String, Position, oneshot::Sender<Result<()>>),
    Snapshot(Snapshot, oneshot::Sender<Result<()>>),
    Lease(LeaseJob, oneshot::Sender<Result<Option<Lease>>>),
}

/// What the writer thread is sent.
enum Message {
    Write(Job),
    /// A read on the write connection, run outside any transaction.
    Read(Read),
}

/// A job done inside the transaction, its answer held until the commit.
enum Done {
    Append(
        Result<Vec<EventMeta>>,
        oneshot::Sender<Result<Vec<EventMeta>>>,
    ),
    Other(Result<()>, oneshot::Sender<Result<()>>),
    Lease(
        Result<Option<Lease>>,
        oneshot::Sender<Result<Option<Lease>>>,
    ),
}

/// The handle on the writer thread.
pub(crate) struct Writer {
    messages: mpsc::Sender<Message>,
    /// Messages sent and not yet done: zero when the thread is idle.
    pending: Arc<AtomicUsize>,
}

impl Writer {
    /// Starts the writer thread with the write connection.
    pub(crate) fn start(
        conn: Connection,
        config: Arc<Config>,
        appended: Arc<watch::Sender<Position>>,
    ) -> Result<Self> {
        let (messages, received) = mpsc::channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let thread = Thread {
            conn,
            config: config.clone(),
            appended,
            pending: pending.clone(),
        };
        std::thread::Builder::new()
            .name("evtstore-sqlite-writer".into())
            .spawn(move || thread.serve(&received))
            .map_err(|e| config.other_error("start the writer thread", e))?;
        Ok(Writer { messages, pending })
    }

    /// Queues a job for the next commit; its answer comes on the returned receiver.
    pub(crate) fn submit<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T>>) -> Job,
    ) -> oneshot::Receiver<Result<T>> {
        let (reply, answer) = oneshot::channel();
        // A send fails only if the thread is gone: the dropped reply then says so.
        self.send(Message::Write(job(reply)));
        answer
    }

    /// Sends a read to the write connection if the writer is idle (its page cache holds what
    /// was just written, and it may still be awake); gives it back otherwise.
    pub(crate) fn read_if_idle(&self, read: Read) -> Option<Read> {
        if self.pending.load(Ordering::Acquire) != 0 {
            return Some(read);
        }
        self.send(Message::Read(read));
        None
    }

    fn send(&self, message: Message) {
        self.pending.fetch_add(1, Ordering::AcqRel);
        if self.messages.send(message).is_err() {
            self.pending.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// The next message, waiting for it: for [`AWAKE`] the thread stays awake, yielding its CPU
/// to any other thread that wants it (a caller that was just answered often sends its next
/// message within microseconds, and waking a sleeping thread costs tens of them), then sleeps.
fn next(messages: &mpsc::Receiver<Message>) -> Option<Message> {
    let until = Instant::now() + AWAKE;
    loop {
        match messages.try_recv() {
            Ok(message) => return Some(message),
            Err(mpsc::TryRecvError::Disconnected) => return None,
            Err(mpsc::TryRecvError::Empty) if Instant::now() < until => std::thread::yield_now(),
            Err(mpsc::TryRecvError::Empty) => return messages.recv().ok(),
        }
    }
}

/// The writer thread's own state.
struct Thread {
    conn: Connection,
    config: Arc<Config>,
    appended: Arc<watch::Sender<Position>>,
    pending: Arc<AtomicUsize>,
}

impl Thread {
    /// Takes every message queued, runs its reads, commits its writes in one transaction;
    /// again and again, until the provider (the only sender) is dropped.
    fn serve(mut self, messages: &mpsc::Receiver<Message>) {
        while let Some(first) = next(messages) {
            let queued = messages.try_iter().take(MAX_BATCH - 1);
            let mut writes = Vec::new();
            let mut taken = 0;
            for message in std::iter::once(first).chain(queued) {
                taken += 1;
                match message {
                    Message::Write(job) => writes.push(job),
                    Message::Read(read) => self.read(read),
                }
            }
            if !writes.is_empty() {
                self.commit(writes);
            }
            self.pending.fetch_sub(taken, Ordering::AcqRel);
        }
    }

    /// Runs a read; a panicking read drops its reply, and its caller gets an error.
    fn read(&self, read: Read) {
        let conn = &self.conn;
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| read(Ok(conn))));
    }

    /// Commits a batch of writes and signals what was appended.
    fn commit(&mut self, batch: Vec<Job>) {
        // A panic drops the batch's reply senders: its callers get an error, others go on.
        let committed = std::panic::catch_unwind(AssertUnwindSafe(|| {
            commit_batch(&mut self.conn, &self.config, batch)
        }));
        match committed {
            Ok(Some(last)) => drop(self.appended.send_replace(last)),
            Ok(None) => {}
            Err(_) if !self.conn.is_autocommit() => drop(self.conn.execute_batch("ROLLBACK")),
            Err(_) => {}
        }
    }
}

/// Commits the batch and answers every job; returns the last position appended, if any.
fn commit_batch(conn: &mut Connection, config: &Config, batch: Vec<Job>) -> Option<Position> {
    if let Err(e) = run(conn, "BEGIN IMMEDIATE") {
        let undone = batch.into_iter().map(|job| job.done_with(Ok(Vec::new())));
        fail_all(undone, config, "begin a write", &e);
        return None;
    }
    let timestamp = evtstore_core::provider::now_millis();
    let done = if batch.len() == 1 {
        apply_alone(conn, config, batch, timestamp)?
    } else {
        apply_each_in_savepoint(conn, config, batch, timestamp)?
    };
    if let Err(e) = run(conn, "COMMIT") {
        let _ = run(conn, "ROLLBACK");
        fail_all(done.into_iter(), config, "commit", &e);
        return None;
    }
    let mut last = None;
    for job in done {
        if let Done::Append(Ok(metas), _) = &job {
            last = metas.last().map(|m| m.position).or(last);
        }
        job.answer();
    }
    last
}

/// A job alone in its transaction needs no savepoint: if it fails, the transaction is rolled
/// back, the job answered, and `None` returned.
fn apply_alone(
    conn: &Connection,
    config: &Config,
    batch: Vec<Job>,
    timestamp: i64,
) -> Option<Vec<Done>> {
    let done: Vec<Done> = batch
        .into_iter()
        .map(|job| apply(conn, config, job, timestamp))
        .collect();
    if done.iter().all(Done::is_ok) {
        return Some(done);
    }
    let _ = run(conn, "ROLLBACK");
    done.into_iter().for_each(Done::answer);
    None
}

/// Each job in its own savepoint, so one job's failure leaves the others. A savepoint that
/// cannot be released or rolled back taints the whole transaction: then everything is rolled
/// back, every job failed, written or not, and `None` returned.
fn apply_each_in_savepoint(
    conn: &Connection,
    config: &Config,
    batch: Vec<Job>,
    timestamp: i64,
) -> Option<Vec<Done>> {
    let mut done = Vec::with_capacity(batch.len());
    let mut jobs = batch.into_iter();
    while let Some(job) = jobs.next() {
        let (one, failure) = apply_in_savepoint(conn, config, job, timestamp);
        done.push(one);
        if let Some(e) = failure {
            let _ = run(conn, "ROLLBACK");
            let rest = jobs.map(|job| job.done_with(Ok(Vec::new())));
            fail_all(done.into_iter().chain(rest), config, "write", &e);
            return None;
        }
    }
    Some(done)
}

/// Runs a transaction-control statement, prepared once per connection (parsing it on every
/// commit showed up in profiles).
fn run(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Applies a job inside a savepoint: the job's answer, and the savepoint's own failure if any,
/// which the caller must treat as a failure of the whole transaction.
fn apply_in_savepoint(
    conn: &Connection,
    config: &Config,
    job: Job,
    timestamp: i64,
) -> (Done, Option<rusqlite::Error>) {
    if let Err(e) = run(conn, "SAVEPOINT job") {
        return (job.done_with(Ok(Vec::new())), Some(e));
    }
    let done = apply(conn, config, job, timestamp);
    let kept = if done.is_ok() {
        run(conn, "RELEASE job")
    } else {
        run(conn, "ROLLBACK TO job").and_then(|()| run(conn, "RELEASE job"))
    };
    (done, kept.err())
}

/// Runs a job's statements; its answer, held until the commit.
fn apply(conn: &Connection, config: &Config, job: Job, timestamp: i64) -> Done {
    match job {
        Job::Append(events, reply) => Done::Append(append(conn, config, &events, timestamp), reply),
        Job::Bookmark(name, position, reply) => {
            let saved = set_bookmark(conn, &name, position);
            Done::Other(saved.map_err(|e| config.error("save bookmark", e)), reply)
        }
        Job::Snapshot(snapshot, reply) => {
            let saved = save_snapshot(conn, &snapshot);
            Done::Other(saved.map_err(|e| config.error("save snapshot", e)), reply)
        }
        Job::Lease(job, reply) => Done::Lease(job.apply(conn, config, timestamp), reply),
    }
}

/// Answers every job with the error that ended the transaction.
fn fail_all(
    done: impl Iterator<Item = Done>,
    config: &Config,
    what: &str,
    cause: &rusqlite::Error,
) {
    for job in done {
        job.fail(config.shared_error(what, cause)).answer();
    }
}

impl Job {
    fn done_with(self, appended: Result<Vec<EventMeta>>) -> Done {
        match self {
            Job::Append(_, reply) => Done::Append(appended, reply),
            Job::Bookmark(_, _, reply) | Job::Snapshot(_, reply) => {
                Done::Other(appended.map(|_| ()), reply)
            }
            Job::Lease(_, reply) => Done::Lease(appended.map(|_| None), reply),
        }
    }
}

impl Done {
    fn is_ok(&self) -> bool {
        match self {
            Done::Append(result, _) => result.is_ok(),
            Done::Other(result, _) => result.is_ok(),
            Done::Lease(result, _) => result.is_ok(),
        }
    }

    fn fail(self, error: Error) -> Done {
        match self {
            Done::Append(_, reply) => Done::Append(Err(error), reply),
            Done::Other(_, reply) => Done::Other(Err(error), reply),
            Done::Lease(_, reply) => Done::Lease(Err(error), reply),
        }
    }

    fn answer(self) {
        // A caller that stopped waiting no longer needs its answer.
        match self {
            Done::Append(result, reply) => drop(reply.send(result)),
            Done::Other(result, reply) => drop(reply.send(result)),
            Done::Lease(result, reply) => drop(reply.send(result)),
        }
    }
}
