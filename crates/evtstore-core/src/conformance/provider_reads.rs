//! The provider's reads taken directly: events by page, last events, bookmarks.

use std::sync::Arc;

use super::domain::*;
use super::support::{all_events, domain, positions, streams};
use crate::{Error, EventMeta, NewEvent, Provider, SharedStr, StoredEvent};

/// Fills the store: users u1..u3, counter c1 (two events), group g1, interleaved.
async fn fill(provider: &Arc<dyn Provider>) {
    let domain = domain(provider);
    domain
        .execute("u1", CreateUser { name: "ada".into() })
        .await
        .expect("creating u1");
    domain
        .execute("c1", Bump { by: vec![1, 2] })
        .await
        .expect("bumping c1");
    domain
        .execute("u2", CreateUser { name: "bob".into() })
        .await
        .expect("creating u2");
    domain
        .execute("u1", DisableUser)
        .await
        .expect("disabling u1");
    domain
        .execute(
            "g1",
            CreateGroup {
                title: "admins".into(),
            },
        )
        .await
        .expect("creating g1");
    domain
        .execute("u3", CreateUser { name: "cy".into() })
        .await
        .expect("creating u3");
}

/// Reads the streams in pages of `page` events, checking each page's size.
async fn read_paged(
    provider: &Arc<dyn Provider>,
    names: &[&str],
    after: u64,
    page: usize,
) -> Vec<StoredEvent> {
    let (names, mut after, mut read) = (streams(names), after, Vec::new());
    loop {
        let events = provider
            .events(&names, after, page)
            .await
            .expect("reading a page");
        assert!(
            events.len() <= page,
            "a page of {} events over limit {page}",
            events.len()
        );
        let Some(last) = events.last() else {
            return read;
        };
        after = last.meta.position;
        read.extend(events);
    }
}

/// `events` gives the given streams' events after a position, in strictly increasing position
/// order, at most `limit` at a time, and paging through them misses nothing.
pub async fn events_are_read_in_position_order(provider: Arc<dyn Provider>, page: usize) {
    assert!(
        all_events(&provider, &["users"]).await.is_empty(),
        "a fresh store is empty"
    );
    fill(&provider).await;
    let every = all_events(&provider, &["users", "counters", "groups"]).await;
    assert_eq!(every.len(), 7, "all events: {every:?}");
    assert!(
        positions(&every).windows(2).all(|w| w[0] < w[1]),
        "strictly increasing: {every:?}"
    );
    let kinds: Vec<&str> = every.iter().map(|e| e.meta.stream.as_str()).collect();
    let expected = [
        "users", "counters", "counters", "users", "users", "groups", "users",
    ];
    assert_eq!(kinds, expected, "in append order");

    let users = read_paged(&provider, &["users"], 0, page).await;
    let only_users: Vec<_> = every
        .iter()
        .filter(|e| e.meta.stream == "users")
        .cloned()
        .collect();
    assert_eq!(users, only_users, "one stream, paged");
    let two = read_paged(&provider, &["users", "groups"], 0, page).await;
    let only_two: Vec<_> = every
        .iter()
        .filter(|e| e.meta.stream != "counters")
        .cloned()
        .collect();
    assert_eq!(two, only_two, "two streams, paged");
    let after = every[3].meta.position;
    let later = read_paged(&provider, &["users", "counters", "groups"], after, page).await;
    assert_eq!(later, every[4..], "only events after the position");
    let twice = read_paged(&provider, &["users", "users"], 0, page).await;
    assert_eq!(twice, only_users, "a stream named twice, read once");
    // Many streams at once, as a whole store's export names them.
    let empty: Vec<String> = (0..40).map(|n| format!("empty-{n}")).collect();
    let mut many: Vec<&str> = empty.iter().map(String::as_str).collect();
    many.extend(["groups", "users", "counters"]);
    let all = read_paged(&provider, &many, 0, page).await;
    assert_eq!(all, every, "forty-three streams, paged");
    let none = read_paged(&provider, &["posts"], 0, page).await;
    assert!(none.is_empty(), "a stream without events: {none:?}");
}

/// `last_event` gives the last event of the streams, or of one aggregate in them.
pub async fn last_event_of_streams_and_aggregate(provider: Arc<dyn Provider>, _page: usize) {
    let last = |names: &'static [&'static str], id: Option<&'static str>| {
        let provider = provider.clone();
        async move {
            let read = provider.last_event(&streams(names), id).await;
            let read = read.unwrap_or_else(|e| panic!("last event of {names:?} {id:?}: {e}"));
            read.map(|e| {
                (
                    e.meta.stream.into(),
                    e.meta.aggregate_id.into(),
                    e.meta.version,
                )
            })
        }
    };
    assert_eq!(
        last(&["users"], None).await,
        None,
        "an empty store has no last event"
    );
    fill(&provider).await;
    let at = |s: &str, id: &str, v: u64| Some((s.to_owned(), id.to_owned(), v));
    assert_eq!(last(&["users"], None).await, at("users", "u3", 1));
    assert_eq!(last(&["counters"], None).await, at("counters", "c1", 2));
    assert_eq!(
        last(&["counters", "groups"], None).await,
        at("groups", "g1", 1)
    );
    assert_eq!(last(&["users"], Some("u1")).await, at("users", "u1", 2));
    assert_eq!(
        last(&["users", "counters"], Some("c1")).await,
        at("counters", "c1", 2)
    );
    assert_eq!(last(&["users"], Some("c1")).await, None, "c1 is no user");
    assert_eq!(
        last(&["posts"], None).await,
        None,
        "a stream without events"
    );
    let every = all_events(&provider, &["users", "counters", "groups"]).await;
    let newest = provider
        .last_event(&streams(&["users", "counters", "groups"]), None)
        .await;
    assert_eq!(
        newest.expect("last event").as_ref(),
        every.last(),
        "the whole stored event"
    );
}

