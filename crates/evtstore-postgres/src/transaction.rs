//! Transactions: appends inside the caller's transaction, and transactional handlers whose
//! read-model writes and bookmark commit together (each event applied exactly once).

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use evtstore_core::provider::decode_event;
use evtstore_core::provider::{Runner, Timing, check_routes};
use evtstore_core::{
    Aggregate, BoxError, Contains, Error, EventMeta, NewEvent, Position, Result, StoredEvent,
};
use futures_util::future::BoxFuture;
use tokio_postgres::types::ToSql;
use tokio_postgres::{IsolationLevel, Transaction};

use crate::PgProvider;
use crate::failure::append_to;

impl PgProvider {
    /// Appends inside the caller's own transaction: the events commit or roll back with it.
    ///
    /// Pair it with `Domain::batch` to execute commands inside the transaction.
    /// Other readers see the events once the transaction commits.
    pub async fn append_in(
        &self,
        tx: &Transaction<'_>,
        events: Vec<NewEvent>,
    ) -> Result<Vec<EventMeta>> {
        let append = self.append_on(tx, self.sql.append_in.as_str(), &events);
        self.within(&append_to(&events), append).await
    }

    /// Starts declaring a transactional handler over aggregate kinds of domain `D`.
    pub fn tx_handler<D>(self: &Arc<Self>, name: &str) -> TxHandlerBuilder<D> {
        TxHandlerBuilder {
            provider: self.clone(),
            name: name.to_owned(),
            routes: Vec::new(),
            page_size: 1000,
            timing: Timing::default(),
            on_error: None,
            domain: PhantomData,
        }
    }
}

/// A callback of a transactional handler: it gets the transaction and the event.
pub type TxCallback<E> = Box<
    dyn for<'t> Fn(&'t Transaction<'t>, String, E, EventMeta) -> BoxFuture<'t, Result<(), BoxError>>
        + Send
        + Sync,
>;

type Route = Arc<
    dyn for<'t> Fn(&'t Transaction<'t>, &StoredEvent) -> Result<BoxFuture<'t, Result<(), BoxError>>>
        + Send
        + Sync,
>;

/// Declares a [`TxHandler`]; get one from [`PgProvider::tx_handler`].
pub struct TxHandlerBuilder<D> {
    provider: Arc<PgProvider>,
    name: String,
    routes: Vec<(String, Route)>,
    page_size: usize,
    timing: Timing,
    on_error: Option<ErrorHook>,
    domain: PhantomData<fn() -> D>,
}

type ErrorHook = Arc<dyn Fn(&Error) + Send + Sync>;

impl<D> TxHandlerBuilder<D> {
    /// Calls `callback(tx, aggregate_id, event, meta)` for each event of aggregate kind `A`,
    /// inside the transaction that also moves the bookmark past the event.
    pub fn handle<A>(mut self, callback: TxCallback<A::Event>) -> Self
    where
        A: Aggregate,
        D: Contains<A>,
    {
        let route: Route = Arc::new(move |tx, stored| {
            let event = decode_event::<A::Event>(stored)?;
            Ok(callback(
                tx,
                stored.meta.aggregate_id.to_string(),
                event,
                stored.meta.clone(),
            ))
        });
        let stream = evtstore_core::provider::stream_of::<A>();
        self.routes.push((stream.to_owned(), route));
        self
    }

    /// Events per transaction (default 1,000).
    pub fn page_size(mut self, events: usize) -> Self {
        self.page_size = events.max(1);
        self
    }

    /// How often a started handler checks for events from other processes (default 1 s);
    /// appends through this provider wake it at once.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.timing.poll_interval = interval;
        self
    }

    /// How long a started handler waits after a failed run (default 1 s).
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.timing.retry_delay = delay;
        self
    }

    /// Called with each failed run of a started handler.
    pub fn on_error(mut self, hook: impl Fn(&Error) + Send + Sync + 'static) -> Self {
        self.on_error = Some(Arc::new(hook));
        self
    }

    /// Checks the declaration and gives the handler.
    pub fn build(self) -> Result<TxHandler> {
        let (streams, routes) = check_routes(&self.name, self.routes)?;
        let inner = TxInner {
            provider: self.provider,
            name: self.name,
            streams,
            routes,
            page_size: self.page_size,
            timing: self.timing,
            on_error: self.on_error,
            runner: Runner::default(),
        };
        Ok(TxHandler {
            inner: Arc::new(inner),
        })
    }
}

/// A handler whose callbacks write in the same transaction as its bookmark: a read model in
/// the same database sees each event exactly once, even when the process dies mid-page.
///
/// Each page is one transaction that first takes a lock named after the handler, so one process
/// at a time runs the handler; others wait for the lock. A failing callback rolls the page back: the
/// bookmark stays before it and the next run retries it. Cheap to clone.
#[derive(Clone)]
pub struct TxHandler {
    inner: Arc<TxInner>,
}

