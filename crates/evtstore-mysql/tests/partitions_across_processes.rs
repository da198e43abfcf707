//! A partitioned handler shared by real processes on one database (see
//! `evtstore_core::conformance::partitions_across`).

mod support;

use std::process::Command as Process;
use std::sync::Arc;

use evtstore_core::conformance::partitions_across::{
    CHILD, run_partition_child, share_and_survive_a_kill,
};
use evtstore_mysql::{MysqlOptions, MysqlProvider};

const TEST: &str = "three_processes_share_eight_partitions_and_survive_a_kill";

async fn connect(url: &str, database: &str) -> Arc<MysqlProvider> {
    let config = support::connect_options(url, database);
    let provider = MysqlProvider::connect_config(config, MysqlOptions::default()).await;
    Arc::new(provider.expect("connect to MariaDB"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_share_eight_partitions_and_survive_a_kill() {
    let Some(url) = support::url() else { return };
    if let Ok(database) = std::env::var(CHILD) {
        return run_partition_child(connect(&url, &database).await).await;
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
    share_and_survive_a_kill(provider, &start).await;
}
