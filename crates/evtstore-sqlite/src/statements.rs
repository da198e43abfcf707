//! The writer's statements for every append, prepared once for the life of its thread:
//! `prepare_cached` copies the SQL text into a new string on every call, four times per command.
//! Rarer statements (rollbacks, conflicts, bookmarks, snapshots) stay with `prepare_cached`.

use rusqlite::{Connection, Statement};

pub(crate) const BEGIN: &str = "BEGIN IMMEDIATE";
pub(crate) const COMMIT: &str = "COMMIT";
pub(crate) const SAVEPOINT: &str = "SAVEPOINT job";
pub(crate) const RELEASE: &str = "RELEASE job";

/// The check of an aggregate's current version: a point lookup (SQLite re-plans a MAX() or
/// ORDER BY query on every run, which cost more than the rest of the append).
const HAS_VERSION: &str = "SELECT EXISTS (SELECT 1 FROM events
     WHERE stream = ?1 AND aggregate_id = ?2 AND version = ?3)";

const INSERT: &str = "INSERT INTO events (stream, aggregate_id, version, timestamp, data,
     event_id, correlation_id, causation_id, metadata, revision)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

/// The statements, on the writer's connection.
pub(crate) struct Statements<'c> {
    pub(crate) begin: Statement<'c>,
    pub(crate) commit: Statement<'c>,
    pub(crate) savepoint: Statement<'c>,
    pub(crate) release: Statement<'c>,
    pub(crate) has_version: Statement<'c>,
    pub(crate) insert: Statement<'c>,
}

impl<'c> Statements<'c> {
    pub(crate) fn prepare(conn: &'c Connection) -> rusqlite::Result<Self> {
        Ok(Statements {
            begin: conn.prepare(BEGIN)?,
            commit: conn.prepare(COMMIT)?,
            savepoint: conn.prepare(SAVEPOINT)?,
            release: conn.prepare(RELEASE)?,
            has_version: conn.prepare(HAS_VERSION)?,
            insert: conn.prepare(INSERT)?,
        })
    }
}
