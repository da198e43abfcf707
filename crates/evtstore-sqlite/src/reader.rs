//! The statements of reads. They run on a reader thread (or the idle writer thread) and
//! return owned results; callers then use them on their own thread.

use std::borrow::Cow;

use evtstore_core::provider::SharedNames;
use evtstore_core::{EventMeta, Position, SharedStr, Snapshot, StoredEvent, Uuid};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, Row, params_from_iter};

use crate::rows::{AggregateRows, Envelope};

const EVENT_COLUMNS: &str = "stream, aggregate_id, version, position, timestamp, data,
    event_id, correlation_id, causation_id, metadata, revision";

/// An event's body as text. A BLOB, or text that is not UTF-8 (written by another tool), gives
/// a body that is not JSON: it fails to decode, with its place named, like any undecodable
/// event, instead of failing the whole read.
fn body(value: ValueRef<'_>) -> Cow<'_, str> {
    match value {
        ValueRef::Text(text) => match std::str::from_utf8(text) {
            Ok(text) => Cow::Borrowed(text),
            Err(_) => Cow::Owned(format!("<{} bytes of text that is not UTF-8>", text.len())),
        },
        ValueRef::Blob(blob) => Cow::Owned(format!("<a BLOB of {} bytes, not text>", blob.len())),
        other => Cow::Owned(format!("<a {} value, not text>", other.data_type())),
    }
}

/// An event of a row, its names shared with the read's other events.
fn event_from_row(names: &mut SharedNames, row: &Row<'_>) -> rusqlite::Result<StoredEvent> {
    let meta = EventMeta {
        stream: names.stream(row.get_ref(0)?.as_str()?),
        aggregate_id: names.aggregate_id(row.get_ref(1)?.as_str()?),
        version: row.get(2)?,
        position: row.get(3)?,
        timestamp: row.get(4)?,
        event_id: row.get::<_, Option<Uuid>>(6)?.unwrap_or_default(),
        correlation_id: row.get(7)?,
        causation_id: row.get(8)?,
        metadata: row.get_ref(9)?.as_str_or_null()?.map(SharedStr::from),
        revision: row.get(10)?,
    };
    let data = body(row.get_ref(5)?).into_owned();
    Ok(StoredEvent { meta, data })
}

/// An aggregate's events after a version, in version order.
///
/// The rows come in version order from the `(stream, aggregate_id, version)` index. The query
/// has no ORDER BY: SQLite re-plans such a query on every run (its bound values feed the
/// planner), which costs more than reading the rows. A row out of order is an error in
/// [`AggregateRows::visit`], never a silent misfold.
pub(crate) fn aggregate(
    conn: &Connection,
    stream: &str,
    id: &str,
    after_version: u64,
) -> rusqlite::Result<AggregateRows> {
    let mut statement = conn.prepare_cached(
        "SELECT version, position, timestamp, data, event_id, correlation_id, causation_id,
            metadata, revision FROM events
         WHERE stream = ?1 AND aggregate_id = ?2 AND version > ?3",
    )?;
    let mut rows = statement.query((stream, id, after_version))?;
    let mut read = AggregateRows::default();
    while let Some(row) = rows.next()? {
        let body = body(row.get_ref(3)?);
        let envelope = Envelope {
            event_id: row.get::<_, Option<Uuid>>(4)?.unwrap_or_default(),
            correlation_id: row.get(5)?,
            causation_id: row.get(6)?,
            metadata: row.get_ref(7)?.as_str_or_null()?,
            revision: row.get(8)?,
        };
        read.push((row.get(0)?, row.get(1)?, row.get(2)?), &envelope, &body);
    }
    Ok(read)
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
    let mut names = SharedNames::new(streams);
    let rows = statement.query_map(params_from_iter(params), |row| {
        event_from_row(&mut names, row)
    })?;
    rows.collect()
}

/// The streams that hold events, sorted, from the `(stream, position)` index.
pub(crate) fn streams(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut statement =
        conn.prepare_cached("SELECT DISTINCT stream FROM events ORDER BY stream")?;
    let rows = statement.query_map([], |row| row.get(0))?;
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
    let mut names = SharedNames::new(streams);
    let mut rows = statement.query(params_from_iter(params))?;
    rows.next()?
        .map(|row| event_from_row(&mut names, row))
        .transpose()
}

/// An aggregate's archived events between two versions, in version order.
pub(crate) fn archived(
    conn: &Connection,
    (stream, id): (&str, &str),
    after: u64,
    before: u64,
) -> rusqlite::Result<Vec<StoredEvent>> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM archive
         WHERE stream = ?1 AND aggregate_id = ?2 AND version > ?3 AND version < ?4
         ORDER BY version"
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let mut names = SharedNames::new(&[stream]);
    let bounds = (
        stream,
        id,
        after.min(i64::MAX as u64),
        before.min(i64::MAX as u64),
    );
    let rows = statement.query_map(bounds, |row| event_from_row(&mut names, row))?;
    rows.collect()
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
            schema: row.get(0)?,
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
