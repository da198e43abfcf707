//! A plain handler's lease: one process at a time runs a handler with a stored bookmark.
//!
//! Before each page, and between a page's events, the handler holds its lease, renewing it
//! once a quarter of its time has passed (so a page may take longer than the lease); a
//! process that cannot take it stands by and tries again at its next run, woken by the
//! release of a graceful stop or by its poll (an eighth of the lease time at most). Each
//! bookmark save is fenced by the lease, and a new holder reads the bookmark again. A handler
//! that is not started releases its lease after each `run_once` and `set_position`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::{Cursor, Handler};
use crate::error::{Error, Result};
use crate::event::Position;
use crate::lease::Lease;

/// How long a lease lasts unless renewed, by default.
pub(super) const DEFAULT_LEASE: Duration = Duration::from_secs(4);

/// The lease a handler holds, and when to renew it.
pub(super) struct Held {
    pub(super) lease: Lease,
    renew_at: Instant,
}

/// A name for one handler of this process among every process's: the process id, a tag drawn
/// once per process (see [`process_tag`]), and a counter.
pub(super) fn owner_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static PROCESS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let process = PROCESS.get_or_init(process_tag);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("pid{}-{process}-{n}", std::process::id())
}

/// A UUID v7: the time and 74 random bits. Two containers' processes are often both pid 1 and
/// may start in the same millisecond; the random bits still tell their handlers apart (with
/// one name, both would hold one lease and run the handler at once).
fn process_tag() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// The bookmark through which `set_position` asks the lease's holder to move.
fn request_name(name: &str) -> String {
    format!("{name}#move-to")
}

