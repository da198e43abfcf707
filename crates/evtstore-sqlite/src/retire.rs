//! Deleting and archiving aggregates, and their keys: statements run by the writer thread
//! (reads of keys by readers).

use evtstore_core::provider::{AggregateKey, Retire};
use evtstore_core::{EventMeta, NewEvent, Result, Uuid};
use rusqlite::{Connection, OptionalExtension};

use crate::append::append;
use crate::config::Config;
use crate::statements::Statements;

/// The columns an archived event keeps: all of them.
const COLUMNS: &str = "position, stream, aggregate_id, version, timestamp, data, event_id,
    correlation_id, causation_id, metadata, revision";

/// Appends the marker, then deletes or archives the aggregate's events below it.
pub(crate) fn retire(
    conn: &Connection,
    statements: &mut Statements<'_>,
    config: &Config,
    marker: &NewEvent,
    how: Retire,
    timestamp: i64,
) -> Result<Vec<EventMeta>> {
    let metas = append(
        conn,
        statements,
        config,
        std::slice::from_ref(marker),
        timestamp,
    )?;
    let below = (
        marker.stream.as_str(),
        marker.aggregate_id.as_str(),
        marker.version,
    );
    let run = |sql: &str| conn.prepare_cached(sql)?.execute(below).map(|_| ());
    let done = match how {
        Retire::Archive => run(&format!(
            "INSERT INTO archive ({COLUMNS}) SELECT {COLUMNS} FROM events
             WHERE stream = ?1 AND aggregate_id = ?2 AND version < ?3"
        )),
        Retire::Delete => {
            run("DELETE FROM archive WHERE stream = ?1 AND aggregate_id = ?2 AND version < ?3")
                .and_then(|()| forget_key(conn, below.0, below.1))
        }
    };
    done.and_then(|()| {
        run("DELETE FROM events WHERE stream = ?1 AND aggregate_id = ?2 AND version < ?3")
    })
    .map_err(|e| config.error(&format!("retire {}/{}", below.0, below.1), e))?;
    Ok(metas)
}

/// Stores a new key for the aggregate unless it has one.
pub(crate) fn create_key(conn: &Connection, stream: &str, id: &str) -> rusqlite::Result<()> {
    let key = AggregateKey::generate();
    let sql = "INSERT INTO keys (stream, aggregate_id, key_id, secret) VALUES (?1, ?2, ?3, ?4)
        ON CONFLICT (stream, aggregate_id) DO NOTHING";
    let row = (stream, id, key.id, &key.secret);
    conn.prepare_cached(sql)?.execute(row).map(|_| ())
}

/// Deletes the aggregate's key and its snapshot.
pub(crate) fn forget_key(conn: &Connection, stream: &str, id: &str) -> rusqlite::Result<()> {
    for sql in [
        "DELETE FROM keys WHERE stream = ?1 AND aggregate_id = ?2",
        "DELETE FROM snapshots WHERE stream = ?1 AND aggregate_id = ?2",
    ] {
        conn.prepare_cached(sql)?.execute((stream, id))?;
    }
    Ok(())
}

/// The aggregate's key, if it has one.
pub(crate) fn key(
    conn: &Connection,
    stream: &str,
    id: &str,
) -> rusqlite::Result<Option<AggregateKey>> {
    let sql = "SELECT key_id, secret FROM keys WHERE stream = ?1 AND aggregate_id = ?2";
    let mut statement = conn.prepare_cached(sql)?;
    let read = |row: &rusqlite::Row<'_>| {
        Ok(AggregateKey {
            id: row.get::<_, Uuid>(0)?,
            secret: row.get(1)?,
        })
    };
    statement.query_row((stream, id), read).optional()
}