struct TxInner {
    provider: Arc<PgProvider>,
    name: String,
    streams: Vec<String>,
    routes: HashMap<String, Route>,
    page_size: usize,
    timing: Timing,
    on_error: Option<ErrorHook>,
    runner: Runner,
}

impl TxHandler {
    /// Handles every pending event, a page per transaction; returns how many were handled.
    pub async fn run_once(&self) -> Result<usize> {
        self.inner.run_pages(&|| false).await
    }

    /// The position the handler has committed.
    pub async fn position(&self) -> Result<Position> {
        use evtstore_core::Provider;
        let inner = &self.inner;
        Ok(inner.provider.bookmark(&inner.name).await?.unwrap_or(0))
    }

    /// Runs the handler in the background until [`stop`](Self::stop), woken at once by
    /// appends through this provider (and by NOTIFY from other processes), polling as a
    /// fallback. A failed run goes to `on_error` and is retried after `retry_delay`.
    pub fn start(&self) {
        let inner = self.inner.clone();
        let run = move || {
            let inner = inner.clone();
            async move { inner.run_pages(&|| inner.runner.is_stopping()).await }
        };
        let reporter = self.inner.clone();
        let report = move |error: Error| {
            tracing::warn!(handler = %reporter.name, %error, "transactional handler run failed");
            if let Some(hook) = &reporter.on_error {
                hook(&error);
            }
            std::future::ready(())
        };
        let appended = evtstore_core::Provider::subscribe(&*self.inner.provider);
        self.inner
            .runner
            .start(run, appended, self.inner.timing, report);
    }

    /// Stops the background run after the page (transaction) it is handling.
    pub async fn stop(&self) {
        self.inner.runner.stop().await;
    }
}

impl TxInner {
    /// Runs pages until one comes back short, or `stop()` says so between pages.
    async fn run_pages(&self, stop: &(dyn Fn() -> bool + Sync)) -> Result<usize> {
        let mut total = 0;
        loop {
            let (read, handled) = self.run_page().await?;
            total += handled;
            if read < self.page_size || stop() {
                return Ok(total);
            }
        }
    }

    async fn run_page(&self) -> Result<(usize, usize)> {
        let provider = &self.provider;
        let mut client = provider.client().await?;
        let begin = client
            .build_transaction()
            .isolation_level(IsolationLevel::ReadCommitted)
            .start();
        let tx = provider.run("begin", begin).await?;
        let position = self.lock_bookmark(&tx).await?;
        // On this transaction's own connection: taking a second one could wait forever on a
        // pool that running handlers have emptied.
        let page = provider
            .read_page_on(&tx, &self.streams, position, self.page_size)
            .await?;
        let mut handled = 0;
        for event in &page {
            if let Some(route) = self.routes.get(event.meta.stream.as_str()) {
                let outcome = match route(&tx, event) {
                    Ok(call) => call.await.map_err(|source| self.failure(event, source)),
                    Err(decode) => Err(decode),
                };
                outcome?; // dropping `tx` rolls the page back
                handled += 1;
            }
        }
        if let Some(last) = page.last() {
            let sql = &provider.sql.set_bookmark;
            let params: [&(dyn ToSql + Sync); 2] = [&self.name, &(last.meta.position as i64)];
            provider
                .run("save bookmark", tx.execute(sql, &params))
                .await?;
        }
        provider.run("commit", tx.commit()).await?;
        Ok((page.len(), handled))
    }

    /// Takes the handler's lock until the transaction ends, then reads the bookmark.
    ///
    /// An advisory lock, not a row lock: a row lock would give the transaction an id before the
    /// page is read, and the page would then wait for the transaction's own end (see `sql`).
    async fn lock_bookmark(&self, tx: &Transaction<'_>) -> Result<Position> {
        let (provider, what) = (&self.provider, "lock bookmark");
        let (lock, bookmark) = (&provider.sql.lock_handler, &provider.sql.bookmark);
        provider.run(what, tx.execute(lock, &[&self.name])).await?;
        let row = provider
            .run(what, tx.query_opt(bookmark, &[&self.name]))
            .await?;
        Ok(row.map_or(0, |row| row.get::<_, i64>(0) as u64))
    }

    fn failure(&self, event: &StoredEvent, source: BoxError) -> Error {
        Error::Handler {
            handler: self.name.clone(),
            stream: event.meta.stream.to_string(),
            aggregate_id: event.meta.aggregate_id.to_string(),
            version: event.meta.version,
            position: event.meta.position,
            source,
        }
    }
}
