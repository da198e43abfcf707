//! Failing handlers: parity item 15, undecodable events and panicking callbacks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::domain::*;
use super::support::{Log, Outcome, Reported, bookmark, domain, raw, run};
use crate::{Domain, Error, Handler, Position, Provider};

/// Bumps counter `c1` by each value, one command each; returns the events' positions.
async fn bump_each(domain: &Domain<Tests>, values: &[i64]) -> Vec<Position> {
    let mut positions = Vec::new();
    for by in values {
        let counter = domain.execute("c1", Bump { by: vec![*by] }).await;
        positions.push(
            counter
                .unwrap_or_else(|e| panic!("bumping c1 by {by}: {e}"))
                .position,
        );
    }
    positions
}

/// A counters handler whose callback does what `outcome` says with each event's value.
fn counters_handler(
    domain: &Domain<Tests>,
    name: &str,
    page: usize,
    (log, reported): (&Log, &Reported),
    continue_on_error: bool,
    outcome: impl Fn(i64) -> Outcome + Send + Sync + 'static,
) -> Handler {
    let callback = log.acting::<Counter>(move |event| outcome(event["by"].as_i64().unwrap_or(0)));
    let builder = domain
        .handler(name)
        .page_size(page)
        .continue_on_error(continue_on_error);
    let builder = builder
        .on_error(reported.hook())
        .handle::<Counter, _>(callback);
    builder
        .build()
        .unwrap_or_else(|e| panic!("building handler {name}: {e}"))
}

/// Asserts a handler failure at a position whose message contains `says`.
fn assert_failure(error: &Error, handler: &str, position: Position, says: &str) {
    let Error::Handler {
        handler: name,
        stream,
        aggregate_id,
        position: at,
        ..
    } = error
    else {
        panic!("expected Error::Handler, got {error:?}");
    };
    let place = (name.as_str(), stream.as_str(), aggregate_id.as_str(), *at);
    assert_eq!(
        place,
        (handler, "counters", "c1", position),
        "where {error} failed"
    );
    assert!(
        error.to_string().contains(says),
        "{error} should say {says:?}"
    );
}

/// Item 15, with `continue_on_error`: the failing event is reported to `on_error` and skipped,
/// later events are handled, and the bookmark passes it.
pub async fn continue_on_error_reports_and_skips(provider: Arc<dyn Provider>, page: usize) {
    let domain = domain(&provider);
    let at = bump_each(&domain, &[1, 13, 2]).await;
    let (log, reported) = (Log::default(), Reported::default());
    let fail_13 = |by| {
        if by == 13 {
            Outcome::Fail
        } else {
            Outcome::Handle
        }
    };
    let handler = counters_handler(&domain, "skipping", page, (&log, &reported), true, fail_13);
    assert_eq!(run(&handler).await, 2, "the two good events are handled");
    assert_eq!(
        log.positions(),
        [at[0], at[2]],
        "the failing event is skipped"
    );
    let reported = reported.all();
    assert_eq!(reported.len(), 1, "one failure reported: {reported:?}");
    assert_eq!(
        (reported[0].0, reported[0].2),
        (Some(at[1]), "handler"),
        "{reported:?}"
    );
    assert_eq!(
        bookmark(&provider, "skipping").await,
        Some(at[2]),
        "the bookmark passes it"
    );
    assert_eq!(run(&handler).await, 0, "a skipped event is not retried");
    assert_eq!(log.attempts(), 3);
}

/// Item 15, without `continue_on_error`: the handler stops at the failing event with an error
/// naming it, does not move its bookmark past it, and retries it on the next run.
pub async fn failing_event_stops_handler_before_it(provider: Arc<dyn Provider>, page: usize) {
    let domain = domain(&provider);
    let at = bump_each(&domain, &[1, 13, 2]).await;
    let (log, reported) = (Log::default(), Reported::default());
    let failing = Arc::new(AtomicBool::new(true));
    let fails = failing.clone();
    let fail_13 = move |by| match by == 13 && fails.load(Ordering::SeqCst) {
        true => Outcome::Fail,
        false => Outcome::Handle,
    };
    let handler = counters_handler(&domain, "stopping", page, (&log, &reported), false, fail_13);
    for attempt in 1..=2 {
        let error = handler
            .run_once()
            .await
            .expect_err("the run must stop at the failing event");
        assert_failure(&error, "stopping", at[1], "failed on purpose");
        assert_eq!(
            log.positions(),
            [at[0]],
            "nothing after the failing event (run {attempt})"
        );
        assert_eq!(
            bookmark(&provider, "stopping").await,
            Some(at[0]),
            "bookmark before it"
        );
        assert_eq!(handler.position().await.expect("position"), at[0]);
    }
    assert_eq!(log.attempts(), 3, "the failing event was retried");
    assert!(
        reported.all().is_empty(),
        "run_once returns the error; nothing is reported"
    );
    failing.store(false, Ordering::SeqCst);
    assert_eq!(run(&handler).await, 2, "once it succeeds the rest follows");
    assert_eq!(log.positions(), at);
    assert_eq!(bookmark(&provider, "stopping").await, Some(at[2]));
}

