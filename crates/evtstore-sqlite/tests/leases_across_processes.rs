//! One handler, three processes on one file: leases across real processes (see
//! `evtstore_core::conformance::processes`).

use std::process::Command as Process;
use std::sync::Arc;

use evtstore_core::Provider;
use evtstore_core::conformance::processes::{
    CHILD, graceful_stop_hands_over, kill_and_pause, read_your_writes_across, run_child,
};
use evtstore_sqlite::SqliteProvider;

const TEST: &str = "a_killed_or_paused_process_hands_its_handler_over";
const TEST_READ: &str = "a_command_waits_for_another_processs_handler";
const TEST_STOP: &str = "a_stopping_process_hands_its_handler_over_at_once";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_or_paused_process_hands_its_handler_over() {
    if let Ok(path) = std::env::var(CHILD) {
        return run_child(Arc::new(SqliteProvider::open(path).unwrap())).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let provider: Arc<dyn Provider> = Arc::new(SqliteProvider::open(&path).unwrap());
    let start = || {
        let mut child = Process::new(std::env::current_exe().unwrap());
        child
            .args(["--exact", TEST, "--nocapture"])
            .env(CHILD, &path);
        child
    };
    kill_and_pause(provider, &start).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_process_hands_its_handler_over_at_once() {
    if let Ok(path) = std::env::var(CHILD) {
        return run_child(Arc::new(SqliteProvider::open(path).unwrap())).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let provider: Arc<dyn Provider> = Arc::new(SqliteProvider::open(&path).unwrap());
    let start = || {
        let mut child = Process::new(std::env::current_exe().unwrap());
        child
            .args(["--exact", TEST_STOP, "--nocapture"])
            .env(CHILD, &path);
        child
    };
    graceful_stop_hands_over(provider, &start).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_waits_for_another_processs_handler() {
    if let Ok(path) = std::env::var(CHILD) {
        return run_child(Arc::new(SqliteProvider::open(path).unwrap())).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let provider: Arc<dyn Provider> = Arc::new(SqliteProvider::open(&path).unwrap());
    let start = || {
        let mut child = Process::new(std::env::current_exe().unwrap());
        child
            .args(["--exact", TEST_READ, "--nocapture"])
            .env(CHILD, &path);
        child
    };
    read_your_writes_across(provider, &start).await;
}
