//! Awaiting an answer from the provider's threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// How long a caller waiting alone polls for its answer before it sleeps.
const POLL_ALONE: Duration = Duration::from_micros(300);

/// Counts the callers awaiting an answer.
#[derive(Default)]
pub(crate) struct Waiting(AtomicUsize);

impl Waiting {
    /// Awaits an answer; `None` if its sender was dropped.
    ///
    /// A caller waiting alone polls for up to [`POLL_ALONE`], yielding to the executor's other
    /// tasks and to other threads between polls, then sleeps: an awake thread answers a read within microseconds
    /// and a commit within a few hundred, and waking a sleeping executor thread costs tens of
    /// microseconds. Callers waiting together sleep at once: their writes share commits
    /// anyway, and polling would take the CPU the threads need.
    pub(crate) async fn answer<T>(&self, mut answer: oneshot::Receiver<T>) -> Option<T> {
        let others = self.0.fetch_add(1, Ordering::AcqRel);
        let _done = Done(&self.0);
        if others == 0 {
            let until = Instant::now() + POLL_ALONE;
            while Instant::now() < until {
                match answer.try_recv() {
                    Ok(value) => return Some(value),
                    Err(oneshot::error::TryRecvError::Empty) => {
                        // The answering thread may share this CPU: let it run.
                        std::thread::yield_now();
                        tokio::task::yield_now().await
                    }
                    Err(oneshot::error::TryRecvError::Closed) => return None,
                }
            }
        }
        answer.await.ok()
    }
}

/// Counts a caller out when its wait ends or is cancelled.
struct Done<'a>(&'a AtomicUsize);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