/// A stored event that no longer decodes fails a handler with `Error::Decode` naming its
/// stream, aggregate, version and position, without a panic: without `continue_on_error` the
/// bookmark stays before it; with it, it is reported to `on_error` and skipped.
pub async fn undecodable_event_fails_handler(provider: Arc<dyn Provider>, page: usize) {
    let domain = domain(&provider);
    let first = bump_each(&domain, &[1]).await[0];
    let bad = provider
        .append(vec![raw(
            "counters",
            "bad",
            1,
            r#"{"type":"added","by":"seven"}"#,
        )])
        .await;
    let bad = bad.expect("appending an event that does not decode")[0].position;
    let last = bump_each(&domain, &[2]).await[0];

    let (log, reported) = (Log::default(), Reported::default());
    let handler = counters_handler(&domain, "strict", page, (&log, &reported), false, |_| {
        Outcome::Handle
    });
    let error = handler
        .run_once()
        .await
        .expect_err("an undecodable event must fail the run");
    let Error::Decode {
        stream,
        aggregate_id,
        version,
        position,
        ..
    } = &error
    else {
        panic!("expected Error::Decode, got {error:?}");
    };
    let place = (stream.as_str(), aggregate_id.as_str(), *version, *position);
    assert_eq!(
        place,
        ("counters", "bad", 1, bad),
        "the error names the event: {error}"
    );
    assert_eq!(log.positions(), [first]);
    assert_eq!(
        bookmark(&provider, "strict").await,
        Some(first),
        "the bookmark stays before it"
    );
    assert!(
        handler.run_once().await.is_err(),
        "the next run stops at it again"
    );

    let (log, reported) = (Log::default(), Reported::default());
    let handler = counters_handler(&domain, "lenient", page, (&log, &reported), true, |_| {
        Outcome::Handle
    });
    assert_eq!(run(&handler).await, 2, "the decodable events are handled");
    assert_eq!(log.positions(), [first, last]);
    let reported = reported.all();
    assert_eq!(reported.len(), 1, "one failure reported: {reported:?}");
    assert_eq!(
        (reported[0].0, reported[0].2),
        (Some(bad), "decode"),
        "{reported:?}"
    );
    assert_eq!(
        bookmark(&provider, "lenient").await,
        Some(last),
        "the bookmark passes it"
    );
}

/// A callback that panics (before or inside its future) is a failure like an error, not a
/// crash: the run stops at it, or with `continue_on_error` it is reported and skipped.
pub async fn panicking_callback_is_a_failure(provider: Arc<dyn Provider>, page: usize) {
    let domain = domain(&provider);
    let at = bump_each(&domain, &[1, 66, 2, 77, 3]).await;
    let panics = |by| match by {
        66 => Outcome::Panic,
        77 => Outcome::Panic,
        _ => Outcome::Handle,
    };
    let (log, reported) = (Log::default(), Reported::default());
    let handler = counters_handler(&domain, "stopped", page, (&log, &reported), false, panics);
    let error = handler
        .run_once()
        .await
        .expect_err("a panic must fail the run");
    assert_failure(&error, "stopped", at[1], "panicked on purpose");
    assert_eq!(
        bookmark(&provider, "stopped").await,
        Some(at[0]),
        "the bookmark stays before it"
    );

    let (log, reported) = (Log::default(), Reported::default());
    let handler = counters_handler(&domain, "skipped", page, (&log, &reported), true, panics);
    assert_eq!(
        run(&handler).await,
        3,
        "the events that did not panic are handled"
    );
    assert_eq!(log.positions(), [at[0], at[2], at[4]]);
    let reported = reported.all();
    let places: Vec<_> = reported.iter().map(|r| r.0).collect();
    assert_eq!(
        places,
        [Some(at[1]), Some(at[3])],
        "both panics reported: {reported:?}"
    );
    for (_, message, _) in &reported {
        assert!(
            message.contains("panicked on purpose"),
            "{message:?} should say it panicked"
        );
    }
    assert_eq!(bookmark(&provider, "skipped").await, Some(at[4]));
}
