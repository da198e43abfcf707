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
//! - `schema`: tables, created and upgraded on open.
//! - `writer`: one write connection with group commit: appends of concurrent callers share one
//!   transaction (and one fsync), each checked for its own aggregate's version.
//! - `reader`: reads on pooled connections; WAL lets them run beside writes. An aggregate
//!   load uses the write connection instead when it is idle: its cache holds what was just
//!   written, so the load costs no system call (writes queued meanwhile wait for the load).
//!
//! SQLite calls block. Reads of one aggregate and commits run on the calling task's thread: a
//! hop to another thread costs more than they do (a commit takes one fsync under
//! `Durability::Full`). The caller that finds the write connection free also commits the
//! writes queued meanwhile, so under a steady stream of writes its own call can take several
//! commits. Pages of events for handlers run inside `tokio::task::block_in_place` on a
//! multi-threaded runtime.
//!
//! # Durability
//! [`Durability::Full`] (the default) syncs the WAL on every commit: an appended event survives
//! power loss. [`Durability::Normal`] syncs only at checkpoints: much faster, and safe against
//! a crash of the process, but the last commits can be lost when the machine loses power.
//!
//! # Several processes
//! Processes may share one file: appends take SQLite's write lock, check versions under it
//! and wait up to `busy_timeout` for another process's transaction. Handlers see other
//! processes' events by polling; appends in this process wake them at once.

mod reader;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use evtstore_core::names::check_bookmark;
use evtstore_core::provider::Visitor;
use evtstore_core::{
    Error, EventMeta, NewEvent, Position, Provider, Result, Snapshot, StoredEvent,
};
use futures_util::future::{BoxFuture, FutureExt};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::watch;

use reader::{Readers, run_bulk};
use writer::{Job, Writer};

/// Turns off SQLite's memory statistics, which take a process-wide mutex on every allocation
/// (contended once several threads use SQLite). Works only before SQLite's first use in the
/// process; afterwards SQLite refuses it and nothing changes.
fn disable_memory_statistics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: SQLITE_CONFIG_MEMSTATUS takes one int; sqlite3_config is safe to call before
        // sqlite3_initialize and returns SQLITE_MISUSE, changing nothing, after it.
        unsafe { rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0) };
    });
}

/// When a commit reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=FULL`: every commit is synced; survives power loss.
    #[default]
    Full,
    /// `synchronous=NORMAL`: synced at WAL checkpoints; survives a process crash.
    Normal,
}

/// How to open the database.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// When commits reach the disk (default [`Durability::Full`]).
    pub durability: Durability,
    /// How long to wait for another process's write lock (default 5 s).
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            durability: Durability::Full,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// Where the database is and how to connect to it.
pub(crate) struct Config {
    path: PathBuf,
    options: SqliteOptions,
}

impl Config {
    fn connect(&self) -> rusqlite::Result<Connection> {
        disable_memory_statistics();
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags)?;
        conn.busy_timeout(self.options.busy_timeout)?;
        let synchronous = match self.options.durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", synchronous)?;
        Ok(conn)
    }

    /// An error naming the database file, what was being done, and the cause.
    fn error(&self, what: &str, cause: impl Into<evtstore_core::BoxError>) -> Error {
        Error::backend(
            format!("{what} on SQLite database {}", self.path.display()),
            cause,
        )
    }
}

/// Events in one SQLite file. Cheap to share behind the `Arc` a domain keeps.
pub struct SqliteProvider {
    readers: Arc<Readers>,
    writer: Writer,
    appended: Arc<watch::Sender<Position>>,
}

impl SqliteProvider {
    /// Opens (or creates) the database file with the default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// Opens (or creates) the database file, in WAL mode, creating or upgrading its schema.
    pub fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self> {
        let config = Arc::new(Config {
            path: path.as_ref().to_owned(),
            options,
        });
        let open = |e: rusqlite::Error| config.error("cannot open", e);
        let mut conn = config.connect().map_err(open)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open)?;
        schema::migrate(&mut conn).map_err(|e| config.error("cannot create the schema", e))?;
        let appended = Arc::new(watch::channel(0).0);
        Ok(SqliteProvider {
            readers: Arc::new(Readers::new(config.clone())),
            writer: Writer::new(conn, config, appended.clone()),
            appended,
        })
    }
}

impl Provider for SqliteProvider {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn append(&self, events: Vec<NewEvent>) -> BoxFuture<'_, Result<Vec<EventMeta>>> {
        self.writer
            .submit(|reply| Job::Append(events, reply))
            .boxed()
    }

    fn aggregate_events<'a>(
        &'a self,
        stream: &'a str,
        aggregate_id: &'a str,
        after_version: u64,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>>> {
        let read =
            move |c: &Connection| reader::aggregate_events(c, stream, aggregate_id, after_version);
        async move { self.readers.with("read aggregate", read)? }.boxed()
    }

    fn visit_aggregate<'a>(
        &'a self,
        stream: &'a str,
        aggregate_id: &'a str,
        after_version: u64,
        visit: &'a mut Visitor<'_>,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            let mut read = |c: &Connection| {
                reader::visit_aggregate(c, stream, aggregate_id, after_version, &mut *visit)
            };
            let fail = |e| self.readers.error("read aggregate", e);
            match self.writer.read_if_idle(&mut read) {
                Some(read) => read.map_err(fail)?,
                None => self.readers.with("read aggregate", read)?,
            }
        }
        .boxed()
    }

    fn events<'a>(
        &'a self,
        streams: &'a [String],
        after: Position,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>>> {
        let read = move |c: &Connection| reader::events(c, streams, after, limit);
        async move { run_bulk(|| self.readers.with("read events", read)) }.boxed()
    }

    fn last_event<'a>(
        &'a self,
        streams: &'a [String],
        aggregate_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<StoredEvent>>> {
        let read = move |c: &Connection| reader::last_event(c, streams, aggregate_id);
        async move { self.readers.with("read last event", read) }.boxed()
    }

    fn bookmark<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Position>>> {
        async move {
            check_bookmark(name)?;
            self.readers
                .with("read bookmark", |c| reader::bookmark(c, name))
        }
        .boxed()
    }

    fn set_bookmark<'a>(&'a self, name: &'a str, position: Position) -> BoxFuture<'a, Result<()>> {
        async move {
            check_bookmark(name)?;
            let job = |reply| Job::Bookmark(name.to_owned(), position, reply);
            self.writer.submit(job).await
        }
        .boxed()
    }

    fn snapshot<'a>(
        &'a self,
        stream: &'a str,
        aggregate_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Snapshot>>> {
        let read = move |c: &Connection| reader::snapshot(c, stream, aggregate_id);
        async move { self.readers.with("read snapshot", read) }.boxed()
    }

    fn save_snapshot(&self, snapshot: Snapshot) -> BoxFuture<'_, Result<()>> {
        self.writer
            .submit(|reply| Job::Snapshot(snapshot, reply))
            .boxed()
    }

    fn subscribe(&self) -> watch::Receiver<Position> {
        self.appended.subscribe()
    }
}
