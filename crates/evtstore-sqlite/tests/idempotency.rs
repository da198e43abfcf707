//! A command id is honoured across two providers on one file (as two processes would open
//! it) and across a restart.

use evtstore_core::conformance::domain::{Bump, Tests};
use evtstore_core::{CommandMeta, Domain, Provider, Uuid};
use evtstore_sqlite::SqliteProvider;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_id_appends_once_across_providers_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let meta = CommandMeta::new().command_id(Uuid::now_v7());
    let domains: Vec<Domain<Tests>> = (0..2)
        .map(|_| Domain::new(SqliteProvider::open(&path).unwrap()))
        .collect();
    let racing = domains.iter().map(|domain| {
        let meta = meta.clone();
        async move { domain.execute_with("c1", Bump { by: vec![3] }, meta).await }
    });
    for outcome in futures_util::future::join_all(racing).await {
        assert_eq!(outcome.expect("both succeed").version, 1);
    }
    drop(domains);

    let reopened = SqliteProvider::open(&path).unwrap();
    let domain: Domain<Tests> = Domain::new(SqliteProvider::open(&path).unwrap());
    let retried = domain.execute_with("c1", Bump { by: vec![3] }, meta).await;
    assert_eq!(retried.expect("a retry").state.total, 3);
    let events = reopened
        .aggregate_events("counters", "c1", 0)
        .await
        .unwrap();
    assert_eq!(events.len(), 1, "appended once: {events:?}");
}
