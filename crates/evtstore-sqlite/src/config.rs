//! How to open the database, and errors that name it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use evtstore_core::{BoxError, Error, Result};
use rusqlite::{Connection, ErrorCode, OpenFlags};

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
    /// The configuration of a database file; refuses in-memory databases, which each
    /// connection would see as its own empty database.
    pub(crate) fn new(path: &Path, options: SqliteOptions) -> Result<Self> {
        let text = path.to_string_lossy();
        let uri = text.starts_with("file:");
        let in_memory = text.trim().is_empty()
            || text == ":memory:"
            || (uri && (text.contains(":memory:") || text.contains("mode=memory")));
        if in_memory {
            return Err(Error::InvalidName {
                what: "database path",
                value: text.into_owned(),
                reason: "SQLite gives each connection its own in-memory database, so reads \
                         and handlers would see other, empty ones: give a file path, or use \
                         evtstore's MemoryProvider for a store in memory",
            });
        }
        let path = path.to_owned();
        Ok(Config { path, options })
    }

    /// The database file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// A new connection to the file, with the options applied.
    pub(crate) fn connect(&self) -> rusqlite::Result<Connection> {
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

    /// An error naming the database file and what was being done: [`Error::Contention`]
    /// (retryable) when the database stayed busy or locked past the busy timeout, else
    /// [`Error::Backend`].
    pub(crate) fn error(&self, what: &str, cause: rusqlite::Error) -> Error {
        let code = cause.sqlite_error_code();
        self.classify(what, code, cause)
    }

    /// [`error`](Self::error) for a cause shared by several callers.
    pub(crate) fn shared_error(&self, what: &str, cause: &rusqlite::Error) -> Error {
        self.classify(what, cause.sqlite_error_code(), cause.to_string())
    }

    /// A backend error that is not SQLite's, naming the database file.
    pub(crate) fn other_error(&self, what: &str, cause: impl Into<BoxError>) -> Error {
        Error::backend(self.context(what), cause)
    }

    fn classify(&self, what: &str, code: Option<ErrorCode>, cause: impl Into<BoxError>) -> Error {
        match code {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                Error::contention(self.context(what), cause)
            }
            _ => Error::backend(self.context(what), cause),
        }
    }

    fn context(&self, what: &str) -> String {
        format!("{what} on SQLite database {}", self.path.display())
    }
}

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
