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

/// Appends 500 events to `counters/small`: fewer than a stopped load drains
/// (`WaitLimit::DRAINED`).
pub async fn fill_small(provider: &dyn Provider) {
    let body = r#"{"type":"Added","by":1}"#;
    let events = (1..=500).map(|v| NewEvent::new("counters", "small", v, body));
    provider.append(events.collect()).await.expect("appending");
}

/// Folds `counters/<id>` whole, runs `between`, then folds it again stopping at the first
/// event (the visitor's error, which the load must return), and returns `between`'s answer.
pub async fn stop_at_first_event<T>(
    provider: &dyn Provider,
    id: &str,
    between: impl Future<Output = T>,
) -> T {
    let (stream, id): (SharedStr, SharedStr) = ("counters".into(), id.into());
    let mut whole = |_: &EventMeta, _: &str| Ok(());
    let folded = provider.visit_aggregate(&stream, &id, 0, &mut whole).await;
    folded.expect("folding whole");
    let answer = between.await;
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
    answer
}
