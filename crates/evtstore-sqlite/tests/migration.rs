//! A store written before the envelope existed migrates in place when opened.

use evtstore_core::{NewEvent, Provider};
use evtstore_sqlite::SqliteProvider;

/// The schema at version 2, as the releases before the envelope created it.
const SCHEMA_2: &str = "CREATE TABLE events (
        position INTEGER PRIMARY KEY AUTOINCREMENT,
        stream TEXT NOT NULL,
        aggregate_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        timestamp INTEGER NOT NULL,
        data TEXT NOT NULL,
        UNIQUE (stream, aggregate_id, version)
    );
    CREATE INDEX events_stream_position ON events (stream, position);
    CREATE TABLE bookmarks (name TEXT PRIMARY KEY, position INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE snapshots (
        stream TEXT NOT NULL, aggregate_id TEXT NOT NULL, tag TEXT NOT NULL,
        version INTEGER NOT NULL, position INTEGER NOT NULL, state TEXT NOT NULL,
        PRIMARY KEY (stream, aggregate_id)
    ) WITHOUT ROWID;
    CREATE TABLE leases (
        name TEXT PRIMARY KEY, owner TEXT NOT NULL, token INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    PRAGMA user_version = 2;";

#[tokio::test]
async fn old_rows_get_event_ids_of_their_time_and_keep_everything_else() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let old = rusqlite::Connection::open(&path).unwrap();
    old.execute_batch(SCHEMA_2).unwrap();
    let timestamps = [1_600_000_000_000_i64, 1_600_000_000_001, 1_700_000_000_000];
    for (n, at) in timestamps.iter().enumerate() {
        let insert = "INSERT INTO events (stream, aggregate_id, version, timestamp, data)
            VALUES ('users', 'u1', ?1, ?2, '{\"type\":\"created\"}')";
        old.execute(insert, (n as i64 + 1, at)).unwrap();
    }
    drop(old);

    let provider = SqliteProvider::open(&path).unwrap();
    let events = provider.aggregate_events("users", "u1", 0).await.unwrap();
    assert_eq!(events.len(), 3);
    evtstore_core::conformance::assert_migrated_envelopes(&events);
    let kept: Vec<_> = events
        .iter()
        .map(|e| (e.meta.timestamp, e.data.as_str()))
        .collect();
    let created = r#"{"type":"created"}"#;
    assert_eq!(
        kept,
        timestamps.map(|at| (at, created)),
        "the old rows, as they were"
    );

    let appended = provider
        .append(vec![NewEvent::new("users", "u1", 4, "{}")])
        .await;
    assert_eq!(appended.unwrap()[0].version, 4, "appends carry on");
    drop(provider);
    let reopened = SqliteProvider::open(&path).unwrap();
    let again = reopened.aggregate_events("users", "u1", 0).await.unwrap();
    assert_eq!(again[..3], events[..], "a second open changes nothing");
}
