//! One-statement appends (no committed event waiting for a position) number after the last
//! committed event and leave the counter behind; these are the paths where that meets the
//! counter: a retirement that deletes the last events, a numbering (a procedure's, a pass's)
//! that holds the counter, and events that wait for a pass.

mod support;

use std::time::Duration;

use evtstore_core::provider::Retire;
use evtstore_core::{NewEvent, Provider};
use sqlx::{Connection, MySqlConnection};

fn event(id: &str, version: u64) -> NewEvent {
    NewEvent::new("notes", id, version, r#"{"type":"noted"}"#)
}

async fn counter(conn: &mut MySqlConnection) -> i64 {
    let last = sqlx::query_scalar("SELECT last FROM events_seq WHERE id = 1");
    last.fetch_one(conn).await.unwrap()
}

/// Positions of the events after `after`, in order.
async fn positions_after(provider: &dyn Provider, after: u64) -> Vec<(String, u64)> {
    let events = provider
        .events(&["notes".into()], after, 100)
        .await
        .unwrap();
    let seen = events
        .iter()
        .map(|e| (e.meta.aggregate_id.to_string(), e.meta.position));
    seen.collect()
}

/// Inserts an event of aggregate `id` at `position`, in the caller's transaction.
async fn insert_at(conn: &mut MySqlConnection, position: u64, id: &str) {
    sqlx::query(
        "INSERT INTO events (position, stream, aggregate_id, version, timestamp_ms, data, event_id)
         VALUES (?, 'notes', ?, 1, 0, '{\"type\":\"noted\"}', UNHEX(REPLACE(UUID(), '-', '')))",
    )
    .bind(position as i64)
    .bind(id)
    .execute(conn)
    .await
    .unwrap();
}

/// A deletion of the last events moves the counter past them, so the next positions are new:
/// a handler that read up to them sees the marker and what follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positions_deleted_by_a_retirement_are_never_given_again() {
    let Some(url) = support::url() else { return };
    let (provider, db) = support::fresh(&url).await;
    for version in 1..=3 {
        provider.append(vec![event("a", version)]).await.unwrap();
    }
    let mut conn = db.connection().await;
    assert_eq!(
        counter(&mut conn).await,
        0,
        "one-statement appends leave the counter"
    );
    let mut marker = NewEvent::new("notes", "a", 4, r#"{"type":"$deleted"}"#);
    marker.revision = 0;
    let retired = provider.retire(marker, Retire::Delete).await.unwrap();
    assert_eq!(retired.position, 4, "the marker after the deleted events");
    let next = provider.append(vec![event("b", 1)]).await.unwrap();
    assert_eq!(next[0].position, 5);
    let seen = positions_after(&*provider, 3).await;
    assert_eq!(seen, [("a".to_owned(), 4), ("b".to_owned(), 5)]);
}

/// While a numbering holds the counter (here the test, as a procedure or a pass would, about
/// to number after the last event), a one-statement append takes no position: it falls back
/// to the procedure, which waits for the counter and appends after the numbered event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_position_is_taken_while_a_numbering_holds_the_counter() {
    let Some(url) = support::url() else { return };
    let (provider, db) = support::fresh(&url).await;
    provider.append(vec![event("a", 1)]).await.unwrap();
    let mut conn = db.connection().await;
    let mut numbering = conn.begin().await.unwrap();
    let locked = "SELECT last FROM events_seq WHERE id = 1 FOR UPDATE";
    sqlx::query(locked).execute(&mut *numbering).await.unwrap();
    let append = tokio::spawn({
        let provider = provider.clone();
        async move { provider.append(vec![event("b", 1)]).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !append.is_finished(),
        "the append took a position: {append:?}"
    );
    insert_at(&mut numbering, 2, "numbered").await;
    sqlx::query("UPDATE events_seq SET last = 2")
        .execute(&mut *numbering)
        .await
        .unwrap();
    numbering.commit().await.unwrap();
    let appended = append.await.unwrap().unwrap();
    assert_eq!(appended[0].position, 3);
    let seen = positions_after(&*provider, 0).await;
    let expected = [("a", 1), ("numbered", 2), ("b", 3)].map(|(id, p)| (id.to_owned(), p));
    assert_eq!(seen, expected);
}

/// An append through the procedure (two events) while a one-statement append is in flight
/// (here the test's open transaction, holding what it holds: the counter's row in share mode
/// and the next position) waits for the counter, then numbers after that append: no position
/// taken twice, no version conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_procedure_numbers_after_a_one_statement_append_in_flight() {
    let Some(url) = support::url() else { return };
    let (provider, db) = support::fresh(&url).await;
    provider.append(vec![event("a", 1)]).await.unwrap();
    let mut conn = db.connection().await;
    let mut in_flight = conn.begin().await.unwrap();
    let shared = "SELECT last FROM events_seq WHERE id = 1 LOCK IN SHARE MODE";
    sqlx::query(shared).execute(&mut *in_flight).await.unwrap();
    insert_at(&mut in_flight, 2, "flying").await;
    let append = tokio::spawn({
        let provider = provider.clone();
        async move { provider.append(vec![event("b", 1), event("b", 2)]).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !append.is_finished(),
        "the procedure did not wait: {append:?}"
    );
    in_flight.commit().await.unwrap();
    let positions: Vec<u64> = append
        .await
        .unwrap()
        .unwrap()
        .iter()
        .map(|m| m.position)
        .collect();
    assert_eq!(positions, [3, 4]);
}

/// The newest event deleted by hand (as a retirement deletes events) keeps its position
/// taken: the next append goes past it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_position_of_a_deleted_newest_event_is_not_given_again() {
    let Some(url) = support::url() else { return };
    let (provider, db) = support::fresh(&url).await;
    provider.append(vec![event("a", 1)]).await.unwrap();
    provider.append(vec![event("a", 2)]).await.unwrap();
    let mut conn = db.connection().await;
    let deleted = sqlx::query("DELETE FROM events WHERE position = 2").execute(&mut conn);
    assert_eq!(deleted.await.unwrap().rows_affected(), 1);
    let next = provider.append(vec![event("b", 1)]).await.unwrap();
    assert_eq!(next[0].position, 3);
}

/// Several events, of several aggregates, are one statement too (the counter stays where it
/// was): all at consecutive positions in their order, or, when one aggregate is not at its
/// expected version, none (the procedure then says which).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_events_are_appended_in_one_statement_or_not_at_all() {
    let Some(url) = support::url() else { return };
    let (provider, db) = support::fresh(&url).await;
    let appended = provider
        .append(vec![event("a", 1), event("a", 2), event("b", 1)])
        .await
        .unwrap();
    let positions: Vec<u64> = appended.iter().map(|m| m.position).collect();
    assert_eq!(positions, [1, 2, 3]);
    let mut conn = db.connection().await;
    assert_eq!(
        counter(&mut conn).await,
        0,
        "one statement leaves the counter"
    );
    let stale = provider.append(vec![event("c", 1), event("a", 2)]).await;
    assert!(
        matches!(stale, Err(evtstore_core::Error::VersionConflict { .. })),
        "{stale:?}"
    );
    let seen = positions_after(&*provider, 0).await;
    let ids: Vec<&str> = seen.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["a", "a", "b"], "the conflicting append wrote nothing");
}

