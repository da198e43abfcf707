//! Event handlers reading events: parity items 3, 4, 5, 12, 13 and 17.

use std::collections::HashMap;
use std::sync::Arc;

use super::domain::*;
use super::support::{Log, all_events, bookmark, domain, positions, run};
use crate::{Aggregate, BoxError, Domain, EventMeta, Handler, Handles, Provider};

/// A read model of users, as a handler's own state: each user's view and how many events
/// made it.
#[derive(Default)]
struct UserModel(HashMap<String, (User, usize)>);

impl Handles<User> for UserModel {
    async fn handle(&mut self, event: &UserEvent, meta: &EventMeta) -> Result<(), BoxError> {
        let (user, count) = self.0.entry(meta.aggregate_id.to_string()).or_default();
        user.fold(event, meta);
        *count += 1;
        Ok(())
    }
}

fn users_model(domain: &Domain<Tests>, name: &str, page: usize) -> Handler<UserModel> {
    let builder = domain.handler_with(name, UserModel::default());
    let builder = builder.page_size(page).on::<User>();
    builder.build().expect("building the users model")
}

/// A user's view in the model and how many events made it.
async fn model_entry(handler: &Handler<UserModel>, id: &str) -> Option<(User, usize)> {
    handler.state().await.0.get(id).cloned()
}

fn user(name: &str, enabled: bool) -> User {
    User {
        name: name.into(),
        enabled,
    }
}

/// Item 3: a handler's `run_once` updates a read model from the events, and saves its bookmark
/// at the last event.
pub async fn handler_updates_read_model(provider: Arc<dyn Provider>, page: usize) {
    let domain = domain(&provider);
    domain
        .execute("u1", CreateUser { name: "ada".into() })
        .await
        .expect("creating u1");
    domain
        .execute("u1", DisableUser)
        .await
        .expect("disabling u1");
    domain
        .execute("u2", CreateUser { name: "bob".into() })
        .await
        .expect("creating u2");
    let handler = users_model(&domain, "users-model", page);
    assert_eq!(run(&handler).await, 3, "three events handled");
    assert_eq!(
        model_entry(&handler, "u1").await,
        Some((user("ada", false), 2)),
        "u1 in the read model"
    );
    assert_eq!(
        model_entry(&handler, "u2").await,
        Some((user("bob", true), 1)),
        "u2 in the read model"
    );
    let last = all_events(&provider, &["users"])
        .await
        .last()
        .map(|e| e.meta.position);
    assert_eq!(
        bookmark(&provider, "users-model").await,
        last,
        "bookmark at the last event"
    );
    assert_eq!(
        handler.position().await.expect("position"),
        last.unwrap_or_default()
    );
}

/// Item 4: a second aggregate id is independent; the first aggregate and its read model are
/// unaffected, and the read model counts each event exactly once across several runs.
pub async fn second_aggregate_is_independent(provider: Arc<dyn Provider>, page: usize) {
    let domain = domain(&provider);
    let handler = users_model(&domain, "users-model", page);
    domain
        .execute("u1", CreateUser { name: "ada".into() })
        .await
        .expect("creating u1");
    assert_eq!(run(&handler).await, 1);
    domain
        .execute("u2", CreateUser { name: "bob".into() })
        .await
        .expect("creating u2");
    domain
        .execute("u2", DisableUser)
        .await
        .expect("disabling u2");
    assert_eq!(run(&handler).await, 2, "only the two new events");
    assert_eq!(run(&handler).await, 0, "nothing is pending");
    let u2 = domain.execute("u2", EnableUser).await.expect("enabling u2");
    assert_eq!(run(&handler).await, 1, "only the new event");

    let u1 = domain.load::<User>("u1").await.expect("loading u1");
    assert_eq!(
        (u1.version, &u1.state),
        (1, &user("ada", true)),
        "u1 is unaffected"
    );
    assert_eq!((u2.version, &u2.state), (3, &user("bob", true)));
    assert_eq!(
        model_entry(&handler, "u1").await,
        Some((user("ada", true), 1)),
        "u1 counted once"
    );
    assert_eq!(
        model_entry(&handler, "u2").await,
        Some((user("bob", true), 3)),
        "u2's events counted once each"
    );
    assert_eq!(handler.state().await.0.len(), 2);
}

