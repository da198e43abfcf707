//! One handler, three processes on one schema: leases across real processes (see
//! `evtstore_core::conformance::processes`).

mod support;

use std::process::Command as Process;
use std::sync::Arc;

use evtstore_core::conformance::processes::{
    CHILD, graceful_stop_hands_over, kill_and_pause, read_your_writes_across, run_child,
};
use evtstore_postgres::{PgOptions, PgProvider};

const TEST: &str = "a_killed_or_paused_process_hands_its_handler_over";
const TEST_READ: &str = "a_command_waits_for_another_processs_handler";
const TEST_STOP: &str = "a_stopping_process_hands_its_handler_over_at_once";

async fn connect(url: &str, schema: &str) -> Arc<PgProvider> {
    let options = PgOptions {
        schema: schema.to_owned(),
        ..PgOptions::default()
    };
    Arc::new(PgProvider::connect_with(url, options).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_or_paused_process_hands_its_handler_over() {
    let Some(url) = support::url() else { return };
    if let Ok(schema) = std::env::var(CHILD) {
        return run_child(connect(&url, &schema).await).await;
    }
    let schema = support::unique_schema();
    let provider = connect(&url, &schema).await;
    let start = || {
        let mut child = Process::new(std::env::current_exe().unwrap());
        child
            .args(["--exact", TEST, "--nocapture"])
            .env(CHILD, &schema);
        child
    };
    kill_and_pause(provider, &start).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_process_hands_its_handler_over_at_once() {
    let Some(url) = support::url() else { return };
    if let Ok(schema) = std::env::var(CHILD) {
        return run_child(connect(&url, &schema).await).await;
    }
    let schema = support::unique_schema();
    let provider = connect(&url, &schema).await;
    let start = || {
        let mut child = Process::new(std::env::current_exe().unwrap());
        child
            .args(["--exact", TEST_STOP, "--nocapture"])
            .env(CHILD, &schema);
        child
    };
    graceful_stop_hands_over(provider, &start).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_waits_for_another_processs_handler() {
    let Some(url) = support::url() else { return };
    if let Ok(schema) = std::env::var(CHILD) {
        return run_child(connect(&url, &schema).await).await;
    }
    let schema = support::unique_schema();
    let provider = connect(&url, &schema).await;
    let start = || {
        let mut child = Process::new(std::env::current_exe().unwrap());
        child
            .args(["--exact", TEST_READ, "--nocapture"])
            .env(CHILD, &schema);
        child
    };
    read_your_writes_across(provider, &start).await;
}
