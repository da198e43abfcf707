//! Running a transactional handler: a page per transaction, once or in the background.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, MutexGuard, PoisonError};

use super::{Inner, Savepoint, Tail, TxHandler, TxProvider};
use crate::error::Result;
use crate::event::{Position, StoredEvent};
use crate::handler::page::{Handled, PageEvents, Policy};
use crate::handler::{HandlerFailure, Started};
use crate::seal::PageKeys;

impl<P: TxProvider> TxHandler<P> {
    /// Handles every pending event, a page per transaction; returns how many were handled.
    ///
    /// # Errors
    /// Without `continue_on_error`, the first failing event rolls its page back and stops the
    /// run with its error ([`Error::Handler`](crate::Error::Handler), or the decode error); the
    /// bookmark stays before the page, so the next run retries it. A failing store fails the
    /// run too.
    pub async fn run_once(&self) -> Result<usize> {
        self.inner.run_pages(&|| false).await
    }

    /// Runs the handler in the background until [`stop`](Self::stop), woken at once by the
    /// provider's append signal, polling every `poll_interval` as a fallback. A failed run goes
    /// to `on_error` and is retried after `retry_delay`. Starting a started handler does
    /// nothing. Needs a Tokio runtime.
    pub fn start(&self) {
        let inner = self.inner.clone();
        let first = Arc::new(AtomicBool::new(true));
        let run = move || {
            let (inner, first) = (inner.clone(), first.clone());
            async move {
                if first.swap(false, Ordering::Relaxed) {
                    *inner.tail() = Tail {
                        next: true,
                        kept: None,
                    }; // a start tails if asked
                }
                inner.run_pages(&|| inner.runner.is_stopping()).await
            }
        };
        let reporter = self.inner.clone();
        let report = move |error| {
            let reporter = reporter.clone();
            async move {
                let failure = HandlerFailure {
                    handler: &reporter.name,
                    event: None,
                    error: &error,
                };
                reporter.hooks.failed(failure).await;
            }
        };
        let (appended, timing) = (self.inner.provider.subscribe(), self.inner.options.timing);
        self.inner.runner.start(run, appended, timing, report);
    }

    /// Stops the background run after the page (transaction) it is handling.
    pub async fn stop(&self) {
        self.inner.runner.stop().await;
    }

    /// True between `start` and `stop`.
    pub fn is_running(&self) -> bool {
        self.inner.runner.is_running()
    }
}

