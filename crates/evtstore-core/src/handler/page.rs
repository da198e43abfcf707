//! One page of events, handled in order: what every kind of handler shares (the skip policy,
//! the failure reports, panics caught in callbacks).

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::{CallbackResult, HandlerFailure, Hooks, Started};
use crate::aggregate::{Aggregate, UnknownEvents};
use crate::envelope::handling;
use crate::error::{BoxError, Error, Result};
use crate::event::{EventMeta, Position, StoredEvent};
use crate::upcast::decode_stored;

/// What became of one event.
pub(super) enum Handled {
    /// Its callback succeeded.
    Done,
    /// The handler has no callback for its stream.
    Ignored,
    /// It failed (its callback, its decoding, or an unknown type): the policy decides.
    Failed(Error),
}

/// Gives a page's events to a handler's callbacks one at a time.
pub(super) trait PageEvents: Send {
    /// Handles one event. An `Err` (the store failed) stops the page whatever the policy.
    fn handle(&mut self, event: &StoredEvent) -> impl Future<Output = Result<Handled>> + Send;
}

/// Who handles a page, and how it treats failures.
pub(super) struct Policy<'p> {
    pub(super) name: &'p str,
    pub(super) continue_on_error: bool,
    pub(super) hooks: &'p Hooks,
}

impl Policy<'_> {
    /// Handles a page in order, moving `position` past each event done (or skipped); returns
    /// how many were handled, and the error that stopped the page.
    pub(super) async fn handle_page(
        &self,
        events: &mut impl PageEvents,
        page: &[StoredEvent],
        position: &mut Position,
    ) -> (usize, Result<()>) {
        let mut handled = 0;
        for event in page {
            match events.handle(event).await {
                Ok(Handled::Done) => handled += 1,
                Ok(Handled::Ignored) => {}
                Ok(Handled::Failed(error))
                    if self.continue_on_error || is_skipped_unknown(&error) =>
                {
                    let failure = HandlerFailure {
                        handler: self.name,
                        event: Some(&event.meta),
                        error: &error,
                    };
                    self.hooks.failed(failure).await;
                }
                Ok(Handled::Failed(error)) | Err(error) => return (handled, Err(error)),
            }
            *position = event.meta.position;
        }
        (handled, Ok(()))
    }

    /// Awaits an event's callback if it is not done already (`None`: its type is unknown and
    /// skipped), catching a panic; a failure names the handler and the event.
    pub(super) async fn call(&self, event: &StoredEvent, callback: Option<Started<'_>>) -> Handled {
        let Some(started) = callback else {
            return Handled::Failed(unknown_skipped(event));
        };
        let outcome = match started {
            Started::Done(outcome) => outcome,
            Started::Pending(future) => match AssertUnwindSafe(handling(&event.meta, future))
                .catch_unwind()
                .await
            {
                Ok(outcome) => outcome,
                Err(panic) => Err(panic_message(panic)),
            },
        };
        match outcome {
            Ok(()) => Handled::Done,
            Err(source) => Handled::Failed(self.failure(event, source)),
        }
    }

    /// An event whose callback (or decoding) panicked before it returned.
    pub(super) fn panicked(&self, event: &StoredEvent, panic: Box<dyn Any + Send>) -> Handled {
        Handled::Failed(self.failure(event, panic_message(panic)))
    }

    fn failure(&self, event: &StoredEvent, source: BoxError) -> Error {
        Error::Handler {
            handler: self.name.to_owned(),
            stream: event.meta.stream.to_string(),
            aggregate_id: event.meta.aggregate_id.to_string(),
            version: event.meta.version,
            position: event.meta.position,
            source,
        }
    }
}

/// Decodes a stored event and starts `start` on it (the future owns the decoded event), with
/// the handler's `context`; `Ok(None)` when its type is unknown and `unknown` skips those.
pub(super) fn start_decoded<'a, X, A, F>(
    start: &Arc<F>,
    context: &'a mut X,
    stored: &'a StoredEvent,
    unknown: UnknownEvents,
) -> Result<Option<BoxFuture<'a, CallbackResult>>>
where
    X: ?Sized + Send,
    A: Aggregate,
    F: for<'b> Fn(&'b mut X, &'b A::Event, &'b EventMeta) -> BoxFuture<'b, CallbackResult>
        + Send
        + Sync
        + 'static,
{
    if crate::retire::marker(&stored.meta, &stored.data).is_some() {
        return Ok(Some(async { Ok(()) }.boxed())); // transactional handlers pass markers over
    }
    let Some(event) = decode_stored::<A>(&stored.meta, &stored.data, unknown)? else {
        return Ok(None);
    };
    let start = start.clone();
    Ok(Some(
        async move { start(context, &event, &stored.meta).await }.boxed(),
    ))
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

fn panic_message(panic: Box<dyn Any + Send>) -> BoxError {
    format!("callback panicked: {}", panic_text(&panic)).into()
}

/// What a panic said, when it said it in text.
pub(super) fn panic_text(panic: &Box<dyn Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}
