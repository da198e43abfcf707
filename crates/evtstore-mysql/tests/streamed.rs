//! A load alone streams its rows to the fold: a large aggregate is folded as its rows arrive,
//! never held whole in memory, and a fold stopped part way leaves its connection drained and
//! kept, or closed.

mod support;

use std::time::Duration;

use evtstore_core::conformance::streaming::{check_at_first_event, check_stopped_loads, fill_big};

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

/// A fold that stops part way (its visitor's error) with at most `WaitLimit::DRAINED` rows
/// left reads them and keeps its connection; with more left, the connection is closed. The
/// provider's connections are the server's threads on the test's database (but the test's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fold_stopped_part_way_keeps_its_connection_when_little_is_left() {
    let Some(url) = support::url() else { return };
    let (provider, db) = support::fresh(&url).await;
    let conn = tokio::sync::Mutex::new(db.connection().await);
    let threads = || async {
        let threads = "SELECT ID FROM information_schema.PROCESSLIST
            WHERE DB = ? AND ID <> CONNECTION_ID() ORDER BY ID";
        let ids = sqlx::query_scalar(threads).bind(&db.name);
        ids.fetch_all(&mut *conn.lock().await).await.unwrap()
    };
    check_stopped_loads(&*provider, threads).await;
}

/// A fold that holds a load for longer than `statement_timeout` does not cut it off: only the
/// waits for the server count against the limit (the rest of the rows arrive after the fold).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fold_longer_than_statement_timeout_is_not_cut_off() {
    let Some(url) = support::url() else { return };
    let db = support::TestDb::create(&url).await;
    let options = evtstore_mysql::MysqlOptions {
        statement_timeout: Duration::from_millis(300),
        ..evtstore_mysql::MysqlOptions::default()
    };
    let provider = db.provider(options).await;
    fill_big(&*provider).await;
    check_at_first_event(&*provider, tokio::time::sleep(Duration::from_millis(600))).await;
}
