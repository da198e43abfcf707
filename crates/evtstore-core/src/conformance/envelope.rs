//! The envelope of events (ids, correlation, causation, metadata, revision, imported
//! timestamps) and idempotent commands.

use std::sync::Arc;

use futures_util::future::join_all;
use serde_json::json;

use super::domain::*;
use super::support::{all_events, domain, raw, run, streams};
use crate::{
    BoxError, CommandMeta, Domain, ErrorKind, EventMeta, Handles, Provider, StoredEvent, Uuid,
};

/// The stored events of one aggregate.
async fn stored(provider: &Arc<dyn Provider>, stream: &str, id: &str) -> Vec<StoredEvent> {
    let read = provider.aggregate_events(stream, id, 0).await;
    read.unwrap_or_else(|e| panic!("reading {stream}/{id}: {e}"))
}

/// A command's events carry its correlation and causation ids and metadata, and ids of their
/// own (UUID v7, distinct), read back the same by every read.
pub async fn events_carry_their_envelope(provider: Arc<dyn Provider>, _page: usize) {
    let domain = domain(&provider);
    let (correlation, causation) = (Uuid::now_v7(), Uuid::now_v7());
    let meta = CommandMeta::new()
        .correlation_id(correlation)
        .causation_id(causation)
        .metadata(json!({ "user": "alice", "tags": [1, 2] }));
    let bump = Bump { by: vec![1, 2] };
    domain.execute_with("c1", bump, meta).await.expect("bump");
    let events = stored(&provider, "counters", "c1").await;
    assert_eq!(events.len(), 2);
    for event in &events {
        let m = &event.meta;
        assert_eq!(m.event_id.get_version_num(), 7, "a UUID v7: {m:?}");
        assert_eq!(
            (m.correlation_id, m.causation_id),
            (Some(correlation), Some(causation))
        );
        let metadata: serde_json::Value = m.metadata().expect("decodes").expect("has metadata");
        assert_eq!(metadata, json!({ "user": "alice", "tags": [1, 2] }));
        assert_eq!(m.revision, 1, "the aggregate's revision");
    }
    assert_ne!(
        events[0].meta.event_id, events[1].meta.event_id,
        "ids are distinct"
    );
    let paged = all_events(&provider, &["counters"]).await;
    assert_eq!(paged, events, "a page reads the same envelopes");
    let last = provider
        .last_event(&streams(&["counters"]), Some("c1"))
        .await;
    assert_eq!(
        last.expect("last").as_ref(),
        events.last(),
        "so does last_event"
    );

    domain
        .execute("c2", Bump { by: vec![1] })
        .await
        .expect("bump");
    let plain = &stored(&provider, "counters", "c2").await[0].meta;
    assert_eq!((plain.correlation_id, plain.causation_id), (None, None));
    assert_eq!(plain.metadata, None, "no metadata given, none stored");
}

