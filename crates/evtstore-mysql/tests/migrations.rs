//! Migrations: processes that start together on an empty database each connect, and the
//! schema is created once; connecting to an up-to-date database changes nothing; configured
//! table names are the ones created and used; events stored before the envelope get one; a
//! migration that replaces the procedures fails no append running meanwhile.

mod support;

use evtstore_core::provider::Retire;
use evtstore_core::{Error, EventMeta, NewEvent, Provider, Uuid};
use evtstore_mysql::MysqlOptions;
use sqlx::MySqlConnection;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The schema version of this release: the number of migrations.
const LATEST: i32 = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_starting_together_migrate_once() {
    let Some(url) = support::url() else { return };
    let db = support::TestDb::create(&url).await;
    let starts = (0..6).map(|_| db.provider(MysqlOptions::default()));
    let providers = futures_util::future::join_all(starts).await;
    let mut conn = db.connection().await;
    let sql = "SELECT events_table, version FROM evtstore_migrations";
    let versions: Vec<(String, i32)> = sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap();
    assert_eq!(versions, [("events".to_owned(), LATEST)]);
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
        commands_table: Some("orders_commands".into()),
        archive_table: Some("orders_archive".into()),
        keys_table: Some("orders_keys".into()),
        ..MysqlOptions::default()
    };
    let provider = db.provider(options).await;
    let mut event = NewEvent::new("orders", "o1", 1, "{}");
    let command_id = Uuid::now_v7();
    event.command_id = Some(command_id);
    let metas = provider.append(vec![event]).await.unwrap();
    assert_eq!(metas[0].position, 1);
    let record = provider.command(command_id).await.unwrap();
    assert_eq!(record.map(|r| r.version), Some(1));
    provider.set_bookmark("model", 1).await.unwrap();
    let ttl = std::time::Duration::from_secs(30);
    let lease = provider.acquire_lease("model", "me", ttl).await.unwrap();
    provider
        .set_bookmark_leased(&lease.unwrap(), 1)
        .await
        .unwrap();
    provider
        .append(vec![NewEvent::new("orders", "o1", 2, "{}")])
        .await
        .unwrap();
    let mut marker = NewEvent::new("orders", "o1", 3, r#"{"type":"$archived"}"#);
    marker.revision = 0;
    provider.retire(marker, Retire::Archive).await.unwrap();
    let archived = provider
        .archived_events("orders", "o1", 0, 3)
        .await
        .unwrap();
    assert_eq!(archived.len(), 2);
    let key = provider.aggregate_key("orders", "o1", true).await.unwrap();
    assert!(key.is_some());
    let mut conn = db.connection().await;
    let sql = "SELECT table_name FROM information_schema.tables
               WHERE table_schema = DATABASE() ORDER BY table_name";
    let tables: Vec<String> = sqlx::query_scalar(sql).fetch_all(&mut conn).await.unwrap();
    let expected = [
        "evtstore_migrations",
        "orders_archive",
        "orders_bookmarks",
        "orders_commands",
        "orders_events",
        "orders_events_seq",
        "orders_keys",
        "orders_leases",
        "orders_snapshots",
    ];
    assert_eq!(tables, expected);
    let rows = "SELECT (SELECT COUNT(*) FROM orders_archive), (SELECT COUNT(*) FROM orders_keys)";
    let rows: (i64, i64) = sqlx::query_as(rows).fetch_one(&mut conn).await.unwrap();
    assert_eq!(
        rows,
        (2, 1),
        "the configured archive and keys tables hold them"
    );
}

/// A rolling deploy: while one process appends, others start and run the migrations that
/// replace the append and pass procedures (as a newer version's would). No append fails:
/// each call finds the old procedure or the new one, never none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_the_procedures_fails_no_running_append() {
    let Some(url) = support::url() else { return };
    let db = support::TestDb::create(&url).await;
    let running = db.provider(MysqlOptions::default()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let appends = tokio::spawn({
        let (running, stop, done) = (running.clone(), stop.clone(), done.clone());
        async move {
            while !stop.load(Ordering::Relaxed) {
                let version = done.load(Ordering::Relaxed) + 1;
                let event = NewEvent::new("users", "u1", version, "{}");
                let appended = running.append(vec![event]).await;
                appended.unwrap_or_else(|e| panic!("append of version {version}: {e}"));
                done.store(version, Ordering::Relaxed);
            }
        }
    });
    let mut conn = db.connection().await;
    while done.load(Ordering::Relaxed) == 0 {
        tokio::task::yield_now().await;
    }
    let before = done.load(Ordering::Relaxed);
    for _ in 0..30 {
        // Back to before the migrations that make the procedures (2, 4, 5, 7, 8, 9): a starting
        // process runs them again.
        run(&mut conn, &["UPDATE evtstore_migrations SET version = 1"]).await;
        drop(db.provider(MysqlOptions::default()).await);
        assert_eq!(schema_version(&mut conn).await, LATEST);
    }
    let during = done.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    appends.await.expect("no append failed");
    assert!(
        during >= 30,
        "only {during} appends ran during the migrations"
    );
    let events = running.events(&["users".into()], 0, 100_000).await.unwrap();
    let appended = done.load(Ordering::Relaxed);
    assert_eq!(events.len() as u64, appended, "every append stored once");
}

