//! A load alone streams its rows to the fold: a large aggregate is folded as its rows arrive,
//! never held whole in memory, a connection lost part way is read again from where the fold
//! stopped, and a fold stopped part way leaves its connection drained and pooled, or closed.

mod support;

use std::time::Duration;

use evtstore_core::conformance::streaming::{check_at_first_event, check_stopped_loads, fill_big};
use evtstore_postgres::{PgOptions, PgProvider};
use tokio_postgres::NoTls;

/// While the fold takes the first event, the server is still sending the rest: the statement
/// is still active. (Read whole first, it would have ended.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_alone_is_folded_as_its_rows_arrive() {
    let Some(url) = support::url() else { return };
    let active = at_first_event(&url, "count(*)").await;
    assert_eq!(
        active, 1,
        "the load's statement was still sending rows at the first event"
    );
}

/// A load whose connection the server drops part way (its backend terminated while the fold
/// holds the first event) is read again after the last event folded, on a fresh connection:
/// every event is folded once, in order (`check_at_first_event` asserts it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_cut_off_part_way_goes_on_after_the_last_event_folded() {
    let Some(url) = support::url() else { return };
    let terminated = at_first_event(&url, "count(pg_terminate_backend(pid))").await;
    assert_eq!(terminated, 1, "the load's backend was terminated");
}

/// Folds a large aggregate on a new store and, at its first event, runs `what` (an aggregate
/// over the load's statement, still active) from a connection of its own: none of the
/// pool's, which the fold's caller may be driving.
async fn at_first_event(url: &str, what: &str) -> i64 {
    let schema = support::unique_schema();
    let options = PgOptions {
        schema: schema.clone(),
        pool_size: 8,
        ..PgOptions::default()
    };
    let provider = PgProvider::connect_with(url, options).await.unwrap();
    fill_big(&provider).await;
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    let query = format!(
        "SELECT {what} FROM pg_stat_activity WHERE state = 'active'
         AND query LIKE '%' || $1 || '%' AND query LIKE '%ORDER BY version%'"
    );
    check_at_first_event(&provider, async move {
        let row = client.query_one(&query, &[&schema]).await.unwrap();
        row.get::<_, i64>(0)
    })
    .await
}

/// A fold that stops part way (its visitor's error) with at most `WaitLimit::DRAINED` rows
/// left reads them and gives its connection back to the pool; with more left, the connection
/// is closed. The provider's connections are the backends whose last statement named its
/// schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fold_stopped_part_way_keeps_its_connection_when_little_is_left() {
    let Some(url) = support::url() else { return };
    let schema = support::unique_schema();
    let options = PgOptions {
        schema: schema.clone(),
        pool_size: 8,
        ..PgOptions::default()
    };
    let provider = PgProvider::connect_with(&url, options).await.unwrap();
    let (client, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
    tokio::spawn(connection);
    let backends = || async {
        let backends = "SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid()
            AND query LIKE '%' || $1 || '%' ORDER BY pid";
        let rows = client.query(backends, &[&schema]).await.unwrap();
        rows.iter()
            .map(|row| i64::from(row.get::<_, i32>(0)))
            .collect()
    };
    check_stopped_loads(&provider, backends).await;
}

/// A fold that holds a load for longer than `statement_timeout` does not cut it off: only the
/// waits for the server count against the limit (the rest of the rows arrive after the fold).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fold_longer_than_statement_timeout_is_not_cut_off() {
    let Some(url) = support::url() else { return };
    let options = PgOptions {
        schema: support::unique_schema(),
        statement_timeout: Duration::from_millis(300),
        ..PgOptions::default()
    };
    let provider = PgProvider::connect_with(&url, options).await.unwrap();
    fill_big(&provider).await;
    check_at_first_event(&provider, tokio::time::sleep(Duration::from_millis(600))).await;
}
