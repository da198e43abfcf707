//! The connections the provider keeps for loads and appends leave the rest of the pool to
//! other statements: the caller's transactions, leases, sequencer passes.

mod support;

use std::time::Duration;

use evtstore_core::{NewEvent, Provider};
use evtstore_mysql::MysqlOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_connections_leave_the_pool_to_transactions() {
    let Some(url) = support::url() else { return };
    let db = support::TestDb::create(&url).await;
    let options = MysqlOptions {
        pool_size: 4,
        ..MysqlOptions::default()
    };
    let provider = db.provider(options).await;
    // A load and an append at once take two connections (loads are read one group at a
    // time, appends committed one group at a time); one of them is kept after.
    for version in 1..=3 {
        let event = NewEvent::new("s", "a", version, r#"{"n":1}"#);
        let (appended, loaded) = tokio::join!(
            provider.append(vec![event]),
            provider.aggregate_events("s", "b", 0)
        );
        appended.unwrap();
        assert!(loaded.unwrap().is_empty());
    }
    // A wait of seconds (the pool's acquire timeout is 10 s) is the failure.
    let transactions = (0..3).map(|_| provider.pool().begin());
    let begun = tokio::time::timeout(
        Duration::from_secs(5),
        futures_util::future::join_all(transactions),
    )
    .await
    .expect("transactions waited for connections the provider kept");
    assert!(begun.iter().all(Result::is_ok), "{begun:?}");
}

/// A provider holding kept connections may be dropped where no Tokio runtime runs (sqlx
/// returns a pool connection by spawning a task, which panics there).
#[test]
fn a_provider_with_kept_connections_drops_outside_a_runtime() {
    let Some(url) = support::url() else { return };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (provider, db) = runtime.block_on(async {
        let (provider, db) = support::fresh(&url).await;
        let event = NewEvent::new("s", "a", 1, r#"{"n":1}"#);
        provider.append(vec![event]).await.unwrap();
        assert_eq!(
            provider.aggregate_events("s", "a", 0).await.unwrap().len(),
            1
        );
        (provider, db)
    });
    let provider = std::sync::Arc::into_inner(provider).expect("the only reference");
    drop(provider);
    drop(db);
}
