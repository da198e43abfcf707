//! Reads, on a small pool of connections, off the async threads.

use std::sync::{Arc, Mutex};

use evtstore_core::provider::Visitor;
use evtstore_core::{EventMeta, Position, Result, Snapshot, StoredEvent};
use rusqlite::types::Value;
use rusqlite::{Connection, Row, params_from_iter};

use crate::Config;

/// Read connections, opened on demand and kept for reuse.
pub(crate) struct Readers {
    config: Arc<Config>,
    idle: Mutex<Vec<Connection>>,
}

const EVENT_COLUMNS: &str = "stream, aggregate_id, version, position, timestamp, data";

impl Readers {
    pub(crate) fn new(config: Arc<Config>) -> Self {
        Readers {
            config,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `read` on a pooled connection, on this thread: short reads cost less than a hop
    /// to another thread would.
    pub(crate) fn with<T>(
        &self,
        what: &str,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let conn = self.take().map_err(|e| self.config.error(what, e))?;
        let result = read(&conn);
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
        result.map_err(|e| self.config.error(what, e))
    }

    /// An error naming the database, what was being read and why.
    pub(crate) fn error(&self, what: &str, cause: rusqlite::Error) -> evtstore_core::Error {
        self.config.error(what, cause)
    }

    fn take(&self) -> rusqlite::Result<Connection> {
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match pooled {
            Some(conn) => Ok(conn),
            None => self.config.connect(),
        }
    }
}

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<StoredEvent> {
    let meta = EventMeta {
        stream: row.get(0)?,
        aggregate_id: row.get(1)?,
        version: row.get(2)?,
        position: row.get(3)?,
        timestamp: row.get(4)?,
    };
    Ok(StoredEvent {
        meta,
        data: row.get(5)?,
    })
}

/// An aggregate's events after a version, in version order, collected.
pub(crate) fn aggregate_events(
    conn: &Connection,
    stream: &str,
    id: &str,
    after_version: u64,
) -> rusqlite::Result<evtstore_core::Result<Vec<StoredEvent>>> {
    let mut events = Vec::new();
    let visited = {
        let mut collect = |meta: &EventMeta, data: &str| {
            let (meta, data) = (meta.clone(), data.to_owned());
            events.push(StoredEvent { meta, data });
            Ok(())
        };
        visit_aggregate(conn, stream, id, after_version, &mut collect)?
    };
    Ok(visited.map(|()| events))
}

/// Streams an aggregate's events after a version to `visit`, in version order, borrowing each
/// body from SQLite: loading allocates nothing per event.
///
/// The rows come in version order from the `(stream, aggregate_id, version)` index. The query
/// has no ORDER BY: SQLite re-plans such a query on every run (its bound values feed the
/// planner), which costs more than reading the rows. A row out of order would be an error,
/// never a silent misfold.
pub(crate) fn visit_aggregate(
    conn: &Connection,
    stream: &str,
    id: &str,
    after_version: u64,
    visit: &mut Visitor<'_>,
) -> rusqlite::Result<evtstore_core::Result<()>> {
    let mut statement = conn.prepare_cached(
        "SELECT version, position, timestamp, data FROM events
         WHERE stream = ?1 AND aggregate_id = ?2 AND version > ?3",
    )?;
    let mut rows = statement.query((stream, id, after_version))?;
    let mut meta = EventMeta {
        stream: stream.to_owned(),
        aggregate_id: id.to_owned(),
        version: after_version,
        position: 0,
        timestamp: 0,
    };
    while let Some(row) = rows.next()? {
        let version: u64 = row.get(0)?;
        if version <= meta.version {
            let cause = format!(
                "{stream}/{id}: version {version} came after {}",
                meta.version
            );
            return Ok(Err(evtstore_core::Error::backend("read aggregate", cause)));
        }
        (meta.version, meta.position, meta.timestamp) = (version, row.get(1)?, row.get(2)?);
        let data = row.get_ref(3)?.as_str().map_err(rusqlite::Error::from)?;
        if let Err(error) = visit(&meta, data) {
            return Ok(Err(error));
        }
    }
    Ok(Ok(()))
}

pub(crate) fn events(
    conn: &Connection,
    streams: &[String],
    after: Position,
    limit: usize,
) -> rusqlite::Result<Vec<StoredEvent>> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events
         WHERE position > ?1 AND stream IN ({}) ORDER BY position LIMIT ?2",
        placeholders(streams.len(), 3)
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let bounds = [Value::Integer(after as i64), Value::Integer(limit as i64)];
    let params = bounds
        .into_iter()
        .chain(streams.iter().cloned().map(Value::Text));
    let rows = statement.query_map(params_from_iter(params), event_from_row)?;
    rows.collect()
}

pub(crate) fn last_event(
    conn: &Connection,
    streams: &[String],
    id: Option<&str>,
) -> rusqlite::Result<Option<StoredEvent>> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events
         WHERE (?1 IS NULL OR aggregate_id = ?1) AND stream IN ({})
         ORDER BY position DESC LIMIT 1",
        placeholders(streams.len(), 2)
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let id = Value::from(id.map(str::to_owned));
    let params = std::iter::once(id).chain(streams.iter().cloned().map(Value::Text));
    let mut rows = statement.query_map(params_from_iter(params), event_from_row)?;
    rows.next().transpose()
}

pub(crate) fn bookmark(conn: &Connection, name: &str) -> rusqlite::Result<Option<Position>> {
    let mut statement = conn.prepare_cached("SELECT position FROM bookmarks WHERE name = ?1")?;
    let mut rows = statement.query_map([name], |row| row.get(0))?;
    rows.next().transpose()
}

pub(crate) fn snapshot(
    conn: &Connection,
    stream: &str,
    id: &str,
) -> rusqlite::Result<Option<Snapshot>> {
    let mut statement = conn.prepare_cached(
        "SELECT tag, version, position, state FROM snapshots
         WHERE stream = ?1 AND aggregate_id = ?2",
    )?;
    let mut rows = statement.query_map([stream, id], |row| {
        Ok(Snapshot {
            stream: stream.to_owned(),
            aggregate_id: id.to_owned(),
            tag: row.get(0)?,
            version: row.get(1)?,
            position: row.get(2)?,
            state: row.get(3)?,
        })
    })?;
    rows.next().transpose()
}

/// `?first, ?first+1, …`: `count` numbered placeholders.
fn placeholders(count: usize, first: usize) -> String {
    let numbered = (first..first + count).map(|n| format!("?{n}"));
    numbered.collect::<Vec<_>>().join(", ")
}

/// Runs bulk SQLite work (a page of events) on this thread, telling a multi-threaded Tokio
/// runtime to move its other tasks elsewhere meanwhile.
pub(crate) fn run_bulk<T>(work: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}
