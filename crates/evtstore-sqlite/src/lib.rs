//! The SQLite provider for evtstore: the embedded default. One file, WAL mode, no server.
//!
//! ```no_run
//! # async fn run() -> evtstore_core::Result<()> {
//! use evtstore_sqlite::SqliteProvider;
//! let provider = SqliteProvider::open("app.db")?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - `config`: options, connections, and errors that name the file.
//! - `schema`: tables, created and upgraded on open.
//! - `writer`: the writer thread, owner of the one write connection, with group commit: all
//!   writes queued while a commit runs share the next transaction (and its fsync), each append
//!   in a savepoint of its own, checked for its own aggregate's version.
//! - `append`: the statements of a write; `statements`: those of every append, prepared once.
//! - `lease`: leases, changed by the writer thread under SQLite's write lock.
//! - `readers`: reader threads, each with a read connection; WAL lets them run beside writes.
//! - `reader`: the statements of a read; `rows`: an aggregate's events as read, in one buffer.
//! - `commits`: wakes handlers when another process commits to the file.
//!
//! # Threads
//! SQLite calls block (a commit waits for an fsync under `Durability::Full`, a write for
//! another process's lock), so none runs on the caller's thread: an async call sends its work
//! to a thread of the provider's own and awaits the answer, and the executor runs its other
//! tasks meanwhile, even a current-thread runtime. The writer thread makes every write; reader
//! threads (one per core, two to four) make every read, each on its own connection. Dropping
//! the provider ends its threads once the work already sent is done; it does not wait for
//! them.
//! [`SqliteProvider::open`] itself runs on the caller's thread: call it at start-up, or
//! inside `spawn_blocking`.
//!
//! A hop to another thread and back costs more than a read (waking a sleeping thread takes
//! tens of microseconds on a small virtual machine), so the writer thread stays awake for
//! 200 µs after its last message, a caller awaiting an answer alone polls for it for up to
//! 300 µs before it sleeps, and stops when another caller comes (core's `provider::Waiting`;
//! it yields to other tasks and threads between polls: without yielding its thread, a caller
//! sharing a CPU with the writer thread starved it, and W1 at `NORMAL` fell to 0.13-0.36 of
//! raw in some runs), and an aggregate load runs on the writer thread when it is idle (its
//! page cache holds what was just written).
//! Callers waiting together sleep at once. Measured with `evtstore-bench` on 2 shared cores,
//! W1 against the raw 1-insert transaction rate of the same run (medians of 5 runs):
//! - W1 at `synchronous=FULL`: 0.94 of raw (1.10 when SQLite ran on the caller's thread, in
//!   the same session; 0.62 with a 50 µs poll); at `NORMAL`: 0.67 (0.80 before; 0.23 with
//!   loads on the reader threads, 0.24 with neither staying awake nor polling);
//! - W2 (16 concurrent callers): +25% at `FULL`, +39% at `NORMAL`, since commits no longer
//!   hold up the executor; W4 (handler catch-up): -15 to -20% (a hop per page and per
//!   bookmark; reading pages on the idle writer thread instead was slower still);
//! - dedicated reader threads rather than `tokio::task::spawn_blocking` with pooled
//!   connections: W1 equal, W2 +45%, W4 +15%.
//!
//! # Durability
//! [`Durability::Full`] (the default) syncs the WAL on every commit: an appended event survives
//! power loss. [`Durability::Normal`] syncs only at checkpoints: much faster, and safe against
//! a crash of the process, but the last commits can be lost when the machine loses power.
//!
//! # Errors
//! Every error names the database file. A database still busy or locked by another
//! connection when `busy_timeout` has passed gives `Error::Contention`, which
//! `is_retryable()`; a file that cannot be opened, or any other refusal, `Error::Backend`.
//! An event body that another tool stored as a BLOB, or as text that is not UTF-8, reads as
//! an event that fails to decode (`Error::Decode`, naming it): a handler with
//! `continue_on_error` reports and skips it like any undecodable event.
//!
//! # Several processes
//! Processes may share one file: appends take SQLite's write lock, check versions under it
//! and wait up to `busy_timeout` for another process's transaction. Appends in this process
//! wake its handlers at once; commits by other processes wake them too (`commits`): a watcher
//! started with the first handler learns from the file system (inotify on Linux) that the
//! database's WAL file was written, and from SQLite's `data_version` that a commit landed.
//! A lease released by another process wakes them the same way, so one of them takes it at
//! once. Polling stays as the fallback, for a file system that sends no such news.

