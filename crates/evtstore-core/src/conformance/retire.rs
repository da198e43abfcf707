//! Deleting, archiving and crypto-shredding aggregates.

use std::sync::Arc;

use super::domain::*;
use super::support::{all_events, domain, positions, run, streams};
use crate::{CommandError, CommandMeta, Domain, Error, ErrorKind, Handler, Provider, Uuid};

fn secrets_handler(domain: &Domain<Tests>, name: &str, page: usize) -> Handler<SecretsSeen> {
    let handler = domain
        .handler_with(name, SecretsSeen::default())
        .on::<Secret>();
    handler.page_size(page).build().expect("build")
}

/// A deleted aggregate's events are gone, a tombstone takes its next version, handlers are
/// told, and loads and commands fail naming it; other aggregates are untouched.
pub async fn deleted_aggregates_leave_a_tombstone_handlers_see(
    provider: Arc<dyn Provider>,
    page: usize,
) {
    let domain = domain(&provider);
    domain.execute("s1", Note("one")).await.expect("s1");
    domain.execute("s1", Note("two")).await.expect("s1");
    domain.execute("s2", Note("three")).await.expect("s2");
    let handler = secrets_handler(&domain, "secrets-seen", page);
    run(&handler).await;

    let tombstone = domain.delete::<Secret>("s1").await.expect("delete");
    let tombstone = tombstone.expect("s1 had events");
    assert_eq!((tombstone.version, tombstone.revision), (3, 0));
    let error = domain.load::<Secret>("s1").await.expect_err("deleted");
    assert!(matches!(error, Error::Deleted { .. }), "{error}");
    assert!(
        error.to_string().contains("secrets/s1 was deleted"),
        "{error}"
    );
    let refused = domain
        .execute("s1", Note("four"))
        .await
        .expect_err("deleted");
    assert!(
        matches!(refused, CommandError::Store(Error::Deleted { .. })),
        "{refused}"
    );
    let again = domain
        .delete::<Secret>("s1")
        .await
        .expect_err("deleted already");
    assert_eq!(again.kind(), ErrorKind::InvalidInput);
    assert_eq!(domain.delete::<Secret>("nobody").await.expect("none"), None);

    let left = provider
        .aggregate_events("secrets", "s1", 0)
        .await
        .expect("read");
    assert_eq!(left.len(), 1, "only the tombstone is left: {left:?}");
    assert!(!left[0].data.contains("one"), "{left:?}");
    let key = provider
        .aggregate_key("secrets", "s1", false)
        .await
        .expect("key");
    assert!(key.is_none(), "the key went with the events");

    run(&handler).await;
    assert_eq!(
        handler.state().await.deleted,
        ["s1"],
        "the handler was told"
    );
    let fresh = secrets_handler(&domain, "secrets-fresh", page);
    run(&fresh).await;
    let seen = fresh.state().await;
    assert_eq!(
        (seen.notes.clone(), seen.deleted.clone()),
        (vec!["s2: three".into()], vec!["s1".into()])
    );
    let s2 = domain.load::<Secret>("s2").await.expect("s2");
    assert_eq!(s2.state.notes, ["three"]);
}

/// An archived aggregate's events leave the hot table and are read back on demand, across
/// several archivings; commands go on; a deletion takes the archived events too.
pub async fn archived_aggregates_load_on_demand(provider: Arc<dyn Provider>, _page: usize) {
    let domain = domain(&provider);
    let first = CommandMeta::new().command_id(Uuid::now_v7());
    let bump = || Bump { by: vec![1, 2, 3] };
    domain
        .execute_with("c1", bump(), first.clone())
        .await
        .expect("bump");
    let marker = domain.archive::<Counter>("c1").await.expect("archive");
    assert_eq!(marker.expect("had events").version, 4);
    let hot = all_events(&provider, &["counters"]).await;
    assert_eq!(hot.len(), 1, "only the marker stays hot: {hot:?}");

    let loaded = domain.load::<Counter>("c1").await.expect("load");
    assert_eq!(
        (loaded.version, loaded.state.history.clone()),
        (4, vec![1, 2, 3])
    );
    let retried = domain.execute_with("c1", bump(), first.clone()).await;
    let retried = retried.expect("a retry reads the archive");
    assert_eq!(
        (retried.version, retried.state.total),
        (3, 6),
        "as the first execution left it"
    );
    let bumped = domain
        .execute("c1", Bump { by: vec![10] })
        .await
        .expect("bump");
    assert_eq!((bumped.version, bumped.state.total), (5, 16));
    domain
        .archive::<Counter>("c1")
        .await
        .expect("archive again");
    domain
        .execute("c1", Bump { by: vec![100] })
        .await
        .expect("bump");
    let loaded = domain.load::<Counter>("c1").await.expect("load");
    assert_eq!(
        (loaded.version, loaded.state.history),
        (7, vec![1, 2, 3, 10, 100])
    );

    domain.delete::<Counter>("c1").await.expect("delete");
    let gone = domain
        .execute_with("c1", bump(), first)
        .await
        .expect_err("deleted");
    assert!(
        matches!(gone, CommandError::Store(Error::Deleted { .. })),
        "{gone}"
    );
    let archived = provider
        .archived_events("counters", "c1", 0, u64::MAX)
        .await;
    assert!(
        archived.expect("read").is_empty(),
        "deleting takes the archive too"
    );
}

