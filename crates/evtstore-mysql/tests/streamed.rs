//! A load alone streams its rows to the fold: a large aggregate is folded as its rows arrive,
//! never held whole in memory.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use evtstore_core::{EventMeta, NewEvent, Provider, SharedStr};
use evtstore_mysql::MysqlProvider;

const EVENTS: u64 = 20_000;

/// Events of about 1 KiB: 20 MiB in all, more than the sockets between client and server
/// hold, so a server that must send them all before the fold starts is seen to have finished.
fn event(version: u64) -> NewEvent {
    let body = format!(r#"{{"type":"Added","by":1,"pad":"{}"}}"#, "x".repeat(1000));
    NewEvent::new("counters", "big", version, body)
}

async fn fill(provider: &MysqlProvider) {
    for first in (1..=EVENTS).step_by(500) {
        let batch = (first..first + 500).map(event).collect();
        provider.append(batch).await.unwrap();
    }
}

fn names() -> (SharedStr, SharedStr) {
    ("counters".into(), "big".into())
}

/// While the fold takes the first event, the server is still sending the rest: the statement
/// is still running. (Read whole first, it would have ended.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_alone_is_folded_as_its_rows_arrive() {
    let Some(url) = support::url() else { return };
    let (provider, db) = support::fresh(&url).await;
    fill(&provider).await;
    let (at_first, checked) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let mut conn = db.connection().await;
    let checker = {
        let (at_first, checked, name) = (at_first.clone(), checked.clone(), db.name.clone());
        tokio::spawn(async move {
            while !at_first.load(Ordering::Acquire) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let running = "SELECT COUNT(*) FROM information_schema.PROCESSLIST
                WHERE DB = ? AND ID <> CONNECTION_ID() AND INFO LIKE '%ORDER BY version%'
                AND COMMAND IN ('Query', 'Execute')";
            let count: i64 = sqlx::query_scalar(running)
                .bind(name)
                .fetch_one(&mut conn)
                .await
                .unwrap();
            checked.store(true, Ordering::Release);
            count
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
    let (stream, id) = names();
    provider
        .visit_aggregate(&stream, &id, 0, &mut fold)
        .await
        .unwrap();
    assert_eq!(folded, EVENTS);
    let running = checker.await.unwrap();
    assert_eq!(
        running, 1,
        "the load's statement was still sending rows at the first event"
    );
}
