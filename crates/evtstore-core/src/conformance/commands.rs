//! Commands and loads: parity items 1, 2, 7, 8, 9, 10 and 11.

use std::fmt::Debug;
use std::sync::Arc;

use super::domain::*;
use super::support::{all_events, domain, streams};
use crate::event::now_millis;
use crate::{Aggregate, CommandError, Contains, Domain, Loaded, Provider};

/// Item 1: a command appends an event and returns the aggregate at version 1 with it folded in;
/// the stored event carries its stream, id, version, position, timestamp and a tagged JSON body.
pub async fn command_appends_and_returns_version_1(provider: Arc<dyn Provider>, _page: usize) {
    let domain = domain(&provider);
    let user = domain
        .execute("u1", CreateUser { name: "ada".into() })
        .await;
    let user = user.expect("creating user u1");
    assert_eq!(
        (user.id.as_str(), user.version),
        ("u1", 1),
        "a first command gives version 1"
    );
    assert_eq!(
        user.state,
        User {
            name: "ada".into(),
            enabled: true
        },
        "the event is folded in"
    );

    let stored = provider
        .aggregate_events("users", "u1", 0)
        .await
        .expect("reading u1");
    assert_eq!(stored.len(), 1, "one event stored: {stored:?}");
    let meta = &stored[0].meta;
    assert_eq!(
        (
            meta.stream.as_str(),
            meta.aggregate_id.as_str(),
            meta.version
        ),
        ("users", "u1", 1)
    );
    assert!(meta.position > 0, "positions start above 0: {meta:?}");
    assert_eq!(
        user.position, meta.position,
        "the aggregate carries its event's position"
    );
    let age = (now_millis() - meta.timestamp).abs();
    assert!(
        age < 600_000,
        "timestamp {} is not about now (ms since epoch)",
        meta.timestamp
    );
    let body: serde_json::Value = serde_json::from_str(&stored[0].data).expect("body is JSON");
    assert_eq!(
        body,
        serde_json::json!({"type": "created", "name": "ada"}),
        "stored body"
    );

    let last = provider.last_event(&streams(&["users"]), Some("u1")).await;
    assert_eq!(
        last.expect("reading the last event").as_ref(),
        Some(&stored[0])
    );
}

/// Item 2: a second command on the aggregate returns version 2.
pub async fn second_command_returns_version_2(provider: Arc<dyn Provider>, _page: usize) {
    let domain = domain(&provider);
    domain
        .execute("u1", CreateUser { name: "ada".into() })
        .await
        .expect("creating u1");
    let user = domain
        .execute("u1", DisableUser)
        .await
        .expect("disabling u1");
    assert_eq!(user.version, 2, "a second command gives version 2");
    assert!(
        !user.state.enabled,
        "the second event is folded in: {user:?}"
    );
    let stored = provider
        .aggregate_events("users", "u1", 0)
        .await
        .expect("reading u1");
    let versions: Vec<u64> = stored.iter().map(|e| e.meta.version).collect();
    assert_eq!(versions, [1, 2], "stored versions");
    assert!(
        stored[0].meta.position < stored[1].meta.position,
        "positions increase: {stored:?}"
    );
    let after_first = provider
        .aggregate_events("users", "u1", 1)
        .await
        .expect("reading u1 after 1");
    assert_eq!(
        after_first,
        stored[1..],
        "reading after version 1 gives only version 2"
    );
}

/// Asserts that a command's result is what a fresh load gives.
async fn same_as_loaded<A>(domain: &Domain<Tests>, returned: &Loaded<A>)
where
    A: Aggregate + PartialEq + Debug,
    Tests: Contains<A>,
{
    let loaded = domain.load::<A>(&returned.id).await;
    let loaded = loaded.unwrap_or_else(|e| panic!("loading {}/{}: {e}", A::STREAM, returned.id));
    assert_eq!(
        &loaded, returned,
        "a command returns what a load then gives"
    );
}

