//! Leases across real processes: a provider's test binary starts itself as three children,
//! each running the same started handler on one store; the parent kills the one that runs it,
//! then pauses the next one past its lease.
//!
//! A provider runs these, and those of [`partitions_across`](super::partitions_across), with
//! [`process_tests!`](crate::process_tests) in one test file.

use std::process::Command as Process;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::domain::*;
use super::support::domain;
use crate::{Domain, Position, Provider};

/// The children's lease: short, so the test is quick.
const LEASE: Duration = Duration::from_secs(1);

/// In a child: runs the handler "across" (page size 1), printing `handled <position>` as
/// each event starts, which then takes 100 ms. When its stdin closes it stops the handler (a graceful
/// stop, releasing the lease) and exits; otherwise the parent kills it.
pub async fn run_child(provider: Arc<dyn Provider>) {
    let handler = domain(&provider)
        .handler("across")
        .page_size(1)
        .lease_time(LEASE)
        .handle::<Counter, _>(|_, _, meta| {
            println!("handled {}", meta.position);
            std::thread::sleep(Duration::from_millis(100)); // slow, so a pause lands mid-page
            Ok(())
        })
        .build()
        .expect("building the child's handler");
    handler.start();
    println!("started");
    let (closed, stdin_closed) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = std::io::stdin().lines().count();
        let _ = closed.send(());
    });
    let _ = stdin_closed.await;
    handler.stop().await;
    std::process::exit(0);
}

/// One event a child handled: which child, the position, when the parent read it.
type Line = (usize, Position, Instant);

/// The children, each event they handled a [`Line`].
type Children = super::children::Children<Line>;

/// A `handled <position>` line of child `n`.
fn parse(n: usize, position: &str) -> Option<Line> {
    Some((n, position.trim().parse().ok()?, Instant::now()))
}

async fn bump(domain: &Domain<Tests>) -> Position {
    let bumped = domain.execute("c1", Bump { by: vec![1] }).await;
    bumped.expect("bumping").position
}

/// Appends one event every 50 ms until a child other than `not` handles one; returns it and
/// when it did.
async fn until_another_runs(
    domain: &Domain<Tests>,
    children: &Children,
    not: usize,
    since: Instant,
) -> (usize, Duration) {
    let deadline = since + Duration::from_secs(20);
    while Instant::now() < deadline {
        bump(domain).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let lines = children.records();
        if let Some((n, _, at)) = lines.iter().find(|(n, _, at)| *n != not && *at > since) {
            return (*n, *at - since);
        }
    }
    panic!("no other child took over within 20 s");
}

