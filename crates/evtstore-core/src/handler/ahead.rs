//! The next page, read while the handler works through this one.
//!
//! After a full page, the page after its last event is read in a task of its own, so the
//! database's work and the round trip overlap the callbacks and the bookmark's save. It is
//! used when the handler then asks for that very page: by the contract of
//! [`Provider::events`], no event can appear later at or below a position a read returned, so
//! the page read earlier is the page from then on, but for events deleted since (as a read a
//! moment earlier would be). A page that came back short ends the run as a fresh one would;
//! later events come with the next run. A page read ahead and not wanted (the position was
//! moved, the handler stopped or failed) is aborted.

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

impl Drop for NextPage {
    fn drop(&mut self) {
        self.page.abort();
    }
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

    /// The page read ahead, if it is the one after `after` and its read succeeded (else the
    /// caller reads the page itself, and meets the error again if it lasts).
    pub(super) async fn take(next: Option<NextPage>, after: Position) -> Option<Vec<StoredEvent>> {
        let mut next = next.filter(|next| next.after == after)?;
        match (&mut next.page).await {
            Ok(Ok(page)) => Some(page),
            Ok(Err(error)) => {
                tracing::debug!(%error, "a page read ahead failed; reading it again");
                None
            }
            Err(error) => {
                tracing::warn!(%error, "a page read ahead panicked; reading it again");
                None
            }
        }
    }
}
