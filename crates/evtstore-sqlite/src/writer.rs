//! The one writer connection, with group commit: whoever finds it free commits its own write
//! and every write queued meanwhile, in one transaction, on its own thread.
//!
//! An uncontended write costs no thread hop; concurrent writes share one commit (one fsync).
//! Each append is still checked against its own aggregate's version inside a savepoint, so one
//! caller's conflict never touches another's events.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};

use evtstore_core::provider::expectations;
use evtstore_core::{Error, EventMeta, NewEvent, Position, Result, Snapshot};
use rusqlite::{Connection, ErrorCode};
use tokio::sync::{oneshot, watch};

use crate::Config;

/// Most writes committed in one transaction.
const MAX_BATCH: usize = 512;

/// A write waiting for a commit.
pub(crate) enum Job {
    Append(Vec<NewEvent>, oneshot::Sender<Result<Vec<EventMeta>>>),
    Bookmark(String, Position, oneshot::Sender<Result<()>>),
    Snapshot(Snapshot, oneshot::Sender<Result<()>>),
}

/// A job done inside the transaction, its answer held until the commit.
enum Done {
    Append(
        Result<Vec<EventMeta>>,
        oneshot::Sender<Result<Vec<EventMeta>>>,
    ),
    Other(Result<()>, oneshot::Sender<Result<()>>),
}

/// The write connection (absent while a caller commits with it) and the writes queued for it.
struct Queue {
    conn: Option<Connection>,
    jobs: Vec<Job>,
}

/// Commits writes, batching concurrent ones.
pub(crate) struct Writer {
    queue: Mutex<Queue>,
    config: Arc<Config>,
    appended: Arc<watch::Sender<Position>>,
}

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        config: Arc<Config>,
        appended: Arc<watch::Sender<Position>>,
    ) -> Self {
        let queue = Queue {
            conn: Some(conn),
            jobs: Vec::new(),
        };
        Writer {
            queue: Mutex::new(queue),
            config,
            appended,
        }
    }

    /// Queues a job, commits the queue if no one else is, and waits for the job's answer.
    pub(crate) async fn submit<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T>>) -> Job,
    ) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        let free_conn = {
            let mut queue = self.lock();
            queue.jobs.push(job(reply));
            queue.conn.take()
        };
        if let Some(conn) = free_conn {
            self.commit_queue(conn);
        }
        let lost = || {
            self.config
                .error("write", "the write was lost: a commit panicked")
        };
        answer.await.map_err(|_| lost())?
    }

    /// Runs a read on the write connection if it is idle (its cache holds what was just
    /// written, so the read costs no system call), then commits whatever was queued meanwhile.
    /// `None` when a writer has the connection.
    pub(crate) fn read_if_idle<T>(&self, read: impl FnOnce(&Connection) -> T) -> Option<T> {
        let conn = self.lock().conn.take()?;
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| read(&conn)));
        self.commit_queue(conn);
        match result {
            Ok(result) => Some(result),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Commits batches until the queue is empty, then gives the connection back.
    fn commit_queue(&self, mut conn: Connection) {
        loop {
            let batch = {
                let mut queue = self.lock();
                if queue.jobs.is_empty() {
                    queue.conn = Some(conn);
                    return;
                }
                let take = queue.jobs.len().min(MAX_BATCH);
                queue.jobs.drain(..take).collect::<Vec<_>>()
            };
            // A panic drops the batch's reply senders: its callers get an error, others go on.
            let committed = std::panic::catch_unwind(AssertUnwindSafe(|| {
                commit_batch(&mut conn, &self.config, batch)
            }));
            match committed {
                Ok(Some(last)) => drop(self.appended.send_replace(last)),
                Ok(None) => {}
                Err(_) if !conn.is_autocommit() => drop(conn.execute_batch("ROLLBACK")),
                Err(_) => {}
            }
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
    let timestamp = evtstore_core::event::now_millis();
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
    }
}

fn append(
    conn: &Connection,
    config: &Config,
    events: &[NewEvent],
    timestamp: i64,
) -> Result<Vec<EventMeta>> {
    // The version check is a point lookup of the aggregate's current version (the insert's
    // unique index refuses the next one if it exists): SQLite re-plans a MAX() or ORDER BY
    // query on every run, which cost more than the rest of the append.
    for expected in expectations(events)? {
        let (stream, id, current) = (expected.stream, expected.aggregate_id, expected.current);
        let found = current == 0
            || has_version(conn, stream, id, current).map_err(|e| config.error("append", e))?;
        if !found {
            return Err(conflict_found(conn, config, stream, id, current));
        }
    }
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO events (stream, aggregate_id, version, timestamp, data)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(|e| config.error("append", e))?;
    let mut metas = Vec::with_capacity(events.len());
    for event in events {
        let inserted = insert.execute((
            &event.stream,
            &event.aggregate_id,
            event.version,
            timestamp,
            &event.data,
        ));
        match inserted {
            Ok(_) => {}
            Err(e) if e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) => {
                let (stream, id) = (&event.stream, &event.aggregate_id);
                return Err(conflict_found(conn, config, stream, id, event.version - 1));
            }
            Err(e) => return Err(config.error("append", e)),
        }
        let position = conn.last_insert_rowid() as Position;
        metas.push(event.clone().stored(position, timestamp).meta);
    }
    Ok(metas)
}

