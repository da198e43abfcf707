//! Event handlers: read models and process managers fed from the store, in position order.
//!
//! A handler reads its bookmark, reads a page of events after it, gives each event of a kind it
//! handles to its state (a type implementing [`Handles`]) or to a closure, saves the bookmark
//! once per page, and repeats while pages come full, reading the next pages while it handles
//! this one (`ahead`) and finishing this page's save while it handles the next (`saving`).
//! [`Handler::run_once`] does that until nothing is pending; [`Handler::start`] keeps doing it
//! in the background, woken at once by appends in this process and polling for other writers.

mod ahead;
mod builder;
mod hooks;
mod leasing;
mod options;
mod page;
mod partition;
mod run;
mod runner;
mod saving;
mod tx;
mod worker;

use std::collections::HashMap;
use std::future::Future;
use std::ops::DerefMut;
use std::sync::Arc;

use futures_util::future::BoxFuture;

pub use builder::{HandlerBuilder, check_routes};
pub use hooks::{HandlerFailure, Hooks};
pub use partition::Partitioned;
pub use runner::{Runner, Timing};
pub use tx::{Savepoint, TxHandler, TxHandlerBuilder, TxHandles, TxProvider};

use options::Options;
use page::Policy;

use crate::aggregate::Aggregate;
use crate::error::{BoxError, Error, Result};
use crate::event::{EventMeta, Position, StoredEvent};
use crate::provider::Provider;

/// Handles the events of aggregate kind `A`: implement it on a read model or a process manager
/// and register it with [`HandlerBuilder::on`]. The handler owns the value and gives it to each
/// event in turn, so it may change itself freely; read it back with [`Handler::state`].
///
/// ```
/// # use evtstore_core::conformance::domain::{Post, PostEvent, User};
/// use std::collections::BTreeMap;
/// use evtstore_core::{BoxError, EventMeta, Handles};
///
/// #[derive(Default)]
/// struct PostsPerUser(BTreeMap<String, usize>);
///
/// impl Handles<Post> for PostsPerUser {
///     async fn handle(&mut self, event: &PostEvent, _meta: &EventMeta) -> Result<(), BoxError> {
///         if let PostEvent::PostCreated { user_id, .. } = event {
///             *self.0.entry(user_id.clone()).or_default() += 1;
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait Handles<A: Aggregate>: Send + 'static {
    /// Handles one event. An error (or a panic) fails the event: see
    /// [`continue_on_error`](HandlerBuilder::continue_on_error).
    fn handle(
        &mut self,
        event: &A::Event,
        meta: &EventMeta,
    ) -> impl Future<Output = Result<(), BoxError>> + Send;

    /// The aggregate was deleted ([`Domain::delete`](crate::Domain::delete)): `meta` is its
    /// tombstone's. Forget what the read model holds of it. Does nothing by default.
    fn deleted(&mut self, meta: &EventMeta) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = meta;
        async { Ok(()) }
    }

    /// An event whose key was shredded ([`Domain::shred`](crate::Domain::shred)) and whose
    /// body is gone, and the marker of the shredding itself (forget what the read model holds
    /// of the aggregate). Does nothing by default.
    fn shredded(&mut self, meta: &EventMeta) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = meta;
        async { Ok(()) }
    }
}

/// Decodes an event and starts its callback on the handler's state; `Ok(None)` when the event
/// is of a type the code does not know and the handler skips those.
type Callback<S> =
    Arc<dyn for<'a> Fn(&'a mut S, &'a StoredEvent) -> Result<Option<Started<'a>>> + Send + Sync>;

type CallbackResult = Result<(), BoxError>;

/// A callback started on an event: done already (a closure, no future to allocate), or a
/// future to await (a [`Handles`] implementation).
enum Started<'a> {
    Done(CallbackResult),
    Pending(BoxFuture<'a, CallbackResult>),
}

/// Everything a handler is built from.
struct Parts<S> {
    name: String,
    provider: Arc<dyn Provider>,
    streams: Vec<String>,
    routes: HashMap<String, Callback<S>>,
    options: Options,
    hooks: Hooks,
    /// For one partition of a partitioned handler: (this partition, how many).
    partition: Option<(u32, u32)>,
}

impl<S> Parts<S> {
    fn policy(&self) -> Policy<'_> {
        self.options.policy(&self.name, &self.hooks)
    }
}

/// A running or runnable event handler, with its state `S` (`()` for closures only).
/// Cheap to clone; clones control the same handler and share its state.
pub struct Handler<S = ()> {
    inner: Arc<Inner<S>>,
}

