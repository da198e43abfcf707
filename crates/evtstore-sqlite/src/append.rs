//! The statements of a write: an append checked against each aggregate's version, a
//! bookmark, a snapshot. They run inside the writer thread's transaction.

use evtstore_core::provider::{command_records, expectations};
use evtstore_core::{CommandRecord, Error, EventMeta, NewEvent, Position, Result, Snapshot, Uuid};
use rusqlite::{Connection, ErrorCode, Statement, ToSql};

use crate::config::Config;
use crate::statements::Statements;

/// Appends the events, each aggregate checked against the version it must be at; returns
/// their envelopes.
pub(crate) fn append(
    conn: &Connection,
    statements: &mut Statements<'_>,
    config: &Config,
    events: &[NewEvent],
    timestamp: i64,
) -> Result<Vec<EventMeta>> {
    check_versions(conn, &mut statements.has_version, config, events)?;
    let insert = &mut statements.insert;
    let mut metas = Vec::with_capacity(events.len());
    for event in events {
        let (stream, id) = (event.stream.as_str(), event.aggregate_id.as_str());
        let (at, metadata) = (
            event.timestamp.unwrap_or(timestamp),
            event.metadata.as_deref(),
        );
        let row: [&dyn ToSql; 10] = [
            &stream,
            &id,
            &event.version,
            &at,
            &event.data,
            &event.event_id,
            &event.correlation_id,
            &event.causation_id,
            &metadata,
            &event.revision,
        ];
        match insert.execute(row.as_slice()) {
            Ok(_) => {}
            Err(e) if e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) => {
                return Err(conflict_found(conn, config, stream, id, event.version - 1));
            }
            Err(e) => return Err(config.error("append", e)),
        }
        let position = conn.last_insert_rowid() as Position;
        metas.push(event.meta(position, timestamp));
    }
    record_commands(conn, config, events)?;
    Ok(metas)
}

/// Records the command ids of the events; one recorded already fails the append.
fn record_commands(conn: &Connection, config: &Config, events: &[NewEvent]) -> Result<()> {
    if events.iter().all(|e| e.command_id.is_none()) {
        return Ok(());
    }
    let sql = "INSERT INTO commands (command_id, stream, aggregate_id, version)
        VALUES (?1, ?2, ?3, ?4)";
    let mut insert = conn
        .prepare_cached(sql)
        .map_err(|e| config.error("append", e))?;
    for (command_id, r) in command_records(events) {
        match insert.execute((command_id, &r.stream, &r.aggregate_id, r.version)) {
            Ok(_) => {}
            Err(e) if e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) => {
                return Err(Error::DuplicateCommand { command_id });
            }
            Err(e) => return Err(config.error("append", e)),
        }
    }
    Ok(())
}

/// What an append recorded of a command.
pub(crate) fn command(
    conn: &Connection,
    command_id: Uuid,
) -> rusqlite::Result<Option<CommandRecord>> {
    let mut statement = conn.prepare_cached(
        "SELECT stream, aggregate_id, version FROM commands WHERE command_id = ?1",
    )?;
    let mut rows = statement.query_map([command_id], |row| {
        Ok(CommandRecord {
            stream: row.get(0)?,
            aggregate_id: row.get(1)?,
            version: row.get(2)?,
        })
    })?;
    rows.next().transpose()
}

/// Checks that each aggregate is at the version the append expects, with a point lookup of
/// its current version (the insert's unique index refuses the next one if it exists).
fn check_versions(
    conn: &Connection,
    has_version: &mut Statement<'_>,
    config: &Config,
    events: &[NewEvent],
) -> Result<()> {
    for expected in expectations(events)? {
        let (stream, id, current) = (expected.stream, expected.aggregate_id, expected.current);
        let found = current == 0
            || has_version
                .query_row((stream, id, current), |row| row.get(0))
                .map_err(|e| config.error("append", e))?;
        if !found {
            return Err(conflict_found(conn, config, stream, id, current));
        }
    }
    Ok(())
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

pub(crate) fn set_bookmark(
    conn: &Connection,
    name: &str,
    position: Position,
) -> rusqlite::Result<()> {
    let mut statement = conn.prepare_cached(
        "INSERT INTO bookmarks (name, position) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET position = excluded.position",
    )?;
    statement.execute((name, position)).map(|_| ())
}

pub(crate) fn clear_bookmark(
    conn: &Connection,
    name: &str,
    expected: Position,
) -> rusqlite::Result<()> {
    let mut statement =
        conn.prepare_cached("DELETE FROM bookmarks WHERE name = ?1 AND position = ?2")?;
    statement.execute((name, expected)).map(|_| ())
}

pub(crate) fn save_snapshot(conn: &Connection, s: &Snapshot) -> rusqlite::Result<()> {
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
        &s.schema,
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
