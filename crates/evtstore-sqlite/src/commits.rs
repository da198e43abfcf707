//! Commits by other processes: the file system says when the database's WAL file is written,
//! and SQLite's `data_version` says whether that write committed something new.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::thread;
use std::time::Duration;

use evtstore_core::provider::now_millis;
use evtstore_core::{Position, Result};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use rusqlite::Connection;
use tokio::sync::watch;

use crate::config::Config;

/// Watches the database file while it lives: each commit of another connection, in this
/// process or another, raises the `appended` signal to the store's last position, or re-sends
/// it when a lease was released, so that handlers here wake at once instead of at their next
/// poll.
pub(crate) struct CommitWatcher {
    _watcher: RecommendedWatcher,
}

impl CommitWatcher {
    /// Starts watching the database's folder and a thread that checks for new commits.
    pub(crate) fn start(config: &Config, appended: Arc<watch::Sender<Position>>) -> Result<Self> {
        let fail =
            |e: notify::Error| config.other_error("cannot watch for other processes' commits", e);
        let path = config.path();
        let folder = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (wake, woken) = channel();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let ours = event.is_ok_and(|e| e.paths.iter().any(|p| is_database_file(p, &name)));
                if ours {
                    let _ = wake.send(());
                }
            })
            .map_err(fail)?;
        watcher
            .watch(folder, RecursiveMode::NonRecursive)
            .map_err(fail)?;
        let conn = config
            .connect()
            .map_err(|e| config.error("cannot open", e))?;
        thread::Builder::new()
            .name("evtstore-sqlite-watch".into())
            .spawn(move || check_commits(conn, woken, appended))
            .map_err(|e| config.other_error("cannot start the watcher thread", e))?;
        Ok(CommitWatcher { _watcher: watcher })
    }
}

/// The database file itself or its WAL.
fn is_database_file(path: &Path, name: &str) -> bool {
    let file = path.file_name().map(|n| n.to_string_lossy());
    file.is_some_and(|f| f == name || f.strip_prefix(name) == Some("-wal"))
}

/// On each wake-up (several at once count as one), waits for `data_version` to move: the file
/// system reports the WAL write before the commit it belongs to is visible (the WAL's index
/// lives in shared memory, whose writes it does not report), so the check is repeated a few
/// times over about 190 ms. When it moved, signals `appended` (see [`signal_commit`]). Ends
/// when the watcher is dropped.
fn check_commits(conn: Connection, woken: Receiver<()>, appended: Arc<watch::Sender<Position>>) {
    let mut seen = data_version(&conn);
    let mut seen_now = Seen::read(&conn);
    while woken.recv().is_ok() {
        for wait_us in RECHECKS_US {
            while woken.try_recv().is_ok() {}
            let version = data_version(&conn);
            if version != seen {
                seen = version;
                signal_commit(&conn, &appended, &mut seen_now);
                break;
            }
            thread::sleep(Duration::from_micros(wait_us));
        }
    }
}

/// The pauses between checks after a write: the commit usually follows within a millisecond
/// (an fsync); a write that is rolled back never commits.
const RECHECKS_US: [u64; 11] = [
    0, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000,
];

/// Raises `appended` to the last position when it rose; re-sends it when a lease ended since
/// the last look, as a release does (handlers waiting for the lease try at once), or when a
/// bookmark moved (callers waiting to read their writes look again).
fn signal_commit(conn: &Connection, appended: &watch::Sender<Position>, seen: &mut Seen) {
    let last: Option<Position> = conn
        .query_row("SELECT MAX(position) FROM events", [], |row| row.get(0))
        .unwrap_or_default();
    let now = Seen::read(conn);
    let released = now.lease_end > seen.lease_end || now.bookmarks != seen.bookmarks;
    *seen = now;
    appended.send_if_modified(|signalled| {
        let newer = last.is_some_and(|last| last > *signalled);
        if newer {
            *signalled = last.unwrap_or_default();
        }
        newer || released
    });
}

/// What the watcher last saw of leases and bookmarks.
#[derive(Default)]
struct Seen {
    /// When the lease that ended last ended: a release ends one now.
    lease_end: Option<i64>,
    /// The sum of every bookmark: it moves when a handler saves one.
    bookmarks: f64,
}

impl Seen {
    fn read(conn: &Connection) -> Self {
        let sql = "SELECT MAX(expires_at) FROM leases WHERE expires_at <= ?1";
        let lease_end = conn.query_row(sql, [now_millis()], |row| row.get(0));
        let sql = "SELECT TOTAL(position) FROM bookmarks";
        let bookmarks = conn.query_row(sql, [], |row| row.get(0));
        Seen {
            lease_end: lease_end.unwrap_or_default(),
            bookmarks: bookmarks.unwrap_or_default(),
        }
    }
}

fn data_version(conn: &Connection) -> Option<i64> {
    conn.query_row("PRAGMA data_version", [], |row| row.get(0))
        .ok()
}
