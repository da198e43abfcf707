//! Controlling handlers: parity item 14, start and stop, positions and reset.

use std::sync::Arc;
use std::time::Duration;

use super::domain::*;
use super::support::{Counting, Log, PROMPTLY, all_events, bookmark, domain, eventually, run};
use crate::{Domain, Error, Handler, Position, Provider};

/// Creates user `id` and returns its event's position.
async fn create(domain: &Domain<Tests>, id: &str) -> Position {
    let user = domain.execute(id, CreateUser { name: id.into() }).await;
    user.unwrap_or_else(|e| panic!("creating user {id}: {e}"))
        .position
}

/// A handler over users recording into `log`, configured by `options`.
fn users_handler(
    domain: &Domain<Tests>,
    name: &str,
    page: usize,
    log: &Log,
    options: impl FnOnce(crate::HandlerBuilder<Tests>) -> crate::HandlerBuilder<Tests>,
) -> Handler {
    let builder = options(domain.handler(name).page_size(page));
    let builder = builder.handle::<User, _>(log.recorder::<User>());
    builder
        .build()
        .unwrap_or_else(|e| panic!("building handler {name}: {e}"))
}

/// Item 14: with `tail_stream` a new bookmark starts at the end of history (and an existing one
/// is kept); with `always_tail_stream` every run after a build, a `reset` or a `start` begins
/// at the end; events appended after that are handled.
pub async fn tail_stream_starts_at_the_end(provider: Arc<dyn Provider>, page: usize) {
    let domain = domain(&provider);
    create(&domain, "u1").await;
    let end = create(&domain, "u2").await;
    let log = Log::default();
    let tail = users_handler(&domain, "tail", page, &log, |b| b.tail_stream(true));
    assert_eq!(
        run(&tail).await,
        0,
        "a new tail_stream handler skips history"
    );
    assert_eq!(
        bookmark(&provider, "tail").await,
        Some(end),
        "its bookmark starts at the end"
    );
    let u3 = create(&domain, "u3").await;
    assert_eq!(run(&tail).await, 1, "an event after the start is handled");
    let u4 = create(&domain, "u4").await;
    let again = users_handler(&domain, "tail", page, &log, |b| b.tail_stream(true));
    assert_eq!(
        run(&again).await,
        1,
        "an existing bookmark is not moved to the end"
    );
    assert_eq!(log.positions(), [u3, u4]);

    let log = Log::default();
    let always = users_handler(&domain, "always", page, &log, |b| {
        b.always_tail_stream(true)
    });
    assert_eq!(run(&always).await, 0, "always_tail_stream skips history");
    let u5 = create(&domain, "u5").await;
    assert_eq!(run(&always).await, 1, "an event after the start is handled");
    create(&domain, "u6").await;
    always.reset().await;
    assert_eq!(
        run(&always).await,
        0,
        "after a reset it starts at the end again"
    );
    let u7 = create(&domain, "u7").await;
    assert_eq!(run(&always).await, 1);
    let u8 = create(&domain, "u8").await;
    always.start();
    let at_u8 = || async { always.position().await.ok() == Some(u8) };
    eventually("the started handler is at the end", PROMPTLY, at_u8).await;
    let u9 = create(&domain, "u9").await;
    eventually("u9 is handled", PROMPTLY, || async {
        log.positions().contains(&u9)
    })
    .await;
    always.stop().await;
    assert_eq!(
        log.positions(),
        [u5, u7, u9],
        "a start skips what came before it"
    );
}

/// With `always_tail_stream`, a handler that finds another process running it stands by, and
/// when it takes over carries on from that process's bookmark: the events the other left are
/// handled, not skipped by a jump to the end.
pub async fn an_always_tailing_standby_takes_over_from_the_bookmark(
    provider: Arc<dyn Provider>,
    page: usize,
) {
    let domain = domain(&provider);
    create(&domain, "u1").await;
    let log = Log::default();
    let standby = users_handler(&domain, "tailing", page, &log, |b| {
        b.always_tail_stream(true)
    });
    let other = provider.acquire_lease("tailing", "another process", Duration::from_secs(30));
    let other = other.await.expect("acquiring").expect("a free lease");
    let held = standby.run_once().await;
    assert!(
        matches!(held, Err(Error::LeaseHeld { .. })),
        "another process runs it: {held:?}"
    );
    let handled_there = create(&domain, "u2").await;
    let saved = provider.set_bookmark_leased(&other, handled_there).await;
    saved.expect("the other process saves its bookmark");
    let left = [create(&domain, "u3").await, create(&domain, "u4").await];
    provider.release_lease(&other).await.expect("releasing");
    assert_eq!(
        run(&standby).await,
        2,
        "it takes over where the other stopped"
    );
    assert_eq!(log.positions(), left);
}

/// With `always_tail_stream`, a tail whose save failed is kept: an event appended after it
/// is handled when the handler runs again, not passed over by a jump to a later end.
pub async fn a_tail_whose_save_failed_is_kept(provider: Arc<dyn Provider>, page: usize) {
    let counting = Counting::new(provider);
    let provider: Arc<dyn Provider> = counting.clone();
    let domain = domain(&provider);
    create(&domain, "u1").await;
    let log = Log::default();
    let tailing = users_handler(&domain, "kept", page, &log, |b| b.always_tail_stream(true));
    counting.fail_next_bookmark_save();
    assert!(tailing.run_once().await.is_err(), "the tail's save fails");
    let u2 = create(&domain, "u2").await;
    assert_eq!(
        run(&tailing).await,
        1,
        "the event after the tail is handled"
    );
    assert_eq!(log.positions(), [u2]);
}