/// Bookmarks read `None` until set, then the last position set (which may go back, or be 0);
/// names are independent.
pub async fn bookmarks_round_trip(provider: Arc<dyn Provider>, _page: usize) {
    let get = |name: &'static str| {
        let provider = provider.clone();
        async move { provider.bookmark(name).await.expect("reading a bookmark") }
    };
    let set = |name: &'static str, position: u64| {
        let provider = provider.clone();
        async move {
            provider
                .set_bookmark(name, position)
                .await
                .expect("setting a bookmark")
        }
    };
    assert_eq!(get("model").await, None, "never set");
    set("model", 5).await;
    assert_eq!(get("model").await, Some(5));
    set("model", 9).await;
    assert_eq!(get("model").await, Some(9), "overwritten");
    set("model", 3).await;
    assert_eq!(get("model").await, Some(3), "moved back");
    set("model", 0).await;
    assert_eq!(
        get("model").await,
        Some(0),
        "0 is a set bookmark, not an absent one"
    );
    set("read model ü/2", 7).await;
    assert_eq!(get("read model ü/2").await, Some(7), "any text name");
    assert_eq!(get("model").await, Some(0), "names are independent");
    assert_eq!(get("other").await, None);
}

/// `streams` lists the streams that hold events, sorted, each once.
pub async fn streams_lists_the_streams_that_hold_events(provider: Arc<dyn Provider>, _page: usize) {
    let listed = provider.streams().await.expect("list streams");
    assert!(listed.is_empty(), "an empty store has none: {listed:?}");
    let domain = domain(&provider);
    domain
        .execute("u1", CreateUser { name: "ada".into() })
        .await
        .expect("u1");
    domain
        .execute("c1", Bump { by: vec![1, 2] })
        .await
        .expect("c1");
    domain
        .execute("u2", CreateUser { name: "bob".into() })
        .await
        .expect("u2");
    let listed = provider.streams().await.expect("list streams");
    assert_eq!(listed, ["counters", "users"]);
}

/// Loads of many aggregates at once (which providers may read together) each get exactly
/// their own events after the version asked for, in version order.
pub async fn concurrent_loads_get_their_own_events(provider: Arc<dyn Provider>, _page: usize) {
    let domain = domain(&provider);
    for n in 1..=12u64 {
        let by: Vec<i64> = (1..=n as i64).collect();
        domain
            .execute(&format!("load-{n}"), Bump { by })
            .await
            .expect("bump");
    }
    let loads = (1..=12u64).flat_map(|n| {
        let provider = provider.clone();
        [0, n / 2].map(move |after| {
            let provider = provider.clone();
            tokio::spawn(async move {
                let id = format!("load-{n}");
                let events = provider.aggregate_events("counters", &id, after).await;
                (n, after, events.expect("load"))
            })
        })
    });
    for task in loads.collect::<Vec<_>>() {
        let (n, after, events) = task.await.expect("load task");
        let versions: Vec<u64> = events.iter().map(|e| e.meta.version).collect();
        let ids = events
            .iter()
            .filter(|e| e.meta.aggregate_id != format!("load-{n}"));
        assert_eq!(
            ids.count(),
            0,
            "load-{n} after {after} got another's events"
        );
        assert_eq!(
            versions,
            (after + 1..=n).collect::<Vec<_>>(),
            "load-{n} after {after}"
        );
    }
}

/// A fold that stops part way through an aggregate (an event it cannot take) gets its own
/// error and no later event; the store reads on: more stopped folds than a pool holds
/// connections, then a fold that gets every event in version order.
pub async fn a_fold_stopped_part_way_leaves_the_store_readable(
    provider: Arc<dyn Provider>,
    _page: usize,
) {
    const EVENTS: u64 = 2_000;
    for first in (1..=EVENTS).step_by(500) {
        let batch = (first..first + 500)
            .map(|v| NewEvent::new("counters", "long", v, r#"{"type":"Bumped","by":1}"#))
            .collect();
        provider.append(batch).await.expect("appending");
    }
    let (stream, id): (SharedStr, SharedStr) = ("counters".into(), "long".into());
    for _ in 0..20 {
        let mut seen = 0;
        let mut stop_at_ten = |meta: &EventMeta, _: &str| {
            seen += 1;
            match meta.version {
                10 => Err(Error::backend("fold", "stopped here")),
                _ => Ok(()),
            }
        };
        let stopped = provider
            .visit_aggregate(&stream, &id, 0, &mut stop_at_ten)
            .await;
        assert!(
            stopped
                .as_ref()
                .is_err_and(|e| e.to_string().contains("stopped here")),
            "the fold's own error, got {stopped:?}"
        );
        assert_eq!(seen, 10, "no event after the fold's error");
    }
    let mut versions = Vec::new();
    let mut all = |meta: &EventMeta, _: &str| {
        versions.push(meta.version);
        Ok(())
    };
    provider
        .visit_aggregate(&stream, &id, 100, &mut all)
        .await
        .expect("a fold after the stopped ones");
    assert_eq!(versions, (101..=EVENTS).collect::<Vec<_>>());
}
