//! Where a transactional handler starts (`tail_stream`, `always_tail_stream`), and its hooks.

use std::sync::Arc;
use std::time::Duration;

use super::TxModel;
use super::kit::{Kit, REFUSE, run};
use crate::conformance::support::{PROMPTLY, eventually};
use crate::provider::{TxHandler, TxProvider};

/// How long a started handler may take to run a page: a stall, not a slow machine.
const TEN_SECONDS: Duration = Duration::from_secs(10);

/// With `tail_stream`, a new bookmark starts (and is saved) at the end of history; a handler
/// whose bookmark exists resumes from it.
pub async fn tail_stream_starts_a_new_bookmark_at_the_end<P: TxProvider, M: TxModel<P>>(
    provider: Arc<P>,
    model: M,
) {
    let kit = Kit::new(provider, model);
    let old = kit.bump("c1", &[1, 2]).await;
    let tailing = kit.handler("tailing", |b| b.tail_stream(true));
    assert_eq!(run(&tailing).await, 0, "history is skipped");
    assert_eq!(
        kit.bookmark("tailing").await,
        Some(old[1]),
        "saved at the end"
    );
    let new = kit.bump("c1", &[3]).await;
    assert_eq!(run(&tailing).await, 1, "a later event is handled");

    let more = kit.bump("c1", &[4]).await;
    let again = kit.handler("tailing", |b| b.tail_stream(true));
    assert_eq!(run(&again).await, 1, "an existing bookmark is kept");
    assert_eq!(kit.rows().await, [new[0], more[0]]);
}

/// With `always_tail_stream`, a handler's first run and each start begin at the end of
/// history, whatever its bookmark says; in between it goes on from where it is.
pub async fn always_tail_stream_starts_each_start_at_the_end<P: TxProvider, M: TxModel<P>>(
    provider: Arc<P>,
    model: M,
) {
    let kit = Kit::new(provider, model);
    let always = |b: crate::provider::TxHandlerBuilder<P, _>| {
        b.always_tail_stream(true)
            .poll_interval(Duration::from_millis(50))
    };
    kit.bump("c1", &[1]).await;
    let first = kit.handler("always", always);
    assert_eq!(run(&first).await, 0, "the first run starts at the end");
    let second = kit.bump("c1", &[2]).await;
    assert_eq!(run(&first).await, 1, "then it goes on");

    kit.bump("c1", &[3]).await;
    let restarted = kit.handler("always", always); // as in a new process
    assert_eq!(run(&restarted).await, 0, "the bookmark is passed over");
    kit.bump("c1", &[4]).await;
    let pages = || kit.log().iter().filter(|l| l.starts_with("after")).count();
    let before_start = pages();
    restarted.start();
    let started = || async { pages() > before_start };
    eventually("the started handler ran a page", PROMPTLY, started).await;
    let fifth = kit.bump("c1", &[5]).await;
    let handled = || async { kit.rows().await.contains(&fifth[0]) };
    eventually("the started handler handled 5", PROMPTLY, handled).await;
    restarted.stop().await;
    assert_eq!(
        kit.rows().await,
        [second[0], fifth[0]],
        "1, 3 and 4 were passed over"
    );
}

/// A handler that had to wait for another page of its name (another process's, as a standby
/// does) carries on from the bookmark that page saved, even with `always_tail_stream`: events
/// appended meanwhile are handled, not passed over.
pub async fn an_always_tailing_standby_carries_on_from_the_bookmark<
    P: TxProvider,
    M: TxModel<P>,
>(
    provider: Arc<P>,
    model: M,
) {
    let kit = Kit::new(provider, model);
    let first = kit.bump("c1", &[1]).await;
    let running = kit.handler("shared", |b| b);
    let standby = kit.handler("shared", |b| b.always_tail_stream(true));
    kit.close_gate();
    let busy = run(&running);
    let waiting = async {
        let inside = || async { kit.log().iter().any(|l| l == "handle 1") };
        eventually("the first page holds the lock", PROMPTLY, inside).await;
        run(&standby).await
    };
    let meanwhile = async {
        // The standby has begun its page (its `before_run` logged), and waits for the lock.
        let befores = || kit.log().iter().filter(|l| *l == "before").count();
        let began = || async { befores() == 2 };
        eventually("the standby began its page", PROMPTLY, began).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let second = kit.bump("c1", &[2]).await;
        kit.open_gate();
        second
    };
    let (busy, waited, second) = tokio::join!(busy, waiting, meanwhile);
    assert_eq!((busy, waited), (1, 1), "each handled one event");
    assert_eq!(
        kit.rows().await,
        [first[0], second[0]],
        "2 was not passed over"
    );
}

