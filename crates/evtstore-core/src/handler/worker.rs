//! Starting and stopping a handler in the background (see [`Runner`](super::Runner)).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{Handler, HandlerFailure};

impl<S: Send + 'static> Handler<S> {
    /// Runs the handler in the background until [`stop`](Self::stop). Needs a Tokio runtime.
    ///
    /// It handles events appended through this process within moments, and polls every
    /// `poll_interval` for other writers. A failed run is reported to `on_error` and retried
    /// after `retry_delay`. Starting a started handler does nothing. With a lease (the
    /// default for a stored bookmark) it stands by while another process runs the handler.
    ///
    /// ```
    /// # use evtstore_core::conformance::domain::{Counter, Tests};
    /// # use evtstore_core::{Domain, MemoryProvider};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> evtstore_core::Result<()> {
    /// let domain: Domain<Tests> = Domain::new(MemoryProvider::new());
    /// let counted = domain
    ///     .handler_with("counted", 0_u64)
    ///     .handle::<Counter, _>(|count, _event, _meta| {
    ///         *count += 1;
    ///         Ok(())
    ///     })
    ///     .build()?;
    /// counted.start();
    /// // … commands run, the handler keeps up …
    /// counted.stop().await; // after its current page, releasing its lease
    /// # Ok(()) }
    /// ```
    pub fn start(&self) {
        let parts = &self.inner.parts;
        let handler = self.clone();
        let first = Arc::new(AtomicBool::new(true));
        let run = move || {
            let (handler, first) = (handler.clone(), first.clone());
            async move {
                let always_tail = handler.inner.parts.options.always_tail_stream;
                if always_tail && first.swap(false, Ordering::Relaxed) {
                    handler.reset().await; // every start begins at the end
                }
                let runner = &handler.inner.runner;
                let handled = handler.run_pages(&|| runner.is_stopping()).await?;
                Ok(handled.unwrap_or(0)) // or another process holds the lease: stand by
            }
        };
        let reporter = self.clone();
        let report = move |error| {
            let reporter = reporter.clone();
            async move {
                let parts = &reporter.inner.parts;
                let failure = HandlerFailure {
                    handler: &parts.name,
                    event: None,
                    error: &error,
                };
                parts.hooks.failed(failure).await;
            }
        };
        let appended = parts.provider.subscribe();
        let mut timing = parts.options.timing;
        if let Some(lease) = self.lease_time() {
            // Often enough to renew the lease, or to take it soon after it expires.
            timing.poll_interval = timing.poll_interval.min(lease / 8);
        }
        self.inner.runner.start(run, appended, timing, report);
    }

    /// Stops the background run after the page it is handling: the bookmark stays after that
    /// page, and the next start resumes there. Releases the lease, so that a handler of the
    /// same name in another process takes over at once.
    pub async fn stop(&self) {
        self.inner.runner.stop().await;
        let mut cursor = self.inner.cursor.lock().await;
        if let Err(error) = self.release_lease(&mut cursor).await {
            tracing::warn!(handler = %self.name(), %error, "lease not released: it will expire");
        }
    }

    /// True between `start` and `stop`.
    pub fn is_running(&self) -> bool {
        self.inner.runner.is_running()
    }
}
