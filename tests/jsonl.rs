//! A store moved as JSON Lines from a SQLite file to PostgreSQL and back to another SQLite
//! file: every field of every event is kept, and an import made twice appends nothing twice.

#[allow(dead_code)] // the commands these tests do not use
#[path = "../examples/bank/domain.rs"]
mod domain;

use std::sync::Arc;

use domain::{Bank, Block, Deposit, OpenAccount, Register, Withdraw};
use evtstore::postgres::PgOptions;
use evtstore::{
    CommandMeta, Domain, NewEvent, PgProvider, Provider, SqliteProvider, StoredEvent, Uuid, jsonl,
};
use serde_json::{Value, json};

/// A bank on a SQLite file, with events of two streams, with and without correlation and
/// causation ids and metadata, and an aggregate of more events than a page.
async fn source(path: &std::path::Path) -> Arc<dyn Provider> {
    let store: Arc<dyn Provider> = Arc::new(SqliteProvider::open(path).unwrap());
    let bank = Domain::<Bank>::with_provider(store.clone());
    let request = Uuid::now_v7();
    let meta = |user: &str| {
        let metadata = json!({ "user": user, "ip": "10.0.0.1", "tags": ["a", "b"] });
        CommandMeta::new()
            .correlation_id(request)
            .metadata(metadata)
    };
    let name = "Ann".to_owned();
    bank.execute_with("ann", Register { name }, meta("alice"))
        .await
        .unwrap();
    let name = "Bob".to_owned();
    bank.execute("bob", Register { name }).await.unwrap();
    let open = OpenAccount::for_customer("ann");
    bank.execute_with("acc-1", open, meta("alice").causation_id(Uuid::now_v7()))
        .await
        .unwrap();
    let by_command = CommandMeta::new().command_id(Uuid::now_v7());
    let deposit = Deposit { amount: 100 };
    bank.execute_with("acc-1", deposit, by_command)
        .await
        .unwrap();
    bank.execute_with("acc-1", Withdraw { amount: 30 }, meta("bob"))
        .await
        .unwrap();
    bank.execute("bob", Block).await.unwrap();
    bank.execute("acc-2", OpenAccount::for_customer("ann"))
        .await
        .unwrap();
    // More events than an export reads in a page, of an older revision, with timestamps of
    // their own.
    let deposits = (2..=1_500).map(|version| {
        let mut event = NewEvent::new(
            "accounts",
            "acc-2",
            version,
            r#"{"type":"deposited","amount":1}"#,
        );
        (event.revision, event.timestamp) = (2, Some(1_600_000_000_000 + version as i64));
        event
    });
    store.append(deposits.collect()).await.unwrap();
    store
}

async fn postgres(url: &str) -> Arc<dyn Provider> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let schema = format!("evt_t_{}_jsonl_{nanos}", std::process::id());
    let options = PgOptions {
        schema,
        ..PgOptions::default()
    };
    Arc::new(PgProvider::connect_with(url, options).await.unwrap())
}

async fn export(store: &dyn Provider) -> Vec<u8> {
    let mut file = Vec::new();
    let done = jsonl::export(store, &[], &mut file, |_| {}).await.unwrap();
    assert!(done.done && done.written == 1_506, "{done:?}");
    file
}

async fn import(store: &dyn Provider, file: &[u8]) -> jsonl::Progress {
    jsonl::import(store, file, |_| {}).await.unwrap()
}

/// Every event of a store, in store order.
async fn events(store: &dyn Provider) -> Vec<StoredEvent> {
    let streams = store.streams().await.unwrap();
    assert_eq!(streams, ["accounts", "customers"]);
    store.events(&streams, 0, 10_000).await.unwrap()
}

/// Compares every field of every event but its position; bodies as JSON (PostgreSQL keeps
/// them as `jsonb`, which spaces and orders keys its own way).
fn assert_same(moved: &[StoredEvent], original: &[StoredEvent]) {
    assert_eq!(moved.len(), original.len());
    for (moved, original) in moved.iter().zip(original) {
        let (a, b) = (&moved.meta, &original.meta);
        assert_eq!(a.stream, b.stream);
        assert_eq!(a.aggregate_id, b.aggregate_id);
        assert_eq!(a.version, b.version);
        assert_eq!(a.timestamp, b.timestamp);
        assert_eq!(a.event_id, b.event_id);
        assert_eq!(a.correlation_id, b.correlation_id);
        assert_eq!(a.causation_id, b.causation_id);
        assert_eq!(a.metadata, b.metadata);
        assert_eq!(a.revision, b.revision);
        let body = |e: &StoredEvent| serde_json::from_str::<Value>(&e.data).unwrap();
        assert_eq!(body(moved), body(original));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_moves_from_sqlite_to_postgres_and_back() {
    let Ok(url) = std::env::var("EVTSTORE_PG_URL") else {
        eprintln!("skipped: EVTSTORE_PG_URL is not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sqlite = source(&dir.path().join("source.db")).await;
    let original = events(&*sqlite).await;
    let filled = |field: fn(&evtstore::EventMeta) -> bool| {
        original.iter().filter(|e| field(&e.meta)).count()
    };
    assert_eq!(filled(|m| m.correlation_id.is_some()), 3);
    assert_eq!(filled(|m| m.causation_id.is_some()), 2);
    assert_eq!(filled(|m| m.metadata.is_some()), 3);
    assert_eq!(filled(|m| m.revision == 2), 1_499);

    let pg = postgres(&url).await;
    let file = export(&*sqlite).await;
    let done = import(&*pg, &file).await;
    assert_eq!((done.written, done.skipped), (1_506, 0));
    assert_same(&events(&*pg).await, &original);
    let again = import(&*pg, &file).await;
    assert_eq!((again.written, again.skipped), (0, 1_506), "nothing twice");

    let back: Arc<dyn Provider> =
        Arc::new(SqliteProvider::open(dir.path().join("back.db")).unwrap());
    import(&*back, &export(&*pg).await).await;
    let moved = events(&*back).await;
    assert_same(&moved, &original);
    let bank = Domain::<Bank>::with_provider(back);
    let account = bank.load::<domain::Account>("acc-1").await.unwrap();
    assert_eq!((account.version, account.state.balance), (3, 70));
}