/// The schema version of the store of `events`.
async fn schema_version(conn: &mut MySqlConnection) -> i32 {
    let sql = "SELECT version FROM evtstore_migrations WHERE events_table = 'events'";
    sqlx::query_scalar(sql).fetch_one(conn).await.unwrap()
}

/// Runs statements one by one.
async fn run(conn: &mut MySqlConnection, statements: &[&str]) {
    for statement in statements {
        let done = sqlx::raw_sql(statement).execute(&mut *conn).await;
        done.unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
}

/// The events of stream `users`, read as a handler reads them.
async fn users(provider: &dyn Provider) -> Vec<evtstore_core::StoredEvent> {
    provider.events(&["users".into()], 0, 100).await.unwrap()
}

/// A store at schema version 4, before the envelope, holding rows as version 4 wrote them
/// (positioned, and one committed but not numbered yet), is migrated when a provider opens
/// it: every old event gets its own UUID v7 made of its timestamp, revision 1 and no
/// correlation, causation or metadata; appends of every kind work. A migration run again
/// (one that stopped part way) changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stored_before_the_envelope_get_one() {
    let Some(url) = support::url() else { return };
    let db = support::TestDb::create(&url).await;
    // Version 4's schema: a store made now, less what version 5 added; its append procedure
    // one that fails, so that appends work only if the migration makes it again.
    drop(db.provider(MysqlOptions::default()).await);
    let mut conn = db.connection().await;
    run(
        &mut conn,
        &[
            "ALTER TABLE events DROP COLUMN event_id, DROP COLUMN correlation_id,
             DROP COLUMN causation_id, DROP COLUMN metadata, DROP COLUMN revision",
            "DROP TABLE events_commands",
            "DROP PROCEDURE events_add",
            "CREATE PROCEDURE events_add()
             SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'the append of version 4'",
            "UPDATE evtstore_migrations SET version = 4",
        ],
    )
    .await;
    let columns = "SELECT column_name FROM information_schema.columns
                   WHERE table_schema = DATABASE() AND table_name = 'events'
                   ORDER BY ordinal_position";
    let old: Vec<String> = sqlx::query_scalar(columns)
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let v4 = [
        "id",
        "position",
        "stream",
        "aggregate_id",
        "version",
        "timestamp_ms",
        "data",
    ];
    assert_eq!(old, v4, "version 4's events table");
    run(
        &mut conn,
        &[
            r#"INSERT INTO events (position, stream, aggregate_id, version, timestamp_ms, data)
               VALUES (1, 'users', 'u1', 1, 1600000000000, '{"type":"created","name":"ada"}'),
                      (2, 'users', 'u1', 2, 1600000000000, '{"type":"renamed","name":"eve"}'),
                      (3, 'users', 'u2', 1, 1600000000001, '{"type":"created","name":"bob"}'),
                      (NULL, 'users', 'u2', 2, 1600000000002, '{"type":"renamed","name":"al"}')"#,
            "UPDATE events_seq SET last = 3",
        ],
    )
    .await;

    let provider = db.provider(MysqlOptions::default()).await;
    assert_eq!(schema_version(&mut conn).await, LATEST);
    assert_eq!(
        provider.sequence().await.unwrap(),
        4,
        "the waiting row numbered"
    );
    let migrated = users(&*provider).await;
    let found: Vec<(&str, u64, u64, i64)> = migrated
        .iter()
        .map(|e| {
            let m = &e.meta;
            (m.aggregate_id.as_str(), m.version, m.position, m.timestamp)
        })
        .collect();
    let expected = [
        ("u1", 1, 1, 1_600_000_000_000),
        ("u1", 2, 2, 1_600_000_000_000),
        ("u2", 1, 3, 1_600_000_000_001),
        ("u2", 2, 4, 1_600_000_000_002),
    ];
    assert_eq!(found, expected, "the old rows, as they were");
    // Distinct ids, two of them of the same millisecond.
    evtstore_core::conformance::assert_migrated_envelopes(&migrated);
    let u1 = provider.aggregate_events("users", "u1", 0).await.unwrap();
    assert_eq!(
        u1,
        migrated[..2],
        "an aggregate's read gives the same envelopes"
    );
    let nullable = "SELECT is_nullable FROM information_schema.columns
                    WHERE table_schema = DATABASE() AND table_name = 'events'
                      AND column_name = 'event_id'";
    let nullable: String = sqlx::query_scalar(nullable)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(nullable, "NO", "event_id is NOT NULL");

    // Appends: one event and several (the procedure's two paths), and one with a command id.
    let mut one = NewEvent::new("users", "u1", 3, r#"{"type":"renamed","name":"cy"}"#);
    one.correlation_id = Some(Uuid::now_v7());
    one.metadata = Some(r#"{"by":"migration test"}"#.into());
    let mut several = vec![
        NewEvent::new("users", "u2", 3, r#"{"type":"renamed","name":"di"}"#),
        NewEvent::new("users", "u3", 1, r#"{"type":"created","name":"ed"}"#),
    ];
    several[1].causation_id = Some(one.event_id);
    several[1].revision = 2;
    let command_id = Uuid::now_v7();
    let mut command = NewEvent::new("users", "u1", 4, r#"{"type":"renamed","name":"fa"}"#);
    command.command_id = Some(command_id);
    let mut appended: Vec<EventMeta> = provider.append(vec![one]).await.unwrap();
    appended.extend(provider.append(several).await.unwrap());
    appended.extend(provider.append(vec![command.clone()]).await.unwrap());
    let positions: Vec<u64> = appended.iter().map(|m| m.position).collect();
    assert_eq!(positions, [5, 6, 7, 8]);
    let read: Vec<EventMeta> = users(&*provider).await[4..]
        .iter()
        .map(|e| e.meta.clone())
        .collect();
    assert_eq!(
        read, appended,
        "the appends read back as they were returned"
    );
    let record = provider
        .command(command_id)
        .await
        .unwrap()
        .expect("recorded");
    assert_eq!((record.aggregate_id.as_str(), record.version), ("u1", 4));
    command.version = 5;
    let again = provider.append(vec![command]).await.unwrap_err();
    assert!(
        matches!(again, Error::DuplicateCommand { command_id: id } if id == command_id),
        "{again}"
    );

    // Run again, as after a start that stopped part way: nothing changes.
    drop(provider);
    run(&mut conn, &["UPDATE evtstore_migrations SET version = 4"]).await;
    let provider = db.provider(MysqlOptions::default()).await;
    assert_eq!(schema_version(&mut conn).await, LATEST);
    let before: Vec<EventMeta> = migrated.iter().map(|e| e.meta.clone()).collect();
    let after: Vec<EventMeta> = users(&*provider).await[..4]
        .iter()
        .map(|e| e.meta.clone())
        .collect();
    assert_eq!(after, before, "the ids given once are kept");
}

/// A store at schema version 5, before the archive and keys tables, gets them when a provider
/// opens it; its events are kept, and archiving, keys and deleting work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_of_version_5_gets_the_archive_and_keys_tables() {
    let Some(url) = support::url() else { return };
    let db = support::TestDb::create(&url).await;
    let provider = db.provider(MysqlOptions::default()).await;
    let events = vec![
        NewEvent::new("users", "u1", 1, r#"{"type":"created","name":"ada"}"#),
        NewEvent::new("users", "u1", 2, r#"{"type":"renamed","name":"eve"}"#),
    ];
    let appended = provider.append(events).await.unwrap();
    drop(provider);
    let mut conn = db.connection().await;
    run(
        &mut conn,
        &[
            "DROP TABLE events_archive",
            "DROP TABLE events_keys",
            "UPDATE evtstore_migrations SET version = 5",
        ],
    )
    .await;

    let provider = db.provider(MysqlOptions::default()).await;
    assert_eq!(schema_version(&mut conn).await, LATEST);
    let kept: Vec<EventMeta> = users(&*provider)
        .await
        .into_iter()
        .map(|e| e.meta)
        .collect();
    assert_eq!(kept, appended, "the events are kept");
    let mut marker = NewEvent::new("users", "u1", 3, r#"{"type":"$archived"}"#);
    marker.revision = 0;
    let marker = provider.retire(marker, Retire::Archive).await.unwrap();
    assert_eq!((marker.version, marker.position), (3, 3));
    let archived = provider.archived_events("users", "u1", 0, 3).await.unwrap();
    let archived: Vec<EventMeta> = archived.into_iter().map(|e| e.meta).collect();
    assert_eq!(archived, appended, "archived as they were");
    let key = provider.aggregate_key("users", "u1", true).await.unwrap();
    assert_eq!(
        provider.aggregate_key("users", "u1", false).await.unwrap(),
        key
    );
    let mut tombstone = NewEvent::new("users", "u1", 4, r#"{"type":"$deleted"}"#);
    tombstone.revision = 0;
    provider.retire(tombstone, Retire::Delete).await.unwrap();
    let left = "SELECT (SELECT COUNT(*) FROM events), (SELECT COUNT(*) FROM events_archive),
                (SELECT COUNT(*) FROM events_keys)";
    let left: (i64, i64, i64) = sqlx::query_as(left).fetch_one(&mut conn).await.unwrap();
    assert_eq!(left, (1, 0, 0), "only the tombstone is left");
}
