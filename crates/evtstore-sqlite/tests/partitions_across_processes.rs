//! A partitioned handler shared by real processes on one file (see
//! `evtstore_core::conformance::partitions_across`).

use std::process::Command as Process;
use std::sync::Arc;

use evtstore_core::Provider;
use evtstore_core::conformance::partitions_across::{
    CHILD, run_partition_child, share_and_survive_a_kill, throughput,
};
use evtstore_sqlite::SqliteProvider;

fn child_of(test: &'static str, path: std::path::PathBuf) -> impl Fn() -> Process {
    move || {
        let mut child = Process::new(std::env::current_exe().unwrap());
        child
            .args(["--exact", test, "--nocapture"])
            .env(CHILD, &path);
        child
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_share_eight_partitions_and_survive_a_kill() {
    if let Ok(path) = std::env::var(CHILD) {
        return run_partition_child(Arc::new(SqliteProvider::open(path).unwrap())).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let provider: Arc<dyn Provider> = Arc::new(SqliteProvider::open(&path).unwrap());
    let start = child_of(
        "three_processes_share_eight_partitions_and_survive_a_kill",
        path,
    );
    share_and_survive_a_kill(provider, &start).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_processes_handle_more_events_per_second() {
    if let Ok(path) = std::env::var(CHILD) {
        return run_partition_child(Arc::new(SqliteProvider::open(path).unwrap())).await;
    }
    let mut rates = Vec::new();
    for processes in 1..=3 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let provider: Arc<dyn Provider> = Arc::new(SqliteProvider::open(&path).unwrap());
        let start = child_of("more_processes_handle_more_events_per_second", path);
        rates.push(throughput(provider, processes, &start).await);
    }
    // 1 ms of work per event: three processes must do better than one (a wide margin).
    assert!(
        rates[2] > rates[0] * 1.3,
        "events/s with 1, 2, 3 processes: {rates:?}"
    );
}