mod append;
mod commits;
mod config;
mod lease;
mod reader;
mod readers;
mod retire;
mod rows;
mod schema;
mod statements;
mod writer;

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use evtstore_core::provider::{AggregateKey, Retire, Visitor, Waiting};
use evtstore_core::provider::{check_bookmark, now_millis};
use evtstore_core::{
    CommandRecord, EventMeta, Lease, NewEvent, Position, Provider, Result, SharedStr, Snapshot,
    StoredEvent, Uuid,
};
use futures_util::future::{BoxFuture, FutureExt};
use rusqlite::Connection;
use tokio::sync::{oneshot, watch};

use commits::CommitWatcher;
use config::Config;
pub use config::{Durability, SqliteOptions};
use lease::LeaseJob;
use readers::{Read, Readers};
use rows::AggregateRows;
use writer::{Job, Writer};

/// How long a caller waiting alone polls for its answer before it sleeps (see the module docs).
const POLL_ALONE: Duration = Duration::from_micros(300);

/// Events in one SQLite file. Cheap to share behind the `Arc` a domain keeps.
pub struct SqliteProvider {
    config: Arc<Config>,
    readers: Readers,
    writer: Writer,
    waiting: Waiting,
    appended: Arc<watch::Sender<Position>>,
    /// Started by the first `subscribe`: wakes handlers on other processes' commits.
    watcher: OnceLock<Option<CommitWatcher>>,
}

impl SqliteProvider {
    /// Opens (or creates) the database file with the default options.
    ///
    /// ```no_run
    /// let store = evtstore_sqlite::SqliteProvider::open("events.db")?;
    /// # Ok::<(), evtstore_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidName`](evtstore_core::Error::InvalidName) for an in-memory path;
    /// [`Error::Backend`](evtstore_core::Error::Backend) naming the path when the file cannot
    /// be opened, created or upgraded.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// Opens (or creates) the database file, in WAL mode, creating or upgrading its schema.
    ///
    /// An empty path, `:memory:` and `mode=memory` URIs are refused with
    /// [`evtstore_core::Error::InvalidName`]: each SQLite connection would get its own empty database. Use
    /// `evtstore_core::MemoryProvider` for a store in memory.
    pub fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self> {
        let config = Arc::new(Config::new(path.as_ref(), options)?);
        let open = |e: rusqlite::Error| config.error("cannot open", e);
        let mut conn = config.connect().map_err(open)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open)?;
        schema::migrate(&mut conn).map_err(|e| config.error("cannot create the schema", e))?;
        let appended = Arc::new(watch::channel(0).0);
        Ok(SqliteProvider {
            readers: Readers::start(&config)?,
            writer: Writer::start(conn, config.clone(), appended.clone())?,
            config,
            waiting: Waiting::new(POLL_ALONE),
            appended,
            watcher: OnceLock::new(),
        })
    }

    /// Runs `read` on a reader thread (or, with `on_writer`, on the writer thread if it is
    /// idle) and awaits its answer.
    async fn read<T: Send + 'static>(
        &self,
        what: &'static str,
        on_writer: bool,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        let config = self.config.clone();
        let job: Read = Box::new(move |conn| {
            let _ = reply.send(conn.and_then(read).map_err(|e| config.error(what, e)));
        });
        let job = match on_writer {
            true => self.writer.read_if_idle(job),
            false => Some(job),
        };
        if let Some(job) = job {
            self.readers.send(job);
        }
        let lost = "the read was lost: its thread panicked or ended";
        let answer = self.waiting.poll(answer).await.ok();
        answer.ok_or_else(|| self.config.other_error(what, lost))?
    }

    /// Queues a write for the writer thread's next commit and awaits its answer.
    async fn write<T>(&self, job: impl FnOnce(oneshot::Sender<Result<T>>) -> Job) -> Result<T> {
        let answer = self.waiting.poll(self.writer.submit(job)).await.ok();
        let lost = "the write was lost: the writer thread panicked or ended";
        answer.ok_or_else(|| self.config.other_error("write", lost))?
    }

    /// Runs a lease change on the writer thread.
    async fn lease(&self, job: LeaseJob) -> Result<Option<Lease>> {
        self.write(|reply| Job::Lease(job, reply)).await
    }

    /// An aggregate's events after a version, as read.
    async fn aggregate(
        &self,
        stream: &SharedStr,
        id: &SharedStr,
        after: u64,
    ) -> Result<AggregateRows> {
        let (stream, id) = (stream.clone(), id.clone());
        let read = move |c: &Connection| reader::aggregate(c, &stream, &id, after);
        self.read("read aggregate", true, read).await
    }
}