/// Asserts that a command was rejected with the command's own error.
fn assert_rejected<T: Debug>(outcome: Result<T, CommandError<Refused>>, expected: Refused) {
    let error = outcome.expect_err("the command must be rejected");
    let rejection = error.rejection();
    let rejection = rejection.unwrap_or_else(|| panic!("expected a rejection, got {error}"));
    assert_eq!(rejection, &expected, "rejection {error}");
}

/// Item 7: every command returns the correct new aggregate, including one that reads another
/// aggregate, one that returns no event, and rejected ones (which write nothing).
pub async fn every_command_returns_the_new_aggregate(provider: Arc<dyn Provider>, _page: usize) {
    let domain = domain(&provider);
    let user = domain
        .execute("u1", CreateUser { name: "ada".into() })
        .await
        .expect("create");
    assert_eq!((user.version, user.state.enabled), (1, true));
    same_as_loaded(&domain, &user).await;
    let user = domain.execute("u1", DisableUser).await.expect("disable");
    assert_eq!((user.version, user.state.enabled), (2, false));
    same_as_loaded(&domain, &user).await;
    let user = domain.execute("u1", EnableUser).await.expect("enable");
    assert_eq!(
        (user.version, user.state.enabled, user.state.name.as_str()),
        (3, true, "ada")
    );
    same_as_loaded(&domain, &user).await;

    let create = CreatePost {
        user_id: "u1".into(),
        content: "hello".into(),
    };
    let post = domain.execute("p1", create).await.expect("create post");
    let expected = Post {
        user_id: "u1".into(),
        content: "hello".into(),
        archived: false,
    };
    assert_eq!((post.version, &post.state), (1, &expected));
    same_as_loaded(&domain, &post).await;
    let post = domain
        .execute(
            "p1",
            ArchivePost {
                user_id: "u1".into(),
            },
        )
        .await;
    let post = post.expect("archive post");
    assert_eq!((post.version, post.state.archived), (2, true));
    same_as_loaded(&domain, &post).await;
    let again = domain
        .execute(
            "p1",
            ArchivePost {
                user_id: "u1".into(),
            },
        )
        .await;
    assert_eq!(
        again.expect("archive again"),
        post,
        "a command without events changes nothing"
    );

    let orphan = CreatePost {
        user_id: "nobody".into(),
        content: "x".into(),
    };
    assert_rejected(domain.execute("p2", orphan).await, Refused::Unauthorized);
    assert_rejected(
        domain
            .execute(
                "p1",
                ArchivePost {
                    user_id: "u2".into(),
                },
            )
            .await,
        Refused::NotAllowed,
    );
    assert_rejected(
        domain
            .execute(
                "u1",
                CreateUser {
                    name: "again".into(),
                },
            )
            .await,
        Refused::Exists,
    );
    let stored = all_events(&provider, &["users", "posts"]).await;
    assert_eq!(
        stored.len(),
        5,
        "rejected commands write nothing: {stored:?}"
    );
}

/// Item 8: a command that returns two events advances the version by two and folds both in order;
/// one that returns none changes nothing.
pub async fn two_events_advance_the_version_by_two(provider: Arc<dyn Provider>, _page: usize) {
    let domain = domain(&provider);
    let counter = domain
        .execute("c1", Bump { by: vec![5, 7] })
        .await
        .expect("bump twice");
    assert_eq!(counter.version, 2, "two events advance the version by two");
    assert_eq!(
        (counter.state.total, &counter.state.history[..]),
        (12, &[5, 7][..]),
        "folded in order"
    );
    let stored = provider
        .aggregate_events("counters", "c1", 0)
        .await
        .expect("reading c1");
    let versions: Vec<u64> = stored.iter().map(|e| e.meta.version).collect();
    assert_eq!(versions, [1, 2], "stored versions");
    assert!(
        stored[0].meta.position < stored[1].meta.position,
        "in position order: {stored:?}"
    );
    assert_eq!(
        counter.position, stored[1].meta.position,
        "the aggregate is at its last event"
    );

    let unchanged = domain
        .execute("c1", Bump { by: vec![] })
        .await
        .expect("bump by nothing");
    assert_eq!(
        unchanged, counter,
        "a command without events returns the aggregate as it was"
    );
    let counter = domain
        .execute("c1", Bump { by: vec![1] })
        .await
        .expect("bump once");
    assert_eq!(
        (counter.version, &counter.state.history[..]),
        (3, &[5, 7, 1][..])
    );
    assert_eq!(
        all_events(&provider, &["counters"]).await.len(),
        3,
        "three events stored"
    );
}

