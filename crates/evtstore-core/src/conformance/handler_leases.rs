//! Handlers of one name started twice (as two processes would): one runs at a time, a stop
//! hands over at once, and `set_position` goes through the lease.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::domain::*;
use super::support::{Counting, domain, eventually};
use crate::{Domain, Handler, Partitioned, Position, Provider};

/// Which handler got which position.
type Seen = Arc<Mutex<Vec<(&'static str, Position)>>>;

fn started(domain: &Domain<Tests>, who: &'static str, page: usize, seen: &Seen) -> Handler {
    let record = seen.clone();
    let handler = domain
        .handler("leased")
        .page_size(page)
        .lease_time(Duration::from_secs(2))
        .poll_interval(Duration::from_secs(60))
        .handle::<Counter, _>(move |_, _, meta| {
            record.lock().unwrap().push((who, meta.position));
            Ok(())
        })
        .build()
        .expect("building");
    handler.start();
    handler
}

async fn bump(domain: &Domain<Tests>, times: usize) -> Vec<Position> {
    let mut positions = Vec::new();
    for _ in 0..times {
        let counter = domain.execute("c1", Bump { by: vec![1] }).await;
        positions.push(counter.expect("bumping").position);
    }
    positions
}

fn positions(seen: &Seen) -> Vec<Position> {
    seen.lock().unwrap().iter().map(|(_, p)| *p).collect()
}

/// Starts handler `who`, bumps `events` times and waits until they are handled.
async fn running_after(
    domain: &Domain<Tests>,
    who: &'static str,
    page: usize,
    seen: &Seen,
    events: usize,
) -> (Handler, Vec<Position>) {
    let running = started(domain, who, page, seen);
    let at = bump(domain, events).await;
    let all = || async { positions(seen).len() >= events };
    eventually(
        "the running handler handles them",
        Duration::from_secs(10),
        all,
    )
    .await;
    (running, at)
}

/// A handler of the same name in another process, never started, to call `set_position` on.
fn not_started(domain: &Domain<Tests>) -> Handler {
    let built = domain
        .handler("leased")
        .handle::<Counter, _>(|_, _, _| Ok(()));
    built.build().expect("building")
}

/// Two started handlers of one name: one runs while it lives, every event handled once, in
/// order; when it stops the other takes over at once (long before the lease would expire) and
/// carries on from its bookmark.
pub async fn one_started_handler_of_a_name_runs_and_a_stop_hands_over(
    provider: Arc<dyn Provider>,
    page: usize,
) {
    let domain = domain(&provider);
    let seen = Seen::default();
    let (first, at) = running_after(&domain, "first", page, &seen, 3).await;
    let second = started(&domain, "second", page, &seen);
    let more = bump(&domain, 3).await;
    let six = || async { positions(&seen).len() >= 6 };
    eventually("six events handled", Duration::from_secs(10), six).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let handlers: Vec<&str> = seen.lock().unwrap().iter().map(|(who, _)| *who).collect();
    assert!(
        handlers.iter().all(|who| *who == "first"),
        "only the holder runs: {handlers:?}"
    );

    first.stop().await;
    let stopped = Instant::now();
    let last = bump(&domain, 1).await;
    let taken_over = || async { positions(&seen).len() >= 7 };
    eventually(
        "the second handler takes over",
        Duration::from_secs(10),
        taken_over,
    )
    .await;
    let took = stopped.elapsed();
    second.stop().await;
    let expected = [at, more, last].concat();
    assert_eq!(positions(&seen), expected, "each event once, in order");
    assert_eq!(
        seen.lock().unwrap()[6].0,
        "second",
        "the last one by the second handler"
    );
    assert!(
        took < Duration::from_secs(1),
        "the handover waited {took:?}: the lease (2 s) expired instead"
    );
}

/// `set_position` on a handler object that does not hold the lease moves the one that does:
/// it replays from the start.
pub async fn set_position_goes_through_the_lease(provider: Arc<dyn Provider>, page: usize) {
    let domain = domain(&provider);
    let seen = Seen::default();
    let (running, at) = running_after(&domain, "running", page, &seen, 2).await;
    not_started(&domain)
        .set_position(0)
        .await
        .expect("asking for a replay");
    bump(&domain, 1).await; // wakes the running handler
    let replayed = || async { positions(&seen).len() >= 5 };
    eventually(
        "the running handler replays",
        Duration::from_secs(10),
        replayed,
    )
    .await;
    running.stop().await;
    let seen = positions(&seen);
    let replay = (2..seen.len()).find(|&i| seen[i] == at[0]);
    let replay = replay.unwrap_or_else(|| panic!("no replay from the start: {seen:?}"));
    assert_eq!(
        &seen[replay..replay + 2],
        at.as_slice(),
        "replayed in order: {seen:?}"
    );
}

/// A `set_position` asked for while the holder applies an earlier one is not lost: the holder
/// clears only the request it applied, and applies the newer at its next renewal.
pub async fn a_position_asked_for_while_another_is_applied_is_kept(
    provider: Arc<dyn Provider>,
    page: usize,
) {
    let counting = Counting::new(provider);
    let provider: Arc<dyn Provider> = counting.clone();
    let domain = domain(&provider);
    let seen = Seen::default();
    let (running, at) = running_after(&domain, "running", page, &seen, 3).await;
    // Another process asks to resume after the second event just after the holder read the
    // first ask (a replay, stored as 0 + 1).
    counting.write_after_read("leased#move-to", 1, at[1] + 1);
    let asked = not_started(&domain).set_position(0).await;
    asked.expect("asking for a replay");
    let third_thrice = || async {
        bump(&domain, 1).await; // wakes the running handler; it renews every half second
        tokio::time::sleep(Duration::from_millis(200)).await;
        positions(&seen).iter().filter(|&&p| p == at[2]).count() >= 3
    };
    eventually(
        "the replay, then the resume after the second event",
        Duration::from_secs(10),
        third_thrice,
    )
    .await;
    running.stop().await;
    let left = provider.bookmark("leased#move-to").await.expect("reading");
    assert_eq!(left, None, "both asks were cleared once applied");
}

/// An ask whose application committed but whose answer was lost (the connection dropped) is
/// not undone: the holder reads its bookmark again and replays from the asked position.
pub async fn an_ask_applied_without_an_answer_is_kept(provider: Arc<dyn Provider>, page: usize) {
    let counting = Counting::new(provider);
    let provider: Arc<dyn Provider> = counting.clone();
    let domain = domain(&provider);
    let seen = Seen::default();
    let (running, at) = running_after(&domain, "running", page, &seen, 2).await;
    counting.lose_next_ask_answer();
    let asked = not_started(&domain).set_position(0).await;
    asked.expect("another process asks for a replay");
    let replayed = || async {
        bump(&domain, 1).await; // wakes the holder; it renews every half second
        tokio::time::sleep(Duration::from_millis(200)).await;
        positions(&seen).iter().filter(|&&p| p == at[0]).count() >= 2
    };
    eventually("the replay asked for", Duration::from_secs(10), replayed).await;
    running.stop().await;
}

/// The holder's own `set_position` overrides an earlier ask of another process: the ask is
/// not applied later over it.
pub async fn a_holders_own_move_overrides_an_earlier_ask(provider: Arc<dyn Provider>, page: usize) {
    let domain = domain(&provider);
    let seen = Seen::default();
    let (running, at) = running_after(&domain, "running", page, &seen, 3).await;
    let asked = not_started(&domain).set_position(0).await;
    asked.expect("another process asks for a replay");
    running.set_position(at[2]).await.expect("the holder moves");
    for _ in 0..8 {
        bump(&domain, 1).await; // wakes the holder; it renews every half second
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    running.stop().await;
    let seen = positions(&seen);
    let first = seen.iter().filter(|&&p| p == at[0]).count();
    assert_eq!(
        first, 1,
        "the earlier ask replayed over the later move: {seen:?}"
    );
}

/// With `always_tail_stream`, a handler that took its place from another process's ask
/// keeps it: when a page then loses the lease (a callback outlasted it), the next run carries
/// on from the bookmark instead of jumping to the end of history.
pub async fn a_place_asked_for_is_kept_after_a_lost_lease(
    provider: Arc<dyn Provider>,
    page: usize,
) {
    let domain = domain(&provider);
    let at = bump(&domain, 2).await;
    let other = provider.acquire_lease("leased", "another process", Duration::from_secs(30));
    let other = other.await.expect("acquiring").expect("a free lease");
    let asked = not_started(&domain).set_position(0).await;
    asked.expect("asking the other process for a replay");
    provider.release_lease(&other).await.expect("releasing");
    let lease = Duration::from_millis(300);
    let (seen, slowed) = (Seen::default(), Arc::new(AtomicBool::new(false)));
    let (record, slow_at) = (seen.clone(), at[1]);
    let tailing = domain
        .handler("leased")
        .page_size(page)
        .lease_time(lease)
        .always_tail_stream(true)
        .handle::<Counter, _>(move |_, _, meta| {
            if meta.position == slow_at && !slowed.swap(true, Ordering::SeqCst) {
                std::thread::sleep(lease * 2); // outlasts the lease
            }
            record.lock().unwrap().push(("tailing", meta.position));
            Ok(())
        })
        .build()
        .expect("building");
    let lost = tailing.run_once().await;
    assert!(
        lost.is_err(),
        "the page's save finds the lease lost: {lost:?}"
    );
    let later = bump(&domain, 1).await;
    let resumed = tailing.run_once().await.expect("running again");
    let seen = positions(&seen);
    assert!(
        resumed > 0 && seen.ends_with(&later),
        "carried on from the bookmark ({resumed} handled): {seen:?}"
    );
}

/// (who, aggregate, version) of each event a partition handled.
type Handled = Arc<Mutex<Vec<(&'static str, String, u64)>>>;

/// The partitioned handler's lease: well above any stall of a loaded machine, since a page
/// saved after its lease lapsed is handled again (at least once), and this test counts pages.
const PARTITION_LEASE: Duration = Duration::from_secs(4);

fn partitioned(domain: &Domain<Tests>, who: &'static str, handled: &Handled) -> Partitioned<()> {
    let record = handled.clone();
    let partitioned = domain
        .handler("split")
        .lease_time(PARTITION_LEASE)
        .handle::<Counter, _>(move |_, _, meta| {
            let id = meta.aggregate_id.to_string();
            record.lock().unwrap().push((who, id, meta.version));
            Ok(())
        })
        .build_partitioned(4)
        .expect("building");
    partitioned.start();
    partitioned
}

async fn bump_each(domain: &Domain<Tests>, aggregates: usize) {
    for a in 0..aggregates {
        let bumped = domain.execute(&format!("c{a}"), Bump { by: vec![1] }).await;
        bumped.expect("bumping");
    }
}

/// Two processes' worth of a handler split into 4 partitions: every event handled once, each
/// aggregate's in version order, the partitions shared between both; when one stops the
/// other takes over its partitions.
pub async fn partitions_are_shared_and_move_when_a_process_leaves(
    provider: Arc<dyn Provider>,
    _page: usize,
) {
    let domain = domain(&provider);
    let handled = Handled::default();
    let one = partitioned(&domain, "one", &handled);
    let two = partitioned(&domain, "two", &handled);
    let running = |p: &Partitioned<()>| p.partitions().iter().map(|h| h.is_running()).collect();
    let shared = || async {
        let (ones, twos): (Vec<bool>, Vec<bool>) = (running(&one), running(&two));
        let each_once = ones.iter().zip(&twos).all(|(a, b)| a != b);
        each_once && ones.contains(&true) && twos.contains(&true)
    };
    eventually("both join", Duration::from_secs(20), shared).await;
    for _ in 0..3 {
        bump_each(&domain, 12).await;
    }
    let all = || async { handled.lock().unwrap().len() >= 36 };
    eventually("36 events handled", Duration::from_secs(20), all).await;
    let by = |who| {
        handled
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.0 == who)
            .count()
    };
    assert!(
        by("one") > 0 && by("two") > 0,
        "both share the work: {} and {}",
        by("one"),
        by("two")
    );

    one.stop().await;
    bump_each(&domain, 12).await;
    let all = || async { handled.lock().unwrap().len() >= 48 };
    eventually(
        "the remaining process takes every partition",
        Duration::from_secs(20),
        all,
    )
    .await;
    two.stop().await;
    let handled = handled.lock().unwrap().clone();
    assert_eq!(handled.len(), 48, "each event once: {handled:?}");
    for a in 0..12 {
        let id = format!("c{a}");
        let versions: Vec<u64> = handled.iter().filter(|h| h.1 == id).map(|h| h.2).collect();
        assert_eq!(versions, [1, 2, 3, 4], "{id} in version order");
    }
    assert!(
        handled[36..].iter().all(|h| h.0 == "two"),
        "after the stop only two runs"
    );
}

/// Read-your-writes: a command's position, waited for on a started handler, returns once the
/// handler's state has the command's event; a position not reached times out.
pub async fn wait_for_reads_your_writes(provider: Arc<dyn Provider>, page: usize) {
    let domain = domain(&provider);
    let totals = domain
        .handler_with("totals", 0_i64)
        .page_size(page)
        .poll_interval(Duration::from_secs(60))
        .handle::<Counter, _>(|total, event, _| {
            let CounterEvent::Added { by, .. } = event;
            *total += by;
            Ok(())
        })
        .build()
        .expect("building");
    totals.start();
    for by in [3, 4] {
        let counter = domain.execute("c1", Bump { by: vec![by] }).await;
        let position = counter.expect("bumping").position;
        assert!(
            totals.wait_for(position, Duration::from_secs(10)).await,
            "passed {position}"
        );
        assert!(*totals.state().await >= by, "the state has the change");
    }
    assert_eq!(*totals.state().await, 7);
    let far = Duration::from_millis(200);
    assert!(
        !totals.wait_for(u64::MAX, far).await,
        "a position never reached times out"
    );
    totals.stop().await;
}

/// A rebuild without downtime: the read model is rebuilt from the start under a new name
/// while the old one keeps serving and keeps up; once the new one has passed the head it
/// takes over and the old one stops. Both saw every event.
pub async fn a_read_model_is_rebuilt_under_a_new_name_and_switched_over(
    provider: Arc<dyn Provider>,
    page: usize,
) {
    let domain = domain(&provider);
    let model = |name: &str| {
        domain
            .handler_with(name, Vec::<Position>::new())
            .page_size(page)
            .handle::<Counter, _>(|seen, _, meta| {
                seen.push(meta.position);
                Ok(())
            })
            .build()
            .expect("building")
    };
    let old = model("totals-v1");
    old.start();
    bump(&domain, 5).await;
    let rebuilt = model("totals-v2");
    rebuilt.start(); // from the start of history, beside the old one
    let head = bump(&domain, 3).await[2];
    let within = Duration::from_secs(10);
    assert!(
        old.wait_for(head, within).await,
        "the old model keeps serving"
    );
    assert!(
        rebuilt.wait_for(head, within).await,
        "the new one caught up"
    );
    old.stop().await; // switch over: readers now use `rebuilt`
    let more = bump(&domain, 1).await[0];
    assert!(
        rebuilt.wait_for(more, within).await,
        "the new one serves on"
    );
    let (old_seen, new_seen) = (old.state().await.clone(), rebuilt.state().await.clone());
    assert_eq!(
        &new_seen[..old_seen.len()],
        old_seen.as_slice(),
        "the same events, in order"
    );
    assert_eq!(new_seen.len(), 9, "every event in the new model");
    rebuilt.stop().await;
}
