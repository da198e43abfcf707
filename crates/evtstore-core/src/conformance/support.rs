//! Helpers shared by the cases: the domain, a recording callback, waiting, a counting provider.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt};
use tokio::sync::watch;

use super::domain::Tests;
use crate::provider::{AggregateKey, Retire};
use crate::testing::Scenario;
use crate::{
    Aggregate, BoxError, CommandRecord, Domain, Error, EventMeta, Handler, HandlerFailure, Lease,
    NewEvent, Position, Provider, Result, Snapshot, StoredEvent, Uuid,
};

/// How long a case waits for something a running handler should do at once.
pub(super) const PROMPTLY: Duration = Duration::from_secs(2);

/// The test domain on a provider.
pub(super) fn domain(provider: &Arc<dyn Provider>) -> Domain<Tests> {
    Domain::with_provider(provider.clone())
}

/// A test-kit scenario of the test domain on a provider.
pub(super) fn scenario(provider: &Arc<dyn Provider>) -> Scenario<Tests> {
    Scenario::on(provider.clone())
}

/// Stream names as the provider takes them.
pub(super) fn streams(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// An event to append directly, with a raw JSON body.
pub(super) fn raw(stream: &str, id: &str, version: u64, data: &str) -> NewEvent {
    NewEvent::new(stream, id, version, data)
}

/// Every event of the streams, read in one go.
pub(super) async fn all_events(provider: &Arc<dyn Provider>, names: &[&str]) -> Vec<StoredEvent> {
    let names = streams(names);
    let read = provider.events(&names, 0, 100_000).await;
    read.unwrap_or_else(|e| panic!("reading all events of {names:?}: {e}"))
}

/// Positions of the events, in order.
pub(super) fn positions(events: &[StoredEvent]) -> Vec<Position> {
    events.iter().map(|e| e.meta.position).collect()
}

/// A handler's saved bookmark.
pub(super) async fn bookmark(provider: &Arc<dyn Provider>, name: &str) -> Option<Position> {
    let read = provider.bookmark(name).await;
    read.unwrap_or_else(|e| panic!("reading bookmark {name:?}: {e}"))
}

/// Runs a handler once and returns how many events it handled.
pub(super) async fn run<S: Send + 'static>(handler: &Handler<S>) -> usize {
    let ran = handler.run_once().await;
    ran.unwrap_or_else(|e| panic!("run_once of {}: {e}", handler.name()))
}

/// What a recording callback does with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Records it and succeeds.
    Handle,
    /// Returns an error.
    Fail,
    /// Panics.
    Panic,
}

/// One event as a callback handled it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Seen {
    /// The stream of the callback that got it.
    pub(super) callback: &'static str,
    /// The event's stream.
    pub(super) stream: String,
    /// The aggregate id the callback was given.
    pub(super) id: String,
    /// The event's position.
    pub(super) position: Position,
    /// The event's `type`.
    pub(super) kind: String,
    /// The decoded event, serialised again.
    pub(super) event: serde_json::Value,
}

/// What callbacks saw, shared between them and the case.
#[derive(Clone, Default)]
pub(super) struct Log {
    handled: Arc<Mutex<Vec<Seen>>>,
    attempts: Arc<AtomicUsize>,
}

/// A callback for `HandlerBuilder::handle` on a handler without state.
pub(super) type Recorder<E> =
    Box<dyn Fn(&mut (), &E, &EventMeta) -> Result<(), BoxError> + Send + Sync>;

impl Log {
    /// A callback for kind `A` that records every event it is given.
    pub(super) fn recorder<A: Aggregate>(&self) -> Recorder<A::Event> {
        self.acting::<A>(|_| Outcome::Handle)
    }

