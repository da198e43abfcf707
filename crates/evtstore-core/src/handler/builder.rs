//! Declaring an event handler: its bookmark, state, routes, options and hooks.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::FutureExt;

use super::options::common_options;
use super::{
    Callback, CallbackResult, Handler, Handles, Hooks, Options, Partitioned, Parts, Started,
};
use crate::aggregate::Aggregate;
use crate::domain::{Contains, Domain};
use crate::error::{Error, Result};
use crate::event::{EventMeta, StoredEvent};
use crate::names::{check_bookmark, check_stream, stream_of};
use crate::retire::{Marker, marker};
use crate::upcast::decode_stored;

/// Gives a marker to its [`Handles`] callback.
fn marker_to<'a, A: Aggregate, S: Handles<A>>(
    state: &'a mut S,
    marker: Marker,
    stored: &'a StoredEvent,
) -> Started<'a> {
    Started::Pending(
        async move {
            match marker {
                Marker::Deleted => Handles::<A>::deleted(state, &stored.meta).await,
                Marker::Shredded => Handles::<A>::shredded(state, &stored.meta).await,
                Marker::Archived => Ok(()),
            }
        }
        .boxed(),
    )
}

/// What a route does with a marker event.
type OnMarker<S> = for<'a> fn(&'a mut S, Marker, &'a StoredEvent) -> Started<'a>;

/// Declares an event handler; get one from [`Domain::handler`] (closures only) or
/// [`Domain::handler_with`] (a state of yours), and finish with [`build`](Self::build).
///
/// ```
/// # use evtstore_core::conformance::domain::{Post, PostEvent, User};
/// # use evtstore_core::{Domain, MemoryProvider};
/// # evtstore_core::domain!(Blog { User, Post });
/// # async fn run(blog: Domain<Blog>) -> evtstore_core::Result<()> {
/// let posts_model = blog
///     .handler_with("posts-model", Vec::<String>::new())
///     .handle::<Post, _>(|titles, event, meta| {
///         if let PostEvent::PostCreated { content, .. } = event {
///             titles.push(format!("{content} ({})", meta.aggregate_id));
///         }
///         Ok(())
///     })
///     .build()?;
/// posts_model.run_once().await?;
/// println!("{:?}", *posts_model.state().await);
/// # Ok(()) }
/// ```
pub struct HandlerBuilder<D, S = ()> {
    domain: Domain<D>,
    name: String,
    state: S,
    routes: Vec<(String, Callback<S>)>,
    options: Options,
    hooks: Hooks,
}

impl<D> Domain<D> {
    /// Starts declaring an event handler with a bookmark of this name, whose callbacks are
    /// closures (see [`HandlerBuilder::handle`]).
    pub fn handler(&self, name: &str) -> HandlerBuilder<D> {
        self.handler_with(name, ())
    }

    /// Starts declaring an event handler with a bookmark of this name that owns `state`: a read
    /// model or process manager implementing [`Handles`] for the kinds it handles.
    pub fn handler_with<S: Send + 'static>(&self, name: &str, state: S) -> HandlerBuilder<D, S> {
        HandlerBuilder {
            domain: self.clone(),
            name: name.to_owned(),
            state,
            routes: Vec::new(),
            options: Options::default(),
            hooks: Hooks::default(),
        }
    }
}

