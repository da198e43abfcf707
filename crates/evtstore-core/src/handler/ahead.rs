//! The next page, read while the handler works through this one.
//!
//! After a full page, the page after its last event is read in a task of its own, so the
//! database's work and the round trip overlap the callbacks and the bookmark's save. It is
//! used only when the handler then asks for that very page and it came back full: a page's
//! positions never change once read, and events committed later take higher ones (on every
//! provider), so a full page read earlier is what a read now would return. Otherwise it is
//! dropped and the page read again.

use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::error::Result;
use crate::event::{Position, StoredEvent};
use crate::provider::Provider;

/// A page being read ahead: the events after `after`.
pub(super) struct NextPage {
    after: Position,
    page: JoinHandle<Result<Vec<StoredEvent>>>,
}

impl NextPage {
    /// Starts reading the `limit` events of `streams` after `after`, and lets the read task
    /// send its query before the caller goes on.
    pub(super) async fn start(
        provider: &Arc<dyn Provider>,
        streams: &[String],
        after: Position,
        limit: usize,
    ) -> Self {
        let (provider, streams) = (provider.clone(), streams.to_vec());
        let page = tokio::spawn(async move { provider.events(&streams, after, limit).await });
        tokio::task::yield_now().await;
        NextPage { after, page }
    }

    /// The page read ahead, if it is the one after `after` and came back with `limit` events.
    /// A page read ahead and not taken finishes its read and is dropped.
    pub(super) async fn take(
        next: Option<NextPage>,
        after: Position,
        limit: usize,
    ) -> Option<Vec<StoredEvent>> {
        let next = next.filter(|next| next.after == after)?;
        match next.page.await {
            Ok(Ok(page)) if page.len() == limit => Some(page),
            _ => None,
        }
    }
}
