//! Migrations: processes that start together on an empty database each connect, and the
//! schema is created once; connecting to an up-to-date database changes nothing.

mod support;

use evtstore_core::Provider;
use evtstore_mysql::MysqlOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_starting_together_migrate_once() {
    let Some(url) = support::url() else { return };
    let db = support::TestDb::create(&url).await;
    let starts = (0..6).map(|_| db.provider(MysqlOptions::default()));
    let providers = futures_util::future::join_all(starts).await;
    let mut conn = db.connection().await;
    let sql = "SELECT events_table, version FROM evtstore_migrations";
    let versions: Vec<(String, i32)> = sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap();
    assert_eq!(versions, [("events".to_owned(), 1)]);
    providers[0]
        .append(vec![evtstore_core::NewEvent {
            stream: "s".into(),
            aggregate_id: "a".into(),
            version: 1,
            data: "{}".into(),
        }])
        .await
        .unwrap();
    let again = db.provider(MysqlOptions::default()).await;
    let events = again.events(&["s".into()], 0, 10).await.unwrap();
    assert_eq!(events.len(), 1, "a later start keeps the events");
}
