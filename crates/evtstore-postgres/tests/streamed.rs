//! A load alone streams its rows to the fold: a large aggregate is folded as its rows arrive,
//! never held whole in memory.

mod support;

use evtstore_core::conformance::streaming::{check_at_first_event, fill_big};
use evtstore_postgres::{PgOptions, PgProvider};
use tokio_postgres::NoTls;

/// While the fold takes the first event, the server is still sending the rest: the statement
/// is still active. (Read whole first, it would have ended.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_alone_is_folded_as_its_rows_arrive() {
    let Some(url) = support::url() else { return };
    let schema = support::unique_schema();
    let options = PgOptions {
        schema: schema.clone(),
        pool_size: 8,
        ..PgOptions::default()
    };
    let provider = PgProvider::connect_with(&url, options).await.unwrap();
    fill_big(&provider).await;
    // A connection of its own: none of the pool's, which the fold's caller may be driving.
    let (client, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
    tokio::spawn(connection);
    let active = check_at_first_event(&provider, async move {
        let active = "SELECT count(*) FROM pg_stat_activity WHERE state = 'active'
            AND query LIKE '%' || $1 || '%' AND query LIKE '%ORDER BY version%'";
        let row = client.query_one(active, &[&schema]).await.unwrap();
        row.get::<_, i64>(0)
    })
    .await;
    assert_eq!(
        active, 1,
        "the load's statement was still sending rows at the first event"
    );
}
