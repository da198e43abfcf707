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

use evtstore_core::provider::Retire;
use evtstore_core::{Error, EventMeta, Lease, NewEvent, Position, Result, Snapshot};
use rusqlite::Connection;
use tokio::sync::{oneshot, watch};

use crate::append::{append, save_snapshot, set_bookmark};
use crate::config::Config;
use crate::lease::LeaseJob;
use crate::readers::Read;
use crate::retire::retire;
use crate::statements::Statements;

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
    /// A marker appended, and its aggregate's events deleted or archived.
    Retire(NewEvent, Retire, oneshot::Sender<Result<Vec<EventMeta>>>),
    /// Other statements: what they do, and them.
    Run(&'static str, RunStatements, oneshot::Sender<Result<()>>),
}

/// Statements a [`Job::Run`] runs.
pub(crate) type RunStatements = Box<dyn FnOnce(&Connection) -> rusqlite::Result<()> + Send>;

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

/// What a commit works with: the connection, its prepared statements, and the answers held
/// until the commit (a buffer kept from one commit to the next).
struct Writing<'c> {
    conn: &'c Connection,
    config: &'c Config,
    statements: Statements<'c>,
    done: Vec<Done>,
}

impl Thread {
    /// Takes every message queued, runs its reads, commits its writes in one transaction;
    /// again and again, until the provider (the only sender) is dropped.
    fn serve(self, messages: &mpsc::Receiver<Message>) {
        let prepared = Statements::prepare(&self.conn);
        let mut writing = prepared.map(|statements| Writing {
            conn: &self.conn,
            config: &self.config,
            statements,
            done: Vec::new(),
        });
        let mut writes = Vec::new();
        while let Some(first) = next(messages) {
            let queued = messages.try_iter().take(MAX_BATCH - 1);
            let mut taken = 0;
            for message in std::iter::once(first).chain(queued) {
                taken += 1;
                match message {
                    Message::Write(job) => writes.push(job),
                    Message::Read(read) => self.read(read),
                }
            }
            if !writes.is_empty() {
                self.commit(&mut writing, &mut writes);
            }
            self.pending.fetch_sub(taken, Ordering::AcqRel);
        }
    }

    /// Runs a read; a panicking read drops its reply, and its caller gets an error.
    fn read(&self, read: Read) {
        let conn = &self.conn;
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| read(Ok(conn))));
    }

    /// Commits a batch of writes (emptying it) and signals what was appended.
    fn commit(&self, writing: &mut rusqlite::Result<Writing<'_>>, batch: &mut Vec<Job>) {
        let w = match writing {
            Ok(w) => w,
            Err(e) => {
                let undone = batch.drain(..).map(|job| job.done_with(Ok(Vec::new())));
                return fail_all(undone, &self.config, "prepare the writer's statements", e);
            }
        };
        // A panic drops the batch's reply senders: its callers get an error, others go on.
        let committed = std::panic::catch_unwind(AssertUnwindSafe(|| commit_batch(w, batch)));
        match committed {
            Ok(Some(last)) => drop(self.appended.send_replace(last)),
            Ok(None) => {}
            Err(_) => {
                batch.clear();
                w.done.clear();
                if !self.conn.is_autocommit() {
                    drop(self.conn.execute_batch("ROLLBACK"));
                }
            }
        }
    }
}

/// Commits the batch (emptying it) and answers every job; returns the last position appended,
/// if any.
fn commit_batch(w: &mut Writing<'_>, batch: &mut Vec<Job>) -> Option<Position> {
    if let Err(e) = w.statements.begin.execute([]) {
        let undone = batch.drain(..).map(|job| job.done_with(Ok(Vec::new())));
        fail_all(undone, w.config, "begin a write", &e);
        return None;
    }
    let timestamp = evtstore_core::provider::now_millis();
    let applied = if batch.len() == 1 {
        apply_alone(w, batch, timestamp)
    } else {
        apply_each_in_savepoint(w, batch, timestamp)
    };
    if !applied {
        return None;
    }
    if let Err(e) = w.statements.commit.execute([]) {
        let _ = run(w.conn, "ROLLBACK");
        fail_all(w.done.drain(..), w.config, "commit", &e);
        return None;
    }
    let mut last = None;
    for job in w.done.drain(..) {
        if let Done::Append(Ok(metas), _) = &job {
            last = metas.last().map(|m| m.position).or(last);
        }
        job.answer();
    }
    last
}

