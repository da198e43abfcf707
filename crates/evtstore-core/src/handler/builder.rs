//! Declaring an event handler: its bookmark, options, hooks and callbacks.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;

use super::{Callback, Handler, Hooks, Options, Parts};
use crate::aggregate::{Aggregate, decode_event};
use crate::domain::{Contains, Domain};
use crate::error::{BoxError, Error, Result};
use crate::event::{EventMeta, StoredEvent};
use crate::names::{check_bookmark, check_stream};

/// Declares an event handler; get one from [`Domain::handler`] and finish with [`build`](Self::build).
///
/// ```
/// # use evtstore_core::conformance::domain::{Post, PostEvent, User};
/// # use evtstore_core::{Domain, MemoryProvider};
/// # evtstore_core::domain!(Blog { User, Post });
/// # async fn run(blog: Domain<Blog>) -> evtstore_core::Result<()> {
/// let posts_model = blog
///     .handler("posts-model")
///     .handle::<Post, _, _>(|post_id, event, meta| async move {
///         if let PostEvent::PostCreated { user_id, .. } = event {
///             println!("{user_id} wrote {post_id} at position {}", meta.position);
///         }
///         Ok(())
///     })
///     .build()?;
/// posts_model.run_once().await?;
/// # Ok(()) }
/// ```
pub struct HandlerBuilder<D> {
    domain: Domain<D>,
    name: String,
    routes: Vec<(String, Callback)>,
    options: Options,
    hooks: Hooks,
}

impl<D> HandlerBuilder<D> {
    pub(crate) fn new(domain: Domain<D>, name: &str) -> Self {
        HandlerBuilder {
            domain,
            name: name.to_owned(),
            routes: Vec::new(),
            options: Options::default(),
            hooks: Hooks::default(),
        }
    }

    /// Calls `callback(aggregate_id, event, meta)` for each event of aggregate kind `A`.
    ///
    /// Match on the event enum inside for its types. An error or a panic fails the event:
    /// see [`continue_on_error`](Self::continue_on_error).
    pub fn handle<A, F, Fut>(mut self, callback: F) -> Self
    where
        A: Aggregate,
        D: Contains<A>,
        F: Fn(String, A::Event, EventMeta) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        let callback: Callback = Arc::new(move |stored: &StoredEvent| {
            let event = decode_event::<A::Event>(stored)?;
            let meta = stored.meta.clone();
            Ok(callback(meta.aggregate_id.clone(), event, meta).boxed())
        });
        self.routes.push((A::STREAM.to_owned(), callback));
        self
    }

    /// A new bookmark starts at the end of history instead of the start.
    pub fn tail_stream(mut self, yes: bool) -> Self {
        self.options.tail_stream = yes;
        self
    }

    /// Every start and every [`reset`](Handler::reset) begins at the end of history.
    pub fn always_tail_stream(mut self, yes: bool) -> Self {
        self.options.always_tail_stream = yes;
        self
    }

    /// A failing event is reported to [`on_error`](Self::on_error) and skipped. Without it the
    /// handler stops at that event, keeps its bookmark before it, and retries it later.
    pub fn continue_on_error(mut self, yes: bool) -> Self {
        self.options.continue_on_error = yes;
        self
    }

    /// Keeps the position in this process only, never in the provider.
    pub fn in_memory_bookmark(mut self) -> Self {
        self.options.in_memory_bookmark = true;
        self
    }

    /// How many events to read per page (default 1,000); the bookmark is saved once per page.
    pub fn page_size(mut self, events: usize) -> Self {
        self.options.page_size = events.max(1);
        self
    }

    /// How often a running handler checks for events from writers in other processes
    /// (default 1 s); events appended through this process wake it at once.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.options.timing.poll_interval = interval;
        self
    }

    /// How long a running handler waits after a failed run before it retries (default 1 s).
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.options.timing.retry_delay = delay;
        self
    }

    /// Called with each event failure, and by a running handler with each failed run.
    pub fn on_error(mut self, hook: impl Fn(&Error) + Send + Sync + 'static) -> Self {
        self.hooks.on_error = Some(Box::new(hook));
        self
    }

    /// Called before each page is read.
    pub fn before_run(mut self, hook: impl Fn() + Send + Sync + 'static) -> Self {
        self.hooks.before_run = Some(Box::new(hook));
        self
    }

    /// Called after each page with (events read, events handled).
    pub fn after_run(mut self, hook: impl Fn(usize, usize) + Send + Sync + 'static) -> Self {
        self.hooks.after_run = Some(Box::new(hook));
        self
    }

    /// Checks the declaration and gives the handler.
    pub fn build(self) -> Result<Handler> {
        let (streams, routes) = check_routes(&self.name, self.routes)?;
        let provider = self.domain.provider().clone();
        let parts = Parts {
            name: self.name,
            provider,
            streams,
            routes,
            options: self.options,
            hooks: self.hooks,
        };
        Ok(Handler::new(parts))
    }
}

/// Checks a handler's name and its callbacks, one per stream and at least one; returns the
/// streams in the order registered and the callbacks by stream. For every kind of handler,
/// including providers' own.
pub fn check_routes<R>(
    name: &str,
    routes: Vec<(String, R)>,
) -> Result<(Vec<String>, HashMap<String, R>)> {
    check_bookmark(name)?;
    let refuse = |reason| Error::InvalidName {
        what: "handler",
        value: name.to_owned(),
        reason,
    };
    if routes.is_empty() {
        return Err(refuse(
            "has no callbacks: call `handle` for at least one aggregate kind",
        ));
    }
    let mut by_stream = HashMap::new();
    let mut streams = Vec::new();
    for (stream, route) in routes {
        check_stream(&stream)?;
        if by_stream.insert(stream.clone(), route).is_some() {
            return Err(refuse(
                "has two callbacks for one aggregate kind: match on the event instead",
            ));
        }
        streams.push(stream);
    }
    Ok((streams, by_stream))
}