/// Item 9: a loaded aggregate executes a command and hands back the next one, which chains;
/// a stale aggregate in a chain fails with a version conflict.
pub async fn loaded_aggregate_chains_commands(provider: Arc<dyn Provider>, _page: usize) {
    let domain = domain(&provider);
    let start = domain.load::<Counter>("c1").await.expect("loading c1");
    let first = domain
        .execute_on(start.clone(), Bump { by: vec![1] })
        .await
        .expect("first");
    let second = domain
        .execute_on(first.clone(), Bump { by: vec![2, 3] })
        .await;
    let second = second.expect("second, chained on the first");
    assert_eq!(
        (second.version, &second.state.history[..]),
        (3, &[1, 2, 3][..])
    );
    same_as_loaded(&domain, &second).await;

    let stale = domain.execute_on(first, Bump { by: vec![9] }).await;
    let error = stale.expect_err("a chain on a stale aggregate must fail");
    assert!(
        error.is_conflict(),
        "expected a version conflict, got {error}"
    );
    let stale = domain.execute_on(start, Bump { by: vec![9] }).await;
    assert!(
        stale.is_err_and(|e| e.is_conflict()),
        "version 0 is stale too"
    );
    same_as_loaded(&domain, &second).await;
}

/// Item 10: an aggregate without events loads as the initial state at version 0.
pub async fn missing_aggregate_loads_at_version_0(provider: Arc<dyn Provider>, _page: usize) {
    let domain = domain(&provider);
    domain
        .execute("u1", CreateUser { name: "ada".into() })
        .await
        .expect("creating u1");
    let user = domain
        .load::<User>("nobody")
        .await
        .expect("loading a missing user");
    assert_eq!(
        user,
        Loaded::new("nobody"),
        "a missing user is the initial state at version 0"
    );
    let counter = domain
        .load::<Counter>("u1")
        .await
        .expect("loading a missing counter");
    assert_eq!(
        counter,
        Loaded::new("u1"),
        "an id is per stream: counter u1 has no events"
    );
    let profile = domain
        .load::<Profile>("nobody")
        .await
        .expect("loading a missing profile");
    assert_eq!(
        profile,
        Loaded::new("nobody"),
        "a missing snapshotted aggregate too"
    );
    assert_eq!(profile.position, 0);
}

/// Item 11: a command handler sees the aggregate's current, non-zero version.
pub async fn command_sees_the_current_version(provider: Arc<dyn Provider>, _page: usize) {
    let domain = domain(&provider);
    for _ in 0..3 {
        domain
            .execute("c1", Bump { by: vec![1] })
            .await
            .expect("bumping c1");
    }
    let counter = domain
        .execute("c1", Bump { by: vec![1, 1] })
        .await
        .expect("bumping twice");
    assert_eq!(
        counter.state.seen_versions,
        [0, 1, 2, 3, 3],
        "versions the commands saw"
    );
    let other = domain
        .execute("c2", Bump { by: vec![1] })
        .await
        .expect("bumping c2");
    assert_eq!(
        other.state.seen_versions,
        [0],
        "another aggregate starts at version 0"
    );
}
