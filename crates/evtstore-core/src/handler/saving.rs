//! A page's bookmark save, made while the handler works through the next page.
//!
//! After a page, the handler starts saving its bookmark in a task of its own, keeps it in the
//! cursor, and goes on with the next page. Whoever holds the cursor next waits for that save
//! before anything that reads or writes the bookmark or the lease: the run after the next
//! page's callbacks (then the next save starts), before a lease call, a bookmark read and at
//! its end; `set_position`, `reset`, `stop` and the release after `run_once` before theirs.
//! So a save's round trip overlaps the callbacks instead of adding to them, saves land in
//! order, and each is of a position whose events were all handled: a failed save replays
//! from the page it was for, never skips.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::task::JoinHandle;

use super::{Cursor, Handler};
use crate::error::{Error, Result};
use crate::event::Position;

/// A bookmark save in flight: the page it was for, from `from` to `at`.
pub(super) struct Saving {
    from: Position,
    at: Position,
    task: JoinHandle<Result<()>>,
    /// Set when it failed, for the run that started it, whoever waited for it.
    failed: Arc<AtomicBool>,
}

/// The outcome of the last save a run started: failed or not, once waited for.
pub(super) type SaveOutcome = Arc<AtomicBool>;

/// Fails when the save of `outcome` failed (waited for by another caller, who got its error).
pub(super) fn check_saved(outcome: Option<&SaveOutcome>, name: &str) -> Result<()> {
    match outcome.is_some_and(|failed| failed.load(Ordering::Acquire)) {
        true => Err(Error::backend(
            format!("handler {name:?}: save the bookmark"),
            "the save after the run's last page failed; its events will be handled again",
        )),
        false => Ok(()),
    }
}

impl<S: Send + 'static> Handler<S> {
    /// Starts saving the bookmark at `at` after a page that started at `from` (fenced by the
    /// lease when the handler holds one), caches `at`, and lets the save send its query.
    /// Called with no save in flight; gives the save's outcome, once it is waited for.
    pub(super) async fn start_save(
        &self,
        cursor: &mut Cursor<S>,
        from: Position,
        at: Position,
    ) -> Option<SaveOutcome> {
        cursor.place(at);
        let Some(save) = self.bookmark_save(cursor, at) else {
            self.inner.passed.send_replace(at);
            return None;
        };
        let task = tokio::spawn(save);
        let failed = SaveOutcome::default();
        let outcome = failed.clone();
        cursor.saving = Some(Saving {
            from,
            at,
            task,
            failed,
        });
        tokio::task::yield_now().await;
        Some(outcome)
    }

    /// Waits for the save in flight, if any. Saved, the handler has passed its position;
    /// failed, the handler goes back to the start of its page (or, when the lease was lost,
    /// forgets its place and lease).
    pub(super) async fn settle(&self, cursor: &mut Cursor<S>) -> Result<()> {
        let Some(save) = &mut cursor.saving else {
            return Ok(());
        };
        let (from, at, failed) = (save.from, save.at, save.failed.clone());
        // Dropped once done: a settle that is cancelled leaves the save to the next one.
        let done = (&mut save.task).await;
        cursor.saving = None;
        let saved = match done {
            Ok(saved) => saved,
            Err(error) => Err(Error::backend(
                format!("handler {:?}: save the bookmark", self.inner.parts.name),
                error,
            )),
        };
        match &saved {
            Ok(()) => {
                self.inner.passed.send_replace(at);
            }
            Err(Error::LeaseLost { .. }) => (cursor.lease, cursor.position) = (None, None),
            Err(_) => cursor.position = Some(from),
        }
        failed.store(saved.is_err(), Ordering::Release);
        saved
    }

    /// [`settle`](Self::settle) before another caller's change, which the save's outcome
    /// does not stop: a failure is logged (the handler has gone back as `settle` says).
    pub(super) async fn settle_or_warn(&self, cursor: &mut Cursor<S>) {
        if let Err(error) = self.settle(cursor).await {
            tracing::warn!(handler = %self.name(), %error, "a page's bookmark save failed");
        }
    }
}
