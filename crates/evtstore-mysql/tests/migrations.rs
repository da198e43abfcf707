//! Migrations: processes that start together on an empty database each connect, and the
//! schema is created once; connecting to an up-to-date database changes nothing; configured
//! table names are the ones created and used.

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
    assert_eq!(versions, [("events".to_owned(), 4)]);
    providers[0]
        .append(vec![evtstore_core::NewEvent::new("s", "a", 1, "{}")])
        .await
        .unwrap();
    let again = db.provider(MysqlOptions::default()).await;
    let events = again.events(&["s".into()], 0, 10).await.unwrap();
    assert_eq!(events.len(), 1, "a later start keeps the events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_table_names_are_used() {
    let Some(url) = support::url() else { return };
    let db = support::TestDb::create(&url).await;
    let options = MysqlOptions {
        events_table: "orders_events".into(),
        bookmarks_table: "orders_bookmarks".into(),
        snapshots_table: "orders_snapshots".into(),
        leases_table: "orders_leases".into(),
        ..MysqlOptions::default()
    };
    let provider = db.provider(options).await;
    let event = evtstore_core::NewEvent::new("orders", "o1", 1, "{}");
    let metas = provider.append(vec![event]).await.unwrap();
    assert_eq!(metas[0].position, 1);
    provider.set_bookmark("model", 1).await.unwrap();
    let ttl = std::time::Duration::from_secs(30);
    let lease = provider.acquire_lease("model", "me", ttl).await.unwrap();
    provider
        .set_bookmark_leased(&lease.unwrap(), 1)
        .await
        .unwrap();
    let mut conn = db.connection().await;
    let sql = "SELECT table_name FROM information_schema.tables
               WHERE table_schema = DATABASE() ORDER BY table_name";
    let tables: Vec<String> = sqlx::query_scalar(sql).fetch_all(&mut conn).await.unwrap();
    let expected = [
        "evtstore_migrations",
        "orders_bookmarks",
        "orders_events",
        "orders_events_seq",
        "orders_leases",
        "orders_snapshots",
    ];
    assert_eq!(tables, expected);
}