impl<S: Send + 'static> Handler<S> {
    /// The lease time, when this handler takes a lease.
    pub(super) fn lease_time(&self) -> Option<Duration> {
        let options = &self.inner.parts.options;
        options.lease.filter(|_| !options.in_memory_bookmark)
    }

    /// Holds the lease for the next page: true when held, false when another process holds it.
    /// A new holder forgets its cached position, and applies a pending `set_position`.
    pub(super) async fn hold_lease(&self, cursor: &mut Cursor<S>) -> Result<bool> {
        let Some(ttl) = self.lease_time().filter(|_| self.lease_call_due(cursor)) else {
            return Ok(true);
        };
        self.settle(cursor).await?; // a save in flight lands before the lease changes hands
        let parts = &self.inner.parts;
        let taken = parts
            .provider
            .acquire_lease(&parts.name, &self.inner.owner, ttl)
            .await?;
        let Some(lease) = taken else {
            cursor.lease = None;
            cursor.tail_next = false; // whoever runs it now has its own place
            return Ok(false);
        };
        let new_holder = cursor
            .lease
            .as_ref()
            .is_none_or(|h| h.lease.token != lease.token);
        if new_holder && cursor.position.is_some() {
            // The last holder may have moved the bookmark since it was cached.
            if let Some(stored) = parts.provider.bookmark(&parts.name).await? {
                cursor.place(stored);
                self.passed_at_least(stored);
            }
        }
        let renew_at = Instant::now() + ttl / 4;
        cursor.lease = Some(Held { lease, renew_at });
        self.apply_requested_position(cursor).await?;
        Ok(true)
    }

    /// True when `hold_lease` calls the store: the handler takes a lease, and holds none or is
    /// due to renew it.
    fn lease_call_due(&self, cursor: &Cursor<S>) -> bool {
        let due = |held: &Held| Instant::now() >= held.renew_at;
        self.lease_time().is_some() && cursor.lease.as_ref().is_none_or(due)
    }

    /// Renews the lease in the middle of a page once its time has come, so that a page that
    /// takes longer than the lease keeps it. A renewal that finds the lease gone (taken over,
    /// or expired and taken again) changes nothing: the page's fenced save then fails.
    pub(super) async fn renew_in_page(&self, held: &mut Option<Held>) -> Result<()> {
        let (Some(held), Some(ttl)) = (held.as_mut(), self.lease_time()) else {
            return Ok(());
        };
        if Instant::now() < held.renew_at {
            return Ok(());
        }
        let parts = &self.inner.parts;
        let renewed = parts
            .provider
            .acquire_lease(&parts.name, &self.inner.owner, ttl)
            .await?;
        if let Some(lease) = renewed.filter(|l| l.token == held.lease.token) {
            held.lease = lease;
        }
        held.renew_at = Instant::now() + ttl / 4;
        Ok(())
    }

    /// Saves the bookmark: fenced by the lease when the handler takes one. A lost lease is
    /// forgotten, with the cached position.
    pub(super) async fn save_leased(&self, cursor: &mut Cursor<S>, at: Position) -> Result<()> {
        match self.bookmark_save(cursor, at) {
            Some(save) => forget_if_lost(cursor, save.await),
            None => Ok(()),
        }
    }

    /// The store's call that saves the bookmark at `at`, fenced by the lease when the handler
    /// holds one; `None` for an in-memory bookmark.
    pub(super) fn bookmark_save(
        &self,
        cursor: &Cursor<S>,
        at: Position,
    ) -> Option<BoxFuture<'static, Result<()>>> {
        let parts = &self.inner.parts;
        if parts.options.in_memory_bookmark {
            return None;
        }
        let provider = parts.provider.clone();
        Some(match &cursor.lease {
            Some(held) => {
                let lease = held.lease.clone();
                async move { provider.set_bookmark_leased(&lease, at).await }.boxed()
            }
            None => {
                let name = parts.name.clone();
                async move { provider.set_bookmark(&name, at).await }.boxed()
            }
        })
    }

    /// Moves the bookmark: through the lease when this handler can hold it (after any earlier
    /// ask of another process, which this move overrides), else by asking the process that
    /// holds it, which moves it at its next renewal.
    pub(super) async fn move_bookmark(&self, cursor: &mut Cursor<S>, at: Position) -> Result<()> {
        self.settle_or_warn(cursor).await; // the run's save in flight lands first
        if self.lease_time().is_none() || self.hold_lease(cursor).await? {
            if self.lease_time().is_some() {
                self.apply_requested_position(cursor).await?;
            }
            self.save_leased(cursor, at).await?;
            cursor.place(at);
            self.inner.passed.send_replace(at);
            return Ok(());
        }
        let parts = &self.inner.parts;
        parts
            .provider
            .set_bookmark(&request_name(&parts.name), at + 1)
            .await
    }

    /// Releases the lease, so that another process takes over at once.
    pub(super) async fn release_lease(&self, cursor: &mut Cursor<S>) -> Result<()> {
        self.settle_or_warn(cursor).await;
        match cursor.lease.take() {
            Some(held) => self.inner.parts.provider.release_lease(&held.lease).await,
            None => Ok(()),
        }
    }

    /// Releases the lease after a `run_once` or `set_position` of a handler not started.
    pub(super) async fn release_unless_started(&self) {
        if self.inner.runner.is_running() {
            return;
        }
        let mut cursor = self.inner.cursor.lock().await;
        if let Err(error) = self.release_lease(&mut cursor).await {
            tracing::warn!(handler = %self.name(), %error, "lease not released: it will expire");
        }
    }

    /// Applies a position another process asked for with `set_position`, and clears the ask
    /// unless a newer one came meanwhile (applied at the next renewal): both in one write,
    /// fenced by the lease, so an ask is applied once. Called with the lease held.
    async fn apply_requested_position(&self, cursor: &mut Cursor<S>) -> Result<()> {
        let parts = &self.inner.parts;
        let request = request_name(&parts.name);
        let Some(asked) = parts.provider.bookmark(&request).await?.filter(|&p| p > 0) else {
            return Ok(());
        };
        let Some(held) = &mut cursor.lease else {
            return Ok(());
        };
        let provider = &parts.provider;
        let applied = provider.apply_ask_leased(&held.lease, asked - 1, &request, asked);
        let applied = applied.await;
        if applied.is_err() {
            // It may have committed all the same (an answer lost): read the bookmark again
            // before the next page, and look for the ask again at once.
            held.renew_at = Instant::now();
            cursor.position = None;
        }
        forget_if_lost(cursor, applied)?;
        cursor.place(asked - 1);
        Ok(())
    }

    /// The error of a handler run while another process holds its lease.
    pub(super) fn held_elsewhere(&self) -> Error {
        Error::LeaseHeld {
            name: self.inner.parts.name.clone(),
        }
    }
}

/// The outcome of a fenced save; a lost lease is forgotten, with the cached position.
fn forget_if_lost<S>(cursor: &mut Cursor<S>, saved: Result<()>) -> Result<()> {
    if let Err(Error::LeaseLost { .. }) = &saved {
        cursor.lease = None;
        cursor.position = None;
    }
    saved
}

#[cfg(test)]
mod tests {
    use super::process_tag;

    #[test]
    fn processes_started_in_one_millisecond_get_different_tags() {
        let tags: std::collections::HashSet<String> = (0..1000).map(|_| process_tag()).collect();
        assert_eq!(tags.len(), 1000);
    }
}
