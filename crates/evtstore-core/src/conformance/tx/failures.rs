//! Failing events in a transactional handler: skipped with their writes undone, or rolling
//! their page back; unknown event types.

use std::sync::Arc;

use super::TxModel;
use super::kit::{FAIL_SQL, Kit, PANIC, REFUSE, run};
use crate::conformance::support::raw;
use crate::provider::TxProvider;
use crate::{Error, UnknownEvents};

/// With `continue_on_error`, each failing event (a database error, a panic, an error) is
/// reported to `on_error` with its place and skipped: its own writes are rolled back (to its
/// savepoint), the other events' writes and the bookmark past it commit.
pub async fn continue_on_error_undoes_only_the_failing_events<P: TxProvider, M: TxModel<P>>(
    provider: Arc<P>,
    model: M,
) {
    let kit = Kit::new(provider, model);
    let at = kit.bump("c1", &[1, FAIL_SQL, 2, PANIC, 3, REFUSE]).await;
    let handler = kit.handler("skipping", |b| b.continue_on_error(true));
    assert_eq!(run(&handler).await, 3, "the three good events");
    let good = vec![at[0], at[2], at[4]];
    assert_eq!(
        kit.rows().await,
        good,
        "the failing events' writes were rolled back, the others committed"
    );
    assert_eq!(kit.bookmark("skipping").await, Some(at[5]), "past them all");

    let reports = kit.reports();
    // The database's own message varies: only the callbacks' are checked.
    let failed = [
        (1, None),
        (3, Some("panics on 14")),
        (5, Some("refuses 15")),
    ];
    assert_eq!(reports.len(), failed.len(), "one report each: {reports:?}");
    for (report, (index, says)) in reports.iter().zip(failed) {
        assert_eq!(report.handler, "skipping", "{report:?}");
        let meta = report.event.as_ref().expect("the report names the event");
        let place = (meta.stream.as_str(), meta.aggregate_id.as_str());
        assert_eq!(place, ("counters", "c1"), "{report:?}");
        assert_eq!(
            (meta.version, meta.position),
            (index + 1, at[index as usize])
        );
        let says = says.unwrap_or_default();
        assert!(
            report.error.contains(says),
            "{report:?} should say {says:?}"
        );
    }
    assert_eq!(run(&handler).await, 0, "nothing is retried");
    assert_eq!(kit.rows().await, good);
}

/// Without `continue_on_error`, a failing event rolls its whole page back: the bookmark stays
/// after the last committed page, none of the page's writes remain, and the next run retries it.
pub async fn failing_event_rolls_back_its_page<P: TxProvider, M: TxModel<P>>(
    provider: Arc<P>,
    model: M,
) {
    let kit = Kit::new(provider, model);
    let at = kit.bump("c1", &[1, 2, 3, 4, REFUSE]).await;
    let handler = kit.handler("strict", |b| b.page_size(3));
    let error = handler.run_once().await.expect_err("the fifth event fails");
    let Error::Handler {
        handler: name,
        version,
        position,
        ..
    } = &error
    else {
        panic!("expected Error::Handler, got {error:?}");
    };
    assert_eq!((name.as_str(), *version, *position), ("strict", 5, at[4]));
    assert_eq!(
        kit.rows().await,
        at[..3],
        "the second page's writes rolled back"
    );
    assert_eq!(kit.bookmark("strict").await, Some(at[2]), "after page one");
    let pages: Vec<String> = kit
        .log()
        .into_iter()
        .filter(|l| l.starts_with("after"))
        .collect();
    assert_eq!(
        pages,
        ["after 3 3", "after 2 0"],
        "a rolled-back page handled nothing"
    );
    assert!(kit.reports().is_empty(), "run_once returns the failure");

    kit.heal();
    assert_eq!(run(&handler).await, 2, "the page is retried");
    assert_eq!(kit.rows().await, at, "each event once");
}

/// An event of a type this build does not know fails the page naming the type (the default),
/// or is skipped and reported with `UnknownEvents::Skip`.
pub async fn unknown_event_types_fail_or_are_skipped<P: TxProvider, M: TxModel<P>>(
    provider: Arc<P>,
    model: M,
) {
    let kit = Kit::new(provider, model);
    let first = kit.bump("c1", &[1]).await[0];
    let newer = raw("counters", "c1", 2, r#"{"type":"multiplied","by":3}"#);
    let newer = kit.provider.append(vec![newer]).await;
    let newer = newer.expect("appending an event of a newer build")[0].position;
    let last = kit.bump("c2", &[2]).await[0];

    let strict = kit.handler("strict", |b| b);
    let error = strict.run_once().await.expect_err("an unknown type fails");
    match &error {
        Error::UnknownEventType {
            event_type,
            position,
            skipped: false,
            ..
        } => assert_eq!((event_type.as_str(), *position), ("multiplied", newer)),
        other => panic!("expected Error::UnknownEventType, got {other:?}"),
    }
    assert!(kit.rows().await.is_empty(), "the page rolled back");
    assert_eq!(
        kit.bookmark("strict").await,
        None,
        "the bookmark did not move"
    );

    let skipping = kit.handler("skipping", |b| b.unknown_events(UnknownEvents::Skip));
    assert_eq!(run(&skipping).await, 2, "the known events");
    assert_eq!(kit.rows().await, [first, last]);
    assert_eq!(kit.bookmark("skipping").await, Some(last));
    let reports = kit.reports();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let report = &reports[0];
    let position = report.event.as_ref().map(|meta| meta.position);
    assert_eq!(
        (report.handler.as_str(), position),
        ("skipping", Some(newer))
    );
    assert!(
        report.unknown_type && report.error.contains("multiplied"),
        "{report:?}"
    );
}
