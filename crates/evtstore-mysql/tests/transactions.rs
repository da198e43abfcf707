//! Appends inside the caller's own transaction: they commit or roll back with the caller's
//! writes, get positions once committed, and conflict like any append.

mod support;

use evtstore_core::{Error, NewEvent, Provider};
use sqlx::{Connection, Executor};

fn event(id: &str, version: u64) -> NewEvent {
    NewEvent::new("notes", id, version, r#"{"type":"noted"}"#)
}

async fn notes(db: &support::TestDb) -> i64 {
    let mut conn = db.connection().await;
    let count = sqlx::query_scalar("SELECT COUNT(*) FROM notes");
    count.fetch_one(&mut conn).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_in_commits_and_rolls_back_with_the_callers_writes() {
    let Some(url) = support::url() else { return };
    let (provider, db) = support::fresh(&url).await;
    let mut conn = db.connection().await;
    conn.execute("CREATE TABLE notes (n INT)").await.unwrap();

    let mut tx = conn.begin().await.unwrap();
    let batch = vec![event("a", 1), event("b", 1)];
    provider.append_in(&mut tx, batch.clone()).await.unwrap();
    tx.execute("INSERT INTO notes VALUES (1)").await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(provider.sequence().await.unwrap(), 0, "nothing to sequence");
    assert_eq!(notes(&db).await, 0);

    let mut tx = conn.begin().await.unwrap();
    let metas = provider.append_in(&mut tx, batch).await.unwrap();
    assert!(
        metas.iter().all(|m| m.position == 0),
        "no position before commit"
    );
    tx.execute("INSERT INTO notes VALUES (1)").await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(provider.sequence().await.unwrap(), 2);
    assert_eq!(notes(&db).await, 1);
    let stored = provider.events(&["notes".into()], 0, 10).await.unwrap();
    let got: Vec<(&str, u64)> = stored
        .iter()
        .map(|e| (e.meta.aggregate_id.as_str(), e.meta.position))
        .collect();
    assert_eq!(
        got,
        [("a", 1), ("b", 2)],
        "both aggregates, in insert order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_in_conflicts_and_writes_nothing_of_the_batch() {
    let Some(url) = support::url() else { return };
    let (provider, db) = support::fresh(&url).await;
    provider.append(vec![event("a", 1)]).await.unwrap();
    let mut conn = db.connection().await;
    let mut tx = conn.begin().await.unwrap();
    let batch = vec![event("b", 1), event("a", 1)];
    let error = provider.append_in(&mut tx, batch).await.unwrap_err();
    assert!(
        matches!(&error, Error::VersionConflict { aggregate_id, actual: 1, .. } if aggregate_id == "a"),
        "{error}"
    );
    let stale = vec![event("a", 3)];
    let error = provider.append_in(&mut tx, stale).await.unwrap_err();
    assert!(error.is_version_conflict(), "{error}");
    tx.commit().await.unwrap();
    provider.sequence().await.unwrap();
    let stored = provider.events(&["notes".into()], 0, 10).await.unwrap();
    assert_eq!(stored.len(), 1, "b was not written: {stored:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_backlog_is_numbered_in_several_passes() {
    let Some(url) = support::url() else { return };
    let (provider, db) = support::fresh(&url).await;
    let events: Vec<NewEvent> = (1..=100_001).map(|v| event("big", v)).collect();
    let mut conn = db.connection().await;
    let mut tx = conn.begin().await.unwrap();
    provider.append_in(&mut tx, events).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(provider.sequence().await.unwrap(), 100_001);
    let sql = "SELECT COUNT(*), MIN(position), MAX(position), COUNT(DISTINCT position)
               FROM events WHERE position = version";
    let row: (i64, i64, i64, i64) = sqlx::query_as(sql).fetch_one(&mut conn).await.unwrap();
    assert_eq!(
        row,
        (100_001, 1, 100_001, 100_001),
        "each event at its own position, in order"
    );
}
