//! Declaring a transactional handler: its bookmark, callbacks, options and hooks.

use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::{Inner, Tail, TxHandler, TxHandles, TxProvider, TxRoute};
use crate::aggregate::Aggregate;
use crate::domain::Contains;
use crate::error::Result;
use crate::event::EventMeta;
use crate::handler::options::common_options;
use crate::handler::page::start_decoded;
use crate::handler::{CallbackResult, Hooks, Options, Runner, check_routes};
use crate::names::stream_of;

/// Declares a [`TxHandler`] over aggregate kinds of domain `D`; get one from the provider
/// (`PgProvider::tx_handler`, `MysqlProvider::tx_handler`, with examples) and finish with
/// [`build`](Self::build).
pub struct TxHandlerBuilder<P: TxProvider, D> {
    provider: Arc<P>,
    name: String,
    routes: Vec<(String, TxRoute<P>)>,
    options: Options,
    hooks: Hooks,
    domain: PhantomData<fn() -> D>,
}

impl<P: TxProvider, D> TxHandlerBuilder<P, D> {
    /// Starts declaring a transactional handler with a bookmark of this name: for providers,
    /// whose own `tx_handler` method calls it.
    pub fn new(provider: Arc<P>, name: &str) -> Self {
        TxHandlerBuilder {
            provider,
            name: name.to_owned(),
            routes: Vec::new(),
            options: Options::default(),
            hooks: Hooks::default(),
            domain: PhantomData,
        }
    }

    /// Calls `callback(tx, event, meta)` for each event of aggregate kind `A`, inside the
    /// transaction that also moves the bookmark past the event. Match on the event enum inside
    /// for its types. An error or a panic fails the event: see
    /// [`continue_on_error`](Self::continue_on_error).
    pub fn handle<A, F>(self, callback: F) -> Self
    where
        A: Aggregate,
        D: Contains<A>,
        F: for<'a> Fn(P::Arg<'a>, &'a A::Event, &'a EventMeta) -> BoxFuture<'a, CallbackResult>
            + Send
            + Sync
            + 'static,
    {
        self.route::<A>(callback)
    }

    /// Gives each event of aggregate kind `A` to `model`'s [`TxHandles<A>`] implementation.
    pub fn on<A, M>(self, model: M) -> Self
    where
        A: Aggregate,
        D: Contains<A>,
        M: TxHandles<A, P>,
    {
        let model = Arc::new(model);
        self.route::<A>(move |tx, event, meta| {
            let model = model.clone();
            async move { model.handle(tx, event, meta).await }.boxed()
        })
    }

    fn route<A: Aggregate>(
        mut self,
        start: impl for<'a> Fn(P::Arg<'a>, &'a A::Event, &'a EventMeta) -> BoxFuture<'a, CallbackResult>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        let (unknown, start) = (
            self.options.unknown_events,
            Arc::new(with_arg::<P, _, _>(start)),
        );
        let route: TxRoute<P> =
            Arc::new(move |tx, stored| start_decoded::<_, A, _>(&start, tx, stored, unknown));
        self.routes.push((stream_of::<A>().to_owned(), route));
        self
    }

    common_options!();

    /// Checks the declaration and gives the handler.
    ///
    /// # Errors
    /// [`Error::InvalidName`](crate::Error::InvalidName) when the name is not a valid bookmark
    /// name, no kind is handled, or one kind is handled twice.
    pub fn build(self) -> Result<TxHandler<P>> {
        let (streams, routes) = check_routes(&self.name, self.routes)?;
        let next = self.options.always_tail_stream;
        let inner = Inner {
            provider: self.provider,
            name: self.name,
            streams,
            routes,
            options: self.options,
            hooks: self.hooks,
            runner: Runner::default(),
            tail: Mutex::new(Tail { next, kept: None }),
        };
        Ok(TxHandler {
            inner: Arc::new(inner),
        })
    }
}

/// A callback given the transaction as callbacks take it.
fn with_arg<P: TxProvider, E, F>(
    start: F,
) -> impl for<'b, 'c> Fn(&'b mut P::Tx<'c>, &'b E, &'b EventMeta) -> BoxFuture<'b, CallbackResult>
+ Send
+ Sync
+ 'static
where
    F: for<'a> Fn(P::Arg<'a>, &'a E, &'a EventMeta) -> BoxFuture<'a, CallbackResult>
        + Send
        + Sync
        + 'static,
{
    move |tx, event, meta| start(P::arg(tx), event, meta)
}