impl<S> Clone for Handler<S> {
    fn clone(&self) -> Self {
        Handler {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<S> {
    parts: Parts<S>,
    /// Who this handler is among every process's, for its lease.
    owner: String,
    /// The position and state, held for a page at a time.
    cursor: tokio::sync::Mutex<Cursor<S>>,
    runner: Runner,
    /// The position the handler has passed (handled and saved), for `wait_for`.
    passed: tokio::sync::watch::Sender<Position>,
}

struct Cursor<S> {
    /// The cached position; `None` until read from the bookmark.
    position: Option<Position>,
    state: S,
    /// The lease, while this handler holds it.
    lease: Option<leasing::Held>,
    /// With `always_tail_stream`: the next run starts at the end of history (set by the
    /// first run, a start and a `reset`, cleared once it has, or when another process
    /// holds the lease, so that taking over later carries on from the bookmark).
    tail_next: bool,
    /// The last page's bookmark save, while it is in flight (see `saving`).
    saving: Option<saving::Saving>,
}

impl<S> Cursor<S> {
    /// Caches the handler's place: a start's tail no longer applies to it, even once the
    /// lease is lost and the place forgotten.
    fn place(&mut self, at: Position) {
        (self.position, self.tail_next) = (Some(at), false);
    }
}

impl<S: Send + 'static> Handler<S> {
    fn new(parts: Parts<S>, state: S) -> Self {
        let cursor = Cursor {
            position: None,
            state,
            lease: None,
            tail_next: parts.options.always_tail_stream,
            saving: None,
        };
        let inner = Inner {
            parts,
            owner: leasing::owner_name(),
            cursor: tokio::sync::Mutex::new(cursor),
            runner: Runner::default(),
            passed: tokio::sync::watch::channel(0).0,
        };
        Handler {
            inner: Arc::new(inner),
        }
    }

    /// The handler's (and its bookmark's) name.
    pub fn name(&self) -> &str {
        &self.inner.parts.name
    }

    /// The streams it reads.
    pub fn streams(&self) -> &[String] {
        &self.inner.parts.streams
    }

    /// The handler's state, between pages: waits for a page being handled to finish.
    pub async fn state(&self) -> impl DerefMut<Target = S> + '_ {
        let cursor = self.inner.cursor.lock().await;
        tokio::sync::MutexGuard::map(cursor, |cursor| &mut cursor.state)
    }

    /// Handles every pending event and returns how many were handled.
    ///
    /// A handler with a stored bookmark takes its lease first (see
    /// [`lease_time`](HandlerBuilder::lease_time)), and releases it afterwards unless started.
    /// It returns with the bookmark saved. Call it on a Tokio runtime: pages are read ahead
    /// and bookmarks saved in tasks of their own.
    ///
    /// # Errors
    /// [`Error::LeaseHeld`](crate::Error::LeaseHeld) when another process runs the handler.
    /// A failed bookmark save fails the run; its last page is handled again at the next.
    /// Without `continue_on_error`, the first failing event stops the run with its error
    /// ([`Error::Handler`](crate::Error::Handler), or the decode error); the bookmark stays
    /// just before it, so the next run retries it. A failing store fails the run too.
    pub async fn run_once(&self) -> Result<usize> {
        let ran = self.run_pages(&|| false).await;
        self.release_unless_started().await;
        ran?.ok_or_else(|| self.held_elsewhere())
    }

    /// The position after which the handler reads next.
    ///
    /// # Errors
    /// When the bookmark cannot be read.
    pub async fn position(&self) -> Result<Position> {
        let mut cursor = self.inner.cursor.lock().await;
        self.resolve_position(&mut cursor).await
    }

    /// Moves the handler (and its bookmark) to a position: 0 replays everything. Takes effect
    /// between pages. The state is left as it is: reset it yourself through [`state`](Self::state).
    ///
    /// It goes through the lease: when another process runs the handler, that process moves
    /// to the position at its next lease renewal (within a quarter of the lease time).
    ///
    /// # Errors
    /// When the bookmark cannot be saved; the position is then unchanged.
    /// [`Error::InvalidName`] for a position no store gives (`i64::MAX` or more).
    pub async fn set_position(&self, position: Position) -> Result<()> {
        if position >= i64::MAX as u64 {
            return Err(Error::InvalidName {
                what: "position",
                value: position.to_string(),
                reason: "stores give positions below 2^63 - 1",
            });
        }
        let mut cursor = self.inner.cursor.lock().await;
        let moved = self.move_bookmark(&mut cursor, position).await;
        drop(cursor);
        self.release_unless_started().await;
        moved
    }

    /// Waits until this handler has passed `position` (handled every event up to it and saved
    /// its bookmark), or `timeout` passes: read-your-writes for a command's result, whose
    /// `position` is its last event's. Woken by the handler itself, not by polling. True when
    /// passed, false on timeout.
    ///
    /// ```
    /// # use evtstore_core::conformance::domain::{Bump, Counter, Tests};
    /// # use evtstore_core::{Domain, MemoryProvider};
    /// # use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let domain: Domain<Tests> = Domain::new(MemoryProvider::new());
    /// let totals = domain.handler_with("totals", 0_i64)
    ///     .handle::<Counter, _>(|total, _, _| { *total += 1; Ok(()) })
    ///     .build()?;
    /// totals.start();
    /// let counter = domain.execute("c1", Bump { by: vec![5] }).await?;
    /// assert!(totals.wait_for(counter.position, Duration::from_secs(5)).await);
    /// assert_eq!(*totals.state().await, 1); // the read model has the change
    /// # totals.stop().await;
    /// # Ok(()) }
    /// ```
    pub async fn wait_for(&self, position: Position, timeout: std::time::Duration) -> bool {
        let mut passed = self.inner.passed.subscribe();
        let reached = passed.wait_for(|at| *at >= position);
        matches!(tokio::time::timeout(timeout, reached).await, Ok(Ok(_)))
    }

    /// Forgets the cached position: the next run reads the bookmark again, or, with
    /// `always_tail_stream`, starts at the end of history.
    pub async fn reset(&self) {
        let mut cursor = self.inner.cursor.lock().await;
        self.settle_or_warn(&mut cursor).await;
        cursor.position = None;
        cursor.tail_next = self.inner.parts.options.always_tail_stream;
    }
}