    /// A callback for kind `A` that does what `outcome` says for each event, recording those
    /// it handles.
    pub(super) fn acting<A: Aggregate>(
        &self,
        outcome: impl Fn(&serde_json::Value) -> Outcome + Send + Sync + 'static,
    ) -> Recorder<A::Event> {
        let log = self.clone();
        Box::new(move |_, event, meta| {
            log.attempts.fetch_add(1, Ordering::SeqCst);
            let event = serde_json::to_value(event).expect("test events serialise");
            match outcome(&event) {
                Outcome::Handle => {}
                Outcome::Fail => return Err("callback failed on purpose".into()),
                Outcome::Panic => panic!("callback panicked on purpose"),
            }
            let kind = event["type"].as_str().unwrap_or_default().to_owned();
            let id = meta.aggregate_id.to_string();
            let (stream, position) = (meta.stream.to_string(), meta.position);
            let callback = A::STREAM;
            let seen = Seen {
                callback,
                stream,
                id,
                position,
                kind,
                event,
            };
            log.handled
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(seen);
            Ok(())
        })
    }

    /// Every event handled, in order.
    pub(super) fn seen(&self) -> Vec<Seen> {
        self.handled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Positions of the events handled, in order.
    pub(super) fn positions(&self) -> Vec<Position> {
        self.seen().iter().map(|s| s.position).collect()
    }

    /// How many times a callback was called, failures included.
    pub(super) fn attempts(&self) -> usize {
        self.attempts.load(Ordering::SeqCst)
    }
}

/// One error reported to `on_error`: the event's position, the rendered error, and its kind
/// (`"handler"`, `"decode"`, `"unknown"` or `"other"`).
pub(super) type Report = (Option<Position>, String, &'static str);

/// Errors reported to a handler's `on_error`.
#[derive(Clone, Default)]
pub(super) struct Reported(Arc<Mutex<Vec<Report>>>);

impl Reported {
    /// A hook for `on_error`.
    pub(super) fn hook(
        &self,
    ) -> impl Fn(&HandlerFailure<'_>) -> std::future::Ready<()> + Send + Sync + 'static {
        let reported = self.0.clone();
        move |failure| {
            let error = failure.error;
            let kind = match error {
                Error::Handler { .. } => "handler",
                Error::Decode { .. } => "decode",
                Error::UnknownEventType { .. } => "unknown",
                _ => "other",
            };
            let position = failure.event.map(|meta| meta.position);
            let entry = (position, error.to_string(), kind);
            reported
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(entry);
            std::future::ready(())
        }
    }

    /// Everything reported so far.
    pub(super) fn all(&self) -> Vec<Report> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Waits until `check` holds, polling; panics after `within` naming `what`.
pub(super) async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        if tokio::time::Instant::now() >= deadline {
            panic!("waited {within:?} in vain until {what}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A provider that passes everything through and counts some calls; it can fail the first
/// read of each page ahead, or the next bookmark save, or lose the answer to an applied ask.
pub(super) struct Counting {
    inner: Arc<dyn Provider>,
    bookmark_saves: AtomicUsize,
    aggregate_reads: Mutex<Vec<u64>>,
    failing_page_reads: AtomicBool,
    /// The pages (by the position they start after) read once already.
    pages_read: Mutex<std::collections::HashSet<Position>>,
    failing_bookmark_save: AtomicBool,
    losing_ask_answer: AtomicBool,
    write_after_read: Mutex<Option<(String, Position, Position)>>,
    /// How long each leased save of a position above 0 waits before it is made.
    forward_save_delay: Mutex<Duration>,
    /// The positions of the leased saves made, in the order they were made.
    leased_saves: Arc<Mutex<Vec<Position>>>,
}

impl Counting {
    /// Wraps a provider.
    pub(super) fn new(inner: Arc<dyn Provider>) -> Arc<Self> {
        let aggregate_reads = Mutex::new(Vec::new());
        Arc::new(Counting {
            inner,
            bookmark_saves: AtomicUsize::new(0),
            aggregate_reads,
            failing_page_reads: AtomicBool::new(false),
            pages_read: Mutex::default(),
            failing_bookmark_save: AtomicBool::new(false),
            losing_ask_answer: AtomicBool::new(false),
            write_after_read: Mutex::new(None),
            forward_save_delay: Mutex::new(Duration::ZERO),
            leased_saves: Arc::default(),
        })
    }

    /// The next bookmark save (leased or not) fails, and writes nothing.
    pub(super) fn fail_next_bookmark_save(&self) {
        self.failing_bookmark_save.store(true, Ordering::SeqCst);
    }

    /// From now on each leased save of a position above 0 waits `delay` before it is made.
    pub(super) fn delay_forward_saves(&self, delay: Duration) {
        *self
            .forward_save_delay
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = delay;
    }

    /// The positions of the leased saves made so far, in the order they were made.
    pub(super) fn leased_saves(&self) -> Vec<Position> {
        let saves = self.leased_saves.lock();
        saves.unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The next application of an ask is made, and then answered with an error, as when the
    /// connection drops after the commit.
    pub(super) fn lose_next_ask_answer(&self) {
        self.losing_ask_answer.store(true, Ordering::SeqCst);
    }

    /// The error of a save failing on purpose, once asked for.
    fn failed_save(&self) -> Option<BoxFuture<'static, Result<()>>> {
        self.failing_bookmark_save
            .swap(false, Ordering::SeqCst)
            .then(|| {
                let error = Error::backend("conformance", "a bookmark save failing on purpose");
                Box::pin(async move { Err(error) }) as BoxFuture<'static, Result<()>>
            })
    }

    /// When bookmark `name` is next read holding `seen`, saves `then` in it right after the
    /// read: another process's save landing between a read and what the reader does next.
    pub(super) fn write_after_read(&self, name: &str, seen: Position, then: Position) {
        let armed = Some((name.to_owned(), seen, then));
        *self
            .write_after_read
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = armed;
    }

    /// From now on the first read of each page but the first (a read ahead, as a handler
    /// catching up makes) fails; a read of the same page again succeeds.
    pub(super) fn fail_first_reads_ahead(&self) {
        self.failing_page_reads.store(true, Ordering::SeqCst);
    }

    /// How many times a bookmark was saved.
    pub(super) fn bookmark_saves(&self) -> usize {
        self.bookmark_saves.load(Ordering::SeqCst)
    }

    /// The `after_version` of each aggregate read since the last call.
    pub(super) fn take_aggregate_reads(&self) -> Vec<u64> {
        std::mem::take(
            &mut *self
                .aggregate_reads
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }
}

impl Provider for Counting {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn append(&self, events: Vec<NewEvent>) -> BoxFuture<'_, Result<Vec<EventMeta>>> {
        self.inner.append(events)
    }

    fn command(&self, command_id: Uuid) -> BoxFuture<'_, Result<Option<CommandRecord>>> {
        self.inner.command(command_id)
    }

    fn retire(&self, marker: NewEvent, how: Retire) -> BoxFuture<'_, Result<EventMeta>> {
        self.inner.retire(marker, how)
    }

    fn archived_events<'a>(
        &'a self,
        stream: &'a str,
        aggregate_id: &'a str,
        after: u64,
        before: u64,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>>> {
        self.inner
            .archived_events(stream, aggregate_id, after, before)
    }

    fn aggregate_key<'a>(
        &'a self,
        stream: &'a str,
        aggregate_id: &'a str,
        create: bool,
    ) -> BoxFuture<'a, Result<Option<AggregateKey>>> {
        self.inner.aggregate_key(stream, aggregate_id, create)
    }

    fn forget_key<'a>(
        &'a self,
        stream: &'a str,
        aggregate_id: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        self.inner.forget_key(stream, aggregate_id)
    }

    fn aggregate_events<'a>(
        &'a self,
        stream: &'a str,
        aggregate_id: &'a str,
        after_version: u64,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>>> {
        let mut reads = self
            .aggregate_reads
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        reads.push(after_version);
        self.inner
            .aggregate_events(stream, aggregate_id, after_version)
    }

    fn events<'a>(
        &'a self,
        streams: &'a [String],
        after: Position,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>>> {
        let first_read = || {
            let mut read = self.pages_read.lock().unwrap_or_else(|e| e.into_inner());
            read.insert(after)
        };
        if self.failing_page_reads.load(Ordering::SeqCst) && after > 0 && first_read() {
            let error = Error::backend("conformance", "a page read failing on purpose");
            return Box::pin(async move { Err(error) });
        }
        self.inner.events(streams, after, limit)
    }

    fn streams(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        self.inner.streams()
    }

    fn last_event<'a>(
        &'a self,
        streams: &'a [String],
        aggregate_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<StoredEvent>>> {
        self.inner.last_event(streams, aggregate_id)
    }

    fn bookmark<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Position>>> {
        async move {
            let found = self.inner.bookmark(name).await?;
            let fired = (self.write_after_read.lock())
                .unwrap_or_else(|e| e.into_inner())
                .take_if(|(n, seen, _)| n == name && found == Some(*seen));
            if let Some((_, _, then)) = fired {
                self.inner.set_bookmark(name, then).await?;
            }
            Ok(found)
        }
        .boxed()
    }

    fn set_bookmark<'a>(&'a self, name: &'a str, position: Position) -> BoxFuture<'a, Result<()>> {
        self.bookmark_saves.fetch_add(1, Ordering::SeqCst);
        if let Some(failed) = self.failed_save() {
            return failed;
        }
        self.inner.set_bookmark(name, position)
    }

    fn snapshot<'a>(
        &'a self,
        stream: &'a str,
        aggregate_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Snapshot>>> {
        self.inner.snapshot(stream, aggregate_id)
    }

    fn save_snapshot(&self, snapshot: Snapshot) -> BoxFuture<'_, Result<()>> {
        self.inner.save_snapshot(snapshot)
    }