/// Positions only grow: retiring the aggregate that holds the newest events (archiving, then
/// deleting it) frees no position for the next append, so a reader past the newest event
/// still gets the next one.
pub async fn retiring_the_newest_events_frees_no_position(
    provider: Arc<dyn Provider>,
    page: usize,
) {
    let domain = domain(&provider);
    domain
        .execute("older", Bump { by: vec![1] })
        .await
        .expect("bump");
    domain
        .execute("newest", Bump { by: vec![1, 2, 3] })
        .await
        .expect("bump");
    let mut newest = positions(&all_events(&provider, &["counters"]).await)
        .into_iter()
        .max()
        .expect("events");
    let archived = domain.archive::<Counter>("newest").await.expect("archive");
    let deleted = domain.delete::<Counter>("newest").await.expect("delete");
    for marker in [archived, deleted] {
        let position = marker.expect("a marker").position;
        assert!(position > newest, "a marker at {position}, after {newest}");
        newest = position;
    }
    domain
        .execute("older", Bump { by: vec![4] })
        .await
        .expect("bump");
    let names = streams(&["counters"]);
    let next = provider.events(&names, newest, page).await.expect("read");
    let next: Vec<_> = next.iter().map(|e| e.meta.aggregate_id.as_str()).collect();
    assert_eq!(next, ["older"], "the one event after position {newest}");
}

/// A sealed kind's bodies are stored unreadable; with its key shredded, loads and handlers
/// get its events as shredded, and later events take a new key.
pub async fn shredded_events_read_as_shredded_everywhere(provider: Arc<dyn Provider>, page: usize) {
    let domain = domain(&provider);
    domain.execute("s1", Note("my secret")).await.expect("note");
    domain.execute("s1", Note("another")).await.expect("note");
    domain.execute("s2", Note("kept")).await.expect("note");
    let stored = provider
        .aggregate_events("secrets", "s1", 0)
        .await
        .expect("read");
    assert!(
        stored.iter().all(|e| !e.data.contains("secret")),
        "sealed: {stored:?}"
    );
    assert!(
        stored.iter().all(|e| e.data.contains("noted")),
        "the type stays readable"
    );
    let s1 = domain.load::<Secret>("s1").await.expect("load");
    assert_eq!(s1.state.notes, ["my secret", "another"]);
    let caching = Domain::<Tests>::with_provider(provider.clone()).with_aggregate_cache(8);
    let cached = caching.load::<Secret>("s1").await.expect("a cached load");
    assert_eq!(cached.state.notes.len(), 2);

    let snapshot = provider.snapshot("secrets", "s1").await.expect("read");
    assert_eq!(
        snapshot, None,
        "no plain-text snapshot of an encrypted kind"
    );
    let refused = domain
        .save_snapshot::<Secret>("s1")
        .await
        .expect_err("no snapshots");
    assert!(matches!(refused, Error::NotSnapshotted { .. }), "{refused}");
    domain.shred::<Secret>("s1").await.expect("shred");
    let s1 = domain
        .load::<Secret>("s1")
        .await
        .expect("a shredded aggregate loads");
    assert_eq!(
        (s1.version, s1.state.notes.len(), s1.state.shredded),
        (3, 0, 2),
        "two events shredded, and the shredding's marker"
    );
    let cached = caching.load::<Secret>("s1").await.expect("the cached copy");
    assert_eq!(cached.state, s1.state, "a cache elsewhere folds it afresh");
    let s1 = domain
        .execute("s1", Note("after"))
        .await
        .expect("note after");
    assert_eq!(
        (s1.state.notes.clone(), s1.state.shredded),
        (vec!["after".into()], 2)
    );

    let handler = secrets_handler(&domain, "secrets-shredded", page);
    run(&handler).await;
    let seen = handler.state().await;
    assert_eq!(seen.notes, ["s2: kept", "s1: after"]);
    assert_eq!(
        seen.shredded,
        ["s1@1", "s1@2", "s1@3"],
        "the events, and the shredding"
    );
}
