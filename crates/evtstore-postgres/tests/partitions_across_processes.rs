//! A partitioned handler shared by real processes on one schema (see
//! `evtstore_core::conformance::partitions_across`).

mod support;

use std::process::Command as Process;
use std::sync::Arc;

use evtstore_core::conformance::partitions_across::{
    CHILD, run_partition_child, share_and_survive_a_kill,
};
use evtstore_postgres::{PgOptions, PgProvider};

const TEST: &str = "three_processes_share_eight_partitions_and_survive_a_kill";

async fn connect(url: &str, schema: &str) -> Arc<PgProvider> {
    let options = PgOptions {
        schema: schema.to_owned(),
        ..PgOptions::default()
    };
    Arc::new(PgProvider::connect_with(url, options).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_share_eight_partitions_and_survive_a_kill() {
    let Some(url) = support::url() else { return };
    if let Ok(schema) = std::env::var(CHILD) {
        return run_partition_child(connect(&url, &schema).await).await;
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
    share_and_survive_a_kill(provider, &start).await;
}
