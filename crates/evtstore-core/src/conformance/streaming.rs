//! For providers' tests that loads stream: a large aggregate, a fold held at its first
//! event while the test looks at the server (the statement still sending rows shows that the
//! provider did not read them all first), and a fold stopped there.
//!
//! ```no_run
//! # async fn run(provider: std::sync::Arc<dyn evtstore_core::Provider>) {
//! use evtstore_core::conformance::streaming::{check_at_first_event, fill_big};
//! fill_big(&*provider).await;
//! let seen = check_at_first_event(&*provider, async { "ask the server here" }).await;
//! # }
//! ```

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::{Error, EventMeta, NewEvent, Provider, SharedStr};

/// The events of aggregate `big` of stream `counters`: of about 1 KiB each, 20 MiB in all,
/// more than the sockets between a client and its server hold.
pub const EVENTS: u64 = 20_000;

/// Appends the [`EVENTS`] of `counters/big`, 500 to an append.
pub async fn fill_big(provider: &dyn Provider) {
    let body = format!(r#"{{"type":"Added","by":1,"pad":"{}"}}"#, "x".repeat(1000));
    for first in (1..=EVENTS).step_by(500) {
        let batch = (first..first + 500)
            .map(|v| NewEvent::new("counters", "big", v, body.clone()))
            .collect();
        provider.append(batch).await.expect("appending");
    }
}

/// Folds `counters/big` (filled by [`fill_big`]), holding the fold's thread at the first
/// event until `check`, spawned meanwhile, has answered (at most 10 s); returns its answer.
/// Asserts that every event was folded once, in version order.
/// Needs a runtime of two threads or more.
pub async fn check_at_first_event<T: Send + 'static>(
    provider: &dyn Provider,
    check: impl Future<Output = T> + Send + 'static,
) -> T {
    let (at_first, checked) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let checker = {
        let (at_first, checked) = (at_first.clone(), checked.clone());
        tokio::spawn(async move {
            while !at_first.load(Ordering::Acquire) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let answer = check.await;
            checked.store(true, Ordering::Release);
            answer
        })
    };
    let (mut folded, mut in_order) = (0, true);
    let mut fold = |meta: &EventMeta, _: &str| {
        in_order &= meta.version == folded + 1;
        if folded == 0 {
            at_first.store(true, Ordering::Release);
            let until = Instant::now() + Duration::from_secs(10);
            while !checked.load(Ordering::Acquire) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        folded += 1;
        Ok(())
    };
    let (stream, id): (SharedStr, SharedStr) = ("counters".into(), "big".into());
    provider
        .visit_aggregate(&stream, &id, 0, &mut fold)
        .await
        .expect("folding counters/big");
    assert!(in_order, "each event folded once, in version order");
    assert_eq!(folded, EVENTS, "every event folded");
    checker.await.expect("the check panicked")
}

/// Checks that a fold stopped part way (its visitor's error) with at most
/// `WaitLimit::DRAINED` rows left reads them and keeps its connection for the next call, and
/// with more left closes it (the server may still be sending). `connections` lists the
/// server's ids of the connections serving the provider: a closed one leaves the list within
/// milliseconds.
pub async fn check_stopped_loads<F, Fut>(provider: &dyn Provider, connections: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Vec<i64>>,
{
    let body = r#"{"type":"Added","by":1}"#;
    let small = (1..=500).map(|v| NewEvent::new("counters", "small", v, body));
    provider.append(small.collect()).await.expect("appending");
    let kept = stopped_load_keeps(provider, "small", &connections).await;
    assert!(kept, "499 rows left: drained, the connection kept");
    fill_big(provider).await;
    let kept = stopped_load_keeps(provider, "big", &connections).await;
    assert!(!kept, "19,999 rows left: the connection closed");
    let loaded = provider.events(&["counters".into()], 0, 10).await;
    assert_eq!(loaded.expect("reading").len(), 10, "the next read goes on");
}

/// Folds `counters/<id>` whole, then again stopping at the first event (the load must return
/// the visitor's error): whether every connection listed after the first is still listed
/// 300 ms after the second.
async fn stopped_load_keeps<F, Fut>(provider: &dyn Provider, id: &str, connections: &F) -> bool
where
    F: Fn() -> Fut,
    Fut: Future<Output = Vec<i64>>,
{
    let (stream, id): (SharedStr, SharedStr) = ("counters".into(), id.into());
    let mut whole = |_: &EventMeta, _: &str| Ok(());
    let folded = provider.visit_aggregate(&stream, &id, 0, &mut whole).await;
    folded.expect("folding whole");
    let before = connections().await;
    assert!(!before.is_empty(), "the provider's connections are listed");
    let mut stop = |_: &EventMeta, _: &str| {
        Err(Error::Rejected {
            source: "stopped".into(),
        })
    };
    let stopped = provider.visit_aggregate(&stream, &id, 0, &mut stop).await;
    assert!(
        matches!(stopped, Err(Error::Rejected { .. })),
        "{stopped:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = connections().await;
    before.iter().all(|connection| after.contains(connection))
}
