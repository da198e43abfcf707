//! The next pages, read while the handler works through this one.
//!
//! After a full page, the page after its last event is read in a task of its own, so the
//! database's work and the round trip overlap the callbacks and the bookmark's save; when the
//! page's positions follow each other (no other stream's events, nor gaps, in between), the
//! page after that is read too, guessed to start a page size further on. A page read ahead is
//! used when the handler then asks for that very page: by the contract of
//! [`Provider::events`], no event can appear later at or below a position a read returned, so
//! the page read earlier is the page from then on, but for events deleted since (as a read a
//! moment earlier would be). A page that came back short ends the run as a fresh one would;
//! later events come with the next run. Pages read ahead and not wanted (a wrong guess, the
//! position moved, the handler stopped or failed) are aborted.

use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::error::Result;
use crate::event::{Position, StoredEvent};
use crate::provider::Provider;

/// The pages being read ahead, at most two.
#[derive(Default)]
pub(super) struct Ahead {
    reads: Vec<PageRead>,
}

/// A page being read: the events after `after`.
struct PageRead {
    after: Position,
    page: JoinHandle<Result<Vec<StoredEvent>>>,
}

impl Drop for PageRead {
    fn drop(&mut self) {
        self.page.abort();
    }
}

impl Ahead {
    /// After `page`, a full page of `limit` events, starts reading the page after it and, when
    /// its positions follow each other, the one after that; lets the reads send their queries
    /// before the caller goes on.
    pub(super) async fn start(
        &mut self,
        provider: &Arc<dyn Provider>,
        streams: &[String],
        page: &[StoredEvent],
        limit: usize,
    ) {
        let (Some(first), Some(last)) = (page.first(), page.last()) else {
            return;
        };
        let (first, last) = (first.meta.position, last.meta.position);
        self.read(provider, streams, last, limit);
        if last - first + 1 == limit as Position {
            self.read(provider, streams, last + limit as Position, limit);
        }
        tokio::task::yield_now().await;
    }

    /// Starts reading the `limit` events of `streams` after `after`, unless that read is
    /// under way.
    fn read(
        &mut self,
        provider: &Arc<dyn Provider>,
        streams: &[String],
        after: Position,
        limit: usize,
    ) {
        if self.reads.iter().any(|read| read.after == after) {
            return;
        }
        let (provider, streams) = (provider.clone(), streams.to_vec());
        let page = tokio::spawn(async move { provider.events(&streams, after, limit).await });
        self.reads.push(PageRead { after, page });
    }

    /// The page read ahead after `after`, if it was read and its read succeeded (else the
    /// caller reads the page itself, and meets the error again if it lasts). Reads of other
    /// pages before it are dropped; so are all of them when none is this one.
    pub(super) async fn take(&mut self, after: Position) -> Option<Vec<StoredEvent>> {
        let Some(index) = self.reads.iter().position(|read| read.after == after) else {
            self.reads.clear();
            return None;
        };
        let mut read = self.reads.remove(index);
        self.reads.retain(|other| other.after > after);
        match (&mut read.page).await {
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
