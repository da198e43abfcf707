//! One run of a handler: pages of events, callbacks, bookmark saves.

use std::panic::AssertUnwindSafe;

use tracing::Instrument;

use super::ahead::Ahead;
use super::leasing::Held;
use super::page::{Handled, PageEvents};
use super::saving::{SaveOutcome, check_saved};
use super::{Cursor, Handler};
use crate::error::{Error, Result};
use crate::event::{Position, StoredEvent};

impl<S: Send + 'static> Handler<S> {
    /// The cached position, or the bookmark's (tailing as the options say).
    pub(super) async fn resolve_position(&self, cursor: &mut Cursor<S>) -> Result<Position> {
        if let Some(position) = cursor.position {
            return Ok(position);
        }
        self.settle(cursor).await?; // a save in flight first: the bookmark is read next
        let options = &self.inner.parts.options;
        let position = if cursor.tail_next {
            // Kept before it is saved, so that a failed save is not followed by a later end;
            // saved, so that the next holder of the lease starts there too.
            let tail = self.tail().await?;
            (cursor.position, cursor.tail_next) = (Some(tail), false);
            self.save_leased(cursor, tail).await?;
            tail
        } else {
            match self.load_position().await? {
                Some(position) => position,
                None if options.tail_stream => {
                    let tail = self.tail().await?;
                    self.save_leased(cursor, tail).await?;
                    tail
                }
                None => 0,
            }
        };
        cursor.place(position);
        self.passed_at_least(position);
        Ok(position)
    }

    /// Tells `wait_for` that the handler has passed `position` (a bookmark read after a
    /// restart, or from another holder of the lease), unless it knew of a later one.
    pub(super) fn passed_at_least(&self, position: Position) {
        self.inner.passed.send_if_modified(|passed| {
            let later = position > *passed;
            if later {
                *passed = position;
            }
            later
        });
    }

    async fn load_position(&self) -> Result<Option<Position>> {
        let parts = &self.inner.parts;
        if parts.options.in_memory_bookmark {
            return Ok(None);
        }
        parts.provider.bookmark(&parts.name).await
    }

    async fn tail(&self) -> Result<Position> {
        let parts = &self.inner.parts;
        let last = parts.provider.last_event(&parts.streams, None).await?;
        Ok(last.map_or(0, |event| event.meta.position))
    }

    /// Reads and handles pages until one comes back short or `stop()` says so between pages;
    /// returns how many were handled, or `None` when another process holds the lease. Ends
    /// with the last page's bookmark saved.
    ///
    /// Each page holds the position lock only while it runs, so a `reset` or `set_position`
    /// takes effect from the next page (after the save in flight: see `saving`).
    pub(super) async fn run_pages(
        &self,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<Option<usize>> {
        let (mut total, mut ahead, mut last_save) = (0, Ahead::default(), None);
        let ran = loop {
            let span = tracing::debug_span!("handler page", handler = %self.inner.parts.name);
            let page = self.run_page(&mut ahead, &mut last_save);
            let (read, handled) = match page.instrument(span).await {
                Ok(Some(ran)) => ran,
                Ok(None) => break Ok((total > 0).then_some(total)),
                Err(error) => break Err(error),
            };
            total += handled;
            if read < self.inner.parts.options.page_size || stop() {
                break Ok(Some(total));
            }
            // Lets a set_position, reset or stop waiting on this runtime's thread go first.
            tokio::task::yield_now().await;
        };
        let settled = self.settle(&mut *self.inner.cursor.lock().await).await;
        let ran = ran?;
        settled?;
        check_saved(last_save.as_ref(), &self.inner.parts.name)?;
        Ok(ran)
    }

    /// Reads and handles one page, and starts saving the bookmark after it once the previous
    /// page's save (awaited after this page's callbacks) has succeeded; returns (read,
    /// handled), or `None` when another process holds the lease. After a full page, starts
    /// reading the next ones (`ahead`); takes this one from there when it was read ahead.
    async fn run_page(
        &self,
        ahead: &mut Ahead,
        last_save: &mut Option<SaveOutcome>,
    ) -> Result<Option<(usize, usize)>> {
        let parts = &self.inner.parts;
        let page_size = parts.options.page_size;
        let mut cursor = self.inner.cursor.lock().await;
        let cursor = &mut *cursor;
        if !self.hold_lease(cursor).await? {
            return Ok(None);
        }
        let mut position = self.resolve_position(cursor).await?;
        parts.hooks.before_run().await;
        let mut page = match ahead.take(position).await {
            Some(page) => page,
            None => (parts.provider.events(&parts.streams, position, page_size)).await?,
        };
        if page.len() == page_size {
            let streams = &parts.streams;
            ahead
                .start(&parts.provider, streams, &page, page_size)
                .await;
        }
        crate::seal::open_page(&*parts.provider, &mut page).await?;
        crate::telemetry::page_read(&parts.name, &page);
        let start = position;
        let mut events = StateEvents {
            handler: self,
            state: &mut cursor.state,
            lease: &mut cursor.lease,
        };
        let policy = parts.policy();
        let (handled, outcome) = policy.handle_page(&mut events, &page, &mut position).await;
        // The previous page's save: when it failed, the handler goes back to that page, and
        // this page's outcome comes again with it.
        let settled = self.settle(cursor).await;
        if position != start && settled.is_ok() {
            *last_save = self.start_save(cursor, start, position).await;
        }
        crate::telemetry::page_done(
            &parts.name,
            handled,
            page.len() < page_size && outcome.is_ok(),
        );
        parts.hooks.after_run(page.len(), handled).await;
        settled?;
        outcome?;
        if page.len() >= page_size && position == start {
            return Err(Error::backend(
                format!("handler {:?}", parts.name),
                "the provider returned a full page without moving past the position",
            ));
        }
        Ok(Some((page.len(), handled)))
    }
}

/// A plain handler's page: each event goes to its callback with the handler's state, while
/// the handler keeps its lease.
struct StateEvents<'h, S> {
    handler: &'h Handler<S>,
    state: &'h mut S,
    lease: &'h mut Option<Held>,
}

impl<S: Send + 'static> PageEvents for StateEvents<'_, S> {
    async fn handle(&mut self, event: &StoredEvent) -> Result<Handled> {
        self.handler.renew_in_page(self.lease).await?;
        let parts = &self.handler.inner.parts;
        let Some(callback) = parts.routes.get(event.meta.stream.as_str()) else {
            return Ok(Handled::Ignored);
        };
        let other_partition = parts.partition.is_some_and(|(partition, of)| {
            super::partition::partition_of(&event.meta.aggregate_id, of) != partition
        });
        if other_partition {
            return Ok(Handled::Ignored);
        }
        // Decodes, and runs a closure or starts a future: a panic in either fails the event.
        let state = &mut *self.state;
        let start = move || {
            let state = state; // moved in: the future may hold it
            callback(state, event)
        };
        Ok(match std::panic::catch_unwind(AssertUnwindSafe(start)) {
            Ok(Ok(started)) => parts.policy().call(event, started).await,
            Ok(Err(error)) => Handled::Failed(error),
            Err(panic) => parts.policy().panicked(event, panic),
        })
    }
}
