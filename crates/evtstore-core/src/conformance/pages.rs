//! Handlers read in pages: hooks per page and one bookmark save per page.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::domain::*;
use super::support::{
    Counting, Log, Outcome, all_events, bookmark, domain, eventually, positions, run,
};
use crate::{Domain, Handler, Position, Provider};

/// The (read, handled) of each page when the events fail as `fails` says.
fn expected_pages(fails: &[bool], page: usize) -> Vec<(usize, usize)> {
    let mut pages: Vec<_> = fails
        .chunks(page)
        .map(|c| (c.len(), c.iter().filter(|f| !**f).count()))
        .collect();
    if fails.len().is_multiple_of(page) {
        pages.push((0, 0)); // a full page is followed by a read that comes back short
    }
    pages
}

/// Hooks: `before_run` is called before each page and `after_run` after it with (events read,
/// events handled), a skipped failure being read but not handled.
pub async fn hooks_see_read_and_handled_per_page(provider: Arc<dyn Provider>, page: usize) {
    let domain = domain(&provider);
    for by in [1, 13, 2, 3] {
        domain
            .execute("c1", Bump { by: vec![by] })
            .await
            .expect("bumping c1");
    }
    let befores = Arc::new(AtomicUsize::new(0));
    let afters = Arc::new(Mutex::new(Vec::new()));
    let log = Log::default();
    let fail_13 = |e: &serde_json::Value| {
        if e["by"] == 13 {
            Outcome::Fail
        } else {
            Outcome::Handle
        }
    };
    let (before, after) = (befores.clone(), afters.clone());
    let handler = domain
        .handler("hooked")
        .page_size(page)
        .continue_on_error(true)
        .before_run(move || {
            before.fetch_add(1, Ordering::SeqCst);
            async {}
        })
        .after_run(move |read, handled| {
            after.lock().unwrap().push((read, handled));
            async {}
        })
        .handle::<Counter, _>(log.acting::<Counter>(fail_13))
        .build()
        .expect("building");
    assert_eq!(run(&handler).await, 3, "three of four events handled");
    let mut expected = expected_pages(&[false, true, false, false], page);
    assert_eq!(
        *afters.lock().unwrap(),
        expected,
        "after_run's (read, handled) per page"
    );
    assert_eq!(
        befores.load(Ordering::SeqCst),
        expected.len(),
        "before_run once per page"
    );
    assert_eq!(run(&handler).await, 0);
    expected.push((0, 0));
    assert_eq!(
        *afters.lock().unwrap(),
        expected,
        "an idle run reads one empty page"
    );
    assert_eq!(befores.load(Ordering::SeqCst), expected.len());
}

/// Five users created through a counting provider, and a handler of users recording into a
/// log, reading pages of `page`.
async fn five_users_paged(
    provider: &Arc<dyn Provider>,
    name: &str,
    page: usize,
) -> (Arc<Counting>, Handler, Log) {
    let counting = Counting::new(provider.clone());
    let domain = Domain::<Tests>::with_provider(counting.clone());
    for id in ["u1", "u2", "u3", "u4", "u5"] {
        domain
            .execute(id, CreateUser { name: id.into() })
            .await
            .expect("creating a user");
    }
    let log = Log::default();
    let builder = domain.handler(name).page_size(page);
    let handler = builder
        .handle::<User, _>(log.recorder::<User>())
        .build()
        .expect("build");
    (counting, handler, log)
}

/// A page read ahead that fails is read again: every event is handled once, in order.
pub async fn a_failed_read_ahead_is_read_again(provider: Arc<dyn Provider>, page: usize) {
    // Pages of at most 2: after each full page the next are read ahead, and those reads fail.
    let (counting, handler, log) = five_users_paged(&provider, "ahead", page.min(2)).await;
    counting.fail_first_reads_ahead();
    assert_eq!(run(&handler).await, 5, "every event handled");
    let stored = all_events(&provider, &["users"]).await;
    let positions: Vec<Position> = stored.iter().map(|e| e.meta.position).collect();
    assert_eq!(log.positions(), positions, "once each, in order");
}