/// Item 5: a bookmark that was never set reads as the start of history, and a bookmark set to 0
/// is set (a `tail_stream` handler does not move it to the end).
pub async fn unset_bookmark_reads_as_start(provider: Arc<dyn Provider>, page: usize) {
    let domain = domain(&provider);
    assert_eq!(
        bookmark(&provider, "fresh").await,
        None,
        "a bookmark never set is None"
    );
    domain
        .execute("u1", CreateUser { name: "ada".into() })
        .await
        .expect("creating u1");
    domain
        .execute("u2", CreateUser { name: "bob".into() })
        .await
        .expect("creating u2");
    let log = Log::default();
    let build = |name: &str, tail: bool| {
        let builder = domain.handler(name).page_size(page).tail_stream(tail);
        builder
            .handle::<User, _>(log.recorder::<User>())
            .build()
            .expect("building")
    };
    let fresh = build("fresh", false);
    assert_eq!(
        fresh.position().await.expect("position"),
        0,
        "a new handler starts at 0"
    );
    assert_eq!(run(&fresh).await, 2, "and handles all history");

    provider
        .set_bookmark("zero", 0)
        .await
        .expect("setting a bookmark to 0");
    assert_eq!(
        bookmark(&provider, "zero").await,
        Some(0),
        "a bookmark at 0 is set"
    );
    let zero = build("zero", true);
    assert_eq!(
        zero.position().await.expect("position"),
        0,
        "a set bookmark is not tailed"
    );
    assert_eq!(run(&zero).await, 2, "it handles all history");
    assert_eq!(log.seen().len(), 4);
}

/// Item 12: an in-memory-bookmark handler handles everything once, a second run handles
/// nothing, a new event is handled exactly once, and nothing is saved in the provider.
pub async fn in_memory_bookmark_handles_each_event_once(provider: Arc<dyn Provider>, page: usize) {
    let domain = domain(&provider);
    domain
        .execute("u1", CreateUser { name: "ada".into() })
        .await
        .expect("creating u1");
    domain
        .execute("u2", CreateUser { name: "bob".into() })
        .await
        .expect("creating u2");
    let log = Log::default();
    let build = || {
        let builder = domain
            .handler("in-memory")
            .page_size(page)
            .in_memory_bookmark();
        builder
            .handle::<User, _>(log.recorder::<User>())
            .build()
            .expect("building")
    };
    let handler = build();
    assert_eq!(run(&handler).await, 2, "everything once");
    assert_eq!(run(&handler).await, 0, "then nothing");
    domain
        .execute("u3", CreateUser { name: "cy".into() })
        .await
        .expect("creating u3");
    assert_eq!(run(&handler).await, 1, "a new event once");
    assert_eq!(run(&handler).await, 0);
    let stored = all_events(&provider, &["users"]).await;
    assert_eq!(
        log.positions(),
        positions(&stored),
        "each event handled exactly once, in order"
    );
    assert_eq!(
        bookmark(&provider, "in-memory").await,
        None,
        "nothing saved in the provider"
    );
    assert_eq!(
        run(&build()).await,
        3,
        "a new handler object starts again from the start"
    );
}