/// Three children run one handler: exactly one handles events; killed (SIGKILL), another
/// takes over once the lease expires; paused (SIGSTOP) past its lease, the next is replaced,
/// and once resumed it saves no bookmark (the bookmark never goes back) and handles at most
/// the one event it was in. Prints the takeover times.
pub async fn kill_and_pause(provider: Arc<dyn Provider>, start: &dyn Fn() -> Process) {
    let domain = domain(&provider);
    let children = Children::start(3, start, parse);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for _ in 0..10 {
        bump(&domain).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let lines = children.records();
    let first = lines.last().expect("a child handles the events").0;
    assert!(
        lines.iter().all(|l| l.0 == first),
        "one child at a time: {lines:?}"
    );

    let killed_at = Instant::now();
    let _ = Process::new("kill")
        .args(["-KILL", &children.children[first].id().to_string()])
        .status();
    let (second, took) = until_another_runs(&domain, &children, first, killed_at).await;
    println!("takeover after SIGKILL: {took:?} (lease {LEASE:?})");
    assert!(took < LEASE * 4, "the takeover took {took:?}");

    let watcher = watch_bookmark(provider.clone());
    let before = children.count();
    for _ in 0..5 {
        bump(&domain).await;
    }
    // Paused mid-event, 50 ms into a callback: past its page's reads and the save of the page
    // before, so it holds no write lock (SQLite's would stop every writer until it resumed).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !children.records()[before..].iter().any(|l| l.0 == second) {
        assert!(
            Instant::now() < deadline,
            "the second child handles the new events"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    children.signal(second, "-STOP");
    let paused_at = Instant::now();
    let (third, took) = until_another_runs(
        &domain,
        &children,
        second,
        paused_at + Duration::from_millis(100),
    )
    .await;
    assert_ne!(third, first, "the killed child is gone");
    println!("takeover from a paused child: {took:?}");
    tokio::time::sleep(LEASE).await;
    children.signal(second, "-CONT");
    let resumed_at = Instant::now();
    tokio::time::sleep(LEASE * 2).await;
    let last = bump(&domain).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !children.records().iter().any(|l| l.1 == last) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let went_back = watcher.stop().await;
    assert!(
        went_back.is_empty(),
        "the bookmark went back: {went_back:?}"
    );
    let lines = children.records();
    let resumed: Vec<_> = lines
        .iter()
        .filter(|l| l.0 == second && l.2 > resumed_at)
        .collect();
    assert!(resumed.len() <= 1, "the resumed child ran on: {resumed:?}");
    assert!(
        lines.iter().any(|l| l.1 == last && l.0 == third),
        "the third child handles on"
    );
}

/// Two children run one handler; the one running it stops gracefully (its stdin closes) and
/// the other takes over at once, long before the lease would expire. Prints the time from
/// the stop to the other's first event.
pub async fn graceful_stop_hands_over(provider: Arc<dyn Provider>, start: &dyn Fn() -> Process) {
    let domain = domain(&provider);
    let mut children = Children::start(2, start, parse);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    bump(&domain).await;
    let first = loop {
        if let Some(line) = children.records().last() {
            break line.0;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    drop(children.children[first].stdin.take()); // a graceful stop
    let exited = children.children[first]
        .wait()
        .expect("the first child exits");
    assert!(exited.success(), "the first child stopped cleanly");
    let stopped_at = Instant::now();
    let last = bump(&domain).await;
    let deadline = stopped_at + Duration::from_secs(10);
    let handled = loop {
        let lines = children.records();
        if let Some(line) = lines.iter().find(|l| l.1 == last) {
            break *line;
        }
        assert!(
            Instant::now() < deadline,
            "nobody handled the event after the stop"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let took = handled.2 - stopped_at;
    println!("after a graceful stop, the other process handled the next event in {took:?}");
    assert_ne!(handled.0, first, "the other child");
    assert!(
        took < LEASE / 2,
        "the handover waited {took:?}: the lease ({LEASE:?}) expired"
    );
}

/// Reads the bookmark every 10 ms and records each time it moved back.
struct BookmarkWatch {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Vec<(Position, Position)>>,
}

fn watch_bookmark(provider: Arc<dyn Provider>) -> BookmarkWatch {
    let (stop, mut stopped) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let (mut last, mut back) = (0, Vec::new());
        while stopped.try_recv().is_err() {
            if let Ok(Some(at)) = provider.bookmark("across").await {
                if at < last {
                    back.push((last, at));
                }
                last = last.max(at);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        back
    });
    BookmarkWatch { stop, task }
}

impl BookmarkWatch {
    async fn stop(self) -> Vec<(Position, Position)> {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}

/// Read-your-writes across processes: a child runs the handler; this process executes a
/// command and waits for the child's bookmark to pass it. Woken by the bookmark save (the
/// waiter's own fallback look comes only after a second). Prints how long it took.
pub async fn read_your_writes_across(provider: Arc<dyn Provider>, start: &dyn Fn() -> Process) {
    let domain = domain(&provider);
    let _children = Children::start(1, start, parse);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sent = Instant::now();
    let position = bump(&domain).await;
    let passed = domain
        .wait_for_bookmark("across", position, Duration::from_secs(10))
        .await;
    let took = sent.elapsed();
    println!("read-your-writes across processes: {took:?} (the handler takes 100 ms per event)");
    assert!(
        passed.expect("reading the bookmark"),
        "the other process's handler passed it"
    );
    assert!(
        took < Duration::from_millis(800),
        "woken by the fallback look, not the save: {took:?}"
    );
}

/// Writes the tests that run real child processes on a provider's store, in a test file of
/// the provider: leases (kill, pause, graceful stop), read-your-writes across processes, and
/// a partitioned handler that survives a kill.
///
/// `open(address).await` opens the store a child is given; `fresh().await` makes a fresh store
/// and returns `Some((provider, address, keep))` (keep it alive until the test ends), or
/// `None` when the test must skip (a server whose URL is not set).
#[macro_export]
macro_rules! process_tests {
    ($open:path, $fresh:path) => {
        $crate::process_tests!(@one a_killed_or_paused_process_hands_its_handler_over,
            kill_and_pause, run_child, $open, $fresh);
        $crate::process_tests!(@one a_stopping_process_hands_its_handler_over_at_once,
            graceful_stop_hands_over, run_child, $open, $fresh);
        $crate::process_tests!(@one a_command_waits_for_another_processs_handler,
            read_your_writes_across, run_child, $open, $fresh);
        $crate::process_tests!(@one three_processes_share_eight_partitions_and_survive_a_kill,
            share_and_survive_a_kill, run_partition_child, $open, $fresh);
    };
    (@one $name:ident, $case:ident, $child:ident, $open:path, $fresh:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            #[allow(unused_imports)]
            use $crate::conformance::partitions_across::*;
            #[allow(unused_imports)]
            use $crate::conformance::processes::*;
            const CHILD: &str = "EVTSTORE_PROCESS_TEST_CHILD";
            if let Ok(address) = std::env::var(CHILD) {
                return $child($open(&address).await).await;
            }
            let Some((provider, address, _keep)) = $fresh().await else {
                return;
            };
            let start = || {
                let mut child = std::process::Command::new(std::env::current_exe().unwrap());
                child.args(["--exact", stringify!($name), "--nocapture"]);
                child.env(CHILD, &address);
                child
            };
            $case(provider, &start).await;
        }
    };
}
