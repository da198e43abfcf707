//! SQLite work never runs on the executor: a current-thread runtime keeps its timers on time
//! while appends commit and while another process holds the write lock.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use evtstore_core::{NewEvent, Provider};
use evtstore_sqlite::SqliteProvider;

/// The most a 1 ms timer may be late while SQLite works.
const MAX_LATENESS: Duration = Duration::from_millis(20);
/// While another process holds the lock: the old executor-blocking code was 2 s late.
const MAX_LATENESS_WHILE_LOCKED: Duration = Duration::from_millis(500);
/// Set in the child process: the database file whose write lock it holds.
const LOCK_DB: &str = "EVTSTORE_TEST_HOLD_WRITE_LOCK";
/// How long the child holds the lock.
const HOLD: Duration = Duration::from_secs(2);

fn event(id: &str, version: u64) -> NewEvent {
    NewEvent::new("counter", id, version, r#"{"type":"one","one":1}"#)
}

/// Ticks a 1 ms interval until `done`; returns how late the latest tick came.
async fn worst_lateness(done: Arc<AtomicBool>) -> Duration {
    let mut interval = tokio::time::interval(Duration::from_millis(1));
    let mut worst = Duration::ZERO;
    while !done.load(Ordering::Relaxed) {
        let due = interval.tick().await;
        worst = worst.max(due.elapsed());
    }
    worst
}

/// Runs `work` beside a ticking 1 ms interval; returns its output and the worst lateness.
async fn beside_a_timer<T>(work: impl Future<Output = T>) -> (T, Duration) {
    let done = Arc::new(AtomicBool::new(false));
    let timer = tokio::spawn(worst_lateness(done.clone()));
    tokio::task::yield_now().await;
    let output = work.await;
    done.store(true, Ordering::Relaxed);
    (output, timer.await.expect("the timer task"))
}

#[tokio::test(flavor = "current_thread")]
async fn timer_keeps_ticking_through_300_appends() {
    let dir = tempfile::tempdir().unwrap();
    let provider = SqliteProvider::open(dir.path().join("store.db")).unwrap();
    let appends = async {
        for version in 1..=300 {
            provider.append(vec![event("a", version)]).await.unwrap();
        }
    };
    let ((), late) = beside_a_timer(appends).await;
    println!("300 appends: a 1 ms timer was at worst {late:?} late");
    assert!(late < MAX_LATENESS, "a 1 ms timer was {late:?} late");
}

/// In the child process only: holds the write lock of the file named by `LOCK_DB` for `HOLD`.
#[test]
fn child_holds_write_lock() {
    let Ok(path) = std::env::var(LOCK_DB) else {
        return;
    };
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    println!("\nwrite lock held");
    std::thread::sleep(HOLD);
    conn.execute_batch("COMMIT").unwrap();
}

/// Starts the child that holds the lock, and waits until it has it.
fn lock_in_other_process(path: &std::path::Path) -> std::process::Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_holds_write_lock", "--nocapture"])
        .args(["--test-threads=1"])
        .env(LOCK_DB, path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = stdout.lines().map_while(Result::ok);
    assert!(
        lines.any(|line| line == "write lock held"),
        "the child took no lock"
    );
    std::thread::spawn(move || lines.for_each(drop)); // the child's last words need a reader
    child
}

#[tokio::test(flavor = "current_thread")]
async fn timer_keeps_ticking_while_another_process_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let provider = SqliteProvider::open(&path).unwrap();
    provider.append(vec![event("a", 1)]).await.unwrap();
    let mut child = lock_in_other_process(&path);
    let start = Instant::now();
    let (appended, late) = beside_a_timer(provider.append(vec![event("a", 2)])).await;
    let waited = start.elapsed();
    println!("append waited {waited:?}; a 1 ms timer was at worst {late:?} late");
    assert!(child.wait().unwrap().success(), "the child failed");
    appended.expect("the append succeeds once the lock is free");
    assert!(waited > HOLD / 2, "the append waited only {waited:?}");
    assert!(
        late < MAX_LATENESS_WHILE_LOCKED,
        "a 1 ms timer was {late:?} late"
    );
}
