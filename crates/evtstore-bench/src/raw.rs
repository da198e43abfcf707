//! Physical ceilings: the raw database doing the least work a workload needs (WORKLOAD.md).

use std::path::Path;
use std::time::Instant;

use crate::report::Reporter;

/// W1's ceiling on SQLite: one transaction per event (read the aggregate's last version,
/// insert one row, commit), with the same file system and synchronous setting.
pub(crate) fn sqlite_single_inserts(path: &Path, synchronous: &str, n: usize, out: &Reporter) {
    let conn = rusqlite::Connection::open(path).expect("open raw database");
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", synchronous)
        .unwrap();
    conn.execute_batch(
        "CREATE TABLE events (position INTEGER PRIMARY KEY AUTOINCREMENT, stream TEXT NOT NULL,
         aggregate_id TEXT NOT NULL, version INTEGER NOT NULL, timestamp INTEGER NOT NULL,
         data TEXT NOT NULL, UNIQUE (stream, aggregate_id, version))",
    )
    .unwrap();
    let start = Instant::now();
    for i in 0..n {
        let id = format!("s-{}", i % 1000);
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        let version: i64 = conn
            .prepare_cached("SELECT COALESCE(MAX(version), 0) FROM events WHERE stream = 'counter' AND aggregate_id = ?1")
            .unwrap()
            .query_row([&id], |row| row.get(0))
            .unwrap();
        conn.prepare_cached("INSERT INTO events (stream, aggregate_id, version, timestamp, data) VALUES ('counter', ?1, ?2, 0, '{\"type\":\"one\",\"one\":1}')")
            .unwrap()
            .execute((&id, version + 1))
            .unwrap();
        conn.execute_batch("COMMIT").unwrap();
    }
    out.rate(
        "W1_raw_single_insert_tx",
        n,
        start.elapsed().as_secs_f64() * 1000.0,
    );
}
