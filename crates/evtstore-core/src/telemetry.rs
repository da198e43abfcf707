//! Metrics through the `metrics` facade: install any recorder (a Prometheus or OpenTelemetry
//! exporter) and these appear, with these names:
//!
//! | name | kind | labels | what |
//! | --- | --- | --- | --- |
//! | `evtstore_events_appended_total` | counter | `stream` | events appended through a domain (commands, appends, batches) |
//! | `evtstore_conflicts_total` | counter | `stream` | appends refused: another writer came first |
//! | `evtstore_handler_pages_total` | counter | `handler` | pages a handler read |
//! | `evtstore_handler_events_total` | counter | `handler` | events it handled |
//! | `evtstore_handler_errors_total` | counter | `handler` | failed events and failed runs |
//! | `evtstore_handler_lag_events` | gauge | `handler` | events waiting when it read its last page (at most the page size), 0 once caught up |
//! | `evtstore_handler_lag_seconds` | gauge | `handler` | age of the oldest waiting event then, 0 once caught up |

use metrics::{counter, gauge};

use crate::event::{StoredEvent, now_millis};

pub(crate) fn appended(stream: &str, events: usize) {
    counter!("evtstore_events_appended_total", "stream" => stream.to_owned())
        .increment(events as u64);
}

pub(crate) fn conflict(stream: &str) {
    counter!("evtstore_conflicts_total", "stream" => stream.to_owned()).increment(1);
}

pub(crate) fn failed(handler: &str) {
    counter!("evtstore_handler_errors_total", "handler" => handler.to_owned()).increment(1);
}

/// A page read (before it is handled): how far behind the handler is.
pub(crate) fn page_read(handler: &str, page: &[StoredEvent]) {
    let label = ("handler", handler.to_owned());
    counter!("evtstore_handler_pages_total", std::slice::from_ref(&label)).increment(1);
    let age = page
        .first()
        .map_or(0, |e| (now_millis() - e.meta.timestamp).max(0));
    gauge!("evtstore_handler_lag_events", std::slice::from_ref(&label)).set(page.len() as f64);
    gauge!("evtstore_handler_lag_seconds", &[label]).set(age as f64 / 1000.0);
}

/// A page handled: `handled` events, and whether the handler caught up.
pub(crate) fn page_done(handler: &str, handled: usize, caught_up: bool) {
    let label = ("handler", handler.to_owned());
    counter!(
        "evtstore_handler_events_total",
        std::slice::from_ref(&label)
    )
    .increment(handled as u64);
    if caught_up {
        gauge!("evtstore_handler_lag_events", std::slice::from_ref(&label)).set(0.0);
        gauge!("evtstore_handler_lag_seconds", &[label]).set(0.0);
    }
}
