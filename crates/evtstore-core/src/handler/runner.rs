//! Running a handler in the background: woken by appends, polling as a fallback.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::event::Position;

/// How a background run waits between runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// The longest wait for new events when no append signal comes (other processes' writes).
    pub poll_interval: Duration,
    /// The wait after a failed run before the next.
    pub retry_delay: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            poll_interval: Duration::from_secs(1),
            retry_delay: Duration::from_secs(1),
        }
    }
}

/// A background task that calls a handler's run again and again until stopped: the core
/// [`Handler`](super::Handler) uses it, and so do providers' transactional handlers.
#[derive(Default)]
pub struct Runner {
    worker: Mutex<Option<Worker>>,
    stopping: AtomicBool,
}

struct Worker {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Runner {
    /// Starts calling `run` in the background, unless it is running already. Needs a Tokio
    /// runtime. A run comes at once after a change of `appended`, after
    /// `timing.poll_interval` otherwise, and `timing.retry_delay` after a failure, which goes
    /// to `report` (awaited). A worker that died (a panic) is replaced.
    pub fn start<F, Fut, R, RFut>(
        &self,
        run: F,
        appended: watch::Receiver<Position>,
        timing: Timing,
        report: R,
    ) where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = Result<usize>> + Send + 'static,
        R: Fn(Error) -> RFut + Send + 'static,
        RFut: Future<Output = ()> + Send + 'static,
    {
        let mut worker = self.worker.lock().unwrap_or_else(|e| e.into_inner());
        if worker.as_ref().is_some_and(|w| !w.task.is_finished()) {
            return;
        }
        self.stopping.store(false, Ordering::SeqCst);
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run_until_stopped(run, appended, timing, report, stopped));
        *worker = Some(Worker { stop, task });
    }

    /// Stops the background run. A run that checks [`is_stopping`](Self::is_stopping) between
    /// pages ends after its current page; otherwise it ends when everything pending is done.
    pub async fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let worker = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(worker) = worker {
            let _ = worker.stop.send(true);
            let _ = worker.task.await;
        }
    }

    /// True from a call of [`stop`](Self::stop) until the next `start`: a run in the
    /// background checks it between pages, so a stop takes effect within one page.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// True between `start` and `stop`, while the worker lives.
    pub fn is_running(&self) -> bool {
        let worker = self.worker.lock().unwrap_or_else(|e| e.into_inner());
        worker.as_ref().is_some_and(|w| !w.task.is_finished())
    }
}

async fn run_until_stopped<F, Fut, R, RFut>(
    mut run: F,
    mut appended: watch::Receiver<Position>,
    timing: Timing,
    report: R,
    mut stopped: watch::Receiver<bool>,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<usize>>,
    R: Fn(Error) -> RFut,
    RFut: Future<Output = ()>,
{
    loop {
        appended.borrow_and_update();
        if *stopped.borrow() {
            return;
        }
        // The run itself is never cancelled: a stop waits for it. A panic in it (a hook, the
        // store's code; callbacks' are caught per event) is a failed run, reported and retried.
        let ran = AssertUnwindSafe(run()).catch_unwind().await;
        let ran = ran.unwrap_or_else(|panic| {
            let text = super::page::panic_text(&panic);
            Err(Error::backend("handler run", format!("panicked: {text}")))
        });
        let succeeded = match ran {
            Ok(_) => true,
            Err(error) => {
                report(error).await;
                false
            }
        };
        let next = async {
            if succeeded {
                next_signal(&mut appended, timing.poll_interval).await
            } else {
                tokio::time::sleep(timing.retry_delay).await
            }
        };
        tokio::select! {
            _ = stopped.changed() => return,
            _ = next => {}
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[tokio::test]
    async fn a_run_that_panics_is_reported_and_the_worker_goes_on() {
        let runner = Runner::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let reported = Arc::new(Mutex::new(Vec::new()));
        let counted = runs.clone();
        let run = move || {
            let first = counted.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                assert!(!first, "a hook broke");
                Ok(0)
            }
        };
        let into = reported.clone();
        let report = move |error: Error| {
            into.lock().unwrap().push(error.to_string());
            async {}
        };
        let quick = Duration::from_millis(5);
        let timing = Timing {
            poll_interval: quick,
            retry_delay: quick,
        };
        runner.start(run, watch::channel(0).1, timing, report);
        for _ in 0..400 {
            if runs.load(Ordering::SeqCst) >= 3 {
                break;
            }
            tokio::time::sleep(quick).await;
        }
        assert!(runs.load(Ordering::SeqCst) >= 3, "the worker ran again");
        assert!(runner.is_running());
        runner.stop().await;
        let reported = reported.lock().unwrap();
        assert!(reported[0].contains("a hook broke"), "{reported:?}");
    }
}