impl<P: TxProvider> Inner<P> {
    fn policy(&self) -> Policy<'_> {
        self.options.policy(&self.name, &self.hooks)
    }

    /// Runs pages until one comes back short, or `stop()` says so between pages.
    async fn run_pages(&self, stop: &(dyn Fn() -> bool + Sync)) -> Result<usize> {
        let mut total = 0;
        loop {
            let (read, handled) = self.run_page().await?;
            total += handled;
            if read < self.options.page_size || stop() {
                return Ok(total);
            }
        }
    }

    /// One page in one transaction; returns (read, handled). The hooks run outside it.
    async fn run_page(&self) -> Result<(usize, usize)> {
        self.hooks.before_run().await;
        let (read, outcome) = self.transaction().await;
        let handled = *outcome.as_ref().unwrap_or(&0);
        self.hooks.after_run(read, handled).await;
        outcome.map(|handled| (read, handled))
    }

    /// Begins, reads and handles a page, saves the bookmark and commits; returns how many
    /// events were read, and how many were handled (none when it rolled back).
    async fn transaction(&self) -> (usize, Result<usize>) {
        let provider = &*self.provider;
        let mut conn = match provider.acquire().await {
            Ok(conn) => conn,
            Err(error) => return (0, Err(error)),
        };
        let mut read = 0;
        let page = async {
            // Another process runs the handler: a standby carries on from its bookmark.
            let waiting = || self.tail().next = false;
            let begin = provider.begin(&mut conn, &self.name, &waiting);
            let (mut tx, bookmark) = begin.await?;
            let (tailing, kept) = self.tails(bookmark);
            let start = match kept {
                _ if !tailing => bookmark.unwrap_or(0),
                Some(kept) => kept.max(bookmark.unwrap_or(0)),
                None => self.new_tail(&mut tx).await?,
            };
            // On the transaction's own connection: taking a second one could wait forever on
            // a pool that running handlers have emptied.
            let (streams, limit) = (&self.streams, self.options.page_size);
            let mut page = provider.read_page(&mut tx, streams, start, limit).await?;
            self.open_sealed(&mut tx, &mut page).await?;
            read = page.len();
            let mut position = start;
            let mut events = TxEvents {
                inner: self,
                tx: &mut tx,
            };
            let policy = self.policy();
            let (handled, outcome) = policy.handle_page(&mut events, &page, &mut position).await;
            outcome?; // dropping `tx` rolls the page back
            if bookmark != Some(position) {
                provider
                    .save_bookmark(&mut tx, &self.name, position)
                    .await?;
            }
            provider.commit(tx).await?;
            if tailing {
                *self.tail() = Tail::default();
            }
            Ok(handled)
        };
        let outcome = page.await;
        (read, outcome)
    }

    /// The end of history, the last event's position, kept until a page from it commits.
    async fn new_tail(&self, tx: &mut P::Tx<'_>) -> Result<Position> {
        let tail = self.provider.tail(tx, &self.streams).await?;
        self.tail().kept = Some(tail);
        Ok(tail)
    }

    fn tail(&self) -> MutexGuard<'_, Tail> {
        self.tail.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens the page's sealed events with their keys, read on the transaction.
    async fn open_sealed(&self, tx: &mut P::Tx<'_>, page: &mut [StoredEvent]) -> Result<()> {
        let mut keys = PageKeys::new();
        for (stream, id) in crate::seal::sealed_aggregates(page) {
            let key = self.provider.key_in(tx, &stream, &id).await?;
            keys.insert((stream, id), key);
        }
        crate::seal::open_with(page, &keys)
    }

    /// Whether this page starts at the end of history: with either option when no bookmark
    /// was saved yet (also after waiting for another process's first page, rolled back), and
    /// with `always_tail_stream` when a start asked for it. Also the end kept from a page that
    /// failed there, read under the same lock (a page that commits meanwhile clears both): the
    /// page starts there, or at the bookmark if another process moved it past that.
    fn tails(&self, bookmark: Option<Position>) -> (bool, Option<Position>) {
        let options = &self.options;
        let tail = self.tail();
        let tailing = (bookmark.is_none() && (options.tail_stream || options.always_tail_stream))
            || (options.always_tail_stream && tail.next);
        (tailing, tail.kept)
    }
}

/// A transactional handler's page: each event goes to its callback with the transaction.
struct TxEvents<'h, 't, 'c, P: TxProvider> {
    inner: &'h Inner<P>,
    tx: &'t mut P::Tx<'c>,
}

impl<P: TxProvider> PageEvents for TxEvents<'_, '_, '_, P> {
    async fn handle(&mut self, event: &StoredEvent) -> Result<Handled> {
        let inner = self.inner;
        if !inner.routes.contains_key(event.meta.stream.as_str()) {
            return Ok(Handled::Ignored);
        }
        if !inner.options.continue_on_error {
            return Ok(self.call(event).await);
        }
        // A failing event's writes are undone, and in PostgreSQL the transaction is usable again.
        let provider = &*inner.provider;
        provider.savepoint(self.tx, Savepoint::Set).await?;
        let handled = self.call(event).await;
        if let Handled::Failed(_) = handled {
            provider.savepoint(self.tx, Savepoint::RollBack).await?;
        }
        provider.savepoint(self.tx, Savepoint::Release).await?;
        Ok(handled)
    }
}

impl<P: TxProvider> TxEvents<'_, '_, '_, P> {
    async fn call(&mut self, event: &StoredEvent) -> Handled {
        let route = &self.inner.routes[event.meta.stream.as_str()];
        match route(self.tx, event) {
            Ok(future) => {
                let started = future.map(Started::Pending);
                self.inner.policy().call(event, started).await
            }
            Err(error) => Handled::Failed(error),
        }
    }
}
