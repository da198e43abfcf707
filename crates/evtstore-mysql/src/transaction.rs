//! Transactions: appends inside the caller's transaction, and transactional handlers whose
//! read-model writes and bookmark commit together (each event applied exactly once).

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use evtstore_core::provider::check_bookmark;
use evtstore_core::provider::decode_event;
use evtstore_core::provider::expectations;
use evtstore_core::provider::now_millis;
use evtstore_core::provider::{Runner, Timing, check_routes};
use evtstore_core::{
    Aggregate, BoxError, Contains, Error, EventMeta, NewEvent, Position, Result, StoredEvent,
};
use futures_util::future::BoxFuture;
use sqlx::{Connection, MySqlConnection};

use crate::MysqlProvider;

impl MysqlProvider {
    /// Appends inside the caller's own transaction (`&mut *tx` of a `sqlx::Transaction`, on
    /// any connection to the same database): the events commit or roll back with it.
    ///
    /// Each aggregate's version is checked with a plain read, so the transaction takes no lock
    /// on existing events. The events get their positions after the caller commits: call
    /// [`sequence`](Self::sequence) then, which also wakes this process's handlers (else the
    /// sequencer of any running provider gives them within its `sequence_interval`); the
    /// envelopes returned here carry position 0. Pair it with `Domain::batch` to execute
    /// commands inside the transaction.
    pub async fn append_in(
        &self,
        conn: &mut MySqlConnection,
        events: Vec<NewEvent>,
    ) -> Result<Vec<EventMeta>> {
        let expected = expectations(&events)?;
        let timestamp = now_millis();
        self.insert_in(conn, &events, &expected, timestamp).await?;
        Ok(events.iter().map(|e| e.meta(0, timestamp)).collect())
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

/// A callback of a transactional handler: it gets the transaction's connection and the event.
pub type TxCallback<E> = Box<
    dyn for<'t> Fn(
            &'t mut MySqlConnection,
            String,
            E,
            EventMeta,
        ) -> BoxFuture<'t, Result<(), BoxError>>
        + Send
        + Sync,
>;

type Route = Arc<
    dyn for<'t> Fn(
            &'t mut MySqlConnection,
            &StoredEvent,
        ) -> Result<BoxFuture<'t, Result<(), BoxError>>>
        + Send
        + Sync,
>;

type ErrorHook = Arc<dyn Fn(&Error) + Send + Sync>;

/// Declares a [`TxHandler`]; get one from [`MysqlProvider::tx_handler`].
pub struct TxHandlerBuilder<D> {
    provider: Arc<MysqlProvider>,
    name: String,
    routes: Vec<(String, Route)>,
    page_size: usize,
    timing: Timing,
    on_error: Option<ErrorHook>,
    domain: PhantomData<fn() -> D>,
}

impl<D> TxHandlerBuilder<D> {
    /// Calls `callback(conn, aggregate_id, event, meta)` for each event of aggregate kind `A`,
    /// inside the transaction that also moves the bookmark past the event.
    pub fn handle<A>(mut self, callback: TxCallback<A::Event>) -> Self
    where
        A: Aggregate,
        D: Contains<A>,
    {
        let route: Route = Arc::new(move |conn, stored| {
            let event = decode_event::<A::Event>(stored)?;
            let (id, meta) = (stored.meta.aggregate_id.to_string(), stored.meta.clone());
            Ok(callback(conn, id, event, meta))
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

    /// How often a started handler checks for events (default 1 s); positions given by this
    /// process's sequencer wake it at once.
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
        check_bookmark(&self.name)?;
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
/// Each page is one transaction that first locks the handler's bookmark row, so one process
/// at a time runs the handler. A failing callback rolls the page back: the bookmark stays
/// before it and the next run retries it. Cheap to clone.
#[derive(Clone)]
pub struct TxHandler {
    inner: Arc<TxInner>,
}

struct TxInner {
    provider: Arc<MysqlProvider>,
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
        let inner = &self.inner;
        Ok(inner
            .provider
            .read_bookmark(&inner.name)
            .await?
            .unwrap_or(0))
    }

    /// Runs the handler in the background until [`stop`](Self::stop), woken at once when
    /// this process's sequencer gives positions, polling as a fallback.
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
        let timing = self.inner.timing;
        self.inner.runner.start(run, appended, timing, report);
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
        let fail = |what: &'static str| move |e| provider.fail(what, e);
        let mut conn = provider.conn().await?;
        sqlx::query(&provider.sql.create_bookmark)
            .bind(&self.name)
            .execute(&mut *conn)
            .await
            .map_err(fail("create bookmark"))?;
        let mut tx = conn.begin().await.map_err(fail("begin"))?;
        let position: i64 = sqlx::query_scalar(&provider.sql.lock_bookmark)
            .bind(&self.name)
            .fetch_one(&mut *tx)
            .await
            .map_err(fail("lock bookmark"))?;
        let page = provider
            .read_page(&mut tx, &self.streams, position as u64, self.page_size)
            .await?;
        let mut handled = 0;
        for event in &page {
            if let Some(route) = self.routes.get(event.meta.stream.as_str()) {
                let call = route(&mut tx, event)?; // dropping `tx` rolls the page back
                call.await.map_err(|source| self.failure(event, source))?;
                handled += 1;
            }
        }
        if let Some(last) = page.last() {
            provider
                .write_bookmark(&mut tx, &self.name, last.meta.position)
                .await?;
        }
        tx.commit().await.map_err(fail("commit"))?;
        Ok((page.len(), handled))
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
