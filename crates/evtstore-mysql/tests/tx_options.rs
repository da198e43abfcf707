//! The transactional handler's options and hooks on MariaDB (the cases are evtstore-core's
//! `conformance::tx`): continue on error with each failing event rolled back to its savepoint,
//! a failed page rolled back, unknown event types, tailing, hooks.

mod support;

use std::sync::Arc;

use evtstore_core::conformance::tx::TxModel;
use evtstore_core::provider::TxProvider;
use evtstore_core::{BoxError, Position};
use evtstore_mysql::MysqlProvider;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use sqlx::Executor;

/// Table `applied` in the test's own database, one row per write.
struct Applied(support::TestDb);

impl TxModel<MysqlProvider> for Applied {
    fn write<'a>(
        &self,
        conn: <MysqlProvider as TxProvider>::Arg<'a>,
        position: Position,
        fail: bool,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        async move {
            let insert = sqlx::query("INSERT INTO applied (position) VALUES (?)");
            insert.bind(position as i64).execute(&mut *conn).await?;
            if fail {
                conn.execute("SELECT * FROM no_such_table").await?;
            }
            Ok(())
        }
        .boxed()
    }

    fn rows(&self) -> BoxFuture<'_, Vec<Position>> {
        async move {
            let mut conn = self.0.connection().await;
            let sql = "SELECT position FROM applied ORDER BY position";
            let rows: Vec<i64> = sqlx::query_scalar(sql).fetch_all(&mut conn).await.unwrap();
            rows.into_iter().map(|p| p as Position).collect()
        }
        .boxed()
    }

    fn refuse_bookmark_saves(&self, refuse: bool) -> BoxFuture<'_, ()> {
        let sql = match refuse {
            true => "INSERT INTO refuse VALUES (1)",
            false => "DELETE FROM refuse",
        };
        async move {
            self.0.connection().await.execute(sql).await.unwrap();
        }
        .boxed()
    }
}

/// Saves of a bookmark's position fail while table `refuse` holds a row. A page's first step,
/// creating a handler's missing bookmark row (the row it locks), goes through: only an insert
/// that finds the row (a save: `ON DUPLICATE KEY UPDATE`) and an update are refused.
fn refusing_triggers() -> Vec<String> {
    let trigger = |on: &str, and: &str| {
        format!(
            "CREATE TRIGGER refuse_{on} BEFORE {on} ON bookmarks FOR EACH ROW
             BEGIN
               IF (SELECT COUNT(*) FROM refuse) > 0 {and} THEN
                 SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'bookmark save refused';
               END IF;
             END"
        )
    };
    let existing = "AND (SELECT COUNT(*) FROM bookmarks WHERE name = NEW.name) > 0";
    vec![
        "CREATE TABLE refuse (x INT)".to_owned(),
        trigger("INSERT", existing),
        trigger("UPDATE", ""),
    ]
}

async fn make() -> Option<(Arc<MysqlProvider>, Applied)> {
    let (provider, db) = support::fresh(&support::url()?).await;
    let create = "CREATE TABLE applied (position BIGINT NOT NULL)";
    let mut conn = db.connection().await;
    conn.execute(create).await.unwrap();
    for statement in refusing_triggers() {
        conn.execute(statement.as_str()).await.unwrap();
    }
    drop(conn);
    Some((provider, Applied(db)))
}

evtstore_core::tx_conformance_tests!(make);
