//! One run of a handler: pages of events, callbacks, bookmark saves.

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

use super::{Handler, HandlerFailure, Started};
use crate::error::{BoxError, Error, Result};
use crate::event::{Position, StoredEvent};

impl<S: Send + 'static> Handler<S> {
    /// The cached position, or the bookmark's (tailing as the options say).
    pub(super) async fn resolve_position(&self, cached: &mut Option<Position>) -> Result<Position> {
        if let Some(position) = *cached {
            return Ok(position);
        }
        let options = &self.inner.parts.options;
        let position = if options.always_tail_stream {
            self.tail().await?
        } else {
            match self.load_position().await? {
                Some(position) => position,
                None if options.tail_stream => {
                    let tail = self.tail().await?;
                    self.save_position(tail).await?;
                    tail
                }
                None => 0,
            }
        };
        *cached = Some(position);
        Ok(position)
    }

    pub(super) async fn save_position(&self, position: Position) -> Result<()> {
        let parts = &self.inner.parts;
        if parts.options.in_memory_bookmark {
            return Ok(());
        }
        parts.provider.set_bookmark(&parts.name, position).await
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
    /// returns how many events were handled.
    ///
    /// Each page holds the position lock only while it runs, so a `reset` or `set_position`
    /// takes effect from the next page.
    pub(super) async fn run_pages(&self, stop: &(dyn Fn() -> bool + Sync)) -> Result<usize> {
        let mut total = 0;
        loop {
            let (read, handled) = self.run_page().await?;
            total += handled;
            if read < self.inner.parts.options.page_size || stop() {
                return Ok(total);
            }
            // Lets a set_position, reset or stop waiting on this runtime's thread go first.
            tokio::task::yield_now().await;
        }
    }

    /// Reads and handles one page, saving the bookmark after it; returns (read, handled).
    async fn run_page(&self) -> Result<(usize, usize)> {
        let parts = &self.inner.parts;
        let page_size = parts.options.page_size;
        let mut cursor = self.inner.cursor.lock().await;
        let cursor = &mut *cursor;
        let mut position = self.resolve_position(&mut cursor.position).await?;
        parts.hooks.before_run().await;
        let page = parts
            .provider
            .events(&parts.streams, position, page_size)
            .await?;
        let start = position;
        let (handled, outcome) = self
            .handle_page(&mut cursor.state, &page, &mut position)
            .await;
        if position != start {
            self.save_position(position).await?;
            cursor.position = Some(position);
        }
        parts.hooks.after_run(page.len(), handled).await;
        outcome?;
        if page.len() >= page_size && position == start {
            return Err(Error::backend(
                format!("handler {:?}", parts.name),
                "the provider returned a full page without moving past the position",
            ));
        }
        Ok((page.len(), handled))
    }

    /// Handles a page in order, moving `position` past each event done (or skipped).
    async fn handle_page(
        &self,
        state: &mut S,
        page: &[StoredEvent],
        position: &mut Position,
    ) -> (usize, Result<()>) {
        let parts = &self.inner.parts;
        let mut handled = 0;
        for event in page {
            match self.dispatch(state, event).await {
                Ok(true) => handled += 1,
                Ok(false) => {}
                Err(error) if parts.options.continue_on_error || is_skipped_unknown(&error) => {
                    let failure = HandlerFailure {
                        handler: &parts.name,
                        event: Some(&event.meta),
                        error: &error,
                    };
                    parts.hooks.failed(failure).await;
                }
                Err(error) => return (handled, Err(error)),
            }
            *position = event.meta.position;
        }
        (handled, Ok(()))
    }

    /// Runs the event's callback; false when the handler has none for its stream.
    async fn dispatch(&self, state: &mut S, event: &StoredEvent) -> Result<bool> {
        let parts = &self.inner.parts;
        let Some(callback) = parts.routes.get(event.meta.stream.as_str()) else {
            return Ok(false);
        };
        // Decodes, and runs a closure or starts a future.
        let start = move || {
            let state = state; // moved in: the future may hold it
            callback(state, event)
        };
        let started = std::panic::catch_unwind(AssertUnwindSafe(start));
        let started = started.map_err(|panic| self.failure(event, panic_message(panic)))?;
        let Some(started) = started? else {
            return Err(unknown_skipped(event));
        };
        let outcome = match started {
            Started::Done(outcome) => outcome,
            Started::Pending(future) => match AssertUnwindSafe(future).catch_unwind().await {
                Ok(outcome) => outcome,
                Err(panic) => Err(panic_message(panic)),
            },
        };
        outcome
            .map(|()| true)
            .map_err(|source| self.failure(event, source))
    }

    fn failure(&self, event: &StoredEvent, source: BoxError) -> Error {
        Error::Handler {
            handler: self.inner.parts.name.clone(),
            stream: event.meta.stream.to_string(),
            aggregate_id: event.meta.aggregate_id.to_string(),
            version: event.meta.version,
            position: event.meta.position,
            source,
        }
    }
}

/// The report of an event skipped because its type is unknown to this build.
fn unknown_skipped(event: &StoredEvent) -> Error {
    let event_type = crate::aggregate::event_type(&event.data).unwrap_or_default();
    Error::UnknownEventType {
        stream: event.meta.stream.to_string(),
        aggregate_id: event.meta.aggregate_id.to_string(),
        version: event.meta.version,
        position: event.meta.position,
        event_type,
        skipped: true,
    }
}

fn is_skipped_unknown(error: &Error) -> bool {
    matches!(error, Error::UnknownEventType { skipped: true, .. })
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> BoxError {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    format!("callback panicked: {text}").into()
}