/// Handlers read pages of at most the page size and save the bookmark once per page read, not
/// once per event, and not at all when nothing is read.
pub async fn bookmark_saved_once_per_page(provider: Arc<dyn Provider>, page: usize) {
    let (counting, handler, _) = five_users_paged(&provider, "paged", page).await;
    assert_eq!(run(&handler).await, 5);
    assert_eq!(
        counting.bookmark_saves(),
        5_usize.div_ceil(page),
        "one save per page read"
    );
    let last = all_events(&provider, &["users"])
        .await
        .last()
        .map(|e| e.meta.position);
    assert_eq!(
        bookmark(&provider, "paged").await,
        last,
        "saved at the last event"
    );
    assert_eq!(run(&handler).await, 0);
    assert_eq!(
        counting.bookmark_saves(),
        5_usize.div_ceil(page),
        "no save when nothing is read"
    );
}

/// A page whose bookmark save fails (a save finishes while the next page is handled) is
/// handled again at the next run, with every event after it: none is passed over.
pub async fn a_page_whose_save_failed_is_handled_again(provider: Arc<dyn Provider>, page: usize) {
    let (counting, handler, log) = five_users_paged(&provider, "refused", page.min(2)).await;
    counting.fail_next_bookmark_save();
    assert!(handler.run_once().await.is_err(), "the first save fails");
    let first_run = log.positions().len();
    assert_eq!(run(&handler).await, 5, "again from the first page");
    let stored = all_events(&provider, &["users"]).await;
    assert_eq!(log.positions()[first_run..], positions(&stored), "in order");
    let last = stored.last().map(|e| e.meta.position);
    assert_eq!(bookmark(&provider, "refused").await, last);
}

/// A `set_position` during a run takes effect between pages once the save of the page before
/// it is made: no save of the run lands after it with an older page's position.
pub async fn set_position_comes_after_the_runs_save(provider: Arc<dyn Provider>, _page: usize) {
    let (counting, handler, log) = five_users_paged(&provider, "moved", 1).await;
    counting.delay_forward_saves(Duration::from_millis(300));
    let running = handler.clone();
    let running = tokio::spawn(async move { running.run_once().await });
    let two_handled = || async { log.positions().len() >= 2 };
    eventually("two events handled", Duration::from_secs(10), two_handled).await;
    handler.set_position(0).await.expect("moving to 0");
    running.await.expect("the run").expect("the run's result");
    let saves = counting.leased_saves();
    let moved = saves.iter().position(|&p| p == 0).expect("a save of 0");
    let stored = positions(&all_events(&provider, &["users"]).await);
    assert_eq!(
        saves[moved + 1..],
        stored,
        "each page again, in order: {saves:?}"
    );
}

/// A run whose last page's save fails fails, though another caller (a `reset` here) waited
/// for that save and met its error first.
pub async fn a_run_fails_when_its_last_save_failed_elsewhere(
    provider: Arc<dyn Provider>,
    _page: usize,
) {
    let counting = Counting::new(provider.clone());
    let domain = Domain::<Tests>::with_provider(counting.clone());
    for id in ["u1", "u2", "u3"] {
        let created = domain.execute(id, CreateUser { name: id.into() }).await;
        created.expect("creating a user");
    }
    let handled = Arc::new(AtomicUsize::new(0));
    let seen = handled.clone();
    let handler = domain.handler("reported").page_size(10);
    let handler = handler.handle::<User, _>(move |_, _, _| {
        if seen.fetch_add(1, Ordering::SeqCst) == 2 {
            std::thread::sleep(Duration::from_millis(300)); // the reset queues meanwhile
        }
        Ok(())
    });
    let handler = handler.build().expect("build");
    counting.fail_next_bookmark_save();
    let running = handler.clone();
    let running = tokio::spawn(async move { running.run_once().await });
    let three = || async { handled.load(Ordering::SeqCst) == 3 };
    eventually("three events handled", Duration::from_secs(10), three).await;
    handler.reset().await;
    let ran = running.await.expect("the run");
    assert!(ran.is_err(), "the run's last save failed: {ran:?}");
}
