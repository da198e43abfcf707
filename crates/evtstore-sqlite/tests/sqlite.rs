//! SQLite-specific behaviour: file errors, several processes on one file, durability settings.

use std::process::Command;
use std::sync::Arc;

use evtstore_core::{Error, ErrorKind, NewEvent, Provider};
use evtstore_sqlite::{Durability, SqliteOptions, SqliteProvider};

fn event(id: &str, version: u64) -> NewEvent {
    NewEvent::new("counter", id, version, r#"{"type":"one","one":1}"#)
}

#[test]
fn unopenable_file_names_path_and_cause() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-dir").join("store.db");
    let error = SqliteProvider::open(&path).err().expect("open must fail");
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("unable to open"), "{message}");
}

#[test]
fn file_that_is_not_a_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.db");
    std::fs::write(&path, vec![7u8; 8192]).unwrap();
    let message = SqliteProvider::open(&path)
        .err()
        .expect("must fail")
        .to_string();
    assert!(
        message.contains("junk.db") && message.contains("not a database"),
        "{message}"
    );
}

#[test]
fn in_memory_databases_are_refused() {
    let paths = [
        "",
        ":memory:",
        "file::memory:",
        "file:x?mode=memory&cache=shared",
    ];
    for path in paths {
        let error = SqliteProvider::open(path).err().expect("must be refused");
        assert!(
            matches!(&error, Error::InvalidName { what: "database path", value, .. } if value == path),
            "{path:?}: {error:?}"
        );
        assert_eq!(error.kind(), ErrorKind::InvalidInput);
        assert!(error.to_string().contains("MemoryProvider"), "{error}");
    }
}

#[tokio::test]
async fn busy_database_is_retryable_contention_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.db");
    let options = SqliteOptions {
        busy_timeout: std::time::Duration::from_millis(100),
        ..SqliteOptions::default()
    };
    let provider = SqliteProvider::open_with(&path, options).unwrap();
    provider.append(vec![event("a", 1)]).await.unwrap();
    // Another process holds the write lock longer than the busy timeout.
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let error = provider.append(vec![event("a", 2)]).await.unwrap_err();
    assert!(
        error.is_retryable(),
        "a busy database is worth retrying: {error:?}"
    );
    assert!(matches!(error, Error::Contention { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("locked.db") && message.contains("locked"),
        "{message}"
    );
    other.execute_batch("ROLLBACK").unwrap();
    provider.append(vec![event("a", 2)]).await.unwrap();
    let versions = provider.aggregate_events("counter", "a", 0).await.unwrap();
    assert_eq!(
        versions.len(),
        2,
        "the refused append can be retried once the lock is gone"
    );
}

#[tokio::test]
async fn reopened_file_keeps_events_and_bookmarks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let provider = SqliteProvider::open(&path).unwrap();
    provider
        .append(vec![event("a", 1), event("a", 2)])
        .await
        .unwrap();
    provider.set_bookmark("model", 2).await.unwrap();
    drop(provider);
    let options = SqliteOptions {
        durability: Durability::Normal,
        ..SqliteOptions::default()
    };
    let provider = SqliteProvider::open_with(&path, options).unwrap();
    assert_eq!(
        provider
            .aggregate_events("counter", "a", 0)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(provider.bookmark("model").await.unwrap(), Some(2));
    let conflict = provider.append(vec![event("a", 2)]).await.unwrap_err();
    assert!(
        matches!(conflict, Error::VersionConflict { actual: 2, .. }),
        "{conflict}"
    );
}

const CHILD_DB: &str = "EVTSTORE_TEST_CHILD_DB";
const AGGREGATES: u64 = 5;
const ATTEMPTS: u64 = 60;

/// Appends to a few shared aggregates, reloading on conflict; returns how many appends won.
async fn race_appends(path: &str) -> u64 {
    let provider = SqliteProvider::open(path).unwrap();
    let mut won = 0;
    for attempt in 0..ATTEMPTS {
        let id = format!("shared-{}", attempt % AGGREGATES);
        let current = provider
            .aggregate_events("counter", &id, 0)
            .await
            .unwrap()
            .len() as u64;
        match provider.append(vec![event(&id, current + 1)]).await {
            Ok(_) => won += 1,
            Err(error) => assert!(error.is_version_conflict(), "unexpected: {error}"),
        }
    }
    won
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_write_one_file() {
    if let Ok(path) = std::env::var(CHILD_DB) {
        println!("won={}", race_appends(&path).await);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    drop(SqliteProvider::open(&path).unwrap());
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "two_processes_write_one_file",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DB, &path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let won_here = race_appends(path.to_str().unwrap()).await;
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "child failed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let won_there: u64 = stdout
        .split("won=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("child printed no count: {stdout}"));

    let provider = Arc::new(SqliteProvider::open(&path).unwrap());
    let streams = vec!["counter".to_owned()];
    let all = provider.events(&streams, 0, 10_000).await.unwrap();
    assert_eq!(
        all.len() as u64,
        won_here + won_there,
        "every winning append stored, no other"
    );
    for n in 0..AGGREGATES {
        let events = provider
            .aggregate_events("counter", &format!("shared-{n}"), 0)
            .await
            .unwrap();
        let versions: Vec<u64> = events.iter().map(|e| e.meta.version).collect();
        let expected: Vec<u64> = (1..=versions.len() as u64).collect();
        assert_eq!(
            versions, expected,
            "versions of shared-{n} are 1..n with no gap or twin"
        );
    }
    let positions: Vec<u64> = all.iter().map(|e| e.meta.position).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
}