fn has_version(conn: &Connection, stream: &str, id: &str, version: u64) -> rusqlite::Result<bool> {
    let mut statement = conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM events WHERE stream = ?1 AND aggregate_id = ?2 AND version = ?3)",
    )?;
    statement.query_row((stream, id, version), |row| row.get(0))
}

/// The conflict error, with the version the aggregate is actually at.
fn conflict_found(
    conn: &Connection,
    config: &Config,
    stream: &str,
    id: &str,
    expected: u64,
) -> Error {
    match current_version(conn, stream, id) {
        Ok(actual) => conflict(stream, id, expected, actual),
        Err(e) => config.error("append", e),
    }
}

fn current_version(conn: &Connection, stream: &str, id: &str) -> rusqlite::Result<u64> {
    let mut statement = conn.prepare_cached(
        "SELECT COALESCE(MAX(version), 0) FROM events WHERE stream = ?1 AND aggregate_id = ?2",
    )?;
    statement.query_row([stream, id], |row| row.get(0))
}

fn set_bookmark(conn: &Connection, name: &str, position: Position) -> rusqlite::Result<()> {
    let mut statement = conn.prepare_cached(
        "INSERT INTO bookmarks (name, position) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET position = excluded.position",
    )?;
    statement.execute((name, position)).map(|_| ())
}

fn save_snapshot(conn: &Connection, s: &Snapshot) -> rusqlite::Result<()> {
    let mut statement = conn.prepare_cached(
        "INSERT INTO snapshots (stream, aggregate_id, tag, version, position, state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (stream, aggregate_id) DO UPDATE SET
           tag = excluded.tag, version = excluded.version,
           position = excluded.position, state = excluded.state
         WHERE excluded.tag <> snapshots.tag OR excluded.version >= snapshots.version",
    )?;
    let row = (
        &s.stream,
        &s.aggregate_id,
        &s.tag,
        s.version,
        s.position,
        &s.state,
    );
    statement.execute(row).map(|_| ())
}

fn conflict(stream: &str, id: &str, expected: u64, actual: u64) -> Error {
    Error::VersionConflict {
        stream: stream.to_owned(),
        aggregate_id: id.to_owned(),
        expected,
        actual,
    }
}

fn fail_all(
    done: impl Iterator<Item = Done>,
    config: &Config,
    what: &str,
    cause: &rusqlite::Error,
) {
    for job in done {
        job.fail(config.error(what, cause.to_string())).answer();
    }
}

impl Job {
    fn done_with(self, appended: Result<Vec<EventMeta>>) -> Done {
        match self {
            Job::Append(_, reply) => Done::Append(appended, reply),
            Job::Bookmark(_, _, reply) | Job::Snapshot(_, reply) => {
                Done::Other(appended.map(|_| ()), reply)
            }
        }
    }
}

impl Done {
    fn is_ok(&self) -> bool {
        match self {
            Done::Append(result, _) => result.is_ok(),
            Done::Other(result, _) => result.is_ok(),
        }
    }

    fn fail(self, error: Error) -> Done {
        match self {
            Done::Append(_, reply) => Done::Append(Err(error), reply),
            Done::Other(_, reply) => Done::Other(Err(error), reply),
        }
    }

    fn answer(self) {
        // A caller that stopped waiting no longer needs its answer.
        match self {
            Done::Append(result, reply) => drop(reply.send(result)),
            Done::Other(result, reply) => drop(reply.send(result)),
        }
    }
}