/// An appended event keeps the id, revision and timestamp it is given (an import).
pub async fn imported_events_keep_their_id_revision_and_timestamp(
    provider: Arc<dyn Provider>,
    _page: usize,
) {
    let mut event = raw("users", "u1", 1, r#"{"type":"created","name":"ada"}"#);
    let id = Uuid::now_v7();
    (event.event_id, event.revision, event.timestamp) = (id, 3, Some(1_234_567));
    let appended = provider.append(vec![event]).await.expect("append");
    let read = &stored(&provider, "users", "u1").await[0].meta;
    assert_eq!(
        (read.event_id, read.revision, read.timestamp),
        (id, 3, 1_234_567)
    );
    assert_eq!(&appended[0], read, "the append returns the stored envelope");
}

/// Counts users in counters, by executing a command for each user created.
struct CountUsers(Domain<Tests>);

impl Handles<User> for CountUsers {
    async fn handle(&mut self, event: &UserEvent, meta: &EventMeta) -> Result<(), BoxError> {
        if let UserEvent::Created { .. } = event {
            let counter = format!("count-{}", meta.aggregate_id);
            self.0.execute(&counter, Bump { by: vec![1] }).await?;
        }
        Ok(())
    }
}

/// A command executed from inside a handler takes the handled event as its cause, and its
/// correlation id (or, when it has none, its id).
pub async fn commands_from_handlers_take_the_handled_event_as_cause(
    provider: Arc<dyn Provider>,
    page: usize,
) {
    let domain = domain(&provider);
    let correlation = Uuid::now_v7();
    let create = |name: &str| CreateUser { name: name.into() };
    let with = CommandMeta::new().correlation_id(correlation);
    domain
        .execute_with("u1", create("ada"), with)
        .await
        .expect("u1");
    domain.execute("u2", create("bob")).await.expect("u2");
    let handler = domain.handler_with("count-users", CountUsers(domain.clone()));
    let handler = handler.on::<User>().page_size(page).build().expect("build");
    assert_eq!(run(&handler).await, 2);

    for (user, expected_correlation) in [("u1", Some(correlation)), ("u2", None)] {
        let cause = &stored(&provider, "users", user).await[0].meta;
        let effect = &stored(&provider, "counters", &format!("count-{user}")).await[0].meta;
        assert_eq!(
            effect.causation_id,
            Some(cause.event_id),
            "{user}'s event caused it"
        );
        let correlation = expected_correlation.unwrap_or(cause.event_id);
        assert_eq!(
            effect.correlation_id,
            Some(correlation),
            "{user}'s correlation"
        );
    }
}

/// A command executed again with its id (a retry, several at once, or from a new domain as
/// after a restart) appends nothing and returns the first execution's aggregate.
pub async fn retried_command_ids_append_once(provider: Arc<dyn Provider>, _page: usize) {
    let domain = domain(&provider);
    let command_id = Uuid::now_v7();
    let meta = CommandMeta::new().command_id(command_id);
    let bump = || Bump { by: vec![5, 6] };
    let first = domain.execute_with("c1", bump(), meta.clone()).await;
    let first = first.expect("first execution");
    domain
        .execute("c1", Bump { by: vec![100] })
        .await
        .expect("another command");

    let retries = (0..8).map(|_| {
        let (domain, meta) = (
            crate::Domain::<Tests>::with_provider(provider.clone()),
            meta.clone(),
        );
        async move { domain.execute_with("c1", bump(), meta).await }
    });
    for retried in join_all(retries).await {
        let retried = retried.expect("a retry succeeds");
        assert_eq!(
            (retried.version, retried.state.total),
            (first.version, first.state.total),
            "a retry returns the aggregate as the first execution left it"
        );
    }
    let events = stored(&provider, "counters", "c1").await;
    assert_eq!(
        events.len(),
        3,
        "appended once, plus the other command: {events:?}"
    );
    assert_eq!(
        events[0].meta.causation_id,
        Some(command_id),
        "the command caused them"
    );

    let elsewhere = domain.execute_with("c2", bump(), meta).await;
    let error = elsewhere.expect_err("an id used on another aggregate");
    assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
    assert!(error.to_string().contains("counters/c1"), "{error}");
}

/// Concurrent first executions of one command id on a fresh aggregate: one appends, every
/// other returns its result.
pub async fn concurrent_first_executions_of_a_command_id_append_once(
    provider: Arc<dyn Provider>,
    _page: usize,
) {
    let meta = CommandMeta::new().command_id(Uuid::now_v7());
    let attempts = (0..8).map(|_| {
        let (domain, meta) = (domain(&provider), meta.clone());
        async move { domain.execute_with("c1", Bump { by: vec![7] }, meta).await }
    });
    for attempt in join_all(attempts).await {
        let aggregate = attempt.expect("every attempt succeeds");
        assert_eq!((aggregate.version, aggregate.state.total), (1, 7));
    }
    let events = stored(&provider, "counters", "c1").await;
    assert_eq!(events.len(), 1, "one append: {events:?}");
}