/// A job alone in its transaction needs no savepoint: if it fails, the transaction is rolled
/// back, the job answered, and false returned.
fn apply_alone(w: &mut Writing<'_>, batch: &mut Vec<Job>, timestamp: i64) -> bool {
    for job in batch.drain(..) {
        let done = apply(w, job, timestamp);
        w.done.push(done);
    }
    if w.done.iter().all(Done::is_ok) {
        return true;
    }
    let _ = run(w.conn, "ROLLBACK");
    w.done.drain(..).for_each(Done::answer);
    false
}

/// Each job in its own savepoint, so one job's failure leaves the others. A savepoint that
/// cannot be released or rolled back taints the whole transaction: then everything is rolled
/// back, every job failed, written or not, and false returned.
fn apply_each_in_savepoint(w: &mut Writing<'_>, batch: &mut Vec<Job>, timestamp: i64) -> bool {
    let mut jobs = batch.drain(..);
    while let Some(job) = jobs.next() {
        if let Some(e) = apply_in_savepoint(w, job, timestamp) {
            let _ = run(w.conn, "ROLLBACK");
            let rest = jobs.map(|job| job.done_with(Ok(Vec::new())));
            fail_all(w.done.drain(..).chain(rest), w.config, "write", &e);
            return false;
        }
    }
    true
}

/// Runs a rarer transaction-control statement, prepared once per connection (parsing it on
/// every commit showed up in profiles).
fn run(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Applies a job inside a savepoint and keeps its answer; gives the savepoint's own failure if
/// any, which the caller must treat as a failure of the whole transaction.
fn apply_in_savepoint(w: &mut Writing<'_>, job: Job, timestamp: i64) -> Option<rusqlite::Error> {
    if let Err(e) = w.statements.savepoint.execute([]) {
        w.done.push(job.done_with(Ok(Vec::new())));
        return Some(e);
    }
    let done = apply(w, job, timestamp);
    let kept = if done.is_ok() {
        w.statements.release.execute([])
    } else {
        run(w.conn, "ROLLBACK TO job").and_then(|()| w.statements.release.execute([]))
    };
    w.done.push(done);
    kept.err()
}

/// Runs a job's statements; its answer, held until the commit.
fn apply(w: &mut Writing<'_>, job: Job, timestamp: i64) -> Done {
    let (conn, config) = (w.conn, w.config);
    match job {
        Job::Append(events, reply) => {
            let appended = append(conn, &mut w.statements, config, &events, timestamp);
            Done::Append(appended, reply)
        }
        Job::Bookmark(name, position, reply) => {
            let saved = set_bookmark(conn, &name, position);
            Done::Other(saved.map_err(|e| config.error("save bookmark", e)), reply)
        }
        Job::Snapshot(snapshot, reply) => {
            let saved = save_snapshot(conn, &snapshot);
            Done::Other(saved.map_err(|e| config.error("save snapshot", e)), reply)
        }
        Job::Lease(job, reply) => Done::Lease(job.apply(conn, config, timestamp), reply),
        Job::Retire(marker, how, reply) => {
            let retired = retire(conn, &mut w.statements, config, &marker, how, timestamp);
            Done::Append(retired, reply)
        }
        Job::Run(what, statements, reply) => {
            Done::Other(statements(conn).map_err(|e| config.error(what, e)), reply)
        }
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
            Job::Append(_, reply) | Job::Retire(_, _, reply) => Done::Append(appended, reply),
            Job::Bookmark(_, _, reply) | Job::Snapshot(_, reply) | Job::Run(_, _, reply) => {
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
