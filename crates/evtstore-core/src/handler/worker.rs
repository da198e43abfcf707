//! A handler running in the background: woken by appends, polling as a fallback.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Handler;
use crate::event::Position;

/// The background task of a started handler.
pub(super) struct Worker {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Handler {
    /// Runs the handler in the background until [`stop`](Self::stop). Needs a Tokio runtime.
    ///
    /// It handles events appended through this process within moments, and polls every
    /// `poll_interval` for other writers. A failed run is reported to `on_error` and retried
    /// after `retry_delay`. Starting a started handler does nothing.
    pub fn start(&self) {
        let mut worker = self.inner.worker.lock().unwrap_or_else(|e| e.into_inner());
        if worker.as_ref().is_some_and(|w| !w.task.is_finished()) {
            return; // running; a worker that died (a hook panicked) is replaced
        }
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(self.clone().run_until_stopped(stopped));
        *worker = Some(Worker { stop, task });
    }

    /// Stops the background run once its current `run_once` (everything pending) is done.
    pub async fn stop(&self) {
        let worker = self
            .inner
            .worker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(worker) = worker {
            let _ = worker.stop.send(true);
            let _ = worker.task.await;
        }
    }

    /// True between `start` and `stop`.
    pub fn is_running(&self) -> bool {
        let worker = self.inner.worker.lock().unwrap_or_else(|e| e.into_inner());
        worker.as_ref().is_some_and(|w| !w.task.is_finished())
    }

    async fn run_until_stopped(self, mut stopped: watch::Receiver<bool>) {
        if self.inner.parts.options.always_tail_stream {
            self.reset().await;
        }
        let mut appended = self.inner.parts.provider.subscribe();
        loop {
            appended.borrow_and_update();
            if *stopped.borrow() {
                return;
            }
            let options = &self.inner.parts.options;
            let succeeded = self.run_and_report().await;
            let next = async {
                if succeeded {
                    next_signal(&mut appended, options.poll_interval).await
                } else {
                    tokio::time::sleep(options.retry_delay).await
                }
            };
            tokio::select! {
                _ = stopped.changed() => return,
                _ = next => {}
            }
        }
    }

    /// One run; false when it failed (and was reported).
    async fn run_and_report(&self) -> bool {
        match self.run_once().await {
            Ok(_) => true,
            Err(error) => {
                tracing::warn!(handler = %self.name(), %error, "handler run failed");
                if let Some(hook) = &self.inner.parts.hooks.on_error {
                    hook(&error);
                }
                false
            }
        }
    }
}

/// Waits for an append signal or the poll interval, whichever comes first.
async fn next_signal(appended: &mut watch::Receiver<Position>, wait: Duration) {
    tokio::select! {
        changed = appended.changed() => {
            if changed.is_err() {
                tokio::time::sleep(wait).await; // the provider is gone: poll only
            }
        }
        _ = tokio::time::sleep(wait) => {}
    }
}
