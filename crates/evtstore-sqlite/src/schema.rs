//! The schema, created and upgraded on open. Its version is SQLite's `user_version`.

use rusqlite::{Connection, TransactionBehavior};

/// Each migration takes the schema from version `index` to `index + 1`.
///
/// Positions are rowids without `AUTOINCREMENT`: SQLite gives the largest plus one, and the
/// newest event is never deleted (a retirement deletes below the marker it appends), so no
/// position is given twice. `AUTOINCREMENT` would write its counter's page on every commit;
/// stores made before it was dropped keep it, which changes nothing else.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE events (
        position INTEGER PRIMARY KEY,
        stream TEXT NOT NULL,
        aggregate_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        timestamp INTEGER NOT NULL,
        data TEXT NOT NULL,
        UNIQUE (stream, aggregate_id, version)
    );
    CREATE INDEX events_stream_position ON events (stream, position);
    CREATE TABLE bookmarks (
        name TEXT PRIMARY KEY,
        position INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE snapshots (
        stream TEXT NOT NULL,
        aggregate_id TEXT NOT NULL,
        tag TEXT NOT NULL,
        version INTEGER NOT NULL,
        position INTEGER NOT NULL,
        state TEXT NOT NULL,
        PRIMARY KEY (stream, aggregate_id)
    ) WITHOUT ROWID;",
    // Leases of handlers' names; `expires_at` in milliseconds since the Unix epoch.
    "CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        token INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    ) WITHOUT ROWID;",
    // The envelope. Events stored before it get a UUID v7 of their timestamp and random bits.
    "ALTER TABLE events ADD COLUMN event_id BLOB;
    ALTER TABLE events ADD COLUMN correlation_id BLOB;
    ALTER TABLE events ADD COLUMN causation_id BLOB;
    ALTER TABLE events ADD COLUMN metadata TEXT;
    ALTER TABLE events ADD COLUMN revision INTEGER NOT NULL DEFAULT 1;
    UPDATE events SET event_id = unhex(printf('%012X', timestamp) || '7'
        || substr(hex(randomblob(2)), 2) || '8' || substr(hex(randomblob(8)), 2))
    WHERE event_id IS NULL;
    CREATE TABLE commands (
        command_id BLOB PRIMARY KEY,
        stream TEXT NOT NULL,
        aggregate_id TEXT NOT NULL,
        version INTEGER NOT NULL
    ) WITHOUT ROWID;",
    // Archived events, and the keys of encrypted aggregates.
    "CREATE TABLE archive (
        position INTEGER NOT NULL,
        stream TEXT NOT NULL,
        aggregate_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        timestamp INTEGER NOT NULL,
        data TEXT NOT NULL,
        event_id BLOB,
        correlation_id BLOB,
        causation_id BLOB,
        metadata TEXT,
        revision INTEGER NOT NULL,
        PRIMARY KEY (stream, aggregate_id, version)
    ) WITHOUT ROWID;
    CREATE TABLE keys (
        stream TEXT NOT NULL,
        aggregate_id TEXT NOT NULL,
        key_id BLOB NOT NULL,
        secret BLOB NOT NULL,
        PRIMARY KEY (stream, aggregate_id)
    ) WITHOUT ROWID;",
];

/// Brings the schema up to date. Safe when several processes open the file at once: the
/// version is read and raised inside one write transaction.
pub(crate) fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current: usize = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    for (version, migration) in MIGRATIONS.iter().enumerate().skip(current) {
        tx.execute_batch(migration)?;
        tx.pragma_update(None, "user_version", version + 1)?;
    }
    tx.commit()
}
