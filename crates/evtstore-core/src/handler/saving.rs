//! A page's bookmark save, made while the handler works through the next page.
//!
//! After a page, the handler starts saving its bookmark in a task of its own and goes on with
//! the next page; the save is awaited after that page's callbacks (and before the run ends,
//! before the lease is renewed or the bookmark read, and before another caller takes the
//! handler's cursor), and the next save starts only once it has succeeded. So a save's round
//! trip overlaps the callbacks instead of adding to them, and each save is of a position whose
//! events were all handled: a failed save replays (from the page it was for), never skips.

use tokio::task::JoinHandle;

use super::{Cursor, Handler};
use crate::error::{Error, Result};
use crate::event::Position;

/// A bookmark save in flight: the page it was for, from `from` to `at`.
pub(super) struct Saving {
    from: Position,
    at: Position,
    task: JoinHandle<Result<()>>,
}

impl Drop for Saving {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<S: Send + 'static> Handler<S> {
    /// Starts saving the bookmark at `at` after a page that started at `from` (fenced by the
    /// lease when the handler holds one), caches `at`, and lets the save send its query.
    pub(super) async fn start_save(
        &self,
        cursor: &mut Cursor<S>,
        from: Position,
        at: Position,
    ) -> Option<Saving> {
        let parts = &self.inner.parts;
        cursor.place(at);
        if parts.options.in_memory_bookmark {
            self.inner.passed.send_replace(at);
            return None;
        }
        let provider = parts.provider.clone();
        let task = match &cursor.lease {
            Some(held) => {
                let lease = held.lease.clone();
                tokio::spawn(async move { provider.set_bookmark_leased(&lease, at).await })
            }
            None => {
                let name = parts.name.clone();
                tokio::spawn(async move { provider.set_bookmark(&name, at).await })
            }
        };
        tokio::task::yield_now().await;
        Some(Saving { from, at, task })
    }

    /// Waits for the save in flight, if any. Saved, the handler has passed its position;
    /// failed, the handler goes back to the start of its page (or, when the lease was lost,
    /// forgets its place and lease).
    pub(super) async fn settle(
        &self,
        cursor: &mut Cursor<S>,
        saving: &mut Option<Saving>,
    ) -> Result<()> {
        let Some(mut save) = saving.take() else {
            return Ok(());
        };
        let saved = match (&mut save.task).await {
            Ok(saved) => saved,
            Err(error) => Err(Error::backend(
                format!("handler {:?}: save the bookmark", self.inner.parts.name),
                error,
            )),
        };
        match &saved {
            Ok(()) => {
                self.inner.passed.send_replace(save.at);
            }
            Err(Error::LeaseLost { .. }) => (cursor.lease, cursor.position) = (None, None),
            Err(_) => cursor.position = Some(save.from),
        }
        saved
    }
}
