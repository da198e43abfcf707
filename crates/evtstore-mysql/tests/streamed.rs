//! A load alone streams its rows to the fold: a large aggregate is folded as its rows arrive,
//! never held whole in memory.

mod support;

use evtstore_core::conformance::streaming::{check_at_first_event, fill_big};

/// While the fold takes the first event, the server is still sending the rest: the statement
/// is still running. (Read whole first, it would have ended.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_alone_is_folded_as_its_rows_arrive() {
    let Some(url) = support::url() else { return };
    let (provider, db) = support::fresh(&url).await;
    fill_big(&*provider).await;
    let (mut conn, name) = (db.connection().await, db.name.clone());
    let running = check_at_first_event(&*provider, async move {
        let running = "SELECT COUNT(*) FROM information_schema.PROCESSLIST
            WHERE DB = ? AND ID <> CONNECTION_ID() AND INFO LIKE '%ORDER BY version%'
            AND COMMAND IN ('Query', 'Execute')";
        let count: i64 = sqlx::query_scalar(running)
            .bind(name)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        count
    })
    .await;
    assert_eq!(
        running, 1,
        "the load's statement was still sending rows at the first event"
    );
}
