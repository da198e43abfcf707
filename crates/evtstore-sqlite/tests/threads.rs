//! The provider's threads end when it is dropped, and dropping it never waits for them. In a
//! test binary of its own: it counts the process's threads.

#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use evtstore_core::{NewEvent, Provider};
use evtstore_sqlite::{SqliteOptions, SqliteProvider};

/// Threads of this process whose name starts as the provider's do (Linux keeps 15 bytes).
fn provider_threads() -> usize {
    let tasks = std::fs::read_dir("/proc/self/task").unwrap();
    let names = tasks.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok());
    names
        .filter(|name| name.starts_with("evtstore-sqlit"))
        .count()
}

fn event(version: u64) -> NewEvent {
    NewEvent::new("counter", "a", version, r#"{"type":"one","one":1}"#)
}

#[tokio::test]
async fn dropping_the_provider_ends_its_threads_without_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let options = SqliteOptions {
        busy_timeout: Duration::from_millis(500),
        ..SqliteOptions::default()
    };
    let provider = SqliteProvider::open_with(&path, options).unwrap();
    provider.append(vec![event(1)]).await.unwrap();
    let streams = ["counter".to_owned()];
    assert_eq!(provider.events(&streams, 0, 10).await.unwrap().len(), 1);
    assert!(provider_threads() >= 2, "a writer and readers run");

    // A write stuck behind another connection's lock, whose caller gave up waiting.
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let stuck = tokio::time::timeout(Duration::from_millis(50), provider.append(vec![event(2)]));
    assert!(stuck.await.is_err(), "the append waits for the lock");
    let start = Instant::now();
    drop(provider);
    assert!(start.elapsed() < Duration::from_millis(50), "drop waited");
    other.execute_batch("ROLLBACK").unwrap();

    let deadline = Instant::now() + Duration::from_secs(5);
    while provider_threads() > 0 {
        assert!(
            Instant::now() < deadline,
            "the provider's threads outlive it"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