    fn acquire_lease<'a>(
        &'a self,
        name: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<Lease>>> {
        self.inner.acquire_lease(name, owner, ttl)
    }

    fn release_lease<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, Result<()>> {
        self.inner.release_lease(lease)
    }

    fn set_bookmark_leased<'a>(
        &'a self,
        lease: &'a Lease,
        position: Position,
    ) -> BoxFuture<'a, Result<()>> {
        self.bookmark_saves.fetch_add(1, Ordering::SeqCst);
        if let Some(failed) = self.failed_save() {
            return failed;
        }
        let delay = *self
            .forward_save_delay
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let made = self.leased_saves.clone();
        async move {
            if position > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            self.inner.set_bookmark_leased(lease, position).await?;
            made.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(position);
            Ok(())
        }
        .boxed()
    }

    fn apply_ask_leased<'a>(
        &'a self,
        lease: &'a Lease,
        position: Position,
        ask: &'a str,
        asked: Position,
    ) -> BoxFuture<'a, Result<()>> {
        self.bookmark_saves.fetch_add(1, Ordering::SeqCst);
        if let Some(failed) = self.failed_save() {
            return failed;
        }
        if self.losing_ask_answer.swap(false, Ordering::SeqCst) {
            return Box::pin(async move {
                (self.inner.apply_ask_leased(lease, position, ask, asked)).await?;
                Err(Error::unavailable(
                    "conformance",
                    "an answer lost on purpose",
                ))
            });
        }
        self.inner.apply_ask_leased(lease, position, ask, asked)
    }

    fn leases<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<Lease>>> {
        self.inner.leases(prefix)
    }

    fn signals_other_processes_bookmarks(&self) -> bool {
        self.inner.signals_other_processes_bookmarks()
    }

    fn subscribe(&self) -> watch::Receiver<Position> {
        self.inner.subscribe()
    }
}
