//! A handler is woken by another process's commits to the same file, and by its release of a
//! lease, long before its poll.

use std::process::Command as Process;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use evtstore_core::{NewEvent, Position, Provider};
use evtstore_sqlite::SqliteProvider;

/// Set in the child: the database file it appends to.
const CHILD: &str = "EVTSTORE_SQLITE_WRITER_CHILD";
const EVENTS: u64 = 20;

fn event(version: u64) -> NewEvent {
    NewEvent::new("counters", "c1", version, r#"{"type":"added","by":1}"#)
}

/// The child: appends the events one at a time, 30 ms apart.
async fn append_as_child(path: &str) {
    let provider = SqliteProvider::open(path).unwrap();
    for version in 1..=EVENTS {
        provider.append(vec![event(version)]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_processs_commits_wake_a_handler_before_its_poll() {
    if let Ok(path) = std::env::var(CHILD) {
        return append_as_child(&path).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let provider: Arc<dyn Provider> = Arc::new(SqliteProvider::open(&path).unwrap());
    let domain = evtstore_core::Domain::<Counters>::with_provider(provider);
    let seen: Arc<Mutex<Vec<Position>>> = Arc::default();
    let record = seen.clone();
    let handler = domain
        .handler("model")
        .poll_interval(Duration::from_secs(60))
        .handle::<Counter, _>(move |_, _, meta| {
            record.lock().unwrap().push(meta.position);
            Ok(())
        })
        .build()
        .unwrap();
    handler.start();

    let started = Instant::now();
    let child = Process::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "another_processs_commits_wake_a_handler_before_its_poll",
        ])
        .env(CHILD, &path)
        .status()
        .unwrap();
    assert!(child.success(), "the writing process failed");
    // Without the watcher nothing arrives before the 60 s poll.
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().len() < EVENTS as usize && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    handler.stop().await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        EVENTS as usize,
        "events handled {:?} after the child's commits: {seen:?}",
        started.elapsed()
    );
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order: {seen:?}");
}

/// Set in the child: the database file whose lease it takes and releases.
const RELEASING_CHILD: &str = "EVTSTORE_SQLITE_RELEASING_CHILD";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_processs_release_wakes_subscribers() {
    if let Ok(path) = std::env::var(RELEASING_CHILD) {
        let provider = SqliteProvider::open(path).unwrap();
        let ttl = Duration::from_secs(30);
        let lease = provider.acquire_lease("model", "child", ttl).await.unwrap();
        return provider.release_lease(&lease.unwrap()).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let provider = SqliteProvider::open(&path).unwrap();
    let mut signal = provider.subscribe();
    signal.borrow_and_update();
    let child = Process::new(std::env::current_exe().unwrap())
        .args(["--exact", "another_processs_release_wakes_subscribers"])
        .env(RELEASING_CHILD, &path)
        .status()
        .unwrap();
    assert!(child.success(), "the releasing process failed");
    let woken = tokio::time::timeout(Duration::from_secs(5), signal.changed()).await;
    assert!(woken.is_ok(), "no signal after another process's release");
    let live = provider.leases("").await.unwrap();
    assert!(live.is_empty(), "released: {live:?}");
}

/// The aggregate kind of the events the child writes.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Counter;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
enum CounterEvent {
    Added {
        #[allow(dead_code)]
        by: i64,
    },
}

impl evtstore_core::Aggregate for Counter {
    const STREAM: &'static str = "counters";
    type Event = CounterEvent;
    fn fold(&mut self, _: &CounterEvent, _: &evtstore_core::EventMeta) {}
}

evtstore_core::domain!(Counters { Counter });
