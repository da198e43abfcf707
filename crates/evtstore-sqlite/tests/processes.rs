//! Real processes on one file: leases, read-your-writes and partitions across processes (see
//! `evtstore_core::process_tests!`), and partitioned throughput with 1, 2 and 3 processes.

use std::any::Any;
use std::process::Command as Process;
use std::sync::Arc;

use evtstore_core::Provider;
use evtstore_core::conformance::partitions_across::{run_partition_child, throughput};
use evtstore_sqlite::SqliteProvider;

async fn open(path: &str) -> Arc<dyn Provider> {
    Arc::new(SqliteProvider::open(path).unwrap())
}

async fn fresh() -> Option<(Arc<dyn Provider>, String, Box<dyn Any + Send>)> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db").display().to_string();
    Some((open(&path).await, path, Box::new(dir)))
}

evtstore_core::process_tests!(open, fresh);

/// Set in the throughput test's children: the file.
const THROUGHPUT_CHILD: &str = "EVTSTORE_THROUGHPUT_CHILD";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_processes_handle_more_events_per_second() {
    if let Ok(path) = std::env::var(THROUGHPUT_CHILD) {
        return run_partition_child(open(&path).await).await;
    }
    let mut rates = Vec::new();
    for processes in 1..=3 {
        let (provider, path, _dir) = fresh().await.unwrap();
        let start = || {
            let mut child = Process::new(std::env::current_exe().unwrap());
            child.args([
                "--exact",
                "more_processes_handle_more_events_per_second",
                "--nocapture",
            ]);
            child.env(THROUGHPUT_CHILD, &path);
            child
        };
        rates.push(throughput(provider, processes, &start).await);
    }
    // 1 ms of work per event: three processes must do better than one (a wide margin).
    assert!(
        rates[2] > rates[0] * 1.3,
        "events/s with 1, 2, 3 processes: {rates:?}"
    );
}
