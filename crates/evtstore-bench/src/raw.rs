//! Physical ceilings: the raw database doing the least work a workload needs (WORKLOAD.md).

use std::path::Path;
use std::time::Instant;

use crate::report::Reporter;

/// The original's table (knex's `increments`, so `AUTOINCREMENT`): positions, an aggregate's
/// versions unique.
const BARE_TABLE: &str = "CREATE TABLE events (position INTEGER PRIMARY KEY AUTOINCREMENT,
    stream TEXT NOT NULL, aggregate_id TEXT NOT NULL, version INTEGER NOT NULL,
    timestamp INTEGER NOT NULL, data TEXT NOT NULL, UNIQUE (stream, aggregate_id, version))";

/// The store's own table (`evtstore-sqlite`'s schema): no `AUTOINCREMENT`, the index handlers
/// read a stream by, and each event's envelope.
const STORE_TABLE: &str = "CREATE TABLE events (position INTEGER PRIMARY KEY,
    stream TEXT NOT NULL, aggregate_id TEXT NOT NULL, version INTEGER NOT NULL,
    timestamp INTEGER NOT NULL, data TEXT NOT NULL, event_id BLOB, correlation_id BLOB,
    causation_id BLOB, metadata TEXT, revision INTEGER NOT NULL DEFAULT 1,
    UNIQUE (stream, aggregate_id, version));
    CREATE INDEX events_stream_position ON events (stream, position)";

/// W1's ceiling on SQLite, on a fresh file: one transaction per event (read the aggregate's
/// last version, insert one row, commit), with the same file system and synchronous setting.
/// With `store_table`, on a table shaped as the store's (`W1_raw_store_table_tx`, each row
/// with an event id), to tell what the schema costs from what the library costs.
pub(crate) fn sqlite_single_inserts(
    path: &Path,
    store_table: bool,
    synchronous: &str,
    n: usize,
    out: &Reporter,
) {
    let conn = rusqlite::Connection::open(path).expect("open raw database");
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", synchronous)
        .unwrap();
    let (workload, ms) = match store_table {
        false => {
            conn.execute_batch(BARE_TABLE).unwrap();
            let insert = "INSERT INTO events (stream, aggregate_id, version, timestamp, data)
                VALUES ('counter', ?1, ?2, 0, '{\"type\":\"one\",\"one\":1}')";
            let ms = single_inserts(&conn, n, insert, || None);
            ("W1_raw_single_insert_tx", ms)
        }
        true => {
            conn.execute_batch(STORE_TABLE).unwrap();
            let insert = "INSERT INTO events (stream, aggregate_id, version, timestamp, data,
                event_id) VALUES ('counter', ?1, ?2, 0, '{\"type\":\"one\",\"one\":1}', ?3)";
            let event_id = || Some(uuid::Uuid::now_v7());
            (
                "W1_raw_store_table_tx",
                single_inserts(&conn, n, insert, event_id),
            )
        }
    };
    out.rate(workload, n, ms);
}

/// Runs `n` transactions of W1 with `insert`, its `?3` bound to `event_id()` when that gives
/// one; gives the milliseconds they took.
fn single_inserts(
    conn: &rusqlite::Connection,
    n: usize,
    insert: &str,
    event_id: impl Fn() -> Option<uuid::Uuid>,
) -> f64 {
    let last = "SELECT COALESCE(MAX(version), 0) FROM events
        WHERE stream = 'counter' AND aggregate_id = ?1";
    let start = Instant::now();
    for i in 0..n {
        let id = format!("s-{}", i % 1000);
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        let mut read = conn.prepare_cached(last).unwrap();
        let version: i64 = read.query_row([&id], |row| row.get(0)).unwrap();
        let mut insert = conn.prepare_cached(insert).unwrap();
        match event_id() {
            None => insert.execute((&id, version + 1)),
            Some(event_id) => insert.execute((&id, version + 1, event_id.as_bytes().as_slice())),
        }
        .unwrap();
        conn.execute_batch("COMMIT").unwrap();
    }
    start.elapsed().as_secs_f64() * 1000.0
}
