//! Commands and loads: parity items 1, 2, 7, 8, 9, 10 and 11.

use std::fmt::Debug;
use std::sync::Arc;

use super::domain::*;
use super::support::{all_events, domain, scenario, streams};
use crate::event::now_millis;
use crate::{Aggregate, Contains, Domain, Loaded, Provider};

fn created(name: &str) -> UserEvent {
    UserEvent::Created { name: name.into() }
}

fn added(by: i64, seen_version: u64) -> CounterEvent {
    CounterEvent::Added { by, seen_version }
}

/// Item 1: a command appends an event and returns the aggregate at version 1 with it folded in;
/// the stored event carries its stream, id, version, position, timestamp and a tagged JSON body.
pub async fn command_appends_and_returns_version_1(provider: Arc<dyn Provider>, _page: usize) {
    let user = scenario(&provider)
        .when("u1", CreateUser { name: "ada".into() })
        .then([created("ada")])
        .await;
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
    let user = scenario(&provider)
        .given::<User>("u1", [created("ada")])
        .when("u1", DisableUser)
        .then([UserEvent::Disabled])
        .await;
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

/// Item 7: every command returns the correct new aggregate, including one that reads another
/// aggregate, one that returns no event, and rejected ones (which write nothing).
pub async fn every_command_returns_the_new_aggregate(provider: Arc<dyn Provider>, _page: usize) {
    let domain = domain(&provider);
    let user = scenario(&provider)
        .when("u1", CreateUser { name: "ada".into() })
        .then([created("ada")])
        .await;
    assert_eq!((user.version, user.state.enabled), (1, true));
    same_as_loaded(&domain, &user).await;
    let disable = scenario(&provider).when("u1", DisableUser);
    let user = disable.then([UserEvent::Disabled]).await;
    assert_eq!((user.version, user.state.enabled), (2, false));
    same_as_loaded(&domain, &user).await;
    let enable = scenario(&provider).when("u1", EnableUser);
    let user = enable.then([UserEvent::Enabled]).await;
    assert_eq!(
        (user.version, user.state.enabled, user.state.name.as_str()),
        (3, true, "ada")
    );
    same_as_loaded(&domain, &user).await;

    let create = CreatePost {
        user_id: "u1".into(),
        content: "hello".into(),
    };
    let post_created = PostEvent::PostCreated {
        user_id: "u1".into(),
        content: "hello".into(),
    };
    let post = scenario(&provider)
        .when("p1", create)
        .then([post_created])
        .await;
    let expected = Post {
        user_id: "u1".into(),
        content: "hello".into(),
        archived: false,
    };
    assert_eq!((post.version, &post.state), (1, &expected));
    same_as_loaded(&domain, &post).await;
    let archive_by = |user_id: &str| ArchivePost {
        user_id: user_id.into(),
    };
    let archive = scenario(&provider).when("p1", archive_by("u1"));
    let post = archive.then([PostEvent::PostArchived]).await;
    assert_eq!((post.version, post.state.archived), (2, true));
    same_as_loaded(&domain, &post).await;
    let again = scenario(&provider)
        .when("p1", archive_by("u1"))
        .then([])
        .await;
    assert_eq!(again, post, "a command without events changes nothing");

    let orphan = CreatePost {
        user_id: "nobody".into(),
        content: "x".into(),
    };
    let orphan = scenario(&provider).when("p2", orphan);
    orphan.then_rejected(Refused::Unauthorized).await;
    let by_other = scenario(&provider).when("p1", archive_by("u2"));
    by_other.then_rejected(Refused::NotAllowed).await;
    let create_again = scenario(&provider).when(
        "u1",
        CreateUser {
            name: "again".into(),
        },
    );
    create_again.then_rejected(Refused::Exists).await;
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
    let counter = scenario(&provider)
        .when("c1", Bump { by: vec![5, 7] })
        .then([added(5, 0), added(7, 0)])
        .await;
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

    let nothing = scenario(&provider).when("c1", Bump { by: vec![] });
    let unchanged = nothing.then([]).await;
    assert_eq!(
        unchanged, counter,
        "a command without events returns the aggregate as it was"
    );
    let once = scenario(&provider).when("c1", Bump { by: vec![1] });
    let counter = once.then([added(1, 2)]).await;
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
    for seen_version in 0..3 {
        let bump = scenario(&provider).when("c1", Bump { by: vec![1] });
        bump.then([added(1, seen_version)]).await;
    }
    let twice = scenario(&provider).when("c1", Bump { by: vec![1, 1] });
    let counter = twice.then([added(1, 3), added(1, 3)]).await;
    assert_eq!(
        counter.state.seen_versions,
        [0, 1, 2, 3, 3],
        "versions the commands saw"
    );
    let other = scenario(&provider).when("c2", Bump { by: vec![1] });
    let other = other.then([added(1, 0)]).await;
    assert_eq!(
        other.state.seen_versions,
        [0],
        "another aggregate starts at version 0"
    );
}