impl<D, S: Send + 'static> HandlerBuilder<D, S> {
    /// Gives each event of aggregate kind `A` to the state's [`Handles<A>`] implementation.
    pub fn on<A>(self) -> Self
    where
        A: Aggregate,
        D: Contains<A>,
        S: Handles<A>,
    {
        self.route::<A, _>(marker_to::<A, S>, |state, event, stored| {
            Started::Pending(async move { state.handle(&event, &stored.meta).await }.boxed())
        })
    }

    /// Calls `callback(state, event, meta)` for each event of aggregate kind `A`: sugar for a
    /// short synchronous callback. Match on the event enum inside for its types. An error or a
    /// panic fails the event: see [`continue_on_error`](Self::continue_on_error).
    pub fn handle<A, F>(self, callback: F) -> Self
    where
        A: Aggregate,
        D: Contains<A>,
        F: Fn(&mut S, &A::Event, &EventMeta) -> CallbackResult + Send + Sync + 'static,
    {
        let on_marker = |_: &mut S, _, _: &StoredEvent| Started::Done(Ok(()));
        self.route::<A, _>(on_marker, move |state, event, stored| {
            Started::Done(callback(state, &event, &stored.meta))
        })
    }

    /// Routes the events of kind `A`: each is decoded and given to `start`, or, when it is a
    /// marker (a deletion, a shredded event), given to `on_marker`.
    fn route<A, F>(mut self, on_marker: OnMarker<S>, start: F) -> Self
    where
        A: Aggregate,
        F: for<'a> Fn(&'a mut S, A::Event, &'a StoredEvent) -> Started<'a> + Send + Sync + 'static,
    {
        let unknown = self.options.unknown_events;
        let callback: Callback<S> = Arc::new(move |state: &mut S, stored: &StoredEvent| {
            if let Some(marker) = marker(&stored.meta, &stored.data) {
                return Ok(Some(on_marker(state, marker, stored)));
            }
            let Some(event) = decode_stored::<A>(&stored.meta, &stored.data, unknown)? else {
                return Ok(None);
            };
            Ok(Some(start(state, event, stored)))
        });
        self.routes.push((stream_of::<A>().to_owned(), callback));
        self
    }

    common_options!();

    /// How long the handler's lease lasts unless renewed (default 4 s). However many
    /// processes start a handler of one name, one at a time runs it; when it dies another
    /// takes over once its lease has expired, and a graceful [`stop`](Handler::stop) hands
    /// over at once. Handlers with an in-memory bookmark take no lease. The time is kept
    /// between 100 ms and one day.
    pub fn lease_time(mut self, time: std::time::Duration) -> Self {
        use std::time::Duration;
        let (least, most) = (Duration::from_millis(100), Duration::from_secs(86_400));
        self.options.lease = Some(time.clamp(least, most));
        self
    }

    /// Takes no lease: every process that starts the handler runs it (each with its own
    /// effects), and they race on the one bookmark. For handlers that must run everywhere.
    pub fn without_lease(mut self) -> Self {
        self.options.lease = None;
        self
    }

    /// Keeps the position in this process only, never in the provider.
    pub fn in_memory_bookmark(mut self) -> Self {
        self.options.in_memory_bookmark = true;
        self
    }

    /// Checks the declaration and gives the handler.
    ///
    /// # Errors
    /// [`Error::InvalidName`] when the name is not a valid bookmark name, no kind is handled,
    /// or one kind is handled twice.
    pub fn build(self) -> Result<Handler<S>> {
        let (streams, routes) = check_routes(&self.name, self.routes)?;
        let provider = self.domain.provider().clone();
        let parts = Parts {
            name: self.name,
            provider,
            streams,
            routes,
            options: self.options,
            hooks: self.hooks,
            partition: None,
        };
        Ok(Handler::new(parts, self.state))
    }

    /// Checks the declaration and gives the handler split into `partitions` by aggregate id,
    /// each partition with its own copy of the state, bookmark (`<name>#<p>of<partitions>`)
    /// and lease. Processes that start it share the partitions (see [`Partitioned`]).
    ///
    /// # Errors
    /// As [`build`](Self::build); [`Error::InvalidName`] for 0 partitions or a handler
    /// without a stored bookmark and lease.
    pub fn build_partitioned(self, partitions: u32) -> Result<Partitioned<S>>
    where
        S: Clone,
    {
        let lease = self
            .options
            .lease
            .filter(|_| !self.options.in_memory_bookmark);
        let refuse = |reason| Error::InvalidName {
            what: "handler",
            value: self.name.clone(),
            reason,
        };
        let Some(lease) = lease else {
            return Err(refuse(
                "is partitioned: it needs a stored bookmark and a lease",
            ));
        };
        if partitions == 0 {
            return Err(refuse("needs at least one partition"));
        }
        let (streams, routes) = check_routes(&self.name, self.routes)?;
        let provider = self.domain.provider().clone();
        let handlers = (0..partitions).map(|p| {
            let parts = Parts {
                name: format!("{}#{p}of{partitions}", self.name),
                provider: provider.clone(),
                streams: streams.clone(),
                routes: routes.clone(),
                options: self.options.clone(),
                hooks: self.hooks.clone(),
                partition: Some((p, partitions)),
            };
            Handler::new(parts, self.state.clone())
        });
        let handlers = handlers.collect();
        Ok(Partitioned::new(self.name, handlers, lease))
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
            "has no callbacks: call `on` or `handle` for at least one aggregate kind",
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
