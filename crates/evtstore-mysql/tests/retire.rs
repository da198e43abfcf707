//! Deleting, archiving and keys on paths the conformance suite does not take: a retirement
//! is one transaction (a conflicting marker leaves everything as it was), archived events
//! keep their whole envelope and position, even an event numbered only just before, the
//! marker is numbered and signalled like an append, and racing key creators get one key.

mod support;

use std::time::Duration;

use evtstore_core::provider::Retire;
use evtstore_core::{Error, EventMeta, NewEvent, Provider, Snapshot, StoredEvent, Uuid};
use evtstore_mysql::MysqlOptions;
use sqlx::Connection;

fn event(id: &str, version: u64) -> NewEvent {
    let mut event = NewEvent::new("notes", id, version, r#"{"type":"noted"}"#);
    event.correlation_id = Some(Uuid::now_v7());
    event.causation_id = Some(Uuid::now_v7());
    event.metadata = Some(format!(r#"{{"n":{version},"who":"zoë"}}"#).into());
    event.revision = 3;
    event
}

fn marker(id: &str, version: u64, body: &str) -> NewEvent {
    let mut marker = NewEvent::new("notes", id, version, body);
    marker.revision = 0;
    marker
}

const ARCHIVED: &str = r#"{"type":"$archived"}"#;
const DELETED: &str = r#"{"type":"$deleted"}"#;

async fn hot(provider: &dyn Provider) -> Vec<StoredEvent> {
    provider.events(&["notes".into()], 0, 1000).await.unwrap()
}

async fn count(db: &support::TestDb, table: &str) -> i64 {
    let mut conn = db.connection().await;
    let sql = format!("SELECT COUNT(*) FROM {table}");
    sqlx::query_scalar(&sql).fetch_one(&mut conn).await.unwrap()
}

fn snapshot(id: &str, version: u64) -> Snapshot {
    Snapshot {
        stream: "notes".into(),
        aggregate_id: id.into(),
        schema: "v1".into(),
        version,
        position: version,
        state: "{}".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_marker_retires_nothing() {
    let Some(url) = support::url() else { return };
    let (provider, db) = support::fresh(&url).await;
    provider
        .append(vec![event("a", 1), event("a", 2), event("a", 3)])
        .await
        .unwrap();
    provider.save_snapshot(snapshot("a", 3)).await.unwrap();
    provider.aggregate_key("notes", "a", true).await.unwrap();
    let before = hot(&*provider).await;
    for (version, how) in [
        (3, Retire::Delete),
        (3, Retire::Archive),
        (5, Retire::Delete),
        (5, Retire::Archive),
    ] {
        let error = provider
            .retire(marker("a", version, DELETED), how)
            .await
            .unwrap_err();
        assert!(
            matches!(error, Error::VersionConflict { expected, actual: 3, .. } if expected == version - 1),
            "{error}"
        );
        assert_eq!(hot(&*provider).await, before, "nothing retired");
        assert_eq!(count(&db, "events_archive").await, 0);
        assert_eq!(count(&db, "events_keys").await, 1);
        assert!(provider.snapshot("notes", "a").await.unwrap().is_some());
    }
    let error = provider
        .retire(marker("", 1, DELETED), Retire::Delete)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidName { .. }), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archived_events_keep_their_envelopes_and_the_marker_is_numbered() {
    let Some(url) = support::url() else { return };
    let (provider, db) = support::fresh(&url).await;
    provider
        .append(vec![event("a", 1), event("a", 2)])
        .await
        .unwrap();
    provider.append(vec![event("b", 1)]).await.unwrap();
    provider.save_snapshot(snapshot("a", 2)).await.unwrap();
    let before = hot(&*provider).await;
    let mut seen = provider.subscribe();
    seen.borrow_and_update();

    let first = provider
        .retire(marker("a", 3, ARCHIVED), Retire::Archive)
        .await
        .unwrap();
    assert_eq!((first.version, first.position, first.revision), (3, 4, 0));
    assert!(seen.has_changed().unwrap(), "handlers are woken");
    assert_eq!(*seen.borrow_and_update(), 4);
    let archived = provider.archived_events("notes", "a", 0, 3).await.unwrap();
    let a: Vec<StoredEvent> = before
        .iter()
        .filter(|e| e.meta.aggregate_id == "a")
        .cloned()
        .collect();
    assert_eq!(archived, a, "every column kept, positions too");
    let now = hot(&*provider).await;
    let now: Vec<(&str, u64, u64)> = now
        .iter()
        .map(|e| {
            (
                e.meta.aggregate_id.as_str(),
                e.meta.version,
                e.meta.position,
            )
        })
        .collect();
    assert_eq!(now, [("b", 1, 3), ("a", 3, 4)]);
    assert!(
        provider.snapshot("notes", "a").await.unwrap().is_some(),
        "archiving keeps the snapshot"
    );
    let last = provider
        .last_event(&["notes".into()], Some("a"))
        .await
        .unwrap();
    assert_eq!(
        last.map(|e| e.meta),
        Some(first.clone()),
        "read back as returned"
    );

    // Appends go on after the marker; a second archiving takes them and the first marker.
    let appended = provider.append(vec![event("a", 4)]).await.unwrap();
    assert_eq!(appended[0].position, 5);
    provider
        .retire(marker("a", 5, ARCHIVED), Retire::Archive)
        .await
        .unwrap();
    let all = provider
        .archived_events("notes", "a", 0, u64::MAX)
        .await
        .unwrap();
    let versions: Vec<(u64, u64, u32)> = all
        .iter()
        .map(|e| (e.meta.version, e.meta.position, e.meta.revision))
        .collect();
    assert_eq!(versions, [(1, 1, 3), (2, 2, 3), (3, 4, 0), (4, 5, 3)]);
    let between = provider.archived_events("notes", "a", 1, 4).await.unwrap();
    let between: Vec<u64> = between.iter().map(|e| e.meta.version).collect();
    assert_eq!(between, [2, 3], "after < version < before");
    assert!(
        provider
            .archived_events("notes", "b", 0, u64::MAX)
            .await
            .unwrap()
            .is_empty()
    );

    // A deletion takes the archive, the snapshot and the key, of this aggregate only.
    provider.aggregate_key("notes", "a", true).await.unwrap();
    provider.aggregate_key("notes", "b", true).await.unwrap();
    provider.save_snapshot(snapshot("b", 1)).await.unwrap();
    let tombstone = provider
        .retire(marker("a", 6, DELETED), Retire::Delete)
        .await
        .unwrap();
    assert_eq!((tombstone.version, tombstone.position), (6, 7));
    assert_eq!(count(&db, "events_archive").await, 0);
    assert_eq!(
        provider.aggregate_key("notes", "a", false).await.unwrap(),
        None
    );
    assert!(
        provider
            .aggregate_key("notes", "b", false)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(provider.snapshot("notes", "a").await.unwrap(), None);
    assert!(provider.snapshot("notes", "b").await.unwrap().is_some());
    let left = provider.aggregate_events("notes", "a", 0).await.unwrap();
    let left: Vec<EventMeta> = left.into_iter().map(|e| e.meta).collect();
    assert_eq!(left, [tombstone]);
}

/// An event appended in the caller's transaction is committed but waits for a pass (here
/// none runs by itself): archived at once, it is numbered first, and keeps its position.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_not_numbered_yet_is_archived_with_its_position() {
    let Some(url) = support::url() else { return };
    let db = support::TestDb::create(&url).await;
    let options = MysqlOptions {
        sequence_interval: Duration::from_secs(3600),
        ..MysqlOptions::default()
    };
    let provider = db.provider(options).await;
    provider.append(vec![event("a", 1)]).await.unwrap();
    let mut conn = db.connection().await;
    let mut tx = conn.begin().await.unwrap();
    provider
        .append_in(&mut tx, vec![event("a", 2)])
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let marker = provider
        .retire(marker("a", 3, ARCHIVED), Retire::Archive)
        .await
        .unwrap();
    assert_eq!(marker.position, 3);
    let archived = provider.archived_events("notes", "a", 0, 3).await.unwrap();
    let positions: Vec<u64> = archived.iter().map(|e| e.meta.position).collect();
    assert_eq!(positions, [1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_key_creators_get_the_one_stored() {
    let Some(url) = support::url() else { return };
    let (provider, db) = support::fresh(&url).await;
    assert_eq!(
        provider.aggregate_key("notes", "a", false).await.unwrap(),
        None
    );
    for round in 0..5 {
        let id = format!("k{round}");
        let racing = (0..8).map(|_| provider.aggregate_key("notes", &id, true));
        let keys = futures_util::future::join_all(racing).await;
        let keys: Vec<_> = keys.into_iter().map(|k| k.unwrap().unwrap()).collect();
        assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
        assert_eq!(keys[0].secret.len(), 32);
        let stored = provider.aggregate_key("notes", &id, false).await.unwrap();
        assert_eq!(stored.as_ref(), Some(&keys[0]));
    }
    assert_eq!(count(&db, "events_keys").await, 5);

    provider.save_snapshot(snapshot("k0", 1)).await.unwrap();
    provider.forget_key("notes", "k0").await.unwrap();
    assert_eq!(
        provider.aggregate_key("notes", "k0", false).await.unwrap(),
        None
    );
    assert_eq!(
        provider.snapshot("notes", "k0").await.unwrap(),
        None,
        "the snapshot went too"
    );
    let fresh = provider.aggregate_key("notes", "k0", true).await.unwrap();
    assert!(fresh.is_some(), "a new key after shredding");
    provider.forget_key("notes", "nobody").await.unwrap();
}

/// A retirement and an append of the same version race: exactly one of them wins, and the
/// loser changed nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retirement_racing_an_append_is_one_or_the_other() {
    let Some(url) = support::url() else { return };
    let (provider, _db) = support::fresh(&url).await;
    for round in 0..20 {
        let id = format!("r{round}");
        provider
            .append(vec![event(&id, 1), event(&id, 2)])
            .await
            .unwrap();
        let how = if round % 2 == 0 {
            Retire::Archive
        } else {
            Retire::Delete
        };
        let (retired, appended) = tokio::join!(
            provider.retire(marker(&id, 3, ARCHIVED), how),
            provider.append(vec![event(&id, 3)]),
        );
        assert!(
            retired.is_ok() != appended.is_ok(),
            "{retired:?} {appended:?}"
        );
        let events = provider.aggregate_events("notes", &id, 0).await.unwrap();
        let versions: Vec<u64> = events.iter().map(|e| e.meta.version).collect();
        let archived = provider.archived_events("notes", &id, 0, 10).await.unwrap();
        match retired {
            Ok(_) => {
                assert_eq!(versions, [3]);
                assert_eq!(archived.len(), if how == Retire::Archive { 2 } else { 0 });
                assert_eq!(events[0].meta.revision, 0);
            }
            Err(error) => {
                assert!(matches!(error, Error::VersionConflict { .. }), "{error}");
                assert_eq!(versions, [1, 2, 3]);
                assert!(archived.is_empty());
            }
        }
    }
    let all = hot(&*provider).await;
    let positions: Vec<u64> = all.iter().map(|e| e.meta.position).collect();
    let mut sorted = positions.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(positions, sorted, "positions in order, each once");
}
