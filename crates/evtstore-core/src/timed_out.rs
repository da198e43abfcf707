//! The cause of an error when a provider's time limit passed.

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Duration;

use futures_util::{StreamExt, TryStream, TryStreamExt};
use tokio::time::{Instant, Sleep};

/// A time limit that passed, and the setting that holds it: the source of the
/// [`Error::Unavailable`](crate::Error::Unavailable) a provider gives when a server did not
/// answer in time.
///
/// ```
/// use std::time::Duration;
/// use evtstore_core::provider::TimedOut;
/// let late = TimedOut { limit: "statement_timeout", after: Duration::from_secs(30) };
/// assert_eq!(late.to_string(), "no answer within 30s (statement_timeout)");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TimedOut {
    /// The setting: `connect_timeout`, `statement_timeout`.
    pub limit: &'static str,
    /// Its value.
    pub after: Duration,
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no answer within {:?} ({})", self.after, self.limit)
    }
}

impl std::error::Error for TimedOut {}

/// A time limit on a streamed read's waits for the server, not on the work done between
/// them: the time each fold of a row takes moves the deadline on. A fold of a large aggregate
/// that decrypts or upcasts every event is not cut short by `statement_timeout`, while a
/// server that stops sending still is.
///
/// ```
/// # async fn run() {
/// use std::pin::pin;
/// use std::time::Duration;
/// use evtstore_core::provider::WaitLimit;
/// let limit = pin!(tokio::time::sleep(Duration::from_secs(30)));
/// let mut waits = WaitLimit::new(limit);
/// let row = waits.wait(async { 7 }).await;
/// assert_eq!(row, Some(7));
/// let folded = waits.fold(|| row.map(|n| n * 2));
/// assert_eq!(folded, Some(14));
/// # }
/// ```
pub struct WaitLimit<'s> {
    sleep: Pin<&'s mut Sleep>,
    /// Fold time not yet added to the deadline.
    owed: Duration,
}

/// Fold time owed before the deadline is moved (moving it costs a timer update).
const MOVE_AFTER: Duration = Duration::from_millis(1);

impl<'s> WaitLimit<'s> {
    /// Most rows [`drain`](Self::drain) reads.
    pub const DRAINED: usize = 1000;

    /// A limit that ends when `sleep` does, give or take the folds.
    pub fn new(sleep: Pin<&'s mut Sleep>) -> Self {
        WaitLimit {
            sleep,
            owed: Duration::ZERO,
        }
    }

    /// Awaits `next` until the deadline; `None` once it has passed.
    pub async fn wait<F: Future>(&mut self, next: F) -> Option<F::Output> {
        let mut next = pin!(next);
        poll_fn(|cx| {
            if let Poll::Ready(out) = next.as_mut().poll(cx) {
                return Poll::Ready(Some(out));
            }
            self.sleep.as_mut().poll(cx).map(|()| None)
        })
        .await
    }

    /// Runs `fold`, and moves the deadline on by the time it took.
    pub fn fold<T>(&mut self, fold: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let folded = fold();
        self.owed += start.elapsed();
        if self.owed >= MOVE_AFTER {
            let deadline = self.sleep.deadline() + self.owed;
            self.sleep.as_mut().reset(deadline);
            self.owed = Duration::ZERO;
        }
        folded
    }

    /// Reads what is left of `rows`, at most [`DRAINED`](Self::DRAINED) of them, within the
    /// limit: whether they ended (a connection whose read a fold stopped is then clean to use
    /// again; a longer rest is better closed).
    pub async fn drain<S: TryStream>(&mut self, rows: S) -> bool {
        let mut rows = pin!(rows.into_stream());
        for _ in 0..=Self::DRAINED {
            match self.wait(rows.next()).await {
                Some(Some(Ok(_))) => {}
                Some(None) => return true,
                _ => return false,
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fold longer than the whole limit moves the deadline on: a wait after it still gets
    /// its answer; a wait that outlasts the limit on its own does not.
    #[tokio::test]
    async fn the_folds_time_moves_the_deadline_on() {
        let limit = pin!(tokio::time::sleep(Duration::from_millis(200)));
        let mut waits = WaitLimit::new(limit);
        waits.fold(|| std::thread::sleep(Duration::from_millis(300)));
        let answer = waits
            .wait(tokio::time::sleep(Duration::from_millis(100)))
            .await;
        assert_eq!(
            answer,
            Some(()),
            "the wait after a long fold is within the limit"
        );
        let never = waits.wait(std::future::pending::<()>()).await;
        assert_eq!(
            never, None,
            "a server that stops sending still runs out of time"
        );
    }
}
