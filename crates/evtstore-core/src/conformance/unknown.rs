//! Events of a type this build does not know (a newer build wrote them): fail, or skip.

use std::sync::Arc;

use super::domain::*;
use super::support::{Log, Reported, bookmark, domain, raw, run};
use crate::{Error, Position, Provider, UnknownEvents};

/// Stores u1 (created, then an event of type `renamedLater`, then disabled); returns the
/// positions of the three.
async fn store_future_event(provider: &Arc<dyn Provider>) -> Vec<Position> {
    let domain = domain(provider);
    let created = domain
        .execute("u1", CreateUser { name: "ada".into() })
        .await;
    let created = created.expect("creating u1").position;
    let future = raw("users", "u1", 2, r#"{"type":"renamedLater","name":"eve"}"#);
    let future = provider.append(vec![future]).await;
    let future = future.expect("appending an event of a newer build")[0].position;
    let disabled = raw("users", "u1", 3, r#"{"type":"disabled"}"#);
    let disabled = provider.append(vec![disabled]).await.expect("disabling u1")[0].position;
    vec![created, future, disabled]
}

/// Asserts the error names the unknown type and its event.
fn assert_unknown(error: &Error, position: Position) {
    let Error::UnknownEventType {
        stream,
        aggregate_id,
        version,
        position: at,
        event_type,
        ..
    } = error
    else {
        panic!("expected Error::UnknownEventType, got {error:?}");
    };
    let place = (stream.as_str(), aggregate_id.as_str(), *version, *at);
    assert_eq!(place, ("users", "u1", 2, position), "the event: {error}");
    assert_eq!(event_type, "renamedLater", "the type: {error}");
    assert!(error.to_string().contains("renamedLater"), "{error}");
}

/// A load meeting an unknown event type fails naming it (the default); a kind that skips
/// unknown types loads past it, at the right version, and appends after it.
pub async fn unknown_event_types_fail_or_are_skipped_by_loads(
    provider: Arc<dyn Provider>,
    _page: usize,
) {
    let at = store_future_event(&provider).await;
    let domain = domain(&provider);
    let error = domain
        .load::<User>("u1")
        .await
        .expect_err("a strict load fails");
    assert_unknown(&error, at[1]);
    let error = domain
        .execute("u1", EnableUser)
        .await
        .expect_err("so does a command");
    assert_unknown(&error.into(), at[1]);

    let tolerant = domain.load::<TolerantUser>("u1").await;
    let tolerant = tolerant.expect("a tolerant load skips the unknown event");
    assert_eq!(
        (tolerant.version, tolerant.position),
        (3, at[2]),
        "past all three"
    );
    let state = &tolerant.state;
    assert_eq!(
        (state.name.as_str(), state.folded),
        ("ada", 2),
        "two events folded"
    );
    let appended = domain.append(tolerant, vec![UserEvent::Enabled]).await;
    assert_eq!(appended.expect("appending after it").version, 4);
}

/// A handler meeting an unknown event type stops before it with an error naming it (the
/// default, so nothing is silently passed by); one that skips unknown types reports it to
/// `on_error` and handles the rest.
pub async fn unknown_event_types_fail_or_are_skipped_by_handlers(
    provider: Arc<dyn Provider>,
    page: usize,
) {
    let at = store_future_event(&provider).await;
    let domain = domain(&provider);
    for (name, policy) in [
        ("strict", UnknownEvents::Fail),
        ("lenient", UnknownEvents::Skip),
    ] {
        let (log, reported) = (Log::default(), Reported::default());
        let handler = domain
            .handler(name)
            .page_size(page)
            .unknown_events(policy)
            .on_error(reported.hook())
            .handle::<User, _>(log.recorder::<User>())
            .build()
            .expect("building");
        match policy {
            UnknownEvents::Fail => {
                let error = handler.run_once().await.expect_err("the run stops at it");
                assert_unknown(&error, at[1]);
                assert_eq!(log.positions(), [at[0]], "nothing after it");
                assert_eq!(
                    bookmark(&provider, name).await,
                    Some(at[0]),
                    "stays before it"
                );
                assert!(handler.run_once().await.is_err(), "and stops there again");
            }
            UnknownEvents::Skip => {
                assert_eq!(run(&handler).await, 2, "the known events are handled");
                assert_eq!(log.positions(), [at[0], at[2]]);
                let reported = reported.all();
                assert_eq!(reported.len(), 1, "the skip is reported: {reported:?}");
                assert_eq!((reported[0].0, reported[0].2), (Some(at[1]), "unknown"));
                assert!(reported[0].1.contains("renamedLater"), "{reported:?}");
                assert_eq!(bookmark(&provider, name).await, Some(at[2]), "passes it");
            }
        }
    }
}