/// `wait_for` on a handler built again (as after a restart) returns at once for a position
/// its bookmark has passed, though no event comes after it.
pub async fn wait_for_knows_the_bookmark_after_a_restart(provider: Arc<dyn Provider>, page: usize) {
    let domain = domain(&provider);
    create(&domain, "u1").await;
    let last = create(&domain, "u2").await;
    let log = Log::default();
    let before = users_handler(&domain, "waited", page, &log, |b| b);
    assert_eq!(run(&before).await, 2);
    let after = users_handler(&domain, "waited", page, &log, |b| b);
    after.start();
    let passed = after.wait_for(last, Duration::from_secs(10)).await;
    after.stop().await;
    assert!(passed, "the restarted handler knows it passed {last}");
}

/// A started handler learns of an event appended through the same provider at once (its poll
/// interval is a minute, so only the append signal can explain it), and `stop` stops it.
pub async fn started_handler_is_pushed_and_stops(provider: Arc<dyn Provider>, page: usize) {
    let domain = domain(&provider);
    let u1 = create(&domain, "u1").await;
    let log = Log::default();
    let poll = |b: crate::HandlerBuilder<Tests>| b.poll_interval(Duration::from_secs(60));
    let handler = users_handler(&domain, "pushed", page, &log, poll);
    assert!(!handler.is_running(), "not running before start");
    handler.start();
    assert!(handler.is_running(), "running after start");
    let handled_u1 = || async { log.positions() == [u1] };
    eventually(
        "the first run handles the pending event",
        PROMPTLY,
        handled_u1,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await; // let it go idle
    let u2 = create(&domain, "u2").await;
    let handled_u2 = || async { log.positions() == [u1, u2] };
    eventually(
        "an appended event is pushed to the running handler",
        PROMPTLY,
        handled_u2,
    )
    .await;
    let stopping = tokio::time::timeout(PROMPTLY, handler.stop()).await;
    stopping.expect("stop must return promptly");
    assert!(!handler.is_running(), "not running after stop");

    let u3 = create(&domain, "u3").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        log.positions(),
        [u1, u2],
        "a stopped handler handles nothing"
    );
    assert_eq!(run(&handler).await, 1, "the event was pending");
    assert_eq!(log.positions(), [u1, u2, u3]);
    assert_eq!(bookmark(&provider, "pushed").await, Some(u3));
}

/// `set_position(0)` replays everything and saves the bookmark; another position resumes after it.
pub async fn set_position_0_replays(provider: Arc<dyn Provider>, page: usize) {
    let domain = domain(&provider);
    let created = [
        create(&domain, "u1").await,
        create(&domain, "u2").await,
        create(&domain, "u3").await,
    ];
    let log = Log::default();
    let handler = users_handler(&domain, "replay", page, &log, |b| b);
    assert_eq!(run(&handler).await, 3);
    handler
        .set_position(0)
        .await
        .expect("setting the position to 0");
    assert_eq!(handler.position().await.expect("position"), 0);
    assert_eq!(
        bookmark(&provider, "replay").await,
        Some(0),
        "the bookmark is saved"
    );
    assert_eq!(run(&handler).await, 3, "everything is replayed");
    handler
        .set_position(created[1])
        .await
        .expect("setting the position to u2's");
    assert_eq!(run(&handler).await, 1, "only the event after the position");
    let expected = [created.as_slice(), created.as_slice(), &created[2..]].concat();
    assert_eq!(log.positions(), expected, "replays in order");
    assert_eq!(bookmark(&provider, "replay").await, Some(created[2]));
}

/// `reset` forgets the cached position: the next run reads the bookmark again, as another
/// handler object with the same name set it.
pub async fn reset_rereads_the_bookmark(provider: Arc<dyn Provider>, page: usize) {
    let domain = domain(&provider);
    create(&domain, "u1").await;
    create(&domain, "u2").await;
    let log = Log::default();
    // Without leases, as in the original library: a handler keeps its cached position even
    // when another moves the bookmark (with a lease, taking it again reads the bookmark).
    let handler = users_handler(&domain, "shared", page, &log, |b| b.without_lease());
    assert_eq!(run(&handler).await, 2);
    let other = users_handler(&domain, "shared", page, &Log::default(), |b| {
        b.without_lease()
    });
    other
        .set_position(0)
        .await
        .expect("moving the shared bookmark to 0");
    assert_eq!(
        run(&handler).await,
        0,
        "a handler keeps its position between runs"
    );
    handler.reset().await;
    assert_eq!(
        handler.position().await.expect("position"),
        0,
        "reset reads the bookmark"
    );
    assert_eq!(run(&handler).await, 2, "and runs from it");
    let stored = all_events(&provider, &["users"]).await;
    assert_eq!(log.seen().len(), 4);
    assert_eq!(
        bookmark(&provider, "shared").await,
        stored.last().map(|e| e.meta.position)
    );
}
