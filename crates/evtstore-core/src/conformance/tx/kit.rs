//! What the transactional cases share: a counters handler writing the model, recording hooks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::TxModel;
use crate::conformance::domain::{Bump, CounterEvent, Tests};
use crate::provider::{TxHandler, TxHandlerBuilder, TxProvider};
use crate::{Domain, Error, EventMeta, Position};

/// A value whose callback writes, then fails on a statement the database refuses.
pub(super) const FAIL_SQL: i64 = 13;
/// A value whose callback writes, then panics.
pub(super) const PANIC: i64 = 14;
/// A value whose callback writes, then returns an error.
pub(super) const REFUSE: i64 = 15;

/// A failure reported to `on_error`.
#[derive(Debug, Clone)]
pub(super) struct Report {
    pub(super) handler: String,
    pub(super) event: Option<EventMeta>,
    pub(super) error: String,
    pub(super) unknown_type: bool,
}

type Shared<T> = Arc<Mutex<Vec<T>>>;

/// Records `item`; returns what a hook returns.
fn push<T>(shared: &Shared<T>, item: T) -> std::future::Ready<()> {
    shared.lock().unwrap_or_else(|e| e.into_inner()).push(item);
    std::future::ready(())
}

fn all<T: Clone>(shared: &Shared<T>) -> Vec<T> {
    shared.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// A case's store, model and records.
pub(super) struct Kit<P: TxProvider, M> {
    pub(super) provider: Arc<P>,
    model: Arc<M>,
    /// Whether the failing values fail (on until [`heal`](Self::heal)).
    failing: Arc<AtomicBool>,
    /// Callbacks wait while it is closed (see [`close_gate`](Self::close_gate)).
    gate: Arc<watch::Sender<bool>>,
    /// "before", "handle {value}" and "after {read} {handled}", in order.
    log: Shared<String>,
    reports: Shared<Report>,
}

impl<P: TxProvider, M: TxModel<P>> Kit<P, M> {
    pub(super) fn new(provider: Arc<P>, model: M) -> Self {
        Kit {
            provider,
            model: Arc::new(model),
            failing: Arc::new(AtomicBool::new(true)),
            gate: Arc::new(watch::channel(true).0),
            log: Shared::default(),
            reports: Shared::default(),
        }
    }

    /// Adds each value to counter `id`, one command each; returns the events' positions.
    pub(super) async fn bump(&self, id: &str, values: &[i64]) -> Vec<Position> {
        let domain = Domain::<Tests>::with_provider(self.provider.clone());
        let mut positions = Vec::new();
        for &by in values {
            let bumped = domain.execute(id, Bump { by: vec![by] }).await;
            let bumped = bumped.unwrap_or_else(|e| panic!("bumping {id} by {by}: {e}"));
            positions.push(bumped.position);
        }
        positions
    }

    /// A handler over counters whose callback writes a row per event (and, while failing, fails
    /// after it on the values above), its hooks recording; `configure` sets its options.
    pub(super) fn handler(
        &self,
        name: &str,
        configure: impl FnOnce(TxHandlerBuilder<P, Tests>) -> TxHandlerBuilder<P, Tests>,
    ) -> TxHandler<P> {
        let (log, reports) = (self.log.clone(), self.reports.clone());
        let builder = TxHandlerBuilder::new(self.provider.clone(), name)
            .before_run(move || push(&log, "before".to_owned()))
            .on_error(move |failure| {
                let report = Report {
                    handler: failure.handler.to_owned(),
                    event: failure.event.cloned(),
                    error: failure.error.to_string(),
                    unknown_type: matches!(failure.error, Error::UnknownEventType { .. }),
                };
                push(&reports, report)
            });
        let log = self.log.clone();
        let builder = configure(
            builder.after_run(move |read, handled| push(&log, format!("after {read} {handled}"))),
        );
        let (model, failing, log) = (self.model.clone(), self.failing.clone(), self.log.clone());
        let gate = self.gate.clone();
        let built =
            builder.handle::<crate::conformance::domain::Counter, _>(move |tx, event, meta| {
                let CounterEvent::Added { by, .. } = *event;
                let logged = push(&log, format!("handle {by}"));
                let fail = failing.load(Ordering::SeqCst);
                let write = model.write(tx, meta.position, fail && by == FAIL_SQL);
                let mut open = gate.subscribe();
                Box::pin(async move {
                    logged.await;
                    let _ = open.wait_for(|open| *open).await;
                    write.await?;
                    match by {
                        PANIC if fail => panic!("the read model panics on {by}"),
                        REFUSE if fail => Err(format!("the read model refuses {by}").into()),
                        _ => Ok(()),
                    }
                })
            });
        built.build().expect("building the handler")
    }

    /// Callbacks wait (inside their page's transaction) until [`open_gate`](Self::open_gate).
    pub(super) fn close_gate(&self) {
        self.gate.send_replace(false);
    }

    /// Callbacks go on.
    pub(super) fn open_gate(&self) {
        self.gate.send_replace(true);
    }

    /// From now on, the failing values succeed.
    pub(super) fn heal(&self) {
        self.failing.store(false, Ordering::SeqCst);
    }

    /// Bookmark saves fail while `refuse` holds (see [`TxModel::refuse_bookmark_saves`]).
    pub(super) async fn refuse_bookmark_saves(&self, refuse: bool) {
        self.model.refuse_bookmark_saves(refuse).await;
    }

    /// The model's committed rows.
    pub(super) async fn rows(&self) -> Vec<Position> {
        self.model.rows().await
    }

    /// What the hooks and callbacks recorded, in order.
    pub(super) fn log(&self) -> Vec<String> {
        all(&self.log)
    }

    /// The failures reported to `on_error`.
    pub(super) fn reports(&self) -> Vec<Report> {
        all(&self.reports)
    }

    /// The handler's saved bookmark.
    pub(super) async fn bookmark(&self, name: &str) -> Option<Position> {
        let read = self.provider.bookmark(name).await;
        read.unwrap_or_else(|e| panic!("reading bookmark {name:?}: {e}"))
    }
}

/// Runs a handler once and returns how many events it handled.
pub(super) async fn run<P: TxProvider>(handler: &TxHandler<P>) -> usize {
    let ran = handler.run_once().await;
    ran.unwrap_or_else(|e| panic!("run_once of {}: {e}", handler.name()))
}
