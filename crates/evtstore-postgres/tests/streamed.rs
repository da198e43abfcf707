//! A load alone streams its rows to the fold: a large aggregate is folded as its rows arrive,
//! never held whole in memory.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use evtstore_core::{EventMeta, NewEvent, Provider, SharedStr};
use evtstore_postgres::{PgOptions, PgProvider};

const EVENTS: u64 = 20_000;

/// Events of about 1 KiB: 20 MiB in all, more than the sockets between client and server
/// hold, so a server that must send them all before the fold starts is seen to have finished.
fn event(version: u64) -> NewEvent {
    let body = format!(r#"{{"type":"Added","by":1,"pad":"{}"}}"#, "x".repeat(1000));
    NewEvent::new("counters", "big", version, body)
}

async fn store_with_a_big_aggregate(url: &str, schema: &str) -> Arc<PgProvider> {
    let options = PgOptions {
        schema: schema.to_owned(),
        pool_size: 8,
        ..PgOptions::default()
    };
    let provider = Arc::new(PgProvider::connect_with(url, options).await.unwrap());
    for first in (1..=EVENTS).step_by(1000) {
        let batch = (first..first + 1000).map(event).collect();
        provider.append(batch).await.unwrap();
    }
    provider
}

/// While the fold takes the first event, the server is still sending the rest: the statement
/// is still active. (Read whole first, it would have ended.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_alone_is_folded_as_its_rows_arrive() {
    let Some(url) = support::url() else { return };
    let schema = support::unique_schema();
    let provider = store_with_a_big_aggregate(&url, &schema).await;
    let (at_first, checked) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let checker = {
        let (provider, at_first, checked) = (provider.clone(), at_first.clone(), checked.clone());
        let schema = schema.clone();
        tokio::spawn(async move {
            while !at_first.load(Ordering::Acquire) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let client = provider.pool().get().await.unwrap();
            let active = "SELECT count(*) FROM pg_stat_activity WHERE state = 'active'
                AND query LIKE '%' || $1 || '%' AND query LIKE '%ORDER BY version%'";
            let row = client.query_one(active, &[&schema]).await.unwrap();
            checked.store(true, Ordering::Release);
            row.get::<_, i64>(0)
        })
    };
    let mut folded = 0;
    let mut fold = |_: &EventMeta, _: &str| {
        if folded == 0 {
            at_first.store(true, Ordering::Release);
            let until = Instant::now() + Duration::from_secs(10);
            while !checked.load(Ordering::Acquire) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(1)); // holds the fold at its first event
            }
        }
        folded += 1;
        Ok(())
    };
    let (stream, id): (SharedStr, SharedStr) = ("counters".into(), "big".into());
    provider
        .visit_aggregate(&stream, &id, 0, &mut fold)
        .await
        .unwrap();
    assert_eq!(folded, EVENTS);
    let active = checker.await.unwrap();
    assert_eq!(
        active, 1,
        "the load's statement was still sending rows at the first event"
    );
}
