//! No event is ever skipped: 8 writers whose transactions commit out of position order (random
//! delays between insert and commit) or roll back, while 2 handlers read. Each handler must see
//! exactly the committed events, once each, in position order. A naive `position > bookmark`
//! reader, run beside them on the same table, misses some: the test can tell.

mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use evtstore_core::{Aggregate, Domain, EventMeta, NewEvent, Provider};
use evtstore_postgres::PgProvider;
use serde::{Deserialize, Serialize};

const WRITERS: usize = 8;
const EVENTS_PER_WRITER: usize = 400;

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

type Seen = Arc<Mutex<Vec<u64>>>;

/// A small xorshift, so the test needs no random crate.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Appends one event per transaction, sleeping 0–4 ms before committing; one in ten rolls back.
async fn writer(provider: Arc<PgProvider>, w: usize) -> BTreeSet<u64> {
    let mut committed = BTreeSet::new();
    let mut random = 0x9E37_79B9_7F4A_7C15 ^ (w as u64 + 1);
    let mut version = 0;
    for _ in 0..EVENTS_PER_WRITER {
        let mut client = provider.pool().get().await.unwrap();
        let tx = client.transaction().await.unwrap();
        let event = NewEvent::new(
            "clock",
            format!("writer-{w}"),
            version + 1,
            r#"{"type":"Tick"}"#,
        );
        let metas = provider.append_in(&tx, vec![event]).await.unwrap();
        tokio::time::sleep(Duration::from_micros(next_random(&mut random) % 4000)).await;
        if next_random(&mut random).is_multiple_of(10) {
            tx.rollback().await.unwrap();
        } else {
            tx.commit().await.unwrap();
            committed.insert(metas[0].position);
            version += 1;
        }
    }
    committed
}

/// The reader the provider must beat: trusts `position > bookmark`.
async fn naive_reader(
    provider: Arc<PgProvider>,
    table: String,
    seen: Seen,
    done: Arc<tokio::sync::Notify>,
) {
    let client = provider.pool().get().await.unwrap();
    let sql =
        format!("SELECT position FROM {table} WHERE position > $1 ORDER BY position LIMIT 100");
    let mut bookmark = 0i64;
    let finished = done.notified();
    tokio::pin!(finished);
    loop {
        let rows = client.query(&sql, &[&bookmark]).await.unwrap();
        for row in &rows {
            bookmark = row.get(0);
            seen.lock().unwrap().push(bookmark as u64);
        }
        tokio::select! {
            _ = &mut finished => return,
            _ = tokio::time::sleep(Duration::from_millis(1)) => {}
        }
    }
}

fn recording_handler(domain: &Domain<Clocks>, name: &str, seen: Seen) -> evtstore_core::Handler {
    domain
        .handler(name)
        .in_memory_bookmark()
        .page_size(10)
        .poll_interval(Duration::from_millis(5))
        .handle::<Clock, _>(move |_, _, meta| {
            seen.lock().unwrap().push(meta.position);
            Ok(())
        })
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn handlers_see_every_committed_event_once_in_order() {
    let Some(url) = support::url() else { return };
    let schema = support::unique_schema();
    let options = evtstore_postgres::PgOptions {
        schema: schema.clone(),
        pool_size: 16,
        ..Default::default()
    };
    let provider = Arc::new(PgProvider::connect_with(&url, options).await.unwrap());
    let domain = Domain::<Clocks>::with_provider(provider.clone());
    let seen: Vec<Seen> = (0..2).map(|_| Seen::default()).collect();
    let handlers: Vec<_> = (0..2)
        .map(|h| recording_handler(&domain, &format!("reader-{h}"), seen[h].clone()))
        .collect();
    handlers.iter().for_each(|h| h.start());
    let naive_seen = Seen::default();
    let naive_done = Arc::new(tokio::sync::Notify::new());
    let table = format!("\"{schema}\".\"events\"");
    let naive = tokio::spawn(naive_reader(
        provider.clone(),
        table,
        naive_seen.clone(),
        naive_done.clone(),
    ));

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(writer(provider.clone(), w)))
        .collect();
    let mut committed = BTreeSet::new();
    for w in writers {
        committed.extend(w.await.unwrap());
    }
    let expected: Vec<u64> = committed.into_iter().collect();
    assert!(
        expected.len() > WRITERS * EVENTS_PER_WRITER / 2,
        "most transactions commit"
    );

    // Let the handlers catch up with everything committed.
    for (h, seen) in seen.iter().enumerate() {
        let caught_up = async {
            while seen.lock().unwrap().len() < expected.len() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        let waited = tokio::time::timeout(Duration::from_secs(30), caught_up).await;
        assert!(
            waited.is_ok(),
            "handler {h} saw {} of {} events",
            seen.lock().unwrap().len(),
            expected.len()
        );
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    naive_done.notify_one();
    naive.await.unwrap();
    for handler in &handlers {
        handler.stop().await;
    }
    for (h, seen) in seen.iter().enumerate() {
        assert_eq!(
            *seen.lock().unwrap(),
            expected,
            "handler {h}: exactly the committed events, once, in order"
        );
    }
    let last = provider
        .events(&["clock".to_owned()], 0, usize::MAX >> 1)
        .await
        .unwrap();
    assert_eq!(
        last.len(),
        expected.len(),
        "rolled-back events are not stored"
    );

    let naive_seen = naive_seen.lock().unwrap();
    let missed = expected.len() - naive_seen.len();
    eprintln!(
        "naive reader missed {missed} of {} committed events",
        expected.len()
    );
    assert!(
        missed > 0,
        "the naive reader should skip late commits; the test would not catch a skip"
    );
}