/// A tailing handler whose first page (at the end of history) failed starts again from that
/// same end: an event appended meanwhile is handled, not passed over.
pub async fn a_tail_whose_page_failed_is_kept<P: TxProvider, M: TxModel<P>>(
    provider: Arc<P>,
    model: M,
) {
    let kit = Kit::new(provider, model);
    kit.bump("c1", &[1]).await;
    for always in [false, true] {
        kit.refuse_bookmark_saves(true).await;
        let name = format!("tailing-{always}");
        let handler = kit.handler(&name, |b| b.tail_stream(true).always_tail_stream(always));
        let failed = handler.run_once().await;
        assert!(failed.is_err(), "the bookmark save is refused");
        let meanwhile = kit.bump("c1", &[2]).await;
        kit.refuse_bookmark_saves(false).await;
        assert_eq!(
            run(&handler).await,
            1,
            "the event appended after the failed tail is handled (always_tail_stream {always})"
        );
        assert!(kit.rows().await.contains(&meanwhile[0]));
    }
}

/// A kept tail gives way to a bookmark another process saved past it: the retry carries on
/// from that bookmark and applies nothing twice.
pub async fn a_kept_tail_gives_way_to_a_later_bookmark<P: TxProvider, M: TxModel<P>>(
    provider: Arc<P>,
    model: M,
) {
    let kit = Kit::new(provider, model);
    let kept = with_a_failed_tail(&kit, "moved").await;
    kit.bump("c1", &[2]).await; // passed over by the other, which starts after it
    kit.refuse_bookmark_saves(false).await;
    let other = kit.handler("moved", |b| b.tail_stream(true));
    assert_eq!(run(&other).await, 0, "the other starts at the end");
    let later = kit.bump("c1", &[3]).await;
    assert_eq!(run(&other).await, 1);
    assert_eq!(
        run(&kept).await,
        0,
        "the retry carries on from the other's bookmark"
    );
    assert_eq!(kit.rows().await, later, "each applied once, by the other");
}

/// A handler named `name`, with `always_tail_stream`, whose first page (at the end of a
/// history of one event) failed at its bookmark save; saves are refused still.
async fn with_a_failed_tail<P: TxProvider, M: TxModel<P>>(
    kit: &Kit<P, M>,
    name: &str,
) -> TxHandler<P> {
    kit.bump("c1", &[1]).await;
    kit.refuse_bookmark_saves(true).await;
    let handler = kit.handler(name, |b| b.always_tail_stream(true));
    let failed = handler.run_once().await;
    assert!(failed.is_err(), "the bookmark save is refused");
    handler
}

/// A start forgets the tail kept from a failed `run_once`: it begins at the end of history as
/// it is then (`always_tail_stream`), not at the old one.
pub async fn a_start_forgets_a_kept_tail<P: TxProvider, M: TxModel<P>>(provider: Arc<P>, model: M) {
    let kit = Kit::new(provider, model);
    let handler = with_a_failed_tail(&kit, "restarted").await;
    kit.bump("c1", &[2]).await; // before the start
    kit.refuse_bookmark_saves(false).await;
    handler.start();
    let tailed = || async { kit.bookmark("restarted").await.is_some() };
    eventually("the start's first page commits", TEN_SECONDS, tailed).await;
    let after = kit.bump("c1", &[3]).await;
    let applied = || async { kit.rows().await.contains(&after[0]) };
    eventually("the event after the start is applied", TEN_SECONDS, applied).await;
    handler.stop().await;
    assert_eq!(kit.rows().await, after, "only the event after the start");
}

/// `before_run` and `after_run` run around each page (transaction), after with (events read,
/// events handled); a skipped failing event is read but not handled.
pub async fn hooks_run_around_each_page<P: TxProvider, M: TxModel<P>>(provider: Arc<P>, model: M) {
    let kit = Kit::new(provider, model);
    kit.bump("c1", &[1, 2, REFUSE, 3, 4]).await;
    let paged = kit.handler("paged", |b| b.page_size(2).continue_on_error(true));
    assert_eq!(run(&paged).await, 4);
    let expected = [
        "before",
        "handle 1",
        "handle 2",
        "after 2 2",
        "before",
        "handle 15",
        "handle 3",
        "after 2 1",
        "before",
        "handle 4",
        "after 1 1",
    ];
    assert_eq!(kit.log(), expected, "a short page ends the run");
}