/// Events of `append_in` waiting for a pass, of any aggregate, are numbered before an
/// append that follows them: an event a caller saw committed (say, the cause of its command)
/// never comes after the events it then appends. One event and several take their own
/// statements.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_waiting_for_a_pass_are_numbered_before_a_later_append() {
    let Some(url) = support::url() else { return };
    let db = support::TestDb::create(&url).await;
    let options = evtstore_mysql::MysqlOptions {
        sequence_interval: Duration::from_secs(3600),
        ..evtstore_mysql::MysqlOptions::default()
    };
    let provider = db.provider(options).await;
    let mut conn = db.connection().await;
    let mut expected = Vec::new();
    for (cause, effects) in [
        ("w", vec![event("o", 1)]),
        ("v", vec![event("p", 1), event("q", 1)]),
    ] {
        let mut tx = conn.begin().await.unwrap();
        let waiting = vec![event(cause, 1), event(cause, 2)];
        provider.append_in(&mut tx, waiting).await.unwrap();
        tx.commit().await.unwrap();
        let names: Vec<String> = effects.iter().map(|e| e.aggregate_id.to_string()).collect();
        provider.append(effects).await.unwrap();
        expected.extend([cause.to_owned(), cause.to_owned()]);
        expected.extend(names);
    }
    let seen = positions_after(&*provider, 0).await;
    let ids: Vec<String> = seen.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(ids, expected, "the waiting events first");
    let positions: Vec<u64> = seen.iter().map(|(_, p)| *p).collect();
    assert_eq!(positions, (1..=7).collect::<Vec<u64>>());
}