/// Item 13: one handler over two streams gets only its streams' events, and the event type
/// `created` of each stream goes to that stream's own callback.
pub async fn handler_gets_only_registered_streams(provider: Arc<dyn Provider>, page: usize) {
    let domain = domain(&provider);
    domain
        .execute("u1", CreateUser { name: "ada".into() })
        .await
        .expect("creating u1");
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
        .execute("c1", Bump { by: vec![1] })
        .await
        .expect("bumping c1");
    let post = CreatePost {
        user_id: "u1".into(),
        content: "hi".into(),
    };
    domain.execute("p1", post).await.expect("creating p1");
    domain
        .execute("u1", DisableUser)
        .await
        .expect("disabling u1");
    domain
        .execute(
            "g2",
            CreateGroup {
                title: "guests".into(),
            },
        )
        .await
        .expect("creating g2");

    let log = Log::default();
    let builder = domain.handler("two-streams").page_size(page);
    let builder = builder.handle::<User, _>(log.recorder::<User>());
    let handler = builder
        .handle::<Group, _>(log.recorder::<Group>())
        .build()
        .expect("build");
    assert_eq!(
        run(&handler).await,
        4,
        "two user events and two group events"
    );
    let seen = log.seen();
    let got: Vec<_> = seen
        .iter()
        .map(|s| (s.callback, s.id.as_str(), s.kind.as_str()))
        .collect();
    let expected = [
        ("users", "u1", "created"),
        ("groups", "g1", "created"),
        ("users", "u1", "disabled"),
        ("groups", "g2", "created"),
    ];
    assert_eq!(got, expected, "(callback, id, type) in position order");
    for s in &seen {
        assert_eq!(
            s.callback, s.stream,
            "an event reached another stream's callback: {s:?}"
        );
    }
    assert_eq!(
        seen[0].event["name"], "ada",
        "the user event decoded as a user event"
    );
    assert_eq!(
        seen[1].event["title"], "admins",
        "the group event decoded as a group event"
    );
}

/// Item 17: several aggregate kinds in one domain and one handler across their streams; each
/// event goes to its own stream's callback, all in position order.
pub async fn one_handler_routes_several_kinds(provider: Arc<dyn Provider>, page: usize) {
    let domain = domain(&provider);
    domain
        .execute("u1", CreateUser { name: "ada".into() })
        .await
        .expect("creating u1");
    let post = CreatePost {
        user_id: "u1".into(),
        content: "hi".into(),
    };
    domain.execute("p1", post).await.expect("creating p1");
    domain
        .execute("c1", Bump { by: vec![1, 2] })
        .await
        .expect("bumping c1");
    domain
        .execute("u1", DisableUser)
        .await
        .expect("disabling u1");
    domain
        .execute(
            "p1",
            ArchivePost {
                user_id: "u1".into(),
            },
        )
        .await
        .expect("archiving p1");
    domain
        .execute(
            "g1",
            CreateGroup {
                title: "admins".into(),
            },
        )
        .await
        .expect("creating g1");

    let log = Log::default();
    let builder = domain.handler("everything").page_size(page);
    let builder = builder.handle::<User, _>(log.recorder::<User>());
    let builder = builder.handle::<Post, _>(log.recorder::<Post>());
    let builder = builder.handle::<Counter, _>(log.recorder::<Counter>());
    let handler = builder
        .handle::<Group, _>(log.recorder::<Group>())
        .build()
        .expect("build");
    assert_eq!(handler.streams().len(), 4);
    assert_eq!(run(&handler).await, 7, "every event of the four streams");
    let seen = log.seen();
    let kinds: Vec<_> = seen.iter().map(|s| (s.callback, s.kind.as_str())).collect();
    let expected = [
        ("users", "created"),
        ("posts", "postCreated"),
        ("counters", "added"),
        ("counters", "added"),
        ("users", "disabled"),
        ("posts", "postArchived"),
        ("groups", "created"),
    ];
    assert_eq!(kinds, expected, "(callback, type) in position order");
    for s in &seen {
        assert_eq!(
            s.callback, s.stream,
            "an event reached another stream's callback: {s:?}"
        );
    }
    let stored = all_events(&provider, &["users", "posts", "counters", "groups"]).await;
    assert_eq!(
        log.positions(),
        positions(&stored),
        "in the store's position order"
    );
}
