//! Stopping a handler mid catch-up: the stop takes effect between pages.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::domain::*;
use super::support::{bookmark, domain, eventually, raw};
use crate::{Handler, NewEvent, Position, Provider};

/// `events` counter events over aggregates of 1,000 events each, stored in large appends.
async fn store_history(provider: &Arc<dyn Provider>, events: usize) {
    let body = r#"{"type":"added","by":1,"seen_version":0}"#;
    let event = |n: usize| {
        raw(
            "counters",
            &format!("c{}", n / 1000),
            (n % 1000) as u64 + 1,
            body,
        )
    };
    let all: Vec<NewEvent> = (0..events).map(event).collect();
    for chunk in all.chunks(20_000) {
        let stored = provider.append(chunk.to_vec()).await;
        stored.unwrap_or_else(|e| panic!("storing the history: {e}"));
    }
}

type Seen = Arc<Mutex<Vec<Position>>>;

/// A handler "catch-up" over counters recording each position, and counting its pages.
fn counting_handler(
    provider: &Arc<dyn Provider>,
    page: usize,
) -> (Handler, Seen, Arc<AtomicUsize>) {
    let seen = Seen::default();
    let pages = Arc::new(AtomicUsize::new(0));
    let (record, count) = (seen.clone(), pages.clone());
    let handler = domain(provider)
        .handler("catch-up")
        .page_size(page)
        .after_run(move |_, _| {
            count.fetch_add(1, Ordering::SeqCst);
            async {}
        })
        .handle::<Counter, _>(move |_, _, meta| {
            record.lock().unwrap().push(meta.position);
            Ok(())
        })
        .build()
        .expect("a handler");
    (handler, seen, pages)
}

/// A started handler catching up on 200,000 events, page size 100 (2,000 events when the suite
/// runs with page size 1), stops within two pages of `stop()`, never after the whole catch-up;
/// its bookmark sits on a page boundary; a later start resumes right after it; no event is
/// handled twice or out of order.
pub async fn stop_takes_effect_within_a_page(provider: Arc<dyn Provider>, page: usize) {
    let (events, page) = if page == 1 {
        (2_000, 1)
    } else {
        (200_000, 100)
    };
    store_history(&provider, events).await;
    let (handler, seen, pages) = counting_handler(&provider, page);
    handler.start();
    let started = || async { pages.load(Ordering::SeqCst) >= 10 };
    eventually("ten pages are handled", Duration::from_secs(30), started).await;
    let at_stop = pages.load(Ordering::SeqCst);
    handler.stop().await;
    let after_stop = pages.load(Ordering::SeqCst) - at_stop;
    assert!(after_stop <= 2, "{after_stop} pages ran after stop()");
    let handled = seen.lock().unwrap().len();
    assert!(
        handled < events && handled.is_multiple_of(page),
        "stopped on a page boundary: {handled}"
    );
    let saved = bookmark(&provider, "catch-up").await;
    assert_eq!(
        saved,
        seen.lock().unwrap().last().copied(),
        "the bookmark after the last page"
    );

    handler.start();
    let resumed = || async { seen.lock().unwrap().len() > handled };
    eventually("the catch-up resumes", Duration::from_secs(30), resumed).await;
    handler.stop().await;
    let streams = ["counters".to_owned()];
    let next = provider.events(&streams, saved.unwrap_or(0), 1).await;
    let next = next.expect("the event after the bookmark")[0].meta.position;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen[handled], next,
        "the start resumed right after the bookmark"
    );
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "in position order, none twice"
    );
}

/// `set_position` and `reset` on a handler catching up in the background take effect within
/// a page (they used to wait for the whole catch-up): the page after `set_position(0)` starts
/// from the first event again.
pub async fn set_position_takes_effect_within_a_page(provider: Arc<dyn Provider>, page: usize) {
    let (events, page) = if page == 1 { (2_000, 1) } else { (20_000, 100) };
    store_history(&provider, events).await;
    let (handler, seen, pages) = counting_handler(&provider, page);
    handler.start();
    let started = || async { pages.load(Ordering::SeqCst) >= 10 };
    eventually("ten pages are handled", Duration::from_secs(30), started).await;
    let handled_before = seen.lock().unwrap().len();
    handler.set_position(0).await.expect("set_position");
    let handled_at_return = seen.lock().unwrap().len();
    handler.reset().await;
    let handled_after_reset = seen.lock().unwrap().len();
    // The old run loop held the position for the whole catch-up: both waited for its end.
    assert!(
        handled_after_reset < events,
        "set_position and reset waited for the catch-up: {handled_after_reset} of {events} handled"
    );
    let replayed = || async { seen.lock().unwrap().len() > handled_at_return + 4 * page };
    eventually("the handler replays", Duration::from_secs(30), replayed).await;
    handler.stop().await;
    let seen = seen.lock().unwrap().clone();
    let replay = (1..seen.len())
        .find(|&i| seen[i] == seen[0])
        .expect("a replay from the start");
    assert!(
        replay >= handled_before && replay <= handled_at_return,
        "the replay began with the first page after set_position: at {replay}, {handled_before} \
         handled before it was called, {handled_at_return} when it returned"
    );
    assert!(
        seen[replay..].windows(2).all(|w| w[0] < w[1]),
        "the replay runs in order from the start, reset continuing it"
    );
}
