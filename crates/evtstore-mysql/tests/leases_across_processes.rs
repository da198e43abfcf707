//! One handler, three processes on one database: leases across real processes (see
//! `evtstore_core::conformance::processes`).

mod support;

use std::process::Command as Process;
use std::sync::Arc;

use evtstore_core::conformance::processes::{
    CHILD, graceful_stop_hands_over, kill_and_pause, run_child,
};
use evtstore_mysql::{MysqlOptions, MysqlProvider};

const TEST: &str = "a_killed_or_paused_process_hands_its_handler_over";
const TEST_STOP: &str = "a_stopping_process_hands_its_handler_over_at_once";

async fn connect(url: &str, database: &str) -> Arc<MysqlProvider> {
    let config = support::connect_options(url, database);
    let provider = MysqlProvider::connect_config(config, MysqlOptions::default()).await;
    Arc::new(provider.expect("connect to MariaDB"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_or_paused_process_hands_its_handler_over() {
    let Some(url) = support::url() else { return };
    if let Ok(database) = std::env::var(CHILD) {
        return run_child(connect(&url, &database).await).await;
    }
    let db = support::TestDb::create(&url).await;
    let provider = connect(&url, &db.name).await;
    let start = || {
        let mut child = Process::new(std::env::current_exe().unwrap());
        child
            .args(["--exact", TEST, "--nocapture"])
            .env(CHILD, &db.name);
        child
    };
    kill_and_pause(provider, &start).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_process_hands_its_handler_over_at_once() {
    let Some(url) = support::url() else { return };
    if let Ok(database) = std::env::var(CHILD) {
        return run_child(connect(&url, &database).await).await;
    }
    let db = support::TestDb::create(&url).await;
    let provider = connect(&url, &db.name).await;
    let start = || {
        let mut child = Process::new(std::env::current_exe().unwrap());
        child
            .args(["--exact", TEST_STOP, "--nocapture"])
            .env(CHILD, &db.name);
        child
    };
    graceful_stop_hands_over(provider, &start).await;
}
