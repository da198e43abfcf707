//! Insert order is not commit order: a reader trusting `id > bookmark` skips an event that
//! commits late, and the provider's handler does not; a sequencer pass never waits for an
//! open writer.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use evtstore_core::{Aggregate, Domain, EventMeta, NewEvent, Provider};
use serde::{Deserialize, Serialize};
use sqlx::{Connection, MySqlConnection};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type")]
enum Tick {
    Tick,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Clock;

impl Aggregate for Clock {
    const STREAM: &'static str = "clock";
    type Event = Tick;
    fn fold(&mut self, _: &Tick, _: &EventMeta) {}
}

evtstore_core::domain!(Clocks { Clock });

fn tick(id: &str) -> NewEvent {
    NewEvent::new("clock", id, 1, r#"{"type":"Tick"}"#)
}

/// The reader the provider must beat: the ids after its bookmark, in id order.
async fn naive_read(conn: &mut MySqlConnection, bookmark: &mut i64) -> Vec<i64> {
    let sql = "SELECT id FROM events WHERE id > ? ORDER BY id";
    let ids: Vec<i64> = sqlx::query_scalar(sql)
        .bind(*bookmark)
        .fetch_all(conn)
        .await
        .unwrap();
    *bookmark = ids.last().copied().unwrap_or(*bookmark);
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_commit_is_skipped_by_id_but_not_by_the_handler() {
    let Some(url) = support::url() else { return };
    let (provider, db) = support::fresh(&url).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorded = seen.clone();
    let domain = Domain::<Clocks>::with_provider(provider.clone());
    let handler = domain
        .handler("model")
        .handle::<Clock, _>(move |_, _, meta| {
            let id = meta.aggregate_id.to_string();
            recorded.lock().unwrap().push((id, meta.position));
            Ok(())
        })
        .build()
        .unwrap();

    // A inserts first (id 1) and stays open; B inserts (id 2) and commits.
    let mut a = db.connection().await;
    let mut tx = a.begin().await.unwrap();
    provider.append_in(&mut tx, vec![tick("a")]).await.unwrap();
    provider.append(vec![tick("b")]).await.unwrap();
    let (mut naive, mut bookmark) = (db.connection().await, 0);
    assert_eq!(naive_read(&mut naive, &mut bookmark).await, vec![2]);
    assert_eq!(handler.run_once().await.unwrap(), 1);

    tx.commit().await.unwrap();
    provider.sequence().await.unwrap();
    assert!(
        naive_read(&mut naive, &mut bookmark).await.is_empty(),
        "the naive reader skips id 1, which committed after id 2: the race is real"
    );
    assert_eq!(handler.run_once().await.unwrap(), 1);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, [("b".to_owned(), 1), ("a".to_owned(), 2)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_does_not_wait_for_an_open_writer() {
    let Some(url) = support::url() else { return };
    let (provider, db) = support::fresh(&url).await;
    let mut open = db.connection().await;
    let mut tx = open.begin().await.unwrap();
    provider
        .append_in(&mut tx, vec![tick("open")])
        .await
        .unwrap();

    let mut other = db.connection().await;
    let mut committed = other.begin().await.unwrap();
    provider
        .append_in(&mut committed, vec![tick("done")])
        .await
        .unwrap();
    committed.commit().await.unwrap();
    let started = Instant::now();
    let last = provider.sequence().await.unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(100), "the pass took {took:?}");
    assert_eq!(last, 1, "the committed event got position 1");

    let all = provider.events(&["clock".into()], 0, 10).await.unwrap();
    let ids: Vec<&str> = all.iter().map(|e| e.meta.aggregate_id.as_str()).collect();
    assert_eq!(ids, ["done"], "the open writer's event is not visible yet");
    tx.commit().await.unwrap();
    assert_eq!(provider.sequence().await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_return_the_positions_they_were_given() {
    let Some(url) = support::url() else { return };
    let (provider, _db) = support::fresh(&url).await;
    let appends = (0..32).map(|n| {
        let provider = provider.clone();
        let batch = match n % 4 {
            0 => vec![tick(&format!("t{n}")), tick(&format!("u{n}"))],
            _ => vec![tick(&format!("t{n}"))],
        };
        tokio::spawn(async move { provider.append(batch).await.unwrap() })
    });
    let mut returned = Vec::new();
    for append in appends {
        let metas = append.await.unwrap();
        returned.extend(
            metas
                .into_iter()
                .map(|m| (m.position, m.aggregate_id.to_string())),
        );
    }
    returned.sort();
    let stored = provider.events(&["clock".into()], 0, 100).await.unwrap();
    let stored: Vec<(u64, String)> = stored
        .into_iter()
        .map(|e| (e.meta.position, e.meta.aggregate_id.to_string()))
        .collect();
    assert_eq!(
        returned, stored,
        "each append returned the positions stored"
    );
    let positions: Vec<u64> = stored.iter().map(|s| s.0).collect();
    assert_eq!(positions, (1..=40).collect::<Vec<u64>>());
}
