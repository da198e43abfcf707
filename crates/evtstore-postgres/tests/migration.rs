//! A store written before the envelope existed migrates in place when a provider connects.

mod support;

use evtstore_core::{NewEvent, Provider};
use evtstore_postgres::{PgOptions, PgProvider};

/// The tables at schema version 3, as the releases before the envelope created them.
fn schema_3(schema: &str) -> String {
    format!(
        "CREATE SCHEMA \"{schema}\";
        CREATE TABLE \"{schema}\".events (
            position BIGINT PRIMARY KEY, stream TEXT NOT NULL, aggregate_id TEXT NOT NULL,
            version BIGINT NOT NULL,
            timestamp_ms BIGINT NOT NULL DEFAULT (extract(epoch FROM now()) * 1000)::bigint,
            data JSONB NOT NULL, UNIQUE (stream, aggregate_id, version));
        CREATE INDEX ON \"{schema}\".events (stream, position);
        CREATE TABLE \"{schema}\".bookmarks (name TEXT PRIMARY KEY, position BIGINT NOT NULL);
        CREATE TABLE \"{schema}\".snapshots (stream TEXT NOT NULL, aggregate_id TEXT NOT NULL,
            tag TEXT NOT NULL, version BIGINT NOT NULL, position BIGINT NOT NULL,
            state TEXT NOT NULL, PRIMARY KEY (stream, aggregate_id));
        CREATE TABLE \"{schema}\".leases (name TEXT PRIMARY KEY, owner TEXT NOT NULL,
            token BIGINT NOT NULL, expires_at BIGINT NOT NULL);
        CREATE TABLE \"{schema}\".evtstore_migrations (events_table TEXT PRIMARY KEY,
            version INT NOT NULL, xid_offset BIGINT NOT NULL DEFAULT 0);
        INSERT INTO \"{schema}\".evtstore_migrations VALUES ('\"{schema}\".\"events\"', 3, 0);"
    )
}

#[tokio::test]
async fn old_rows_get_event_ids_of_their_time_and_keep_everything_else() {
    let Some(url) = support::url() else { return };
    let schema = support::unique_schema();
    let (old, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    old.batch_execute(&schema_3(&schema)).await.unwrap();
    let timestamps = [1_600_000_000_000_i64, 1_600_000_000_001, 1_700_000_000_000];
    for (n, at) in timestamps.iter().enumerate() {
        let insert = format!(
            "INSERT INTO \"{schema}\".events (position, stream, aggregate_id, version, timestamp_ms, data)
             VALUES ($1, 'users', 'u1', $2, $3, '{{\"type\":\"created\"}}')"
        );
        let version = n as i64 + 1;
        old.execute(&insert, &[&(version << 20), &version, at])
            .await
            .unwrap();
    }

    let options = PgOptions {
        schema: schema.clone(),
        ..PgOptions::default()
    };
    let provider = PgProvider::connect_with(&url, options.clone())
        .await
        .unwrap();
    let events = provider.aggregate_events("users", "u1", 0).await.unwrap();
    assert_eq!(events.len(), 3);
    evtstore_core::conformance::assert_migrated_envelopes(&events);
    let kept: Vec<_> = events
        .iter()
        .map(|e| (e.meta.timestamp, e.data.as_str()))
        .collect();
    let created = r#"{"type": "created"}"#;
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
    let again = PgProvider::connect_with(&url, options).await.unwrap();
    let read = again.aggregate_events("users", "u1", 0).await.unwrap();
    assert_eq!(read[..3], events[..], "a second connect changes nothing");
}