impl Provider for SqliteProvider {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn append(&self, events: Vec<NewEvent>) -> BoxFuture<'_, Result<Vec<EventMeta>>> {
        self.write(|reply| Job::Append(events, reply)).boxed()
    }

    fn command(&self, command_id: Uuid) -> BoxFuture<'_, Result<Option<CommandRecord>>> {
        let read = move |c: &Connection| append::command(c, command_id);
        self.read("read command", false, read).boxed()
    }

    fn retire(&self, marker: NewEvent, how: Retire) -> BoxFuture<'_, Result<EventMeta>> {
        let retired = self.write(move |reply| Job::Retire(marker, how, reply));
        async move { Ok(retired.await?.remove(0)) }.boxed()
    }

    fn archived_events<'a>(
        &'a self,
        stream: &'a str,
        aggregate_id: &'a str,
        after: u64,
        before: u64,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>>> {
        let (stream, id) = (stream.to_owned(), aggregate_id.to_owned());
        let read = move |c: &Connection| reader::archived(c, (&stream, &id), after, before);
        self.read("read archived events", false, read).boxed()
    }

    fn aggregate_key<'a>(
        &'a self,
        stream: &'a str,
        aggregate_id: &'a str,
        create: bool,
    ) -> BoxFuture<'a, Result<Option<AggregateKey>>> {
        let (stream, id) = (stream.to_owned(), aggregate_id.to_owned());
        async move {
            if create {
                let (s, i) = (stream.clone(), id.clone());
                let statements = Box::new(move |c: &Connection| retire::create_key(c, &s, &i));
                self.write(|reply| Job::Run("create key", statements, reply))
                    .await?;
            }
            let read = move |c: &Connection| retire::key(c, &stream, &id);
            self.read("read key", false, read).await
        }
        .boxed()
    }

    fn forget_key<'a>(
        &'a self,
        stream: &'a str,
        aggregate_id: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        let (stream, id) = (stream.to_owned(), aggregate_id.to_owned());
        let statements = Box::new(move |c: &Connection| retire::forget_key(c, &stream, &id));
        self.write(|reply| Job::Run("forget key", statements, reply))
            .boxed()
    }

    fn aggregate_events<'a>(
        &'a self,
        stream: &'a str,
        aggregate_id: &'a str,
        after_version: u64,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>>> {
        async move {
            let (stream, id) = (SharedStr::from(stream), SharedStr::from(aggregate_id));
            let rows = self.aggregate(&stream, &id, after_version).await?;
            rows.collect(&self.config, &stream, &id, after_version)
        }
        .boxed()
    }

    fn visit_aggregate<'a>(
        &'a self,
        stream: &'a SharedStr,
        aggregate_id: &'a SharedStr,
        after_version: u64,
        visit: &'a mut Visitor<'_>,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            let rows = self.aggregate(stream, aggregate_id, after_version).await?;
            rows.visit(&self.config, stream, aggregate_id, after_version, visit)
        }
        .boxed()
    }

    fn events<'a>(
        &'a self,
        streams: &'a [String],
        after: Position,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>>> {
        let streams = streams.to_vec();
        let read = move |c: &Connection| reader::events(c, &streams, after, limit);
        self.read("read events", false, read).boxed()
    }

    fn streams(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        self.read("list streams", false, reader::streams).boxed()
    }

    fn last_event<'a>(
        &'a self,
        streams: &'a [String],
        aggregate_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<StoredEvent>>> {
        let (streams, id) = (streams.to_vec(), aggregate_id.map(str::to_owned));
        let read = move |c: &Connection| reader::last_event(c, &streams, id.as_deref());
        self.read("read last event", false, read).boxed()
    }

    fn bookmark<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Position>>> {
        async move {
            check_bookmark(name)?;
            let name = name.to_owned();
            let read = move |c: &Connection| reader::bookmark(c, &name);
            self.read("read bookmark", false, read).await
        }
        .boxed()
    }

    fn set_bookmark<'a>(&'a self, name: &'a str, position: Position) -> BoxFuture<'a, Result<()>> {
        async move {
            check_bookmark(name)?;
            let job = |reply| Job::Bookmark(name.to_owned(), position, reply);
            self.write(job).await
        }
        .boxed()
    }

    fn snapshot<'a>(
        &'a self,
        stream: &'a str,
        aggregate_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Snapshot>>> {
        let (stream, id) = (stream.to_owned(), aggregate_id.to_owned());
        let read = move |c: &Connection| reader::snapshot(c, &stream, &id);
        self.read("read snapshot", false, read).boxed()
    }

    fn save_snapshot(&self, snapshot: Snapshot) -> BoxFuture<'_, Result<()>> {
        self.write(|reply| Job::Snapshot(snapshot, reply)).boxed()
    }

    fn acquire_lease<'a>(
        &'a self,
        name: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<Lease>>> {
        async move {
            check_bookmark(name)?;
            let (name, owner) = (name.to_owned(), owner.to_owned());
            self.lease(LeaseJob::Acquire { name, owner, ttl }).await
        }
        .boxed()
    }

    fn release_lease<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, Result<()>> {
        async move {
            self.lease(LeaseJob::Release(lease.clone())).await?;
            // Other processes' handlers hear of it from their watcher (`commits`).
            self.appended.send_modify(|_| {});
            Ok(())
        }
        .boxed()
    }

    fn set_bookmark_leased<'a>(
        &'a self,
        lease: &'a Lease,
        position: Position,
    ) -> BoxFuture<'a, Result<()>> {
        let job = LeaseJob::Bookmark(lease.clone(), position, None);
        self.lease(job).map(|saved| saved.map(drop)).boxed()
    }

    fn apply_ask_leased<'a>(
        &'a self,
        lease: &'a Lease,
        position: Position,
        ask: &'a str,
        asked: Position,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            check_bookmark(ask)?;
            let job = LeaseJob::Bookmark(lease.clone(), position, Some((ask.to_owned(), asked)));
            self.lease(job).await.map(drop)
        }
        .boxed()
    }

    fn leases<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<Lease>>> {
        let (prefix, now) = (prefix.to_owned(), now_millis());
        let read = move |c: &Connection| lease::live(c, &prefix, now);
        self.read("read leases", false, read).boxed()
    }

    fn subscribe(&self) -> watch::Receiver<Position> {
        self.watcher.get_or_init(|| {
            let started = CommitWatcher::start(&self.config, self.appended.clone());
            let failed = |error| tracing::warn!(%error, "handlers will see other processes' commits by polling");
            started.map_err(failed).ok()
        });
        self.appended.subscribe()
    }
}
